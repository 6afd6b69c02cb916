//! Names and pools, second round (issue 14), end to end: rntpd against real chronyd servers and
//! a loopback fake DNS server (names are resolved only there).
//!
//! * a `server NAME` whose answer lists a dead and a live address moves to the live one (same
//!   association id, history reason `failover`) and never moves while healthy; one whose
//!   server dies moves within seconds at a fast poll;
//! * rntpd starts with a resolv.conf that lists no name server (its own file, through the test
//!   hook `RNTPD_RESOLV_CONF`): an address source is reachable at once, the name waits as
//!   `unresolved` with the cause, and resolves within 10 s of the file being fixed, without a
//!   restart; a closed resolver port fails a lookup in under a second with "refused";
//! * Debian's NTPsec `ntp.conf` (4 pools, `tos maxclock 11`) runs 7 servers, as its own comment
//!   intends under ntpd's rule;
//! * `server -4 NAME` and `server -6 NAME` are two associations.

mod support;

use serde_json::Value;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};
use support::fakedns::{FakeDns, Rule};
use support::{ChronyServer, Net, Rntpd, Shift, TestDir};

static NET: Net = Net::new(16);

const NTP_PORT: u16 = 12301;
const DNS_PORT: u16 = 10053;
/// Polling as fast as rntpd allows, so reach changes show within a second or two.
const POLL: &str = "iburst minpoll -2 maxpoll -1";
/// Bound for a first association to become reachable after rntpd's start.
const REACHABLE: Duration = Duration::from_secs(20);

fn sock(ip: Ipv4Addr) -> String {
    SocketAddr::from((ip, NTP_PORT)).to_string()
}

/// The association rows of `source`.
fn assocs<'a>(peers: &'a [Value], source: &str) -> Vec<&'a Value> {
    peers.iter().filter(|p| p["source"] == source && !p["id"].is_null()).collect()
}

/// `Ok(id)` once `source` has exactly one association, at `address` and reachable.
fn reachable_at(peers: &[Value], source: &str, address: &str) -> Result<u64, String> {
    match assocs(peers, source).as_slice() {
        [a] if a["address"] == address && a["reach"].as_u64().unwrap_or(0) != 0 => {
            Ok(a["id"].as_u64().unwrap_or(0))
        }
        [a] => {
            Err(format!("{source}: at {} with reach {}, want {address}", a["address"], a["reach"]))
        }
        other => Err(format!("{source}: {} associations", other.len())),
    }
}

fn history(rntpd: &Rntpd) -> Vec<Value> {
    let out = rntpd.ctl_ok(&["history", "--json"]);
    match serde_json::from_str(&out) {
        Ok(Value::Array(h)) => h,
        other => panic!("rntpctl history --json: {other:?}: {out}"),
    }
}

fn sources_json(rntpd: &Rntpd) -> Vec<Value> {
    let out = rntpd.ctl_ok(&["sources", "--json"]);
    match serde_json::from_str(&out) {
        Ok(Value::Array(s)) => s,
        other => panic!("rntpctl sources --json: {other:?}: {out}"),
    }
}

fn config(resolver: SocketAddr, lines: &[String]) -> String {
    let mut c = format!("resolver {resolver}\nresolve floor 2 ceiling 60\n");
    for l in lines {
        c += l;
        c += "\n";
    }
    c
}

#[test]
fn server_name_fails_over_from_a_dead_to_a_live_address_and_never_while_healthy() {
    const HOLD: Duration = Duration::from_secs(8);
    let dir = TestDir::new();
    let net = NET.allocate();
    let live = ChronyServer::start(&dir, net.addr(2), NTP_PORT, Shift::None);
    let dead = net.addr(30);
    support::assert_udp_free(SocketAddr::from((dead, NTP_PORT)));
    let dns = FakeDns::start(net.sock(53, DNS_PORT));
    // The dead address first, as in the issue (127.x.x.30 + .2); order kept in every answer.
    dns.set_rule("ntp.test", Rule::Answer { addrs: vec![dead.into(), net.addr(2).into()], ttl: 2 });
    live.wait_ready();
    let line = format!("server ntp.test port {NTP_PORT} {POLL}");
    let rntpd = Rntpd::start(&dir, &config(dns.addr(), &[line]));
    let started = Instant::now();
    let at_live = sock(net.addr(2));
    let peers =
        rntpd.wait_for_peers(REACHABLE, |p| reachable_at(p, "ntp.test", &at_live).map(drop));
    let id = reachable_at(&peers, "ntp.test", &at_live).unwrap();
    println!("moved to the live address and reachable {:.1?} after start", started.elapsed());
    let moves: Vec<Value> = history(&rntpd).into_iter().filter(|h| h["event"] == "moved").collect();
    assert_eq!(moves.len(), 1, "{moves:?}");
    assert_eq!(moves[0]["reason"], "failover", "{moves:?}");
    assert_eq!(moves[0]["old_address"], sock(dead), "{moves:?}");
    assert_eq!(moves[0]["association"], id, "the id is kept: {moves:?}");

    // Healthy now: the name keeps answering with the dead address first, and nothing moves.
    let q0 = sources_json(&rntpd)[0]["queries"].as_u64().unwrap_or(0);
    rntpd.assert_peers_hold(HOLD, |p| match reachable_at(p, "ntp.test", &at_live) {
        Ok(i) if i == id => Ok(()),
        Ok(i) => Err(format!("association id changed {id} -> {i}")),
        Err(e) => Err(e),
    });
    let lookups = sources_json(&rntpd)[0]["queries"].as_u64().unwrap_or(0) - q0;
    assert!(lookups >= 2, "only {lookups} lookups in {HOLD:?}: the answer was not seen again");
    assert_eq!(history(&rntpd).iter().filter(|h| h["event"] == "moved").count(), 1);
    drop(rntpd);
}

#[test]
fn server_name_whose_server_dies_fails_over_within_seconds() {
    let dir = TestDir::new();
    let net = NET.allocate();
    let a = ChronyServer::start(&dir, net.addr(1), NTP_PORT, Shift::None);
    let b = ChronyServer::start(&dir, net.addr(2), NTP_PORT, Shift::None);
    let dns = FakeDns::start(net.sock(53, DNS_PORT));
    dns.set_rule(
        "ntp.test",
        Rule::Answer { addrs: vec![net.addr(1).into(), net.addr(2).into()], ttl: 300 },
    );
    a.wait_ready();
    b.wait_ready();
    let line = format!("server ntp.test port {NTP_PORT} {POLL}");
    let rntpd = Rntpd::start(&dir, &config(dns.addr(), &[line]));
    let (at_a, at_b) = (sock(net.addr(1)), sock(net.addr(2)));
    let peers = rntpd.wait_for_peers(REACHABLE, |p| reachable_at(p, "ntp.test", &at_a).map(drop));
    let id = reachable_at(&peers, "ntp.test", &at_a).unwrap();
    // Let the poll settle at maxpoll (0.5 s), then stop the server in use.
    std::thread::sleep(Duration::from_secs(3));
    let died = Instant::now();
    drop(a);
    // 8 unanswered polls of at most 0.5 s, a lookup, then an iburst to the other address.
    rntpd.wait_for_peers(Duration::from_secs(20), |p| match reachable_at(p, "ntp.test", &at_b) {
        Ok(i) if i == id => Ok(()),
        Ok(i) => Err(format!("at {at_b} with id {i}, want {id}")),
        Err(e) => Err(e),
    });
    println!("failed over to {at_b} {:.1?} after its server died", died.elapsed());
    drop(rntpd);
}

#[test]
fn boots_without_a_name_server_and_follows_the_resolv_conf_when_fixed() {
    let dir = TestDir::new();
    let net = NET.allocate();
    let literal = ChronyServer::start(&dir, net.addr(1), NTP_PORT, Shift::None);
    let named = ChronyServer::start(&dir, net.addr(2), NTP_PORT, Shift::None);
    // resolv.conf cannot name a port: the fake DNS listens on port 53 of its own address.
    let dns = FakeDns::start(SocketAddr::from((net.addr(53), 53)));
    dns.set_rule("ntp.test", Rule::Answer { addrs: vec![net.addr(2).into()], ttl: 300 });
    let conf = dir.path().join("resolv.conf");
    let hosts = dir.path().join("hosts");
    std::fs::write(&conf, "# no name server yet (DHCP has not run)\n").unwrap();
    std::fs::write(&hosts, "").unwrap();
    literal.wait_ready();
    named.wait_ready();
    let lines = [
        format!("server {} port {NTP_PORT} {POLL}", net.addr(1)),
        format!("server ntp.test port {NTP_PORT} {POLL}"),
    ];
    let env: [(&str, &Path); 2] = [("RNTPD_RESOLV_CONF", &conf), ("RNTPD_HOSTS", &hosts)];
    let rntpd = Rntpd::start_with_env(&dir, &lines.join("\n"), &env);
    let started = Instant::now();
    let literal_at = sock(net.addr(1));
    rntpd.wait_for_peers(Duration::from_secs(5), |p| {
        reachable_at(p, &net.addr(1).to_string(), &literal_at)?;
        match p.iter().find(|r| r["source"] == "ntp.test") {
            Some(r)
                if r["kind"] == "unresolved"
                    && r["last_error"].as_str().is_some_and(|e| e.contains("no DNS server")) =>
            {
                Ok(())
            }
            other => Err(format!("ntp.test: {other:?}")),
        }
    });
    println!(
        "address source reachable, name unresolved (no DNS server) {:.1?} after start",
        started.elapsed()
    );

    // The file is fixed: the name resolves and mobilizes within 10 s, no restart.
    std::fs::write(&conf, format!("nameserver {}\n", net.addr(53))).unwrap();
    let fixed = Instant::now();
    let named_at = sock(net.addr(2));
    rntpd.wait_for_peers(Duration::from_secs(10), |p| match assocs(p, "ntp.test").as_slice() {
        [a] if a["address"] == named_at.as_str() => Ok(()),
        other => Err(format!("ntp.test: {other:?}")),
    });
    println!("ntp.test mobilized {:.1?} after resolv.conf was fixed", fixed.elapsed());

    // A name server whose port is closed: a lookup fails at once with "refused".
    let closed = net.addr(54);
    support::assert_udp_free(SocketAddr::from((closed, 53)));
    std::fs::write(&conf, format!("nameserver {closed}\n")).unwrap();
    let asked = Instant::now();
    rntpd.ctl_ok(&["refresh", "ntp.test"]);
    let res = support::wait_until("a refused lookup", Duration::from_secs(5), || {
        let s = sources_json(&rntpd);
        let last =
            &s.iter().find(|x| x["name"] == "ntp.test").ok_or("no source")?["last_resolution"];
        let (result, ago) =
            (last["result"].as_str().unwrap_or(""), last["ago"].as_f64().unwrap_or(1e9));
        if result.contains("refused") && ago <= asked.elapsed().as_secs_f64() {
            Ok(asked.elapsed().as_secs_f64() - ago)
        } else {
            Err(format!("last resolution {last}"))
        }
    });
    let took = res.unwrap_or_else(|e| panic!("{e}\n{}", rntpd.logs()));
    println!("refused lookup done {took:.3} s after `rntpctl refresh`");
    assert!(took < 1.0, "a refused port took {took:.3} s");
    // The association stays on its last good address meanwhile.
    let peers = rntpd.peers_json();
    assert_eq!(assocs(&peers, "ntp.test").len(), 1);
    drop(rntpd);
}

#[test]
fn debian_ntpsec_ntp_conf_runs_seven_servers() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../rntp-config/tests/fixtures/ntpsec-debian.conf");
    let text = std::fs::read_to_string(&fixture).expect("the Debian fixture");
    assert!(text.contains("tos maxclock 11"), "fixture changed?");
    let dir = TestDir::new();
    let net = NET.allocate();
    // Eight servers on port 123 (the pool lines name no port), two behind each pool name.
    let servers: Vec<ChronyServer> =
        (1..=8).map(|i| ChronyServer::start(&dir, net.addr(i), 123, Shift::None)).collect();
    let dns = FakeDns::start(net.sock(53, DNS_PORT));
    for k in 0..4u8 {
        let addrs: Vec<IpAddr> = vec![net.addr(2 * k + 1).into(), net.addr(2 * k + 2).into()];
        dns.set_rule(&format!("{k}.debian.pool.ntp.org"), Rule::Answer { addrs, ttl: 300 });
    }
    for s in &servers {
        s.wait_ready();
    }
    let config = format!("resolver {}\n{text}", dns.addr());
    let rntpd = Rntpd::start(&dir, &config);
    let members = |p: &[Value]| -> Vec<Value> {
        p.iter().filter(|r| r["kind"] == "pool-member").cloned().collect()
    };
    rntpd.wait_for_peers(REACHABLE, |p| {
        let m = members(p);
        let reachable = m.iter().filter(|r| r["reach"].as_u64().unwrap_or(0) != 0).count();
        if m.len() == 7 && reachable == 7 {
            Ok(())
        } else {
            Err(format!("{} members, {reachable} reachable", m.len()))
        }
    });
    // And it stays at 7: no probe beyond maxclock, nothing to replace.
    rntpd.assert_peers_hold(Duration::from_secs(3), |p| {
        let n = members(p).len();
        if n == 7 {
            Ok(())
        } else {
            Err(format!("{n} members"))
        }
    });
    let targets: Vec<u64> =
        sources_json(&rntpd).iter().map(|s| s["target"].as_u64().unwrap_or(0)).collect();
    assert_eq!(targets, vec![2, 2, 2, 1], "pool targets under tos maxclock 11 with 4 pool rows");
    drop(rntpd);
}

#[test]
fn server_minus_4_and_minus_6_of_one_name_are_two_associations() {
    let dir = TestDir::new();
    let net = NET.allocate();
    let v4 = ChronyServer::start(&dir, net.addr(1), NTP_PORT, Shift::None);
    let dns = FakeDns::start(net.sock(53, DNS_PORT));
    let v6: IpAddr = "::1".parse().unwrap();
    dns.set_rule("ntp.test", Rule::Answer { addrs: vec![net.addr(1).into(), v6], ttl: 300 });
    v4.wait_ready();
    let lines = [
        format!("server -4 ntp.test port {NTP_PORT} {POLL}"),
        format!("server -6 ntp.test port {NTP_PORT} {POLL}"),
    ];
    let rntpd = Rntpd::start(&dir, &config(dns.addr(), &lines));
    let at_v4 = sock(net.addr(1));
    let at_v6 = SocketAddr::new(v6, NTP_PORT).to_string();
    rntpd.wait_for_peers(REACHABLE, |p| {
        let a = assocs(p, "ntp.test");
        let mut addrs: Vec<&str> = a.iter().filter_map(|r| r["address"].as_str()).collect();
        addrs.sort_unstable();
        let mut want = vec![at_v4.as_str(), at_v6.as_str()];
        want.sort_unstable();
        let v4_up = a.iter().any(|r| r["address"] == at_v4.as_str() && r["reach"] != 0);
        if addrs == want && v4_up {
            Ok(())
        } else {
            Err(format!("associations at {addrs:?}, IPv4 reachable {v4_up}"))
        }
    });
    assert_eq!(sources_json(&rntpd).len(), 2);
    let log = std::fs::read_to_string(rntpd.dir().join("rntpd.log")).unwrap_or_default();
    assert!(
        !log.contains("duplicate source"),
        "a -4/-6 pair was called a duplicate\n{}",
        rntpd.logs()
    );
    drop(rntpd);
}
