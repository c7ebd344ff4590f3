//! A proxy in the host's environment does not carry adapter traffic: the
//! egress clients ignore `HTTPS_PROXY`, `HTTP_PROXY` and `ALL_PROXY`, so
//! adapter requests cannot be routed past the address filter. A binary of
//! its own, because it sets the process environment.

mod sandbox_support;

use std::sync::atomic::Ordering;

use sandbox_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_in_the_environment_carries_no_adapter_traffic() {
    let (proxy_port, proxied) = counting_listener().await;
    let proxy = format!("http://127.0.0.1:{proxy_port}");
    for name in [
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        // SAFETY: set before the runtime and its clients exist, in a test
        // binary with this one test; nothing else reads the environment
        // concurrently.
        unsafe { std::env::set_var(name, &proxy) };
    }
    // SAFETY: as above.
    unsafe { std::env::remove_var("NO_PROXY") };

    let (runtime, simulator) = runtime_with_simulator().await;
    // The WhatsApp adapter reaches the simulator directly.
    assert_whatsapp_still_serves(&runtime, &simulator, "+4915112340400").await;
    // The hostile adapter's declared host does not resolve; through a proxy
    // it would have been handed to the proxy to resolve.
    let hostile = runtime.get("hostile").expect("hostile adapter loaded");
    let outcome = hostile
        .send(&[message("url:https://api.hostile.example/steal")])
        .await;
    let reached = matches!(&outcome, Ok(results) if results[0].is_ok());
    assert!(
        !reached,
        "the undeclared-resolution request succeeded: {outcome:?}"
    );
    assert_eq!(
        proxied.load(Ordering::SeqCst),
        0,
        "the proxy in the environment saw adapter traffic"
    );
    simulator.shutdown().await.unwrap();
}
