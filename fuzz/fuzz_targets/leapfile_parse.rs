//! Fuzzes the leap second file parser: arbitrary text must never panic, and a table that parsed
//! is ordered and moves TAI - UTC one second at a time.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rntp_config::leapfile::parse_leapfile;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(table) = parse_leapfile(text) else { return };
    for w in table.leaps().windows(2) {
        assert!(w[0].at < w[1].at);
        assert_eq!((w[1].tai_utc - w[0].tai_utc).abs(), 1);
    }
    let _ = table.next_after(0);
});
