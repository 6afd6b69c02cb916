//! The mode 6 responder: one request in, zero or more reply datagrams out.

use core::net::IpAddr;

use crate::auth::Key;

use super::vars::{put_peer, put_sys, AssocId, Mode6Data, PeerVar, SysVar, PEER_VARS, SYS_VARS};
use super::wire::{
    ControlHeader, ControlPacket, ControlRepr, ErrorCode, Mode6Error, Opcode, HEADER_LEN,
    MAX_DATAGRAM_LEN, MAX_DATA_LEN,
};
use crate::server::RestrictFlags;
use crate::wire::LeapIndicator;

/// Most fragments in one answer: NTPsec's ntpq gives up beyond 32 (`MAXFRAGS`). An answer
/// longer than this (only READSTAT with thousands of associations could be) is refused with
/// `PERMISSION`, NTPsec's "no resources" code.
pub const MAX_FRAGMENTS: usize = 32;
/// ntpd's `MAXDATALINELEN`: text lines are broken before they reach this length.
const MAX_LINE_LEN: usize = 72;
/// The control mode in the first byte.
const MODE_CONTROL: u8 = 0x06;

/// How many octets the answer to one request may take, summed over all its datagrams.
///
/// ntpd has no such limit: it answers every permitted request in full, up to dozens of 480-byte
/// fragments for a 12-byte READSTAT or READVAR, which made `noquery` the only protection
/// against mode 6 reflection. rntpd keeps `noquery` *and* bounds what an unauthenticated
/// non-local client can get: with [`ReplyBudget::AtMost`] the request's own length, a spoofed
/// source is sent at most the bytes the attacker sent us.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum ReplyBudget {
    /// Answer in full (loopback clients, or networks `restrict` opens explicitly).
    Unlimited,
    /// At most this many octets in all. An answer that does not fit is not truncated or
    /// fragmented to fit (ntpq would wait for the missing fragments and report a timeout);
    /// it is replaced by one 12-byte `PERMISSION` error if that fits, else nothing is sent.
    /// A client that pads its request (the trailer is ignored) earns a proportionally larger
    /// budget, as QUIC clients pad their Initial.
    AtMost(usize),
}

impl ReplyBudget {
    /// The budget for a request of `request_len` octets from `source`: unlimited for loopback
    /// (including IPv4-mapped loopback) or when the administrator opened queries from that
    /// network without the size rule (`large_replies`), else the request's length.
    pub fn for_source(source: IpAddr, request_len: usize, large_replies: bool) -> Self {
        let loopback = match source {
            IpAddr::V4(v4) => v4.is_loopback(),
            IpAddr::V6(v6) => {
                v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
            }
        };
        if loopback || large_replies {
            ReplyBudget::Unlimited
        } else {
            ReplyBudget::AtMost(request_len)
        }
    }

    fn allows(self, len: usize) -> bool {
        match self {
            ReplyBudget::Unlimited => true,
            ReplyBudget::AtMost(max) => len <= max,
        }
    }
}

/// Whether a query is answered at all, from the `restrict` flags that apply to its source:
/// `ignore` and `noquery` drop it unanswered, as ntpd does. rntpd's default restrict flags
/// carry `noquery`; the configuration must add rules without it for loopback (ntpd's shipped
/// configurations have `restrict 127.0.0.1` and `restrict ::1`) so that local ntpq works.
pub fn query_allowed(flags: RestrictFlags) -> bool {
    !flags.contains(RestrictFlags::IGNORE) && !flags.contains(RestrictFlags::NOQUERY)
}

/// Why a datagram got no answer at all. Each has a stable
/// [`counter name`](DropReason::counter_name).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum DropReason {
    /// Shorter than the 12-byte header.
    TooShort,
    /// Not mode 6 (the caller routes by mode; this is a programming error or a fuzzer).
    NotControl,
    /// Version 0 or 5–7.
    UnsupportedVersion,
    /// R, E or M set: a response or a fragment, never a request (answering could loop).
    NotARequest,
    /// A non-zero offset: requests are never fragmented.
    FragmentedRequest,
    /// The answer (even the error) exceeds the [`ReplyBudget`].
    OverBudget,
    /// READ_MRU without a valid nonce of this source (missing, forged, for another address,
    /// or older than 16 s): as ntpd, no answer at all, so a spoofed READ_MRU reflects nothing.
    BadNonce,
}

impl DropReason {
    /// A stable snake_case label for counters.
    pub const fn counter_name(self) -> &'static str {
        match self {
            DropReason::TooShort => "too_short",
            DropReason::NotControl => "not_control",
            DropReason::UnsupportedVersion => "unsupported_version",
            DropReason::NotARequest => "not_a_request",
            DropReason::FragmentedRequest => "fragmented_request",
            DropReason::OverBudget => "over_budget",
            DropReason::BadNonce => "bad_nonce",
        }
    }
}

/// What the responder did with a request, for counters and logs.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Outcome {
    /// Nothing is sent.
    Dropped(DropReason),
    /// Answered in `fragments` datagrams.
    Answered {
        /// The request's opcode.
        opcode: Opcode,
        /// Datagrams in the answer (at least 1).
        fragments: usize,
    },
    /// Answered with an error response (one 12-byte datagram).
    Error {
        /// The request's opcode.
        opcode: Opcode,
        /// The error.
        code: ErrorCode,
    },
    /// The full answer exceeded the [`ReplyBudget`]; a `PERMISSION` error was sent instead.
    Refused {
        /// The request's opcode.
        opcode: Opcode,
        /// Octets the full answer would have taken.
        wanted: usize,
    },
}

/// The mode 6 responder. Stateless apart from its settings; one per node.
///
/// # Use
/// ```text
/// // for each datagram whose mode is 6:
/// let flags = restrict.lookup(src);
/// if !mode6::query_allowed(flags) { count("mode6_noquery"); continue; }
/// if !rate_limiter.admit(now, src) { count("mode6_limited"); continue; }
/// let budget = ReplyBudget::for_source(src.ip(), datagram.len(), opened(src));
/// let replies = responder.respond(datagram, &node, budget);
/// count(replies.outcome());
/// for reply in replies { socket.send_to(&reply, src); }
/// ```
#[derive(Clone, Debug, Default)]
pub struct Mode6Responder {
    _private: (),
}

/// The answer to one request: an iterator over its datagrams, in offset order.
#[derive(Clone, Debug)]
pub struct Replies {
    header: ControlHeader,
    body: Vec<u8>,
    next: usize,
    remaining: usize,
    outcome: Outcome,
    /// Every datagram ends with this key's MAC (the request was authenticated with it).
    key: Option<Key>,
}

/// Alignment of the MAC in a signed control message (ntpd and NTPsec pad to 8).
const MAC_ALIGN: usize = 8;
/// Longest MAC: key id and a 20-octet digest.
const MAX_MAC_WIRE_LEN: usize = 24;
/// Longest signed datagram: a full fragment, its padding to 8, and the longest MAC. Buffers
/// given to [`Replies::write_next`] for a signed answer need this many octets.
pub const MAX_SIGNED_DATAGRAM_LEN: usize = MAX_DATAGRAM_LEN + MAX_MAC_WIRE_LEN;

impl Replies {
    /// No answer, for `reason`.
    pub fn none(reason: DropReason) -> Self {
        Replies {
            header: ControlHeader {
                leap: LeapIndicator::NoWarning,
                version: 4,
                response: true,
                error: false,
                more: false,
                opcode: Opcode::Unspecified,
                sequence: 0,
                status: 0,
                association_id: 0,
                offset: 0,
            },
            body: Vec::new(),
            next: 0,
            remaining: 0,
            outcome: Outcome::Dropped(reason),
            key: None,
        }
    }

    /// An answer the caller built (the node's CONFIGURE): `body` as data, with the request's
    /// version, opcode, sequence and association, within `budget` (a `PERMISSION` error when
    /// over it). A datagram that is not a control request gets nothing, as in
    /// [`Mode6Responder::respond`].
    pub fn text(
        request: &[u8],
        leap: LeapIndicator,
        body: Vec<u8>,
        budget: ReplyBudget,
    ) -> Replies {
        let header = match request_header(request, leap) {
            Ok(header) => header,
            Err(reason) => return Replies::none(reason),
        };
        let opcode = header.opcode;
        let fragments = body.len().div_ceil(MAX_DATA_LEN).max(1);
        if fragments > MAX_FRAGMENTS {
            return error_reply(header, ErrorCode::Permission, opcode, budget);
        }
        let replies = Replies {
            header,
            body,
            next: 0,
            remaining: fragments,
            outcome: Outcome::Answered { opcode, fragments },
            key: None,
        };
        let wanted = replies.total_len();
        if !budget.allows(wanted) {
            return error_reply(header, ErrorCode::Permission, opcode, budget);
        }
        replies
    }

    /// An error answer (one datagram) to `request`, if the budget allows it.
    pub fn error(
        request: &[u8],
        leap: LeapIndicator,
        code: ErrorCode,
        budget: ReplyBudget,
    ) -> Replies {
        match request_header(request, leap) {
            Ok(header) => error_reply(header, code, header.opcode, budget),
            Err(reason) => Replies::none(reason),
        }
    }

    /// Signs every datagram with `key` (the request verified with it), as ntpd does: the data
    /// padded with zeros to a multiple of 8 octets, then the key id and the MAC over all that.
    /// Buffers for [`Replies::write_next`] then need [`MAX_SIGNED_DATAGRAM_LEN`] octets.
    pub fn signed(mut self, key: Key) -> Replies {
        self.key = Some(key);
        self
    }

    /// What was done.
    pub fn outcome(&self) -> Outcome {
        self.outcome
    }

    /// Datagrams still to come.
    pub fn remaining(&self) -> usize {
        self.remaining
    }

    /// Octets of all datagrams still to come.
    pub fn total_len(&self) -> usize {
        let mut len = 0;
        let mut offset = self.next;
        for _ in 0..self.remaining {
            let count = (self.body.len() - offset).min(MAX_DATA_LEN);
            len += match &self.key {
                None => datagram_len(count),
                Some(key) => datagram_len(count).next_multiple_of(MAC_ALIGN) + key.mac_wire_len(),
            };
            offset += count;
        }
        len
    }

    /// Writes the next datagram to the front of `buf` (which must hold
    /// [`MAX_DATAGRAM_LEN`] octets) and returns its length; `None` when done.
    pub fn write_next(&mut self, buf: &mut [u8]) -> Option<Result<usize, Mode6Error>> {
        if self.remaining == 0 {
            return None;
        }
        let count = (self.body.len() - self.next).min(MAX_DATA_LEN);
        self.remaining -= 1;
        let repr = ControlRepr {
            header: ControlHeader {
                more: self.remaining > 0,
                // The body is capped at MAX_FRAGMENTS * MAX_DATA_LEN < 65536.
                offset: self.next as u16,
                ..self.header
            },
            data: &self.body[self.next..self.next + count],
            trailer: &[],
        };
        self.next += count;
        let Some(key) = &self.key else { return Some(repr.emit(buf)) };
        let len = match repr.emit(buf) {
            Ok(len) => len,
            Err(e) => return Some(Err(e)),
        };
        let padded = len.next_multiple_of(MAC_ALIGN);
        let needed = padded + key.mac_wire_len();
        let Some(pad) = buf.get_mut(len..padded) else {
            return Some(Err(Mode6Error::BufferTooSmall { needed, got: buf.len() }));
        };
        pad.fill(0);
        Some(
            key.write_mac(buf, padded)
                .map_err(|_| Mode6Error::BufferTooSmall { needed, got: buf.len() }),
        )
    }
}

impl Iterator for Replies {
    type Item = Vec<u8>;

    fn next(&mut self) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; MAX_SIGNED_DATAGRAM_LEN];
        // Our own header and a data slice of at most MAX_DATA_LEN always emit into
        // MAX_DATAGRAM_LEN; an error here would be a bug, and dropping the datagram is the
        // safe answer to it.
        let len = self.write_next(&mut buf)?.ok()?;
        buf.truncate(len);
        Some(buf)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

/// Octets of a datagram carrying `count` data octets.
const fn datagram_len(count: usize) -> usize {
    (HEADER_LEN + count + 3) & !3
}

/// Splits a request's data into variable names as ntpd's `ctl_getitem` does: items end at
/// `,`; a `=value` part is ignored (writes are not supported); blanks around names and empty
/// items are skipped.
fn names(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    data.split(|&b| b == b',').filter_map(|item| {
        let name = item.split(|&b| b == b'=').next().unwrap_or(item);
        let name = name.trim_ascii();
        (!name.is_empty()).then_some(name)
    })
}

/// Joins text items as ntpd's `ctl_putdata` does.
pub(super) struct TextBody {
    out: Vec<u8>,
    line_len: usize,
    pub(super) item: String,
}

/// A length of a [`TextBody`] to come back to ([`TextBody::rewind`]).
#[derive(Clone, Copy)]
pub(super) struct Mark {
    out: usize,
    line_len: usize,
}

impl TextBody {
    pub(super) fn new() -> Self {
        TextBody { out: Vec::new(), line_len: 0, item: String::new() }
    }

    /// Octets so far.
    pub(super) fn len(&self) -> usize {
        self.out.len()
    }

    /// The length now, for [`TextBody::rewind`].
    pub(super) fn mark(&self) -> Mark {
        Mark { out: self.out.len(), line_len: self.line_len }
    }

    /// Drops what was committed after `mark`.
    pub(super) fn rewind(&mut self, mark: Mark) {
        self.out.truncate(mark.out);
        self.line_len = mark.line_len;
    }

    /// Appends the item built in `self.item`, then clears it.
    pub(super) fn commit(&mut self) {
        let len = self.item.len();
        if !self.out.is_empty() {
            self.out.push(b',');
            self.line_len += 1;
            if len + self.line_len + 1 >= MAX_LINE_LEN {
                self.out.extend_from_slice(b"\r\n");
                self.line_len = 0;
            } else {
                self.out.push(b' ');
                self.line_len += 1;
            }
        }
        self.out.extend_from_slice(self.item.as_bytes());
        self.line_len += len;
        self.item.clear();
    }

    /// The body, with ntpd's trailing `\r\n` when the last fragment has room for it.
    pub(super) fn finish(mut self) -> Vec<u8> {
        let last = self.out.len() % MAX_DATA_LEN;
        if !self.out.is_empty() && last != 0 && last + 2 < MAX_DATA_LEN {
            self.out.extend_from_slice(b"\r\n");
        }
        self.out
    }
}

impl Mode6Responder {
    /// A responder.
    pub fn new() -> Self {
        Mode6Responder::default()
    }

    /// Answers one mode 6 datagram from `data`, within `budget`.
    ///
    /// Dropped without answer (as ntpd): shorter than 12 octets, not mode 6, version outside
    /// 1–4, R/E/M bits set, non-zero offset, or over budget even for an error. Answered with
    /// an error: `BADFMT` for a count beyond the datagram, above 468, or a length not a
    /// multiple of 4; `BADOP` for unknown and unimplemented opcodes (and READ_MRU and
    /// REQ_NONCE, which need an MRU list: the node answers them itself); `PERMISSION` for the
    /// writing operations (WRITEVAR, READ_ORDLIST_A; and CONFIGURE, which the node answers
    /// itself before calling this, with the control key); `BADASSOC` for an unknown
    /// association and for READCLOCK (no reference clocks); `UNKNOWNVAR` when a requested name
    /// is unknown.
    pub fn respond(&self, request: &[u8], data: &dyn Mode6Data, budget: ReplyBudget) -> Replies {
        let system = data.system();
        let header = match request_header(request, system.leap) {
            Ok(header) => header,
            Err(reason) => return Replies::none(reason),
        };
        let opcode = header.opcode;
        let answer = match ControlRepr::parse(request) {
            Err(_) => Err(ErrorCode::BadFormat),
            Ok(repr) => answer(opcode, repr.header.association_id, repr.data, data),
        };
        let (status, body) = match answer {
            Ok(answer) => answer,
            Err(code) => return error_reply(header, code, opcode, budget),
        };
        let fragments = body.len().div_ceil(MAX_DATA_LEN).max(1);
        if fragments > MAX_FRAGMENTS {
            return error_reply(header, ErrorCode::Permission, opcode, budget);
        }
        let replies = Replies {
            header: ControlHeader { status, ..header },
            body,
            next: 0,
            remaining: fragments,
            outcome: Outcome::Answered { opcode, fragments },
            key: None,
        };
        let wanted = replies.total_len();
        if !budget.allows(wanted) {
            let mut refused = error_reply(header, ErrorCode::Permission, opcode, budget);
            if let Outcome::Error { .. } = refused.outcome {
                refused.outcome = Outcome::Refused { opcode, wanted };
            }
            return refused;
        }
        replies
    }
}

/// The header of the answer to `request`, or why it gets none: shorter than 12 octets, not
/// mode 6, R/E/M set, a non-zero offset, or a version outside 1–4.
fn request_header(request: &[u8], leap: LeapIndicator) -> Result<ControlHeader, DropReason> {
    let packet = ControlPacket::new_checked(request).map_err(|_| DropReason::TooShort)?;
    if packet.mode() != MODE_CONTROL {
        return Err(DropReason::NotControl);
    }
    if packet.is_response() || packet.is_error() || packet.has_more() {
        return Err(DropReason::NotARequest);
    }
    if packet.offset() != 0 {
        return Err(DropReason::FragmentedRequest);
    }
    let version = packet.version();
    if !(1..=4).contains(&version) {
        return Err(DropReason::UnsupportedVersion);
    }
    Ok(ControlHeader {
        leap,
        version,
        response: true,
        error: false,
        more: false,
        opcode: packet.opcode(),
        sequence: packet.sequence(),
        status: 0,
        association_id: packet.association_id(),
        offset: 0,
    })
}

/// A one-datagram error response, if the budget allows 12 octets.
fn error_reply(
    header: ControlHeader,
    code: ErrorCode,
    opcode: Opcode,
    budget: ReplyBudget,
) -> Replies {
    if !budget.allows(HEADER_LEN) {
        return Replies::none(DropReason::OverBudget);
    }
    Replies {
        header: ControlHeader { error: true, status: code.status_word(), ..header },
        body: Vec::new(),
        next: 0,
        remaining: 1,
        outcome: Outcome::Error { opcode, code },
        key: None,
    }
}

/// Status word and body of a successful answer, or the error to send.
type Answer = Result<(u16, Vec<u8>), ErrorCode>;

fn answer(opcode: Opcode, assoc: AssocId, request: &[u8], data: &dyn Mode6Data) -> Answer {
    match opcode {
        Opcode::Unspecified => {
            let status = status_of(assoc, data)?;
            Ok((status, Vec::new()))
        }
        Opcode::ReadStatus if assoc == 0 => {
            let system = data.system();
            let mut body = Vec::new();
            for a in data.associations() {
                body.extend_from_slice(&a.id.to_be_bytes());
                body.extend_from_slice(&a.status.to_bits().to_be_bytes());
            }
            Ok((system.status.to_bits(system.leap), body))
        }
        // READSTAT of one association: its status and default variables, as ntpd.
        Opcode::ReadStatus => read_peer(assoc, &[], data),
        Opcode::ReadVariables if assoc == 0 => read_system(request, data),
        Opcode::ReadVariables => read_peer(assoc, request, data),
        // No reference clocks: ntpd built without refclock support answers the same.
        Opcode::ReadClock => Err(ErrorCode::BadAssociation),
        // CONFIGURE is the node's (it needs the control key and changes state); here, as the
        // writes and READ_ORDLIST_A, it is refused.
        Opcode::WriteVariables | Opcode::Configure | Opcode::ReadOrderedList => {
            Err(ErrorCode::Permission)
        }
        // Not implemented (NTPsec answers WRITECLOCK and the trap opcodes the same way);
        // READ_MRU and REQ_NONCE need the node's MRU list and nonce key: the node answers
        // them (`node/mru.rs`, with [`super::mru`]) before calling this.
        Opcode::WriteClock
        | Opcode::SetTrap
        | Opcode::AsyncMessage
        | Opcode::SaveConfig
        | Opcode::ReadMru
        | Opcode::RequestNonce
        | Opcode::UnsetTrap
        | Opcode::Other(_) => Err(ErrorCode::BadOpcode),
    }
}

fn status_of(assoc: AssocId, data: &dyn Mode6Data) -> Result<u16, ErrorCode> {
    if assoc == 0 {
        let system = data.system();
        Ok(system.status.to_bits(system.leap))
    } else {
        data.peer(assoc).map(|p| p.status.to_bits()).ok_or(ErrorCode::BadAssociation)
    }
}

fn read_system(request: &[u8], data: &dyn Mode6Data) -> Answer {
    let system = data.system();
    let mut wanted: Vec<(&str, SysVar)> = Vec::new();
    for name in names(request) {
        let Some(&(known, var)) = SYS_VARS.iter().find(|(n, _)| n.as_bytes() == name) else {
            // All names are checked before anything is sent: no partial answers.
            return Err(ErrorCode::UnknownVariable);
        };
        wanted.push((known, var));
    }
    if wanted.is_empty() {
        wanted.extend(SYS_VARS.iter().copied());
    }
    let mut body = TextBody::new();
    // Request order, duplicates included, as ntpd's read_sysvars.
    for (name, var) in wanted {
        if put_sys(&mut body.item, name, var, &system) {
            body.commit();
        } else {
            body.item.clear();
        }
    }
    Ok((system.status.to_bits(system.leap), body.finish()))
}

fn read_peer(assoc: AssocId, request: &[u8], data: &dyn Mode6Data) -> Answer {
    let peer = data.peer(assoc).ok_or(ErrorCode::BadAssociation)?;
    let mut wanted = [false; PEER_VARS.len()];
    let mut explicit = false;
    for name in names(request) {
        let Some(index) = PEER_VARS.iter().position(|(n, _, _)| n.as_bytes() == name) else {
            return Err(ErrorCode::UnknownVariable);
        };
        wanted[index] = true;
        explicit = true;
    }
    let mut body = TextBody::new();
    // Table order whatever the request's order, each once, as ntpd's read_peervars.
    for (index, &(name, var, default)) in PEER_VARS.iter().enumerate() {
        let send = if explicit { wanted[index] } else { default };
        if send && var != PeerVar::Silent && put_peer(&mut body.item, name, var, &peer) {
            body.commit();
        } else {
            body.item.clear();
        }
    }
    Ok((peer.status.to_bits(), body.finish()))
}
