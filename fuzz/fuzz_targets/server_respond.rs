//! Fuzzes the server responder with arbitrary requests from arbitrary sources, with a trusted
//! key loaded (and, for a request of 48 bytes or more, once more with its header signed by
//! that key): never a panic, never a reply longer than the request (no amplification), and a
//! signed request's reply, once finished, verifies with the key.
#![no_main]

use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use rntp_proto::auth::{Digest, Key, KeyId, KeyStore};
use rntp_proto::server::{ReplyKind, Responder, ServerAction, ServerConfig, SystemState};
use rntp_proto::time::{Instant, NtpTimestamp};

fuzz_target!(|data: &[u8]| {
    if data.len() < 5 {
        return;
    }
    let (src, request) = data.split_at(4);
    let src = IpAddr::from([src[0], src[1], src[2], src[3]]);
    let mut responder = Responder::new(ServerConfig::default(), 0x5eed);
    let digest = Digest::ALL[usize::from(data[0]) % Digest::ALL.len()];
    let key = Key::new(KeyId(3), digest, b"fuzz-key-16bytes").expect("valid key");
    let mut keys: KeyStore = [key.clone()].into_iter().collect();
    keys.trust_all();
    responder.set_keys(keys);
    let sys = SystemState::unsynchronized(-20);
    let mut out = [0u8; 2048];
    let mut signed = request.get(..48).map(<[u8]>::to_vec);
    if let Some(s) = signed.as_mut() {
        key.append_mac(s);
    }
    for (i, request) in [Some(request), signed.as_deref()].into_iter().flatten().enumerate() {
        let now = Instant::from_nanos(i as u64 * 1_000_000);
        let action =
            responder.respond(now, NtpTimestamp::from_bits(i as u64), src, request, &sys, &mut out);
        if let ServerAction::Reply { len, kind } = action {
            assert!(len <= request.len(), "reply of {len} bytes to a {}-byte request", request.len());
            if kind == ReplyKind::Authenticated {
                responder.finish_reply(&mut out[..len], NtpTimestamp::from_bits(7));
                assert_eq!(responder.keys().check_reply(KeyId(3), &out[..len]), Ok(()));
            }
        }
    }
});
