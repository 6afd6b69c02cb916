//! Reloads (SIGHUP, `rntpctl reload`): the new configuration, read off the loop, is applied
//! as a difference; a file with errors changes nothing.

use super::startup::node_config;
use super::*;

impl Driver {
    /// Applies a configuration read by [`Service::start_reload`] and says what changed (the
    /// reply to `rntpctl reload`). A configuration with errors changes nothing.
    pub(super) fn finish_reload(&mut self, loaded: LoadedConfig) -> Reply {
        self.service.reloading = false;
        let label = loaded.origin.label();
        let result = self.apply_reload(loaded);
        if let Some(n) = &self.service.notifier {
            n.send("READY=1");
        }
        match result {
            Ok(info) => Reply::Reloaded(Box::new(info)),
            Err(errors) => {
                tracing::error!(
                    "reload failed, the running configuration stays in force; fix these and \
                     reload again (check with: rntpctl validate {label}):\n{errors}"
                );
                Reply::Error {
                    code: ErrorCode::ConfigError,
                    message: format!(
                        "{errors}\n{label}: not reloaded; the running configuration stays in force"
                    ),
                }
            }
        }
    }

    fn apply_reload(&mut self, loaded: LoadedConfig) -> Result<rntp_control::ReloadInfo, String> {
        let Loaded { config, warnings } = loaded.result.map_err(|e| e.to_string())?;
        // The keys first: sources the new configuration adds are checked against them.
        let keys = match loaded.keys {
            Some(KeyReload::Loaded(auth, key_warnings)) => {
                for w in key_warnings {
                    tracing::warn!("{w}");
                }
                Some(auth)
            }
            Some(KeyReload::Unreadable(why)) => {
                let kept = self.shared.with(|n| n.keys().clone());
                let missing = rntp_config::node::unusable_keys(&config, &kept);
                if !missing.is_empty() {
                    let list: Vec<String> =
                        missing.iter().map(|(at, key)| format!("{at}: key {key}")).collect();
                    return Err(format!(
                        "cannot read the key file ({why}), and the keys loaded at start lack \
                         what the new configuration uses:\n{}",
                        list.join("\n")
                    ));
                }
                tracing::warn!(
                    "cannot read the key file ({why}); the keys loaded at start stay in use \
                     (restart rntpd to read a changed key file)"
                );
                None
            }
            Some(KeyReload::Failed(e)) => return Err(e),
            None => None,
        };
        for w in &warnings {
            tracing::warn!("{w}");
        }
        let warning_count = warnings.len();
        drop(warnings);
        if loaded.origin != self.service.origin {
            tracing::info!("reloading from {}", loaded.origin.describe());
            self.service.origin = loaded.origin;
            self.info.config_file = self.service.origin.label();
        }
        let mut applied = Vec::new();
        let mut restart_needed = Vec::new();
        let running = &self.service.config;
        // The drift file is the driver's: its path is fixed at start (it was read then), and
        // observe mode never uses one.
        if self.service.mode == ClockMode::Control && config.driftfile != running.driftfile {
            restart_needed.push("driftfile".to_string());
        }
        let mut node_settings =
            node_config(&config, self.service.mode, self.service.precision_log2, &self.driftfile);
        if let Some(auth) = keys {
            let changed =
                self.shared.with(|n| n.keys() != &auth.keys || n.control_key() != auth.control_key);
            if changed {
                applied.push("keys".to_string());
            }
            self.shared.with(|n| n.set_keys(auth.clone()));
            node_settings.auth = auth;
        }
        let ttl = node_settings.ttl_ring.clone();
        self.shared.with(|n| n.set_ttl_ring(&ttl));
        if config.manycast_servers != running.manycast_servers {
            restart_needed.push("manycastserver".to_string());
        }
        let now = self.clock.now();
        let report = self.shared.with(|n| n.handle_config(now, node_settings));
        if config.resolvers != running.resolvers {
            match Dns::new(&config.resolvers) {
                Ok(dns) => {
                    self.dns = dns;
                    applied.push("resolver".to_string());
                }
                Err(e) => tracing::warn!(
                    "resolver lines changed but cannot be used ({e}); the previous DNS \
                     servers stay in use"
                ),
            }
        }
        match (&config.logfile, self.service.logging.file()) {
            (None, None) => {}
            (new, old) => match self.service.logging.set_file(new.as_deref()) {
                Ok(()) if new.as_deref() == old.as_deref() => {
                    applied.push("logfile reopened".into())
                }
                Ok(()) => applied.push("logfile".to_string()),
                Err(e) => tracing::error!("{e}; logging stays where it was"),
            },
        }
        // A reload is also the administrator's "try DNS again now" (NTPsec's SIGHUP does the
        // same): names waiting out a failure backoff are looked up at once.
        let now = self.clock.now();
        let retried = self.shared.with(|n| n.retry_lookups(now));
        if !retried.is_empty() {
            applied.push(format!("{} pending DNS lookup(s) retried", retried.len()));
        }
        self.service.config = config;
        let info = crate::report::reload_info(
            &self.info.config_file,
            &report,
            applied,
            restart_needed,
            warning_count,
        );
        tracing::info!("configuration reloaded from {}: {}", self.info.config_file, info.summary);
        Ok(info.info)
    }
}
