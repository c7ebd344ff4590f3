//! Event-to-platform latency of a trigger with no wait, under a steady load
//! of events: `cargo bench -p switchboard-e2e --bench trigger_latency`.
//!
//! A host (SQLite outbox, the WhatsApp adapter, the admin API over real
//! HTTP) and the simulator run in this process. A `cart_abandoned` trigger
//! with `wait = "0s"` listens; events are posted at RATE per second for
//! SECONDS seconds, in requests of BATCH events, each stamped with the time
//! it was posted. Latency is the simulator's acceptance time of the message
//! minus the event's time. Prints p50, p99 and the worst.
//!
//! Environment: `RATE` (default 200), `SECONDS` (default 15), `BATCH`
//! (default 10), `CHANNEL_RATE` (WhatsApp's `messages_per_second`; default
//! the adapter's own, 80: a load above it measures the queue, not the
//! trigger path).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::json;
use switchboard_e2e::platforms::whatsapp;
use switchboard_e2e::{Harness, admin_client};
use switchboard_simulator::whatsapp::{Template, TemplateCategory};

const TRIGGER: &str = r#"
name = "cart-now"
purpose = "marketing"
route = ["whatsapp"]
[templates.whatsapp]
name = "cart_reminder"
language = "en_US"
parameters = ["{{name}}"]
[trigger]
event = "cart_abandoned"
wait = "0s"
deadline = "60m"
"#;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(bench());
}

async fn bench() {
    let rate = env("RATE", 200);
    let seconds = env("SECONDS", 15);
    let batch = env("BATCH", 10).max(1);
    let channel_rate = match env("CHANNEL_RATE", 0) {
        0 => String::new(),
        rate => format!("messages_per_second = {rate}\n"),
    };
    let harness = Harness::start(whatsapp::unlimited(), &channel_rate).await;
    let platform = harness.simulator.whatsapp();
    platform.add_template(Template {
        name: "cart_reminder".into(),
        language: "en_US".into(),
        category: TemplateCategory::Marketing,
        body_params: 1,
        header_params: 0,
        body_text: "{{1}}, your cart is waiting".into(),
    });
    harness.serve_delivering().await;
    let url = harness.admin_url();
    let client = admin_client();
    let created = client
        .post(format!("{url}/api/campaigns"))
        .json(&json!({"campaign": TRIGGER}))
        .send()
        .await
        .expect("submit");
    assert_eq!(created.status(), 201);

    let total = rate * seconds;
    let interval = Duration::from_secs_f64(batch as f64 / rate as f64);
    let mut posted_at: HashMap<String, i64> = HashMap::new();
    let started = Instant::now();
    let mut next = Instant::now();
    let mut sent = 0u64;
    while sent < total {
        tokio::time::sleep_until(next.into()).await;
        next += interval;
        let now = jiff::Timestamp::now().as_millisecond();
        let events: Vec<_> = (sent..(sent + batch).min(total))
            .map(|i| {
                let phone = format!("49151{:08}", 30_000_000 + i);
                posted_at.insert(phone.clone(), now);
                json!({"id": format!("e{i}"), "profile_id": format!("p{i}"), "name": "cart_abandoned",
                       "time": now, "properties": {"phone": format!("+{phone}"),
                       "consent_whatsapp_marketing": "yes", "name": "Ana"}})
            })
            .collect();
        sent += events.len() as u64;
        let client = client.clone();
        let url = url.clone();
        tokio::spawn(async move {
            let response = client
                .post(format!("{url}/api/events"))
                .json(&json!({"events": events}))
                .send()
                .await;
            if let Err(error) = response {
                eprintln!("posting events: {error}");
            }
        });
    }
    let posting = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(60);
    while (platform.messages().len() as u64) < total && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut latencies: Vec<i64> = platform
        .messages()
        .iter()
        .filter_map(|m| posted_at.get(&m.wa_id).map(|at| m.received_at_ms - at))
        .collect();
    latencies.sort_unstable();
    assert!(!latencies.is_empty(), "no message arrived");
    println!(
        "trigger latency, {total} events at {rate}/s over {:.1} s in requests of {batch}: {} delivered, p50 {} ms, p99 {} ms, max {} ms",
        posting.as_secs_f64(),
        latencies.len(),
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        latencies[latencies.len() - 1]
    );
}
