//! `rntp-sim`: runs the accuracy benchmark (`bench`) or one scenario (`run`) in virtual time.
//!
//! ```text
//! rntp-sim bench [--seeds 5] [--out target/accuracy] [--hours 24] [OPTIONS]
//! rntp-sim run SCENARIO [--seed 1] [--hours 24] [OPTIONS]   # prints "time offset" lines
//! OPTIONS: --feed samples|filter-best (default samples), --slew-ppm PPM (default 500),
//!          --discipline kalman|rfc (default kalman; rfc = RFC 5905 PLL/FLL, fed filter-best),
//!          --maxpoll LOG2 (bench: caps every row's poll bounds)
//! ```
//! It never touches this machine's clock: everything is simulated.

use std::path::PathBuf;
use std::process::ExitCode;

use rntp_proto::discipline::DisciplineKind;
use rntp_sim::{bench, Feed};

fn usage() -> ExitCode {
    eprintln!(
        "usage: rntp-sim bench [--seeds N] [--out DIR] [--hours H] [OPTIONS]\n       \
         rntp-sim run SCENARIO [--seed N] [--hours H] [OPTIONS]\n\
         options: --feed samples|filter-best   --slew-ppm PPM (500; 83333 = tick slewing)\n         \
         --discipline kalman|rfc (rfc: RFC 5905 PLL/FLL, always fed filter-best)   \
         --maxpoll LOG2 (bench: cap every row's poll)"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut seeds = 5u64;
    let mut seed = 1u64;
    let mut hours = 24.0f64;
    let mut out = PathBuf::from("target/accuracy");
    let mut variant = bench::Variant::default();
    let mut positional = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().cloned().unwrap_or_default();
        match a.as_str() {
            "--seeds" => seeds = value().parse().unwrap_or(0),
            "--seed" => seed = value().parse().unwrap_or(0),
            "--hours" => hours = value().parse().unwrap_or(0.0),
            "--out" => out = PathBuf::from(value()),
            "--feed" => {
                variant.feed = match value().as_str() {
                    "samples" => Feed::Samples,
                    "filter-best" => Feed::FilterBest,
                    _ => return usage(),
                }
            }
            "--discipline" => {
                variant.discipline = match value().as_str() {
                    "kalman" => DisciplineKind::Kalman,
                    "rfc" => DisciplineKind::RfcPllFll,
                    _ => return usage(),
                }
            }
            "--maxpoll" => match value().parse::<i8>() {
                Ok(v) if (0..=17).contains(&v) => variant.maxpoll = Some(v),
                _ => return usage(),
            },
            "--slew-ppm" => match value().parse::<f64>() {
                Ok(v) if v.is_finite() && v > 0.0 => variant.slew_rate_ppm = v,
                _ => return usage(),
            },
            "-h" | "--help" => return usage(),
            _ => positional.push(a.clone()),
        }
    }
    if seeds == 0 || hours.is_nan() || hours <= 0.0 {
        return usage();
    }
    let duration = hours * 3600.0;
    match positional.first().map(String::as_str) {
        Some("bench") => {
            let (table, rows) = bench::bench(seeds, duration, variant);
            println!("{seeds} seeds, {hours} h simulated each; settled = after the first hour\n");
            print!("{table}");
            if let Err(e) = std::fs::create_dir_all(&out) {
                eprintln!("cannot create {}: {e}", out.display());
                return ExitCode::FAILURE;
            }
            let _ = std::fs::write(out.join("table.md"), &table);
            for (row, _, first) in &rows {
                let file = row.scenario.name.replace(' ', "_").replace('.', "");
                let svg = bench::svg(&row.scenario.name, &first.series);
                let csv: String =
                    first.series.iter().map(|(t, o)| format!("{t:.3},{o:.9}\n")).collect();
                if std::fs::write(out.join(format!("{file}.svg")), svg).is_err()
                    || std::fs::write(out.join(format!("{file}.csv")), csv).is_err()
                {
                    eprintln!("cannot write to {}", out.display());
                    return ExitCode::FAILURE;
                }
            }
            println!("\nplots and series (seed 1) in {}", out.display());
            ExitCode::SUCCESS
        }
        Some("run") => {
            let Some(name) = positional.get(1) else { return usage() };
            let Some(mut row) =
                bench::rows(duration).into_iter().find(|r| &r.scenario.name == name)
            else {
                eprintln!("unknown scenario {name:?}");
                return usage();
            };
            row.scenario.feed = variant.feed;
            row.scenario.client.slew_rate_ppm = variant.slew_rate_ppm;
            row.scenario.discipline.kind = variant.discipline;
            let r = rntp_sim::run(&row.scenario, seed);
            for (t, o) in &r.series {
                println!("{t:.3} {o:.9}");
            }
            eprintln!(
                "{}: {:?} steps={} updates={} (select {}) poll={} freq={:.3} ppm",
                name,
                r.stats,
                r.steps,
                r.updates,
                r.select_updates,
                r.suggested_poll,
                r.final_freq_ppm
            );
            ExitCode::SUCCESS
        }
        _ => usage(),
    }
}
