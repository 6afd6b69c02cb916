//! Server mode: UDP sockets on the `interface listen` addresses, answering every datagram at
//! once through the node's responder ([`rntp_proto::node::Node::respond`]).
//!
//! The loop per socket: wait until readable, read a burst of up to [`BATCH`] requests with one
//! `recvmmsg` (each with the kernel's receive timestamp), let the node's responder decide, patch the
//! transmit timestamp as late as possible (immediately before `sendto`), send without
//! blocking. A mode 6 (ntpq) answer may take several datagrams: the node writes the first like
//! any reply, and the rest are sent at once after it. After each burst the task yields, so a flood cannot delay the associations' timers
//! on the same event loop by more than one burst.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsFd;

use rntp_proto::server::{IgnoreReason, ReplyKind, ServerAction};
use rntp_sys::{RecvBatch, BATCH_SLOT_LEN};
use tokio::io::Interest;
use tokio::net::UdpSocket;

use crate::clock::{wall_to_ntp, Clock};
use crate::shared::Shared;

/// Requests read per system call, and handled before yielding to other tasks.
const BATCH: usize = 32;
/// Socket receive buffer asked for (see `bind`).
const RECV_BUFFER_BYTES: usize = 4 << 20;

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
    // Only the datagrams of groups this socket joins (none): a wildcard server socket would
    // otherwise also get every `manycastserver` group's solicitations.
    let _ = if addr.is_ipv6() {
        socket.set_multicast_all_v6(false)
    } else {
        socket.set_multicast_all_v4(false)
    };
    socket.bind(&addr.into())?;
    let std_socket: std::net::UdpSocket = socket.into();
    if let Err(e) = rntp_sys::enable_rx_timestamps(std_socket.as_fd()) {
        tracing::debug!(%addr, error = %e, "kernel receive timestamps unavailable");
    }
    UdpSocket::from_std(std_socket)
}

/// What mode 6 reports as `system`, as ntpd does: the kernel's name and release
/// (`Linux/6.1.0-18-amd64`), or `Linux` if /proc does not say.
pub fn system_name() -> String {
    let read = |f: &str| std::fs::read_to_string(f).map(|s| s.trim().to_string());
    match (read("/proc/sys/kernel/ostype"), read("/proc/sys/kernel/osrelease")) {
        (Ok(os), Ok(release)) => format!("{os}/{release}"),
        _ => "Linux".to_string(),
    }
}

/// Serves one socket for as long as the event loop runs.
pub async fn serve(socket: UdpSocket, shared: Shared, clock: Clock) {
    let mut batch = RecvBatch::new(BATCH);
    let mut out = [0u8; BATCH_SLOT_LEN];
    loop {
        if socket.readable().await.is_err() {
            return;
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
        let mut control = false;
        shared.with(|node| {
            for i in 0..batch.len() {
                let Some((data, meta)) = batch.get(i) else { continue };
                // Nothing can be sent to port 0 (the kernel refuses with EINVAL), and a request
                // longer than a slot is not one: both dropped unread, and counted as such.
                if meta.from.port() == 0 {
                    node.count_unread_request(IgnoreReason::SourcePortZero);
                    continue;
                }
                if meta.truncated {
                    node.count_unread_request(IgnoreReason::TooLong);
                    continue;
                }
                let rx = meta.rx_time.map(wall_to_ntp).unwrap_or_else(|| clock.wall());
                let action = node.respond_from(now, rx, meta.from, data, &mut out);
                if let ServerAction::Reply { len, kind } = action {
                    let Some(reply) = out.get_mut(..len) else { continue };
                    node.finish_reply(now, reply, clock.wall());
                    // Never wait for socket buffer space: under overload the reply is dropped,
                    // as the kernel would drop the request; it is counted as not sent.
                    if socket.try_send_to(reply, meta.from).is_err() {
                        node.reply_not_sent(kind);
                    }
                    if kind == ReplyKind::Control {
                        while let Some(len) = node.poll_control_reply(&mut out) {
                            let Some(more) = out.get(..len) else { break };
                            let _ = socket.try_send_to(more, meta.from);
                        }
                        // A `:config` may have added or removed sources.
                        control = true;
                    }
                }
            }
        });
        // A request of our own (a timing loop) stops an association: the main loop must close
        // its socket and log it.
        if control || shared.with(|n| n.needs_drain()) {
            shared.wake();
        }
        // Let the associations' timers run between bursts under a flood.
        tokio::task::yield_now().await;
    }
}
