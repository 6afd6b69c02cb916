//! The accuracy benchmark: fixed scenarios, several seeds, a table against chronyd 4.3's
//! figures, and one SVG plot of the true offset per scenario.
//!
//! It does not compare against a live chronyd: the reference column is the published figure
//! for the same scenario shapes (docs/accuracy.md explains where it comes from).

use std::fmt::Write as _;

use rntp_proto::discipline::DisciplineKind;

use crate::{run, ClientSpec, Feed, LinkSpec, RunResult, Scenario, Stats};

/// Frequency wander of the benchmark's client clock (1/√s).
pub const WANDER: f64 = 1e-9;

/// The benchmark client's slew rate (ppm).
pub const SLEW_RATE_PPM: f64 = rntp_proto::discipline::DEFAULT_SLEW_RATE_PPM;

/// One benchmark row: a scenario and chronyd's RMS and max (s) on it.
#[derive(Debug, Clone)]
pub struct Row {
    /// The scenario.
    pub scenario: Scenario,
    /// chronyd 4.3 RMS (s), if published.
    pub chrony_rms: Option<f64>,
    /// chronyd 4.3 max (s), if published.
    pub chrony_max: Option<f64>,
    /// chronyd 4.3 time to |offset| < 1 ms (s), if published.
    pub chrony_t1ms: Option<f64>,
}

fn client(freq_ppm: f64, initial_offset: f64, drift: Option<f64>) -> ClientSpec {
    ClientSpec {
        freq_ppm,
        wander: WANDER,
        initial_offset,
        drift_file_ppm: drift,
        slew_rate_ppm: SLEW_RATE_PPM,
    }
}

/// The benchmark rows. Warm rows have a drift file 0.1 ppm off the truth (a correction of
/// −1 ppm is needed; the file says −0.9).
pub fn rows(duration: f64) -> Vec<Row> {
    let warm = client(1.0, 0.0, Some(-0.9));
    let mut lan = Scenario::three_servers("LAN", LinkSpec::LAN, warm);
    lan.minpoll = 6;
    lan.maxpoll = 6;
    let mut wan = Scenario::three_servers("WAN", LinkSpec::WAN, warm);
    wan.minpoll = 6;
    wan.maxpoll = 6;
    let adaptive = Scenario::three_servers("LAN adaptive", LinkSpec::LAN, warm);
    let cold = Scenario::three_servers("cold start", LinkSpec::LAN, client(20.0, 0.01, None));
    let cold_wan = Scenario::three_servers("cold WAN", LinkSpec::WAN, client(20.0, 0.01, None));
    let slew = Scenario::three_servers("slew 50 ms", LinkSpec::LAN, client(1.0, 0.05, Some(-0.9)));
    let step = Scenario::three_servers("step 0.5 s", LinkSpec::LAN, client(1.0, 0.5, Some(-0.9)));
    let r = |s: Scenario, rms: Option<f64>, max: Option<f64>, t: Option<f64>| Row {
        scenario: Scenario { duration, ..s },
        chrony_rms: rms,
        chrony_max: max,
        chrony_t1ms: t,
    };
    vec![
        r(lan, Some(20e-6), Some(59e-6), None),
        r(wan, Some(69e-6), Some(230e-6), None),
        r(adaptive, Some(109e-6), Some(356e-6), None),
        r(cold, Some(194e-6), Some(562e-6), None),
        r(cold_wan, Some(362e-6), Some(1.14e-3), None),
        r(slew, None, None, Some(7.0)),
        r(step, None, None, Some(11.0)),
    ]
}

/// Aggregate of one row over seeds.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Aggregate {
    /// √(mean of the seeds' RMS²) (s).
    pub rms: f64,
    /// Largest max over seeds (s).
    pub max: f64,
    /// Worst time to stay below 1 ms (s); `None` if some seed never did.
    pub time_to_1ms: Option<f64>,
    /// Worst final frequency error (ppm).
    pub freq_error_ppm: f64,
}

/// Combines per-seed stats.
pub fn aggregate(stats: &[Stats]) -> Aggregate {
    let n = stats.len().max(1) as f64;
    let rms = (stats.iter().map(|s| s.rms * s.rms).sum::<f64>() / n).sqrt();
    let max = stats.iter().fold(0.0f64, |m, s| m.max(s.max));
    let time_to_1ms = stats.iter().try_fold(0.0f64, |m, s| s.time_to_1ms.map(|t| m.max(t)));
    let freq_error_ppm = stats.iter().fold(0.0f64, |m, s| m.max(s.final_freq_error_ppm));
    Aggregate { rms, max, time_to_1ms, freq_error_ppm }
}

fn us(s: f64) -> String {
    if s >= 1e-3 {
        format!("{:.2} ms", s * 1e3)
    } else {
        format!("{:.1} µs", s * 1e6)
    }
}

/// What a benchmark run may vary besides the seeds, to compare the daemon's options on the same
/// scenarios. The defaults are rntpd's defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Variant {
    /// What the discipline is fed.
    pub feed: Feed,
    /// The client's slew rate (ppm): how the daemon slews (500: `adjtime`; 83 333: tick).
    pub slew_rate_ppm: f64,
    /// The clock-control algorithm ([`DisciplineKind::RfcPllFll`] is always fed RFC-style,
    /// whatever `feed` says).
    pub discipline: DisciplineKind,
    /// Caps every row's `maxpoll` (and `minpoll`) at this (log2 s): the RFC loop controls the
    /// system poll itself, which the associations here do not follow.
    pub maxpoll: Option<i8>,
}

impl Default for Variant {
    fn default() -> Self {
        Variant {
            feed: Feed::Samples,
            slew_rate_ppm: SLEW_RATE_PPM,
            discipline: DisciplineKind::Kalman,
            maxpoll: None,
        }
    }
}

/// Runs every row over `seeds` seeds; returns the Markdown table and each row's first run.
pub fn bench(
    seeds: u64,
    duration: f64,
    variant: Variant,
) -> (String, Vec<(Row, Aggregate, RunResult)>) {
    let mut out = Vec::new();
    for mut row in rows(duration) {
        row.scenario.feed = variant.feed;
        row.scenario.client.slew_rate_ppm = variant.slew_rate_ppm;
        row.scenario.discipline.kind = variant.discipline;
        if let Some(m) = variant.maxpoll {
            row.scenario.maxpoll = row.scenario.maxpoll.min(m);
            row.scenario.minpoll = row.scenario.minpoll.min(m);
        }
        let runs: Vec<RunResult> = (1..=seeds).map(|s| run(&row.scenario, s)).collect();
        let stats: Vec<Stats> = runs.iter().map(|r| r.stats).collect();
        let agg = aggregate(&stats);
        let first = runs.into_iter().next().unwrap_or_default();
        out.push((row, agg, first));
    }
    let mut t = String::new();
    let _ = writeln!(
        t,
        "| scenario | RMS | max | chronyd 4.3 RMS (max) | ratio RMS (max) | time to <1 ms \
         (chronyd) | freq error at end |"
    );
    let _ = writeln!(t, "|---|---|---|---|---|---|---|");
    for (row, agg, _) in &out {
        let chrony = match (row.chrony_rms, row.chrony_max) {
            (Some(r), Some(m)) => format!("{} ({})", us(r), us(m)),
            _ => "–".into(),
        };
        let ratio = match (row.chrony_rms, row.chrony_max) {
            (Some(r), Some(m)) => format!("{:.2} ({:.2})", agg.rms / r, agg.max / m),
            _ => "–".into(),
        };
        let t1 = match agg.time_to_1ms {
            Some(v) => format!("{v:.0} s"),
            None => "never".into(),
        };
        let t1 = match row.chrony_t1ms {
            Some(c) => format!("{t1} ({c:.0} s)"),
            None => t1,
        };
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} | {} | {:.3} ppm |",
            row.scenario.name,
            us(agg.rms),
            us(agg.max),
            chrony,
            ratio,
            t1,
            agg.freq_error_ppm
        );
    }
    (t, out)
}

/// A hand-written SVG plot of true offset (µs) over time (h). Each pixel column keeps its
/// minimum and maximum, so spikes survive the downsampling.
pub fn svg(title: &str, series: &[(f64, f64)]) -> String {
    const W: f64 = 900.0;
    const H: f64 = 320.0;
    const PAD: f64 = 50.0;
    let t_end = series.last().map_or(1.0, |p| p.0).max(1.0);
    // Scale to the settled part (after 1 h) so the start-up transient does not flatten it;
    // the transient is clipped at the frame.
    let settled = series.iter().filter(|p| p.0 >= 3600f64.min(t_end / 2.0));
    let ymax = settled.fold(1e-6f64, |m, p| m.max(p.1.abs())) * 1.2;
    let x = |t: f64| PAD + (t / t_end) * (W - 2.0 * PAD);
    let y = |o: f64| H / 2.0 - (o / ymax).clamp(-1.0, 1.0) * (H / 2.0 - PAD / 2.0);
    let mut cols: Vec<Option<(f64, f64)>> = vec![None; (W - 2.0 * PAD) as usize + 1];
    for &(t, o) in series {
        let c = ((t / t_end) * (cols.len() - 1) as f64) as usize;
        let last = cols.len() - 1;
        let slot = &mut cols[c.min(last)];
        *slot = Some(slot.map_or((o, o), |(lo, hi)| (lo.min(o), hi.max(o))));
    }
    let mut pts = String::new();
    for (c, v) in cols.iter().enumerate() {
        if let Some((lo, hi)) = v {
            let t = c as f64 / (cols.len() - 1) as f64 * t_end;
            let _ = write!(pts, "{:.1},{:.1} {:.1},{:.1} ", x(t), y(*lo), x(t), y(*hi));
        }
    }
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" \
         font-family=\"sans-serif\" font-size=\"12\">"
    );
    let _ = writeln!(s, "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>");
    let _ = writeln!(s, "<text x=\"{PAD}\" y=\"18\">{title}: true offset (µs) vs time (h)</text>");
    let _ = writeln!(
        s,
        "<line x1=\"{PAD}\" y1=\"{m}\" x2=\"{x2}\" y2=\"{m}\" stroke=\"#999\"/>",
        m = H / 2.0,
        x2 = W - PAD
    );
    for (label, o) in [(ymax / 1.2, ymax / 1.2), (-ymax / 1.2, -ymax / 1.2)] {
        let _ = writeln!(
            s,
            "<text x=\"2\" y=\"{:.1}\">{:+.1}</text><line x1=\"{PAD}\" y1=\"{yy:.1}\" \
             x2=\"{x2}\" y2=\"{yy:.1}\" stroke=\"#ddd\"/>",
            y(o) + 4.0,
            label * 1e6,
            yy = y(o),
            x2 = W - PAD
        );
    }
    let hours = (t_end / 3600.0).ceil() as u32;
    let every = (hours / 12).max(1);
    for h in (0..=hours).step_by(every as usize) {
        let xx = x(f64::from(h) * 3600.0);
        if xx <= W - PAD + 0.5 {
            let _ = writeln!(s, "<text x=\"{xx:.1}\" y=\"{}\">{h}</text>", H - 5.0);
        }
    }
    let _ = writeln!(
        s,
        "<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1\" points=\"{pts}\"/>"
    );
    s.push_str("</svg>\n");
    s
}
