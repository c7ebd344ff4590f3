//! Per-message cost of every adapter: a fresh instance plus `send` of one
//! message, and of a batch of 100 (or the adapter's largest batch, if
//! smaller), against the in-process simulator on loopback (its rate limits
//! raised out of the way); and the time to load each package, compiling
//! the component (no cache) and from the compiled-component cache. Prints
//! a table.
//!
//! `cargo bench -p switchboard-e2e --bench adapters`

use std::time::{Duration, Instant};

use switchboard_contract::model::OutboundMessage;
use switchboard_e2e::Harness;
use switchboard_e2e::platforms::{class_of, kakaotalk, line, rcs, telegram, wechat, whatsapp};
use switchboard_runtime::{AdapterRuntime, PackageTrust, RuntimeOptions};

const SINGLE_CALLS: usize = 300;
const BATCH_CALLS: usize = 20;
const BATCH: usize = 100;

/// A message the simulator accepts by default, unique per `n` (so platforms
/// that deduplicate see a new key each time).
fn sample(channel: &str, n: usize) -> OutboundMessage {
    let mut message = match channel {
        "whatsapp" => whatsapp::template(&format!("+4915{:09}", 100_000_000 + n), "winback_offer"),
        "line" => line::text(
            &line::user_id(n as u32 + 1),
            &format!("Hi, your code is {n}"),
        ),
        "kakaotalk" => kakaotalk::alimtalk(&format!("+8210{:08}", 10_000_000 + n), "ORDER_SHIPPED"),
        "wechat" => wechat::template(&wechat::openid(&n.to_string()), wechat_template()),
        "telegram" => telegram::text(telegram::chat_id(chat(n)), &format!("Hi, your code is {n}")),
        _ => rcs::text(&format!("+1212555{:04}", n % 10_000), &n.to_string()),
    };
    message.idempotency_key = format!("{:064x}", n as u128 * 7_919 + channel.len() as u128);
    message
}

/// Telegram chats that started the bot (the simulator refuses others).
const TELEGRAM_CHATS: u32 = 500;

fn chat(n: usize) -> u32 {
    (n % TELEGRAM_CHATS as usize) as u32 + 1
}

/// Time to load `channel`'s package into a fresh runtime: compiling the
/// component, then again from a warm compiled-component cache.
async fn load_times(channel: &str) -> (Duration, Duration) {
    let cache = tempfile::tempdir().expect("cache directory");
    let manifest = switchboard_e2e::adapter_packages()
        .join(channel)
        .join("manifest.toml");
    let mut times = Vec::new();
    for cache_dir in [
        None,
        Some(cache.path().to_owned()),
        Some(cache.path().to_owned()),
    ] {
        let options = RuntimeOptions {
            cache_dir,
            trust: PackageTrust {
                allow_unsigned: true,
                ..Default::default()
            },
            ..Default::default()
        };
        let runtime = AdapterRuntime::new(options, Default::default()).expect("runtime");
        let started = Instant::now();
        runtime
            .load_package(&manifest)
            .await
            .expect("package loads");
        times.push(started.elapsed());
    }
    // The first cached load fills the cache; the second reads it.
    (times[0], times[2])
}

fn wechat_template() -> &'static str {
    switchboard_simulator::wechat::ORDER_TEMPLATE_ID
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let simulator = whatsapp::unlimited();
    let harness = Harness::start(simulator, "").await;
    harness.simulator.rcs().set_messages_per_second(0);
    harness.simulator.rcs().set_send_statuses(false);
    harness.simulator.kakaotalk().set_requests_per_second(0);
    harness.simulator.kakaotalk().set_send_results(false);
    harness.simulator.telegram().set_messages_per_second(0);
    harness.simulator.telegram().set_per_chat_interval_ms(None);
    for n in 1..=TELEGRAM_CHATS {
        harness
            .simulator
            .telegram()
            .add_chat(telegram::chat_id(n), &format!("User {n}"));
    }

    println!(
        "| adapter | component bytes | load, compiling: ms | load, cached: ms | fresh instance + send 1: µs/message | batch of up to {BATCH}: µs/message | not accepted |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut n = 0usize;
    for channel in ["whatsapp", "line", "kakaotalk", "wechat", "rcs", "telegram"] {
        let adapter = harness.host.runtime.get(channel).expect("adapter loaded");
        let size = std::fs::metadata(
            switchboard_e2e::adapter_packages()
                .join(channel)
                .join(&adapter.manifest.adapter.component),
        )
        .map(|m| m.len())
        .unwrap_or(0);
        let (compiling, cached) = load_times(channel).await;
        let batch_size = BATCH.min(adapter.info.limits.max_batch_size as usize);
        // Warm up: token fetches, connection pool.
        for _ in 0..10 {
            n += 1;
            let _ = adapter.send(&[sample(channel, n)]).await;
        }
        let mut refused = Vec::new();
        let started = Instant::now();
        for _ in 0..SINGLE_CALLS {
            n += 1;
            let results = adapter.send(&[sample(channel, n)]).await.expect("call");
            refused.extend(results.iter().filter(|r| r.is_err()).map(class_of));
        }
        let single = started.elapsed() / SINGLE_CALLS as u32;
        let mut batch_time = Duration::ZERO;
        for _ in 0..BATCH_CALLS {
            let batch: Vec<OutboundMessage> = (0..batch_size)
                .map(|_| {
                    n += 1;
                    sample(channel, n)
                })
                .collect();
            let started = Instant::now();
            let results = adapter.send(&batch).await.expect("call");
            batch_time += started.elapsed();
            refused.extend(results.iter().filter(|r| r.is_err()).map(class_of));
        }
        let per_message = batch_time / (BATCH_CALLS * batch_size) as u32;
        println!(
            "| {channel} | {size} | {:.0} | {:.1} | {:.0} | {:.0} (batches of {batch_size}) | {} |",
            compiling.as_secs_f64() * 1e3,
            cached.as_secs_f64() * 1e3,
            single.as_secs_f64() * 1e6,
            per_message.as_secs_f64() * 1e6,
            if refused.is_empty() {
                "none".to_owned()
            } else {
                format!("{} ({})", refused.len(), refused[0])
            },
        );
    }
}
