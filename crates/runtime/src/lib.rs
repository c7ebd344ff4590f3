//! The plugin runtime: loads adapter packages, verifies them against the
//! contract, and runs every call in a fresh sandboxed instance.
//!
//! - [`manifest`]: what a package declares.
//! - [`engine`]: the wasmtime engine, epoch ticker and compile cache.
//! - [`egress`]: the outbound HTTP policy and the pooled client.
//! - [`sandbox`]: the imports linked for every call, and the ones that trap.
//! - [`state`]: per-call store data and the host imports.
//! - [`adapter`]: a loaded adapter and the calls into it.
//! - [`token_cache`]: tokens shared by all calls of a channel.
//! - [`storage`]: durable per-channel values that survive restarts.
//! - [`trace`]: what a `send` call did per message: reported outcomes and
//!   whether each message's request was written to the network.
//!
//! Adapters of every contract version the host serves load side by side:
//! the version is read from the component's exports, and the calls go
//! through `switchboard-contract`'s shims, so callers see only the neutral
//! model.

pub mod adapter;
pub mod egress;
pub mod engine;
pub mod error;
pub mod manifest;
pub mod sandbox;
pub mod state;
pub mod storage;
pub mod token_cache;
pub mod trace;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use switchboard_contract::model::{
    AddressKind, ChannelInfo, FreeFormRule, Limits, ParameterRules, TextUnit,
};
use switchboard_contract::{AdapterPre, ContractVersion};
use wasmtime::Engine;
use wasmtime::component::{Component, Linker};

pub use adapter::{CallStats, LoadedAdapter, SandboxLimits};
pub use error::{CallError, RuntimeError};
pub use manifest::Manifest;
pub use state::AdapterConfig;
pub use storage::{MemoryStorage, StorageBackend, StorageLimits};
pub use trace::{BatchOutcome, MessageTrace, RequestFate, WriteAhead};

use egress::EgressPolicy;
use state::CallState;
use storage::ChannelStorage;
use token_cache::TokenCache;

/// How the operator set up the runtime.
#[derive(Debug, Clone, Default)]
pub struct RuntimeOptions {
    /// Limits for every call.
    pub limits: SandboxLimits,
    /// Let adapters reach loopback over plain http (the simulator, tests).
    pub allow_loopback_http: bool,
    /// Where compiled components are cached; `None` compiles on every load.
    pub cache_dir: Option<PathBuf>,
    /// Limits on adapters' durable storage.
    pub storage_limits: StorageLimits,
}

/// What the operator grants one channel's adapter.
#[derive(Debug, Clone, Default)]
pub struct ChannelGrant {
    /// Setting values, by key.
    pub settings: HashMap<String, String>,
    /// Secret values, by key (already resolved from the environment).
    pub secrets: HashMap<String, String>,
    /// Hosts the operator approves; `None` approves all the manifest declares.
    pub allow_hosts: Option<Vec<String>>,
}

/// Loaded adapters by channel, and what is needed to load more.
pub struct AdapterRuntime {
    engine: Engine,
    client_loopback: reqwest::Client,
    client_strict: reqwest::Client,
    options: RuntimeOptions,
    grants: HashMap<String, ChannelGrant>,
    tokens: Mutex<HashMap<String, Arc<TokenCache>>>,
    storage: Arc<dyn StorageBackend>,
    linkers: HashMap<ContractVersion, Linker<CallState>>,
    registry: RwLock<HashMap<String, Arc<LoadedAdapter>>>,
}

impl AdapterRuntime {
    /// A runtime with no adapters loaded yet, keeping adapters' durable
    /// values in memory (see [`AdapterRuntime::with_storage`]).
    pub fn new(
        options: RuntimeOptions,
        grants: HashMap<String, ChannelGrant>,
    ) -> Result<Self, RuntimeError> {
        Self::with_storage(options, grants, Arc::new(MemoryStorage::default()))
    }

    /// A runtime whose adapters keep durable values in `storage` (the
    /// host's database).
    pub fn with_storage(
        options: RuntimeOptions,
        grants: HashMap<String, ChannelGrant>,
        storage: Arc<dyn StorageBackend>,
    ) -> Result<Self, RuntimeError> {
        let engine = engine::new_engine()?;
        let mut linkers = HashMap::new();
        for version in ContractVersion::ALL {
            let mut linker: Linker<CallState> = Linker::new(&engine);
            sandbox::link(&mut linker, version)
                .map_err(|e| RuntimeError::Engine(format!("linking contract {version}: {e:#}")))?;
            linkers.insert(version, linker);
        }
        Ok(Self {
            engine,
            client_loopback: egress::build_client(true),
            client_strict: egress::build_client(false),
            options,
            grants,
            tokens: Mutex::default(),
            storage,
            linkers,
            registry: RwLock::default(),
        })
    }

    /// The adapter serving `channel`, if one is loaded.
    pub fn get(&self, channel: &str) -> Option<Arc<LoadedAdapter>> {
        self.registry.read().ok()?.get(channel).cloned()
    }

    /// The loaded channels, sorted.
    pub fn channels(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .registry
            .read()
            .map(|r| r.keys().cloned().collect())
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Load every package (a directory with `manifest.toml`) under `dir`.
    /// A bad package is reported and skipped; the others still load.
    pub async fn load_dir(
        &self,
        dir: &Path,
    ) -> Result<Vec<Result<Arc<LoadedAdapter>, RuntimeError>>, RuntimeError> {
        let entries = std::fs::read_dir(dir).map_err(|source| RuntimeError::Io {
            path: dir.to_owned(),
            source,
        })?;
        let mut manifests: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|entry| entry.path().join("manifest.toml"))
            .filter(|path| path.is_file())
            .collect();
        manifests.sort();
        let mut results = Vec::new();
        for manifest in manifests {
            results.push(self.load_package(&manifest).await);
        }
        Ok(results)
    }

    /// Load (or replace) the adapter whose manifest is at `manifest_path`.
    /// Calls in flight finish on the version they started with.
    pub async fn load_package(
        &self,
        manifest_path: &Path,
    ) -> Result<Arc<LoadedAdapter>, RuntimeError> {
        let manifest = Manifest::load(manifest_path)?;
        let base = manifest_path.parent().unwrap_or(Path::new("."));
        let component_path = base.join(&manifest.adapter.component);
        let bytes = std::fs::read(&component_path).map_err(|source| RuntimeError::Io {
            path: component_path.clone(),
            source,
        })?;
        let loaded = Arc::new(self.prepare(manifest, &bytes, &component_path).await?);
        if let Ok(mut registry) = self.registry.write() {
            registry.insert(loaded.channel().to_owned(), Arc::clone(&loaded));
        }
        tracing::info!(
            channel = loaded.channel(),
            version = %loaded.manifest.adapter.version,
            digest = &loaded.digest[..12],
            "adapter loaded"
        );
        Ok(loaded)
    }

    async fn prepare(
        &self,
        manifest: Manifest,
        bytes: &[u8],
        component_path: &Path,
    ) -> Result<LoadedAdapter, RuntimeError> {
        let invalid = |reason: String| RuntimeError::InvalidComponent {
            path: component_path.to_owned(),
            reason,
        };
        let digest = engine::sha256_hex(bytes);
        let component = engine::compile_cached(
            &self.engine,
            bytes,
            &digest,
            self.options.cache_dir.as_deref(),
            component_path,
        )?;
        let contract =
            contract_version(&self.engine, &component, bytes, &manifest).map_err(invalid)?;
        let linker = self
            .linkers
            .get(&contract)
            .ok_or_else(|| RuntimeError::Engine(format!("no linker for contract {contract}")))?;
        let pre = linker
            .instantiate_pre(&component)
            .map_err(|e| invalid(format!("{e:#}")))?;
        let pre = AdapterPre::new(contract, pre).map_err(|e| {
            invalid(format!(
                "does not export the `switchboard:channel/adapter@{contract}` interface: {e:#}"
            ))
        })?;

        let name = manifest.adapter.name.clone();
        let grant = self.grants.get(&name).cloned().unwrap_or_default();
        let config = Arc::new(scope_config(&manifest, &grant));
        let manifest_hosts: BTreeSet<String> = manifest
            .egress
            .hosts
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .collect();
        let egress = Arc::new(EgressPolicy {
            manifest_hosts,
            operator_hosts: grant
                .allow_hosts
                .as_ref()
                .map(|hosts| hosts.iter().map(|h| h.to_ascii_lowercase()).collect()),
            allow_loopback: self.options.allow_loopback_http,
            max_timeout: self.options.limits.http_timeout,
        });
        let tokens = {
            let mut caches = self
                .tokens
                .lock()
                .map_err(|_| RuntimeError::Engine("token cache lock poisoned".into()))?;
            Arc::clone(caches.entry(name.clone()).or_default())
        };
        let client = if self.options.allow_loopback_http {
            self.client_loopback.clone()
        } else {
            self.client_strict.clone()
        };
        let channel: Arc<str> = Arc::from(name.as_str());
        let storage = ChannelStorage::new(
            Arc::clone(&channel),
            Arc::clone(&self.storage),
            self.options.storage_limits,
        );
        let mut loaded = LoadedAdapter {
            manifest,
            info: placeholder_info(&name),
            digest,
            stats: Arc::default(),
            contract,
            channel,
            pre,
            egress,
            client,
            config,
            tokens,
            storage,
            limits: self.options.limits,
        };
        let info = loaded
            .describe()
            .await
            .map_err(|error| RuntimeError::InvalidDescription {
                channel: name.clone(),
                reason: error.to_string(),
            })?;
        check_description(&loaded.manifest, &info)?;
        loaded.info = info;
        Ok(loaded)
    }
}

/// Only the keys the manifest declares reach the adapter.
fn scope_config(manifest: &Manifest, grant: &ChannelGrant) -> AdapterConfig {
    let pick = |declared: &[String], values: &HashMap<String, String>, kind: &str| {
        for key in values.keys() {
            if !declared.contains(key) {
                tracing::warn!(adapter = %manifest.adapter.name, key, "configured {kind} is not declared in the manifest; the adapter will not see it");
            }
        }
        declared
            .iter()
            .filter_map(|key| values.get(key).map(|value| (key.clone(), value.clone())))
            .collect()
    };
    AdapterConfig {
        settings: pick(&manifest.config.settings, &grant.settings, "setting"),
        secrets: pick(&manifest.config.secrets, &grant.secrets, "secret"),
    }
}

/// The contract version a component implements: read from the interface it
/// exports, and checked against the custom section the Rust SDK writes and
/// the version the manifest states, when they are present.
fn contract_version(
    engine: &Engine,
    component: &Component,
    bytes: &[u8],
    manifest: &Manifest,
) -> Result<ContractVersion, String> {
    let ty = component.component_type();
    let names: Vec<&str> = ty.exports(engine).map(|(name, _)| name).collect();
    let version = ContractVersion::from_exports(names.iter().copied())
        .map_err(|error| error.to_string())?
        .ok_or_else(|| {
            format!(
                "it does not export a `switchboard:channel/adapter` interface (exports: {}); this host serves contract versions {}",
                if names.is_empty() { "none".to_owned() } else { names.join(", ") },
                ContractVersion::supported_list()
            )
        })?;
    if let Some(section) = engine::embedded_contract_version(bytes)
        && section != version.as_str()
    {
        return Err(format!(
            "it exports contract {version} but its `switchboard:contract-version` section says {section}"
        ));
    }
    if let Some(stated) = &manifest.adapter.contract
        && stated != version.as_str()
    {
        return Err(format!(
            "it implements contract {version} but the manifest says `contract = \"{stated}\"`"
        ));
    }
    Ok(version)
}

fn check_description(manifest: &Manifest, info: &ChannelInfo) -> Result<(), RuntimeError> {
    let channel = manifest.adapter.name.clone();
    let fail = |reason: String| RuntimeError::InvalidDescription {
        channel: channel.clone(),
        reason,
    };
    if info.name != manifest.adapter.name {
        return Err(fail(format!(
            "describe() names the channel `{}` but the manifest says `{}`",
            info.name, manifest.adapter.name
        )));
    }
    for host in &info.egress_hosts {
        if !manifest
            .egress
            .hosts
            .iter()
            .any(|h| h.eq_ignore_ascii_case(host))
        {
            return Err(fail(format!(
                "describe() lists egress host `{host}` that the manifest does not declare"
            )));
        }
    }
    for secret in &info.secrets {
        if !manifest.config.secrets.contains(secret) {
            return Err(fail(format!(
                "describe() reads secret `{secret}` that the manifest does not declare"
            )));
        }
    }
    for setting in &info.settings {
        if !manifest.config.settings.contains(setting) {
            return Err(fail(format!(
                "describe() reads setting `{setting}` that the manifest does not declare"
            )));
        }
    }
    if info.limits.max_batch_size == 0 {
        return Err(fail("describe() declares a max-batch-size of 0".into()));
    }
    if matches!(&info.free_form, FreeFormRule::WithinWindow(rules) if rules.is_empty()) {
        return Err(fail(
            "describe() declares free-form within a window but lists no window".into(),
        ));
    }
    Ok(())
}

fn placeholder_info(name: &str) -> ChannelInfo {
    ChannelInfo {
        name: name.to_owned(),
        display_name: name.to_owned(),
        address_kind: AddressKind::PhoneNumber,
        free_form: FreeFormRule::Never,
        template_purposes: Vec::new(),
        quiet_hours: Vec::new(),
        limits: Limits {
            max_text_length: 0,
            text_unit: TextUnit::UnicodeScalarValues,
            template_parameters: ParameterRules::default(),
            max_batch_size: 1,
            messages_per_second: 1,
        },
        egress_hosts: Vec::new(),
        secrets: Vec::new(),
        settings: Vec::new(),
        deduplicates: false,
    }
}
