//! The node's symmetric keys: which keys exist and are trusted, the control key for `:config`,
//! and how they are used on the client side.
//!
//! * Client: a source with `key N` signs every request with key N ([`Node::poll_transmit`])
//!   and uses only replies that carry a valid MAC with that same key
//!   ([`KeyStore::check_reply`], before the association sees the packet: a forged reply cannot
//!   even consume the request's nonce). A reply without MAC, with another key, with a bad
//!   digest, or a crypto-NAK is dropped and counted by reason (`auth_missing`,
//!   `auth_wrong_key`, `auth_bad_mac`, `auth_crypto_nak`, ...) in the client counters and the
//!   association's drops, and reported as [`NodeEvent::AuthFailed`]. A crypto-NAK is never
//!   acted on beyond that (it is not authenticated itself). If the key is no longer usable
//!   (a reload removed or untrusted it), the request is not sent at all: a keyed source is
//!   never polled without its key.
//! * Server: the responder verifies requests with the same store (see [`crate::server`]).
//! * Mode 6: `:config` needs a request signed with the control key (see `node/remote.rs`).
//!
//! [`Node::set_keys`] replaces all of it at once (a reload with a new key file); nothing else
//! keeps a copy of the keys.

use std::net::SocketAddr;

use super::{Node, NodeEvent};
use crate::assoc::AssocId;
use crate::auth::{AuthError, KeyId, KeyStore};

/// The keys a node uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthConfig {
    /// The keys of the key file (`keys FILE`), with `trustedkey` applied.
    pub keys: KeyStore,
    /// `controlkey N`: the key `:config` requests must be signed with. `None`: remote
    /// configuration is refused.
    pub control_key: Option<KeyId>,
}

impl Node {
    /// Replaces the keys and the control key (at start, and on a reload that read a new key
    /// file: build the whole [`AuthConfig`] first and swap it in only if the file loaded).
    /// Sources whose key is no longer trusted stop sending (counted as `auth_key_unusable`)
    /// until it is again.
    pub fn set_keys(&mut self, auth: AuthConfig) {
        self.responder.set_keys(auth.keys);
        self.control.control_key = auth.control_key;
    }

    /// The key store in use.
    pub fn keys(&self) -> &KeyStore {
        self.responder.keys()
    }

    /// The server's counters (also in [`Node::status`] when serving).
    pub fn server_counters(&self) -> &crate::server::ServerCounters {
        self.responder.counters()
    }

    /// The manycast server's counters.
    pub fn manycast_server_counters(&self) -> &crate::server::ManycastServerCounters {
        self.responder.manycast_counters()
    }

    /// The control key (`controlkey`), if any.
    pub fn control_key(&self) -> Option<KeyId> {
        self.control.control_key
    }

    /// Appends the MAC of `key` to a request; `false` (and the failure counted and reported)
    /// when the key is not usable, in which case the request must not be sent.
    pub(super) fn sign_request(
        &mut self,
        key: KeyId,
        assoc: Option<AssocId>,
        source_name: &str,
        remote: SocketAddr,
        payload: &mut Vec<u8>,
    ) -> bool {
        match self.responder.keys().trusted_key(key) {
            Ok(k) => {
                k.append_mac(payload);
                true
            }
            Err(error) => {
                self.counters.drop("auth_key_unusable");
                self.counters.send_errors += 1;
                self.push_event(NodeEvent::AuthFailed {
                    assoc,
                    source_name: source_name.to_string(),
                    remote,
                    error,
                    outgoing: true,
                });
                false
            }
        }
    }

    /// Checks a reply to a request signed with `key`; `Err` has been counted by the caller.
    pub(super) fn check_keyed_reply(&self, key: KeyId, bytes: &[u8]) -> Result<(), AuthError> {
        self.responder.keys().check_reply(key, bytes)
    }
}
