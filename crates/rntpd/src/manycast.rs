//! Manycast sockets, both roles (the node decides everything; see
//! `rntp_proto::node`'s manycast module).
//!
//! * Client (`manycastclient GROUP`): one socket per manycast source, bound to an ephemeral
//!   port of the group's family and not connected. Solicitations leave from it to the group
//!   with the TTL (IPv4) or hop limit (IPv6) the node chose; servers answer by unicast to it.
//!   The members the node mobilizes from those answers get ordinary connected client sockets
//!   (`net.rs`).
//! * Server (`manycastserver GROUP`): one socket per group and port, bound to the group address
//!   (so it receives only that group's datagrams) and joined to it on the interface the kernel
//!   routes the group to. Answers leave from the same socket: bound to a multicast address, it
//!   sends with the outgoing interface's own address as source, which is what clients then poll
//!   by unicast.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsFd;
use std::rc::Rc;

use rntp_proto::node::Local;
use rntp_proto::server::MAX_REPLY_LEN;
use rntp_proto::source::SourceId;
use socket2::{Domain, Protocol, SockRef, Socket, Type};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

use crate::clock::{wall_to_ntp, Clock};
use crate::shared::Shared;

/// Largest datagram read whole.
const RECV_BUF: usize = 2048;

struct Soliciter {
    socket: Rc<UdpSocket>,
    reader: JoinHandle<()>,
}

/// The manycast clients' sockets.
pub struct ManycastClients {
    shared: Shared,
    clock: Clock,
    open: HashMap<SourceId, Soliciter>,
}

impl ManycastClients {
    /// No sockets yet.
    pub fn new(shared: Shared, clock: Clock) -> Self {
        ManycastClients { shared, clock, open: HashMap::new() }
    }

    /// Sends a solicitation of `source` to `group` with this TTL, opening its socket first.
    pub fn send(
        &mut self,
        source: SourceId,
        group: SocketAddr,
        payload: &[u8],
        ttl: Option<u8>,
    ) -> io::Result<()> {
        if !self.open.contains_key(&source) {
            let socket = Rc::new(open_soliciter(group)?);
            let reader = tokio::task::spawn_local(read(
                self.shared.clone(),
                self.clock,
                Local::Manycast(source),
                Rc::clone(&socket),
            ));
            self.open.insert(source, Soliciter { socket, reader });
        }
        let Some(s) = self.open.get(&source) else {
            return Err(io::Error::other("socket vanished"));
        };
        let ttl = u32::from(ttl.unwrap_or(1));
        match group {
            SocketAddr::V4(_) => s.socket.set_multicast_ttl_v4(ttl)?,
            SocketAddr::V6(_) => SockRef::from(&*s.socket).set_multicast_hops_v6(ttl)?,
        }
        crate::net::send_now(&s.socket, payload, Some(group)).map(drop)
    }

    /// Closes the socket of a removed manycast client.
    pub fn close(&mut self, source: SourceId) {
        if let Some(s) = self.open.remove(&source) {
            s.reader.abort();
        }
    }
}

impl Drop for ManycastClients {
    fn drop(&mut self) {
        for (_, s) in self.open.drain() {
            s.reader.abort();
        }
    }
}

/// An unconnected socket on an ephemeral port of the group's family.
fn open_soliciter(group: SocketAddr) -> io::Result<UdpSocket> {
    let local: SocketAddr = match group {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = Socket::new(Domain::for_address(local), Type::DGRAM, Some(Protocol::UDP))?;
    if local.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&local.into())?;
    let socket: std::net::UdpSocket = socket.into();
    if let Err(e) = rntp_sys::enable_rx_timestamps(socket.as_fd()) {
        tracing::debug!(%group, error = %e, "kernel receive timestamps unavailable");
    }
    UdpSocket::from_std(socket)
}

/// Binds `group`:`port` and joins the group (a `manycastserver` line).
pub fn bind_group(group: IpAddr, port: u16) -> io::Result<UdpSocket> {
    let addr = SocketAddr::new(group, port);
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // Several daemons (or a restart) may join the same group on one host.
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    match group {
        IpAddr::V4(g) => {
            socket.bind(&addr.into())?;
            socket.join_multicast_v4(&g, &Ipv4Addr::UNSPECIFIED)?;
            socket.set_multicast_all_v4(false)?;
        }
        IpAddr::V6(g) => {
            socket.set_only_v6(true)?;
            socket.bind(&addr.into())?;
            socket.join_multicast_v6(&g, 0)?;
            socket.set_multicast_all_v6(false)?;
        }
    }
    let socket: std::net::UdpSocket = socket.into();
    if let Err(e) = rntp_sys::enable_rx_timestamps(socket.as_fd()) {
        tracing::debug!(%addr, error = %e, "kernel receive timestamps unavailable");
    }
    UdpSocket::from_std(socket)
}

/// Feeds every datagram of a manycast client socket to the node.
async fn read(shared: Shared, clock: Clock, local: Local, socket: Rc<UdpSocket>) {
    let mut buf = vec![0u8; RECV_BUF];
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
                Err(e) => {
                    tracing::debug!(error = %e, "manycast receive failed");
                    break;
                }
            };
            let t4 = meta.rx_time.map(wall_to_ntp).unwrap_or_else(|| clock.wall());
            let now = clock.now();
            if let Some(data) = buf.get(..meta.len).filter(|_| !meta.truncated) {
                shared.with(|n| n.handle_packet(now, local, meta.from, t4, data));
            }
        }
        shared.wake();
    }
}

/// Answers the solicitations that arrive on a `manycastserver` group socket, by unicast.
pub async fn serve(socket: UdpSocket, shared: Shared, clock: Clock) {
    let mut buf = vec![0u8; RECV_BUF];
    let mut out = [0u8; MAX_REPLY_LEN];
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
                Err(e) => {
                    tracing::debug!(error = %e, "manycast server receive failed");
                    break;
                }
            };
            let rx = meta.rx_time.map(wall_to_ntp).unwrap_or_else(|| clock.wall());
            let now = clock.now();
            let request =
                if meta.truncated { &[][..] } else { buf.get(..meta.len).unwrap_or_default() };
            shared.with(|node| {
                let Some(len) = node.respond_manycast(now, rx, meta.from.ip(), request, &mut out)
                else {
                    return;
                };
                let Some(reply) = out.get_mut(..len) else { return };
                node.finish_reply(now, reply, clock.wall());
                let _ = socket.try_send_to(reply, meta.from);
            });
        }
        // Let the rest of the event loop run between bursts.
        tokio::task::yield_now().await;
    }
}
