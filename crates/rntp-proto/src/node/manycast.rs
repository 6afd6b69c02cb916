//! Manycast on the wire, both roles, as ntpd 4.2.8 does it (the source manager decides when;
//! see [`crate::source`]'s `manycast.rs`).
//!
//! # Client (`manycastclient GROUP key N`)
//! A [`SourceAction::Solicit`](crate::source::SourceAction::Solicit) becomes one NTP client
//! request (mode 3, the source's version, a random 64-bit nonce as transmit timestamp, as every
//! rntpd request) followed by the MAC of the source's key, sent to the group with the TTL the
//! manager chose, from the source's own socket ([`Local::Manycast`]). Servers answer by unicast
//! to that socket. An answer is an offer only if it
//! 1. parses and is a server reply (mode 4),
//! 2. echoes the nonce of one of the source's last [`NONCES_KEPT`] solicitations as origin
//!    timestamp (a server may answer each solicitation once: a repeat is a duplicate),
//! 3. carries a valid MAC with the source's key (the same checks as any keyed reply),
//! 4. is no kiss-o'-death, says leap 0–2 and stratum 1–15, and comes from a unicast address
//!    that is not one of this host's `interface listen` addresses.
//!
//! Each failed check is counted by reason ([`ManycastCounters::dropped`]). A manycast client
//! without a key does not exist: the configuration refuses it (anyone on the group could
//! become a time source). Offers from servers whose reference time is zero (orphan parents)
//! are taken but used last (see the source manager).
//!
//! # Server (`manycastserver GROUP`)
//! The driver joins the group and hands what arrives there to [`Node::respond_manycast`]. As
//! ntpd: only client requests; only while this node has time to give (leap not 3, stratum
//! below 16) and a lower stratum than the client's; only for requests with a valid MAC of a
//! trusted key (stricter than ntpd, which answers unauthenticated solicitations unless
//! `notrust`); the answer is signed with the same key and sent by unicast. Anything else is
//! dropped silently and counted: no crypto-NAK, no kiss-o'-death (a NAK to a group would only
//! help an attacker map who has which key).

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, SocketAddr};

use super::{canonical, push_bounded, Local, Node, Transmit};
use crate::source::{SourceId, SourceKind};
use crate::time::{Instant, NtpShort, NtpTimestamp};
use crate::wire::{LeapIndicator, Mode, NtpHeader, PacketRepr, ReferenceId};

/// Solicitation nonces kept per manycast client: answers to a solicitation sent a few TTL
/// steps ago are still welcome.
pub const NONCES_KEPT: usize = 8;
/// Servers remembered per solicitation, to drop repeated answers.
const ANSWERS_KEPT: usize = 64;

/// Counters of the manycast client side.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ManycastCounters {
    /// Solicitations sent.
    pub solicitations: u64,
    /// Datagrams received on manycast client sockets.
    pub received: u64,
    /// Answers that became offers.
    pub offers: u64,
    /// Answers not used, by reason (`bogus_origin`, `auth_bad_mac`, `unsynchronized`, ...).
    pub dropped: BTreeMap<&'static str, u64>,
}

impl ManycastCounters {
    fn drop(&mut self, reason: &'static str) {
        *self.dropped.entry(reason).or_default() += 1;
    }
}

/// One solicitation in flight.
#[derive(Debug, Clone)]
struct Sent {
    nonce: NtpTimestamp,
    answered: Vec<SocketAddr>,
}

/// The node's manycast client state.
#[derive(Debug, Default)]
pub(super) struct ManycastClient {
    sent: BTreeMap<SourceId, VecDeque<Sent>>,
    pub(super) counters: ManycastCounters,
}

impl Node {
    /// Builds and queues a solicitation (a `Solicit` action).
    pub(super) fn solicit(&mut self, source: SourceId, group: SocketAddr, ttl: u8) {
        let Some(spec) = self.sources.spec(source).cloned() else { return };
        let Some(key) = spec.key else {
            // The configuration refuses keyless manycast clients; never solicit without a key.
            self.manycast.counters.drop("no_key");
            return;
        };
        let nonce = NtpTimestamp::from_bits(self.rng.next_u64().max(1));
        let header = NtpHeader {
            leap: LeapIndicator::Unsynchronized,
            version: spec.assoc.version,
            mode: Mode::Client,
            stratum: 0,
            poll: spec.assoc.minpoll.as_log2(),
            precision: 0,
            root_delay: NtpShort::ZERO,
            root_dispersion: NtpShort::ZERO,
            reference_id: ReferenceId::from_bytes([0; 4]),
            reference_ts: NtpTimestamp::ZERO,
            origin_ts: NtpTimestamp::ZERO,
            receive_ts: NtpTimestamp::ZERO,
            transmit_ts: nonce,
        };
        let mut payload = header.to_bytes().to_vec();
        let name = spec.target.to_string();
        if !self.sign_request(key, None, &name, group, &mut payload) {
            return;
        }
        let sent = self.manycast.sent.entry(source).or_default();
        if sent.len() >= NONCES_KEPT {
            sent.pop_front();
        }
        sent.push_back(Sent { nonce, answered: Vec::new() });
        self.manycast.counters.solicitations += 1;
        push_bounded(
            &mut self.manycast_out,
            Transmit { local: Local::Manycast(source), remote: group, payload, ttl: Some(ttl) },
        );
    }

    /// A datagram on a manycast client's socket: an answer to a solicitation, maybe.
    pub(super) fn manycast_packet(
        &mut self,
        now: Instant,
        source: SourceId,
        remote: SocketAddr,
        bytes: &[u8],
    ) {
        self.manycast.counters.received += 1;
        match self.check_offer(source, remote, bytes) {
            Ok(orphan) => {
                if self.sources.handle_offer(now, source, remote, orphan, &mut *self.rng) {
                    self.manycast.counters.offers += 1;
                } else {
                    self.manycast.counters.drop("bad_source");
                }
                self.process(now);
            }
            Err(reason) => self.manycast.counters.drop(reason),
        }
    }

    /// The checks of the module docs; `Ok(orphan)` for an offer.
    fn check_offer(
        &mut self,
        source: SourceId,
        remote: SocketAddr,
        bytes: &[u8],
    ) -> Result<bool, &'static str> {
        let spec = self.sources.spec(source).ok_or("no_source")?;
        if !matches!(spec.kind, SourceKind::Manycast { .. }) {
            return Err("no_source");
        }
        let key = spec.key.ok_or("no_key")?;
        let repr = PacketRepr::parse(bytes).map_err(|e| e.counter_name())?;
        let h = repr.header;
        if h.mode != Mode::Server {
            return Err("wrong_mode");
        }
        let sent = self.manycast.sent.get(&source).ok_or("bogus_origin")?;
        let index = sent.iter().position(|s| s.nonce == h.origin_ts).ok_or("bogus_origin")?;
        if sent[index].answered.contains(&remote) {
            return Err("duplicate");
        }
        self.check_keyed_reply(key, bytes).map_err(|e| e.counter_name())?;
        if h.kiss_code().is_some() {
            return Err("kod");
        }
        if h.leap == LeapIndicator::Unsynchronized || h.stratum == 0 || h.stratum >= 16 {
            return Err("unsynchronized");
        }
        if self.listen.iter().any(|l| !l.ip().is_unspecified() && l.ip() == remote.ip()) {
            // This host's own manycast server: never a source of its own time.
            return Err("own_address");
        }
        if let Some(s) = self.manycast.sent.get_mut(&source).and_then(|s| s.get_mut(index)) {
            if s.answered.len() < ANSWERS_KEPT {
                s.answered.push(remote);
            }
        }
        Ok(h.reference_ts.is_zero())
    }

    /// Replaces the TTL ring of manycast solicitations (ntpd's `ttl`; a reload). Empty: keep
    /// the current one.
    pub fn set_ttl_ring(&mut self, ring: &[u8]) {
        self.sources.set_ttl_ring(ring);
    }

    /// The manycast client counters.
    pub fn manycast_counters(&self) -> &ManycastCounters {
        &self.manycast.counters
    }

    /// Forgets a removed manycast client's solicitations.
    pub(super) fn manycast_removed(&mut self, source: SourceId) {
        self.manycast.sent.remove(&source);
    }

    /// Server side: a datagram that arrived on a `manycastserver` group socket. Answers into
    /// `out` ([`MAX_REPLY_LEN`](crate::server::MAX_REPLY_LEN) octets: a reply and the longest
    /// MAC) only as the module docs say, returning its length; the driver sends it by unicast
    /// to `client` after [`Node::finish_reply`].
    pub fn respond_manycast(
        &mut self,
        now: Instant,
        rx: NtpTimestamp,
        client: IpAddr,
        request: &[u8],
        out: &mut [u8],
    ) -> Option<usize> {
        let rx = self.served_time(now, rx);
        self.responder.respond_manycast(now, rx, canonical(client), request, &self.system, out)
    }
}
