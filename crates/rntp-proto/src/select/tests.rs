//! Selection tests: hand-built scenarios for each stage, and a property test over arbitrary
//! candidate sets (including NaN, ±∞ and huge values).

use std::net::Ipv4Addr;

use proptest::prelude::*;

use super::*;
use crate::assoc::filter::PHI;

const NOW_SECS: u64 = 1_000_000;

fn now() -> Instant {
    Instant::from_nanos(NOW_SECS * 1_000_000_000)
}

/// A healthy stratum-2 candidate with λ = 0.015 + 0.005 + 0.001 + 0.001 = 22 ms.
fn cand(id: u32, offset: f64) -> Candidate {
    Candidate {
        id: AssocId(id),
        offset,
        delay: 0.020,
        dispersion: 0.001,
        jitter: 0.001,
        sample_time: now(),
        stratum: 2,
        leap: LeapIndicator::NoWarning,
        root_delay: 0.010,
        root_dispersion: 0.005,
        reference_id: ReferenceId::from_ipv4(Ipv4Addr::new(192, 0, 2, 1)),
        refid_for_us: ReferenceId::from_ipv4(Ipv4Addr::new(10, 0, 0, id as u8)),
        reach: 0xff,
        prefer: false,
        noselect: false,
    }
}

fn run(cands: &[Candidate]) -> Selection {
    select(now(), cands, &SelectConfig::default())
}

fn verdict(s: &Selection, id: u32) -> Verdict {
    s.verdicts.iter().find(|(i, _)| *i == AssocId(id)).map(|(_, v)| *v).expect("id present")
}

fn is_used(v: Verdict) -> bool {
    matches!(v, Verdict::SystemPeer | Verdict::Survivor)
}

#[test]
fn root_distance_matches_rfc_formula() {
    let mut c = cand(1, 0.0);
    c.sample_time = Instant::from_nanos((NOW_SECS - 100) * 1_000_000_000);
    let expected = 0.015 + 0.005 + 0.001 + PHI * 100.0 + 0.001;
    assert!((root_distance(now(), &c) - expected).abs() < 1e-12);
    // Tiny delays are floored at MINDISP; a sample from the future counts as fresh.
    c.delay = 0.0;
    c.root_delay = 0.0;
    c.sample_time = Instant::from_nanos((NOW_SECS + 100) * 1_000_000_000);
    assert!((root_distance(now(), &c) - (MINDISP + 0.007)).abs() < 1e-12);
}

#[test]
fn one_of_four_100ms_off_is_falseticker() {
    let s = run(&[cand(1, 0.0), cand(2, 0.001), cand(3, -0.001), cand(4, 0.100)]);
    assert_eq!(verdict(&s, 4), Verdict::Falseticker);
    for id in 1..=3 {
        assert!(is_used(verdict(&s, id)), "{id}: {:?}", verdict(&s, id));
    }
    assert!(s.system_peer.is_some());
    assert!(s.combined.is_some());
}

#[test]
fn two_of_five_bad_are_both_falsetickers() {
    let s = run(&[cand(1, 0.0), cand(2, 0.200), cand(3, 0.002), cand(4, -0.300), cand(5, -0.002)]);
    assert_eq!(verdict(&s, 2), Verdict::Falseticker);
    assert_eq!(verdict(&s, 4), Verdict::Falseticker);
    for id in [1, 3, 5] {
        assert!(is_used(verdict(&s, id)), "{id}: {:?}", verdict(&s, id));
    }
}

#[test]
fn two_disagreeing_sources_have_no_majority() {
    let s = run(&[cand(1, 0.0), cand(2, 0.100)]);
    assert_eq!(s.system_peer, None);
    assert_eq!(s.combined, None);
    assert_eq!(verdict(&s, 1), Verdict::Falseticker);
    assert_eq!(verdict(&s, 2), Verdict::Falseticker);
}

#[test]
fn overlapping_intervals_need_midpoints_inside() {
    // The intervals overlap on [8 ms, 22 ms], but neither offset lies in the overlap: RFC 5905
    // then refuses to call it a majority, since each source says the other is wrong.
    let s = run(&[cand(1, 0.0), cand(2, 0.030)]);
    assert_eq!(s.system_peer, None);
    // Each offset inside the other's interval: agreement.
    let s = run(&[cand(1, 0.0), cand(2, 0.020)]);
    assert!(s.system_peer.is_some());
}

#[test]
fn midpoint_rule_widens_intersection_by_one_allowed_falseticker() {
    // A wide candidate whose interval covers the other two but whose offset lies far away:
    // with no falseticker allowed its midpoint is outside, so one is allowed and the
    // intersection is what two of the three share.
    let got = intersect::intersection(&[(0.0, 0.022), (0.01, 0.022), (0.3, 0.35)]);
    let (low, high) = got.expect("majority");
    assert!((low + 0.022).abs() < 1e-12 && (high - 0.032).abs() < 1e-12, "{low} {high}");
}

#[test]
fn midpoints_on_intersection_edges_are_inside() {
    // Binary-exact λ = 0.25: intervals [-0.25, 0.25] and [0, 0.5] intersect in [0, 0.25],
    // with both offsets exactly on its edges. Intervals are closed, so this is agreement.
    let exact = |id, offset| Candidate {
        delay: 0.5,
        root_delay: 0.0,
        dispersion: 0.0,
        root_dispersion: 0.0,
        jitter: 0.0,
        ..cand(id, offset)
    };
    assert_eq!(root_distance(now(), &exact(1, 0.0)), 0.25);
    let s = run(&[exact(1, 0.0), exact(2, 0.25)]);
    assert!(s.system_peer.is_some(), "{s:?}");
}

#[test]
fn jittery_source_is_clustered_out_when_minclock_allows() {
    let mut jittery = cand(4, 0.015);
    jittery.jitter = 0.030;
    let cands = [cand(1, 0.0), cand(2, 0.0005), cand(3, -0.0005), jittery];
    let s = run(&cands);
    assert_eq!(verdict(&s, 4), Verdict::Outlier);
    for id in 1..=3 {
        assert!(is_used(verdict(&s, id)));
    }
    // With minclock 4 clustering may not remove anyone.
    let config = SelectConfig { minclock: 4, ..SelectConfig::default() };
    let s = select(now(), &cands, &config);
    assert!(is_used(verdict(&s, 4)), "{:?}", verdict(&s, 4));
}

#[test]
fn clustering_stops_when_spread_is_within_peer_jitter() {
    // Offsets spread by 0.1 ms, peer jitter 1 ms: nothing to gain by pruning.
    let cands = [cand(1, 0.0), cand(2, 0.0001), cand(3, -0.0001), cand(4, 0.0001), cand(5, 0.0)];
    let s = run(&cands);
    assert!(s.verdicts.iter().all(|(_, v)| is_used(*v)), "{s:?}");
}

#[test]
fn prefer_wins_among_survivors() {
    let mut preferred = cand(3, 0.002);
    preferred.delay = 0.060; // worse λ than the others
    preferred.prefer = true;
    let s = run(&[cand(1, 0.0), cand(2, 0.001), preferred]);
    assert_eq!(s.system_peer, Some(AssocId(3)));
    assert_eq!(verdict(&s, 3), Verdict::SystemPeer);
    let combined = s.combined.expect("combined");
    assert_eq!(combined.offset, 0.002);
    assert_eq!(combined.jitter, preferred.jitter);
    assert_eq!(combined.reference_id, preferred.refid_for_us);
}

#[test]
fn prefer_falseticker_is_not_chosen() {
    let mut preferred = cand(3, 0.5);
    preferred.prefer = true;
    let s = run(&[cand(1, 0.0), cand(2, 0.001), preferred]);
    assert_eq!(verdict(&s, 3), Verdict::Falseticker);
    assert!(matches!(s.system_peer, Some(AssocId(1 | 2))));
}

#[test]
fn prefer_is_never_clustered_out() {
    let mut jittery = cand(4, 0.015);
    jittery.jitter = 0.030;
    jittery.prefer = true;
    let s = run(&[cand(1, 0.0), cand(2, 0.0005), cand(3, -0.0005), jittery]);
    assert_eq!(verdict(&s, 4), Verdict::SystemPeer);
}

#[test]
fn peer_is_lowest_stratum_then_lowest_distance() {
    let mut s1 = cand(1, 0.0);
    s1.stratum = 1;
    s1.delay = 0.080; // stratum beats distance
    let mut close = cand(3, 0.0);
    close.delay = 0.002;
    let s = run(&[s1, cand(2, 0.0), close]);
    assert_eq!(s.system_peer, Some(AssocId(1)));
    assert_eq!(s.combined.map(|c| c.stratum), Some(2));

    let s = run(&[cand(1, 0.0), cand(2, 0.0), close]);
    assert_eq!(s.system_peer, Some(AssocId(3)));
}

#[test]
fn hysteresis_keeps_current_peer_unless_clearly_worse() {
    // 2 is best by 0.5 ms of λ, less than 1's 1 ms jitter: stay with 1.
    let mut best = cand(2, 0.0);
    best.delay = 0.019;
    let cands = [cand(1, 0.0), best, cand(3, 0.0)];
    let config = SelectConfig { current: Some(AssocId(1)), ..SelectConfig::default() };
    assert_eq!(select(now(), &cands, &config).system_peer, Some(AssocId(1)));
    assert_eq!(run(&cands).system_peer, Some(AssocId(2)));

    // 2 is better by 10 ms: hop.
    best.delay = 0.0;
    best.root_delay = 0.0;
    let cands = [cand(1, 0.0), best, cand(3, 0.0)];
    assert_eq!(select(now(), &cands, &config).system_peer, Some(AssocId(2)));

    // The current peer is a falseticker: it cannot be kept.
    let cands = [cand(1, 0.3), cand(2, 0.0), cand(3, 0.0)];
    assert_eq!(select(now(), &cands, &config).system_peer, Some(AssocId(2)));
}

/// Issue 10: three equal servers took turns as system peer ~240 times a day because λ moved by
/// more than the jitter from round to round. The margin is a quarter of the system peer's λ
/// (22 ms here): 4 ms better is noise, 8 ms better replaces it.
#[test]
fn regression_issue10_system_peer_is_kept_within_a_quarter_of_its_root_distance() {
    let config = SelectConfig { current: Some(AssocId(1)), ..SelectConfig::default() };
    let lambda = |c: &Candidate| root_distance(now(), c);
    let mut slightly = cand(2, 0.0);
    slightly.delay = 0.012;
    let cands = [cand(1, 0.0), slightly, cand(3, 0.0)];
    let (l1, l2) = (lambda(&cands[0]), lambda(&cands[1]));
    assert!(l1 - l2 > 0.003 && l1 - l2 < RESELECT_RATIO * l1, "{l1} {l2}");
    assert_eq!(select(now(), &cands, &config).system_peer, Some(AssocId(1)));
    let mut clearly = cand(2, 0.0);
    clearly.delay = 0.002;
    let cands = [cand(1, 0.0), clearly, cand(3, 0.0)];
    assert!(l1 - lambda(&cands[1]) > RESELECT_RATIO * l1);
    assert_eq!(select(now(), &cands, &config).system_peer, Some(AssocId(2)));
}

#[test]
fn unusable_reasons() {
    let mut noselect = cand(1, 0.0);
    noselect.noselect = true;
    let mut unreachable = cand(2, 0.0);
    unreachable.reach = 0;
    let mut leap3 = cand(3, 0.0);
    leap3.leap = LeapIndicator::Unsynchronized;
    let mut stratum16 = cand(4, 0.0);
    stratum16.stratum = 16;
    let mut stratum0 = cand(5, 0.0);
    stratum0.stratum = 0;
    let mut far = cand(6, 0.0);
    far.root_dispersion = 2.0;
    let mut stale = cand(7, 0.0);
    // 1.5 s of aging at 15 ppm: fine when taken, too far now.
    stale.sample_time = Instant::from_nanos((NOW_SECS - 100_000) * 1_000_000_000);
    let own = ReferenceId::from_ipv4(Ipv4Addr::new(10, 9, 9, 9));
    let mut looped = cand(8, 0.0);
    looped.reference_id = own;
    let mut stratum1_same_bytes = cand(9, 0.0);
    stratum1_same_bytes.stratum = 1;
    stratum1_same_bytes.reference_id = own;

    let cands = [
        noselect,
        unreachable,
        leap3,
        stratum16,
        stratum0,
        far,
        stale,
        looped,
        stratum1_same_bytes,
    ];
    let config = SelectConfig { own_refid: Some(own), ..SelectConfig::default() };
    let s = select(now(), &cands, &config);
    let expect = [
        Unusable::Noselect,
        Unusable::Unreachable,
        Unusable::Unsynchronized,
        Unusable::Unsynchronized,
        Unusable::Unsynchronized,
        Unusable::Distance,
        Unusable::Distance,
        Unusable::Loop,
    ];
    for (i, why) in expect.iter().enumerate() {
        assert_eq!(s.verdicts[i].1, Verdict::Unusable(*why), "candidate {}", i + 1);
    }
    // A stratum-1 refid is a clock name, not our address: no loop.
    assert_eq!(s.verdicts[8].1, Verdict::SystemPeer);
}

#[test]
fn nan_maxdist_rejects_everything() {
    let config = SelectConfig { maxdist: f64::NAN, ..SelectConfig::default() };
    let s = select(now(), &[cand(1, 0.0)], &config);
    assert_eq!(s.verdicts[0].1, Verdict::Unusable(Unusable::Distance));
    assert_eq!(s.system_peer, None);
}

#[test]
fn minsane_counts_truechimers() {
    let config = SelectConfig { minsane: 3, ..SelectConfig::default() };
    let s = select(now(), &[cand(1, 0.0), cand(2, 0.001)], &config);
    assert_eq!(s.system_peer, None);
    assert_eq!(s.combined, None);
    assert_eq!(verdict(&s, 1), Verdict::Survivor);
    assert_eq!(verdict(&s, 2), Verdict::Survivor);

    let s = select(now(), &[cand(1, 0.0), cand(2, 0.001), cand(3, 0.0)], &config);
    assert!(s.system_peer.is_some());
}

#[test]
fn combined_offset_is_lambda_weighted_mean() {
    let mut a = cand(1, 0.004);
    a.dispersion = 0.009; // λ = 0.030
    let b = cand(2, 0.000); // λ = 0.022
    let mut c = cand(3, -0.003);
    c.dispersion = 0.019; // λ = 0.040
    let cands = [a, b, c];
    let s = run(&cands);
    let lambdas = [0.030, 0.022, 0.040];
    for (cand, l) in cands.iter().zip(lambdas) {
        assert!((root_distance(now(), cand) - l).abs() < 1e-12);
    }
    let num: f64 = cands.iter().zip(lambdas).map(|(c, l)| c.offset / l).sum();
    let den: f64 = lambdas.iter().map(|l| 1.0 / l).sum();
    let expected = num / den;

    assert_eq!(s.system_peer, Some(AssocId(2)));
    let combined = s.combined.expect("combined");
    assert!((combined.offset - expected).abs() < 1e-15, "{} vs {expected}", combined.offset);

    // System jitter: √(ψ_p² + weighted spread around the peer).
    let spread: f64 = cands.iter().zip(lambdas).map(|(c, l)| c.offset.powi(2) / l).sum::<f64>();
    let jitter = (0.001f64.powi(2) + spread / den).sqrt();
    assert!((combined.jitter - jitter).abs() < 1e-15);

    // System variables through peer 2.
    assert_eq!(combined.stratum, 3);
    assert!((combined.root_delay - 0.030).abs() < 1e-15);
    let root_disp = 0.005 + (0.001 + expected.abs()).max(MINDISP) + jitter;
    assert!((combined.root_dispersion - root_disp).abs() < 1e-15);
    assert_eq!(combined.reference_id, b.refid_for_us);
    assert_eq!(combined.leap, LeapIndicator::NoWarning);
}

#[test]
fn single_source_is_used() {
    let s = run(&[cand(7, 0.25)]);
    assert_eq!(s.system_peer, Some(AssocId(7)));
    assert_eq!(s.combined.map(|c| c.offset), Some(0.25));
}

#[test]
fn empty_input() {
    let s = run(&[]);
    assert!(s.verdicts.is_empty());
    assert_eq!(s.system_peer, None);
    assert_eq!(s.combined, None);
}

#[test]
fn nan_and_infinite_inputs_are_invalid() {
    let mut cands = Vec::new();
    for (i, x) in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY].into_iter().enumerate() {
        let base = 10 * i as u32;
        cands.push(Candidate { offset: x, ..cand(base + 1, 0.0) });
        cands.push(Candidate { delay: x, ..cand(base + 2, 0.0) });
        cands.push(Candidate { dispersion: x, ..cand(base + 3, 0.0) });
        cands.push(Candidate { jitter: x, ..cand(base + 4, 0.0) });
        cands.push(Candidate { root_delay: x, ..cand(base + 5, 0.0) });
        cands.push(Candidate { root_dispersion: x, ..cand(base + 6, 0.0) });
    }
    cands.push(Candidate { jitter: -0.001, ..cand(99, 0.0) });
    let s = run(&cands);
    assert_eq!(s.verdicts.len(), cands.len());
    assert!(s.verdicts.iter().all(|(_, v)| *v == Verdict::Unusable(Unusable::Invalid)), "{s:?}");
    assert_eq!(s.system_peer, None);
}

#[test]
fn all_equal_and_huge_values() {
    let same: Vec<Candidate> = (1..=5).map(|i| Candidate { jitter: 0.0, ..cand(i, 0.1) }).collect();
    let s = run(&same);
    assert_eq!(s.system_peer, Some(AssocId(1)));
    assert_eq!(s.combined.map(|c| c.offset), Some(0.1));

    // Offsets where ±λ is below one ulp: intervals collapse to points, yet still intersect.
    let huge: Vec<Candidate> = (1..=3).map(|i| cand(i, f64::MAX)).collect();
    let s = run(&huge);
    assert_eq!(s.combined.map(|c| c.offset), Some(f64::MAX));

    // Offsets whose differences square to +∞, with intervals wide enough to agree.
    let mut mixed: Vec<Candidate> = vec![cand(1, 1e300), cand(2, -1e300), cand(3, 0.0)];
    let config = SelectConfig { maxdist: f64::MAX, ..SelectConfig::default() };
    for c in &mut mixed {
        c.root_dispersion = 2e300;
    }
    let s = select(now(), &mixed, &config);
    let combined = s.combined.expect("wide intervals all intersect");
    assert!(combined.offset.abs() <= 1e300);
    assert!(!combined.offset.is_nan() && !combined.jitter.is_nan());
    assert!(!combined.root_dispersion.is_nan());
}

/// Floats that stress arithmetic: ordinary ranges most of the time, specials sometimes.
fn arb_f64(typical: core::ops::Range<f64>) -> impl Strategy<Value = f64> {
    prop_oneof![
        8 => typical,
        1 => prop_oneof![
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            Just(f64::MAX),
            Just(-f64::MAX),
            Just(0.0),
            Just(-0.0),
            Just(f64::MIN_POSITIVE),
            any::<f64>(),
        ],
    ]
}

fn arb_candidate() -> impl Strategy<Value = Candidate> {
    (
        (arb_f64(-0.5..0.5), arb_f64(-0.001..0.2), arb_f64(0.0..0.5), arb_f64(0.0..0.1)),
        (arb_f64(0.0..0.3), arb_f64(0.0..0.5), 0u64..2_000_000),
        (0u8..18, 0u8..4, any::<u8>(), any::<u32>()),
        (prop::bool::weighted(0.1), prop::bool::weighted(0.1), prop::bool::weighted(0.7)),
    )
        .prop_map(
            |(
                (offset, delay, dispersion, jitter),
                (root_delay, root_dispersion, sample_secs),
                (stratum, leap, reach, refid),
                (prefer, noselect, reachable),
            )| Candidate {
                id: AssocId(0), // set to the index below
                offset,
                delay,
                dispersion,
                jitter,
                sample_time: Instant::from_nanos(sample_secs * 1_000_000_000),
                stratum: if stratum >= 16 { stratum } else { stratum % 4 + 1 },
                leap: LeapIndicator::from_bits(leap),
                root_delay,
                root_dispersion,
                reference_id: ReferenceId::from_bits(refid % 4),
                refid_for_us: ReferenceId::from_bits(refid),
                reach: if reachable { reach | 1 } else { reach },
                prefer,
                noselect,
            },
        )
}

fn arb_config() -> impl Strategy<Value = SelectConfig> {
    (0usize..6, 0usize..6, arb_f64(0.0..2.0), prop::option::of(0u32..4), any::<Option<u32>>())
        .prop_map(|(minclock, minsane, maxdist, own, current)| SelectConfig {
            phi: crate::assoc::filter::PHI,
            minclock,
            minsane,
            maxdist,
            own_refid: own.map(ReferenceId::from_bits),
            current: current.map(|c| AssocId(c % 12)),
        })
}

proptest! {
    #[test]
    fn arbitrary_candidates_satisfy_invariants(
        mut cands in prop::collection::vec(arb_candidate(), 0..12),
        config in arb_config(),
    ) {
        for (i, c) in cands.iter_mut().enumerate() {
            c.id = AssocId(i as u32);
        }
        let s = select(now(), &cands, &config);

        // Exactly one verdict per input, in input order.
        prop_assert_eq!(s.verdicts.len(), cands.len());
        for (c, (id, _)) in cands.iter().zip(&s.verdicts) {
            prop_assert_eq!(c.id, *id);
        }

        let peers: Vec<usize> = (0..cands.len())
            .filter(|&i| s.verdicts[i].1 == Verdict::SystemPeer)
            .collect();
        prop_assert_eq!(s.combined.is_some(), s.system_peer.is_some());
        match s.system_peer {
            None => prop_assert!(peers.is_empty()),
            Some(id) => {
                prop_assert_eq!(peers.len(), 1);
                prop_assert_eq!(cands[peers[0]].id, id);

                // Truechimers are a strict majority of the fit candidates.
                let fit = s.verdicts.iter()
                    .filter(|(_, v)| !matches!(v, Verdict::Unusable(_)))
                    .count();
                let true_ = s.verdicts.iter()
                    .filter(|(_, v)| matches!(v, Verdict::SystemPeer | Verdict::Survivor | Verdict::Outlier))
                    .count();
                prop_assert!(2 * true_ > fit);
                prop_assert!(true_ >= config.minsane);

                // The combined offset lies within the survivors' offsets.
                let used: Vec<f64> = (0..cands.len())
                    .filter(|&i| is_used(s.verdicts[i].1))
                    .map(|i| cands[i].offset)
                    .collect();
                let lo = used.iter().copied().fold(f64::INFINITY, f64::min);
                let hi = used.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let combined = s.combined.expect("checked above");
                prop_assert!(combined.offset >= lo && combined.offset <= hi,
                    "{} not in [{lo}, {hi}]", combined.offset);
                prop_assert!(!combined.jitter.is_nan() && combined.jitter >= 0.0);
                prop_assert!(!combined.root_dispersion.is_nan() && combined.root_dispersion >= 0.0);
                prop_assert!(!combined.root_delay.is_nan() && combined.root_delay >= 0.0);
                prop_assert!(combined.stratum >= 2 && combined.stratum <= 16);
            }
        }

        // Used candidates are all fit; the unusable keep their reasons.
        for (c, (_, v)) in cands.iter().zip(&s.verdicts) {
            if c.noselect {
                prop_assert_eq!(*v, Verdict::Unusable(Unusable::Noselect));
            }
            if is_used(*v) {
                prop_assert!(c.offset.is_finite() && c.reach != 0 && c.stratum < 16);
            }
        }
    }
}
