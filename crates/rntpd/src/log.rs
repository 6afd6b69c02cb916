//! The node's events as log lines, written for an administrator: what happened, to which
//! source, and what rntpd does about it.
//!
//! Warnings that can repeat without bound (a pool whose answer holds only addresses in use, a
//! server that keeps sending an unknown kiss code, offsets beyond the panic threshold) are
//! written once per [`REPEAT_WINDOW`] for the same subject; the next line after the window
//! says how many were held back ("… 57 more since the last report").

use std::collections::HashMap;

use rntp_proto::assoc::{AssocEvent, DemobilizeReason};
use rntp_proto::node::NodeEvent;
use rntp_proto::source::{AddError, MoveReason, SourceEvent, Target};
use rntp_proto::time::Instant;
use rntp_proto::wire::KissCode;

/// How often one repeating warning is written (s).
pub const REPEAT_WINDOW: f64 = 600.0;
/// Subjects remembered at most (the oldest are forgotten first).
const MAX_SUBJECTS: usize = 1024;

/// Rate limits for repeating warnings.
#[derive(Debug, Default)]
pub struct Log {
    /// Per subject: when its window ends, and how many lines were held back in it.
    held: HashMap<String, (Instant, u64)>,
}

impl Log {
    /// Logs one node event.
    pub fn event(&mut self, now: Instant, event: &NodeEvent) {
        match event {
            NodeEvent::Source { name, event: SourceEvent::NoFreeAddress { .. } } => {
                if let Some(more) = self.admit(now, format!("nofree {name}")) {
                    tracing::warn!(
                        "{name}: every address in the answer is already polled or blocked; will ask again later{}",
                        more
                    );
                }
            }
            NodeEvent::Assoc { source_name, remote, event: AssocEvent::Kod(code), .. }
                if !matches!(code, KissCode::Rate | KissCode::Deny | KissCode::Rstr) =>
            {
                if let Some(more) = self.admit(now, format!("kod {remote} {code:?}")) {
                    tracing::warn!(
                        source = %source_name, %remote, code = ?code,
                        "server sent a Kiss-o'-Death rntpd does not know; reply not used{more}"
                    );
                }
            }
            NodeEvent::ClockPanic { offset } => {
                if let Some(more) = self.admit(now, "panic".to_string()) {
                    tracing::error!(
                        offset,
                        "offset beyond the panic threshold (`tinker panic`, default 1000 s): the clock is left alone; check the servers, or set the time by hand once{more}"
                    );
                }
            }
            other => log_event(other),
        }
    }

    /// Whether to write a line about `subject` now; `Some(suffix)` telling how many were held
    /// back since the last one, `None` to hold this one back.
    fn admit(&mut self, now: Instant, subject: String) -> Option<String> {
        if let Some((until, held)) = self.held.get_mut(&subject) {
            if now < *until {
                *held += 1;
                return None;
            }
            let more = std::mem::take(held);
            *until = now.add_secs_f64(REPEAT_WINDOW);
            return Some(if more > 0 {
                format!(" (… {more} more since the last report)")
            } else {
                String::new()
            });
        }
        if self.held.len() >= MAX_SUBJECTS {
            // Forget the subject whose window ended first.
            if let Some(oldest) =
                self.held.iter().min_by_key(|(_, (until, _))| *until).map(|(k, _)| k.clone())
            {
                self.held.remove(&oldest);
            }
        }
        self.held.insert(subject, (now.add_secs_f64(REPEAT_WINDOW), 0));
        Some(String::new())
    }
}

/// Logs one node event (no rate limit).
fn log_event(event: &NodeEvent) {
    match event {
        NodeEvent::Source { name, event } => source(name, event),
        NodeEvent::SourceRejected { origin, error, first_origin, pool_hint } => match error {
            AddError::Duplicate { target, .. } => {
                let first = first_origin.as_deref().unwrap_or("another line");
                let hint = if *pool_hint && matches!(target, Target::Name(_)) {
                    "; to poll several servers behind one name, write `pool NAME` once"
                } else {
                    ""
                };
                tracing::warn!(
                    "{origin}: duplicate source `{target}` ignored: already configured at {first}{hint}"
                );
            }
            other => tracing::warn!("{origin}: source ignored: {other}"),
        },
        NodeEvent::Assoc { assoc, source_name: source, remote, event } => {
            let id = assoc.0;
            match event {
                AssocEvent::Sample(s) => {
                    tracing::debug!(id, %remote, offset = s.offset, delay = s.delay, "sample");
                }
                AssocEvent::Reachable => tracing::info!(id, %source, %remote, "server reachable"),
                AssocEvent::Unreachable => tracing::warn!(
                    id, %source, %remote,
                    "server unreachable: no valid reply to the last 8 requests"
                ),
                AssocEvent::Unsynchronized => tracing::debug!(
                    id, %remote,
                    "server says it is not synchronized (leap 3 or stratum 16); reply not used"
                ),
                AssocEvent::Kod(KissCode::Rate) => tracing::warn!(
                    id, %source, %remote,
                    "server sent Kiss-o'-Death RATE: polling less often"
                ),
                AssocEvent::Kod(code) => {
                    tracing::warn!(id, %source, %remote, code = ?code, "server sent Kiss-o'-Death");
                }
                AssocEvent::Demobilized(
                    reason @ (DemobilizeReason::KodDeny | DemobilizeReason::KodRstr),
                ) => tracing::warn!(
                    id, %source, %remote, reason = reason.name(),
                    "server refuses us service (Kiss-o'-Death); association stopped, address not used again for 24 h"
                ),
                AssocEvent::Demobilized(reason) => {
                    tracing::debug!(id, %remote, reason = reason.name(), "association stopped");
                }
            }
        }
        NodeEvent::SystemPeer { to: Some(peer), offset, stratum, .. } => {
            tracing::info!(id = peer.0, stratum, offset, "system peer selected");
        }
        NodeEvent::SystemPeer { to: None, .. } => tracing::warn!(
            "no system peer: too few sources agree (see `rntpctl peers` for each verdict)"
        ),
        NodeEvent::ClockStepped { offset } => tracing::warn!(offset, "clock stepped"),
        NodeEvent::ClockPanic { offset } => tracing::error!(
            offset,
            "offset beyond the panic threshold (`tinker panic`, default 1000 s): the clock is left alone; check the servers, or set the time by hand once"
        ),
        NodeEvent::AssocClosed(_) => {}
        NodeEvent::OwnRequest { assoc, remote, seen_from } => tracing::warn!(
            id = assoc.0, %remote, %seen_from,
            "timing loop: this association's requests reach rntpd's own server, so it would take time from itself; stopped, and {remote} is never polled again"
        ),
    }
}

fn source(name: &str, event: &SourceEvent) {
    match event {
        SourceEvent::Resolved { addrs, ttl, next_in, .. } => {
            let next = if next_in.is_finite() {
                format!("{next_in:.0} s")
            } else {
                "when the pool needs addresses".to_string()
            };
            tracing::info!(
                "{name}: resolved to {addrs} usable address(es), TTL {ttl:.0} s; next lookup in {next}"
            );
        }
        SourceEvent::ResolveFailed { error, retry_in, repeated, have_addresses, .. } => {
            let keep = if *have_addresses {
                "the last good addresses stay in use"
            } else {
                "no address known yet"
            };
            if *repeated {
                tracing::debug!("{name}: lookup failed again: {error}; retry in {retry_in:.0} s");
            } else {
                tracing::warn!("{name}: lookup failed: {error}; {keep}; retry in {retry_in:.0} s");
            }
        }
        SourceEvent::Mobilized { assoc, remote, reason, .. } => tracing::info!(
            id = assoc.0, %remote, reason = reason.name(),
            "{name}: association mobilized"
        ),
        SourceEvent::Moved { assoc, from, to, reason: MoveReason::AddressChanged, .. } => {
            tracing::warn!(
                id = assoc.0, %from, %to,
                "{name}: name no longer lists the address in use; association moved (filter and reach restart)"
            )
        }
        SourceEvent::Moved { assoc, from, to, .. } => tracing::warn!(
            id = assoc.0, %from, %to,
            "{name}: server failed (unreachable, unsynchronized or refusing service); moved to another address of the name, the failed one is avoided for 1 h"
        ),
        SourceEvent::Retired { assoc, remote, reason, .. } => tracing::info!(
            id = assoc.0, %remote, reason = reason.name(),
            "{name}: association retired"
        ),
        SourceEvent::NoFreeAddress { .. } => tracing::warn!(
            "{name}: every address in the answer is already polled or blocked; will ask again later"
        ),
        SourceEvent::OwnAddressSkipped { remote, .. } => tracing::warn!(
            %remote,
            "{name}: the answer lists this rntpd's own server address; it is never polled (it would be a timing loop)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_are_held_back_and_counted() {
        let mut log = Log::default();
        let t = |s: f64| Instant::ZERO.add_secs_f64(s);
        assert_eq!(log.admit(t(0.0), "a".into()), Some(String::new()));
        for i in 1..=57 {
            assert_eq!(log.admit(t(f64::from(i)), "a".into()), None);
        }
        // Another subject is not affected.
        assert_eq!(log.admit(t(10.0), "b".into()), Some(String::new()));
        let line = log.admit(t(REPEAT_WINDOW + 1.0), "a".into()).unwrap();
        assert!(line.contains("57 more"), "{line}");
        // The count starts again.
        assert_eq!(log.admit(t(2.0 * REPEAT_WINDOW + 2.0), "a".into()), Some(String::new()));
    }

    #[test]
    fn subjects_are_bounded() {
        let mut log = Log::default();
        for i in 0..(MAX_SUBJECTS * 2) {
            let _ = log.admit(Instant::ZERO.add_secs_f64(i as f64), format!("s{i}"));
        }
        assert!(log.held.len() <= MAX_SUBJECTS);
    }
}
