//! Sources: what the administrator configured (`server NAME`, `server ADDR`, `pool NAME`), the
//! names behind them, and which associations they own.
//!
//! [`SourceManager`] is the sans-IO state machine that decides when to resolve a name, what to
//! do with the answer, and when to mobilize, move or retire an association. The daemon executes
//! its [`SourceAction`]s (DNS lookups, socket set-up) and feeds results and association events
//! back. Nothing here does I/O or reads a clock.
//!
//! # Call protocol
//! ```text
//!  add / remove / refresh ─┐
//!  handle_timeout(now) ────┤                      ┌─► poll_action(): Resolve | Mobilize | Move | Demobilize
//!  handle_resolved(..) ────┼─► SourceManager ─────┼─► poll_event():  for logs and history
//!  handle_assoc_event(..) ─┘                      └─► poll_timeout(): next resolution due
//! ```
//! Every `Resolve` action must be answered with exactly one `handle_resolved` for that source
//! (or the source removed). A spurious `handle_timeout` is a no-op.
//!
//! # Policy (documented for administrators in docs/dns.md and docs/pool.md)
//! * **Identity.** A source is its target (name or address), port and address family. Adding
//!   the same again is refused as a duplicate, so three `server pool.ntp.org` lines are one
//!   source, while `server -4 NAME` and `server -6 NAME` are two (as in ntpd). No two
//!   associations ever share an address and port, across all sources.
//! * **Server names** own at most one association. Its id survives address changes. A healthy
//!   server still listed in the answer is never churned, whatever else the answer says; when a
//!   re-resolution no longer lists the current address, the association moves to an address of
//!   the answer that nobody else uses (filter and reach restart). When the server fails
//!   (unreachable, persistently unsynchronized, KoD DENY/RSTR) the name is asked at once and the
//!   association fails over to another free address of the fresh answer; the failed address is
//!   avoided for [`BAD_MEMBER_AVOID_SECS`].
//! * **When names are resolved.** At start; then when the answer's TTL expires, clamped to
//!   [`ResolvePolicy::floor`]..[`ResolvePolicy::ceiling`] with ±10 % jitter kept inside those
//!   bounds (so a fleet does not query in step, and the daily query count stays between 1 and
//!   86400/floor); early when the server fails, then with exponential backoff while it stays
//!   failed; after a failure, with exponential backoff from [`ResolvePolicy::retry_min`] (2 s
//!   when nothing is known yet, 60 s otherwise) to [`ResolvePolicy::retry_max`], or every
//!   [`ResolvePolicy::local_retry`] when no DNS server is configured. Last good addresses stay
//!   in use until they fail. At most [`MAX_ANSWER_ADDRS`] addresses of an answer are kept.
//! * **Pools** own up to their target of associations (see [`SourceManager::pool_targets`]: pool
//!   lines count toward `maxclock`, as in ntpd). Members come from the cached answer while its
//!   TTL is valid, in random order, skipping addresses in use anywhere or blocked. A pool below
//!   its target looks up again at most every [`POOL_REQUERY_MIN`], or, once an answer had
//!   nothing new, on a healthy name's schedule unless it loses a member. An `iburst` first fill
//!   probes up to `maxclock` and is not rate-limited until the target is reached once (or
//!   [`FIRST_FILL_ROUNDS`] rounds are spent). A member is never retired because a later answer
//!   does not list it (pool answers are random subsets). It is retired when unreachable, when it
//!   keeps reporting itself unsynchronized, on a falseticker verdict, or at once on
//!   Kiss-o'-Death DENY/RSTR (the address is then blocked for [`KOD_BLOCK_SECS`]).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::net::{IpAddr, SocketAddr};

use crate::assoc::{AssocConfig, AssocEvent, AssocId, DemobilizeReason};
use crate::rng::RngSource;
use crate::time::Instant;

#[cfg(test)]
mod tests;

/// How long an address that answered DENY or RSTR is not used again (1 day).
pub const KOD_BLOCK_SECS: f64 = 86_400.0;
/// Consecutive "I am unsynchronized" replies after which a pool retires a member.
pub const UNSYNC_RETIRE_REPLIES: u32 = 8;
/// How long a pool avoids the address of a member it retired as unreachable, unsynchronized or
/// falseticker (1 h): otherwise the cached answer would offer the same bad server right back.
pub const BAD_MEMBER_AVOID_SECS: f64 = 3_600.0;
/// Replacements a pool may make at once after its first fill (the token bucket's size).
pub const POOL_REPLACE_BURST: f64 = 2.0;
/// Mean time for a pool to earn one more replacement (s): 15 min, drawn uniformly from half to
/// one and a half times this for each token, so a fleet that loses the same server does not
/// re-query and re-mobilize in step.
pub const POOL_REPLACE_INTERVAL: f64 = 900.0;
/// Rounds of probes a pool's first fill may mobilize before the replacement rate limit applies
/// even though the pool never reached its target (a round is what the pool wants at once: its
/// target, or up to twice that with `iburst`). Without it, a pool whose probes never answer
/// (NTP blocked on this network) would cycle through its name's addresses without pause.
pub const FIRST_FILL_ROUNDS: usize = 4;
/// Addresses kept from one DNS answer, at most (the first ones, in the server's order): a pool
/// never needs more, and an answer over TCP could otherwise hold thousands.
pub const MAX_ANSWER_ADDRS: usize = 64;
/// Shortest spacing of a pool's lookups while it needs addresses and the name may have more to
/// give (s).
pub const POOL_REQUERY_MIN: f64 = 60.0;

/// Identifies a source for its whole life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SourceId(pub u32);

/// What a source points at.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Target {
    /// An address literal: never resolved.
    Addr(IpAddr),
    /// A DNS name, kept with the source for its whole life.
    Name(String),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Addr(ip) => ip.fmt(f),
            Target::Name(n) => f.write_str(n),
        }
    }
}

/// Which address families a source may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AddrFamily {
    /// IPv4 and IPv6.
    #[default]
    Any,
    /// IPv4 only (`-4`).
    V4,
    /// IPv6 only (`-6`).
    V6,
}

impl AddrFamily {
    fn allows(self, ip: IpAddr) -> bool {
        match self {
            AddrFamily::Any => true,
            AddrFamily::V4 => ip.is_ipv4(),
            AddrFamily::V6 => ip.is_ipv6(),
        }
    }
}

/// Server or pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// One association.
    Server,
    /// Up to `maxsources` ephemeral associations.
    Pool {
        /// Per-pool limit.
        maxsources: u8,
    },
}

/// A configured source.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceSpec {
    /// Server or pool.
    pub kind: SourceKind,
    /// Name or address.
    pub target: Target,
    /// Remote UDP port.
    pub port: u16,
    /// Settings for its associations.
    pub assoc: AssocConfig,
    /// Allowed address families.
    pub family: AddrFamily,
    /// `prefer`: selection favours this source's associations.
    pub prefer: bool,
    /// `noselect`: polled and shown, never used for time.
    pub noselect: bool,
}

/// Re-resolution timing. All values in seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ResolvePolicy {
    /// Never re-resolve a working name more often than this, whatever the TTL (default 1 h).
    pub floor: f64,
    /// Re-resolve at least this often, whatever the TTL (default 24 h).
    pub ceiling: f64,
    /// First retry after a failure when nothing is known about the name yet (default 2 s).
    pub retry_min: f64,
    /// Longest retry interval after failures (default 1 h).
    pub retry_max: f64,
    /// First early re-resolution interval while the server stays unreachable (default 60 s;
    /// the first one happens at once).
    pub unreachable_min: f64,
    /// Longest retry interval after a failure that cost no query ([`ResolveError::is_local`]:
    /// no DNS server configured), default 5 s, so a name resolves within seconds of the
    /// resolver configuration being fixed.
    pub local_retry: f64,
}

impl Default for ResolvePolicy {
    fn default() -> Self {
        ResolvePolicy {
            floor: 3_600.0,
            ceiling: 86_400.0,
            retry_min: 2.0,
            retry_max: 3_600.0,
            unreachable_min: 60.0,
            local_retry: 5.0,
        }
    }
}

/// A successful lookup: every usable address and when the answer expires.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// All A and AAAA addresses of the name, in the order the server gave them.
    pub addrs: Vec<IpAddr>,
    /// When the answer's TTL runs out.
    pub valid_until: Instant,
}

/// Why a lookup failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResolveError {
    /// The name does not exist (NXDOMAIN).
    NxDomain,
    /// The name exists but has no A/AAAA records (NODATA).
    NoRecords,
    /// The answer held only addresses that cannot be NTP servers (unspecified, multicast,
    /// broadcast) or none of the allowed family.
    NoUsableAddress,
    /// The DNS server answered SERVFAIL.
    ServFail,
    /// The DNS server refused the query.
    Refused,
    /// No answer in time from any configured DNS server.
    Timeout,
    /// No DNS server is configured (the system's resolver configuration lists no `nameserver`).
    /// Nothing was sent; the source asks again within [`ResolvePolicy::local_retry`].
    NoNameServer,
    /// The DNS server's port is closed (ICMP port unreachable, TCP reset): nothing listens
    /// there.
    ConnectionRefused,
    /// Anything else the resolver reported; the text is the resolver's.
    Other(String),
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResolveError::NxDomain => f.write_str("name does not exist (NXDOMAIN)"),
            ResolveError::NoRecords => f.write_str("name has no A or AAAA records"),
            ResolveError::NoUsableAddress => f.write_str(
                "answer has no usable address (unspecified, multicast, broadcast or wrong family)",
            ),
            ResolveError::ServFail => f.write_str("DNS server failure (SERVFAIL)"),
            ResolveError::Refused => f.write_str("DNS server refused the query (REFUSED)"),
            ResolveError::Timeout => f.write_str("no answer from the DNS servers (timeout)"),
            ResolveError::NoNameServer => f.write_str(
                "no DNS server configured (/etc/resolv.conf lists no nameserver); retrying",
            ),
            ResolveError::ConnectionRefused => {
                f.write_str("DNS server port refused the query (nothing listens there)")
            }
            ResolveError::Other(s) => write!(f, "resolver error: {s}"),
        }
    }
}

impl ResolveError {
    /// The failure is on this host and cost no query (no DNS server configured): retrying
    /// often is free, and the fix (a DHCP client writing resolv.conf) should take effect soon.
    pub fn is_local(&self) -> bool {
        matches!(self, ResolveError::NoNameServer)
    }
}

/// Why [`SourceManager::add`] refused a source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddError {
    /// The same target, port and address family is already a source.
    #[error("{target} port {port} is already configured as source #{existing}")]
    Duplicate {
        /// The target.
        target: Target,
        /// The port.
        port: u16,
        /// The existing source's id.
        existing: u32,
    },
    /// The address is already used by another source's association.
    #[error("{0} is already polled by another source")]
    AddressInUse(SocketAddr),
    /// The address is one of this rntpd's own server sockets: it would poll itself.
    #[error("{0} is this rntpd's own server address (`interface listen`): it would poll itself")]
    OwnAddress(SocketAddr),
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceAction {
    /// Look up every A and AAAA record of `name`; answer with `handle_resolved`.
    Resolve {
        /// The source.
        source: SourceId,
        /// The name.
        name: String,
    },
    /// Start an association.
    Mobilize {
        /// New association id.
        assoc: AssocId,
        /// Owner.
        source: SourceId,
        /// Where.
        remote: SocketAddr,
        /// Settings.
        config: AssocConfig,
    },
    /// Point an existing association at another address (its id stays).
    Move {
        /// The association.
        assoc: AssocId,
        /// The new address.
        remote: SocketAddr,
    },
    /// Stop an association for good.
    Demobilize {
        /// The association.
        assoc: AssocId,
        /// Why.
        reason: DemobilizeReason,
    },
}

/// Why a server name's association moved to another address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoveReason {
    /// The name no longer lists the address in use.
    AddressChanged,
    /// The server stopped answering, answered unusably (unsynchronized) or refused service
    /// (KoD), and the name lists another address.
    Failover,
}

impl MoveReason {
    /// Stable name for displays and history.
    pub fn name(self) -> &'static str {
        match self {
            MoveReason::AddressChanged => "address-changed",
            MoveReason::Failover => "failover",
        }
    }
}

/// Why an association was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MobilizeReason {
    /// A configured address or the first resolution of a server name.
    Configured,
    /// A pool filling up to its target.
    PoolFill,
    /// A pool replacing a retired member.
    Replacement,
}

impl MobilizeReason {
    /// Stable name for displays.
    pub fn name(self) -> &'static str {
        match self {
            MobilizeReason::Configured => "configured",
            MobilizeReason::PoolFill => "pool-fill",
            MobilizeReason::Replacement => "replacement",
        }
    }
}

/// Something worth logging or recording in the history.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceEvent {
    /// A lookup succeeded.
    Resolved {
        /// Source.
        source: SourceId,
        /// Name.
        name: String,
        /// Usable addresses.
        addrs: usize,
        /// TTL of the answer (s).
        ttl: f64,
        /// When the next lookup is planned (s from now).
        next_in: f64,
    },
    /// A lookup failed. `repeated` is true when the previous attempt failed the same way (log
    /// at a lower level then: each failure is logged once with its cause).
    ResolveFailed {
        /// Source.
        source: SourceId,
        /// Name.
        name: String,
        /// Cause.
        error: ResolveError,
        /// Retry in (s).
        retry_in: f64,
        /// Same cause as last time.
        repeated: bool,
        /// Whether addresses from an earlier answer are still known (and in use).
        have_addresses: bool,
    },
    /// An association was started.
    Mobilized {
        /// Owner.
        source: SourceId,
        /// Association.
        assoc: AssocId,
        /// Address.
        remote: SocketAddr,
        /// Why.
        reason: MobilizeReason,
    },
    /// A server name's association moved to another address of the name.
    Moved {
        /// Owner.
        source: SourceId,
        /// Association.
        assoc: AssocId,
        /// Old address.
        from: SocketAddr,
        /// New address.
        to: SocketAddr,
        /// Why.
        reason: MoveReason,
    },
    /// An association was stopped.
    Retired {
        /// Owner.
        source: SourceId,
        /// Association.
        assoc: AssocId,
        /// Address.
        remote: SocketAddr,
        /// Why.
        reason: DemobilizeReason,
    },
    /// The answer had addresses, but every one is in use by another association or blocked.
    NoFreeAddress {
        /// Source.
        source: SourceId,
        /// Name.
        name: String,
    },
    /// An answer listed one of this rntpd's own server addresses; it is never polled (reported
    /// once per address).
    OwnAddressSkipped {
        /// Source.
        source: SourceId,
        /// The address.
        remote: SocketAddr,
    },
}

/// One resolution attempt's outcome, kept for display.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolutionRecord {
    /// When it completed.
    pub at: Instant,
    /// Addresses and TTL, or the error.
    pub outcome: Result<(usize, f64), ResolveError>,
}

/// A read-only view of one source.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceSnapshot {
    /// Id.
    pub id: SourceId,
    /// Spec.
    pub spec: SourceSpec,
    /// Known usable addresses (the last good answer) and when they expire.
    pub addrs: Vec<IpAddr>,
    /// Expiry of the last good answer.
    pub valid_until: Option<Instant>,
    /// Last resolution.
    pub last_resolution: Option<ResolutionRecord>,
    /// Next planned resolution (None: none planned, e.g. an address literal or a full pool).
    pub next_resolution: Option<Instant>,
    /// Whether a lookup is running now.
    pub resolving: bool,
    /// Lookups started so far.
    pub queries: u64,
    /// The source's associations and their addresses.
    pub assocs: Vec<(AssocId, SocketAddr)>,
    /// For pools, the current target number of members.
    pub target: Option<usize>,
    /// For pools after the first fill: replacements that may be made at once now.
    pub replacements_available: Option<u32>,
    /// For pools: when the next replacement token arrives (None: the bucket is full).
    pub next_replacement: Option<Instant>,
    /// For pools: the first fill is still going on (probing).
    pub filling: bool,
}

/// An association as the manager tracks it.
#[derive(Debug, Clone)]
struct Member {
    source: SourceId,
    remote: SocketAddr,
    /// Stopped by itself (KoD) but kept, for a server source, until a new address is found.
    dead: bool,
    reachable: bool,
    /// When it first answered, for "keep the first members that answer" after probing.
    reachable_since: Option<Instant>,
    unsync_run: u32,
    /// Unreachable, persistently unsynchronized or refused service: a server name moves to
    /// another address of its next answer (a healthy one never does).
    failed: bool,
}

/// Per-name resolution state.
#[derive(Debug, Clone)]
struct NameState {
    name: String,
    addrs: Vec<IpAddr>,
    valid_until: Option<Instant>,
    last: Option<ResolutionRecord>,
    next: Option<Instant>,
    in_flight: bool,
    /// A refresh was asked for while a lookup was running.
    again: bool,
    queries: u64,
    failures: u32,
    /// While the server is unreachable: the next early re-resolution interval.
    unreachable_backoff: Option<f64>,
    /// Pools: the last answer had no address a new member could use (the name gave all it
    /// has), so the next lookup waits until then, as a healthy name's would, unless a member
    /// is lost meanwhile.
    pool_idle_until: Option<Instant>,
}

impl NameState {
    fn new(name: String, now: Instant) -> Self {
        NameState {
            name,
            addrs: Vec::new(),
            valid_until: None,
            last: None,
            next: Some(now),
            in_flight: false,
            again: false,
            queries: 0,
            failures: 0,
            unreachable_backoff: None,
            pool_idle_until: None,
        }
    }

    /// Asks for an early lookup because the server in use failed: at once the first time,
    /// then on the unreachable backoff (see [`SourceManager::handle_resolved`]).
    fn lookup_after_failure(&mut self, now: Instant, policy: &ResolvePolicy) {
        if self.unreachable_backoff.is_some() {
            return;
        }
        self.unreachable_backoff = Some(policy.unreachable_min);
        if self.in_flight {
            self.again = true;
        } else {
            self.plan(now);
        }
    }

    fn cache_valid(&self, now: Instant) -> bool {
        self.valid_until.is_some_and(|t| now < t)
    }

    /// Plans a lookup at `at` unless one is planned earlier.
    fn plan(&mut self, at: Instant) {
        self.next = Some(self.next.map_or(at, |n| n.min(at)));
    }
}

#[derive(Debug, Clone)]
struct Source {
    spec: SourceSpec,
    dns: Option<NameState>,
    /// Pools only.
    pool: Option<PoolState>,
}

/// A pool's fill and replacement state.
#[derive(Debug, Clone)]
struct PoolState {
    /// The pool has reached its target once (enough members answered at the same time):
    /// the first fill is over, replacements are rate-limited from now on.
    filled: bool,
    /// Members mobilized during the first fill (see [`FIRST_FILL_ROUNDS`]).
    fill_tries: usize,
    /// Replacements available now (token bucket, at most [`POOL_REPLACE_BURST`]).
    tokens: f64,
    /// When the next token arrives, while the bucket is not full.
    next_token: Option<Instant>,
}

/// The source manager. See the module docs for the call protocol and policy.
#[derive(Debug)]
pub struct SourceManager {
    policy: ResolvePolicy,
    maxclock: usize,
    sources: BTreeMap<SourceId, Source>,
    members: BTreeMap<AssocId, Member>,
    /// Addresses not to use until the given time (KoD DENY/RSTR).
    blocked: BTreeMap<SocketAddr, Instant>,
    /// This rntpd's own server addresses: never polled (a timing loop).
    own: BTreeSet<SocketAddr>,
    /// Own addresses already reported as skipped.
    own_reported: BTreeSet<SocketAddr>,
    next_source: u32,
    next_assoc: u32,
    actions: VecDeque<SourceAction>,
    events: VecDeque<SourceEvent>,
}

impl SourceManager {
    /// An empty manager. `maxclock` limits the total number of associations (ntpd's
    /// `tos maxclock`); configured servers always get theirs, pools share the rest.
    pub fn new(policy: ResolvePolicy, maxclock: usize) -> Self {
        SourceManager {
            policy,
            maxclock,
            sources: BTreeMap::new(),
            members: BTreeMap::new(),
            blocked: BTreeMap::new(),
            own: BTreeSet::new(),
            own_reported: BTreeSet::new(),
            next_source: 1,
            next_assoc: 1,
            actions: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// This rntpd's own server addresses (`interface listen`, and any address a loop was
    /// detected on): never mobilized, skipped in answers with an [`SourceEvent::OwnAddressSkipped`].
    pub fn add_own_addresses(&mut self, addrs: impl IntoIterator<Item = SocketAddr>) {
        self.own.extend(addrs);
    }

    /// Adds a source. Address literals mobilize at once; names are resolved first.
    pub fn add(
        &mut self,
        now: Instant,
        spec: SourceSpec,
        rng: &mut dyn RngSource,
    ) -> Result<SourceId, AddError> {
        // Identity: target, port and family (`server -4 NAME` and `server -6 NAME` are two
        // sources, as ntpd makes them two associations). An address literal has one family.
        let same = |s: &SourceSpec| {
            s.target == spec.target
                && s.port == spec.port
                && (s.family == spec.family || matches!(spec.target, Target::Addr(_)))
        };
        if let Some((id, _)) = self.sources.iter().find(|(_, s)| same(&s.spec)) {
            return Err(AddError::Duplicate {
                target: spec.target.clone(),
                port: spec.port,
                existing: id.0,
            });
        }
        if let Target::Addr(ip) = spec.target {
            let remote = SocketAddr::new(ip, spec.port);
            if self.own.contains(&remote) {
                return Err(AddError::OwnAddress(remote));
            }
            if self.addr_in_use(remote) {
                return Err(AddError::AddressInUse(remote));
            }
        }
        let id = SourceId(self.next_source);
        self.next_source += 1;
        let dns = match &spec.target {
            Target::Name(name) => Some(NameState::new(name.clone(), now)),
            Target::Addr(_) => None,
        };
        let target = spec.target.clone();
        let pool = matches!(spec.kind, SourceKind::Pool { .. }).then_some(PoolState {
            filled: false,
            fill_tries: 0,
            tokens: POOL_REPLACE_BURST,
            next_token: None,
        });
        self.sources.insert(id, Source { spec, dns, pool });
        if let Target::Addr(ip) = target {
            let remote = SocketAddr::new(ip, self.sources[&id].spec.port);
            self.mobilize(id, remote, MobilizeReason::Configured);
        }
        self.handle_timeout(now, rng);
        Ok(id)
    }

    /// Removes a source and stops all its associations. Returns false if there is no such
    /// source.
    pub fn remove(&mut self, now: Instant, id: SourceId, rng: &mut dyn RngSource) -> bool {
        if self.sources.remove(&id).is_none() {
            return false;
        }
        let owned: Vec<AssocId> =
            self.members.iter().filter(|(_, m)| m.source == id).map(|(a, _)| *a).collect();
        for assoc in owned {
            self.retire(now, assoc, DemobilizeReason::Removed);
        }
        // Freed capacity may let other pools grow.
        self.fill_pools(now, rng);
        true
    }

    /// The source with this target (name or address text), if any.
    pub fn find(&self, target: &str) -> Option<SourceId> {
        let wanted = target.trim_end_matches('.').to_ascii_lowercase();
        self.sources
            .iter()
            .find(|(_, s)| s.spec.target.to_string().to_ascii_lowercase() == wanted)
            .map(|(id, _)| *id)
    }

    /// Asks for an immediate re-resolution of a named source. Returns false for an unknown
    /// source or an address literal.
    pub fn refresh(&mut self, now: Instant, id: SourceId, rng: &mut dyn RngSource) -> bool {
        let Some(dns) = self.sources.get_mut(&id).and_then(|s| s.dns.as_mut()) else {
            return false;
        };
        if dns.in_flight {
            dns.again = true;
        } else {
            dns.plan(now);
        }
        self.handle_timeout(now, rng);
        true
    }

    /// Starts due lookups and due pool replacements. Calling early is a no-op.
    pub fn handle_timeout(&mut self, now: Instant, rng: &mut dyn RngSource) {
        self.blocked.retain(|_, until| *until > now);
        let mut refilled = false;
        for source in self.sources.values_mut() {
            let Some(pool) = source.pool.as_mut() else { continue };
            while let Some(at) = pool.next_token.filter(|t| *t <= now) {
                pool.tokens = (pool.tokens + 1.0).min(POOL_REPLACE_BURST);
                pool.next_token = (pool.tokens < POOL_REPLACE_BURST)
                    .then(|| at.add_secs_f64(POOL_REPLACE_INTERVAL * (0.5 + rng.next_f64())));
                refilled = true;
            }
        }
        if refilled {
            self.fill_pools(now, rng);
        }
        for (id, source) in &mut self.sources {
            let Some(dns) = source.dns.as_mut() else { continue };
            if dns.in_flight || dns.next.is_none_or(|t| t > now) {
                continue;
            }
            dns.in_flight = true;
            dns.next = None;
            dns.queries += 1;
            self.actions.push_back(SourceAction::Resolve { source: *id, name: dns.name.clone() });
        }
    }

    /// Asks again now for every name whose lookup is pending: it failed, never succeeded, or
    /// its server failed and waits for another address (SIGHUP: the administrator fixed the
    /// network or the resolver configuration). The failure backoff starts over. Returns the
    /// sources asked for.
    pub fn retry_lookups(&mut self, now: Instant, rng: &mut dyn RngSource) -> Vec<SourceId> {
        let failed_servers: Vec<SourceId> =
            self.members.values().filter(|m| m.failed || m.dead).map(|m| m.source).collect();
        let mut asked = Vec::new();
        for (id, source) in &mut self.sources {
            let Some(dns) = source.dns.as_mut() else { continue };
            let failed = matches!(dns.last, Some(ResolutionRecord { outcome: Err(_), .. }));
            if !(failed || dns.addrs.is_empty() || failed_servers.contains(id)) {
                continue;
            }
            dns.failures = 0;
            if dns.in_flight {
                dns.again = true;
            } else {
                dns.plan(now);
            }
            asked.push(*id);
        }
        self.handle_timeout(now, rng);
        asked
    }

    /// The answer to a `Resolve` action.
    pub fn handle_resolved(
        &mut self,
        now: Instant,
        id: SourceId,
        result: Result<Resolved, ResolveError>,
        rng: &mut dyn RngSource,
    ) {
        let policy = self.policy;
        let Some(source) = self.sources.get_mut(&id) else { return };
        let family = source.spec.family;
        let is_pool = matches!(source.spec.kind, SourceKind::Pool { .. });
        let Some(dns) = source.dns.as_mut() else { return };
        dns.in_flight = false;

        let result = result.and_then(|r| {
            let mut usable: Vec<IpAddr> = Vec::new();
            for ip in r.addrs.into_iter().filter(|ip| usable_addr(*ip) && family.allows(*ip)) {
                if !usable.contains(&ip) && usable.len() < MAX_ANSWER_ADDRS {
                    usable.push(ip);
                }
            }
            if usable.is_empty() {
                Err(ResolveError::NoUsableAddress)
            } else {
                Ok(Resolved { addrs: usable, valid_until: r.valid_until })
            }
        });
        match result {
            Ok(resolved) => {
                let ttl = resolved.valid_until.secs_since(now).max(0.0);
                dns.failures = 0;
                dns.addrs = resolved.addrs;
                // An answer with TTL 0 is still the answer to *this* query: use it for the
                // mobilizations it triggers now (otherwise a TTL-0 pool never fills).
                dns.valid_until = Some(resolved.valid_until.max(now.add_secs_f64(1.0)));
                dns.last = Some(ResolutionRecord { at: now, outcome: Ok((dns.addrs.len(), ttl)) });
                // Servers follow the TTL. Pools re-resolve only when they need addresses; a
                // pool that got everything the name has waits as long as a server would.
                let interval = ttl_interval(&policy, ttl, rng);
                let mut next_in = if is_pool { None } else { Some(interval) };
                if let (Some(back), Some(n)) = (dns.unreachable_backoff, next_in.as_mut()) {
                    *n = n.min(back);
                    dns.unreachable_backoff = Some((back * 2.0).min(policy.retry_max));
                }
                if let Some(n) = next_in {
                    dns.plan(now.add_secs_f64(n));
                }
                if dns.again {
                    dns.again = false;
                    dns.plan(now);
                }
                let name = dns.name.clone();
                let addrs = dns.addrs.len();
                if is_pool {
                    let fresh = self.pool_candidates(now, id).len();
                    let members = self.members.values().filter(|m| m.source == id).count();
                    let Some(dns) = self.dns_mut(id) else { return };
                    dns.pool_idle_until = (fresh == 0).then(|| now.add_secs_f64(interval));
                    next_in = dns.pool_idle_until.map(|t| t.secs_since(now));
                    if fresh == 0 && members == 0 {
                        // Not the normal case of a small name: this pool has nothing to poll.
                        self.events.push_back(SourceEvent::NoFreeAddress {
                            source: id,
                            name: name.clone(),
                        });
                    }
                }
                self.events.push_back(SourceEvent::Resolved {
                    source: id,
                    name,
                    addrs,
                    ttl,
                    next_in: next_in.unwrap_or(f64::INFINITY),
                });
                let listed_own: Vec<SocketAddr> = self
                    .sources
                    .get(&id)
                    .and_then(|s| s.dns.as_ref().map(|d| (d, s.spec.port)))
                    .map(|(d, port)| d.addrs.iter().map(|ip| SocketAddr::new(*ip, port)).collect())
                    .unwrap_or_default();
                for remote in listed_own {
                    self.note_own(id, remote);
                }
                if is_pool {
                    self.fill_pools(now, rng);
                } else {
                    self.place_server(now, id);
                }
            }
            Err(error) => {
                let repeated = matches!(&dns.last, Some(ResolutionRecord { outcome: Err(e), .. }) if *e == error);
                dns.failures = dns.failures.saturating_add(1);
                let base = if dns.addrs.is_empty() {
                    policy.retry_min
                } else {
                    60f64.max(policy.retry_min)
                };
                let mut backoff = base * 2f64.powi(dns.failures.saturating_sub(1).min(30) as i32);
                if error.is_local() {
                    // Nothing was sent: asking again often is free, and the name resolves
                    // within seconds of the resolver configuration being fixed.
                    backoff = backoff.min(policy.local_retry);
                }
                // Up to 10 % less, so retries of many names spread out; never above the max.
                let retry_in = backoff.min(policy.retry_max) * (1.0 - 0.1 * rng.next_f64());
                dns.plan(now.add_secs_f64(retry_in));
                dns.last = Some(ResolutionRecord { at: now, outcome: Err(error.clone()) });
                dns.again = false;
                self.events.push_back(SourceEvent::ResolveFailed {
                    source: id,
                    name: dns.name.clone(),
                    error,
                    retry_in,
                    repeated,
                    have_addresses: !dns.addrs.is_empty(),
                });
            }
        }
        self.handle_timeout(now, rng);
    }

    /// An event from an association this manager mobilized.
    pub fn handle_assoc_event(
        &mut self,
        now: Instant,
        assoc: AssocId,
        event: &AssocEvent,
        rng: &mut dyn RngSource,
    ) {
        let policy = self.policy;
        let Some(member) = self.members.get_mut(&assoc) else { return };
        let source_id = member.source;
        let Some(source) = self.sources.get_mut(&source_id) else { return };
        let is_pool = matches!(source.spec.kind, SourceKind::Pool { .. });
        match event {
            AssocEvent::Sample(_) => {
                member.unsync_run = 0;
                member.failed = false;
            }
            AssocEvent::Reachable => {
                member.reachable = true;
                member.failed = false;
                member.reachable_since.get_or_insert(now);
                if let Some(dns) = source.dns.as_mut() {
                    dns.unreachable_backoff = None;
                }
                if is_pool {
                    self.prune_probes(now, source_id);
                }
            }
            AssocEvent::Unreachable => {
                member.reachable = false;
                if is_pool {
                    // Retired and replaced at once (a probe of the first fill, or a member
                    // that stopped answering, noticed within one burst or 8 probes).
                    self.retire(now, assoc, DemobilizeReason::Unreachable);
                    self.fill_pools(now, rng);
                } else if let Some(dns) = source.dns.as_mut() {
                    // The name may list another address now: ask at once, then back off.
                    member.failed = true;
                    dns.lookup_after_failure(now, &policy);
                }
            }
            AssocEvent::Unsynchronized => {
                member.unsync_run = member.unsync_run.saturating_add(1);
                if member.unsync_run >= UNSYNC_RETIRE_REPLIES {
                    if is_pool {
                        self.retire(now, assoc, DemobilizeReason::Unsynchronized);
                        self.fill_pools(now, rng);
                    } else if let Some(dns) = source.dns.as_mut() {
                        member.failed = true;
                        dns.lookup_after_failure(now, &policy);
                    }
                }
            }
            AssocEvent::Kod(_) => {}
            AssocEvent::Demobilized(reason) => {
                let remote = member.remote;
                if matches!(
                    reason,
                    DemobilizeReason::KodDeny | DemobilizeReason::KodRstr | DemobilizeReason::Loop
                ) {
                    self.blocked.insert(remote, now.add_secs_f64(KOD_BLOCK_SECS));
                }
                if *reason == DemobilizeReason::Loop {
                    self.own.insert(remote);
                }
                if is_pool {
                    // The association stopped itself; retiring it also tells the driver to
                    // drop it (the Demobilize action is a no-op for the stopped task).
                    self.retire(now, assoc, *reason);
                    self.fill_pools(now, rng);
                } else {
                    // A server keeps its (stopped) association so its id and the reason stay
                    // visible; an answer with another address revives it, and one is asked
                    // for at once.
                    member.dead = true;
                    member.failed = true;
                    if let Some(dns) = source.dns.as_mut() {
                        dns.lookup_after_failure(now, &policy);
                    }
                    self.events.push_back(SourceEvent::Retired {
                        source: source_id,
                        assoc,
                        remote,
                        reason: *reason,
                    });
                }
            }
        }
        self.handle_timeout(now, rng);
    }

    /// Selection found this association to be a falseticker for several rounds. Pools retire
    /// and replace it; a configured server is kept (the administrator chose it).
    pub fn handle_falseticker(&mut self, now: Instant, assoc: AssocId, rng: &mut dyn RngSource) {
        let Some(member) = self.members.get(&assoc) else { return };
        let is_pool = self
            .sources
            .get(&member.source)
            .is_some_and(|s| matches!(s.spec.kind, SourceKind::Pool { .. }));
        if is_pool {
            self.retire(now, assoc, DemobilizeReason::Falseticker);
            self.fill_pools(now, rng);
        }
    }

    /// The next action for the driver.
    pub fn poll_action(&mut self) -> Option<SourceAction> {
        self.actions.pop_front()
    }

    /// The next event for logs and history.
    pub fn poll_event(&mut self) -> Option<SourceEvent> {
        self.events.pop_front()
    }

    /// When `handle_timeout` should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let lookups = self
            .sources
            .values()
            .filter_map(|s| s.dns.as_ref())
            .filter(|d| !d.in_flight)
            .filter_map(|d| d.next);
        let tokens =
            self.sources.values().filter_map(|s| s.pool.as_ref()).filter_map(|p| p.next_token);
        lookups.chain(tokens).min()
    }

    /// The source that owns an association.
    pub fn owner(&self, assoc: AssocId) -> Option<SourceId> {
        self.members.get(&assoc).map(|m| m.source)
    }

    /// The spec of a source.
    pub fn spec(&self, id: SourceId) -> Option<&SourceSpec> {
        self.sources.get(&id).map(|s| &s.spec)
    }

    /// Read-only views of all sources.
    pub fn snapshot(&self) -> Vec<SourceSnapshot> {
        let targets = self.pool_targets();
        self.sources
            .iter()
            .map(|(id, s)| {
                let dns = s.dns.as_ref();
                SourceSnapshot {
                    id: *id,
                    spec: s.spec.clone(),
                    addrs: dns.map(|d| d.addrs.clone()).unwrap_or_default(),
                    valid_until: dns.and_then(|d| d.valid_until),
                    last_resolution: dns.and_then(|d| d.last.clone()),
                    next_resolution: dns.and_then(|d| d.next),
                    resolving: dns.is_some_and(|d| d.in_flight),
                    queries: dns.map_or(0, |d| d.queries),
                    assocs: self
                        .members
                        .iter()
                        .filter(|(_, m)| m.source == *id)
                        .map(|(a, m)| (*a, m.remote))
                        .collect(),
                    target: targets.get(id).copied(),
                    replacements_available: s
                        .pool
                        .as_ref()
                        .filter(|p| p.filled)
                        .map(|p| p.tokens.floor() as u32),
                    next_replacement: s.pool.as_ref().and_then(|p| p.next_token),
                    filling: s.pool.as_ref().is_some_and(|p| !p.filled),
                }
            })
            .collect()
    }

    /// How many members each pool aims for.
    ///
    /// Configured servers always get their association. As in ntpd and NTPsec, each `pool`
    /// row counts as one toward `maxclock` (Debian's `tos maxclock 11` with 4 pools means 7
    /// servers). The pools share what is left: if every pool's `maxsources` fits, each gets its
    /// `maxsources`; otherwise the remainder is split in proportion to `maxsources`, rounding
    /// down, and the leftover associations go one by one to the pools with the largest
    /// fractional parts (earlier pool first on ties). Example: `maxsources 5` and `maxsources
    /// 3` with `maxclock 8` and no servers → budget 8 − 2 = 6 → 6·5/8 = 3.75 and 6·3/8 = 2.25
    /// → 3 and 2, and the spare one goes to the first pool: 4 and 2.
    pub fn pool_targets(&self) -> BTreeMap<SourceId, usize> {
        let servers = self.sources.values().filter(|s| s.spec.kind == SourceKind::Server).count();
        let pools = self.sources.len() - servers;
        let budget = self.maxclock.saturating_sub(servers + pools);
        let pools: Vec<(SourceId, usize)> = self
            .sources
            .iter()
            .filter_map(|(id, s)| match s.spec.kind {
                SourceKind::Pool { maxsources } => Some((*id, usize::from(maxsources))),
                SourceKind::Server => None,
            })
            .collect();
        let want: usize = pools.iter().map(|(_, w)| w).sum();
        if want <= budget {
            return pools.into_iter().collect();
        }
        let mut shares: Vec<(SourceId, usize, f64)> = pools
            .iter()
            .map(|(id, w)| {
                let exact = budget as f64 * *w as f64 / want as f64;
                (*id, exact.floor() as usize, exact - exact.floor())
            })
            .collect();
        let mut left = budget - shares.iter().map(|s| s.1).sum::<usize>();
        let mut order: Vec<usize> = (0..shares.len()).collect();
        order.sort_by(|&a, &b| shares[b].2.total_cmp(&shares[a].2).then(a.cmp(&b)));
        for i in order {
            if left == 0 {
                break;
            }
            shares[i].1 += 1;
            left -= 1;
        }
        shares.into_iter().map(|(id, n, _)| (id, n)).collect()
    }

    fn dns_mut(&mut self, id: SourceId) -> Option<&mut NameState> {
        self.sources.get_mut(&id).and_then(|s| s.dns.as_mut())
    }

    /// Addresses of a pool's cached answer that a new member could use now (free, not
    /// blocked, of the allowed family), in the answer's order.
    fn pool_candidates(&self, now: Instant, id: SourceId) -> Vec<SocketAddr> {
        let Some(source) = self.sources.get(&id) else { return Vec::new() };
        let Some(dns) = source.dns.as_ref().filter(|d| d.cache_valid(now)) else {
            return Vec::new();
        };
        dns.addrs
            .iter()
            .filter(|ip| source.spec.family.allows(**ip))
            .map(|ip| SocketAddr::new(*ip, source.spec.port))
            .filter(|remote| self.addr_free(now, *remote))
            .collect()
    }

    fn addr_in_use(&self, remote: SocketAddr) -> bool {
        self.members.values().any(|m| m.remote == remote)
    }

    /// Like [`Self::addr_free`], but `except`'s own address does not count as in use.
    fn addr_free_for(&self, now: Instant, remote: SocketAddr, except: Option<AssocId>) -> bool {
        let in_use = self.members.iter().any(|(a, m)| m.remote == remote && Some(*a) != except);
        !in_use
            && !self.own.contains(&remote)
            && self.blocked.get(&remote).is_none_or(|until| now >= *until)
    }

    fn addr_free(&self, now: Instant, remote: SocketAddr) -> bool {
        !self.addr_in_use(remote)
            && !self.own.contains(&remote)
            && self.blocked.get(&remote).is_none_or(|until| now >= *until)
    }

    /// Reports (once) that an answer of `source` listed this rntpd's own address `remote`.
    fn note_own(&mut self, source: SourceId, remote: SocketAddr) {
        if self.own.contains(&remote) && self.own_reported.insert(remote) {
            self.events.push_back(SourceEvent::OwnAddressSkipped { source, remote });
        }
    }

    fn mobilize(&mut self, source: SourceId, remote: SocketAddr, reason: MobilizeReason) {
        let Some(s) = self.sources.get(&source) else { return };
        let assoc = AssocId(self.next_assoc);
        self.next_assoc += 1;
        self.members.insert(
            assoc,
            Member {
                source,
                remote,
                dead: false,
                reachable: false,
                reachable_since: None,
                unsync_run: 0,
                failed: false,
            },
        );
        self.actions.push_back(SourceAction::Mobilize {
            assoc,
            source,
            remote,
            config: s.spec.assoc,
        });
        self.events.push_back(SourceEvent::Mobilized { source, assoc, remote, reason });
    }

    /// Takes an association off the books. Every retirement is a `Demobilize` action, even for
    /// an association that already stopped itself, so the driver always forgets it. A pool's
    /// bad address is avoided for a while, so the replacement is not the same server again.
    fn retire(&mut self, now: Instant, assoc: AssocId, reason: DemobilizeReason) {
        let Some(m) = self.members.remove(&assoc) else { return };
        let avoid = match reason {
            DemobilizeReason::KodDeny | DemobilizeReason::KodRstr | DemobilizeReason::Loop => {
                KOD_BLOCK_SECS
            }
            DemobilizeReason::Unreachable
            | DemobilizeReason::Unsynchronized
            | DemobilizeReason::Falseticker => BAD_MEMBER_AVOID_SECS,
            _ => 0.0,
        };
        if avoid > 0.0 {
            let until = now.add_secs_f64(avoid);
            let entry = self.blocked.entry(m.remote).or_insert(until);
            *entry = (*entry).max(until);
            // A pool that lost a member may look up early again, even if the name had
            // nothing new last time.
            if let Some(dns) = self.dns_mut(m.source) {
                dns.pool_idle_until = None;
            }
        }
        self.actions.push_back(SourceAction::Demobilize { assoc, reason });
        self.events.push_back(SourceEvent::Retired {
            source: m.source,
            assoc,
            remote: m.remote,
            reason,
        });
    }

    /// After a server name resolved: keep, move or mobilize its association.
    ///
    /// A healthy server still listed is never churned. One no longer listed moves to the first
    /// free address of the answer (`address-changed`). A failed one (unreachable, persistently
    /// unsynchronized, refused by KoD) moves to another free address of the answer
    /// (`failover`), and the address it leaves is avoided for [`BAD_MEMBER_AVOID_SECS`] so two
    /// dead addresses are not alternated; with no other address it stays and the name is asked
    /// again on the unreachable backoff.
    fn place_server(&mut self, now: Instant, id: SourceId) {
        let Some(source) = self.sources.get(&id) else { return };
        let Some(dns) = source.dns.as_ref() else { return };
        let port = source.spec.port;
        let name = dns.name.clone();
        let current =
            self.members.iter().find(|(_, m)| m.source == id).map(|(a, m)| (*a, m.clone()));
        let listed = |m: &Member| dns.addrs.contains(&m.remote.ip());
        let reason = match &current {
            Some((_, m)) if !m.failed && !m.dead && listed(m) => return,
            Some((_, m)) if m.failed || m.dead => MoveReason::Failover,
            _ => MoveReason::AddressChanged,
        };
        let answer: Vec<SocketAddr> =
            dns.addrs.iter().map(|ip| SocketAddr::new(*ip, port)).collect();
        let own = current.as_ref().map(|(a, _)| *a);
        let here = current.as_ref().map(|(_, m)| m.remote);
        let other = answer
            .iter()
            .copied()
            .find(|remote| Some(*remote) != here && self.addr_free_for(now, *remote, own));
        // The association's own (stopped) address counts as free for itself: a server that
        // refused us once may be polled again when its KoD block has expired.
        let candidate = match (&current, other) {
            (_, Some(remote)) => Some(remote),
            (Some((_, m)), None)
                if m.dead && listed(m) && self.addr_free_for(now, m.remote, own) =>
            {
                Some(m.remote)
            }
            _ => None,
        };
        let Some(remote) = candidate else {
            if reason == MoveReason::AddressChanged {
                self.events.push_back(SourceEvent::NoFreeAddress { source: id, name });
            }
            return;
        };
        match current {
            Some((assoc, m)) => {
                if reason == MoveReason::Failover && remote != m.remote {
                    let until = now.add_secs_f64(BAD_MEMBER_AVOID_SECS);
                    let entry = self.blocked.entry(m.remote).or_insert(until);
                    *entry = (*entry).max(until);
                }
                if let Some(member) = self.members.get_mut(&assoc) {
                    member.remote = remote;
                    member.dead = false;
                    member.failed = false;
                    member.reachable = false;
                    member.reachable_since = None;
                    member.unsync_run = 0;
                }
                if let Some(dns) = self.dns_mut(id) {
                    // A fresh start: if the new address fails too, ask again at once.
                    dns.unreachable_backoff = None;
                }
                self.actions.push_back(SourceAction::Move { assoc, remote });
                self.events.push_back(SourceEvent::Moved {
                    source: id,
                    assoc,
                    from: m.remote,
                    to: remote,
                    reason,
                });
            }
            None => self.mobilize(id, remote, MobilizeReason::Configured),
        }
    }

    /// After a pool member first answers during the first fill: once `target` members have
    /// answered, keep the first `target` to answer and retire the other probes.
    fn prune_probes(&mut self, now: Instant, id: SourceId) {
        let target = self.pool_targets().get(&id).copied().unwrap_or(0);
        let Some(pool) = self.sources.get_mut(&id).and_then(|s| s.pool.as_mut()) else { return };
        if pool.filled {
            return;
        }
        let mut answered: Vec<(Instant, AssocId)> = self
            .members
            .iter()
            .filter(|(_, m)| m.source == id)
            .filter_map(|(a, m)| m.reachable_since.map(|t| (t, *a)))
            .collect();
        if answered.len() < target {
            return;
        }
        pool.filled = true;
        answered.sort();
        let keep: Vec<AssocId> = answered.iter().take(target).map(|(_, a)| *a).collect();
        let extras: Vec<AssocId> = self
            .members
            .iter()
            .filter(|(a, m)| m.source == id && !keep.contains(a))
            .map(|(a, _)| *a)
            .collect();
        for assoc in extras {
            self.retire(now, assoc, DemobilizeReason::PrunedExtra);
        }
    }

    /// How many members a pool mobilizes now: its target, or during an `iburst` first fill as
    /// many as `maxclock` leaves room for beside every other source, each counted at its target
    /// or its current number of associations, whichever is more ("probes": as ntpd, which
    /// mobilizes a pool's answer up to `maxclock`). The first `target` to answer are kept.
    fn pool_want(&self, id: SourceId, target: usize, targets: &BTreeMap<SourceId, usize>) -> usize {
        let Some(source) = self.sources.get(&id) else { return target };
        let probing = source.pool.as_ref().is_some_and(|p| !p.filled) && source.spec.assoc.iburst;
        if !probing {
            return target;
        }
        let pools = targets.len();
        let others: usize = self
            .sources
            .iter()
            .filter(|(other, _)| **other != id)
            .map(|(other, s)| {
                let count = self.members.values().filter(|m| m.source == *other).count();
                let reserved = match s.spec.kind {
                    SourceKind::Server => 1,
                    SourceKind::Pool { .. } => targets.get(other).copied().unwrap_or(0),
                };
                count.max(reserved)
            })
            .sum();
        let room = self.maxclock.saturating_sub(pools).saturating_sub(others);
        room.max(target)
    }

    /// Brings every pool up to what it wants from cached answers, within its replacement
    /// budget; plans lookups for pools below their target whose cache is stale or exhausted.
    ///
    /// A lookup is planned only for the target (never for extra probes), at most every
    /// [`POOL_REQUERY_MIN`] while the name may have more addresses to give, and no sooner
    /// than a healthy name's TTL schedule once an answer had nothing new (a small name that
    /// has fewer addresses than the pool wants), unless a member is lost meanwhile.
    fn fill_pools(&mut self, now: Instant, rng: &mut dyn RngSource) {
        let targets = self.pool_targets();
        for (&id, &target) in &targets {
            let want = self.pool_want(id, target, &targets);
            let mut have = self.members.values().filter(|m| m.source == id).count();
            if have >= want {
                continue;
            }
            let mut candidates = self.pool_candidates(now, id);
            shuffle(&mut candidates, rng);
            for remote in candidates {
                if have >= want {
                    break;
                }
                if !self.addr_free(now, remote) {
                    continue;
                }
                // The rate limit applies once the pool has reached its target once (or spent
                // its first-fill rounds without getting there).
                let limited = self.rate_limited(id, want);
                if limited && !self.take_token(id, now, rng) {
                    // Out of replacements for now; the next token re-runs this.
                    break;
                }
                if let Some(pool) = self.sources.get_mut(&id).and_then(|s| s.pool.as_mut()) {
                    if !pool.filled {
                        pool.fill_tries += 1;
                    }
                }
                let reason =
                    if limited { MobilizeReason::Replacement } else { MobilizeReason::PoolFill };
                self.mobilize(id, remote, reason);
                have += 1;
            }
            if have >= target {
                continue;
            }
            let budget_left = !self.rate_limited(id, want)
                || self
                    .sources
                    .get(&id)
                    .and_then(|s| s.pool.as_ref())
                    .is_some_and(|p| p.tokens >= 1.0);
            let Some(dns) = self.dns_mut(id) else { continue };
            if !budget_left || dns.in_flight {
                continue;
            }
            let at = match (dns.pool_idle_until, &dns.last) {
                // A failed lookup has planned its retry on the failure backoff.
                (_, Some(ResolutionRecord { outcome: Err(_), .. })) => continue,
                (Some(idle), _) => idle,
                (None, Some(last)) => last.at.add_secs_f64(POOL_REQUERY_MIN),
                (None, None) => now,
            };
            dns.plan(at.max(now));
        }
    }

    /// Whether a pool's new members need a replacement token.
    fn rate_limited(&self, id: SourceId, want: usize) -> bool {
        self.sources
            .get(&id)
            .and_then(|s| s.pool.as_ref())
            .is_some_and(|p| p.filled || p.fill_tries >= FIRST_FILL_ROUNDS * want.max(1))
    }

    /// Spends one replacement token of a pool; false when none is left.
    fn take_token(&mut self, id: SourceId, now: Instant, rng: &mut dyn RngSource) -> bool {
        let Some(pool) = self.sources.get_mut(&id).and_then(|s| s.pool.as_mut()) else {
            return true;
        };
        if pool.tokens < 1.0 {
            return false;
        }
        pool.tokens -= 1.0;
        if pool.next_token.is_none() {
            pool.next_token =
                Some(now.add_secs_f64(POOL_REPLACE_INTERVAL * (0.5 + rng.next_f64())));
        }
        true
    }
}

/// Whether an address can be an NTP server at all.
fn usable_addr(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            !(v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast() || v4.octets()[0] == 0)
        }
        IpAddr::V6(v6) => !(v6.is_unspecified() || v6.is_multicast()),
    }
}

/// The re-resolution interval for an answer with `ttl` seconds left: the TTL clamped to
/// [floor, ceiling], then ±10 % jitter, clamped again so the bounds always hold.
fn ttl_interval(policy: &ResolvePolicy, ttl: f64, rng: &mut dyn RngSource) -> f64 {
    let base = ttl.clamp(policy.floor, policy.ceiling.max(policy.floor));
    let jittered = base * (0.9 + 0.2 * rng.next_f64());
    jittered.clamp(policy.floor, policy.ceiling.max(policy.floor))
}

/// Fisher-Yates with the injected RNG.
fn shuffle<T>(v: &mut [T], rng: &mut dyn RngSource) {
    for i in (1..v.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
}
