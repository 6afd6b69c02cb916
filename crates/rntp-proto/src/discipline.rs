//! The clock discipline: turns the combined offset from selection into clock corrections.
//!
//! # What it does
//! [`Discipline`] is a sans-IO state machine. Each call to [`Discipline::update`] gets the
//! current monotonic time and the combined offset θ (server minus us) with its jitter, and
//! returns a [`ClockAction`]: nothing, a slew (remaining phase to amortize plus the absolute
//! frequency correction to set), a step, or a refusal ([`ClockAction::Panic`]).
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
//! The filter knows exactly what corrections it asked for, because it replays its own actions
//! on a private [`VirtualClock`] — the same model the daemon's observe mode and the simulator
//! use. So the prediction of the next offset accounts for a slew still in progress.
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

/// The largest frequency correction we set, in ppm (the Linux kernel's limit, RFC 5905 MAXFREQ).
pub const MAX_FREQ_PPM: f64 = 500.0;
/// The kernel's `adjtime` slew rate, in ppm: how fast a pending phase correction is amortized.
pub const DEFAULT_SLEW_RATE_PPM: f64 = 500.0;
/// Slew rate (ppm) reachable by also adjusting the kernel tick (`adjtimex` `ADJ_TICK`): Linux
/// accepts a tick within ±10 % of nominal, i.e. up to 100 000 ppm; chrony uses 1/12 of it
/// (83 333 ppm) to leave room for the frequency correction. A daemon that sets
/// [`DisciplineConfig::slew_rate_ppm`] to this must implement such slews with `ADJ_TICK` (plus
/// `ADJ_FREQUENCY` for the remainder), ending them itself when the phase is done.
pub const TICK_SLEW_RATE_PPM: f64 = 83_333.0;

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
    /// How fast (ppm) the driver amortizes a [`ClockAction::Slew`]'s phase: 500 for plain
    /// `adjtime`/`ADJ_OFFSET`, up to [`TICK_SLEW_RATE_PPM`] when the driver slews by adjusting
    /// the tick. The discipline must know it to predict what its slews have done so far.
    pub slew_rate_ppm: f64,
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
            slew_rate_ppm: DEFAULT_SLEW_RATE_PPM,
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
pub const DELAY_WINDOW: usize = 16;
/// Queueing in the window's minimum-delay sample, as a fraction of the mean excess delay.
const MIN_QUEUE_FRACTION: f64 = 0.25;
/// Floor (s) of a sample's error: the minimum-delay sample itself carries some queueing and
/// timestamping error, so even a sample at the minimum is not exact.
const SAMPLE_FLOOR: f64 = 5e-6;

/// Per-source error model of raw samples from their round-trip delay (the idea behind chrony's
/// per-sample weighting and RFC 5905's minimum-delay filter).
///
/// Queueing only ever adds delay, and a sample's offset error is at most half its extra delay
/// e = δ − δmin (all of it on one leg). With independent queues on the two legs the extra delay
/// splits evenly at random, so the error is about uniform on ±e/2: σ = e/√12. δmin is the least
/// delay among the last [`DELAY_WINDOW`] samples, so a route change is learned within that many
/// polls. Keep one per source; reset it when the source moves to another address.
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
        // a sample's error bound is its excess plus that. Estimated as a fraction of the mean
        // excess: for exponential queues and 16 samples the expected least queueing is ~0.2×
        // the mean excess; 0.25 makes the normalized errors of the simulated LAN and WAN
        // samples RMS 1.0 (docs/discipline.md).
        let base_q = MIN_QUEUE_FRACTION * mean_excess;
        let bound = delay - min + base_q;
        (bound * bound / 12.0 + SAMPLE_FLOOR * SAMPLE_FLOOR).sqrt()
    }
}

/// What the driver must do to the clock.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ClockAction {
    /// Nothing (sample ignored, spike held, or bad input).
    None,
    /// Set the frequency correction to `freq_ppm` and amortize `offset` seconds of phase
    /// (replacing any phase correction still pending), as `adjtimex` + `adjtime` do.
    Slew {
        /// Phase to amortize (s); positive advances the clock.
        offset: f64,
        /// Absolute frequency correction (ppm); positive makes the clock run faster.
        freq_ppm: f64,
    },
    /// Step the clock by `offset` seconds (positive: forward) and cancel any pending slew.
    Step {
        /// The step (s).
        offset: f64,
    },
    /// The offset is beyond the panic threshold: refuse to touch the clock. The daemon logs it
    /// and exits (ntpd) or keeps running unsynchronized.
    Panic {
        /// The offending offset (s).
        offset: f64,
    },
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
    /// Our own replay of the actions we returned, to know what correction was applied.
    model: VirtualClock,
    /// Correction of `model` at `last`.
    model_at_last: f64,
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
        let (y, sigma_y) = match initial_freq_ppm.filter(|f| f.is_finite()) {
            Some(f) => (f.clamp(-MAX_FREQ_PPM, MAX_FREQ_PPM) * 1e-6, DRIFT_FILE_SIGMA),
            None => (0.0, NO_DRIFT_SIGMA),
        };
        let mut model = VirtualClock::with_slew_rate(config.slew_rate_ppm);
        model.freq_ppm = y * 1e6;
        let minpoll = config.minpoll.min(config.maxpoll);
        Kalman {
            config,
            state: DisciplineState::Unset,
            x: 0.0,
            y,
            p: [[0.0, 0.0], [0.0, sigma_y * sigma_y]],
            r: 0.0,
            last: None,
            model,
            model_at_last: 0.0,
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

    /// The frequency correction currently set (ppm); positive makes the clock run faster.
    pub fn frequency_ppm(&self) -> f64 {
        self.model.freq_ppm
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

        let action = if self.last.is_none() {
            self.init(now, offset, input);
            self.action()
        } else {
            match self.filter(now, offset, input) {
                true => self.action(),
                false => ClockAction::None,
            }
        };
        self.adjust_poll(poll);
        self.apply_own(now, action);
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
        let action = ClockAction::Step { offset };
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
        self.apply_own(now, action);
        action
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
        self.model_at_last = self.model.offset_at(now);
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
        let corr = self.model.offset_at(now);
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
                let rate = self.y - self.model.rate_at(now);
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

    fn action(&self) -> ClockAction {
        let freq_ppm = (self.y * 1e6).clamp(-MAX_FREQ_PPM, MAX_FREQ_PPM);
        ClockAction::Slew { offset: self.x, freq_ppm }
    }

    fn apply_own(&mut self, now: Instant, action: ClockAction) {
        if self.last.is_some() {
            // Account the correction so far under the old settings before changing them.
            // `model_at_last` stays at the pre-action value, so a step taken now is subtracted
            // by the next prediction like any other correction.
            self.predict(now);
        }
        self.model.apply(now, action);
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

/// A model of a disciplined clock: the correction (s) applied to a free-running clock by a
/// sequence of [`ClockAction`]s, with the kernel's slew semantics (frequency set at once, phase
/// amortized at a limited rate, a new slew replaces the pending one).
///
/// Used by the daemon in observe-only mode (what rntpd would have done), by the simulator for
/// the client clock, and inside [`Discipline`] to know what it has asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct VirtualClock {
    /// Correction accumulated up to `at` (s).
    phase: f64,
    /// Frequency correction (ppm).
    freq_ppm: f64,
    /// Phase still to slew (s).
    pending: f64,
    /// Slew rate (s/s).
    slew_rate: f64,
    at: Instant,
}

impl Default for VirtualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl VirtualClock {
    /// A clock with no correction, slewing at the kernel's 500 ppm.
    pub fn new() -> Self {
        Self::with_slew_rate(DEFAULT_SLEW_RATE_PPM)
    }

    /// A clock that slews at `ppm` (e.g. chrony's 83 333 ppm tick-based slewing).
    pub fn with_slew_rate(ppm: f64) -> Self {
        let ppm = if ppm.is_finite() && ppm > 0.0 { ppm } else { DEFAULT_SLEW_RATE_PPM };
        VirtualClock {
            phase: 0.0,
            freq_ppm: 0.0,
            pending: 0.0,
            slew_rate: ppm * 1e-6,
            at: Instant::ZERO,
        }
    }

    /// The frequency correction currently set (ppm).
    pub fn frequency_ppm(&self) -> f64 {
        self.freq_ppm
    }

    /// Phase correction still to be slewed (s) at `now`.
    pub fn pending_at(&self, now: Instant) -> f64 {
        let dt = now.secs_since(self.at).max(0.0);
        let done = (self.slew_rate * dt).min(self.pending.abs());
        self.pending - done.copysign(self.pending)
    }

    /// Total correction (s) applied to the free-running clock by `now`: the clock reads the
    /// free-running value plus this. `now` before the last action is treated as that instant.
    pub fn offset_at(&self, now: Instant) -> f64 {
        let dt = now.secs_since(self.at).max(0.0);
        let slewed = (self.slew_rate * dt).min(self.pending.abs()).copysign(self.pending);
        self.phase + self.freq_ppm * 1e-6 * dt + slewed
    }

    /// The rate (s/s) at which the correction grows at `now`: frequency plus any slew.
    pub fn rate_at(&self, now: Instant) -> f64 {
        let slewing = self.pending_at(now) != 0.0;
        self.freq_ppm * 1e-6 + if slewing { self.slew_rate.copysign(self.pending) } else { 0.0 }
    }

    /// Applies an action at `now`. Non-finite values are ignored.
    pub fn apply(&mut self, now: Instant, action: ClockAction) {
        let now = now.max(self.at);
        self.phase = self.offset_at(now);
        self.pending = self.pending_at(now);
        self.at = now;
        match action {
            ClockAction::Slew { offset, freq_ppm } => {
                if offset.is_finite() {
                    self.pending = offset;
                }
                if freq_ppm.is_finite() {
                    self.freq_ppm = freq_ppm.clamp(-MAX_FREQ_PPM, MAX_FREQ_PPM);
                }
            }
            ClockAction::Step { offset } if offset.is_finite() => {
                self.phase += offset;
                self.pending = 0.0;
            }
            _ => {}
        }
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
            ClockAction::Slew { offset, freq_ppm } => {
                write!(f, "slew {offset:+.9} s, freq {freq_ppm:+.3} ppm")
            }
            ClockAction::Step { offset } => write!(f, "step {offset:+.9} s"),
            ClockAction::Panic { offset } => write!(f, "panic: offset {offset:+.3} s refused"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: f64) -> Instant {
        Instant::from_nanos((secs * 1e9) as u64)
    }

    const POLL: PollInterval = PollInterval::DEFAULT_MIN;

    /// A clock with natural frequency error `ppm` (positive: fast) and initial error `e0`,
    /// corrected by a VirtualClock, polled every `poll` s with noiseless offsets. Returns the
    /// discipline and the final true offset (server minus us).
    fn run(d: &mut Discipline, e0: f64, ppm: f64, poll: f64, n: usize) -> f64 {
        let mut vc = VirtualClock::new();
        let mut theta = 0.0;
        for i in 0..n {
            let t = i as f64 * poll;
            theta = -(e0 + ppm * 1e-6 * t + vc.offset_at(at(t)));
            let a = d.update(at(t), theta, 1e-5, POLL);
            vc.apply(at(t), a);
        }
        theta
    }

    #[test]
    fn slews_below_step_threshold_and_steps_above_at_start() {
        let mut d = Discipline::new(DisciplineConfig::default(), Some(0.0));
        assert!(matches!(d.update(at(0.0), 0.127, 1e-5, POLL), ClockAction::Slew { .. }));
        let mut d = Discipline::new(DisciplineConfig::default(), Some(0.0));
        assert_eq!(d.update(at(0.0), 0.129, 1e-5, POLL), ClockAction::Step { offset: 0.129 });
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
            let a = d.update(t, 5.0 - vc.offset_at(t), 1e-5, POLL);
            assert!(matches!(a, ClockAction::Slew { .. }), "{a:?}");
            vc.apply(t, a);
        }
    }

    #[test]
    fn stepout_needs_persistence() {
        let mut d = Discipline::new(DisciplineConfig::default(), Some(0.0));
        let _ = run(&mut d, 0.0, 0.0, 64.0, 20);
        let t0 = 20.0 * 64.0;
        // One spike, then back to normal: no step, back to SYNC.
        assert_eq!(d.update(at(t0), 0.5, 1e-5, POLL), ClockAction::None);
        assert_eq!(d.state(), DisciplineState::Spike);
        assert!(matches!(d.update(at(t0 + 64.0), 0.0, 1e-5, POLL), ClockAction::Slew { .. }));
        assert_eq!(d.state(), DisciplineState::Sync);
        // A persistent offset: held until stepout (300 s), then stepped.
        let t1 = t0 + 128.0;
        assert_eq!(d.update(at(t1), 0.5, 1e-5, POLL), ClockAction::None);
        assert_eq!(d.update(at(t1 + 256.0), 0.5, 1e-5, POLL), ClockAction::None);
        assert_eq!(d.update(at(t1 + 320.0), 0.5, 1e-5, POLL), ClockAction::Step { offset: 0.5 });
    }

    #[test]
    fn makestep_limit() {
        let cfg = DisciplineConfig {
            makestep: Some(MakeStep { threshold: 0.01, limit: 3 }),
            ..Default::default()
        };
        let mut d = Discipline::new(cfg, Some(0.0));
        assert!(matches!(d.update(at(0.0), 0.001, 1e-5, POLL), ClockAction::Slew { .. }));
        assert_eq!(d.update(at(2.0), 0.05, 1e-5, POLL), ClockAction::Step { offset: 0.05 });
        assert!(matches!(d.update(at(4.0), 0.0, 1e-5, POLL), ClockAction::Slew { .. }));
        // Fourth update: beyond the limit, 50 ms is slewed.
        assert!(matches!(d.update(at(6.0), 0.05, 1e-5, POLL), ClockAction::Slew { .. }));
    }

    #[test]
    fn panic_threshold_refuses() {
        let mut d = Discipline::new(DisciplineConfig::default(), None);
        assert_eq!(d.update(at(0.0), 2000.0, 1e-5, POLL), ClockAction::Panic { offset: 2000.0 });
        assert_eq!(d.state(), DisciplineState::Unset);
        let cfg = DisciplineConfig { panic_allow_first: true, ..Default::default() };
        let mut d = Discipline::new(cfg, None);
        assert_eq!(d.update(at(0.0), 2000.0, 1e-5, POLL), ClockAction::Step { offset: 2000.0 });
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
        assert_eq!(d.update(at(0.0), 0.6, 1e-5, POLL), ClockAction::Step { offset: 0.6 });
        // 0.6 + 0.5 > 1 s: refused, whatever makestep says.
        assert_eq!(d.update(at(64.0), -0.5, 1e-5, POLL), ClockAction::Panic { offset: -0.5 });
        // A step that still fits is taken.
        assert_eq!(d.update(at(128.0), 0.3, 1e-5, POLL), ClockAction::Step { offset: 0.3 });
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
                if let ClockAction::Slew { offset, freq_ppm } = a {
                    assert!(offset.is_finite() && freq_ppm.is_finite(), "{a:?}");
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
    fn virtual_clock_slews_at_rate_limit() {
        let mut vc = VirtualClock::new();
        vc.apply(at(0.0), ClockAction::Slew { offset: 0.05, freq_ppm: 10.0 });
        // 500 ppm + 10 ppm for 10 s.
        assert!((vc.offset_at(at(10.0)) - 0.0051).abs() < 1e-12);
        assert!((vc.offset_at(at(200.0)) - (0.05 + 0.002)).abs() < 1e-12);
        vc.apply(at(200.0), ClockAction::Step { offset: -1.0 });
        assert!((vc.offset_at(at(200.0)) - (0.052 - 1.0)).abs() < 1e-12);
        // A new slew replaces the pending one.
        vc.apply(at(200.0), ClockAction::Slew { offset: 0.01, freq_ppm: 0.0 });
        vc.apply(at(201.0), ClockAction::Slew { offset: -0.001, freq_ppm: 0.0 });
        assert!((vc.offset_at(at(1000.0)) - (0.052 - 1.0 + 0.0005 - 0.001)).abs() < 1e-12);
        vc.apply(at(1000.0), ClockAction::Slew { offset: f64::NAN, freq_ppm: 1e9 });
        assert_eq!(vc.frequency_ppm(), MAX_FREQ_PPM);
    }

    #[test]
    fn delay_noise_weights_by_excess_delay() {
        let mut n = DelayNoise::new();
        assert!(n.add(f64::NAN).is_infinite());
        assert_eq!(n.min_delay(), None);
        let at_min = n.add(0.001);
        assert!((at_min - SAMPLE_FLOOR).abs() < 1e-12, "{at_min}");
        let slow = n.add(0.0013);
        // Excess 300 µs, plus a quarter of the mean excess (150 µs) for the minimum's own
        // queueing: bound 337.5 µs, uniform, σ = bound/√12.
        let expect = ((337.5e-6f64).powi(2) / 12.0 + SAMPLE_FLOOR * SAMPLE_FLOOR).sqrt();
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
        if let ClockAction::Slew { offset, freq_ppm } = d.update_sample(t, m) {
            assert!(offset.is_finite() && freq_ppm.is_finite());
        }
    }

    #[test]
    fn fast_slew_is_modelled() {
        let cfg = DisciplineConfig { slew_rate_ppm: TICK_SLEW_RATE_PPM, ..Default::default() };
        let mut d = Discipline::new(cfg, Some(0.0));
        let mut vc = VirtualClock::with_slew_rate(TICK_SLEW_RATE_PPM);
        for i in 0..10 {
            let t = i as f64 * 2.0;
            let theta = 0.05 - vc.offset_at(at(t));
            let a = d.update_sample(at(t), Measurement { offset: theta, sigma: 1e-5, delay: 0.0 });
            vc.apply(at(t), a);
        }
        // 50 ms at 83 333 ppm takes 0.6 s: done after the first update.
        assert!((0.05 - vc.offset_at(at(20.0))).abs() < 1e-5, "{}", vc.offset_at(at(20.0)));
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
