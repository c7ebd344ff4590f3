//! Support for the cross-crate tests: building adapter packages and small
//! helpers shared by the test files in `tests/`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub mod api;
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

/// Runtime options for loading the packages [`adapter_packages`] lays out:
/// `limits`, the compiled-component cache the tests share under `target/`,
/// and unsigned packages allowed (those packages are unsigned).
pub fn unsigned_runtime_options(
    limits: switchboard_runtime::SandboxLimits,
) -> switchboard_runtime::RuntimeOptions {
    switchboard_runtime::RuntimeOptions {
        limits,
        cache_dir: Some(workspace_root().join("target/wasm/cwasm-cache")),
        storage_limits: Default::default(),
        trust: switchboard_runtime::PackageTrust {
            allow_unsigned: true,
            ..Default::default()
        },
    }
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

/// The text of a host configuration (database `switchboard.db` beside it)
/// for every platform `simulator` serves, loading the packages in
/// `packages`, with `extra` appended: it continues the WhatsApp table,
/// which comes last, before any table it opens itself.
pub fn config_text(
    simulator: &switchboard_simulator::SimulatorHandle,
    packages: &Path,
    extra: &str,
) -> String {
    config_with_sections(&platforms::config_sections(simulator), packages, extra)
}

/// The admin API's bearer token in every harness configuration.
pub const ADMIN_TOKEN: &str = "e2e-admin-token-0123456789";

/// The configuration's text. `[server]` and `[trust]` tables in `extra` are
/// merged with the harness's own (which set the admin token and allow the
/// unsigned packages `scripts/build-adapters.sh` lays out).
fn config_with_sections(sections: &str, packages: &Path, extra: &str) -> String {
    let mut extra = extra.to_owned();
    let mut tables = String::new();
    for (table, keys) in [
        (
            "[server]\n",
            format!("admin_tokens = [\"{ADMIN_TOKEN}\"]\n"),
        ),
        ("[trust]\n", "allow_unsigned = true\n".to_owned()),
    ] {
        if extra.contains(table) {
            extra = extra.replace(table, &format!("{table}{keys}"));
        } else {
            tables.push_str(&format!("{table}{keys}\n"));
        }
    }
    format!(
        "database = \"switchboard.db\"\nadapters_dir = \"{packages}\"\ncache_dir = \"{cache}\"\n\n{tables}{sections}\n{extra}\n",
        packages = packages.display(),
        cache = workspace_root().join("target/wasm/cwasm-cache").display(),
    )
}

/// An HTTP client that sends the harness's admin token.
pub fn admin_client() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        reqwest::header::HeaderValue::from_str(&format!("Bearer {ADMIN_TOKEN}"))
            .expect("a header value"),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("HTTP client")
}

/// The `switchboard` binary, built (debug profile) once per test process,
/// for tests that run it as a real process (and kill it).
pub fn switchboard_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let root = workspace_root();
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(&root)
            .args(["build", "--quiet", "--bin", "switchboard"])
            .status();
        match status {
            Ok(status) if status.success() => root.join("target/debug/switchboard"),
            Ok(status) => panic!("cargo build --bin switchboard failed with {status}"),
            Err(error) => panic!("could not run cargo build: {error}"),
        }
    })
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
    /// The admin listener's base URL, once [`Harness::serve`] ran.
    admin_url: std::sync::Mutex<Option<String>>,
}

impl Harness {
    /// The admin listener's base URL (after [`Harness::serve`]).
    pub fn admin_url(&self) -> String {
        self.admin_url
            .lock()
            .ok()
            .and_then(|url| url.clone())
            .expect("serve() was called")
    }

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
        let config = config_with_sections(&sections, packages, extra_config);
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
            admin_url: std::sync::Mutex::default(),
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
        let state = self.app_state(self.engine());
        self.serve_state(state).await
    }

    /// Like [`Harness::serve`], with a started delivery engine working the
    /// outbox as `switchboard serve` does.
    pub async fn serve_delivering(&self) -> String {
        let engine = self.engine();
        engine.start();
        self.serve_state(self.app_state(engine)).await
    }

    /// A delivery engine over the harness's host, not started.
    pub fn engine(&self) -> std::sync::Arc<switchboard_delivery::Engine> {
        std::sync::Arc::new(switchboard_delivery::Engine::new(
            std::sync::Arc::clone(&self.host.store),
            std::sync::Arc::clone(&self.host.runtime),
            self.host.settings.clone(),
            switchboard_delivery::EngineOptions::default(),
        ))
    }

    /// The server's state over the harness's host and `engine`.
    pub fn app_state(
        &self,
        engine: std::sync::Arc<switchboard_delivery::Engine>,
    ) -> switchboard_server::AppState {
        switchboard_server::AppState {
            runtime: std::sync::Arc::clone(&self.host.runtime),
            store: std::sync::Arc::clone(&self.host.store),
            engine,
            settings: self.host.settings.clone(),
            metrics: std::sync::Arc::default(),
            adapters_dir: Some(self.host.config.adapters_dir.clone()),
            uploads_dir: self.dir.path().join("uploads"),
            auth: std::sync::Arc::new(switchboard_server::auth::AdminAuth::new(
                &[ADMIN_TOKEN.to_owned()],
                &[],
            )),
            gate: std::sync::Arc::default(),
            triggers: std::sync::Arc::default(),
        }
    }

    /// Serve `state` on two loopback ports as `switchboard serve` does
    /// (webhooks on one, the admin API on the other, see
    /// [`Harness::admin_url`]), point every simulated platform's webhooks at
    /// the first, and return its base URL.
    pub async fn serve_state(&self, state: switchboard_server::AppState) -> String {
        let bind = || async {
            tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind loopback")
        };
        let (public, admin) = (bind().await, bind().await);
        let address = public.local_addr().expect("local address");
        let admin_address = admin.local_addr().expect("local address");
        let limits = switchboard_server::listener::ListenerLimits::default();
        let forever = std::future::pending::<()>;
        tokio::spawn(switchboard_server::listener::serve(
            public,
            switchboard_server::public_router(state.clone()),
            limits,
            forever(),
        ));
        tokio::spawn(switchboard_server::listener::serve(
            admin,
            switchboard_server::admin_router(state),
            limits,
            forever(),
        ));
        if let Ok(mut url) = self.admin_url.lock() {
            *url = Some(format!("http://{admin_address}"));
        }
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

    /// Run a campaign file over an audience file as `switchboard send`
    /// does, writing results beside them.
    pub async fn send(&self, campaign: &Path, audience: &Path) -> anyhow::Result<Finished> {
        self.send_with(campaign, audience, false).await
    }

    /// Like [`Harness::send`], with `dry_run`.
    pub async fn send_with(
        &self,
        campaign: &Path,
        audience: &Path,
        dry_run: bool,
    ) -> anyhow::Result<Finished> {
        let results = self.dir.path().join("results.jsonl");
        let options = switchboard_delivery::RunOptions {
            results_path: Some(results.clone()),
            dry_run,
            progress: false,
        };
        let report = switchboard_delivery::run_campaign(
            std::sync::Arc::clone(&self.host.store),
            std::sync::Arc::clone(&self.host.runtime),
            self.host.settings.clone(),
            campaign,
            audience,
            &options,
        )
        .await?;
        let mut lines = switchboard_delivery::results::read_results(&results)?;
        lines.sort_by_key(|line| line.line);
        Ok(Finished { report, lines })
    }
}

/// A finished campaign run: the report and the results file's lines, in
/// audience order.
#[derive(Debug, Clone)]
pub struct Finished {
    /// What the run reported.
    pub report: switchboard_delivery::RunReport,
    /// The results file, sorted by audience line.
    pub lines: Vec<switchboard_delivery::ResultLine>,
}

impl Finished {
    /// The results line of `profile`; panics naming the profile when the
    /// run wrote none.
    pub fn line_of(&self, profile: &str) -> &switchboard_delivery::ResultLine {
        self.lines
            .iter()
            .find(|l| l.profile_id.as_deref() == Some(profile))
            .unwrap_or_else(|| panic!("no results line for {profile}: {}", self.report.summary()))
    }
}

impl std::ops::Deref for Finished {
    type Target = switchboard_delivery::RunReport;

    fn deref(&self) -> &Self::Target {
        &self.report
    }
}

/// A `switchboard serve` process, killed when dropped.
pub struct ServeProcess {
    /// The process.
    pub child: std::process::Child,
    /// Its public base URL (webhooks), `http://127.0.0.1:PORT`.
    pub url: String,
    /// Its admin base URL.
    pub admin_url: String,
}

impl ServeProcess {
    /// Start `switchboard --config <config> serve` on two free loopback
    /// ports and wait (up to a minute) for it to say where it listens.
    pub fn start(config: &Path) -> Self {
        use std::io::BufRead as _;
        let mut child = Command::new(switchboard_binary())
            .arg("--config")
            .arg(config)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("switchboard serve starts");
        let stdout = child.stdout.take().expect("stdout piped");
        let (found, receive) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if let Some(url) = line.strip_prefix("listening on ") {
                    let _ = found.send((false, url.trim().to_owned()));
                }
                if let Some(url) = line.strip_prefix("admin API on ") {
                    let _ = found.send((true, url.trim().to_owned()));
                }
            }
        });
        let (mut url, mut admin_url) = (String::new(), String::new());
        while url.is_empty() || admin_url.is_empty() {
            let (admin, found) = receive
                .recv_timeout(std::time::Duration::from_secs(60))
                .expect("serve says where it listens");
            if admin {
                admin_url = found;
            } else {
                url = found;
            }
        }
        Self {
            child,
            url,
            admin_url,
        }
    }

    /// Kill it with SIGKILL and wait for it to die.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
