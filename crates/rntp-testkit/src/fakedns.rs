//! A small fault-injecting DNS server for tests: answers A/AAAA queries per name according to
//! rules the test changes at runtime (answer, SERVFAIL, NXDOMAIN with an SOA, REFUSED, silence,
//! a delay, truncation over UDP), over UDP and TCP on one loopback addr:port, and counts queries.
//!
//! Why not dnsmasq: dnsmasq cannot produce SERVFAIL, slow answers or truncation (testbed.md §3),
//! and those are exactly the failures a daemon must survive without stalling.
//!
//! std only (threads, `UdpSocket`, `TcpListener`): the wire format is hand-written, which is
//! small for the subset needed here. Queries are parsed defensively (every read bounds-checked);
//! anything that is not a well-formed single-question QUERY is ignored, never a panic. Names
//! without a rule get REFUSED (not our zone). Not covered: EDNS (an OPT record in a query is
//! ignored and none is sent back), compression in queries, classes other than IN, DNSSEC.
//!
//! ```ignore
//! let dns = FakeDns::start(block.sock(53, 10053));
//! dns.set_rule("sf.test", Rule::ServFail);
//! dns.set_rule("ntp.test", Rule::Answer { addrs: vec![ip], ttl: 5 });
//! assert_eq!(dns.queries("ntp.test", fakedns::A), 0);
//! ```

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// QTYPE A.
pub const A: u16 = 1;
/// QTYPE AAAA.
pub const AAAA: u16 = 28;
const SOA: u16 = 6;
const CLASS_IN: u16 = 1;

const RCODE_NOERROR: u8 = 0;
const RCODE_SERVFAIL: u8 = 2;
const RCODE_NXDOMAIN: u8 = 3;
const RCODE_REFUSED: u8 = 5;

/// Largest UDP answer for a query without EDNS (RFC 1035 §4.2.1); larger ones are truncated.
const UDP_MAX: usize = 512;

/// How often the server threads look at the stop flag (and at due delayed UDP answers): bounds
/// both the shutdown time and the extra latency of a [`Rule::Delay`].
const TICK: Duration = Duration::from_millis(20);

/// How long [`Drop`] waits for the threads before giving up on them (they only sleep in
/// [`TICK`] steps, so this is never reached unless something is badly wrong).
const JOIN_BOUND: Duration = Duration::from_secs(5);

/// How the server answers one name (both A and AAAA queries).
#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    /// NOERROR with the addresses of the asked family (none of it: NODATA, with an SOA).
    Answer {
        /// Addresses, answered in this order.
        addrs: Vec<IpAddr>,
        /// TTL of each record (s).
        ttl: u32,
    },
    /// SERVFAIL.
    ServFail,
    /// NXDOMAIN with an SOA in the authority section, so resolvers learn a negative TTL.
    NxDomain {
        /// The SOA's TTL and MINIMUM (s).
        negative_ttl: u32,
    },
    /// REFUSED.
    Refused,
    /// No answer at all (UDP and TCP): the client times out.
    Drop,
    /// Waits, then answers per the inner rule.
    Delay(Duration, Box<Rule>),
    /// Over UDP: TC=1 and no answers; over TCP: the full answer as [`Rule::Answer`].
    Truncate {
        /// Addresses.
        addrs: Vec<IpAddr>,
        /// TTL (s).
        ttl: u32,
    },
}

/// Which transport a query came over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// UDP.
    Udp,
    /// TCP (length-prefixed).
    Tcp,
}

struct Shared {
    rules: Mutex<HashMap<String, Rule>>,
    /// Queries per (lower-case name without trailing dot, qtype, transport).
    counts: Mutex<HashMap<(String, u16, Transport), usize>>,
    stop: AtomicBool,
    /// TCP connection threads, joined on drop.
    conns: Mutex<Vec<JoinHandle<()>>>,
}

/// A running fake DNS server; stops (bounded) on drop.
pub struct FakeDns {
    addr: SocketAddr,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl FakeDns {
    /// Binds UDP and TCP on `addr` (port 0: any free port, the same for both) and starts
    /// serving. Panics if either cannot be bound (tests); see [`FakeDns::try_start`].
    pub fn start(addr: SocketAddr) -> FakeDns {
        FakeDns::try_start(addr).unwrap_or_else(|e| panic!("fake DNS on {addr}: {e}"))
    }

    /// [`FakeDns::start`], with the error instead of a panic (benchmarks).
    pub fn try_start(addr: SocketAddr) -> std::io::Result<FakeDns> {
        let udp = UdpSocket::bind(addr)?;
        let addr = udp.local_addr()?;
        let tcp = TcpListener::bind(addr)?;
        udp.set_read_timeout(Some(TICK))?;
        // Non-blocking accept, polled every TICK: std has no accept timeout.
        tcp.set_nonblocking(true)?;
        let shared = Arc::new(Shared {
            rules: Mutex::new(HashMap::new()),
            counts: Mutex::new(HashMap::new()),
            stop: AtomicBool::new(false),
            conns: Mutex::new(Vec::new()),
        });
        let s = Arc::clone(&shared);
        let udp_thread =
            thread::Builder::new().name("fakedns-udp".into()).spawn(move || serve_udp(&udp, &s))?;
        let s = Arc::clone(&shared);
        let tcp_thread =
            thread::Builder::new().name("fakedns-tcp".into()).spawn(move || serve_tcp(&tcp, &s))?;
        Ok(FakeDns { addr, shared, threads: vec![udp_thread, tcp_thread] })
    }

    /// Where it listens (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sets (or replaces) the rule for `name` (case-insensitive, trailing dot optional); takes
    /// effect for the next query.
    pub fn set_rule(&self, name: &str, rule: Rule) {
        self.shared.rules.lock().unwrap().insert(key(name), rule);
    }

    /// Queries for `name` with `qtype` received so far, over either transport.
    pub fn queries(&self, name: &str, qtype: u16) -> usize {
        self.queries_over(name, qtype, Transport::Udp)
            + self.queries_over(name, qtype, Transport::Tcp)
    }

    /// Queries for `name` with `qtype` received so far over `transport`.
    pub fn queries_over(&self, name: &str, qtype: u16, transport: Transport) -> usize {
        let counts = self.shared.counts.lock().unwrap();
        counts.get(&(key(name), qtype, transport)).copied().unwrap_or(0)
    }
}

impl Drop for FakeDns {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + JOIN_BOUND;
        let mut handles: Vec<JoinHandle<()>> = std::mem::take(&mut self.threads);
        // The TCP thread may add connection threads until it has seen the flag: join it first.
        let tcp = handles.pop();
        join_bounded(tcp.into_iter().collect(), deadline);
        handles.extend(std::mem::take(&mut *self.shared.conns.lock().unwrap()));
        join_bounded(handles, deadline);
    }
}

/// Joins threads that have finished by `deadline`; reports (and detaches) the others rather
/// than hang the test.
fn join_bounded(handles: Vec<JoinHandle<()>>, deadline: Instant) {
    for h in handles {
        while !h.is_finished() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
        if h.is_finished() {
            let _ = h.join();
        } else {
            eprintln!("fake DNS: thread {:?} did not stop in time; detached", h.thread().name());
        }
    }
}

fn key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

// ---------------------------------------------------------------------------------------------
// Transports

fn serve_udp(sock: &UdpSocket, shared: &Shared) {
    // Delayed answers wait here instead of in a thread each: (due, packet, client).
    let mut pending: Vec<(Instant, Vec<u8>, SocketAddr)> = Vec::new();
    let mut buf = [0u8; 4096];
    while !shared.stop.load(Ordering::SeqCst) {
        let now = Instant::now();
        pending.retain(|(due, packet, to)| {
            if *due <= now {
                let _ = sock.send_to(packet, to);
                false
            } else {
                true
            }
        });
        let (n, from) = match sock.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            // E.g. ECONNREFUSED reported for an earlier send: keep serving.
            Err(_) => continue,
        };
        let Some(query) = Query::parse(&buf[..n]) else { continue };
        shared.count(&query, Transport::Udp);
        let (delay, reply) = respond(&query, &shared.rule(&query.name), Transport::Udp);
        if let Some(packet) = reply {
            if delay.is_zero() {
                let _ = sock.send_to(&packet, from);
            } else {
                pending.push((now + delay, packet, from));
            }
        }
    }
}

fn serve_tcp(listener: &TcpListener, shared: &Arc<Shared>) {
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                let s = Arc::clone(shared);
                let h = thread::Builder::new()
                    .name("fakedns-conn".into())
                    .spawn(move || serve_conn(stream, &s))
                    .expect("spawn TCP connection thread");
                let mut conns = shared.conns.lock().unwrap();
                conns.retain(|c| !c.is_finished());
                conns.push(h);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => thread::sleep(TICK),
            Err(_) => thread::sleep(TICK),
        }
    }
}

/// One TCP connection: 2-byte length-prefixed messages (RFC 1035 §4.2.2) until the client
/// closes, a framing error, or stop.
fn serve_conn(mut stream: TcpStream, shared: &Shared) {
    if stream.set_nonblocking(false).is_err() || stream.set_read_timeout(Some(TICK)).is_err() {
        return;
    }
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 4096];
    while !shared.stop.load(Ordering::SeqCst) {
        // Complete messages first; a partial one waits for more bytes.
        while buf.len() >= 2 {
            let len = usize::from(u16::from_be_bytes([buf[0], buf[1]]));
            if buf.len() < 2 + len {
                break;
            }
            let msg: Vec<u8> = buf.drain(..2 + len).skip(2).collect();
            let Some(query) = Query::parse(&msg) else { continue };
            shared.count(&query, Transport::Tcp);
            let (delay, reply) = respond(&query, &shared.rule(&query.name), Transport::Tcp);
            if !sleep_unless_stopped(delay, shared) {
                return;
            }
            if let Some(packet) = reply {
                let mut framed = (packet.len() as u16).to_be_bytes().to_vec();
                framed.extend_from_slice(&packet);
                if stream.write_all(&framed).is_err() {
                    return;
                }
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
    }
}

/// Sleeps `d` in [`TICK`] steps; false if stop was requested meanwhile.
fn sleep_unless_stopped(d: Duration, shared: &Shared) -> bool {
    let until = Instant::now() + d;
    while Instant::now() < until {
        if shared.stop.load(Ordering::SeqCst) {
            return false;
        }
        thread::sleep(TICK.min(until.saturating_duration_since(Instant::now())));
    }
    true
}

impl Shared {
    fn count(&self, q: &Query, t: Transport) {
        *self.counts.lock().unwrap().entry((q.name.clone(), q.qtype, t)).or_insert(0) += 1;
    }

    /// The rule for `name`; REFUSED for names nobody set a rule for.
    fn rule(&self, name: &str) -> Rule {
        self.rules.lock().unwrap().get(name).cloned().unwrap_or(Rule::Refused)
    }
}

// ---------------------------------------------------------------------------------------------
// Wire format

/// A parsed query: what the answer needs from it.
#[derive(Debug)]
struct Query {
    id: u16,
    /// The RD bit, echoed.
    rd: bool,
    /// Lower-case, dot-separated, no trailing dot.
    name: String,
    qtype: u16,
    /// The question section exactly as received (QNAME QTYPE QCLASS), echoed in the answer.
    question: Vec<u8>,
    /// Length of the first label, for the SOA owner (the parent of the asked name).
    first_label: usize,
}

/// Bounds-checked big-endian u16 at `at`.
fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

impl Query {
    /// Parses a query; `None` for anything that is not a well-formed standard query with one
    /// IN question (responses, other opcodes, compression pointers, oversized names).
    fn parse(msg: &[u8]) -> Option<Query> {
        let id = be16(msg, 0)?;
        let flags = be16(msg, 2)?;
        let qr = flags & 0x8000 != 0;
        let opcode = (flags >> 11) & 0xF;
        if qr || opcode != 0 || be16(msg, 4)? != 1 {
            return None;
        }
        let mut pos = 12;
        let mut labels: Vec<String> = Vec::new();
        let mut wire_len = 0usize;
        loop {
            let len = usize::from(*msg.get(pos)?);
            pos += 1;
            wire_len += 1 + len;
            // A pointer (0xC0) or the reserved label types (0x40, 0x80), or a name over 255.
            if len > 63 || wire_len > 255 {
                return None;
            }
            if len == 0 {
                break;
            }
            let label = msg.get(pos..pos + len)?;
            labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
            pos += len;
        }
        let qtype = be16(msg, pos)?;
        let qclass = be16(msg, pos + 2)?;
        if qclass != CLASS_IN || labels.is_empty() {
            return None;
        }
        let question = msg.get(12..pos + 4)?.to_vec();
        Some(Query {
            id,
            rd: flags & 0x0100 != 0,
            first_label: labels[0].len(),
            name: labels.join("."),
            qtype,
            question,
        })
    }
}

/// The answer to `q` under `rule` over `transport`: how long to wait before sending it, and
/// the packet (`None`: stay silent).
fn respond(q: &Query, rule: &Rule, transport: Transport) -> (Duration, Option<Vec<u8>>) {
    match rule {
        Rule::Delay(d, inner) => {
            let (more, packet) = respond(q, inner, transport);
            (*d + more, packet)
        }
        Rule::Drop => (Duration::ZERO, None),
        Rule::ServFail => (Duration::ZERO, Some(header_only(q, RCODE_SERVFAIL, false))),
        Rule::Refused => (Duration::ZERO, Some(header_only(q, RCODE_REFUSED, false))),
        Rule::NxDomain { negative_ttl } => {
            (Duration::ZERO, Some(message(q, RCODE_NXDOMAIN, &[], 0, Some(*negative_ttl))))
        }
        Rule::Truncate { .. } if transport == Transport::Udp => {
            (Duration::ZERO, Some(header_only(q, RCODE_NOERROR, true)))
        }
        Rule::Answer { addrs, ttl } | Rule::Truncate { addrs, ttl } => {
            let wanted: Vec<IpAddr> = addrs
                .iter()
                .copied()
                .filter(|a| match q.qtype {
                    A => a.is_ipv4(),
                    AAAA => a.is_ipv6(),
                    _ => false,
                })
                .collect();
            // NODATA carries an SOA like NXDOMAIN, so the "no AAAA" answer has a TTL too.
            let soa = wanted.is_empty().then_some(*ttl);
            let packet = message(q, RCODE_NOERROR, &wanted, *ttl, soa);
            if transport == Transport::Udp && packet.len() > UDP_MAX {
                (Duration::ZERO, Some(header_only(q, RCODE_NOERROR, true)))
            } else {
                (Duration::ZERO, Some(packet))
            }
        }
    }
}

/// Header + question, no records.
fn header_only(q: &Query, rcode: u8, tc: bool) -> Vec<u8> {
    let mut m = header(q, rcode, tc, 0, 0);
    m.extend_from_slice(&q.question);
    m
}

fn header(q: &Query, rcode: u8, tc: bool, ancount: u16, nscount: u16) -> Vec<u8> {
    // QR=1, opcode 0, AA=1, TC, RD echoed, RA=1 (resolvers may treat RA=0 as "not for me").
    let mut flags: u16 = 0x8000 | 0x0400 | 0x0080 | u16::from(rcode & 0xF);
    if tc {
        flags |= 0x0200;
    }
    if q.rd {
        flags |= 0x0100;
    }
    let mut m = Vec::with_capacity(512);
    for v in [q.id, flags, 1, ancount, nscount, 0] {
        m.extend_from_slice(&v.to_be_bytes());
    }
    m
}

/// A full message: header, question, one A/AAAA record per address (owner = pointer to the
/// question name at offset 12), and optionally an SOA for the parent zone in authority.
fn message(q: &Query, rcode: u8, addrs: &[IpAddr], ttl: u32, soa_ttl: Option<u32>) -> Vec<u8> {
    let mut m = header(q, rcode, false, addrs.len() as u16, u16::from(soa_ttl.is_some()));
    m.extend_from_slice(&q.question);
    const NAME_PTR: [u8; 2] = [0xC0, 12];
    for a in addrs {
        m.extend_from_slice(&NAME_PTR);
        let (rtype, rdata) = match a {
            IpAddr::V4(v4) => (A, v4.octets().to_vec()),
            IpAddr::V6(v6) => (AAAA, v6.octets().to_vec()),
        };
        push_rr_head(&mut m, rtype, ttl, rdata.len());
        m.extend_from_slice(&rdata);
    }
    if let Some(neg) = soa_ttl {
        // Zone apex: the parent of the asked name ("test." for "nx.test."), or the name itself
        // if it has a single label. A pointer into the echoed question either way.
        let zone_off = if q.name.contains('.') { 12 + 1 + q.first_label } else { 12 };
        let zone_ptr = [0xC0 | (zone_off >> 8) as u8, zone_off as u8];
        m.extend_from_slice(&zone_ptr);
        let mut rdata = Vec::new();
        // MNAME ns.ZONE, RNAME hostmaster.ZONE.
        for label in ["ns", "hostmaster"] {
            rdata.push(label.len() as u8);
            rdata.extend_from_slice(label.as_bytes());
            rdata.extend_from_slice(&zone_ptr);
        }
        // SERIAL REFRESH RETRY EXPIRE MINIMUM (MINIMUM = the negative TTL, RFC 2308).
        for v in [1u32, 3600, 600, 86400, neg] {
            rdata.extend_from_slice(&v.to_be_bytes());
        }
        push_rr_head(&mut m, SOA, neg, rdata.len());
        m.extend_from_slice(&rdata);
    }
    m
}

/// TYPE CLASS TTL RDLENGTH of a record whose owner name was just written.
fn push_rr_head(m: &mut Vec<u8>, rtype: u16, ttl: u32, rdlen: usize) {
    m.extend_from_slice(&rtype.to_be_bytes());
    m.extend_from_slice(&CLASS_IN.to_be_bytes());
    m.extend_from_slice(&ttl.to_be_bytes());
    m.extend_from_slice(&(rdlen as u16).to_be_bytes());
}
