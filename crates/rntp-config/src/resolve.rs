//! Phase 2: directives to the typed [`Config`].
//!
//! Interprets each directive, fills in defaults, checks values and ranges,
//! and finally runs cross-field checks (`minpoll <= maxpoll` per source,
//! `minclock <= maxclock` and `minsane <= maxclock` for `tos`). Every problem
//! becomes a diagnostic and parsing goes on, so one run reports everything.
//! Nothing here resolves names or opens sockets.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::config::{
    AddressFamily, Config, DiscardConfig, ListenConfig, MakeStepConfig, ResolveConfig,
    RestrictConfig, RestrictFlagsConfig, RestrictTarget, SourceConfig, SourceDirConfig, SourceKind,
    SourceOptions, TinkerConfig,
};
use crate::error::{DiagnosticKind, Diags, Expected, Severity};
use crate::host::{Host, HostName};
use crate::known::{
    suggest, ADDRESS_FAMILY_FLAGS, AUTH_SOURCE_FLAGS, AUTH_SOURCE_VALUED, DISCARD_OPTIONS,
    INTERFACE_ACTIONS, LISTEN_OPTIONS, MANYCAST_OPTIONS, POOL_OPTIONS, RESTRICT_ALL,
    RESTRICT_AUTH_FLAGS, RESTRICT_MOOT_FLAGS, RESTRICT_VALUED, SERVER_OPTIONS, SOURCE_FLAGS,
    SUPPORTED_DIRECTIVES, TINKER_OPTIONS, TOS_OPTIONS, UNSUPPORTED_DIRECTIVES, UNSUPPORTED_DISCARD,
    UNSUPPORTED_RESTRICT_FLAGS, UNSUPPORTED_SOURCE_FLAGS, UNSUPPORTED_SOURCE_VALUED,
    UNSUPPORTED_TINKER, UNSUPPORTED_TOS,
};
use crate::lex::Token;
use crate::raw::{RawDirective, SourceLine};

mod auth;
mod monitor;

/// The default port of a `resolver` address given without one.
const DNS_PORT: u16 = 53;

/// Where a `tos` value was set, to point cross-field errors at it.
#[derive(Debug)]
struct TosLoc {
    line: SourceLine,
    token: Token,
    /// Order of setting, so the most recent (likeliest culprit) is blamed.
    seq: usize,
}

/// Builds a [`Config`] from directives fed one at a time, in reading order
/// ([`Resolver::directive`]), then runs the cross-line checks
/// ([`Resolver::finish`]).
#[derive(Debug, Default)]
pub(crate) struct Resolver {
    config: Config,
    driftfile_at: Option<(PathBuf, u32)>,
    /// Where single-valued steering directives (`leapfile`, `leapsmear`, `maxslewrate`) were
    /// last set, to warn about repeats.
    single_at: std::collections::BTreeMap<&'static str, (PathBuf, u32)>,
    statsdir_at: Option<(PathBuf, u32)>,
    metrics_at: Option<(PathBuf, u32)>,
    logfile_at: Option<(PathBuf, u32)>,
    makestep_at: Option<(PathBuf, u32)>,
    minclock_at: Option<TosLoc>,
    maxclock_at: Option<TosLoc>,
    minsane_at: Option<TosLoc>,
    tos_seq: usize,
    /// The last `resolve floor/ceiling` value written, blamed if floor > ceiling.
    resolve_at: Option<TosLoc>,
    /// Every `key N` and `controlkey N`, checked against `keys` and `trustedkey` at the end.
    key_uses: Vec<auth::KeyUse>,
    /// The first `manycastserver` line, blamed if keys or listen addresses are missing.
    manycast_server_at: Option<TosLoc>,
    /// Reading one line at run time (`rntpctl add`, `ntpq :config`): no whole-file checks.
    runtime: bool,
}

/// Walks the argument words of one directive and reports problems.
struct Line<'a, 'd> {
    d: &'a RawDirective,
    pos: usize,
    errors: usize,
    diags: &'d mut Diags,
}

impl<'a> Line<'a, '_> {
    /// A keyword ntpd knows and rntpd does not support yet, in a `KEYWORD VALUE` directive
    /// (`tos`, `discard`, `tinker`): a warning, and its value is skipped.
    fn unsupported_keyword(&mut self, directive: &str, token: &'a Token, keywords: &[&[&str]]) {
        let word = token.text.as_str();
        self.report_at(
            token,
            DiagnosticKind::UnsupportedOption { directive: directive.into(), option: word.into() },
        );
        self.value(word, Expected::Value, keywords);
    }

    /// A keyword nobody knows in a `KEYWORD VALUE` directive: an error with a suggestion
    /// from both lists; its value is skipped too, since every keyword there takes one.
    fn unknown_keyword(
        &mut self,
        directive: &str,
        token: &'a Token,
        expected: &'static [&'static str],
        unsupported: &'static [&'static str],
        keywords: &[&[&str]],
    ) {
        let word = token.text.as_str();
        self.report_at(
            token,
            DiagnosticKind::UnknownOption {
                directive: directive.into(),
                found: word.into(),
                expected,
                suggestion: suggest(word, &[expected, unsupported]),
            },
        );
        self.skip_value_of_unknown(true, keywords);
    }

    fn peek(&self) -> Option<&'a Token> {
        self.d.args.get(self.pos)
    }

    fn next(&mut self) -> Option<&'a Token> {
        let t = self.d.args.get(self.pos);
        if t.is_some() {
            self.pos += 1;
        }
        t
    }

    /// The last word consumed (or the keyword), after which a missing value
    /// is reported.
    fn last(&self) -> &'a Token {
        self.pos.checked_sub(1).and_then(|i| self.d.args.get(i)).unwrap_or(&self.d.keyword)
    }

    fn report_at(&mut self, token: &Token, kind: DiagnosticKind) {
        if kind.severity() == Severity::Error {
            self.errors += 1;
        }
        let diag = self.d.line.at(token, kind);
        self.diags.push(diag);
    }

    /// Reports `kind` underlining `first` through `last`.
    fn report_span(&mut self, first: &Token, last: &Token, kind: DiagnosticKind) {
        if kind.severity() == Severity::Error {
            self.errors += 1;
        }
        let diag = self.d.line.spanning(first, last, kind);
        self.diags.push(diag);
    }

    fn missing(&mut self, what: &str, expected: Expected) {
        self.errors += 1;
        let diag = self
            .d
            .line
            .after(self.last(), DiagnosticKind::MissingValue { what: what.into(), expected });
        self.diags.push(diag);
    }

    /// Takes the value of option `what`. A following word that is itself a
    /// keyword is reported as the bad value but not swallowed, so it is
    /// still processed: one precise error instead of two confusing ones.
    fn value(&mut self, what: &str, expected: Expected, keywords: &[&[&str]]) -> Option<&'a Token> {
        match self.peek() {
            None => {
                self.missing(what, expected);
                None
            }
            Some(t) if is_keyword(keywords, t) => {
                let kind =
                    DiagnosticKind::BadValue { what: what.into(), expected, found: t.text.clone() };
                self.report_at(t, kind);
                None
            }
            Some(_) => self.next(),
        }
    }

    /// After an unknown option, skips the word after it if that is most
    /// likely its value (a number, or any non-keyword when the option looks
    /// like a misspelt valued option), so that `maxsource 3` is one error
    /// rather than two.
    fn skip_value_of_unknown(&mut self, valued: bool, keywords: &[&[&str]]) {
        if let Some(t) = self.peek() {
            if !is_keyword(keywords, t) && (valued || f64::from_str(&t.text).is_ok()) {
                self.pos += 1;
            }
        }
    }

    /// Takes an integer value of option `what` within `min..=max`.
    fn int<T>(&mut self, what: &str, min: T, max: T, keywords: &[&[&str]]) -> Option<T>
    where
        T: Into<i64> + TryFrom<i64> + Copy,
    {
        let expected = Expected::Integer { min: min.into(), max: max.into() };
        let token = self.value(what, expected.clone(), keywords)?;
        match i64::from_str(&token.text) {
            Ok(v) if (min.into()..=max.into()).contains(&v) => T::try_from(v).ok(),
            _ => {
                self.report_at(
                    token,
                    DiagnosticKind::BadValue {
                        what: what.into(),
                        expected,
                        found: token.text.clone(),
                    },
                );
                None
            }
        }
    }
}

impl Line<'_, '_> {
    /// Takes a value of option `what` in seconds (a decimal number) within
    /// `min_us..=max_us` microseconds.
    fn seconds(
        &mut self,
        what: &str,
        min_us: u64,
        max_us: u64,
        keywords: &[&[&str]],
    ) -> Option<u64> {
        let expected = Expected::Seconds { min_us, max_us };
        let token = self.value(what, expected.clone(), keywords)?;
        match parse_seconds_us(&token.text) {
            Some(v) if (min_us..=max_us).contains(&v) => Some(v),
            _ => {
                let kind = DiagnosticKind::BadValue {
                    what: what.into(),
                    expected,
                    found: token.text.clone(),
                };
                self.report_at(token, kind);
                None
            }
        }
    }
}

impl Resolver {
    /// A resolver for one line read at run time: the checks that need the whole file (keys
    /// against `keys`/`trustedkey`) are left to the caller, which knows the running keys.
    pub(crate) fn runtime() -> Self {
        Resolver { runtime: true, ..Resolver::default() }
    }

    /// Interprets one directive, reporting into `diags`.
    pub(crate) fn directive(&mut self, d: &RawDirective, diags: &mut Diags) {
        let mut line = Line { d, pos: 0, errors: 0, diags };
        match d.keyword.text.as_str() {
            "server" => self.source(&mut line, SourceKind::Server, "server"),
            "pool" => self.source(&mut line, SourceKind::Pool, "pool"),
            "manycastclient" => self.source(&mut line, SourceKind::Manycast, "manycastclient"),
            "keys" => self.keys(&mut line),
            "trustedkey" => self.trustedkey(&mut line),
            "controlkey" => self.controlkey(&mut line),
            "requestkey" => self.requestkey(&mut line),
            "manycastserver" => self.manycastserver(&mut line),
            "ttl" => self.ttl(&mut line),
            "peer" => {
                // NTPsec also treats `peer` as `server`; symmetric mode would
                // let the peer steer our clock, which rntpd never allows.
                line.report_at(&d.keyword, DiagnosticKind::PeerAsServer);
                self.source(&mut line, SourceKind::Server, "peer");
            }
            "tos" => self.tos(&mut line),
            "driftfile" => self.driftfile(&mut line),
            "resolver" => self.resolver(&mut line),
            "resolve" => self.resolve(&mut line),
            "interface" => self.interface(&mut line),
            "restrict" => self.restrict(&mut line),
            "discard" => self.discard(&mut line),
            "tinker" => self.tinker(&mut line),
            "makestep" => self.makestep(&mut line),
            "leapfile" => self.leapfile(&mut line),
            "leapsmear" | "leapsmearinterval" => {
                let v = self.single_int(&mut line, "leapsmear", 60, 172_800);
                if let Some(v) = v {
                    self.config.leapsmear_secs = Some(v);
                }
            }
            "maxslewrate" => {
                let v = self.single_int(&mut line, "maxslewrate", 1, 83_333);
                if let Some(v) = v {
                    self.config.maxslewrate_ppm = Some(v);
                }
            }
            "statsdir" => self.statsdir(&mut line),
            "statistics" => self.statistics(&mut line),
            "filegen" => self.filegen(&mut line),
            "metrics" => self.metrics(&mut line),
            "sourcedir" => self.sourcedir(&mut line),
            "logfile" => self.logfile(&mut line),
            "logconfig" => line.report_at(&d.keyword, DiagnosticKind::LogconfigIgnored),
            word if UNSUPPORTED_DIRECTIVES.contains(&word) => line.report_at(
                &d.keyword,
                DiagnosticKind::UnsupportedDirective { directive: word.into() },
            ),
            word => line.report_at(
                &d.keyword,
                DiagnosticKind::UnknownDirective {
                    found: word.into(),
                    suggestion: suggest(word, &[SUPPORTED_DIRECTIVES, UNSUPPORTED_DIRECTIVES]),
                },
            ),
        }
    }

    /// A `server`, `pool` or `peer` line; `name` is the directive as
    /// written, for messages.
    fn source(&mut self, line: &mut Line<'_, '_>, kind: SourceKind, name: &str) {
        let accepted = match kind {
            SourceKind::Server => SERVER_OPTIONS,
            SourceKind::Pool => POOL_OPTIONS,
            SourceKind::Manycast => MANYCAST_OPTIONS,
        };
        // Every word that can follow the host, for value() to not swallow.
        let keywords: &[&[&str]] = &[
            MANYCAST_OPTIONS,
            UNSUPPORTED_SOURCE_FLAGS,
            UNSUPPORTED_SOURCE_VALUED,
            AUTH_SOURCE_FLAGS,
            AUTH_SOURCE_VALUED,
        ];

        let mut family = AddressFamily::Any;
        while let Some(flag) =
            line.peek().filter(|t| ADDRESS_FAMILY_FLAGS.contains(&t.text.as_str()))
        {
            line.next();
            family = match flag.text.as_str() {
                "-4" | "--ipv4" => AddressFamily::V4,
                _ => AddressFamily::V6,
            };
        }
        let Some(host_token) = line.next() else {
            line.missing(name, Expected::HostOrAddress);
            return;
        };
        let host = match parse_host(name, &host_token.text) {
            Ok(HostParse::Host(Host::Ip(ip)))
                if kind == SourceKind::Manycast && !ip.is_multicast() =>
            {
                line.report_at(
                    host_token,
                    DiagnosticKind::NotMulticast {
                        directive: "manycastclient",
                        found: host_token.text.clone(),
                    },
                );
                None
            }
            Ok(HostParse::Host(Host::Name(_))) if kind == SourceKind::Manycast => {
                line.report_at(
                    host_token,
                    DiagnosticKind::NotMulticast {
                        directive: "manycastclient",
                        found: host_token.text.clone(),
                    },
                );
                None
            }
            Ok(HostParse::Host(host)) => Some(host),
            Ok(HostParse::Refclock) => {
                line.report_at(
                    host_token,
                    DiagnosticKind::RefclockAddress { found: host_token.text.clone() },
                );
                return;
            }
            Err(kind) => {
                line.report_at(host_token, kind);
                None
            }
        };

        let mut options = SourceOptions { family, ..SourceOptions::default() };
        let mut port = SourceConfig::DEFAULT_PORT;
        let mut seen: Vec<&str> = Vec::new();
        let mut minpoll_at: Option<&Token> = None;
        let mut maxpoll_at: Option<&Token> = None;
        let mut key_at: Option<Token> = None;
        while let Some(token) = line.next() {
            let word = token.text.as_str();
            if accepted.contains(&word) || word == "maxsources" {
                if seen.contains(&word) {
                    line.report_at(
                        token,
                        DiagnosticKind::DuplicateOption {
                            directive: name.into(),
                            option: word.into(),
                        },
                    );
                }
                seen.push(word);
            }
            let (min_poll, max_poll) = (SourceOptions::MIN_POLL, SourceOptions::MAX_POLL);
            match word {
                "iburst" => options.iburst = true,
                "burst" => options.burst = true,
                "prefer" => options.prefer = true,
                "noselect" => options.noselect = true,
                "minpoll" => {
                    if let Some(v) = line.int("minpoll", min_poll, max_poll, keywords) {
                        options.minpoll = v;
                        minpoll_at = Some(token);
                    }
                }
                "maxpoll" => {
                    if let Some(v) = line.int("maxpoll", min_poll, max_poll, keywords) {
                        options.maxpoll = v;
                        maxpoll_at = Some(token);
                    }
                }
                "version" => {
                    if let Some(v) = line.int("version", 1u8, 4, keywords) {
                        options.version = v;
                    }
                }
                "port" => {
                    if let Some(v) = line.int("port", 1u16, u16::MAX, keywords) {
                        port = v;
                    }
                }
                "key" => {
                    if let Some(v) = line.int("key", 1u32, u32::MAX, keywords) {
                        options.key = Some(v);
                        key_at = Some(line.last().clone());
                    }
                }
                "ttl" if kind == SourceKind::Manycast => {
                    if let Some(v) = line.int("ttl", 1u8, u8::MAX, keywords) {
                        options.ttl = Some(v);
                    }
                }
                "maxsources" => {
                    let v = line.int("maxsources", 1u8, SourceOptions::MAX_MAXSOURCES, keywords);
                    if kind == SourceKind::Server {
                        line.report_at(
                            token,
                            DiagnosticKind::OptionNotAllowed {
                                option: word.into(),
                                directive: name.into(),
                                allowed_on: "pool or manycastclient",
                            },
                        );
                    } else if v.is_some() {
                        options.maxsources = v;
                    }
                }
                w if AUTH_SOURCE_FLAGS.contains(&w) => line.report_at(
                    token,
                    DiagnosticKind::AuthenticationNotSupported {
                        directive: name.into(),
                        option: w.into(),
                    },
                ),
                w if AUTH_SOURCE_VALUED.contains(&w) => {
                    // The value belongs to the option: name both in the
                    // message and underline both, but never swallow a word
                    // that is itself an option.
                    let value = line.peek().filter(|t| !is_keyword(keywords, t));
                    let option = match value {
                        Some(v) => {
                            line.next();
                            format!("{w} {}", v.text)
                        }
                        None => w.into(),
                    };
                    line.report_span(
                        token,
                        value.unwrap_or(token),
                        DiagnosticKind::AuthenticationNotSupported {
                            directive: name.into(),
                            option,
                        },
                    );
                }
                w if UNSUPPORTED_SOURCE_FLAGS.contains(&w) => line.report_at(
                    token,
                    DiagnosticKind::UnsupportedOption { directive: name.into(), option: w.into() },
                ),
                w if UNSUPPORTED_SOURCE_VALUED.contains(&w) => {
                    line.report_at(
                        token,
                        DiagnosticKind::UnsupportedOption {
                            directive: name.into(),
                            option: w.into(),
                        },
                    );
                    line.value(w, Expected::Value, keywords);
                }
                w => {
                    let suggestion = suggest(
                        w,
                        &[
                            accepted,
                            UNSUPPORTED_SOURCE_FLAGS,
                            UNSUPPORTED_SOURCE_VALUED,
                            AUTH_SOURCE_FLAGS,
                            AUTH_SOURCE_VALUED,
                        ],
                    );
                    line.report_at(
                        token,
                        DiagnosticKind::UnknownOption {
                            directive: name.into(),
                            found: w.into(),
                            expected: accepted,
                            suggestion,
                        },
                    );
                    let valued = suggestion.is_some_and(|s| {
                        ![UNSUPPORTED_SOURCE_FLAGS, SOURCE_FLAGS, AUTH_SOURCE_FLAGS]
                            .iter()
                            .any(|flags| flags.contains(&s))
                    });
                    line.skip_value_of_unknown(valued, keywords);
                }
            }
        }
        if options.minpoll > options.maxpoll {
            // Blame whichever of the two was written; minpoll first, as
            // raising minpoll is the more common mistake.
            if let Some(at) = minpoll_at.or(maxpoll_at) {
                line.report_at(
                    at,
                    DiagnosticKind::PollRange {
                        minpoll: options.minpoll,
                        maxpoll: options.maxpoll,
                    },
                );
            }
        }
        if kind == SourceKind::Manycast && options.key.is_none() && host.is_some() {
            line.report_at(&line.d.keyword, DiagnosticKind::ManycastWithoutKey);
        }
        if let (Some(host), 0) = (host, line.errors) {
            if let (Some(key), Some(token)) = (options.key, key_at) {
                self.key_uses.push(auth::KeyUse {
                    at: TosLoc { line: line.d.line.clone(), token, seq: 0 },
                    key,
                    directive: "key",
                });
            }
            self.config.sources.push(SourceConfig {
                kind,
                host,
                port,
                options,
                origin: line.d.line.origin(),
            });
        }
    }

    fn tos(&mut self, line: &mut Line<'_, '_>) {
        let keywords: &[&[&str]] = &[TOS_OPTIONS, UNSUPPORTED_TOS];
        if line.peek().is_none() {
            line.missing("tos", Expected::OneOf(TOS_OPTIONS));
            return;
        }
        while let Some(token) = line.next() {
            let word = token.text.as_str();
            match word {
                "minclock" | "maxclock" | "minsane" => {
                    let Some(v) = line.int(word, 1u8, u8::MAX, keywords) else { continue };
                    self.tos_seq += 1;
                    let value_token = line.last().clone();
                    let loc = Some(TosLoc {
                        line: line.d.line.clone(),
                        token: value_token,
                        seq: self.tos_seq,
                    });
                    let tos = &mut self.config.tos;
                    match word {
                        "minclock" => (tos.minclock, self.minclock_at) = (v, loc),
                        "maxclock" => (tos.maxclock, self.maxclock_at) = (v, loc),
                        _ => (tos.minsane, self.minsane_at) = (v, loc),
                    }
                }
                "orphan" => {
                    // Orphan stratum must stay below 16 (unsynchronised).
                    if let Some(v) = line.int("orphan", 1u8, 15, keywords) {
                        self.config.tos.orphan = Some(v);
                    }
                }
                w if UNSUPPORTED_TOS.contains(&w) => {
                    line.unsupported_keyword("tos", token, keywords)
                }
                _ => line.unknown_keyword("tos", token, TOS_OPTIONS, UNSUPPORTED_TOS, keywords),
            }
        }
    }

    fn driftfile(&mut self, line: &mut Line<'_, '_>) {
        let Some(path) = line.next() else {
            line.missing("driftfile", Expected::Path);
            return;
        };
        if let Some(extra) = line.next() {
            line.report_at(
                extra,
                DiagnosticKind::UnexpectedArgument {
                    directive: "driftfile".into(),
                    takes: "exactly one path",
                    found: extra.text.clone(),
                },
            );
            return;
        }
        if path.text.is_empty() {
            line.report_at(
                path,
                DiagnosticKind::BadValue {
                    what: "driftfile".into(),
                    expected: Expected::Path,
                    found: String::new(),
                },
            );
            return;
        }
        let here = (line.d.line.file.path.clone(), line.d.line.number);
        if let Some((previous_file, previous_line)) = self.driftfile_at.replace(here) {
            line.report_at(
                &line.d.keyword,
                DiagnosticKind::RepeatedDirective {
                    directive: "driftfile".into(),
                    previous_file,
                    previous_line,
                },
            );
        }
        self.config.driftfile = Some(PathBuf::from(&path.text));
    }

    /// `sourcedir DIR` (rntpd extension): recorded here, read by `load_file`.
    fn sourcedir(&mut self, line: &mut Line<'_, '_>) {
        let Some(dir) = single_path(line, "sourcedir") else { return };
        // Relative to the file's own directory, as `includefile`.
        let path = match line.d.line.file.path.parent() {
            Some(parent) if Path::new(&dir).is_relative() => parent.join(&dir),
            _ => PathBuf::from(&dir),
        };
        self.config.sourcedirs.push(SourceDirConfig { path, origin: line.d.line.origin() });
    }

    /// `logfile PATH`: log there instead of standard error.
    fn logfile(&mut self, line: &mut Line<'_, '_>) {
        let Some(path) = single_path(line, "logfile") else { return };
        let here = (line.d.line.file.path.clone(), line.d.line.number);
        if let Some((previous_file, previous_line)) = self.logfile_at.replace(here) {
            line.report_at(
                &line.d.keyword,
                DiagnosticKind::RepeatedDirective {
                    directive: "logfile".into(),
                    previous_file,
                    previous_line,
                },
            );
        }
        self.config.logfile = Some(PathBuf::from(path));
    }

    fn leapfile(&mut self, line: &mut Line<'_, '_>) {
        let Some(path) = line.next() else {
            line.missing("leapfile", Expected::Path);
            return;
        };
        if path.text.is_empty() || self.single_extra(line, "leapfile", "exactly one path") {
            return;
        }
        self.note_single(line, "leapfile");
        self.config.leapfile = Some(PathBuf::from(&path.text));
    }

    /// One integer within `min..=max` and nothing else (`leapsmear`, `maxslewrate`).
    fn single_int(
        &mut self,
        line: &mut Line<'_, '_>,
        directive: &'static str,
        min: u32,
        max: u32,
    ) -> Option<u32> {
        if line.peek().is_none() {
            line.missing(directive, Expected::Integer { min: min.into(), max: max.into() });
            return None;
        }
        let v = line.int(directive, min, max, &[])?;
        if self.single_extra(line, directive, "one number") {
            return None;
        }
        self.note_single(line, directive);
        Some(v)
    }

    /// Reports a word after the value of a single-valued directive.
    fn single_extra(
        &mut self,
        line: &mut Line<'_, '_>,
        directive: &str,
        takes: &'static str,
    ) -> bool {
        let Some(extra) = line.next() else { return false };
        line.report_at(
            extra,
            DiagnosticKind::UnexpectedArgument {
                directive: directive.into(),
                takes,
                found: extra.text.clone(),
            },
        );
        true
    }

    /// Warns when a single-valued directive was already set (the last one wins).
    fn note_single(&mut self, line: &mut Line<'_, '_>, directive: &'static str) {
        let here = (line.d.line.file.path.clone(), line.d.line.number);
        if let Some((previous_file, previous_line)) = self.single_at.insert(directive, here) {
            line.report_at(
                &line.d.keyword,
                DiagnosticKind::RepeatedDirective {
                    directive: directive.into(),
                    previous_file,
                    previous_line,
                },
            );
        }
    }

    fn resolver(&mut self, line: &mut Line<'_, '_>) {
        if line.peek().is_none() {
            line.missing("resolver", Expected::ResolverAddress);
            return;
        }
        while let Some(token) = line.next() {
            match parse_resolver(&token.text) {
                Some(addr) => self.config.resolvers.push(addr),
                None => line.report_at(
                    token,
                    DiagnosticKind::BadValue {
                        what: "resolver".into(),
                        expected: Expected::ResolverAddress,
                        found: token.text.clone(),
                    },
                ),
            }
        }
    }

    fn resolve(&mut self, line: &mut Line<'_, '_>) {
        const RESOLVE_OPTIONS: &[&str] = &["floor", "ceiling"];
        let keywords: &[&[&str]] = &[RESOLVE_OPTIONS];
        if line.peek().is_none() {
            line.missing("resolve", Expected::OneOf(RESOLVE_OPTIONS));
            return;
        }
        while let Some(token) = line.next() {
            let word = token.text.as_str();
            match word {
                "floor" | "ceiling" => {
                    let Some(v) = line.int(word, 1u32, ResolveConfig::MAX, keywords) else {
                        continue;
                    };
                    if word == "floor" {
                        self.config.resolve.floor = v;
                    } else {
                        self.config.resolve.ceiling = v;
                    }
                    self.resolve_at = Some(TosLoc {
                        line: line.d.line.clone(),
                        token: line.last().clone(),
                        seq: 0,
                    });
                }
                w => {
                    line.report_at(
                        token,
                        DiagnosticKind::UnknownOption {
                            directive: "resolve".into(),
                            found: w.into(),
                            expected: RESOLVE_OPTIONS,
                            suggestion: suggest(w, &[RESOLVE_OPTIONS]),
                        },
                    );
                    line.skip_value_of_unknown(true, keywords);
                }
            }
        }
    }

    fn interface(&mut self, line: &mut Line<'_, '_>) {
        let Some(action) = line.next() else {
            line.missing("interface", Expected::OneOf(INTERFACE_ACTIONS));
            return;
        };
        // Everything after `interface`, for "this form is not supported".
        let form = || line.d.args.iter().map(|t| t.text.as_str()).collect::<Vec<_>>().join(" ");
        match action.text.as_str() {
            "listen" => {}
            "ignore" | "drop" => {
                let kind = DiagnosticKind::UnsupportedInterface { form: form() };
                line.report_at(action, kind);
                return;
            }
            w => {
                line.report_at(
                    action,
                    DiagnosticKind::UnknownOption {
                        directive: "interface".into(),
                        found: w.into(),
                        expected: INTERFACE_ACTIONS,
                        suggestion: suggest(w, &[INTERFACE_ACTIONS]),
                    },
                );
                return;
            }
        }
        let Some(target) = line.next() else {
            line.missing("interface listen", Expected::ListenAddress);
            return;
        };
        let addrs = match parse_listen(&target.text) {
            Ok(Some(addrs)) => addrs,
            Ok(None) => {
                let kind = DiagnosticKind::UnsupportedInterface { form: form() };
                line.report_at(target, kind);
                return;
            }
            Err(kind) => {
                // Go on: the port may be wrong too.
                line.report_at(target, kind);
                Vec::new()
            }
        };
        let keywords: &[&[&str]] = &[LISTEN_OPTIONS];
        let mut port = ListenConfig::DEFAULT_PORT;
        let mut port_seen = false;
        while let Some(token) = line.next() {
            match token.text.as_str() {
                "port" => {
                    if std::mem::replace(&mut port_seen, true) {
                        line.report_at(
                            token,
                            DiagnosticKind::DuplicateOption {
                                directive: "interface listen".into(),
                                option: "port".into(),
                            },
                        );
                    }
                    if let Some(v) = line.int("port", 1u16, u16::MAX, keywords) {
                        port = v;
                    }
                }
                w => {
                    line.report_at(
                        token,
                        DiagnosticKind::UnknownOption {
                            directive: "interface listen".into(),
                            found: w.into(),
                            expected: LISTEN_OPTIONS,
                            suggestion: suggest(w, &[LISTEN_OPTIONS]),
                        },
                    );
                    line.skip_value_of_unknown(false, keywords);
                }
            }
        }
        if line.errors > 0 {
            return;
        }
        let origin = line.d.line.origin();
        for addr in addrs {
            let earlier = self.config.listen.iter().find(|l| l.addr == addr && l.port == port);
            if let Some(earlier) = earlier {
                let kind = DiagnosticKind::RepeatedListen {
                    addr,
                    port,
                    previous_file: earlier.origin.file.clone(),
                    previous_line: earlier.origin.line,
                };
                line.report_at(target, kind);
                continue;
            }
            self.config.listen.push(ListenConfig { addr, port, origin: origin.clone() });
        }
    }

    fn restrict(&mut self, line: &mut Line<'_, '_>) {
        let keywords: &[&[&str]] = &[RESTRICT_ALL];
        let is_family = |t: &&Token| ADDRESS_FAMILY_FLAGS.contains(&t.text.as_str());
        let mut family: Option<&Token> = None;
        while let Some(flag) = line.peek().filter(is_family) {
            line.next();
            family = Some(flag);
        }
        let Some(target) = line.next() else {
            line.missing("restrict", Expected::RestrictTarget);
            return;
        };
        let addr = match target.text.as_str() {
            "default" => RawTarget::Default,
            "source" => {
                let kind =
                    DiagnosticKind::UnsupportedDirective { directive: "restrict source".into() };
                line.report_at(target, kind);
                return;
            }
            word if RESTRICT_ALL.contains(&word) => {
                let kind = DiagnosticKind::BadValue {
                    what: "restrict".into(),
                    expected: Expected::RestrictTarget,
                    found: word.into(),
                };
                line.report_at(target, kind);
                RawTarget::Bad
            }
            word => match parse_restrict_addr(word) {
                Ok(ip) => RawTarget::Addr(ip),
                Err(kind) => {
                    let warning = kind.severity() == Severity::Warning;
                    line.report_at(target, kind);
                    if warning {
                        // A host name: the whole line is ignored.
                        return;
                    }
                    RawTarget::Bad
                }
            },
        };

        let mut flags = RestrictFlagsConfig::default();
        // The `mask` keyword and its value.
        let mut mask: Option<(&Token, &Token)> = None;
        while let Some(token) = line.next() {
            let word = token.text.as_str();
            match word {
                "-4" | "-6" | "--ipv4" | "--ipv6" => family = Some(token),
                "mask" => {
                    if mask.is_some() {
                        line.report_at(
                            token,
                            DiagnosticKind::DuplicateOption {
                                directive: "restrict".into(),
                                option: "mask".into(),
                            },
                        );
                    }
                    if let Some(value) = line.value("mask", Expected::Netmask, keywords) {
                        mask = Some((token, value));
                    }
                }
                "ignore" => flags.ignore = true,
                "noserve" => flags.noserve = true,
                "noquery" => flags.noquery = true,
                "kod" => flags.kod = true,
                "limited" => flags.limited = true,
                "notrust" => flags.notrust = true,
                "nomodify" => flags.nomodify = true,
                "serverresponse" => {
                    const FUZZ: &[&str] = &["fuzz"];
                    let expected = Expected::OneOf(FUZZ);
                    if let Some(v) = line.value(word, expected.clone(), keywords) {
                        if v.text != "fuzz" {
                            let found = v.text.clone();
                            let kind =
                                DiagnosticKind::BadValue { what: word.into(), expected, found };
                            line.report_at(v, kind);
                        }
                    }
                }
                "ippeerlimit" => {
                    line.value(word, Expected::Value, keywords);
                }
                w if RESTRICT_MOOT_FLAGS.contains(&w) => {}
                w if RESTRICT_AUTH_FLAGS.contains(&w) => {
                    line.report_at(token, DiagnosticKind::RestrictNeedsAuth { flag: w.into() });
                }
                w if UNSUPPORTED_RESTRICT_FLAGS.contains(&w) => line.report_at(
                    token,
                    DiagnosticKind::UnsupportedOption {
                        directive: "restrict".into(),
                        option: w.into(),
                    },
                ),
                w => {
                    let suggestion = suggest(w, &[RESTRICT_ALL]);
                    line.report_at(
                        token,
                        DiagnosticKind::UnknownOption {
                            directive: "restrict".into(),
                            found: w.into(),
                            expected: RESTRICT_ALL,
                            suggestion,
                        },
                    );
                    let valued = suggestion.is_some_and(|s| RESTRICT_VALUED.contains(&s));
                    line.skip_value_of_unknown(valued, keywords);
                }
            }
        }

        let wanted = family.map(|f| match f.text.as_str() {
            "-4" | "--ipv4" => "IPv4",
            _ => "IPv6",
        });
        let target = match addr {
            RawTarget::Default => {
                if let Some((keyword, _)) = mask {
                    line.report_at(
                        keyword,
                        DiagnosticKind::OptionNotAllowed {
                            option: "mask".into(),
                            directive: "restrict default".into(),
                            allowed_on: "restrict ADDRESS",
                        },
                    );
                }
                match wanted {
                    None => RestrictTarget::Default,
                    Some("IPv4") => RestrictTarget::DefaultV4,
                    Some(_) => RestrictTarget::DefaultV6,
                }
            }
            RawTarget::Bad => return,
            RawTarget::Addr(ip) => {
                let have = family_name(ip);
                if let (Some(flag), Some(wanted)) = (family, wanted) {
                    if wanted != have {
                        line.report_at(
                            flag,
                            DiagnosticKind::FamilyMismatch {
                                flag: flag.text.clone(),
                                wanted,
                                address: target.text.clone(),
                            },
                        );
                    }
                }
                let prefix_len = match mask {
                    None => full_prefix(ip),
                    Some((_, value)) => match mask_prefix(ip, &value.text) {
                        Ok(p) => p,
                        Err(kind) => {
                            line.report_at(value, kind);
                            return;
                        }
                    },
                };
                RestrictTarget::Net { addr: network(ip, prefix_len), prefix_len }
            }
        };
        if line.errors == 0 {
            self.config.restrict.push(RestrictConfig {
                target,
                flags,
                origin: line.d.line.origin(),
            });
        }
    }

    fn discard(&mut self, line: &mut Line<'_, '_>) {
        let keywords: &[&[&str]] = &[DISCARD_OPTIONS, UNSUPPORTED_DISCARD];
        if line.peek().is_none() {
            line.missing("discard", Expected::OneOf(DISCARD_OPTIONS));
            return;
        }
        while let Some(token) = line.next() {
            let word = token.text.as_str();
            match word {
                "average" => {
                    let max = DiscardConfig::MAX_AVERAGE_LOG2;
                    if let Some(v) = line.int(word, 0u8, max, keywords) {
                        self.config.discard.average_log2 = v;
                    }
                }
                "minimum" => {
                    if let Some(v) = line.int(word, 0u8, u8::MAX, keywords) {
                        self.config.discard.minimum_secs = v;
                    }
                }
                w if UNSUPPORTED_DISCARD.contains(&w) => {
                    line.unsupported_keyword("discard", token, keywords)
                }
                _ => line.unknown_keyword(
                    "discard",
                    token,
                    DISCARD_OPTIONS,
                    UNSUPPORTED_DISCARD,
                    keywords,
                ),
            }
        }
    }

    fn tinker(&mut self, line: &mut Line<'_, '_>) {
        let keywords: &[&[&str]] = &[TINKER_OPTIONS, UNSUPPORTED_TINKER];
        if line.peek().is_none() {
            line.missing("tinker", Expected::OneOf(TINKER_OPTIONS));
            return;
        }
        while let Some(token) = line.next() {
            let word = token.text.as_str();
            match word {
                "step" | "panic" | "stepout" => {
                    let (min, max) = match word {
                        "stepout" => (TinkerConfig::MIN_STEPOUT_US, TinkerConfig::MAX_STEPOUT_US),
                        _ => (0, TinkerConfig::MAX_THRESHOLD_US),
                    };
                    let what = format!("tinker {word}");
                    let Some(v) = line.seconds(&what, min, max, keywords) else { continue };
                    let tinker = &mut self.config.tinker;
                    match word {
                        "step" => tinker.step_us = Some(v),
                        "panic" => tinker.panic_us = Some(v),
                        _ => tinker.stepout_us = Some(v),
                    }
                }
                w if UNSUPPORTED_TINKER.contains(&w) => {
                    line.unsupported_keyword("tinker", token, keywords)
                }
                _ => line.unknown_keyword(
                    "tinker",
                    token,
                    TINKER_OPTIONS,
                    UNSUPPORTED_TINKER,
                    keywords,
                ),
            }
        }
    }

    fn makestep(&mut self, line: &mut Line<'_, '_>) {
        let max = TinkerConfig::MAX_THRESHOLD_US;
        if line.peek().is_none() {
            line.missing("makestep threshold", Expected::Seconds { min_us: 0, max_us: max });
            return;
        }
        let threshold = line.seconds("makestep threshold", 0, max, &[]);
        let limit = line.int("makestep limit", -1i64, i64::from(u32::MAX), &[]);
        if let Some(extra) = line.next() {
            line.report_at(
                extra,
                DiagnosticKind::UnexpectedArgument {
                    directive: "makestep".into(),
                    takes: "two arguments, THRESHOLD (seconds) and LIMIT (updates, -1 for always)",
                    found: extra.text.clone(),
                },
            );
        }
        let (Some(threshold_us), Some(limit), 0) = (threshold, limit, line.errors) else {
            return;
        };
        let here = (line.d.line.file.path.clone(), line.d.line.number);
        if let Some((previous_file, previous_line)) = self.makestep_at.replace(here) {
            line.report_at(
                &line.d.keyword,
                DiagnosticKind::RepeatedDirective {
                    directive: "makestep".into(),
                    previous_file,
                    previous_line,
                },
            );
        }
        // -1 (the only negative value accepted) means "always", as in chrony.
        let limit = u32::try_from(limit).ok();
        self.config.makestep = Some(MakeStepConfig { threshold_us, limit });
    }

    /// Runs the checks that need the whole file and returns the result.
    pub(crate) fn finish(self, diags: &mut Diags) -> Config {
        let tos = &self.config.tos;
        let checks = [
            ("minclock", tos.minclock, &self.minclock_at),
            ("minsane", tos.minsane, &self.minsane_at),
        ];
        for (lower, lower_value, lower_at) in checks {
            if lower_value <= tos.maxclock {
                continue;
            }
            let blame =
                [lower_at, &self.maxclock_at].into_iter().flatten().max_by_key(|loc| loc.seq);
            if let Some(loc) = blame {
                diags.push(loc.line.at(
                    &loc.token,
                    DiagnosticKind::TosOrder {
                        lower,
                        lower_value,
                        upper: "maxclock",
                        upper_value: tos.maxclock,
                    },
                ));
            }
        }
        let resolve = self.config.resolve;
        if resolve.floor > resolve.ceiling {
            if let Some(loc) = &self.resolve_at {
                diags.push(loc.line.at(
                    &loc.token,
                    DiagnosticKind::ResolveOrder { floor: resolve.floor, ceiling: resolve.ceiling },
                ));
            }
        }
        if !self.runtime {
            self.finish_auth(diags);
        }
        self.config
    }
}

/// The one non-empty path argument of `directive`, or `None` after reporting
/// why not.
fn single_path(line: &mut Line<'_, '_>, directive: &str) -> Option<String> {
    let Some(path) = line.next() else {
        line.missing(directive, Expected::Path);
        return None;
    };
    if let Some(extra) = line.next() {
        line.report_at(
            extra,
            DiagnosticKind::UnexpectedArgument {
                directive: directive.into(),
                takes: "exactly one path",
                found: extra.text.clone(),
            },
        );
        return None;
    }
    if path.text.is_empty() {
        line.report_at(
            path,
            DiagnosticKind::BadValue {
                what: directive.into(),
                expected: Expected::Path,
                found: String::new(),
            },
        );
        return None;
    }
    Some(path.text.clone())
}

/// Whether `token` is one of the `keywords` of its directive.
fn is_keyword(keywords: &[&[&str]], token: &Token) -> bool {
    keywords.iter().any(|k| k.contains(&token.text.as_str()))
}

/// Parses a non-negative decimal number of seconds (`300`, `0.128`, `.5`,
/// `1.`) into microseconds. At most 6 significant digits after the point
/// (trailing zeros do not count); no sign, exponent, `inf` or `nan`.
fn parse_seconds_us(word: &str) -> Option<u64> {
    let (whole, frac) = word.split_once('.').unwrap_or((word, ""));
    if whole.is_empty() && frac.is_empty() {
        return None;
    }
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(whole) || !all_digits(frac) {
        return None;
    }
    let frac = frac.trim_end_matches('0');
    if frac.len() > 6 {
        return None;
    }
    let mut us: u64 = 0;
    for b in whole.bytes() {
        us = us.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    let mut frac_us: u64 = 0;
    for i in 0..6 {
        let digit = frac.as_bytes().get(i).map_or(0, |b| u64::from(b - b'0'));
        frac_us = frac_us * 10 + digit;
    }
    us.checked_mul(1_000_000)?.checked_add(frac_us)
}

/// What a `restrict` line names, before `-4`/`-6` and `mask` are applied.
enum RawTarget {
    Default,
    Addr(IpAddr),
    /// Not an address; already reported. The flags are still checked so
    /// that one run finds every problem.
    Bad,
}

enum HostParse {
    Host(Host),
    /// ntpd's 127.127.t.u reference-clock pseudo-address.
    Refclock,
}

fn parse_host(directive: &str, word: &str) -> Result<HostParse, DiagnosticKind> {
    if word.contains('%') && word.contains(':') {
        return Err(DiagnosticKind::ScopedAddress { found: word.into() });
    }
    // NTPsec documents IPv6 literals in brackets; ntpd takes them bare.
    if let Some(inner) = word.strip_prefix('[').and_then(|w| w.strip_suffix(']')) {
        return Ipv6Addr::from_str(inner)
            .map(|ip| HostParse::Host(Host::Ip(IpAddr::V6(ip))))
            .map_err(|_| DiagnosticKind::BadValue {
                what: directive.into(),
                expected: Expected::HostOrAddress,
                found: word.into(),
            });
    }
    if let Ok(ip) = IpAddr::from_str(word) {
        if let IpAddr::V4(v4) = ip {
            if v4.octets()[..2] == [127, 127] {
                return Ok(HostParse::Refclock);
            }
        }
        return Ok(HostParse::Host(Host::Ip(ip)));
    }
    HostName::new(word).map(|n| HostParse::Host(Host::Name(n))).map_err(|reason| {
        DiagnosticKind::InvalidHost { directive: directive.into(), found: word.into(), reason }
    })
}

/// An IP literal, bare or (IPv6) in brackets; `None` if it is neither.
fn parse_ip(word: &str) -> Option<IpAddr> {
    match word.strip_prefix('[').and_then(|w| w.strip_suffix(']')) {
        Some(inner) => Ipv6Addr::from_str(inner).ok().map(IpAddr::V6),
        None => IpAddr::from_str(word).ok(),
    }
}

/// The addresses of `interface listen WORD`: `Ok(None)` for the forms
/// rntpd does not implement (interface names and prefixes).
fn parse_listen(word: &str) -> Result<Option<Vec<IpAddr>>, DiagnosticKind> {
    const V4_ANY: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    const V6_ANY: IpAddr = IpAddr::V6(Ipv6Addr::UNSPECIFIED);
    match word {
        "all" | "wildcard" => return Ok(Some(vec![V4_ANY, V6_ANY])),
        "ipv4" => return Ok(Some(vec![V4_ANY])),
        "ipv6" => return Ok(Some(vec![V6_ANY])),
        _ => {}
    }
    if word.contains('%') && word.contains(':') {
        return Err(DiagnosticKind::ScopedAddress { found: word.into() });
    }
    if word.contains('/') {
        return Ok(None);
    }
    if let Some(ip) = parse_ip(word) {
        return Ok(Some(vec![ip]));
    }
    // Digits and dots, or colons, are a mistyped address rather than the
    // name of an interface.
    let looks_numeric = word.chars().all(|c| c.is_ascii_digit() || c == '.');
    if looks_numeric || word.contains(':') || word.starts_with('[') {
        return Err(DiagnosticKind::BadValue {
            what: "interface listen".into(),
            expected: Expected::ListenAddress,
            found: word.into(),
        });
    }
    Ok(None)
}

/// The address of `restrict ADDR`. A valid host name is a warning (the line
/// is ignored); anything else that is not an address is an error.
fn parse_restrict_addr(word: &str) -> Result<IpAddr, DiagnosticKind> {
    if word.contains('%') && word.contains(':') {
        return Err(DiagnosticKind::ScopedAddress { found: word.into() });
    }
    if let Some(ip) = parse_ip(word) {
        return Ok(ip);
    }
    if !word.starts_with('[') && HostName::new(word).is_ok() {
        return Err(DiagnosticKind::RestrictHostName { found: word.into() });
    }
    Err(DiagnosticKind::BadValue {
        what: "restrict".into(),
        expected: Expected::RestrictTarget,
        found: word.into(),
    })
}

fn family_name(ip: IpAddr) -> &'static str {
    match ip {
        IpAddr::V4(_) => "IPv4",
        IpAddr::V6(_) => "IPv6",
    }
}

/// The prefix length of a single host of `ip`'s family.
fn full_prefix(ip: IpAddr) -> u8 {
    match ip {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// The prefix length of the netmask `word` for the address `ip`.
fn mask_prefix(ip: IpAddr, word: &str) -> Result<u8, DiagnosticKind> {
    let Some(mask) = parse_ip(word) else {
        return Err(DiagnosticKind::BadValue {
            what: "mask".into(),
            expected: Expected::Netmask,
            found: word.into(),
        });
    };
    let (ones, leading) = match (ip, mask) {
        (IpAddr::V4(_), IpAddr::V4(m)) => {
            let bits = u32::from(m);
            (bits.count_ones(), bits.leading_ones())
        }
        (IpAddr::V6(_), IpAddr::V6(m)) => {
            let bits = u128::from(m);
            (bits.count_ones(), bits.leading_ones())
        }
        _ => {
            return Err(DiagnosticKind::MaskFamily {
                mask: word.into(),
                mask_family: family_name(mask),
                address_family: family_name(ip),
            })
        }
    };
    if ones != leading {
        return Err(DiagnosticKind::NonContiguousMask {
            mask: word.into(),
            family: family_name(mask),
        });
    }
    // At most 128, so this never saturates.
    Ok(u8::try_from(ones).unwrap_or(u8::MAX))
}

/// `ip` with the bits after the first `prefix_len` cleared.
fn network(ip: IpAddr, prefix_len: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix_len.min(32))).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask))
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix_len.min(128))).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
        }
    }
}

/// Parses `ADDR`, `ADDR:PORT`, `[V6]`, `[V6]:PORT` or bare `V6`.
fn parse_resolver(word: &str) -> Option<SocketAddr> {
    let addr = if let Ok(sa) = SocketAddr::from_str(word) {
        sa
    } else if let Ok(ip) = IpAddr::from_str(word) {
        SocketAddr::new(ip, DNS_PORT)
    } else {
        let inner = word.strip_prefix('[')?.strip_suffix(']')?;
        SocketAddr::new(IpAddr::V6(Ipv6Addr::from_str(inner).ok()?), DNS_PORT)
    };
    // Port 0 means "any" to the socket layer, never a real resolver.
    (addr.port() != 0).then_some(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_forms() {
        assert_eq!(parse_seconds_us("0"), Some(0));
        assert_eq!(parse_seconds_us("0.128"), Some(128_000));
        assert_eq!(parse_seconds_us(".5"), Some(500_000));
        assert_eq!(parse_seconds_us("1."), Some(1_000_000));
        assert_eq!(parse_seconds_us("300"), Some(300_000_000));
        assert_eq!(parse_seconds_us("0.000001"), Some(1));
        assert_eq!(parse_seconds_us("0.1000000000"), Some(100_000));
        assert_eq!(parse_seconds_us("0.0000001"), None);
        for bad in [
            "",
            ".",
            "-1",
            "+1",
            "1e3",
            "inf",
            "nan",
            "1.2.3",
            "abc",
            "1,5",
            "99999999999999999999",
        ] {
            assert_eq!(parse_seconds_us(bad), None, "{bad}");
        }
    }

    #[test]
    fn resolver_forms() {
        let p = |s: &str| parse_resolver(s).map(|a| a.to_string());
        assert_eq!(p("192.0.2.53").as_deref(), Some("192.0.2.53:53"));
        assert_eq!(p("192.0.2.53:5353").as_deref(), Some("192.0.2.53:5353"));
        assert_eq!(p("::1").as_deref(), Some("[::1]:53"));
        assert_eq!(p("[::1]").as_deref(), Some("[::1]:53"));
        assert_eq!(p("[2001:db8::53]:5353").as_deref(), Some("[2001:db8::53]:5353"));
        assert_eq!(p("192.0.2.53:0"), None);
        assert_eq!(p("dns.example.com"), None);
        assert_eq!(p("192.0.2.53:99999"), None);
        assert_eq!(p("[::1"), None);
    }
}
