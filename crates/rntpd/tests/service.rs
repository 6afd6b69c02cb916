//! rntpd as a system service (issue 12): reload on SIGHUP and `rntpctl reload`, `sourcedir`,
//! clean stop on SIGTERM, `-u USER`, systemd notification, journald priorities, `logfile`,
//! `rntpctl wait-sync`, and the fatal start without CAP_SYS_TIME.
//!
//! The upstream servers are rntpd itself, serving as a stratum-3 orphan (`tos orphan 3`) on
//! several loopback addresses of one process: no other NTP software is needed. Every rntpd
//! runs without CAP_SYS_TIME (support's `nocap`); all but one run `--observe`. The exception,
//! `term_saves_the_drift_file_and_removes_the_socket`, starts control mode in a user namespace
//! (`unshare -U -r`): rntpd sees CAP_SYS_TIME there and disciplines, but the kernel refuses
//! every clock write (it checks the capability in the initial namespace), so the clock is
//! never touched while the real start-up, drift-file and shutdown paths run.
//!
//! Addresses: 127.17.Y.0/24 blocks (`Net::new(17)`), one per test.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;
use support::rntpd::rntpctl_path;
use support::{assert_udp_free, nocap, ntp, wait_until, Block, Daemon, Net, Rntpd, TestDir};

static NET: Net = Net::new(17);

/// The upstream servers' port (each test has its own addresses).
const PORT: u16 = 12317;
/// Bound for things that take a few polls at minpoll -2 (0.25 s).
const SOON: Duration = Duration::from_secs(20);

/// One rntpd serving as a stratum-3 orphan on 127.17.Y.`hosts` (port [`PORT`]).
fn upstream(dir: &TestDir, net: &Block, hosts: &[u8]) -> Rntpd {
    let mut config = String::from("tos orphan 3\nrestrict default\n");
    for h in hosts {
        assert_udp_free(net.sock(*h, PORT));
        config += &format!("interface listen {} port {PORT}\n", net.addr(*h));
    }
    let rntpd = Rntpd::start(dir, &config);
    for h in hosts {
        if let Err(e) = ntp::wait_synced(net.sock(*h, PORT), 3, Duration::from_secs(10)) {
            panic!("{e}\n{}", rntpd.logs());
        }
    }
    rntpd
}

/// A `server` line for upstream host `h`, polling every 0.25 s.
fn server_line(net: &Block, h: u8) -> String {
    format!("server {} port {PORT} iburst minpoll -2 maxpoll -2\n", net.addr(h))
}

fn kill(pid: u32, signal: &str) {
    let status = Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status();
    assert!(status.is_ok_and(|s| s.success()), "kill -{signal} {pid}");
}

/// The peers row of association source `addr`, if any.
fn row<'a>(peers: &'a [Value], addr: &str) -> Option<&'a Value> {
    peers.iter().find(|p| p["source"].as_str() == Some(addr) && !p["id"].is_null())
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Skips (visibly; fails under CI=true) when `what` is missing here.
fn skip(what: &str) -> bool {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("cannot run here: {what}");
    }
    eprintln!("SKIPPED: {what}");
    true
}

/// rntpd with arguments and environment of the test's choosing (the harness's `Rntpd` is
/// always `--observe` with a fixed command line). Writes `config` to DIR/ntp.conf; the control
/// socket is DIR/rntpd.sock unless `args` name another.
struct Custom {
    dir: PathBuf,
    socket: PathBuf,
    log: PathBuf,
    daemon: Daemon,
}

impl Custom {
    fn start(
        dir: &TestDir,
        config: &str,
        wrap: &[&str],
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Custom {
        let d = support::unique_subdir(dir.path(), "rntpd");
        fs::write(d.join("ntp.conf"), config).unwrap();
        let socket = args
            .iter()
            .position(|a| *a == "--control-socket")
            .map_or_else(|| d.join("rntpd.sock"), |i| PathBuf::from(args[i + 1]));
        let log = d.join("rntpd.log");
        let mut cmd = nocap(wrap.first().copied().unwrap_or(env!("CARGO_BIN_EXE_rntpd")));
        if !wrap.is_empty() {
            cmd.args(&wrap[1..]).arg(env!("CARGO_BIN_EXE_rntpd"));
        }
        cmd.arg("-c").arg(d.join("ntp.conf")).args(args);
        if !args.contains(&"--control-socket") {
            cmd.arg("--control-socket").arg(&socket);
        }
        cmd.env("RUST_LOG", "debug");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let daemon = Daemon::spawn("rntpd", cmd, &log, &[]);
        let c = Custom { dir: d, socket, log, daemon };
        let up = wait_until("rntpd's control socket", Duration::from_secs(10), || {
            c.daemon.assert_running();
            std::os::unix::net::UnixStream::connect(&c.socket).map(drop).map_err(|e| e.to_string())
        });
        if let Err(e) = up {
            panic!("{e}\n{}", c.daemon.logs());
        }
        c
    }

    fn ctl(&self, args: &[&str]) -> Output {
        support::run(Command::new(rntpctl_path()).arg("-s").arg(&self.socket).args(args))
    }

    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

// ---------------------------------------------------------------------------------------------

#[test]
fn hup_with_an_edited_file_adds_and_removes_sources_and_keeps_unchanged_ones() {
    let dir = TestDir::new();
    let net = NET.allocate();
    let _up = upstream(&dir, &net, &[1, 2, 3]);
    // systemd's side of sd_notify: a datagram socket the daemon is told about.
    let notify_path = dir.path().join("notify");
    let notes = Notes::listen(UnixDatagram::bind(&notify_path).unwrap());
    let config = format!("{}{}", server_line(&net, 1), server_line(&net, 2));
    let c = Custom::start(
        &dir,
        &config,
        &[],
        &["--observe"],
        &[("NOTIFY_SOCKET", notify_path.to_str().unwrap()), ("WATCHDOG_USEC", "400000")],
    );
    notes.until("READY=1", |m| m.starts_with("READY=1\nSTATUS="));
    let first = notes.first().unwrap_or_default();
    assert!(first.starts_with("READY=1\nSTATUS="), "the first message: {first:?}");

    let (a, b, new) = (net.addr(1).to_string(), net.addr(2).to_string(), net.addr(3).to_string());
    let rntpd = support::wait_until("both servers fully reachable (reach 377)", SOON, || {
        let peers = peers(&c)?;
        let full = |addr: &str| row(&peers, addr).is_some_and(|p| p["reach"] == 0o377);
        if full(&a) && full(&b) {
            Ok(peers)
        } else {
            Err(format!("{peers:?}"))
        }
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", c.daemon.logs()));
    let kept_id = row(&rntpd, &a).unwrap()["id"].clone();

    // Server 2 goes, server 3 comes, server 1 stays (on another line).
    let edited = format!("# edited\n{}{}", server_line(&net, 3), server_line(&net, 1));
    fs::write(c.dir.join("ntp.conf"), edited).unwrap();
    kill(c.daemon.pid(), "HUP");
    let after = wait_until("the reload (server 2 gone, server 3 there)", SOON, || {
        let peers = peers(&c)?;
        if row(&peers, &b).is_none() && row(&peers, &new).is_some() {
            Ok(peers)
        } else {
            Err(format!("{peers:?}"))
        }
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", c.daemon.logs()));
    let kept = row(&after, &a).expect("server 1 kept");
    assert_eq!(kept["id"], kept_id, "server 1 keeps its association id");
    // A new association would start again from reach 0; this one kept its register.
    assert_eq!(kept["reach"], 0o377, "server 1 keeps its reach: {kept}");
    let sources = c.ctl(&["sources", "--json"]);
    let sources: Value = serde_json::from_slice(&sources.stdout).unwrap();
    let origin = sources
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"].as_str() == Some(a.as_str()))
        .map(|s| s["origin"].as_str().unwrap().to_string())
        .unwrap();
    assert!(origin.ends_with("ntp.conf:3"), "origin follows the line: {origin}");
    let log = c.log_text();
    assert!(log.contains(&format!("added: {new}")), "{log}");
    assert!(log.contains(&format!("removed: {b}")), "{log}");
    // systemd heard about the reload, and its end, and the state.
    notes.until("RELOADING=1", |m| m.starts_with("RELOADING=1\nMONOTONIC_USEC="));
    notes.until("READY=1 after the reload", |m| m == "READY=1");
    notes.until("STATUS=Synchronized", |m| m.contains("STATUS=Synchronized to "));
    notes.until("WATCHDOG=1 (every 0.2 s)", |m| m == "WATCHDOG=1");
    assert_eq!(c.daemon.stop(support::STOP_GRACE).code(), Some(0), "{}", c.daemon.logs());
    assert!(!c.socket.exists(), "control socket removed at exit");
}

/// What rntpd told "systemd", in order: a thread reads the socket all the time, as systemd
/// does (an unread socket fills up and rntpd drops what does not fit).
struct Notes {
    seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Notes {
    fn listen(socket: UnixDatagram) -> Notes {
        use std::sync::atomic::Ordering;
        let notes = Notes { seen: Default::default(), stop: Default::default() };
        let (seen, stop) = (notes.seen.clone(), notes.stop.clone());
        socket.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !stop.load(Ordering::Relaxed) {
                if let Ok(n) = socket.recv(&mut buf) {
                    let m = String::from_utf8_lossy(&buf[..n]).into_owned();
                    seen.lock().unwrap().push(m);
                }
            }
        });
        notes
    }

    /// Waits until a notification (received before or now) satisfies `check`.
    fn until(&self, what: &str, check: impl Fn(&str) -> bool) {
        wait_until(what, SOON, || {
            let seen = self.seen.lock().unwrap();
            seen.iter().any(|m| check(m)).then_some(()).ok_or_else(|| format!("{seen:?}"))
        })
        .unwrap_or_else(|e| panic!("{e}"));
    }

    fn first(&self) -> Option<String> {
        self.seen.lock().unwrap().first().cloned()
    }
}

impl Drop for Notes {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

fn peers(c: &Custom) -> Result<Vec<Value>, String> {
    let out = c.ctl(&["peers", "--json"]);
    if !out.status.success() {
        return Err(text(&out));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
}

#[test]
fn hup_with_a_broken_file_changes_nothing_and_names_file_line_col() {
    let dir = TestDir::new();
    let net = NET.allocate();
    let _up = upstream(&dir, &net, &[1]);
    let rntpd = Rntpd::start(&dir, &server_line(&net, 1));
    let a = net.addr(1).to_string();
    let before = rntpd.wait_for_peers(SOON, |p| row(p, &a).is_some_and(|r| r["reach"] != 0));
    let id = row(&before, &a).unwrap()["id"].clone();

    let conf = rntpd.dir().join("ntp.conf");
    fs::write(&conf, format!("{}server 192.0.2.1 minpoll abc\n", server_line(&net, 1))).unwrap();
    kill(rntpd.pid(), "HUP");
    let log = rntpd.dir().join("rntpd.log");
    let expected = format!("{}:2:26: error: minpoll expects an integer", conf.display());
    wait_until("the reload error in the log", SOON, || {
        let text = fs::read_to_string(&log).unwrap_or_default();
        (text.contains("reload failed") && text.contains(&expected)).then_some(()).ok_or_default()
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", rntpd.logs()));
    // `rntpctl reload` says the same and fails.
    let out = rntpd.ctl(&["reload"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains(&expected), "{}", text(&out));
    assert!(text(&out).contains("running configuration stays in force"), "{}", text(&out));
    // Nothing changed: one source, the same association.
    let after = rntpd.peers_json();
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(row(&after, &a).unwrap()["id"], id);
}

trait OkOrDefault {
    fn ok_or_default(self) -> Result<(), String>;
}

impl OkOrDefault for Option<()> {
    fn ok_or_default(self) -> Result<(), String> {
        self.ok_or_else(|| "not yet".into())
    }
}

#[test]
fn sourcedir_files_added_then_reloaded_appear_as_sources() {
    let dir = TestDir::new();
    let net = NET.allocate();
    let _up = upstream(&dir, &net, &[1, 2]);
    let sources_d = dir.path().join("sources.d");
    let rntpd =
        Rntpd::start(&dir, &format!("{}sourcedir {}\n", server_line(&net, 1), sources_d.display()));
    // The directory does not exist yet: empty, not an error.
    fs::create_dir(&sources_d).unwrap();
    let file = sources_d.join("dhcp-eth0.sources");
    support::write_atomic(&file, &format!("# from DHCP\n{}", server_line(&net, 2))).unwrap();
    let out = rntpd.ctl_ok(&["reload"]);
    let b = net.addr(2).to_string();
    assert!(out.contains(&format!("added:          {b}")), "{out}");
    assert!(out.contains("unchanged:      1 source"), "{out}");
    let sources = rntpd.ctl_ok(&["sources", "--json"]);
    let sources: Value = serde_json::from_str(&sources).unwrap();
    let added = sources
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"].as_str() == Some(b.as_str()))
        .unwrap_or_else(|| panic!("{sources}"));
    assert_eq!(added["origin"].as_str().unwrap(), format!("{}:2", file.display()));
    rntpd.wait_for_peers(SOON, |p| row(p, &b).is_some_and(|r| r["reach"] != 0));

    // The hook takes it back.
    fs::remove_file(&file).unwrap();
    let out = rntpd.ctl_ok(&["reload", "--json"]);
    let info: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(info["removed"], serde_json::json!([b]), "{info}");
    assert!(row(&rntpd.peers_json(), &b).is_none());
}

#[test]
fn rntpctl_reload_keeps_runtime_sources_and_reports_what_needs_a_restart() {
    let dir = TestDir::new();
    let net = NET.allocate();
    let _up = upstream(&dir, &net, &[1, 2]);
    let rntpd = Rntpd::start(&dir, &server_line(&net, 1));
    let b = net.addr(2).to_string();
    rntpd.ctl_ok(&["add", "server", &b, "port", &PORT.to_string(), "minpoll", "-2"]);
    fs::write(
        rntpd.dir().join("ntp.conf"),
        format!("{}tos maxclock 5\nrestrict default noquery\n", server_line(&net, 1)),
    )
    .unwrap();
    let out = rntpd.ctl_ok(&["reload", "--json"]);
    let info: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(info["unchanged"], 1, "{info}");
    assert_eq!(info["runtime_kept"], 1, "{info}");
    assert_eq!(info["applied"], serde_json::json!(["restrict/discard"]), "{info}");
    assert_eq!(info["restart_needed"], serde_json::json!(["tos maxclock"]), "{info}");
    assert!(row(&rntpd.peers_json(), &b).is_some(), "runtime source kept");
}

#[test]
fn concurrent_reloads_all_get_answers_and_the_last_file_wins() {
    let dir = TestDir::new();
    let net = NET.allocate();
    let rntpd = Rntpd::start(&dir, &server_line(&net, 1));
    let conf = rntpd.dir().join("ntp.conf");
    let replies = std::thread::scope(|s| {
        let handles: Vec<_> =
            (0..6).map(|_| s.spawn(|| rntpd.ctl(&["reload", "--json"]))).collect();
        for h in 2..5 {
            fs::write(&conf, (1..=h).map(|i| server_line(&net, i)).collect::<String>()).unwrap();
            kill(rntpd.pid(), "HUP");
        }
        handles.into_iter().map(|h| h.join().unwrap()).collect::<Vec<_>>()
    });
    for out in &replies {
        assert!(out.status.success(), "{}", text(out));
    }
    // Whatever the interleaving, the file as it is last is what runs once the reloads settle.
    let out = rntpd.ctl_ok(&["reload", "--json"]);
    let info: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(info["unchanged"], 4, "{info}\n{}", rntpd.logs());
    assert_eq!(rntpd.peers_json().len(), 4);
}

#[test]
fn term_saves_the_drift_file_and_removes_the_socket() {
    if Command::new("unshare")
        .arg("-U")
        .arg("-r")
        .arg("true")
        .status()
        .map_or(true, |s| !s.success())
        && skip("`unshare -U -r` (user namespaces) is not available")
    {
        return;
    }
    let dir = TestDir::new();
    let net = NET.allocate();
    let _up = upstream(&dir, &net, &[1]);
    let drift = dir.path().join("ntp.drift");
    // Not in rntpd's own format: a rewrite is visible.
    fs::write(&drift, "12.5\n").unwrap();
    let config = format!("{}driftfile {}\n", server_line(&net, 1), drift.display());
    // Control mode (no --observe) in a user namespace: see the module docs.
    let c = Custom::start(&dir, &config, &["/usr/bin/unshare", "-U", "-r"], &[], &[]);
    let status = c.ctl(&["status", "--json"]);
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["mode"], "control", "{status}");
    // The first clock update saves the drift file at once (then hourly).
    wait_until("the first drift file save", SOON, || {
        let now = fs::read_to_string(&drift).unwrap_or_default();
        (now != "12.5\n").then_some(()).ok_or(now)
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", c.daemon.logs()));
    let saved: f64 = fs::read_to_string(&drift).unwrap().trim().parse().unwrap();
    assert!((saved - 12.5).abs() < 1.0, "{saved}");
    // A marker the daemon never writes: only the save at SIGTERM replaces it.
    fs::write(&drift, "99.000\n").unwrap();
    assert_eq!(c.daemon.stop(support::STOP_GRACE).code(), Some(0), "{}", c.daemon.logs());
    let at_exit = fs::read_to_string(&drift).unwrap();
    assert_ne!(at_exit, "99.000\n", "SIGTERM did not write the drift file\n{}", c.log_text());
    let value: f64 = at_exit.trim().parse().unwrap();
    assert!((value - 12.5).abs() < 1.0, "{value}");
    assert!(!c.socket.exists(), "control socket left behind");
    // And the kernel refused every write, as it must here.
    assert!(c.log_text().contains("cannot adjust the system clock"), "{}", c.log_text());
}

#[test]
fn control_mode_switch_keeps_cap_sys_time_only_and_sigint_stops_cleanly() {
    if Command::new("unshare")
        .arg("-U")
        .arg("-r")
        .arg("true")
        .status()
        .map_or(true, |s| !s.success())
        && skip("`unshare -U -r` (user namespaces) is not available")
    {
        return;
    }
    let dir = TestDir::new();
    // In the namespace only root is mapped, so root is the user to switch to; what is checked
    // is the capability set after the switch (control mode keeps CAP_SYS_TIME, bit 25).
    let c = Custom::start(&dir, "", &["/usr/bin/unshare", "-U", "-r"], &["-u", "root"], &[]);
    let proc_status = fs::read_to_string(format!("/proc/{}/status", c.daemon.pid())).unwrap();
    let field = |name: &str| {
        proc_status.lines().find_map(|l| l.strip_prefix(name)).unwrap_or("").trim().to_string()
    };
    assert_eq!(field("CapEff:"), "0000000002000000", "{proc_status}\n{}", c.log_text());
    assert_eq!(field("CapPrm:"), "0000000002000000", "{proc_status}");
    assert_eq!(field("CapInh:"), "0000000000000000", "{proc_status}");
    assert!(c.log_text().contains("keeping CAP_SYS_TIME only"), "{}", c.log_text());
    let status = c.ctl(&["status", "--json"]);
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["mode"], "control", "{status}");
    c.daemon.signal("INT");
    let exit =
        wait_until("rntpd to exit on SIGINT", SOON, || c.daemon.exited().ok_or(String::new()))
            .unwrap_or_else(|e| panic!("{e}\n{}", c.daemon.logs()));
    assert_eq!(exit.code(), Some(0), "{}", c.daemon.logs());
    assert!(!c.socket.exists(), "control socket left behind");
    assert!(c.log_text().contains("SIGINT received"));
}

#[test]
fn control_mode_without_cap_sys_time_refuses_to_start() {
    let dir = TestDir::new();
    let d = dir.sub("rntpd");
    fs::write(d.join("ntp.conf"), "").unwrap();
    let out = support::run(
        nocap(env!("CARGO_BIN_EXE_rntpd"))
            .arg("-c")
            .arg(d.join("ntp.conf"))
            .arg("--control-socket")
            .arg(d.join("rntpd.sock")),
    );
    assert_eq!(out.status.code(), Some(77), "{}", text(&out));
    let err = text(&out);
    assert!(err.contains("cannot discipline the system clock"), "{err}");
    assert!(err.contains("--observe"), "{err}");
    assert!(!d.join("rntpd.sock").exists(), "nothing was started");
}

#[test]
fn runs_as_nobody_serving_port_123_bound_before_the_drop() {
    if support::run(Command::new("id").arg("-u")).stdout != b"0\n" {
        skip("-u needs root");
        return;
    }
    let dir = TestDir::new();
    let net = NET.allocate();
    let addr = net.sock(1, 123);
    assert_udp_free(addr);
    // nobody must reach the socket's directory to remove the socket at exit.
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let socket = dir.path().join("run").join("rntpd.sock");
    let config = format!("interface listen {}\nrestrict default\ntos orphan 3\n", addr.ip());
    let c = Custom::start(
        &dir,
        &config,
        &[],
        &["--observe", "-u", "nobody", "--control-socket", socket.to_str().unwrap()],
        &[],
    );
    let proc_status = fs::read_to_string(format!("/proc/{}/status", c.daemon.pid())).unwrap();
    let field = |name: &str| {
        proc_status.lines().find_map(|l| l.strip_prefix(name)).unwrap_or("").trim().to_string()
    };
    assert_eq!(field("Uid:"), "65534\t65534\t65534\t65534", "{proc_status}");
    assert_eq!(field("CapEff:"), "0000000000000000", "{proc_status}");
    assert_eq!(field("CapPrm:"), "0000000000000000", "{proc_status}");
    assert_eq!(field("Groups:"), "", "{proc_status}");
    // Port 123 was bound as root and serves after the drop.
    let reply = ntp::wait_synced(addr, 3, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}\n{}", c.daemon.logs()));
    assert_eq!(reply.stratum, 3);
    // The control socket answers (and belongs to nobody now).
    let out = c.ctl(&["status", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let owner = std::os::unix::fs::MetadataExt::uid(&fs::metadata(&socket).unwrap());
    assert_eq!(owner, 65534);
    assert_eq!(c.daemon.stop(support::STOP_GRACE).code(), Some(0), "{}", c.daemon.logs());
    assert!(!socket.exists(), "nobody removed the control socket at exit");
}

#[test]
fn wait_sync_exits_0_when_synchronized_1_on_timeout_3_when_unreachable() {
    let dir = TestDir::new();
    let net = NET.allocate();
    let _up = upstream(&dir, &net, &[1]);
    let synced = Rntpd::start(&dir, &server_line(&net, 1));
    let out = synced.ctl(&["wait-sync", "--timeout", "30", "--max-offset", "0.1"]);
    assert_eq!(out.status.code(), Some(0), "{}\n{}", text(&out), synced.logs());
    assert!(out.stdout.is_empty(), "quiet when not on a terminal: {}", text(&out));

    // A server nobody answers for: never synchronized.
    let lonely = Rntpd::start(&dir, &server_line(&net, 9));
    let out = lonely.ctl(&["wait-sync", "--timeout", "2"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("not synchronized after 2 s"), "{}", text(&out));

    let out = support::run(
        Command::new(rntpctl_path()).arg("-s").arg(dir.path().join("none.sock")).args([
            "wait-sync",
            "--timeout",
            "5",
        ]),
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
}

#[test]
fn logfile_is_reopened_on_hup_and_journal_lines_carry_priorities() {
    let dir = TestDir::new();
    let logfile = dir.path().join("rntpd-file.log");
    // Under systemd: standard error is the journal stream named by JOURNAL_STREAM.
    let d = dir.sub("journal");
    let stderr_log = d.join("stderr");
    fs::write(&stderr_log, "").unwrap();
    let meta = fs::metadata(&stderr_log).unwrap();
    let stream = format!(
        "{}:{}",
        std::os::unix::fs::MetadataExt::dev(&meta),
        std::os::unix::fs::MetadataExt::ino(&meta)
    );
    let mut cmd = nocap(env!("CARGO_BIN_EXE_rntpd"));
    fs::write(d.join("ntp.conf"), "pidfile /nonexistent\n").unwrap();
    cmd.arg("-c").arg(d.join("ntp.conf")).arg("--observe");
    cmd.arg("--control-socket").arg(d.join("rntpd.sock")).env("JOURNAL_STREAM", &stream);
    cmd.env_remove("RUST_LOG");
    let journal = Daemon::spawn("rntpd", cmd, &stderr_log, &[]);
    wait_until("the journal lines", SOON, || {
        let t = fs::read_to_string(&stderr_log).unwrap_or_default();
        t.contains("control socket ready").then_some(()).ok_or(t)
    })
    .unwrap();
    let t = fs::read_to_string(&stderr_log).unwrap();
    assert!(t.lines().all(|l| l.starts_with('<')), "every line has a priority:\n{t}");
    assert!(t.contains("<4>") && t.contains("warning: `pidfile`"), "{t}");
    assert!(t.contains("<6>control socket ready"), "no timestamp, no level word:\n{t}");
    assert_eq!(journal.stop(support::STOP_GRACE).code(), Some(0));

    // A logfile, rotated away, then reopened by SIGHUP.
    let c = Custom::start(
        &dir,
        &format!("logfile {}\n", logfile.display()),
        &[],
        &["--observe", "--log-level", "info"],
        &[],
    );
    wait_until("lines in the log file", SOON, || {
        let t = fs::read_to_string(&logfile).unwrap_or_default();
        t.contains("control socket ready").then_some(()).ok_or(t)
    })
    .unwrap();
    let rotated = dir.path().join("rntpd-file.log.1");
    fs::rename(&logfile, &rotated).unwrap();
    kill(c.daemon.pid(), "HUP");
    wait_until("the reopened log file", SOON, || {
        let t = fs::read_to_string(&logfile).unwrap_or_default();
        t.contains("configuration reloaded").then_some(()).ok_or(t)
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", c.daemon.logs()));
    assert!(fs::read_to_string(&rotated).unwrap().contains("SIGHUP received"));
    assert!(
        !fs::read_to_string(&c.log).unwrap().contains("control socket ready"),
        "stderr carried only what came before the log file"
    );
}

#[test]
fn a_stalled_log_output_never_stalls_the_daemon_and_drops_are_counted() {
    let dir = TestDir::new();
    let net = NET.allocate();
    let hosts: Vec<u8> = (1..=10).collect();
    let _up = upstream(&dir, &net, &hosts);
    let d = dir.sub("stalled");
    let config: String = hosts.iter().map(|h| server_line(&net, *h)).collect();
    fs::write(d.join("ntp.conf"), config).unwrap();
    let socket = d.join("rntpd.sock");
    // Standard error is a pipe nobody reads until the end: once its 64 KiB are full, every
    // write blocks.
    let mut child = nocap(env!("CARGO_BIN_EXE_rntpd"))
        .arg("-c")
        .arg(d.join("ntp.conf"))
        .args(["--observe", "--log-level", "debug", "--control-socket"])
        .arg(&socket)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    wait_until("the control socket", Duration::from_secs(10), || {
        std::os::unix::net::UnixStream::connect(&socket).map(drop).map_err(|e| e.to_string())
    })
    .unwrap();
    // More lines than the pipe and the queue (4096 lines) hold: each control connection closed
    // before its request is one debug line.
    for _ in 0..6_000 {
        drop(std::os::unix::net::UnixStream::connect(&socket));
    }
    let blocked =
        wait_until("the log writer blocked on the full pipe", Duration::from_secs(60), || {
            let tasks = fs::read_dir(format!("/proc/{pid}/task")).map_err(|e| e.to_string())?;
            let writer_blocked = tasks.flatten().any(|t| {
                let comm = fs::read_to_string(t.path().join("comm")).unwrap_or_default();
                let wchan = fs::read_to_string(t.path().join("wchan")).unwrap_or_default();
                comm.trim() == "rntpd-log" && wchan.contains("pipe_write")
            });
            writer_blocked.then_some(()).ok_or_else(|| "not yet".to_string())
        });
    let ctl = |args: &[&str]| {
        support::run(Command::new(rntpctl_path()).arg("-s").arg(&socket).args(args))
    };
    if let Err(e) = blocked {
        let _ = child.kill();
        panic!("{e}");
    }
    // The event loop goes on: control requests are answered and samples keep coming in.
    let fresh = wait_until("samples after the log stalled", Duration::from_secs(10), || {
        let out = ctl(&["peers", "--json"]);
        let peers: Vec<Value> = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
        let recent = peers.iter().filter(|p| p["when"].as_f64().is_some_and(|w| w < 1.0)).count();
        (recent == hosts.len()).then_some(()).ok_or_else(|| format!("{recent} recent"))
    });
    kill(pid, "TERM");
    let out = child.wait_with_output().unwrap();
    fresh.unwrap();
    assert_eq!(out.status.code(), Some(0));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("log lines dropped: the log output could not keep up"), "{log}");
}

#[test]
fn help_lists_every_option() {
    let run = |bin: &Path, args: &[&str]| text(&support::run(Command::new(bin).args(args)));
    let rntpd = run(Path::new(env!("CARGO_BIN_EXE_rntpd")), &["--help"]);
    for option in ["--config", "--observe", "--control-socket", "--user", "--log-level", "-u"] {
        assert!(rntpd.contains(option), "rntpd --help lacks {option}:\n{rntpd}");
    }
    let ctl = run(&rntpctl_path(), &["--help"]);
    for command in [
        "peers",
        "sources",
        "status",
        "history",
        "add",
        "remove",
        "refresh",
        "reload",
        "wait-sync",
        "validate",
        "--socket",
    ] {
        assert!(ctl.contains(command), "rntpctl --help lacks {command}:\n{ctl}");
    }
    let wait = run(&rntpctl_path(), &["wait-sync", "--help"]);
    assert!(wait.contains("--timeout") && wait.contains("--max-offset"), "{wait}");
}
