//! What the sandbox tests share: a runtime with the WhatsApp adapter
//! pointed at the simulator beside the hostile test adapter, and checks.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use switchboard_contract::model::{
    Content, OutboundMessage, Purpose, TemplateMessage, TemplateParameter,
};
use switchboard_e2e::adapter_packages;
use switchboard_runtime::{AdapterRuntime, CallError, ChannelGrant, SandboxLimits};
use switchboard_simulator::{Simulator, SimulatorConfig, SimulatorHandle};

/// [`runtime_with_limits`] with [`sandbox_limits`].
pub async fn runtime_with_simulator() -> (AdapterRuntime, SimulatorHandle) {
    runtime_with_limits(sandbox_limits()).await
}

/// [`runtime_with_limits`] for a test of a bound other than CPU time: the
/// tight limits of [`sandbox_limits`] with a CPU budget of 30 s. The floods
/// such a test sends (3,000 request starts, 100,000 log calls) cost real
/// CPU, the host's share included: 49–76 ms on one machine, and more than
/// 300 ms on a slower, busier one, where the call was stopped by its CPU
/// budget before it reached the bound under test. The CPU budget has tests
/// of its own.
pub async fn runtime_for_bounds() -> (AdapterRuntime, SimulatorHandle) {
    runtime_with_limits(SandboxLimits {
        cpu_budget: Duration::from_secs(30),
        call_timeout: Duration::from_secs(60),
        ..sandbox_limits()
    })
    .await
}

/// Tighter limits than the host's defaults, so that a guest that loops or
/// hoards is stopped within a fraction of a second.
pub fn sandbox_limits() -> SandboxLimits {
    SandboxLimits {
        memory_bytes: 32 * 1024 * 1024,
        cpu_budget: Duration::from_millis(300),
        call_timeout: Duration::from_secs(10),
        http_timeout: Duration::from_secs(5),
        ..SandboxLimits::default()
    }
}

/// [`runtime_with_simulator`] with the given sandbox limits.
pub async fn runtime_with_limits(limits: SandboxLimits) -> (AdapterRuntime, SimulatorHandle) {
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let simulator = Simulator::start(addr, SimulatorConfig::default())
        .await
        .unwrap();
    let whatsapp = simulator.whatsapp();
    let grant = ChannelGrant {
        settings: HashMap::from([(
            "phone_number_id".to_owned(),
            whatsapp.phone_number_id().to_owned(),
        )]),
        secrets: HashMap::from([
            (
                "access_token".to_owned(),
                whatsapp.access_token().to_owned(),
            ),
            ("app_secret".to_owned(), whatsapp.app_secret().to_owned()),
            ("verify_token".to_owned(), "verify-me".to_owned()),
        ]),
        allow_hosts: None,
        endpoints: [("graph.facebook.com".to_owned(), simulator.base_url())].into(),
        ..Default::default()
    };
    let options = switchboard_e2e::unsigned_runtime_options(limits);
    let runtime =
        AdapterRuntime::new(options, HashMap::from([("whatsapp".to_owned(), grant)])).unwrap();
    for result in runtime.load_dir(adapter_packages()).await.unwrap() {
        result.unwrap();
    }
    (runtime, simulator)
}

pub fn message(to: &str) -> OutboundMessage {
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
pub async fn assert_whatsapp_still_serves(
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

pub async fn hostile_send(runtime: &AdapterRuntime, how: &str) -> CallError {
    let adapter = runtime.get("hostile").expect("hostile adapter loaded");
    adapter
        .send(&[message(how)])
        .await
        .expect_err("misbehaving call must fail")
}

/// A listener on loopback that counts the connections it accepts, so a
/// test can show a refused request never reached the network.
pub async fn counting_listener() -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((_socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
    (port, accepted)
}

pub fn expect_egress_denied(error: &CallError, needle: &str) {
    match error {
        CallError::EgressDenied { reason, .. } => {
            assert!(reason.contains(needle), "`{needle}` in: {reason}")
        }
        other => panic!("expected an egress denial naming `{needle}`, got {other:?}"),
    }
}
