//! `flood`: abuse rntpd with malformed requests and with requests from spoofed sources, and
//! show that its memory stays bounded and that it keeps serving a legitimate client.
//!
//! * Malformed: a mix of datagrams a correct server must drop unanswered (shorter than a
//!   header, versions 0/5/6/7, every non-client mode, trailers that are neither a MAC nor an
//!   extension field, extension fields with impossible lengths, up to 1200 bytes of mode-6/7
//!   junk), from a few sockets of one source address. Replies to them are counted: the
//!   expected number is 0.
//! * Spoofed: valid client requests, each from a random 127.a.b.c source (a ≠ 0). On Linux
//!   every 127/8 address is local on `lo`, so one wildcard socket can send from any of them
//!   with IP_PKTINFO, and the replies come back to it (they are never read; a tiny receive
//!   buffer drops them). This is what fills a per-client rate table: with rntpd's default
//!   restrictions (`kod limited noquery`) every new source needs a slot.
//! * Meanwhile a prober queries every 500 ms, each time from a fresh address of our block
//!   (a legitimate client's first request always passes the rate limiter), and counts
//!   answers; afterwards three fresh clients must be answered.
//! * rntpd's VmRSS is sampled every 20 ms; the report gives before, peak during, and after,
//!   plus `rntpctl status --json`'s server counters and rate table occupancy.
//!
//! Bounded: each phase stops after its count or its share of `--max-secs`, whichever is first.

use crate::ntp::{self, Reply, Rng};
use crate::procs::{self, Block, Server};
use nix::sys::socket::{sendmsg, setsockopt, sockopt, ControlMessage, MsgFlags, SockaddrIn};
use std::io::IoSlice;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// Sockets the malformed flood is spread over.
const MALFORMED_SOCKETS: usize = 8;
/// How often the prober queries during the flood.
const PROBE_EVERY: Duration = Duration::from_millis(500);
/// How long one probe waits for its answer.
const PROBE_TIMEOUT: Duration = Duration::from_millis(400);
/// RSS sampling interval.
const RSS_EVERY: Duration = Duration::from_millis(20);

/// `flood` options.
#[derive(Debug, clap::Args)]
pub struct FloodArgs {
    /// Malformed requests to send.
    #[arg(long, default_value_t = 1_000_000)]
    malformed: u64,
    /// Requests from spoofed sources to send.
    #[arg(long, default_value_t = 1_000_000)]
    spoofed: u64,
    /// Send rate, req/s (0 = as fast as the generator goes; the kernel then drops what rntpd
    /// cannot read, which the report shows).
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Bound on the whole flood, seconds.
    #[arg(long, default_value_t = 120)]
    max_secs: u64,
    /// rntpd's port.
    #[arg(long, default_value_t = 12391)]
    port: u16,
    /// Extra ntp.conf lines, e.g. "restrict default" (default: none, i.e. rntpd's default
    /// restrictions `kod limited noquery`, so every source goes through the rate table).
    #[arg(long, default_value = "")]
    config: String,
    /// CPU rntpd is pinned to.
    #[arg(long, default_value_t = 1)]
    server_cpu: usize,
    /// CPU the flood is sent from.
    #[arg(long, default_value_t = 0)]
    gen_cpu: usize,
}

/// Legitimate probes: sent and answered.
#[derive(Default)]
struct ProbeCount {
    sent: AtomicU64,
    answered: AtomicU64,
}

/// Runs the flood benchmark.
pub fn run(
    rntpd: &Path,
    rntpctl: &Path,
    work: &Path,
    block: &Block,
    a: &FloodArgs,
) -> Result<(), String> {
    procs::pin_self(a.gen_cpu)?;
    let server_addr = SocketAddr::from((block.addr(1), a.port));
    let mut config = "tos orphan 3\n".to_string();
    if !a.config.is_empty() {
        // A literal \n separates lines: `--config 'restrict default\ndiscard minimum 1'`.
        config += &a.config.replace("\\n", "\n");
        config.push('\n');
    }
    let mut server = Server::rntpd(rntpd, rntpctl, work, server_addr, &config, Some(a.server_cpu))?;
    server.wait_ready(block.addr(4))?;
    println!(
        "rntpd pid {} on {server_addr}, CPU {}; config:\n{config}",
        server.pid(),
        a.server_cpu
    );
    let status0 = server.status_json()?;
    let rss0 = server.rss_kib().unwrap_or(0);
    let drops0 = udp_rcvbuf_errors();

    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(rss0));
    let sampler = {
        let (stop, peak, pid) = (stop.clone(), peak.clone(), server.pid());
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Some(r) = procs::rss_kib(pid) {
                    peak.fetch_max(r, Ordering::Relaxed);
                }
                thread::sleep(RSS_EVERY);
            }
        })
    };
    let probes = Arc::new(ProbeCount::default());
    let prober = {
        let (stop, probes) = (stop.clone(), probes.clone());
        let sources: Vec<Ipv4Addr> = (10..=250).map(|h| block.addr(h)).collect();
        thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let src = SocketAddr::from((sources[i % sources.len()], 0));
                i += 1;
                probes.sent.fetch_add(1, Ordering::Relaxed);
                if let Ok(Reply::Time { .. }) = ntp::query(src, server_addr, PROBE_TIMEOUT) {
                    probes.answered.fetch_add(1, Ordering::Relaxed);
                }
                thread::sleep(PROBE_EVERY.saturating_sub(PROBE_TIMEOUT));
            }
        })
    };

    let half = Duration::from_secs(a.max_secs) / 2;
    let mut rng = Rng::from_os();
    let (m_sent, m_secs, m_replies) = malformed(block.addr(3), server_addr, a, half, &mut rng)?;
    let rss_mid = server.rss_kib().unwrap_or(0);
    let status_mid = server.status_json()?;
    let (s_sent, s_secs) = spoofed(server_addr, a, half, &mut rng)?;

    // Let rntpd read what is still queued before the final numbers.
    thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    let _ = prober.join();
    let status1 = server.status_json()?;
    let rss1 = server.rss_kib().unwrap_or(0);
    let drops1 = udp_rcvbuf_errors();
    let after: Vec<bool> = [251u8, 252, 253]
        .iter()
        .map(|&h| {
            matches!(
                ntp::query(
                    SocketAddr::from((block.addr(h), 0)),
                    server_addr,
                    Duration::from_secs(2)
                ),
                Ok(Reply::Time { .. })
            )
        })
        .collect();
    let alive = server.rss_kib().is_some();

    let srv = |s: &serde_json::Value, k: &str| s["server"][k].as_u64().unwrap_or(0);
    println!("\n{:<34} {:>12} {:>8} {:>12}", "phase", "sent", "secs", "sent/s");
    println!("{:<34} {m_sent:>12} {m_secs:>8.1} {:>12.0}", "malformed", m_sent as f64 / m_secs);
    println!(
        "{:<34} {s_sent:>12} {s_secs:>8.1} {:>12.0}",
        "spoofed sources",
        s_sent as f64 / s_secs
    );
    println!(
        "\nrntpd requests seen: {} during malformed, {} during spoofed (kernel UDP RcvbufErrors, \
         all sockets: +{})",
        srv(&status_mid, "requests").saturating_sub(srv(&status0, "requests")),
        srv(&status1, "requests").saturating_sub(srv(&status_mid, "requests")),
        drops1.saturating_sub(drops0)
    );
    println!("replies to malformed requests: {m_replies} (expected 0)");
    println!(
        "server counters after: requests {} replies {} kod_rate {} kod_deny {} crypto_naks {}",
        srv(&status1, "requests"),
        srv(&status1, "replies"),
        srv(&status1, "kod_rate"),
        srv(&status1, "kod_deny"),
        srv(&status1, "crypto_naks")
    );
    println!("dropped: {}", status1["server"]["dropped"]);
    println!(
        "rate table: {} / {} slots used",
        srv(&status1, "rate_table_used"),
        srv(&status1, "rate_table_capacity")
    );
    println!(
        "VmRSS KiB: before {rss0}, after malformed {rss_mid}, peak {}, after {rss1}",
        peak.load(Ordering::Relaxed)
    );
    println!(
        "legitimate probes during the flood: {}/{} answered; after: {:?}; rntpd alive: {alive}",
        probes.answered.load(Ordering::Relaxed),
        probes.sent.load(Ordering::Relaxed),
        after
    );
    server.stop();
    if !alive || after.iter().any(|ok| !ok) {
        return Err("rntpd stopped serving legitimate clients after the flood".into());
    }
    Ok(())
}

/// Sends `a.malformed` malformed datagrams; returns (sent, seconds, replies received).
fn malformed(
    src: Ipv4Addr,
    server: SocketAddr,
    a: &FloodArgs,
    bound: Duration,
    rng: &mut Rng,
) -> Result<(u64, f64, u64), String> {
    let socks: Vec<UdpSocket> = (0..MALFORMED_SOCKETS)
        .map(|_| {
            let s = UdpSocket::bind(SocketAddrV4::new(src, 0))?;
            s.connect(server)?;
            s.set_nonblocking(true)?;
            Ok(s)
        })
        .collect::<std::io::Result<_>>()
        .map_err(|e: std::io::Error| e.to_string())?;
    let mut buf = [0u8; 1200];
    let mut replies = 0u64;
    let mut rbuf = [0u8; 1500];
    let start = Instant::now();
    let mut sent = 0u64;
    while sent < a.malformed && start.elapsed() < bound {
        if !pace(a.rate, sent, start) {
            continue;
        }
        let len = malformed_packet(&mut buf, rng);
        let s = &socks[sent as usize % MALFORMED_SOCKETS];
        // ECONNREFUSED etc. would mean the server is gone: the final check reports that.
        let _ = s.send(&buf[..len]);
        sent += 1;
        if sent.is_multiple_of(4096) {
            for s in &socks {
                while s.recv(&mut rbuf).is_ok() {
                    replies += 1;
                }
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    thread::sleep(Duration::from_millis(200));
    for s in &socks {
        while s.recv(&mut rbuf).is_ok() {
            replies += 1;
        }
    }
    Ok((sent, secs, replies))
}

/// Builds one malformed datagram in `buf`; returns its length.
fn malformed_packet(buf: &mut [u8; 1200], rng: &mut Rng) -> usize {
    let fill = |buf: &mut [u8], rng: &mut Rng| {
        for chunk in buf.chunks_mut(8) {
            let r = rng.next_u64().to_ne_bytes();
            chunk.copy_from_slice(&r[..chunk.len()]);
        }
    };
    match rng.below(6) {
        // Shorter than a header.
        0 => {
            let len = 1 + rng.below(47) as usize;
            fill(&mut buf[..len], rng);
            len
        }
        // Version 0, 5, 6 or 7, client mode.
        1 => {
            fill(&mut buf[..48], rng);
            let v = [0u8, 5, 6, 7][rng.below(4) as usize];
            buf[0] = (v << 3) | 3;
            48
        }
        // NTPv4 in a mode that is not a client request.
        2 => {
            fill(&mut buf[..48], rng);
            let mode = [0u8, 1, 2, 4, 5, 6, 7][rng.below(7) as usize];
            buf[0] = (4 << 3) | mode;
            48
        }
        // A client request with a trailer that is neither a MAC (4, 20, 24 bytes) nor long
        // enough for an extension field (16).
        3 => {
            let extra = [1usize, 2, 3, 5, 6, 7, 8, 9, 12, 13][rng.below(10) as usize];
            fill(&mut buf[..48 + extra], rng);
            buf[0] = (4 << 3) | 3;
            48 + extra
        }
        // A client request with an extension field whose length is impossible: 0, not a
        // multiple of 4, or beyond the datagram.
        4 => {
            fill(&mut buf[..64], rng);
            buf[0] = (4 << 3) | 3;
            let l: u16 = [0u16, 15, 17, 1000][rng.below(4) as usize];
            buf[50..52].copy_from_slice(&l.to_be_bytes());
            64
        }
        // Control/private-mode junk of any length up to 1200 bytes.
        _ => {
            let len = 1 + rng.below(1200) as usize;
            fill(&mut buf[..len], rng);
            buf[0] = (buf[0] & 0xF8) | (6 + rng.below(2) as u8);
            len
        }
    }
}

/// Sends `a.spoofed` valid requests, each from a random 127.a.b.c; returns (sent, seconds).
fn spoofed(
    server: SocketAddr,
    a: &FloodArgs,
    bound: Duration,
    rng: &mut Rng,
) -> Result<(u64, f64), String> {
    let sock =
        UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)).map_err(|e| e.to_string())?;
    // The replies to spoofed sources land here; nobody reads them, so keep the buffer tiny.
    setsockopt(&sock, sockopt::RcvBuf, &4096).map_err(|e| e.to_string())?;
    let SocketAddr::V4(server_v4) = server else { return Err("IPv4 only".into()) };
    let dest = SockaddrIn::from(server_v4);
    let fd = sock.as_raw_fd();
    let server_ip = u32::from(*server_v4.ip());
    let start = Instant::now();
    let mut sent = 0u64;
    let mut send_errors = 0u64;
    while sent < a.spoofed && start.elapsed() < bound {
        if !pace(a.rate, sent, start) {
            continue;
        }
        let r = rng.next_u64();
        // 127.a.b.c with a in 1..=255, c in 1..=254 (no network or broadcast-looking hosts).
        let ip = u32::from_be_bytes([
            127,
            1 + (r % 255) as u8,
            (r >> 8) as u8,
            1 + ((r >> 16) % 254) as u8,
        ]);
        if ip == server_ip {
            continue;
        }
        let info = libc::in_pktinfo {
            ipi_ifindex: 0,
            ipi_spec_dst: libc::in_addr { s_addr: ip.to_be() },
            ipi_addr: libc::in_addr { s_addr: 0 },
        };
        let req = ntp::request(rng.next_u64());
        let iov = [IoSlice::new(&req)];
        let cmsg = [ControlMessage::Ipv4PacketInfo(&info)];
        if sendmsg(fd, &iov, &cmsg, MsgFlags::empty(), Some(&dest)).is_err() {
            send_errors += 1;
            if send_errors > 1000 && send_errors > sent {
                return Err("sendmsg with IP_PKTINFO keeps failing".into());
            }
        }
        sent += 1;
    }
    Ok((sent, start.elapsed().as_secs_f64()))
}

/// Token bucket: whether packet number `sent` is due (always, when `rate` is 0).
fn pace(rate: f64, sent: u64, start: Instant) -> bool {
    if rate <= 0.0 || sent as f64 / rate <= start.elapsed().as_secs_f64() {
        return true;
    }
    thread::yield_now();
    false
}

/// The kernel's count of UDP datagrams dropped for a full receive buffer (all sockets).
fn udp_rcvbuf_errors() -> u64 {
    let snmp = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let (Some(names), Some(values)) = (udp.next(), udp.next()) else { return 0 };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "RcvbufErrors")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}
