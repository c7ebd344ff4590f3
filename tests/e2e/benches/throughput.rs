//! End-to-end messages per second of a `switchboard send` run (ingest,
//! policy, outbox, dispatcher, Wasm adapter, HTTP) into the simulator, and
//! the ceiling: the same simulator driven by a plain reqwest loop with the
//! same concurrency. Prints its figures.
//!
//! `cargo bench -p switchboard-e2e --bench throughput [-- N]`

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use switchboard_e2e::Harness;
use switchboard_simulator::{SimulatorConfig, WhatsAppConfig};

const CONCURRENCY: usize = 16;

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let count: usize = std::env::args()
        .skip(1)
        .find_map(|arg| arg.parse().ok())
        .unwrap_or(5_000);
    let simulator = SimulatorConfig {
        whatsapp: WhatsAppConfig {
            messages_per_second: 0,
            send_statuses: false,
            ..WhatsAppConfig::default()
        },
        ..SimulatorConfig::default()
    };
    let harness = Harness::start(
        simulator,
        &format!("messages_per_second = 1000000\n[dispatch]\nconcurrency = {CONCURRENCY}\n"),
    )
    .await;
    let mut csv = String::from("profile_id,name,phone,consent_whatsapp_marketing\n");
    for i in 0..count {
        csv.push_str(&format!("b{i:06},Ana,+4915{:09},yes\n", 110_000_000 + i));
    }
    let audience = harness.write("audience.csv", &csv);
    let campaign = harness.write(
        "campaign.toml",
        "name = \"bench\"\npurpose = \"marketing\"\nroute = [\"whatsapp\"]\n[templates.whatsapp]\nname = \"winback_offer\"\nlanguage = \"en_US\"\nparameters = [\"{{name}}\"]\n",
    );
    let report = harness
        .send(&campaign, &audience)
        .await
        .expect("campaign runs");
    let sent = report.count("sent");
    assert_eq!(sent as usize, count, "{}", report.summary());
    let host_rate = sent as f64 / report.elapsed.as_secs_f64();

    // The ceiling: the same requests straight from reqwest.
    harness.simulator.whatsapp().clear_messages();
    let whatsapp = harness.simulator.whatsapp();
    let url = format!(
        "{}/v21.0/{}/messages",
        harness.simulator.base_url(),
        whatsapp.phone_number_id()
    );
    let token = whatsapp.access_token().to_owned();
    let client = reqwest::Client::new();
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let (client, url, token, next) = (
            client.clone(),
            url.clone(),
            token.clone(),
            Arc::clone(&next),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    break;
                }
                let body = serde_json::json!({
                    "messaging_product": "whatsapp", "recipient_type": "individual",
                    "to": format!("4915{:09}", 110_000_000 + i), "type": "template",
                    "template": {"name": "winback_offer", "language": {"code": "en_US"},
                        "components": [{"type": "body", "parameters": [{"type": "text", "text": "Ana"}]}]}
                });
                let response = client.post(&url).bearer_auth(&token).json(&body).send().await.expect("request");
                assert!(response.status().is_success());
                let _ = response.bytes().await;
            }
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    let ceiling = count as f64 / started.elapsed().as_secs_f64();

    println!("messages: {count}, concurrency: {CONCURRENCY}");
    println!(
        "switchboard send (end to end, in-process): {host_rate:.0} msg/s ({:.2} s)",
        report.elapsed.as_secs_f64()
    );
    println!("plain reqwest loop into the simulator:      {ceiling:.0} msg/s");
}
