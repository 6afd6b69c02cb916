//! Steering tests: deterministic hand-driven scenarios (no network, no simulator) and a garbage
//! sweep.

use super::*;
use crate::discipline::{ClockRate, MakeStep};

fn at(secs: f64) -> Instant {
    Instant::from_nanos((secs * 1e9) as u64)
}

fn sample(offset: f64, t: Instant) -> Sample {
    Sample { offset, delay: 0.002, dispersion: 1e-4, time: t }
}

fn server() -> ServerInfo {
    ServerInfo {
        leap: LeapIndicator::NoWarning,
        stratum: 1,
        reference_id: ReferenceId::from_bytes(*b"GPS\0"),
        root_delay: 0.0,
        root_dispersion: 1e-4,
        precision: -20,
        poll: 6,
    }
}

/// Association `id` whose filter's best sample has `offset` and was taken at `t`.
fn input(id: u32, offset: f64, t: Instant) -> SourceInput {
    SourceInput {
        id: AssocId(id),
        estimate: Some(FilterEstimate {
            offset,
            delay: 0.002,
            dispersion: 1e-4,
            jitter: 5e-4,
            time: t,
        }),
        server: Some(server()),
        reach: 0xff,
        poll: PollInterval::from_log2(6),
        prefer: false,
        noselect: false,
        refid_for_us: ReferenceId::from_bytes([10, 0, 0, id as u8]),
        aged_to: None,
    }
}

fn config() -> SteeringConfig {
    let mut c = SteeringConfig::default();
    c.discipline.minpoll = PollInterval::from_log2(6);
    c.discipline.maxpoll = PollInterval::from_log2(6);
    c
}

#[test]
fn startup_hold_holds_unequal_filters_then_releases() {
    let mut st = Steering::new(config(), None);
    let t = at(10.0);
    // 1 and 2 have one sample each, 3 has two: not like with like.
    st.handle_sample(t, AssocId(1), &sample(0.0, t), true);
    st.handle_sample(t, AssocId(2), &sample(0.0, t), true);
    st.handle_sample(t, AssocId(3), &sample(0.0, t), true);
    st.handle_sample(t, AssocId(3), &sample(0.0, t), true);
    let inputs = [input(1, 0.0, t), input(2, 0.0, t), input(3, 0.0, t)];
    assert_eq!(st.handle_round(t, &inputs), RoundOutcome::Held { updates: 0 });
    assert!(st.selection().is_none());
    assert_eq!(st.system_peer(), None);
    assert_eq!(st.poll_action(), None);

    // Nothing new: no round at all.
    assert!(!st.wants_round());
    assert_eq!(st.handle_round(t, &inputs), RoundOutcome::Skipped);

    // 1 and 2 catch up: two samples each everywhere, the round counts.
    let t = at(12.0);
    st.handle_sample(t, AssocId(1), &sample(0.0, t), true);
    st.handle_sample(t, AssocId(2), &sample(0.0, t), true);
    let inputs = [input(1, 0.0, t), input(2, 0.0, t), input(3, 0.0, t)];
    let RoundOutcome::Counted { selected: true, updates } = st.handle_round(t, &inputs) else {
        panic!("round not counted")
    };
    // The two fresh samples of survivors went to the discipline.
    assert_eq!(updates, 2);
    assert!(st.system_peer().is_some());
    assert_eq!(st.survivors().len(), 3);
    assert!(!st.startup_over());

    // Unequal again (1 has 3), but one minpoll (64 s) after the first fit round: released.
    let t = at(80.0);
    st.handle_sample(t, AssocId(1), &sample(0.0, t), true);
    let inputs = [input(1, 0.0, t), input(2, 0.0, at(12.0)), input(3, 0.0, at(12.0))];
    assert!(matches!(st.handle_round(t, &inputs), RoundOutcome::Counted { .. }));
    assert!(st.startup_over());
}

#[test]
fn startup_ends_when_every_filter_is_full() {
    let mut st = Steering::new(config(), None);
    let t = at(5.0);
    for _ in 0..NSTAGE {
        for id in 1..=3 {
            st.handle_sample(t, AssocId(id), &sample(0.0, t), true);
        }
    }
    // One more for 1: unequal, but all are full, so start-up is over.
    st.handle_sample(t, AssocId(1), &sample(0.0, t), true);
    let inputs = [input(1, 0.0, t), input(2, 0.0, t), input(3, 0.0, t)];
    let outcome = st.handle_round(t, &inputs);
    assert_eq!(outcome, RoundOutcome::Counted { selected: true, updates: 3 * NSTAGE as u32 + 1 });
    assert!(st.startup_over());
}

#[test]
fn only_survivors_samples_are_fed_and_falseticker_runs_are_counted() {
    let mut c = config();
    c.falseticker_rounds = 2;
    let mut st = Steering::new(c, None);
    let offsets = [(1, 0.0), (2, 0.0005), (3, -0.0005), (4, 0.1)];
    let t = at(5.0);
    for _ in 0..NSTAGE {
        for (id, off) in offsets {
            st.handle_sample(t, AssocId(id), &sample(off, t), true);
        }
    }
    let inputs: Vec<SourceInput> = offsets.iter().map(|&(id, off)| input(id, off, t)).collect();
    // 8 samples from each of the 3 survivors; the falseticker's 8 are dropped.
    let outcome = st.handle_round(t, &inputs);
    assert_eq!(outcome, RoundOutcome::Counted { selected: true, updates: 3 * NSTAGE as u32 });
    assert!(!st.survivors().contains(&AssocId(4)));
    assert_eq!(st.falseticker_run(AssocId(4)), 1);
    assert_eq!(st.falseticker_run(AssocId(1)), 0);
    let mut events = Vec::new();
    while let Some(e) = st.poll_event() {
        events.push(e);
    }
    assert!(matches!(events[..], [SteeringEvent::SystemPeer { from: None, to: Some(_) }]));

    // A falseticker's sample: a round runs, nothing is fed, and its run reaches 2.
    let t = at(6.0);
    st.handle_sample(t, AssocId(4), &sample(0.1, t), true);
    assert_eq!(st.handle_round(t, &inputs), RoundOutcome::Counted { selected: true, updates: 0 });
    assert_eq!(st.falseticker_run(AssocId(4)), 2);
    assert_eq!(st.poll_event(), Some(SteeringEvent::PersistentFalseticker(AssocId(4))));
    assert_eq!(st.poll_event(), None);

    // A survivor's sample is fed.
    st.handle_sample(t, AssocId(2), &sample(0.0005, t), true);
    assert_eq!(st.handle_round(t, &inputs), RoundOutcome::Counted { selected: true, updates: 1 });
    // Once per run: the third round does not repeat the event.
    assert_eq!(st.falseticker_run(AssocId(4)), 3);
    assert_eq!(st.poll_event(), None);
    // A reset association starts over.
    st.handle_reset(AssocId(4));
    assert_eq!(st.falseticker_run(AssocId(4)), 0);
    assert_eq!(st.stats().updates, 3 * NSTAGE as u64 + 1);
}

#[test]
fn source_change_runs_selection_without_feeding() {
    let mut st = Steering::new(config(), None);
    let t = at(5.0);
    for _ in 0..NSTAGE {
        for id in 1..=3 {
            st.handle_sample(t, AssocId(id), &sample(0.0, t), true);
        }
    }
    let inputs = [input(1, 0.0, t), input(2, 0.0, t), input(3, 0.0, t)];
    let _ = st.handle_round(t, &inputs);
    assert_eq!(st.survivors().len(), 3);
    // 3 is gone: a round on request updates the survivors, feeds nothing.
    st.handle_reset(AssocId(3));
    st.handle_source_change();
    assert!(st.wants_round());
    let outcome = st.handle_round(at(6.0), &inputs[..2]);
    assert_eq!(outcome.updates(), 0);
    assert!(matches!(outcome, RoundOutcome::Counted { .. }));
    assert!(!st.survivors().contains(&AssocId(3)));
}

/// One source, selected at once (a single fit source is its own majority): its sample goes to
/// the discipline, which steps by `makestep`.
fn stepped(reference: Reference) -> Steering {
    let mut c = config();
    c.reference = reference;
    c.discipline.makestep = Some(MakeStep { threshold: 0.1, limit: 3 });
    let mut st = Steering::new(c, None);
    let t = at(10.0);
    st.handle_sample(t, AssocId(1), &sample(0.5, t), true);
    let _ = st.handle_round(t, &[input(1, 0.5, t)]);
    assert_eq!(st.last_offset(), Some(0.5));
    let Some(ClockAction::Step { offset, .. }) = st.poll_action() else { panic!("no step") };
    assert!((offset - 0.5).abs() < 1e-9, "{offset}");
    assert!((st.offset_at(at(10.0)) - offset).abs() < 1e-12);
    st
}

#[test]
fn disciplined_reference_corrects_stale_estimates_for_the_step() {
    // The clock was stepped by 0.5 s; the filter's best is still the sample from before.
    let mut st = stepped(Reference::Disciplined);
    let t = at(20.0);
    st.handle_sample(t, AssocId(1), &sample(0.0, t), false);
    let _ = st.handle_round(t, &[input(1, 0.5, at(10.0))]);
    let off = combined_offset(&st);
    assert!(off.abs() < 1e-6, "{off}");
    assert_eq!(st.served_correction(t), 0.0);

    // A fresh estimate measured against the stepped clock is taken as it is.
    let mut st = stepped(Reference::Disciplined);
    st.handle_sample(t, AssocId(1), &sample(0.25, t), true);
    let _ = st.handle_round(t, &[input(1, 0.25, t)]);
    assert_eq!(st.last_offset(), Some(0.25));
    assert!((combined_offset(&st) - 0.25).abs() < 1e-9);
}

/// The latest selection's combined offset (NaN without one).
fn combined_offset(st: &Steering) -> f64 {
    st.selection().and_then(|s| s.combined).map_or(f64::NAN, |c| c.offset)
}

#[test]
fn free_running_reference_refers_offsets_to_the_virtual_clock() {
    // The free-running clock still reads 0.5 s behind: relative to the virtual clock (stepped
    // by 0.5 s) that is nothing.
    let mut st = stepped(Reference::FreeRunning);
    let t = at(20.0);
    st.handle_sample(t, AssocId(1), &sample(0.5, t), true);
    let _ = st.handle_round(t, &[input(1, 0.5, t)]);
    let off = st.last_offset().unwrap_or(f64::NAN);
    assert!(off.abs() < 1e-6, "{off}");
    assert!(combined_offset(&st).abs() < 1e-6);
    assert!((st.served_correction(t) - st.offset_at(t)).abs() < 1e-12);
    assert!(st.served_correction(t) > 0.49);

    // An old estimate, measured before the (virtual) step against the same free-running
    // clock, is referred to the virtual clock as it is now: the step applies to it as well
    // (regression: it used to keep its pre-step 0.5 s, so fresh and stale estimates of the
    // same server disagreed by the step and selection could call good sources falsetickers).
    let mut st = stepped(Reference::FreeRunning);
    st.handle_sample(t, AssocId(1), &sample(0.5, t), false);
    let _ = st.handle_round(t, &[input(1, 0.5, at(10.0))]);
    let off = combined_offset(&st);
    assert!(off.abs() < 1e-6, "{off}");
}

#[cfg(feature = "research")]
#[test]
fn filter_best_feed_updates_only_on_a_new_best_sample() {
    let mut c = config();
    c.feed = Feed::FilterBest;
    let mut st = Steering::new(c, None);
    let t = at(5.0);
    for _ in 0..NSTAGE {
        for id in 1..=3 {
            st.handle_sample(t, AssocId(id), &sample(0.001, t), false);
        }
    }
    // No sample became a filter's best: nothing is news.
    assert!(!st.wants_round());
    let inputs = [input(1, 0.001, t), input(2, 0.001, t), input(3, 0.001, t)];
    assert_eq!(st.handle_round(t, &inputs), RoundOutcome::Skipped);
    st.handle_sample(t, AssocId(1), &sample(0.001, t), true);
    assert_eq!(st.handle_round(t, &inputs), RoundOutcome::Counted { selected: true, updates: 1 });
    let off = st.last_offset().unwrap_or(f64::NAN);
    assert!((off - 0.001).abs() < 1e-9, "{off}");
}

#[test]
fn drift_file_frequency_is_the_first_action() {
    let mut st = Steering::new(config(), Some(-12.5));
    assert_eq!(st.poll_action(), Some(ClockAction::Rate(ClockRate::from_ppm(-12.5))));
    assert_eq!(st.poll_action(), None);
    assert_eq!(st.frequency_ppm(), -12.5);
    // Not settled yet: nothing to save.
    assert_eq!(st.drift_freq_ppm(), None);
    assert!(!st.synchronized());
    // Garbage is not executed.
    let mut st = Steering::new(config(), Some(f64::NAN));
    assert_eq!(st.poll_action(), None);
}

#[test]
fn garbage_input_does_not_panic() {
    let values = [
        0.0,
        -0.0,
        1e-9,
        -3.0,
        1e300,
        -1e300,
        f64::MAX,
        f64::MIN,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::MIN_POSITIVE,
    ];
    let times = [0u64, 1, 1_000_000_000, u64::MAX / 2, u64::MAX - 1, u64::MAX];
    // A small deterministic generator: no RNG needed.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = |n: usize| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % n as u64) as usize
    };
    #[cfg(feature = "research")]
    let (feeds, combines) = (
        vec![Feed::Samples, Feed::FilterBest],
        vec![Combine::Select, Combine::SelectOrMedian, Combine::Median],
    );
    #[cfg(not(feature = "research"))]
    let (feeds, combines) = (vec![Feed::Samples], vec![Combine::Select]);
    for &feed in &feeds {
        for &combine in &combines {
            for reference in [Reference::Disciplined, Reference::FreeRunning] {
                let mut c = config();
                c.feed = feed;
                c.combine = combine;
                c.reference = reference;
                c.falseticker_rounds = 1;
                c.discipline.maxpoll = PollInterval::from_log2(i8::MAX);
                c.discipline.minpoll = PollInterval::from_log2(i8::MIN);
                let mut st = Steering::new(c, Some(values[next(values.len())]));
                for _ in 0..300 {
                    let now = Instant::from_nanos(times[next(times.len())]);
                    let id = AssocId(next(4) as u32);
                    let s = Sample {
                        offset: values[next(values.len())],
                        delay: values[next(values.len())],
                        dispersion: values[next(values.len())],
                        time: Instant::from_nanos(times[next(times.len())]),
                    };
                    st.handle_sample(now, id, &s, next(2) == 0);
                    if next(5) == 0 {
                        st.handle_reset(id);
                    }
                    if next(5) == 0 {
                        st.handle_source_change();
                    }
                    let n = next(5);
                    let mut inputs = Vec::new();
                    for k in 0..n {
                        let t = Instant::from_nanos(times[next(times.len())]);
                        let mut i = input(k as u32 % 3, values[next(values.len())], t);
                        if let Some(e) = i.estimate.as_mut() {
                            e.delay = values[next(values.len())];
                            e.jitter = values[next(values.len())];
                            e.dispersion = values[next(values.len())];
                        }
                        if next(4) == 0 {
                            i.estimate = None;
                        }
                        i.reach = next(256) as u8;
                        i.poll = PollInterval::from_log2(next(40) as i8 - 20);
                        inputs.push(i);
                    }
                    let _ = st.handle_round(now, &inputs);
                    while st.poll_action().is_some() {}
                    while st.poll_event().is_some() {}
                    let _ = (st.offset_at(now), st.served_correction(now), st.drift_freq_ppm());
                    let _ = (st.frequency_error_ppm(), st.state(), st.selection());
                }
            }
        }
    }
}
