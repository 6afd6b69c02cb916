//! `rntpctl validate` as an administrator runs it: Debian's NTPsec default ntp.conf loads
//! cleanly and a typical ntpd 4.2.8 setup with warnings only (exit 0); a broken file is rejected
//! (exit 1) with file:line:col and what was expected.

use std::path::PathBuf;
use std::process::{Command, Output};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../rntp-config/tests/fixtures").join(name)
}

fn validate(file: &PathBuf) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rntpctl"))
        .arg("validate")
        .arg(file)
        .output()
        .expect("rntpctl runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn debian_ntpsec_default_config_is_accepted() {
    // Every directive in it (driftfile, leapfile, tos, pool, restrict) is implemented; the
    // leap file may be missing on a minimal system, which is a warning, never an error.
    let file = fixture("ntpsec-debian.conf");
    let out = validate(&file);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(!text.contains(": error: "), "{text}");
    assert!(text.contains(&format!("{}: OK (4 sources", file.display())), "{text}");
}

#[test]
fn typical_ntpd_428_config_is_accepted_with_warnings() {
    let file = fixture("ntpd-4.2.8.conf");
    let out = validate(&file);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    // Warnings name file:line:col, e.g. the statistics file rntpd does not write.
    let clockstats =
        format!("{}:13:32: warning: option `clockstats` of statistics", file.display());
    assert!(text.contains(&clockstats), "{text}");
    // Its key file (/etc/ntp/keys) does not exist here, and no source uses a key: a warning.
    assert!(text.contains("/etc/ntp/keys: warning: the key file cannot be used"), "{text}");
    assert!(text.contains("OK ("), "{text}");
}

#[test]
fn broken_config_is_rejected_with_file_line_col() {
    let file = fixture("broken.conf");
    let out = validate(&file);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let first = text.lines().find(|l| l.contains(": error: ")).expect("an error line");
    // FILE:LINE:COL: error: ...
    let rest = first.strip_prefix(&format!("{}:", file.display())).expect("starts with the file");
    let mut parts = rest.splitn(3, ':');
    let line: u32 = parts.next().unwrap().parse().expect("line number");
    let col: u32 = parts.next().unwrap().parse().expect("column number");
    assert!(line > 0 && col > 0, "{first}");
    assert!(text.contains("rntpd would not start with this file"), "{text}");
}

#[test]
fn missing_file_is_an_error_not_a_panic() {
    let out = validate(&PathBuf::from("/nonexistent/ntp.conf"));
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("/nonexistent/ntp.conf"));
}

/// Regression: `rntpctl ... | head` panicked with "failed printing to stdout: Broken pipe".
#[test]
fn closed_stdout_is_not_a_panic() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("many-warnings.conf");
    // Far more output than a pipe buffer holds, so the writer really meets the closed pipe.
    std::fs::write(&file, "statistics loopstats\n".repeat(5_000)).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_rntpctl"))
        .arg("validate")
        .arg(&file)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    // The read end is dropped here: further writes get EPIPE.
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}
