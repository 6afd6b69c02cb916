//! The servers a benchmark measures (rntpd and chronyd), started as children on private
//! loopback addresses, pinned to a CPU, without the right to change the clock, and stopped by
//! pid.
//!
//! Clock safety, as in the test harness: every server runs with its own no-clock option
//! (rntpd `--observe`, chronyd `-x`) *and* under `setpriv --inh-caps=-sys_time
//! --bounding-set=-sys_time`, so even a misconfigured server gets EPERM from every
//! clock-setting syscall. `--pdeathsig TERM` makes a server die with the benchmark, so an
//! interrupted run leaves nothing behind.

use crate::ntp::{self, Reply};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::fs::{self, File};
use std::io::{ErrorKind, Write};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How long a server gets to answer its first query.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a server gets after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Poll interval of every bounded wait here.
const POLL: Duration = Duration::from_millis(50);

/// The second octet of the benchmark's loopback addresses: 127.14.Y.0/24 is the block the
/// project reserves for tools other than the interop tests, shared with the test harness's
/// lease scheme so a concurrent `cargo test` never gets the same block.
const NET_X: u8 = 14;

/// A leased 127.14.Y.0/24 block (see the test harness's `Net`); released on drop.
pub struct Block {
    y: u8,
    lease: PathBuf,
}

impl Block {
    /// Takes the first free block, scanning Y from 200 down (the test harness counts up from 1,
    /// so the two rarely even look at the same lease file).
    pub fn allocate() -> Result<Block, String> {
        let dir = std::env::temp_dir().join("rntpd-test-nets");
        fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        for y in (100..=200u8).rev() {
            let lease = dir.join(format!("127.{NET_X}.{y}"));
            for _ in 0..2 {
                match File::create_new(&lease) {
                    Ok(mut f) => {
                        let _ = write!(f, "{}", std::process::id());
                        return Ok(Block { y, lease });
                    }
                    Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                        let owner = fs::read_to_string(&lease).unwrap_or_default();
                        let alive = owner
                            .trim()
                            .parse::<u32>()
                            .is_ok_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
                        if alive {
                            break;
                        }
                        let _ = fs::remove_file(&lease); // stale: its owner is gone
                    }
                    Err(e) => return Err(format!("lease {}: {e}", lease.display())),
                }
            }
        }
        Err(format!("no free 127.{NET_X}.Y.0/24 block (leases in {})", dir.display()))
    }

    /// 127.14.Y.`host`.
    pub fn addr(&self, host: u8) -> Ipv4Addr {
        Ipv4Addr::new(127, NET_X, self.y, host)
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.lease);
    }
}

/// Fails unless nothing is bound to `addr` (chronyd sets SO_REUSEADDR and would start
/// silently on a taken address, and we would measure someone else's server).
pub fn check_free(addr: SocketAddr) -> Result<(), String> {
    UdpSocket::bind(addr).map(drop).map_err(|e| format!("UDP {addr} is taken ({e})"))
}

/// `[taskset -c CPU] setpriv --pdeathsig TERM --inh-caps=-sys_time --bounding-set=-sys_time --
/// PROGRAM`.
pub fn nocap(cpu: Option<usize>, program: &Path) -> Command {
    let mut cmd;
    match cpu {
        Some(cpu) => {
            cmd = Command::new("taskset");
            cmd.args(["-c", &cpu.to_string(), "setpriv"]);
        }
        None => cmd = Command::new("setpriv"),
    }
    cmd.args(["--pdeathsig", "TERM", "--inh-caps=-sys_time", "--bounding-set=-sys_time", "--"]);
    cmd.arg(program);
    cmd
}

/// Pins the calling thread (and the threads it starts later) to `cpu`.
pub fn pin_self(cpu: usize) -> Result<(), String> {
    let mut set = nix::sched::CpuSet::new();
    set.set(cpu).map_err(|e| format!("cpu {cpu}: {e}"))?;
    nix::sched::sched_setaffinity(Pid::from_raw(0), &set)
        .map_err(|e| format!("sched_setaffinity(cpu {cpu}): {e}"))
}

/// A server process owned by the benchmark.
pub struct Server {
    /// "rntpd" or "chronyd".
    pub name: &'static str,
    /// Where it serves.
    pub addr: SocketAddr,
    log: PathBuf,
    child: Child,
    /// rntpd's control socket, for `rntpctl status --json`.
    control: Option<(PathBuf, PathBuf)>,
}

impl Server {
    /// Starts rntpd (`--observe`) serving on `addr` with `config_extra` after the
    /// `interface listen` line; `RUST_LOG=warn` because per-packet debug logging would
    /// dominate what is measured.
    pub fn rntpd(
        bin: &Path,
        rntpctl: &Path,
        dir: &Path,
        addr: SocketAddr,
        config_extra: &str,
        cpu: Option<usize>,
    ) -> Result<Server, String> {
        check_free(addr)?;
        let d = dir.join("rntpd");
        fs::create_dir_all(&d).map_err(|e| e.to_string())?;
        let conf = format!(
            "# rntpd under benchmark\ninterface listen {} port {}\n{config_extra}",
            addr.ip(),
            addr.port()
        );
        fs::write(d.join("ntp.conf"), conf).map_err(|e| e.to_string())?;
        let socket = d.join("rntpd.sock");
        let mut cmd = nocap(cpu, bin);
        cmd.arg("-c").arg(d.join("ntp.conf")).arg("--observe").arg("--control-socket").arg(&socket);
        cmd.env("RUST_LOG", std::env::var("RNTP_BENCH_LOG").unwrap_or_else(|_| "warn".into()));
        let mut s = Server::spawn("rntpd", addr, d.join("rntpd.log"), cmd)?;
        s.control = Some((rntpctl.to_path_buf(), socket));
        Ok(s)
    }

    /// Starts chronyd (`-x`, `local stratum 1`, no `ratelimit`) serving on `addr`.
    pub fn chronyd(dir: &Path, addr: SocketAddr, cpu: Option<usize>) -> Result<Server, String> {
        check_free(addr)?;
        let d = dir.join("chronyd");
        // chronyd insists on a private dir for its command socket.
        fs::create_dir_all(&d).map_err(|e| e.to_string())?;
        let mut perms = fs::metadata(&d).map_err(|e| e.to_string())?.permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o750);
        fs::set_permissions(&d, perms).map_err(|e| e.to_string())?;
        let conf = format!(
            "# chronyd pure server under benchmark; -x: no clock control; no ratelimit\n\
             local stratum 1\nbindaddress {ip}\nport {port}\nallow 127.0.0.0/8\n\
             cmdport 0\nbindcmdaddress {d}/chronyd.sock\npidfile {d}/chronyd.pid\n\
             driftfile {d}/chrony.drift\nntsdumpdir {d}\nlogdir {d}\n",
            ip = addr.ip(),
            port = addr.port(),
            d = d.display()
        );
        fs::write(d.join("chrony.conf"), conf).map_err(|e| e.to_string())?;
        let mut cmd = nocap(cpu, Path::new("/usr/sbin/chronyd"));
        // -d: foreground, so we own the pid; -u root: no privilege drop (temp dir stays ours).
        cmd.args(["-d", "-x", "-u", "root", "-f"]).arg(d.join("chrony.conf"));
        Server::spawn("chronyd", addr, d.join("chronyd.log"), cmd)
    }

    fn spawn(
        name: &'static str,
        addr: SocketAddr,
        log: PathBuf,
        mut cmd: Command,
    ) -> Result<Server, String> {
        let out = File::create(&log).map_err(|e| e.to_string())?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("spawn {name} ({cmd:?}): {e}"))?;
        Ok(Server { name, addr, log, child, control: None })
    }

    /// Its pid (taskset and setpriv exec, so this is the server itself).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until it answers a query from `src` with a synchronized reply.
    pub fn wait_ready(&mut self, src: Ipv4Addr) -> Result<(), String> {
        let start = Instant::now();
        let mut last = String::new();
        while start.elapsed() < READY_TIMEOUT {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("{} exited with {status}\n{}", self.name, self.log_tail()));
            }
            match ntp::query(SocketAddr::from((src, 0)), self.addr, Duration::from_millis(300)) {
                Ok(Reply::Time { leap, .. }) if leap != 3 => return Ok(()),
                Ok(r) => last = format!("{r:?}"),
                Err(e) => last = e.to_string(),
            }
            thread::sleep(POLL);
        }
        Err(format!(
            "{} on {} did not answer synchronized within {READY_TIMEOUT:?} (last: {last})\n{}",
            self.name,
            self.addr,
            self.log_tail()
        ))
    }

    /// Its resident set size in KiB, from /proc/PID/status.
    pub fn rss_kib(&self) -> Option<u64> {
        rss_kib(self.pid())
    }

    /// `rntpctl status --json` (rntpd only).
    pub fn status_json(&self) -> Result<serde_json::Value, String> {
        let (ctl, socket) = self.control.as_ref().ok_or("not rntpd")?;
        let out = Command::new(ctl)
            .arg("-s")
            .arg(socket)
            .args(["status", "--json"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("run {}: {e}", ctl.display()))?;
        if !out.status.success() {
            return Err(format!(
                "rntpctl status --json: {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        serde_json::from_slice(&out.stdout).map_err(|e| format!("status --json: {e}"))
    }

    /// The last lines of its log.
    pub fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        format!(
            "---- {} ----\n{}",
            self.log.display(),
            lines[lines.len().saturating_sub(30)..].join("\n")
        )
    }

    /// SIGTERM, a bounded wait, then SIGKILL; reaps it.
    pub fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = kill(Pid::from_raw(self.pid() as i32), Signal::SIGTERM);
        let start = Instant::now();
        while start.elapsed() < STOP_GRACE {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(POLL);
        }
        eprintln!("{} (pid {}) ignored SIGTERM: SIGKILL", self.name, self.pid());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// VmRSS of a process in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The path of a binary built next to this one (`target/release/rntpd` beside
/// `target/release/rntp-bench`), or `explicit` if given.
pub fn sibling_binary(explicit: Option<PathBuf>, name: &str) -> Result<PathBuf, String> {
    let path = match explicit {
        Some(p) => p,
        None => std::env::current_exe().map_err(|e| e.to_string())?.with_file_name(name),
    };
    if path.exists() {
        Ok(path)
    } else {
        Err(format!(
            "{} not found: build it first with `cargo build --release -p rntpd -p rntpctl` \
             (or pass its path)",
            path.display()
        ))
    }
}
