//! What the node records for statistics files and metrics: one [`StatsRecord`] per peer sample
//! and per clock update (ntpd's `peerstats` and `loopstats` lines, drained with
//! [`Node::poll_stats`]), and per-source DNS and pool totals ([`SourceTotals`]).
//!
//! The records carry values, not text: the driver formats them (ntpd's file formats are the
//! driver's business, as is the wall clock that stamps each line). Nothing is queued until the
//! driver asks for records with [`Node::enable_stats`], and the queue is bounded like every
//! other driver-facing queue.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use super::{push_bounded, Node};
use crate::assoc::AssocId;
use crate::source::{ResolveError, SourceEvent, SourceId};
use crate::time::Instant;

/// One statistics record, in the order it happened.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StatsRecord {
    /// A sample of an association passed its filter (ntpd's `peerstats` line).
    Peer {
        /// When (the node's monotonic time).
        at: Instant,
        /// The association.
        assoc: AssocId,
        /// Its server.
        remote: SocketAddr,
        /// The ntpd peer status word (as `ntpq -c as` shows it).
        status: u16,
        /// Filter offset (s).
        offset: f64,
        /// Filter delay (s).
        delay: f64,
        /// Peer dispersion (s).
        dispersion: f64,
        /// Peer jitter (s).
        jitter: f64,
    },
    /// The discipline updated the clock (ntpd's `loopstats` line).
    Loop {
        /// When.
        at: Instant,
        /// The offset handed to the discipline (s).
        offset: f64,
        /// Frequency correction (ppm).
        freq_ppm: f64,
        /// Clock jitter (s).
        jitter: f64,
        /// Frequency wander (ppm).
        wander_ppm: f64,
        /// Time constant: log2 of the poll interval the discipline suggests.
        tc: i8,
    },
}

/// DNS and pool totals of one source since start (or since it was added).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceTotals {
    /// Failed lookups by cause ([`resolve_error_label`]).
    pub dns_failures: BTreeMap<&'static str, u64>,
    /// Associations started, by reason (`configured`, `pool-fill`, `replacement`).
    pub mobilized: BTreeMap<&'static str, u64>,
    /// Associations stopped, by reason (`unreachable`, `falseticker`, `kod-deny`, ...).
    pub retired: BTreeMap<&'static str, u64>,
}

/// The node's statistics state.
#[derive(Debug, Default)]
pub(super) struct Monitor {
    enabled: bool,
    records: std::collections::VecDeque<StatsRecord>,
    totals: BTreeMap<SourceId, SourceTotals>,
}

impl Monitor {
    /// Counts a source event into the totals.
    pub(super) fn source_event(&mut self, event: &SourceEvent) {
        match event {
            SourceEvent::ResolveFailed { source, error, .. } => {
                let t = self.totals.entry(*source).or_default();
                *t.dns_failures.entry(resolve_error_label(error)).or_default() += 1;
            }
            SourceEvent::Mobilized { source, reason, .. } => {
                let t = self.totals.entry(*source).or_default();
                *t.mobilized.entry(reason.name()).or_default() += 1;
            }
            SourceEvent::Retired { source, reason, .. } => {
                let t = self.totals.entry(*source).or_default();
                *t.retired.entry(reason.name()).or_default() += 1;
            }
            _ => {}
        }
    }

    /// Forgets a removed source's totals.
    pub(super) fn source_removed(&mut self, source: SourceId) {
        self.totals.remove(&source);
    }

    pub(super) fn wants_records(&self) -> bool {
        self.enabled
    }

    pub(super) fn push(&mut self, record: StatsRecord) {
        if self.enabled {
            push_bounded(&mut self.records, record);
        }
    }
}

/// A stable label for a lookup failure's cause, for counters and metrics.
pub fn resolve_error_label(error: &ResolveError) -> &'static str {
    match error {
        ResolveError::NxDomain => "nxdomain",
        ResolveError::NoRecords => "nodata",
        ResolveError::NoUsableAddress => "no_usable_address",
        ResolveError::ServFail => "servfail",
        ResolveError::Refused => "refused",
        ResolveError::Timeout => "timeout",
        ResolveError::NoNameServer => "no_nameserver",
        ResolveError::ConnectionRefused => "connection_refused",
        ResolveError::Other(_) => "other",
    }
}

impl Node {
    /// Starts (or stops) queueing [`StatsRecord`]s for [`Node::poll_stats`]; off by default,
    /// so a driver that writes no statistics files pays nothing.
    pub fn enable_stats(&mut self, enabled: bool) {
        self.monitor.enabled = enabled;
        if !enabled {
            self.monitor.records.clear();
        }
    }

    /// The next statistics record (after [`Node::enable_stats`]).
    pub fn poll_stats(&mut self) -> Option<StatsRecord> {
        self.monitor.records.pop_front()
    }

    /// DNS and pool totals of a source.
    pub fn source_totals(&self, source: SourceId) -> Option<&SourceTotals> {
        self.monitor.totals.get(&source)
    }

    /// Records a sample of `assoc` for `peerstats` (after the steering saw it).
    pub(super) fn record_peer_stats(&mut self, now: Instant, assoc: AssocId) {
        if !self.monitor.wants_records() {
            return;
        }
        let Some(slot) = self.assocs.get(&assoc) else { return };
        let Some(e) = slot.assoc.estimate(now) else { return };
        let record = StatsRecord::Peer {
            at: now,
            assoc,
            remote: slot.assoc.remote(),
            status: super::mode6::status_word(self, now, assoc),
            offset: e.offset,
            delay: e.delay,
            dispersion: e.dispersion,
            jitter: e.jitter,
        };
        self.monitor.push(record);
    }

    /// Records a clock update for `loopstats`.
    pub(super) fn record_loop_stats(&mut self, now: Instant) {
        if !self.monitor.wants_records() {
            return;
        }
        let discipline = self.steering.discipline();
        let record = StatsRecord::Loop {
            at: now,
            offset: self.steering.last_offset().unwrap_or(0.0),
            freq_ppm: self.steering.frequency_ppm(),
            jitter: discipline.jitter(),
            wander_ppm: discipline.frequency_error_ppm(),
            tc: discipline.suggested_poll().as_log2(),
        };
        self.monitor.push(record);
    }
}
