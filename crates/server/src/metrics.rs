//! Counters exposed at `/metrics`, through the `metrics` crate and its
//! Prometheus exporter. Label values come only from the set of loaded
//! channels (anything else is `unknown`), so requests cannot create series
//! or write into the page.

use std::sync::atomic::Ordering;

use metrics::{Key, Label, Level, Metadata, Recorder};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};
use switchboard_runtime::AdapterRuntime;

/// The host's counters.
pub struct Metrics {
    recorder: PrometheusRecorder,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            recorder: PrometheusBuilder::new().build_recorder(),
        }
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

const METADATA: Metadata<'static> =
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

impl Metrics {
    fn counter(&self, name: &'static str, labels: Vec<Label>) -> metrics::Counter {
        self.recorder
            .register_counter(&Key::from_parts(name, labels), &METADATA)
    }

    /// Events arrived at `POST /api/events` (new and replayed alike).
    pub fn events(&self, count: u64) {
        self.counter("switchboard_events_total", Vec::new())
            .increment(count);
    }

    /// A webhook request for a loaded channel was answered (requests for
    /// other names are not counted: they would let anyone add series).
    pub fn webhook(&self, channel: Option<&str>, result: &str) {
        let Some(channel) = channel.map(str::to_owned) else {
            return;
        };
        let result = match result {
            "adapter_error" | "store_error" | "busy" => result.to_owned(),
            status if status.len() == 3 && status.bytes().all(|b| b.is_ascii_digit()) => {
                status.to_owned()
            }
            _ => "other".to_owned(),
        };
        self.counter(
            "switchboard_webhooks_total",
            vec![Label::new("channel", channel), Label::new("result", result)],
        )
        .increment(1);
    }

    /// A webhook carried an event of `kind` (a fixed set of names, and
    /// `refused` for an event the host would not apply).
    pub fn webhook_event(&self, channel: &str, kind: &'static str) {
        self.counter(
            "switchboard_webhook_events_total",
            vec![
                Label::new("channel", channel.to_owned()),
                Label::new("kind", kind),
            ],
        )
        .increment(1);
    }

    /// The page at `/metrics`: the counters plus each loaded adapter's calls.
    pub fn render(&self, runtime: &AdapterRuntime) -> String {
        for channel in runtime.channels() {
            if let Some(adapter) = runtime.get(&channel) {
                let label = || vec![Label::new("channel", channel.clone())];
                self.counter("switchboard_adapter_calls_total", label())
                    .absolute(adapter.stats.calls.load(Ordering::Relaxed));
                self.counter("switchboard_adapter_call_failures_total", label())
                    .absolute(adapter.stats.failures.load(Ordering::Relaxed));
                self.counter("switchboard_adapter_http_requests_total", label())
                    .absolute(adapter.stats.http_requests.load(Ordering::Relaxed));
            }
        }
        self.recorder.handle().render()
    }
}
