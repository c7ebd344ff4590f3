//! Write-ahead marks committed in groups.
//!
//! Before a request that carries messages leaves, the engine records in the
//! outbox that it is being written ([`Store::mark_written`](crate::Store)),
//! and the request waits for that record to be durable. With one commit per
//! request, a PostgreSQL host is held to one request per WAL flush, whatever
//! the platform could take. So the marks of requests that are about to
//! leave at the same moment are committed together: one task per store
//! takes every mark queued while the previous group was being committed and
//! commits them in one statement per lease owner. No request waits for a
//! timer: a lone mark is committed at once, and under load a group forms
//! from the marks that arrived during the previous commit. Each request
//! still leaves only after its own keys are durable, and learns which of
//! them it no longer holds, exactly as with a commit of its own.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};

use super::{Fallible, MAX_RETRIES, backoff, failed_at, outbox};
use crate::{StoreError, StoreResult};

/// Most marks committed in one group (each carries a request's keys).
const MAX_GROUP: usize = 256;

/// One request's mark, waiting to be committed.
struct Mark {
    owner: String,
    keys: Vec<String>,
    reply: oneshot::Sender<StoreResult<Vec<String>>>,
}

/// The queue of marks and the task that commits them; see the
/// [module docs](self).
pub(super) struct WriteAheadGroups {
    pool: PgPool,
    location: String,
    /// The running committer's queue. Started on first use, in the caller's
    /// runtime, and again should that runtime have gone away.
    queue: Mutex<Option<mpsc::UnboundedSender<Mark>>>,
}

impl WriteAheadGroups {
    pub(super) fn new(pool: PgPool, location: String) -> Self {
        Self {
            pool,
            location,
            queue: Mutex::new(None),
        }
    }

    /// Mark `keys`, leased by `owner`, as written; returns the keys no longer
    /// leased by `owner` (nothing is marked for them).
    pub(super) async fn mark(&self, owner: &str, keys: Vec<String>) -> StoreResult<Vec<String>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, answer) = oneshot::channel();
        let mark = Mark {
            owner: owner.to_owned(),
            keys,
            reply,
        };
        self.queue_mark(mark)?;
        answer.await.unwrap_or_else(|_| Err(self.closed()))
    }

    fn queue_mark(&self, mark: Mark) -> StoreResult<()> {
        let mut queue = self.queue.lock().map_err(|_| self.closed())?;
        let mark = match queue.as_ref() {
            Some(sender) => match sender.send(mark) {
                Ok(()) => return Ok(()),
                // The committer's runtime is gone: start another below.
                Err(mpsc::error::SendError(mark)) => mark,
            },
            None => mark,
        };
        let (sender, receiver) = mpsc::unbounded_channel();
        tokio::spawn(commit_groups(
            self.pool.clone(),
            self.location.clone(),
            receiver,
        ));
        sender.send(mark).map_err(|_| self.closed())?;
        *queue = Some(sender);
        Ok(())
    }

    fn closed(&self) -> StoreError {
        failed_at(
            &self.location,
            "recording requests about to leave",
            super::Failure::Sql(sqlx::Error::PoolClosed),
        )
    }
}

/// Commit queued marks, a group at a time, until the store is dropped.
async fn commit_groups(pool: PgPool, location: String, mut queue: mpsc::UnboundedReceiver<Mark>) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    while queue.recv_many(&mut group, MAX_GROUP).await > 0 {
        let mut by_owner: HashMap<String, Vec<Mark>> = HashMap::new();
        for mark in group.drain(..) {
            by_owner.entry(mark.owner.clone()).or_default().push(mark);
        }
        for (owner, marks) in by_owner {
            let keys: Vec<String> = marks.iter().flat_map(|m| m.keys.iter().cloned()).collect();
            match mark_with_retries(&pool, &owner, &keys).await {
                Ok(lost) => {
                    let lost: HashSet<String> = lost.into_iter().collect();
                    for mark in marks {
                        let own_lost = mark
                            .keys
                            .iter()
                            .filter(|key| lost.contains(*key))
                            .cloned()
                            .collect();
                        let _ = mark.reply.send(Ok(own_lost));
                    }
                }
                Err(failure) => {
                    let error = failed_at(&location, "recording requests about to leave", failure);
                    for mark in marks {
                        let _ = mark.reply.send(Err(error.clone()));
                    }
                }
            }
        }
    }
}

/// One statement marking `keys`, again if PostgreSQL aborts it as a
/// deadlock or serialization failure.
async fn mark_with_retries(pool: &PgPool, owner: &str, keys: &[String]) -> Fallible<Vec<String>> {
    retrying!(async {
        let mut connection = pool.acquire().await?;
        outbox::mark_written(&mut connection, owner, keys).await
    })
}
