//! The accuracy benchmark: fixed scenarios, several seeds, a table against chronyd 4.3's
//! figures, and one SVG plot of the true offset per scenario.
//!
//! It does not run chronyd: the reference columns are the figures measured for chronyd 4.3 on
//! the same scenario shapes in an independent simulation of the Linux kernel clock
//! (docs/accuracy.md says where each comes from). Every host clock is the Linux-faithful
//! kernel model ([`crate::kernel::LinuxClock`]) unless [`Variant::clock`] says otherwise.

use std::fmt::Write as _;

use rntp_proto::discipline::DisciplineKind;

use crate::{run, ClientSpec, ClockModel, Feed, LinkSpec, RunResult, Scenario, Stats};

/// Frequency wander of the benchmark's client clock (1/√s).
pub const WANDER: f64 = 1e-9;

/// chronyd 4.3's figures for a row, where measured (`None`: not published for that row).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Chrony {
    /// RMS of the true offset after the first hour (s).
    pub rms: Option<f64>,
    /// Largest |true offset| after the first hour (s).
    pub max: Option<f64>,
    /// Time until |offset| stays below 1 ms (s).
    pub t1ms: Option<f64>,
    /// Largest correction within one second in steady state (s).
    pub max_correction_per_s: Option<f64>,
    /// RMS frequency error in steady state (ppm; the worst of its seeds).
    pub rms_freq_ppm: Option<f64>,
    /// System-peer changes per day.
    pub peer_changes_per_day: Option<f64>,
}

/// One benchmark row: a scenario and chronyd's figures on it.
#[derive(Debug, Clone)]
pub struct Row {
    /// The scenario.
    pub scenario: Scenario,
    /// chronyd 4.3 on the same shape.
    pub chrony: Chrony,
}

fn client(freq_ppm: f64, initial_offset: f64, drift: Option<f64>) -> ClientSpec {
    ClientSpec { freq_ppm, wander: WANDER, initial_offset, drift_file_ppm: drift }
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
    let r = |s: Scenario, chrony: Chrony| Row { scenario: Scenario { duration, ..s }, chrony };
    let accuracy =
        |rms: f64, max: f64| Chrony { rms: Some(rms), max: Some(max), ..Chrony::default() };
    vec![
        r(
            lan,
            Chrony {
                max_correction_per_s: Some(3e-6),
                rms_freq_ppm: Some(0.15),
                peer_changes_per_day: Some(3.0 * 24.0 / 28.0),
                ..accuracy(20e-6, 59e-6)
            },
        ),
        r(wan, accuracy(69e-6, 230e-6)),
        r(adaptive, accuracy(109e-6, 356e-6)),
        r(cold, Chrony { t1ms: Some(6.0), ..accuracy(194e-6, 562e-6) }),
        r(cold_wan, accuracy(362e-6, 1.14e-3)),
        r(slew, Chrony { t1ms: Some(7.0), ..Chrony::default() }),
        r(step, Chrony { t1ms: Some(11.0), ..Chrony::default() }),
    ]
}

/// Aggregate of one row over seeds.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Aggregate {
    /// Seeds.
    pub seeds: usize,
    /// √(mean of the seeds' RMS²) (s).
    pub rms: f64,
    /// Largest max over seeds (s).
    pub max: f64,
    /// Mean of the seeds' maxima (s): the max column without its luck of the draw.
    pub mean_max: f64,
    /// Median of the seeds' maxima (s).
    pub median_max: f64,
    /// Worst time to stay below 1 ms (s); `None` if some seed never did.
    pub time_to_1ms: Option<f64>,
    /// Worst first time below 1 ms (s); `None` if some seed never got there.
    pub first_below_1ms: Option<f64>,
    /// Worst |offset| after the first time below 1 ms (s).
    pub max_after_below_1ms: f64,
    /// Worst final frequency error (ppm).
    pub freq_error_ppm: f64,
    /// Worst largest correction within one second, after the first hour (s).
    pub max_correction_per_s: f64,
    /// Worst seed's RMS frequency error after the first hour (ppm).
    pub rms_freq_ppm: f64,
    /// Mean system-peer changes per day.
    pub peer_changes_per_day: f64,
    /// Most system-peer changes in one run.
    pub peer_changes_max: u32,
    /// Requests sent per association poll interval (1.0: exactly the configured polling).
    pub requests_per_poll: f64,
    /// Timer wakeups per request sent.
    pub wakeups_per_request: f64,
    /// Timer wakeups that ended a slew, per request sent.
    pub slew_wakeups_per_request: f64,
}

/// Combines the runs of one row.
pub fn aggregate(sc: &Scenario, runs: &[RunResult]) -> Aggregate {
    let stats: Vec<Stats> = runs.iter().map(|r| r.stats).collect();
    let n = stats.len().max(1) as f64;
    let rms = (stats.iter().map(|s| s.rms * s.rms).sum::<f64>() / n).sqrt();
    let max = stats.iter().fold(0.0f64, |m, s| m.max(s.max));
    let mut maxima: Vec<f64> = stats.iter().map(|s| s.max).collect();
    maxima.sort_by(f64::total_cmp);
    let median_max = maxima.get(maxima.len() / 2).copied().unwrap_or(0.0);
    let worst =
        |f: fn(&Stats) -> Option<f64>| stats.iter().try_fold(0.0f64, |m, s| f(s).map(|t| m.max(t)));
    let fold = |f: fn(&Stats) -> f64| stats.iter().fold(0.0f64, |m, s| m.max(f(s)));
    let days = sc.duration / 86_400.0;
    let polls: f64 = runs.iter().map(poll_intervals).sum();
    let requests: u64 = runs.iter().map(|r| r.requests_sent).sum();
    let wakeups: u64 = runs.iter().map(|r| r.timer_wakeups).sum();
    let slew_wakeups: u64 = runs.iter().map(|r| r.slew_wakeups).sum();
    let per_request = |n: u64| if requests > 0 { n as f64 / requests as f64 } else { 0.0 };
    Aggregate {
        seeds: stats.len(),
        rms,
        max,
        mean_max: maxima.iter().sum::<f64>() / n,
        median_max,
        time_to_1ms: worst(|s| s.time_to_1ms),
        first_below_1ms: worst(|s| s.first_below_1ms),
        max_after_below_1ms: fold(|s| s.max_after_below_1ms),
        freq_error_ppm: fold(|s| s.final_freq_error_ppm),
        max_correction_per_s: fold(|s| s.max_correction_per_s),
        rms_freq_ppm: fold(|s| s.rms_freq_error_ppm),
        peer_changes_per_day: runs.iter().map(|r| f64::from(r.peer_changes)).sum::<f64>()
            / n
            / days,
        peer_changes_max: runs.iter().map(|r| r.peer_changes).max().unwrap_or(0),
        requests_per_poll: if polls > 0.0 { requests as f64 / polls } else { 0.0 },
        wakeups_per_request: per_request(wakeups),
        slew_wakeups_per_request: per_request(slew_wakeups),
    }
}

/// Poll intervals host 0's associations spent over a run: Σ over associations of ∫ dt / poll,
/// from the series points (each point's poll counts until the next point).
fn poll_intervals(r: &RunResult) -> f64 {
    let mut last: std::collections::BTreeMap<u32, (f64, i8)> = std::collections::BTreeMap::new();
    let mut total = 0.0;
    for &(t, id, poll, _) in &r.polls {
        if let Some((t0, p0)) = last.insert(id.0, (t, poll)) {
            total += (t - t0) / 2f64.powi(i32::from(p0));
        }
    }
    total
}

fn us(s: f64) -> String {
    if !s.is_finite() {
        "–".into()
    } else if s >= 1e-3 {
        format!("{:.2} ms", s * 1e3)
    } else {
        format!("{:.1} µs", s * 1e6)
    }
}

fn secs_or_never(t: Option<f64>) -> String {
    match t {
        Some(v) => format!("{v:.1} s"),
        None => "never".into(),
    }
}

/// What a benchmark run may vary besides the seeds, to compare the daemon's options on the same
/// scenarios. The defaults are rntpd's defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Variant {
    /// What the discipline is fed.
    pub feed: Feed,
    /// The discipline's maximum slew rate (ppm; `maxslewrate`).
    pub max_slew_ppm: f64,
    /// The clock-control algorithm ([`DisciplineKind::RfcPllFll`] is always fed RFC-style,
    /// whatever `feed` says).
    pub discipline: DisciplineKind,
    /// Caps every row's `maxpoll` (and `minpoll`) at this (log2 s): the RFC loop controls the
    /// system poll itself, which the associations here do not follow.
    pub maxpoll: Option<i8>,
    /// The hosts' kernel model.
    pub clock: ClockModel,
    /// The discipline's correction ratio (`None`: its default).
    pub correction_ratio: Option<f64>,
    /// The discipline's assumed frequency wander (`None`: its default).
    pub wander: Option<f64>,
}

impl Default for Variant {
    fn default() -> Self {
        Variant {
            feed: Feed::Samples,
            max_slew_ppm: rntp_proto::discipline::DEFAULT_MAX_SLEW_PPM,
            discipline: DisciplineKind::Kalman,
            maxpoll: None,
            clock: ClockModel::default(),
            correction_ratio: None,
            wander: None,
        }
    }
}

impl Variant {
    /// Applies the variant to a row's scenario.
    pub fn apply(&self, sc: &mut Scenario) {
        sc.feed = self.feed;
        sc.discipline.max_slew_ppm = self.max_slew_ppm;
        sc.discipline.kind = self.discipline;
        sc.clock = self.clock;
        if let Some(r) = self.correction_ratio {
            sc.discipline.correction_ratio = r;
        }
        if let Some(w) = self.wander {
            sc.discipline.wander = w;
        }
        if let Some(m) = self.maxpoll {
            sc.maxpoll = sc.maxpoll.min(m);
            sc.minpoll = sc.minpoll.min(m);
        }
    }
}

/// Runs every row (or only `only`) over seeds `1..=seeds`: each row's aggregate and first run.
pub fn measure(
    seeds: u64,
    duration: f64,
    variant: Variant,
    only: Option<&str>,
) -> Vec<(Row, Aggregate, RunResult)> {
    let mut out = Vec::new();
    for mut row in rows(duration) {
        if only.is_some_and(|name| name != row.scenario.name) {
            continue;
        }
        variant.apply(&mut row.scenario);
        let runs: Vec<RunResult> = (1..=seeds).map(|s| run(&row.scenario, s)).collect();
        let agg = aggregate(&row.scenario, &runs);
        let first = runs.into_iter().next().unwrap_or_default();
        out.push((row, agg, first));
    }
    out
}

/// A ratio cell: ours ÷ chronyd's, or "–".
fn ratio(ours: f64, theirs: Option<f64>) -> String {
    theirs.map_or_else(|| "–".into(), |c| format!("{:.2}", ours / c))
}

/// Runs every row over `seeds` seeds; returns the Markdown tables and each row's first run.
pub fn bench(
    seeds: u64,
    duration: f64,
    variant: Variant,
) -> (String, Vec<(Row, Aggregate, RunResult)>) {
    let out = measure(seeds, duration, variant, None);
    (table(&out), out)
}

/// The accuracy table and the steering table of measured rows.
pub fn table(out: &[(Row, Aggregate, RunResult)]) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "| scenario | RMS | max | mean of seed maxima | chronyd 4.3 RMS (max) | ratio RMS (max) \
         [mean max] | stays < 1 ms after (chronyd) | first < 1 ms | worst after first < 1 ms \
         | freq error at end |"
    );
    let _ = writeln!(t, "|---|---|---|---|---|---|---|---|---|---|");
    for (row, agg, _) in out {
        let c = row.chrony;
        let chrony = match (c.rms, c.max) {
            (Some(r), Some(m)) => format!("{} ({})", us(r), us(m)),
            _ => "–".into(),
        };
        let ratios = match (c.rms, c.max) {
            (Some(_), Some(_)) => format!(
                "{} ({}) [{}]",
                ratio(agg.rms, c.rms),
                ratio(agg.max, c.max),
                ratio(agg.mean_max, c.max)
            ),
            _ => "–".into(),
        };
        let mut t1 = secs_or_never(agg.time_to_1ms);
        if let Some(ct) = c.t1ms {
            let _ = write!(
                t1,
                " ({ct:.0} s; ratio {})",
                agg.time_to_1ms.map_or("–".into(), |v| format!("{:.2}", v / ct))
            );
        }
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.3} ppm |",
            row.scenario.name,
            us(agg.rms),
            us(agg.max),
            us(agg.mean_max),
            chrony,
            ratios,
            t1,
            secs_or_never(agg.first_below_1ms),
            us(agg.max_after_below_1ms),
            agg.freq_error_ppm
        );
    }
    let _ = writeln!(t);
    let _ = writeln!(
        t,
        "| scenario | largest correction in 1 s (chronyd) | RMS frequency error (chronyd) \
         | system-peer changes/day, mean (max) (chronyd) | requests per poll | node timer wakeups \
         per request (slew ends) |"
    );
    let _ = writeln!(t, "|---|---|---|---|---|---|");
    for (row, agg, _) in out {
        let c = row.chrony;
        let with = |ours: String, theirs: Option<String>, r: String| match theirs {
            Some(th) => format!("{ours} ({th}; ratio {r})"),
            None => ours,
        };
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {:.3} | {:.2} ({:.3}) |",
            row.scenario.name,
            with(
                us(agg.max_correction_per_s),
                c.max_correction_per_s.map(us),
                ratio(agg.max_correction_per_s, c.max_correction_per_s)
            ),
            with(
                format!("{:.3} ppm", agg.rms_freq_ppm),
                c.rms_freq_ppm.map(|v| format!("{v:.2} ppm")),
                ratio(agg.rms_freq_ppm, c.rms_freq_ppm)
            ),
            with(
                format!("{:.1} ({})", agg.peer_changes_per_day, agg.peer_changes_max),
                c.peer_changes_per_day.map(|v| format!("{v:.1}")),
                ratio(agg.peer_changes_per_day, c.peer_changes_per_day)
            ),
            agg.requests_per_poll,
            agg.wakeups_per_request,
            agg.slew_wakeups_per_request
        );
    }
    t
}

/// The `stats` table: many seeds, RMS and the distribution of the per-seed maxima, against
/// chronyd's figures.
pub fn stats_table(out: &[(Row, Aggregate, RunResult)]) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "| scenario | seeds | RMS | ratio | mean of seed maxima | ratio | median seed max | worst \
         max | ratio | stays < 1 ms after (worst) | first < 1 ms (worst) | worst after first < 1 \
         ms |"
    );
    let _ = writeln!(t, "|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (row, agg, _) in out {
        let c = row.chrony;
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            row.scenario.name,
            agg.seeds,
            us(agg.rms),
            ratio(agg.rms, c.rms),
            us(agg.mean_max),
            ratio(agg.mean_max, c.max),
            us(agg.median_max),
            us(agg.max),
            ratio(agg.max, c.max),
            secs_or_never(agg.time_to_1ms),
            secs_or_never(agg.first_below_1ms),
            us(agg.max_after_below_1ms)
        );
    }
    t
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
