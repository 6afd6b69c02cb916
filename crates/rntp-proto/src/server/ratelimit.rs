//! Per-client rate limiting for the server: ntpd's `discard average A minimum M` with
//! `restrict ... limited`, in a table of fixed size.
//!
//! The score each client carries is documented on [`RateLimit`].
//!
//! # The table
//! A fixed number of slots (a power of two, 4-way set associative), allocated once. A client's
//! set is chosen by SipHash-1-3 of its address under a key derived from an injected seed, so an
//! attacker who does not know the seed cannot aim spoofed sources at one set. A new client
//! takes a free slot in its set, else evicts the slot whose *drained* score is lowest (oldest
//! first among equals): a score that has drained to zero carries no information, so a flood
//! of one-off spoofed sources evicts its own kind before an abusive client with a high score.
//! An evicted client starts afresh, which can only make us more lenient to it, never block a
//! legitimate one. Memory is bounded whatever arrives.
//!
//! This module deliberately does **not** decide what to send (the responder does), track
//! subnets (each address is its own client, as in ntpd), or keep ntpd's MRU list for `ntpq`
//! (that is [`super::mru`]: it needs first-seen times, counts and ports, which this table,
//! built to stay small under a flood, does not keep).

use crate::rng::{RngSource, SplitMix64};
use crate::time::Instant;

use super::restrict::Key;

/// ntpd's `NTP_SHIFT`: the score may reach this many `head`s before the client is limited.
const BURST_HEADS: u64 = 0x08;
/// ntpd's grace on the average: each accepted request adds `head` minus this.
const AVERAGE_GRACE_MS: u64 = 0x07D0;
/// ntpd's grace on the minimum spacing (1 s), plus 50 ms for arrival jitter: ntpd measured
/// whole seconds, so a client at exactly one request per second passed; at microsecond
/// resolution one that arrives 0.2 ms early must pass too.
const MINIMUM_GRACE_US: u64 = 1_050_000;
/// Microseconds per second.
const US_PER_SEC: u64 = 1_000_000;
/// Nanoseconds per microsecond.
const NS_PER_US: u64 = 0x03E8;
/// Milliseconds per second.
const MS_PER_SEC: u64 = 0x03E8;
/// Nanoseconds per millisecond.
const NS_PER_MS: u64 = 0x000F_4240;
/// Largest `average` honoured (2^16 s, 18 h): keeps `limit + head` within a `u32` of ms.
pub(super) const MAX_AVERAGE_LOG2: u8 = 0x10;
/// Slots per set. Four ways let a busy client survive collisions with one-off sources.
const WAYS: usize = 0x04;
/// Smallest table.
const MIN_SLOTS: usize = 0x10;
/// Largest table (2^20 slots, 32 MiB): a bound on what a configuration can make us allocate.
const MAX_SLOTS: usize = 0x0010_0000;

/// SipHash initialization constants ("somepseudorandomlygeneratedbytes").
const SIP_INIT: [u64; 4] =
    [0x736F_6D65_7073_6575, 0x646F_7261_6E64_6F6D, 0x6C79_6765_6E65_7261, 0x7465_6462_7974_6573];
/// The SipHash length byte for our fixed 16-byte messages, in the top byte of the last block.
const SIP_LEN_BLOCK: u64 = 0x10 << 0x38;
/// XORed into `v2` before the finalization rounds.
const SIP_FINAL: u64 = 0xFF;

/// Rate-limit settings: ntpd's `discard average A minimum M`, plus the table size.
///
/// # The score (ntpd's `ntp_monitor`, in milliseconds instead of whole seconds)
/// Each client has a score `leak` that drains at one unit per millisecond. With
/// `head = 2^A` s and `limit = 8 · head`, on each request after an interval `t` since the
/// previous one:
/// ```text
/// leak = max(0, leak - t)
/// if t + 1.05 s >= M and leak + head < limit:  leak = leak + head - 2 s   → pass
/// else if leak < limit:                      leak = limit + head        → over, one KoD allowed
/// else:                                      (leak unchanged)           → over, silent drop
/// ```
/// A client's first request always passes and starts the score at `head - 2 s`. A client
/// averaging one request per `head - 2 s` or slower never accumulates a score; a faster one gets
/// a burst of about `7 · head / (head - 2 s - t)` requests (12 at one per second with the
/// defaults), then is limited until it slows down. Crossing the limit parks the score above `limit` for one `head`, which is
/// what rate-limits the kiss-o'-death: at most one KoD per client per `2^A` seconds. The 1 s
/// and 2 s graces are ntpd's (ntpd counted whole seconds; the spacing is measured here in
/// microseconds, with 50 ms more grace for arrival jitter, so a client sending once a second
/// passes the minimum check however its packets are timed). A request that breaks the
/// minimum spacing `M` counts as over the limit straight away, as in ntpd.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct RateLimit {
    /// `discard average`: log2 of the minimum average interval between requests, in seconds
    /// (default 3, i.e. 8 s). Values above 16 are treated as 16.
    pub average_log2: u8,
    /// `discard minimum`: the minimum interval between two requests, in seconds (default 2).
    /// ntpd gives one second of grace (here 1.05 s), so 2 rejects only requests less than
    /// 0.95 s apart.
    pub minimum_secs: u8,
    /// Client slots in the table. Rounded up to a power of two and clamped to 16..=2^20.
    /// Each slot is 32 bytes; the default 4096 takes 128 KiB.
    pub table_size: usize,
}

impl Default for RateLimit {
    /// ntpd's defaults (`average 3`, `minimum 2`) and 4096 slots.
    fn default() -> Self {
        RateLimit { average_log2: 0x03, minimum_secs: 0x02, table_size: 0x1000 }
    }
}

impl RateLimit {
    /// The slot count the table really gets.
    pub fn effective_table_size(&self) -> usize {
        self.table_size.clamp(MIN_SLOTS, MAX_SLOTS).next_power_of_two()
    }

    /// `head`, the minimum average interval, in ms.
    fn head_ms(&self) -> u64 {
        MS_PER_SEC << self.average_log2.min(MAX_AVERAGE_LOG2)
    }
}

/// The rate limiter's judgement of one request.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Verdict {
    /// Within the limits.
    Pass,
    /// Over a limit, and the first time in this `head` interval: one KoD may be sent.
    OverFirst,
    /// Over a limit again within the same interval: drop silently.
    Over,
}

/// One client's state.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
struct Slot {
    /// The client ([`Key::to_bytes`] as a number).
    client: u128,
    /// When its latest request arrived, ns on the monotonic scale.
    last_ns: u64,
    /// The score, ms.
    leak_ms: u32,
    /// Whether the slot holds a client.
    used: bool,
}

impl Slot {
    /// The score after draining until `now_ns`: what the slot is worth keeping.
    fn drained(&self, now_ns: u64) -> u64 {
        u64::from(self.leak_ms).saturating_sub(now_ns.saturating_sub(self.last_ns) / NS_PER_MS)
    }
}

/// The fixed-size client table.
#[derive(Clone, Debug)]
pub(super) struct ClientTable {
    /// `sets × WAYS` slots, allocated once.
    slots: Box<[Slot]>,
    /// `sets - 1`; sets is a power of two.
    set_mask: u64,
    /// SipHash key.
    key: (u64, u64),
}

impl ClientTable {
    /// A table of `limit.effective_table_size()` slots, hashing under a key derived from `seed`.
    pub(super) fn new(limit: &RateLimit, seed: u64) -> Self {
        let size = limit.effective_table_size();
        let mut rng = SplitMix64::new(seed);
        let key = (rng.next_u64(), rng.next_u64());
        ClientTable {
            slots: vec![Slot::default(); size].into_boxed_slice(),
            set_mask: (size / WAYS) as u64 - 1,
            key,
        }
    }

    /// Slots, used or not. Never changes after construction.
    pub(super) fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Slots in use. A scan; for statistics, not the hot path.
    pub(super) fn len(&self) -> usize {
        self.slots.iter().filter(|s| s.used).count()
    }

    /// Accounts one request from `client` at `now` and judges it. O(1): one hash, four slots.
    pub(super) fn check(&mut self, now: Instant, client: Key, limit: &RateLimit) -> Verdict {
        let bytes = client.to_bytes();
        let id = u128::from_be_bytes(bytes);
        let set = siphash::<1, 3>(self.key, &bytes) & self.set_mask;
        // The set index is below `slots.len() / WAYS`, so the range is in bounds; `get_mut`
        // keeps that an invariant instead of a panic.
        let start = (set as usize).saturating_mul(WAYS);
        let Some(ways) = self.slots.get_mut(start..start.saturating_add(WAYS)) else {
            return Verdict::Pass;
        };
        let now_ns = now.as_nanos();
        let head = limit.head_ms();
        if let Some(slot) = ways.iter_mut().find(|s| s.used && s.client == id) {
            return Self::account(slot, now_ns, head, limit);
        }
        // A new client: free slot first, else the least valuable (lowest drained score, then
        // oldest).
        let Some(victim) = ways.iter_mut().min_by_key(|s| (s.used, s.drained(now_ns), s.last_ns))
        else {
            return Verdict::Pass;
        };
        // As in ntpd, a client's first request always passes; it starts the score.
        *victim = Slot {
            client: id,
            last_ns: now_ns,
            leak_ms: to_u32(head.saturating_sub(AVERAGE_GRACE_MS)),
            used: true,
        };
        Verdict::Pass
    }

    /// The score update of the module doc for a known client.
    fn account(slot: &mut Slot, now_ns: u64, head: u64, limit: &RateLimit) -> Verdict {
        let interval_us = now_ns.saturating_sub(slot.last_ns) / NS_PER_US;
        let interval = interval_us / (NS_PER_MS / NS_PER_US);
        // Never move backwards: a driver handing us an older instant must not reset the drain.
        slot.last_ns = slot.last_ns.max(now_ns);
        let leak = u64::from(slot.leak_ms).saturating_sub(interval);
        let ceiling = BURST_HEADS * head;
        let minimum_us = u64::from(limit.minimum_secs) * US_PER_SEC;
        if interval_us + MINIMUM_GRACE_US >= minimum_us && leak + head < ceiling {
            slot.leak_ms = to_u32((leak + head).saturating_sub(AVERAGE_GRACE_MS));
            Verdict::Pass
        } else if leak < ceiling {
            slot.leak_ms = to_u32(ceiling + head);
            Verdict::OverFirst
        } else {
            slot.leak_ms = to_u32(leak);
            Verdict::Over
        }
    }
}

/// Saturating conversion; scores stay below 9 · 2^16 s in ms, well inside a `u32`.
fn to_u32(ms: u64) -> u32 {
    u32::try_from(ms).unwrap_or(u32::MAX)
}

/// One SipRound.
fn sip_round(v: &mut (u64, u64, u64, u64)) {
    v.0 = v.0.wrapping_add(v.1);
    v.1 = v.1.rotate_left(13) ^ v.0;
    v.0 = v.0.rotate_left(32);
    v.2 = v.2.wrapping_add(v.3);
    v.3 = v.3.rotate_left(16) ^ v.2;
    v.0 = v.0.wrapping_add(v.3);
    v.3 = v.3.rotate_left(21) ^ v.0;
    v.2 = v.2.wrapping_add(v.1);
    v.1 = v.1.rotate_left(17) ^ v.2;
    v.2 = v.2.rotate_left(32);
}

/// SipHash-C-D of exactly 16 bytes under `key`. A keyed PRF is what stops an attacker from
/// choosing sources that collide in one set; C = 1, D = 3 is the variant Rust's `HashMap` uses
/// for the same purpose.
pub(crate) fn siphash<const C: usize, const D: usize>(key: (u64, u64), msg: &[u8; 16]) -> u64 {
    let (k0, k1) = key;
    let mut v = (SIP_INIT[0] ^ k0, SIP_INIT[1] ^ k1, SIP_INIT[2] ^ k0, SIP_INIT[3] ^ k1);
    let words = u128::from_le_bytes(*msg);
    // Little-endian words: the first 8 bytes are the low half.
    for m in [words as u64, (words >> 64) as u64, SIP_LEN_BLOCK] {
        v.3 ^= m;
        for _ in 0..C {
            sip_round(&mut v);
        }
        v.0 ^= m;
    }
    v.2 ^= SIP_FINAL;
    for _ in 0..D {
        sip_round(&mut v);
    }
    v.0 ^ v.1 ^ v.2 ^ v.3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn siphash24_matches_std() {
        // std's deprecated SipHasher is the reference SipHash-2-4; same rounds code, other C/D.
        #[allow(deprecated)]
        fn reference(k0: u64, k1: u64, msg: &[u8; 16]) -> u64 {
            use core::hash::Hasher;
            let mut h = std::hash::SipHasher::new_with_keys(k0, k1);
            h.write(msg);
            h.finish()
        }
        let mut rng = SplitMix64::new(0x5EED);
        for _ in 0..100 {
            let key = (rng.next_u64(), rng.next_u64());
            let msg = (u128::from(rng.next_u64()) << 64 | u128::from(rng.next_u64())).to_le_bytes();
            assert_eq!(siphash::<2, 4>(key, &msg), reference(key.0, key.1, &msg));
        }
    }

    /// The documented burst: a client sending once a second (with a little arrival jitter
    /// either side) passes the minimum check every time and gets about 12 requests before
    /// the average limit stops it.
    #[test]
    fn steady_one_per_second_gets_the_documented_burst() {
        let limit = RateLimit::default();
        for jitter_us in [0i64, 200, -200, 5_000, -5_000] {
            let mut table = ClientTable::new(&limit, 7);
            let client = super::super::restrict::Key::new("192.0.2.1".parse().unwrap());
            let mut passed = 0;
            for i in 0..40i64 {
                let t = (i * 1_000_000 + if i % 2 == 1 { jitter_us } else { 0 }) * 1_000;
                let at = Instant::from_nanos(u64::try_from(t).unwrap());
                match table.check(at, client, &limit) {
                    Verdict::Pass => passed += 1,
                    _ => break,
                }
            }
            // 7·head/(head − 2 s − t) = 56/5 ≈ 11, plus the first request.
            assert!((11..=13).contains(&passed), "jitter {jitter_us} µs: {passed} passed");
        }
    }

    #[test]
    fn requests_closer_than_the_minimum_are_over() {
        let limit = RateLimit::default();
        let mut table = ClientTable::new(&limit, 7);
        let client = super::super::restrict::Key::new("192.0.2.2".parse().unwrap());
        assert_eq!(table.check(Instant::from_nanos(0), client, &limit), Verdict::Pass);
        // 0.9 s later: under M − 1.05 s.
        let v = table.check(Instant::from_nanos(900_000_000), client, &limit);
        assert_eq!(v, Verdict::OverFirst);
    }

    #[test]
    fn slot_is_32_bytes() {
        // The size RateLimit::table_size documents.
        assert_eq!(core::mem::size_of::<Slot>(), 0x20);
    }

    #[test]
    fn table_size_is_a_bounded_power_of_two() {
        for (asked, got) in [(0, 16), (17, 32), (4096, 4096), (5000, 8192), (usize::MAX, 1 << 20)] {
            let limit = RateLimit { table_size: asked, ..RateLimit::default() };
            assert_eq!(limit.effective_table_size(), got, "{asked}");
            assert_eq!(ClientTable::new(&limit, 1).capacity(), got);
        }
    }
}
