//! DNS lookups with hickory-resolver, on the daemon's own event loop.
//!
//! Why hickory and not getaddrinfo: getaddrinfo blocks (so it needs a thread) and hides the
//! TTL. hickory is asynchronous and returns every A and AAAA record with the answer's expiry,
//! which the sans-IO source manager turns into a re-resolution schedule.
//!
//! This module only performs lookups and classifies failures; when to look up and what to do
//! with the answer is decided in `rntp_proto::source`.
//!
//! # The resolver follows the system
//! Without `resolver` lines, `/etc/resolv.conf` is read before each lookup if it changed
//! (modification time, size or inode), as chrony does, and `/etc/hosts` likewise in every case.
//! A file without any `nameserver` (or no file) is not a start-up error: names fail with
//! [`ResolveError::NoNameServer`] (nothing is sent) until the file lists one, while address
//! sources work. `RNTPD_RESOLV_CONF` and `RNTPD_HOSTS` name other files (for tests).
//!
//! # What one lookup sends
//! One A and one AAAA query in parallel (`-4`: A only, `-6`: AAAA only), to the first name
//! server, and to the next one on a timeout or an unusable answer. A dotted name is looked up
//! as written (absolute), without the search list. hickory retransmits an unanswered UDP query
//! after 333 ms and more; rntpd caps that at [`MAX_SENDS_PER_QUERY`] copies per query and name
//! server, and never repeats a lookup inside hickory (`attempts 0`): a failed lookup (SERVFAIL,
//! timeout) is retried by the source manager on its backoff schedule, so each attempt costs at
//! most 2 queries per type and name server. A name server whose port is closed fails the
//! lookup at once ([`ResolveError::ConnectionRefused`]): the UDP sockets are connected, so the
//! kernel reports the ICMP port-unreachable (hickory's unconnected sockets never see it and
//! wait for the timeout).

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant as StdInstant, SystemTime};

use hickory_resolver::config::{
    ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig,
    ResolverOpts,
};
use hickory_resolver::lookup_ip::LookupIp;
use hickory_resolver::net::runtime::{DnsUdpSocket, RuntimeProvider, TokioRuntimeProvider};
use hickory_resolver::net::{DnsError, NetError, NoRecords};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::RecordType;
use hickory_resolver::{Hosts, Resolver};
use rntp_proto::node::Lookup;
use rntp_proto::source::{AddrFamily, ResolveError, Resolved};

use crate::clock::Clock;

/// Upper bound on one lookup, whatever the resolver's own timeouts do: the source manager must
/// always get an answer to a `Resolve` action.
const LOOKUP_DEADLINE: Duration = Duration::from_secs(30);
/// How long one query waits for its answer (glibc's default; `options timeout:N` in
/// resolv.conf changes it, within 1..=30 s).
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);
/// Copies of one query (same id, same question) sent to one name server, at most: the query
/// and one retransmission.
pub const MAX_SENDS_PER_QUERY: u8 = 2;
/// The system's resolver configuration.
const RESOLV_CONF: &str = "/etc/resolv.conf";
/// The system's static host table.
const HOSTS: &str = "/etc/hosts";

/// The resolver type: hickory over rntpd's socket provider.
type DaemonResolver = Resolver<SocketProvider>;

/// A cheap-to-clone handle to the resolver. Lookups may run concurrently; a change of the
/// configuration files is picked up by the next lookup.
#[derive(Clone)]
pub struct Dns {
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for Dns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Dns")
    }
}

/// Where the name servers come from.
#[derive(Debug, Clone)]
enum Servers {
    /// `resolver` lines.
    Fixed(Vec<SocketAddr>),
    /// The system's resolv.conf (path).
    System(PathBuf),
}

/// What identifies a version of a file: a change of any of these means "read it again".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    // A stat is microseconds on a local file: fine on the event loop, once per lookup.
    let meta = std::fs::metadata(path).ok()?;
    Some(Stamp { modified: meta.modified().ok(), len: meta.len(), inode: meta.ino() })
}

struct State {
    servers: Servers,
    hosts_path: PathBuf,
    /// The files as last read (`None`: missing); `loaded` is false until the first read.
    stamps: (Option<Stamp>, Option<Stamp>),
    loaded: bool,
    /// The resolver built from them (and whether it has any name server); `Err` says why
    /// there is none.
    resolver: Result<(Arc<DaemonResolver>, bool), ResolveError>,
    /// Sends per query, shared by every socket of every resolver built.
    sends: Arc<Mutex<SendLog>>,
    /// When a name server's port last refused a query.
    refused: Arc<Mutex<Option<StdInstant>>>,
}

impl Dns {
    /// A resolver using `servers` (the `resolver` directive) or, when empty, the system's
    /// configuration (/etc/resolv.conf), read when a lookup needs it. /etc/hosts is honoured
    /// either way. Never fails: a missing or empty resolv.conf makes lookups fail with
    /// [`ResolveError::NoNameServer`] until it is fixed.
    pub fn new(servers: &[SocketAddr]) -> Result<Dns, NetError> {
        let env_path = |var: &str, default: &str| {
            std::env::var_os(var).map_or_else(|| PathBuf::from(default), PathBuf::from)
        };
        Ok(Dns::with_files(
            servers,
            env_path("RNTPD_RESOLV_CONF", RESOLV_CONF),
            env_path("RNTPD_HOSTS", HOSTS),
        ))
    }

    /// [`Dns::new`] with other resolv.conf and hosts files.
    fn with_files(servers: &[SocketAddr], resolv_conf: PathBuf, hosts: PathBuf) -> Dns {
        let servers = if servers.is_empty() {
            Servers::System(resolv_conf)
        } else {
            Servers::Fixed(servers.to_vec())
        };
        let state = State {
            servers,
            hosts_path: hosts,
            stamps: (None, None),
            loaded: false,
            resolver: Err(ResolveError::NoNameServer),
            sends: Arc::new(Mutex::new(SendLog::default())),
            refused: Arc::new(Mutex::new(None)),
        };
        Dns { state: Arc::new(Mutex::new(state)) }
    }

    /// Looks up every A and AAAA record of `name`. Never takes longer than [`LOOKUP_DEADLINE`].
    #[cfg(test)]
    pub async fn lookup(&self, name: &str, clock: Clock) -> Result<Resolved, ResolveError> {
        self.lookup_family(name, AddrFamily::Any, clock).await
    }

    /// Answers a node's [`Lookup`]: A and AAAA records, or only those of its family (`-4`:
    /// one A query, `-6`: one AAAA query). Never takes longer than [`LOOKUP_DEADLINE`].
    pub async fn resolve(&self, lookup: &Lookup, clock: Clock) -> Result<Resolved, ResolveError> {
        self.lookup_family(&lookup.name, lookup.family, clock).await
    }

    async fn lookup_family(
        &self,
        name: &str,
        family: AddrFamily,
        clock: Clock,
    ) -> Result<Resolved, ResolveError> {
        let (resolver, has_servers) = self.current()?;
        let started = StdInstant::now();
        // A dotted name is absolute: one query per type, never the search list.
        let name = if name.contains('.') && !name.ends_with('.') {
            format!("{name}.")
        } else {
            name.to_string()
        };
        let query = async {
            match family {
                AddrFamily::Any => resolver.lookup_ip(name.as_str()).await,
                AddrFamily::V4 => {
                    resolver.lookup(name.as_str(), RecordType::A).await.map(LookupIp::from)
                }
                AddrFamily::V6 => {
                    resolver.lookup(name.as_str(), RecordType::AAAA).await.map(LookupIp::from)
                }
            }
        };
        let answer = match tokio::time::timeout(LOOKUP_DEADLINE, query).await {
            Err(_) => return Err(ResolveError::Timeout),
            Ok(Err(NetError::NoConnections)) if !has_servers => {
                return Err(ResolveError::NoNameServer)
            }
            Ok(Err(NetError::NoConnections)) if self.refused_since(started) => {
                return Err(ResolveError::ConnectionRefused)
            }
            Ok(Err(e)) => return Err(classify(&e)),
            Ok(Ok(answer)) => answer,
        };
        let addrs: Vec<IpAddr> = answer.iter().collect();
        let ttl = answer.valid_until().saturating_duration_since(StdInstant::now());
        Ok(Resolved { addrs, valid_until: clock.now() + ttl })
    }

    /// Whether a name server's port refused a query since `t`.
    fn refused_since(&self, t: StdInstant) -> bool {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let refused = *state.refused.lock().unwrap_or_else(|e| e.into_inner());
        refused.is_some_and(|at| at >= t)
    }

    /// The resolver for the configuration files as they are now (re-read if they changed), and
    /// whether it has any name server.
    fn current(&self) -> Result<(Arc<DaemonResolver>, bool), ResolveError> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let conf_stamp = match &state.servers {
            Servers::System(path) => stamp(path),
            Servers::Fixed(_) => None,
        };
        let stamps = (conf_stamp, stamp(&state.hosts_path));
        if !state.loaded || stamps != state.stamps {
            if state.loaded {
                tracing::info!("resolver configuration changed: reloading it");
            }
            state.stamps = stamps;
            state.loaded = true;
            let sockets = Sockets { sends: state.sends.clone(), refused: state.refused.clone() };
            state.resolver = build(&state.servers, &state.hosts_path, sockets)
                .map(|(resolver, has_servers)| (Arc::new(resolver), has_servers));
            if let Err(e) = &state.resolver {
                tracing::debug!(error = %e, "no usable resolver configuration");
            }
        }
        state.resolver.clone()
    }
}

/// Builds a resolver from the configuration files as they are now.
fn build(
    servers: &Servers,
    hosts_path: &Path,
    sockets: Sockets,
) -> Result<(DaemonResolver, bool), ResolveError> {
    let (config, timeout, ndots) = match servers {
        Servers::Fixed(list) => {
            let name_servers = list
                .iter()
                .map(|s| {
                    let mut udp = ConnectionConfig::udp();
                    udp.port = s.port();
                    let mut tcp = ConnectionConfig::tcp();
                    tcp.port = s.port();
                    let mut ns = NameServerConfig::udp_and_tcp(s.ip());
                    ns.connections = vec![udp, tcp];
                    ns
                })
                .collect();
            (ResolverConfig::from_name_servers(name_servers), QUERY_TIMEOUT, 1)
        }
        Servers::System(path) => {
            // No file, or no `nameserver` in it: a resolver without name servers, so the
            // hosts file still answers and everything else fails with NoNameServer.
            let none = || (ResolverConfig::from_name_servers(Vec::new()), QUERY_TIMEOUT, 1);
            let bytes = match std::fs::read(path) {
                Ok(b) => Some(b),
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(e) => {
                    return Err(ResolveError::Other(format!("cannot read {}: {e}", path.display())))
                }
            };
            match bytes.map(|b| hickory_resolver::system_conf::parse_resolv_conf(&b)) {
                None => none(),
                Some(Ok((config, opts))) => {
                    let timeout = opts.timeout.clamp(Duration::from_secs(1), LOOKUP_DEADLINE);
                    (config, timeout, opts.ndots)
                }
                Some(Err(e)) if e.to_string().contains("no nameservers") => none(),
                Some(Err(e)) => {
                    return Err(ResolveError::Other(format!("cannot use {}: {e}", path.display())))
                }
            }
        }
    };
    let has_servers = !config.name_servers().is_empty();
    let provider = SocketProvider { inner: TokioRuntimeProvider::default(), sockets };
    let mut builder = Resolver::builder_with_config(config, provider);
    *builder.options_mut() = options(timeout, ndots);
    let mut resolver =
        builder.build().map_err(|e| ResolveError::Other(format!("resolver set-up: {e}")))?;
    let mut hosts = Hosts::default();
    if let Ok(file) = std::fs::File::open(hosts_path) {
        if let Err(e) = hosts.read_hosts_conf(file) {
            tracing::warn!(path = %hosts_path.display(), error = %e, "cannot read the hosts file");
        }
    }
    resolver.set_hosts(Arc::new(hosts));
    Ok((resolver, has_servers))
}

fn options(timeout: Duration, ndots: usize) -> ResolverOpts {
    let mut opts = ResolverOpts::default();
    // Every address of both families, in parallel (a single family goes through `lookup`).
    opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
    // The host table is read here, from the path rntpd follows (see `build`).
    opts.use_hosts_file = ResolveHosts::Never;
    // No resolver-side cache: the source manager keeps the answer and its expiry itself and
    // asks only when it wants a fresh answer (e.g. `rntpctl refresh`).
    opts.cache_size = 0;
    opts.timeout = timeout;
    opts.ndots = ndots;
    // No repeat inside one lookup: the source manager retries failures on its own backoff.
    opts.attempts = 0;
    // One name server at a time, so a lookup costs one query per type and server.
    opts.num_concurrent_reqs = 1;
    // A truncated UDP answer is always retried over TCP by hickory; retrying *errors* over
    // TCP as well would double the queries a failing name costs.
    opts.try_tcp_on_error = false;
    opts
}

/// Maps the resolver's error onto the causes an administrator can act on.
fn classify(e: &NetError) -> ResolveError {
    match e {
        NetError::Timeout => ResolveError::Timeout,
        NetError::NoConnections => ResolveError::NoNameServer,
        NetError::Io(io) if io.kind() == io::ErrorKind::ConnectionRefused => {
            ResolveError::ConnectionRefused
        }
        NetError::Dns(DnsError::NoRecordsFound(NoRecords { response_code, .. })) => {
            match *response_code {
                ResponseCode::NXDomain => ResolveError::NxDomain,
                ResponseCode::ServFail => ResolveError::ServFail,
                ResponseCode::Refused => ResolveError::Refused,
                _ => ResolveError::NoRecords,
            }
        }
        NetError::Dns(DnsError::ResponseCode(ResponseCode::ServFail)) => ResolveError::ServFail,
        NetError::Dns(DnsError::ResponseCode(ResponseCode::Refused)) => ResolveError::Refused,
        other => {
            let text = other.to_string();
            // Some transports report timeouts or refusals as I/O or protocol errors.
            if text.contains("timed out") || text.contains("timeout") {
                ResolveError::Timeout
            } else if text.contains("refused") {
                ResolveError::ConnectionRefused
            } else {
                ResolveError::Other(text)
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Sockets

/// How many copies of each query were sent lately, by (name server, id, question).
#[derive(Debug, Default)]
struct SendLog {
    sent: HashMap<(SocketAddr, u64), (StdInstant, u8)>,
}

impl SendLog {
    /// Entries older than this are forgotten (a query is long answered or given up by then).
    const KEEP: Duration = Duration::from_secs(60);

    /// Whether another copy of this query may go to `server`; counts it if so.
    fn allow(&mut self, server: SocketAddr, datagram: &[u8]) -> bool {
        let now = StdInstant::now();
        self.sent.retain(|_, (at, _)| now.duration_since(*at) < Self::KEEP);
        let entry = self.sent.entry((server, query_key(datagram))).or_insert((now, 0));
        if entry.1 >= MAX_SENDS_PER_QUERY {
            return false;
        }
        entry.1 += 1;
        true
    }
}

/// The query's id and question (everything after the flags), hashed: the copies hickory
/// retransmits are byte-identical.
fn query_key(datagram: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    datagram.get(..2).hash(&mut h);
    datagram.get(4..).hash(&mut h);
    h.finish()
}

/// What rntpd's sockets share: the count of copies per query, the time of the last refusal.
#[derive(Clone)]
struct Sockets {
    sends: Arc<Mutex<SendLog>>,
    refused: Arc<Mutex<Option<StdInstant>>>,
}

/// hickory's tokio provider with rntpd's UDP sockets ([`ConnectedUdp`]).
#[derive(Clone)]
struct SocketProvider {
    inner: TokioRuntimeProvider,
    sockets: Sockets,
}

type Tokio = TokioRuntimeProvider;

impl RuntimeProvider for SocketProvider {
    type Handle = <Tokio as RuntimeProvider>::Handle;
    type Timer = <Tokio as RuntimeProvider>::Timer;
    type Udp = ConnectedUdp;
    type Tcp = <Tokio as RuntimeProvider>::Tcp;

    fn create_handle(&self) -> Self::Handle {
        self.inner.create_handle()
    }

    fn connect_tcp(
        &self,
        server_addr: SocketAddr,
        bind_addr: Option<SocketAddr>,
        timeout: Option<Duration>,
    ) -> Pin<Box<dyn Send + Future<Output = Result<Self::Tcp, io::Error>>>> {
        self.inner.connect_tcp(server_addr, bind_addr, timeout)
    }

    fn bind_udp(
        &self,
        local_addr: SocketAddr,
        server_addr: SocketAddr,
    ) -> Pin<Box<dyn Send + Future<Output = Result<Self::Udp, io::Error>>>> {
        let sockets = self.sockets.clone();
        Box::pin(async move {
            let socket = tokio::net::UdpSocket::bind(local_addr).await?;
            // Connected: the kernel then reports an ICMP port-unreachable as ECONNREFUSED on
            // the next receive, and accepts datagrams from the name server only.
            socket.connect(server_addr).await?;
            Ok(ConnectedUdp {
                socket: Arc::new(socket),
                server: server_addr,
                sockets,
                decided: AtomicU8::new(0),
                readiness: Mutex::new(None),
            })
        })
    }
}

/// Waits until the socket is readable or has a pending error.
type Readiness = Pin<Box<dyn Future<Output = io::Result<tokio::io::Ready>> + Send>>;

/// A UDP socket connected to one name server. hickory opens one per copy of a query; the
/// copies beyond [`MAX_SENDS_PER_QUERY`] are not sent (the socket then simply waits for the
/// answer to an earlier copy, or the timeout).
struct ConnectedUdp {
    socket: Arc<tokio::net::UdpSocket>,
    server: SocketAddr,
    sockets: Sockets,
    /// This socket's datagram: 0 not yet looked at, 1 sent, 2 held back.
    decided: AtomicU8,
    /// tokio wakes a plain receive only when data arrives; a socket error (the ICMP refusal)
    /// is waited for here too.
    readiness: Mutex<Option<Readiness>>,
}

impl DnsUdpSocket for ConnectedUdp {
    type Time = <Tokio as RuntimeProvider>::Timer;

    fn poll_recv_from(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<(usize, SocketAddr)>> {
        loop {
            match self.socket.try_recv(buf) {
                Ok(len) => return Poll::Ready(Ok((len, self.server))),
                Err(e) if e.kind() != io::ErrorKind::WouldBlock => return Poll::Ready(Err(e)),
                Err(_) => {}
            }
            let mut readiness = self.readiness.lock().unwrap_or_else(|e| e.into_inner());
            let future = readiness.get_or_insert_with(|| {
                let socket = Arc::clone(&self.socket);
                Box::pin(async move {
                    socket.ready(tokio::io::Interest::READABLE | tokio::io::Interest::ERROR).await
                })
            });
            let ready = match future.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(r) => r,
            };
            *readiness = None;
            let ready = match ready {
                Ok(ready) => ready,
                Err(e) => return Poll::Ready(Err(e)),
            };
            if ready.is_error() {
                if let Some(e) = self.socket.take_error()? {
                    if e.kind() == io::ErrorKind::ConnectionRefused {
                        let mut refused =
                            self.sockets.refused.lock().unwrap_or_else(|e| e.into_inner());
                        *refused = Some(StdInstant::now());
                    }
                    return Poll::Ready(Err(e));
                }
            }
            // Readable (or a spurious wake-up): try the receive again.
        }
    }

    fn poll_send_to(
        &self,
        cx: &mut Context<'_>,
        buf: &[u8],
        target: SocketAddr,
    ) -> Poll<io::Result<usize>> {
        if target != self.server {
            return self.socket.poll_send_to(cx, buf, target);
        }
        // Decided once per socket, so a send that returns Pending is not counted twice.
        if self.decided.load(Ordering::Relaxed) == 0 {
            let mut sends = self.sockets.sends.lock().unwrap_or_else(|e| e.into_inner());
            let allowed = sends.allow(self.server, buf);
            drop(sends);
            self.decided.store(if allowed { 1 } else { 2 }, Ordering::Relaxed);
        }
        if self.decided.load(Ordering::Relaxed) == 2 {
            return Poll::Ready(Ok(buf.len()));
        }
        self.socket.poll_send(cx, buf)
    }
}

#[cfg(test)]
use rntp_testkit::fakedns;

#[cfg(test)]
mod tests;
