//! A private LAN of network namespaces for tests that loopback cannot host: multicast between
//! several daemons (manycast), each daemon on a "host" of its own.
//!
//! ```text
//!   <prefix>-h1 (10.77.0.1/24, fd77::1/64)  eth0 ─┐
//!   <prefix>-h2 (10.77.0.2/24, fd77::2/64)  eth0 ─┼── p1, p2, ... ── br0 in <prefix>-br
//!   ...                                           │    (a bridge, multicast snooping off: every
//!                                                 │     group datagram reaches every port)
//!   <prefix>-br  br0 may carry addresses too (10.77.0.250, ...) for servers "on the wire"
//! ```
//!
//! What it guarantees (testbed.md §4, verified here for multicast):
//! * The host's network is never touched: the addresses (10.77.0.0/24, fd77::/64) exist only
//!   inside the namespaces; every veth pair is created directly inside its two namespaces
//!   (`ip link add eth0 netns A type veth peer name pN netns B`), so no interface name ever
//!   appears in the host's namespace and parallel test runs cannot collide. A host gets a
//!   route for 224.0.0.0/4 on its eth0 (IPv6 has `ff00::/8` per interface already).
//! * Names are `rntpmc<pid>x<n>-...`: unique per process and per LAN. On drop, exactly the
//!   namespaces this LAN created are deleted (which deletes their veths), and `/run/netns` is
//!   unmounted and removed only if this LAN created it and it is empty. Daemons inside are the
//!   test's own [`Daemon`]s, stopped by pid before the LAN drops (declare the LAN first).
//! * Every program runs as `ip netns exec NS setpriv ... PROGRAM` ([`Lan::command`]): `ip netns
//!   exec` replaces itself with the program, so the pid is the daemon's, and the daemon runs
//!   without CAP_SYS_TIME with a parent-death signal, as [`super::nocap`] does.
//!
//! Needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN) and iproute2; [`Lan::try_new`] says why not.

use std::fmt::Write as _;
use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::{run, unique_subdir, wait_until, Daemon};

/// LANs created by this process, for unique names.
static NEXT_LAN: AtomicU32 = AtomicU32::new(0);

/// A bridge namespace and the host namespaces attached to it.
pub struct Lan {
    prefix: String,
    /// Namespaces created, bridge first.
    created: Vec<String>,
    made_run_netns: bool,
}

/// Runs `ip ARGS`, panicking with its stderr on failure.
fn ip(args: &[&str]) {
    let out = run(Command::new("ip").args(args));
    assert!(
        out.status.success(),
        "ip {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

impl Lan {
    /// A new LAN with only its bridge; `Err` says why namespaces cannot be made here.
    pub fn try_new() -> Result<Lan, String> {
        let n = NEXT_LAN.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("rntpmc{}x{n}", std::process::id());
        let made_run_netns = !Path::new("/run/netns").exists();
        let bridge = format!("{prefix}-br");
        let out = run(Command::new("ip").args(["netns", "add", &bridge]));
        if !out.status.success() {
            return Err(format!(
                "`ip netns add` failed (these tests need root and iproute2): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let lan = Lan { prefix, created: vec![bridge.clone()], made_run_netns };
        ip(&["-n", &bridge, "link", "set", "lo", "up"]);
        ip(&["-n", &bridge, "link", "add", "br0", "type", "bridge"]);
        // Without snooping the bridge floods every multicast datagram to every port, so no
        // IGMP/MLD querier is needed.
        ip(&["-n", &bridge, "link", "set", "br0", "type", "bridge", "mcast_snooping", "0"]);
        ip(&["-n", &bridge, "link", "set", "br0", "up"]);
        Ok(lan)
    }

    /// The bridge namespace.
    pub fn bridge(&self) -> &str {
        &self.created[0]
    }

    /// The IPv4 address of host `h`.
    pub fn v4(h: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 77, 0, h)
    }

    /// The IPv6 address of host `h`.
    pub fn v6(h: u8) -> Ipv6Addr {
        Ipv6Addr::new(0xfd77, 0, 0, 0, 0, 0, 0, u16::from(h))
    }

    /// Adds host `h` (1..=249): a namespace with `eth0` on the bridge, addressed
    /// [`Lan::v4`]`(h)` and [`Lan::v6`]`(h)`. Returns its namespace name.
    pub fn host(&mut self, h: u8) -> String {
        assert!((1..=249).contains(&h), "host {h}: 250..=254 are for the bridge");
        let ns = format!("{}-h{h}", self.prefix);
        ip(&["netns", "add", &ns]);
        self.created.push(ns.clone());
        let port = format!("p{h}");
        let bridge = self.bridge().to_string();
        ip(&[
            "link", "add", "eth0", "netns", &ns, "type", "veth", "peer", "name", &port, "netns",
            &bridge,
        ]);
        ip(&["-n", &bridge, "link", "set", &port, "master", "br0"]);
        ip(&["-n", &bridge, "link", "set", &port, "up"]);
        ip(&["-n", &ns, "link", "set", "lo", "up"]);
        ip(&["-n", &ns, "addr", "add", &format!("{}/24", Lan::v4(h)), "dev", "eth0"]);
        // nodad: usable at once (duplicate address detection would hold it for a second).
        ip(&["-n", &ns, "addr", "add", &format!("{}/64", Lan::v6(h)), "dev", "eth0", "nodad"]);
        ip(&["-n", &ns, "link", "set", "eth0", "up"]);
        ip(&["-n", &ns, "route", "add", "224.0.0.0/4", "dev", "eth0"]);
        ns
    }

    /// Gives the bridge itself the address 10.77.0.`h` (250..=254), for servers that run in
    /// the bridge namespace.
    pub fn bridge_addr(&self, h: u8) -> Ipv4Addr {
        assert!((250..=254).contains(&h), "bridge addresses are 250..=254");
        let addr = Lan::v4(h);
        ip(&["-n", self.bridge(), "addr", "add", &format!("{addr}/24"), "dev", "br0"]);
        addr
    }

    /// `program` to run in namespace `ns`, without CAP_SYS_TIME and with a parent-death
    /// signal (see the module docs).
    pub fn command(ns: &str, program: impl AsRef<Path>) -> Command {
        let program = program.as_ref();
        assert!(
            program.exists(),
            "{} is not installed: run scripts/install-deps",
            program.display()
        );
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns, "setpriv", "--pdeathsig", "TERM"]);
        cmd.args(["--inh-caps=-sys_time", "--bounding-set=-sys_time", "--"]);
        cmd.arg(program);
        cmd
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        // Hosts first, the bridge last; deleting a namespace deletes its end of each veth.
        for ns in self.created.iter().rev() {
            let out = run(Command::new("ip").args(["netns", "del", ns]));
            if !out.status.success() {
                eprintln!("ip netns del {ns}: {}", String::from_utf8_lossy(&out.stderr).trim());
            }
        }
        let empty = fs::read_dir("/run/netns").is_ok_and(|mut d| d.next().is_none());
        if self.made_run_netns && empty {
            let _ = run(Command::new("umount").arg("/run/netns"));
            let _ = fs::remove_dir("/run/netns");
        }
    }
}

/// chronyd in a namespace: `local stratum 1`, or following `upstream` with an offset (a
/// falseticker that serves real time + offset, as support/chrony.rs does on loopback).
/// Readiness is judged with chronyc over its Unix socket, which works from outside.
pub struct NetnsChrony {
    dir: PathBuf,
    daemon: Daemon,
}

impl NetnsChrony {
    /// Starts chronyd in `ns` on `addr`:`port`.
    pub fn start(
        dir: impl AsRef<Path>,
        ns: &str,
        addr: IpAddr,
        port: u16,
        upstream: Option<(IpAddr, u16, f64)>,
    ) -> NetnsChrony {
        let d = unique_subdir(dir.as_ref(), &format!("chrony-{addr}-{port}"));
        let mut conf = String::new();
        match upstream {
            None => conf += "local stratum 1\n",
            Some((ip, p, offset)) => {
                let _ = writeln!(
                    conf,
                    "server {ip} port {p} iburst minpoll -2 maxpoll -2 offset {offset}"
                );
            }
        }
        let _ = write!(
            conf,
            "bindaddress {addr}\nport {port}\nallow all\ncmdport 0\nbindcmdaddress {d}/chronyd.sock\n\
             pidfile {d}/chronyd.pid\ndriftfile {d}/chrony.drift\nntsdumpdir {d}\nlogdir {d}\n",
            d = d.display()
        );
        fs::write(d.join("chrony.conf"), conf).expect("write chrony.conf");
        let mut cmd = Lan::command(ns, "/usr/sbin/chronyd");
        cmd.args(["-d", "-x", "-u", "root", "-f"]).arg(d.join("chrony.conf"));
        cmd.arg("-l").arg(d.join("chronyd.log"));
        let daemon =
            Daemon::spawn("chronyd", cmd, &d.join("chronyd.out"), &[&d.join("chronyd.log")]);
        NetnsChrony { dir: d, daemon }
    }

    /// Waits until chronyd is synchronized (`Leap status : Normal`) and, with an upstream,
    /// serves `shift` (±1 ms) per `chronyc tracking`.
    pub fn wait_ready(&self, shift: f64, timeout: Duration) {
        let res = wait_until("chronyd in a namespace to be ready", timeout, || {
            self.daemon.assert_running();
            let out = run(Command::new("/usr/bin/chronyc")
                .arg("-h")
                .arg(self.dir.join("chronyd.sock"))
                .arg("tracking"));
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            if !text.contains("Leap status     : Normal") {
                return Err(format!("not synchronized: {text}"));
            }
            let line = text.lines().find(|l| l.starts_with("System time")).unwrap_or_default();
            let words: Vec<&str> = line.split_whitespace().collect();
            let value: f64 = words.get(3).and_then(|v| v.parse().ok()).unwrap_or(f64::NAN);
            let served = if words.get(5) == Some(&"fast") { -value } else { value };
            if (served - shift).abs() > 0.001 {
                return Err(format!("serving {served:+.6}, want {shift:+}"));
            }
            Ok(())
        });
        if let Err(e) = res {
            panic!("{e}\n{}", self.daemon.logs());
        }
    }
}
