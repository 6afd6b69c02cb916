//! Authenticated runtime configuration: ntpq's `:config` (mode 6 opcode CONFIGURE).
//!
//! `ntpq -k KEYFILE -a N -c ":config pool pool.example iburst"` sends the text of one or more
//! configuration lines, signed with key N. The node accepts it only if all of these hold, and
//! refuses it otherwise with a `PERMISSION` error, counted by reason
//! ([`ControlCounters::config_refused`](super::ControlCounters)) and reported as a
//! [`NodeEvent::RemoteConfig`]:
//! 1. the client passed the query checks (`restrict`, `noquery`, the query rate limit) and its
//!    `restrict` flags do not include `nomodify`;
//! 2. a control key is configured (`controlkey N`), and it is trusted;
//! 3. the request carries a MAC with exactly that key, and it verifies.
//!
//! The text is then parsed, every line first ([`ConfigParser`]: the core parses no
//! configuration syntax; the driver injects rntp-config's parser with
//! [`Node::set_config_parser`]), so a bad line changes nothing; then the lines are applied in
//! order through the same path as `rntpctl add` / `rntpctl remove`:
//!
//! | line | effect |
//! |---|---|
//! | `server ...`, `pool ...`, `manycastclient ...` | [`Command::Add`] |
//! | `unpeer NAME`, `unpeer ADDRESS` | [`Command::Remove`]: the source and all its associations (a pool's members too, unlike ntpd) |
//! | `unpeer ID` | the source of the association with that ntpq association ID |
//!
//! The answer is `Config Succeeded` (what ntpq prints on success) or the first error, as
//! `column N syntax error: ...` for a parse error (ntpq underlines column N) or a plain message
//! otherwise; it is signed with the control key, as ntpd signs answers to authenticated
//! requests.

use std::net::IpAddr;

use super::{Command, ConfiguredSource, Node, NodeEvent};
use crate::auth::{AuthError, KeyId};
use crate::mode6::{ControlRepr, ErrorCode, Replies, ReplyBudget};
use crate::server::RestrictFlags;
use crate::time::Instant;

/// What ntpq expects on success.
pub const CONFIG_SUCCEEDED: &str = "Config Succeeded";
/// Longest `:config` text read (ntpq sends at most one datagram's data: 468 octets).
const MAX_LINES: usize = 32;

/// One parsed line of a `:config` request.
#[derive(Debug, Clone, PartialEq)]
pub enum RemoteCommand {
    /// `server`, `pool`, `manycastclient`: add this source.
    Add(ConfiguredSource),
    /// `unpeer NAME|ADDRESS`: remove the source with this name or address.
    Remove(String),
    /// `unpeer ID`: remove the source of the association with this ntpq association ID.
    RemoveAssociation(u16),
}

/// Why a `:config` line did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteConfigError {
    /// 1-based column of the offending word, if one is to blame.
    pub column: Option<usize>,
    /// What is wrong, for the administrator.
    pub message: String,
}

/// Parses `:config` lines; implemented outside the core (rntp-config), injected with
/// [`Node::set_config_parser`].
pub trait ConfigParser {
    /// Parses one non-empty line. `origin` names where it came from for messages and the
    /// source's origin (`ntpq :config from 127.0.0.1`).
    fn parse_line(&self, line: &str, origin: &str) -> Result<RemoteCommand, RemoteConfigError>;
}

/// How a mode 6 request authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ControlAuth {
    /// No MAC.
    None,
    /// A valid MAC of this trusted key.
    Ok(KeyId),
    /// A MAC that does not verify, or of an unknown or untrusted key.
    Failed(AuthError),
}

impl Node {
    /// Sets the parser for `:config` text. Without one, `:config` is refused.
    pub fn set_config_parser(&mut self, parser: Box<dyn ConfigParser + Send>) {
        self.control.parser = Some(parser);
    }

    /// Verifies a mode 6 request's MAC, if it has one, against the trusted keys.
    pub(super) fn control_auth(&self, request: &[u8]) -> ControlAuth {
        let Ok(repr) = ControlRepr::parse(request) else { return ControlAuth::None };
        let Some(mac) = repr.mac() else { return ControlAuth::None };
        let id = KeyId(mac.key_id);
        let signed_len = request.len() - crate::auth::KEY_ID_LEN - mac.digest.len();
        let signed = request.get(..signed_len).unwrap_or_default();
        match self.keys().trusted_key(id) {
            Err(e) => ControlAuth::Failed(e),
            Ok(key) if key.verify(signed, mac.digest) => ControlAuth::Ok(id),
            Ok(_) => ControlAuth::Failed(AuthError::BadMac(id)),
        }
    }

    /// Answers a CONFIGURE request (see the module docs).
    pub(super) fn remote_config(
        &mut self,
        now: Instant,
        client: IpAddr,
        request: &[u8],
        auth: ControlAuth,
        budget: ReplyBudget,
    ) -> Replies {
        let leap = self.system.leap;
        let text = ControlRepr::parse(request)
            .map(|r| String::from_utf8_lossy(r.data).into_owned())
            .unwrap_or_default();
        // ntpq (and ntpd's putdata) may leave a NUL at the end.
        let text = text.trim_end_matches('\0').to_string();
        if let Err(reason) = self.config_allowed(client, auth) {
            *self.control.counters.config_refused.entry(reason).or_default() += 1;
            self.push_event(NodeEvent::RemoteConfig {
                client,
                text,
                outcome: Err(format!("refused: {}", refusal_text(reason))),
            });
            return Replies::error(request, leap, ErrorCode::Permission, budget);
        }
        let origin = format!("ntpq :config from {client}");
        let answer = self.apply_config(now, &text, &origin);
        match &answer {
            Ok(_) => self.control.counters.config_accepted += 1,
            Err((reason, _)) => {
                *self.control.counters.config_refused.entry(reason).or_default() += 1;
            }
        }
        let body = match &answer {
            Ok(_) => CONFIG_SUCCEEDED.to_string(),
            Err((_, message)) => message.clone(),
        };
        self.push_event(NodeEvent::RemoteConfig {
            client,
            text,
            outcome: answer.map_err(|(_, m)| m),
        });
        Replies::text(request, leap, body.into_bytes(), budget)
    }

    /// The access checks; `Err` names the refusal counter.
    fn config_allowed(&self, client: IpAddr, auth: ControlAuth) -> Result<(), &'static str> {
        if self.responder.restrictions(client).contains(RestrictFlags::NOMODIFY) {
            return Err("nomodify");
        }
        let Some(control) = self.control.control_key else { return Err("no_controlkey") };
        match auth {
            ControlAuth::None => Err("unauthenticated"),
            ControlAuth::Failed(e) => Err(e.counter_name()),
            ControlAuth::Ok(id) if id != control => Err("wrong_key"),
            ControlAuth::Ok(_) => Ok(()),
        }
    }

    /// Parses every line, then applies them in order. `Ok` with what was done; `Err` with the
    /// counter name and the message for ntpq.
    fn apply_config(
        &mut self,
        now: Instant,
        text: &str,
        origin: &str,
    ) -> Result<String, (&'static str, String)> {
        let Some(parser) = self.control.parser.as_ref() else {
            return Err((
                "no_parser",
                "remote configuration is not available in this rntpd".to_string(),
            ));
        };
        let lines: Vec<&str> =
            text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
        if lines.is_empty() {
            return Err(("parse_error", "column 1 syntax error: empty configuration".into()));
        }
        if lines.len() > MAX_LINES {
            return Err((
                "parse_error",
                format!("too many lines ({}); send at most {MAX_LINES} at once", lines.len()),
            ));
        }
        let mut commands = Vec::with_capacity(lines.len());
        for line in &lines {
            match parser.parse_line(line, origin) {
                Ok(c) => commands.push(c),
                Err(e) => {
                    let message = match e.column {
                        Some(col) => format!("column {col} syntax error: {}", e.message),
                        None => e.message,
                    };
                    return Err(("parse_error", message));
                }
            }
        }
        let mut done = Vec::new();
        for (command, line) in commands.into_iter().zip(&lines) {
            let command = match command {
                RemoteCommand::Add(source) => Command::Add(source),
                RemoteCommand::Remove(name) => Command::Remove(name),
                RemoteCommand::RemoveAssociation(id) => match self.source_of_control_id(id) {
                    Some(name) => Command::Remove(name),
                    None => {
                        return Err((
                            "command_failed",
                            format!("`{line}`: no association with ID {id} (see `ntpq -c as`)"),
                        ))
                    }
                },
            };
            if let Err(e) = self.handle_command(now, command) {
                let message = if done.is_empty() {
                    format!("`{line}`: {e}")
                } else {
                    format!("`{line}`: {e} (applied before it: {})", done.join("; "))
                };
                return Err(("command_failed", message));
            }
            done.push(format!("`{line}`"));
        }
        Ok(done.join("; "))
    }
}

/// What the administrator reads in the log for a refusal.
fn refusal_text(reason: &str) -> &'static str {
    match reason {
        "nomodify" => "the client's `restrict` line has `nomodify`",
        "no_controlkey" => "no `controlkey` is configured",
        "unauthenticated" => "the request is not signed (use ntpq -k KEYFILE -a CONTROLKEY)",
        "wrong_key" => "the request is signed with another key than `controlkey`",
        "auth_unknown_key" => "the request is signed with a key that is not in the key file",
        "auth_untrusted_key" => "the request is signed with a key not listed by `trustedkey`",
        "auth_bad_mac" => "the request's MAC does not verify (the key's secret differs)",
        _ => "authentication failed",
    }
}
