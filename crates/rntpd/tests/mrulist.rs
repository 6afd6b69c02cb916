//! `ntpq -c mrulist` (issue 13) with NTPsec's real ntpq against the real daemon: the nonce
//! handshake, the list of NTP clients with their counts, and the resume loop (`limit=`).
//!
//! As in monitoring.rs: NTPsec's ntpq has no port option, so rntpd serves on port 123 of a
//! test-allocated loopback address (127.19.Y.1:123), which needs CAP_NET_BIND_SERVICE (the
//! harness runs as root; CAP_SYS_TIME is dropped for every process). Without ntpq the test
//! prints `SKIPPED: ...` and passes, except under `CI=true`, where it fails.
//!
//! Addresses: 127.19.Y.0/24 blocks (`Net::new(19)`).

mod support;

use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::{Net, Rntpd, TestDir};

static NET: Net = Net::new(19);

const NTPQ: &str = "/opt/ntpsec/usr/bin/ntpq";
/// How long one NTP exchange of a test client may take.
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// Prints a visible SKIPPED line; under `CI=true`, fails instead.
fn skip(why: &str) {
    if std::env::var_os("CI").is_some_and(|v| v == "true") {
        panic!("{why} (CI=true: run scripts/install-deps)");
    }
    let _ = writeln!(std::io::stderr(), "SKIPPED: mrulist: {why}");
}

/// `ntpq ARGS HOST` without CAP_SYS_TIME, with a 1 s timeout; (stdout, stderr).
fn ntpq(host: Ipv4Addr, args: &[&str]) -> (String, String) {
    let host = host.to_string();
    let out = support::run(
        Command::new("setpriv")
            .args(["--inh-caps=-sys_time", "--bounding-set=-sys_time", "--", NTPQ])
            .args(["-c", "timeout 1000"])
            .args(args)
            .arg(&host),
    );
    let (out, err) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    eprintln!("$ ntpq {} {host}\n{out}{err}", args.join(" "));
    (out, err)
}

/// One row of `ntpq -n -c mrulist`.
#[derive(Debug)]
struct Row {
    restrict: String,
    mode: u8,
    version: u8,
    count: u64,
    port: u16,
    addr: IpAddr,
}

/// The rows, in ntpq's order (newest first). Columns: lstint avgint rstr r m v count score
/// drop rport remote.
fn rows(out: &str) -> Vec<Row> {
    out.lines()
        .skip_while(|l| !l.starts_with("====="))
        .skip(1)
        .take_while(|l| !l.starts_with('#'))
        .map(|l| {
            let c: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(c.len(), 11, "row {l:?}");
            Row {
                restrict: c[2].to_string(),
                mode: c[4].parse().expect("mode"),
                version: c[5].parse().expect("version"),
                count: c[6].parse().expect("count"),
                port: c[9].parse().expect("port"),
                addr: c[10].parse().expect("address"),
            }
        })
        .collect()
}

#[test]
fn ntpq_mrulist_lists_the_clients_with_their_counts() {
    if !Path::new(NTPQ).exists() {
        skip(&format!("{NTPQ} is not installed"));
        return;
    }
    let dir = TestDir::new();
    let block = NET.allocate();
    let addr = block.addr(1);
    let server = SocketAddr::from((addr, 123));
    support::assert_udp_free(server);
    // Time served to anyone without a rate limit (so back-to-back test requests are all
    // answered), queries from loopback.
    let config = format!("interface listen {addr}\ntos orphan 3\nrestrict default\n");
    let rntpd = Rntpd::start(&dir, &config);
    // Two clients from distinct addresses and fixed ports: three requests, then two.
    let a = SocketAddr::from((block.addr(2), 40123));
    let b = SocketAddr::from((block.addr(3), 40124));
    for src in [a, a, a, b, b] {
        if let Err(e) = rntp_testkit::ntp::query(src, server, QUERY_TIMEOUT) {
            panic!("request from {src}: {e}\n{}", rntpd.logs());
        }
    }

    let (out, err) = ntpq(addr, &["-n", "-c", "mrulist"]);
    assert!(!err.contains("***"), "ntpq -c mrulist: {err}\n{out}\n{}", rntpd.logs());
    let list = rows(&out);
    // Only the NTP clients (ntpq's own mode 6 queries are not listed), newest first.
    let got: Vec<(IpAddr, u16, u64)> = list.iter().map(|r| (r.addr, r.port, r.count)).collect();
    assert_eq!(got, [(b.ip(), 40124, 2), (a.ip(), 40123, 3)], "{out}");
    for r in &list {
        // Client mode 3, version 4 (rntp-testkit's request), no restrict flags.
        assert_eq!((r.mode, r.version, r.restrict.as_str()), (3, 4, "0"), "{r:?}");
    }

    // `mrulist limit=1`: one entry per request, ntpq resuming from the entry it has; the same
    // list in the end.
    let (out, err) = ntpq(addr, &["-n", "-c", "mrulist limit=1"]);
    assert!(!err.contains("***"), "ntpq -c 'mrulist limit=1': {err}\n{out}");
    let again: Vec<(IpAddr, u16, u64)> =
        rows(&out).iter().map(|r| (r.addr, r.port, r.count)).collect();
    assert_eq!(again, got, "{out}");

    // Filters go to rntpd: mincount=3 keeps one client.
    let (out, _) = ntpq(addr, &["-n", "-c", "mrulist mincount=3"]);
    let filtered: Vec<IpAddr> = rows(&out).iter().map(|r| r.addr).collect();
    assert_eq!(filtered, [a.ip()], "{out}");

    // An unimplemented parameter gets a clear error, not a timeout.
    let (out, err) = ntpq(addr, &["-n", "-c", "mrulist laddr=127.0.0.1"]);
    let all = format!("{out}{err}");
    assert!(all.contains("***Server error code BADFMT"), "{all}");

    // A list longer than one answer (about 100 entries fit in 32 datagrams): ntpq resumes
    // from the newest entry it has until rntpd sends `now=`, and lists every client once.
    for host in 10..=254u8 {
        let src = SocketAddr::from((block.addr(host), 41000));
        if let Err(e) = rntp_testkit::ntp::query(src, server, QUERY_TIMEOUT) {
            panic!("request from {src}: {e}\n{}", rntpd.logs());
        }
    }
    let (out, err) = ntpq(addr, &["-n", "-c", "mrulist"]);
    assert!(!err.contains("***"), "{err}");
    let list = rows(&out);
    assert_eq!(list.len(), 245 + 2, "{out}");
    assert_eq!(list[0].addr, IpAddr::V4(block.addr(254)), "newest first");
    assert_eq!(list[244].addr, IpAddr::V4(block.addr(10)));
}
