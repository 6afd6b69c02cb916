//! The Linux-faithful kernel clock model (`rntp_sim::kernel::LinuxClock`): each adjtimex(2)
//! behaviour pinned with numbers. Sources: kernel/time/ntp.c and kernel/time/timekeeping.c
//! (Linux 6.x), adjtimex(2).

use rntp_proto::discipline::{ClockAction, ClockRate};
use rntp_proto::time::Instant;
use rntp_sim::kernel::modes::*;
use rntp_sim::kernel::status::*;
use rntp_sim::kernel::{
    AdjtimexError, LinuxClock, LinuxClockConfig, TimeState, Timespec, Timex, NTP_PHASE_LIMIT,
};

fn at(secs: f64) -> Instant {
    Instant::from_nanos((secs * 1e9).round() as u64)
}

/// A clock at HZ 250 whose `CLOCK_REALTIME` is on a whole second at true time zero, so
/// `second_overflow()` runs at t = 1, 2, 3 … s while no correction is running.
fn clock() -> LinuxClock {
    LinuxClock::new(LinuxClockConfig::default())
}

/// A clock starting at `sec` (Unix time), synchronized (`STA_UNSYNC` cleared, maxerror 0).
fn synced_clock_at(sec: i64) -> LinuxClock {
    let mut c = LinuxClock::new(LinuxClockConfig {
        start: Timespec { sec, nsec: 0 },
        ..LinuxClockConfig::default()
    });
    sync(&mut c, at(0.0), 0);
    c
}

fn sync(c: &mut LinuxClock, now: Instant, extra_status: i32) -> TimeState {
    let mut tx = Timex {
        modes: ADJ_STATUS | ADJ_MAXERROR,
        status: extra_status,
        maxerror: 0,
        ..Timex::default()
    };
    c.adjtimex(now, &mut tx).expect("status")
}

fn us(seconds: f64) -> f64 {
    seconds * 1e6
}

/// `a` and `b` within `tol`.
#[track_caller]
fn near(a: f64, b: f64, tol: f64) {
    assert!((a - b).abs() <= tol, "{a} is not within {tol} of {b}");
}

/// Model arithmetic is exact to 2^-32 ns per step; 1e-12 s covers any test here.
const EXACT: f64 = 1e-12;

#[test]
fn singleshot_slews_500us_per_second_so_50ms_takes_100_seconds() {
    let mut c = clock();
    assert_eq!(c.adjtime(at(0.0), 50_000), 0, "nothing was pending");
    // Nothing happens until the second boundary: the chunk is committed by second_overflow().
    assert_eq!(c.error_at(at(0.999)), 0.0);
    assert_eq!(c.adjtime_pending(at(0.999)), 50_000);
    // At t = 1 s the first 500 µs are moved into this second's tick length.
    assert_eq!(c.adjtime_pending(at(1.0)), 49_500);
    // From then on the clock gains exactly 500 µs per true second (rate 1.0005).
    near(c.error_at(at(50.0)), 0.024_5, EXACT);
    // time_adjust drops 500 µs per second_overflow(): 100 overflows for 50 ms, the first at
    // t = 1 s, the 100th at t = 1 + 99 / 1.0005 = 99.9505 s.
    let mut t = 99.95;
    assert_eq!(c.adjtime_pending(at(t)), 500);
    while c.adjtime_pending(at(t)) > 0 {
        t += 0.0001;
    }
    assert_eq!(c.second_overflows(), 100);
    near(t, 1.0 + 99.0 / 1.0005, 1e-4);
    // Each chunk runs for one CLOCK_REALTIME second, which at 500 ppm fast lasts 1/1.0005 s
    // of true time, so it delivers 499.75 µs: the 50 ms adjtime corrects 49.975 ms and is done
    // after 1 + 100 / 1.0005 = 100.95 s.
    let expected = 0.05 / 1.0005;
    near(expected, 0.049_975_012, 1e-9);
    assert!((c.error_at(at(100.94)) - expected).abs() > 1e-6, "still slewing at 100.94 s");
    near(c.error_at(at(100.96)), expected, EXACT);
    near(c.error_at(at(200.0)), expected, EXACT);
}

#[test]
fn a_new_adjtime_replaces_the_pending_slew_but_not_the_running_chunk() {
    let mut c = clock();
    c.adjtime(at(0.0), 10_000);
    // t = 1 s: +500 µs committed for this second; 9 500 µs still pending.
    // t = 1.5 s: slew the other way. The call returns what was still pending...
    assert_eq!(c.adjtime(at(1.5), -10_000), 9_500);
    assert_eq!(c.adjtime_pending(at(1.5)), -10_000);
    // ...and the +500 µs chunk keeps running until the second ends (t = 1 + 1/1.0005 s).
    assert!((us(c.error_at(at(1.99))) - 495.0).abs() < 0.01);
    let end = 1.0 + 1.0 / 1.0005;
    assert!((us(c.error_at(at(end))) - 499.750).abs() < 0.01, "{}", us(c.error_at(at(end))));
    // Only then does the clock slew back at 500 µs per second; that second, 500 ppm slow,
    // lasts 1/0.9995 = 1.0005 s.
    assert!((us(c.error_at(at(end + 1.0))) - (499.750 - 500.0)).abs() < 0.01);
    assert_eq!(c.adjtime_pending(at(end + 1.0)), -9_500);
    assert_eq!(c.adjtime_pending(at(end + 1.0006)), -9_000);
}

#[test]
fn adjtime_returns_what_was_pending() {
    let mut c = clock();
    c.adjtime(at(0.0), 10_000);
    assert_eq!(c.adjtime(at(1.5), -10_000), 9_500);
    assert_eq!(c.adjtime(at(2.5), 0), -9_500, "the second chunk (-500) was committed at ~2 s");
    // adjtime(0) cancels what is pending; the chunk of the current second still runs.
    assert_eq!(c.adjtime_pending(at(10.0)), 0);
}

#[test]
fn frequency_is_clamped_to_500ppm_and_resolves_1_65536_ppm() {
    let mut c = clock();
    assert_eq!(c.set_frequency_scaled(at(0.0), 600 << 16), Ok(500 << 16));
    near(c.error_at(at(1000.0)), 0.5, EXACT);
    let mut c = clock();
    assert_eq!(c.set_frequency_scaled(at(0.0), -(10_000 << 16)), Ok(-(500 << 16)));
    near(c.error_at(at(1000.0)), -0.5, EXACT);
    // The finest step, 1/65536 ppm = 0.0152587890625 ns/s, is applied exactly: after 10^6 s
    // the clock is 15 258.789 ns ahead (CLOCK_REALTIME reads whole ns: 15 258).
    let mut c = clock();
    assert_eq!(c.set_frequency_scaled(at(0.0), 1), Ok(1));
    near(c.error_at(at(1e6)), 15_258.789_062_5e-9, EXACT);
    let whole_ns = c.realtime_ns(at(1e6)) - 1_767_225_600_000_000_000 - 1_000_000_000_000_000;
    assert_eq!(whole_ns, 15_258);
    // ppm from f64 is rounded to scaled ppm as rntpd does on a real kernel.
    let mut c = clock();
    c.set_frequency_ppm(at(0.0), 12.345_678_9).unwrap();
    let (_, tx) = c.read(at(0.0));
    assert_eq!(tx.freq, 809_086, "12.3456789 * 65536 = 809 086.3");
    assert_eq!(tx.tolerance, 500 << 16);
}

#[test]
fn frequency_and_tick_changes_apply_immediately_mid_second() {
    let mut c = clock();
    c.set_tick(at(0.5), 10_100).unwrap();
    // +10 000 ppm from t = 0.5 s exactly, not from the next second.
    near(c.error_at(at(1.5)), 0.010, EXACT);
    assert_eq!(c.tick_usec(), 10_100);
    let mut c = clock();
    c.set_tick(at(0.5), 9_900).unwrap();
    near(c.error_at(at(1.5)), -0.010, EXACT);
    let mut c = clock();
    c.set_frequency_scaled(at(0.25), 100 << 16).unwrap();
    near(c.error_at(at(0.75)), 50e-6, EXACT);
}

#[test]
fn tick_outside_plus_minus_10_percent_is_rejected() {
    let mut c = clock();
    assert_eq!(c.set_tick(at(0.0), 11_001), Err(AdjtimexError::TickOutOfRange { tick: 11_001 }));
    assert_eq!(c.set_tick(at(0.0), 8_999), Err(AdjtimexError::TickOutOfRange { tick: 8_999 }));
    // The refused call changed nothing, not even other modes of the same request.
    let mut tx =
        Timex { modes: ADJ_TICK | ADJ_FREQUENCY, tick: 12_000, freq: 1 << 16, ..Timex::default() };
    assert!(c.adjtimex(at(0.0), &mut tx).is_err());
    assert_eq!(c.error_at(at(10.0)), 0.0);
    // The limits themselves are accepted: ±10 %.
    c.set_tick(at(10.0), 11_000).unwrap();
    near(c.error_at(at(11.0)), 0.1, EXACT);
    c.set_tick(at(11.0), 9_000).unwrap();
    near(c.error_at(at(12.0)), 0.0, EXACT);
}

#[test]
fn setoffset_steps_exactly_and_clears_the_ntp_state() {
    let mut c = clock();
    c.set_frequency_scaled(at(0.0), 10 << 16).unwrap();
    sync(&mut c, at(0.0), 0);
    c.adjtime(at(0.0), 5_000);
    let before = c.realtime_ns(at(3.3));
    let mono_before = c.monotonic_ns(at(3.3));
    // +1.234567891 s with ADJ_NANO.
    c.step_ns(at(3.3), 1_234_567_891).unwrap();
    assert_eq!(c.realtime_ns(at(3.3)) - before, 1_234_567_891);
    assert_eq!(c.monotonic_ns(at(3.3)), mono_before, "CLOCK_MONOTONIC does not step");
    // ntp_clear(): adjtime and the running chunk dropped, unsynchronized; frequency kept.
    assert_eq!(c.adjtime_pending(at(3.3)), 0);
    assert_eq!(c.tick_length(), c.tick_length_base());
    assert_eq!(c.read(at(3.3)).0, TimeState::Error);
    assert_eq!(c.maxerror(), NTP_PHASE_LIMIT);
    assert_eq!(c.read(at(3.3)).1.freq, 10 << 16);
    // A negative step is whole seconds plus a non-negative fraction: -0.5 s = {-1, 500 000 µs}.
    let before = c.realtime_ns(at(4.0));
    let mut tx =
        Timex { modes: ADJ_SETOFFSET, time_sec: -1, time_usec: 500_000, ..Timex::default() };
    c.adjtimex(at(4.0), &mut tx).unwrap();
    assert_eq!(c.realtime_ns(at(4.0)) - before, -500_000_000);
    // The returned time is read after the step; the earlier ADJ_SETOFFSET | ADJ_NANO left
    // STA_NANO set (process_adjtimex_modes()), so `time` is in ns.
    assert_ne!(tx.status & STA_NANO, 0);
    let returned = tx.time_sec as i128 * 1_000_000_000 + tx.time_usec as i128;
    assert_eq!(returned, before - 500_000_000);
    // The second boundary moves with the clock: the next second_overflow() comes when
    // CLOCK_REALTIME (now at rate 1 + 10 ppm, no chunk) reaches its next whole second.
    let frac = c.realtime(at(4.0)).nsec as f64 * 1e-9;
    let boundary = 4.0 + (1.0 - frac) / (1.0 + 10e-6);
    let n = c.second_overflows();
    c.realtime(at(boundary - 1e-6));
    assert_eq!(c.second_overflows(), n);
    c.realtime(at(boundary + 1e-6));
    assert_eq!(c.second_overflows(), n + 1);
}

#[test]
fn leap_insertion_repeats_the_last_second_of_the_day() {
    // 2016-12-31T23:59:50Z; the leap second is at the end of that day (1483228800).
    let mut c = synced_clock_at(1_483_228_790);
    assert_eq!(sync(&mut c, at(0.0), STA_INS), TimeState::Ok, "armed at the next overflow");
    assert_eq!(c.read(at(1.0)).0, TimeState::Ins);
    assert_eq!(c.realtime(at(9.5)), Timespec { sec: 1_483_228_799, nsec: 500_000_000 });
    // 23:59:60: the kernel sets the clock back one second; POSIX time repeats 23:59:59.
    let (state, tx) = c.read(at(10.5));
    assert_eq!(state, TimeState::Oop);
    assert_eq!((tx.time_sec, tx.time_usec), (1_483_228_799, 500_000));
    assert_eq!(tx.tai, 1);
    assert_eq!(c.error_at(at(10.5)), -1.0);
    // Then 00:00:00, TIME_WAIT while STA_INS is still set.
    assert_eq!(c.realtime(at(11.5)), Timespec { sec: 1_483_228_800, nsec: 500_000_000 });
    assert_eq!(c.read(at(11.5)).0, TimeState::Wait);
    // Clearing the bit returns to TIME_OK at the next overflow.
    sync(&mut c, at(11.5), 0);
    assert_eq!(c.read(at(11.9)).0, TimeState::Wait);
    assert_eq!(c.read(at(12.0)).0, TimeState::Ok);
    assert_eq!(c.tai(), 1);
}

#[test]
fn leap_deletion_skips_the_last_second_of_the_day() {
    let mut c = synced_clock_at(1_483_228_790);
    sync(&mut c, at(0.0), STA_DEL);
    assert_eq!(c.read(at(1.0)).0, TimeState::Del);
    assert_eq!(c.realtime(at(8.5)), Timespec { sec: 1_483_228_798, nsec: 500_000_000 });
    // 23:59:59 never shows: at its start the clock jumps to 00:00:00.
    assert_eq!(c.realtime(at(9.5)), Timespec { sec: 1_483_228_800, nsec: 500_000_000 });
    assert_eq!(c.read(at(9.5)).0, TimeState::Wait);
    assert_eq!(c.tai(), -1);
    assert_eq!(c.error_at(at(9.5)), 1.0);
}

#[test]
fn leap_bit_set_in_the_last_second_of_the_day_waits_for_the_next_day() {
    // second_overflow() arms the leap at the *next* second and schedules it for the end of the
    // day that second belongs to: set at 23:59:59.5, the leap is a day late.
    let mut c = synced_clock_at(1_483_228_799);
    sync(&mut c, at(0.5), STA_INS);
    c.realtime(at(2.0));
    assert_eq!(c.read(at(2.0)).0, TimeState::Ins);
    assert_eq!(c.error_at(at(2.0)), 0.0, "no leap at this midnight");
}

#[test]
fn a_step_disarms_a_pending_leap_second() {
    // ntp_clear() forgets ntp_next_leap_sec but leaves time_state at TIME_INS.
    let mut c = synced_clock_at(1_483_228_790);
    sync(&mut c, at(0.0), STA_INS);
    assert_eq!(c.read(at(1.5)).0, TimeState::Ins);
    c.step_ns(at(1.5), 1_000).unwrap();
    sync(&mut c, at(1.5), STA_INS);
    c.realtime(at(20.0));
    assert_eq!(c.time_state(), TimeState::Ins);
    near(c.error_at(at(20.0)), 1e-6, EXACT); // the leap did not happen
}

#[test]
fn status_bits_round_trip_and_read_only_bits_stay() {
    let mut c = clock();
    let (state, tx) = c.read(at(0.0));
    assert_eq!((state, tx.status), (TimeState::Error, STA_UNSYNC), "boot: unsynchronized");
    let rw = STA_PLL | STA_PPSFREQ | STA_PPSTIME | STA_FLL | STA_INS | STA_UNSYNC | STA_FREQHOLD;
    for bits in [rw, STA_FREQHOLD, STA_DEL, 0] {
        let mut tx = Timex { modes: ADJ_STATUS, status: bits, ..Timex::default() };
        c.adjtimex(at(0.0), &mut tx).unwrap();
        assert_eq!(tx.status, bits);
    }
    // Read-only bits cannot be set through ADJ_STATUS...
    let mut tx = Timex { modes: ADJ_STATUS, status: STA_NANO | STA_CLOCKERR, ..Timex::default() };
    assert_eq!(c.adjtimex(at(0.0), &mut tx), Ok(TimeState::Ok));
    assert_eq!(tx.status, 0);
    // ...STA_NANO comes from ADJ_NANO / ADJ_MICRO, and changes the units of `time`.
    let mut tx = Timex { modes: ADJ_NANO, ..Timex::default() };
    c.adjtimex(at(0.123_456_789), &mut tx).unwrap();
    assert_eq!((tx.status, tx.time_usec), (STA_NANO, 123_456_789));
    let mut tx = Timex { modes: ADJ_MICRO, ..Timex::default() };
    c.adjtimex(at(0.123_456_789), &mut tx).unwrap();
    assert_eq!((tx.status, tx.time_usec), (0, 123_456));
    // TIME_ERROR whenever STA_UNSYNC is set.
    assert_eq!(c.set_status(at(0.0), STA_UNSYNC), Ok(TimeState::Error));
    // Error bounds are clamped to 0..=16 s.
    let mut tx = Timex {
        modes: ADJ_MAXERROR | ADJ_ESTERROR,
        maxerror: -5,
        esterror: 1 << 40,
        ..Timex::default()
    };
    c.adjtimex(at(0.0), &mut tx).unwrap();
    assert_eq!((tx.maxerror, tx.esterror), (0, NTP_PHASE_LIMIT));
    // ADJ_TAI takes `constant` in 0..=100 000.
    let mut tx = Timex { modes: ADJ_TAI, constant: 37, ..Timex::default() };
    c.adjtimex(at(0.0), &mut tx).unwrap();
    assert_eq!(tx.tai, 37);
}

#[test]
fn frequency_tick_and_singleshot_add_up_as_the_kernel_sums_them() {
    // chrony's way on Linux: tick for the coarse part (100 ppm per µs of tick), frequency for
    // the rest; plus an adjtime() on top.
    let mut c = clock();
    c.set_tick(at(0.0), 10_001).unwrap(); // +100 ppm
    c.set_frequency_scaled(at(0.0), -(75 << 15)).unwrap(); // -37.5 ppm
    c.adjtime(at(0.0), 1_000); // two chunks of 500 µs
                               // tick_length * HZ = (10001 µs * 100 - 37.5 µs) << 32 exactly.
    assert_eq!(c.tick_length_base() * 250, 1_000_062_500 << 32);
    assert!((c.rate() - 62.5e-6).abs() < 1e-15);
    c.realtime(at(1.0));
    assert_eq!(c.tick_length() * 250, 1_000_562_500 << 32, "base + 500 µs chunk");
    assert!((c.rate() - 562.5e-6).abs() < 1e-15);
    // The chunks run for two CLOCK_REALTIME seconds at rate 1.0005625:
    // 62.5 ppm × 10 s + 1000 µs / 1.0005625.
    let expected = 62.5e-6 * 10.0 + 1e-3 / 1.000_562_5;
    near(c.error_at(at(10.0)), expected, EXACT);
    assert_eq!(c.adjtime_pending(at(10.0)), 0);
}

#[test]
fn the_oscillator_error_multiplies_with_the_kernel_rate() {
    let mut c = LinuxClock::new(LinuxClockConfig { oscillator_ppm: 20.0, ..Default::default() });
    assert!((c.error_at(at(100.0)) - 2e-3).abs() < 2e-9);
    // Compensated by -20 ppm in the kernel: (1 + 20e-6)(1 - 20e-6) - 1 = -4e-10.
    let mut c = LinuxClock::new(LinuxClockConfig { oscillator_ppm: 20.0, ..Default::default() });
    c.set_frequency_ppm(at(0.0), -20.0).unwrap();
    assert!((c.error_at(at(100.0)) + 40e-9).abs() < 2e-9, "{}", c.error_at(at(100.0)));
    // Wander: the caller changes the oscillator's error over time.
    c.set_oscillator_ppm(at(100.0), 21.0);
    assert!((c.error_at(at(200.0)) - (-40e-9 + 100.0 * (1.000_021 * 0.999_98 - 1.0))).abs() < 2e-9);
}

#[test]
fn discipline_actions_are_carried_out_as_rntpd_does_on_a_real_kernel() {
    let mut c = clock();
    let rate = ClockRate::from_ppm(12.345_678_9);
    c.apply(at(0.0), ClockAction::Rate(rate)).unwrap();
    let (_, tx) = c.read(at(0.0));
    assert_eq!((tx.freq, tx.tick), (809_086, 10_000));
    assert_eq!(c.adjtime_pending(at(0.0)), 0, "never adjtime()");
    // A fast slew goes through the tick, at once.
    let fast = ClockRate::from_ppm(83_333.333);
    c.apply(at(0.2), ClockAction::Rate(fast)).unwrap();
    assert_eq!(c.tick_usec(), 10_833);
    assert!((c.rate() - fast.ppm() * 1e-6).abs() < 1e-12, "{}", c.rate());
    let before = c.realtime_ns(at(0.5));
    c.apply(at(0.5), ClockAction::Step { offset: -0.25, rate }).unwrap();
    assert_eq!(c.realtime_ns(at(0.5)) - before, -250_000_000);
    assert_eq!(c.tick_usec(), 10_000, "the step's rate ends the slew");
    assert_eq!(c.read(at(0.5)).1.freq, 809_086);
    assert_eq!(c.read(at(0.5)).0, TimeState::Error, "a step sets STA_UNSYNC");
    c.apply(at(0.5), ClockAction::None).unwrap();
    c.apply(at(0.5), ClockAction::Panic { offset: 5000.0 }).unwrap();
    assert_eq!(c.realtime_ns(at(0.5)) - before, -250_000_000);
    // The status call: synchronized, a leap second armed, the error bounds.
    assert_eq!(c.set_sync_status(at(0.5), true, STA_INS, 1_000, 100), Ok(TimeState::Ok));
    assert_eq!(c.status() & (STA_UNSYNC | STA_INS), STA_INS);
    assert_eq!(c.maxerror(), 1_000);
}

#[test]
fn time_never_runs_backwards_for_the_model() {
    let mut c = clock();
    let a = c.realtime_ns(at(5.0));
    assert_eq!(c.realtime_ns(at(1.0)), a, "an earlier `now` reads as the latest one");
}

#[test]
fn error_at_an_earlier_now_reads_the_latest_state() {
    let mut c = clock();
    c.set_frequency_scaled(at(0.0), 100 << 16).unwrap();
    let late = c.error_at(at(5.0));
    assert_eq!(c.error_at(at(1.0)), late);
}
