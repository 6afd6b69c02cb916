//! Phase 1: text to directives, a syntactic mirror of the file.
//!
//! Lines become directives (a keyword and its argument words, each with a
//! column), and `includefile` lines are replaced by the directives of the
//! file they name, read through the caller's `include` callback. Each
//! directive is handed to phase 2 as soon as it is read, so only one line's
//! words exist at a time. Nothing here interprets a directive other than
//! `includefile`; values are checked in phase 2 (`resolve`). This module
//! enforces the size and count limits of the crate (line length, words per
//! line, directives, includes, total size, include depth) and never touches
//! the file system itself.

use std::io;
use std::ops::Range;
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use crate::config::Origin;
use crate::error::{Diagnostic, DiagnosticKind, Diags, Expected, Pending};
use crate::lex::{lex_line, Token};
use crate::{
    MAX_CONFIG_BYTES, MAX_DIRECTIVES, MAX_INCLUDES, MAX_INCLUDE_DEPTH, MAX_LINE_BYTES,
    MAX_WORDS_PER_LINE,
};

/// One file being read: its path (for messages and origins) and its text,
/// shared with the diagnostics that point into it.
#[derive(Debug)]
pub(crate) struct FileText {
    pub(crate) path: PathBuf,
    pub(crate) text: Arc<str>,
}

/// One line of one file. Cheap to clone: the file is shared and the line is
/// a byte range into its text.
#[derive(Debug, Clone)]
pub(crate) struct SourceLine {
    pub(crate) file: Rc<FileText>,
    pub(crate) number: u32,
    /// Byte range of the line in `file.text`, without the line ending.
    range: Range<usize>,
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

    /// A diagnostic pointing from `first` to the end of `last` (an option and
    /// its value).
    pub(crate) fn spanning(&self, first: &Token, last: &Token, kind: DiagnosticKind) -> Pending {
        let width = last.end_col().saturating_sub(first.col).max(1);
        self.pending(first.col, width, kind)
    }

    fn pending(&self, col: u32, width: u32, kind: DiagnosticKind) -> Pending {
        let file = self.file.path.clone();
        let text = &self.file.text;
        let diag = Diagnostic::at(file, self.number, col, width, text, self.range.clone(), kind);
        Pending { seq: self.seq, diag }
    }

    /// Where this line is, for the typed configuration.
    pub(crate) fn origin(&self) -> Origin {
        Origin { file: self.file.path.clone(), line: self.number }
    }
}

/// A directive line: keyword plus argument words.
#[derive(Debug)]
pub(crate) struct RawDirective {
    pub(crate) line: SourceLine,
    pub(crate) keyword: Token,
    pub(crate) args: Vec<Token>,
}

/// Reads `text` (the contents of `file`), splicing includes, and hands every
/// directive to `sink` in reading order.
pub(crate) fn read(
    file: &Path,
    text: Arc<str>,
    include: &mut dyn FnMut(&Path) -> io::Result<String>,
    diags: &mut Diags,
    sink: &mut dyn FnMut(&RawDirective, &mut Diags),
) {
    let mut reader = Reader {
        include,
        sink,
        stack: vec![normalize(file)],
        seq: 0,
        bytes: text.len() as u64,
        includes: 0,
        directives: 0,
        stopped: false,
    };
    reader.read_file(FileText { path: file.to_path_buf(), text }, diags);
}

/// The state of one read across all files, for the limits.
struct Reader<'a> {
    include: &'a mut dyn FnMut(&Path) -> io::Result<String>,
    sink: &'a mut dyn FnMut(&RawDirective, &mut Diags),
    /// Normalised paths of the files being read, outermost first.
    stack: Vec<PathBuf>,
    seq: u64,
    /// Bytes of all files read so far (an include counted each time).
    bytes: u64,
    /// `includefile`s read so far.
    includes: usize,
    /// Directive lines read so far.
    directives: usize,
    /// Set once [`MAX_DIRECTIVES`] is exceeded: nothing more is read.
    stopped: bool,
}

impl Reader<'_> {
    fn read_file(&mut self, file: FileText, diags: &mut Diags) {
        let file = Rc::new(file);
        let text = Arc::clone(&file.text);
        let mut start = 0;
        for (index, raw_line) in text.split('\n').enumerate() {
            if self.stopped {
                return;
            }
            // A CRLF file is still a valid file; the \r is not part of the line.
            let line_text = raw_line.strip_suffix('\r').unwrap_or(raw_line);
            let range = start..start + line_text.len();
            start += raw_line.len() + 1;
            self.seq += 1;
            let line = SourceLine {
                file: Rc::clone(&file),
                number: u32::try_from(index + 1).unwrap_or(u32::MAX),
                range,
                seq: self.seq,
            };
            self.read_line(line, line_text, diags);
        }
    }

    fn read_line(&mut self, line: SourceLine, line_text: &str, diags: &mut Diags) {
        if line_text.len() > MAX_LINE_BYTES {
            // Point at the first character past the limit.
            let col = line_text.char_indices().take_while(|&(i, _)| i < MAX_LINE_BYTES).count();
            let at = Token { text: String::new(), col: col_u32(col + 1), width: 1 };
            let kind =
                DiagnosticKind::LineTooLong { length: line_text.len(), limit: MAX_LINE_BYTES };
            diags.push(line.at(&at, kind));
            return;
        }
        let mut tokens = match lex_line(line_text) {
            Ok(tokens) => tokens,
            Err(e) => {
                let quote = Token { text: String::new(), col: e.col, width: 1 };
                diags.push(line.at(&quote, DiagnosticKind::UnterminatedQuote));
                return;
            }
        };
        if let Some(extra) = tokens.get(MAX_WORDS_PER_LINE) {
            let kind = DiagnosticKind::TooManyWords { limit: MAX_WORDS_PER_LINE };
            diags.push(line.at(extra, kind));
            return;
        }
        if tokens.is_empty() {
            return;
        }
        let keyword = tokens.remove(0);
        self.directives += 1;
        if self.directives > MAX_DIRECTIVES {
            diags.push(
                line.at(&keyword, DiagnosticKind::TooManyDirectives { limit: MAX_DIRECTIVES }),
            );
            self.stopped = true;
            return;
        }
        let directive = RawDirective { line, keyword, args: tokens };
        if directive.keyword.text == "includefile" {
            self.include_file(&directive, diags);
        } else {
            (self.sink)(&directive, diags);
        }
    }

    fn include_file(&mut self, directive: &RawDirective, diags: &mut Diags) {
        let line = &directive.line;
        let Some(arg) = directive.args.first() else {
            diags.push(line.after(
                &directive.keyword,
                DiagnosticKind::MissingValue {
                    what: "includefile".into(),
                    expected: Expected::Path,
                },
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
        let path = match line.file.path.parent() {
            Some(dir) if Path::new(&arg.text).is_relative() => dir.join(&arg.text),
            _ => PathBuf::from(&arg.text),
        };
        let key = normalize(&path);
        if self.stack.contains(&key) {
            diags.push(line.at(arg, DiagnosticKind::IncludeLoop { path }));
            return;
        }
        // The stack holds the top-level file too, so its length minus one is
        // the current nesting depth.
        if self.stack.len() > MAX_INCLUDE_DEPTH {
            let kind = DiagnosticKind::IncludeTooDeep { path, limit: MAX_INCLUDE_DEPTH };
            diags.push(line.at(arg, kind));
            return;
        }
        // Counted before reading, so that a fan-out of empty files (which
        // add no bytes) is still bounded.
        if self.includes >= MAX_INCLUDES {
            diags.push(line.at(arg, DiagnosticKind::TooManyIncludes { path, limit: MAX_INCLUDES }));
            return;
        }
        self.includes += 1;
        let text = match (self.include)(&path) {
            Ok(text) => text,
            Err(e) => {
                let mut reason = e.to_string();
                if e.kind() == io::ErrorKind::IsADirectory {
                    reason
                        .push_str(" (including a directory of *.conf files is not supported yet)");
                }
                diags.push(line.at(arg, DiagnosticKind::IncludeFailed { path, reason }));
                return;
            }
        };
        let total = self.bytes.saturating_add(text.len() as u64);
        if total > MAX_CONFIG_BYTES {
            let kind = DiagnosticKind::ConfigTooLarge { path, total, limit: MAX_CONFIG_BYTES };
            diags.push(line.at(arg, kind));
            return;
        }
        self.bytes = total;
        self.stack.push(key);
        self.read_file(FileText { path, text: Arc::from(text) }, diags);
        self.stack.pop();
    }
}

/// A character count as a column, saturating (lines are far shorter).
fn col_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
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
