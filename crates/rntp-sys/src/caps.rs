//! Privilege and peer-identity queries: effective capabilities, euid, `SO_PEERCRED`.

use std::io;
use std::os::fd::BorrowedFd;

/// Linux capability number of `CAP_SYS_TIME` (`<linux/capability.h>`).
#[cfg(test)]
const CAP_SYS_TIME: u32 = 25;

/// Returns whether this process has `CAP_SYS_TIME` in its **effective** capability set, i.e.
/// whether it would be allowed to step or slew the system clock.
///
/// Implemented by parsing the `CapEff:` line of `/proc/self/status` (no `unsafe`, no
/// `capget`). Capabilities are per thread on Linux and that file shows the main thread's
/// set; rntpd does not change capabilities per thread, so this is the process's answer.
///
/// Returns `false` if `/proc` is unavailable or unparsable, and on non-Linux systems.
pub fn has_cap_sys_time() -> bool {
    has_capability(crate::Capability::SysTime)
}

/// Whether this process has `cap` in its **effective** set (as [`has_cap_sys_time`] does).
pub fn has_capability(cap: crate::Capability) -> bool {
    cap_in_status("CapEff:", cap.number())
}

/// Whether capability number `cap` is in this process's **permitted** set.
pub(crate) fn has_capability_permitted(cap: u32) -> bool {
    cap_in_status("CapPrm:", cap)
}

fn cap_in_status(field: &str, cap: u32) -> bool {
    if !cfg!(target_os = "linux") {
        return false;
    }
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| cap_from_status(&status, field, cap))
        .unwrap_or(false)
}

/// Looks up capability bit `cap` in the `CapEff:` line of a `/proc/<pid>/status` text.
/// `None` if the line is missing or malformed.
#[cfg(test)]
fn effective_cap_from_status(status: &str, cap: u32) -> Option<bool> {
    cap_from_status(status, "CapEff:", cap)
}

/// Looks up capability bit `cap` in the `field` line (`CapEff:`, `CapPrm:`) of a
/// `/proc/<pid>/status` text. `None` if the line is missing or malformed.
fn cap_from_status(status: &str, field: &str, cap: u32) -> Option<bool> {
    let hex = status.lines().find_map(|line| line.strip_prefix(field))?.trim();
    let bits = u64::from_str_radix(hex, 16).ok()?;
    Some(cap < 64 && bits & (1u64 << cap) != 0)
}

/// Returns the effective user id of this process (`geteuid(2)`).
pub fn geteuid() -> u32 {
    // SAFETY: `geteuid` takes no arguments, touches no memory of ours and always succeeds.
    unsafe { libc::geteuid() }
}

/// Credentials of the process at the other end of a Unix-domain socket, as recorded by the
/// kernel when the connection was made (`SO_PEERCRED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PeerCred {
    /// Process id of the peer (0 if the peer is in a different pid namespace).
    pub pid: i32,
    /// Effective user id of the peer at `connect`/`socketpair` time.
    pub uid: u32,
    /// Effective group id of the peer at `connect`/`socketpair` time.
    pub gid: u32,
}

/// Reads the peer credentials of a connected Unix-domain stream socket via
/// `getsockopt(SOL_SOCKET, SO_PEERCRED)`.
///
/// The control socket uses this to decide whether a client may issue mutating commands (e.g.
/// only root or the daemon's own uid) or only read-only ones.
///
/// # Errors
///
/// The `getsockopt` error (e.g. `ENOTSOCK`, or `ENOTCONN` on an unconnected socket), or
/// [`io::ErrorKind::Unsupported`] on systems without `SO_PEERCRED`.
pub fn peer_credentials(fd: BorrowedFd<'_>) -> io::Result<PeerCred> {
    imp_peer_credentials(fd)
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn imp_peer_credentials(fd: BorrowedFd<'_>) -> io::Result<PeerCred> {
    use std::os::fd::AsRawFd;

    let mut cred = libc::ucred { pid: 0, uid: 0, gid: 0 };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `fd` is a live descriptor for the duration of the borrow; `cred` and `len` are
    // valid, writable and correctly sized for `SO_PEERCRED`, and the kernel writes at most
    // `len` bytes into `cred` without retaining either pointer.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    if len as usize != std::mem::size_of::<libc::ucred>() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("SO_PEERCRED returned {len} bytes, expected a struct ucred"),
        ));
    }
    Ok(PeerCred { pid: cred.pid, uid: cred.uid, gid: cred.gid })
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn imp_peer_credentials(_fd: BorrowedFd<'_>) -> io::Result<PeerCred> {
    Err(io::Error::new(io::ErrorKind::Unsupported, "SO_PEERCRED is only supported on Linux"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "Name:\tcat\nUmask:\t0022\nCapInh:\t0000000000000000\n\
        CapPrm:\t000001fffeffffff\nCapEff:\t000001fffeffffff\nCapBnd:\t000001fffeffffff\n";

    #[test]
    fn parses_cap_eff() {
        assert_eq!(effective_cap_from_status(SAMPLE, CAP_SYS_TIME), Some(true));
        // Bit 24 (CAP_SYS_RESOURCE) is clear in the sample.
        assert_eq!(effective_cap_from_status(SAMPLE, 24), Some(false));
        let without = SAMPLE.replace("CapEff:\t000001fffeffffff", "CapEff:\t000001fffdffffff");
        assert_eq!(effective_cap_from_status(&without, CAP_SYS_TIME), Some(false));
        assert_eq!(effective_cap_from_status("CapEff:\t0000000000000000\n", 25), Some(false));
    }

    #[test]
    fn malformed_status_is_none() {
        assert_eq!(effective_cap_from_status("Name:\tx\n", CAP_SYS_TIME), None);
        assert_eq!(effective_cap_from_status("CapEff:\tzz\n", CAP_SYS_TIME), None);
        assert_eq!(effective_cap_from_status("CapEff:\t1\n", 64), Some(false));
    }
}
