//! A Linux-faithful model of the kernel clock that `adjtimex(2)` disciplines.
//!
//! [`LinuxClock`] holds the state of `kernel/time/ntp.c` (`struct ntp_data`, Linux 6.x) with the
//! kernel's units, integer types and rounding, and advances `CLOCK_REALTIME` the way
//! `kernel/time/timekeeping.c` does. [`LinuxClock::adjtimex`] takes a [`Timex`] request with
//! `modes` bits and returns what the system call returns: the `TIME_*` state (or `TIME_ERROR`)
//! and the old values written back into the [`Timex`], or an `EINVAL` ([`AdjtimexError`]).
//! Every rule below names the kernel function it mirrors.
//!
//! # Time
//! The model is driven in virtual *true* time, [`Instant`] (nanoseconds since true time zero,
//! the simulator's timescale). At true time zero the clock reads
//! [`LinuxClockConfig::start`]. Internally true time and `CLOCK_REALTIME` are kept in the
//! kernel's "shifted nanoseconds" (ns << 32, the unit of `tick_length`), so nothing is lost to
//! floating point: with a perfect oscillator every number is exact integer arithmetic.
//!
//! The oscillator (the clocksource) may have its own natural frequency error, set by the
//! caller ([`LinuxClock::set_oscillator_ppm`]); wander is the caller calling it again with a
//! new value. The kernel cannot see this error, it only scales oscillator time into
//! `CLOCK_REALTIME`: one oscillator second adds `tick_length * HZ` shifted nanoseconds.
//!
//! # Granularity: one NTP second, not one tick
//! The kernel accumulates time per tick (`NTP_INTERVAL_FREQ = HZ` intervals a second), each
//! interval adding `tick_length` (ns << 32), and calls `second_overflow()` from
//! `accumulate_nsecs_to_secs()` when `CLOCK_REALTIME` crosses a whole second. That call sets
//! the tick length for the *next* second: the base rate plus one chunk of the single-shot
//! adjustment (at most `MAX_TICKADJ` = 500 µs a second). Frequency and tick changes made in
//! between take effect at once (`ntp_update_frequency()` moves `tick_length` by the change of
//! its base, and `do_adjtimex()` calls `timekeeping_advance(TK_ADV_FREQ)` so the clocksource
//! multiplier follows immediately).
//!
//! This model does the same with the tick made infinitely short: within a second
//! `CLOCK_REALTIME` advances linearly at `tick_length * HZ` per oscillator second, and
//! `second_overflow()` runs exactly when `CLOCK_REALTIME` reaches the next whole second (its
//! phase therefore moves with every step and leap, as the kernel's does). The kernel notices
//! the boundary only at the next tick, up to 1/HZ later (4 ms at HZ = 250), so each second's
//! rate applies for the same number of ticks, shifted by less than one tick. The phase error
//! this causes is at most the rate change times one tick (500 ppm × 4 ms = 2 µs) and does not
//! accumulate, because both the kernel and the model apply exactly one chunk per
//! `CLOCK_REALTIME` second. The clocksource multiplier's feedback (`timekeeping_adjust()`,
//! `ntp_error`) keeps the real clock within nanoseconds of this ideal accumulation. For what
//! the simulator measures (offsets at ≥ 1 ms resolution in time, at the µs level) the two are
//! the same.
//!
//! One consequence of applying the chunk for one `CLOCK_REALTIME` second is kept, because the
//! kernel has it too: while a 500 µs chunk runs the clock is 500 ppm fast, so that second lasts
//! 1/1.0005 oscillator seconds and delivers 499.75 µs, although `time_adjust` drops by 500.
//! A 50 ms `adjtime()` takes 100 `second_overflow()`s and corrects 49.975 ms.
//!
//! # Modelled
//! `ADJ_FREQUENCY` (scaled ppm, clamped to ±500 ppm), `ADJ_TICK` (9000..=11000 µs, else
//! `EINVAL`), `ADJ_OFFSET_SINGLESHOT` / `ADJ_OFFSET_SS_READ` (`adjtime()`), `ADJ_SETOFFSET`
//! (with `ADJ_NANO`; clears the NTP state as `timekeeping_inject_offset()` does), `ADJ_STATUS`
//! (`STA_INS`/`STA_DEL` leap seconds with `TIME_INS`/`TIME_DEL`/`TIME_OOP`/`TIME_WAIT`),
//! `ADJ_MAXERROR`/`ADJ_ESTERROR` (and the 500 µs/s growth of `maxerror` that sets
//! `STA_UNSYNC` at 16 s), `ADJ_TIMECONST`, `ADJ_TAI`, `ADJ_NANO`/`ADJ_MICRO`, and `ADJ_OFFSET`
//! with `STA_PLL` (the kernel PLL/FLL of `ntp_update_offset()`; rntpd does not use it).
//!
//! # Not modelled
//! * Permissions: every call is made as if with `CAP_SYS_TIME` (no `EPERM`).
//! * PPS (`hardpps()`, `CONFIG_NTP_PPS`): the PPS fields read zero, as without PPS support.
//! * The `ntp_tick_adj=` boot parameter (always 0) and clocksource quantisation.
//! * Tick-level timing: see above. In particular, reads made in the (at most one tick long)
//!   window between a second boundary and the tick that processes it, where the real kernel
//!   still shows the old second (and `ntp_adjtimex()` patches the leap-second state for it),
//!   do not exist here.
//! * The 2026 rework seen in some trees that delivers `adjtime()` and PLL phase as it is
//!   accumulated (`skew_delta`, `time_adjust_frac`) instead of committing a chunk a second:
//!   this model follows mainline `second_overflow()`.
//!
//! # Kernel quirks kept on purpose
//! * A new `adjtime()` replaces `time_adjust` but not the chunk already committed to this
//!   second's `tick_length`: that chunk still completes.
//! * `STA_INS`/`STA_DEL` are acted on at the next `second_overflow()`: a leap requested during
//!   the last second of a day is scheduled for the end of the *next* day.
//! * A step (`ADJ_SETOFFSET`) calls `ntp_clear()`: the pending `adjtime()` and the running
//!   chunk are dropped, `STA_UNSYNC` is set, `maxerror` is reset, and an armed leap second
//!   (`TIME_INS`/`TIME_DEL`) loses its date (`ntp_next_leap_sec`), so it never fires until the
//!   leap bit is cleared and set again. The frequency is kept.

use std::fmt;

use rntp_proto::discipline::ClockAction;
use rntp_proto::time::Instant;

/// `USER_HZ`: the unit of `timex.tick` (ticks per second as user space sees them).
pub const USER_HZ: i64 = 100;
/// The default `tick_usec` (`USER_TICK_USEC`): 10 000 µs.
pub const USER_TICK_USEC: i64 = (1_000_000 + USER_HZ / 2) / USER_HZ;
/// Smallest `timex.tick` accepted (`900000 / USER_HZ`, `timekeeping_validate_timex()`).
pub const TICK_USEC_MIN: i64 = 900_000 / USER_HZ;
/// Largest `timex.tick` accepted (`1100000 / USER_HZ`).
pub const TICK_USEC_MAX: i64 = 1_100_000 / USER_HZ;
/// The fixed-point shift of `tick_length` and `time_freq` (`NTP_SCALE_SHIFT`).
pub const NTP_SCALE_SHIFT: u32 = 32;
/// Shift of the "scaled ppm" unit of `timex.freq` (`SHIFT_USEC`): 1 ppm = 65 536.
pub const SHIFT_USEC: u32 = 16;
/// Converts `timex.freq` (scaled ppm) to `time_freq` (ns/s << 32) (`PPM_SCALE`).
pub const PPM_SCALE: i64 = NSEC_PER_USEC << (NTP_SCALE_SHIFT - SHIFT_USEC);
const PPM_SCALE_INV_SHIFT: u32 = 19;
const PPM_SCALE_INV: i64 = ((1_i64 << (PPM_SCALE_INV_SHIFT + NTP_SCALE_SHIFT)) / PPM_SCALE) + 1;
/// Largest PLL phase offset (ns) (`MAXPHASE`).
pub const MAXPHASE: i64 = 500_000_000;
/// Largest frequency correction, 500 ppm in ns/s (`MAXFREQ`).
pub const MAXFREQ: i64 = 500_000;
/// [`MAXFREQ`] in `time_freq` units (`MAXFREQ_SCALED`).
pub const MAXFREQ_SCALED: i64 = MAXFREQ << NTP_SCALE_SHIFT;
/// `maxerror` beyond which the clock is unsynchronized: 16 s in µs (`NTP_PHASE_LIMIT`).
pub const NTP_PHASE_LIMIT: i64 = (MAXPHASE / NSEC_PER_USEC) << 5;
/// Single-shot slew per second (µs) (`MAX_TICKADJ`).
pub const MAX_TICKADJ: i64 = 500;
/// Largest TAI offset `ADJ_TAI` accepts (`MAX_TAI_OFFSET`).
pub const MAX_TAI_OFFSET: i64 = 100_000;

const NSEC_PER_USEC: i64 = 1_000;
const NSEC_PER_SEC: i64 = 1_000_000_000;
const USEC_PER_SEC: i64 = 1_000_000;
const SHIFT_PLL: i64 = 2;
const SHIFT_FLL: i64 = 2;
const MAXTC: i64 = 10;
const MINSEC: i64 = 256;
const MAXSEC: i64 = 2048;
const SECS_PER_DAY: i64 = 86_400;
const TIME64_MAX: i64 = i64::MAX;
/// `KTIME_SEC_MAX - TIME_UPTIME_SEC_MAX` (`timespec64_valid_settod()`).
const TIME_SETTOD_SEC_MAX: i64 = i64::MAX / NSEC_PER_SEC - 30 * 365 * 24 * 3600;
/// One second in shifted nanoseconds.
const SCALED_SEC: i128 = (NSEC_PER_SEC as i128) << NTP_SCALE_SHIFT;
/// Bound on the oscillator's own error: the kernel can only compensate ±10 % (tick) anyway,
/// and the bound keeps every product of the integer arithmetic inside `i128`.
const MAX_OSCILLATOR_PPM: f64 = 100_000.0;

/// `timex.modes` bits (`include/uapi/linux/timex.h`, `include/linux/timex.h`).
pub mod modes {
    /// Kernel PLL phase offset (`ADJ_OFFSET`); needs `STA_PLL`.
    pub const ADJ_OFFSET: u32 = 0x0001;
    /// Frequency offset in scaled ppm (`ADJ_FREQUENCY`).
    pub const ADJ_FREQUENCY: u32 = 0x0002;
    /// Maximum error (µs) (`ADJ_MAXERROR`).
    pub const ADJ_MAXERROR: u32 = 0x0004;
    /// Estimated error (µs) (`ADJ_ESTERROR`).
    pub const ADJ_ESTERROR: u32 = 0x0008;
    /// Status bits (`ADJ_STATUS`).
    pub const ADJ_STATUS: u32 = 0x0010;
    /// PLL time constant (`ADJ_TIMECONST`).
    pub const ADJ_TIMECONST: u32 = 0x0020;
    /// TAI offset, from `constant` (`ADJ_TAI`).
    pub const ADJ_TAI: u32 = 0x0080;
    /// Add `time` to the clock: a step (`ADJ_SETOFFSET`).
    pub const ADJ_SETOFFSET: u32 = 0x0100;
    /// Microsecond resolution (`ADJ_MICRO`).
    pub const ADJ_MICRO: u32 = 0x1000;
    /// Nanosecond resolution (`ADJ_NANO`); also `time.tv_usec` holds ns for `ADJ_SETOFFSET`.
    pub const ADJ_NANO: u32 = 0x2000;
    /// Tick length in µs per `USER_HZ` tick (`ADJ_TICK`).
    pub const ADJ_TICK: u32 = 0x4000;
    /// The kernel's switch to `adjtime()` semantics (`ADJ_ADJTIME`, kernel-internal name).
    pub const ADJ_ADJTIME: u32 = 0x8000;
    /// With [`ADJ_ADJTIME`]: read the pending `adjtime()` only (`ADJ_OFFSET_READONLY`).
    pub const ADJ_OFFSET_READONLY: u32 = 0x2000;
    /// `adjtime()`: slew by `offset` µs at 500 µs/s (`ADJ_OFFSET_SINGLESHOT`, user-space value).
    pub const ADJ_OFFSET_SINGLESHOT: u32 = 0x8001;
    /// Read the `adjtime()` still pending (`ADJ_OFFSET_SS_READ`).
    pub const ADJ_OFFSET_SS_READ: u32 = 0xa001;
}

/// `timex.status` bits (`include/uapi/linux/timex.h`).
pub mod status {
    /// Enable the kernel PLL (`STA_PLL`).
    pub const STA_PLL: i32 = 0x0001;
    /// Enable PPS frequency discipline (`STA_PPSFREQ`).
    pub const STA_PPSFREQ: i32 = 0x0002;
    /// Enable PPS time discipline (`STA_PPSTIME`).
    pub const STA_PPSTIME: i32 = 0x0004;
    /// Select FLL mode (`STA_FLL`).
    pub const STA_FLL: i32 = 0x0008;
    /// Insert a leap second at the end of the UTC day (`STA_INS`).
    pub const STA_INS: i32 = 0x0010;
    /// Delete the last second of the UTC day (`STA_DEL`).
    pub const STA_DEL: i32 = 0x0020;
    /// Clock unsynchronized (`STA_UNSYNC`).
    pub const STA_UNSYNC: i32 = 0x0040;
    /// Hold the frequency (`STA_FREQHOLD`).
    pub const STA_FREQHOLD: i32 = 0x0080;
    /// PPS signal present (read-only) (`STA_PPSSIGNAL`).
    pub const STA_PPSSIGNAL: i32 = 0x0100;
    /// PPS jitter exceeded (read-only) (`STA_PPSJITTER`).
    pub const STA_PPSJITTER: i32 = 0x0200;
    /// PPS wander exceeded (read-only) (`STA_PPSWANDER`).
    pub const STA_PPSWANDER: i32 = 0x0400;
    /// PPS calibration error (read-only) (`STA_PPSERROR`).
    pub const STA_PPSERROR: i32 = 0x0800;
    /// Clock hardware fault (read-only) (`STA_CLOCKERR`).
    pub const STA_CLOCKERR: i32 = 0x1000;
    /// Nanosecond resolution (read-only; set with `ADJ_NANO`) (`STA_NANO`).
    pub const STA_NANO: i32 = 0x2000;
    /// FLL mode in use (read-only) (`STA_MODE`).
    pub const STA_MODE: i32 = 0x4000;
    /// Clock source B (read-only) (`STA_CLK`).
    pub const STA_CLK: i32 = 0x8000;
    /// The bits `ADJ_STATUS` cannot change (`STA_RONLY`).
    pub const STA_RONLY: i32 = STA_PPSSIGNAL
        | STA_PPSJITTER
        | STA_PPSWANDER
        | STA_PPSERROR
        | STA_CLOCKERR
        | STA_NANO
        | STA_MODE
        | STA_CLK;
}

use modes::*;
use status::*;

/// The kernel's `shift_right()`: an arithmetic shift that rounds toward zero for negatives.
fn shift_right(x: i64, s: u32) -> i64 {
    if x < 0 {
        -((-x) >> s)
    } else {
        x >> s
    }
}

/// A `struct timespec64`: seconds and nanoseconds (`0..1e9`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timespec {
    /// Seconds since the Unix epoch.
    pub sec: i64,
    /// Nanoseconds within the second.
    pub nsec: i64,
}

impl Timespec {
    /// Nanoseconds since the Unix epoch.
    pub fn as_nanos(self) -> i128 {
        self.sec as i128 * NSEC_PER_SEC as i128 + self.nsec as i128
    }

    /// The timespec of `ns` nanoseconds since the epoch (floor).
    pub fn from_nanos(ns: i128) -> Timespec {
        let n = NSEC_PER_SEC as i128;
        Timespec { sec: ns.div_euclid(n) as i64, nsec: ns.rem_euclid(n) as i64 }
    }
}

/// The `struct timex` of `adjtimex(2)`, the fields this model reads or writes. Requests set
/// `modes` and the fields it names; the call writes the kernel's values back into every field,
/// as the system call does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timex {
    /// Mode selector ([`modes`]).
    pub modes: u32,
    /// In: the `adjtime()` µs (`ADJ_OFFSET_SINGLESHOT`) or PLL offset (`ADJ_OFFSET`, µs or ns
    /// per `STA_NANO`). Out: the `adjtime()` µs pending before the call (`ADJ_ADJTIME`), else
    /// the PLL offset still to apply.
    pub offset: i64,
    /// Frequency offset, scaled ppm (ppm × 65 536).
    pub freq: i64,
    /// Maximum error (µs).
    pub maxerror: i64,
    /// Estimated error (µs).
    pub esterror: i64,
    /// Status bits ([`status`]).
    pub status: i32,
    /// PLL time constant; with `ADJ_TAI`, the TAI offset.
    pub constant: i64,
    /// Clock precision (µs), read-only: 1.
    pub precision: i64,
    /// Frequency tolerance (scaled ppm), read-only: 500 ppm.
    pub tolerance: i64,
    /// `time.tv_sec`. In: the step's seconds (`ADJ_SETOFFSET`). Out: `CLOCK_REALTIME`.
    pub time_sec: i64,
    /// `time.tv_usec`: µs, or ns with `ADJ_NANO` (in) / `STA_NANO` (out).
    pub time_usec: i64,
    /// µs per `USER_HZ` tick.
    pub tick: i64,
    /// TAI − UTC (s), read-only (set with `ADJ_TAI`).
    pub tai: i32,
}

/// The clock state `adjtimex` returns (`TIME_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeState {
    /// `TIME_OK` (0): no leap second pending.
    Ok = 0,
    /// `TIME_INS` (1): a second will be inserted at the end of the day.
    Ins = 1,
    /// `TIME_DEL` (2): a second will be deleted at the end of the day.
    Del = 2,
    /// `TIME_OOP` (3): the inserted second (23:59:60) is in progress.
    Oop = 3,
    /// `TIME_WAIT` (4): a leap second has occurred; waiting for the bit to be cleared.
    Wait = 4,
    /// `TIME_ERROR` (5): the clock is unsynchronized (`STA_UNSYNC` or `STA_CLOCKERR`). Only a
    /// return value, never the kernel's `time_state`.
    Error = 5,
}

impl TimeState {
    /// The C value.
    pub fn as_raw(self) -> i32 {
        self as i32
    }
}

/// Why `adjtimex` refused a request. The kernel returns `EINVAL` for all of them; the variant
/// says which check failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AdjtimexError {
    /// `ADJ_ADJTIME` without `ADJ_OFFSET_SINGLESHOT` (`timekeeping_validate_timex()`).
    AdjtimeWithoutSingleshot,
    /// `ADJ_TICK` outside 9000..=11000 µs (`timekeeping_validate_timex()`).
    TickOutOfRange {
        /// The requested tick (µs).
        tick: i64,
    },
    /// `ADJ_SETOFFSET` with `time.tv_usec` negative or not below one second.
    SetOffsetFraction {
        /// The fraction given.
        value: i64,
        /// Whether it was read as nanoseconds (`ADJ_NANO`).
        nano: bool,
    },
    /// `ADJ_SETOFFSET` would put the clock before the epoch, past the settable range, or
    /// before boot (`timekeeping_inject_offset()`).
    SetOffsetOutOfRange,
    /// `ADJ_FREQUENCY` whose value overflows when scaled (`timekeeping_validate_timex()`).
    FrequencyOverflow {
        /// The requested frequency (scaled ppm).
        freq: i64,
    },
}

impl AdjtimexError {
    /// The errno the kernel returns: always `EINVAL` (22).
    pub fn errno(self) -> i32 {
        22
    }
}

impl fmt::Display for AdjtimexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            AdjtimexError::AdjtimeWithoutSingleshot => {
                write!(f, "EINVAL: ADJ_ADJTIME requires ADJ_OFFSET_SINGLESHOT")
            }
            AdjtimexError::TickOutOfRange { tick } => write!(
                f,
                "EINVAL: tick {tick} µs is outside {TICK_USEC_MIN}..={TICK_USEC_MAX} µs (±10 %)"
            ),
            AdjtimexError::SetOffsetFraction { value, nano } => {
                let unit = if nano { "ns" } else { "µs" };
                write!(f, "EINVAL: step fraction {value} {unit} is not within one second")
            }
            AdjtimexError::SetOffsetOutOfRange => {
                write!(f, "EINVAL: the step would leave the settable time range")
            }
            AdjtimexError::FrequencyOverflow { freq } => {
                write!(f, "EINVAL: frequency {freq} (scaled ppm) overflows")
            }
        }
    }
}

impl std::error::Error for AdjtimexError {}

/// How to build a [`LinuxClock`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinuxClockConfig {
    /// `CONFIG_HZ` (= `NTP_INTERVAL_FREQ`): ticks per second. It only changes rounding:
    /// `tick_length` is the second's length divided by HZ, truncated. Common values: 100, 250
    /// (the kernel's default), 300, 1000. Values below 1 are taken as 1.
    pub hz: u32,
    /// `CLOCK_REALTIME` at true time zero. Clamped to the settable range.
    pub start: Timespec,
    /// The oscillator's own frequency error (ppm; positive runs fast), clamped to ±10 %.
    pub oscillator_ppm: f64,
}

impl Default for LinuxClockConfig {
    /// HZ 250, starting at 2026-01-01T00:00:00Z, perfect oscillator.
    fn default() -> Self {
        LinuxClockConfig {
            hz: 250,
            start: Timespec { sec: 1_767_225_600, nsec: 0 },
            oscillator_ppm: 0.0,
        }
    }
}

/// The Linux kernel clock and its NTP state. See the [module docs](self).
#[derive(Debug, Clone, PartialEq)]
pub struct LinuxClock {
    /// `NTP_INTERVAL_FREQ` (= HZ).
    hz: i64,
    /// True time reached, shifted ns.
    at: i128,
    /// `CLOCK_REALTIME` (the timekeeper's `xtime_sec` and `xtime_nsec`), shifted ns.
    xtime: i128,
    /// `CLOCK_REALTIME` at true time zero, shifted ns.
    start: i128,
    /// `wall_to_monotonic`, shifted ns: `CLOCK_MONOTONIC` = `xtime` + this.
    wall_to_mono: i128,
    /// The oscillator's fractional frequency error.
    osc: f64,
    /// The timekeeper's `tai_offset` (s).
    tai: i32,
    /// `second_overflow()` calls so far.
    overflows: u64,

    // `struct ntp_data` (kernel/time/ntp.c), same names and types.
    tick_usec: i64,
    tick_length: u64,
    tick_length_base: u64,
    time_state: TimeState,
    time_status: i32,
    time_offset: i64,
    time_constant: i64,
    time_maxerror: i64,
    time_esterror: i64,
    time_freq: i64,
    time_reftime: i64,
    time_adjust: i64,
    ntp_next_leap_sec: i64,
}

impl Default for LinuxClock {
    fn default() -> Self {
        LinuxClock::new(LinuxClockConfig::default())
    }
}

impl LinuxClock {
    /// A freshly booted kernel (`ntp_init()`): tick 10 000 µs, no frequency correction,
    /// `STA_UNSYNC`, `maxerror` and `esterror` at 16 s, time constant 2.
    pub fn new(config: LinuxClockConfig) -> LinuxClock {
        let start = Timespec {
            sec: config.start.sec.clamp(0, TIME_SETTOD_SEC_MAX - 1),
            nsec: config.start.nsec.clamp(0, NSEC_PER_SEC - 1),
        };
        let start = start.as_nanos() << NTP_SCALE_SHIFT;
        let mut clock = LinuxClock {
            hz: i64::from(config.hz.max(1)),
            at: 0,
            xtime: start,
            start,
            wall_to_mono: -start,
            osc: 0.0,
            tai: 0,
            overflows: 0,
            tick_usec: USER_TICK_USEC,
            tick_length: 0,
            tick_length_base: 0,
            time_state: TimeState::Ok,
            time_status: STA_UNSYNC,
            time_offset: 0,
            time_constant: 2,
            time_maxerror: NTP_PHASE_LIMIT,
            time_esterror: NTP_PHASE_LIMIT,
            time_freq: 0,
            time_reftime: 0,
            time_adjust: 0,
            ntp_next_leap_sec: TIME64_MAX,
        };
        clock.set_osc(config.oscillator_ppm);
        clock.ntp_clear();
        clock
    }

    // ---------------------------------------------------------------------------------------
    // The system call.

    /// `adjtimex(2)` / `clock_adjtime(CLOCK_REALTIME, …)` at true time `now`: applies what
    /// `tx.modes` asks, writes the kernel's values back into `tx`, and returns the clock state
    /// (`TIME_ERROR` while unsynchronized). On error nothing changes (`do_adjtimex()`).
    ///
    /// `now` earlier than a previous call is taken as that call's time.
    pub fn adjtimex(&mut self, now: Instant, tx: &mut Timex) -> Result<TimeState, AdjtimexError> {
        self.advance(now);
        Self::validate_timex(tx)?;
        // do_adjtimex(): the step comes first, before the NTP modes are processed and before
        // the time that is returned is read.
        if tx.modes & ADJ_SETOFFSET != 0 {
            let mut nsec = tx.time_usec;
            if tx.modes & ADJ_NANO == 0 {
                nsec *= 1000;
            }
            self.inject_offset(tx.time_sec, nsec)?;
        }
        let ts = self.realtime_ts();
        let mut tai = self.tai;
        let result = self.ntp_adjtimex(tx, ts, &mut tai);
        // do_adjtimex(): a changed TAI offset goes to the timekeeper.
        self.tai = tai;
        Ok(result)
    }

    /// `timekeeping_validate_timex()`, without the capability checks.
    fn validate_timex(tx: &Timex) -> Result<(), AdjtimexError> {
        if tx.modes & ADJ_ADJTIME != 0 {
            // "singleshot must not be used with any other mode bits": the kernel only checks
            // that the single-shot bit is there.
            if tx.modes & (ADJ_OFFSET_SINGLESHOT & !ADJ_ADJTIME) == 0 {
                return Err(AdjtimexError::AdjtimeWithoutSingleshot);
            }
        } else if tx.modes & ADJ_TICK != 0 && !(TICK_USEC_MIN..=TICK_USEC_MAX).contains(&tx.tick) {
            // "if the quartz is off by more than 10% then something is VERY wrong!"
            return Err(AdjtimexError::TickOutOfRange { tick: tx.tick });
        }
        if tx.modes & ADJ_SETOFFSET != 0 {
            let nano = tx.modes & ADJ_NANO != 0;
            let limit = if nano { NSEC_PER_SEC } else { USEC_PER_SEC };
            if !(0..limit).contains(&tx.time_usec) {
                return Err(AdjtimexError::SetOffsetFraction { value: tx.time_usec, nano });
            }
        }
        // "Check for potential multiplication overflows that can only happen on 64-bit".
        if tx.modes & ADJ_FREQUENCY != 0
            && (i64::MIN / PPM_SCALE > tx.freq || i64::MAX / PPM_SCALE < tx.freq)
        {
            return Err(AdjtimexError::FrequencyOverflow { freq: tx.freq });
        }
        Ok(())
    }

    /// `timekeeping_inject_offset()`: adds `sec` + `nsec` to `CLOCK_REALTIME` (and removes it
    /// from `wall_to_monotonic`, so `CLOCK_MONOTONIC` does not move), then clears the NTP
    /// state (`timekeeping_update_from_shadow(TK_UPDATE_ALL)` → `ntp_clear()`).
    fn inject_offset(&mut self, sec: i64, nsec: i64) -> Result<(), AdjtimexError> {
        if !(0..NSEC_PER_SEC).contains(&nsec) {
            return Err(AdjtimexError::SetOffsetOutOfRange);
        }
        let delta = (sec as i128 * NSEC_PER_SEC as i128 + nsec as i128) << NTP_SCALE_SHIFT;
        let new = self.xtime + delta;
        let new_sec = new.div_euclid(SCALED_SEC);
        // "Make sure the proposed value is valid": not before boot (wall_to_monotonic compared
        // with the offset), and timespec64_valid_settod() of the result.
        if self.wall_to_mono > delta || new_sec < 0 || new_sec >= TIME_SETTOD_SEC_MAX as i128 {
            return Err(AdjtimexError::SetOffsetOutOfRange);
        }
        self.xtime = new;
        self.wall_to_mono -= delta;
        self.ntp_clear();
        Ok(())
    }

    /// `ntp_adjtimex()`: the NTP part of the call, with `ts` the `CLOCK_REALTIME` read after
    /// any step.
    fn ntp_adjtimex(&mut self, tx: &mut Timex, ts: Timespec, tai: &mut i32) -> TimeState {
        if tx.modes & ADJ_ADJTIME != 0 {
            let save_adjust = self.time_adjust;
            if tx.modes & ADJ_OFFSET_READONLY == 0 {
                // "adjtime() is independent from ntp_adjtime()": replaces what is pending, but
                // the chunk already in tick_length for this second is left alone.
                self.time_adjust = tx.offset;
                self.ntp_update_frequency();
            }
            tx.offset = save_adjust;
        } else {
            if tx.modes != 0 {
                self.process_adjtimex_modes(tx, tai);
            }
            tx.offset = shift_right(self.time_offset.wrapping_mul(self.hz), NTP_SCALE_SHIFT);
            if self.time_status & STA_NANO == 0 {
                tx.offset /= NSEC_PER_USEC;
            }
        }

        let mut result = self.time_state;
        // is_error_status() without CONFIG_NTP_PPS.
        if self.time_status & (STA_UNSYNC | STA_CLOCKERR) != 0 {
            result = TimeState::Error;
        }

        tx.freq = shift_right((self.time_freq >> PPM_SCALE_INV_SHIFT) * PPM_SCALE_INV, 32);
        tx.maxerror = self.time_maxerror;
        tx.esterror = self.time_esterror;
        tx.status = self.time_status;
        tx.constant = self.time_constant;
        tx.precision = 1;
        tx.tolerance = MAXFREQ_SCALED / PPM_SCALE;
        tx.tick = self.tick_usec;
        tx.tai = *tai;
        tx.time_sec = ts.sec;
        tx.time_usec = ts.nsec;
        if self.time_status & STA_NANO == 0 {
            tx.time_usec = ts.nsec / NSEC_PER_USEC;
        }

        // "Handle leapsec adjustments": only reachable in the real kernel between a second
        // boundary and the tick that processes it; kept for fidelity.
        if ts.sec >= self.ntp_next_leap_sec {
            if self.time_state == TimeState::Ins && self.time_status & STA_INS != 0 {
                result = TimeState::Oop;
                tx.tai += 1;
                tx.time_sec -= 1;
            }
            if self.time_state == TimeState::Del && self.time_status & STA_DEL != 0 {
                result = TimeState::Wait;
                tx.tai -= 1;
                tx.time_sec += 1;
            }
            if self.time_state == TimeState::Oop && ts.sec == self.ntp_next_leap_sec {
                result = TimeState::Wait;
            }
        }
        result
    }

    /// `process_adjtimex_modes()`.
    fn process_adjtimex_modes(&mut self, tx: &Timex, tai: &mut i32) {
        if tx.modes & ADJ_STATUS != 0 {
            self.process_adj_status(tx);
        }
        if tx.modes & ADJ_NANO != 0 {
            self.time_status |= STA_NANO;
        }
        if tx.modes & ADJ_MICRO != 0 {
            self.time_status &= !STA_NANO;
        }
        if tx.modes & ADJ_FREQUENCY != 0 {
            // Scaled ppm × PPM_SCALE is exact (PPM_SCALE = 1000 << 16), so the only rounding
            // of the frequency is the caller's choice of scaled ppm; then the ±500 ppm clamp.
            self.time_freq = (tx.freq * PPM_SCALE).clamp(-MAXFREQ_SCALED, MAXFREQ_SCALED);
        }
        if tx.modes & ADJ_MAXERROR != 0 {
            self.time_maxerror = tx.maxerror.clamp(0, NTP_PHASE_LIMIT);
        }
        if tx.modes & ADJ_ESTERROR != 0 {
            self.time_esterror = tx.esterror.clamp(0, NTP_PHASE_LIMIT);
        }
        if tx.modes & ADJ_TIMECONST != 0 {
            let mut tc = tx.constant.clamp(0, MAXTC);
            if self.time_status & STA_NANO == 0 {
                tc += 4;
            }
            self.time_constant = tc.clamp(0, MAXTC);
        }
        if tx.modes & ADJ_TAI != 0 && (0..=MAX_TAI_OFFSET).contains(&tx.constant) {
            *tai = tx.constant as i32;
        }
        if tx.modes & ADJ_OFFSET != 0 {
            self.ntp_update_offset(tx.offset);
        }
        if tx.modes & ADJ_TICK != 0 {
            self.tick_usec = tx.tick;
        }
        if tx.modes & (ADJ_TICK | ADJ_FREQUENCY | ADJ_OFFSET) != 0 {
            self.ntp_update_frequency();
        }
    }

    /// `process_adj_status()`.
    fn process_adj_status(&mut self, tx: &Timex) {
        if self.time_status & STA_PLL != 0 && tx.status & STA_PLL == 0 {
            self.time_state = TimeState::Ok;
            self.time_status = STA_UNSYNC;
            self.ntp_next_leap_sec = TIME64_MAX;
        }
        // "If we turn on PLL adjustments then reset the reference time to current time."
        if self.time_status & STA_PLL == 0 && tx.status & STA_PLL != 0 {
            self.time_reftime = self.xtime_sec();
        }
        // "only set allowed bits"
        self.time_status &= STA_RONLY;
        self.time_status |= tx.status & !STA_RONLY;
    }

    /// `ntp_update_frequency()`: the second's length from `tick_usec` and `time_freq`, divided
    /// into HZ ticks (truncating), applied to the running `tick_length` at once.
    fn ntp_update_frequency(&mut self) {
        let second_length = ((self.tick_usec as i128 * NSEC_PER_USEC as i128 * USER_HZ as i128)
            << NTP_SCALE_SHIFT)
            + self.time_freq as i128;
        // second_length is a u64 in the kernel and positive for every accepted tick.
        let new_base = (second_length as u64) / self.hz as u64;
        // "Don't wait for the next second_overflow, apply the change to the tick length
        // immediately"
        self.tick_length =
            self.tick_length.wrapping_add(new_base.wrapping_sub(self.tick_length_base));
        self.tick_length_base = new_base;
    }

    /// `ntp_update_offset()`: the kernel PLL/FLL (only with `STA_PLL`).
    fn ntp_update_offset(&mut self, offset: i64) {
        if self.time_status & STA_PLL == 0 {
            return;
        }
        let mut offset = offset;
        if self.time_status & STA_NANO == 0 {
            // "Make sure the multiplication below won't overflow"
            offset = offset.clamp(-USEC_PER_SEC, USEC_PER_SEC) * NSEC_PER_USEC;
        }
        // "Scale the phase adjustment and clamp to the operating range."
        let offset64 = offset.clamp(-MAXPHASE, MAXPHASE);
        // "Select how the frequency is to be controlled and in which mode (PLL or FLL)."
        let real_secs = self.xtime_sec();
        let mut secs = real_secs - self.time_reftime;
        if self.time_status & STA_FREQHOLD != 0 {
            secs = 0;
        }
        self.time_reftime = real_secs;

        let mut freq_adj = self.ntp_update_offset_fll(offset64, secs);
        // "Clamp update interval to reduce PLL gain with low sampling rate"
        let max_secs = 1_i64 << (SHIFT_PLL + 1 + self.time_constant);
        secs = secs.min(max_secs);
        let shift = (i64::from(NTP_SCALE_SHIFT) - 2 * (SHIFT_PLL + 2 + self.time_constant)) as u32;
        freq_adj = freq_adj.wrapping_add(offset64.wrapping_mul(secs).wrapping_shl(shift));
        freq_adj = freq_adj.wrapping_add(self.time_freq).min(MAXFREQ_SCALED);
        self.time_freq = freq_adj.max(-MAXFREQ_SCALED);
        self.time_offset = (offset64 << NTP_SCALE_SHIFT) / self.hz;
    }

    /// `ntp_update_offset_fll()`.
    fn ntp_update_offset_fll(&mut self, offset64: i64, secs: i64) -> i64 {
        self.time_status &= !STA_MODE;
        if secs < MINSEC {
            return 0;
        }
        if self.time_status & STA_FLL == 0 && secs <= MAXSEC {
            return 0;
        }
        self.time_status |= STA_MODE;
        (offset64 << (NTP_SCALE_SHIFT as i64 - SHIFT_FLL)) / secs
    }

    /// `ntp_clear()` (via `TK_CLEAR_NTP`): stops `adjtime()` and the PLL phase, marks the
    /// clock unsynchronized, resets the error bounds and drops the running chunk. Leaves
    /// `time_freq`, `tick_usec` and `time_state` alone.
    fn ntp_clear(&mut self) {
        self.time_adjust = 0;
        self.time_status |= STA_UNSYNC;
        self.time_maxerror = NTP_PHASE_LIMIT;
        self.time_esterror = NTP_PHASE_LIMIT;
        self.ntp_update_frequency();
        self.tick_length = self.tick_length_base;
        self.time_offset = 0;
        self.ntp_next_leap_sec = TIME64_MAX;
    }

    /// `second_overflow()`: called as `CLOCK_REALTIME` reaches second `secs`. Runs the leap
    /// second state machine, grows `maxerror`, and sets the next second's `tick_length`: the
    /// base, one PLL phase chunk and one `adjtime()` chunk. Returns the leap (−1 inserts: the
    /// clock is set back a second; +1 deletes).
    fn second_overflow(&mut self, secs: i64) -> i64 {
        self.overflows += 1;
        let mut leap = 0;
        match self.time_state {
            TimeState::Ok => {
                if self.time_status & STA_INS != 0 {
                    self.time_state = TimeState::Ins;
                    self.ntp_next_leap_sec = secs + SECS_PER_DAY - secs.rem_euclid(SECS_PER_DAY);
                } else if self.time_status & STA_DEL != 0 {
                    self.time_state = TimeState::Del;
                    self.ntp_next_leap_sec =
                        secs + SECS_PER_DAY - (secs + 1).rem_euclid(SECS_PER_DAY);
                }
            }
            TimeState::Ins => {
                if self.time_status & STA_INS == 0 {
                    self.ntp_next_leap_sec = TIME64_MAX;
                    self.time_state = TimeState::Ok;
                } else if secs == self.ntp_next_leap_sec {
                    // "Clock: inserting leap second 23:59:60 UTC"
                    leap = -1;
                    self.time_state = TimeState::Oop;
                }
            }
            TimeState::Del => {
                if self.time_status & STA_DEL == 0 {
                    self.ntp_next_leap_sec = TIME64_MAX;
                    self.time_state = TimeState::Ok;
                } else if secs == self.ntp_next_leap_sec {
                    // "Clock: deleting leap second 23:59:59 UTC"
                    leap = 1;
                    self.ntp_next_leap_sec = TIME64_MAX;
                    self.time_state = TimeState::Wait;
                }
            }
            TimeState::Oop => {
                self.ntp_next_leap_sec = TIME64_MAX;
                self.time_state = TimeState::Wait;
            }
            TimeState::Wait => {
                if self.time_status & (STA_INS | STA_DEL) == 0 {
                    self.time_state = TimeState::Ok;
                }
            }
            TimeState::Error => {}
        }

        // "Bump the maxerror field"
        self.time_maxerror += MAXFREQ / NSEC_PER_USEC;
        if self.time_maxerror > NTP_PHASE_LIMIT {
            self.time_maxerror = NTP_PHASE_LIMIT;
            self.time_status |= STA_UNSYNC;
        }

        // "Compute the phase adjustment for the next second"
        self.tick_length = self.tick_length_base;
        let delta = shift_right(self.time_offset, (SHIFT_PLL + self.time_constant) as u32);
        self.time_offset -= delta;
        self.tick_length = self.tick_length.wrapping_add(delta as u64);

        let max_tickadj_scaled = ((MAX_TICKADJ * NSEC_PER_USEC) << NTP_SCALE_SHIFT) / self.hz;
        if self.time_adjust == 0 {
            return leap;
        }
        if self.time_adjust > MAX_TICKADJ {
            self.time_adjust -= MAX_TICKADJ;
            self.tick_length = self.tick_length.wrapping_add(max_tickadj_scaled as u64);
            return leap;
        }
        if self.time_adjust < -MAX_TICKADJ {
            self.time_adjust += MAX_TICKADJ;
            self.tick_length = self.tick_length.wrapping_sub(max_tickadj_scaled as u64);
            return leap;
        }
        // The last chunk: its ns are divided into HZ ticks, truncating.
        let per_tick = (self.time_adjust * NSEC_PER_USEC / self.hz) << NTP_SCALE_SHIFT;
        self.tick_length = self.tick_length.wrapping_add(per_tick as u64);
        self.time_adjust = 0;
        leap
    }

    // ---------------------------------------------------------------------------------------
    // Time.

    fn set_osc(&mut self, ppm: f64) {
        if ppm.is_finite() {
            self.osc = ppm.clamp(-MAX_OSCILLATOR_PPM, MAX_OSCILLATOR_PPM) * 1e-6;
        }
    }

    /// Oscillator time elapsed in `dt` of true time (shifted ns).
    fn osc_from_true(&self, dt: i128) -> i128 {
        dt + (dt as f64 * self.osc).round() as i128
    }

    /// True time for `dosc` of oscillator time (shifted ns).
    fn true_from_osc(&self, dosc: i128) -> i128 {
        dosc - (dosc as f64 * (self.osc / (1.0 + self.osc))).round() as i128
    }

    /// `CLOCK_REALTIME` gained per oscillator second (shifted ns): HZ ticks of `tick_length`.
    fn second_len(&self) -> i128 {
        self.tick_length as i128 * self.hz as i128
    }

    fn xtime_sec(&self) -> i64 {
        self.xtime.div_euclid(SCALED_SEC) as i64
    }

    fn realtime_ts(&self) -> Timespec {
        Timespec::from_nanos(self.xtime >> NTP_SCALE_SHIFT)
    }

    /// Runs the clock to true time `now`, calling `second_overflow()` at each second boundary
    /// of `CLOCK_REALTIME` and applying its leap (`accumulate_nsecs_to_secs()`).
    fn advance(&mut self, now: Instant) {
        let to = (now.as_nanos() as i128) << NTP_SCALE_SHIFT;
        while self.at < to {
            let boundary = (self.xtime.div_euclid(SCALED_SEC) + 1) * SCALED_SEC;
            let len = self.second_len();
            // Oscillator time to reach the boundary (rounded up, so the boundary is reached),
            // then true time. Every product here is below 2^126 (segments under 2 s).
            let osc_needed = ((boundary - self.xtime) * SCALED_SEC + len - 1) / len;
            let true_needed = self.true_from_osc(osc_needed).max(1);
            if self.at + true_needed <= to {
                self.at += true_needed;
                self.xtime = boundary;
                let leap = self.second_overflow(self.xtime_sec());
                if leap != 0 {
                    let shift = leap as i128 * SCALED_SEC;
                    self.xtime += shift;
                    self.wall_to_mono -= shift;
                    self.tai -= leap as i32;
                }
            } else {
                let gained = self.osc_from_true(to - self.at) * len / SCALED_SEC;
                self.xtime = (self.xtime + gained).min(boundary - 1);
                self.at = to;
            }
        }
    }

    /// `CLOCK_REALTIME` at true time `now` (`clock_gettime()`: whole nanoseconds, truncated).
    pub fn realtime(&mut self, now: Instant) -> Timespec {
        self.advance(now);
        self.realtime_ts()
    }

    /// `CLOCK_REALTIME` at `now` in nanoseconds since the epoch.
    pub fn realtime_ns(&mut self, now: Instant) -> i128 {
        self.advance(now);
        self.xtime >> NTP_SCALE_SHIFT
    }

    /// `CLOCK_MONOTONIC` at `now` (ns since boot at true time zero): `CLOCK_REALTIME` plus
    /// `wall_to_monotonic`, so slewed like it but not stepped.
    pub fn monotonic_ns(&mut self, now: Instant) -> i128 {
        self.advance(now);
        (self.xtime + self.wall_to_mono) >> NTP_SCALE_SHIFT
    }

    /// The clock's error at `now` (s): `CLOCK_REALTIME` minus the true time (the start time
    /// plus `now`), at the model's full resolution (not truncated to whole ns as a read is).
    /// Includes the oscillator's own error, every correction and every leap second (−1 s after
    /// an insertion: the true timescale here has no leap seconds).
    pub fn error_at(&mut self, now: Instant) -> f64 {
        self.advance(now);
        // `self.at`, not `now`: an earlier `now` reads the clock as of the latest time.
        (self.xtime - self.start - self.at) as f64 / SCALED_SEC as f64
    }

    /// Sets the oscillator's own frequency error from `now` on (ppm; positive runs fast;
    /// clamped to ±10 %; non-finite values are ignored). Call it repeatedly for wander.
    pub fn set_oscillator_ppm(&mut self, now: Instant, ppm: f64) {
        self.advance(now);
        self.set_osc(ppm);
    }

    /// The oscillator's own frequency error (ppm).
    pub fn oscillator_ppm(&self) -> f64 {
        self.osc * 1e6
    }

    // ---------------------------------------------------------------------------------------
    // Convenience calls, each one `adjtimex` as a daemon would make it.

    /// Reads the state (`modes = 0`).
    pub fn read(&mut self, now: Instant) -> (TimeState, Timex) {
        let mut tx = Timex::default();
        // modes 0 cannot fail validation.
        let state = self.adjtimex(now, &mut tx).unwrap_or(TimeState::Error);
        (state, tx)
    }

    /// `ADJ_FREQUENCY` with `scaled_ppm` (ppm × 65 536); returns the value now in force.
    pub fn set_frequency_scaled(
        &mut self,
        now: Instant,
        scaled_ppm: i64,
    ) -> Result<i64, AdjtimexError> {
        let mut tx = Timex { modes: ADJ_FREQUENCY, freq: scaled_ppm, ..Timex::default() };
        self.adjtimex(now, &mut tx)?;
        Ok(tx.freq)
    }

    /// `ADJ_FREQUENCY` from ppm, rounded to scaled ppm as rntpd's `rntp_sys::KernelClock`
    /// does (clamped to ±500 ppm, then × 65 536, rounded). Non-finite values are ignored.
    pub fn set_frequency_ppm(&mut self, now: Instant, ppm: f64) -> Result<(), AdjtimexError> {
        if !ppm.is_finite() {
            return Ok(());
        }
        let scaled = (ppm.clamp(-500.0, 500.0) * 65_536.0).round() as i64;
        self.set_frequency_scaled(now, scaled).map(|_| ())
    }

    /// `ADJ_TICK`: µs per `USER_HZ` tick (9000..=11000).
    pub fn set_tick(&mut self, now: Instant, tick_usec: i64) -> Result<(), AdjtimexError> {
        let mut tx = Timex { modes: ADJ_TICK, tick: tick_usec, ..Timex::default() };
        self.adjtimex(now, &mut tx).map(|_| ())
    }

    /// `adjtime()` (`ADJ_OFFSET_SINGLESHOT`) of `offset_us` µs; returns the µs that were still
    /// pending (not counting the chunk running in this second, which completes regardless).
    pub fn adjtime(&mut self, now: Instant, offset_us: i64) -> i64 {
        let mut tx = Timex { modes: ADJ_OFFSET_SINGLESHOT, offset: offset_us, ..Timex::default() };
        // ADJ_OFFSET_SINGLESHOT cannot fail validation.
        let _ = self.adjtimex(now, &mut tx);
        tx.offset
    }

    /// The `adjtime()` µs still pending (`ADJ_OFFSET_SS_READ`).
    pub fn adjtime_pending(&mut self, now: Instant) -> i64 {
        let mut tx = Timex { modes: ADJ_OFFSET_SS_READ, ..Timex::default() };
        let _ = self.adjtimex(now, &mut tx);
        tx.offset
    }

    /// Steps the clock by `nanos` (`ADJ_SETOFFSET | ADJ_NANO`, split into whole seconds and a
    /// non-negative fraction as the kernel requires).
    pub fn step_ns(&mut self, now: Instant, nanos: i128) -> Result<(), AdjtimexError> {
        let ts = Timespec::from_nanos(nanos);
        let mut tx = Timex {
            modes: ADJ_SETOFFSET | ADJ_NANO,
            time_sec: ts.sec,
            time_usec: ts.nsec,
            ..Timex::default()
        };
        self.adjtimex(now, &mut tx).map(|_| ())
    }

    /// `ADJ_STATUS`: sets the status bits (read-only bits are kept by the kernel).
    pub fn set_status(&mut self, now: Instant, bits: i32) -> Result<TimeState, AdjtimexError> {
        let mut tx = Timex { modes: ADJ_STATUS, status: bits, ..Timex::default() };
        self.adjtimex(now, &mut tx)
    }

    /// Carries out a discipline action exactly as rntpd's executor does on a real kernel
    /// (`rntp_sys::KernelClock`): a rate is one `ADJ_FREQUENCY | ADJ_TICK` call with the
    /// action's integers; a step is one `ADJ_SETOFFSET | ADJ_NANO | ADJ_FREQUENCY | ADJ_TICK`
    /// call (floor seconds, rounded ns), which steps first and then sets the rate. Non-finite
    /// steps are ignored.
    pub fn apply(&mut self, now: Instant, action: ClockAction) -> Result<(), AdjtimexError> {
        let mut tx = match action {
            ClockAction::Rate(rate) => Timex {
                modes: ADJ_FREQUENCY | ADJ_TICK,
                freq: rate.freq_scaled,
                tick: rate.tick_usec,
                ..Timex::default()
            },
            ClockAction::Step { offset, rate } if offset.is_finite() => {
                let whole = offset.floor();
                let nanos = ((offset - whole) * 1e9).round().clamp(0.0, 999_999_999.0);
                Timex {
                    modes: ADJ_SETOFFSET | ADJ_NANO | ADJ_FREQUENCY | ADJ_TICK,
                    time_sec: whole as i64,
                    time_usec: nanos as i64,
                    freq: rate.freq_scaled,
                    tick: rate.tick_usec,
                    ..Timex::default()
                }
            }
            _ => return Ok(()),
        };
        self.adjtimex(now, &mut tx).map(|_| ())
    }

    /// The synchronization status as rntpd's executor sets it: the current status read first,
    /// its PLL, leap, unsync and frequency-hold bits replaced, then one `ADJ_STATUS |
    /// ADJ_MAXERROR | ADJ_ESTERROR` call. `leap`: `STA_INS`, `STA_DEL` or 0.
    pub fn set_sync_status(
        &mut self,
        now: Instant,
        synchronized: bool,
        leap: i32,
        maxerror_us: i64,
        esterror_us: i64,
    ) -> Result<TimeState, AdjtimexError> {
        let (_, current) = self.read(now);
        let mut bits = current.status & !(STA_PLL | STA_INS | STA_DEL | STA_UNSYNC | STA_FREQHOLD);
        if !synchronized {
            bits |= STA_UNSYNC;
        }
        bits |= leap & (STA_INS | STA_DEL);
        let mut tx = Timex {
            modes: ADJ_STATUS | ADJ_MAXERROR | ADJ_ESTERROR,
            status: bits,
            maxerror: maxerror_us,
            esterror: esterror_us,
            ..Timex::default()
        };
        self.adjtimex(now, &mut tx)
    }

    // ---------------------------------------------------------------------------------------
    // The kernel's variables, read-only.

    /// `tick_usec` (µs per `USER_HZ` tick).
    pub fn tick_usec(&self) -> i64 {
        self.tick_usec
    }

    /// `time_freq`: the frequency correction in ns/s << 32.
    pub fn time_freq(&self) -> i64 {
        self.time_freq
    }

    /// `time_adjust`: `adjtime()` µs not yet committed to a second.
    pub fn time_adjust(&self) -> i64 {
        self.time_adjust
    }

    /// `time_offset`: PLL phase still to apply (ns << 32 / HZ).
    pub fn time_offset(&self) -> i64 {
        self.time_offset
    }

    /// `tick_length`: shifted ns added per tick this second (base + chunks).
    pub fn tick_length(&self) -> u64 {
        self.tick_length
    }

    /// `tick_length_base`: the tick length from `tick_usec` and `time_freq` alone.
    pub fn tick_length_base(&self) -> u64 {
        self.tick_length_base
    }

    /// The current rate of `CLOCK_REALTIME` against the oscillator, minus one (e.g. 1e-4 for
    /// +100 ppm): `tick_length * HZ / 1 s`.
    pub fn rate(&self) -> f64 {
        (self.second_len() - SCALED_SEC) as f64 / SCALED_SEC as f64
    }

    /// `time_state` (never [`TimeState::Error`]; `adjtimex` reports that from the status).
    pub fn time_state(&self) -> TimeState {
        self.time_state
    }

    /// `time_status`.
    pub fn status(&self) -> i32 {
        self.time_status
    }

    /// `time_maxerror` (µs).
    pub fn maxerror(&self) -> i64 {
        self.time_maxerror
    }

    /// The TAI offset (s).
    pub fn tai(&self) -> i32 {
        self.tai
    }

    /// How many times `second_overflow()` has run.
    pub fn second_overflows(&self) -> u64 {
        self.overflows
    }

    /// `CONFIG_HZ`.
    pub fn hz(&self) -> u32 {
        self.hz as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: f64) -> Instant {
        Instant::from_nanos((secs * 1e9).round() as u64)
    }

    fn clock(hz: u32) -> LinuxClock {
        LinuxClock::new(LinuxClockConfig { hz, ..LinuxClockConfig::default() })
    }

    #[test]
    fn kernel_constants() {
        assert_eq!(PPM_SCALE, 65_536_000);
        assert_eq!(PPM_SCALE_INV, 34_359_739);
        assert_eq!(MAXFREQ_SCALED, 500_000 << 32);
        assert_eq!(NTP_PHASE_LIMIT, 16_000_000);
        assert_eq!((TICK_USEC_MIN, USER_TICK_USEC, TICK_USEC_MAX), (9000, 10_000, 11_000));
        assert_eq!(MAXFREQ_SCALED / PPM_SCALE, 32_768_000, "tolerance: 500 ppm scaled");
    }

    #[test]
    fn tick_length_base_is_the_second_divided_by_hz_truncated() {
        // HZ 250 and 1000 divide 1e9 << 32 exactly.
        assert_eq!(clock(250).tick_length_base(), (1_000_000_000u64 << 32) / 250);
        assert_eq!(clock(250).tick_length_base() * 250, 1_000_000_000u64 << 32);
        // HZ 300 does not: each second is 100 shifted ns (2.3e-8 ns) short.
        let c = clock(300);
        assert_eq!(c.tick_length_base(), 14_316_557_653_333_333);
        assert_eq!((1_000_000_000u64 << 32) - c.tick_length_base() * 300, 100);
    }

    #[test]
    fn frequency_scaled_ppm_is_exact_and_reads_back() {
        let mut c = clock(250);
        // 1/65536 ppm, the resolution: time_freq = 1000 ns/s / 65536 << 32 = 65 536 000.
        assert_eq!(c.set_frequency_scaled(at(0.0), 1), Ok(1));
        assert_eq!(c.time_freq(), 65_536_000);
        for f in [-32_768_000, -1_000, -1, 0, 7, 1_000, 12_345_678, 32_768_000] {
            assert_eq!(c.set_frequency_scaled(at(0.0), f), Ok(f), "round trip of {f}");
            assert_eq!(c.time_freq(), f * PPM_SCALE);
        }
        // ±500 ppm clamp (ntp.c clamps, it does not refuse).
        assert_eq!(c.set_frequency_scaled(at(0.0), 600 << 16), Ok(500 << 16));
        assert_eq!(c.time_freq(), MAXFREQ_SCALED);
        assert_eq!(c.set_frequency_scaled(at(0.0), -(501 << 16)), Ok(-(500 << 16)));
        // Values that overflow when scaled are refused.
        assert_eq!(
            c.set_frequency_scaled(at(0.0), i64::MAX / 1000),
            Err(AdjtimexError::FrequencyOverflow { freq: i64::MAX / 1000 })
        );
    }

    #[test]
    fn frequency_and_tick_move_the_running_tick_length_at_once() {
        let mut c = clock(250);
        c.adjtime(at(0.0), 10_000);
        c.realtime(at(1.0)); // one second_overflow: a 500 µs chunk is in tick_length
        let chunk = c.tick_length() - c.tick_length_base();
        assert_eq!(chunk, (500_000u64 << 32) / 250);
        c.set_tick(at(1.2), 10_100).unwrap();
        c.set_frequency_scaled(at(1.2), 3 << 16).unwrap();
        // The base moved, the chunk rides on top unchanged.
        assert_eq!(c.tick_length() - c.tick_length_base(), chunk);
        assert_eq!(c.tick_length_base() * 250, (1_010_003_000u64) << 32);
    }

    #[test]
    fn last_adjtime_chunk_is_truncated_to_whole_ns_per_tick() {
        // HZ 300: 7 µs → 7000 / 300 = 23 ns per tick → 6900 ns in the second.
        let mut c = clock(300);
        c.adjtime(at(0.0), 7);
        c.realtime(at(1.5)); // the first second_overflow() is at t = 1 s
        assert_eq!(c.time_adjust(), 0);
        assert_eq!((c.tick_length() - c.tick_length_base()) >> 32, 23);
        // HZ 250: 7000 / 250 = 28 ns per tick, exact.
        let mut c = clock(250);
        c.adjtime(at(0.0), 7);
        c.realtime(at(1.5));
        assert_eq!((c.tick_length() - c.tick_length_base()) >> 32, 28);
    }

    #[test]
    fn validation_errors() {
        let mut c = clock(250);
        for tick in [8999, 11_001, 0, -10_000] {
            assert_eq!(c.set_tick(at(0.0), tick), Err(AdjtimexError::TickOutOfRange { tick }));
        }
        assert_eq!(c.tick_usec(), 10_000, "a refused call changes nothing");
        for tick in [9000, 11_000] {
            assert_eq!(c.set_tick(at(0.0), tick), Ok(()));
        }
        let mut tx = Timex { modes: ADJ_ADJTIME, offset: 5, ..Timex::default() };
        assert_eq!(c.adjtimex(at(0.0), &mut tx), Err(AdjtimexError::AdjtimeWithoutSingleshot));
        assert_eq!(AdjtimexError::AdjtimeWithoutSingleshot.errno(), 22);
        let mut tx = Timex { modes: ADJ_SETOFFSET, time_usec: 1_000_000, ..Timex::default() };
        assert!(matches!(
            c.adjtimex(at(0.0), &mut tx),
            Err(AdjtimexError::SetOffsetFraction { value: 1_000_000, nano: false })
        ));
        let mut tx = Timex { modes: ADJ_SETOFFSET | ADJ_NANO, time_usec: -1, ..Timex::default() };
        assert!(c.adjtimex(at(0.0), &mut tx).is_err());
        // A step to before the epoch.
        assert_eq!(
            c.step_ns(at(0.0), -(2_000_000_000i128 * 1_000_000_000)),
            Err(AdjtimexError::SetOffsetOutOfRange)
        );
    }

    #[test]
    fn maxerror_grows_500us_per_second_and_sets_unsync_at_16s() {
        let mut c = clock(250);
        let mut tx = Timex {
            modes: ADJ_STATUS | ADJ_MAXERROR,
            status: 0,
            maxerror: NTP_PHASE_LIMIT - 1_200,
            ..Timex::default()
        };
        assert_eq!(c.adjtimex(at(0.0), &mut tx), Ok(TimeState::Ok));
        c.realtime(at(2.0)); // two overflows: +1000 µs
        assert_eq!(c.maxerror(), NTP_PHASE_LIMIT - 200);
        assert_eq!(c.read(at(2.0)).0, TimeState::Ok);
        c.realtime(at(3.0)); // third: capped, STA_UNSYNC
        assert_eq!(c.maxerror(), NTP_PHASE_LIMIT);
        assert_eq!(c.read(at(3.0)).0, TimeState::Error);
    }

    #[test]
    fn kernel_pll_applies_one_64th_of_the_phase_per_second_at_time_constant_zero_in_us_mode() {
        // ADJ_OFFSET with STA_PLL (not used by rntpd). ADJ_TIMECONST 0 without STA_NANO is
        // stored as 0 + 4, so each second_overflow() moves time_offset >> (SHIFT_PLL + 4), 1/64
        // of the remaining phase, into the next second.
        let mut c = clock(250);
        let mut tx = Timex {
            modes: ADJ_STATUS | ADJ_TIMECONST,
            status: STA_PLL,
            constant: 0,
            ..Timex::default()
        };
        c.adjtimex(at(0.0), &mut tx).unwrap();
        assert_eq!(tx.constant, 4);
        let mut tx = Timex { modes: ADJ_OFFSET, offset: 64_000, ..Timex::default() };
        c.adjtimex(at(0.0), &mut tx).unwrap();
        assert_eq!(tx.offset, 64_000, "µs still to apply");
        assert_eq!(c.time_freq(), 0, "no frequency change on the first update (secs = 0)");
        let t0 = c.realtime_ns(at(0.0));
        c.realtime(at(1.0)); // first overflow: 64 000 >> 6 = 1000 µs this second
        let (_, tx) = c.read(at(1.0));
        assert_eq!(tx.offset, 63_000);
        let gained = c.realtime_ns(at(2.0)) - t0 - 2_000_000_000;
        // First second (before the overflow): nothing; then 1000 µs over one second, less the
        // part of that second not yet elapsed at t = 2 s.
        assert!((gained - 1_000_000).abs() < 1_000, "gained {gained} ns");
    }
}
