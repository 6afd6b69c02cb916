//! Control commands against the node, and its views as control-protocol replies.
//!
//! Everything here is translation: the node decides and keeps every number; this module
//! formats (tally characters, verdict words, wall-clock times) and maps `rntpctl add` onto a
//! configuration line, so a runtime addition obeys exactly the file's rules and messages.

use rntp_control::{
    AddSource, Command, ErrorCode, HistoryEntry, PeerInfo, ReloadInfo, Reply, ResolutionInfo,
    ServerCountersInfo, SourceInfo, StatusInfo,
};
use rntp_proto::node::{self, CommandError, CommandReply, Node, PeerView, ReloadReport};
use rntp_proto::select::{Unusable, Verdict};
use rntp_proto::source::Target;
use rntp_proto::time::Instant;
use rntp_proto::wire::KissCode;

use crate::clock::Clock;

/// What the control reply needs beyond the node.
#[derive(Debug, Clone)]
pub struct DaemonInfo {
    /// The configuration file in use, or `(built-in default)`.
    pub config_file: String,
}

/// Answers one control command. Read-only commands only read the node.
pub fn answer(node: &mut Node, clock: &Clock, info: &DaemonInfo, command: Command) -> Reply {
    let now = clock.now();
    match command {
        Command::Peers => Reply::Peers { peers: node.peers(now).iter().map(peer_info).collect() },
        Command::Sources => Reply::Sources { sources: sources(node, now) },
        Command::History => Reply::History { entries: history(node, clock, now) },
        Command::Status => Reply::Status(Box::new(status(node, info, now))),
        Command::Add(add) => add_source(node, now, &add),
        Command::Remove { name } => {
            match node.handle_command(now, node::Command::Remove(name.clone())) {
                Ok(CommandReply::Removed { source, associations }) => {
                    tracing::info!(source = source.0, %name, "source removed by rntpctl");
                    Reply::Removed {
                        source_id: source.0,
                        associations: associations.iter().map(|a| a.0).collect(),
                    }
                }
                Ok(_) => unexpected(),
                Err(e) => error(e),
            }
        }
        Command::Refresh { name } => match node.handle_command(now, node::Command::Refresh(name)) {
            Ok(CommandReply::Refreshing(ids)) => {
                Reply::Refreshing { sources: ids.iter().map(|s| s.0).collect() }
            }
            Ok(_) => unexpected(),
            Err(e) => error(e),
        },
        _ => Reply::Error {
            code: ErrorCode::BadRequest,
            message: "this rntpd does not support that command".to_string(),
        },
    }
}

/// A reload's outcome: the reply to `rntpctl reload` and the line for the log.
#[derive(Debug)]
pub struct ReloadSummary {
    /// The reply.
    pub info: ReloadInfo,
    /// One line: what changed.
    pub summary: String,
}

/// What a reload did: the node's report plus what the daemon applied itself (`applied`:
/// `resolver`, `logfile`, ...) and what it cannot apply while running (`restart_needed`).
pub fn reload_info(
    config_file: &str,
    report: &ReloadReport,
    mut applied: Vec<String>,
    mut restart_needed: Vec<String>,
    warnings: usize,
) -> ReloadSummary {
    let names = |list: &[node::SourceChange]| list.iter().map(|c| c.name.clone()).collect();
    if report.server_changed {
        applied.insert(0, "restrict/discard".to_string());
    }
    if report.orphan_changed {
        applied.insert(0, "tos orphan".to_string());
    }
    restart_needed.splice(0..0, report.restart_needed.iter().map(|s| s.to_string()));
    let mut summary = report.to_string();
    // The node's line names its own restart-needed settings; the daemon's come after.
    let daemon_only: Vec<&String> =
        restart_needed.iter().skip(report.restart_needed.len()).collect();
    if !applied.is_empty() {
        summary.push_str(&format!("; applied: {}", applied.join(", ")));
    }
    if !daemon_only.is_empty() {
        let list: Vec<&str> = daemon_only.iter().map(|s| s.as_str()).collect();
        summary.push_str(&format!("; restart needed: {}", list.join(", ")));
    }
    if warnings > 0 {
        summary.push_str(&format!("; {warnings} warning{}", if warnings == 1 { "" } else { "s" }));
    }
    ReloadSummary {
        info: ReloadInfo {
            config_file: config_file.to_string(),
            added: names(&report.added),
            removed: names(&report.removed),
            replaced: names(&report.replaced),
            adopted: names(&report.adopted),
            rejected: report.rejected.clone(),
            unchanged: report.unchanged,
            runtime_kept: report.runtime_kept,
            applied,
            restart_needed,
            warnings,
        },
        summary,
    }
}

fn unexpected() -> Reply {
    Reply::Error { code: ErrorCode::BadRequest, message: "unexpected reply from the node".into() }
}

fn error(e: CommandError) -> Reply {
    let code = match &e {
        CommandError::NotFound(_) => ErrorCode::NotFound,
        CommandError::Refused(rntp_proto::source::AddError::Duplicate { .. }) => {
            ErrorCode::Duplicate
        }
        _ => ErrorCode::InvalidArgument,
    };
    Reply::Error { code, message: e.to_string() }
}

/// `rntpctl add`: validated like a configuration line, then added at once. The reply goes out
/// before any DNS lookup; the source shows up as resolving.
fn add_source(node: &mut Node, now: Instant, add: &AddSource) -> Reply {
    let line = add_line(add);
    // The same one-line parser as `ntpq :config` (rntp_config::runtime).
    let parsed = match rntp_config::runtime::parse_source_line("rntpctl add", &line) {
        Ok(parsed) => parsed,
        Err(e) => return Reply::Error { code: ErrorCode::InvalidArgument, message: e.to_string() },
    };
    let mut source = rntp_config::node::configured_source(&parsed);
    source.origin = "rntpctl add".to_string();
    match node.handle_command(now, node::Command::Add(source)) {
        Ok(CommandReply::Added(id)) => {
            tracing::info!(source = id.0, "added by rntpctl: {line}");
            Reply::Added { source_id: id.0 }
        }
        Ok(_) => unexpected(),
        Err(e) => error(e),
    }
}

/// The configuration line equivalent to an `rntpctl add` request.
fn add_line(a: &AddSource) -> String {
    let mut line = a.kind.clone();
    match a.family.as_str() {
        "ipv4" => line.push_str(" -4"),
        "ipv6" => line.push_str(" -6"),
        _ => {}
    }
    line.push(' ');
    line.push_str(&a.name);
    for (on, word) in
        [(a.iburst, "iburst"), (a.burst, "burst"), (a.prefer, "prefer"), (a.noselect, "noselect")]
    {
        if on {
            line.push(' ');
            line.push_str(word);
        }
    }
    line.push_str(&format!(
        " minpoll {} maxpoll {} version {} port {}",
        a.minpoll, a.maxpoll, a.ntp_version, a.port
    ));
    if let Some(m) = a.maxsources {
        line.push_str(&format!(" maxsources {m}"));
    }
    line
}

/// One peers row.
pub fn peer_info(row: &PeerView) -> PeerInfo {
    let snap = row.snapshot.as_ref();
    let est = snap.and_then(|s| s.estimate);
    let state = match (snap, row.kind) {
        (Some(s), _) => s.state.name(),
        (None, node::PeerKind::Pool) => "pool",
        (None, node::PeerKind::Manycast) => "manycast",
        (None, _) if row.resolving => "resolving",
        (None, _) => "unresolved",
    };
    let refid = match (snap, row.kind) {
        (Some(s), _) => s.server.map(|v| v.reference_id.display_for_stratum(v.stratum)),
        (None, node::PeerKind::Pool) => Some(".POOL.".to_string()),
        // As ntpd (and our mode 6: ntpq) shows a manycastclient's own row.
        (None, node::PeerKind::Manycast) => Some(".MCST.".to_string()),
        (None, _) => Some(".DNS.".to_string()),
    };
    PeerInfo {
        id: row.assoc.map(|a| a.0),
        source_id: row.source.0,
        kind: row.kind.name().to_string(),
        source: row.source_name.clone(),
        address: snap.map(|s| s.remote.to_string()).unwrap_or_default(),
        state: state.to_string(),
        last_error: row.last_error.as_ref().map(ToString::to_string),
        stratum: snap.and_then(|s| s.server.map(|v| v.stratum)),
        refid,
        refid_hex: snap.and_then(|s| s.server).map(|v| format!("{:08X}", v.reference_id.to_bits())),
        reach: snap.map_or(0, |s| s.reach),
        poll: snap.map_or(0.0, |s| s.poll.as_secs_f64()),
        when: snap.and_then(|s| s.since_last_reply),
        offset: est.map(|e| e.offset),
        delay: est.map(|e| e.delay),
        dispersion: est.map(|e| e.dispersion),
        jitter: est.map(|e| e.jitter),
        last_kod: snap.and_then(|s| s.last_kod).map(kod_name),
        demobilized: snap.and_then(|s| match s.state {
            rntp_proto::assoc::AssocState::Demobilized(r) => Some(r.name().to_string()),
            _ => None,
        }),
        verdict: row.verdict.map(verdict_name),
        tally: row.verdict.map_or(' ', tally).to_string(),
        drops: row.drops.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
    }
}

fn kod_name(code: KissCode) -> String {
    match code {
        KissCode::Deny => "DENY".into(),
        KissCode::Rstr => "RSTR".into(),
        KissCode::Rate => "RATE".into(),
        KissCode::Other(id) => id.to_string(),
    }
}

/// ntpq's tally character for a verdict.
fn tally(v: Verdict) -> char {
    match v {
        Verdict::SystemPeer => '*',
        Verdict::Survivor => '+',
        Verdict::Outlier => '-',
        Verdict::Falseticker => 'x',
        Verdict::Unusable(_) => ' ',
    }
}

fn verdict_name(v: Verdict) -> String {
    match v {
        Verdict::SystemPeer => "system-peer".into(),
        Verdict::Survivor => "survivor".into(),
        Verdict::Outlier => "outlier".into(),
        Verdict::Falseticker => "falseticker".into(),
        Verdict::Unusable(why) => format!(
            "unusable: {}",
            match why {
                Unusable::Noselect => "noselect",
                Unusable::Unreachable => "unreachable",
                Unusable::Unsynchronized => "server unsynchronized",
                Unusable::Distance => "root distance too large",
                Unusable::Loop => "timing loop (server is synchronized to us)",
                Unusable::OrphanStratum => "another orphan (stratum at or below ours)",
                Unusable::Invalid => "invalid measurement",
                _ => "other",
            }
        ),
    }
}

fn sources(node: &Node, now: Instant) -> Vec<SourceInfo> {
    node.sources()
        .into_iter()
        .map(|v| {
            let s = v.snapshot;
            SourceInfo {
                id: s.id.0,
                kind: s.spec.kind.name().to_string(),
                name: s.spec.target.to_string(),
                port: s.spec.port,
                origin: v.origin,
                addresses: match (&s.manycast, &s.spec.target) {
                    (Some(m), _) => m
                        .offers
                        .iter()
                        .filter(|(_, until, _)| *until > now)
                        .map(|(remote, _, _)| remote.to_string())
                        .collect(),
                    (None, Target::Addr(ip)) => vec![ip.to_string()],
                    (None, Target::Name(_)) => s.addrs.iter().map(ToString::to_string).collect(),
                },
                expires_in: s.valid_until.map(|t| t.secs_since(now)),
                last_resolution: s.last_resolution.map(|r| {
                    let (result, ttl, addresses) = match r.outcome {
                        Ok((n, ttl)) => ("ok".to_string(), Some(ttl), Some(n)),
                        Err(e) => (e.to_string(), None, None),
                    };
                    ResolutionInfo { ago: now.secs_since(r.at), result, ttl, addresses }
                }),
                next_resolution_in: s
                    .manycast
                    .as_ref()
                    .map_or(s.next_resolution, |m| m.next_solicit)
                    .map(|t| t.secs_since(now).max(0.0)),
                resolving: s.resolving,
                queries: s.manycast.as_ref().map_or(s.queries, |m| m.solicitations),
                associations: s.assocs.iter().map(|(a, _)| a.0).collect(),
                target: s.target,
                pool_phase: s
                    .target
                    .map(|_| if s.filling { "filling" } else { "steady" }.to_string()),
                replacements_available: s.replacements_available,
                next_replacement_in: s.next_replacement.map(|t| t.secs_since(now).max(0.0)),
            }
        })
        .collect()
}

fn history(node: &Node, clock: &Clock, now: Instant) -> Vec<HistoryEntry> {
    let unix_now = clock.unix_secs();
    node.history()
        .map(|h| HistoryEntry {
            time: unix_now - now.secs_since(h.at),
            source_id: h.source.0,
            source: h.source_name.clone(),
            association: h.assoc.0,
            event: h.kind.name().to_string(),
            address: h.address.to_string(),
            old_address: h.old_address.map(|a| a.to_string()),
            reason: h.reason.to_string(),
        })
        .collect()
}

fn status(node: &Node, info: &DaemonInfo, now: Instant) -> StatusInfo {
    let s = node.status(now);
    let auth = auth_info(node, &s);
    StatusInfo {
        daemon_version: env!("CARGO_PKG_VERSION").to_string(),
        uptime: s.uptime,
        mode: s.mode.to_string(),
        config_file: info.config_file.clone(),
        sources: s.sources,
        associations: s.associations,
        reachable: s.reachable,
        counters: rntp_control::Counters {
            sent: s.counters.sent,
            received: s.counters.received,
            accepted: s.counters.accepted,
            dropped: s.counters.dropped.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            kod_received: s.counters.kod_received,
            send_errors: s.counters.send_errors,
        },
        server: s.server.map(|v| {
            let c = &v.counters;
            ServerCountersInfo {
                requests: c.requests,
                replies: c.replies,
                kod_rate: c.kod_rate,
                kod_deny: c.kod_deny,
                crypto_naks: c.crypto_naks,
                dropped: c
                    .dropped()
                    .filter(|(_, n)| *n > 0)
                    .map(|(k, n)| (k.to_string(), n))
                    .collect(),
                rate_table_used: v.rate_table_used,
                rate_table_capacity: v.rate_table_capacity,
            }
        }),
        listening: s.listening.iter().map(ToString::to_string).collect(),
        serving_as: s.serving_as.name().to_string(),
        stratum: s.system.stratum,
        kernel_clock: rntp_sys::kernel_clock_state().ok().map(|k| {
            format!(
                "{}, status {}, frequency {:+.3} ppm",
                k.state,
                k.status_names().join("|"),
                k.freq_ppm
            )
        }),
        clock_state: s.clock_state.name().to_string(),
        clock_frequency_ppm: s.frequency_ppm,
        clock_correction: s.correction,
        clock_offset: s.last_offset,
        system_peer: s.system_peer.map(|a| a.0),
        system_offset: s.system_offset,
        system_jitter: s.system_jitter,
        history_totals: s.history_totals.into_iter().collect(),
        clock_error: s.clock_error.map(|(_, e)| e),
        synchronized: node.synchronized(),
        auth,
    }
}

/// Keys, `:config` and manycast counters.
fn auth_info(node: &Node, s: &rntp_proto::node::StatusView) -> rntp_control::AuthInfo {
    let pairs = |m: &std::collections::BTreeMap<&'static str, u64>| {
        m.iter().map(|(k, v)| (k.to_string(), *v)).collect::<Vec<_>>()
    };
    let keys = node.keys();
    let server = node.server_counters();
    let manycast = node.manycast_counters();
    let control = node.control_counters();
    let served = node.manycast_server_counters();
    rntp_control::AuthInfo {
        keys: keys.len(),
        trusted: keys.keys().filter(|k| keys.is_trusted(k.id())).count(),
        control_key: node.control_key().map(|k| k.0),
        client_failures: s
            .counters
            .dropped
            .iter()
            .filter(|(k, _)| k.starts_with("auth_"))
            .map(|(k, v)| (k.to_string(), *v))
            .collect(),
        server_authenticated: server.authenticated,
        server_failures: server
            .auth_failures()
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| (k.to_string(), n))
            .collect(),
        config_accepted: control.config_accepted,
        config_refused: pairs(&control.config_refused),
        manycast_solicitations: manycast.solicitations,
        manycast_offers: manycast.offers,
        manycast_dropped: pairs(&manycast.dropped),
        manycast_requests: served.requests,
        manycast_replies: served.replies,
        manycast_declined: pairs(&served.dropped),
    }
}

#[cfg(test)]
mod tests {
    use rntp_proto::node::ClockMode;

    use super::*;

    /// Regression: `rntpctl peers` showed a manycastclient's own row as a pool (`.POOL.`)
    /// where ntpd and `ntpq -p` show `.MCST.`.
    #[test]
    fn manycastclient_row_shows_mcst_as_ntpd() {
        use rntp_proto::auth::{Digest, Key, KeyId, KeyStore};
        let text = "keys /etc/rntpd/ntp.keys\ntrustedkey 5\n\
                    manycastclient 239.1.1.1 key 5\npool pool.example\n";
        let loaded = rntp_config::parse_str(std::path::Path::new("ntp.conf"), text, &mut |_| {
            Err(std::io::Error::other("no includes"))
        })
        .expect("the config parses");
        let mut config = rntp_config::node::node_config(&loaded.config, ClockMode::Observe);
        // The daemon reads the key file (keys.rs); here the key is made directly.
        let mut keys = KeyStore::new();
        keys.insert(Key::new(KeyId(5), Digest::Md5, b"secret").expect("key 5"));
        keys.trust(KeyId(5));
        config.auth.keys = keys;
        let rng = Box::new(rntp_proto::rng::SplitMix64::new(1));
        let node = Node::new(Instant::ZERO, config, rng);
        let rows: Vec<PeerInfo> = node.peers(Instant::ZERO).iter().map(peer_info).collect();
        let row = |source: &str| {
            rows.iter().find(|r| r.source == source).unwrap_or_else(|| panic!("{rows:?}"))
        };
        let manycast = row("239.1.1.1");
        assert_eq!(
            (manycast.kind.as_str(), manycast.state.as_str(), manycast.refid.as_deref()),
            ("manycastclient", "manycast", Some(".MCST.")),
        );
        let pool = row("pool.example");
        assert_eq!((pool.kind.as_str(), pool.refid.as_deref()), ("pool", Some(".POOL.")));
    }
}
