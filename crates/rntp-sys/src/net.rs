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

/// Largest datagram a [`RecvBatch`] slot holds; longer ones are flagged `truncated`.
pub const BATCH_SLOT_LEN: usize = 1024;

/// Storage for receiving up to `capacity` datagrams with one system call ([`recv_batch`]).
///
/// Allocated once and reused: a server reads bursts of requests without a system call (and an
/// `epoll_wait`) per request, as chronyd does with `recvmmsg`.
pub struct RecvBatch {
    bufs: Vec<[u8; BATCH_SLOT_LEN]>,
    #[cfg(any(target_os = "linux", target_os = "android"))]
    addrs: Vec<libc::sockaddr_storage>,
    controls: Vec<[u64; 32]>,
    metas: Vec<RecvMeta>,
    len: usize,
}

impl std::fmt::Debug for RecvBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvBatch")
            .field("capacity", &self.bufs.len())
            .field("len", &self.len)
            .finish()
    }
}

impl RecvBatch {
    /// Room for `capacity` datagrams (at least 1).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        RecvBatch {
            bufs: vec![[0u8; BATCH_SLOT_LEN]; capacity],
            // SAFETY: `sockaddr_storage` is a plain C struct for which all-zero is valid.
            #[cfg(any(target_os = "linux", target_os = "android"))]
            addrs: vec![unsafe { std::mem::zeroed() }; capacity],
            controls: vec![[0u64; 32]; capacity],
            metas: Vec::with_capacity(capacity),
            len: 0,
        }
    }

    /// Datagrams received by the last [`recv_batch`].
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the last [`recv_batch`] received nothing.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The `i`-th datagram of the last batch: its bytes (at most [`BATCH_SLOT_LEN`]) and
    /// metadata.
    pub fn get(&self, i: usize) -> Option<(&[u8], RecvMeta)> {
        let meta = *self.metas.get(i)?;
        let buf = self.bufs.get(i)?.get(..meta.len)?;
        Some((buf, meta))
    }
}

/// Receives as many queued datagrams as fit in `batch` with one `recvmmsg`, without blocking
/// (WouldBlock when none is queued). Each gets its kernel receive timestamp when enabled with
/// [`enable_rx_timestamps`]. Returns the number received.
pub fn recv_batch(fd: BorrowedFd<'_>, batch: &mut RecvBatch) -> io::Result<usize> {
    imp::recv_batch(fd, batch)
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
    pub(super) fn recv_batch(
        fd: BorrowedFd<'_>,
        batch: &mut super::RecvBatch,
    ) -> io::Result<usize> {
        let cap = batch.bufs.len();
        batch.len = 0;
        batch.metas.clear();
        let mut iovs: Vec<libc::iovec> = batch
            .bufs
            .iter_mut()
            .map(|b| libc::iovec { iov_base: b.as_mut_ptr().cast(), iov_len: b.len() })
            .collect();
        let mut msgs: Vec<libc::mmsghdr> = Vec::with_capacity(cap);
        for ((addr, iov), control) in
            batch.addrs.iter_mut().zip(iovs.iter_mut()).zip(batch.controls.iter_mut())
        {
            // SAFETY: `msghdr`/`mmsghdr` are plain C structs for which all-zero is valid (null
            // pointers and zero lengths); every pointer is set below before use.
            let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
            m.msg_hdr.msg_name = (addr as *mut libc::sockaddr_storage).cast();
            m.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            m.msg_hdr.msg_iov = iov;
            m.msg_hdr.msg_iovlen = 1;
            m.msg_hdr.msg_control = control.as_mut_ptr().cast();
            m.msg_hdr.msg_controllen = (CONTROL_WORDS * size_of::<u64>()) as _;
            msgs.push(m);
        }
        let n = loop {
            // SAFETY: `msgs` holds `cap` initialised headers whose name, iovec and control
            // pointers point into `batch`'s buffers and `iovs`, all of which outlive the call
            // and are not otherwise accessed during it; the kernel writes at most the lengths
            // given. MSG_DONTWAIT makes the call non-blocking; the timeout pointer may be null.
            let rc = unsafe {
                libc::recvmmsg(
                    fd.as_raw_fd(),
                    msgs.as_mut_ptr(),
                    cap as libc::c_uint,
                    libc::MSG_DONTWAIT as _,
                    ptr::null_mut(),
                )
            };
            if rc >= 0 {
                break rc as usize;
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        };
        for (i, m) in msgs.iter().enumerate().take(n) {
            let Ok(from) = sockaddr_to_std(&batch.addrs[i], m.msg_hdr.msg_namelen) else {
                // A non-IP source cannot happen on a UDP/IP socket; report it as empty.
                batch.metas.push(super::RecvMeta {
                    len: 0,
                    from: SocketAddr::from(([0, 0, 0, 0], 0)),
                    rx_time: None,
                    truncated: true,
                });
                continue;
            };
            batch.metas.push(super::RecvMeta {
                len: (m.msg_len as usize).min(super::BATCH_SLOT_LEN),
                from,
                rx_time: timestamp_from_control(&m.msg_hdr),
                truncated: m.msg_hdr.msg_flags & libc::MSG_TRUNC != 0,
            });
        }
        batch.len = n;
        Ok(n)
    }

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

    pub(super) fn recv_batch(
        _fd: BorrowedFd<'_>,
        _batch: &mut super::RecvBatch,
    ) -> io::Result<usize> {
        Err(unsupported())
    }
}
