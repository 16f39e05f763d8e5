//! Named, independently seeded random streams.
//!
//! A scenario has one `u64` seed; every random effect in the models draws
//! from its own stream, derived from that seed and the stream's name. The
//! derivation uses only fixed, documented arithmetic (FNV-1a 64 of the name,
//! SplitMix64 to expand into the generator state), never
//! `std::collections::hash_map::DefaultHasher`, so a given (seed, name)
//! yields the same numbers on every platform, toolchain and release, and
//! adding or removing a stream never changes another stream's numbers.

use rand::SeedableRng;

/// The generator every model draws from: xoshiro256++ (fast, 256-bit state,
/// good statistical quality, stable output across `rand_xoshiro` releases).
pub type ModelRng = rand_xoshiro::Xoshiro256PlusPlus;

/// Factory of named streams under one scenario seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeedStreams {
    seed: u64,
}

impl SeedStreams {
    /// Streams under the scenario seed `seed`.
    pub const fn new(seed: u64) -> Self {
        Self { seed }
    }

    /// The scenario seed.
    pub const fn seed(&self) -> u64 {
        self.seed
    }

    /// Independent streams for the `index`-th member of a family `name`
    /// (e.g. board 17 of a Monte Carlo): a new seed derived from this one,
    /// the name and the index with the same fixed arithmetic.
    pub fn derive(&self, name: &str, index: u64) -> SeedStreams {
        let mut state = splitmix64_mix(self.seed) ^ fnv1a64(name.as_bytes());
        state ^= splitmix64_mix(index.wrapping_add(GOLDEN_GAMMA));
        SeedStreams::new(splitmix64_next(&mut state))
    }

    /// A fresh generator for the stream `name`. Calling it twice with the
    /// same name returns two generators in the same state.
    pub fn stream(&self, name: &str) -> ModelRng {
        let mut state = splitmix64_mix(self.seed) ^ fnv1a64(name.as_bytes());
        let mut bytes = [0u8; 32];
        for chunk in bytes.chunks_exact_mut(8) {
            chunk.copy_from_slice(&splitmix64_next(&mut state).to_le_bytes());
        }
        ModelRng::from_seed(bytes)
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
const GOLDEN_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// FNV-1a, 64-bit.
const fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h = FNV_OFFSET;
    let mut i = 0;
    while i < bytes.len() {
        h ^= bytes[i] as u64;
        h = h.wrapping_mul(FNV_PRIME);
        i += 1;
    }
    h
}

/// SplitMix64 output function (Stafford variant 13).
const fn splitmix64_mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// One SplitMix64 step.
const fn splitmix64_next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(GOLDEN_GAMMA);
    splitmix64_mix(*state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn fnv1a_reference_vectors() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn splitmix64_reference_vector() {
        // SplitMix64 seeded with 0: first output (reference implementation).
        let mut s = 0u64;
        assert_eq!(splitmix64_next(&mut s), 0xe220_a839_7b1d_cdaf);
    }

    #[test]
    fn stream_independent_of_other_streams() {
        let streams = SeedStreams::new(42);
        let mut a1 = streams.stream("a");
        let first: Vec<u64> = (0..8).map(|_| a1.next_u64()).collect();

        let other = SeedStreams::new(42);
        let mut b = other.stream("b");
        let _ = b.next_u64();
        let mut a2 = other.stream("a");
        let second: Vec<u64> = (0..8).map(|_| a2.next_u64()).collect();
        assert_eq!(first, second);

        let mut b2 = streams.stream("b");
        assert_ne!(a2.next_u64(), b2.next_u64());
    }

    #[test]
    fn seeds_and_names_separate_streams() {
        let x = SeedStreams::new(1).stream("pack").next_u64();
        let y = SeedStreams::new(2).stream("pack").next_u64();
        let z = SeedStreams::new(1).stream("pack2").next_u64();
        assert_ne!(x, y);
        assert_ne!(x, z);
    }

    #[test]
    fn derived_streams_are_distinct_and_stable() {
        let s = SeedStreams::new(5);
        assert_eq!(s.derive("board", 3), s.derive("board", 3));
        assert_ne!(s.derive("board", 3), s.derive("board", 4));
        assert_ne!(s.derive("board", 3), s.derive("unit", 3));
        assert_ne!(s.derive("board", 0), s);
    }

    #[test]
    fn snapshot_fixed_seed() {
        // If this changes, every seeded scenario's numbers change: only
        // update it deliberately.
        let mut r = SeedStreams::new(209).stream("pack");
        assert_eq!(r.next_u64(), SNAPSHOT);
    }

    const SNAPSHOT: u64 = 4_623_604_469_714_879_045;
}
