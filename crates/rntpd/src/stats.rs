//! Statistics files (`statsdir`, `statistics`, `filegen`): ntpd's `peerstats`, `loopstats` and
//! `sysstats` in ntpd's formats, so that NTPsec's `ntpviz` and existing scripts read them, and
//! rntpd's own `sourcestats` (DNS lookups and pool events). Formats: `docs/metrics.md`.
//!
//! The event loop only formats a line and hands it to a bounded queue ([`QUEUE_LINES`]); a
//! writer thread appends it to `STATSDIR/PREFIX.YYYYMMDD` (one file per UTC day, as ntpd's
//! `type day`) and keeps `STATSDIR/PREFIX` as a symbolic link to the current file. A slow or
//! full disk never blocks the event loop: when the queue is full, lines are dropped and
//! counted (logged once per burst), and write errors are logged once per file.

use std::cell::Cell;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::thread::JoinHandle;

use rntp_config::{StatsConfig, StatsKind};
use rntp_proto::node::{Node, NodeEvent, StatsRecord};
use rntp_proto::server::ServerCounters;
use rntp_proto::source::SourceEvent;
use rntp_proto::time::Instant;

/// Lines queued for the writer at most.
pub const QUEUE_LINES: usize = 4096;
/// `sysstats` interval, as ntpd's: an hour.
const SYSSTATS_SECS: f64 = 3600.0;
/// Seconds per day.
const DAY: f64 = 86_400.0;
/// The Modified Julian Day of 1970-01-01.
const MJD_UNIX_EPOCH: i64 = 40_587;

/// One line for one file set.
struct Line {
    kind: StatsKind,
    /// UTC day number since 1970-01-01 (picks the file).
    day: i64,
    text: String,
}

/// The event loop's end of the statistics files.
pub struct Stats {
    tx: Option<SyncSender<Line>>,
    writer: Option<JoinHandle<()>>,
    enabled: [bool; 4],
    /// Lines dropped because the queue was full, since start (shared with the metrics).
    dropped: Rc<Cell<u64>>,
    /// Whether the last line was dropped (to log once per burst).
    dropping: bool,
    /// When the last `sysstats` line was written, and the counters then.
    sysstats: Option<(Instant, ServerCounters)>,
}

impl Stats {
    /// Starts the writer if any file set is enabled; `None` otherwise. The directory is
    /// created if missing; if it cannot be, the error says so and nothing is written.
    pub fn start(config: &StatsConfig) -> std::io::Result<Option<Stats>> {
        let mut enabled = [false; 4];
        for f in config.enabled() {
            enabled[index(f.kind)] = true;
        }
        if !enabled.contains(&true) {
            return Ok(None);
        }
        std::fs::create_dir_all(&config.dir).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("statistics directory {} (statsdir): {e}", config.dir.display()),
            )
        })?;
        let files: HashMap<StatsKind, Output> =
            config.enabled().map(|f| (f.kind, Output::new(&config.dir, &f.file, f.link))).collect();
        let (tx, rx) = mpsc::sync_channel(QUEUE_LINES);
        let writer = std::thread::Builder::new()
            .name("rntpd-stats".into())
            .spawn(move || write_loop(rx, files))?;
        let names: Vec<&str> = config.enabled().map(|f| f.kind.name()).collect();
        tracing::info!(dir = %config.dir.display(), files = ?names, "writing statistics files");
        Ok(Some(Stats {
            tx: Some(tx),
            writer: Some(writer),
            enabled,
            dropped: Rc::new(Cell::new(0)),
            dropping: false,
            sysstats: None,
        }))
    }

    /// A `peerstats` or `loopstats` record, stamped `unix` (wall clock, s).
    pub fn record(&mut self, unix: f64, record: &StatsRecord) {
        match *record {
            StatsRecord::Peer { remote, status, offset, delay, dispersion, jitter, .. } => {
                let text = format!(
                    "{} {status:x} {offset:.9} {delay:.9} {dispersion:.9} {jitter:.9}",
                    remote.ip()
                );
                self.send(StatsKind::Peerstats, unix, text);
            }
            StatsRecord::Loop { offset, freq_ppm, jitter, wander_ppm, tc, .. } => {
                let text = format!("{offset:.9} {freq_ppm:.3} {jitter:.9} {wander_ppm:.6} {tc}");
                self.send(StatsKind::Loopstats, unix, text);
            }
        }
    }

    /// A node event: DNS and pool events go to `sourcestats`.
    pub fn event(&mut self, unix: f64, event: &NodeEvent) {
        if !self.enabled[index(StatsKind::Sourcestats)] {
            return;
        }
        let NodeEvent::Source { name, event } = event else { return };
        let text = match event {
            SourceEvent::Resolved { addrs, ttl, next_in, .. } if next_in.is_finite() => {
                format!("resolved {name} addresses={addrs} ttl={ttl:.0} next={next_in:.0}")
            }
            SourceEvent::Resolved { addrs, ttl, .. } => {
                format!("resolved {name} addresses={addrs} ttl={ttl:.0} next=none")
            }
            SourceEvent::ResolveFailed { error, retry_in, have_addresses, .. } => format!(
                "resolve_failed {name} cause={} retry={retry_in:.0} kept_addresses={}",
                rntp_proto::node::resolve_error_label(error),
                u8::from(*have_addresses)
            ),
            SourceEvent::Mobilized { remote, reason, .. } => {
                format!("mobilized {name} address={} reason={}", remote.ip(), reason.name())
            }
            SourceEvent::Retired { remote, reason, .. } => {
                format!("retired {name} address={} reason={}", remote.ip(), reason.name())
            }
            SourceEvent::Moved { from, to, .. } => {
                format!("moved {name} from={} to={}", from.ip(), to.ip())
            }
            SourceEvent::NoFreeAddress { .. } => format!("no_free_address {name}"),
            SourceEvent::Solicited { ttl, round, .. } => {
                format!("solicited {name} ttl={ttl} round={round}")
            }
            SourceEvent::Offered { remote, orphan, .. } => {
                format!("offered {name} address={} orphan={}", remote.ip(), u8::from(*orphan))
            }
            SourceEvent::OwnAddressSkipped { remote, .. } => {
                format!("skipped {name} address={} reason=own-address", remote.ip())
            }
        };
        self.send(StatsKind::Sourcestats, unix, text);
    }

    /// Writes the hourly `sysstats` line when due (the first an hour after start).
    pub fn tick(&mut self, now: Instant, unix: f64, node: &Node) {
        if !self.enabled[index(StatsKind::Sysstats)] {
            return;
        }
        let Some(server) = node.status(now).server else { return };
        let counters = server.counters;
        let Some((since, before)) = &self.sysstats else {
            self.sysstats = Some((now, counters));
            return;
        };
        let elapsed = now.secs_since(*since);
        if elapsed < SYSSTATS_SECS {
            return;
        }
        let text = sysstats_line(elapsed, before, &counters);
        self.sysstats = Some((now, counters));
        self.send(StatsKind::Sysstats, unix, text);
    }

    /// Lines dropped because the writer fell behind, since start (for the metrics).
    pub fn dropped_counter(&self) -> Rc<Cell<u64>> {
        Rc::clone(&self.dropped)
    }

    fn send(&mut self, kind: StatsKind, unix: f64, text: String) {
        if !self.enabled[index(kind)] {
            return;
        }
        let Some(tx) = &self.tx else { return };
        let day = (unix / DAY).floor();
        let secs = unix - day * DAY;
        // ntpd's stamp: Modified Julian Day and seconds past UTC midnight, in ms.
        let day = day as i64;
        let text = format!("{} {secs:.3} {text}\n", day + MJD_UNIX_EPOCH);
        match tx.try_send(Line { kind, day, text }) {
            Ok(()) => self.dropping = false,
            Err(TrySendError::Full(_)) => {
                self.dropped.set(self.dropped.get() + 1);
                if !std::mem::replace(&mut self.dropping, true) {
                    tracing::warn!(
                        "statistics writer is behind (slow disk?): dropping lines until it \
                         catches up"
                    );
                }
            }
            Err(TrySendError::Disconnected(_)) => self.tx = None,
        }
    }
}

impl Drop for Stats {
    /// Lets the writer finish the queued lines.
    fn drop(&mut self) {
        self.tx = None;
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

/// ntpd's `sysstats` fields from two snapshots of the server counters, `elapsed` s apart:
/// seconds covered, packets received, packets processed, current version, old version,
/// access denied, bad length or format, bad authentication, declined, rate exceeded, KoD sent.
fn sysstats_line(elapsed: f64, before: &ServerCounters, now: &ServerCounters) -> String {
    let d = |a: u64, b: u64| a.saturating_sub(b);
    let dropped = |c: &ServerCounters, names: &[&str]| -> u64 {
        c.dropped().filter(|(n, _)| names.contains(n)).map(|(_, v)| v).sum()
    };
    let denied_names = ["restrict_ignore", "restrict_noserve"];
    let limited_names = ["rate_limited", "kod_limited"];
    let mode_names = [
        "mode_control",
        "mode_private",
        "mode_symmetric",
        "mode_server",
        "mode_broadcast",
        "mode_reserved",
    ];
    let received = d(now.requests, before.requests);
    let replies = d(now.replies, before.replies);
    let kod = d(now.kod_rate + now.kod_deny, before.kod_rate + before.kod_deny);
    let denied = d(dropped(now, &denied_names), dropped(before, &denied_names))
        + d(now.kod_deny, before.kod_deny);
    let limited = d(dropped(now, &limited_names), dropped(before, &limited_names))
        + d(now.kod_rate, before.kod_rate);
    let declined = d(dropped(now, &mode_names), dropped(before, &mode_names));
    let all_drops = d(now.dropped_total(), before.dropped_total());
    let named = d(
        dropped(now, &denied_names) + dropped(now, &limited_names) + dropped(now, &mode_names),
        dropped(before, &denied_names)
            + dropped(before, &limited_names)
            + dropped(before, &mode_names),
    );
    let malformed = all_drops.saturating_sub(named);
    format!(
        "{:.0} {received} {} {replies} 0 {denied} {malformed} 0 {declined} {limited} {kod}",
        elapsed,
        replies + kod
    )
}

fn index(kind: StatsKind) -> usize {
    match kind {
        StatsKind::Peerstats => 0,
        StatsKind::Loopstats => 1,
        StatsKind::Sysstats => 2,
        StatsKind::Sourcestats => 3,
    }
}

/// One file set on disk.
struct Output {
    dir: PathBuf,
    prefix: String,
    link: bool,
    day: Option<i64>,
    file: Option<BufWriter<File>>,
    /// An error was logged for the current day's file.
    failed: bool,
}

impl Output {
    fn new(dir: &Path, prefix: &str, link: bool) -> Output {
        Output {
            dir: dir.to_path_buf(),
            prefix: prefix.to_string(),
            link,
            day: None,
            file: None,
            failed: false,
        }
    }

    fn write(&mut self, day: i64, text: &str) {
        if self.day != Some(day) {
            self.rotate(day);
        }
        let Some(file) = self.file.as_mut() else { return };
        if let Err(e) = file.write_all(text.as_bytes()) {
            self.error("cannot write", &e);
        }
    }

    fn flush(&mut self) {
        if let Some(file) = self.file.as_mut() {
            if let Err(e) = file.flush() {
                self.error("cannot write", &e);
            }
        }
    }

    /// Starts the file of `day` (and points the link at it).
    fn rotate(&mut self, day: i64) {
        self.flush();
        self.day = Some(day);
        self.failed = false;
        let name = format!("{}.{}", self.prefix, yyyymmdd(day));
        let path = self.dir.join(&name);
        match OpenOptions::new().create(true).append(true).open(&path) {
            Ok(f) => self.file = Some(BufWriter::new(f)),
            Err(e) => {
                self.file = None;
                self.error("cannot open", &e);
                return;
            }
        }
        if self.link {
            let link = self.dir.join(&self.prefix);
            // Replace the link atomically: a new link beside it, renamed over it.
            let tmp = self.dir.join(format!(".{}.link", self.prefix));
            let _ = std::fs::remove_file(&tmp);
            let made =
                std::os::unix::fs::symlink(&name, &tmp).and_then(|()| std::fs::rename(&tmp, &link));
            if let Err(e) = made {
                tracing::warn!(link = %link.display(), error = %e, "cannot update the statistics link");
            }
        }
    }

    fn error(&mut self, what: &str, e: &std::io::Error) {
        if !std::mem::replace(&mut self.failed, true) {
            let day = self.day.map(yyyymmdd).unwrap_or_default();
            tracing::warn!(
                file = %self.dir.join(format!("{}.{day}", self.prefix)).display(),
                error = %e,
                "{what} the statistics file; its lines are lost until the next day's file"
            );
        }
    }
}

/// The writer thread: lines until the event loop closes the queue; flushes whenever the queue
/// runs empty, so the files are current within one event-loop pass.
fn write_loop(rx: Receiver<Line>, mut files: HashMap<StatsKind, Output>) {
    while let Ok(line) = rx.recv() {
        let mut next = Some(line);
        while let Some(line) = next {
            if let Some(out) = files.get_mut(&line.kind) {
                out.write(line.day, &line.text);
            }
            next = rx.try_recv().ok();
        }
        for out in files.values_mut() {
            out.flush();
        }
    }
}

/// `YYYYMMDD` of a day number since 1970-01-01 (UTC, proleptic Gregorian).
fn yyyymmdd(days: i64) -> String {
    let (y, m, d) = rntp_proto::time::civil_from_days(days);
    format!("{y:04}{m:02}{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_names() {
        assert_eq!(yyyymmdd(0), "19700101");
        assert_eq!(yyyymmdd(59), "19700301");
        assert_eq!(yyyymmdd(11_016), "20000229");
        assert_eq!(yyyymmdd(20_454), "20260101");
        assert_eq!(yyyymmdd(-1), "19691231");
    }

    #[test]
    fn lines_are_stamped_mjd_and_seconds_and_rotate_by_day() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = StatsConfig { dir: dir.path().to_path_buf(), ..StatsConfig::default() };
        for f in &mut config.files {
            f.enabled = f.kind == StatsKind::Loopstats;
        }
        let mut stats = Stats::start(&config).expect("start").expect("enabled");
        let record = |offset| StatsRecord::Loop {
            at: Instant::from_nanos(0),
            offset,
            freq_ppm: -12.5,
            jitter: 0.000_012,
            wander_ppm: 0.001,
            tc: 6,
        };
        // 2026-01-01 23:59:59.5 and the next day.
        let t = 20_454.0 * DAY + 86_399.5;
        stats.record(t, &record(0.000_123));
        stats.record(t + 1.0, &record(-0.5));
        drop(stats);
        let first = std::fs::read_to_string(dir.path().join("loopstats.20260101")).expect("day 1");
        assert_eq!(first, "61041 86399.500 0.000123000 -12.500 0.000012000 0.001000 6\n");
        let second = std::fs::read_to_string(dir.path().join("loopstats.20260102")).expect("day 2");
        assert_eq!(second, "61042 0.500 -0.500000000 -12.500 0.000012000 0.001000 6\n");
        let link = std::fs::read_link(dir.path().join("loopstats")).expect("link");
        assert_eq!(link, Path::new("loopstats.20260102"));
        assert!(!dir.path().join("peerstats.20260101").exists());
    }

    #[test]
    fn sysstats_counts_the_hour_in_ntpd_order() {
        use rntp_proto::server::{Responder, RestrictFlags, ServerConfig};
        let open = ServerConfig { default_flags: RestrictFlags::NONE, ..ServerConfig::default() };
        let mut r = Responder::new(open, 1);
        let before = r.counters().clone();
        let (src, rx) =
            (std::net::IpAddr::from([192, 0, 2, 1]), rntp_proto::time::NtpTimestamp::ZERO);
        let mut time = [0u8; 48];
        time[0] = 0x23;
        let mut ntpdc = [0u8; 48];
        ntpdc[0] = 0x27;
        let mut out = [0u8; 64];
        let sys = rntp_proto::server::SystemState::unsynchronized(-20);
        for (i, req) in
            [&time[..], &time[..], &time[..], &ntpdc[..], &time[..10]].iter().enumerate()
        {
            let at = Instant::from_nanos(i as u64 * 4_000_000_000);
            r.respond(at, rx, src, req, &sys, &mut out);
        }
        let line = sysstats_line(3600.0, &before, r.counters());
        // seconds, received, for us, replies, old version, denied, bad format, bad auth,
        // declined, limited, KoD.
        assert_eq!(line, "3600 5 3 3 0 0 1 0 1 0 0");
    }

    #[test]
    fn nothing_enabled_starts_nothing() {
        let config = StatsConfig { dir: PathBuf::from("/nonexistent/x"), ..StatsConfig::default() };
        assert!(Stats::start(&config).expect("no error").is_none());
    }
}
