//! Where an idealized `adjtime()` (a slew runs continuously at 500 ppm from the call; a new
//! slew replaces the old at once: what rntpd's discipline assumed before it slewed through the
//! frequency) and the Linux-faithful `rntp_sim::kernel::LinuxClock` (a chunk of at most 500 µs
//! is committed at each second boundary of CLOCK_REALTIME; a new adjtime() replaces what is
//! pending but not the running chunk) disagree, for the same call sequences. Run with
//! `--nocapture` for the table. These quirks are why rntpd never calls `adjtime()`.

use rntp_proto::time::Instant;
use rntp_sim::kernel::{LinuxClock, LinuxClockConfig, Timespec};

/// The idealized single-shot slew: 500 ppm from the call until the phase is done.
#[derive(Default)]
struct IdealAdjtime {
    phase: f64,
    pending: f64,
    at: f64,
}

impl IdealAdjtime {
    fn offset_at(&self, t: f64) -> f64 {
        let done = (500e-6 * (t - self.at).max(0.0)).min(self.pending.abs());
        self.phase + done.copysign(self.pending)
    }

    fn adjtime(&mut self, t: f64, offset: f64) {
        let done = (500e-6 * (t - self.at).max(0.0)).min(self.pending.abs());
        self.phase += done.copysign(self.pending);
        self.at = t;
        self.pending = offset;
    }
}

fn at(secs: f64) -> Instant {
    Instant::from_nanos((secs * 1e9).round() as u64)
}

/// Runs `actions` (time, action) on both models and returns the correction (µs) of each at
/// every time in `samples`: (idealized, faithful).
fn run(actions: &[(f64, f64)], samples: &[f64]) -> Vec<(f64, f64)> {
    // CLOCK_REALTIME at .25 s at true time zero: the first second boundary is 0.75 s after
    // the first action (any phase would do; this one is fixed so the numbers are).
    let mut linux = LinuxClock::new(LinuxClockConfig {
        start: Timespec { sec: 1_767_225_600, nsec: 250_000_000 },
        ..LinuxClockConfig::default()
    });
    let mut ideal = IdealAdjtime::default();
    let mut events: Vec<(f64, Option<f64>)> = actions.iter().map(|&(t, a)| (t, Some(a))).collect();
    events.extend(samples.iter().map(|&t| (t, None)));
    // Actions before samples at the same time.
    events.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.is_none().cmp(&b.1.is_none())));
    let mut out = Vec::new();
    for (t, action) in events {
        match action {
            Some(offset) => {
                ideal.adjtime(t, offset);
                linux.adjtime(at(t), (offset * 1e6).round() as i64);
            }
            None => out.push((ideal.offset_at(t) * 1e6, linux.error_at(at(t)) * 1e6)),
        }
    }
    out
}

fn slew(offset: f64) -> f64 {
    offset
}

/// Checks each row against (idealized, faithful) µs, to 0.01 µs.
#[track_caller]
fn check(rows: &[(f64, f64)], expected: &[(f64, f64)]) {
    assert_eq!(rows.len(), expected.len());
    for (&(i, l), &(ei, el)) in rows.iter().zip(expected) {
        assert!((i - ei).abs() < 0.01, "idealized {i} µs, expected {ei} µs");
        assert!((l - el).abs() < 0.01, "faithful {l} µs, expected {el} µs");
    }
}

fn table(name: &str, samples: &[f64], rows: &[(f64, f64)]) {
    eprintln!("{name}");
    eprintln!("{:>8} {:>12} {:>12} {:>12}", "t (s)", "ideal (µs)", "linux (µs)", "diff (µs)");
    for (t, (i, l)) in samples.iter().zip(rows) {
        eprintln!("{t:>8.2} {i:>12.3} {l:>12.3} {:>12.3}", l - i);
    }
}

#[test]
fn repeated_10ms_slews_every_2s() {
    let actions: Vec<_> = (0..10).map(|k| (2.0 * k as f64, slew(0.010))).collect();
    let samples = [0.5, 1.0, 2.0, 10.0, 20.0, 40.0];
    let rows = run(&actions, &samples);
    table("10 ms slews every 2 s, t = 0..18 s", &samples, &rows);
    // Idealized: 500 ppm from t = 0 until the last slew's 10 ms are done at 38 s.
    // Faithful: nothing until the first second boundary (0.75 s), so it stays 375 µs behind
    // while slewing; at the end each of the 38 chunks delivered 500 / 1.0005 = 499.75 µs
    // (the clock runs 500 ppm fast during its CLOCK_REALTIME second): 18 990.5 µs, not 19 ms.
    check(
        &rows,
        &[
            (250.0, 0.0),
            (500.0, 125.0),
            (1000.0, 625.0),
            (5000.0, 4625.0),
            (10_000.0, 9625.0),
            (19_000.0, 38.0 * 500.0 / 1.0005),
        ],
    );
}

#[test]
fn slews_replaced_within_a_second_are_lost() {
    let actions: Vec<_> = (0..20).map(|k| (0.5 * k as f64, slew(200e-6))).collect();
    let samples = [1.0, 5.0, 10.0, 20.0];
    let rows = run(&actions, &samples);
    table("200 µs slews every 0.5 s, t = 0..9.5 s", &samples, &rows);
    // Idealized: each 200 µs slew completes in 0.4 s, before the next: 4 ms in 10 s.
    // Faithful: only the slew pending at each second boundary is committed (200 µs, run at
    // 200 ppm over the next second); the other call of that second was replaced before it
    // was committed. Half the correction is lost: 10 chunks of 200 / 1.0002 µs.
    let chunk = 200.0 / 1.0002;
    check(
        &rows,
        &[
            (400.0, 50.0),
            (2000.0, 4.0 * chunk + (5.0 - 0.75 - 4.0 / 1.0002) * 200.0),
            (4000.0, 9.0 * chunk + (10.0 - 0.75 - 9.0 / 1.0002) * 200.0),
            (4000.0, 10.0 * chunk),
        ],
    );
}

#[test]
fn reversing_a_slew_mid_second() {
    let actions = [(0.0, slew(0.010)), (1.5, slew(-0.010))];
    let samples = [1.5, 1.75, 2.0, 5.0];
    let rows = run(&actions, &samples);
    table("+10 ms at 0 s, then -10 ms at 1.5 s", &samples, &rows);
    // Idealized: turns round at 1.5 s. Faithful: the +500 µs chunk committed at 0.75 s runs to
    // the end of its second (0.75 + 1/1.0005 = 1.7495 s) and only then slews back: 125.5 µs
    // further ahead from then on (the chunk's 499.75 µs against the idealized 375 + 250).
    let turn = 0.75 + 1.0 / 1.0005;
    let peak = 500.0 / 1.0005;
    check(
        &rows,
        &[
            (750.0, 375.0),
            (625.0, peak - (1.75 - turn) * 500.0),
            (500.0, peak - (2.0 - turn) * 500.0),
            (-1000.0, peak - (5.0 - turn) * 500.0),
        ],
    );
}
