use super::*;
use proptest::prelude::*;
use rntp_proto::auth::RequestAuth;

fn parse(text: &str) -> Result<KeyFile, KeyFileErrors> {
    parse_keys(Path::new("/etc/ntp.keys"), text.as_bytes())
}

fn errors(text: &str) -> String {
    match parse(text) {
        Ok(k) => panic!("expected errors, got {:?}", k.keys),
        Err(e) => e.to_string(),
    }
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or(0)).collect()
}

/// The NTPsec key file used to capture the known-answer vectors in
/// `rntp-proto/tests/auth_interop.rs`, verbatim.
const NTPSEC_KAT_KEYS: &str = "\
# rntpd KAT keys (test only)
1 MD5 rntpdKatMd5Ascii
2 SHA1 6b1a0c3f9e2d4b5a69788796a5b4c3d2e1f00112
3 AES128CMAC 00112233445566778899aabbccddeeff
4 md5 0f1e2d3c4b5a69788796a5b4c3d2e1f0aabbccdd
5 SHA1 sha1AsciiKey20chars!
";

/// The chrony key file of the same capture, without the SHA256 key 7 (which rntpd refuses).
const CHRONY_KAT_KEYS: &str = "\
1 MD5 ASCII:rntpdKatMd5Ascii
2 SHA1 HEX:6B1A0C3F9E2D4B5A69788796A5B4C3D2E1F00112
3 AES128 HEX:00112233445566778899AABBCCDDEEFF
6 chronyNoTypeAscii
";

/// Requests captured from `ntpdig -k ntp.keys -a N` (NTPsec 1.2.2) and `chronyd -Q` 4.3 with
/// the files above; see `rntp-proto/tests/auth_interop.rs` for the procedure.
const CAPTURED: &[(&str, u32, &str)] = &[
    ("ntpdig", 1, "e3000000000000000000000000000000000000000000000000000000000000000000000000000000eebc1958cfa5800000000001f3a65e0334c99dcf337c6688bd5c5016"),
    ("ntpdig", 2, "e3000000000000000000000000000000000000000000000000000000000000000000000000000000eebc195a66d2d00000000002ecfbf65e4596310480426f3ae6b5cdbd9d5f712e"),
    ("ntpdig", 3, "e3000000000000000000000000000000000000000000000000000000000000000000000000000000eebc195bfd41000000000003ea489ee6d8c0269a2261d0a2e7fa2b37"),
    ("ntpdig", 4, "e3000000000000000000000000000000000000000000000000000000000000000000000000000000eebc195d9419500000000004f136a58901420825d5e46921f1c68452"),
    ("ntpdig", 5, "e3000000000000000000000000000000000000000000000000000000000000000000000000000000eebc195f283f80000000000570040ccbfdb8c1fff8c8391e023adb03a989456c"),
    ("chronyd", 1, "230006200000000000000000000000000000000000000000000000000000000000000000000000006a38531dea7266de000000013453b6d8e655cd4eb6a9a5d7eb4dd8fe"),
    ("chronyd", 2, "230006200000000000000000000000000000000000000000000000000000000000000000000000003a0a03ccb012073700000002604c80634624161266d44e79c46dc38d6040a01f"),
    ("chronyd", 3, "23000620000000000000000000000000000000000000000000000000000000000000000000000000ebc43cc6c07163bc00000003550b6ff6fb335cac824ecf8cc1b2b1ba"),
    ("chronyd", 6, "23000620000000000000000000000000000000000000000000000000000000000000000000000000235e961117f3fc8e00000006ff33d83b703c4bc2ba874806737c461d"),
];

/// The key files the real implementations used parse to keys that verify what those
/// implementations sent.
#[test]
fn kat_key_files_verify_captured_requests() {
    for (text, origin) in [(NTPSEC_KAT_KEYS, "ntpdig"), (CHRONY_KAT_KEYS, "chronyd")] {
        let loaded = parse(text).expect("key file parses");
        let mut store = loaded.into_store();
        store.trust_all();
        for (_, id, packet) in CAPTURED.iter().filter(|(o, _, _)| *o == origin) {
            assert_eq!(
                store.check_request(&hex(packet)),
                RequestAuth::Authenticated(KeyId(*id)),
                "{origin} key {id}"
            );
        }
    }
}

/// Output of NTPsec 1.2.2 `ntpkeygen` (a throwaway run on the test machine, mode 0640 as it
/// wrote it): ten 16-character ASCII and ten 32-digit hex AES keys, ids right-aligned.
const NTPKEYGEN_OUTPUT: &str = r#"# ntpkey_AES_vm.1796317471
# Thu Dec  3 17:04:31 2026
 1 AES 6LgV<KmY.0e6Y{bY
 2 AES +I9&\TU6WjNvwTu=
 3 AES 5F:<>O%}L6,s@P]O
 4 AES <z}_n^N[EpPHUdM0
 5 AES YqJ|LEdJk<zOs8Vc
 6 AES }GQC),vBWETLvu]t
 7 AES Wm[')y>KfpFY*-;?
 8 AES [(MHH6lq/w_H-t9P
 9 AES wl?[W{Yq{9lvwTLc
10 AES @qd1Q$Y>hP.=%TrL
11 AES a352e411893efc3e716798285493a17c
12 AES 55a364b6571689304442ac25754cfcbc
13 AES a785832254c356469e9734393748af5d
14 AES 0483d09556e24e2e246ee0137a52b866
15 AES ac3cc2c19ab96817a62974b60528df1c
16 AES 88991dcebaec83c4f8430ee74029af49
17 AES b974155adecc6848b9a06cb1ca7eb15f
18 AES 156df4a81670c1b280559a2752b6648e
19 AES 13ea9ed84486909bfcf777a278ba0a39
20 AES ed4a94fae651ef3a573418852fc8363e
"#;

/// Lines printed by chrony 4.3 `chronyc keygen 1 SHA1 160`, `keygen 2 AES128`, `keygen 3`.
const CHRONYC_KEYGEN_OUTPUT: &str = "\
1 SHA1 HEX:21228A324546C5809AD7F76B20B4F858FC4C138A
2 AES128 HEX:7B4EB2F1434D0861554D9DBF07BE005E
3 SHA1 HEX:72BBEE9A9F0592DB2E29A22D6EAD5B42A9D96A3A
";

#[test]
fn generated_key_files_load() {
    let ntp = parse(NTPKEYGEN_OUTPUT).expect("ntpkeygen output loads");
    assert_eq!(ntp.keys.len(), 20);
    assert!(ntp.keys.iter().all(|k| k.digest() == Digest::Aes128Cmac && k.secret_len() == 16));
    assert!(ntp.warnings.is_empty(), "{:?}", ntp.warnings);
    let chrony = parse(CHRONYC_KEYGEN_OUTPUT).expect("chronyc keygen output loads");
    let summary: Vec<_> = chrony.keys.iter().map(|k| (k.digest(), k.secret_len())).collect();
    assert_eq!(summary, vec![(Digest::Sha1, 20), (Digest::Aes128Cmac, 16), (Digest::Sha1, 20)]);
}

#[test]
fn both_syntaxes() {
    let loaded = parse(
        "# comment line\n\
         \n\
         1 MD5 hunter2hunter2 # trailing comment\n\
         2\tSHA1\t0102030405060708090a0b0c0d0e0f1011121314\n\
         3 AES ASCII:0123456789abcdef\r\n\
         4 M HEX:00112233445566778899\n\
         5 tulip-tulip-tulip-tulip-tulip\n\
         ! chrony comment\n\
         ; another\n\
         6 aes-128 HEX:000102030405060708090A0B0C0D0E0F\n",
    )
    .expect("valid");
    let summary: Vec<_> =
        loaded.keys.iter().map(|k| (k.id().0, k.digest(), k.secret_len())).collect();
    assert_eq!(
        summary,
        vec![
            (1, Digest::Md5, 14),
            (2, Digest::Sha1, 20),
            (3, Digest::Aes128Cmac, 16),
            (4, Digest::Md5, 10),
            (5, Digest::Md5, 29),
            (6, Digest::Aes128Cmac, 16),
        ]
    );
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let expected =
        Key::new(KeyId(2), Digest::Sha1, &hex("0102030405060708090a0b0c0d0e0f1011121314"));
    assert_eq!(Ok(&loaded.keys[1]), expected.as_ref());
}

#[test]
fn ntp_length_rule() {
    // 20 characters: ASCII, even if it looks like hex.
    let k = parse("1 MD5 00112233445566778899\n").expect("valid");
    assert_eq!(Ok(&k.keys[0]), Key::new(KeyId(1), Digest::Md5, b"00112233445566778899").as_ref());
    // 22 characters: hex.
    let k = parse("1 MD5 00112233445566778899aa\n").expect("valid");
    assert_eq!(
        Ok(&k.keys[0]),
        Key::new(KeyId(1), Digest::Md5, &hex("00112233445566778899aa")).as_ref()
    );
    // 64 digits: the longest ntpd reads.
    let k = parse(&format!("1 SHA1 {}\n", "ab".repeat(32))).expect("valid");
    assert_eq!(k.keys[0].secret_len(), 32);
}

#[test]
fn error_messages() {
    assert_eq!(
        errors("0 MD5 secretsecret\n"),
        "/etc/ntp.keys:1:1: error: key id 0 is reserved (a MAC with key id 0 is a crypto-NAK); \
         expected 1 to 65535 (up to 4294967295 if no ntpd or NTPsec peer uses the key)\n\
         1 | 0 MD5 ************\n  \
           | ^"
    );
    assert_eq!(
        errors("key MD5 secretsecret\n"),
        "/etc/ntp.keys:1:1: error: key id expects an integer from 1 to 4294967295, found \"key\"\n\
         1 | key MD5 ************\n  \
           | ^^^"
    );
    assert_eq!(
        errors("12 SHA256 0011223344556677889900112233445566778899\n"),
        "/etc/ntp.keys:1:4: error: key type `SHA256` (SHA-256) is not supported by rntpd; \
         expected MD5, SHA1 or AES128CMAC (AES128CMAC is the one RFC 8573 recommends)\n\
         1 | 12 SHA256 ****************************************\n  \
           |    ^^^^^^"
    );
    assert_eq!(
        errors("7 MD5 this-is-a-long-ascii-key\n"),
        "/etc/ntp.keys:1:7: error: the key is not valid hex (only 0-9, a-f and A-F); keys longer \
         than 20 characters are hex in ntp.keys(5): for a longer ASCII key write `ASCII:` before \
         it (chrony syntax)\n\
         1 | 7 MD5 ************************\n  \
           |       ^"
    );
    assert_eq!(
        errors("7 MD5 HEX:00112g\n"),
        "/etc/ntp.keys:1:16: error: the key is not valid hex (only 0-9, a-f and A-F)\n\
         1 | 7 MD5 **********\n  \
           |                ^"
    );
    assert_eq!(
        errors("3 AES128CMAC 00112233445566778899aabbccddee\n"),
        "/etc/ntp.keys:1:14: error: AES128CMAC keys must be exactly 16 bytes (16 ASCII \
         characters or 32 hex digits), found 15 bytes (ntpd and NTPsec would pad or cut it, \
         chrony refuses it)\n\
         1 | 3 AES128CMAC ******************************\n  \
           |              ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^"
    );
    assert_eq!(
        errors("1 MD5 my secret\n"),
        "/etc/ntp.keys:1:10: error: unexpected word after the key; expected `ID TYPE KEY` (a key \
         cannot contain spaces or `#`: write it in hex)\n\
         1 | 1 MD5 ** ******\n  \
           |          ^^^^^^"
    );
    assert_eq!(
        errors("1 MD5 secretsecret\n2 SHA1 othersecret\n1 SHA1 thirdsecret\n"),
        "/etc/ntp.keys:3:1: error: key 1 is already defined on line 1; expected each key id once\n\
         3 | 1 SHA1 ***********\n  \
           | ^"
    );
    assert_eq!(
        errors("5\n"),
        "/etc/ntp.keys:1:1: error: key 5 has no key; expected `ID TYPE KEY` (ntp.keys) or \
         `ID [TYPE] ASCII:KEY` / `ID [TYPE] HEX:KEY` (chrony)\n\
         1 | 5\n  \
           | ^"
    );
    assert!(errors(&format!("1 MD5 {}\n", "a".repeat(66))).contains(
        "1:7: error: the hex key has 66 digits; expected at most 64 (32 bytes): ntpd and NTPsec \
         would silently use only the first 64"
    ));
    assert!(errors("1 MD5 001122334455667788990\n")
        .contains("1:7: error: the hex key has an odd number of digits (21)"));
    // chrony would take the word `MD5` as the key itself; that is surely a forgotten key.
    assert!(errors("1 MD5\n").contains("1:3: error: key 1 has no key"));
    assert!(errors("1 sha256 # no key\n").contains("1:3: error: key 1 has no key"));
    assert!(errors("1 MD5 ASCII:\n").contains("1:7: error: empty key after `ASCII:`"));
    assert!(errors("1 MD5 ASCII:caf\u{e9}latte\n")
        .contains("1:16: error: the key contains a character that is not printable ASCII"));
    assert!(errors(&format!("1 SHA1 ASCII:{}\n", "x".repeat(65)))
        .contains("1:8: error: the key is 65 bytes long; expected at most 64"));
    assert!(errors("1 MD5 sec\u{7}retsecret\n").contains("1:10: error: the key contains"));
    assert!(errors("99999999999 MD5 secretsecret\n").contains("found \"99999999999\""));
    assert!(errors("+5 MD5 secretsecret\n").contains("found \"+5\""));
}

#[test]
fn all_errors_are_reported_at_once() {
    let e = parse("1 FOO secretsecret\n2 MD5 secretsecret\n0 MD5 x\n3 MD5 HEX:0\n").unwrap_err();
    let lines: Vec<_> = e.errors.iter().map(|d| d.line).collect();
    assert_eq!(lines, vec![1, 3, 4]);
}

#[test]
fn warnings() {
    let k = parse("70000 AES128CMAC 000102030405060708090a0b0c0d0e0f\n8 tulip\n").expect("loads");
    let shown: Vec<_> = k.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        vec![
            "/etc/ntp.keys:1:1: warning: key id 70000 is above 65535: ntpd and NTPsec cannot use \
             it (chrony and rntpd can)",
            "/etc/ntp.keys:2:3: warning: key 8 is only 5 bytes (40 bits); use at least 16 random \
             bytes, e.g. 32 hex digits",
        ]
    );
    let empty = parse("# nothing here\n\n").expect("loads");
    assert_eq!(empty.warnings[0].to_string(), "/etc/ntp.keys: warning: key file defines no keys");
}

#[test]
fn invalid_utf8_outside_comments_only() {
    let k = parse_keys(Path::new("k"), b"# caf\xe9\n1 MD5 secretsecret # \xff\xfe\n").expect("ok");
    assert_eq!(k.keys.len(), 1);
    let e = parse_keys(Path::new("k"), b"1 MD5 secr\xe9tsecret\n").unwrap_err();
    assert_eq!(e.to_string(), "k:1:11: error: not valid UTF-8; expected a text line `ID TYPE KEY`");
}

#[cfg(unix)]
mod files {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn write(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        path
    }

    #[test]
    fn permissions() {
        let dir = tempfile::tempdir().expect("tempdir");
        let private = write(dir.path(), "private", NTPSEC_KAT_KEYS, 0o600);
        let loaded = load_keys(&private).expect("loads");
        assert_eq!((loaded.keys.len(), loaded.warnings.len()), (5, 0));

        let group = write(dir.path(), "group", NTPSEC_KAT_KEYS, 0o640);
        assert!(load_keys(&group).expect("loads").warnings.is_empty());

        let world = write(dir.path(), "world", NTPSEC_KAT_KEYS, 0o644);
        let loaded = load_keys(&world).expect("loads with a warning");
        assert_eq!(loaded.keys.len(), 5);
        assert_eq!(
            loaded.warnings.iter().map(ToString::to_string).collect::<Vec<_>>(),
            vec![format!(
                "{}: warning: key file is readable by every user (mode 0644): anyone on this \
                 host can forge authenticated packets; run `chmod o-rwx` on it",
                world.display()
            )]
        );

        let writable = write(dir.path(), "writable", NTPSEC_KAT_KEYS, 0o660);
        let w = load_keys(&writable).expect("loads with a warning").warnings;
        assert!(matches!(
            w[..],
            [KeyDiagnostic { kind: KeyDiagnosticKind::WritableByOthers { mode: 0o660 }, .. }]
        ));

        // Warnings from the file's mode come with errors too.
        let broken = write(dir.path(), "broken", "1 MD5\n", 0o666);
        let e = load_keys(&broken).unwrap_err();
        assert_eq!((e.errors.len(), e.warnings.len()), (1, 2));
    }

    #[test]
    fn refuses_what_is_not_a_regular_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let e = load_keys(dir.path()).unwrap_err();
        assert_eq!(e.errors[0].kind, KeyDiagnosticKind::NotRegularFile { kind: "directory" });
        let e = load_keys(Path::new("/dev/zero")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/dev/zero: error: key file is a character device; expected a regular file"
        );
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if made.is_ok_and(|s| s.success()) {
            // Must return at once rather than block in open().
            let e = load_keys(&fifo).unwrap_err();
            assert_eq!(e.errors[0].kind, KeyDiagnosticKind::NotRegularFile { kind: "FIFO" });
        }
        let e = load_keys(&dir.path().join("missing")).unwrap_err();
        assert!(e.to_string().contains("error: cannot read key file: No such file or directory"));
    }

    #[test]
    fn follows_symlinks_and_caps_size() {
        let dir = tempfile::tempdir().expect("tempdir");
        let real = write(dir.path(), "real", CHRONY_KAT_KEYS, 0o600);
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&real, &link).expect("symlink");
        assert_eq!(load_keys(&link).expect("loads").keys.len(), 4);

        let big = dir.path().join("big");
        let f = File::create(&big).expect("create");
        f.set_len(MAX_KEY_FILE_BYTES + 1).expect("sparse file");
        let e = load_keys(&big).unwrap_err();
        assert_eq!(e.errors[0].kind, KeyDiagnosticKind::TooLarge { max: MAX_KEY_FILE_BYTES });
    }
}

/// A random key and how to write it in one of the syntaxes.
fn key_line() -> impl Strategy<Value = (u32, Digest, Vec<u8>, usize)> {
    (
        1u32..=u32::MAX,
        prop_oneof![Just(Digest::Md5), Just(Digest::Sha1), Just(Digest::Aes128Cmac)],
        proptest::collection::vec(0x21u8..=0x7E, 1..=32),
        0usize..4,
    )
        .prop_map(|(id, digest, mut secret, syntax)| {
            if digest == Digest::Aes128Cmac {
                secret.resize(16, b'k');
            }
            // '#' would start a comment.
            for b in &mut secret {
                if *b == b'#' {
                    *b = b'h';
                }
            }
            (id, digest, secret, syntax)
        })
}

fn render(digest: Digest, secret: &[u8], syntax: usize) -> String {
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    let ascii = String::from_utf8(secret.to_vec()).unwrap_or_default();
    match syntax {
        0 if secret.len() <= 20 => format!("{} {ascii}", digest.name()),
        0 if secret.len() >= 11 => format!("{} {hex}", digest.name()),
        1 => format!("{} ASCII:{ascii}", digest.name()),
        2 => format!("{} HEX:{}", digest.name(), hex.to_uppercase()),
        _ if digest == Digest::Md5 => format!("ASCII:{ascii}"),
        _ => format!("{} HEX:{hex}", digest.name()),
    }
}

proptest! {
    #[test]
    fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let result = parse_keys(Path::new("f"), &bytes);
        let lines = bytes.split(|b| *b == b'\n').count() as u32;
        let (errs, warns) = match &result {
            Ok(k) => (Vec::new(), k.warnings.clone()),
            Err(e) => (e.errors.clone(), e.warnings.clone()),
        };
        for d in errs.iter().chain(&warns) {
            prop_assert!(d.line <= lines);
            let _ = d.to_string();
        }
    }

    #[test]
    fn written_keys_read_back(lines in proptest::collection::vec(key_line(), 1..8)) {
        let mut text = String::new();
        let mut expected = Vec::new();
        let mut used = std::collections::BTreeSet::new();
        for (id, digest, secret, syntax) in lines {
            if !used.insert(id) {
                continue;
            }
            text.push_str(&format!("{id} {}  # key {id}\n", render(digest, &secret, syntax)));
            expected.push(Key::new(KeyId(id), digest, &secret).expect("valid key"));
        }
        let loaded = parse(&text).map_err(|e| e.to_string());
        prop_assert_eq!(loaded.map(|k| k.keys), Ok(expected), "{}", text);
    }

    /// Whatever goes wrong on a line, the secret written there never appears in the report.
    #[test]
    fn secrets_are_never_shown(
        secret in "[A-Za-z0-9]{12,20}",
        mistake in 0usize..5,
    ) {
        let line = match mistake {
            0 => format!("0 MD5 {secret}"),
            1 => format!("1 SHA256 {secret}"),
            2 => format!("1 MD5 {secret} extra"),
            3 => format!("1 AES128CMAC {secret}"),
            _ => format!("x MD5 {secret} # {secret}"),
        };
        let text = format!("2 MD5 {secret}\n{line}\n");
        if let Err(e) = parse(&text) {
            let shown = e.to_string();
            prop_assert!(!shown.contains(&secret), "{}", shown);
            let debug = format!("{e:?}");
            prop_assert!(!debug.contains(&secret), "{}", debug);
        }
    }
}
