//! The daemon's clocks: reading them for the node, and executing the node's clock requests.
//!
//! [`Clock`] maps `CLOCK_BOOTTIME` (which keeps counting through a suspend, so TTLs, polls and
//! the drift prediction see the time that really passed) onto [`rntp_proto::time::Instant`]
//! and reads the wall clock as [`NtpTimestamp`].
//!
//! Changing the clock goes through the [`ClockControl`] trait: [`rntp_sys::KernelClock`] in
//! control mode, a fake in tests, so the executor ([`execute`]) is tested without ever touching
//! a real clock.

use std::io;

use rand::{RngCore, SeedableRng};
use rntp_proto::discipline::ClockRate;
use rntp_proto::node::ClockRequest;
use rntp_proto::rng::RngSource;
use rntp_proto::time::{Instant, NtpTimestamp};
use rntp_proto::wire::LeapIndicator;
use rntp_sys::{KernelLeap, WallTime};

/// Read-only access to the system clocks.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// log2 of the wall clock's reading precision, measured at start.
    precision_log2: i8,
}

impl Clock {
    /// Measures the clock precision once.
    pub fn new() -> Self {
        Clock { precision_log2: rntp_sys::clock_precision_log2() }
    }

    /// The node's monotonic now: `CLOCK_BOOTTIME`.
    pub fn now(&self) -> Instant {
        Instant::from_nanos(rntp_sys::boottime_nanos())
    }

    /// Wall-clock now.
    pub fn wall(&self) -> NtpTimestamp {
        wall_to_ntp(rntp_sys::realtime())
    }

    /// Wall-clock now as Unix seconds, for records shown to people.
    pub fn unix_secs(&self) -> f64 {
        let t = rntp_sys::realtime();
        t.secs as f64 + f64::from(t.nanos) / 1e9
    }

    /// Precision as RFC 5905 log2 seconds (what server mode reports).
    pub fn precision_log2(&self) -> i8 {
        self.precision_log2
    }
}

/// Converts a kernel wall-clock reading to an NTP timestamp.
pub fn wall_to_ntp(t: WallTime) -> NtpTimestamp {
    NtpTimestamp::from_unix(t.secs, t.nanos)
}

/// A warning this long before the leap file expires (s): tzdata updates come in time, but a
/// machine that stopped updating should be noticed before the table goes stale.
const LEAPFILE_EXPIRY_WARNING: f64 = 28.0 * 86_400.0;

/// Reads the `leapfile` (at start and at each reload), logging what an administrator must know: unreadable or not a
/// leap table (then the sources' leap warnings are used alone), expired (ignored), or expiring
/// within four weeks.
pub fn read_leapfile(path: &std::path::Path) -> Option<rntp_proto::steer::leap::LeapTable> {
    let t = rntp_sys::realtime();
    let unix_now = t.secs as f64 + f64::from(t.nanos) / 1e9;
    let table = match rntp_config::leapfile::load_leapfile(path) {
        Ok(table) => table,
        Err(e) => {
            tracing::warn!(
                path = %path.display(),
                error = %e,
                "leap second file unusable; leap seconds come from the sources alone (check the `leapfile` line)"
            );
            return None;
        }
    };
    let expires = table.expires() as f64;
    if unix_now >= expires {
        tracing::warn!(
            path = %path.display(),
            expired_unix = table.expires(),
            "leap second file has expired and is ignored: update the tzdata package (or the file)"
        );
    } else if expires - unix_now < LEAPFILE_EXPIRY_WARNING {
        tracing::warn!(
            path = %path.display(),
            days_left = ((expires - unix_now) / 86_400.0).floor(),
            "leap second file expires soon: update the tzdata package (or the file)"
        );
    } else {
        tracing::info!(
            path = %path.display(),
            leap_seconds = table.leaps().len(),
            expires_unix = table.expires(),
            "leap second file loaded"
        );
    }
    Some(table)
}

/// The daemon's random source: a CSPRNG seeded from the OS, so request nonces are unguessable
/// for an off-path attacker.
#[derive(Debug)]
pub struct DaemonRng(rand::rngs::StdRng);

impl DaemonRng {
    /// Seeds from the operating system.
    pub fn from_os() -> Self {
        DaemonRng(rand::rngs::StdRng::from_os_rng())
    }
}

impl RngSource for DaemonRng {
    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
}

/// Write access to a clock: what the executor needs. Each method is one `adjtimex` call on
/// Linux ([`rntp_sys::KernelClock`]); the values are the kernel's own units, passed unchanged,
/// because the node's model of the clock is exact only if the kernel gets exactly them.
pub trait ClockControl {
    /// Runs the clock at `rate` from now on (`ADJ_FREQUENCY | ADJ_TICK`).
    fn set_rate(&mut self, rate: ClockRate) -> io::Result<()>;
    /// Steps by `offset` seconds (positive: forward), then runs at `rate` (`ADJ_SETOFFSET |
    /// ADJ_NANO | ADJ_FREQUENCY | ADJ_TICK`). The kernel clears its NTP state on a step.
    fn step(&mut self, offset: f64, rate: ClockRate) -> io::Result<()>;
    /// Tells the kernel the synchronization state and arms (or disarms) a leap second at the
    /// end of the UTC day (`ADJ_STATUS | ADJ_MAXERROR | ADJ_ESTERROR`).
    fn set_status(
        &mut self,
        synchronized: bool,
        leap: KernelLeap,
        max_error: f64,
        est_error: f64,
    ) -> io::Result<()>;
}

impl ClockControl for rntp_sys::KernelClock {
    fn set_rate(&mut self, rate: ClockRate) -> io::Result<()> {
        rntp_sys::KernelClock::set_rate(self, rate.tick_usec, rate.freq_scaled)
    }
    fn step(&mut self, offset: f64, rate: ClockRate) -> io::Result<()> {
        rntp_sys::KernelClock::step(self, offset, rate.tick_usec, rate.freq_scaled)
    }
    fn set_status(
        &mut self,
        synchronized: bool,
        leap: KernelLeap,
        max_error: f64,
        est_error: f64,
    ) -> io::Result<()> {
        rntp_sys::KernelClock::set_status(self, synchronized, leap, max_error, est_error)
    }
}

/// Executes one clock request on `clock`. `SaveDrift` is not a clock call (the runtime writes
/// the file off the event loop) and is ignored here. The error text is the OS's, for the
/// node's status and the log.
pub fn execute(clock: &mut dyn ClockControl, request: &ClockRequest) -> Result<(), String> {
    let result = match *request {
        ClockRequest::Rate(rate) => clock.set_rate(rate),
        ClockRequest::Step { offset, rate } => clock.step(offset, rate),
        ClockRequest::Status { synchronized, leap, max_error, est_error } => {
            let leap = match leap {
                LeapIndicator::AddSecond => KernelLeap::Insert,
                LeapIndicator::DeleteSecond => KernelLeap::Delete,
                _ => KernelLeap::None,
            };
            clock.set_status(synchronized, leap, max_error, est_error)
        }
        ClockRequest::SaveDrift { .. } => Ok(()),
    };
    result.map_err(|e| e.to_string())
}

#[cfg(test)]
pub mod fake {
    //! A clock that records what it is told and keeps the kernel state that matters to the
    //! executor, for tests of the executor path.

    use super::*;

    /// One call made on the fake clock.
    #[derive(Debug, Clone, PartialEq)]
    pub enum Call {
        /// `set_rate(rate)`.
        Rate(ClockRate),
        /// `step(offset, rate)`.
        Step(f64, ClockRate),
        /// `set_status(synchronized, leap, ..)`.
        Status(bool, KernelLeap),
    }

    /// Records calls and follows the kernel state they set: rate, steps so far, the
    /// synchronized flag and the leap second armed. A step clears the NTP state as Linux's
    /// `ntp_clear()` does (unsynchronized, leap disarmed; the rate stays). Fails every call once
    /// `fail` is set (as the kernel does without CAP_SYS_TIME).
    #[derive(Debug)]
    pub struct FakeClock {
        /// Calls so far.
        pub calls: Vec<Call>,
        /// Refuse with EPERM.
        pub fail: bool,
        /// The rate in force.
        pub rate: ClockRate,
        /// Sum of the steps (s).
        pub stepped: f64,
        /// The kernel's `STA_UNSYNC` is clear.
        pub synchronized: bool,
        /// The leap second armed (`STA_INS`/`STA_DEL`).
        pub leap: KernelLeap,
    }

    impl Default for FakeClock {
        fn default() -> Self {
            FakeClock {
                calls: Vec::new(),
                fail: false,
                rate: ClockRate::NOMINAL,
                stepped: 0.0,
                synchronized: false,
                leap: KernelLeap::None,
            }
        }
    }

    impl FakeClock {
        fn record(&mut self, call: Call) -> io::Result<()> {
            if self.fail {
                return Err(io::Error::from_raw_os_error(libc::EPERM));
            }
            self.calls.push(call);
            Ok(())
        }
    }

    impl ClockControl for FakeClock {
        fn set_rate(&mut self, rate: ClockRate) -> io::Result<()> {
            self.record(Call::Rate(rate))?;
            self.rate = rate;
            Ok(())
        }
        fn step(&mut self, offset: f64, rate: ClockRate) -> io::Result<()> {
            self.record(Call::Step(offset, rate))?;
            self.stepped += offset;
            self.rate = rate;
            self.synchronized = false;
            self.leap = KernelLeap::None;
            Ok(())
        }
        fn set_status(
            &mut self,
            synchronized: bool,
            leap: KernelLeap,
            _max_error: f64,
            _est_error: f64,
        ) -> io::Result<()> {
            self.record(Call::Status(synchronized, leap))?;
            self.synchronized = synchronized;
            self.leap = leap;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests;
