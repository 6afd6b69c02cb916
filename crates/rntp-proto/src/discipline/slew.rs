//! Offset correction through the clock's rate: the kernel settings a discipline asks for
//! ([`ClockRate`]), the exact model of what they do ([`VirtualClock`]), and the [`Slewer`]
//! that turns "remove this phase over that time, then run at this frequency" into them.
//!
//! # The kernel's rate, exactly
//! Linux (`kernel/time/ntp.c`, `ntp_update_frequency()`) runs `CLOCK_REALTIME` at
//! `tick_usec × USER_HZ µs + time_freq` per oscillator second: the tick length in whole µs per
//! 1/100 s (9 000..=11 000, so 100 ppm per µs, ±10 %) plus the frequency in 1/65 536 ppm
//! (±500 ppm). A [`ClockRate`] holds exactly those two integers, so the rate the model
//! integrates is the rate the kernel runs at, to the last bit. Both take effect at once
//! (`do_adjtimex()` updates the clocksource multiplier immediately), unlike `adjtime()`'s
//! single-shot slew, whose chunks are committed at second boundaries and cannot be cancelled
//! within the second; rntpd never uses that.
//!
//! # The node's time is slewed too
//! The node's `now` is `CLOCK_BOOTTIME`, which the kernel slews with the same multiplier as
//! `CLOCK_REALTIME` (it is never stepped). While the kernel runs at rate `1 + r` against the
//! oscillator, true time passes `1/(1 + r)` per second of `now`, so the correction a rate makes
//! per second of `now` is `c = r / (1 + r)`: a slew at 83 333 ppm corrects 76.9 µs per second of
//! `now`, not 83.3. [`VirtualClock`] integrates `c` ([`ClockRate::correction`]); the Slewer
//! chooses `r = c / (1 − c)`. (The oscillator's own error scales this by `1/(1 + osc)`: 20 ppm
//! of a slew, below a microsecond for the largest.)
//!
//! # Slewing
//! [`Slewer::correct`] sets the rate to the base frequency plus `phase / duration`, at most
//! the maximum slew rate (chrony's `maxslewrate`), and plans the end: when the phase is gone,
//! [`Slewer::handle_timeout`] returns the rate to the base frequency. Rates beyond ±500 ppm go
//! through the tick. The duration is what the quantized rate needs for exactly `phase`, so a
//! slew that ends on time removes exactly what was asked; one that ends late (the driver's
//! wakeup latency) overshoots by the rate times the delay, and the model says by how much.

use crate::time::Instant;

/// `timex.tick` at nominal rate: 10 000 µs per 1/`USER_HZ` s.
pub const NOMINAL_TICK_USEC: i64 = 10_000;
/// The smallest tick Linux accepts (−10 %).
pub const MIN_TICK_USEC: i64 = 9_000;
/// The largest tick Linux accepts (+10 %).
pub const MAX_TICK_USEC: i64 = 11_000;
/// Rate change (ppm) of one µs of tick: `USER_HZ` (100) µs per second.
pub const TICK_PPM: f64 = 100.0;
/// `timex.freq` units per ppm (scaled ppm, `SHIFT_USEC` 16).
pub const FREQ_SCALE: f64 = 65_536.0;
/// The kernel's frequency limit (ppm), `MAXFREQ`.
pub const MAX_FREQ_PPM: f64 = 500.0;
/// chrony's default and largest `maxslewrate` on Linux (ppm): 1/12 of the tick range, leaving
/// room for the frequency correction.
pub const DEFAULT_MAX_SLEW_PPM: f64 = 83_333.333;
/// Longest slew the Slewer plans (s): a phase too small for the rate's resolution is left to the
/// next update rather than slewed for ever.
const MAX_SLEW_SECS: f64 = 1e6;

/// The kernel's rate settings: tick length and frequency, in the kernel's own integer units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClockRate {
    /// `timex.tick`: µs per 1/100 s, within [`MIN_TICK_USEC`]..=[`MAX_TICK_USEC`].
    pub tick_usec: i64,
    /// `timex.freq`: scaled ppm (ppm × 65 536), within ±500 ppm.
    pub freq_scaled: i64,
}

impl Default for ClockRate {
    fn default() -> Self {
        ClockRate::NOMINAL
    }
}

impl ClockRate {
    /// No correction: nominal tick, zero frequency.
    pub const NOMINAL: ClockRate = ClockRate { tick_usec: NOMINAL_TICK_USEC, freq_scaled: 0 };

    /// The settings nearest to `ppm` (positive: the clock runs faster): the frequency alone up
    /// to ±500 ppm, beyond that the nearest tick plus the remainder as frequency. Clamped to
    /// what the kernel accepts (±100 500 ppm); non-finite values give [`ClockRate::NOMINAL`].
    pub fn from_ppm(ppm: f64) -> ClockRate {
        if !ppm.is_finite() {
            return ClockRate::NOMINAL;
        }
        let max_tick = (MAX_TICK_USEC - NOMINAL_TICK_USEC) as f64;
        let ppm =
            ppm.clamp(-(max_tick * TICK_PPM + MAX_FREQ_PPM), max_tick * TICK_PPM + MAX_FREQ_PPM);
        let ticks = if ppm.abs() <= MAX_FREQ_PPM {
            0.0
        } else {
            (ppm / TICK_PPM).round().clamp(-max_tick, max_tick)
        };
        let rest = (ppm - ticks * TICK_PPM).clamp(-MAX_FREQ_PPM, MAX_FREQ_PPM);
        ClockRate {
            tick_usec: NOMINAL_TICK_USEC + ticks as i64,
            freq_scaled: (rest * FREQ_SCALE).round() as i64,
        }
    }

    /// The settings whose correction per second of slewed time ([`ClockRate::correction`]) is
    /// nearest to `c` (s/s).
    pub fn from_correction(c: f64) -> ClockRate {
        // c = r / (1 + r)  ⇔  r = c / (1 − c); |c| stays far below 1 for any legal rate.
        let c = c.clamp(-0.5, 0.5);
        ClockRate::from_ppm(c / (1.0 - c) * 1e6)
    }

    /// The rate these settings give (ppm against the oscillator), exactly as the kernel
    /// computes it.
    pub fn ppm(self) -> f64 {
        (self.tick_usec - NOMINAL_TICK_USEC) as f64 * TICK_PPM
            + self.freq_scaled as f64 / FREQ_SCALE
    }

    /// The correction these settings make per second of the (equally slewed) monotonic clock
    /// (s/s): `r / (1 + r)`. See the module docs.
    pub fn correction(self) -> f64 {
        let r = self.ppm() * 1e-6;
        r / (1.0 + r)
    }

    /// The frequency alone (ppm), as `timex.freq` holds it.
    pub fn freq_ppm(self) -> f64 {
        self.freq_scaled as f64 / FREQ_SCALE
    }
}

/// What the driver must do to the clock.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ClockAction {
    /// Nothing (sample ignored, spike held, or bad input).
    None,
    /// Run the clock at `rate` from now until the next action: `adjtimex(ADJ_FREQUENCY |
    /// ADJ_TICK)` with these exact values. A slew is a rate above or below the base frequency
    /// for a planned time; ending it is another `Rate`.
    Rate(ClockRate),
    /// Step the clock by `offset` seconds (positive: forward) and run it at `rate` from then on
    /// (a slew in progress ends): `adjtimex(ADJ_SETOFFSET | ADJ_NANO | ADJ_FREQUENCY |
    /// ADJ_TICK)`. The kernel clears its NTP state on a step (`STA_UNSYNC`, a pending leap
    /// second disarmed): the status must be set again.
    Step {
        /// The step (s).
        offset: f64,
        /// The rate from the step on.
        rate: ClockRate,
    },
    /// The offset is beyond the panic threshold: refuse to touch the clock. The daemon logs it
    /// and keeps running unsynchronized.
    Panic {
        /// The offending offset (s).
        offset: f64,
    },
}

/// A model of a disciplined clock: the correction (s) the executed [`ClockAction`]s made to the
/// clock, as a function of the node's (slewed) monotonic time. Exact for the kernel: rates
/// apply at once and hold until the next action; steps add at once.
///
/// Used by the daemon in observe-only mode (the virtual clock it serves), by the simulator's
/// idealized clock, by [`crate::steer::Steering`] for every correction applied, and inside the
/// disciplines to know what they asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct VirtualClock {
    /// Correction accumulated up to `at` (s).
    phase: f64,
    /// The rate in force since `at`.
    rate: ClockRate,
    at: Instant,
}

impl Default for VirtualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl VirtualClock {
    /// A clock with no correction at nominal rate.
    pub fn new() -> Self {
        VirtualClock { phase: 0.0, rate: ClockRate::NOMINAL, at: Instant::ZERO }
    }

    /// The rate in force.
    pub fn rate(&self) -> ClockRate {
        self.rate
    }

    /// The rate in force (ppm against the oscillator), slews included.
    pub fn frequency_ppm(&self) -> f64 {
        self.rate.ppm()
    }

    /// Total correction (s) applied by `now`: the corrected clock reads the uncorrected one plus
    /// this. `now` before the last action is treated as that instant.
    pub fn offset_at(&self, now: Instant) -> f64 {
        let dt = now.secs_since(self.at).max(0.0);
        self.phase + self.rate.correction() * dt
    }

    /// The rate (s/s of monotonic time) at which the correction grows now.
    pub fn rate_at(&self, _now: Instant) -> f64 {
        self.rate.correction()
    }

    /// Applies an executed action at `now`. Non-finite steps are ignored.
    pub fn apply(&mut self, now: Instant, action: ClockAction) {
        let now = now.max(self.at);
        self.phase = self.offset_at(now);
        self.at = now;
        match action {
            ClockAction::Rate(rate) => self.rate = rate,
            ClockAction::Step { offset, rate } => {
                if offset.is_finite() {
                    self.phase += offset;
                }
                self.rate = rate;
            }
            ClockAction::None | ClockAction::Panic { .. } => {}
        }
    }
}

/// Turns "remove `phase` over `duration` on top of frequency `f`" into kernel rates, keeps the
/// model of what they did, and owns the timer that ends a slew. See the module docs.
///
/// Call order: [`Slewer::correct`] or [`Slewer::step`] at each clock update; when
/// [`Slewer::poll_timeout`] has passed, [`Slewer::handle_timeout`] (a no-op before). Every
/// returned action must reach the clock.
#[derive(Debug, Clone, PartialEq)]
pub struct Slewer {
    model: VirtualClock,
    /// The base rate: the frequency correction alone.
    base: ClockRate,
    /// When the running slew has removed its phase.
    end: Option<Instant>,
    /// Phase (s) the slews applied beyond the base rate, up to `model.at`.
    slewed: f64,
    /// Largest slew rate (s/s of monotonic time).
    max_slew: f64,
}

impl Slewer {
    /// A clock at frequency `freq_ppm` (clamped to ±500 ppm), slewing at most `max_slew_ppm`.
    pub fn new(freq_ppm: f64, max_slew_ppm: f64) -> Self {
        let base = Self::base_rate(freq_ppm * 1e-6);
        let max_slew_ppm = if max_slew_ppm.is_finite() && max_slew_ppm > 0.0 {
            max_slew_ppm.min(DEFAULT_MAX_SLEW_PPM)
        } else {
            DEFAULT_MAX_SLEW_PPM
        };
        let mut model = VirtualClock::new();
        model.rate = base;
        Slewer { model, base, end: None, slewed: 0.0, max_slew: max_slew_ppm * 1e-6 }
    }

    /// The base rate for a frequency (s/s): the frequency alone, within ±500 ppm.
    fn base_rate(freq: f64) -> ClockRate {
        let freq = if freq.is_finite() { freq } else { 0.0 };
        ClockRate::from_ppm((freq * 1e6).clamp(-MAX_FREQ_PPM, MAX_FREQ_PPM))
    }

    /// The model of every action returned so far.
    pub fn model(&self) -> &VirtualClock {
        &self.model
    }

    /// The base rate (the frequency correction without any slew).
    pub fn base(&self) -> ClockRate {
        self.base
    }

    /// Whether a slew is running.
    pub fn slewing(&self) -> bool {
        self.end.is_some()
    }

    /// Phase (s) the slews applied beyond the base rate, up to `now`.
    pub fn slewed_at(&self, now: Instant) -> f64 {
        let dt = now.secs_since(self.model.at).max(0.0);
        self.slewed + (self.model.rate.correction() - self.base.correction()) * dt
    }

    /// Phase (s) the running slew will still apply after `now` if it ends on time.
    pub fn pending_at(&self, now: Instant) -> f64 {
        let Some(end) = self.end else { return 0.0 };
        let left = end.secs_since(now).max(0.0);
        (self.model.rate.correction() - self.base.correction()) * left
    }

    /// When the running slew ends.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.end
    }

    /// Ends the slew once its time has come: the rate returns to the base.
    pub fn handle_timeout(&mut self, now: Instant) -> ClockAction {
        match self.end {
            Some(end) if now >= end => {
                self.end = None;
                self.set_rate(now, self.base)
            }
            _ => ClockAction::None,
        }
    }

    /// Runs at frequency `freq` (s/s, a correction per second of monotonic time) and removes
    /// `phase` (s) over `duration` (s) on top, at most at the maximum slew rate. Replaces any
    /// slew in progress. Returns `ClockAction::None` when nothing changes.
    pub fn correct(&mut self, now: Instant, freq: f64, phase: f64, duration: f64) -> ClockAction {
        self.rebase(now);
        if freq.is_finite() {
            self.base = Self::base_rate(freq / (1.0 - freq.clamp(-0.5, 0.5)));
        }
        self.end = None;
        let mut rate = self.base;
        if phase.is_finite() && phase != 0.0 && duration.is_finite() {
            // The limit is on the kernel's rate, so on the correction per slewed second
            // it is m / (1 + m) forwards and m / (1 − m) backwards.
            let m = self.max_slew;
            let wanted = (phase / duration.max(1e-9)).clamp(-m / (1.0 - m), m / (1.0 + m));
            let total = ClockRate::from_correction(self.base.correction() + wanted);
            let slew = total.correction() - self.base.correction();
            let secs = phase / slew;
            if slew != 0.0 && secs > 0.0 && secs.is_finite() {
                rate = total;
                self.end = Some(now.add_secs_f64(secs.min(MAX_SLEW_SECS)));
            }
        }
        self.set_rate(now, rate)
    }

    /// Steps the clock by `offset` (s); any slew ends and the base rate stays.
    pub fn step(&mut self, now: Instant, offset: f64) -> ClockAction {
        self.rebase(now);
        self.end = None;
        let action = ClockAction::Step { offset, rate: self.base };
        self.model.apply(now, action);
        action
    }

    fn rebase(&mut self, now: Instant) {
        self.slewed = self.slewed_at(now);
        let now = now.max(self.model.at);
        self.model.phase = self.model.offset_at(now);
        self.model.at = now;
    }

    fn set_rate(&mut self, now: Instant, rate: ClockRate) -> ClockAction {
        self.rebase(now);
        if rate == self.model.rate {
            return ClockAction::None;
        }
        let action = ClockAction::Rate(rate);
        self.model.apply(now, action);
        action
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: f64) -> Instant {
        Instant::from_nanos((secs * 1e9).round() as u64)
    }

    #[test]
    fn rates_are_the_kernels_integers() {
        assert_eq!(ClockRate::from_ppm(0.0), ClockRate::NOMINAL);
        let r = ClockRate::from_ppm(-12.345_678);
        assert_eq!(r.tick_usec, 10_000);
        assert_eq!(r.freq_scaled, (-12.345_678f64 * 65_536.0).round() as i64);
        assert_eq!(r.ppm(), r.freq_scaled as f64 / 65_536.0);
        // Beyond ±500 ppm: the nearest tick, the rest as frequency.
        let r = ClockRate::from_ppm(83_333.333);
        assert_eq!(r.tick_usec, 10_833);
        assert!((r.freq_ppm() - 33.333).abs() < 1e-4, "{r:?}");
        assert!((r.ppm() - 83_333.333).abs() < 1e-4);
        let r = ClockRate::from_ppm(-520.0);
        assert_eq!((r.tick_usec, r.freq_ppm()), (9_995, -20.0));
        // Clamped to what the kernel accepts.
        assert_eq!(
            ClockRate::from_ppm(1e9),
            ClockRate { tick_usec: 11_000, freq_scaled: 500 << 16 }
        );
        assert_eq!(ClockRate::from_ppm(-1e9).tick_usec, 9_000);
        assert_eq!(ClockRate::from_ppm(f64::NAN), ClockRate::NOMINAL);
        // Correction per second of slewed time.
        let r = ClockRate::from_ppm(100_000.0);
        assert!((r.correction() - 0.1 / 1.1).abs() < 1e-15);
        let back = ClockRate::from_correction(r.correction());
        assert_eq!(back, r);
    }

    #[test]
    fn a_slew_removes_exactly_its_phase_then_returns_to_the_base() {
        let mut s = Slewer::new(-1.0, DEFAULT_MAX_SLEW_PPM);
        let base = s.base();
        assert_eq!(base, ClockRate::from_ppm(-1.0));
        // 50 ms at once: the maximum rate, through the tick.
        let a = s.correct(at(10.0), base.correction(), 0.05, 0.0);
        let ClockAction::Rate(rate) = a else { panic!("{a:?}") };
        assert!(rate.tick_usec > 10_800, "{rate:?}");
        let end = s.poll_timeout().expect("a slew runs");
        let secs = end.secs_since(at(10.0));
        assert!((0.64..0.66).contains(&secs), "{secs}");
        assert_eq!(s.handle_timeout(at(10.5)), ClockAction::None, "not yet");
        assert_eq!(s.handle_timeout(end), ClockAction::Rate(base));
        // Exactly 50 ms beyond the base rate (to the ns the end instant is rounded to).
        assert!((s.slewed_at(end) - 0.05).abs() < 1e-9, "{}", s.slewed_at(end));
        let total = s.model().offset_at(at(20.0));
        let expect = 0.05 + base.correction() * 20.0;
        assert!((total - expect).abs() < 1e-9, "{total} {expect}");
        assert!(!s.slewing());
    }

    #[test]
    fn slow_slews_use_the_frequency_alone_and_replace_each_other() {
        let mut s = Slewer::new(20.0, DEFAULT_MAX_SLEW_PPM);
        let f = s.base().correction();
        let a = s.correct(at(0.0), f, 10e-6, 100.0);
        let ClockAction::Rate(r) = a else { panic!("{a:?}") };
        assert_eq!(r.tick_usec, 10_000);
        assert!((s.pending_at(at(0.0)) - 10e-6).abs() < 1e-12);
        // Replaced half-way: what was done stays done.
        let _ = s.correct(at(50.0), f, -2e-6, 100.0);
        // (The rate is rounded to 1/65 536 ppm: 0.4 ns over 50 s.)
        assert!((s.slewed_at(at(50.0)) - 5e-6).abs() < 1e-9);
        assert!((s.pending_at(at(50.0)) + 2e-6).abs() < 1e-12);
        // The same request again changes nothing.
        let mut t = s.clone();
        assert_eq!(t.correct(at(50.0), f, -2e-6, 100.0), ClockAction::None);
        // A step ends the slew and keeps the base.
        let a = s.step(at(60.0), 0.25);
        assert_eq!(a, ClockAction::Step { offset: 0.25, rate: s.base() });
        assert_eq!(s.poll_timeout(), None);
        // Garbage does not slew.
        let before = s.clone();
        assert_eq!(s.correct(at(70.0), f, f64::NAN, 1.0), ClockAction::None);
        assert_eq!(s.correct(at(70.0), f, 1e-3, f64::INFINITY), ClockAction::None);
        assert_eq!(s.model().rate(), before.model().rate());
    }

    #[test]
    fn virtual_clock_integrates_the_correction_per_slewed_second() {
        let mut vc = VirtualClock::new();
        vc.apply(at(0.0), ClockAction::Rate(ClockRate::from_ppm(100_000.0)));
        assert!((vc.offset_at(at(1.1)) - 0.1).abs() < 1e-12);
        vc.apply(at(1.1), ClockAction::Step { offset: -1.0, rate: ClockRate::NOMINAL });
        assert!((vc.offset_at(at(5.0)) + 0.9).abs() < 1e-12);
        vc.apply(at(5.0), ClockAction::Step { offset: f64::NAN, rate: ClockRate::NOMINAL });
        assert!((vc.offset_at(at(6.0)) + 0.9).abs() < 1e-12);
    }
}
