//! A blocked Bloom filter over 64-bit hashes: says "certainly not seen"
//! for almost every new id in one cache line, so that ids moved to disk
//! are read back only when one may really be there.
//!
//! Each hash picks one 512-bit block (a cache line) and sets
//! [`BITS_PER_HASH`] bits in it. At [`BITS_PER_ID`] bits per id about one
//! lookup in 500 of an id never added answers "maybe".

/// Bits of filter per id it is sized for.
pub(super) const BITS_PER_ID: usize = 16;
/// Bits set per hash, all in the hash's block.
const BITS_PER_HASH: u32 = 7;
/// Words of 64 bits per block: 512 bits, one cache line.
const BLOCK_WORDS: usize = 8;

/// See the [module docs](self).
pub(super) struct BloomFilter {
    blocks: Vec<[u64; BLOCK_WORDS]>,
    /// How many ids it was sized for.
    capacity: usize,
    /// How many hashes were added.
    added: usize,
}

impl BloomFilter {
    /// An empty filter sized for `capacity` ids.
    pub(super) fn with_capacity(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        let bits = capacity.saturating_mul(BITS_PER_ID);
        let blocks = bits.div_ceil(BLOCK_WORDS * 64).max(1);
        Self {
            blocks: vec![[0; BLOCK_WORDS]; blocks],
            capacity,
            added: 0,
        }
    }

    /// How many ids it was sized for.
    pub(super) fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many hashes were added.
    pub(super) fn len(&self) -> usize {
        self.added
    }

    /// Add `hash`.
    pub(super) fn insert(&mut self, hash: u64) {
        let (block, bits) = self.place(hash);
        let block = &mut self.blocks[block];
        for bit in bits {
            block[bit / 64] |= 1 << (bit % 64);
        }
        self.added += 1;
    }

    /// False if `hash` was certainly never added; true if it may have been.
    pub(super) fn may_contain(&self, hash: u64) -> bool {
        let (block, bits) = self.place(hash);
        let block = &self.blocks[block];
        bits.into_iter()
            .all(|bit| block[bit / 64] & (1 << (bit % 64)) != 0)
    }

    /// The block `hash` falls in (from its high bits, by multiply and
    /// shift rather than a division) and the bits it sets there (nine bits
    /// each, from a bijective mix of the hash so that they do not repeat
    /// the bits that chose the block).
    fn place(&self, hash: u64) -> (usize, [usize; BITS_PER_HASH as usize]) {
        let block = ((u128::from(hash) * self.blocks.len() as u128) >> 64) as usize;
        let mut mixed = hash.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        mixed ^= mixed >> 29;
        mixed = mixed.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        mixed ^= mixed >> 32;
        let mut bits = [0usize; BITS_PER_HASH as usize];
        for (index, bit) in bits.iter_mut().enumerate() {
            *bit = ((mixed >> (index as u32 * 9)) & 511) as usize;
        }
        (block, bits)
    }

    /// Bytes the filter holds.
    #[cfg(test)]
    pub(super) fn bytes(&self) -> usize {
        self.blocks.len() * BLOCK_WORDS * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::{BuildHasher, Hasher};

    fn hashes(state: &std::hash::RandomState, range: std::ops::Range<u64>) -> Vec<u64> {
        range
            .map(|i| {
                let mut hasher = state.build_hasher();
                hasher.write(format!("p{i}").as_bytes());
                hasher.finish()
            })
            .collect()
    }

    #[test]
    fn every_added_hash_may_be_there_and_few_others_seem_to_be() {
        let state = std::hash::RandomState::new();
        let added = hashes(&state, 0..200_000);
        let mut filter = BloomFilter::with_capacity(added.len());
        for &hash in &added {
            filter.insert(hash);
        }
        assert_eq!(filter.len(), 200_000);
        assert!(added.iter().all(|&hash| filter.may_contain(hash)));
        let others = hashes(&state, 1_000_000..1_200_000);
        let false_positives = others.iter().filter(|&&h| filter.may_contain(h)).count();
        // About 1 in 500 at 16 bits per id; fail well before it is 1 in 100.
        assert!(
            false_positives < others.len() / 100,
            "{false_positives} of {} never added seemed present",
            others.len()
        );
        assert_eq!(filter.bytes(), 200_000 * BITS_PER_ID / 8);
    }

    #[test]
    fn an_empty_or_overfull_filter_still_answers() {
        let empty = BloomFilter::with_capacity(0);
        assert!(!empty.may_contain(42));
        let mut small = BloomFilter::with_capacity(10);
        for hash in 0..10_000u64 {
            small.insert(hash.wrapping_mul(0x2545_F491_4F6C_DD1D));
        }
        assert!(small.may_contain(7u64.wrapping_mul(0x2545_F491_4F6C_DD1D)));
        assert!(small.len() > small.capacity());
    }
}
