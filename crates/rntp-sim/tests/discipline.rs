//! End-to-end tests in virtual time: the real association, selection and discipline, driven by
//! the simulator. Short runs (hours of virtual time), fast enough for CI in debug builds.

use rntp_proto::discipline::{DisciplineConfig, MakeStep};
use rntp_proto::source::ResolveError;
use rntp_proto::wire::LeapIndicator;
use rntp_sim::{
    run, server_addr, ClientSpec, ClockModel, CombineMode, DnsAnswer, Feed, LinkSpec, Scenario,
    ScriptedResolver, ServerSpec,
};

fn client(freq_ppm: f64, initial_offset: f64, drift: Option<f64>) -> ClientSpec {
    ClientSpec { freq_ppm, wander: 1e-9, initial_offset, drift_file_ppm: drift }
}

fn lan(name: &str, c: ClientSpec, hours: f64) -> Scenario {
    let mut s = Scenario::three_servers(name, LinkSpec::LAN, c);
    s.duration = hours * 3600.0;
    s.settle = s.duration / 2.0;
    s
}

#[test]
fn converges_from_50ms_in_seconds_through_the_tick() {
    let r = run(&lan("slew", client(1.0, 0.05, Some(-1.0)), 2.0), 1);
    assert_eq!(r.steps, 0);
    // First update after ~6 s (4 iburst samples from every server), then 0.65 s at
    // 83 333 ppm.
    let t = r.stats.time_to_1ms.expect("converged");
    assert!(t < 8.0, "{t}");
    assert!(r.stats.max < 200e-6, "{:?}", r.stats);
}

#[test]
fn a_low_maxslewrate_is_honoured() {
    let mut s = lan("maxslewrate 500", client(1.0, 0.05, Some(-1.0)), 2.0);
    s.discipline.max_slew_ppm = 500.0;
    let r = run(&s, 1);
    assert_eq!(r.steps, 0);
    // 50 ms at 500 ppm takes 100 s.
    let t = r.stats.time_to_1ms.expect("converged");
    assert!((100.0..120.0).contains(&t), "{t}");
}

#[test]
fn the_idealized_clock_model_agrees() {
    let mut s = lan("idealized", client(1.0, 0.05, Some(-1.0)), 2.0);
    s.clock = ClockModel::Idealized;
    let r = run(&s, 1);
    let t = r.stats.time_to_1ms.expect("converged");
    assert!(t < 8.0, "{t}");
    assert!(r.stats.max < 200e-6, "{:?}", r.stats);
}

#[test]
fn rfc_feed_still_works() {
    let mut s = lan("filter best", client(1.0, 0.0, Some(-1.0)), 2.0);
    s.feed = Feed::FilterBest;
    let r = run(&s, 12);
    assert!(r.updates > 10);
    assert!(r.stats.max < 500e-6, "{:?}", r.stats);
}

#[test]
fn converges_from_half_a_second_by_stepping() {
    let r = run(&lan("step", client(1.0, 0.5, Some(-1.0)), 2.0), 2);
    assert_eq!(r.steps, 1);
    let t = r.stats.time_to_1ms.expect("converged");
    assert!(t < 15.0, "{t}");
    assert!(r.stats.max < 200e-6, "{:?}", r.stats);
}

#[test]
fn frequency_converges_to_true_error_without_drift_file() {
    let r = run(&lan("freq", client(20.0, 0.01, None), 4.0), 3);
    assert!(r.stats.final_freq_error_ppm < 0.2, "{:?}", r.stats);
    assert!((r.final_freq_ppm + 20.0).abs() < 0.5, "{}", r.final_freq_ppm);
    assert!(r.stats.rms < 200e-6, "{:?}", r.stats);
}

#[test]
fn makestep_steps_early_offsets_below_the_step_threshold() {
    let mut s = lan("makestep", client(1.0, 0.05, Some(-1.0)), 0.5);
    s.discipline = DisciplineConfig {
        makestep: Some(MakeStep { threshold: 0.01, limit: 3 }),
        ..DisciplineConfig::default()
    };
    let r = run(&s, 4);
    assert_eq!(r.steps, 1);
    assert!(r.stats.time_to_1ms.expect("converged") < 15.0);
}

#[test]
fn a_server_step_is_not_followed() {
    // One of three servers jumps by 0.5 s after an hour: selection outvotes it, and the
    // discipline never steps.
    let mut s = lan("server step", client(1.0, 0.0, Some(-1.0)), 3.0);
    s.servers[0].step = Some((3600.0, 0.5));
    let r = run(&s, 5);
    assert_eq!(r.steps, 0);
    assert!(r.stats.max < 500e-6, "{:?}", r.stats);
}

#[test]
fn leap_indicator_passes_through_to_the_combined_estimate() {
    let mut s = lan("leap", client(1.0, 0.0, Some(-1.0)), 0.5);
    for srv in &mut s.servers {
        srv.leap = LeapIndicator::AddSecond;
    }
    let r = run(&s, 6);
    assert_eq!(r.last_leap, Some(LeapIndicator::AddSecond));
    // The discipline ignores it: the clock is as good as without.
    assert_eq!(r.steps, 0);
    assert!(r.stats.max < 200e-6, "{:?}", r.stats);
}

#[test]
fn outage_and_loss_are_survived() {
    let mut s = lan("outage", client(1.0, 0.0, Some(-1.0)), 4.0);
    for srv in &mut s.servers {
        srv.outage = Some((3600.0, 5400.0));
        srv.link.loss = 0.1;
    }
    let r = run(&s, 7);
    assert!(!r.stalled);
    assert!(r.stats.max < 1e-3, "{:?}", r.stats);
}

#[test]
fn scripted_dns_failure_then_success() {
    let mut dns = ScriptedResolver { latency: 0.05, ..Default::default() };
    for i in 0..3 {
        let name = format!("s{i}.sim");
        dns.answer(&name, 0.0, DnsAnswer::Fail(ResolveError::ServFail));
        dns.answer(&name, 10.0, DnsAnswer::Addrs { addrs: vec![server_addr(i)], ttl: 600.0 });
    }
    let mut s = lan("dns", client(1.0, 0.0, Some(-1.0)), 1.0);
    s.dns = Some(dns);
    let r = run(&s, 8);
    // Failures at 0 s, retries with backoff until 10 s, then re-resolution on TTL (≥ 1 h floor).
    assert!(r.dns_queries >= 6, "{}", r.dns_queries);
    assert!(r.updates > 10);
}

#[test]
fn same_seed_same_result() {
    let s = lan("det", client(5.0, 0.02, None), 1.0);
    assert_eq!(run(&s, 9), run(&s, 9));
}

fn with_falsetickers(n: usize, bad: usize, maxpoll: i8) -> Scenario {
    let mut s = lan("falsetickers", client(1.0, 0.0, Some(-1.0)), 3.0);
    s.servers = vec![ServerSpec::good(LinkSpec::LAN); n];
    for srv in s.servers.iter_mut().take(bad) {
        srv.offset = 0.05;
    }
    s.maxpoll = maxpoll;
    // Selection only: the median fallback would hide whether selection does its job.
    s.combine = CombineMode::Select;
    s
}

/// Falsetickers at +50 ms: selection rejects them in every round (start-up included) while
/// the poll stays at 64 s, and with adaptive polling (up to 1024 s) the clock is not biased.
///
/// Why not "never a survivor" with adaptive polling: from 256 s polls on, every root distance
/// carries PHI (15 ppm) × the age of the filter's best sample, up to 8 polls: 15–35 ms, so the
/// 50 ms falseticker's interval overlaps the good ones' and the intersection cannot reject it;
/// clustering's φ·λ victim rule then sometimes prunes a good source whose best sample is older
/// (larger λ) instead. The discipline's innovation gate keeps its samples out of the clock
/// (max < 200 µs measured); the select change that would fix the verdicts is in
/// docs/accuracy.md.
fn check_falsetickers(n: usize, bad: usize, seed: u64) {
    let r = run(&with_falsetickers(n, bad, 6), seed);
    assert!(r.select_updates > 10, "selection never produced a system peer");
    for i in 0..bad {
        assert!(r.falseticker_rounds[i] > 0 && r.survivor_rounds[i] == 0, "{r:?}");
    }
    assert!(r.stats.max < 500e-6, "{:?}", r.stats);
    let r = run(&with_falsetickers(n, bad, 10), seed);
    for i in 0..bad {
        assert!(r.falseticker_rounds[i] > 0, "{r:?}");
    }
    assert!(r.stats.max < 500e-6, "{:?}", r.stats);
}

#[test]
fn one_falseticker_of_four_is_rejected() {
    check_falsetickers(4, 1, 10);
}

#[test]
fn two_falsetickers_of_five_are_rejected() {
    check_falsetickers(5, 2, 11);
}

/// Issue 10: a LAN at poll 64 in steady state: no correction larger than 5 µs within one
/// second (the old `adjtime` bursts moved the clock 25–33 µs in a second) and the clock's
/// frequency error at most 0.2 ppm RMS; three equal servers change system peer at most 5 times
/// in a day (it was about 240).
#[test]
fn regression_issue10_steady_state_is_smooth_and_the_system_peer_stays() {
    let mut s = lan("steady", client(1.0, 0.0, Some(-0.9)), 24.0);
    s.minpoll = 6;
    s.maxpoll = 6;
    s.settle = 3600.0;
    let r = run(&s, 21);
    assert!(r.stats.max_correction_per_s < 5e-6, "{:?}", r.stats);
    assert!(r.stats.rms_freq_error_ppm < 0.2, "{:?}", r.stats);
    assert!(r.peer_changes <= 5, "{} system-peer changes", r.peer_changes);
    assert!(r.stats.max < 100e-6, "{:?}", r.stats);
}

/// Issue 10: a cold start (+20 ppm, 10 ms off, no drift file) gets below 1 ms within 10 s and
/// never goes back above it.
#[test]
fn regression_issue10_cold_start_stays_below_1ms_once_there() {
    let r = run(&lan("cold", client(20.0, 0.01, None), 2.0), 22);
    let first = r.stats.first_below_1ms.expect("below 1 ms");
    assert!(first <= 10.0, "{first}");
    assert!(r.stats.max_after_below_1ms < 1e-3, "{:?}", r.stats);
}
