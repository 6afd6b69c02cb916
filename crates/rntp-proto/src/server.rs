//! Server mode: answering client requests (RFC 5905 §9.2 `fast_xmit`, with ntpd's access
//! control and rate limiting).
//!
//! The daemon hands every datagram that arrives on an NTP socket to [`Responder::respond`],
//! which decides, without keeping per-request state beyond the rate limiter, whether to drop it
//! ([`ServerAction::Ignore`], with a counted [`IgnoreReason`]) or what to send back
//! ([`ServerAction::Reply`]). The hot path allocates nothing and is O(1) apart from a scan of the
//! (short) restrict list.
//!
//! # Two-step transmit protocol
//! The transmit timestamp must be sampled as late as possible, so it is not an argument:
//! ```text
//! let action = responder.respond(now, rx, src, request, &sys, &mut out);
//! if let ServerAction::Reply { len, .. } = action {
//!     finish_reply(&mut out[..len], wall_clock_now());   // patches bytes 40..48
//!     socket.send_to(&out[..len], src);
//! }
//! ```
//! `respond` leaves the transmit timestamp zero; [`finish_reply`] writes it right before
//! `sendto`. `finish_reply` may be called for every reply: it leaves a kiss-o'-death alone,
//! since a KoD must not reveal our clock (see below).
//!
//! # Decision order
//! 1. Restrict lookup ([`RestrictRule`], [`RestrictFlags`]): the most specific matching rule,
//!    else the default flags. `ignore` drops anything, unparsed
//!    ([`IgnoreReason::RestrictIgnore`]).
//! 2. Mode 6 (control) and mode 7 (private) are dropped by the first byte alone, whatever their
//!    version or length. The node routes mode 6 to the mode 6 responder before it gets here
//!    (after [`Responder::check_query`]: `restrict`, `noquery` and the query rate limit);
//!    mode 7 (ntpdc) is never answered.
//! 3. The packet must parse: version 1–4, a full header, and a well-formed trailer of NTPv4
//!    extension fields and/or a MAC. Failures count under [`WireError::counter_name`].
//! 4. Only client requests are served: mode 3, and mode 0 from NTPv1 (which had no client mode;
//!    ntpd does the same). Mode 0 of later versions and modes 1, 2, 4, 5 are dropped by mode:
//!    rntpd has no symmetric or broadcast associations, and answering a server packet could
//!    start a loop between two servers.
//! 5. Authentication: a request with a MAC is verified with the responder's [`KeyStore`] (set
//!    by the node from `keys` and `trustedkey`; see [`crate::auth`]); kisses and replies to an
//!    authenticated request are signed.
//! 6. `noserve`: dropped, or with `kod` answered by a `DENY` kiss. ntpd 4.2.8 drops even with
//!    `kod`; we send `DENY` because RFC 5905 §7.4 defines it for exactly this, and a compliant
//!    client then demobilizes and stops sending, which a silent drop never achieves.
//! 7. `limited`: the per-client rate limiter (see [`RateLimit`] for the score). Over the limit:
//!    dropped, or with `kod` answered by one `RATE` kiss per `2^average` seconds per client.
//!    The `DENY` kiss of step 6 goes through the same limiter, so a denied client gets at most
//!    what a served one would. Clients without `limited` (and without `noserve kod`) never touch
//!    the table.
//! 8. `notrust`: a request without a valid MAC of a trusted key is dropped
//!    ([`IgnoreReason::NotTrusted`]), except that a MAC that fails still gets its crypto-NAK.
//! 9. The reply.
//!
//! # The reply
//! A 48-byte header: leap, stratum, precision, root delay, root dispersion, reference ID and
//! reference time from [`SystemState`]; version and poll echoed from the request (ntpd and
//! chrony echo the poll unclamped, so the client sees what it sent); mode 4; origin = the
//! request's transmit timestamp; receive = `rx`; transmit = zero until [`finish_reply`]. A
//! stratum outside 1–16 in the system state is sent as 16, because stratum 0 would turn every
//! reply into a kiss-o'-death.
//!
//! **No amplification:** a reply is never longer than its request. Extension fields (NTS, ...)
//! are not echoed; RFC 7822 lets a receiver ignore what it does not understand, and an NTS
//! client rejects the unauthenticated reply on its own.
//!
//! **Authentication.** A request whose MAC verifies with a trusted key gets its reply signed
//! with the same key ([`ReplyKind::Authenticated`]: 68 or 72 bytes, exactly the request's
//! trailer length, so still no amplification). The MAC covers the transmit timestamp, so it is
//! computed in step two, [`Responder::finish_reply`]; `respond` leaves the key id in place and
//! the digest zero. A kiss-o'-death to an authenticated request is signed at once (its
//! timestamps are final). A request whose MAC does not verify (unknown or untrusted key, wrong
//! secret) is answered as RFC 5905 Appendix A.5.1 and ntpd 4.2.8 answer it: the header plus a
//! crypto-NAK (a zero key id, 52 bytes, [`ReplyKind::CryptoNak`]), so the client learns why it
//! gets no usable time; each failure is counted by reason ([`ServerCounters::auth_failures`]).
//! NTPsec 1.2.2 and chrony 4.3 send nothing instead; the crypto-NAK is worth its cost because it
//! turns a silent mismatch into a diagnosis on the client, and it is no bigger than the request
//! and rate-limited like any reply. A request ending in a bare crypto-NAK gets a plain reply
//! (nothing to NAK).
//!
//! # Kiss-o'-death format
//! As ntpd's `fast_xmit`: leap 3, stratum 0, mode 4, version echoed, the kiss code as reference
//! ID, poll = max(request poll, `average`), and every other field copied from the request;
//! origin, receive *and* transmit are the request's transmit timestamp. Nothing in a KoD comes
//! from our clock, so a denied or limited client learns no time from it. KoDs are at most as
//! long as the request (48 bytes, no MAC) and rate-limited per client; there is no global KoD
//! budget, because a 1:1 reply to a spoofed source gives an attacker nothing it could not send
//! itself.
//!
//! # Manycast
//! [`Responder::respond_manycast`] answers what arrives on a `manycastserver` group socket; see
//! its documentation.
//!
//! This module deliberately does **not**: read clocks or sockets; read key files; answer mode
//! 6/7 queries (the node does mode 6, see [`crate::mode6`]); decide the system state
//! (orphan mode, leap smearing, `local` clocks are the daemon's business; the responder serves
//! what it is given). ntpd's MRU list of clients (`ntpq -c mrulist`) is [`MruList`], which the
//! node fills from [`Responder::respond_flagged`].

pub mod mru;
mod ratelimit;
mod restrict;

use core::net::IpAddr;

pub use mru::MruList;
pub(crate) use ratelimit::siphash;
pub use ratelimit::RateLimit;
pub use restrict::{RestrictFlags, RestrictRule};

use crate::auth::{AuthError, KeyId, KeyStore, RequestAuth, KEY_ID_LEN};
use crate::time::{Instant, NtpShort, NtpTimestamp};
use crate::wire::{walk_trailer, KissCode, LeapIndicator, Mode, NtpHeader, ReferenceId, WireError};
use ratelimit::{ClientTable, Verdict};
use restrict::{Key, RestrictList};

/// Offset of the stratum byte, which tells a KoD (0) from a reply.
const STRATUM_OFFSET: usize = 0x01;
/// Where the transmit timestamp lives in the header.
const TRANSMIT_RANGE: core::ops::Range<usize> = 0x28..0x30;
/// The highest stratum on the wire: unsynchronized.
const MAX_STRATUM: u8 = 0x10;
/// The only version with a client mode of 0.
const NTP_V1: u8 = 0x01;
/// The first version with extension fields (RFC 7822).
const EXTENSIONS_VERSION: u8 = 0x04;
/// A reply with a crypto-NAK: header and zero key id.
const CRYPTO_NAK_REPLY_LEN: usize = NtpHeader::LEN + 0x04;
/// The longest reply: header, key id and a 20-byte digest.
pub const MAX_REPLY_LEN: usize = NtpHeader::LEN + 0x18;

/// Server settings: ntpd's `restrict` lines and `discard` options.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ServerConfig {
    /// `restrict ADDRESS mask MASK FLAGS` rules; the most specific match wins.
    pub restrict: Vec<RestrictRule>,
    /// `restrict default FLAGS`: for clients no rule matches.
    pub default_flags: RestrictFlags,
    /// `discard average A minimum M`, and the rate table's size.
    pub rate: RateLimit,
}

impl Default for ServerConfig {
    /// No rules and `restrict default kod limited noquery`: the default that NTPsec and the
    /// Debian ntp package ship, so a fresh server is not an open target for floods. (ntpd's
    /// built-in default, with no `restrict` line, is no restriction at all.)
    fn default() -> Self {
        ServerConfig {
            restrict: Vec::new(),
            default_flags: RestrictFlags::KOD | RestrictFlags::LIMITED | RestrictFlags::NOQUERY,
            rate: RateLimit::default(),
        }
    }
}

/// What the server tells clients about itself: RFC 5905's system variables.
#[derive(Clone, Copy, PartialEq, Debug)]
pub struct SystemState {
    /// Leap indicator; [`LeapIndicator::Unsynchronized`] while we have no time to give.
    pub leap: LeapIndicator,
    /// Our stratum: 1 with a reference clock, upstream + 1 otherwise, 16 unsynchronized.
    pub stratum: u8,
    /// Precision of our clock, log2 seconds.
    pub precision: i8,
    /// Round-trip delay to the primary reference, seconds.
    pub root_delay: f64,
    /// Dispersion to the primary reference, seconds.
    pub root_dispersion: f64,
    /// Our reference: the upstream server's address (or hash), a refclock name, or a kiss code.
    pub reference_id: ReferenceId,
    /// When our clock was last set.
    pub reference_time: NtpTimestamp,
}

impl SystemState {
    /// The state before the first clock update: leap 3, stratum 16, reference ID `INIT` (the
    /// RFC 5905 §7.4 code for "not yet synchronized"), zero times. Clients will not use it.
    pub const fn unsynchronized(precision: i8) -> Self {
        SystemState {
            leap: LeapIndicator::Unsynchronized,
            stratum: MAX_STRATUM,
            precision,
            root_delay: 0.0,
            root_dispersion: 0.0,
            reference_id: ReferenceId::from_bytes(*b"INIT"),
            reference_time: NtpTimestamp::ZERO,
        }
    }
}

/// What to do with a request.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ServerAction {
    /// Drop it; the reason has been counted.
    Ignore(IgnoreReason),
    /// Send the first `len` bytes of the output buffer back to the source, after
    /// [`finish_reply`].
    Reply {
        /// Bytes of the reply; never more than the request.
        len: usize,
        /// What the reply is.
        kind: ReplyKind,
    },
}

/// The kind of reply written.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ReplyKind {
    /// A time reply: 48 bytes.
    Normal,
    /// A time reply followed by a crypto-NAK (52 bytes), for a request whose MAC we cannot
    /// verify. Clients that sent a MAC will not use the time.
    CryptoNak,
    /// A time reply signed with the key the request was signed with (68 or 72 bytes); the MAC
    /// is written by [`Responder::finish_reply`].
    Authenticated,
    /// A kiss-o'-death: [`KissCode::Rate`] for a rate-limited client, [`KissCode::Deny`] for
    /// one refused by `noserve kod`. 48 bytes, carrying no time of ours.
    Kod(KissCode),
    /// A mode 6 (ntpq) answer's first datagram, written by the node
    /// ([`crate::node::Node::respond`]); the rest of the answer, if any, comes from
    /// [`crate::node::Node::poll_control_reply`]. [`finish_reply`] leaves it alone.
    Control,
}

/// Why a request was dropped. Each has a stable [`counter name`](IgnoreReason::counter_name).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum IgnoreReason {
    /// The client matched a `restrict ... ignore` rule.
    RestrictIgnore,
    /// The client matched `noserve` without `kod`.
    RestrictNoServe,
    /// The client is `limited` and over the rate limit, without `kod`.
    RateLimited,
    /// A kiss-o'-death (`RATE` or `DENY`) was due, but the client already got one in the
    /// current `2^average` interval.
    KodLimited,
    /// Mode 6, an ntpq query: served by rntpd's own control protocol, not here.
    ModeControl,
    /// Mode 7, an ntpdc query: never served.
    ModePrivate,
    /// Mode 1 or 2: rntpd has no symmetric associations.
    ModeSymmetric,
    /// Mode 4: a server reply is nothing to answer.
    ModeServer,
    /// Mode 5: rntpd is not a broadcast client.
    ModeBroadcast,
    /// Mode 0 in a packet of version 2 or later, where it is reserved.
    ModeReserved,
    /// From source port 0: no reply can be addressed to it (the driver drops it unread).
    SourcePortZero,
    /// Longer than the driver's receive buffer (a request is never that long).
    TooLong,
    /// The reply (or kiss) was built but the driver could not send it.
    SendFailed,
    /// The packet did not parse, or (`BufferTooSmall`) the output buffer was under 48 bytes.
    Malformed(WireError),
    /// `restrict ... notrust`: the request had no valid MAC of a trusted key.
    NotTrusted,
}

impl IgnoreReason {
    /// Labels of the reasons other than [`IgnoreReason::Malformed`], in index order.
    const FIXED_NAMES: [&'static str; 14] = [
        "restrict_ignore",
        "restrict_noserve",
        "rate_limited",
        "kod_limited",
        "mode_control",
        "mode_private",
        "mode_symmetric",
        "mode_server",
        "mode_broadcast",
        "mode_reserved",
        "source_port_zero",
        "too_long",
        "send_failed",
        "notrust",
    ];

    /// A stable snake_case label for drop counters and logs; for a malformed packet, the
    /// [`WireError::counter_name`] of the error.
    pub fn counter_name(&self) -> &'static str {
        match (self, self.fixed_index()) {
            (IgnoreReason::Malformed(e), _) => e.counter_name(),
            (_, Some(i)) => Self::FIXED_NAMES.get(i).copied().unwrap_or("malformed_other"),
            (_, None) => "malformed_other",
        }
    }

    /// Index into the counter array for reasons other than `Malformed`.
    const fn fixed_index(&self) -> Option<usize> {
        Some(match self {
            IgnoreReason::RestrictIgnore => 0,
            IgnoreReason::RestrictNoServe => 1,
            IgnoreReason::RateLimited => 2,
            IgnoreReason::KodLimited => 3,
            IgnoreReason::ModeControl => 4,
            IgnoreReason::ModePrivate => 5,
            IgnoreReason::ModeSymmetric => 6,
            IgnoreReason::ModeServer => 7,
            IgnoreReason::ModeBroadcast => 8,
            IgnoreReason::ModeReserved => 9,
            IgnoreReason::SourcePortZero => 10,
            IgnoreReason::TooLong => 11,
            IgnoreReason::SendFailed => 12,
            IgnoreReason::NotTrusted => 13,
            IgnoreReason::Malformed(_) => return None,
        })
    }

    /// Index into the counter array.
    fn index(&self) -> usize {
        match (self.fixed_index(), self) {
            (Some(i), _) => i,
            (None, IgnoreReason::Malformed(e)) => {
                let name = e.counter_name();
                let pos = WireError::COUNTER_NAMES.iter().position(|n| *n == name);
                // `COUNTER_NAMES` lists every variant (wire's tests check); the fallback slot
                // keeps a future omission from panicking or vanishing.
                IgnoreReason::FIXED_NAMES.len() + pos.unwrap_or(WireError::COUNTER_NAMES.len())
            }
            (None, _) => DROPPED_LEN - 1,
        }
    }
}

/// Counter slots: the fixed reasons, every wire error, and a fallback.
const DROPPED_LEN: usize = IgnoreReason::FIXED_NAMES.len() + WireError::COUNTER_NAMES.len() + 1;

/// What the responder has done since it was created. Every request lands in exactly one of
/// `replies`, `kod_rate`, `kod_deny` or a drop counter, so they sum to `requests`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ServerCounters {
    /// Datagrams passed to [`Responder::respond`].
    pub requests: u64,
    /// Time replies sent (including those with a crypto-NAK).
    pub replies: u64,
    /// Of `replies`, those with a crypto-NAK.
    pub crypto_naks: u64,
    /// `RATE` kisses sent.
    pub kod_rate: u64,
    /// `DENY` kisses sent.
    pub kod_deny: u64,
    /// Of `replies`, those signed for an authenticated request.
    pub authenticated: u64,
    /// Drops, indexed by [`IgnoreReason::index`].
    dropped: [u64; DROPPED_LEN],
    /// Requests whose MAC did not authenticate, by [`AuthError::COUNTER_NAMES`] index.
    auth_failed: [u64; AuthError::COUNTER_NAMES.len()],
}

impl Default for ServerCounters {
    fn default() -> Self {
        ServerCounters {
            requests: 0,
            replies: 0,
            crypto_naks: 0,
            kod_rate: 0,
            kod_deny: 0,
            authenticated: 0,
            dropped: [0; DROPPED_LEN],
            auth_failed: [0; AuthError::COUNTER_NAMES.len()],
        }
    }
}

impl ServerCounters {
    /// Every drop counter with its label, zeros included, in a fixed order: the daemon can
    /// register them all up front.
    pub fn dropped(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        IgnoreReason::FIXED_NAMES
            .iter()
            .chain(WireError::COUNTER_NAMES)
            .chain(core::iter::once(&"malformed_other"))
            .copied()
            .zip(self.dropped.iter().copied())
    }

    /// Drops for one reason (for a malformed packet: for its kind of [`WireError`]).
    pub fn dropped_for(&self, reason: IgnoreReason) -> u64 {
        self.dropped.get(reason.index()).copied().unwrap_or(0)
    }

    /// Requests whose MAC did not authenticate, by reason (`auth_unknown_key`,
    /// `auth_bad_mac`, ...), zeros included, in [`AuthError::COUNTER_NAMES`] order. Each was
    /// also answered with a crypto-NAK or dropped, and counted there.
    pub fn auth_failures(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        AuthError::COUNTER_NAMES.iter().copied().zip(self.auth_failed.iter().copied())
    }

    fn auth_failed(&mut self, error: AuthError) {
        let name = error.counter_name();
        if let Some(i) = AuthError::COUNTER_NAMES.iter().position(|n| *n == name) {
            self.auth_failed[i] = self.auth_failed[i].saturating_add(1);
        }
    }

    /// All drops.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().fold(0, |sum, n| sum.saturating_add(*n))
    }

    /// Counts one outcome.
    fn record(&mut self, action: &ServerAction) {
        let counter = match action {
            ServerAction::Ignore(reason) => match self.dropped.get_mut(reason.index()) {
                Some(slot) => slot,
                None => return,
            },
            ServerAction::Reply { kind: ReplyKind::Normal, .. } => &mut self.replies,
            ServerAction::Reply { kind: ReplyKind::Authenticated, .. } => {
                self.authenticated = self.authenticated.saturating_add(1);
                &mut self.replies
            }
            ServerAction::Reply { kind: ReplyKind::CryptoNak, .. } => {
                self.crypto_naks = self.crypto_naks.saturating_add(1);
                &mut self.replies
            }
            ServerAction::Reply { kind: ReplyKind::Kod(KissCode::Rate), .. } => &mut self.kod_rate,
            ServerAction::Reply { kind: ReplyKind::Kod(_), .. } => &mut self.kod_deny,
            // The node counts mode 6 answers itself; the responder never builds them.
            ServerAction::Reply { kind: ReplyKind::Control, .. } => return,
        };
        *counter = counter.saturating_add(1);
    }
}

/// What [`Responder::check_query`] decided about a mode 6 query. Each has a stable
/// [`counter name`](QueryVerdict::counter_name).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum QueryVerdict {
    /// Answer it (within the mode 6 reply budget).
    Allowed,
    /// `restrict ... ignore`: dropped.
    RestrictIgnore,
    /// `noquery` (rntpd's default for every client but loopback): dropped.
    NoQuery,
    /// `limited` and over the query rate limit: dropped (no kiss-o'-death in mode 6).
    RateLimited,
}

impl QueryVerdict {
    /// Whether the query is answered.
    pub const fn is_allowed(self) -> bool {
        matches!(self, QueryVerdict::Allowed)
    }

    /// A stable snake_case label for counters.
    pub const fn counter_name(self) -> &'static str {
        match self {
            QueryVerdict::Allowed => "allowed",
            QueryVerdict::RestrictIgnore => "restrict_ignore",
            QueryVerdict::NoQuery => "noquery",
            QueryVerdict::RateLimited => "rate_limited",
        }
    }
}

/// The server-mode responder: the restrict list, the rate-limit table and the counters.
#[derive(Clone, Debug)]
pub struct Responder {
    /// The configuration as given, for [`Responder::config`].
    config: ServerConfig,
    /// The restrict list in lookup order.
    restrict: RestrictList,
    /// Per-client rate state.
    table: ClientTable,
    /// Per-client rate state of mode 6 queries: a table of its own, so that a monitoring
    /// client's queries never use up its time requests' allowance, nor the other way round.
    query_table: ClientTable,
    /// The hash seed, to rebuild the table if its size changes.
    seed: u64,
    /// Counters.
    counters: ServerCounters,
    /// The symmetric keys (trusted ones authenticate).
    keys: KeyStore,
    /// Counters of the manycast server path.
    manycast: ManycastServerCounters,
}

/// Counters of [`Responder::respond_manycast`] since start.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ManycastServerCounters {
    /// Solicitations received on group sockets.
    pub requests: u64,
    /// Answered (signed, by unicast).
    pub replies: u64,
    /// Not answered, by reason (`unauthenticated`, `auth_bad_mac`, `unsynchronized`,
    /// `stratum`, `rate_limited`, ...).
    pub dropped: std::collections::BTreeMap<&'static str, u64>,
}

impl Responder {
    /// A responder for `config`. `hash_seed` keys the rate table's hash; the daemon must take
    /// it from the OS RNG, or an attacker who knows it can aim spoofed sources at one client's
    /// slots and reset its rate state.
    pub fn new(config: ServerConfig, hash_seed: u64) -> Self {
        Responder {
            restrict: RestrictList::new(&config.restrict, config.default_flags),
            table: ClientTable::new(&config.rate, hash_seed),
            query_table: ClientTable::new(&query_rate(&config.rate), hash_seed ^ QUERY_SEED),
            config,
            seed: hash_seed,
            counters: ServerCounters::default(),
            keys: KeyStore::new(),
            manycast: ManycastServerCounters::default(),
        }
    }

    /// Replaces the key store (at start and on reload).
    pub fn set_keys(&mut self, keys: KeyStore) {
        self.keys = keys;
    }

    /// The key store.
    pub fn keys(&self) -> &KeyStore {
        &self.keys
    }

    /// The manycast server counters.
    pub fn manycast_counters(&self) -> &ManycastServerCounters {
        &self.manycast
    }

    /// Step two of the transmit protocol for replies of this responder: [`finish_reply`], then,
    /// for an [`ReplyKind::Authenticated`] reply, the MAC over the finished header with the key
    /// whose id `respond` left in place. A reply whose key is gone (replaced between the two
    /// steps) is left with a zero digest, which the client rejects.
    pub fn finish_reply(&self, out: &mut [u8], transmit: NtpTimestamp) {
        finish_reply(out, transmit);
        if out.len() <= CRYPTO_NAK_REPLY_LEN
            || out.get(STRATUM_OFFSET) == Some(&0x00)
            || out.first().map(|b| Mode::from_bits(*b)) != Some(Mode::Server)
        {
            return;
        }
        let Some(id) = out.get(NtpHeader::LEN..NtpHeader::LEN + KEY_ID_LEN) else { return };
        let id = KeyId(u32::from_be_bytes([id[0], id[1], id[2], id[3]]));
        let Ok(key) = self.keys.trusted_key(id) else { return };
        if out.len() == NtpHeader::LEN + key.mac_wire_len() {
            let _ = key.write_mac(out, NtpHeader::LEN);
        }
    }

    /// Replaces the configuration (on reload). Rate state and counters are kept, unless the
    /// table size changes, which starts an empty table.
    pub fn set_config(&mut self, config: ServerConfig) {
        self.restrict = RestrictList::new(&config.restrict, config.default_flags);
        if config.rate.effective_table_size() != self.config.rate.effective_table_size() {
            self.table = ClientTable::new(&config.rate, self.seed);
            self.query_table = ClientTable::new(&query_rate(&config.rate), self.seed ^ QUERY_SEED);
        }
        self.config = config;
    }

    /// The current configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// The counters.
    pub fn counters(&self) -> &ServerCounters {
        &self.counters
    }

    /// A request the driver dropped before [`Responder::respond`] could see it
    /// ([`IgnoreReason::SourcePortZero`], [`IgnoreReason::TooLong`]): counted as a request and
    /// a drop, so the counters still add up.
    pub fn count_unread(&mut self, reason: IgnoreReason) {
        self.counters.requests = self.counters.requests.saturating_add(1);
        self.counters.record(&ServerAction::Ignore(reason));
    }

    /// A reply of `kind` that [`Responder::respond`] counted was not sent after all: it moves
    /// from the replies (or kisses) to [`IgnoreReason::SendFailed`].
    pub fn count_send_failed(&mut self, kind: ReplyKind) {
        let c = &mut self.counters;
        let counter = match kind {
            ReplyKind::Normal => &mut c.replies,
            ReplyKind::CryptoNak => {
                c.crypto_naks = c.crypto_naks.saturating_sub(1);
                &mut c.replies
            }
            ReplyKind::Authenticated => {
                c.authenticated = c.authenticated.saturating_sub(1);
                &mut c.replies
            }
            ReplyKind::Kod(KissCode::Rate) => &mut c.kod_rate,
            ReplyKind::Kod(_) => &mut c.kod_deny,
            ReplyKind::Control => return,
        };
        *counter = counter.saturating_sub(1);
        c.record(&ServerAction::Ignore(IgnoreReason::SendFailed));
    }

    /// The restrict flags that apply to `client`.
    pub fn restrictions(&self, client: IpAddr) -> RestrictFlags {
        self.restrict.lookup(&Key::new(client))
    }

    /// Slots in the rate table: fixed from construction (or the last size change), whatever
    /// arrives.
    pub fn rate_table_capacity(&self) -> usize {
        self.table.capacity()
    }

    /// Clients currently in the rate table. Scans the table; for statistics only.
    pub fn rate_table_len(&self) -> usize {
        self.table.len()
    }

    /// Whether a mode 6 query from `src` may be answered (the first two steps of the mode 6
    /// path, before [`crate::mode6::Mode6Responder::respond`]):
    ///
    /// 1. `restrict`: `ignore` or `noquery` drop it. **Loopback clients** (127.0.0.0/8, ::1,
    ///    IPv4-mapped loopback) matched by no rule of their own (only `restrict default` or a
    ///    `-4`/`-6 default` applies) may query: the default answers local `ntpq` and
    ///    `check_ntp_peer` and refuses everyone else (`noquery` is in the default flags). To
    ///    refuse local queries too, write `restrict 127.0.0.1 noquery` and `restrict ::1
    ///    noquery`.
    /// 2. `limited` (never for loopback by default, as above): a per-client limit of its own
    ///    table, with `discard average` and no minimum spacing, since one `ntpq -p` sends a
    ///    request per association back to back. About nine queries in a burst, then one per
    ///    `2^average - 2` seconds. Over the limit: dropped, without a kiss-o'-death.
    pub fn check_query(&mut self, now: Instant, src: IpAddr) -> QueryVerdict {
        let key = Key::new(src);
        let flags = match self.restrict.lookup_specific(&key) {
            Some(flags) => flags,
            None if is_loopback(src) => self
                .restrict
                .lookup(&key)
                .difference(RestrictFlags::NOQUERY.union(RestrictFlags::LIMITED)),
            None => self.restrict.lookup(&key),
        };
        if flags.contains(RestrictFlags::IGNORE) {
            return QueryVerdict::RestrictIgnore;
        }
        if flags.contains(RestrictFlags::NOQUERY) {
            return QueryVerdict::NoQuery;
        }
        if flags.contains(RestrictFlags::LIMITED) {
            let limit = query_rate(&self.config.rate);
            if self.query_table.check(now, key, &limit) != Verdict::Pass {
                return QueryVerdict::RateLimited;
            }
        }
        QueryVerdict::Allowed
    }

    /// Clients in the mode 6 query rate table (a scan; for statistics only).
    pub fn query_table_len(&self) -> usize {
        self.query_table.len()
    }

    /// Decides what to do with one request (see the module doc for the order of checks).
    ///
    /// `now` is the monotonic time, for the rate limiter; `rx` the wall-clock receive
    /// timestamp (from the kernel if possible); `src` the client's address; `sys` the current
    /// system state. A reply is written to the start of `out`, which needs 48 bytes (52 for a
    /// crypto-NAK; with less the request is dropped as `BufferTooSmall`); its transmit
    /// timestamp is zero until [`finish_reply`]. Never panics, never allocates, and never
    /// returns a `len` above `request.len()`.
    pub fn respond(
        &mut self,
        now: Instant,
        rx: NtpTimestamp,
        src: IpAddr,
        request: &[u8],
        sys: &SystemState,
        out: &mut [u8],
    ) -> ServerAction {
        self.respond_flagged(now, rx, src, request, sys, out).0
    }

    /// [`respond`](Self::respond), also returning the `restrict` flags that applied to `src`
    /// (for the MRU list), from the same lookup.
    pub fn respond_flagged(
        &mut self,
        now: Instant,
        rx: NtpTimestamp,
        src: IpAddr,
        request: &[u8],
        sys: &SystemState,
        out: &mut [u8],
    ) -> (ServerAction, RestrictFlags) {
        self.counters.requests = self.counters.requests.saturating_add(1);
        let client = Key::new(src);
        let flags = self.restrict.lookup(&client);
        let action = self.decide(now, rx, client, flags, request, sys, out);
        self.counters.record(&action);
        (action, flags)
    }

    /// Answers a solicitation that arrived on a `manycastserver` group socket: the reply is
    /// written to the start of `out` (which needs [`MAX_REPLY_LEN`] octets), to be finished with
    /// [`Self::finish_reply`] and sent by unicast, from this host's own address, to `src`.
    /// Returns its length, or `None` to stay silent.
    ///
    /// As ntpd's manycast server, with one deliberate difference: only authenticated
    /// solicitations are answered. In order, each failure a silent drop counted by reason in
    /// [`ManycastServerCounters`]: `restrict` (`ignore`, `noserve`: `restricted`); a
    /// well-formed client request (the [`WireError`] name, `not_client`); a MAC of a trusted key
    /// that verifies (`unauthenticated`, or the [`AuthError`] name: no crypto-NAK to a group);
    /// this node has time to give (`unsynchronized`: leap 3 or stratum 16); its stratum is
    /// below the client's (`stratum`: ntpd's test, so two manycast servers never pick each
    /// other); and the rate limit for `limited` clients (`rate_limited`, without kiss). The
    /// reply is signed with the request's key.
    pub fn respond_manycast(
        &mut self,
        now: Instant,
        rx: NtpTimestamp,
        src: IpAddr,
        request: &[u8],
        sys: &SystemState,
        out: &mut [u8],
    ) -> Option<usize> {
        self.manycast.requests = self.manycast.requests.saturating_add(1);
        match self.decide_manycast(now, rx, src, request, sys, out) {
            Ok(len) => {
                self.manycast.replies = self.manycast.replies.saturating_add(1);
                Some(len)
            }
            Err(reason) => {
                *self.manycast.dropped.entry(reason).or_default() += 1;
                None
            }
        }
    }

    fn decide_manycast(
        &mut self,
        now: Instant,
        rx: NtpTimestamp,
        src: IpAddr,
        request: &[u8],
        sys: &SystemState,
        out: &mut [u8],
    ) -> Result<usize, &'static str> {
        let client = Key::new(src);
        let flags = self.restrict.lookup(&client);
        if flags.contains(RestrictFlags::IGNORE) || flags.contains(RestrictFlags::NOSERVE) {
            return Err("restricted");
        }
        let header = NtpHeader::parse(request).map_err(|e| e.counter_name())?;
        if header.mode != Mode::Client {
            return Err("not_client");
        }
        let id = match self.keys.check_request(request) {
            RequestAuth::Authenticated(id) => id,
            RequestAuth::Unauthenticated => return Err("unauthenticated"),
            RequestAuth::Failed(e) => return Err(e.counter_name()),
        };
        if sys.leap == LeapIndicator::Unsynchronized || !(1..MAX_STRATUM).contains(&sys.stratum) {
            return Err("unsynchronized");
        }
        // The client's stratum: 0 (unsynchronized) counts as 16.
        let theirs = if header.stratum == 0 { MAX_STRATUM } else { header.stratum };
        if sys.stratum >= theirs {
            return Err("stratum");
        }
        if flags.contains(RestrictFlags::LIMITED)
            && self.table.check(now, client, &self.config.rate) != Verdict::Pass
        {
            return Err("rate_limited");
        }
        let needed = NtpHeader::LEN + self.keys.get(id).map_or(0, |k| k.mac_wire_len());
        if out.len() < needed {
            return Err("buffer_too_small");
        }
        match self.reply(header, RequestAuth::Authenticated(id), Some(id), rx, sys, needed, out) {
            ServerAction::Reply { len, kind: ReplyKind::Authenticated } => Ok(len),
            _ => Err("emit_failed"),
        }
    }

    /// [`respond`](Self::respond) without the counting, for `client` with `flags`.
    #[allow(clippy::too_many_arguments)] // One private step of `respond_flagged`.
    fn decide(
        &mut self,
        now: Instant,
        rx: NtpTimestamp,
        client: Key,
        flags: RestrictFlags,
        request: &[u8],
        sys: &SystemState,
        out: &mut [u8],
    ) -> ServerAction {
        use ServerAction::Ignore;
        if flags.contains(RestrictFlags::IGNORE) {
            return Ignore(IgnoreReason::RestrictIgnore);
        }
        // Queries are told by the mode bits alone: their layout differs after byte 0.
        match request.first().map(|b| Mode::from_bits(*b)) {
            Some(Mode::Control) => return Ignore(IgnoreReason::ModeControl),
            Some(Mode::Private) => return Ignore(IgnoreReason::ModePrivate),
            _ => {}
        }
        let request_header = match NtpHeader::parse(request) {
            Ok(header) => header,
            Err(e) => return Ignore(IgnoreReason::Malformed(e)),
        };
        let payload = request.get(NtpHeader::LEN..).unwrap_or_default();
        let mac = match check_trailer(payload, request_header.version >= EXTENSIONS_VERSION) {
            Ok(mac) => mac,
            Err(e) => return Ignore(IgnoreReason::Malformed(e)),
        };
        match request_header.mode {
            Mode::Client => {}
            Mode::Reserved if request_header.version == NTP_V1 => {}
            Mode::Reserved => return Ignore(IgnoreReason::ModeReserved),
            Mode::SymmetricActive | Mode::SymmetricPassive => {
                return Ignore(IgnoreReason::ModeSymmetric)
            }
            Mode::Server => return Ignore(IgnoreReason::ModeServer),
            Mode::Broadcast => return Ignore(IgnoreReason::ModeBroadcast),
            Mode::Control => return Ignore(IgnoreReason::ModeControl),
            Mode::Private => return Ignore(IgnoreReason::ModePrivate),
        }
        let auth = match mac {
            TrailerMac::None => RequestAuth::Unauthenticated,
            TrailerMac::CryptoNak => RequestAuth::Failed(AuthError::CryptoNak),
            TrailerMac::Digest => self.keys.check_request(request),
        };
        // The key and the MAC length of an authenticated reply.
        let signing = match auth {
            RequestAuth::Authenticated(id) => self.keys.get(id).map(|k| (id, k.mac_wire_len())),
            _ => None,
        };
        let needed = match (signing, mac) {
            (Some((_, mac_len)), _) => NtpHeader::LEN + mac_len,
            (None, TrailerMac::Digest) => CRYPTO_NAK_REPLY_LEN,
            (None, _) => NtpHeader::LEN,
        };
        if out.len() < needed {
            return Ignore(IgnoreReason::Malformed(WireError::BufferTooSmall {
                needed,
                got: out.len(),
            }));
        }
        if let RequestAuth::Failed(e) = auth {
            if e != AuthError::CryptoNak {
                self.counters.auth_failed(e);
            }
        }
        let signing = signing.map(|(id, _)| id);
        let kod = flags.contains(RestrictFlags::KOD);
        if flags.contains(RestrictFlags::NOSERVE) {
            if !kod {
                return Ignore(IgnoreReason::RestrictNoServe);
            }
            return match self.table.check(now, client, &self.config.rate) {
                Verdict::Pass | Verdict::OverFirst => {
                    self.kiss(&request_header, KissCode::Deny, signing, out)
                }
                Verdict::Over => Ignore(IgnoreReason::KodLimited),
            };
        }
        if flags.contains(RestrictFlags::LIMITED) {
            match (self.table.check(now, client, &self.config.rate), kod) {
                (Verdict::Pass, _) => {}
                (Verdict::OverFirst, true) => {
                    return self.kiss(&request_header, KissCode::Rate, signing, out)
                }
                (Verdict::Over, true) => return Ignore(IgnoreReason::KodLimited),
                (Verdict::OverFirst | Verdict::Over, false) => {
                    return Ignore(IgnoreReason::RateLimited)
                }
            }
        }
        if flags.contains(RestrictFlags::NOTRUST)
            && matches!(
                auth,
                RequestAuth::Unauthenticated | RequestAuth::Failed(AuthError::CryptoNak)
            )
        {
            return Ignore(IgnoreReason::NotTrusted);
        }
        self.reply(request_header, auth, signing, rx, sys, needed, out)
    }

    /// Writes the time reply to `request` (see the module docs): plain, with a crypto-NAK, or
    /// with the key id of an authenticated reply (its MAC follows in [`Self::finish_reply`]).
    #[allow(clippy::too_many_arguments)] // One private step of `decide`, called twice.
    fn reply(
        &self,
        request_header: NtpHeader,
        auth: RequestAuth,
        signing: Option<KeyId>,
        rx: NtpTimestamp,
        sys: &SystemState,
        needed: usize,
        out: &mut [u8],
    ) -> ServerAction {
        use ServerAction::Ignore;
        let reply = NtpHeader {
            leap: sys.leap,
            version: request_header.version,
            mode: Mode::Server,
            stratum: if (0x01..=MAX_STRATUM).contains(&sys.stratum) {
                sys.stratum
            } else {
                MAX_STRATUM
            },
            poll: request_header.poll,
            precision: sys.precision,
            root_delay: NtpShort::from_secs_f64(sys.root_delay),
            // RFC 5905 §7.3: the root dispersion grows at PHI since the clock was last set, so
            // a server that lost its sources does not keep advertising a fresh error bound.
            root_dispersion: NtpShort::from_secs_f64(
                sys.root_dispersion
                    + if sys.reference_time.is_zero() {
                        0.0
                    } else {
                        crate::assoc::filter::PHI * (rx - sys.reference_time).to_secs_f64().max(0.0)
                    },
            ),
            reference_id: sys.reference_id,
            reference_ts: sys.reference_time,
            origin_ts: request_header.transmit_ts,
            receive_ts: rx,
            transmit_ts: NtpTimestamp::ZERO,
        };
        if reply.emit(out).is_err() {
            // Unreachable: the length was checked above.
            return Ignore(IgnoreReason::Malformed(WireError::BufferTooSmall {
                needed,
                got: out.len(),
            }));
        }
        match (auth, signing) {
            (RequestAuth::Authenticated(_), Some(id)) => {
                // The key id now, the digest in finish_reply (it covers the transmit time).
                let Some(trailer) = out.get_mut(NtpHeader::LEN..needed) else {
                    return ServerAction::Reply { len: NtpHeader::LEN, kind: ReplyKind::Normal };
                };
                trailer.fill(0x00);
                trailer[..KEY_ID_LEN].copy_from_slice(&id.0.to_be_bytes());
                ServerAction::Reply { len: needed, kind: ReplyKind::Authenticated }
            }
            (RequestAuth::Failed(e), _) if e != AuthError::CryptoNak => {
                match out.get_mut(NtpHeader::LEN..CRYPTO_NAK_REPLY_LEN) {
                    Some(key_id) => key_id.fill(0x00),
                    None => {
                        return ServerAction::Reply { len: NtpHeader::LEN, kind: ReplyKind::Normal }
                    }
                }
                ServerAction::Reply { len: CRYPTO_NAK_REPLY_LEN, kind: ReplyKind::CryptoNak }
            }
            _ => ServerAction::Reply { len: NtpHeader::LEN, kind: ReplyKind::Normal },
        }
    }

    /// Writes a kiss-o'-death for `request` (format in the module doc), signed with `signing`
    /// for an authenticated request (its timestamps are final, so the MAC is written now).
    fn kiss(
        &self,
        request: &NtpHeader,
        code: KissCode,
        signing: Option<KeyId>,
        out: &mut [u8],
    ) -> ServerAction {
        let average = self.config.rate.average_log2.min(ratelimit::MAX_AVERAGE_LOG2);
        let reply = NtpHeader {
            leap: LeapIndicator::Unsynchronized,
            version: request.version,
            mode: Mode::Server,
            stratum: 0x00,
            // Tells the client the interval it should back off to (ntpd does the same).
            poll: request.poll.max(i8::try_from(average).unwrap_or(i8::MAX)),
            precision: request.precision,
            root_delay: request.root_delay,
            root_dispersion: request.root_dispersion,
            reference_id: code.to_reference_id(),
            reference_ts: request.reference_ts,
            origin_ts: request.transmit_ts,
            receive_ts: request.transmit_ts,
            transmit_ts: request.transmit_ts,
        };
        if let Err(e) = reply.emit(out) {
            return ServerAction::Ignore(IgnoreReason::Malformed(e));
        }
        let key = signing.and_then(|id| self.keys.trusted_key(id).ok());
        let len = match key.map(|k| k.write_mac(out, NtpHeader::LEN)) {
            Some(Ok(len)) => len,
            _ => NtpHeader::LEN,
        };
        ServerAction::Reply { len, kind: ReplyKind::Kod(code) }
    }
}

/// Mixed into the hash seed of the query table, so its sets differ from the time table's.
const QUERY_SEED: u64 = 0x6D6F_6465_3620_7162;

/// The query rate limit: `discard average` without the minimum spacing (see
/// [`Responder::check_query`]).
fn query_rate(rate: &RateLimit) -> RateLimit {
    RateLimit { minimum_secs: 0, ..*rate }
}

/// Loopback, including IPv4-mapped loopback.
fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

/// Step two of the transmit protocol: writes `transmit` (the wall clock sampled immediately
/// before sending) into bytes 40..48 of a reply that [`Responder::respond`] wrote, and touches
/// nothing else.
///
/// A kiss-o'-death (stratum 0, which `respond` never uses for a time reply) is left as it is:
/// its transmit timestamp is the request's, so that it reveals nothing of our clock. A buffer
/// shorter than 48 bytes, and anything that is not a mode 4 packet (a mode 6 answer), is left
/// alone.
pub fn finish_reply(out: &mut [u8], transmit: NtpTimestamp) {
    if out.len() < NtpHeader::LEN
        || out.get(STRATUM_OFFSET) == Some(&0x00)
        || out.first().map(|b| Mode::from_bits(*b)) != Some(Mode::Server)
    {
        return;
    }
    if let Some(field) = out.get_mut(TRANSMIT_RANGE) {
        field.copy_from_slice(&transmit.to_bits().to_be_bytes());
    }
}

/// What kind of MAC ends a request.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum TrailerMac {
    /// None.
    None,
    /// A bare zero key id.
    CryptoNak,
    /// A key id with an MD5 or SHA-1 digest.
    Digest,
}

/// Checks the bytes after the header with the one trailer walk ([`walk_trailer`]), the same
/// rules and errors as [`crate::wire::PacketRepr::parse`], without allocating.
fn check_trailer(payload: &[u8], allow_extensions: bool) -> Result<TrailerMac, WireError> {
    let layout = walk_trailer(payload, NtpHeader::LEN, allow_extensions, |_| {})?;
    Ok(match layout.mac {
        None => TrailerMac::None,
        Some(mac) if mac.is_crypto_nak() => TrailerMac::CryptoNak,
        Some(_) => TrailerMac::Digest,
    })
}

#[cfg(test)]
mod tests {
    use core::net::{Ipv4Addr, Ipv6Addr};

    use proptest::prelude::*;

    use super::*;
    use crate::rng::{RngSource, SplitMix64};
    use crate::wire::PacketRepr;

    const SEED: u64 = 0x0123_4567_89AB_CDEF;
    /// The client's transmit timestamp (its nonce).
    const XMT: u64 = 0xE9A1_B2C3_1234_5678;
    /// Our receive timestamp.
    const RX: NtpTimestamp = NtpTimestamp::from_bits(0xE9A1_B2C3_2000_0000);
    /// The request's poll, log2 s.
    const POLL: i8 = 0x06;

    fn sys() -> SystemState {
        SystemState {
            leap: LeapIndicator::AddSecond,
            stratum: 0x02,
            precision: -23,
            root_delay: 0.015_625,
            root_dispersion: 0.031_25,
            reference_id: ReferenceId::from_ipv4(Ipv4Addr::new(192, 0, 2, 7)),
            reference_time: NtpTimestamp::from_bits(0xE9A1_B2C0_8000_0000),
        }
    }

    /// A 48-byte request with distinctive values in every field.
    fn request(version: u8, mode: u8) -> Vec<u8> {
        let mut b = vec![0u8; 48];
        b[0] = (version << 3) | mode;
        b[1] = 0x03;
        b[2] = POLL as u8;
        b[3] = 0xEC; // precision -20
        b[4..8].copy_from_slice(&0x0000_1111u32.to_be_bytes());
        b[8..12].copy_from_slice(&0x0000_2222u32.to_be_bytes());
        b[12..16].copy_from_slice(b"ABCD");
        b[16..24].copy_from_slice(&0xE9A1_0000_0000_0001u64.to_be_bytes());
        b[24..32].copy_from_slice(&0x1111_1111_1111_1111u64.to_be_bytes());
        b[32..40].copy_from_slice(&0x2222_2222_2222_2222u64.to_be_bytes());
        b[40..48].copy_from_slice(&XMT.to_be_bytes());
        b
    }

    fn config(default_flags: RestrictFlags, restrict: Vec<RestrictRule>) -> ServerConfig {
        ServerConfig { restrict, default_flags, rate: RateLimit::default() }
    }

    fn open() -> Responder {
        Responder::new(config(RestrictFlags::NONE, Vec::new()), SEED)
    }

    fn at(secs: f64) -> Instant {
        Instant::from_nanos((secs * 1e9) as u64)
    }

    fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(a, b, c, d))
    }

    fn v6(s: &str) -> IpAddr {
        s.parse::<Ipv6Addr>().map(IpAddr::V6).unwrap_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED))
    }

    const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 9));

    /// Sends `req` at `t` seconds; returns the action and the reply bytes.
    fn ask(r: &mut Responder, t: f64, src: IpAddr, req: &[u8]) -> (ServerAction, Vec<u8>) {
        let mut out = [0u8; 0x200];
        let action = r.respond(at(t), RX, src, req, &sys(), &mut out);
        let len = match action {
            ServerAction::Reply { len, .. } => len,
            ServerAction::Ignore(_) => 0,
        };
        (action, out[..len].to_vec())
    }

    fn header(bytes: &[u8]) -> NtpHeader {
        let parsed = NtpHeader::parse(bytes);
        assert!(parsed.is_ok(), "{parsed:?}");
        parsed
            .unwrap_or_else(|_| NtpHeader::from_packet(&crate::wire::Packet::new_unchecked(bytes)))
    }

    fn assert_invariant(c: &ServerCounters) {
        assert_eq!(c.requests, c.replies + c.kod_rate + c.kod_deny + c.dropped_total(), "{c:?}");
    }

    const NORMAL: ServerAction = ServerAction::Reply { len: 48, kind: ReplyKind::Normal };
    const RATE_KOD: ServerAction =
        ServerAction::Reply { len: 48, kind: ReplyKind::Kod(KissCode::Rate) };
    const DENY_KOD: ServerAction =
        ServerAction::Reply { len: 48, kind: ReplyKind::Kod(KissCode::Deny) };

    #[test]
    fn v4_reply_field_by_field() {
        let mut r = open();
        let (action, bytes) = ask(&mut r, 1.0, CLIENT, &request(4, 3));
        assert_eq!(action, NORMAL);
        let h = header(&bytes);
        let s = sys();
        assert_eq!(h.leap, s.leap);
        assert_eq!(h.version, 4);
        assert_eq!(h.mode, Mode::Server);
        assert_eq!(h.stratum, s.stratum);
        assert_eq!(h.poll, POLL);
        assert_eq!(h.precision, s.precision);
        assert_eq!(h.root_delay, NtpShort::from_bits(0x0000_0400));
        // The root dispersion, aged at PHI since the reference time (RFC 5905 §7.3).
        let age = (RX - s.reference_time).to_secs_f64();
        let aged = NtpShort::from_secs_f64(s.root_dispersion + crate::assoc::filter::PHI * age);
        assert!(age > 2.0 && h.root_dispersion > NtpShort::from_bits(0x0000_0800));
        assert_eq!(h.root_dispersion, aged);
        assert_eq!(h.reference_id, s.reference_id);
        assert_eq!(h.reference_ts, s.reference_time);
        assert_eq!(h.origin_ts, NtpTimestamp::from_bits(XMT));
        assert_eq!(h.receive_ts, RX);
        assert_eq!(h.transmit_ts, NtpTimestamp::ZERO, "left for finish_reply");
        assert_eq!(r.counters().requests, 1);
        assert_eq!(r.counters().replies, 1);
        assert_invariant(r.counters());
    }

    /// What the driver drops unread and what it could not send are counted as exactly that,
    /// and the counters still add up (a port-0 request used to count as replied).
    #[test]
    fn unread_and_unsent_are_counted_honestly() {
        let mut r = open();
        r.count_unread(IgnoreReason::SourcePortZero);
        r.count_unread(IgnoreReason::TooLong);
        let (action, _) = ask(&mut r, 1.0, CLIENT, &request(4, 3));
        assert_eq!(action, NORMAL);
        r.count_send_failed(ReplyKind::Normal);
        let c = r.counters();
        assert_eq!((c.requests, c.replies), (3, 0));
        assert_eq!(c.dropped_for(IgnoreReason::SourcePortZero), 1);
        assert_eq!(c.dropped_for(IgnoreReason::TooLong), 1);
        assert_eq!(c.dropped_for(IgnoreReason::SendFailed), 1);
        assert_eq!(IgnoreReason::TooLong.counter_name(), "too_long");
        assert_invariant(c);
    }

    #[test]
    fn old_versions_accepted() {
        let mut r = open();
        for (version, mode) in [(1u8, 0u8), (1, 3), (2, 3), (3, 3)] {
            let (action, bytes) = ask(&mut r, 1.0, CLIENT, &request(version, mode));
            assert_eq!(action, NORMAL, "v{version} mode {mode}");
            let h = header(&bytes);
            assert_eq!((h.version, h.mode), (version, Mode::Server), "v{version} mode {mode}");
            assert_eq!(h.origin_ts, NtpTimestamp::from_bits(XMT));
        }
        assert_eq!(r.counters().replies, 4);
    }

    #[test]
    fn bad_versions_dropped() {
        let mut r = open();
        for version in [0u8, 5, 6, 7] {
            let (action, _) = ask(&mut r, 1.0, CLIENT, &request(version, 3));
            assert_eq!(
                action,
                ServerAction::Ignore(IgnoreReason::Malformed(WireError::UnsupportedVersion(
                    version
                )))
            );
        }
        let c = r.counters();
        assert_eq!(
            c.dropped().find(|(n, _)| *n == "unsupported_version"),
            Some(("unsupported_version", 4))
        );
        assert_eq!(c.replies, 0);
        assert_invariant(c);
    }

    #[test]
    fn non_client_modes_ignored() {
        let mut r = open();
        let cases = [
            (4u8, 1u8, IgnoreReason::ModeSymmetric, "mode_symmetric"),
            (4, 2, IgnoreReason::ModeSymmetric, "mode_symmetric"),
            (4, 4, IgnoreReason::ModeServer, "mode_server"),
            (4, 5, IgnoreReason::ModeBroadcast, "mode_broadcast"),
            (2, 6, IgnoreReason::ModeControl, "mode_control"),
            (2, 7, IgnoreReason::ModePrivate, "mode_private"),
            (4, 0, IgnoreReason::ModeReserved, "mode_reserved"),
            (2, 0, IgnoreReason::ModeReserved, "mode_reserved"),
        ];
        for (version, mode, reason, name) in cases {
            let (action, _) = ask(&mut r, 1.0, CLIENT, &request(version, mode));
            assert_eq!(action, ServerAction::Ignore(reason), "v{version} mode {mode}");
            assert_eq!(reason.counter_name(), name);
        }
        // A 12-byte ntpq request (mode 6) counts as control, not as a short packet.
        let ntpq = [0x16, 0x02, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00];
        assert_eq!(
            ask(&mut r, 1.0, CLIENT, &ntpq).0,
            ServerAction::Ignore(IgnoreReason::ModeControl)
        );
        let c = r.counters();
        let count = |name: &str| c.dropped().find(|(n, _)| *n == name).map(|(_, v)| v);
        assert_eq!(count("mode_symmetric"), Some(2));
        assert_eq!(count("mode_server"), Some(1));
        assert_eq!(count("mode_broadcast"), Some(1));
        assert_eq!(count("mode_control"), Some(2));
        assert_eq!(count("mode_private"), Some(1));
        assert_eq!(count("mode_reserved"), Some(2));
        assert_eq!(c.dropped_for(IgnoreReason::ModeControl), 2);
        assert_eq!(c.replies, 0);
        assert_invariant(c);
    }

    #[test]
    fn malformed_counted_by_wire_error() {
        let mut r = open();
        assert_eq!(
            ask(&mut r, 1.0, CLIENT, &[]).0,
            ServerAction::Ignore(IgnoreReason::Malformed(WireError::TooShort {
                needed: 48,
                got: 0
            }))
        );
        let short = &request(4, 3)[..47];
        assert_eq!(
            ask(&mut r, 1.0, CLIENT, short).0,
            ServerAction::Ignore(IgnoreReason::Malformed(WireError::TooShort {
                needed: 48,
                got: 47
            }))
        );
        let mut trailing = request(3, 3);
        trailing.extend_from_slice(&[0xEE; 5]);
        assert_eq!(
            ask(&mut r, 1.0, CLIENT, &trailing).0,
            ServerAction::Ignore(IgnoreReason::Malformed(WireError::TrailingData {
                offset: 48,
                len: 5
            }))
        );
        let c = r.counters();
        let count = |name: &str| c.dropped().find(|(n, _)| *n == name).map(|(_, v)| v);
        assert_eq!(count("too_short"), Some(2));
        assert_eq!(count("trailing_data"), Some(1));
        assert_invariant(c);
    }

    /// An extension field of `len` bytes in all (header included).
    fn ext(field_type: u16, len: u16) -> Vec<u8> {
        let mut e = field_type.to_be_bytes().to_vec();
        e.extend_from_slice(&len.to_be_bytes());
        e.resize(usize::from(len), 0xA5);
        e
    }

    #[test]
    fn reply_never_longer_than_request() {
        let mut r = open();
        let md5_mac = [&7u32.to_be_bytes()[..], &[0x5A; 16]].concat();
        let sha1_mac = [&7u32.to_be_bytes()[..], &[0x5A; 20]].concat();
        let cases: Vec<(Vec<u8>, ReplyKind, usize)> = vec![
            ([request(4, 3), ext(0x0104, 32)].concat(), ReplyKind::Normal, 48),
            ([request(4, 3), ext(0x0104, 16), ext(0x0204, 100)].concat(), ReplyKind::Normal, 48),
            ([request(4, 3), md5_mac.clone()].concat(), ReplyKind::CryptoNak, 52),
            ([request(3, 3), sha1_mac.clone()].concat(), ReplyKind::CryptoNak, 52),
            ([request(4, 3), ext(0x0104, 28), md5_mac].concat(), ReplyKind::CryptoNak, 52),
            ([request(4, 3), vec![0; 4]].concat(), ReplyKind::Normal, 48),
            (request(1, 0), ReplyKind::Normal, 48),
        ];
        for (req, kind, len) in cases {
            assert!(PacketRepr::parse(&req).is_ok(), "test request must be well-formed");
            let (action, bytes) = ask(&mut r, 1.0, CLIENT, &req);
            assert_eq!(action, ServerAction::Reply { len, kind }, "request of {} bytes", req.len());
            assert!(bytes.len() <= req.len());
            let parsed = PacketRepr::parse(&bytes);
            assert!(parsed.is_ok(), "{parsed:?}");
            if let Ok(reply) = parsed {
                assert!(reply.extensions.is_empty());
                assert_eq!(
                    reply.mac.is_some_and(|m| m.is_crypto_nak()),
                    kind == ReplyKind::CryptoNak
                );
            }
        }
        assert_eq!(r.counters().crypto_naks, 3);
        assert_invariant(r.counters());
    }

    #[test]
    fn small_output_buffer_is_a_drop_not_a_panic() {
        let mut r = open();
        let mut out = [0u8; 47];
        let action = r.respond(at(1.0), RX, CLIENT, &request(4, 3), &sys(), &mut out);
        assert_eq!(
            action,
            ServerAction::Ignore(IgnoreReason::Malformed(WireError::BufferTooSmall {
                needed: 48,
                got: 47
            }))
        );
        let mac_req = [request(4, 3), vec![0x11; 20]].concat();
        let mut out = [0u8; 50];
        let action = r.respond(at(1.0), RX, CLIENT, &mac_req, &sys(), &mut out);
        assert!(matches!(action, ServerAction::Ignore(IgnoreReason::Malformed(_))));
        assert_invariant(r.counters());
    }

    #[test]
    fn unsynchronized_state_is_served_as_given() {
        let mut r = open();
        let mut out = [0u8; 48];
        let unsync = SystemState::unsynchronized(-20);
        let action = r.respond(at(1.0), RX, CLIENT, &request(4, 3), &unsync, &mut out);
        assert_eq!(action, NORMAL);
        let h = header(&out);
        assert_eq!((h.leap, h.stratum, h.precision), (LeapIndicator::Unsynchronized, 16, -20));
        assert_eq!(h.reference_id, ReferenceId::from_bytes(*b"INIT"));
        assert_eq!(h.kiss_code(), None, "stratum 16, not a kiss");
        // Stratum 0 (or above 16) would read as a kiss-o'-death: it goes out as 16.
        for stratum in [0u8, 17, 255] {
            let state = SystemState { stratum, ..sys() };
            r.respond(at(1.0), RX, CLIENT, &request(4, 3), &state, &mut out);
            assert_eq!(header(&out).stratum, 16, "stratum {stratum}");
        }
    }

    #[test]
    fn finish_reply_patches_only_transmit() {
        let mut r = open();
        let mut out = [0x77u8; 64];
        let action = r.respond(at(1.0), RX, CLIENT, &request(4, 3), &sys(), &mut out);
        assert_eq!(action, NORMAL);
        let before = out;
        let t3 = NtpTimestamp::from_bits(0xE9A1_B2C3_2000_4000);
        finish_reply(&mut out[..48], t3);
        for (i, (a, b)) in before.iter().zip(out.iter()).enumerate() {
            if !(40..48).contains(&i) {
                assert_eq!(a, b, "byte {i} changed");
            }
        }
        assert_eq!(header(&out).transmit_ts, t3);
        // Short buffers are left alone, without panicking.
        let mut short = [0x01u8; 47];
        finish_reply(&mut short, t3);
        assert_eq!(short, [0x01u8; 47]);
        finish_reply(&mut [], t3);
    }

    #[test]
    fn finish_reply_leaves_kod_alone() {
        let mut r =
            Responder::new(config(RestrictFlags::NOSERVE | RestrictFlags::KOD, vec![]), SEED);
        let mut out = [0u8; 48];
        let action = r.respond(at(1.0), RX, CLIENT, &request(4, 3), &sys(), &mut out);
        assert_eq!(action, DENY_KOD);
        let before = out;
        finish_reply(&mut out, NtpTimestamp::from_bits(0xDEAD_BEEF_0000_0000));
        assert_eq!(out, before, "a KoD must not carry our clock");
    }

    #[test]
    fn restrict_default_allow_specific_ignore() {
        let bad = v4(192, 0, 2, 66);
        let rules = vec![RestrictRule::host(bad, RestrictFlags::IGNORE)];
        let mut r = Responder::new(config(RestrictFlags::NONE, rules), SEED);
        assert_eq!(
            ask(&mut r, 1.0, bad, &request(4, 3)).0,
            ServerAction::Ignore(IgnoreReason::RestrictIgnore)
        );
        // `ignore` drops everything, even garbage and queries, before parsing.
        assert_eq!(
            ask(&mut r, 1.0, bad, &[0xFF]).0,
            ServerAction::Ignore(IgnoreReason::RestrictIgnore)
        );
        assert_eq!(
            ask(&mut r, 1.0, bad, &request(2, 6)).0,
            ServerAction::Ignore(IgnoreReason::RestrictIgnore)
        );
        assert_eq!(ask(&mut r, 1.0, v4(192, 0, 2, 67), &request(4, 3)).0, NORMAL);
        assert_eq!(r.counters().dropped_for(IgnoreReason::RestrictIgnore), 3);
        assert_invariant(r.counters());
    }

    #[test]
    fn restrict_longest_prefix_wins() {
        // Deliberately not in specificity order.
        let rules = vec![
            RestrictRule::prefix(v4(10, 1, 2, 3), 32, RestrictFlags::NOSERVE),
            RestrictRule::prefix(v4(10, 0, 0, 0), 8, RestrictFlags::IGNORE),
            RestrictRule::prefix(v4(10, 1, 0, 0), 16, RestrictFlags::NONE),
        ];
        let mut r = Responder::new(config(RestrictFlags::IGNORE, rules), SEED);
        let cases = [
            (v4(10, 2, 0, 1), ServerAction::Ignore(IgnoreReason::RestrictIgnore)),
            (v4(10, 1, 9, 9), NORMAL),
            (v4(10, 1, 2, 3), ServerAction::Ignore(IgnoreReason::RestrictNoServe)),
            (v4(192, 0, 2, 1), ServerAction::Ignore(IgnoreReason::RestrictIgnore)),
        ];
        for (src, expected) in cases {
            assert_eq!(ask(&mut r, 1.0, src, &request(4, 3)).0, expected, "{src}");
        }
        // A mask given as an address works the same; host bits in the address are ignored.
        let rule = RestrictRule {
            addr: v4(10, 1, 77, 77),
            mask: v4(255, 255, 0, 0),
            flags: RestrictFlags::LIMITED,
        };
        assert!(rule.matches(v4(10, 1, 200, 1)));
        assert!(!rule.matches(v4(10, 2, 0, 1)));
        // A later rule for the same network replaces the earlier (as a repeated ntpd line).
        let rules = vec![
            RestrictRule::prefix(v4(10, 0, 0, 0), 8, RestrictFlags::IGNORE),
            RestrictRule::prefix(v4(10, 0, 0, 0), 8, RestrictFlags::KOD),
        ];
        let r = Responder::new(config(RestrictFlags::NONE, rules), SEED);
        assert_eq!(r.restrictions(v4(10, 9, 9, 9)), RestrictFlags::KOD);
    }

    #[test]
    fn restrict_ipv6_rules() {
        let rules = vec![
            RestrictRule::prefix(v6("2001:db8::"), 32, RestrictFlags::IGNORE),
            RestrictRule::prefix(v6("2001:db8:1::"), 48, RestrictFlags::NONE),
            RestrictRule::host(v6("2001:db8:1::bad"), RestrictFlags::NOSERVE),
            RestrictRule::prefix(v4(10, 0, 0, 0), 8, RestrictFlags::IGNORE),
            // Family mismatch: invalid, never matches.
            RestrictRule { addr: v6("::"), mask: v4(0, 0, 0, 0), flags: RestrictFlags::IGNORE },
        ];
        assert!(!rules[4].is_valid());
        let mut r = Responder::new(config(RestrictFlags::NONE, rules), SEED);
        let cases = [
            (v6("2001:db8:2::1"), ServerAction::Ignore(IgnoreReason::RestrictIgnore)),
            (v6("2001:db8:1::1"), NORMAL),
            (v6("2001:db8:1::bad"), ServerAction::Ignore(IgnoreReason::RestrictNoServe)),
            (v6("2001:db9::1"), NORMAL),
            // An IPv4 client on a dual-stack socket is still an IPv4 client.
            (v6("::ffff:10.1.2.3"), ServerAction::Ignore(IgnoreReason::RestrictIgnore)),
            (v6("::ffff:192.0.2.1"), NORMAL),
        ];
        for (src, expected) in cases {
            assert_eq!(ask(&mut r, 1.0, src, &request(4, 3)).0, expected, "{src}");
        }
        // IPv6 rules never match IPv4 clients, even `::/0`.
        let rules = vec![RestrictRule::prefix(v6("::"), 0, RestrictFlags::IGNORE)];
        let r = Responder::new(config(RestrictFlags::NONE, rules), SEED);
        assert_eq!(r.restrictions(v4(192, 0, 2, 1)), RestrictFlags::NONE);
        assert_eq!(r.restrictions(v6("2001:db8::1")), RestrictFlags::IGNORE);
    }

    #[test]
    fn noserve_kod_sends_deny() {
        let rules = vec![RestrictRule::host(CLIENT, RestrictFlags::NOSERVE | RestrictFlags::KOD)];
        let mut r = Responder::new(config(RestrictFlags::NONE, rules), SEED);
        let req = request(3, 3);
        let (action, bytes) = ask(&mut r, 1.0, CLIENT, &req);
        assert_eq!(action, DENY_KOD);
        let h = header(&bytes);
        let q = header(&req);
        assert_eq!(h.kiss_code(), Some(KissCode::Deny));
        assert_eq!(
            (h.leap, h.version, h.mode, h.stratum),
            (LeapIndicator::Unsynchronized, 3, Mode::Server, 0)
        );
        assert_eq!(h.poll, POLL.max(3));
        // Nothing of ours: request fields and the request's transmit timestamp everywhere.
        assert_eq!(
            (h.precision, h.root_delay, h.root_dispersion),
            (q.precision, q.root_delay, q.root_dispersion)
        );
        assert_eq!(h.reference_ts, q.reference_ts);
        assert_eq!([h.origin_ts, h.receive_ts, h.transmit_ts], [NtpTimestamp::from_bits(XMT); 3]);
        assert_eq!(r.counters().kod_deny, 1);
        // Without `kod`, noserve is a silent drop.
        let rules = vec![RestrictRule::host(CLIENT, RestrictFlags::NOSERVE)];
        let mut r = Responder::new(config(RestrictFlags::NONE, rules), SEED);
        assert_eq!(
            ask(&mut r, 1.0, CLIENT, &req).0,
            ServerAction::Ignore(IgnoreReason::RestrictNoServe)
        );
        assert_invariant(r.counters());
    }

    #[test]
    fn deny_kod_is_rate_limited() {
        let mut r =
            Responder::new(config(RestrictFlags::NOSERVE | RestrictFlags::KOD, vec![]), SEED);
        let actions: Vec<ServerAction> =
            (0..30).map(|i| ask(&mut r, f64::from(i), CLIENT, &request(4, 3)).0).collect();
        let denies = actions.iter().filter(|a| **a == DENY_KOD).count();
        // Twelve within the burst, then one per 2^3 s: never one per request.
        assert!(denies < 16, "{denies} DENYs for 30 requests");
        assert!(actions.contains(&ServerAction::Ignore(IgnoreReason::KodLimited)));
        assert_invariant(r.counters());
    }

    /// One request per `interval` seconds from `src`, `n` times; the actions.
    fn poll_series(r: &mut Responder, src: IpAddr, interval: f64, n: u32) -> Vec<ServerAction> {
        (0..n).map(|i| ask(r, 100.0 + f64::from(i) * interval, src, &request(4, 3)).0).collect()
    }

    #[test]
    fn limited_without_kod_drops_after_burst() {
        let mut r = Responder::new(config(RestrictFlags::LIMITED, vec![]), SEED);
        let actions = poll_series(&mut r, CLIENT, 1.0, 40);
        // ntpd's score at 1 packet/s with average 3: +5 s per packet, limit 56 s: the 13th
        // packet trips it (see the `ratelimit` module doc).
        assert!(actions[..12].iter().all(|a| *a == NORMAL), "{actions:?}");
        assert!(actions[12..]
            .iter()
            .all(|a| *a == ServerAction::Ignore(IgnoreReason::RateLimited)));
        assert_eq!(r.counters().dropped_for(IgnoreReason::RateLimited), 28);
        assert_invariant(r.counters());
    }

    #[test]
    fn limited_with_kod_sends_one_rate_kod_then_drops() {
        let mut r =
            Responder::new(config(RestrictFlags::LIMITED | RestrictFlags::KOD, vec![]), SEED);
        let actions = poll_series(&mut r, CLIENT, 1.0, 40);
        assert!(actions[..12].iter().all(|a| *a == NORMAL));
        assert_eq!(actions[12], RATE_KOD);
        // The score is parked above the limit for one average interval (8 s): silent drops,
        // then the next kiss.
        assert!(
            actions[13..21].iter().all(|a| *a == ServerAction::Ignore(IgnoreReason::KodLimited)),
            "{actions:?}"
        );
        assert_eq!(actions[21], RATE_KOD);
        let kods = actions.iter().filter(|a| **a == RATE_KOD).count();
        assert!(kods <= 4, "{kods} KoDs in 40 s");
        assert!(!actions[12..].contains(&NORMAL), "a client that keeps flooding is never served");
        assert_eq!(r.counters().kod_rate as usize, kods);
        // The kiss itself: RATE, the request's timestamps, nothing of our clock.
        let mut r =
            Responder::new(config(RestrictFlags::LIMITED | RestrictFlags::KOD, vec![]), SEED);
        poll_series(&mut r, CLIENT, 1.0, 12);
        let (action, bytes) = ask(&mut r, 112.0, CLIENT, &request(4, 3));
        assert_eq!(action, RATE_KOD);
        let h = header(&bytes);
        assert_eq!(
            (h.kiss_code(), h.leap, h.stratum),
            (Some(KissCode::Rate), LeapIndicator::Unsynchronized, 0)
        );
        assert_eq!([h.origin_ts, h.receive_ts, h.transmit_ts], [NtpTimestamp::from_bits(XMT); 3]);
        assert_invariant(r.counters());
    }

    #[test]
    fn rate_kod_poll_is_at_least_average() {
        let mut r =
            Responder::new(config(RestrictFlags::LIMITED | RestrictFlags::KOD, vec![]), SEED);
        let mut req = request(4, 3);
        req[2] = 0x00; // poll 1 s
        let mut kod = None;
        for i in 0..20 {
            let (action, bytes) = ask(&mut r, f64::from(i) * 0.5, CLIENT, &req);
            if action == RATE_KOD {
                kod = Some(header(&bytes));
                break;
            }
        }
        assert_eq!(kod.map(|h| h.poll), Some(3));
    }

    #[test]
    fn client_at_64s_is_never_limited() {
        let mut r =
            Responder::new(config(RestrictFlags::LIMITED | RestrictFlags::KOD, vec![]), SEED);
        assert!(poll_series(&mut r, CLIENT, 64.0, 1000).iter().all(|a| *a == NORMAL));
        // Nor at the average interval itself, nor with iburst's 2 s spacing for 8 packets.
        assert!(poll_series(&mut r, v4(192, 0, 2, 2), 8.0, 1000).iter().all(|a| *a == NORMAL));
        assert!(poll_series(&mut r, v4(192, 0, 2, 3), 2.0, 8).iter().all(|a| *a == NORMAL));
    }

    #[test]
    fn queries_default_to_loopback_only() {
        let mut r = Responder::new(ServerConfig::default(), SEED);
        for local in [v4(127, 0, 0, 1), v4(127, 6, 1, 2), IpAddr::V6(Ipv6Addr::LOCALHOST)] {
            assert_eq!(r.check_query(at(1.0), local), QueryVerdict::Allowed, "{local}");
        }
        let mapped = IpAddr::V6(Ipv4Addr::new(127, 0, 0, 1).to_ipv6_mapped());
        assert_eq!(r.check_query(at(1.0), mapped), QueryVerdict::Allowed);
        assert_eq!(r.check_query(at(1.0), v4(192, 0, 2, 1)), QueryVerdict::NoQuery);
        // Loopback is not limited by the default's `limited`: ntpq sends back to back.
        for i in 0..100 {
            let t = at(2.0 + f64::from(i) * 0.001);
            assert_eq!(r.check_query(t, v4(127, 0, 0, 1)), QueryVerdict::Allowed);
        }
        // A rule of its own for loopback decides, as any other rule.
        let rules = vec![RestrictRule::prefix(v4(127, 0, 0, 0), 8, RestrictFlags::NOQUERY)];
        let mut r = Responder::new(config(RestrictFlags::NONE, rules), SEED);
        assert_eq!(r.check_query(at(1.0), v4(127, 0, 0, 1)), QueryVerdict::NoQuery);
        let rules = vec![RestrictRule::prefix(v4(0, 0, 0, 0), 0, RestrictFlags::IGNORE)];
        let mut r = Responder::new(config(RestrictFlags::NONE, rules), SEED);
        assert_eq!(r.check_query(at(1.0), v4(127, 0, 0, 1)), QueryVerdict::RestrictIgnore);
    }

    #[test]
    fn limited_queries_get_a_burst_then_the_average() {
        let mut r = Responder::new(config(RestrictFlags::LIMITED, vec![]), SEED);
        let src = v4(192, 0, 2, 9);
        let burst =
            (0..40).take_while(|i| r.check_query(at(f64::from(*i) * 0.01), src).is_allowed());
        let burst = burst.count();
        assert!((8..=12).contains(&burst), "burst of {burst}");
        assert_eq!(r.check_query(at(0.5), src), QueryVerdict::RateLimited);
        // Time requests of the same client are not affected: their table is another one.
        assert_eq!(ask(&mut r, 0.6, src, &request(4, 3)).0, NORMAL);
        // One query per 8 s is always answered.
        let src = v4(192, 0, 2, 10);
        assert!((0..100).all(|i| r.check_query(at(f64::from(i) * 8.0), src).is_allowed()));
        assert_eq!(r.query_table_len(), 2);
    }

    #[test]
    fn finish_reply_leaves_mode6_answers_alone() {
        let mut answer = vec![0u8; 64];
        answer[0] = 0x26; // version 4, mode 6
        answer[1] = 0x82; // response, READVAR
        let before = answer.clone();
        finish_reply(&mut answer, RX);
        assert_eq!(answer, before);
    }

    #[test]
    fn minimum_spacing_violation_is_limited() {
        let mut r = Responder::new(config(RestrictFlags::LIMITED, vec![]), SEED);
        assert_eq!(ask(&mut r, 10.0, CLIENT, &request(4, 3)).0, NORMAL);
        // 0.5 s later: under `minimum 2` even with ntpd's 1 s grace.
        assert_eq!(
            ask(&mut r, 10.5, CLIENT, &request(4, 3)).0,
            ServerAction::Ignore(IgnoreReason::RateLimited)
        );
        // Without `limited` the same client is served.
        let mut r = open();
        assert_eq!(poll_series(&mut r, CLIENT, 0.01, 100), vec![NORMAL; 100]);
        assert_eq!(r.rate_table_len(), 0, "unlimited clients never touch the table");
    }

    #[test]
    fn spoofed_flood_keeps_table_bounded_and_serves_legit_client() {
        let mut r =
            Responder::new(config(RestrictFlags::LIMITED | RestrictFlags::KOD, vec![]), SEED);
        let capacity = r.rate_table_capacity();
        assert_eq!(capacity, RateLimit::default().effective_table_size());
        let legit = v4(198, 51, 100, 1);
        let abuser = v4(198, 51, 100, 2);
        let mut rng = SplitMix64::new(0xF100D);
        let req = request(4, 3);
        let mut out = [0u8; 48];
        let (mut legit_sent, mut legit_served, mut abuser_served) = (0u32, 0u32, 0u32);
        // 1,000,000 spoofed requests at 1000/s; the legitimate client polls every 16 s, an
        // abusive one every second.
        for i in 0u64..1_000_000 {
            let t = Instant::from_nanos(i * 1_000_000);
            let word = rng.next_u64();
            let src = if word & 1 == 0 {
                IpAddr::V4(Ipv4Addr::from_bits((word >> 32) as u32))
            } else {
                IpAddr::V6(Ipv6Addr::from_bits(u128::from(word) << 64 | u128::from(rng.next_u64())))
            };
            r.respond(t, RX, src, &req, &sys(), &mut out);
            if i % 16_000 == 0 {
                legit_sent += 1;
                if r.respond(t, RX, legit, &req, &sys(), &mut out) == NORMAL {
                    legit_served += 1;
                }
            }
            if i % 1_000 == 0 && r.respond(t, RX, abuser, &req, &sys(), &mut out) == NORMAL {
                abuser_served += 1;
            }
            if i % 65_536 == 0 {
                assert_eq!(r.rate_table_capacity(), capacity);
            }
        }
        assert_eq!(r.rate_table_capacity(), capacity);
        assert!(r.rate_table_len() <= capacity);
        assert_eq!(legit_served, legit_sent, "the legitimate client got every reply");
        // The flood cannot evict the abuser's high score and reset its limit.
        assert_eq!(abuser_served, 12);
        assert_invariant(r.counters());
    }

    #[test]
    fn set_config_keeps_rate_state() {
        let limited = config(RestrictFlags::LIMITED, vec![]);
        let mut r = Responder::new(limited.clone(), SEED);
        let actions = poll_series(&mut r, CLIENT, 1.0, 13);
        assert_eq!(actions[12], ServerAction::Ignore(IgnoreReason::RateLimited));
        // Same table size: the client is still over the limit.
        r.set_config(ServerConfig {
            restrict: vec![RestrictRule::host(v4(192, 0, 2, 1), RestrictFlags::IGNORE)],
            ..limited.clone()
        });
        assert_eq!(
            ask(&mut r, 113.0, CLIENT, &request(4, 3)).0,
            ServerAction::Ignore(IgnoreReason::RateLimited)
        );
        assert_eq!(r.counters().requests, 14, "counters survive too");
        // A different size starts a fresh table.
        let bigger = ServerConfig {
            rate: RateLimit { table_size: 0x2000, ..RateLimit::default() },
            ..limited
        };
        r.set_config(bigger.clone());
        assert_eq!(r.config(), &bigger);
        assert_eq!(r.rate_table_capacity(), 0x2000);
        assert_eq!(ask(&mut r, 114.0, CLIENT, &request(4, 3)).0, NORMAL);
    }

    #[test]
    fn counter_labels_are_distinct_and_complete() {
        let c = ServerCounters::default();
        let names: Vec<&str> = c.dropped().map(|(n, _)| n).collect();
        assert_eq!(names.len(), DROPPED_LEN);
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len(), "{names:?}");
        for name in WireError::COUNTER_NAMES {
            assert!(names.contains(name));
        }
        for reason in [
            IgnoreReason::RestrictIgnore,
            IgnoreReason::RestrictNoServe,
            IgnoreReason::RateLimited,
            IgnoreReason::KodLimited,
            IgnoreReason::ModeControl,
            IgnoreReason::ModePrivate,
            IgnoreReason::ModeSymmetric,
            IgnoreReason::ModeServer,
            IgnoreReason::ModeBroadcast,
            IgnoreReason::ModeReserved,
            IgnoreReason::Malformed(WireError::TrailingData { offset: 0, len: 0 }),
        ] {
            assert_eq!(names.get(reason.index()), Some(&reason.counter_name()));
        }
    }

    /// Owned pieces of a client request: version, extension (type, words) pairs, MAC length.
    fn arb_request() -> impl Strategy<Value = Vec<u8>> {
        (
            1u8..=4,
            prop::collection::vec((any::<u16>(), 4u16..24), 0..4),
            prop_oneof![Just(0usize), Just(4), Just(20), Just(24)],
            any::<u8>(),
        )
            .prop_map(|(version, exts, mac_len, fill)| {
                let mut b = request(version, 3);
                if version == 4 {
                    for (field_type, words) in exts {
                        b.extend_from_slice(&ext(field_type, words * 4));
                    }
                }
                b.extend(core::iter::repeat_n(fill, mac_len));
                b
            })
    }

    fn arb_src() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            any::<u32>().prop_map(|a| IpAddr::V4(Ipv4Addr::from_bits(a))),
            any::<u128>().prop_map(|a| IpAddr::V6(Ipv6Addr::from_bits(a))),
            // Few distinct sources, so the rate limiter sees repeat clients.
            (0u8..4).prop_map(|d| v4(192, 0, 2, d)),
        ]
    }

    proptest! {
        #[test]
        fn arbitrary_input_never_panics_or_amplifies(
            packets in prop::collection::vec(
                (prop_oneof![prop::collection::vec(any::<u8>(), 0..200), arb_request()],
                 arb_src(), 0u64..3_000_000_000, 0usize..80),
                1..40,
            ),
            flags in any::<u8>(),
            rules in prop::collection::vec((arb_src(), 0u8..=128, any::<u8>()), 0..4),
            average in any::<u8>(),
            minimum in any::<u8>(),
        ) {
            let restrict = rules
                .into_iter()
                .map(|(addr, len, f)| RestrictRule::prefix(addr, len, RestrictFlags::from_bits_truncate(f)))
                .collect();
            let cfg = ServerConfig {
                restrict,
                default_flags: RestrictFlags::from_bits_truncate(flags),
                rate: RateLimit { average_log2: average, minimum_secs: minimum, table_size: 16 },
            };
            let mut r = Responder::new(cfg, SEED);
            let mut now = 0u64;
            for (bytes, src, step, out_len) in packets {
                now = now.saturating_add(step);
                let mut out = vec![0u8; out_len];
                let action = r.respond(Instant::from_nanos(now), RX, src, &bytes, &sys(), &mut out);
                if let ServerAction::Reply { len, kind } = action {
                    prop_assert!(len <= bytes.len(), "{} byte reply to {} bytes", len, bytes.len());
                    prop_assert!(len <= out.len());
                    let reply = out.get(..len).unwrap_or_default();
                    let parsed = PacketRepr::parse(reply);
                    prop_assert!(parsed.is_ok(), "{:?}", parsed);
                    let h = header(reply);
                    prop_assert_eq!(h.mode, Mode::Server);
                    prop_assert_eq!(h.kiss_code().is_some(), matches!(kind, ReplyKind::Kod(_)));
                    finish_reply(&mut out, NtpTimestamp::from_bits(1));
                }
            }
            assert_invariant(r.counters());
            prop_assert!(r.rate_table_len() <= r.rate_table_capacity());
        }

        /// The allocation-free trailer check gives exactly the parser's verdict.
        #[test]
        fn trailer_check_agrees_with_parser(
            req in arb_request(),
            flip in any::<prop::sample::Index>(),
            xor in 0u8..,
            cut in any::<prop::sample::Index>(),
            extra in prop::collection::vec(any::<u8>(), 0..8),
        ) {
            let mut bytes = req;
            let at = 48 + flip.index(bytes.len().saturating_sub(48).max(1));
            if let Some(b) = bytes.get_mut(at) {
                *b ^= xor;
            }
            bytes.extend_from_slice(&extra);
            bytes.truncate(48 + cut.index(bytes.len() - 47));
            let version = header(&bytes).version;
            let ours = check_trailer(&bytes[48..], version >= EXTENSIONS_VERSION);
            let theirs = PacketRepr::parse(&bytes);
            prop_assert_eq!(ours.map(|_| ()), theirs.as_ref().map(|_| ()).map_err(|e| *e));
            if let (Ok(mac), Ok(repr)) = (ours, theirs) {
                let expected = match repr.mac {
                    None => TrailerMac::None,
                    Some(m) if m.is_crypto_nak() => TrailerMac::CryptoNak,
                    Some(_) => TrailerMac::Digest,
                };
                prop_assert_eq!(mac, expected);
            }
        }
    }
}
