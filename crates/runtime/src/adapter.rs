//! A loaded adapter version and the sandboxed calls into it.
//!
//! Every call gets a fresh store and instance from the adapter's
//! `InstancePre`, with a memory limit, a CPU budget (the thread CPU time its
//! polls used, checked at every epoch tick, so that a burning guest is
//! stopped at its budget however busy the machine is) and a wall-clock
//! timeout. A call that traps, loops, grows without bound, passes one of the
//! host-wide bounds of [`SandboxLimits`] or reaches for a forbidden
//! capability fails with a [`CallError`]; the adapter stays loaded and the
//! host carries on.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wasmtime::{Store, UpdateDeadline};

use super::cpu::{CpuAccount, Metered};

use switchboard_contract::model::{
    ChannelInfo, HttpRequest, OutboundMessage, SendResult, WebhookResult,
};
use switchboard_contract::{AdapterInstance, AdapterPre, ContractVersion};

use super::CallError;
use super::bounds;
use super::egress::{EgressClients, EgressHooks, EgressLimits, EgressPolicy};
use super::manifest::Manifest;
use super::state::{AdapterConfig, CallState};
use super::storage::ChannelStorage;
use super::token_cache::{TokenCache, TokenLimits};
use super::trace::{BatchOutcome, CallTrace, SharedTrace, WriteAhead};

/// Resource limits for each call into an adapter, and the bounds on what a
/// call may make the host hold beyond its own instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SandboxLimits {
    /// Largest linear memory an instance may grow to.
    pub memory_bytes: usize,
    /// Most CPU time an instance may spend in one call.
    pub cpu_budget: Duration,
    /// Longest one call may take, waiting on HTTP included.
    pub call_timeout: Duration,
    /// Longest one outbound request may wait for a connection or reply.
    pub http_timeout: Duration,
    /// Outgoing requests one call may have in flight at once.
    pub max_requests_in_flight: usize,
    /// Largest body of one outgoing request or its response.
    pub max_http_body_bytes: usize,
    /// Lines one call may write through the `log` import.
    pub max_log_lines: usize,
    /// Bytes one call may write through the `log` import.
    pub max_log_bytes: usize,
    /// Largest platform message id a send result may carry.
    pub max_platform_id_bytes: usize,
    /// Longest failure message kept; longer ones are cut.
    pub max_failure_message_bytes: usize,
    /// Largest webhook reply body.
    pub max_webhook_reply_bytes: usize,
    /// Most events one webhook call may return.
    pub max_webhook_events: usize,
    /// Bounds on each channel's token cache.
    pub token_cache: TokenLimits,
    /// Instances the runtime holds pooled slots for (memory, tables, fiber
    /// stack), for every adapter together. A call beyond it waits, within
    /// its timeout, for one to come free.
    pub max_instances: u32,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        Self {
            memory_bytes: 64 * 1024 * 1024,
            cpu_budget: Duration::from_secs(2),
            call_timeout: Duration::from_secs(30),
            http_timeout: Duration::from_secs(10),
            max_requests_in_flight: 32,
            max_http_body_bytes: 4 * 1024 * 1024,
            max_log_lines: 200,
            max_log_bytes: 64 * 1024,
            max_platform_id_bytes: 256,
            max_failure_message_bytes: 1024,
            max_webhook_reply_bytes: 1024 * 1024,
            max_webhook_events: 1_000,
            token_cache: TokenLimits::default(),
            max_instances: 256,
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
    /// The package folder it was loaded from.
    pub package_dir: std::path::PathBuf,
    /// The operator's name for the key that signed the package; `None` for
    /// an unsigned package the configuration allowed.
    pub signer: Option<String>,
    /// Counters.
    pub stats: Arc<CallStats>,
    /// The contract version the component implements (read from its exports).
    pub contract: ContractVersion,
    pub(super) channel: Arc<str>,
    pub(super) pre: AdapterPre<CallState>,
    pub(super) egress: Arc<EgressPolicy>,
    pub(super) clients: EgressClients,
    pub(super) config: Arc<AdapterConfig>,
    pub(super) tokens: Arc<TokenCache>,
    pub(super) storage: ChannelStorage,
    pub(super) limits: SandboxLimits,
    /// The engine's pooled instance slots, shared by every adapter of the
    /// runtime: a call waits for one (within its timeout) rather than fail
    /// when every slot is in use.
    pub(super) instance_slots: Arc<tokio::sync::Semaphore>,
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

    /// Entries and bytes the channel's token cache holds now, for metrics
    /// and for checking its budget.
    pub fn token_usage(&self) -> (usize, usize) {
        self.tokens.usage()
    }

    /// Ask the adapter to describe its platform.
    pub async fn describe(&self) -> Result<ChannelInfo, CallError> {
        self.guarded("describe", |cpu| async move {
            let (mut store, adapter) = self.instantiate_with("describe", cpu, None, None).await?;
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
        let call_trace = Arc::clone(&trace);
        let returned = self
            .guarded("send", |cpu| async move {
                let (mut store, adapter) = self
                    .instantiate_with("send", cpu, Some(call_trace), write_ahead)
                    .await?;
                let result = adapter.send(&mut store, batch).await;
                let results = self.finish("send", &store, result)?;
                self.check_send_results(results)
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
        self.guarded("handle-webhook", |cpu| async move {
            let (mut store, adapter) = self
                .instantiate_with("handle-webhook", cpu, None, None)
                .await?;
            let result = adapter.handle_webhook(&mut store, request).await;
            let result = self.finish("handle-webhook", &store, result)?;
            self.check_webhook_result(result)
        })
        .await
    }

    /// Run one call under the per-call timeout, metering its CPU time,
    /// counting it.
    async fn guarded<R, F>(
        &self,
        function: &'static str,
        call: impl FnOnce(Arc<CpuAccount>) -> F,
    ) -> Result<R, CallError>
    where
        F: Future<Output = Result<R, CallError>> + Send,
    {
        self.stats.calls.fetch_add(1, Ordering::Relaxed);
        let cpu = Arc::new(CpuAccount::default());
        let call = async {
            // The semaphore is never closed, so this always holds a slot.
            let _slot = self.instance_slots.acquire().await.ok();
            Metered::new(call(Arc::clone(&cpu)), cpu).await
        };
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

    /// A fresh store and instance for one call, with a `send` call's trace.
    async fn instantiate_with(
        &self,
        function: &'static str,
        cpu: Arc<CpuAccount>,
        trace: Option<SharedTrace>,
        write_ahead: Option<Arc<dyn WriteAhead>>,
    ) -> Result<(Store<CallState>, AdapterInstance), CallError> {
        let mut store = self.new_store(cpu, trace, write_ahead);
        match self.pre.instantiate(&mut store).await {
            Ok(adapter) => Ok((store, adapter)),
            Err(error) => Err(self.classify(function, &store, &error)),
        }
    }

    fn new_store(
        &self,
        cpu: Arc<CpuAccount>,
        trace: Option<SharedTrace>,
        write_ahead: Option<Arc<dyn WriteAhead>>,
    ) -> Store<CallState> {
        let hooks = EgressHooks {
            policy: Arc::clone(&self.egress),
            clients: self.clients.clone(),
            limits: EgressLimits {
                max_in_flight: self.limits.max_requests_in_flight,
                max_body_bytes: self.limits.max_http_body_bytes,
            },
            denials: Arc::default(),
            requests: Arc::new(AtomicU64::new(0)),
            in_flight: Arc::default(),
            trace: trace.clone(),
            write_ahead,
        };
        let mut state = CallState::new(
            Arc::clone(&self.channel),
            hooks,
            Arc::clone(&self.config),
            Arc::clone(&self.tokens),
            self.storage.clone(),
            self.limits,
        );
        state.trace = trace;
        let mut store = Store::new(self.pre.engine(), state);
        store.limiter(|state| state);
        let budget = self.limits.cpu_budget;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |mut context| {
            // Runs inside the poll that runs the guest, on its thread.
            if cpu.spent() > budget {
                context.data_mut().violations.cpu_exceeded = true;
                wasmtime::bail!("CPU budget exceeded");
            }
            Ok(UpdateDeadline::Yield(1))
        });
        store
    }

    /// Bound and redact what `send` returned.
    fn check_send_results(
        &self,
        mut results: Vec<SendResult>,
    ) -> Result<Vec<SendResult>, CallError> {
        for result in &mut results {
            bounds::check_send_result(result, &self.limits).map_err(|bound| {
                CallError::BoundExceeded {
                    channel: self.channel.to_string(),
                    function: "send",
                    bound: format!("returned {bound}"),
                }
            })?;
            bounds::redact_send_result(result, &self.config.redactor);
        }
        Ok(results)
    }

    /// Bound and redact what `handle-webhook` returned.
    fn check_webhook_result(&self, mut result: WebhookResult) -> Result<WebhookResult, CallError> {
        bounds::check_webhook_result(&mut result, &self.limits).map_err(|bound| {
            CallError::BoundExceeded {
                channel: self.channel.to_string(),
                function: "handle-webhook",
                bound: format!("returned {bound}"),
            }
        })?;
        bounds::redact_webhook_result(&mut result, &self.config.redactor);
        Ok(result)
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
        if let Some(bound) = &state.violations.bound_exceeded {
            return Err(CallError::BoundExceeded {
                channel: self.channel.to_string(),
                function,
                bound: bound.clone(),
            });
        }
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
        if let Some(bound) = state.violations.bound_exceeded.clone() {
            return CallError::BoundExceeded {
                channel,
                function,
                bound,
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
