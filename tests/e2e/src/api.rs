//! The admin API as tests call it: submit a campaign, read and poll its
//! status.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// `POST /api/campaigns` with the campaign's TOML and an uploaded audience;
/// asserts `202` and returns the reply.
pub async fn submit(client: &reqwest::Client, url: &str, campaign: &str, audience: &str) -> Value {
    let response = client
        .post(format!("{url}/api/campaigns"))
        .json(&json!({"campaign": campaign, "audience_csv": audience}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202, "{}", response.text().await.unwrap());
    response.json().await.unwrap()
}

/// `GET /api/campaigns/{name}`.
pub async fn status(client: &reqwest::Client, url: &str, name: &str) -> Value {
    client
        .get(format!("{url}/api/campaigns/{name}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Sends of the campaign in `state`.
pub fn count(status: &Value, state: &str) -> u64 {
    status["sends"][state].as_u64().unwrap_or(0)
}

/// The sum of a status's counts under `field` (`sends`, `decisions`…).
pub fn total(status: &Value, field: &str) -> u64 {
    status[field]
        .as_object()
        .map_or(0, |counts| counts.values().filter_map(Value::as_u64).sum())
}

/// Poll the campaign until `done` says so (at most two minutes).
pub async fn watch(
    client: &reqwest::Client,
    url: &str,
    name: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let start = Instant::now();
    loop {
        let current = status(client, url, name).await;
        if done(&current) {
            return current;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "campaign {name} never got there: {current}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
