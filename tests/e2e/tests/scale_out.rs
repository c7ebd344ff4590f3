//! Several `switchboard serve` processes on one PostgreSQL outbox, one
//! killed with SIGKILL midway through a 50,000-recipient campaign: the
//! others take over its expired leases, and at the simulator nobody got the
//! message twice and nobody was lost. The same run on SQLite with one node
//! (killed and started again).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;
use switchboard_e2e::api::{status, submit};
use switchboard_e2e::platforms::whatsapp;
use switchboard_e2e::{ServeProcess, adapter_packages, admin_client, config_text};
use switchboard_simulator::Simulator;
use switchboard_store::postgres::test_database_url;
use switchboard_store::{PostgresStore, SendQuery, SendState, SqliteStore, Store};

const RECIPIENTS: usize = 50_000;

/// No rate of the adapter's own (WhatsApp's default is 80 msg/s; the
/// simulator's limit is off too), and leases short enough that the
/// survivors take over a killed node's sends within half a minute. The
/// call timeout is the host's default and leaves room for four debug-build
/// processes and the database on two cores (on a slow machine a call of 50
/// requests once took more than 10 s here): a call cut short makes its
/// written requests uncertain, which is not what this test is about.
const FAST: &str = "messages_per_second = 1000000\n\n[dispatch]\nretry_base_ms = 50\nretry_max_ms = 200\nlease_ms = 32000\n\n[sandbox]\ncall_timeout_ms = 30000\n";

const CAMPAIGN: &str = r#"
name = "scale-out"
purpose = "marketing"
route = ["whatsapp"]
[templates.whatsapp]
name = "winback_offer"
language = "en_US"
parameters = ["{{name}}"]
"#;

fn audience() -> String {
    let mut text = String::from("profile_id,name,phone,consent_whatsapp_marketing\n");
    for i in 0..RECIPIENTS {
        text.push_str(&format!("p{i:06},N{i},+49152{i:08},yes\n"));
    }
    text
}

/// Where the nodes keep the outbox.
enum Backend {
    Sqlite,
    Postgres,
}

async fn run(backend: Backend, nodes: usize) {
    let simulator = Simulator::start("127.0.0.1:0".parse().unwrap(), whatsapp::unlimited())
        .await
        .expect("simulator starts");
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_text(&simulator, adapter_packages(), FAST);
    let (store, postgres_url): (std::sync::Arc<dyn Store>, Option<String>) = match backend {
        Backend::Sqlite => (
            std::sync::Arc::new(SqliteStore::open(&dir.path().join("switchboard.db")).unwrap()),
            None,
        ),
        Backend::Postgres => {
            let base = test_database_url();
            let (store, url) = PostgresStore::connect_fresh_schema(&base)
                .await
                .unwrap_or_else(|error| {
                    panic!("these tests need PostgreSQL at {base} (set SWITCHBOARD_TEST_POSTGRES): {error}")
                });
            config = config.replacen(
                "database = \"switchboard.db\"",
                &format!("database = \"{url}\""),
                1,
            );
            (std::sync::Arc::new(store), Some(url))
        }
    };
    let config_path = dir.path().join("switchboard.toml");
    std::fs::write(&config_path, config).unwrap();

    let mut serving: Vec<ServeProcess> = (0..nodes)
        .map(|_| ServeProcess::start(&config_path))
        .collect();
    let client = admin_client();
    let admin = serving[0].admin_url.clone();
    submit(&client, &admin, CAMPAIGN, &audience()).await;

    // Kill one node with SIGKILL once about a third has gone out.
    let platform = simulator.whatsapp();
    let started = Instant::now();
    while platform.messages().len() < RECIPIENTS / 3 {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "only {} messages in 10 minutes",
            platform.messages().len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let victim = serving.remove(nodes - 1);
    victim.kill();
    let at_kill = platform.messages().len();
    if serving.is_empty() {
        // One node: start it again, as an operator (or systemd) would.
        serving.push(ServeProcess::start(&config_path));
    }
    let admin = serving[0].admin_url.clone();

    // Every recipient settles: the survivors take over the victim's leases.
    let settled = loop {
        let current = status(&client, &admin, "scale-out").await;
        if current["settled"] == Value::Bool(true)
            && current["sends"]
                .as_object()
                .map_or(0, |s| s.values().filter_map(Value::as_u64).sum::<u64>())
                == RECIPIENTS as u64
        {
            break current;
        }
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "the campaign never settled: {current}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let elapsed = started.elapsed();

    let accepted = platform.recipient_counts();
    assert_eq!(simulator.duplicates()["whatsapp"], 0, "nobody got it twice");
    let by_state: BTreeMap<String, u64> = serde_json::from_value(settled["sends"].clone()).unwrap();
    let sent = by_state.get("sent").copied().unwrap_or(0);
    let uncertain = by_state.get("uncertain").copied().unwrap_or(0);
    assert_eq!(
        sent + uncertain,
        RECIPIENTS as u64,
        "every recipient sent, or uncertain from the kill: {by_state:?}"
    );
    // Uncertain only where a request was written at the kill, and of those
    // the platform never saw at most what one node can have in flight
    // (`dispatch.concurrency` calls of 16 requests each).
    let uncertain_sends = store
        .sends(SendQuery {
            campaign: Some("scale-out".into()),
            state: Some(SendState::Uncertain),
            ..SendQuery::default()
        })
        .await
        .unwrap();
    let lost = uncertain_sends
        .iter()
        .filter(|send| !accepted.contains_key(send.address.trim_start_matches('+')))
        .count();
    let timed_out = uncertain_sends
        .iter()
        .filter(|send| send.settled_by.is_some())
        .count();
    assert_eq!(
        timed_out,
        0,
        "sends made uncertain by a call cut short, not by the kill: {:?}",
        uncertain_sends
            .iter()
            .find(|send| send.settled_by.is_some())
    );
    assert!(
        lost <= 16 * 16,
        "{lost} uncertain sends never reached the platform"
    );
    assert_eq!(
        accepted.len() + lost,
        RECIPIENTS,
        "every recipient reached exactly once, or uncertain from the kill"
    );
    // Every node did part of the work.
    let settled_by: BTreeMap<String, usize> = store
        .sends(SendQuery {
            campaign: Some("scale-out".into()),
            state: Some(SendState::Sent),
            ..SendQuery::default()
        })
        .await
        .unwrap()
        .into_iter()
        .fold(BTreeMap::new(), |mut owners, send| {
            *owners
                .entry(send.settled_by.unwrap_or_default())
                .or_default() += 1;
            owners
        });
    assert!(
        settled_by.len() >= nodes,
        "{nodes} nodes, but only these settled sends: {settled_by:?}"
    );
    eprintln!(
        "{nodes} node(s): {RECIPIENTS} recipients in {:.1} s, killed one at {at_kill}; sent {sent}, uncertain {uncertain} ({lost} never reached the platform), duplicates 0; sent per engine {:?}",
        elapsed.as_secs_f64(),
        settled_by.values().collect::<Vec<_>>()
    );
    drop(serving);
    if let Some(url) = postgres_url {
        PostgresStore::drop_schema(&url).await.ok();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_on_postgres_survive_one_killed_midway() {
    run(Backend::Postgres, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_on_sqlite_survives_being_killed_midway() {
    run(Backend::Sqlite, 1).await;
}
