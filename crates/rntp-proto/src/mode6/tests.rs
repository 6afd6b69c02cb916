//! Responder tests: every opcode, every error and drop path, fragmentation, the reply budget,
//! and properties over arbitrary input.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use proptest::prelude::*;

use super::*;
use crate::server::RestrictFlags;
use crate::time::NtpTimestamp;
use crate::wire::{LeapIndicator, ReferenceId};

/// A node with `n` associations (ids 100, 101, ...): the first a named system peer, the rest
/// candidates by address.
struct Node {
    n: u16,
    leap: LeapIndicator,
}

fn node(n: u16) -> Node {
    Node { n, leap: LeapIndicator::NoWarning }
}

impl Mode6Data for Node {
    fn system(&self) -> SystemVars<'_> {
        SystemVars {
            status: SystemStatus {
                source: ClockSource::Ntp,
                event_count: 2,
                last_event: SystemEvent::ClockSync,
            },
            version: "rntpd 0.1.0",
            processor: "x86_64",
            system: "Linux/6.1.0",
            leap: self.leap,
            stratum: 2,
            precision: -23,
            root_delay: 0.001,
            root_dispersion: 0.002,
            reference_id: ReferenceId::from_bytes([192, 0, 2, 1]),
            reference_time: NtpTimestamp::from_bits(0xe9b1_c2d3_8000_0000),
            clock: NtpTimestamp::from_bits(0xe9b1_c2e3_0000_0000),
            peer: 100,
            tc: 6,
            mintc: 3,
            offset: -0.000_25,
            frequency_ppm: 1.5,
            sys_jitter: 0.000_1,
            clk_jitter: 0.000_2,
            clk_wander_ppm: 0.003,
            leap_table: Some(LeapTable {
                tai: 37,
                leapsec_unix: 1_483_228_800,
                expire_unix: 1_798_416_000,
            }),
        }
    }

    fn associations(&self) -> Vec<AssocSummary> {
        (0..self.n)
            .map(|i| AssocSummary { id: 100 + i, status: self.peer(100 + i).unwrap().status })
            .collect()
    }

    fn peer(&self, id: AssocId) -> Option<PeerVars<'_>> {
        if !(100..100 + self.n).contains(&id) {
            return None;
        }
        let first = id == 100;
        let mut p = PeerVars::pool("", 6);
        p.status = PeerStatus {
            configured: true,
            reachable: true,
            selection: if first { Selection::SysPeer } else { Selection::Candidate },
            ..PeerStatus::default()
        };
        p.srcadr = Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, id as u8)), 123));
        p.srchost = first.then_some("ntp.example.org");
        p.stratum = 1;
        p.reference_id = ReferenceId::from_bytes(*b"GPS\0");
        p.offset = 0.001;
        p.filter = Some(FilterStages::default());
        Some(p)
    }
}

fn request(version: u8, op: u8, seq: u16, assoc: u16, data: &[u8]) -> Vec<u8> {
    let mut buf = vec![(version << 3) | 6, op];
    buf.extend_from_slice(&seq.to_be_bytes());
    buf.extend_from_slice(&[0, 0]);
    buf.extend_from_slice(&assoc.to_be_bytes());
    buf.extend_from_slice(&[0, 0]);
    buf.extend_from_slice(&(data.len() as u16).to_be_bytes());
    buf.extend_from_slice(data);
    while buf.len() % 4 != 0 {
        buf.push(0);
    }
    buf
}

fn ask(req: &[u8], data: &Node) -> (Outcome, Vec<Vec<u8>>) {
    let replies = Mode6Responder::new().respond(req, data, ReplyBudget::Unlimited);
    let outcome = replies.outcome();
    (outcome, replies.collect())
}

/// Reassembles an answer, checking every fragment's header against the request.
fn reassemble(req: &[u8], datagrams: &[Vec<u8>]) -> (u16, Vec<u8>) {
    let q = ControlRepr::parse(req).unwrap();
    let mut body = Vec::new();
    let mut status = 0;
    for (i, d) in datagrams.iter().enumerate() {
        assert!(d.len() <= MAX_DATAGRAM_LEN && d.len() % 4 == 0);
        let r = ControlRepr::parse(d).unwrap();
        assert!(r.header.response && !r.header.error);
        assert_eq!(r.header.more, i + 1 < datagrams.len());
        assert_eq!(usize::from(r.header.offset), body.len());
        assert_eq!(r.header.sequence, q.header.sequence);
        assert_eq!(r.header.association_id, q.header.association_id);
        assert_eq!(r.header.opcode, q.header.opcode);
        assert_eq!(r.header.version, q.header.version);
        assert!(r.trailer.is_empty());
        body.extend_from_slice(r.data);
        status = r.header.status;
    }
    (status, body)
}

fn error_of(datagrams: &[Vec<u8>]) -> ErrorCode {
    assert_eq!(datagrams.len(), 1);
    assert_eq!(datagrams[0].len(), HEADER_LEN);
    let r = ControlRepr::parse(&datagrams[0]).unwrap();
    assert!(r.header.response && r.header.error && !r.header.more);
    assert!(r.data.is_empty());
    ErrorCode::from_status_word(r.header.status)
}

fn text(body: &[u8]) -> &str {
    core::str::from_utf8(body).unwrap()
}

#[test]
fn readstat_lists_associations_with_status_words() {
    let req = request(2, 1, 9, 0, b"");
    let (outcome, replies) = ask(&req, &node(3));
    assert_eq!(outcome, Outcome::Answered { opcode: Opcode::ReadStatus, fragments: 1 });
    let (status, body) = reassemble(&req, &replies);
    assert_eq!(status, 0x0625);
    assert_eq!(body, [0, 100, 0x96, 0x00, 0, 101, 0x94, 0x00, 0, 102, 0x94, 0x00]);
    // The system leap indicator is in every reply's first byte; the version is echoed.
    let mut leaping = node(1);
    leaping.leap = LeapIndicator::AddSecond;
    let (_, replies) = ask(&req, &leaping);
    assert_eq!(replies[0][0], (1 << 6) | (2 << 3) | 6);
}

#[test]
fn long_answers_are_fragmented_as_ntpd() {
    // 200 associations: 800 octets, 468 + 332.
    let req = request(4, 1, 1, 0, b"");
    let (outcome, replies) = ask(&req, &node(200));
    assert_eq!(outcome, Outcome::Answered { opcode: Opcode::ReadStatus, fragments: 2 });
    assert_eq!(replies[0].len(), HEADER_LEN + MAX_DATA_LEN);
    assert_eq!(replies[1].len(), HEADER_LEN + 332);
    let (_, body) = reassemble(&req, &replies);
    assert_eq!(body.len(), 800);
    // Beyond 32 fragments: refused with NTPsec's "no resources" code.
    let (outcome, replies) = ask(&req, &node(4000));
    assert_eq!(outcome, Outcome::Error { opcode: Opcode::ReadStatus, code: ErrorCode::Permission });
    assert_eq!(error_of(&replies), ErrorCode::Permission);
}

#[test]
fn system_variables_by_default_and_by_name() {
    let req = request(2, 2, 3, 0, b"");
    let (_, replies) = ask(&req, &node(1));
    let (status, body) = reassemble(&req, &replies);
    assert_eq!(status, 0x0625);
    let body = text(&body);
    assert!(body.starts_with(
        "version=\"rntpd 0.1.0\", processor=\"x86_64\", system=\"Linux/6.1.0\", leap=0,"
    ));
    assert!(body.contains("tai=37,"), "{body}");
    assert!(body.ends_with("leapsec=201701010000, expire=202612280000\r\n"), "{body}");
    for item in [
        "stratum=2",
        "precision=-23",
        "rootdelay=1.000",
        "rootdisp=2.000",
        "refid=192.0.2.1",
        "reftime=0xe9b1c2d3.80000000",
        "clock=0xe9b1c2e3.00000000",
        "peer=100",
        "tc=6",
        "mintc=3",
        "offset=-0.250000",
        "frequency=1.500",
        "sys_jitter=0.100000",
        "clk_jitter=0.200000",
        "clk_wander=0.003000",
    ] {
        assert!(body.contains(item), "no {item} in {body}");
    }
    // ntpd's line discipline: ",\r\n" before a line (without its comma) reaches 72.
    for line in body.split("\r\n") {
        assert!(line.len() <= 72, "{line:?}");
    }

    // Names: request order, duplicates kept, blanks and empty items skipped, values ignored.
    let req = request(2, 2, 4, 0, b" sys_jitter ,,offset=5,offset");
    let (_, replies) = ask(&req, &node(1));
    let (_, body) = reassemble(&req, &replies);
    assert_eq!(text(&body), "sys_jitter=0.100000, offset=-0.250000, offset=-0.250000\r\n");

    // An unknown name fails the whole request.
    let req = request(2, 2, 5, 0, b"offset,bogus");
    let (outcome, replies) = ask(&req, &node(1));
    assert_eq!(
        outcome,
        Outcome::Error { opcode: Opcode::ReadVariables, code: ErrorCode::UnknownVariable }
    );
    assert_eq!(error_of(&replies), ErrorCode::UnknownVariable);
    assert_eq!(ControlRepr::parse(&replies[0]).unwrap().header.status, 0x0500);
}

#[test]
fn peer_variables_by_default_and_by_name() {
    let req = request(2, 2, 7, 100, b"");
    let (_, replies) = ask(&req, &node(2));
    let (status, body) = reassemble(&req, &replies);
    assert_eq!(status, 0x9600);
    let body = text(&body);
    assert!(
        body.starts_with("srcadr=192.0.2.100, srcport=123, srchost=\"ntp.example.org\",\r\n"),
        "{body}"
    );
    for item in
        ["refid=GPS", "reach=0x0", "hmode=3", "offset=1.000000", "xleave=0.000", "filtdisp= 0.00"]
    {
        assert!(body.contains(item), "no {item} in {body}");
    }
    assert!(!body.contains("xmt=") && !body.contains("config="), "{body}");

    // Table order whatever the request's, each once; srchost of an unnamed source is empty;
    // the silent names are accepted and send nothing.
    let req = request(2, 2, 8, 101, b"offset,stratum,offset,srchost,org,xmt,config");
    let (_, replies) = ask(&req, &node(2));
    let (_, body) = reassemble(&req, &replies);
    assert_eq!(text(&body), "stratum=1, offset=1.000000, xmt=0x00000000.00000000, config=1\r\n");
    // Nothing to send at all: no text, no trailing CRLF.
    let req = request(2, 2, 8, 101, b"srchost");
    let (outcome, replies) = ask(&req, &node(2));
    assert_eq!(outcome, Outcome::Answered { opcode: Opcode::ReadVariables, fragments: 1 });
    assert_eq!(reassemble(&req, &replies).1, b"");

    let (_, replies) = ask(&request(2, 2, 9, 100, b"stratum,nosuch"), &node(2));
    assert_eq!(error_of(&replies), ErrorCode::UnknownVariable);
    let (outcome, replies) = ask(&request(2, 2, 9, 555, b""), &node(2));
    assert_eq!(
        outcome,
        Outcome::Error { opcode: Opcode::ReadVariables, code: ErrorCode::BadAssociation }
    );
    assert_eq!(error_of(&replies), ErrorCode::BadAssociation);

    // READSTAT of one association: its default variables, like READVAR.
    let rv = reassemble(&request(2, 2, 1, 100, b""), &ask(&request(2, 2, 1, 100, b""), &node(2)).1);
    let rs = reassemble(&request(2, 1, 1, 100, b""), &ask(&request(2, 1, 1, 100, b""), &node(2)).1);
    assert_eq!(rv, rs);
}

#[test]
fn other_opcodes_get_ntpds_answers() {
    let n = node(2);
    // UNSPEC: the status word, no data; BADASSOC for an unknown association.
    let req = request(2, 0, 1, 0, b"");
    let (_, replies) = ask(&req, &n);
    assert_eq!(reassemble(&req, &replies), (0x0625, Vec::new()));
    let req = request(2, 0, 1, 101, b"");
    assert_eq!(reassemble(&req, &ask(&req, &n).1), (0x9400, Vec::new()));
    assert_eq!(error_of(&ask(&request(2, 0, 1, 7, b""), &n).1), ErrorCode::BadAssociation);

    for (op, code) in [
        (3, ErrorCode::Permission),
        (4, ErrorCode::BadAssociation),
        (5, ErrorCode::BadOpcode),
        (6, ErrorCode::BadOpcode),
        (7, ErrorCode::BadOpcode),
        (8, ErrorCode::Permission),
        (9, ErrorCode::BadOpcode),
        (10, ErrorCode::BadOpcode),
        (11, ErrorCode::Permission),
        (12, ErrorCode::BadOpcode),
        (13, ErrorCode::BadOpcode),
        (31, ErrorCode::BadOpcode),
    ] {
        let (outcome, replies) = ask(&request(2, op, 1, 0, b"x=1"), &n);
        assert_eq!(outcome, Outcome::Error { opcode: Opcode::from_bits(op), code }, "op {op}");
        assert_eq!(error_of(&replies), code, "op {op}");
        assert_eq!(replies[0][1], 0xC0 | op);
    }
}

#[test]
fn malformed_requests_are_dropped_or_get_badfmt() {
    let n = node(1);
    let ok = request(2, 2, 1, 0, b"offset");
    let drop = |bytes: &[u8], reason: DropReason| {
        let (outcome, replies) = ask(bytes, &n);
        assert_eq!(outcome, Outcome::Dropped(reason), "{bytes:02x?}");
        assert!(replies.is_empty());
    };
    drop(&ok[..11], DropReason::TooShort);
    drop(&[], DropReason::TooShort);
    let mut b = ok.clone();
    b[0] = (2 << 3) | 3;
    drop(&b, DropReason::NotControl);
    for bit in [0x80, 0x40, 0x20] {
        let mut b = ok.clone();
        b[1] |= bit;
        drop(&b, DropReason::NotARequest);
    }
    let mut b = ok.clone();
    b[9] = 4;
    drop(&b, DropReason::FragmentedRequest);
    for v in [0, 5, 7] {
        let mut b = ok.clone();
        b[0] = (v << 3) | 6;
        drop(&b, DropReason::UnsupportedVersion);
    }

    // Reply-worthy format errors, as ntpd: count beyond the datagram, count above 468,
    // length not a multiple of 4.
    let mut b = ok.clone();
    b[11] = 200;
    assert_eq!(error_of(&ask(&b, &n).1), ErrorCode::BadFormat);
    let mut b = request(2, 2, 1, 0, &[b'a'; 468]);
    b[10..12].copy_from_slice(&469u16.to_be_bytes());
    b.extend_from_slice(&[0; 4]);
    assert_eq!(error_of(&ask(&b, &n).1), ErrorCode::BadFormat);
    let mut b = ok.clone();
    b.push(0);
    assert_eq!(error_of(&ask(&b, &n).1), ErrorCode::BadFormat);
    // A trailer (MAC or padding) is ignored.
    let mut b = ok.clone();
    b.extend_from_slice(&[0; 24]);
    assert_eq!(ask(&b, &n).1, ask(&ok, &n).1);
}

#[test]
fn the_budget_refuses_instead_of_amplifying() {
    let n = node(1);
    let responder = Mode6Responder::new();
    let req = request(2, 2, 1, 0, b"offset");
    let full: usize = responder.respond(&req, &n, ReplyBudget::Unlimited).map(|d| d.len()).sum();
    assert!(full > req.len());

    let replies = responder.respond(&req, &n, ReplyBudget::AtMost(req.len()));
    assert_eq!(replies.outcome(), Outcome::Refused { opcode: Opcode::ReadVariables, wanted: full });
    assert_eq!(replies.total_len(), HEADER_LEN);
    assert_eq!(error_of(&replies.collect::<Vec<_>>()), ErrorCode::Permission);

    let replies = responder.respond(&req, &n, ReplyBudget::AtMost(HEADER_LEN - 1));
    assert_eq!(replies.outcome(), Outcome::Dropped(DropReason::OverBudget));
    assert_eq!(replies.count(), 0);

    // A client that pads its request earns the room for the answer.
    let mut padded = req.clone();
    padded.resize(full, 0);
    let replies = responder.respond(&padded, &n, ReplyBudget::AtMost(padded.len()));
    assert_eq!(
        replies.outcome(),
        Outcome::Answered { opcode: Opcode::ReadVariables, fragments: 1 }
    );
    assert_eq!(replies.total_len(), full);
}

#[test]
fn budget_and_access_policy() {
    let v4 = |a, b, c, d| IpAddr::V4(Ipv4Addr::new(a, b, c, d));
    assert_eq!(ReplyBudget::for_source(v4(127, 0, 0, 1), 12, false), ReplyBudget::Unlimited);
    assert_eq!(ReplyBudget::for_source(v4(127, 9, 9, 9), 12, false), ReplyBudget::Unlimited);
    assert_eq!(
        ReplyBudget::for_source(IpAddr::V6(Ipv6Addr::LOCALHOST), 12, false),
        ReplyBudget::Unlimited
    );
    let mapped = IpAddr::V6(Ipv4Addr::new(127, 0, 0, 1).to_ipv6_mapped());
    assert_eq!(ReplyBudget::for_source(mapped, 12, false), ReplyBudget::Unlimited);
    assert_eq!(ReplyBudget::for_source(v4(192, 0, 2, 1), 12, false), ReplyBudget::AtMost(12));
    assert_eq!(ReplyBudget::for_source(v4(192, 0, 2, 1), 12, true), ReplyBudget::Unlimited);
    assert!(query_allowed(RestrictFlags::NONE));
    assert!(query_allowed(RestrictFlags::KOD | RestrictFlags::LIMITED));
    assert!(!query_allowed(RestrictFlags::NOQUERY));
    assert!(!query_allowed(RestrictFlags::IGNORE));
}

#[test]
fn drop_reason_counter_names_are_distinct() {
    let names = [
        DropReason::TooShort,
        DropReason::NotControl,
        DropReason::UnsupportedVersion,
        DropReason::NotARequest,
        DropReason::FragmentedRequest,
        DropReason::OverBudget,
    ]
    .map(DropReason::counter_name);
    let mut sorted = names.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), names.len());
}

/// Issue 13's flood acceptance at the responder: requests of every kind from 10^4 spoofed
/// non-local sources, each answered within `ReplyBudget::for_source`: bytes out ≤ bytes in.
#[test]
fn flood_from_spoofed_sources_never_amplifies() {
    let n = node(50);
    let responder = Mode6Responder::new();
    let kinds: [Vec<u8>; 6] = [
        request(2, 1, 1, 0, b""),
        request(2, 2, 1, 0, b""),
        request(2, 2, 1, 0, b"offset"),
        request(2, 2, 1, 100, b""),
        request(2, 7, 1, 0, b""),
        request(2, 1, 1, 0, b"")[..8].to_vec(),
    ];
    let (mut bytes_in, mut bytes_out) = (0usize, 0usize);
    for i in 0..20_000u32 {
        let source = IpAddr::V4(Ipv4Addr::from(0x0A00_0000 + (i % 10_000)));
        let req = &kinds[i as usize % kinds.len()];
        let budget = ReplyBudget::for_source(source, req.len(), false);
        bytes_in += req.len();
        let out: usize = responder.respond(req, &n, budget).map(|d| d.len()).sum();
        assert!(out <= req.len());
        bytes_out += out;
    }
    assert!(bytes_out <= bytes_in, "{bytes_out} > {bytes_in}");
}

proptest! {
    #[test]
    fn respond_never_panics_and_stays_bounded(
        bytes in proptest::collection::vec(any::<u8>(), 0..600),
        assocs in 0u16..300,
        limit in proptest::option::of(0usize..2000),
    ) {
        let n = node(assocs);
        let budget = limit.map_or(ReplyBudget::Unlimited, ReplyBudget::AtMost);
        let replies = Mode6Responder::new().respond(&bytes, &n, budget);
        let total = replies.total_len();
        let datagrams: Vec<_> = replies.collect();
        prop_assert!(datagrams.len() <= MAX_FRAGMENTS);
        prop_assert_eq!(datagrams.iter().map(Vec::len).sum::<usize>(), total);
        if let Some(limit) = limit {
            prop_assert!(total <= limit);
        }
        for d in &datagrams {
            prop_assert!(d.len() <= MAX_DATAGRAM_LEN);
            let r = ControlRepr::parse(d).unwrap();
            prop_assert!(r.header.response);
        }
    }

    #[test]
    fn well_formed_requests_always_get_an_answer(
        op in 0u8..32,
        assoc in 0u16..110,
        names in proptest::collection::vec("[a-z_]{0,12}", 0..5),
    ) {
        let data = names.join(",");
        let req = request(4, op, 77, assoc, data.as_bytes());
        let replies = Mode6Responder::new().respond(&req, &node(5), ReplyBudget::Unlimited);
        let outcome = replies.outcome();
        prop_assert!(!matches!(outcome, Outcome::Dropped(_)));
        let datagrams: Vec<_> = replies.collect();
        prop_assert!(!datagrams.is_empty());
        if let Outcome::Answered { fragments, .. } = outcome {
            prop_assert_eq!(fragments, datagrams.len());
            reassemble(&req, &datagrams);
        }
    }
}
