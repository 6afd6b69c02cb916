//! Fuzzes the ntp.conf parser: arbitrary text must never panic, every diagnostic must point
//! inside the input, and the limits must hold: at most `MAX_DIAGNOSTICS` errors and warnings
//! listed plus one final "not shown" note, bounded report sizes, counts that add up.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use rntp_config::{Diagnostic, DiagnosticKind, MAX_DIAGNOSTICS, MAX_LINE_BYTES};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let lines: Vec<&str> = text.split('\n').collect();
    // `includefile fuzz.conf` is a loop; any other include reads the start of the input again,
    // which exercises the depth and include-count limits without file I/O (only the start, so
    // that one input does not cost 256 full parses).
    let head: String = text.chars().take(256).collect();
    let result =
        rntp_config::parse_str(Path::new("fuzz.conf"), &text, &mut |_: &Path| Ok(head.clone()));
    let (errors, warnings, counted_errors, counted_warnings) = match &result {
        Ok(loaded) => (&[][..], &loaded.warnings[..], 0, loaded.warning_count()),
        Err(e) => (&e.errors[..], &e.warnings[..], e.error_count(), e.warning_count()),
    };
    assert!(errors.len() <= MAX_DIAGNOSTICS, "{} errors listed", errors.len());
    assert!(warnings.len() <= MAX_DIAGNOSTICS + 1, "{} warnings listed", warnings.len());
    assert!(counted_errors >= errors.len());
    assert!(result.is_ok() || !errors.is_empty(), "a failed load lists an error");
    let notes = warnings.iter().filter(|d| matches!(d.kind, DiagnosticKind::MoreNotShown { .. }));
    match notes.count() {
        0 => assert!(counted_warnings == warnings.len() && counted_errors == errors.len()),
        1 => assert!(matches!(
            warnings.last().map(|d| &d.kind),
            Some(DiagnosticKind::MoreNotShown { .. })
        )),
        n => panic!("{n} 'not shown' notes"),
    }
    for d in errors.iter().chain(warnings) {
        check(d, &lines);
    }
    // The same text as a `sourcedir` *.sources file: only source lines are kept, anything
    // else is an error in place; never a panic, and a loaded file holds nothing but sources.
    let sources = rntp_config::parse_sources_str(Path::new("fuzz.conf"), &text);
    match &sources {
        Ok(loaded) => {
            let only_sources = rntp_config::Config {
                sources: loaded.config.sources.clone(),
                ..rntp_config::Config::default()
            };
            assert_eq!(loaded.config, only_sources, "a *.sources file set more than sources");
        }
        Err(e) => assert!(!e.errors.is_empty()),
    }
    let diags: Vec<&Diagnostic> = match &sources {
        Ok(loaded) => loaded.warnings.iter().collect(),
        Err(e) => e.errors.iter().chain(&e.warnings).collect(),
    };
    for d in diags {
        check(d, &lines);
    }
});

fn check(d: &Diagnostic, lines: &[&str]) {
    if d.file == Path::new("fuzz.conf") && d.line > 0 {
        assert!(
            d.line as usize <= lines.len(),
            "diagnostic line {} beyond {} lines",
            d.line,
            lines.len()
        );
        // The span is the line itself, read from the shared text.
        let line = lines[d.line as usize - 1];
        let line = line.strip_suffix('\r').unwrap_or(line);
        assert_eq!(d.source_line(), Some(line));
    }
    // A report never prints a whole long line: a window of it, plus words quoted in the
    // message (each at most a line, escaped).
    let shown = d.to_string();
    assert!(shown.len() <= 32 * MAX_LINE_BYTES, "{} bytes for one diagnostic", shown.len());
}
