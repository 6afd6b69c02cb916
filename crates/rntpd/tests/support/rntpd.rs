//! The daemon under test: rntpd in observe-only mode with a private control socket, and rntpctl
//! to talk to it.
//!
//! rntpd runs `--observe` (it never calls a clock-setting syscall) and, as a second barrier,
//! without CAP_SYS_TIME. On drop it gets SIGTERM and must exit 0 (a clean shutdown is part of
//! every test). Not covered here: rntpd as a server, privilege dropping.

use super::{nocap, tail, unique_subdir, wait_until, Daemon, STOP_GRACE};
use serde_json::Value;
use std::fs;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output};
use std::thread;
use std::time::{Duration, Instant};

/// Bound for the control socket to appear after spawn.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Lines of rntpd.log quoted in panic messages (its debug log is chatty).
const LOG_TAIL: usize = 80;

/// What a [`Rntpd::wait_for_peers`] predicate returns: `true`/`Ok(())` when satisfied;
/// `Err(reason)` makes the timeout panic say what was still wrong.
pub trait Verdict {
    /// `Ok(())` when satisfied.
    fn verdict(self) -> Result<(), String>;
}

impl Verdict for bool {
    fn verdict(self) -> Result<(), String> {
        if self {
            Ok(())
        } else {
            Err("predicate false".into())
        }
    }
}

impl Verdict for Result<(), String> {
    fn verdict(self) -> Result<(), String> {
        self
    }
}

/// A running rntpd.
pub struct Rntpd {
    dir: PathBuf,
    socket: PathBuf,
    log: PathBuf,
    spawned_at: Instant,
    daemon: Daemon,
}

/// The rntpctl binary, built next to rntpd by `cargo test --workspace`.
pub fn rntpctl_path() -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_rntpd")).with_file_name("rntpctl");
    assert!(
        path.exists(),
        "{} does not exist: run `cargo build -p rntpctl` (or `cargo test --workspace`) first",
        path.display()
    );
    path
}

impl Rntpd {
    /// Writes `config` to DIR/ntp.conf (DIR a new `rntpd` subdir of `dir`), starts rntpd
    /// (`--observe`, debug log to DIR/rntpd.log) and waits until its control socket accepts
    /// connections.
    pub fn start(dir: impl AsRef<Path>, config: &str) -> Rntpd {
        Rntpd::start_with_env(dir, config, &[])
    }

    /// [`Rntpd::start`] with these environment variables set for rntpd (e.g. its test hooks
    /// `RNTPD_RESOLV_CONF` and `RNTPD_HOSTS`, which name the files its resolver follows).
    pub fn start_with_env(dir: impl AsRef<Path>, config: &str, env: &[(&str, &Path)]) -> Rntpd {
        let d = unique_subdir(dir.as_ref(), "rntpd");
        let conf = d.join("ntp.conf");
        fs::write(&conf, config).expect("write ntp.conf");
        let socket = d.join("rntpd.sock");
        let log = d.join("rntpd.log");
        let mut cmd = nocap(env!("CARGO_BIN_EXE_rntpd"));
        cmd.arg("-c").arg(&conf).arg("--observe").arg("--control-socket").arg(&socket);
        cmd.env("RUST_LOG", std::env::var("RNTP_TEST_LOG").unwrap_or_else(|_| "debug".into()));
        for (key, value) in env {
            cmd.env(key, value);
        }
        let spawned_at = Instant::now();
        let daemon = Daemon::spawn("rntpd", cmd, &log, &[]);
        let rntpd = Rntpd { dir: d, socket, log, spawned_at, daemon };
        let res = wait_until("rntpd's control socket", START_TIMEOUT, || {
            rntpd.daemon.assert_running();
            // Connect rather than test for the file: it exists from bind(), before listen().
            UnixStream::connect(&rntpd.socket)
                .map(drop)
                .map_err(|e| format!("connect {}: {e}", rntpd.socket.display()))
        });
        if let Err(e) = res {
            panic!("{e}\n{}", rntpd.logs());
        }
        rntpd
    }

    /// When the process was spawned (for deadlines "within N s of start").
    pub fn spawned_at(&self) -> Instant {
        self.spawned_at
    }

    /// Its dir (ntp.conf, rntpd.log, rntpd.sock).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The control socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.daemon.pid()
    }

    /// Runs `rntpctl -s SOCKET ARGS` and returns its output, whatever the exit status.
    pub fn ctl(&self, args: &[&str]) -> Output {
        super::run(Command::new(rntpctl_path()).arg("-s").arg(&self.socket).args(args))
    }

    /// Runs rntpctl and returns its stdout; panics (with rntpd's log) unless it exits 0.
    pub fn ctl_ok(&self, args: &[&str]) -> String {
        let out = self.ctl(args);
        if !out.status.success() {
            panic!("{}\n{}", describe(args, &out), self.logs());
        }
        String::from_utf8(out.stdout).expect("rntpctl output is UTF-8")
    }

    /// `rntpctl peers --json`, parsed; `Err` says why not (rntpctl failed, not an array…).
    pub fn try_peers_json(&self) -> Result<Vec<Value>, String> {
        let args = ["peers", "--json"];
        let out = self.ctl(&args);
        if !out.status.success() {
            return Err(describe(&args, &out));
        }
        match serde_json::from_slice(&out.stdout) {
            Ok(Value::Array(peers)) => Ok(peers),
            Ok(other) => Err(format!("rntpctl peers --json: not an array: {other}")),
            Err(e) => {
                Err(format!("rntpctl peers --json: {e}: {}", String::from_utf8_lossy(&out.stdout)))
            }
        }
    }

    /// `rntpctl peers --json`, parsed; panics with the log if that fails.
    pub fn peers_json(&self) -> Vec<Value> {
        self.try_peers_json().unwrap_or_else(|e| panic!("{e}\n{}", self.logs()))
    }

    /// `rntpctl status --json`, parsed; panics with the log if that fails.
    pub fn status_json(&self) -> Value {
        let out = self.ctl_ok(&["status", "--json"]);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("status --json: {e}: {out}"))
    }

    /// Polls `rntpctl peers --json` until `check` is satisfied, for up to `timeout`, and returns
    /// the satisfying sample. On timeout panics with the reason the last sample failed, the
    /// last JSON and the tail of rntpd.log; if rntpd exits meanwhile, panics at once.
    pub fn wait_for_peers<V: Verdict>(
        &self,
        timeout: Duration,
        mut check: impl FnMut(&[Value]) -> V,
    ) -> Vec<Value> {
        let mut last = Value::Null;
        let res = wait_until("rntpd's peers", timeout, || {
            self.daemon.assert_running();
            let peers = self.try_peers_json()?;
            last = Value::Array(peers.clone());
            check(&peers).verdict().map(|()| peers)
        });
        res.unwrap_or_else(|e| {
            let json = serde_json::to_string_pretty(&last).unwrap_or_default();
            panic!("{e}\nlast rntpctl peers --json:\n{json}\n{}", self.logs())
        })
    }

    /// Polls `rntpctl peers --json` for `duration` and panics (reason, JSON, log) at the first
    /// sample that does not satisfy `check`; returns the last sample. For "stays right", after
    /// [`wait_for_peers`](Self::wait_for_peers) has seen it become right.
    pub fn assert_peers_hold<V: Verdict>(
        &self,
        duration: Duration,
        mut check: impl FnMut(&[Value]) -> V,
    ) -> Vec<Value> {
        let start = Instant::now();
        loop {
            self.daemon.assert_running();
            let peers = self.try_peers_json().unwrap_or_else(|e| panic!("{e}\n{}", self.logs()));
            if let Err(why) = check(&peers).verdict() {
                let json = serde_json::to_string_pretty(&peers).unwrap_or_default();
                panic!(
                    "peers went wrong {:.1?} into a {duration:?} stability check: {why}\n\
                     rntpctl peers --json:\n{json}\n{}",
                    start.elapsed(),
                    self.logs()
                );
            }
            if start.elapsed() >= duration {
                return peers;
            }
            thread::sleep(super::POLL_INTERVAL);
        }
    }

    /// Tail of rntpd.log.
    pub fn logs(&self) -> String {
        format!(
            "---- rntpd ({}), last {LOG_TAIL} lines ----\n{}\n",
            self.log.display(),
            tail(&self.log, LOG_TAIL)
        )
    }

    /// SIGTERM, wait (bounded), SIGKILL if need be; returns the exit status. Drop does this too
    /// and insists on status 0.
    pub fn stop(&self) -> ExitStatus {
        self.daemon.stop(STOP_GRACE)
    }
}

fn describe(args: &[&str], out: &Output) -> String {
    format!(
        "rntpctl {} exited with {}\nstdout: {}\nstderr: {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout).trim(),
        String::from_utf8_lossy(&out.stderr).trim()
    )
}

impl Drop for Rntpd {
    fn drop(&mut self) {
        let status = self.stop();
        // A clean shutdown on SIGTERM is part of the contract; don't mask an earlier failure.
        if !status.success() && !thread::panicking() {
            panic!("rntpd did not shut down cleanly on SIGTERM: {status}\n{}", self.logs());
        }
    }
}
