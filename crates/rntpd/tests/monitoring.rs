//! Monitoring rntpd with tools nobody here wrote (issue 13): NTPsec's `ntpq` and the monitoring
//! plugins' `check_ntp_peer` over mode 6, against the real daemon synchronized to chronyd
//! servers behind names served by dnsmasq (a `server NAME` and a `pool NAME`).
//!
//! NTPsec's ntpq has no port option, so rntpd serves on port 123 of a test-allocated loopback
//! address (127.16.Y.1:123); binding it needs root, which the test harness has (rntpd keeps
//! CAP_NET_BIND_SERVICE under setpriv; only CAP_SYS_TIME is dropped). When a tool is missing
//! the test prints `SKIPPED: ...` on stderr and passes, except under `CI=true`, where it fails
//! (scripts/install-deps installs them).
//!
//! Addresses: 127.16.Y.0/24 blocks (`Net::new(16)`).

mod support;

use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::{ChronyServer, Dnsmasq, Net, Rntpd, Shift, TestDir};

static NET: Net = Net::new(16);

const NTPQ: &str = "/opt/ntpsec/usr/bin/ntpq";
const CHECK_NTP_PEER: &str = "/usr/lib/nagios/plugins/check_ntp_peer";
/// Port of the upstream chronyd servers.
const UPSTREAM_PORT: u16 = 12316;
/// dnsmasq's port (host 53 of the block).
const DNS_PORT: u16 = 5316;
/// How long rntpd gets to synchronize.
const SYNC_TIMEOUT: Duration = Duration::from_secs(40);
/// ntpq's offsets against `rntpctl peers` (the bound), in ms.
const MAX_OFFSET_DIFF_MS: f64 = 1.0;

/// Prints a visible SKIPPED line; under `CI=true`, fails instead.
fn skip(why: &str) {
    if std::env::var_os("CI").is_some_and(|v| v == "true") {
        panic!("{why} (CI=true: run scripts/install-deps)");
    }
    let _ = writeln!(std::io::stderr(), "SKIPPED: monitoring: {why}");
}

fn have(tools: &[&str]) -> bool {
    for tool in tools {
        if !Path::new(tool).exists() {
            skip(&format!("{tool} is not installed"));
            return false;
        }
    }
    true
}

/// Runs a client without CAP_SYS_TIME; returns (exit code, stdout, stderr).
fn run(program: &str, args: &[&str]) -> (i32, String, String) {
    let out = support::run(
        Command::new("setpriv")
            .args(["--inh-caps=-sys_time", "--bounding-set=-sys_time", "--", program])
            .args(args),
    );
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `ntpq ARGS HOST` with a 1 s timeout; (stdout without the timeout echo, stderr).
fn ntpq(host: Ipv4Addr, args: &[&str]) -> (String, String) {
    let host = host.to_string();
    let mut all = vec!["-c", "timeout 1000"];
    all.extend_from_slice(args);
    all.push(&host);
    let (_, out, err) = run(NTPQ, &all);
    eprintln!("$ ntpq {} {host}\n{out}{err}", args.join(" "));
    let out = out.lines().filter(|l| !l.starts_with("primary timeout")).collect::<Vec<_>>();
    (out.join("\n"), err)
}

/// The `ntpq -p` rows: first column (tally + name) → the columns.
fn ntpq_rows(out: &str) -> Vec<Vec<String>> {
    out.lines()
        .skip_while(|l| !l.starts_with("====="))
        .skip(1)
        .map(|l| {
            // The tally is column 0, glued to the name; split it off.
            let (tally, rest) = l.split_at(1);
            let mut cols = vec![tally.to_string()];
            cols.extend(rest.split_whitespace().map(str::to_string));
            cols
        })
        .collect()
}

/// A synchronized rntpd on 127.16.Y.1:123 with `server ntp1.test` (host 2) and
/// `pool pool.test` (hosts 3, 4), all chronyd, names from dnsmasq on host 53.
struct Setup {
    rntpd: Rntpd,
    addr: Ipv4Addr,
    _dns: Dnsmasq,
    _upstream: Vec<ChronyServer>,
    _block: support::Block,
}

fn synchronized_rntpd(dir: &TestDir, extra: impl Fn(Ipv4Addr) -> String) -> Setup {
    let block = NET.allocate();
    let upstream: Vec<ChronyServer> = (2..=4u8)
        .map(|h| ChronyServer::start(dir, block.addr(h), UPSTREAM_PORT, Shift::None))
        .collect();
    let dns = Dnsmasq::start(dir, block.addr(53), DNS_PORT, 300);
    dns.set("ntp1.test", &[IpAddr::V4(block.addr(2))]);
    dns.set("pool.test", &[IpAddr::V4(block.addr(3)), IpAddr::V4(block.addr(4))]);
    for u in &upstream {
        u.wait_ready();
    }
    let addr = block.addr(1);
    support::assert_udp_free(SocketAddr::from((addr, 123)));
    let poll = "iburst minpoll -1 maxpoll -1";
    let config = format!(
        "resolver {dns}\ninterface listen {addr}\n\
         server ntp1.test port {UPSTREAM_PORT} {poll}\n\
         pool pool.test port {UPSTREAM_PORT} {poll} maxsources 2\n{extra}",
        dns = dns.addr(),
        extra = extra(addr),
    );
    let rntpd = Rntpd::start(dir, &config);
    let synced = support::wait_until("rntpd to synchronize", SYNC_TIMEOUT, || {
        let status = rntpd.status_json();
        let peers = rntpd.peers_json();
        let members = peers.iter().filter(|p| p["kind"] == "pool-member").count();
        let reached = peers.iter().filter(|p| p["reach"].as_u64().unwrap_or(0) != 0).count();
        if status["serving_as"] == "synchronized" && members == 2 && reached == 3 {
            Ok(())
        } else {
            Err(format!(
                "serving_as {}, {members} members, {reached} reached",
                status["serving_as"]
            ))
        }
    });
    if let Err(e) = synced {
        panic!("{e}\n{}", rntpd.logs());
    }
    Setup { rntpd, addr, _dns: dns, _upstream: upstream, _block: block }
}

/// The mode 6 association ID rntpd gives an association or a pool row (node/mode6.rs).
fn assid(peer: &Value) -> u64 {
    match peer["id"].as_u64() {
        Some(assoc) => 16384 + assoc % 49151,
        None => 1 + peer["source_id"].as_u64().expect("source_id") % 16383,
    }
}

#[test]
fn ntpq_and_check_ntp_peer_read_the_daemon() {
    if !have(&[NTPQ, CHECK_NTP_PEER]) {
        return;
    }
    let dir = TestDir::new();
    let setup = synchronized_rntpd(&dir, |_| String::new());
    let (rntpd, addr) = (&setup.rntpd, setup.addr);

    // ntpq -n -p: the same rows as rntpctl peers, same offsets (within 1 ms), the pool row
    // by name as ntpd shows it.
    let (out, err) = ntpq(addr, &["-n", "-p"]);
    let peers = rntpd.peers_json();
    assert!(err.is_empty(), "ntpq -p: {err}\n{out}");
    let rows = ntpq_rows(&out);
    assert_eq!(rows.len(), peers.len(), "ntpq -p rows vs rntpctl peers {peers:?}\n{out}");
    for peer in &peers {
        if peer["kind"] == "pool" {
            let row = rows.iter().find(|r| r[1] == "pool.test").unwrap_or_else(|| panic!("{out}"));
            assert_eq!(&row[2..5], [".POOL.", "16", "p"], "{out}");
            continue;
        }
        let ip = peer["address"].as_str().unwrap().rsplit_once(':').unwrap().0.to_string();
        let row = rows.iter().find(|r| r[1] == ip).unwrap_or_else(|| panic!("no {ip}:\n{out}"));
        assert_eq!(row[0], peer["tally"].as_str().unwrap(), "tally of {ip}\n{out}");
        assert_eq!(row[4], "u", "{out}");
        // Octal, as ntpd's; it moves on with every 0.5 s poll, so only "reached" is compared.
        assert!(u8::from_str_radix(&row[7], 8).is_ok_and(|r| r != 0), "reach of {ip}\n{out}");
        let ntpq_ms: f64 = row[9].parse().unwrap();
        let ctl_ms = peer["offset"].as_f64().unwrap() * 1e3;
        assert!(
            (ntpq_ms - ctl_ms).abs() <= MAX_OFFSET_DIFF_MS,
            "{ip}: ntpq {ntpq_ms} ms, rntpctl {ctl_ms} ms\n{out}"
        );
    }
    assert!(rows.iter().any(|r| r[0] == "*"), "no system peer in\n{out}");

    // ntpq -S -p: the configured name instead of the address (srchost), others numeric.
    let (out, _) = ntpq(addr, &["-S", "-p"]);
    assert!(ntpq_rows(&out).iter().any(|r| r[1] == "ntp1.test"), "{out}");

    // ntpq -c as: one line per row, with rntpd's IDs.
    let (out, err) = ntpq(addr, &["-c", "as"]);
    assert!(err.is_empty(), "ntpq -c as: {err}\n{out}");
    let mut ids: Vec<u64> =
        out.lines().filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok()).collect();
    let mut want: Vec<u64> = peers.iter().map(assid).collect();
    ids.sort_unstable();
    want.sort_unstable();
    assert_eq!(ids, want, "{out}");
    assert!(out.contains("sys.peer"), "{out}");

    // ntpq -c rv: synchronized, stratum 2 (chronyd is stratum 1 here), our version.
    let (out, err) = ntpq(addr, &["-c", "rv"]);
    assert!(err.is_empty(), "ntpq -c rv: {err}\n{out}");
    assert!(out.contains("sync_ntp"), "{out}");
    for item in ["version=\"rntpd ", "leap=00", "stratum=2", "processor=", "system=\"Linux/"] {
        assert!(out.contains(item), "no {item} in\n{out}");
    }
    let (out, _) = ntpq(addr, &["-c", "rv 0 offset"]);
    let offset_ms: f64 = out
        .trim()
        .strip_prefix("offset=")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("ntpq -c 'rv 0 offset': {out}"));
    let status = rntpd.status_json();
    let ctl_ms = status["clock_offset"].as_f64().unwrap_or(0.0) * 1e3;
    assert!((offset_ms - ctl_ms).abs() <= MAX_OFFSET_DIFF_MS, "{offset_ms} vs {ctl_ms}");

    // check_ntp_peer: OK, with offset, jitter and stratum.
    let host = addr.to_string();
    let (code, out, err) = run(
        CHECK_NTP_PEER,
        &["-H", &host, "-w", "0.5", "-c", "1", "-j", "-1:100", "-W", "4", "-t", "5"],
    );
    eprintln!("$ check_ntp_peer -H {host} ...\n{out}{err}");
    assert_eq!(code, 0, "check_ntp_peer: {out}{err}\n{}", rntpd.logs());
    assert!(out.starts_with("NTP OK: Offset "), "{out}");
    for item in ["jitter=", "stratum=", "|offset="] {
        assert!(out.contains(item), "no {item} in {out}");
    }
}

#[test]
fn noquery_client_gets_no_answer() {
    if !have(&[NTPQ, CHECK_NTP_PEER]) {
        return;
    }
    let dir = TestDir::new();
    let block = NET.allocate();
    let addr = block.addr(1);
    support::assert_udp_free(SocketAddr::from((addr, 123)));
    let config = format!(
        "interface listen {addr}\ntos orphan 3\nrestrict default\n\
         restrict 127.0.0.0 mask 255.0.0.0 noquery\n"
    );
    let rntpd = Rntpd::start(&dir, &config);
    // It serves time (orphan) but answers no query.
    if let Err(e) = support::ntp::wait_synced(SocketAddr::from((addr, 123)), 3, SYNC_TIMEOUT) {
        panic!("{e}\n{}", rntpd.logs());
    }
    let (code, out, err) = run(CHECK_NTP_PEER, &["-H", &addr.to_string(), "-t", "2"]);
    eprintln!("$ check_ntp_peer -H {addr}\n{out}{err}");
    assert_ne!(code, 0, "check_ntp_peer against noquery: {out}");
    assert!(!out.contains("NTP OK"), "{out}");
    let (out, err) = ntpq(addr, &["-n", "-p"]);
    assert!(err.contains("timed out"), "noquery answered?\n{out}\n{err}");
}

/// The system Python (Debian's modules: python3-prometheus-client, ntpviz's `ntp`).
const PYTHON: &str = "/usr/bin/python3";
const NTPVIZ: &str = "/usr/bin/ntpviz";
/// The metrics port of these tests (each test has its own address).
const METRICS_PORT: u16 = 9316;

/// `GET /metrics` with curl; the body.
fn scrape(addr: Ipv4Addr) -> String {
    let url = format!("http://{addr}:{METRICS_PORT}/metrics");
    let out = support::run(Command::new("curl").args(["-sS", "--max-time", "5", "-D", "-", &url]));
    assert!(out.status.success(), "curl {url}: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    let (head, body) = text.split_once("\r\n\r\n").expect("HTTP head");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("application/openmetrics-text; version=1.0.0"), "{head}");
    body.to_string()
}

/// The value of the sample `name{labels}` (labels as printed, sorted as rntpd prints them).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// The secret of key 1 (MD5) in the metrics test's key file.
const KEY1_SECRET: &str = "monitoringKey1";

/// Sends rntpd (port 123) from `from` a client request signed with key 1, with a valid MAC or
/// a wrong digest; the length of the reply (68: signed, 52: crypto-NAK).
fn signed_exchange(from: Ipv4Addr, addr: Ipv4Addr, valid: bool) -> usize {
    use rntp_proto::auth::{Digest, Key, KeyId};
    let key = Key::new(KeyId(1), Digest::Md5, KEY1_SECRET.as_bytes()).expect("key 1");
    let mut request = rntp_testkit::ntp::request(rntp_testkit::ntp::now_ntp()).to_vec();
    key.append_mac(&mut request);
    if !valid {
        let last = request.len() - 1;
        request[last] ^= 0xff;
    }
    let socket = std::net::UdpSocket::bind((from, 0)).expect("bind");
    socket.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
    let mut buf = [0u8; 1024];
    for _ in 0..3 {
        socket.send_to(&request, (addr, 123)).expect("send");
        if let Ok((len, _)) = socket.recv_from(&mut buf) {
            return len;
        }
    }
    panic!("no answer from {addr}:123 to a keyed request");
}

/// Non-empty lines of every `STEM.YYYYMMDD` file in `dir`.
fn stats_lines(dir: &Path, stem: &str) -> Vec<String> {
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.strip_prefix(stem).is_some_and(|rest| rest.starts_with('.') && rest.len() == 9) {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            lines.extend(text.lines().filter(|l| !l.is_empty()).map(str::to_string));
        }
    }
    lines
}

#[test]
fn metrics_and_statistics_files_are_read_by_prometheus_and_ntpviz() {
    if !have(&[PYTHON]) {
        return;
    }
    let dir = TestDir::new();
    let stats = dir.sub("stats");
    let stats_dir = stats.display().to_string();
    let keys = dir.path().join("ntp.keys");
    std::fs::write(&keys, format!("1 MD5 {KEY1_SECRET}\n")).expect("write the key file");
    std::fs::set_permissions(&keys, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod the key file");
    let setup = synchronized_rntpd(&dir, |addr| {
        format!(
            "metrics {addr} port {METRICS_PORT}\nstatsdir {stats_dir}\n\
             statistics peerstats loopstats sysstats sourcestats\n\
             keys {}\ntrustedkey 1\n",
            keys.display()
        )
    });
    let (rntpd, addr) = (&setup.rntpd, setup.addr);

    // The OpenMetrics text parses with the Prometheus project's own (strict) parser.
    let body = scrape(addr);
    let parser = "import sys\n\
        from prometheus_client.openmetrics.parser import text_string_to_metric_families as om\n\
        fams = list(om(sys.stdin.read()))\n\
        print(len(fams), sum(len(f.samples) for f in fams))\n";
    let mut child = Command::new(PYTHON)
        .args(["-c", parser])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    child.stdin.take().expect("stdin").write_all(body.as_bytes()).expect("write");
    let out = child.wait_with_output().expect("python3");
    let parsed = String::from_utf8_lossy(&out.stdout).into_owned();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    if err.contains("No module named 'prometheus_client'") {
        return skip("python3-prometheus-client is not installed");
    }
    assert!(out.status.success(), "OpenMetrics parser refused the metrics: {err}\n{body}");
    eprintln!("OpenMetrics parser: {parsed} (families, samples)");
    // Per-source DNS and pool metrics, system state.
    for (series, check) in [
        ("rntpd_synchronized", 1.0),
        ("rntpd_pool_members{source=\"pool.test\"}", 2.0),
        ("rntpd_pool_target_members{source=\"pool.test\"}", 2.0),
        ("rntpd_source_addresses{source=\"pool.test\",kind=\"pool\"}", 2.0),
        ("rntpd_source_dns_failures_total{source=\"ntp1.test\",kind=\"server\",cause=\"nxdomain\"}", 0.0),
    ] {
        assert_eq!(sample(&body, series), Some(check), "{series} in\n{body}");
    }
    for series in [
        "rntpd_source_dns_lookups_total{source=\"ntp1.test\",kind=\"server\"}",
        "rntpd_source_dns_ttl_seconds{source=\"pool.test\",kind=\"pool\"}",
        "rntpd_source_associations_started_total{source=\"pool.test\",kind=\"pool\",reason=\"pool-fill\"}",
    ] {
        assert!(sample(&body, series).is_some_and(|v| v >= 1.0), "{series} in\n{body}");
    }
    let member = format!(
        "source=\"pool.test\",address=\"{}:{UPSTREAM_PORT}\",pool=\"pool.test\"",
        setup._block.addr(3)
    );
    assert!(body.contains(&format!("rntpd_peer_offset_seconds{{{member}}}")), "{body}");
    // A mode 6 query shows in the control counters.
    let before = sample(&body, "rntpd_control_requests_total").unwrap_or(0.0);
    let _ = ntpq(addr, &["-c", "rv 0 offset"]);
    let after = sample(&scrape(addr), "rntpd_control_requests_total").unwrap_or(0.0);
    if Path::new(NTPQ).exists() {
        assert!(after > before, "control requests {before} -> {after}");
    }
    // Authentication: a request signed with key 1 gets a signed reply, one with a wrong
    // digest a crypto-NAK; both show in the server's counters. Every key and manycast family
    // is there, zeros included.
    // Each from its own address: the default `restrict` rate-limits one client's burst.
    let (good, bad) = (setup._block.addr(100), setup._block.addr(101));
    assert_eq!(signed_exchange(good, addr, true), 68, "a signed reply to a signed request");
    assert_eq!(signed_exchange(bad, addr, false), 52, "a crypto-NAK to a bad MAC");
    let body = scrape(addr);
    for (series, at_least) in [
        ("rntpd_server_auth_failures_total{reason=\"auth_bad_mac\"}", 1.0),
        ("rntpd_server_crypto_nak_total", 1.0),
        ("rntpd_server_authenticated_replies_total", 1.0),
        ("rntpd_auth_keys", 1.0),
        ("rntpd_auth_trusted_keys", 1.0),
    ] {
        assert!(sample(&body, series).is_some_and(|v| v >= at_least), "{series} in\n{body}");
    }
    for series in [
        "rntpd_server_auth_failures_total{reason=\"auth_unknown_key\"}",
        "rntpd_client_replies_dropped_total{reason=\"auth_bad_mac\"}",
        "rntpd_control_signed_total",
        "rntpd_control_config_accepted_total",
        "rntpd_control_config_refused_total{reason=\"wrong_key\"}",
        "rntpd_manycast_solicitations_sent_total",
        "rntpd_manycast_answers_received_total",
        "rntpd_manycast_answers_accepted_total",
        "rntpd_manycast_answers_dropped_total{reason=\"auth_wrong_key\"}",
        "rntpd_manycast_server_requests_total",
        "rntpd_manycast_server_replies_total",
        "rntpd_manycast_server_declined_total{reason=\"unauthenticated\"}",
    ] {
        assert_eq!(sample(&body, series), Some(0.0), "{series} in\n{body}");
    }

    // Anything but /metrics is a 404.
    let out = support::run(Command::new("curl").args([
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("http://{addr}:{METRICS_PORT}/"),
    ]));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "404");

    // Statistics files in ntpd's formats.
    let lines = support::wait_until("peerstats and loopstats lines", SYNC_TIMEOUT, || {
        // Enough for every ntpviz plot: gnuplot refuses a plot whose values are all equal.
        let peer = stats_lines(&stats, "peerstats");
        let lp = stats_lines(&stats, "loopstats");
        let distinct = |lines: &[String], key: Option<&str>, field: usize| {
            let mut values: Vec<&str> = lines
                .iter()
                .map(|l| l.split_whitespace().collect::<Vec<_>>())
                .filter(|f| key.is_none_or(|k| f.get(2) == Some(&k)))
                .filter_map(|f| f.get(field).copied())
                .collect();
            values.sort_unstable();
            values.dedup();
            values.len()
        };
        let members: Vec<String> = (2..=4).map(|h| setup._block.addr(h).to_string()).collect();
        let peers_ok = members.iter().all(|a| distinct(&peer, Some(a), 4) >= 3);
        if peers_ok && distinct(&lp, None, 2) >= 6 {
            Ok((peer, lp))
        } else {
            Err(format!("{} peerstats, {} loopstats lines", peer.len(), lp.len()))
        }
    });
    let (peer, lp) = lines.unwrap_or_else(|e| panic!("{e}\n{}", rntpd.logs()));
    for l in &peer {
        let f: Vec<&str> = l.split_whitespace().collect();
        assert_eq!(f.len(), 8, "peerstats: {l}");
        assert!(f[0].parse::<u32>().is_ok_and(|mjd| mjd > 60_000), "MJD: {l}");
        assert!(f[2].parse::<IpAddr>().is_ok(), "address: {l}");
        assert!(u16::from_str_radix(f[3], 16).is_ok(), "status: {l}");
        assert!(f[4..].iter().all(|v| v.parse::<f64>().is_ok()), "{l}");
    }
    for l in &lp {
        let f: Vec<&str> = l.split_whitespace().collect();
        assert_eq!(f.len(), 7, "loopstats: {l}");
        assert!(f[2..6].iter().all(|v| v.parse::<f64>().is_ok()) && f[6].parse::<i8>().is_ok());
    }
    let sources = stats_lines(&stats, "sourcestats").join("\n");
    for want in
        ["resolved ntp1.test addresses=1", "resolved pool.test addresses=2", "mobilized pool.test"]
    {
        assert!(sources.contains(want), "no {want:?} in sourcestats:\n{sources}");
    }
    assert!(std::fs::read_link(stats.join("peerstats")).is_ok(), "peerstats link");

    // rntpctl plot draws them: offset, frequency, one line per server.
    let svg = dir.path().join("plot.svg");
    let out = support::run(
        Command::new(support::rntpd::rntpctl_path())
            .args(["plot", "--statsdir", &stats_dir, "-o"])
            .arg(&svg),
    );
    assert!(out.status.success(), "rntpctl plot: {}", String::from_utf8_lossy(&out.stderr));
    let image = std::fs::read_to_string(&svg).expect("plot.svg");
    assert!(image.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""), "{image}");
    assert_eq!(image.matches("<polyline").count(), 2 + 3, "offset, frequency, 3 servers");
    for h in 2..=4 {
        assert!(image.contains(&setup._block.addr(h).to_string()), "server {h} in the legend");
    }

    // NTPsec's ntpviz reads them (its own reverse lookups of the addresses go to /etc/hosts
    // and a resolver on a loopback address where nothing listens: see `no_dns`).
    if !have(&[NTPVIZ]) {
        return;
    }
    let out_dir = dir.sub("ntpviz");
    let (code, out, err) = no_dns(
        &dir,
        &[NTPVIZ, "-d", &stats_dir, "-o", &out_dir.display().to_string(), "-p", "1", "-g"],
    );
    eprintln!("$ ntpviz ...\n{out}{err}");
    assert_eq!(code, 0, "ntpviz: {out}{err}");
    let index = std::fs::read_to_string(out_dir.join("index.html")).expect("ntpviz index.html");
    for plot in ["local-offset.png", "peer-offsets.png"] {
        let png = std::fs::read(out_dir.join(plot)).unwrap_or_default();
        assert!(png.starts_with(b"\x89PNG"), "ntpviz wrote no {plot}: {err}");
        assert!(index.contains(plot), "{plot} not in index.html");
    }
}

/// Runs `cmd` without CAP_SYS_TIME and with a private /etc/resolv.conf naming a loopback
/// resolver where nothing listens, so its DNS lookups fail at once and never leave the host.
fn no_dns(dir: &TestDir, cmd: &[&str]) -> (i32, String, String) {
    let resolv = dir.path().join("resolv.conf");
    std::fs::write(&resolv, "nameserver 127.255.255.254\noptions timeout:1 attempts:1\n")
        .expect("write resolv.conf");
    let script = format!(
        "mount --bind {} /etc/resolv.conf && exec setpriv --inh-caps=-sys_time \
         --bounding-set=-sys_time -- \"$@\"",
        resolv.display()
    );
    let out =
        support::run(Command::new("unshare").args(["-m", "sh", "-c", &script, "sh"]).args(cmd));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
