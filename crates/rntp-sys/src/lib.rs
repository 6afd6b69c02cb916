//! `rntp-sys`: the operating-system boundary of rntpd, and the only crate of the
//! workspace that contains `unsafe` code.
//!
//! # What it does
//!
//! It wraps a small set of libc calls behind a safe API:
//!
//! * **Clock reads** ([`realtime`], [`monotonic_nanos`], [`clock_precision_log2`]) via
//!   `clock_gettime`/`clock_getres`.
//! * **Read-only kernel clock discipline state** ([`kernel_clock_state`]) via `adjtimex` with
//!   `modes = 0`, for `rntpctl status` and for tests that prove the clock was left alone.
//! * **Privilege queries** ([`has_cap_sys_time`], [`has_capability`], [`geteuid`],
//!   [`peer_credentials`]) and **dropping root** ([`lookup_user`], [`drop_privileges`]:
//!   `setgroups`/`setgid`/`setuid` keeping only the capabilities asked for).
//! * **A `CLOCK_BOOTTIME` timer as a file descriptor** ([`TimerFd`], `timerfd_create`), so the
//!   daemon's event loop wakes exactly once at its next deadline.
//! * **UDP receive timestamps** ([`enable_rx_timestamps`], [`recv_from_with_timestamp`]):
//!   kernel `SO_TIMESTAMPNS` (or `SO_TIMESTAMP`) timestamps read with `recvmsg`.
//!
//! Every call goes through libc (never a raw `syscall()`), so the daemon also runs under
//! clock and network simulators that interpose libc symbols.
//!
//! # What it deliberately does not do
//!
//! * It changes the clock **only** through [`KernelClock`] (module `control`), which can be
//!   created only by a process holding CAP_SYS_TIME and which the daemon creates only when
//!   started without `--observe`. Every other function is read-only, except
//!   [`drop_privileges`], which only ever gives privileges up.
//! * It does no policy, no NTP protocol logic and no async I/O: the daemon (`rntpd`) drives the
//!   socket functions from tokio (`UdpSocket::try_io`), and maps [`monotonic_nanos`] onto
//!   `rntp_proto::time::Instant` itself.
//! * It does not set file modes (use `std::fs::set_permissions`) or open sockets (use std or
//!   tokio); it only works on file descriptors it is lent.
//!
//! # Platforms
//!
//! Linux is the supported target. On other Unix systems the clock reads and [`geteuid`] work,
//! while [`kernel_clock_state`], [`enable_rx_timestamps`], [`recv_from_with_timestamp`] and
//! [`peer_credentials`] return an [`std::io::ErrorKind::Unsupported`] error and
//! [`has_cap_sys_time`] returns `false`.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

#[cfg(not(unix))]
compile_error!("rntp-sys supports Unix targets only (Linux is the primary target)");

mod caps;
mod clock;
mod control;
mod net;
mod privilege;
mod timer;

pub use caps::{geteuid, has_cap_sys_time, has_capability, peer_credentials, PeerCred};
pub use clock::{
    boottime_nanos, clock_precision_log2, kernel_clock_state, monotonic_nanos, realtime,
    KernelClockState, KernelTimeState, WallTime,
};
pub use control::{ClockControlError, KernelClock, KernelLeap, MAX_FREQ_PPM, TICK_USEC_RANGE};
pub use net::{
    enable_rx_timestamps, recv_batch, recv_from_with_timestamp, RecvBatch, RecvMeta, BATCH_SLOT_LEN,
};
pub use privilege::{drop_privileges, getuid, lookup_user, Capability, PrivilegeError, User};
pub use timer::TimerFd;
