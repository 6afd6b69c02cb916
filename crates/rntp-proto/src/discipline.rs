//! The clock discipline: turns the combined offset from selection into clock corrections.
//!
//! # What it does
//! [`Discipline`] is a sans-IO state machine. Each call to [`Discipline::update`] gets the
//! current monotonic time and the combined offset θ (server minus us) with its jitter, and
//! returns a [`ClockAction`]: nothing, a new clock rate (the kernel's frequency and tick), a
//! step, or a refusal ([`ClockAction::Panic`]).
//! [`Discipline::update_sample`] is the better input (measured): every raw sample of a source
//! selection kept, weighted by its own error from its round-trip delay ([`DelayNoise`]).
//!
//! The estimator is a two-state Kalman filter (phase and natural frequency error of the local
//! clock), chosen over RFC 5905's hybrid PLL/FLL because it measured better on every row of the
//! accuracy benchmark (docs/accuracy.md): it converges in a few samples from an unknown
//! frequency, weights each sample by how much it can be trusted, and handles any poll interval
//! without retuning. The step/stepout/panic rules and the state names are RFC 5905 §12's
//! (`local_clock`), plus chrony's `makestep`. Rationale for every constant: docs/discipline.md.
//!
//! Offsets are corrected through the clock's rate, never with `adjtime()` bursts ([`slew`]):
//! each update sets the frequency to the estimate plus the offset divided by a correction time
//! that grows as the offset shrinks towards its own uncertainty (chrony's `corrtimeratio` rule),
//! at most the maximum slew rate (`maxslewrate`, through the kernel's tick beyond ±500 ppm), and
//! the [`Slewer`]'s timer ([`Discipline::poll_timeout`], [`Discipline::handle_timeout`]) returns
//! the rate to the estimated frequency when the phase is gone. The filter knows exactly what
//! corrections it asked for, because the Slewer keeps an exact model of the kernel's rate
//! ([`VirtualClock`], the same model the daemon's observe mode and the simulator use). So the
//! prediction of the next offset accounts for a slew still in progress.
//!
//! # What it does not do
//! It reads no clock and touches no kernel interface: the driver applies the actions (adjtimex
//! or the [`VirtualClock`]). It does not pick sources (selection does), does not handle leap
//! seconds (the combined leap indicator goes from selection to the driver untouched), and does
//! not write the drift file (the daemon does the atomic write; [`format_drift`] and
//! [`parse_drift`] are the format). It does not change association poll intervals itself;
//! [`Discipline::suggested_poll`] is advice for the driver.

use core::fmt;

use crate::time::{Instant, PollInterval};

#[cfg(feature = "research")]
pub mod pll;
pub mod slew;

pub use slew::{ClockAction, ClockRate, Slewer, VirtualClock, DEFAULT_MAX_SLEW_PPM, MAX_FREQ_PPM};

/// Which clock-control algorithm a [`Discipline`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DisciplineKind {
    /// The two-state Kalman filter (this module; the default).
    #[default]
    Kalman,
    /// RFC 5905's hybrid PLL/FLL ([`pll::PllFll`]), kept to measure the choice
    /// (docs/accuracy.md); research builds only. [`crate::steer::Steering`] always feeds it
    /// RFC-style (`Feed::FilterBest`).
    #[cfg(feature = "research")]
    RfcPllFll,
}

/// How long an offset takes to correct, against its uncertainty (chrony's `corrtimeratio` 3,
/// with chrony's factor ½): an offset of one σ is removed over 1.5 poll intervals, ten σ over
/// 0.15, so the estimate's noise barely moves the frequency while a real offset goes fast.
pub const CORRECTION_RATIO: f64 = 1.5;

/// Discipline settings (`tinker`, `makestep`, poll bounds and the clock model).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DisciplineConfig {
    /// `tinker step`: offsets beyond this (s) are stepped after `stepout`; 0 = never step.
    pub step_threshold: f64,
    /// `tinker panic`: offsets beyond this (s) are refused; 0 = no limit.
    pub panic_threshold: f64,
    /// Accept one offset beyond `panic_threshold` on the very first update (ntpd `-g`).
    pub panic_allow_first: bool,
    /// `tinker stepout`: how long (s) an offset beyond `step_threshold` must persist.
    pub stepout: f64,
    /// chrony `makestep THRESHOLD LIMIT`: step at once if |offset| > THRESHOLD during the
    /// first LIMIT updates.
    pub makestep: Option<MakeStep>,
    /// Shortest poll interval [`Discipline::suggested_poll`] returns.
    pub minpoll: PollInterval,
    /// Longest poll interval [`Discipline::suggested_poll`] returns.
    pub maxpoll: PollInterval,
    /// Assumed random-walk frequency wander of the local oscillator (1/√s): the Kalman process
    /// noise. Larger follows a changing frequency faster, smaller averages more noise away.
    pub wander: f64,
    /// The largest rate (ppm) at which an offset is slewed (chrony's `maxslewrate`; default
    /// and maximum [`DEFAULT_MAX_SLEW_PPM`]). Rates beyond ±500 ppm use the kernel's tick.
    pub max_slew_ppm: f64,
    /// How long an offset of one σ takes to correct, in poll intervals (default
    /// [`CORRECTION_RATIO`]; chrony's `corrtimeratio` / 2).
    pub correction_ratio: f64,
    /// The algorithm: Kalman (default) or RFC 5905's PLL/FLL.
    pub kind: DisciplineKind,
    /// The most the clock may be stepped in all, over the discipline's life (s): a step that
    /// would take the sum of |steps| beyond this is refused ([`ClockAction::Panic`]), as
    /// ntpd-rs's `accumulated-step-panic-threshold`. A server that keeps jumping, or an
    /// attacker who controls the sources, cannot walk the clock away step by step. 0: no
    /// limit (the default, as ntpd and chrony).
    pub step_limit: f64,
}

impl Default for DisciplineConfig {
    fn default() -> Self {
        DisciplineConfig {
            step_threshold: 0.128,
            panic_threshold: 1000.0,
            panic_allow_first: false,
            stepout: 300.0,
            makestep: None,
            minpoll: PollInterval::DEFAULT_MIN,
            maxpoll: PollInterval::DEFAULT_MAX,
            wander: 3e-9,
            max_slew_ppm: DEFAULT_MAX_SLEW_PPM,
            correction_ratio: CORRECTION_RATIO,
            kind: DisciplineKind::Kalman,
            step_limit: 0.0,
        }
    }
}

/// chrony's `makestep THRESHOLD LIMIT`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MakeStep {
    /// Step at once when |offset| is above this (s).
    pub threshold: f64,
    /// ... during this many first updates.
    pub limit: u32,
}

/// One raw sample from one source, the input of [`Discipline::update_sample`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measurement {
    /// Offset θ (s), server minus us, as computed from the four timestamps.
    pub offset: f64,
    /// 1σ error of `offset` (s), e.g. from [`DelayNoise::add`].
    pub sigma: f64,
    /// Round-trip delay δ (s). θ is our offset at the middle of the exchange, δ/2 before the
    /// sample is handed over; the discipline moves it to `now` with the rates it knows.
    pub delay: f64,
}

/// Samples remembered by [`DelayNoise`] to find a source's minimum round trip.
pub const DELAY_WINDOW: usize = 64;
/// Floor (s) of a sample's error: the minimum-delay sample itself carries some queueing and
/// timestamping error, so even a sample at the minimum is not exact.
const SAMPLE_FLOOR: f64 = 5e-6;

/// Per-source error model of raw samples from their round-trip delay (the idea behind chrony's
/// per-sample weighting and RFC 5905's minimum-delay filter).
///
/// Queueing only ever adds delay, and a sample's offset error is at most half its extra delay
/// e = δ − δmin (all of it on one leg). With independent queues on the two legs the extra delay
/// splits evenly at random, so the error is about uniform on ±e/2: σ = e/√12. δmin is the least
/// delay among the last [`DELAY_WINDOW`] samples (a shorter path is learned at once, a longer
/// one within that many polls), and is itself above the true base delay by its own queueing,
/// estimated as mean excess/√n over the n samples held. Keep one per source; reset it when the
/// source moves to another address.
#[derive(Debug, Clone, PartialEq)]
pub struct DelayNoise {
    delays: [f64; DELAY_WINDOW],
    len: usize,
    next: usize,
}

impl Default for DelayNoise {
    fn default() -> Self {
        Self::new()
    }
}

impl DelayNoise {
    /// An empty history.
    pub fn new() -> Self {
        DelayNoise { delays: [0.0; DELAY_WINDOW], len: 0, next: 0 }
    }

    /// Forgets the history (the source moved).
    pub fn reset(&mut self) {
        *self = DelayNoise::new();
    }

    /// The least delay (s) in the history, if any.
    pub fn min_delay(&self) -> Option<f64> {
        self.delays[..self.len].iter().copied().reduce(f64::min)
    }

    /// Records a sample's round trip `delay` (s) and returns the 1σ error (s) of its offset.
    /// A non-finite delay is not recorded and gets an infinite σ (the sample is useless).
    pub fn add(&mut self, delay: f64) -> f64 {
        if !delay.is_finite() {
            return f64::INFINITY;
        }
        let delay = delay.max(0.0);
        self.delays[self.next] = delay;
        self.next = (self.next + 1) % DELAY_WINDOW;
        self.len = (self.len + 1).min(DELAY_WINDOW);
        let window = &self.delays[..self.len];
        let min = window.iter().copied().fold(delay, f64::min);
        let mean_excess = window.iter().map(|d| d - min).sum::<f64>() / self.len as f64;
        // The minimum itself is above the true base delay by the least queueing in the window;
        // a sample's error bound is its excess plus that. For queues whose density grows from
        // zero (the sum of two exponential legs) the least of n is ~ mean/√n: 0.25 × mean excess
        // at 16 samples (the value measured to give normalized errors of RMS 1 on the simulated
        // LAN and WAN), 0.125 at 64, and the first samples of a source count as the vague
        // estimates they are (docs/discipline.md).
        let base_q = mean_excess / (self.len as f64).sqrt();
        let bound = delay - min + base_q;
        (bound * bound / 12.0 + SAMPLE_FLOOR * SAMPLE_FLOOR).sqrt()
    }
}

/// Discipline state, after RFC 5905 §12 `local_clock`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisciplineState {
    /// NSET: no offset seen yet.
    Unset,
    /// FREQ: phase is tracked but the frequency is not known well yet (no drift file).
    Freq,
    /// SPIK: an offset beyond the step threshold was seen; waiting for `stepout`.
    Spike,
    /// SYNC: phase and frequency are tracked.
    Sync,
}

impl DisciplineState {
    /// A stable lower-case name for displays and JSON.
    pub fn name(self) -> &'static str {
        match self {
            DisciplineState::Unset => "unset",
            DisciplineState::Freq => "freq",
            DisciplineState::Spike => "spike",
            DisciplineState::Sync => "sync",
        }
    }
}

/// Frequency uncertainty (1σ, s/s) at or below which FREQ becomes SYNC: 1 ppm, what a drift
/// file gives.
const FREQ_KNOWN: f64 = 1e-6;
/// Frequency uncertainty (s/s) assumed from a drift file: temperature moves a crystal's
/// frequency by about 1 ppm between runs.
const DRIFT_FILE_SIGMA: f64 = 1e-6;
/// Frequency uncertainty (s/s) with no drift file: the whole ±500 ppm range.
const NO_DRIFT_SIGMA: f64 = 500e-6;
/// White phase noise of the local clock (s/√s): timestamping noise between updates.
const PHASE_NOISE: f64 = 1e-8;
/// Floor for the measurement noise (s): samples are never trusted below 100 ns.
const MIN_NOISE: f64 = 1e-7;
/// Prior for the measurement noise (s, 1σ) before innovations have been seen: a single sample
/// can be off by its whole queueing delay, and the caller's jitter is zero while its filter
/// holds one sample. Counts as one innovation in the running mean, so it fades quickly.
const PRIOR_NOISE: f64 = 1e-3;
/// Weight of one innovation in the measurement-noise estimate (1/N, N = 16 updates).
const NOISE_GAIN: f64 = 1.0 / 16.0;
/// An innovation beyond this many standard deviations is held as an outlier ...
const GATE_SIGMAS: f64 = 8.0;
/// ... but only this many in a row: then the filter reopens (the world really changed).
const MAX_GATED: u32 = 3;
/// RFC 5905 PGATE: |offset| below this multiple of the jitter counts as "quiet" for polling.
const PGATE: f64 = 4.0;
/// RFC 5905 LIMIT: hysteresis of the poll-adjust counter.
const POLL_LIMIT: i32 = 30;
/// Longest interval (s) used in a prediction; beyond it the state is stale anyway, and the
/// clamp keeps the covariance finite after any outage.
const MAX_DT: f64 = 1e7;

/// What one update gets: a combined offset or a raw sample, and how noisy it is.
#[derive(Debug, Clone, Copy)]
enum Input {
    /// A combined offset from selection, with the system jitter (≥ [`MIN_NOISE`]).
    Combined { jitter: f64 },
    /// A raw sample with its own σ (≥ [`MIN_NOISE`]) and round trip (0..=1 s).
    Sample { sigma: f64, delay: f64 },
}

impl Input {
    fn noise(self) -> f64 {
        match self {
            Input::Combined { jitter } => jitter,
            Input::Sample { sigma, .. } => sigma,
        }
    }
}

/// A clock discipline: the production Kalman filter, or (research builds) RFC 5905's loop for
/// comparison. Every method dispatches to the algorithm; callers never check which it is.
#[derive(Debug, Clone)]
#[allow(
    clippy::large_enum_variant,
    reason = "one discipline per node, created once and never moved: boxing the production \
              variant would only add an indirection"
)]
pub enum Discipline {
    /// The two-state Kalman filter.
    Kalman(Kalman),
    /// RFC 5905's hybrid PLL/FLL.
    #[cfg(feature = "research")]
    RfcPllFll(Box<pll::PllFll>),
}

/// Calls `$method` on whichever algorithm `$self` holds.
macro_rules! dispatch {
    ($self:expr, $d:ident => $body:expr) => {
        match $self {
            Discipline::Kalman($d) => $body,
            #[cfg(feature = "research")]
            Discipline::RfcPllFll($d) => $body,
        }
    };
}

impl Discipline {
    /// A new discipline of `config.kind`. `initial_freq_ppm` is the drift file's frequency.
    pub fn new(config: DisciplineConfig, initial_freq_ppm: Option<f64>) -> Self {
        match config.kind {
            DisciplineKind::Kalman => Discipline::Kalman(Kalman::new(config, initial_freq_ppm)),
            #[cfg(feature = "research")]
            DisciplineKind::RfcPllFll => {
                Discipline::RfcPllFll(Box::new(pll::PllFll::new(config, initial_freq_ppm)))
            }
        }
    }

    /// The current state.
    pub fn state(&self) -> DisciplineState {
        dispatch!(self, d => d.state())
    }

    /// The frequency correction currently set (ppm); positive makes the clock run faster.
    pub fn frequency_ppm(&self) -> f64 {
        dispatch!(self, d => d.frequency_ppm())
    }

    /// 1σ uncertainty of the frequency estimate (ppm).
    pub fn frequency_error_ppm(&self) -> f64 {
        dispatch!(self, d => d.frequency_error_ppm())
    }

    /// The estimated measurement noise (s, 1σ).
    pub fn jitter(&self) -> f64 {
        dispatch!(self, d => d.jitter())
    }

    /// The poll interval the discipline would like, within its `minpoll..=maxpoll`.
    pub fn suggested_poll(&self) -> PollInterval {
        dispatch!(self, d => d.suggested_poll())
    }

    /// Whether the frequency is known well enough to be worth saving in the drift file.
    pub fn frequency_settled(&self) -> bool {
        self.state() == DisciplineState::Sync
    }

    /// The rate set and its exact model.
    pub fn slewer(&self) -> &Slewer {
        dispatch!(self, d => d.slewer())
    }

    /// When the running slew ends: [`Discipline::handle_timeout`] is due then. `None`: no slew.
    pub fn poll_timeout(&self) -> Option<Instant> {
        dispatch!(self, d => d.poll_timeout())
    }

    /// Ends the running slew once its time has come (the rate returns to the frequency); a
    /// no-op before, so spurious calls are harmless.
    pub fn handle_timeout(&mut self, now: Instant) -> ClockAction {
        dispatch!(self, d => d.handle_timeout(now))
    }

    /// A combined offset (the RFC 5905 interface); see [`Kalman::update`].
    pub fn update(
        &mut self,
        now: Instant,
        offset: f64,
        jitter: f64,
        poll: PollInterval,
    ) -> ClockAction {
        dispatch!(self, d => d.update(now, offset, jitter, poll))
    }

    /// One raw sample of a surviving source; see [`Kalman::update_sample`].
    pub fn update_sample(&mut self, now: Instant, m: Measurement) -> ClockAction {
        match self {
            Discipline::Kalman(d) => d.update_sample(now, m),
            #[cfg(feature = "research")]
            Discipline::RfcPllFll(p) => {
                if !m.sigma.is_finite() || !m.delay.is_finite() {
                    return ClockAction::None;
                }
                // Not the RFC's input; treated as a combined offset at the loop's own poll.
                let poll = p.suggested_poll();
                p.update(now, m.offset, m.sigma, poll)
            }
        }
    }
}

/// The two-state Kalman discipline (phase and frequency). See the module docs.
#[derive(Debug, Clone)]
pub struct Kalman {
    config: DisciplineConfig,
    state: DisciplineState,
    /// Estimated offset θ (s) at `last`.
    x: f64,
    /// Estimated natural rate of change of θ (s/s) without correction; the frequency
    /// correction to set is `y`.
    y: f64,
    /// Covariance of (x, y).
    p: [[f64; 2]; 2],
    /// Measurement noise variance estimate (s²).
    r: f64,
    last: Option<Instant>,
    /// The rate we set and its exact model: what correction was applied.
    slewer: Slewer,
    /// Correction of the model at `last`.
    model_at_last: f64,
    /// The poll interval (s) of the latest update: the `I` of the correction time.
    interval: f64,
    updates: u32,
    /// Innovations seen by the noise estimate.
    noise_samples: u32,
    spike_since: Option<Instant>,
    gated: u32,
    poll: PollInterval,
    poll_counter: i32,
    /// Sum of |steps| taken so far (s).
    stepped: f64,
}

impl Kalman {
    /// A new discipline. `initial_freq_ppm` is the drift file's frequency, if any.
    pub fn new(config: DisciplineConfig, initial_freq_ppm: Option<f64>) -> Self {
        let initial = initial_freq_ppm.filter(|f| f.is_finite());
        let slewer = Slewer::new(initial.unwrap_or(0.0), config.max_slew_ppm);
        // The drift file holds the kernel's frequency; y is the correction it makes per second
        // of the (slewed) monotonic clock, r / (1 + r).
        let (y, sigma_y) = match initial {
            Some(_) => (slewer.base().correction(), DRIFT_FILE_SIGMA),
            None => (0.0, NO_DRIFT_SIGMA),
        };
        let minpoll = config.minpoll.min(config.maxpoll);
        Kalman {
            config,
            state: DisciplineState::Unset,
            x: 0.0,
            y,
            p: [[0.0, 0.0], [0.0, sigma_y * sigma_y]],
            r: 0.0,
            last: None,
            slewer,
            model_at_last: 0.0,
            interval: minpoll.as_secs_f64(),
            updates: 0,
            noise_samples: 0,
            spike_since: None,
            gated: 0,
            poll: minpoll,
            poll_counter: 0,
            stepped: 0.0,
        }
    }

    /// The current state.
    pub fn state(&self) -> DisciplineState {
        self.state
    }

    /// The frequency correction currently set (ppm), without any slew in progress; positive
    /// makes the clock run faster.
    pub fn frequency_ppm(&self) -> f64 {
        self.slewer.base().ppm()
    }

    /// The rate and its model.
    pub fn slewer(&self) -> &Slewer {
        &self.slewer
    }

    /// When the running slew ends ([`Kalman::handle_timeout`] is due then).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.slewer.poll_timeout()
    }

    /// Ends the running slew once its time has come (a no-op before).
    pub fn handle_timeout(&mut self, now: Instant) -> ClockAction {
        self.slewer.handle_timeout(now)
    }

    /// 1σ uncertainty of the frequency estimate (ppm).
    pub fn frequency_error_ppm(&self) -> f64 {
        self.p[1][1].max(0.0).sqrt() * 1e6
    }

    /// The estimated measurement noise (s, 1σ): the system jitter as the filter sees it.
    pub fn jitter(&self) -> f64 {
        self.r.max(0.0).sqrt()
    }

    /// The poll interval the discipline would like, within `minpoll..=maxpoll`: longer while
    /// the offset stays small against the jitter, shorter when not (RFC 5905 §12 rule).
    pub fn suggested_poll(&self) -> PollInterval {
        self.poll
    }

    /// Whether the frequency is known well enough to be worth saving in the drift file.
    pub fn frequency_settled(&self) -> bool {
        self.state() == DisciplineState::Sync
    }

    /// Processes the combined offset `offset` (s, server minus us) with jitter `jitter` (s),
    /// measured at `now` with the sources polling at `poll`. Never panics: non-finite input is
    /// ignored ([`ClockAction::None`]).
    ///
    /// This is the RFC 5905 interface (one combined offset per selection round). The noise of
    /// the input is learned from the innovations, with `jitter` as a lower bound hint.
    /// [`Discipline::update_sample`] is the per-sample alternative and measured better.
    pub fn update(
        &mut self,
        now: Instant,
        offset: f64,
        jitter: f64,
        poll: PollInterval,
    ) -> ClockAction {
        let jitter = if jitter.is_finite() { jitter.abs().max(MIN_NOISE) } else { MIN_NOISE };
        self.process(now, offset, Input::Combined { jitter }, poll)
    }

    /// Processes one raw sample of a source that selection currently accepts (a survivor).
    /// Each sample is weighted by its own error ([`Measurement::sigma`], from its delay), so
    /// every exchange counts, and a sample with a long round trip counts little, instead of
    /// only the minimum-delay sample of each filter counting once. Never panics: a non-finite
    /// offset, σ or delay gives [`ClockAction::None`].
    pub fn update_sample(&mut self, now: Instant, m: Measurement) -> ClockAction {
        if !m.sigma.is_finite() || !m.delay.is_finite() {
            return ClockAction::None;
        }
        let sigma = m.sigma.abs().max(MIN_NOISE);
        // More than a second of round trip is not a sample worth moving in time precisely.
        let delay = m.delay.clamp(0.0, 1.0);
        let poll = self.poll;
        self.process(now, m.offset, Input::Sample { sigma, delay }, poll)
    }

    fn process(
        &mut self,
        now: Instant,
        offset: f64,
        input: Input,
        poll: PollInterval,
    ) -> ClockAction {
        if !offset.is_finite() {
            return ClockAction::None;
        }
        if let Some(last) = self.last {
            if now < last {
                // Time went backwards: a driver bug; do not feed a negative interval to the
                // filter.
                return ClockAction::None;
            }
        }
        let jitter = input.noise();
        let abs = offset.abs();
        match first_checks(&self.config, &mut self.updates, offset) {
            FirstCheck::Panic => return ClockAction::Panic { offset },
            FirstCheck::Step => return self.step(now, offset, jitter),
            FirstCheck::Continue => {}
        }
        let step = self.config.step_threshold;
        if step > 0.0 && abs > step {
            // RFC 5905: at start-up step at once; later only if the offset persists for
            // `stepout` (a single bad round must not jump the clock).
            if self.state == DisciplineState::Unset {
                return self.step(now, offset, jitter);
            }
            match self.spike_since {
                None => {
                    self.spike_since = Some(now);
                    self.state = DisciplineState::Spike;
                    return ClockAction::None;
                }
                Some(since) if now.secs_since(since) < self.config.stepout => {
                    return ClockAction::None;
                }
                Some(_) => return self.step(now, offset, jitter),
            }
        }
        if self.spike_since.take().is_some() {
            self.state = self.tracking_state();
        }

        self.interval = poll.as_secs_f64();
        let action = if self.last.is_none() {
            self.init(now, offset, input);
            self.correct(now)
        } else {
            match self.filter(now, offset, input) {
                true => self.correct(now),
                false => ClockAction::None,
            }
        };
        self.adjust_poll(poll);
        action
    }

    /// Steps by `offset`: the filter restarts its phase but keeps the frequency.
    fn step(&mut self, now: Instant, offset: f64, jitter: f64) -> ClockAction {
        let limit = self.config.step_limit;
        if limit > 0.0 && self.stepped + offset.abs() > limit {
            // Refused before anything changes: the filter keeps tracking as if nothing was
            // asked, and the driver reports the refusal.
            return ClockAction::Panic { offset };
        }
        self.stepped += offset.abs();
        self.spike_since = None;
        self.gated = 0;
        if self.last.is_none() {
            self.init(now, offset, Input::Combined { jitter });
        } else {
            self.predict(now);
            self.x = offset;
            self.p[0][0] = jitter * jitter;
            self.p[0][1] = 0.0;
            self.p[1][0] = 0.0;
            self.r = self.r.max(jitter * jitter);
        }
        self.state = self.tracking_state();
        self.poll = self.config.minpoll.min(self.config.maxpoll);
        self.poll_counter = 0;
        // `model_at_last` stays at the pre-step value, so the next prediction subtracts the
        // step like any other correction.
        self.slewer.step(now, offset)
    }

    fn init(&mut self, now: Instant, offset: f64, input: Input) {
        let jitter = input.noise();
        self.x = offset;
        self.p[0][0] = jitter * jitter;
        self.r = match input {
            Input::Combined { .. } => jitter.max(PRIOR_NOISE).powi(2),
            // A sample's σ comes with it; the estimate is only the jitter shown to the poll
            // rule and the user.
            Input::Sample { .. } => jitter * jitter,
        };
        self.last = Some(now);
        self.model_at_last = self.slewer.model().offset_at(now);
        self.state = self.tracking_state();
    }

    fn tracking_state(&self) -> DisciplineState {
        if self.p[1][1].sqrt() <= FREQ_KNOWN {
            DisciplineState::Sync
        } else {
            DisciplineState::Freq
        }
    }

    /// Moves the state to `now`: the natural drift, minus the correction our actions applied.
    fn predict(&mut self, now: Instant) {
        let Some(last) = self.last else { return };
        let dt = now.secs_since(last).clamp(0.0, MAX_DT);
        let corr = self.slewer.model().offset_at(now);
        let applied = corr - self.model_at_last;
        self.x += self.y * dt - applied;
        let q = self.config.wander.abs().min(1e-3);
        let qy = q * q;
        let qx = PHASE_NOISE * PHASE_NOISE;
        let [[p00, p01], [_, p11]] = self.p;
        let n00 = p00 + 2.0 * dt * p01 + dt * dt * p11 + qx * dt + qy * dt * dt * dt / 3.0;
        let n01 = p01 + dt * p11 + qy * dt * dt / 2.0;
        let n11 = p11 + qy * dt;
        self.p = [[n00, n01], [n01, n11]];
        self.last = Some(now);
        self.model_at_last = corr;
    }

    /// Kalman update with one measurement. Returns false when the sample was held as an
    /// outlier.
    fn filter(&mut self, now: Instant, offset: f64, input: Input) -> bool {
        self.predict(now);
        let (offset, r) = match input {
            // The caller's jitter is an upper bound on the noise of its best sample; the
            // innovation-based estimate `r` is what is actually seen. Use the estimate, but
            // never below a fraction of the caller's figure.
            Input::Combined { jitter } => {
                (offset, self.r.max(jitter * jitter / 64.0).max(MIN_NOISE * MIN_NOISE))
            }
            // θ was our offset at the middle of the exchange, δ/2 ago; since then it moved at
            // the natural rate minus the rate of our own correction (which includes a slew in
            // progress: 41 µs over a 1 ms round trip at tick-slew speed).
            Input::Sample { sigma, delay } => {
                let rate = self.y - self.slewer.model().rate_at(now);
                (offset + rate * delay / 2.0, sigma * sigma)
            }
        };
        let nu = offset - self.x;
        let s = self.p[0][0] + r;
        if nu * nu > GATE_SIGMAS * GATE_SIGMAS * s && self.state == DisciplineState::Sync {
            self.gated += 1;
            if self.gated <= MAX_GATED {
                return false;
            }
            // Several in a row: the clock or the sources changed; widen the uncertainty so
            // the filter follows instead of locking out.
            self.p[0][0] += nu * nu;
            self.p[1][1] += (nu / self.poll.as_secs_f64()).powi(2);
        }
        self.gated = 0;
        let r = match input {
            Input::Combined { jitter } => {
                // Innovation-based noise estimate (Mehra): E[ν²] = P + R. Updated before the
                // gain, so a sample far off the prediction widens its own error bar instead of
                // yanking the frequency (the caller's jitter is zero while a filter holds a
                // single sample). A running mean over the first updates, then an exponential
                // average. While the prediction itself is more uncertain than the noise
                // estimate, an innovation says little about the noise (it is mostly
                // prediction error), and subtracting P would drive the estimate to the floor:
                // learn only once the prediction is tighter.
                if self.p[0][0] < self.r {
                    self.noise_samples = self.noise_samples.saturating_add(1);
                    let gain = (1.0 / f64::from(self.noise_samples + 1)).max(NOISE_GAIN);
                    let sample_r = (nu * nu - self.p[0][0]).max(MIN_NOISE * MIN_NOISE);
                    self.r += (sample_r - self.r) * gain;
                }
                self.r.max(jitter * jitter / 64.0).max(MIN_NOISE * MIN_NOISE)
            }
            Input::Sample { .. } => {
                // The sample brings its own σ; `r` only tracks it for `jitter()`.
                self.r += (r - self.r) * NOISE_GAIN;
                r
            }
        };
        let s = self.p[0][0] + r;
        let k0 = self.p[0][0] / s;
        let k1 = self.p[0][1] / s;
        self.x += k0 * nu;
        self.y += k1 * nu;
        let [[p00, p01], [_, p11]] = self.p;
        self.p = [[(1.0 - k0) * p00, (1.0 - k0) * p01], [(1.0 - k0) * p01, p11 - k1 * p01]];
        if self.state == DisciplineState::Freq {
            self.state = self.tracking_state();
        }
        true
    }

    /// The rate for the state just estimated: the frequency `y`, plus the phase `x` removed
    /// over the correction time (see [`CORRECTION_RATIO`]), at most at the maximum slew rate.
    fn correct(&mut self, now: Instant) -> ClockAction {
        let sigma = self.p[0][0].max(0.0).sqrt().max(MIN_NOISE);
        let ratio = self.config.correction_ratio;
        let ratio = if ratio.is_finite() && ratio >= 0.0 { ratio } else { CORRECTION_RATIO };
        let duration = ratio * sigma * self.interval / self.x.abs();
        self.slewer.correct(now, self.y, self.x, duration)
    }

    /// RFC 5905 §12 poll adjustment, on the filtered offset against the measured jitter.
    fn adjust_poll(&mut self, _current: PollInterval) {
        let (min, max) = (self.config.minpoll.min(self.config.maxpoll), self.config.maxpoll);
        let exp = i32::from(self.poll.as_log2().max(1));
        if self.x.abs() < PGATE * self.jitter() {
            self.poll_counter += exp;
            if self.poll_counter >= POLL_LIMIT {
                self.poll_counter = 0;
                self.poll = self.poll.inc(max);
            }
        } else {
            self.poll_counter -= 2 * exp;
            if self.poll_counter <= -POLL_LIMIT {
                self.poll_counter = 0;
                self.poll = self.poll.dec(min);
            }
        }
    }
}

/// The outcome of [`first_checks`].
pub(crate) enum FirstCheck {
    /// Beyond the panic threshold: refuse.
    Panic,
    /// chrony's `makestep` applies: step at once.
    Step,
    /// Neither: the discipline's own step/stepout and tracking rules decide.
    Continue,
}

/// The checks every discipline makes first, in this order: the panic threshold (except on the
/// very first update with `panic_allow_first`, ntpd's `-g`), then counting the update, then
/// chrony's `makestep` during the first LIMIT updates.
pub(crate) fn first_checks(
    config: &DisciplineConfig,
    updates: &mut u32,
    offset: f64,
) -> FirstCheck {
    let abs = offset.abs();
    let first = *updates == 0;
    let panic = config.panic_threshold;
    if panic > 0.0 && abs > panic && !(first && config.panic_allow_first) {
        return FirstCheck::Panic;
    }
    *updates = updates.saturating_add(1);
    match config.makestep {
        Some(ms) if *updates <= ms.limit && abs > ms.threshold => FirstCheck::Step,
        _ => FirstCheck::Continue,
    }
}

/// Why a drift file could not be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum DriftError {
    /// No number in the file.
    #[error("drift file is empty")]
    Empty,
    /// The first word is not a number.
    #[error("drift file does not hold a number: {0:?}")]
    NotANumber(String),
    /// The value is beyond ±500 ppm (or not finite): a corrupt file, not a clock.
    #[error("drift file frequency {0} ppm is out of range (±500 ppm)")]
    OutOfRange(f64),
}

/// Formats a frequency (ppm) as ntpd's drift file does: one number and a newline.
pub fn format_drift(freq_ppm: f64) -> String {
    let f = if freq_ppm.is_finite() { freq_ppm.clamp(-MAX_FREQ_PPM, MAX_FREQ_PPM) } else { 0.0 };
    format!("{f:.3}\n")
}

/// Parses a drift file: the first whitespace-separated word of the first line, in ppm. Later
/// words are ignored (chrony's format adds a skew after the frequency).
pub fn parse_drift(text: &str) -> Result<f64, DriftError> {
    let word = text.lines().next().and_then(|l| l.split_whitespace().next());
    let Some(word) = word else { return Err(DriftError::Empty) };
    let f: f64 =
        word.parse().map_err(|_| DriftError::NotANumber(word.chars().take(32).collect()))?;
    if !f.is_finite() || f.abs() > MAX_FREQ_PPM {
        return Err(DriftError::OutOfRange(f));
    }
    Ok(f)
}

impl fmt::Display for ClockAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClockAction::None => f.write_str("none"),
            ClockAction::Rate(rate) => {
                write!(
                    f,
                    "rate {:+.6} ppm (tick {} µs, freq {:+.6} ppm)",
                    rate.ppm(),
                    rate.tick_usec,
                    rate.freq_ppm()
                )
            }
            ClockAction::Step { offset, rate } => {
                write!(f, "step {offset:+.9} s, rate {:+.6} ppm", rate.ppm())
            }
            ClockAction::Panic { offset } => write!(f, "panic: offset {offset:+.3} s refused"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::RngSource;

    fn at(secs: f64) -> Instant {
        Instant::from_nanos((secs * 1e9) as u64)
    }

    const POLL: PollInterval = PollInterval::DEFAULT_MIN;

    /// Ends the slews due before `t` on `vc` as the node's timer does.
    fn timers(d: &mut Discipline, vc: &mut VirtualClock, t: Instant) {
        while let Some(end) = d.poll_timeout().filter(|e| *e <= t) {
            let a = d.handle_timeout(end);
            vc.apply(end, a);
        }
    }

    /// A clock with natural frequency error `ppm` (positive: fast) and initial error `e0`,
    /// corrected by a VirtualClock, polled every `poll` s with noiseless offsets. Returns the
    /// discipline and the final true offset (server minus us).
    fn run(d: &mut Discipline, e0: f64, ppm: f64, poll: f64, n: usize) -> f64 {
        let mut vc = VirtualClock::new();
        let mut theta = 0.0;
        for i in 0..n {
            let t = i as f64 * poll;
            timers(d, &mut vc, at(t));
            theta = -(e0 + ppm * 1e-6 * t + vc.offset_at(at(t)));
            let a = d.update(at(t), theta, 1e-5, POLL);
            vc.apply(at(t), a);
        }
        theta
    }

    #[test]
    fn slews_below_step_threshold_and_steps_above_at_start() {
        let mut d = Discipline::new(DisciplineConfig::default(), Some(0.0));
        assert!(matches!(d.update(at(0.0), 0.127, 1e-5, POLL), ClockAction::Rate(_)));
        let mut d = Discipline::new(DisciplineConfig::default(), Some(0.0));
        assert_eq!(
            d.update(at(0.0), 0.129, 1e-5, POLL),
            ClockAction::Step { offset: 0.129, rate: ClockRate::NOMINAL }
        );
        assert_eq!(d.state(), DisciplineState::Sync);
        let mut d = Discipline::new(DisciplineConfig::default(), None);
        assert!(matches!(d.update(at(0.0), 0.129, 1e-5, POLL), ClockAction::Step { .. }));
        assert_eq!(d.state(), DisciplineState::Freq);
    }

    #[test]
    fn step_zero_never_steps() {
        let cfg = DisciplineConfig { step_threshold: 0.0, ..Default::default() };
        let mut d = Discipline::new(cfg, Some(0.0));
        let mut vc = VirtualClock::new();
        for i in 0..5 {
            let t = at(i as f64 * 64.0);
            timers(&mut d, &mut vc, t);
            let a = d.update(t, 5.0 - vc.offset_at(t), 1e-5, POLL);
            assert!(!matches!(a, ClockAction::Step { .. } | ClockAction::Panic { .. }), "{a:?}");
            vc.apply(t, a);
        }
        // 5 s at 83 333 ppm: 65 s of slewing, then back to the frequency.
        assert!(vc.offset_at(at(400.0)) > 4.99, "{}", vc.offset_at(at(400.0)));
    }

    #[test]
    fn stepout_needs_persistence() {
        let mut d = Discipline::new(DisciplineConfig::default(), Some(0.0));
        let _ = run(&mut d, 0.0, 0.0, 64.0, 20);
        let t0 = 20.0 * 64.0;
        // One spike, then back to normal: no step, back to SYNC.
        assert_eq!(d.update(at(t0), 0.5, 1e-5, POLL), ClockAction::None);
        assert_eq!(d.state(), DisciplineState::Spike);
        assert_ne!(d.update(at(t0 + 64.0), 0.0, 1e-5, POLL), ClockAction::Panic { offset: 0.0 });
        assert_eq!(d.state(), DisciplineState::Sync);
        // A persistent offset: held until stepout (300 s), then stepped.
        let t1 = t0 + 128.0;
        assert_eq!(d.update(at(t1), 0.5, 1e-5, POLL), ClockAction::None);
        assert_eq!(d.update(at(t1 + 256.0), 0.5, 1e-5, POLL), ClockAction::None);
        assert!(matches!(
            d.update(at(t1 + 320.0), 0.5, 1e-5, POLL),
            ClockAction::Step { offset, .. } if offset == 0.5
        ));
    }

    #[test]
    fn makestep_limit() {
        let cfg = DisciplineConfig {
            makestep: Some(MakeStep { threshold: 0.01, limit: 3 }),
            ..Default::default()
        };
        let mut d = Discipline::new(cfg, Some(0.0));
        assert!(matches!(d.update(at(0.0), 0.001, 1e-5, POLL), ClockAction::Rate(_)));
        assert!(matches!(
            d.update(at(2.0), 0.05, 1e-5, POLL),
            ClockAction::Step { offset, .. } if offset == 0.05
        ));
        assert!(!matches!(d.update(at(4.0), 0.0, 1e-5, POLL), ClockAction::Step { .. }));
        // Fourth update: beyond the limit, 50 ms is slewed.
        assert!(matches!(d.update(at(6.0), 0.05, 1e-5, POLL), ClockAction::Rate(_)));
    }

    #[test]
    fn panic_threshold_refuses() {
        let mut d = Discipline::new(DisciplineConfig::default(), None);
        assert_eq!(d.update(at(0.0), 2000.0, 1e-5, POLL), ClockAction::Panic { offset: 2000.0 });
        assert_eq!(d.state(), DisciplineState::Unset);
        let cfg = DisciplineConfig { panic_allow_first: true, ..Default::default() };
        let mut d = Discipline::new(cfg, None);
        assert!(matches!(
            d.update(at(0.0), 2000.0, 1e-5, POLL),
            ClockAction::Step { offset, .. } if offset == 2000.0
        ));
        assert!(matches!(d.update(at(64.0), -2000.0, 1e-5, POLL), ClockAction::Panic { .. }));
    }

    #[test]
    fn accumulated_steps_are_bounded() {
        let cfg = DisciplineConfig {
            step_limit: 1.0,
            makestep: Some(MakeStep { threshold: 0.1, limit: u32::MAX }),
            ..Default::default()
        };
        let mut d = Discipline::new(cfg, Some(0.0));
        assert!(matches!(
            d.update(at(0.0), 0.6, 1e-5, POLL),
            ClockAction::Step { offset, .. } if offset == 0.6
        ));
        // 0.6 + 0.5 > 1 s: refused, whatever makestep says.
        assert_eq!(d.update(at(64.0), -0.5, 1e-5, POLL), ClockAction::Panic { offset: -0.5 });
        // A step that still fits is taken.
        assert!(matches!(
            d.update(at(128.0), 0.3, 1e-5, POLL),
            ClockAction::Step { offset, .. } if offset == 0.3
        ));
        assert!(matches!(d.update(at(192.0), 0.2, 1e-5, POLL), ClockAction::Panic { .. }));
    }

    #[test]
    fn garbage_input_does_not_panic() {
        let mut d = Discipline::new(DisciplineConfig::default(), Some(f64::NAN));
        for (i, v) in [f64::NAN, f64::INFINITY, -f64::INFINITY, 1e300, -1e-300, 0.0, f64::MAX]
            .into_iter()
            .enumerate()
        {
            for j in [f64::NAN, -1.0, 0.0, f64::INFINITY, 1e300] {
                let a = d.update(at(i as f64), v, j, POLL);
                if let ClockAction::Rate(rate) = a {
                    assert!(rate.ppm().is_finite(), "{a:?}");
                }
            }
        }
        // Time going backwards is ignored.
        assert_eq!(d.update(at(0.0), 0.0, 1e-5, POLL), ClockAction::None);
        assert!(d.frequency_ppm().is_finite());
    }

    #[test]
    fn frequency_converges_without_drift_file() {
        let mut d = Discipline::new(DisciplineConfig::default(), None);
        let theta = run(&mut d, 0.01, 20.0, 64.0, 200);
        // The correction must cancel a +20 ppm clock: set -20 ppm.
        assert!((d.frequency_ppm() + 20.0).abs() < 0.01, "{}", d.frequency_ppm());
        assert!(theta.abs() < 1e-6, "{theta}");
        assert_eq!(d.state(), DisciplineState::Sync);
    }

    #[test]
    fn poll_lengthens_when_quiet() {
        let mut d = Discipline::new(DisciplineConfig::default(), Some(-1.0));
        let _ = run(&mut d, 0.0, 1.0, 64.0, 100);
        assert!(d.suggested_poll() > PollInterval::DEFAULT_MIN);
        assert!(d.suggested_poll() <= PollInterval::DEFAULT_MAX);
    }

    #[test]
    fn delay_noise_weights_by_excess_delay() {
        let mut n = DelayNoise::new();
        assert!(n.add(f64::NAN).is_infinite());
        assert_eq!(n.min_delay(), None);
        let at_min = n.add(0.001);
        assert!((at_min - SAMPLE_FLOOR).abs() < 1e-12, "{at_min}");
        let slow = n.add(0.0013);
        // Excess 300 µs, plus mean excess / √2 (150 µs / √2) for the minimum's own queueing,
        // uniform: σ = bound/√12.
        let bound = 300e-6 + 150e-6 / 2f64.sqrt();
        let expect = (bound * bound / 12.0 + SAMPLE_FLOOR * SAMPLE_FLOOR).sqrt();
        assert!((slow - expect).abs() < 1e-9, "{slow} {expect}");
        assert_eq!(n.min_delay(), Some(0.001));
        // The window forgets: after DELAY_WINDOW slower samples the old minimum is gone.
        for _ in 0..DELAY_WINDOW {
            n.add(0.002);
        }
        assert_eq!(n.min_delay(), Some(0.002));
        n.reset();
        assert_eq!(n.min_delay(), None);
    }

    #[test]
    fn samples_converge_and_garbage_is_ignored() {
        let mut d = Discipline::new(DisciplineConfig::default(), None);
        let mut vc = VirtualClock::new();
        for i in 0..300 {
            let t = i as f64 * 20.0;
            timers(&mut d, &mut vc, at(t));
            let theta = -(0.01 + 20e-6 * t + vc.offset_at(at(t)));
            let m = Measurement { offset: theta, sigma: 1e-5, delay: 0.002 };
            let a = d.update_sample(at(t), m);
            vc.apply(at(t), a);
        }
        assert!((d.frequency_ppm() + 20.0).abs() < 0.01, "{}", d.frequency_ppm());
        assert_eq!(d.state(), DisciplineState::Sync);
        let t = at(6000.0);
        for (offset, sigma, delay) in
            [(f64::NAN, 1e-5, 0.0), (0.0, f64::NAN, 0.0), (0.0, 1e-5, f64::INFINITY)]
        {
            let m = Measurement { offset, sigma, delay };
            assert_eq!(d.update_sample(t, m), ClockAction::None);
        }
        // Extreme but finite values do not produce non-finite actions.
        let m = Measurement { offset: 1e-3, sigma: 1e300, delay: -5.0 };
        if let ClockAction::Rate(rate) = d.update_sample(t, m) {
            assert!(rate.ppm().is_finite());
        }
    }

    #[test]
    fn fifty_ms_is_slewed_at_the_maximum_rate_in_under_a_second() {
        let mut d = Discipline::new(DisciplineConfig::default(), Some(0.0));
        let mut vc = VirtualClock::new();
        let m = Measurement { offset: 0.05, sigma: 1e-5, delay: 0.0 };
        let a = d.update_sample(at(0.0), m);
        vc.apply(at(0.0), a);
        let ClockAction::Rate(rate) = a else { panic!("{a:?}") };
        assert!(rate.tick_usec > 10_800, "through the tick: {rate:?}");
        // 50 ms at 83 333 ppm of the slewed clock: 0.65 s, then the frequency again.
        let end = d.poll_timeout().expect("a slew runs");
        assert!((end.secs_since(at(0.0)) - 0.65).abs() < 0.01, "{end:?}");
        timers(&mut d, &mut vc, at(1.0));
        assert!((vc.offset_at(end) - 0.05).abs() < 1e-9, "{}", vc.offset_at(end));
        assert_eq!(vc.rate(), ClockRate::NOMINAL);
        assert_eq!(d.poll_timeout(), None);
        // A configured maximum slew rate is honoured: 500 ppm takes 100 s.
        let cfg = DisciplineConfig { max_slew_ppm: 500.0, ..DisciplineConfig::default() };
        let mut d = Discipline::new(cfg, Some(0.0));
        let _ = d.update_sample(at(0.0), m);
        let secs = d.poll_timeout().expect("a slew runs").secs_since(at(0.0));
        assert!((secs - 100.05).abs() < 0.1, "{secs}");
    }

    /// Steady state on a LAN: every sample moves the rate by a few ppm at most (the
    /// correction of an offset near its own noise takes over a poll interval), never by the
    /// 500 ppm of an `adjtime` burst.
    #[test]
    fn steady_state_corrections_are_small_rates() {
        let mut d = Discipline::new(DisciplineConfig::default(), Some(-1.0));
        let mut vc = VirtualClock::new();
        vc.apply(at(0.0), ClockAction::Rate(ClockRate::from_ppm(-1.0)));
        let mut rng = crate::rng::SplitMix64::new(7);
        let mut worst: f64 = 0.0;
        for i in 0..2_000 {
            let t = f64::from(i) * 64.0 / 3.0;
            timers(&mut d, &mut vc, at(t));
            // ±20 µs of uniform noise, a clock 1 ppm fast.
            let noise = (rng.next_f64() - 0.5) * 40e-6;
            let theta = -(1e-6 * t + vc.offset_at(at(t))) + noise;
            let m = Measurement { offset: theta, sigma: 40e-6 / 12f64.sqrt(), delay: 0.0 };
            let a = d.update_sample(at(t), m);
            vc.apply(at(t), a);
            if i > 200 {
                let slew = (vc.rate().ppm() - d.frequency_ppm()).abs();
                worst = worst.max(slew);
            }
        }
        assert!(worst < 5.0, "largest slew {worst} ppm");
        assert!((d.frequency_ppm() + 1.0).abs() < 0.1, "{}", d.frequency_ppm());
    }

    #[test]
    fn drift_file_round_trip_and_garbage() {
        for f in [0.0, -12.345, 499.999, 0.125] {
            let text = format_drift(f);
            assert!(text.ends_with('\n'));
            assert!((parse_drift(&text).unwrap() - f).abs() < 5e-4);
        }
        assert_eq!(parse_drift("  -7.25 0.01\n"), Ok(-7.25));
        assert_eq!(parse_drift(""), Err(DriftError::Empty));
        assert_eq!(parse_drift("\n3.0"), Err(DriftError::Empty));
        assert!(matches!(parse_drift("garbage\n"), Err(DriftError::NotANumber(_))));
        assert!(matches!(parse_drift("NaN\n"), Err(DriftError::OutOfRange(_))));
        assert!(matches!(parse_drift("900\n"), Err(DriftError::OutOfRange(_))));
        assert_eq!(format_drift(f64::NAN), "0.000\n");
    }
}
