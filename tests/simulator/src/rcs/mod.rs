//! The simulated Google RCS Business Messaging.
//!
//! Not implemented yet: serves no routes.

use std::sync::Arc;

use axum::Router;
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::faults::Faults;

/// Configuration of the simulated Google RCS Business Messaging.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RcsConfig {}

/// Shared state of the simulated Google RCS Business Messaging.
#[derive(Debug)]
pub struct RcsState {
    _config: RcsConfig,
}

impl RcsState {
    /// Start the platform: its state and any background tasks (webhook queues).
    pub(crate) fn start(
        config: RcsConfig,
        _clock: Arc<Clock>,
        _faults: Arc<Faults>,
    ) -> anyhow::Result<(Arc<Self>, Vec<JoinHandle<()>>)> {
        Ok((Arc::new(Self { _config: config }), Vec::new()))
    }
}

/// The platform's API routes.
pub(crate) fn api_router(_state: Arc<RcsState>) -> Router {
    Router::new()
}

/// The platform's `/_sim/rcs` control routes.
pub(crate) fn control_router(_state: Arc<RcsState>) -> Router {
    Router::new()
}

/// In-process control of the simulated Google RCS Business Messaging.
#[derive(Debug, Clone)]
pub struct RcsControl {
    state: Arc<RcsState>,
}

impl RcsControl {
    pub(crate) fn new(state: Arc<RcsState>) -> Self {
        Self { state }
    }

    /// The shared state (for this module's own helpers).
    #[allow(dead_code)]
    pub(crate) fn state(&self) -> &Arc<RcsState> {
        &self.state
    }
}
