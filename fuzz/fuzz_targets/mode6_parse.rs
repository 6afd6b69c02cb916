//! Fuzzes the mode 6 codec and responder: parsing never panics and whatever parses re-emits to
//! the same message; answering fixed data never panics, every reply datagram is a well-formed
//! response of at most 480 bytes, and under the non-local budget the answer is never longer
//! than the request. The same input as READ_MRU parameters (`ntpq -c mrulist`): parsing and
//! nonce checks never panic, and an answer over a list of 300 clients fits the `frags` asked.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rntp_proto::mode6::mru::{self, NonceKey};
use rntp_proto::mode6::MAX_DATA_LEN;
use rntp_proto::mode6::{
    AssocId, AssocSummary, ClockSource, ControlRepr, FilterStages, Mode6Data, Mode6Responder,
    PeerStatus, PeerVars, ReplyBudget, Selection, SystemStatus, SystemVars, MAX_DATAGRAM_LEN,
    MAX_FRAGMENTS,
};
use rntp_proto::server::MruList;
use rntp_proto::time::{Instant, NtpTimestamp};
use rntp_proto::wire::{LeapIndicator, ReferenceId};

/// A node with 300 associations (ids 1..=300: READSTAT needs three fragments), a named
/// system peer and a pool row.
struct Node;

impl Mode6Data for Node {
    fn system(&self) -> SystemVars<'_> {
        SystemVars {
            status: SystemStatus { source: ClockSource::Ntp, ..SystemStatus::default() },
            version: "rntpd fuzz",
            processor: "x86_64",
            system: "Linux",
            leap: LeapIndicator::NoWarning,
            stratum: 2,
            precision: -20,
            root_delay: 0.01,
            root_dispersion: 0.02,
            reference_id: ReferenceId::from_bytes([10, 0, 0, 1]),
            reference_time: NtpTimestamp::from_bits(1 << 63),
            clock: NtpTimestamp::from_bits(1 << 63),
            peer: 1,
            tc: 6,
            mintc: 3,
            offset: f64::NAN,
            frequency_ppm: -1.0e300,
            sys_jitter: 0.0,
            clk_jitter: f64::INFINITY,
            clk_wander_ppm: 0.0,
            leap_table: None,
        }
    }

    fn associations(&self) -> Vec<AssocSummary> {
        (1..=300).map(|id| AssocSummary { id, status: PeerStatus::default() }).collect()
    }

    fn peer(&self, id: AssocId) -> Option<PeerVars<'_>> {
        match id {
            1 => {
                let mut p = PeerVars::pool("ntp.example.org", 6);
                p.srcadr = Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 123));
                p.status.selection = Selection::SysPeer;
                p.filter = Some(FilterStages { delay: [1e9; 8], ..FilterStages::default() });
                Some(p)
            }
            2..=300 => Some(PeerVars::pool("pool.example.org", 10)),
            _ => None,
        }
    }
}

/// 300 clients, IPv4 and IPv6, some seen several times.
fn clients() -> &'static MruList {
    static LIST: OnceLock<MruList> = OnceLock::new();
    LIST.get_or_init(|| {
        let mut list = MruList::new(256, 1);
        for i in 0..300u32 {
            let ip = if i % 3 == 0 {
                IpAddr::V6(std::net::Ipv6Addr::from(0x2001_0db8_u128 << 96 | u128::from(i)))
            } else {
                IpAddr::V4(Ipv4Addr::from(0xC000_0200 + i % 200))
            };
            let rx = NtpTimestamp::from_bits(u64::from(0xE000_0000 + i) << 32);
            list.record(SocketAddr::new(ip, 123), rx, 0x23, (i % 0x500) as u16);
        }
        list
    })
}

fuzz_target!(|data: &[u8]| {
    let parsed = mru::parse_query(data);
    if let Some(nonce) = parsed.nonce {
        let client = IpAddr::V4(Ipv4Addr::LOCALHOST);
        assert!(
            !NonceKey::new(1).check(nonce, client, Instant::from_nanos(1 << 40))
                || nonce.len() == 24
        );
    }
    if let Ok(q) = parsed.query {
        let now = NtpTimestamp::from_bits(0xE000_1000 << 32);
        if let Ok(body) = mru::body(&q, clients(), now, "000000000000000000000000") {
            assert!(
                body.len() <= q.frags * MAX_DATA_LEN,
                "{} octets for {} frags",
                body.len(),
                q.frags
            );
        }
    }

    if let Ok(repr) = ControlRepr::parse(data) {
        let mut out = vec![0u8; repr.buffer_len()];
        let len = repr.emit(&mut out).expect("a parsed message emits");
        assert_eq!(len, data.len());
        assert_eq!(ControlRepr::parse(&out).expect("re-parses"), repr);
        let _ = repr.mac();
    }

    let responder = Mode6Responder::new();
    for budget in [ReplyBudget::Unlimited, ReplyBudget::AtMost(data.len())] {
        let replies = responder.respond(data, &Node, budget);
        let total = replies.total_len();
        let mut sum = 0;
        let mut count = 0;
        for datagram in replies {
            assert!(datagram.len() <= MAX_DATAGRAM_LEN);
            let reply = ControlRepr::parse(&datagram).expect("replies parse");
            assert!(reply.header.response);
            sum += datagram.len();
            count += 1;
        }
        assert!(count <= MAX_FRAGMENTS);
        assert_eq!(sum, total);
        if let ReplyBudget::AtMost(limit) = budget {
            assert!(sum <= limit, "{sum}-byte answer to a {limit}-byte request");
        }
    }
});
