//! Read-only clock access: `clock_gettime`, `clock_getres` and `adjtimex(modes = 0)`.

use std::fmt;
use std::io;
use std::mem::MaybeUninit;

const NANOS_PER_SEC: i64 = 1_000_000_000;

/// A Unix wall-clock time (seconds and nanoseconds since 1970-01-01T00:00:00 UTC, leap seconds
/// not counted), as read from `CLOCK_REALTIME` or carried in a kernel receive timestamp.
///
/// `nanos` is always in `0..1_000_000_000`; times before 1970 have negative `secs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct WallTime {
    /// Whole seconds since the Unix epoch (may be negative).
    pub secs: i64,
    /// Nanoseconds within the second, `0..1_000_000_000`.
    pub nanos: u32,
}

impl WallTime {
    /// Builds a normalised `WallTime` from seconds and a possibly out-of-range nanosecond
    /// count (as some kernels/simulators might hand back), carrying overflow into `secs`.
    pub(crate) fn from_parts(secs: i64, nanos: i64) -> WallTime {
        let carry = nanos.div_euclid(NANOS_PER_SEC);
        let nanos = nanos.rem_euclid(NANOS_PER_SEC);
        WallTime {
            secs: secs.saturating_add(carry),
            // `rem_euclid` with a positive modulus is in 0..1e9, which fits in u32.
            nanos: nanos as u32,
        }
    }

    /// Converts a kernel `timespec` (from `clock_gettime` or `SCM_TIMESTAMPNS`).
    // `time_t`/`c_long` are i64 on 64-bit targets but i32 on some 32-bit ones.
    #[allow(clippy::useless_conversion)]
    pub(crate) fn from_timespec(ts: &libc::timespec) -> WallTime {
        WallTime::from_parts(i64::from(ts.tv_sec), i64::from(ts.tv_nsec))
    }

    /// Converts a kernel `timeval` (from `SCM_TIMESTAMP`, microsecond resolution).
    // `time_t`/`suseconds_t` are i64 on 64-bit targets but i32 on some 32-bit ones.
    #[allow(clippy::useless_conversion)]
    pub(crate) fn from_timeval(tv: &libc::timeval) -> WallTime {
        WallTime::from_parts(i64::from(tv.tv_sec), i64::from(tv.tv_usec).saturating_mul(1000))
    }

    /// Nanoseconds since the Unix epoch as an `i128` (never overflows).
    pub fn as_nanos(&self) -> i128 {
        i128::from(self.secs) * i128::from(NANOS_PER_SEC) + i128::from(self.nanos)
    }
}

/// Reads `clock_id` with `clock_gettime`.
fn gettime(clock_id: libc::clockid_t) -> io::Result<libc::timespec> {
    let mut ts = MaybeUninit::<libc::timespec>::uninit();
    // SAFETY: `ts` is a valid, writable `timespec`-sized location for the duration of the
    // call; `clock_gettime` only writes to it (it never reads it) and does not retain it.
    let rc = unsafe { libc::clock_gettime(clock_id, ts.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `clock_gettime` returned 0, so it fully initialised `ts`.
    Ok(unsafe { ts.assume_init() })
}

/// Reads the system wall clock (`clock_gettime(CLOCK_REALTIME)`).
///
/// This is the clock that NTP disciplines and that kernel receive timestamps use, so it is the
/// time base for NTP timestamps (T1..T4).
///
/// # Panics
///
/// Panics if `clock_gettime(CLOCK_REALTIME)` fails, which POSIX only allows for an invalid
/// clock id or pointer; neither can happen here, so a failure means a broken libc or
/// interposer.
pub fn realtime() -> WallTime {
    let ts = gettime(libc::CLOCK_REALTIME)
        .unwrap_or_else(|e| panic!("clock_gettime(CLOCK_REALTIME) failed: {e}"));
    WallTime::from_timespec(&ts)
}

/// Reads the monotonic clock (`clock_gettime(CLOCK_MONOTONIC)`) in nanoseconds.
///
/// On Linux the origin is (approximately) system boot and the clock does not advance while
/// the system is suspended; it is never stepped, but it *is* slewed by the kernel frequency
/// discipline. Only differences between readings are meaningful. The daemon maps this value
/// to `rntp_proto::time::Instant` (for poll timers, reachability and filter ages); it is never
/// used as an NTP timestamp.
///
/// # Panics
///
/// Panics if `clock_gettime(CLOCK_MONOTONIC)` fails (impossible with a working libc).
pub fn monotonic_nanos() -> u64 {
    let ts = gettime(libc::CLOCK_MONOTONIC)
        .unwrap_or_else(|e| panic!("clock_gettime(CLOCK_MONOTONIC) failed: {e}"));
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
    secs.saturating_mul(NANOS_PER_SEC as u64).saturating_add(nanos)
}

/// Nanoseconds of `CLOCK_BOOTTIME`: like [`monotonic_nanos`], but it keeps counting while the
/// system is suspended. The daemon's notion of elapsed time (poll intervals, DNS TTLs, the
/// drift prediction) must include a suspend: a TTL runs out and the clock drifts whether or not
/// the machine was asleep.
///
/// # Panics
///
/// Panics if `clock_gettime(CLOCK_BOOTTIME)` fails (impossible on Linux ≥ 2.6.39).
pub fn boottime_nanos() -> u64 {
    #[cfg(target_os = "linux")]
    let id = libc::CLOCK_BOOTTIME;
    #[cfg(not(target_os = "linux"))]
    let id = libc::CLOCK_MONOTONIC;
    let ts = gettime(id).unwrap_or_else(|e| panic!("clock_gettime(CLOCK_BOOTTIME) failed: {e}"));
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
    secs.saturating_mul(NANOS_PER_SEC as u64).saturating_add(nanos)
}

/// Number of successive clock reads used by [`clock_precision_log2`].
const PRECISION_SAMPLES: usize = 512;
/// Value returned by [`clock_precision_log2`] when nothing could be measured (≈ 1 µs).
const PRECISION_FALLBACK: i8 = -20;

/// Returns the precision of the system clock as an RFC 5905 `precision` value: the base-2
/// logarithm (in seconds) of the smallest interval the clock can resolve when read, clamped
/// to `-30..=0`.
///
/// # Method
///
/// 1. Read `CLOCK_REALTIME` 512 times back to back and keep the
///    smallest *positive* difference between successive readings (the reading granularity:
///    either the tick of a coarse clock or the cost of one read on a fine one). Backward
///    steps and zero differences are ignored.
/// 2. Read `clock_getres(CLOCK_REALTIME)` (the advertised resolution).
/// 3. Take the larger (coarser) of the two and round **up** to a power of two:
///    `ceil(log2(seconds))`, clamped to `-30..=0`.
///
/// If neither step yields a value (e.g. a frozen simulated clock and a failing
/// `clock_getres`), returns -20 (about one microsecond). The measurement takes a few
/// microseconds up to a millisecond; call it once at startup and keep the result.
pub fn clock_precision_log2() -> i8 {
    let mut min_step: Option<i128> = None;
    let mut prev = realtime().as_nanos();
    for _ in 0..PRECISION_SAMPLES {
        let now = realtime().as_nanos();
        let step = now - prev;
        if step > 0 && min_step.is_none_or(|m| step < m) {
            min_step = Some(step);
        }
        prev = now;
    }
    let res = clock_resolution_nanos(libc::CLOCK_REALTIME).filter(|&r| r > 0);
    let nanos = match (min_step, res) {
        (Some(a), Some(b)) => a.max(b),
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => return PRECISION_FALLBACK,
    };
    precision_from_nanos(nanos)
}

/// `clock_getres(clock_id)` in nanoseconds, or `None` on failure.
fn clock_resolution_nanos(clock_id: libc::clockid_t) -> Option<i128> {
    let mut ts = MaybeUninit::<libc::timespec>::uninit();
    // SAFETY: `ts` is a valid, writable `timespec`-sized location for the duration of the
    // call; `clock_getres` only writes to it and does not retain the pointer.
    let rc = unsafe { libc::clock_getres(clock_id, ts.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: `clock_getres` returned 0, so it fully initialised `ts`.
    let ts = unsafe { ts.assume_init() };
    Some(i128::from(ts.tv_sec) * i128::from(NANOS_PER_SEC) + i128::from(ts.tv_nsec))
}

/// `ceil(log2(nanos * 1e-9))`, clamped to `-30..=0`.
fn precision_from_nanos(nanos: i128) -> i8 {
    if nanos <= 0 {
        return -30;
    }
    if nanos >= i128::from(NANOS_PER_SEC) {
        return 0;
    }
    // Smallest p in -30..=0 with 2^p s >= n ns, in exact integer arithmetic:
    // 2^p s >= n ns  <=>  n * 2^(-p) <= 1e9. Here n < 2^30, so the shift cannot overflow.
    (-30i32..=0)
        .find(|&p| (nanos << (-p) as u32) <= i128::from(NANOS_PER_SEC))
        .map_or(0, |p| p as i8)
}

/// The kernel's leap-second / clock state, as returned by `adjtimex` (`TIME_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KernelTimeState {
    /// `TIME_OK`: clock synchronised, no leap second pending.
    Ok,
    /// `TIME_INS`: a leap second will be inserted at the end of the UTC day.
    Insert,
    /// `TIME_DEL`: a leap second will be deleted at the end of the UTC day.
    Delete,
    /// `TIME_OOP`: a leap second insertion is in progress.
    InProgress,
    /// `TIME_WAIT`: a leap second has just occurred.
    Wait,
    /// `TIME_ERROR` (alias `TIME_BAD`): the clock is not synchronised.
    Error,
    /// Any other value returned by the kernel.
    Other(i32),
}

impl KernelTimeState {
    /// Maps the return value of `adjtimex` to a state.
    pub fn from_raw(raw: i32) -> KernelTimeState {
        match raw {
            0 => KernelTimeState::Ok,
            1 => KernelTimeState::Insert,
            2 => KernelTimeState::Delete,
            3 => KernelTimeState::InProgress,
            4 => KernelTimeState::Wait,
            5 => KernelTimeState::Error,
            other => KernelTimeState::Other(other),
        }
    }

    /// The C constant name (`"TIME_OK"`, ...), or `"TIME_UNKNOWN"` for [`Self::Other`].
    pub fn name(&self) -> &'static str {
        match self {
            KernelTimeState::Ok => "TIME_OK",
            KernelTimeState::Insert => "TIME_INS",
            KernelTimeState::Delete => "TIME_DEL",
            KernelTimeState::InProgress => "TIME_OOP",
            KernelTimeState::Wait => "TIME_WAIT",
            KernelTimeState::Error => "TIME_ERROR",
            KernelTimeState::Other(_) => "TIME_UNKNOWN",
        }
    }
}

impl fmt::Display for KernelTimeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KernelTimeState::Other(raw) => write!(f, "TIME_UNKNOWN({raw})"),
            other => f.write_str(other.name()),
        }
    }
}

/// Names of the `STA_*` status bits, lowest bit first (Linux `<sys/timex.h>` values).
const STATUS_NAMES: [(u32, &str); 16] = [
    (0x0001, "PLL"),
    (0x0002, "PPSFREQ"),
    (0x0004, "PPSTIME"),
    (0x0008, "FLL"),
    (0x0010, "INS"),
    (0x0020, "DEL"),
    (0x0040, "UNSYNC"),
    (0x0080, "FREQHOLD"),
    (0x0100, "PPSSIGNAL"),
    (0x0200, "PPSJITTER"),
    (0x0400, "PPSWANDER"),
    (0x0800, "PPSERROR"),
    (0x1000, "CLOCKERR"),
    (0x2000, "NANO"),
    (0x4000, "MODE"),
    (0x8000, "CLK"),
];
const STA_UNSYNC: u32 = 0x0040;
const STA_NANO: u32 = 0x2000;

/// A read-only snapshot of the kernel clock discipline (`adjtimex` with `modes = 0`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KernelClockState {
    /// Raw `STA_*` status bits (`timex.status`); see [`Self::status_names`].
    pub status: u32,
    /// `true` unless `STA_UNSYNC` is set, i.e. some time daemon told the kernel the clock is
    /// synchronised (this is what the kernel's 11-minute RTC sync and `timedatectl` look at).
    pub synchronized: bool,
    /// Remaining PLL/FLL time offset, in nanoseconds (converted from microseconds unless
    /// `STA_NANO` is set).
    pub offset_nanos: i64,
    /// Frequency offset in parts per million (`timex.freq / 65536`); positive means the clock
    /// is being sped up.
    pub freq_ppm: f64,
    /// Maximum error estimate, in microseconds (`timex.maxerror`).
    pub maxerror_micros: i64,
    /// Estimated error, in microseconds (`timex.esterror`).
    pub esterror_micros: i64,
    /// PLL time constant (`timex.constant`).
    pub time_constant: i64,
    /// Microseconds added to the clock per timer tick (`timex.tick`).
    pub tick_micros: i64,
    /// Leap-second / clock state (the return value of `adjtimex`).
    pub state: KernelTimeState,
}

impl KernelClockState {
    /// Names of the set `STA_*` status bits (without the `STA_` prefix), lowest bit first,
    /// e.g. `["PLL", "UNSYNC", "NANO"]`. Unknown bits are omitted.
    pub fn status_names(&self) -> Vec<&'static str> {
        STATUS_NAMES
            .iter()
            .filter(|(bit, _)| self.status & bit != 0)
            .map(|&(_, name)| name)
            .collect()
    }
}

/// Reads the kernel clock discipline state with `adjtimex` and `modes = 0`.
///
/// This is strictly **read-only**: with `modes = 0` the kernel changes nothing (and no
/// privilege is needed). It is used for `rntpctl status` and by tests that check the clock
/// was not touched.
///
/// # Errors
///
/// The `adjtimex` error (from `errno`), or [`io::ErrorKind::Unsupported`] on non-Linux
/// systems.
pub fn kernel_clock_state() -> io::Result<KernelClockState> {
    imp_kernel_clock_state()
}

#[cfg(target_os = "linux")]
fn imp_kernel_clock_state() -> io::Result<KernelClockState> {
    // SAFETY: `timex` is a plain C struct of integers (plus private padding), for which the
    // all-zero bit pattern is valid. Zeroing also sets `modes` to 0.
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    tx.modes = 0;
    // SAFETY: `tx` is a valid, writable `timex` for the duration of the call and the kernel
    // does not retain the pointer. `modes` is 0, so this is a pure query: the kernel writes
    // nothing to the clock and only fills `tx` with its current state.
    let rc = unsafe { libc::adjtimex(&mut tx) };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    #[allow(clippy::useless_conversion)] // `c_long` is i64 on LP64 but i32 on 32-bit targets.
    let (offset, freq, maxerror, esterror, constant, tick) = (
        i64::from(tx.offset),
        i64::from(tx.freq),
        i64::from(tx.maxerror),
        i64::from(tx.esterror),
        i64::from(tx.constant),
        i64::from(tx.tick),
    );
    let status = tx.status as u32;
    let offset_nanos = if status & STA_NANO != 0 { offset } else { offset.saturating_mul(1000) };
    Ok(KernelClockState {
        status,
        synchronized: status & STA_UNSYNC == 0,
        offset_nanos,
        freq_ppm: freq as f64 / 65536.0,
        maxerror_micros: maxerror,
        esterror_micros: esterror,
        time_constant: constant,
        tick_micros: tick,
        state: KernelTimeState::from_raw(rc),
    })
}

#[cfg(not(target_os = "linux"))]
fn imp_kernel_clock_state() -> io::Result<KernelClockState> {
    Err(io::Error::new(io::ErrorKind::Unsupported, "adjtimex is only supported on Linux"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_parts_normalises() {
        assert_eq!(
            WallTime::from_parts(5, 1_500_000_000),
            WallTime { secs: 6, nanos: 500_000_000 }
        );
        assert_eq!(WallTime::from_parts(5, -1), WallTime { secs: 4, nanos: 999_999_999 });
        assert_eq!(WallTime::from_parts(-1, 0).as_nanos(), -1_000_000_000);
    }

    #[test]
    fn precision_rounding() {
        assert_eq!(precision_from_nanos(1), -29); // 2^-30 s ≈ 0.93 ns < 1 ns
        assert_eq!(precision_from_nanos(0), -30);
        assert_eq!(precision_from_nanos(20), -25); // 2^-26 ≈ 14.9 ns, 2^-25 ≈ 29.8 ns
        assert_eq!(precision_from_nanos(1_000), -19); // 2^-20 ≈ 954 ns
        assert_eq!(precision_from_nanos(1_000_000), -9); // 2^-10 ≈ 977 µs
        assert_eq!(precision_from_nanos(4_000_000), -7); // 2^-8 ≈ 3.9 ms, 2^-7 ≈ 7.8 ms
        assert_eq!(precision_from_nanos(1_000_000_000), 0);
        assert_eq!(precision_from_nanos(500_000_000), -1); // 2^-1 s
        assert_eq!(precision_from_nanos(5_000_000_000), 0);
    }

    #[test]
    fn time_state_names() {
        assert_eq!(KernelTimeState::from_raw(0), KernelTimeState::Ok);
        assert_eq!(KernelTimeState::from_raw(5).to_string(), "TIME_ERROR");
        assert_eq!(KernelTimeState::from_raw(9).to_string(), "TIME_UNKNOWN(9)");
    }

    #[test]
    fn status_names_decode() {
        let st = KernelClockState {
            status: 0x0001 | 0x0040 | 0x2000,
            synchronized: false,
            offset_nanos: 0,
            freq_ppm: 0.0,
            maxerror_micros: 0,
            esterror_micros: 0,
            time_constant: 0,
            tick_micros: 10_000,
            state: KernelTimeState::Error,
        };
        assert_eq!(st.status_names(), ["PLL", "UNSYNC", "NANO"]);
    }
}
