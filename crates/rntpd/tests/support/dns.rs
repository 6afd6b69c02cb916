//! dnsmasq as the loopback DNS server for name tests: it serves a `.test` zone from a hosts dir
//! that tests rewrite at runtime, and logs every query so tests can count re-resolutions.
//!
//! It forwards nothing: names outside `.test` get REFUSED, unknown `.test` names NXDOMAIN, and
//! `nx.test` (and below) always NXDOMAIN. Not covered: SERVFAIL, slow answers and truncation,
//! which dnsmasq cannot produce by itself (testbed.md §3: that needs a fake DNS server).

use super::{assert_udp_free, nocap, unique_subdir, wait_until, write_atomic, Daemon};
use std::fs;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

const DNSMASQ: &str = "/usr/sbin/dnsmasq";

/// Bound for dnsmasq to start or to re-read a changed hosts file.
const TIMEOUT: Duration = Duration::from_secs(10);

/// A running dnsmasq; stopped by pid on drop.
pub struct Dnsmasq {
    addr: SocketAddr,
    dir: PathBuf,
    log: PathBuf,
    daemon: Daemon,
}

impl Dnsmasq {
    /// Starts dnsmasq on `addr`:`port` (UDP and TCP) answering `.test` names from a hosts dir
    /// with TTL `ttl` seconds (negative answers: 5 s); waits until it has started.
    pub fn start(dir: impl AsRef<Path>, addr: Ipv4Addr, port: u16, ttl: u32) -> Dnsmasq {
        let sock = SocketAddr::from((addr, port));
        assert_udp_free(sock);
        let d = unique_subdir(dir.as_ref(), &format!("dnsmasq-{addr}-{port}"));
        let hosts = d.join("hosts.d");
        fs::create_dir(&hosts).expect("create hosts.d");
        let log = d.join("dnsmasq.log");
        let mut cmd = nocap(DNSMASQ);
        cmd.args([
            // Foreground, so the harness owns the process. Stay root:root: the temp dir stays
            // readable for it, and a credential change (its default group is `dip`) would
            // clear the parent-death signal set by nocap().
            "--keep-in-foreground",
            "--user=root",
            "--group=root",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--no-poll",
            "--bind-interfaces",
            "--log-queries",
            "--neg-ttl=5",
            "--local=/test/",
            "--address=/nx.test/",
        ]);
        cmd.arg(format!("--listen-address={addr}"))
            .arg(format!("--port={port}"))
            .arg(format!("--local-ttl={ttl}"))
            .arg(format!("--pid-file={}", d.join("dnsmasq.pid").display()))
            .arg(format!("--log-facility={}", log.display()))
            // Re-read by inotify on change (not on SIGHUP): see set().
            .arg(format!("--hostsdir={}", hosts.display()));
        let daemon = Daemon::spawn("dnsmasq", cmd, &d.join("dnsmasq.out"), &[&log]);
        let dns = Dnsmasq { addr: sock, dir: d, log, daemon };
        let res = wait_until("dnsmasq to start", TIMEOUT, || {
            dns.daemon.assert_running();
            if dns.log_text().contains("started, version") {
                Ok(())
            } else {
                Err("no 'started' in its log yet".into())
            }
        });
        if let Err(e) = res {
            panic!("{e}\n{}", dns.daemon.logs());
        }
        dns
    }

    /// Replaces the records of `name` by `addrs` (an empty list makes the name unknown:
    /// NXDOMAIN) and waits until dnsmasq has re-read them.
    pub fn set(&self, name: &str, addrs: &[IpAddr]) {
        let path = self.dir.join("hosts.d").join(name);
        let marker = format!("read {} - ", path.display());
        let before = self.log_text().matches(&marker).count();
        let body: String = addrs.iter().map(|a| format!("{a} {name}\n")).collect();
        // Atomic: write a dotfile (ignored by dnsmasq) and rename it over the old file.
        write_atomic(&path, &body).expect("write hosts file");
        let res = wait_until(&format!("dnsmasq to re-read {name}"), TIMEOUT, || {
            if self.log_text().matches(&marker).count() > before {
                Ok(())
            } else {
                Err(format!("no new '{marker}' in its log"))
            }
        });
        if let Err(e) = res {
            panic!("{e}\n{}", self.daemon.logs());
        }
    }

    /// How many queries (any type) for exactly `name` dnsmasq has received so far.
    pub fn queries_for(&self, name: &str) -> usize {
        let needle = format!("] {name} from ");
        self.log_text().lines().filter(|l| l.contains(": query[") && l.contains(&needle)).count()
    }

    /// How many queries of type `qtype` (as dnsmasq logs it: "A", "AAAA", …) for exactly
    /// `name` dnsmasq has received so far. Resolvers ask A and AAAA per lookup, so this counts
    /// lookups where [`queries_for`](Self::queries_for) would count them twice.
    pub fn queries_of(&self, name: &str, qtype: &str) -> usize {
        let needle = format!(": query[{qtype}] {name} from ");
        self.log_text().lines().filter(|l| l.contains(&needle)).count()
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.daemon.pid()
    }

    /// Its log tails, for panic messages.
    pub fn logs(&self) -> String {
        self.daemon.logs()
    }

    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}
