//! The assembled host: configuration, store, loaded adapters and delivery
//! settings, shared by every command and by the server.

use std::path::Path;
use std::sync::Arc;

use futures::future::BoxFuture;
use switchboard_contract::model::StorageError;
use switchboard_delivery::DeliverySettings;
use switchboard_runtime::AdapterRuntime;
use switchboard_runtime::storage::{StorageBackend, StorageWrite, quota};
use switchboard_store::{KvEntry, PostgresStore, SqliteStore, Store};

use crate::config::{Config, Database};

/// Everything a command needs.
pub struct Host {
    /// The configuration.
    pub config: Config,
    /// The database.
    pub store: Arc<dyn Store>,
    /// The adapters.
    pub runtime: Arc<AdapterRuntime>,
    /// How the delivery engine sends.
    pub settings: DeliverySettings,
}

impl Host {
    /// Load the configuration at `path`, open the store and load every
    /// adapter package. A bad package is reported and skipped.
    pub async fn start(path: &Path) -> anyhow::Result<Self> {
        let config = Config::load(path)?;
        let grants = config.grants(path)?;
        let store = open_store(&config).await?;
        let runtime = Arc::new(AdapterRuntime::with_storage(
            config.runtime_options(),
            grants,
            Arc::new(StoreStorage(Arc::clone(&store))),
        )?);
        let loaded = runtime
            .load_dir(&config.adapters_dir)
            .await
            .map_err(|error| {
                anyhow::anyhow!(
                    "loading adapters from {} (run `make adapters`): {error}",
                    config.adapters_dir.display()
                )
            })?;
        // Logged once: every command's log shows errors on stderr, so a
        // second, plain copy there would say the same thing twice.
        for result in loaded {
            if let Err(error) = result {
                tracing::error!("skipping adapter: {error}");
            }
        }
        let settings = config.delivery_settings();
        Ok(Self {
            config,
            store,
            runtime,
            settings,
        })
    }
}

/// Open the database the configuration names: the SQLite file, or a
/// connection pool to the PostgreSQL server (migrated on open, safely when
/// several hosts start at once).
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    Ok(match config.database() {
        Database::Sqlite(file) => Arc::new(SqliteStore::open(&file)?),
        Database::Postgres(url) => Arc::new(PostgresStore::connect(&url).await?),
    })
}

/// Adapters' durable storage in the host's database.
struct StoreStorage(Arc<dyn Store>);

fn unavailable(error: switchboard_store::StoreError) -> StorageError {
    StorageError::Unavailable(error.to_string())
}

fn entry(write: &StorageWrite<'_>) -> KvEntry {
    KvEntry {
        channel: write.channel.to_owned(),
        key: write.key.to_owned(),
        value: write.value.to_owned(),
        expires_ms: write.expires_ms,
        max_entries: write.max_entries,
        max_bytes: write.max_bytes,
    }
}

impl StorageBackend for StoreStorage {
    fn get<'a>(
        &'a self,
        channel: &'a str,
        key: &'a str,
        now_ms: i64,
    ) -> BoxFuture<'a, Result<Option<String>, StorageError>> {
        Box::pin(async move {
            self.0
                .kv_get(channel, key, now_ms)
                .await
                .map_err(unavailable)
        })
    }

    fn put<'a>(
        &'a self,
        write: StorageWrite<'a>,
        now_ms: i64,
    ) -> BoxFuture<'a, Result<(), StorageError>> {
        Box::pin(async move {
            match self
                .0
                .kv_put(entry(&write), false, now_ms)
                .await
                .map_err(unavailable)?
            {
                Some(_) => Ok(()),
                None => Err(quota(write.max_entries, write.max_bytes)),
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
                .kv_put(entry(&write), true, now_ms)
                .await
                .map_err(unavailable)?
                .ok_or_else(|| quota(write.max_entries, write.max_bytes))
        })
    }

    fn delete<'a>(
        &'a self,
        channel: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<(), StorageError>> {
        Box::pin(async move { self.0.kv_delete(channel, key).await.map_err(unavailable) })
    }
}
