//! Interop acceptance: rntpd as a client of real NTP servers nobody here wrote (three chronyd, one
//! of them 0.5 s ahead, and two NTPsec ntpd) plus one address with nothing behind it, checked
//! through `rntpctl peers`.
//!
//! Also the harness self-test: the test servers start, answer with the right stratum and offset
//! per an independent client (`chronyd -Q`), dnsmasq serves runtime changes, and nothing (process,
//! address on lo, bound port) is left behind.
//!
//! Needs root (NTPsec needs an address on lo and port 123) and `scripts/install-deps`. Never
//! changes the clock: every daemon runs without clock control and without CAP_SYS_TIME.

mod support;

use serde_json::Value;
use std::net::{IpAddr, SocketAddr};
use std::process::Command;
use std::time::{Duration, Instant};
use support::{ntp, ChronyServer, Dnsmasq, Net, NtpsecServer, Rntpd, Shift, TestDir};

static NET: Net = Net::new(11);

/// How far an offset may be from the expected one. Loopback delays are tens of µs, so 1 ms
/// only fails on a real error (sign, timestamp handling, wrong server).
const TOLERANCE: f64 = 0.001;

/// rntpd must have every association right within this time of its start.
const CONVERGE: Duration = Duration::from_secs(20);

/// Once right, every association must stay right this long: the answer must not depend on the
/// first sample (iburst delivers a new one every 2 s; reach only counts polls, so it cannot
/// tell).
const STABLE: Duration = Duration::from_secs(5);

/// One configured server and what rntpd must report for it.
struct Expect {
    address: SocketAddr,
    what: &'static str,
    /// The true offset of the server, `None` for the dead address.
    offset: Option<f64>,
}

/// Five real servers and a dead address on a private block, and the matching rntpd config.
/// Fields drop in declaration order: servers before the block lease and the dir.
struct Lab {
    _chrony: Vec<ChronyServer>,
    _ntpsec: Vec<NtpsecServer>,
    expect: Vec<Expect>,
    config: String,
    _block: support::Block,
    dir: TestDir,
}

impl Lab {
    /// Starts all servers and returns once every one of them is settled (the shifted one
    /// serving its shift), so rntpd's 20 s start only measures rntpd.
    fn start() -> Lab {
        let dir = TestDir::new();
        let block = NET.allocate();
        let shifts = [Shift::None, Shift::None, Shift::Secs(0.5)];
        let chrony: Vec<ChronyServer> = (1..=3u8)
            .zip(shifts)
            .map(|(h, s)| ChronyServer::start(&dir, block.addr(h), 12300 + u16::from(h), s))
            .collect();
        let ntpsec: Vec<NtpsecServer> =
            (4..=5).map(|h| NtpsecServer::start(&dir, block.addr(h))).collect();
        let dead = block.sock(6, 12306);
        support::assert_udp_free(dead);
        for c in &chrony {
            c.wait_ready();
        }
        for n in &ntpsec {
            n.wait_ready();
        }

        let mut expect = Vec::new();
        let mut config = String::from("# rntpd interop test\n");
        for c in &chrony {
            let a = c.addr();
            config += &format!("server {} port {} iburst\n", a.ip(), a.port());
            let (what, offset) = match c.shift() {
                Shift::None => ("chronyd", 0.0),
                Shift::Secs(s) => ("chronyd +0.5 s", s),
            };
            expect.push(Expect { address: a, what, offset: Some(offset) });
        }
        for n in &ntpsec {
            config += &format!("server {} iburst\n", n.addr().ip());
            expect.push(Expect { address: n.addr(), what: "NTPsec", offset: Some(0.0) });
        }
        config += &format!("server {} port {} iburst\n", dead.ip(), dead.port());
        expect.push(Expect { address: dead, what: "nothing", offset: None });
        Lab { _chrony: chrony, _ntpsec: ntpsec, expect, config, _block: block, dir }
    }
}

fn find(peers: &[Value], address: SocketAddr) -> Option<&Value> {
    let want = address.to_string();
    peers.iter().find(|p| p["address"].as_str() == Some(want.as_str()))
}

/// Everything that is still wrong in one `peers --json` sample (`Ok` when nothing is).
fn check_all(peers: &[Value], expect: &[Expect]) -> Result<(), String> {
    let mut wrong = Vec::new();
    if peers.len() != expect.len() {
        wrong.push(format!("{} associations, want {}", peers.len(), expect.len()));
    }
    for e in expect {
        let Some(p) = find(peers, e.address) else {
            wrong.push(format!("{} ({}): no association", e.address, e.what));
            continue;
        };
        let reach = p["reach"].as_u64();
        let offset = p["offset"].as_f64();
        match e.offset {
            Some(want) => {
                if reach.unwrap_or(0) == 0 {
                    wrong.push(format!("{} ({}): reach {}", e.address, e.what, p["reach"]));
                }
                match offset {
                    Some(o) if (o - want).abs() < TOLERANCE => {}
                    _ => wrong.push(format!(
                        "{} ({}): offset {}, want {want:+} ± {TOLERANCE}",
                        e.address, e.what, p["offset"]
                    )),
                }
            }
            None => {
                if reach != Some(0) || !p["offset"].is_null() {
                    wrong.push(format!(
                        "{} ({}): reach {} offset {}, want reach 0 and offset null",
                        e.address, e.what, p["reach"], p["offset"]
                    ));
                }
            }
        }
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(wrong.join("; "))
    }
}

#[test]
fn five_real_servers_reachable_with_right_offsets() {
    let lab = Lab::start();
    let rntpd = Rntpd::start(&lab.dir, &lab.config);
    let budget = CONVERGE.saturating_sub(rntpd.spawned_at().elapsed());
    rntpd.wait_for_peers(budget, |peers| check_all(peers, &lab.expect));
    let took = rntpd.spawned_at().elapsed();
    let peers = rntpd.assert_peers_hold(STABLE, |peers| check_all(peers, &lab.expect));

    println!("all associations right {took:.1?} after rntpd's start, and for {STABLE:?} more:");
    println!(
        "{:<22} {:<15} {:>9} {:>12} {:>10} {:>4}",
        "address", "server", "expected", "offset", "delay", "reach"
    );
    for e in &lab.expect {
        let p = find(&peers, e.address).expect("checked above");
        println!(
            "{:<22} {:<15} {:>9} {:>12} {:>10} {:>4}",
            e.address.to_string(),
            e.what,
            e.offset.map_or("-".into(), |o| format!("{o:+.3}")),
            p["offset"].as_f64().map_or("null".into(), |o| format!("{o:+.6}")),
            p["delay"].as_f64().map_or("null".into(), |d| format!("{d:.6}")),
            p["reach"].as_u64().map_or("?".into(), |r| format!("{r:o}"))
        );
    }
    // Keep the servers alive until rntpd is stopped (its Drop checks a clean exit).
    drop(rntpd);
    drop(lab);
}

#[test]
fn peers_table_lists_all_six_addresses() {
    let lab = Lab::start();
    let rntpd = Rntpd::start(&lab.dir, &lab.config);
    // Wait until the real servers have answered, so the table has something to show.
    rntpd.wait_for_peers(CONVERGE, |peers| {
        peers.len() == lab.expect.len()
            && lab.expect.iter().all(|e| {
                let reach = find(peers, e.address).and_then(|p| p["reach"].as_u64());
                e.offset.is_none() || reach.is_some_and(|r| r != 0)
            })
    });
    let table = rntpd.ctl_ok(&["peers"]);
    for e in &lab.expect {
        let ip = e.address.ip().to_string();
        let listed = table.split_whitespace().any(|tok| {
            tok == ip || tok.strip_prefix(&ip).is_some_and(|rest| rest.starts_with(':'))
        });
        assert!(listed, "`rntpctl peers` does not list {ip} ({}):\n{table}", e.what);
    }
    println!("{table}");
}

/// `chronyd -Q` (query only, never sets the clock) as an independent client: the offset it
/// measures to `server`, positive = server ahead.
fn chronyd_query(server: SocketAddr) -> std::process::Child {
    support::nocap("/usr/sbin/chronyd")
        .args(["-Q", "-t", "10"])
        .arg(format!("server {} port {} iburst maxsamples 4", server.ip(), server.port()))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn chronyd -Q")
}

/// Parses "System clock wrong by 0.499994 seconds (ignored)" from `chronyd -Q`'s stderr.
fn chronyd_query_offset(child: std::process::Child) -> Result<f64, String> {
    let out = child.wait_with_output().expect("wait chronyd -Q");
    let err = String::from_utf8_lossy(&out.stderr);
    err.lines()
        .find_map(|l| l.split("wrong by ").nth(1)?.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| format!("chronyd -Q ({}): {err}", out.status))
}

#[test]
fn harness_servers_start_and_stop() {
    let dir = TestDir::new();
    let block = NET.allocate();
    let start = Instant::now();
    let plain = ChronyServer::start(&dir, block.addr(1), 12301, Shift::None);
    // Negative, so both signs of the shift handling are exercised (the interop test uses +0.5).
    let shifted = ChronyServer::start(&dir, block.addr(2), 12302, Shift::Secs(-0.25));
    let orphan = NtpsecServer::start(&dir, block.addr(4));
    let dns = Dnsmasq::start(&dir, block.addr(53), 5353, 30);
    plain.wait_ready();
    shifted.wait_ready();
    orphan.wait_ready();
    println!("servers ready after {:.1?}", start.elapsed());

    // Our own SNTP query and chronyd -Q agree with what each server should serve.
    let servers = [(plain.addr(), 0.0, 1), (shifted.addr(), -0.25, 2), (orphan.addr(), 0.0, 3)];
    let queries: Vec<_> = servers.iter().map(|(a, _, _)| chronyd_query(*a)).collect();
    for ((addr, want, stratum), q) in servers.iter().zip(queries) {
        let ours = ntp::query_best(*addr, 4, Duration::from_secs(1)).expect("harness query");
        let chrony = chronyd_query_offset(q).unwrap_or_else(|e| panic!("{addr}: {e}"));
        println!(
            "{addr}: harness query {:+.6} s (stratum {}, refid {}), chronyd -Q {chrony:+.6} s",
            ours.offset,
            ours.stratum,
            ours.refid_string()
        );
        assert_eq!((ours.leap, ours.stratum), (0, *stratum), "{addr}: {ours:?}");
        assert!((ours.offset - want).abs() < TOLERANCE, "{addr}: harness query {ours:?}");
        assert!((chrony - want).abs() < TOLERANCE, "{addr}: chronyd -Q {chrony}, want {want}");
    }
    let dead = block.sock(6, 12306);
    assert!(ntp::query(dead, Duration::from_millis(300)).is_err(), "{dead} answered");

    // dnsmasq serves runtime changes and counts queries.
    let name = "pool.test";
    let want: Vec<IpAddr> = vec![block.addr(1).into(), block.addr(2).into()];
    dns.set(name, &want);
    let dig = |name: &str| {
        let out = support::run(Command::new("dig").arg(format!("@{}", dns.addr().ip())).args([
            "-p",
            &dns.addr().port().to_string(),
            name,
            "A",
            "+short",
        ]));
        let mut got: Vec<IpAddr> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        got.sort();
        got
    };
    assert_eq!(dig(name), want);
    assert_eq!(dig("nx.test"), Vec::<IpAddr>::new());
    dns.set(name, &[block.addr(3).into()]);
    assert_eq!(dig(name), vec![IpAddr::from(block.addr(3))]);
    assert_eq!(dns.queries_for(name), 2, "{}", dns.logs());

    // Stopped by pid: no process, no address on lo and no bound port left behind.
    let mut pids = plain.pids();
    pids.extend(shifted.pids());
    pids.push(orphan.pid());
    pids.push(dns.pid());
    let addrs = [plain.addr(), shifted.addr(), orphan.addr(), dns.addr()];
    let orphan_ip = block.addr(4);
    assert!(support::lo_has_addr(orphan_ip));
    drop((plain, shifted, orphan, dns));
    for pid in pids {
        assert!(!support::pid_alive(pid), "pid {pid} still running after drop");
    }
    assert!(!support::lo_has_addr(orphan_ip), "{orphan_ip}/32 still on lo after drop");
    for a in addrs {
        assert!(support::udp_free(a), "{a} still bound after drop");
    }
}

/// Selection against real servers (issue 6 acceptance): of five real servers, the one serving
/// time 0.5 s ahead is voted out as a falseticker, a true one becomes the system peer, and
/// `rntpctl status` reports it with a combined offset near zero.
#[test]
fn selection_votes_out_the_shifted_server() {
    let lab = Lab::start();
    let rntpd = Rntpd::start(&lab.dir, &lab.config);
    let shifted = lab.expect.iter().find(|e| e.offset.is_some_and(|o| o > 0.1)).expect("shift");
    rntpd.wait_for_peers(CONVERGE, |peers| {
        let tally = |addr: SocketAddr| find(peers, addr).map(|p| p["tally"].as_str() == Some("x"));
        let peer = peers.iter().filter(|p| p["tally"].as_str() == Some("*")).count();
        if tally(shifted.address) != Some(true) {
            return Err(format!("{} is not marked falseticker yet", shifted.address));
        }
        if peer != 1 {
            return Err(format!("{peer} system peers"));
        }
        Ok(())
    });
    let status = rntpd.status_json();
    let peer = status["system_peer"].as_u64().expect("system peer in status");
    let offset = status["system_offset"].as_f64().expect("combined offset in status");
    assert!(
        offset.abs() < TOLERANCE,
        "combined offset {offset} s with the shifted server excluded"
    );
    // The virtual clock of observe-only mode: a frequency estimate and a correction are
    // reported; on loopback against servers serving this machine's own clock both are tiny.
    assert_eq!(status["mode"].as_str(), Some("observe"));
    let freq = status["clock_frequency_ppm"].as_f64().expect("virtual clock frequency");
    let correction = status["clock_correction"].as_f64().expect("virtual clock correction");
    assert!(freq.abs() < 500.0, "frequency {freq} ppm out of range");
    assert!(correction.abs() < TOLERANCE, "virtual clock {correction} s from the servers' time");
    assert!(status["clock_state"].as_str().is_some_and(|s| s != "unset"), "{status}");
    // The kernel's own state is reported as the kernel says it (read-only).
    let kernel = status["kernel_clock"].as_str().expect("kernel clock state in status");
    let ours = rntp_sys::kernel_clock_state().expect("adjtimex read");
    assert!(kernel.starts_with(&ours.state.to_string()), "{kernel} vs {ours:?}");
    let peers = rntpd.peers_json();
    let chosen = peers.iter().find(|p| p["id"].as_u64() == Some(peer)).expect("peer row");
    assert_ne!(
        chosen["address"].as_str(),
        Some(shifted.address.to_string().as_str()),
        "the shifted server must not be the system peer"
    );
    println!("{}", rntpd.ctl_ok(&["peers"]));
    println!("{}", rntpd.ctl_ok(&["status"]));
}
