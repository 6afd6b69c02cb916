//! Test peers shared by rntpd's integration tests (`crates/rntpd/tests`) and its benchmarks
//! (`rntp-bench`): one fault-injecting DNS server ([`fakedns`]) and one raw NTP client
//! ([`ntp`]), so both check rntpd against the same independent implementation.
//!
//! Deliberately independent of `rntp-proto`, the code under test: a test that built its
//! packets or parsed rntpd's replies with rntpd's own parser could not catch that parser's
//! mistakes. std only, threads and blocking sockets; nothing here runs inside rntpd.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod fakedns;
pub mod ntp;
