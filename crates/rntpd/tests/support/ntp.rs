//! A one-shot SNTP client (RFC 4330 request, RFC 5905 offset/delay) on a std `UdpSocket`: the
//! harness's own check that a server answers, at which stratum and with which offset.
//!
//! It is deliberately independent of rntp-proto (the code under test). It does one exchange,
//! validates only what it needs (mode 4, our origin timestamp echoed) and never touches the
//! clock: it only reads it.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Seconds from 1900-01-01 (NTP era 0) to 1970-01-01.
const NTP_UNIX_DELTA: u64 = 2_208_988_800;

/// The fields of a server reply a test cares about.
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
            Ipv4Addr::from(self.refid).to_string()
        } else if ascii.clone().all(|b| b.is_ascii_graphic()) {
            ascii.map(|&b| b as char).collect()
        } else {
            self.refid.iter().map(|b| format!("{b:02X}")).collect()
        }
    }
}

/// Now as a 32.32 NTP timestamp.
fn now_ntp() -> u64 {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock before 1970");
    let secs = d.as_secs() + NTP_UNIX_DELTA;
    let frac = (u64::from(d.subsec_nanos()) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

/// `a - b` of two NTP timestamps, in seconds (wrapping difference: exact near an era boundary
/// and with no f64 rounding of the absolute values).
fn diff(a: u64, b: u64) -> f64 {
    a.wrapping_sub(b) as i64 as f64 / 4_294_967_296.0
}

fn ts(packet: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(packet[at..at + 8].try_into().expect("8 bytes"))
}

/// Sends one client (mode 3) request from 127.0.0.1 to `server` and waits up to `timeout` for
/// the matching reply.
pub fn query(server: SocketAddr, timeout: Duration) -> io::Result<NtpReply> {
    let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
    sock.connect(server)?;
    let mut req = [0u8; 48];
    req[0] = 4 << 3 | 3; // LI 0, VN 4, mode 3
    let t1 = now_ntp();
    // The transmit timestamp is our nonce: the server echoes it as origin.
    req[40..48].copy_from_slice(&t1.to_be_bytes());
    sock.send(&req)?;
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
        if n < 48 || p[0] & 7 != 4 || ts(p, 24) != t1 {
            continue; // not a server reply to this request
        }
        let (t2, t3) = (ts(p, 32), ts(p, 40));
        return Ok(NtpReply {
            leap: p[0] >> 6,
            version: (p[0] >> 3) & 7,
            stratum: p[1],
            refid: p[12..16].try_into().expect("4 bytes"),
            offset: (diff(t2, t1) + diff(t3, t4)) / 2.0,
            delay: diff(t4, t1) - diff(t3, t2),
        });
    }
}

/// The lowest-delay reply of `count` exchanges (an NTP clock filter in miniature): one exchange
/// on a loaded 2-core machine can be preempted between its timestamps and err by milliseconds;
/// the least delayed one cannot err by more than half its delay.
pub fn query_best(server: SocketAddr, count: usize, timeout: Duration) -> io::Result<NtpReply> {
    let mut best: Option<NtpReply> = None;
    let mut last_err = None;
    for _ in 0..count.max(1) {
        match query(server, timeout) {
            Ok(r) if best.as_ref().is_none_or(|b| r.delay < b.delay) => best = Some(r),
            Ok(_) => {}
            Err(e) => last_err = Some(e),
        }
    }
    best.ok_or_else(|| last_err.unwrap_or_else(|| io::Error::other("no reply")))
}

/// Queries until the server answers with `leap` 0 and `stratum`, for up to `timeout`; returns
/// the last reply, or why not.
pub fn wait_synced(server: SocketAddr, stratum: u8, timeout: Duration) -> Result<NtpReply, String> {
    super::wait_until(&format!("{server} to answer stratum {stratum}, leap 0"), timeout, || {
        match query(server, Duration::from_millis(500)) {
            Ok(r) if r.leap == 0 && r.stratum == stratum => Ok(r),
            Ok(r) => Err(format!("last reply {r:?}")),
            Err(e) => Err(format!("last query: {e}")),
        }
    })
}
