//! Read-only views of a [`Node`](super::Node) for control replies, metrics and tests. Built on
//! demand from the node's own state (nothing here is a second copy that could go stale).

use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::assoc::{AssocId, AssocSnapshot};
use crate::discipline::DisciplineState;
use crate::select::Verdict;
use crate::server::{ServerCounters, SystemState};
use crate::source::{ResolveError, SourceId, SourceSnapshot};
use crate::time::Instant;

/// What a row of the peers table stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerKind {
    /// The association of a `server` source.
    Server,
    /// An association a pool mobilized.
    PoolMember,
    /// The pool itself (ntpd shows it as `.POOL.`).
    Pool,
    /// A `manycastclient GROUP` itself (ntpd shows it as `.MCST.`); its members are
    /// [`PeerKind::PoolMember`] rows.
    Manycast,
    /// A `server NAME` with no association yet (resolving or failed).
    Unresolved,
}

impl PeerKind {
    /// A stable name for displays and JSON.
    pub fn name(self) -> &'static str {
        match self {
            PeerKind::Server => "server",
            PeerKind::PoolMember => "pool-member",
            PeerKind::Pool => "pool",
            PeerKind::Manycast => "manycastclient",
            PeerKind::Unresolved => "unresolved",
        }
    }
}

/// One row of the peers table.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerView {
    /// The association, for association rows.
    pub assoc: Option<AssocId>,
    /// The owning source.
    pub source: SourceId,
    /// The row's kind.
    pub kind: PeerKind,
    /// The configured name or address of the source.
    pub source_name: String,
    /// The association's state, for association rows.
    pub snapshot: Option<AssocSnapshot>,
    /// For pool and unresolved rows: a lookup is running or not yet done.
    pub resolving: bool,
    /// For pool and unresolved rows: the last lookup's error.
    pub last_error: Option<ResolveError>,
    /// The latest counted selection round's verdict.
    pub verdict: Option<Verdict>,
    /// Datagrams from this association's server that were not used, by reason.
    pub drops: BTreeMap<&'static str, u64>,
}

/// One source (`rntpctl sources`).
#[derive(Debug, Clone, PartialEq)]
pub struct SourceView {
    /// The source manager's view.
    pub snapshot: SourceSnapshot,
    /// Where it was configured.
    pub origin: String,
}

/// Counters of the client side, since start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientCounters {
    /// Requests handed to the driver.
    pub sent: u64,
    /// Of them, sends the driver reported failed.
    pub send_errors: u64,
    /// Datagrams received on association sockets.
    pub received: u64,
    /// Of them, those that became a sample or were an acted-on kiss-o'-death.
    pub accepted: u64,
    /// Kiss-o'-death replies that matched a request.
    pub kod_received: u64,
    /// Datagrams not used, by reason.
    pub dropped: BTreeMap<&'static str, u64>,
}

impl ClientCounters {
    pub(crate) fn drop(&mut self, reason: &'static str) {
        *self.dropped.entry(reason).or_default() += 1;
    }
}

/// How the node answers clients now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServingAs {
    /// Leap 3, stratum 16: no time to give.
    Unsynchronized,
    /// Synchronized to the system peer.
    Synchronized,
    /// `tos orphan`: serving its own time at the orphan stratum.
    Orphan,
}

impl ServingAs {
    /// A stable name for displays and JSON.
    pub fn name(self) -> &'static str {
        match self {
            ServingAs::Unsynchronized => "unsynchronized",
            ServingAs::Synchronized => "synchronized",
            ServingAs::Orphan => "orphan",
        }
    }
}

/// The node's overall state (`rntpctl status`).
#[derive(Debug, Clone, PartialEq)]
pub struct StatusView {
    /// Seconds since the node was created.
    pub uptime: f64,
    /// `"observe"` or `"control"`.
    pub mode: &'static str,
    /// Configured sources.
    pub sources: usize,
    /// Associations.
    pub associations: usize,
    /// Of them, reachable ones (reach ≠ 0, not stopped).
    pub reachable: usize,
    /// Client-side counters.
    pub counters: ClientCounters,
    /// Server-side counters and rate-table occupancy, when serving.
    pub server: Option<ServerView>,
    /// The `interface listen` addresses.
    pub listening: Vec<SocketAddr>,
    /// How clients are answered.
    pub serving_as: ServingAs,
    /// What clients are told.
    pub system: SystemState,
    /// The discipline's state.
    pub clock_state: DisciplineState,
    /// Frequency correction (ppm).
    pub frequency_ppm: f64,
    /// Correction to add to the system clock to get the node's time (observe mode), s.
    pub correction: f64,
    /// The last offset handed to the discipline, s.
    pub last_offset: Option<f64>,
    /// The system peer.
    pub system_peer: Option<AssocId>,
    /// Combined offset of the latest selection, s.
    pub system_offset: Option<f64>,
    /// System jitter of the latest selection, s.
    pub system_jitter: Option<f64>,
    /// Mobilizations, moves and retirements since start, by `event:reason`.
    pub history_totals: BTreeMap<String, u64>,
    /// The last error the driver reported for a clock request, and when.
    pub clock_error: Option<(Instant, String)>,
}

/// Server-mode counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerView {
    /// The responder's counters.
    pub counters: ServerCounters,
    /// Rate-limit table slots in use.
    pub rate_table_used: usize,
    /// Rate-limit table size.
    pub rate_table_capacity: usize,
}

/// What happened to an association, for `rntpctl history`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistoryKind {
    /// Started.
    Mobilized,
    /// Stopped.
    Retired,
    /// Re-pointed to another address.
    Moved,
    /// An address of an answer was not used (it is this rntpd's own; no association).
    Skipped,
}

impl HistoryKind {
    /// A stable name.
    pub fn name(&self) -> &'static str {
        match self {
            HistoryKind::Mobilized => "mobilized",
            HistoryKind::Retired => "retired",
            HistoryKind::Moved => "moved",
            HistoryKind::Skipped => "skipped",
        }
    }
}

/// One mobilization, move or retirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// When (the node's monotonic time; the driver converts to wall time for people).
    pub at: Instant,
    /// Owning source.
    pub source: SourceId,
    /// Its name (kept even after the source is removed).
    pub source_name: String,
    /// The association (0 for [`HistoryKind::Skipped`]: none was made).
    pub assoc: AssocId,
    /// What happened.
    pub kind: HistoryKind,
    /// The address (the new one for a move).
    pub address: SocketAddr,
    /// The old address of a move.
    pub old_address: Option<SocketAddr>,
    /// Why (`pool-fill`, `unreachable`, `kod-deny`, `address-changed`, ...).
    pub reason: &'static str,
}
