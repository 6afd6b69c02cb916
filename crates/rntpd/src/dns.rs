//! DNS lookups with hickory-resolver, on the daemon's own event loop.
//!
//! Why hickory and not getaddrinfo: getaddrinfo blocks (so it needs a thread) and hides the
//! TTL. hickory is asynchronous and returns every A and AAAA record with the answer's expiry,
//! which the sans-IO source manager turns into a re-resolution schedule.
//!
//! This module only performs lookups and classifies failures; when to look up and what to do
//! with the answer is decided in `rntp_proto::source`.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::config::{
    ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::TokioResolver;
use rntp_proto::source::{ResolveError, Resolved};

use crate::clock::Clock;

/// Upper bound on one lookup, whatever the resolver's own timeouts and retries do: the source
/// manager must always get an answer to a `Resolve` action.
const LOOKUP_DEADLINE: Duration = Duration::from_secs(30);

/// A cheap-to-clone handle to the resolver.
#[derive(Clone)]
pub struct Dns {
    resolver: TokioResolver,
}

impl std::fmt::Debug for Dns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Dns")
    }
}

impl Dns {
    /// A resolver using `servers` (the `resolver` directive) or, when empty, the system's
    /// configuration (/etc/resolv.conf). /etc/hosts is honoured either way.
    pub fn new(servers: &[SocketAddr]) -> Result<Dns, NetError> {
        let provider = TokioRuntimeProvider::default();
        let mut builder = if servers.is_empty() {
            TokioResolver::builder(provider)?
        } else {
            let name_servers = servers
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
            TokioResolver::builder_with_config(
                ResolverConfig::from_name_servers(name_servers),
                provider,
            )
        };
        let opts = builder.options_mut();
        // Every address of both families, in parallel.
        opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        opts.use_hosts_file = ResolveHosts::Always;
        // No resolver-side cache: the source manager keeps the answer and its expiry itself and
        // asks only when it wants a fresh answer (e.g. `rntpctl refresh`).
        opts.cache_size = 0;
        opts.timeout = Duration::from_secs(5);
        opts.attempts = 2;
        // A truncated UDP answer is always retried over TCP by hickory; retrying *errors* over
        // TCP as well would triple the queries a failing name costs (SERVFAIL: 6 instead of 2).
        opts.try_tcp_on_error = false;
        Ok(Dns { resolver: builder.build()? })
    }

    /// Looks up every A and AAAA record of `name`. Never takes longer than [`LOOKUP_DEADLINE`].
    pub async fn lookup(&self, name: &str, clock: Clock) -> Result<Resolved, ResolveError> {
        let lookup = tokio::time::timeout(LOOKUP_DEADLINE, self.resolver.lookup_ip(name)).await;
        let answer = match lookup {
            Err(_) => return Err(ResolveError::Timeout),
            Ok(Err(e)) => return Err(classify(&e)),
            Ok(Ok(answer)) => answer,
        };
        let addrs: Vec<_> = answer.iter().collect();
        let ttl = answer.valid_until().saturating_duration_since(std::time::Instant::now());
        Ok(Resolved { addrs, valid_until: clock.now() + ttl })
    }
}

/// Maps the resolver's error onto the causes an administrator can act on.
fn classify(e: &NetError) -> ResolveError {
    match e {
        NetError::Timeout => ResolveError::Timeout,
        NetError::Dns(DnsError::NoRecordsFound(nr))
            if nr.response_code == ResponseCode::NXDomain =>
        {
            ResolveError::NxDomain
        }
        NetError::Dns(DnsError::NoRecordsFound(_)) => ResolveError::NoRecords,
        NetError::Dns(DnsError::ResponseCode(ResponseCode::ServFail)) => ResolveError::ServFail,
        NetError::Dns(DnsError::ResponseCode(ResponseCode::Refused)) => ResolveError::Refused,
        other => {
            let text = other.to_string();
            // Some transports report timeouts as I/O or protocol errors.
            if text.contains("timed out") || text.contains("timeout") {
                ResolveError::Timeout
            } else {
                ResolveError::Other(text)
            }
        }
    }
}
