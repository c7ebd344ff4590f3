//! The operator's configuration file (`switchboard.toml`).
//!
//! ```toml
//! database = "switchboard.db"  # SQLite (default), or "postgres://user@host:5432/db" for
//!                               # several hosts on one outbox; "env:DATABASE_URL" reads it
//! adapters_dir = "dist/adapters"
//!
//! [frequency_caps]               # per profile and channel, across campaigns and triggers
//! per_day = 2                    # at most 2 messages in any 24 hours
//! per_week = 5                   # at most 5 in any 7 days
//!
//! [server]
//! listen = "0.0.0.0:8080"        # public: /webhooks/{channel} and /healthz only
//! admin_listen = "127.0.0.1:8081" # the admin API and /metrics
//! admin_tokens = ["env:SWITCHBOARD_ADMIN_TOKEN"]  # bearer tokens; none = every admin request is refused
//! admin_hosts = []               # Host names accepted on the admin listener besides IP literals and localhost
//! header_timeout_ms = 10000      # to read a request's headers
//! body_timeout_ms = 30000        # to read a request's body
//! request_timeout_ms = 60000     # for a whole request
//! max_connections = 1024         # per listener
//! webhook_concurrency = 16       # webhook calls in flight per channel
//! webhook_memory_mb = 1024       # instance memory all webhook calls may hold at once
//! webhook_queue_ms = 2000        # wait for a slot before answering 503
//!
//! [sandbox]
//! memory_mb = 64
//! cpu_budget_ms = 2000           # CPU time per call
//! call_timeout_ms = 30000
//! http_timeout_ms = 10000
//! max_requests_in_flight = 32    # outgoing requests per call
//! max_http_body_kb = 4096        # per outgoing request or response
//! max_log_lines = 200            # per call
//! max_log_kb = 64                # per call
//! max_platform_id_bytes = 256
//! max_failure_message_bytes = 1024
//! max_instances = 256            # adapter instances at once, all channels (pooled; more calls wait)
//! max_webhook_reply_kb = 1024
//! max_webhook_events = 1000      # per webhook call
//! token_cache_entries = 1000     # per channel
//! token_cache_kb = 1024          # per channel
//!
//! [dispatch]
//! concurrency = 16               # adapter calls in flight per channel
//! max_attempts = 5               # before a transient failure is a dead letter
//! retry_base_ms = 500            # first retry delay; doubles, with jitter
//! retry_max_ms = 30000
//! max_retry_after_ms = 60000     # longer "retry after" answers defer the message
//! lease_ms = 120000              # a claim's lease; must exceed the call timeout
//!
//! [trust]
//! keys = { "acme-bsp" = "ed25519:…" }     # public keys whose package signatures are accepted
//! allow_unsigned = false                  # unsigned packages refused unless a channel allows them
//!
//! [channels.whatsapp]
//! messages_per_second = 80                # overrides the adapter's default
//! concurrency = 8                         # overrides [dispatch].concurrency for this channel
//! pair_interval_ms = 6000                 # at most one message per 6 s to one recipient
//! daily_unique_recipients = 1000          # WhatsApp messaging tier: templates to new people per 24 h
//! frequency_caps = { per_day = 1 }        # this channel's caps, over [frequency_caps]
//! allow_hosts = ["graph.facebook.com"]    # omit to approve all the manifest declares (a warning lists them)
//! package = "whatsapp"                    # the package folder (default: the channel's name in adapters_dir)
//! digest = "sha256:…"                     # pin the component
//! trusted_keys = ["acme-bsp"]             # who may sign this channel's package (default: any trusted key)
//! allow_unsigned = false                  # default: [trust] allow_unsigned
//! endpoints = { "graph.facebook.com" = "http://127.0.0.1:9000" }  # point a declared host elsewhere (simulators)
//! opt_in_purposes = ["utility"]           # what a follow/subscribe opts into (default: nothing of marketing)
//! platform_overrides_cdp_no = false       # may a platform opt-in override an explicit CDP "no"
//! settings = { phone_number_id = "100000000000001" }
//! secrets = { access_token = "env:WHATSAPP_ACCESS_TOKEN", app_secret = "env:WHATSAPP_APP_SECRET" }
//! ```
//!
//! Secret values written as `env:NAME` are read from the host's environment
//! at start-up, so secrets need not sit in the file.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use switchboard_contract::model::Purpose;
use switchboard_core::consent::ConsentPolicy;
use switchboard_core::policy::FrequencyCap;
use switchboard_delivery::{DeliverySettings, DispatchConfig, LaneConfig};
use switchboard_package::{PublicKey, TrustStore};
use switchboard_runtime::token_cache::TokenLimits;
use switchboard_runtime::{ChannelGrant, PackageTrust, RuntimeOptions, SandboxLimits};

/// A configuration problem, naming the file and field.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConfigError {
    /// The configuration file.
    pub path: PathBuf,
    /// What is wrong, naming the field.
    pub message: String,
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The database: a SQLite file, relative to the config file (the
    /// embedded default), or a PostgreSQL URL (`postgres://user@host/db`,
    /// shared by several hosts). `env:NAME` reads it from the environment,
    /// so a password stays out of the file.
    #[serde(default = "default_database")]
    pub database: PathBuf,
    /// At most so many messages to one profile per channel, across
    /// campaigns and triggers; `[channels.NAME]` may set its own.
    #[serde(default)]
    pub frequency_caps: FrequencyCaps,
    /// The directory of the configuration file (for relative paths).
    #[serde(skip)]
    pub config_dir: PathBuf,
    /// Directory of adapter packages, relative to the config file.
    #[serde(default = "default_adapters_dir")]
    pub adapters_dir: PathBuf,
    /// Compiled-component cache, relative to the config file.
    #[serde(default = "default_cache_dir")]
    pub cache_dir: PathBuf,
    /// The HTTP server.
    #[serde(default)]
    pub server: ServerConfig,
    /// Adapter sandbox limits.
    #[serde(default)]
    pub sandbox: SandboxConfig,
    /// Sending behaviour.
    #[serde(default)]
    pub dispatch: DispatchConfig,
    /// Which package signatures the host accepts.
    #[serde(default)]
    pub trust: TrustConfig,
    /// Per-channel grants.
    #[serde(default)]
    pub channels: BTreeMap<String, ChannelConfig>,
}

/// `[frequency_caps]`, and the same keys in `[channels.NAME]`: at most so
/// many messages to one profile on a channel per moving day or week.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FrequencyCaps {
    /// Messages per profile per moving 24 hours.
    pub per_day: Option<u32>,
    /// Messages per profile per moving 7 days.
    pub per_week: Option<u32>,
}

impl FrequencyCaps {
    /// These caps, with `over`'s where it sets them.
    fn overridden_by(self, over: Option<FrequencyCaps>) -> Self {
        let over = over.unwrap_or_default();
        Self {
            per_day: over.per_day.or(self.per_day),
            per_week: over.per_week.or(self.per_week),
        }
    }

    /// As the policy gate applies them.
    fn caps(self) -> Vec<FrequencyCap> {
        let mut caps = Vec::new();
        caps.extend(self.per_day.map(FrequencyCap::per_day));
        caps.extend(self.per_week.map(FrequencyCap::per_week));
        caps
    }
}

/// What `database` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL server.
    Postgres(String),
}

/// `[trust]`: the keys whose package signatures the host accepts.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrustConfig {
    /// Trusted public keys by name: `{ "acme-bsp" = "ed25519:<base64>" }`
    /// (`switchboard adapter keygen` prints one).
    pub keys: BTreeMap<String, String>,
    /// Whether unsigned packages load for channels that do not say
    /// (`[channels.NAME] allow_unsigned`). Default: no.
    pub allow_unsigned: bool,
}

fn default_database() -> PathBuf {
    PathBuf::from("switchboard.db")
}
fn default_adapters_dir() -> PathBuf {
    PathBuf::from("dist/adapters")
}
fn default_cache_dir() -> PathBuf {
    PathBuf::from(".switchboard-cache")
}

/// `[server]`: two listeners, because they face different people.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// The public listener: `/webhooks/{channel}` and `/healthz` only.
    pub listen: SocketAddr,
    /// The admin listener: the admin API and `/metrics`, behind bearer
    /// tokens. Loopback by default.
    pub admin_listen: SocketAddr,
    /// Bearer tokens the admin API accepts (`env:NAME` reads the
    /// environment). With none, every admin request is refused.
    pub admin_tokens: Vec<String>,
    /// Host header names the admin listener accepts besides IP literals
    /// and `localhost` (against DNS rebinding).
    pub admin_hosts: Vec<String>,
    /// Longest a client may take to send a request's headers, ms.
    pub header_timeout_ms: u64,
    /// Longest a client may take to send a request's body, ms.
    pub body_timeout_ms: u64,
    /// Longest a whole request may take, ms.
    pub request_timeout_ms: u64,
    /// Most open connections per listener.
    pub max_connections: usize,
    /// Webhook calls in flight per channel.
    pub webhook_concurrency: usize,
    /// Instance memory all webhook calls together may hold, MiB.
    pub webhook_memory_mb: u64,
    /// Longest a webhook waits for a slot before the reply is 503, ms.
    pub webhook_queue_ms: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
            admin_tokens: Vec::new(),
            admin_hosts: Vec::new(),
            header_timeout_ms: 10_000,
            body_timeout_ms: 30_000,
            request_timeout_ms: 60_000,
            max_connections: 1024,
            webhook_concurrency: 16,
            webhook_memory_mb: 1024,
            webhook_queue_ms: 2_000,
        }
    }
}

/// `[sandbox]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SandboxConfig {
    /// Memory limit per instance, MiB.
    pub memory_mb: u64,
    /// CPU budget per call, ms.
    pub cpu_budget_ms: u64,
    /// Wall-clock timeout per call, ms.
    pub call_timeout_ms: u64,
    /// Timeout per outbound request, ms.
    pub http_timeout_ms: u64,
    /// Outgoing requests one call may have in flight.
    pub max_requests_in_flight: usize,
    /// Largest outgoing request or response body, KiB.
    pub max_http_body_kb: usize,
    /// Log lines per call.
    pub max_log_lines: usize,
    /// Log volume per call, KiB.
    pub max_log_kb: usize,
    /// Largest platform message id.
    pub max_platform_id_bytes: usize,
    /// Longest failure message kept.
    pub max_failure_message_bytes: usize,
    /// Largest webhook reply, KiB.
    pub max_webhook_reply_kb: usize,
    /// Most events per webhook call.
    pub max_webhook_events: usize,
    /// Token cache keys per channel.
    pub token_cache_entries: usize,
    /// Token cache size per channel, KiB.
    pub token_cache_kb: usize,
    /// Adapter instances at once, every channel together.
    pub max_instances: u32,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        let limits = SandboxLimits::default();
        Self {
            memory_mb: (limits.memory_bytes / (1024 * 1024)) as u64,
            cpu_budget_ms: limits.cpu_budget.as_millis() as u64,
            call_timeout_ms: limits.call_timeout.as_millis() as u64,
            http_timeout_ms: limits.http_timeout.as_millis() as u64,
            max_requests_in_flight: limits.max_requests_in_flight,
            max_http_body_kb: limits.max_http_body_bytes / 1024,
            max_log_lines: limits.max_log_lines,
            max_log_kb: limits.max_log_bytes / 1024,
            max_platform_id_bytes: limits.max_platform_id_bytes,
            max_failure_message_bytes: limits.max_failure_message_bytes,
            max_webhook_reply_kb: limits.max_webhook_reply_bytes / 1024,
            max_webhook_events: limits.max_webhook_events,
            token_cache_entries: limits.token_cache.max_entries,
            token_cache_kb: limits.token_cache.max_bytes / 1024,
            max_instances: limits.max_instances,
        }
    }
}

/// `[channels.<name>]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelConfig {
    /// Sending rate override, messages per second.
    pub messages_per_second: Option<u32>,
    /// Adapter calls in flight at once on this channel.
    pub concurrency: Option<usize>,
    /// The least time between two messages to one recipient, ms.
    pub pair_interval_ms: Option<u64>,
    /// The most unique recipients reached with templates in 24 hours.
    pub daily_unique_recipients: Option<u64>,
    /// This channel's frequency caps, over `[frequency_caps]`.
    pub frequency_caps: Option<FrequencyCaps>,
    /// Hosts the operator approves for this adapter.
    pub allow_hosts: Option<Vec<String>>,
    /// The package folder serving this channel (relative to
    /// `adapters_dir`); default: the folder named after the channel.
    pub package: Option<PathBuf>,
    /// The component's pinned SHA-256.
    pub digest: Option<String>,
    /// Declared hosts pointed elsewhere: host → base URL.
    #[serde(default)]
    pub endpoints: BTreeMap<String, String>,
    /// Purposes a platform opt-in without a purpose (a follow, a
    /// subscribe) opts into. Default: none of marketing (`["utility"]`).
    pub opt_in_purposes: Option<Vec<String>>,
    /// Whether a platform opt-in may override an explicit "no" from the
    /// audience file. Default: no.
    #[serde(default)]
    pub platform_overrides_cdp_no: bool,
    /// The names (from `[trust] keys`) that may sign this channel's
    /// package; default: any trusted key.
    pub trusted_keys: Option<Vec<String>>,
    /// Whether an unsigned package may serve this channel; default:
    /// `[trust] allow_unsigned`.
    pub allow_unsigned: Option<bool>,
    /// Settings passed to the adapter.
    #[serde(default)]
    pub settings: HashMap<String, String>,
    /// Secrets passed to the adapter (`env:NAME` reads the environment).
    #[serde(default)]
    pub secrets: HashMap<String, String>,
}

impl Config {
    /// Read `path`, resolving relative paths against its directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError {
            path: path.to_owned(),
            message: error.to_string(),
        })?;
        let mut config: Config = toml::from_str(&text).map_err(|error| {
            let mut message = error.to_string().trim_end().to_owned();
            if message.contains("allow_loopback_http") {
                message.push_str("\n`sandbox.allow_loopback_http` was removed: point a channel's declared host at a local server with `[channels.NAME] endpoints = { \"api.example.com\" = \"http://127.0.0.1:PORT\" }`");
            }
            ConfigError {
                path: path.to_owned(),
                message,
            }
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.config_dir = base.to_owned();
        if let Some(text) = config.database.to_str()
            && text.starts_with("env:")
        {
            let value = resolve_secret(text).map_err(|name| ConfigError {
                path: path.to_owned(),
                message: format!("field `database`: environment variable `{name}` is not set"),
            })?;
            config.database = PathBuf::from(value);
        }
        let is_url = config.database.to_str().is_some_and(is_postgres_url);
        if let Some(text) = config.database.to_str()
            && text.contains("://")
            && !is_url
        {
            return Err(ConfigError {
                path: path.to_owned(),
                message: format!(
                    "field `database`: `{}` is not a SQLite file or a postgres:// URL",
                    switchboard_store::postgres::redact(text)
                ),
            });
        }
        for (field, resolve) in [
            (&mut config.database, !is_url),
            (&mut config.adapters_dir, true),
            (&mut config.cache_dir, true),
        ] {
            if resolve && field.is_relative() {
                *field = base.join(&*field);
            }
        }
        for (name, key) in &config.trust.keys {
            switchboard_package::PublicKey::parse(key).map_err(|reason| ConfigError {
                path: path.to_owned(),
                message: format!("field `trust.keys.{name}`: {reason}"),
            })?;
        }
        for (channel, settings) in &config.channels {
            for name in settings.trusted_keys.iter().flatten() {
                if !config.trust.keys.contains_key(name) {
                    return Err(ConfigError {
                        path: path.to_owned(),
                        message: format!(
                            "field `channels.{channel}.trusted_keys`: `{name}` is not a key in `[trust] keys`"
                        ),
                    });
                }
            }
            for (host, target) in &settings.endpoints {
                switchboard_runtime::egress::policy::parse_endpoint(host, target).map_err(
                    |reason| ConfigError {
                        path: path.to_owned(),
                        message: format!("field `channels.{channel}.endpoints`: {reason}"),
                    },
                )?;
            }
            for purpose in settings.opt_in_purposes.iter().flatten() {
                if Purpose::from_name(purpose).is_none() {
                    return Err(ConfigError {
                        path: path.to_owned(),
                        message: format!(
                            "field `channels.{channel}.opt_in_purposes`: `{purpose}` is not a purpose (marketing, utility, authentication, service)"
                        ),
                    });
                }
            }
        }
        if config.dispatch.lease_ms <= config.sandbox.call_timeout_ms + 1_000 {
            return Err(ConfigError {
                path: path.to_owned(),
                message: format!(
                    "field `dispatch.lease_ms` ({}) must exceed `sandbox.call_timeout_ms` ({}) by more than a second: a lease that ends while its call still runs would let another engine send the same message",
                    config.dispatch.lease_ms, config.sandbox.call_timeout_ms
                ),
            });
        }
        Ok(config)
    }

    /// Where audiences uploaded through the admin API are kept: `uploads/`
    /// beside the SQLite database, or beside the configuration file.
    pub fn uploads_dir(&self) -> PathBuf {
        match self.database() {
            Database::Sqlite(file) => file.parent().unwrap_or(Path::new(".")).join("uploads"),
            Database::Postgres(_) => self.config_dir.join("uploads"),
        }
    }

    /// The database `database` names.
    pub fn database(&self) -> Database {
        match self.database.to_str() {
            Some(url) if is_postgres_url(url) => Database::Postgres(url.to_owned()),
            _ => Database::Sqlite(self.database.clone()),
        }
    }

    /// How the delivery engine sends: `[dispatch]` and each channel's pacing.
    pub fn delivery_settings(&self) -> DeliverySettings {
        DeliverySettings {
            dispatch: self.dispatch.clone(),
            frequency_caps: self.frequency_caps.caps(),
            lanes: self
                .channels
                .iter()
                .map(|(name, channel)| {
                    (
                        name.clone(),
                        LaneConfig {
                            messages_per_second: channel.messages_per_second,
                            concurrency: channel.concurrency,
                            pair_interval_ms: channel.pair_interval_ms,
                            daily_unique_recipients: channel.daily_unique_recipients,
                            frequency_caps: self
                                .frequency_caps
                                .overridden_by(channel.frequency_caps)
                                .caps(),
                        },
                    )
                })
                .collect(),
            consent: self
                .channels
                .iter()
                .map(|(name, channel)| {
                    let default = ConsentPolicy::default();
                    let policy = ConsentPolicy {
                        opt_in_purposes: channel.opt_in_purposes.as_ref().map_or(
                            default.opt_in_purposes,
                            |purposes| {
                                purposes
                                    .iter()
                                    .filter_map(|p| Purpose::from_name(p))
                                    .collect()
                            },
                        ),
                        platform_overrides_cdp_no: channel.platform_overrides_cdp_no,
                    };
                    (name.clone(), policy)
                })
                .collect(),
        }
    }

    /// The sandbox limits `[sandbox]` asks for.
    pub fn sandbox_limits(&self) -> SandboxLimits {
        let sandbox = &self.sandbox;
        SandboxLimits {
            memory_bytes: (sandbox.memory_mb * 1024 * 1024) as usize,
            cpu_budget: Duration::from_millis(sandbox.cpu_budget_ms),
            call_timeout: Duration::from_millis(sandbox.call_timeout_ms),
            http_timeout: Duration::from_millis(sandbox.http_timeout_ms),
            max_requests_in_flight: sandbox.max_requests_in_flight.max(1),
            max_http_body_bytes: sandbox.max_http_body_kb * 1024,
            max_log_lines: sandbox.max_log_lines,
            max_log_bytes: sandbox.max_log_kb * 1024,
            max_platform_id_bytes: sandbox.max_platform_id_bytes,
            max_failure_message_bytes: sandbox.max_failure_message_bytes.max(16),
            max_webhook_reply_bytes: sandbox.max_webhook_reply_kb * 1024,
            max_webhook_events: sandbox.max_webhook_events,
            token_cache: TokenLimits {
                max_entries: sandbox.token_cache_entries.max(1),
                max_bytes: sandbox.token_cache_kb * 1024,
            },
            max_instances: sandbox.max_instances.max(1),
        }
    }

    /// The admin API's bearer tokens, `env:` ones resolved.
    pub fn admin_tokens(&self, path: &Path) -> Result<Vec<String>, ConfigError> {
        self.server
            .admin_tokens
            .iter()
            .enumerate()
            .map(|(i, token)| {
                let value = resolve_secret(token).map_err(|name| ConfigError {
                    path: path.to_owned(),
                    message: format!(
                        "field `server.admin_tokens[{i}]`: environment variable `{name}` is not set"
                    ),
                })?;
                if value.len() < 16 {
                    return Err(ConfigError {
                        path: path.to_owned(),
                        message: format!(
                            "field `server.admin_tokens[{i}]`: a token must be at least 16 characters"
                        ),
                    });
                }
                Ok(value)
            })
            .collect()
    }

    /// The runtime options this configuration asks for.
    pub fn runtime_options(&self) -> RuntimeOptions {
        RuntimeOptions {
            limits: self.sandbox_limits(),
            cache_dir: Some(self.cache_dir.clone()),
            storage_limits: Default::default(),
            trust: PackageTrust {
                // Checked when the file was loaded.
                keys: TrustStore::new(
                    self.trust
                        .keys
                        .iter()
                        .filter_map(|(name, key)| Some((name.clone(), PublicKey::parse(key).ok()?)))
                        .collect(),
                ),
                allow_unsigned: self.trust.allow_unsigned,
            },
        }
    }

    /// Each channel's grant, with `env:` secrets resolved. `path` names the
    /// file in errors.
    pub fn grants(&self, path: &Path) -> Result<HashMap<String, ChannelGrant>, ConfigError> {
        let mut grants = HashMap::new();
        for (channel, config) in &self.channels {
            let mut secrets = HashMap::new();
            for (key, value) in &config.secrets {
                let resolved = resolve_secret(value).map_err(|name| ConfigError {
                    path: path.to_owned(),
                    message: format!(
                        "field `channels.{channel}.secrets.{key}`: environment variable `{name}` is not set"
                    ),
                })?;
                secrets.insert(key.clone(), resolved);
            }
            grants.insert(
                channel.clone(),
                ChannelGrant {
                    settings: config.settings.clone(),
                    secrets,
                    allow_hosts: config.allow_hosts.clone(),
                    endpoints: config.endpoints.clone(),
                    package: config.package.clone(),
                    digest: config.digest.clone(),
                    trusted_keys: config
                        .trusted_keys
                        .as_ref()
                        .map(|names| names.iter().cloned().collect()),
                    allow_unsigned: config.allow_unsigned,
                },
            );
        }
        Ok(grants)
    }
}

/// Whether `database` names a PostgreSQL server.
pub fn is_postgres_url(database: &str) -> bool {
    database.starts_with("postgres://") || database.starts_with("postgresql://")
}

/// A secret as written (`env:NAME` reads the environment); the error is
/// the missing variable's name.
pub(crate) fn resolve_secret(value: &str) -> Result<String, String> {
    match value.strip_prefix("env:") {
        Some(name) => std::env::var(name).map_err(|_| name.to_owned()),
        None => Ok(value.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_postgres_url_is_kept_as_written_and_its_password_never_shown() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("switchboard.toml");
        std::fs::write(
            &path,
            "database = \"postgres://app:s3cret@db.internal:5432/switchboard\"\n[frequency_caps]\nper_day = 2\n[channels.whatsapp]\nfrequency_caps = { per_week = 4 }\n",
        )
        .expect("write");
        let config = Config::load(&path).expect("loads");
        assert_eq!(
            config.database(),
            Database::Postgres("postgres://app:s3cret@db.internal:5432/switchboard".into())
        );
        assert_eq!(config.uploads_dir(), dir.path().join("uploads"));
        let settings = config.delivery_settings();
        assert_eq!(
            settings.lane("whatsapp").frequency_caps,
            vec![FrequencyCap::per_day(2), FrequencyCap::per_week(4)]
        );
        assert_eq!(
            settings.lane("line").frequency_caps,
            vec![FrequencyCap::per_day(2)]
        );

        std::fs::write(&path, "database = \"mysql://root@localhost/x\"\n").expect("write");
        let error = Config::load(&path).unwrap_err().to_string();
        assert!(
            error.ends_with("field `database`: `mysql://root@localhost/x` is not a SQLite file or a postgres:// URL"),
            "{error}"
        );
    }

    #[test]
    fn resolves_env_secrets_and_names_missing_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("switchboard.toml");
        std::fs::write(
            &path,
            r#"
[channels.whatsapp]
settings = { phone_number_id = "1" }
secrets = { access_token = "env:SWITCHBOARD_TEST_SURELY_UNSET_VAR", app_secret = "literal" }
"#,
        )
        .unwrap();
        let config = Config::load(&path).unwrap();
        assert_eq!(config.database, dir.path().join("switchboard.db"));
        let error = config.grants(&path).unwrap_err().to_string();
        assert!(
            error.contains("channels.whatsapp.secrets.access_token"),
            "{error}"
        );
        assert!(
            error.contains("SWITCHBOARD_TEST_SURELY_UNSET_VAR"),
            "{error}"
        );
    }

    #[test]
    fn a_lease_shorter_than_a_call_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("switchboard.toml");
        std::fs::write(
            &path,
            "[sandbox]\ncall_timeout_ms = 5000\n[dispatch]\nlease_ms = 5500\n",
        )
        .unwrap();
        let error = Config::load(&path).unwrap_err().to_string();
        assert!(error.contains("dispatch.lease_ms"), "{error}");
        assert!(error.contains("sandbox.call_timeout_ms"), "{error}");
    }

    #[test]
    fn unknown_fields_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("switchboard.toml");
        std::fs::write(&path, "[sandbox]\nmemory_gb = 4\n").unwrap();
        let error = Config::load(&path).unwrap_err().to_string();
        assert!(error.contains("switchboard.toml"), "{error}");
        assert!(error.contains("memory_gb"), "{error}");
    }
}
