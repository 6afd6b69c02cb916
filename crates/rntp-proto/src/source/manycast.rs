//! Manycast clients (`manycastclient GROUP key N [ttl N]`): pools whose candidate addresses come
//! from the servers that answer a solicitation sent to a multicast group, not from DNS.
//!
//! # Solicitation
//! While a manycast client has fewer members than its target and no answer it holds is free,
//! the manager asks the driver for a [`SourceAction::Solicit`]: one client request to the group,
//! carrying the source's key. Solicitations step through the TTL ring (ntpd's `ttl` directive,
//! default [`DEFAULT_TTL_RING`], capped by the line's `ttl N`, default
//! [`DEFAULT_MANYCAST_TTL`]), one step per `2^minpoll` seconds: the expanding-ring search of
//! ntpd. Once the largest TTL has been tried the interval doubles up to `2^maxpoll`. The next
//! round starts at the TTL that last got an answer. At the target, solicitation stops; it
//! starts again (at once) when a member is retired and no held answer can replace it.
//!
//! # Answers
//! The node checks every answer (origin = a recent solicitation's nonce, the source's key,
//! a synchronized server) and hands the server's unicast address to
//! [`SourceManager::handle_offer`]. An answer is a candidate for [`MANYCAST_OFFER_SECS`]; the
//! pool rules then mobilize, probe, prune, retire (unreachable, unsynchronized, falseticker,
//! KoD) and avoid bad addresses exactly as for a `pool`.
//!
//! # Orphan servers
//! An ntpd (or rntpd) in orphan mode answers with leap 0 at its orphan stratum but a reference
//! timestamp of zero: it has never set its clock from a reference. ntpd's manycast client takes
//! such a server like any other. rntpd uses it, but last: an orphan's answer becomes a candidate
//! only [`MANYCAST_ORPHAN_WAIT_SECS`] after it arrived (synchronized servers answering the same
//! solicitation are mobilized first), and among held candidates synchronized ones always come
//! first, so an orphan fills a slot only when no synchronized server is free. (As a unicast
//! `server`, an orphan parent is used like any server, as chronyd, ntpdig and ntpd do.)
//! Selection still decides whose time is used.
//!
//! # Replacement budget
//! A pool's replacements are limited to [`POOL_REPLACE_BURST`](super::POOL_REPLACE_BURST) at
//! once, to spare public servers and DNS. A manycast group is a keyed set of servers the
//! administrator runs, and a replacement costs one multicast request: its bucket holds at least
//! as many replacements as the target ([`MANYCAST_REPLACE_BURST_MIN`] at the least), so losing
//! several members at once is repaired at once. Solicitations themselves are paced as above.

use std::net::SocketAddr;

use super::{
    usable_addr, SourceAction, SourceEvent, SourceId, SourceKind, SourceManager, Target,
    MAX_ANSWER_ADDRS,
};
use crate::rng::RngSource;
use crate::time::Instant;

/// How long a server's answer to a solicitation stays a candidate (s).
pub const MANYCAST_OFFER_SECS: f64 = 300.0;
/// ntpd's default `ttl` list: eight multiples of 32 starting at 31.
pub const DEFAULT_TTL_RING: [u8; 8] = [31, 63, 95, 127, 159, 191, 223, 255];
/// The largest TTL of a `manycastclient` line without `ttl N` (ntpd's default).
pub const DEFAULT_MANYCAST_TTL: u8 = 127;
/// How long an orphan server's answer waits before it may be mobilized (s): synchronized
/// servers answering the same solicitation (within a round trip) come first.
pub const MANYCAST_ORPHAN_WAIT_SECS: f64 = 2.0;
/// The smallest replacement bucket of a manycast client (see the module docs).
pub const MANYCAST_REPLACE_BURST_MIN: f64 = 2.0;
/// Shortest spacing of solicitations (s), whatever `minpoll` says.
const MIN_SOLICIT_INTERVAL: f64 = 0.25;

/// One server's answer.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Offer {
    remote: SocketAddr,
    until: Instant,
    orphan: bool,
    /// When it may be mobilized (orphans wait).
    usable_from: Instant,
    /// Its wait is over and the pools were filled for it.
    released: bool,
}

/// A manycast client's solicitation state.
#[derive(Debug, Clone)]
pub(super) struct ManycastState {
    offers: Vec<Offer>,
    /// When the next solicitation is due (`None`: none planned).
    pub(super) next: Option<Instant>,
    /// The next solicitation goes out even if the source is at its target (`rntpctl refresh`).
    forced: bool,
    /// Solicitations since the source was last at its target.
    round: u32,
    /// Index into the (capped) ring where a round starts: the TTL that last got an answer.
    start: usize,
    /// Ring index of the latest solicitation.
    last_index: usize,
    last_ttl: Option<u8>,
    last_at: Option<Instant>,
    solicitations: u64,
    offers_received: u64,
}

/// A read-only view of a manycast client.
#[derive(Debug, Clone, PartialEq)]
pub struct ManycastSnapshot {
    /// The servers that answered, until when each answer stands, and whether it was an orphan
    /// (zero reference time).
    pub offers: Vec<(SocketAddr, Instant, bool)>,
    /// Solicitations sent.
    pub solicitations: u64,
    /// Authenticated answers received.
    pub offers_received: u64,
    /// The next planned solicitation.
    pub next_solicit: Option<Instant>,
    /// The TTL of the latest solicitation.
    pub last_ttl: Option<u8>,
}

impl ManycastState {
    pub(super) fn new(now: Instant) -> Self {
        ManycastState {
            offers: Vec::new(),
            next: Some(now),
            forced: false,
            round: 0,
            start: 0,
            last_index: 0,
            last_ttl: None,
            last_at: None,
            solicitations: 0,
            offers_received: 0,
        }
    }

    /// Solicits at `at` (forced: even at the target) unless one is planned earlier.
    pub(super) fn plan(&mut self, at: Instant) {
        self.forced = true;
        self.next = Some(self.next.map_or(at, |n| n.min(at)));
    }

    pub(super) fn snapshot(&self) -> ManycastSnapshot {
        ManycastSnapshot {
            offers: self.offers.iter().map(|o| (o.remote, o.until, o.orphan)).collect(),
            solicitations: self.solicitations,
            offers_received: self.offers_received,
            next_solicit: self.next,
            last_ttl: self.last_ttl,
        }
    }
}

/// The TTLs a source steps through: the ring's values up to `cap`, or just `cap` if the ring
/// starts above it.
fn effective_ring(ring: &[u8], cap: u8) -> Vec<u8> {
    let capped: Vec<u8> = ring.iter().copied().filter(|t| *t <= cap).collect();
    if capped.is_empty() {
        vec![cap]
    } else {
        capped
    }
}

impl SourceManager {
    /// A server answered a manycast solicitation of `id` (the node has checked the nonce, the
    /// key and that the server is synchronized); `remote` is its unicast address and port,
    /// `orphan` that its reference time was zero. Returns whether the answer was taken as a
    /// candidate (not for an address that cannot be a server, or of the wrong family).
    pub fn handle_offer(
        &mut self,
        now: Instant,
        id: SourceId,
        remote: SocketAddr,
        orphan: bool,
        rng: &mut dyn RngSource,
    ) -> bool {
        let Some(source) = self.sources.get_mut(&id) else { return false };
        let family = source.spec.family;
        let Some(m) = source.manycast.as_mut() else { return false };
        if !usable_addr(remote.ip()) || !family.allows(remote.ip()) {
            return false;
        }
        m.offers_received += 1;
        // This TTL reached a server: the next round starts here.
        m.start = m.last_index;
        let until = now.add_secs_f64(MANYCAST_OFFER_SECS);
        m.offers.retain(|o| o.until > now);
        match m.offers.iter_mut().find(|o| o.remote == remote) {
            // Answered again: the answer stands longer; an orphan's wait is not restarted (it
            // would never end while solicitations come faster than the wait), and a server
            // that is now synchronized is usable at once.
            Some(o) => {
                o.until = until;
                o.orphan = orphan;
                if !orphan {
                    o.usable_from = o.usable_from.min(now);
                }
            }
            None => {
                if m.offers.len() >= MAX_ANSWER_ADDRS {
                    m.offers.remove(0);
                }
                let usable_from =
                    if orphan { now.add_secs_f64(MANYCAST_ORPHAN_WAIT_SECS) } else { now };
                m.offers.push(Offer { remote, until, orphan, usable_from, released: !orphan });
            }
        }
        self.events.push_back(SourceEvent::Offered { source: id, remote, orphan });
        self.fill_pools(now, rng);
        true
    }

    /// Sends the due solicitations (from `handle_timeout`).
    pub(super) fn solicit_due(&mut self, now: Instant) {
        let due: Vec<SourceId> = self
            .sources
            .iter()
            .filter(|(_, s)| s.manycast.as_ref().and_then(|m| m.next).is_some_and(|t| t <= now))
            .map(|(id, _)| *id)
            .collect();
        if due.is_empty() {
            return;
        }
        let targets = self.pool_targets();
        for id in due {
            let members = self.members.values().filter(|m| m.source == id).count();
            let target = targets.get(&id).copied().unwrap_or(0);
            // Out of replacements: an answer could not be used now; the next token asks again.
            let no_budget = self.rate_limited(id, target)
                && self
                    .sources
                    .get(&id)
                    .and_then(|s| s.pool.as_ref())
                    .is_some_and(|p| p.tokens < 1.0);
            let below = members < target && !no_budget;
            let ring = &self.ttl_ring;
            let Some(source) = self.sources.get_mut(&id) else { continue };
            let SourceKind::Manycast { ttl: cap, .. } = source.spec.kind else { continue };
            let Target::Addr(group) = source.spec.target else { continue };
            let (minpoll, maxpoll) = (source.spec.assoc.minpoll, source.spec.assoc.maxpoll);
            let port = source.spec.port;
            let Some(m) = source.manycast.as_mut() else { continue };
            if !below && !m.forced {
                // At the target: stop until a member is lost.
                m.next = None;
                m.round = 0;
                continue;
            }
            m.forced = false;
            let ring = effective_ring(ring, cap);
            let index = (m.start + m.round as usize).min(ring.len() - 1);
            let ttl = ring[index];
            m.round = m.round.saturating_add(1);
            m.last_index = index;
            m.last_ttl = Some(ttl);
            m.last_at = Some(now);
            m.solicitations += 1;
            let base = minpoll.as_secs_f64().max(MIN_SOLICIT_INTERVAL);
            let max = maxpoll.as_secs_f64().max(base);
            // One TTL step per base interval; past the ring's end, back off.
            let steps_left = ring.len().saturating_sub(m.start + m.round as usize);
            let interval = if steps_left > 0 {
                base
            } else {
                let over = (m.start + m.round as usize + 1).saturating_sub(ring.len());
                (base * 2f64.powi(over.min(30) as i32)).min(max)
            };
            m.next = Some(now.add_secs_f64(interval));
            let round = m.round;
            self.actions.push_back(SourceAction::Solicit {
                source: id,
                group: SocketAddr::new(group, port),
                ttl,
            });
            self.events.push_back(SourceEvent::Solicited {
                source: id,
                ttl,
                round,
                next_in: interval,
            });
        }
    }

    /// A manycast client below its target without a free candidate: solicit (now, or when the
    /// pacing allows).
    pub(super) fn want_solicit(&mut self, now: Instant, id: SourceId) {
        let Some(source) = self.sources.get_mut(&id) else { return };
        let base = source.spec.assoc.minpoll.as_secs_f64().max(MIN_SOLICIT_INTERVAL);
        let Some(m) = source.manycast.as_mut() else { return };
        if m.next.is_some() {
            return;
        }
        // A round after a fill starts with the first interval: a lost member is sought at once
        // (or one base interval after the last solicitation).
        let at = m.last_at.map_or(now, |t| t.add_secs_f64(base)).max(now);
        m.next = Some(at);
    }

    /// The held answers of a manycast client that a new member could use now (free, not
    /// blocked, of the allowed family); `None` for other sources.
    pub(super) fn manycast_candidates(
        &self,
        now: Instant,
        id: SourceId,
    ) -> Option<Vec<SocketAddr>> {
        let source = self.sources.get(&id)?;
        let m = source.manycast.as_ref()?;
        let free = m
            .offers
            .iter()
            .filter(|o| o.until > now && o.usable_from <= now)
            .filter(|o| source.spec.family.allows(o.remote.ip()))
            .filter(|o| self.addr_free(now, o.remote))
            .map(|o| o.remote)
            .collect();
        Some(free)
    }

    /// Puts servers with a real reference time before orphans (stable: the shuffled order
    /// stays within each group).
    pub(super) fn order_offers(&self, id: SourceId, candidates: &mut [SocketAddr]) {
        let Some(m) = self.sources.get(&id).and_then(|s| s.manycast.as_ref()) else { return };
        let orphan = |r: &SocketAddr| m.offers.iter().any(|o| o.remote == *r && o.orphan);
        candidates.sort_by_key(orphan);
    }

    /// The earliest moment a held orphan answer becomes usable, for the timer.
    pub(super) fn next_orphan_release(&self) -> Option<Instant> {
        self.sources
            .values()
            .filter_map(|s| s.manycast.as_ref())
            .flat_map(|m| m.offers.iter())
            .filter(|o| !o.released)
            .map(|o| o.usable_from)
            .min()
    }

    /// Orphan answers that became usable by `now` (`handle_timeout` fills pools for them).
    pub(super) fn orphans_released(&mut self, now: Instant) -> bool {
        let mut any = false;
        for m in self.sources.values_mut().filter_map(|s| s.manycast.as_mut()) {
            for o in &mut m.offers {
                if !o.released && o.usable_from <= now {
                    o.released = true;
                    any = true;
                }
            }
        }
        any
    }

    /// After a fill: a manycast client at its target stops soliciting and starts its next
    /// round from the first interval.
    pub(super) fn manycast_filled(&mut self, id: SourceId, at_target: bool) {
        if !at_target {
            return;
        }
        if let Some(m) = self.sources.get_mut(&id).and_then(|s| s.manycast.as_mut()) {
            m.round = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_is_capped() {
        assert_eq!(effective_ring(&DEFAULT_TTL_RING, 127), vec![31, 63, 95, 127]);
        assert_eq!(effective_ring(&DEFAULT_TTL_RING, 255), DEFAULT_TTL_RING.to_vec());
        assert_eq!(effective_ring(&DEFAULT_TTL_RING, 1), vec![1]);
        assert_eq!(effective_ring(&[1, 2, 4], 3), vec![1, 2]);
    }
}
