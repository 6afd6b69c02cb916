//! The rntpd control protocol: what `rntpctl` (or any other client) and the daemon say to each
//! other over the control socket.
//!
//! # Wire format
//! Each message is one frame: a 4-byte big-endian length followed by that many bytes of UTF-8
//! JSON. A frame longer than [`MAX_FRAME_LEN`] is refused before any of it is buffered, so a
//! misbehaving client cannot make the daemon allocate without bound. A connection carries one
//! request and one response; the client then closes it.
//!
//! A response too large for one frame (the peers table of thousands of associations) is sent
//! as several frames, each a [`Response`] holding a part of the list with `"more": true` on all
//! but the last ([`encode_reply_frames`]); [`ReplyAssembler`] joins them again. Replies of any
//! size work, and no single frame is ever above the cap.
//!
//! Every request and response carries `"version": 2` ([`PROTOCOL_VERSION`]). The daemon answers a
//! request with another version with [`ErrorCode::UnsupportedVersion`], so an old `rntpctl` gets a
//! clear message instead of a misread (or silently cut) reply.
//!
//! ```text
//! → {"version":2,"command":"peers"}
//! ← {"version":2,"reply":"peers","peers":[{"id":1,"source":"127.0.1.1",...}]}
//! ```
//!
//! This crate is pure: it encodes and decodes buffers and does no I/O, so it can be fuzzed and
//! shared by the daemon and the CLI.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use serde::{Deserialize, Serialize};

/// The protocol version this crate speaks. 2: replies may span several frames (`more`).
pub const PROTOCOL_VERSION: u32 = 2;

/// The largest frame payload either side accepts (1 MiB): small enough to bound what one read
/// buffers; larger replies are split ([`encode_reply_frames`]).
pub const MAX_FRAME_LEN: usize = 1 << 20;

/// The most frames one reply may span (a client stops assembling beyond it): 1 GiB of JSON,
/// the peers table of about two million associations.
pub const MAX_REPLY_FRAMES: usize = 1024;

/// A list reply is split into parts of about this many bytes of JSON each.
const PART_TARGET: usize = MAX_FRAME_LEN / 2;

/// Length of the frame header.
pub const FRAME_HEADER_LEN: usize = 4;

/// Why a frame could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    /// The announced payload length exceeds [`MAX_FRAME_LEN`].
    #[error("control message of {0} bytes exceeds the limit of {MAX_FRAME_LEN} bytes")]
    TooLong(usize),
    /// One element of a list reply is itself larger than a frame.
    #[error("one entry of the reply is {0} bytes, more than a control frame holds")]
    EntryTooLong(usize),
    /// A multi-frame reply went on for more than [`MAX_REPLY_FRAMES`] frames, or its parts
    /// did not belong together.
    #[error("malformed multi-frame reply: {0}")]
    BadSequence(&'static str),
    /// The payload is not valid JSON for the expected message type.
    #[error("malformed control message: {0}")]
    Malformed(String),
}

/// A request from a control client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Protocol version; must be [`PROTOCOL_VERSION`].
    pub version: u32,
    /// What the client asks for.
    #[serde(flatten)]
    pub command: Command,
}

impl Request {
    /// A request of the current protocol version.
    pub fn new(command: Command) -> Self {
        Request { version: PROTOCOL_VERSION, command }
    }
}

/// The commands the daemon understands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Command {
    /// List every association (read-only).
    Peers,
    /// Daemon status and counters (read-only).
    Status,
    /// Every configured source with its name-resolution state (read-only).
    Sources,
    /// Mobilizations, moves and retirements, newest last (read-only).
    History,
    /// Add a server or pool at runtime (mutating). The reply comes at once; name resolution
    /// follows in the background.
    Add(AddSource),
    /// Remove a source by its name or address, with all its associations (mutating).
    Remove {
        /// The name or address as configured.
        name: String,
    },
    /// Re-resolve a source's name now, or every named source (mutating).
    Refresh {
        /// The name; `null` for all.
        name: Option<String>,
    },
    /// Re-read the configuration file (and its `sourcedir` files) and apply the difference,
    /// as SIGHUP does (mutating). A file with errors changes nothing.
    Reload,
}

/// A source to add at runtime, with the options of a `server`/`pool` line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddSource {
    /// `"server"` or `"pool"`.
    pub kind: String,
    /// Host name or address literal.
    pub name: String,
    /// Remote port (123 unless given).
    pub port: u16,
    /// `iburst`.
    pub iburst: bool,
    /// `burst`.
    pub burst: bool,
    /// `prefer`.
    pub prefer: bool,
    /// `noselect`.
    pub noselect: bool,
    /// `minpoll` (log2 s).
    pub minpoll: i8,
    /// `maxpoll` (log2 s).
    pub maxpoll: i8,
    /// `version`: the NTP version to send (named so as not to clash with the protocol's
    /// `version` field in the flattened request).
    pub ntp_version: u8,
    /// `maxsources` (pools).
    pub maxsources: Option<u8>,
    /// `"any"`, `"ipv4"` or `"ipv6"` (`-4`/`-6`).
    pub family: String,
}

impl Command {
    /// Whether the command changes daemon state (and so needs the mutating permission).
    pub fn is_mutating(&self) -> bool {
        match self {
            Command::Peers | Command::Status | Command::Sources | Command::History => false,
            Command::Add(_)
            | Command::Remove { .. }
            | Command::Refresh { .. }
            | Command::Reload => true,
        }
    }
}

/// A response from the daemon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// Protocol version of the daemon.
    pub version: u32,
    /// The reply (for a multi-frame reply: this frame's part of the list).
    #[serde(flatten)]
    pub reply: Reply,
    /// More frames of the same reply follow.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub more: bool,
}

impl Response {
    /// A response of the current protocol version.
    pub fn new(reply: Reply) -> Self {
        Response { version: PROTOCOL_VERSION, reply, more: false }
    }
}

/// The reply to a [`Command`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Reply {
    /// Answer to [`Command::Peers`].
    Peers {
        /// One entry per association, ordered by id.
        peers: Vec<PeerInfo>,
    },
    /// Answer to [`Command::Status`].
    Status(Box<StatusInfo>),
    /// Answer to [`Command::Sources`].
    Sources {
        /// One entry per source, ordered by id.
        sources: Vec<SourceInfo>,
    },
    /// Answer to [`Command::History`].
    History {
        /// Oldest first; the daemon keeps the last 1000.
        entries: Vec<HistoryEntry>,
    },
    /// Answer to [`Command::Add`]: the source exists now (its name may still be resolving).
    Added {
        /// The new source's id.
        source_id: u32,
    },
    /// Answer to [`Command::Remove`].
    Removed {
        /// The removed source's id.
        source_id: u32,
        /// Associations that were stopped.
        associations: Vec<u32>,
    },
    /// Answer to [`Command::Refresh`].
    Refreshing {
        /// Sources whose names are being resolved again.
        sources: Vec<u32>,
    },
    /// Answer to [`Command::Reload`]: what changed.
    Reloaded(Box<ReloadInfo>),
    /// The request failed.
    Error {
        /// Machine-readable cause.
        code: ErrorCode,
        /// What went wrong, for a human.
        message: String,
    },
}

/// Machine-readable error causes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// The request's `version` is not [`PROTOCOL_VERSION`].
    UnsupportedVersion,
    /// The request could not be parsed.
    BadRequest,
    /// The caller may not run this command.
    PermissionDenied,
    /// No source has that name.
    NotFound,
    /// The source is already configured (same name or address, and port).
    Duplicate,
    /// The request's values are out of range.
    InvalidArgument,
    /// The configuration has errors (the message lists them as `FILE:LINE:COL`); nothing was
    /// changed.
    ConfigError,
}

/// What a reload changed. Sources are named as configured.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadInfo {
    /// The configuration file read.
    pub config_file: String,
    /// Sources new in the files.
    pub added: Vec<String>,
    /// Sources no longer in the files, stopped with their associations.
    pub removed: Vec<String>,
    /// Sources whose options changed: stopped and added again.
    pub replaced: Vec<String>,
    /// Sources added with `rntpctl add` that the files now name.
    pub adopted: Vec<String>,
    /// Lines refused (`file:line`; the log says why).
    pub rejected: Vec<String>,
    /// Sources from the files that kept their associations.
    pub unchanged: usize,
    /// Sources added with `rntpctl add`, kept.
    pub runtime_kept: usize,
    /// Other settings applied now (`restrict/discard`, `tos orphan`, `resolver`, `logfile`).
    pub applied: Vec<String>,
    /// Settings that changed in the files but apply only after a restart.
    pub restart_needed: Vec<String>,
    /// Warnings found in the files (they are in rntpd's log).
    pub warnings: usize,
}

/// One line of the replacement history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// Unix time (s) of the event.
    pub time: f64,
    /// The source's id.
    pub source_id: u32,
    /// The source's name or address.
    pub source: String,
    /// The association.
    pub association: u32,
    /// `"mobilized"`, `"retired"` or `"moved"`.
    pub event: String,
    /// The association's address (the new one for a move).
    pub address: String,
    /// For a move: the address it left.
    pub old_address: Option<String>,
    /// Why: `configured`, `pool-fill`, `replacement` for mobilizations; `unreachable`,
    /// `falseticker`, `unsynchronized`, `kod-deny`, `kod-rstr`, `removed`, `pruned-extra` for
    /// retirements; `address-changed` (the name no longer lists the address) or `failover`
    /// (the server failed and the name lists another address) for moves.
    pub reason: String,
}

/// One row of `rntpctl peers`: an association, or a source that has none yet (a name that
/// has not resolved) or a pool (which owns member associations, like ntpd's `.POOL.` row).
///
/// Times are in seconds. `offset` is RFC 5905 θ: positive when the server is ahead of us.
/// Measurement fields are `null` until the first valid sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerInfo {
    /// Association id, stable for the life of the association (also across address changes
    /// of a server name); `null` on a source row.
    pub id: Option<u32>,
    /// The owning source's id (see `rntpctl sources`).
    pub source_id: u32,
    /// `"server"` (association of a server line), `"pool-member"` (also a manycast client's
    /// member), or for source rows `"pool"` / `"manycastclient"` / `"unresolved"`.
    pub kind: String,
    /// The source as configured: a hostname or an address literal.
    pub source: String,
    /// Remote address as `ip:port` (IPv6 in brackets); empty on source rows.
    pub address: String,
    /// Association state: `"init"`, `"reachable"`, `"unreachable"` or `"demobilized"`; on
    /// source rows `"resolving"`, `"unresolved"` or, for pools, `"pool"` (manycast clients:
    /// `"manycast"`).
    pub state: String,
    /// On source rows: the last resolution error, if the last attempt failed.
    pub last_error: Option<String>,
    /// Server stratum from its last valid reply.
    pub stratum: Option<u8>,
    /// Server reference id from its last valid reply, displayed as ntpq does: ASCII in dots
    /// for stratum 0 and 1 (`.GPS.`; unprintable bytes as `.`), a dotted quad above.
    pub refid: Option<String>,
    /// The same reference id as its four bytes in hex (`7F7F0101`), exact at every stratum.
    #[serde(default)]
    pub refid_hex: Option<String>,
    /// The 8-bit reachability register (bit 0 = last poll).
    pub reach: u8,
    /// Current poll interval in seconds.
    pub poll: f64,
    /// Seconds since the last valid reply.
    pub when: Option<f64>,
    /// Offset of the best filter sample.
    pub offset: Option<f64>,
    /// Round-trip delay of the best filter sample.
    pub delay: Option<f64>,
    /// Peer dispersion.
    pub dispersion: Option<f64>,
    /// Filter jitter (RMS of offset differences).
    pub jitter: Option<f64>,
    /// The last Kiss-o'-Death code received (e.g. `"RATE"`).
    pub last_kod: Option<String>,
    /// Why the association stopped, if it did (e.g. `"kod-deny"`).
    pub demobilized: Option<String>,
    /// Selection's verdict on an association: `"system-peer"`, `"survivor"`, `"outlier"`,
    /// `"falseticker"`, or `"unusable: REASON"`; `null` before the first selection round.
    pub verdict: Option<String>,
    /// The verdict as ntpq's tally character: `*` system peer, `+` survivor, `-` outlier,
    /// `x` falseticker, space otherwise.
    pub tally: String,
    /// Datagrams from this association's server that were not used, by reason
    /// (`bogus_origin`, `unsynchronized`, `wrong_remote`, ...), non-zero reasons only.
    #[serde(default)]
    pub drops: Vec<(String, u64)>,
}

/// A source as `rntpctl sources` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceInfo {
    /// Source id.
    pub id: u32,
    /// `"server"`, `"pool"` or `"manycastclient"`.
    pub kind: String,
    /// The configured name or address literal.
    pub name: String,
    /// Remote port.
    pub port: u16,
    /// Where it was configured (`file:line`, or `rntpctl`).
    pub origin: String,
    /// Known usable addresses from the last good answer (address literals: the literal;
    /// manycast clients: the servers whose answers still stand).
    pub addresses: Vec<String>,
    /// Seconds until the last good answer's TTL runs out (negative: expired); `null` for
    /// literals and names never resolved.
    pub expires_in: Option<f64>,
    /// The last resolution attempt.
    pub last_resolution: Option<ResolutionInfo>,
    /// Seconds until the next planned resolution (manycast clients: solicitation); `null`
    /// when none is planned (literals, full pools, a lookup in progress).
    pub next_resolution_in: Option<f64>,
    /// A lookup is running now.
    pub resolving: bool,
    /// Lookups started since the source was added (manycast clients: solicitations sent).
    pub queries: u64,
    /// Ids of the source's associations.
    pub associations: Vec<u32>,
    /// Pools: how many members the pool aims for under `maxsources` and `tos maxclock`.
    pub target: Option<usize>,
    /// Pools: `"filling"` during the first fill (probing), `"steady"` after it.
    pub pool_phase: Option<String>,
    /// Pools after the first fill: replacements the pool may make right now.
    pub replacements_available: Option<u32>,
    /// Pools: seconds until the pool earns its next replacement (`null`: it has all it can).
    pub next_replacement_in: Option<f64>,
}

/// The outcome of one resolution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResolutionInfo {
    /// Seconds ago.
    pub ago: f64,
    /// `"ok"` or the error, e.g. `"name does not exist (NXDOMAIN)"`.
    pub result: String,
    /// TTL of a successful answer (s).
    pub ttl: Option<f64>,
    /// Usable addresses in a successful answer.
    pub addresses: Option<usize>,
}

/// Daemon status as `rntpctl status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusInfo {
    /// rntpd version.
    pub daemon_version: String,
    /// Seconds since the daemon started.
    pub uptime: f64,
    /// `"observe"` (measure only) or `"control"` (disciplines the clock).
    pub mode: String,
    /// The configuration file in use, or `"(built-in default)"`.
    pub config_file: String,
    /// Number of configured sources (servers and pools).
    pub sources: usize,
    /// Number of associations.
    pub associations: usize,
    /// Associations with reach != 0.
    pub reachable: usize,
    /// Client-side packet counters.
    pub counters: Counters,
    /// Server mode: `null` when rntpd serves no addresses.
    pub server: Option<ServerCountersInfo>,
    /// Addresses rntpd serves time on.
    pub listening: Vec<String>,
    /// What rntpd tells its clients: `"unsynchronized"`, `"orphan"` or `"synchronized"`.
    pub serving_as: String,
    /// Stratum rntpd serves.
    pub stratum: u8,
    /// The discipline's state: `unset`, `freq`, `spike` or `sync`.
    pub clock_state: String,
    /// Frequency correction of rntpd's clock (ppm): in observe mode the virtual clock's, i.e.
    /// the measured frequency error of the system clock.
    pub clock_frequency_ppm: f64,
    /// In observe mode: how far rntpd's virtual clock is from the system clock (s, positive:
    /// rntpd's time is ahead), i.e. the correction rntpd would have applied. 0 in control mode.
    pub clock_correction: f64,
    /// The last offset the discipline acted on (s, selected time minus rntpd's clock).
    pub clock_offset: Option<f64>,
    /// The kernel's own clock state as `adjtimex` reports it (read-only), e.g.
    /// `"TIME_ERROR, status UNSYNC, frequency +0.000 ppm"`: in observe mode it shows that rntpd
    /// leaves the kernel alone; `null` where it cannot be read.
    pub kernel_clock: Option<String>,
    /// The system peer's association id, when selection has one.
    pub system_peer: Option<u32>,
    /// Combined offset of the selected sources (s, positive: they are ahead of this host's
    /// clock).
    pub system_offset: Option<f64>,
    /// System jitter (s).
    pub system_jitter: Option<f64>,
    /// Association events since start by reason (`mobilized:pool-fill`, `retired:unreachable`,
    /// `moved:address-changed`, ...), sorted.
    pub history_totals: Vec<(String, u64)>,
    /// Control mode: the last error the kernel returned for a clock adjustment, if the latest
    /// one failed.
    #[serde(default)]
    pub clock_error: Option<String>,
    /// Whether rntpd's clock is synchronized: a system peer is selected and the discipline
    /// tracks it (what `rntpctl wait-sync` waits for).
    #[serde(default)]
    pub synchronized: bool,
    /// Symmetric-key authentication, `:config` and manycast counters.
    #[serde(default)]
    pub auth: AuthInfo,
}

/// Keys and what they authenticated, since start.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthInfo {
    /// Keys loaded from the key file.
    pub keys: usize,
    /// Of them, trusted ones (`trustedkey`).
    pub trusted: usize,
    /// `controlkey`, if any.
    pub control_key: Option<u32>,
    /// Client side: replies of keyed sources dropped by reason (`auth_bad_mac`,
    /// `auth_crypto_nak`, `auth_missing`, `auth_wrong_key`, ...; also in `counters.dropped`),
    /// and requests not sent because the key was unusable (`auth_key_unusable`).
    pub client_failures: Vec<(String, u64)>,
    /// Server side: time replies signed for authenticated requests.
    pub server_authenticated: u64,
    /// Server side: requests whose MAC did not authenticate, by reason (non-zero only).
    pub server_failures: Vec<(String, u64)>,
    /// `ntpq :config` requests applied.
    pub config_accepted: u64,
    /// `ntpq :config` requests refused, by reason.
    pub config_refused: Vec<(String, u64)>,
    /// Manycast client: solicitations sent.
    pub manycast_solicitations: u64,
    /// Manycast client: authenticated answers that became candidates.
    pub manycast_offers: u64,
    /// Manycast client: answers not used, by reason.
    pub manycast_dropped: Vec<(String, u64)>,
    /// Manycast server: solicitations received on group sockets.
    pub manycast_requests: u64,
    /// Manycast server: solicitations answered.
    pub manycast_replies: u64,
    /// Manycast server: solicitations not answered, by reason.
    pub manycast_declined: Vec<(String, u64)>,
}

/// Server-mode counters since start.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerCountersInfo {
    /// Requests received.
    pub requests: u64,
    /// Time replies sent (including crypto-NAK replies).
    pub replies: u64,
    /// RATE kisses sent.
    pub kod_rate: u64,
    /// DENY kisses sent.
    pub kod_deny: u64,
    /// Replies with a crypto-NAK (the request had a MAC rntpd cannot verify).
    pub crypto_naks: u64,
    /// Requests dropped, by reason (non-zero reasons only).
    pub dropped: Vec<(String, u64)>,
    /// Clients currently tracked by the rate limiter.
    pub rate_table_used: usize,
    /// Fixed capacity of the rate limiter's table.
    pub rate_table_capacity: usize,
}

/// Packet counters since start.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Requests sent to servers.
    pub sent: u64,
    /// Packets received on client sockets.
    pub received: u64,
    /// Replies accepted as samples.
    pub accepted: u64,
    /// Packets dropped, by reason (e.g. `"too_short"`, `"bogus_origin"`), sorted by reason.
    pub dropped: Vec<(String, u64)>,
    /// Kiss-o'-Death packets received.
    pub kod_received: u64,
    /// Send errors.
    pub send_errors: u64,
}

/// Encodes a message as one frame (header + JSON).
pub fn encode_frame<T: Serialize>(message: &T) -> Result<Vec<u8>, FrameError> {
    let json = serde_json::to_vec(message).map_err(|e| FrameError::Malformed(e.to_string()))?;
    if json.len() > MAX_FRAME_LEN {
        return Err(FrameError::TooLong(json.len()));
    }
    let mut out = Vec::with_capacity(FRAME_HEADER_LEN + json.len());
    // Cannot truncate: checked against MAX_FRAME_LEN (< u32::MAX) above.
    out.extend_from_slice(&(json.len() as u32).to_be_bytes());
    out.extend_from_slice(&json);
    Ok(out)
}

/// Encodes a reply as one frame, or, when it is too large, as several frames each holding a
/// part of its list (peers, sources, history) with `more` set on all but the last.
pub fn encode_reply_frames(reply: Reply) -> Result<Vec<Vec<u8>>, FrameError> {
    match encode_frame(&Response::new(reply.clone())) {
        Err(FrameError::TooLong(_)) => {}
        other => return other.map(|f| vec![f]),
    }
    let parts: Vec<Reply> = match reply {
        Reply::Peers { peers } => {
            split(peers)?.into_iter().map(|p| Reply::Peers { peers: p }).collect()
        }
        Reply::Sources { sources } => {
            split(sources)?.into_iter().map(|s| Reply::Sources { sources: s }).collect()
        }
        Reply::History { entries } => {
            split(entries)?.into_iter().map(|e| Reply::History { entries: e }).collect()
        }
        other => return encode_frame(&Response::new(other)).map(|f| vec![f]),
    };
    if parts.len() > MAX_REPLY_FRAMES {
        return Err(FrameError::BadSequence("reply larger than MAX_REPLY_FRAMES frames"));
    }
    let last = parts.len().saturating_sub(1);
    parts
        .into_iter()
        .enumerate()
        .map(|(i, reply)| {
            encode_frame(&Response { version: PROTOCOL_VERSION, reply, more: i < last })
        })
        .collect()
}

/// Splits a list into runs of about [`PART_TARGET`] bytes of JSON each.
fn split<T: Serialize>(items: Vec<T>) -> Result<Vec<Vec<T>>, FrameError> {
    let mut parts = Vec::new();
    let mut part = Vec::new();
    let mut size = 0usize;
    for item in items {
        let len =
            serde_json::to_vec(&item).map_err(|e| FrameError::Malformed(e.to_string()))?.len();
        if len > PART_TARGET {
            return Err(FrameError::EntryTooLong(len));
        }
        if size + len > PART_TARGET && !part.is_empty() {
            parts.push(std::mem::take(&mut part));
            size = 0;
        }
        size += len + 1;
        part.push(item);
    }
    parts.push(part);
    Ok(parts)
}

/// Joins the frames of one reply ([`encode_reply_frames`]).
#[derive(Debug, Default)]
pub struct ReplyAssembler {
    reply: Option<Reply>,
    frames: usize,
}

impl ReplyAssembler {
    /// An empty assembler.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the next frame's response; `Ok(Some(reply))` once the reply is complete.
    pub fn push(&mut self, response: Response) -> Result<Option<Reply>, FrameError> {
        self.frames += 1;
        if self.frames > MAX_REPLY_FRAMES {
            return Err(FrameError::BadSequence("more than MAX_REPLY_FRAMES frames"));
        }
        let joined = match (self.reply.take(), response.reply) {
            (None, r) => r,
            (Some(Reply::Peers { mut peers }), Reply::Peers { peers: more }) => {
                peers.extend(more);
                Reply::Peers { peers }
            }
            (Some(Reply::Sources { mut sources }), Reply::Sources { sources: more }) => {
                sources.extend(more);
                Reply::Sources { sources }
            }
            (Some(Reply::History { mut entries }), Reply::History { entries: more }) => {
                entries.extend(more);
                Reply::History { entries }
            }
            _ => return Err(FrameError::BadSequence("parts of different replies")),
        };
        if response.more {
            self.reply = Some(joined);
            Ok(None)
        } else {
            Ok(Some(joined))
        }
    }
}

/// Reads the payload length from a frame header, refusing oversized frames up front.
pub fn frame_len(header: [u8; FRAME_HEADER_LEN]) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(header) as usize;
    if len > MAX_FRAME_LEN {
        return Err(FrameError::TooLong(len));
    }
    Ok(len)
}

/// Decodes a frame payload (without its header).
pub fn decode_payload<'de, T: Deserialize<'de>>(payload: &'de [u8]) -> Result<T, FrameError> {
    serde_json::from_slice(payload).map_err(|e| FrameError::Malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_json_shape() {
        let frame = encode_frame(&Request::new(Command::Peers)).unwrap();
        let len = frame_len(frame[..4].try_into().unwrap()).unwrap();
        assert_eq!(&frame[4..4 + len], br#"{"version":2,"command":"peers"}"#);
        let back: Request = decode_payload(&frame[4..]).unwrap();
        assert_eq!(back, Request::new(Command::Peers));
    }

    #[test]
    fn add_request_roundtrip() {
        let add = AddSource {
            kind: "pool".into(),
            name: "pool.test".into(),
            port: 123,
            iburst: true,
            burst: false,
            prefer: false,
            noselect: false,
            minpoll: 6,
            maxpoll: 10,
            ntp_version: 4,
            maxsources: Some(3),
            family: "any".into(),
        };
        let frame = encode_frame(&Request::new(Command::Add(add.clone()))).unwrap();
        let back: Request = decode_payload(&frame[4..]).unwrap();
        assert_eq!(back.command, Command::Add(add));
        assert!(back.command.is_mutating());
    }

    #[test]
    fn reload_roundtrip() {
        let frame = encode_frame(&Request::new(Command::Reload)).unwrap();
        assert_eq!(&frame[4..], br#"{"version":2,"command":"reload"}"#);
        assert!(Command::Reload.is_mutating());
        let info = ReloadInfo {
            added: vec!["192.0.2.1".into()],
            restart_needed: vec!["tos maxclock".into()],
            ..ReloadInfo::default()
        };
        let r = Response::new(Reply::Reloaded(Box::new(info)));
        let back: Response = decode_payload(&encode_frame(&r).unwrap()[4..]).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn reply_roundtrip() {
        let r = Response::new(Reply::Error {
            code: ErrorCode::UnsupportedVersion,
            message: "speak version 1".into(),
        });
        let frame = encode_frame(&r).unwrap();
        let back: Response = decode_payload(&frame[4..]).unwrap();
        assert_eq!(back, r);
    }

    fn peer(i: u32) -> PeerInfo {
        PeerInfo {
            id: Some(i),
            source_id: i,
            kind: "server".into(),
            source: format!("server-{i}.example.org"),
            address: format!("192.0.2.{}:123", i % 250),
            state: "reachable".into(),
            last_error: None,
            stratum: Some(2),
            refid: Some("192.0.2.1".into()),
            refid_hex: None,
            reach: 255,
            poll: 64.0,
            when: Some(12.5),
            offset: Some(1e-4),
            delay: Some(2e-3),
            dispersion: Some(1e-3),
            jitter: Some(5e-5),
            last_kod: None,
            demobilized: None,
            verdict: Some("survivor".into()),
            tally: "+".into(),
            drops: vec![("bogus_origin".into(), 3)],
        }
    }

    #[test]
    fn huge_list_reply_spans_frames_and_reassembles() {
        let peers: Vec<PeerInfo> = (0..20_000).map(peer).collect();
        let frames = encode_reply_frames(Reply::Peers { peers: peers.clone() }).unwrap();
        assert!(frames.len() > 1, "{} frames", frames.len());
        let mut asm = ReplyAssembler::new();
        let mut done = None;
        for (i, f) in frames.iter().enumerate() {
            let len = frame_len(f[..4].try_into().unwrap()).unwrap();
            assert!(len <= MAX_FRAME_LEN);
            let r: Response = decode_payload(&f[4..]).unwrap();
            assert_eq!(r.more, i + 1 < frames.len());
            done = asm.push(r).unwrap();
        }
        assert_eq!(done, Some(Reply::Peers { peers }));
        // A small reply stays one frame without a `more` field.
        let one = encode_reply_frames(Reply::Peers { peers: vec![peer(1)] }).unwrap();
        assert_eq!(one.len(), 1);
        assert!(!String::from_utf8_lossy(&one[0]).contains("more"));
    }

    #[test]
    fn parts_of_different_replies_are_refused() {
        let mut asm = ReplyAssembler::new();
        let first = Response { more: true, ..Response::new(Reply::Peers { peers: vec![] }) };
        assert_eq!(asm.push(first).unwrap(), None);
        let other = Response::new(Reply::History { entries: vec![] });
        assert!(matches!(asm.push(other), Err(FrameError::BadSequence(_))));
    }

    #[test]
    fn oversized_frame_refused_before_reading() {
        let header = ((MAX_FRAME_LEN + 1) as u32).to_be_bytes();
        assert_eq!(frame_len(header), Err(FrameError::TooLong(MAX_FRAME_LEN + 1)));
    }

    #[test]
    fn unknown_command_is_an_error_not_a_panic() {
        let r: Result<Request, _> = decode_payload(br#"{"version":1,"command":"reboot"}"#);
        assert!(matches!(r, Err(FrameError::Malformed(_))));
        let r: Result<Request, _> = decode_payload(b"\xff\x00garbage");
        assert!(r.is_err());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_payload_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let _ = decode_payload::<Request>(&bytes);
            let _ = decode_payload::<Response>(&bytes);
        }
    }
}
