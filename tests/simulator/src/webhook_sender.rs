//! Posting signed webhooks to the host.
//!
//! Each platform owns one [`WebhookSender`]. It posts already-signed requests
//! ([`SignedRequest`]; the platform module computes its own signature header)
//! and retries a failed post a few times with exponential backoff.
//!
//! Work that must not hold up the API path (WhatsApp's sent → delivered →
//! read status sequence) goes through [`WebhookSender::enqueue`]: a bounded
//! queue drained by one background dispatcher task, which runs each job on
//! its own task, with a cap on how many run at once and on how many posts are
//! in flight. When the queue is full the job is dropped and counted.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::{JoinHandle, JoinSet};

/// Whether `url` can receive webhooks: an absolute http or https URL with a host.
pub fn is_webhook_url(url: &str) -> bool {
    reqwest::Url::parse(url)
        .is_ok_and(|parsed| matches!(parsed.scheme(), "http" | "https") && parsed.has_host())
}

/// Why a webhook could not be posted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// No webhook URL is configured for the platform.
    #[error("no webhook URL is configured")]
    NoUrl,
    /// The receiver answered, but not with a 2xx status (after all retries).
    #[error("webhook receiver answered HTTP {status}: {body}")]
    Rejected {
        /// The HTTP status of the last attempt.
        status: u16,
        /// The start of the response body of the last attempt.
        body: String,
    },
    /// The request could not be made (connection refused, timeout...).
    #[error("webhook request failed: {0}")]
    Transport(String),
    /// The background queue was full, so the job was dropped.
    #[error("webhook queue is full")]
    QueueFull,
    /// The simulator is shutting down.
    #[error("webhook sender is closed")]
    Closed,
}

/// One webhook request, ready to post: the signature header is already in
/// `headers`.
#[derive(Debug, Clone)]
pub struct SignedRequest {
    /// Where to POST.
    pub url: String,
    /// The raw body (the bytes the signature was computed over).
    pub body: Bytes,
    /// Extra headers, e.g. `X-Hub-Signature-256`. `Content-Type:
    /// application/json` is added unless present.
    pub headers: HeaderMap,
}

impl SignedRequest {
    /// A JSON request to `url` with no extra headers yet.
    pub fn json(url: impl Into<String>, body: impl Into<Bytes>) -> Self {
        Self {
            url: url.into(),
            body: body.into(),
            headers: HeaderMap::new(),
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.insert(name, value);
        self
    }
}

/// How failed posts are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts, including the first (at least 1).
    pub attempts: u32,
    /// Wait before the first retry; doubled for each further retry.
    pub initial_backoff: Duration,
    /// Timeout of one attempt.
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 4,
            initial_backoff: Duration::from_millis(100),
            timeout: Duration::from_secs(10),
        }
    }
}

/// Limits of the background queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    /// Jobs waiting to start; beyond this, [`WebhookSender::enqueue`] drops.
    pub capacity: usize,
    /// Jobs running at once (a job may sleep between posts).
    pub max_running_jobs: usize,
    /// HTTP posts in flight at once.
    pub max_in_flight_posts: usize,
}

impl Default for QueueLimits {
    fn default() -> Self {
        Self {
            capacity: 65_536,
            max_running_jobs: 16_384,
            max_in_flight_posts: 64,
        }
    }
}

/// Counters of one sender.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookStats {
    /// Posts the receiver accepted with a 2xx status.
    pub posted: u64,
    /// Posts that failed after all retries.
    pub failures: u64,
    /// Retries made (attempts after the first).
    pub retries: u64,
    /// Background jobs dropped because the queue was full.
    pub dropped: u64,
    /// Background jobs queued or running right now.
    pub pending: u64,
}

type Job = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

#[derive(Debug, Default)]
struct Counters {
    posted: AtomicU64,
    failures: AtomicU64,
    retries: AtomicU64,
    dropped: AtomicU64,
    pending: AtomicU64,
}

struct Inner {
    client: reqwest::Client,
    queue: mpsc::Sender<Job>,
    policy: RetryPolicy,
    post_permits: Semaphore,
    counters: Counters,
}

/// Posts signed webhooks, directly or through a bounded background queue.
/// Cheap to clone.
#[derive(Clone)]
pub struct WebhookSender {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for WebhookSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSender")
            .field("policy", &self.inner.policy)
            .field("stats", &self.stats())
            .finish()
    }
}

impl WebhookSender {
    /// Creates a sender and spawns its dispatcher task on the current tokio
    /// runtime. Abort the returned handle to stop it (and every running job).
    pub fn spawn(
        policy: RetryPolicy,
        limits: QueueLimits,
    ) -> anyhow::Result<(Self, JoinHandle<()>)> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(policy.timeout)
            .user_agent("switchboard-simulator")
            .build()?;
        let (tx, rx) = mpsc::channel(limits.capacity.max(1));
        let sender = Self {
            inner: Arc::new(Inner {
                client,
                queue: tx,
                policy,
                post_permits: Semaphore::new(limits.max_in_flight_posts.max(1)),
                counters: Counters::default(),
            }),
        };
        let dispatcher = tokio::spawn(dispatch(rx, limits.max_running_jobs.max(1)));
        Ok((sender, dispatcher))
    }

    /// Posts `request`, retrying per the [`RetryPolicy`]. Returns the HTTP
    /// status of the successful attempt.
    pub async fn post(&self, request: SignedRequest) -> Result<u16, WebhookError> {
        let policy = self.inner.policy;
        let attempts = policy.attempts.max(1);
        let mut backoff = policy.initial_backoff;
        let mut last_error = WebhookError::Closed;
        for attempt in 1..=attempts {
            if attempt > 1 {
                self.inner.counters.retries.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(backoff).await;
                backoff = backoff.saturating_mul(2);
            }
            match self.attempt(&request).await {
                Ok(status) => {
                    self.inner.counters.posted.fetch_add(1, Ordering::Relaxed);
                    return Ok(status);
                }
                Err(error) => {
                    tracing::debug!(url = %request.url, attempt, %error, "webhook attempt failed");
                    last_error = error;
                }
            }
        }
        self.inner.counters.failures.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(url = %request.url, error = %last_error, "webhook failed after {attempts} attempts");
        Err(last_error)
    }

    async fn attempt(&self, request: &SignedRequest) -> Result<u16, WebhookError> {
        let _permit = self
            .inner
            .post_permits
            .acquire()
            .await
            .map_err(|_| WebhookError::Closed)?;
        let mut builder = self
            .inner
            .client
            .post(&request.url)
            .headers(request.headers.clone())
            .body(request.body.clone());
        if !request.headers.contains_key(CONTENT_TYPE) {
            builder = builder.header(CONTENT_TYPE, "application/json");
        }
        let response = builder
            .send()
            .await
            .map_err(|e| WebhookError::Transport(e.to_string()))?;
        let status = response.status();
        if status.is_success() {
            Ok(status.as_u16())
        } else {
            let body = response.text().await.unwrap_or_default();
            Err(WebhookError::Rejected {
                status: status.as_u16(),
                body: body.chars().take(512).collect(),
            })
        }
    }

    /// Queues `job` for the background dispatcher without waiting. Fails (and
    /// counts a drop) when the queue is full.
    pub fn enqueue<F>(&self, job: F) -> Result<(), WebhookError>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let counters = Arc::clone(&self.inner);
        counters.counters.pending.fetch_add(1, Ordering::Relaxed);
        let wrapped: Job = Box::pin(async move {
            job.await;
            counters.counters.pending.fetch_sub(1, Ordering::Relaxed);
        });
        match self.inner.queue.try_send(wrapped) {
            Ok(()) => Ok(()),
            Err(error) => {
                self.inner.counters.pending.fetch_sub(1, Ordering::Relaxed);
                match error {
                    mpsc::error::TrySendError::Full(_) => {
                        self.inner.counters.dropped.fetch_add(1, Ordering::Relaxed);
                        Err(WebhookError::QueueFull)
                    }
                    mpsc::error::TrySendError::Closed(_) => Err(WebhookError::Closed),
                }
            }
        }
    }

    /// The sender's counters.
    pub fn stats(&self) -> WebhookStats {
        let c = &self.inner.counters;
        WebhookStats {
            posted: c.posted.load(Ordering::Relaxed),
            failures: c.failures.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            pending: c.pending.load(Ordering::Relaxed),
        }
    }

    /// Resets the counters (except `pending`, which tracks live jobs).
    pub fn reset_stats(&self) {
        let c = &self.inner.counters;
        c.posted.store(0, Ordering::Relaxed);
        c.failures.store(0, Ordering::Relaxed);
        c.retries.store(0, Ordering::Relaxed);
        c.dropped.store(0, Ordering::Relaxed);
    }

    /// Waits until no background job is queued or running, or `timeout`
    /// passes. Returns whether the queue became idle.
    pub async fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.inner.counters.pending.load(Ordering::Relaxed) == 0 {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

async fn dispatch(mut rx: mpsc::Receiver<Job>, max_running: usize) {
    let mut running = JoinSet::new();
    while let Some(job) = rx.recv().await {
        while running.try_join_next().is_some() {}
        while running.len() >= max_running {
            if running.join_next().await.is_none() {
                break;
            }
        }
        running.spawn(job);
    }
    while running.join_next().await.is_some() {}
}

/// `sha256=<lowercase hex HMAC-SHA256(secret, body)>`, the value of Meta's
/// `X-Hub-Signature-256` header.
pub fn hub_signature_256(secret: &[u8], body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match Hmac::<sha2::Sha256>::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC-SHA256 accepts keys of any length"),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_signature_matches_known_vector() {
        // RFC 4231 test case 2.
        let sig = hub_signature_256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            sig,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[tokio::test]
    async fn failed_post_is_retried_then_counted() {
        // Nothing listens on this port once the listener is dropped.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let policy = RetryPolicy {
            attempts: 3,
            initial_backoff: Duration::from_millis(1),
            timeout: Duration::from_secs(2),
        };
        let (sender, task) = WebhookSender::spawn(policy, QueueLimits::default()).expect("spawn");
        let result = sender
            .post(SignedRequest::json(format!("http://{addr}/hook"), "{}"))
            .await;
        assert!(matches!(result, Err(WebhookError::Transport(_))));
        let stats = sender.stats();
        assert_eq!(stats.retries, 2);
        assert_eq!(stats.failures, 1);
        assert_eq!(stats.posted, 0);

        let done = Arc::new(AtomicU64::new(0));
        let flag = Arc::clone(&done);
        sender
            .enqueue(async move {
                flag.store(1, Ordering::Relaxed);
            })
            .expect("enqueue");
        assert!(sender.wait_idle(Duration::from_secs(5)).await);
        assert_eq!(done.load(Ordering::Relaxed), 1);
        task.abort();
    }
}
