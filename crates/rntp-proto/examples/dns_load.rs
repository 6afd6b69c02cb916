//! DNS load benchmark (virtual time): how many lookups one `server NAME` costs per day with the
//! default re-resolution policy, for several TTLs, over a simulated week; and how often a
//! healthy server's address changes when the answer still contains it (target: never).
//!
//! Run: `cargo run --release -p rntp-proto --example dns_load`
//! Target (issue "Hostnames as first-class state"): at most 24 and at least 1 lookup per name
//! per day; zero changes of a healthy server's address.

use std::net::{IpAddr, Ipv4Addr};

use rntp_proto::assoc::AssocConfig;
use rntp_proto::rng::SplitMix64;
use rntp_proto::source::{
    AddrFamily, ResolvePolicy, Resolved, SourceAction, SourceKind, SourceManager, SourceSpec,
    Target,
};
use rntp_proto::time::Instant;

const WEEK: f64 = 7.0 * 86_400.0;

fn main() {
    println!("policy: {:?}", ResolvePolicy::default());
    println!(
        "{:>10} {:>14} {:>12} {:>14} {:>8}",
        "TTL (s)", "lookups/week", "lookups/day", "address moves", "target"
    );
    let mut all_ok = true;
    for ttl in [30.0, 150.0, 3_600.0, 86_400.0] {
        let (lookups, moves) = week(ttl, 1);
        let per_day = lookups as f64 / 7.0;
        let ok = (1.0..=24.0).contains(&per_day) && moves == 0;
        all_ok &= ok;
        println!(
            "{ttl:>10} {lookups:>14} {per_day:>12.1} {moves:>14} {:>8}",
            if ok { "met" } else { "MISSED" }
        );
    }
    println!("{}", if all_ok { "all targets met" } else { "some targets missed" });
}

/// A week of one healthy `server NAME` whose round-robin answer always contains its address.
fn week(ttl: f64, seed: u64) -> (u64, u32) {
    let mut rng = SplitMix64::new(seed);
    let mut m = SourceManager::new(ResolvePolicy::default(), 10);
    let spec = SourceSpec {
        kind: SourceKind::Server,
        target: Target::Name("ntp.example".into()),
        port: 123,
        assoc: AssocConfig::default(),
        family: AddrFamily::Any,
        prefer: false,
        noselect: false,
    };
    let start = Instant::ZERO;
    let Ok(id) = m.add(start, spec, &mut rng) else { return (0, 0) };
    let addrs: Vec<IpAddr> = (1..=3).map(|i| IpAddr::V4(Ipv4Addr::new(192, 0, 2, i))).collect();
    let mut now = start;
    let mut moves = 0;
    let mut rotate = 0usize;
    loop {
        while let Some(action) = m.poll_action() {
            match action {
                SourceAction::Resolve { .. } => {
                    // The server rotates the order, as round-robin DNS does.
                    rotate += 1;
                    let mut answer = addrs.clone();
                    answer.rotate_left(rotate % addrs.len());
                    let valid_until = now.add_secs_f64(ttl);
                    m.handle_resolved(
                        now,
                        id,
                        Ok(Resolved { addrs: answer, valid_until }),
                        &mut rng,
                    );
                }
                SourceAction::Move { .. } => moves += 1,
                _ => {}
            }
        }
        let Some(next) = m.poll_timeout() else { break };
        if next.secs_since(start) > WEEK {
            break;
        }
        now = next;
        m.handle_timeout(now, &mut rng);
    }
    let lookups = m.snapshot().first().map_or(0, |s| s.queries);
    (lookups, moves)
}
