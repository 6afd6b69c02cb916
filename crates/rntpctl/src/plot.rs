//! `rntpctl plot`: the clock offset, the frequency and every server's offset from the
//! statistics files rntpd writes (`loopstats`, `peerstats`; ntpd's formats, so files of ntpd
//! and NTPsec work too), drawn as one SVG image with three panels, as `ntpviz` draws them.
//! No daemon is needed and nothing but the standard library: the SVG is written by hand.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Seconds per day.
const DAY: f64 = 86_400.0;
/// The Modified Julian Day of 1970-01-01.
const MJD_UNIX_EPOCH: f64 = 40_587.0;
/// Image width and panel height, pixels.
const WIDTH: f64 = 960.0;
const PANEL: f64 = 240.0;
/// Margins around each panel's plot area.
const LEFT: f64 = 90.0;
const RIGHT: f64 = 170.0;
const TOP: f64 = 34.0;
const BOTTOM: f64 = 36.0;
/// Line colours for the servers (cycled).
const COLOURS: [&str; 8] =
    ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];

/// One series: (Unix time, value) points.
type Series = Vec<(f64, f64)>;

/// What was read from the statistics directory.
#[derive(Debug, Default)]
pub struct Data {
    /// loopstats: clock offset (s).
    pub offset: Series,
    /// loopstats: frequency (ppm).
    pub frequency: Series,
    /// peerstats: offset (s) per server address.
    pub peers: BTreeMap<String, Series>,
}

/// Reads `DIR/loopstats.*` and `DIR/peerstats.*` (not compressed ones), keeping the last
/// `days` days before the newest line. Unparsable lines are skipped, as ntpviz does.
pub fn read(dir: &Path, days: f64) -> Result<Data, String> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read the statistics directory {}: {e}", dir.display()))?;
    let mut data = Data::default();
    let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    files.sort();
    for path in files {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
        let stem = name.split('.').next().unwrap_or("");
        if !name.contains('.') || name.ends_with(".gz") || !path.is_file() {
            continue;
        }
        let loop_file = stem == "loopstats";
        if !loop_file && stem != "peerstats" {
            continue;
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        for line in text.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (Some(mjd), Some(secs)) = (num(f.first()), num(f.get(1))) else { continue };
            let t = (mjd - MJD_UNIX_EPOCH) * DAY + secs;
            if loop_file {
                if let (Some(offset), Some(freq)) = (num(f.get(2)), num(f.get(3))) {
                    data.offset.push((t, offset));
                    data.frequency.push((t, freq));
                }
            } else if let (Some(addr), Some(offset)) = (f.get(2), num(f.get(4))) {
                data.peers.entry((*addr).to_string()).or_default().push((t, offset));
            }
        }
    }
    let newest = data
        .offset
        .iter()
        .chain(data.peers.values().flatten())
        .map(|p| p.0)
        .fold(f64::NEG_INFINITY, f64::max);
    let since = newest - days * DAY;
    let keep = |s: &mut Series| {
        s.retain(|p| p.0 >= since);
        s.sort_by(|a, b| a.0.total_cmp(&b.0));
    };
    keep(&mut data.offset);
    keep(&mut data.frequency);
    data.peers.values_mut().for_each(keep);
    data.peers.retain(|_, s| !s.is_empty());
    if data.offset.is_empty() && data.peers.is_empty() {
        return Err(format!(
            "no loopstats or peerstats lines in {} (is `statistics loopstats peerstats` in the \
             configuration, and `statsdir` this directory?)",
            dir.display()
        ));
    }
    Ok(data)
}

fn num(word: Option<&&str>) -> Option<f64> {
    word.and_then(|w| w.parse::<f64>().ok()).filter(|v| v.is_finite())
}

/// The SVG image.
pub fn svg(data: &Data, title: &str) -> String {
    let all = data.offset.iter().chain(data.peers.values().flatten());
    let (t0, t1) =
        all.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let (t0, t1) = if t1 > t0 { (t0, t1) } else { (t0 - 1.0, t0 + 1.0) };
    let height = 3.0 * PANEL + 30.0;
    let mut out = String::new();
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" \
         viewBox=\"0 0 {WIDTH} {height}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"20\" text-anchor=\"middle\" font-size=\"15\">{}</text>\n",
        WIDTH / 2.0,
        escape(title)
    );
    let offset = [("clock offset".to_string(), data.offset.clone())];
    panel(&mut out, 30.0, "Clock offset (loopstats)", Unit::Seconds, &offset, (t0, t1));
    let freq = [("frequency".to_string(), data.frequency.clone())];
    panel(&mut out, 30.0 + PANEL, "Frequency (loopstats)", Unit::Ppm, &freq, (t0, t1));
    let peers: Vec<(String, Series)> =
        data.peers.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    panel(
        &mut out,
        30.0 + 2.0 * PANEL,
        "Server offsets (peerstats)",
        Unit::Seconds,
        &peers,
        (t0, t1),
    );
    out.push_str("</svg>\n");
    out
}

#[derive(Clone, Copy)]
enum Unit {
    Seconds,
    Ppm,
}

/// One panel at `y`: axes, grid, ticks, the series and a legend.
fn panel(
    out: &mut String,
    y: f64,
    title: &str,
    unit: Unit,
    series: &[(String, Series)],
    (t0, t1): (f64, f64),
) {
    let (x_lo, x_hi) = (LEFT, WIDTH - RIGHT);
    let (y_lo, y_hi) = (y + PANEL - BOTTOM, y + TOP);
    let values = series.iter().flat_map(|(_, s)| s.iter().map(|p| p.1));
    let (mut v0, mut v1) =
        values.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    if !v0.is_finite() {
        (v0, v1) = (-1.0, 1.0);
    }
    if v1 - v0 < 1e-12 {
        let pad = if v0.abs() > 0.0 { v0.abs() * 0.1 } else { 1e-6 };
        (v0, v1) = (v0 - pad, v1 + pad);
    }
    let (scale, unit_name) = match unit {
        Unit::Ppm => (1.0, "ppm"),
        Unit::Seconds => {
            let m = v0.abs().max(v1.abs());
            if m >= 1.0 {
                (1.0, "s")
            } else if m >= 1e-3 {
                (1e3, "ms")
            } else {
                (1e6, "µs")
            }
        }
    };
    let ticks = nice_ticks(v0 * scale, v1 * scale);
    let (v0, v1) = (
        ticks.first().copied().unwrap_or(v0 * scale).min(v0 * scale),
        ticks.last().copied().unwrap_or(v1 * scale).max(v1 * scale),
    );
    let fx = |t: f64| x_lo + (t - t0) / (t1 - t0) * (x_hi - x_lo);
    let fy = |v: f64| y_lo - (v - v0) / (v1 - v0) * (y_lo - y_hi);
    let _ = writeln!(
        out,
        "<text x=\"{x_lo}\" y=\"{}\" font-size=\"13\" font-weight=\"bold\">{}</text>",
        y + 20.0,
        escape(title)
    );
    let _ = writeln!(
        out,
        "<rect x=\"{x_lo}\" y=\"{y_hi}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#444\"/>",
        x_hi - x_lo,
        y_lo - y_hi
    );
    for v in &ticks {
        let py = fy(*v);
        let _ = writeln!(
            out,
            "<line x1=\"{x_lo}\" y1=\"{py:.1}\" x2=\"{x_hi}\" y2=\"{py:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            x_lo - 6.0,
            py + 4.0,
            fmt_tick(*v)
        );
    }
    let _ = writeln!(
        out,
        "<text x=\"18\" y=\"{:.1}\" transform=\"rotate(-90 18 {:.1})\" text-anchor=\"middle\">{unit_name}</text>",
        (y_lo + y_hi) / 2.0,
        (y_lo + y_hi) / 2.0
    );
    for i in 0..=4 {
        let t = t0 + (t1 - t0) * f64::from(i) / 4.0;
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            fx(t),
            y_lo + 16.0,
            time_label(t, t1 - t0)
        );
    }
    for (i, (name, points)) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let mut path = String::new();
        for (t, v) in points {
            let _ = write!(path, "{:.1},{:.1} ", fx(*t), fy(v * scale));
        }
        let _ = writeln!(
            out,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\" points=\"{}\"/>",
            path.trim_end()
        );
        if points.len() == 1 {
            let (t, v) = points[0];
            let _ = writeln!(
                out,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\" fill=\"{colour}\"/>",
                fx(t),
                fy(v * scale)
            );
        }
        let ly = y_hi + 14.0 + 16.0 * i as f64;
        let _ = writeln!(
            out,
            "<line x1=\"{}\" y1=\"{ly:.1}\" x2=\"{}\" y2=\"{ly:.1}\" stroke=\"{colour}\" stroke-width=\"3\"/>\
             <text x=\"{}\" y=\"{:.1}\">{}</text>",
            x_hi + 10.0,
            x_hi + 28.0,
            x_hi + 34.0,
            ly + 4.0,
            escape(name)
        );
    }
}

/// About five round tick values covering `lo..hi`.
fn nice_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let raw = (hi - lo) / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).floor() * step;
    (0..=12).map(|i| first + step * f64::from(i)).take_while(|v| *v <= hi + step * 0.999).collect()
}

fn fmt_tick(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_string()
    } else {
        s.to_string()
    }
}

/// `HH:MM` UTC (`HH:MM:SS` for spans under 10 minutes, `MM-DD HH:MM` over a day).
fn time_label(t: f64, span: f64) -> String {
    let days = (t / DAY).floor();
    let secs = t - days * DAY;
    let (h, m) = ((secs / 3600.0) as u32, ((secs % 3600.0) / 60.0) as u32);
    if span < 600.0 {
        return format!("{h:02}:{m:02}:{:02}", (secs % 60.0) as u32);
    }
    if span <= DAY {
        return format!("{h:02}:{m:02}");
    }
    let date = crate::plot::date(days as i64);
    format!("{} {h:02}:{m:02}", &date[5..])
}

/// `YYYY-MM-DD` of a day number since 1970-01-01.
fn date(days: i64) -> String {
    let (y, m, d) = rntp_proto::time::civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ntpd_format_and_draws_three_panels() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("loopstats.20260101"),
            "61041 100.000 0.000123 -12.5 0.000010 0.01 6\n61041 164.000 -0.000050 -12.4 0.000011 0.01 6\n\
             garbage line\n",
        )
        .expect("write");
        std::fs::write(
            dir.path().join("peerstats.20260101"),
            "61041 99.0 192.0.2.1 961a 0.000100 0.0002 0.001 0.00001\n\
             61041 163.0 192.0.2.1 961a 0.000110 0.0002 0.001 0.00001\n\
             61041 120.0 2001:db8::1 1414 -0.000200 0.0003 0.001 0.00002\n",
        )
        .expect("write");
        std::fs::write(dir.path().join("sysstats.20260101"), "61041 3600 1 2 3\n").expect("write");
        let data = read(dir.path(), 7.0).expect("read");
        assert_eq!(data.offset.len(), 2);
        assert_eq!(data.frequency[1], (20_454.0 * DAY + 164.0, -12.4));
        assert_eq!(data.peers.len(), 2);
        let svg = svg(&data, "test <host>");
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert_eq!(svg.matches("<polyline").count(), 4, "offset, frequency, two servers");
        assert!(svg.contains("192.0.2.1") && svg.contains("2001:db8::1"));
        assert!(svg.contains("test &lt;host&gt;"));
        assert!(svg.trim_end().ends_with("</svg>"));
    }

    #[test]
    fn empty_directory_says_what_to_configure() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = read(dir.path(), 7.0).expect_err("no data");
        assert!(err.contains("statistics loopstats peerstats"), "{err}");
    }

    #[test]
    fn ticks_are_round() {
        assert_eq!(nice_ticks(0.0, 10.0), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        assert_eq!(date(20_454), "2026-01-01");
    }
}
