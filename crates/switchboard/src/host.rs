//! The assembled host: configuration, store, loaded adapters and delivery,
//! shared by every command and by the server.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use futures::future::BoxFuture;
use switchboard_contract::model::StorageError;
use switchboard_delivery::activation;
use switchboard_delivery::dispatch::Dispatcher;
use switchboard_runtime::AdapterRuntime;
use switchboard_runtime::storage::{StorageBackend, StorageWrite, quota};
use switchboard_store::{KvEntry, Store};

use crate::config::Config;

/// Everything a command needs: configuration, store, loaded adapters and
/// the dispatcher that sends through them.
pub struct Host {
    /// The configuration.
    pub config: Config,
    /// The database.
    pub store: Store,
    /// The adapters.
    pub runtime: Arc<AdapterRuntime>,
    /// Sends through the adapters.
    pub dispatcher: Arc<Dispatcher>,
}

impl Host {
    /// Load the configuration at `path`, open the store and load every
    /// adapter package. A bad package is reported and skipped.
    pub async fn start(path: &Path) -> anyhow::Result<Self> {
        let config = Config::load(path)?;
        let grants = config.grants(path)?;
        let store = Store::open(&config.database)
            .with_context(|| format!("opening the database {}", config.database.display()))?;
        let runtime = Arc::new(AdapterRuntime::with_storage(
            config.runtime_options(),
            grants,
            Arc::new(StoreStorage(store.clone())),
        )?);
        let loaded = runtime
            .load_dir(&config.adapters_dir)
            .await
            .with_context(|| {
                format!(
                    "loading adapters from {} (run `make adapters`)",
                    config.adapters_dir.display()
                )
            })?;
        for result in loaded {
            if let Err(error) = result {
                tracing::error!("skipping adapter: {error}");
                eprintln!("warning: skipping adapter: {error}");
            }
        }
        let overrides = config
            .channels
            .iter()
            .filter_map(|(name, channel)| {
                channel.messages_per_second.map(|rate| (name.clone(), rate))
            })
            .collect();
        let dispatcher = Arc::new(Dispatcher::new(
            Arc::clone(&runtime),
            store.clone(),
            config.dispatch.clone(),
            overrides,
        ));
        Ok(Self {
            config,
            store,
            runtime,
            dispatcher,
        })
    }

    /// What running a campaign needs.
    pub fn delivery(&self) -> activation::Context {
        activation::Context {
            runtime: Arc::clone(&self.runtime),
            store: self.store.clone(),
            dispatcher: Arc::clone(&self.dispatcher),
        }
    }
}

/// Adapters' durable storage in the host's database.
struct StoreStorage(Store);

fn unavailable(error: switchboard_store::StoreError) -> StorageError {
    StorageError::Unavailable(error.to_string())
}

impl StorageBackend for StoreStorage {
    fn get<'a>(
        &'a self,
        channel: &'a str,
        key: &'a str,
        now_ms: i64,
    ) -> BoxFuture<'a, Result<Option<String>, StorageError>> {
        Box::pin(async move { self.0.kv_get(channel, key, now_ms).map_err(unavailable) })
    }

    fn put<'a>(
        &'a self,
        write: StorageWrite<'a>,
        now_ms: i64,
    ) -> BoxFuture<'a, Result<(), StorageError>> {
        Box::pin(async move {
            match self
                .0
                .kv_put(&entry(&write), false, now_ms)
                .map_err(unavailable)?
            {
                Some(_) => Ok(()),
                None => Err(quota(write.max_entries)),
            }
        })
    }

    fn put_if_absent<'a>(
        &'a self,
        write: StorageWrite<'a>,
        now_ms: i64,
    ) -> BoxFuture<'a, Result<String, StorageError>> {
        Box::pin(async move {
            self.0
                .kv_put(&entry(&write), true, now_ms)
                .map_err(unavailable)?
                .ok_or_else(|| quota(write.max_entries))
        })
    }

    fn delete<'a>(
        &'a self,
        channel: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<(), StorageError>> {
        Box::pin(async move { self.0.kv_delete(channel, key).map_err(unavailable) })
    }
}

fn entry<'a>(write: &StorageWrite<'a>) -> KvEntry<'a> {
    KvEntry {
        channel: write.channel,
        key: write.key,
        value: write.value,
        expires_ms: write.expires_ms,
        max_entries: write.max_entries,
    }
}
