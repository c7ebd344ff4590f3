//! The operator's configuration file (`switchboard.toml`).
//!
//! ```toml
//! database = "switchboard.db"
//! adapters_dir = "dist/adapters"
//!
//! [server]
//! listen = "127.0.0.1:8080"
//!
//! [sandbox]
//! memory_mb = 64
//! cpu_budget_ms = 2000
//! call_timeout_ms = 30000
//! http_timeout_ms = 10000
//! allow_loopback_http = false    # true only for the simulator
//!
//! [dispatch]
//! concurrency = 16               # adapter calls in flight per channel
//! max_attempts = 5               # before a transient failure is a dead letter
//! retry_base_ms = 500            # first retry delay; doubles, with jitter
//! retry_max_ms = 30000
//! max_retry_after_ms = 60000     # longer "retry after" answers defer the message
//! lease_ms = 120000              # a claim's lease; must exceed the call timeout
//!
//! [channels.whatsapp]
//! messages_per_second = 80                # overrides the adapter's default
//! concurrency = 8                         # overrides [dispatch].concurrency for this channel
//! pair_interval_ms = 6000                 # at most one message per 6 s to one recipient
//! daily_unique_recipients = 1000          # WhatsApp messaging tier: templates to new people per 24 h
//! allow_hosts = ["graph.facebook.com"]    # omit to approve all the manifest declares
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

use switchboard_delivery::{DeliverySettings, DispatchConfig, LaneConfig};
use switchboard_runtime::{ChannelGrant, RuntimeOptions, SandboxLimits};

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
    /// SQLite database file, relative to the config file.
    #[serde(default = "default_database")]
    pub database: PathBuf,
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
    /// Per-channel grants.
    #[serde(default)]
    pub channels: BTreeMap<String, ChannelConfig>,
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

/// `[server]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
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
    /// Allow plain http to loopback (simulator and tests only).
    pub allow_loopback_http: bool,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        let limits = SandboxLimits::default();
        Self {
            memory_mb: (limits.memory_bytes / (1024 * 1024)) as u64,
            cpu_budget_ms: limits.cpu_budget.as_millis() as u64,
            call_timeout_ms: limits.call_timeout.as_millis() as u64,
            http_timeout_ms: limits.http_timeout.as_millis() as u64,
            allow_loopback_http: false,
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
    /// Hosts the operator approves for this adapter.
    pub allow_hosts: Option<Vec<String>>,
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
        let mut config: Config = toml::from_str(&text).map_err(|error| ConfigError {
            path: path.to_owned(),
            message: error.to_string().trim_end().to_owned(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        for field in [
            &mut config.database,
            &mut config.adapters_dir,
            &mut config.cache_dir,
        ] {
            if field.is_relative() {
                *field = base.join(&*field);
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
    /// beside the database.
    pub fn uploads_dir(&self) -> PathBuf {
        self.database
            .parent()
            .unwrap_or(Path::new("."))
            .join("uploads")
    }

    /// How the delivery engine sends: `[dispatch]` and each channel's pacing.
    pub fn delivery_settings(&self) -> DeliverySettings {
        DeliverySettings {
            dispatch: self.dispatch.clone(),
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
                        },
                    )
                })
                .collect(),
        }
    }

    /// The runtime options this configuration asks for.
    pub fn runtime_options(&self) -> RuntimeOptions {
        RuntimeOptions {
            limits: SandboxLimits {
                memory_bytes: (self.sandbox.memory_mb * 1024 * 1024) as usize,
                cpu_budget: Duration::from_millis(self.sandbox.cpu_budget_ms),
                call_timeout: Duration::from_millis(self.sandbox.call_timeout_ms),
                http_timeout: Duration::from_millis(self.sandbox.http_timeout_ms),
            },
            allow_loopback_http: self.sandbox.allow_loopback_http,
            cache_dir: Some(self.cache_dir.clone()),
            storage_limits: Default::default(),
        }
    }

    /// Each channel's grant, with `env:` secrets resolved. `path` names the
    /// file in errors.
    pub fn grants(&self, path: &Path) -> Result<HashMap<String, ChannelGrant>, ConfigError> {
        let mut grants = HashMap::new();
        for (channel, config) in &self.channels {
            let mut secrets = HashMap::new();
            for (key, value) in &config.secrets {
                let resolved = match value.strip_prefix("env:") {
                    Some(name) => std::env::var(name).map_err(|_| ConfigError {
                        path: path.to_owned(),
                        message: format!(
                            "field `channels.{channel}.secrets.{key}`: environment variable `{name}` is not set"
                        ),
                    })?,
                    None => value.clone(),
                };
                secrets.insert(key.clone(), resolved);
            }
            grants.insert(
                channel.clone(),
                ChannelGrant {
                    settings: config.settings.clone(),
                    secrets,
                    allow_hosts: config.allow_hosts.clone(),
                },
            );
        }
        Ok(grants)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
