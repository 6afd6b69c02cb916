//! Drives one [`Association`] on the tokio runtime: one task, one socket, one timer.
//!
//! The loop is the quinn `ConnectionDriver` shape: wait for the timer, a datagram or shutdown;
//! feed it to the association; drain its transmits and events; publish a snapshot; re-arm.
//! All protocol decisions are in `rntp_proto::assoc`; this file only moves bytes and times.

use std::sync::Arc;

use std::net::SocketAddr;

use rntp_proto::assoc::{AssocEvent, AssocId, Association, DemobilizeReason, TIMER_SLACK};
use rntp_proto::wire::KissCode;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};

use crate::clock::{wall_to_ntp, Clock, DaemonRng};
use crate::net;
use crate::observe::{Published, Registry};

/// Largest datagram we read: an NTP packet with extension fields and a MAC fits easily; a
/// bigger one is flagged truncated and dropped.
const RECV_BUF: usize = 2048;

/// What the orchestrator may tell a running association.
#[derive(Debug, Clone, Copy)]
pub enum AssocCommand {
    /// Poll another address from now on (the source's name moved); the id stays.
    Move(SocketAddr),
    /// Stop for good; the task ends.
    Demobilize(DemobilizeReason),
}

/// Everything one association task owns.
pub struct AssocTask {
    /// The protocol state machine.
    pub assoc: Association,
    /// The configured source, for logs.
    pub source: String,
    /// Its socket, connected to the server.
    pub socket: UdpSocket,
    /// Clocks.
    pub clock: Clock,
    /// Randomness for nonces and poll jitter.
    pub rng: DaemonRng,
    /// Where snapshots go.
    pub snapshots: watch::Sender<Published>,
    /// Counters.
    pub registry: Arc<Registry>,
    /// Flips to true at shutdown.
    pub shutdown: watch::Receiver<bool>,
    /// Commands from the orchestrator.
    pub commands: mpsc::UnboundedReceiver<AssocCommand>,
    /// Events for the source manager (reachability, KoD, demobilization).
    pub events: mpsc::UnboundedSender<(AssocId, AssocEvent)>,
    /// A move whose socket could not be opened yet, and when to try again. Until it succeeds
    /// the association does not poll: the old address may already belong to another source.
    pub pending_move: Option<(SocketAddr, rntp_proto::time::Instant)>,
}

impl AssocTask {
    /// Runs until shutdown.
    pub async fn run(mut self) {
        let mut buf = vec![0u8; RECV_BUF];
        loop {
            self.drain().await;
            let deadline = match self.pending_move {
                Some((_, retry_at)) => Some(retry_at),
                None => self.assoc.poll_timeout(),
            };
            let sleep = match deadline {
                // tokio rounds sleeps up to its millisecond tick; waking up to TIMER_SLACK early
                // (which the association accepts as due) sends requests on time.
                Some(deadline) => {
                    tokio::time::sleep(self.clock.until(deadline).saturating_sub(TIMER_SLACK))
                }
                // Demobilized: stay around (idle) so the control socket can show why.
                None => tokio::time::sleep(std::time::Duration::from_secs(86_400)),
            };
            tokio::select! {
                () = sleep => {
                    if let Some((remote, _)) = self.pending_move.take() {
                        self.move_to(remote).await;
                        continue;
                    }
                    let now = self.clock.now();
                    self.assoc.handle_timeout(now, &mut self.rng);
                }
                ready = self.socket.readable() => {
                    if ready.is_ok() {
                        self.receive_all(&mut buf);
                    }
                }
                command = self.commands.recv() => match command {
                    Some(AssocCommand::Move(remote)) => self.move_to(remote).await,
                    Some(AssocCommand::Demobilize(reason)) => {
                        self.assoc.demobilize(reason);
                        self.drain().await;
                        return;
                    }
                    // The orchestrator is gone: shutting down.
                    None => return,
                },
                _ = self.shutdown.changed() => return,
            }
        }
    }

    /// Re-points the association, with a fresh socket connected to the new address.
    async fn move_to(&mut self, remote: SocketAddr) {
        match net::client_socket(remote).await {
            Ok(socket) => {
                self.socket = socket;
                self.assoc.change_remote(self.clock.now(), remote);
            }
            Err(e) => {
                tracing::error!(
                    id = self.assoc.id().0, %remote, error = %e,
                    "cannot open a socket for the new address; retrying in 30 s"
                );
                let retry_at = self.clock.now().add_secs_f64(30.0);
                self.pending_move = Some((remote, retry_at));
            }
        }
    }

    /// Reads every queued datagram.
    fn receive_all(&mut self, buf: &mut [u8]) {
        loop {
            let meta = match net::try_recv(&self.socket, buf) {
                Ok(meta) => meta,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    // ICMP port unreachable for an earlier request: nobody listens there. The
                    // reach register tells the story; count it so it is visible.
                    self.registry.counters.dropped("icmp_unreachable");
                    continue;
                }
                Err(e) => {
                    tracing::warn!(source = %self.source, error = %e, "receive failed");
                    return;
                }
            };
            // User-space timestamp as fallback; taken right after the read.
            let t4 = meta.rx_time.map(wall_to_ntp).unwrap_or_else(|| self.clock.wall());
            let now = self.clock.now();
            self.registry.counters.received();
            if meta.truncated {
                self.registry.counters.dropped("oversized");
                continue;
            }
            let Some(data) = buf.get(..meta.len) else { continue };
            match self.assoc.handle_packet(now, t4, data) {
                Ok(()) => self.registry.counters.accepted(),
                Err(reason) => {
                    tracing::trace!(source = %self.source, reason = reason.counter_name(), "packet dropped");
                    self.registry.counters.dropped(reason.counter_name());
                }
            }
        }
    }

    /// Sends what is due, logs events, publishes a snapshot.
    async fn drain(&mut self) {
        loop {
            // Sample the wall clock immediately before the send: it becomes T1.
            let t1 = self.clock.wall();
            let Some(tx) = self.assoc.poll_transmit(t1, &mut self.rng) else { break };
            let mut sent = self.socket.send(&tx.payload).await;
            if matches!(&sent, Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused) {
                // Linux reports an ICMP port-unreachable caused by an earlier request on this
                // send and drops the datagram; the error is now cleared, so send it again.
                self.registry.counters.dropped("icmp_unreachable");
                sent = self.socket.send(&tx.payload).await;
            }
            match sent {
                Ok(_) => self.registry.counters.sent(),
                Err(e) => {
                    self.registry.counters.send_error();
                    tracing::debug!(source = %self.source, remote = %tx.remote, error = %e, "send failed");
                }
            }
        }
        while let Some(event) = self.assoc.poll_event() {
            self.log_event(event);
            // The orchestrator outlives every association task; a failed send means it is
            // shutting down, and then nobody needs the event.
            let _ = self.events.send((self.assoc.id(), event));
        }
        let now = self.clock.now();
        self.snapshots.send_replace((now, self.assoc.snapshot(now)));
    }

    fn log_event(&self, event: AssocEvent) {
        let (id, remote, source) = (self.assoc.id().0, self.assoc.remote(), &self.source);
        match event {
            AssocEvent::Sample(s) => {
                tracing::debug!(id, %remote, offset = s.offset, delay = s.delay, "sample");
            }
            AssocEvent::Reachable => tracing::info!(id, %source, %remote, "server reachable"),
            AssocEvent::Unreachable => tracing::warn!(
                id, %source, %remote,
                "server unreachable: no valid reply to the last 8 requests"
            ),
            AssocEvent::Unsynchronized => tracing::debug!(
                id, %remote, "server says it is not synchronized (leap 3 or stratum 16); reply not used"
            ),
            AssocEvent::Kod(code) => {
                self.registry.counters.kod();
                match code {
                    KissCode::Rate => tracing::warn!(
                        id, %source, %remote, poll = self.assoc.poll().as_secs_f64(),
                        "server sent Kiss-o'-Death RATE: polling less often"
                    ),
                    other => {
                        tracing::warn!(id, %source, %remote, code = ?other, "server sent Kiss-o'-Death")
                    }
                }
            }
            AssocEvent::Demobilized(
                reason @ (DemobilizeReason::KodDeny | DemobilizeReason::KodRstr),
            ) => {
                tracing::warn!(
                    id, %source, %remote, reason = reason.name(),
                    "server refuses us service (Kiss-o'-Death); association stopped, address not used again for 24 h"
                );
            }
            AssocEvent::Demobilized(reason) => {
                tracing::debug!(id, %remote, reason = reason.name(), "association stopped");
            }
        }
    }
}
