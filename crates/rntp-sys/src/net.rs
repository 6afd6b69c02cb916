//! Kernel receive timestamps on UDP sockets: `SO_TIMESTAMPNS`/`SO_TIMESTAMP` and `recvmsg`.

use std::io;
use std::net::SocketAddr;
use std::os::fd::BorrowedFd;

use crate::WallTime;

/// What [`recv_from_with_timestamp`] received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecvMeta {
    /// Number of bytes written to the start of the caller's buffer (at most its length).
    pub len: usize,
    /// Source address of the datagram. IPv4-mapped IPv6 sources (on dual-stack sockets) are
    /// kept as [`SocketAddr::V6`] exactly as the kernel reported them.
    pub from: SocketAddr,
    /// Kernel receive timestamp (`CLOCK_REALTIME` when the packet reached the socket layer),
    /// if timestamps were enabled with [`enable_rx_timestamps`] and the kernel supplied one.
    /// When `None`, the daemon must take a userspace timestamp ([`crate::realtime`]) itself,
    /// as early as possible after the call returns.
    pub rx_time: Option<WallTime>,
    /// `true` if the datagram was longer than the buffer (`MSG_TRUNC`); the excess bytes were
    /// discarded by the kernel. NTP callers should drop such packets.
    pub truncated: bool,
}

/// Asks the kernel to attach a receive timestamp to every datagram queued on the UDP socket
/// `fd`.
///
/// Tries `SO_TIMESTAMPNS` (nanosecond `timespec`) first and falls back to `SO_TIMESTAMP`
/// (microsecond `timeval`) if the kernel, or a libc interposer, rejects it. Either way the
/// timestamps are read by [`recv_from_with_timestamp`].
///
/// # Errors
///
/// The `setsockopt` error of the `SO_TIMESTAMP` fallback (e.g. `ENOTSOCK`), or
/// [`io::ErrorKind::Unsupported`] on non-Linux systems.
pub fn enable_rx_timestamps(fd: BorrowedFd<'_>) -> io::Result<()> {
    imp::enable_rx_timestamps(fd)
}

/// Receives one datagram from the UDP socket `fd` without blocking, together with its source
/// address and kernel receive timestamp.
///
/// Uses `recvmsg` with `MSG_DONTWAIT`, so it is safe to call from tokio's
/// `UdpSocket::try_io(Interest::READABLE, ..)` (and also works on blocking sockets, where it
/// still does not block). Interrupted calls (`EINTR`) are retried.
///
/// The timestamp is taken from an `SCM_TIMESTAMPNS` or `SCM_TIMESTAMP` control message;
/// [`RecvMeta::rx_time`] is `None` if there is none (timestamps not enabled, or not supported
/// by the kernel or a simulator), in which case the **caller must timestamp the packet in
/// userspace** with [`crate::realtime`].
///
/// # Errors
///
/// * [`io::ErrorKind::WouldBlock`] if no datagram is pending (`EAGAIN`/`EWOULDBLOCK`).
/// * Any other `recvmsg` error from `errno` (e.g. `ECONNREFUSED` after an ICMP error on a
///   connected socket).
/// * [`io::ErrorKind::InvalidData`] if the source address is not IPv4/IPv6 (not a UDP/IP
///   socket).
/// * [`io::ErrorKind::Unsupported`] on non-Linux systems.
pub fn recv_from_with_timestamp(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<RecvMeta> {
    imp::recv_from_with_timestamp(fd, buf)
}

#[cfg(any(target_os = "linux", target_os = "android"))]
mod imp {
    use std::io;
    use std::mem::{size_of, MaybeUninit};
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
    use std::os::fd::{AsRawFd, BorrowedFd};
    use std::ptr;

    use super::RecvMeta;
    use crate::WallTime;

    /// Control buffer size in `u64` words (256 bytes): room for a timestamp plus any other
    /// control messages the daemon might enable later (e.g. `IP_PKTINFO`).
    const CONTROL_WORDS: usize = 32;

    fn set_int_option(fd: BorrowedFd<'_>, level: libc::c_int, name: libc::c_int) -> io::Result<()> {
        let one: libc::c_int = 1;
        // SAFETY: `fd` is a live descriptor for the duration of the borrow; `one` is a valid
        // `c_int` and the passed length is its exact size; the kernel only reads it.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                level,
                name,
                (&one as *const libc::c_int).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    pub(super) fn enable_rx_timestamps(fd: BorrowedFd<'_>) -> io::Result<()> {
        match set_int_option(fd, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS) {
            Ok(()) => Ok(()),
            // Not a socket / bad fd: the fallback would fail the same way; report it as is.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTSOCK) | Some(libc::EBADF)) => {
                Err(e)
            }
            Err(_) => set_int_option(fd, libc::SOL_SOCKET, libc::SO_TIMESTAMP),
        }
    }

    pub(super) fn recv_from_with_timestamp(
        fd: BorrowedFd<'_>,
        buf: &mut [u8],
    ) -> io::Result<RecvMeta> {
        let mut addr = MaybeUninit::<libc::sockaddr_storage>::zeroed();
        let mut control = [0u64; CONTROL_WORDS];
        let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
        // SAFETY: `msghdr` is a plain C struct (pointers, integers, private padding) for which
        // all-zero is a valid value (null pointers, zero lengths).
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = addr.as_mut_ptr().cast();
        msg.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = (CONTROL_WORDS * size_of::<u64>()) as _;

        let n = loop {
            // SAFETY: `fd` is live for the borrow. `msg` points at `addr` (a writable
            // `sockaddr_storage` whose size is in `msg_namelen`), at one `iovec` describing
            // the caller's exclusively borrowed `buf` (exact pointer and length), and at
            // `control` (writable, `msg_controllen` bytes, aligned for `cmsghdr`). All of
            // them outlive the call, and the kernel does not retain any pointer.
            let rc = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT) };
            if rc >= 0 {
                break rc as usize;
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        };

        // SAFETY: `addr` was zero-initialised, and the kernel wrote at most
        // `size_of::<sockaddr_storage>()` bytes into it, so it holds a valid value.
        let addr = unsafe { addr.assume_init() };
        let from = sockaddr_to_std(&addr, msg.msg_namelen)?;
        let rx_time = timestamp_from_control(&msg);
        Ok(RecvMeta {
            len: n.min(buf.len()),
            from,
            rx_time,
            truncated: msg.msg_flags & libc::MSG_TRUNC != 0,
        })
    }

    /// Converts a kernel-filled socket address to a std address (IPv4-mapped IPv6 kept V6).
    fn sockaddr_to_std(
        storage: &libc::sockaddr_storage,
        len: libc::socklen_t,
    ) -> io::Result<SocketAddr> {
        let len = len as usize;
        match libc::c_int::from(storage.ss_family) {
            libc::AF_INET if len >= size_of::<libc::sockaddr_in>() => {
                // SAFETY: `sockaddr_storage` is at least as large and as aligned as
                // `sockaddr_in`, is fully initialised, and the kernel marked it `AF_INET`
                // with a long-enough length, so it holds a `sockaddr_in`.
                let sin = unsafe {
                    &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>()
                };
                let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                Ok(SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be(sin.sin_port))))
            }
            libc::AF_INET6 if len >= size_of::<libc::sockaddr_in6>() => {
                // SAFETY: as above, for `sockaddr_in6` and `AF_INET6`.
                let sin6 = unsafe {
                    &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
                };
                let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                Ok(SocketAddr::V6(SocketAddrV6::new(
                    ip,
                    u16::from_be(sin6.sin6_port),
                    sin6.sin6_flowinfo,
                    sin6.sin6_scope_id,
                )))
            }
            family => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("recvmsg returned a non-IP source address (family {family}, length {len})"),
            )),
        }
    }

    /// Finds the first `SCM_TIMESTAMPNS`/`SCM_TIMESTAMP` control message, if any.
    fn timestamp_from_control(msg: &libc::msghdr) -> Option<WallTime> {
        let header_len = cmsg_len(0);
        // SAFETY: `msg` was filled by a successful `recvmsg`: `msg_control` points at our
        // control buffer and `msg_controllen` is the number of valid bytes in it, which is
        // exactly what `CMSG_FIRSTHDR` expects.
        let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(msg) };
        while !cmsg.is_null() {
            // SAFETY: `CMSG_FIRSTHDR`/`CMSG_NXTHDR` only return non-null pointers to a whole
            // `cmsghdr` inside the `msg_controllen` valid bytes of our buffer, which is
            // aligned for `cmsghdr`.
            let hdr = unsafe { &*cmsg };
            let total = hdr.cmsg_len as usize;
            if total < header_len {
                break; // Malformed; the kernel never produces this.
            }
            let data_len = total - header_len;
            // SAFETY: `cmsg` is a valid header (see above); `CMSG_DATA` is pointer arithmetic
            // to its payload.
            let data = unsafe { libc::CMSG_DATA(cmsg) };
            if hdr.cmsg_level == libc::SOL_SOCKET {
                if hdr.cmsg_type == libc::SCM_TIMESTAMPNS && data_len >= size_of::<libc::timespec>()
                {
                    // SAFETY: the kernel wrote `data_len >= size_of::<timespec>()` bytes of
                    // payload at `data`, inside our buffer; `read_unaligned` needs no
                    // alignment.
                    let ts = unsafe { ptr::read_unaligned(data.cast::<libc::timespec>()) };
                    return Some(WallTime::from_timespec(&ts));
                }
                if hdr.cmsg_type == libc::SCM_TIMESTAMP && data_len >= size_of::<libc::timeval>() {
                    // SAFETY: as above, for a `timeval` payload.
                    let tv = unsafe { ptr::read_unaligned(data.cast::<libc::timeval>()) };
                    return Some(WallTime::from_timeval(&tv));
                }
            }
            // SAFETY: `msg` describes our control buffer (see above) and `cmsg` is a valid
            // header within it; `CMSG_NXTHDR` returns null when there is no further header.
            cmsg = unsafe { libc::CMSG_NXTHDR(msg, cmsg) };
        }
        None
    }

    /// `CMSG_LEN(len)` as `usize`.
    fn cmsg_len(len: u32) -> usize {
        // SAFETY: `CMSG_LEN` is pure arithmetic on its argument; it is `unsafe` in libc only
        // for uniformity with the other CMSG macros.
        unsafe { libc::CMSG_LEN(len) as usize }
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
mod imp {
    use std::io;
    use std::os::fd::BorrowedFd;

    use super::RecvMeta;

    fn unsupported() -> io::Error {
        io::Error::new(
            io::ErrorKind::Unsupported,
            "kernel receive timestamps are only supported on Linux",
        )
    }

    pub(super) fn enable_rx_timestamps(_fd: BorrowedFd<'_>) -> io::Result<()> {
        Err(unsupported())
    }

    pub(super) fn recv_from_with_timestamp(
        _fd: BorrowedFd<'_>,
        _buf: &mut [u8],
    ) -> io::Result<RecvMeta> {
        Err(unsupported())
    }
}
