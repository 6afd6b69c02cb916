//! The association's poll process in virtual time (issue 9): who sets the poll interval, what
//! a clock step does to measurements in flight, and the accuracy comparison used to decide the
//! poll policy (`accuracy_compare`, ignored by default: run it in release).

use rntp_sim::bench;

/// Prints, per benchmark row, the robust figures over many seeds: √(mean RMS²), the mean of the
/// per-seed maxima, the overall max and the worst time to < 1 ms. `RNTP_SEEDS` (default 100).
///
/// `cargo test --release -p rntp-sim --test poll -- --ignored --nocapture accuracy_compare`
#[test]
#[ignore = "benchmark: run in release with --ignored --nocapture"]
fn accuracy_compare() {
    let seeds: u64 = std::env::var("RNTP_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(100);
    println!("{seeds} seeds, 24 h each");
    println!(
        "| scenario | RMS | mean of per-seed max | max | worst time to < 1 ms | mean updates |"
    );
    println!("|---|---|---|---|---|---|");
    for row in bench::rows(86_400.0) {
        let runs: Vec<_> = (1..=seeds).map(|s| rntp_sim::run(&row.scenario, s)).collect();
        let n = runs.len() as f64;
        let rms = (runs.iter().map(|r| r.stats.rms.powi(2)).sum::<f64>() / n).sqrt();
        let mean_max = runs.iter().map(|r| r.stats.max).sum::<f64>() / n;
        let max = runs.iter().fold(0.0f64, |m, r| m.max(r.stats.max));
        let t1 = runs.iter().try_fold(0.0f64, |m, r| r.stats.time_to_1ms.map(|t| m.max(t)));
        let updates = runs.iter().map(|r| f64::from(r.updates)).sum::<f64>() / n;
        println!(
            "| {} | {:.1} µs | {:.1} µs | {:.1} µs | {} | {:.0} |",
            row.scenario.name,
            rms * 1e6,
            mean_max * 1e6,
            max * 1e6,
            t1.map_or("never".to_string(), |t| format!("{t:.0} s")),
            updates
        );
    }
}
