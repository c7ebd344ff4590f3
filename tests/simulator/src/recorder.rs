//! Recording what the simulator accepted and rejected.
//!
//! Every platform keeps a [`Recorder`] of the messages it accepted (so tests
//! and the demo can ask "what was sent?") and a [`RejectionCounter`] of the
//! error codes it answered with.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// An append-only, thread-safe list of accepted items.
#[derive(Debug)]
pub struct Recorder<T> {
    items: Mutex<Vec<T>>,
}

impl<T> Default for Recorder<T> {
    fn default() -> Self {
        Self {
            items: Mutex::new(Vec::new()),
        }
    }
}

impl<T: Clone> Recorder<T> {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends one item.
    pub fn push(&self, item: T) {
        self.lock().push(item);
    }

    /// A copy of everything recorded so far, oldest first.
    pub fn snapshot(&self) -> Vec<T> {
        self.lock().clone()
    }

    /// A copy of the recorded items matching `keep`, oldest first.
    pub fn filtered(&self, keep: impl Fn(&T) -> bool) -> Vec<T> {
        self.lock()
            .iter()
            .filter(|item| keep(item))
            .cloned()
            .collect()
    }

    /// How many items were recorded.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Forgets everything recorded so far.
    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<T>> {
        self.items.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Counts rejected requests by platform error code.
#[derive(Debug, Default)]
pub struct RejectionCounter {
    by_code: Mutex<BTreeMap<i64, u64>>,
}

impl RejectionCounter {
    /// A counter with no rejections.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one rejection with `code`.
    pub fn record(&self, code: i64) {
        *self.lock().entry(code).or_insert(0) += 1;
    }

    /// How many requests were rejected with `code`.
    pub fn count(&self, code: i64) -> u64 {
        self.lock().get(&code).copied().unwrap_or(0)
    }

    /// How many requests were rejected in total.
    pub fn total(&self) -> u64 {
        self.lock().values().sum()
    }

    /// Rejections per code.
    pub fn snapshot(&self) -> BTreeMap<i64, u64> {
        self.lock().clone()
    }

    /// Resets every count to zero.
    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<i64, u64>> {
        self.by_code.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_counts() {
        let recorder = Recorder::new();
        recorder.push(1);
        recorder.push(2);
        assert_eq!(recorder.snapshot(), vec![1, 2]);
        assert_eq!(recorder.filtered(|n| *n > 1), vec![2]);
        recorder.clear();
        assert!(recorder.is_empty());

        let rejections = RejectionCounter::new();
        rejections.record(130429);
        rejections.record(130429);
        rejections.record(190);
        assert_eq!(rejections.count(130429), 2);
        assert_eq!(rejections.total(), 3);
    }
}
