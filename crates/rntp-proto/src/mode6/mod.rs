//! Mode 6 (RFC 9327 control messages), read side: what `ntpq -p`, `ntpq -c rv`, `ntpq -c as`,
//! Nagios/Icinga `check_ntp_peer` and telegraf's ntpq input ask an NTP daemon.
//!
//! * [`wire`]: the control message codec, a checked view ([`ControlPacket`]) and a parsed
//!   representation ([`ControlRepr`]) with typed errors ([`Mode6Error`]).
//! * [`Mode6Responder`]: one request in, an iterator of reply datagrams ([`Replies`]) out,
//!   fragmented as ntpd fragments (468 data octets per datagram, M bit, offset, count) and
//!   bounded by a [`ReplyBudget`] so that a non-local client never gets more octets than it
//!   sent.
//! * [`Mode6Data`]: the trait the node implements to supply system variables
//!   ([`SystemVars`]), the association list ([`AssocSummary`]) and per-association variables
//!   ([`PeerVars`]), with status words from [`status`].
//!
//! Answered: READSTAT (1), READVAR (2) for the system and each association, with ntpd's
//! variable names, units and text format; an explicit name list (`rv 0 offset,sys_jitter`)
//! selects variables. Pool rows look as ntpd shows them (`srcadr=0.0.0.0`, refid `POOL`,
//! [`PeerVars::pool`]). The rest gets ntpd's error codes; see [`Mode6Responder::respond`].
//! Administrators' documentation, including the security policy: `docs/mode6.md`.
//!
//! CONFIGURE (`ntpq :config`) is answered by the node, which checks the control key and parses
//! the text ([`Replies::text`], [`Replies::signed`] are its building blocks).
//!
//! READ_MRU and REQ_NONCE (`ntpq -c mrulist`): [`mru`] parses the request, issues and checks
//! the nonces and writes the answer; the node keeps the list ([`crate::server::MruList`]) and
//! answers them itself, since a valid nonce changes the reply budget.
//!
//! This module deliberately does **not**: write anything (no WRITEVAR), keep the MRU list, look up `restrict`
//! rules or rate-limit (the node does both before calling the responder; [`query_allowed`]
//! and [`ReplyBudget::for_source`] encode the policy), or read clocks and sockets.

pub mod mru;
mod respond;
pub mod status;
mod vars;
pub mod wire;

pub use respond::{
    query_allowed, DropReason, Mode6Responder, Outcome, Replies, ReplyBudget, MAX_FRAGMENTS,
    MAX_SIGNED_DATAGRAM_LEN,
};
pub use status::{ClockSource, PeerEvent, PeerStatus, Selection, SystemEvent, SystemStatus};
pub use vars::{AssocId, AssocSummary, FilterStages, LeapTable, Mode6Data, PeerVars, SystemVars};
pub use wire::{
    ControlHeader, ControlPacket, ControlRepr, ErrorCode, MacTrailer, Mode6Error, Opcode,
    HEADER_LEN, MAX_DATAGRAM_LEN, MAX_DATA_LEN,
};

#[cfg(test)]
mod tests;
