//! A client association with one NTP server (RFC 5905 §8–10, client mode).
//!
//! # Call protocol
//! ```text
//!            ┌──────────── driver (daemon or simulator) ────────────┐
//!  timer ───►│ handle_timeout(now)                                  │
//!  packet ──►│ handle_packet(now, t4, bytes) -> Result<(), Drop>    │
//!            │ poll_transmit(now, t1) -> Option<Transmit>  ── send ─┼──► network
//!            │ poll_event() -> Option<AssocEvent>          ── act ──┼──► pool, selection, logs
//!            │ poll_timeout() -> Option<Instant>           ── arm ──┼──► one timer
//!            └──────────────────────────────────────────────────────┘
//! ```
//! After any `handle_*` call, drain `poll_transmit` and `poll_event`, then re-arm the timer from
//! `poll_timeout`. A spurious `handle_timeout` (before the deadline) is a harmless no-op.
//!
//! `t1` passed to `poll_transmit` is the wall clock sampled by the driver immediately before it
//! sends; `t4` is the kernel (or, failing that, user-space) receive timestamp.
//!
//! # Anti-spoofing
//! The transmit timestamp field of each request is a fresh random 64-bit nonce, not our clock
//! (as chrony and NTPsec do). A reply is accepted only if its origin timestamp equals the nonce of
//! our latest request, and at most once: an off-path attacker must guess 64 bits, a replay or a
//! duplicate is dropped, and nothing about our clock leaks on the wire. The real T1 stays here.
//!
//! # The poll process
//! The association alone decides when its next request goes out. The interval ([`Self::poll`],
//! [`Association::poll`]) is its own rule (lengthen by one step after 8 polls with a full reach
//! register; back off towards `maxpoll` while unreachable), capped by the discipline's
//! suggestion ([`Association::set_poll_advice`]), within `minpoll..=maxpoll` and never below
//! what a RATE kiss-o'-death asked for. It shortens to `minpoll` again when the server answers
//! after an outage and after a clock step ([`Association::handle_step`]).
//!
//! **Fast repair.** A server that answered recently and then misses a reply is probed every
//! [`PROBE_INTERVAL`] (or its poll interval, if shorter) until it answers or 8 polls have gone
//! unanswered: it is declared unreachable about 7.5 minutes after its first unanswered request,
//! whatever its poll interval (at a 1024 s poll the classic rule takes 2.3 hours). Like the
//! `iburst` requests, these probes are not held to `minpoll` (a RATE kiss-o'-death still is). A
//! new association whose first `iburst` burst (8 requests) goes entirely unanswered is declared
//! unreachable at once, 2 s after its last request, instead of after 8 polls.
//!
//! [`Self::poll`]: AssocSnapshot::poll
//!
//! # What this module does not do
//! It does not choose among servers or steer the clock, and it does not know hostnames: the
//! source that owns the association (a configured server or a pool) does.

pub mod filter;

use std::collections::VecDeque;
use std::net::SocketAddr;

pub use filter::{ClockFilter, FilterEstimate, Sample};

use crate::rng::RngSource;
use crate::time::{Instant, NtpShort, NtpTimestamp, PollInterval};
use crate::wire::{KissCode, LeapIndicator, Mode, NtpHeader, PacketRepr, ReferenceId};

/// Identifies an association for its whole life, across address changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AssocId(pub u32);

/// How early a timer may fire and still count as due. Event-loop timers (tokio's among them)
/// have a granularity of about a millisecond and round sleeps *up*; drivers sleep until the
/// deadline minus this slack, so requests go out on time rather than up to a millisecond late.
/// A poll a millisecond early is harmless: poll intervals are randomized by up to 1/16 anyway.
pub const TIMER_SLACK: core::time::Duration = core::time::Duration::from_millis(1);

/// Number of requests sent in a burst (`burst`, `iburst`), as ntpd.
pub const BURST_COUNT: u8 = 8;
/// Spacing of burst requests, as ntpd's and chrony's 2 s.
pub const BURST_SPACING_SECS: f64 = 2.0;
/// Longest spacing of the requests to a server that stopped answering (64 s): see the module
/// docs ("Fast repair").
pub const PROBE_INTERVAL: PollInterval = PollInterval::DEFAULT_MIN;
/// Root distance above which a server is not usable (RFC 5905 MAXDIST is 1.5 s; the test here
/// is the header test `rootdelay/2 + rootdisp >= MAXDISP`, as in RFC 5905 `packet()`).
pub const MAX_ROOT_DISPERSION: f64 = filter::MAXDISP;

/// Per-association settings (from `server`/`pool` options).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AssocConfig {
    /// Shortest poll interval.
    pub minpoll: PollInterval,
    /// Longest poll interval.
    pub maxpoll: PollInterval,
    /// Burst of [`BURST_COUNT`] requests while the server is unreachable (fast start).
    pub iburst: bool,
    /// Burst of [`BURST_COUNT`] requests at every poll while reachable.
    pub burst: bool,
    /// NTP version to send (1–4).
    pub version: u8,
}

impl Default for AssocConfig {
    fn default() -> Self {
        AssocConfig {
            minpoll: PollInterval::DEFAULT_MIN,
            maxpoll: PollInterval::DEFAULT_MAX,
            iburst: false,
            burst: false,
            version: 4,
        }
    }
}

/// Where an association is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssocState {
    /// No valid reply yet.
    Init,
    /// At least one of the last 8 polls got a valid reply.
    Reachable,
    /// The last 8 polls got no valid reply, after having been reachable or from the start.
    Unreachable,
    /// Stopped; it sends nothing more. The reason is kept.
    Demobilized(DemobilizeReason),
}

impl AssocState {
    /// A stable lower-case name for displays and JSON.
    pub fn name(self) -> &'static str {
        match self {
            AssocState::Init => "init",
            AssocState::Reachable => "reachable",
            AssocState::Unreachable => "unreachable",
            AssocState::Demobilized(_) => "demobilized",
        }
    }
}

/// Why an association stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DemobilizeReason {
    /// The server answered Kiss-o'-Death DENY: access denied.
    KodDeny,
    /// The server answered Kiss-o'-Death RSTR: access restricted.
    KodRstr,
    /// The owner removed it (configuration or control command).
    Removed,
    /// A pool retired it: no valid reply to 8 polls.
    Unreachable,
    /// A pool retired it: the server kept saying it is unsynchronized.
    Unsynchronized,
    /// A pool retired it: selection kept rejecting it as a falseticker.
    Falseticker,
    /// A pool retired it after the first fill: more members answered than the pool needs.
    PrunedExtra,
    /// Its requests reached this rntpd's own server: it would poll itself (a timing loop).
    Loop,
}

impl DemobilizeReason {
    /// A stable kebab-case name for displays, JSON and history.
    pub fn name(self) -> &'static str {
        match self {
            DemobilizeReason::KodDeny => "kod-deny",
            DemobilizeReason::KodRstr => "kod-rstr",
            DemobilizeReason::Removed => "removed",
            DemobilizeReason::Unreachable => "unreachable",
            DemobilizeReason::Unsynchronized => "unsynchronized",
            DemobilizeReason::Falseticker => "falseticker",
            DemobilizeReason::PrunedExtra => "pruned-extra",
            DemobilizeReason::Loop => "loop",
        }
    }
}

/// Something the owner of the association should know about.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AssocEvent {
    /// A reply passed every test and was added to the filter.
    Sample(Sample),
    /// The first valid reply after being unreachable or new.
    Reachable,
    /// No valid reply to the last 8 requests. Emitted once per transition; pools and name
    /// re-resolution act on it.
    Unreachable,
    /// A valid reply from a server that says it is not synchronized (leap 3 or stratum ≥ 16).
    Unsynchronized,
    /// A Kiss-o'-Death that matched our request.
    Kod(KissCode),
    /// The association stopped (after a DENY or RSTR KoD, or on request).
    Demobilized(DemobilizeReason),
}

/// Why a received packet was not used. Each is counted by the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DropReason {
    /// The bytes are not a valid NTP packet.
    Malformed(crate::wire::WireError),
    /// Not a server-mode (4) reply.
    WrongMode,
    /// The origin timestamp is not our latest request's nonce (spoofed, stale or crossed).
    BogusOrigin,
    /// A reply to a request that was already answered (RFC 5905 "duplicate").
    Duplicate,
    /// The transmit timestamp is zero.
    ZeroTransmit,
    /// The server is not synchronized (leap 3, stratum 0 or ≥ 16).
    Unsynchronized,
    /// Root delay/dispersion beyond [`MAX_ROOT_DISPERSION`].
    RootDistance,
    /// The timestamps give a negative round trip beyond clock precision.
    NegativeDelay,
    /// The association is demobilized.
    Demobilized,
    /// A reply to a request sent before the clock was stepped: its timestamps straddle the
    /// step, so it measures the step, not the server.
    ClockStep,
}

impl DropReason {
    /// A stable snake_case label for drop counters.
    pub fn counter_name(&self) -> &'static str {
        match self {
            DropReason::Malformed(e) => e.counter_name(),
            DropReason::WrongMode => "wrong_mode",
            DropReason::BogusOrigin => "bogus_origin",
            DropReason::Duplicate => "duplicate",
            DropReason::ZeroTransmit => "zero_transmit",
            DropReason::Unsynchronized => "unsynchronized",
            DropReason::RootDistance => "root_distance",
            DropReason::NegativeDelay => "negative_delay",
            DropReason::Demobilized => "demobilized",
            DropReason::ClockStep => "clock_step",
        }
    }
}

/// A request to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where to send it.
    pub remote: SocketAddr,
    /// The 48-byte request.
    pub payload: [u8; NtpHeader::LEN],
}

/// What the server last told us about itself (from a valid reply).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ServerInfo {
    /// Leap indicator.
    pub leap: LeapIndicator,
    /// Stratum.
    pub stratum: u8,
    /// Reference id.
    pub reference_id: ReferenceId,
    /// Root delay (s).
    pub root_delay: f64,
    /// Root dispersion (s).
    pub root_dispersion: f64,
    /// Server precision (log2 s).
    pub precision: i8,
    /// Server's poll field.
    pub poll: i8,
}

/// A read-only view for control and metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct AssocSnapshot {
    /// Id.
    pub id: AssocId,
    /// Current remote address.
    pub remote: SocketAddr,
    /// State.
    pub state: AssocState,
    /// Reach register.
    pub reach: u8,
    /// Current poll interval.
    pub poll: PollInterval,
    /// Server's self-description from its last valid reply.
    pub server: Option<ServerInfo>,
    /// Filter estimate.
    pub estimate: Option<FilterEstimate>,
    /// Seconds since the last valid reply.
    pub since_last_reply: Option<f64>,
    /// Last Kiss-o'-Death code received.
    pub last_kod: Option<KissCode>,
    /// Valid replies from a server that said it was unsynchronized, since the last good one.
    pub unsync_replies: u32,
}

/// The request we are waiting on.
#[derive(Debug, Clone, Copy)]
struct Outstanding {
    /// The random value we put in the transmit field; the reply's origin must equal it.
    nonce: NtpTimestamp,
    /// Our clock when we sent it (T1).
    t1: NtpTimestamp,
    /// Sent before a clock step (the reply is dropped).
    before_step: bool,
}

/// What the association's one timer does when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    /// Open a new poll (shift the reach register) and send.
    Poll,
    /// Send the next request of the current burst.
    BurstPacket,
    /// The first `iburst` burst is over: if nothing answered, the server is unreachable.
    SilenceCheck,
}

/// A client association. See the module docs for the call protocol.
#[derive(Debug)]
pub struct Association {
    id: AssocId,
    remote: SocketAddr,
    config: AssocConfig,
    /// Our clock's precision (s), for dispersion and jitter floors.
    local_precision: f64,
    state: AssocState,
    reach: u8,
    /// Polls since the last valid reply, saturating; drives the unreachable transition.
    unanswered: u8,
    /// The interval in use: `own_poll` capped by `advice`, within the bounds.
    poll: PollInterval,
    /// The association's own rule: lengthens after sustained good polls, backs off while
    /// unreachable, restarts at `minpoll` after an outage or a step.
    own_poll: PollInterval,
    /// The discipline's suggestion, once the node has handed one.
    advice: Option<PollInterval>,
    /// The shortest interval the server allows (raised by RATE kiss-o'-death; `MIN` until
    /// then).
    rate_floor: PollInterval,
    /// Consecutive polls with a full reach register, for the simple poll adaptation.
    good_polls: u8,
    /// The current poll's reply was already counted in `good_polls` (a burst's other replies
    /// are not more polls).
    poll_counted: bool,
    /// When the next request is due.
    next_transmit: Option<Instant>,
    /// What the timer does at `next_transmit`.
    next: Next,
    /// While a shorter probe timer is armed after a poll's request: when the next poll is due
    /// if the request is answered.
    regular_next: Option<Instant>,
    /// When the current poll opened.
    poll_started: Option<Instant>,
    /// Requests still to send in the current burst, including the next one.
    burst_left: u8,
    /// The current burst is the `iburst` of a server that never answered.
    first_burst: bool,
    /// The next poll is a burst (after a clock step, with `iburst`).
    burst_next: bool,
    /// A request is ready to send but was made before a clock step.
    ready_before_step: bool,
    outstanding: Option<Outstanding>,
    /// The transmit timestamp of the last accepted reply, for duplicate detection.
    last_server_xmt: NtpTimestamp,
    filter: ClockFilter,
    server: Option<ServerInfo>,
    last_reply: Option<Instant>,
    last_kod: Option<KissCode>,
    unsync_replies: u32,
    events: VecDeque<AssocEvent>,
    want_transmit: bool,
}

impl Association {
    /// A new association; its first request goes out within `first_delay_max` seconds of `now`
    /// (a random fraction of it, so that many associations started together spread out).
    pub fn new(
        id: AssocId,
        remote: SocketAddr,
        config: AssocConfig,
        local_precision: f64,
        now: Instant,
        first_delay_max: f64,
        rng: &mut dyn RngSource,
    ) -> Self {
        let minpoll = config.minpoll.min(config.maxpoll);
        let first = now.add_secs_f64(first_delay_max.max(0.0) * rng.next_f64());
        Association {
            id,
            remote,
            config: AssocConfig { minpoll, ..config },
            local_precision,
            state: AssocState::Init,
            reach: 0,
            unanswered: 0,
            poll: minpoll,
            own_poll: minpoll,
            advice: None,
            rate_floor: PollInterval::MIN,
            good_polls: 0,
            poll_counted: false,
            next_transmit: Some(first),
            next: Next::Poll,
            regular_next: None,
            poll_started: None,
            burst_left: 0,
            first_burst: false,
            burst_next: false,
            ready_before_step: false,
            outstanding: None,
            last_server_xmt: NtpTimestamp::ZERO,
            filter: ClockFilter::new(),
            server: None,
            last_reply: None,
            last_kod: None,
            unsync_replies: 0,
            events: VecDeque::new(),
            want_transmit: false,
        }
    }

    /// The association id.
    pub fn id(&self) -> AssocId {
        self.id
    }

    /// The remote address.
    pub fn remote(&self) -> SocketAddr {
        self.remote
    }

    /// The current state.
    pub fn state(&self) -> AssocState {
        self.state
    }

    /// The reach register.
    pub fn reach(&self) -> u8 {
        self.reach
    }

    /// The current poll interval.
    pub fn poll(&self) -> PollInterval {
        self.poll
    }

    /// When `handle_timeout` should next be called; `None` once demobilized.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.want_transmit {
            // A request is ready to be drained; the driver should not sleep.
            return None;
        }
        self.next_transmit
    }

    /// When the next request is due, whether or not one is waiting to be drained (a node that
    /// drains transmits through its own queue schedules on this; `None` once demobilized).
    pub fn next_transmit(&self) -> Option<Instant> {
        self.next_transmit
    }

    /// The nonce (transmit timestamp) of the request a reply is awaited for, if any: a server
    /// that sees this value in a request knows the request is its own (a timing loop).
    pub fn outstanding_nonce(&self) -> Option<NtpTimestamp> {
        self.outstanding.map(|o| o.nonce)
    }

    /// Whether a request is ready for [`Self::poll_transmit`].
    pub fn wants_transmit(&self) -> bool {
        self.want_transmit
    }

    /// Advances timers. Call when the deadline from [`Self::poll_timeout`] has passed (up to
    /// [`TIMER_SLACK`] early counts as passed); calling earlier is a no-op.
    pub fn handle_timeout(&mut self, now: Instant, rng: &mut dyn RngSource) {
        let Some(due) = self.next_transmit else { return };
        if now + TIMER_SLACK < due || matches!(self.state, AssocState::Demobilized(_)) {
            return;
        }
        match self.next {
            Next::SilenceCheck => {
                // Nothing answered a whole iburst: as unreachable as 8 unanswered polls, and
                // known 2 s after the last request instead of 8 polls later.
                self.first_burst = false;
                if self.last_reply.is_none() && self.state != AssocState::Unreachable {
                    self.state = AssocState::Unreachable;
                    self.unanswered = self.unanswered.max(8);
                    self.events.push_back(AssocEvent::Unreachable);
                }
                self.next = Next::Poll;
                self.next_transmit = self.regular_next.take().map(|t| t.max(now));
                return;
            }
            Next::Poll => self.start_poll(now),
            Next::BurstPacket => {}
        }
        self.want_transmit = true;
        self.schedule_next(now, rng);
    }

    /// Opens a poll: shifts the reach register, notes an unanswered previous poll, and decides
    /// whether this poll is a burst.
    fn start_poll(&mut self, now: Instant) {
        // The previous request is abandoned: a late reply to it must not count.
        let answered = self.outstanding.is_none() && self.unanswered == 0;
        if self.last_reply.is_some() && !answered {
            self.filter.add_gap(now);
        }
        self.reach <<= 1;
        self.unanswered = self.unanswered.saturating_add(1);
        if self.reach == 0 && self.unanswered >= 8 && self.state != AssocState::Unreachable {
            self.state = AssocState::Unreachable;
            self.events.push_back(AssocEvent::Unreachable);
        }
        // Unreachable for long: back off towards maxpoll so a dead server costs little.
        if self.reach == 0 && self.unanswered > 8 {
            self.own_poll = self.own_poll.inc(self.config.maxpoll);
            self.update_poll();
        }
        let first = self.config.iburst && self.reach == 0 && self.unanswered <= 1;
        let burst =
            first || (self.config.burst && self.reach != 0) || std::mem::take(&mut self.burst_next);
        self.first_burst = first && self.last_reply.is_none();
        self.burst_left = if burst { BURST_COUNT } else { 1 };
        self.poll_started = Some(now);
        self.poll_counted = false;
        self.regular_next = None;
    }

    /// Sets the next transmit time: the next burst packet, or the next poll (with a little
    /// randomness so that associations started together drift apart, as ntpd does). After a
    /// poll's last request to a server that answered recently, a shorter probe timer is armed;
    /// a reply moves the next request back to the full interval.
    fn schedule_next(&mut self, now: Instant, rng: &mut dyn RngSource) {
        self.burst_left = self.burst_left.saturating_sub(1);
        let poll_secs = self.poll.as_secs_f64();
        if self.burst_left > 0 {
            self.next = Next::BurstPacket;
            let spacing = BURST_SPACING_SECS.min(poll_secs);
            self.next_transmit = Some(now.add_secs_f64(spacing));
            return;
        }
        self.next = Next::Poll;
        // Within ±1/32 of the nominal interval, so associations started together drift apart
        // while requests average exactly one per poll (a one-sided spread sent 3 % more than
        // configured). A poll at most 1/32 past `maxpoll` is what ntpd's and chrony's
        // randomization allow too. (One draw serves the probe timer too.)
        let early = 1.0 + (rng.next_f64() - 0.5) / 16.0;
        let full = now.add_secs_f64(poll_secs * early);
        let probe = self.probe_interval().as_secs_f64();
        if self.first_burst {
            self.next = Next::SilenceCheck;
            self.regular_next = Some(full);
            self.next_transmit = Some(now.add_secs_f64(BURST_SPACING_SECS.min(poll_secs)));
        } else if self.reach != 0 && !self.poll_counted && probe < poll_secs {
            // (A burst already answered in this poll needs no probe.)
            self.regular_next = Some(full);
            self.next_transmit = Some(now.add_secs_f64(probe * early));
        } else {
            self.regular_next = None;
            self.next_transmit = Some(full);
        }
    }

    /// The spacing of requests to a server that stopped answering: [`PROBE_INTERVAL`], or the
    /// poll interval if shorter, never below a RATE kiss-o'-death's floor.
    fn probe_interval(&self) -> PollInterval {
        PROBE_INTERVAL.max(self.rate_floor).min(self.poll)
    }

    /// Recomputes the interval in use from the association's own rule, the discipline's
    /// advice (followed only while the server answers) and the bounds.
    fn update_poll(&mut self) {
        let min = self.config.minpoll.max(self.rate_floor);
        let max = self.config.maxpoll.max(min);
        let mut poll = self.own_poll;
        if let (Some(advice), true) = (self.advice, self.reach != 0) {
            poll = poll.min(advice);
        }
        self.poll = poll.clamp(min, max);
    }

    /// After the interval shortened: the next poll is due no later than one (new) interval
    /// after the current poll opened (and not before `now`).
    fn retime(&mut self, now: Instant) {
        if self.next != Next::Poll {
            return;
        }
        let Some(start) = self.poll_started else { return };
        let due = start.add_secs_f64(self.poll.as_secs_f64()).max(now);
        match self.regular_next.as_mut() {
            Some(regular) => *regular = (*regular).min(due),
            None => self.next_transmit = self.next_transmit.map(|t| t.min(due)),
        }
    }

    /// The discipline's suggested poll interval (after each clock update). The association
    /// polls no less often than this while its server answers; a shorter suggestion takes
    /// effect at once.
    pub fn set_poll_advice(&mut self, now: Instant, advice: PollInterval) {
        if matches!(self.state, AssocState::Demobilized(_)) {
            return;
        }
        let before = self.poll;
        self.advice = Some(advice);
        self.update_poll();
        if self.poll < before {
            self.retime(now);
        }
    }

    /// The clock was stepped (control mode). A reply to a request sent before now would
    /// measure the step, not the server: it is dropped ([`DropReason::ClockStep`]). The filter
    /// restarts, as its samples are relative to the clock before the step, and polling restarts
    /// at `minpoll` (with a burst if `iburst` is set) to refill it. The next request goes out no
    /// sooner than [`BURST_SPACING_SECS`] from now, so that the driver has executed the step
    /// before it reads the request's transmit time.
    pub fn handle_step(&mut self, now: Instant) {
        if matches!(self.state, AssocState::Demobilized(_)) {
            return;
        }
        if let Some(out) = self.outstanding.as_mut() {
            out.before_step = true;
        }
        // A request already made but not yet sent gets its T1 before the driver steps.
        self.ready_before_step = self.want_transmit;
        self.filter.reset();
        self.good_polls = 0;
        self.own_poll = self.config.minpoll;
        self.update_poll();
        self.burst_next = self.config.iburst;
        if self.next == Next::Poll {
            let start = self.poll_started.unwrap_or(now);
            let due = start
                .add_secs_f64(self.poll.as_secs_f64())
                .max(now.add_secs_f64(BURST_SPACING_SECS));
            self.regular_next = None;
            self.next_transmit = self.next_transmit.map(|t| t.min(due));
        }
    }

    /// The request to send, if one is due. `t1` is the wall clock sampled immediately before the
    /// driver sends it.
    pub fn poll_transmit(&mut self, t1: NtpTimestamp, rng: &mut dyn RngSource) -> Option<Transmit> {
        if !self.want_transmit {
            return None;
        }
        self.want_transmit = false;
        // A zero nonce would collide with "unset"; a random 64-bit value is zero with
        // negligible probability, but avoid it anyway.
        let nonce = NtpTimestamp::from_bits(rng.next_u64().max(1));
        let before_step = std::mem::take(&mut self.ready_before_step);
        self.outstanding = Some(Outstanding { nonce, t1, before_step });
        let header = NtpHeader {
            leap: LeapIndicator::Unsynchronized,
            version: self.config.version,
            mode: Mode::Client,
            stratum: 0,
            poll: self.poll.as_log2(),
            precision: 0,
            root_delay: NtpShort::ZERO,
            root_dispersion: NtpShort::ZERO,
            reference_id: ReferenceId::from_bytes([0; 4]),
            reference_ts: NtpTimestamp::ZERO,
            origin_ts: NtpTimestamp::ZERO,
            receive_ts: NtpTimestamp::ZERO,
            transmit_ts: nonce,
        };
        Some(Transmit { remote: self.remote, payload: header.to_bytes() })
    }

    /// The next event for the owner, if any.
    pub fn poll_event(&mut self) -> Option<AssocEvent> {
        self.events.pop_front()
    }

    /// Processes a datagram from the remote. `t4` is when it arrived (wall clock).
    ///
    /// Returns why it was dropped, for the driver's counters. Nothing here panics on any input.
    pub fn handle_packet(
        &mut self,
        now: Instant,
        t4: NtpTimestamp,
        bytes: &[u8],
    ) -> Result<(), DropReason> {
        if matches!(self.state, AssocState::Demobilized(_)) {
            return Err(DropReason::Demobilized);
        }
        let repr = PacketRepr::parse(bytes).map_err(DropReason::Malformed)?;
        let h = repr.header;
        if h.mode != Mode::Server {
            return Err(DropReason::WrongMode);
        }
        let Some(out) = self.outstanding else {
            // Either nothing was asked, or the request was already answered.
            return Err(if !h.transmit_ts.is_zero() && h.transmit_ts == self.last_server_xmt {
                DropReason::Duplicate
            } else {
                DropReason::BogusOrigin
            });
        };
        if h.origin_ts != out.nonce {
            return Err(DropReason::BogusOrigin);
        }
        // The reply matches our latest request: whatever it says, it answers it. Consuming the
        // nonce here makes any copy of it a duplicate.
        self.outstanding = None;

        if let Some(code) = h.kiss_code() {
            self.handle_kod(now, code);
            return Ok(());
        }
        if h.transmit_ts.is_zero() {
            return Err(DropReason::ZeroTransmit);
        }
        self.last_server_xmt = h.transmit_ts;
        if h.leap == LeapIndicator::Unsynchronized || h.stratum == 0 || h.stratum >= 16 {
            self.unsync_replies = self.unsync_replies.saturating_add(1);
            self.events.push_back(AssocEvent::Unsynchronized);
            return Err(DropReason::Unsynchronized);
        }
        let root_delay = h.root_delay.to_secs_f64();
        let root_dispersion = h.root_dispersion.to_secs_f64();
        if root_delay / 2.0 + root_dispersion >= MAX_ROOT_DISPERSION {
            return Err(DropReason::RootDistance);
        }
        if out.before_step {
            // The server answered, but T1 and T4 come from either side of the step.
            self.reach |= 1;
            self.unanswered = 0;
            self.resume_regular_polls();
            return Err(DropReason::ClockStep);
        }

        // RFC 5905 §8: θ = ((T2 − T1) + (T3 − T4)) / 2, δ = (T4 − T1) − (T3 − T2). Differences
        // first, in 32.32 fixed point, so nothing is lost to float rounding of 2^32-size values.
        let t1 = out.t1;
        let (t2, t3) = (h.receive_ts, h.transmit_ts);
        let offset = ((t2 - t1) + (t3 - t4)).to_secs_f64() / 2.0;
        let raw_delay = ((t4 - t1) - (t3 - t2)).to_secs_f64();
        let server_precision = 2f64.powi(i32::from(h.precision));
        let precision = self.local_precision + server_precision;
        if raw_delay < -precision {
            return Err(DropReason::NegativeDelay);
        }
        let delay = raw_delay.max(self.local_precision);
        let elapsed = (t4 - t1).to_secs_f64().max(0.0);
        let sample =
            Sample { offset, delay, dispersion: precision + filter::PHI * elapsed, time: now };

        self.server = Some(ServerInfo {
            leap: h.leap,
            stratum: h.stratum,
            reference_id: h.reference_id,
            root_delay,
            root_dispersion,
            precision: h.precision,
            poll: h.poll,
        });
        self.unsync_replies = 0;
        self.reach |= 1;
        self.unanswered = 0;
        self.last_reply = Some(now);
        self.filter.add(sample);
        if self.state != AssocState::Reachable {
            if self.state == AssocState::Unreachable {
                // Back after an outage: poll at minpoll again to refill the filter quickly.
                self.own_poll = self.config.minpoll;
                self.good_polls = 0;
            }
            self.state = AssocState::Reachable;
            self.events.push_back(AssocEvent::Reachable);
            // An iburst in progress has done its job once the server answers consistently;
            // ntpd keeps going, but the remaining requests add load and little information.
        }
        self.adapt_poll();
        let before = self.poll;
        self.update_poll();
        if self.poll < before {
            self.retime(now);
        }
        self.resume_regular_polls();
        self.events.push_back(AssocEvent::Sample(sample));
        Ok(())
    }

    /// The server answered this poll: no probing, the next poll is a full interval away.
    fn resume_regular_polls(&mut self) {
        match self.next {
            Next::Poll => {
                if let Some(regular) = self.regular_next.take() {
                    self.next_transmit = Some(regular);
                }
            }
            Next::SilenceCheck => {
                self.first_burst = false;
                self.next = Next::Poll;
                self.next_transmit = self.regular_next.take().or(self.next_transmit);
            }
            Next::BurstPacket => {}
        }
    }

    /// The association's own rule: lengthen the interval after a full register of good polls,
    /// up to `maxpoll`.
    fn adapt_poll(&mut self) {
        if std::mem::replace(&mut self.poll_counted, true) {
            return;
        }
        if self.reach == 0xFF {
            self.good_polls = self.good_polls.saturating_add(1);
            if self.good_polls >= 8 {
                self.good_polls = 0;
                self.own_poll = self.own_poll.max(self.poll).inc(self.config.maxpoll);
            }
        } else {
            self.good_polls = 0;
        }
    }

    fn handle_kod(&mut self, now: Instant, code: KissCode) {
        self.last_kod = Some(code);
        self.events.push_back(AssocEvent::Kod(code));
        match code {
            KissCode::Deny => self.demobilize(DemobilizeReason::KodDeny),
            KissCode::Rstr => self.demobilize(DemobilizeReason::KodRstr),
            KissCode::Rate => {
                // RFC 5905 §7.4: reduce the rate. Back off one step beyond the current interval
                // (at least minpoll+1), never poll faster than that again (probes included),
                // and cancel any burst in progress.
                self.rate_floor = self.poll.inc(self.config.maxpoll).max(self.config.minpoll);
                self.own_poll = self.own_poll.max(self.rate_floor);
                self.update_poll();
                self.burst_left = 0;
                self.burst_next = false;
                self.first_burst = false;
                self.next = Next::Poll;
                self.regular_next = None;
                self.good_polls = 0;
                self.next_transmit = Some(now.add_secs_f64(self.poll.as_secs_f64()));
            }
            // Unknown codes carry no defined meaning: note them and keep going (RFC 5905 says
            // the client should treat the packet as a KoD, i.e. not as a sample).
            _ => {}
        }
    }

    /// Stops the association for good; it sends nothing more.
    pub fn demobilize(&mut self, reason: DemobilizeReason) {
        if matches!(self.state, AssocState::Demobilized(_)) {
            return;
        }
        self.state = AssocState::Demobilized(reason);
        self.next_transmit = None;
        self.regular_next = None;
        self.want_transmit = false;
        self.outstanding = None;
        self.events.push_back(AssocEvent::Demobilized(reason));
    }

    /// Moves the association to a new address, keeping its id (used when a name re-resolves
    /// to another address). Filter, reach and server info are reset; polling restarts at
    /// `minpoll`, with an iburst if configured.
    pub fn change_remote(&mut self, now: Instant, remote: SocketAddr) {
        self.remote = remote;
        self.filter.reset();
        self.reach = 0;
        self.unanswered = 0;
        self.good_polls = 0;
        self.own_poll = self.config.minpoll;
        self.rate_floor = PollInterval::MIN;
        self.update_poll();
        self.outstanding = None;
        self.server = None;
        self.last_reply = None;
        self.last_kod = None;
        self.unsync_replies = 0;
        self.last_server_xmt = NtpTimestamp::ZERO;
        self.state = AssocState::Init;
        self.burst_left = 0;
        self.first_burst = false;
        self.burst_next = false;
        self.ready_before_step = false;
        self.next = Next::Poll;
        self.regular_next = None;
        self.poll_started = None;
        self.next_transmit = Some(now);
    }

    /// The filter's current estimate.
    pub fn estimate(&self, now: Instant) -> Option<FilterEstimate> {
        self.filter.estimate(now, self.local_precision)
    }

    /// A read-only view for control and metrics.
    pub fn snapshot(&self, now: Instant) -> AssocSnapshot {
        AssocSnapshot {
            id: self.id,
            remote: self.remote,
            state: self.state,
            reach: self.reach,
            poll: self.poll,
            server: self.server,
            estimate: self.estimate(now),
            since_last_reply: self.last_reply.map(|t| now.secs_since(t)),
            last_kod: self.last_kod,
            unsync_replies: self.unsync_replies,
        }
    }
}

#[cfg(test)]
mod tests;
