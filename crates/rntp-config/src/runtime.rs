//! Configuration lines given at run time: `rntpctl add` and `ntpq -c ":config LINE"`.
//!
//! One line, read with the same parser as a file ([`parse_source_line`]), but without the checks
//! that need the whole file: a `key N` is checked against the keys the daemon runs with when
//! the source is added, not against `keys`/`trustedkey` lines. [`RemoteParser`] is the
//! [`ConfigParser`] the daemon gives its node for `:config`: `server`, `pool` and
//! `manycastclient` lines, and `unpeer NAME|ADDRESS|ID`.
//!
//! Pure: nothing here reads a file or resolves a name.

use std::net::IpAddr;
use std::path::Path;

use rntp_proto::node::{ConfigParser, ConfiguredSource, RemoteCommand, RemoteConfigError};

use crate::config::SourceConfig;
use crate::host::HostName;
use crate::resolve::Resolver;
use crate::{ConfigErrors, Diagnostic, Severity};

/// Directives a run-time line may use.
const RUNTIME_DIRECTIVES: &[&str] = &["server", "pool", "manycastclient", "peer"];

/// Parses one `server`, `pool` or `manycastclient` line given at run time; `origin` names where
/// it came from in messages (`rntpctl add`). `Err` has the first error (with its column).
pub fn parse_source_line(origin: &str, line: &str) -> Result<SourceConfig, Box<Diagnostic>> {
    let file = Path::new(origin);
    let first = line.split_whitespace().next().unwrap_or_default();
    if !RUNTIME_DIRECTIVES.contains(&first) {
        return Err(Box::new(Diagnostic::whole_file(
            file.to_path_buf(),
            crate::DiagnosticKind::BadValue {
                what: "a run-time configuration line".into(),
                expected: crate::Expected::OneOf(&["server", "pool", "manycastclient", "unpeer"]),
                found: first.into(),
            },
        )));
    }
    let no_includes = &mut |_: &Path| Err(std::io::Error::other("no includefile at run time"));
    let loaded = crate::parse_with(file, line, no_includes, Resolver::runtime(), false)
        .map_err(|e| first_error(file, e))?;
    let mut sources = loaded.config.sources;
    match (sources.pop(), sources.is_empty()) {
        (Some(source), true) => Ok(source),
        _ => Err(Box::new(Diagnostic::whole_file(
            file.to_path_buf(),
            crate::DiagnosticKind::UnexpectedArgument {
                directive: first.into(),
                takes: "one source",
                found: line.into(),
            },
        ))),
    }
}

fn first_error(file: &Path, errors: ConfigErrors) -> Box<Diagnostic> {
    let first = errors.errors.into_iter().find(|d| d.severity == Severity::Error);
    Box::new(first.unwrap_or_else(|| {
        Diagnostic::whole_file(
            file.to_path_buf(),
            crate::DiagnosticKind::ReadFailed { reason: "the line did not parse".into() },
        )
    }))
}

/// The `:config` parser (see the module docs).
#[derive(Debug, Clone, Copy, Default)]
pub struct RemoteParser;

impl ConfigParser for RemoteParser {
    fn parse_line(&self, line: &str, origin: &str) -> Result<RemoteCommand, RemoteConfigError> {
        let mut words = line.split_whitespace();
        if words.next() == Some("unpeer") {
            return parse_unpeer(line, words.collect());
        }
        match parse_source_line(origin, line) {
            Ok(source) => Ok(RemoteCommand::Add(ConfiguredSource {
                spec: crate::node::source_spec(&source),
                origin: origin.to_string(),
            })),
            Err(d) => Err(RemoteConfigError {
                column: (d.col > 0).then_some(d.col as usize),
                message: d.kind.to_string(),
            }),
        }
    }
}

/// `unpeer NAME|ADDRESS|ID`.
fn parse_unpeer(line: &str, args: Vec<&str>) -> Result<RemoteCommand, RemoteConfigError> {
    let column_of = |word: &str| line.find(word).map(|i| line[..i].chars().count() + 1);
    let [target] = args.as_slice() else {
        let column = args.get(1).and_then(|w| column_of(w)).or(Some(line.chars().count() + 1));
        return Err(RemoteConfigError {
            column,
            message: "unpeer takes exactly one name, address or association ID".into(),
        });
    };
    if let Ok(id) = target.parse::<u16>() {
        if id != 0 {
            return Ok(RemoteCommand::RemoveAssociation(id));
        }
    }
    let bare = target.strip_prefix('[').and_then(|t| t.strip_suffix(']')).unwrap_or(target);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(RemoteCommand::Remove(ip.to_string()));
    }
    match HostName::new(target) {
        Ok(name) => Ok(RemoteCommand::Remove(name.to_string())),
        Err(e) => Err(RemoteConfigError {
            column: column_of(target),
            message: format!("unpeer expects a name, an address or an association ID: {e}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_lines() {
        let s = parse_source_line("rntpctl add", "pool pool.test iburst key 3").expect("parses");
        assert_eq!(s.options.key, Some(3));
        // No `keys`/`trustedkey` needed at run time: the daemon checks the running keys.
        let d = parse_source_line("x", "server a.test minpoll abc").expect_err("bad");
        assert_eq!(d.col, 23);
        assert!(parse_source_line("x", "driftfile /tmp/x").is_err());
        assert!(parse_source_line("x", "server a.test\nserver b.test").is_err());
        assert!(parse_source_line("x", "includefile /etc/passwd").is_err());
    }

    #[test]
    fn remote_lines() {
        let p = RemoteParser;
        match p.parse_line("pool pool.test iburst", "o") {
            Ok(RemoteCommand::Add(s)) => assert_eq!(s.origin, "o"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            p.parse_line("unpeer pool.test", "o"),
            Ok(RemoteCommand::Remove("pool.test".into()))
        );
        assert_eq!(p.parse_line("unpeer [::1]", "o"), Ok(RemoteCommand::Remove("::1".into())));
        assert_eq!(p.parse_line("unpeer 16385", "o"), Ok(RemoteCommand::RemoveAssociation(16385)));
        let e = p.parse_line("unpeer a b", "o").expect_err("two");
        assert_eq!(e.column, Some(10));
        let e = p.parse_line("server a.test ibrust", "o").expect_err("typo");
        assert_eq!(e.column, Some(15));
        assert!(e.message.contains("did you mean `iburst`"), "{}", e.message);
    }
}
