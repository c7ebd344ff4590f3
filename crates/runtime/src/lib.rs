//! The plugin runtime: loads adapter packages, verifies them against the
//! contract, and runs every call in a fresh sandboxed instance.
//!
//! - [`manifest`]: what a package declares.
//! - [`engine`]: the wasmtime engine, epoch ticker and compile cache.
//! - [`egress`]: the outbound HTTP policy and the pooled client.
//! - [`sandbox`]: the imports linked for every call, and the ones that trap.
//! - [`state`]: per-call store data and the host imports.
//! - [`adapter`]: a loaded adapter and the calls into it.
//! - [`token_cache`]: tokens shared by all calls of a channel, bounded.
//! - [`bounds`]: the host-wide bounds on what a call's answers may make the
//!   host hold.
//! - [`cpu`]: CPU time per call, from the thread CPU clock.
//! - [`redact`]: secrets out of stored, served and logged text.
//! - [`packages`]: which package folder serves which channel.
//! - [`storage`]: durable per-channel values that survive restarts.
//! - [`trace`]: what a `send` call did per message: reported outcomes and
//!   whether each message's request was written to the network.
//!
//! Adapters of every contract version the host serves load side by side:
//! the version is read from the component's exports, and the calls go
//! through `switchboard-contract`'s shims, so callers see only the neutral
//! model.

pub mod adapter;
pub mod bounds;
pub mod cpu;
pub mod egress;
pub mod engine;
pub mod error;
pub mod manifest;
pub mod packages;
pub mod redact;
pub mod sandbox;
pub mod state;
pub mod storage;
pub mod token_cache;
pub mod trace;

use std::collections::{BTreeMap, BTreeSet, HashMap};
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

use egress::{EgressClients, EgressPolicy};
use redact::Redactor;
use state::CallState;
use storage::ChannelStorage;
use switchboard_package::{PackageContents, TrustStore};
use token_cache::TokenCache;

/// How the operator set up the runtime.
#[derive(Debug, Clone, Default)]
pub struct RuntimeOptions {
    /// Limits for every call.
    pub limits: SandboxLimits,
    /// Where compiled components are cached; `None` compiles on every load.
    pub cache_dir: Option<PathBuf>,
    /// Limits on adapters' durable storage.
    pub storage_limits: StorageLimits,
    /// Which package signatures the host accepts.
    pub trust: PackageTrust,
}

/// Which package signatures the host accepts: the operator's trusted keys,
/// and whether unsigned packages load where a channel does not say.
#[derive(Debug, Clone, Default)]
pub struct PackageTrust {
    /// Trusted public keys, by the operator's name for each.
    pub keys: TrustStore,
    /// Whether unsigned packages load for channels whose grant does not
    /// say (`ChannelGrant::allow_unsigned`). Off by default.
    pub allow_unsigned: bool,
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
    /// Declared hosts the operator points elsewhere: host → base URL
    /// (`http://127.0.0.1:9000` for a simulator). Only this channel's
    /// requests to that host are redirected.
    pub endpoints: BTreeMap<String, String>,
    /// The package folder that serves the channel; `None` is the folder
    /// named after the channel in the adapters directory. Grants go to this
    /// package only.
    pub package: Option<PathBuf>,
    /// The component's SHA-256 (hex, optionally `sha256:`-prefixed) the
    /// operator pinned; another component is refused.
    pub digest: Option<String>,
    /// The names of the trusted keys that may sign this channel's package;
    /// `None` accepts any key in [`PackageTrust::keys`].
    pub trusted_keys: Option<BTreeSet<String>>,
    /// Whether an unsigned package may serve this channel; `None` follows
    /// [`PackageTrust::allow_unsigned`].
    pub allow_unsigned: Option<bool>,
}

/// Loaded adapters by channel, and what is needed to load more.
pub struct AdapterRuntime {
    engine: Engine,
    clients: EgressClients,
    options: RuntimeOptions,
    grants: HashMap<String, ChannelGrant>,
    tokens: Mutex<HashMap<String, Arc<TokenCache>>>,
    storage: Arc<dyn StorageBackend>,
    linkers: HashMap<ContractVersion, Linker<CallState>>,
    registry: RwLock<HashMap<String, Arc<LoadedAdapter>>>,
    /// One permit per instance the engine's pool holds
    /// ([`SandboxLimits::max_instances`]).
    instance_slots: Arc<tokio::sync::Semaphore>,
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
        let engine = engine::new_engine(&options.limits)?;
        let instance_slots = Arc::new(tokio::sync::Semaphore::new(
            options.limits.max_instances.max(1) as usize,
        ));
        let mut linkers = HashMap::new();
        for version in ContractVersion::ALL {
            let mut linker: Linker<CallState> = Linker::new(&engine);
            sandbox::link(&mut linker, version)
                .map_err(|e| RuntimeError::Engine(format!("linking contract {version}: {e:#}")))?;
            linkers.insert(version, linker);
        }
        let clients = EgressClients::new()
            .map_err(|e| RuntimeError::Engine(format!("building the egress HTTP clients: {e}")))?;
        Ok(Self {
            engine,
            clients,
            options,
            grants,
            tokens: Mutex::default(),
            storage,
            linkers,
            registry: RwLock::default(),
            instance_slots,
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

    /// Load every package under `dir` (a folder with `manifest.toml`),
    /// and the packages the operator names elsewhere. Which folder serves
    /// which channel follows [`packages::assign`]: a package claiming a
    /// channel configured to another folder, or two unconfigured packages
    /// claiming one channel, are refused with an error naming both. A bad
    /// package is reported and skipped; the others still load. A package
    /// whose manifest and component have not changed is kept as loaded.
    pub async fn load_dir(
        &self,
        dir: &Path,
    ) -> Result<Vec<Result<Arc<LoadedAdapter>, RuntimeError>>, RuntimeError> {
        let assignment = packages::assign(dir, &self.grants)?;
        let mut results: Vec<Result<Arc<LoadedAdapter>, RuntimeError>> =
            assignment.refused.into_iter().map(Err).collect();
        for package in assignment.packages {
            results.push(self.load_assigned(&package).await);
        }
        Ok(results)
    }

    /// Load (or replace) the adapter whose manifest is at `manifest_path`.
    /// The package must be the one the operator assigned to its channel
    /// (see [`packages`]). Calls in flight finish on the version they
    /// started with.
    pub async fn load_package(
        &self,
        manifest_path: &Path,
    ) -> Result<Arc<LoadedAdapter>, RuntimeError> {
        let package = packages::Package::read(manifest_path)?;
        packages::check_assigned(&package, &self.grants)?;
        self.load_assigned(&package).await
    }

    async fn load_assigned(
        &self,
        package: &packages::Package,
    ) -> Result<Arc<LoadedAdapter>, RuntimeError> {
        let manifest = package.manifest.clone();
        let component_path = manifest.component_path(&package.dir)?;
        let signer = self.check_signature(package)?;
        let bytes = signer.1;
        let signer = signer.0;
        let digest = engine::sha256_hex(&bytes);
        let name = manifest.adapter.name.clone();
        if let Some(pinned) = self.grants.get(&name).and_then(|g| g.digest.as_deref()) {
            let pinned = pinned
                .trim()
                .trim_start_matches("sha256:")
                .to_ascii_lowercase();
            if pinned != digest {
                return Err(RuntimeError::DigestMismatch {
                    path: component_path,
                    pinned,
                    actual: digest,
                });
            }
        }
        if let Some(current) = self.get(&name) {
            if current.package_dir != package.dir {
                return Err(RuntimeError::DuplicateChannel {
                    channel: name,
                    first: current.package_dir.join("manifest.toml"),
                    second: package.manifest_path(),
                });
            }
            if current.digest == digest && current.manifest == manifest {
                return Ok(current);
            }
        }
        let mut loaded = self.prepare(manifest, &bytes, &component_path).await?;
        loaded.package_dir = package.dir.clone();
        loaded.signer = signer;
        let loaded = Arc::new(loaded);
        if let Ok(mut registry) = self.registry.write() {
            registry.insert(loaded.channel().to_owned(), Arc::clone(&loaded));
        }
        tracing::info!(
            channel = loaded.channel(),
            version = %loaded.manifest.adapter.version,
            digest = &loaded.digest[..12],
            package = %package.dir.display(),
            "adapter loaded"
        );
        Ok(loaded)
    }

    /// Read the package once, judge its signature against the operator's
    /// trust settings for its channel, and return the signer's key name
    /// (`None` for an allowed unsigned package) and the component bytes
    /// that were judged.
    fn check_signature(
        &self,
        package: &packages::Package,
    ) -> Result<(Option<String>, Vec<u8>), RuntimeError> {
        let channel = &package.manifest.adapter.name;
        let refused = |reason: String| RuntimeError::Untrusted {
            path: package.dir.clone(),
            reason,
        };
        let contents = PackageContents::read(&package.dir).map_err(|e| refused(e.to_string()))?;
        let component = package
            .manifest
            .adapter
            .component
            .to_string_lossy()
            .into_owned();
        let bytes = contents
            .file(&component)
            .ok_or_else(|| {
                refused(format!(
                    "the component `{component}` is not a file at the top of the package folder"
                ))
            })?
            .to_vec();
        let grant = self.grants.get(channel);
        let allow_unsigned = grant
            .and_then(|g| g.allow_unsigned)
            .unwrap_or(self.options.trust.allow_unsigned);
        let signer = self
            .options
            .trust
            .keys
            .admit(
                &contents,
                channel,
                grant.and_then(|g| g.trusted_keys.as_ref()),
                allow_unsigned,
            )
            .map_err(|e| refused(e.to_string()))?;
        match &signer {
            Some((key, key_id)) => {
                tracing::debug!(channel = %channel, key = %key, %key_id, "package signature verified")
            }
            None => tracing::info!(
                channel = %channel,
                "loading an unsigned package (allowed by the configuration)"
            ),
        }
        Ok((signer.map(|(key, _)| key), bytes))
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
        if grant.allow_hosts.is_none() && !manifest.egress.hosts.is_empty() {
            tracing::warn!(
                channel = %name,
                approved = %manifest.egress.hosts.join(", "),
                "no `allow_hosts` for this channel: every host its manifest declares is approved; list them in `[channels.{name}] allow_hosts` to approve them explicitly"
            );
        }
        for host in grant.endpoints.keys() {
            if !manifest
                .egress
                .hosts
                .iter()
                .any(|h| h.eq_ignore_ascii_case(host))
            {
                tracing::warn!(channel = %name, host, "`endpoints` names a host the adapter's manifest does not declare; it has no effect");
            }
        }
        let egress = Arc::new(
            EgressPolicy::new(
                &manifest.egress.hosts,
                grant.allow_hosts.as_deref(),
                &grant.endpoints,
                self.options.limits.http_timeout,
            )
            .map_err(|reason| RuntimeError::InvalidGrant {
                channel: name.clone(),
                reason,
            })?,
        );
        let tokens = {
            let mut caches = self
                .tokens
                .lock()
                .map_err(|_| RuntimeError::Engine("token cache lock poisoned".into()))?;
            Arc::clone(
                caches
                    .entry(name.clone())
                    .or_insert_with(|| Arc::new(TokenCache::new(self.options.limits.token_cache))),
            )
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
            package_dir: PathBuf::new(),
            signer: None,
            stats: Arc::default(),
            contract,
            channel,
            pre,
            egress,
            clients: self.clients.clone(),
            config,
            tokens,
            storage,
            limits: self.options.limits,
            instance_slots: Arc::clone(&self.instance_slots),
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
    let secrets = pick(&manifest.config.secrets, &grant.secrets, "secret");
    AdapterConfig {
        settings: pick(&manifest.config.settings, &grant.settings, "setting"),
        redactor: Redactor::new(grant.secrets.values()),
        secrets,
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
    let declared: Vec<String> = manifest
        .egress
        .hosts
        .iter()
        .filter_map(|h| {
            egress::policy::parse_declared_host(h)
                .ok()
                .map(|(host, _)| host)
        })
        .collect();
    for host in &info.egress_hosts {
        let named = egress::policy::parse_declared_host(host).map(|(host, _)| host);
        if !named.is_ok_and(|host| declared.contains(&host)) {
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
