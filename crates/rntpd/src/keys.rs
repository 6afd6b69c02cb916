//! The key file: read at start (and, by the reload path, on SIGHUP) into the node's
//! [`AuthConfig`].
//!
//! [`load`] (at start) and [`reload`] (SIGHUP, `rntpctl reload`) read `keys FILE` (refusing anything but a regular file of at most 1 MiB, warning
//! when it is readable by every user), applies `trustedkey` and `controlkey`, and checks that
//! every key a line uses (`key N`, `controlkey N`) is in the file and trusted. It returns
//! either a complete [`AuthConfig`] or an error that lists every problem: a reload must keep
//! the keys it had ([`Node::set_keys`](rntp_proto::node::Node::set_keys) only with a result
//! of this function).

use rntp_config::keys::{load_keys, KeyFile};
use rntp_config::Config;
use rntp_proto::node::AuthConfig;

/// The node's keys for `config`: `Ok` with the warnings to log, or every problem found. A key
/// file that cannot be used stops the start only if the configuration needs it (a source with
/// `key N`, a `manycastserver`); otherwise rntpd starts without keys, as ntpd does, and says so.
pub fn load(config: &Config) -> Result<(AuthConfig, Vec<String>), String> {
    let mut warnings = Vec::new();
    let file: Option<KeyFile> = match &config.auth.keys {
        None => None,
        Some(keys) => {
            let at = format!("{}:{}", keys.origin.file.display(), keys.origin.line);
            match load_keys(&keys.path) {
                Ok(file) => {
                    warnings.extend(file.warnings.iter().map(ToString::to_string));
                    Some(file)
                }
                Err(e) if rntp_config::node::needs_keys(config) => {
                    return Err(format!("cannot use the key file named at {at}:\n{e}"));
                }
                Err(e) => {
                    warnings.push(format!(
                        "cannot use the key file named at {at}; no source uses a key, so rntpd \
                         runs without keys (`:config` is refused):\n{e}"
                    ));
                    None
                }
            }
        }
    };
    let auth = rntp_config::node::auth_config(&config.auth, file);
    for id in auth.keys.trusted_without_key() {
        warnings.push(format!("trustedkey {id}: the key file has no key {id}"));
    }
    if let Some(key) = rntp_config::node::control_key_unusable(config, &auth.keys) {
        warnings.push(format!(
            "controlkey {key}: no trusted key {key} in the key file; `ntpq :config` is refused"
        ));
    }
    let unusable = rntp_config::node::unusable_keys(config, &auth.keys);
    if !unusable.is_empty() {
        let list: Vec<String> = unusable
            .iter()
            .map(|(at, key)| format!("{at}: key {key} is not in the key file (or not trusted)"))
            .collect();
        return Err(list.join("\n"));
    }
    Ok((auth, warnings))
}

/// What a reload found in the key file.
#[derive(Debug)]
pub enum KeyReload {
    /// The keys to switch to, and warnings to log.
    Loaded(AuthConfig, Vec<String>),
    /// The file cannot be opened by this (unprivileged, after `-u`) user: the running keys
    /// stay, if the new configuration can run with them.
    Unreadable(String),
    /// The file, or a key a line uses, is wrong: the reload is refused.
    Failed(String),
}

/// Reads the key file for a reload (blocking; off the event loop).
pub fn reload(config: &Config) -> KeyReload {
    if let Some(keys) = &config.auth.keys {
        if let Err(e) = std::fs::File::open(&keys.path) {
            if e.kind() == std::io::ErrorKind::PermissionDenied {
                return KeyReload::Unreadable(format!("{}: {e}", keys.path.display()));
            }
        }
    }
    match load(config) {
        Ok((auth, warnings)) => KeyReload::Loaded(auth, warnings),
        Err(e) => KeyReload::Failed(e),
    }
}
