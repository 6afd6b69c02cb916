//! UDP sockets for client associations.
//!
//! Each association gets its own socket, bound to an ephemeral port and connected to the
//! server (as chrony does by default). The kernel then delivers only that server's datagrams,
//! the random source port is one more thing an off-path attacker must guess, and replies need
//! no demultiplexing.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsFd;

use rntp_sys::RecvMeta;
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Opens a socket connected to `remote`, with kernel receive timestamps enabled where the OS
/// offers them.
pub async fn client_socket(remote: SocketAddr) -> io::Result<UdpSocket> {
    let local: SocketAddr = match remote {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(remote).await?;
    if let Err(e) = rntp_sys::enable_rx_timestamps(socket.as_fd()) {
        // Not fatal: user-space timestamps are taken instead, a few microseconds later.
        tracing::debug!(%remote, error = %e, "kernel receive timestamps unavailable");
    }
    Ok(socket)
}

/// Receives one datagram without blocking (WouldBlock when none is queued).
pub fn try_recv(socket: &UdpSocket, buf: &mut [u8]) -> io::Result<RecvMeta> {
    socket.try_io(Interest::READABLE, || rntp_sys::recv_from_with_timestamp(socket.as_fd(), buf))
}
