//! The sans-IO NTPv4 core of rntpd.
//!
//! This crate holds the protocol logic: the wire format ([`wire`]), time types ([`time`]),
//! client associations with their poll process, on-wire tests and clock filter ([`assoc`]), the
//! source manager for names and pools ([`source`]), selection ([`select`]), the discipline and
//! steering ([`discipline`], [`steer`]), the server responder ([`server`]), and the [`node`]
//! that owns all of them: the whole daemon's logic as one state machine.
//!
//! It deliberately does **not** touch sockets, read clocks or use a global random number
//! generator. Every input carries the current monotonic [`time::Instant`] (and, for packets, the
//! wall-clock receive timestamp the driver sampled); randomness comes from an injected
//! [`rng::RngSource`]. Outputs are drained with `poll_*` methods. The daemon (`rntpd`) and the
//! simulator drive the same code, so behaviour tested here in virtual time is what runs.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod assoc;
pub mod auth;
pub mod discipline;
pub mod mode6;
pub mod node;
pub mod rng;
pub mod select;
pub mod server;
pub mod source;
pub mod steer;
pub mod time;
pub mod wire;
