//! Client sockets: one per association, bound to an ephemeral port and connected to the
//! server (as chrony does by default). The kernel then delivers only that server's datagrams,
//! and the random source port is one more thing an off-path attacker must guess.
//!
//! Sockets are opened when the node first sends for an association (and re-opened when the
//! association moved to another address), and closed when the node says the association is
//! gone. A reader task per socket feeds every datagram to the node with its kernel receive
//! timestamp; that is all it does.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsFd;
use std::rc::Rc;

use rntp_proto::assoc::AssocId;
use rntp_proto::node::Local;
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

use crate::clock::{wall_to_ntp, Clock};
use crate::shared::Shared;

/// Largest datagram we read whole: an NTP packet with extension fields and a MAC fits easily;
/// a bigger one is counted as `too_long` and dropped.
const RECV_BUF: usize = 2048;

struct Client {
    remote: SocketAddr,
    socket: Rc<UdpSocket>,
    reader: JoinHandle<()>,
}

/// The open client sockets.
pub struct ClientSockets {
    shared: Shared,
    clock: Clock,
    open: HashMap<AssocId, Client>,
}

impl ClientSockets {
    /// No sockets yet.
    pub fn new(shared: Shared, clock: Clock) -> Self {
        ClientSockets { shared, clock, open: HashMap::new() }
    }

    /// Sends `payload` for `assoc` to `remote`, opening (or re-opening, after a move) its
    /// socket first. Never waits: a full socket buffer is a failed send.
    pub fn send(&mut self, assoc: AssocId, remote: SocketAddr, payload: &[u8]) -> io::Result<()> {
        if self.open.get(&assoc).is_none_or(|c| c.remote != remote) {
            self.close(assoc);
            let socket = Rc::new(open(remote)?);
            let reader = tokio::task::spawn_local(read(
                self.shared.clone(),
                self.clock,
                assoc,
                Rc::clone(&socket),
            ));
            self.open.insert(assoc, Client { remote, socket, reader });
        }
        let Some(client) = self.open.get(&assoc) else {
            return Err(io::Error::other("socket vanished"));
        };
        match send_now(&client.socket, payload, None) {
            // Linux reports an ICMP port-unreachable caused by an earlier request on this
            // send and drops the datagram; the error is now cleared, so send it again.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                self.shared.with(|n| n.count_drop(Local::Client(assoc), "icmp_unreachable"));
                send_now(&client.socket, payload, None).map(drop)
            }
            other => other.map(drop),
        }
    }

    /// Closes the socket of an association that is gone.
    pub fn close(&mut self, assoc: AssocId) {
        if let Some(client) = self.open.remove(&assoc) {
            client.reader.abort();
        }
    }
}

impl Drop for ClientSockets {
    fn drop(&mut self) {
        for (_, client) in self.open.drain() {
            client.reader.abort();
        }
    }
}

/// Sends one datagram now, with a plain non-blocking `send`/`sendto`. tokio's `try_send`
/// answers `WouldBlock` until its reactor has seen the socket writable once, which for a
/// socket opened in this same turn of the event loop means the first request was never sent;
/// the kernel knows better. `to`: `None` for a connected socket.
pub fn send_now(socket: &UdpSocket, payload: &[u8], to: Option<SocketAddr>) -> io::Result<usize> {
    let sock = socket2::SockRef::from(socket);
    match to {
        Some(to) => sock.send_to(payload, &to.into()),
        None => sock.send(payload),
    }
}

/// Opens a socket connected to `remote`, with kernel receive timestamps where the OS offers
/// them. Synchronous: binding and connecting a UDP socket never blocks.
fn open(remote: SocketAddr) -> io::Result<UdpSocket> {
    let local: SocketAddr = match remote {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = std::net::UdpSocket::bind(local)?;
    socket.connect(remote)?;
    socket.set_nonblocking(true)?;
    if let Err(e) = rntp_sys::enable_rx_timestamps(socket.as_fd()) {
        // Not fatal: user-space timestamps are taken instead, a few microseconds later.
        tracing::debug!(%remote, error = %e, "kernel receive timestamps unavailable");
    }
    UdpSocket::from_std(socket)
}

/// Feeds every datagram of one client socket to the node until the socket is closed.
async fn read(shared: Shared, clock: Clock, assoc: AssocId, socket: Rc<UdpSocket>) {
    let mut buf = vec![0u8; RECV_BUF];
    let local = Local::Client(assoc);
    loop {
        if socket.readable().await.is_err() {
            return;
        }
        loop {
            let received = socket.try_io(Interest::READABLE, || {
                rntp_sys::recv_from_with_timestamp(socket.as_fd(), &mut buf)
            });
            let meta = match received {
                Ok(meta) => meta,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    // ICMP port unreachable for an earlier request: nobody listens there. The
                    // reach register tells the story; count it so it is visible.
                    shared.with(|n| n.count_drop(local, "icmp_unreachable"));
                    continue;
                }
                Err(e) => {
                    tracing::debug!(id = assoc.0, error = %e, "receive failed");
                    break;
                }
            };
            // User-space timestamp as fallback; taken right after the read.
            let t4 = meta.rx_time.map(wall_to_ntp).unwrap_or_else(|| clock.wall());
            let now = clock.now();
            match buf.get(..meta.len).filter(|_| !meta.truncated) {
                Some(data) => shared.with(|n| n.handle_packet(now, local, meta.from, t4, data)),
                None => shared.with(|n| n.count_received_drop(local, "too_long")),
            }
        }
        shared.wake();
    }
}
