//! Leap seconds end to end, on the Linux kernel model: announced to clients, armed in the kernel
//! only on the leap's day, inserted by the kernel at midnight; from the sources (end of June or
//! December only) or from a leap table; and `leapsmear`.
//!
//! The scenarios start at 22:00 UTC on 2026-12-31 (a hypothetical leap second at its end). The
//! simulated servers do not leap themselves (true time has no leap seconds), so after midnight
//! the host is a second behind them; these tests look at what happens up to just after it.

use rntp_proto::steer::leap::{days_from_civil, LeapConfig, LeapTable};
use rntp_proto::wire::LeapIndicator;
use rntp_sim::kernel::status::{STA_INS, STA_UNSYNC};
use rntp_sim::kernel::TimeState;
use rntp_sim::{run, ClientSpec, LinkSpec, RunResult, Scenario};

/// 2026-12-31 22:00 UTC.
fn start() -> i64 {
    days_from_civil(2026, 12, 31) * 86_400 + 22 * 3_600
}

fn scenario(servers_leap: LeapIndicator, offset: f64, secs: f64) -> Scenario {
    let client = ClientSpec {
        freq_ppm: 1.0,
        wander: 1e-9,
        initial_offset: offset,
        drift_file_ppm: Some(-1.0),
    };
    let mut s = Scenario::three_servers("leap", LinkSpec::LAN, client);
    s.start_unix = start();
    s.duration = secs;
    s.settle = 0.0;
    s.downstream = Some(ClientSpec { initial_offset: 0.0, ..client });
    for srv in &mut s.servers {
        srv.leap = servers_leap;
    }
    s
}

fn table() -> LeapTable {
    let at = |y, m| days_from_civil(y, m, 1) * 86_400;
    LeapTable::new(&[(at(2015, 7), 36), (at(2017, 1), 37), (at(2027, 1), 38)], 0, at(2028, 1))
        .expect("a valid table")
}

fn served_leap(r: &RunResult) -> (LeapIndicator, LeapIndicator) {
    let host0 = r.system.expect("host 0 serves").leap;
    let seen = r
        .downstream
        .as_ref()
        .and_then(|d| d.upstream.as_ref())
        .and_then(|a| a.server)
        .expect("the downstream host hears host 0")
        .leap;
    (host0, seen)
}

/// Servers announce the leap; it is the last day of December: clients are told, the kernel is
/// armed (after the start-up step cleared it), and at midnight it inserts the second.
#[test]
fn a_leap_from_the_sources_is_announced_armed_and_inserted() {
    let add = LeapIndicator::AddSecond;
    // 23:59:00, with a 0.5 s step at start-up (the kernel's status is set again after it).
    let r = run(&scenario(add, 0.5, 7_140.0), 1);
    assert_eq!(r.steps, 1);
    assert_eq!(served_leap(&r), (add, add));
    let k = r.kernel.expect("linux model");
    assert_eq!(k.status & (STA_INS | STA_UNSYNC), STA_INS, "{k:?}");
    assert_eq!(k.time_state, TimeState::Ins);
    assert_eq!(k.tai, 0);
    // 00:00:30: inserted.
    let r = run(&scenario(add, 0.5, 7_230.0), 1);
    let k = r.kernel.expect("linux model");
    assert_eq!(k.tai, 1, "{k:?}");
    assert!(matches!(k.time_state, TimeState::Wait | TimeState::Ok), "{k:?}");
}

/// A leap table names the leap even though no server announces it; the sources' warning is not
/// believed in a month that is not June or December.
#[test]
fn a_leap_table_wins_and_sources_only_count_in_june_and_december() {
    let add = LeapIndicator::AddSecond;
    let none = LeapIndicator::NoWarning;
    let mut s = scenario(none, 0.0, 7_140.0);
    s.leap = LeapConfig { table: Some(table()), smear: None };
    let r = run(&s, 2);
    assert_eq!(served_leap(&r).0, add);
    assert_eq!(r.kernel.expect("linux model").status & STA_INS, STA_INS);

    // 2027-03-31: a server that announces a leap is not believed.
    let mut s = scenario(add, 0.0, 3_600.0);
    s.start_unix = days_from_civil(2027, 3, 31) * 86_400 + 22 * 3_600;
    let r = run(&s, 3);
    assert_eq!(served_leap(&r), (none, none));
    assert_eq!(r.kernel.expect("linux model").status & STA_INS, 0);
}

/// `leapsmear`: clients are told no leap (they get smeared time instead), while the kernel still
/// inserts the second into the system clock.
#[test]
fn a_smearing_server_announces_nothing_and_the_kernel_still_leaps() {
    let none = LeapIndicator::NoWarning;
    let mut s = scenario(LeapIndicator::AddSecond, 0.0, 7_140.0);
    s.leap = LeapConfig { table: Some(table()), smear: Some(3_600.0) };
    let r = run(&s, 4);
    assert_eq!(served_leap(&r), (none, none));
    assert_eq!(r.kernel.expect("linux model").status & STA_INS, STA_INS);
}
