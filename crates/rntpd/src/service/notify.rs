//! systemd's notification protocol (sd_notify(3)), written directly: one datagram of
//! `KEY=VALUE` lines to the Unix socket named by `NOTIFY_SOCKET` (a path, or an abstract
//! address written with a leading `@`). No libsystemd.
//!
//! rntpd sends `READY=1` once its sockets are bound (and root is dropped), `STATUS=` with its
//! synchronization state whenever that changes, `RELOADING=1` and `READY=1` around a reload,
//! `STOPPING=1` at shutdown, and `WATCHDOG=1` at half the unit's `WatchdogSec=` when systemd
//! asks for it (`WATCHDOG_USEC`).
//!
//! Without `NOTIFY_SOCKET` (not started by systemd, or `Type=simple`) nothing is sent.
//! Failures to send are logged at debug level and otherwise ignored: notification is a
//! courtesy to the service manager, never a reason to stop serving time.

use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::rc::Rc;
use std::time::Duration;

/// Where notifications go.
#[derive(Debug, Clone)]
pub struct Notifier {
    socket: Rc<UnixDatagram>,
    addr: Rc<SocketAddr>,
    /// Half the watchdog interval, when systemd wants pings.
    watchdog: Option<Duration>,
}

impl Notifier {
    /// The notifier `NOTIFY_SOCKET` asks for, if any.
    pub fn from_env() -> Option<Notifier> {
        let path = std::env::var_os("NOTIFY_SOCKET")?;
        let addr = match parse_addr(path.as_encoded_bytes()) {
            Ok(addr) => addr,
            Err(e) => {
                tracing::warn!(
                    socket = %path.to_string_lossy(),
                    "NOTIFY_SOCKET is not usable ({e}); systemd will not hear that rntpd is ready"
                );
                return None;
            }
        };
        // Non-blocking: a manager that does not read (a full socket buffer) must never stall the
        // event loop; such a notification is dropped.
        let socket = match UnixDatagram::unbound().and_then(|s| s.set_nonblocking(true).map(|()| s))
        {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot open a socket to notify systemd");
                return None;
            }
        };
        let watchdog = watchdog_interval(
            std::env::var("WATCHDOG_USEC").ok().as_deref(),
            std::env::var("WATCHDOG_PID").ok().as_deref(),
            std::process::id(),
        );
        Some(Notifier { socket: Rc::new(socket), addr: Rc::new(addr), watchdog })
    }

    /// Sends one notification (lines of `KEY=VALUE`).
    pub fn send(&self, message: &str) {
        if let Err(e) = self.socket.send_to_addr(message.as_bytes(), &self.addr) {
            tracing::debug!(error = %e, "cannot notify systemd");
        }
    }

    /// How often to send `WATCHDOG=1`, if systemd asked for it.
    pub fn watchdog(&self) -> Option<Duration> {
        self.watchdog
    }
}

/// `RELOADING=1` with the monotonic time systemd wants beside it.
pub fn reloading_message() -> String {
    format!("RELOADING=1\nMONOTONIC_USEC={}", rntp_sys::monotonic_nanos() / 1_000)
}

/// A `NOTIFY_SOCKET` value as a socket address.
fn parse_addr(bytes: &[u8]) -> io::Result<SocketAddr> {
    match bytes.split_first() {
        Some((b'@', name)) => abstract_addr(name),
        Some((b'/', _)) => {
            use std::os::unix::ffi::OsStrExt;
            SocketAddr::from_pathname(std::ffi::OsStr::from_bytes(bytes))
        }
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "expected an absolute path or an abstract address (@name)",
        )),
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn abstract_addr(name: &[u8]) -> io::Result<SocketAddr> {
    use std::os::linux::net::SocketAddrExt;
    SocketAddr::from_abstract_name(name)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn abstract_addr(_: &[u8]) -> io::Result<SocketAddr> {
    Err(io::Error::new(io::ErrorKind::Unsupported, "abstract sockets are Linux-only"))
}

/// Half of `WATCHDOG_USEC`, when the watchdog is meant for this process.
fn watchdog_interval(usec: Option<&str>, pid: Option<&str>, own: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|u| *u > 0)?;
    if let Some(pid) = pid {
        if pid.trim().parse::<u32>().ok()? != own {
            return None;
        }
    }
    Some(Duration::from_micros(usec / 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        let a = parse_addr(b"/run/systemd/notify").unwrap();
        assert_eq!(a.as_pathname(), Some(std::path::Path::new("/run/systemd/notify")));
        assert!(parse_addr(b"@/org/freedesktop/systemd1/notify/123").is_ok());
        assert!(parse_addr(b"relative").is_err());
        assert!(parse_addr(b"").is_err());
    }

    #[test]
    fn watchdog_is_half_the_interval_and_only_for_us() {
        assert_eq!(watchdog_interval(Some("60000000"), None, 7), Some(Duration::from_secs(30)));
        assert_eq!(
            watchdog_interval(Some("60000000"), Some("7"), 7),
            Some(Duration::from_secs(30))
        );
        assert_eq!(watchdog_interval(Some("60000000"), Some("8"), 7), None);
        assert_eq!(watchdog_interval(Some("0"), None, 7), None);
        assert_eq!(watchdog_interval(None, None, 7), None);
    }

    #[test]
    fn sends_a_datagram_and_never_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let server = UnixDatagram::bind(&path).unwrap();
        let socket = UnixDatagram::unbound().unwrap();
        socket.set_nonblocking(true).unwrap();
        let n = Notifier {
            socket: Rc::new(socket),
            addr: Rc::new(SocketAddr::from_pathname(&path).unwrap()),
            watchdog: None,
        };
        n.send("READY=1\nSTATUS=test");
        let mut buf = [0u8; 64];
        let len = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1\nSTATUS=test");
        // Nobody reads: the socket fills up and further sends are dropped, not waited for.
        let start = std::time::Instant::now();
        for _ in 0..10_000 {
            n.send("WATCHDOG=1");
        }
        assert!(start.elapsed() < Duration::from_secs(60), "a send blocked");
    }
}
