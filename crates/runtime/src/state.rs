//! What one adapter call's store holds, and the host imports it serves.
//!
//! A fresh [`CallState`] is built for every call: no WASI filesystem,
//! environment or sockets, stdout and stderr captured into memory (and
//! shown in errors and debug logs), egress through [`EgressHooks`], and the
//! adapter's declared configuration only.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use switchboard_contract::Imports;
use switchboard_contract::model::{
    LogLevel, OutgoingRequest, OutgoingResult, SendResult, StorageError,
};

use super::SandboxLimits;
use super::bounds;
use super::egress::EgressHooks;
use super::redact::Redactor;
use super::storage::ChannelStorage;
use super::token_cache::{RefreshGuard, TokenCache};
use super::trace::SharedTrace;

/// Bytes of guest stdout/stderr kept per call.
const OUTPUT_CAPTURE_BYTES: usize = 64 * 1024;

/// Configuration visible to one adapter: only the keys its manifest declares.
#[derive(Debug, Default, Clone)]
pub struct AdapterConfig {
    /// Non-secret settings.
    pub settings: HashMap<String, String>,
    /// Secret values. Never logged.
    pub secrets: HashMap<String, String>,
    /// Blanks the secret values (and URL query strings) in text the
    /// adapter hands back.
    pub redactor: Redactor,
}

/// Why a call was stopped by the sandbox, recorded as it happens.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Violations {
    /// The forbidden import the adapter called, if any.
    pub forbidden_import: Option<String>,
    /// The adapter tried to grow memory past its limit.
    pub memory_exceeded: bool,
    /// The adapter ran past its CPU budget.
    pub cpu_exceeded: bool,
    /// The host-wide bound the adapter passed, with the figures.
    pub bound_exceeded: Option<String>,
}

/// The store data of one call.
pub struct CallState {
    /// Channel name, for log lines.
    pub channel: Arc<str>,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: EgressHooks,
    table: ResourceTable,
    /// Captured guest stdout and stderr.
    pub output: MemoryOutputPipe,
    config: Arc<AdapterConfig>,
    tokens: Arc<TokenCache>,
    held_locks: HashMap<String, RefreshGuard>,
    storage: ChannelStorage,
    /// The record of a `send` call: reported outcomes and request fates.
    pub trace: Option<SharedTrace>,
    limits: SandboxLimits,
    /// Log lines and bytes written through the `log` import.
    logged: (usize, usize),
    /// What the sandbox stopped.
    pub violations: Violations,
}

impl CallState {
    /// Build the state for one call.
    pub fn new(
        channel: Arc<str>,
        hooks: EgressHooks,
        config: Arc<AdapterConfig>,
        tokens: Arc<TokenCache>,
        storage: ChannelStorage,
        limits: SandboxLimits,
    ) -> Self {
        let output = MemoryOutputPipe::new(OUTPUT_CAPTURE_BYTES);
        let wasi = WasiCtx::builder()
            .stdout(output.clone())
            .stderr(output.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        Self {
            channel,
            wasi,
            http: WasiHttpCtx::new(),
            hooks,
            table: ResourceTable::new(),
            output,
            config,
            tokens,
            held_locks: HashMap::new(),
            storage,
            trace: None,
            limits,
            logged: (0, 0),
            violations: Violations::default(),
        }
    }

    /// Record the first host-wide bound this call passed; the call fails
    /// with it when it returns.
    fn exceeded(&mut self, bound: String) {
        if self.violations.bound_exceeded.is_none() {
            tracing::warn!(adapter = &*self.channel, %bound, "adapter passed a host bound");
            self.violations.bound_exceeded = Some(bound);
        }
    }

    /// The last few lines the guest printed, for error messages.
    pub fn output_tail(&self) -> String {
        let bytes = self.output.contents();
        let text = String::from_utf8_lossy(&bytes);
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let start = lines.len().saturating_sub(5);
        let mut tail =
            bounds::escape_log_line(&self.config.redactor.redact(&lines[start..].join(" | ")));
        bounds::cut(&mut tail, 1024);
        tail
    }

    /// Requests the egress hooks refused during this call.
    pub fn denials(&self) -> Vec<String> {
        self.hooks
            .denials
            .lock()
            .map(|list| list.clone())
            .unwrap_or_default()
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for CallState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            hooks: &mut self.hooks,
            table: &mut self.table,
            ctx: &mut self.http,
        }
    }
}

impl ResourceLimiter for CallState {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limits.memory_bytes {
            self.violations.memory_exceeded = true;
            wasmtime::bail!(
                "memory limit exceeded: tried to grow to {desired} bytes, limit is {} bytes",
                self.limits.memory_bytes
            );
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

impl Imports for CallState {
    async fn setting(&mut self, key: String) -> Option<String> {
        self.config.settings.get(&key).cloned()
    }

    async fn secret(&mut self, key: String) -> Option<String> {
        self.config.secrets.get(&key).cloned()
    }

    async fn token_get(&mut self, key: String) -> Option<String> {
        self.tokens.get(&key)
    }

    async fn token_lock(&mut self, key: String) -> Option<String> {
        if self.held_locks.contains_key(&key) {
            return self.tokens.get(&key);
        }
        let (guard, value) = self.tokens.lock(&key).await;
        if value.is_some() {
            return value;
        }
        self.held_locks.insert(key, guard);
        None
    }

    async fn token_set(&mut self, key: String, value: String, ttl_seconds: u32) {
        if let Err(refused) =
            self.tokens
                .set(&key, &value, Duration::from_secs(u64::from(ttl_seconds)))
        {
            self.exceeded(refused.to_string());
        }
        self.held_locks.remove(&key);
    }

    async fn token_invalidate(&mut self, key: String) {
        self.tokens.invalidate(&key);
    }

    async fn storage_get(&mut self, key: String) -> Option<String> {
        self.storage.get(&key).await
    }

    async fn storage_put(
        &mut self,
        key: String,
        value: String,
        ttl_seconds: Option<u32>,
    ) -> Result<(), StorageError> {
        self.storage.put(&key, &value, ttl_seconds).await
    }

    async fn storage_put_if_absent(
        &mut self,
        key: String,
        value: String,
        ttl_seconds: Option<u32>,
    ) -> Result<String, StorageError> {
        self.storage.put_if_absent(&key, &value, ttl_seconds).await
    }

    async fn storage_delete(&mut self, key: String) {
        self.storage.delete(&key).await;
    }

    async fn report_outcome(&mut self, index: u32, outcome: SendResult) {
        let mut outcome = outcome;
        if let Err(bound) = bounds::check_send_result(&mut outcome, &self.limits) {
            self.exceeded(format!("reported {bound}"));
            return;
        }
        bounds::redact_send_result(&mut outcome, &self.config.redactor);
        let Some(trace) = &self.trace else {
            tracing::warn!(
                adapter = &*self.channel,
                "adapter reported an outcome outside `send`; ignored"
            );
            return;
        };
        let accepted = trace
            .lock()
            .map(|mut trace| trace.report(index, outcome))
            .unwrap_or(false);
        if !accepted {
            tracing::warn!(
                adapter = &*self.channel,
                index,
                "adapter reported an outcome for a message outside its batch; ignored"
            );
        }
    }

    async fn http_send(&mut self, requests: Vec<OutgoingRequest>) -> Vec<OutgoingResult> {
        // Every reply is copied into the adapter's memory: more than its
        // memory limit in all could never arrive.
        self.hooks.perform(requests, self.limits.memory_bytes).await
    }

    async fn log(&mut self, level: LogLevel, message: String) {
        // Past the per-call budget, lines are dropped (with one warning)
        // rather than failing the call: a chatty adapter must not turn a
        // send the platform accepted into an uncertain one.
        let (lines, bytes) = self.logged;
        self.logged = (lines + 1, bytes.saturating_add(message.len()));
        let over_lines = self.logged.0 > self.limits.max_log_lines;
        let over_bytes = self.logged.1 > self.limits.max_log_bytes;
        if over_lines || over_bytes {
            if lines <= self.limits.max_log_lines && bytes <= self.limits.max_log_bytes {
                tracing::warn!(
                    adapter = &*self.channel,
                    max_log_lines = self.limits.max_log_lines,
                    max_log_bytes = self.limits.max_log_bytes,
                    "adapter logged past its per-call budget; the rest of this call's log is dropped"
                );
            }
            return;
        }
        let message = bounds::escape_log_line(&self.config.redactor.redact(&message));
        let channel = &*self.channel;
        match level {
            LogLevel::Debug => tracing::debug!(adapter = channel, "{message}"),
            LogLevel::Info => tracing::info!(adapter = channel, "{message}"),
            LogLevel::Warn => tracing::warn!(adapter = channel, "{message}"),
            LogLevel::Error => tracing::error!(adapter = channel, "{message}"),
        }
    }
}
