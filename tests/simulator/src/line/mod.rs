//! The simulated LINE Messaging API.
//!
//! Not implemented yet: serves no routes.

use std::sync::Arc;

use axum::Router;
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::faults::Faults;

/// Configuration of the simulated LINE Messaging API.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineConfig {}

/// Shared state of the simulated LINE Messaging API.
#[derive(Debug)]
pub struct LineState {
    _config: LineConfig,
}

impl LineState {
    /// Start the platform: its state and any background tasks (webhook queues).
    pub(crate) fn start(
        config: LineConfig,
        _clock: Arc<Clock>,
        _faults: Arc<Faults>,
    ) -> anyhow::Result<(Arc<Self>, Vec<JoinHandle<()>>)> {
        Ok((Arc::new(Self { _config: config }), Vec::new()))
    }
}

/// The platform's API routes.
pub(crate) fn api_router(_state: Arc<LineState>) -> Router {
    Router::new()
}

/// The platform's `/_sim/line` control routes.
pub(crate) fn control_router(_state: Arc<LineState>) -> Router {
    Router::new()
}

/// In-process control of the simulated LINE Messaging API.
#[derive(Debug, Clone)]
pub struct LineControl {
    state: Arc<LineState>,
}

impl LineControl {
    pub(crate) fn new(state: Arc<LineState>) -> Self {
        Self { state }
    }

    /// The shared state (for this module's own helpers).
    #[allow(dead_code)]
    pub(crate) fn state(&self) -> &Arc<LineState> {
        &self.state
    }
}
