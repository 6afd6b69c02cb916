//! DNS load benchmark (virtual time): how many lookups a name costs per day with the default
//! re-resolution policy, over a simulated week, for
//! * one healthy `server NAME`, for several TTLs (and how often its address changes while the
//!   answer still contains it: never);
//! * one `pool NAME` (`maxsources 4`, with and without `iburst`) over a name with 1, 2, 4, 8
//!   or 60 addresses, every server healthy: the pool never gets more than the name has, and
//!   must then wait like a healthy name instead of asking every minute;
//! * a name whose every lookup fails (SERVFAIL, or no answer at all), before and after it ever
//!   resolved: the retry backoff, and the queries it sends with the daemon's resolver
//!   settings.
//!
//! Run: `cargo run --release -p rntp-proto --example dns_load`
//! Targets (issues "Hostnames as first-class state" and 14): at most 24 and at least 1 lookup
//! per healthy name per day; zero changes of a healthy server's address; no warning for a
//! small pool; at most 2 queries per type per failed attempt.

use std::net::{IpAddr, Ipv4Addr};

use rntp_proto::assoc::{AssocConfig, AssocEvent};
use rntp_proto::rng::SplitMix64;
use rntp_proto::source::{
    AddrFamily, ResolveError, ResolvePolicy, Resolved, SourceAction, SourceEvent, SourceKind,
    SourceManager, SourceSpec, Target,
};
use rntp_proto::time::Instant;

const DAY: f64 = 86_400.0;
const WEEK: f64 = 7.0 * DAY;

/// Queries of one type that one failed lookup sends to one name server, with rntpd's resolver
/// settings (`crates/rntpd/src/dns.rs`, measured against a fake DNS server by its tests
/// `failures_cost_one_query_per_type` and `a_silent_server_gets_at_most_two_copies_per_type`):
/// SERVFAIL is not retried inside a lookup; an unanswered UDP query is sent at most twice.
const SERVFAIL_QUERIES_PER_TYPE: u64 = 1;
const TIMEOUT_QUERIES_PER_TYPE: u64 = 2;

fn main() {
    println!("policy: {:?}\n", ResolvePolicy::default());
    let mut all_ok = true;

    println!("server NAME, healthy, round-robin answer of 3 addresses that always lists it");
    println!("{:>10} {:>12} {:>14} {:>8}", "TTL (s)", "lookups/day", "address moves", "target");
    for ttl in [30.0, 150.0, 3_600.0, 86_400.0] {
        let run = week(SourceKind::Server, 3, ttl, false, Answer::Ok);
        let per_day = run.lookups as f64 / 7.0;
        let ok = (1.0..=24.0).contains(&per_day) && run.moves == 0;
        all_ok &= ok;
        println!("{ttl:>10} {per_day:>12.1} {:>14} {:>8}", run.moves, verdict(ok));
    }

    println!("\npool NAME maxsources 4, every server healthy, TTL 300 s");
    println!(
        "{:>10} {:>7} {:>9} {:>12} {:>9} {:>8}",
        "addresses", "iburst", "members", "lookups/day", "warnings", "target"
    );
    for n in [1u8, 2, 4, 8, 60] {
        for iburst in [false, true] {
            let kind = SourceKind::Pool { maxsources: 4 };
            let run = week(kind, n, 300.0, iburst, Answer::Ok);
            let per_day = run.lookups as f64 / 7.0;
            let ok = per_day <= 24.0 && run.warnings == 0;
            all_ok &= ok;
            println!(
                "{n:>10} {:>7} {:>9} {per_day:>12.1} {:>9} {:>8}",
                if iburst { "yes" } else { "no" },
                run.members,
                run.warnings,
                verdict(ok)
            );
        }
    }

    println!("\nserver NAME whose every lookup fails (A and AAAA, one name server)");
    println!(
        "{:>22} {:>14} {:>12} {:>18} {:>8}",
        "failure", "before/after", "lookups/day", "queries/lookup/type", "target"
    );
    for (label, answer, per_type) in [
        ("SERVFAIL", Answer::Fail(ResolveError::ServFail), SERVFAIL_QUERIES_PER_TYPE),
        ("no answer (timeout)", Answer::Fail(ResolveError::Timeout), TIMEOUT_QUERIES_PER_TYPE),
    ] {
        for (when, first_ok) in [("never resolved", false), ("after success", true)] {
            let answer =
                if first_ok { Answer::OkThen(Box::new(answer.clone())) } else { answer.clone() };
            let run = week(SourceKind::Server, 3, 3_600.0, false, answer);
            let per_day = run.lookups as f64 / 7.0;
            let ok = per_type <= 2;
            all_ok &= ok;
            println!("{label:>22} {when:>14} {per_day:>12.1} {per_type:>18} {:>8}", verdict(ok));
        }
    }
    println!(
        "(the failure backoff doubles from 2 s, or 60 s once addresses are known, up to 1 h: \
         about 25 lookups a day in the long run, as retries come up to 10 % early)"
    );
    println!("\n{}", if all_ok { "all targets met" } else { "some targets missed" });
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}

/// What the scripted DNS says.
#[derive(Debug, Clone)]
enum Answer {
    /// The addresses, in round-robin order.
    Ok,
    /// Always this failure.
    Fail(ResolveError),
    /// The first lookup succeeds, every later one fails so.
    OkThen(Box<Answer>),
}

/// What a week cost.
#[derive(Debug, Default)]
struct Week {
    lookups: u64,
    moves: u32,
    warnings: u32,
    members: usize,
}

/// A week of one source over a name with `n` addresses (TTL `ttl`); every association it
/// mobilizes answers at once.
fn week(kind: SourceKind, n: u8, ttl: f64, iburst: bool, answer: Answer) -> Week {
    let mut rng = SplitMix64::new(1);
    let mut m = SourceManager::new(ResolvePolicy::default(), 10);
    let spec = SourceSpec {
        kind,
        target: Target::Name("ntp.example".into()),
        port: 123,
        assoc: AssocConfig { iburst, ..AssocConfig::default() },
        family: AddrFamily::Any,
        prefer: false,
        noselect: false,
    };
    let start = Instant::ZERO;
    let Ok(id) = m.add(start, spec, &mut rng) else { return Week::default() };
    let addrs: Vec<IpAddr> =
        (1..=u32::from(n)).map(|i| IpAddr::V4(Ipv4Addr::from(0xC000_0200 + i))).collect();
    let mut now = start;
    let mut run = Week::default();
    let mut rotate = 0usize;
    let mut answered = 0u32;
    loop {
        let mut busy = false;
        while let Some(action) = m.poll_action() {
            busy = true;
            match action {
                SourceAction::Resolve { .. } => {
                    answered += 1;
                    let fail = match &answer {
                        Answer::Ok => None,
                        Answer::Fail(e) => Some(e.clone()),
                        Answer::OkThen(then) if answered > 1 => match then.as_ref() {
                            Answer::Fail(e) => Some(e.clone()),
                            _ => None,
                        },
                        Answer::OkThen(_) => None,
                    };
                    let result = match fail {
                        Some(e) => Err(e),
                        None => {
                            // The server rotates the order, as round-robin DNS does.
                            rotate += 1;
                            let mut list = addrs.clone();
                            list.rotate_left(rotate % addrs.len());
                            Ok(Resolved { addrs: list, valid_until: now.add_secs_f64(ttl) })
                        }
                    };
                    m.handle_resolved(now, id, result, &mut rng);
                }
                SourceAction::Mobilize { assoc, .. } => {
                    m.handle_assoc_event(now, assoc, &AssocEvent::Reachable, &mut rng);
                }
                SourceAction::Move { .. } => run.moves += 1,
                SourceAction::Demobilize { .. } => {}
            }
        }
        while let Some(event) = m.poll_event() {
            busy = true;
            if matches!(event, SourceEvent::NoFreeAddress { .. }) {
                run.warnings += 1;
            }
        }
        if busy {
            continue;
        }
        let Some(next) = m.poll_timeout() else { break };
        if next.secs_since(start) > WEEK {
            break;
        }
        now = next;
        m.handle_timeout(now, &mut rng);
    }
    let snap = m.snapshot();
    run.lookups = snap.first().map_or(0, |s| s.queries);
    run.members = snap.first().map_or(0, |s| s.assocs.len());
    run
}
