//! Integration-test harness: real NTP servers (chronyd, NTPsec), a loopback DNS server (dnsmasq)
//! and the rntpd daemon itself, each started in a private temp dir on private loopback addresses,
//! waited for by polling, and stopped by pid when dropped.
//!
//! What it does:
//! * [`TestDir`]: a temp dir per test, kept on failure when `RNTP_KEEP_TEST_DIR` is set.
//! * [`Net`] / [`Block`]: hands out 127.X.Y.0/24 blocks that no other test (thread, binary or
//!   concurrent `cargo test` run on this machine) uses at the same time.
//! * [`ChronyServer`], [`NtpsecServer`], [`Dnsmasq`], [`Rntpd`]: one process each, owned as a
//!   child, stopped (SIGTERM, then SIGKILL after a bound) and reaped on drop.
//! * [`ntp::query`]: a one-shot SNTP client on a std `UdpSocket`, the harness's own oracle.
//!
//! What it does not do: it never changes this machine's clock and never lets anything else do so.
//! Every NTP daemon runs with its own no-clock-control option *and* without CAP_SYS_TIME
//! ([`nocap`]). It never resolves names through the system resolver and only uses 127.0.0.0/8.
//! It does not install anything: `scripts/install-deps` does (panics here say so).
//!
//! ```ignore
//! mod support;
//! use support::{ChronyServer, Net, Rntpd, Shift, TestDir};
//! static NET: Net = Net::new(12); // one X per test file
//!
//! #[test]
//! fn example() {
//!     let dir = TestDir::new();
//!     let net = NET.allocate();
//!     let server = ChronyServer::start(&dir, net.addr(1), 12301, Shift::Secs(0.5));
//!     server.wait_ready();
//!     let rntpd = Rntpd::start(&dir, &format!("server {} port 12301 iburst\n", net.addr(1)));
//!     rntpd.wait_for_peers(Duration::from_secs(20), |p| p[0]["reach"] != 0);
//! } // rntpd must exit 0 on SIGTERM; every process is stopped by pid
//! ```
//!
//! Usage rule: declare the `TestDir` first in a test, so it is dropped (and deleted) after the
//! daemons writing into it, and start daemons from the test's own thread (they get SIGTERM when
//! the thread that spawned them dies, see [`nocap`]).

// Each test binary includes this module and uses only part of it.
#![allow(dead_code, unused_imports)]

pub mod chrony;
pub mod clients;
pub mod dns;
pub use rntp_testkit::fakedns;
pub mod ntp;
pub mod ntpsec;
pub mod rntpd;

pub use chrony::{ChronyServer, Shift};
pub use dns::Dnsmasq;
pub use ntpsec::NtpsecServer;
pub use rntpd::Rntpd;

use std::fs;
use std::io::{self, ErrorKind, Write};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

/// How often [`wait_until`] re-checks a condition: short enough to add no noticeable latency,
/// long enough not to load the 2-core CI machine.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// How long a daemon gets after SIGTERM before SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// Lines of each log file quoted in a panic message.
const TAIL_LINES: usize = 40;

// ---------------------------------------------------------------------------------------------
// Waiting

/// Polls `probe` every [`POLL_INTERVAL`] until it returns `Ok`, or until `timeout` has passed.
/// On timeout the error says what was awaited and the last reason the probe gave, so a failing
/// test explains itself.
pub fn wait_until<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Result<T, String>,
) -> Result<T, String> {
    let start = Instant::now();
    loop {
        match probe() {
            Ok(v) => return Ok(v),
            Err(why) if start.elapsed() >= timeout => {
                return Err(format!("timed out after {timeout:?} waiting for {what}: {why}"));
            }
            Err(_) => thread::sleep(POLL_INTERVAL),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Test directory

/// A per-test temp dir. Deleted on drop, except when the test failed and `RNTP_KEEP_TEST_DIR`
/// is set (or when it is set to `always`); its path is printed then, so the logs can be read.
pub struct TestDir {
    dir: Option<tempfile::TempDir>,
}

impl TestDir {
    /// Creates a fresh dir under the system temp dir (kept short: it holds Unix socket paths,
    /// which are limited to 107 bytes).
    pub fn new() -> TestDir {
        let dir = tempfile::Builder::new().prefix("rntp-").tempdir().expect("create temp dir");
        TestDir { dir: Some(dir) }
    }

    /// The dir's path.
    pub fn path(&self) -> &Path {
        self.dir.as_ref().expect("TestDir already dropped").path()
    }

    /// Creates and returns a new subdirectory named `name` (or `name-2`, `name-3`, … if taken).
    pub fn sub(&self, name: &str) -> PathBuf {
        unique_subdir(self.path(), name)
    }
}

impl Default for TestDir {
    fn default() -> Self {
        Self::new()
    }
}

impl AsRef<Path> for TestDir {
    fn as_ref(&self) -> &Path {
        self.path()
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let Some(dir) = self.dir.take() else { return };
        let keep = std::env::var("RNTP_KEEP_TEST_DIR").ok();
        let failed = thread::panicking();
        match keep.as_deref() {
            Some("always") => eprintln!("RNTP_KEEP_TEST_DIR: kept {}", dir.keep().display()),
            Some(_) if failed => {
                eprintln!("RNTP_KEEP_TEST_DIR: test failed, kept {}", dir.keep().display())
            }
            None if failed => eprintln!(
                "test dir {} deleted; set RNTP_KEEP_TEST_DIR=1 to keep it on failure",
                dir.path().display()
            ),
            _ => {}
        }
    }
}

/// Creates `parent/name` (mode 0750, as chronyd requires for its command socket dir), or
/// `parent/name-N` for the first free N.
pub fn unique_subdir(parent: &Path, name: &str) -> PathBuf {
    for n in 1.. {
        let path = if n == 1 { parent.join(name) } else { parent.join(format!("{name}-{n}")) };
        match fs::DirBuilder::new().mode(0o750).create(&path) {
            Ok(()) => return path,
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e) => panic!("create {}: {e}", path.display()),
        }
    }
    unreachable!()
}

// ---------------------------------------------------------------------------------------------
// Addresses

/// Loopback address space of one test binary: the blocks 127.X.Y.0/24 for one X.
///
/// Pick a distinct X (10..=250) per test file, e.g. `static NET: Net = Net::new(11);`. The
/// testbed scripts and other tools use 127.0.x.x, which X ≥ 10 never touches.
pub struct Net {
    x: u8,
}

/// Next Y to try, per process (threads of one test binary never get the same block).
static NEXT_Y: AtomicU32 = AtomicU32::new(0);

impl Net {
    /// The address space 127.`x`.0.0/16.
    pub const fn new(x: u8) -> Net {
        assert!(x >= 10 && x <= 250, "use 127.X with 10 <= X <= 250 (127.0.x is the testbed's)");
        Net { x }
    }

    /// Reserves a free 127.X.Y.0/24 block until the returned [`Block`] is dropped.
    ///
    /// Other processes (another test binary with the same X, a second `cargo test` by another
    /// engineer) are excluded by a lease file per block in the system temp dir holding the
    /// owner's pid; a lease whose owner is gone is taken over.
    pub fn allocate(&self) -> Block {
        let leases = std::env::temp_dir().join("rntpd-test-nets");
        fs::create_dir_all(&leases).expect("create lease dir");
        for _ in 0..254 {
            let y = (NEXT_Y.fetch_add(1, Ordering::Relaxed) % 254 + 1) as u8;
            let lease = leases.join(format!("127.{}.{y}", self.x));
            if take_lease(&lease) {
                return Block { x: self.x, y, lease };
            }
        }
        panic!("no free 127.{}.Y.0/24 block: see leases in {}", self.x, leases.display());
    }
}

fn take_lease(path: &Path) -> bool {
    for _ in 0..2 {
        match fs::File::create_new(path) {
            Ok(mut f) => {
                write!(f, "{}", std::process::id()).expect("write lease");
                return true;
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                let owner = fs::read_to_string(path).unwrap_or_default();
                let alive = owner.trim().parse::<u32>().is_ok_and(|pid| {
                    pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists()
                });
                if alive {
                    return false;
                }
                // Stale lease of a crashed run: take it over (what it left behind, e.g. an
                // address on lo, is adopted by whoever starts a server there next).
                let _ = fs::remove_file(path);
            }
            Err(e) => panic!("lease {}: {e}", path.display()),
        }
    }
    false
}

/// A reserved 127.X.Y.0/24 block (see [`Net::allocate`]); released on drop.
pub struct Block {
    x: u8,
    y: u8,
    lease: PathBuf,
}

impl Block {
    /// The address 127.X.Y.`host`.
    pub fn addr(&self, host: u8) -> Ipv4Addr {
        assert!((1..=254).contains(&host), "host part {host} out of 1..=254");
        Ipv4Addr::new(127, self.x, self.y, host)
    }

    /// The socket address 127.X.Y.`host`:`port`.
    pub fn sock(&self, host: u8, port: u16) -> SocketAddr {
        SocketAddr::from((self.addr(host), port))
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.lease);
    }
}

/// Whether a UDP socket could be bound to `addr` right now (nothing is bound to it, nor to the
/// wildcard address on its port).
pub fn udp_free(addr: SocketAddr) -> bool {
    // std does not set SO_REUSEADDR, so this fails against chronyd's and ntpd's sockets too,
    // although those set it.
    UdpSocket::bind(addr).is_ok()
}

/// Panics unless [`udp_free`]: chronyd sets SO_REUSEADDR, so a second instance on a taken
/// addr:port would start silently and the test would talk to the wrong server.
pub fn assert_udp_free(addr: SocketAddr) {
    if let Err(e) = UdpSocket::bind(addr) {
        panic!(
            "UDP {addr} is not free ({e}): another server is bound there (see `ss -lunp`); \
             refusing to start a second one"
        );
    }
}

/// Whether `addr` is configured on the loopback interface (`ip addr add ADDR/32 dev lo`).
pub fn lo_has_addr(addr: Ipv4Addr) -> bool {
    let out = Command::new("ip")
        .args(["-4", "-o", "addr", "show", "dev", "lo"])
        .output()
        .expect("run `ip addr show` (iproute2; see scripts/install-deps)");
    String::from_utf8_lossy(&out.stdout).contains(&format!(" {addr}/32 "))
}

// ---------------------------------------------------------------------------------------------
// Processes

/// Wraps `program` so that it runs without CAP_SYS_TIME (it can neither step, slew nor change
/// the frequency of the clock, whatever its configuration says) and gets SIGTERM if the thread
/// that started it dies (a killed test run leaves no daemon behind).
pub fn nocap(program: impl AsRef<Path>) -> Command {
    let program = program.as_ref();
    assert!(program.exists(), "{} is not installed: run scripts/install-deps", program.display());
    let mut cmd = Command::new("setpriv");
    cmd.args(["--pdeathsig", "TERM", "--inh-caps=-sys_time", "--bounding-set=-sys_time", "--"]);
    cmd.arg(program);
    cmd
}

/// The last `lines` lines of a file, or a note saying why there are none.
pub fn tail(path: &Path, lines: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("({e})"),
    }
}

/// A child process owned by the harness: its logs, and stopping it by pid.
pub struct Daemon {
    name: String,
    pid: u32,
    child: Mutex<Child>,
    logs: Vec<PathBuf>,
    exit: Mutex<Option<ExitStatus>>,
}

impl Daemon {
    /// Spawns `cmd` with stdin closed and stdout+stderr appended to `out` (which is also the
    /// first log quoted on failure); `logs` are further files the daemon writes.
    pub fn spawn(name: &str, mut cmd: Command, out: &Path, logs: &[&Path]) -> Daemon {
        let file = fs::OpenOptions::new().create(true).append(true).open(out).expect("open log");
        let err = file.try_clone().expect("dup log");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name} ({cmd:?}): {e}"));
        let mut all = vec![out.to_path_buf()];
        all.extend(logs.iter().map(|p| p.to_path_buf()));
        Daemon {
            name: name.to_string(),
            pid: child.id(),
            child: Mutex::new(child),
            logs: all,
            exit: Mutex::new(None),
        }
    }

    /// The process id (stays ours until the process is reaped, so signals cannot hit another).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Its exit status if it has exited (reaping it), `None` while it runs.
    pub fn exited(&self) -> Option<ExitStatus> {
        let mut exit = self.exit.lock().unwrap();
        if exit.is_none() {
            *exit = self.child.lock().unwrap().try_wait().expect("try_wait");
        }
        *exit
    }

    /// Panics, with the log tails, if the process has exited.
    pub fn assert_running(&self) {
        if let Some(status) = self.exited() {
            panic!("{} (pid {}) exited early with {status}\n{}", self.name, self.pid, self.logs());
        }
    }

    /// Sends `signal` (e.g. "TERM", "HUP") unless the process has been reaped already.
    pub fn signal(&self, signal: &str) {
        if self.exited().is_some() {
            return;
        }
        // `kill` by pid: the workspace forbids unsafe code, so no libc::kill here. A failure
        // means the process exited in between, which stop() and exited() report.
        let _ = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid.to_string())
            .stderr(Stdio::null())
            .status();
    }

    /// SIGTERM, wait up to `grace`, then SIGKILL; reaps and returns the exit status.
    /// Idempotent: a second call returns the first status.
    pub fn stop(&self, grace: Duration) -> ExitStatus {
        if let Some(status) = self.exited() {
            return status;
        }
        self.signal("TERM");
        if let Ok(status) =
            wait_until(&format!("{} to exit", self.name), grace, || self.exited().ok_or_default())
        {
            return status;
        }
        eprintln!("{} (pid {}) ignored SIGTERM for {grace:?}: SIGKILL", self.name, self.pid);
        let mut child = self.child.lock().unwrap();
        let _ = child.kill();
        let status = child.wait().expect("wait after SIGKILL");
        *self.exit.lock().unwrap() = Some(status);
        status
    }

    /// The tails of all its log files, for panic messages.
    pub fn logs(&self) -> String {
        let mut s = String::new();
        for log in &self.logs {
            s += &format!(
                "---- {} ({}), last {TAIL_LINES} lines ----\n{}\n",
                self.name,
                log.display(),
                tail(log, TAIL_LINES)
            );
        }
        s
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop(STOP_GRACE);
    }
}

/// `Option::ok_or` with an empty reason, for [`wait_until`] probes whose timeout message says
/// enough by itself.
trait OkOrDefault<T> {
    fn ok_or_default(self) -> Result<T, String>;
}

impl<T> OkOrDefault<T> for Option<T> {
    fn ok_or_default(self) -> Result<T, String> {
        self.ok_or_else(|| "not yet".to_string())
    }
}

/// Whether a process with this pid exists and is not a zombie (for checks that a stopped daemon
/// is really gone).
pub fn pid_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name, which may itself contain ") ".
        Ok(stat) => stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

/// Runs a short command to completion and returns its output; panics if it cannot be started.
pub fn run(cmd: &mut Command) -> std::process::Output {
    cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"))
}

/// Writes `contents` to `path` atomically (temp file + rename), so a daemon watching the dir
/// never reads half a file.
pub fn write_atomic(path: &Path, contents: &str) -> io::Result<()> {
    let name = path.file_name().expect("file name").to_string_lossy();
    // A dotfile: dnsmasq's hostsdir watcher ignores those.
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    fs::write(&tmp, contents)?;
    fs::rename(&tmp, path)
}
