//! Time types: the monotonic [`Instant`] every state machine is driven by, and the NTP wire
//! representations ([`NtpTimestamp`], [`NtpDuration`], [`NtpShort`], [`PollInterval`]).
//!
//! Nothing here reads a clock. The daemon samples its clocks and passes the values in.
//!
//! # Eras
//! An on-wire NTP timestamp holds seconds modulo 2^32 (one "era" is 136 years; era 1 starts on
//! 2036-02-07). [`NtpTimestamp`] is that 64-bit value. Differences between two timestamps are
//! computed with wrapping arithmetic, which is correct across an era boundary as long as the two
//! are less than 68 years apart (RFC 5905 §6). Conversion to Unix time needs a reference: the
//! result is the Unix time nearest to it ([`NtpTimestamp::to_unix_near`]).

use core::fmt;
use core::ops::{Add, AddAssign, Neg, Sub};

/// Seconds from the NTP prime epoch (1900-01-01) to the Unix epoch (1970-01-01).
pub const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// A point in monotonic time, in nanoseconds since an arbitrary origin chosen by the driver.
///
/// State machines compare instants only with each other; they never learn the wall-clock time
/// from an `Instant`. The daemon maps its monotonic clock onto this type and the simulator uses
/// virtual time.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant(u64);

impl Instant {
    /// The origin of the driver's monotonic timescale.
    pub const ZERO: Instant = Instant(0);

    /// An instant `nanos` nanoseconds after the origin.
    pub const fn from_nanos(nanos: u64) -> Self {
        Instant(nanos)
    }

    /// Nanoseconds since the origin.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// The instant `secs` seconds after this one (saturating).
    pub fn add_secs_f64(self, secs: f64) -> Self {
        if secs <= 0.0 {
            return self;
        }
        Instant(self.0.saturating_add((secs * 1e9) as u64))
    }

    /// Seconds from `earlier` to `self`; negative when `earlier` is later.
    pub fn secs_since(self, earlier: Instant) -> f64 {
        (self.0 as i128 - earlier.0 as i128) as f64 / 1e9
    }
}

impl fmt::Debug for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Instant({:.9}s)", self.0 as f64 / 1e9)
    }
}

impl Add<core::time::Duration> for Instant {
    type Output = Instant;

    fn add(self, rhs: core::time::Duration) -> Instant {
        Instant(self.0.saturating_add(rhs.as_nanos().min(u64::MAX as u128) as u64))
    }
}

/// An NTP timestamp: 32 bits of seconds (modulo the era) and 32 bits of fraction.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct NtpTimestamp(u64);

impl NtpTimestamp {
    /// The all-zero timestamp, which RFC 5905 uses to mean "unknown".
    pub const ZERO: NtpTimestamp = NtpTimestamp(0);

    /// A timestamp from its 64-bit wire value.
    pub const fn from_bits(bits: u64) -> Self {
        NtpTimestamp(bits)
    }

    /// The 64-bit wire value.
    pub const fn to_bits(self) -> u64 {
        self.0
    }

    /// Whether this is the "unknown" timestamp (all zero bits).
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// Converts Unix time (seconds and nanoseconds since 1970) to an NTP timestamp. Times after
    /// 2036-02-07 land in era 1 and wrap, as on the wire.
    pub fn from_unix(secs: i64, nanos: u32) -> Self {
        let ntp_secs = (secs as i128 + NTP_UNIX_OFFSET as i128).rem_euclid(1 << 32) as u64;
        let frac = ((nanos as u64) << 32) / 1_000_000_000;
        NtpTimestamp((ntp_secs << 32) | frac)
    }

    /// Converts to Unix time (seconds, nanoseconds), choosing the era that puts the result
    /// nearest to `reference_unix_secs`. Correct across the 2036 rollover.
    pub fn to_unix_near(self, reference_unix_secs: i64) -> (i64, u32) {
        let secs_in_era = (self.0 >> 32) as i64;
        let nanos = (((self.0 & 0xFFFF_FFFF) * 1_000_000_000) >> 32) as u32;
        let reference_ntp = reference_unix_secs as i128 + NTP_UNIX_OFFSET as i128;
        let era = (reference_ntp - secs_in_era as i128 + (1 << 31)).div_euclid(1 << 32);
        let ntp = era * (1 << 32) + secs_in_era as i128;
        ((ntp - NTP_UNIX_OFFSET as i128) as i64, nanos)
    }

    /// This timestamp moved by `d` (wrapping, as on the wire).
    pub fn add_duration(self, d: NtpDuration) -> Self {
        NtpTimestamp(self.0.wrapping_add(d.0 as u64))
    }
}

impl Sub for NtpTimestamp {
    type Output = NtpDuration;

    /// The signed difference, correct across an era boundary for timestamps less than 68 years
    /// apart.
    fn sub(self, rhs: NtpTimestamp) -> NtpDuration {
        NtpDuration(self.0.wrapping_sub(rhs.0) as i64)
    }
}

impl fmt::Debug for NtpTimestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NtpTimestamp({:08x}.{:08x})", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

/// A signed time difference in NTP 32.32 fixed point (±68 years, 233 ps resolution).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct NtpDuration(i64);

impl NtpDuration {
    /// Zero.
    pub const ZERO: NtpDuration = NtpDuration(0);

    /// A duration from its 32.32 fixed-point bits.
    pub const fn from_bits(bits: i64) -> Self {
        NtpDuration(bits)
    }

    /// The 32.32 fixed-point bits.
    pub const fn to_bits(self) -> i64 {
        self.0
    }

    /// A duration from seconds (saturating at ±68 years; NaN becomes zero).
    pub fn from_secs_f64(secs: f64) -> Self {
        NtpDuration((secs * 4_294_967_296.0) as i64)
    }

    /// The duration in seconds.
    pub fn to_secs_f64(self) -> f64 {
        self.0 as f64 / 4_294_967_296.0
    }

    /// The absolute value (saturating).
    pub fn abs(self) -> Self {
        NtpDuration(self.0.saturating_abs())
    }
}

impl Add for NtpDuration {
    type Output = NtpDuration;

    fn add(self, rhs: NtpDuration) -> NtpDuration {
        NtpDuration(self.0.saturating_add(rhs.0))
    }
}

impl AddAssign for NtpDuration {
    fn add_assign(&mut self, rhs: NtpDuration) {
        *self = *self + rhs;
    }
}

impl Sub for NtpDuration {
    type Output = NtpDuration;

    fn sub(self, rhs: NtpDuration) -> NtpDuration {
        NtpDuration(self.0.saturating_sub(rhs.0))
    }
}

impl Neg for NtpDuration {
    type Output = NtpDuration;

    fn neg(self) -> NtpDuration {
        NtpDuration(self.0.saturating_neg())
    }
}

impl fmt::Debug for NtpDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NtpDuration({:.9}s)", self.to_secs_f64())
    }
}

/// The 16.16 unsigned fixed-point format of the root delay and root dispersion fields.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct NtpShort(u32);

impl NtpShort {
    /// Zero.
    pub const ZERO: NtpShort = NtpShort(0);

    /// A value from its 32-bit wire representation.
    pub const fn from_bits(bits: u32) -> Self {
        NtpShort(bits)
    }

    /// The 32-bit wire representation.
    pub const fn to_bits(self) -> u32 {
        self.0
    }

    /// From seconds, clamped to the representable range [0, 65536).
    pub fn from_secs_f64(secs: f64) -> Self {
        if secs.is_nan() || secs <= 0.0 {
            return NtpShort(0);
        }
        NtpShort((secs * 65_536.0).min(u32::MAX as f64) as u32)
    }

    /// The value in seconds.
    pub fn to_secs_f64(self) -> f64 {
        self.0 as f64 / 65_536.0
    }
}

impl fmt::Debug for NtpShort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NtpShort({:.6}s)", self.to_secs_f64())
    }
}

/// A poll interval as a base-2 logarithm of seconds (RFC 5905 `poll`, range [`Self::MIN`],
/// [`Self::MAX`] for what we send).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct PollInterval(i8);

impl PollInterval {
    /// The shortest interval we poll at: 2^-2 s, for tests and LAN use (chrony allows -6).
    pub const MIN: PollInterval = PollInterval(-2);
    /// The longest interval we poll at: 2^17 s (36 h), as ntpd's NTP_MAXPOLL.
    pub const MAX: PollInterval = PollInterval(17);
    /// ntpd's default `minpoll` (64 s).
    pub const DEFAULT_MIN: PollInterval = PollInterval(6);
    /// ntpd's default `maxpoll` (1024 s).
    pub const DEFAULT_MAX: PollInterval = PollInterval(10);

    /// A poll interval from its log2 value, clamped to [`Self::MIN`]..=[`Self::MAX`].
    pub fn from_log2(log2: i8) -> Self {
        PollInterval(log2.clamp(Self::MIN.0, Self::MAX.0))
    }

    /// The log2 value.
    pub const fn as_log2(self) -> i8 {
        self.0
    }

    /// The interval in seconds.
    pub fn as_secs_f64(self) -> f64 {
        2f64.powi(self.0 as i32)
    }

    /// One step longer, but not beyond `max`.
    pub fn inc(self, max: PollInterval) -> Self {
        PollInterval((self.0 + 1).min(max.0).max(self.0.min(max.0)))
    }

    /// One step shorter, but not below `min`.
    pub fn dec(self, min: PollInterval) -> Self {
        PollInterval((self.0 - 1).max(min.0))
    }
}

/// (year, month 1..=12, day 1..=31) of a day count since 1970-01-01 (proleptic Gregorian;
/// Howard Hinnant's `civil_from_days`). Total: every `i64` day a year can hold maps to a date.
/// The one copy for the workspace: leap seconds, statistics file names, `rntpctl` dates.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days.saturating_add(719_468);
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    // doy < 366 and mp < 12: the casts are exact.
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Days since 1970-01-01 of a (proleptic Gregorian) date; the inverse of
/// [`civil_from_days`].
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        for (days, date) in [
            (0, (1970, 1, 1)),
            (-1, (1969, 12, 31)),
            (59, (1970, 3, 1)),
            (11_016, (2000, 2, 29)),
            (20_454, (2026, 1, 1)),
            (24_837, (2038, 1, 1)),
            (-719_468, (0, 3, 1)),
        ] {
            assert_eq!(civil_from_days(days), date, "day {days}");
            assert_eq!(days_from_civil(date.0, date.1, date.2), days, "{date:?}");
        }
        for d in (-800_000..800_000).step_by(997) {
            let (y, m, dd) = civil_from_days(d);
            assert!((1..=12).contains(&m) && (1..=31).contains(&dd), "day {d}");
            assert_eq!(days_from_civil(y, m, dd), d);
        }
        // Extremes do not overflow.
        let _ = civil_from_days(i64::MAX);
        let _ = civil_from_days(i64::MIN);
    }

    #[test]
    fn unix_roundtrip_now() {
        let (s, n) = (1_795_675_301, 140_054_000);
        let ts = NtpTimestamp::from_unix(s, n);
        let (s2, n2) = ts.to_unix_near(s);
        assert_eq!(s2, s);
        assert!((n2 as i64 - n as i64).abs() <= 1);
    }

    #[test]
    fn era_rollover_2036() {
        // 2036-02-07T06:28:16Z is the first second of era 1: NTP seconds wrap to 0.
        let rollover_unix = (1i64 << 32) - NTP_UNIX_OFFSET as i64;
        let before = NtpTimestamp::from_unix(rollover_unix - 1, 0);
        let after = NtpTimestamp::from_unix(rollover_unix + 1, 0);
        assert_eq!(after.to_bits() >> 32, 1);
        assert_eq!((after - before).to_secs_f64(), 2.0);
        assert_eq!((before - after).to_secs_f64(), -2.0);
        // Interpreted near a reference on either side of the rollover, both map back.
        assert_eq!(after.to_unix_near(rollover_unix - 100).0, rollover_unix + 1);
        assert_eq!(before.to_unix_near(rollover_unix + 100).0, rollover_unix - 1);
    }

    #[test]
    fn duration_conversions() {
        let d = NtpDuration::from_secs_f64(-0.25);
        assert_eq!(d.to_secs_f64(), -0.25);
        assert_eq!(NtpShort::from_secs_f64(1.5).to_bits(), 0x0001_8000);
        assert_eq!(NtpShort::from_secs_f64(-1.0), NtpShort::ZERO);
    }

    #[test]
    fn poll_bounds() {
        let p = PollInterval::from_log2(10);
        assert_eq!(p.inc(PollInterval::from_log2(10)), p);
        assert_eq!(p.dec(PollInterval::from_log2(10)), p);
        assert_eq!(PollInterval::from_log2(100), PollInterval::MAX);
    }
}
