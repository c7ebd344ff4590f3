//! Durable delivery: rate limits, batching, retries and settling each send
//! in the outbox.
//!
//! Jobs arrive already claimed in the outbox. The dispatcher groups them per
//! channel into batches of the adapter's `max-batch-size`, paces them with a
//! token bucket per channel, marks them in flight, calls the adapter, and
//! acts on each typed outcome: settle, retry with jittered exponential
//! backoff, pause the channel, or hand an unreachable recipient back so the
//! caller can try the next channel of the route.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use serde::Deserialize;
use switchboard_contract::model::{
    Failure, OutboundMessage, RateLimitScope, Receipt, SendError, WindowOpener,
};
use switchboard_core::consent;
use switchboard_runtime::{AdapterRuntime, LoadedAdapter};
use switchboard_store::{ConsentChange, SendState, Store, now_ms};

use crate::rate_limit::TokenBucket;

/// How the dispatcher sends: the operator's `[dispatch]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DispatchConfig {
    /// Adapter calls in flight at once.
    pub concurrency: usize,
    /// Attempts per message before it becomes a dead letter.
    pub max_attempts: u32,
    /// First retry delay, ms; doubles each attempt, with jitter.
    pub retry_base_ms: u64,
    /// Longest retry delay, ms.
    pub retry_max_ms: u64,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        Self {
            concurrency: 16,
            max_attempts: 5,
            retry_base_ms: 500,
            retry_max_ms: 30_000,
        }
    }
}

/// Rate-limit answers tolerated per message before it becomes a dead letter.
const MAX_RATE_LIMITED: u32 = 20;
/// The least wait before retrying a recipient the platform said we message too often.
const RECIPIENT_BACKOFF: Duration = Duration::from_secs(6);
/// How long a channel waits after a quota answer with no retry time.
const QUOTA_DEFER: Duration = Duration::from_secs(3600);

/// One message to deliver, already claimed in the outbox.
#[derive(Debug, Clone)]
pub struct Job {
    /// The channel to send on.
    pub channel: String,
    /// The recipient's profile.
    pub profile_id: String,
    /// What to send; `idempotency_key` is the outbox key.
    pub message: OutboundMessage,
    /// The conversation window a free-form message counts against.
    pub window: Option<WindowOpener>,
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// The platform accepted it.
    Sent {
        /// The platform's id, if it gave one.
        platform_message_id: Option<String>,
        /// The platform had already accepted this key (nothing new sent).
        duplicate: bool,
    },
    /// Given up; recorded as a dead letter with its class.
    Failed {
        /// Outcome class, e.g. `window_closed`, `invalid_content`.
        class: String,
        /// What the platform or adapter said.
        message: String,
    },
    /// The recipient cannot be reached on this channel.
    Unreachable {
        /// What the platform said.
        message: String,
    },
    /// Put off until later (quota exhausted, or the platform said "not now").
    Deferred {
        /// When it may be tried again.
        until_ms: i64,
        /// Why.
        message: String,
    },
    /// The platform may or may not have it; not resent.
    Uncertain {
        /// Why.
        message: String,
    },
}

/// Sends jobs through the adapters under the operator's rate and retry policy.
pub struct Dispatcher {
    runtime: Arc<AdapterRuntime>,
    store: Store,
    settings: DispatchConfig,
    rate_overrides: HashMap<String, u32>,
    buckets: Mutex<HashMap<String, Arc<TokenBucket>>>,
}

impl Dispatcher {
    /// A dispatcher over `runtime`'s adapters, settling in `store`.
    pub fn new(
        runtime: Arc<AdapterRuntime>,
        store: Store,
        settings: DispatchConfig,
        rate_overrides: HashMap<String, u32>,
    ) -> Self {
        Self {
            runtime,
            store,
            settings,
            rate_overrides,
            buckets: Mutex::default(),
        }
    }

    fn bucket(&self, adapter: &LoadedAdapter) -> Arc<TokenBucket> {
        let channel = adapter.channel();
        let rate = self
            .rate_overrides
            .get(channel)
            .copied()
            .unwrap_or(adapter.info.limits.messages_per_second);
        let mut buckets = match self.buckets.lock() {
            Ok(buckets) => buckets,
            Err(poisoned) => poisoned.into_inner(),
        };
        Arc::clone(
            buckets
                .entry(channel.to_owned())
                .or_insert_with(|| Arc::new(TokenBucket::new(rate))),
        )
    }

    /// Deliver every job; `on_done` is called as each one settles (for a
    /// progress bar). Returns each job with how it ended, in no fixed order.
    pub async fn deliver(
        self: &Arc<Self>,
        jobs: Vec<Job>,
        on_done: OnDone,
    ) -> Vec<(Job, Delivery)> {
        let mut finished = Vec::with_capacity(jobs.len());
        let mut by_channel: HashMap<String, Vec<Job>> = HashMap::new();
        for job in jobs {
            by_channel.entry(job.channel.clone()).or_default().push(job);
        }
        let permits = Arc::new(Semaphore::new(self.settings.concurrency.max(1)));
        let mut tasks = JoinSet::new();
        for (channel, jobs) in by_channel {
            let Some(adapter) = self.runtime.get(&channel) else {
                for job in jobs {
                    let delivery = Delivery::Failed {
                        class: "no_adapter".into(),
                        message: format!("no adapter is loaded for channel `{channel}`"),
                    };
                    self.settle(&job, &delivery);
                    on_done(&job, &delivery);
                    finished.push((job, delivery));
                }
                continue;
            };
            let batch_size = adapter.info.limits.max_batch_size.max(1) as usize;
            let mut jobs = jobs.into_iter().peekable();
            while jobs.peek().is_some() {
                let batch: Vec<Job> = jobs.by_ref().take(batch_size).collect();
                let this = Arc::clone(self);
                let adapter = Arc::clone(&adapter);
                let permits = Arc::clone(&permits);
                let on_done = Arc::clone(&on_done);
                tasks.spawn(async move {
                    let _permit = permits.acquire_owned().await;
                    this.run_batch(&adapter, batch, on_done.as_ref()).await
                });
            }
        }
        while let Some(result) = tasks.join_next().await {
            match result {
                Ok(done) => finished.extend(done),
                Err(error) => tracing::error!(%error, "a dispatch task failed"),
            }
        }
        finished
    }

    async fn run_batch(
        &self,
        adapter: &LoadedAdapter,
        batch: Vec<Job>,
        on_done: &(dyn Fn(&Job, &Delivery) + Send + Sync),
    ) -> Vec<(Job, Delivery)> {
        let bucket = self.bucket(adapter);
        let mut finished = Vec::with_capacity(batch.len());
        let mut waiting: Vec<Waiting> = batch
            .into_iter()
            .map(|job| Waiting {
                job,
                due: Instant::now(),
                errors: 0,
                rate_limited: 0,
            })
            .collect();
        while !waiting.is_empty() {
            let next_due = waiting
                .iter()
                .map(|w| w.due)
                .min()
                .unwrap_or_else(Instant::now);
            tokio::time::sleep_until(next_due).await;
            let now = Instant::now();
            let (due, later): (Vec<Waiting>, Vec<Waiting>) =
                waiting.into_iter().partition(|w| w.due <= now);
            waiting = later;
            bucket.acquire(due.len() as u32).await;
            let keys: Vec<&str> = due
                .iter()
                .map(|w| w.job.message.idempotency_key.as_str())
                .collect();
            if let Err(error) = self.store.mark_in_flight(&keys, now_ms()) {
                tracing::error!(%error, "could not mark sends in flight; not sending them");
                continue;
            }
            let messages: Vec<OutboundMessage> =
                due.iter().map(|w| w.job.message.clone()).collect();
            match adapter.send(&messages).await {
                Ok(results) => {
                    for (mut item, result) in due.into_iter().zip(results) {
                        match self.judge(&bucket, &mut item, result).await {
                            Some(delivery) => {
                                self.settle(&item.job, &delivery);
                                on_done(&item.job, &delivery);
                                finished.push((item.job, delivery));
                            }
                            None => {
                                item.job.message.attempt += 1;
                                waiting.push(item);
                            }
                        }
                    }
                }
                Err(call_error) => {
                    // The adapter itself failed (trap, budget, timeout): the
                    // platform may have seen some requests, so only platforms
                    // that deduplicate get the batch retried.
                    for mut item in due {
                        item.errors += 1;
                        let delivery = if !adapter.info.deduplicates {
                            Some(Delivery::Uncertain {
                                message: format!("adapter failed mid-call: {call_error}"),
                            })
                        } else if item.errors >= self.settings.max_attempts {
                            Some(Delivery::Failed {
                                class: "adapter_error".into(),
                                message: call_error.to_string(),
                            })
                        } else {
                            None
                        };
                        match delivery {
                            Some(delivery) => {
                                self.settle(&item.job, &delivery);
                                on_done(&item.job, &delivery);
                                finished.push((item.job, delivery));
                            }
                            None => {
                                item.due = Instant::now() + self.backoff(item.errors);
                                item.job.message.attempt += 1;
                                waiting.push(item);
                            }
                        }
                    }
                }
            }
        }
        finished
    }

    /// Decide what a result means: `Some` settles the job, `None` retries it
    /// at `item.due`.
    async fn judge(
        &self,
        bucket: &TokenBucket,
        item: &mut Waiting,
        result: Result<Receipt, SendError>,
    ) -> Option<Delivery> {
        let error = match result {
            Ok(receipt) => {
                return Some(Delivery::Sent {
                    platform_message_id: receipt.platform_message_id,
                    duplicate: receipt.duplicate,
                });
            }
            Err(error) => error,
        };
        let describe = |failure: &Failure| failure.to_string();
        let failed = |class: &str, message: String| {
            Some(Delivery::Failed {
                class: class.to_owned(),
                message,
            })
        };
        match error {
            SendError::RateLimited(limited) => {
                let wait = limited
                    .retry_after_ms
                    .map(|ms| Duration::from_millis(u64::from(ms)));
                item.rate_limited += 1;
                if item.rate_limited > MAX_RATE_LIMITED {
                    return failed("rate_limited", describe(&limited.failure));
                }
                match limited.scope {
                    RateLimitScope::Sender => {
                        let pause = wait.unwrap_or_else(|| self.backoff(item.rate_limited));
                        bucket.pause(pause).await;
                        item.due = Instant::now() + pause;
                        None
                    }
                    RateLimitScope::Recipient => {
                        item.due = Instant::now()
                            + wait.unwrap_or(RECIPIENT_BACKOFF).max(RECIPIENT_BACKOFF);
                        None
                    }
                    RateLimitScope::Quota => {
                        let wait = wait.unwrap_or(QUOTA_DEFER);
                        bucket.pause(wait).await;
                        Some(Delivery::Deferred {
                            until_ms: now_ms() + wait.as_millis() as i64,
                            message: describe(&limited.failure),
                        })
                    }
                }
            }
            SendError::Transient(failure) => {
                item.errors += 1;
                if item.errors >= self.settings.max_attempts {
                    failed(
                        "transient",
                        format!(
                            "gave up after {} attempts: {}",
                            item.errors,
                            describe(&failure)
                        ),
                    )
                } else {
                    item.due = Instant::now() + self.backoff(item.errors);
                    None
                }
            }
            SendError::Permanent(f) => failed("permanent", describe(&f)),
            SendError::InvalidContent(f) => failed("invalid_content", describe(&f)),
            SendError::AuthFailed(f) => failed("auth_failed", describe(&f)),
            SendError::WindowClosed(f) => failed("window_closed", describe(&f)),
            SendError::OptedOut(f) => failed("opted_out", describe(&f)),
            SendError::RecipientUnreachable(f) => Some(Delivery::Unreachable {
                message: describe(&f),
            }),
            SendError::Uncertain(f) => Some(Delivery::Uncertain {
                message: describe(&f),
            }),
            // Only this message waits; the channel keeps its pace.
            SendError::Deferred(deferral) => Some(Delivery::Deferred {
                until_ms: i64::try_from(deferral.until_ms).unwrap_or(i64::MAX),
                message: describe(&deferral.failure),
            }),
        }
    }

    /// Jittered exponential backoff for the `attempt`th retry.
    fn backoff(&self, attempt: u32) -> Duration {
        let base = self.settings.retry_base_ms.max(1) as f64;
        let exponential = base * 2f64.powi(attempt.saturating_sub(1).min(16) as i32);
        let capped = exponential.min(self.settings.retry_max_ms as f64);
        let jitter = rand::rng().random_range(0.5..=1.0);
        Duration::from_millis((capped * jitter) as u64)
    }

    /// Record how a job ended in the outbox (and the consent ledger for opt-outs).
    fn settle(&self, job: &Job, delivery: &Delivery) {
        let key = job.message.idempotency_key.as_str();
        let now = now_ms();
        let result = match delivery {
            Delivery::Sent {
                platform_message_id,
                ..
            } => self
                .store
                .mark_sent(key, &job.channel, platform_message_id.as_deref(), now),
            Delivery::Failed { class, message } => {
                let refused = SendError::OptedOut(Failure::new("", message.clone()));
                if class == "opted_out"
                    && let Some(change) =
                        consent::from_send_error(&job.channel, &job.message, &refused)
                {
                    let event_id = format!("send:{key}");
                    let change = ConsentChange {
                        event_id: &event_id,
                        address: &change.address,
                        purpose: change.purpose.map(|p| p.as_str()),
                        opted_in: change.opted_in,
                        occurred_ms: now,
                        source: &change.source,
                    };
                    if let Err(error) = self.store.record_consent(&job.channel, &change) {
                        tracing::error!(%error, "could not record opt-out");
                    }
                }
                self.store
                    .mark_failed(key, SendState::Failed, class, message, None, now)
            }
            Delivery::Unreachable { message } => {
                self.store
                    .mark_failed(key, SendState::Failed, "unreachable", message, None, now)
            }
            Delivery::Deferred { until_ms, message } => self.store.mark_failed(
                key,
                SendState::Deferred,
                "deferred",
                message,
                Some(*until_ms),
                now,
            ),
            Delivery::Uncertain { message } => {
                self.store
                    .mark_failed(key, SendState::Uncertain, "uncertain", message, None, now)
            }
        };
        if let Err(error) = result {
            tracing::error!(%error, key, "could not record the outcome of a send");
        }
    }
}

/// Called as each job settles, e.g. to advance a progress bar.
pub type OnDone = Arc<dyn Fn(&Job, &Delivery) + Send + Sync>;

struct Waiting {
    job: Job,
    due: Instant,
    errors: u32,
    rate_limited: u32,
}
