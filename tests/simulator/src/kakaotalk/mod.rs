//! The simulated KakaoTalk Bizmessage (NHN Cloud).
//!
//! Not implemented yet: serves no routes.

use std::sync::Arc;

use axum::Router;
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::faults::Faults;

/// Configuration of the simulated KakaoTalk Bizmessage (NHN Cloud).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KakaoTalkConfig {}

/// Shared state of the simulated KakaoTalk Bizmessage (NHN Cloud).
#[derive(Debug)]
pub struct KakaoTalkState {
    _config: KakaoTalkConfig,
}

impl KakaoTalkState {
    /// Start the platform: its state and any background tasks (webhook queues).
    pub(crate) fn start(
        config: KakaoTalkConfig,
        _clock: Arc<Clock>,
        _faults: Arc<Faults>,
    ) -> anyhow::Result<(Arc<Self>, Vec<JoinHandle<()>>)> {
        Ok((Arc::new(Self { _config: config }), Vec::new()))
    }
}

/// The platform's API routes.
pub(crate) fn api_router(_state: Arc<KakaoTalkState>) -> Router {
    Router::new()
}

/// The platform's `/_sim/kakaotalk` control routes.
pub(crate) fn control_router(_state: Arc<KakaoTalkState>) -> Router {
    Router::new()
}

/// In-process control of the simulated KakaoTalk Bizmessage (NHN Cloud).
#[derive(Debug, Clone)]
pub struct KakaoTalkControl {
    state: Arc<KakaoTalkState>,
}

impl KakaoTalkControl {
    pub(crate) fn new(state: Arc<KakaoTalkState>) -> Self {
        Self { state }
    }

    /// The shared state (for this module's own helpers).
    #[allow(dead_code)]
    pub(crate) fn state(&self) -> &Arc<KakaoTalkState> {
        &self.state
    }
}
