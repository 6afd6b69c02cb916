//! A one-shot timer on `CLOCK_BOOTTIME` as a file descriptor (`timerfd_create(2)`), for an
//! event loop that sleeps until one absolute deadline.
//!
//! Why not the async runtime's own timer: tokio's timer wheel files a 64 s sleep in a coarse
//! slot and cascades it through finer levels as it nears, so each long sleep costs several
//! wakeups (measured: about 3 per poll interval for rntpd at 64 s). A timerfd armed with the
//! absolute deadline wakes the process exactly once, at the deadline, to the nanosecond the
//! kernel can. `CLOCK_BOOTTIME` keeps counting through a suspend, so a deadline set before a
//! suspend fires as soon as the machine resumes past it, like the daemon's own clock.
//!
//! The descriptor is non-blocking and close-on-exec; the caller registers it with its poller
//! (tokio's `AsyncFd`) and calls [`TimerFd::expirations`] when it is readable.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// A one-shot `CLOCK_BOOTTIME` timer. See the module docs.
#[derive(Debug)]
pub struct TimerFd {
    fd: OwnedFd,
}

impl TimerFd {
    /// A disarmed timer.
    pub fn new() -> io::Result<TimerFd> {
        imp::create().map(|fd| TimerFd { fd })
    }

    /// Arms the timer to expire once when `CLOCK_BOOTTIME` reaches `boottime_nanos` (the value
    /// [`crate::boottime_nanos`] returns); a deadline already passed expires at once. Replaces
    /// any earlier deadline.
    pub fn set_deadline(&self, boottime_nanos: u64) -> io::Result<()> {
        // An all-zero it_value would disarm the timer: the earliest real deadline is 1 ns.
        imp::settime(&self.fd, boottime_nanos.max(1))
    }

    /// Disarms the timer.
    pub fn disarm(&self) -> io::Result<()> {
        imp::settime(&self.fd, 0)
    }

    /// How many times the timer expired since the last call (1 for a one-shot timer), or an
    /// [`io::ErrorKind::WouldBlock`] error when it has not expired.
    pub fn expirations(&self) -> io::Result<u64> {
        imp::read(&self.fd)
    }
}

impl AsFd for TimerFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for TimerFd {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(target_os = "linux")]
mod imp {
    use super::*;

    pub(super) fn create() -> io::Result<OwnedFd> {
        // SAFETY: plain system call with constant arguments; it returns a new descriptor or -1.
        let fd = unsafe {
            libc::timerfd_create(libc::CLOCK_BOOTTIME, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC)
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by timerfd_create and is owned by nobody else.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    pub(super) fn settime(fd: &OwnedFd, nanos: u64) -> io::Result<()> {
        let value = libc::timespec {
            tv_sec: (nanos / 1_000_000_000) as libc::time_t,
            tv_nsec: (nanos % 1_000_000_000) as libc::c_long,
        };
        let spec = libc::itimerspec {
            it_interval: libc::timespec { tv_sec: 0, tv_nsec: 0 },
            it_value: value,
        };
        // SAFETY: `fd` is a valid timerfd for the duration of the call; `spec` is a valid
        // itimerspec read by the kernel; the old value pointer may be null.
        let rc = unsafe {
            libc::timerfd_settime(
                fd.as_raw_fd(),
                libc::TFD_TIMER_ABSTIME,
                &spec,
                std::ptr::null_mut(),
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    pub(super) fn read(fd: &OwnedFd) -> io::Result<u64> {
        let mut buf = [0u8; 8];
        // SAFETY: `buf` is valid and writable for 8 bytes, the size the kernel writes.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n != 8 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "short timerfd read"));
        }
        Ok(u64::from_ne_bytes(buf))
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use super::*;

    fn unsupported<T>() -> io::Result<T> {
        Err(io::Error::new(io::ErrorKind::Unsupported, "timerfd is Linux-only"))
    }

    pub(super) fn create() -> io::Result<OwnedFd> {
        unsupported()
    }

    pub(super) fn settime(_: &OwnedFd, _: u64) -> io::Result<()> {
        unsupported()
    }

    pub(super) fn read(_: &OwnedFd) -> io::Result<u64> {
        unsupported()
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// Waits (bounded) until the descriptor is readable, with poll(2).
    fn wait_readable(t: &TimerFd, timeout_ms: i32) -> bool {
        let mut pfd = libc::pollfd { fd: t.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd for the duration of the call.
        let n = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        n == 1 && pfd.revents & libc::POLLIN != 0
    }

    #[test]
    fn fires_once_at_an_absolute_deadline_and_can_be_disarmed() {
        let t = TimerFd::new().expect("timerfd");
        assert_eq!(t.expirations().unwrap_err().kind(), io::ErrorKind::WouldBlock);
        // A deadline in the past expires at once.
        t.set_deadline(crate::boottime_nanos().saturating_sub(1_000)).unwrap();
        assert!(wait_readable(&t, 5_000), "did not fire");
        assert_eq!(t.expirations().unwrap(), 1);
        assert_eq!(t.expirations().unwrap_err().kind(), io::ErrorKind::WouldBlock, "one-shot");
        // A deadline a little ahead fires no earlier than it.
        let deadline = crate::boottime_nanos() + 20_000_000;
        t.set_deadline(deadline).unwrap();
        assert!(wait_readable(&t, 5_000), "did not fire");
        assert!(crate::boottime_nanos() >= deadline);
        assert_eq!(t.expirations().unwrap(), 1);
        // Disarmed: a far deadline replaced by nothing never fires.
        t.set_deadline(crate::boottime_nanos() + 1_000_000).unwrap();
        t.disarm().unwrap();
        assert!(!wait_readable(&t, 30));
    }
}
