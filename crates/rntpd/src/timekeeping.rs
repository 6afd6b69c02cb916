//! Keeping time: feeds the selection's result to the core's [`Discipline`] and executes its
//! [`ClockAction`]s, on a virtual clock (observe-only) or on the kernel clock.
//!
//! # Observe-only
//! Nothing touches the system clock. A [`VirtualClock`] records what rntpd *would* have done,
//! as `chronyd -x` does: rntpd's time is the system clock plus the virtual correction. Offsets
//! are measured against the system clock, so each one is referred to the virtual clock at the
//! moment it was measured before selection sees it. Server mode serves the virtual time, and
//! `rntpctl status` reports the correction and the frequency.
//!
//! # Control
//! Only with CAP_SYS_TIME and without `--observe`: actions go to [`rntp_sys::KernelClock`].
//! Offsets are then measured against the disciplined clock; a stale estimate is corrected for
//! the phase changes made since it was measured (not for the frequency part, which cancels the
//! oscillator's own drift over the same interval).

use std::collections::BTreeMap;
use std::path::PathBuf;

use rntp_proto::discipline::{
    ClockAction, Discipline, DisciplineConfig, DisciplineState, VirtualClock,
};
use rntp_proto::time::{Instant, PollInterval};
use rntp_sys::{KernelClock, KernelLeap};

/// How often the drift file is rewritten while running (and once more at exit).
const DRIFT_WRITE_INTERVAL: f64 = 3_600.0;
/// Corrections remembered for stale estimates: 8 filter stages at the longest poll, with room.
const CORRECTION_LOG_SECS: f64 = 8.0 * 131_072.0;

/// One selection result for [`Timekeeper::update`].
#[derive(Debug, Clone, Copy)]
pub struct Update {
    /// When the system peer's best sample was taken.
    pub peer_sample_time: Instant,
    /// Combined offset (s), already referred to our clock.
    pub offset: f64,
    /// System jitter (s).
    pub jitter: f64,
    /// The system peer's poll interval.
    pub poll: PollInterval,
    /// Leap second announced by the selected sources.
    pub leap: KernelLeap,
    /// Maximum error for the kernel's status (s): root delay / 2 + root dispersion.
    pub max_error: f64,
}

/// Where the discipline's actions go.
pub enum ClockMode {
    /// Virtual clock only.
    Observe,
    /// The kernel clock (CAP_SYS_TIME).
    Control(KernelClock),
}

/// The discipline and the clock it steers.
pub struct Timekeeper {
    mode: ClockMode,
    discipline: Discipline,
    /// What has been applied (observe: the virtual clock; control: a mirror of the kernel's).
    applied: VirtualClock,
    /// `applied.offset_at(t)` recorded when samples taken at `t` arrived.
    corrections: BTreeMap<Instant, f64>,
    /// The system peer's best-sample time at the last update: the RFC rule is one update per
    /// new best sample.
    last_update_sample: Option<Instant>,
    /// The last offset handed to the discipline (s), for status.
    last_offset: Option<f64>,
    driftfile: Option<PathBuf>,
    drift_written: Option<Instant>,
}

impl Timekeeper {
    /// A timekeeper starting from the drift file's frequency, if any.
    pub fn new(mode: ClockMode, driftfile: Option<PathBuf>, initial_freq_ppm: Option<f64>) -> Self {
        let mut applied = VirtualClock::new();
        if let Some(freq) = initial_freq_ppm {
            applied.apply(Instant::ZERO, ClockAction::Slew { offset: 0.0, freq_ppm: freq });
        }
        if let (ClockMode::Control(kernel), Some(freq)) = (&mode, initial_freq_ppm) {
            if let Err(e) = kernel.set_frequency(freq) {
                tracing::error!(error = %e, "cannot set the clock frequency from the drift file");
            }
        }
        Timekeeper {
            mode,
            discipline: Discipline::new(DisciplineConfig::default(), initial_freq_ppm),
            applied,
            corrections: BTreeMap::new(),
            last_update_sample: None,
            last_offset: None,
            driftfile,
            drift_written: None,
        }
    }

    /// `"observe"` or `"control"`.
    pub fn mode_name(&self) -> &'static str {
        match self.mode {
            ClockMode::Observe => "observe",
            ClockMode::Control(_) => "control",
        }
    }

    /// Notes a sample taken at `sample_time`, so its offset can be referred to our clock later.
    pub fn record_sample(&mut self, now: Instant, sample_time: Instant) {
        self.corrections.insert(sample_time, self.applied.offset_at(sample_time.min(now)));
        let horizon =
            Instant::from_nanos(now.as_nanos().saturating_sub((CORRECTION_LOG_SECS * 1e9) as u64));
        self.corrections = self.corrections.split_off(&horizon);
    }

    /// An estimate's offset (measured at `sample_time`) as our clock would see it now.
    pub fn candidate_offset(&self, now: Instant, offset: f64, sample_time: Instant) -> f64 {
        let then = self
            .corrections
            .get(&sample_time)
            .copied()
            .unwrap_or_else(|| self.applied.offset_at(sample_time));
        match self.mode {
            // Measured against the free-running system clock: subtract what the virtual clock
            // had corrected by then.
            ClockMode::Observe => offset - then,
            // Measured against the disciplined clock: subtract the phase corrections since.
            ClockMode::Control(_) => {
                let age = now.secs_since(sample_time).max(0.0);
                let since =
                    self.applied.offset_at(now) - then - self.applied.frequency_ppm() * 1e-6 * age;
                offset - since
            }
        }
    }

    /// The frequency uncertainty (ppm) to add to stale estimates' jitter.
    pub fn frequency_error_ppm(&self) -> f64 {
        self.discipline.frequency_error_ppm()
    }

    /// One discipline update from the system peer's combined offset; at most once per new best
    /// sample of the system peer. Returns the action taken.
    pub fn update(&mut self, now: Instant, u: Update) -> Option<ClockAction> {
        let Update { peer_sample_time, offset, jitter, poll, leap, max_error } = u;
        if self.last_update_sample == Some(peer_sample_time) {
            return None;
        }
        self.last_update_sample = Some(peer_sample_time);
        self.last_offset = Some(offset);
        let action = self.discipline.update(now, offset, jitter, poll);
        self.applied.apply(now, action);
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
            let synced = self.discipline.state() == DisciplineState::Sync;
            if let Err(e) = kernel.set_status(synced, leap, max_error, jitter) {
                tracing::debug!(error = %e, "cannot set the kernel clock status");
            }
        }
        match action {
            ClockAction::Step { offset } => {
                tracing::warn!(offset, mode = self.mode_name(), "clock stepped");
            }
            ClockAction::Panic { offset } => tracing::error!(
                offset,
                "offset beyond the panic threshold (1000 s): the clock is left alone; check the \
                 servers, or set the time by hand once"
            ),
            _ => {}
        }
        self.maybe_write_drift(now);
        Some(action)
    }

    /// Correction to add to the system clock to get rntpd's time (observe: the virtual
    /// correction; control: zero, the system clock is rntpd's time).
    pub fn correction(&self, now: Instant) -> f64 {
        match self.mode {
            ClockMode::Observe => self.applied.offset_at(now),
            ClockMode::Control(_) => 0.0,
        }
    }

    /// A copy of the applied clock model for server mode (observe-only serves virtual time).
    pub fn served_clock(&self) -> Option<VirtualClock> {
        match self.mode {
            ClockMode::Observe => Some(self.applied.clone()),
            ClockMode::Control(_) => None,
        }
    }

    /// Whether the discipline considers the clock synchronized.
    pub fn synchronized(&self) -> bool {
        self.discipline.state() == DisciplineState::Sync
    }

    /// For status: (state, frequency ppm, correction now s, last offset s).
    pub fn status(&self, now: Instant) -> (&'static str, f64, f64, Option<f64>) {
        (
            self.discipline.state().name(),
            self.applied.frequency_ppm(),
            self.applied.offset_at(now),
            self.last_offset,
        )
    }

    /// Rewrites the drift file if it is due (or `force`).
    fn maybe_write_drift(&mut self, now: Instant) {
        if self.drift_written.is_some_and(|t| now.secs_since(t) < DRIFT_WRITE_INTERVAL) {
            return;
        }
        self.write_drift(now);
    }

    /// Writes the drift file now (at exit, and hourly) once the frequency is known.
    pub fn write_drift(&mut self, now: Instant) {
        let Some(path) = &self.driftfile else { return };
        if self.discipline.state() == DisciplineState::Unset {
            return;
        }
        match crate::drift::write(path, self.discipline.frequency_ppm()) {
            Ok(()) => self.drift_written = Some(now),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot write the drift file")
            }
        }
    }
}
