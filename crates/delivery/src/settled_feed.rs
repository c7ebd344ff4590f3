//! The sends an engine settles, as a feed for whoever watches (the `send`
//! command's results file).
//!
//! Every watcher gets every settled send, in order. One that falls behind
//! (a slow results disk, a starved task) holds them queued instead of
//! losing the oldest: a lost event is a recipient missing from the results
//! file and from the run's summary. What is queued is bounded by the sends
//! the engine settles, and a watcher that is dropped stops receiving.

use std::sync::Mutex;

use tokio::sync::mpsc;

use crate::engine::Settled;

/// The engine's feed of settled sends; see the [module docs](self).
#[derive(Default)]
pub(crate) struct SettledFeed {
    watchers: Mutex<Vec<mpsc::UnboundedSender<Settled>>>,
}

impl SettledFeed {
    /// A new watcher: every send settled from now on, in order.
    pub(crate) fn subscribe(&self) -> mpsc::UnboundedReceiver<Settled> {
        let (sender, receiver) = mpsc::unbounded_channel();
        if let Ok(mut watchers) = self.watchers.lock() {
            watchers.push(sender);
        }
        receiver
    }

    /// Hand `settled` to every watcher still listening: a copy to each
    /// but the last, which takes it (there is usually one watcher, and
    /// this runs for every message).
    pub(crate) fn publish(&self, settled: Settled) {
        let Ok(mut watchers) = self.watchers.lock() else {
            return;
        };
        watchers.retain(|watcher| !watcher.is_closed());
        if let Some((last, others)) = watchers.split_last() {
            for watcher in others {
                let _ = watcher.send(settled.clone());
            }
            let _ = last.send(settled);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_store::Outcome;

    fn settled(i: usize) -> Settled {
        Settled {
            send: crate::test_support::claimed_send(&format!("k{i}")),
            outcome: Outcome::Sent {
                platform_message_id: None,
                duplicate: false,
            },
            fell_back: false,
        }
    }

    #[test]
    fn a_watcher_that_falls_far_behind_still_gets_every_send_in_order() {
        let feed = SettledFeed::default();
        let mut watcher = feed.subscribe();
        // Far more than the 16,384 a broadcast channel kept before.
        let count = 50_000;
        for i in 0..count {
            feed.publish(settled(i));
        }
        for i in 0..count {
            let got = watcher.try_recv().expect("every send is still queued");
            assert_eq!(got.send.message.idempotency_key, format!("k{i}"));
        }
        assert!(watcher.try_recv().is_err());
    }

    #[test]
    fn a_dropped_watcher_is_let_go_and_the_others_still_hear() {
        let feed = SettledFeed::default();
        let dropped = feed.subscribe();
        let mut kept = feed.subscribe();
        drop(dropped);
        feed.publish(settled(1));
        assert_eq!(feed.watchers.lock().unwrap().len(), 1);
        assert_eq!(kept.try_recv().unwrap().send.message.idempotency_key, "k1");
    }

    #[test]
    fn every_watcher_hears_every_send() {
        let feed = SettledFeed::default();
        let mut first = feed.subscribe();
        let mut second = feed.subscribe();
        feed.publish(settled(1));
        for watcher in [&mut first, &mut second] {
            assert_eq!(
                watcher.try_recv().unwrap().send.message.idempotency_key,
                "k1"
            );
        }
    }
}
