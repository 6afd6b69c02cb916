//! NTP *clients* nobody here wrote, pointed at rntpd's server mode, plus a raw-packet client
//! for the details those clients hide (kiss-o'-death fields, which source address asks).
//!
//! * [`chronyd_query`]: `chronyd -Q` one-shot measurement (testbed.md §2).
//! * [`ChronyClient`]: a persistent `chronyd -x` client with `noselect`, polling every 0.25 s;
//!   its `measurements.log` rows carry chrony's RFC 5905 sanity-test bits per sample (§5).
//! * [`ntpdig_json`]: `ntpdig -j` (port 123 only: its port is hard-coded).
//! * [`check_ntp_time`]: the monitoring plugin.
//! * [`RawClient`]: hand-built 48-byte requests from a chosen 127/8 source address.
//!
//! Clock safety: every client runs through [`nocap`] (no CAP_SYS_TIME) and with its own
//! no-clock option (`-Q` only prints; `-x` disables clock control; ntpdig never sets the time
//! without `-S`/`-s`; check_ntp_time only reads).

use super::{nocap, run, tail, unique_subdir, wait_until, Daemon};
use serde_json::Value;
use std::fs;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const CHRONYD: &str = "/usr/sbin/chronyd";
const CHRONYC: &str = "/usr/bin/chronyc";
const NTPDIG: &str = "/usr/bin/ntpdig";
const CHECK_NTP_TIME: &str = "/usr/lib/nagios/plugins/check_ntp_time";

/// Runs `chronyd -Q -t TIMEOUT "server ADDR port PORT iburst maxsamples SAMPLES"` and returns
/// the offset it reports (server minus local clock, as RFC 5905 θ), or its output on failure.
pub fn chronyd_query(server: SocketAddr, samples: u32, timeout_secs: u32) -> Result<f64, String> {
    let directive =
        format!("server {} port {} iburst maxsamples {samples}", server.ip(), server.port());
    let out = run(nocap(CHRONYD).args(["-Q", "-t", &timeout_secs.to_string(), &directive]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let all = format!(
        "rc {}\nstdout: {}\nstderr: {stderr}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
    if !out.status.success() {
        return Err(format!("chronyd -Q failed: {all}"));
    }
    // "... System clock wrong by -0.000002 seconds (ignored)"
    stderr
        .lines()
        .find_map(|l| {
            l.split_once("System clock wrong by ")?.1.split_whitespace().next()?.parse().ok()
        })
        .ok_or_else(|| format!("no 'System clock wrong by' line: {all}"))
}

/// One row of chrony's measurements.log.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    /// The source's address.
    pub ip: String,
    /// Leap status letter: N (normal), + / - (leap second), ? (unsynchronized).
    pub leap: String,
    /// The stratum in the reply.
    pub stratum: u8,
    /// chrony's test bits: "111 111 1111" when every test passed.
    pub tests: String,
    /// θ in seconds (positive = server ahead).
    pub offset: f64,
    /// δ in seconds.
    pub delay: f64,
    /// The whole line, for messages.
    pub line: String,
}

impl Measurement {
    /// Parses a data row; `None` for headers and separators.
    pub fn parse(line: &str) -> Option<Measurement> {
        let w: Vec<&str> = line.split_whitespace().collect();
        // date time ip L St 123 567 ABCD LP RP Score Offset PeerDel PeerDisp ...
        if w.len() < 14 || !w[0].starts_with(|c: char| c.is_ascii_digit()) {
            return None;
        }
        Some(Measurement {
            ip: w[2].to_string(),
            leap: w[3].to_string(),
            stratum: w[4].parse().ok()?,
            tests: format!("{} {} {}", w[5], w[6], w[7]),
            offset: w[11].parse().ok()?,
            delay: w[12].parse().ok()?,
            line: line.to_string(),
        })
    }
}

/// A persistent chronyd client (`-x`: no clock control) of one server, polling every 2^-2 s
/// with `noselect`, so its virtual clock never absorbs the offset and every logged sample is
/// raw. Stopped by pid on drop.
pub struct ChronyClient {
    dir: PathBuf,
    server: SocketAddr,
    daemon: Daemon,
}

impl ChronyClient {
    /// Starts it, with its files in a new subdir of `dir`.
    pub fn start(dir: impl AsRef<Path>, server: SocketAddr) -> ChronyClient {
        let d = unique_subdir(dir.as_ref(), "chrony-client");
        let conf = format!(
            "# chronyd client of {server}; -x: measures only, never adjusts the clock\n\
             # noselect: never used to correct the virtual clock, so logged offsets stay raw\n\
             server {ip} port {port} iburst minpoll -2 maxpoll -2 noselect\n\
             # no server socket, no UDP command port; a private Unix command socket\n\
             port 0\ncmdport 0\nbindcmdaddress {d}/chronyd.sock\n\
             pidfile {d}/chronyd.pid\nlogdir {d}\nlog measurements statistics tracking\n",
            ip = server.ip(),
            port = server.port(),
            d = d.display()
        );
        let conf_path = d.join("chrony.conf");
        fs::write(&conf_path, conf).expect("write chrony.conf");
        let log = d.join("chronyd.log");
        // -d: foreground, so the harness owns and reaps the process; -u root: no privilege drop.
        let mut cmd = nocap(CHRONYD);
        cmd.args(["-d", "-x", "-u", "root", "-f"]).arg(&conf_path).arg("-l").arg(&log);
        let daemon = Daemon::spawn("chronyd client", cmd, &d.join("chronyd.out"), &[&log]);
        ChronyClient { dir: d, server, daemon }
    }

    /// Rows of measurements.log about our server.
    pub fn measurements(&self) -> Vec<Measurement> {
        let text = fs::read_to_string(self.dir.join("measurements.log")).unwrap_or_default();
        let ip = self.server.ip().to_string();
        text.lines().filter_map(Measurement::parse).filter(|m| m.ip == ip).collect()
    }

    /// Waits (bounded) until measurements.log has at least `n` rows about our server.
    pub fn wait_measurements(&self, n: usize, timeout: Duration) -> Vec<Measurement> {
        let res = wait_until(&format!("{n} measurements of {}", self.server), timeout, || {
            self.daemon.assert_running();
            let rows = self.measurements();
            if rows.len() >= n {
                Ok(rows)
            } else {
                Err(format!("{} rows so far", rows.len()))
            }
        });
        res.unwrap_or_else(|e| panic!("{e}\n{}", self.logs()))
    }

    /// `chronyc -n ntpdata` about our server, as "Field : value" pairs.
    pub fn ntpdata(&self) -> Result<Vec<(String, String)>, String> {
        let out = run(Command::new(CHRONYC).arg("-h").arg(self.dir.join("chronyd.sock")).args([
            "-n",
            "ntpdata",
            &self.server.ip().to_string(),
        ]));
        if !out.status.success() {
            return Err(format!("chronyc ntpdata: {}", String::from_utf8_lossy(&out.stderr)));
        }
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect())
    }

    /// Its log tails and measurements.log tail, for panic messages.
    pub fn logs(&self) -> String {
        format!(
            "{}---- measurements.log ----\n{}\n",
            self.daemon.logs(),
            tail(&self.dir.join("measurements.log"), 20)
        )
    }
}

/// `ntpdig -j -t 2 ADDR` (port 123), parsed; `Err` with its output if it failed.
pub fn ntpdig_json(addr: Ipv4Addr) -> Result<Value, String> {
    let out = run(nocap(NTPDIG).args(["-j", "-t", "2", &addr.to_string()]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let all = format!(
        "rc {}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        return Err(format!("ntpdig failed: {all}"));
    }
    serde_json::from_str(stdout.trim())
        .map_err(|e| format!("ntpdig -j output is not JSON ({e}): {all}"))
}

/// `check_ntp_time -H ADDR -p PORT -w WARN -c CRIT`: (exit code, stdout).
pub fn check_ntp_time(server: SocketAddr, warn: f64, crit: f64) -> (Option<i32>, String) {
    let out = run(nocap(CHECK_NTP_TIME).args([
        "-H",
        &server.ip().to_string(),
        "-p",
        &server.port().to_string(),
        "-w",
        &warn.to_string(),
        "-c",
        &crit.to_string(),
    ]));
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
}

/// What came back for one raw request.
#[derive(Debug, Clone, PartialEq)]
pub enum RawReply {
    /// A time reply (stratum 1..=16).
    Time(Vec<u8>),
    /// A kiss-o'-death (stratum 0).
    Kiss(Vec<u8>),
}

/// A UDP client bound to a chosen source address, sending hand-built NTPv4 client requests
/// with random transmit timestamps and matching replies by origin.
pub struct RawClient {
    sock: UdpSocket,
    /// Transmit timestamps of the requests sent, in order.
    pub sent: Vec<u64>,
    /// Replies matched to a request (by origin == its transmit timestamp), in arrival order.
    pub replies: Vec<(u64, RawReply)>,
    /// Datagrams that matched no request of ours.
    pub unmatched: usize,
    state: u64,
}

impl RawClient {
    /// Binds `src`:0 and connects to `server`.
    pub fn new(src: Ipv4Addr, server: SocketAddr) -> RawClient {
        let sock = UdpSocket::bind((src, 0)).unwrap_or_else(|e| panic!("bind {src}: {e}"));
        sock.connect(server).expect("connect");
        sock.set_nonblocking(true).expect("nonblocking");
        // Seed from the clock and the port: distinct per client, and random enough for nonces.
        let port = u64::from(sock.local_addr().expect("local addr").port());
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_nanos() as u64;
        RawClient {
            sock,
            sent: Vec::new(),
            replies: Vec::new(),
            unmatched: 0,
            state: nanos ^ port << 48,
        }
    }

    fn next_random(&mut self) -> u64 {
        // SplitMix64.
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Sends one request (LI 0, VN 4, mode 3, poll 6) with a random transmit timestamp.
    pub fn send(&mut self) -> io::Result<u64> {
        let nonce = self.next_random();
        let mut req = [0u8; 48];
        req[0] = 4 << 3 | 3;
        req[2] = 6;
        req[40..48].copy_from_slice(&nonce.to_be_bytes());
        self.sock.send(&req)?;
        self.sent.push(nonce);
        Ok(nonce)
    }

    /// Reads whatever has arrived, without waiting.
    pub fn poll(&mut self) {
        let mut buf = [0u8; 1024];
        loop {
            match self.sock.recv(&mut buf) {
                Ok(n) => {
                    let p = buf[..n].to_vec();
                    if n < 48 {
                        self.unmatched += 1;
                        continue;
                    }
                    let origin = u64::from_be_bytes(p[24..32].try_into().expect("8 bytes"));
                    if !self.sent.contains(&origin) {
                        self.unmatched += 1;
                        continue;
                    }
                    let r = if p[1] == 0 { RawReply::Kiss(p) } else { RawReply::Time(p) };
                    self.replies.push((origin, r));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => panic!("recv: {e}"),
            }
        }
    }

    /// Time replies received so far.
    pub fn times(&self) -> Vec<&[u8]> {
        self.replies
            .iter()
            .filter_map(|(_, r)| match r {
                RawReply::Time(p) => Some(p.as_slice()),
                RawReply::Kiss(_) => None,
            })
            .collect()
    }

    /// Kisses received so far, with the transmit timestamp of the request each answers.
    pub fn kisses(&self) -> Vec<(u64, &[u8])> {
        self.replies
            .iter()
            .filter_map(|(o, r)| match r {
                RawReply::Kiss(p) => Some((*o, p.as_slice())),
                RawReply::Time(_) => None,
            })
            .collect()
    }

    /// Polls until `done(self)` holds or `timeout` passes; returns whether it held.
    pub fn poll_until(
        &mut self,
        timeout: Duration,
        mut done: impl FnMut(&RawClient) -> bool,
    ) -> bool {
        let start = Instant::now();
        loop {
            self.poll();
            if done(self) {
                return true;
            }
            if start.elapsed() >= timeout {
                return false;
            }
            std::thread::sleep(super::POLL_INTERVAL);
        }
    }
}
