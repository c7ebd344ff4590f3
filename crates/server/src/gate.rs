//! How many webhook calls run at once: a bound per channel, and a memory
//! budget for all of them (each call's instance may grow to the sandbox's
//! memory limit). A request waits for a slot up to a queue time, then is
//! answered 503 with `Retry-After`, which platforms honour by redelivering.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The webhook concurrency gate.
#[derive(Debug)]
pub struct WebhookGate {
    per_channel: usize,
    channels: Mutex<HashMap<String, Arc<Semaphore>>>,
    budget: Arc<Semaphore>,
    queue: Duration,
}

/// The slots one webhook call holds until dropped.
#[derive(Debug)]
pub struct WebhookSlot {
    _channel: OwnedSemaphorePermit,
    _memory: OwnedSemaphorePermit,
}

impl WebhookGate {
    /// `per_channel` calls per channel; `memory_bytes` of instance memory
    /// for all, each call counted at `instance_bytes`; wait at most `queue`.
    pub fn new(
        per_channel: usize,
        memory_bytes: u64,
        instance_bytes: usize,
        queue: Duration,
    ) -> Self {
        let instances = (memory_bytes / instance_bytes.max(1) as u64).max(1) as usize;
        Self {
            per_channel: per_channel.max(1),
            channels: Mutex::default(),
            budget: Arc::new(Semaphore::new(instances)),
            queue,
        }
    }

    /// Calls that may run at once host-wide.
    pub fn instances(&self) -> usize {
        self.budget.available_permits()
    }

    /// Wait for a slot for `channel` (a loaded channel: the map stays
    /// bounded by the adapters loaded), or `None` after the queue time.
    pub async fn enter(&self, channel: &str) -> Option<WebhookSlot> {
        let channel_slots = {
            let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(
                channels
                    .entry(channel.to_owned())
                    .or_insert_with(|| Arc::new(Semaphore::new(self.per_channel))),
            )
        };
        let budget = Arc::clone(&self.budget);
        tokio::time::timeout(self.queue, async move {
            let channel = channel_slots.acquire_owned().await.ok()?;
            let memory = budget.acquire_owned().await.ok()?;
            Some(WebhookSlot {
                _channel: channel,
                _memory: memory,
            })
        })
        .await
        .ok()
        .flatten()
    }
}

impl Default for WebhookGate {
    fn default() -> Self {
        Self::new(
            16,
            1024 * 1024 * 1024,
            64 * 1024 * 1024,
            Duration::from_secs(2),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_busy_channel_queues_then_is_refused_while_others_get_in() {
        let gate = WebhookGate::new(2, 4 * 64, 64, Duration::from_millis(50));
        let a1 = gate.enter("line").await.expect("slot");
        let a2 = gate.enter("line").await.expect("slot");
        assert!(
            gate.enter("line").await.is_none(),
            "a third LINE call waits, then is refused"
        );
        let b = gate
            .enter("wechat")
            .await
            .expect("another channel still gets in");
        drop(a1);
        assert!(gate.enter("line").await.is_some());
        drop((a2, b));
    }

    #[tokio::test]
    async fn the_memory_budget_bounds_every_channel_together() {
        let gate = WebhookGate::new(10, 2 * 64, 64, Duration::from_millis(50));
        let _a = gate.enter("a").await.expect("slot");
        let _b = gate.enter("b").await.expect("slot");
        assert!(
            gate.enter("c").await.is_none(),
            "two instances fit the budget, not three"
        );
    }
}
