//! Behaviour of `parse_str`: defaults, every option, hosts, includes,
//! duplicates, warnings versus errors, and how diagnostics are rendered.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use rntp_config::{
    parse_str, Config, ConfigErrors, DiagnosticKind, DiscardConfig, Expected, Host, HostName,
    HostNameError, ListenConfig, Loaded, MakeStepConfig, Origin, RestrictConfig,
    RestrictFlagsConfig, RestrictTarget, Severity, SourceKind, SourceOptions, TinkerConfig,
    TosConfig,
};

const MAIN: &str = "/etc/ntp.conf";

/// Parses `text` as /etc/ntp.conf with no include files available.
fn parse(text: &str) -> Result<Loaded, ConfigErrors> {
    parse_with(text, &HashMap::new())
}

/// Parses `text` as /etc/ntp.conf with an in-memory file system for includes.
fn parse_with(text: &str, files: &HashMap<PathBuf, String>) -> Result<Loaded, ConfigErrors> {
    parse_str(Path::new(MAIN), text, &mut |p| {
        files
            .get(p)
            .cloned()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "No such file or directory"))
    })
}

fn ok(text: &str) -> Loaded {
    parse(text).unwrap_or_else(|e| panic!("expected success, got:\n{e}"))
}

fn errors(text: &str) -> Vec<(u32, u32, DiagnosticKind)> {
    let e = parse(text).expect_err("expected errors");
    e.errors.into_iter().map(|d| (d.line, d.col, d.kind)).collect()
}

fn only_error(text: &str) -> (u32, u32, DiagnosticKind) {
    let mut e = errors(text);
    assert_eq!(e.len(), 1, "{e:?}");
    e.remove(0)
}

fn name(s: &str) -> Host {
    Host::Name(HostName::new(s).unwrap())
}

fn bad(what: &str, min: i64, max: i64, found: &str) -> DiagnosticKind {
    DiagnosticKind::BadValue {
        what: what.into(),
        expected: Expected::Integer { min, max },
        found: found.into(),
    }
}

#[test]
fn defaults() {
    let c = Config::default();
    assert!(c.sources.is_empty() && c.driftfile.is_none() && c.resolvers.is_empty());
    // No server unless asked for: no listen address, no restrict rule.
    assert!(c.listen.is_empty() && c.restrict.is_empty());
    assert_eq!(c.discard, DiscardConfig { average_log2: 3, minimum_secs: 2 });
    assert_eq!(
        RestrictFlagsConfig::default(),
        RestrictFlagsConfig {
            ignore: false,
            noserve: false,
            noquery: false,
            kod: false,
            limited: false,
            notrust: false,
            nomodify: false,
        }
    );
    assert_eq!(c.tos, TosConfig { minclock: 3, maxclock: 10, minsane: 1, orphan: None });
    assert_eq!(
        SourceOptions::default(),
        SourceOptions {
            iburst: false,
            burst: false,
            prefer: false,
            noselect: false,
            minpoll: 6,
            maxpoll: 10,
            version: 4,
            maxsources: None,
            family: rntp_config::AddressFamily::Any,
            key: None,
            ttl: None,
        }
    );
    // An empty or comment-only file is a valid, empty configuration.
    assert_eq!(ok("").config, Config::default());
    assert_eq!(ok("# nothing\n\n   \n").config, Config::default());

    let s = &ok("server ntp.example.com\n").config.sources[0];
    assert_eq!(s.kind, SourceKind::Server);
    assert_eq!(s.port, 123);
    assert_eq!(s.options, SourceOptions::default());
    assert_eq!((s.origin.file.as_path(), s.origin.line), (Path::new(MAIN), 1));
}

#[test]
fn every_source_option() {
    let c = ok(
        "server 192.0.2.1 iburst burst prefer noselect minpoll 3 maxpoll 12 version 3 port 1123\n\
                pool pool.example.org maxsources 8 version 2 minpoll -2 maxpoll -2 port 65535\n",
    )
    .config;
    assert_eq!(c.sources[0].host, Host::Ip("192.0.2.1".parse().unwrap()));
    assert_eq!(c.sources[0].port, 1123);
    assert_eq!(
        c.sources[0].options,
        SourceOptions {
            iburst: true,
            burst: true,
            prefer: true,
            noselect: true,
            minpoll: 3,
            maxpoll: 12,
            version: 3,
            maxsources: None,
            family: rntp_config::AddressFamily::Any,
            key: None,
            ttl: None,
        }
    );
    assert_eq!(c.sources[1].kind, SourceKind::Pool);
    assert_eq!(c.sources[1].port, 65535);
    assert_eq!(
        c.sources[1].options,
        SourceOptions {
            maxsources: Some(8),
            version: 2,
            minpoll: -2,
            maxpoll: -2,
            ..Default::default()
        }
    );
}

#[test]
fn option_ranges() {
    assert_eq!(only_error("server a.example minpoll -3\n"), (1, 26, bad("minpoll", -2, 17, "-3")));
    assert_eq!(only_error("server a.example maxpoll 18\n"), (1, 26, bad("maxpoll", -2, 17, "18")));
    assert_eq!(only_error("server a.example version 0\n"), (1, 26, bad("version", 1, 4, "0")));
    assert_eq!(only_error("server a.example version 5\n"), (1, 26, bad("version", 1, 4, "5")));
    assert_eq!(only_error("server a.example port 0\n"), (1, 23, bad("port", 1, 65535, "0")));
    assert_eq!(
        only_error("server a.example port 65536\n"),
        (1, 23, bad("port", 1, 65535, "65536"))
    );
    assert_eq!(
        only_error("pool a.example maxsources 65\n"),
        (1, 27, bad("maxsources", 1, 64, "65"))
    );
    // Huge numbers are out of range, not a crash.
    assert_eq!(
        only_error("server a.example minpoll 99999999999999999999999\n"),
        (1, 26, bad("minpoll", -2, 17, "99999999999999999999999"))
    );
    // A missing value at the end of the line points just past the option.
    assert_eq!(
        only_error("server a.example minpoll\n"),
        (
            1,
            25,
            DiagnosticKind::MissingValue {
                what: "minpoll".into(),
                expected: Expected::Integer { min: -2, max: 17 }
            }
        )
    );
    // An option word where a value belongs is named, and is still applied
    // (no cascade of "unknown option" errors).
    assert_eq!(
        only_error("server a.example minpoll iburst\n"),
        (1, 26, bad("minpoll", -2, 17, "iburst"))
    );
}

#[test]
fn minpoll_above_maxpoll_is_an_error_including_against_defaults() {
    assert_eq!(
        only_error("server a.example maxpoll 4 minpoll 5\n"),
        (1, 28, DiagnosticKind::PollRange { minpoll: 5, maxpoll: 4 })
    );
    // Only maxpoll written: it is below the default minpoll of 6.
    assert_eq!(
        only_error("server a.example maxpoll 4\n"),
        (1, 18, DiagnosticKind::PollRange { minpoll: 6, maxpoll: 4 })
    );
    assert!(parse("server a.example minpoll 8 maxpoll 8\n").is_ok());
}

#[test]
fn maxsources_only_on_pool_lines() {
    assert_eq!(
        only_error("server a.example maxsources 4\n"),
        (
            1,
            18,
            DiagnosticKind::OptionNotAllowed {
                option: "maxsources".into(),
                directive: "server".into(),
                allowed_on: "pool or manycastclient",
            }
        )
    );
}

#[test]
fn unsupported_ntpd_options_warn_and_keep_the_source() {
    let l = ok("server a.example mode 3 iburst xleave ttl 8 true preempt bias 0.5\n\
                server -6 b.example holdover 5 minpoll 4\n");
    assert_eq!(l.config.sources.len(), 2);
    assert!(l.config.sources[0].options.iburst, "options after ignored ones still apply");
    assert_eq!(l.config.sources[1].options.family, rntp_config::AddressFamily::V6);
    assert_eq!(l.config.sources[1].options.minpoll, 4);
    let options: Vec<_> = l
        .warnings
        .iter()
        .map(|w| match &w.kind {
            DiagnosticKind::UnsupportedOption { option, .. } => (w.line, w.col, option.as_str()),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        options,
        vec![
            (1, 18, "mode"),
            (1, 32, "xleave"),
            (1, 39, "ttl"),
            (1, 45, "true"),
            (1, 50, "preempt"),
            (1, 58, "bias"),
            (2, 21, "holdover"),
        ]
    );
    // An ignored option that takes a value still needs one.
    assert_eq!(
        only_error("server a.example mode\n"),
        (1, 22, DiagnosticKind::MissingValue { what: "mode".into(), expected: Expected::Value })
    );
}

fn auth(directive: &str, option: &str) -> DiagnosticKind {
    DiagnosticKind::AuthenticationNotSupported {
        directive: directive.into(),
        option: option.into(),
    }
}

/// Issues 14 and 15: an option that asks for Autokey or NTS is an error,
/// never a warning and a silent downgrade to unauthenticated time.
#[test]
fn authentication_options_are_errors_at_their_position() {
    let e = parse(
        "pool pool.example.org autokey\n\
         server -6 b.example nts noval ca /etc/ssl/ca.pem aead AES_SIV_CMAC_256\n\
         server c.example ask nts.example:4460 require nts.example cert /c.pem expire 3600\n\
         peer d.example ident group1\n",
    )
    .unwrap_err();
    let got: Vec<_> = e.errors.iter().map(|d| (d.line, d.col, d.kind.clone())).collect();
    assert_eq!(
        got,
        vec![
            (1, 23, auth("pool", "autokey")),
            (2, 21, auth("server", "nts")),
            (2, 25, auth("server", "noval")),
            (2, 31, auth("server", "ca /etc/ssl/ca.pem")),
            (2, 50, auth("server", "aead AES_SIV_CMAC_256")),
            (3, 18, auth("server", "ask nts.example:4460")),
            (3, 39, auth("server", "require nts.example")),
            (3, 59, auth("server", "cert /c.pem")),
            (3, 71, auth("server", "expire 3600")),
            (4, 16, auth("peer", "ident group1")),
        ]
    );
    // None of these sources is configured: the file does not load.
    assert!(e.errors.iter().all(|d| d.severity == Severity::Error));
    // The message says what to do; the caret covers the option and its value.
    assert_eq!(
        e.errors[3].to_string(),
        "/etc/ntp.conf:2:31: error: `ca /etc/ssl/ca.pem` on this server line asks for Autokey or \
         NTS authentication, which rntpd does not support; remove `ca /etc/ssl/ca.pem` (rntpd \
         authenticates with symmetric keys: `key N` with `keys` and `trustedkey`) or use another \
         daemon\n\
         2 | server -6 b.example nts noval ca /etc/ssl/ca.pem aead AES_SIV_CMAC_256\n  \
           |                               ^^^^^^^^^^^^^^^^^^"
    );
    // Without its value (end of line, or another option follows), the
    // option alone is named: one error, not two.
    assert_eq!(only_error("server a.example ident\n"), (1, 18, auth("server", "ident")));
    assert_eq!(only_error("server a.example ca iburst\n"), (1, 18, auth("server", "ca")));
}

/// Issue 15: the key directives are used; `requestkey` warns that rntpd has
/// no ntpdc to secure; the others of ntpd's family stay warnings.
#[test]
fn key_directives_are_used() {
    let l = ok("keys /etc/ntp/keys\ntrustedkey 4 8 42\nrequestkey 8\ncontrolkey 8\n\
                crypto pw x\nkeysdir /etc/ntp\nnts enable\nserver a.example key 42\n");
    assert_eq!(l.config.sources[0].options.key, Some(42));
    let auth = &l.config.auth;
    assert_eq!(auth.keys.as_ref().map(|k| k.path.as_path()), Some(Path::new("/etc/ntp/keys")));
    assert_eq!(auth.trusted, vec![(4, 4), (8, 8), (42, 42)]);
    assert_eq!((auth.control_key, auth.request_key), (Some(8), Some(8)));
    let w: Vec<_> = l.warnings.iter().map(|w| (w.line, w.kind.clone())).collect();
    assert_eq!(w[0], (3, DiagnosticKind::RequestKeyUnused));
    assert_eq!(w.len(), 4);
    assert!(w[1..].iter().all(|(_, k)| matches!(k, DiagnosticKind::UnsupportedDirective { .. })));
}

/// Issue 14: `peer` is polled as a server, with a warning that says so.
#[test]
fn peer_is_polled_as_a_server_with_a_warning() {
    let l = ok("peer 192.0.2.7 iburst minpoll 4\npeer -4 peer.example prefer\n");
    let c = &l.config;
    assert_eq!(c.sources.len(), 2);
    assert!(c.sources.iter().all(|s| s.kind == SourceKind::Server));
    assert_eq!(c.sources[0].host, Host::Ip("192.0.2.7".parse().unwrap()));
    assert_eq!(
        c.sources[0].options,
        SourceOptions { iburst: true, minpoll: 4, ..SourceOptions::default() }
    );
    assert_eq!(c.sources[1].options.family, rntp_config::AddressFamily::V4);
    assert!(c.sources[1].options.prefer);
    assert_eq!(c.sources[1].origin, origin(2));
    let w: Vec<_> = l.warnings.iter().map(|w| (w.line, w.col, w.kind.clone())).collect();
    assert_eq!(w, vec![(1, 1, DiagnosticKind::PeerAsServer), (2, 1, DiagnosticKind::PeerAsServer)]);
    assert_eq!(
        l.warnings[0].to_string(),
        "/etc/ntp.conf:1:1: warning: `peer` asks for symmetric active mode, which rntpd does not \
         support; polled as a server (write `server` to silence this warning)"
    );
    // A peer line is checked like a server line, naming `peer`.
    assert_eq!(
        only_error("peer a.example maxsources 2\n"),
        (
            1,
            16,
            DiagnosticKind::OptionNotAllowed {
                option: "maxsources".into(),
                directive: "peer".into(),
                allowed_on: "pool or manycastclient",
            }
        )
    );
    assert!(matches!(only_error("peer\n").2, DiagnosticKind::MissingValue { .. }));
}

/// Issue 14: `server -4 X` and `server -6 X` are two sources, each with its
/// family; the configuration layer never merges lines.
#[test]
fn same_name_with_both_families_is_two_sources() {
    let c = ok("server -4 time.example iburst\nserver -6 time.example iburst\n\
                pool --ipv4 pool.example\npool --ipv6 pool.example\nserver time.example\n")
    .config;
    let got: Vec<_> =
        c.sources.iter().map(|s| (s.kind, s.host.to_string(), s.options.family)).collect();
    use rntp_config::AddressFamily::{Any, V4, V6};
    assert_eq!(
        got,
        vec![
            (SourceKind::Server, "time.example".into(), V4),
            (SourceKind::Server, "time.example".into(), V6),
            (SourceKind::Pool, "pool.example".into(), V4),
            (SourceKind::Pool, "pool.example".into(), V6),
            (SourceKind::Server, "time.example".into(), Any),
        ]
    );
    // The last flag wins when several are given.
    assert_eq!(ok("server -4 -6 a.example\n").config.sources[0].options.family, V6);
}

#[test]
fn unknown_option_is_an_error_with_suggestion() {
    let (line, col, kind) = only_error("pool a.example maxsource 3\n");
    assert_eq!((line, col), (1, 16));
    match kind {
        DiagnosticKind::UnknownOption { directive, found, suggestion, .. } => {
            assert_eq!((directive.as_str(), found.as_str()), ("pool", "maxsource"));
            assert_eq!(suggestion, Some("maxsources"));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn duplicate_option_warns_and_last_wins() {
    let l = ok("server a.example minpoll 4 minpoll 5\n");
    assert_eq!(l.config.sources[0].options.minpoll, 5);
    assert_eq!(l.warnings.len(), 1);
    assert_eq!((l.warnings[0].line, l.warnings[0].col), (1, 28));
    assert!(matches!(l.warnings[0].kind, DiagnosticKind::DuplicateOption { .. }));
}

#[test]
fn duplicate_sources_are_kept_in_file_order() {
    let c =
        ok("server a.example iburst\npool p.example\nserver a.example iburst\nserver A.EXAMPLE.\n")
            .config;
    let got: Vec<_> = c.sources.iter().map(|s| (s.kind, s.host.clone(), s.origin.line)).collect();
    assert_eq!(
        got,
        vec![
            (SourceKind::Server, name("a.example"), 1),
            (SourceKind::Pool, name("p.example"), 2),
            (SourceKind::Server, name("a.example"), 3),
            (SourceKind::Server, name("a.example"), 4),
        ]
    );
}

#[test]
fn ipv6_literals() {
    let c = ok(
        "server 2001:db8::1\nserver [2001:db8::2]\nserver ::1 port 1123\nserver ::ffff:192.0.2.1\n",
    )
    .config;
    let ips: Vec<_> = c.sources.iter().map(|s| s.host.clone()).collect();
    let ip = |s: &str| Host::Ip(s.parse::<IpAddr>().unwrap());
    assert_eq!(ips, vec![ip("2001:db8::1"), ip("2001:db8::2"), ip("::1"), ip("::ffff:192.0.2.1")]);
    assert_eq!(c.sources[2].port, 1123);

    assert_eq!(
        only_error("server fe80::1%eth0\n"),
        (1, 8, DiagnosticKind::ScopedAddress { found: "fe80::1%eth0".into() })
    );
    assert_eq!(
        only_error("server [fe80::1]%eth0\n"),
        (1, 8, DiagnosticKind::ScopedAddress { found: "[fe80::1]%eth0".into() })
    );
    assert_eq!(
        only_error("server [2001:db8::zz]\n"),
        (
            1,
            8,
            DiagnosticKind::BadValue {
                what: "server".into(),
                expected: Expected::HostOrAddress,
                found: "[2001:db8::zz]".into(),
            }
        )
    );
}

#[test]
fn hostname_validation() {
    let host = |s: &str| ok(&format!("pool {s}\n")).config.sources[0].host.clone();
    assert_eq!(host("Pool.NTP.org."), name("pool.ntp.org"));
    assert_eq!(host("localhost"), name("localhost"));
    assert_eq!(host("a-b.c0"), name("a-b.c0"));

    let reason = |s: &str| match only_error(&format!("server {s}\n")).2 {
        DiagnosticKind::InvalidHost { reason, .. } => reason,
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(reason("ntp_1.example"), HostNameError::InvalidCharacter { ch: '_' });
    assert_eq!(reason("ntp.example.com:123"), HostNameError::InvalidCharacter { ch: ':' });
    assert_eq!(reason("-ntp.example"), HostNameError::HyphenAtLabelEdge);
    assert_eq!(reason("ntp..example"), HostNameError::EmptyLabel);
    assert_eq!(
        reason(&format!("{}.example", "x".repeat(64))),
        HostNameError::LabelTooLong { len: 64 }
    );
    assert_eq!(reason("192.0.2.300"), HostNameError::NumericTopLevel);
    let msg = parse("server 192.0.2.300\n").unwrap_err().errors[0].kind.to_string();
    assert_eq!(
        msg,
        "server expects a host name or an IP address, found \"192.0.2.300\": this looks like an \
         IPv4 address but is not a valid one"
    );
}

#[test]
fn missing_host() {
    assert_eq!(
        only_error("pool\n"),
        (
            1,
            5,
            DiagnosticKind::MissingValue { what: "pool".into(), expected: Expected::HostOrAddress }
        )
    );
}

#[test]
fn refclock_pseudo_addresses_warn_and_are_skipped() {
    let l = ok("server 127.127.1.0 prefer\nserver 127.0.0.1\n");
    assert_eq!(l.config.sources.len(), 1);
    assert_eq!(l.config.sources[0].host, Host::Ip("127.0.0.1".parse().unwrap()));
    assert!(matches!(l.warnings[0].kind, DiagnosticKind::RefclockAddress { .. }));
}

#[test]
fn tos_values_and_cross_checks() {
    let t = ok("tos minclock 2 maxclock 7\ntos minsane 2 orphan 5\n").config.tos;
    assert_eq!(t, TosConfig { minclock: 2, maxclock: 7, minsane: 2, orphan: Some(5) });

    // ntpd-only keywords warn and consume their value.
    let l = ok("tos ceiling 15 floor 1 cohort 0 mindist 0.02 orphanwait 300 minclock 4\n");
    assert_eq!(l.config.tos.minclock, 4);
    assert_eq!(l.warnings.len(), 5);

    assert_eq!(only_error("tos orphan 16\n"), (1, 12, bad("orphan", 1, 15, "16")));
    assert_eq!(only_error("tos minclock 0\n"), (1, 14, bad("minclock", 1, 255, "0")));
    // The most recently written side of a violated pair is blamed.
    assert_eq!(
        only_error("tos minsane 4\ntos maxclock 3 minclock 2\n"),
        (
            2,
            14,
            DiagnosticKind::TosOrder {
                lower: "minsane",
                lower_value: 4,
                upper: "maxclock",
                upper_value: 3
            }
        )
    );
    let e = errors("tos maxclock 2\n");
    assert_eq!(
        e,
        vec![(
            1,
            14,
            DiagnosticKind::TosOrder {
                lower: "minclock",
                lower_value: 3,
                upper: "maxclock",
                upper_value: 2
            }
        )]
    );
    assert!(matches!(
        only_error("tos minclok 3\n").2,
        DiagnosticKind::UnknownOption { suggestion: Some("minclock"), .. }
    ));
    assert!(matches!(only_error("tos\n").2, DiagnosticKind::MissingValue { .. }));
}

#[test]
fn driftfile() {
    assert_eq!(
        ok("driftfile /var/lib/rntpd/drift\n").config.driftfile,
        Some("/var/lib/rntpd/drift".into())
    );
    // Quoted paths may contain spaces and '#'.
    assert_eq!(
        ok("driftfile \"/var/lib/my drift#1\" # comment\n").config.driftfile,
        Some("/var/lib/my drift#1".into())
    );
    let l = ok("driftfile /a\ndriftfile /b\n");
    assert_eq!(l.config.driftfile, Some("/b".into()));
    assert_eq!(
        l.warnings[0].kind,
        DiagnosticKind::RepeatedDirective {
            directive: "driftfile".into(),
            previous_file: MAIN.into(),
            previous_line: 1
        }
    );
    assert!(matches!(
        only_error("driftfile /a /b\n"),
        (1, 14, DiagnosticKind::UnexpectedArgument { .. })
    ));
    assert!(matches!(only_error("driftfile \"\"\n"), (1, 11, DiagnosticKind::BadValue { .. })));
}

#[test]
fn resolver_extension() {
    let c =
        ok("resolver 192.0.2.53 [2001:db8::53]:5353\nresolver ::1 [::2] 192.0.2.54:5300\n").config;
    let want: Vec<SocketAddr> =
        ["192.0.2.53:53", "[2001:db8::53]:5353", "[::1]:53", "[::2]:53", "192.0.2.54:5300"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
    assert_eq!(c.resolvers, want);
    assert!(matches!(
        only_error("resolver\n"),
        (1, 9, DiagnosticKind::MissingValue { expected: Expected::ResolverAddress, .. })
    ));
    assert!(matches!(
        only_error("resolver 192.0.2.53 dns.example.com\n"),
        (1, 21, DiagnosticKind::BadValue { expected: Expected::ResolverAddress, .. })
    ));
}

#[test]
fn known_and_unknown_directives() {
    let l = ok("pidfile /x\nmru maxdepth 100\nrefclock shm unit 0\nnts enable\n");
    assert!(l.warnings.iter().all(|w| w.severity == Severity::Warning));
    assert_eq!(
        l.warnings.iter().map(|w| w.kind.to_string()).collect::<Vec<_>>(),
        [
            "`pidfile` is not supported by rntpd yet; line ignored",
            "`mru` is not supported by rntpd yet; line ignored",
            "`refclock` is not supported by rntpd yet; line ignored",
            "`nts` is not supported by rntpd yet; line ignored",
        ]
    );
    assert_eq!(
        only_error("  frobnicate 1\n"),
        (1, 3, DiagnosticKind::UnknownDirective { found: "frobnicate".into(), suggestion: None })
    );
    // Keywords are case-sensitive, as in ntpd; the suggestion helps.
    assert_eq!(
        only_error("Server a.example\n").2,
        DiagnosticKind::UnknownDirective { found: "Server".into(), suggestion: Some("server") }
    );
}

#[test]
fn all_errors_are_collected_in_reading_order() {
    let e = errors("serverr a\nserver a.example minpoll x maxpoll y\ntos minclock 99\nbogus\n");
    let pos: Vec<_> = e.iter().map(|(l, c, _)| (*l, *c)).collect();
    // Line 3's cross-check is found after all lines are read but reported in place.
    assert_eq!(pos, vec![(1, 1), (2, 26), (2, 36), (3, 14), (4, 1)]);
}

#[test]
fn crlf_and_tabs() {
    let c = ok("server\ta.example\tiburst\r\npool b.example\r\n").config;
    assert_eq!(c.sources.len(), 2);
    assert!(c.sources[0].options.iburst);
}

#[test]
fn unterminated_quote() {
    assert_eq!(only_error("driftfile \"/var/lib\n"), (1, 11, DiagnosticKind::UnterminatedQuote));
}

#[test]
fn includefile_relative_absolute_and_origins() {
    let files: HashMap<PathBuf, String> = [
        ("/etc/ntp.d/servers.conf", "server a.example\nincludefile more/x.conf\n"),
        ("/etc/ntp.d/more/x.conf", "server b.example\n"),
        ("/opt/abs.conf", "pool c.example\n"),
    ]
    .into_iter()
    .map(|(p, t)| (PathBuf::from(p), t.to_string()))
    .collect();
    let c = parse_with(
        "includefile ntp.d/servers.conf\nincludefile /opt/abs.conf\nserver d.example\n",
        &files,
    )
    .unwrap_or_else(|e| panic!("{e}"))
    .config;
    let got: Vec<_> = c
        .sources
        .iter()
        .map(|s| (s.host.to_string(), s.origin.file.to_string_lossy().into_owned(), s.origin.line))
        .collect();
    assert_eq!(
        got,
        [
            ("a.example", "/etc/ntp.d/servers.conf", 1),
            ("b.example", "/etc/ntp.d/more/x.conf", 1),
            ("c.example", "/opt/abs.conf", 1),
            ("d.example", MAIN, 3),
        ]
        .map(|(h, f, l)| (h.to_string(), f.to_string(), l))
    );
}

#[test]
fn includefile_missing_names_the_includefile_line() {
    let e = parse("server a.example\nincludefile  missing.conf\n").unwrap_err();
    assert_eq!(e.errors.len(), 1);
    let d = &e.errors[0];
    assert_eq!((d.file.as_path(), d.line, d.col), (Path::new(MAIN), 2, 14));
    assert_eq!(
        d.kind,
        DiagnosticKind::IncludeFailed {
            path: "/etc/missing.conf".into(),
            reason: "No such file or directory".into()
        }
    );
    assert_eq!(
        d.to_string(),
        "/etc/ntp.conf:2:14: error: cannot read includefile \"/etc/missing.conf\": No such file or \
         directory\n2 | includefile  missing.conf\n  |              ^^^^^^^^^^^^"
    );
    assert!(matches!(only_error("includefile\n").2, DiagnosticKind::MissingValue { .. }));
    assert!(matches!(only_error("includefile a b\n").2, DiagnosticKind::UnexpectedArgument { .. }));
}

#[test]
fn includefile_loops_are_errors() {
    // Self-include, through a differently spelled path.
    let e = parse("includefile ./../etc/ntp.conf\n").unwrap_err();
    assert_eq!(
        e.errors[0].kind,
        DiagnosticKind::IncludeLoop { path: "/etc/./../etc/ntp.conf".into() }
    );

    // a -> b -> a: reported in b, at b's includefile line.
    let files: HashMap<PathBuf, String> = [
        ("/etc/a.conf", "server a.example\nincludefile b.conf\n"),
        ("/etc/b.conf", "# b\nincludefile a.conf\n"),
    ]
    .into_iter()
    .map(|(p, t)| (PathBuf::from(p), t.to_string()))
    .collect();
    let e = parse_with("includefile a.conf\n", &files).unwrap_err();
    assert_eq!(e.errors.len(), 1);
    let d = &e.errors[0];
    assert_eq!((d.file.as_path(), d.line, d.col), (Path::new("/etc/b.conf"), 2, 13));
    assert_eq!(d.kind, DiagnosticKind::IncludeLoop { path: "/etc/a.conf".into() });

    // Including the same file twice side by side is not a loop.
    let files: HashMap<PathBuf, String> =
        [(PathBuf::from("/etc/s.conf"), "server s.example\n".to_string())].into_iter().collect();
    let c = parse_with("includefile s.conf\nincludefile s.conf\n", &files).unwrap().config;
    assert_eq!(c.sources.len(), 2);
}

#[test]
fn includefile_depth_limit() {
    // /etc/0.conf includes 1.conf, ... each one level deeper.
    let files: HashMap<PathBuf, String> = (0..20)
        .map(|i| (PathBuf::from(format!("/etc/{i}.conf")), format!("includefile {}.conf\n", i + 1)))
        .collect();
    let e = parse_with("includefile 0.conf\n", &files).unwrap_err();
    assert_eq!(e.errors.len(), 1);
    let d = &e.errors[0];
    // ntp.conf is depth 0 and 0.conf..9.conf are depths 1..10; 9.conf may
    // not include a further file.
    assert_eq!(d.file, Path::new("/etc/9.conf"));
    assert_eq!(d.kind, DiagnosticKind::IncludeTooDeep { path: "/etc/10.conf".into(), limit: 10 });
}

#[test]
fn errors_inside_includes_name_the_included_file() {
    let files: HashMap<PathBuf, String> =
        [(PathBuf::from("/etc/x.conf"), "\n\nserver a.example minpoll 99\n".to_string())]
            .into_iter()
            .collect();
    let e = parse_with("includefile x.conf\n", &files).unwrap_err();
    let d = &e.errors[0];
    assert_eq!((d.file.as_path(), d.line, d.col), (Path::new("/etc/x.conf"), 3, 26));
}

#[test]
fn rendering_is_terminal_safe() {
    let e = parse("serv\u{1b}[31mer a\n").unwrap_err();
    let shown = e.to_string();
    assert!(!shown.contains('\u{1b}'), "{shown:?}");
    assert!(shown.contains("serv\\u{1b}[31mer"), "{shown:?}");
}

#[test]
fn severities_and_error_trait() {
    fn is_error<E: std::error::Error + Send + Sync + 'static>(_: &E) {}
    let e = parse("bogus\ninterface ignore wildcard\n").unwrap_err();
    is_error(&e);
    assert_eq!(e.errors[0].severity, Severity::Error);
    assert_eq!(e.warnings[0].severity, Severity::Warning);
    assert_eq!(e.errors[0].source_line(), Some("bogus"));
    // One diagnostic after the other: the error (3 lines) then the warning.
    assert_eq!(e.to_string().lines().count(), 4);
}

#[test]
fn resolve_floor_and_ceiling() {
    let l = ok("resolve floor 60 ceiling 600\n");
    assert_eq!(l.config.resolve, rntp_config::ResolveConfig { floor: 60, ceiling: 600 });
    assert_eq!(ok("").config.resolve, rntp_config::ResolveConfig::default());
    let (line, col, kind) = only_error("resolve ceiling 60\nresolve floor 600\n");
    assert_eq!((line, col), (2, 15));
    assert_eq!(kind, DiagnosticKind::ResolveOrder { floor: 600, ceiling: 60 });
    assert!(matches!(only_error("resolve floor 0\n").2, DiagnosticKind::BadValue { .. }));
}

fn origin(line: u32) -> Origin {
    Origin { file: MAIN.into(), line }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn listen(addr: &str, port: u16, line: u32) -> ListenConfig {
    ListenConfig { addr: ip(addr), port, origin: origin(line) }
}

fn net(addr: &str, prefix_len: u8) -> RestrictTarget {
    RestrictTarget::Net { addr: ip(addr), prefix_len }
}

/// The targets and flags of every restrict line.
fn rules(text: &str) -> Vec<(RestrictTarget, RestrictFlagsConfig)> {
    ok(text).config.restrict.into_iter().map(|r| (r.target, r.flags)).collect()
}

const NONE: RestrictFlagsConfig = RestrictFlagsConfig {
    ignore: false,
    noserve: false,
    noquery: false,
    kod: false,
    limited: false,
    notrust: false,
    nomodify: false,
};

#[test]
fn interface_listen_addresses_and_port_extension() {
    let l = ok("interface listen 127.0.3.1 port 12300\n\
                interface listen ::1\n\
                interface listen [2001:db8::1] port 1123\n\
                interface listen 192.0.2.1\n");
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    assert_eq!(
        l.config.listen,
        vec![
            listen("127.0.3.1", 12300, 1),
            listen("::1", 123, 2),
            listen("2001:db8::1", 1123, 3),
            listen("192.0.2.1", ListenConfig::DEFAULT_PORT, 4),
        ]
    );
    // The same address on another port is another socket.
    let c = ok("interface listen 127.0.0.1\ninterface listen 127.0.0.1 port 1123\n").config;
    assert_eq!(c.listen, vec![listen("127.0.0.1", 123, 1), listen("127.0.0.1", 1123, 2)]);
}

#[test]
fn interface_listen_wildcards() {
    let all = ok("interface listen all port 12300\n").config.listen;
    assert_eq!(all, vec![listen("0.0.0.0", 12300, 1), listen("::", 12300, 1)]);
    let wildcard = ok("interface listen wildcard\n").config.listen;
    assert_eq!(wildcard, vec![listen("0.0.0.0", 123, 1), listen("::", 123, 1)]);
    assert_eq!(ok("interface listen ipv4\n").config.listen, vec![listen("0.0.0.0", 123, 1)]);
    assert_eq!(ok("interface listen ipv6\n").config.listen, vec![listen("::", 123, 1)]);

    // An address given twice (here through `all`) is used once, with a warning.
    let l = ok("interface listen ipv6\ninterface listen all\n");
    assert_eq!(l.config.listen, vec![listen("::", 123, 1), listen("0.0.0.0", 123, 2)]);
    assert_eq!(l.warnings.len(), 1);
    assert_eq!((l.warnings[0].line, l.warnings[0].col), (2, 18));
    assert_eq!(
        l.warnings[0].kind.to_string(),
        "`interface listen` :: port 123 was already given at /etc/ntp.conf:1; this one is ignored"
    );
}

#[test]
fn unsupported_interface_forms_only_warn() {
    let l = ok("interface ignore wildcard\n\
                interface drop ipv6\n\
                interface listen eth0\n\
                interface listen 192.168.0.0/16\n\
                nic listen 127.0.0.1\n");
    assert!(l.config.listen.is_empty());
    let got: Vec<_> =
        l.warnings.iter().map(|w| (w.line, w.col, w.severity, w.kind.clone())).collect();
    let form = |line, col, form: &str| {
        let kind = DiagnosticKind::UnsupportedInterface { form: form.into() };
        (line, col, Severity::Warning, kind)
    };
    assert_eq!(
        got,
        vec![
            form(1, 11, "ignore wildcard"),
            form(2, 11, "drop ipv6"),
            form(3, 18, "listen eth0"),
            form(4, 18, "listen 192.168.0.0/16"),
            (
                5,
                1,
                Severity::Warning,
                DiagnosticKind::UnsupportedDirective { directive: "nic".into() }
            ),
        ]
    );
    assert_eq!(
        l.warnings[0].to_string(),
        "/etc/ntp.conf:1:11: warning: `interface ignore wildcard` is not supported by rntpd yet; \
         line ignored (rntpd serves time only on the addresses named by `interface listen \
         ADDRESS` lines)"
    );
}

#[test]
fn interface_errors() {
    assert_eq!(
        only_error("interface\n"),
        (
            1,
            10,
            DiagnosticKind::MissingValue {
                what: "interface".into(),
                expected: Expected::OneOf(&["listen", "ignore", "drop"])
            }
        )
    );
    assert_eq!(
        only_error("interface listen\n"),
        (
            1,
            17,
            DiagnosticKind::MissingValue {
                what: "interface listen".into(),
                expected: Expected::ListenAddress
            }
        )
    );
    assert!(matches!(
        only_error("interface lisen 127.0.0.1\n"),
        (1, 11, DiagnosticKind::UnknownOption { suggestion: Some("listen"), .. })
    ));
    // Mistyped addresses are errors, not interface names.
    for bad_addr in ["192.0.2.300", "2001:db8::zz", "[::1"] {
        assert_eq!(
            only_error(&format!("interface listen {bad_addr}\n")),
            (
                1,
                18,
                DiagnosticKind::BadValue {
                    what: "interface listen".into(),
                    expected: Expected::ListenAddress,
                    found: bad_addr.into()
                }
            )
        );
    }
    assert_eq!(
        only_error("interface listen fe80::1%eth0\n"),
        (1, 18, DiagnosticKind::ScopedAddress { found: "fe80::1%eth0".into() })
    );
    assert_eq!(
        only_error("interface listen 127.0.0.1 port 0\n"),
        (1, 33, bad("port", 1, 65535, "0"))
    );
    assert!(matches!(
        only_error("interface listen 127.0.0.1 prot 5\n"),
        (1, 28, DiagnosticKind::UnknownOption { suggestion: Some("port"), .. })
    ));
    // Both problems of a line are reported; nothing is listened on.
    let e = parse("interface listen 1.2.3 port 99999\n").unwrap_err();
    assert_eq!(e.errors.iter().map(|d| d.col).collect::<Vec<_>>(), vec![18, 29]);
}

#[test]
fn restrict_default_and_address_families() {
    let flags = RestrictFlagsConfig { kod: true, limited: true, ..NONE };
    assert_eq!(
        rules("restrict default\nrestrict -4 default kod limited\nrestrict -6 default\n"),
        vec![
            (RestrictTarget::Default, NONE),
            (RestrictTarget::DefaultV4, flags),
            (RestrictTarget::DefaultV6, NONE),
        ]
    );
    // The family may also follow the target, and `--ipv6` is `-6`.
    assert_eq!(
        rules("restrict default -6 kod limited\nrestrict --ipv6 default\n"),
        vec![(RestrictTarget::DefaultV6, flags), (RestrictTarget::DefaultV6, NONE)]
    );
    let r = &ok("\nrestrict -6 default noserve\n").config.restrict[0];
    assert_eq!(
        r,
        &RestrictConfig {
            target: RestrictTarget::DefaultV6,
            flags: RestrictFlagsConfig { noserve: true, ..NONE },
            origin: origin(2),
        }
    );
    // With an address, the flag must agree with it.
    assert_eq!(ok("restrict -6 ::1\n").config.restrict[0].target, net("::1", 128));
    assert_eq!(
        only_error("restrict -6 192.0.2.1 kod\n"),
        (
            1,
            10,
            DiagnosticKind::FamilyMismatch {
                flag: "-6".into(),
                wanted: "IPv6",
                address: "192.0.2.1".into()
            }
        )
    );
}

#[test]
fn restrict_hosts_networks_and_ipv6() {
    assert_eq!(
        rules(
            "restrict 127.0.0.1\n\
             restrict ::1 noquery\n\
             restrict [2001:db8::1]\n\
             restrict 192.0.2.0 mask 255.255.255.0 noserve kod\n\
             restrict 198.51.100.77 mask 255.255.255.128\n\
             restrict 2001:db8:1:2:3:4:5:6 mask ffff:ffff:ffff:ffff:: ignore\n\
             restrict 0.0.0.0 mask 0.0.0.0 limited\n\
             restrict 203.0.113.9 mask 255.255.255.255\n\
             restrict :: mask [::]\n"
        ),
        vec![
            (net("127.0.0.1", 32), NONE),
            (net("::1", 128), RestrictFlagsConfig { noquery: true, ..NONE }),
            (net("2001:db8::1", 128), NONE),
            (net("192.0.2.0", 24), RestrictFlagsConfig { noserve: true, kod: true, ..NONE }),
            // Bits outside the mask are cleared, as ntpd ignores them.
            (net("198.51.100.0", 25), NONE),
            (net("2001:db8:1:2::", 64), RestrictFlagsConfig { ignore: true, ..NONE }),
            (net("0.0.0.0", 0), RestrictFlagsConfig { limited: true, ..NONE }),
            (net("203.0.113.9", 32), NONE),
            (net("::", 0), NONE),
        ]
    );
}

#[test]
fn restrict_flags_supported_and_silently_accepted() {
    let l = ok("restrict default ignore noserve noquery kod limited\n\
                restrict 192.0.2.1 nomodify notrap nopeer noepeer nomrulist lowpriotrap ntpport \
                serverresponse fuzz version ippeerlimit 2\n");
    assert!(l.warnings.is_empty(), "moot flags need no action: {:?}", l.warnings);
    let all = RestrictFlagsConfig {
        ignore: true,
        noserve: true,
        noquery: true,
        kod: true,
        limited: true,
        notrust: false,
        nomodify: false,
    };
    let got: Vec<_> = l.config.restrict.iter().map(|r| (r.target, r.flags)).collect();
    let nomodify = RestrictFlagsConfig { nomodify: true, ..NONE };
    assert_eq!(got, vec![(RestrictTarget::Default, all), (net("192.0.2.1", 32), nomodify)]);
    assert_eq!(
        only_error("restrict default serverresponse kod\n"),
        (
            1,
            33,
            DiagnosticKind::BadValue {
                what: "serverresponse".into(),
                expected: Expected::OneOf(&["fuzz"]),
                found: "kod".into()
            }
        )
    );
}

#[test]
fn restrict_bad_mask_is_an_error_at_the_mask() {
    // Not contiguous.
    assert_eq!(
        only_error("restrict 192.0.2.0 mask 255.0.255.0 kod\n"),
        (1, 25, DiagnosticKind::NonContiguousMask { mask: "255.0.255.0".into(), family: "IPv4" })
    );
    assert_eq!(
        only_error("restrict 2001:db8:: mask ffff::ffff\n"),
        (1, 26, DiagnosticKind::NonContiguousMask { mask: "ffff::ffff".into(), family: "IPv6" })
    );
    // Wrong family, both ways.
    assert_eq!(
        only_error("restrict 192.0.2.0 mask ffff:ffff::\n"),
        (
            1,
            25,
            DiagnosticKind::MaskFamily {
                mask: "ffff:ffff::".into(),
                mask_family: "IPv6",
                address_family: "IPv4"
            }
        )
    );
    assert_eq!(
        only_error("restrict 2001:db8:: mask 255.255.0.0\n"),
        (
            1,
            26,
            DiagnosticKind::MaskFamily {
                mask: "255.255.0.0".into(),
                mask_family: "IPv4",
                address_family: "IPv6"
            }
        )
    );
    // Not an address at all, or missing.
    assert_eq!(
        only_error("restrict 192.0.2.0 mask 24\n"),
        (
            1,
            25,
            DiagnosticKind::BadValue {
                what: "mask".into(),
                expected: Expected::Netmask,
                found: "24".into()
            }
        )
    );
    assert_eq!(
        only_error("restrict 192.0.2.0 mask\n"),
        (1, 24, DiagnosticKind::MissingValue { what: "mask".into(), expected: Expected::Netmask })
    );
    // `default` has no mask.
    assert_eq!(
        only_error("restrict default mask 0.0.0.0\n"),
        (
            1,
            18,
            DiagnosticKind::OptionNotAllowed {
                option: "mask".into(),
                directive: "restrict default".into(),
                allowed_on: "restrict ADDRESS"
            }
        )
    );
    // What the administrator sees.
    assert_eq!(
        parse("restrict 10.0.0.0 mask 255.0.255.0\n").unwrap_err().to_string(),
        "/etc/ntp.conf:1:24: error: mask \"255.0.255.0\" is not a contiguous netmask; expected one \
         bits followed only by zero bits, such as 255.255.255.0 (/24)\n\
         1 | restrict 10.0.0.0 mask 255.0.255.0\n  \
           |                        ^^^^^^^^^^^"
    );
    assert_eq!(
        DiagnosticKind::MaskFamily {
            mask: "255.255.0.0".into(),
            mask_family: "IPv4",
            address_family: "IPv6"
        }
        .to_string(),
        "mask \"255.255.0.0\" is an IPv4 mask but the address is IPv6; expected an IPv6 mask such \
         as ffff:ffff:ffff:ffff:: (/64)"
    );
}

#[test]
fn restrict_unknown_flag_is_an_error_with_suggestion() {
    let (line, col, kind) = only_error("restrict default kod nomodfy limited\n");
    assert_eq!((line, col), (1, 22));
    match kind {
        DiagnosticKind::UnknownOption { directive, found, suggestion, expected } => {
            assert_eq!((directive.as_str(), found.as_str()), ("restrict", "nomodfy"));
            assert_eq!(suggestion, Some("nomodify"));
            assert!(expected.contains(&"limited") && expected.contains(&"nomodify"));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(matches!(
        only_error("restrict default limitd\n"),
        (1, 18, DiagnosticKind::UnknownOption { suggestion: Some("limited"), .. })
    ));
    // A misspelt `mask` takes its value with it: one error, not two.
    assert!(matches!(
        only_error("restrict 192.0.2.0 mas 255.255.255.0\n"),
        (1, 20, DiagnosticKind::UnknownOption { suggestion: Some("mask"), .. })
    ));
}

#[test]
fn restrict_target_errors() {
    assert_eq!(
        only_error("restrict\n"),
        (
            1,
            9,
            DiagnosticKind::MissingValue {
                what: "restrict".into(),
                expected: Expected::RestrictTarget
            }
        )
    );
    // A flag where the target belongs (forgotten `default`) is an error,
    // not a host name.
    for (text, found) in
        [("restrict kod limited\n", "kod"), ("restrict 192.0.2.300\n", "192.0.2.300")]
    {
        assert_eq!(
            only_error(text),
            (
                1,
                10,
                DiagnosticKind::BadValue {
                    what: "restrict".into(),
                    expected: Expected::RestrictTarget,
                    found: found.into()
                }
            )
        );
    }
    assert_eq!(
        only_error("restrict fe80::1%eth0\n"),
        (1, 10, DiagnosticKind::ScopedAddress { found: "fe80::1%eth0".into() })
    );
    // Every problem of the line is reported, and the line is not used.
    let e = parse("restrict 192.0.2.300 kodd mask 1\n").unwrap_err();
    assert_eq!(e.errors.iter().map(|d| d.col).collect::<Vec<_>>(), vec![10, 22]);
}

#[test]
fn restrict_warnings_and_ignored_forms() {
    let l = ok("restrict default kod notrust\n\
                restrict 192.0.2.0 mask 255.255.255.0 mssntp flake\n\
                restrict source notrap nomodify noquery\n\
                restrict ntp1.example.net nomodify\n\
                delrestrict 192.0.2.1\n");
    // notrust is honoured (issue 15); mssntp/flake are ignored, the rest of
    // their line applies; `source`, host names and delrestrict ignore the line.
    assert_eq!(
        l.config.restrict.iter().map(|r| (r.target, r.flags)).collect::<Vec<_>>(),
        vec![
            (RestrictTarget::Default, RestrictFlagsConfig { kod: true, notrust: true, ..NONE }),
            (net("192.0.2.0", 24), NONE),
        ]
    );
    let got: Vec<_> = l.warnings.iter().map(|w| (w.line, w.col, w.kind.clone())).collect();
    assert_eq!(
        got,
        vec![
            (2, 39, DiagnosticKind::RestrictNeedsAuth { flag: "mssntp".into() }),
            (
                2,
                46,
                DiagnosticKind::UnsupportedOption {
                    directive: "restrict".into(),
                    option: "flake".into()
                }
            ),
            (3, 10, DiagnosticKind::UnsupportedDirective { directive: "restrict source".into() }),
            (4, 10, DiagnosticKind::RestrictHostName { found: "ntp1.example.net".into() }),
            (5, 1, DiagnosticKind::UnsupportedDirective { directive: "delrestrict".into() }),
        ]
    );
    assert_eq!(
        l.warnings[0].kind.to_string(),
        "restrict flag `mssntp` needs MS-SNTP signing, which rntpd does not support, so it \
         cannot be honoured; flag ignored (the rest of the line still applies)"
    );
    assert_eq!(
        l.warnings[3].kind.to_string(),
        "restrict by host name (\"ntp1.example.net\") is not supported by rntpd yet, because \
         names are not resolved when the configuration is read; expected `default` or an IP \
         address; line ignored"
    );
}

#[test]
fn restrict_lines_keep_file_order_and_origins() {
    let c = ok("restrict default ignore\n\nrestrict 192.0.2.1\nrestrict default ignore\n").config;
    let lines: Vec<_> = c.restrict.iter().map(|r| r.origin.line).collect();
    assert_eq!(lines, vec![1, 3, 4]);
}

#[test]
fn discard_values_defaults_and_combining() {
    assert_eq!(ok("").config.discard, DiscardConfig::default());
    assert_eq!(
        ok("discard average 5 minimum 1\n").config.discard,
        DiscardConfig { average_log2: 5, minimum_secs: 1 }
    );
    // Several lines combine; a later value wins.
    assert_eq!(
        ok("discard average 0\ndiscard minimum 255\ndiscard average 16\n").config.discard,
        DiscardConfig { average_log2: 16, minimum_secs: 255 }
    );
    // `monitor` warns and its value is ignored.
    let l = ok("discard monitor 3000 minimum 0\n");
    assert_eq!(l.config.discard, DiscardConfig { average_log2: 3, minimum_secs: 0 });
    assert_eq!(
        l.warnings.iter().map(|w| (w.col, w.kind.to_string())).collect::<Vec<_>>(),
        vec![(
            9,
            "option `monitor` of discard is not supported by rntpd yet; option ignored".into()
        )]
    );

    assert_eq!(only_error("discard average 17\n"), (1, 17, bad("average", 0, 16, "17")));
    assert_eq!(only_error("discard minimum 256\n"), (1, 17, bad("minimum", 0, 255, "256")));
    assert_eq!(only_error("discard minimum -1\n"), (1, 17, bad("minimum", 0, 255, "-1")));
    assert!(matches!(
        only_error("discard avrage 4\n"),
        (1, 9, DiagnosticKind::UnknownOption { suggestion: Some("average"), .. })
    ));
    assert!(matches!(
        only_error("discard\n"),
        (1, 8, DiagnosticKind::MissingValue { expected: Expected::OneOf(_), .. })
    ));
}

#[test]
fn server_directives_together() {
    let c = ok("interface listen 127.0.3.1 port 12300\n\
                restrict default kod limited nomodify\n\
                restrict 127.0.0.0 mask 255.0.0.0\n\
                discard average 4\n\
                tos orphan 8\n")
    .config;
    assert_eq!(c.listen, vec![listen("127.0.3.1", 12300, 1)]);
    assert_eq!(c.restrict.len(), 2);
    assert_eq!(c.restrict[1].target, net("127.0.0.0", 8));
    assert_eq!(c.discard.average_log2, 4);
    assert_eq!(c.tos.orphan, Some(8));
}

fn bad_secs(what: &str, min_us: u64, max_us: u64, found: &str) -> DiagnosticKind {
    DiagnosticKind::BadValue {
        what: what.into(),
        expected: Expected::Seconds { min_us, max_us },
        found: found.into(),
    }
}

const MAX_US: u64 = TinkerConfig::MAX_THRESHOLD_US;

#[test]
fn tinker_defaults_are_none_and_documented_constants() {
    let c = Config::default();
    assert_eq!(c.tinker, TinkerConfig::default());
    assert_eq!(c.tinker, TinkerConfig { step_us: None, panic_us: None, stepout_us: None });
    assert_eq!(c.makestep, None);
    assert_eq!(TinkerConfig::DEFAULT_STEP_US, 128_000);
    assert_eq!(TinkerConfig::DEFAULT_PANIC_US, 1_000_000_000);
    assert_eq!(TinkerConfig::DEFAULT_STEPOUT_US, 300_000_000);
    assert_eq!(ok("server a.example\n").config.tinker, TinkerConfig::default());
}

#[test]
fn tinker_each_form() {
    let t = ok("tinker step 0.5\n").config.tinker;
    assert_eq!(t, TinkerConfig { step_us: Some(500_000), ..TinkerConfig::default() });
    assert_eq!(t.step_secs(), Some(0.5));
    let t = ok("tinker panic 0\n").config.tinker;
    assert_eq!(t, TinkerConfig { panic_us: Some(0), ..TinkerConfig::default() });
    assert_eq!(t.panic_secs(), Some(0.0));
    let t = ok("tinker stepout 900\n").config.tinker;
    assert_eq!(t, TinkerConfig { stepout_us: Some(900_000_000), ..TinkerConfig::default() });
    assert_eq!(t.stepout_secs(), Some(900.0));
    assert_eq!(t.step_secs(), None);
    // step 0 means "never step" and is kept as Some(0), not the default.
    assert_eq!(ok("tinker step 0\n").config.tinker.step_us, Some(0));
    // Decimals: leading/trailing point, trailing zeros beyond microseconds.
    assert_eq!(ok("tinker step .128\n").config.tinker.step_us, Some(128_000));
    assert_eq!(ok("tinker step 1.\n").config.tinker.step_us, Some(1_000_000));
    assert_eq!(ok("tinker step 0.1280000\n").config.tinker.step_us, Some(128_000));
    assert_eq!(ok("tinker step 0.000001\n").config.tinker.step_us, Some(1));
    // Range ends.
    assert_eq!(ok("tinker panic 1000000\n").config.tinker.panic_us, Some(MAX_US));
    assert_eq!(ok("tinker stepout 1 stepout 3600\n").config.tinker.stepout_us, Some(3_600_000_000));
    assert!(ok("tinker step 0.128\n").warnings.is_empty());
}

#[test]
fn tinker_any_order_and_lines_combine() {
    let t = ok("tinker stepout 60 panic 0 step 0.25\n").config.tinker;
    assert_eq!(
        t,
        TinkerConfig { step_us: Some(250_000), panic_us: Some(0), stepout_us: Some(60_000_000) }
    );
    let t = ok("tinker panic 0\nserver a.example\ntinker step 0\ntinker step 2 stepout 10\n")
        .config
        .tinker;
    assert_eq!(
        t,
        TinkerConfig { step_us: Some(2_000_000), panic_us: Some(0), stepout_us: Some(10_000_000) }
    );
}

#[test]
fn tinker_bad_values_point_at_the_word() {
    assert_eq!(only_error("tinker step abc\n"), (1, 13, bad_secs("tinker step", 0, MAX_US, "abc")));
    assert_eq!(only_error("tinker step -1\n"), (1, 13, bad_secs("tinker step", 0, MAX_US, "-1")));
    assert_eq!(
        only_error("tinker panic 1000000.5\n"),
        (1, 14, bad_secs("tinker panic", 0, MAX_US, "1000000.5"))
    );
    assert_eq!(
        only_error("tinker stepout 0\n"),
        (1, 16, bad_secs("tinker stepout", 1_000_000, 3_600_000_000, "0"))
    );
    assert_eq!(
        only_error("tinker step 0 stepout 3601\n"),
        (1, 23, bad_secs("tinker stepout", 1_000_000, 3_600_000_000, "3601"))
    );
    for word in ["1e3", "inf", "nan", "0.0000001", "1,5", "+1", "."] {
        let text = format!("tinker step {word}\n");
        assert_eq!(only_error(&text), (1, 13, bad_secs("tinker step", 0, MAX_US, word)), "{word}");
    }
    // A keyword where a value belongs is the bad value, and still processed.
    let e = errors("tinker step panic 5\n");
    assert_eq!(e, vec![(1, 13, bad_secs("tinker step", 0, MAX_US, "panic"))]);
    // Missing values and an empty tinker line.
    assert_eq!(
        only_error("tinker step\n"),
        (
            1,
            12,
            DiagnosticKind::MissingValue {
                what: "tinker step".into(),
                expected: Expected::Seconds { min_us: 0, max_us: MAX_US }
            }
        )
    );
    assert!(matches!(
        only_error("tinker\n"),
        (1, 7, DiagnosticKind::MissingValue { expected: Expected::OneOf(_), .. })
    ));
    // Unknown keyword: error with suggestion, its value skipped.
    assert_eq!(
        only_error("tinker stpe 1 panic 0\n"),
        (
            1,
            8,
            DiagnosticKind::UnknownOption {
                directive: "tinker".into(),
                found: "stpe".into(),
                expected: &["step", "panic", "stepout"],
                suggestion: Some("step"),
            }
        )
    );
    // Several errors on one line are all reported.
    let pos: Vec<_> = errors("tinker step x panic y\n").iter().map(|e| (e.0, e.1)).collect();
    assert_eq!(pos, vec![(1, 13), (1, 21)]);
}

#[test]
fn tinker_error_message_for_the_admin() {
    let e = parse("tinker step 0,5\n").unwrap_err();
    assert_eq!(
        e.to_string(),
        "/etc/ntp.conf:1:13: error: tinker step expects a number of seconds from 0 to 1000000 \
         (decimals allowed, at most 6 digits after the point), found \"0,5\"\n\
         1 | tinker step 0,5\n  \
           |             ^^^"
    );
    let e = parse("tinker stepout 0.5\n").unwrap_err();
    assert!(e.to_string().contains("seconds from 1 to 3600"), "{e}");
}

#[test]
fn tinker_unsupported_keywords_warn_and_keep_the_rest() {
    let l = ok("tinker allan 1500 step 0 dispersion 15 freq 0 huffpuff 7200 panic 0\n\
                tinker tick 0.01 stepback 600 stepfwd 600 stepout 120\n");
    assert_eq!(
        l.config.tinker,
        TinkerConfig { step_us: Some(0), panic_us: Some(0), stepout_us: Some(120_000_000) }
    );
    let got: Vec<_> = l.warnings.iter().map(|w| (w.line, w.col, w.kind.to_string())).collect();
    let warn = |option: &str| {
        format!("option `{option}` of tinker is not supported by rntpd yet; option ignored")
    };
    assert_eq!(
        got,
        vec![
            (1, 8, warn("allan")),
            (1, 26, warn("dispersion")),
            (1, 40, warn("freq")),
            (1, 47, warn("huffpuff")),
            (2, 8, warn("tick")),
            (2, 18, warn("stepback")),
            (2, 31, warn("stepfwd")),
        ]
    );
    assert!(l.warnings.iter().all(|w| w.severity == Severity::Warning));
    // An unsupported keyword without its value is still an error.
    assert!(matches!(only_error("tinker allan\n"), (1, 13, DiagnosticKind::MissingValue { .. })));
}

#[test]
fn makestep_extension() {
    let c = ok("makestep 1 3\n").config;
    assert_eq!(c.makestep, Some(MakeStepConfig { threshold_us: 1_000_000, limit: Some(3) }));
    assert_eq!(c.makestep.unwrap().threshold_secs(), 1.0);
    let c = ok("makestep 0.5 -1\n").config;
    assert_eq!(c.makestep, Some(MakeStepConfig { threshold_us: 500_000, limit: None }));
    assert_eq!(
        ok("makestep 0 0\n").config.makestep,
        Some(MakeStepConfig { threshold_us: 0, limit: Some(0) })
    );
    assert_eq!(
        ok("makestep 1000000 4294967295\n").config.makestep,
        Some(MakeStepConfig { threshold_us: MAX_US, limit: Some(u32::MAX) })
    );
    // makestep does not touch tinker, and vice versa.
    let c = ok("makestep 1 3\ntinker step 0\n").config;
    assert_eq!(c.tinker.step_us, Some(0));
    assert_eq!(c.makestep.map(|m| m.limit), Some(Some(3)));

    // Given twice: the last wins, with a warning.
    let l = ok("makestep 1 3\nmakestep 10 -1\n");
    assert_eq!(l.config.makestep, Some(MakeStepConfig { threshold_us: 10_000_000, limit: None }));
    assert_eq!(
        l.warnings[0].kind,
        DiagnosticKind::RepeatedDirective {
            directive: "makestep".into(),
            previous_file: MAIN.into(),
            previous_line: 1
        }
    );
    assert_eq!((l.warnings[0].line, l.warnings[0].col), (2, 1));
}

#[test]
fn makestep_argument_errors() {
    let limit = |found: &str| bad("makestep limit", -1, i64::from(u32::MAX), found);
    // One argument: the limit is missing, reported after the threshold.
    assert_eq!(
        only_error("makestep 1\n"),
        (
            1,
            11,
            DiagnosticKind::MissingValue {
                what: "makestep limit".into(),
                expected: Expected::Integer { min: -1, max: i64::from(u32::MAX) }
            }
        )
    );
    assert_eq!(
        only_error("makestep\n"),
        (
            1,
            9,
            DiagnosticKind::MissingValue {
                what: "makestep threshold".into(),
                expected: Expected::Seconds { min_us: 0, max_us: MAX_US }
            }
        )
    );
    assert_eq!(
        only_error("makestep 1 3 5\n"),
        (
            1,
            14,
            DiagnosticKind::UnexpectedArgument {
                directive: "makestep".into(),
                takes: "two arguments, THRESHOLD (seconds) and LIMIT (updates, -1 for always)",
                found: "5".into()
            }
        )
    );
    assert_eq!(only_error("makestep 1 -2\n"), (1, 12, limit("-2")));
    assert_eq!(only_error("makestep 1 1.5\n"), (1, 12, limit("1.5")));
    assert_eq!(only_error("makestep 1 4294967296\n"), (1, 12, limit("4294967296")));
    assert_eq!(
        only_error("makestep -1 3\n"),
        (1, 10, bad_secs("makestep threshold", 0, MAX_US, "-1"))
    );
    // Both arguments bad: both reported; nothing is configured.
    let e = parse("makestep x y\n").unwrap_err();
    let pos: Vec<_> = e.errors.iter().map(|d| (d.line, d.col)).collect();
    assert_eq!(pos, vec![(1, 10), (1, 12)]);
    assert_eq!(
        e.to_string().lines().next(),
        Some(
            "/etc/ntp.conf:1:10: error: makestep threshold expects a number of seconds from 0 \
             to 1000000 (decimals allowed, at most 6 digits after the point), found \"x\""
        )
    );
    // A typo of the directive gets a suggestion.
    assert_eq!(
        only_error("makestpe 1 3\n").2,
        DiagnosticKind::UnknownDirective { found: "makestpe".into(), suggestion: Some("makestep") }
    );
}

#[test]
fn logfile_sourcedir_and_logconfig() {
    let l = ok("logfile /var/log/rntpd.log\nsourcedir /run/rntpd/sources.d\nsourcedir ../more\n\
                logconfig =syncall +clockall\n");
    assert_eq!(l.config.logfile, Some(PathBuf::from("/var/log/rntpd.log")));
    let dirs: Vec<&Path> = l.config.sourcedirs.iter().map(|d| d.path.as_path()).collect();
    assert_eq!(dirs, [Path::new("/run/rntpd/sources.d"), Path::new("/etc/../more")]);
    assert_eq!(l.config.sourcedirs[1].origin, Origin { file: MAIN.into(), line: 3 });
    assert_eq!(l.warnings.len(), 1);
    assert_eq!(l.warnings[0].kind, DiagnosticKind::LogconfigIgnored);
    assert!(l.warnings[0].to_string().contains("--log-level"), "{}", l.warnings[0]);

    let l = ok("logfile /a\nlogfile /b\n");
    assert_eq!(l.config.logfile, Some(PathBuf::from("/b")));
    assert!(matches!(l.warnings[0].kind, DiagnosticKind::RepeatedDirective { .. }));

    assert!(matches!(only_error("logfile\n"), (1, 8, DiagnosticKind::MissingValue { .. })));
    assert!(matches!(
        only_error("sourcedir /a /b\n"),
        (1, 14, DiagnosticKind::UnexpectedArgument { .. })
    ));
}

#[test]
fn sources_file_takes_only_source_lines() {
    let l = rntp_config::parse_sources_str(
        Path::new("/run/rntpd/sources.d/dhcp.sources"),
        "# from DHCP\nserver 192.0.2.1 iburst\npool pool.example\n",
    )
    .unwrap();
    assert_eq!(l.config.sources.len(), 2);
    let e = rntp_config::parse_sources_str(Path::new("x.sources"), "tos orphan 5\nsourcedir /x\n")
        .unwrap_err();
    let kinds: Vec<_> = e.errors.iter().map(|d| (d.line, d.col, d.kind.clone())).collect();
    assert_eq!(
        kinds,
        [
            (1, 1, DiagnosticKind::NotInSourcesFile { directive: "tos".into() }),
            (2, 1, DiagnosticKind::NotInSourcesFile { directive: "sourcedir".into() }),
        ]
    );
}
