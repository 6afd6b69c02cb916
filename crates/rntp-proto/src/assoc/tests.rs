//! Association tests in virtual time: a scripted server answers our requests.

use super::*;
use crate::rng::SplitMix64;
use crate::time::NtpDuration;

const REMOTE: &str = "127.0.1.1:123";

fn secs(s: f64) -> Instant {
    Instant::from_nanos((s * 1e9) as u64)
}

/// Wall clock of the client at virtual time `now`: an arbitrary 2026 date plus `now`.
fn wall(now: Instant) -> NtpTimestamp {
    NtpTimestamp::from_unix(1_795_675_301, 0)
        .add_duration(NtpDuration::from_secs_f64(now.secs_since(Instant::ZERO)))
}

struct Harness {
    assoc: Association,
    rng: SplitMix64,
    now: Instant,
}

impl Harness {
    fn new(config: AssocConfig) -> Self {
        let mut rng = SplitMix64::new(7);
        let assoc = Association::new(
            AssocId(1),
            REMOTE.parse().unwrap(),
            config,
            1e-7,
            Instant::ZERO,
            0.0,
            &mut rng,
        );
        Harness { assoc, rng, now: Instant::ZERO }
    }

    /// Advances through deadlines until one sends a request, and returns it (a deadline may
    /// only check something, like the end of a silent first burst).
    fn next_request(&mut self) -> (Instant, NtpHeader) {
        for _ in 0..4 {
            let due = self.assoc.poll_timeout().expect("association has a deadline");
            self.now = self.now.max(due);
            self.assoc.handle_timeout(self.now, &mut self.rng);
            if let Some(tx) = self.assoc.poll_transmit(wall(self.now), &mut self.rng) {
                assert_eq!(tx.remote, REMOTE.parse().unwrap());
                let req = PacketRepr::parse(&tx.payload).unwrap().header;
                return (self.now, req);
            }
        }
        panic!("no request in 4 deadlines");
    }

    /// Sends the next request and answers it (server in step, 1 ms away).
    fn exchange(&mut self) -> Instant {
        let (sent, req) = self.next_request();
        let (arrive, t4, bytes) = reply_to(&req, sent, 0.0, 0.001);
        self.assoc.handle_packet(arrive, t4, &bytes).unwrap();
        self.now = arrive;
        sent
    }

    fn events(&mut self) -> Vec<AssocEvent> {
        std::iter::from_fn(|| self.assoc.poll_event()).collect()
    }
}

/// A server `offset` seconds ahead of the client, with `one_way` seconds of delay each way.
fn reply_to(
    req: &NtpHeader,
    sent: Instant,
    offset: f64,
    one_way: f64,
) -> (Instant, NtpTimestamp, [u8; 48]) {
    let t2 = wall(sent).add_duration(NtpDuration::from_secs_f64(one_way + offset));
    let t3 = t2.add_duration(NtpDuration::from_secs_f64(10e-6));
    let arrive = sent.add_secs_f64(2.0 * one_way + 10e-6);
    let h = NtpHeader {
        leap: LeapIndicator::NoWarning,
        version: req.version,
        mode: Mode::Server,
        stratum: 2,
        poll: req.poll,
        precision: -20,
        root_delay: NtpShort::from_secs_f64(0.001),
        root_dispersion: NtpShort::from_secs_f64(0.001),
        reference_id: ReferenceId::from_bytes([127, 0, 0, 1]),
        reference_ts: t2,
        origin_ts: req.transmit_ts,
        receive_ts: t2,
        transmit_ts: t3,
    };
    (arrive, wall(arrive), h.to_bytes())
}

fn iburst() -> AssocConfig {
    AssocConfig { iburst: true, ..AssocConfig::default() }
}

#[test]
fn iburst_sends_eight_at_two_seconds_then_polls() {
    let mut h = Harness::new(iburst());
    let mut times = vec![];
    for _ in 0..9 {
        times.push(h.next_request().0.secs_since(Instant::ZERO));
    }
    for w in times[..8].windows(2) {
        assert!((w[1] - w[0] - 2.0).abs() < 1e-6, "{times:?}");
    }
    // After the burst: the 64 s poll, up to 1/16 early.
    let gap = times[8] - times[7];
    assert!((60.0..=64.0).contains(&gap), "{gap}");
}

#[test]
fn request_carries_random_nonce_not_our_clock() {
    let mut h = Harness::new(iburst());
    let (t, a) = h.next_request();
    let (_, b) = h.next_request();
    assert_ne!(a.transmit_ts, b.transmit_ts);
    assert_ne!(a.transmit_ts, wall(t));
    assert_eq!((a.mode, a.version, a.leap), (Mode::Client, 4, LeapIndicator::Unsynchronized));
}

#[test]
fn valid_reply_gives_rfc5905_offset_and_delay() {
    let mut h = Harness::new(AssocConfig::default());
    let (sent, req) = h.next_request();
    let (arrive, t4, bytes) = reply_to(&req, sent, 0.5, 0.002);
    assert_eq!(h.assoc.handle_packet(arrive, t4, &bytes), Ok(()));
    let ev = h.events();
    assert_eq!(ev[0], AssocEvent::Reachable);
    let AssocEvent::Sample(s) = ev[1] else { panic!("{ev:?}") };
    assert!((s.offset - 0.5).abs() < 1e-6, "{}", s.offset);
    assert!((s.delay - 0.004).abs() < 1e-6, "{}", s.delay);
    assert_eq!(h.assoc.reach(), 1);
    assert_eq!(h.assoc.state(), AssocState::Reachable);
    let snap = h.assoc.snapshot(arrive);
    assert_eq!(snap.server.unwrap().stratum, 2);
}

#[test]
fn duplicate_and_spoofed_replies_are_dropped() {
    let mut h = Harness::new(AssocConfig::default());
    let (sent, req) = h.next_request();
    let (arrive, t4, bytes) = reply_to(&req, sent, 0.0, 0.001);

    let mut spoof = req;
    spoof.transmit_ts = NtpTimestamp::from_bits(req.transmit_ts.to_bits() ^ 1);
    let (_, _, forged) = reply_to(&spoof, sent, 3.0, 0.001);
    assert_eq!(h.assoc.handle_packet(arrive, t4, &forged), Err(DropReason::BogusOrigin));

    assert_eq!(h.assoc.handle_packet(arrive, t4, &bytes), Ok(()));
    assert_eq!(h.assoc.handle_packet(arrive, t4, &bytes), Err(DropReason::Duplicate));
}

#[test]
fn late_reply_to_an_older_request_is_dropped() {
    let mut h = Harness::new(AssocConfig::default());
    let (sent, old) = h.next_request();
    let _ = h.next_request();
    let (arrive, t4, bytes) = reply_to(&old, sent, 0.0, 0.001);
    assert_eq!(h.assoc.handle_packet(h.now.max(arrive), t4, &bytes), Err(DropReason::BogusOrigin));
    assert_eq!(h.assoc.reach() & 1, 0);
}

#[test]
fn garbage_and_wrong_mode_are_dropped() {
    let mut h = Harness::new(AssocConfig::default());
    let (sent, req) = h.next_request();
    assert!(matches!(
        h.assoc.handle_packet(sent, wall(sent), &[0u8; 10]),
        Err(DropReason::Malformed(_))
    ));
    let (arrive, t4, mut bytes) = reply_to(&req, sent, 0.0, 0.001);
    bytes[0] = (bytes[0] & !0x07) | 3; // mode 3: a client request, not a reply
    assert_eq!(h.assoc.handle_packet(arrive, t4, &bytes), Err(DropReason::WrongMode));
}

#[test]
fn unsynchronized_server_gets_no_reach() {
    let mut h = Harness::new(AssocConfig::default());
    let (sent, req) = h.next_request();
    let (arrive, t4, mut bytes) = reply_to(&req, sent, 0.0, 0.001);
    bytes[0] |= 0xC0; // leap 3
    assert_eq!(h.assoc.handle_packet(arrive, t4, &bytes), Err(DropReason::Unsynchronized));
    assert_eq!(h.assoc.reach(), 0);
    assert_eq!(h.events(), vec![AssocEvent::Unsynchronized]);

    let (sent, req) = h.next_request();
    let (arrive, t4, mut bytes) = reply_to(&req, sent, 0.0, 0.001);
    bytes[1] = 16; // stratum 16
    assert_eq!(h.assoc.handle_packet(arrive, t4, &bytes), Err(DropReason::Unsynchronized));
    assert_eq!(h.assoc.snapshot(arrive).unsync_replies, 2);
}

fn kod(req: &NtpHeader, code: &[u8; 4]) -> [u8; 48] {
    NtpHeader {
        leap: LeapIndicator::Unsynchronized,
        version: 4,
        mode: Mode::Server,
        stratum: 0,
        poll: 10,
        precision: -20,
        root_delay: NtpShort::ZERO,
        root_dispersion: NtpShort::ZERO,
        reference_id: ReferenceId::from_bytes(*code),
        reference_ts: NtpTimestamp::ZERO,
        origin_ts: req.transmit_ts,
        receive_ts: NtpTimestamp::ZERO,
        transmit_ts: NtpTimestamp::ZERO,
    }
    .to_bytes()
}

#[test]
fn kod_rate_backs_off_and_cancels_burst() {
    let mut h = Harness::new(iburst());
    let (sent, req) = h.next_request();
    assert_eq!(h.assoc.handle_packet(sent, wall(sent), &kod(&req, b"RATE")), Ok(()));
    assert_eq!(h.events(), vec![AssocEvent::Kod(KissCode::Rate)]);
    assert_eq!(h.assoc.poll(), PollInterval::from_log2(7));
    assert_eq!(h.assoc.snapshot(sent).last_kod, Some(KissCode::Rate));
    // The rest of the burst is cancelled: the next request is a full poll later.
    let (next, _) = h.next_request();
    assert!(next.secs_since(sent) > 2.0, "burst continued after RATE");
}

#[test]
fn kod_deny_and_rstr_demobilize_with_reason() {
    for (code, reason) in
        [(b"DENY", DemobilizeReason::KodDeny), (b"RSTR", DemobilizeReason::KodRstr)]
    {
        let mut h = Harness::new(iburst());
        let (sent, req) = h.next_request();
        assert_eq!(h.assoc.handle_packet(sent, wall(sent), &kod(&req, code)), Ok(()));
        assert_eq!(h.assoc.state(), AssocState::Demobilized(reason));
        assert_eq!(h.assoc.poll_timeout(), None);
        assert!(h.events().contains(&AssocEvent::Demobilized(reason)));
        h.assoc.handle_timeout(secs(1e6), &mut h.rng);
        assert!(h.assoc.poll_transmit(wall(secs(1e6)), &mut h.rng).is_none());
    }
}

#[test]
fn spoofed_kod_is_ignored() {
    let mut h = Harness::new(iburst());
    let (sent, mut req) = h.next_request();
    req.transmit_ts = NtpTimestamp::from_bits(12345);
    assert_eq!(
        h.assoc.handle_packet(sent, wall(sent), &kod(&req, b"DENY")),
        Err(DropReason::BogusOrigin)
    );
    assert_eq!(h.assoc.state(), AssocState::Init);
}

#[test]
fn unreachable_after_eight_unanswered_polls_once() {
    let mut h = Harness::new(AssocConfig::default());
    let (sent, req) = h.next_request();
    let (arrive, t4, bytes) = reply_to(&req, sent, 0.0, 0.001);
    h.assoc.handle_packet(arrive, t4, &bytes).unwrap();
    h.events();
    let mut unreachable_at = vec![];
    for i in 1..=20 {
        h.next_request();
        if h.events().contains(&AssocEvent::Unreachable) {
            unreachable_at.push(i);
        }
    }
    // Reach shifts out the last reply after 8 more polls.
    assert_eq!(unreachable_at, vec![8]);
    assert_eq!(h.assoc.state(), AssocState::Unreachable);
    assert_eq!(h.assoc.reach(), 0);
    // A dead server is polled less often.
    assert!(h.assoc.poll() > PollInterval::DEFAULT_MIN);
    assert!(h.assoc.poll() <= PollInterval::DEFAULT_MAX);
}

#[test]
fn spurious_timeout_is_a_noop() {
    let mut h = Harness::new(AssocConfig::default());
    h.next_request();
    let due = h.assoc.poll_timeout().unwrap();
    h.assoc.handle_timeout(secs(1.0).min(due), &mut h.rng);
    assert!(h.assoc.poll_transmit(wall(secs(1.0)), &mut h.rng).is_none());
    assert_eq!(h.assoc.poll_timeout(), Some(due));
}

#[test]
fn change_remote_keeps_id_and_resets_measurements() {
    let mut h = Harness::new(AssocConfig::default());
    let (sent, req) = h.next_request();
    let (arrive, t4, bytes) = reply_to(&req, sent, 0.0, 0.001);
    h.assoc.handle_packet(arrive, t4, &bytes).unwrap();
    let new: SocketAddr = "127.0.1.9:123".parse().unwrap();
    h.assoc.change_remote(arrive, new);
    assert_eq!(h.assoc.id(), AssocId(1));
    assert_eq!(h.assoc.remote(), new);
    assert_eq!(h.assoc.reach(), 0);
    assert!(h.assoc.estimate(arrive).is_none());
    // The old server's late reply no longer matches anything.
    assert_eq!(h.assoc.handle_packet(arrive, t4, &bytes), Err(DropReason::BogusOrigin));
}

#[test]
fn filter_prefers_low_delay_sample_across_polls() {
    let mut h = Harness::new(AssocConfig::default());
    for (i, one_way) in [0.010, 0.001, 0.020, 0.005].into_iter().enumerate() {
        let (sent, req) = h.next_request();
        // Queueing delay on the way out only: the offset error is half the extra delay.
        let (arrive, t4, bytes) = reply_to(&req, sent, 0.1 + (one_way - 0.001) / 2.0, one_way);
        h.assoc.handle_packet(arrive, t4, &bytes).unwrap();
        assert_eq!(h.assoc.reach().count_ones() as usize, i + 1);
    }
    let e = h.assoc.estimate(h.now).unwrap();
    assert!((e.offset - 0.1).abs() < 1e-6, "{e:?}");
}

#[test]
fn timer_firing_within_the_slack_counts_as_due() {
    let mut h = Harness::new(AssocConfig::default());
    h.next_request();
    let due = h.assoc.poll_timeout().unwrap();
    let early = Instant::from_nanos(due.as_nanos() - 500_000);
    h.assoc.handle_timeout(early, &mut h.rng);
    assert!(h.assoc.poll_transmit(wall(early), &mut h.rng).is_some(), "0.5 ms early is due");
    let due = h.assoc.poll_timeout().unwrap();
    let too_early = Instant::from_nanos(due.as_nanos() - 2_000_000);
    h.assoc.handle_timeout(too_early, &mut h.rng);
    assert!(h.assoc.poll_transmit(wall(too_early), &mut h.rng).is_none(), "2 ms early is not");
}

fn fixed(log2: i8) -> AssocConfig {
    AssocConfig {
        minpoll: PollInterval::from_log2(log2),
        maxpoll: PollInterval::from_log2(log2),
        ..AssocConfig::default()
    }
}

#[test]
fn silent_first_burst_is_unreachable_two_seconds_after_its_last_request() {
    let mut h = Harness::new(iburst());
    let mut last = Instant::ZERO;
    for _ in 0..8 {
        last = h.next_request().0;
    }
    assert!(h.events().is_empty());
    let check = h.assoc.poll_timeout().unwrap();
    assert!((check.secs_since(last) - 2.0).abs() < 1e-6);
    h.assoc.handle_timeout(check, &mut h.rng);
    assert!(h.assoc.poll_transmit(wall(check), &mut h.rng).is_none(), "a check, not a request");
    assert_eq!(h.events(), vec![AssocEvent::Unreachable]);
    assert_eq!(h.assoc.state(), AssocState::Unreachable);
    // Polling goes on at the regular pace (a server that comes up later is found).
    let (next, _) = h.next_request();
    assert!((60.0..=64.0).contains(&next.secs_since(last)), "{}", next.secs_since(last));
}

#[test]
fn first_burst_answered_late_is_not_unreachable() {
    let mut h = Harness::new(iburst());
    let mut sent = vec![];
    for _ in 0..8 {
        sent.push(h.next_request());
    }
    // The last request is answered 1 s later, before the check.
    let (t, req) = sent[7];
    let (arrive, t4, bytes) = reply_to(&req, t, 0.0, 0.5);
    h.assoc.handle_packet(arrive, t4, &bytes).unwrap();
    assert_eq!(h.events()[0], AssocEvent::Reachable);
    // No check is pending: the next deadline is the regular poll.
    let next = h.assoc.poll_timeout().unwrap();
    assert!(next.secs_since(t) >= 60.0, "{}", next.secs_since(t));
}

#[test]
fn missing_replies_are_probed_at_64_s_whatever_the_poll() {
    for log2 in [6i8, 8, 10] {
        let mut h = Harness::new(fixed(log2));
        for _ in 0..8 {
            h.exchange();
        }
        let poll = 2f64.powi(i32::from(log2));
        // A reply keeps the regular interval.
        let a = h.exchange();
        let b = h.exchange();
        assert!(b.secs_since(a) >= poll * 31.0 / 32.0 - 1e-6, "poll {poll}: {}", b.secs_since(a));
        h.events();
        // The server dies: the first unanswered request, then probes until unreachable.
        let (first, _) = h.next_request();
        let mut unreachable = None;
        let mut times = vec![first];
        while unreachable.is_none() {
            let (t, _) = h.next_request();
            times.push(t);
            if h.events().contains(&AssocEvent::Unreachable) {
                unreachable = Some(t);
            }
        }
        let took = unreachable.unwrap().secs_since(first);
        for w in times.windows(2) {
            let gap = w[1].secs_since(w[0]);
            assert!((62.0 - 1e-6..=66.0 + 1e-6).contains(&gap), "poll {poll}: gap {gap}");
        }
        assert!(took <= 7.0 * 66.0 + 1e-6, "poll {poll}: unreachable after {took} s");
        // Dead: the probing stops, polling backs off from the configured interval.
        let (t, _) = h.next_request();
        assert!(t.secs_since(unreachable.unwrap()) >= poll * 31.0 / 32.0 - 1e-6);
    }
}

#[test]
fn probes_respect_a_rate_kiss_o_death() {
    let mut h = Harness::new(AssocConfig {
        minpoll: PollInterval::from_log2(6),
        maxpoll: PollInterval::from_log2(10),
        ..AssocConfig::default()
    });
    let (sent, req) = h.next_request();
    h.assoc.handle_packet(sent, wall(sent), &kod(&req, b"RATE")).unwrap();
    for _ in 0..3 {
        h.exchange();
    }
    h.assoc.set_poll_advice(h.now, PollInterval::from_log2(10));
    assert_eq!(h.assoc.poll(), PollInterval::from_log2(7), "own rule: still at the RATE floor");
    let (a, _) = h.next_request();
    let (b, _) = h.next_request();
    assert!(b.secs_since(a) >= 120.0, "probe faster than the server allows: {}", b.secs_since(a));
}

#[test]
fn discipline_advice_caps_the_poll_and_takes_effect_at_once() {
    let mut h = Harness::new(AssocConfig {
        minpoll: PollInterval::from_log2(6),
        maxpoll: PollInterval::from_log2(10),
        ..AssocConfig::default()
    });
    // 8 full registers of good polls per step: 64 -> 128 -> 256.
    while h.assoc.poll() < PollInterval::from_log2(8) {
        h.exchange();
    }
    let opened = h.exchange();
    assert_eq!(h.assoc.poll(), PollInterval::from_log2(8));
    // A longer suggestion does not lengthen it.
    h.assoc.set_poll_advice(h.now, PollInterval::from_log2(10));
    assert_eq!(h.assoc.poll(), PollInterval::from_log2(8));
    // A shorter one shortens it, and the next poll comes one new interval after the last.
    h.assoc.set_poll_advice(h.now, PollInterval::from_log2(6));
    assert_eq!(h.assoc.poll(), PollInterval::from_log2(6));
    let next = h.assoc.poll_timeout().unwrap();
    assert!(next.secs_since(opened) <= 64.0 + 1e-6, "{}", next.secs_since(opened));
    // Never below minpoll.
    h.assoc.set_poll_advice(h.now, PollInterval::from_log2(2));
    assert_eq!(h.assoc.poll(), PollInterval::from_log2(6));
}

#[test]
fn poll_shortens_to_minpoll_after_an_outage() {
    let mut h = Harness::new(AssocConfig {
        minpoll: PollInterval::from_log2(6),
        maxpoll: PollInterval::from_log2(10),
        ..AssocConfig::default()
    });
    while h.assoc.poll() < PollInterval::from_log2(9) {
        h.exchange();
    }
    // An outage long enough to be unreachable and back off.
    let mut n = 0;
    while h.assoc.state() != AssocState::Unreachable {
        h.next_request();
        n += 1;
        assert!(n < 20);
    }
    for _ in 0..3 {
        h.next_request();
    }
    assert_eq!(h.assoc.poll(), PollInterval::from_log2(10));
    let back = h.exchange();
    assert_eq!(h.assoc.poll(), PollInterval::from_log2(6));
    let next = h.assoc.poll_timeout().unwrap();
    assert!(next.secs_since(back) <= 64.0 + 1e-6, "{}", next.secs_since(back));
}

#[test]
fn a_step_drops_replies_in_flight_and_restarts_the_filter() {
    let mut h = Harness::new(AssocConfig {
        minpoll: PollInterval::from_log2(6),
        maxpoll: PollInterval::from_log2(10),
        iburst: false,
        ..AssocConfig::default()
    });
    while h.assoc.poll() < PollInterval::from_log2(8) {
        h.exchange();
    }
    h.events();
    let (sent, req) = h.next_request();
    h.assoc.handle_step(sent.add_secs_f64(0.0005));
    assert!(h.assoc.estimate(sent).is_none(), "filter restarted");
    assert_eq!(h.assoc.poll(), PollInterval::from_log2(6));
    let (arrive, t4, bytes) = reply_to(&req, sent, 0.0, 0.001);
    assert_eq!(h.assoc.handle_packet(arrive, t4, &bytes), Err(DropReason::ClockStep));
    assert_eq!(h.assoc.reach() & 1, 1, "the server did answer");
    assert!(h.events().iter().all(|e| !matches!(e, AssocEvent::Sample(_))));
    // The next poll comes at minpoll, not before the driver executed the step.
    let next = h.assoc.poll_timeout().unwrap();
    assert!((2.0..=64.0 + 1e-6).contains(&next.secs_since(sent)));
    // A request made before the step but sent after it: dropped too.
    let due = h.assoc.poll_timeout().unwrap();
    h.assoc.handle_timeout(due, &mut h.rng);
    h.assoc.handle_step(due);
    let tx = h.assoc.poll_transmit(wall(due), &mut h.rng).unwrap();
    let req = PacketRepr::parse(&tx.payload).unwrap().header;
    let (arrive, t4, bytes) = reply_to(&req, due, 0.0, 0.001);
    assert_eq!(h.assoc.handle_packet(arrive, t4, &bytes), Err(DropReason::ClockStep));
    // Requests after the step are measured again.
    h.now = arrive;
    h.exchange();
    assert!(h.events().iter().any(|e| matches!(e, AssocEvent::Sample(_))));
}
