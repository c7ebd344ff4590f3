//! Per-message cost of an adapter call: a fresh store and instance plus
//! `send`, against an in-process HTTP responder on loopback that answers
//! like the WhatsApp Cloud API. One message, and a full batch (50, the
//! adapter's `max_batch_size`). Beside them, in the same run, the plain
//! reqwest round trips to the same responder with the same requests in
//! flight (1, and 50 with the SDK's bound of 16 at once): the adapter
//! path's overhead is the difference. The single message is measured
//! twice: driven from the bench's own thread, and inside a task on the
//! runtime's workers, where the host makes its calls. A call that does no
//! I/O (`describe`) shows the fixed cost of a fresh instance.
//!
//! `cargo bench -p switchboard-e2e --bench adapter_call`
//!
//! To compare two builds of the adapter in one run, point
//! `SWITCHBOARD_BENCH_BASELINE` at the other build's `manifest.toml`: its
//! calls are measured in the group `whatsapp_adapter_send_baseline`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures::StreamExt;
use switchboard_contract::model::{
    Content, OutboundMessage, Purpose, TemplateMessage, TemplateParameter,
};
use switchboard_runtime::{AdapterRuntime, ChannelGrant, LoadedAdapter, SandboxLimits};

/// A full WhatsApp batch (the adapter's `max_batch_size`).
const BATCH: usize = 50;
/// Requests the reqwest loop keeps in flight (the SDK's bound up to
/// contract 1.1.0; through `http.send` the host's `max_requests_in_flight`,
/// 32 by default, bounds them).
const IN_FLIGHT: usize = 16;

async fn responder() -> String {
    let app = axum::Router::new().route(
        "/{version}/{phone}/messages",
        axum::routing::post(|| async {
            axum::Json(serde_json::json!({
                "messaging_product": "whatsapp",
                "contacts": [{"input": "4915112345678", "wa_id": "4915112345678"}],
                "messages": [{"id": "wamid.HBgLNDkxNTExMjM0NTY3OBUCABIYFDNBMDJCMEI5RjQ0"}]
            }))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{address}")
}

fn message(i: usize) -> OutboundMessage {
    OutboundMessage {
        idempotency_key: format!("{i:064x}"),
        to: "+4915112345678".into(),
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

/// The WhatsApp package at `manifest`, its API pointed at `base_url`.
async fn load(base_url: &str, manifest: &std::path::Path) -> Arc<LoadedAdapter> {
    let grant = ChannelGrant {
        settings: HashMap::from([("phone_number_id".to_owned(), "100000000000001".to_owned())]),
        secrets: HashMap::from([("access_token".to_owned(), "token".to_owned())]),
        endpoints: [("graph.facebook.com".to_owned(), base_url.to_owned())].into(),
        ..ChannelGrant::default()
    };
    let options = switchboard_e2e::unsigned_runtime_options(SandboxLimits::default());
    let runtime =
        AdapterRuntime::new(options, HashMap::from([("whatsapp".to_owned(), grant)])).unwrap();
    runtime.load_package(manifest).await.unwrap()
}

/// The adapter's calls, in the group `name`.
fn bench_adapter(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    name: &str,
    adapter: &Arc<LoadedAdapter>,
) {
    let one = vec![message(0)];
    let batch: Vec<_> = (0..BATCH).map(message).collect();
    let mut group = c.benchmark_group(name);
    group.measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements(1));
    group.bench_function("fresh_instance_plus_send_1", |b| {
        b.to_async(rt).iter(|| async {
            let results = adapter.send(&one).await.unwrap();
            assert!(results[0].is_ok());
        })
    });
    // The fixed cost of a call: a fresh instance and a call that does no I/O.
    group.bench_function("fresh_instance_plus_describe", |b| {
        b.to_async(rt)
            .iter(|| async { adapter.describe().await.unwrap() })
    });
    // As the host makes its calls: inside a task on the runtime's workers.
    group.bench_function("fresh_instance_plus_send_1_in_task", |b| {
        b.to_async(rt).iter(|| {
            let adapter = Arc::clone(adapter);
            let one = one.clone();
            async move {
                let results = tokio::spawn(async move { adapter.send(&one).await.unwrap() })
                    .await
                    .unwrap();
                assert!(results[0].is_ok());
            }
        })
    });
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("fresh_instance_plus_send_batch_50", |b| {
        b.to_async(rt).iter(|| async {
            let results = adapter.send(&batch).await.unwrap();
            assert!(results.iter().all(Result::is_ok));
        })
    });
    group.finish();
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let base_url = rt.block_on(responder());
    let packages = switchboard_e2e::adapter_packages();
    let adapter = rt.block_on(load(&base_url, &packages.join("whatsapp/manifest.toml")));
    bench_adapter(c, &rt, "whatsapp_adapter_send", &adapter);
    if let Some(baseline) = std::env::var_os("SWITCHBOARD_BENCH_BASELINE") {
        let baseline = rt.block_on(load(&base_url, std::path::Path::new(&baseline)));
        bench_adapter(c, &rt, "whatsapp_adapter_send_baseline", &baseline);
    }

    // The ceiling: the same request bodies straight from reqwest.
    let client = reqwest::Client::new();
    let url = format!("{base_url}/v21.0/100000000000001/messages");
    let post = |i: usize| {
        let request = client
            .post(&url)
            .bearer_auth("token")
            .json(&request_body(i));
        async move {
            let response = request.send().await.unwrap();
            assert!(response.status().is_success());
            response.bytes().await.unwrap()
        }
    };
    let mut group = c.benchmark_group("plain_reqwest_round_trip");
    group.measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements(1));
    group.bench_function("one_request", |b| b.to_async(&rt).iter(|| post(0)));
    group.bench_function("one_request_in_task", |b| {
        b.to_async(&rt)
            .iter(|| async { tokio::spawn(post(0)).await.unwrap() })
    });
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("batch_50_with_16_in_flight", |b| {
        b.to_async(&rt).iter(|| async {
            futures::stream::iter(0..BATCH)
                .map(post)
                .buffer_unordered(IN_FLIGHT)
                .for_each(|_| async {})
                .await
        })
    });
    group.finish();
}

/// What the WhatsApp adapter posts for [`message`]`(i)`.
fn request_body(i: usize) -> serde_json::Value {
    serde_json::json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "4915112345678",
        "type": "template",
        "biz_opaque_callback_data": format!("{i:064x}"),
        "template": {
            "name": "winback_offer",
            "language": {"code": "en_US"},
            "components": [{"type": "body", "parameters": [{"type": "text", "text": "Jane"}]}]
        }
    })
}

criterion_group!(benches, bench);
criterion_main!(benches);
