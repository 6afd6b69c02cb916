//! rntpd's server mode, judged by NTP clients nobody here wrote: chronyd (one-shot `-Q` and a
//! persistent client whose per-sample RFC 5905 test bits must all pass), ntpdig and the
//! check_ntp_time monitoring plugin; and the restrict/rate-limit rules, judged by hand-built
//! requests from chosen source addresses against both the wire and `rntpctl status --json`.
//!
//! Most tests serve as a stratum-3 orphan (`tos orphan 3`, as NTPsec does without upstream),
//! so they do not depend on synchronization; `serves_synchronized_time_from_its_upstream` checks
//! the whole chain: real upstream servers → selection → discipline → what clients are told. Nothing here changes the clock: rntpd
//! runs `--observe` and every process runs without CAP_SYS_TIME (see support/).
//!
//! Addresses: 127.13.Y.0/24 blocks (`Net::new(13)`), one per test.

mod support;

use std::net::SocketAddr;
use std::time::Duration;
use support::clients::{self, ChronyClient, RawClient};
use support::{assert_udp_free, ntp, ChronyServer, Net, Rntpd, Shift, TestDir};

static NET: Net = Net::new(13);

/// A high port for the servers of this file (each test has its own address).
const PORT: u16 = 12313;
/// The stratum a `tos orphan 3` server answers with.
const ORPHAN_STRATUM: u8 = 3;
/// Loopback offsets are microseconds; a millisecond is a generous bound on a busy 2-core box.
const MAX_OFFSET: f64 = 0.001;

/// Starts rntpd serving on `addr` with no restrictions as a stratum-3 orphan (plus `extra`
/// lines), and waits until it answers synchronized.
fn serving_rntpd(dir: &TestDir, addr: SocketAddr, extra: &str) -> Rntpd {
    assert_udp_free(addr);
    let config = format!(
        "interface listen {} port {}\nrestrict default\ntos orphan {ORPHAN_STRATUM}\n{extra}",
        addr.ip(),
        addr.port()
    );
    let rntpd = Rntpd::start(dir, &config);
    if let Err(e) = ntp::wait_synced(addr, ORPHAN_STRATUM, Duration::from_secs(10)) {
        panic!("{e}\n{}", rntpd.logs());
    }
    rntpd
}

#[test]
fn chronyd_query_accepts_our_replies() {
    let dir = TestDir::new();
    let net = NET.allocate();
    let addr = net.sock(1, PORT);
    let rntpd = serving_rntpd(&dir, addr, "");
    let offset =
        clients::chronyd_query(addr, 4, 10).unwrap_or_else(|e| panic!("{e}\n{}", rntpd.logs()));
    assert!(offset.abs() < MAX_OFFSET, "chronyd -Q measured {offset:+.6} s against rntpd");
}

#[test]
fn persistent_chronyd_client_passes_every_sanity_test() {
    let dir = TestDir::new();
    let net = NET.allocate();
    let addr = net.sock(1, PORT);
    let rntpd = serving_rntpd(&dir, addr, "");
    let client = ChronyClient::start(&dir, addr);
    let rows = client.wait_measurements(4, Duration::from_secs(30));
    for m in &rows {
        let ctx = || format!("row: {}\n{}{}", m.line, client.logs(), rntpd.logs());
        assert_eq!(m.tests, "111 111 1111", "a chrony sanity test failed: {}", ctx());
        assert_eq!(m.stratum, ORPHAN_STRATUM, "{}", ctx());
        assert_eq!(m.leap, "N", "leap status: {}", ctx());
        assert!(m.offset.abs() < MAX_OFFSET, "offset {}: {}", m.offset, ctx());
        assert!(m.delay >= 0.0 && m.delay < 0.1, "delay {}: {}", m.delay, ctx());
    }
    // chronyc's view of the last reply: the header fields as chrony decoded them.
    let data = client.ntpdata().unwrap_or_else(|e| panic!("{e}\n{}", client.logs()));
    let field = |k: &str| {
        data.iter()
            .find(|(name, _)| name == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {k:?} in chronyc ntpdata: {data:?}"))
    };
    assert_eq!(field("Mode"), "Server", "{data:?}");
    assert_eq!(field("Version"), "4", "{data:?}");
    assert_eq!(field("Stratum"), ORPHAN_STRATUM.to_string(), "{data:?}");
    assert_eq!(field("Leap status"), "Normal", "{data:?}");
    assert!(field("NTP tests").starts_with("111 111 1111"), "{data:?}");
    assert_eq!(field("Remote port"), PORT.to_string(), "{data:?}");
}

#[test]
fn ntpdig_accepts_our_replies() {
    let dir = TestDir::new();
    let net = NET.allocate();
    // ntpdig only talks to port 123; every 127/8 address is local, so this one is ours alone.
    let addr = net.sock(1, 123);
    let rntpd = serving_rntpd(&dir, addr, "");
    let json = clients::ntpdig_json(addr.ip().to_string().parse().expect("ipv4"))
        .unwrap_or_else(|e| panic!("{e}\n{}", rntpd.logs()));
    let offset = json["offset"].as_f64().unwrap_or_else(|| panic!("no offset: {json}"));
    assert!(offset.abs() < MAX_OFFSET, "ntpdig offset {offset}: {json}");
    assert_eq!(json["stratum"], u64::from(ORPHAN_STRATUM), "{json}");
    assert_eq!(json["leap"], "no-leap", "{json}");
}

#[test]
fn check_ntp_time_ok() {
    let dir = TestDir::new();
    let net = NET.allocate();
    let addr = net.sock(1, PORT);
    let rntpd = serving_rntpd(&dir, addr, "");
    let (code, out) = clients::check_ntp_time(addr, 0.5, 1.0);
    assert_eq!(code, Some(0), "check_ntp_time: {out}\n{}", rntpd.logs());
    assert!(out.starts_with("NTP OK"), "check_ntp_time: {out}");
}

/// Requests per client in the rate-limit test, and their spacing (20/s).
const BURST: usize = 40;
const SPACING: Duration = Duration::from_millis(50);

#[test]
fn rate_limit_drops_and_kods_only_where_configured() {
    let dir = TestDir::new();
    let net = NET.allocate();
    let addr = net.sock(1, PORT);
    let (kod_src, limited_src, free_src) = (net.addr(10), net.addr(11), net.addr(12));
    let host = "mask 255.255.255.255";
    let rntpd = serving_rntpd(
        &dir,
        addr,
        &format!(
            "discard average 3 minimum 2\n\
             restrict {kod_src} {host} limited kod\n\
             restrict {limited_src} {host} limited\n"
        ),
    );
    let before = rntpd.status_json();
    let mut kod = RawClient::new(kod_src, addr);
    let mut limited = RawClient::new(limited_src, addr);
    let mut free = RawClient::new(free_src, addr);
    // 20 requests/s from each client, interleaved. The spacing is the load pattern, not a
    // synchronisation: what arrives is collected afterwards by polling.
    for _ in 0..BURST {
        for c in [&mut kod, &mut limited, &mut free] {
            c.send().expect("send");
            c.poll();
        }
        std::thread::sleep(SPACING);
    }
    // Wait until rntpd has handled all 3 × BURST requests, then until every answer it sent
    // (per its own counters) has arrived.
    let server = |s: &serde_json::Value, k: &str| s["server"][k].as_u64().unwrap_or(0);
    let sent = (3 * BURST) as u64;
    let after =
        support::wait_until("rntpd to count every request", Duration::from_secs(10), || {
            let s = rntpd.status_json();
            let n = server(&s, "requests") - server(&before, "requests");
            if n >= sent {
                Ok(s)
            } else {
                Err(format!("{n} of {sent} counted"))
            }
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", rntpd.logs()));
    let delta = |k: &str| server(&after, k) - server(&before, k);
    let answered = delta("replies") + delta("kod_rate") + delta("kod_deny");
    let received = |c: &RawClient| c.replies.len() as u64;
    let all_in = support::wait_until("every answer to arrive", Duration::from_secs(5), || {
        for c in [&mut kod, &mut limited, &mut free] {
            c.poll();
        }
        let got = received(&kod) + received(&limited) + received(&free);
        if got >= answered {
            Ok(())
        } else {
            Err(format!("{got} of {answered}"))
        }
    });
    let summary = format!(
        "kod client: {} times, {} kisses; limited client: {} times, {} kisses; free client: {} \
         times, {} kisses\nstatus after: {}\n{}",
        kod.times().len(),
        kod.kisses().len(),
        limited.times().len(),
        limited.kisses().len(),
        free.times().len(),
        free.kisses().len(),
        after["server"],
        rntpd.logs()
    );
    all_in.unwrap_or_else(|e| panic!("{e}\n{summary}"));

    // The unrestricted client: every request answered with time, none twice.
    assert_eq!(free.times().len(), BURST, "free client: {summary}");
    assert!(free.kisses().is_empty(), "free client got a kiss: {summary}");
    for (origin, _) in &free.replies {
        assert_eq!(free.replies.iter().filter(|(o, _)| o == origin).count(), 1, "{summary}");
    }

    // `limited kod`: some time, then RATE kisses (at most one per 2^3 s: exactly one here),
    // silent drops for the rest.
    assert!(!kod.times().is_empty(), "a client's first request always passes: {summary}");
    assert_eq!(kod.kisses().len(), 1, "kod client: {summary}");
    for (nonce, k) in kod.kisses() {
        assert_eq!(k.len(), 48, "{summary}");
        assert_eq!(k[0] >> 6, 3, "KoD leap indicator 3 (alarm): {k:?}");
        assert_eq!(k[0] & 7, 4, "KoD mode 4: {k:?}");
        assert_eq!((k[0] >> 3) & 7, 4, "KoD version echoed: {k:?}");
        assert_eq!(k[1], 0, "KoD stratum 0: {k:?}");
        assert!(k[2] >= 6, "KoD poll at least the request's: {k:?}");
        assert_eq!(&k[12..16], b"RATE", "KoD code: {k:?}");
        let ts = |at: usize| u64::from_be_bytes(k[at..at + 8].try_into().expect("8 bytes"));
        // Nothing from the server's clock: origin, receive and transmit all echo our nonce.
        assert_eq!((ts(24), ts(32), ts(40)), (nonce, nonce, nonce), "KoD timestamps: {k:?}");
    }
    assert!(kod.replies.len() < BURST, "kod client must see silent drops too: {summary}");

    // `limited` without `kod`: some time, no kiss ever, the rest silently dropped.
    assert!(!limited.times().is_empty(), "{summary}");
    assert!(limited.kisses().is_empty(), "limited client without kod got a kiss: {summary}");
    assert!(limited.times().len() < BURST, "limited client was never limited: {summary}");

    // rntpd's own counters say the same.
    assert_eq!(delta("requests"), sent, "{summary}");
    let times = (kod.times().len() + limited.times().len() + free.times().len()) as u64;
    assert_eq!(delta("replies"), times, "replies: {summary}");
    assert_eq!(delta("kod_rate"), kod.kisses().len() as u64, "kod_rate: {summary}");
    assert_eq!(delta("kod_deny"), 0, "{summary}");
    let dropped = |s: &serde_json::Value, reason: &str| -> u64 {
        s["server"]["dropped"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e[0] == reason)
            .map(|e| e[1].as_u64().unwrap_or(0))
            .sum()
    };
    let dropped_delta = |reason: &str| dropped(&after, reason) - dropped(&before, reason);
    assert_eq!(
        dropped_delta("rate_limited"),
        (BURST - limited.times().len()) as u64,
        "limited client's silent drops: {summary}"
    );
    assert_eq!(
        dropped_delta("kod_limited"),
        (BURST - kod.replies.len()) as u64,
        "kod client's drops after its kiss: {summary}"
    );
    let used = after["server"]["rate_table_used"].as_u64().unwrap_or(0);
    assert!(used >= 2, "the two limited clients hold rate-table slots: {summary}");
    assert_eq!(kod.unmatched + limited.unmatched + free.unmatched, 0, "{summary}");
}

/// Two chronyd servers (stratum 1) on hosts 2 and 3 of `net`, and rntpd serving on host 1 as
/// their client (`options` appended to each `server` line); returns once all are started.
fn relay(
    dir: &TestDir,
    net: &support::Block,
    options: &str,
) -> (Vec<ChronyServer>, SocketAddr, Rntpd) {
    let upstream: Vec<ChronyServer> =
        (2..=3u8).map(|h| ChronyServer::start(dir, net.addr(h), PORT, Shift::None)).collect();
    for u in &upstream {
        u.wait_ready();
    }
    let addr = net.sock(1, PORT);
    assert_udp_free(addr);
    let mut config =
        format!("interface listen {} port {}\nrestrict default\n", addr.ip(), addr.port());
    for u in &upstream {
        let a = u.addr();
        config += &format!("server {} port {} iburst{options}\n", a.ip(), a.port());
    }
    let rntpd = Rntpd::start(dir, &config);
    (upstream, addr, rntpd)
}

/// rntpd synchronized to two real chronyd servers (stratum 1) serves stratum 2, leap 0, and
/// its system peer's address as reference id; chronyd -Q accepts the time. No orphan mode.
#[test]
fn serves_synchronized_time_from_its_upstream() {
    let dir = TestDir::new();
    let net = NET.allocate();
    let (upstream, addr, rntpd) = relay(&dir, &net, "");
    // Right after start (its filters need several samples, seconds away) it must say it is
    // unsynchronized: leap 3, stratum 16, so no client uses its time yet.
    let early = ntp::query(addr, Duration::from_secs(1)).expect("query rntpd at start");
    assert_eq!((early.leap, early.stratum), (3, 16), "{early:?}");
    if let Err(e) = ntp::wait_synced(addr, 2, Duration::from_secs(30)) {
        panic!("{e}\n{}\n{}", rntpd.ctl_ok(&["status"]), rntpd.logs());
    }
    let reply = ntp::query_best(addr, 4, Duration::from_secs(1)).expect("query rntpd");
    assert_eq!((reply.leap, reply.stratum), (0, 2), "{reply:?}");
    let refid = std::net::Ipv4Addr::from(reply.refid);
    let upstream_ips: Vec<std::net::IpAddr> = upstream.iter().map(|u| u.addr().ip()).collect();
    assert!(
        upstream_ips.contains(&std::net::IpAddr::V4(refid)),
        "refid {refid} is not an upstream"
    );
    assert!(reply.offset.abs() < MAX_OFFSET, "{reply:?}");
    let status = rntpd.status_json();
    assert_eq!(status["serving_as"].as_str(), Some("synchronized"), "{status}");
    let offset =
        clients::chronyd_query(addr, 4, 10).unwrap_or_else(|e| panic!("{e}\n{}", rntpd.logs()));
    assert!(offset.abs() < MAX_OFFSET, "chronyd -Q measured {offset:+.6} s against rntpd");
    drop(rntpd);
    drop(upstream);
}

/// Regression (review finding): after losing every source, server mode kept answering leap 0
/// with its last stratum. It must go back to leap 3 / stratum 16 (no orphan configured).
#[test]
fn stops_serving_synchronized_when_its_sources_are_lost() {
    let dir = TestDir::new();
    let net = NET.allocate();
    // 0.25 s polls: eight unanswered polls (unreachable) take two seconds.
    let (upstream, addr, rntpd) = relay(&dir, &net, " minpoll -2 maxpoll -2");
    if let Err(e) = ntp::wait_synced(addr, 2, Duration::from_secs(30)) {
        panic!("{e}\n{}", rntpd.logs());
    }
    drop(upstream);
    let lost =
        support::wait_until("rntpd to say it is unsynchronized", Duration::from_secs(20), || {
            match ntp::query(addr, Duration::from_millis(500)) {
                Ok(r) if r.leap == 3 && r.stratum == 16 => Ok(r),
                Ok(r) => Err(format!("last reply {r:?}")),
                Err(e) => Err(format!("last query: {e}")),
            }
        });
    if let Err(e) = lost {
        panic!("{e}\n{}\n{}", rntpd.ctl_ok(&["status"]), rntpd.logs());
    }
    let status = rntpd.status_json();
    assert_eq!(status["serving_as"].as_str(), Some("unsynchronized"), "{status}");
}
