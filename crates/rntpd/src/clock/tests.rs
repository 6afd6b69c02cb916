//! The clock executor against the fake clock: request by request, and driven by a real control
//! mode [`Node`] polling a scripted server (the requests the daemon would execute, on the
//! kernel state a fake keeps). Nothing here touches a real clock.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use rntp_proto::assoc::AssocConfig;
use rntp_proto::node::{ClockMode, ConfiguredSource, Local, Node, NodeConfig};
use rntp_proto::rng::SplitMix64;
use rntp_proto::source::{AddrFamily, SourceKind, SourceSpec, Target};
use rntp_proto::time::{NtpDuration, NtpShort};
use rntp_proto::wire::{Mode, NtpHeader, ReferenceId};

use super::fake::{Call, FakeClock};
use super::*;

#[test]
fn executor_maps_requests_to_clock_calls() {
    let mut fake = FakeClock::default();
    let fast = ClockRate { tick_usec: 10_833, freq_scaled: 2_184_533 };
    let base = ClockRate::from_ppm(-12.5);
    let requests = [
        ClockRequest::Step { offset: -0.5, rate: base },
        ClockRequest::Rate(fast),
        ClockRequest::Rate(base),
        ClockRequest::Status {
            synchronized: true,
            leap: LeapIndicator::AddSecond,
            max_error: 0.01,
            est_error: 0.001,
        },
        ClockRequest::SaveDrift { freq_ppm: 1.0 },
    ];
    for r in &requests {
        assert_eq!(execute(&mut fake, r), Ok(()));
    }
    assert_eq!(
        fake.calls,
        vec![
            Call::Step(-0.5, base),
            Call::Rate(fast),
            Call::Rate(base),
            Call::Status(true, KernelLeap::Insert),
        ]
    );
    // The kernel units reach the clock unchanged: -12.5 ppm is -819 200 scaled ppm.
    assert_eq!((fake.rate.tick_usec, fake.rate.freq_scaled), (10_000, -819_200));
    assert_eq!(fake.leap, KernelLeap::Insert);
}

#[test]
fn executor_reports_the_os_error() {
    let mut fake = FakeClock { fail: true, ..FakeClock::default() };
    let step = ClockRequest::Step { offset: 1.0, rate: ClockRate::NOMINAL };
    let err = execute(&mut fake, &step).unwrap_err();
    assert!(err.contains("not permitted"), "{err}");
    assert!(execute(&mut fake, &ClockRequest::Rate(ClockRate::from_ppm(3.0))).is_err());
    assert!(fake.calls.is_empty());
    assert_eq!(fake.rate, ClockRate::NOMINAL);
}

#[test]
fn a_step_clears_the_kernel_status_as_linux_does() {
    let mut fake = FakeClock::default();
    let armed = ClockRequest::Status {
        synchronized: true,
        leap: LeapIndicator::DeleteSecond,
        max_error: 0.0,
        est_error: 0.0,
    };
    execute(&mut fake, &armed).unwrap();
    assert_eq!((fake.synchronized, fake.leap), (true, KernelLeap::Delete));
    execute(&mut fake, &ClockRequest::Step { offset: 0.25, rate: ClockRate::NOMINAL }).unwrap();
    assert_eq!((fake.synchronized, fake.leap), (false, KernelLeap::None));
}

/// Unix time of the rig's true time zero: 2026-12-31 12:00 UTC, the day of a (hypothetical)
/// leap second, so a leap announced by the server is armed in the kernel today.
const RIG_EPOCH: i64 = 1_798_718_400;

/// A control-mode node polling one scripted server over a 1 ms path, its requests executed on
/// a [`FakeClock`] whose effect on the wall clock the rig integrates exactly as the node's
/// model says (true time is the node's `now`).
struct Rig {
    node: Node,
    fake: FakeClock,
    /// True time (s).
    t: f64,
    /// Clock error (s, clock minus true time) at `t`.
    error: f64,
    server_offset: f64,
    server_leap: LeapIndicator,
    /// Replies in flight: (arrival time, bytes).
    replies: Vec<(f64, Vec<u8>)>,
    remote: SocketAddr,
}

impl Rig {
    fn new(server_offset: f64, server_leap: LeapIndicator, drift_ppm: f64) -> Rig {
        let remote = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 123);
        let source = ConfiguredSource {
            spec: SourceSpec {
                kind: SourceKind::Server,
                target: Target::Addr(remote.ip()),
                port: 123,
                assoc: AssocConfig { iburst: true, ..AssocConfig::default() },
                family: AddrFamily::Any,
                prefer: false,
                noselect: false,
                key: None,
            },
            origin: "test".into(),
        };
        let mut config = NodeConfig {
            sources: vec![source],
            clock: ClockMode::Control,
            initial_freq_ppm: Some(drift_ppm),
            ..NodeConfig::default()
        };
        config.select.minclock = 1;
        let node = Node::new(Instant::ZERO, config, Box::new(SplitMix64::new(1)));
        Rig {
            node,
            fake: FakeClock::default(),
            t: 0.0,
            error: 0.0,
            server_offset,
            server_leap,
            replies: Vec::new(),
            remote,
        }
    }

    fn now(&self) -> Instant {
        Instant::from_nanos((self.t * 1e9).round() as u64)
    }

    fn wall_at(&self, t: f64, error: f64) -> NtpTimestamp {
        NtpTimestamp::from_unix(RIG_EPOCH, 0).add_duration(NtpDuration::from_secs_f64(t + error))
    }

    fn advance(&mut self, t: f64) {
        self.error += self.fake.rate.correction() * (t - self.t);
        self.t = t;
    }

    /// Sends what the node wants sent and executes its clock requests on the fake.
    fn drain(&mut self) {
        let now = self.now();
        while let Some(tx) = self.node.poll_transmit(now, self.wall_at(self.t, self.error)) {
            let Ok(req) = NtpHeader::parse(&tx.payload) else { continue };
            let t2 = self.t + 0.001 + self.server_offset;
            let reply = NtpHeader {
                leap: self.server_leap,
                version: req.version,
                mode: Mode::Server,
                stratum: 1,
                poll: req.poll,
                precision: -20,
                root_delay: NtpShort::ZERO,
                root_dispersion: NtpShort::from_secs_f64(1e-4),
                reference_id: ReferenceId::from_bytes(*b"GPS\0"),
                reference_ts: self.wall_at(t2 - 16.0, 0.0),
                origin_ts: req.transmit_ts,
                receive_ts: self.wall_at(t2, 0.0),
                transmit_ts: self.wall_at(t2 + 5e-6, 0.0),
            };
            self.replies.push((self.t + 0.002, reply.to_bytes().to_vec()));
        }
        while let Some(request) = self.node.poll_clock() {
            let before = self.fake.stepped;
            let result = execute(&mut self.fake, &request);
            self.error += self.fake.stepped - before;
            self.node.handle_clock_result(now, result);
        }
        while self.node.poll_event().is_some() {}
    }

    fn run_until(&mut self, until: f64) {
        self.drain();
        loop {
            let timer = self.node.poll_timeout().map(|d| d.secs_since(Instant::ZERO));
            let reply = self.replies.iter().map(|r| r.0).reduce(f64::min);
            let Some(t) = [timer, reply].into_iter().flatten().reduce(f64::min) else { break };
            if t > until {
                break;
            }
            self.advance(t.max(self.t));
            let now = self.now();
            if let Some(i) = self.replies.iter().position(|r| r.0 <= self.t) {
                let (_, bytes) = self.replies.remove(i);
                let t4 = self.wall_at(self.t, self.error);
                let id = self.node.associations(now)[0].1.id;
                self.node.handle_packet(now, Local::Client(id), self.remote, t4, &bytes);
            } else {
                self.node.handle_timeout(now);
            }
            self.drain();
        }
        self.advance(until);
    }
}

/// 50 ms is slewed through the tick at the maximum rate (83 333 ppm), then the rate returns to
/// the frequency, which is the drift file's to the last scaled-ppm unit.
#[test]
fn fast_slew_through_the_tick_then_back_to_the_frequency() {
    let mut rig = Rig::new(0.05, LeapIndicator::NoWarning, -1.0);
    rig.run_until(20.0);
    let base = ClockRate::from_ppm(-1.0);
    assert_eq!(rig.fake.calls.first(), Some(&Call::Rate(base)), "the drift file's frequency first");
    assert_eq!(base.freq_scaled, -65_536);
    let fast =
        rig.fake.calls.iter().position(
            |c| matches!(c, Call::Rate(r) if r.tick_usec >= 10_800 && r.tick_usec <= 11_000),
        );
    let fast = fast.expect("a slew through the tick");
    let back = rig.fake.calls[fast..].iter().position(|c| *c == Call::Rate(base));
    assert!(back.is_some(), "back to the frequency: {:?}", rig.fake.calls);
    assert_eq!(rig.fake.rate.tick_usec, 10_000);
    assert!(rig.fake.calls.iter().all(|c| !matches!(c, Call::Step(..))), "{:?}", rig.fake.calls);
    // The wall clock is within 1 ms of the server at the end (it started 50 ms behind).
    assert!((rig.error - 0.05).abs() < 1e-3, "error {}", rig.error);
    // Status: synchronized, no leap.
    assert!(rig.fake.synchronized);
    assert_eq!(rig.fake.leap, KernelLeap::None);
}

/// 0.5 s is stepped (one call that also sets the rate), and because a step clears the
/// kernel's status and disarms its leap second, the node sets the status again right after,
/// with the leap second the server announces armed.
#[test]
fn a_step_is_followed_by_the_status_with_the_leap_armed_again() {
    let mut rig = Rig::new(0.5, LeapIndicator::AddSecond, 0.0);
    rig.run_until(30.0);
    let step = rig.fake.calls.iter().position(|c| matches!(c, Call::Step(..)));
    let step = step.expect("a step");
    let Call::Step(offset, _) = rig.fake.calls[step] else { unreachable!() };
    assert!((offset - 0.5).abs() < 1e-3, "{offset}");
    assert_eq!(
        rig.fake.calls.get(step + 1),
        Some(&Call::Status(true, KernelLeap::Insert)),
        "{:?}",
        rig.fake.calls
    );
    assert_eq!(rig.fake.leap, KernelLeap::Insert);
    assert!(rig.fake.synchronized);
    assert!((rig.error - 0.5).abs() < 1e-3, "error {}", rig.error);
}
