//! A deterministic simulator for rntpd: virtual time, drifting clocks, NTP servers, lossy
//! jittery links and a scripted DNS, driving the daemon's own [`Node`] (quinn's `Pair` role).
//!
//! # What it does
//! One [`run`] plays a [`Scenario`] under a seed. Each simulated host runs a real
//! [`rntp_proto::node::Node`] built from a [`NodeConfig`] exactly as the daemon builds one
//! (sources, selection, discipline, server): names are answered by a [`ScriptedResolver`],
//! datagrams travel between addresses over [`LinkSpec`] paths, simulated NTP servers answer
//! with real 48-byte packets, and every clock request the node emits is executed on the host's
//! clock model. Host 0 is the client under test; a scenario may add a downstream host that
//! polls host 0's server (a chain: upstream servers → node → downstream node).
//!
//! Virtual time is the true time, in seconds. A host's wall clock is true time plus its natural
//! error (a frequency that wanders as a random walk) plus the corrections its node asked for,
//! as the host's kernel executes them ([`ClockModel`]): by default the Linux-faithful
//! `adjtimex` model ([`kernel::LinuxClock`]), whose `CLOCK_MONOTONIC` is also the node's `now`
//! (slewed with the clock, as the daemon's `CLOCK_BOOTTIME` is), or the core's idealized
//! [`rntp_proto::discipline::VirtualClock`] with true time as `now`.
//!
//! # What it does not do
//! No sockets, no threads, no real clocks (nothing here can change this machine's clock), no
//! packet reordering beyond what independent delays produce.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bench;
mod host;
pub mod kernel;

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use rntp_proto::assoc::{AssocEvent, AssocId, AssocSnapshot, AssocState, DemobilizeReason};
use rntp_proto::discipline::DisciplineConfig;
use rntp_proto::node::{
    ClockMode, ClockRequest, ConfiguredSource, Local, Node, NodeConfig, NodeEvent, Research,
};
use rntp_proto::rng::{RngSource, SplitMix64};
use rntp_proto::select::Verdict;
use rntp_proto::server::SystemState;
use rntp_proto::source::{
    AddrFamily, MobilizeReason, ResolveError, ResolvePolicy, Resolved, SourceEvent, SourceId,
    SourceKind, SourceSpec, Target,
};
use rntp_proto::steer::leap::LeapConfig;
use rntp_proto::time::{Instant, NtpDuration, NtpShort, NtpTimestamp, PollInterval};
use rntp_proto::wire::{LeapIndicator, Mode, NtpHeader, ReferenceId};

/// How the sim combines association estimates into the discipline's input (the core's
/// [`rntp_proto::steer::Combine`]).
pub use rntp_proto::steer::Combine as CombineMode;
/// What the discipline is fed (the core's [`rntp_proto::steer::Feed`]).
pub use rntp_proto::steer::Feed;

pub use host::ClockModel;
use host::HostClock;

/// Unix time of virtual time zero unless a scenario says otherwise (an arbitrary 2026 date).
pub const EPOCH_UNIX: i64 = 1_795_675_301;
/// Server processing time between receive and transmit timestamps (s).
const SERVER_PROCESSING: f64 = 5e-6;
/// The simulated clocks' reading precision (log2 s): about 120 ns.
const LOCAL_PRECISION_LOG2: i8 = -23;
/// Client sockets of host `h` use port `CLIENT_PORT_BASE + association id`.
const CLIENT_PORT_BASE: u32 = 10_000;
/// Consecutive falseticker rounds before a pool member is replaced: the node's value.
pub use rntp_proto::node::FALSETICKER_ROUNDS;
/// `tos maxclock` of the sim unless a scenario says otherwise.
pub const DEFAULT_MAXCLOCK: usize = 16;

/// A one-way network path model, the same in both directions except for `asymmetry`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkSpec {
    /// Fixed one-way delay (s).
    pub base: f64,
    /// Mean of the exponential queueing delay added independently to each direction (s).
    pub jitter_mean: f64,
    /// Extra delay on the client→server direction only (s): shifts offsets by −asymmetry/2.
    pub asymmetry: f64,
    /// Probability that a packet is lost, each direction independently.
    pub loss: f64,
}

impl LinkSpec {
    /// The benchmark's LAN: 1 ms + Exp(100 µs).
    pub const LAN: LinkSpec =
        LinkSpec { base: 1e-3, jitter_mean: 100e-6, asymmetry: 0.0, loss: 0.0 };
    /// The benchmark's WAN: 10 ms + Exp(1 ms).
    pub const WAN: LinkSpec =
        LinkSpec { base: 10e-3, jitter_mean: 1e-3, asymmetry: 0.0, loss: 0.0 };
}

/// A simulated NTP server.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerSpec {
    /// Constant error of its clock (s): nonzero makes a falseticker.
    pub offset: f64,
    /// At `.0` seconds its clock jumps by `.1` seconds.
    pub step: Option<(f64, f64)>,
    /// No replies between these times (s).
    pub outage: Option<(f64, f64)>,
    /// More outages: no replies in any of these `[from, to)` intervals (s).
    pub outages: Vec<(f64, f64)>,
    /// Leap indicator it announces.
    pub leap: LeapIndicator,
    /// Stratum it announces.
    pub stratum: u8,
    /// Path to it.
    pub link: LinkSpec,
}

impl ServerSpec {
    /// A good stratum-1 server behind `link`.
    pub fn good(link: LinkSpec) -> Self {
        ServerSpec {
            offset: 0.0,
            step: None,
            outage: None,
            outages: Vec::new(),
            leap: LeapIndicator::NoWarning,
            stratum: 1,
            link,
        }
    }

    fn clock_error(&self, t: f64) -> f64 {
        let stepped = self.step.map_or(0.0, |(at, by)| if t >= at { by } else { 0.0 });
        self.offset + stepped
    }

    /// Whether the server is out of service (answers nothing) at `t` seconds.
    pub fn down(&self, t: f64) -> bool {
        self.outage.iter().chain(&self.outages).any(|&(a, b)| t >= a && t < b)
    }
}

/// The client's oscillator and start-up state.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClientSpec {
    /// Natural frequency error (ppm, positive: the clock runs fast).
    pub freq_ppm: f64,
    /// Random-walk frequency wander: σ of the frequency change over 1 s (s/s per √s).
    pub wander: f64,
    /// True offset at t = 0 (s, server minus client: positive means the client is behind).
    pub initial_offset: f64,
    /// Drift file contents (ppm), if the client has one.
    pub drift_file_ppm: Option<f64>,
}

/// One scripted DNS answer.
#[derive(Debug, Clone, PartialEq)]
pub enum DnsAnswer {
    /// These addresses, valid for `ttl` seconds.
    Addrs {
        /// The addresses.
        addrs: Vec<IpAddr>,
        /// Time to live (s).
        ttl: f64,
    },
    /// A failure.
    Fail(ResolveError),
}

/// A scripted resolver: per name, answers that take effect from a given time. A minimal hook
/// for the node's lookups; names without a script fail with NXDOMAIN.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScriptedResolver {
    /// Lookup latency (s).
    pub latency: f64,
    /// Name → (from time in s, answer), in increasing time order.
    pub script: BTreeMap<String, Vec<(f64, DnsAnswer)>>,
    /// Queries answered so far, per name.
    pub queries: BTreeMap<String, u32>,
}

/// A `pool` source: the scenario's servers are reached only through this name.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolSpec {
    /// The pool's DNS name (answered by the scenario's [`ScriptedResolver`]).
    pub name: String,
    /// `maxsources`.
    pub maxsources: u8,
}

impl ScriptedResolver {
    /// Adds an answer for `name` valid from `from` seconds on.
    pub fn answer(&mut self, name: &str, from: f64, answer: DnsAnswer) {
        let list = self.script.entry(name.to_ascii_lowercase()).or_default();
        list.push((from, answer));
        list.sort_by(|a, b| a.0.total_cmp(&b.0));
    }

    /// A pool.ntp.org-like name: from 0 to `until` seconds, a new answer every `ttl` seconds,
    /// each `pick` addresses drawn at random (seeded, without repetition) from `addrs`, valid
    /// for `ttl` seconds.
    pub fn rotating(
        &mut self,
        name: &str,
        addrs: &[IpAddr],
        pick: usize,
        ttl: f64,
        until: f64,
        seed: u64,
    ) {
        let mut rng = SplitMix64::new(seed);
        let list = self.script.entry(name.to_ascii_lowercase()).or_default();
        let mut from = 0.0;
        while from < until {
            let mut all = addrs.to_vec();
            for i in 0..pick.min(all.len()) {
                let j = i + (rng.next_u64() % (all.len() - i) as u64) as usize;
                all.swap(i, j);
            }
            all.truncate(pick);
            list.push((from, DnsAnswer::Addrs { addrs: all, ttl }));
            from += ttl;
        }
        list.sort_by(|a, b| a.0.total_cmp(&b.0));
    }

    /// The answer to a lookup of `name` at `now`, as `SourceManager::handle_resolved` wants it.
    pub fn resolve(&mut self, now: Instant, name: &str) -> Result<Resolved, ResolveError> {
        let key = name.trim_end_matches('.').to_ascii_lowercase();
        *self.queries.entry(key.clone()).or_default() += 1;
        let t = now.secs_since(Instant::ZERO);
        let answer = self
            .script
            .get(&key)
            .and_then(|list| list.iter().rev().find(|(from, _)| *from <= t))
            .map(|(_, a)| a.clone());
        match answer {
            Some(DnsAnswer::Addrs { addrs, ttl }) => {
                Ok(Resolved { addrs, valid_until: now.add_secs_f64(ttl) })
            }
            Some(DnsAnswer::Fail(e)) => Err(e),
            None => Err(ResolveError::NxDomain),
        }
    }
}

/// Everything one run needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// Name for tables and files.
    pub name: String,
    /// Simulated time (s).
    pub duration: f64,
    /// Servers; server `i` is `s{i}.sim` at 10.0.0.(i+1).
    pub servers: Vec<ServerSpec>,
    /// Client clock.
    pub client: ClientSpec,
    /// Association poll bounds (log2 s).
    pub minpoll: i8,
    /// Association poll bounds (log2 s).
    pub maxpoll: i8,
    /// iburst on every server.
    pub iburst: bool,
    /// Discipline settings.
    pub discipline: DisciplineConfig,
    /// Combining strategy.
    pub combine: CombineMode,
    /// DNS: when `None`, every server name resolves at once to its address with a 1 h TTL.
    pub dns: Option<ScriptedResolver>,
    /// Start of the settled period for statistics (s).
    pub settle: f64,
    /// What the discipline is fed.
    pub feed: Feed,
    /// When set, the sources are this one pool instead of one `server s{i}.sim` per server;
    /// without a scripted answer for its name, it lists every server with a 300 s TTL.
    pub pool: Option<PoolSpec>,
    /// `tos maxclock`.
    pub maxclock: usize,
    /// Host 0 serves time on [`node_listen_addr`]`(0)` (`interface listen`).
    pub serve: bool,
    /// A downstream host with this clock polls host 0 (`server 10.1.0.1 iburst`, the
    /// scenario's poll bounds) over [`Scenario::downstream_link`]; implies `serve`.
    pub downstream: Option<ClientSpec>,
    /// The path between host 0 and the downstream host.
    pub downstream_link: LinkSpec,
    /// The kernel model of every host's clock.
    pub clock: ClockModel,
    /// Unix time (UTC) at virtual time zero: servers answer with it plus true time; host
    /// clocks start there plus their initial error.
    pub start_unix: i64,
    /// Host 0's leap-second settings (`leapfile` table, `leapsmear`).
    pub leap: LeapConfig,
}

impl Scenario {
    /// Three good servers behind `link`, default discipline, 1 day, settling after 1 h.
    pub fn three_servers(name: &str, link: LinkSpec, client: ClientSpec) -> Self {
        Scenario {
            name: name.to_string(),
            duration: 86_400.0,
            servers: vec![ServerSpec::good(link); 3],
            client,
            minpoll: 6,
            maxpoll: 10,
            iburst: true,
            discipline: DisciplineConfig::default(),
            combine: CombineMode::SelectOrMedian,
            dns: None,
            settle: 3_600.0,
            feed: Feed::Samples,
            pool: None,
            maxclock: DEFAULT_MAXCLOCK,
            serve: false,
            downstream: None,
            downstream_link: LinkSpec::LAN,
            clock: ClockModel::default(),
            start_unix: EPOCH_UNIX,
            leap: LeapConfig::default(),
        }
    }

    /// `pool NAME maxsources N iburst` (minpoll 6, maxpoll 10) over `servers`, all behind
    /// `name`; 1 day, settling after 1 h.
    pub fn pool(
        name: &str,
        pool_name: &str,
        maxsources: u8,
        servers: Vec<ServerSpec>,
        client: ClientSpec,
    ) -> Self {
        Scenario {
            servers,
            pool: Some(PoolSpec { name: pool_name.to_string(), maxsources }),
            ..Scenario::three_servers(name, LinkSpec::LAN, client)
        }
    }
}

/// Address of server `i`.
pub fn server_addr(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, (i / 250) as u8, (i % 250) as u8 + 1))
}

/// Address of simulated host `h` (host 0 is the client under test).
pub fn node_addr(h: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 1, (h / 250) as u8, (h % 250) as u8 + 1))
}

/// Where host `h` serves time when it does.
pub fn node_listen_addr(h: usize) -> SocketAddr {
    SocketAddr::new(node_addr(h), 123)
}

/// Summary statistics of one run.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Stats {
    /// RMS of the true offset after `settle` (s).
    pub rms: f64,
    /// Largest |true offset| after `settle` (s).
    pub max: f64,
    /// First time from which |true offset| stays below 1 ms to the end (s); `None` if never.
    pub time_to_1ms: Option<f64>,
    /// |residual frequency error| at the end (ppm): natural error minus correction.
    pub final_freq_error_ppm: f64,
    /// First time |true offset| was below 1 ms (s); `None` if never.
    pub first_below_1ms: Option<f64>,
    /// Largest |true offset| after `first_below_1ms` (s): above 1 ms means it went back.
    pub max_after_below_1ms: f64,
    /// Largest correction the node's requests made within one second (s), after `settle`:
    /// |change of (clock error − natural error)| over each whole second of true time.
    pub max_correction_per_s: f64,
    /// RMS over the whole seconds after `settle` of the clock's frequency error (ppm): its
    /// error's change over the second, natural drift and corrections together.
    pub rms_freq_error_ppm: f64,
}

/// What happened in one run.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunResult {
    /// (time s, true offset s): every second for the first 10 minutes, then every 16 s.
    pub series: Vec<(f64, f64)>,
    /// Summary.
    pub stats: Stats,
    /// Steps taken.
    pub steps: u32,
    /// Panic verdicts from the discipline.
    pub panics: u32,
    /// Clock updates (discipline calls).
    pub updates: u32,
    /// Updates whose combined offset came from `select` (the rest from the fallback).
    pub select_updates: u32,
    /// Per server: selection rounds that called it a falseticker.
    pub falseticker_rounds: Vec<u32>,
    /// Per server: rounds where it was the system peer or a survivor.
    pub survivor_rounds: Vec<u32>,
    /// Leap indicator of the last combined estimate.
    pub last_leap: Option<LeapIndicator>,
    /// The discipline's poll suggestion at the end (log2 s).
    pub suggested_poll: i8,
    /// Frequency correction at the end (ppm).
    pub final_freq_ppm: f64,
    /// DNS queries made.
    pub dns_queries: u32,
    /// The run stopped early: the core kept asking to be woken at the same instant.
    pub stalled: bool,
    /// Every [`SourceEvent`] (mobilizations, retirements, lookups...) with its time (s).
    pub source_events: Vec<(f64, SourceEvent)>,
    /// When each DNS lookup was started (s).
    pub lookups: Vec<f64>,
    /// Host 0's client requests: (time s, association, server address), in order.
    pub requests: Vec<(f64, AssocId, SocketAddr)>,
    /// Reachable (`true`) and Unreachable (`false`) association events (s).
    pub reach_events: Vec<(f64, AssocId, bool)>,
    /// Pool scenarios only: the pool's state at every series point.
    pub pool_samples: Vec<PoolSample>,
    /// Host 0's associations at every series point: (time s, id, poll log2 s, state).
    pub polls: Vec<(f64, AssocId, i8, AssocState)>,
    /// Host 0's client-side drop counters at the end, by reason.
    pub drops: BTreeMap<&'static str, u64>,
    /// What host 0 tells its clients at the end.
    pub system: Option<SystemState>,
    /// The downstream host, when the scenario has one.
    pub downstream: Option<DownstreamResult>,
    /// Entries in host 0's steering correction log at the end.
    pub correction_log_len: usize,
    /// Host 0's system-peer changes after the first selection (to another peer or to none).
    pub peer_changes: u32,
    /// Requests host 0 sent (its counter).
    pub requests_sent: u64,
    /// Times host 0's timer fired (one `handle_timeout` per distinct deadline reached).
    pub timer_wakeups: u64,
    /// Those of `timer_wakeups` that ended a slew.
    pub slew_wakeups: u64,
    /// Host 0's kernel at the end (the Linux model only).
    pub kernel: Option<KernelEnd>,
}

/// The Linux model's leap-second state at the end of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelEnd {
    /// `time_state`.
    pub time_state: kernel::TimeState,
    /// `time_status` bits.
    pub status: i32,
    /// TAI − UTC as the kernel keeps it: +1 for every inserted second.
    pub tai: i32,
}

/// What the downstream host of a chain saw.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DownstreamResult {
    /// (time s, true offset s) at the same points as [`RunResult::series`].
    pub series: Vec<(f64, f64)>,
    /// Its association with host 0 at the end.
    pub upstream: Option<AssocSnapshot>,
    /// What it would tell its own clients at the end.
    pub system: Option<SystemState>,
}

/// A pool's state at one instant, seen from the sim.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PoolSample {
    /// Time (s).
    pub t: f64,
    /// Members (associations of the pool).
    pub members: usize,
    /// Members whose association is in the Reachable state.
    pub reachable: usize,
    /// Reachable members whose server is really up now (ground truth).
    pub serving: usize,
    /// The pool's target.
    pub target: usize,
    /// Replacements available now (`None` during the first fill).
    pub tokens: Option<u32>,
    /// A lookup is running or planned within 60 s.
    pub waiting_dns: bool,
}

impl RunResult {
    /// Mobilizations for `reason`: (time s, address).
    pub fn mobilized(&self, reason: MobilizeReason) -> Vec<(f64, SocketAddr)> {
        self.source_events
            .iter()
            .filter_map(|(t, e)| match e {
                SourceEvent::Mobilized { remote, reason: r, .. } if *r == reason => {
                    Some((*t, *remote))
                }
                _ => None,
            })
            .collect()
    }

    /// Retirements for `reason`: (time s, address).
    pub fn retired(&self, reason: DemobilizeReason) -> Vec<(f64, SocketAddr)> {
        self.source_events
            .iter()
            .filter_map(|(t, e)| match e {
                SourceEvent::Retired { remote, reason: r, .. } if *r == reason => {
                    Some((*t, *remote))
                }
                _ => None,
            })
            .collect()
    }
}

/// A datagram or a lookup in flight.
#[derive(Debug)]
enum Flight {
    /// A datagram between two addresses.
    Packet { from: SocketAddr, to: SocketAddr, bytes: Vec<u8> },
    /// A lookup of host `host`, answered when it lands.
    Dns { host: usize, source: SourceId, name: String },
}

/// A standard normal variate (Box–Muller).
pub(crate) fn gauss(rng: &mut SplitMix64) -> f64 {
    let u1 = rng.next_f64().max(1e-300);
    let u2 = rng.next_f64();
    (-2.0 * u1.ln()).sqrt() * (2.0 * core::f64::consts::PI * u2).cos()
}

fn exp(rng: &mut SplitMix64, mean: f64) -> f64 {
    -mean * (1.0 - rng.next_f64()).ln()
}

pub(crate) fn wall(epoch: i64, t_true: f64) -> NtpTimestamp {
    NtpTimestamp::from_unix(epoch, 0).add_duration(NtpDuration::from_secs_f64(t_true))
}

pub(crate) fn secs(t: f64) -> Instant {
    // Rounded, so that an Instant converted to seconds and back is the same Instant (exact for
    // any time below 2^53 ns, 104 days).
    Instant::from_nanos((t.max(0.0) * 1e9).round() as u64)
}

/// One simulated machine running a node.
struct Host {
    node: Node,
    addr: IpAddr,
    listen: Option<SocketAddr>,
    clock: HostClock,
    /// Counted selection rounds already looked at (for the verdict tallies).
    rounds_seen: u64,
}

/// The sources of a scenario's host 0, as the daemon would configure them.
fn scenario_sources(sc: &Scenario) -> Vec<ConfiguredSource> {
    let assoc = rntp_proto::assoc::AssocConfig {
        minpoll: PollInterval::from_log2(sc.minpoll),
        maxpoll: PollInterval::from_log2(sc.maxpoll),
        iburst: sc.iburst,
        ..rntp_proto::assoc::AssocConfig::default()
    };
    let spec = |kind, target| SourceSpec {
        kind,
        target,
        port: 123,
        assoc,
        family: AddrFamily::Any,
        prefer: false,
        noselect: false,
        key: None,
    };
    let mut sources = Vec::new();
    if let Some(pool) = &sc.pool {
        sources.push(ConfiguredSource {
            spec: spec(
                SourceKind::Pool { maxsources: pool.maxsources },
                Target::Name(pool.name.clone()),
            ),
            origin: "scenario:pool".to_string(),
        });
    } else {
        for i in 0..sc.servers.len() {
            sources.push(ConfiguredSource {
                spec: spec(SourceKind::Server, Target::Name(format!("s{i}.sim"))),
                origin: format!("scenario:server {i}"),
            });
        }
    }
    sources
}

/// The node configuration of a simulated host: control mode (the host's clock is the one
/// being steered), the scenario's discipline and research knobs.
fn host_config(sc: &Scenario, client: &ClientSpec, sources: Vec<ConfiguredSource>) -> NodeConfig {
    let discipline = sc.discipline;
    NodeConfig {
        sources,
        maxclock: sc.maxclock,
        resolve: ResolvePolicy::default(),
        discipline,
        clock: ClockMode::Control,
        initial_freq_ppm: client.drift_file_ppm,
        precision_log2: LOCAL_PRECISION_LOG2,
        research: Research { feed: sc.feed, combine: sc.combine },
        ..NodeConfig::default()
    }
}

struct Sim<'a> {
    sc: &'a Scenario,
    /// Clock wander of every host.
    wander: SplitMix64,
    /// Separate stream for the network, so a change in the core's use of randomness does not
    /// reshuffle every delay.
    net: SplitMix64,
    now: f64,
    hosts: Vec<Host>,
    dns: ScriptedResolver,
    flights: Vec<(f64, u64, Flight)>,
    seq: u64,
    res: RunResult,
    probe: Probe,
}

/// Per-second measurements of host 0's clock after `settle`.
#[derive(Debug, Default)]
struct Probe {
    /// The next whole second to measure at.
    next: f64,
    /// (error, correction) at the previous measurement.
    last: Option<(f64, f64)>,
    max_correction: f64,
    freq_sq_sum: f64,
    count: u64,
}

impl Sim<'_> {
    fn push(&mut self, at: f64, flight: Flight) {
        self.seq += 1;
        self.flights.push((at, self.seq, flight));
    }

    /// Moves every clock to `t`, measuring host 0 at every whole second on the way.
    fn advance(&mut self, t: f64) {
        if t <= self.now {
            return;
        }
        while self.probe.next <= t {
            let p = self.probe.next;
            let (error, correction) = self.hosts[0].clock.error(p);
            if let Some((e0, c0)) = self.probe.last {
                self.probe.max_correction = self.probe.max_correction.max((correction - c0).abs());
                let freq = (error - e0) * 1e6;
                self.probe.freq_sq_sum += freq * freq;
                self.probe.count += 1;
            }
            self.probe.last = Some((error, correction));
            self.probe.next += 1.0;
        }
        for host in &mut self.hosts {
            host.clock.advance(t, &mut self.wander);
        }
        self.now = t;
    }

    /// Host `h`'s monotonic time now: the `now` its node is given.
    fn mono(&mut self, h: usize) -> Instant {
        let t = self.now;
        self.hosts[h].clock.mono(t)
    }

    fn server_index(&self, ip: IpAddr) -> Option<usize> {
        (0..self.sc.servers.len()).find(|&i| server_addr(i) == ip)
    }

    /// The path between two addresses: a server's own link, or the hosts' link.
    fn link(&self, a: IpAddr, b: IpAddr) -> LinkSpec {
        match self.server_index(a).or_else(|| self.server_index(b)) {
            Some(i) => self.sc.servers[i].link,
            None => self.sc.downstream_link,
        }
    }

    /// Puts a datagram on the wire (or loses it).
    fn send(&mut self, from: SocketAddr, to: SocketAddr, bytes: Vec<u8>, extra: f64) {
        let link = self.link(from.ip(), to.ip());
        if self.net.next_f64() < link.loss {
            return;
        }
        // The client→server direction carries the asymmetry.
        let asym = if self.server_index(to.ip()).is_some() { link.asymmetry } else { 0.0 };
        let d = extra + link.base + asym + exp(&mut self.net, link.jitter_mean);
        let at = self.now + d;
        self.push(at, Flight::Packet { from, to, bytes });
    }

    /// A datagram lands at `to`.
    fn deliver(&mut self, from: SocketAddr, to: SocketAddr, bytes: &[u8]) {
        if let Some(i) = self.server_index(to.ip()) {
            self.serve(i, from, to, bytes);
            return;
        }
        for h in 0..self.hosts.len() {
            let now = self.mono(h);
            let host = &mut self.hosts[h];
            let t4 = host.clock.wall(self.now);
            if host.listen == Some(to) {
                host.node.handle_packet(now, Local::Server(to), from, t4, bytes);
            } else if host.addr == to.ip() {
                let Some(id) = u32::from(to.port()).checked_sub(CLIENT_PORT_BASE) else { return };
                host.node.handle_packet(now, Local::Client(AssocId(id)), from, t4, bytes);
            } else {
                continue;
            }
            self.drain(h);
            return;
        }
    }

    fn serve(&mut self, server: usize, from: SocketAddr, to: SocketAddr, bytes: &[u8]) {
        let spec = &self.sc.servers[server];
        if spec.down(self.now) {
            return;
        }
        let Ok(req) = NtpHeader::parse(bytes) else { return };
        let t2 = self.now + spec.clock_error(self.now);
        let t3 = t2 + SERVER_PROCESSING;
        let reply = NtpHeader {
            leap: spec.leap,
            version: req.version,
            mode: Mode::Server,
            stratum: spec.stratum,
            poll: req.poll,
            precision: -20,
            root_delay: NtpShort::ZERO,
            root_dispersion: NtpShort::from_secs_f64(1e-4),
            reference_id: ReferenceId::from_bytes(*b"GPS\0"),
            reference_ts: wall(self.sc.start_unix, t2 - 16.0),
            origin_ts: req.transmit_ts,
            receive_ts: wall(self.sc.start_unix, t2),
            transmit_ts: wall(self.sc.start_unix, t3),
        };
        self.send(to, from, reply.to_bytes().to_vec(), SERVER_PROCESSING);
    }

    /// Drains host `h`'s node: datagrams onto the wire, lookups to the resolver, clock
    /// requests onto its clock, events into the result.
    fn drain(&mut self, h: usize) {
        let now = self.mono(h);
        loop {
            let host = &mut self.hosts[h];
            let t1 = host.clock.wall(self.now);
            let Some(tx) = host.node.poll_transmit(now, t1) else { break };
            let from = match tx.local {
                Local::Client(id) => {
                    if h == 0 {
                        self.res.requests.push((self.now, id, tx.remote));
                    }
                    let port = u16::try_from(CLIENT_PORT_BASE + id.0).unwrap_or(u16::MAX);
                    SocketAddr::new(host.addr, port)
                }
                Local::Server(addr) => addr,
                // The simulator has no multicast: manycast solicitations go nowhere.
                Local::Manycast(_) => continue,
            };
            self.send(from, tx.remote, tx.payload, 0.0);
        }
        while let Some(lookup) = self.hosts[h].node.poll_lookup() {
            if h == 0 {
                self.res.lookups.push(self.now);
            }
            let at = self.now + self.dns.latency;
            self.push(at, Flight::Dns { host: h, source: lookup.source, name: lookup.name });
        }
        while let Some(request) = self.hosts[h].node.poll_clock() {
            let host = &mut self.hosts[h];
            let result = host.clock.execute(self.now, &request);
            if !matches!(request, ClockRequest::SaveDrift { .. }) {
                host.node.handle_clock_result(now, result);
            }
        }
        while let Some(event) = self.hosts[h].node.poll_event() {
            if h != 0 {
                continue;
            }
            match event {
                NodeEvent::SystemPeer { from: Some(_), .. } => self.res.peer_changes += 1,
                NodeEvent::Source { event, .. } => self.res.source_events.push((self.now, event)),
                NodeEvent::Assoc { assoc, event: AssocEvent::Reachable, .. } => {
                    self.res.reach_events.push((self.now, assoc, true));
                }
                NodeEvent::Assoc { assoc, event: AssocEvent::Unreachable, .. } => {
                    self.res.reach_events.push((self.now, assoc, false));
                }
                _ => {}
            }
        }
        if h == 0 {
            self.tally_verdicts();
        }
    }

    /// After a counted selection round of host 0: who was a falseticker, who survived.
    fn tally_verdicts(&mut self) {
        let now = self.mono(0);
        let host = &mut self.hosts[0];
        let stats = host.node.steering().stats();
        let counted = stats.rounds - stats.held;
        if counted == host.rounds_seen || self.sc.combine == CombineMode::Median {
            host.rounds_seen = counted;
            return;
        }
        host.rounds_seen = counted;
        let Some(selection) = host.node.steering().selection() else { return };
        let remotes: BTreeMap<AssocId, IpAddr> =
            host.node.associations(now).into_iter().map(|(_, a)| (a.id, a.remote.ip())).collect();
        for (id, v) in &selection.verdicts {
            let Some(idx) = remotes
                .get(id)
                .and_then(|ip| (0..self.sc.servers.len()).find(|&i| server_addr(i) == *ip))
            else {
                continue;
            };
            match v {
                Verdict::Falseticker => self.res.falseticker_rounds[idx] += 1,
                Verdict::SystemPeer | Verdict::Survivor => self.res.survivor_rounds[idx] += 1,
                _ => {}
            }
        }
    }

    /// The pool's state now (pool scenarios only).
    fn pool_sample(&mut self) -> Option<PoolSample> {
        self.sc.pool.as_ref()?;
        let now = self.mono(0);
        let node = &self.hosts[0].node;
        let snap = node.sources().into_iter().map(|v| v.snapshot).find(|s| s.target.is_some())?;
        let mut sample = PoolSample {
            t: self.now,
            members: snap.assocs.len(),
            target: snap.target.unwrap_or(0),
            tokens: snap.replacements_available,
            waiting_dns: snap.resolving
                || snap.next_resolution.is_some_and(|t| t.secs_since(now) <= 60.0),
            ..PoolSample::default()
        };
        let states: BTreeMap<AssocId, AssocState> =
            node.associations(now).into_iter().map(|(_, a)| (a.id, a.state)).collect();
        for (id, remote) in &snap.assocs {
            if states.get(id) == Some(&AssocState::Reachable) {
                sample.reachable += 1;
                let up = self
                    .server_index(remote.ip())
                    .is_some_and(|i| !self.sc.servers[i].down(self.now));
                sample.serving += usize::from(up);
            }
        }
        Some(sample)
    }

    fn record(&mut self, t: f64) {
        let off = self.hosts[0].clock.true_offset(self.now);
        self.res.series.push((t, off));
        if let Some(p) = self.pool_sample() {
            self.res.pool_samples.push(p);
        }
        let now = self.mono(0);
        for (_, a) in self.hosts[0].node.associations(now) {
            self.res.polls.push((t, a.id, a.poll.as_log2(), a.state));
        }
        if let Some(down) = self.hosts.get_mut(1) {
            let off = down.clock.true_offset(self.now);
            self.res.downstream.get_or_insert_with(DownstreamResult::default).series.push((t, off));
        }
    }

    fn next_event(&mut self) -> f64 {
        let mut next = self.sc.duration;
        for host in &mut self.hosts {
            if let Some(t) = host.node.poll_timeout() {
                next = next.min(host.clock.true_at(self.now, t));
            }
        }
        for (t, _, _) in &self.flights {
            next = next.min(*t);
        }
        next.max(self.now)
    }
}

/// Runs `sc` under `seed`. Deterministic: the same scenario and seed give the same result.
pub fn run(sc: &Scenario, seed: u64) -> RunResult {
    let mut dns = sc.dns.clone().unwrap_or_default();
    if sc.dns.is_none() {
        for i in 0..sc.servers.len() {
            let addrs = vec![server_addr(i)];
            dns.answer(&format!("s{i}.sim"), 0.0, DnsAnswer::Addrs { addrs, ttl: 3_600.0 });
        }
    }
    if let Some(pool) = &sc.pool {
        if !dns.script.contains_key(&pool.name.to_ascii_lowercase()) {
            let addrs = (0..sc.servers.len()).map(server_addr).collect();
            dns.answer(&pool.name, 0.0, DnsAnswer::Addrs { addrs, ttl: 300.0 });
        }
    }
    let serve = sc.serve || sc.downstream.is_some();
    let mut config = host_config(sc, &sc.client, scenario_sources(sc));
    config.leap = sc.leap.clone();
    if serve {
        config.listen = vec![node_listen_addr(0)];
    }
    let mut hosts = vec![Host {
        node: Node::new(Instant::ZERO, config, Box::new(SplitMix64::new(seed))),
        addr: node_addr(0),
        listen: serve.then(|| node_listen_addr(0)),
        clock: HostClock::new(&sc.client, sc.clock, sc.start_unix),
        rounds_seen: 0,
    }];
    if let Some(client) = &sc.downstream {
        let upstream = ConfiguredSource {
            spec: SourceSpec {
                kind: SourceKind::Server,
                target: Target::Addr(node_addr(0)),
                port: 123,
                assoc: rntp_proto::assoc::AssocConfig {
                    minpoll: PollInterval::from_log2(sc.minpoll),
                    maxpoll: PollInterval::from_log2(sc.maxpoll),
                    iburst: true,
                    ..rntp_proto::assoc::AssocConfig::default()
                },
                family: AddrFamily::Any,
                prefer: false,
                noselect: false,
                key: None,
            },
            origin: "scenario:downstream".to_string(),
        };
        let mut config = host_config(sc, client, vec![upstream]);
        // The chain's end is a plain client: the selection's minimum survivors must not wait
        // for three sources it will never have.
        config.select.minclock = 1;
        hosts.push(Host {
            node: Node::new(Instant::ZERO, config, Box::new(SplitMix64::new(seed))),
            addr: node_addr(1),
            listen: None,
            clock: HostClock::new(client, sc.clock, sc.start_unix),
            rounds_seen: 0,
        });
    }
    let n = sc.servers.len();
    let mut sim = Sim {
        sc,
        wander: SplitMix64::new(seed ^ 0x77A1_DE12),
        net: SplitMix64::new(seed ^ 0x5EED_F4E7),
        now: 0.0,
        hosts,
        dns,
        flights: Vec::new(),
        seq: 0,
        res: RunResult {
            falseticker_rounds: vec![0; n],
            survivor_rounds: vec![0; n],
            ..RunResult::default()
        },
        probe: Probe { next: sc.settle.max(0.0).ceil(), ..Probe::default() },
    };
    for h in 0..sim.hosts.len() {
        sim.drain(h);
    }

    let mut records = 0u32;
    let mut next_record = 0.0;
    let mut guard: HashMap<u64, u32> = HashMap::new();
    loop {
        let t = sim.next_event().min(next_record);
        if t >= sc.duration {
            break;
        }
        sim.advance(t);
        if t >= next_record {
            sim.record(t);
            records += 1;
            next_record = record_time(records);
        }
        // Flights due now, in order.
        sim.flights.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        while sim.flights.first().is_some_and(|f| f.0 <= sim.now) {
            let (_, _, flight) = sim.flights.remove(0);
            match flight {
                Flight::Packet { from, to, bytes } => sim.deliver(from, to, &bytes),
                Flight::Dns { host, source, name } => {
                    let now = sim.mono(host);
                    let answer = sim.dns.resolve(now, &name);
                    sim.hosts[host].node.handle_resolved(now, source, answer);
                    sim.drain(host);
                }
            }
        }
        for h in 0..sim.hosts.len() {
            let now = sim.mono(h);
            if sim.hosts[h].node.poll_timeout().is_some_and(|t| t <= now) {
                if h == 0 {
                    sim.res.timer_wakeups += 1;
                    let slew = sim.hosts[0].node.steering().poll_timeout();
                    sim.res.slew_wakeups += u64::from(slew.is_some_and(|t| t <= now));
                }
                sim.hosts[h].node.handle_timeout(now);
                sim.drain(h);
            }
        }
        // A core that asks to be woken in the past forever would hang the loop; a few spins
        // at one instant are normal (burst + drain), thousands are a bug worth surfacing.
        let spins = guard.entry(secs(sim.now).as_nanos()).or_default();
        *spins += 1;
        if *spins > 10_000 {
            sim.res.stalled = true;
            break;
        }
        if guard.len() > 4096 {
            guard.clear();
        }
    }
    sim.advance(sc.duration);
    sim.record(sc.duration);
    finish(sim)
}

/// When the `n`th series point is taken (s): every 0.1 s for the first minute (the start-up
/// rows are judged to the second), every second to 10 minutes, then every 16 s.
fn record_time(n: u32) -> f64 {
    let n = f64::from(n);
    if n < 600.0 {
        n * 0.1
    } else if n < 1_140.0 {
        60.0 + (n - 600.0)
    } else {
        600.0 + (n - 1_140.0) * 16.0
    }
}

/// Summary statistics and the final state of every host.
fn finish(mut sim: Sim<'_>) -> RunResult {
    let sc = sim.sc;
    let settled: Vec<f64> =
        sim.res.series.iter().filter(|(t, _)| *t >= sc.settle).map(|(_, o)| *o).collect();
    let rms = if settled.is_empty() {
        0.0
    } else {
        (settled.iter().map(|o| o * o).sum::<f64>() / settled.len() as f64).sqrt()
    };
    let max = settled.iter().fold(0.0f64, |m, o| m.max(o.abs()));
    let time_to_1ms = match sim.res.series.iter().rposition(|(_, o)| o.abs() >= 1e-3) {
        None => Some(0.0),
        Some(i) => sim.res.series.get(i + 1).map(|(t, _)| *t),
    };
    let below = sim.res.series.iter().position(|(_, o)| o.abs() < 1e-3);
    let first_below_1ms = below.map(|i| sim.res.series[i].0);
    let max_after_below_1ms = below.map_or(f64::INFINITY, |i| {
        sim.res.series[i..].iter().fold(0.0f64, |m, (_, o)| m.max(o.abs()))
    });
    let now = sim.mono(0);
    let down_now = if sim.hosts.len() > 1 { sim.mono(1) } else { now };
    let probe = &sim.probe;
    let host = &sim.hosts[0];
    let steering = host.node.steering();
    sim.res.stats = Stats {
        rms,
        max,
        time_to_1ms,
        final_freq_error_ppm: (host.clock.natural_freq() * 1e6 + steering.frequency_ppm()).abs(),
        first_below_1ms,
        max_after_below_1ms,
        max_correction_per_s: probe.max_correction,
        rms_freq_error_ppm: if probe.count == 0 {
            0.0
        } else {
            (probe.freq_sq_sum / probe.count as f64).sqrt()
        },
    };
    sim.res.requests_sent = host.node.status(now).counters.sent;
    sim.res.kernel = host.clock.linux().map(|k| KernelEnd {
        time_state: k.time_state(),
        status: k.status(),
        tai: k.tai(),
    });
    let stats = steering.stats();
    sim.res.steps = u32::try_from(stats.steps).unwrap_or(u32::MAX);
    sim.res.panics = u32::try_from(stats.panics).unwrap_or(u32::MAX);
    sim.res.updates = u32::try_from(stats.updates).unwrap_or(u32::MAX);
    sim.res.select_updates = u32::try_from(stats.selected).unwrap_or(u32::MAX);
    sim.res.last_leap = steering.leap();
    sim.res.suggested_poll = steering.discipline().suggested_poll().as_log2();
    sim.res.final_freq_ppm = steering.frequency_ppm();
    sim.res.dns_queries = sim.dns.queries.values().sum();
    sim.res.drops = host.node.status(now).counters.dropped;
    sim.res.system = Some(host.node.system_state());
    sim.res.correction_log_len = steering.correction_log_len();
    if let Some(down) = sim.hosts.get(1) {
        let result = sim.res.downstream.get_or_insert_with(DownstreamResult::default);
        result.upstream = down.node.associations(down_now).into_iter().map(|(_, a)| a).next();
        result.system = Some(down.node.system_state());
    }
    sim.res
}

/// The node a host runs for an ntp.conf text, built exactly as the daemon builds one
/// (`rntp_config::node::node_config`, then [`Node::new`]) at virtual time zero with a seeded
/// RNG: the simulator's side of "the daemon and the simulator construct the same node".
pub fn node_from_config_text(
    text: &str,
    mode: ClockMode,
    seed: u64,
) -> Result<Node, rntp_config::ConfigErrors> {
    let loaded = rntp_config::parse_str(std::path::Path::new("ntp.conf"), text, &mut |p| {
        Err(std::io::Error::other(format!("no includes here: {}", p.display())))
    })?;
    let config = rntp_config::node::node_config(&loaded.config, mode);
    Ok(Node::new(Instant::ZERO, config, Box::new(SplitMix64::new(seed))))
}

/// The retirement reasons of a run's pool members (for tests).
pub fn retire_reasons(r: &RunResult) -> Vec<DemobilizeReason> {
    r.source_events
        .iter()
        .filter_map(|(_, e)| match e {
            SourceEvent::Retired { reason, .. } => Some(*reason),
            _ => None,
        })
        .collect()
}
