//! A loaded adapter version and the sandboxed calls into it.
//!
//! Every call gets a fresh store and instance from the adapter's
//! `InstancePre`, with a memory limit, a CPU budget enforced through epoch
//! interruption and a wall-clock timeout. A call that traps, loops, grows
//! without bound or reaches for a forbidden capability fails with a
//! [`CallError`]; the adapter stays loaded and the host carries on.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wasmtime::{Store, UpdateDeadline};

use switchboard_contract::model::{
    ChannelInfo, HttpRequest, OutboundMessage, SendResult, WebhookResult,
};
use switchboard_contract::{AdapterInstance, AdapterPre, ContractVersion};

use super::CallError;
use super::egress::{EgressHooks, EgressPolicy};
use super::engine::EPOCH_TICK;
use super::manifest::Manifest;
use super::state::{AdapterConfig, CallState};
use super::storage::ChannelStorage;
use super::token_cache::TokenCache;
use super::trace::{BatchOutcome, CallTrace, SharedTrace, WriteAhead};

/// Resource limits for each call into an adapter.
#[derive(Debug, Clone, Copy)]
pub struct SandboxLimits {
    /// Largest linear memory an instance may grow to.
    pub memory_bytes: usize,
    /// Longest an instance may run guest code in one call.
    pub cpu_budget: Duration,
    /// Longest one call may take, waiting on HTTP included.
    pub call_timeout: Duration,
    /// Longest one outbound request may wait for a connection or reply.
    pub http_timeout: Duration,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        Self {
            memory_bytes: 64 * 1024 * 1024,
            cpu_budget: Duration::from_secs(2),
            call_timeout: Duration::from_secs(30),
            http_timeout: Duration::from_secs(10),
        }
    }
}

/// Call counters for one adapter version, for metrics and benchmarks.
#[derive(Debug, Default)]
pub struct CallStats {
    /// Calls started.
    pub calls: AtomicU64,
    /// Calls that failed with a [`CallError`].
    pub failures: AtomicU64,
    /// Outbound HTTP requests sent.
    pub http_requests: AtomicU64,
}

/// One version of one adapter, ready to be called.
pub struct LoadedAdapter {
    /// Its manifest.
    pub manifest: Manifest,
    /// What it declared in `describe`.
    pub info: ChannelInfo,
    /// SHA-256 of the component bytes.
    pub digest: String,
    /// Counters.
    pub stats: Arc<CallStats>,
    /// The contract version the component implements (read from its exports).
    pub contract: ContractVersion,
    pub(super) channel: Arc<str>,
    pub(super) pre: AdapterPre<CallState>,
    pub(super) egress: Arc<EgressPolicy>,
    pub(super) client: reqwest::Client,
    pub(super) config: Arc<AdapterConfig>,
    pub(super) tokens: Arc<TokenCache>,
    pub(super) storage: ChannelStorage,
    pub(super) limits: SandboxLimits,
}

impl LoadedAdapter {
    /// The channel name.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// The limits calls run under.
    pub fn limits(&self) -> SandboxLimits {
        self.limits
    }

    /// Ask the adapter to describe its platform.
    pub async fn describe(&self) -> Result<ChannelInfo, CallError> {
        self.guarded("describe", async {
            let (mut store, adapter) = self.instantiate("describe").await?;
            let result = adapter.describe(&mut store).await;
            self.finish("describe", &store, result)
        })
        .await
    }

    /// Send a batch; one result per message, in order. A failed call loses
    /// every result: see [`LoadedAdapter::send_tracked`] to keep what it
    /// achieved.
    pub async fn send(&self, batch: &[OutboundMessage]) -> Result<Vec<SendResult>, CallError> {
        let outcome = self.send_tracked(batch, None).await;
        if let Some(error) = outcome.error {
            return Err(error);
        }
        outcome
            .results
            .into_iter()
            .map(|result| {
                result.ok_or_else(|| CallError::ContractViolation {
                    channel: self.channel.to_string(),
                    function: "send",
                    reason: "returned no result for a message".into(),
                })
            })
            .collect()
    }

    /// Send a batch and return what the call achieved per message: the
    /// outcomes it returned or reported (kept when the call fails
    /// half-way) and whether each message's request was written to the
    /// network. `write_ahead` is told before a request carrying messages
    /// leaves.
    pub async fn send_tracked(
        &self,
        batch: &[OutboundMessage],
        write_ahead: Option<Arc<dyn WriteAhead>>,
    ) -> BatchOutcome {
        let trace: SharedTrace = Arc::new(Mutex::new(CallTrace::new(batch.len(), self.contract)));
        let returned = self
            .guarded("send", async {
                let (mut store, adapter) = self
                    .instantiate_with("send", Some(Arc::clone(&trace)), write_ahead)
                    .await?;
                let result = adapter.send(&mut store, batch).await;
                self.finish("send", &store, result)
            })
            .await;
        let (returned, error) = match returned {
            Ok(results) if results.len() == batch.len() => (Some(results), None),
            Ok(results) => (
                None,
                Some(CallError::ContractViolation {
                    channel: self.channel.to_string(),
                    function: "send",
                    reason: format!(
                        "returned {} results for a batch of {}",
                        results.len(),
                        batch.len()
                    ),
                }),
            ),
            Err(error) => (None, Some(error)),
        };
        match trace.lock() {
            Ok(trace) => trace.finish(returned, error),
            Err(poisoned) => poisoned.into_inner().finish(returned, error),
        }
    }

    /// Verify and interpret a webhook request.
    pub async fn handle_webhook(&self, request: &HttpRequest) -> Result<WebhookResult, CallError> {
        self.guarded("handle-webhook", async {
            let (mut store, adapter) = self.instantiate("handle-webhook").await?;
            let result = adapter.handle_webhook(&mut store, request).await;
            self.finish("handle-webhook", &store, result)
        })
        .await
    }

    /// Run one call under the per-call timeout, counting it.
    async fn guarded<R>(
        &self,
        function: &'static str,
        call: impl Future<Output = Result<R, CallError>> + Send,
    ) -> Result<R, CallError> {
        self.stats.calls.fetch_add(1, Ordering::Relaxed);
        let outcome = tokio::time::timeout(self.limits.call_timeout, call)
            .await
            .unwrap_or_else(|_| {
                Err(CallError::Timeout {
                    channel: self.channel.to_string(),
                    function,
                    after: self.limits.call_timeout,
                })
            });
        if let Err(error) = &outcome {
            self.stats.failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(adapter = %self.channel, %error, "adapter call failed");
        }
        outcome
    }

    /// A fresh store and instance for one call.
    async fn instantiate(
        &self,
        function: &'static str,
    ) -> Result<(Store<CallState>, AdapterInstance), CallError> {
        self.instantiate_with(function, None, None).await
    }

    /// A fresh store and instance for one call, with a `send` call's trace.
    async fn instantiate_with(
        &self,
        function: &'static str,
        trace: Option<SharedTrace>,
        write_ahead: Option<Arc<dyn WriteAhead>>,
    ) -> Result<(Store<CallState>, AdapterInstance), CallError> {
        let mut store = self.new_store(trace, write_ahead);
        match self.pre.instantiate(&mut store).await {
            Ok(adapter) => Ok((store, adapter)),
            Err(error) => Err(self.classify(function, &store, &error)),
        }
    }

    fn new_store(
        &self,
        trace: Option<SharedTrace>,
        write_ahead: Option<Arc<dyn WriteAhead>>,
    ) -> Store<CallState> {
        let hooks = EgressHooks {
            policy: Arc::clone(&self.egress),
            client: self.client.clone(),
            denials: Arc::default(),
            requests: Arc::new(AtomicU64::new(0)),
            trace: trace.clone(),
            write_ahead,
        };
        let mut state = CallState::new(
            Arc::clone(&self.channel),
            hooks,
            Arc::clone(&self.config),
            Arc::clone(&self.tokens),
            self.storage.clone(),
            self.limits.memory_bytes,
        );
        state.trace = trace;
        let mut store = Store::new(self.pre.engine(), state);
        store.limiter(|state| state);
        let budget_ticks =
            (self.limits.cpu_budget.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |mut context| {
            let state = context.data_mut();
            state.cpu_ticks += 1;
            if state.cpu_ticks > budget_ticks {
                state.violations.cpu_exceeded = true;
                wasmtime::bail!("CPU budget exceeded");
            }
            Ok(UpdateDeadline::Yield(1))
        });
        store
    }

    fn finish<R>(
        &self,
        function: &'static str,
        store: &Store<CallState>,
        result: wasmtime::Result<R>,
    ) -> Result<R, CallError> {
        let state = store.data();
        let output = state.output_tail();
        if !output.is_empty() {
            tracing::debug!(adapter = %self.channel, function, output, "adapter output");
        }
        let value = result.map_err(|error| self.classify(function, store, &error))?;
        let denials = state.denials();
        if !denials.is_empty() {
            return Err(CallError::EgressDenied {
                channel: self.channel.to_string(),
                function,
                reason: denials.join("; "),
            });
        }
        Ok(value)
    }

    fn classify(
        &self,
        function: &'static str,
        store: &Store<CallState>,
        error: &wasmtime::Error,
    ) -> CallError {
        let state = store.data();
        let channel = self.channel.to_string();
        if state.violations.cpu_exceeded {
            return CallError::CpuBudgetExceeded {
                channel,
                function,
                budget: self.limits.cpu_budget,
            };
        }
        if state.violations.memory_exceeded {
            return CallError::MemoryLimitExceeded {
                channel,
                function,
                limit_bytes: self.limits.memory_bytes,
            };
        }
        if let Some(import) = state.violations.forbidden_import.clone() {
            return CallError::SandboxViolation {
                channel,
                function,
                import,
            };
        }
        let text = format!("{error:#}");
        let denials = state.denials();
        if !denials.is_empty() {
            return CallError::EgressDenied {
                channel,
                function,
                reason: denials.join("; "),
            };
        }
        let first_line = text.lines().next().unwrap_or_default().to_owned();
        let output = state.output_tail();
        let message = if output.is_empty() {
            first_line
        } else {
            format!("{first_line}; adapter output: {output}")
        };
        CallError::Trap {
            channel,
            function,
            message,
        }
    }
}
