//! rntpd as a system service: which configuration it runs, what it tells systemd, how it logs
//! and how it gives up root.
//!
//! * [`load_config`]: `-c FILE`, else the default `/etc/rntpd/ntp.conf`, else (no file at all)
//!   the built-in [`BUILTIN_CONFIG`]; the log says which, and why.
//! * [`Logging`] (module `logging`): standard error, the journal with syslog priorities, or a
//!   `logfile`, through a bounded queue and a writer thread.
//! * [`Notifier`] (module `notify`): sd_notify's datagrams (`READY=1`, `STATUS=`, `RELOADING=1`,
//!   `STOPPING=1`, `WATCHDOG=1`) and [`status_line`], the `STATUS=` text.
//! * [`Service`]: the driver's service state: configuration reloads read off the event loop,
//!   one at a time ([`Service::start_reload`]), and the notifications.
//! * [`drop_root`]: `-u USER` after the sockets are bound: hand the files rntpd must still
//!   write to the user, then switch to it keeping only CAP_SYS_TIME (control mode) or nothing.

mod logging;
mod notify;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rntp_config::{Config, ConfigErrors, Loaded};
use rntp_control::Reply;
use rntp_proto::node::{ClockMode, Node};
use rntp_proto::time::Instant;
use rntp_sys::{Capability, User};
use tokio::sync::{mpsc, oneshot};

use crate::clock::Clock;
use crate::shared::Shared;

pub use logging::Logging;
pub use notify::{reloading_message, Notifier};

/// The configuration used when neither `-c FILE` nor the default file exists: the public NTP
/// pool's zone that also hands out IPv6 servers, as the packaged configuration uses.
pub const BUILTIN_CONFIG: &str = "pool 2.pool.ntp.org iburst\n";

/// Where the running configuration came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigOrigin {
    /// A file: given with `-c` (`default: false`) or the default path.
    File {
        /// The file.
        path: PathBuf,
        /// It is [`rntp_config::DEFAULT_CONFIG_PATH`], used because `-c` was not given.
        default: bool,
    },
    /// [`BUILTIN_CONFIG`]: no `-c` and no default file.
    Builtin,
}

impl ConfigOrigin {
    /// For `rntpctl status`: the path, or `(built-in default)`.
    pub fn label(&self) -> String {
        match self {
            ConfigOrigin::File { path, .. } => path.display().to_string(),
            ConfigOrigin::Builtin => "(built-in default)".to_string(),
        }
    }

    /// One line for the log saying what is used and why.
    pub fn describe(&self) -> String {
        match self {
            ConfigOrigin::File { path, default: false } => {
                format!("configuration {} (-c)", path.display())
            }
            ConfigOrigin::File { path, default: true } => {
                format!("configuration {} (the default; -c FILE selects another)", path.display())
            }
            ConfigOrigin::Builtin => format!(
                "no configuration file ({} does not exist and -c was not given): using the \
                 built-in configuration `{}`",
                rntp_config::DEFAULT_CONFIG_PATH,
                BUILTIN_CONFIG.trim()
            ),
        }
    }
}

/// A configuration read from its origin.
#[derive(Debug)]
pub struct LoadedConfig {
    /// Where it came from.
    pub origin: ConfigOrigin,
    /// The configuration, or every error with its `FILE:LINE:COL`.
    pub result: Result<Loaded, ConfigErrors>,
}

/// Reads the configuration: `explicit` (`-c`), else the default file, else the built-in one.
/// A default file that exists but cannot be read is an error, never a silent fallback.
/// Blocking (file I/O): at start, or off the event loop.
pub fn load_config(explicit: Option<&Path>) -> LoadedConfig {
    let default = Path::new(rntp_config::DEFAULT_CONFIG_PATH);
    let origin = match explicit {
        Some(path) => ConfigOrigin::File { path: path.to_path_buf(), default: false },
        None if matches!(default.try_exists(), Ok(false)) => ConfigOrigin::Builtin,
        None => ConfigOrigin::File { path: default.to_path_buf(), default: true },
    };
    let result = match &origin {
        ConfigOrigin::File { path, .. } => rntp_config::load_file(path),
        ConfigOrigin::Builtin => {
            rntp_config::parse_str(Path::new("(built-in)"), BUILTIN_CONFIG, &mut |p: &Path| {
                std::fs::read_to_string(p)
            })
        }
    };
    LoadedConfig { origin, result }
}

/// The `STATUS=` text: whether rntpd is synchronized, to what, and how many servers answer.
/// It changes only with the state, not with every sample.
pub fn status_line(node: &Node, now: Instant) -> String {
    let assocs = node.associations(now);
    let reachable = assocs.iter().filter(|(_, a)| a.reach != 0).count();
    let servers = format!("{reachable} of {} servers reachable", assocs.len());
    let observe = match node.mode() {
        ClockMode::Observe => " (observe-only: the system clock is not changed)",
        ClockMode::Control => "",
    };
    let peer = node
        .steering()
        .system_peer()
        .and_then(|id| assocs.iter().find(|(_, a)| a.id == id))
        .map(|(_, a)| a);
    match peer {
        Some(a) if node.synchronized() => {
            let stratum = a.server.map_or(String::new(), |s| format!(", stratum {}", s.stratum));
            format!("Synchronized to {}{stratum}; {servers}{observe}", a.remote)
        }
        _ if assocs.is_empty() => format!("Not synchronized: no server in use yet{observe}"),
        _ => format!("Not synchronized: {servers}{observe}"),
    }
}

/// A reload read off the loop (`Err`: the reader failed), with the control clients waiting
/// for its answer (none for SIGHUP).
pub type ReloadDone = (Result<LoadedConfig, String>, Vec<oneshot::Sender<Reply>>);

/// The service side of the driver: configuration reloads, systemd notification, logs.
pub struct Service {
    /// `-c FILE`, if given.
    pub explicit_config: Option<PathBuf>,
    /// Where the running configuration came from.
    pub origin: ConfigOrigin,
    /// Observe or control (fixed at start).
    pub mode: ClockMode,
    /// The clock's precision (fixed at start).
    pub precision_log2: i8,
    /// The configuration in force (what a reload is compared with).
    pub config: Config,
    /// The log.
    pub logging: Logging,
    /// systemd's notification socket, if any.
    pub notifier: Option<Notifier>,
    /// The last `STATUS=` sent.
    pub status: String,
    /// Where finished reads go (the driver's loop).
    pub reload_tx: mpsc::UnboundedSender<ReloadDone>,
    /// A reload is being read.
    pub reloading: bool,
    /// Reload requests made during that read: one more read follows it.
    pub again: bool,
    /// The control clients among them, answered by that next read.
    pub waiting: Vec<oneshot::Sender<Reply>>,
}

impl Service {
    /// `READY=1` with the first status, and the watchdog task if systemd wants one.
    pub fn ready(&mut self, shared: &Shared, clock: Clock) {
        let Some(n) = &self.notifier else { return };
        self.status = shared.with(|node| status_line(node, clock.now()));
        n.send(&format!("READY=1\nSTATUS={}", self.status));
        if let Some(every) = n.watchdog() {
            let n = n.clone();
            tokio::task::spawn_local(async move {
                // A task on the same loop: if the loop is stuck, no ping goes out and systemd
                // restarts rntpd.
                let mut tick = tokio::time::interval(every);
                loop {
                    tick.tick().await;
                    n.send("WATCHDOG=1");
                }
            });
        }
    }

    /// `STATUS=` when the synchronization state changed.
    pub fn update_status(&mut self, shared: &Shared, clock: Clock) {
        let Some(n) = &self.notifier else { return };
        let status = shared.with(|node| status_line(node, clock.now()));
        if status != self.status {
            n.send(&format!("STATUS={status}"));
            self.status = status;
        }
    }

    /// Reads the configuration again, off the loop; the result comes back as a [`ReloadDone`].
    /// One read at a time, so reloads apply in order: a request during a read is answered by
    /// one more read after it (which sees the file as it is then).
    pub fn start_reload(&mut self, reply: Option<oneshot::Sender<Reply>>) {
        self.waiting.extend(reply);
        if self.reloading {
            self.again = true;
            return;
        }
        let replies = std::mem::take(&mut self.waiting);
        self.reloading = true;
        if let Some(n) = &self.notifier {
            n.send(&reloading_message());
        }
        let explicit = self.explicit_config.clone();
        let done = self.reload_tx.clone();
        tokio::task::spawn_local(async move {
            let read = tokio::task::spawn_blocking(move || load_config(explicit.as_deref())).await;
            let _ = done.send((read.map_err(|e| e.to_string()), replies));
        });
    }
}

/// What [`drop_root`] must know about the files rntpd keeps writing as the new user.
#[derive(Debug)]
pub struct Paths<'a> {
    /// The control socket (removed at exit).
    pub control_socket: &'a Path,
    /// rntpd created the control socket's directory (so it may hand it over).
    pub created_socket_dir: bool,
    /// The log file, if any (reopened on reload).
    pub logfile: Option<&'a Path>,
    /// The drift file, if any (rewritten hourly and at exit).
    pub driftfile: Option<&'a Path>,
}

/// `-u USER`: hands the files rntpd writes to `user`, then switches to it keeping
/// CAP_SYS_TIME in control mode and nothing in observe mode (sockets are bound already, so
/// CAP_NET_BIND_SERVICE is never needed again). Problems the new user will have with a file are
/// warnings; failing to switch is an error (the caller must exit).
pub fn drop_root(user: &User, mode: ClockMode, paths: &Paths<'_>) -> Result<(), String> {
    let owner = |path: &Path| {
        std::os::unix::fs::chown(path, Some(user.uid), Some(user.gid))
            .map_err(|e| format!("cannot give {} to user {}: {e}", path.display(), user.name))
    };
    let socket_dir = parent(paths.control_socket);
    if paths.created_socket_dir {
        owner(&socket_dir)?;
    }
    owner(paths.control_socket)?;
    if !writable_by(&socket_dir, user) {
        tracing::warn!(
            "user {} cannot write to {}, so the control socket {} will stay behind when rntpd \
             stops (harmless: the next start replaces it); use a directory {} owns, such as \
             systemd's RuntimeDirectory=rntpd",
            user.name,
            socket_dir.display(),
            paths.control_socket.display(),
            user.name
        );
    }
    if let Some(log) = paths.logfile {
        owner(log)?;
        if !writable_by(&parent(log), user) {
            tracing::warn!(
                "user {} cannot create files in {}: after a log rotation rntpd keeps writing to \
                 the rotated file (use logrotate's `copytruncate`, or a directory {} may write to)",
                user.name,
                parent(log).display(),
                user.name
            );
        }
    }
    if let (Some(drift), ClockMode::Control) = (paths.driftfile, mode) {
        if !writable_by(&parent(drift), user) {
            tracing::warn!(
                "user {} cannot write to {}: the drift file {} will not be updated; give the \
                 directory to {} (the package's /var/lib/rntpd is)",
                user.name,
                parent(drift).display(),
                drift.display(),
                user.name
            );
        }
    }
    let keep: &[Capability] = match mode {
        ClockMode::Control => &[Capability::SysTime],
        ClockMode::Observe => &[],
    };
    rntp_sys::drop_privileges(user, keep)
        .map_err(|e| format!("cannot switch to user {}: {e}", user.name))?;
    let kept = if keep.is_empty() {
        "no capabilities".to_string()
    } else {
        "CAP_SYS_TIME only".to_string()
    };
    tracing::info!(user = %user.name, uid = user.uid, gid = user.gid, "running as user {}, keeping {kept}", user.name);
    Ok(())
}

fn parent(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Whether `user` (with only its primary group: supplementary groups are dropped) may create
/// and remove files in `dir` and reach it. Mode bits only; ACLs are not consulted.
fn writable_by(dir: &Path, user: &User) -> bool {
    if user.uid == 0 {
        return true;
    }
    let Ok(dir) = dir.canonicalize() else { return false };
    let allowed = |path: &Path, bits: u32| {
        std::fs::metadata(path).is_ok_and(|m| {
            let mode = m.mode();
            let class = if m.uid() == user.uid {
                mode >> 6
            } else if m.gid() == user.gid {
                mode >> 3
            } else {
                mode
            };
            class & bits == bits
        })
    };
    // Write and search on the directory, search on every ancestor.
    allowed(&dir, 0o3) && dir.ancestors().skip(1).all(|a| allowed(a, 0o1))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn built_in_configuration_is_the_ipv6_capable_pool() {
        let loaded = rntp_config::parse_str(Path::new("(built-in)"), BUILTIN_CONFIG, &mut |_| {
            Err(std::io::ErrorKind::NotFound.into())
        })
        .unwrap();
        assert_eq!(loaded.config.sources[0].host.to_string(), "2.pool.ntp.org");
        assert!(ConfigOrigin::Builtin.describe().contains("built-in configuration"));
    }

    #[test]
    fn explicit_missing_file_is_an_error_not_a_fallback() {
        let l = load_config(Some(Path::new("/nonexistent/rntpd.conf")));
        assert!(l.result.is_err());
        assert_eq!(l.origin.label(), "/nonexistent/rntpd.conf");
    }

    #[test]
    fn writability_follows_owner_group_and_other_bits() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let me = std::fs::metadata(&sub).unwrap();
        let stranger = User { name: "x".into(), uid: 4_000_000, gid: 4_000_000 };
        let same_group = User { name: "g".into(), uid: 4_000_000, gid: me.gid() };
        std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o750)).unwrap();
        assert!(!writable_by(&sub, &stranger));
        assert!(!writable_by(&sub, &same_group));
        std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o770)).unwrap();
        assert!(writable_by(&sub, &same_group));
        std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(writable_by(&sub, &stranger));
        // An ancestor the user cannot search hides the directory.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        assert!(!writable_by(&sub, &stranger));
    }
}
