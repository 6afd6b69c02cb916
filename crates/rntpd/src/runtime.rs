//! The event loop: sockets, DNS lookups, the clock executor, the control socket and signals
//! around the one [`Node`] that holds every NTP decision.
//!
//! One tokio current-thread runtime with a `LocalSet`, as chronyd runs one event loop. Tasks
//! that only move bytes feed the node directly ([`Shared`]): one reader per client socket, one
//! fast-path responder per server socket, one task per DNS lookup. The main loop sleeps until
//! the node's deadline, a task's wake-up, a control request or a signal, then drains what the
//! node wants done: datagrams, lookups, clock requests, log lines.
//!
//! Signals: SIGTERM and SIGINT stop rntpd cleanly (drift file saved in control mode, control
//! socket removed, exit 0). SIGHUP, like `rntpctl reload`, re-reads the configuration off the
//! loop and applies the difference ([`Node::handle_config`]); a file with errors changes nothing
//! and is logged with every `FILE:LINE:COL`. The handlers are installed first thing, so a HUP
//! during start-up never kills the daemon.

use std::cell::Cell;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;

use rntp_config::{Config, Loaded};
use rntp_control::{ErrorCode, Reply};
use rntp_proto::node::{ClockMode, ClockRequest, Local, Node, NodeEvent};
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::{mpsc, watch};

use crate::clock::{Clock, DaemonRng};
use crate::control::{ControlRequest, ControlSocket};
use crate::dns::Dns;
use crate::keys::KeyReload;
use crate::manycast::ManycastClients;
use crate::net::ClientSockets;
use crate::report::DaemonInfo;
use crate::service::{ConfigOrigin, LoadedConfig, Logging, Notifier, ReloadDone, Service};
use crate::shared::Shared;

mod drift;
mod reload;
mod startup;

/// What `main` hands to the runtime.
#[derive(Debug)]
pub struct Settings {
    /// The parsed configuration.
    pub config: Config,
    /// Where it came from.
    pub origin: ConfigOrigin,
    /// `-c FILE`, to read again on reload (`None`: the default file or the built-in one).
    pub explicit_config: Option<PathBuf>,
    /// Control socket path.
    pub control_socket: PathBuf,
    /// `--observe`: never touch the system clock.
    pub observe: bool,
    /// `-u USER`: switch to this user once the sockets are bound.
    pub user: Option<rntp_sys::User>,
    /// The log.
    pub logging: Logging,
    /// systemd's notification socket, when started by systemd with `Type=notify`.
    pub notifier: Option<Notifier>,
}

/// Why rntpd could not start.
#[derive(Debug)]
pub enum Fatal {
    /// Control mode without CAP_SYS_TIME; the message says what to do.
    NoClockControl(String),
    /// A socket, the DNS set-up, signals or the privilege switch failed.
    Os(io::Error),
}

impl From<io::Error> for Fatal {
    fn from(e: io::Error) -> Self {
        Fatal::Os(e)
    }
}

/// The signals rntpd handles.
struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

/// Runs the daemon until SIGTERM or SIGINT. Errors are start-up failures. Must run inside a
/// `LocalSet`.
pub async fn run(settings: Settings) -> Result<(), Fatal> {
    // First of all: the default action of SIGHUP is to terminate.
    let signals = Signals {
        term: signal(SignalKind::terminate())?,
        int: signal(SignalKind::interrupt())?,
        hup: signal(SignalKind::hangup())?,
    };
    let startup::Started { mut driver, control, reload_rx } = startup::start(settings).await?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (ctl_tx, ctl_rx) = mpsc::channel(16);
    let control_task = tokio::spawn(control.serve(ctl_tx, shutdown_rx));
    // READY=1 once the control socket is served: `systemctl start` returning means `rntpctl`
    // works.
    driver.service.ready(&driver.shared, driver.clock);
    let result = driver.run(ctl_rx, reload_rx, signals).await;

    tracing::info!("shutting down");
    if let Some(n) = &driver.service.notifier {
        n.send("STOPPING=1");
    }
    driver.save_drift_now();
    let _ = shutdown_tx.send(true);
    // The control task removes its socket file when it ends.
    let _ = control_task.await;
    result.map_err(Fatal::Os)
}

/// The main loop's state: the node and the I/O it asks for.
struct Driver {
    shared: Shared,
    clock: Clock,
    clients: ClientSockets,
    manycast: ManycastClients,
    dns: Dns,
    kernel: Option<rntp_sys::KernelClock>,
    driftfile: Option<PathBuf>,
    /// A drift-file write is running (at most one at a time).
    drift_busy: Rc<Cell<bool>>,
    /// Consecutive failed drift-file writes (only the first is a warning).
    drift_failures: Rc<Cell<u32>>,
    /// Rate limits for repeating log lines.
    log: crate::log::Log,
    info: DaemonInfo,
    stats: Option<crate::stats::Stats>,
    /// Reloads, systemd notification, logs.
    service: Service,
}

impl Driver {
    async fn run(
        &mut self,
        mut ctl_rx: mpsc::Receiver<ControlRequest>,
        mut reload_rx: mpsc::UnboundedReceiver<ReloadDone>,
        mut signals: Signals,
    ) -> io::Result<()> {
        // The node's one deadline on a CLOCK_BOOTTIME timerfd: one wakeup at the deadline (tokio's
        // timer wheel cascades a long sleep through several), and suspend-proof like the node's
        // clock.
        #[allow(
            deprecated,
            reason = "tokio deprecates the safe constructors because an arbitrary AsRawFd could \
                      hand out a different descriptor later; TimerFd owns its OwnedFd and always \
                      returns that one, which is the `register` contract (and unsafe is not \
                      allowed in this crate)"
        )]
        let timer = tokio::io::unix::AsyncFd::with_interest(
            rntp_sys::TimerFd::new()?,
            tokio::io::Interest::READABLE,
        )?;
        let mut armed = None;
        loop {
            self.drain();
            self.service.update_status(&self.shared, self.clock);
            let deadline = self.shared.with(|n| n.poll_timeout());
            if deadline != armed {
                match deadline {
                    Some(d) => timer.get_ref().set_deadline(d.as_nanos())?,
                    None => timer.get_ref().disarm()?,
                }
                armed = deadline;
            }
            tokio::select! {
                Ok(mut ready) = timer.readable() => {
                    // Not expired (a deadline moved after the wakeup): wait again.
                    if ready.try_io(|t| t.get_ref().expirations()).is_err() {
                        continue;
                    }
                    armed = None;
                    let now = self.clock.now();
                    self.shared.with(|n| n.handle_timeout(now));
                }
                () = self.shared.woken() => {}
                Some((command, reply)) = ctl_rx.recv() => {
                    if command == rntp_control::Command::Reload {
                        self.service.start_reload(Some(reply));
                        continue;
                    }
                    let (clock, info) = (self.clock, &self.info);
                    let answer =
                        self.shared.with(|n| crate::report::answer(n, &clock, info, command));
                    let _ = reply.send(answer);
                }
                Some((read, replies)) = reload_rx.recv() => {
                    let answer = match read {
                        Ok(loaded) => self.finish_reload(loaded),
                        Err(e) => {
                            self.service.reloading = false;
                            if let Some(n) = &self.service.notifier {
                                n.send("READY=1");
                            }
                            tracing::error!("configuration reader failed ({e}); nothing reloaded");
                            let message = format!("configuration reader failed: {e}");
                            Reply::Error { code: ErrorCode::BadRequest, message }
                        }
                    };
                    for reply in replies {
                        let _ = reply.send(answer.clone());
                    }
                    if std::mem::take(&mut self.service.again) {
                        self.service.start_reload(None);
                    }
                }
                _ = signals.hup.recv() => {
                    tracing::info!("SIGHUP received: reloading the configuration");
                    self.service.start_reload(None);
                }
                _ = signals.term.recv() => {
                    tracing::info!("SIGTERM received");
                    return Ok(());
                }
                _ = signals.int.recv() => {
                    tracing::info!("SIGINT received");
                    return Ok(());
                }
            }
        }
    }
    /// Carries out everything the node asked for.
    fn drain(&mut self) {
        loop {
            // The wall clock is sampled here, immediately before the send: it is the request's
            // T1 (or a reply's transmit time).
            let (clock, shared) = (self.clock, &self.shared);
            let Some(tx) = shared.with(|n| n.poll_transmit(clock.now(), clock.wall())) else {
                break;
            };
            let sent = match tx.local {
                Local::Client(assoc) => self.clients.send(assoc, tx.remote, &tx.payload),
                Local::Manycast(source) => {
                    self.manycast.send(source, tx.remote, &tx.payload, tx.ttl)
                }
                // Server replies leave from the fast path (`server::serve`); the node only
                // queues one for a request fed through `handle_packet`, which this daemon never
                // does.
                Local::Server(_) => Ok(()),
            };
            if let Err(e) = sent {
                tracing::debug!(remote = %tx.remote, error = %e, "send failed");
                self.shared.with(|n| n.handle_send_error(tx.local));
            }
        }
        while let Some(lookup) = self.shared.with(|n| n.poll_lookup()) {
            let (dns, shared, clock) = (self.dns.clone(), self.shared.clone(), self.clock);
            tracing::debug!(source = lookup.source.0, name = %lookup.name, "resolving");
            // A task per lookup: a slow or silent DNS server never holds up this loop.
            tokio::task::spawn_local(async move {
                let result = dns.resolve(&lookup, clock).await;
                shared.with(|n| n.handle_resolved(clock.now(), lookup.source, result));
                shared.wake();
            });
        }
        while let Some(request) = self.shared.with(|n| n.poll_clock()) {
            self.clock_request(request);
        }
        while let Some(event) = self.shared.with(|n| n.poll_event()) {
            match event {
                NodeEvent::AssocClosed(assoc) => self.clients.close(assoc),
                NodeEvent::ManycastClosed(source) => self.manycast.close(source),
                _ => {}
            }
            self.log.event(self.clock.now(), &event);
            if let Some(stats) = self.stats.as_mut() {
                stats.event(self.clock.unix_secs(), &event);
            }
        }
        if let Some(stats) = self.stats.as_mut() {
            let (now, unix) = (self.clock.now(), self.clock.unix_secs());
            while let Some(record) = self.shared.with(|n| n.poll_stats()) {
                stats.record(unix, &record);
            }
            self.shared.with(|n| stats.tick(now, unix, n));
        }
    }

    fn clock_request(&mut self, request: ClockRequest) {
        if let ClockRequest::SaveDrift { freq_ppm } = request {
            self.save_drift(freq_ppm);
            return;
        }
        let Some(kernel) = self.kernel.as_mut() else { return };
        let result = crate::clock::execute(kernel, &request);
        if let Err(e) = &result {
            tracing::error!(error = %e, ?request, "cannot adjust the system clock");
        }
        let now = self.clock.now();
        self.shared.with(|n| n.handle_clock_result(now, result));
    }
}
