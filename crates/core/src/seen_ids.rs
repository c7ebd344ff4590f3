//! The profile ids an audience has had so far, each with the line it was
//! first on, in 12 bytes per id, so that duplicates are caught in a
//! 10-million-row file without holding the file.
//!
//! Ids are kept as 64-bit hashes (randomly keyed per process; a false
//! duplicate needs two ids among 10 million to collide in 64 bits, odds
//! about 1 in 370,000). New ids go into a small hash map; when it fills,
//! its entries are merged into two sorted parallel arrays (hashes, lines)
//! in place, without a second copy. Hashes are uniformly spread, so a
//! lookup in the sorted arrays interpolates to the right place in a probe
//! or two rather than bisecting through cache misses.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};

/// The most entries the map of recent ids holds before they are merged.
const RECENT: usize = 512 * 1024;
/// The fewest: a map this size (about 0.5 MiB) stays in the core's cache,
/// where a lookup costs no trip to memory.
const MIN_RECENT: usize = 32 * 1024;
/// Interpolation probes before a lookup falls back to bisection (bounds
/// the worst case; with uniform hashes it is never reached).
const INTERPOLATION_PROBES: usize = 8;

/// Seen profile ids; see the [module docs](self).
pub(crate) struct SeenIds {
    hasher: std::hash::RandomState,
    recent: HashMap<u64, u32, BuildHasherDefault<PassThrough>>,
    hashes: Vec<u64>,
    lines: Vec<u32>,
    /// How many ids the audience is expected to hold in all (see
    /// [`SeenIds::expect`]).
    expected: usize,
}

impl SeenIds {
    pub(crate) fn new() -> Self {
        Self {
            hasher: std::hash::RandomState::new(),
            recent: HashMap::default(),
            hashes: Vec::new(),
            lines: Vec::new(),
            expected: 0,
        }
    }

    /// Expect about `ids` ids in all (estimated from the file's size), so
    /// that the sorted arrays are reserved once at their final size.
    /// Growing them instead copies them to a new place each time, and for
    /// that moment both copies are held: at 10 million ids, 120 MB more
    /// at the peak. Reserved pages that are never written take no memory.
    pub(crate) fn expect(&mut self, ids: usize) {
        self.expected = ids;
    }

    /// The line `id` was first seen on, if it was; if not, remember it as
    /// first seen on `line` (lines past `u32::MAX` are remembered as
    /// `u32::MAX`). One hash and one search per id.
    pub(crate) fn first_line_or_insert(&mut self, id: &str, line: u64) -> Option<u64> {
        let hash = self.hash(id);
        if let Some(first) = self.first_line_of_hash(hash) {
            return Some(first);
        }
        self.recent
            .insert(hash, u32::try_from(line).unwrap_or(u32::MAX));
        if self.recent.len() >= self.recent_limit() {
            self.merge_recent();
        }
        None
    }

    /// The line `id` was first seen on, if it was.
    #[cfg(test)]
    fn first_line(&self, id: &str) -> Option<u64> {
        self.first_line_of_hash(self.hash(id))
    }

    /// The line the id with `hash` was first seen on, if it was.
    fn first_line_of_hash(&self, hash: u64) -> Option<u64> {
        self.recent
            .get(&hash)
            .or_else(|| self.find(hash).map(|index| &self.lines[index]))
            .map(|&line| u64::from(line))
    }

    /// Remember `id` as first seen on `line`, unless it was seen before.
    #[cfg(test)]
    fn insert(&mut self, id: &str, line: u64) {
        self.first_line_or_insert(id, line);
    }

    /// How many recent ids to gather before merging them: an eighth of
    /// those merged so far, between [`MIN_RECENT`] and [`RECENT`]. Small
    /// while the arrays are small, so the map stays in cache and merges
    /// stay cheap; larger as they grow, so each merge, which moves the
    /// whole array, is worth its cost (the ids moved per id added stay
    /// about nine until the cap).
    fn recent_limit(&self) -> usize {
        (self.hashes.len() / 8).clamp(MIN_RECENT, RECENT)
    }

    fn hash(&self, id: &str) -> u64 {
        let mut hasher = self.hasher.build_hasher();
        hasher.write(id.as_bytes());
        hasher.finish()
    }

    /// Where `hash` is in the sorted arrays.
    fn find(&self, hash: u64) -> Option<usize> {
        let keys = &self.hashes;
        let (mut low, mut high) = (0usize, keys.len());
        for _ in 0..INTERPOLATION_PROBES {
            if low >= high {
                return None;
            }
            let (first, last) = (keys[low], keys[high - 1]);
            if hash < first || hash > last {
                return None;
            }
            let span = (high - 1 - low) as u128;
            let offset = match last - first {
                0 => 0,
                range => (u128::from(hash - first) * span / u128::from(range)) as usize,
            };
            let probe = low + offset;
            match keys[probe].cmp(&hash) {
                std::cmp::Ordering::Equal => return Some(probe),
                std::cmp::Ordering::Less => low = probe + 1,
                std::cmp::Ordering::Greater => high = probe,
            }
        }
        keys[low..high]
            .binary_search(&hash)
            .ok()
            .map(|index| low + index)
    }

    /// Move the recent entries into the sorted arrays, merging from the
    /// back so that nothing is copied twice.
    fn merge_recent(&mut self) {
        let mut fresh: Vec<(u64, u32)> = self.recent.drain().collect();
        fresh.sort_unstable_by_key(|&(hash, _)| hash);
        let old = self.hashes.len();
        let needed = old + fresh.len();
        if self.hashes.capacity() < needed {
            // An estimate is rough: leave an eighth more room.
            // If that much cannot be had, only what is needed now.
            let room = needed.max(self.expected.saturating_add(self.expected / 8)) - old;
            let reserved = self
                .hashes
                .try_reserve_exact(room)
                .and_then(|()| self.lines.try_reserve_exact(room));
            if reserved.is_err() {
                // Give back what the first may have got.
                self.hashes.shrink_to(old);
                self.hashes.reserve_exact(fresh.len());
                self.lines.reserve_exact(fresh.len());
            }
        }
        self.hashes.resize(old + fresh.len(), 0);
        self.lines.resize(old + fresh.len(), 0);
        let (mut from_old, mut from_fresh, mut to) = (old, fresh.len(), old + fresh.len());
        while from_fresh > 0 {
            to -= 1;
            let (hash, line) = fresh[from_fresh - 1];
            if from_old > 0 && self.hashes[from_old - 1] > hash {
                self.hashes[to] = self.hashes[from_old - 1];
                self.lines[to] = self.lines[from_old - 1];
                from_old -= 1;
            } else {
                self.hashes[to] = hash;
                self.lines[to] = line;
                from_fresh -= 1;
            }
        }
    }
}

/// The map's keys are already hashes: use them as they are.
#[derive(Default)]
pub(crate) struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_ids_before_and_after_a_merge_with_their_first_line() {
        let mut seen = SeenIds::new();
        let count = RECENT * 2 + 1_000;
        for i in 0..count {
            let id = format!("p{i}");
            assert_eq!(seen.first_line(&id), None, "{id} is new");
            seen.insert(&id, i as u64 + 2);
        }
        assert!(seen.hashes.len() >= RECENT, "merges happened");
        assert_eq!(seen.hashes.len() + seen.recent.len(), count);
        assert!(seen.recent.len() < RECENT);
        assert!(seen.hashes.windows(2).all(|pair| pair[0] < pair[1]));
        for i in (0..count).step_by(997) {
            assert_eq!(seen.first_line(&format!("p{i}")), Some(i as u64 + 2));
        }
        // A repeat keeps the first line.
        seen.insert("p5", 999_999_999);
        assert_eq!(seen.first_line("p5"), Some(7));
        assert_eq!(seen.first_line("never-seen"), None);
    }

    #[test]
    fn an_expected_size_is_reserved_once_and_a_wrong_one_still_works() {
        // An estimate no machine can hold is not fatal.
        let mut huge = SeenIds::new();
        huge.expect(usize::MAX / 16);
        for i in 0..MIN_RECENT + 1 {
            huge.insert(&format!("p{i}"), i as u64 + 2);
        }
        assert_eq!(huge.hashes.len(), MIN_RECENT);
        assert_eq!(huge.first_line("p7"), Some(9));

        let mut seen = SeenIds::new();
        seen.expect(RECENT * 3);
        for i in 0..RECENT * 2 {
            seen.insert(&format!("p{i}"), i as u64 + 2);
        }
        let reserved = seen.hashes.capacity();
        assert!(reserved >= RECENT * 3, "{reserved}");
        assert!(seen.lines.capacity() >= RECENT * 3);
        // Beyond the estimate the arrays grow as they must.
        for i in RECENT * 2..RECENT * 5 {
            seen.insert(&format!("p{i}"), i as u64 + 2);
        }
        assert_eq!(seen.hashes.len() + seen.recent.len(), RECENT * 5);
        assert!(seen.hashes.len() > RECENT * 3, "merged beyond the estimate");
        assert_eq!(seen.first_line("p0"), Some(2));
        assert_eq!(
            seen.first_line(&format!("p{}", RECENT * 5 - 1)),
            Some(RECENT as u64 * 5 + 1)
        );
    }

    #[test]
    fn lines_past_u32_are_kept_as_the_largest() {
        let mut seen = SeenIds::new();
        seen.insert("far", u64::from(u32::MAX) + 10);
        assert_eq!(seen.first_line("far"), Some(u64::from(u32::MAX)));
    }
}
