//! Phase 2 of the symmetric-key and manycast directives: `keys`, `trustedkey`, `controlkey`,
//! `requestkey`, `manycastserver` and `ttl`, and the cross-line checks that tie `key N` on
//! source lines to them.

use std::path::PathBuf;

use super::{parse_ip, Line, Resolver, TosLoc};
use crate::config::{KeysFileConfig, ManycastServerConfig};
use crate::error::{DiagnosticKind, Diags, Expected};
use crate::known::{suggest, MANYCAST_SERVER_OPTIONS};
use crate::lex::Token;

/// Most values of `ttl` (ntpd's `MAX_TTL`).
const MAX_TTLS: usize = 8;
/// The port manycast solicitations arrive on without `port N`.
const NTP_PORT: u16 = 123;

/// A key id used somewhere (`key N`, `controlkey N`), for the checks in [`Resolver::finish`].
#[derive(Debug)]
pub(super) struct KeyUse {
    pub(super) at: TosLoc,
    pub(super) key: u32,
    /// `key` or `controlkey`.
    pub(super) directive: &'static str,
}

impl Resolver {
    /// `keys FILE`.
    pub(super) fn keys(&mut self, line: &mut Line<'_, '_>) {
        let Some(path) = line.next() else {
            line.missing("keys", Expected::Path);
            return;
        };
        if let Some(extra) = line.next() {
            line.report_at(
                extra,
                DiagnosticKind::UnexpectedArgument {
                    directive: "keys".into(),
                    takes: "exactly one path",
                    found: extra.text.clone(),
                },
            );
            return;
        }
        if path.text.is_empty() {
            let kind = DiagnosticKind::BadValue {
                what: "keys".into(),
                expected: Expected::Path,
                found: String::new(),
            };
            line.report_at(path, kind);
            return;
        }
        if let Some(previous) = &self.config.auth.keys {
            line.report_at(
                &line.d.keyword,
                DiagnosticKind::RepeatedDirective {
                    directive: "keys".into(),
                    previous_file: previous.origin.file.clone(),
                    previous_line: previous.origin.line,
                },
            );
        }
        self.config.auth.keys =
            Some(KeysFileConfig { path: PathBuf::from(&path.text), origin: line.d.line.origin() });
    }

    /// `trustedkey ID... [(FIRST ... LAST)]...` (ranges as NTPsec writes them).
    pub(super) fn trustedkey(&mut self, line: &mut Line<'_, '_>) {
        if line.peek().is_none() {
            line.missing("trustedkey", Expected::KeyList);
            return;
        }
        // NTPsec's range is `(`, first, `...`, last, `)`, however the parentheses and the dots
        // are attached to the words: split them off, keeping each piece's word for messages.
        let mut pieces: Vec<(&str, &Token)> = Vec::new();
        while let Some(token) = line.next() {
            pieces.extend(split_range_word(&token.text).into_iter().map(|p| (p, token)));
        }
        let mut ranges = Vec::new();
        let mut i = 0;
        while i < pieces.len() {
            let (piece, token) = pieces[i];
            if piece != "(" {
                match parse_key_id(piece) {
                    Some(id) => ranges.push((id, id)),
                    None => bad_range(line, token),
                }
                i += 1;
                continue;
            }
            let range = pieces.get(i..i + 5).and_then(|r| match r {
                [_, (first, _), ("...", _), (last, _), (")", close)] => {
                    Some((parse_key_id(first)?, parse_key_id(last)?, *close))
                }
                _ => None,
            });
            match range {
                Some((first, last, _)) if first <= last => {
                    ranges.push((first, last));
                    i += 5;
                }
                Some((first, last, close)) => {
                    line.report_span(token, close, DiagnosticKind::EmptyKeyRange { first, last });
                    i += 5;
                }
                None => {
                    bad_range(line, token);
                    // Skip to after the next `)`, or to the end.
                    i += pieces[i..]
                        .iter()
                        .position(|(p, _)| *p == ")")
                        .map_or(pieces.len(), |n| n + 1);
                }
            }
        }
        if line.errors == 0 {
            self.config.auth.trusted.extend(ranges);
        }
    }

    /// `controlkey N`.
    pub(super) fn controlkey(&mut self, line: &mut Line<'_, '_>) {
        let Some(key) = self.one_key(line, "controlkey") else { return };
        let token = line.last().clone();
        self.config.auth.control_key = Some(key);
        self.key_uses.push(KeyUse {
            at: TosLoc { line: line.d.line.clone(), token, seq: 0 },
            key,
            directive: "controlkey",
        });
    }

    /// `requestkey N`: accepted (ntpd compatibility), with a warning that it is unused.
    pub(super) fn requestkey(&mut self, line: &mut Line<'_, '_>) {
        let Some(key) = self.one_key(line, "requestkey") else { return };
        self.config.auth.request_key = Some(key);
        line.report_at(&line.d.keyword, DiagnosticKind::RequestKeyUnused);
    }

    /// `DIRECTIVE N` with N a key id and nothing else.
    fn one_key(&mut self, line: &mut Line<'_, '_>, directive: &str) -> Option<u32> {
        let key = line.int(directive, 1u32, u32::MAX, &[])?;
        if let Some(extra) = line.next() {
            line.report_at(
                extra,
                DiagnosticKind::UnexpectedArgument {
                    directive: directive.into(),
                    takes: "exactly one key id",
                    found: extra.text.clone(),
                },
            );
            return None;
        }
        Some(key)
    }

    /// `manycastserver GROUP... [port N]`.
    pub(super) fn manycastserver(&mut self, line: &mut Line<'_, '_>) {
        let keywords: &[&[&str]] = &[MANYCAST_SERVER_OPTIONS];
        if line.peek().is_none() {
            line.missing("manycastserver", Expected::HostOrAddress);
            return;
        }
        let mut groups = Vec::new();
        let mut port = NTP_PORT;
        while let Some(token) = line.next() {
            match token.text.as_str() {
                "port" => {
                    if let Some(v) = line.int("port", 1u16, u16::MAX, keywords) {
                        port = v;
                    }
                }
                word => match parse_ip(word) {
                    Some(ip) if ip.is_multicast() => groups.push(ip),
                    Some(_) => line.report_at(
                        token,
                        DiagnosticKind::NotMulticast {
                            directive: "manycastserver",
                            found: word.into(),
                        },
                    ),
                    None if word.chars().all(|c| c.is_ascii_alphabetic()) => {
                        line.report_at(
                            token,
                            DiagnosticKind::UnknownOption {
                                directive: "manycastserver".into(),
                                found: word.into(),
                                expected: MANYCAST_SERVER_OPTIONS,
                                suggestion: suggest(word, &[MANYCAST_SERVER_OPTIONS]),
                            },
                        );
                        line.skip_value_of_unknown(false, keywords);
                    }
                    None => line.report_at(
                        token,
                        DiagnosticKind::NotMulticast {
                            directive: "manycastserver",
                            found: word.into(),
                        },
                    ),
                },
            }
        }
        if line.errors > 0 {
            return;
        }
        if groups.is_empty() {
            line.missing("manycastserver", Expected::HostOrAddress);
            return;
        }
        if self.manycast_server_at.is_none() {
            self.manycast_server_at =
                Some(TosLoc { line: line.d.line.clone(), token: line.d.keyword.clone(), seq: 0 });
        }
        let origin = line.d.line.origin();
        for group in groups {
            let dup =
                self.config.manycast_servers.iter().any(|m| m.group == group && m.port == port);
            if !dup {
                self.config.manycast_servers.push(ManycastServerConfig {
                    group,
                    port,
                    origin: origin.clone(),
                });
            }
        }
    }

    /// `ttl N...`: the manycast TTL ring.
    pub(super) fn ttl(&mut self, line: &mut Line<'_, '_>) {
        if line.peek().is_none() {
            line.missing("ttl", Expected::Integer { min: 1, max: 255 });
            return;
        }
        let mut values: Vec<u8> = Vec::new();
        let first = line.peek().cloned();
        while line.peek().is_some() {
            let Some(v) = line.int("ttl", 1u8, u8::MAX, &[]) else { continue };
            values.push(v);
        }
        if line.errors > 0 {
            return;
        }
        let increasing = values.windows(2).all(|w| w[0] < w[1]);
        if values.len() > MAX_TTLS || !increasing {
            let found = if increasing {
                format!("{} values", values.len())
            } else {
                format!("{values:?}, not increasing")
            };
            if let Some(first) = first {
                let last = line.last().clone();
                line.report_span(&first, &last, DiagnosticKind::BadTtlList { found });
            }
            return;
        }
        self.config.ttl = values;
    }

    /// The cross-line checks of keys and manycast (a whole file only; a runtime line is
    /// checked against the running key store instead).
    pub(super) fn finish_auth(&self, diags: &mut Diags) {
        let auth = &self.config.auth;
        for used in &self.key_uses {
            let kind = if auth.keys.is_none() {
                DiagnosticKind::KeyWithoutKeysFile { directive: used.directive, key: used.key }
            } else if !auth.is_trusted(used.key) {
                DiagnosticKind::KeyNotTrusted { key: used.key }
            } else {
                continue;
            };
            diags.push(used.at.line.at(&used.at.token, kind));
        }
        if let Some(at) = &self.manycast_server_at {
            let missing = if auth.keys.is_none() {
                Some("no `keys` line")
            } else if auth.trusted.is_empty() {
                Some("no `trustedkey`")
            } else {
                None
            };
            if let Some(missing) = missing {
                diags.push(
                    at.line.at(&at.token, DiagnosticKind::ManycastServerWithoutKeys { missing }),
                );
            }
            if self.config.listen.is_empty() {
                diags.push(at.line.at(&at.token, DiagnosticKind::ManycastServerWithoutListen));
            }
        }
    }
}

/// A key id: 1..=4294967295.
fn parse_key_id(word: &str) -> Option<u32> {
    word.parse::<u32>().ok().filter(|id| *id != 0)
}

/// Splits a `trustedkey` word into ids and the range punctuation `(`, `...`, `)`.
fn split_range_word(word: &str) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut rest = word;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('(') {
            pieces.push("(");
            rest = r;
        } else if let Some(r) = rest.strip_prefix(')') {
            pieces.push(")");
            rest = r;
        } else if let Some(r) = rest.strip_prefix("...") {
            pieces.push("...");
            rest = r;
        } else {
            let end = rest.find(['(', ')', '.']).filter(|i| *i > 0).unwrap_or(rest.len());
            pieces.push(&rest[..end]);
            rest = &rest[end..];
        }
    }
    pieces
}

fn bad_range(line: &mut Line<'_, '_>, token: &Token) {
    line.report_at(
        token,
        DiagnosticKind::BadValue {
            what: "trustedkey".into(),
            expected: Expected::KeyList,
            found: token.text.clone(),
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_words_split() {
        assert_eq!(split_range_word("(4"), vec!["(", "4"]);
        assert_eq!(split_range_word("4...8)"), vec!["4", "...", "8", ")"]);
        assert_eq!(split_range_word("(4...8)"), vec!["(", "4", "...", "8", ")"]);
        assert_eq!(split_range_word("12"), vec!["12"]);
        assert_eq!(split_range_word("1.5"), vec!["1", ".5"]);
        assert_eq!(split_range_word("."), vec!["."]);
    }
}
