//! `sourcedir DIR` (rntpd extension, as chrony's): directories of `*.sources` files with
//! `server`, `pool` and `peer` lines, which DHCP and NetworkManager hooks write and rntpd reads
//! at start and on every reload.
//!
//! The rules, all checked here:
//! * only files named `*.sources` are read, in byte order of their names; hidden files (a
//!   leading `.`, as an editor's or a hook's temporary file) are skipped;
//! * a directory that does not exist counts as empty (a hook creates it when it first has
//!   something to say); one that cannot be listed is an error;
//! * a file may hold only `server`, `pool` and `peer` lines (and comments); anything else,
//!   `includefile` included, is an error at its `FILE:LINE:COL`;
//! * at most [`MAX_SOURCE_FILES`] files, of at most
//!   [`MAX_CONFIG_BYTES`] bytes all together, regular files only (as every configuration file).
//!
//! Listing and reading go through callbacks, so the rules are tested without a file system.

use std::io;
use std::path::{Path, PathBuf};

use crate::error::{ConfigErrors, Diagnostic, DiagnosticKind};
use crate::{Loaded, MAX_CONFIG_BYTES, MAX_SOURCE_FILES};

/// The suffix of the files read from a source directory.
pub const SOURCES_SUFFIX: &str = ".sources";

/// Lists a directory: `Ok(None)` when it does not exist.
pub(crate) type ListDir<'a> = dyn FnMut(&Path) -> io::Result<Option<Vec<PathBuf>>> + 'a;
/// Reads one file.
pub(crate) type ReadFile<'a> = dyn FnMut(&Path) -> io::Result<String> + 'a;

/// Appends the sources of every `sourcedir` of `loaded` to its configuration. Errors in any
/// file fail the whole load (with the main file's warnings kept), as an error in an
/// `includefile` does.
pub(crate) fn read_all(
    mut loaded: Loaded,
    list: &mut ListDir<'_>,
    read: &mut ReadFile<'_>,
) -> Result<Loaded, ConfigErrors> {
    let mut errors = Vec::new();
    let mut files = 0usize;
    let mut bytes = 0u64;
    let dirs = loaded.config.sourcedirs.clone();
    'dirs: for dir in &dirs {
        let names = match list(&dir.path) {
            Ok(Some(names)) => names,
            Ok(None) => continue,
            Err(e) => {
                errors.push(Diagnostic::whole_file(
                    dir.path.clone(),
                    DiagnosticKind::SourceDirFailed { reason: e.to_string() },
                ));
                continue;
            }
        };
        for file in sources_files(names) {
            files += 1;
            if files > MAX_SOURCE_FILES {
                errors.push(Diagnostic::whole_file(
                    dir.path.clone(),
                    DiagnosticKind::TooManySourceFiles { limit: MAX_SOURCE_FILES },
                ));
                break 'dirs;
            }
            let text = match read(&file) {
                Ok(text) => text,
                Err(e) => {
                    errors.push(Diagnostic::whole_file(
                        file,
                        DiagnosticKind::ReadFailed { reason: e.to_string() },
                    ));
                    continue;
                }
            };
            bytes = bytes.saturating_add(text.len() as u64);
            if bytes > MAX_CONFIG_BYTES {
                errors.push(Diagnostic::whole_file(
                    file.clone(),
                    DiagnosticKind::ConfigTooLarge {
                        path: file,
                        total: bytes,
                        limit: MAX_CONFIG_BYTES,
                    },
                ));
                break 'dirs;
            }
            match crate::parse_sources_str(&file, &text) {
                Ok(l) => {
                    loaded.config.sources.extend(l.config.sources);
                    loaded.warnings.extend(l.warnings);
                }
                Err(e) => {
                    errors.extend(e.errors);
                    loaded.warnings.extend(e.warnings);
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(loaded)
    } else {
        Err(ConfigErrors { errors, warnings: loaded.warnings })
    }
}

/// The `*.sources` files among `paths`, hidden ones left out, sorted by name.
fn sources_files(paths: Vec<PathBuf>) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = paths
        .into_iter()
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                !n.starts_with('.') && n.len() > SOURCES_SUFFIX.len() && n.ends_with(SOURCES_SUFFIX)
            })
        })
        .collect();
    files.sort();
    files
}

/// Lists a directory from the file system. Stops collecting after
/// [`MAX_SOURCE_FILES`]` + 1` matching names, so a huge directory costs no memory.
pub(crate) fn list_dir(dir: &Path) -> io::Result<Option<Vec<PathBuf>>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in entries {
        let path = entry?.path();
        if path.to_str().is_some_and(|p| p.ends_with(SOURCES_SUFFIX)) {
            out.push(path);
            if out.len() > MAX_SOURCE_FILES {
                break;
            }
        }
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::{Host, Severity};

    fn load(main: &str, files: &[(&str, &str)]) -> Result<Loaded, ConfigErrors> {
        let fs: BTreeMap<PathBuf, String> =
            files.iter().map(|(p, t)| (PathBuf::from(p), t.to_string())).collect();
        let loaded = crate::parse_str(Path::new("/etc/rntpd/ntp.conf"), main, &mut |_: &Path| {
            Err(io::ErrorKind::NotFound.into())
        })?;
        let mut list = |dir: &Path| -> io::Result<Option<Vec<PathBuf>>> {
            if dir == Path::new("/forbidden") {
                return Err(io::ErrorKind::PermissionDenied.into());
            }
            let inside: Vec<PathBuf> =
                fs.keys().filter(|p| p.parent() == Some(dir)).cloned().collect();
            Ok((!inside.is_empty()).then_some(inside))
        };
        let mut read = |p: &Path| -> io::Result<String> {
            fs.get(p).cloned().ok_or_else(|| io::ErrorKind::NotFound.into())
        };
        read_all(loaded, &mut list, &mut read)
    }

    fn hosts(l: &Loaded) -> Vec<String> {
        l.config.sources.iter().map(|s| s.host.to_string()).collect()
    }

    #[test]
    fn sources_files_are_read_in_name_order_after_the_main_file() {
        let l = load(
            "server a.example\nsourcedir /run/rntpd/sources.d\n",
            &[
                ("/run/rntpd/sources.d/20-nm.sources", "server c.example iburst\n"),
                ("/run/rntpd/sources.d/10-dhcp.sources", "# DHCP\npool b.example\n"),
                ("/run/rntpd/sources.d/.10-dhcp.sources.tmp", "server hidden.example\n"),
                ("/run/rntpd/sources.d/README", "not a sources file\n"),
                ("/run/rntpd/sources.d/.sources", "server dot.example\n"),
            ],
        )
        .unwrap();
        assert_eq!(hosts(&l), ["a.example", "b.example", "c.example"]);
        let origin = &l.config.sources[1].origin;
        assert_eq!(origin.file, Path::new("/run/rntpd/sources.d/10-dhcp.sources"));
        assert_eq!(origin.line, 2);
    }

    #[test]
    fn missing_directory_is_empty_and_relative_paths_follow_the_file() {
        let l = load("sourcedir sources.d\nsourcedir /nonexistent\n", &[]).unwrap();
        assert!(l.config.sources.is_empty());
        assert_eq!(l.config.sourcedirs[0].path, Path::new("/etc/rntpd/sources.d"));
        let l = load("sourcedir s\n", &[("/etc/rntpd/s/x.sources", "server 192.0.2.1\n")]).unwrap();
        assert_eq!(l.config.sources[0].host, Host::Ip("192.0.2.1".parse().unwrap()));
    }

    #[test]
    fn other_directives_in_a_sources_file_are_errors_at_file_line_col() {
        let err = load(
            "sourcedir /d\n",
            &[("/d/a.sources", "server ok.example\n  driftfile /tmp/x\nincludefile /etc/passwd\n")],
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(
                "/d/a.sources:2:3: error: `driftfile` is not allowed in a *.sources file"
            ),
            "{text}"
        );
        assert!(text.contains("/d/a.sources:3:13: error: cannot read includefile"), "{text}");
        assert_eq!(err.error_count(), 2);
    }

    #[test]
    fn bad_source_line_fails_the_load_with_its_position() {
        let err = load("sourcedir /d\n", &[("/d/a.sources", "server x.example minpoll abc\n")])
            .unwrap_err();
        assert_eq!(err.errors[0].file, Path::new("/d/a.sources"));
        assert_eq!((err.errors[0].line, err.errors[0].col), (1, 26));
        assert_eq!(err.errors[0].severity, Severity::Error);
    }

    #[test]
    fn unlistable_directory_is_an_error() {
        let err = load("sourcedir /forbidden\n", &[]).unwrap_err();
        assert!(err.to_string().starts_with("/forbidden: error: cannot read source directory"));
    }

    #[test]
    fn file_count_is_bounded() {
        let names: Vec<String> =
            (0..=MAX_SOURCE_FILES).map(|i| format!("/d/{i:04}.sources")).collect();
        let files: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "")).collect();
        let err = load("sourcedir /d\n", &files).unwrap_err();
        assert!(matches!(err.errors[0].kind, DiagnosticKind::TooManySourceFiles { .. }));
    }
}
