//! Source manager tests in virtual time with a scripted DNS.

use std::net::Ipv4Addr;

use super::*;
use crate::rng::SplitMix64;

fn t(secs: f64) -> Instant {
    Instant::ZERO.add_secs_f64(secs)
}

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 1, last))
}

fn server(name: &str) -> SourceSpec {
    SourceSpec {
        kind: SourceKind::Server,
        target: Target::Name(name.into()),
        port: 123,
        assoc: AssocConfig::default(),
        family: AddrFamily::Any,
        prefer: false,
        noselect: false,
    }
}

fn pool(name: &str, maxsources: u8) -> SourceSpec {
    SourceSpec { kind: SourceKind::Pool { maxsources }, ..server(name) }
}

fn answer(now: Instant, ttl: f64, addrs: &[u8]) -> Result<Resolved, ResolveError> {
    Ok(Resolved {
        addrs: addrs.iter().map(|a| ip(*a)).collect(),
        valid_until: now.add_secs_f64(ttl),
    })
}

struct H {
    m: SourceManager,
    rng: SplitMix64,
}

impl H {
    fn new(maxclock: usize) -> Self {
        H { m: SourceManager::new(ResolvePolicy::default(), maxclock), rng: SplitMix64::new(42) }
    }

    fn actions(&mut self) -> Vec<SourceAction> {
        std::iter::from_fn(|| self.m.poll_action()).collect()
    }

    fn events(&mut self) -> Vec<SourceEvent> {
        std::iter::from_fn(|| self.m.poll_event()).collect()
    }

    fn add(&mut self, now: Instant, spec: SourceSpec) -> SourceId {
        self.m.add(now, spec, &mut self.rng).unwrap()
    }

    fn resolved(&mut self, now: Instant, id: SourceId, r: Result<Resolved, ResolveError>) {
        self.m.handle_resolved(now, id, r, &mut self.rng);
    }

    fn timeout(&mut self, now: Instant) {
        self.m.handle_timeout(now, &mut self.rng);
    }

    fn assoc_event(&mut self, now: Instant, a: AssocId, e: AssocEvent) {
        self.m.handle_assoc_event(now, a, &e, &mut self.rng);
    }

    fn mobilized(actions: &[SourceAction]) -> Vec<(AssocId, SocketAddr)> {
        actions
            .iter()
            .filter_map(|a| match a {
                SourceAction::Mobilize { assoc, remote, .. } => Some((*assoc, *remote)),
                _ => None,
            })
            .collect()
    }
}

fn sa(last: u8) -> SocketAddr {
    SocketAddr::new(ip(last), 123)
}

#[test]
fn server_name_resolves_then_mobilizes_first_address() {
    let mut h = H::new(10);
    let id = h.add(t(0.0), server("ntp.test"));
    assert_eq!(h.actions(), vec![SourceAction::Resolve { source: id, name: "ntp.test".into() }]);
    // A lookup in flight is not started twice.
    h.timeout(t(1.0));
    assert!(h.actions().is_empty());
    h.resolved(t(0.1), id, answer(t(0.1), 30.0, &[3, 4]));
    let acts = h.actions();
    assert_eq!(H::mobilized(&acts), vec![(AssocId(1), sa(3))]);
    // TTL 30 s is below the 1 h floor: next lookup between 1 h and 1.1 h.
    let next = h.m.poll_timeout().unwrap().secs_since(t(0.1));
    assert!((3600.0..=3960.0).contains(&next), "{next}");
}

#[test]
fn answer_still_listing_current_address_changes_nothing() {
    let mut h = H::new(10);
    let id = h.add(t(0.0), server("ntp.test"));
    h.actions();
    h.resolved(t(0.0), id, answer(t(0.0), 30.0, &[3, 4]));
    h.actions();
    let due = h.m.poll_timeout().unwrap();
    h.timeout(due);
    assert!(matches!(h.actions()[..], [SourceAction::Resolve { .. }]));
    h.resolved(due, id, answer(due, 30.0, &[9, 8, 3]));
    assert!(h.actions().is_empty(), "a still-listed server must not be churned");
    assert!(!h.events().iter().any(|e| matches!(e, SourceEvent::Moved { .. })));
}

#[test]
fn changed_record_moves_association_keeping_its_id() {
    let mut h = H::new(10);
    let id = h.add(t(0.0), server("ntp.test"));
    h.actions();
    h.resolved(t(0.0), id, answer(t(0.0), 30.0, &[3]));
    h.actions();
    h.events();
    h.m.refresh(t(10.0), id, &mut h.rng);
    assert!(matches!(h.actions()[..], [SourceAction::Resolve { .. }]));
    h.resolved(t(10.0), id, answer(t(10.0), 30.0, &[7, 8]));
    assert_eq!(h.actions(), vec![SourceAction::Move { assoc: AssocId(1), remote: sa(7) }]);
    assert!(h.events().contains(&SourceEvent::Moved {
        source: id,
        assoc: AssocId(1),
        from: sa(3),
        to: sa(7),
        reason: MoveReason::AddressChanged,
    }));
}

#[test]
fn duplicates_collapse_and_no_two_associations_share_an_address() {
    let mut h = H::new(10);
    let a = h.add(t(0.0), server("pool.test"));
    let err = h.m.add(t(0.0), server("pool.test"), &mut h.rng).unwrap_err();
    assert!(matches!(err, AddError::Duplicate { existing, .. } if existing == a.0));
    // Same address through a literal and a name.
    let lit = SourceSpec { target: Target::Addr(ip(5)), ..server("x") };
    h.add(t(0.0), lit.clone());
    assert_eq!(
        h.m.add(t(0.0), lit, &mut h.rng),
        Err(AddError::Duplicate { target: Target::Addr(ip(5)), port: 123, existing: 2 })
    );
    h.actions();
    h.resolved(t(0.0), a, answer(t(0.0), 30.0, &[5, 6]));
    // 127.0.1.5 belongs to the literal source already: the name takes .6.
    assert_eq!(H::mobilized(&h.actions()), vec![(AssocId(2), sa(6))]);

    let b = h.add(t(1.0), server("other.test"));
    h.actions();
    h.resolved(t(1.0), b, answer(t(1.0), 30.0, &[5, 6]));
    assert!(H::mobilized(&h.actions()).is_empty());
    assert!(h
        .events()
        .iter()
        .any(|e| matches!(e, SourceEvent::NoFreeAddress { source, .. } if *source == b)));
}

#[test]
fn failures_back_off_from_seconds_to_an_hour_and_are_reported_once() {
    let mut h = H::new(10);
    let id = h.add(t(0.0), server("nx.test"));
    let mut now = t(0.0);
    let mut intervals = vec![];
    let mut repeated = vec![];
    for _ in 0..16 {
        h.actions();
        h.resolved(now, id, Err(ResolveError::NxDomain));
        for e in h.events() {
            if let SourceEvent::ResolveFailed { repeated: r, .. } = e {
                repeated.push(r);
            }
        }
        let next = h.m.poll_timeout().unwrap();
        intervals.push(next.secs_since(now));
        now = next;
        h.timeout(now);
    }
    assert!((1.8..=2.0).contains(&intervals[0]), "{intervals:?}");
    assert!(intervals.windows(2).all(|w| w[1] >= w[0] * 0.9), "{intervals:?}");
    assert!(intervals.iter().all(|i| *i <= 3600.0));
    assert!(*intervals.last().unwrap() >= 3240.0, "{intervals:?}");
    assert!(!repeated[0]);
    assert!(repeated[1..].iter().all(|r| *r));
}

#[test]
fn failure_after_success_keeps_the_server_and_retries_later() {
    let mut h = H::new(10);
    let id = h.add(t(0.0), server("ntp.test"));
    h.actions();
    h.resolved(t(0.0), id, answer(t(0.0), 30.0, &[3]));
    h.actions();
    h.m.refresh(t(5.0), id, &mut h.rng);
    h.actions();
    h.resolved(t(5.0), id, Err(ResolveError::ServFail));
    assert!(h.actions().is_empty(), "last good address stays in use");
    let retry = h.m.poll_timeout().unwrap().secs_since(t(5.0));
    assert!((54.0..=60.0).contains(&retry), "{retry}");
    let snap = &h.m.snapshot()[0];
    assert_eq!(snap.addrs, vec![ip(3)]);
    assert_eq!(snap.assocs, vec![(AssocId(1), sa(3))]);
}

#[test]
fn unusable_addresses_are_filtered() {
    let mut h = H::new(10);
    let id = h.add(t(0.0), server("weird.test"));
    h.actions();
    let bad = vec![
        IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V4(Ipv4Addr::BROADCAST),
        IpAddr::V4(Ipv4Addr::new(224, 0, 1, 1)),
        "ff02::101".parse().unwrap(),
        "::".parse().unwrap(),
    ];
    h.resolved(t(0.0), id, Ok(Resolved { addrs: bad.clone(), valid_until: t(30.0) }));
    assert!(h.actions().is_empty());
    assert!(h.events().iter().any(|e| matches!(
        e,
        SourceEvent::ResolveFailed { error: ResolveError::NoUsableAddress, .. }
    )));
    let mut mixed = bad;
    mixed.push(ip(9));
    h.timeout(h.m.poll_timeout().unwrap());
    h.actions();
    h.resolved(t(3.0), id, Ok(Resolved { addrs: mixed, valid_until: t(33.0) }));
    assert_eq!(H::mobilized(&h.actions()), vec![(AssocId(1), sa(9))]);
}

#[test]
fn unreachable_server_re_resolves_early_with_backoff() {
    let mut h = H::new(10);
    let id = h.add(t(0.0), server("ntp.test"));
    h.actions();
    h.resolved(t(0.0), id, answer(t(0.0), 86_400.0, &[3]));
    h.actions();
    h.assoc_event(t(600.0), AssocId(1), AssocEvent::Unreachable);
    assert!(matches!(h.actions()[..], [SourceAction::Resolve { .. }]), "immediate re-resolution");
    h.resolved(t(600.0), id, answer(t(600.0), 86_400.0, &[3]));
    assert!(h.actions().is_empty());
    let next = h.m.poll_timeout().unwrap().secs_since(t(600.0));
    assert!((next - 60.0).abs() < 1e-6, "{next}");
    h.timeout(t(660.0));
    h.actions();
    h.resolved(t(660.0), id, answer(t(660.0), 86_400.0, &[3]));
    let next = h.m.poll_timeout().unwrap().secs_since(t(660.0));
    assert!((next - 120.0).abs() < 1e-6, "{next}");
    // Reachable again: back to the TTL schedule.
    h.assoc_event(t(700.0), AssocId(1), AssocEvent::Reachable);
    h.timeout(t(780.0));
    h.actions();
    h.resolved(t(780.0), id, answer(t(780.0), 86_400.0, &[3]));
    let next = h.m.poll_timeout().unwrap().secs_since(t(780.0));
    assert!(next > 70_000.0, "{next}");
}

/// Simulates a week of a healthy server name with the default policy and counts lookups.
fn week_of_queries(ttl: f64) -> (u64, usize) {
    let mut h = H::new(10);
    let id = h.add(t(0.0), server("ntp.test"));
    let mut moves = 0;
    let mut now = t(0.0);
    let end = 7.0 * 86_400.0;
    loop {
        for a in h.actions() {
            match a {
                SourceAction::Resolve { .. } => {
                    // A round-robin answer that always includes the server in use.
                    h.resolved(now, id, answer(now, ttl, &[4, 3, 2]));
                }
                SourceAction::Move { .. } => moves += 1,
                _ => {}
            }
        }
        let Some(next) = h.m.poll_timeout() else { break };
        if next.secs_since(t(0.0)) > end {
            break;
        }
        now = next;
        h.timeout(now);
    }
    (h.m.snapshot()[0].queries, moves)
}

#[test]
fn dns_load_over_a_week_stays_between_1_and_24_per_day() {
    for ttl in [30.0, 150.0, 3_600.0, 86_400.0] {
        let (queries, moves) = week_of_queries(ttl);
        let per_day = queries as f64 / 7.0;
        assert!((1.0..=24.0).contains(&per_day), "ttl {ttl}: {per_day} queries/day");
        assert_eq!(moves, 0, "ttl {ttl}: a healthy server moved");
    }
}

#[test]
fn pool_fills_from_one_answer_and_replaces_unreachable_members() {
    let mut h = H::new(10);
    let id = h.add(t(0.0), pool("pool.test", 4));
    h.actions();
    h.resolved(t(0.0), id, answer(t(0.0), 300.0, &[1, 2, 3, 4, 5, 6]));
    let first = H::mobilized(&h.actions());
    assert_eq!(first.len(), 4);
    // Pools do not re-resolve on a timer while full.
    assert_eq!(h.m.poll_timeout(), None);

    let (victim, victim_addr) = first[0];
    h.assoc_event(t(100.0), victim, AssocEvent::Unreachable);
    let acts = h.actions();
    assert!(acts.contains(&SourceAction::Demobilize {
        assoc: victim,
        reason: DemobilizeReason::Unreachable
    }));
    let repl = H::mobilized(&acts);
    assert_eq!(repl.len(), 1);
    assert!(!first.iter().any(|(_, a)| *a == repl[0].1), "replacement reuses an address in use");
    assert_ne!(repl[0].1, victim_addr);
}

#[test]
fn pool_member_missing_from_later_answer_is_kept() {
    let mut h = H::new(10);
    let id = h.add(t(0.0), pool("pool.test", 2));
    h.actions();
    h.resolved(t(0.0), id, answer(t(0.0), 30.0, &[1, 2]));
    let first = H::mobilized(&h.actions());
    assert_eq!(first.len(), 2);
    h.m.refresh(t(40.0), id, &mut h.rng);
    h.actions();
    h.resolved(t(40.0), id, answer(t(40.0), 30.0, &[7, 8]));
    assert!(
        h.actions().is_empty(),
        "healthy members must not be retired for missing from an answer"
    );
    assert_eq!(h.m.snapshot()[0].assocs.len(), 2);
}

#[test]
fn kod_deny_retires_member_and_blocks_its_address() {
    let mut h = H::new(10);
    let id = h.add(t(0.0), pool("pool.test", 1));
    h.actions();
    h.resolved(t(0.0), id, answer(t(0.0), 3_600.0, &[1, 2]));
    let first = H::mobilized(&h.actions());
    h.assoc_event(t(5.0), first[0].0, AssocEvent::Demobilized(DemobilizeReason::KodDeny));
    let repl = H::mobilized(&h.actions());
    assert_eq!(repl.len(), 1);
    assert_ne!(repl[0].1, first[0].1);
    // The replacement dies too; the denied address is not reused even though it is cached.
    h.assoc_event(t(6.0), repl[0].0, AssocEvent::Unreachable);
    let again = H::mobilized(&h.actions());
    assert!(again.iter().all(|(_, a)| *a != first[0].1), "{again:?}");
}

#[test]
fn unsynchronized_pool_member_is_retired_after_a_run() {
    let mut h = H::new(10);
    let id = h.add(t(0.0), pool("pool.test", 1));
    h.actions();
    h.resolved(t(0.0), id, answer(t(0.0), 3_600.0, &[1, 2]));
    let (a, _) = H::mobilized(&h.actions())[0];
    for i in 0..UNSYNC_RETIRE_REPLIES - 1 {
        h.assoc_event(t(f64::from(i)), a, AssocEvent::Unsynchronized);
    }
    assert!(h.actions().is_empty());
    h.assoc_event(t(10.0), a, AssocEvent::Unsynchronized);
    let acts = h.actions();
    assert!(acts.contains(&SourceAction::Demobilize {
        assoc: a,
        reason: DemobilizeReason::Unsynchronized
    }));
}

#[test]
fn pool_shares_under_maxclock_are_proportional() {
    // ntpd's rule: each pool row counts toward maxclock, so 8 - 2 = 6 for the members.
    let mut h = H::new(8);
    let a = h.add(t(0.0), pool("a.test", 5));
    let b = h.add(t(0.0), pool("b.test", 3));
    let targets = h.m.pool_targets();
    assert_eq!((targets[&a], targets[&b]), (4, 2));
    // A configured server takes one from the pools' budget.
    let s = SourceSpec { target: Target::Addr(ip(99)), ..server("x") };
    h.add(t(0.0), s);
    let targets = h.m.pool_targets();
    assert_eq!(targets[&a] + targets[&b], 5);
    assert_eq!((targets[&a], targets[&b]), (3, 2));
}

#[test]
fn remove_stops_every_member() {
    let mut h = H::new(10);
    let id = h.add(t(0.0), pool("pool.test", 3));
    h.actions();
    h.resolved(t(0.0), id, answer(t(0.0), 300.0, &[1, 2, 3]));
    assert_eq!(H::mobilized(&h.actions()).len(), 3);
    assert_eq!(h.m.find("POOL.test."), Some(id));
    assert!(h.m.remove(t(1.0), id, &mut h.rng));
    let stops = h
        .actions()
        .into_iter()
        .filter(|a| matches!(a, SourceAction::Demobilize { reason: DemobilizeReason::Removed, .. }))
        .count();
    assert_eq!(stops, 3);
    assert!(h.m.snapshot().is_empty());
    assert!(!h.m.remove(t(1.0), id, &mut h.rng));
}

#[test]
#[ignore = "prints the DNS-load table; run with --ignored --nocapture"]
fn print_dns_load_table() {
    for ttl in [30.0, 150.0, 3_600.0, 86_400.0] {
        let (q, m) = week_of_queries(ttl);
        println!("ttl {ttl:>7} s: {q} queries/week = {:.1}/day, {m} moves", q as f64 / 7.0);
    }
}

fn pool_iburst(name: &str, maxsources: u8) -> SourceSpec {
    let mut spec = pool(name, maxsources);
    spec.assoc.iburst = true;
    spec
}

#[test]
fn iburst_first_fill_probes_up_to_maxclock_and_keeps_the_first_to_answer() {
    let mut h = H::new(10);
    let id = h.add(t(0.0), pool_iburst("pool.test", 4));
    h.actions();
    h.resolved(t(0.0), id, answer(t(0.0), 300.0, &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]));
    let probes = H::mobilized(&h.actions());
    assert_eq!(probes.len(), 9, "all the room under maxclock 10 (the pool row counts)");
    // Members answer in some order; the first four are kept.
    let order = [5usize, 2, 7, 0, 1, 3, 4, 6, 8];
    for (i, k) in order.iter().enumerate() {
        h.assoc_event(t(1.0 + i as f64), probes[*k].0, AssocEvent::Reachable);
    }
    let acts = h.actions();
    let pruned: Vec<AssocId> = acts
        .iter()
        .filter_map(|a| match a {
            SourceAction::Demobilize { assoc, reason: DemobilizeReason::PrunedExtra } => {
                Some(*assoc)
            }
            _ => None,
        })
        .collect();
    let expect: Vec<AssocId> = [1usize, 3, 4, 6, 8].iter().map(|k| probes[*k].0).collect();
    let mut pruned_sorted = pruned.clone();
    pruned_sorted.sort();
    assert_eq!(pruned_sorted, expect);
    assert_eq!(h.m.snapshot()[0].assocs.len(), 4);
    assert!(H::mobilized(&acts).is_empty(), "pruning must not trigger replacements");
}

#[test]
fn probes_respect_maxclock_in_the_mixed_case() {
    let mut h = H::new(8);
    let a = h.add(t(0.0), pool_iburst("a.test", 5));
    let b = h.add(t(0.0), pool_iburst("b.test", 3));
    h.actions();
    h.resolved(t(0.0), a, answer(t(0.0), 300.0, &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]));
    h.resolved(t(0.0), b, answer(t(0.0), 300.0, &[11, 12, 13, 14, 15, 16]));
    let m = H::mobilized(&h.actions());
    assert_eq!(m.len(), 6, "no probes beyond maxclock: {m:?}");
    let snap = h.m.snapshot();
    assert_eq!((snap[0].assocs.len(), snap[1].assocs.len()), (4, 2));
}

#[test]
fn replacements_after_first_fill_are_rate_limited() {
    let mut h = H::new(10);
    let id = h.add(t(0.0), pool("pool.test", 4));
    h.actions();
    let addrs: Vec<u8> = (1..=20).collect();
    h.resolved(t(0.0), id, answer(t(0.0), 86_400.0, &addrs));
    let mut members = H::mobilized(&h.actions());
    assert_eq!(members.len(), 4);
    // They answer: the pool reached its target, from now on replacements are rate-limited.
    for (a, _) in &members {
        h.assoc_event(t(1.0), *a, AssocEvent::Reachable);
    }
    // Three members die at once.
    for (a, _) in members.drain(..3) {
        h.assoc_event(t(600.0), a, AssocEvent::Unreachable);
    }
    let now_replaced = H::mobilized(&h.actions());
    assert_eq!(now_replaced.len(), POOL_REPLACE_BURST as usize, "a burst of two at once");
    // The third waits for a token: between 0.5 and 1.5 x the interval.
    let wake = h.m.poll_timeout().expect("a token timer");
    let wait = wake.secs_since(t(600.0));
    assert!((POOL_REPLACE_INTERVAL * 0.5..=POOL_REPLACE_INTERVAL * 1.5).contains(&wait), "{wait}");
    h.timeout(wake);
    assert_eq!(H::mobilized(&h.actions()).len(), 1);
    assert_eq!(h.m.snapshot()[0].assocs.len(), 4);
}

#[test]
fn a_week_of_churn_replaces_at_most_one_member_per_interval_on_average() {
    // Every member dies 30 minutes after it was mobilized: the worst case for thrash.
    let mut h = H::new(10);
    let id = h.add(t(0.0), pool("pool.test", 4));
    let addrs: Vec<u8> = (1..=250).collect();
    let mut deaths: Vec<(Instant, AssocId)> = vec![];
    let mut replacements = 0u32;
    let mut now = t(0.0);
    let week = 7.0 * 86_400.0;
    while now.secs_since(t(0.0)) < week {
        loop {
            let actions = h.actions();
            if actions.is_empty() {
                break;
            }
            for a in actions {
                match a {
                    SourceAction::Resolve { .. } => h.resolved(now, id, answer(now, 300.0, &addrs)),
                    SourceAction::Mobilize { assoc, .. } => {
                        deaths.push((now.add_secs_f64(1800.0), assoc));
                    }
                    _ => {}
                }
            }
        }
        for e in h.events() {
            if matches!(e, SourceEvent::Mobilized { reason: MobilizeReason::Replacement, .. }) {
                replacements += 1;
            }
        }
        deaths.sort();
        let next_death = deaths.first().map(|d| d.0);
        let next = [next_death, h.m.poll_timeout()].into_iter().flatten().min();
        let Some(next) = next else { break };
        now = next;
        if next_death == Some(now) {
            let (_, a) = deaths.remove(0);
            h.assoc_event(now, a, AssocEvent::Unreachable);
        } else {
            h.timeout(now);
        }
    }
    let per_day = f64::from(replacements) / 7.0;
    // Bucket: 2 at once, then one per 15 min on average: at most 96/day + the burst.
    assert!(per_day <= 86_400.0 / POOL_REPLACE_INTERVAL + 1.0, "{per_day} replacements/day");
    assert!(per_day > 10.0, "dead members must still be replaced: {per_day}/day");
}

/// Regression (pool integration test, bug 2): a replacement must not be the address that was
/// just retired as unreachable, whatever the shuffle.
#[test]
fn replacement_never_reuses_the_unreachable_address() {
    for seed in 0..32 {
        let mut h =
            H { m: SourceManager::new(ResolvePolicy::default(), 10), rng: SplitMix64::new(seed) };
        let id = h.add(t(0.0), pool("pool.test", 1));
        h.actions();
        h.resolved(t(0.0), id, answer(t(0.0), 3_600.0, &[1, 2]));
        let (a, addr) = H::mobilized(&h.actions())[0];
        h.assoc_event(t(10.0), a, AssocEvent::Unreachable);
        let repl = H::mobilized(&h.actions());
        assert_eq!(repl.len(), 1, "seed {seed}");
        assert_ne!(repl[0].1, addr, "seed {seed}: the dead address came straight back");
    }
}

/// Regression (pool integration test, bug 1): a member that stopped itself on a KoD is also
/// demobilized, so the driver forgets it.
#[test]
fn kod_stopped_pool_member_is_demobilized_for_the_driver() {
    let mut h = H::new(10);
    let id = h.add(t(0.0), pool("pool.test", 1));
    h.actions();
    h.resolved(t(0.0), id, answer(t(0.0), 3_600.0, &[1, 2]));
    let (a, _) = H::mobilized(&h.actions())[0];
    h.assoc_event(t(1.0), a, AssocEvent::Demobilized(DemobilizeReason::KodDeny));
    assert!(h
        .actions()
        .contains(&SourceAction::Demobilize { assoc: a, reason: DemobilizeReason::KodDeny }));
}

/// Regression (review): a server name with one address stayed dead forever after a KoD, as
/// its own stopped association counted as "address in use".
#[test]
fn server_denied_once_is_polled_again_after_the_block() {
    let mut h = H::new(10);
    let id = h.add(t(0.0), server("ntp.test"));
    h.actions();
    h.resolved(t(0.0), id, answer(t(0.0), 300.0, &[3]));
    let (a, addr) = H::mobilized(&h.actions())[0];
    h.assoc_event(t(10.0), a, AssocEvent::Demobilized(DemobilizeReason::KodRstr));
    // Refused service: the name is asked at once for another address.
    assert!(matches!(h.actions()[..], [SourceAction::Resolve { .. }]));
    // Within the block: the only address is not used again.
    h.resolved(t(100.0), id, answer(t(100.0), 300.0, &[3]));
    assert!(h.actions().is_empty());
    // After it: the stopped association moves back to it (same id).
    let later = t(10.0 + KOD_BLOCK_SECS + 1.0);
    h.m.refresh(later, id, &mut h.rng);
    h.actions();
    h.resolved(later, id, answer(later, 300.0, &[3]));
    assert_eq!(h.actions(), vec![SourceAction::Move { assoc: a, remote: addr }]);
}

/// Regression (review): a pool whose answer has TTL 0 never filled.
#[test]
fn pool_fills_from_an_answer_with_ttl_zero() {
    let mut h = H::new(10);
    let id = h.add(t(0.0), pool("pool.test", 2));
    h.actions();
    h.resolved(t(0.5), id, answer(t(0.5), 0.0, &[1, 2, 3]));
    assert_eq!(H::mobilized(&h.actions()).len(), 2);
}

// ---- issue 14: identity, failover, DNS load, fast fill, ntpd counting, resolver failures

fn resolves(actions: &[SourceAction]) -> usize {
    actions.iter().filter(|a| matches!(a, SourceAction::Resolve { .. })).count()
}

fn moved(events: &[SourceEvent]) -> Vec<(SocketAddr, SocketAddr, MoveReason)> {
    events
        .iter()
        .filter_map(|e| match e {
            SourceEvent::Moved { from, to, reason, .. } => Some((*from, *to, *reason)),
            _ => None,
        })
        .collect()
}

#[test]
fn server_minus_4_and_minus_6_of_one_name_are_two_sources() {
    let mut h = H::new(10);
    let v4 = h.add(t(0.0), SourceSpec { family: AddrFamily::V4, ..server("ntp.test") });
    let v6 = h.add(t(0.0), SourceSpec { family: AddrFamily::V6, ..server("ntp.test") });
    assert_ne!(v4, v6);
    let again =
        h.m.add(t(0.0), SourceSpec { family: AddrFamily::V4, ..server("ntp.test") }, &mut h.rng);
    assert!(matches!(again, Err(AddError::Duplicate { .. })), "{again:?}");
    // An address literal has one family whatever the line says.
    let lit = SourceSpec { target: Target::Addr(ip(9)), ..server("x") };
    h.add(t(0.0), lit.clone());
    let dup = h.m.add(t(0.0), SourceSpec { family: AddrFamily::V4, ..lit }, &mut h.rng);
    assert!(matches!(dup, Err(AddError::Duplicate { .. })), "{dup:?}");
}

#[test]
fn unreachable_server_name_fails_over_to_another_address_and_keeps_its_id() {
    let mut h = H::new(10);
    let id = h.add(t(0.0), server("ntp.test"));
    h.actions();
    // Dead .30 first, live .2 second (the case).
    h.resolved(t(0.0), id, answer(t(0.0), 300.0, &[30, 2]));
    let (a, first) = H::mobilized(&h.actions())[0];
    assert_eq!(first, sa(30));
    h.events();
    h.assoc_event(t(20.0), a, AssocEvent::Unreachable);
    assert_eq!(resolves(&h.actions()), 1, "a fresh answer is asked for at once");
    h.resolved(t(20.1), id, answer(t(20.1), 300.0, &[30, 2]));
    assert_eq!(h.actions(), vec![SourceAction::Move { assoc: a, remote: sa(2) }]);
    assert_eq!(moved(&h.events()), vec![(sa(30), sa(2), MoveReason::Failover)]);
    // Healthy at .2: later answers listing both never move it back.
    h.assoc_event(t(22.0), a, AssocEvent::Reachable);
    for k in 1..5 {
        let now = t(22.0 + 4000.0 * f64::from(k));
        h.m.refresh(now, id, &mut h.rng);
        h.actions();
        h.resolved(now, id, answer(now, 300.0, &[30, 2]));
        assert!(h.actions().is_empty(), "a healthy server was churned");
    }
}

#[test]
fn failed_server_with_no_other_address_stays_and_asks_on_the_backoff() {
    let mut h = H::new(10);
    let id = h.add(t(0.0), server("ntp.test"));
    h.actions();
    h.resolved(t(0.0), id, answer(t(0.0), 300.0, &[3]));
    let (a, _) = H::mobilized(&h.actions())[0];
    h.assoc_event(t(10.0), a, AssocEvent::Unreachable);
    assert_eq!(resolves(&h.actions()), 1);
    h.resolved(t(10.0), id, answer(t(10.0), 300.0, &[3]));
    assert!(h.actions().is_empty());
    assert!(!h.events().iter().any(|e| matches!(e, SourceEvent::NoFreeAddress { .. })));
    // Next lookup on the unreachable backoff (60 s), not the TTL floor.
    let next = h.m.poll_timeout().unwrap().secs_since(t(10.0));
    assert!(next <= 60.0 + 1e-6, "{next}");
}

#[test]
fn two_dead_addresses_are_not_alternated() {
    let mut h = H::new(10);
    let id = h.add(t(0.0), server("ntp.test"));
    h.actions();
    h.resolved(t(0.0), id, answer(t(0.0), 300.0, &[30, 31]));
    let (a, _) = H::mobilized(&h.actions())[0];
    h.assoc_event(t(20.0), a, AssocEvent::Unreachable);
    h.actions();
    h.resolved(t(20.0), id, answer(t(20.0), 300.0, &[30, 31]));
    assert_eq!(h.actions(), vec![SourceAction::Move { assoc: a, remote: sa(31) }]);
    h.assoc_event(t(40.0), a, AssocEvent::Unreachable);
    h.actions();
    h.resolved(t(40.0), id, answer(t(40.0), 300.0, &[30, 31]));
    assert!(h.actions().is_empty(), ".30 failed a minute ago: not back to it yet");
    // After the avoidance period, the other address gets another chance.
    let later = t(40.0 + BAD_MEMBER_AVOID_SECS);
    h.m.refresh(later, id, &mut h.rng);
    h.actions();
    h.resolved(later, id, answer(later, 300.0, &[30, 31]));
    assert_eq!(h.actions(), vec![SourceAction::Move { assoc: a, remote: sa(30) }]);
}

#[test]
fn unusable_server_name_fails_over_unsynchronized_and_kod() {
    // Persistently unsynchronized.
    let mut h = H::new(10);
    let id = h.add(t(0.0), server("ntp.test"));
    h.actions();
    h.resolved(t(0.0), id, answer(t(0.0), 300.0, &[3, 4]));
    let (a, _) = H::mobilized(&h.actions())[0];
    for i in 0..UNSYNC_RETIRE_REPLIES {
        h.assoc_event(t(f64::from(i)), a, AssocEvent::Unsynchronized);
    }
    assert_eq!(resolves(&h.actions()), 1);
    h.resolved(t(10.0), id, answer(t(10.0), 300.0, &[3, 4]));
    assert_eq!(h.actions(), vec![SourceAction::Move { assoc: a, remote: sa(4) }]);
    // KoD DENY.
    let mut h = H::new(10);
    let id = h.add(t(0.0), server("ntp.test"));
    h.actions();
    h.resolved(t(0.0), id, answer(t(0.0), 300.0, &[3, 4]));
    let (a, _) = H::mobilized(&h.actions())[0];
    h.assoc_event(t(5.0), a, AssocEvent::Demobilized(DemobilizeReason::KodDeny));
    assert_eq!(resolves(&h.actions()), 1);
    h.resolved(t(5.0), id, answer(t(5.0), 300.0, &[3, 4]));
    assert_eq!(h.actions(), vec![SourceAction::Move { assoc: a, remote: sa(4) }]);
}

/// A week of one healthy pool (every member answers) over a name with `n` addresses; returns
/// (lookups, NoFreeAddress events).
fn pool_week(n: u8, iburst: bool) -> (u64, usize) {
    let mut h = H::new(10);
    let spec = if iburst { pool_iburst("pool.test", 4) } else { pool("pool.test", 4) };
    let id = h.add(t(0.0), spec);
    let addrs: Vec<u8> = (1..=n).collect();
    let mut now = t(0.0);
    let mut warnings = 0;
    let week = 7.0 * 86_400.0;
    loop {
        let actions = h.actions();
        for a in &actions {
            match a {
                SourceAction::Resolve { .. } => h.resolved(now, id, answer(now, 300.0, &addrs)),
                SourceAction::Mobilize { assoc, .. } => {
                    h.assoc_event(now, *assoc, AssocEvent::Reachable)
                }
                _ => {}
            }
        }
        warnings +=
            h.events().iter().filter(|e| matches!(e, SourceEvent::NoFreeAddress { .. })).count();
        if !actions.is_empty() {
            continue;
        }
        let Some(next) = h.m.poll_timeout() else { break };
        if next.secs_since(t(0.0)) > week {
            break;
        }
        now = next;
        h.timeout(now);
    }
    (h.m.snapshot()[0].queries, warnings)
}

#[test]
fn pools_of_any_size_cost_at_most_24_lookups_a_day_and_no_warning() {
    for n in [1u8, 2, 3, 4, 8, 60] {
        for iburst in [false, true] {
            let (lookups, warnings) = pool_week(n, iburst);
            let per_day = lookups as f64 / 7.0;
            assert!(per_day <= 24.0, "{n} addresses: {per_day} lookups/day");
            assert_eq!(warnings, 0, "{n} addresses: a WARN for the normal case");
            if n >= 4 {
                assert_eq!(lookups, 1, "{n} addresses, iburst {iburst}: a needless lookup");
            }
        }
    }
}

#[test]
fn exhausted_pool_looks_up_early_only_when_it_loses_a_member() {
    let mut h = H::new(10);
    let id = h.add(t(0.0), pool("pool.test", 4));
    h.actions();
    h.resolved(t(0.0), id, answer(t(0.0), 300.0, &[1, 2, 3]));
    let members = H::mobilized(&h.actions());
    for (a, _) in &members {
        h.assoc_event(t(1.0), *a, AssocEvent::Reachable);
    }
    // The name had more to give: asked again a minute later, and then it has nothing new.
    let next = h.m.poll_timeout().unwrap();
    assert!((next.secs_since(t(0.0)) - 60.0).abs() < 1e-6);
    h.timeout(next);
    h.actions();
    h.resolved(next, id, answer(next, 300.0, &[1, 2, 3]));
    let idle = h.m.poll_timeout().unwrap().secs_since(next);
    assert!((3_600.0..=3_960.0).contains(&idle), "exhausted: next lookup in {idle} s");
    // A member is lost: an early lookup (the answer may have changed).
    h.assoc_event(t(500.0), members[0].0, AssocEvent::Unreachable);
    let acts = h.actions();
    assert_eq!(resolves(&acts), 1, "{acts:?}");
}

#[test]
fn first_fill_replaces_silent_probes_without_the_rate_limit() {
    let mut h = H::new(10);
    let id = h.add(t(0.0), pool_iburst("pool.test", 4));
    h.actions();
    let addrs: Vec<u8> = (1..=60).collect();
    h.resolved(t(0.0), id, answer(t(0.0), 300.0, &addrs));
    let mut round = H::mobilized(&h.actions());
    assert_eq!(round.len(), 9);
    let mut live = 0;
    for r in 1..=3 {
        // One probe answers each round, the others' bursts go unanswered.
        let now = t(16.0 * f64::from(r));
        h.assoc_event(now, round[0].0, AssocEvent::Reachable);
        live += 1;
        for (a, _) in &round[1..] {
            h.assoc_event(now, *a, AssocEvent::Unreachable);
        }
        round = H::mobilized(&h.actions());
        assert_eq!(round.len(), 9 - live, "round {r}: probes replaced at once");
        let events = h.events();
        assert!(events.iter().all(|e| !matches!(
            e,
            SourceEvent::Mobilized { reason: MobilizeReason::Replacement, .. }
        )));
    }
    h.assoc_event(t(64.0), round[0].0, AssocEvent::Reachable);
    assert!(!h.m.snapshot()[0].filling, "target reached");
    assert_eq!(h.m.snapshot()[0].assocs.len(), 4, "extra probes pruned");
}

#[test]
fn first_fill_that_never_answers_slows_down_to_the_replacement_pace() {
    let mut h = H::new(10);
    let id = h.add(t(0.0), pool_iburst("pool.test", 4));
    h.actions();
    let addrs: Vec<u8> = (1..=250).collect();
    h.resolved(t(0.0), id, answer(t(0.0), 86_400.0, &addrs));
    let mut mobilized = 0;
    let mut round = H::mobilized(&h.actions());
    for r in 1..=20 {
        mobilized += round.len();
        let now = t(16.0 * f64::from(r));
        for (a, _) in &round {
            h.assoc_event(now, *a, AssocEvent::Unreachable);
        }
        round = H::mobilized(&h.actions());
    }
    // 4 rounds of 9 at once, then the bucket's 2; then one per token.
    assert!(mobilized <= FIRST_FILL_ROUNDS * 9 + 2, "{mobilized} probes in 20 rounds");
}

#[test]
fn debian_ntpsec_maxclock_11_with_4_pools_gives_7_servers() {
    let mut h = H::new(11);
    let ids: Vec<SourceId> = (0..4)
        .map(|i| h.add(t(0.0), pool_iburst(&format!("{i}.debian.pool.ntp.org"), 4)))
        .collect();
    let targets = h.m.pool_targets();
    let per: Vec<usize> = ids.iter().map(|id| targets[id]).collect();
    assert_eq!(per, vec![2, 2, 2, 1]);
    // And no probes beyond it: maxclock leaves no headroom.
    h.actions();
    for (k, id) in ids.iter().enumerate() {
        let base = 10 * k as u8;
        h.resolved(t(0.0), *id, answer(t(0.0), 300.0, &[base + 1, base + 2, base + 3, base + 4]));
    }
    assert_eq!(H::mobilized(&h.actions()).len(), 7);
}

#[test]
fn retry_lookups_asks_every_pending_name_now_and_restarts_the_backoff() {
    let mut h = H::new(10);
    let bad = h.add(t(0.0), server("bad.test"));
    let good = h.add(t(0.0), server("good.test"));
    h.actions();
    h.resolved(t(0.0), good, answer(t(0.0), 300.0, &[3]));
    let mut now = t(0.0);
    for _ in 0..6 {
        h.resolved(now, bad, Err(ResolveError::Timeout));
        now = h.m.poll_timeout().unwrap();
        h.timeout(now);
        h.actions();
    }
    h.resolved(now, bad, Err(ResolveError::Timeout));
    let waiting = h.m.poll_timeout().unwrap().secs_since(now);
    assert!(waiting > 30.0, "{waiting}");
    let asked = h.m.retry_lookups(now, &mut h.rng);
    assert_eq!(asked, vec![bad]);
    assert_eq!(h.actions(), vec![SourceAction::Resolve { source: bad, name: "bad.test".into() }]);
    h.resolved(now, bad, Err(ResolveError::Timeout));
    let retry = h.m.poll_timeout().unwrap().secs_since(now);
    assert!(retry <= 2.0, "backoff restarted: {retry}");
}

#[test]
fn no_nameserver_is_retried_every_few_seconds_for_ever() {
    let mut h = H::new(10);
    let id = h.add(t(0.0), server("ntp.test"));
    h.actions();
    let mut now = t(0.0);
    for _ in 0..30 {
        h.resolved(now, id, Err(ResolveError::NoNameServer));
        let next = h.m.poll_timeout().unwrap();
        assert!(next.secs_since(now) <= ResolvePolicy::default().local_retry + 1e-9);
        now = next;
        h.timeout(now);
        h.actions();
    }
    assert!(ResolveError::ConnectionRefused.to_string().contains("refused"));
}

#[test]
fn an_answer_keeps_at_most_64_distinct_addresses() {
    let mut h = H::new(10);
    let id = h.add(t(0.0), pool("pool.test", 4));
    h.actions();
    let mut addrs: Vec<IpAddr> =
        (0..200u32).map(|i| IpAddr::V4(Ipv4Addr::from(0x0a00_0001 + i))).collect();
    addrs.insert(1, addrs[0]);
    h.resolved(t(0.0), id, Ok(Resolved { addrs: addrs.clone(), valid_until: t(300.0) }));
    let snap = &h.m.snapshot()[0];
    assert_eq!(snap.addrs.len(), MAX_ANSWER_ADDRS);
    assert_eq!(snap.addrs[..2], [addrs[0], addrs[2]], "first ones kept, duplicates dropped");
}
