//! Recording what the simulator accepted and rejected.
//!
//! Every platform keeps a [`Recorder`] of the messages it accepted (so tests
//! and the demo can ask "what was sent?") and a [`RejectionCounter`] of the
//! error codes it answered with. [`recipient_counts`] turns what a
//! platform recorded into "how many distinct messages did each recipient
//! get", the basis of duplicate detection in tests.

use std::collections::{BTreeMap, HashSet};
use std::hash::Hash;
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

    /// Per recipient, how many distinct accepted messages they got: see
    /// [`recipient_counts`]. `key` gives each item's recipient and the id
    /// of the message (or request) it belongs to.
    pub fn recipient_counts<K: Eq + Hash>(
        &self,
        key: impl Fn(&T) -> (String, K),
    ) -> BTreeMap<String, u64> {
        recipient_counts(self.lock().iter().map(key))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<T>> {
        self.items.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Per recipient, the number of distinct accepted messages to them, from
/// `(recipient, message id)` pairs; a pair seen again is counted once.
///
/// Platforms that record one item per recipient *and* message object of a
/// request (LINE, KakaoTalk) pass the request id, so that each recipient
/// counts once per accepted request; a replay the platform refused (LINE
/// 409, NHN -1005, RCS 409) was never recorded, so it never counts. This
/// is what `GET /_sim/<platform>/recipients` answers.
pub fn recipient_counts<K: Eq + Hash>(
    pairs: impl IntoIterator<Item = (String, K)>,
) -> BTreeMap<String, u64> {
    let mut seen = HashSet::new();
    let mut counts = BTreeMap::new();
    for (recipient, id) in pairs {
        if seen.insert((recipient.clone(), id)) {
            *counts.entry(recipient).or_insert(0) += 1;
        }
    }
    counts
}

/// How many recipients in `counts` got more than one message.
pub fn duplicates(counts: &BTreeMap<String, u64>) -> u64 {
    counts.values().filter(|&&count| count > 1).count() as u64
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

    #[test]
    fn counts_distinct_messages_per_recipient() {
        // (recipient, request id): a multicast to a and b, a second
        // message object of the same request to a, then another request
        // to a.
        let recorder = Recorder::new();
        for (to, request) in [("a", 1), ("b", 1), ("a", 1), ("a", 2)] {
            recorder.push((to.to_owned(), request));
        }
        let counts = recorder.recipient_counts(|(to, request)| (to.clone(), *request));
        assert_eq!(
            counts,
            BTreeMap::from([("a".to_owned(), 2), ("b".to_owned(), 1)])
        );
        assert_eq!(duplicates(&counts), 1);
        assert_eq!(duplicates(&BTreeMap::new()), 0);
        assert!(recipient_counts(Vec::<(String, u8)>::new()).is_empty());
    }
}
