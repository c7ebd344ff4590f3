//! The shared fault injection over real HTTP on loopback: connections reset
//! after the platform accepted a send, slow replies after processing, and
//! counting what each recipient got.

use std::time::{Duration, Instant};

use reqwest::Client;
use serde_json::{Value, json};
use switchboard_simulator::line::DEFAULT_CHANNEL_ACCESS_TOKEN;
use switchboard_simulator::whatsapp::DEFAULT_ACCESS_TOKEN;
use switchboard_simulator::{FaultConfig, Simulator, SimulatorConfig, SimulatorHandle};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const CUSTOMER: &str = "4915112345678";
const LINE_USER: &str = "U4af4980629a1b2c3d4e5f60718293a4b";
const RETRY_KEY: &str = "123e4567-e89b-42d3-a456-426614174001";

async fn start() -> (SimulatorHandle, Client) {
    let sim = Simulator::start(
        "127.0.0.1:0".parse().expect("addr"),
        SimulatorConfig::default(),
    )
    .await
    .expect("simulator starts");
    let client = Client::builder().no_proxy().build().expect("client");
    (sim, client)
}

fn whatsapp_url(sim: &SimulatorHandle) -> String {
    format!(
        "{}/v21.0/{}/messages",
        sim.base_url(),
        sim.whatsapp().phone_number_id()
    )
}

fn whatsapp_text(body: &str) -> Value {
    json!({"messaging_product": "whatsapp", "to": CUSTOMER, "type": "text", "text": {"body": body}})
}

/// A WhatsApp text send, as reqwest sees it.
async fn whatsapp_send(
    client: &Client,
    sim: &SimulatorHandle,
    body: &str,
) -> reqwest::Result<reqwest::Response> {
    client
        .post(whatsapp_url(sim))
        .bearer_auth(DEFAULT_ACCESS_TOKEN)
        .json(&whatsapp_text(body))
        .send()
        .await
}

/// A LINE push with a retry key, as reqwest sees it.
async fn line_push(client: &Client, sim: &SimulatorHandle) -> reqwest::Result<reqwest::Response> {
    client
        .post(format!("{}/v2/bot/message/push", sim.base_url()))
        .bearer_auth(DEFAULT_CHANNEL_ACCESS_TOKEN)
        .header("X-Line-Retry-Key", RETRY_KEY)
        .json(&json!({"to": LINE_USER, "messages": [{"type": "text", "text": "Hi"}]}))
        .send()
        .await
}

async fn get_json(client: &Client, sim: &SimulatorHandle, path: &str) -> Value {
    client
        .get(format!("{}{path}", sim.base_url()))
        .send()
        .await
        .expect("control request")
        .json()
        .await
        .expect("control json")
}

async fn put_faults(client: &Client, sim: &SimulatorHandle, body: Value) -> (u16, Value) {
    let response = client
        .put(format!("{}/_sim/faults", sim.base_url()))
        .json(&body)
        .send()
        .await
        .expect("control request");
    let status = response.status().as_u16();
    (status, response.json().await.expect("control json"))
}

/// The reqwest error and its source chain, for assertion messages.
fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// What a client that never sees a response gets from reqwest.
fn assert_no_response(result: reqwest::Result<reqwest::Response>) -> reqwest::Error {
    let error = match result {
        Ok(response) => panic!(
            "expected no response, got HTTP {} ({:?})",
            response.status(),
            response.headers()
        ),
        Err(error) => error,
    };
    assert!(error.status().is_none(), "{}", describe(&error));
    assert!(!error.is_timeout(), "{}", describe(&error));
    assert!(error.is_request(), "{}", describe(&error));
    error
}

#[tokio::test]
async fn reset_after_accept_records_the_send_and_answers_nothing() {
    let (sim, client) = start().await;
    let wa = sim.whatsapp();
    wa.open_window(CUSTOMER).expect("window");
    let (status, config) = put_faults(
        &client,
        &sim,
        json!({"reset_after_accept_rate": 1.0, "slow_response_ms": 0}),
    )
    .await;
    assert_eq!(status, 200, "{config}");
    assert_eq!(config["reset_after_accept_rate"], 1.0);
    assert_eq!(config["error_rate"], 0.0);
    assert_eq!(sim.faults().reset_after_accept_rate, 1.0);

    // WhatsApp: the client gets an error, the message was accepted.
    let error = assert_no_response(whatsapp_send(&client, &sim, "order shipped").await);
    eprintln!("whatsapp, reqwest sees: {}", describe(&error));
    let messages = wa.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].text, "order shipped");
    assert!(messages[0].wamid.starts_with("wamid."));
    let stats = wa.stats();
    assert_eq!((stats.accepted, stats.reset_after_accept), (1, 1));
    assert_eq!(stats.rejected_total, 0);
    assert_eq!(wa.recipient_counts()[CUSTOMER], 1);

    // A rejected send is answered normally, even at rate 1.0.
    let refused = client
        .post(whatsapp_url(&sim))
        .bearer_auth("wrong-token")
        .json(&whatsapp_text("nope"))
        .send()
        .await
        .expect("a rejection is answered");
    assert_eq!(refused.status().as_u16(), 401);

    // LINE: the push is accepted and its retry key remembered...
    let line = sim.line();
    let error = assert_no_response(line_push(&client, &sim).await);
    eprintln!("line, reqwest sees: {}", describe(&error));
    let sent = line.messages();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to, LINE_USER);
    assert_eq!(sent[0].retry_key.as_deref(), Some(RETRY_KEY));
    assert_eq!(line.requests()[0].status, 200);

    // ... so the client's retry with the same key is a 409 (answered: a
    // replay is not an acceptance), not a second message.
    let retry = line_push(&client, &sim).await.expect("the 409 is answered");
    assert_eq!(retry.status().as_u16(), 409);
    assert_eq!(
        retry
            .headers()
            .get("x-line-accepted-request-id")
            .and_then(|v| v.to_str().ok()),
        Some(sent[0].request_id.as_str())
    );
    let body: Value = retry.json().await.expect("json");
    assert_eq!(body["message"], "The retry key is already accepted");
    assert_eq!(line.messages().len(), 1);
    let stats = line.stats();
    assert_eq!(
        (
            stats.push_accepted,
            stats.duplicates,
            stats.reset_after_accept
        ),
        (1, 1, 1)
    );
    assert_eq!(line.recipient_counts()[LINE_USER], 1);

    // The same over the control API.
    assert_eq!(
        get_json(&client, &sim, "/_sim/line/recipients").await,
        json!({LINE_USER: 1})
    );
    assert_eq!(
        get_json(&client, &sim, "/_sim/whatsapp/recipients").await,
        json!({CUSTOMER: 1})
    );
    assert_eq!(
        get_json(&client, &sim, "/_sim/whatsapp/stats").await["reset_after_accept"],
        1
    );
    let shared = get_json(&client, &sim, "/_sim/faults/stats").await;
    assert_eq!(shared["reset_after_accept"], 2, "{shared}");
    assert_eq!(sim.fault_stats().reset_after_accept, 2);
    assert!(sim.duplicates().values().all(|&n| n == 0));

    // Back to normal: the next send is answered.
    sim.set_faults(FaultConfig::default()).expect("faults");
    let answered = whatsapp_send(&client, &sim, "again")
        .await
        .expect("answered");
    assert_eq!(answered.status().as_u16(), 200);
    sim.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_reset_connection_carries_no_status_line() {
    let (sim, _client) = start().await;
    sim.whatsapp().open_window(CUSTOMER).expect("window");
    sim.set_faults(FaultConfig {
        reset_after_accept_rate: 1.0,
        ..FaultConfig::default()
    })
    .expect("faults");

    let body = whatsapp_text("raw").to_string();
    let request = format!(
        "POST /v21.0/{}/messages HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{}",
        sim.whatsapp().phone_number_id(),
        sim.addr(),
        DEFAULT_ACCESS_TOKEN,
        body.len(),
        body
    );
    let mut stream = tokio::net::TcpStream::connect(sim.addr())
        .await
        .expect("connect");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("write request");
    let mut received = Vec::new();
    let outcome = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut received))
        .await
        .expect("the server closes the connection");
    // A reset (ECONNRESET) or, at worst, a bare close: never a byte of HTTP.
    match &outcome {
        Ok(_) => {}
        Err(error) => assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset, "{error}"),
    }
    assert!(
        received.is_empty(),
        "got {:?}",
        String::from_utf8_lossy(&received)
    );
    assert_eq!(sim.whatsapp().messages().len(), 1);
    assert_eq!(sim.whatsapp().stats().reset_after_accept, 1);
}

#[tokio::test]
async fn slow_responses_come_after_the_send_was_recorded() {
    let (sim, client) = start().await;
    let wa = sim.whatsapp();
    wa.open_window(CUSTOMER).expect("window");
    sim.set_faults(FaultConfig {
        slow_response_ms: 300,
        ..FaultConfig::default()
    })
    .expect("faults");

    let impatient = Client::builder()
        .no_proxy()
        .timeout(Duration::from_millis(100))
        .build()
        .expect("client");
    let started = Instant::now();
    let error = whatsapp_send(&impatient, &sim, "slow one")
        .await
        .expect_err("the client gives up before the reply");
    assert!(error.is_timeout(), "{}", describe(&error));
    assert!(started.elapsed() < Duration::from_millis(300));
    // Accepted and recorded although the client gave up (at once, unless
    // the machine is so loaded that the request was still on its way).
    let deadline = Instant::now() + Duration::from_secs(2);
    while wa.messages().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        wa.messages().len(),
        1,
        "recorded although the client timed out"
    );
    assert_eq!(wa.messages()[0].text, "slow one");
    assert_eq!(wa.stats().accepted, 1);
    assert_eq!(wa.stats().reset_after_accept, 0);

    // A patient client gets the normal reply, late.
    let started = Instant::now();
    let reply = whatsapp_send(&client, &sim, "slow two")
        .await
        .expect("answered");
    assert_eq!(reply.status().as_u16(), 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(wa.recipient_counts()[CUSTOMER], 2);
    assert!(sim.fault_stats().slow_responses >= 2);
}

#[tokio::test]
async fn fault_rates_are_validated() {
    let (sim, client) = start().await;
    let (status, body) = put_faults(&client, &sim, json!({"reset_after_accept_rate": 1.5})).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["error"],
        "reset_after_accept_rate must be between 0.0 and 1.0, got 1.5"
    );
    let (status, body) = put_faults(&client, &sim, json!({"error_rate": 1.5})).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["error"],
        "error_rate must be between 0.0 and 1.0, got 1.5"
    );
    // JSON has no NaN; the Rust API refuses it.
    let error = sim
        .set_faults(FaultConfig {
            reset_after_accept_rate: f64::NAN,
            ..FaultConfig::default()
        })
        .expect_err("NaN is refused");
    assert_eq!(
        error.to_string(),
        "reset_after_accept_rate must be between 0.0 and 1.0, got NaN"
    );
    // Nothing was applied.
    assert_eq!(sim.faults(), FaultConfig::default());
    assert_eq!(
        get_json(&client, &sim, "/_sim/faults").await,
        json!({"error_rate": 0.0, "latency_ms": 0, "reset_after_accept_rate": 0.0, "slow_response_ms": 0})
    );
}

#[tokio::test]
async fn duplicates_count_recipients_with_more_than_one_message() {
    let (sim, client) = start().await;
    let wa = sim.whatsapp();
    wa.open_window(CUSTOMER).expect("window");
    let other = "4915112349999";
    wa.open_window(other).expect("window");
    for text in ["first", "second"] {
        let reply = whatsapp_send(&client, &sim, text).await.expect("answered");
        assert_eq!(reply.status().as_u16(), 200);
    }
    let reply = client
        .post(whatsapp_url(&sim))
        .bearer_auth(DEFAULT_ACCESS_TOKEN)
        .json(&json!({"messaging_product": "whatsapp", "to": other, "type": "text", "text": {"body": "hi"}}))
        .send()
        .await
        .expect("answered");
    assert_eq!(reply.status().as_u16(), 200);

    let counts = wa.recipient_counts();
    assert_eq!(counts[CUSTOMER], 2);
    assert_eq!(counts[other], 1);
    let duplicates = sim.duplicates();
    assert_eq!(duplicates["whatsapp"], 1);
    assert_eq!(
        duplicates.keys().map(String::as_str).collect::<Vec<_>>(),
        ["kakaotalk", "line", "rcs", "telegram", "wechat", "whatsapp"]
    );
    assert!(
        duplicates
            .iter()
            .all(|(platform, &n)| platform == "whatsapp" || n == 0)
    );
    assert_eq!(
        get_json(&client, &sim, "/_sim/whatsapp/recipients").await,
        json!({CUSTOMER: 2, other: 1})
    );

    wa.clear_messages();
    assert!(wa.recipient_counts().is_empty());
    assert_eq!(sim.duplicates()["whatsapp"], 0);
}
