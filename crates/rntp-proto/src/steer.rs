//! Steering: from association samples to clock corrections, the part of timekeeping between the
//! associations ([`crate::assoc`]) and the clock the driver adjusts.
//!
//! [`Steering`] owns everything that turns samples into [`ClockAction`]s: the [`Discipline`],
//! a [`VirtualClock`] model of every correction applied so far, the correction log that refers
//! stale filter estimates to the current clock, a [`DelayNoise`] per association, the start-up
//! hold, the system peer and survivor set of the latest selection round (and its
//! [`Selection`], for displays), and per-association falseticker runs. The daemon and the
//! simulator drive this same code.
//!
//! Sans-IO like the rest of the crate: no clock reads, no sockets, no randomness. Every input
//! carries `now`; outputs are drained with `poll_*`.
//!
//! # Call order
//!
//! After each batch of events of one association (one received packet, one timeout):
//!
//! 1. [`Steering::handle_sample`] for every [`AssocEvent::Sample`](crate::assoc::AssocEvent), in
//!    order, saying whether the sample became its filter's best (the association's
//!    `estimate(now).time == sample.time`).
//! 2. [`Steering::handle_reset`] for every association that moved to another address or was
//!    demobilized (the source manager's `Move` / `Demobilize` actions), and
//!    [`Steering::handle_source_change`] if the set of usable sources changed without a sample
//!    (an association became unreachable or went away) and selection should look again.
//! 3. [`Steering::handle_round`] with one [`SourceInput`] per live association (all of them, in
//!    a stable order). It runs a selection round only if something is new (see
//!    [`RoundOutcome`]); [`Steering::wants_round`] says in advance whether it will, so a driver
//!    may skip building the inputs.
//! 4. Drain [`Steering::poll_action`] and execute each action on the real clock (the model is
//!    already updated), then [`Steering::poll_event`] for logging and pool management.
//!
//! Besides: when [`Steering::poll_timeout`] has passed (a slew has removed its phase), call
//! [`Steering::handle_timeout`] and drain the actions again. Spurious calls are no-ops.
//!
//! # Reference
//!
//! Offsets are measured against some clock. [`Reference::Disciplined`]: against the clock this
//! `Steering` steers (the simulator; the daemon when it controls the kernel clock), so a stale
//! estimate is off by the *phase* corrections made since it was measured (slews and steps, not
//! the frequency part, which cancels the oscillator's own drift over the same interval).
//! [`Reference::FreeRunning`]: against a clock nobody touches (the daemon's observe-only mode),
//! so the correction is only virtual and the offset of a sample taken at `t` relative to the
//! virtual clock is `offset − applied.offset_at(t)`.
//!
//! Robustness: no input panics. Non-finite offsets, delays or σ reach the discipline or
//! selection, which ignore or reject them; internal queues are bounded.

use std::collections::{BTreeMap, HashMap, VecDeque};

use crate::assoc::filter::{FilterEstimate, Sample, NSTAGE, PHI};
use crate::assoc::{AssocId, AssocSnapshot, ServerInfo};
#[cfg(feature = "research")]
use crate::discipline::DisciplineKind;
use crate::discipline::{
    ClockAction, DelayNoise, Discipline, DisciplineConfig, DisciplineState, Measurement,
    VirtualClock,
};
use crate::select::{self, Candidate, SelectConfig, Selection, Verdict};
use crate::time::{Instant, PollInterval};
use crate::wire::{LeapIndicator, ReferenceId};

/// What the discipline is fed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Feed {
    /// Every raw sample of a source that the latest selection round kept (system peer or
    /// survivor) goes to [`Discipline::update_sample`], weighted by its delay
    /// ([`DelayNoise`]). Selection still runs on the filter estimates, after every sample.
    #[default]
    Samples,
    /// RFC 5905: after a sample that became its filter's best, selection's combined offset
    /// goes to [`Discipline::update`] (research builds only: measured worse, docs/accuracy.md).
    #[cfg(feature = "research")]
    FilterBest,
}

/// How association estimates are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Combine {
    /// [`select::select`] only: no system peer, no clock update (RFC 5905; the daemon).
    #[default]
    Select,
    /// [`select::select`], falling back to the median of the reachable estimates when it
    /// returns no system peer (research builds only).
    #[cfg(feature = "research")]
    SelectOrMedian,
    /// Median of the reachable estimates; no selection at all (a baseline for comparisons;
    /// research builds only).
    #[cfg(feature = "research")]
    Median,
}

/// Which clock the offsets handed to [`Steering`] are measured against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reference {
    /// The clock this `Steering` steers: its actions are executed on the clock the samples are
    /// taken with (the simulator; the daemon controlling the kernel clock).
    #[default]
    Disciplined,
    /// A free-running clock: the actions are only virtual (the daemon's observe-only mode).
    /// Offsets are referred to the virtual clock before use.
    FreeRunning,
}

/// Configuration of a [`Steering`].
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SteeringConfig {
    /// The discipline. Its `minpoll`/`maxpoll` must be the associations' poll bounds (the
    /// lowest `minpoll` and highest `maxpoll` of all sources): the start-up hold lasts at most
    /// one `minpoll` after the first fit source, and the correction log keeps 16 `maxpoll`.
    pub discipline: DisciplineConfig,
    /// Selection settings; `current` is ignored (the system peer is kept here).
    pub select: SelectConfig,
    /// What the discipline is fed (filter-best whatever this says when the discipline is RFC
    /// 5905's loop).
    pub feed: Feed,
    /// How estimates are combined.
    pub combine: Combine,
    /// Which clock offsets are measured against.
    pub reference: Reference,
    /// Consecutive falseticker rounds after which [`SteeringEvent::PersistentFalseticker`] is
    /// emitted for an association (once per run); 0 disables the event.
    pub falseticker_rounds: u32,
}

/// What [`Steering::handle_round`] needs to know about one association.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SourceInput {
    /// The association.
    pub id: AssocId,
    /// Its filter estimate, if any (an association without one is not a candidate).
    pub estimate: Option<FilterEstimate>,
    /// The server's self-description from its last valid reply, if any.
    pub server: Option<ServerInfo>,
    /// Reach register.
    pub reach: u8,
    /// Current poll interval (the RFC feed tells the discipline the least of them).
    pub poll: PollInterval,
    /// Configured `prefer`.
    pub prefer: bool,
    /// Configured `noselect`.
    pub noselect: bool,
    /// The reference id this server would show if it synchronized to us (loop detection).
    pub refid_for_us: ReferenceId,
    /// When `estimate` was computed (its dispersion is aged up to then); `None`: now. The
    /// daemon's snapshots are computed when the association last did something, which can be
    /// a whole poll interval ago.
    pub aged_to: Option<Instant>,
}

impl SourceInput {
    /// The input for an association snapshot, with `prefer`/`noselect` off.
    pub fn from_snapshot(snap: &AssocSnapshot, refid_for_us: ReferenceId) -> Self {
        SourceInput {
            id: snap.id,
            estimate: snap.estimate,
            server: snap.server,
            reach: snap.reach,
            poll: snap.poll,
            prefer: false,
            noselect: false,
            refid_for_us,
            aged_to: None,
        }
    }
}

/// What one [`Steering::handle_round`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoundOutcome {
    /// Nothing new since the last round (no sample, or under the research feed no filter-best
    /// sample, and no [`Steering::handle_source_change`]): no selection ran and nothing
    /// changed.
    Skipped,
    /// Selection ran but the start-up hold discarded it: system peer, survivors, verdicts and
    /// falseticker runs are those of the previous counted round. `updates` samples were still
    /// fed (sources that survived the previous round).
    Held {
        /// Discipline updates made.
        updates: u32,
    },
    /// The round counted: system peer, survivors and [`Steering::selection`] are new (except
    /// under the research median combiner, which has no selection).
    Counted {
        /// Selection produced a combined estimate (a system peer).
        selected: bool,
        /// Discipline updates made.
        updates: u32,
    },
}

impl RoundOutcome {
    /// Discipline updates made in the round (each may have queued an action).
    pub fn updates(self) -> u32 {
        match self {
            RoundOutcome::Skipped => 0,
            RoundOutcome::Held { updates } | RoundOutcome::Counted { updates, .. } => updates,
        }
    }
}

/// Something for the driver to log or act on, from [`Steering::poll_event`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SteeringEvent {
    /// The system peer changed (`to: None`: too few sources agree).
    SystemPeer {
        /// The previous system peer.
        from: Option<AssocId>,
        /// The new one.
        to: Option<AssocId>,
    },
    /// An association has been a falseticker for [`SteeringConfig::falseticker_rounds`]
    /// consecutive counted rounds (emitted once per run): a pool may replace it.
    PersistentFalseticker(AssocId),
}

/// Counters since creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SteeringStats {
    /// Selection rounds run (held ones included).
    pub rounds: u64,
    /// Rounds discarded by the start-up hold.
    pub held: u64,
    /// Counted rounds whose combined estimate came from selection (not the median fallback).
    pub selected: u64,
    /// Discipline updates.
    pub updates: u64,
    /// Steps among the actions.
    pub steps: u64,
    /// Panic verdicts among the actions.
    pub panics: u64,
}

/// Samples kept for the next round at most (a driver that never calls `handle_round`).
const MAX_PENDING: usize = 1024;
/// The slowest aging of an estimate's error bound (s/s), however well the frequency is known:
/// 0.1 ppm covers a good oscillator's wander over a 1024 s poll.
pub const MIN_AGING_RATE: f64 = 1e-7;
/// Actions and events kept for the driver at most (a driver that never polls).
const MAX_QUEUE: usize = 1024;
/// The correction log is pruned once it holds more entries than this.
/// Correction-log entries kept per association: the filter's eight stages and as many again
/// (gaps and moves make a stage older than eight samples only through `add_gap`, which adds
/// no sample). The log is therefore bounded by the number of associations, whatever their
/// poll intervals (a source at `minpoll -2` beside one at `maxpoll 17` costs 16 entries each).
pub const CORRECTIONS_PER_ASSOC: usize = 2 * NSTAGE;

/// The timekeeping state machine. See the module docs for the call order.
#[derive(Debug, Clone)]
pub struct Steering {
    config: SteeringConfig,
    discipline: Discipline,
    /// Every action applied so far (observe-only: the virtual clock; otherwise a mirror of the
    /// real clock's corrections).
    applied: VirtualClock,
    /// `applied.offset_at(t)` at each sample time `t`, to refer stale estimates to now.
    corrections: HashMap<AssocId, VecDeque<(Instant, f64)>>,
    /// Per association: (time, delay) of its last [`NSTAGE`] samples, the filter's stages as
    /// far as samples go, to take the filter's own aging out of its dispersion exactly.
    stages: HashMap<AssocId, VecDeque<(Instant, f64)>>,
    /// Per association: the delay history that weighs its samples.
    noise: HashMap<AssocId, DelayNoise>,
    /// Per association: samples in its filter, as far as start-up needs to know (capped).
    fill: HashMap<AssocId, u32>,
    /// Samples since the last round, with their association.
    pending: Vec<(AssocId, Measurement)>,
    /// A sample since the last round became its filter's best.
    fresh: bool,
    /// The driver asked for a round without new samples.
    due: bool,
    peer: Option<AssocId>,
    /// Survivors (system peer included) of the latest counted round.
    survivors: Vec<AssocId>,
    /// The survivors whose samples go to the discipline: those whose root distance is within
    /// [`FEED_LAMBDA_RATIO`] of the system peer's (see [`Steering::feedable`]).
    fed: Vec<AssocId>,
    selection: Option<Selection>,
    /// When a candidate first passed fitness (for the start-up hold).
    first_fit: Option<Instant>,
    /// When a round last produced a combined estimate.
    last_round: Option<Instant>,
    /// Start-up is over: selection rounds are no longer held.
    startup_over: bool,
    falseticker_runs: BTreeMap<AssocId, u32>,
    actions: VecDeque<ClockAction>,
    events: VecDeque<SteeringEvent>,
    last_offset: Option<f64>,
    leap: Option<LeapIndicator>,
    /// Leap seconds: table, smear, what to announce and arm.
    leap_state: leap::LeapState,
    stats: SteeringStats,
}

impl Steering {
    /// A new steering. `initial_freq_ppm` is the drift file's frequency, if any: it is set at
    /// once, and the first [`Steering::poll_action`] is the corresponding
    /// [`ClockAction::Rate`] for the driver to execute.
    pub fn new(config: SteeringConfig, initial_freq_ppm: Option<f64>) -> Self {
        #[cfg(feature = "research")]
        let config = {
            let mut config = config;
            if config.discipline.kind == DisciplineKind::RfcPllFll {
                // RFC 5905's loop takes one combined offset per new filter-best sample.
                config.feed = Feed::FilterBest;
            }
            config
        };
        let discipline = Discipline::new(config.discipline, initial_freq_ppm);
        let mut applied = VirtualClock::new();
        let mut actions = VecDeque::new();
        if initial_freq_ppm.is_some_and(f64::is_finite) {
            // The discipline's own rounding of the file's frequency, so model and kernel agree.
            let action = ClockAction::Rate(discipline.slewer().base());
            applied.apply(Instant::ZERO, action);
            actions.push_back(action);
        }
        Steering {
            config,
            discipline,
            applied,
            corrections: HashMap::new(),
            stages: HashMap::new(),
            noise: HashMap::new(),
            fill: HashMap::new(),
            pending: Vec::new(),
            fresh: false,
            due: false,
            peer: None,
            survivors: Vec::new(),
            fed: Vec::new(),
            selection: None,
            first_fit: None,
            last_round: None,
            startup_over: false,
            falseticker_runs: BTreeMap::new(),
            actions,
            events: VecDeque::new(),
            last_offset: None,
            leap: None,
            leap_state: leap::LeapState::default(),
            stats: SteeringStats::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &SteeringConfig {
        &self.config
    }

    /// A sample of association `assoc` arrived at `now`. `is_filter_best`: it became its
    /// filter's best sample (the association's estimate now has this sample's time). The sample
    /// is used at the next [`Steering::handle_round`].
    pub fn handle_sample(
        &mut self,
        now: Instant,
        assoc: AssocId,
        sample: &Sample,
        is_filter_best: bool,
    ) {
        let then = self.applied.offset_at(sample.time.min(now));
        let log = self.corrections.entry(assoc).or_default();
        if log.len() >= CORRECTIONS_PER_ASSOC {
            log.pop_front();
        }
        log.push_back((sample.time, then));
        let stages = self.stages.entry(assoc).or_default();
        if stages.len() >= NSTAGE {
            stages.pop_front();
        }
        stages.push_back((sample.time, sample.delay));
        self.fresh |= is_filter_best;
        let sigma = self.noise.entry(assoc).or_default().add(sample.delay);
        let n = self.fill.entry(assoc).or_default();
        *n = (*n + 1).min(NSTAGE as u32);
        let offset = match self.config.reference {
            Reference::Disciplined => sample.offset,
            Reference::FreeRunning => sample.offset - then,
        };
        // Raw samples are only ever fed under Feed::Samples.
        if self.feeds_samples() {
            if self.pending.len() >= MAX_PENDING {
                self.pending.remove(0);
            }
            self.pending.push((assoc, Measurement { offset, sigma, delay: sample.delay }));
        }
    }

    /// Association `assoc` moved to another address or was demobilized: its delay history,
    /// start-up fill count and falseticker run are forgotten (another path, another story).
    pub fn handle_reset(&mut self, assoc: AssocId) {
        self.corrections.remove(&assoc);
        self.stages.remove(&assoc);
        self.noise.remove(&assoc);
        self.fill.remove(&assoc);
        self.falseticker_runs.remove(&assoc);
    }

    /// The sources changed without a sample (one became unreachable or went away): the next
    /// [`Steering::handle_round`] runs selection even if no sample arrived. Such a round feeds
    /// the discipline nothing.
    pub fn handle_source_change(&mut self) {
        self.due = true;
    }

    /// Whether [`Steering::handle_round`] would run a selection round now. When it is `false`,
    /// `handle_round` would do nothing at all, so the driver may skip building its inputs.
    pub fn wants_round(&self) -> bool {
        self.due || self.has_new_data()
    }

    fn has_new_data(&self) -> bool {
        match self.config.feed {
            Feed::Samples => !self.pending.is_empty(),
            #[cfg(feature = "research")]
            Feed::FilterBest => self.fresh,
        }
    }

    /// One selection round over `inputs` (one per live association) if something is new, and
    /// the discipline updates it calls for. See [`RoundOutcome`].
    pub fn handle_round(&mut self, now: Instant, inputs: &[SourceInput]) -> RoundOutcome {
        let new_data = self.has_new_data();
        let due = std::mem::take(&mut self.due);
        #[cfg_attr(not(feature = "research"), allow(unused_variables))]
        let fresh = std::mem::take(&mut self.fresh);
        let pending = std::mem::take(&mut self.pending);
        if !new_data && !due {
            return RoundOutcome::Skipped;
        }
        let updates_before = self.stats.updates;
        let (held, selected, combined) = self.select_round(now, inputs);
        if new_data {
            match self.config.feed {
                #[cfg(feature = "research")]
                Feed::FilterBest => {
                    if let (true, Some(c)) = (fresh, combined) {
                        self.discipline_update(now, c, inputs);
                    }
                }
                Feed::Samples => match combined {
                    // Held (or nothing combined): the previous survivors' samples still count,
                    // once a round has produced an estimate at all.
                    None => {
                        if self.last_round.is_some() {
                            self.feed_survivors(now, &pending);
                        }
                    }
                    Some(c) => {
                        if self.median_only() || self.peer.is_none() {
                            // No system peer: the fallback's combined offset, as FilterBest.
                            self.discipline_update(now, c, inputs);
                        } else {
                            self.feed_survivors_with_leap(now, &pending, c.2);
                        }
                    }
                },
            }
        }
        let updates = u32::try_from(self.stats.updates - updates_before).unwrap_or(u32::MAX);
        if held {
            RoundOutcome::Held { updates }
        } else {
            RoundOutcome::Counted { selected, updates }
        }
    }

    /// When a slew has removed its phase: [`Steering::handle_timeout`] is due then (`None`: no
    /// slew running).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.discipline.poll_timeout()
    }

    /// Ends a slew whose time has come (its action is then queued); a no-op before.
    pub fn handle_timeout(&mut self, now: Instant) {
        let action = self.discipline.handle_timeout(now);
        if action != ClockAction::None {
            self.apply(now, action);
        }
    }

    /// The next action to execute on the real clock, oldest first. Each one has already been
    /// applied to the model ([`Steering::offset_at`]). `ClockAction::None` is never returned.
    pub fn poll_action(&mut self) -> Option<ClockAction> {
        self.actions.pop_front()
    }

    /// The next event, oldest first.
    pub fn poll_event(&mut self) -> Option<SteeringEvent> {
        self.events.pop_front()
    }

    /// The latest counted selection round (verdicts for displays, system peer, combined
    /// estimate); `None` before the first one and under the research median combiner.
    pub fn selection(&self) -> Option<&Selection> {
        self.selection.as_ref()
    }

    /// The current system peer.
    pub fn system_peer(&self) -> Option<AssocId> {
        self.peer
    }

    /// The survivors of the latest counted round, system peer included.
    pub fn survivors(&self) -> &[AssocId] {
        &self.survivors
    }

    /// Consecutive counted rounds in which `assoc` was a falseticker (0: not one now).
    pub fn falseticker_run(&self, assoc: AssocId) -> u32 {
        self.falseticker_runs.get(&assoc).copied().unwrap_or(0)
    }

    /// Whether the start-up hold is over.
    pub fn startup_over(&self) -> bool {
        self.startup_over
    }

    /// Total correction (s) applied by `now` to the clock the offsets are measured against: the
    /// corrected clock reads that clock plus this.
    pub fn offset_at(&self, now: Instant) -> f64 {
        self.applied.offset_at(now)
    }

    /// The frequency correction set (ppm), without any slew in progress.
    pub fn frequency_ppm(&self) -> f64 {
        self.discipline.frequency_ppm()
    }

    /// The discipline's frequency uncertainty (ppm).
    pub fn frequency_error_ppm(&self) -> f64 {
        self.discipline.frequency_error_ppm()
    }

    /// The discipline's state.
    pub fn state(&self) -> DisciplineState {
        self.discipline.state()
    }

    /// Whether the discipline considers the clock synchronized.
    pub fn synchronized(&self) -> bool {
        self.discipline.state() == DisciplineState::Sync
    }

    /// The last offset handed to the discipline (s), for status.
    pub fn last_offset(&self) -> Option<f64> {
        self.last_offset
    }

    /// The leap indicator of the last combined estimate used for the clock.
    pub fn leap(&self) -> Option<LeapIndicator> {
        self.leap
    }

    /// Sets the leap-second table and smear (see [`leap`]).
    pub fn set_leap_config(&mut self, config: leap::LeapConfig) {
        self.leap_state = leap::LeapState::new(config);
    }

    /// The leap-second settings.
    pub fn leap_config(&self) -> &leap::LeapConfig {
        self.leap_state.config()
    }

    /// What to tell clients and the kernel about leap seconds at `now`, when the clock the
    /// node serves reads `utc` (Unix seconds): the sources' vote is the system peer's leap
    /// indicator of the latest selection, checked against the leap table ([`leap`]).
    pub fn leap_decision(&mut self, now: Instant, utc: f64) -> leap::LeapDecision {
        let sources = self
            .selection
            .as_ref()
            .and_then(|s| s.combined)
            .map_or(LeapIndicator::NoWarning, |c| c.leap);
        self.leap_state.decide(now, utc, sources)
    }

    /// The leap smear to add to the time served at `now` (s; 0 unless `leapsmear` is on and a
    /// leap second is less than its interval away).
    pub fn leap_smear(&self, now: Instant) -> f64 {
        self.leap_state.smear_at(now)
    }

    /// What to add to the measured-against clock to get the time to serve:
    /// [`Reference::FreeRunning`]: the virtual correction; [`Reference::Disciplined`]: 0 (the
    /// clock is already corrected).
    pub fn served_correction(&self, now: Instant) -> f64 {
        match self.config.reference {
            Reference::FreeRunning => self.applied.offset_at(now),
            Reference::Disciplined => 0.0,
        }
    }

    /// The frequency (ppm) to save in the drift file, once it is known well enough.
    pub fn drift_freq_ppm(&self) -> Option<f64> {
        self.discipline.frequency_settled().then(|| self.discipline.frequency_ppm())
    }

    /// The model of every applied correction (observe-only: the virtual clock to serve).
    pub fn applied(&self) -> &VirtualClock {
        &self.applied
    }

    /// The discipline (poll advice, jitter, …).
    pub fn discipline(&self) -> &Discipline {
        &self.discipline
    }

    /// Entries in the correction log (bounded by [`CORRECTIONS_PER_ASSOC`] per association).
    pub fn correction_log_len(&self) -> usize {
        self.corrections.values().map(VecDeque::len).sum()
    }

    /// Counters since creation.
    pub fn stats(&self) -> SteeringStats {
        self.stats
    }

    /// Whether raw samples go to the discipline (the production feed).
    fn feeds_samples(&self) -> bool {
        self.config.feed == Feed::Samples
    }

    /// Whether the research median combiner replaces selection altogether.
    fn median_only(&self) -> bool {
        #[cfg(feature = "research")]
        if self.config.combine == Combine::Median {
            return true;
        }
        false
    }

    /// An estimate's offset (measured at `t`) as the steered clock sees it at `now`.
    fn offset_now(&self, now: Instant, assoc: AssocId, offset: f64, t: Instant) -> f64 {
        let logged = self
            .corrections
            .get(&assoc)
            .and_then(|log| log.iter().rev().find(|(at, _)| *at == t))
            .map(|(_, c)| *c);
        let then = logged.unwrap_or_else(|| self.applied.offset_at(t));
        // Phase corrections (slews, steps) applied since `t`. The frequency part is left out:
        // it cancels the oscillator's own drift over the same interval.
        let age = now.secs_since(t).max(0.0);
        let base = self.discipline.slewer().base().correction();
        let since = self.applied.offset_at(now) - then - base * age;
        match self.config.reference {
            // Measured against the free-running clock: refer it to the virtual clock as it was
            // at `t` (minus `then`), then bring it to now like a disciplined measurement.
            Reference::FreeRunning => offset - then - since,
            Reference::Disciplined => offset - since,
        }
    }

    /// How fast an estimate's error bound grows with its age (s/s): RFC 5905's PHI (15 ppm)
    /// while the frequency is unknown, and three times the discipline's frequency uncertainty
    /// once it is known (at least [`MIN_AGING_RATE`]). RFC's PHI bounds an *unknown* clock;
    /// with it, sources polled every 1024 s look tens of milliseconds vague, and a freshly
    /// mobilized pool member with one precise sample outweighs them all, falseticker or not
    /// (the simulator's `falseticker_member_at_maxpoll_10`). chrony ages by its own frequency
    /// estimate's error in the same way.
    fn aging_rate(&self) -> f64 {
        let known = 3.0 * self.discipline.frequency_error_ppm() * 1e-6;
        known.clamp(MIN_AGING_RATE, PHI)
    }

    /// Σₖ age(stage k) / 2^(k+1) at `at` over an association's filter stages in delay order:
    /// what its dispersion grew by per unit of aging rate (the filter's clock_filter weights).
    /// Every stage has its own age, so taking PHI × the best sample's age out (as if all were
    /// as old) left up to ~2 ms of noise in λ on a LAN at a 64 s poll: enough to make three
    /// equal servers take turns as system peer 240 times a day. Unanswered polls (gaps) are
    /// not seen here; a filter with gaps is dominated by their MAXDISP stages anyway.
    fn stage_age(&self, assoc: AssocId, at: Instant, est: FilterEstimate) -> f64 {
        let Some(stages) = self.stages.get(&assoc).filter(|s| !s.is_empty()) else {
            return at.secs_since(est.time).max(0.0) * (1.0 - 1.0 / 256.0);
        };
        let mut order: Vec<(Instant, f64)> = stages.iter().copied().collect();
        order.sort_by(|a, b| a.1.total_cmp(&b.1));
        order
            .iter()
            .zip(0..)
            .map(|((t, _), k)| at.secs_since(*t).max(0.0) / f64::from(2u32 << k))
            .sum()
    }

    fn candidates(&self, now: Instant, inputs: &[SourceInput]) -> Vec<Candidate> {
        let freq_sigma = self.discipline.frequency_error_ppm() * 1e-6;
        let rate = self.aging_rate();
        inputs
            .iter()
            .filter_map(|i| {
                let (Some(est), Some(server)) = (i.estimate, i.server) else { return None };
                Some(Candidate {
                    id: i.id,
                    offset: self.offset_now(now, i.id, est.offset, est.time),
                    delay: est.delay,
                    // The filter aged every stage at PHI; every stage is at least as old as
                    // the best sample, so PHI x its age (x the stage weights' sum, 1 - 2^-8)
                    // is aging that we re-apply at the known rate instead.
                    dispersion: {
                        // Only the aging the filter applied (up to when the estimate was
                        // computed) can be taken out again.
                        let aged_to = i.aged_to.unwrap_or(now);
                        let unaged = est.dispersion - PHI * self.stage_age(i.id, aged_to, est);
                        unaged.max(0.0) + rate * self.stage_age(i.id, now, est)
                    },
                    // A stale estimate is also off by the frequency error times its age; say
                    // so, so that selection's 1/λ weights prefer fresh estimates while the
                    // frequency is still uncertain (cold start).
                    jitter: est.jitter.hypot(freq_sigma * now.secs_since(est.time).max(0.0)),
                    sample_time: est.time,
                    stratum: server.stratum,
                    leap: server.leap,
                    root_delay: server.root_delay,
                    root_dispersion: server.root_dispersion,
                    reference_id: server.reference_id,
                    refid_for_us: i.refid_for_us,
                    reach: i.reach,
                    prefer: i.prefer,
                    noselect: i.noselect,
                })
            })
            .collect()
    }

    /// One selection round (or the median fallback): updates the system peer, survivors,
    /// verdicts and falseticker runs. Returns (held, selection combined, combined (offset,
    /// jitter, leap)); the combined estimate is `None` when nothing can be combined or the
    /// start-up hold holds.
    fn select_round(
        &mut self,
        now: Instant,
        inputs: &[SourceInput],
    ) -> (bool, bool, Option<(f64, f64, LeapIndicator)>) {
        self.stats.rounds += 1;
        let list = self.candidates(now, inputs);
        let mut combined = None;
        let mut selected = false;
        if !self.median_only() {
            let config =
                SelectConfig { current: self.peer, phi: self.aging_rate(), ..self.config.select };
            let sel = select::select(now, &list, &config);
            if self.startup_hold(now, &list, &sel.verdicts) {
                self.stats.held += 1;
                return (true, false, None);
            }
            self.survivors.clear();
            let mut runs = BTreeMap::new();
            for (id, v) in &sel.verdicts {
                match v {
                    Verdict::SystemPeer | Verdict::Survivor => self.survivors.push(*id),
                    Verdict::Falseticker => {
                        let run = self.falseticker_runs.get(id).copied().unwrap_or(0);
                        let run = run.saturating_add(1);
                        if run == self.config.falseticker_rounds {
                            self.push_event(SteeringEvent::PersistentFalseticker(*id));
                        }
                        runs.insert(*id, run);
                    }
                    _ => {}
                }
            }
            self.falseticker_runs = runs;
            self.fed = feedable(now, &list, &self.survivors, sel.system_peer, config.phi);
            if sel.system_peer != self.peer {
                self.push_event(SteeringEvent::SystemPeer { from: self.peer, to: sel.system_peer });
            }
            self.peer = sel.system_peer;
            if let Some(c) = sel.combined {
                self.stats.selected += 1;
                selected = true;
                combined = Some((c.offset, c.jitter, c.leap));
            }
            self.selection = Some(sel);
        }
        #[cfg(feature = "research")]
        if combined.is_none() && self.config.combine != Combine::Select {
            combined = median_combine(&list);
        }
        if combined.is_some() {
            self.last_round = Some(now);
        }
        (false, selected, combined)
    }

    /// Whether to hold this selection round because the sources are still filling their
    /// filters and not equally far along (start-up only).
    ///
    /// Right after start every filter holds few samples, so every root distance is dominated
    /// by the empty stages (≈ 0.94 s with 4 of 8 filled, 0.44 s with 5, …) and no correctness
    /// interval excludes a source a few ms off until the filters are full. Until then only
    /// clustering can reject a falseticker, and both its φ·λ rule and the system peer choice
    /// compare λ: a source one sample ahead of the others has half their λ, so it wins the
    /// system peer, and a good source one sample behind gets pruned instead of the
    /// falseticker. Measured: one round like that set the clock 17 ms off (1 bad of 4 at
    /// +50 ms). So during start-up a round counts only when every source that has answered
    /// holds the same number of samples and is fit (λ < maxdist): like is compared with like,
    /// RFC 5905's fitness rule applied to all sources at once. Start-up ends when every
    /// answering source has a full filter, or one `minpoll` after the first source became fit
    /// (a lossy source must not hold the clock for long).
    fn startup_hold(
        &mut self,
        now: Instant,
        list: &[Candidate],
        verdicts: &[(AssocId, Verdict)],
    ) -> bool {
        if self.startup_over {
            return false;
        }
        let fit = |v: &Verdict| !matches!(v, Verdict::Unusable(_));
        if self.first_fit.is_none() && verdicts.iter().any(|(_, v)| fit(v)) {
            self.first_fit = Some(now);
        }
        let minpoll = self.config.discipline.minpoll.as_log2().clamp(0, 17);
        let grace = 2f64.powi(i32::from(minpoll));
        if self.first_fit.is_some_and(|t| now.secs_since(t) >= grace) {
            self.startup_over = true;
            return false;
        }
        let answering: Vec<(u32, bool)> = list
            .iter()
            .zip(verdicts)
            .filter(|(c, _)| c.reach != 0)
            .map(|(c, (_, v))| (self.fill.get(&c.id).copied().unwrap_or(0), fit(v)))
            .collect();
        if !answering.is_empty() && answering.iter().all(|&(n, _)| n >= NSTAGE as u32) {
            self.startup_over = true;
            return false;
        }
        let same = answering.windows(2).all(|w| w[0].0 == w[1].0);
        !(same && answering.iter().all(|&(_, fit)| fit))
    }

    fn feed_survivors(&mut self, now: Instant, pending: &[(AssocId, Measurement)]) {
        for (id, m) in pending {
            if self.fed.contains(id) {
                self.feed(now, *m);
            }
        }
    }

    /// As [`Steering::feed_survivors`], noting the round's leap indicator if any sample is fed.
    fn feed_survivors_with_leap(
        &mut self,
        now: Instant,
        pending: &[(AssocId, Measurement)],
        leap: LeapIndicator,
    ) {
        if pending.iter().any(|(id, _)| self.fed.contains(id)) {
            self.leap = Some(leap);
        }
        self.feed_survivors(now, pending);
    }

    fn feed(&mut self, now: Instant, m: Measurement) {
        let action = self.discipline.update_sample(now, m);
        self.stats.updates += 1;
        self.last_offset = Some(m.offset);
        self.apply(now, action);
    }

    /// RFC path: a combined offset to [`Discipline::update`], at the least poll interval.
    fn discipline_update(
        &mut self,
        now: Instant,
        (offset, jitter, leap): (f64, f64, LeapIndicator),
        inputs: &[SourceInput],
    ) {
        self.leap = Some(leap);
        self.stats.updates += 1;
        self.last_offset = Some(offset);
        let poll = inputs.iter().map(|i| i.poll).min().unwrap_or(PollInterval::DEFAULT_MIN);
        let action = self.discipline.update(now, offset, jitter, poll);
        self.apply(now, action);
    }

    fn apply(&mut self, now: Instant, action: ClockAction) {
        match action {
            ClockAction::Step { .. } => self.stats.steps += 1,
            ClockAction::Panic { .. } => self.stats.panics += 1,
            _ => {}
        }
        // `None` too: the model is re-based at `now` exactly as the simulator always did.
        self.applied.apply(now, action);
        if action != ClockAction::None {
            if self.actions.len() >= MAX_QUEUE {
                self.actions.pop_front();
            }
            self.actions.push_back(action);
        }
    }

    fn push_event(&mut self, event: SteeringEvent) {
        if self.events.len() >= MAX_QUEUE {
            self.events.pop_front();
        }
        self.events.push_back(event);
    }
}

/// How much larger than the system peer's root distance a survivor's may be for its samples to
/// reach the discipline.
pub const FEED_LAMBDA_RATIO: f64 = 8.0;
/// ... but a survivor within this root distance (s) is always fed (on a LAN every λ is a few
/// hundred microseconds, and a factor means nothing there).
pub const FEED_LAMBDA_FLOOR: f64 = 0.01;

/// The survivors whose raw samples may steer the clock.
///
/// A survivor is a truechimer: its correctness interval overlaps the majority's. A source that
/// has just joined (a pool replacement, iburst) holds one or two samples, so its interval is
/// seconds wide (empty filter stages count as 16 s of dispersion) and overlaps everything,
/// whatever its offset; and clustering keeps it while there are no more than `minclock`
/// survivors. Feeding its samples would let a fresh falseticker move the clock before its
/// filter is full enough for intersection to reject it (measured: a +50 ms pool member joining
/// two good ones at maxpoll 8 took the clock 50 ms off for 12 minutes, its samples reopening
/// the discipline's outlier gate). So only survivors whose root distance is comparable to the
/// system peer's feed the discipline; the others are used once their filters have filled.
fn feedable(
    now: Instant,
    list: &[Candidate],
    survivors: &[AssocId],
    peer: Option<AssocId>,
    phi: f64,
) -> Vec<AssocId> {
    let lambda = |id: AssocId| {
        list.iter().find(|c| c.id == id).map(|c| select::root_distance_at(now, c, phi))
    };
    let Some(peer_lambda) = peer.and_then(lambda) else { return survivors.to_vec() };
    let bound = (peer_lambda * FEED_LAMBDA_RATIO).max(FEED_LAMBDA_FLOOR);
    survivors
        .iter()
        .copied()
        .filter(|id| Some(*id) == peer || lambda(*id).is_some_and(|l| l <= bound))
        .collect()
}

/// Median of the reachable candidates' offsets (jitter and leap from the median one).
#[cfg(feature = "research")]
fn median_combine(list: &[Candidate]) -> Option<(f64, f64, LeapIndicator)> {
    let mut usable: Vec<&Candidate> = list.iter().filter(|c| c.reach != 0).collect();
    if usable.is_empty() {
        return None;
    }
    usable.sort_by(|a, b| a.offset.total_cmp(&b.offset));
    let n = usable.len();
    let (offset, jitter) = if n % 2 == 1 {
        (usable[n / 2].offset, usable[n / 2].jitter)
    } else {
        let (a, b) = (usable[n / 2 - 1], usable[n / 2]);
        ((a.offset + b.offset) / 2.0, (a.jitter + b.jitter) / 2.0)
    };
    Some((offset, jitter, usable[n / 2].leap))
}

pub mod leap;
#[cfg(test)]
mod tests;
