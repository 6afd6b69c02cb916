//! rntpctl: the command-line client of rntpd's control socket.
//!
//! It speaks the protocol in `rntp-control` (one length-prefixed JSON request, one response)
//! and formats the answer for a person, or passes it through as JSON with `--json`.
//! `rntpctl validate FILE` checks a configuration without any daemon; `rntpctl wait-sync`
//! waits for rntpd to synchronize (module `wait`).
#![forbid(unsafe_code)]

mod wait;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

mod plot;

use clap::{CommandFactory, Parser, Subcommand};
use rntp_control::{
    decode_payload, encode_frame, frame_len, AddSource, Command, ErrorCode, HistoryEntry, PeerInfo,
    ReloadInfo, Reply, ReplyAssembler, Request, Response, SourceInfo, StatusInfo, FRAME_HEADER_LEN,
};

/// How long to wait for the daemon's answer. The daemon answers from memory, so a slow reply
/// means it is stuck; say so rather than hang.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// Query and control rntpd; check configuration files.
#[derive(Debug, Parser)]
#[command(name = "rntpctl", version)]
struct Args {
    /// rntpd's control socket.
    ///
    /// The path rntpd was started with (`rntpd --control-socket PATH`).
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
    ///
    /// The tally column shows the selection verdict: `*` system peer, `+` survivor, `-` outlier,
    /// `x` falseticker. There is a row per pool (`.POOL.`), per manycastclient (`.MCST.`) and
    /// per name that has not resolved (with the last error). Times are in milliseconds; reach
    /// is in octal.
    Peers {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Configured sources with their DNS state: addresses, TTL, last and next lookup.
    ///
    /// For each source: name, known addresses, time left on the DNS answer, last lookup (result,
    /// TTL, age), next lookup, lookup count and associations; for pools also the target size,
    /// the phase (`filling`/`steady`) and when the next replacement becomes possible.
    Sources {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Daemon status and counters.
    ///
    /// Version, uptime, mode (`observe`/`control`), the clock (discipline state, frequency,
    /// correction, last offset), the system peer, client and server packet counters, and
    /// history totals.
    Status {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Mobilizations, moves and retirements of associations, with reasons.
    ///
    /// Reasons: `configured`, `pool-fill`, `replacement`; `unreachable`, `unsynchronized`,
    /// `falseticker`, `kod-deny`, `kod-rstr`, `removed`, `pruned-extra`; `address-changed`.
    /// The daemon keeps the last 1000 entries.
    History {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Add a server or pool now, without a restart.
    ///
    /// Options as on an ntp.conf line, checked by the same parser as the file, e.g.
    /// `rntpctl add pool pool.ntp.org iburst maxsources 6`. The reply comes before DNS does.
    /// Not saved: after a restart only the configuration file counts.
    Add {
        /// `server` or `pool`.
        #[arg(value_parser = ["server", "pool"])]
        kind: String,
        /// Host name or address.
        name: String,
        /// ntp.conf options, e.g. iburst, minpoll N, maxsources N.
        ///
        /// The full list: iburst, burst, prefer, noselect, minpoll N, maxpoll N, version N,
        /// port N, maxsources N (pool only), -4/-6 (also accepted before the name).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        options: Vec<String>,
    },
    /// Remove a server, or a pool with all its members, by the name it was added with.
    Remove {
        /// Name or address as configured (see `rntpctl sources`).
        name: String,
    },
    /// Resolve a source's name again now (every named source without NAME).
    Refresh {
        /// Name as configured.
        name: Option<String>,
    },
    /// Plot clock offset, frequency and server offsets from the statistics files, as SVG.
    ///
    /// Reads `loopstats.*` and `peerstats.*` in STATSDIR (rntpd's, ntpd's or NTPsec's files;
    /// written with `statistics loopstats peerstats` in the configuration) and draws three
    /// panels: the clock offset, the frequency, and one line per server. No daemon needed.
    Plot {
        /// The statistics directory (`statsdir`).
        #[arg(long, value_name = "DIR", default_value = "/var/log/rntpd")]
        statsdir: PathBuf,
        /// Days to show, ending at the newest line.
        #[arg(long, default_value_t = 1.0)]
        days: f64,
        /// Where to write the SVG image.
        #[arg(short = 'o', long, value_name = "FILE", default_value = "rntpd-stats.svg")]
        output: PathBuf,
    },
    /// Re-read rntpd's configuration now, as SIGHUP does.
    ///
    /// Reads the configuration file and its `sourcedir` files again and applies the
    /// difference: new sources are added, removed ones stopped, unchanged ones keep their
    /// associations; sources added with `rntpctl add` are kept. Prints what changed and what
    /// needs a restart. A file with errors changes nothing: the errors are printed with
    /// FILE:LINE:COL and rntpctl exits 1.
    Reload {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Wait until rntpd's clock is synchronized (for scripts and boot).
    ///
    /// Asks rntpd once a second. Synchronized means: a system peer is selected and the
    /// discipline tracks it (and, with --max-offset, the remaining offset is within the bound).
    /// On a terminal it shows progress (servers reachable, current offset); otherwise it is
    /// quiet unless it fails. Exit 0: synchronized; 1: not within --timeout; 3: rntpd cannot
    /// be reached (or refused the request).
    WaitSync {
        /// Give up after S seconds (0: check once).
        ///
        /// Without --timeout rntpctl waits as long as it takes.
        #[arg(long, value_name = "S")]
        timeout: Option<f64>,
        /// Also wait until the remaining offset is at most S seconds.
        ///
        /// The offset of the clock rntpd keeps from the time its sources agree on: the system
        /// clock's, or with rntpd --observe its virtual clock's.
        #[arg(long, value_name = "S")]
        max_offset: Option<f64>,
    },
    /// Check a configuration file; no daemon needed.
    ///
    /// Prints every error and warning with FILE:LINE:COL, including those of the *.sources
    /// files of its `sourcedir` lines. Exit 0: usable (warnings allowed); exit 1: errors,
    /// rntpd would not start with this file.
    Validate {
        /// The ntp.conf-syntax file to check (default: /etc/rntpd/ntp.conf).
        file: Option<PathBuf>,
    },
}

/// The source of rntpctl(8); the commands and options come from `Args` (see rntp-docgen).
const MAN_SOURCE: &str = include_str!("../../../docs/man/rntpctl.8.in.md");
/// What to edit instead of the generated page.
const MAN_SOURCES_NOTE: &str =
    "docs/man/rntpctl.8.in.md and the --help texts in crates/rntpctl/src/main.rs";

fn main() -> ExitCode {
    // Packaging hook, `rntpctl --generate man|complete-bash|...` (scripts/gen-docs,
    // scripts/build-deb): only this binary has `Args`. Hidden from --help on purpose.
    if let Some(code) = rntp_docgen::hook(Args::command, MAN_SOURCE, MAN_SOURCES_NOTE) {
        return code;
    }
    let args = Args::parse();
    let result = match args.command {
        Cmd::Validate { file } => {
            return validate(&file.unwrap_or_else(|| rntp_config::DEFAULT_CONFIG_PATH.into()))
        }
        Cmd::Plot { statsdir, days, output } => plot(&statsdir, days, &output),
        Cmd::WaitSync { timeout, max_offset } => {
            return wait::wait_sync(&args.socket, timeout, max_offset)
        }
        Cmd::Reload { json } => request(&args.socket, Command::Reload).map(|r| show(r, json)),
        Cmd::Peers { json } => request(&args.socket, Command::Peers).map(|r| show(r, json)),
        Cmd::Status { json } => request(&args.socket, Command::Status).map(|r| show(r, json)),
        Cmd::Sources { json } => request(&args.socket, Command::Sources).map(|r| show(r, json)),
        Cmd::History { json } => request(&args.socket, Command::History).map(|r| show(r, json)),
        Cmd::Add { kind, name, options } => match add_request(&kind, &name, &options) {
            Ok(add) => request(&args.socket, Command::Add(add)).map(|r| show(r, false)),
            Err(message) => Err(message),
        },
        Cmd::Remove { name } => {
            request(&args.socket, Command::Remove { name }).map(|r| show(r, false))
        }
        Cmd::Refresh { name } => {
            request(&args.socket, Command::Refresh { name }).map(|r| show(r, false))
        }
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("rntpctl: {message}");
            ExitCode::FAILURE
        }
    }
}

fn plot(statsdir: &Path, days: f64, output: &Path) -> Result<ExitCode, String> {
    if !(days > 0.0 && days.is_finite()) {
        return Err(format!("--days must be a positive number of days, not {days}"));
    }
    let data = plot::read(statsdir, days)?;
    let title = format!("rntpd statistics: {}", statsdir.display());
    std::fs::write(output, plot::svg(&data, &title))
        .map_err(|e| format!("cannot write {}: {e}", output.display()))?;
    out_line(&format!(
        "{}: clock offset ({} points), frequency, {} server{}",
        output.display(),
        data.offset.len(),
        data.peers.len(),
        if data.peers.len() == 1 { "" } else { "s" }
    ));
    Ok(ExitCode::SUCCESS)
}

fn validate(file: &Path) -> ExitCode {
    match rntp_config::load_file(file) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                out_line(&w.to_string());
            }
            if let Err(e) = validate_keys(&loaded.config) {
                out_line(&e);
                out_line(&format!("{}: key file errors; rntpd would not start", file.display()));
                return ExitCode::FAILURE;
            }
            let n = loaded.config.sources.len();
            // Counted, not listed: the list stops at rntp_config::MAX_DIAGNOSTICS.
            let w = loaded.warning_count();
            out_line(&format!(
                "{}: OK ({} source{}, {} warning{})",
                file.display(),
                n,
                if n == 1 { "" } else { "s" },
                w,
                if w == 1 { "" } else { "s" }
            ));
            ExitCode::SUCCESS
        }
        Err(errors) => {
            out_line(&errors.to_string());
            let n = errors.error_count();
            out_line(&format!(
                "{}: {} error{}; rntpd would not start with this file",
                file.display(),
                n,
                if n == 1 { "" } else { "s" }
            ));
            ExitCode::FAILURE
        }
    }
}

/// Checks the key file a configuration names (`keys FILE`), as rntpd does at start: every
/// error in it is fatal when a line needs keys (a source with `key N`, a `manycastserver`),
/// else a warning; every key a source uses must be in it and trusted. A key file this user
/// may not read (it should be readable by rntpd only) is a note, not an error.
fn validate_keys(config: &rntp_config::Config) -> Result<(), String> {
    let Some(keys) = &config.auth.keys else { return Ok(()) };
    if let Err(e) = std::fs::File::open(&keys.path) {
        if e.kind() == std::io::ErrorKind::PermissionDenied {
            out_line(&format!(
                "{}: note: cannot read the key file ({e}); run `rntpctl validate` as the user rntpd \
                 runs as to check it",
                keys.path.display()
            ));
            return Ok(());
        }
    }
    let file = match rntp_config::keys::load_keys(&keys.path) {
        Ok(file) => file,
        Err(e) if rntp_config::node::needs_keys(config) => return Err(e.to_string()),
        Err(e) => {
            out_line(&format!(
                "{}: warning: the key file cannot be used; no source uses a key, so rntpd would \
                 run without keys (`ntpq :config` refused):\n{e}",
                keys.path.display()
            ));
            return Ok(());
        }
    };
    for w in &file.warnings {
        out_line(&w.to_string());
    }
    let auth = rntp_config::node::auth_config(&config.auth, Some(file));
    if let Some(key) = rntp_config::node::control_key_unusable(config, &auth.keys) {
        out_line(&format!(
            "warning: controlkey {key} is not a trusted key of {}; `ntpq :config` would be refused",
            keys.path.display()
        ));
    }
    let unusable = rntp_config::node::unusable_keys(config, &auth.keys);
    if unusable.is_empty() {
        return Ok(());
    }
    Err(unusable
        .iter()
        .map(|(at, key)| {
            format!("{at}: error: key {key} is not in {} (or not trusted)", keys.path.display())
        })
        .collect::<Vec<_>>()
        .join("\n"))
}

/// Sends one request and reads the reply (one frame, or several for a large list).
pub(crate) fn request(socket: &Path, command: Command) -> Result<Reply, String> {
    let frame = match encode_frame(&Request::new(command)) {
        Ok(frame) => frame,
        Err(e) => return Err(format!("request not sent: {e}")),
    };
    let mut stream = UnixStream::connect(socket).map_err(|e| {
        format!(
            "cannot connect to {}: {e}. Is rntpd running? If it was started with \
             --control-socket PATH, pass the same path with -s PATH.",
            socket.display()
        )
    })?;
    let io_err = |e: std::io::Error| format!("talking to rntpd at {}: {e}", socket.display());
    stream.set_read_timeout(Some(REPLY_TIMEOUT)).map_err(io_err)?;
    // rntpd may answer (e.g. refuse) before it has read all of a request; its reply is still
    // worth reading, so a failed write is reported only if no reply follows.
    let written = stream.write_all(&frame).map_err(io_err);
    let mut assembler = ReplyAssembler::new();
    loop {
        let mut header = [0u8; FRAME_HEADER_LEN];
        if let Err(e) = stream.read_exact(&mut header) {
            return Err(written.err().unwrap_or_else(|| io_err(e)));
        }
        let len = frame_len(header).map_err(|e| e.to_string())?;
        let mut payload = vec![0u8; len];
        stream.read_exact(&mut payload).map_err(io_err)?;
        let response: Response = decode_payload(&payload).map_err(|e| e.to_string())?;
        if let Some(reply) = assembler.push(response).map_err(|e| e.to_string())? {
            return Ok(reply);
        }
    }
}

fn show(reply: Reply, json: bool) -> ExitCode {
    let out = match reply {
        Reply::Error { code: ErrorCode::ConfigError, message } => {
            eprintln!("{message}");
            return ExitCode::FAILURE;
        }
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
        Reply::History { entries } if json => to_json(&entries),
        Reply::History { entries } => history_table(&entries),
        Reply::Reloaded(info) if json => to_json(&info),
        Reply::Reloaded(info) => reload_text(&info),
        Reply::Added { source_id } => format!(
            "added as source {source_id}; it resolves in the background (watch `rntpctl sources`)"
        ),
        Reply::Removed { source_id, associations } => format!(
            "removed source {source_id} and {} association{}",
            associations.len(),
            if associations.len() == 1 { "" } else { "s" }
        ),
        Reply::Refreshing { sources } if sources.is_empty() => {
            "nothing to resolve: no named sources".to_string()
        }
        Reply::Refreshing { sources } => format!(
            "resolving {} source{} again (see `rntpctl sources`)",
            sources.len(),
            if sources.len() == 1 { "" } else { "s" }
        ),
        other => to_json(&other),
    };
    out_line(&out);
    ExitCode::SUCCESS
}

/// Prints a line to stdout. A closed pipe (`rntpctl peers | head`) ends the program quietly
/// instead of panicking, as Unix tools do; other write errors are reported.
fn out_line(text: &str) {
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("rntpctl: cannot write to standard output: {e}");
        std::process::exit(1);
    }
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
            "\n{}{:>3} {:<24} {:<22} {:<11} {:>2} {:<15} {:>5} {:>5} {:>5o} {:>9} {:>10} {:>9}",
            p.tally,
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
        out.push_str(
            "\n* system peer, + survivor, - outlier, x falseticker; times in ms; \
             offset > 0: server ahead of this host; reach in octal",
        );
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

/// Checks `rntpctl add` arguments with the configuration parser (same rules and messages as
/// ntp.conf) and turns them into a structured request.
fn add_request(kind: &str, name: &str, options: &[String]) -> Result<AddSource, String> {
    let mut words = vec![kind.to_string()];
    // ntpd writes -4/-6 before the host; accept them anywhere on the command line.
    let (family, rest): (Vec<&String>, Vec<&String>) =
        options.iter().partition(|o| matches!(o.as_str(), "-4" | "-6" | "--ipv4" | "--ipv6"));
    words.extend(family.into_iter().cloned());
    words.push(name.to_string());
    words.extend(rest.into_iter().cloned());
    let line = words.join(" ");
    let loaded = rntp_config::parse_str(Path::new("rntpctl add"), &line, &mut |_: &Path| {
        Err(std::io::Error::other("includefile is not allowed here"))
    })
    .map_err(|e| format!("invalid source:\n{e}"))?;
    for w in &loaded.warnings {
        eprintln!("{w}");
    }
    let Some(src) = loaded.config.sources.first() else {
        return Err(format!("`{line}` does not describe a source"));
    };
    let o = &src.options;
    Ok(AddSource {
        kind: kind.to_string(),
        name: src.host.to_string(),
        port: src.port,
        iburst: o.iburst,
        burst: o.burst,
        prefer: o.prefer,
        noselect: o.noselect,
        minpoll: o.minpoll,
        maxpoll: o.maxpoll,
        ntp_version: o.version,
        maxsources: o.maxsources,
        family: match o.family {
            rntp_config::AddressFamily::Any => "any",
            rntp_config::AddressFamily::V4 => "ipv4",
            rntp_config::AddressFamily::V6 => "ipv6",
        }
        .to_string(),
    })
}

fn history_table(entries: &[HistoryEntry]) -> String {
    let mut out = format!(
        "{:<20} {:>6} {:<24} {:>5} {:<9} {:<16} {:<46}",
        "time (UTC)", "source", "name", "assoc", "event", "reason", "address"
    );
    out.push('\n');
    out.push_str(&"=".repeat(130));
    for e in entries {
        let address = match &e.old_address {
            Some(old) => format!("{old} -> {}", e.address),
            None => e.address.clone(),
        };
        out.push_str(&format!(
            "\n{:<20} {:>6} {:<24} {:>5} {:<9} {:<16} {:<46}",
            utc(e.time),
            e.source_id,
            truncate(&e.source, 24),
            e.association,
            e.event,
            e.reason,
            address
        ));
    }
    if entries.is_empty() {
        out.push_str("\n(no events yet)");
    }
    out
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS` UTC (proleptic Gregorian).
fn utc(t: f64) -> String {
    let secs = t.floor() as i64;
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = rntp_proto::time::civil_from_days(secs.div_euclid(86_400));
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}", rem / 3_600, rem % 3_600 / 60, rem % 60)
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
        if let Some(phase) = &s.pool_phase {
            let next = match (s.replacements_available, s.next_replacement_in) {
                (Some(n), Some(t)) => {
                    format!("; {n} replacement(s) available now, next in {}", dur(t))
                }
                (Some(n), None) => format!("; {n} replacement(s) available now"),
                (None, _) => String::new(),
            };
            out.push_str(&format!("\n    pool: {phase}{next}"));
        }
        out.push_str(&format!("\n    configured at {}", s.origin));
    }
    if sources.is_empty() {
        out.push_str("\n(no sources)");
    }
    out
}

/// What `rntpctl reload` prints.
fn reload_text(r: &ReloadInfo) -> String {
    let mut out = format!("reloaded {}", r.config_file);
    let list = |v: &[String]| v.join(", ");
    for (what, v) in [
        ("added:          ", &r.added),
        ("removed:        ", &r.removed),
        ("replaced:       ", &r.replaced),
        ("adopted:        ", &r.adopted),
    ] {
        if !v.is_empty() {
            out.push_str(&format!("\n  {what}{}", list(v)));
        }
    }
    if !r.replaced.is_empty() {
        out.push_str("\n                  (options changed: new associations)");
    }
    if !r.adopted.is_empty() {
        out.push_str("\n                  (added with rntpctl add, now in the files)");
    }
    if !r.rejected.is_empty() {
        out.push_str(&format!("\n  refused:        {} (rntpd's log says why)", list(&r.rejected)));
    }
    out.push_str(&format!(
        "\n  unchanged:      {} source{} (associations kept)",
        r.unchanged,
        if r.unchanged == 1 { "" } else { "s" }
    ));
    if r.runtime_kept > 0 {
        out.push_str(&format!("; {} from rntpctl add, kept", r.runtime_kept));
    }
    if !r.applied.is_empty() {
        out.push_str(&format!("\n  applied:        {}", list(&r.applied)));
    }
    if !r.restart_needed.is_empty() {
        out.push_str(&format!(
            "\n  restart needed: {} (the running values stay until rntpd restarts)",
            list(&r.restart_needed)
        ));
    }
    if r.warnings > 0 {
        out.push_str(&format!("\n  warnings:       {} (in rntpd's log)", r.warnings));
    }
    out
}

fn status_text(s: &StatusInfo) -> String {
    let c = &s.counters;
    let dropped: u64 = c.dropped.iter().map(|(_, n)| n).sum();
    let mut out = format!(
        "rntpd {}\nuptime:        {:.0} s\nmode:          {}\nsynchronized:  {}\nconfig:        {}\nsources:       {}\nassociations:  {} ({} reachable)\npackets:       {} sent, {} received, {} accepted, {} dropped, {} KoD, {} send errors",
        s.daemon_version, s.uptime, s.mode, if s.synchronized { "yes" } else { "no" }, s.config_file, s.sources, s.associations, s.reachable,
        c.sent, c.received, c.accepted, dropped, c.kod_received, c.send_errors
    );
    for (reason, n) in &c.dropped {
        out.push_str(&format!("\n  dropped {reason}: {n}"));
    }
    if s.listening.is_empty() {
        out.push_str("\nserving:       no (no `interface listen` line)");
    } else {
        out.push_str(&format!(
            "\nserving:       {} as {} (stratum {})",
            s.listening.join(", "),
            s.serving_as,
            s.stratum
        ));
    }
    out.push_str(&format!(
        "\nclock:         {} ({}), frequency {:+.3} ppm, correction {:+.6} s, last offset {}",
        s.mode,
        s.clock_state,
        s.clock_frequency_ppm,
        s.clock_correction,
        s.clock_offset.map_or_else(|| "-".to_string(), |o| format!("{o:+.6} s"))
    ));
    if let Some(kernel) = &s.kernel_clock {
        out.push_str(&format!("\nkernel clock:  {kernel}"));
    }
    match (s.system_peer, s.system_offset) {
        (Some(peer), Some(offset)) => out.push_str(&format!(
            "\nsystem peer:   association {peer}; combined offset {:+.6} s, jitter {:.6} s",
            offset,
            s.system_jitter.unwrap_or(0.0)
        )),
        _ => out.push_str("\nsystem peer:   none (not enough sources agree yet)"),
    }
    if !s.history_totals.is_empty() {
        out.push_str("\nhistory:");
        for (what, n) in &s.history_totals {
            out.push_str(&format!("\n  {what}: {n}"));
        }
    }
    if let Some(srv) = &s.server {
        let dropped: u64 = srv.dropped.iter().map(|(_, n)| n).sum();
        out.push_str(&format!(
            "\nserver:        {} requests, {} replies, {} RATE KoD, {} DENY KoD, {} crypto-NAK, {} dropped; rate table {}/{}",
            srv.requests, srv.replies, srv.kod_rate, srv.kod_deny, srv.crypto_naks, dropped,
            srv.rate_table_used, srv.rate_table_capacity
        ));
        for (reason, n) in &srv.dropped {
            out.push_str(&format!("\n  dropped {reason}: {n}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(utc(0.0), "1970-01-01 00:00:00");
        assert_eq!(utc(1_795_675_301.5), "2026-11-26 06:41:41");
        assert_eq!(utc(951_782_400.0), "2000-02-29 00:00:00");
    }

    #[test]
    fn add_request_uses_config_rules() {
        let a = add_request(
            "pool",
            "pool.test",
            &["iburst".into(), "-4".into(), "maxsources".into(), "3".into()],
        )
        .unwrap();
        assert_eq!(
            (a.kind.as_str(), a.name.as_str(), a.family.as_str()),
            ("pool", "pool.test", "ipv4")
        );
        assert_eq!((a.iburst, a.maxsources, a.port), (true, Some(3), 123));
        let err = add_request("server", "ntp.test", &["minpoll".into(), "abc".into()]).unwrap_err();
        assert!(err.contains("minpoll expects an integer"), "{err}");
        assert!(add_request("server", "ntp.test", &["maxsources".into(), "3".into()]).is_err());
    }
}
