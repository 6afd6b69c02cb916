//! Issue 15: manycast discovery between real rntpd daemons, each on a host of its own in a
//! private LAN of network namespaces (support/netns.rs: a bridge with multicast flooding,
//! 10.77.0.0/24 and fd77::/64 inside the namespaces only).
//!
//! `one_client_six_servers_...`: one manycast client, six manycast servers on 239.77.0.1:
//! three good ones, two with the wrong key and one falseticker (0.5 s ahead). The client
//! mobilizes only servers that answer with its key, never keeps the falseticker for long, stops
//! at its limit; two servers that appear later are not used while the client is full; when two
//! of its servers stop, the client solicits again and replaces them with the new ones, without
//! a restart. The servers follow chronyd on the bridge (the falseticker a chronyd with
//! `offset 0.5`). `ipv6_group_...`: the same discovery over an IPv6 group, with orphan servers
//! (a zero reference time: used, after the orphan wait).
//!
//! Nothing here changes the clock: every daemon runs `--observe`/`-x` without CAP_SYS_TIME.
//! Needs root for the namespaces: otherwise SKIPPED (a failure under `CI=true`).

mod support;

use std::collections::BTreeSet;
use std::fs;
use std::io::Write as _;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::netns::{Lan, NetnsChrony};
use support::{wait_until, Rntpd, TestDir};

const GROUP_V4: &str = "239.77.0.1";
const GROUP_V6: &str = "ff15::77:1";
/// The manycast key, and the same id with another secret.
const GOOD_KEYS: &str = "5 AES128CMAC 00112233445566778899aabbccddeeff\n";
const WRONG_KEYS: &str = "5 AES128CMAC ffeeddccbbaa99887766554433221100\n";
/// The falseticker's offset (s).
const SHIFT: f64 = 0.5;

/// Prints a visible SKIPPED line; under `CI=true`, fails instead.
fn skip(why: &str) {
    if std::env::var_os("CI").is_some_and(|v| v == "true") {
        panic!("{why} (CI=true)");
    }
    let _ = writeln!(std::io::stderr(), "SKIPPED: manycast: {why}");
}

fn lan() -> Option<Lan> {
    match Lan::try_new() {
        Ok(lan) => Some(lan),
        Err(e) => {
            skip(&e);
            None
        }
    }
}

fn key_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, text).expect("write keys");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
    path
}

/// A manycast server on host `h` answering on `group`, with `keys`, following `upstream` (or
/// an orphan without one).
fn server(dir: &TestDir, ns: &str, h: u8, group: &str, keys: &Path, upstream: &str) -> Rntpd {
    let config = format!(
        "interface listen {} port 123\ninterface listen {} port 123\nrestrict default\n\
         keys {}\ntrustedkey 5\nmanycastserver {group}\n{upstream}",
        Lan::v4(h),
        Lan::v6(h),
        keys.display()
    );
    Rntpd::start_in(dir, &config, ns)
}

/// Waits until a server says it serves synchronized time (and, with a shift, serves it).
fn wait_serving(rntpd: &Rntpd, shift: f64) {
    let res = wait_until("a manycast server to synchronize", Duration::from_secs(20), || {
        let s = rntpd.status_json();
        let correction = s["clock_correction"].as_f64().unwrap_or(f64::NAN);
        if s["serving_as"] != "synchronized" || (correction - shift).abs() > 0.01 {
            return Err(format!("{} correction {correction}", s["serving_as"]));
        }
        Ok(())
    });
    if let Err(e) = res {
        panic!("{e}\n{}", rntpd.logs());
    }
}

/// The live members' addresses (IP only) of the manycast client.
fn members(peers: &[Value]) -> BTreeSet<String> {
    peers
        .iter()
        .filter(|p| p["kind"] == "pool-member" && p["state"] != "demobilized")
        .filter_map(|p| p["address"].as_str())
        .map(|a| a.rsplit_once(':').map_or(a, |(ip, _)| ip).trim_matches(['[', ']']).to_string())
        .collect()
}

fn reachable(peers: &[Value]) -> usize {
    peers
        .iter()
        .filter(|p| p["kind"] == "pool-member" && p["reach"].as_u64().unwrap_or(0) != 0)
        .count()
}

fn set(hosts: &[u8]) -> BTreeSet<String> {
    hosts.iter().map(|h| Lan::v4(*h).to_string()).collect()
}

/// The client's history as (address, event, reason, unix time).
fn history(client: &Rntpd) -> Vec<(String, String, String, f64)> {
    let text = client.ctl_ok(&["history", "--json"]);
    let v: Value = serde_json::from_str(&text).expect("history --json");
    v.as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let addr = e["address"].as_str().unwrap_or_default();
            let ip = addr.rsplit_once(':').map_or(addr, |(ip, _)| ip).to_string();
            (
                ip,
                e["event"].as_str().unwrap_or_default().to_string(),
                e["reason"].as_str().unwrap_or_default().to_string(),
                e["time"].as_f64().unwrap_or_default(),
            )
        })
        .collect()
}

fn solicitations(client: &Rntpd) -> u64 {
    client.status_json()["auth"]["manycast_solicitations"].as_u64().unwrap_or(0)
}

#[test]
fn one_client_six_servers_wrong_keys_a_falseticker_failover_and_late_servers() {
    let started = Instant::now();
    let dir = TestDir::new();
    let Some(mut lan) = lan() else { return };
    let good = key_file(dir.path(), "good.keys", GOOD_KEYS);
    let wrong = key_file(dir.path(), "wrong.keys", WRONG_KEYS);

    // The time sources on the wire: chronyd serving real time, and one 0.5 s ahead.
    let truth_ip = IpAddr::V4(lan.bridge_addr(250));
    let false_ip = IpAddr::V4(lan.bridge_addr(251));
    let bridge = lan.bridge().to_string();
    let truth = NetnsChrony::start(&dir, &bridge, truth_ip, 11123, None);
    let falsetime =
        NetnsChrony::start(&dir, &bridge, false_ip, 11123, Some((truth_ip, 11123, SHIFT)));
    let follow = |ip: IpAddr, step: bool| {
        let makestep = if step { "makestep 0.1 -1\n" } else { "" };
        format!("server {ip} port 11123 iburst minpoll -2 maxpoll -2\n{makestep}")
    };

    // Hosts 1-3 good, 4-5 wrong key, 6 falseticker; 7-8 appear later; 10 is the client.
    let hosts: Vec<String> = (1..=8).chain([10]).map(|h| lan.host(h)).collect();
    truth.wait_ready(0.0, Duration::from_secs(15));
    let mut servers: Vec<Option<Rntpd>> = (1..=6u8)
        .map(|h| {
            let (keys, upstream) = match h {
                4 | 5 => (&wrong, follow(truth_ip, false)),
                6 => (&good, follow(false_ip, true)),
                _ => (&good, follow(truth_ip, false)),
            };
            Some(server(&dir, &hosts[usize::from(h) - 1], h, GROUP_V4, keys, &upstream))
        })
        .collect();
    falsetime.wait_ready(SHIFT, Duration::from_secs(20));
    for (i, s) in servers.iter().enumerate() {
        let shift = if i == 5 { SHIFT } else { 0.0 };
        wait_serving(s.as_ref().expect("running"), shift);
    }
    println!("LAN, 2 chronyd and 6 servers ready after {:.1?}", started.elapsed());

    let client_config = format!(
        "keys {}\ntrustedkey 5\nmanycastclient {GROUP_V4} key 5 iburst minpoll 0 maxpoll 1 \
         maxsources 3\n",
        good.display()
    );
    let client = Rntpd::start_in(&dir, &client_config, &hosts[8]);
    let t0 = Instant::now();

    // 1. Only servers with the key, never the falseticker for long, up to the limit of 3.
    client.wait_for_peers(Duration::from_secs(25), |peers| {
        let m = members(peers);
        if m == set(&[1, 2, 3]) && reachable(peers) == 3 {
            Ok(())
        } else {
            Err(format!("members {m:?}"))
        }
    });
    println!("filled with the three good servers {:.1?} after the client started", t0.elapsed());
    let h = history(&client);
    let wrong_key: BTreeSet<String> = set(&[4, 5]);
    assert!(h.iter().all(|(ip, ..)| !wrong_key.contains(ip)), "a wrong-key server: {h:?}");
    let falseticker = Lan::v4(6).to_string();
    assert_stints_short(&h, &falseticker, Duration::from_secs(15));
    // The wrong-key servers heard every solicitation and answered none.
    for s in servers[3..5].iter().flatten() {
        let declined = s.status_json()["auth"]["manycast_declined"].clone();
        assert!(declined.to_string().contains("auth_bad_mac"), "{declined}");
    }

    // 2. Two servers appear; the client is full and does not take them.
    let mut late: Vec<Rntpd> = (7..=8u8)
        .map(|h| {
            server(&dir, &hosts[usize::from(h) - 1], h, GROUP_V4, &good, &follow(truth_ip, false))
        })
        .collect();
    for s in &late {
        wait_serving(s, 0.0);
    }
    let peers = client.peers_json();
    assert_eq!(members(&peers), set(&[1, 2, 3]));
    let before = solicitations(&client);

    // 3. Two of its servers stop: it solicits again and takes the new servers, no restart.
    let pid = client.pid();
    servers[0] = None;
    servers[1] = None;
    let t1 = Instant::now();
    client.wait_for_peers(Duration::from_secs(40), |peers| {
        let m = members(peers);
        if m == set(&[3, 7, 8]) && reachable(peers) >= 3 {
            Ok(())
        } else {
            Err(format!("members {m:?}"))
        }
    });
    println!("replaced two stopped servers {:.1?} after they stopped", t1.elapsed());
    assert_eq!(client.pid(), pid);
    assert!(solicitations(&client) > before, "it solicited again");
    let h = history(&client);
    for stopped in [1, 2] {
        let ip = Lan::v4(stopped).to_string();
        assert!(
            h.iter().any(|(a, e, r, _)| *a == ip && e == "retired" && r == "unreachable"),
            "{ip} retired as unreachable: {h:?}"
        );
    }
    assert_stints_short(&h, &falseticker, Duration::from_secs(15));
    println!("whole test {:.1?}", started.elapsed());
    drop(client);
    late.clear();
    servers.clear();
}

/// Every time `ip` was a member, it was retired within `limit`.
fn assert_stints_short(h: &[(String, String, String, f64)], ip: &str, limit: Duration) {
    let mut since: Option<f64> = None;
    for (a, event, reason, t) in h {
        if a != ip {
            continue;
        }
        match event.as_str() {
            "mobilized" => since = Some(*t),
            "retired" => {
                let start = since.take().unwrap_or(*t);
                assert!(
                    t - start <= limit.as_secs_f64(),
                    "{ip} stayed {:.1} s ({reason})",
                    t - start
                );
            }
            _ => {}
        }
    }
    assert!(since.is_none(), "{ip} is still a member: {h:?}");
}

#[test]
fn ipv6_group_with_orphan_servers() {
    let dir = TestDir::new();
    let Some(mut lan) = lan() else { return };
    let good = key_file(dir.path(), "good.keys", GOOD_KEYS);
    let wrong = key_file(dir.path(), "wrong.keys", WRONG_KEYS);
    let hosts: Vec<String> = (1..=4).map(|h| lan.host(h)).collect();
    // Orphan parents (no upstream): leap 0, stratum 4, reference time 0.
    let orphan = "tos orphan 4\n";
    let _servers: Vec<Rntpd> = [(1, &good), (2, &good), (3, &wrong)]
        .into_iter()
        .map(|(h, keys)| server(&dir, &hosts[usize::from(h) - 1], h, GROUP_V6, keys, orphan))
        .collect();
    let client = Rntpd::start_in(
        &dir,
        &format!(
            "keys {}\ntrustedkey 5\nmanycastclient {GROUP_V6} key 5 iburst minpoll 0 maxpoll 1\n",
            good.display()
        ),
        &hosts[3],
    );
    let want: BTreeSet<String> = [Lan::v6(1), Lan::v6(2)].iter().map(ToString::to_string).collect();
    client.wait_for_peers(Duration::from_secs(15), |peers| {
        let m = members(peers);
        if m == want && reachable(peers) == 2 {
            Ok(())
        } else {
            Err(format!("members {m:?}"))
        }
    });
    let auth = client.status_json()["auth"].clone();
    assert!(auth["manycast_offers"].as_u64().unwrap_or(0) >= 2, "{auth}");
}
