//! The typed configuration that phase 2 produces.
//!
//! Plain data with defaults and no behaviour: the daemon decides what to do
//! with it (collapsing duplicate sources, resolving names, ...). Nothing here
//! validates; construction through the parser is what guarantees the ranges
//! documented on each field.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use crate::host::Host;

/// Everything rntpd takes from an ntp.conf.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Config {
    /// Every `server` and `pool` line, in file order (includes spliced in).
    /// Duplicates are kept: the daemon collapses them and warns.
    pub sources: Vec<SourceConfig>,
    /// Clock-selection tuning from `tos` lines.
    pub tos: TosConfig,
    /// Where to keep the frequency estimate, from `driftfile`.
    pub driftfile: Option<PathBuf>,
    /// DNS resolvers from `resolver` lines (rntpd extension); empty means
    /// "use the system resolver configuration".
    pub resolvers: Vec<SocketAddr>,
    /// Re-resolution bounds from `resolve` lines (rntpd extension).
    pub resolve: ResolveConfig,
    /// Addresses to serve time on, from `interface listen` lines, in file
    /// order without repeats. Empty means "serve nowhere": rntpd never opens
    /// a server socket nobody asked for.
    pub listen: Vec<ListenConfig>,
    /// Access-control rules from `restrict` lines, in file order. Repeats
    /// are kept; the daemon decides how lines for the same target combine.
    pub restrict: Vec<RestrictConfig>,
    /// Rate-limit settings from `discard` lines.
    pub discard: DiscardConfig,
    /// Clock-discipline thresholds from `tinker` lines; each `None` means
    /// "the daemon's default".
    pub tinker: TinkerConfig,
    /// chrony-style initial stepping from `makestep` (rntpd extension);
    /// `None` when the file has no `makestep` line.
    pub makestep: Option<MakeStepConfig>,
    /// The leap second table (IANA `leap-seconds.list`) from `leapfile`.
    pub leapfile: Option<PathBuf>,
    /// `leapsmear SECONDS` (rntpd extension; ntpd's `leapsmearinterval` is read as the
    /// same): serve time smeared over this many seconds before a leap second instead of
    /// announcing it. 60..=172800.
    pub leapsmear_secs: Option<u32>,
    /// `maxslewrate PPM` (chrony's directive, an rntpd extension in ntp.conf): the fastest rate
    /// at which an offset is slewed. 1..=83333; `None`: the default, 83 333 ppm.
    pub maxslewrate_ppm: Option<u32>,
    /// Statistics files from `statsdir`, `statistics` and `filegen`.
    pub stats: StatsConfig,
    /// The Prometheus/OpenMetrics endpoint from `metrics` (rntpd extension);
    /// `None`: off.
    pub metrics: Option<MetricsConfig>,
    /// Directories of `*.sources` files from `sourcedir` lines (rntpd
    /// extension, as chrony's), in file order. [`crate::load_file`] reads
    /// them and appends their sources to [`Config::sources`];
    /// [`crate::parse_str`] only records them.
    pub sourcedirs: Vec<SourceDirConfig>,
    /// Where to log instead of standard error, from `logfile`; `None`
    /// means standard error (the journal under systemd).
    pub logfile: Option<PathBuf>,
    /// Symmetric keys: `keys`, `trustedkey`, `controlkey`, `requestkey`.
    pub auth: AuthConfig,
    /// `manycastserver` groups to answer solicitations on.
    pub manycast_servers: Vec<ManycastServerConfig>,
    /// `ttl` values: the TTLs manycast solicitations step through, increasing; empty: the
    /// daemon's default (ntpd's 31, 63, ... 255).
    pub ttl: Vec<u8>,
}

/// The symmetric-key directives.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthConfig {
    /// `keys FILE`: the key file (ntp.keys(5) or chrony syntax), read by the daemon.
    pub keys: Option<KeysFileConfig>,
    /// `trustedkey`: the trusted key ids, as inclusive ranges (a single id is `(n, n)`), in
    /// file order.
    pub trusted: Vec<(u32, u32)>,
    /// `controlkey N`: the key `ntpq :config` requests must be signed with.
    pub control_key: Option<u32>,
    /// `requestkey N`: accepted for ntpd compatibility; rntpd answers no ntpdc (mode 7)
    /// requests, so it is not used.
    pub request_key: Option<u32>,
}

impl AuthConfig {
    /// Whether `trustedkey` lists `id`.
    pub fn is_trusted(&self, id: u32) -> bool {
        self.trusted.iter().any(|(lo, hi)| (*lo..=*hi).contains(&id))
    }
}

/// `keys FILE`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeysFileConfig {
    /// The file, as written (relative paths are relative to the daemon's working directory,
    /// as in ntpd).
    pub path: PathBuf,
    /// Where the line was written.
    pub origin: Origin,
}

/// `manycastserver GROUP`: answer keyed solicitations sent to this group.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ManycastServerConfig {
    /// The multicast group (224.0.0.0/4 or ff00::/8).
    pub group: IpAddr,
    /// The UDP port solicitations arrive on (`port N`, an rntpd extension; default 123).
    pub port: u16,
    /// Where the line was written.
    pub origin: Origin,
}

/// Which statistics file set (`peerstats`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StatsKind {
    /// ntpd's `peerstats`: one line per sample of each association.
    Peerstats,
    /// ntpd's `loopstats`: one line per clock update.
    Loopstats,
    /// ntpd's `sysstats`: server counters, hourly.
    Sysstats,
    /// rntpd's `sourcestats`: DNS lookups and pool events (rntpd extension).
    Sourcestats,
}

impl StatsKind {
    /// Every kind, in file-name order.
    pub const ALL: [StatsKind; 4] =
        [StatsKind::Peerstats, StatsKind::Loopstats, StatsKind::Sysstats, StatsKind::Sourcestats];

    /// The file set's name (`peerstats`, ...).
    pub fn name(self) -> &'static str {
        match self {
            StatsKind::Peerstats => "peerstats",
            StatsKind::Loopstats => "loopstats",
            StatsKind::Sysstats => "sysstats",
            StatsKind::Sourcestats => "sourcestats",
        }
    }

    /// From its name.
    pub fn from_name(name: &str) -> Option<StatsKind> {
        StatsKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// One statistics file set (`filegen NAME ...`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FileGenConfig {
    /// Which.
    pub kind: StatsKind,
    /// Written at all (`statistics NAME` or `filegen NAME enable`).
    pub enabled: bool,
    /// File name prefix inside the statistics directory (`file NAME`; default the kind's
    /// name). Files are `PREFIX.YYYYMMDD`, one per UTC day.
    pub file: String,
    /// Keep `PREFIX` as a symbolic link to the current day's file (`link`, the default, or
    /// `nolink`).
    pub link: bool,
}

/// Statistics files.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StatsConfig {
    /// `statsdir`: where the files go; [`StatsConfig::DEFAULT_DIR`] when not given.
    pub dir: PathBuf,
    /// One entry per [`StatsKind`], in [`StatsKind::ALL`] order.
    pub files: Vec<FileGenConfig>,
}

impl StatsConfig {
    /// The statistics directory when the file has no `statsdir` line.
    pub const DEFAULT_DIR: &'static str = "/var/log/rntpd";

    /// The file sets that are enabled.
    pub fn enabled(&self) -> impl Iterator<Item = &FileGenConfig> {
        self.files.iter().filter(|f| f.enabled)
    }

    /// The settings of one file set.
    pub fn file(&self, kind: StatsKind) -> Option<&FileGenConfig> {
        self.files.iter().find(|f| f.kind == kind)
    }

    pub(crate) fn file_mut(&mut self, kind: StatsKind) -> Option<&mut FileGenConfig> {
        self.files.iter_mut().find(|f| f.kind == kind)
    }
}

impl Default for StatsConfig {
    fn default() -> Self {
        StatsConfig {
            dir: PathBuf::from(Self::DEFAULT_DIR),
            files: StatsKind::ALL
                .into_iter()
                .map(|kind| FileGenConfig {
                    kind,
                    enabled: false,
                    file: kind.name().to_string(),
                    link: true,
                })
                .collect(),
        }
    }
}

/// The metrics endpoint (`metrics ADDRESS [port N]`, rntpd extension): Prometheus/OpenMetrics
/// text over HTTP at `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MetricsConfig {
    /// Where to listen: a loopback address and TCP port.
    pub addr: SocketAddr,
    /// Where the line was written.
    pub origin: Origin,
}

impl MetricsConfig {
    /// The TCP port when the line has no `port` option (ntpd-rs's exporter's port).
    pub const DEFAULT_PORT: u16 = 9975;
}

/// One `sourcedir DIR` line: a directory whose `*.sources` files hold
/// `server`, `pool` and `peer` lines (rntpd extension, as chrony's).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SourceDirConfig {
    /// The directory; a relative path is taken relative to the directory of
    /// the file with the `sourcedir` line (as `includefile`).
    pub path: PathBuf,
    /// Where the line was written.
    pub origin: Origin,
}

/// Clock-discipline thresholds from `tinker step|panic|stepout` lines.
///
/// Durations are whole microseconds so that the configuration stays `Eq`;
/// the `*_secs` helpers give them in seconds. `None` means the value was
/// not given and the daemon uses its default (the `DEFAULT_*` constants).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TinkerConfig {
    /// `tinker step`: offsets larger than this are stepped rather than
    /// slewed; `Some(0)` means never step. 0..=[`TinkerConfig::MAX_THRESHOLD_US`].
    pub step_us: Option<u64>,
    /// `tinker panic`: offsets larger than this make the daemon give up
    /// rather than set the clock; `Some(0)` means no limit.
    /// 0..=[`TinkerConfig::MAX_THRESHOLD_US`].
    pub panic_us: Option<u64>,
    /// `tinker stepout`: how long an offset must persist above `step` before
    /// it is stepped.
    /// [`TinkerConfig::MIN_STEPOUT_US`]..=[`TinkerConfig::MAX_STEPOUT_US`].
    pub stepout_us: Option<u64>,
}

impl TinkerConfig {
    /// Default `step` when not given: 0.128 s (as ntpd).
    pub const DEFAULT_STEP_US: u64 = 128_000;
    /// Default `panic` when not given: 1000 s (as ntpd).
    pub const DEFAULT_PANIC_US: u64 = 1_000_000_000;
    /// Default `stepout` when not given: 300 s (as ntpd 4.2.8 and NTPsec).
    pub const DEFAULT_STEPOUT_US: u64 = 300_000_000;
    /// Largest accepted `step` and `panic` (and `makestep` threshold):
    /// 1000000 s, about 11.6 days. Use 0 to disable the limit instead.
    pub const MAX_THRESHOLD_US: u64 = 1_000_000 * 1_000_000;
    /// Smallest accepted `stepout`: 1 s.
    pub const MIN_STEPOUT_US: u64 = 1_000_000;
    /// Largest accepted `stepout`: 3600 s.
    pub const MAX_STEPOUT_US: u64 = 3_600 * 1_000_000;

    /// `step` in seconds, if given.
    pub fn step_secs(&self) -> Option<f64> {
        self.step_us.map(us_to_secs)
    }

    /// `panic` in seconds, if given.
    pub fn panic_secs(&self) -> Option<f64> {
        self.panic_us.map(us_to_secs)
    }

    /// `stepout` in seconds, if given.
    pub fn stepout_secs(&self) -> Option<f64> {
        self.stepout_us.map(us_to_secs)
    }
}

/// `makestep THRESHOLD LIMIT` (rntpd extension, as in chrony): step the
/// clock when the offset exceeds `threshold_us` during the first `limit`
/// clock updates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MakeStepConfig {
    /// Offset above which the clock is stepped, in microseconds,
    /// 0..=[`TinkerConfig::MAX_THRESHOLD_US`].
    pub threshold_us: u64,
    /// How many clock updates after start stepping is allowed for;
    /// `None` (written `-1`) means always.
    pub limit: Option<u32>,
}

impl MakeStepConfig {
    /// `threshold` in seconds.
    pub fn threshold_secs(&self) -> f64 {
        us_to_secs(self.threshold_us)
    }
}

/// Microseconds to seconds (exact for every value the parser accepts,
/// which are far below 2^53).
fn us_to_secs(us: u64) -> f64 {
    us as f64 / 1e6
}

/// One address to serve time on (`interface listen ADDR [port N]`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ListenConfig {
    /// The local address to bind; `0.0.0.0` or `::` for the wildcards
    /// (`interface listen all|wildcard|ipv4|ipv6`).
    pub addr: IpAddr,
    /// UDP port, 1..=65535; default [`ListenConfig::DEFAULT_PORT`] (`port N`
    /// is an rntpd extension).
    pub port: u16,
    /// Where the line was written.
    pub origin: Origin,
}

impl ListenConfig {
    /// The NTP port served when the line has no `port` option.
    pub const DEFAULT_PORT: u16 = 123;
}

/// One `restrict` line.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RestrictConfig {
    /// The clients the line applies to.
    pub target: RestrictTarget,
    /// What is restricted for them.
    pub flags: RestrictFlagsConfig,
    /// Where the line was written.
    pub origin: Origin,
}

/// The clients a `restrict` line applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RestrictTarget {
    /// `restrict default`: every client of either family that no more
    /// specific line matches.
    Default,
    /// `restrict -4 default`: IPv4 clients that no more specific line matches.
    DefaultV4,
    /// `restrict -6 default`: IPv6 clients that no more specific line matches.
    DefaultV6,
    /// `restrict ADDR [mask MASK]`: one network.
    Net {
        /// The network address, with the bits outside the prefix cleared.
        addr: IpAddr,
        /// Leading one bits of the mask: 0..=32 for IPv4, 0..=128 for IPv6;
        /// the full width (a single host) without `mask`.
        prefix_len: u8,
    },
}

/// The `restrict` flags rntpd acts on. Every flag is off by default; a line
/// with no flags lifts all restrictions for its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RestrictFlagsConfig {
    /// `ignore`: drop every packet from these clients.
    pub ignore: bool,
    /// `noserve`: do not serve time (with `kod`, answer a `DENY` kiss).
    pub noserve: bool,
    /// `noquery`: refuse ntpq/ntpdc-style queries (mode 6 and 7).
    pub noquery: bool,
    /// `kod`: send a kiss-o'-death where a request would be dropped.
    pub kod: bool,
    /// `limited`: apply the `discard` rate limit.
    pub limited: bool,
    /// `notrust`: serve only requests authenticated with a trusted key.
    pub notrust: bool,
    /// `nomodify`: refuse run-time configuration (`ntpq :config`).
    pub nomodify: bool,
}

/// Rate-limit settings for `restrict ... limited` clients (`discard`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DiscardConfig {
    /// `discard average`: log2 of the minimum average interval between a
    /// client's requests, in seconds, 0..=[`DiscardConfig::MAX_AVERAGE_LOG2`].
    pub average_log2: u8,
    /// `discard minimum`: the minimum interval between two requests of a
    /// client, in seconds, 0..=255.
    pub minimum_secs: u8,
}

impl DiscardConfig {
    /// Default `average`: 3, i.e. 8 s (as ntpd).
    pub const DEFAULT_AVERAGE_LOG2: u8 = 3;
    /// Default `minimum`: 2 s (as ntpd).
    pub const DEFAULT_MINIMUM_SECS: u8 = 2;
    /// Largest accepted `average`: 16, i.e. about 18 hours.
    pub const MAX_AVERAGE_LOG2: u8 = 16;
}

impl Default for DiscardConfig {
    fn default() -> Self {
        Self { average_log2: Self::DEFAULT_AVERAGE_LOG2, minimum_secs: Self::DEFAULT_MINIMUM_SECS }
    }
}

/// When names are re-resolved: the DNS TTL, clamped to `[floor, ceiling]` seconds
/// (`resolve floor N ceiling N`, an rntpd extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResolveConfig {
    /// Shortest interval between re-resolutions of a working name (1..=604800 s).
    pub floor: u32,
    /// Longest interval (not below `floor`, at most 604800 s).
    pub ceiling: u32,
}

impl ResolveConfig {
    /// Default floor: one hour, so a name costs at most 24 queries a day.
    pub const DEFAULT_FLOOR: u32 = 3_600;
    /// Default ceiling: one day, as the ntpd maintainers proposed in 2010.
    pub const DEFAULT_CEILING: u32 = 86_400;
    /// Largest accepted value: one week.
    pub const MAX: u32 = 604_800;
}

impl Default for ResolveConfig {
    fn default() -> Self {
        Self { floor: Self::DEFAULT_FLOOR, ceiling: Self::DEFAULT_CEILING }
    }
}

/// Whether a source line names one server, a pool of them, or a manycast group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceKind {
    /// `server`: one association with the (first) address of the host.
    Server,
    /// `pool`: several associations with the addresses the name resolves to.
    Pool,
    /// `manycastclient`: several associations with the servers that answer solicitations
    /// sent to a multicast group.
    Manycast,
}

/// One `server` or `pool` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceConfig {
    /// `server` or `pool`.
    pub kind: SourceKind,
    /// The address or name, never resolved by this crate.
    pub host: Host,
    /// UDP port, 1..=65535; default [`SourceConfig::DEFAULT_PORT`].
    pub port: u16,
    /// The options given on the line.
    pub options: SourceOptions,
    /// Where the line was written.
    pub origin: Origin,
}

impl SourceConfig {
    /// The NTP port used when the line has no `port` option.
    pub const DEFAULT_PORT: u16 = 123;
}

/// Options of a `server`/`pool` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceOptions {
    /// Send a burst of packets while the source is unreachable.
    pub iburst: bool,
    /// Send a burst of packets at each poll while reachable.
    pub burst: bool,
    /// Prefer this source when otherwise equal.
    pub prefer: bool,
    /// Poll the source but never select it.
    pub noselect: bool,
    /// log2 of the minimum poll interval in seconds, in
    /// [`Self::MIN_POLL`]..=[`Self::MAX_POLL`], never above `maxpoll`.
    pub minpoll: i8,
    /// log2 of the maximum poll interval in seconds, same range.
    pub maxpoll: i8,
    /// NTP version to send, 1..=4.
    pub version: u8,
    /// For pools, how many servers to use at most (1..=64); `None` lets the
    /// daemon decide. Always `None` for servers.
    pub maxsources: Option<u8>,
    /// Address families the name may resolve to (`-4`/`-6` before the host).
    pub family: AddressFamily,
    /// `key N`: the symmetric key every request is signed with and every reply must carry
    /// (1..=4294967295).
    pub key: Option<u32>,
    /// `ttl N`: for `manycastclient`, the largest TTL of a solicitation (1..=255); `None`
    /// lets the daemon decide (127, as ntpd).
    pub ttl: Option<u8>,
}

/// Which address families a source may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AddressFamily {
    /// IPv4 and IPv6 (no flag).
    #[default]
    Any,
    /// IPv4 only (`-4`, `--ipv4`).
    V4,
    /// IPv6 only (`-6`, `--ipv6`).
    V6,
}

impl SourceOptions {
    /// Smallest accepted poll exponent (0.25 s; an rntpd extension below 0).
    pub const MIN_POLL: i8 = -2;
    /// Largest accepted poll exponent (36.4 h).
    pub const MAX_POLL: i8 = 17;
    /// Default `minpoll` (64 s).
    pub const DEFAULT_MINPOLL: i8 = 6;
    /// Default `maxpoll` (1024 s).
    pub const DEFAULT_MAXPOLL: i8 = 10;
    /// Default NTP version.
    pub const DEFAULT_VERSION: u8 = 4;
    /// Largest accepted `maxsources`.
    pub const MAX_MAXSOURCES: u8 = 64;
}

impl Default for SourceOptions {
    fn default() -> Self {
        Self {
            iburst: false,
            burst: false,
            prefer: false,
            noselect: false,
            minpoll: Self::DEFAULT_MINPOLL,
            maxpoll: Self::DEFAULT_MAXPOLL,
            version: Self::DEFAULT_VERSION,
            maxsources: None,
            family: AddressFamily::Any,
            key: None,
            ttl: None,
        }
    }
}

/// Where a directive was written, for the daemon's own messages.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    /// The file (the top-level file or a resolved includefile path).
    pub file: PathBuf,
    /// 1-based line number.
    pub line: u32,
}

/// Clock-selection settings from `tos` lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TosConfig {
    /// Minimum number of survivors the cluster algorithm keeps (1..=255).
    pub minclock: u8,
    /// Maximum number of candidate associations (1..=255), not below
    /// `minclock` or `minsane`.
    pub maxclock: u8,
    /// Minimum number of truechimers needed to discipline the clock
    /// (1..=255).
    pub minsane: u8,
    /// Orphan-mode stratum (1..=15), or `None` for no orphan mode.
    pub orphan: Option<u8>,
}

impl TosConfig {
    /// Default `minclock`.
    pub const DEFAULT_MINCLOCK: u8 = 3;
    /// Default `maxclock`.
    pub const DEFAULT_MAXCLOCK: u8 = 10;
    /// Default `minsane`.
    pub const DEFAULT_MINSANE: u8 = 1;
}

impl Default for TosConfig {
    fn default() -> Self {
        Self {
            minclock: Self::DEFAULT_MINCLOCK,
            maxclock: Self::DEFAULT_MAXCLOCK,
            minsane: Self::DEFAULT_MINSANE,
            orphan: None,
        }
    }
}
