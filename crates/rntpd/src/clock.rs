//! The daemon's clocks and randomness, as the sans-IO core wants them.
//!
//! [`Clock`] maps the kernel's monotonic clock onto [`rntp_proto::time::Instant`] and reads the
//! wall clock as [`NtpTimestamp`]. Reading is all it does: in this version rntpd never changes
//! the system clock (observe-only).

use rand::{RngCore, SeedableRng};
use rntp_proto::rng::RngSource;
use rntp_proto::time::{Instant, NtpTimestamp};
use rntp_sys::WallTime;

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

    /// Monotonic now.
    pub fn now(&self) -> Instant {
        Instant::from_nanos(rntp_sys::monotonic_nanos())
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

    /// Precision in seconds.
    pub fn precision_secs(&self) -> f64 {
        2f64.powi(i32::from(self.precision_log2))
    }

    /// How long from now until `deadline` (zero if it has passed).
    pub fn until(&self, deadline: Instant) -> std::time::Duration {
        std::time::Duration::from_nanos(deadline.as_nanos().saturating_sub(self.now().as_nanos()))
    }
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
