//! One channel's lane: its own concurrency, rate controller and batches.
//!
//! A lane gathers rate permits first, then takes a concurrency slot, then
//! claims as many due sends as it has permits for, and hands them to the
//! adapter in one call. Nothing waits while holding a slot: a rate limit is
//! waited out before the slot is taken, a backoff or deferral goes back to
//! the outbox with a due time, and a slow call holds only its own lane's
//! slot. So one channel never slows another.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use switchboard_contract::model::{Content, OutboundMessage};
use switchboard_runtime::{LoadedAdapter, WriteAhead};
use switchboard_store::{ClaimRequest, ClaimedSend, Outcome, Settle, Settlement, now_ms};
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;

use crate::engine::{Settled, Shared};
use crate::judge::{self, Seen, Signal};
use crate::rate::RateController;
use crate::write_ahead::OutboxWriteAhead;

/// How long an idle lane sleeps before looking at the outbox again.
const IDLE: Duration = Duration::from_secs(1);
/// How long a lane backs off after a database error (when it carries on).
const STORE_BACKOFF: Duration = Duration::from_secs(5);

pub(crate) struct Lane {
    shared: Arc<Shared>,
    channel: String,
    wake: Arc<Notify>,
}

/// Per-recipient pacing and the daily unique-recipient tier, kept by the lane.
struct Pacing {
    interval: Option<Duration>,
    last_sent: HashMap<String, Instant>,
    daily_limit: Option<u64>,
    /// Recipients reached with templates in the last 24 hours, and when.
    reached: HashMap<String, i64>,
    reached_loaded: bool,
}

const DAY_MS: i64 = 24 * 3600 * 1000;

impl Pacing {
    /// Whether `send` may go now; otherwise when it may.
    fn hold(
        &mut self,
        send: &ClaimedSend,
        now: Instant,
        now_ms: i64,
    ) -> Option<(i64, &'static str)> {
        if let Some(interval) = self.interval
            && let Some(last) = self.last_sent.get(&send.message.to)
        {
            let next = *last + interval;
            if next > now {
                let wait = next.duration_since(now);
                return Some((now_ms + wait.as_millis() as i64, "pair_rate"));
            }
        }
        if let Some(limit) = self.daily_limit
            && matches!(send.message.content, Content::Template(_))
            && !self.reached.contains_key(&send.message.to)
        {
            self.reached.retain(|_, at| *at > now_ms - DAY_MS);
            if self.reached.len() as u64 >= limit {
                let oldest = self.reached.values().min().copied().unwrap_or(now_ms);
                return Some((oldest + DAY_MS, "daily_limit"));
            }
        }
        None
    }

    /// Count a message going out now.
    fn going(&mut self, send: &ClaimedSend, now: Instant, now_ms: i64) {
        if let Some(interval) = self.interval {
            self.last_sent.insert(send.message.to.clone(), now);
            if self.last_sent.len() > 100_000 {
                self.last_sent
                    .retain(|_, at| now.duration_since(*at) < interval);
            }
        }
        if self.daily_limit.is_some() && matches!(send.message.content, Content::Template(_)) {
            self.reached
                .entry(send.message.to.clone())
                .or_insert(now_ms);
        }
    }
}

impl Lane {
    pub(crate) fn new(shared: Arc<Shared>, channel: String, wake: Arc<Notify>) -> Self {
        Self {
            shared,
            channel,
            wake,
        }
    }

    pub(crate) async fn run(self) {
        let config = self.shared.settings.lane(&self.channel);
        let dispatch = &self.shared.settings.dispatch;
        let concurrency = config.concurrency.unwrap_or(dispatch.concurrency).max(1);
        let slots = Arc::new(Semaphore::new(concurrency));
        let mut rate: Option<(u32, Arc<RateController>)> = None;
        let mut pacing = Pacing {
            interval: config.pair_interval_ms.map(Duration::from_millis),
            last_sent: HashMap::new(),
            daily_limit: config.daily_unique_recipients,
            reached: HashMap::new(),
            reached_loaded: false,
        };
        let mut stopping = self.shared.stopping.subscribe();
        loop {
            if *stopping.borrow() {
                break;
            }
            let Some(adapter) = self.shared.runtime.get(&self.channel) else {
                self.idle(&mut stopping, IDLE).await;
                continue;
            };
            // Several engines on one outbox each take a share of the rate.
            let nodes = self
                .shared
                .nodes
                .load(std::sync::atomic::Ordering::Relaxed)
                .max(1);
            let per_second = (config
                .messages_per_second
                .unwrap_or(adapter.info.limits.messages_per_second)
                / nodes)
                .max(1);
            let controller = match &rate {
                Some((configured, controller)) if *configured == per_second => {
                    Arc::clone(controller)
                }
                _ => {
                    let controller = Arc::new(RateController::new(per_second));
                    rate = Some((per_second, Arc::clone(&controller)));
                    controller
                }
            };
            if pacing.daily_limit.is_some() && !pacing.reached_loaded {
                let since = now_ms() - DAY_MS;
                match self
                    .shared
                    .store
                    .recent_recipients(&self.channel, since)
                    .await
                {
                    Ok(reached) => {
                        pacing.reached = reached.into_iter().collect();
                        pacing.reached_loaded = true;
                    }
                    Err(error) => {
                        self.shared.store_failed(error);
                        self.idle(&mut stopping, STORE_BACKOFF).await;
                        continue;
                    }
                }
            }
            let batch = adapter.info.limits.max_batch_size.max(1);
            let permits = tokio::select! {
                permits = controller.acquire(batch) => permits,
                _ = stopping.changed() => continue,
            };
            let slot = tokio::select! {
                slot = Arc::clone(&slots).acquire_owned() => slot,
                _ = stopping.changed() => {
                    controller.refund(permits).await;
                    continue;
                }
            };
            let Ok(slot) = slot else {
                break;
            };
            let request = ClaimRequest {
                channel: self.channel.clone(),
                owner: self.shared.owner.clone(),
                limit: permits,
                now_ms: now_ms(),
                lease_ms: i64::try_from(dispatch.lease_ms).unwrap_or(i64::MAX),
                campaign: self.shared.scope.clone(),
            };
            let claimed = match self.shared.store.claim(request).await {
                Ok(claimed) => claimed,
                Err(error) => {
                    controller.refund(permits).await;
                    drop(slot);
                    self.shared.store_failed(error);
                    self.idle(&mut stopping, STORE_BACKOFF).await;
                    continue;
                }
            };
            controller
                .refund(permits.saturating_sub(claimed.len() as u32))
                .await;
            if claimed.is_empty() {
                drop(slot);
                let wait = self.until_due().await;
                self.idle(&mut stopping, wait).await;
                continue;
            }
            let (go, held) = self.pace(&mut pacing, claimed);
            if !held.is_empty()
                && let Err(error) = self
                    .settle(held.iter().map(|(_, s)| s.clone()).collect())
                    .await
            {
                self.shared.store_failed(error);
            }
            for (send, settlement) in held {
                self.emit(send, settlement);
            }
            if go.is_empty() {
                drop(slot);
                continue;
            }
            let shared = Arc::clone(&self.shared);
            let controller = Arc::clone(&controller);
            tokio::spawn(async move {
                send_batch(&shared, &adapter, &controller, go).await;
                drop(slot);
            });
        }
        // Let the calls in flight finish and settle.
        let _ = slots.acquire_many(concurrency as u32).await;
    }

    /// Split claimed sends into those that go now and those the lane's
    /// pacing holds back (released to their next allowed time, no attempt
    /// counted).
    fn pace(
        &self,
        pacing: &mut Pacing,
        claimed: Vec<ClaimedSend>,
    ) -> (Vec<ClaimedSend>, Vec<(ClaimedSend, Settlement)>) {
        if pacing.interval.is_none() && pacing.daily_limit.is_none() {
            return (claimed, Vec::new());
        }
        let now = Instant::now();
        let now_ms = now_ms();
        let mut go = Vec::with_capacity(claimed.len());
        let mut held = Vec::new();
        let mut in_batch: HashSet<String> = HashSet::new();
        for send in claimed {
            let repeat = pacing.interval.is_some() && !in_batch.insert(send.message.to.clone());
            let hold = if repeat {
                let interval = pacing.interval.unwrap_or_default();
                Some((now_ms + interval.as_millis() as i64, "pair_rate"))
            } else {
                pacing.hold(&send, now, now_ms)
            };
            match hold {
                Some((due_ms, _reason)) => {
                    let settlement = Settlement {
                        key: send.message.idempotency_key.clone(),
                        outcome: Outcome::Released { due_ms },
                        consent: None,
                        rate_limited: false,
                        fall_back: false,
                    };
                    held.push((send, settlement));
                }
                None => {
                    pacing.going(&send, now, now_ms);
                    go.push(send);
                }
            }
        }
        (go, held)
    }

    async fn settle(
        &self,
        settlements: Vec<Settlement>,
    ) -> Result<Vec<Settle>, switchboard_store::StoreError> {
        self.shared
            .store
            .settle(&self.shared.owner, settlements, now_ms())
            .await
    }

    fn emit(&self, send: ClaimedSend, settlement: Settlement) {
        self.shared.events.publish(Settled {
            send,
            fell_back: false,
            outcome: settlement.outcome,
        });
    }

    /// How long until the channel next has something due (at most [`IDLE`]).
    async fn until_due(&self) -> Duration {
        match self.shared.store.next_due(&self.channel).await {
            Ok(Some(due)) => {
                let wait = due.saturating_sub(now_ms()).max(5);
                Duration::from_millis(wait as u64).min(IDLE)
            }
            Ok(None) => IDLE,
            Err(error) => {
                self.shared.store_failed(error);
                STORE_BACKOFF
            }
        }
    }

    async fn idle(&self, stopping: &mut tokio::sync::watch::Receiver<bool>, wait: Duration) {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = self.wake.notified() => {}
            _ = stopping.changed() => {}
        }
    }
}

/// Send one claimed batch through the adapter and settle every message.
async fn send_batch(
    shared: &Arc<Shared>,
    adapter: &Arc<LoadedAdapter>,
    rate: &RateController,
    batch: Vec<ClaimedSend>,
) {
    let messages: Vec<OutboundMessage> = batch.iter().map(|send| send.message.clone()).collect();
    // Where the platform deduplicates, a resend after a crash is harmless:
    // no need to record each request before it leaves.
    let write_ahead: Option<Arc<dyn WriteAhead>> = if adapter.info.deduplicates {
        None
    } else {
        Some(Arc::new(OutboxWriteAhead::new(
            Arc::clone(&shared.store),
            shared.owner.clone(),
            messages.iter().map(|m| m.idempotency_key.clone()).collect(),
        )))
    };
    let outcome = adapter.send_tracked(&messages, write_ahead).await;
    let now = now_ms();
    let first_missing = outcome.results.iter().position(Option::is_none);
    let mut settlements = Vec::with_capacity(batch.len());
    let mut slow: Option<Option<Duration>> = None;
    let mut quota: Option<Duration> = None;
    for (index, send) in batch.iter().enumerate() {
        let seen = Seen {
            result: outcome.results[index].as_ref(),
            trace: outcome.requests[index],
            call_error: outcome.error.as_ref(),
            culprit: outcome.error.is_some() && first_missing == Some(index),
        };
        let verdict = judge::judge(send, seen, &shared.settings.dispatch, now);
        match verdict.signal {
            Signal::None => {}
            Signal::Slow(pause) => slow = Some(pause.max(slow.flatten())),
            Signal::Quota(wait) => quota = Some(wait.max(quota.unwrap_or_default())),
        }
        settlements.push(verdict.settlement);
    }
    let accepted = settlements
        .iter()
        .filter(|s| matches!(s.outcome, Outcome::Sent { .. }))
        .count();
    rate.accepted(accepted as u32).await;
    if let Some(pause) = slow {
        rate.refused(pause).await;
    }
    if let Some(wait) = quota {
        rate.pause_until(Instant::now() + wait).await;
    }
    match shared
        .store
        .settle(&shared.owner, settlements.clone(), now)
        .await
    {
        Ok(results) => {
            for ((send, settlement), result) in batch.into_iter().zip(settlements).zip(results) {
                if result == Settle::NotHeld {
                    tracing::warn!(
                        key = %send.message.idempotency_key,
                        "a send's lease passed to another engine before it settled; its outcome here is dropped"
                    );
                    continue;
                }
                shared.events.publish(Settled {
                    send,
                    fell_back: result == Settle::FellBack,
                    outcome: settlement.outcome,
                });
            }
        }
        Err(error) => shared.store_failed(error),
    }
}
