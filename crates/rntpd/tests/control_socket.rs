//! The control socket under misuse: a flood of idle connections from an ordinary user, a second
//! daemon on the same path, a path that is not a socket, a request over the frame limit.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::rntpd::Rntpd;
use support::{nocap, TestDir};

/// No time sources: these tests are about the socket.
const CONFIG: &str = "# control socket tests\n";

/// 1 000 idle connections from `nobody` (a member of nothing rntpd trusts) do not lock root
/// out: its `status` answers within 1 s, while they are all open.
#[test]
fn idle_connections_from_a_user_do_not_lock_out_root() {
    let dir = TestDir::new();
    let rntpd = Rntpd::start(dir.path(), CONFIG);
    // Let `nobody` reach the socket, as a group member would.
    for d in [dir.path(), rntpd.dir()] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::set_permissions(rntpd.socket(), std::fs::Permissions::from_mode(0o666)).unwrap();
    let script = format!(
        "import socket, sys, time\n\
         conns = []\n\
         for i in range(1000):\n\
         \x20   s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n\
         \x20   s.setblocking(False)\n\
         \x20   try:\n\
         \x20       s.connect({path:?})\n\
         \x20   except (BlockingIOError, ConnectionRefusedError, OSError):\n\
         \x20       pass\n\
         \x20   conns.append(s)\n\
         print('open', flush=True)\n\
         time.sleep(30)\n",
        path = rntpd.socket().display().to_string()
    );
    let mut flood = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--pdeathsig", "KILL", "--"])
        .args(["/usr/bin/python3", "-c", &script])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the flood as nobody");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(flood.stdout.take().expect("stdout")),
        &mut line,
    )
    .expect("flood reports");
    assert_eq!(line.trim(), "open", "the flood did not start");
    // Root asks several times while the connections are held (the first ones are being closed
    // by the daemon as they are accepted; later ones sit in the accept queue).
    let mut slowest = Duration::ZERO;
    for _ in 0..5 {
        let t = Instant::now();
        let status = rntpd.status_json();
        slowest = slowest.max(t.elapsed());
        assert_eq!(status["mode"], "observe");
    }
    // Stop the flood by pid.
    let _ = flood.kill();
    let _ = flood.wait();
    assert!(slowest < Duration::from_secs(1), "root waited {slowest:?} for `status`");
}

/// A second rntpd on the same control socket path exits at once with a clear message; the
/// first keeps answering.
#[test]
fn second_daemon_on_the_same_socket_refuses_to_start() {
    let dir = TestDir::new();
    let first = Rntpd::start(dir.path(), CONFIG);
    let conf = first.dir().join("ntp.conf");
    let out = nocap(env!("CARGO_BIN_EXE_rntpd"))
        .arg("-c")
        .arg(&conf)
        .arg("--observe")
        .arg("--control-socket")
        .arg(first.socket())
        .output()
        .expect("run a second rntpd");
    assert!(!out.status.success(), "the second rntpd started");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("another rntpd is running"), "{err}");
    assert!(first.socket().exists());
    assert_eq!(first.status_json()["mode"], "observe");
}

/// A regular file at the socket path is left intact and named in the error.
#[test]
fn a_file_at_the_socket_path_is_left_alone() {
    let dir = TestDir::new();
    let path = dir.path().join("not-a-socket");
    std::fs::write(&path, "precious\n").unwrap();
    let conf = dir.path().join("ntp.conf");
    std::fs::write(&conf, CONFIG).unwrap();
    let out = nocap(env!("CARGO_BIN_EXE_rntpd"))
        .arg("-c")
        .arg(&conf)
        .arg("--observe")
        .arg("--control-socket")
        .arg(&path)
        .output()
        .expect("run rntpd");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&path.display().to_string()) && err.contains("not a socket"), "{err}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious\n");
}

/// A request larger than a frame gets a clear error reply, and the daemon carries on.
#[test]
fn oversized_request_gets_an_error_reply() {
    let dir = TestDir::new();
    let rntpd = Rntpd::start(dir.path(), CONFIG);
    // (rntpctl cannot even be given such a name: one argument is at most 128 KiB.) A raw
    // client that announces a 2 MiB request is answered, not dropped.
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(rntpd.socket()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let len = (2u32 << 20).to_be_bytes();
    let _ = s.write_all(&len);
    let _ = s.write_all(&vec![b'x'; 64 << 10]);
    let mut header = [0u8; 4];
    s.read_exact(&mut header).expect("a reply frame");
    let mut body = vec![0u8; u32::from_be_bytes(header) as usize];
    s.read_exact(&mut body).unwrap();
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains("bad_request") && text.contains("exceeds the limit"), "{text}");
    assert_eq!(rntpd.status_json()["mode"], "observe");
}
