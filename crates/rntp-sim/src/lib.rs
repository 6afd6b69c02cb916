//! A deterministic simulator for rntpd: virtual time, a drifting client clock, NTP servers,
//! lossy jittery links and a scripted DNS, driving the *same* sans-IO core as the daemon.
//!
//! # What it does
//! One [`run`] plays a [`Scenario`] under a seed. Names are resolved through a
//! [`ScriptedResolver`] answering the core's [`SourceManager`]; every association is a real
//! [`Association`] exchanging real 48-byte packets (built with [`NtpHeader`]) with simulated
//! servers; every sample and every round of filter estimates goes to the core's [`Steering`],
//! the same timekeeping state machine the daemon drives: it runs `select::select` (or the
//! [`CombineMode::Median`] fallback while selection finds no system peer) after every sample,
//! feeds each raw sample of a surviving source to the discipline with its delay-based error
//! ([`Feed::Samples`]; [`Feed::FilterBest`] feeds the combined offset instead, RFC 5905 style),
//! and models its corrections on a `VirtualClock`. The client clock reads its natural error plus
//! [`Steering::offset_at`].
//!
//! Virtual time is the true time, in nanoseconds ([`Instant`]). The client's wall clock is
//! `true time + natural error + correction`; the natural error integrates a frequency error
//! that wanders as a random walk. The association's monotonic `now` is true time: only the wall
//! clock (the timestamps on the wire) drifts, which is what matters for offsets.
//!
//! # What it does not do
//! No sockets, no threads, no real clocks (nothing here can change this machine's clock), no
//! kernel PLL model beyond the [`VirtualClock`](rntp_proto::discipline::VirtualClock), no
//! leap-second insertion (the leap indicator is only carried to the output), no packet
//! reordering beyond what independent delays produce.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bench;
pub mod kernel;

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use rntp_proto::assoc::{
    AssocConfig, AssocEvent, AssocId, AssocState, Association, DemobilizeReason,
};
use rntp_proto::discipline::DisciplineConfig;
use rntp_proto::rng::{RngSource, SplitMix64};
use rntp_proto::select::Verdict;
use rntp_proto::source::{
    AddrFamily, MobilizeReason, ResolveError, ResolvePolicy, Resolved, SourceAction, SourceEvent,
    SourceKind, SourceManager, SourceSpec, Target,
};
use rntp_proto::steer::{RoundOutcome, SourceInput, Steering, SteeringConfig, SteeringEvent};
use rntp_proto::time::{Instant, NtpDuration, NtpShort, NtpTimestamp, PollInterval};
use rntp_proto::wire::{LeapIndicator, Mode, NtpHeader, ReferenceId};

/// How the sim combines association estimates into the discipline's input (the core's
/// [`rntp_proto::steer::Combine`]).
pub use rntp_proto::steer::Combine as CombineMode;
/// What the discipline is fed (the core's [`rntp_proto::steer::Feed`]).
pub use rntp_proto::steer::Feed;

/// Unix time of virtual time zero (an arbitrary 2026 date).
const EPOCH_UNIX: i64 = 1_795_675_301;
/// Server processing time between receive and transmit timestamps (s).
const SERVER_PROCESSING: f64 = 5e-6;
/// Our clock precision as told to associations (s).
const LOCAL_PRECISION: f64 = 1e-7;
/// Consecutive falseticker rounds before a pool member is replaced: the daemon's value
/// (`rntpd::timekeeping::FALSETICKER_ROUNDS`).
pub const FALSETICKER_ROUNDS: u32 = 10;
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
    /// Slew rate of the client's clock (ppm): 500 as the kernel's `adjtime`.
    pub slew_rate_ppm: f64,
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
/// for [`SourceManager`]; names without a script fail with NXDOMAIN.
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
    /// Consecutive falseticker rounds after which a pool member is retired (0: never).
    pub falseticker_rounds: u32,
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
            falseticker_rounds: FALSETICKER_ROUNDS,
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
    /// Reachable (`true`) and Unreachable (`false`) association events (s).
    pub reach_events: Vec<(f64, AssocId, bool)>,
    /// Steering's `PersistentFalseticker` verdicts (s).
    pub persistent_falsetickers: Vec<(f64, AssocId)>,
    /// Pool scenarios only: the pool's state at every series point.
    pub pool_samples: Vec<PoolSample>,
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

/// A packet on the wire.
#[derive(Debug)]
enum Flight {
    ToServer { server: usize, assoc: AssocId, bytes: [u8; NtpHeader::LEN] },
    ToClient { assoc: AssocId, server: usize, bytes: [u8; NtpHeader::LEN] },
    Dns { source: rntp_proto::source::SourceId, name: String },
}

/// A standard normal variate (Box–Muller).
fn gauss(rng: &mut SplitMix64) -> f64 {
    let u1 = rng.next_f64().max(1e-300);
    let u2 = rng.next_f64();
    (-2.0 * u1.ln()).sqrt() * (2.0 * core::f64::consts::PI * u2).cos()
}

fn exp(rng: &mut SplitMix64, mean: f64) -> f64 {
    -mean * (1.0 - rng.next_f64()).ln()
}

fn wall(t_true: f64) -> NtpTimestamp {
    NtpTimestamp::from_unix(EPOCH_UNIX, 0).add_duration(NtpDuration::from_secs_f64(t_true))
}

fn secs(t: f64) -> Instant {
    // Rounded, so that an Instant converted to seconds and back is the same Instant (exact for
    // any time below 2^53 ns, 104 days).
    Instant::from_nanos((t.max(0.0) * 1e9).round() as u64)
}

struct Sim<'a> {
    sc: &'a Scenario,
    rng: SplitMix64,
    /// Separate stream for the network, so a change in the core's use of randomness does not
    /// reshuffle every delay.
    net: SplitMix64,
    now: f64,
    /// Natural clock error e (s) and its rate f (s/s): the wall clock reads t + e + correction.
    e: f64,
    f: f64,
    /// Timekeeping: discipline, applied corrections, selection state.
    steering: Steering,
    sm: SourceManager,
    dns: ScriptedResolver,
    assocs: BTreeMap<AssocId, Association>,
    flights: Vec<(f64, u64, Flight)>,
    seq: u64,
    res: RunResult,
}

impl Sim<'_> {
    fn client_wall(&self, t: f64) -> NtpTimestamp {
        wall(t + self.e + self.f * (t - self.now) + self.steering.offset_at(secs(t)))
    }

    fn true_offset(&self) -> f64 {
        -(self.e + self.steering.offset_at(secs(self.now)))
    }

    fn addr_server(&self, remote: SocketAddr) -> Option<usize> {
        (0..self.sc.servers.len()).find(|&i| server_addr(i) == remote.ip())
    }

    fn push(&mut self, at: f64, flight: Flight) {
        self.seq += 1;
        self.flights.push((at, self.seq, flight));
    }

    /// Moves the natural clock to `t`.
    fn advance(&mut self, t: f64) {
        let dt = t - self.now;
        if dt <= 0.0 {
            return;
        }
        let df = self.sc.client.wander * dt.sqrt() * gauss(&mut self.rng);
        // Trapezoid: the frequency moves linearly over the step.
        self.e += (self.f + df / 2.0) * dt;
        self.f += df;
        self.now = t;
    }

    fn handle_actions(&mut self) {
        while let Some(action) = self.sm.poll_action() {
            let now = secs(self.now);
            match action {
                SourceAction::Resolve { source, name } => {
                    self.res.lookups.push(self.now);
                    let at = self.now + self.dns.latency;
                    self.push(at, Flight::Dns { source, name });
                }
                SourceAction::Mobilize { assoc, remote, config, .. } => {
                    let a = Association::new(
                        assoc,
                        remote,
                        config,
                        LOCAL_PRECISION,
                        now,
                        1.0,
                        &mut self.rng,
                    );
                    self.assocs.insert(assoc, a);
                }
                SourceAction::Move { assoc, remote } => {
                    if let Some(a) = self.assocs.get_mut(&assoc) {
                        a.change_remote(now, remote);
                    }
                    // Another address, another path: its delays say nothing about the old one.
                    self.steering.handle_reset(assoc);
                }
                SourceAction::Demobilize { assoc, reason } => {
                    self.steering.handle_reset(assoc);
                    if let Some(mut a) = self.assocs.remove(&assoc) {
                        a.demobilize(reason);
                        // As the daemon: the stopped association's Demobilized event is a
                        // source change.
                        self.steering.handle_source_change();
                    }
                }
            }
        }
        while let Some(ev) = self.sm.poll_event() {
            self.res.source_events.push((self.now, ev));
        }
    }

    fn send(&mut self, assoc: AssocId, remote: SocketAddr, bytes: [u8; NtpHeader::LEN]) {
        let Some(server) = self.addr_server(remote) else { return };
        let link = self.sc.servers[server].link;
        if self.net.next_f64() < link.loss {
            return;
        }
        let d = link.base + link.asymmetry + exp(&mut self.net, link.jitter_mean);
        self.push(self.now + d, Flight::ToServer { server, assoc, bytes });
    }

    fn serve(&mut self, server: usize, assoc: AssocId, bytes: [u8; NtpHeader::LEN]) {
        let spec = &self.sc.servers[server];
        if spec.down(self.now) {
            return;
        }
        let Ok(req) = NtpHeader::parse(&bytes) else { return };
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
            reference_ts: wall(t2 - 16.0),
            origin_ts: req.transmit_ts,
            receive_ts: wall(t2),
            transmit_ts: wall(t3),
        };
        let link = spec.link;
        if self.net.next_f64() < link.loss {
            return;
        }
        let d = SERVER_PROCESSING + link.base + exp(&mut self.net, link.jitter_mean);
        self.push(self.now + d, Flight::ToClient { assoc, server, bytes: reply.to_bytes() });
    }

    fn receive(&mut self, assoc: AssocId, server: usize, bytes: [u8; NtpHeader::LEN]) {
        let now = secs(self.now);
        let t4 = self.client_wall(self.now);
        let Some(remote) = self.assocs.get(&assoc).map(Association::remote) else { return };
        if self.addr_server(remote) != Some(server) {
            return;
        }
        let Some(a) = self.assocs.get_mut(&assoc) else { return };
        // Drops are counted by the daemon; the sim only needs the accepted samples.
        let _ = a.handle_packet(now, t4, &bytes);
        self.drain_events(assoc);
    }

    /// Hands the association's new samples to the [`Steering`], then one round over every
    /// association: the call order the daemon follows too.
    fn drain_events(&mut self, id: AssocId) {
        let now = secs(self.now);
        while let Some(ev) = self.assocs.get_mut(&id).and_then(Association::poll_event) {
            self.sm.handle_assoc_event(now, id, &ev, &mut self.rng);
            match ev {
                AssocEvent::Sample(s) => {
                    // RFC 5905 clock_filter: only a sample that became its filter's best is
                    // news for the combined offset (Feed::FilterBest).
                    let best = self.assocs.get(&id).and_then(|a| a.estimate(now));
                    let is_best = best.is_some_and(|e| e.time == s.time);
                    self.steering.handle_sample(now, id, &s, is_best);
                }
                AssocEvent::Reachable => self.res.reach_events.push((self.now, id, true)),
                AssocEvent::Unreachable => {
                    self.res.reach_events.push((self.now, id, false));
                    // As the daemon: selection runs again without this source.
                    self.steering.handle_source_change();
                }
                AssocEvent::Demobilized(_) => self.steering.handle_source_change(),
                _ => {}
            }
        }
        self.handle_actions();
        // Skipping the inputs when no round is due saves snapshots; handle_round would skip.
        if !self.steering.wants_round() {
            return;
        }
        let inputs: Vec<SourceInput> = self
            .assocs
            .values()
            .map(|a| {
                let snap = a.snapshot(now);
                let refid = match snap.remote.ip() {
                    IpAddr::V4(v4) => ReferenceId::from_bytes(v4.octets()),
                    // The sim only uses IPv4 servers.
                    IpAddr::V6(_) => ReferenceId::from_bytes([0; 4]),
                };
                SourceInput::from_snapshot(&snap, refid)
            })
            .collect();
        let outcome = self.steering.handle_round(now, &inputs);
        if matches!(outcome, RoundOutcome::Counted { .. }) && self.sc.combine != CombineMode::Median
        {
            let verdicts = self.steering.selection().map(|s| s.verdicts.clone());
            for (id, v) in verdicts.unwrap_or_default() {
                let remote = self.assocs.get(&id).map(Association::remote);
                let Some(idx) = remote.and_then(|r| self.addr_server(r)) else { continue };
                match v {
                    Verdict::Falseticker => self.res.falseticker_rounds[idx] += 1,
                    Verdict::SystemPeer | Verdict::Survivor => self.res.survivor_rounds[idx] += 1,
                    _ => {}
                }
            }
        }
        // The sim's clock reads the steering's model directly: nothing to execute.
        while self.steering.poll_action().is_some() {}
        // As the daemon: a persistent falseticker is the source manager's to judge (a pool
        // retires and replaces it; a configured server is kept).
        while let Some(ev) = self.steering.poll_event() {
            if let SteeringEvent::PersistentFalseticker(assoc) = ev {
                self.res.persistent_falsetickers.push((self.now, assoc));
                self.sm.handle_falseticker(now, assoc, &mut self.rng);
            }
        }
        self.handle_actions();
    }

    /// The pool's state now (pool scenarios only).
    fn pool_sample(&self) -> Option<PoolSample> {
        self.sc.pool.as_ref()?;
        let now = secs(self.now);
        let snap = self.sm.snapshot().into_iter().find(|s| s.target.is_some())?;
        let mut sample = PoolSample {
            t: self.now,
            members: snap.assocs.len(),
            target: snap.target.unwrap_or(0),
            tokens: snap.replacements_available,
            waiting_dns: snap.resolving
                || snap.next_resolution.is_some_and(|t| t.secs_since(now) <= 60.0),
            ..PoolSample::default()
        };
        for (id, remote) in &snap.assocs {
            let Some(a) = self.assocs.get(id) else { continue };
            if a.state() == AssocState::Reachable {
                sample.reachable += 1;
                let up =
                    self.addr_server(*remote).is_some_and(|i| !self.sc.servers[i].down(self.now));
                sample.serving += usize::from(up);
            }
        }
        Some(sample)
    }

    fn next_event(&self) -> f64 {
        let mut next = self.sc.duration;
        for a in self.assocs.values() {
            match a.poll_timeout() {
                Some(t) => next = next.min(t.secs_since(Instant::ZERO)),
                None if !matches!(a.state(), rntp_proto::assoc::AssocState::Demobilized(_)) => {
                    next = next.min(self.now)
                }
                None => {}
            }
        }
        for (t, _, _) in &self.flights {
            next = next.min(*t);
        }
        if let Some(t) = self.sm.poll_timeout() {
            next = next.min(t.secs_since(Instant::ZERO));
        }
        next.max(self.now)
    }

    fn step_assocs(&mut self) {
        let now = secs(self.now);
        let ids: Vec<AssocId> = self.assocs.keys().copied().collect();
        for id in ids {
            let mut sends = Vec::new();
            if let Some(a) = self.assocs.get_mut(&id) {
                if a.poll_timeout().is_none_or(|t| t <= now) {
                    a.handle_timeout(now, &mut self.rng);
                }
            }
            let t1 = self.client_wall(self.now);
            if let Some(a) = self.assocs.get_mut(&id) {
                while let Some(tx) = a.poll_transmit(t1, &mut self.rng) {
                    sends.push(tx);
                }
            }
            for tx in sends {
                self.send(id, tx.remote, tx.payload);
            }
            self.drain_events(id);
        }
    }
}

/// Runs `sc` under `seed`. Deterministic: the same scenario and seed give the same result.
pub fn run(sc: &Scenario, seed: u64) -> RunResult {
    let mut rng = SplitMix64::new(seed);
    let net = SplitMix64::new(seed ^ 0x5EED_F4E7);
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
    let mut sm = SourceManager::new(ResolvePolicy::default(), sc.maxclock);
    let assoc = AssocConfig {
        minpoll: PollInterval::from_log2(sc.minpoll),
        maxpoll: PollInterval::from_log2(sc.maxpoll),
        iburst: sc.iburst,
        ..AssocConfig::default()
    };
    if let Some(pool) = &sc.pool {
        let spec = SourceSpec {
            kind: SourceKind::Pool { maxsources: pool.maxsources },
            target: Target::Name(pool.name.clone()),
            port: 123,
            assoc,
            family: AddrFamily::Any,
            prefer: false,
            noselect: false,
        };
        let _ = sm.add(Instant::ZERO, spec, &mut rng);
    }
    let server_lines = if sc.pool.is_some() { 0 } else { sc.servers.len() };
    for i in 0..server_lines {
        let spec = SourceSpec {
            kind: SourceKind::Server,
            target: Target::Name(format!("s{i}.sim")),
            port: 123,
            assoc,
            family: AddrFamily::Any,
            prefer: false,
            noselect: false,
        };
        // Names are unique by construction, so `add` cannot refuse them.
        let _ = sm.add(Instant::ZERO, spec, &mut rng);
    }
    let mut dcfg = sc.discipline;
    dcfg.minpoll = PollInterval::from_log2(sc.minpoll);
    dcfg.maxpoll = PollInterval::from_log2(sc.maxpoll);
    // The discipline must model the clock's slew as the driver performs it.
    dcfg.slew_rate_ppm = sc.client.slew_rate_ppm;
    let n = sc.servers.len();
    let steering = Steering::new(
        SteeringConfig {
            discipline: dcfg,
            feed: sc.feed,
            combine: sc.combine,
            falseticker_rounds: sc.falseticker_rounds,
            ..SteeringConfig::default()
        },
        sc.client.drift_file_ppm,
    );
    let mut sim = Sim {
        sc,
        rng,
        net,
        now: 0.0,
        e: -sc.client.initial_offset,
        f: sc.client.freq_ppm * 1e-6,
        steering,
        sm,
        dns,
        assocs: BTreeMap::new(),
        flights: Vec::new(),
        seq: 0,
        res: RunResult {
            falseticker_rounds: vec![0; n],
            survivor_rounds: vec![0; n],
            ..RunResult::default()
        },
    };
    // The drift file's frequency is set at start-up, before any sample (`Steering::new`); the
    // sim's clock reads the steering's model, so there is nothing to execute.
    while sim.steering.poll_action().is_some() {}
    sim.handle_actions();

    let mut next_record = 0.0;
    let mut guard: HashMap<u64, u32> = HashMap::new();
    loop {
        let t = sim.next_event().min(next_record);
        if t >= sc.duration {
            break;
        }
        sim.advance(t);
        if t >= next_record {
            let off = sim.true_offset();
            sim.res.series.push((t, off));
            if let Some(p) = sim.pool_sample() {
                sim.res.pool_samples.push(p);
            }
            next_record += if t < 600.0 { 1.0 } else { 16.0 };
        }
        // Flights due now, in order.
        sim.flights.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        while sim.flights.first().is_some_and(|f| f.0 <= sim.now) {
            let (_, _, flight) = sim.flights.remove(0);
            match flight {
                Flight::ToServer { server, assoc, bytes } => sim.serve(server, assoc, bytes),
                Flight::ToClient { assoc, server, bytes } => sim.receive(assoc, server, bytes),
                Flight::Dns { source, name } => {
                    let now = secs(sim.now);
                    let answer = sim.dns.resolve(now, &name);
                    sim.sm.handle_resolved(now, source, answer, &mut sim.rng);
                    sim.handle_actions();
                }
            }
        }
        sim.sm.handle_timeout(secs(sim.now), &mut sim.rng);
        sim.handle_actions();
        sim.step_assocs();
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
    let off = sim.true_offset();
    sim.res.series.push((sc.duration, off));

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
    sim.res.stats = Stats {
        rms,
        max,
        time_to_1ms,
        final_freq_error_ppm: (sim.f * 1e6 + sim.steering.frequency_ppm()).abs(),
    };
    let stats = sim.steering.stats();
    sim.res.steps = u32::try_from(stats.steps).unwrap_or(u32::MAX);
    sim.res.panics = u32::try_from(stats.panics).unwrap_or(u32::MAX);
    sim.res.updates = u32::try_from(stats.updates).unwrap_or(u32::MAX);
    sim.res.select_updates = u32::try_from(stats.selected).unwrap_or(u32::MAX);
    sim.res.last_leap = sim.steering.leap();
    sim.res.suggested_poll = sim.steering.discipline().suggested_poll().as_log2();
    sim.res.final_freq_ppm = sim.steering.frequency_ppm();
    sim.res.dns_queries = sim.dns.queries.values().sum();
    sim.res
}
