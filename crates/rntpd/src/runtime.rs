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
    let clock = Clock::new();
    let kernel = clock_control(settings.observe)?;
    tracing::info!(precision_log2 = clock.precision_log2(), "clock precision measured");

    let dns = Dns::new(&settings.config.resolvers).map_err(|e| {
        io::Error::other(format!(
            "cannot set up DNS resolution: {e} (check /etc/resolv.conf or the `resolver` lines)"
        ))
    })?;
    let socket_dir_existed =
        settings.control_socket.parent().is_none_or(|d| d.as_os_str().is_empty() || d.exists());
    let control = ControlSocket::bind(&settings.control_socket).await.map_err(|e| {
        let hint = if e.kind() == io::ErrorKind::PermissionDenied {
            " (run rntpd as root, let systemd create the directory with RuntimeDirectory=rntpd, \
             or pass --control-socket PATH in a directory this user may write to)"
        } else {
            ""
        };
        io::Error::new(
            e.kind(),
            format!("control socket {}: {e}{hint}", settings.control_socket.display()),
        )
    })?;
    tracing::info!(path = %settings.control_socket.display(), "control socket ready");
    // Server sockets are bound before anything runs, so a taken port is a start-up error an
    // administrator sees at once, not a silent half-working daemon.
    let servers = bind_servers(&settings.config)?;
    let groups = bind_groups(&settings.config)?;
    // The key file too: a keyed source without its key would never be polled.
    let (auth, key_warnings) = crate::keys::load(&settings.config)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    for warning in key_warnings {
        tracing::warn!("{warning}");
    }
    if !auth.keys.is_empty() {
        tracing::info!(keys = auth.keys.len(), control_key = ?auth.control_key.map(|k| k.0), "symmetric keys loaded");
    }

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
    // Read as root: the drift file's directory need not be readable by the `-u` user.
    let initial_freq_ppm = driftfile.as_deref().and_then(read_drift);
    if let Some(user) = &settings.user {
        let logfile = settings.logging.file();
        let paths = crate::service::Paths {
            control_socket: &settings.control_socket,
            created_socket_dir: !socket_dir_existed,
            logfile: logfile.as_deref(),
            driftfile: driftfile.as_deref(),
        };
        crate::service::drop_root(user, mode, &paths).map_err(io::Error::other)?;
    }
    let mut config = node_config(&settings.config, mode, clock.precision_log2(), &driftfile);
    config.initial_freq_ppm = initial_freq_ppm;
    config.auth = auth;
    if config.sources.is_empty() {
        tracing::warn!("no time sources configured: rntpd will only answer control requests");
    }
    let shared = Shared::new(Node::new(clock.now(), config, Box::new(DaemonRng::from_os())));
    shared.with(|n| n.set_system_name(&crate::server::system_name()));
    // `ntpq :config` lines are parsed as rntpctl's are (a line never reads a file).
    shared.with(|n| n.set_config_parser(Box::new(rntp_config::runtime::RemoteParser)));
    let stats = crate::stats::Stats::start(&settings.config.stats)?;
    shared.with(|n| n.enable_stats(stats.is_some()));
    if let Some(metrics) = &settings.config.metrics {
        let listener = crate::metrics::bind(metrics.addr).await.map_err(|e| {
            let at = format!("{}:{}", metrics.origin.file.display(), metrics.origin.line);
            io::Error::new(
                e.kind(),
                format!("cannot serve metrics on {} ({at}): {e}", metrics.addr),
            )
        })?;
        tracing::info!(addr = %metrics.addr, "serving metrics at /metrics");
        let dropped = stats.as_ref().map(crate::stats::Stats::dropped_counter);
        tokio::task::spawn_local(crate::metrics::serve(listener, shared.clone(), clock, dropped));
    }
    for (addr, socket) in servers {
        tracing::info!(%addr, "serving time");
        tokio::task::spawn_local(crate::server::serve(socket, shared.clone(), clock));
    }
    for (addr, socket) in groups {
        tracing::info!(group = %addr, "answering keyed manycast solicitations");
        tokio::task::spawn_local(crate::manycast::serve(socket, shared.clone(), clock));
    }

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (ctl_tx, ctl_rx) = mpsc::channel(16);
    let control_task = tokio::spawn(control.serve(ctl_tx, shutdown_rx));
    let (reload_tx, reload_rx) = mpsc::unbounded_channel();
    let mut driver = Driver {
        clients: ClientSockets::new(shared.clone(), clock),
        manycast: ManycastClients::new(shared.clone(), clock),
        shared,
        clock,
        dns,
        kernel,
        driftfile,
        drift_busy: Rc::new(Cell::new(false)),
        drift_failures: Rc::new(Cell::new(0)),
        log: crate::log::Log::default(),
        stats,
        info: DaemonInfo { config_file: settings.origin.label() },
        service: Service {
            explicit_config: settings.explicit_config,
            origin: settings.origin,
            mode,
            precision_log2: clock.precision_log2(),
            config: settings.config,
            logging: settings.logging,
            notifier: settings.notifier,
            status: String::new(),
            reload_tx,
            reloading: false,
            again: false,
            waiting: Vec::new(),
        },
    };
    driver.service.ready(&driver.shared, clock);
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

/// The node settings of `config` as this daemon runs them.
fn node_config(
    config: &Config,
    mode: ClockMode,
    precision_log2: i8,
    driftfile: &Option<PathBuf>,
) -> rntp_proto::node::NodeConfig {
    let mut node = rntp_config::node::node_config(config, mode);
    node.precision_log2 = precision_log2;
    node.drift_file = driftfile.is_some();
    node.leap.table = config.leapfile.as_deref().and_then(crate::clock::read_leapfile);
    node
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

    /// Applies a configuration read by [`Service::start_reload`] and says what changed (the
    /// reply to `rntpctl reload`). A configuration with errors changes nothing.
    fn finish_reload(&mut self, loaded: LoadedConfig) -> Reply {
        self.service.reloading = false;
        let label = loaded.origin.label();
        let result = self.apply_reload(loaded);
        if let Some(n) = &self.service.notifier {
            n.send("READY=1");
        }
        match result {
            Ok(info) => Reply::Reloaded(Box::new(info)),
            Err(errors) => {
                tracing::error!(
                    "reload failed, the running configuration stays in force; fix these and \
                     reload again (check with: rntpctl validate {label}):\n{errors}"
                );
                Reply::Error {
                    code: ErrorCode::ConfigError,
                    message: format!(
                        "{errors}\n{label}: not reloaded; the running configuration stays in force"
                    ),
                }
            }
        }
    }

    fn apply_reload(&mut self, loaded: LoadedConfig) -> Result<rntp_control::ReloadInfo, String> {
        let Loaded { config, warnings } = loaded.result.map_err(|e| e.to_string())?;
        // The keys first: sources the new configuration adds are checked against them.
        let keys = match loaded.keys {
            Some(KeyReload::Loaded(auth, key_warnings)) => {
                for w in key_warnings {
                    tracing::warn!("{w}");
                }
                Some(auth)
            }
            Some(KeyReload::Unreadable(why)) => {
                let kept = self.shared.with(|n| n.keys().clone());
                let missing = rntp_config::node::unusable_keys(&config, &kept);
                if !missing.is_empty() {
                    let list: Vec<String> =
                        missing.iter().map(|(at, key)| format!("{at}: key {key}")).collect();
                    return Err(format!(
                        "cannot read the key file ({why}), and the keys loaded at start lack \
                         what the new configuration uses:\n{}",
                        list.join("\n")
                    ));
                }
                tracing::warn!(
                    "cannot read the key file ({why}); the keys loaded at start stay in use \
                     (restart rntpd to read a changed key file)"
                );
                None
            }
            Some(KeyReload::Failed(e)) => return Err(e),
            None => None,
        };
        for w in &warnings {
            tracing::warn!("{w}");
        }
        let warning_count = warnings.len();
        drop(warnings);
        if loaded.origin != self.service.origin {
            tracing::info!("reloading from {}", loaded.origin.describe());
            self.service.origin = loaded.origin;
            self.info.config_file = self.service.origin.label();
        }
        let mut applied = Vec::new();
        let mut restart_needed = Vec::new();
        let running = &self.service.config;
        // The drift file is the driver's: its path is fixed at start (it was read then), and
        // observe mode never uses one.
        if self.service.mode == ClockMode::Control && config.driftfile != running.driftfile {
            restart_needed.push("driftfile".to_string());
        }
        let mut node_settings =
            node_config(&config, self.service.mode, self.service.precision_log2, &self.driftfile);
        if let Some(auth) = keys {
            let changed =
                self.shared.with(|n| n.keys() != &auth.keys || n.control_key() != auth.control_key);
            if changed {
                applied.push("keys".to_string());
            }
            self.shared.with(|n| n.set_keys(auth.clone()));
            node_settings.auth = auth;
        }
        let ttl = node_settings.ttl_ring.clone();
        self.shared.with(|n| n.set_ttl_ring(&ttl));
        if config.manycast_servers != running.manycast_servers {
            restart_needed.push("manycastserver".to_string());
        }
        let now = self.clock.now();
        let report = self.shared.with(|n| n.handle_config(now, node_settings));
        if config.resolvers != running.resolvers {
            match Dns::new(&config.resolvers) {
                Ok(dns) => {
                    self.dns = dns;
                    applied.push("resolver".to_string());
                }
                Err(e) => tracing::warn!(
                    "resolver lines changed but cannot be used ({e}); the previous DNS \
                     servers stay in use"
                ),
            }
        }
        match (&config.logfile, self.service.logging.file()) {
            (None, None) => {}
            (new, old) => match self.service.logging.set_file(new.as_deref()) {
                Ok(()) if new.as_deref() == old.as_deref() => {
                    applied.push("logfile reopened".into())
                }
                Ok(()) => applied.push("logfile".to_string()),
                Err(e) => tracing::error!("{e}; logging stays where it was"),
            },
        }
        // A reload is also the administrator's "try DNS again now" (NTPsec's SIGHUP does the
        // same): names waiting out a failure backoff are looked up at once.
        let now = self.clock.now();
        let retried = self.shared.with(|n| n.retry_lookups(now));
        if !retried.is_empty() {
            applied.push(format!("{} pending DNS lookup(s) retried", retried.len()));
        }
        self.service.config = config;
        let info = crate::report::reload_info(
            &self.info.config_file,
            &report,
            applied,
            restart_needed,
            warning_count,
        );
        tracing::info!("configuration reloaded from {}: {}", self.info.config_file, info.summary);
        Ok(info.info)
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

    /// Writes the drift file off the event loop (the write fsyncs twice).
    fn save_drift(&self, freq_ppm: f64) {
        let Some(path) = self.driftfile.clone() else { return };
        if self.drift_busy.replace(true) {
            return;
        }
        let busy = Rc::clone(&self.drift_busy);
        let failures = Rc::clone(&self.drift_failures);
        tokio::task::spawn_local(async move {
            let shown = path.clone();
            let written =
                tokio::task::spawn_blocking(move || crate::drift::write(&path, freq_ppm)).await;
            busy.set(false);
            let error = match written {
                Ok(Ok(())) => {
                    if failures.replace(0) > 0 {
                        tracing::info!(path = %shown.display(), "drift file written again");
                    }
                    tracing::debug!(path = %shown.display(), freq_ppm, "drift file saved");
                    return;
                }
                Ok(Err(e)) => e.to_string(),
                Err(e) => e.to_string(),
            };
            // The node asks again in an hour; say it once, not every hour.
            let n = failures.get().saturating_add(1);
            failures.set(n);
            if n == 1 {
                tracing::warn!(
                    path = %shown.display(), error = %error,
                    "cannot write the drift file; retrying hourly (the frequency is kept in memory)"
                );
            } else {
                tracing::debug!(path = %shown.display(), error = %error, failures = n, "drift file still not writable");
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

/// Binds and joins every `manycastserver` group.
fn bind_groups(config: &Config) -> io::Result<Vec<(SocketAddr, tokio::net::UdpSocket)>> {
    let mut groups = Vec::new();
    for m in &config.manycast_servers {
        let addr = SocketAddr::new(m.group, m.port);
        let socket = crate::manycast::bind_group(m.group, m.port).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "cannot join the manycast group {addr} ({}:{}): {e} (is there a route for \
                     multicast, e.g. a default route, on this host?)",
                    m.origin.file.display(),
                    m.origin.line
                ),
            )
        })?;
        groups.push((addr, socket));
    }
    Ok(groups)
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

/// Clock control when asked for; `--observe` otherwise. Control mode without CAP_SYS_TIME is
/// a fatal start-up error: a daemon that silently only observed would look healthy and never
/// set the clock.
fn clock_control(observe: bool) -> Result<Option<rntp_sys::KernelClock>, Fatal> {
    if observe {
        tracing::info!(
            "observe-only mode: rntpd measures, selects and keeps a virtual clock; it never \
             changes the system clock"
        );
        return Ok(None);
    }
    match rntp_sys::KernelClock::new() {
        Ok(kernel) => {
            tracing::info!("rntpd disciplines the system clock (--observe would only measure)");
            Ok(Some(kernel))
        }
        Err(e) => Err(Fatal::NoClockControl(format!(
            "cannot discipline the system clock: {e} (uid {}). Start rntpd as root or with \
             CAP_SYS_TIME (systemd: AmbientCapabilities=CAP_SYS_TIME), or pass --observe to \
             only measure and serve a virtual clock. Not starting.",
            rntp_sys::geteuid()
        ))),
    }
}
