//! The `pool` directive end to end: rntpd mobilizing, pruning, retiring and replacing pool
//! members behind a name served by dnsmasq, against real servers (chronyd, NTPsec, and a second
//! rntpd that answers Kiss-o'-Death DENY), checked through `rntpctl peers/sources/history
//! --json` and rntpd's log.
//!
//! What it proves, against the policy in `rntp_proto::source` (module doc and `pool_targets`):
//! * an `iburst` pool's first fill probes as many servers as `maxclock` leaves room for, keeps
//!   the first members to answer and retires the rest as `pruned-extra`, all within seconds;
//! * stopped members are retired `unreachable` and replaced by other addresses of the answer;
//! * a member answering DENY is retired `kod-deny` at once and its address is never used again,
//!   even by a pool that is short of members and re-resolves; its stopped row (kept to show
//!   why) goes with the pool;
//! * two pools share `tos maxclock` (each pool row counting one, as in ntpd) in proportion to
//!   `maxsources`, never exceeding it;
//! * pools are added and removed at runtime without disturbing a configured server, and the
//!   control socket refuses bad and unprivileged changes with clear messages;
//! * three `server NAME` lines for one name are one source with one association.
//!
//! Servers listen on a common high port (a pool line has one `port`), except in the first test,
//! whose members are chronyd and NTPsec on port 123. rntpd always uses the test's dnsmasq
//! (`resolver`), never the system resolver, and polls at 0.25 s (`minpoll -2 maxpoll -2`), so
//! that "unreachable" (8 unanswered polls) takes about 2 s.
//!
//! Needs root (NTPsec needs an address on lo and port 123) and `scripts/install-deps`. Never
//! changes the clock: every daemon runs without clock control and without CAP_SYS_TIME.

mod support;

use serde_json::Value;
use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use support::{rntpd::rntpctl_path, Block, ChronyServer, Dnsmasq, Net, NtpsecServer, Rntpd};
use support::{Shift, TestDir};

static NET: Net = Net::new(15);

/// The port of every high-port test server (they differ by address): members of one pool must
/// share the pool line's port.
const NTP_PORT: u16 = 12315;
/// dnsmasq listens on host 53 of the block, on this port.
const DNS_PORT: u16 = 10053;
/// DNS TTL of the pool names: long enough that every replacement in a test comes from the
/// cached answer unless the test forces a lookup with `rntpctl refresh`.
const TTL: u32 = 300;
/// Poll options of every source: as fast as rntpd allows.
const POLL: &str = "minpoll -2 maxpoll -2";
/// ntpd's (and rntpd's) default `tos maxclock`.
const DEFAULT_MAXCLOCK: usize = 10;
/// Bound for anything that only needs a few polls and a DNS lookup on loopback.
const SETTLE: Duration = Duration::from_secs(15);

/// Real servers and dnsmasq on a private block. Fields drop in declaration order: servers
/// before the block lease, the dir last (a test's rntpd, declared after the lab, drops first).
struct Lab {
    /// chronyd on hosts 1..=N; `None` once a test stopped it.
    chrony: Vec<Option<ChronyServer>>,
    ntpsec: Vec<NtpsecServer>,
    dns: Dnsmasq,
    port: u16,
    block: Block,
    dir: TestDir,
}

impl Lab {
    /// Starts `chrony` chronyd servers on hosts 1.. at `port`, then `ntpsec` NTPsec servers on
    /// the following hosts (port 123 only, so `port` must be 123 if `ntpsec` > 0), and dnsmasq;
    /// returns once every server answers, so rntpd's timings measure rntpd alone.
    fn start(chrony: u8, ntpsec: u8, port: u16) -> Lab {
        assert!(ntpsec == 0 || port == 123, "NTPsec only serves on port 123");
        let dir = TestDir::new();
        let block = NET.allocate();
        let started = Instant::now();
        // Start everything, then wait: the servers settle in parallel.
        let chrony: Vec<Option<ChronyServer>> = (1..=chrony)
            .map(|h| Some(ChronyServer::start(&dir, block.addr(h), port, Shift::None)))
            .collect();
        let ntpsec: Vec<NtpsecServer> = (chrony.len() as u8 + 1..=chrony.len() as u8 + ntpsec)
            .map(|h| NtpsecServer::start(&dir, block.addr(h)))
            .collect();
        let dns = Dnsmasq::start(&dir, block.addr(53), DNS_PORT, TTL);
        for c in chrony.iter().flatten() {
            c.wait_ready();
        }
        for n in &ntpsec {
            n.wait_ready();
        }
        println!(
            "lab on {}: {} chronyd + {} NTPsec ready after {:.1?}",
            block.addr(1),
            chrony.len(),
            ntpsec.len(),
            started.elapsed()
        );
        Lab { chrony, ntpsec, dns, port, block, dir }
    }

    /// The address of every server, chronyd first.
    fn addrs(&self) -> Vec<IpAddr> {
        let n = self.chrony.len() + self.ntpsec.len();
        (1..=n as u8).map(|h| self.block.addr(h).into()).collect()
    }

    /// The NTP socket address of host `h` as rntpd shows it.
    fn sock(&self, h: u8) -> String {
        self.block.sock(h, self.port).to_string()
    }

    /// rntpd's configuration: our resolver, then `lines`.
    fn config(&self, lines: &[String]) -> String {
        let mut c = format!("# rntpd pools test\nresolver {}\n", self.dns.addr());
        for l in lines {
            c += l;
            c += "\n";
        }
        c
    }

    /// Stops the chronyd on host `h` (by pid, waiting for it to exit).
    fn stop_chrony(&mut self, h: u8) {
        let server = self.chrony[usize::from(h) - 1].take().expect("server already stopped");
        drop(server);
    }
}

// ---------------------------------------------------------------------------------------------
// Reading rntpctl's JSON

/// The member association rows of `pool` in a peers sample.
/// The live member association rows of `pool` in a peers sample. A member that stopped by
/// itself (KoD DENY) stays listed as `demobilized`, to show why; it is not a member any more.
fn members<'a>(peers: &'a [Value], pool: &str) -> Vec<&'a Value> {
    peers
        .iter()
        .filter(|p| p["kind"] == "pool-member" && p["source"] == pool)
        .filter(|p| p["state"] != "demobilized")
        .collect()
}

/// The association rows (those with an id) of a peers sample.
fn assocs(peers: &[Value]) -> Vec<&Value> {
    peers.iter().filter(|p| !p["id"].is_null()).collect()
}

fn address(p: &Value) -> String {
    p["address"].as_str().unwrap_or_default().to_string()
}

fn reach(p: &Value) -> u64 {
    p["reach"].as_u64().unwrap_or(0)
}

/// `Ok` when `pool` has exactly `n` members, all reachable, at distinct addresses, and its
/// `.POOL.` row is listed.
fn pool_full(peers: &[Value], pool: &str, n: usize) -> Result<(), String> {
    let m = members(peers, pool);
    if !peers.iter().any(|p| p["kind"] == "pool" && p["source"] == pool && p["id"].is_null()) {
        return Err(format!("no pool row for {pool}"));
    }
    if m.len() != n {
        let list: Vec<String> = m
            .iter()
            .map(|p| format!("{} {} reach {:o}", address(p), p["state"], reach(p)))
            .collect();
        return Err(format!("{pool}: {} members, want {n}: {list:?}", m.len()));
    }
    if let Some(p) = m.iter().find(|p| reach(p) == 0) {
        return Err(format!("{pool}: member {} not reachable yet", address(p)));
    }
    let distinct: BTreeSet<String> = m.iter().map(|p| address(p)).collect();
    if distinct.len() != n {
        return Err(format!("{pool}: two members share an address: {distinct:?}"));
    }
    Ok(())
}

fn json_array(rntpd: &Rntpd, args: &[&str]) -> Vec<Value> {
    let out = rntpd.ctl_ok(args);
    match serde_json::from_str(&out) {
        Ok(Value::Array(v)) => v,
        other => panic!("rntpctl {}: {other:?}: {out}", args.join(" ")),
    }
}

/// `rntpctl history --json`, oldest first.
fn history(rntpd: &Rntpd) -> Vec<Value> {
    json_array(rntpd, &["history", "--json"])
}

/// `rntpctl sources --json`.
fn sources(rntpd: &Rntpd) -> Vec<Value> {
    json_array(rntpd, &["sources", "--json"])
}

/// The `sources --json` entry of `name`.
fn source(rntpd: &Rntpd, name: &str) -> Value {
    let all = sources(rntpd);
    all.iter()
        .find(|s| s["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no source {name} in {all:?}"))
}

/// History entries with this event and reason (and address, if given).
fn events<'a>(h: &'a [Value], event: &str, reason: &str, addr: Option<&str>) -> Vec<&'a Value> {
    h.iter()
        .filter(|e| e["event"] == event && e["reason"] == reason)
        .filter(|e| addr.is_none_or(|a| e["address"] == a))
        .collect()
}

/// History entries of any reason mobilizing `addr`.
fn mobilizations_of<'a>(h: &'a [Value], addr: &str) -> Vec<&'a Value> {
    h.iter().filter(|e| e["event"] == "mobilized" && e["address"] == addr).collect()
}

/// [`support::wait_until`], panicking with rntpd's log on timeout.
fn wait_for<T>(
    rntpd: &Rntpd,
    what: &str,
    timeout: Duration,
    probe: impl FnMut() -> Result<T, String>,
) -> T {
    support::wait_until(what, timeout, probe).unwrap_or_else(|e| panic!("{e}\n{}", rntpd.logs()))
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).trim().to_string()
}

/// Asks rntpd to resolve `name` again and waits until that lookup has reached dnsmasq and its
/// answer has been handled (the source is no longer resolving).
fn refresh_and_wait(rntpd: &Rntpd, dns: &Dnsmasq, name: &str) {
    let before = dns.queries_of(name, "A");
    rntpd.ctl_ok(&["refresh", name]);
    wait_for(rntpd, &format!("a new lookup of {name} to be handled"), SETTLE, || {
        let asked = dns.queries_of(name, "A");
        let s = source(rntpd, name);
        if asked > before && s["resolving"] == false {
            Ok(())
        } else {
            Err(format!("{asked} A queries (had {before}), source {s}"))
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Tests

#[test]
fn pool_of_four_fills_within_10s_with_iburst() {
    const TARGET: usize = 4;
    const BOUND: Duration = Duration::from_secs(10);
    // 8 chronyd + 4 NTPsec ntpd, all on port 123 behind one name.
    let lab = Lab::start(8, 4, 123);
    let all = lab.addrs();
    lab.dns.set("pool.test", &all);
    let line = format!("pool pool.test iburst maxsources {TARGET} {POLL}");
    let rntpd = Rntpd::start(&lab.dir, &lab.config(&[line]));

    let budget = BOUND.saturating_sub(rntpd.spawned_at().elapsed());
    let peers = rntpd.wait_for_peers(budget, |p| pool_full(p, "pool.test", TARGET));
    let took = rntpd.spawned_at().elapsed();
    // The history is read after the deadline check's sample; pruning happened before it (the
    // 4th member to answer triggers it, and members > 4 until then).
    let h = history(&rntpd);
    let source = source(&rntpd, "pool.test");
    println!("pool of {TARGET} full {took:.2?} after rntpd's start");

    // Probes: as many as maxclock leaves room for (the pool row counts, as in ntpd), and as
    // the answer allows.
    let probes = (DEFAULT_MAXCLOCK - 1).min(all.len());
    let fill = events(&h, "mobilized", "pool-fill", None);
    let pruned = events(&h, "retired", "pruned-extra", None);
    assert_eq!(fill.len(), probes, "pool-fill mobilizations: {h:#?}\n{}", rntpd.logs());
    assert_eq!(pruned.len(), probes - TARGET, "pruned-extra retirements: {h:#?}");
    assert_eq!(h.len(), probes + probes - TARGET, "unexpected history entries: {h:#?}");
    assert_eq!(source["target"], TARGET, "sources --json: {source}");
    assert_eq!(source["associations"].as_array().map(Vec::len), Some(TARGET), "{source}");

    // Kept members are probes that were not pruned; pruned ones are gone from peers.
    let kept: BTreeSet<String> = members(&peers, "pool.test").iter().map(|p| address(p)).collect();
    let probed: BTreeSet<String> = fill.iter().map(|e| address(e)).collect();
    for e in &pruned {
        let a = e["address"].as_str().unwrap_or_default();
        assert!(!kept.contains(a), "pruned {a} still a member");
    }
    assert!(kept.is_subset(&probed), "members {kept:?} not among the probes {probed:?}");
    let ntpsec: Vec<String> = lab.ntpsec.iter().map(|n| n.addr().to_string()).collect();
    for p in members(&peers, "pool.test") {
        let kind = if ntpsec.contains(&address(p)) { "NTPsec" } else { "chronyd" };
        println!(
            "  member {:<22} {kind:<8} stratum {} reach {:o}",
            address(p),
            p["stratum"],
            reach(p)
        );
    }

    // Which servers answer first is chance, so the members above may all be chronyd. A second
    // pool of the NTPsec addresses (room under maxclock: 2 pool rows + 4 + 4 <= 10) takes those pool.test
    // does not use: then every NTPsec server is a reachable member of one of the pools.
    let ntpsec_ips: Vec<IpAddr> = lab.ntpsec.iter().map(|n| n.addr().ip()).collect();
    lab.dns.set("ntpsec.test", &ntpsec_ips);
    let in_pool = ntpsec.iter().filter(|a| kept.contains(*a)).count();
    rntpd.ctl_ok(&[
        "add",
        "pool",
        "ntpsec.test",
        "iburst",
        "maxsources",
        "4",
        "minpoll",
        "-2",
        "maxpoll",
        "-2",
    ]);
    let peers = rntpd.wait_for_peers(SETTLE, |p| {
        pool_full(p, "pool.test", TARGET)?;
        pool_full(p, "ntpsec.test", ntpsec.len() - in_pool)
    });
    for a in &ntpsec {
        let row = assocs(&peers).into_iter().find(|p| address(p) == *a);
        assert!(
            row.is_some_and(|p| reach(p) != 0 && p["stratum"] == support::ntpsec::ORPHAN_STRATUM),
            "NTPsec {a} is not a reachable member: {peers:#?}"
        );
    }
    println!(
        "all {} NTPsec servers reachable as pool members ({in_pool} in pool.test)",
        ntpsec.len()
    );
    drop(rntpd);
    drop(lab);
}

#[test]
fn stopped_members_are_replaced() {
    const TARGET: usize = 4;
    let mut lab = Lab::start(8, 0, NTP_PORT);
    lab.dns.set("pool.test", &lab.addrs());
    let line = format!("pool pool.test iburst maxsources {TARGET} port {NTP_PORT} {POLL}");
    let rntpd = Rntpd::start(&lab.dir, &lab.config(&[line]));
    let peers = rntpd.wait_for_peers(SETTLE, |p| pool_full(p, "pool.test", TARGET));
    let before = history(&rntpd).len();

    // Stop the servers of two members.
    let mut dead: Vec<String> =
        members(&peers, "pool.test").iter().take(2).map(|p| address(p)).collect();
    dead.sort();
    for d in &dead {
        let h = (1..=8u8).find(|&h| lab.sock(h) == *d).expect("a member is one of our servers");
        lab.stop_chrony(h);
    }
    let stopped = Instant::now();
    println!("stopped the servers of members {dead:?}");

    wait_for(&rntpd, "both dead members retired and replaced", SETTLE, || {
        let h = history(&rntpd);
        let new = &h[before..];
        for d in &dead {
            // Fail at once, with the cause, rather than at the timeout: a dead address chosen
            // again burns a replacement token and the pool stays short for ~15 min.
            if let Some(e) = mobilizations_of(new, d).first() {
                panic!(
                    "{d} was mobilized again ({e}) after its server was stopped: an address \
                     just retired as unreachable must not be chosen as a replacement\n{h:#?}\n{}",
                    rntpd.logs()
                );
            }
            if events(new, "retired", "unreachable", Some(d)).is_empty() {
                return Err(format!("{d} not retired as unreachable yet"));
            }
        }
        let peers = rntpd.try_peers_json()?;
        pool_full(&peers, "pool.test", TARGET)?;
        if let Some(p) = members(&peers, "pool.test").iter().find(|p| dead.contains(&address(p))) {
            return Err(format!("{} still a member", address(p)));
        }
        Ok(())
    });
    let took = stopped.elapsed();
    let h = history(&rntpd);
    let new = &h[before..];
    let replacements = events(new, "mobilized", "replacement", None);
    assert_eq!(replacements.len(), 2, "want exactly two replacements: {new:#?}");
    assert_eq!(
        events(new, "retired", "unreachable", None).len(),
        2,
        "only the two dead members may be retired: {new:#?}"
    );
    assert_eq!(new.len(), 4, "unexpected history entries: {new:#?}");
    println!("both retired (unreachable) and replaced {took:.2?} after the stop:");
    for e in new {
        println!("  {} {:<22} {}", e["event"], e["address"], e["reason"]);
    }
    drop(rntpd);
    drop(lab);
}

#[test]
fn deny_member_is_retired_at_once_and_never_reused() {
    // chronyd on hosts 1-3; the DENY server (a second rntpd) on host 9, same port.
    let lab = Lab::start(3, 0, NTP_PORT);
    let deny_ip = lab.block.addr(9);
    let deny_sock = SocketAddr::from((deny_ip, NTP_PORT));
    support::assert_udp_free(deny_sock);
    let deny_conf = format!(
        "# a server that refuses everyone with a DENY kiss\nresolver {}\n\
         interface listen {deny_ip} port {NTP_PORT}\nrestrict default noserve kod\ntos orphan 3\n",
        lab.dns.addr()
    );
    let deny = Rntpd::start(lab.dir.sub("deny"), &deny_conf);
    // Its status answers once its server socket is bound. No test query of ours: a DENY kiss
    // goes through the rate limiter per client address, shared with rntpd's requests.
    let listening = deny.status_json()["listening"].clone();
    assert!(
        listening.as_array().is_some_and(|l| l.iter().any(|a| a == &deny_sock.to_string())),
        "DENY rntpd not listening on {deny_sock}: {listening}\n{}",
        deny.logs()
    );
    let deny_addr = deny_sock.to_string();

    // Target 3 with only 3 addresses, one of them the DENY server: all three are mobilized.
    let first: Vec<IpAddr> =
        vec![lab.block.addr(1).into(), lab.block.addr(2).into(), deny_ip.into()];
    lab.dns.set("pool.test", &first);
    let line = format!("pool pool.test iburst maxsources 3 port {NTP_PORT} {POLL}");
    let rntpd = Rntpd::start(&lab.dir, &lab.config(&[line]));

    let h = wait_for(&rntpd, "the DENY member retired and the others reachable", SETTLE, || {
        let h = history(&rntpd);
        if events(&h, "retired", "kod-deny", Some(&deny_addr)).is_empty() {
            return Err(format!("no kod-deny retirement of {deny_addr} yet: {h:?}"));
        }
        pool_full(&rntpd.try_peers_json()?, "pool.test", 2)?;
        Ok(h)
    });
    let mobilized = mobilizations_of(&h, &deny_addr);
    let retired = events(&h, "retired", "kod-deny", Some(&deny_addr));
    assert_eq!(mobilized.len(), 1, "{h:#?}");
    assert_eq!(
        h.iter().filter(|e| e["address"] == deny_addr.as_str()).count(),
        2,
        "the DENY address: one mobilization and one kod-deny retirement only: {h:#?}"
    );
    // "At once": on the first reply, i.e. within the first poll (spread over 0.5 s) plus a
    // loopback round trip, long before 8 unanswered polls (2 s) could retire it otherwise.
    let after = retired[0]["time"].as_f64().unwrap() - mobilized[0]["time"].as_f64().unwrap();
    assert!(after < 1.5, "DENY member retired {after:.3} s after mobilization: {h:#?}");
    println!("DENY member {deny_addr} retired (kod-deny) {after:.3} s after it was mobilized");

    // The pool is short of a member and its answer still lists the DENY address: fresh lookups
    // must not bring it back.
    for _ in 0..2 {
        refresh_and_wait(&rntpd, &lab.dns, "pool.test");
        let peers = rntpd.peers_json();
        assert!(
            !members(&peers, "pool.test").iter().any(|p| address(p) == deny_addr),
            "blocked DENY address mobilized again after a refresh: {peers:#?}\n{}",
            rntpd.logs()
        );
    }
    assert_eq!(mobilizations_of(&history(&rntpd), &deny_addr).len(), 1);
    let s = source(&rntpd, "pool.test");
    assert_eq!(s["associations"].as_array().map(Vec::len), Some(2), "{s}");

    // A new address in the answer fills the gap.
    let mut second = first.clone();
    second.push(lab.block.addr(3).into());
    lab.dns.set("pool.test", &second);
    refresh_and_wait(&rntpd, &lab.dns, "pool.test");
    rntpd.wait_for_peers(SETTLE, |p| {
        pool_full(p, "pool.test", 3)?;
        if members(p, "pool.test").iter().any(|m| address(m) == lab.sock(3)) {
            Ok(())
        } else {
            Err(format!("{} not a member", lab.sock(3)))
        }
    });
    // And for a few more seconds (and one more lookup) the DENY address stays out.
    refresh_and_wait(&rntpd, &lab.dns, "pool.test");
    rntpd.assert_peers_hold(Duration::from_secs(3), |p| {
        pool_full(p, "pool.test", 3)?;
        if members(p, "pool.test").iter().any(|m| address(m) == deny_addr) {
            return Err(format!("{deny_addr} mobilized again"));
        }
        Ok(())
    });
    let h = history(&rntpd);
    assert_eq!(mobilizations_of(&h, &deny_addr).len(), 1, "{h:#?}");
    let newcomer = mobilizations_of(&h, &lab.sock(3));
    assert_eq!(newcomer.len(), 1, "{h:#?}");
    // The pool never had 3 members answering before, so this still counts as its first fill;
    // after a completed fill it would be a `replacement`.
    let reason = newcomer[0]["reason"].as_str().unwrap_or_default();
    assert!(["pool-fill", "replacement"].contains(&reason), "{h:#?}");
    println!("{} joined the pool ({reason}); the DENY address was never used again", lab.sock(3));

    // The DENY server did send DENY.
    let status = deny.status_json();
    let kod_deny = status["server"]["kod_deny"].as_u64().unwrap_or(0);
    assert!(kod_deny >= 1, "the DENY rntpd sent no DENY kiss: {status:#}");

    // The stopped DENY association may stay listed to show why it stopped, but only as long
    // as its pool exists: removing the pool removes every row of it.
    let peers = rntpd.peers_json();
    for p in peers.iter().filter(|p| address(p) == deny_addr) {
        assert!(
            p["state"] == "demobilized"
                && p["demobilized"] == "kod-deny"
                && p["last_kod"] == "DENY",
            "row of the DENY address: {p:#}"
        );
    }
    rntpd.ctl_ok(&["remove", "pool.test"]);
    let peers = rntpd.peers_json();
    let left: Vec<&Value> = peers.iter().filter(|p| p["source"] == "pool.test").collect();
    assert!(
        left.is_empty(),
        "rows of pool.test left after `rntpctl remove pool.test` (a pool member stopped by a \
         KoD is never removed from the daemon's association table): {left:#?}"
    );
    drop(rntpd);
    drop(deny);
    drop(lab);
}

#[test]
fn mixed_limits_under_maxclock() {
    // 8 - 2 pool rows (they count, as in ntpd): 6 associations for the members.
    const MAXCLOCK: usize = 8;
    const MEMBERS: usize = MAXCLOCK - 2;
    // a.test: hosts 1-6, b.test: hosts 5-8 (the overlap must never be polled twice).
    let lab = Lab::start(8, 0, NTP_PORT);
    let addrs = lab.addrs();
    lab.dns.set("a.test", &addrs[0..6]);
    lab.dns.set("b.test", &addrs[4..8]);
    let rntpd = Rntpd::start(
        &lab.dir,
        &lab.config(&[
            format!("tos maxclock {MAXCLOCK}"),
            format!("pool a.test iburst maxsources 5 port {NTP_PORT} {POLL}"),
            format!("pool b.test iburst maxsources 3 port {NTP_PORT} {POLL}"),
        ]),
    );
    // Within maxclock and with distinct addresses at every sample, also while filling.
    let within = |p: &[Value]| -> Result<(), String> {
        let a = assocs(p);
        let distinct: BTreeSet<String> = a.iter().map(|m| address(m)).collect();
        if a.len() > MEMBERS {
            panic!("{} associations, more than maxclock {MAXCLOCK} - 2 pools: {p:#?}", a.len());
        }
        if distinct.len() != a.len() {
            panic!("two associations share an address: {p:#?}");
        }
        Ok(())
    };
    rntpd.wait_for_peers(SETTLE, |p| {
        within(p)?;
        pool_full(p, "a.test", 4)?;
        pool_full(p, "b.test", 2)
    });
    let took = rntpd.spawned_at().elapsed();
    rntpd.assert_peers_hold(Duration::from_secs(4), |p| {
        within(p)?;
        pool_full(p, "a.test", 4)?;
        pool_full(p, "b.test", 2)
    });
    assert_eq!(source(&rntpd, "a.test")["target"], 4);
    assert_eq!(source(&rntpd, "b.test")["target"], 2);
    // No headroom under maxclock: iburst probes nothing beyond the targets.
    let h = history(&rntpd);
    assert_eq!(events(&h, "mobilized", "pool-fill", None).len(), 6, "{h:#?}");
    assert_eq!(h.len(), 6, "no probes, prunes or replacements expected: {h:#?}");
    println!(
        "targets 4 + 2 under maxclock {MAXCLOCK} (2 pool rows), full after {took:.2?}, never above {MEMBERS}"
    );
    drop(rntpd);
    drop(lab);
}

#[test]
fn runtime_add_and_remove_while_polling() {
    // Host 1: the configured server; hosts 2-5: pool.test.
    let lab = Lab::start(5, 0, NTP_PORT);
    lab.dns.set("pool.test", &lab.addrs()[1..]);
    let server = lab.sock(1);
    let rntpd = Rntpd::start(
        &lab.dir,
        &lab.config(&[format!("server {} port {NTP_PORT} iburst {POLL}", lab.block.addr(1))]),
    );
    // A full reach register: from here on, every missed reply of the server would show.
    let peers = rntpd.wait_for_peers(SETTLE, |p| {
        assocs(p).len() == 1 && address(assocs(p)[0]) == server && reach(assocs(p)[0]) == 0o377
    });
    let server_id = assocs(&peers)[0]["id"].clone();
    // The server keeps answering, under the same association, whatever happens to the pool:
    // a reply within the last 2 s (8 polls; a margin for a loaded machine) and reach never 0.
    let server_ok = |p: &[Value]| -> Result<(), String> {
        let row = p.iter().find(|r| r["id"] == server_id);
        match row {
            Some(r)
                if address(r) == server
                    && reach(r) != 0
                    && r["when"].as_f64().is_some_and(|w| w < 2.0) =>
            {
                Ok(())
            }
            _ => panic!("server association {server_id} disturbed: {p:#?}\n{}", rntpd.logs()),
        }
    };

    let args = [
        "add",
        "pool",
        "pool.test",
        "iburst",
        "maxsources",
        "3",
        "minpoll",
        "-2",
        "maxpoll",
        "-2",
        "port",
        &NTP_PORT.to_string(),
    ]
    .map(String::from);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let t = Instant::now();
    let out = rntpd.ctl(&args);
    let took = t.elapsed();
    assert!(out.status.success(), "rntpctl add: {}\n{}", stderr(&out), rntpd.logs());
    // Spawning rntpctl on a busy 2-core machine can take a few hundred ms by itself; a reply
    // that waited for DNS or blocked the loop would take seconds (hickory's timeout is 5 s).
    assert!(took < Duration::from_secs(1), "rntpctl add took {took:?}");
    // Listed at once, before (or while) its name resolves.
    let s = source(&rntpd, "pool.test");
    assert_eq!(s["kind"], "pool", "{s}");
    assert_eq!(s["target"], 3, "{s}");
    println!(
        "rntpctl add returned in {took:.1?}: {}; then resolving={} last_resolution={}",
        String::from_utf8_lossy(&out.stdout).trim(),
        s["resolving"],
        s["last_resolution"]
    );

    let peers = rntpd.wait_for_peers(SETTLE, |p| {
        server_ok(p)?;
        pool_full(p, "pool.test", 3)
    });
    let member_ids: BTreeSet<u64> =
        members(&peers, "pool.test").iter().filter_map(|m| m["id"].as_u64()).collect();
    println!("pool.test full {:.2?} after rntpctl add", t.elapsed());

    let before = history(&rntpd).len();
    let out = rntpd.ctl_ok(&["remove", "pool.test"]);
    assert!(out.contains("and 3 associations"), "rntpctl remove: {out}");
    let h = history(&rntpd);
    let removed: BTreeSet<u64> = events(&h[before..], "retired", "removed", None)
        .iter()
        .filter_map(|e| e["association"].as_u64())
        .collect();
    assert_eq!(removed, member_ids, "history `removed` entries vs members: {h:#?}");
    assert_eq!(h.len() - before, member_ids.len(), "only the members may change: {h:#?}");
    assert!(sources(&rntpd).iter().all(|s| s["name"] != "pool.test"));
    rntpd.assert_peers_hold(Duration::from_secs(1), |p| {
        server_ok(p)?;
        if p.len() == 1 {
            Ok(())
        } else {
            Err(format!("{} rows, want only the server's", p.len()))
        }
    });

    // Errors: a duplicate and an unknown name, each with an error exit and a clear message.
    let out = rntpd.ctl(&[
        "add",
        "server",
        &lab.block.addr(1).to_string(),
        "port",
        &NTP_PORT.to_string(),
    ]);
    assert!(!out.status.success(), "duplicate add accepted: {out:?}");
    assert!(stderr(&out).contains("already configured"), "rntpctl add duplicate: {}", stderr(&out));
    println!("duplicate add: {}", stderr(&out));
    let out = rntpd.ctl(&["remove", "nothere"]);
    assert!(!out.status.success(), "remove of an unknown name succeeded: {out:?}");
    assert!(stderr(&out).contains("no source named `nothere`"), "rntpctl remove: {}", stderr(&out));
    println!("unknown remove: {}", stderr(&out));
    drop(rntpd);
    drop(lab);
}

#[test]
fn three_server_lines_for_one_name_are_one_source() {
    let lab = Lab::start(3, 0, NTP_PORT);
    lab.dns.set("pool.test", &lab.addrs());
    let line = format!("server pool.test port {NTP_PORT} iburst {POLL}");
    let rntpd = Rntpd::start(&lab.dir, &lab.config(&[line.clone(), line.clone(), line]));
    let one = |p: &[Value]| -> Result<(), String> {
        let a = assocs(p);
        if p.len() != 1 || a.len() != 1 {
            return Err(format!(
                "{} rows, {} associations; want one association",
                p.len(),
                a.len()
            ));
        }
        if a[0]["kind"] != "server" || a[0]["source"] != "pool.test" || reach(a[0]) == 0 {
            return Err(format!("association {}", a[0]));
        }
        Ok(())
    };
    rntpd.wait_for_peers(SETTLE, one);
    rntpd.assert_peers_hold(Duration::from_secs(2), one);
    let s = sources(&rntpd);
    assert_eq!(s.len(), 1, "{s:#?}");

    let log = std::fs::read_to_string(rntpd.dir().join("rntpd.log")).unwrap_or_default();
    let warnings: Vec<&str> =
        log.lines().filter(|l| l.contains("duplicate source `pool.test` ignored")).collect();
    assert_eq!(warnings.len(), 2, "want a warning per extra line\n{}", rntpd.logs());
    assert!(
        warnings.iter().all(|w| w.contains("WARN") && w.contains("write `pool NAME` once")),
        "warnings must suggest `pool`: {warnings:#?}"
    );
    println!("{}", warnings[0]);
    drop(rntpd);
    drop(lab);
}

/// Runs rntpctl as `nobody` against `socket`.
fn rntpctl_as_nobody(socket: &Path, args: &[&str]) -> Output {
    support::run(
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(rntpctl_path())
            .arg("-s")
            .arg(socket)
            .args(args),
    )
}

#[test]
fn non_root_caller_may_read_but_not_change_sources() {
    let dir = TestDir::new();
    let block = NET.allocate();
    // Nothing needs to answer: the test is about the control socket. The resolver is never
    // asked (no names), it only keeps rntpd off the system's.
    let rntpd = Rntpd::start(
        &dir,
        &format!(
            "resolver {}\nserver {} port {NTP_PORT} {POLL}\n",
            block.sock(53, DNS_PORT),
            block.addr(1)
        ),
    );
    // The socket is 0660 in a 0750 dir in a 0700 temp dir; open the way for this test only so
    // that the uid check, not the file mode, is what refuses.
    for (path, mode) in [(dir.path(), 0o711), (rntpd.dir(), 0o711), (rntpd.socket(), 0o666)] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }
    let out = rntpctl_as_nobody(rntpd.socket(), &["peers", "--json"]);
    assert!(out.status.success(), "peers as nobody: {}", stderr(&out));
    let peers: Vec<Value> = serde_json::from_slice(&out.stdout).expect("peers JSON");
    assert_eq!(assocs(&peers).len(), 1, "{peers:#?}");

    let server = block.addr(1).to_string();
    for args in [&["add", "pool", "pool.test", "iburst"][..], &["remove", &server]] {
        let out = rntpctl_as_nobody(rntpd.socket(), args);
        assert!(!out.status.success(), "{args:?} as nobody accepted");
        let msg = stderr(&out);
        assert!(
            msg.contains("PermissionDenied") && msg.contains("needs root or rntpd's user"),
            "{args:?} as nobody: {msg}"
        );
        println!("{args:?} as nobody: {msg}");
    }
    // Nothing changed.
    let s = sources(&rntpd);
    assert_eq!(s.len(), 1, "{s:#?}");
    drop(rntpd);
    drop(block);
}
