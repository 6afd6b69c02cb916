//! Builds the daemon from a configuration and runs it until shutdown.
//!
//! The orchestrator: it turns configured sources into associations, starts one task per
//! association and the control server, and waits for SIGTERM/SIGINT. Everything runs on one
//! tokio current-thread runtime (as chronyd runs one event loop).

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use rntp_config::{Config, Host, SourceConfig};
use rntp_proto::assoc::{AssocConfig, AssocId, Association};
use rntp_proto::time::PollInterval;
use tokio::sync::watch;

use crate::assoc_driver::AssocTask;
use crate::clock::{Clock, DaemonRng};
use crate::control::{ControlSocket, DaemonFacts};
use crate::observe::{AssocEntry, Registry};

/// What `main` hands to the runtime.
#[derive(Debug)]
pub struct Settings {
    /// The parsed configuration.
    pub config: Config,
    /// Where it came from, for `status`.
    pub config_file: String,
    /// Control socket path.
    pub control_socket: PathBuf,
}

/// Spread of the first requests of associations started together (s).
const FIRST_POLL_SPREAD: f64 = 0.5;

/// Runs the daemon until SIGTERM or SIGINT. Errors are start-up failures (socket binds).
pub async fn run(settings: Settings) -> io::Result<()> {
    let clock = Clock::new();
    let started = clock.now();
    let registry = Arc::new(Registry::default());
    let (shutdown_tx, shutdown_rx) = watch::channel(false);

    tracing::info!(
        "observe-only mode: rntpd measures and reports, and never changes the system clock"
    );
    tracing::info!(precision = clock.precision_secs(), "clock precision measured");

    let control = ControlSocket::bind(&settings.control_socket).await.map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("control socket {}: {e}", settings.control_socket.display()),
        )
    })?;
    tracing::info!(path = %settings.control_socket.display(), "control socket ready");

    let mut tasks = Vec::new();
    let mut rng = DaemonRng::from_os();
    let mut seen: BTreeMap<SocketAddr, String> = BTreeMap::new();
    let mut next_id = 1u32;
    for source in &settings.config.sources {
        let Some(remote) = literal_addr(source) else {
            tracing::warn!(
                source = %display_host(&source.host),
                at = %format!("{}:{}", source.origin.file.display(), source.origin.line),
                "hostname sources are not resolved by this version yet; source skipped"
            );
            continue;
        };
        if let Some(first) = seen.get(&remote) {
            // No two associations may share an address: they would poll the same server
            // twice and count it twice in selection.
            tracing::warn!(
                %remote, first = %first,
                at = %format!("{}:{}", source.origin.file.display(), source.origin.line),
                "duplicate source ignored: this address is already configured"
            );
            continue;
        }
        seen.insert(remote, display_host(&source.host));
        let id = AssocId(next_id);
        next_id += 1;
        let assoc = Association::new(
            id,
            remote,
            assoc_config(source),
            clock.precision_secs(),
            clock.now(),
            FIRST_POLL_SPREAD,
            &mut rng,
        );
        let socket = crate::net::client_socket(remote)
            .await
            .map_err(|e| io::Error::new(e.kind(), format!("socket for server {remote}: {e}")))?;
        let now = clock.now();
        let (snap_tx, snap_rx) = watch::channel((now, assoc.snapshot(now)));
        registry.insert(id, AssocEntry { source: display_host(&source.host), snapshot: snap_rx });
        tracing::info!(id = id.0, %remote, "association mobilized");
        let task = AssocTask {
            assoc,
            source: display_host(&source.host),
            socket,
            clock,
            rng: DaemonRng::from_os(),
            snapshots: snap_tx,
            registry: Arc::clone(&registry),
            shutdown: shutdown_rx.clone(),
        };
        tasks.push(tokio::spawn(task.run()));
    }
    if tasks.is_empty() {
        tracing::warn!(
            "no usable time sources configured: rntpd will only answer control requests"
        );
    }

    let facts = DaemonFacts { mode: "observe", config_file: settings.config_file, started };
    let control_task =
        tokio::spawn(control.serve(Arc::clone(&registry), clock, facts, shutdown_rx.clone()));

    wait_for_signal().await?;
    tracing::info!("shutting down");
    let _ = shutdown_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    // Dropping the control socket (inside the task) removes its file.
    let _ = control_task.await;
    Ok(())
}

async fn wait_for_signal() -> io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
    Ok(())
}

fn literal_addr(source: &SourceConfig) -> Option<SocketAddr> {
    match &source.host {
        Host::Ip(ip) => Some(SocketAddr::new(*ip, source.port)),
        Host::Name(_) => None,
    }
}

fn display_host(host: &Host) -> String {
    match host {
        Host::Ip(ip) => ip.to_string(),
        Host::Name(name) => name.to_string(),
    }
}

fn assoc_config(source: &SourceConfig) -> AssocConfig {
    let o = &source.options;
    AssocConfig {
        minpoll: PollInterval::from_log2(o.minpoll),
        maxpoll: PollInterval::from_log2(o.maxpoll),
        iburst: o.iburst,
        burst: o.burst,
        version: o.version,
    }
}
