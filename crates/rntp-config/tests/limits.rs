//! Issue 11, "hostile config files": special files are refused at once,
//! every size and count limit holds, and memory stays bounded.
//!
//! Memory is measured with a counting global allocator
//! (`allocation-counter`), per thread: `bytes_max` is the peak of live heap
//! bytes while the measured code ran, `bytes_current` what it left allocated.
//! The parser is single-threaded, so other tests running in parallel do not
//! disturb the figures.

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use allocation_counter::measure;
use proptest::prelude::*;
use rntp_config::{
    load_file, parse_str, ConfigErrors, Diagnostic, DiagnosticKind, Loaded, MAX_CONFIG_BYTES,
    MAX_DIAGNOSTICS, MAX_DIRECTIVES, MAX_INCLUDES, MAX_LINE_BYTES, MAX_WORDS_PER_LINE,
};

const MIB: u64 = 1024 * 1024;

/// How long a refusal may take before the test calls it blocked. Generous:
/// a refusal takes microseconds; only a hang (the old FIFO behaviour) or a
/// machine frozen for this long fails.
const HANG: Duration = Duration::from_secs(10);

/// Runs `load_file(path)` on a thread and waits for it, so that a hang fails
/// the test instead of blocking the test run.
fn load_without_hanging(path: &Path) -> Result<Loaded, ConfigErrors> {
    let (tx, rx) = mpsc::channel();
    let path = path.to_path_buf();
    std::thread::spawn(move || {
        let _ = tx.send(load_file(&path));
    });
    rx.recv_timeout(HANG).unwrap_or_else(|_| panic!("load_file blocked for {HANG:?}"))
}

/// The one error of a load that must fail with exactly one error.
fn one_error(result: Result<Loaded, ConfigErrors>) -> Diagnostic {
    let err = result.expect_err("the load must fail");
    assert_eq!(err.errors.len(), 1, "{err}");
    err.errors.into_iter().next().unwrap()
}

/// Writes `main.conf` into `dir` with an `includefile` of `target` on line 2
/// and returns its path.
fn main_including(dir: &Path, target: &Path) -> PathBuf {
    let main = dir.join("main.conf");
    std::fs::write(&main, format!("server a.example\nincludefile {}\n", target.display())).unwrap();
    main
}

/// Checks that the error points at the includefile word on line 2 of `main`
/// and that its reason contains `reason`.
fn assert_include_refused(d: &Diagnostic, main: &Path, reason: &str) {
    assert_eq!((d.file.as_path(), d.line, d.col), (main, 2, 13), "{d}");
    match &d.kind {
        DiagnosticKind::IncludeFailed { reason: r, .. } => assert!(r.contains(reason), "{d}"),
        other => panic!("unexpected {other:?}"),
    }
    // file:line:col, as an administrator reads it.
    let shown = d.to_string();
    assert!(shown.starts_with(&format!("{}:2:13: error: cannot read includefile", main.display())));
}

fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo").arg(path).status().expect("mkfifo runs");
    assert!(status.success());
}

#[test]
fn includefile_of_a_fifo_fails_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.conf");
    mkfifo(&fifo);
    let main = main_including(dir.path(), &fifo);
    let d = one_error(load_without_hanging(&main));
    assert_include_refused(&d, &main, "is a FIFO (named pipe), not a regular file");

    // Through a symlink, too: the check follows it.
    let link = dir.path().join("link.conf");
    std::os::unix::fs::symlink(&fifo, &link).unwrap();
    let main = main_including(dir.path(), &link);
    assert_include_refused(&one_error(load_without_hanging(&main)), &main, "FIFO");

    // As the top-level file: the error names it.
    let d = one_error(load_without_hanging(&fifo));
    assert_eq!((d.file.as_path(), d.line, d.col), (fifo.as_path(), 0, 0));
    assert_eq!(
        d.to_string(),
        format!(
            "{}: error: cannot read configuration file: is a FIFO (named pipe), not a regular \
             file; rntpd reads configuration only from regular files",
            fifo.display()
        )
    );
}

#[test]
fn includefile_of_a_directory_fails_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("ntp.d");
    std::fs::create_dir(&sub).unwrap();
    let main = main_including(dir.path(), &sub);
    let d = one_error(load_without_hanging(&main));
    assert_include_refused(&d, &main, "is a directory");
    assert_include_refused(&d, &main, "including a directory of *.conf files is not supported");
    assert!(matches!(
        one_error(load_without_hanging(dir.path())).kind,
        DiagnosticKind::ReadFailed { .. }
    ));
}

#[test]
fn includefile_of_dev_zero_fails_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let main = main_including(dir.path(), Path::new("/dev/zero"));
    let d = one_error(load_without_hanging(&main));
    assert_include_refused(&d, &main, "is a character device, not a regular file");
    let d = one_error(load_without_hanging(Path::new("/dev/zero")));
    assert_eq!(d.file, Path::new("/dev/zero"));
    assert!(d.to_string().contains("character device"), "{d}");
}

#[test]
fn includefile_of_a_socket_fails_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("s.conf");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let main = main_including(dir.path(), &sock);
    assert_include_refused(&one_error(load_without_hanging(&main)), &main, "is a socket");
}

/// `count` lines of `server a.example` followed by unknown options, each
/// line `line_len` bytes long (newline included).
fn lines_of_unknown_options(count: usize, line_len: usize) -> String {
    let mut line = String::from("server a.example");
    while line.len() + 6 < line_len {
        line.push_str(" bogus");
    }
    while line.len() + 1 < line_len {
        line.push('x');
    }
    line.push('\n');
    line.repeat(count)
}

#[test]
fn ten_megabyte_file_of_long_lines_is_refused_quickly_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.conf");
    // 105 lines of 96 KB, each with 16000 unknown options: about 10 MB.
    let text = lines_of_unknown_options(105, 96_018);
    assert!(text.len() > 10_000_000);
    std::fs::write(&big, &text).unwrap();
    drop(text);

    let start = Instant::now();
    let mut result = None;
    let info = measure(|| result = Some(load_file(&big)));
    let elapsed = start.elapsed();
    let d = one_error(result.take().unwrap());
    println!("10 MB file: {elapsed:?}, peak {} bytes: {d}", info.bytes_max);
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    assert!(info.bytes_max < 100 * MIB, "peak {} bytes", info.bytes_max);
    assert_eq!((d.line, d.col), (0, 0));
    assert!(d.to_string().contains("rntpd reads at most 1048576 bytes of configuration"), "{d}");

    // Included, the error is at the includefile line.
    let main = main_including(dir.path(), &big);
    let start = Instant::now();
    let info = measure(|| result = Some(load_file(&main)));
    let elapsed = start.elapsed();
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    assert!(info.bytes_max < 100 * MIB, "peak {} bytes", info.bytes_max);
    assert_include_refused(&one_error(result.unwrap()), &main, "1048576 bytes");
}

#[test]
fn line_of_96_kb_with_16000_unknown_options_is_one_short_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("line.conf");
    let text = lines_of_unknown_options(1, 96_018);
    std::fs::write(&file, &text).unwrap();

    let mut result = None;
    let info = measure(|| result = Some(load_file(&file)));
    let err = result.unwrap().unwrap_err();
    let shown = err.to_string();
    println!(
        "96 KB line: peak {} bytes, {} bytes of report:\n{shown}",
        info.bytes_max,
        shown.len()
    );
    assert_eq!(err.errors.len(), 1, "{shown}");
    let d = &err.errors[0];
    assert_eq!(d.kind, DiagnosticKind::LineTooLong { length: 96_017, limit: MAX_LINE_BYTES });
    // The caret is on the first character past the limit.
    assert_eq!((d.line, d.col), (1, MAX_LINE_BYTES as u32 + 1));
    // The text (96 KB) once, its copy for the shared diagnostics text, and
    // little else: before the fix this line took 3 GB.
    assert!(info.bytes_max < 4 * text.len() as u64, "peak {} bytes", info.bytes_max);
    // The report shows a window of the line, not 96 KB of it.
    assert!(shown.len() < 1000, "{} bytes", shown.len());
}

/// The hostile file the old parser could not survive, at the largest size
/// still read: every word an unknown option. Only the first errors are kept.
#[test]
fn largest_file_of_unknown_options_keeps_a_bounded_report() {
    // 1 MiB of 4 KB lines, 63 words each: 62 unknown options per line.
    let words = MAX_WORDS_PER_LINE - 1;
    let mut line = String::from("server a.example");
    for i in 0..words - 2 {
        write!(line, " bogus{i:0>55}").unwrap();
    }
    line.push('\n');
    assert!(line.len() <= MAX_LINE_BYTES);
    let count = MAX_CONFIG_BYTES as usize / line.len();
    let text = line.repeat(count);
    let found = count * (words - 2);

    let mut result = None;
    let info = measure(|| result = Some(parse_str(Path::new("/etc/ntp.conf"), &text, &mut none)));
    let err = result.unwrap().unwrap_err();
    println!(
        "{} bytes, {found} unknown options: peak {} bytes, retained {} bytes",
        text.len(),
        info.bytes_max,
        info.bytes_current
    );
    assert_eq!(err.errors.len(), MAX_DIAGNOSTICS);
    assert_eq!(err.error_count(), found);
    assert_eq!(err.warning_count(), 0);
    let last = err.warnings.last().expect("the final note");
    assert_eq!(
        last.kind,
        DiagnosticKind::MoreNotShown { errors: found - MAX_DIAGNOSTICS, warnings: 0 }
    );
    assert_eq!(
        last.to_string(),
        format!(
            "/etc/ntp.conf: warning: {} more diagnostics not shown ({} errors, 0 warnings); \
             rntpd lists at most 100 errors and 100 warnings",
            found - MAX_DIAGNOSTICS,
            found - MAX_DIAGNOSTICS
        )
    );
    assert!(err.to_string().ends_with(&last.to_string()));
    // The text once (shared by the kept diagnostics) plus 100 small ones.
    assert!(info.bytes_current < (text.len() + 200 * 1024) as i64, "{}", info.bytes_current);
    assert!(info.bytes_max < 4 * text.len() as u64, "peak {} bytes", info.bytes_max);
}

/// A valid file that warns on every word: it loads, and the warnings are
/// capped the same way.
#[test]
fn valid_file_with_a_warning_per_word_loads_with_capped_warnings() {
    let mut line = String::from("server a.example iburst");
    for _ in 0..MAX_WORDS_PER_LINE - 3 {
        line.push_str(" xleave");
    }
    line.push('\n');
    let text = line.repeat(500);
    let loaded = parse_str(Path::new("/etc/ntp.conf"), &text, &mut none).unwrap();
    assert_eq!(loaded.config.sources.len(), 500);
    assert_eq!(loaded.warnings.len(), MAX_DIAGNOSTICS + 1);
    assert_eq!(loaded.warning_count(), 500 * (MAX_WORDS_PER_LINE - 3));
}

/// The daemon keeps `config` and drops the warnings once logged: nothing in
/// `Config` keeps the file's text (or the diagnostics) alive.
#[test]
fn dropping_the_warnings_frees_the_text() {
    // 900 KB of comments and one warning that points into the text.
    let mut text = String::from("server a.example\npidfile /x\n");
    while text.len() < 900 * 1024 {
        text.push_str("# a long comment line that takes up room in the file, as comments do\n");
    }
    let mut loaded = None;
    let parsed = measure(|| loaded = Some(parse_str(Path::new("/etc/ntp.conf"), &text, &mut none)));
    let Loaded { config, warnings } = loaded.unwrap().unwrap();
    assert_eq!(warnings.len(), 1);
    assert_eq!(warnings[0].source_line(), Some("pidfile /x"));
    // Dropping the warnings frees the shared copy of the text.
    let dropped = measure(|| drop(warnings));
    println!(
        "retained {} bytes; dropping the warnings freed {}",
        parsed.bytes_current, -dropped.bytes_current
    );
    assert!(-dropped.bytes_current >= text.len() as i64, "{dropped:?}");
    // What is left for the config is small.
    assert!(parsed.bytes_current + dropped.bytes_current < 4096, "{parsed:?} {dropped:?}");
    assert_eq!(config.sources.len(), 1);
}

fn none(p: &Path) -> io::Result<String> {
    Err(io::Error::new(io::ErrorKind::NotFound, p.display().to_string()))
}

#[test]
fn too_many_words_on_a_line() {
    let mut line = String::from("restrict default");
    while line.split_whitespace().count() < MAX_WORDS_PER_LINE + 5 {
        line.push_str(" kod");
    }
    let err = parse_str(Path::new("/etc/ntp.conf"), &line, &mut none).unwrap_err();
    assert_eq!(err.errors.len(), 1, "{err}");
    let d = &err.errors[0];
    assert_eq!(d.kind, DiagnosticKind::TooManyWords { limit: MAX_WORDS_PER_LINE });
    // The first word over the limit: "restrict default" then " kod" each.
    assert_eq!(d.col, 18 + 4 * (MAX_WORDS_PER_LINE as u32 - 2));
    // Exactly at the limit is fine.
    let ok: Vec<&str> = line.split_whitespace().take(MAX_WORDS_PER_LINE).collect();
    assert!(parse_str(Path::new("/etc/ntp.conf"), &ok.join(" "), &mut none).is_ok());
}

#[test]
fn line_length_limit_counts_bytes_and_points_at_a_character() {
    // Exactly at the limit (a long comment) is fine.
    let ok = format!("server a.example #{}", "x".repeat(MAX_LINE_BYTES - 18));
    assert_eq!(ok.len(), MAX_LINE_BYTES);
    assert!(parse_str(Path::new("/etc/ntp.conf"), &ok, &mut none).is_ok());
    // Two-byte characters: the caret column is in characters.
    let long = format!("server a.example #{}", "é".repeat(MAX_LINE_BYTES));
    let d = one_error(parse_str(Path::new("/etc/ntp.conf"), &long, &mut none));
    assert_eq!(d.col, 18 + (MAX_LINE_BYTES as u32 - 18) / 2 + 1);
    // The window shown still has the caret under the right character.
    let shown = d.to_string();
    let mut lines = shown.lines().skip(1);
    let (text, caret) = (lines.next().unwrap(), lines.next().unwrap());
    let caret_at = caret.chars().position(|c| c == '^').unwrap();
    assert_eq!(text.chars().nth(caret_at), Some('é'), "{shown}");
    assert!(text.contains('…'), "{shown}");
}

#[test]
fn too_many_directives_stops_reading() {
    let text = "tos minclock 3\n".repeat(MAX_DIRECTIVES + 50);
    let err = parse_str(Path::new("/etc/ntp.conf"), &text, &mut none).unwrap_err();
    assert_eq!(err.errors.len(), 1, "{err}");
    let d = &err.errors[0];
    assert_eq!((d.line, d.col), (MAX_DIRECTIVES as u32 + 1, 1));
    assert_eq!(d.kind, DiagnosticKind::TooManyDirectives { limit: MAX_DIRECTIVES });
    // Comments and blank lines do not count.
    let text = format!("{}server a.example\n", "# comment\n\n".repeat(MAX_DIRECTIVES));
    assert!(parse_str(Path::new("/etc/ntp.conf"), &text, &mut none).is_ok());
}

#[test]
fn includes_are_counted_so_a_fan_out_stays_small() {
    // Each file includes the next one four times, five levels deep: 1364
    // reads without the limit.
    let mut reads = 0;
    let mut include = |p: &Path| {
        reads += 1;
        let depth: usize = p.file_stem().unwrap().to_str().unwrap()[1..].parse().unwrap();
        Ok(if depth < 5 {
            format!("includefile f{}.conf\n", depth + 1).repeat(4)
        } else {
            String::new()
        })
    };
    let err =
        parse_str(Path::new("/etc/f0.conf"), "includefile f1.conf\n", &mut include).unwrap_err();
    assert_eq!(reads, MAX_INCLUDES);
    // f1 and three subtrees of f2 (1 + 4 + 16 + 64 reads each) are 256
    // reads; the fourth f2 is refused, and with it its whole subtree.
    assert_eq!(err.errors.len(), 1, "{err}");
    let d = &err.errors[0];
    assert_eq!((d.file.as_path(), d.line, d.col), (Path::new("/etc/f1.conf"), 4, 13));
    assert_eq!(
        d.kind,
        DiagnosticKind::TooManyIncludes { path: "/etc/f2.conf".into(), limit: MAX_INCLUDES }
    );

    // Side by side, too.
    let text = "includefile e.conf\n".repeat(MAX_INCLUDES + 1);
    let d = one_error(parse_str(Path::new("/etc/ntp.conf"), &text, &mut |_| Ok(String::new())));
    assert_eq!((d.line, d.col), (MAX_INCLUDES as u32 + 1, 13));
    assert_eq!(
        d.kind,
        DiagnosticKind::TooManyIncludes { path: "/etc/e.conf".into(), limit: MAX_INCLUDES }
    );
}

#[test]
fn total_size_counts_every_file_and_every_include() {
    let part = format!("{}server a.example\n", "#\n".repeat(150 * 1024));
    let text = "includefile p.conf\n".repeat(4);
    let d = one_error(parse_str(Path::new("/etc/ntp.conf"), &text, &mut |_| Ok(part.clone())));
    // The fourth include goes over 1 MiB.
    assert_eq!((d.line, d.col), (4, 13));
    assert!(matches!(d.kind, DiagnosticKind::ConfigTooLarge { limit: MAX_CONFIG_BYTES, .. }));

    // The top-level text itself.
    let big = " ".repeat(MAX_CONFIG_BYTES as usize + 1);
    let d = one_error(parse_str(Path::new("/etc/ntp.conf"), &big, &mut none));
    assert_eq!((d.line, d.col), (0, 0));
    assert_eq!(
        d.to_string(),
        "/etc/ntp.conf: error: with \"/etc/ntp.conf\" the configuration reaches 1048577 bytes; \
         rntpd reads at most 1048576 bytes of configuration, all files together"
    );
}

/// Words that make diagnostics, some long, some with values. Built from
/// `Just`s and repeats rather than regexes, which are slow to generate.
fn hostile_line() -> impl Strategy<Value = String> {
    let word = prop_oneof![
        4 => prop::sample::select(vec![
            "server", "pool", "peer", "restrict", "tos", "key", "nts", "xleave", "mode",
            "minpoll", "iburst", "leapfile", "includefile", "\"", "a", "zz", "1",
        ])
        .prop_map(String::from),
        1 => (1usize..300, prop::sample::select(vec!['a', '7', '.', 'é']))
            .prop_map(|(n, c)| c.to_string().repeat(n)),
    ];
    prop::collection::vec(word, 1..40).prop_map(|w| w.join(" "))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// The memory kept by the diagnostics of a load is at most a constant
    /// times the input size (and never more than the cap allows).
    #[test]
    fn diagnostics_memory_is_bounded_by_input_size(
        lines in prop::collection::vec(hostile_line(), 1..60),
    ) {
        let text = lines.join("\n");
        let result = parse_str(Path::new("/etc/ntp.conf"), &text, &mut |_| Ok(text.clone()));
        let diagnostics = match result {
            Ok(loaded) => loaded.warnings,
            Err(e) => e.errors.into_iter().chain(e.warnings).collect(),
        };
        let count = diagnostics.len();
        let freed = -measure(|| drop(diagnostics)).bytes_current;
        // Random files keep about 4 bytes per input byte; 512 covers the
        // smallest input that makes a diagnostic (the 1-byte unknown
        // directive "a" keeps about 200 bytes). Before the fix, one 96 KB
        // line kept 14 000 bytes per input byte.
        prop_assert!(
            freed <= 512 * text.len() as i64,
            "{freed} bytes for {} input bytes",
            text.len()
        );
        prop_assert!(count <= 2 * MAX_DIAGNOSTICS + 1);
        // The texts (at most MAX_CONFIG_BYTES, includes together) plus the
        // capped diagnostics, each at most a few lines' worth.
        let cap = MAX_CONFIG_BYTES as usize
            + (2 * MAX_DIAGNOSTICS + 1) * (4 * MAX_LINE_BYTES + 1024);
        prop_assert!(freed <= cap as i64, "{freed} bytes, {count} diagnostics");
    }
}
