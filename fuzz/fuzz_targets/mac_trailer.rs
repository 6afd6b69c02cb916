//! Fuzzes the MAC trailer view and the authentication verdicts: arbitrary bytes must never
//! panic; `MacTrailer::parse` / `SignedPacket::split` must agree with the wire parser about
//! where the MAC is; and a packet that a key signs must verify, on both the client and the
//! server path, while the same packet with its digest changed must not.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rntp_proto::auth::{Digest, Key, KeyId, KeyStore, MacTrailer, RequestAuth, SignedPacket};
use rntp_proto::wire::{NtpHeader, PacketRepr};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, packet)) = data.split_first() else {
        return;
    };
    let digest = Digest::ALL[usize::from(selector) % Digest::ALL.len()];
    let key = Key::new(KeyId(7), digest, b"fuzz-key-16bytes").expect("valid key");
    let mut store = KeyStore::from_iter([key.clone()]);
    store.trust_all();

    // Arbitrary input: no panics, and, for a header the wire layer accepts (the trailer view
    // does not check version or mode), the same answer as the wire parser.
    let split = SignedPacket::split(packet);
    let repr = PacketRepr::parse(packet);
    match (&split, &repr) {
        _ if NtpHeader::parse(packet).is_err() => {}
        (Ok(s), Ok(r)) => {
            let ext: usize = r.extensions.iter().map(|e| e.wire_len()).sum();
            assert_eq!(s.signed.len(), 48 + ext, "signed part is header + extensions");
            match (s.trailer, r.mac) {
                (MacTrailer::None, None) => {}
                (MacTrailer::CryptoNak, Some(m)) => assert!(m.is_crypto_nak()),
                (MacTrailer::Mac { key_id, digest }, Some(m)) => {
                    assert_eq!((key_id.0, digest), (m.key_id, m.digest));
                }
                (a, b) => panic!("trailer views disagree: {a:?} vs {b:?}"),
            }
        }
        (Err(a), Err(b)) => assert_eq!(a, b),
        (a, b) => panic!("trailer views disagree: {a:?} vs {b:?}"),
    }
    let _ = store.check_request(packet);
    let _ = store.check_reply(KeyId(7), packet);
    if packet.len() >= 48 {
        let version = (packet[0] >> 3) & 7;
        let _ = MacTrailer::parse(&packet[48..], version);
    }

    // Whatever header the input starts with, signing its first 48 bytes must verify.
    if packet.len() >= 48 {
        let mut signed = packet[..48].to_vec();
        key.append_mac(&mut signed);
        assert_eq!(store.check_reply(KeyId(7), &signed), Ok(()));
        assert_eq!(store.check_request(&signed), RequestAuth::Authenticated(KeyId(7)));
        let last = signed.len() - 1;
        signed[last] ^= 0x01;
        assert!(store.check_reply(KeyId(7), &signed).is_err());
    }
});
