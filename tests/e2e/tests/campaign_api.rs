//! Campaigns over HTTP against a running `switchboard serve` process:
//! submit, watch, cancel, retry a class of dead letters and a single send;
//! and `serve` killed with SIGKILL while retries and deferrals are pending
//! sends them, once, when they are due after it restarts.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use switchboard_e2e::api::{count, submit, total, watch};
use switchboard_e2e::platforms::whatsapp;
use switchboard_e2e::{ServeProcess, adapter_packages, config_text};
use switchboard_simulator::whatsapp::{Template, TemplateCategory};
use switchboard_simulator::{FaultConfig, Simulator, SimulatorHandle};
use switchboard_store::{SendQuery, SendState, SqliteStore, Store};

const WINBACK: &str = r#"
name = "api-winback"
purpose = "marketing"
route = ["whatsapp"]
[templates.whatsapp]
name = "winback_offer"
language = "en_US"
parameters = ["{{name}}"]
"#;

fn audience(prefix: &str, first: usize, count: usize) -> String {
    let mut text = String::from("profile_id,name,phone,consent_whatsapp_marketing\n");
    for i in first..first + count {
        text.push_str(&format!("{prefix}{i:04},N{i},+491514{i:07},yes\n"));
    }
    text
}

struct Setup {
    simulator: SimulatorHandle,
    dir: tempfile::TempDir,
}

impl Setup {
    async fn start(extra: &str) -> Self {
        let simulator = Simulator::start("127.0.0.1:0".parse().unwrap(), whatsapp::unlimited())
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("switchboard.toml"),
            config_text(&simulator, adapter_packages(), extra),
        )
        .unwrap();
        Self { simulator, dir }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("switchboard.toml")
    }

    fn store(&self) -> SqliteStore {
        SqliteStore::open(&self.dir.path().join("switchboard.db")).unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_watch_and_retry_a_campaign_over_http() {
    let setup = Setup::start("\n[dispatch]\nretry_base_ms = 20\nretry_max_ms = 100\n").await;
    let serve = ServeProcess::start(&setup.config());
    let client = switchboard_e2e::admin_client();
    let url = serve.admin_url.clone();

    // A bad campaign is refused with its problems.
    let refused = client
        .post(format!("{url}/api/campaigns"))
        .json(&json!({"campaign": WINBACK.replace("whatsapp\"]", "nowhere\"]"), "audience_csv": audience("a", 0, 1)}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    let body: Value = refused.json().await.unwrap();
    assert!(
        body["errors"][0]
            .as_str()
            .unwrap()
            .contains("unknown channel `nowhere`"),
        "{body}"
    );

    let accepted = submit(&client, &url, WINBACK, &audience("a", 0, 30)).await;
    assert_eq!(accepted["campaign"], "api-winback");
    let settled = watch(&client, &url, "api-winback", |s| count(s, "sent") == 30).await;
    assert_eq!(settled["open"], 0, "{settled}");
    assert_eq!(setup.simulator.whatsapp().recipient_counts().len(), 30);

    // A template the platform has not approved: every send is a dead letter.
    let spring = WINBACK
        .replace("api-winback", "api-spring")
        .replace("winback_offer", "spring_sale");
    submit(&client, &url, &spring, &audience("s", 100, 10)).await;
    let failed = watch(&client, &url, "api-spring", |s| count(s, "failed") == 10).await;
    assert_eq!(failed["reasons"]["failed:invalid_content"], 10, "{failed}");
    // Approve it, then retry the class.
    setup.simulator.whatsapp().add_template(Template {
        name: "spring_sale".into(),
        language: "en_US".into(),
        category: TemplateCategory::Marketing,
        body_params: 1,
        header_params: 0,
        body_text: "Spring sale, {{1}}!".into(),
    });
    let retried: Value = client
        .post(format!(
            "{url}/api/sends/retry?class=invalid_content&campaign=api-spring"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(retried["retried"], 10, "{retried}");
    watch(&client, &url, "api-spring", |s| count(s, "sent") == 10).await;
    assert_eq!(setup.simulator.whatsapp().recipient_counts().len(), 40);
    assert_eq!(setup.simulator.duplicates()["whatsapp"], 0);

    // A single send: one that went out cannot be retried; an unknown one is 404.
    let sends: Value = client
        .get(format!(
            "{url}/api/sends?campaign=api-spring&state=sent&limit=1"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = sends[0]["idempotency_key"].as_str().unwrap().to_owned();
    let again = client
        .post(format!("{url}/api/sends/{key}/retry"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 409);
    let unknown = client
        .post(format!("{url}/api/sends/{}/retry", "0".repeat(64)))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    serve.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_is_cancelled_before_it_has_all_gone_out() {
    let setup = Setup::start("messages_per_second = 2\n").await;
    let serve = ServeProcess::start(&setup.config());
    let client = switchboard_e2e::admin_client();
    submit(&client, &serve.admin_url, WINBACK, &audience("c", 0, 40)).await;
    watch(&client, &serve.admin_url, "api-winback", |s| {
        count(s, "sent") >= 2
    })
    .await;
    let cancelled: Value = client
        .post(format!(
            "{}/api/campaigns/api-winback/cancel",
            serve.admin_url
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let cancelled = cancelled["cancelled"].as_u64().unwrap();
    assert!(cancelled > 0);
    let settled = watch(&client, &serve.admin_url, "api-winback", |s| s["open"] == 0).await;
    assert_eq!(
        count(&settled, "sent") + count(&settled, "cancelled"),
        40,
        "{settled}"
    );
    assert_eq!(count(&settled, "cancelled"), cancelled);
    // Only what was sent reached the platform.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        setup.simulator.whatsapp().recipient_counts().len() as u64,
        count(&settled, "sent")
    );
    serve.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_and_deferrals_pending_when_serve_is_killed_go_out_once_after_restart() {
    const RECIPIENTS: usize = 40;
    // The platform takes 4 a second and says "retry after 3 s"; the host
    // waits out at most 1 s, so refused sends are deferred 3 s. One request
    // in three fails with a server error and is retried later.
    let setup = Setup::start(
        "messages_per_second = 100\n\n[dispatch]\nretry_base_ms = 2000\nretry_max_ms = 4000\nmax_retry_after_ms = 1000\nlease_ms = 5000\n\n[sandbox]\ncall_timeout_ms = 3000\n",
    )
    .await;
    let whatsapp = setup.simulator.whatsapp();
    whatsapp.set_messages_per_second(4);
    whatsapp.set_retry_after_secs(Some(3));
    setup
        .simulator
        .set_faults(FaultConfig {
            error_rate: 0.3,
            ..FaultConfig::default()
        })
        .unwrap();
    let serve = ServeProcess::start(&setup.config());
    let client = switchboard_e2e::admin_client();
    submit(
        &client,
        &serve.admin_url,
        WINBACK,
        &audience("r", 0, RECIPIENTS),
    )
    .await;
    watch(&client, &serve.admin_url, "api-winback", |s| {
        count(s, "deferred") > 0 && count(s, "retrying") > 0
    })
    .await;
    serve.kill();

    // What the killed host left waiting, and when each is due.
    let store = setup.store();
    let waiting = store
        .sends(SendQuery {
            campaign: Some("api-winback".into()),
            ..SendQuery::default()
        })
        .await
        .unwrap();
    let due: Vec<(String, i64)> = waiting
        .iter()
        .filter(|s| {
            s.state == SendState::Deferred.as_str() || s.state == SendState::Retrying.as_str()
        })
        .filter_map(|s| Some((s.address.trim_start_matches('+').to_owned(), s.due_ms?)))
        .collect();
    assert!(!due.is_empty());
    drop(store);

    // The platform recovers; a new host comes up.
    whatsapp.set_messages_per_second(0);
    setup.simulator.set_faults(FaultConfig::default()).unwrap();
    let serve = ServeProcess::start(&setup.config());
    let done = watch(&client, &serve.admin_url, "api-winback", |s| {
        count(s, "sent") + count(s, "uncertain") == RECIPIENTS as u64
    })
    .await;
    assert_eq!(setup.simulator.duplicates()["whatsapp"], 0, "once: {done}");
    // A request in flight at the kill is uncertain: the platform may or may
    // not have taken it. Everything sent reached it.
    assert!(
        whatsapp.recipient_counts().len() as u64 >= count(&done, "sent"),
        "{done}"
    );
    // On time: nothing left waiting went out before it was due.
    let messages = whatsapp.messages();
    for (wa_id, due_ms) in due {
        let sent = messages.iter().find(|m| m.wa_id == wa_id).expect("sent");
        assert!(
            sent.received_at_ms + 50 >= due_ms,
            "{wa_id} went out at {} before it was due at {due_ms}",
            sent.received_at_ms
        );
    }
    serve.kill();
}

/// `serve` killed with SIGKILL while it is still enqueueing an uploaded
/// audience: the campaign stays `enqueueing`, and the next host to start
/// takes it up, enqueues the recipients the first did not reach, and
/// everyone gets the message once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_whose_enqueueing_was_interrupted_is_taken_up_after_restart() {
    // Large enough that the kill comes while the enqueue is still going,
    // on a machine several times faster than this one's.
    const RECIPIENTS: usize = 30_000;
    // Leases short enough that the sends the killed host held are taken
    // over soon.
    let setup = Setup::start(
        "messages_per_second = 1000000\n\n[dispatch]\nlease_ms = 5000\n\n[sandbox]\ncall_timeout_ms = 3000\n",
    )
    .await;
    let serve = ServeProcess::start(&setup.config());
    let client = switchboard_e2e::admin_client();
    submit(
        &client,
        &serve.admin_url,
        WINBACK,
        &audience("e", 0, RECIPIENTS),
    )
    .await;
    // Killed once the first chunks are in the outbox.
    watch(&client, &serve.admin_url, "api-winback", |s| {
        total(s, "sends") > 0
    })
    .await;
    serve.kill();

    let store = setup.store();
    let left = store.campaign("api-winback").await.unwrap().unwrap();
    let queued = store
        .sends(SendQuery {
            campaign: Some("api-winback".into()),
            ..SendQuery::default()
        })
        .await
        .unwrap()
        .len();
    assert_eq!(
        left.state, "enqueueing",
        "the kill came after the enqueue ended"
    );
    assert!(queued < RECIPIENTS, "the kill came after the enqueue ended");
    eprintln!("{queued} of {RECIPIENTS} queued when the host was killed");
    drop(store);

    let serve = ServeProcess::start(&setup.config());
    let done = watch(&client, &serve.admin_url, "api-winback", |s| {
        s["state"] == "enqueued" && count(s, "sent") + count(s, "uncertain") == RECIPIENTS as u64
    })
    .await;
    assert_eq!(setup.simulator.duplicates()["whatsapp"], 0, "once: {done}");
    let whatsapp = setup.simulator.whatsapp();
    assert!(
        whatsapp.recipient_counts().len() as u64 >= count(&done, "sent"),
        "{done}"
    );
    assert_eq!(
        total(&done, "decisions"),
        RECIPIENTS as u64,
        "one decision per recipient: {done}"
    );
    serve.kill();
}

/// A campaign cancelled while its audience is still being enqueued: the
/// rest of the audience is not enqueued, what was queued and has not gone
/// out is cancelled, and the campaign stays cancelled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_cancelled_while_it_is_enqueued_enqueues_no_more() {
    // Large enough that the cancel comes while the enqueue is still going,
    // on a machine several times faster than this one's.
    const RECIPIENTS: usize = 30_000;
    let setup = Setup::start("messages_per_second = 20\n").await;
    let serve = ServeProcess::start(&setup.config());
    let client = switchboard_e2e::admin_client();
    submit(
        &client,
        &serve.admin_url,
        WINBACK,
        &audience("x", 0, RECIPIENTS),
    )
    .await;
    let started = watch(&client, &serve.admin_url, "api-winback", |s| {
        count(s, "pending") > 0
    })
    .await;
    assert_eq!(started["state"], "enqueueing", "{started}");
    let response = client
        .post(format!(
            "{}/api/campaigns/api-winback/cancel",
            serve.admin_url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // Long enough for the whole audience to have been enqueued had the
    // cancel not stopped it.
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = switchboard_e2e::api::status(&client, &serve.admin_url, "api-winback").await;
        assert_eq!(now["state"], "cancelled", "{now}");
    }
    let last = watch(&client, &serve.admin_url, "api-winback", |s| s["open"] == 0).await;
    assert_eq!(last["state"], "cancelled", "{last}");
    let queued = total(&last, "sends");
    assert!(
        queued < RECIPIENTS as u64,
        "the rest of the audience was enqueued: {last}"
    );
    assert_eq!(
        count(&last, "sent") + count(&last, "cancelled") + count(&last, "uncertain"),
        queued,
        "{last}"
    );
    // Only what was sent reached the platform.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        setup.simulator.whatsapp().recipient_counts().len() as u64,
        count(&last, "sent"),
        "{last}"
    );
    serve.kill();
}
