//! Issue 15: the symmetric-key and manycast directives (`keys`, `trustedkey` with NTPsec's
//! ranges, `controlkey`, `requestkey`, `key N` on source lines, `manycastserver`,
//! `manycastclient`, `ttl`, `restrict ... notrust|nomodify`) and their cross-line checks, with
//! `file:line:col` for every error.

use std::path::Path;

use rntp_config::keys::parse_keys;
use rntp_config::node::{auth_config, node_config, unusable_keys};
use rntp_config::{parse_str, ConfigErrors, DiagnosticKind, Loaded, SourceKind};
use rntp_proto::auth::KeyId;
use rntp_proto::node::ClockMode;
use rntp_proto::server::RestrictFlags;

fn parse(text: &str) -> Result<Loaded, ConfigErrors> {
    parse_str(Path::new("/etc/ntp.conf"), text, &mut |_| Err(std::io::ErrorKind::NotFound.into()))
}

fn ok(text: &str) -> Loaded {
    parse(text).unwrap_or_else(|e| panic!("expected success, got:\n{e}"))
}

fn errors(text: &str) -> Vec<(u32, u32, DiagnosticKind)> {
    let e = parse(text).expect_err("expected errors");
    e.errors.into_iter().map(|d| (d.line, d.col, d.kind)).collect()
}

const KEYS: &str = "keys /etc/ntp.keys\n";

#[test]
fn trustedkey_lists_and_ntpsec_ranges() {
    for (line, want) in [
        ("trustedkey 1 2 3", vec![(1, 1), (2, 2), (3, 3)]),
        ("trustedkey (10 ... 20) 30", vec![(10, 20), (30, 30)]),
        ("trustedkey (10...20)", vec![(10, 20)]),
        ("trustedkey ( 10 ... 20 ) 4294967295", vec![(10, 20), (u32::MAX, u32::MAX)]),
        ("trustedkey 5 (6 ... 6)", vec![(5, 5), (6, 6)]),
    ] {
        assert_eq!(ok(&format!("{line}\n")).config.auth.trusted, want, "{line}");
    }
    let bad = |line: &str| errors(&format!("{line}\n"));
    assert!(matches!(bad("trustedkey 0")[0], (1, 12, DiagnosticKind::BadValue { .. })));
    assert!(matches!(bad("trustedkey x")[0], (1, 12, DiagnosticKind::BadValue { .. })));
    assert!(matches!(bad("trustedkey (1 ... 5")[0], (1, 12, DiagnosticKind::BadValue { .. })));
    assert!(matches!(bad("trustedkey (1 5)")[0], (1, 12, DiagnosticKind::BadValue { .. })));
    assert_eq!(
        bad("trustedkey (20 ... 10)"),
        vec![(1, 12, DiagnosticKind::EmptyKeyRange { first: 20, last: 10 })]
    );
    assert!(matches!(bad("trustedkey")[0].2, DiagnosticKind::MissingValue { .. }));
}

#[test]
fn key_on_a_source_needs_a_key_file_and_trust() {
    // Fine: in the file and trusted (a range counts).
    let l = ok("keys /k\ntrustedkey (1 ... 9)\nserver a.example key 5\npool p.example key 9\n");
    assert_eq!(l.config.sources[0].options.key, Some(5));
    assert_eq!(l.config.sources[1].options.key, Some(9));
    // No keys line: error at the key's value.
    assert_eq!(
        errors("trustedkey 5\nserver a.example iburst key 5\n"),
        vec![(2, 29, DiagnosticKind::KeyWithoutKeysFile { directive: "key", key: 5 })]
    );
    // Not trusted.
    assert_eq!(
        errors("keys /k\ntrustedkey 4\nserver a.example key 5\n"),
        vec![(3, 22, DiagnosticKind::KeyNotTrusted { key: 5 })]
    );
    let shown = parse("keys /k\nserver a.example key 5\n").unwrap_err().to_string();
    assert!(
        shown.starts_with(
            "/etc/ntp.conf:2:22: error: key 5 is not trusted; add `trustedkey 5` (a key \
             authenticates only when `trustedkey` lists it, as in ntpd)"
        ),
        "{shown}"
    );
    // Range of key ids: 1 to 2^32-1.
    assert!(matches!(
        errors(&format!("{KEYS}server a.example key 0\n"))[0],
        (2, 22, DiagnosticKind::BadValue { .. })
    ));
    // The same checks for controlkey.
    assert_eq!(
        errors("controlkey 7\n"),
        vec![(1, 12, DiagnosticKind::KeyWithoutKeysFile { directive: "controlkey", key: 7 })]
    );
    assert_eq!(
        errors("keys /k\ncontrolkey 7\n"),
        vec![(2, 12, DiagnosticKind::KeyNotTrusted { key: 7 })]
    );
    let l = ok("keys /k\ntrustedkey 7\ncontrolkey 7\nrequestkey 7\n");
    assert_eq!(l.config.auth.control_key, Some(7));
    assert_eq!(l.warnings[0].kind, DiagnosticKind::RequestKeyUnused);
}

#[test]
fn manycastclient_lines() {
    let l = ok("keys /k\ntrustedkey 3\n\
                manycastclient 239.1.2.3 key 3 ttl 4 maxsources 6 iburst minpoll 0 maxpoll 4\n\
                manycastclient ff15::123 key 3 port 12345\n");
    let s = &l.config.sources;
    assert_eq!(s[0].kind, SourceKind::Manycast);
    assert_eq!(
        (s[0].options.key, s[0].options.ttl, s[0].options.maxsources),
        (Some(3), Some(4), Some(6))
    );
    assert_eq!((s[1].port, s[1].options.ttl), (12345, None));
    // Unauthenticated manycast is refused.
    assert_eq!(
        errors("manycastclient 239.1.2.3\n"),
        vec![(1, 1, DiagnosticKind::ManycastWithoutKey)]
    );
    // A group address, never a name or a unicast address.
    for host in ["192.0.2.1", "pool.example", "2001:db8::1"] {
        let e = errors(&format!("{KEYS}trustedkey 3\nmanycastclient {host} key 3\n"));
        assert!(matches!(e[0], (3, 16, DiagnosticKind::NotMulticast { .. })), "{host}: {e:?}");
    }
    // ttl is for manycastclient; on server lines it stays ntpd's ignored option.
    let e = errors(&format!("{KEYS}trustedkey 3\nmanycastclient 239.1.1.1 key 3 ttl 256\n"));
    assert!(matches!(e[0], (3, 36, DiagnosticKind::BadValue { .. })));
    let l = ok("server a.example ttl 8\n");
    assert!(matches!(l.warnings[0].kind, DiagnosticKind::UnsupportedOption { .. }));
}

#[test]
fn manycastserver_needs_keys_and_a_listen_address() {
    let good = "keys /k\ntrustedkey 3\ninterface listen 10.0.0.1\nmanycastserver 239.1.1.1 ff15::1 port 1123\n";
    let c = ok(good).config;
    let groups: Vec<_> = c.manycast_servers.iter().map(|m| (m.group.to_string(), m.port)).collect();
    assert_eq!(groups, vec![("239.1.1.1".into(), 1123), ("ff15::1".into(), 1123)]);
    assert_eq!(
        errors("interface listen 10.0.0.1\nmanycastserver 239.1.1.1\n"),
        vec![(2, 1, DiagnosticKind::ManycastServerWithoutKeys { missing: "no `keys` line" })]
    );
    assert_eq!(
        errors("keys /k\ninterface listen 10.0.0.1\nmanycastserver 239.1.1.1\n"),
        vec![(3, 1, DiagnosticKind::ManycastServerWithoutKeys { missing: "no `trustedkey`" })]
    );
    assert_eq!(
        errors("keys /k\ntrustedkey 1\nmanycastserver 239.1.1.1\n"),
        vec![(3, 1, DiagnosticKind::ManycastServerWithoutListen)]
    );
    assert!(matches!(
        errors("manycastserver 10.0.0.1\n")[0],
        (1, 16, DiagnosticKind::NotMulticast { .. })
    ));
}

#[test]
fn ttl_ring() {
    assert_eq!(ok("ttl 1 8 32 127\n").config.ttl, vec![1, 8, 32, 127]);
    assert!(matches!(errors("ttl 8 4\n")[0], (1, 5, DiagnosticKind::BadTtlList { .. })));
    assert!(matches!(
        errors("ttl 1 2 3 4 5 6 7 8 9\n")[0],
        (1, 5, DiagnosticKind::BadTtlList { .. })
    ));
    assert!(matches!(errors("ttl 0\n")[0], (1, 5, DiagnosticKind::BadValue { .. })));
}

#[test]
fn node_settings_from_keys_and_restrict() {
    let text = "keys /k\ntrustedkey 1 (3 ... 4) 9\ncontrolkey 3\n\
                server 192.0.2.1 key 1\nserver 192.0.2.2 key 2\n\
                restrict default notrust nomodify\nttl 1 2\n";
    // key 2 is not trusted: the file is refused...
    assert!(parse(text).is_err());
    let text = text.replace("key 2\n", "key 4\n");
    let config = ok(&text).config;
    let node = node_config(&config, ClockMode::Observe);
    assert_eq!(node.sources[0].spec.key, Some(KeyId(1)));
    assert_eq!(node.ttl_ring, vec![1, 2]);
    assert!(node.server.default_flags.contains(RestrictFlags::NOTRUST));
    assert!(node.server.default_flags.contains(RestrictFlags::NOMODIFY));
    // ... and the key file decides what is usable: 1, 3, 4 are in it; 4 has no key.
    let file = parse_keys(Path::new("/k"), b"1 MD5 one\n3 SHA1 three\n5 MD5 five\n").expect("keys");
    let auth = auth_config(&config.auth, Some(file));
    assert_eq!(auth.control_key, Some(KeyId(3)));
    assert!(auth.keys.trusted_key(KeyId(1)).is_ok());
    assert!(auth.keys.trusted_key(KeyId(3)).is_ok(), "a range trusts the keys in it");
    assert!(auth.keys.trusted_key(KeyId(5)).is_err(), "5 is in the file but not trusted");
    assert!(auth.keys.is_trusted(KeyId(9)), "a single id is trusted before its key exists");
    assert_eq!(unusable_keys(&config, &auth.keys), vec![("/etc/ntp.conf:5".to_string(), 4)]);
}
