//! The typed configuration as the core's [`NodeConfig`]: the one place where ntp.conf meaning
//! becomes node settings, used by the daemon and by the simulator alike (so both build the
//! same node from the same file).

use std::net::{IpAddr, SocketAddr};

use rntp_proto::assoc::AssocConfig;
use rntp_proto::discipline::{DisciplineConfig, MakeStep};
use rntp_proto::node::{ClockMode, ConfiguredSource, NodeConfig, DEFAULT_MAXSOURCES};
use rntp_proto::select::SelectConfig;
use rntp_proto::server::{RateLimit, RestrictFlags, RestrictRule, ServerConfig};
use rntp_proto::source::{AddrFamily, ResolvePolicy, SourceKind, SourceSpec, Target};
use rntp_proto::steer::leap::LeapConfig;
use rntp_proto::time::PollInterval;

use crate::config::{AddressFamily, Config, RestrictTarget, SourceConfig};
use crate::host::Host;

/// The node settings `config` describes, in `clock` mode. The driver adds what only it can
/// know: the clock's precision and the drift file's frequency
/// ([`NodeConfig::precision_log2`], [`NodeConfig::initial_freq_ppm`]).
pub fn node_config(config: &Config, clock: ClockMode) -> NodeConfig {
    NodeConfig {
        sources: config.sources.iter().map(configured_source).collect(),
        maxclock: usize::from(config.tos.maxclock),
        resolve: ResolvePolicy {
            floor: f64::from(config.resolve.floor),
            ceiling: f64::from(config.resolve.ceiling),
            ..ResolvePolicy::default()
        },
        select: SelectConfig {
            minclock: usize::from(config.tos.minclock),
            minsane: usize::from(config.tos.minsane),
            ..SelectConfig::default()
        },
        discipline: discipline_config(config),
        clock,
        drift_file: config.driftfile.is_some(),
        server: server_config(config),
        listen: config.listen.iter().map(|l| SocketAddr::new(l.addr, l.port)).collect(),
        orphan: config.tos.orphan,
        // The table itself is read by the driver (`leapfile::load_leapfile`).
        leap: LeapConfig { table: None, smear: config.leapsmear_secs.map(f64::from) },
        ..NodeConfig::default()
    }
}

/// One `server`/`pool` line as a source, with `file:line` as its origin.
pub fn configured_source(source: &SourceConfig) -> ConfiguredSource {
    ConfiguredSource {
        spec: source_spec(source),
        origin: format!("{}:{}", source.origin.file.display(), source.origin.line),
    }
}

/// One `server`/`pool` line as the source manager's spec.
pub fn source_spec(source: &SourceConfig) -> SourceSpec {
    let o = &source.options;
    SourceSpec {
        kind: match source.kind {
            crate::config::SourceKind::Server => SourceKind::Server,
            crate::config::SourceKind::Pool => {
                SourceKind::Pool { maxsources: o.maxsources.unwrap_or(DEFAULT_MAXSOURCES) }
            }
        },
        target: match &source.host {
            Host::Ip(ip) => Target::Addr(*ip),
            Host::Name(name) => Target::Name(name.to_string()),
        },
        port: source.port,
        assoc: AssocConfig {
            minpoll: PollInterval::from_log2(o.minpoll),
            maxpoll: PollInterval::from_log2(o.maxpoll),
            iburst: o.iburst,
            burst: o.burst,
            version: o.version,
        },
        family: match o.family {
            AddressFamily::Any => AddrFamily::Any,
            AddressFamily::V4 => AddrFamily::V4,
            AddressFamily::V6 => AddrFamily::V6,
        },
        prefer: o.prefer,
        noselect: o.noselect,
    }
}

/// `tinker step/panic/stepout`, `makestep` and `maxslewrate`; the poll bounds come from the sources
/// ([`NodeConfig::discipline`]).
fn discipline_config(config: &Config) -> DisciplineConfig {
    let defaults = DisciplineConfig::default();
    let t = &config.tinker;
    DisciplineConfig {
        step_threshold: t.step_secs().unwrap_or(defaults.step_threshold),
        panic_threshold: t.panic_secs().unwrap_or(defaults.panic_threshold),
        stepout: t.stepout_secs().unwrap_or(defaults.stepout),
        makestep: config.makestep.map(|m| MakeStep {
            threshold: m.threshold_secs(),
            limit: m.limit.unwrap_or(u32::MAX),
        }),
        max_slew_ppm: config.maxslewrate_ppm.map_or(defaults.max_slew_ppm, f64::from),
        ..defaults
    }
}

/// The `restrict` and `discard` lines as the responder's settings.
pub fn server_config(config: &Config) -> ServerConfig {
    let mut server = ServerConfig {
        rate: RateLimit {
            average_log2: config.discard.average_log2,
            minimum_secs: config.discard.minimum_secs,
            ..RateLimit::default()
        },
        ..ServerConfig::default()
    };
    for r in &config.restrict {
        let f = &r.flags;
        let mut flags = RestrictFlags::NONE;
        for (on, flag) in [
            (f.ignore, RestrictFlags::IGNORE),
            (f.noserve, RestrictFlags::NOSERVE),
            (f.noquery, RestrictFlags::NOQUERY),
            (f.kod, RestrictFlags::KOD),
            (f.limited, RestrictFlags::LIMITED),
        ] {
            if on {
                flags = flags.union(flag);
            }
        }
        match r.target {
            RestrictTarget::Default => server.default_flags = flags,
            // A /0 rule is less specific than any other, so it acts as the family's default.
            RestrictTarget::DefaultV4 => {
                server.restrict.push(RestrictRule::prefix(IpAddr::from([0u8; 4]), 0, flags))
            }
            RestrictTarget::DefaultV6 => {
                server.restrict.push(RestrictRule::prefix(IpAddr::from([0u8; 16]), 0, flags))
            }
            RestrictTarget::Net { addr, prefix_len } => {
                server.restrict.push(RestrictRule::prefix(addr, prefix_len, flags));
            }
        }
    }
    server
}
