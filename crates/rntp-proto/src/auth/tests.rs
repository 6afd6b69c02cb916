use super::*;
use crate::wire::PacketRepr;
use proptest::prelude::*;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or(0)).collect()
}

fn key(id: u32, digest: Digest, secret: &[u8]) -> Key {
    Key::new(KeyId(id), digest, secret).expect("valid test key")
}

/// A client request header: LI 0, VN 4, mode 3, transmit timestamp set.
fn request() -> Vec<u8> {
    let mut p = vec![0u8; 48];
    p[0] = 0x23;
    p[40..48].copy_from_slice(&0xEEBC_1958_CFA5_8000u64.to_be_bytes());
    p
}

/// RFC 4493 §4: AES-CMAC with key 2b7e1516 28aed2a6 abf71588 09cf4f3c over the first 0, 16,
/// 40 and 64 bytes of the example message. RFC 8573 uses exactly this construction for NTP.
#[test]
fn rfc4493_aes_cmac_vectors() {
    let k = key(1, Digest::Aes128Cmac, &hex("2b7e151628aed2a6abf7158809cf4f3c"));
    let msg = hex("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51\
         30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710");
    for (len, tag) in [
        (0, "bb1d6929e95937287fa37d129b756746"),
        (16, "070a16b46b4d4144f79bdd9dd04a287c"),
        (40, "dfa66747de9ae63030ca32611497c827"),
        (64, "51f0bebf7e3b9d92fc49741779363cfe"),
    ] {
        assert_eq!(k.mac(&msg[..len]).as_bytes(), hex(tag), "RFC 4493 example, {len} bytes");
        assert!(k.verify(&msg[..len], &hex(tag)));
    }
}

/// RFC 1321 / FIPS 180 test strings, through the `digest(secret || data)` construction with
/// the secret as a prefix of the classic message: shows the MAC is the plain digest of the
/// concatenation (not HMAC).
#[test]
fn md5_and_sha1_are_digest_of_secret_then_packet() {
    let md5 = key(1, Digest::Md5, b"a");
    assert_eq!(md5.mac(b"bc").as_bytes(), hex("900150983cd24fb0d6963f7d28e17f72"));
    let sha1 = key(2, Digest::Sha1, b"ab");
    assert_eq!(sha1.mac(b"c").as_bytes(), hex("a9993e364706816aba3e25717850c26c9cd0d89d"));
}

#[test]
fn digest_names() {
    for (name, digest) in [
        ("MD5", Digest::Md5),
        ("md5", Digest::Md5),
        ("M", Digest::Md5),
        ("SHA1", Digest::Sha1),
        ("sha-1", Digest::Sha1),
        ("AES128CMAC", Digest::Aes128Cmac),
        ("aes", Digest::Aes128Cmac),
        ("AES-128", Digest::Aes128Cmac),
        ("AES128", Digest::Aes128Cmac),
    ] {
        assert_eq!(Digest::from_name(name), Ok(digest), "{name}");
    }
    for d in Digest::ALL {
        assert_eq!(Digest::from_name(d.name()), Ok(d));
    }
    assert_eq!(
        Digest::from_name("sha256"),
        Err(DigestNameError::Unsupported { name: "sha256".into(), algorithm: "SHA-256" })
    );
    assert_eq!(
        Digest::from_name("AES256").map_err(|e| e.to_string()),
        Err("key type `AES256` (AES-256-CMAC) is not supported by rntpd; expected MD5, SHA1 or \
             AES128CMAC (AES128CMAC is the one RFC 8573 recommends)"
            .into())
    );
    // NTPsec reads any unknown name starting with M as MD5; we do not guess.
    assert_eq!(Digest::from_name("MX"), Err(DigestNameError::Unknown { name: "MX".into() }));
    assert_eq!(
        Digest::from_name("SAH1").map_err(|e| e.to_string()),
        Err("unknown key type `SAH1`; expected MD5, SHA1 or AES128CMAC (also accepted: M, \
             SHA-1, AES, AES-128, AES128)"
            .into())
    );
}

#[test]
fn key_checks() {
    assert_eq!(Key::new(KeyId(0), Digest::Md5, b"x"), Err(KeyError::ZeroId));
    assert_eq!(Key::new(KeyId(1), Digest::Md5, b""), Err(KeyError::EmptySecret));
    assert_eq!(
        Key::new(KeyId(1), Digest::Sha1, &[1; 65]),
        Err(KeyError::SecretTooLong { len: 65, max: 64 })
    );
    assert!(Key::new(KeyId(1), Digest::Sha1, &[1; 64]).is_ok());
    assert_eq!(
        Key::new(KeyId(1), Digest::Aes128Cmac, &[1; 15]),
        Err(KeyError::WrongSecretLength { digest: Digest::Aes128Cmac, required: 16, len: 15 })
    );
    assert!(Key::new(KeyId(u32::MAX), Digest::Aes128Cmac, &[1; 16]).is_ok());
}

#[test]
fn debug_never_shows_the_secret() {
    let k = key(7, Digest::Md5, b"TopSecretKey");
    let shown = format!("{k:?} {:?}", KeyStore::from_iter([k.clone()]));
    assert!(!shown.contains("TopSecretKey"), "{shown}");
    assert!(!shown.contains("84, 111, 112"), "{shown}"); // the bytes of "Top"
    assert!(shown.contains("<12 bytes, redacted>"), "{shown}");
}

#[test]
fn append_and_write_mac_agree() {
    for d in Digest::ALL {
        let k = key(3, d, &[0x42; 16]);
        let mut appended = request();
        k.append_mac(&mut appended);
        assert_eq!(appended.len(), 48 + k.mac_wire_len());
        assert_eq!(&appended[48..52], &[0, 0, 0, 3]);

        let mut buf = [0u8; 100];
        buf[..48].copy_from_slice(&request());
        let len = k.write_mac(&mut buf, 48).expect("fits");
        assert_eq!(&buf[..len], appended.as_slice());
        assert_eq!(
            k.write_mac(&mut buf[..60], 48),
            Err(WireError::BufferTooSmall { needed: 48 + k.mac_wire_len(), got: 60 })
        );

        // What we send parses back with the wire layer as a MAC of the right length.
        let repr = PacketRepr::parse(&appended).expect("signed request parses");
        let mac = repr.mac.expect("mac present");
        assert_eq!((mac.key_id, mac.digest.len()), (3, d.mac_len()));
    }
}

fn store(trusted: &[u32]) -> KeyStore {
    let mut s: KeyStore = [
        key(1, Digest::Md5, b"md5secret"),
        key(2, Digest::Sha1, b"sha1secret"),
        key(3, Digest::Aes128Cmac, b"0123456789abcdef"),
    ]
    .into_iter()
    .collect();
    for id in trusted {
        s.trust(KeyId(*id));
    }
    s
}

#[test]
fn client_reply_verdicts() {
    let s = store(&[1, 2, 3]);
    let signed = |id: u32| {
        let mut p = request();
        p[0] = 0x24;
        s.get(KeyId(id)).expect("key").append_mac(&mut p);
        p
    };
    for id in [1, 2, 3] {
        assert_eq!(s.check_reply(KeyId(id), &signed(id)), Ok(()));
    }
    assert_eq!(
        s.check_reply(KeyId(1), &signed(2)),
        Err(AuthError::WrongKey { expected: KeyId(1), got: KeyId(2) })
    );
    let mut tampered = signed(3);
    tampered[47] ^= 1;
    assert_eq!(s.check_reply(KeyId(3), &tampered), Err(AuthError::BadMac(KeyId(3))));
    let mut bad_digest = signed(1);
    bad_digest[60] ^= 0x80;
    assert_eq!(s.check_reply(KeyId(1), &bad_digest), Err(AuthError::BadMac(KeyId(1))));
    assert_eq!(s.check_reply(KeyId(1), &request()), Err(AuthError::Missing { expected: KeyId(1) }));
    let mut nak = request();
    append_crypto_nak(&mut nak);
    assert_eq!(s.check_reply(KeyId(1), &nak), Err(AuthError::CryptoNak));
    assert_eq!(
        s.check_reply(KeyId(1), &signed(1)[..50]),
        Err(AuthError::Malformed(WireError::TrailingData { offset: 48, len: 2 }))
    );
    // A key that was dropped from trust (e.g. on reload) no longer authenticates replies.
    assert_eq!(
        store(&[2]).check_reply(KeyId(1), &signed(1)),
        Err(AuthError::UntrustedKey(KeyId(1)))
    );
    // A SHA-1 MAC whose key is MD5 on our side: 20 bytes where 16 are expected.
    let mut wrong_len = request();
    wrong_len.extend_from_slice(&[0, 0, 0, 1]);
    wrong_len.extend_from_slice(&[0; 20]);
    assert_eq!(s.check_reply(KeyId(1), &wrong_len), Err(AuthError::BadMac(KeyId(1))));
}

#[test]
fn server_request_verdicts() {
    let s = store(&[1, 3]);
    assert_eq!(s.check_request(&request()), RequestAuth::Unauthenticated);
    let mut ok = request();
    s.get(KeyId(3)).expect("key").append_mac(&mut ok);
    assert_eq!(s.check_request(&ok), RequestAuth::Authenticated(KeyId(3)));
    let mut untrusted = request();
    s.get(KeyId(2)).expect("key").append_mac(&mut untrusted);
    assert_eq!(s.check_request(&untrusted), RequestAuth::Failed(AuthError::UntrustedKey(KeyId(2))));
    let mut unknown = request();
    key(9, Digest::Md5, b"elsewhere").append_mac(&mut unknown);
    assert_eq!(s.check_request(&unknown), RequestAuth::Failed(AuthError::UnknownKey(KeyId(9))));
    let mut bad = ok.clone();
    bad[47] ^= 1; // the last byte of the transmit timestamp
    assert_eq!(s.check_request(&bad), RequestAuth::Failed(AuthError::BadMac(KeyId(3))));
    let mut nak = request();
    append_crypto_nak(&mut nak);
    assert_eq!(s.check_request(&nak), RequestAuth::Failed(AuthError::CryptoNak));
    assert_eq!(
        s.check_request(&[0u8; 10]),
        RequestAuth::Failed(AuthError::Malformed(WireError::TooShort { needed: 48, got: 10 }))
    );
}

#[test]
fn store_trust() {
    let mut s = store(&[]);
    assert_eq!(s.trusted_key(KeyId(1)), Err(AuthError::UntrustedKey(KeyId(1))));
    assert_eq!(s.trusted_key(KeyId(4)), Err(AuthError::UnknownKey(KeyId(4))));
    s.trust(KeyId(4));
    assert_eq!(s.trusted_without_key().collect::<Vec<_>>(), vec![KeyId(4)]);
    s.trust_all();
    assert!(s.trusted_key(KeyId(1)).is_ok() && s.trusted_key(KeyId(3)).is_ok());
    assert_eq!(s.len(), 3);
    let old = s.insert(key(1, Digest::Sha1, b"replacement"));
    assert_eq!(old.map(|k| k.digest()), Some(Digest::Md5));
    assert_eq!(s.get(KeyId(1)).map(Key::digest), Some(Digest::Sha1));
}

#[test]
fn counter_names_are_listed() {
    let all = [
        AuthError::Malformed(WireError::TooShort { needed: 48, got: 0 }),
        AuthError::Missing { expected: KeyId(1) },
        AuthError::CryptoNak,
        AuthError::UnknownKey(KeyId(1)),
        AuthError::UntrustedKey(KeyId(1)),
        AuthError::WrongKey { expected: KeyId(1), got: KeyId(2) },
        AuthError::BadMac(KeyId(1)),
    ];
    let names: Vec<_> = all.iter().map(AuthError::counter_name).collect();
    assert_eq!(names, AuthError::COUNTER_NAMES);
}

proptest! {
    /// The trailer view and the wire parser read every byte string the same way: both fail,
    /// or both succeed and agree on the MAC; and the signed part is header plus extensions.
    #[test]
    fn trailer_agrees_with_wire_parser(
        version in 1u8..=4,
        mode in prop_oneof![Just(1u8), Just(2), Just(3), Just(4), Just(5)],
        body in proptest::collection::vec(any::<u8>(), 0..200),
        shape in 0usize..4,
    ) {
        let mut packet = vec![0u8; 48];
        packet[0] = (version << 3) | mode;
        // Bias towards well-formed trailers: an extension field of the right shape, a MAC or
        // a crypto-NAK, then the random body.
        match shape {
            1 => packet.extend_from_slice(&[0x01, 0x04, 0x00, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            2 => packet.extend_from_slice(&[0, 0, 0, 0]),
            3 => packet.extend_from_slice(&[0, 0, 0, 1]),
            _ => {}
        }
        packet.extend_from_slice(&body);
        let ours = SignedPacket::split(&packet);
        let theirs = PacketRepr::parse(&packet);
        match (ours, theirs) {
            (Ok(split), Ok(repr)) => {
                let ext_len: usize = repr.extensions.iter().map(|e| e.wire_len()).sum();
                prop_assert_eq!(split.signed.len(), 48 + ext_len);
                match (split.trailer, repr.mac) {
                    (MacTrailer::None, None) => {}
                    (MacTrailer::CryptoNak, Some(m)) => prop_assert!(m.is_crypto_nak()),
                    (MacTrailer::Mac { key_id, digest }, Some(m)) => {
                        prop_assert_eq!(key_id.0, m.key_id);
                        prop_assert_eq!(digest, m.digest);
                    }
                    (a, b) => prop_assert!(false, "disagree: {:?} vs {:?}", a, b),
                }
            }
            (Err(a), Err(b)) => prop_assert_eq!(a, b),
            (a, b) => prop_assert!(false, "disagree: {:?} vs {:?}", a, b),
        }
    }

    /// A MAC we append always verifies, and flipping any bit of the packet breaks it.
    #[test]
    fn sign_then_verify(
        digest in prop_oneof![Just(Digest::Md5), Just(Digest::Sha1), Just(Digest::Aes128Cmac)],
        secret in proptest::collection::vec(any::<u8>(), 16..=16),
        id in 1u32..,
        flip in 0usize..(48 * 8),
    ) {
        let k = Key::new(KeyId(id), digest, &secret).expect("valid");
        let mut s = KeyStore::from_iter([k.clone()]);
        s.trust_all();
        let mut p = request();
        k.append_mac(&mut p);
        prop_assert_eq!(s.check_reply(KeyId(id), &p), Ok(()));
        prop_assert_eq!(s.check_request(&p), RequestAuth::Authenticated(KeyId(id)));
        p[flip / 8] ^= 1 << (flip % 8);
        let verdict = s.check_reply(KeyId(id), &p);
        // A flipped version bit can turn the trailer into trailing data for v1-3; any other
        // flip must fail the MAC.
        prop_assert!(verdict.is_err());
    }
}
