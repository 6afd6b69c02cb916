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
use rntp_proto::discipline::ClockAction;
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

    /// How long from now until `deadline` (zero if it has passed). Computed from the boot
    /// clock at every call, so a sleep that spans a suspend is shortened by the time spent
    /// asleep on the next computation.
    pub fn until(&self, deadline: Instant) -> std::time::Duration {
        until(self.now(), deadline)
    }
}

/// The time from `now` to `deadline` as a sleep duration (zero if it has passed).
pub fn until(now: Instant, deadline: Instant) -> std::time::Duration {
    std::time::Duration::from_nanos(deadline.as_nanos().saturating_sub(now.as_nanos()))
}

/// Converts a kernel wall-clock reading to an NTP timestamp.
pub fn wall_to_ntp(t: WallTime) -> NtpTimestamp {
    NtpTimestamp::from_unix(t.secs, t.nanos)
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

/// Write access to a clock: what the executor needs.
pub trait ClockControl {
    /// Steps by `offset` seconds (positive: forward).
    fn step(&mut self, offset: f64) -> io::Result<()>;
    /// Starts a single-shot slew of `offset` seconds, replacing one in progress.
    fn slew(&mut self, offset: f64) -> io::Result<()>;
    /// Sets the frequency correction (ppm).
    fn set_frequency(&mut self, ppm: f64) -> io::Result<()>;
    /// Tells the kernel the synchronization state and any pending leap second.
    fn set_status(
        &mut self,
        synchronized: bool,
        leap: KernelLeap,
        max_error: f64,
        est_error: f64,
    ) -> io::Result<()>;
}

impl ClockControl for rntp_sys::KernelClock {
    fn step(&mut self, offset: f64) -> io::Result<()> {
        rntp_sys::KernelClock::step(self, offset)
    }
    fn slew(&mut self, offset: f64) -> io::Result<()> {
        rntp_sys::KernelClock::slew(self, offset)
    }
    fn set_frequency(&mut self, ppm: f64) -> io::Result<()> {
        rntp_sys::KernelClock::set_frequency(self, ppm)
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
        ClockRequest::Adjust(ClockAction::Step { offset }) => clock.step(offset),
        ClockRequest::Adjust(ClockAction::Slew { offset, freq_ppm }) => {
            // Frequency first: the slew's remaining phase is measured against the new rate.
            clock.set_frequency(freq_ppm).and_then(|()| clock.slew(offset))
        }
        ClockRequest::Adjust(ClockAction::None | ClockAction::Panic { .. }) => Ok(()),
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
    //! A clock that records what it is told, for tests of the executor path.

    use super::*;

    /// One call made on the fake clock.
    #[derive(Debug, Clone, PartialEq)]
    pub enum Call {
        /// `step(offset)`.
        Step(f64),
        /// `slew(offset)`.
        Slew(f64),
        /// `set_frequency(ppm)`.
        Frequency(f64),
        /// `set_status(..)`.
        Status(bool, KernelLeap),
    }

    /// Records calls; fails every call once `fail` is set (as the kernel does without
    /// CAP_SYS_TIME).
    #[derive(Debug, Default)]
    pub struct FakeClock {
        /// Calls so far.
        pub calls: Vec<Call>,
        /// Refuse with EPERM.
        pub fail: bool,
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
        fn step(&mut self, offset: f64) -> io::Result<()> {
            self.record(Call::Step(offset))
        }
        fn slew(&mut self, offset: f64) -> io::Result<()> {
            self.record(Call::Slew(offset))
        }
        fn set_frequency(&mut self, ppm: f64) -> io::Result<()> {
            self.record(Call::Frequency(ppm))
        }
        fn set_status(
            &mut self,
            synchronized: bool,
            leap: KernelLeap,
            _max_error: f64,
            _est_error: f64,
        ) -> io::Result<()> {
            self.record(Call::Status(synchronized, leap))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::{Call, FakeClock};
    use super::*;

    #[test]
    fn until_saturates_and_counts_nanoseconds() {
        let t = |ns| Instant::from_nanos(ns);
        assert_eq!(until(t(5), t(3)), std::time::Duration::ZERO);
        assert_eq!(
            until(t(1_000), t(2_500_000_000)),
            std::time::Duration::from_nanos(2_499_999_000)
        );
    }

    #[test]
    fn executor_maps_requests_to_clock_calls() {
        let mut fake = FakeClock::default();
        let requests = [
            ClockRequest::Adjust(ClockAction::Step { offset: -0.5 }),
            ClockRequest::Adjust(ClockAction::Slew { offset: 0.001, freq_ppm: -12.5 }),
            ClockRequest::Adjust(ClockAction::Panic { offset: 2000.0 }),
            ClockRequest::Status {
                synchronized: true,
                leap: LeapIndicator::AddSecond,
                max_error: 0.01,
                est_error: 0.001,
            },
            ClockRequest::SaveDrift { freq_ppm: 1.0 },
        ];
        for r in &requests {
            assert_eq!(execute(&mut fake, r), Ok(()));
        }
        assert_eq!(
            fake.calls,
            vec![
                Call::Step(-0.5),
                Call::Frequency(-12.5),
                Call::Slew(0.001),
                Call::Status(true, KernelLeap::Insert),
            ]
        );
    }

    #[test]
    fn executor_reports_the_os_error() {
        let mut fake = FakeClock { fail: true, ..FakeClock::default() };
        let err = execute(&mut fake, &ClockRequest::Adjust(ClockAction::Step { offset: 1.0 }))
            .unwrap_err();
        assert!(err.contains("not permitted"), "{err}");
        // The slew is not attempted after the frequency write failed.
        let err = execute(
            &mut fake,
            &ClockRequest::Adjust(ClockAction::Slew { offset: 0.1, freq_ppm: 1.0 }),
        );
        assert!(err.is_err());
        assert!(fake.calls.is_empty());
    }
}
