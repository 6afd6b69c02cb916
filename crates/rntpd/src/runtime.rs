//! The event loop: sockets, DNS lookups, the clock executor, the control socket and signals
//! around the one [`Node`] that holds every NTP decision.
//!
//! One tokio current-thread runtime with a `LocalSet`, as chronyd runs one event loop. Tasks
//! that only move bytes feed the node directly ([`Shared`]): one reader per client socket, one
//! fast-path responder per server socket, one task per DNS lookup. The main loop sleeps until
//! the node's deadline, a task's wake-up, a control request or a signal, then drains what the
//! node wants done: datagrams, lookups, clock requests, log lines.

use std::cell::Cell;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;

use rntp_config::Config;
use rntp_proto::node::{ClockMode, ClockRequest, Local, Node, NodeEvent};
use tokio::sync::{mpsc, watch};

use crate::clock::{Clock, DaemonRng};
use crate::control::{ControlRequest, ControlSocket};
use crate::dns::Dns;
use crate::net::ClientSockets;
use crate::report::DaemonInfo;
use crate::shared::Shared;

/// What `main` hands to the runtime.
#[derive(Debug)]
pub struct Settings {
    /// The parsed configuration.
    pub config: Config,
    /// Where it came from, for `status`.
    pub config_file: String,
    /// Control socket path.
    pub control_socket: PathBuf,
    /// `--observe`: never touch the system clock.
    pub observe: bool,
}

/// Runs the daemon until SIGTERM or SIGINT. Errors are start-up failures. Must run inside a
/// `LocalSet`.
pub async fn run(settings: Settings) -> io::Result<()> {
    let clock = Clock::new();
    let kernel = clock_control(settings.observe);
    tracing::info!(precision_log2 = clock.precision_log2(), "clock precision measured");

    let dns = Dns::new(&settings.config.resolvers).map_err(|e| {
        io::Error::other(format!(
            "cannot set up DNS resolution: {e} (check /etc/resolv.conf or the `resolver` lines)"
        ))
    })?;
    let control = ControlSocket::bind(&settings.control_socket).await.map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("control socket {}: {e}", settings.control_socket.display()),
        )
    })?;
    tracing::info!(path = %settings.control_socket.display(), "control socket ready");
    // Server sockets are bound before anything runs, so a taken port is a start-up error an
    // administrator sees at once, not a silent half-working daemon.
    let servers = bind_servers(&settings.config)?;

    let mode = if kernel.is_some() { ClockMode::Control } else { ClockMode::Observe };
    // Observe-only mode neither reads nor writes the drift file: the file may belong to an ntpd
    // that disciplines this clock (its frequency is already in the kernel, so applying it to
    // the virtual clock would count it twice), and overwriting it would change what that ntpd
    // sets the kernel to at its next start.
    let driftfile = match (mode, &settings.config.driftfile) {
        (ClockMode::Observe, Some(path)) => {
            tracing::info!(path = %path.display(), "observe-only mode: the drift file is neither read nor written");
            None
        }
        (_, d) => d.clone(),
    };
    let mut config = rntp_config::node::node_config(&settings.config, mode);
    config.precision_log2 = clock.precision_log2();
    config.initial_freq_ppm = driftfile.as_deref().and_then(read_drift);
    config.leap.table = settings
        .config
        .leapfile
        .as_deref()
        .and_then(|p| crate::clock::read_leapfile(p, clock.unix_secs()));
    config.drift_file = driftfile.is_some();
    if config.sources.is_empty() {
        tracing::warn!("no time sources configured: rntpd will only answer control requests");
    }
    let shared = Shared::new(Node::new(clock.now(), config, Box::new(DaemonRng::from_os())));
    for (addr, socket) in servers {
        tracing::info!(%addr, "serving time");
        tokio::task::spawn_local(crate::server::serve(socket, shared.clone(), clock));
    }

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (ctl_tx, ctl_rx) = mpsc::channel(16);
    let control_task = tokio::spawn(control.serve(ctl_tx, shutdown_rx));
    let mut driver = Driver {
        clients: ClientSockets::new(shared.clone(), clock),
        shared,
        clock,
        dns,
        kernel,
        driftfile,
        drift_busy: Rc::new(Cell::new(false)),
        info: DaemonInfo { config_file: settings.config_file },
    };
    let result = driver.run(ctl_rx).await;

    tracing::info!("shutting down");
    driver.save_drift_now();
    let _ = shutdown_tx.send(true);
    // The control task removes its socket file when it ends.
    let _ = control_task.await;
    result
}

/// The main loop's state: the node and the I/O it asks for.
struct Driver {
    shared: Shared,
    clock: Clock,
    clients: ClientSockets,
    dns: Dns,
    kernel: Option<rntp_sys::KernelClock>,
    driftfile: Option<PathBuf>,
    /// A drift-file write is running (at most one at a time).
    drift_busy: Rc<Cell<bool>>,
    info: DaemonInfo,
}

impl Driver {
    async fn run(&mut self, mut ctl_rx: mpsc::Receiver<ControlRequest>) -> io::Result<()> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
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
                    let (clock, info) = (self.clock, &self.info);
                    let answer =
                        self.shared.with(|n| crate::report::answer(n, &clock, info, command));
                    let _ = reply.send(answer);
                }
                _ = term.recv() => {
                    tracing::info!("SIGTERM received");
                    return Ok(());
                }
                _ = int.recv() => {
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
                let result = dns.lookup(&lookup.name, clock).await;
                shared.with(|n| n.handle_resolved(clock.now(), lookup.source, result));
                shared.wake();
            });
        }
        while let Some(request) = self.shared.with(|n| n.poll_clock()) {
            self.clock_request(request);
        }
        while let Some(event) = self.shared.with(|n| n.poll_event()) {
            if let NodeEvent::AssocClosed(assoc) = event {
                self.clients.close(assoc);
            }
            crate::log::event(&event);
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

    /// Writes the drift file off the event loop (the write fsyncs twice).
    fn save_drift(&self, freq_ppm: f64) {
        let Some(path) = self.driftfile.clone() else { return };
        if self.drift_busy.replace(true) {
            return;
        }
        let busy = Rc::clone(&self.drift_busy);
        tokio::task::spawn_local(async move {
            let shown = path.clone();
            let written =
                tokio::task::spawn_blocking(move || crate::drift::write(&path, freq_ppm)).await;
            busy.set(false);
            match written {
                Ok(Ok(())) => {
                    tracing::debug!(path = %shown.display(), freq_ppm, "drift file saved")
                }
                Ok(Err(e)) => {
                    tracing::warn!(path = %shown.display(), error = %e, "cannot write the drift file")
                }
                Err(e) => tracing::warn!(error = %e, "drift file writer failed"),
            }
        });
    }

    /// At exit: the last frequency, written before the process ends.
    fn save_drift_now(&self) {
        let (Some(path), Some(freq)) = (&self.driftfile, self.shared.with(|n| n.drift_to_save()))
        else {
            return;
        };
        if let Err(e) = crate::drift::write(path, freq) {
            tracing::warn!(path = %path.display(), error = %e, "cannot write the drift file");
        }
    }
}

/// Binds every `interface listen` address.
fn bind_servers(config: &Config) -> io::Result<Vec<(SocketAddr, tokio::net::UdpSocket)>> {
    let mut servers = Vec::new();
    for listen in &config.listen {
        let addr = SocketAddr::new(listen.addr, listen.port);
        let socket = crate::server::bind(addr).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "cannot serve time on {addr} ({}:{}): {e}",
                    listen.origin.file.display(),
                    listen.origin.line
                ),
            )
        })?;
        if listen.addr.is_unspecified() {
            // Without IP_PKTINFO the kernel picks the reply's source address, which on a
            // multi-homed host may not be the one the client asked.
            tracing::warn!(
                %addr,
                "serving on a wildcard address: on a host with several addresses, clients may get \
                 replies from another address than they queried; list the addresses with \
                 `interface listen ADDR` instead"
            );
        }
        servers.push((addr, socket));
    }
    if servers.is_empty() {
        tracing::info!("not serving time: no `interface listen` line in the configuration");
    }
    Ok(servers)
}

/// The drift file's frequency, if it has a usable one.
fn read_drift(path: &std::path::Path) -> Option<f64> {
    match crate::drift::read(path) {
        Ok(Some(freq)) => {
            tracing::info!(path = %path.display(), freq_ppm = freq, "frequency from the drift file");
            Some(freq)
        }
        Ok(None) => None,
        Err(e) => {
            tracing::warn!(error = %e, "drift file unusable; starting without a frequency estimate");
            None
        }
    }
}

/// Clock control when asked for and allowed; observe-only otherwise.
fn clock_control(observe: bool) -> Option<rntp_sys::KernelClock> {
    if observe {
        tracing::info!(
            "observe-only mode: rntpd measures, selects and keeps a virtual clock; it never changes the system clock"
        );
        return None;
    }
    match rntp_sys::KernelClock::new() {
        Ok(kernel) => {
            tracing::warn!(
                "rntpd disciplines the system clock (start with --observe to only measure)"
            );
            Some(kernel)
        }
        Err(e) => {
            tracing::error!(
                "cannot discipline the system clock: {e}; running observe-only (run as root with \
                 CAP_SYS_TIME to control the clock, or pass --observe to silence this)"
            );
            None
        }
    }
}
