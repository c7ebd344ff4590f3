//! The simulated WeChat Official Accounts.
//!
//! Not implemented yet: serves no routes.

use std::sync::Arc;

use axum::Router;
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::faults::Faults;

/// Configuration of the simulated WeChat Official Accounts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WeChatConfig {}

/// Shared state of the simulated WeChat Official Accounts.
#[derive(Debug)]
pub struct WeChatState {
    _config: WeChatConfig,
}

impl WeChatState {
    /// Start the platform: its state and any background tasks (webhook queues).
    pub(crate) fn start(
        config: WeChatConfig,
        _clock: Arc<Clock>,
        _faults: Arc<Faults>,
    ) -> anyhow::Result<(Arc<Self>, Vec<JoinHandle<()>>)> {
        Ok((Arc::new(Self { _config: config }), Vec::new()))
    }
}

/// The platform's API routes.
pub(crate) fn api_router(_state: Arc<WeChatState>) -> Router {
    Router::new()
}

/// The platform's `/_sim/wechat` control routes.
pub(crate) fn control_router(_state: Arc<WeChatState>) -> Router {
    Router::new()
}

/// In-process control of the simulated WeChat Official Accounts.
#[derive(Debug, Clone)]
pub struct WeChatControl {
    state: Arc<WeChatState>,
}

impl WeChatControl {
    pub(crate) fn new(state: Arc<WeChatState>) -> Self {
        Self { state }
    }

    /// The shared state (for this module's own helpers).
    #[allow(dead_code)]
    pub(crate) fn state(&self) -> &Arc<WeChatState> {
        &self.state
    }
}
