//! Fuzzes the mode 6 codec and responder: parsing never panics and whatever parses re-emits to
//! the same message; answering fixed data never panics, every reply datagram is a well-formed
//! response of at most 480 bytes, and under the non-local budget the answer is never longer
//! than the request.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use libfuzzer_sys::fuzz_target;
use rntp_proto::mode6::{
    AssocId, AssocSummary, ClockSource, ControlRepr, FilterStages, Mode6Data, Mode6Responder,
    PeerStatus, PeerVars, ReplyBudget, Selection, SystemStatus, SystemVars, MAX_DATAGRAM_LEN,
    MAX_FRAGMENTS,
};
use rntp_proto::time::NtpTimestamp;
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

fuzz_target!(|data: &[u8]| {
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
