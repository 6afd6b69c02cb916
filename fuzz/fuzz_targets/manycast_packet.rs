//! Fuzzes both manycast roles with arbitrary datagrams: the client's answer check (a node with
//! a `manycastclient`, fed the bytes as an answer to its solicitation, once as they are and
//! once with the solicitation's nonce as origin and signed with the key) and the server's
//! `respond_manycast` (once as they are, once signed). Never a panic; never more members than
//! the client's limit; never a server reply longer than the request.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use libfuzzer_sys::fuzz_target;
use rntp_proto::assoc::AssocConfig;
use rntp_proto::auth::{Digest, Key, KeyId, KeyStore};
use rntp_proto::node::{AuthConfig, ConfiguredSource, Local, Node, NodeConfig};
use rntp_proto::rng::SplitMix64;
use rntp_proto::source::{AddrFamily, SourceKind, SourceSpec, Target};
use rntp_proto::time::{Instant, NtpTimestamp};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, packet)) = data.split_first() else { return };
    let digest = Digest::ALL[usize::from(selector) % Digest::ALL.len()];
    let key = Key::new(KeyId(5), digest, b"manycast-key-16b").expect("valid key");
    let mut keys: KeyStore = [key.clone()].into_iter().collect();
    keys.trust_all();
    let source = ConfiguredSource {
        spec: SourceSpec {
            kind: SourceKind::Manycast { maxsources: 2, ttl: 127 },
            target: Target::Addr(IpAddr::V4(Ipv4Addr::new(239, 1, 1, 1))),
            port: 123,
            assoc: AssocConfig::default(),
            family: AddrFamily::Any,
            prefer: false,
            noselect: false,
            key: Some(KeyId(5)),
        },
        origin: "fuzz".into(),
    };
    let config = NodeConfig {
        sources: vec![source],
        auth: AuthConfig { keys, control_key: None },
        orphan: Some(4),
        ..NodeConfig::default()
    };
    let mut node = Node::new(Instant::from_nanos(1), config, Box::new(SplitMix64::new(9)));
    let now = Instant::from_nanos(2);
    node.handle_timeout(now);
    let Some(solicitation) = node.poll_transmit(now, NtpTimestamp::from_bits(1)) else { return };
    let Local::Manycast(_) = solicitation.local else { panic!("not a solicitation") };
    let from = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, selector)), 123);
    node.handle_packet(now, solicitation.local, from, NtpTimestamp::from_bits(2), packet);
    if packet.len() >= 48 {
        let mut answer = packet[..48].to_vec();
        answer[24..32].copy_from_slice(&solicitation.payload[40..48]);
        key.append_mac(&mut answer);
        node.handle_packet(now, solicitation.local, from, NtpTimestamp::from_bits(2), &answer);
    }
    assert!(node.associations(now).len() <= 2);
    while node.poll_transmit(now, NtpTimestamp::from_bits(3)).is_some() {}

    let mut out = [0u8; 128];
    let client = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 200));
    if let Some(len) = node.respond_manycast(now, NtpTimestamp::from_bits(4), client, packet, &mut out) {
        assert!(len <= packet.len());
    }
    if packet.len() >= 48 {
        let mut signed = packet[..48].to_vec();
        key.append_mac(&mut signed);
        if let Some(len) =
            node.respond_manycast(now, NtpTimestamp::from_bits(4), client, &signed, &mut out)
        {
            assert!(len <= signed.len());
        }
    }
});
