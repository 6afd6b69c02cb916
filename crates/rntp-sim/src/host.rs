//! A simulated host's clocks: the oscillator's natural error (a frequency random walk) and
//! the kernel that executes the node's clock requests, with the monotonic clock the node reads.
//!
//! Two kernels ([`ClockModel`]):
//! * [`ClockModel::Linux`] (the default, and what the benchmark measures): a
//!   [`LinuxClock`](crate::kernel::LinuxClock), the Linux-faithful `adjtimex` model. Its
//!   oscillator carries the natural frequency error, every request is made as rntpd's
//!   `rntp_sys::KernelClock` makes it on a real kernel, and the node's `now` is the kernel's
//!   `CLOCK_MONOTONIC` (what the daemon's `CLOCK_BOOTTIME` is without suspends): slewed by the
//!   same frequency and tick corrections as `CLOCK_REALTIME`, never stepped.
//! * [`ClockModel::Idealized`]: the core's own [`VirtualClock`] model of the corrections on top
//!   of the natural error, and the node's `now` is true time. Kept to compare against.

use rntp_proto::discipline::{ClockAction, VirtualClock};
use rntp_proto::node::ClockRequest;
use rntp_proto::rng::SplitMix64;
use rntp_proto::time::{Instant, NtpTimestamp};
use rntp_proto::wire::LeapIndicator;

use crate::kernel::status::{STA_DEL, STA_INS};
use crate::kernel::{AdjtimexError, LinuxClock, LinuxClockConfig, Timespec};
use crate::{gauss, secs, ClientSpec};

/// Which kernel executes a host's clock requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClockModel {
    /// The Linux-faithful `adjtimex` model ([`crate::kernel::LinuxClock`]); the node's
    /// monotonic time is the kernel's `CLOCK_MONOTONIC`.
    #[default]
    Linux,
    /// The core's idealized [`VirtualClock`]; the node's monotonic time is true time.
    Idealized,
}

impl ClockModel {
    /// A stable name for tables and options.
    pub fn name(self) -> &'static str {
        match self {
            ClockModel::Linux => "linux",
            ClockModel::Idealized => "idealized",
        }
    }
}

/// The kernel side of a host clock.
#[derive(Debug, Clone)]
enum Kernel {
    Idealized(VirtualClock),
    Linux(Box<LinuxClock>),
}

/// A host's clock. Every reader takes the true time `t` it is read at, which must not go
/// backwards between calls (the kernel model advances through second boundaries as it reads).
#[derive(Debug, Clone)]
pub(crate) struct HostClock {
    /// The natural error (s) at true time `at`: what the clock would read wrong without any
    /// correction (the initial error plus the integrated natural frequency).
    e: f64,
    /// The natural frequency error (s/s) since `at`.
    f: f64,
    at: f64,
    wander: f64,
    /// The initial error (s): the Linux model's `error_at` counts from its start value.
    e0: f64,
    /// Unix time at true time zero.
    epoch: i64,
    kernel: Kernel,
}

impl HostClock {
    pub(crate) fn new(spec: &ClientSpec, model: ClockModel, epoch: i64) -> Self {
        let e0 = -spec.initial_offset;
        let kernel = match model {
            ClockModel::Idealized => Kernel::Idealized(VirtualClock::new()),
            ClockModel::Linux => {
                let start_ns = i128::from(epoch) * 1_000_000_000 + (e0 * 1e9).round() as i128;
                Kernel::Linux(Box::new(LinuxClock::new(LinuxClockConfig {
                    start: Timespec::from_nanos(start_ns),
                    oscillator_ppm: spec.freq_ppm,
                    ..LinuxClockConfig::default()
                })))
            }
        };
        HostClock {
            e: e0,
            f: spec.freq_ppm * 1e-6,
            at: 0.0,
            wander: spec.wander,
            e0,
            epoch,
            kernel,
        }
    }

    /// The natural frequency error now (s/s).
    pub(crate) fn natural_freq(&self) -> f64 {
        self.f
    }

    /// The node's monotonic time at true time `t`.
    pub(crate) fn mono(&mut self, t: f64) -> Instant {
        match &mut self.kernel {
            Kernel::Idealized(_) => secs(t),
            Kernel::Linux(k) => {
                let ns = k.monotonic_ns(secs(t)).clamp(0, i128::from(u64::MAX));
                Instant::from_nanos(ns as u64)
            }
        }
    }

    /// The true time (≥ `t`) at which the monotonic clock reaches `target`, at the current
    /// rates. A later rate change (a node request, a second boundary of the kernel's
    /// single-shot slew) can make the clock reach it slightly later: callers check again.
    pub(crate) fn true_at(&mut self, t: f64, target: Instant) -> f64 {
        let f = self.f;
        match &mut self.kernel {
            Kernel::Idealized(_) => target.secs_since(Instant::ZERO).max(t),
            Kernel::Linux(k) => {
                let now = k.monotonic_ns(secs(t));
                let left = target.as_nanos() as i128 - now;
                if left <= 0 {
                    return t;
                }
                let rate = (1.0 + f) * (1.0 + k.rate());
                // Rounded up to the next nanosecond so the clock does reach the target.
                t + ((left as f64 / rate).ceil() + 1.0) * 1e-9
            }
        }
    }

    /// The wall clock (`CLOCK_REALTIME`) at true time `t`.
    pub(crate) fn wall(&mut self, t: f64) -> NtpTimestamp {
        match &mut self.kernel {
            Kernel::Idealized(applied) => {
                let error = self.e + self.f * (t - self.at) + applied.offset_at(secs(t));
                crate::wall(self.epoch, t + error)
            }
            Kernel::Linux(k) => {
                let ts = k.realtime(secs(t));
                NtpTimestamp::from_unix(ts.sec, ts.nsec as u32)
            }
        }
    }

    /// The clock's error at true time `t` (s; clock minus true time) and the part of it the
    /// node's corrections made (the error minus the natural error).
    pub(crate) fn error(&mut self, t: f64) -> (f64, f64) {
        let natural = self.e + self.f * (t - self.at);
        match &mut self.kernel {
            Kernel::Idealized(applied) => {
                let c = applied.offset_at(secs(t));
                (natural + c, c)
            }
            Kernel::Linux(k) => {
                let error = self.e0 + k.error_at(secs(t));
                (error, error - natural)
            }
        }
    }

    /// True offset (true time minus the clock, i.e. server minus us) at `t`.
    pub(crate) fn true_offset(&mut self, t: f64) -> f64 {
        -self.error(t).0
    }

    /// Executes one clock request at true time `t` as the daemon's executor would.
    pub(crate) fn execute(&mut self, t: f64, request: &ClockRequest) -> Result<(), String> {
        match &mut self.kernel {
            Kernel::Idealized(applied) => {
                match *request {
                    ClockRequest::Rate(rate) => applied.apply(secs(t), ClockAction::Rate(rate)),
                    ClockRequest::Step { offset, rate } => {
                        applied.apply(secs(t), ClockAction::Step { offset, rate });
                    }
                    ClockRequest::Status { .. } | ClockRequest::SaveDrift { .. } => {}
                }
                Ok(())
            }
            Kernel::Linux(k) => execute_linux(k, secs(t), request).map_err(|e| e.to_string()),
        }
    }

    /// Moves the natural error from `self.at` to `t`, drawing the frequency's random walk.
    pub(crate) fn advance(&mut self, t: f64, rng: &mut SplitMix64) {
        let dt = t - self.at;
        if dt <= 0.0 {
            return;
        }
        let df = self.wander * dt.sqrt() * gauss(rng);
        match &mut self.kernel {
            Kernel::Idealized(_) => {
                // Trapezoid: the frequency moves linearly over the step.
                self.e += (self.f + df / 2.0) * dt;
            }
            Kernel::Linux(k) => {
                // The kernel model's oscillator is piecewise constant: the old frequency up to
                // `t`, the new one from then on. The natural error follows it exactly.
                self.e += self.f * dt;
                k.set_oscillator_ppm(secs(t), (self.f + df) * 1e6);
            }
        }
        self.f += df;
        self.at = t;
    }
}

impl HostClock {
    /// The kernel model (`None` for the idealized model).
    pub(crate) fn linux(&self) -> Option<&LinuxClock> {
        match &self.kernel {
            Kernel::Linux(k) => Some(k),
            Kernel::Idealized(_) => None,
        }
    }
}

/// What `rntpd`'s executor does with a request on a real kernel, on the model.
fn execute_linux(
    k: &mut LinuxClock,
    now: Instant,
    request: &ClockRequest,
) -> Result<(), AdjtimexError> {
    match *request {
        ClockRequest::Rate(rate) => k.apply(now, ClockAction::Rate(rate)),
        ClockRequest::Step { offset, rate } => k.apply(now, ClockAction::Step { offset, rate }),
        ClockRequest::Status { synchronized, leap, max_error, est_error } => {
            let micros = |s: f64| (s.max(0.0) * 1e6).min(16_000_000.0) as i64;
            let leap = match leap {
                LeapIndicator::AddSecond => STA_INS,
                LeapIndicator::DeleteSecond => STA_DEL,
                _ => 0,
            };
            k.set_sync_status(now, synchronized, leap, micros(max_error), micros(est_error))
                .map(|_| ())
        }
        ClockRequest::SaveDrift { .. } => Ok(()),
    }
}
