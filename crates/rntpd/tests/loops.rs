//! Timing loops (issue 11): rntpd never takes time from itself, directly or through another
//! rntpd that takes its time from it.

mod support;

use std::net::IpAddr;
use std::time::Duration;

use serde_json::Value;
use support::fakedns::{FakeDns, Rule};
use support::rntpd::Rntpd;
use support::{wait_until, Net, TestDir};

static NET: Net = Net::new(62);

/// Ports of these tests (above 1024, unlikely to be in use on 127.62/16).
const NTP_PORT: u16 = 12462;
const DNS_PORT: u16 = 12453;
/// The wildcard test's port: no other test of this file binds it (a wildcard bind fails where
/// any address already holds the port).
const WILDCARD_PORT: u16 = 12471;

fn status(r: &Rntpd) -> Value {
    r.status_json()
}

/// A `server` line naming our own listen address is refused; an association that reaches our
/// own server some other way (a wildcard listen address here) is stopped at its first request
/// with reason `loop`; and rntpd keeps serving its orphan time, never synchronized to itself.
#[test]
fn polling_its_own_address_never_selects_itself() {
    let dir = TestDir::new();
    let block = NET.allocate();
    let me = block.addr(1);
    let config = format!(
        "interface listen 0.0.0.0 port {WILDCARD_PORT}\n\
         server {me} port {WILDCARD_PORT} iburst minpoll 0 maxpoll 0\n\
         tos orphan 5\n\
         restrict default\n"
    );
    let rntpd = Rntpd::start(dir.path(), &config);
    let peers = rntpd
        .wait_for_peers(Duration::from_secs(10), |p| p.iter().any(|r| r["demobilized"] == "loop"));
    let row = peers.iter().find(|r| r["demobilized"] == "loop").unwrap();
    assert_eq!(row["address"], format!("{me}:{WILDCARD_PORT}"));
    // Still an orphan parent after several more seconds of requests: never its own client.
    rntpd.assert_peers_hold(Duration::from_secs(3), |p| {
        p.iter().all(|r| r["tally"] != "*" && r["state"] == "demobilized")
    });
    let s = status(&rntpd);
    assert_eq!(s["serving_as"], "orphan", "{s}");
    assert_eq!(s["stratum"], 5, "{s}");
    assert!(s["system_peer"].is_null(), "{s}");
    let logs = std::fs::read_to_string(rntpd.dir().join("rntpd.log")).unwrap_or_default();
    assert!(logs.contains("timing loop"), "{}", rntpd.logs());
}

/// The configuration that names the listen address itself is refused at once, with the reason.
#[test]
fn server_line_naming_the_listen_address_is_refused() {
    let dir = TestDir::new();
    let block = NET.allocate();
    let me = block.addr(1);
    let config = format!(
        "interface listen {me} port {NTP_PORT}\n\
         server {me} port {NTP_PORT} iburst\n\
         tos orphan 6\n"
    );
    let rntpd = Rntpd::start(dir.path(), &config);
    let s = status(&rntpd);
    assert_eq!(s["associations"], 0, "{s}");
    assert_eq!(s["serving_as"], "orphan", "{s}");
    let logs = std::fs::read_to_string(rntpd.dir().join("rntpd.log")).unwrap_or_default();
    assert!(logs.contains("own server address"), "{}", rntpd.logs());
}

/// A pool whose answer lists our own address skips it, with a history entry, and uses the
/// other addresses.
#[test]
fn pool_answer_with_our_own_address_skips_it() {
    let dir = TestDir::new();
    let block = NET.allocate();
    let me = block.addr(1);
    let other = block.addr(2);
    let dns = FakeDns::start(block.sock(53, DNS_PORT));
    dns.set_rule(
        "pool.loop.test",
        Rule::Answer { addrs: vec![IpAddr::V4(me), IpAddr::V4(other)], ttl: 300 },
    );
    let config = format!(
        "interface listen {me} port {NTP_PORT}\n\
         pool pool.loop.test port {NTP_PORT} iburst maxsources 2\n\
         resolver {}\n\
         tos orphan 6\n",
        dns.addr()
    );
    let rntpd = Rntpd::start(dir.path(), &config);
    let history =
        wait_until("the skipped own address in the history", Duration::from_secs(10), || {
            let out = rntpd.ctl_ok(&["history", "--json"]);
            let h: Value = serde_json::from_str(&out).map_err(|e| e.to_string())?;
            let skipped = h
                .as_array()
                .into_iter()
                .flatten()
                .any(|e| e["event"] == "skipped" && e["reason"] == "own-address");
            if skipped {
                Ok(h)
            } else {
                Err(out)
            }
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", rntpd.logs()));
    let entries = history.as_array().unwrap();
    let skipped = entries.iter().find(|e| e["event"] == "skipped").unwrap();
    assert_eq!(skipped["address"], format!("{me}:{NTP_PORT}"));
    // Only the other address was ever mobilized.
    assert!(entries
        .iter()
        .filter(|e| e["event"] == "mobilized")
        .all(|e| e["address"] == format!("{other}:{NTP_PORT}")));
}

/// Two rntpd polling each other, both orphan parents (each has time of a kind to offer):
/// neither takes time from the other (orphans only take time from a better source, as in
/// ntpd), so they never both claim to be synchronized to each other.
#[test]
fn two_orphans_polling_each_other_never_synchronize_to_each_other() {
    let dir = TestDir::new();
    let block = NET.allocate();
    let (a, b) = (block.addr(1), block.addr(2));
    let conf = |me: std::net::Ipv4Addr, peer: std::net::Ipv4Addr| {
        format!(
            "interface listen {me} port {NTP_PORT}\n\
             server {peer} port {NTP_PORT} iburst minpoll 0 maxpoll 0\n\
             tos orphan 5\n\
             restrict default\n"
        )
    };
    let ra = Rntpd::start(dir.path(), &conf(a, b));
    let rb = Rntpd::start(dir.path(), &conf(b, a));
    // Both hear each other (reachable), and each calls the other another orphan.
    for r in [&ra, &rb] {
        r.wait_for_peers(Duration::from_secs(10), |p| {
            p.iter().any(|row| {
                row["reach"].as_u64().is_some_and(|x| x > 0)
                    && row["verdict"].as_str().is_some_and(|v| v.contains("another orphan"))
            })
        });
    }
    for r in [&ra, &rb] {
        let s = status(r);
        assert_eq!(s["serving_as"], "orphan", "{s}");
        assert!(s["system_peer"].is_null(), "{s}");
    }
}

/// A daemon synchronized through another one: A takes time from an upstream C, B from A; B's
/// replies carry A's address as reference id, so A sees B is synchronized to it and never uses
/// B (RFC 5905's loop test).
#[test]
fn a_server_synchronized_to_us_is_a_timing_loop() {
    let dir = TestDir::new();
    let block = NET.allocate();
    let (a, b, c) = (block.addr(1), block.addr(2), block.addr(3));
    let _c = Rntpd::start(
        dir.path(),
        &format!("interface listen {c} port {NTP_PORT}\ntos orphan 3\nrestrict default\n"),
    );
    let ra = Rntpd::start(
        dir.path(),
        &format!(
            "interface listen {a} port {NTP_PORT}\n\
             server {c} port {NTP_PORT} iburst minpoll 0 maxpoll 0\n\
             server {b} port {NTP_PORT} iburst minpoll 0 maxpoll 0\n\
             tos minclock 1\n\
             restrict default\n"
        ),
    );
    let rb = Rntpd::start(
        dir.path(),
        &format!(
            "interface listen {b} port {NTP_PORT}\n\
             server {a} port {NTP_PORT} iburst minpoll 0 maxpoll 0\n\
             tos minclock 1\n\
             restrict default\n"
        ),
    );
    // B ends up synchronized to A...
    wait_until("B synchronized to A", Duration::from_secs(20), || {
        let s = status(&rb);
        if s["serving_as"] == "synchronized" {
            Ok(())
        } else {
            Err(s.to_string())
        }
    })
    .unwrap_or_else(|e| panic!("{e}\n{}\n{}", ra.logs(), rb.logs()));
    // ... and A, synchronized to C, calls B a timing loop.
    let peers = ra.wait_for_peers(Duration::from_secs(10), |p| {
        p.iter().any(|row| {
            row["address"] == format!("{b}:{NTP_PORT}")
                && row["verdict"].as_str().is_some_and(|v| v.contains("timing loop"))
        })
    });
    let peer_c = peers.iter().find(|r| r["address"] == format!("{c}:{NTP_PORT}")).unwrap();
    assert_eq!(peer_c["tally"], "*", "{peers:?}");
}
