//! Real clients against the mode 6 responder: NTPsec's `ntpq` (Python) and the monitoring
//! plugins' `check_ntp_peer` (C) query fixed data served through
//! [`rntp_proto::mode6::Mode6Responder`] over a UDP socket on loopback, and their output is
//! checked. ntpq cannot be given a port, so the server binds port 123 on a 127.0.0.0/8 address
//! of its own (derived from the process id, so parallel runs and other tests' daemons do not
//! collide); that needs root.
//!
//! When ntpq or check_ntp_peer is not installed (scripts/install-deps installs both), or port
//! 123 cannot be bound, the test prints `SKIPPED: ...` straight to stderr (not captured, so it
//! shows in the run output) and returns; under `CI=true` a missing client fails instead.
//! Every client runs under `setpriv --inh-caps=-sys_time --bounding-set=-sys_time`.

use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rntp_proto::mode6::{
    query_allowed, AssocSummary, ClockSource, FilterStages, Mode6Data, Mode6Responder, PeerEvent,
    PeerStatus, PeerVars, ReplyBudget, Selection, SystemEvent, SystemStatus, SystemVars,
};
use rntp_proto::server::RestrictFlags;
use rntp_proto::time::NtpTimestamp;
use rntp_proto::wire::{LeapIndicator, ReferenceId};

const NTPQ: &str = "/opt/ntpsec/usr/bin/ntpq";
const CHECK_NTP_PEER: &str = "/usr/lib/nagios/plugins/check_ntp_peer";

/// Seconds since the last reply that the fixture reports (`when` in `ntpq -p`).
const SINCE_REC: u32 = 17;

fn skip(why: &str) {
    if std::env::var_os("CI").is_some_and(|v| v == "true") {
        panic!("{why} (CI=true: run scripts/install-deps)");
    }
    // Straight to the file descriptor: libtest captures only the print macros.
    let _ = writeln!(std::io::stderr(), "SKIPPED: mode6_ntpq: {why}");
}

/// Wall-clock now as an NTP timestamp. The fixture's `rec` and `clock` must be near the real
/// time, or ntpq's `when` column would show decades.
#[allow(clippy::disallowed_methods)] // a test fixture of a real client, not the sans-IO core
fn ntp_now() -> NtpTimestamp {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970");
    NtpTimestamp::from_unix(d.as_secs() as i64, d.subsec_nanos())
}

fn ntp_secs_ago(secs: u32) -> NtpTimestamp {
    NtpTimestamp::from_bits(ntp_now().to_bits() - (u64::from(secs) << 32))
}

/// rntpd with five associations: a named system peer, a candidate by address, a pool row, a
/// reachable pool member (outlier) and an unreachable one.
struct Fixture;

const SYS_PEER: u16 = 11021;
const CANDIDATE: u16 = 11022;
const POOL: u16 = 11023;
const MEMBER: u16 = 11024;
const UNREACHABLE: u16 = 11025;

fn sock(a: [u8; 4], port: u16) -> Option<SocketAddr> {
    Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::from(a)), port))
}

fn server(status: PeerStatus, src: [u8; 4], name: Option<&'static str>) -> PeerVars<'static> {
    PeerVars {
        srcadr: sock(src, 123),
        srchost: name,
        dstadr: sock([127, 0, 0, 1], 123),
        hmode: 3,
        pmode: 4,
        hpoll: 6,
        ppoll: 6,
        leap: LeapIndicator::NoWarning,
        reach: 0xff,
        rec: ntp_secs_ago(SINCE_REC),
        filter: Some(FilterStages {
            delay: [0.000_123; 8],
            offset: [0.000_5; 8],
            dispersion: [0.000_01; 8],
        }),
        ..PeerVars::pool("", 6)
    }
    .with_status(status)
}

trait WithStatus {
    fn with_status(self, status: PeerStatus) -> Self;
}

impl WithStatus for PeerVars<'static> {
    fn with_status(mut self, status: PeerStatus) -> Self {
        self.status = status;
        self
    }
}

fn status(configured: bool, reachable: bool, selection: Selection, event: PeerEvent) -> PeerStatus {
    PeerStatus {
        configured,
        reachable,
        selection,
        event_count: 1,
        last_event: event,
        ..PeerStatus::default()
    }
}

impl Mode6Data for Fixture {
    fn system(&self) -> SystemVars<'_> {
        SystemVars {
            status: SystemStatus {
                source: ClockSource::Ntp,
                event_count: 1,
                last_event: SystemEvent::ClockSync,
            },
            version: "rntpd 0.1.0",
            processor: "x86_64",
            system: "Linux/6.1.0",
            leap: LeapIndicator::NoWarning,
            stratum: 2,
            precision: -23,
            root_delay: 0.000_123,
            root_dispersion: 0.001_5,
            reference_id: ReferenceId::from_bytes([127, 0, 1, 1]),
            reference_time: ntp_secs_ago(SINCE_REC),
            clock: ntp_now(),
            peer: SYS_PEER,
            tc: 6,
            mintc: 3,
            offset: 0.000_432_1,
            frequency_ppm: -12.345,
            sys_jitter: 0.000_034_5,
            clk_jitter: 0.000_012,
            clk_wander_ppm: 0.001,
            leap_table: None,
        }
    }

    fn associations(&self) -> Vec<AssocSummary> {
        [SYS_PEER, CANDIDATE, POOL, MEMBER, UNREACHABLE]
            .into_iter()
            .map(|id| AssocSummary { id, status: self.peer(id).expect("fixture id").status })
            .collect()
    }

    fn peer(&self, id: u16) -> Option<PeerVars<'_>> {
        let mut p = match id {
            SYS_PEER => server(
                status(true, true, Selection::SysPeer, PeerEvent::SysPeer),
                [127, 0, 1, 1],
                Some("ntp1.test"),
            ),
            CANDIDATE => server(
                status(true, true, Selection::Candidate, PeerEvent::Reachable),
                [127, 0, 1, 2],
                None,
            ),
            POOL => PeerVars::pool("pool.test", 6),
            MEMBER => server(
                status(false, true, Selection::Outlier, PeerEvent::Reachable),
                [127, 0, 1, 3],
                None,
            ),
            UNREACHABLE => {
                let mut p = server(
                    status(false, false, Selection::Reject, PeerEvent::Unreachable),
                    [127, 0, 1, 4],
                    None,
                );
                p.reach = 0;
                p.stratum = 16;
                p.reference_id = ReferenceId::from_bytes(*b"INIT");
                p
            }
            _ => return None,
        };
        match id {
            SYS_PEER => {
                p.stratum = 1;
                p.reference_id = ReferenceId::from_bytes(*b"GPS\0");
                p.offset = 0.000_5;
                p.delay = 0.000_123_4;
                p.jitter = 0.000_034_5;
            }
            CANDIDATE => {
                p.stratum = 2;
                p.reference_id = ReferenceId::from_bytes([127, 0, 1, 1]);
                p.offset = -0.001_25;
                p.delay = 0.000_2;
                p.jitter = 0.000_05;
            }
            MEMBER => {
                p.stratum = 3;
                p.reference_id = ReferenceId::from_bytes([127, 0, 1, 2]);
                p.offset = 0.002;
                p.delay = 0.000_3;
                p.jitter = 0.000_1;
            }
            _ => {}
        }
        Some(p)
    }
}

/// A UDP server thread answering mode 6 through the responder, with `restrict` flags the test
/// can change.
struct Server {
    addr: Ipv4Addr,
    stop: Arc<AtomicBool>,
    flags: Arc<AtomicU8>,
    bytes_in: Arc<AtomicU64>,
    bytes_out: Arc<AtomicU64>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Server {
    fn start() -> Result<Server, String> {
        let pid = std::process::id();
        let addr = Ipv4Addr::new(127, 6, (pid >> 8) as u8, (pid as u8).max(1));
        let socket = UdpSocket::bind((addr, 123)).map_err(|e| format!("bind {addr}:123: {e}"))?;
        socket.set_read_timeout(Some(Duration::from_millis(50))).expect("set timeout");
        let stop = Arc::new(AtomicBool::new(false));
        let flags = Arc::new(AtomicU8::new(RestrictFlags::NONE.bits()));
        let bytes_in = Arc::new(AtomicU64::new(0));
        let bytes_out = Arc::new(AtomicU64::new(0));
        let thread = {
            let (stop, flags) = (stop.clone(), flags.clone());
            let (bytes_in, bytes_out) = (bytes_in.clone(), bytes_out.clone());
            thread::spawn(move || {
                let responder = Mode6Responder::new();
                let mut buf = [0u8; 1500];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((len, src)) = socket.recv_from(&mut buf) else { continue };
                    bytes_in.fetch_add(len as u64, Ordering::Relaxed);
                    let flags = RestrictFlags::from_bits_truncate(flags.load(Ordering::Relaxed));
                    if !query_allowed(flags) {
                        continue;
                    }
                    let budget = ReplyBudget::for_source(src.ip(), len, false);
                    for reply in responder.respond(&buf[..len], &Fixture, budget) {
                        bytes_out.fetch_add(reply.len() as u64, Ordering::Relaxed);
                        let _ = socket.send_to(&reply, src);
                    }
                }
            })
        };
        Ok(Server { addr, stop, flags, bytes_in, bytes_out, thread: Some(thread) })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Runs a client without CAP_SYS_TIME; returns (exit code, stdout, stderr).
fn run(program: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new("setpriv")
        .args(["--inh-caps=-sys_time", "--bounding-set=-sys_time", "--", program])
        .args(args)
        .output()
        .expect("run setpriv");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `ntpq` with a short timeout (its default waits 5 s twice for a silent server).
fn ntpq(server: &Server, args: &[&str]) -> (String, String) {
    let host = server.addr.to_string();
    let mut all = vec!["-c", "timeout 1000"];
    all.extend_from_slice(args);
    all.push(&host);
    let (_, out, err) = run(NTPQ, &all);
    // Shown with --nocapture, for comparing with a real ntpd by eye.
    eprintln!("$ ntpq {}\n{out}{err}", args.join(" "));
    // Drop the echo of the timeout command.
    let out = out.lines().filter(|l| !l.starts_with("primary timeout")).collect::<Vec<_>>();
    (out.join("\n"), err)
}

/// The `ntpq -p` row whose first column (tally + name) is `remote`, split into columns.
fn row<'a>(out: &'a str, remote: &str) -> Vec<&'a str> {
    out.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|cols| cols.first() == Some(&remote))
        .unwrap_or_else(|| panic!("no row {remote:?} in:\n{out}"))
}

#[test]
fn ntpsec_ntpq_and_check_ntp_peer_read_the_responder() {
    for tool in [NTPQ, CHECK_NTP_PEER] {
        if !Path::new(tool).exists() {
            return skip(&format!("{tool} is not installed"));
        }
    }
    let server = match Server::start() {
        Ok(s) => s,
        Err(e) => return skip(&format!("{e} (port 123 needs root)")),
    };

    // ntpq -p: same associations, offsets, refids, names; the pool row as ntpd shows it.
    let (out, err) = ntpq(&server, &["-n", "-p"]);
    assert!(err.is_empty(), "ntpq -p stderr: {err}\n{out}");
    let sys = row(&out, "*127.0.1.1");
    assert_eq!(&sys[1..6], [".GPS.", "1", "u", &SINCE_REC.to_string(), "64"], "{out}");
    assert_eq!(&sys[6..], ["377", "0.1234", "0.5000", "0.0345"], "{out}");
    let cand = row(&out, "+127.0.1.2");
    assert_eq!(&cand[1..4], ["127.0.1.1", "2", "u"], "{out}");
    assert_eq!(&cand[7..], ["0.2000", "-1.2500", "0.0500"], "{out}");
    let pool = row(&out, "pool.test");
    assert_eq!(&pool[1..4], [".POOL.", "16", "p"], "{out}");
    let member = row(&out, "-127.0.1.3");
    assert_eq!(member[1], "127.0.1.2", "{out}");
    let unreachable = row(&out, "127.0.1.4");
    assert_eq!(&unreachable[1..4], [".INIT.", "16", "u"], "{out}");
    assert_eq!(unreachable[6], "0", "{out}");

    // ntpq -c apeers (NTPsec): association IDs in the refid column's place.
    let (out, _) = ntpq(&server, &["-n", "-c", "apeers"]);
    assert_eq!(&row(&out, "*127.0.1.1")[1..3], [".GPS.", "11021"], "{out}");
    assert_eq!(&row(&out, "pool.test")[1..3], [".POOL.", "11023"], "{out}");

    // ntpq -S -p: supplied names (srchost) instead of addresses, no DNS.
    let (out, _) = ntpq(&server, &["-S", "-p"]);
    row(&out, "*ntp1.test");
    row(&out, "+127.0.1.2");

    // ntpq -c as: all five, with ntpd's status words and their decoding.
    let (out, err) = ntpq(&server, &["-c", "as"]);
    assert!(err.is_empty(), "ntpq -c as stderr: {err}\n{out}");
    let lines: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .filter(|cols: &Vec<&str>| cols.len() >= 8 && cols[1].parse::<u16>().is_ok())
        .collect();
    let expect = [
        ["11021", "961a", "yes", "yes", "none", "sys.peer", "sys_peer"],
        ["11022", "9414", "yes", "yes", "none", "candidate", "reachable"],
        ["11023", "8800", "yes", "none", "none", "reject", ""],
        ["11024", "1314", "no", "yes", "none", "outlier", "reachable"],
        ["11025", "0013", "no", "no", "none", "reject", "unreachable"],
    ];
    assert_eq!(lines.len(), expect.len(), "{out}");
    for (cols, want) in lines.iter().zip(expect) {
        let want: Vec<&str> = want.into_iter().filter(|w| !w.is_empty()).collect();
        assert_eq!(&cols[1..1 + want.len()], &want[..], "{out}");
    }

    // ntpq -c rv: the system variables ntpd sends, cooked by ntpq.
    let (out, err) = ntpq(&server, &["-c", "rv"]);
    assert!(err.is_empty(), "ntpq -c rv stderr: {err}\n{out}");
    assert!(
        out.starts_with("associd=0 status=0615 leap_none, sync_ntp, 1 event, clock_sync,"),
        "{out}"
    );
    for item in [
        "version=\"rntpd 0.1.0\"",
        "processor=\"x86_64\"",
        "system=\"Linux/6.1.0\"",
        "leap=00",
        "stratum=2",
        "precision=-23",
        "rootdelay=0.123",
        "rootdisp=1.5",
        "refid=127.0.1.1",
        "peer=11021",
        "tc=6",
        "mintc=3",
        "offset=0.4321",
        "frequency=-12.345",
        "sys_jitter=0.0345",
        "clk_jitter=0.012",
        "clk_wander=0.001",
    ] {
        assert!(out.contains(item), "no {item} in:\n{out}");
    }

    // ntpq -c "rv 0 offset" and a list: only what was asked.
    let (out, _) = ntpq(&server, &["-c", "rv 0 offset"]);
    assert_eq!(out.trim(), "offset=0.4321", "{out}");
    let (out, _) = ntpq(&server, &["-c", "rv 0 offset,sys_jitter"]);
    assert_eq!(out.trim(), "offset=0.4321, sys_jitter=0.0345", "{out}");
    let (out, err) = ntpq(&server, &["-c", "rv 0 nosuchvar"]);
    assert!(err.contains("UNKNOWNVAR"), "{out}\n{err}");

    // A peer's variables, with the filter registers ntpq aligns.
    let (out, _) = ntpq(&server, &["-c", "rv 11023"]);
    for item in ["srcadr=0.0.0.0", "srchost=\"pool.test\"", "refid=POOL", "stratum=16"] {
        assert!(out.contains(item), "no {item} in:\n{out}");
    }
    let (out, _) = ntpq(&server, &["-c", "rv 11021"]);
    for item in
        ["srcadr=127.0.1.1", "srchost=\"ntp1.test\"", "reach=377", "offset=0.5", "filtdelay ="]
    {
        assert!(out.contains(item), "no {item} in:\n{out}");
    }

    // check_ntp_peer: OK with the system peer's offset; with jitter and stratum thresholds,
    // those too.
    let host = server.addr.to_string();
    let (code, out, err) = run(CHECK_NTP_PEER, &["-H", &host, "-t", "5"]);
    eprintln!("$ check_ntp_peer -H {host}\n{out}{err}");
    assert_eq!(code, 0, "check_ntp_peer: {out}{err}");
    assert!(out.starts_with("NTP OK: Offset 0.0005 secs|offset=0.000500s"), "{out}");
    let (code, out, err) =
        run(CHECK_NTP_PEER, &["-H", &host, "-j", "-1:100", "-W", "4", "-t", "5"]);
    assert_eq!(code, 0, "check_ntp_peer: {out}{err}");
    assert!(out.starts_with("NTP OK: Offset 0.0005 secs, jitter=0.034500, stratum=1|"), "{out}");

    // Loopback is never amplification-limited, so the bytes went out freely; now restrict
    // the source with noquery: no answer at all, ntpq times out.
    server.flags.store(RestrictFlags::NOQUERY.bits(), Ordering::Relaxed);
    let sent_before = server.bytes_out.load(Ordering::Relaxed);
    let (out, err) = ntpq(&server, &["-n", "-p"]);
    assert!(err.contains("timed out"), "noquery answered?\n{out}\n{err}");
    assert_eq!(server.bytes_out.load(Ordering::Relaxed), sent_before);
    let (code, out, _) = run(CHECK_NTP_PEER, &["-H", &server.addr.to_string(), "-t", "2"]);
    assert_ne!(code, 0, "check_ntp_peer OK against noquery: {out}");
    assert!(server.bytes_in.load(Ordering::Relaxed) > 0);
}
