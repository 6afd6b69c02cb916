//! RFC 5905's hybrid PLL/FLL clock discipline (§11.3, §12, Appendix A.5.5.6–7), behind the
//! same [`ClockAction`] interface as the Kalman [`Discipline`](super::Discipline).
//!
//! Selected with [`DisciplineKind::RfcPllFll`](super::DisciplineKind). It exists to *measure*
//! the choice of clock-control algorithm (docs/accuracy.md, "Why Kalman: measured"), so it
//! follows the RFC's loop as written, with three documented departures:
//!
//! * **Loop gain `PLL` = 16**, the reference implementation's floating-point value. The
//!   appendix's `PLL 65536` (a fixed-point kernel scale) gives a phase time constant of
//!   65536 × 64 s ≈ 48 days at poll 6: no clock would ever converge.
//! * **Allan intercept 2048 s** (ntpd's `allan_xpt` 11, the NTP documentation's default); the
//!   appendix's code says 1500 s. The FLL is mixed in when the poll interval exceeds half the
//!   intercept (the appendix's rule), so with 2048 s it is off up to poll 10 (1024 s).
//! * **Wander** is the RMS of frequency *changes* (ntpd), not of the frequency itself (the
//!   appendix's typo); it is reported as the frequency uncertainty.
//!
//! The step / stepout / panic / makestep rules are exactly the Kalman discipline's (so both
//! answer the same configuration the same way); the RFC states map onto
//! [`DisciplineState`] (NSET/FSET → `Unset`, FREQ, SPIK, SYNC).
//!
//! # How the RFC's continuous phase correction becomes a rate
//! The RFC's `clock_adjust` removes `offset / (PLL × τ)` of the residual phase every second
//! (τ = the poll interval, at most the Allan intercept), an exponential decay with time constant
//! `PLL × τ`. Here every update slews what that decay removes over the next τ seconds, plus any
//! shortfall against the decay so far, spread evenly over those τ seconds (a rate, through the
//! shared [`Slewer`]). The residual the RFC's FLL and FREQ-state frequency measurement need is
//! the measured offset minus what was actually slewed since, which the Slewer's model knows.

use crate::discipline::{
    first_checks, ClockAction, DisciplineConfig, DisciplineState, FirstCheck, Slewer, MAX_FREQ_PPM,
};
use crate::time::{Instant, PollInterval};

/// PLL loop gain: the phase time constant is `PLL × τ` and the frequency integral gain
/// `min(μ, τ) / (4 PLL τ)²` (ntpd's value; see the module docs).
const PLL: f64 = 16.0;
/// FLL loop gain: the FLL averages over `max(FLL − poll, AVG)` updates (RFC: MAXPOLL + 1).
const FLL: f64 = 18.0;
/// Averaging constant for jitter and wander, and the FLL's fastest averaging.
const AVG: f64 = 4.0;
/// Allan intercept (s): the poll interval at which phase noise and frequency wander balance.
const ALLAN: f64 = 2048.0;
/// Poll-adjust hysteresis (RFC LIMIT).
const LIMIT: i32 = 30;
/// Poll-adjust gate: |offset| below this multiple of the jitter counts as quiet (RFC PGATE).
const PGATE: f64 = 4.0;
/// Floor of an offset difference in the jitter estimate (s): the clock's precision.
const PRECISION: f64 = 1e-7;
/// Frequency uncertainty (ppm) reported with a drift file, before the first update.
const DRIFT_FILE_PPM: f64 = 1.0;
/// Frequency uncertainty (ppm) reported without a drift file, before the frequency is measured.
const NO_DRIFT_PPM: f64 = MAX_FREQ_PPM;
/// Longest update interval (s) used in a gain: after an outage the loop is not yanked.
const MAX_MU: f64 = 1e6;

/// The RFC 5905 hybrid PLL/FLL. See the module docs.
#[derive(Debug, Clone)]
pub struct PllFll {
    config: DisciplineConfig,
    state: DisciplineState,
    /// FSET (a drift file set the frequency) rather than NSET, before the first update.
    freq_from_file: bool,
    /// Frequency correction (s/s), RFC `c.freq`.
    freq: f64,
    /// Offset (s) of the last update that reset the loop (RFC `c.offset` right after
    /// `rstclock`); the phase the loop is correcting.
    offset: f64,
    /// Offset of the last update, for the jitter (RFC `c.last`).
    last_offset: f64,
    /// RMS of offset differences (s), RFC `c.jitter`.
    jitter: f64,
    /// RMS of frequency changes (s/s).
    wander: f64,
    /// Time of the last `rstclock` (RFC `s.t`).
    last: Option<Instant>,
    /// Loop time constant τ (s) in force since `last`: the poll interval the caller told.
    tau: f64,
    /// The rate we set and its model, to know how much phase was actually slewed.
    slewer: Slewer,
    /// Phase correction (s) applied by `model` at `last`, frequency part excluded.
    phase_at_last: f64,
    spike_since: Option<Instant>,
    updates: u32,
    poll: PollInterval,
    count: i32,
}

impl PllFll {
    /// A new loop. `initial_freq_ppm` is the drift file's frequency, if any (RFC FSET).
    pub fn new(config: DisciplineConfig, initial_freq_ppm: Option<f64>) -> Self {
        let file = initial_freq_ppm.filter(|f| f.is_finite());
        let freq = file.map_or(0.0, |f| f.clamp(-MAX_FREQ_PPM, MAX_FREQ_PPM) * 1e-6);
        let slewer = Slewer::new(freq * 1e6, config.max_slew_ppm);
        let minpoll = config.minpoll.min(config.maxpoll);
        PllFll {
            config,
            state: DisciplineState::Unset,
            freq_from_file: file.is_some(),
            freq,
            offset: 0.0,
            last_offset: 0.0,
            jitter: 0.0,
            wander: 0.0,
            last: None,
            tau: minpoll.as_secs_f64(),
            slewer,
            phase_at_last: 0.0,
            spike_since: None,
            updates: 0,
            poll: minpoll,
            count: 0,
        }
    }

    /// The current state.
    pub fn state(&self) -> DisciplineState {
        self.state
    }

    /// The frequency correction currently set (ppm).
    pub fn frequency_ppm(&self) -> f64 {
        self.slewer.base().ppm()
    }

    /// The rate set and its model.
    pub fn slewer(&self) -> &Slewer {
        &self.slewer
    }

    /// When the running slew ends.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.slewer.poll_timeout()
    }

    /// Ends the running slew once its time has come (a no-op before).
    pub fn handle_timeout(&mut self, now: Instant) -> ClockAction {
        self.slewer.handle_timeout(now)
    }

    /// Frequency uncertainty (ppm): the wander once synchronized, else the prior (1 ppm with a
    /// drift file, 500 ppm without).
    pub fn frequency_error_ppm(&self) -> f64 {
        match self.state {
            DisciplineState::Sync | DisciplineState::Spike => self.wander * 1e6,
            _ if self.freq_from_file => DRIFT_FILE_PPM,
            _ => NO_DRIFT_PPM,
        }
    }

    /// The loop's jitter (s): RMS of differences between consecutive offsets.
    pub fn jitter(&self) -> f64 {
        self.jitter
    }

    /// The poll interval the RFC's poll-adjust rule asks for, within `minpoll..=maxpoll`.
    pub fn suggested_poll(&self) -> PollInterval {
        self.poll
    }

    /// Processes the combined offset `offset` (s, server minus us) measured at `now`, with the
    /// sources polling at `poll` (the loop's time constant). `jitter` is not used: the RFC loop
    /// learns its own. Never panics: non-finite input and time going backwards give
    /// [`ClockAction::None`].
    pub fn update(
        &mut self,
        now: Instant,
        offset: f64,
        _jitter: f64,
        poll: PollInterval,
    ) -> ClockAction {
        if !offset.is_finite() || self.last.is_some_and(|l| now < l) {
            return ClockAction::None;
        }
        let abs = offset.abs();
        match first_checks(&self.config, &mut self.updates, offset) {
            FirstCheck::Panic => return ClockAction::Panic { offset },
            FirstCheck::Step => return self.step(now, offset),
            FirstCheck::Continue => {}
        }
        let step = self.config.step_threshold;
        if step > 0.0 && abs > step {
            if self.state == DisciplineState::Unset {
                return self.step(now, offset);
            }
            return match self.spike_since {
                None => {
                    self.spike_since = Some(now);
                    // RFC: FREQ ignores outliers without leaving FREQ; SYNC goes to SPIK.
                    if self.state == DisciplineState::Sync {
                        self.state = DisciplineState::Spike;
                    }
                    ClockAction::None
                }
                Some(since) if now.secs_since(since) < self.config.stepout => ClockAction::None,
                Some(_) => {
                    if self.state == DisciplineState::Freq {
                        // RFC: the apparent frequency is measured before stepping.
                        if let Some(f) = self.measured_freq(now, offset) {
                            self.set_freq(f);
                        }
                    }
                    self.step(now, offset)
                }
            };
        }
        if self.spike_since.take().is_some() && self.state == DisciplineState::Spike {
            self.state = DisciplineState::Sync;
        }
        self.tau = poll.as_secs_f64().clamp(1.0, ALLAN);
        let Some(last) = self.last else {
            // First update (RFC NSET / FSET).
            self.jitter = PRECISION;
            self.state =
                if self.freq_from_file { DisciplineState::Sync } else { DisciplineState::Freq };
            self.reset(now, offset);
            return self.emit(now);
        };
        let mu = now.secs_since(last).clamp(0.0, MAX_MU);
        let d = (offset - self.last_offset).abs().max(PRECISION);
        self.jitter = (self.jitter.powi(2) + (d * d - self.jitter.powi(2)) / AVG).sqrt();
        let mut freq = self.freq;
        match self.state {
            DisciplineState::Freq | DisciplineState::Unset => {
                if mu < self.config.stepout {
                    // RFC: FREQ ignores updates until the stepout interval has passed; the
                    // phase correction keeps running.
                    return self.emit(now);
                }
                freq = self.measured_freq(now, offset).unwrap_or(freq);
            }
            DisciplineState::Spike | DisciplineState::Sync => {
                // FLL, mixed in above half the Allan intercept.
                if self.tau > ALLAN / 2.0 {
                    let log2 = f64::from(poll.as_log2());
                    let avg = (FLL - log2).max(AVG);
                    freq += (offset - self.residual(now)) / (mu.max(ALLAN) * avg);
                }
                // PLL: integrates over the update interval, at most τ (oversampling allowed,
                // undersampling not).
                let d = 4.0 * PLL * self.tau;
                freq += offset * mu.min(self.tau) / (d * d);
            }
        }
        self.set_freq(freq);
        self.state = DisciplineState::Sync;
        self.reset(now, offset);
        self.adjust_poll();
        self.emit(now)
    }

    /// The natural frequency measured directly from the offset's drift since the last reset
    /// (RFC FREQ state): what changed that our phase correction did not cause.
    fn measured_freq(&self, now: Instant, offset: f64) -> Option<f64> {
        let last = self.last?;
        let mu = now.secs_since(last);
        if mu.is_nan() || mu <= 0.0 {
            return None;
        }
        Some(self.freq + (offset - self.residual(now)) / mu)
    }

    /// Sets the frequency (s/s, clamped) and updates the wander.
    fn set_freq(&mut self, freq: f64) {
        let freq = freq.clamp(-MAX_FREQ_PPM * 1e-6, MAX_FREQ_PPM * 1e-6);
        let change = freq - self.freq;
        self.wander = (self.wander.powi(2) + (change * change - self.wander.powi(2)) / AVG).sqrt();
        self.freq = freq;
    }

    /// Phase correction (s) our actions applied by `now`, without the frequency part.
    fn phase_applied(&self, now: Instant) -> f64 {
        self.slewer.slewed_at(now)
    }

    /// The RFC's `c.offset` as it stands at `now`: the phase still to correct.
    fn residual(&self, now: Instant) -> f64 {
        self.offset - (self.phase_applied(now) - self.phase_at_last)
    }

    /// RFC `rstclock`: a new phase to correct from `now`.
    fn reset(&mut self, now: Instant, offset: f64) {
        self.last = Some(now);
        self.phase_at_last = self.phase_applied(now);
        self.offset = offset;
        self.last_offset = offset;
    }

    /// The slew for the RFC's exponential phase correction: what it will have removed by
    /// `now + τ`, minus what was slewed since the last reset.
    fn emit(&mut self, now: Instant) -> ClockAction {
        let Some(last) = self.last else { return ClockAction::None };
        let horizon = now.secs_since(last).max(0.0) + self.tau;
        let time_constant = PLL * self.tau;
        let target = self.offset * (1.0 - (-horizon / time_constant).exp());
        let done = self.phase_applied(now) - self.phase_at_last;
        let slew = target - done;
        if !slew.is_finite() || !self.freq.is_finite() {
            return ClockAction::None;
        }
        self.slewer.correct(now, self.freq, slew, self.tau)
    }

    /// Steps by `offset` and restarts the phase loop (RFC: poll back to minpoll; NSET → FREQ).
    fn step(&mut self, now: Instant, offset: f64) -> ClockAction {
        let action = self.slewer.step(now, offset);
        self.spike_since = None;
        self.count = 0;
        self.poll = self.config.minpoll.min(self.config.maxpoll);
        let was_unset = self.state == DisciplineState::Unset;
        self.state = if was_unset && !self.freq_from_file {
            DisciplineState::Freq
        } else {
            DisciplineState::Sync
        };
        if self.last.is_none() {
            self.jitter = PRECISION;
        }
        self.reset(now, 0.0);
        action
    }

    /// RFC 5905 poll adjustment: longer while the offset stays within PGATE × jitter.
    fn adjust_poll(&mut self) {
        let (min, max) = (self.config.minpoll.min(self.config.maxpoll), self.config.maxpoll);
        let exp = i32::from(self.poll.as_log2().max(1));
        if self.offset.abs() < PGATE * self.jitter {
            self.count += exp;
            if self.count > LIMIT {
                self.count = LIMIT;
                if self.poll < max {
                    self.count = 0;
                    self.poll = self.poll.inc(max);
                }
            }
        } else {
            self.count -= 2 * exp;
            if self.count < -LIMIT {
                self.count = -LIMIT;
                if self.poll > min {
                    self.count = 0;
                    self.poll = self.poll.dec(min);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discipline::{ClockRate, VirtualClock};

    fn at(secs: f64) -> Instant {
        Instant::from_nanos((secs * 1e9) as u64)
    }

    const POLL: PollInterval = PollInterval::DEFAULT_MIN;

    /// A clock `ppm` fast with initial error `e0` (s), corrected by a VirtualClock that executes
    /// the loop's actions, fed noiseless offsets every `poll` s from `t0` for `n` polls.
    /// Returns the last true offset and the number of steps.
    fn run(
        l: &mut PllFll,
        vc: &mut VirtualClock,
        e0: f64,
        ppm: f64,
        t0: f64,
        n: usize,
    ) -> (f64, u32) {
        let mut theta = 0.0;
        let mut steps = 0;
        for i in 0..n {
            let t = t0 + i as f64 * POLL.as_secs_f64();
            // Slews that end before the next update end on time, as the node's timer does.
            while let Some(end) = l.poll_timeout().filter(|e| *e < at(t)) {
                let a = l.handle_timeout(end);
                vc.apply(end, a);
            }
            theta = -(e0 + ppm * 1e-6 * t + vc.offset_at(at(t)));
            let a = l.update(at(t), theta, 1e-5, POLL);
            if let ClockAction::Rate(rate) = a {
                assert!(rate.ppm().is_finite(), "{a:?}");
            }
            steps += u32::from(matches!(a, ClockAction::Step { .. }));
            vc.apply(at(t), a);
        }
        (theta, steps)
    }

    #[test]
    fn converges_from_50_ms_by_slewing() {
        // Drift file right (RFC FSET): 50 ms is below the step threshold, so it is slewed.
        let mut l = PllFll::new(DisciplineConfig::default(), Some(-1.0));
        let mut vc = VirtualClock::new();
        vc.apply(at(0.0), ClockAction::Rate(ClockRate::from_ppm(-1.0)));
        let (theta, steps) = run(&mut l, &mut vc, -0.05, 1.0, 0.0, 24 * 3600 / 64);
        assert_eq!(steps, 0);
        assert!(theta.abs() < 1e-4, "{theta}");
        assert_eq!(l.state(), DisciplineState::Sync);
        // The phase loop's time constant is PLL × τ = 1024 s: 50 ms is not gone in 10 min.
        let mut l = PllFll::new(DisciplineConfig::default(), Some(-1.0));
        let mut vc = VirtualClock::new();
        vc.apply(at(0.0), ClockAction::Rate(ClockRate::from_ppm(-1.0)));
        let (theta, _) = run(&mut l, &mut vc, -0.05, 1.0, 0.0, 10);
        assert!(theta.abs() > 0.01, "{theta}");
    }

    #[test]
    fn steps_half_a_second_after_stepout() {
        let mut l = PllFll::new(DisciplineConfig::default(), Some(0.0));
        let mut vc = VirtualClock::new();
        let _ = run(&mut l, &mut vc, 0.0, 0.0, 0.0, 20);
        assert_eq!(l.state(), DisciplineState::Sync);
        let t0 = 20.0 * 64.0;
        // One spike then normal again: ignored, back to SYNC.
        assert_eq!(l.update(at(t0), 0.5, 1e-5, POLL), ClockAction::None);
        assert_eq!(l.state(), DisciplineState::Spike);
        let a = l.update(at(t0 + 64.0), 0.0, 1e-5, POLL);
        assert!(!matches!(a, ClockAction::Step { .. } | ClockAction::Panic { .. }), "{a:?}");
        assert_eq!(l.state(), DisciplineState::Sync);
        // Persistent: held until `stepout` (300 s) has passed, then stepped.
        let t1 = t0 + 128.0;
        assert_eq!(l.update(at(t1), 0.5, 1e-5, POLL), ClockAction::None);
        assert_eq!(l.update(at(t1 + 256.0), 0.5, 1e-5, POLL), ClockAction::None);
        assert!(
            matches!(l.update(at(t1 + 320.0), 0.5, 1e-5, POLL), ClockAction::Step { offset, .. } if offset == 0.5)
        );
        assert_eq!(l.state(), DisciplineState::Sync);
        assert_eq!(l.suggested_poll(), DisciplineConfig::default().minpoll);
        // At start-up a large offset is stepped at once; beyond panic it is refused.
        let mut l = PllFll::new(DisciplineConfig::default(), None);
        assert_eq!(l.update(at(0.0), 2000.0, 1e-5, POLL), ClockAction::Panic { offset: 2000.0 });
        assert!(
            matches!(l.update(at(0.0), 0.5, 1e-5, POLL), ClockAction::Step { offset, .. } if offset == 0.5)
        );
        assert_eq!(l.state(), DisciplineState::Freq);
    }

    #[test]
    fn frequency_converges_without_drift_file() {
        let mut l = PllFll::new(DisciplineConfig::default(), None);
        let mut vc = VirtualClock::new();
        // FREQ state: the first stepout interval measures the frequency directly.
        let (_, steps) = run(&mut l, &mut vc, 0.01, 20.0, 0.0, 6);
        assert_eq!(steps, 0);
        assert_eq!(l.state(), DisciplineState::Sync);
        assert!((l.frequency_ppm() + 20.0).abs() < 0.5, "{}", l.frequency_ppm());
        // Then the PLL takes the residual out: within 0.01 ppm and 10 µs after two days.
        let (theta, _) = run(&mut l, &mut vc, 0.01, 20.0, 6.0 * 64.0, 2 * 86_400 / 64);
        assert!((l.frequency_ppm() + 20.0).abs() < 0.01, "{}", l.frequency_ppm());
        assert!(theta.abs() < 1e-5, "{theta}");
        assert!(l.frequency_error_ppm() < 0.01, "{}", l.frequency_error_ppm());
    }

    #[test]
    fn garbage_input_does_not_panic() {
        let mut l = PllFll::new(DisciplineConfig::default(), Some(f64::NAN));
        for (i, v) in
            [f64::NAN, f64::INFINITY, 1e300, -1e-300, 0.0, f64::MAX, 0.001].into_iter().enumerate()
        {
            for poll in [PollInterval::from_log2(-10), POLL, PollInterval::from_log2(17)] {
                let a = l.update(at(i as f64 * 1e5), v, f64::NAN, poll);
                if let ClockAction::Rate(rate) = a {
                    assert!(rate.ppm().is_finite(), "{a:?}");
                }
            }
        }
        assert_eq!(l.update(at(0.0), 0.0, 0.0, POLL), ClockAction::None);
        assert!(l.frequency_ppm().is_finite());
    }
}
