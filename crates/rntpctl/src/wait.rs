//! `rntpctl wait-sync`: ask rntpd's status once a second until it is synchronized (as
//! `chronyc waitsync` and `ntpwait` do), for `rntpd-wait.service` and scripts.
//!
//! Exit status, documented in rntpctl(8):
//! * [`SYNCED`] 0: synchronized (within `--max-offset` when given);
//! * [`TIMED_OUT`] 1: still not synchronized when `--timeout` ran out;
//! * 2: bad command line (clap);
//! * [`UNREACHABLE`] 3: rntpd could not be reached at the first attempt, or refused the
//!   request, or was not reachable any more when the timeout ran out. Once rntpd has answered,
//!   a failed attempt (a restart) is retried until the timeout.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use rntp_control::{Command, Reply, StatusInfo};

/// Exit status: synchronized.
pub const SYNCED: u8 = 0;
/// Exit status: the timeout ran out first.
pub const TIMED_OUT: u8 = 1;
/// Exit status: rntpd cannot be reached or refused.
pub const UNREACHABLE: u8 = 3;

/// How often rntpd is asked.
const INTERVAL: Duration = Duration::from_secs(1);

/// What one look at rntpd's status says.
#[derive(Debug, PartialEq)]
enum Verdict {
    /// Done.
    Synced(String),
    /// Not yet; the text says where it stands.
    Waiting(String),
}

/// Runs `rntpctl wait-sync`.
pub fn wait_sync(socket: &Path, timeout: Option<f64>, max_offset: Option<f64>) -> ExitCode {
    let deadline = match timeout {
        Some(t) if !(t.is_finite() && t >= 0.0) => {
            eprintln!("rntpctl: --timeout expects a number of seconds, 0 or more");
            return ExitCode::from(2);
        }
        Some(t) => Some(Instant::now() + Duration::from_secs_f64(t.min(1e9))),
        None => None,
    };
    if max_offset.is_some_and(|m| !(m.is_finite() && m >= 0.0)) {
        eprintln!("rntpctl: --max-offset expects a number of seconds, 0 or more");
        return ExitCode::from(2);
    }
    let terminal = std::io::stdout().is_terminal();
    let mut reached = false;
    loop {
        let mut answering = false;
        let last;
        match crate::request(socket, Command::Status) {
            Ok(Reply::Status(status)) => {
                reached = true;
                answering = true;
                match verdict(&status, max_offset) {
                    Verdict::Synced(text) => {
                        if terminal {
                            progress_line(&text);
                            println!();
                        }
                        return ExitCode::from(SYNCED);
                    }
                    Verdict::Waiting(text) => last = text,
                }
            }
            Ok(Reply::Error { code, message }) => {
                finish_progress(terminal);
                eprintln!("rntpctl: rntpd refused the request ({code:?}): {message}");
                return ExitCode::from(UNREACHABLE);
            }
            Ok(_) => {
                finish_progress(terminal);
                eprintln!("rntpctl: unexpected reply from rntpd to a status request");
                return ExitCode::from(UNREACHABLE);
            }
            Err(e) if !reached => {
                eprintln!("rntpctl: {e}");
                return ExitCode::from(UNREACHABLE);
            }
            // Reached before: rntpd is restarting, most likely. Keep asking.
            Err(e) => last = format!("rntpd not answering ({e})"),
        }
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if terminal {
            let left = left.map_or(String::new(), |l| format!(" ({:.0} s left)", l.as_secs_f64()));
            progress_line(&format!("waiting: {last}{left}"));
        }
        if left.is_some_and(|l| l.is_zero()) {
            finish_progress(terminal);
            let t = timeout.unwrap_or(0.0);
            eprintln!("rntpctl: not synchronized after {t} s: {last}");
            return ExitCode::from(if answering { TIMED_OUT } else { UNREACHABLE });
        }
        let pause = left.map_or(INTERVAL, |l| l.min(INTERVAL));
        std::thread::sleep(pause);
    }
}

/// Whether `status` is synchronized (within `max_offset`), and a line saying where it stands.
fn verdict(status: &StatusInfo, max_offset: Option<f64>) -> Verdict {
    let servers = format!("{} of {} servers reachable", status.reachable, status.associations);
    // The remaining offset of the clock rntpd keeps: the sources' combined offset from the
    // system clock, less the virtual correction in observe mode (0 in control mode).
    let offset = status.system_offset.map(|o| o - status.clock_correction);
    let shown = offset.map_or("offset unknown".to_string(), |o| format!("offset {o:+.6} s"));
    if !status.synchronized {
        return Verdict::Waiting(format!("not synchronized, {servers}, {shown}"));
    }
    match (max_offset, offset) {
        (Some(max), Some(o)) if o.abs() > max => {
            Verdict::Waiting(format!("synchronized, {shown} (above {max} s), {servers}"))
        }
        (Some(_), None) => Verdict::Waiting(format!("synchronized, {shown}, {servers}")),
        _ => Verdict::Synced(format!("synchronized, {shown}, {servers}")),
    }
}

/// Rewrites the progress line in place.
fn progress_line(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = write!(out, "\r\x1b[2K{text}");
    let _ = out.flush();
}

/// Ends a progress line before a message on another stream.
fn finish_progress(terminal: bool) {
    if terminal {
        println!();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(synchronized: bool, offset: Option<f64>, correction: f64) -> StatusInfo {
        let json = serde_json::json!({
            "daemon_version": "0", "uptime": 1.0, "mode": "observe", "config_file": "x",
            "sources": 1, "associations": 2, "reachable": 1,
            "counters": {"sent": 0, "received": 0, "accepted": 0, "dropped": [],
                         "kod_received": 0, "send_errors": 0},
            "server": null, "listening": [], "serving_as": "unsynchronized", "stratum": 16,
            "clock_state": "sync", "clock_frequency_ppm": 0.0, "clock_correction": correction,
            "clock_offset": null, "kernel_clock": null, "system_peer": 1,
            "system_offset": offset, "system_jitter": null, "history_totals": [],
            "synchronized": synchronized,
        });
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn synchronized_within_the_bound() {
        assert!(matches!(verdict(&status(true, Some(0.5), 0.0), None), Verdict::Synced(_)));
        assert!(matches!(verdict(&status(false, Some(0.0), 0.0), None), Verdict::Waiting(_)));
        // Observe mode: the virtual clock's correction is subtracted.
        assert!(matches!(verdict(&status(true, Some(0.5), 0.499), Some(0.01)), Verdict::Synced(_)));
        let Verdict::Waiting(why) = verdict(&status(true, Some(0.5), 0.0), Some(0.01)) else {
            panic!("should wait")
        };
        assert_eq!(
            why,
            "synchronized, offset +0.500000 s (above 0.01 s), 1 of 2 servers reachable"
        );
        assert!(matches!(verdict(&status(true, None, 0.0), Some(1.0)), Verdict::Waiting(_)));
    }

    #[test]
    fn old_daemons_without_the_field_are_not_synchronized() {
        let mut json = serde_json::to_value(status(true, Some(0.0), 0.0)).unwrap();
        json.as_object_mut().unwrap().remove("synchronized");
        let s: StatusInfo = serde_json::from_value(json).unwrap();
        assert!(!s.synchronized);
    }
}
