//! Integration tests for `rntp-sys` on the real kernel (loopback only, clocks read only).

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rntp_sys::{
    clock_precision_log2, enable_rx_timestamps, geteuid, has_cap_sys_time, kernel_clock_state,
    monotonic_nanos, peer_credentials, realtime, recv_from_with_timestamp, WallTime,
};

fn system_now_nanos() -> i128 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_nanos() as i128
}

#[test]
fn realtime_matches_system_time() {
    let before = system_now_nanos();
    let rt = realtime();
    let after = system_now_nanos();
    assert!(rt.nanos < 1_000_000_000);
    let t = rt.as_nanos();
    let tolerance = 10_000_000; // 10 ms
    assert!(t >= before - tolerance && t <= after + tolerance, "{rt:?} vs [{before}, {after}]");
}

#[test]
fn monotonic_is_non_decreasing_and_advances() {
    let mut prev = monotonic_nanos();
    assert!(prev > 0);
    for _ in 0..10_000 {
        let now = monotonic_nanos();
        assert!(now >= prev, "monotonic went back: {prev} -> {now}");
        prev = now;
    }
    let start = monotonic_nanos();
    std::thread::sleep(Duration::from_millis(5));
    let elapsed = monotonic_nanos() - start;
    assert!(elapsed >= 5_000_000, "slept 5 ms but monotonic advanced {elapsed} ns");
}

#[test]
fn precision_is_sane() {
    let p = clock_precision_log2();
    assert!((-30..=-10).contains(&p), "precision {p}");
}

#[test]
fn kernel_clock_state_reads() {
    let a = kernel_clock_state().expect("adjtimex(modes=0)");
    assert!(a.freq_ppm.is_finite() && a.freq_ppm.abs() <= 600.0, "{a:?}");
    assert!(a.maxerror_micros >= 0 && a.esterror_micros >= 0, "{a:?}");
    assert!(a.tick_micros > 0, "{a:?}");
    assert_eq!(a.synchronized, !a.status_names().contains(&"UNSYNC"));
    // A second read returns the same discipline parameters: reading changed nothing.
    let b = kernel_clock_state().expect("adjtimex(modes=0)");
    assert_eq!(a.freq_ppm, b.freq_ppm);
    assert_eq!(a.status, b.status);
    assert_eq!(a.tick_micros, b.tick_micros);
    assert_eq!(a.time_constant, b.time_constant);
}

#[test]
fn cap_sys_time_matches_the_kernels_effective_set() {
    // The kernel's own account of this process: CapEff in /proc/self/status, bit 25.
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let hex =
        status.lines().find_map(|l| l.strip_prefix("CapEff:")).map(str::trim).expect("CapEff line");
    let eff = u64::from_str_radix(hex, 16).expect("CapEff is hex");
    const CAP_SYS_TIME: u32 = 25;
    assert_eq!(has_cap_sys_time(), eff & (1 << CAP_SYS_TIME) != 0, "CapEff {hex}");
}

#[test]
fn boottime_runs_with_monotonic_and_includes_suspend() {
    // CLOCK_BOOTTIME = CLOCK_MONOTONIC + time spent suspended: never behind it, and with no
    // suspend during the test their difference stays put (to the cost of two reads).
    let diff = || {
        let m = monotonic_nanos();
        let b = rntp_sys::boottime_nanos();
        let m2 = monotonic_nanos();
        assert!(b >= m, "boottime {b} behind monotonic {m}");
        // Bracketed by two monotonic reads: the difference at the boottime read is within.
        (b - m2.min(b), b - m)
    };
    let (lo1, hi1) = diff();
    std::thread::sleep(Duration::from_millis(20));
    let (lo2, hi2) = diff();
    // Same offset within the read brackets (plus 1 ms of scheduling slack).
    assert!(lo2 <= hi1 + 1_000_000 && lo1 <= hi2 + 1_000_000, "{lo1}..{hi1} vs {lo2}..{hi2}");
    let start = rntp_sys::boottime_nanos();
    std::thread::sleep(Duration::from_millis(5));
    assert!(rntp_sys::boottime_nanos() - start >= 5_000_000);
}

/// Child half of `cap_sys_time_false_without_capability`: only reports when asked to.
#[test]
fn cap_sys_time_child_report() {
    if std::env::var_os("RNTP_SYS_CAP_CHILD").is_some() {
        println!("RNTP_SYS_CAP_CHILD={}", has_cap_sys_time());
        // Without the capability, clock control cannot even be set up: the check happens
        // before any system call, so nothing is attempted.
        println!("RNTP_SYS_CONTROL_REFUSED={}", rntp_sys::KernelClock::new().is_err());
    }
}

/// Re-runs this test binary under `setpriv` with `CAP_SYS_TIME` removed from the bounding
/// set (so it cannot be effective after exec) and checks `has_cap_sys_time()` says `false`.
/// Skipped when `setpriv` is missing or not permitted here.
#[test]
fn cap_sys_time_false_without_capability() {
    let exe = std::env::current_exe().expect("current_exe");
    let output = std::process::Command::new("setpriv")
        .args(["--bounding-set", "-sys_time", "--inh-caps", "-all", "--"])
        .arg(&exe)
        .args(["--exact", "cap_sys_time_child_report", "--nocapture", "--test-threads=1"])
        .env("RNTP_SYS_CAP_CHILD", "1")
        .output();
    let output = match output {
        Ok(o) => o,
        Err(e) => {
            eprintln!("skipping: cannot run setpriv: {e}");
            return;
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    if stdout.contains("RNTP_SYS_CAP_CHILD=false") {
        assert!(stdout.contains("RNTP_SYS_CONTROL_REFUSED=true"), "{stdout}");
        return;
    }
    if stdout.contains("RNTP_SYS_CAP_CHILD=true") {
        panic!("has_cap_sys_time() is true without CAP_SYS_TIME in the bounding set");
    }
    eprintln!(
        "skipping: setpriv did not run the child ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

fn udp_pair(bind: &str) -> Option<(UdpSocket, UdpSocket)> {
    let rx = match UdpSocket::bind(bind) {
        Ok(s) => s,
        Err(e) if bind.contains("::1") => {
            eprintln!("skipping IPv6 test: {e}");
            return None;
        }
        Err(e) => panic!("bind {bind}: {e}"),
    };
    let tx = UdpSocket::bind(bind).expect("bind sender");
    Some((rx, tx))
}

/// Polls `recv_from_with_timestamp` until a datagram arrives (loopback delivery is immediate,
/// but stay robust on a loaded machine).
fn recv_wait(sock: &UdpSocket, buf: &mut [u8]) -> rntp_sys::RecvMeta {
    for _ in 0..2000 {
        match recv_from_with_timestamp(sock.as_fd(), buf) {
            Ok(meta) => return meta,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(1))
            }
            Err(e) => panic!("recv_from_with_timestamp: {e}"),
        }
    }
    panic!("no datagram within ~2 s");
}

fn within(a: WallTime, b: WallTime, nanos: i128) -> bool {
    (a.as_nanos() - b.as_nanos()).abs() <= nanos
}

fn roundtrip(bind: &str) {
    let Some((rx, tx)) = udp_pair(bind) else { return };
    enable_rx_timestamps(rx.as_fd()).expect("enable_rx_timestamps");
    let rx_addr = rx.local_addr().unwrap();
    let tx_addr = tx.local_addr().unwrap();

    // Nothing pending yet: must not block, must report WouldBlock.
    let mut buf = [0u8; 128];
    let err = recv_from_with_timestamp(rx.as_fd(), &mut buf).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::WouldBlock);

    let payload = b"\x23 rntp-sys test datagram 48 bytes long .......";
    tx.send_to(payload, rx_addr).unwrap();
    let meta = recv_wait(&rx, &mut buf);
    let now = realtime();
    assert_eq!(meta.len, payload.len());
    assert_eq!(&buf[..meta.len], payload);
    assert_eq!(meta.from, tx_addr);
    assert!(!meta.truncated);
    let rx_time = meta.rx_time.expect("kernel rx timestamp on loopback");
    assert!(within(rx_time, now, 1_000_000_000), "{rx_time:?} vs {now:?}");
    assert!(rx_time <= now, "rx timestamp {rx_time:?} after the receive returned ({now:?})");

    // Drained again.
    let err = recv_from_with_timestamp(rx.as_fd(), &mut buf).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::WouldBlock);

    // Truncation: a 48-byte datagram into an 8-byte buffer.
    tx.send_to(payload, rx_addr).unwrap();
    let mut small = [0u8; 8];
    let meta = recv_wait(&rx, &mut small);
    assert!(meta.truncated);
    assert_eq!(meta.len, small.len());
    assert_eq!(&small, &payload[..8]);
    assert_eq!(meta.from, tx_addr);
    assert!(meta.rx_time.is_some());
}

#[test]
fn udp_v4_timestamps() {
    roundtrip("127.0.0.1:0");
}

#[test]
fn udp_v6_timestamps() {
    roundtrip("[::1]:0");
}

/// The microsecond `SO_TIMESTAMP` fallback (enabled by hand here) is parsed too.
#[test]
fn udp_so_timestamp_microseconds() {
    use std::os::fd::AsRawFd;

    let (rx, tx) = udp_pair("127.0.0.1:0").unwrap();
    let one: libc::c_int = 1;
    // SAFETY: `rx` is a live socket; `one` is a valid `c_int` of the length passed, only read.
    let rc = unsafe {
        libc::setsockopt(
            rx.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMP,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "{}", io::Error::last_os_error());
    tx.send_to(b"usec", rx.local_addr().unwrap()).unwrap();
    let mut buf = [0u8; 16];
    let meta = recv_wait(&rx, &mut buf);
    let now = realtime();
    let rx_time = meta.rx_time.expect("SCM_TIMESTAMP");
    assert_eq!(rx_time.nanos % 1000, 0, "microsecond timestamp: {rx_time:?}");
    assert!(within(rx_time, now, 1_000_000_000), "{rx_time:?} vs {now:?}");
}

#[test]
fn udp_without_timestamps_has_no_rx_time() {
    let (rx, tx) = udp_pair("127.0.0.1:0").unwrap();
    tx.send_to(b"hello", rx.local_addr().unwrap()).unwrap();
    let mut buf = [0u8; 16];
    let meta = recv_wait(&rx, &mut buf);
    assert_eq!(&buf[..meta.len], b"hello");
    assert_eq!(meta.rx_time, None);
}

#[test]
fn udp_v4_mapped_source_stays_v6() {
    // A dual-stack [::] socket receiving from 127.0.0.1 sees ::ffff:127.0.0.1.
    let rx = match UdpSocket::bind("[::]:0") {
        Ok(s) => s,
        Err(e) => {
            eprintln!("skipping: cannot bind [::]: {e}");
            return;
        }
    };
    enable_rx_timestamps(rx.as_fd()).unwrap();
    let port = rx.local_addr().unwrap().port();
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    if tx.send_to(b"mapped", ("127.0.0.1", port)).is_err() {
        eprintln!("skipping: IPV6_V6ONLY socket");
        return;
    }
    let mut buf = [0u8; 16];
    let meta = recv_wait(&rx, &mut buf);
    match meta.from {
        SocketAddr::V6(v6) => {
            assert_eq!(v6.ip().to_ipv4_mapped(), Some(std::net::Ipv4Addr::LOCALHOST));
            assert_eq!(v6.port(), tx.local_addr().unwrap().port());
        }
        SocketAddr::V4(v4) => panic!("v4-mapped source converted to V4: {v4}"),
    }
    assert!(meta.rx_time.is_some());
}

#[test]
fn socket_calls_on_non_socket_fail() {
    let file = std::fs::File::open("/proc/self/status").unwrap();
    assert!(enable_rx_timestamps(file.as_fd()).is_err());
    let mut buf = [0u8; 8];
    assert!(recv_from_with_timestamp(file.as_fd(), &mut buf).is_err());
    assert!(peer_credentials(file.as_fd()).is_err());
}

#[test]
fn peer_credentials_of_socketpair_are_ours() {
    let (a, b) = UnixStream::pair().unwrap();
    let cred = peer_credentials(a.as_fd()).expect("SO_PEERCRED");
    assert_eq!(cred.pid, std::process::id() as i32);
    assert_eq!(cred.uid, geteuid());
    assert_eq!(peer_credentials(b.as_fd()).unwrap(), cred);
}

#[test]
fn geteuid_matches_proc() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    let euid: u32 = uid_line.split_whitespace().nth(2).unwrap().parse().unwrap();
    assert_eq!(geteuid(), euid);
}

#[test]
fn recv_batch_reads_a_burst_with_timestamps_and_sources() {
    use rntp_sys::{recv_batch, RecvBatch, BATCH_SLOT_LEN};
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    rx.set_nonblocking(true).unwrap();
    enable_rx_timestamps(rx.as_fd()).unwrap();
    let (a, b) = (UdpSocket::bind("127.0.0.1:0").unwrap(), UdpSocket::bind("127.0.0.1:0").unwrap());
    let mut batch = RecvBatch::new(8);
    assert_eq!(recv_batch(rx.as_fd(), &mut batch).unwrap_err().kind(), io::ErrorKind::WouldBlock);
    for i in 0..5u8 {
        let from = if i % 2 == 0 { &a } else { &b };
        from.send_to(&[i; 48], rx.local_addr().unwrap()).unwrap();
    }
    b.send_to(&vec![7u8; BATCH_SLOT_LEN + 10], rx.local_addr().unwrap()).unwrap();
    let mut got = Vec::new();
    for _ in 0..2000 {
        match recv_batch(rx.as_fd(), &mut batch) {
            Ok(n) => {
                for i in 0..n {
                    let (data, meta) = batch.get(i).unwrap();
                    got.push((data.to_vec(), meta));
                }
                if got.len() == 6 {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(1))
            }
            Err(e) => panic!("recv_batch: {e}"),
        }
    }
    assert_eq!(got.len(), 6);
    let now = realtime();
    for (i, (data, meta)) in got.iter().take(5).enumerate() {
        assert_eq!(data, &vec![i as u8; 48]);
        let want = if i % 2 == 0 { a.local_addr().unwrap() } else { b.local_addr().unwrap() };
        assert_eq!(meta.from, want);
        assert!(!meta.truncated);
        let ts = meta.rx_time.expect("kernel timestamp");
        assert!((now.secs - ts.secs).abs() <= 1);
    }
    assert!(got[5].1.truncated, "an oversized datagram is flagged");
    assert_eq!(got[5].0.len(), BATCH_SLOT_LEN);
    assert!(batch.get(99).is_none());
}
