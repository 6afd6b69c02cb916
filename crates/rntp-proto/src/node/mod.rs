//! The node: the whole of rntpd's NTP logic behind one sans-IO state machine.
//!
//! [`Node`] owns the source manager (names, pools, re-resolution), every association, the
//! steering (selection and discipline), the server's system state and responder, and every
//! timer. It reads no clock, opens no socket and draws no randomness of its own (the RNG is
//! injected). Two drivers run it: the daemon (`rntpd`, a thin tokio shell that moves bytes,
//! runs DNS lookups and executes clock requests) and the simulator (`rntp-sim`, virtual time).
//! Both drive this same code, so what the simulator measures is what the daemon runs.
//!
//! # Call protocol
//! ```text
//!                       ┌──────────────────────── Node ─────────────────────────┐
//!  datagram ───────────►│ handle_packet(now, local, remote, t4, bytes)          │
//!  (server fast path) ─►│ respond(now, rx, client, request, out) -> ServerAction│
//!  (mode 6, more)     ◄─│ poll_control_reply(out)  ─► rest of an ntpq answer   │
//!  DNS answer ─────────►│ handle_resolved(now, source, result)                  │
//!  timer ──────────────►│ handle_timeout(now)                                   │
//!  rntpctl, :config ───►│ handle_command(now, command)                          │
//!  manycast group ─────►│ respond_manycast(now, rx, client, request, out)       │
//!  clock executor ─────►│ handle_clock_result(now, result)                      │
//!                       │                                                       │
//!                       │ poll_transmit(now, wall) ─► send (socket per `local`) │
//!                       │ poll_lookup()            ─► start a DNS lookup        │
//!                       │ poll_clock()             ─► adjust the clock          │
//!                       │ poll_event()             ─► log                       │
//!                       │ poll_stats()             ─► statistics files          │
//!                       │ poll_timeout()           ─► arm the one timer         │
//!                       └───────────────────────────────────────────────────────┘
//! ```
//! After any `handle_*` call, drain `poll_transmit` (sampling the wall clock for each: it is
//! the request's T1, or a reply's transmit time), `poll_lookup`, `poll_clock` and
//! `poll_event`, then sleep until `poll_timeout()` (`None`: no timer at all). A spurious
//! `handle_timeout` is a harmless no-op. Every lookup must be answered with exactly one
//! `handle_resolved` (a lookup the driver gives up on is an error answer, never silence).
//!
//! Within one call everything happens in order and at once: an association's sample reaches
//! the steering together with its own filter state, a move resets the steering's view of the
//! association in the same step, and a reply that arrives for an address the association no
//! longer uses is dropped (counted as `wrong_remote`). Nothing is read back from a registry.

mod auth;
mod config;
mod loops;
mod manycast;
mod mode6;
mod mru;
mod reload;
mod remote;
mod stats;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_auth;
mod view;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{IpAddr, SocketAddr};

pub use auth::AuthConfig;
#[cfg(feature = "research")]
pub use config::Research;
pub use config::{ClockMode, ConfiguredSource, NodeConfig, DEFAULT_MAXCLOCK, DEFAULT_MAXSOURCES};
pub use manycast::{ManycastCounters, NONCES_KEPT};
pub use mode6::ControlCounters;
pub use reload::{ReloadReport, SourceChange};
pub use remote::{ConfigParser, RemoteCommand, RemoteConfigError, CONFIG_SUCCEEDED};
pub use stats::{resolve_error_label, SourceTotals, StatsRecord};
pub use view::{
    ClientCounters, HistoryEntry, HistoryKind, PeerKind, PeerView, ServerView, ServingAs,
    SourceView, StatusView,
};

use crate::assoc::{AssocEvent, AssocId, AssocSnapshot, AssocState, Association, TIMER_SLACK};
use crate::discipline::{ClockAction, ClockRate, DisciplineState};
use crate::rng::RngSource;
use crate::select::Unusable;
use crate::server::{IgnoreReason, ReplyKind, Responder, ServerAction, SystemState};
use crate::source::{
    AddError, AddrFamily, ResolveError, Resolved, SourceAction, SourceEvent, SourceId, SourceKind,
    SourceManager, Target,
};
use crate::steer::leap::LeapDecision;
use crate::steer::{Reference, RoundOutcome, SourceInput, Steering, SteeringConfig};
use crate::time::{Instant, NtpDuration, NtpTimestamp};
use crate::wire::{LeapIndicator, ReferenceId};

/// Spread (s) of the first requests of associations started together, so that a pool's
/// members or a file's servers do not all send in the same millisecond. The first clock update
/// waits for the fourth iburst sample of the *last* of them (selection's start-up hold), so
/// the spread adds to the start: 0.25 s brings a 50 ms start to below 1 ms within 6.9 s on
/// every one of 100 simulated seeds, where 0.5 s took up to 7.1 s (`rntp-sim stats`).
pub const FIRST_POLL_SPREAD: f64 = 0.25;
/// Consecutive falseticker rounds before a pool member is replaced. Rounds run after every
/// sample, so with 4 members at 64 s this is about two and a half minutes of disagreement:
/// long enough to ride out a bad sample or two.
pub const FALSETICKER_ROUNDS: u32 = 10;
/// How often the drift file is saved while the frequency is known (and once more at exit).
pub const DRIFT_SAVE_INTERVAL: f64 = 3_600.0;
/// History entries kept for `rntpctl history` (totals are kept for ever).
pub const HISTORY_LEN: usize = 1_000;
/// Events and requests queued for a driver that does not drain them, at most.
const MAX_QUEUE: usize = 4_096;
/// Unix time near which NTP timestamps are read for leap seconds (2026): right for 68 years
/// either side.
const LEAP_ERA_REFERENCE: i64 = 1_767_225_600;
/// Largest server reply the general path builds (a 48-byte reply plus the longest MAC).
const SERVER_REPLY_MAX: usize = 72;

/// Which socket a datagram arrived on or must leave from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Local {
    /// The client socket of an association (connected to its server).
    Client(AssocId),
    /// A server socket bound to this `interface listen` address.
    Server(SocketAddr),
    /// The socket of a manycast client (`manycastclient GROUP`): solicitations leave from it
    /// to the group, servers answer to it by unicast.
    Manycast(SourceId),
}

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// The socket to send it from.
    pub local: Local,
    /// Where to.
    pub remote: SocketAddr,
    /// The bytes.
    pub payload: Vec<u8>,
    /// For a multicast destination: the TTL (IPv4) or hop limit (IPv6) to send with.
    pub ttl: Option<u8>,
}

/// A DNS lookup to start; answer it with [`Node::handle_resolved`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    /// The source asking.
    pub source: SourceId,
    /// The name.
    pub name: String,
    /// Which record types are wanted (`-4`: A only, `-6`: AAAA only).
    pub family: AddrFamily,
}

/// Something for the clock executor (control mode only). Each is one `adjtimex` call on Linux,
/// with exactly the values given: the node's model of the clock (already updated) is exact
/// only if the kernel gets them unchanged.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ClockRequest {
    /// Run the clock at this rate until the next request: `ADJ_FREQUENCY | ADJ_TICK`. Offsets
    /// are slewed this way (a rate above or below the frequency for a planned time), never
    /// with `adjtime()`.
    Rate(ClockRate),
    /// Step by `offset` seconds (positive: forward), then run at `rate`: `ADJ_SETOFFSET |
    /// ADJ_NANO | ADJ_FREQUENCY | ADJ_TICK`. The kernel clears its NTP state on a step
    /// (`STA_UNSYNC` set, a pending leap second disarmed), so a [`ClockRequest::Status`] always
    /// follows.
    Step {
        /// The step (s).
        offset: f64,
        /// The rate from the step on.
        rate: ClockRate,
    },
    /// Tell the kernel the synchronization state (leap warning, error bounds), so other
    /// programs reading `adjtimex` see it and the kernel inserts or deletes a leap second at
    /// the end of the UTC day: `ADJ_STATUS | ADJ_MAXERROR | ADJ_ESTERROR`, `STA_INS`/`STA_DEL`
    /// armed only on the day of the leap.
    Status {
        /// Whether a system peer is selected and tracked.
        synchronized: bool,
        /// The leap indicator to arm.
        leap: LeapIndicator,
        /// Maximum error (s).
        max_error: f64,
        /// Estimated error (s).
        est_error: f64,
    },
    /// Save this frequency (ppm) in the drift file (hourly while it is known).
    SaveDrift {
        /// The frequency correction.
        freq_ppm: f64,
    },
}

/// Something worth logging, in the order it happened.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeEvent {
    /// A source manager event (lookups, mobilizations, moves, retirements), with the name
    /// of the source (kept even when the source was just removed).
    Source {
        /// The source's name or address.
        name: String,
        /// What happened.
        event: SourceEvent,
    },
    /// A configured or added source was not taken.
    SourceRejected {
        /// Where it was configured.
        origin: String,
        /// Why.
        error: AddError,
        /// Where the source it duplicates was configured.
        first_origin: Option<String>,
        /// It is a `server NAME` duplicate: `pool NAME` would poll several servers.
        pool_hint: bool,
    },
    /// An association event: reachable, unreachable, kiss-o'-death, stopped.
    Assoc {
        /// The association.
        assoc: AssocId,
        /// Its source's name.
        source_name: String,
        /// Its server.
        remote: SocketAddr,
        /// What happened.
        event: AssocEvent,
    },
    /// The system peer changed (`to: None`: too few sources agree).
    SystemPeer {
        /// The previous one.
        from: Option<AssocId>,
        /// The new one.
        to: Option<AssocId>,
        /// The combined offset (s) and stratum at the change.
        offset: Option<f64>,
        /// Our stratum from now on.
        stratum: Option<u8>,
    },
    /// The clock was stepped (in observe mode: the virtual clock).
    ClockStepped {
        /// The step (s).
        offset: f64,
    },
    /// The discipline refused an offset beyond the panic threshold.
    ClockPanic {
        /// The offset (s).
        offset: f64,
    },
    /// The driver may close this association's socket: the association is gone.
    AssocClosed(AssocId),
    /// The driver may close this manycast client's socket: the source was removed.
    ManycastClosed(SourceId),
    /// A keyed request could not be sent (`outgoing`: the key is not usable) or a reply did
    /// not authenticate (dropped; counted under the error's counter name).
    AuthFailed {
        /// The association, if the packet was one's.
        assoc: Option<AssocId>,
        /// Its source's name.
        source_name: String,
        /// The server (or the manycast group).
        remote: SocketAddr,
        /// Why.
        error: crate::auth::AuthError,
        /// The failure was on sending (no usable key), not on a reply.
        outgoing: bool,
    },
    /// A `:config` request was applied or refused.
    RemoteConfig {
        /// Who asked.
        client: IpAddr,
        /// The configuration text.
        text: String,
        /// What was done, or why not.
        outcome: Result<String, String>,
    },
    /// An association's request arrived at our own server: it polled this rntpd (a timing
    /// loop). The association is stopped and the address is never used again.
    OwnRequest {
        /// The association.
        assoc: AssocId,
        /// The address it polled.
        remote: SocketAddr,
        /// The source address the request came from.
        seen_from: IpAddr,
    },
}

/// A runtime command (`rntpctl add/remove/refresh`).
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Add a source.
    Add(ConfiguredSource),
    /// Remove the source with this name or address, and its associations.
    Remove(String),
    /// Re-resolve this source now, or every named source.
    Refresh(Option<String>),
}

/// What a [`Command`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandReply {
    /// The new source.
    Added(SourceId),
    /// The source removed, and the associations it stopped.
    Removed {
        /// The source.
        source: SourceId,
        /// Its associations.
        associations: Vec<AssocId>,
    },
    /// The named sources whose lookup was started or queued.
    Refreshing(Vec<SourceId>),
}

/// Why a [`Command`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// No source has that name or address.
    #[error("no source named `{0}` (see `rntpctl sources`)")]
    NotFound(String),
    /// The source manager refused it.
    #[error(transparent)]
    Refused(#[from] AddError),
}

impl CommandError {
    /// A stable name for counters.
    pub fn counter_name(&self) -> &'static str {
        match self {
            CommandError::NotFound(_) => "not_found",
            CommandError::Refused(_) => "refused",
        }
    }
}

/// One association and what the node keeps beside it.
#[derive(Debug)]
struct Slot {
    assoc: Association,
    source: SourceId,
    /// Its deadline as filed in the node's schedule.
    scheduled: Option<Instant>,
    drops: BTreeMap<&'static str, u64>,
    /// For a keyed source: whether the last reply carried a valid MAC (ntpq's `auth`).
    authentic: Option<bool>,
}

/// A server reply built on the general path, waiting for its transmit timestamp.
#[derive(Debug)]
struct PendingReply {
    local: SocketAddr,
    remote: SocketAddr,
    payload: Vec<u8>,
}

/// Names and origins of sources, kept past their removal for the events that follow it.
#[derive(Debug, Default)]
struct Names {
    origin: BTreeMap<SourceId, String>,
    removed: BTreeMap<SourceId, String>,
}

/// The sans-IO NTP node. See the module docs for the call protocol.
pub struct Node {
    mode: ClockMode,
    rng: Box<dyn RngSource + Send>,
    started: Instant,
    precision_log2: i8,
    orphan: Option<u8>,
    listen: Vec<SocketAddr>,
    drift_file: bool,
    sources: SourceManager,
    names: Names,
    assocs: BTreeMap<AssocId, Slot>,
    /// Association deadlines, earliest first (a timer table for any number of associations).
    schedule: BTreeSet<(Instant, AssocId)>,
    /// Associations with a request ready to build and send.
    ready: VecDeque<AssocId>,
    steering: Steering,
    /// Timing-loop detection: our addresses, our requests' nonces.
    loops: loops::Loops,
    /// Associations kept out of selection by the node itself (timing loop, orphan stratum),
    /// and why: shown as their verdict.
    excluded: BTreeMap<AssocId, Unusable>,
    responder: Responder,
    system: SystemState,
    /// When the clock was last set, in the node's (served) time.
    reference_time: NtpTimestamp,
    /// The latest (monotonic, wall) pair the driver gave, to estimate the wall clock at `now`.
    last_wall: Option<(Instant, NtpTimestamp)>,
    server_out: VecDeque<PendingReply>,
    /// Manycast solicitations to send.
    manycast_out: VecDeque<Transmit>,
    /// Manycast client state (solicitation nonces, counters).
    manycast: manycast::ManycastClient,
    lookups: VecDeque<Lookup>,
    clock_requests: VecDeque<ClockRequest>,
    events: VecDeque<NodeEvent>,
    history: VecDeque<HistoryEntry>,
    history_totals: BTreeMap<String, u64>,
    counters: ClientCounters,
    drift_saved: Option<Instant>,
    clock_error: Option<(Instant, String)>,
    /// Mode 6 (ntpq) state.
    control: mode6::Control,
    /// Statistics records and per-source totals.
    monitor: stats::Monitor,
    /// The configuration in force, for reloads ([`Node::handle_config`]).
    applied: reload::Applied,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("mode", &self.mode)
            .field("sources", &self.sources.snapshot().len())
            .field("associations", &self.assocs.len())
            .field("system", &self.system)
            .finish_non_exhaustive()
    }
}

impl Node {
    /// A node built from `config` at `now`. Address sources mobilize at once, names ask for
    /// lookups; duplicates and refused sources are reported as [`NodeEvent::SourceRejected`].
    pub fn new(now: Instant, config: NodeConfig, rng: Box<dyn RngSource + Send>) -> Self {
        let discipline = config.discipline();
        let reference = match config.clock {
            ClockMode::Observe => Reference::FreeRunning,
            ClockMode::Control => Reference::Disciplined,
        };
        let steering_config = SteeringConfig {
            discipline,
            select: config.select,
            reference,
            falseticker_rounds: FALSETICKER_ROUNDS,
            ..SteeringConfig::default()
        };
        #[cfg(feature = "research")]
        let steering_config = SteeringConfig {
            feed: config.research.feed,
            combine: config.research.combine,
            ..steering_config
        };
        // Observe mode never uses the drift file: it may belong to a daemon that controls this
        // clock, whose frequency is already in the kernel.
        let initial_freq = match config.clock {
            ClockMode::Observe => None,
            ClockMode::Control => config.initial_freq_ppm,
        };
        let mut rng = rng;
        let seed = rng.next_u64();
        let mut node = Node {
            mode: config.clock,
            started: now,
            precision_log2: config.precision_log2,
            orphan: config.orphan,
            listen: config.listen.clone(),
            drift_file: config.drift_file && config.clock == ClockMode::Control,
            sources: SourceManager::new(config.resolve, config.maxclock),
            names: Names::default(),
            assocs: BTreeMap::new(),
            schedule: BTreeSet::new(),
            ready: VecDeque::new(),
            steering: Steering::new(steering_config, initial_freq),
            loops: loops::Loops::new(&config.listen),
            excluded: BTreeMap::new(),
            responder: Responder::new(config.server.clone(), seed),
            system: initial_system_state(config.precision_log2, config.orphan),
            reference_time: NtpTimestamp::ZERO,
            last_wall: None,
            server_out: VecDeque::new(),
            manycast_out: VecDeque::new(),
            manycast: manycast::ManycastClient::default(),
            lookups: VecDeque::new(),
            clock_requests: VecDeque::new(),
            events: VecDeque::new(),
            history: VecDeque::new(),
            history_totals: BTreeMap::new(),
            counters: ClientCounters::default(),
            drift_saved: None,
            clock_error: None,
            control: mode6::Control::new(seed),
            monitor: stats::Monitor::default(),
            applied: reload::Applied::new(&config),
            rng,
        };
        node.set_keys(config.auth);
        node.sources.set_ttl_ring(&config.ttl_ring);
        node.steering.set_leap_config(config.leap.clone());
        // A drift file's frequency is the first clock request (control mode).
        node.drain_steering_actions(now);
        let own: Vec<SocketAddr> = node.loops.own().collect();
        node.sources.add_own_addresses(own);
        for source in config.sources {
            // Refusals are reported as events.
            let _ = node.add_from_files(now, source);
        }
        node.process(now);
        node
    }

    // ----- inputs ---------------------------------------------------------------------

    /// A datagram arrived on `local` from `remote` at wall-clock time `t4` (kernel receive
    /// timestamp when available). Malformed, spoofed, stale and unwanted datagrams are
    /// dropped and counted; nothing here panics.
    pub fn handle_packet(
        &mut self,
        now: Instant,
        local: Local,
        remote: SocketAddr,
        t4: NtpTimestamp,
        bytes: &[u8],
    ) {
        self.note_wall(now, t4);
        match local {
            Local::Client(id) => self.client_packet(now, id, remote, t4, bytes),
            Local::Manycast(source) => self.manycast_packet(now, source, remote, bytes),
            Local::Server(addr) if mode6::is_control(bytes) => {
                let mut out = [0u8; crate::mode6::MAX_SIGNED_DATAGRAM_LEN];
                let mut len = match self.respond_from(now, t4, remote, bytes, &mut out) {
                    ServerAction::Reply { len, .. } => Some(len),
                    ServerAction::Ignore(_) => None,
                };
                while let Some(n) = len {
                    let payload = out.get(..n).unwrap_or_default().to_vec();
                    push_bounded(
                        &mut self.server_out,
                        PendingReply { local: addr, remote, payload },
                    );
                    len = self.poll_control_reply(&mut out);
                }
            }
            Local::Server(addr) => {
                let mut out = [0u8; SERVER_REPLY_MAX];
                if let ServerAction::Reply { len, .. } =
                    self.respond_from(now, t4, remote, bytes, &mut out)
                {
                    let payload = out.get(..len).unwrap_or_default().to_vec();
                    push_bounded(
                        &mut self.server_out,
                        PendingReply { local: addr, remote, payload },
                    );
                }
            }
        }
    }

    /// The server fast path: answers one request into `out` at once (the driver sends it after
    /// [`Node::finish_reply`]). `rx` is the wall-clock receive time; the node serves its own
    /// time (in observe mode the virtual clock's). Same decisions and counters as a request
    /// passed to [`Node::handle_packet`].
    ///
    /// Mode 6 (ntpq) queries are answered here too (see `node/mode6.rs` and
    /// [`crate::mode6`]), if `restrict` and the query rate limit allow: the first datagram of
    /// the answer goes to `out` (which needs [`crate::mode6::MAX_DATAGRAM_LEN`] octets for
    /// them) with [`ReplyKind::Control`], and the driver
    /// sends the rest, from [`Node::poll_control_reply`], right after it.
    ///
    /// Every NTP packet `restrict` does not `ignore` is counted in the MRU list
    /// (`ntpq -c mrulist`), under port 0 here: drivers that know the source port call
    /// [`Node::respond_from`].
    pub fn respond(
        &mut self,
        now: Instant,
        rx: NtpTimestamp,
        client: IpAddr,
        request: &[u8],
        out: &mut [u8],
    ) -> ServerAction {
        self.respond_from(now, rx, SocketAddr::new(client, 0), request, out)
    }

    /// [`Node::respond`] for a client whose source port is known (the MRU list shows it).
    pub fn respond_from(
        &mut self,
        now: Instant,
        rx: NtpTimestamp,
        client: SocketAddr,
        request: &[u8],
        out: &mut [u8],
    ) -> ServerAction {
        if mode6::is_control(request) {
            return self.respond_control(now, rx, client.ip(), request, out);
        }
        let ip = client.ip();
        if let Some(assoc) = self.loops.request_from_us(request) {
            self.own_request(now, assoc, ip);
        }
        let served = self.served_time(now, rx);
        let src = canonical(ip);
        let (action, flags) =
            self.responder.respond_flagged(now, served, src, request, &self.system, out);
        let client = SocketAddr::new(src, client.port());
        self.control.record_client(client, rx, request, &action, flags);
        action
    }

    /// A request the driver dropped unread (from port 0, or longer than its buffer): counted
    /// with the server's requests under `reason`.
    pub fn count_unread_request(&mut self, reason: IgnoreReason) {
        self.responder.count_unread(reason);
    }

    /// A reply from [`Node::respond`] that the driver could not send: counted as
    /// `send_failed`, not as sent.
    pub fn reply_not_sent(&mut self, kind: ReplyKind) {
        self.responder.count_send_failed(kind);
    }

    /// Writes the transmit timestamp into a reply from [`Node::respond`]; `wall` is the wall
    /// clock sampled immediately before the send.
    pub fn finish_reply(&self, now: Instant, reply: &mut [u8], wall: NtpTimestamp) {
        self.responder.finish_reply(reply, self.served_time(now, wall));
    }

    /// The answer to a [`Lookup`].
    pub fn handle_resolved(
        &mut self,
        now: Instant,
        source: SourceId,
        result: Result<Resolved, ResolveError>,
    ) {
        self.sources.handle_resolved(now, source, result, &mut *self.rng);
        self.process(now);
    }

    /// Timers: due requests, lookups, pool replacements, the end of a slew. Early calls do
    /// nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.steering.handle_timeout(now);
        self.drain_steering_actions(now);
        while let Some(&(due, id)) = self.schedule.first() {
            if now + TIMER_SLACK < due {
                break;
            }
            self.schedule.remove(&(due, id));
            let Some(slot) = self.assocs.get_mut(&id) else { continue };
            slot.scheduled = None;
            slot.assoc.handle_timeout(now, &mut *self.rng);
            if slot.assoc.wants_transmit() && !self.ready.contains(&id) {
                self.ready.push_back(id);
            }
            self.drain_assoc(now, id);
        }
        self.sources.handle_timeout(now, &mut *self.rng);
        self.process(now);
    }

    /// A runtime command.
    pub fn handle_command(
        &mut self,
        now: Instant,
        command: Command,
    ) -> Result<CommandReply, CommandError> {
        let reply = match command {
            Command::Add(source) => self.add(now, source).map(CommandReply::Added)?,
            Command::Remove(name) => {
                let Some(id) = self.sources.find(&name) else {
                    return Err(CommandError::NotFound(name));
                };
                let associations =
                    self.assocs.iter().filter(|(_, s)| s.source == id).map(|(a, _)| *a).collect();
                let display = self.source_name(id);
                if self
                    .sources
                    .spec(id)
                    .is_some_and(|s| matches!(s.kind, SourceKind::Manycast { .. }))
                {
                    self.manycast_removed(id);
                    self.push_event(NodeEvent::ManycastClosed(id));
                }
                self.names.removed.insert(id, display);
                self.names.origin.remove(&id);
                self.monitor.source_removed(id);
                self.sources.remove(now, id, &mut *self.rng);
                CommandReply::Removed { source: id, associations }
            }
            Command::Refresh(name) => {
                let ids: Vec<SourceId> = match name {
                    Some(name) => match self.sources.find(&name) {
                        Some(id) => vec![id],
                        None => return Err(CommandError::NotFound(name)),
                    },
                    None => self.sources.snapshot().iter().map(|s| s.id).collect(),
                };
                let refreshed = ids
                    .into_iter()
                    .filter(|id| self.sources.refresh(now, *id, &mut *self.rng))
                    .collect();
                CommandReply::Refreshing(refreshed)
            }
        };
        self.process(now);
        Ok(reply)
    }

    /// Asks again at once for every pending lookup: names whose last lookup failed or that
    /// never resolved, and server names waiting for another address; their failure backoff
    /// starts over. For the daemon's SIGHUP (the administrator fixed the network or the
    /// resolver configuration). Returns the sources asked for.
    pub fn retry_lookups(&mut self, now: Instant) -> Vec<SourceId> {
        let asked = self.sources.retry_lookups(now, &mut *self.rng);
        self.process(now);
        asked
    }

    /// The clock executor's result for a [`ClockRequest`]: `Err` with the OS's message. The
    /// latest error is shown in the status until a request succeeds again.
    pub fn handle_clock_result(&mut self, now: Instant, result: Result<(), String>) {
        match result {
            Ok(()) => self.clock_error = None,
            Err(e) => self.clock_error = Some((now, e)),
        }
    }

    /// The driver could not send a request of this association (after [`Node::poll_transmit`]).
    pub fn handle_send_error(&mut self, local: Local) {
        if let Local::Client(_) = local {
            self.counters.send_errors += 1;
        }
    }

    /// The driver dropped something for `local` before the node saw it (an ICMP error, a
    /// full queue): counted under `reason`.
    pub fn count_drop(&mut self, local: Local, reason: &'static str) {
        if let Local::Client(id) = local {
            self.counters.drop(reason);
            if let Some(slot) = self.assocs.get_mut(&id) {
                *slot.drops.entry(reason).or_default() += 1;
            }
        }
    }

    /// The driver received a datagram for `local` that it could not pass on (too long for its
    /// buffer): counted as received and dropped under `reason`.
    pub fn count_received_drop(&mut self, local: Local, reason: &'static str) {
        if let Local::Client(_) = local {
            self.counters.received += 1;
        }
        self.count_drop(local, reason);
    }

    // ----- outputs --------------------------------------------------------------------

    /// The next datagram to send. `wall` is the wall clock sampled now, immediately before the
    /// driver sends what this returns: it becomes a request's T1 and a reply's transmit time.
    pub fn poll_transmit(&mut self, now: Instant, wall: NtpTimestamp) -> Option<Transmit> {
        self.note_wall(now, wall);
        if let Some(mut reply) = self.server_out.pop_front() {
            self.responder.finish_reply(&mut reply.payload, self.served_time(now, wall));
            return Some(Transmit {
                local: Local::Server(reply.local),
                remote: reply.remote,
                payload: reply.payload,
                ttl: None,
            });
        }
        if let Some(solicitation) = self.manycast_out.pop_front() {
            return Some(solicitation);
        }
        while let Some(id) = self.ready.pop_front() {
            let Some(slot) = self.assocs.get_mut(&id) else { continue };
            let Some(tx) = slot.assoc.poll_transmit(wall, &mut *self.rng) else { continue };
            // Loop detection (node/loops.rs) remembers the nonce of what is sent.
            let nonce = slot.assoc.outstanding_nonce().map(NtpTimestamp::to_bits);
            let source = slot.source;
            let mut payload = tx.payload.to_vec();
            if let Some(key) = self.sources.spec(source).and_then(|s| s.key) {
                let name = self.source_name(source);
                if !self.sign_request(key, Some(id), &name, tx.remote, &mut payload) {
                    // Never poll a keyed source without its key: the request is not sent (the
                    // association sees the poll go unanswered).
                    continue;
                }
            }
            self.counters.sent += 1;
            self.loops.sent(id, nonce);
            return Some(Transmit {
                local: Local::Client(id),
                remote: tx.remote,
                payload,
                ttl: None,
            });
        }
        None
    }

    /// The next DNS lookup to start.
    pub fn poll_lookup(&mut self) -> Option<Lookup> {
        self.lookups.pop_front()
    }

    /// The next clock request (control mode only).
    pub fn poll_clock(&mut self) -> Option<ClockRequest> {
        self.clock_requests.pop_front()
    }

    /// The next event to log.
    pub fn poll_event(&mut self) -> Option<NodeEvent> {
        self.events.pop_front()
    }

    /// Whether something happened that the driver must act on (events, clock requests,
    /// datagrams, lookups): a task that fed the node outside the main loop (the server fast
    /// path) wakes the loop when this is true.
    pub fn needs_drain(&self) -> bool {
        !self.events.is_empty()
            || !self.clock_requests.is_empty()
            || !self.ready.is_empty()
            || !self.server_out.is_empty()
            || !self.manycast_out.is_empty()
            || !self.lookups.is_empty()
    }

    /// When [`Node::handle_timeout`] is next due; `None`: no timer.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let assoc = self.schedule.first().map(|(t, _)| *t);
        [assoc, self.sources.poll_timeout(), self.steering.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
    }

    /// The frequency to save in the drift file at exit, if it is known well enough and the
    /// node keeps one.
    pub fn drift_to_save(&self) -> Option<f64> {
        self.drift_file.then(|| self.steering.drift_freq_ppm()).flatten()
    }

    // ----- views ----------------------------------------------------------------------

    /// What server mode tells clients now.
    pub fn system_state(&self) -> SystemState {
        self.system
    }

    /// The node's time for a wall-clock reading: the reading itself in control mode, plus the
    /// virtual correction in observe mode.
    pub fn served_time(&self, now: Instant, wall: NtpTimestamp) -> NtpTimestamp {
        let correction = self.steering.served_correction(now) + self.steering.leap_smear(now);
        wall.add_duration(NtpDuration::from_secs_f64(correction))
    }

    /// The steering (selection, discipline, the model of applied corrections).
    pub fn steering(&self) -> &Steering {
        &self.steering
    }

    /// The clock mode.
    pub fn mode(&self) -> ClockMode {
        self.mode
    }

    /// Read-only views of the associations.
    pub fn associations(&self, now: Instant) -> Vec<(SourceId, AssocSnapshot)> {
        self.assocs.values().map(|s| (s.source, s.assoc.snapshot(now))).collect()
    }

    /// The peers table: one row per association, plus one per pool and per server name
    /// without an association, ordered by source then association.
    pub fn peers(&self, now: Instant) -> Vec<PeerView> {
        let verdicts: BTreeMap<AssocId, crate::select::Verdict> = self
            .steering
            .selection()
            .map(|s| s.verdicts.iter().copied().collect())
            .unwrap_or_default();
        let mut rows: Vec<PeerView> = Vec::with_capacity(self.assocs.len());
        for (id, slot) in &self.assocs {
            let is_pool = self.sources.spec(slot.source).is_some_and(|s| s.kind.has_members());
            rows.push(PeerView {
                assoc: Some(*id),
                source: slot.source,
                kind: if is_pool { PeerKind::PoolMember } else { PeerKind::Server },
                source_name: self.source_name(slot.source),
                snapshot: Some(slot.assoc.snapshot(now)),
                resolving: false,
                last_error: None,
                verdict: match self.excluded.get(id) {
                    Some(why) => Some(crate::select::Verdict::Unusable(*why)),
                    None => verdicts.get(id).copied(),
                },
                drops: slot.drops.clone(),
            });
        }
        for s in self.sources.snapshot() {
            let is_pool = s.spec.kind.has_members();
            if !is_pool && !s.assocs.is_empty() {
                continue;
            }
            rows.push(PeerView {
                assoc: None,
                source: s.id,
                kind: match s.spec.kind {
                    SourceKind::Manycast { .. } => PeerKind::Manycast,
                    _ if is_pool => PeerKind::Pool,
                    _ => PeerKind::Unresolved,
                },
                source_name: s.spec.target.to_string(),
                snapshot: None,
                resolving: s.resolving || s.last_resolution.is_none(),
                last_error: match s.last_resolution {
                    Some(crate::source::ResolutionRecord { outcome: Err(e), .. }) => Some(e),
                    _ => None,
                },
                verdict: None,
                drops: BTreeMap::new(),
            });
        }
        rows.sort_by_key(|r| (r.source, r.assoc.is_some(), r.assoc));
        rows
    }

    /// Every source with its DNS and pool state.
    pub fn sources(&self) -> Vec<SourceView> {
        self.sources
            .snapshot()
            .into_iter()
            .map(|snapshot| SourceView {
                origin: self
                    .names
                    .origin
                    .get(&snapshot.id)
                    .cloned()
                    .unwrap_or_else(|| "rntpctl".to_string()),
                snapshot,
            })
            .collect()
    }

    /// The mobilization, move and retirement history, oldest first.
    pub fn history(&self) -> impl Iterator<Item = &HistoryEntry> {
        self.history.iter()
    }

    /// The overall state.
    pub fn status(&self, now: Instant) -> StatusView {
        let reachable = self
            .assocs
            .values()
            .filter(|s| {
                s.assoc.reach() != 0 && !matches!(s.assoc.state(), AssocState::Demobilized(_))
            })
            .count();
        let selection = self.steering.selection();
        StatusView {
            uptime: now.secs_since(self.started),
            mode: match self.mode {
                ClockMode::Observe => "observe",
                ClockMode::Control => "control",
            },
            sources: self.sources.snapshot().len(),
            associations: self.assocs.len(),
            reachable,
            counters: self.counters.clone(),
            server: (!self.listen.is_empty()).then(|| ServerView {
                counters: self.responder.counters().clone(),
                rate_table_used: self.responder.rate_table_len(),
                rate_table_capacity: self.responder.rate_table_capacity(),
            }),
            listening: self.listen.clone(),
            serving_as: self.serving_as(),
            system: self.system,
            clock_state: self.steering.state(),
            frequency_ppm: self.steering.frequency_ppm(),
            correction: self.steering.served_correction(now),
            last_offset: self.steering.last_offset(),
            system_peer: selection.and_then(|s| s.system_peer),
            system_offset: selection.and_then(|s| s.combined).map(|c| c.offset),
            system_jitter: selection.and_then(|s| s.combined).map(|c| c.jitter),
            history_totals: self.history_totals.clone(),
            clock_error: self.clock_error.clone(),
        }
    }

    /// Whether the node serves synchronized time: a system peer is selected and the
    /// discipline tracks it (its frequency may still be settling, as with ntpd's FREQ state
    /// and chrony, which serve from the first clock update on).
    pub fn synchronized(&self) -> bool {
        let tracking =
            matches!(self.steering.state(), DisciplineState::Freq | DisciplineState::Sync);
        tracking && self.steering.system_peer().is_some()
    }

    fn serving_as(&self) -> ServingAs {
        match (self.system.leap, self.synchronized(), self.orphan) {
            (LeapIndicator::Unsynchronized, _, _) => ServingAs::Unsynchronized,
            (_, true, _) => ServingAs::Synchronized,
            (_, false, Some(_)) => ServingAs::Orphan,
            _ => ServingAs::Unsynchronized,
        }
    }

    // ----- internals ------------------------------------------------------------------

    /// A request that reached our server is one of our own (see [`loops`]): the association
    /// that sent it polls this rntpd. It is stopped for good and its address never used again.
    fn own_request(&mut self, now: Instant, assoc: AssocId, seen_from: IpAddr) {
        let Some(slot) = self.assocs.get_mut(&assoc) else { return };
        let remote = slot.assoc.remote();
        self.loops.learn(remote);
        self.sources.add_own_addresses([remote]);
        slot.assoc.demobilize(crate::assoc::DemobilizeReason::Loop);
        self.push_event(NodeEvent::OwnRequest { assoc, remote, seen_from });
        self.drain_assoc(now, assoc);
        self.process(now);
    }

    fn add(&mut self, now: Instant, source: ConfiguredSource) -> Result<SourceId, AddError> {
        let is_server_name = matches!(
            (&source.spec.kind, &source.spec.target),
            (SourceKind::Server, Target::Name(_))
        );
        let added = match source.spec.key {
            // A keyed source whose key cannot be used would never be polled: refuse it at once.
            Some(key) if self.keys().trusted_key(key).is_err() => {
                Err(AddError::UntrustedKey(key.0))
            }
            _ => self.sources.add(now, source.spec, &mut *self.rng),
        };
        match added {
            Ok(id) => {
                self.names.origin.insert(id, source.origin);
                Ok(id)
            }
            Err(error) => {
                let first_origin = match &error {
                    AddError::Duplicate { existing, .. } => {
                        self.names.origin.get(&SourceId(*existing)).cloned()
                    }
                    _ => None,
                };
                let pool_hint = is_server_name && matches!(error, AddError::Duplicate { .. });
                self.push_event(NodeEvent::SourceRejected {
                    origin: source.origin,
                    error: error.clone(),
                    first_origin,
                    pool_hint,
                });
                Err(error)
            }
        }
    }

    fn source_name(&self, id: SourceId) -> String {
        match self.sources.spec(id) {
            Some(spec) => spec.target.to_string(),
            None => self.names.removed.get(&id).cloned().unwrap_or_else(|| format!("#{}", id.0)),
        }
    }

    fn note_wall(&mut self, now: Instant, wall: NtpTimestamp) {
        self.last_wall = Some((now, wall));
    }

    /// The wall clock at `now`, extrapolated from the driver's latest reading.
    fn wall_at(&self, now: Instant) -> Option<NtpTimestamp> {
        self.last_wall
            .map(|(t, wall)| wall.add_duration(NtpDuration::from_secs_f64(now.secs_since(t))))
    }

    fn client_packet(
        &mut self,
        now: Instant,
        id: AssocId,
        remote: SocketAddr,
        t4: NtpTimestamp,
        bytes: &[u8],
    ) {
        self.counters.received += 1;
        let Some(slot) = self.assocs.get_mut(&id) else {
            // A datagram queued before its association went away.
            self.counters.drop("no_association");
            return;
        };
        if slot.assoc.remote() != remote {
            // From the address the association used before a move: a late reply to a request
            // the association no longer waits for, whatever it says.
            *slot.drops.entry("wrong_remote").or_default() += 1;
            self.counters.drop("wrong_remote");
            return;
        }
        let source = slot.source;
        if let Some(key) = self.sources.spec(source).and_then(|s| s.key) {
            // Before the association sees it: a reply that does not authenticate cannot even
            // consume the request's nonce.
            if let Err(error) = self.check_keyed_reply(key, bytes) {
                let name = error.counter_name();
                if let Some(slot) = self.assocs.get_mut(&id) {
                    *slot.drops.entry(name).or_default() += 1;
                    slot.authentic = Some(false);
                }
                self.counters.drop(name);
                let source_name = self.source_name(source);
                self.push_event(NodeEvent::AuthFailed {
                    assoc: Some(id),
                    source_name,
                    remote,
                    error,
                    outgoing: false,
                });
                return;
            }
        }
        let keyed = self.sources.spec(source).is_some_and(|s| s.key.is_some());
        let Some(slot) = self.assocs.get_mut(&id) else { return };
        if keyed {
            slot.authentic = Some(true);
        }
        match slot.assoc.handle_packet(now, t4, bytes) {
            Ok(()) => self.counters.accepted += 1,
            Err(reason) => {
                let name = reason.counter_name();
                *slot.drops.entry(name).or_default() += 1;
                self.counters.drop(name);
            }
        }
        self.drain_assoc(now, id);
        self.process(now);
    }

    /// Hands an association's events to the source manager and the steering, in order, and
    /// re-files its deadline.
    fn drain_assoc(&mut self, now: Instant, id: AssocId) {
        loop {
            let Some(slot) = self.assocs.get_mut(&id) else { return };
            let Some(event) = slot.assoc.poll_event() else { break };
            let (source, remote) = (slot.source, slot.assoc.remote());
            // The filter's estimate right after this sample: part of the same step.
            let best = match event {
                AssocEvent::Sample(s) => slot.assoc.estimate(now).is_some_and(|e| e.time == s.time),
                _ => false,
            };
            if let AssocEvent::Kod(_) = event {
                self.counters.kod_received += 1;
            }
            self.sources.handle_assoc_event(now, id, &event, &mut *self.rng);
            match event {
                AssocEvent::Sample(sample) => {
                    self.steering.handle_sample(now, id, &sample, best);
                    // As ntpd: a peerstats line when the filter picks a new sample.
                    if best {
                        self.record_peer_stats(now, id);
                    }
                }
                AssocEvent::Unreachable | AssocEvent::Demobilized(_) => {
                    self.steering.handle_source_change();
                }
                _ => {}
            }
            let source_name = self.source_name(source);
            self.push_event(NodeEvent::Assoc { assoc: id, source_name, remote, event });
        }
        self.reschedule(id);
    }

    fn reschedule(&mut self, id: AssocId) {
        let Some(slot) = self.assocs.get_mut(&id) else { return };
        let next = slot.assoc.next_transmit();
        if slot.scheduled == next {
            return;
        }
        if let Some(old) = slot.scheduled.take() {
            self.schedule.remove(&(old, id));
        }
        if let Some(at) = next {
            self.schedule.insert((at, id));
            slot.scheduled = Some(at);
        }
    }

    /// Runs until nothing is left to do: source actions, source events, steering rounds (a
    /// round may retire a falseticker, which is a source action again).
    fn process(&mut self, now: Instant) {
        // Each pass handles what the previous one produced; a handful is the most ever seen.
        for _ in 0..64 {
            let mut busy = false;
            while let Some(action) = self.sources.poll_action() {
                busy = true;
                self.source_action(now, action);
            }
            while let Some(event) = self.sources.poll_event() {
                busy = true;
                self.source_event(now, event);
            }
            if self.steering.wants_round() {
                busy = true;
                self.steer(now);
            }
            if !busy {
                break;
            }
        }
        // Removed sources' names were kept only for the events just recorded.
        self.names.removed.clear();
    }

    fn source_action(&mut self, now: Instant, action: SourceAction) {
        match action {
            SourceAction::Resolve { source, name } => {
                let family = self.sources.spec(source).map_or(AddrFamily::Any, |s| s.family);
                push_bounded(&mut self.lookups, Lookup { source, name, family });
            }
            SourceAction::Mobilize { assoc, source, remote, config } => {
                let a = Association::new(
                    assoc,
                    remote,
                    config,
                    2f64.powi(i32::from(self.precision_log2)),
                    now,
                    FIRST_POLL_SPREAD,
                    &mut *self.rng,
                );
                self.assocs.insert(
                    assoc,
                    Slot {
                        assoc: a,
                        source,
                        scheduled: None,
                        drops: BTreeMap::new(),
                        authentic: None,
                    },
                );
                self.reschedule(assoc);
            }
            SourceAction::Move { assoc, remote } => {
                // Another address, another path: what the steering knew of the old one is
                // forgotten in the same step.
                self.steering.handle_reset(assoc);
                self.steering.handle_source_change();
                if let Some(slot) = self.assocs.get_mut(&assoc) {
                    slot.assoc.change_remote(now, remote);
                }
                self.reschedule(assoc);
            }
            SourceAction::Demobilize { assoc, .. } => {
                self.steering.handle_reset(assoc);
                self.steering.handle_source_change();
                if let Some(slot) = self.assocs.remove(&assoc) {
                    if let Some(at) = slot.scheduled {
                        self.schedule.remove(&(at, assoc));
                    }
                }
                self.ready.retain(|a| *a != assoc);
                self.loops.forget(assoc);
                self.excluded.remove(&assoc);
                self.push_event(NodeEvent::AssocClosed(assoc));
            }
            SourceAction::Solicit { source, group, ttl } => self.solicit(source, group, ttl),
        }
    }

    fn source_event(&mut self, now: Instant, event: SourceEvent) {
        let entry = match &event {
            SourceEvent::Mobilized { source, assoc, remote, reason } => {
                Some((*source, *assoc, HistoryKind::Mobilized, *remote, None, reason.name()))
            }
            SourceEvent::Retired { source, assoc, remote, reason } => {
                Some((*source, *assoc, HistoryKind::Retired, *remote, None, reason.name()))
            }
            SourceEvent::Moved { source, assoc, from, to, reason } => {
                Some((*source, *assoc, HistoryKind::Moved, *to, Some(*from), reason.name()))
            }
            SourceEvent::OwnAddressSkipped { source, remote } => {
                Some((*source, AssocId(0), HistoryKind::Skipped, *remote, None, "own-address"))
            }
            _ => None,
        };
        let source = match &event {
            SourceEvent::Resolved { source, .. }
            | SourceEvent::ResolveFailed { source, .. }
            | SourceEvent::Mobilized { source, .. }
            | SourceEvent::Moved { source, .. }
            | SourceEvent::Retired { source, .. }
            | SourceEvent::NoFreeAddress { source, .. }
            | SourceEvent::Solicited { source, .. }
            | SourceEvent::Offered { source, .. }
            | SourceEvent::OwnAddressSkipped { source, .. } => *source,
        };
        let name = self.source_name(source);
        self.monitor.source_event(&event);
        if let Some((source, assoc, kind, address, old_address, reason)) = entry {
            *self.history_totals.entry(format!("{}:{reason}", kind.name())).or_default() += 1;
            if self.history.len() >= HISTORY_LEN {
                self.history.pop_front();
            }
            self.history.push_back(HistoryEntry {
                at: now,
                source,
                source_name: name.clone(),
                assoc,
                kind,
                address,
                old_address,
                reason,
            });
        }
        self.push_event(NodeEvent::Source { name, event });
    }

    /// One steering round over every live association, then what it decided: clock requests,
    /// pool retirements, and what clients are told.
    fn steer(&mut self, now: Instant) {
        let inputs: Vec<SourceInput> = self
            .assocs
            .iter()
            // A stopped association (KoD) keeps its last reach and filter for display, but it
            // is no source of time any more.
            .filter(|(_, s)| !matches!(s.assoc.state(), AssocState::Demobilized(_)))
            // A server synchronized to us is no source of time for us (a timing loop), nor is
            // another orphan when we are one.
            .filter(|(id, slot)| {
                let why = slot.assoc.snapshot(now).server.and_then(|v| {
                    if self.loops.synchronized_to_us(v.reference_id, v.stratum) {
                        Some(Unusable::Loop)
                    } else if self.orphan.is_some_and(|o| v.stratum >= o) {
                        Some(Unusable::OrphanStratum)
                    } else {
                        None
                    }
                });
                match why {
                    Some(why) => self.excluded.insert(**id, why),
                    None => self.excluded.remove(id),
                };
                why.is_none()
            })
            .map(|(_, slot)| {
                let snap = slot.assoc.snapshot(now);
                let (prefer, noselect) = self
                    .sources
                    .spec(slot.source)
                    .map_or((false, false), |spec| (spec.prefer, spec.noselect));
                SourceInput {
                    prefer,
                    noselect,
                    ..SourceInput::from_snapshot(&snap, ReferenceId::for_address(snap.remote.ip()))
                }
            })
            .collect();
        let outcome = self.steering.handle_round(now, &inputs);
        while let Some(event) = self.steering.poll_event() {
            match event {
                crate::steer::SteeringEvent::SystemPeer { from, to } => {
                    let combined = self.steering.selection().and_then(|s| s.combined);
                    self.push_event(NodeEvent::SystemPeer {
                        from,
                        to,
                        offset: combined.map(|c| c.offset),
                        stratum: combined.map(|c| c.stratum),
                    });
                }
                crate::steer::SteeringEvent::PersistentFalseticker(id) => {
                    self.sources.handle_falseticker(now, id, &mut *self.rng);
                }
            }
        }
        self.drain_steering_actions(now);
        if outcome.updates() > 0 {
            self.advise_polls(now);
            // The reference time is when the clock was last set: the node's time now.
            if let Some(wall) = self.wall_at(now) {
                self.reference_time = self.served_time(now, wall);
            }
            self.kernel_status(now);
            self.maybe_save_drift(now);
            self.record_loop_stats(now);
        }
        if matches!(outcome, RoundOutcome::Skipped) {
            return;
        }
        // Every counted round decides what clients are told, including the round that lost
        // the last source: server mode must say "unsynchronized" then.
        let combined = self.steering.selection().and_then(|s| s.combined);
        let leap = self.leap_decision(now).announce;
        self.system = match combined {
            Some(c) if self.synchronized() => SystemState {
                leap,
                stratum: c.stratum,
                precision: self.precision_log2,
                root_delay: c.root_delay,
                root_dispersion: c.root_dispersion,
                reference_id: c.reference_id,
                reference_time: self.reference_time,
            },
            _ => initial_system_state(self.precision_log2, self.orphan),
        };
    }

    fn drain_steering_actions(&mut self, now: Instant) {
        let control = self.mode == ClockMode::Control;
        while let Some(action) = self.steering.poll_action() {
            let request = match action {
                ClockAction::Step { offset, rate } => {
                    self.push_event(NodeEvent::ClockStepped { offset });
                    if control {
                        self.step_associations(now);
                    }
                    ClockRequest::Step { offset, rate }
                }
                ClockAction::Panic { offset } => {
                    self.push_event(NodeEvent::ClockPanic { offset });
                    continue;
                }
                ClockAction::Rate(rate) => ClockRequest::Rate(rate),
                ClockAction::None => continue,
            };
            if !control {
                continue;
            }
            let stepped = matches!(request, ClockRequest::Step { .. });
            push_bounded(&mut self.clock_requests, request);
            if stepped {
                // The step cleared the kernel's status and disarmed any leap second.
                self.kernel_status(now);
            }
        }
    }

    /// The clock the associations measure against was stepped: what they have in flight or
    /// in their filters straddles the step (observe mode steps only the virtual clock, which
    /// no measurement is taken against).
    fn step_associations(&mut self, now: Instant) {
        let ids: Vec<AssocId> = self.assocs.keys().copied().collect();
        for id in ids {
            if let Some(slot) = self.assocs.get_mut(&id) {
                slot.assoc.handle_step(now);
            }
            self.reschedule(id);
        }
    }

    /// Hands every association the discipline's poll suggestion after a clock update.
    fn advise_polls(&mut self, now: Instant) {
        let advice = self.steering.discipline().suggested_poll();
        let ids: Vec<AssocId> = self.assocs.keys().copied().collect();
        for id in ids {
            if let Some(slot) = self.assocs.get_mut(&id) {
                slot.assoc.set_poll_advice(now, advice);
            }
            self.reschedule(id);
        }
    }

    /// Control mode: tell the kernel what the combined estimate says (leap warning, errors).
    /// The same status twice in a row is sent once.
    fn kernel_status(&mut self, now: Instant) {
        if self.mode != ClockMode::Control {
            return;
        }
        let Some(c) = self.steering.selection().and_then(|s| s.combined) else { return };
        let request = ClockRequest::Status {
            synchronized: self.steering.synchronized(),
            leap: self.leap_decision(now).arm,
            max_error: c.root_delay / 2.0 + c.root_dispersion,
            est_error: c.jitter,
        };
        if self.clock_requests.back() == Some(&request) {
            return;
        }
        push_bounded(&mut self.clock_requests, request);
    }

    /// Leap seconds now ([`crate::steer::leap`]): the node's clock read as UTC, the sources'
    /// vote and the leap table. Without a wall-clock reading yet, nothing is pending.
    fn leap_decision(&mut self, now: Instant) -> LeapDecision {
        let Some(wall) = self.wall_at(now) else {
            let none = LeapIndicator::NoWarning;
            return LeapDecision { announce: none, arm: none };
        };
        // Without the smear: the decision is about the clock, not the time served.
        let clock =
            wall.add_duration(NtpDuration::from_secs_f64(self.steering.served_correction(now)));
        let (secs, nanos) = clock.to_unix_near(LEAP_ERA_REFERENCE);
        self.steering.leap_decision(now, secs as f64 + f64::from(nanos) * 1e-9)
    }

    fn maybe_save_drift(&mut self, now: Instant) {
        if !self.drift_file
            || self.drift_saved.is_some_and(|t| now.secs_since(t) < DRIFT_SAVE_INTERVAL)
        {
            return;
        }
        let Some(freq_ppm) = self.steering.drift_freq_ppm() else { return };
        self.drift_saved = Some(now);
        push_bounded(&mut self.clock_requests, ClockRequest::SaveDrift { freq_ppm });
    }

    fn push_event(&mut self, event: NodeEvent) {
        push_bounded(&mut self.events, event);
    }
}

/// Appends to a driver-facing queue, dropping the oldest entry when a driver that never drains
/// it lets it grow past [`MAX_QUEUE`].
fn push_bounded<T>(queue: &mut VecDeque<T>, item: T) {
    if queue.len() >= MAX_QUEUE {
        queue.pop_front();
    }
    queue.push_back(item);
}

/// What server mode says before any source is selected: unsynchronized, or with `tos orphan N`
/// a stratum-N orphan parent as NTPsec answers (leap 0, refid 127.0.0.1, zero reference time,
/// root delay and dispersion; chronyd, ntpdig and check_ntp_time accept it).
pub fn initial_system_state(precision: i8, orphan: Option<u8>) -> SystemState {
    match orphan {
        None => SystemState::unsynchronized(precision),
        Some(stratum) => SystemState {
            leap: LeapIndicator::NoWarning,
            stratum,
            precision,
            root_delay: 0.0,
            root_dispersion: 0.0,
            reference_id: ReferenceId::from_bytes([127, 0, 0, 1]),
            reference_time: NtpTimestamp::ZERO,
        },
    }
}

/// IPv4-mapped IPv6 sources (from a dual-stack socket) match IPv4 restrict rules.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}
