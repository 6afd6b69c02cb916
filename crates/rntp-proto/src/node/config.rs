//! What a [`Node`](super::Node) is built from: the typed meaning of a configuration, with no
//! file syntax left in it (rntp-config turns an ntp.conf into this).

use std::net::SocketAddr;

use super::AuthConfig;
use crate::discipline::DisciplineConfig;
use crate::select::SelectConfig;
use crate::server::ServerConfig;
use crate::source::{ResolvePolicy, SourceSpec};
use crate::steer::leap::LeapConfig;

/// Members a pool aims for without `maxsources` (as chrony's default).
pub const DEFAULT_MAXSOURCES: u8 = 4;
/// ntpd's `tos maxclock` default.
pub const DEFAULT_MAXCLOCK: usize = 10;

/// Whether the node's clock actions reach a real clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClockMode {
    /// Observe only: offsets are measured against a clock nobody touches; the corrections live
    /// in a virtual clock that is reported and served (as `chronyd -x`). No clock request is
    /// ever emitted, and no drift file is read or written.
    #[default]
    Observe,
    /// The node disciplines the clock it measures against: every correction is emitted as a
    /// [`ClockRequest`](super::ClockRequest) for the driver to execute.
    Control,
}

/// A configured source and where it was configured (`file:line`, `rntpctl add`), for messages.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfiguredSource {
    /// What to poll.
    pub spec: SourceSpec,
    /// Where it came from.
    pub origin: String,
}

/// Everything a node needs to know. `Default` is an empty, observe-only node.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeConfig {
    /// `server` and `pool` lines, in file order (duplicates are reported and collapse).
    pub sources: Vec<ConfiguredSource>,
    /// `tos maxclock`: the most associations at once, configured servers included.
    pub maxclock: usize,
    /// When names are re-resolved (`resolve floor/ceiling`).
    pub resolve: ResolvePolicy,
    /// Selection settings (`tos minclock/minsane`).
    pub select: SelectConfig,
    /// Discipline settings (`tinker`, `makestep`); its poll bounds are filled in from the
    /// sources by [`NodeConfig::discipline`].
    pub discipline: DisciplineConfig,
    /// Observe or control.
    pub clock: ClockMode,
    /// The drift file's frequency (ppm), read by the driver at start (control mode only).
    pub initial_freq_ppm: Option<f64>,
    /// Whether the driver keeps a drift file: the node then asks it to save the frequency
    /// hourly and at exit ([`ClockRequest::SaveDrift`](super::ClockRequest)).
    pub drift_file: bool,
    /// `restrict` and `discard`.
    pub server: ServerConfig,
    /// `interface listen` addresses (server mode; also this host's own addresses for loop
    /// checks).
    pub listen: Vec<SocketAddr>,
    /// `tos orphan N`.
    pub orphan: Option<u8>,
    /// The local clock's reading precision, log2 s (measured by the driver).
    pub precision_log2: i8,
    /// The symmetric keys (`keys`, `trustedkey`, `controlkey`), read by the driver.
    pub auth: AuthConfig,
    /// The TTLs manycast solicitations step through (`ttl`); empty: ntpd's default.
    pub ttl_ring: Vec<u8>,
    /// Leap seconds: the `leapfile` table (read by the driver) and `leapsmear`.
    pub leap: LeapConfig,
    /// Benchmark-only knobs of the steering (simulator comparisons).
    #[cfg(feature = "research")]
    pub research: Research,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            sources: Vec::new(),
            maxclock: DEFAULT_MAXCLOCK,
            resolve: ResolvePolicy::default(),
            select: SelectConfig::default(),
            discipline: DisciplineConfig::default(),
            clock: ClockMode::Observe,
            initial_freq_ppm: None,
            drift_file: false,
            server: ServerConfig::default(),
            listen: Vec::new(),
            orphan: None,
            precision_log2: -20,
            auth: AuthConfig::default(),
            ttl_ring: Vec::new(),
            leap: LeapConfig::default(),
            #[cfg(feature = "research")]
            research: Research::default(),
        }
    }
}

impl NodeConfig {
    /// The discipline as configured, with its poll bounds spanning every configured source
    /// (the lowest `minpoll` and highest `maxpoll`): the start-up hold follows the lowest, the
    /// poll suggestion stays within them.
    pub fn discipline(&self) -> DisciplineConfig {
        let mut d = self.discipline;
        if let Some(min) = self.sources.iter().map(|s| s.spec.assoc.minpoll).min() {
            d.minpoll = min;
        }
        if let Some(max) = self.sources.iter().map(|s| s.spec.assoc.maxpoll).max() {
            d.maxpoll = max;
        }
        d
    }
}

/// Steering variants that exist only to be measured against the production path (the
/// simulator's benchmark): what the discipline is fed and how estimates are combined.
#[cfg(feature = "research")]
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Research {
    /// What the discipline is fed.
    pub feed: crate::steer::Feed,
    /// How estimates are combined.
    pub combine: crate::steer::Combine,
}
