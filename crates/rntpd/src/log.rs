//! The node's events as log lines, written for an administrator: what happened, to which
//! source, and what rntpd does about it.

use rntp_proto::assoc::{AssocEvent, DemobilizeReason};
use rntp_proto::node::NodeEvent;
use rntp_proto::source::{AddError, SourceEvent, Target};
use rntp_proto::wire::KissCode;

/// Logs one node event.
pub fn event(event: &NodeEvent) {
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
        SourceEvent::Moved { assoc, from, to, .. } => tracing::warn!(
            id = assoc.0, %from, %to,
            "{name}: name no longer lists the address in use; association moved (filter and reach restart)"
        ),
        SourceEvent::Retired { assoc, remote, reason, .. } => tracing::info!(
            id = assoc.0, %remote, reason = reason.name(),
            "{name}: association retired"
        ),
        SourceEvent::NoFreeAddress { .. } => tracing::warn!(
            "{name}: every address in the answer is already polled or blocked; will ask again later"
        ),
    }
}
