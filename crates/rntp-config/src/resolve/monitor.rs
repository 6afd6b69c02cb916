//! Phase 2 of the monitoring directives: `statsdir`, `statistics`, `filegen` (ntpd's, for
//! statistics files) and `metrics` (rntpd extension, the Prometheus endpoint).

use std::net::SocketAddr;
use std::path::PathBuf;

use super::{parse_ip, Line, Resolver};
use crate::config::{MetricsConfig, StatsKind};
use crate::error::{DiagnosticKind, Expected};
use crate::known::{
    suggest, FILEGEN_OPTIONS, FILEGEN_TYPES, METRICS_OPTIONS, STATS_FILES,
    UNSUPPORTED_FILEGEN_TYPES, UNSUPPORTED_STATS_FILES,
};
use crate::lex::Token;

impl Resolver {
    /// `statsdir PATH`.
    pub(super) fn statsdir(&mut self, line: &mut Line<'_, '_>) {
        let Some(path) = line.next() else {
            line.missing("statsdir", Expected::Path);
            return;
        };
        if let Some(extra) = line.next() {
            line.report_at(
                extra,
                DiagnosticKind::UnexpectedArgument {
                    directive: "statsdir".into(),
                    takes: "exactly one path",
                    found: extra.text.clone(),
                },
            );
            return;
        }
        if path.text.is_empty() {
            let kind = DiagnosticKind::BadValue {
                what: "statsdir".into(),
                expected: Expected::Path,
                found: String::new(),
            };
            line.report_at(path, kind);
            return;
        }
        let here = (line.d.line.file.path.clone(), line.d.line.number);
        if let Some((previous_file, previous_line)) = self.statsdir_at.replace(here) {
            line.report_at(
                &line.d.keyword,
                DiagnosticKind::RepeatedDirective {
                    directive: "statsdir".into(),
                    previous_file,
                    previous_line,
                },
            );
        }
        self.config.stats.dir = PathBuf::from(&path.text);
    }

    /// `statistics NAME...`: enables file sets.
    pub(super) fn statistics(&mut self, line: &mut Line<'_, '_>) {
        if line.peek().is_none() {
            line.missing("statistics", Expected::OneOf(STATS_FILES));
            return;
        }
        while let Some(token) = line.next() {
            if let Some(kind) = self.stats_kind(line, "statistics", token) {
                if let Some(f) = self.config.stats.file_mut(kind) {
                    f.enabled = true;
                }
            }
        }
    }

    /// `filegen NAME [file F] [type day] [link|nolink] [enable|disable]`.
    pub(super) fn filegen(&mut self, line: &mut Line<'_, '_>) {
        let Some(name) = line.next() else {
            line.missing("filegen", Expected::OneOf(STATS_FILES));
            return;
        };
        let kind = self.stats_kind(line, "filegen", name);
        let keywords: &[&[&str]] = &[FILEGEN_OPTIONS];
        let (mut enabled, mut link, mut file) = (None, None, None);
        while let Some(token) = line.next() {
            match token.text.as_str() {
                "enable" => enabled = Some(true),
                "disable" => enabled = Some(false),
                "link" => link = Some(true),
                "nolink" => link = Some(false),
                "file" => {
                    let Some(value) = line.value("file", Expected::Path, keywords) else {
                        continue;
                    };
                    if value.text.is_empty() || value.text.contains('/') || value.text == ".." {
                        let kind = DiagnosticKind::BadValue {
                            what: "filegen file".into(),
                            expected: Expected::Value,
                            found: value.text.clone(),
                        };
                        line.report_at(value, kind);
                        continue;
                    }
                    file = Some(value.text.clone());
                }
                "type" => {
                    let Some(value) = line.value("type", Expected::OneOf(FILEGEN_TYPES), keywords)
                    else {
                        continue;
                    };
                    let word = value.text.as_str();
                    if UNSUPPORTED_FILEGEN_TYPES.contains(&word) {
                        line.report_at(
                            value,
                            DiagnosticKind::UnsupportedOption {
                                directive: "filegen".into(),
                                option: format!("type {word}` (files rotate by day) `"),
                            },
                        );
                    } else if !FILEGEN_TYPES.contains(&word) {
                        line.report_at(
                            value,
                            DiagnosticKind::UnknownOption {
                                directive: "filegen type".into(),
                                found: word.into(),
                                expected: FILEGEN_TYPES,
                                suggestion: suggest(
                                    word,
                                    &[FILEGEN_TYPES, UNSUPPORTED_FILEGEN_TYPES],
                                ),
                            },
                        );
                    }
                }
                w => {
                    line.report_at(
                        token,
                        DiagnosticKind::UnknownOption {
                            directive: "filegen".into(),
                            found: w.into(),
                            expected: FILEGEN_OPTIONS,
                            suggestion: suggest(w, &[FILEGEN_OPTIONS]),
                        },
                    );
                }
            }
        }
        let Some(f) = kind.and_then(|k| self.config.stats.file_mut(k)) else { return };
        if line.errors > 0 {
            return;
        }
        if let Some(enabled) = enabled {
            f.enabled = enabled;
        }
        if let Some(link) = link {
            f.link = link;
        }
        if let Some(file) = file {
            f.file = file;
        }
    }

    /// A statistics file name: one rntpd writes, or a warning for one it does not.
    fn stats_kind(
        &mut self,
        line: &mut Line<'_, '_>,
        directive: &str,
        token: &Token,
    ) -> Option<StatsKind> {
        let word = token.text.as_str();
        if let Some(kind) = StatsKind::from_name(word) {
            return Some(kind);
        }
        let kind = if UNSUPPORTED_STATS_FILES.contains(&word) {
            DiagnosticKind::UnsupportedOption { directive: directive.into(), option: word.into() }
        } else {
            DiagnosticKind::UnknownOption {
                directive: directive.into(),
                found: word.into(),
                expected: STATS_FILES,
                suggestion: suggest(word, &[STATS_FILES, UNSUPPORTED_STATS_FILES]),
            }
        };
        line.report_at(token, kind);
        None
    }

    /// `metrics ADDRESS [port N]` (rntpd extension).
    pub(super) fn metrics(&mut self, line: &mut Line<'_, '_>) {
        let Some(target) = line.next() else {
            line.missing("metrics", Expected::LoopbackAddress);
            return;
        };
        let addr = parse_ip(&target.text).filter(|ip| ip.to_canonical().is_loopback());
        if addr.is_none() {
            let kind = DiagnosticKind::BadValue {
                what: "metrics".into(),
                expected: Expected::LoopbackAddress,
                found: target.text.clone(),
            };
            line.report_at(target, kind);
        }
        let keywords: &[&[&str]] = &[METRICS_OPTIONS];
        let mut port = MetricsConfig::DEFAULT_PORT;
        while let Some(token) = line.next() {
            match token.text.as_str() {
                "port" => {
                    if let Some(v) = line.int("port", 1u16, u16::MAX, keywords) {
                        port = v;
                    }
                }
                w => {
                    line.report_at(
                        token,
                        DiagnosticKind::UnknownOption {
                            directive: "metrics".into(),
                            found: w.into(),
                            expected: METRICS_OPTIONS,
                            suggestion: suggest(w, &[METRICS_OPTIONS]),
                        },
                    );
                    line.skip_value_of_unknown(false, keywords);
                }
            }
        }
        let Some(ip) = addr else { return };
        if line.errors > 0 {
            return;
        }
        let here = (line.d.line.file.path.clone(), line.d.line.number);
        if let Some((previous_file, previous_line)) = self.metrics_at.replace(here) {
            line.report_at(
                &line.d.keyword,
                DiagnosticKind::RepeatedDirective {
                    directive: "metrics".into(),
                    previous_file,
                    previous_line,
                },
            );
        }
        let origin = line.d.line.origin();
        self.config.metrics = Some(MetricsConfig { addr: SocketAddr::new(ip, port), origin });
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{Config, StatsKind};

    fn parse(text: &str) -> Result<(Config, Vec<String>), String> {
        let no_includes = &mut |_: &Path| Err(std::io::ErrorKind::NotFound.into());
        crate::parse_str(Path::new("/etc/ntp.conf"), text, no_includes)
            .map(|l| (l.config, l.warnings.iter().map(ToString::to_string).collect()))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn ntpd_statistics_lines_enable_file_sets() {
        let (c, warnings) = parse(
            "statsdir /var/log/ntpsec/\n\
             statistics loopstats peerstats clockstats\n\
             filegen loopstats file loopstats type day enable\n\
             filegen peerstats file peers type day link enable\n\
             filegen sysstats type week enable\n\
             filegen sourcestats nolink enable\n",
        )
        .expect("parses");
        assert_eq!(c.stats.dir, Path::new("/var/log/ntpsec/"));
        let on: Vec<StatsKind> = c.stats.enabled().map(|f| f.kind).collect();
        assert_eq!(on, StatsKind::ALL);
        let peers = c.stats.file(StatsKind::Peerstats).expect("peerstats");
        assert_eq!((peers.file.as_str(), peers.link), ("peers", true));
        assert!(!c.stats.file(StatsKind::Sourcestats).expect("sourcestats").link);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(
            warnings[0].contains("`clockstats` of statistics is not supported"),
            "{warnings:?}"
        );
        assert!(warnings[1].contains("type week"), "{warnings:?}");
    }

    #[test]
    fn statistics_are_off_by_default_and_filegen_disable_wins_later() {
        let (c, _) = parse("server 192.0.2.1\n").expect("parses");
        assert_eq!(c.stats.enabled().count(), 0);
        assert_eq!(c.stats.dir, Path::new("/var/log/rntpd"));
        assert_eq!(c.metrics, None);
        let (c, _) = parse("statistics peerstats\nfilegen peerstats disable\n").expect("parses");
        assert_eq!(c.stats.enabled().count(), 0);
    }

    #[test]
    fn bad_statistics_lines_are_errors() {
        for (text, wants) in [
            ("statistics peerstat\n", "did you mean `peerstats`"),
            ("filegen loopstats type daily\n", "unknown option `daily` for filegen type"),
            ("filegen loopstats file ../x\n", "filegen file expects"),
            ("filegen loopstats enabel\n", "did you mean `enable`"),
            ("statsdir\n", "statsdir expects a file path"),
            ("statsdir /a /b\n", "exactly one path"),
        ] {
            let err = parse(text).expect_err(text);
            assert!(err.contains(wants), "{text}: {err}");
        }
    }

    #[test]
    fn metrics_listens_on_loopback_only() {
        let (c, _) = parse("metrics 127.0.0.1 port 9123\n").expect("parses");
        assert_eq!(c.metrics.expect("metrics").addr.to_string(), "127.0.0.1:9123");
        let (c, _) = parse("metrics ::1\n").expect("parses");
        assert_eq!(c.metrics.expect("metrics").addr.to_string(), "[::1]:9975");
        for (text, wants) in [
            ("metrics 192.0.2.1\n", "expects a loopback address"),
            ("metrics 0.0.0.0 port 9100\n", "expects a loopback address"),
            ("metrics localhost\n", "expects a loopback address"),
            ("metrics 127.0.0.1 port 0\n", "port expects an integer from 1 to 65535"),
            ("metrics 127.0.0.1 prot 80\n", "did you mean `port`"),
            ("metrics\n", "metrics expects a loopback address"),
        ] {
            let err = parse(text).expect_err(text);
            assert!(err.contains(wants), "{text}: {err}");
        }
    }
}
