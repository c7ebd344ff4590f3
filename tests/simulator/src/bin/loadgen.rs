//! `switchboard-loadgen`: the ceiling for `make bench-e2e`. A plain reqwest
//! loop that posts WhatsApp template messages to the simulator with a fixed
//! number of requests in flight, exactly the requests a Switchboard run of
//! the bench campaign makes, and prints how many it sent per second.
//!
//! Last line of output: `raw N msg/s (S s, M messages, C in flight)`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use switchboard_simulator::whatsapp;

/// Post WhatsApp template messages to a simulator as fast as it answers.
#[derive(Debug, Parser)]
#[command(name = "switchboard-loadgen", version, about)]
struct Cli {
    /// The simulator's base URL (`http://127.0.0.1:PORT`).
    #[arg(long)]
    simulator: String,
    /// How many messages to send (recipients +4915110000000 onwards, as in
    /// the bench audience).
    #[arg(long, default_value_t = 20_000)]
    count: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// WhatsApp business phone number id.
    #[arg(long, default_value = whatsapp::DEFAULT_PHONE_NUMBER_ID)]
    phone_number_id: String,
    /// WhatsApp access token.
    #[arg(long, default_value = whatsapp::DEFAULT_ACCESS_TOKEN)]
    access_token: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let url = format!(
        "{}/v21.0/{}/messages",
        cli.simulator.trim_end_matches('/'),
        cli.phone_number_id
    );
    let client = reqwest::Client::new();
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(cli.concurrency);
    for _ in 0..cli.concurrency.max(1) {
        let (client, url, token, next) = (
            client.clone(),
            url.clone(),
            cli.access_token.clone(),
            Arc::clone(&next),
        );
        let count = cli.count;
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return Ok::<(), anyhow::Error>(());
                }
                let body = serde_json::json!({
                    "messaging_product": "whatsapp",
                    "recipient_type": "individual",
                    "to": format!("4915{:09}", 110_000_000 + i),
                    "type": "template",
                    "template": {
                        "name": "winback_offer",
                        "language": {"code": "en_US"},
                        "components": [{"type": "body", "parameters": [{"type": "text", "text": "Ana"}]}]
                    }
                });
                let response = client
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&body)
                    .send()
                    .await
                    .with_context(|| format!("posting message {i} to {url}"))?;
                let status = response.status();
                let reply = response.bytes().await.context("reading a reply")?;
                anyhow::ensure!(
                    status.is_success(),
                    "message {i}: the simulator answered {status}: {}",
                    String::from_utf8_lossy(&reply)
                );
            }
        }));
    }
    for task in tasks {
        task.await.context("a sender task panicked")??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "raw {:.0} msg/s ({elapsed:.2} s, {} messages, {} in flight)",
        cli.count as f64 / elapsed,
        cli.count,
        cli.concurrency
    );
    Ok(())
}
