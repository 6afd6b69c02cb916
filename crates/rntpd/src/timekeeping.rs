//! Keeping time: the core's [`Steering`] (selection with its start-up hold, per-sample
//! discipline, the applied-corrections model) plus the clock its actions go to. The simulator
//! drives the very same `Steering`, so what the accuracy benchmark measures is what runs here.
//!
//! # Observe-only
//! Nothing touches the system clock. Steering runs with [`Reference::FreeRunning`]: offsets are
//! measured against the free-running system clock and referred to the virtual clock, which
//! records what rntpd *would* have done (as `chronyd -x` does). rntpd's time is the system
//! clock plus the virtual correction; server mode serves it, `rntpctl status` reports it.
//!
//! # Control
//! Only with CAP_SYS_TIME and without `--observe`: [`Reference::Disciplined`], and every
//! action goes to [`rntp_sys::KernelClock`] (adjtime-style slews at 500 ppm, which the
//! discipline's clock model assumes).

use std::path::PathBuf;

use rntp_proto::assoc::{AssocId, Sample};
use rntp_proto::discipline::{ClockAction, DisciplineConfig, DisciplineState, VirtualClock};
use rntp_proto::select::{SelectConfig, Selection};
use rntp_proto::steer::{
    Combine, Feed, Reference, RoundOutcome, SourceInput, Steering, SteeringConfig, SteeringEvent,
};
use rntp_proto::time::Instant;
use rntp_proto::wire::LeapIndicator;
use rntp_sys::{KernelClock, KernelLeap};

/// How often the drift file is rewritten while running (and once more at exit).
const DRIFT_WRITE_INTERVAL: f64 = 3_600.0;
/// Consecutive falseticker rounds before a pool member is replaced. Rounds run after every
/// sample, so with 4 members at 64 s this is about two and a half minutes of disagreement:
/// long enough to ride out a bad sample or two.
const FALSETICKER_ROUNDS: u32 = 10;

/// Where the discipline's actions go.
pub enum ClockMode {
    /// Virtual clock only.
    Observe,
    /// The kernel clock (CAP_SYS_TIME).
    Control(KernelClock),
}

/// The steering and the clock it steers.
pub struct Timekeeper {
    mode: ClockMode,
    steering: Steering,
    driftfile: Option<PathBuf>,
    drift_written: Option<Instant>,
}

impl Timekeeper {
    /// A timekeeper with the given discipline (its `minpoll`/`maxpoll` must span the
    /// associations' poll bounds), starting from the drift file's frequency if any.
    pub fn new(
        mode: ClockMode,
        select: SelectConfig,
        discipline: DisciplineConfig,
        driftfile: Option<PathBuf>,
        initial_freq_ppm: Option<f64>,
    ) -> Self {
        let reference = match mode {
            ClockMode::Observe => Reference::FreeRunning,
            ClockMode::Control(_) => Reference::Disciplined,
        };
        let config = SteeringConfig {
            discipline,
            select,
            feed: Feed::Samples,
            combine: Combine::Select,
            reference,
            falseticker_rounds: FALSETICKER_ROUNDS,
        };
        let mut tk = Timekeeper {
            mode,
            steering: Steering::new(config, initial_freq_ppm),
            driftfile,
            drift_written: None,
        };
        // With a drift file, the first action sets the frequency.
        tk.execute();
        tk
    }

    /// `"observe"` or `"control"`.
    pub fn mode_name(&self) -> &'static str {
        match self.mode {
            ClockMode::Observe => "observe",
            ClockMode::Control(_) => "control",
        }
    }

    /// A sample from an association; `is_filter_best` when it is now its filter's best.
    pub fn handle_sample(
        &mut self,
        now: Instant,
        assoc: AssocId,
        s: &Sample,
        is_filter_best: bool,
    ) {
        self.steering.handle_sample(now, assoc, s, is_filter_best);
    }

    /// An association moved or stopped: forget what was learnt about it.
    pub fn handle_reset(&mut self, assoc: AssocId) {
        self.steering.handle_reset(assoc);
        self.steering.handle_source_change();
    }

    /// An association became unreachable or stopped: selection must run again.
    pub fn handle_source_change(&mut self) {
        self.steering.handle_source_change();
    }

    /// Whether [`Self::round`] has anything to do.
    pub fn wants_round(&self) -> bool {
        self.steering.wants_round()
    }

    /// One round over every association; executes the resulting clock actions.
    pub fn round(&mut self, now: Instant, inputs: &[SourceInput]) -> RoundOutcome {
        let outcome = self.steering.handle_round(now, inputs);
        self.execute();
        if outcome.updates() > 0 {
            if let (ClockMode::Control(kernel), Some(c)) =
                (&self.mode, self.steering.selection().and_then(|s| s.combined))
            {
                let leap = match c.leap {
                    LeapIndicator::AddSecond => KernelLeap::Insert,
                    LeapIndicator::DeleteSecond => KernelLeap::Delete,
                    _ => KernelLeap::None,
                };
                let max_error = c.root_delay / 2.0 + c.root_dispersion;
                if let Err(e) =
                    kernel.set_status(self.steering.synchronized(), leap, max_error, c.jitter)
                {
                    tracing::debug!(error = %e, "cannot set the kernel clock status");
                }
            }
            self.maybe_write_drift(now);
        }
        outcome
    }

    /// The next event (system peer change, persistent falseticker).
    pub fn poll_event(&mut self) -> Option<SteeringEvent> {
        self.steering.poll_event()
    }

    /// Carries out the steering's actions on the clock.
    fn execute(&mut self) {
        while let Some(action) = self.steering.poll_action() {
            if let ClockMode::Control(kernel) = &self.mode {
                let result = match action {
                    ClockAction::Step { offset } => kernel.step(offset),
                    ClockAction::Slew { offset, freq_ppm } => {
                        kernel.set_frequency(freq_ppm).and_then(|()| kernel.slew(offset))
                    }
                    ClockAction::None | ClockAction::Panic { .. } => Ok(()),
                };
                if let Err(e) = result {
                    tracing::error!(error = %e, ?action, "cannot adjust the system clock");
                }
            }
            match action {
                ClockAction::Step { offset } => {
                    tracing::warn!(offset, mode = self.mode_name(), "clock stepped");
                }
                ClockAction::Panic { offset } => tracing::error!(
                    offset,
                    "offset beyond the panic threshold (`tinker panic`, default 1000 s): the clock is left alone; check \
                     the servers, or set the time by hand once"
                ),
                _ => {}
            }
        }
    }

    /// The latest selection round (verdicts, system peer, combined estimate).
    pub fn selection(&self) -> Option<&Selection> {
        self.steering.selection()
    }

    /// Correction to add to the system clock to get rntpd's time (observe: the virtual
    /// correction; control: zero, the system clock is rntpd's time).
    pub fn correction(&self, now: Instant) -> f64 {
        self.steering.served_correction(now)
    }

    /// The clock model server mode serves in observe-only mode (`None`: the system clock).
    pub fn served_clock(&self) -> Option<VirtualClock> {
        match self.mode {
            ClockMode::Observe => Some(self.steering.applied().clone()),
            ClockMode::Control(_) => None,
        }
    }

    /// Whether rntpd serves time as synchronized: a system peer is selected and the discipline
    /// tracks it (its frequency may still be settling, as with ntpd's FREQ state and chrony,
    /// which serve from the first clock update on). Not while unset or holding a spike.
    pub fn synchronized(&self) -> bool {
        let tracking =
            matches!(self.steering.state(), DisciplineState::Freq | DisciplineState::Sync);
        tracking && self.steering.system_peer().is_some()
    }

    /// For status: (state, frequency ppm, last offset s).
    pub fn status(&self) -> (&'static str, f64, Option<f64>) {
        (self.steering.state().name(), self.steering.frequency_ppm(), self.steering.last_offset())
    }

    fn maybe_write_drift(&mut self, now: Instant) {
        if self.drift_written.is_some_and(|t| now.secs_since(t) < DRIFT_WRITE_INTERVAL) {
            return;
        }
        self.write_drift(now);
    }

    /// Writes the drift file (hourly, and at exit) once the frequency has settled.
    pub fn write_drift(&mut self, now: Instant) {
        let (Some(path), Some(freq)) = (&self.driftfile, self.steering.drift_freq_ppm()) else {
            return;
        };
        match crate::drift::write(path, freq) {
            Ok(()) => self.drift_written = Some(now),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot write the drift file")
            }
        }
    }
}
