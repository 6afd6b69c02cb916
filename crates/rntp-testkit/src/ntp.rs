//! The few NTP packet facts tests and load generators need: building a client request around a
//! nonce, recognising a valid server reply, a one-shot query for readiness checks, and nonces
//! that map back to sequence numbers.

use std::io::{self, Read};
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Length of an NTP header without extensions or MAC.
pub const HEADER_LEN: usize = 48;
/// Where the origin timestamp lives in a reply.
const ORIGIN_AT: usize = 24;
/// Where the transmit timestamp lives.
const TRANSMIT_AT: usize = 40;
/// Seconds from 1900 (NTP era 0) to 1970.
const NTP_UNIX_DELTA: u64 = 2_208_988_800;

/// A client request (LI 0, VN 4, mode 3, poll 6) whose transmit timestamp is `nonce`: the
/// server echoes it as origin, which is how a reply is matched to its request.
pub fn request(nonce: u64) -> [u8; HEADER_LEN] {
    let mut p = [0u8; HEADER_LEN];
    p[0] = 4 << 3 | 3;
    p[2] = 6;
    p[TRANSMIT_AT..].copy_from_slice(&nonce.to_be_bytes());
    p
}

/// What a datagram from the server is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// A server reply (mode 4, version 4, stratum 1..=15).
    Time {
        /// Its origin timestamp: the nonce of the request it answers.
        origin: u64,
        /// Stratum.
        stratum: u8,
        /// Leap indicator.
        leap: u8,
    },
    /// A kiss-o'-death (stratum 0).
    Kiss {
        /// Its origin timestamp.
        origin: u64,
        /// The kiss code (reference id field).
        code: [u8; 4],
    },
    /// Anything else: short, wrong mode or version, stratum 16.
    Invalid,
}

/// Classifies a datagram received from the server.
pub fn parse_reply(p: &[u8]) -> Reply {
    if p.len() < HEADER_LEN || p[0] & 7 != 4 || (p[0] >> 3) & 7 != 4 {
        return Reply::Invalid;
    }
    let origin = u64::from_be_bytes(p[ORIGIN_AT..ORIGIN_AT + 8].try_into().expect("8 bytes"));
    match p[1] {
        0 => Reply::Kiss { origin, code: p[12..16].try_into().expect("4 bytes") },
        s @ 1..=15 => Reply::Time { origin, stratum: s, leap: p[0] >> 6 },
        _ => Reply::Invalid,
    }
}

/// Now as an NTP timestamp (only for readiness checks; the load uses nonces).
pub fn now_ntp() -> u64 {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970");
    let frac = (u64::from(d.subsec_nanos()) << 32) / 1_000_000_000;
    ((d.as_secs() + NTP_UNIX_DELTA) << 32) | frac
}

/// One exchange from `src` (port 0) to `server`; the reply as classified, or an error if
/// nothing matching arrives within `timeout`.
pub fn query(src: SocketAddr, server: SocketAddr, timeout: Duration) -> io::Result<Reply> {
    let sock = UdpSocket::bind(src)?;
    sock.connect(server)?;
    let nonce = now_ntp();
    sock.send(&request(nonce))?;
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 512];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, format!("no reply from {server}")));
        }
        sock.set_read_timeout(Some(left))?;
        match sock.recv(&mut buf) {
            Ok(n) => match parse_reply(&buf[..n]) {
                r @ (Reply::Time { origin, .. } | Reply::Kiss { origin, .. })
                    if origin == nonce =>
                {
                    return Ok(r)
                }
                _ => continue,
            },
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
            Err(e) => return Err(e),
        }
    }
}

/// The fields of a server reply a test cares about, with the offset and delay of the exchange.
#[derive(Debug, Clone, PartialEq)]
pub struct NtpReply {
    /// Leap indicator (0 = no warning, 3 = unsynchronized).
    pub leap: u8,
    /// Version number of the reply.
    pub version: u8,
    /// Stratum (0 = kiss-o'-death).
    pub stratum: u8,
    /// Reference id, raw.
    pub refid: [u8; 4],
    /// θ in seconds, positive = server ahead of us.
    pub offset: f64,
    /// δ in seconds (round trip minus server processing).
    pub delay: f64,
}

impl NtpReply {
    /// The reference id as ntpq shows it: ASCII for stratum 0/1 (hex if not printable, e.g.
    /// chronyd's 7F7F0101 for `local`), dotted quad otherwise.
    pub fn refid_string(&self) -> String {
        let ascii = self.refid.iter().take_while(|&&b| b != 0);
        if self.stratum > 1 {
            std::net::Ipv4Addr::from(self.refid).to_string()
        } else if ascii.clone().all(|b| b.is_ascii_graphic()) {
            ascii.map(|&b| b as char).collect()
        } else {
            self.refid.iter().map(|b| format!("{b:02X}")).collect()
        }
    }
}

/// `a - b` of two NTP timestamps, in seconds (wrapping difference: exact near an era boundary
/// and with no f64 rounding of the absolute values).
fn diff(a: u64, b: u64) -> f64 {
    a.wrapping_sub(b) as i64 as f64 / 4_294_967_296.0
}

fn ts(packet: &[u8], at: usize) -> u64 {
    packet.get(at..at + 8).and_then(|b| b.try_into().ok()).map_or(0, u64::from_be_bytes)
}

/// One SNTP exchange (RFC 4330 request, RFC 5905 offset and delay) from 127.0.0.1 to `server`:
/// the harness's own oracle. Waits up to `timeout` for the matching reply; only the wall clock
/// is read, never changed.
pub fn exchange(server: SocketAddr, timeout: Duration) -> io::Result<NtpReply> {
    let sock = UdpSocket::bind((std::net::Ipv4Addr::LOCALHOST, 0))?;
    sock.connect(server)?;
    // The transmit timestamp is our nonce, and our T1: the server echoes it as origin.
    let t1 = now_ntp();
    sock.send(&request(t1))?;
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, format!("no reply from {server}")));
        }
        sock.set_read_timeout(Some(left))?;
        let n = match sock.recv(&mut buf) {
            Ok(n) => n,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                continue
            }
            Err(e) => return Err(e), // e.g. ECONNREFUSED: nothing listens there
        };
        let t4 = now_ntp();
        let p = &buf[..n];
        if n < HEADER_LEN || p[0] & 7 != 4 || ts(p, ORIGIN_AT) != t1 {
            continue; // not a server reply to this request
        }
        let (t2, t3) = (ts(p, 32), ts(p, TRANSMIT_AT));
        return Ok(NtpReply {
            leap: p[0] >> 6,
            version: (p[0] >> 3) & 7,
            stratum: p[1],
            refid: [p[12], p[13], p[14], p[15]],
            offset: (diff(t2, t1) + diff(t3, t4)) / 2.0,
            delay: diff(t4, t1) - diff(t3, t2),
        });
    }
}

/// The lowest-delay reply of `count` exchanges (an NTP clock filter in miniature): one exchange
/// on a loaded 2-core machine can be preempted between its timestamps and err by milliseconds;
/// the least delayed one cannot err by more than half its delay.
pub fn exchange_best(server: SocketAddr, count: usize, timeout: Duration) -> io::Result<NtpReply> {
    let mut best: Option<NtpReply> = None;
    let mut last_err = None;
    for _ in 0..count.max(1) {
        match exchange(server, timeout) {
            Ok(r) if best.as_ref().is_none_or(|b| r.delay < b.delay) => best = Some(r),
            Ok(_) => {}
            Err(e) => last_err = Some(e),
        }
    }
    best.ok_or_else(|| last_err.unwrap_or_else(|| io::Error::other("no reply")))
}

/// A keyed permutation of `u64` that turns a sequence number into a random-looking transmit
/// timestamp and back. A reply is then matched to its request by inverting its origin: no hash
/// map on the hot path, and an origin we never sent decodes to an out-of-range sequence number
/// (with overwhelming probability), so forged or stale replies are rejected.
#[derive(Clone, Copy, Debug)]
pub struct Nonces {
    k1: u64,
    k2: u64,
}

/// An odd multiplier (invertible modulo 2^64).
const MUL: u64 = 0x9E37_79B9_7F4A_7C15;
/// Its inverse modulo 2^64 (Newton's iteration doubles the correct bits each round).
const MUL_INV: u64 = {
    let mut inv = MUL;
    let mut i = 0;
    while i < 6 {
        inv = inv.wrapping_mul(2u64.wrapping_sub(MUL.wrapping_mul(inv)));
        i += 1;
    }
    inv
};

impl Nonces {
    /// A fresh permutation from `rng`: use a new one per measurement step, so that late
    /// replies to an earlier step cannot count in the next.
    pub fn new(rng: &mut Rng) -> Nonces {
        Nonces { k1: rng.next_u64(), k2: rng.next_u64() }
    }

    /// The nonce for sequence number `seq`.
    pub fn encode(&self, seq: u64) -> u64 {
        (seq ^ self.k1).wrapping_mul(MUL) ^ self.k2
    }

    /// The sequence number a nonce came from.
    pub fn decode(&self, nonce: u64) -> u64 {
        (nonce ^ self.k2).wrapping_mul(MUL_INV) ^ self.k1
    }
}

/// SplitMix64 seeded from /dev/urandom: fast, and good enough for nonces and spoofed
/// addresses (nothing here is a secret that must resist analysis).
pub struct Rng(u64);

impl Rng {
    /// Seeded from the OS.
    pub fn from_os() -> Rng {
        let mut seed = [0u8; 8];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut seed))
            .expect("read /dev/urandom");
        Rng(u64::from_ne_bytes(seed))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n small; the modulo bias is irrelevant here).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_round_trip_and_differ_per_key() {
        let mut rng = Rng(1);
        let a = Nonces::new(&mut rng);
        let b = Nonces::new(&mut rng);
        for seq in [0, 1, 2, 1 << 20, u64::MAX] {
            assert_eq!(a.decode(a.encode(seq)), seq);
            assert_ne!(a.encode(seq), b.encode(seq));
        }
        assert_eq!(MUL.wrapping_mul(MUL_INV), 1);
    }

    #[test]
    fn reply_classification() {
        let mut p = request(42);
        assert_eq!(parse_reply(&p), Reply::Invalid, "mode 3 is not a reply");
        p[0] = 4 << 3 | 4;
        p[1] = 3;
        p[ORIGIN_AT..ORIGIN_AT + 8].copy_from_slice(&42u64.to_be_bytes());
        assert_eq!(parse_reply(&p), Reply::Time { origin: 42, stratum: 3, leap: 0 });
        p[1] = 0;
        p[12..16].copy_from_slice(b"RATE");
        assert_eq!(parse_reply(&p), Reply::Kiss { origin: 42, code: *b"RATE" });
        p[1] = 16;
        assert_eq!(parse_reply(&p), Reply::Invalid, "stratum 16 is unsynchronized");
        assert_eq!(parse_reply(&p[..47]), Reply::Invalid);
    }
}
