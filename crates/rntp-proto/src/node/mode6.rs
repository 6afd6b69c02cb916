//! The node's mode 6 (ntpq) path: which queries are answered, and the node's state as
//! [`Mode6Data`] for the [`Mode6Responder`].
//!
//! Order per datagram, all within [`Node::respond`] (the server fast path):
//! 1. [`Responder::check_query`](crate::server::Responder::check_query): `restrict` (`ignore`,
//!    `noquery`; loopback may query by default) and, for `limited` clients, a query rate limit.
//! 2. [`ReplyBudget::for_source`]: an answer to a non-loopback client is never larger than its
//!    request.
//! 3. [`Mode6Responder::respond`] over a [`ControlView`] of the node, which writes the first
//!    datagram into the caller's buffer; the rest wait in the node for
//!    [`Node::poll_control_reply`].
//!
//! Association IDs: ntpq addresses rows by a 16-bit ID. Pool rows and `server NAME` rows without
//! an association (ntpd shows both) get `1 + source % 16383` (1..=16383), associations
//! `16384 + association % 49151` (16384..=65534), so pool rows sort first, as in ntpd. After
//! 49151 associations IDs repeat; the newest association with an ID answers for it.
//!
//! Requests with a MAC of a trusted key are answered with every datagram signed by that key
//! (as ntpd); CONFIGURE (`:config`) is `node/remote.rs`.
//!
//! READ_MRU and REQ_NONCE (`ntpq -c mrulist`) are `node/mru.rs`, which also fills the MRU list
//! from the server fast path.
//!
//! This module deliberately does **not** write variables.

use std::net::{IpAddr, SocketAddr};

use super::remote::{ConfigParser, ControlAuth};
use super::{canonical, Node};
use crate::assoc::{AssocId, AssocState};
use crate::mode6::mru::NonceKey;
use crate::mode6::{
    self, AssocSummary, ClockSource, ControlPacket, Mode6Data, Mode6Responder, Opcode, Outcome,
    PeerEvent, PeerStatus, PeerVars, Replies, ReplyBudget, Selection, SystemEvent, SystemStatus,
    SystemVars, MAX_DATAGRAM_LEN, MAX_SIGNED_DATAGRAM_LEN,
};
use crate::select::Verdict;
use crate::server::mru::MRU_CAPACITY;
use crate::server::{IgnoreReason, MruList, QueryVerdict, ReplyKind, ServerAction};
use crate::source::{SourceId, SourceKind, Target};
use crate::time::{Instant, NtpDuration, NtpTimestamp};
use crate::wire::ReferenceId;

/// Largest mode 6 ID of a source row.
const SOURCE_IDS: u32 = 0x3FFF;
/// First mode 6 ID of an association.
const ASSOC_BASE: u32 = 0x4000;
/// Association IDs available (16384..=65534).
const ASSOC_IDS: u32 = 0xFFFF - ASSOC_BASE;
/// `mintc`: ntpd's minimum time constant (`tos mintc`, default 3).
const MINTC: u8 = 3;
/// `version`.
const VERSION: &str = concat!("rntpd ", env!("CARGO_PKG_VERSION"));

/// Counters of the mode 6 path since start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ControlCounters {
    /// Mode 6 datagrams received.
    pub requests: u64,
    /// Octets of them.
    pub bytes_in: u64,
    /// Requests answered with data (one or more datagrams).
    pub answered: u64,
    /// Requests answered with an error code (`BADOP`, `UNKNOWNVAR`, ...).
    pub errors: u64,
    /// Requests whose full answer was over the reply budget: one `PERMISSION` error instead.
    pub refused: u64,
    /// Datagrams sent.
    pub datagrams_out: u64,
    /// Octets sent.
    pub bytes_out: u64,
    /// Requests dropped without answer, by reason (`noquery`, `rate_limited`, `too_short`,
    /// `over_budget`, ...).
    pub dropped: std::collections::BTreeMap<&'static str, u64>,
    /// `:config` requests applied.
    pub config_accepted: u64,
    /// `:config` requests refused, by reason (`unauthenticated`, `wrong_key`, `auth_bad_mac`,
    /// `nomodify`, `no_controlkey`, `parse_error`, `command_failed`, ...).
    pub config_refused: std::collections::BTreeMap<&'static str, u64>,
    /// Answers signed because the request was authenticated.
    pub signed: u64,
}

impl ControlCounters {
    fn drop(&mut self, reason: &'static str) {
        *self.dropped.entry(reason).or_default() += 1;
    }
}

/// The node's mode 6 state: the responder, the rest of the answer being sent, counters, the
/// MRU list and its nonce key.
pub(super) struct Control {
    responder: Mode6Responder,
    /// Datagrams of the current answer after the first, for [`Node::poll_control_reply`].
    pending: Option<Replies>,
    pub(super) counters: ControlCounters,
    /// `system`: the operating system as ntpd reports it (`Linux/6.1.0-18-amd64`).
    system: String,
    /// `controlkey`: the key `:config` must be signed with.
    pub(super) control_key: Option<crate::auth::KeyId>,
    /// Parses `:config` text (injected by the driver).
    pub(super) parser: Option<Box<dyn ConfigParser + Send>>,
    /// Recent NTP clients, for `ntpq -c mrulist`.
    pub(super) mru: MruList,
    /// Issues and checks the mrulist nonces.
    pub(super) nonces: NonceKey,
}

/// Mixed into the node's seed for the MRU list's hash key and the nonce key, so that each
/// gets its own key from the one draw of the node's RNG (drawing more would change the
/// random sequence every seeded simulation depends on).
const MRU_SEED: u64 = 0x6D72_755F_6C69_7374;
const NONCE_SEED: u64 = 0x6E6F_6E63_655F_6B79;

impl Control {
    /// Mode 6 state with keys derived from `seed` (drawn from the node's RNG).
    pub(super) fn new(seed: u64) -> Self {
        Control {
            responder: Mode6Responder::default(),
            pending: None,
            counters: ControlCounters::default(),
            system: String::new(),
            control_key: None,
            parser: None,
            mru: MruList::new(MRU_CAPACITY, seed ^ MRU_SEED),
            nonces: NonceKey::new(seed ^ NONCE_SEED),
        }
    }
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control")
            .field("pending", &self.pending)
            .field("counters", &self.counters)
            .field("control_key", &self.control_key)
            .field("parser", &self.parser.is_some())
            .field("mru", &self.mru.len())
            .finish_non_exhaustive()
    }
}

impl Node {
    /// The mode 6 branch of [`Node::respond`]: checks, answers, and writes the first datagram
    /// into `out` (which needs [`MAX_DATAGRAM_LEN`] octets).
    pub(super) fn respond_control(
        &mut self,
        now: Instant,
        rx: NtpTimestamp,
        client: IpAddr,
        request: &[u8],
        out: &mut [u8],
    ) -> ServerAction {
        let client = canonical(client);
        self.control.pending = None;
        let c = &mut self.control.counters;
        c.requests += 1;
        c.bytes_in += request.len() as u64;
        let verdict = self.responder.check_query(now, client);
        if verdict != QueryVerdict::Allowed {
            self.control.counters.drop(verdict.counter_name());
            return ServerAction::Ignore(IgnoreReason::ModeControl);
        }
        if out.len() < MAX_DATAGRAM_LEN {
            self.control.counters.drop("buffer_too_small");
            return ServerAction::Ignore(IgnoreReason::ModeControl);
        }
        let budget = ReplyBudget::for_source(client, request.len(), false);
        let auth = self.control_auth(request);
        let opcode = ControlPacket::new_checked(request)
            .ok()
            .filter(|p| !p.is_response())
            .map(|p| p.opcode());
        let mut replies = if opcode == Some(Opcode::Configure) {
            self.remote_config(now, client, request, auth, budget)
        } else if let Some(op @ (Opcode::RequestNonce | Opcode::ReadMru)) = opcode {
            self.mru_control(now, rx, client, request, op, budget)
        } else {
            let view = ControlView { node: self, now, clock: self.served_time(now, rx) };
            self.control.responder.respond(request, &view, budget)
        };
        if let ControlAuth::Ok(id) = auth {
            if let (Some(key), true) = (self.keys().get(id), out.len() >= MAX_SIGNED_DATAGRAM_LEN) {
                replies = replies.signed(key.clone());
                self.control.counters.signed += 1;
            }
        }
        let c = &mut self.control.counters;
        match replies.outcome() {
            Outcome::Dropped(reason) => {
                c.drop(reason.counter_name());
                return ServerAction::Ignore(IgnoreReason::ModeControl);
            }
            Outcome::Answered { .. } => c.answered += 1,
            Outcome::Error { .. } => c.errors += 1,
            Outcome::Refused { .. } => c.refused += 1,
        }
        match replies.write_next(out) {
            Some(Ok(len)) => {
                c.datagrams_out += 1;
                c.bytes_out += len as u64;
                if replies.remaining() > 0 {
                    self.control.pending = Some(replies);
                }
                ServerAction::Reply { len, kind: ReplyKind::Control }
            }
            // Our own header in a buffer of the right size always emits.
            _ => {
                c.drop("emit_failed");
                ServerAction::Ignore(IgnoreReason::ModeControl)
            }
        }
    }

    /// The next datagram of the mode 6 answer [`Node::respond`] began (it returned
    /// [`ReplyKind::Control`]), written to the front of `out` ([`MAX_DATAGRAM_LEN`] octets);
    /// its length, or `None` when the answer is complete. Send each to the same client, right
    /// after the first: the next request discards what is left.
    pub fn poll_control_reply(&mut self, out: &mut [u8]) -> Option<usize> {
        let replies = self.control.pending.as_mut()?;
        // A signed answer was only started in a buffer of MAX_SIGNED_DATAGRAM_LEN.
        let written = if out.len() < MAX_DATAGRAM_LEN { None } else { replies.write_next(out) };
        match written {
            Some(Ok(len)) => {
                self.control.counters.datagrams_out += 1;
                self.control.counters.bytes_out += len as u64;
                Some(len)
            }
            _ => {
                self.control.pending = None;
                None
            }
        }
    }

    /// The mode 6 counters.
    pub fn control_counters(&self) -> &ControlCounters {
        &self.control.counters
    }

    /// Sets what mode 6 reports as `system` (ntpd: `uname -s` and release, e.g.
    /// `Linux/6.1.0-18-amd64`); the driver knows it, the core does not ask the OS.
    pub fn set_system_name(&mut self, system: &str) {
        self.control.system = system.to_string();
    }

    /// The mode 6 association ID of an association.
    pub fn control_assoc_id(assoc: AssocId) -> mode6::AssocId {
        // In range 16384..=65534 by construction.
        u16::try_from(ASSOC_BASE + assoc.0 % ASSOC_IDS).unwrap_or(u16::MAX)
    }

    /// The mode 6 association ID of a pool row or an unresolved `server NAME` row.
    fn control_source_id(source: SourceId) -> mode6::AssocId {
        u16::try_from(1 + source.0 % SOURCE_IDS).unwrap_or(1)
    }

    /// The name (or address) of the source behind an ntpq association ID (`:config unpeer
    /// ID`).
    pub(super) fn source_of_control_id(&self, id: mode6::AssocId) -> Option<String> {
        let view = ControlView { node: self, now: self.started, clock: NtpTimestamp::ZERO };
        let source = match view.find(id)? {
            Row::Assoc(a) => self.assocs.get(&a)?.source,
            Row::Source(s) => s,
        };
        self.sources.spec(source).map(|s| s.target.to_string())
    }
}

/// The node as mode 6 sees it at one instant.
pub(super) struct ControlView<'a> {
    node: &'a Node,
    now: Instant,
    /// The node's time now.
    clock: NtpTimestamp,
}

/// One row: an association, or a source without one.
#[derive(Clone, Copy)]
enum Row {
    Assoc(AssocId),
    Source(SourceId),
}

impl ControlView<'_> {
    /// Every row, with its mode 6 ID.
    fn rows(&self) -> Vec<(mode6::AssocId, Row)> {
        let mut rows = Vec::with_capacity(self.node.assocs.len() + 1);
        for s in self.node.sources.snapshot() {
            let is_pool = s.spec.kind.has_members();
            if is_pool || s.assocs.is_empty() {
                rows.push((Node::control_source_id(s.id), Row::Source(s.id)));
            }
        }
        for id in self.node.assocs.keys() {
            rows.push((Node::control_assoc_id(*id), Row::Assoc(*id)));
        }
        rows
    }

    fn find(&self, id: mode6::AssocId) -> Option<Row> {
        // The newest association wins an ID that repeats (see the module doc).
        self.rows().into_iter().rev().find(|(i, _)| *i == id).map(|(_, row)| row)
    }

    fn verdict(&self, assoc: AssocId) -> Option<Verdict> {
        let selection = self.node.steering.selection()?;
        selection.verdicts.iter().find(|(a, _)| *a == assoc).map(|(_, v)| *v)
    }

    fn assoc_status(&self, assoc: AssocId) -> Option<PeerStatus> {
        let slot = self.node.assocs.get(&assoc)?;
        let configured = self
            .node
            .sources
            .spec(slot.source)
            .is_some_and(|s| matches!(s.kind, SourceKind::Server));
        let system_peer = self.node.steering.system_peer() == Some(assoc);
        let selection = match (system_peer, self.verdict(assoc)) {
            (true, _) | (_, Some(Verdict::SystemPeer)) => Selection::SysPeer,
            (_, Some(Verdict::Survivor)) => Selection::Candidate,
            (_, Some(Verdict::Outlier)) => Selection::Outlier,
            (_, Some(Verdict::Falseticker)) => Selection::Falsetick,
            _ => Selection::Reject,
        };
        let last_event = match slot.assoc.state() {
            _ if system_peer => PeerEvent::SysPeer,
            AssocState::Init => PeerEvent::Mobilize,
            AssocState::Reachable => PeerEvent::Reachable,
            AssocState::Unreachable => PeerEvent::Unreachable,
            AssocState::Demobilized(_) => PeerEvent::Demobilize,
        };
        let keyed = self.node.sources.spec(slot.source).is_some_and(|s| s.key.is_some());
        Some(PeerStatus {
            configured,
            auth_enabled: keyed,
            authentic: keyed && slot.authentic == Some(true),
            reachable: slot.assoc.reach() != 0,
            selection,
            event_count: 1,
            last_event,
            ..PeerStatus::default()
        })
    }

    fn source_status(&self, source: SourceId) -> Option<PeerStatus> {
        let spec = self.node.sources.spec(source)?;
        let is_pool = spec.kind.has_members();
        Some(PeerStatus {
            configured: true,
            // ntpd's pool prototype row is transmit-only ("broadcast" bit); see PeerVars::pool.
            broadcast: is_pool,
            event_count: 1,
            last_event: PeerEvent::Mobilize,
            ..PeerStatus::default()
        })
    }

    fn assoc_vars(&self, assoc: AssocId) -> Option<PeerVars<'_>> {
        let slot = self.node.assocs.get(&assoc)?;
        let status = self.assoc_status(assoc)?;
        let snap = slot.assoc.snapshot(self.now);
        let spec = self.node.sources.spec(slot.source);
        // ntpd sends `srchost` for named `server` lines; pool members are shown by address.
        let srchost = spec.and_then(|s| match (&s.kind, &s.target) {
            (SourceKind::Server, Target::Name(name)) => Some(name.as_str()),
            _ => None,
        });
        // Sub-second polls (an rntpd extension) are shown as 1 s: NTPsec 1.2's ntpq crashes on
        // a negative `hpoll`.
        let hpoll = snap.poll.as_log2().max(0);
        let mut vars = PeerVars {
            status,
            srcadr: Some(snap.remote),
            srchost,
            dstadr: None::<SocketAddr>,
            ppoll: hpoll,
            keyid: spec.and_then(|s| s.key).map_or(0, |k| k.0),
            ..PeerVars::pool("", hpoll)
        };
        if let Some(server) = snap.server {
            vars.leap = server.leap;
            vars.stratum = server.stratum;
            vars.precision = server.precision;
            vars.root_delay = server.root_delay;
            vars.root_dispersion = server.root_dispersion;
            vars.reference_id = server.reference_id;
            vars.ppoll = server.poll.max(0);
            vars.pmode = 4;
        } else {
            vars.reference_id = ReferenceId::from_bytes(*b"INIT");
        }
        if let Some(kod) = snap.last_kod {
            vars.reference_id = kod.to_reference_id();
        }
        if let Some(since) = snap.since_last_reply {
            vars.rec = self.clock.add_duration(NtpDuration::from_secs_f64(-since));
        }
        vars.reach = snap.reach;
        if let Some(e) = snap.estimate {
            vars.offset = e.offset;
            vars.delay = e.delay;
            vars.dispersion = e.dispersion;
            vars.jitter = e.jitter;
        }
        Some(vars)
    }

    fn source_vars(&self, source: SourceId) -> Option<PeerVars<'_>> {
        let spec = self.node.sources.spec(source)?;
        let status = self.source_status(source)?;
        let hpoll = spec.assoc.minpoll.as_log2().max(0);
        let mut vars = match (&spec.target, spec.kind) {
            // A manycast client's row: its group, refid `MCST` (as ntpd shows it).
            (Target::Addr(group), SourceKind::Manycast { .. }) => PeerVars {
                srcadr: Some(SocketAddr::new(*group, spec.port)),
                srchost: None,
                reference_id: ReferenceId::from_bytes(*b"MCST"),
                ..PeerVars::pool("", hpoll)
            },
            (Target::Name(name), _) => PeerVars::pool(name.as_str(), hpoll),
            // An address source has an association as soon as it is configured; no row.
            (Target::Addr(_), _) => return None,
        };
        vars.keyid = spec.key.map_or(0, |k| k.0);
        vars.status = status;
        if matches!(spec.kind, SourceKind::Server) {
            // A `server NAME` not resolved yet: ntpd shows the name with refid `.INIT.`.
            vars.reference_id = ReferenceId::from_bytes(*b"INIT");
        }
        Some(vars)
    }

    fn system_peer_id(&self) -> mode6::AssocId {
        self.node.steering.system_peer().map_or(0, Node::control_assoc_id)
    }
}

impl Mode6Data for ControlView<'_> {
    fn system(&self) -> SystemVars<'_> {
        let node = self.node;
        let synchronized = node.synchronized();
        let source = if synchronized {
            ClockSource::Ntp
        } else if node.orphan.is_some() {
            ClockSource::Local
        } else {
            ClockSource::Unspecified
        };
        let combined = node.steering.selection().and_then(|s| s.combined);
        let discipline = node.steering.discipline();
        let system = if node.control.system.is_empty() {
            std::env::consts::OS
        } else {
            node.control.system.as_str()
        };
        SystemVars {
            status: SystemStatus {
                source,
                event_count: 1,
                last_event: if synchronized {
                    SystemEvent::ClockSync
                } else {
                    SystemEvent::Restart
                },
            },
            version: VERSION,
            processor: std::env::consts::ARCH,
            system,
            leap: node.system.leap,
            stratum: node.system.stratum,
            precision: node.system.precision,
            root_delay: node.system.root_delay,
            root_dispersion: node.system.root_dispersion,
            reference_id: node.system.reference_id,
            reference_time: node.system.reference_time,
            clock: self.clock,
            peer: self.system_peer_id(),
            tc: u8::try_from(discipline.suggested_poll().as_log2()).unwrap_or(MINTC),
            mintc: MINTC,
            offset: node.steering.last_offset().unwrap_or(0.0),
            frequency_ppm: node.steering.frequency_ppm(),
            sys_jitter: combined.map_or(0.0, |c| c.jitter),
            clk_jitter: discipline.jitter(),
            clk_wander_ppm: discipline.frequency_error_ppm(),
            leap_table: None,
        }
    }

    fn associations(&self) -> Vec<AssocSummary> {
        self.rows()
            .into_iter()
            .filter_map(|(id, row)| {
                let status = match row {
                    Row::Assoc(a) => self.assoc_status(a),
                    Row::Source(s) => self.source_status(s),
                }?;
                Some(AssocSummary { id, status })
            })
            .collect()
    }

    fn peer(&self, id: mode6::AssocId) -> Option<PeerVars<'_>> {
        match self.find(id)? {
            Row::Assoc(a) => self.assoc_vars(a),
            Row::Source(s) => self.source_vars(s),
        }
    }
}

/// The ntpd peer status word of an association as mode 6 reports it now (for `peerstats`).
pub(super) fn status_word(node: &Node, now: Instant, assoc: AssocId) -> u16 {
    let view = ControlView { node, now, clock: NtpTimestamp::ZERO };
    view.assoc_status(assoc).map_or(0, |s| s.to_bits())
}

/// Whether a datagram is a mode 6 query, by its first byte alone.
pub(super) fn is_control(request: &[u8]) -> bool {
    request.first().is_some_and(|b| b & 0x07 == 0x06)
}

#[cfg(test)]
pub(super) mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::assoc::AssocConfig;
    use crate::mode6::{ControlHeader, ControlPacket, ControlRepr, Opcode, HEADER_LEN};
    use crate::node::{ConfiguredSource, NodeConfig};
    use crate::rng::SplitMix64;
    use crate::server::{RestrictFlags, ServerConfig};
    use crate::source::{AddrFamily, SourceSpec};

    fn node(servers: u8, server: ServerConfig) -> Node {
        let sources = (1..=servers)
            .map(|i| ConfiguredSource {
                spec: SourceSpec {
                    kind: SourceKind::Server,
                    target: Target::Addr(IpAddr::V4(Ipv4Addr::new(192, 0, 2, i))),
                    port: 123,
                    assoc: AssocConfig::default(),
                    family: AddrFamily::Any,
                    prefer: false,
                    noselect: false,
                    key: None,
                },
                origin: format!("test:{i}"),
            })
            .collect();
        let config = NodeConfig { sources, maxclock: 255, server, ..NodeConfig::default() };
        Node::new(Instant::from_nanos(1), config, Box::new(SplitMix64::new(7)))
    }

    /// A mode 6 request for `assoc` (0: the system), as ntpq builds it.
    pub(in crate::node) fn request(opcode: Opcode, assoc: u16, data: &[u8]) -> Vec<u8> {
        let repr = ControlRepr {
            header: ControlHeader {
                leap: crate::wire::LeapIndicator::NoWarning,
                version: 2,
                response: false,
                error: false,
                more: false,
                opcode,
                sequence: 9,
                status: 0,
                association_id: assoc,
                offset: 0,
            },
            data,
            trailer: &[],
        };
        let mut buf = vec![0u8; MAX_DATAGRAM_LEN];
        let len = repr.emit(&mut buf).expect("emit");
        buf.truncate(len);
        buf
    }

    /// Every datagram of the answer to `req` from `client`.
    fn ask(node: &mut Node, client: IpAddr, req: &[u8]) -> Vec<Vec<u8>> {
        let mut out = [0u8; 1024];
        let rx = NtpTimestamp::from_bits(0xE9A1_B2C3_0000_0000);
        let mut all = Vec::new();
        let mut len = match node.respond(Instant::from_nanos(2), rx, client, req, &mut out) {
            ServerAction::Reply { len, kind } => {
                assert_eq!(kind, ReplyKind::Control);
                Some(len)
            }
            ServerAction::Ignore(_) => None,
        };
        while let Some(n) = len {
            all.push(out[..n].to_vec());
            len = node.poll_control_reply(&mut out);
        }
        all
    }

    const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
    const REMOTE: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1));

    #[test]
    fn loopback_reads_the_association_list_by_default_others_get_nothing() {
        let mut n = node(3, ServerConfig::default());
        let answer = ask(&mut n, LOCAL, &request(Opcode::ReadStatus, 0, &[]));
        assert_eq!(answer.len(), 1);
        let p = ControlPacket::new_checked(&answer[0][..]).expect("answer parses");
        assert!(p.is_response() && !p.is_error());
        assert_eq!(p.count(), 12, "three associations, 4 octets each");
        let ids: Vec<u16> = p.data().chunks(4).map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
        let want: Vec<u16> = n.assocs.keys().map(|a| Node::control_assoc_id(*a)).collect();
        assert_eq!(ids, want);
        // A peer's variables by that ID: its address.
        let answer = ask(&mut n, LOCAL, &request(Opcode::ReadVariables, ids[0], b"srcadr"));
        let text = String::from_utf8_lossy(&answer[0][HEADER_LEN..]).into_owned();
        assert!(text.starts_with("srcadr=192.0.2.1"), "{text}");
        // `restrict default ... noquery`: nothing at all for a non-local client.
        assert!(ask(&mut n, REMOTE, &request(Opcode::ReadStatus, 0, &[])).is_empty());
        let c = n.control_counters();
        assert_eq!((c.requests, c.answered), (3, 2));
        assert_eq!(c.dropped.get("noquery"), Some(&1));
    }

    #[test]
    fn long_answers_come_in_fragments_through_poll_control_reply() {
        // 130 associations: a 520-octet association list, two datagrams.
        let mut n = node(130, ServerConfig::default());
        let answer = ask(&mut n, LOCAL, &request(Opcode::ReadStatus, 0, &[]));
        assert_eq!(answer.len(), 2);
        let first = ControlPacket::new_checked(&answer[0][..]).expect("parses");
        let second = ControlPacket::new_checked(&answer[1][..]).expect("parses");
        assert!(first.has_more() && !second.has_more());
        assert_eq!((first.offset(), first.count()), (0, 468));
        assert_eq!((second.offset(), second.count()), (468, 52));
        // The next request discards nothing it should not: the answer is complete.
        let mut out = [0u8; 1024];
        assert_eq!(n.poll_control_reply(&mut out), None);
    }

    #[test]
    fn manycast_row_and_keyed_associations_as_ntpq_shows_them() {
        use crate::auth::{Digest, Key, KeyId, KeyStore};
        let key = Key::new(KeyId(5), Digest::Md5, b"secret").expect("key");
        let mut keys: KeyStore = [key].into_iter().collect();
        keys.trust_all();
        let group = IpAddr::V4(Ipv4Addr::new(239, 1, 1, 1));
        let spec = |kind, target| SourceSpec {
            kind,
            target: Target::Addr(target),
            port: 123,
            assoc: AssocConfig::default(),
            family: AddrFamily::Any,
            prefer: false,
            noselect: false,
            key: Some(KeyId(5)),
        };
        let sources = vec![
            ConfiguredSource {
                spec: spec(SourceKind::Manycast { maxsources: 2, ttl: 127 }, group),
                origin: "t:1".into(),
            },
            ConfiguredSource {
                spec: spec(SourceKind::Server, IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))),
                origin: "t:2".into(),
            },
        ];
        let config = NodeConfig {
            sources,
            auth: crate::node::AuthConfig { keys, control_key: None },
            ..NodeConfig::default()
        };
        let mut n = Node::new(Instant::from_nanos(1), config, Box::new(SplitMix64::new(7)));
        let list = ask(&mut n, LOCAL, &request(Opcode::ReadStatus, 0, &[]));
        let p = ControlPacket::new_checked(&list[0][..]).expect("parses");
        let ids: Vec<u16> = p.data().chunks(4).map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
        assert_eq!(ids.len(), 2, "the manycast row and the server");
        let text = |n: &mut Node, id| {
            let a = ask(n, LOCAL, &request(Opcode::ReadVariables, id, b"srcadr,refid,keyid"));
            String::from_utf8_lossy(&a[0][HEADER_LEN..]).into_owned()
        };
        let row = text(&mut n, ids[0]);
        assert!(row.contains("srcadr=239.1.1.1") && row.contains("refid=MCST"), "{row}");
        assert!(row.contains("keyid=5"), "{row}");
        assert!(text(&mut n, ids[1]).contains("keyid=5"));
    }

    #[test]
    fn spoofed_flood_never_amplifies_and_time_is_still_served() {
        // Queries opened to everyone: the reply budget is what protects third parties.
        let open = ServerConfig { default_flags: RestrictFlags::NONE, ..ServerConfig::default() };
        let mut n = node(4, open);
        let reqs = [
            request(Opcode::ReadStatus, 0, &[]),
            request(Opcode::ReadVariables, 0, &[]),
            request(Opcode::ReadVariables, 0, b"offset"),
            request(Opcode::ReadVariables, 16385, &[]),
            request(Opcode::Other(10), 0, &[]),
        ];
        let mut rng = SplitMix64::new(1);
        let (mut bytes_in, mut bytes_out) = (0usize, 0usize);
        for i in 0..20_000u32 {
            let r = crate::rng::RngSource::next_u64(&mut rng);
            let src = IpAddr::V4(Ipv4Addr::new(198, 18, (r % 40) as u8, (r >> 8) as u8));
            let req = &reqs[i as usize % reqs.len()];
            bytes_in += req.len();
            bytes_out += ask(&mut n, src, req).iter().map(Vec::len).sum::<usize>();
        }
        assert!(bytes_out <= bytes_in, "{bytes_out} out for {bytes_in} in");
        let c = n.control_counters();
        assert_eq!(c.bytes_in as usize, bytes_in);
        assert_eq!(c.bytes_out as usize, bytes_out);
        assert!(c.refused > 0, "large answers were refused with PERMISSION");
        // A time request is still answered.
        let mut time = [0u8; 48];
        time[0] = 0x23;
        time[40..48].copy_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        let mut out = [0u8; 64];
        let rx = NtpTimestamp::from_bits(0xE9A1_B2C3_0000_0000);
        let action = n.respond(Instant::from_nanos(3), rx, REMOTE, &time, &mut out);
        assert!(matches!(action, ServerAction::Reply { len: 48, kind: ReplyKind::Normal }));
    }
}
