//! Dropping root: switch to an unprivileged user and keep only the capabilities the daemon
//! still needs (`rntpd -u USER`, as `ntpd -u` and `chronyd -u` do).
//!
//! The sequence, run once by the daemon after its sockets are bound:
//! 1. `prctl(PR_SET_KEEPCAPS, 1)`, so the permitted capabilities survive the uid change;
//! 2. `setgroups(0, NULL)` (where refused with nothing to drop, as in a user namespace with
//!    setgroups denied, skipped), `setgid(gid)`, `setuid(uid)` (glibc applies each to every
//!    thread of the process);
//! 3. `capset`: effective = permitted = the capabilities asked for, inheritable = none (which
//!    also empties the ambient set), so the process can never regain any other;
//! 4. `prctl(PR_SET_KEEPCAPS, 0)`, then checks: the ids are the user's and `setuid(0)` fails.
//!
//! Capabilities belong to threads: the calling thread keeps the ones asked for, threads that
//! already exist keep none (their uid changed without the keep flag), and threads started
//! afterwards inherit the calling thread's. So call this from the thread that will change the
//! clock (the daemon's event loop), before it starts helper threads that need the capability.
//!
//! Without root (a euid other than 0) nothing is changed and [`PrivilegeError::NotRoot`] is
//! returned.

use std::ffi::{CStr, CString};
use std::io;

/// Linux capability number of `CAP_NET_BIND_SERVICE` (`<linux/capability.h>`).
const CAP_NET_BIND_SERVICE: u32 = 10;
/// Linux capability number of `CAP_SYS_TIME`.
const CAP_SYS_TIME: u32 = 25;
/// `_LINUX_CAPABILITY_VERSION_3`: 64-bit capability sets in two 32-bit words.
const CAPABILITY_VERSION_3: u32 = 0x2008_0522;
/// Largest `getpwnam_r` buffer tried (the lookup grows it on ERANGE).
const MAX_PASSWD_BUFFER: usize = 1 << 20;

/// A capability the daemon may keep after dropping root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Capability {
    /// `CAP_SYS_TIME`: change the system clock.
    SysTime,
    /// `CAP_NET_BIND_SERVICE`: bind ports below 1024.
    NetBindService,
}

impl Capability {
    pub(crate) fn number(self) -> u32 {
        match self {
            Capability::SysTime => CAP_SYS_TIME,
            Capability::NetBindService => CAP_NET_BIND_SERVICE,
        }
    }

    /// The name as capabilities(7) writes it.
    pub fn name(self) -> &'static str {
        match self {
            Capability::SysTime => "CAP_SYS_TIME",
            Capability::NetBindService => "CAP_NET_BIND_SERVICE",
        }
    }
}

/// A user account from the password database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The login name.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
}

/// Why dropping root failed. After any error but `NotRoot` the process may be half-way (some
/// ids changed): the daemon must exit.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PrivilegeError {
    /// The process is not running as root, so it has nothing to drop and cannot switch users.
    #[error("switching to user {user} needs root (running as uid {euid})")]
    NotRoot {
        /// The user asked for.
        user: String,
        /// This process's effective uid.
        euid: u32,
    },
    /// A system call failed.
    #[error("{call} failed: {source}")]
    Call {
        /// The call, e.g. `setuid(65534)`.
        call: String,
        /// The OS error.
        source: io::Error,
    },
    /// A capability asked for is not in the permitted set (e.g. removed from the bounding set
    /// by systemd's `CapabilityBoundingSet=` or `setpriv --bounding-set`).
    #[error("{} is not permitted to this process, so it cannot be kept", .0.name())]
    NotPermitted(Capability),
    /// After the switch root could be regained: the switch did not take.
    #[error("root privileges could be regained after switching to uid {0}; refusing to run")]
    StillPrivileged(u32),
}

/// Looks `name` up in the password database (`getpwnam_r`, so NSS sources such as LDAP work).
/// `Ok(None)`: no such user.
pub fn lookup_user(name: &str) -> io::Result<Option<User>> {
    let c_name = CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "user name contains a NUL"))?;
    let mut size = 1024usize;
    loop {
        let mut buf = vec![0u8; size];
        // SAFETY: all-zero bytes are a valid `passwd` (null pointers, zero ids); getpwnam_r
        // below only writes into it.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: `c_name` is a NUL-terminated string; `pwd`, `buf` (of `buf.len()` bytes) and
        // `result` are valid for writes for the duration of the call, and getpwnam_r stores in
        // `pwd` only pointers into `buf`, which we read before `buf` is dropped.
        let rc = unsafe {
            libc::getpwnam_r(
                c_name.as_ptr(),
                &mut pwd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE && size < MAX_PASSWD_BUFFER {
            size *= 4;
            continue;
        }
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        if result.is_null() {
            return Ok(None);
        }
        let user_name = if pwd.pw_name.is_null() {
            name.to_string()
        } else {
            // SAFETY: on success pw_name points to a NUL-terminated string inside `buf`, which
            // is still alive here.
            unsafe { CStr::from_ptr(pwd.pw_name) }.to_string_lossy().into_owned()
        };
        return Ok(Some(User { name: user_name, uid: pwd.pw_uid, gid: pwd.pw_gid }));
    }
}

/// Switches the process to `user` keeping only `keep` (see the module docs).
pub fn drop_privileges(user: &User, keep: &[Capability]) -> Result<(), PrivilegeError> {
    let euid = crate::geteuid();
    if euid != 0 {
        return Err(PrivilegeError::NotRoot { user: user.name.clone(), euid });
    }
    for cap in keep {
        if !crate::caps::has_capability_permitted(cap.number()) {
            return Err(PrivilegeError::NotPermitted(*cap));
        }
    }
    set_keepcaps(true)?;
    drop_supplementary_groups(user.gid)?;
    // SAFETY: setgid/setuid take plain integers and touch no memory of ours.
    check(&format!("setgid({})", user.gid), unsafe { libc::setgid(user.gid) })?;
    // SAFETY: as above.
    check(&format!("setuid({})", user.uid), unsafe { libc::setuid(user.uid) })?;
    set_capabilities(keep)?;
    set_keepcaps(false)?;
    // SAFETY: getuid/getgid take no arguments and always succeed.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    if uid != user.uid || crate::geteuid() != user.uid || gid != user.gid {
        return Err(PrivilegeError::StillPrivileged(uid));
    }
    if user.uid != 0 {
        // SAFETY: as above; expected to fail with EPERM.
        if unsafe { libc::setuid(0) } == 0 {
            return Err(PrivilegeError::StillPrivileged(user.uid));
        }
    }
    Ok(())
}

/// The real user id of this process (`getuid(2)`).
pub fn getuid() -> u32 {
    // SAFETY: getuid takes no arguments and always succeeds.
    unsafe { libc::getuid() }
}

/// `setgroups(0, NULL)`. Where that is refused although there is nothing to drop (a user
/// namespace with `/proc/self/setgroups` set to `deny`, whose only group is the target one),
/// there is nothing to do.
fn drop_supplementary_groups(gid: u32) -> Result<(), PrivilegeError> {
    // SAFETY: setgroups with a count of 0 reads no memory (the pointer may be null).
    let rc = unsafe { libc::setgroups(0, std::ptr::null()) };
    if rc == 0 {
        return Ok(());
    }
    let refused = io::Error::last_os_error();
    if refused.raw_os_error() == Some(libc::EPERM)
        && supplementary_groups()?.iter().all(|g| *g == gid)
    {
        return Ok(());
    }
    Err(PrivilegeError::Call { call: "setgroups(0)".into(), source: refused })
}

/// The supplementary groups of the calling thread (`getgroups(2)`).
fn supplementary_groups() -> Result<Vec<libc::gid_t>, PrivilegeError> {
    // SAFETY: a size of 0 asks only for the count; the pointer is not written.
    let n = unsafe { libc::getgroups(0, std::ptr::null_mut()) };
    let call_failed =
        || PrivilegeError::Call { call: "getgroups".into(), source: io::Error::last_os_error() };
    let len = usize::try_from(n).map_err(|_| call_failed())?;
    let mut groups = vec![0 as libc::gid_t; len];
    // SAFETY: `groups` has room for `n` entries, and getgroups writes at most that many.
    let got = unsafe { libc::getgroups(n, groups.as_mut_ptr()) };
    groups.truncate(usize::try_from(got).map_err(|_| call_failed())?);
    Ok(groups)
}

fn set_keepcaps(on: bool) -> Result<(), PrivilegeError> {
    let value = libc::c_ulong::from(on);
    // SAFETY: PR_SET_KEEPCAPS takes one integer argument; the unused ones are passed as 0.
    let rc = unsafe {
        libc::prctl(
            libc::PR_SET_KEEPCAPS,
            value,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    check(&format!("prctl(PR_SET_KEEPCAPS, {})", u8::from(on)), rc)
}

/// `struct __user_cap_header_struct` of `<linux/capability.h>`.
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

/// `struct __user_cap_data_struct`: one 32-bit word of each set.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

extern "C" {
    /// glibc's wrapper of capset(2) (declared in libcap's header, exported by glibc).
    fn capset(header: *mut CapHeader, data: *const CapData) -> libc::c_int;
}

fn set_capabilities(keep: &[Capability]) -> Result<(), PrivilegeError> {
    let mut data = [CapData::default(); 2];
    for cap in keep {
        let n = cap.number();
        let word = &mut data[(n / 32) as usize];
        word.effective |= 1 << (n % 32);
        word.permitted |= 1 << (n % 32);
    }
    let mut header = CapHeader { version: CAPABILITY_VERSION_3, pid: 0 };
    // SAFETY: `header` is a valid version-3 header for the calling thread (pid 0) and `data`
    // holds the two words version 3 reads; the kernel does not keep either pointer.
    let rc = unsafe { capset(&mut header, data.as_ptr()) };
    let names: Vec<&str> = keep.iter().map(|c| c.name()).collect();
    check(&format!("capset({})", names.join(" ")), rc)
}

fn check(call: &str, rc: libc::c_int) -> Result<(), PrivilegeError> {
    if rc == 0 {
        Ok(())
    } else {
        Err(PrivilegeError::Call { call: call.to_string(), source: io::Error::last_os_error() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_missing_users() {
        let root = lookup_user("root").unwrap().expect("root exists");
        assert_eq!((root.uid, root.gid), (0, 0));
        assert_eq!(lookup_user("no-such-user-rntpd-test").unwrap(), None);
        assert!(lookup_user("a\0b").is_err());
    }

    #[test]
    fn capability_words() {
        assert_eq!(Capability::SysTime.number(), 25);
        assert_eq!(Capability::NetBindService.name(), "CAP_NET_BIND_SERVICE");
    }
}
