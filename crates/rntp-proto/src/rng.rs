//! Injected randomness. The core never uses a global RNG: the driver passes an [`RngSource`], so
//! the simulator and tests are deterministic under a seed.

/// A source of random 64-bit words.
pub trait RngSource {
    /// The next random word.
    fn next_u64(&mut self) -> u64;

    /// A uniformly distributed float in [0, 1).
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A small, fast, seedable generator (SplitMix64) for tests and the simulator. Not for secrets:
/// the daemon seeds it from the OS and uses it only for transmit-timestamp nonces and jitter,
/// where unpredictability to an off-path attacker is what matters, not cryptographic strength.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator with the given seed.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }
}

impl RngSource for SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}
