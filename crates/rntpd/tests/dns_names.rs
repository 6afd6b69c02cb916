//! Hostnames end to end: rntpd resolving `server NAME` lines through a real DNS server (dnsmasq)
//! or a fault-injecting one ([`FakeDns`]), checked through `rntpctl peers` / `rntpctl sources`,
//! the DNS servers' own query counts and rntpd's log.
//!
//! What it proves, against the policy in `rntp_proto::source` (module doc):
//! * re-resolution follows the TTL (clamped to the floor) and is never more frequent;
//! * a changed record moves the association (same id) and an answer that still lists the
//!   current address changes nothing;
//! * duplicate `server` lines collapse into one source, with a warning that suggests `pool`;
//! * no DNS fault (SERVFAIL, NXDOMAIN, REFUSED, silence, slowness, truncation, unusable
//!   addresses) stalls the daemon, and each is reported with its cause;
//! * a name that failed is retried on the backoff schedule and recovers.
//!
//! Also the self-test of [`FakeDns`] against an independent client, `dig`.
//!
//! rntpd is always pointed at the test's own DNS server (`resolver`), never the system resolver,
//! and lowers `resolve floor` to 2 s so that TTL-driven behaviour shows within seconds.

mod support;

use serde_json::Value;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};
use support::fakedns::{self, FakeDns, Rule, Transport};
use support::{ChronyServer, Dnsmasq, Net, Rntpd, Shift, TestDir};

static NET: Net = Net::new(12);

/// Port of every test server of a block (they differ by address): the same port is needed
/// where a name moves from one server to another, since the port belongs to the source.
const NTP_PORT: u16 = 12301;
/// Port of the test's DNS server (on host 53 of the block).
const DNS_PORT: u16 = 10053;
/// `resolve floor` given to rntpd: low, so that TTL-driven behaviour shows within seconds.
const FLOOR: f64 = 2.0;
/// Polling as fast as rntpd allows, so reach changes show within a second or two.
const POLL: &str = "iburst minpoll -2 maxpoll -1";
/// Bound for a first association to become reachable after rntpd's start.
const REACHABLE: Duration = Duration::from_secs(20);

/// rntpd's config: our resolver, a low floor, and `lines`.
fn config(resolver: SocketAddr, lines: &[String]) -> String {
    let mut c =
        format!("# rntpd dns_names test\nresolver {resolver}\nresolve floor {FLOOR} ceiling 60\n");
    for l in lines {
        c += l;
        c += "\n";
    }
    c
}

fn server_line(target: &str) -> String {
    format!("server {target} port {NTP_PORT} {POLL}")
}

fn ntp_sock(ip: Ipv4Addr) -> String {
    SocketAddr::from((ip, NTP_PORT)).to_string()
}

/// The association rows (those with an id) of a peers sample.
fn assocs(peers: &[Value]) -> Vec<&Value> {
    peers.iter().filter(|p| !p["id"].is_null()).collect()
}

/// The rows of `source` (name or literal) in a peers sample.
fn rows<'a>(peers: &'a [Value], source: &str) -> Vec<&'a Value> {
    peers.iter().filter(|p| p["source"] == source).collect()
}

/// `rntpctl sources --json`, parsed.
fn sources_json(rntpd: &Rntpd) -> Vec<Value> {
    let out = rntpd.ctl_ok(&["sources", "--json"]);
    match serde_json::from_str(&out) {
        Ok(Value::Array(s)) => s,
        other => panic!("rntpctl sources --json: {other:?}: {out}"),
    }
}

fn source<'a>(sources: &'a [Value], name: &str) -> &'a Value {
    sources
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no source {name} in {}", Value::Array(sources.to_vec())))
}

/// The single association of the single-server tests: `Ok((id, reach))` once it is at
/// `address` and reachable.
fn reachable_at(peers: &[Value], address: &str) -> Result<(u64, u64), String> {
    let a = assocs(peers);
    if a.len() != 1 {
        return Err(format!("{} associations, want 1", a.len()));
    }
    let (id, reach) = (a[0]["id"].as_u64().unwrap_or(0), a[0]["reach"].as_u64().unwrap_or(0));
    if a[0]["address"] != address {
        return Err(format!("association {id} at {}, want {address}", a[0]["address"]));
    }
    if reach == 0 {
        return Err(format!("association {id} at {address}: reach 0"));
    }
    Ok((id, reach))
}

// ---------------------------------------------------------------------------------------------
// dnsmasq: TTL-driven re-resolution

#[test]
fn reresolves_when_ttl_expires_and_not_more_often() {
    const TTL: u32 = 3;
    const WINDOW: Duration = Duration::from_secs(15);
    let dir = TestDir::new();
    let net = NET.allocate();
    let server = ChronyServer::start(&dir, net.addr(1), NTP_PORT, Shift::None);
    let dns = Dnsmasq::start(&dir, net.addr(53), DNS_PORT, TTL);
    dns.set("ntp.test", &[net.addr(1).into()]);
    server.wait_ready();
    let rntpd = Rntpd::start(&dir, &config(dns.addr(), &[server_line("ntp.test")]));
    let want = ntp_sock(net.addr(1));
    let peers = rntpd.wait_for_peers(REACHABLE, |p| reachable_at(p, &want).map(drop));
    let id = reachable_at(&peers, &want).unwrap().0;

    // Count over a window that starts now; the association must stay put all along (every
    // answer lists its address).
    let (t0, q0) = (Instant::now(), dns.queries_of("ntp.test", "A"));
    rntpd.assert_peers_hold(WINDOW, |p| match reachable_at(p, &want) {
        Ok((i, _)) if i == id => Ok(()),
        Ok((i, _)) => Err(format!("association id changed {id} -> {i}")),
        Err(e) => Err(e),
    });
    let elapsed = t0.elapsed().as_secs_f64();
    let n = dns.queries_of("ntp.test", "A") - q0;
    let most = elapsed / FLOOR + 1.0;
    let least = elapsed / (f64::from(TTL) * 1.1) - 1.0;
    println!(
        "{n} A queries for ntp.test in {elapsed:.1} s with TTL {TTL} s, floor {FLOOR} s \
         (allowed {least:.1}..={most:.1}; one per TTL would be {:.1})",
        elapsed / f64::from(TTL)
    );
    assert!(
        (n as f64) <= most && (n as f64) >= least,
        "{n} A queries in {elapsed:.1} s, want {least:.1}..={most:.1}\n{}\n{}",
        dns.logs(),
        rntpd.logs()
    );

    // `rntpctl sources` tells the same story. The DNS log and the daemon's counter are read
    // one after the other, so a lookup may start in between: allow one.
    let sources = sources_json(&rntpd);
    let dns_count = dns.queries_of("ntp.test", "A") as u64;
    assert_eq!(sources.len(), 1, "{sources:?}");
    let s = source(&sources, "ntp.test");
    let ip = net.addr(1).to_string();
    let last = &s["last_resolution"];
    let ttl = last["ttl"].as_f64().unwrap_or(-1.0);
    let next = s["next_resolution_in"].as_f64();
    let queries = s["queries"].as_u64().unwrap_or(0);
    println!("sources: {s}");
    assert_eq!(s["kind"], "server", "{s}");
    assert_eq!(s["port"], NTP_PORT, "{s}");
    assert_eq!(s["addresses"], serde_json::json!([ip]), "{s}");
    assert_eq!(last["result"], "ok", "{s}");
    assert_eq!(last["addresses"], 1, "{s}");
    assert!(ttl > 0.0 && ttl <= f64::from(TTL), "ttl {ttl}, want (0, {TTL}]: {s}");
    // Planned at most one jittered interval ahead (nothing planned while a lookup runs).
    let max_next = f64::from(TTL).max(FLOOR) * 1.1 + 0.1;
    match next {
        Some(n) => assert!((0.0..=max_next).contains(&n), "next_resolution_in {n}: {s}"),
        None => assert_eq!(s["resolving"], true, "no next resolution and not resolving: {s}"),
    }
    assert!(queries.abs_diff(dns_count) <= 1, "daemon counts {queries}, dnsmasq {dns_count}: {s}");
    assert_eq!(s["associations"], serde_json::json!([id]), "{s}");
    drop(rntpd);
}

// ---------------------------------------------------------------------------------------------
// dnsmasq: what a changed record does

#[test]
fn changed_record_moves_the_association_keeping_its_id() {
    const TTL: u32 = 2;
    let dir = TestDir::new();
    let net = NET.allocate();
    let a = ChronyServer::start(&dir, net.addr(1), NTP_PORT, Shift::None);
    let b = ChronyServer::start(&dir, net.addr(2), NTP_PORT, Shift::None);
    let dns = Dnsmasq::start(&dir, net.addr(53), DNS_PORT, TTL);
    dns.set("ntp.test", &[net.addr(1).into()]);
    a.wait_ready();
    b.wait_ready();
    let rntpd = Rntpd::start(&dir, &config(dns.addr(), &[server_line("ntp.test")]));
    let (at_a, at_b) = (ntp_sock(net.addr(1)), ntp_sock(net.addr(2)));
    let peers = rntpd.wait_for_peers(REACHABLE, |p| reachable_at(p, &at_a).map(drop));
    let id = reachable_at(&peers, &at_a).unwrap().0;

    let changed = Instant::now();
    dns.set("ntp.test", &[net.addr(2).into()]);
    // Re-resolution within one jittered TTL, then a poll or two at 0.25..0.5 s.
    let bound = Duration::from_secs_f64(f64::from(TTL).max(FLOOR) * 1.1 * 3.0 + 5.0);
    rntpd.wait_for_peers(bound, |p| match reachable_at(p, &at_b) {
        Ok((i, _)) if i == id => Ok(()),
        Ok((i, _)) => Err(format!("at {at_b} but with id {i}, want {id}")),
        Err(e) => Err(e),
    });
    println!(
        "association {id} moved {at_a} -> {at_b} and reachable {:.1?} after the change",
        changed.elapsed()
    );
    let log = std::fs::read_to_string(rntpd.dir().join("rntpd.log")).unwrap_or_default();
    assert!(
        log.contains("association moved"),
        "no 'association moved' in the log\n{}",
        rntpd.logs()
    );
    drop(rntpd);
}

#[test]
fn record_set_still_containing_current_address_changes_nothing() {
    const TTL: u32 = 2;
    const HOLD: Duration = Duration::from_secs(10);
    let dir = TestDir::new();
    let net = NET.allocate();
    let a = ChronyServer::start(&dir, net.addr(1), NTP_PORT, Shift::None);
    let dns = Dnsmasq::start(&dir, net.addr(53), DNS_PORT, TTL);
    dns.set("ntp.test", &[net.addr(1).into()]);
    // C and D: nothing listens there. Moving to either would show as reach restarting at 0.
    let (c, d) = (net.addr(3), net.addr(4));
    for dead in [c, d] {
        support::assert_udp_free(SocketAddr::from((dead, NTP_PORT)));
    }
    a.wait_ready();
    let rntpd = Rntpd::start(&dir, &config(dns.addr(), &[server_line("ntp.test")]));
    let at_a = ntp_sock(net.addr(1));
    let peers = rntpd.wait_for_peers(REACHABLE, |p| reachable_at(p, &at_a).map(drop));
    let (id, mut reach) = reachable_at(&peers, &at_a).unwrap();

    dns.set("ntp.test", &[c.into(), net.addr(1).into(), d.into()]);
    let q0 = sources_json(&rntpd)[0]["queries"].as_u64().unwrap_or(0);
    // Reach never loses answered polls on a loss-free loopback, while a move (or any restart)
    // clears it. Counted in bits because the register shifts; bit 0 is ORed in because it
    // shifts at each request and is set only when the reply comes, so 377 -> 376 is a sample
    // between the two, not a loss.
    rntpd.assert_peers_hold(HOLD, |p| {
        let (i, r) = reachable_at(p, &at_a)?;
        if i != id {
            return Err(format!("association id changed {id} -> {i}"));
        }
        if (r | 1).count_ones() < reach.count_ones() {
            return Err(format!("reach fell from {reach:o} to {r:o}"));
        }
        reach = r;
        Ok(())
    });
    // The new set was really seen (several times), not just never asked for.
    let sources = sources_json(&rntpd);
    let s = source(&sources, "ntp.test");
    let lookups = s["queries"].as_u64().unwrap_or(0) - q0;
    println!("{lookups} lookups during {HOLD:?}, reach now {reach:o}; sources: {s}");
    assert!(lookups >= 2, "only {lookups} lookups in {HOLD:?} with TTL {TTL}: {s}");
    assert_eq!(s["last_resolution"]["addresses"], 3, "{s}");
    assert_eq!(reach | 1, 0xFF, "reach {reach:o} after {HOLD:?} of polling");
    drop(rntpd);
}

#[test]
fn three_identical_server_lines_are_one_source() {
    let dir = TestDir::new();
    let net = NET.allocate();
    let a = ChronyServer::start(&dir, net.addr(1), NTP_PORT, Shift::None);
    let dns = Dnsmasq::start(&dir, net.addr(53), DNS_PORT, 30);
    dns.set("ntp.test", &[net.addr(1).into()]);
    a.wait_ready();
    let line = server_line("ntp.test");
    let rntpd = Rntpd::start(&dir, &config(dns.addr(), &[line.clone(), line.clone(), line]));
    let at_a = ntp_sock(net.addr(1));
    rntpd.wait_for_peers(REACHABLE, |p| {
        reachable_at(p, &at_a)?;
        if p.len() != 1 {
            return Err(format!("{} rows, want 1", p.len()));
        }
        Ok(())
    });
    let sources = sources_json(&rntpd);
    assert_eq!(sources.len(), 1, "{sources:?}");
    assert_eq!(source(&sources, "ntp.test")["associations"].as_array().map(Vec::len), Some(1));

    // The two extra lines are reported, each pointing at the first and suggesting `pool`.
    let log_path = rntpd.dir().join("rntpd.log");
    let warnings = support::wait_until("two duplicate warnings", Duration::from_secs(5), || {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        let w: Vec<String> = log
            .lines()
            .filter(|l| l.contains("duplicate source `ntp.test` ignored"))
            .map(str::to_string)
            .collect();
        if w.len() == 2 {
            Ok(w)
        } else {
            Err(format!("{} warnings", w.len()))
        }
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", rntpd.logs()));
    for w in &warnings {
        assert!(w.contains("WARN"), "not a warning: {w}");
        assert!(w.contains("ntp.conf:4"), "does not point at the first line: {w}");
        assert!(w.contains("pool NAME"), "does not suggest pool: {w}");
    }
    println!("{}", warnings.join("\n"));
    drop(rntpd);
}

// ---------------------------------------------------------------------------------------------
// FakeDns: faults

/// The texts of `ResolveError`'s Display in rntp_proto::source, as `last_error` shows them.
const NXDOMAIN: &str = "name does not exist (NXDOMAIN)";
const SERVFAIL: &str = "DNS server failure (SERVFAIL)";
const REFUSED: &str = "DNS server refused the query (REFUSED)";
const TIMEOUT: &str = "no answer from the DNS servers (timeout)";
const NO_USABLE: &str =
    "answer has no usable address (unspecified, multicast, broadcast or wrong family)";

/// Longest `rntpctl peers` round trip accepted while DNS misbehaves. A loop blocked on a lookup
/// would take ≥ 3 s (the slow answer) or 5 s (the resolver's timeout); 1 s leaves room for a
/// loaded 2-core machine spawning rntpctl.
const CTL_BOUND: Duration = Duration::from_secs(1);

/// `rntpctl peers --json`, timed; panics if it fails or takes longer than [`CTL_BOUND`].
fn timed_peers(rntpd: &Rntpd, latencies: &mut Vec<Duration>) -> Vec<Value> {
    let t = Instant::now();
    let peers = rntpd.try_peers_json().unwrap_or_else(|e| panic!("{e}\n{}", rntpd.logs()));
    let took = t.elapsed();
    assert!(took < CTL_BOUND, "rntpctl peers took {took:?}\n{}", rntpd.logs());
    latencies.push(took);
    peers
}

/// What is still wrong with the unresolved source row of `name` (`Ok` once it shows `error`).
fn unresolved_with(peers: &[Value], name: &str, error: &str) -> Result<(), String> {
    let r = rows(peers, name);
    match r.as_slice() {
        [row]
            if row["kind"] == "unresolved" && row["id"].is_null() && row["last_error"] == error =>
        {
            Ok(())
        }
        _ => Err(format!("{name}: {r:?}, want one unresolved row with last_error {error:?}")),
    }
}

#[test]
fn dns_faults_never_stall_the_daemon() {
    let dir = TestDir::new();
    let net = NET.allocate();
    let slow_srv = ChronyServer::start(&dir, net.addr(1), NTP_PORT, Shift::None);
    let tc_srv = ChronyServer::start(&dir, net.addr(2), NTP_PORT, Shift::None);
    let literal = ChronyServer::start(&dir, net.addr(3), NTP_PORT, Shift::None);
    let dns = FakeDns::start(net.sock(53, DNS_PORT));
    let answer = |h: u8| vec![IpAddr::from(net.addr(h))];
    dns.set_rule("sf.test", Rule::ServFail);
    dns.set_rule("nx.test", Rule::NxDomain { negative_ttl: 30 });
    dns.set_rule("refused.test", Rule::Refused);
    dns.set_rule("silent.test", Rule::Drop);
    let slow = Rule::Answer { addrs: answer(1), ttl: 300 };
    dns.set_rule("slow.test", Rule::Delay(Duration::from_secs(3), Box::new(slow)));
    dns.set_rule("tc.test", Rule::Truncate { addrs: answer(2), ttl: 300 });
    let weird = ["0.0.0.0", "224.0.0.1", "255.255.255.255"].map(|a| a.parse().unwrap()).to_vec();
    dns.set_rule("weird.test", Rule::Answer { addrs: weird, ttl: 300 });
    for s in [&slow_srv, &tc_srv, &literal] {
        s.wait_ready();
    }
    let names =
        ["sf.test", "nx.test", "refused.test", "silent.test", "slow.test", "tc.test", "weird.test"];
    let mut lines: Vec<String> = names.iter().map(|n| server_line(n)).collect();
    lines.push(server_line(&net.addr(3).to_string()));
    let rntpd = Rntpd::start(&dir, &config(dns.addr(), &lines));
    let start = rntpd.spawned_at();
    let mut lat = Vec::new();

    // Everything below is polled together, so the daemon is probed all along.
    let literal_at = ntp_sock(net.addr(3));
    let mut literal_reachable = None;
    let mut silent_states = std::collections::BTreeSet::new();
    let mut silent_error_at = None;
    let deadline = Duration::from_secs(50);
    loop {
        let peers = timed_peers(&rntpd, &mut lat);
        let mut wrong = Vec::new();
        match rows(&peers, &net.addr(3).to_string()).as_slice() {
            [p] if p["address"] == literal_at.as_str() && p["reach"].as_u64() != Some(0) => {
                literal_reachable.get_or_insert(start.elapsed());
            }
            other => wrong.push(format!("literal: {other:?}")),
        }
        for (name, error) in [
            ("sf.test", SERVFAIL),
            ("nx.test", NXDOMAIN),
            ("refused.test", REFUSED),
            ("weird.test", NO_USABLE),
        ] {
            if let Err(e) = unresolved_with(&peers, name, error) {
                wrong.push(e);
            }
        }
        for (name, host) in [("slow.test", 1), ("tc.test", 2)] {
            if let Err(e) = reachable_at(
                &rows(&peers, name).into_iter().cloned().collect::<Vec<_>>(),
                &ntp_sock(net.addr(host)),
            ) {
                wrong.push(format!("{name}: {e}"));
            }
        }
        match rows(&peers, "silent.test").as_slice() {
            [p] if p["kind"] == "unresolved" => {
                silent_states.insert(p["state"].as_str().unwrap_or("?").to_string());
                if p["last_error"] == TIMEOUT {
                    silent_error_at.get_or_insert(start.elapsed());
                } else {
                    wrong.push(format!("silent.test: last_error {}", p["last_error"]));
                }
            }
            other => wrong.push(format!("silent.test: {other:?}")),
        }
        if wrong.is_empty() {
            break;
        }
        if start.elapsed() > deadline {
            panic!(
                "after {deadline:?}: {}\n{}\n{}",
                wrong.join("\n"),
                serde_json::to_string_pretty(&peers).unwrap_or_default(),
                rntpd.logs()
            );
        }
        std::thread::sleep(support::POLL_INTERVAL);
    }
    let took = start.elapsed();
    // The literal did not wait for any lookup: reachable as fast as iburst allows.
    let literal_reachable = literal_reachable.expect("checked in the loop");
    assert!(
        literal_reachable < Duration::from_secs(5),
        "literal reachable after {literal_reachable:?}"
    );
    // Sampled every 50 ms through a 15 s lookup: the row must have said so while it ran.
    assert!(silent_states.contains("resolving"), "silent.test states {silent_states:?}");
    // Truncation really went through TCP.
    assert!(
        dns.queries_over("tc.test", fakedns::A, Transport::Tcp) >= 1,
        "tc.test never asked over TCP"
    );
    lat.sort();
    println!(
        "all right {took:.1?} after start: literal reachable at {literal_reachable:.1?}, \
         silent.test states {silent_states:?}, timeout reported at {silent_error_at:.1?}; \
         {} `rntpctl peers` calls: median {:.1?}, max {:.1?}",
        lat.len(),
        lat[lat.len() / 2],
        lat[lat.len() - 1]
    );
    let sources = sources_json(&rntpd);
    for name in names {
        let s = source(&sources, name);
        println!("  {name}: {} lookups, last {}", s["queries"], s["last_resolution"]["result"]);
    }
    for name in names {
        let (a, aaaa) = (dns.queries(name, fakedns::A), dns.queries(name, fakedns::AAAA));
        let tcp = dns.queries_over(name, fakedns::A, Transport::Tcp)
            + dns.queries_over(name, fakedns::AAAA, Transport::Tcp);
        println!("  {name}: fake DNS saw {a} A + {aaaa} AAAA queries, {tcp} of them over TCP");
    }
    drop(rntpd);
}

#[test]
fn fixed_record_recovers_after_failure() {
    let dir = TestDir::new();
    let net = NET.allocate();
    let srv = ChronyServer::start(&dir, net.addr(1), NTP_PORT, Shift::None);
    let dns = FakeDns::start(net.sock(53, DNS_PORT));
    // A long negative TTL: the retry must follow the daemon's backoff, not the SOA.
    dns.set_rule("ntp.test", Rule::NxDomain { negative_ttl: 3600 });
    srv.wait_ready();
    let rntpd = Rntpd::start(&dir, &config(dns.addr(), &[server_line("ntp.test")]));
    rntpd.wait_for_peers(Duration::from_secs(10), |p| unresolved_with(p, "ntp.test", NXDOMAIN));

    dns.set_rule("ntp.test", Rule::Answer { addrs: vec![net.addr(1).into()], ttl: 300 });
    let fixed = Instant::now();
    let sources = sources_json(&rntpd);
    let s = source(&sources, "ntp.test");
    // The next retry is planned (≤ 2 s after the first failure, 4 s after a second…). If a
    // lookup is running instead, it may have been answered before the fix and fail once more:
    // then the retry after it comes within 4 s.
    let next = s["next_resolution_in"].as_f64().unwrap_or(4.0);
    assert!(next <= 4.0, "next retry in {next} s: {s}");
    let at = ntp_sock(net.addr(1));
    let bound = Duration::from_secs_f64(next + 3.0);
    rntpd.wait_for_peers(bound, |p| reachable_at(p, &at).map(drop));
    let sources = sources_json(&rntpd);
    let s = source(&sources, "ntp.test");
    println!(
        "recovered {:.1?} after the fix (retry was due in {next:.1} s); {} lookups: {s}",
        fixed.elapsed(),
        s["queries"]
    );
    assert_eq!(s["last_resolution"]["result"], "ok", "{s}");
    drop(rntpd);
}

// ---------------------------------------------------------------------------------------------
// FakeDns self-test, against dig

/// `dig @DNS -p PORT ARGS` with one try and a short timeout; (exit code, stdout).
fn dig(dns: &FakeDns, args: &[&str]) -> (i32, String) {
    let out = support::run(
        Command::new("dig")
            .arg(format!("@{}", dns.addr().ip()))
            .args(["-p", &dns.addr().port().to_string(), "+tries=1", "+time=1"])
            .args(args),
    );
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    // dig complains about packets it cannot parse: none of ours may be one.
    for bad in ["malformed", "bad packet", "Got bad", "FORMERR", "WARNING"] {
        assert!(!text.contains(bad), "dig {args:?}: {bad}:\n{text}");
    }
    (out.status.code().unwrap_or(-1), text)
}

/// The lines of dig's `+noall +answer`/`+authority` output, whitespace-normalised.
fn records(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

#[test]
fn harness_fakedns_answers_per_rule() {
    let net = NET.allocate();
    let dns = FakeDns::start(net.sock(53, DNS_PORT));
    let v4a: IpAddr = net.addr(1).into();
    let v4b: IpAddr = net.addr(2).into();
    let v6: IpAddr = "fd00::1".parse().unwrap();
    dns.set_rule("ok.test", Rule::Answer { addrs: vec![v4a, v6, v4b], ttl: 42 });
    let (rc, out) = dig(&dns, &["ok.test", "A", "+noall", "+answer"]);
    assert_eq!(rc, 0, "{out}");
    assert_eq!(
        records(&out),
        [format!("ok.test. 42 IN A {v4a}"), format!("ok.test. 42 IN A {v4b}")],
        "{out}"
    );
    // Upper case in the query: matched case-insensitively, echoed as asked.
    let (_, out) = dig(&dns, &["OK.Test", "AAAA", "+noall", "+answer"]);
    assert_eq!(records(&out), ["OK.Test. 42 IN AAAA fd00::1"], "{out}");
    assert_eq!((dns.queries("ok.test", fakedns::A), dns.queries("ok.test", fakedns::AAAA)), (1, 1));

    // NODATA and NXDOMAIN carry an SOA of the parent zone whose TTL is the negative TTL.
    dns.set_rule("v4only.test", Rule::Answer { addrs: vec![v4a], ttl: 9 });
    let (_, out) = dig(&dns, &["v4only.test", "AAAA"]);
    assert!(out.contains("status: NOERROR") && out.contains("ANSWER: 0"), "{out}");
    let soa =
        |ttl: u32| format!("test. {ttl} IN SOA ns.test. hostmaster.test. 1 3600 600 86400 {ttl}");
    let (_, out) = dig(&dns, &["v4only.test", "AAAA", "+noall", "+authority"]);
    assert_eq!(records(&out), [soa(9)], "{out}");
    dns.set_rule("nx.test", Rule::NxDomain { negative_ttl: 7 });
    let (_, out) = dig(&dns, &["nx.test"]);
    assert!(out.contains("status: NXDOMAIN"), "{out}");
    let (_, out) = dig(&dns, &["nx.test", "+noall", "+authority"]);
    assert_eq!(records(&out), [soa(7)], "{out}");

    // Error codes; names without a rule are refused.
    dns.set_rule("sf.test", Rule::ServFail);
    dns.set_rule("ref.test", Rule::Refused);
    for (name, status) in
        [("sf.test", "SERVFAIL"), ("ref.test", "REFUSED"), ("other.test", "REFUSED")]
    {
        let (_, out) = dig(&dns, &[name]);
        assert!(out.contains(&format!("status: {status}")), "{name}: {out}");
    }

    // Silence: dig times out (exit code 9, "no servers could be reached").
    dns.set_rule("drop.test", Rule::Drop);
    let (rc, out) = dig(&dns, &["drop.test"]);
    assert_eq!(rc, 9, "{out}");
    assert_eq!(dns.queries("drop.test", fakedns::A), 1);

    // Delay: the answer comes, late.
    let inner = Rule::Answer { addrs: vec![v4a], ttl: 5 };
    dns.set_rule("slow.test", Rule::Delay(Duration::from_millis(600), Box::new(inner)));
    let t = Instant::now();
    let (_, out) = dig(&dns, &["slow.test", "+time=3", "+noall", "+answer"]);
    let took = t.elapsed();
    assert_eq!(records(&out), [format!("slow.test. 5 IN A {v4a}")], "{out}");
    // Delayed, not immediate: the fake server's timer has a few ms of granularity, so allow
    // a margin below the nominal 600 ms (a 599.5 ms run was seen).
    assert!(took >= Duration::from_millis(500), "answered after {took:?}");

    // Truncation: TC=1 and nothing over UDP; dig then retries over TCP and gets the answer.
    dns.set_rule("tc.test", Rule::Truncate { addrs: vec![v4a, v4b], ttl: 5 });
    let (_, out) = dig(&dns, &["tc.test", "+ignore"]);
    assert!(out.contains(" tc") && out.contains("ANSWER: 0"), "{out}");
    let (_, out) = dig(&dns, &["tc.test", "+noall", "+answer"]);
    assert_eq!(records(&out).len(), 2, "{out}");
    assert_eq!(dns.queries_over("tc.test", fakedns::A, Transport::Udp), 2);
    assert_eq!(dns.queries_over("tc.test", fakedns::A, Transport::Tcp), 1);
    // Everything also works over TCP directly, delay included.
    let (_, out) = dig(&dns, &["slow.test", "+tcp", "+time=3", "+noall", "+answer"]);
    assert_eq!(records(&out), [format!("slow.test. 5 IN A {v4a}")], "{out}");

    // A rule changed at runtime applies to the next query.
    dns.set_rule("ok.test", Rule::Answer { addrs: vec![v4b], ttl: 1 });
    let (_, out) = dig(&dns, &["ok.test", "+noall", "+answer"]);
    assert_eq!(records(&out), [format!("ok.test. 1 IN A {v4b}")], "{out}");

    // Garbage is ignored, not answered and not counted; the server keeps serving.
    let junk: [&[u8]; 5] = [
        b"",
        b"\x12",
        b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x02ok",
        b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xc0\x0c\x00\x01\x00\x01",
        &[0xFF; 600],
    ];
    let sock = UdpSocket::bind((net.addr(9), 0)).expect("client socket");
    sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    for j in junk {
        sock.send_to(j, dns.addr()).expect("send junk");
    }
    assert!(sock.recv_from(&mut [0u8; 512]).is_err(), "junk was answered");
    let mut tcp = TcpStream::connect(dns.addr()).expect("TCP connect");
    tcp.write_all(b"\x00\x05junk\x00\x02\xff").expect("TCP junk");
    let before = dns.queries("ok.test", fakedns::A);
    let (_, out) = dig(&dns, &["ok.test", "+noall", "+answer"]);
    assert_eq!(records(&out).len(), 1, "{out}");
    assert_eq!(dns.queries("ok.test", fakedns::A), before + 1);

    // Stops on drop, with a TCP connection still open: both ports are free again.
    let addr = dns.addr();
    let t = Instant::now();
    drop(dns);
    println!("fake DNS stopped in {:.1?}", t.elapsed());
    drop(tcp);
    assert!(support::udp_free(addr), "UDP {addr} still bound");
    assert!(std::net::TcpListener::bind(addr).is_ok(), "TCP {addr} still bound");
}
