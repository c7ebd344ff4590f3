//! Profile ids moved out of memory: sorted runs of (hash, first line) in
//! an unnamed temporary file, with a Bloom filter ([`fastbloom`], fed the
//! hashes the ids already have, so nothing is hashed twice) in memory in
//! front of them, so that a 10-million-row audience holds about 2 bytes
//! per id instead of 12.
//!
//! A lookup the filter rules out (nearly every new id) touches no file. A
//! lookup it lets through reads each run at the place the hash should be
//! (hashes are uniformly spread, so the place is estimated from the value
//! and one read of [`WINDOW`] records nearly always holds it). Reads come
//! from the kernel's page cache, which is not the process's memory.
//!
//! The file has no name (see [`tempfile::tempfile`]): nothing is left
//! behind, whatever way the process ends.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use fastbloom::BloomFilter;

/// Bytes per record: the hash (8, little-endian), then the line (4).
const RECORD: usize = 12;
/// Records read at once when looking a hash up in a run.
const WINDOW: u64 = 1024;
/// Records written or read back at once when spilling or rebuilding.
const CHUNK: usize = 4096;
/// Bits of Bloom filter per id it is sized for: about one id in 2,000
/// that was never added passes it.
const FILTER_BITS_PER_ID: usize = 16;

/// One sorted run in the file.
struct Run {
    /// Where it starts, in records.
    start: u64,
    /// How many records it holds.
    len: u64,
    first: u64,
    last: u64,
}

/// See the [module docs](self).
pub(super) struct SpilledRuns {
    file: File,
    runs: Vec<Run>,
    /// Records written so far (where the next run starts); every one of
    /// them is in the filter.
    written: u64,
    filter: BloomFilter,
    /// How many ids the filter was sized for.
    filter_capacity: usize,
}

impl SpilledRuns {
    /// An empty set in a new temporary file (in `directory`, or the
    /// system's temporary directory), its filter sized for `expected` ids
    /// (it is rebuilt larger if more come).
    pub(super) fn create(expected: usize, directory: Option<&std::path::Path>) -> io::Result<Self> {
        let file = match directory {
            Some(directory) => tempfile::tempfile_in(directory)?,
            None => tempfile::tempfile()?,
        };
        Ok(Self {
            file,
            runs: Vec::new(),
            written: 0,
            filter: sized_filter(expected),
            filter_capacity: expected,
        })
    }

    /// How many ids were moved here.
    #[cfg(test)]
    pub(super) fn len(&self) -> u64 {
        self.written
    }

    /// Move sorted `hashes` (with their `lines`, same length) here as one
    /// run. Nothing is added if writing fails.
    pub(super) fn spill(&mut self, hashes: &[u64], lines: &[u32]) -> io::Result<()> {
        let (Some(&first), Some(&last)) = (hashes.first(), hashes.last()) else {
            return Ok(());
        };
        let start = self.written;
        let mut buffer = Vec::with_capacity(CHUNK * RECORD);
        for (chunk, (hashes, lines)) in hashes.chunks(CHUNK).zip(lines.chunks(CHUNK)).enumerate() {
            buffer.clear();
            for (hash, line) in hashes.iter().zip(lines) {
                buffer.extend_from_slice(&hash.to_le_bytes());
                buffer.extend_from_slice(&line.to_le_bytes());
            }
            let at = (start + (chunk * CHUNK) as u64) * RECORD as u64;
            self.file.write_all_at(&buffer, at)?;
        }
        let needed = self.written as usize + hashes.len();
        if needed > self.filter_capacity {
            let capacity = needed.max(self.filter_capacity * 2);
            self.filter = self.rebuilt_filter(capacity)?;
            self.filter_capacity = capacity;
        }
        for &hash in hashes {
            self.filter.insert_hash(hash);
        }
        self.runs.push(Run {
            start,
            len: hashes.len() as u64,
            first,
            last,
        });
        self.written += hashes.len() as u64;
        Ok(())
    }

    /// The line `hash` was first seen on, if it was moved here.
    pub(super) fn line_of(&self, hash: u64) -> io::Result<Option<u32>> {
        if !self.filter.contains_hash(hash) {
            return Ok(None);
        }
        for run in &self.runs {
            if let Some(line) = self.find(run, hash)? {
                return Ok(Some(line));
            }
        }
        Ok(None)
    }

    /// Look `hash` up in one run: read a window around where its value
    /// says it should be; if it lies beyond the window, narrow to that side
    /// and estimate again. Each round removes at least the window read.
    fn find(&self, run: &Run, hash: u64) -> io::Result<Option<u32>> {
        if hash < run.first || hash > run.last {
            return Ok(None);
        }
        // Records [low, high) may hold it; every hash below `low` is below
        // `floor`, every hash from `high` on is above `ceiling`.
        let (mut low, mut high) = (0u64, run.len);
        let (mut floor, mut ceiling) = (run.first, run.last);
        let mut buffer = vec![0u8; WINDOW as usize * RECORD];
        while low < high {
            let span = high - low;
            let guess = match ceiling - floor {
                0 => low,
                range => {
                    low + (u128::from(hash - floor) * u128::from(span - 1) / u128::from(range))
                        as u64
                }
            };
            let from = guess
                .saturating_sub(WINDOW / 2)
                .clamp(low, high.saturating_sub(WINDOW).max(low));
            let to = (from + WINDOW).min(high);
            let bytes = &mut buffer[..(to - from) as usize * RECORD];
            self.file
                .read_exact_at(bytes, (run.start + from) * RECORD as u64)?;
            let records: Vec<(u64, u32)> = bytes.chunks_exact(RECORD).map(record).collect();
            let (Some(&(lowest, _)), Some(&(highest, _))) = (records.first(), records.last())
            else {
                return Ok(None);
            };
            if hash < lowest {
                (high, ceiling) = (from, lowest);
            } else if hash > highest {
                (low, floor) = (to, highest);
            } else {
                return Ok(records
                    .binary_search_by_key(&hash, |&(h, _)| h)
                    .ok()
                    .map(|index| records[index].1));
            }
        }
        Ok(None)
    }

    /// A filter for `capacity` ids holding every hash in the file, read
    /// back in order.
    fn rebuilt_filter(&self, capacity: usize) -> io::Result<BloomFilter> {
        let mut filter = sized_filter(capacity);
        let mut buffer = vec![0u8; CHUNK * RECORD];
        let mut at = 0u64;
        while at < self.written {
            let count = (self.written - at).min(CHUNK as u64) as usize;
            let bytes = &mut buffer[..count * RECORD];
            self.file.read_exact_at(bytes, at * RECORD as u64)?;
            for (hash, _) in bytes.chunks_exact(RECORD).map(record) {
                filter.insert_hash(hash);
            }
            at += count as u64;
        }
        Ok(filter)
    }
}

/// An empty filter of [`FILTER_BITS_PER_ID`] bits for each of `capacity`
/// ids, with the number of bits set per id that suits that size.
fn sized_filter(capacity: usize) -> BloomFilter {
    let capacity = capacity.max(1);
    BloomFilter::with_num_bits(capacity.saturating_mul(FILTER_BITS_PER_ID)).expected_items(capacity)
}

/// A record's hash and line.
fn record(bytes: &[u8]) -> (u64, u32) {
    let mut hash = [0u8; 8];
    let mut line = [0u8; 4];
    hash.copy_from_slice(&bytes[..8]);
    line.copy_from_slice(&bytes[8..RECORD]);
    (u64::from_le_bytes(hash), u32::from_le_bytes(line))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    /// `count` sorted, spread-out hashes (a multiplicative sequence,
    /// sorted), each with its index as its line.
    fn sorted(count: u64, salt: u64) -> (Vec<u64>, Vec<u32>) {
        let mut hashes: Vec<u64> = (0..count)
            .map(|i| (i * 2 + salt).wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .collect();
        hashes.sort_unstable();
        let lines = (0..count as u32).collect();
        (hashes, lines)
    }

    #[test]
    fn finds_every_spilled_hash_with_its_line_across_runs() {
        let mut runs = SpilledRuns::create(10, None).expect("a temporary file");
        let (first, first_lines) = sorted(50_000, 0);
        let (second, second_lines) = sorted(3, 1);
        runs.spill(&first, &first_lines).expect("spilled");
        runs.spill(&second, &second_lines).expect("spilled");
        runs.spill(&[], &[]).expect("nothing to spill");
        assert_eq!(runs.len(), 50_003);
        assert_eq!(runs.runs.len(), 2);
        // The filter sized for 10 was rebuilt to hold them all.
        assert!(runs.filter_capacity >= 50_003);
        assert!(runs.filter.num_bits() >= 50_003 * FILTER_BITS_PER_ID);
        for (index, hash) in first.iter().enumerate().step_by(7) {
            assert_eq!(runs.line_of(*hash).expect("read"), Some(first_lines[index]));
        }
        for (index, hash) in second.iter().enumerate() {
            assert_eq!(
                runs.line_of(*hash).expect("read"),
                Some(second_lines[index])
            );
        }
        // Hashes between, below and above the stored ones are not there.
        for hash in [0, 1, u64::MAX, first[100] + 1, first[49_999] - 1] {
            if !first.contains(&hash) && !second.contains(&hash) {
                assert_eq!(runs.line_of(hash).expect("read"), None, "{hash}");
            }
        }
    }

    #[test]
    fn a_run_of_clustered_hashes_is_still_searched_to_the_end() {
        // Not uniformly spread: half the run at the bottom of the range,
        // so the first estimate misses and the search must narrow again.
        let mut hashes: Vec<u64> = (0..20_000u64).collect();
        hashes.extend((0..20_000u64).map(|i| u64::MAX - 20_000 + i));
        let lines: Vec<u32> = (0..hashes.len() as u32).collect();
        let mut runs = SpilledRuns::create(hashes.len(), None).expect("a temporary file");
        runs.spill(&hashes, &lines).expect("spilled");
        for index in (0..hashes.len()).step_by(911) {
            assert_eq!(
                runs.line_of(hashes[index]).expect("read"),
                Some(lines[index])
            );
        }
        assert_eq!(runs.line_of(1u64 << 40).expect("read"), None);
    }

    #[test]
    fn the_filter_rules_out_nearly_every_hash_never_spilled() {
        let state = std::hash::RandomState::new();
        let hash = |i: u64| state.hash_one(format!("p{i}"));
        let count = 200_000u64;
        let mut hashes: Vec<u64> = (0..count).map(hash).collect();
        hashes.sort_unstable();
        let lines = vec![0u32; hashes.len()];
        let mut runs = SpilledRuns::create(hashes.len(), None).expect("a temporary file");
        runs.spill(&hashes, &lines).expect("spilled");
        assert!(hashes.iter().all(|&h| runs.filter.contains_hash(h)));
        let passed = (count..count * 2)
            .filter(|&i| runs.filter.contains_hash(hash(i)))
            .count();
        // At 16 bits per id about 1 in 2,000 passes; 8 bits would let
        // about 1 in 50 through.
        assert!(
            passed < (count / 500) as usize,
            "{passed} of {count} never spilled passed the filter"
        );
    }
}
