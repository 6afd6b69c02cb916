//! `mode6-flood`: a million mode 6 (ntpq) requests from 10^4 spoofed sources, twice.
//!
//! * **Non-local sources, in process.** The node that rntpd runs (`rntp_proto::node::Node`)
//!   answers requests from 10^4 addresses of 198.18.0.0/15 (the benchmarking range; nothing is
//!   sent on any network: the node is sans-IO and the datagrams are only counted), with
//!   queries opened to everyone (`restrict default` without `noquery`), so that the reply
//!   budget alone protects third parties. Reported: octets in and out (out must not exceed
//!   in), answers, `PERMISSION` refusals, this process's RSS before and after, and a time
//!   request after every 1000 queries, which must all be answered.
//! * **Loopback sources, against the daemon.** rntpd serves on 127.14.Y.1; the flood comes
//!   from 10^4 spoofed 127.a.b.c sources (IP_PKTINFO, as `flood`), which rntpd answers in full
//!   by default (loopback may query). Reported: rntpd's VmRSS before, peak and after, its
//!   mode 6 counters from the metrics endpoint, and legitimate time probes every 500 ms
//!   during the flood, which must be answered.
//!
//! Bounded: each phase stops after its count or `--max-secs`, whichever is first.

use std::io::{IoSlice, Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::socket::{sendmsg, setsockopt, sockopt, ControlMessage, MsgFlags, SockaddrIn};
use rntp_proto::assoc::AssocConfig;
use rntp_proto::node::{ConfiguredSource, Node, NodeConfig};
use rntp_proto::rng::SplitMix64;
use rntp_proto::server::{RestrictFlags, ServerAction, ServerConfig};
use rntp_proto::source::{AddrFamily, SourceKind, SourceSpec, Target};
use rntp_proto::time::{Instant as NodeInstant, NtpTimestamp};

use crate::ntp::{self, Reply, Rng};
use crate::procs::{self, Block, Server};

/// Spoofed source addresses.
const SOURCES: usize = 10_000;
/// A time request after this many queries (in-process phase).
const TIME_EVERY: u64 = 1_000;
/// Metrics port of the daemon under test.
const METRICS_PORT: u16 = 12393;

/// `mode6-flood` options.
#[derive(Debug, clap::Args)]
pub struct Mode6FloodArgs {
    /// Requests per phase.
    #[arg(long, default_value_t = 1_000_000)]
    requests: u64,
    /// Bound on each phase, seconds.
    #[arg(long, default_value_t = 120)]
    max_secs: u64,
    /// rntpd's port.
    #[arg(long, default_value_t = 12392)]
    port: u16,
    /// CPU rntpd is pinned to.
    #[arg(long, default_value_t = 1)]
    server_cpu: usize,
    /// CPU the flood is sent from.
    #[arg(long, default_value_t = 0)]
    gen_cpu: usize,
}

/// The requests of the flood: what ntpq and check_ntp_peer send (READSTAT, READVAR of the
/// system and of a peer, a variable list), plus READ_MRU without a nonce (once `BADOP`; since
/// the mrulist handshake, dropped unanswered as `bad_nonce`).
fn requests() -> Vec<Vec<u8>> {
    let req = |opcode: u8, assoc: u16, data: &[u8]| {
        let mut b = vec![0x16, opcode, 0, 1, 0, 0];
        b.extend_from_slice(&assoc.to_be_bytes());
        b.extend_from_slice(&[0, 0]);
        b.extend_from_slice(&(data.len() as u16).to_be_bytes());
        b.extend_from_slice(data);
        while b.len() % 4 != 0 {
            b.push(0);
        }
        b
    };
    vec![
        req(1, 0, b""),
        req(2, 0, b""),
        req(2, 0, b"offset,sys_jitter"),
        req(2, 16_385, b""),
        req(10, 0, b""),
    ]
}

pub fn run(
    rntpd: &Path,
    rntpctl: &Path,
    work: &Path,
    block: &Block,
    a: &Mode6FloodArgs,
) -> Result<(), String> {
    procs::pin_self(a.gen_cpu)?;
    let ok_local = in_process(a)?;
    let ok_daemon = daemon(rntpd, rntpctl, work, block, a)?;
    if !(ok_local && ok_daemon) {
        return Err("mode 6 flood: a bound was broken (see above)".into());
    }
    Ok(())
}

/// The non-local phase; whether every bound held.
fn in_process(a: &Mode6FloodArgs) -> Result<bool, String> {
    let sources = (1..=4)
        .map(|i| ConfiguredSource {
            spec: SourceSpec {
                kind: SourceKind::Server,
                target: Target::Addr(IpAddr::V4(Ipv4Addr::new(192, 0, 2, i))),
                port: 123,
                assoc: AssocConfig::default(),
                family: AddrFamily::Any,
                prefer: false,
                noselect: false,
                key: None,
            },
            origin: format!("bench:{i}"),
        })
        .collect();
    let server = ServerConfig { default_flags: RestrictFlags::NONE, ..ServerConfig::default() };
    let config = NodeConfig { sources, server, ..NodeConfig::default() };
    let mut rng = Rng::from_os();
    let mut node =
        Node::new(NodeInstant::from_nanos(1), config, Box::new(SplitMix64::new(rng.next_u64())));
    let addrs: Vec<IpAddr> = (0..SOURCES)
        .map(|i| IpAddr::V4(Ipv4Addr::new(198, 18 + (i >> 16) as u8, (i >> 8) as u8, i as u8)))
        .collect();
    let reqs = requests();
    let rss0 = procs::rss_kib(std::process::id()).unwrap_or(0);
    let mut out = [0u8; 1024];
    let (mut bytes_in, mut bytes_out, mut time_sent, mut time_answered) = (0u64, 0u64, 0u64, 0u64);
    let start = Instant::now();
    let bound = Duration::from_secs(a.max_secs);
    let mut sent = 0u64;
    let rx = NtpTimestamp::from_bits(ntp::now_ntp());
    while sent < a.requests && start.elapsed() < bound {
        let r = rng.next_u64();
        let src = addrs[(r % SOURCES as u64) as usize];
        let req = &reqs[((r >> 32) % reqs.len() as u64) as usize];
        let now = NodeInstant::from_nanos(1 + start.elapsed().as_nanos() as u64);
        bytes_in += req.len() as u64;
        if let ServerAction::Reply { len, .. } = node.respond(now, rx, src, req, &mut out) {
            bytes_out += len as u64;
            while let Some(len) = node.poll_control_reply(&mut out) {
                bytes_out += len as u64;
            }
        }
        sent += 1;
        if sent.is_multiple_of(TIME_EVERY) {
            time_sent += 1;
            let request = ntp::request(r);
            let action = node.respond(now, rx, src, &request, &mut out);
            if matches!(action, ServerAction::Reply { len: 48, .. }) {
                time_answered += 1;
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let rss1 = procs::rss_kib(std::process::id()).unwrap_or(0);
    let c = node.control_counters();
    println!("\n== non-local sources (in process, 10^4 addresses of 198.18.0.0/15) ==");
    println!(
        "{sent} requests in {secs:.1} s ({:.0}/s); octets in {bytes_in}, out {bytes_out} \
         (ratio {:.3})",
        sent as f64 / secs,
        bytes_out as f64 / bytes_in.max(1) as f64
    );
    println!(
        "answered {}, errors {}, refused (PERMISSION, over budget) {}, dropped {:?}",
        c.answered, c.errors, c.refused, c.dropped
    );
    println!("bench process VmRSS KiB: before {rss0}, after {rss1}");
    println!("time requests interleaved: {time_answered}/{time_sent} answered");
    let ok = bytes_out <= bytes_in && time_answered == time_sent;
    if !ok {
        println!("FAILED: octets out > in, or time requests went unanswered");
    }
    Ok(ok)
}

/// The daemon phase; whether every bound held.
fn daemon(
    rntpd: &Path,
    rntpctl: &Path,
    work: &Path,
    block: &Block,
    a: &Mode6FloodArgs,
) -> Result<bool, String> {
    let server_addr = SocketAddr::from((block.addr(1), a.port));
    let metrics = SocketAddr::from((block.addr(1), METRICS_PORT));
    let config = format!("tos orphan 3\nmetrics {} port {METRICS_PORT}\n", block.addr(1));
    let mut server = Server::rntpd(rntpd, rntpctl, work, server_addr, &config, Some(a.server_cpu))?;
    server.wait_ready(block.addr(4))?;
    let rss0 = server.rss_kib().unwrap_or(0);
    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(rss0));
    let sampler = {
        let (stop, peak, pid) = (stop.clone(), peak.clone(), server.pid());
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Some(r) = procs::rss_kib(pid) {
                    peak.fetch_max(r, Ordering::Relaxed);
                }
                thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let (probes_sent, probes_ok) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let prober = {
        let (stop, sent, ok) = (stop.clone(), probes_sent.clone(), probes_ok.clone());
        let sources: Vec<Ipv4Addr> = (10..=250).map(|h| block.addr(h)).collect();
        thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let src = SocketAddr::from((sources[i % sources.len()], 0));
                i += 1;
                sent.fetch_add(1, Ordering::Relaxed);
                let timeout = Duration::from_millis(400);
                if let Ok(Reply::Time { .. }) = ntp::query(src, server_addr, timeout) {
                    ok.fetch_add(1, Ordering::Relaxed);
                }
                thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let (sent, secs) = spoofed_mode6(server_addr, a)?;
    thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    let _ = prober.join();
    let rss1 = server.rss_kib().unwrap_or(0);
    let text = scrape(metrics).unwrap_or_default();
    let metric = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let after =
        ntp::query(SocketAddr::from((block.addr(251), 0)), server_addr, Duration::from_secs(2));
    println!("\n== loopback sources (rntpd on {server_addr}, 10^4 spoofed 127.a.b.c) ==");
    println!("{sent} requests sent in {secs:.1} s ({:.0}/s)", sent as f64 / secs);
    println!(
        "rntpd mode 6: requests {}, answered {}, octets in {}, out {}, datagrams out {}",
        metric("rntpd_control_requests_total"),
        metric("rntpd_control_answered_total"),
        metric("rntpd_control_received_bytes_total"),
        metric("rntpd_control_sent_bytes_total"),
        metric("rntpd_control_datagrams_sent_total"),
    );
    println!("rntpd VmRSS KiB: before {rss0}, peak {}, after {rss1}", peak.load(Ordering::Relaxed));
    println!(
        "legitimate time probes during the flood: {}/{} answered; after: {}",
        probes_ok.load(Ordering::Relaxed),
        probes_sent.load(Ordering::Relaxed),
        matches!(after, Ok(Reply::Time { .. }))
    );
    server.stop();
    Ok(matches!(after, Ok(Reply::Time { .. })) && probes_ok.load(Ordering::Relaxed) > 0)
}

/// Sends `a.requests` mode 6 requests from 10^4 spoofed loopback sources.
fn spoofed_mode6(server: SocketAddr, a: &Mode6FloodArgs) -> Result<(u64, f64), String> {
    let sock =
        UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)).map_err(|e| e.to_string())?;
    setsockopt(&sock, sockopt::RcvBuf, &4096).map_err(|e| e.to_string())?;
    let SocketAddr::V4(server_v4) = server else { return Err("IPv4 only".into()) };
    let dest = SockaddrIn::from(server_v4);
    let fd = sock.as_raw_fd();
    let mut rng = Rng::from_os();
    let sources: Vec<u32> = (0..SOURCES)
        .map(|_| {
            let r = rng.next_u64();
            u32::from_be_bytes([
                127,
                20 + (r % 200) as u8,
                (r >> 8) as u8,
                1 + ((r >> 16) % 254) as u8,
            ])
        })
        .collect();
    let reqs = requests();
    let (start, bound) = (Instant::now(), Duration::from_secs(a.max_secs));
    let mut sent = 0u64;
    while sent < a.requests && start.elapsed() < bound {
        let r = rng.next_u64();
        let ip = sources[(r % SOURCES as u64) as usize];
        let info = libc::in_pktinfo {
            ipi_ifindex: 0,
            ipi_spec_dst: libc::in_addr { s_addr: ip.to_be() },
            ipi_addr: libc::in_addr { s_addr: 0 },
        };
        let req = &reqs[((r >> 32) % reqs.len() as u64) as usize];
        let iov = [IoSlice::new(req)];
        let cmsg = [ControlMessage::Ipv4PacketInfo(&info)];
        let _ = sendmsg(fd, &iov, &cmsg, MsgFlags::empty(), Some(&dest));
        sent += 1;
    }
    Ok((sent, start.elapsed().as_secs_f64()))
}

/// `GET /metrics` over a plain TCP connection.
fn scrape(addr: SocketAddr) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: rntpd\r\n\r\n")?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    Ok(text)
}
