//! Shared, read-mostly state for the control socket: per-association snapshots and counters.
//!
//! Association tasks publish a fresh snapshot after every step through a `watch` channel; the
//! control server only reads them, so a slow control client never delays the protocol.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use rntp_control::{Counters, PeerInfo};
use rntp_proto::assoc::{AssocId, AssocSnapshot, AssocState};
use rntp_proto::time::Instant;
use rntp_proto::wire::KissCode;
use tokio::sync::watch;

/// A snapshot and the monotonic time it was taken.
pub type Published = (Instant, AssocSnapshot);

/// One association as the control server sees it.
#[derive(Debug)]
pub struct AssocEntry {
    /// The configured source (hostname or literal) that owns the association.
    pub source: String,
    /// The owning source's id.
    pub source_id: u32,
    /// `"server"` or `"pool-member"`.
    pub kind: &'static str,
    /// Latest snapshot.
    pub snapshot: watch::Receiver<Published>,
}

/// Everything the control server can report.
#[derive(Debug, Default)]
pub struct Registry {
    assocs: Mutex<BTreeMap<AssocId, AssocEntry>>,
    /// Packet counters.
    pub counters: PacketCounters,
}

impl Registry {
    /// Registers an association.
    pub fn insert(&self, id: AssocId, entry: AssocEntry) {
        lock(&self.assocs).insert(id, entry);
    }

    /// Forgets an association (retired).
    pub fn remove(&self, id: AssocId) {
        lock(&self.assocs).remove(&id);
    }

    /// The peers table at `now`.
    pub fn peers(&self, now: Instant) -> Vec<PeerInfo> {
        lock(&self.assocs)
            .values()
            .map(|e| {
                let (taken, snap) = e.snapshot.borrow().clone();
                peer_info(e, &snap, now.secs_since(taken).max(0.0))
            })
            .collect()
    }

    /// The latest snapshot of one association.
    pub fn snapshot(&self, id: AssocId) -> Option<AssocSnapshot> {
        lock(&self.assocs).get(&id).map(|e| e.snapshot.borrow().1.clone())
    }

    /// The latest snapshot of every association, with when it was taken.
    pub fn snapshots(&self) -> Vec<Published> {
        lock(&self.assocs).values().map(|e| e.snapshot.borrow().clone()).collect()
    }

    /// (associations, reachable ones).
    pub fn counts(&self) -> (usize, usize) {
        let map = lock(&self.assocs);
        let reachable = map
            .values()
            .filter(|e| {
                let snap = &e.snapshot.borrow().1;
                snap.reach != 0 && !matches!(snap.state, AssocState::Demobilized(_))
            })
            .count();
        (map.len(), reachable)
    }
}

/// Locks a mutex, recovering from poisoning: the data are counters and snapshots that stay
/// consistent field by field, so a panicked writer cannot leave them half-updated in a way
/// that matters for reporting.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn kod_name(code: KissCode) -> String {
    match code {
        KissCode::Deny => "DENY".into(),
        KissCode::Rstr => "RSTR".into(),
        KissCode::Rate => "RATE".into(),
        KissCode::Other(id) => id.to_string(),
    }
}

fn peer_info(entry: &AssocEntry, s: &AssocSnapshot, age: f64) -> PeerInfo {
    let est = s.estimate;
    PeerInfo {
        id: Some(s.id.0),
        source_id: entry.source_id,
        kind: entry.kind.to_string(),
        source: entry.source.clone(),
        address: s.remote.to_string(),
        state: s.state.name().to_string(),
        last_error: None,
        stratum: s.server.map(|v| v.stratum),
        refid: s.server.map(|v| v.reference_id.display_for_stratum(v.stratum)),
        reach: s.reach,
        poll: s.poll.as_secs_f64(),
        when: s.since_last_reply.map(|w| w + age),
        offset: est.map(|e| e.offset),
        delay: est.map(|e| e.delay),
        dispersion: est.map(|e| e.dispersion),
        jitter: est.map(|e| e.jitter),
        last_kod: s.last_kod.map(kod_name),
        demobilized: match s.state {
            AssocState::Demobilized(r) => Some(r.name().to_string()),
            _ => None,
        },
        verdict: None,
        tally: " ".to_string(),
    }
}

/// Counters updated from association tasks.
#[derive(Debug, Default)]
pub struct PacketCounters {
    sent: AtomicU64,
    received: AtomicU64,
    accepted: AtomicU64,
    kod_received: AtomicU64,
    send_errors: AtomicU64,
    dropped: Mutex<BTreeMap<&'static str, u64>>,
}

impl PacketCounters {
    /// A request was sent.
    pub fn sent(&self) {
        self.sent.fetch_add(1, Ordering::Relaxed);
    }
    /// A datagram was received.
    pub fn received(&self) {
        self.received.fetch_add(1, Ordering::Relaxed);
    }
    /// A reply became a sample (or a KoD was acted on).
    pub fn accepted(&self) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
    }
    /// A KoD arrived that matched our request.
    pub fn kod(&self) {
        self.kod_received.fetch_add(1, Ordering::Relaxed);
    }
    /// Sending failed.
    pub fn send_error(&self) {
        self.send_errors.fetch_add(1, Ordering::Relaxed);
    }
    /// A datagram was dropped for `reason`.
    pub fn dropped(&self, reason: &'static str) {
        *lock(&self.dropped).entry(reason).or_default() += 1;
    }

    /// A copy for the control protocol.
    pub fn to_control(&self) -> Counters {
        Counters {
            sent: self.sent.load(Ordering::Relaxed),
            received: self.received.load(Ordering::Relaxed),
            accepted: self.accepted.load(Ordering::Relaxed),
            dropped: lock(&self.dropped).iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            kod_received: self.kod_received.load(Ordering::Relaxed),
            send_errors: self.send_errors.load(Ordering::Relaxed),
        }
    }
}
