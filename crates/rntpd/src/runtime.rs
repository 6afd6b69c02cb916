//! The orchestrator: builds the daemon from a configuration and runs it until shutdown.
//!
//! It owns the sans-IO [`SourceManager`] and executes its actions: DNS lookups (spawned, so
//! none ever blocks this loop), association tasks (one per association, each with its own
//! socket), moves and retirements. It forwards association events back to the manager and
//! answers control requests from memory. Everything runs on one tokio current-thread runtime,
//! as chronyd runs one event loop.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use std::collections::VecDeque;

use rntp_config::{AddressFamily, Config, Host, SourceConfig};
use rntp_control::{
    AddSource, Command, ErrorCode, HistoryEntry, PeerInfo, Reply, ResolutionInfo, SourceInfo,
    StatusInfo,
};
use rntp_proto::assoc::{AssocConfig, AssocEvent, AssocId, AssocState, Association};
use rntp_proto::discipline::{DisciplineConfig, MakeStep, VirtualClock};
use rntp_proto::select::{SelectConfig, Unusable, Verdict};
use rntp_proto::server::{Responder, SystemState};
use rntp_proto::source::{
    self, AddError, ResolveError, ResolvePolicy, Resolved, SourceAction, SourceEvent, SourceId,
    SourceKind, SourceManager, SourceSpec, Target,
};
use rntp_proto::steer::{RoundOutcome, SourceInput, SteeringEvent};
use rntp_proto::time::{Instant, NtpDuration, NtpTimestamp, PollInterval};
use rntp_proto::wire::{LeapIndicator, ReferenceId};
use tokio::sync::{mpsc, watch};

use crate::assoc_driver::{AssocCommand, AssocTask};
use crate::clock::{Clock, DaemonRng};
use crate::control::{ControlRequest, ControlSocket};
use crate::dns::Dns;
use crate::observe::{AssocEntry, Registry};
use crate::server::SharedResponder;
use crate::timekeeping::{ClockMode, Timekeeper};

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

/// Spread of the first requests of associations started together (s).
const FIRST_POLL_SPREAD: f64 = 0.5;
/// Members a pool aims for without `maxsources` (as chrony's default).
const DEFAULT_MAXSOURCES: u8 = 4;
/// Wait before retrying an association whose socket could not be opened (e.g. no route).
const SOCKET_RETRY_SECS: f64 = 30.0;
/// History entries kept for `rntpctl history`.
const HISTORY_LEN: usize = 1_000;

/// Runs the daemon until SIGTERM or SIGINT. Errors are start-up failures.
pub async fn run(settings: Settings) -> io::Result<()> {
    let clock = Clock::new();
    let mode = clock_mode(settings.observe);
    tracing::info!(precision = clock.precision_secs(), "clock precision measured");

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

    // Server sockets are bound before anything runs, so a taken port is a start-up error
    // an administrator sees at once, not a silent half-working daemon.
    let mut server_sockets = Vec::new();
    for listen in &settings.config.listen {
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
        tracing::info!(%addr, "serving time");
        if listen.addr.is_unspecified() {
            // Without IP_PKTINFO the kernel picks the reply's source address, which on a
            // multi-homed host may not be the one the client asked.
            tracing::warn!(
                %addr,
                "serving on a wildcard address: on a host with several addresses, clients may get                  replies from another address than they queried; list the addresses with                  `interface listen ADDR` instead"
            );
        }
        server_sockets.push((addr, socket));
    }
    if server_sockets.is_empty() {
        tracing::info!("not serving time: no `interface listen` line in the configuration");
    }

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (ctl_tx, ctl_rx) = mpsc::channel(16);
    let control_task = tokio::spawn(control.serve(ctl_tx, shutdown_rx.clone()));

    // Observe-only mode neither reads nor writes the drift file: the file may belong to an ntpd
    // that disciplines this clock (its frequency is already in the kernel, so applying it to
    // the virtual clock would count it twice), and overwriting it would change what that ntpd
    // sets the kernel to at its next start.
    let driftfile = match (&mode, &settings.config.driftfile) {
        (ClockMode::Observe, Some(path)) => {
            tracing::info!(path = %path.display(), "observe-only mode: the drift file is neither read nor written");
            None
        }
        (_, d) => d.clone(),
    };
    let initial_freq = match &driftfile {
        Some(path) => match crate::drift::read(path) {
            Ok(Some(freq)) => {
                tracing::info!(path = %path.display(), freq_ppm = freq, "frequency from the drift file");
                Some(freq)
            }
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(error = %e, "drift file unusable; starting without a frequency estimate");
                None
            }
        },
        None => None,
    };
    let select = SelectConfig {
        minclock: usize::from(settings.config.tos.minclock),
        minsane: usize::from(settings.config.tos.minsane),
        ..SelectConfig::default()
    };
    let timekeeper =
        Timekeeper::new(mode, select, discipline_config(&settings.config), driftfile, initial_freq);
    let mut daemon = Daemon::new(clock, dns, &settings, shutdown_rx.clone(), timekeeper);
    let mut server_tasks = Vec::new();
    for (addr, socket) in server_sockets {
        daemon.listening.push(addr.to_string());
        server_tasks.push(tokio::spawn(crate::server::serve(
            socket,
            Arc::clone(&daemon.responder),
            daemon.system_tx.subscribe(),
            daemon.served_clock_tx.subscribe(),
            clock,
            shutdown_rx.clone(),
        )));
    }
    daemon.load(&settings.config);
    let result = daemon.run(ctl_rx).await;

    tracing::info!("shutting down");
    let now = clock.now();
    daemon.timekeeper.write_drift(now);
    let _ = shutdown_tx.send(true);
    for (_, handle) in std::mem::take(&mut daemon.assocs) {
        let _ = handle.task.await;
    }
    for task in server_tasks {
        let _ = task.await;
    }
    // Dropping the control socket (inside the task) removes its file.
    let _ = control_task.await;
    result
}

/// A running association task.
struct AssocHandle {
    commands: mpsc::UnboundedSender<AssocCommand>,
    task: tokio::task::JoinHandle<()>,
}

struct Daemon {
    clock: Clock,
    rng: DaemonRng,
    started: Instant,
    config_file: String,
    registry: Arc<Registry>,
    manager: SourceManager,
    /// Where each source came from, for messages.
    origins: BTreeMap<SourceId, String>,
    /// Names of sources removed since the last `execute`, for their final history entries.
    names: BTreeMap<SourceId, String>,
    assocs: BTreeMap<AssocId, AssocHandle>,
    dns: Dns,
    dns_tx: mpsc::UnboundedSender<(SourceId, Result<Resolved, ResolveError>)>,
    dns_rx: mpsc::UnboundedReceiver<(SourceId, Result<Resolved, ResolveError>)>,
    events_tx: mpsc::UnboundedSender<(AssocId, AssocEvent)>,
    events_rx: mpsc::UnboundedReceiver<(AssocId, AssocEvent)>,
    shutdown: watch::Receiver<bool>,
    /// Server mode: the responder all server sockets share, and what it serves.
    responder: SharedResponder,
    system_tx: watch::Sender<SystemState>,
    /// `ip:port` of every server socket.
    listening: Vec<String>,
    /// `tos orphan` stratum.
    orphan: Option<u8>,
    /// The discipline and the clock it steers.
    timekeeper: Timekeeper,
    /// Observe mode: the virtual clock server mode serves (None: the system clock).
    served_clock_tx: watch::Sender<Option<VirtualClock>>,
    /// When the clock was last set (rntpd's time), for server mode's reference timestamp.
    reference_time: NtpTimestamp,
    /// Associations whose socket could not be opened, and when to try again.
    socket_retries: BTreeMap<AssocId, (Instant, SourceId, SocketAddr, AssocConfig)>,
    /// Mobilizations, moves and retirements, newest last.
    history: VecDeque<HistoryEntry>,
    /// Totals of the history by `event:reason`, since start.
    history_totals: BTreeMap<String, u64>,
}

impl Daemon {
    fn new(
        clock: Clock,
        dns: Dns,
        settings: &Settings,
        shutdown: watch::Receiver<bool>,
        timekeeper: Timekeeper,
    ) -> Self {
        let resolve = settings.config.resolve;
        let policy = ResolvePolicy {
            floor: f64::from(resolve.floor),
            ceiling: f64::from(resolve.ceiling),
            ..ResolvePolicy::default()
        };
        let maxclock = usize::from(settings.config.tos.maxclock);
        let (dns_tx, dns_rx) = mpsc::unbounded_channel();
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let mut rng = DaemonRng::from_os();
        let seed = rntp_proto::rng::RngSource::next_u64(&mut rng);
        let responder = Arc::new(std::sync::Mutex::new(Responder::new(
            crate::server::server_config(&settings.config),
            seed,
        )));
        let orphan = settings.config.tos.orphan;
        let (system_tx, _) = watch::channel(initial_system_state(clock.precision_log2(), orphan));
        let (served_clock_tx, _) = watch::channel(timekeeper.served_clock());
        Daemon {
            timekeeper,
            served_clock_tx,
            reference_time: NtpTimestamp::ZERO,
            socket_retries: BTreeMap::new(),
            responder,
            system_tx,
            listening: Vec::new(),
            orphan,
            history: VecDeque::new(),
            history_totals: BTreeMap::new(),
            clock,
            rng,
            started: clock.now(),
            config_file: settings.config_file.clone(),
            registry: Arc::new(Registry::default()),
            manager: SourceManager::new(policy, maxclock),
            origins: BTreeMap::new(),
            names: BTreeMap::new(),
            assocs: BTreeMap::new(),
            dns,
            dns_tx,
            dns_rx,
            events_tx,
            events_rx,
            shutdown,
        }
    }

    /// Adds every configured source; duplicates are reported and collapse into one.
    fn load(&mut self, config: &Config) {
        for source in &config.sources {
            let origin = format!("{}:{}", source.origin.file.display(), source.origin.line);
            let spec = spec_from_config(source);
            let now = self.clock.now();
            match self.manager.add(now, spec, &mut self.rng) {
                Ok(id) => {
                    self.origins.insert(id, origin);
                }
                Err(AddError::Duplicate { target, existing, .. }) => {
                    let first = self.origins.get(&SourceId(existing)).cloned().unwrap_or_default();
                    let hint = match (&target, source.kind) {
                        (Target::Name(_), rntp_config::SourceKind::Server) => {
                            "; to poll several servers behind one name, write `pool NAME` once"
                        }
                        _ => "",
                    };
                    tracing::warn!(
                        "{origin}: duplicate source `{target}` ignored: already configured at {first}{hint}"
                    );
                }
                Err(e) => tracing::warn!("{origin}: source ignored: {e}"),
            }
        }
        if config.sources.is_empty() {
            tracing::warn!("no time sources configured: rntpd will only answer control requests");
        }
    }

    async fn run(&mut self, mut ctl_rx: mpsc::Receiver<ControlRequest>) -> io::Result<()> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        loop {
            self.execute().await;
            let retry = self.socket_retries.values().map(|r| r.0).min();
            let sleep = match [self.manager.poll_timeout(), retry].into_iter().flatten().min() {
                Some(deadline) => tokio::time::sleep(self.clock.until(deadline)),
                None => tokio::time::sleep(std::time::Duration::from_secs(3_600)),
            };
            tokio::select! {
                () = sleep => {
                    let now = self.clock.now();
                    self.manager.handle_timeout(now, &mut self.rng);
                }
                Some((source, result)) = self.dns_rx.recv() => {
                    let now = self.clock.now();
                    self.manager.handle_resolved(now, source, result, &mut self.rng);
                }
                Some((assoc, event)) = self.events_rx.recv() => {
                    // An event a task sent just before it was told to stop (a sample racing
                    // its Demobilize) belongs to nothing any more.
                    if !self.assocs.contains_key(&assoc) {
                        continue;
                    }
                    let now = self.clock.now();
                    self.manager.handle_assoc_event(now, assoc, &event, &mut self.rng);
                    match event {
                        AssocEvent::Sample(sample) => {
                            // The association task publishes its snapshot in the same step that
                            // sends the event (one thread: it runs to its next await before we
                            // do), so the estimate already includes this sample.
                            let best = self
                                .registry
                                .snapshot(assoc)
                                .and_then(|s| s.estimate)
                                .is_some_and(|e| e.time == sample.time);
                            self.timekeeper.handle_sample(now, assoc, &sample, best);
                        }
                        AssocEvent::Unreachable | AssocEvent::Demobilized(_) => {
                            self.timekeeper.handle_source_change();
                        }
                        _ => {}
                    }
                    self.steer(now);
                }
                Some((command, reply)) = ctl_rx.recv() => {
                    let _ = reply.send(self.control(command));
                }
                _ = term.recv() => {
                    tracing::info!("SIGTERM received");
                    return Ok(());
                }
                _ = int.recv() => {
                    tracing::info!("SIGINT received");
                    return Ok(());
                }
                _ = self.shutdown.changed() => return Ok(()),
            }
        }
    }

    /// Carries out what the source manager decided, and logs what happened.
    async fn execute(&mut self) {
        let now = self.clock.now();
        let due: Vec<AssocId> =
            self.socket_retries.iter().filter(|(_, r)| r.0 <= now).map(|(id, _)| *id).collect();
        for id in due {
            if let Some((_, source, remote, config)) = self.socket_retries.remove(&id) {
                self.mobilize(id, source, remote, config).await;
            }
        }
        while let Some(action) = self.manager.poll_action() {
            match action {
                SourceAction::Resolve { source, name } => {
                    let (dns, tx, clock) = (self.dns.clone(), self.dns_tx.clone(), self.clock);
                    tracing::debug!(source = source.0, %name, "resolving");
                    // A task per lookup: a slow or silent DNS server never holds up this loop.
                    tokio::spawn(async move {
                        let result = dns.lookup(&name, clock).await;
                        let _ = tx.send((source, result));
                    });
                }
                SourceAction::Mobilize { assoc, source, remote, config } => {
                    self.mobilize(assoc, source, remote, config).await;
                }
                SourceAction::Move { assoc, remote } => {
                    self.timekeeper.handle_reset(assoc);
                    if let Some(retry) = self.socket_retries.get_mut(&assoc) {
                        retry.2 = remote;
                    }
                    if let Some(h) = self.assocs.get(&assoc) {
                        let _ = h.commands.send(AssocCommand::Move(remote));
                    }
                }
                SourceAction::Demobilize { assoc, reason } => {
                    self.timekeeper.handle_reset(assoc);
                    self.socket_retries.remove(&assoc);
                    if let Some(h) = self.assocs.remove(&assoc) {
                        let _ = h.commands.send(AssocCommand::Demobilize(reason));
                    }
                    self.registry.remove(assoc);
                }
            }
        }
        while let Some(event) = self.manager.poll_event() {
            self.log(event);
        }
        // Names of removed sources were kept only for the events just recorded.
        self.names.clear();
    }

    async fn mobilize(
        &mut self,
        id: AssocId,
        source: SourceId,
        remote: SocketAddr,
        config: AssocConfig,
    ) {
        let socket = match crate::net::client_socket(remote).await {
            Ok(s) => s,
            Err(e) => {
                // The source manager counts this association as running; keep it that way and
                // try again, so the address is neither lost nor handed to another association.
                tracing::error!(
                    id = id.0, %remote, error = %e,
                    "cannot open a socket for this server; retrying in {SOCKET_RETRY_SECS} s"
                );
                let at = self.clock.now().add_secs_f64(SOCKET_RETRY_SECS);
                self.socket_retries.insert(id, (at, source, remote, config));
                return;
            }
        };
        let now = self.clock.now();
        let assoc = Association::new(
            id,
            remote,
            config,
            self.clock.precision_secs(),
            now,
            FIRST_POLL_SPREAD,
            &mut self.rng,
        );
        let (snap_tx, snap_rx) = watch::channel((now, assoc.snapshot(now)));
        let (name, kind) = match self.manager.spec(source) {
            Some(spec) => (
                spec.target.to_string(),
                if matches!(spec.kind, SourceKind::Pool { .. }) { "pool-member" } else { "server" },
            ),
            None => (remote.ip().to_string(), "server"),
        };
        self.registry.insert(
            id,
            AssocEntry { source: name.clone(), source_id: source.0, kind, snapshot: snap_rx },
        );
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let task = AssocTask {
            assoc,
            source: name,
            socket,
            clock: self.clock,
            rng: DaemonRng::from_os(),
            snapshots: snap_tx,
            registry: Arc::clone(&self.registry),
            shutdown: self.shutdown.clone(),
            commands: cmd_rx,
            events: self.events_tx.clone(),
            pending_move: None,
        };
        let task = tokio::spawn(task.run());
        self.assocs.insert(id, AssocHandle { commands: cmd_tx, task });
    }

    fn log(&mut self, event: SourceEvent) {
        self.record(&event);
        let name = |id: SourceId| {
            self.manager.spec(id).map_or_else(|| format!("#{}", id.0), |s| s.target.to_string())
        };
        match event {
            SourceEvent::Resolved { name, addrs, ttl, next_in, .. } => {
                let next = if next_in.is_finite() {
                    format!("{next_in:.0} s")
                } else {
                    "when the pool needs addresses".to_string()
                };
                tracing::info!("{name}: resolved to {addrs} usable address(es), TTL {ttl:.0} s; next lookup in {next}");
            }
            SourceEvent::ResolveFailed { name, error, retry_in, repeated, have_addresses, .. } => {
                let keep = if have_addresses {
                    "the last good addresses stay in use"
                } else {
                    "no address known yet"
                };
                if repeated {
                    tracing::debug!("{name}: lookup failed again: {error}; retry in {retry_in:.0} s");
                } else {
                    tracing::warn!("{name}: lookup failed: {error}; {keep}; retry in {retry_in:.0} s");
                }
            }
            SourceEvent::Mobilized { source, assoc, remote, reason } => tracing::info!(
                id = assoc.0, %remote, reason = reason.name(),
                "{}: association mobilized", name(source)
            ),
            SourceEvent::Moved { source, assoc, from, to } => tracing::warn!(
                id = assoc.0, %from, %to,
                "{}: name no longer lists the address in use; association moved (filter and reach restart)",
                name(source)
            ),
            SourceEvent::Retired { source, assoc, remote, reason } => tracing::info!(
                id = assoc.0, %remote, reason = reason.name(),
                "{}: association retired", name(source)
            ),
            SourceEvent::NoFreeAddress { name, .. } => tracing::warn!(
                "{name}: every address in the answer is already polled or blocked; will ask again later"
            ),
        }
    }

    /// One steering round when something new arrived: selection over every association's
    /// latest estimate, the discipline, and what server mode tells clients.
    fn steer(&mut self, now: Instant) {
        if !self.timekeeper.wants_round() {
            return;
        }
        let inputs: Vec<SourceInput> = self
            .registry
            .snapshots()
            .iter()
            // A stopped association (KoD) keeps its last reach and filter for display, but it
            // is no source of time any more.
            .filter(|(_, snap)| !matches!(snap.state, AssocState::Demobilized(_)))
            .map(|(taken, snap)| {
                let (prefer, noselect) = self
                    .manager
                    .owner(snap.id)
                    .and_then(|s| self.manager.spec(s))
                    .map_or((false, false), |spec| (spec.prefer, spec.noselect));
                SourceInput {
                    prefer,
                    noselect,
                    aged_to: Some(*taken),
                    ..SourceInput::from_snapshot(snap, refid_for_address(snap.remote.ip()))
                }
            })
            .collect();
        let outcome = self.timekeeper.round(now, &inputs);
        while let Some(event) = self.timekeeper.poll_event() {
            match event {
                SteeringEvent::SystemPeer { to: Some(peer), .. } => {
                    let combined = self.timekeeper.selection().and_then(|s| s.combined);
                    tracing::info!(
                        id = peer.0,
                        stratum = combined.map(|c| c.stratum),
                        offset = combined.map(|c| c.offset),
                        "system peer selected"
                    );
                }
                SteeringEvent::SystemPeer { to: None, .. } => tracing::warn!(
                    "no system peer: too few sources agree (see `rntpctl peers` for each verdict)"
                ),
                SteeringEvent::PersistentFalseticker(id) => {
                    self.manager.handle_falseticker(now, id, &mut self.rng);
                }
            }
        }
        if outcome.updates() > 0 {
            self.served_clock_tx.send_replace(self.timekeeper.served_clock());
            // The reference time is when the clock was last set: rntpd's time now.
            let correction = NtpDuration::from_secs_f64(self.timekeeper.correction(now));
            self.reference_time = self.clock.wall().add_duration(correction);
        }
        if matches!(outcome, RoundOutcome::Skipped) {
            return;
        }
        // Every counted round decides what clients are told, including the round that lost the
        // last source: server mode must say "unsynchronized" then, not keep the old state.
        let combined = self.timekeeper.selection().and_then(|s| s.combined);
        let state = match combined {
            Some(c) if self.timekeeper.synchronized() => SystemState {
                leap: c.leap,
                stratum: c.stratum,
                precision: self.clock.precision_log2(),
                root_delay: c.root_delay,
                root_dispersion: c.root_dispersion,
                reference_id: c.reference_id,
                reference_time: self.reference_time,
            },
            _ => initial_system_state(self.clock.precision_log2(), self.orphan),
        };
        self.system_tx.send_replace(state);
    }

    /// Adds association events to the history.
    fn record(&mut self, event: &SourceEvent) {
        let (source, assoc, kind, address, old, reason) = match event {
            SourceEvent::Mobilized { source, assoc, remote, reason } => {
                (*source, *assoc, "mobilized", *remote, None, reason.name())
            }
            SourceEvent::Retired { source, assoc, remote, reason } => {
                (*source, *assoc, "retired", *remote, None, reason.name())
            }
            SourceEvent::Moved { source, assoc, from, to } => {
                (*source, *assoc, "moved", *to, Some(*from), "address-changed")
            }
            _ => return,
        };
        let name = self.manager.spec(source).map_or_else(
            || self.names.get(&source).cloned().unwrap_or_default(),
            |s| s.target.to_string(),
        );
        *self.history_totals.entry(format!("{kind}:{reason}")).or_default() += 1;
        if self.history.len() == HISTORY_LEN {
            self.history.pop_front();
        }
        self.history.push_back(HistoryEntry {
            time: self.clock.unix_secs(),
            source_id: source.0,
            source: name,
            association: assoc.0,
            event: kind.to_string(),
            address: address.to_string(),
            old_address: old.map(|a| a.to_string()),
            reason: reason.to_string(),
        });
    }

    fn control(&mut self, command: Command) -> Reply {
        let now = self.clock.now();
        match command {
            Command::Peers => Reply::Peers { peers: self.peers(now) },
            Command::Sources => Reply::Sources { sources: self.sources(now) },
            Command::History => Reply::History { entries: self.history.iter().cloned().collect() },
            Command::Add(add) => self.add_source(add),
            Command::Remove { name } => {
                let Some(id) = self.manager.find(&name) else {
                    return not_found(&name);
                };
                let associations = self
                    .manager
                    .snapshot()
                    .into_iter()
                    .find(|s| s.id == id)
                    .map(|s| s.assocs.iter().map(|(a, _)| a.0).collect())
                    .unwrap_or_default();
                self.names.insert(id, name.clone());
                self.origins.remove(&id);
                self.manager.remove(now, id, &mut self.rng);
                tracing::info!(source = id.0, %name, "source removed by rntpctl");
                Reply::Removed { source_id: id.0, associations }
            }
            Command::Refresh { name } => {
                let ids: Vec<SourceId> = match name {
                    Some(name) => match self.manager.find(&name) {
                        Some(id) => vec![id],
                        None => return not_found(&name),
                    },
                    None => self.manager.snapshot().iter().map(|s| s.id).collect(),
                };
                let refreshed: Vec<u32> = ids
                    .into_iter()
                    .filter(|id| self.manager.refresh(now, *id, &mut self.rng))
                    .map(|id| id.0)
                    .collect();
                Reply::Refreshing { sources: refreshed }
            }
            Command::Status => {
                let (associations, reachable) = self.registry.counts();
                Reply::Status(Box::new(StatusInfo {
                    daemon_version: env!("CARGO_PKG_VERSION").to_string(),
                    uptime: now.secs_since(self.started),
                    mode: self.timekeeper.mode_name().to_string(),
                    config_file: self.config_file.clone(),
                    sources: self.manager.snapshot().len(),
                    associations,
                    reachable,
                    counters: self.registry.counters.to_control(),
                    server: (!self.listening.is_empty())
                        .then(|| crate::server::counters(&self.responder)),
                    listening: self.listening.clone(),
                    serving_as: match (
                        self.system_tx.borrow().leap,
                        self.timekeeper.synchronized(),
                        self.orphan,
                    ) {
                        (LeapIndicator::Unsynchronized, _, _) => "unsynchronized",
                        (_, true, _) => "synchronized",
                        (_, false, Some(_)) => "orphan",
                        _ => "unsynchronized",
                    }
                    .to_string(),
                    stratum: self.system_tx.borrow().stratum,
                    kernel_clock: rntp_sys::kernel_clock_state().ok().map(|k| {
                        format!(
                            "{}, status {}, frequency {:+.3} ppm",
                            k.state,
                            k.status_names().join("|"),
                            k.freq_ppm
                        )
                    }),
                    clock_state: self.timekeeper.status().0.to_string(),
                    clock_frequency_ppm: self.timekeeper.status().1,
                    clock_correction: self.timekeeper.correction(now),
                    clock_offset: self.timekeeper.status().2,
                    system_peer: self
                        .timekeeper
                        .selection()
                        .and_then(|s| s.system_peer)
                        .map(|a| a.0),
                    system_offset: self
                        .timekeeper
                        .selection()
                        .and_then(|s| s.combined)
                        .map(|c| c.offset),
                    system_jitter: self
                        .timekeeper
                        .selection()
                        .and_then(|s| s.combined)
                        .map(|c| c.jitter),
                    history_totals: self
                        .history_totals
                        .iter()
                        .map(|(k, v)| (k.clone(), *v))
                        .collect(),
                }))
            }
            _ => Reply::Error {
                code: ErrorCode::BadRequest,
                message: "this rntpd does not support that command".to_string(),
            },
        }
    }

    /// `rntpctl add`: validated like a configuration line, then added at once. The reply goes
    /// out before any DNS lookup; the source shows up as resolving.
    fn add_source(&mut self, add: AddSource) -> Reply {
        let line = add_line(&add);
        let parsed = rntp_config::parse_str(
            std::path::Path::new("rntpctl add"),
            &line,
            &mut |_: &std::path::Path| Err(io::Error::other("no includes in rntpctl add")),
        );
        let config = match parsed {
            Ok(l) if l.config.sources.len() == 1 => l.config,
            Ok(_) => {
                return Reply::Error {
                    code: ErrorCode::InvalidArgument,
                    message: format!("`{line}` does not describe one source"),
                }
            }
            Err(e) => {
                return Reply::Error { code: ErrorCode::InvalidArgument, message: e.to_string() }
            }
        };
        let spec = spec_from_config(&config.sources[0]);
        let now = self.clock.now();
        match self.manager.add(now, spec, &mut self.rng) {
            Ok(id) => {
                self.origins.insert(id, "rntpctl add".to_string());
                tracing::info!(source = id.0, "added by rntpctl: {line}");
                Reply::Added { source_id: id.0 }
            }
            Err(e @ AddError::Duplicate { .. }) => {
                Reply::Error { code: ErrorCode::Duplicate, message: e.to_string() }
            }
            Err(e) => Reply::Error { code: ErrorCode::InvalidArgument, message: e.to_string() },
        }
    }

    /// Association rows, plus a row for each pool and each source without an association.
    fn peers(&self, now: Instant) -> Vec<PeerInfo> {
        let mut rows = self.registry.peers(now);
        if let Some(selection) = self.timekeeper.selection() {
            for row in &mut rows {
                let verdict = row
                    .id
                    .and_then(|id| selection.verdicts.iter().find(|(a, _)| a.0 == id))
                    .map(|(_, v)| *v);
                if let Some(v) = verdict {
                    row.tally = tally(v).to_string();
                    row.verdict = Some(verdict_name(v));
                }
            }
        }
        for s in self.manager.snapshot() {
            let is_pool = matches!(s.spec.kind, SourceKind::Pool { .. });
            if !is_pool && !s.assocs.is_empty() {
                continue;
            }
            let last_error = match &s.last_resolution {
                Some(source::ResolutionRecord { outcome: Err(e), .. }) => Some(e.to_string()),
                _ => None,
            };
            let state = if is_pool {
                "pool"
            } else if s.resolving || s.last_resolution.is_none() {
                "resolving"
            } else {
                "unresolved"
            };
            rows.push(PeerInfo {
                id: None,
                source_id: s.id.0,
                kind: if is_pool { "pool" } else { "unresolved" }.to_string(),
                source: s.spec.target.to_string(),
                address: String::new(),
                state: state.to_string(),
                last_error,
                stratum: None,
                refid: Some(if is_pool { ".POOL." } else { ".DNS." }.to_string()),
                reach: 0,
                poll: 0.0,
                when: None,
                offset: None,
                delay: None,
                dispersion: None,
                jitter: None,
                last_kod: None,
                demobilized: None,
                verdict: None,
                tally: " ".to_string(),
            });
        }
        rows.sort_by_key(|r| (r.source_id, r.id.is_some(), r.id));
        rows
    }

    fn sources(&self, now: Instant) -> Vec<SourceInfo> {
        self.manager
            .snapshot()
            .into_iter()
            .map(|s| SourceInfo {
                id: s.id.0,
                kind: match s.spec.kind {
                    SourceKind::Server => "server",
                    SourceKind::Pool { .. } => "pool",
                }
                .to_string(),
                name: s.spec.target.to_string(),
                port: s.spec.port,
                origin: self.origins.get(&s.id).cloned().unwrap_or_else(|| "rntpctl".into()),
                addresses: match &s.spec.target {
                    Target::Addr(ip) => vec![ip.to_string()],
                    Target::Name(_) => s.addrs.iter().map(ToString::to_string).collect(),
                },
                expires_in: s.valid_until.map(|t| t.secs_since(now)),
                last_resolution: s.last_resolution.map(|r| {
                    let (result, ttl, addresses) = match r.outcome {
                        Ok((n, ttl)) => ("ok".to_string(), Some(ttl), Some(n)),
                        Err(e) => (e.to_string(), None, None),
                    };
                    ResolutionInfo { ago: now.secs_since(r.at), result, ttl, addresses }
                }),
                next_resolution_in: s.next_resolution.map(|t| t.secs_since(now).max(0.0)),
                resolving: s.resolving,
                queries: s.queries,
                associations: s.assocs.iter().map(|(a, _)| a.0).collect(),
                target: s.target,
                pool_phase: s
                    .target
                    .map(|_| if s.filling { "filling" } else { "steady" }.to_string()),
                replacements_available: s.replacements_available,
                next_replacement_in: s.next_replacement.map(|t| t.secs_since(now).max(0.0)),
            })
            .collect()
    }
}

/// ntpq's tally character for a verdict.
fn tally(v: Verdict) -> char {
    match v {
        Verdict::SystemPeer => '*',
        Verdict::Survivor => '+',
        Verdict::Outlier => '-',
        Verdict::Falseticker => 'x',
        Verdict::Unusable(_) => ' ',
    }
}

fn verdict_name(v: Verdict) -> String {
    match v {
        Verdict::SystemPeer => "system-peer".into(),
        Verdict::Survivor => "survivor".into(),
        Verdict::Outlier => "outlier".into(),
        Verdict::Falseticker => "falseticker".into(),
        Verdict::Unusable(why) => format!(
            "unusable: {}",
            match why {
                Unusable::Noselect => "noselect",
                Unusable::Unreachable => "unreachable",
                Unusable::Unsynchronized => "server unsynchronized",
                Unusable::Distance => "root distance too large",
                Unusable::Loop => "timing loop (server is synchronized to us)",
                Unusable::Invalid => "invalid measurement",
                _ => "other",
            }
        ),
    }
}

/// The reference id our clients should see when this server is our system peer (RFC 5905
/// §7.3): its IPv4 address, or for IPv6 the first four octets of the MD5 of the address.
fn refid_for_address(ip: std::net::IpAddr) -> ReferenceId {
    match ip {
        std::net::IpAddr::V4(v4) => ReferenceId::from_ipv4(v4),
        std::net::IpAddr::V6(v6) => {
            let digest = md5::compute(v6.octets());
            ReferenceId::from_bytes([digest[0], digest[1], digest[2], digest[3]])
        }
    }
}

fn not_found(name: &str) -> Reply {
    Reply::Error {
        code: ErrorCode::NotFound,
        message: format!("no source named `{name}` (see `rntpctl sources`)"),
    }
}

/// The configuration line equivalent to an `rntpctl add` request, so that runtime additions
/// are checked by exactly the same rules (and messages) as the file.
fn add_line(a: &AddSource) -> String {
    let mut line = a.kind.clone();
    match a.family.as_str() {
        "ipv4" => line.push_str(" -4"),
        "ipv6" => line.push_str(" -6"),
        _ => {}
    }
    line.push(' ');
    line.push_str(&a.name);
    for (on, word) in
        [(a.iburst, "iburst"), (a.burst, "burst"), (a.prefer, "prefer"), (a.noselect, "noselect")]
    {
        if on {
            line.push(' ');
            line.push_str(word);
        }
    }
    line.push_str(&format!(
        " minpoll {} maxpoll {} version {} port {}",
        a.minpoll, a.maxpoll, a.ntp_version, a.port
    ));
    if let Some(m) = a.maxsources {
        line.push_str(&format!(" maxsources {m}"));
    }
    line
}

/// The discipline as configured: `tinker step/panic/stepout`, `makestep`, and the poll bounds
/// (the lowest `minpoll` and highest `maxpoll` of all sources: the start-up grace and the
/// correction horizon follow them).
fn discipline_config(config: &Config) -> DisciplineConfig {
    let min = config.sources.iter().map(|s| s.options.minpoll).min();
    let max = config.sources.iter().map(|s| s.options.maxpoll).max();
    let defaults = DisciplineConfig::default();
    let t = &config.tinker;
    DisciplineConfig {
        minpoll: min.map_or(PollInterval::DEFAULT_MIN, PollInterval::from_log2),
        maxpoll: max.map_or(PollInterval::DEFAULT_MAX, PollInterval::from_log2),
        step_threshold: t.step_secs().unwrap_or(defaults.step_threshold),
        panic_threshold: t.panic_secs().unwrap_or(defaults.panic_threshold),
        stepout: t.stepout_secs().unwrap_or(defaults.stepout),
        makestep: config.makestep.map(|m| MakeStep {
            threshold: m.threshold_secs(),
            limit: m.limit.unwrap_or(u32::MAX),
        }),
        ..defaults
    }
}

/// Observe unless asked to control and allowed to.
fn clock_mode(observe: bool) -> ClockMode {
    if observe {
        tracing::info!(
            "observe-only mode: rntpd measures, selects and keeps a virtual clock; it never changes the system clock"
        );
        return ClockMode::Observe;
    }
    match rntp_sys::KernelClock::new() {
        Ok(kernel) => {
            tracing::warn!(
                "rntpd disciplines the system clock (start with --observe to only measure)"
            );
            ClockMode::Control(kernel)
        }
        Err(e) => {
            tracing::error!(
                "cannot discipline the system clock: {e}; running observe-only (run as root with                  CAP_SYS_TIME to control the clock, or pass --observe to silence this)"
            );
            ClockMode::Observe
        }
    }
}

/// What server mode says before any source is selected: unsynchronized, or with `tos orphan N`
/// a stratum-N orphan parent as NTPsec answers (leap 0, refid 127.0.0.1, zero reference time,
/// root delay and dispersion; chronyd, ntpdig and check_ntp_time accept it).
fn initial_system_state(precision: i8, orphan: Option<u8>) -> SystemState {
    match orphan {
        None => SystemState::unsynchronized(precision),
        Some(stratum) => SystemState {
            leap: LeapIndicator::NoWarning,
            stratum,
            precision,
            root_delay: 0.0,
            root_dispersion: 0.0,
            reference_id: ReferenceId::from_bytes([127, 0, 0, 1]),
            reference_time: NtpTimestamp::ZERO,
        },
    }
}

fn spec_from_config(source: &SourceConfig) -> SourceSpec {
    let o = &source.options;
    SourceSpec {
        kind: match source.kind {
            rntp_config::SourceKind::Server => SourceKind::Server,
            rntp_config::SourceKind::Pool => {
                SourceKind::Pool { maxsources: o.maxsources.unwrap_or(DEFAULT_MAXSOURCES) }
            }
        },
        target: match &source.host {
            Host::Ip(ip) => Target::Addr(*ip),
            Host::Name(name) => Target::Name(name.to_string()),
        },
        port: source.port,
        assoc: AssocConfig {
            minpoll: PollInterval::from_log2(o.minpoll),
            maxpoll: PollInterval::from_log2(o.maxpoll),
            iburst: o.iburst,
            burst: o.burst,
            version: o.version,
        },
        family: match o.family {
            AddressFamily::Any => source::AddrFamily::Any,
            AddressFamily::V4 => source::AddrFamily::V4,
            AddressFamily::V6 => source::AddrFamily::V6,
        },
        prefer: o.prefer,
        noselect: o.noselect,
    }
}
