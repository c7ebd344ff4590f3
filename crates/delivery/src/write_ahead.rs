//! Write-ahead marks for the requests of one adapter call.
//!
//! Before a request leaves, the outbox records that it is being written for
//! the sends it carries, so that after a crash the host knows which may have
//! reached the platform. A request waits for its keys to be recorded (a
//! `http.send` list of requests waits for all of theirs, in one write), and
//! only a request carrying a send another engine took over is refused. Marks of
//! requests that leave together are committed together by the store itself
//! where a commit is costly (PostgreSQL's group commit).

use std::sync::Arc;

use futures::future::BoxFuture;
use switchboard_runtime::WriteAhead;
use switchboard_store::Store;

/// Records a call's requests in the outbox before they leave; see the
/// [module docs](self).
pub(crate) struct OutboxWriteAhead {
    store: Arc<dyn Store>,
    owner: String,
    /// The call's idempotency keys, by batch position.
    keys: Vec<String>,
}

impl OutboxWriteAhead {
    /// Marks for a call carrying `keys` (by batch position), held by `owner`.
    pub(crate) fn new(store: Arc<dyn Store>, owner: String, keys: Vec<String>) -> Self {
        Self { store, owner, keys }
    }
}

impl WriteAhead for OutboxWriteAhead {
    fn before_write(&self, indices: Vec<u32>) -> BoxFuture<'static, Result<Vec<u32>, String>> {
        let marked: Vec<(u32, String)> = indices
            .iter()
            .filter_map(|&index| Some((index, self.keys.get(index as usize)?.clone())))
            .collect();
        let store = Arc::clone(&self.store);
        let owner = self.owner.clone();
        Box::pin(async move {
            let keys = marked.iter().map(|(_, key)| key.clone()).collect();
            let lost = store
                .mark_written(&owner, keys)
                .await
                .map_err(|error| error.to_string())?;
            Ok(marked
                .into_iter()
                .filter(|(_, key)| lost.contains(key))
                .map(|(index, _)| index)
                .collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_store::{ClaimRequest, NewSend, SqliteStore};

    fn new_send(key: &str) -> NewSend {
        NewSend {
            message: crate::test_support::text_message(key),
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
    async fn requests_started_together_are_all_recorded() {
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
            assert_eq!(task.await.expect("task"), Ok(vec![]));
        }
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
    async fn only_the_positions_whose_sends_were_taken_over_are_refused() {
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
        let marks = Arc::new(OutboxWriteAhead::new(
            store.clone(),
            "engine-a".into(),
            keys,
        ));
        // One request each (`wasi:http`), then both in one mark (`http.send`).
        let held = tokio::spawn(marks.before_write(vec![0]));
        let lost = tokio::spawn(marks.before_write(vec![1]));
        assert_eq!(held.await.expect("task"), Ok(vec![]));
        assert_eq!(lost.await.expect("task"), Ok(vec![1]));
        assert_eq!(marks.before_write(vec![0, 1]).await, Ok(vec![1]));
        // A position outside the call carries no key: nothing to refuse.
        assert_eq!(marks.before_write(vec![7]).await, Ok(vec![]));
    }
}
