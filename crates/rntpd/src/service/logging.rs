//! Logging: tracing lines to standard error, the journal or a `logfile`, written by a thread of
//! their own so the event loop never waits for its log.
//!
//! * **Where.** Standard error by default. Under systemd (`JOURNAL_STREAM` names the stream
//!   standard error is connected to, see systemd.exec(5)) each line starts with its syslog
//!   priority (`<3>` error … `<7>` debug, sd-daemon(3)) and carries no timestamp or level of
//!   its own, so `journalctl -p warning` filters it. With a `logfile` directive the lines go to
//!   that file (appended, with timestamps); [`Logging::set_file`] switches at runtime and
//!   reopens the file after a log rotation.
//! * **How much.** `--log-level LEVEL`; without it `RUST_LOG` (which may name modules, e.g.
//!   `rntpd=debug,hickory=warn`); without either, `info`.
//! * **Never blocking.** A formatted line goes into a bounded queue ([`QUEUE_LINES`]) that one
//!   writer thread empties. When the output cannot keep up (a stalled terminal or pipe), new
//!   lines are dropped and counted, and the writer says how many once it can write again.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{self, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

/// Lines queued for the writer thread at most; more are dropped (and counted).
pub const QUEUE_LINES: usize = 4_096;

/// How lines are formatted, by where they go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Style {
    /// A terminal: timestamps, levels, colours.
    Terminal = 0,
    /// A pipe or a file: timestamps and levels, no colours.
    Plain = 1,
    /// The journal: `<N>` priority prefixes, no timestamp or level.
    Journal = 2,
}

impl Style {
    fn from_u8(v: u8) -> Style {
        match v {
            0 => Style::Terminal,
            2 => Style::Journal,
            _ => Style::Plain,
        }
    }
}

/// Where the writer thread writes.
#[derive(Debug)]
enum Output {
    Stderr,
    File(File),
}

/// What the event loop and the writer thread share.
#[derive(Debug)]
struct Shared {
    /// The current [`Style`].
    style: AtomicU8,
    /// The style of standard error (what `set_file(None)` returns to).
    stderr_style: Style,
    /// A new output for the writer to switch to before its next line.
    pending: Mutex<Option<Output>>,
    /// Lines dropped since the writer last reported it.
    dropped: AtomicU64,
}

/// What goes through the queue.
enum Message {
    Line(Vec<u8>),
    /// Everything before this is written; tell the sender.
    Flush(mpsc::Sender<()>),
}

/// The handle to the logging set up by [`Logging::init`].
#[derive(Clone)]
pub struct Logging {
    shared: Arc<Shared>,
    queue: SyncSender<Message>,
    file: Arc<Mutex<Option<PathBuf>>>,
}

impl std::fmt::Debug for Logging {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Logging").field("file", &self.file).finish_non_exhaustive()
    }
}

impl Logging {
    /// Installs the global subscriber and starts the writer thread. `level`: `--log-level`.
    pub fn init(level: Option<&str>) -> Logging {
        let filter = match level {
            Some(level) => tracing_subscriber::EnvFilter::new(level),
            None => tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        };
        let stderr_style = if journal_is_stderr() {
            Style::Journal
        } else if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            Style::Terminal
        } else {
            Style::Plain
        };
        let shared = Arc::new(Shared {
            style: AtomicU8::new(stderr_style as u8),
            stderr_style,
            pending: Mutex::new(None),
            dropped: AtomicU64::new(0),
        });
        let (queue, lines) = mpsc::sync_channel(QUEUE_LINES);
        let writer_shared = Arc::clone(&shared);
        let spawned = std::thread::Builder::new()
            .name("rntpd-log".into())
            .spawn(move || write_lines(&writer_shared, &lines));
        let logging = Logging { shared: Arc::clone(&shared), queue, file: Arc::default() };
        let make = QueueWriter { logging: logging.clone(), direct: spawned.is_err() };
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .event_format(DaemonFormat::new(Arc::clone(&shared)))
            .with_writer(make)
            .init();
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the log writer thread; logging directly");
        }
        logging
    }

    /// Logs to `path` (appending) from the next line on, or to standard error with `None`.
    /// The file is opened here, so an error leaves the output as it was and is returned.
    /// Calling it again with the same path reopens the file (after a log rotation).
    pub fn set_file(&self, path: Option<&Path>) -> io::Result<()> {
        let (output, style) = match path {
            Some(p) => (Output::File(open_log(p)?), Style::Plain),
            None => (Output::Stderr, self.shared.stderr_style),
        };
        *lock(&self.shared.pending) = Some(output);
        self.shared.style.store(style as u8, Ordering::Relaxed);
        *lock(&self.file) = path.map(Path::to_path_buf);
        Ok(())
    }

    /// The log file in use, if any.
    pub fn file(&self) -> Option<PathBuf> {
        lock(&self.file).clone()
    }

    /// Waits (at most `timeout`) until every line logged so far is written: before exit.
    pub fn flush(&self, timeout: Duration) {
        let (tx, rx) = mpsc::channel();
        let deadline = Instant::now() + timeout;
        let mut message = Message::Flush(tx);
        loop {
            match self.queue.try_send(message) {
                Ok(()) => break,
                Err(TrySendError::Full(m)) if Instant::now() < deadline => {
                    message = m;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(_) => return,
            }
        }
        let _ = rx.recv_timeout(deadline.saturating_duration_since(Instant::now()));
    }

    /// Queues one formatted line, or counts it as dropped.
    fn send(&self, line: Vec<u8>) {
        if self.queue.try_send(Message::Line(line)).is_err() {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic aborts the process (panic = "abort"), so a poisoned lock cannot be observed;
    // taking the data is right anyway.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn open_log(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("log file {}: {e}", path.display())))
}

/// The writer thread: one line at a time, switching outputs between lines.
fn write_lines(shared: &Shared, lines: &Receiver<Message>) {
    let mut output = Output::Stderr;
    while let Ok(message) = lines.recv() {
        if let Some(new) = lock(&shared.pending).take() {
            output = new;
        }
        let line = match message {
            Message::Line(line) => line,
            Message::Flush(done) => {
                let _ = flush(&mut output);
                let _ = done.send(());
                continue;
            }
        };
        let dropped = shared.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            let note = dropped_note(dropped, Style::from_u8(shared.style.load(Ordering::Relaxed)));
            let _ = write(&mut output, note.as_bytes());
        }
        if write(&mut output, &line).is_err() {
            // Nowhere to say so: count it, the next line that gets through reports it.
            shared.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn dropped_note(n: u64, style: Style) -> String {
    let text = format!(
        "{n} log line{} dropped: the log output could not keep up",
        if n == 1 { "" } else { "s" }
    );
    match style {
        Style::Journal => format!("<4>{text}\n"),
        _ => format!("WARN rntpd: {text}\n"),
    }
}

fn write(output: &mut Output, bytes: &[u8]) -> io::Result<()> {
    match output {
        Output::Stderr => io::stderr().lock().write_all(bytes),
        Output::File(f) => f.write_all(bytes),
    }
}

fn flush(output: &mut Output) -> io::Result<()> {
    match output {
        Output::Stderr => io::stderr().lock().flush(),
        Output::File(f) => f.flush(),
    }
}

/// Whether standard error is the journal's stream: `JOURNAL_STREAM` is `DEVICE:INODE` of it.
fn journal_is_stderr() -> bool {
    let Some(value) = std::env::var_os("JOURNAL_STREAM") else { return false };
    let Some((dev, ino)) = value.to_str().and_then(|v| v.split_once(':')) else { return false };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else { return false };
    stderr_dev_ino().is_some_and(|(d, i)| d == dev && i == ino)
}

fn stderr_dev_ino() -> Option<(u64, u64)> {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let fd = io::stderr().as_fd().try_clone_to_owned().ok()?;
    let meta = File::from(fd).metadata().ok()?;
    Some((meta.dev(), meta.ino()))
}

/// The syslog priority of a level (sd-daemon(3)).
fn priority(level: Level) -> u8 {
    match level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

/// The event formatter: tracing's own, styled by where the line goes.
struct DaemonFormat {
    shared: Arc<Shared>,
    terminal: format::Format,
    plain: format::Format,
    journal: format::Format<format::Full, ()>,
}

impl DaemonFormat {
    fn new(shared: Arc<Shared>) -> Self {
        DaemonFormat {
            shared,
            terminal: format::Format::default().with_ansi(true),
            plain: format::Format::default().with_ansi(false),
            journal: format::Format::default()
                .without_time()
                .with_level(false)
                .with_target(false)
                .with_ansi(false),
        }
    }
}

impl<S, N> FormatEvent<S, N> for DaemonFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        match Style::from_u8(self.shared.style.load(Ordering::Relaxed)) {
            Style::Terminal => self.terminal.format_event(ctx, writer, event),
            Style::Plain => self.plain.format_event(ctx, writer, event),
            Style::Journal => {
                let mut line = String::new();
                self.journal.format_event(ctx, Writer::new(&mut line), event)?;
                // Every line of a multi-line message (a configuration error with its caret)
                // is its own journal entry: each gets the priority.
                let prefix = format!("<{}>", priority(*event.metadata().level()));
                for part in line.split_inclusive('\n') {
                    writer.write_str(&prefix)?;
                    writer.write_str(part)?;
                }
                Ok(())
            }
        }
    }
}

/// Hands each formatted event to the queue.
struct QueueWriter {
    logging: Logging,
    /// The writer thread could not be started: write to standard error at once.
    direct: bool,
}

impl<'a> MakeWriter<'a> for QueueWriter {
    type Writer = LineBuffer<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineBuffer { to: self, buf: Vec::new() }
    }
}

/// One event's bytes, queued when dropped (the formatter writes an event in one piece).
struct LineBuffer<'a> {
    to: &'a QueueWriter,
    buf: Vec<u8>,
}

impl Write for LineBuffer<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for LineBuffer<'_> {
    fn drop(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let line = std::mem::take(&mut self.buf);
        if self.to.direct {
            let _ = io::stderr().lock().write_all(&line);
        } else {
            self.to.logging.send(line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_follow_sd_daemon() {
        assert_eq!(
            [Level::ERROR, Level::WARN, Level::INFO, Level::DEBUG].map(priority),
            [3, 4, 6, 7]
        );
    }

    #[test]
    fn dropped_lines_are_reported_in_the_output_style() {
        assert_eq!(
            dropped_note(3, Style::Journal),
            "<4>3 log lines dropped: the log output could not keep up\n"
        );
        assert!(dropped_note(1, Style::Plain).contains("1 log line dropped"));
    }

    #[test]
    fn queue_is_bounded_and_counts_what_it_drops() {
        let shared = Arc::new(Shared {
            style: AtomicU8::new(Style::Plain as u8),
            stderr_style: Style::Plain,
            pending: Mutex::new(None),
            dropped: AtomicU64::new(0),
        });
        // No writer thread: the queue fills and stays full.
        let (queue, _lines) = mpsc::sync_channel(QUEUE_LINES);
        let logging = Logging { shared: Arc::clone(&shared), queue, file: Arc::default() };
        for _ in 0..QUEUE_LINES + 10 {
            logging.send(b"x\n".to_vec());
        }
        assert_eq!(shared.dropped.load(Ordering::Relaxed), 10);
    }

    #[test]
    fn writer_switches_to_a_file_and_reports_drops_there() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rntpd.log");
        let shared = Arc::new(Shared {
            style: AtomicU8::new(Style::Plain as u8),
            stderr_style: Style::Plain,
            pending: Mutex::new(Some(Output::File(open_log(&path).unwrap()))),
            dropped: AtomicU64::new(2),
        });
        let (queue, lines) = mpsc::sync_channel(8);
        queue.send(Message::Line(b"first\n".to_vec())).unwrap();
        drop(queue);
        write_lines(&shared, &lines);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "WARN rntpd: 2 log lines dropped: the log output could not keep up\nfirst\n"
        );
    }
}
