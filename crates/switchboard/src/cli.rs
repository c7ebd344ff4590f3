//! The command line: `switchboard send`, `serve`, `adapters` and `why`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

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
    /// Serve platform webhooks, the admin API and metrics.
    Serve {
        /// Listen address (overrides the configuration).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
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
        Command::Serve { listen } => {
            let host = Host::start(&cli.config).await?;
            let listen = listen.unwrap_or(host.config.server.listen);
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
            };
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("listening on {listen}"))?;
            let address = listener.local_addr()?;
            println!("listening on http://{address}");
            tracing::info!(%address, channels = ?host.runtime.channels(), owner = engine.owner(), "serving webhooks and the admin API; delivering");
            axum::serve(listener, server::router(state))
                .with_graceful_shutdown(shutdown_signal())
                .await?;
            engine.shutdown().await;
            Ok(ExitCode::SUCCESS)
        }
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
            let store = open_store(&config)?;
            let counts = store.campaign_counts(&campaign).await?;
            if counts.by_state.is_empty() {
                println!("no sends recorded for campaign `{campaign}`");
            }
            for (state, count) in &counts.by_state {
                println!("  {state:<12} {count:>7}");
            }
            for (state, count) in &counts.by_delivery {
                println!("  delivery:{state:<12} {count:>7}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Why { profile_id } => {
            let config = Config::load(&cli.config)?;
            let store = open_store(&config)?;
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
