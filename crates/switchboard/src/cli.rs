//! The command line: `switchboard send`, `serve`, `adapters`, `status`,
//! `why` and `adapter …`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use switchboard_delivery::{Engine, EngineOptions, RunOptions, run_campaign};
use switchboard_server::{self as server, AppState};

use crate::config::Config;
use crate::host::{Host, open_store};

/// Switchboard delivers CDP audiences to messaging apps through sandboxed adapters.
#[derive(Debug, Parser)]
#[command(name = "switchboard", version, about)]
pub struct Cli {
    /// The operator configuration file.
    #[arg(
        long,
        short,
        global = true,
        default_value = "switchboard.toml",
        env = "SWITCHBOARD_CONFIG"
    )]
    pub config: PathBuf,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a campaign over an audience file.
    Send {
        /// Audience CSV (profile_id, phone, country, consent_<channel>_<purpose>, …).
        #[arg(long)]
        audience: PathBuf,
        /// Campaign TOML.
        #[arg(long)]
        campaign: PathBuf,
        /// Where to write one JSON line per recipient (default: <campaign name>.results.jsonl).
        #[arg(long)]
        results: Option<PathBuf>,
        /// Decide and report, but send nothing and store nothing.
        #[arg(long)]
        dry_run: bool,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// Serve platform webhooks (public listener), the admin API and
    /// metrics (admin listener), and deliver from the outbox.
    Serve {
        /// Public listen address (overrides `server.listen`).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Admin listen address (overrides `server.admin_listen`).
        #[arg(long)]
        admin_listen: Option<std::net::SocketAddr>,
    },
    /// List the loaded adapters and what they declare.
    Adapters,
    /// Count a campaign's sends by delivery state (sent, delivered, read, failed, …).
    Status {
        /// The campaign name.
        #[arg(long)]
        campaign: String,
    },
    /// Show why a profile got what it got, campaign by campaign.
    Why {
        /// The profile id.
        profile_id: String,
    },
    /// Adapter packages: signing keys, signed package files, verification
    /// and installation into a host.
    Adapter {
        /// What to do.
        #[command(subcommand)]
        command: crate::adapter_commands::AdapterCommand,
    },
}

/// Parse arguments, run, and turn errors into a message and exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // A server logs what it does; a one-shot command prints a summary
    // instead, and its results file has each failed send that adapters log.
    init_tracing(if matches!(cli.command, Command::Serve { .. }) {
        "warn,switchboard=info,switchboard_runtime=info,switchboard_server=info,switchboard_delivery=info"
    } else {
        "warn,switchboard_runtime::state=error"
    });
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: could not start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SWITCHBOARD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Send {
            audience,
            campaign,
            results,
            dry_run,
            quiet,
        } => {
            let host = Host::start(&cli.config).await?;
            let options = RunOptions {
                results_path: results,
                dry_run,
                progress: !quiet && std::io::IsTerminal::is_terminal(&std::io::stderr()),
            };
            let report = run_campaign(
                Arc::clone(&host.store),
                Arc::clone(&host.runtime),
                host.settings.clone(),
                &campaign,
                &audience,
                &options,
            )
            .await?;
            print!("{}", report.summary());
            if report.failures() > 0 {
                eprintln!(
                    "{} recipient(s) failed or may not have received the message: see the results file; `POST /api/sends/retry?class=…` retries a class",
                    report.failures()
                );
                return Ok(ExitCode::from(2));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve {
            listen,
            admin_listen,
        } => {
            let host = Host::start(&cli.config).await?;
            let server = &host.config.server;
            let listen = listen.unwrap_or(server.listen);
            let admin_listen = admin_listen.unwrap_or(server.admin_listen);
            let tokens = host.config.admin_tokens(&cli.config)?;
            if tokens.is_empty() {
                tracing::warn!("no `server.admin_tokens`: the admin API refuses every request");
            }
            let engine = Arc::new(Engine::new(
                Arc::clone(&host.store),
                Arc::clone(&host.runtime),
                host.settings.clone(),
                EngineOptions::default(),
            ));
            engine.start();
            let state = AppState {
                runtime: Arc::clone(&host.runtime),
                store: Arc::clone(&host.store),
                engine: Arc::clone(&engine),
                settings: host.settings.clone(),
                metrics: Arc::default(),
                adapters_dir: Some(host.config.adapters_dir.clone()),
                uploads_dir: host.config.uploads_dir(),
                auth: Arc::new(server::auth::AdminAuth::new(&tokens, &server.admin_hosts)),
                gate: Arc::new(server::gate::WebhookGate::new(
                    server.webhook_concurrency,
                    server.webhook_memory_mb * 1024 * 1024,
                    host.config.sandbox_limits().memory_bytes,
                    Duration::from_millis(server.webhook_queue_ms),
                )),
                triggers: Arc::default(),
            };
            let resumed = server::campaigns::resume_interrupted(&state).await;
            if !resumed.is_empty() {
                println!(
                    "taking up the enqueueing of {} (interrupted when the host last stopped)",
                    resumed.join(", ")
                );
            }
            let limits = server::listener::ListenerLimits {
                header_timeout: Duration::from_millis(server.header_timeout_ms),
                body_timeout: Duration::from_millis(server.body_timeout_ms),
                request_timeout: Duration::from_millis(server.request_timeout_ms),
                max_connections: server.max_connections,
            };
            let public = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("listening on {listen} (`server.listen`)"))?;
            let admin = tokio::net::TcpListener::bind(admin_listen)
                .await
                .with_context(|| format!("listening on {admin_listen} (`server.admin_listen`)"))?;
            let public_address = public.local_addr()?;
            let admin_address = admin.local_addr()?;
            println!("listening on http://{public_address}");
            println!("admin API on http://{admin_address}");
            tracing::info!(%public_address, %admin_address, channels = ?host.runtime.channels(), owner = engine.owner(), "serving webhooks and the admin API; delivering");
            let (stop, stopped) = tokio::sync::watch::channel(false);
            let until_stopped = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            };
            let serving = tokio::try_join!(
                server::listener::serve(
                    public,
                    server::public_router(state.clone()),
                    limits,
                    until_stopped(stopped.clone())
                ),
                server::listener::serve(
                    admin,
                    server::admin_router(state),
                    limits,
                    until_stopped(stopped)
                ),
                async move {
                    shutdown_signal().await;
                    let _ = stop.send(true);
                    Ok(())
                },
            );
            engine.shutdown().await;
            serving?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Adapter { command } => crate::adapter_commands::run(&cli.config, command).await,
        Command::Adapters => {
            let host = Host::start(&cli.config).await?;
            for channel in host.runtime.channels() {
                if let Some(adapter) = host.runtime.get(&channel) {
                    let info = &adapter.info;
                    println!(
                        "{channel:<10} {} v{} (contract {}), {} msg/s, batches of {}, egress: {}",
                        info.display_name,
                        adapter.manifest.adapter.version,
                        adapter.contract,
                        info.limits.messages_per_second,
                        info.limits.max_batch_size,
                        info.egress_hosts.join(", ")
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { campaign } => {
            let config = Config::load(&cli.config)?;
            let store = open_store(&config).await?;
            let counts = store.campaign_counts(&campaign).await?;
            print!(
                "{}",
                crate::status_report::status_report(&campaign, &counts)
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Why { profile_id } => {
            let config = Config::load(&cli.config)?;
            let store = open_store(&config).await?;
            let decisions = store.decisions_for(&profile_id).await?;
            if decisions.is_empty() {
                println!("no decisions recorded for profile `{profile_id}`");
            }
            for decision in decisions {
                println!("{}", serde_json::to_string(&decision)?);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
