//! What one message costs the SQLite outbox, phase by phase, with nothing
//! else on the machine's cores: the writer's share of `make bench-e2e`
//! without the network, the sandbox or the simulator.
//!
//! The life of COUNT WhatsApp template sends (default 100,000) as
//! `switchboard send` lives it: enqueued with their decisions in chunks of
//! 1,000; claimed in batches of 50; marked written in the waves the egress
//! sends them in (16, then the slots that free up); settled as sent with a
//! platform id. Each phase is timed on its own, one call after another
//! (no call waits for another's commit), and printed per message.
//!
//! `cargo bench -p switchboard-store --bench outbox_phases` (COUNT=N to
//! choose the number of sends).

use std::time::{Duration, Instant};

use switchboard_contract::model::{
    Content, OutboundMessage, Purpose, TemplateMessage, TemplateParameter,
};
use switchboard_store::{
    ClaimRequest, DecisionRecord, NewSend, Outcome, Settlement, SqliteStore, Store,
};

const CHUNK: usize = 1_000;
const BATCH: u32 = 50;
/// The waves one batch's requests leave in: the first fills the call's 16
/// slots, the rest are the slots that free up together.
const WAVES: [usize; 7] = [16, 6, 6, 6, 6, 5, 5];
const CAMPAIGN: &str = "winback-demo";
const OWNER: &str = "bench-engine";

fn send(i: usize) -> NewSend {
    // A SHA-256-like key: 64 hex digits in no particular order, as the
    // host derives them.
    let key = format!(
        "{:016x}{:016x}{:016x}{:016x}",
        mix(i as u64),
        mix(i as u64 + 1),
        mix(i as u64 + 2),
        mix(i as u64 + 3)
    );
    NewSend {
        message: OutboundMessage {
            idempotency_key: key,
            to: format!("+4915{:09}", 110_000_000 + i),
            purpose: Purpose::Marketing,
            content: Content::Template(TemplateMessage {
                name: "winback_offer".into(),
                language: Some("en_US".into()),
                parameters: vec![TemplateParameter {
                    name: "1".into(),
                    value: "Ana".into(),
                }],
                link: None,
            }),
            ttl_seconds: None,
            attempt: 1,
        },
        campaign: CAMPAIGN.into(),
        profile_id: profile_id(i),
        line: Some(i as u64 + 2),
        channel: "whatsapp".into(),
        step: 0,
        window: None,
        deduplicates: false,
        due_ms: 0,
        deferred_reason: None,
        deferred_message: None,
        deadline_ms: None,
        fallback: vec![],
    }
}

/// A customer data platform's id for recipient `i`: ids arrive in no
/// order (UUIDs, hashed emails), so their decision rows land all over the
/// decisions table's key index, as in production.
fn profile_id(i: usize) -> String {
    format!("p{:016x}", mix(!(i as u64)))
}

/// SplitMix64: spreads the keys over the index as hashes do.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn decision(i: usize) -> DecisionRecord {
    DecisionRecord {
        campaign: CAMPAIGN.into(),
        profile_id: profile_id(i),
        channel: Some("whatsapp".into()),
        outcome: "enqueued".into(),
        reason: None,
        detail: None,
        decided_ms: 0,
    }
}

fn per_message(total: Duration, count: usize) -> f64 {
    total.as_secs_f64() * 1e6 / count as f64
}

fn main() {
    let count: usize = std::env::var("COUNT")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = SqliteStore::open(&dir.path().join("bench.db")).expect("the outbox");
    runtime.block_on(async {
        let started = Instant::now();
        for first in (0..count).step_by(CHUNK) {
            let range = first..(first + CHUNK).min(count);
            store
                .enqueue(range.clone().map(send).collect(), range.map(decision).collect())
                .await
                .expect("enqueue");
        }
        let enqueue = started.elapsed();

        let (mut claim, mut mark, mut settle) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
        let mut settled = 0;
        let mut platform_id = 0u64;
        loop {
            let started = Instant::now();
            let claimed = store
                .claim(ClaimRequest {
                    channel: "whatsapp".into(),
                    owner: OWNER.into(),
                    limit: BATCH,
                    now_ms: 1,
                    lease_ms: 600_000,
                    campaign: Some(CAMPAIGN.into()),
                })
                .await
                .expect("claim");
            claim += started.elapsed();
            if claimed.is_empty() {
                break;
            }
            let keys: Vec<String> = claimed
                .iter()
                .map(|send| send.message.idempotency_key.clone())
                .collect();
            let started = Instant::now();
            let mut rest = keys.as_slice();
            for wave in WAVES {
                let (now, later) = rest.split_at(wave.min(rest.len()));
                if !now.is_empty() {
                    let lost = store
                        .mark_written(OWNER, now.to_vec())
                        .await
                        .expect("mark");
                    assert!(lost.is_empty(), "the bench holds every lease");
                }
                rest = later;
            }
            mark += started.elapsed();
            let settlements = keys
                .into_iter()
                .map(|key| {
                    platform_id += 1;
                    Settlement {
                        key,
                        outcome: Outcome::Sent {
                            // Platform ids are opaque and in no order.
                            platform_message_id: Some(format!(
                                "wamid.{:016x}{:016x}",
                                mix(platform_id),
                                mix(platform_id << 1)
                            )),
                            duplicate: false,
                        },
                        consent: None,
                        rate_limited: false,
                        fall_back: false,
                    }
                })
                .collect();
            let started = Instant::now();
            let results = store.settle(OWNER, settlements, 2).await.expect("settle");
            settle += started.elapsed();
            settled += results.len();
        }
        assert_eq!(settled, count, "every send settled");
        let total = enqueue + claim + mark + settle;
        println!(
            "outbox, {count} sends, µs per message: enqueue {:.1}, claim {:.1}, mark {:.1}, settle {:.1}; total {:.1} ({:.0} msg/s on one writer)",
            per_message(enqueue, count),
            per_message(claim, count),
            per_message(mark, count),
            per_message(settle, count),
            per_message(total, count),
            count as f64 / total.as_secs_f64()
        );
    });
}
