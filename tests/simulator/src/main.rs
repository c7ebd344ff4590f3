//! `switchboard-simulator`: serves the simulated messaging platforms on
//! loopback until interrupted. Prints `listening on http://IP:PORT` to
//! stdout once ready.

use std::io::Write;
use std::net::SocketAddr;

use anyhow::Context;
use clap::Parser;
use switchboard_simulator::{Simulator, SimulatorConfig, WhatsAppConfig, whatsapp};

/// Messaging platform APIs on loopback for tests, benchmarks and the demo.
#[derive(Debug, Parser)]
#[command(name = "switchboard-simulator", version, about)]
struct Cli {
    /// Address to listen on (port 0 = any free port).
    #[arg(long, env = "SIM_LISTEN", default_value = "127.0.0.1:0")]
    listen: SocketAddr,

    /// WhatsApp: the accepted access token.
    #[arg(long, env = "SIM_WHATSAPP_ACCESS_TOKEN", default_value = whatsapp::DEFAULT_ACCESS_TOKEN)]
    whatsapp_access_token: String,

    /// WhatsApp: the app secret that signs webhooks.
    #[arg(long, env = "SIM_WHATSAPP_APP_SECRET", default_value = whatsapp::DEFAULT_APP_SECRET)]
    whatsapp_app_secret: String,

    /// WhatsApp: the business phone number id.
    #[arg(long, env = "SIM_WHATSAPP_PHONE_NUMBER_ID", default_value = whatsapp::DEFAULT_PHONE_NUMBER_ID)]
    whatsapp_phone_number_id: String,

    /// WhatsApp: throughput limit in messages per second (0 = unlimited).
    #[arg(long, env = "SIM_WHATSAPP_MPS", default_value_t = 80)]
    whatsapp_mps: u32,

    /// WhatsApp: where to post signed webhooks (can be set later with
    /// PUT /_sim/whatsapp/webhook).
    #[arg(long, env = "SIM_WHATSAPP_WEBHOOK_URL")]
    whatsapp_webhook_url: Option<String>,

    /// WhatsApp: delay before each sent/delivered/read status webhook, in ms.
    #[arg(long, env = "SIM_WHATSAPP_STATUS_DELAY_MS", default_value_t = 50)]
    whatsapp_status_delay_ms: u64,

    /// WhatsApp: do not post status webhooks for accepted messages.
    #[arg(long, env = "SIM_WHATSAPP_NO_STATUSES")]
    whatsapp_no_statuses: bool,

    /// WhatsApp: send `Retry-After: SECS` with every 130429 throughput
    /// refusal (default: no header).
    #[arg(long, env = "SIM_WHATSAPP_RETRY_AFTER_SECS")]
    whatsapp_retry_after_secs: Option<u32>,

    /// WhatsApp: pair rate, the minimum interval in ms between two messages
    /// to the same user; sooner ones get 131056 (default: off; Meta's is
    /// about 6000).
    #[arg(long, env = "SIM_WHATSAPP_PAIR_INTERVAL_MS")]
    whatsapp_pair_interval_ms: Option<u64>,

    /// WhatsApp: messaging limit, unique users templates outside the
    /// customer-service window may reach per 24 h; beyond it 131048
    /// (default: unlimited).
    #[arg(long, env = "SIM_WHATSAPP_DAILY_UNIQUE_RECIPIENTS")]
    whatsapp_daily_unique_recipients: Option<u64>,

    /// Write the `[channels.*]` tables that point a Switchboard host's
    /// adapters at this simulator (with its credentials) to this file.
    #[arg(long, env = "SIM_HOST_CONFIG")]
    host_config: Option<std::path::PathBuf>,

    /// The WhatsApp verify token written into `--host-config`.
    #[arg(long, default_value = "verify-me")]
    whatsapp_verify_token: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();

    let cli = Cli::parse();
    let config = SimulatorConfig {
        whatsapp: WhatsAppConfig {
            access_token: cli.whatsapp_access_token,
            app_secret: cli.whatsapp_app_secret,
            phone_number_id: cli.whatsapp_phone_number_id,
            messages_per_second: cli.whatsapp_mps,
            webhook_url: cli.whatsapp_webhook_url,
            status_delay_ms: cli.whatsapp_status_delay_ms,
            send_statuses: !cli.whatsapp_no_statuses,
            retry_after_secs: cli.whatsapp_retry_after_secs,
            pair_interval_ms: cli.whatsapp_pair_interval_ms,
            daily_unique_recipients: cli.whatsapp_daily_unique_recipients,
        },
        // The other platforms start with their documented defaults; tests
        // and the demo adjust them through the `/_sim/<platform>` API.
        ..SimulatorConfig::default()
    };
    let simulator = Simulator::start(cli.listen, config).await?;
    if let Some(path) = &cli.host_config {
        let sections = switchboard_simulator::host_config::all_sections(
            &simulator,
            &cli.whatsapp_verify_token,
        );
        std::fs::write(path, sections)
            .with_context(|| format!("writing the host configuration to {}", path.display()))?;
    }

    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on {}", simulator.base_url()).context("writing to stdout")?;
    stdout.flush().context("flushing stdout")?;
    drop(stdout);

    wait_for_signal().await?;
    tracing::info!("shutting down");
    simulator.shutdown().await
}

#[cfg(unix)]
async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result.context("waiting for Ctrl-C"),
        _ = terminate.recv() => Ok(()),
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() -> anyhow::Result<()> {
    tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")
}
