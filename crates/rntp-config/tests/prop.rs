//! Property tests: the parser never panics on any input, and printing a
//! generated valid configuration then parsing it gives the same `Config`.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use rntp_config::{
    parse_str, Config, DiscardConfig, Host, HostName, ListenConfig, MakeStepConfig, Origin,
    RestrictConfig, RestrictFlagsConfig, RestrictTarget, SourceConfig, SourceKind, SourceOptions,
    TinkerConfig, TosConfig,
};

const FILE: &str = "/etc/rntpd/ntp.conf";

/// Parses with an include callback that serves `include_text` for every
/// path, so includes recurse until the loop or depth checks stop them.
fn parse_any(text: &str, include_text: &str) {
    let _ = parse_str(Path::new(FILE), text, &mut |_| Ok(include_text.to_string()));
    let _ = parse_str(Path::new(FILE), text, &mut |p| {
        Err(io::Error::new(io::ErrorKind::NotFound, p.display().to_string()))
    });
}

/// Words that steer the parser into its deeper paths, mixed with junk.
fn token_soup() -> impl Strategy<Value = String> {
    let word = prop_oneof![
        Just("server"),
        Just("pool"),
        Just("tos"),
        Just("driftfile"),
        Just("includefile"),
        Just("resolver"),
        Just("restrict"),
        Just("default"),
        Just("source"),
        Just("mask"),
        Just("255.255.255.0"),
        Just("255.0.255.0"),
        Just("ffff::"),
        Just("kod"),
        Just("limited"),
        Just("notrust"),
        Just("serverresponse"),
        Just("interface"),
        Just("listen"),
        Just("ignore"),
        Just("all"),
        Just("discard"),
        Just("average"),
        Just("monitor"),
        Just("tinker"),
        Just("step"),
        Just("panic"),
        Just("stepout"),
        Just("allan"),
        Just("makestep"),
        Just("0.128"),
        Just(".5"),
        Just("-1"),
        Just("1e3"),
        Just("iburst"),
        Just("minpoll"),
        Just("maxpoll"),
        Just("version"),
        Just("port"),
        Just("maxsources"),
        Just("key"),
        Just("minclock"),
        Just("maxclock"),
        Just("minsane"),
        Just("orphan"),
        Just("ceiling"),
        Just("-4"),
        Just("127.127.1.0"),
        Just("::1"),
        Just("[::1]:53"),
        Just("fe80::1%eth0"),
        Just("0"),
        Just("-2"),
        Just("17"),
        Just("99999999999999999999"),
        Just("\""),
        Just("#"),
        Just("\n"),
        Just("\r\n"),
        Just("\t"),
        Just("a.example"),
        Just("self.conf"),
        Just("é"),
        Just("\u{0}"),
    ];
    prop::collection::vec(word, 0..40).prop_map(|w| w.join(" "))
}

/// A DNS name in canonical (lowercase) form; the last label is never all
/// digits, as required of a host name.
fn hostname() -> impl Strategy<Value = String> {
    let label = "[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?";
    (prop::collection::vec(label, 0..3), "[a-z]([a-z0-9-]{0,6}[a-z0-9])?").prop_map(
        |(mut labels, last)| {
            labels.push(last);
            labels.join(".")
        },
    )
}

fn host() -> impl Strategy<Value = Host> {
    prop_oneof![
        any::<Ipv4Addr>()
            // 127.127.x.y is ntpd's refclock space: warned about and skipped.
            .prop_filter("refclock", |ip| ip.octets()[..2] != [127, 127])
            .prop_map(|ip| Host::Ip(IpAddr::V4(ip))),
        any::<Ipv6Addr>().prop_map(|ip| Host::Ip(IpAddr::V6(ip))),
        hostname().prop_map(|n| Host::Name(HostName::new(&n).unwrap())),
    ]
}

/// A source without its origin (assigned when printed) plus printing
/// choices: which defaults to spell out, option order, host spelling.
#[derive(Debug, Clone)]
struct GenSource {
    kind: SourceKind,
    host: Host,
    port: u16,
    options: SourceOptions,
    explicit: [bool; 4],
    order: Vec<u8>,
    alt_spelling: bool,
}

fn source() -> impl Strategy<Value = GenSource> {
    (
        prop_oneof![Just(SourceKind::Server), Just(SourceKind::Pool)],
        host(),
        prop_oneof![Just(123u16), 1u16..=u16::MAX],
        any::<[bool; 4]>(),
        (-2i8..=17, -2i8..=17),
        1u8..=4,
        (1u8..=64, any::<bool>()),
        prop::collection::vec(any::<u8>(), 9),
        any::<bool>(),
    )
        .prop_map(|(kind, host, port, flags, (a, b), version, (ms, use_ms), order, alt)| {
            GenSource {
                kind,
                host,
                port,
                options: SourceOptions {
                    iburst: flags[0],
                    burst: flags[1],
                    prefer: flags[2],
                    noselect: flags[3],
                    minpoll: a.min(b),
                    maxpoll: a.max(b),
                    version,
                    maxsources: (kind == SourceKind::Pool && use_ms).then_some(ms),
                    family: rntp_config::AddressFamily::Any,
                    key: None,
                    ttl: None,
                },
                explicit: [
                    order[0] % 2 == 0,
                    order[1] % 2 == 0,
                    order[2] % 2 == 0,
                    order[3] % 2 == 0,
                ],
                order,
                alt_spelling: alt,
            }
        })
}

impl GenSource {
    fn print(&self) -> String {
        let o = &self.options;
        let d = SourceOptions::default();
        let mut parts: Vec<String> = Vec::new();
        for (on, word) in [
            (o.iburst, "iburst"),
            (o.burst, "burst"),
            (o.prefer, "prefer"),
            (o.noselect, "noselect"),
        ] {
            if on {
                parts.push(word.into());
            }
        }
        if o.minpoll != d.minpoll || self.explicit[0] {
            parts.push(format!("minpoll {}", o.minpoll));
        }
        if o.maxpoll != d.maxpoll || self.explicit[1] {
            parts.push(format!("maxpoll {}", o.maxpoll));
        }
        if o.version != d.version || self.explicit[2] {
            parts.push(format!("version {}", o.version));
        }
        if self.port != 123 || self.explicit[3] {
            parts.push(format!("port {}", self.port));
        }
        if let Some(n) = o.maxsources {
            parts.push(format!("maxsources {n}"));
        }
        // Options may come in any order.
        let mut keyed: Vec<(u8, String)> = self.order.iter().copied().zip(parts).collect();
        keyed.sort_by_key(|(k, _)| *k);
        let host = match (&self.host, self.alt_spelling) {
            (Host::Ip(IpAddr::V6(ip)), true) => format!("[{ip}]"),
            (Host::Name(n), true) => format!("{}.", n.as_str().to_ascii_uppercase()),
            (h, _) => h.to_string(),
        };
        let kind = match self.kind {
            SourceKind::Server => "server",
            SourceKind::Pool => "pool",
            SourceKind::Manycast => "manycastclient",
        };
        let opts: Vec<String> = keyed.into_iter().map(|(_, p)| p).collect();
        format!("{kind} {host} {}", opts.join(" "))
    }
}

fn tos() -> impl Strategy<Value = TosConfig> {
    (1u8..=255, 1u8..=255, 1u8..=255, prop::option::of(1u8..=15)).prop_map(|(a, b, c, orphan)| {
        // Keep the documented invariants: minclock, minsane <= maxclock.
        let maxclock = a.max(b).max(c);
        TosConfig { minclock: a.min(b), maxclock, minsane: c, orphan }
    })
}

fn resolver() -> impl Strategy<Value = (SocketAddr, bool)> {
    (any::<IpAddr>(), prop_oneof![Just(53u16), 1u16..=u16::MAX], any::<bool>())
        .prop_map(|(ip, port, short)| (SocketAddr::new(ip, port), short))
}

fn print_resolver((addr, short): &(SocketAddr, bool)) -> String {
    match (addr.ip(), addr.port(), short) {
        (ip, 53, true) => ip.to_string(),
        (IpAddr::V6(ip), 53, false) => format!("[{ip}]"),
        _ => addr.to_string(),
    }
}

/// A `restrict` line's target and flags plus printing choices.
#[derive(Debug, Clone)]
struct GenRestrict {
    target: RestrictTarget,
    flags: RestrictFlagsConfig,
    /// Family flag after the target instead of before it; mask written
    /// even for a single host; IPv6 in brackets.
    alt: [bool; 3],
    /// Moot ntpd flags mixed in, and the order of all flag words.
    moot: Vec<&'static str>,
    order: Vec<u8>,
}

fn restrict() -> impl Strategy<Value = GenRestrict> {
    let target = prop_oneof![
        Just(RestrictTarget::Default),
        Just(RestrictTarget::DefaultV4),
        Just(RestrictTarget::DefaultV6),
        (any::<Ipv4Addr>(), 0u8..=32).prop_map(|(a, p)| {
            let mask = u32::MAX.checked_shl(32 - u32::from(p)).unwrap_or(0);
            let addr = IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask));
            RestrictTarget::Net { addr, prefix_len: p }
        }),
        (any::<Ipv6Addr>(), 0u8..=128).prop_map(|(a, p)| {
            let mask = u128::MAX.checked_shl(128 - u32::from(p)).unwrap_or(0);
            let addr = IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask));
            RestrictTarget::Net { addr, prefix_len: p }
        }),
    ];
    let moot = prop::sample::subsequence(
        vec!["notrap", "nopeer", "noepeer", "version", "serverresponse fuzz"],
        0..3,
    );
    (target, any::<[bool; 5]>(), any::<[bool; 3]>(), moot, prop::collection::vec(any::<u8>(), 8))
        .prop_map(|(target, f, alt, moot, order)| GenRestrict {
            target,
            flags: RestrictFlagsConfig {
                ignore: f[0],
                noserve: f[1],
                noquery: f[2],
                kod: f[3],
                limited: f[4],
                notrust: false,
                nomodify: false,
            },
            alt,
            moot,
            order,
        })
}

impl GenRestrict {
    fn print(&self) -> String {
        let f = &self.flags;
        let words: Vec<String> = [
            (f.ignore, "ignore"),
            (f.noserve, "noserve"),
            (f.noquery, "noquery"),
            (f.kod, "kod"),
            (f.limited, "limited"),
        ]
        .into_iter()
        .filter(|(on, _)| *on)
        .map(|(_, w)| w.to_string())
        .chain(self.moot.iter().map(|w| w.to_string()))
        .collect();
        let mut keyed: Vec<(u8, String)> = self.order.iter().copied().zip(words).collect();
        keyed.sort_by_key(|(k, _)| *k);
        let flags: Vec<String> = keyed.into_iter().map(|(_, w)| w).collect();
        let flags = flags.join(" ");
        let default = |family: &str| {
            if self.alt[0] {
                format!("restrict default {family} {flags}")
            } else {
                format!("restrict {family} default {flags}")
            }
        };
        match self.target {
            RestrictTarget::Default => format!("restrict default {flags}"),
            RestrictTarget::DefaultV4 => default("-4"),
            RestrictTarget::DefaultV6 => default("-6"),
            RestrictTarget::Net { addr, prefix_len } => {
                let (shown, mask, full) = match addr {
                    IpAddr::V4(a) => {
                        let m = u32::MAX.checked_shl(32 - u32::from(prefix_len)).unwrap_or(0);
                        (a.to_string(), Ipv4Addr::from(m).to_string(), prefix_len == 32)
                    }
                    IpAddr::V6(a) => {
                        let m = u128::MAX.checked_shl(128 - u32::from(prefix_len)).unwrap_or(0);
                        let shown = if self.alt[2] { format!("[{a}]") } else { a.to_string() };
                        (shown, Ipv6Addr::from(m).to_string(), prefix_len == 128)
                    }
                };
                if full && !self.alt[1] {
                    format!("restrict {shown} {flags}")
                } else {
                    format!("restrict {shown} mask {mask} {flags}")
                }
            }
        }
    }
}

/// An `interface listen` address and port, plus printing choices.
fn listen() -> impl Strategy<Value = (IpAddr, u16, bool)> {
    (any::<IpAddr>(), prop_oneof![Just(123u16), 1u16..=u16::MAX], any::<bool>())
}

fn print_listen((addr, port, alt): &(IpAddr, u16, bool)) -> String {
    let shown = match (addr, alt) {
        (IpAddr::V6(a), true) => format!("[{a}]"),
        _ => addr.to_string(),
    };
    if *port != 123 || *alt {
        format!("interface listen {shown} port {port}")
    } else {
        format!("interface listen {shown}")
    }
}

/// Microseconds printed as seconds: whole (`300`) when exact, otherwise
/// with all six decimals (`0.128000`) or trimmed (`0.128`).
fn print_secs(us: u64, trim: bool) -> String {
    let (whole, frac) = (us / 1_000_000, us % 1_000_000);
    match (frac, trim) {
        (0, true) => whole.to_string(),
        (_, false) => format!("{whole}.{frac:06}"),
        (_, true) => format!("{whole}.{}", format!("{frac:06}").trim_end_matches('0')),
    }
}

/// A tinker configuration, with whether to print each keyword on its own line.
fn tinker() -> impl Strategy<Value = (TinkerConfig, bool)> {
    let max = TinkerConfig::MAX_THRESHOLD_US;
    let stepout = TinkerConfig::MIN_STEPOUT_US..=TinkerConfig::MAX_STEPOUT_US;
    (
        prop::option::of(prop_oneof![Just(0u64), Just(128_000u64), 0..=max]),
        prop::option::of(prop_oneof![Just(0u64), 0..=max]),
        prop::option::of(stepout),
        any::<bool>(),
    )
        .prop_map(|(step_us, panic_us, stepout_us, split)| {
            (TinkerConfig { step_us, panic_us, stepout_us }, split)
        })
}

fn makestep() -> impl Strategy<Value = MakeStepConfig> {
    (0..=TinkerConfig::MAX_THRESHOLD_US, prop::option::of(any::<u32>()))
        .prop_map(|(threshold_us, limit)| MakeStepConfig { threshold_us, limit })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn never_panics_on_arbitrary_text(text in any::<String>(), inc in any::<String>()) {
        parse_any(&text, &inc);
    }

    #[test]
    fn never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let text = String::from_utf8_lossy(&bytes);
        parse_any(&text, &text);
    }

    #[test]
    fn never_panics_on_keyword_soup(text in token_soup(), inc in token_soup()) {
        parse_any(&text, &inc);
        // Include text that includes itself exercises the loop check too.
        parse_any(&text, &format!("includefile self.conf\n{inc}"));
    }

    #[test]
    fn print_then_parse_round_trips(
        sources in prop::collection::vec(source(), 0..8),
        tos in tos(),
        driftfile in prop::option::of("/[a-zA-Z0-9_./-]{1,30}"),
        resolvers in prop::collection::vec(resolver(), 0..4),
        restricts in prop::collection::vec(restrict(), 0..6),
        listens in prop::collection::vec(listen(), 0..4),
        discard in prop::option::of((0u8..=16, 0u8..=255)),
        (tinker, split_tinker) in tinker(),
        makestep in prop::option::of(makestep()),
        trim in any::<bool>(),
    ) {
        let mut lines: Vec<String> = vec!["# generated".into()];
        let mut expected = Config { tos: tos.clone(), ..Config::default() };
        if let Some(p) = &driftfile {
            lines.push(format!("driftfile {p}   # trailing comment"));
            expected.driftfile = Some(PathBuf::from(p));
        }
        let mut tos_line = format!("tos maxclock {} minclock {} minsane {}", tos.maxclock, tos.minclock, tos.minsane);
        if let Some(o) = tos.orphan {
            tos_line.push_str(&format!(" orphan {o}"));
        }
        lines.push(tos_line);
        if !resolvers.is_empty() {
            let words: Vec<String> = resolvers.iter().map(print_resolver).collect();
            lines.push(format!("resolver {}", words.join(" ")));
            expected.resolvers = resolvers.iter().map(|(a, _)| *a).collect();
        }
        for s in &sources {
            lines.push(String::new());
            lines.push(s.print());
            expected.sources.push(SourceConfig {
                kind: s.kind,
                host: s.host.clone(),
                port: s.port,
                options: s.options.clone(),
                origin: Origin { file: FILE.into(), line: lines.len() as u32 },
            });
        }
        for r in &restricts {
            lines.push(r.print());
            expected.restrict.push(RestrictConfig {
                target: r.target,
                flags: r.flags,
                origin: Origin { file: FILE.into(), line: lines.len() as u32 },
            });
        }
        for l in &listens {
            // A repeated address and port would warn; keep each once.
            if expected.listen.iter().any(|e| (e.addr, e.port) == (l.0, l.1)) {
                continue;
            }
            lines.push(print_listen(l));
            let origin = Origin { file: FILE.into(), line: lines.len() as u32 };
            expected.listen.push(ListenConfig { addr: l.0, port: l.1, origin });
        }
        if let Some((average, minimum)) = discard {
            lines.push(format!("discard minimum {minimum}"));
            lines.push(format!("discard average {average}"));
            expected.discard = DiscardConfig { average_log2: average, minimum_secs: minimum };
        }
        let tinker_words: Vec<String> = [
            ("stepout", tinker.stepout_us),
            ("step", tinker.step_us),
            ("panic", tinker.panic_us),
        ]
        .iter()
        .filter_map(|(k, v)| v.map(|us| format!("{k} {}", print_secs(us, trim))))
        .collect();
        if split_tinker {
            lines.extend(tinker_words.iter().map(|w| format!("tinker {w}")));
        } else if !tinker_words.is_empty() {
            lines.push(format!("tinker {}", tinker_words.join(" ")));
        }
        expected.tinker = tinker;
        if let Some(m) = makestep {
            let limit = m.limit.map_or("-1".to_string(), |l| l.to_string());
            lines.push(format!("makestep {} {limit}", print_secs(m.threshold_us, trim)));
            expected.makestep = Some(m);
        }
        let text = lines.join("\n");
        let loaded = parse_str(Path::new(FILE), &text, &mut |_| Err(io::ErrorKind::NotFound.into()))
            .map_err(|e| TestCaseError::fail(format!("{text}\n---\n{e}")))?;
        prop_assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        prop_assert_eq!(loaded.config, expected, "{}", text);
    }
}
