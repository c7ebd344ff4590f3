//! The sandbox: adapters that loop, hoard memory, trap, reach for a host
//! outside their allow-list, or touch the filesystem or environment fail
//! their own call with a clear error, and the host keeps serving the real
//! WhatsApp adapter.

mod sandbox_support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sandbox_support::*;
use switchboard_runtime::{CallError, SandboxLimits};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numeric_loopback_and_special_range_hosts_are_refused_even_when_declared() {
    let (runtime, simulator) = runtime_with_simulator().await;
    let (port, accepted) = counting_listener().await;
    // Every form below is declared in the hostile manifest, and the operator
    // approved every declared host (no `allow_hosts`): the address itself
    // must still be refused.
    let refused = [
        ("https://2130706433/".to_owned(), "127.0.0.1"),
        ("https://0x7f000001/".to_owned(), "127.0.0.1"),
        ("https://0177.0.0.1/".to_owned(), "127.0.0.1"),
        ("https://127.1/".to_owned(), "127.0.0.1"),
        (
            "https://169.254.169.254/latest/meta-data/".to_owned(),
            "169.254.169.254",
        ),
        ("https://100.64.0.1/".to_owned(), "100.64.0.1"),
        ("https://198.18.0.1/".to_owned(), "198.18.0.1"),
        ("https://0.0.0.0/".to_owned(), "0.0.0.0"),
        ("https://[64:ff9b::7f00:1]/".to_owned(), "64:ff9b::"),
        ("https://[2002:7f00:1::]/".to_owned(), "2002:"),
        ("https://[::ffff:127.0.0.1]/".to_owned(), "127.0.0.1"),
        // Undeclared loopback port, plain http: the admin API's shape.
        (format!("http://127.0.0.1:{port}/api/sends"), "https"),
        (format!("https://127.0.0.1:{port}/api/sends"), "127.0.0.1"),
        (format!("https://localhost:{port}/"), "localhost"),
        // A declared host on a port it did not declare.
        ("https://api.hostile.example:9443/".to_owned(), "9443"),
    ];
    // Through the host's `http.send` and through `wasi:http` alike.
    for path in ["url", "wasi-url"] {
        for (url, needle) in &refused {
            let error = hostile_send(&runtime, &format!("{path}:{url}")).await;
            expect_egress_denied(&error, needle);
        }
    }
    assert_eq!(
        accepted.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "no refused request reached the loopback listener"
    );
    assert_whatsapp_still_serves(&runtime, &simulator, "+4915112340100").await;
    simulator.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_an_adapter_makes_the_host_hold_is_bounded() {
    let (runtime, simulator) = runtime_for_bounds().await;
    let limits = SandboxLimits::default();

    let error = hostile_send(&runtime, "flood").await;
    let text = error.to_string();
    assert!(
        text.contains("max_requests_in_flight"),
        "3,000 requests started at once: {text}"
    );

    let error = hostile_send(&runtime, "hostflood").await;
    let text = error.to_string();
    assert!(
        text.contains("1001 requests in one `http.send` call; the host takes at most 1000"),
        "1,001 requests in one host call: {text}"
    );

    let error = hostile_send(&runtime, "bigid").await;
    assert!(
        matches!(error, CallError::BoundExceeded { .. }),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .contains(&limits.max_platform_id_bytes.to_string()),
        "names the bound: {error}"
    );

    let error = hostile_send(&runtime, "tokenhuge").await;
    assert!(
        matches!(error, CallError::BoundExceeded { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("token_cache_bytes"), "{error}");

    // 1,500 tokens (budget 1,000): the cache evicts down to its entry budget instead of
    // growing; the call itself is fine.
    let adapter = runtime.get("hostile").unwrap();
    adapter.send(&[message("tokens")]).await.unwrap();
    let (entries, bytes) = adapter.token_usage();
    assert!(
        entries <= limits.token_cache.max_entries && bytes <= limits.token_cache.max_bytes,
        "token cache held {entries} entries, {bytes} bytes"
    );

    // A 1 MiB failure message is cut, not stored whole.
    let results = adapter.send(&[message("bigfailure")]).await.unwrap();
    let failure = results[0].as_ref().expect_err("a permanent failure");
    let failure_text = format!("{failure:?}");
    assert!(
        failure_text.len() < 4 * limits.max_failure_message_bytes,
        "failure text of {} bytes",
        failure_text.len()
    );

    // A log flood is capped (the call still succeeds) and cannot forge a
    // line of the host's own log.
    let captured = capture_log();
    let results = adapter.send(&[message("logflood")]).await.unwrap();
    assert!(results[0].is_ok(), "{results:?}");
    let log = String::from_utf8_lossy(&captured.lock().unwrap()).into_owned();
    let adapter_lines = log
        .lines()
        .filter(|l| l.contains("adapter=\"hostile\"") || l.contains("adapter=hostile"))
        .count();
    assert!(
        adapter_lines <= limits.max_log_lines + 1,
        "{adapter_lines} adapter log lines for one call"
    );
    assert!(log.contains("per-call budget"), "the drop is reported once");
    assert!(
        !log.lines().any(|l| l
            .trim_start()
            .starts_with("INFO switchboard: adapter loaded")),
        "a newline in a guest log forged a host line:\n{}",
        &log[..log.len().min(2000)]
    );
    assert!(
        log.contains("forged=yes"),
        "the guest line is kept, escaped"
    );

    assert_whatsapp_still_serves(&runtime, &simulator, "+4915112340200").await;
    simulator.shutdown().await.unwrap();
}

/// Send the host's log to a buffer the test reads.
fn capture_log() -> Arc<Mutex<Vec<u8>>> {
    #[derive(Clone)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let writer = Buffer(buffer.clone());
    tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .try_init()
        .expect("the only subscriber in this test binary");
    buffer
}

fn hostile_webhook(action: &str) -> switchboard_contract::model::HttpRequest {
    switchboard_contract::model::HttpRequest {
        method: "POST".into(),
        path_and_query: format!("/webhooks/hostile?do={action}"),
        headers: Vec::new(),
        body: b"{}".to_vec(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_answers_past_the_host_bounds_fail_the_call() {
    let (runtime, simulator) = runtime_for_bounds().await;
    let adapter = runtime.get("hostile").unwrap();
    for (action, bound) in [
        ("events", "max_webhook_events"),
        ("bigreply", "max_webhook_reply"),
    ] {
        let error = adapter
            .handle_webhook(&hostile_webhook(action))
            .await
            .expect_err(action);
        assert!(
            matches!(error, CallError::BoundExceeded { .. }),
            "{error:?}"
        );
        assert!(error.to_string().contains(bound), "{action}: {error}");
    }
    // One long inbound text is cut to the host's bound, not refused.
    let result = adapter
        .handle_webhook(&hostile_webhook("bigtext"))
        .await
        .unwrap();
    assert_eq!(result.events.len(), 1);
    match &result.events[0].kind {
        switchboard_contract::model::EventKind::Inbound(inbound) => {
            let text = inbound.text.as_deref().unwrap_or_default();
            assert!(
                text.len() <= 64 * 1024,
                "inbound text of {} bytes",
                text.len()
            );
        }
        other => panic!("expected an inbound event, got {other:?}"),
    }
    assert_whatsapp_still_serves(&runtime, &simulator, "+4915112340300").await;
    simulator.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burning_guests_under_contention_stop_at_their_cpu_budget() {
    let (runtime, simulator) = runtime_with_simulator().await;
    let adapter = runtime.get("hostile").unwrap();
    // Eight guests burning at once on two cores: each gets a quarter of a
    // core, so a wall-clock budget would have let them run to the timeout.
    let burns = (0..8).map(|_| {
        let adapter = adapter.clone();
        tokio::spawn(async move { adapter.send(&[message("loop")]).await })
    });
    for burn in futures::future::join_all(burns).await {
        let error = burn.unwrap().expect_err("a burning guest is stopped");
        assert!(
            matches!(error, CallError::CpuBudgetExceeded { .. }),
            "stopped by its CPU budget, not the call timeout: {error:?}"
        );
    }
    assert_whatsapp_still_serves(&runtime, &simulator, "+4915112340500").await;
    simulator.shutdown().await.unwrap();
}

/// A pooled slot is reset between calls: a call finds nothing of what the
/// calls before it wrote (a static counter, a static buffer, heap pages
/// grown into), also when the slot is the only one and so is reused by
/// every call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_finds_nothing_an_earlier_call_left_in_its_memory() {
    let (runtime, simulator) = runtime_with_limits(SandboxLimits {
        memory_bytes: 32 * 1024 * 1024,
        max_instances: 1,
        ..SandboxLimits::default()
    })
    .await;
    let adapter = runtime.get("hostile").expect("hostile adapter loaded");
    for call in 0..5 {
        let results = adapter
            .send(&[message("remember")])
            .await
            .unwrap_or_else(|error| panic!("call {call} failed: {error}"));
        let receipt = results[0]
            .as_ref()
            .unwrap_or_else(|failure| panic!("call {call}: {failure:?}"));
        assert_eq!(
            receipt.platform_message_id.as_deref(),
            Some("earlier calls 0, static bytes left 0, heap bytes left 0"),
            "call {call} saw what an earlier call left"
        );
    }
    // The probe sees what is left where something is: two messages in one
    // call share the instance, so the second finds the first's marks.
    let results = adapter
        .send(&[message("remember"), message("remember")])
        .await
        .expect("a batch of two");
    let second = results[1].as_ref().expect("second message");
    assert_eq!(
        second.platform_message_id.as_deref(),
        Some("earlier calls 1, static bytes left 65536, heap bytes left 0"),
        "within one call the instance is the same"
    );
    simulator.shutdown().await.unwrap();
}

/// More calls at once than the runtime has pooled instance slots: the
/// calls beyond the pool wait for a slot instead of failing, and every one
/// is delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_beyond_the_instance_pool_wait_for_a_slot() {
    const CALLS: usize = 6;
    const REPLY_MS: u64 = 200;
    let (runtime, simulator) = runtime_with_limits(SandboxLimits {
        memory_bytes: 32 * 1024 * 1024,
        max_instances: 2,
        ..SandboxLimits::default()
    })
    .await;
    simulator
        .set_faults(switchboard_simulator::FaultConfig {
            slow_response_ms: REPLY_MS,
            ..Default::default()
        })
        .unwrap();
    let adapter = runtime.get("whatsapp").expect("whatsapp loaded");
    let started = Instant::now();
    let calls = (0..CALLS).map(|i| {
        let adapter = Arc::clone(&adapter);
        async move {
            adapter
                .send(&[message(&format!("+49151123450{i:02}"))])
                .await
        }
    });
    let results = futures::future::join_all(calls).await;
    let elapsed = started.elapsed();
    for (i, result) in results.into_iter().enumerate() {
        let results = result.unwrap_or_else(|error| panic!("call {i} failed: {error}"));
        assert!(results[0].is_ok(), "call {i}: {:?}", results[0]);
    }
    assert_eq!(simulator.whatsapp().messages().len(), CALLS);
    // Two slots, six calls of one slow reply each: at least three rounds.
    let rounds = CALLS.div_ceil(2) as u64;
    assert!(
        elapsed >= Duration::from_millis(REPLY_MS * rounds),
        "six calls through two slots took {elapsed:?}: they did not wait for slots"
    );
}
