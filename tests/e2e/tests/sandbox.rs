//! The sandbox: adapters that loop, hoard memory, trap, reach for a host
//! outside their allow-list, or touch the filesystem or environment fail
//! their own call with a clear error, and the host keeps serving the real
//! WhatsApp adapter.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use switchboard_contract::model::{
    Content, OutboundMessage, Purpose, TemplateMessage, TemplateParameter,
};
use switchboard_e2e::adapter_packages;
use switchboard_runtime::{AdapterRuntime, CallError, ChannelGrant, RuntimeOptions, SandboxLimits};
use switchboard_simulator::{Simulator, SimulatorConfig, SimulatorHandle};

async fn runtime_with_simulator() -> (AdapterRuntime, SimulatorHandle) {
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let simulator = Simulator::start(addr, SimulatorConfig::default())
        .await
        .unwrap();
    let whatsapp = simulator.whatsapp();
    let grant = ChannelGrant {
        settings: HashMap::from([
            ("base_url".to_owned(), simulator.base_url()),
            (
                "phone_number_id".to_owned(),
                whatsapp.phone_number_id().to_owned(),
            ),
        ]),
        secrets: HashMap::from([
            (
                "access_token".to_owned(),
                whatsapp.access_token().to_owned(),
            ),
            ("app_secret".to_owned(), whatsapp.app_secret().to_owned()),
            ("verify_token".to_owned(), "verify-me".to_owned()),
        ]),
        allow_hosts: None,
    };
    let options = RuntimeOptions {
        limits: SandboxLimits {
            memory_bytes: 32 * 1024 * 1024,
            cpu_budget: Duration::from_millis(300),
            call_timeout: Duration::from_secs(10),
            http_timeout: Duration::from_secs(5),
        },
        allow_loopback_http: true,
        cache_dir: Some(switchboard_e2e::workspace_root().join("target/wasm/cwasm-cache")),
        storage_limits: Default::default(),
    };
    let runtime =
        AdapterRuntime::new(options, HashMap::from([("whatsapp".to_owned(), grant)])).unwrap();
    for result in runtime.load_dir(adapter_packages()).await.unwrap() {
        result.unwrap();
    }
    (runtime, simulator)
}

fn message(to: &str) -> OutboundMessage {
    OutboundMessage {
        idempotency_key: format!("key-{to}"),
        to: to.to_owned(),
        purpose: Purpose::Marketing,
        content: Content::Template(TemplateMessage {
            name: "winback_offer".into(),
            language: Some("en_US".into()),
            parameters: vec![TemplateParameter {
                name: "1".into(),
                value: "Jane".into(),
            }],
            link: None,
        }),
        ttl_seconds: None,
        attempt: 1,
    }
}

/// The WhatsApp adapter still delivers through the simulator.
async fn assert_whatsapp_still_serves(
    runtime: &AdapterRuntime,
    simulator: &SimulatorHandle,
    to: &str,
) {
    let adapter = runtime.get("whatsapp").expect("whatsapp stays loaded");
    let results = adapter
        .send(&[message(to)])
        .await
        .expect("whatsapp call succeeds");
    let receipt = results[0].as_ref().expect("whatsapp accepted the template");
    assert!(
        receipt
            .platform_message_id
            .as_deref()
            .unwrap_or_default()
            .starts_with("wamid."),
        "{receipt:?}"
    );
    assert!(
        simulator
            .whatsapp()
            .messages()
            .iter()
            .any(|m| m.to == to.trim_start_matches('+')),
        "the simulator recorded the message to {to}"
    );
}

async fn hostile_send(runtime: &AdapterRuntime, how: &str) -> CallError {
    let adapter = runtime.get("hostile").expect("hostile adapter loaded");
    adapter
        .send(&[message(how)])
        .await
        .expect_err("misbehaving call must fail")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misbehaving_adapters_fail_their_call_and_the_host_carries_on() {
    let (runtime, simulator) = runtime_with_simulator().await;
    assert_whatsapp_still_serves(&runtime, &simulator, "+4915112340000").await;

    let started = Instant::now();
    let error = hostile_send(&runtime, "loop").await;
    assert!(
        matches!(error, CallError::CpuBudgetExceeded { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("CPU budget"), "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the loop was stopped by the CPU budget, not the timeout"
    );
    assert_whatsapp_still_serves(&runtime, &simulator, "+4915112340001").await;

    let error = hostile_send(&runtime, "alloc").await;
    assert!(
        matches!(error, CallError::MemoryLimitExceeded { limit_bytes, .. } if limit_bytes == 32 * 1024 * 1024),
        "{error:?}"
    );
    assert!(error.to_string().contains("memory limit"), "{error}");
    assert_whatsapp_still_serves(&runtime, &simulator, "+4915112340002").await;

    let error = hostile_send(&runtime, "trap").await;
    match &error {
        CallError::Trap { message, .. } => assert!(
            message.contains("deliberate trap for the sandbox test"),
            "{message}"
        ),
        other => panic!("expected a trap, got {other:?}"),
    }
    assert_whatsapp_still_serves(&runtime, &simulator, "+4915112340003").await;

    let error = hostile_send(&runtime, "egress").await;
    match &error {
        CallError::EgressDenied { reason, .. } => {
            assert!(reason.contains("evil.example"), "{reason}");
            assert!(
                reason.contains("api.hostile.example"),
                "names the allow-list: {reason}"
            );
        }
        other => panic!("expected egress denial, got {other:?}"),
    }
    assert_whatsapp_still_serves(&runtime, &simulator, "+4915112340004").await;

    let error = hostile_send(&runtime, "file").await;
    match &error {
        CallError::SandboxViolation { import, .. } => {
            assert!(import.starts_with("wasi:filesystem/"), "{import}")
        }
        other => panic!("expected a sandbox violation, got {other:?}"),
    }
    assert!(error.to_string().contains("no filesystem"), "{error}");

    let error = hostile_send(&runtime, "env").await;
    match &error {
        CallError::SandboxViolation { import, .. } => {
            assert!(import.starts_with("wasi:cli/environment"), "{import}")
        }
        other => panic!("expected a sandbox violation, got {other:?}"),
    }
    assert_whatsapp_still_serves(&runtime, &simulator, "+4915112340005").await;

    // The hostile adapter itself still works for well-behaved calls.
    let adapter = runtime.get("hostile").unwrap();
    let results = adapter.send(&[message("fine")]).await.unwrap();
    assert_eq!(
        results[0].as_ref().unwrap().platform_message_id.as_deref(),
        Some("ok:fine")
    );
    let stats = &adapter.stats;
    assert!(stats.failures.load(std::sync::atomic::Ordering::Relaxed) >= 6);
    simulator.shutdown().await.unwrap();
}
