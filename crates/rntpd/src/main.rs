//! rntpd: an NTP daemon that keeps hostnames first-class.
//!
//! This binary is a thin shell: parse arguments, load the configuration, set up logging, and
//! run the tokio current-thread runtime. Protocol logic lives in `rntp-proto`.
#![forbid(unsafe_code)]

mod clock;
mod control;
mod dns;
mod drift;
mod log;
mod metrics;
mod net;
mod report;
mod runtime;
mod server;
mod service;
mod shared;
mod stats;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser};

/// sysexits.h: the `-u` user does not exist.
const EX_NOUSER: u8 = 67;
/// sysexits.h: operating-system error (socket, signal setup).
const EX_OSERR: u8 = 71;
/// sysexits.h: missing permission (CAP_SYS_TIME for control mode, root for `-u`).
const EX_NOPERM: u8 = 77;
/// sysexits.h: configuration error.
const EX_CONFIG: u8 = 78;

/// The default control socket.
const DEFAULT_CONTROL_SOCKET: &str = "/run/rntpd/rntpd.sock";

/// How long the log writer gets to write what is queued when rntpd exits.
const LOG_FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// NTP daemon (RFC 5905) with first-class hostnames and pools.
#[derive(Debug, Parser)]
#[command(name = "rntpd", version)]
struct Args {
    /// Configuration file (ntp.conf syntax, see rntpd.conf(5)).
    ///
    /// Without -c rntpd reads /etc/rntpd/ntp.conf, or, when that file does not exist, uses a
    /// built-in configuration (`pool 2.pool.ntp.org iburst`); the log says which. Check a file
    /// first with `rntpctl validate FILE`. SIGHUP and `rntpctl reload` read it again.
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Never change the system clock: measure and serve a virtual clock.
    ///
    /// rntpd keeps a virtual disciplined clock instead (as `chronyd -x` does), reports it in
    /// `rntpctl status`, and serves its time. Without this flag rntpd disciplines the system
    /// clock, which needs CAP_SYS_TIME: without it rntpd refuses to start (exit 77).
    #[arg(long)]
    observe: bool,
    /// Control socket for rntpctl.
    ///
    /// rntpctl connects here (`rntpctl -s PATH`). Created with mode 0660, in a directory
    /// created with mode 0750 if missing. Read-only commands are open to the socket's group;
    /// `add`, `remove`, `refresh` and `reload` need root or rntpd's own user.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_CONTROL_SOCKET)]
    control_socket: PathBuf,
    /// Run as USER once the sockets are bound (needs root).
    ///
    /// rntpd binds its server and control sockets as root, gives the control socket (and the
    /// log file) to USER, then switches to USER and its primary group, dropping supplementary
    /// groups and every capability but CAP_SYS_TIME (none with --observe). Under systemd,
    /// prefer the unit's User= with AmbientCapabilities= (the packaged unit does).
    #[arg(short = 'u', long = "user", value_name = "USER")]
    user: Option<String>,
    /// Log level: error, warn, info, debug or trace (default info).
    ///
    /// Without it, RUST_LOG applies (it can also name modules, e.g.
    /// `rntpd=debug,hickory_resolver=warn`); with neither, info.
    #[arg(
        long,
        value_name = "LEVEL",
        value_parser = ["error", "warn", "info", "debug", "trace"],
        hide_possible_values = true
    )]
    log_level: Option<String>,
}

/// The source of rntpd(8); the options come from `Args` (see rntp-docgen).
const MAN_SOURCE: &str = include_str!("../../../docs/man/rntpd.8.in.md");
/// What to edit instead of the generated page.
const MAN_SOURCES_NOTE: &str =
    "docs/man/rntpd.8.in.md and the --help texts in crates/rntpd/src/main.rs";

fn main() -> ExitCode {
    // Packaging hook, `rntpd --generate man|complete-bash|...` (scripts/gen-docs,
    // scripts/build-deb): only this binary has `Args`. Hidden from --help on purpose.
    if let Some(code) = rntp_docgen::hook(Args::command, MAN_SOURCE, MAN_SOURCES_NOTE) {
        return code;
    }
    let args = Args::parse();
    let logging = service::Logging::init(args.log_level.as_deref());
    let code = start(args, &logging);
    logging.flush(LOG_FLUSH_TIMEOUT);
    code
}

/// Everything between parsing the command line and exiting.
fn start(args: Args, logging: &service::Logging) -> ExitCode {
    let user = match args.user.as_deref().map(|name| (name, rntp_sys::lookup_user(name))) {
        None => None,
        Some((_, Ok(Some(user)))) => Some(user),
        Some((name, Ok(None))) => {
            tracing::error!("-u {name}: no such user (see getent passwd); not starting");
            return ExitCode::from(EX_NOUSER);
        }
        Some((name, Err(e))) => {
            tracing::error!("-u {name}: cannot look the user up: {e}; not starting");
            return ExitCode::from(EX_NOUSER);
        }
    };
    if let Some(user) = &user {
        let euid = rntp_sys::geteuid();
        if euid != 0 {
            tracing::error!(
                "-u {} needs root: rntpd runs as uid {euid} already; start it as root or drop -u",
                user.name
            );
            return ExitCode::from(EX_NOPERM);
        }
    }

    let loaded = service::load_config(args.config.as_deref());
    tracing::info!("{}", loaded.origin.describe());
    let rntp_config::Loaded { config, warnings } = match loaded.result {
        Ok(l) => l,
        Err(errors) => {
            tracing::error!("{errors}");
            tracing::error!(
                "configuration has errors; not starting (check with: rntpctl validate {})",
                loaded.origin.label()
            );
            return ExitCode::from(EX_CONFIG);
        }
    };
    for w in &warnings {
        tracing::warn!("{w}");
    }
    // Logged: the diagnostics (and the configuration text they share) are not kept.
    drop(warnings);
    if let Some(path) = &config.logfile {
        match logging.set_file(Some(path)) {
            Ok(()) => tracing::info!(path = %path.display(), "logging to the file from now on"),
            Err(e) => tracing::error!("{e}; logging to standard error instead"),
        }
    }

    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the event loop: {e}");
            return ExitCode::from(EX_OSERR);
        }
    };
    let settings = runtime::Settings {
        config,
        origin: loaded.origin,
        explicit_config: args.config,
        control_socket: args.control_socket,
        observe: args.observe,
        user,
        logging: logging.clone(),
        notifier: service::Notifier::from_env(),
    };
    let local = tokio::task::LocalSet::new();
    match runtime.block_on(local.run_until(runtime::run(settings))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(runtime::Fatal::NoClockControl(message)) => {
            tracing::error!("{message}");
            ExitCode::from(EX_NOPERM)
        }
        Err(runtime::Fatal::Os(e)) => {
            tracing::error!("{e}");
            ExitCode::from(EX_OSERR)
        }
    }
}
