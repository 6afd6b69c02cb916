//! Fuzzes the server responder with arbitrary requests from arbitrary sources: never a panic,
//! never a reply longer than the request (no amplification).
#![no_main]

use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use rntp_proto::server::{Responder, ServerAction, ServerConfig, SystemState};
use rntp_proto::time::{Instant, NtpTimestamp};

fuzz_target!(|data: &[u8]| {
    if data.len() < 5 {
        return;
    }
    let (src, request) = data.split_at(4);
    let src = IpAddr::from([src[0], src[1], src[2], src[3]]);
    let mut responder = Responder::new(ServerConfig::default(), 0x5eed);
    let sys = SystemState::unsynchronized(-20);
    let mut out = [0u8; 2048];
    for i in 0..3u64 {
        let now = Instant::from_nanos(i * 1_000_000);
        let action = responder.respond(now, NtpTimestamp::from_bits(i), src, request, &sys, &mut out);
        if let ServerAction::Reply { len, .. } = action {
            assert!(len <= request.len(), "reply of {len} bytes to a {}-byte request", request.len());
        }
    }
});
