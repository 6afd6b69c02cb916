//! `rntp-sim`: runs the accuracy benchmark (`bench`), its many-seed statistics (`stats`) or
//! one scenario (`run`) in virtual time.
//!
//! ```text
//! rntp-sim bench [--seeds 5] [--out target/accuracy] [--hours 24] [OPTIONS]
//! rntp-sim stats [--seeds 100] [--row SCENARIO] [--hours 24] [OPTIONS]
//! rntp-sim run SCENARIO [--seed 1] [--hours 24] [OPTIONS]   # prints "time offset" lines
//! OPTIONS: --feed samples|filter-best (default samples), --maxslewrate PPM (default 83333.333),
//!          --discipline kalman|rfc (default kalman; rfc = RFC 5905 PLL/FLL, fed filter-best),
//!          --maxpoll LOG2 (caps every row's poll bounds),
//!          --clock linux|idealized (default linux: the Linux-faithful kernel model)
//! ```
//! It never touches this machine's clock: everything is simulated.

use std::path::PathBuf;
use std::process::ExitCode;

use rntp_proto::discipline::DisciplineKind;
use rntp_sim::{bench, ClockModel, Feed};

fn usage() -> ExitCode {
    eprintln!(
        "usage: rntp-sim bench [--seeds N] [--out DIR] [--hours H] [OPTIONS]\n       \
         rntp-sim stats [--seeds N] [--row SCENARIO] [--hours H] [OPTIONS]\n       \
         rntp-sim run SCENARIO [--seed N] [--hours H] [OPTIONS]\n\
         options: --feed samples|filter-best   --maxslewrate PPM (default 83333.333)\n         \
         --discipline kalman|rfc (rfc: RFC 5905 PLL/FLL, always fed filter-best)   \
         --maxpoll LOG2 (cap every row's poll)\n         \
         --clock linux|idealized (kernel model; default linux)"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut seeds = None;
    let mut only = None;
    let mut seed = 1u64;
    let mut hours = 24.0f64;
    let mut out = PathBuf::from("target/accuracy");
    let mut variant = bench::Variant::default();
    let mut positional = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().cloned().unwrap_or_default();
        match a.as_str() {
            "--seeds" => seeds = Some(value().parse().unwrap_or(0)),
            "--row" => only = Some(value()),
            "--clock" => {
                variant.clock = match value().as_str() {
                    "linux" => ClockModel::Linux,
                    "idealized" => ClockModel::Idealized,
                    _ => return usage(),
                }
            }
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
            "--corrtimeratio" => match value().parse::<f64>() {
                Ok(v) if v.is_finite() && v >= 0.0 => variant.correction_ratio = Some(v),
                _ => return usage(),
            },
            "--wander" => match value().parse::<f64>() {
                Ok(v) if v.is_finite() && v > 0.0 => variant.wander = Some(v),
                _ => return usage(),
            },
            "--maxslewrate" => match value().parse::<f64>() {
                Ok(v) if v.is_finite() && v > 0.0 => variant.max_slew_ppm = v,
                _ => return usage(),
            },
            "-h" | "--help" => return usage(),
            _ => positional.push(a.clone()),
        }
    }
    let mode = positional.first().map(String::as_str);
    let seeds = seeds.unwrap_or(if mode == Some("stats") { 100 } else { 5 });
    if seeds == 0 || hours.is_nan() || hours <= 0.0 {
        return usage();
    }
    let duration = hours * 3600.0;
    match mode {
        Some("stats") => {
            let out = bench::measure(seeds, duration, variant, only.as_deref());
            if out.is_empty() {
                eprintln!("unknown scenario {:?}", only.unwrap_or_default());
                return usage();
            }
            println!(
                "{seeds} seeds, {hours} h simulated each, kernel model {}; settled = after the \
                 first hour\n",
                variant.clock.name()
            );
            print!("{}", bench::stats_table(&out));
            ExitCode::SUCCESS
        }
        Some("bench") => {
            let (table, rows) = bench::bench(seeds, duration, variant);
            println!(
                "{seeds} seeds, {hours} h simulated each, kernel model {}; settled = after the \
                 first hour\n",
                variant.clock.name()
            );
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
            variant.apply(&mut row.scenario);
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
