//! Fuzzes the ntp.conf parser: arbitrary text must never panic, and every diagnostic must point
//! inside the input (line numbers within the text).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let lines = text.lines().count().max(1) as u32;
    let result = rntp_config::parse_str(Path::new("fuzz.conf"), &text, &mut |_: &Path| {
        // Includes resolve to themselves: exercises loop detection without any file I/O.
        Ok(String::from("includefile fuzz.conf\n"))
    });
    let diagnostics = match &result {
        Ok(loaded) => loaded.warnings.iter().collect::<Vec<_>>(),
        Err(e) => e.errors.iter().chain(e.warnings.iter()).collect(),
    };
    for d in diagnostics {
        if d.file == Path::new("fuzz.conf") {
            assert!(d.line <= lines + 1, "diagnostic line {} beyond {lines} lines", d.line);
        }
        let _ = d.to_string();
    }
});
