//! Support for the cross-crate tests: building adapter packages and small
//! helpers shared by the test files in `tests/`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub mod platforms;

/// Lowercase hex HMAC-SHA256 of `body` under `secret`, as platforms sign webhooks.
pub fn sign_hex_sha256(secret: &str, body: &str) -> String {
    use hmac::Mac as _;
    let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(body.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Build every adapter and test guest for `wasm32-wasip2` with
/// `scripts/build-adapters.sh` (once per test process; cargo's lock
/// serialises concurrent test binaries) and return the directory holding
/// the packages (`<name>/manifest.toml` plus the component).
pub fn adapter_packages() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = workspace_root();
        let out = root.join("target/wasm/packages");
        let status = Command::new("bash")
            .arg(root.join("scripts/build-adapters.sh"))
            .arg("--test-guests")
            .arg(&out)
            .stdout(std::process::Stdio::null())
            .status();
        match status {
            Ok(status) if status.success() => out,
            Ok(status) => panic!("scripts/build-adapters.sh failed with {status}"),
            Err(error) => panic!("could not run scripts/build-adapters.sh: {error}"),
        }
    })
}

/// A directory of adapter packages: every package [`adapter_packages`]
/// built, except that each `(channel, package directory)` in `overrides`
/// replaces the package of that name. For loading, say, a component built
/// against an older contract beside the current ones.
pub fn packages_with(overrides: &[(&str, &Path)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temporary directory");
    let copy_package = |from: &Path, name: &str| {
        let to = dir.path().join(name);
        std::fs::create_dir_all(&to).expect("package directory");
        for entry in std::fs::read_dir(from).expect("read package") {
            let entry = entry.expect("package entry");
            if entry.path().is_file() {
                std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy package file");
            }
        }
    };
    for entry in std::fs::read_dir(adapter_packages()).expect("read packages") {
        let entry = entry.expect("package");
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.path().is_dir() && !overrides.iter().any(|(channel, _)| *channel == name) {
            copy_package(&entry.path(), &name);
        }
    }
    for (channel, from) in overrides {
        copy_package(from, channel);
    }
    dir
}

/// The package of the WhatsApp adapter as released against contract 1.0.0
/// (`tests/fixtures/contract-1.0.0/`, rebuilt by its `rebuild.sh`).
pub fn contract_1_0_whatsapp() -> PathBuf {
    workspace_root().join("tests/fixtures/contract-1.0.0/whatsapp")
}

/// Writes a `[channels.*]` table for a running simulator.
pub type SectionWriter<'a> = dyn Fn(&switchboard_simulator::SimulatorHandle) -> String + Sync + 'a;

/// A simulator plus a host configured against it, in a temporary directory.
pub struct Harness {
    /// The platform simulator.
    pub simulator: switchboard_simulator::SimulatorHandle,
    /// The host: configuration, store and loaded adapters.
    pub host: switchboard::Host,
    /// Where the configuration, database and results live.
    pub dir: tempfile::TempDir,
    /// The configuration file.
    pub config_path: PathBuf,
}

impl Harness {
    /// Start a simulator with `simulator`, then a host whose configuration
    /// is the WhatsApp grant for it plus `extra_config` (TOML appended, e.g.
    /// a `[dispatch]` table).
    pub async fn start(
        simulator: switchboard_simulator::SimulatorConfig,
        extra_config: &str,
    ) -> Self {
        Self::start_inner(simulator, extra_config, None, adapter_packages()).await
    }

    /// Like [`Harness::start`], but loading the adapter packages in
    /// `adapters_dir` (see [`packages_with`]).
    pub async fn start_with_adapters(
        simulator: switchboard_simulator::SimulatorConfig,
        adapters_dir: &Path,
    ) -> Self {
        Self::start_inner(simulator, "", None, adapters_dir).await
    }

    /// Like [`Harness::start`], but `channel`'s configuration table is the
    /// one `section` writes (e.g. with a wrong secret).
    pub async fn start_with_section(
        simulator: switchboard_simulator::SimulatorConfig,
        channel: &str,
        section: impl Fn(&switchboard_simulator::SimulatorHandle) -> String + Sync,
    ) -> Self {
        Self::start_inner(simulator, "", Some((channel, &section)), adapter_packages()).await
    }

    async fn start_inner(
        simulator: switchboard_simulator::SimulatorConfig,
        extra_config: &str,
        replace: Option<(&str, &SectionWriter<'_>)>,
        packages: &Path,
    ) -> Self {
        let simulator = switchboard_simulator::Simulator::start(
            "127.0.0.1:0".parse().expect("loopback address"),
            simulator,
        )
        .await
        .expect("simulator starts");
        let dir = tempfile::tempdir().expect("temporary directory");
        let root = workspace_root();
        // Every platform's table, WhatsApp's last: `extra_config` continues
        // it (e.g. a rate override) before any table it opens itself.
        let mut sections = platforms::config_sections(&simulator);
        if let Some((channel, section)) = replace {
            let header = format!("[channels.{channel}]");
            // Tables are separated by a blank line (strings inside them are
            // escaped, so none holds one).
            let kept: Vec<&str> = sections
                .split("\n\n")
                .filter(|table| !table.trim_start().starts_with(&header))
                .collect();
            sections = format!("{}\n{}", section(&simulator), kept.join("\n\n"));
        }
        let config = format!(
            "database = \"switchboard.db\"\nadapters_dir = \"{packages}\"\ncache_dir = \"{cache}\"\n\n[sandbox]\nallow_loopback_http = true\n\n{sections}\n{extra_config}\n",
            packages = packages.display(),
            cache = root.join("target/wasm/cwasm-cache").display(),
        );
        let config_path = dir.path().join("switchboard.toml");
        std::fs::write(&config_path, config).expect("write config");
        let host = switchboard::Host::start(&config_path)
            .await
            .expect("host starts");
        Self {
            simulator,
            host,
            dir,
            config_path,
        }
    }

    /// Write a file into the harness directory.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).expect("write test file");
        path
    }

    /// Serve the host's webhooks on a loopback port, point every simulated
    /// platform's webhooks at `/webhooks/{channel}` there, and return its
    /// base URL.
    pub async fn serve(&self) -> String {
        let state = switchboard_server::AppState {
            runtime: std::sync::Arc::clone(&self.host.runtime),
            store: self.host.store.clone(),
            metrics: std::sync::Arc::default(),
            adapters_dir: Some(self.host.config.adapters_dir.clone()),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let address = listener.local_addr().expect("local address");
        tokio::spawn(async move {
            let _ = axum::serve(listener, switchboard_server::router(state)).await;
        });
        let base = format!("http://{address}");
        let url = |channel: &str| format!("{base}/webhooks/{channel}");
        let simulator = &self.simulator;
        simulator
            .whatsapp()
            .set_webhook_url(Some(&url("whatsapp")))
            .expect("set webhook url");
        simulator
            .line()
            .set_webhook_url(Some(&url("line")))
            .expect("set webhook url");
        simulator
            .kakaotalk()
            .set_webhook_url(Some(&url("kakaotalk")))
            .expect("set webhook url");
        simulator
            .wechat()
            .set_webhook_url(Some(&url("wechat")))
            .expect("set webhook url");
        simulator
            .rcs()
            .set_webhook_url(Some(&url("rcs")))
            .expect("set webhook url");
        base
    }

    /// Run a campaign file over an audience file, writing results beside them.
    pub async fn send(
        &self,
        campaign: &Path,
        audience: &Path,
    ) -> anyhow::Result<switchboard_delivery::activation::RunReport> {
        let options = switchboard_delivery::activation::RunOptions {
            results_path: Some(self.dir.path().join("results.jsonl")),
            dry_run: false,
            progress: false,
        };
        switchboard_delivery::activation::run_campaign(
            &self.host.delivery(),
            campaign,
            audience,
            &options,
        )
        .await
    }
}
