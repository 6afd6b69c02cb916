//! Phase 1: text to [`RawConfig`], a syntactic mirror of the file.
//!
//! Lines become directives (a keyword and its argument words, each with a
//! column), and `includefile` lines are replaced by the directives of the
//! file they name, read through the caller's `include` callback. Nothing here
//! interprets a directive other than `includefile`; values are checked in
//! phase 2 (`resolve`). This module never touches the file system itself.

use std::io;
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use crate::error::{Diagnostic, DiagnosticKind, Diags, Expected, Pending};
use crate::lex::{lex_line, Token};

/// How deeply `includefile` may nest below the top-level file.
pub(crate) const MAX_INCLUDE_DEPTH: usize = 10;

/// One line of one file, shared by the directive and its diagnostics.
#[derive(Debug)]
pub(crate) struct SourceLine {
    pub(crate) file: Rc<Path>,
    pub(crate) number: u32,
    pub(crate) text: String,
    /// Position of this line in reading order across all files.
    pub(crate) seq: u64,
}

impl SourceLine {
    /// A diagnostic pointing at `token`.
    pub(crate) fn at(&self, token: &Token, kind: DiagnosticKind) -> Pending {
        self.pending(token.col, token.width, kind)
    }

    /// A diagnostic pointing just after `last`, where a missing word belongs.
    pub(crate) fn after(&self, last: &Token, kind: DiagnosticKind) -> Pending {
        self.pending(last.end_col(), 1, kind)
    }

    fn pending(&self, col: u32, width: u32, kind: DiagnosticKind) -> Pending {
        let file = self.file.to_path_buf();
        let diag = Diagnostic::at(file, self.number, col, width, &self.text, kind);
        Pending { seq: self.seq, diag }
    }
}

/// A directive line: keyword plus argument words.
#[derive(Debug)]
pub(crate) struct RawDirective {
    pub(crate) line: Rc<SourceLine>,
    pub(crate) keyword: Token,
    pub(crate) args: Vec<Token>,
}

/// All directives of a file and its includes, in reading order.
#[derive(Debug, Default)]
pub(crate) struct RawConfig {
    pub(crate) directives: Vec<RawDirective>,
}

/// Reads `text` (the contents of `file`) into `raw`, splicing includes.
pub(crate) fn read(
    file: &Path,
    text: &str,
    include: &mut dyn FnMut(&Path) -> io::Result<String>,
    diags: &mut Diags,
) -> RawConfig {
    let mut raw = RawConfig::default();
    let mut stack = vec![normalize(file)];
    let mut seq = 0;
    read_into(&mut raw, file, text, &mut stack, &mut seq, include, diags);
    raw
}

fn read_into(
    raw: &mut RawConfig,
    file: &Path,
    text: &str,
    stack: &mut Vec<PathBuf>,
    seq: &mut u64,
    include: &mut dyn FnMut(&Path) -> io::Result<String>,
    diags: &mut Diags,
) {
    let file: Rc<Path> = Rc::from(file);
    for (index, line_text) in text.split('\n').enumerate() {
        // A CRLF file is still a valid file; the \r is not part of the line.
        let line_text = line_text.strip_suffix('\r').unwrap_or(line_text);
        let number = u32::try_from(index + 1).unwrap_or(u32::MAX);
        *seq += 1;
        let line = Rc::new(SourceLine {
            file: Rc::clone(&file),
            number,
            text: line_text.into(),
            seq: *seq,
        });
        let mut tokens = match lex_line(line_text) {
            Ok(tokens) => tokens,
            Err(e) => {
                let quote = Token { text: String::new(), col: e.col, width: 1 };
                diags.push(line.at(&quote, DiagnosticKind::UnterminatedQuote));
                continue;
            }
        };
        if tokens.is_empty() {
            continue;
        }
        let keyword = tokens.remove(0);
        let directive = RawDirective { line, keyword, args: tokens };
        if directive.keyword.text == "includefile" {
            include_file(raw, &directive, stack, seq, include, diags);
        } else {
            raw.directives.push(directive);
        }
    }
}

fn include_file(
    raw: &mut RawConfig,
    directive: &RawDirective,
    stack: &mut Vec<PathBuf>,
    seq: &mut u64,
    include: &mut dyn FnMut(&Path) -> io::Result<String>,
    diags: &mut Diags,
) {
    let line = &directive.line;
    let Some(arg) = directive.args.first() else {
        diags.push(line.after(
            &directive.keyword,
            DiagnosticKind::MissingValue { what: "includefile".into(), expected: Expected::Path },
        ));
        return;
    };
    if let Some(extra) = directive.args.get(1) {
        diags.push(line.at(
            extra,
            DiagnosticKind::UnexpectedArgument {
                directive: "includefile".into(),
                takes: "exactly one path",
                found: extra.text.clone(),
            },
        ));
        return;
    }
    if arg.text.is_empty() {
        diags.push(line.at(
            arg,
            DiagnosticKind::BadValue {
                what: "includefile".into(),
                expected: Expected::Path,
                found: String::new(),
            },
        ));
        return;
    }
    // Relative paths are relative to the including file, as in ntpd, so a
    // config tree can be moved as a whole.
    let path = match line.file.parent() {
        Some(dir) if Path::new(&arg.text).is_relative() => dir.join(&arg.text),
        _ => PathBuf::from(&arg.text),
    };
    let key = normalize(&path);
    if stack.contains(&key) {
        diags.push(line.at(arg, DiagnosticKind::IncludeLoop { path }));
        return;
    }
    // The stack holds the top-level file too, so its length minus one is the
    // current nesting depth.
    if stack.len() > MAX_INCLUDE_DEPTH {
        diags.push(line.at(arg, DiagnosticKind::IncludeTooDeep { path, limit: MAX_INCLUDE_DEPTH }));
        return;
    }
    let text = match include(&path) {
        Ok(text) => text,
        Err(e) => {
            let mut reason = e.to_string();
            if e.kind() == io::ErrorKind::IsADirectory {
                reason.push_str(" (including a directory of *.conf files is not supported yet)");
            }
            diags.push(line.at(arg, DiagnosticKind::IncludeFailed { path, reason }));
            return;
        }
    };
    stack.push(key);
    read_into(raw, &path, &text, stack, seq, include, diags);
    stack.pop();
}

/// Lexically normalises a path (`.` dropped, `..` folded) so that
/// `a/../b.conf` and `b.conf` are recognised as the same file in loop
/// detection without touching the file system. Loops through symlinks are
/// still stopped by the depth limit.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if matches!(out.components().next_back(), Some(Component::Normal(_))) {
                    out.pop();
                } else {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_folds_dots() {
        assert_eq!(
            normalize(Path::new("/etc/ntp/./a/../b.conf")),
            PathBuf::from("/etc/ntp/b.conf")
        );
        assert_eq!(normalize(Path::new("../x")), PathBuf::from("../x"));
        assert_eq!(normalize(Path::new("a/b/../../../x")), PathBuf::from("../x"));
    }
}
