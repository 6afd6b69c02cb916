//! The typed configuration as the core's [`NodeConfig`]: the one place where ntp.conf meaning
//! becomes node settings, used by the daemon and by the simulator alike (so both build the
//! same node from the same file).

use std::net::{IpAddr, SocketAddr};

use rntp_proto::assoc::AssocConfig;
use rntp_proto::auth::{KeyId, KeyStore};
use rntp_proto::discipline::{DisciplineConfig, MakeStep};
use rntp_proto::node::{ClockMode, ConfiguredSource, NodeConfig, DEFAULT_MAXSOURCES};
use rntp_proto::select::SelectConfig;
use rntp_proto::server::{RateLimit, RestrictFlags, RestrictRule, ServerConfig};
use rntp_proto::source::{
    AddrFamily, ResolvePolicy, SourceKind, SourceSpec, Target, DEFAULT_MANYCAST_TTL,
};
use rntp_proto::steer::leap::LeapConfig;
use rntp_proto::time::PollInterval;

use crate::config::{AddressFamily, AuthConfig, Config, RestrictTarget, SourceConfig};
use crate::host::Host;
use crate::keys::KeyFile;

/// The node settings `config` describes, in `clock` mode. The driver adds what only it can
/// know: the clock's precision, the drift file's frequency and the keys from the key file
/// ([`NodeConfig::precision_log2`], [`NodeConfig::initial_freq_ppm`], [`NodeConfig::auth`]:
/// see [`auth_config`]).
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
        ttl_ring: config.ttl.clone(),
        // The table itself is read by the driver (`leapfile::load_leapfile`).
        leap: LeapConfig { table: None, smear: config.leapsmear_secs.map(f64::from) },
        ..NodeConfig::default()
    }
}

/// The node's keys: the key file's keys (`None`: no `keys` line), trusted as `trustedkey`
/// says, and the control key.
pub fn auth_config(auth: &AuthConfig, file: Option<KeyFile>) -> rntp_proto::node::AuthConfig {
    let mut keys: KeyStore = file.map(KeyFile::into_store).unwrap_or_default();
    let ids: Vec<KeyId> = keys.keys().map(|k| k.id()).collect();
    for (first, last) in &auth.trusted {
        if first == last {
            // A single id is trusted even before its key exists (a warning names it).
            keys.trust(KeyId(*first));
        } else {
            for id in ids.iter().filter(|id| (*first..=*last).contains(&id.0)) {
                keys.trust(*id);
            }
        }
    }
    rntp_proto::node::AuthConfig { keys, control_key: auth.control_key.map(KeyId) }
}

/// Key ids that source lines use (`key N`) but that the key store cannot authenticate with
/// (not in the key file, or not trusted), with the line of each: the daemon refuses to start
/// with them (and a reload keeps the old keys). (A `controlkey` that cannot be used only
/// makes `:config` refused: see [`control_key_unusable`].)
pub fn unusable_keys(config: &Config, keys: &KeyStore) -> Vec<(String, u32)> {
    config
        .sources
        .iter()
        .filter_map(|s| {
            let key = s.options.key?;
            Some((format!("{}:{}", s.origin.file.display(), s.origin.line), key))
        })
        .filter(|(_, key)| keys.trusted_key(KeyId(*key)).is_err())
        .collect()
}

/// The `controlkey`, if it is set but the key store cannot authenticate with it.
pub fn control_key_unusable(config: &Config, keys: &KeyStore) -> Option<u32> {
    config.auth.control_key.filter(|k| keys.trusted_key(KeyId(*k)).is_err())
}

/// Whether the configuration cannot work without its key file: a source with `key N`, or a
/// `manycastserver` (which answers keyed solicitations only). Otherwise a key file that cannot
/// be read is a warning (as in ntpd), and only `:config` is refused.
pub fn needs_keys(config: &Config) -> bool {
    config.sources.iter().any(|s| s.options.key.is_some()) || !config.manycast_servers.is_empty()
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
            crate::config::SourceKind::Manycast => SourceKind::Manycast {
                maxsources: o.maxsources.unwrap_or(DEFAULT_MAXSOURCES),
                ttl: o.ttl.unwrap_or(DEFAULT_MANYCAST_TTL),
            },
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
        key: o.key.map(KeyId),
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
            (f.notrust, RestrictFlags::NOTRUST),
            (f.nomodify, RestrictFlags::NOMODIFY),
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
