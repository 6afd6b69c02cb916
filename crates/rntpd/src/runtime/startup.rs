//! Start-up: everything that must succeed before the loop runs (clock control, the control
//! socket, server and manycast sockets, keys, the drift file, the privilege drop), so that a
//! taken port or a missing capability is an error at start, not a half-working daemon.

use super::*;

/// A daemon ready to run: the loop's state, its control socket, the reload channel.
pub(super) struct Started {
    pub(super) driver: Driver,
    pub(super) control: ControlSocket,
    pub(super) reload_rx: mpsc::UnboundedReceiver<ReloadDone>,
}

/// Sets everything up in the order the comments give; nothing runs yet.
pub(super) async fn start(settings: Settings) -> Result<Started, Fatal> {
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

    let (reload_tx, reload_rx) = mpsc::unbounded_channel();
    let driver = Driver {
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
    Ok(Started { driver, control, reload_rx })
}

/// The node settings of `config` as this daemon runs them.
pub(super) fn node_config(
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
