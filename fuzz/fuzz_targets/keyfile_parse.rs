//! Fuzzes the key file parser: arbitrary bytes must never panic; every diagnostic points inside
//! the input; and a key that parsed never shows its secret in a diagnostic of another line.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use rntp_config::keys::parse_keys;

fuzz_target!(|data: &[u8]| {
    let lines = data.split(|b| *b == b'\n').count();
    let (diagnostics, keys) = match parse_keys(Path::new("fuzz.keys"), data) {
        Ok(loaded) => (loaded.warnings, loaded.keys),
        Err(failed) => (failed.errors.into_iter().chain(failed.warnings).collect(), Vec::new()),
    };
    for d in &diagnostics {
        assert!((d.line as usize) <= lines, "diagnostic past the end: {d:?}");
        let _ = d.to_string();
    }
    let mut ids = keys.iter().map(|k| k.id()).collect::<Vec<_>>();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), keys.len(), "duplicate key ids survived parsing");
    for key in &keys {
        assert!(key.id().0 != 0 && key.secret_len() > 0);
        let _ = key.mac(data);
    }
});
