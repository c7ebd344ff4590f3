//! How the delivery engine copes, in figures:
//!
//! - **429 storm**: the simulated WhatsApp takes 100 messages a second, the
//!   host is configured for 1,000. Prints the throughput reached as a share
//!   of the platform's limit (the rate controller backs off on refusals and
//!   recovers gradually).
//! - **isolation**: WhatsApp's throughput alone, then in a campaign whose
//!   route also carries a hostile adapter (rate-limited with a 600 s
//!   retry-after, burning its CPU budget, sleeping until its call times
//!   out), and the ratio.
//!
//! `cargo bench -p switchboard-e2e --bench delivery`

use std::time::Instant;

use switchboard_e2e::Harness;
use switchboard_e2e::platforms::whatsapp;

const TEMPLATE: &str = "[templates.whatsapp]\nname = \"order_update\"\nlanguage = \"en_US\"\nparameters = [\"{{name}}\", \"{{order}}\"]\n";

fn audience(whatsapp: usize, hostile: usize) -> String {
    let mut csv = String::from(
        "profile_id,name,order,phone,hostile_id,consent_whatsapp_utility,consent_hostile_utility\n",
    );
    for i in 0..hostile {
        let how = ["ratelimit", "loop", "sleep"][i % 3];
        csv.push_str(&format!("h{i:05},H,A-{i},,{how},,yes\n"));
    }
    for i in 0..whatsapp {
        csv.push_str(&format!(
            "w{i:06},W,B-{i},+4915{:09},,yes,\n",
            120_000_000 + i
        ));
    }
    csv
}

/// Messages per second WhatsApp reached in one campaign run.
async fn whatsapp_rate(harness: &Harness, name: &str, route: &str, csv: &str, count: usize) -> f64 {
    let audience = harness.write(&format!("{name}.csv"), csv);
    let campaign = harness.write(
        &format!("{name}.toml"),
        &format!(
            "name = \"{name}\"\npurpose = \"utility\"\nroute = {route}\n[message]\ntext = \"Order {{{{order}}}} shipped\"\n{TEMPLATE}"
        ),
    );
    let before = harness.simulator.whatsapp().messages().len();
    let started = Instant::now();
    harness
        .send(&campaign, &audience)
        .await
        .expect("campaign runs");
    // The run ends when the campaign settles; WhatsApp's part may end
    // sooner, so time it by its last accepted message.
    let messages = harness.simulator.whatsapp().messages();
    assert_eq!(
        messages.len() - before,
        count,
        "every WhatsApp recipient reached"
    );
    let first = messages[before..]
        .iter()
        .map(|m| m.received_at_ms)
        .min()
        .unwrap_or(0);
    let last = messages[before..]
        .iter()
        .map(|m| m.received_at_ms)
        .max()
        .unwrap_or(0);
    let span = ((last - first) as f64 / 1000.0).max(0.001);
    let _ = started;
    count as f64 / span
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    // 429 storm.
    let storm = Harness::start(
        whatsapp::at_rate(100),
        "messages_per_second = 1000\n[dispatch]\nretry_base_ms = 20\nretry_max_ms = 200\n",
    )
    .await;
    let count = 1_500;
    let mut csv = String::from("profile_id,name,phone,consent_whatsapp_marketing\n");
    for i in 0..count {
        csv.push_str(&format!("s{i:05},Ana,+4915{:09},yes\n", 130_000_000 + i));
    }
    let storm_audience = storm.write("storm.csv", &csv);
    let campaign = storm.write(
        "storm.toml",
        "name = \"storm\"\npurpose = \"marketing\"\nroute = [\"whatsapp\"]\n[templates.whatsapp]\nname = \"winback_offer\"\nlanguage = \"en_US\"\nparameters = [\"{{name}}\"]\n",
    );
    let started = Instant::now();
    storm
        .send(&campaign, &storm_audience)
        .await
        .expect("storm runs");
    let elapsed = started.elapsed().as_secs_f64();
    let refusals = storm.simulator.whatsapp().stats().rate_limited;
    let rate = count as f64 / elapsed;
    println!(
        "429 storm: {count} messages in {elapsed:.2} s = {rate:.0} msg/s against a platform limit of 100 msg/s ({:.0} %), {refusals} refusals",
        rate
    );

    // Isolation.
    let harness = Harness::start(
        whatsapp::at_rate(0),
        "messages_per_second = 100000\n[dispatch]\nmax_attempts = 2\nretry_base_ms = 20\nretry_max_ms = 50\nmax_retry_after_ms = 1000\n\n[sandbox]\ncpu_budget_ms = 200\ncall_timeout_ms = 2000\n",
    )
    .await;
    let count = 4_000;
    let alone = whatsapp_rate(
        &harness,
        "alone",
        "[\"whatsapp\"]",
        &audience(count, 0),
        count,
    )
    .await;
    let beside = whatsapp_rate(
        &harness,
        "beside",
        "[\"hostile\", \"whatsapp\"]",
        &audience(count, 30).replace("w0", "x0"),
        count,
    )
    .await;
    println!(
        "isolation: WhatsApp alone {alone:.0} msg/s, beside a hostile adapter {beside:.0} msg/s, ratio {:.2}",
        beside / alone
    );
}
