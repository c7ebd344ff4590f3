//! Errors from loading adapters and from calling them.

use std::path::PathBuf;
use std::time::Duration;

/// Loading or preparing an adapter failed.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The manifest is malformed or declares something this host refuses.
    #[error("{path}: invalid manifest: {reason}")]
    InvalidManifest {
        /// The manifest file.
        path: PathBuf,
        /// Which field and why.
        reason: String,
    },
    /// The component does not implement the contract its manifest names.
    #[error("{path}: not a valid `switchboard:channel` adapter: {reason}")]
    InvalidComponent {
        /// The component file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The adapter's `describe` disagrees with its manifest or failed.
    #[error("adapter `{channel}`: {reason}")]
    InvalidDescription {
        /// The channel.
        channel: String,
        /// What is wrong.
        reason: String,
    },
    /// Two packages claim the same channel.
    #[error("channel `{channel}` is provided by both {first} and {second}")]
    DuplicateChannel {
        /// The channel.
        channel: String,
        /// One manifest.
        first: PathBuf,
        /// The other manifest.
        second: PathBuf,
    },
    /// A package claims a channel the operator assigned to another folder.
    #[error(
        "channel `{channel}` is configured to load from {expected}, not {found}; set `[channels.{channel}] package` to choose another package"
    )]
    UnassignedPackage {
        /// The channel.
        channel: String,
        /// The folder the configuration names.
        expected: PathBuf,
        /// The manifest that claimed the channel.
        found: PathBuf,
    },
    /// The package's signature does not satisfy the operator's trust
    /// settings (unsigned, tampered, or signed by an untrusted key).
    #[error("{path}: package refused: {reason}")]
    Untrusted {
        /// The package folder.
        path: PathBuf,
        /// Why, naming the keys involved.
        reason: String,
    },
    /// The component is not the one the operator pinned.
    #[error("{path}: SHA-256 {actual} does not match the pinned digest {pinned}")]
    DigestMismatch {
        /// The component file.
        path: PathBuf,
        /// The operator's digest.
        pinned: String,
        /// The component's.
        actual: String,
    },
    /// The operator's grant for a channel is unusable.
    #[error("channel `{channel}`: {reason}")]
    InvalidGrant {
        /// The channel.
        channel: String,
        /// Which key and why.
        reason: String,
    },
    /// The wasmtime engine could not be set up.
    #[error("wasm engine: {0}")]
    Engine(String),
}

/// One call into an adapter failed. The host carries on; only this call is lost.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CallError {
    /// The adapter trapped (panic, `unreachable`, bad memory access).
    #[error("adapter `{channel}` trapped in `{function}`: {message}")]
    Trap {
        /// The channel.
        channel: String,
        /// The export called.
        function: &'static str,
        /// The trap and what the adapter printed before it.
        message: String,
    },
    /// The adapter ran longer than its CPU budget.
    #[error("adapter `{channel}` exceeded its CPU budget of {budget:?} in `{function}`")]
    CpuBudgetExceeded {
        /// The channel.
        channel: String,
        /// The export called.
        function: &'static str,
        /// The budget.
        budget: Duration,
    },
    /// The adapter tried to use more memory than allowed.
    #[error("adapter `{channel}` exceeded its memory limit of {limit_bytes} bytes in `{function}`")]
    MemoryLimitExceeded {
        /// The channel.
        channel: String,
        /// The export called.
        function: &'static str,
        /// The limit.
        limit_bytes: usize,
    },
    /// The call took longer than the per-call timeout, waiting included.
    #[error("adapter `{channel}` did not finish `{function}` within {after:?}")]
    Timeout {
        /// The channel.
        channel: String,
        /// The export called.
        function: &'static str,
        /// The timeout.
        after: Duration,
    },
    /// The adapter tried to reach a host it may not reach.
    #[error("adapter `{channel}` was denied egress in `{function}`: {reason}")]
    EgressDenied {
        /// The channel.
        channel: String,
        /// The export called.
        function: &'static str,
        /// Which request and why.
        reason: String,
    },
    /// The adapter used a capability adapters do not get.
    #[error(
        "adapter `{channel}` tried to use `{import}` in `{function}`: adapters have no filesystem, environment variables or sockets"
    )]
    SandboxViolation {
        /// The channel.
        channel: String,
        /// The export called.
        function: &'static str,
        /// The import it called.
        import: String,
    },
    /// The call would have made the host hold more than a host-wide bound
    /// allows (log volume, token cache, platform id size, webhook reply or
    /// events).
    #[error("adapter `{channel}` passed a host bound in `{function}`: {bound}")]
    BoundExceeded {
        /// The channel.
        channel: String,
        /// The export called.
        function: &'static str,
        /// Which bound, with the figures and the setting that raises it.
        bound: String,
    },
    /// The adapter broke the contract (e.g. wrong number of results).
    #[error("adapter `{channel}` broke the contract in `{function}`: {reason}")]
    ContractViolation {
        /// The channel.
        channel: String,
        /// The export called.
        function: &'static str,
        /// What it did.
        reason: String,
    },
}
