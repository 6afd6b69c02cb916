//! rntpctl: the command-line client of rntpd's control socket.
//!
//! It speaks the protocol in `rntp-control` (one length-prefixed JSON request, one response)
//! and formats the answer for a person, or passes it through as JSON with `--json`.
//! `rntpctl validate FILE` checks a configuration without any daemon.
#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use rntp_control::{
    decode_payload, encode_frame, frame_len, Command, PeerInfo, Reply, Request, Response,
    SourceInfo, StatusInfo, FRAME_HEADER_LEN,
};

/// How long to wait for the daemon's answer. The daemon answers from memory, so a slow reply
/// means it is stuck; say so rather than hang.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// Query and control a running rntpd.
#[derive(Debug, Parser)]
#[command(name = "rntpctl", version, about)]
struct Args {
    /// The daemon's control socket (rntpd --control-socket).
    #[arg(
        short = 's',
        long = "socket",
        value_name = "PATH",
        default_value = "/run/rntpd/rntpd.sock",
        global = true
    )]
    socket: PathBuf,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// List associations, like `ntpq -p`.
    Peers {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Configured sources with their DNS state: addresses, TTL, last and next lookup.
    Sources {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Daemon status and counters.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check a configuration file (no daemon needed). Exit 0: usable (warnings allowed);
    /// exit 1: errors.
    Validate {
        /// The ntp.conf-syntax file to check.
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = match args.command {
        Cmd::Validate { file } => return validate(&file),
        Cmd::Peers { json } => request(&args.socket, Command::Peers).map(|r| show(r, json)),
        Cmd::Status { json } => request(&args.socket, Command::Status).map(|r| show(r, json)),
        Cmd::Sources { json } => request(&args.socket, Command::Sources).map(|r| show(r, json)),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("rntpctl: {message}");
            ExitCode::FAILURE
        }
    }
}

fn validate(file: &Path) -> ExitCode {
    match rntp_config::load_file(file) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                println!("{w}");
            }
            let n = loaded.config.sources.len();
            println!(
                "{}: OK ({} source{}, {} warning{})",
                file.display(),
                n,
                if n == 1 { "" } else { "s" },
                loaded.warnings.len(),
                if loaded.warnings.len() == 1 { "" } else { "s" }
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            println!("{errors}");
            println!(
                "{}: {} error{}; rntpd would not start with this file",
                file.display(),
                errors.errors.len(),
                if errors.errors.len() == 1 { "" } else { "s" }
            );
            ExitCode::FAILURE
        }
    }
}

/// Sends one request and reads the reply.
fn request(socket: &Path, command: Command) -> Result<Reply, String> {
    let mut stream = UnixStream::connect(socket).map_err(|e| {
        format!(
            "cannot connect to {}: {e}. Is rntpd running? If it was started with \
             --control-socket PATH, pass the same path with -s PATH.",
            socket.display()
        )
    })?;
    let io_err = |e: std::io::Error| format!("talking to rntpd at {}: {e}", socket.display());
    stream.set_read_timeout(Some(REPLY_TIMEOUT)).map_err(io_err)?;
    let frame = encode_frame(&Request::new(command)).map_err(|e| e.to_string())?;
    stream.write_all(&frame).map_err(io_err)?;
    let mut header = [0u8; FRAME_HEADER_LEN];
    stream.read_exact(&mut header).map_err(io_err)?;
    let len = frame_len(header).map_err(|e| e.to_string())?;
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload).map_err(io_err)?;
    let response: Response = decode_payload(&payload).map_err(|e| e.to_string())?;
    Ok(response.reply)
}

fn show(reply: Reply, json: bool) -> ExitCode {
    let out = match reply {
        Reply::Error { code, message } => {
            eprintln!("rntpctl: rntpd refused the request ({code:?}): {message}");
            return ExitCode::FAILURE;
        }
        Reply::Peers { peers } if json => to_json(&peers),
        Reply::Peers { peers } => peers_table(&peers),
        Reply::Status(status) if json => to_json(&status),
        Reply::Status(status) => status_text(&status),
        Reply::Sources { sources } if json => to_json(&sources),
        Reply::Sources { sources } => sources_table(&sources),
        other => to_json(&other),
    };
    println!("{out}");
    ExitCode::SUCCESS
}

fn to_json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    // Serializing our own plain data types cannot fail.
    serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

/// Milliseconds with three decimals, or `-` before the first sample.
fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |s| format!("{:.3}", s * 1e3))
}

/// An `ntpq -p`-like table. Times in milliseconds, reach in octal as ntpq prints it.
fn peers_table(peers: &[PeerInfo]) -> String {
    let mut out = format!(
        "{:>3} {:<24} {:<22} {:<11} {:>2} {:<15} {:>5} {:>5} {:>5} {:>9} {:>10} {:>9}\n",
        "id",
        "source",
        "address",
        "state",
        "st",
        "refid",
        "when",
        "poll",
        "reach",
        "delay",
        "offset",
        "jitter"
    );
    out.push_str(&"=".repeat(130));
    for p in peers {
        let when = p.when.map_or_else(|| "-".to_string(), |w| format!("{:.0}", w));
        let state = match (&p.demobilized, &p.last_kod) {
            (Some(reason), _) => reason.clone(),
            _ => p.state.clone(),
        };
        out.push_str(&format!(
            "\n{:>3} {:<24} {:<22} {:<11} {:>2} {:<15} {:>5} {:>5} {:>5o} {:>9} {:>10} {:>9}",
            p.id.map_or_else(|| "-".to_string(), |id| id.to_string()),
            truncate(&p.source, 24),
            truncate(&p.address, 22),
            state,
            p.stratum.map_or_else(|| "-".to_string(), |s| s.to_string()),
            truncate(p.refid.as_deref().unwrap_or("-"), 15),
            when,
            if p.id.is_some() { secs(p.poll) } else { "-".to_string() },
            p.reach,
            ms(p.delay),
            ms(p.offset),
            ms(p.jitter),
        ));
        if let Some(err) = &p.last_error {
            out.push_str(&format!("\n    last lookup failed: {err}"));
        }
    }
    if peers.is_empty() {
        out.push_str("\n(no associations)");
    } else {
        out.push_str("\ntimes in ms; offset > 0: server ahead of this host; reach in octal");
    }
    out
}

/// Seconds as ntpq prints them, keeping sub-second poll intervals (rntpd allows minpoll -2).
fn secs(v: f64) -> String {
    if v >= 1.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

/// Seconds as a short human duration.
fn dur(v: f64) -> String {
    let a = v.abs();
    let text = if a < 120.0 {
        format!("{a:.0}s")
    } else if a < 7_200.0 {
        format!("{:.0}m", a / 60.0)
    } else {
        format!("{:.1}h", a / 3_600.0)
    };
    if v < 0.0 {
        format!("-{text}")
    } else {
        text
    }
}

fn sources_table(sources: &[SourceInfo]) -> String {
    let mut out = format!(
        "{:>3} {:<6} {:<28} {:>5} {:>6} {:>9} {:<34} {:>8} {:>7} {}\n",
        "id",
        "kind",
        "name",
        "port",
        "addrs",
        "ttl left",
        "last lookup",
        "next in",
        "queries",
        "associations"
    );
    out.push_str(&"=".repeat(130));
    for s in sources {
        let last = match &s.last_resolution {
            None if s.resolving => "in progress".to_string(),
            None => "-".to_string(),
            Some(r) if r.result == "ok" => format!(
                "ok, {} addr, TTL {}, {} ago",
                r.addresses.unwrap_or(0),
                dur(r.ttl.unwrap_or(0.0)),
                dur(r.ago)
            ),
            Some(r) => format!("FAILED {} ago", dur(r.ago)),
        };
        let next = match (s.resolving, s.next_resolution_in) {
            (true, _) => "now".to_string(),
            (false, Some(n)) => dur(n),
            (false, None) => "-".to_string(),
        };
        let assocs = if s.associations.is_empty() {
            "none".to_string()
        } else {
            s.associations.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
        };
        let assocs = match s.target {
            Some(t) => format!("{assocs} ({}/{t})", s.associations.len()),
            None => assocs,
        };
        out.push_str(&format!(
            "\n{:>3} {:<6} {:<28} {:>5} {:>6} {:>9} {:<34} {:>8} {:>7} {}",
            s.id,
            s.kind,
            truncate(&s.name, 28),
            s.port,
            s.addresses.len(),
            s.expires_in.map_or_else(|| "-".to_string(), dur),
            truncate(&last, 34),
            next,
            s.queries,
            assocs,
        ));
        if let Some(r) = s.last_resolution.as_ref().filter(|r| r.result != "ok") {
            out.push_str(&format!("\n    last lookup: {}", r.result));
        }
        if !s.addresses.is_empty() && s.name != s.addresses[0] {
            out.push_str(&format!("\n    addresses: {}", s.addresses.join(" ")));
        }
        out.push_str(&format!("\n    configured at {}", s.origin));
    }
    if sources.is_empty() {
        out.push_str("\n(no sources)");
    }
    out
}

fn status_text(s: &StatusInfo) -> String {
    let c = &s.counters;
    let dropped: u64 = c.dropped.iter().map(|(_, n)| n).sum();
    let mut out = format!(
        "rntpd {}\nuptime:        {:.0} s\nmode:          {}\nconfig:        {}\nsources:       {}\nassociations:  {} ({} reachable)\npackets:       {} sent, {} received, {} accepted, {} dropped, {} KoD, {} send errors",
        s.daemon_version, s.uptime, s.mode, s.config_file, s.sources, s.associations, s.reachable,
        c.sent, c.received, c.accepted, dropped, c.kod_received, c.send_errors
    );
    for (reason, n) in &c.dropped {
        out.push_str(&format!("\n  dropped {reason}: {n}"));
    }
    out
}
