//! Clock control: the only code in rntpd that can change the system clock.
//!
//! A [`KernelClock`] can only be made by a process that holds `CAP_SYS_TIME`
//! ([`KernelClock::new`] checks first), and the daemon makes one only when it was started
//! without `--observe`. Every call here is additionally refused by the kernel (EPERM) without
//! the capability, so a process started under `setpriv --bounding-set=-sys_time` (as every test
//! and benchmark of this project is) cannot change the clock even through a bug.
//!
//! The model is ntpd's with `disable kernel`: the daemon's own discipline decides; the kernel
//! only executes. Offsets are slewed through the clock's rate: [`KernelClock::set_rate`] sets
//! the frequency and the tick length in one `clock_adjtime(ADJ_FREQUENCY | ADJ_TICK)` (both
//! take effect at once, so the daemon's model of the clock stays exact); `adjtime()`'s
//! single-shot slew, whose chunks the kernel commits at second boundaries and cannot cancel, is
//! never used. A step is one `clock_adjtime(ADJ_SETOFFSET | ADJ_NANO)` that also sets the rate
//! to run at afterwards. The status call tells the kernel (and so other programs) whether the
//! clock is synchronized and arms a leap second (`STA_INS`/`STA_DEL`). The kernel PLL is never
//! enabled.
//!
//! Nothing in the test suite calls the mutating functions; they are reviewed, not exercised,
//! on development machines (the project rule: never change a development machine's clock).

use std::io;

/// The kernel's frequency limit: ±500 ppm.
pub const MAX_FREQ_PPM: f64 = 500.0;
/// `timex.freq` units per ppm.
const FREQ_SCALE: i64 = 65_536;
/// The tick lengths (µs per 1/100 s) Linux accepts: ±10 % of 10 000.
pub const TICK_USEC_RANGE: std::ops::RangeInclusive<i64> = 9_000..=11_000;

/// A pending leap second, as the kernel's STA_INS/STA_DEL bits express it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelLeap {
    /// No leap second pending.
    None,
    /// Insert a second at the end of the UTC day.
    Insert,
    /// Delete the last second of the UTC day.
    Delete,
}

/// Why a [`KernelClock`] could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClockControlError {
    /// The process lacks CAP_SYS_TIME, so the kernel would refuse every change.
    #[error("no CAP_SYS_TIME: this process may not change the system clock")]
    NoCapability,
    /// Clock control is implemented for Linux only.
    #[error("clock control is supported on Linux only")]
    Unsupported,
}

/// Write access to the system clock. See the module docs.
#[derive(Debug)]
pub struct KernelClock {
    _private: (),
}

impl KernelClock {
    /// Clock control for a process that holds CAP_SYS_TIME; an error (and no system call)
    /// otherwise.
    pub fn new() -> Result<KernelClock, ClockControlError> {
        if !cfg!(target_os = "linux") {
            return Err(ClockControlError::Unsupported);
        }
        if !crate::has_cap_sys_time() {
            return Err(ClockControlError::NoCapability);
        }
        Ok(KernelClock { _private: () })
    }

    /// Runs the clock at `tick_usec` µs per 1/100 s (9 000..=11 000) plus `freq_scaled`
    /// (ppm × 65 536, within ±500 ppm) from now on: one `ADJ_FREQUENCY | ADJ_TICK` call.
    /// Values out of range are refused without a system call.
    pub fn set_rate(&self, tick_usec: i64, freq_scaled: i64) -> io::Result<()> {
        check_rate(tick_usec, freq_scaled)?;
        imp::adjust(imp::Adjust::Rate { tick_usec, freq_scaled })
    }

    /// Steps the clock by `offset` seconds (positive: forward) and runs it at the given rate
    /// afterwards (as [`KernelClock::set_rate`]): one `ADJ_SETOFFSET | ADJ_NANO |
    /// ADJ_FREQUENCY | ADJ_TICK` call, which the kernel executes step first. The step clears
    /// the kernel's NTP state (`STA_UNSYNC`, a pending leap second disarmed): set the status
    /// again afterwards.
    pub fn step(&self, offset: f64, tick_usec: i64, freq_scaled: i64) -> io::Result<()> {
        if !offset.is_finite() || offset.abs() > 1e12 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "step offset is not finite"));
        }
        check_rate(tick_usec, freq_scaled)?;
        let whole = offset.floor();
        let nanos = ((offset - whole) * 1e9).round().clamp(0.0, 999_999_999.0);
        imp::adjust(imp::Adjust::Step {
            secs: whole as i64,
            nanos: nanos as i64,
            tick_usec,
            freq_scaled,
        })
    }

    /// Tells the kernel whether the clock is synchronized, its error bounds (s), and any
    /// pending leap second.
    pub fn set_status(
        &self,
        synchronized: bool,
        leap: KernelLeap,
        max_error: f64,
        est_error: f64,
    ) -> io::Result<()> {
        let micros = |s: f64| (s.max(0.0) * 1e6).min(16_000_000.0) as i64;
        imp::adjust(imp::Adjust::Status {
            synchronized,
            leap,
            maxerror_micros: micros(max_error),
            esterror_micros: micros(est_error),
        })
    }
}

/// Refuses a rate the kernel would reject or clamp, before any system call.
fn check_rate(tick_usec: i64, freq_scaled: i64) -> io::Result<()> {
    let max = MAX_FREQ_PPM as i64 * FREQ_SCALE;
    if !TICK_USEC_RANGE.contains(&tick_usec) || !(-max..=max).contains(&freq_scaled) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("clock rate out of range: tick {tick_usec} µs, frequency {freq_scaled} (ppm × 65536)"),
        ));
    }
    Ok(())
}

#[cfg(target_os = "linux")]
mod imp {
    use std::io;

    use super::KernelLeap;

    /// One kind of change.
    pub(super) enum Adjust {
        Step { secs: i64, nanos: i64, tick_usec: i64, freq_scaled: i64 },
        Rate { tick_usec: i64, freq_scaled: i64 },
        Status { synchronized: bool, leap: KernelLeap, maxerror_micros: i64, esterror_micros: i64 },
    }

    // Kernel status bits (linux/timex.h).
    const STA_PLL: i32 = 0x0001;
    const STA_INS: i32 = 0x0010;
    const STA_DEL: i32 = 0x0020;
    const STA_UNSYNC: i32 = 0x0040;
    const STA_FREQHOLD: i32 = 0x0080;

    pub(super) fn adjust(what: Adjust) -> io::Result<()> {
        // SAFETY: `timex` is a plain C struct of integers (plus padding) for which all-zero is
        // a valid value; `modes` 0 means "change nothing" until set below.
        let mut tx: libc::timex = unsafe { std::mem::zeroed() };
        #[allow(clippy::unnecessary_cast, clippy::useless_conversion)] // c_long/c_int widths vary
        match what {
            Adjust::Step { secs, nanos, tick_usec, freq_scaled } => {
                // do_adjtimex() injects the offset first, then sets frequency and tick.
                tx.modes =
                    libc::ADJ_SETOFFSET | libc::ADJ_NANO | libc::ADJ_FREQUENCY | libc::ADJ_TICK;
                tx.time.tv_sec = secs as libc::time_t;
                // With ADJ_NANO the kernel reads nanoseconds from tv_usec.
                tx.time.tv_usec = nanos as libc::suseconds_t;
                tx.freq = freq_scaled as libc::c_long;
                tx.tick = tick_usec as libc::c_long;
            }
            Adjust::Rate { tick_usec, freq_scaled } => {
                tx.modes = libc::ADJ_FREQUENCY | libc::ADJ_TICK;
                tx.freq = freq_scaled as libc::c_long;
                tx.tick = tick_usec as libc::c_long;
            }
            Adjust::Status { synchronized, leap, maxerror_micros, esterror_micros } => {
                // Read the current status first so the bits we do not own are kept.
                // SAFETY: as above, a zeroed `timex` with `modes` 0 is a pure query.
                let mut now: libc::timex = unsafe { std::mem::zeroed() };
                // SAFETY: `now` is valid and writable for the call; modes 0 writes nothing.
                if unsafe { libc::adjtimex(&mut now) } == -1 {
                    return Err(io::Error::last_os_error());
                }
                let mut status =
                    now.status & !(STA_PLL | STA_INS | STA_DEL | STA_UNSYNC | STA_FREQHOLD);
                if !synchronized {
                    status |= STA_UNSYNC;
                }
                status |= match leap {
                    KernelLeap::None => 0,
                    KernelLeap::Insert => STA_INS,
                    KernelLeap::Delete => STA_DEL,
                };
                tx.modes = libc::ADJ_STATUS | libc::ADJ_MAXERROR | libc::ADJ_ESTERROR;
                tx.status = status;
                tx.maxerror = maxerror_micros as libc::c_long;
                tx.esterror = esterror_micros as libc::c_long;
            }
        }
        // SAFETY: `tx` is a valid, writable `timex` for the duration of the call and the kernel
        // keeps no pointer to it. This call CHANGES THE SYSTEM CLOCK as `modes` says; it is
        // reachable only through `KernelClock`, which exists only when the process holds
        // CAP_SYS_TIME, and the kernel refuses it (EPERM) otherwise.
        let rc = unsafe { libc::clock_adjtime(libc::CLOCK_REALTIME, &mut tx) };
        if rc == -1 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use std::io;

    use super::KernelLeap;

    pub(super) enum Adjust {
        Step { secs: i64, nanos: i64, tick_usec: i64, freq_scaled: i64 },
        Rate { tick_usec: i64, freq_scaled: i64 },
        Status { synchronized: bool, leap: KernelLeap, maxerror_micros: i64, esterror_micros: i64 },
    }

    pub(super) fn adjust(_: Adjust) -> io::Result<()> {
        Err(io::Error::new(io::ErrorKind::Unsupported, "clock control is Linux-only"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only the refusals that happen before any system call are tested: nothing here may
    /// reach the kernel.
    #[test]
    fn out_of_range_rates_are_refused_before_the_kernel() {
        assert!(check_rate(10_000, 0).is_ok());
        assert!(check_rate(9_000, -500 * 65_536).is_ok());
        assert!(check_rate(11_000, 500 * 65_536).is_ok());
        for (tick, freq) in [(8_999, 0), (11_001, 0), (10_000, 500 * 65_536 + 1), (0, 0)] {
            let e = check_rate(tick, freq).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{tick} {freq}");
        }
    }
}
