//! chronyd as a pure NTP server on a loopback addr:port, optionally serving a deliberately wrong
//! time (a falseticker) without touching the real clock.
//!
//! A true server is `local stratum 1` (answers stratum 1, refid LOCL-ish 7F7F0101, leap 0).
//! A shifted server follows a hidden reference chronyd (a true server on the same address and
//! another port) with `offset S`; with `-x` chronyd keeps the correction in a virtual clock and
//! serves real time + S at stratum 2. (libfaketime cannot do this: chronyd takes receive
//! timestamps from the kernel.)
//!
//! Not covered: chrony 4.3's `ratelimit` only drops, it never sends a RATE kiss-o'-death; use
//! NTPsec for KoD.

use super::{assert_udp_free, nocap, ntp, udp_free, unique_subdir, wait_until, Daemon};
use std::fmt::Write as _;
use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const CHRONYD: &str = "/usr/sbin/chronyd";
const CHRONYC: &str = "/usr/bin/chronyc";

/// Bound for [`ChronyServer::wait_ready`]: a shifted server needs about 5 s (testbed.md §1b).
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How far a shifted server's served time may be from its target when it counts as ready.
const SHIFT_TOLERANCE: f64 = 0.001;

/// The time a [`ChronyServer`] serves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Shift {
    /// The real time, at stratum 1.
    None,
    /// Real time + this many seconds (may be negative), at stratum 2.
    Secs(f64),
}

impl Shift {
    fn secs(self) -> f64 {
        match self {
            Shift::None => 0.0,
            Shift::Secs(s) => s,
        }
    }
}

/// A running chronyd server; stopped by pid on drop.
pub struct ChronyServer {
    addr: SocketAddr,
    dir: PathBuf,
    shift: Shift,
    // Declared before `reference`: dropped (stopped) first, so it never loses its source.
    daemon: Daemon,
    reference: Option<Box<ChronyServer>>,
}

impl ChronyServer {
    /// Starts chronyd serving on `addr`:`port`, with its files in a new subdir of `dir`.
    /// Returns at once; call [`wait_ready`](Self::wait_ready) before testing against it.
    pub fn start(dir: impl AsRef<Path>, addr: Ipv4Addr, port: u16, shift: Shift) -> ChronyServer {
        ChronyServer::start_with(dir, addr, port, shift, "")
    }

    /// [`ChronyServer::start`] with `extra` lines added to its chrony.conf (e.g. `keyfile`).
    pub fn start_with(
        dir: impl AsRef<Path>,
        addr: Ipv4Addr,
        port: u16,
        shift: Shift,
        extra: &str,
    ) -> ChronyServer {
        let dir = dir.as_ref();
        let sock = SocketAddr::from((addr, port));
        assert_udp_free(sock);
        let reference = match shift {
            Shift::None => None,
            Shift::Secs(s) => {
                assert!(s != 0.0, "use Shift::None for an unshifted server");
                // Same address, first free port from 11100: below the ephemeral range, so no
                // client socket can take it between the check and chronyd's bind.
                let ref_port = (11100..12000)
                    .find(|&p| p != port && udp_free(SocketAddr::from((addr, p))))
                    .expect("no free port for the reference chronyd");
                Some(Box::new(ChronyServer::start(dir, addr, ref_port, Shift::None)))
            }
        };
        let d = unique_subdir(dir, &format!("chrony-{addr}-{port}"));
        let mut conf =
            format!("# chronyd pure server on {sock}, shift {shift:?}; -x: no clock control\n");
        match &reference {
            None => conf += "local stratum 1\n",
            Some(r) => {
                // Polling every 0.25 s makes it converge within seconds.
                let _ = writeln!(
                    conf,
                    "server {} port {} iburst minpoll -2 maxpoll -2 offset {}",
                    r.addr.ip(),
                    r.addr.port(),
                    shift.secs()
                );
            }
        }
        let _ = write!(
            conf,
            "bindaddress {addr}\nport {port}\n\
             # allow only IPv4: chronyd would bind the IPv6 wildcard for an allowed family without a bindaddress\n\
             allow 127.0.0.0/8\n\
             # no UDP command port; a private Unix command socket for chronyc -h\n\
             cmdport 0\nbindcmdaddress {d}/chronyd.sock\n\
             pidfile {d}/chronyd.pid\ndriftfile {d}/chrony.drift\nntsdumpdir {d}\nlogdir {d}\n",
            d = d.display()
        );
        conf += extra;
        let conf_path = d.join("chrony.conf");
        fs::write(&conf_path, conf).expect("write chrony.conf");
        let log = d.join("chronyd.log");
        // -d: stay in the foreground so the harness owns (and reaps) the process;
        // -x: never control the clock; -u root: no privilege drop, the temp dir stays writable.
        let mut cmd = nocap(CHRONYD);
        cmd.args(["-d", "-x", "-u", "root", "-f"]).arg(&conf_path).arg("-l").arg(&log);
        let daemon = Daemon::spawn("chronyd", cmd, &d.join("chronyd.out"), &[&log]);
        ChronyServer { addr: sock, dir: d, shift, daemon, reference }
    }

    /// Waits (bounded) until the server is running, has written its pid file and answers
    /// synchronized; for a shifted server, until it serves the shift (within 1 ms) both per
    /// `chronyc tracking` and per a query of ours. Panics with the logs otherwise.
    pub fn wait_ready(&self) -> &ChronyServer {
        if let Some(r) = &self.reference {
            r.wait_ready();
        }
        let pidfile = self.dir.join("chronyd.pid");
        let stratum = if self.reference.is_some() { 2 } else { 1 };
        let shift = self.shift.secs();
        let res =
            wait_until(&format!("chronyd on {} to be ready", self.addr), READY_TIMEOUT, || {
                self.daemon.assert_running();
                if !pidfile.exists() {
                    return Err("no pid file yet".into());
                }
                if self.reference.is_some() {
                    let served = self.tracking_shift()?;
                    if (served - shift).abs() > SHIFT_TOLERANCE {
                        return Err(format!(
                            "chronyc tracking: serving {served:+.6} s, want {shift:+}"
                        ));
                    }
                }
                let r = ntp::query(self.addr, Duration::from_millis(500))
                    .map_err(|e| format!("query: {e}"))?;
                if r.leap != 0 || r.stratum != stratum {
                    return Err(format!("reply {r:?}, want leap 0, stratum {stratum}"));
                }
                if (r.offset - shift).abs() > SHIFT_TOLERANCE {
                    return Err(format!("measured offset {:+.6} s, want {shift:+}", r.offset));
                }
                Ok(())
            });
        if let Err(e) = res {
            panic!("{e}\n{}", self.logs());
        }
        self
    }

    /// The served time minus the real time, per `chronyc tracking`'s "System time" line
    /// ("0.4999969 seconds slow of NTP time" = the real clock is behind the served one).
    fn tracking_shift(&self) -> Result<f64, String> {
        let out = self.chronyc(&["tracking"])?;
        let line = out
            .lines()
            .find(|l| l.starts_with("System time"))
            .ok_or_else(|| format!("no System time in: {out}"))?;
        let words: Vec<&str> = line.split_whitespace().collect();
        // "System time : 0.499996901 seconds slow of NTP time"
        let value: f64 = words
            .get(3)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("unparsable: {line}"))?;
        match words.get(5) {
            Some(&"slow") => Ok(value),
            Some(&"fast") => Ok(-value),
            _ => Err(format!("unparsable: {line}")),
        }
    }

    /// Runs `chronyc -h SOCKET ARGS` against this server and returns its stdout.
    pub fn chronyc(&self, args: &[&str]) -> Result<String, String> {
        let out = super::run(
            Command::new(CHRONYC).arg("-h").arg(self.dir.join("chronyd.sock")).args(args),
        );
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!("chronyc {args:?}: {}", String::from_utf8_lossy(&out.stderr).trim()))
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The shift it serves.
    pub fn shift(&self) -> Shift {
        self.shift
    }

    /// Its files (config, logs, pid file, command socket).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Its pid, and its reference's if shifted.
    pub fn pids(&self) -> Vec<u32> {
        let mut pids = vec![self.daemon.pid()];
        if let Some(r) = &self.reference {
            pids.extend(r.pids());
        }
        pids
    }

    /// Its log tails (and its reference's), for panic messages.
    pub fn logs(&self) -> String {
        let mut s = self.daemon.logs();
        if let Some(r) = &self.reference {
            s += &r.logs();
        }
        s
    }
}
