//! Pool scenarios in virtual time (docs/pool.md): one `pool` source over simulated servers
//! behind a scripted name, driven by the daemon's SourceManager, associations and Steering
//! (falseticker verdicts go to `SourceManager::handle_falseticker`, as in the daemon). Days of
//! simulated time take well under a second in a debug build.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use rntp_proto::assoc::DemobilizeReason;
use rntp_proto::rng::{RngSource, SplitMix64};
use rntp_proto::source::{MobilizeReason, SourceEvent, POOL_REPLACE_BURST, POOL_REPLACE_INTERVAL};
use rntp_sim::{
    run, server_addr, ClientSpec, DnsAnswer, LinkSpec, RunResult, Scenario, ScriptedResolver,
    ServerSpec,
};

const DAY: f64 = 86_400.0;
const HOUR: f64 = 3_600.0;
const POOL: &str = "pool.sim";
/// Index of the +50 ms falseticker in the week of churn.
const FT: usize = 3;
/// Shortest time for one replacement token (s): half the mean interval.
const TOKEN_MIN: f64 = POOL_REPLACE_INTERVAL * 0.5;
/// Longest time for one replacement token (s).
const TOKEN_MAX: f64 = POOL_REPLACE_INTERVAL * 1.5;

fn client() -> ClientSpec {
    ClientSpec { freq_ppm: 1.0, wander: 1e-9, initial_offset: 0.0, drift_file_ppm: Some(-1.0) }
}

fn addrs(n: usize) -> Vec<IpAddr> {
    (0..n).map(server_addr).collect()
}

fn sock(i: usize) -> SocketAddr {
    SocketAddr::new(server_addr(i), 123)
}

fn times(v: &[(f64, SocketAddr)]) -> Vec<f64> {
    v.iter().map(|x| x.0).collect()
}

/// Retirements other than the first fill's extra probes.
fn losses(r: &RunResult) -> Vec<(f64, SocketAddr, DemobilizeReason)> {
    r.source_events
        .iter()
        .filter_map(|(t, e)| match e {
            SourceEvent::Retired { remote, reason, .. }
                if *reason != DemobilizeReason::PrunedExtra =>
            {
                Some((*t, *remote, *reason))
            }
            _ => None,
        })
        .collect()
}

/// The token bucket seen from outside: any three consecutive replacements need a token that
/// arrived after the first of them (the bucket holds 2), so they span at least 7.5 min.
fn assert_bucket(replaced: &[f64]) {
    for w in replaced.windows(POOL_REPLACE_BURST as usize + 1) {
        assert!(w[w.len() - 1] - w[0] >= TOKEN_MIN - 1e-6, "3 replacements within 7.5 min: {w:?}");
    }
}

/// Lookups only when the pool needs addresses, and at most once a minute: every `Resolved`
/// event comes while the pool has fewer members than its target, and lookups are ≥ 60 s apart.
fn assert_lookups_needed(r: &RunResult, target: usize) {
    let mut members = 0usize;
    for (t, e) in &r.source_events {
        match e {
            SourceEvent::Mobilized { .. } => members += 1,
            SourceEvent::Retired { .. } => members -= 1,
            SourceEvent::Resolved { .. } => {
                assert!(members < target, "lookup at {t} s with a full pool ({members})")
            }
            _ => {}
        }
    }
    for w in r.lookups.windows(2) {
        assert!(w[1] - w[0] >= 60.0 - 1e-6, "lookups {w:?} less than a minute apart");
    }
}

/// No address is mobilized twice within an hour.
fn assert_no_thrash(r: &RunResult) {
    let mut last: BTreeMap<SocketAddr, f64> = BTreeMap::new();
    for (t, e) in &r.source_events {
        if let SourceEvent::Mobilized { remote, .. } = e {
            if let Some(prev) = last.insert(*remote, *t) {
                assert!(t - prev >= HOUR, "{remote} mobilized at {prev} s and again at {t} s");
            }
        }
    }
}

/// Servers behind LAN links; all but `ft` have random outages (up Exp(mean `up_mean`), then
/// down U(1 h, 6 h)); `ft` never fails and is 50 ms ahead.
fn churning_servers(n: usize, ft: usize, until: f64, up_mean: f64, seed: u64) -> Vec<ServerSpec> {
    let mut rng = SplitMix64::new(seed);
    let mut servers = vec![ServerSpec::good(LinkSpec::LAN); n];
    for (i, srv) in servers.iter_mut().enumerate() {
        if i == ft {
            srv.offset = 0.05;
            continue;
        }
        let mut t = -(1.0 - rng.next_f64()).ln() * up_mean;
        while t < until {
            let len = (1.0 + 5.0 * rng.next_f64()) * HOUR;
            srv.outages.push((t, t + len));
            t += len - (1.0 - rng.next_f64()).ln() * up_mean;
        }
    }
    servers
}

/// `pool pool.sim maxsources 4 iburst` over 20 servers for 7 days; the name answers like
/// pool.ntp.org: a random 8 of the 20, a new draw every TTL (300 s).
fn week(maxpoll: i8) -> Scenario {
    let days = 7.0;
    let servers = churning_servers(20, FT, days * DAY, 12.0 * HOUR, 7);
    let mut dns = ScriptedResolver::default();
    dns.rotating(POOL, &addrs(20), 8, 300.0, days * DAY, 11);
    let mut s = Scenario::pool("week of churn", POOL, 4, servers, client());
    s.duration = days * DAY;
    s.maxpoll = maxpoll;
    s.dns = Some(dns);
    s
}

#[test]
fn pool_week_of_churn() {
    let s = week(10);
    let r = run(&s, 1);
    assert!(!r.stalled);
    let target = 4;
    let down: f64 =
        s.servers.iter().flat_map(|v| &v.outages).map(|(a, b)| b.min(s.duration) - a).sum();
    println!(
        "20 servers, {} outages, {:.0} % of server-time down; answers: 8 of 20, TTL 300 s",
        s.servers.iter().map(|v| v.outages.len()).sum::<usize>(),
        100.0 * down / (19.0 * s.duration)
    );

    let replaced = times(&r.mobilized(MobilizeReason::Replacement));
    let losses = losses(&r);
    println!("day | replacements | retired unreachable/falseticker/unsync/kod | lookups | reachable min-max | serving min-max");
    for d in 0..7 {
        let (a, b) = (d as f64 * DAY, (d + 1) as f64 * DAY);
        let within = |t: f64| t >= a && t < b;
        let by = |reason: DemobilizeReason| {
            losses.iter().filter(|l| within(l.0) && l.2 == reason).count()
        };
        let kod = by(DemobilizeReason::KodDeny) + by(DemobilizeReason::KodRstr);
        let samples: Vec<_> =
            r.pool_samples.iter().filter(|p| within(p.t) && p.t >= 60.0).collect();
        let reach = samples.iter().map(|p| p.reachable);
        let serving = samples.iter().map(|p| p.serving);
        let day_repl = replaced.iter().filter(|t| within(**t)).count();
        println!(
            "{} | {} | {}/{}/{}/{} | {} | {}-{} | {}-{}",
            d + 1,
            day_repl,
            by(DemobilizeReason::Unreachable),
            by(DemobilizeReason::Falseticker),
            by(DemobilizeReason::Unsynchronized),
            kod,
            r.lookups.iter().filter(|t| within(**t)).count(),
            reach.clone().min().unwrap_or(0),
            reach.max().unwrap_or(0),
            serving.clone().min().unwrap_or(0),
            serving.max().unwrap_or(0),
        );
        // The bucket's mean rate: 86400 / 900 = 96 a day, plus the burst of 2.
        assert!(day_repl <= 96 + 2, "day {}: {day_repl} replacements", d + 1);
    }

    // Churn happened, and every loss was replaced within the bucket's limits.
    assert!(losses.len() >= 20, "{} losses: not much churn", losses.len());
    assert_eq!(replaced.len(), losses.len(), "every loss replaced");
    assert_bucket(&replaced);
    // Below target only while the bucket is empty or the lookup for a replacement runs (≤ 60 s).
    for p in r.pool_samples.iter().filter(|p| p.t >= 60.0) {
        assert!(
            p.members == p.target || p.tokens == Some(0) || p.waiting_dns,
            "below target with a replacement available and no lookup: {p:?}"
        );
    }
    // Back to 4 reachable members soon after each loss: the replacement answers its iburst
    // unless the server drawn is itself down (then it is retired after 8 polls, ~9 min, and
    // replaced with the next token).
    let mut recovery = Vec::new();
    for (t, _, _) in &losses {
        let back = r.pool_samples.iter().find(|p| p.t > *t && p.reachable == target).map(|p| p.t);
        recovery.push(back.expect("pool recovered") - t);
    }
    recovery.sort_by(f64::total_cmp);
    let median = recovery[recovery.len() / 2];
    let max = recovery[recovery.len() - 1];
    println!("time back to 4 reachable after a loss: median {median:.0} s, max {max:.0} s");
    assert!(median <= 32.0, "{recovery:?}");
    assert!(max <= 2.0 * (9.0 * 64.0 + TOKEN_MAX), "{recovery:?}");
    let below = r.pool_samples.iter().filter(|p| p.t >= 60.0 && p.reachable < target).count();
    let frac = below as f64 / r.pool_samples.len() as f64;
    println!("fraction of time below 4 reachable members: {:.2} %", 100.0 * frac);
    assert!(frac < 0.02);

    // DNS: only when addresses are needed, at most once a minute; at most one per loss here
    // (300 s TTL: the cache has expired by the next loss) plus the first.
    assert_lookups_needed(&r, target);
    assert!(r.lookups.len() <= 1 + losses.len(), "{} lookups", r.lookups.len());
    println!("lookups: {} over 7 days for {} losses", r.lookups.len(), losses.len());
    assert_no_thrash(&r);

    // Falseticker and clock at maxpoll 8 as well (at the default 10 they are checked by
    // `falseticker_member_at_maxpoll_10`): the driver's PersistentFalseticker →
    // handle_falseticker wiring retires the bad member every time it joins.
    let r8 = run(&week(8), 1);
    assert!(!r8.stalled);
    let ft = sock(FT);
    let ft_in = r8.mobilized(MobilizeReason::Replacement).into_iter().filter(|m| m.1 == ft).count()
        + r8.mobilized(MobilizeReason::PoolFill).into_iter().filter(|m| m.1 == ft).count();
    let ft_out = r8.retired(DemobilizeReason::Falseticker);
    println!(
        "maxpoll 8: falseticker mobilized {ft_in}x, retired as falseticker {}x; clock max {:.1} µs after 1 h",
        ft_out.len(),
        r8.stats.max * 1e6
    );
    assert!(ft_in >= 1, "the falseticker never became a member");
    assert_eq!(ft_out.len(), ft_in);
    assert!(ft_out.iter().all(|x| x.1 == ft), "a good server retired as falseticker: {ft_out:?}");
    assert!(r8.stats.max < 1e-3, "{:?}", r8.stats);
    assert_bucket(&times(&r8.mobilized(MobilizeReason::Replacement)));
    assert_lookups_needed(&r8, target);
}

/// The brief's falseticker and clock expectations at the default poll bounds (6/10).
/// Regression: with RFC 5905's fixed PHI (15 ppm) a fresh member (iburst, 64 s poll, best
/// sample seconds old) had a root distance of ~2 ms while the established members at 1024 s
/// carried PHI × best-sample age ≈ 60–90 ms, so their intervals contained +50 ms, the
/// intersection kept the falseticker, and it became the system peer: the clock was slewed
/// 50 ms towards it and the pool never retired it. Steering now ages estimates at the
/// discipline's known frequency uncertainty (`steer::Steering::aging_rate`).
#[test]
fn falseticker_member_at_maxpoll_10() {
    let r = run(&week(10), 1);
    let ft = sock(FT);
    let joined = r.mobilized(MobilizeReason::Replacement).into_iter().filter(|m| m.1 == ft).count();
    assert!(joined >= 1);
    assert_eq!(
        r.retired(DemobilizeReason::Falseticker).len(),
        joined,
        "never retired; clock: {:?}",
        r.stats
    );
    assert!(r.stats.max < 1e-3, "{:?}", r.stats);
}

/// The scenario of the mass-failure test: 20 good servers, the name lists all 20 (TTL 300 s);
/// poll fixed at 64 s so that the four dead members are detected within one poll of each other
/// (8 unanswered polls, ~9 min) and the replacement pace is the bucket's, not the detection's.
fn mass_failure(dead: &[usize], at: f64) -> Scenario {
    let mut servers = vec![ServerSpec::good(LinkSpec::LAN); 20];
    for &i in dead {
        servers[i].outages.push((at, f64::INFINITY));
    }
    let mut s = Scenario::pool("mass failure", POOL, 4, servers, client());
    s.maxpoll = 6;
    s.duration = at + 3.0 * HOUR;
    s
}

#[test]
fn replacement_rate_limit_under_mass_failure() {
    let at = 2.0 * HOUR;
    // Who the members are at 2 h (the run is deterministic, and outages after 2 h do not change
    // what happens before).
    let probe = run(&Scenario { duration: at, ..mass_failure(&[], at) }, 5);
    let mut members: BTreeMap<SocketAddr, bool> = BTreeMap::new();
    for (_, e) in &probe.source_events {
        match e {
            SourceEvent::Mobilized { remote, .. } => members.insert(*remote, true),
            SourceEvent::Retired { remote, .. } => members.remove(remote),
            _ => None,
        };
    }
    let dead: Vec<usize> = (0..20).filter(|i| members.contains_key(&sock(*i))).collect();
    assert_eq!(dead.len(), 4);

    let r = run(&mass_failure(&dead, at), 5);
    assert!(!r.stalled);
    let lost = losses(&r);
    assert_eq!(lost.len(), 4, "{lost:?}");
    assert!(lost
        .iter()
        .all(|l| l.2 == DemobilizeReason::Unreachable && dead.iter().any(|d| sock(*d) == l.1)));
    let first = lost[0].0;
    let last = lost[3].0;
    assert!(
        first >= at + 7.0 * 60.0 && last <= at + 10.0 * 60.0 && last - first <= 64.0,
        "{lost:?}"
    );

    let rep = times(&r.mobilized(MobilizeReason::Replacement));
    assert_eq!(rep.len(), 4, "{rep:?}");
    // Exactly two at once: the first two losses are replaced the instant they are retired...
    assert_eq!(rep[0], lost[0].0);
    assert_eq!(rep[1], lost[1].0);
    // ...the others wait for tokens, each 7.5–22.5 min after the previous one was due.
    assert!(rep[2] > last, "third replacement at {} s, last loss at {last} s", rep[2]);
    let pace = [rep[2] - rep[0], rep[3] - rep[2]];
    assert!(pace.iter().all(|g| (TOKEN_MIN..=TOKEN_MAX).contains(g)), "{pace:?}");
    // Full and reachable again within 2 × 22.5 min of the first loss (plus the iburst answer).
    let full = r.pool_samples.iter().find(|p| p.t > rep[3] && p.reachable == 4).expect("full").t;
    println!(
        "members die at {at} s; retired {:?} s after; replaced {:?} s after; tokens {:.0} s and {:.0} s apart; 4 reachable again {:.0} s after the death",
        lost.iter().map(|l| (l.0 - at).round()).collect::<Vec<_>>(),
        rep.iter().map(|t| (t - at).round()).collect::<Vec<_>>(),
        pace[0],
        pace[1],
        full - at
    );
    assert!(full - first <= 2.0 * TOKEN_MAX + 32.0, "{} s", full - first);
    assert_no_thrash(&r);
    assert_lookups_needed(&r, 4);
    assert_bucket(&rep);
    // The clock never noticed.
    assert!(r.stats.max < 1e-3, "{:?}", r.stats);
}

#[test]
fn healthy_pool_is_never_churned() {
    let n = 20;
    let servers = vec![ServerSpec::good(LinkSpec::LAN); n];
    let mut dns = ScriptedResolver::default();
    dns.rotating(POOL, &addrs(n), 8, 300.0, DAY, 23);
    let mut s = Scenario::pool("healthy", POOL, 4, servers, client());
    s.duration = DAY;
    s.dns = Some(dns.clone());
    let r = run(&s, 3);
    assert!(!r.stalled);

    // The first fill: 8 probes, the first 4 to answer kept, the others pruned, within seconds.
    let fill = r.mobilized(MobilizeReason::PoolFill);
    let pruned = r.retired(DemobilizeReason::PrunedExtra);
    assert_eq!((fill.len(), pruned.len()), (8, 4));
    assert!(pruned.iter().all(|p| p.0 < 10.0), "{pruned:?}");
    let members: Vec<SocketAddr> =
        fill.iter().map(|m| m.1).filter(|a| !pruned.iter().any(|p| p.1 == *a)).collect();

    // Then nothing: no retirement, no replacement, no lookup, the same four members all day.
    assert!(losses(&r).is_empty(), "{:?}", losses(&r));
    assert!(r.mobilized(MobilizeReason::Replacement).is_empty());
    assert_eq!(r.lookups.len(), 1, "{:?}", r.lookups);
    assert!(r.source_events.iter().all(|(t, _)| *t < 10.0), "events after the fill");
    for p in r.pool_samples.iter().filter(|p| p.t >= 10.0) {
        assert_eq!((p.members, p.reachable, p.serving), (4, 4, 4), "{p:?}");
    }
    // The answers kept rotating away from the members: most did not list all four.
    let answers = &dns.script[POOL];
    let missing = answers
        .iter()
        .filter(|(_, a)| match a {
            DnsAnswer::Addrs { addrs, .. } => !members.iter().all(|m| addrs.contains(&m.ip())),
            DnsAnswer::Fail(_) => false,
        })
        .count();
    println!(
        "members {members:?}; {missing} of {} answers did not list all four; 0 retirements, 0 replacements, {} lookup",
        answers.len(),
        r.lookups.len()
    );
    assert!(missing * 10 >= answers.len() * 9, "{missing} of {}", answers.len());
    assert!(r.stats.max < 1e-3, "{:?}", r.stats);
}

/// Regression (found when the poll jitter became symmetric): a +50 ms pool member that joins
/// two good ones is a *survivor* while its filter fills (its interval is seconds wide), and
/// its iburst samples used to reach the discipline, reopen its outlier gate and take the clock
/// 50 ms off for 12 minutes (seed 1 of this week at maxpoll 8). Only survivors with a root
/// distance comparable to the system peer's now feed the discipline.
#[test]
fn fresh_falseticker_survivor_never_steers_the_clock() {
    // Seed 1 is the week that went wrong; the other 23 of 24 seeds checked by hand stayed
    // below 92 µs too (debug builds are slow: two seeds here).
    for seed in [1, 2] {
        let r = run(&week(8), seed);
        assert!(!r.stalled);
        assert!(r.stats.max < 1e-3, "seed {seed}: {:?}", r.stats);
        assert!(
            !r.retired(DemobilizeReason::Falseticker).is_empty(),
            "seed {seed}: the falseticker was never retired"
        );
    }
}
