//! The delivery engine: works the outbox continuously, one lane per channel.
//!
//! `switchboard serve` runs one for every campaign and trigger; `switchboard
//! send` runs one scoped to its campaign until the campaign settles. Several
//! engines (processes, hosts) may work one outbox: claims are exclusive, so
//! each send goes out once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use switchboard_runtime::AdapterRuntime;
use switchboard_store::{ClaimedSend, Outcome, Store, StoreError, now_ms};
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;

use crate::lane::Lane;
use crate::settings::DeliverySettings;
use crate::settled_feed::SettledFeed;

/// A send settled by this engine, for whoever watches (the `send` command's
/// results file, the API).
#[derive(Debug, Clone)]
pub struct Settled {
    /// The send as claimed.
    pub send: ClaimedSend,
    /// How it settled.
    pub outcome: Outcome,
    /// Whether it moved on to the next channel of its route.
    pub fell_back: bool,
}

/// What the lanes share.
pub(crate) struct Shared {
    pub store: Arc<dyn Store>,
    pub runtime: Arc<AdapterRuntime>,
    pub settings: DeliverySettings,
    pub owner: String,
    pub scope: Option<String>,
    pub events: SettledFeed,
    pub failure: watch::Sender<Option<StoreError>>,
    pub stopping: watch::Sender<bool>,
    /// Stop at the first database error (a one-shot `send`) rather than
    /// back off and try again (`serve`).
    pub stop_on_store_error: bool,
    /// Engines working this outbox (this one included), from their
    /// heartbeats: each takes this share of a channel's rate.
    pub nodes: AtomicU32,
}

/// How often an engine says it is alive.
const HEARTBEAT: Duration = Duration::from_secs(1);
/// An engine not heard from for this long no longer takes a share of the rate.
const HEARTBEAT_TTL_MS: i64 = 10_000;

impl Shared {
    /// Report a database error: a one-shot run stops; a server keeps going.
    pub fn store_failed(&self, error: StoreError) {
        tracing::error!(%error, "database error in the delivery engine");
        if self.stop_on_store_error {
            self.failure.send_replace(Some(error));
            self.stopping.send_replace(true);
        }
    }
}

/// Works the outbox; see the [module docs](self).
pub struct Engine {
    shared: Arc<Shared>,
    lanes: Mutex<HashMap<String, LaneHandle>>,
    supervisor: Mutex<Option<JoinHandle<()>>>,
}

struct LaneHandle {
    wake: Arc<Notify>,
    task: JoinHandle<()>,
}

/// How an engine is set up.
#[derive(Debug, Clone, Default)]
pub struct EngineOptions {
    /// Work only this campaign's sends (a one-shot `send`).
    pub scope: Option<String>,
    /// Stop at the first database error instead of retrying.
    pub stop_on_store_error: bool,
}

impl Engine {
    /// An engine over `store` and `runtime`'s adapters. Call
    /// [`Engine::start`] to begin working.
    pub fn new(
        store: Arc<dyn Store>,
        runtime: Arc<AdapterRuntime>,
        settings: DeliverySettings,
        options: EngineOptions,
    ) -> Self {
        let (failure, _) = watch::channel(None);
        let (stopping, _) = watch::channel(false);
        let owner = format!(
            "{}-{}-{:08x}",
            hostname(),
            std::process::id(),
            rand::random::<u32>()
        );
        Self {
            shared: Arc::new(Shared {
                store,
                runtime,
                settings,
                owner,
                scope: options.scope,
                events: SettledFeed::default(),
                failure,
                stopping,
                stop_on_store_error: options.stop_on_store_error,
                nodes: AtomicU32::new(1),
            }),
            lanes: Mutex::default(),
            supervisor: Mutex::default(),
        }
    }

    /// This engine's name in leases.
    pub fn owner(&self) -> &str {
        &self.shared.owner
    }

    /// Start a lane for every loaded channel, and keep doing so for
    /// channels loaded later (hot reload).
    pub fn start(self: &Arc<Self>) {
        self.ensure_lanes();
        let engine = Arc::clone(self);
        let mut stopping = self.shared.stopping.subscribe();
        let supervisor = tokio::spawn(async move {
            loop {
                engine.heartbeat().await;
                tokio::select! {
                    _ = tokio::time::sleep(HEARTBEAT) => engine.ensure_lanes(),
                    _ = stopping.changed() => break,
                }
                if *stopping.borrow() {
                    break;
                }
            }
        });
        if let Ok(mut slot) = self.supervisor.lock() {
            *slot = Some(supervisor);
        }
    }

    /// Say this engine is alive and learn how many share the outbox.
    async fn heartbeat(&self) {
        let shared = &self.shared;
        match shared
            .store
            .heartbeat(&shared.owner, now_ms(), HEARTBEAT_TTL_MS)
            .await
        {
            Ok(nodes) => shared.nodes.store(nodes.max(1), Ordering::Relaxed),
            Err(error) => tracing::warn!(%error, "could not record the engine's heartbeat"),
        }
    }

    fn ensure_lanes(&self) {
        let Ok(mut lanes) = self.lanes.lock() else {
            return;
        };
        for channel in self.shared.runtime.channels() {
            if lanes.contains_key(&channel) {
                continue;
            }
            let wake = Arc::new(Notify::new());
            let lane = Lane::new(Arc::clone(&self.shared), channel.clone(), Arc::clone(&wake));
            let task = tokio::spawn(lane.run());
            lanes.insert(channel, LaneHandle { wake, task });
        }
    }

    /// Tell `channel`'s lane there is new work now.
    pub fn wake(&self, channel: &str) {
        if let Ok(lanes) = self.lanes.lock()
            && let Some(lane) = lanes.get(channel)
        {
            lane.wake.notify_one();
        }
    }

    /// Tell every lane there is new work now.
    pub fn wake_all(&self) {
        if let Ok(lanes) = self.lanes.lock() {
            for lane in lanes.values() {
                lane.wake.notify_one();
            }
        }
    }

    /// Sends as this engine settles them, every one and in order (a
    /// watcher that falls behind holds them queued; see `settled_feed`).
    pub fn subscribe(&self) -> mpsc::UnboundedReceiver<Settled> {
        self.shared.events.subscribe()
    }

    /// The database error that stopped the engine, if one did.
    pub fn failure(&self) -> watch::Receiver<Option<StoreError>> {
        self.shared.failure.subscribe()
    }

    /// Stop claiming, let calls in flight finish and settle, then return.
    pub async fn shutdown(&self) {
        self.shared.stopping.send_replace(true);
        let supervisor = self.supervisor.lock().ok().and_then(|mut s| s.take());
        if let Some(supervisor) = supervisor {
            let _ = supervisor.await;
        }
        let lanes: Vec<LaneHandle> = match self.lanes.lock() {
            Ok(mut lanes) => lanes.drain().map(|(_, lane)| lane).collect(),
            Err(_) => Vec::new(),
        };
        for lane in &lanes {
            lane.wake.notify_one();
        }
        for lane in lanes {
            let _ = lane.task.await;
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "host".to_owned())
}
