//! Triggers over the admin API against the WhatsApp simulator: an
//! abandoned cart sends once after the wait; a purchase before the wait
//! cancels it (and one that arrived first, out of order, too); an event past
//! its deadline is skipped with the reason; a replayed event id does
//! nothing; a frequency cap holds across events and shows in the decision
//! log.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchboard_e2e::platforms::whatsapp;
use switchboard_e2e::{Harness, admin_client};
use switchboard_simulator::whatsapp::{Template, TemplateCategory};

const CART_NUDGE: &str = r#"
name = "cart-nudge"
purpose = "marketing"
route = ["whatsapp"]

[templates.whatsapp]
name = "cart_reminder"
language = "en_US"
parameters = ["{{name}}", "{{cart_url}}"]

[trigger]
event = "cart_abandoned"
wait = "2s"
cancel_on = ["order_placed"]
deadline = "60m"
"#;

fn phone(n: u32) -> String {
    format!("+4915170000{n:03}")
}

fn cart(id: &str, profile: &str, n: u32, time: jiff::Timestamp) -> Value {
    json!({
        "id": id,
        "profile_id": profile,
        "name": "cart_abandoned",
        "time": time.to_string(),
        "properties": {
            "phone": phone(n),
            "consent_whatsapp_marketing": "yes",
            "name": format!("Customer {n}"),
            "cart_url": format!("https://shop.example/cart/{n}"),
        }
    })
}

fn order(id: &str, profile: &str, time: jiff::Timestamp) -> Value {
    json!({"id": id, "profile_id": profile, "name": "order_placed", "time": time.to_string()})
}

async fn post(client: &reqwest::Client, url: &str, path: &str, body: Value) -> (u16, Value) {
    let response = client
        .post(format!("{url}{path}"))
        .json(&body)
        .send()
        .await
        .expect("admin API answers");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON body"))
}

async fn get(client: &reqwest::Client, url: &str, path: &str) -> Value {
    client
        .get(format!("{url}{path}"))
        .send()
        .await
        .expect("admin API answers")
        .json()
        .await
        .expect("JSON body")
}

/// The one action of the one event a request carried.
fn action(body: &Value, event: usize) -> &Value {
    &body["results"][event]["actions"][0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_carts_are_nudged_once_after_the_wait_unless_the_customer_buys() {
    let harness = Harness::start(whatsapp::unlimited(), "\n[frequency_caps]\nper_day = 1\n").await;
    let platform = harness.simulator.whatsapp();
    platform.add_template(Template {
        name: "cart_reminder".into(),
        language: "en_US".into(),
        category: TemplateCategory::Marketing,
        body_params: 2,
        header_params: 0,
        body_text: "{{1}}, your cart is waiting: {{2}}".into(),
    });
    harness.serve_delivering().await;
    let url = harness.admin_url();
    let client = admin_client();

    // A trigger takes no audience; a bad one is refused naming the field.
    let (status, body) = post(
        &client,
        &url,
        "/api/campaigns",
        json!({"campaign": CART_NUDGE.replace("wait = \"2s\"", "wait = \"soon\"")}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["errors"][0]
            .as_str()
            .unwrap()
            .contains("field `trigger.wait`: `soon` is not a duration"),
        "{body}"
    );
    let (status, body) = post(
        &client,
        &url,
        "/api/campaigns",
        json!({"campaign": CART_NUDGE}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["state"], "listening");

    let now = jiff::Timestamp::now();
    let started = Instant::now();
    // p1 abandons a cart; p2 abandons one and buys within the wait; p3's
    // event arrives 61 minutes late; p4 bought (event time later than the
    // cart's) but the purchase arrived before the cart event.
    let (status, body) = post(
        &client,
        &url,
        "/api/events",
        json!({"events": [
            cart("c1", "p1", 1, now),
            cart("c2", "p2", 2, now),
            cart("c3", "p3", 3, now - Duration::from_secs(61 * 60)),
            order("o4", "p4", now + Duration::from_millis(500)),
            cart("c4", "p4", 4, now),
        ]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(action(&body, 0)["outcome"], "scheduled", "{body}");
    let due = action(&body, 0)["due_ms"].as_i64().unwrap();
    assert_eq!(due, now.as_millisecond() + 2_000);
    assert_eq!(action(&body, 1)["outcome"], "scheduled", "{body}");
    assert_eq!(action(&body, 2)["outcome"], "skipped", "{body}");
    assert_eq!(action(&body, 2)["reason"], "deadline_passed", "{body}");
    assert_eq!(action(&body, 4)["outcome"], "skipped", "{body}");
    assert_eq!(action(&body, 4)["reason"], "cancelled_by_event", "{body}");

    let (status, body) = post(
        &client,
        &url,
        "/api/events",
        json!({"events": [order("o2", "p2", now + Duration::from_millis(800))]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(action(&body, 0)["outcome"], "cancelled", "{body}");
    assert_eq!(
        action(&body, 0)["cancelled"].as_array().unwrap().len(),
        1,
        "{body}"
    );

    // Nothing before the wait is over.
    tokio::time::sleep(Duration::from_millis(1_200).saturating_sub(started.elapsed())).await;
    assert!(
        platform.messages().is_empty(),
        "sent before the wait: {:?}",
        platform.messages()
    );

    // p1's nudge goes out once, with the event's properties.
    let deadline = Instant::now() + Duration::from_secs(20);
    while platform.messages_to(&phone(1)).is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let sent = platform.messages_to(&phone(1));
    if sent.len() != 1 {
        let sends = get(&client, &url, "/api/sends?campaign=cart-nudge").await;
        panic!("p1 got {} messages; the outbox: {sends}", sent.len());
    }
    assert_eq!(sent[0].template_name.as_deref(), Some("cart_reminder"));
    assert_eq!(
        sent[0].parameters,
        vec![
            "Customer 1".to_owned(),
            "https://shop.example/cart/1".to_owned()
        ]
    );
    assert!(
        sent[0].received_at_ms >= due,
        "sent at {} before its due time {due}",
        sent[0].received_at_ms
    );

    // Replaying p1's event does nothing; a second cart of p1 the same day
    // is held back by the frequency cap, and the decision log says so.
    let (_, body) = post(
        &client,
        &url,
        "/api/events",
        json!(cart("c1", "p1", 1, now)),
    )
    .await;
    assert_eq!(body["results"][0]["status"], "duplicate", "{body}");
    let (_, body) = post(
        &client,
        &url,
        "/api/events",
        json!(cart("c1-later", "p1", 1, jiff::Timestamp::now())),
    )
    .await;
    assert_eq!(action(&body, 0)["outcome"], "skipped", "{body}");
    assert_eq!(action(&body, 0)["reason"], "frequency_cap", "{body}");
    let decisions = get(&client, &url, "/api/profiles/p1/decisions").await;
    let last = decisions
        .as_array()
        .and_then(|d| d.last())
        .cloned()
        .unwrap_or_default();
    assert_eq!(last["reason"], "frequency_cap", "{decisions}");
    assert!(
        last["detail"]
            .as_str()
            .unwrap()
            .contains("at most 1 per day"),
        "{decisions}"
    );

    // Give p2..p4 time they would have needed, then count everything.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for n in 2..=4 {
        assert!(
            platform.messages_to(&phone(n)).is_empty(),
            "p{n} got a message: {:?}",
            platform.messages_to(&phone(n))
        );
    }
    assert_eq!(platform.messages().len(), 1);
    assert_eq!(harness.simulator.duplicates()["whatsapp"], 0);

    let status = get(&client, &url, "/api/campaigns/cart-nudge").await;
    assert_eq!(status["sends"]["sent"], 1, "{status}");
    assert_eq!(status["sends"]["cancelled"], 1, "{status}");
    assert_eq!(
        status["decisions"]["skipped:deadline_passed"], 1,
        "{status}"
    );
    assert_eq!(status["decisions"]["cancelled:cancelled"], 1, "{status}");
}
