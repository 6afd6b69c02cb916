//! Reloading the configuration: [`Node::handle_config`] applies the difference between the
//! configuration the node runs and a new one, in place, without a restart.
//!
//! What a reload changes:
//! * **Sources from the files** (the configuration file, its includes and its `sourcedir`
//!   files) are diffed by (name or address, port). A source whose line did not change keeps its
//!   source id, its associations and all their state (reach, filter, poll, selection history);
//!   only the `file:line` it is shown with follows the file. A removed line stops the source and
//!   its associations; a new line adds one; a line whose options changed (say `minpoll`) is
//!   stopped and added again, since its associations were made with the old options.
//! * **Sources added at runtime** (`rntpctl add`) are not in any file and are kept. If a file
//!   now names the same server or pool, the file adopts it (it is then the file's to remove).
//! * **Server settings** (`restrict`, `discard`) are replaced; the rate-limit table and the
//!   counters are kept (see [`Responder::set_config`](crate::server::Responder::set_config)).
//!   `tos orphan` changes at once.
//! * **Leap seconds**: the `leapfile` table (the driver reads the file again) and `leapsmear`
//!   apply from the reload on.
//! * **Everything else** the node was built with (`tos maxclock/minclock/minsane`, `resolve`,
//!   `tinker`/`makestep`/`maxslewrate`, `interface listen`, `driftfile`, the clock mode) keeps its running value
//!   and is named in [`ReloadReport::restart_needed`].
//!
//! A configuration that does not parse never reaches the node: the driver keeps the running one.

use std::collections::BTreeMap;

use super::{initial_system_state, ConfiguredSource, Node, NodeConfig};
use crate::source::{AddError, SourceId, SourceSpec, Target};
use crate::time::Instant;

/// What the node was configured with, kept to diff the next reload against.
#[derive(Debug, Clone)]
pub(super) struct Applied {
    /// The settings in force (without sources): what the node was built with, plus the
    /// changes that reloads applied live.
    settings: NodeConfig,
    /// The sources that came from the files, by id, as last configured.
    files: BTreeMap<SourceId, ConfiguredSource>,
}

impl Applied {
    /// The settings of `config`; its sources are recorded as they are accepted
    /// ([`Node::add_from_files`]).
    pub(super) fn new(config: &NodeConfig) -> Self {
        // The keys are the responder's alone (`Node::set_keys`): no second copy of secrets.
        let settings = NodeConfig {
            sources: Vec::new(),
            auth: super::AuthConfig::default(),
            ..config.clone()
        };
        Applied { settings, files: BTreeMap::new() }
    }
}

/// One source a reload added, removed or replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceChange {
    /// The source (for a removal: the id it had).
    pub source: SourceId,
    /// Its name or address.
    pub name: String,
    /// Where it is (or was) configured, `file:line`.
    pub origin: String,
}

/// What [`Node::handle_config`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadReport {
    /// Sources new in the files.
    pub added: Vec<SourceChange>,
    /// Sources no longer in the files, stopped with their associations.
    pub removed: Vec<SourceChange>,
    /// Sources whose options changed: stopped and added again (new ids).
    pub replaced: Vec<SourceChange>,
    /// Sources added at runtime that the files now name (kept as they are).
    pub adopted: Vec<SourceChange>,
    /// Lines the node refused (duplicates, an address already polled); each is also a
    /// [`NodeEvent::SourceRejected`](super::NodeEvent::SourceRejected), which says why.
    pub rejected: Vec<String>,
    /// Sources from the files that did not change and kept their associations.
    pub unchanged: usize,
    /// Sources added at runtime (`rntpctl add`), kept.
    pub runtime_kept: usize,
    /// The `restrict`/`discard` settings changed and were replaced.
    pub server_changed: bool,
    /// `tos orphan` changed and applies now.
    pub orphan_changed: bool,
    /// Settings that changed in the files but apply only after a restart, by directive.
    pub restart_needed: Vec<&'static str>,
}

impl ReloadReport {
    /// Whether the reload changed nothing and needs nothing.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.replaced.is_empty()
            && self.adopted.is_empty()
            && self.rejected.is_empty()
            && !self.server_changed
            && !self.orphan_changed
            && self.restart_needed.is_empty()
    }
}

/// What identifies a source across reloads: what the source manager refuses to have twice.
type Key = (Target, u16);

fn key(spec: &SourceSpec) -> Key {
    (spec.target.clone(), spec.port)
}

impl Node {
    /// Applies a reloaded configuration (see the module docs). `config.clock` and
    /// `config.precision_log2` should be what the node runs with; `initial_freq_ppm` is
    /// ignored (the drift file is read at start only).
    pub fn handle_config(&mut self, now: Instant, config: NodeConfig) -> ReloadReport {
        let mut report = ReloadReport {
            restart_needed: self.restart_needed(&config),
            ..ReloadReport::default()
        };
        if config.server != self.applied.settings.server {
            self.responder.set_config(config.server.clone());
            self.applied.settings.server = config.server.clone();
            report.server_changed = true;
        }
        if config.orphan != self.orphan {
            self.orphan = config.orphan;
            self.applied.settings.orphan = config.orphan;
            if !self.synchronized() {
                self.system = initial_system_state(self.precision_log2, self.orphan);
            }
            report.orphan_changed = true;
        }
        if config.leap != self.applied.settings.leap {
            // A new leap table (`leapfile` re-read) or smear setting applies from now on.
            self.steering.set_leap_config(config.leap.clone());
            self.applied.settings.leap = config.leap.clone();
        }
        self.reload_sources(now, config.sources, &mut report);
        self.process(now);
        report
    }

    /// Adds a source from the files (at start, or new in a reload), remembering it as the
    /// files'. `Err`: refused, reported as [`NodeEvent::SourceRejected`](super::NodeEvent::SourceRejected).
    pub(super) fn add_from_files(
        &mut self,
        now: Instant,
        source: ConfiguredSource,
    ) -> Result<SourceId, AddError> {
        let id = self.add(now, source.clone())?;
        self.applied.files.insert(id, source);
        Ok(id)
    }

    /// The settings the node cannot change while running that `config` changes.
    fn restart_needed(&self, config: &NodeConfig) -> Vec<&'static str> {
        let old = &self.applied.settings;
        let mut needed = Vec::new();
        if config.maxclock != old.maxclock {
            needed.push("tos maxclock");
        }
        if config.select != old.select {
            needed.push("tos minclock/minsane");
        }
        if config.resolve != old.resolve {
            needed.push("resolve");
        }
        if config.discipline != old.discipline {
            needed.push("tinker/makestep/maxslewrate");
        }
        if config.listen != old.listen {
            needed.push("interface listen");
        }
        if config.drift_file != old.drift_file {
            needed.push("driftfile");
        }
        if config.clock != old.clock {
            needed.push("clock mode (--observe)");
        }
        needed
    }

    fn reload_sources(
        &mut self,
        now: Instant,
        sources: Vec<ConfiguredSource>,
        report: &mut ReloadReport,
    ) {
        // The files' sources that still exist (`rntpctl remove` may have removed one; the file
        // then brings it back).
        let old: BTreeMap<Key, SourceId> = self
            .applied
            .files
            .iter()
            .filter(|(id, _)| self.sources.spec(**id).is_some())
            .map(|(id, s)| (key(&s.spec), *id))
            .collect();
        self.applied.files.retain(|id, _| old.values().any(|o| o == id));
        let new_keys: Vec<Key> = sources.iter().map(|s| key(&s.spec)).collect();

        for (k, id) in &old {
            if !new_keys.contains(k) {
                let origin = self.applied.files.get(id).map(|s| s.origin.clone());
                report.removed.push(self.change(*id, origin.unwrap_or_default()));
                self.remove_source(now, *id);
            }
        }
        // Every source now, by key (runtime ones included): a new line may name one of them.
        let current: BTreeMap<Key, SourceId> =
            self.sources.snapshot().iter().map(|s| (key(&s.spec), s.id)).collect();
        let mut seen: Vec<Key> = Vec::new();
        for source in sources {
            let k = key(&source.spec);
            if seen.contains(&k) {
                // A second line for the same source: refused as at start, with the same event.
                let origin = source.origin.clone();
                if self.add(now, source).is_err() {
                    report.rejected.push(origin);
                }
                continue;
            }
            seen.push(k.clone());
            match current.get(&k).copied() {
                Some(id) if old.get(&k) == Some(&id) => {
                    if self.sources.spec(id) == Some(&source.spec) {
                        report.unchanged += 1;
                        self.names.origin.insert(id, source.origin.clone());
                        self.applied.files.insert(id, source);
                    } else {
                        self.remove_source(now, id);
                        self.applied.files.remove(&id);
                        self.add_reloaded(now, source, &mut report.replaced, &mut report.rejected);
                    }
                }
                Some(id) => {
                    // A runtime source the files now name.
                    if self.sources.spec(id) == Some(&source.spec) {
                        self.names.origin.insert(id, source.origin.clone());
                        report.adopted.push(self.change(id, source.origin.clone()));
                        self.applied.files.insert(id, source);
                    } else {
                        self.remove_source(now, id);
                        self.add_reloaded(now, source, &mut report.replaced, &mut report.rejected);
                    }
                }
                None => self.add_reloaded(now, source, &mut report.added, &mut report.rejected),
            }
        }
        report.runtime_kept = self
            .sources
            .snapshot()
            .iter()
            .filter(|s| !self.applied.files.contains_key(&s.id))
            .count();
    }

    fn add_reloaded(
        &mut self,
        now: Instant,
        source: ConfiguredSource,
        into: &mut Vec<SourceChange>,
        rejected: &mut Vec<String>,
    ) {
        let origin = source.origin.clone();
        match self.add_from_files(now, source) {
            Ok(id) => into.push(self.change(id, origin)),
            Err(_) => rejected.push(origin),
        }
    }

    fn change(&self, source: SourceId, origin: String) -> SourceChange {
        SourceChange { source, name: self.source_name(source), origin }
    }

    /// Removes a source and its associations, as `rntpctl remove` does.
    fn remove_source(&mut self, now: Instant, id: SourceId) {
        let display = self.source_name(id);
        self.names.removed.insert(id, display);
        self.names.origin.remove(&id);
        self.sources.remove(now, id, &mut *self.rng);
    }
}

/// Logged once per reload by the driver; here so that the simulator and the daemon word it alike.
impl std::fmt::Display for ReloadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        let names = |list: &[SourceChange]| {
            list.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
        };
        for (what, list) in [
            ("added", &self.added),
            ("removed", &self.removed),
            ("replaced (options changed)", &self.replaced),
            ("adopted from rntpctl add", &self.adopted),
        ] {
            if !list.is_empty() {
                parts.push(format!("{what}: {}", names(list)));
            }
        }
        if !self.rejected.is_empty() {
            parts.push(format!("refused: {}", self.rejected.join(", ")));
        }
        parts.push(format!("{} unchanged", self.unchanged));
        if self.runtime_kept > 0 {
            parts.push(format!("{} from rntpctl add kept", self.runtime_kept));
        }
        if self.server_changed {
            parts.push("restrict/discard replaced".to_string());
        }
        if self.orphan_changed {
            parts.push("tos orphan applied".to_string());
        }
        if !self.restart_needed.is_empty() {
            parts.push(format!("restart needed: {}", self.restart_needed.join(", ")));
        }
        f.write_str(&parts.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::super::NodeEvent;
    use super::*;
    use crate::assoc::{AssocConfig, AssocId};
    use crate::rng::SplitMix64;
    use crate::server::{RestrictFlags, RestrictRule};
    use crate::source::{AddrFamily, SourceKind};

    fn at(secs: f64) -> Instant {
        Instant::from_nanos((secs * 1e9) as u64)
    }

    fn server(addr: &str, line: u32) -> ConfiguredSource {
        ConfiguredSource {
            spec: SourceSpec {
                kind: SourceKind::Server,
                target: Target::Addr(addr.parse::<IpAddr>().unwrap()),
                port: 123,
                assoc: AssocConfig::default(),
                family: AddrFamily::Any,
                prefer: false,
                noselect: false,
                key: None,
            },
            origin: format!("/etc/rntpd/ntp.conf:{line}"),
        }
    }

    fn config(sources: Vec<ConfiguredSource>) -> NodeConfig {
        NodeConfig { sources, ..NodeConfig::default() }
    }

    fn node(sources: Vec<ConfiguredSource>) -> Node {
        Node::new(at(0.0), config(sources), Box::new(SplitMix64::new(7)))
    }

    /// (name, association ids) per source.
    fn table(n: &Node) -> Vec<(String, Vec<AssocId>)> {
        n.sources()
            .into_iter()
            .map(|v| {
                let s = v.snapshot;
                (s.spec.target.to_string(), s.assocs.iter().map(|(a, _)| *a).collect())
            })
            .collect()
    }

    fn names(list: &[SourceChange]) -> Vec<&str> {
        list.iter().map(|c| c.name.as_str()).collect()
    }

    #[test]
    fn unchanged_sources_keep_their_associations_others_come_and_go() {
        let mut n = node(vec![server("192.0.2.1", 1), server("192.0.2.2", 2)]);
        let before = table(&n);
        let kept = before[0].1.clone();
        let report =
            n.handle_config(at(10.0), config(vec![server("192.0.2.3", 1), server("192.0.2.1", 2)]));
        assert_eq!(names(&report.added), ["192.0.2.3"]);
        assert_eq!(names(&report.removed), ["192.0.2.2"]);
        assert_eq!(report.unchanged, 1);
        assert!(report.restart_needed.is_empty());
        let after = table(&n);
        assert_eq!(after[0], ("192.0.2.1".to_string(), kept), "same source, same association");
        assert_eq!(after.len(), 2);
        assert_eq!(after[1].0, "192.0.2.3");
        // The kept source follows its line.
        let origin = &n.sources()[0].origin;
        assert_eq!(origin, "/etc/rntpd/ntp.conf:2");
        // The removed source's association is closed for the driver.
        let closed = std::iter::from_fn(|| n.poll_event())
            .filter(|e| matches!(e, NodeEvent::AssocClosed(_)))
            .count();
        assert_eq!(closed, 1);
    }

    #[test]
    fn changed_options_replace_the_source() {
        let mut n = node(vec![server("192.0.2.1", 1)]);
        let mut changed = server("192.0.2.1", 1);
        changed.spec.noselect = true;
        let report = n.handle_config(at(1.0), config(vec![changed]));
        assert_eq!(names(&report.replaced), ["192.0.2.1"]);
        assert_eq!(report.unchanged, 0);
        assert!(n.sources()[0].snapshot.spec.noselect);
    }

    #[test]
    fn runtime_sources_are_kept_and_adopted_when_the_file_names_them() {
        let mut n = node(vec![server("192.0.2.1", 1)]);
        let mut runtime = server("192.0.2.9", 0);
        runtime.origin = "rntpctl add".into();
        n.handle_command(at(1.0), super::super::Command::Add(runtime)).unwrap();
        let report = n.handle_config(at(2.0), config(vec![server("192.0.2.1", 1)]));
        assert!(report.is_empty() || (report.added.is_empty() && report.removed.is_empty()));
        assert_eq!(report.runtime_kept, 1);
        assert_eq!(table(&n).len(), 2);

        // The file now names it: adopted, then the file's to remove.
        let report =
            n.handle_config(at(3.0), config(vec![server("192.0.2.1", 1), server("192.0.2.9", 2)]));
        assert_eq!(names(&report.adopted), ["192.0.2.9"]);
        assert_eq!(report.runtime_kept, 0);
        let report = n.handle_config(at(4.0), config(vec![server("192.0.2.1", 1)]));
        assert_eq!(names(&report.removed), ["192.0.2.9"]);
        assert_eq!(table(&n).len(), 1);
    }

    #[test]
    fn a_file_source_removed_at_runtime_comes_back() {
        let mut n = node(vec![server("192.0.2.1", 1)]);
        n.handle_command(at(1.0), super::super::Command::Remove("192.0.2.1".into())).unwrap();
        let report = n.handle_config(at(2.0), config(vec![server("192.0.2.1", 1)]));
        assert_eq!(names(&report.added), ["192.0.2.1"]);
    }

    #[test]
    fn duplicate_lines_are_refused_as_at_start() {
        let mut n = node(vec![server("192.0.2.1", 1)]);
        let report =
            n.handle_config(at(1.0), config(vec![server("192.0.2.1", 1), server("192.0.2.1", 5)]));
        assert_eq!(report.rejected, ["/etc/rntpd/ntp.conf:5"]);
        assert_eq!(report.unchanged, 1);
        assert!(std::iter::from_fn(|| n.poll_event())
            .any(|e| matches!(e, NodeEvent::SourceRejected { .. })));
    }

    #[test]
    fn server_settings_apply_and_fixed_settings_are_reported() {
        let mut n = node(vec![]);
        let mut c = config(vec![]);
        c.server.default_flags = RestrictFlags::IGNORE;
        c.server
            .restrict
            .push(RestrictRule::host("127.0.0.1".parse().unwrap(), RestrictFlags::NONE));
        c.orphan = Some(5);
        c.maxclock = 3;
        c.listen.push("127.0.0.1:123".parse().unwrap());
        let report = n.handle_config(at(1.0), c.clone());
        assert!(report.server_changed && report.orphan_changed);
        assert_eq!(report.restart_needed, ["tos maxclock", "interface listen"]);
        assert_eq!(n.responder.restrictions("192.0.2.1".parse().unwrap()), RestrictFlags::IGNORE);
        assert_eq!(n.system_state().stratum, 5, "orphan parent at once");
        // Still running the old value: a second identical reload still says so.
        let again = n.handle_config(at(2.0), c);
        assert!(!again.server_changed && !again.orphan_changed);
        assert_eq!(again.restart_needed, ["tos maxclock", "interface listen"]);
        assert!(again.to_string().contains("restart needed: tos maxclock, interface listen"));
    }
}
