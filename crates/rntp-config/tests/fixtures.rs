//! Real-world and broken ntp.conf files loaded from disk through
//! `load_file`, checked down to the sources, tos values and diagnostics.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rntp_config::{
    load_file, Diagnostic, DiagnosticKind, DiscardConfig, Expected, Host, HostName, Origin,
    RestrictConfig, RestrictFlagsConfig, RestrictTarget, Severity, SourceConfig, SourceKind,
    SourceOptions,
};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn name(s: &str) -> Host {
    Host::Name(HostName::new(s).unwrap())
}

/// `restrict ADDR` without a mask: one host.
fn host_rule(addr: &str, path: &Path, line: u32) -> RestrictConfig {
    let addr: IpAddr = addr.parse().unwrap();
    let prefix_len = if addr.is_ipv4() { 32 } else { 128 };
    RestrictConfig {
        target: RestrictTarget::Net { addr, prefix_len },
        flags: RestrictFlagsConfig::default(),
        origin: Origin { file: path.to_path_buf(), line },
    }
}

/// The flags of the distributions' default line, `kod ... noquery limited`
/// (`nomodify`, `notrap` and `nopeer` need no action in rntpd).
const KOD_NOQUERY_LIMITED: RestrictFlagsConfig = RestrictFlagsConfig {
    ignore: false,
    noserve: false,
    noquery: true,
    kod: true,
    limited: true,
    notrust: false,
    nomodify: true,
};

/// (line, message) of every warning, for compact assertions.
fn warning_lines(warnings: &[Diagnostic]) -> Vec<(u32, String)> {
    warnings
        .iter()
        .inspect(|w| assert_eq!(w.severity, Severity::Warning))
        .map(|w| (w.line, w.kind.to_string()))
        .collect()
}

#[test]
fn debian_ntpsec_default_loads_with_warnings_only() {
    let path = fixture("ntpsec-debian.conf");
    let loaded = load_file(&path).unwrap_or_else(|e| panic!("{e}"));
    let c = &loaded.config;

    assert_eq!(c.driftfile.as_deref(), Some(Path::new("/var/lib/ntpsec/ntp.drift")));
    // `tos maxclock 11` then `tos minclock 4 minsane 3` on separate lines.
    assert_eq!((c.tos.minclock, c.tos.maxclock, c.tos.minsane, c.tos.orphan), (4, 11, 3, None));
    assert!(c.resolvers.is_empty());

    let hosts: Vec<_> = c.sources.iter().map(|s| (s.kind, s.host.to_string())).collect();
    assert_eq!(
        hosts,
        (0..4).map(|i| (SourceKind::Pool, format!("{i}.debian.pool.ntp.org"))).collect::<Vec<_>>()
    );
    for (i, s) in c.sources.iter().enumerate() {
        let expected = SourceOptions { iburst: true, ..SourceOptions::default() };
        assert_eq!(s.options, expected);
        assert_eq!(s.port, 123);
        assert_eq!(s.origin.file, path);
        assert_eq!(s.origin.line, 35 + i as u32);
    }

    // `restrict default kod nomodify nopeer noquery limited`, then the
    // two loopback hosts without restrictions.
    assert_eq!(
        c.restrict,
        vec![
            RestrictConfig {
                target: RestrictTarget::Default,
                flags: KOD_NOQUERY_LIMITED,
                origin: Origin { file: path.clone(), line: 48 },
            },
            host_rule("127.0.0.1", &path, 51),
            host_rule("::1", &path, 52),
        ]
    );
    // No `interface listen`: rntpd serves nowhere, unlike ntpd.
    assert!(c.listen.is_empty());
    assert_eq!(c.discard, DiscardConfig::default());

    // The restrict lines no longer warn, and `leapfile` is supported.
    assert_eq!(warning_lines(&loaded.warnings), vec![]);
    assert_eq!(c.leapfile, Some(std::path::PathBuf::from("/usr/share/zoneinfo/leap-seconds.list")));
}

#[test]
fn typical_ntpd_428_config_loads_with_warnings_only() {
    let path = fixture("ntpd-4.2.8.conf");
    let loaded = load_file(&path).unwrap_or_else(|e| panic!("{e}"));
    let c = &loaded.config;

    assert_eq!(c.driftfile.as_deref(), Some(Path::new("/var/lib/ntp/ntp.drift")));
    assert_eq!((c.tos.minclock, c.tos.maxclock, c.tos.minsane, c.tos.orphan), (3, 10, 2, Some(10)));

    let origin = |line| rntp_config::Origin { file: path.clone(), line };
    let server = |host, options, line| SourceConfig {
        kind: SourceKind::Server,
        host,
        port: 123,
        options,
        origin: origin(line),
    };
    let d = SourceOptions::default();
    let mut expected = vec![
        server(
            name("ntp1.example.net"),
            SourceOptions { iburst: true, prefer: true, ..d.clone() },
            25,
        ),
        server(name("ntp2.example.net"), SourceOptions { iburst: true, ..d.clone() }, 26),
        server(
            Host::Ip("192.0.2.10".parse().unwrap()),
            SourceOptions { minpoll: 4, maxpoll: 8, ..d.clone() },
            27,
        ),
        server(
            Host::Ip("2001:db8::123".parse::<IpAddr>().unwrap()),
            SourceOptions { iburst: true, ..d.clone() },
            28,
        ),
        server(
            name("ntp3.example.net"),
            SourceOptions {
                burst: true,
                version: 3,
                family: rntp_config::AddressFamily::V4,
                ..d.clone()
            },
            29,
        ),
        // `server 127.127.1.0` (line 32) is a refclock: warned about, not a source.
    ];
    for i in 0..4 {
        expected.push(SourceConfig {
            kind: SourceKind::Pool,
            host: name(&format!("{i}.debian.pool.ntp.org")),
            port: 123,
            options: SourceOptions { iburst: true, ..d.clone() },
            origin: origin(38 + i),
        });
    }
    assert_eq!(c.sources, expected);

    // `restrict -4 default ...`, `restrict -6 default ...`, the loopback
    // hosts; `restrict source ...` (line 62) only warns.
    assert_eq!(
        c.restrict,
        vec![
            RestrictConfig {
                target: RestrictTarget::DefaultV4,
                flags: KOD_NOQUERY_LIMITED,
                origin: origin(54),
            },
            RestrictConfig {
                target: RestrictTarget::DefaultV6,
                flags: KOD_NOQUERY_LIMITED,
                origin: origin(55),
            },
            host_rule("127.0.0.1", &path, 58),
            host_rule("::1", &path, 59),
        ]
    );
    assert!(c.listen.is_empty());

    let w = warning_lines(&loaded.warnings);
    let unsupported = |line, directive: &str| {
        (line, format!("`{directive}` is not supported by rntpd yet; line ignored"))
    };
    let clockstats = |line, directive: &str| {
        let text = "option `clockstats` of {} is not supported by rntpd yet; option ignored";
        (line, text.replace("{}", directive))
    };
    assert_eq!(
        w,
        vec![
            // loopstats and peerstats are written (issue 13); clockstats is not.
            clockstats(13, "statistics"),
            clockstats(16, "filegen"),
            // `keys`, `trustedkey` and `controlkey` are used (issue 15);
            // `requestkey` secures ntpdc, which rntpd never answers.
            (21, rntp_config::DiagnosticKind::RequestKeyUnused.to_string()),
            (
                32,
                "\"127.127.1.0\" is an ntpd reference-clock address; reference clocks are not \
                 supported by rntpd yet; line ignored"
                    .into()
            ),
            unsupported(33, "fudge"),
            unsupported(62, "restrict source"),
        ]
    );
}

#[test]
fn broken_file_reports_every_error_with_position_and_expectation() {
    let path = fixture("broken.conf");
    let err = load_file(&path).unwrap_err();
    let got: Vec<_> = err.errors.iter().map(|e| (e.line, e.col, e.kind.clone())).collect();
    assert_eq!(
        got,
        vec![
            (
                2,
                1,
                DiagnosticKind::UnknownDirective {
                    found: "serverr".into(),
                    suggestion: Some("server")
                }
            ),
            (
                3,
                32,
                DiagnosticKind::BadValue {
                    what: "minpoll".into(),
                    expected: Expected::Integer { min: -2, max: 17 },
                    found: "abc".into()
                }
            ),
            (4, 24, DiagnosticKind::PollRange { minpoll: 10, maxpoll: 6 }),
            (
                5,
                34,
                DiagnosticKind::BadValue {
                    what: "maxsources".into(),
                    expected: Expected::Integer { min: 1, max: 64 },
                    found: "0".into()
                }
            ),
            (
                6,
                8,
                DiagnosticKind::InvalidHost {
                    directive: "server".into(),
                    found: "exa_mple.com".into(),
                    reason: rntp_config::HostNameError::InvalidCharacter { ch: '_' }
                }
            ),
            (
                7,
                14,
                DiagnosticKind::TosOrder {
                    lower: "minclock",
                    lower_value: 20,
                    upper: "maxclock",
                    upper_value: 10
                }
            ),
            (
                9,
                18,
                DiagnosticKind::UnknownOption {
                    directive: "server".into(),
                    found: "ibrust".into(),
                    expected: &[
                        "iburst", "burst", "prefer", "noselect", "minpoll", "maxpoll", "version",
                        "port", "key"
                    ],
                    suggestion: Some("iburst")
                }
            ),
            (
                10,
                10,
                DiagnosticKind::MissingValue { what: "driftfile".into(), expected: Expected::Path }
            ),
        ]
    );
    assert!(err.errors.iter().all(|e| e.file == path && e.severity == Severity::Error));
    // `notrust` is honoured since issue 15: the restrict line is clean.
    assert_eq!(warning_lines(&err.warnings), vec![]);

    // The rendered report: message, source line, caret under the bad word.
    let p = path.display();
    assert_eq!(
        err.errors[1].to_string(),
        format!(
            "{p}:3:32: error: minpoll expects an integer from -2 to 17, found \"abc\"\n\
             3 | server ntp.example.com minpoll abc\n  \
               |                                ^^^"
        )
    );
    assert_eq!(
        err.errors[0].to_string(),
        format!(
            "{p}:2:1: error: unknown directive `serverr`; expected a directive such as server, \
             pool, tos, driftfile, includefile, resolver (did you mean `server`?)\n\
             2 | serverr ntp.example.com iburst\n  \
               | ^^^^^^^"
        )
    );
    // A missing value points just past the end of the line.
    assert!(err.errors[7].to_string().ends_with("10 | driftfile\n   |          ^"));
    // The whole report lists errors then warnings, one diagnostic after another.
    let report = err.to_string();
    assert_eq!(report.matches(": error: ").count(), 8);
    assert_eq!(report.matches(": warning: ").count(), 0);
}

#[test]
fn includefile_relative_to_including_file_on_disk() {
    let main = fixture("include-main.conf");
    let loaded = load_file(&main).unwrap_or_else(|e| panic!("{e}"));
    let got: Vec<_> = loaded
        .config
        .sources
        .iter()
        .map(|s| (s.host.to_string(), s.origin.file.clone(), s.origin.line))
        .collect();
    let included = fixture("include.d/servers.conf");
    assert_eq!(
        got,
        vec![
            ("a.example.net".to_string(), included.clone(), 2),
            ("b.example.net".to_string(), included, 3),
            ("pool.example.org".to_string(), main, 4),
        ]
    );
    assert!(loaded.warnings.is_empty());
}

#[test]
fn unreadable_top_level_file_is_one_whole_file_error() {
    let path = fixture("does-not-exist.conf");
    let err = load_file(&path).unwrap_err();
    assert_eq!(err.errors.len(), 1);
    assert_eq!((err.errors[0].line, err.errors[0].col), (0, 0));
    assert!(matches!(err.errors[0].kind, DiagnosticKind::ReadFailed { .. }));
    let shown = err.to_string();
    assert!(
        shown.starts_with(&format!("{}: error: cannot read configuration file: ", path.display()))
    );
}

#[test]
fn including_a_directory_explains_itself() {
    let dir = fixture("include.d");
    let err = rntp_config::parse_str(&fixture("x.conf"), "includefile include.d\n", &mut |p| {
        std::fs::read_to_string(p)
    })
    .unwrap_err();
    match &err.errors[0].kind {
        DiagnosticKind::IncludeFailed { path, reason } => {
            assert_eq!(path, &dir);
            assert!(reason.contains("directory"), "{reason}");
        }
        other => panic!("unexpected {other:?}"),
    }
}

/// Issues 14 and 15: symmetric keys (`keys`, `trustedkey`, `key 42`) are
/// used, but Autokey and NTS must not load: each is an error with
/// file:line:col.
#[test]
fn authenticated_site_is_refused_with_file_line_col() {
    let path = fixture("ntpd-auth.conf");
    let err = load_file(&path).unwrap_err();
    let got: Vec<_> = err.errors.iter().map(|e| (e.line, e.col, e.kind.to_string())).collect();
    let msg = |directive: &str, option: &str| {
        format!(
            "`{option}` on this {directive} line asks for Autokey or NTS authentication, which \
             rntpd does not support; remove `{option}` (rntpd authenticates with symmetric keys: \
             `key N` with `keys` and `trustedkey`) or use another daemon"
        )
    };
    assert_eq!(got, vec![(8, 28, msg("server", "nts")), (9, 23, msg("peer", "autokey"))]);
    assert!(err.errors.iter().all(|e| e.file == path));
    assert_eq!(
        warning_lines(&err.warnings),
        vec![(9, rntp_config::DiagnosticKind::PeerAsServer.to_string())]
    );
    let shown = err.to_string();
    assert!(shown.starts_with(&format!("{}:8:28: error: ", path.display())), "{shown}");
    assert!(shown.contains("8 | server time.cloudflare.com nts\n"), "{shown}");

    // Without the NTS and Autokey lines the symmetric-key site loads, `key 42` and all.
    let text = std::fs::read_to_string(&path).unwrap();
    let keyed: String = text
        .lines()
        .filter(|l| !l.contains("nts") && !l.contains("autokey"))
        .map(|l| format!("{l}\n"))
        .collect();
    let loaded = rntp_config::parse_str(&path, &keyed, &mut |p| std::fs::read_to_string(p))
        .expect("symmetric keys load");
    assert_eq!(loaded.config.sources[0].options.key, Some(42));
    assert!(loaded.config.auth.is_trusted(42));
}

/// Debian's NTPsec file suggests `server time.cloudflare.com nts`;
/// uncommented, it must be an error at that line, not a silent downgrade.
#[test]
fn debian_ntpsec_with_its_nts_line_uncommented_is_refused() {
    let path = fixture("ntpsec-debian.conf");
    let text = std::fs::read_to_string(&path).unwrap();
    let edited = text.replace("# server time.cloudflare.com nts", "server time.cloudflare.com nts");
    assert_ne!(text, edited, "the fixture has the commented NTS line");
    let err =
        rntp_config::parse_str(&path, &edited, &mut |p| std::fs::read_to_string(p)).unwrap_err();
    assert_eq!(err.errors.len(), 1, "{err}");
    let e = &err.errors[0];
    assert_eq!((e.line, e.col), (30, 28));
    assert!(matches!(
        &e.kind,
        DiagnosticKind::AuthenticationNotSupported { option, .. } if option == "nts"
    ));
}
