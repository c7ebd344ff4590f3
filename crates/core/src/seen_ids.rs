//! The profile ids an audience has had so far, each with the line it was
//! first on, so that duplicates are caught in a 10-million-row file
//! without holding the file, in memory that stays about flat.
//!
//! Ids are kept as 64-bit hashes (randomly keyed per process; a false
//! duplicate needs two ids among 10 million to collide in 64 bits, odds
//! about 1 in 370,000). New ids go into a small hash map; when it fills,
//! its entries are merged into two sorted parallel arrays (hashes, lines)
//! in place, without a second copy. Hashes are uniformly spread, so a
//! lookup in the sorted arrays interpolates to the right place in a probe
//! or two rather than bisecting through cache misses.
//!
//! When the arrays hold [`IN_MEMORY`] ids (12 MiB) they move to a sorted
//! run in a temporary file, behind a Bloom filter of 2 bytes per id (see
//! [`runs`]). If no temporary file can be made or written, the ids stay in
//! memory as before (12 bytes each): slower to hold, never wrong.

mod runs;

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};

use runs::SpilledRuns;

/// The most entries the map of recent ids holds before they are merged.
const RECENT: usize = 512 * 1024;
/// The fewest: a map this size (about 0.5 MiB) stays in the core's cache,
/// where a lookup costs no trip to memory.
const MIN_RECENT: usize = 32 * 1024;
/// Ids held in the sorted arrays before they move to a run on disk.
const IN_MEMORY: usize = 1 << 20;
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
    /// The sorted arrays move to disk when they hold this many ids.
    in_memory: usize,
    /// Ids moved to disk, once there are any.
    spilled: Option<SpilledRuns>,
    /// Where their file goes: the system's temporary directory, unless a
    /// test says otherwise.
    spill_directory: Option<std::path::PathBuf>,
    /// Set when ids could not be moved to disk: they stay in memory.
    stay_in_memory: bool,
    /// A failure to read ids back from disk, until it is taken.
    error: Option<std::io::Error>,
}

impl SeenIds {
    pub(crate) fn new() -> Self {
        Self {
            hasher: std::hash::RandomState::new(),
            recent: HashMap::default(),
            hashes: Vec::new(),
            lines: Vec::new(),
            expected: 0,
            in_memory: IN_MEMORY,
            spilled: None,
            spill_directory: None,
            stay_in_memory: false,
            error: None,
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
    ///
    /// An id on disk that cannot be read back counts as new; the failure is
    /// kept for [`SeenIds::take_error`].
    pub(crate) fn first_line_or_insert(&mut self, id: &str, line: u64) -> Option<u64> {
        let hash = self.hash(id);
        match self.first_line_of_hash(hash) {
            Ok(Some(first)) => return Some(first),
            Ok(None) => {}
            Err(error) => {
                self.error.get_or_insert(error);
            }
        }
        self.recent
            .insert(hash, u32::try_from(line).unwrap_or(u32::MAX));
        if self.recent.len() >= self.recent_limit() {
            self.merge_recent();
        }
        None
    }

    /// A failure to read ids back from the temporary file, if one
    /// happened since the last call.
    pub(crate) fn take_error(&mut self) -> Option<std::io::Error> {
        self.error.take()
    }

    /// The line `id` was first seen on, if it was.
    #[cfg(test)]
    fn first_line(&self, id: &str) -> Option<u64> {
        self.first_line_of_hash(self.hash(id))
            .expect("the temporary file reads back")
    }

    /// The line the id with `hash` was first seen on, if it was.
    fn first_line_of_hash(&self, hash: u64) -> std::io::Result<Option<u64>> {
        let held = self
            .recent
            .get(&hash)
            .or_else(|| self.find(hash).map(|index| &self.lines[index]));
        let line = match (held, &self.spilled) {
            (Some(&line), _) => Some(line),
            (None, Some(spilled)) => spilled.line_of(hash)?,
            (None, None) => None,
        };
        Ok(line.map(u64::from))
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
            // An estimate is rough: leave an eighth more room, up to what
            // the arrays hold before they move to disk.
            // If that much cannot be had, only what is needed now.
            let mut estimate = self.expected.saturating_add(self.expected / 8);
            if !self.stay_in_memory {
                estimate = estimate.min(self.in_memory + RECENT);
            }
            let room = needed.max(estimate) - old;
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
        if self.hashes.len() >= self.in_memory && !self.stay_in_memory {
            self.spill();
        }
    }

    /// Move the sorted arrays to a run on disk, or, if that fails, keep
    /// every id in memory from now on.
    fn spill(&mut self) {
        if self.spilled.is_none() {
            let expected = self.expected.max(self.hashes.len() * 4);
            match SpilledRuns::create(expected, self.spill_directory.as_deref()) {
                Ok(spilled) => self.spilled = Some(spilled),
                Err(_) => {
                    self.stay_in_memory = true;
                    return;
                }
            }
        }
        // A run that fails to write is not added: the runs already there
        // stay good, and these ids stay in memory.
        if let Some(spilled) = &mut self.spilled {
            match spilled.spill(&self.hashes, &self.lines) {
                Ok(()) => {
                    self.hashes.clear();
                    self.lines.clear();
                }
                Err(_) => self.stay_in_memory = true,
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

    /// Ids that never move to disk, to test the arrays alone.
    fn held_in_memory() -> SeenIds {
        let mut seen = SeenIds::new();
        seen.stay_in_memory = true;
        seen
    }

    #[test]
    fn finds_ids_before_and_after_a_merge_with_their_first_line() {
        let mut seen = held_in_memory();
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
        let mut huge = held_in_memory();
        huge.expect(usize::MAX / 16);
        for i in 0..MIN_RECENT + 1 {
            huge.insert(&format!("p{i}"), i as u64 + 2);
        }
        assert_eq!(huge.hashes.len(), MIN_RECENT);
        assert_eq!(huge.first_line("p7"), Some(9));

        let mut seen = held_in_memory();
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

    #[test]
    fn ids_moved_to_disk_are_still_found_with_their_first_line() {
        let mut seen = SeenIds::new();
        seen.in_memory = 40_000;
        seen.expect(100_000);
        let count = 250_000;
        for i in 0..count {
            assert_eq!(
                seen.first_line_or_insert(&format!("p{i}"), i + 2),
                None,
                "p{i} is new"
            );
        }
        let spilled = seen.spilled.as_ref().map_or(0, SpilledRuns::len);
        // At most the arrays' bound and one map of recent ids stay in memory.
        let held_at_most = 40_000 + MIN_RECENT as u64;
        assert!(
            spilled >= count - held_at_most,
            "{spilled} ids moved to disk"
        );
        assert!(seen.hashes.len() < 40_000, "the arrays were emptied");
        assert!(
            seen.hashes.capacity() < 40_000 + RECENT + 1,
            "reserved no more than is held before moving: {}",
            seen.hashes.capacity()
        );
        assert_eq!(
            seen.hashes.len() as u64 + seen.recent.len() as u64 + spilled,
            count
        );
        // Every id, wherever it is now, is a duplicate of its first line.
        for i in (0..count).step_by(101) {
            assert_eq!(
                seen.first_line_or_insert(&format!("p{i}"), 9),
                Some(i + 2),
                "p{i}"
            );
        }
        assert_eq!(seen.first_line("never-seen"), None);
        assert!(seen.take_error().is_none());
    }

    #[test]
    fn ids_stay_in_memory_when_no_temporary_file_can_be_made() {
        let gone = tempfile::tempdir().expect("dir");
        let mut seen = SeenIds::new();
        seen.in_memory = 40_000;
        seen.spill_directory = Some(gone.path().join("not-there"));
        let count = 120_000u64;
        for i in 0..count {
            assert_eq!(seen.first_line_or_insert(&format!("p{i}"), i + 2), None);
        }
        assert!(seen.stay_in_memory, "the failed move was noticed");
        assert!(seen.spilled.is_none());
        assert_eq!(seen.hashes.len() as u64 + seen.recent.len() as u64, count);
        for i in (0..count).step_by(97) {
            assert_eq!(seen.first_line_or_insert(&format!("p{i}"), 9), Some(i + 2));
        }
        assert!(seen.take_error().is_none(), "no read failed");
    }
}
