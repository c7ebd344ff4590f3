//! Counters exposed at `/metrics` in Prometheus text format.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::Ordering;

use switchboard_runtime::AdapterRuntime;

/// Named counters; a name includes its labels, e.g. `webhooks_total{channel="whatsapp",result="200"}`.
#[derive(Debug, Default)]
pub struct Metrics {
    counters: Mutex<BTreeMap<String, u64>>,
}

impl Metrics {
    /// Add one to a counter.
    pub fn count(&self, name: &str) {
        if let Ok(mut counters) = self.counters.lock() {
            *counters.entry(name.to_owned()).or_default() += 1;
        }
    }

    /// The current value of a counter.
    pub fn get(&self, name: &str) -> u64 {
        self.counters
            .lock()
            .ok()
            .and_then(|c| c.get(name).copied())
            .unwrap_or(0)
    }

    /// All counters plus each adapter's call statistics, as Prometheus text.
    pub fn render(&self, runtime: &AdapterRuntime) -> String {
        let mut out = String::new();
        out.push_str("# TYPE switchboard_webhooks_total counter\n# TYPE switchboard_webhook_events_total counter\n");
        if let Ok(counters) = self.counters.lock() {
            for (name, value) in counters.iter() {
                out.push_str(&format!("switchboard_{name} {value}\n"));
            }
        }
        out.push_str("# TYPE switchboard_adapter_calls_total counter\n# TYPE switchboard_adapter_call_failures_total counter\n");
        for channel in runtime.channels() {
            if let Some(adapter) = runtime.get(&channel) {
                out.push_str(&format!(
                    "switchboard_adapter_calls_total{{channel=\"{channel}\"}} {}\nswitchboard_adapter_call_failures_total{{channel=\"{channel}\"}} {}\n",
                    adapter.stats.calls.load(Ordering::Relaxed),
                    adapter.stats.failures.load(Ordering::Relaxed),
                ));
            }
        }
        out
    }
}
