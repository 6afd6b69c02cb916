//! rntpd: an NTP daemon that keeps hostnames first-class.
//!
//! This binary is a thin shell: parse arguments, load the configuration, set up logging, and
//! run the tokio current-thread runtime. Protocol logic lives in `rntp-proto`.
#![forbid(unsafe_code)]

mod clock;
mod control;
mod dns;
mod drift;
mod keys;
mod log;
mod manycast;
mod metrics;
mod net;
mod report;
mod runtime;
mod server;
mod shared;
mod stats;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

/// sysexits.h: configuration error.
const EX_CONFIG: u8 = 78;
/// sysexits.h: operating-system error (socket, signal setup).
const EX_OSERR: u8 = 71;

/// The built-in configuration used without `-c`: the public NTP pool.
const DEFAULT_CONFIG: &str = "\
# rntpd built-in configuration (used when no -c FILE is given)
pool pool.ntp.org iburst
";

/// The default control socket.
const DEFAULT_CONTROL_SOCKET: &str = "/run/rntpd/rntpd.sock";

/// NTP daemon (RFC 5905) with first-class hostnames and pools.
#[derive(Debug, Parser)]
#[command(name = "rntpd", version)]
struct Args {
    /// Configuration file, in ntp.conf syntax (see rntpd.conf(5)).
    ///
    /// Without it, rntpd uses a built-in configuration: `pool pool.ntp.org iburst`. Check a file
    /// first with `rntpctl validate FILE`.
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Never change the system clock: measure and serve a virtual clock.
    ///
    /// rntpd keeps a virtual disciplined clock instead (as `chronyd -x` does), reports it in
    /// `rntpctl status`, and serves its time. Without this flag rntpd disciplines the system
    /// clock, which needs CAP_SYS_TIME; without the capability it says so and observes.
    #[arg(long)]
    observe: bool,
    /// Control socket for rntpctl.
    ///
    /// rntpctl connects here (`rntpctl -s PATH`). Created with mode 0660 in a directory created with mode 0750. Read-only commands are open
    /// to the socket's group; `add`, `remove` and `refresh` need root or rntpd's own user.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_CONTROL_SOCKET)]
    control_socket: PathBuf,
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
    init_logging();

    let (loaded, config_file) = match &args.config {
        Some(path) => (rntp_config::load_file(path), path.display().to_string()),
        None => (
            rntp_config::parse_str(
                std::path::Path::new("(built-in)"),
                DEFAULT_CONFIG,
                &mut |p: &std::path::Path| std::fs::read_to_string(p),
            ),
            "(built-in default)".to_string(),
        ),
    };
    let loaded = match loaded {
        Ok(l) => l,
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!(
                "rntpd: configuration has errors; not starting (check with: rntpctl validate FILE)"
            );
            return ExitCode::from(EX_CONFIG);
        }
    };
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }

    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rntpd: cannot start the event loop: {e}");
            return ExitCode::from(EX_OSERR);
        }
    };
    let settings = runtime::Settings {
        config: loaded.config,
        config_file,
        control_socket: args.control_socket,
        observe: args.observe,
    };
    let local = tokio::task::LocalSet::new();
    match runtime.block_on(local.run_until(runtime::run(settings))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::from(EX_OSERR)
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only on a terminal: journald and log files get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .init();
}
