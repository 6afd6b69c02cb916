//! Fuzzes `ntpq :config`: the line parser (rntp-config's `RemoteParser`, also `rntpctl add`'s)
//! and the node's CONFIGURE path with a request signed by the control key. Arbitrary text must
//! never panic; a parse error's column lies within the line (or just past its end); whatever
//! the text, the node answers with one datagram at most as long as a control datagram can be.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use libfuzzer_sys::fuzz_target;
use rntp_config::runtime::RemoteParser;
use rntp_proto::auth::{Digest, Key, KeyId, KeyStore};
use rntp_proto::mode6::{ControlHeader, ControlRepr, Opcode, MAX_SIGNED_DATAGRAM_LEN};
use rntp_proto::node::{AuthConfig, ConfigParser, Node, NodeConfig};
use rntp_proto::rng::SplitMix64;
use rntp_proto::server::ServerAction;
use rntp_proto::time::{Instant, NtpTimestamp};
use rntp_proto::wire::LeapIndicator;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for line in text.lines() {
        if let Err(e) = RemoteParser.parse_line(line, "fuzz") {
            if let Some(col) = e.column {
                assert!(col >= 1 && col <= line.chars().count() + 1, "column {col} of {line:?}");
            }
        }
    }
    if data.len() > 468 {
        return;
    }
    let key = Key::new(KeyId(2), Digest::Sha1, b"fuzz-control-key").expect("valid key");
    let mut keys: KeyStore = [key.clone()].into_iter().collect();
    keys.trust_all();
    let config = NodeConfig {
        auth: AuthConfig { keys, control_key: Some(KeyId(2)) },
        ..NodeConfig::default()
    };
    let mut node = Node::new(Instant::from_nanos(1), config, Box::new(SplitMix64::new(3)));
    node.set_config_parser(Box::new(RemoteParser));
    let repr = ControlRepr {
        header: ControlHeader {
            leap: LeapIndicator::NoWarning,
            version: 2,
            response: false,
            error: false,
            more: false,
            opcode: Opcode::Configure,
            sequence: 1,
            status: 0,
            association_id: 0,
            offset: 0,
        },
        data,
        trailer: &[],
    };
    let mut request = vec![0u8; 600];
    let Ok(len) = repr.emit(&mut request) else { return };
    request.truncate(len);
    while request.len() % 8 != 0 {
        request.push(0);
    }
    key.append_mac(&mut request);
    let mut out = [0u8; MAX_SIGNED_DATAGRAM_LEN];
    let local = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let action = node.respond(Instant::from_nanos(2), NtpTimestamp::from_bits(1), local, &request, &mut out);
    if let ServerAction::Reply { len, .. } = action {
        assert!(len <= MAX_SIGNED_DATAGRAM_LEN);
    }
    while node.poll_control_reply(&mut out).is_some() {}
    let now = Instant::from_nanos(3);
    node.handle_timeout(now);
    while node.poll_transmit(now, NtpTimestamp::from_bits(2)).is_some() {}
    while node.poll_lookup().is_some() {}
    while node.poll_event().is_some() {}
});
