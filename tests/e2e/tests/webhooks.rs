//! Webhooks through the host and the WhatsApp adapter: signed statuses
//! update sends; unsigned or wrongly signed requests get 401 and change
//! nothing; the verification handshake works.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use switchboard_e2e::Harness;
use switchboard_simulator::SimulatorConfig;
use switchboard_store::SendQuery;

fn sign(secret: &str, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn status_body(wamid: &str, status: &str) -> String {
    serde_json::json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "200000000000001", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550000000", "phone_number_id": "100000000000001"},
            "statuses": [{"id": wamid, "status": status, "timestamp": "1767000000", "recipient_id": "4915112340001"}]
        }}]}]
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_statuses_update_sends_and_forged_ones_change_nothing() {
    let harness = Harness::start(SimulatorConfig::default(), "").await;
    let base = harness.serve().await;
    let audience = harness.write(
        "audience.csv",
        "profile_id,name,phone,consent_whatsapp_marketing\nw1,Ana,+4915112340001,yes\n",
    );
    let campaign = harness.write(
        "campaign.toml",
        "name = \"hooks\"\npurpose = \"marketing\"\nroute = [\"whatsapp\"]\n[templates.whatsapp]\nname = \"winback_offer\"\nparameters = [\"{{name}}\"]\n",
    );
    let report = harness.send(&campaign, &audience).await.unwrap();
    let wamid = report.lines[0].platform_message_id.clone().expect("sent");
    let key = harness
        .host
        .store
        .sends(SendQuery {
            campaign: Some("hooks".into()),
            ..SendQuery::default()
        })
        .await
        .unwrap()[0]
        .idempotency_key
        .clone();

    // The simulator's own signed statuses (sent → delivered → read) arrive.
    let mut state = None;
    for _ in 0..100 {
        state = harness
            .host
            .store
            .send(&key)
            .await
            .unwrap()
            .unwrap()
            .delivery_state;
        if state.as_deref() == Some("read") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        state.as_deref(),
        Some("read"),
        "signed status webhooks moved the send to read"
    );

    let client = reqwest::Client::new();
    let url = format!("{base}/webhooks/whatsapp");
    let forged = status_body(&wamid, "failed");
    for signature in [
        None,
        Some(sign("not-the-app-secret", &forged)),
        Some("sha256=zz".to_owned()),
    ] {
        let mut request = client
            .post(&url)
            .header("content-type", "application/json")
            .body(forged.clone());
        if let Some(signature) = &signature {
            request = request.header("x-hub-signature-256", signature);
        }
        let response = request.send().await.unwrap();
        assert_eq!(
            response.status(),
            401,
            "signature {signature:?} must be rejected"
        );
    }
    let after = harness.host.store.send(&key).await.unwrap().unwrap();
    assert_eq!(
        after.delivery_state.as_deref(),
        Some("read"),
        "forged webhooks changed nothing"
    );

    // A correctly signed failure for an unknown message is accepted but matches no send.
    let other = status_body("wamid.unknown", "failed");
    let response = client
        .post(&url)
        .header(
            "x-hub-signature-256",
            sign(harness.simulator.whatsapp().app_secret(), &other),
        )
        .body(other)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        harness
            .host
            .store
            .send(&key)
            .await
            .unwrap()
            .unwrap()
            .delivery_state
            .as_deref(),
        Some("read")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_verification_handshake_echoes_the_challenge_only_for_the_right_token() {
    let harness = Harness::start(SimulatorConfig::default(), "").await;
    let base = harness.serve().await;
    let client = reqwest::Client::new();
    let ok = client
        .get(format!("{base}/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=verify-me&hub.challenge=1158201444"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.text().await.unwrap(), "1158201444");
    let wrong = client
        .get(format!("{base}/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=guess&hub.challenge=1158201444"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 403);
    let unknown = client
        .get(format!("{base}/webhooks/nosuchchannel"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn marketing_opt_outs_from_the_platform_suppress_later_campaigns() {
    let harness = Harness::start(SimulatorConfig::default(), "").await;
    harness.serve().await;
    let audience = harness.write(
        "audience.csv",
        "profile_id,name,phone,consent_whatsapp_marketing\no1,Ana,+4915112340021,yes\no2,Ben,+4915112340022,yes\n",
    );
    harness
        .simulator
        .whatsapp()
        .post_marketing_preference(
            "4915112340021",
            switchboard_simulator::MarketingPreference::Stop,
        )
        .await
        .unwrap();
    let campaign = harness.write(
        "campaign.toml",
        "name = \"after-stop\"\npurpose = \"marketing\"\nroute = [\"whatsapp\"]\n[templates.whatsapp]\nname = \"winback_offer\"\nparameters = [\"{{name}}\"]\n",
    );
    let report = harness.send(&campaign, &audience).await.unwrap();
    let o1 = report
        .lines
        .iter()
        .find(|l| l.profile_id.as_deref() == Some("o1"))
        .unwrap();
    assert_eq!(
        (o1.outcome.as_str(), o1.reason.as_deref()),
        ("skipped", Some("opted_out")),
        "{o1:?}"
    );
    assert_eq!(report.count("sent"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_host_reloads_adapters_without_a_restart() {
    let harness = Harness::start(SimulatorConfig::default(), "").await;
    let base = harness.serve().await;
    let before = harness.host.runtime.get("whatsapp").unwrap();
    // The admin API is on its own listener and needs a token.
    let client = reqwest::Client::new();
    let reload = format!("{}/api/adapters/reload", harness.admin_url());
    let anonymous = client.post(&reload).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert!(anonymous.headers().contains_key("www-authenticate"));
    let wrong = client
        .post(&reload)
        .bearer_auth("not-the-admin-token-at-all")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let rebound = client
        .post(&reload)
        .bearer_auth(switchboard_e2e::ADMIN_TOKEN)
        .header("host", "attacker.example")
        .send()
        .await
        .unwrap();
    assert_eq!(rebound.status(), 421, "a DNS-rebound Host is refused");
    let on_public = client
        .post(format!("{base}/api/adapters/reload"))
        .bearer_auth(switchboard_e2e::ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(
        on_public.status(),
        404,
        "the public listener serves no admin route"
    );
    assert!(
        Arc::ptr_eq(&before, &harness.host.runtime.get("whatsapp").unwrap()),
        "refused reloads changed nothing"
    );

    let response = switchboard_e2e::admin_client()
        .post(format!("{}/api/adapters/reload", harness.admin_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    let loaded = body["loaded"].as_array().unwrap();
    assert!(
        loaded
            .iter()
            .any(|a| a["channel"] == "whatsapp" && a["digest"] == before.digest.as_str()),
        "{body}"
    );
    let after = harness.host.runtime.get("whatsapp").unwrap();
    assert!(
        Arc::ptr_eq(&before, &after),
        "an unchanged package is not recompiled or swapped"
    );
    // The old version still answers calls made through it.
    assert!(before.describe().await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_channels_get_404_and_no_metric_series() {
    let harness = Harness::start(SimulatorConfig::default(), "").await;
    let base = harness.serve().await;
    let client = reqwest::Client::new();
    for path in [
        "nosuchchannel",
        "evil%0Aswitchboard_injected_total%201",
        "x%22%7D%20injected",
    ] {
        let response = client
            .post(format!("{base}/webhooks/{path}"))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{path}");
    }
    let metrics = switchboard_e2e::admin_client()
        .get(format!("{}/metrics", harness.admin_url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!metrics.contains("nosuchchannel"), "{metrics}");
    assert!(!metrics.contains("injected"), "{metrics}");
    for line in metrics
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        assert!(
            line.starts_with("switchboard_") || line.starts_with("process_"),
            "unexpected metrics line: {line}"
        );
    }
}
