//! Server mode: UDP sockets on the `interface listen` addresses, feeding every datagram to the
//! sans-IO [`Responder`].
//!
//! The loop per socket: wait until readable, read a burst of up to [`BATCH`] requests with one
//! `recvmmsg` (each with the kernel's receive timestamp), let the responder decide, patch the
//! transmit timestamp as late as possible (immediately before `sendto`), send without
//! blocking. After each burst the task yields, so a flood cannot delay the associations' timers
//! on the same event loop by more than one burst.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex};

use rntp_config::{Config, RestrictTarget};
use rntp_control::ServerCountersInfo;
use rntp_proto::discipline::VirtualClock;
use rntp_proto::server::{
    finish_reply, RateLimit, Responder, RestrictFlags, RestrictRule, ServerAction, ServerConfig,
    SystemState,
};
use rntp_proto::time::NtpDuration;
use rntp_sys::{RecvBatch, BATCH_SLOT_LEN};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::watch;

use crate::clock::{wall_to_ntp, Clock};

/// Requests read per system call, and handled before yielding to other tasks.
const BATCH: usize = 32;
/// Socket receive buffer asked for (see `bind`).
const RECV_BUFFER_BYTES: usize = 4 << 20;

/// The responder shared by all server sockets (one rate-limit table for all addresses).
pub type SharedResponder = Arc<Mutex<Responder>>;

/// Translates the configuration's `restrict` and `discard` lines.
pub fn server_config(config: &Config) -> ServerConfig {
    let mut server = ServerConfig {
        rate: RateLimit {
            average_log2: config.discard.average_log2,
            minimum_secs: config.discard.minimum_secs,
            ..RateLimit::default()
        },
        ..ServerConfig::default()
    };
    for r in &config.restrict {
        let f = &r.flags;
        let mut flags = RestrictFlags::NONE;
        for (on, flag) in [
            (f.ignore, RestrictFlags::IGNORE),
            (f.noserve, RestrictFlags::NOSERVE),
            (f.noquery, RestrictFlags::NOQUERY),
            (f.kod, RestrictFlags::KOD),
            (f.limited, RestrictFlags::LIMITED),
        ] {
            if on {
                flags = flags.union(flag);
            }
        }
        match r.target {
            RestrictTarget::Default => server.default_flags = flags,
            // A /0 rule is less specific than any other, so it acts as the family's default.
            RestrictTarget::DefaultV4 => {
                server.restrict.push(RestrictRule::prefix(IpAddr::from([0u8; 4]), 0, flags))
            }
            RestrictTarget::DefaultV6 => {
                server.restrict.push(RestrictRule::prefix(IpAddr::from([0u8; 16]), 0, flags))
            }
            RestrictTarget::Net { addr, prefix_len } => {
                server.restrict.push(RestrictRule::prefix(addr, prefix_len, flags));
            }
        }
    }
    server
}

/// Binds one server socket with kernel receive timestamps. An IPv6 socket is IPv6-only, so
/// `interface listen all` can bind `0.0.0.0` and `::` on the same port side by side.
pub fn bind(addr: SocketAddr) -> io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    // The default receive buffer holds a few hundred requests, a few milliseconds at full load:
    // one scheduling hiccup of the event loop and the kernel drops requests. 4 MiB rides out
    // ~100 ms at 100k requests/s. The kernel caps it at net.core.rmem_max (no error if smaller).
    if let Err(e) = socket.set_recv_buffer_size(RECV_BUFFER_BYTES) {
        tracing::debug!(%addr, error = %e, "cannot enlarge the receive buffer");
    }
    socket.bind(&addr.into())?;
    let std_socket: std::net::UdpSocket = socket.into();
    if let Err(e) = rntp_sys::enable_rx_timestamps(std_socket.as_fd()) {
        tracing::debug!(%addr, error = %e, "kernel receive timestamps unavailable");
    }
    UdpSocket::from_std(std_socket)
}

/// Serves one socket until shutdown.
pub async fn serve(
    socket: UdpSocket,
    responder: SharedResponder,
    system: watch::Receiver<SystemState>,
    served_clock: watch::Receiver<Option<VirtualClock>>,
    clock: Clock,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut batch = RecvBatch::new(BATCH);
    let mut out = [0u8; BATCH_SLOT_LEN];
    loop {
        tokio::select! {
            ready = socket.readable() => {
                if ready.is_err() {
                    return;
                }
            }
            _ = shutdown.changed() => return,
        }
        // One recvmmsg per burst instead of a recvmsg (and an epoll wakeup) per request.
        let received =
            socket.try_io(Interest::READABLE, || rntp_sys::recv_batch(socket.as_fd(), &mut batch));
        match received {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => {
                tracing::debug!(error = %e, "server receive failed");
                continue;
            }
        }
        let now = clock.now();
        // Observe-only serves rntpd's virtual time: the system clock plus the correction
        // rntpd would have applied (as chronyd -x does).
        let correction = served_clock
            .borrow()
            .as_ref()
            .map_or(NtpDuration::ZERO, |vc| NtpDuration::from_secs_f64(vc.offset_at(now)));
        let sys = *system.borrow();
        {
            let mut r = lock(&responder);
            for i in 0..batch.len() {
                let Some((data, meta)) = batch.get(i) else { continue };
                let rx = meta
                    .rx_time
                    .map(wall_to_ntp)
                    .unwrap_or_else(|| clock.wall())
                    .add_duration(correction);
                // A request we could not read whole is malformed by definition; an empty slice
                // makes the responder count it as such.
                let request = if meta.truncated { &[][..] } else { data };
                let client = canonical(meta.from.ip());
                let action = r.respond(now, rx, client, request, &sys, &mut out);
                if let ServerAction::Reply { len, .. } = action {
                    let Some(reply) = out.get_mut(..len) else { continue };
                    finish_reply(reply, clock.wall().add_duration(correction));
                    // Never wait for socket buffer space: under overload the reply is dropped,
                    // as the kernel would drop the request.
                    let _ = socket.try_send_to(reply, meta.from);
                }
            }
        }
        // Let the associations' timers run between bursts under a flood.
        tokio::task::yield_now().await;
    }
}

/// IPv4-mapped IPv6 sources (from a dual-stack socket) match IPv4 restrict rules.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Counters for `rntpctl status`.
pub fn counters(responder: &SharedResponder) -> ServerCountersInfo {
    let r = lock(responder);
    let c = r.counters();
    ServerCountersInfo {
        requests: c.requests,
        replies: c.replies,
        kod_rate: c.kod_rate,
        kod_deny: c.kod_deny,
        crypto_naks: c.crypto_naks,
        dropped: c.dropped().filter(|(_, n)| *n > 0).map(|(k, n)| (k.to_string(), n)).collect(),
        rate_table_used: r.rate_table_len(),
        rate_table_capacity: r.rate_table_capacity(),
    }
}

/// Locks the responder; a poisoned lock still holds consistent counters and rate state (every
/// update is a single field write), and abort-on-panic makes poisoning moot in release builds.
fn lock(r: &SharedResponder) -> std::sync::MutexGuard<'_, Responder> {
    r.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
