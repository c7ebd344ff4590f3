//! Write-ahead marks for the requests of one adapter call, gathered.
//!
//! Before a request leaves, the outbox records that it is being written for
//! the sends it carries, so that after a crash the host knows which may have
//! reached the platform. An adapter starts a batch's requests together (the
//! SDK sends up to 16 at once), and each would otherwise be its own database
//! job: its own transaction slot, reply and thread wake-up. Here the marks
//! of requests that start together are gathered into one job: the first
//! request to arrive opens a gathering, lets the others that are ready to
//! run join it, then records every key in it at once. Each request still
//! waits for its own keys to be recorded before it leaves, and one whose
//! keys another engine took over is refused alone.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use switchboard_runtime::WriteAhead;
use switchboard_store::Store;

/// What a gathering's database job found: the batch positions whose send
/// is no longer held, or why nothing could be recorded.
type Recorded = Result<Arc<HashSet<u32>>, String>;

/// Records a call's requests in the outbox before they leave; see the
/// [module docs](self).
pub(crate) struct OutboxWriteAhead {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    owner: String,
    /// The call's idempotency keys, by batch position.
    keys: Vec<String>,
    /// The gathering requests can still join, if one is open.
    open: Mutex<Option<Gathering>>,
    /// How many database jobs the call's marks took (for tests).
    #[cfg(test)]
    jobs: std::sync::atomic::AtomicUsize,
}

/// Requests' batch positions waiting to be recorded together, and the job
/// that records their keys.
struct Gathering {
    indices: Vec<u32>,
    recorded: Shared<BoxFuture<'static, Recorded>>,
}

impl OutboxWriteAhead {
    /// Marks for a call carrying `keys` (by batch position), held by `owner`.
    pub(crate) fn new(store: Arc<dyn Store>, owner: String, keys: Vec<String>) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                owner,
                keys,
                open: Mutex::new(None),
                #[cfg(test)]
                jobs: std::sync::atomic::AtomicUsize::new(0),
            }),
        }
    }
}

impl Inner {
    /// Join the open gathering with the batch positions `indices`, or open
    /// one; returns the job that will record their keys.
    fn join(self: &Arc<Self>, indices: &[u32]) -> Shared<BoxFuture<'static, Recorded>> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(gathering) = open.as_mut() {
            gathering.indices.extend_from_slice(indices);
            return gathering.recorded.clone();
        }
        // Weak: the open gathering holds this future, and a strong
        // reference back would keep both alive if the call ended before
        // the future ran.
        let weak = Arc::downgrade(self);
        let recorded = async move {
            // Let the call's other requests, spawned together with this
            // one, reach `join` before the gathering closes.
            tokio::task::yield_now().await;
            let inner = weak.upgrade().ok_or_else(|| {
                "the adapter call ended before its requests were recorded".to_owned()
            })?;
            let indices = inner
                .open
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
                .map(|gathering| gathering.indices)
                .unwrap_or_default();
            let keys = indices
                .iter()
                .filter_map(|&index| inner.key(index).map(str::to_owned))
                .collect();
            #[cfg(test)]
            inner
                .jobs
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let lost: HashSet<String> = inner
                .store
                .mark_written(&inner.owner, keys)
                .await
                .map_err(|error| error.to_string())?
                .into_iter()
                .collect();
            Ok(Arc::new(
                indices
                    .into_iter()
                    .filter(|&index| inner.key(index).is_some_and(|key| lost.contains(key)))
                    .collect(),
            ))
        }
        .boxed()
        .shared();
        *open = Some(Gathering {
            indices: indices.to_vec(),
            recorded: recorded.clone(),
        });
        recorded
    }

    /// The idempotency key at batch position `index`.
    fn key(&self, index: u32) -> Option<&str> {
        self.keys.get(index as usize).map(String::as_str)
    }
}

impl WriteAhead for OutboxWriteAhead {
    fn before_write(&self, indices: Vec<u32>) -> BoxFuture<'static, Result<(), String>> {
        let recorded = self.inner.join(&indices);
        Box::pin(async move {
            let lost = recorded.await?;
            let mine = indices.iter().filter(|index| lost.contains(index)).count();
            if mine == 0 {
                Ok(())
            } else {
                Err(format!(
                    "{mine} message(s) of this request are no longer held by this engine (its lease expired)"
                ))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_contract::model::{Content, OutboundMessage, Purpose};
    use switchboard_store::{ClaimRequest, NewSend, SqliteStore};

    fn new_send(key: &str) -> NewSend {
        NewSend {
            message: OutboundMessage {
                idempotency_key: key.into(),
                to: format!("+4915112{key}"),
                purpose: Purpose::Marketing,
                content: Content::Text("hello".into()),
                ttl_seconds: None,
                attempt: 1,
            },
            campaign: "loyalty".into(),
            profile_id: format!("p-{key}"),
            line: None,
            channel: "whatsapp".into(),
            step: 0,
            window: None,
            deduplicates: false,
            due_ms: 0,
            deferred_reason: None,
            deferred_message: None,
            deadline_ms: None,
            fallback: vec![],
        }
    }

    /// A store holding `keys` leased to `owner` with a lease of `lease_ms`.
    async fn leased(
        dir: &tempfile::TempDir,
        keys: &[String],
        owner: &str,
        lease_ms: i64,
    ) -> Arc<SqliteStore> {
        let store = Arc::new(SqliteStore::open(&dir.path().join("outbox.db")).expect("open"));
        store
            .enqueue(keys.iter().map(|k| new_send(k)).collect(), vec![])
            .await
            .expect("enqueue");
        let claimed = store
            .claim(ClaimRequest {
                channel: "whatsapp".into(),
                owner: owner.into(),
                limit: keys.len() as u32,
                now_ms: 0,
                lease_ms,
                campaign: None,
            })
            .await
            .expect("claim");
        assert_eq!(claimed.len(), keys.len());
        store
    }

    #[tokio::test(flavor = "current_thread")]
    async fn requests_started_together_are_recorded_in_one_job() {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys: Vec<String> = (0..16).map(|i| format!("k{i:02}")).collect();
        let store = leased(&dir, &keys, "engine-a", 60_000).await;
        let marks = Arc::new(OutboxWriteAhead::new(
            store.clone(),
            "engine-a".into(),
            keys.clone(),
        ));
        // As the egress does: one task per request, spawned together.
        let tasks: Vec<_> = (0..16u32)
            .map(|index| tokio::spawn(marks.before_write(vec![index])))
            .collect();
        for task in tasks {
            assert_eq!(task.await.expect("task"), Ok(()));
        }
        assert_eq!(
            marks.inner.jobs.load(std::sync::atomic::Ordering::Relaxed),
            1
        );
        // Every send is marked: a second engine cannot take any of them
        // over once the lease expires (they become uncertain instead).
        let taken_over = store
            .claim(ClaimRequest {
                channel: "whatsapp".into(),
                owner: "engine-b".into(),
                limit: 16,
                now_ms: 120_000,
                lease_ms: 60_000,
                campaign: None,
            })
            .await
            .expect("claim");
        assert!(taken_over.is_empty(), "{taken_over:?}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_request_whose_send_was_taken_over_is_refused_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys: Vec<String> = vec!["held".into(), "lost".into()];
        let store = leased(&dir, &keys[..1], "engine-a", 60_000).await;
        // `lost` is held by another engine.
        store
            .enqueue(vec![new_send("lost")], vec![])
            .await
            .expect("enqueue");
        store
            .claim(ClaimRequest {
                channel: "whatsapp".into(),
                owner: "engine-b".into(),
                limit: 1,
                now_ms: 0,
                lease_ms: 60_000,
                campaign: None,
            })
            .await
            .expect("claim");
        let marks = Arc::new(OutboxWriteAhead::new(store, "engine-a".into(), keys));
        let held = tokio::spawn(marks.before_write(vec![0]));
        let lost = tokio::spawn(marks.before_write(vec![1]));
        assert_eq!(held.await.expect("task"), Ok(()));
        assert_eq!(
            lost.await.expect("task"),
            Err("1 message(s) of this request are no longer held by this engine (its lease expired)".into())
        );
        assert_eq!(
            marks.inner.jobs.load(std::sync::atomic::Ordering::Relaxed),
            1
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_call_that_ends_before_its_marks_are_made_leaves_nothing_behind() {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys: Vec<String> = vec!["k".into()];
        let store = leased(&dir, &keys, "engine-a", 60_000).await;

        // Never polled: the call, its gathering and its job all go.
        let marks = OutboxWriteAhead::new(store.clone(), "engine-a".into(), keys.clone());
        let inner = Arc::downgrade(&marks.inner);
        let never_polled = marks.before_write(vec![0]);
        drop(marks);
        drop(never_polled);
        assert!(
            inner.upgrade().is_none(),
            "the call's marks were kept alive"
        );

        // Polled after the call ended: the request is held back, saying why.
        let marks = OutboxWriteAhead::new(store, "engine-a".into(), keys);
        let late = marks.before_write(vec![0]);
        drop(marks);
        assert_eq!(
            late.await,
            Err("the adapter call ended before its requests were recorded".into())
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn requests_that_start_later_are_recorded_in_a_job_of_their_own() {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys: Vec<String> = vec!["first".into(), "second".into()];
        let store = leased(&dir, &keys, "engine-a", 60_000).await;
        let marks = OutboxWriteAhead::new(store, "engine-a".into(), keys);
        assert_eq!(marks.before_write(vec![0]).await, Ok(()));
        assert_eq!(marks.before_write(vec![1]).await, Ok(()));
        assert_eq!(
            marks.inner.jobs.load(std::sync::atomic::Ordering::Relaxed),
            2
        );
    }
}
