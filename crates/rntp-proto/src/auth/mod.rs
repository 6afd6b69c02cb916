//! Symmetric-key authentication of NTP packets: the RFC 5905 MAC with MD5 or SHA-1 keys and
//! the RFC 8573 AES-128-CMAC, computed byte for byte as ntpd, NTPsec and chrony compute them.
//!
//! The building blocks, in the order a packet meets them:
//!
//! * [`Key`]: a key id, a [`Digest`] and the secret (zeroed on drop, never printed).
//! * [`KeyStore`]: the keys read from the key file plus the set of *trusted* key ids
//!   (`trustedkey`). Only trusted keys authenticate anything.
//! * [`Key::append_mac`] / [`Key::mac`]: the MAC a sender appends, over everything before it
//!   (the 48-byte header and any extension fields).
//! * [`MacTrailer`] / [`SignedPacket`]: a checked view of what ends a received packet: no MAC,
//!   a crypto-NAK, or a key id with a 16- or 20-byte digest, plus the bytes the MAC covers.
//! * [`KeyStore::check_reply`] (client) and [`KeyStore::check_request`] (server): the
//!   verdicts, with constant-time digest comparison.
//!
//! ```text
//!  client                                   server
//!  req = header; key.append_mac(&mut req)   store.check_request(req) ->
//!                 ───────────────────────►    Unauthenticated   -> reply without MAC
//!                                             Authenticated(id) -> store.get(id).append_mac(reply)
//!                                             Failed(e)         -> append_crypto_nak(reply) or drop
//!  store.check_reply(id, reply) -> Ok(()) | Err(AuthError::CryptoNak | BadMac | ...) -> drop, count
//! ```
//!
//! It deliberately does **not** read key files (that is `rntp-config`'s `keys` module), decide
//! which sources or clients must authenticate (configuration and the node do), or keep
//! counters. Nothing here reads a clock or a socket.
//!
//! # How the MAC is computed
//! * MD5 and SHA-1: `digest(secret || packet)`, 16 and 20 bytes. This is the RFC 5905 §7.3
//!   construction (not HMAC). The secret is used at whatever length the key file gave it.
//! * AES-128-CMAC (RFC 8573): CMAC (RFC 4493) with the 16-byte secret as the AES key over the
//!   packet, 16 bytes.
//!
//! On the wire the MAC is the 4-byte big-endian key id followed by the digest.

mod trailer;

use core::fmt;
use std::collections::{BTreeMap, BTreeSet};

use aes::Aes128;
use cmac::digest::KeyInit;
use cmac::{Cmac, Mac as _};
use md5::{Digest as _, Md5};
use sha1::Sha1;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

pub use trailer::{MacTrailer, SignedPacket, KEY_ID_LEN};

use crate::wire::WireError;

/// A symmetric key's identifier, as carried in the first 4 bytes of a MAC.
///
/// Key id 0 is reserved: with no digest it is the crypto-NAK, and no [`Key`] has it.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct KeyId(pub u32);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The algorithm a key computes its MAC with.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[non_exhaustive]
pub enum Digest {
    /// `MD5(secret || packet)`, 16 bytes (RFC 5905; deprecated by RFC 8573, kept for
    /// interoperability).
    Md5,
    /// `SHA1(secret || packet)`, 20 bytes.
    Sha1,
    /// AES-128-CMAC keyed with the 16-byte secret, 16 bytes (RFC 8573).
    Aes128Cmac,
}

/// Type names that NTPsec or chrony accept in a key file but rntpd does not implement, with
/// what they are. Compared after upper-casing.
const UNSUPPORTED_DIGESTS: &[(&str, &str)] = &[
    ("SHA224", "SHA-224"),
    ("SHA-224", "SHA-224"),
    ("SHA256", "SHA-256"),
    ("SHA-256", "SHA-256"),
    ("SHA384", "SHA-384"),
    ("SHA-384", "SHA-384"),
    ("SHA512", "SHA-512"),
    ("SHA-512", "SHA-512"),
    ("SHA512-224", "SHA-512/224"),
    ("SHA512-256", "SHA-512/256"),
    ("SHA3-224", "SHA3-224"),
    ("SHA3-256", "SHA3-256"),
    ("SHA3-384", "SHA3-384"),
    ("SHA3-512", "SHA3-512"),
    ("RIPEMD160", "RIPEMD-160"),
    ("RIPEMD-160", "RIPEMD-160"),
    ("RMD160", "RIPEMD-160"),
    ("TIGER", "Tiger"),
    ("WHIRLPOOL", "Whirlpool"),
    ("SM3", "SM3"),
    ("BLAKE2B512", "BLAKE2b-512"),
    ("BLAKE2S256", "BLAKE2s-256"),
    ("MD4", "MD4"),
    ("MDC2", "MDC-2"),
    ("AES-192", "AES-192-CMAC"),
    ("AES192", "AES-192-CMAC"),
    ("AES-256", "AES-256-CMAC"),
    ("AES256", "AES-256-CMAC"),
];

/// A key type name rntpd does not accept.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DigestNameError {
    /// A type NTPsec or chrony accepts (an OpenSSL digest or cipher name) that rntpd does not
    /// implement.
    #[error(
        "key type `{}` ({algorithm}) is not supported by rntpd; expected MD5, SHA1 or \
         AES128CMAC (AES128CMAC is the one RFC 8573 recommends)",
        name.escape_debug()
    )]
    Unsupported {
        /// The name as written.
        name: String,
        /// The algorithm it names.
        algorithm: &'static str,
    },
    /// A name no NTP implementation we know accepts.
    #[error(
        "unknown key type `{}`; expected MD5, SHA1 or AES128CMAC (also accepted: M, SHA-1, AES, \
         AES-128, AES128)",
        name.escape_debug()
    )]
    Unknown {
        /// The name as written.
        name: String,
    },
}

impl Digest {
    /// Every digest, for tests and exhaustive tables.
    pub const ALL: [Digest; 3] = [Digest::Md5, Digest::Sha1, Digest::Aes128Cmac];

    /// Parses a key type as written in an ntp.keys(5) or chrony key file, case-insensitively:
    ///
    /// | written | means | accepted by |
    /// |---|---|---|
    /// | `MD5`, `M` | [`Digest::Md5`] | ntpd, NTPsec, chrony (`M`: ntpd/NTPsec legacy) |
    /// | `SHA1`, `SHA-1` | [`Digest::Sha1`] | ntpd, NTPsec (OpenSSL names), chrony (`SHA1`) |
    /// | `AES128CMAC`, `AES`, `AES-128`, `AES128` | [`Digest::Aes128Cmac`] | ntpd (`AES128CMAC`), NTPsec (all four), chrony (`AES128`) |
    ///
    /// Other OpenSSL digest and cipher names that NTPsec or chrony accept (SHA-2, SHA-3,
    /// RIPEMD-160, AES-256, ...) are [`DigestNameError::Unsupported`]; anything else is
    /// [`DigestNameError::Unknown`]. Unlike NTPsec, an unknown name starting with `M` is not
    /// taken as MD5.
    pub fn from_name(name: &str) -> Result<Digest, DigestNameError> {
        let upper = name.to_ascii_uppercase();
        match upper.as_str() {
            "MD5" | "M" => Ok(Digest::Md5),
            "SHA1" | "SHA-1" => Ok(Digest::Sha1),
            "AES128CMAC" | "AES" | "AES-128" | "AES128" => Ok(Digest::Aes128Cmac),
            other => match UNSUPPORTED_DIGESTS.iter().find(|(n, _)| *n == other) {
                Some((_, algorithm)) => {
                    Err(DigestNameError::Unsupported { name: name.to_owned(), algorithm })
                }
                None => Err(DigestNameError::Unknown { name: name.to_owned() }),
            },
        }
    }

    /// The canonical name, as ntpd writes it in a key file.
    pub const fn name(self) -> &'static str {
        match self {
            Digest::Md5 => "MD5",
            Digest::Sha1 => "SHA1",
            Digest::Aes128Cmac => "AES128CMAC",
        }
    }

    /// Length of the digest part of the MAC (after the key id).
    pub const fn mac_len(self) -> usize {
        match self {
            Digest::Md5 | Digest::Aes128Cmac => 16,
            Digest::Sha1 => 20,
        }
    }

    /// The secret length the algorithm requires, if it requires one (AES-128: 16 bytes).
    pub const fn required_secret_len(self) -> Option<usize> {
        match self {
            Digest::Aes128Cmac => Some(AES128_KEY_LEN),
            Digest::Md5 | Digest::Sha1 => None,
        }
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// AES-128 key length.
const AES128_KEY_LEN: usize = 16;

/// The longest secret a [`Key`] holds. ntpd and NTPsec stop at 32 bytes (64 hex digits);
/// chrony's `ASCII:`/`HEX:` keys may be longer, so we allow some room without letting a
/// corrupt file make keys of arbitrary size.
pub const MAX_SECRET_LEN: usize = 64;

/// Longest digest any [`Digest`] produces.
pub const MAX_MAC_LEN: usize = 20;

/// Why [`Key::new`] refused a key.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Key id 0 is reserved (a bare key id 0 is the crypto-NAK).
    #[error("key id 0 is reserved; expected 1 to 4294967295")]
    ZeroId,
    /// An empty secret.
    #[error("the key is empty")]
    EmptySecret,
    /// A secret longer than [`MAX_SECRET_LEN`].
    #[error("the key is {len} bytes long; expected at most {max}")]
    SecretTooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The algorithm needs a secret of exactly this length (AES-128-CMAC: 16 bytes).
    #[error("{digest} keys must be exactly {required} bytes, found {len}")]
    WrongSecretLength {
        /// The algorithm.
        digest: Digest,
        /// Its key length.
        required: usize,
        /// The length given.
        len: usize,
    },
}

/// A MAC's digest part, as computed by [`Key::mac`].
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct MacValue {
    bytes: [u8; MAX_MAC_LEN],
    len: u8,
}

impl MacValue {
    fn new(digest: &[u8]) -> Self {
        let mut bytes = [0u8; MAX_MAC_LEN];
        let len = digest.len().min(MAX_MAC_LEN);
        bytes[..len].copy_from_slice(&digest[..len]);
        // `len` is at most MAX_MAC_LEN (20), which fits a u8.
        MacValue { bytes, len: len as u8 }
    }

    /// The digest bytes: 16 or 20 of them.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl AsRef<[u8]> for MacValue {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl fmt::Debug for MacValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MacValue(")?;
        for b in self.as_bytes() {
            write!(f, "{b:02x}")?;
        }
        f.write_str(")")
    }
}

/// One symmetric key: id, algorithm and secret.
///
/// The secret is zeroed when the key is dropped and never shown by `Debug`. Equality compares
/// secrets in constant time.
#[derive(Clone)]
pub struct Key {
    id: KeyId,
    digest: Digest,
    secret: Zeroizing<Vec<u8>>,
}

impl Key {
    /// A key, checked: id not 0, secret 1 to [`MAX_SECRET_LEN`] bytes, and exactly 16 bytes
    /// for AES-128-CMAC. (ntpd and NTPsec pad or truncate a CMAC key of another length, with
    /// a log line; chrony refuses it, and so do we.)
    pub fn new(id: KeyId, digest: Digest, secret: &[u8]) -> Result<Key, KeyError> {
        if id.0 == 0 {
            return Err(KeyError::ZeroId);
        }
        if secret.is_empty() {
            return Err(KeyError::EmptySecret);
        }
        if secret.len() > MAX_SECRET_LEN {
            return Err(KeyError::SecretTooLong { len: secret.len(), max: MAX_SECRET_LEN });
        }
        if let Some(required) = digest.required_secret_len() {
            if secret.len() != required {
                return Err(KeyError::WrongSecretLength { digest, required, len: secret.len() });
            }
        }
        // Exact capacity, so that the secret is never reallocated (which would leave an
        // unzeroed copy behind).
        let mut owned = Zeroizing::new(Vec::with_capacity(secret.len()));
        owned.extend_from_slice(secret);
        Ok(Key { id, digest, secret: owned })
    }

    /// The key id.
    pub const fn id(&self) -> KeyId {
        self.id
    }

    /// The algorithm.
    pub const fn digest(&self) -> Digest {
        self.digest
    }

    /// Length of the secret in bytes (for "key too short" advice; the secret itself is not
    /// exposed).
    pub fn secret_len(&self) -> usize {
        self.secret.len()
    }

    /// The digest part of the MAC over `signed` (the packet's header and extension fields).
    pub fn mac(&self, signed: &[u8]) -> MacValue {
        match self.digest {
            Digest::Md5 => {
                let mut h = Md5::new();
                h.update(self.secret.as_slice());
                h.update(signed);
                MacValue::new(&h.finalize())
            }
            Digest::Sha1 => {
                let mut h = Sha1::new();
                h.update(self.secret.as_slice());
                h.update(signed);
                MacValue::new(&h.finalize())
            }
            Digest::Aes128Cmac => {
                // Key::new admits AES-128-CMAC keys of exactly 16 bytes only, which is the one
                // length new_from_slice accepts for AES-128.
                let mut m = <Cmac<Aes128> as KeyInit>::new_from_slice(&self.secret)
                    .expect("AES-128-CMAC keys are 16 bytes by construction");
                m.update(signed);
                MacValue::new(&m.finalize().into_bytes())
            }
        }
    }

    /// Whether `digest` is this key's MAC over `signed`. The comparison takes the same time
    /// wherever the first differing byte is (a digest of the wrong length fails at once; the
    /// length is not secret).
    pub fn verify(&self, signed: &[u8], digest: &[u8]) -> bool {
        let expected = self.mac(signed);
        digest.len() == expected.as_bytes().len() && bool::from(expected.as_bytes().ct_eq(digest))
    }

    /// Appends the MAC (key id, then digest) over everything already in `packet`.
    pub fn append_mac(&self, packet: &mut Vec<u8>) {
        let mac = self.mac(packet);
        packet.extend_from_slice(&self.id.0.to_be_bytes());
        packet.extend_from_slice(mac.as_bytes());
    }

    /// Writes the MAC over `buf[..signed_len]` right after it, for drivers with fixed
    /// buffers, and returns the total packet length.
    pub fn write_mac(&self, buf: &mut [u8], signed_len: usize) -> Result<usize, WireError> {
        let total = signed_len + KEY_ID_LEN + self.digest.mac_len();
        let got = buf.len();
        let out = buf.get_mut(..total).ok_or(WireError::BufferTooSmall { needed: total, got })?;
        let (signed, mac_out) = out.split_at_mut(signed_len);
        let mac = self.mac(signed);
        mac_out[..KEY_ID_LEN].copy_from_slice(&self.id.0.to_be_bytes());
        mac_out[KEY_ID_LEN..].copy_from_slice(mac.as_bytes());
        Ok(total)
    }

    /// Bytes [`append_mac`](Self::append_mac) adds: key id plus digest.
    pub const fn mac_wire_len(&self) -> usize {
        KEY_ID_LEN + self.digest.mac_len()
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("id", &self.id)
            .field("digest", &self.digest)
            .field("secret", &format_args!("<{} bytes, redacted>", self.secret.len()))
            .finish()
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
            && self.digest == other.digest
            && self.secret.len() == other.secret.len()
            && bool::from(self.secret.as_slice().ct_eq(other.secret.as_slice()))
    }
}

impl Eq for Key {}

/// The crypto-NAK: a MAC trailer of a bare key id 0.
pub const CRYPTO_NAK: [u8; KEY_ID_LEN] = [0; KEY_ID_LEN];

/// Appends a crypto-NAK to a reply, telling the client its request could not be
/// authenticated.
pub fn append_crypto_nak(packet: &mut Vec<u8>) {
    packet.extend_from_slice(&CRYPTO_NAK);
}

/// Why a packet did not authenticate. Every variant is a reason to drop the packet (and, on
/// a server, possibly to answer with a crypto-NAK); [`counter_name`](Self::counter_name) names
/// the counter to bump.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The trailer is malformed (see [`MacTrailer::parse`]).
    #[error("malformed MAC trailer: {0}")]
    Malformed(WireError),
    /// No MAC where one is required (a reply to an authenticated request).
    #[error("no MAC (expected one with key {expected})")]
    Missing {
        /// The key the request was signed with.
        expected: KeyId,
    },
    /// A crypto-NAK: the server could not authenticate our request (it does not have the key,
    /// or its copy differs). In a request it means nothing and is refused the same way.
    #[error("crypto-NAK: the peer could not authenticate the request")]
    CryptoNak,
    /// A MAC with a key id that is not in the key file.
    #[error("unknown key {0}")]
    UnknownKey(KeyId),
    /// A MAC with a key that is in the key file but not trusted (`trustedkey`).
    #[error("key {0} is not trusted (not listed by trustedkey)")]
    UntrustedKey(KeyId),
    /// A reply signed with another key than the request.
    #[error("reply signed with key {got}, expected key {expected}")]
    WrongKey {
        /// The key the request was signed with.
        expected: KeyId,
        /// The key the reply names.
        got: KeyId,
    },
    /// The digest does not match (wrong secret, or a modified packet).
    #[error("MAC with key {0} does not verify")]
    BadMac(KeyId),
}

impl AuthError {
    /// Every counter name [`counter_name`](Self::counter_name) can return, in a stable order.
    pub const COUNTER_NAMES: &'static [&'static str] = &[
        "auth_malformed",
        "auth_missing",
        "auth_crypto_nak",
        "auth_unknown_key",
        "auth_untrusted_key",
        "auth_wrong_key",
        "auth_bad_mac",
    ];

    /// A stable snake_case name for per-reason drop counters.
    pub const fn counter_name(&self) -> &'static str {
        match self {
            AuthError::Malformed(_) => "auth_malformed",
            AuthError::Missing { .. } => "auth_missing",
            AuthError::CryptoNak => "auth_crypto_nak",
            AuthError::UnknownKey(_) => "auth_unknown_key",
            AuthError::UntrustedKey(_) => "auth_untrusted_key",
            AuthError::WrongKey { .. } => "auth_wrong_key",
            AuthError::BadMac(_) => "auth_bad_mac",
        }
    }
}

/// What a server should do about a request's authentication ([`KeyStore::check_request`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RequestAuth {
    /// The request has no MAC: answer without one (unless policy demands authentication).
    Unauthenticated,
    /// The request verified with this trusted key: sign the reply with the same key.
    Authenticated(KeyId),
    /// The request carries a MAC that does not authenticate, or a crypto-NAK. RFC 5905 (and
    /// ntpd 4.2.8) answer a failed MAC with a crypto-NAK ([`append_crypto_nak`]); NTPsec 1.2.2
    /// and chrony 4.3 send nothing. Never answer a crypto-NAK with one.
    Failed(AuthError),
}

/// The keys from the key file and which of them are trusted.
///
/// A key authenticates only when it is both present and trusted, as in ntpd (`keys` +
/// `trustedkey`). chrony has no `trustedkey`: to mimic it, trust every key
/// ([`trust_all`](Self::trust_all)). Replace the whole store on reload.
#[derive(Clone, Default, Debug, PartialEq, Eq)]
pub struct KeyStore {
    keys: BTreeMap<KeyId, Key>,
    trusted: BTreeSet<KeyId>,
}

impl KeyStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a key, returning the one it replaces (same id), if any. Does not change trust.
    pub fn insert(&mut self, key: Key) -> Option<Key> {
        self.keys.insert(key.id, key)
    }

    /// The key with this id, trusted or not.
    pub fn get(&self, id: KeyId) -> Option<&Key> {
        self.keys.get(&id)
    }

    /// Marks a key id as trusted. It may be trusted before (or without) being loaded; it
    /// authenticates only once a key with that id is present.
    pub fn trust(&mut self, id: KeyId) {
        self.trusted.insert(id);
    }

    /// Marks every loaded key as trusted (chrony's behaviour).
    pub fn trust_all(&mut self) {
        self.trusted.extend(self.keys.keys().copied());
    }

    /// Whether `id` is trusted.
    pub fn is_trusted(&self, id: KeyId) -> bool {
        self.trusted.contains(&id)
    }

    /// Trusted ids that have no key loaded, for a configuration warning.
    pub fn trusted_without_key(&self) -> impl Iterator<Item = KeyId> + '_ {
        self.trusted.iter().copied().filter(|id| !self.keys.contains_key(id))
    }

    /// Number of keys loaded.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is loaded.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The loaded keys, by id.
    pub fn keys(&self) -> impl Iterator<Item = &Key> {
        self.keys.values()
    }

    /// The key for signing or verifying with `id`: present and trusted.
    pub fn trusted_key(&self, id: KeyId) -> Result<&Key, AuthError> {
        let key = self.keys.get(&id).ok_or(AuthError::UnknownKey(id))?;
        if !self.is_trusted(id) {
            return Err(AuthError::UntrustedKey(id));
        }
        Ok(key)
    }

    /// Client side: checks a reply to a request that was signed with key `sent`.
    ///
    /// `Ok(())` only for a MAC with exactly that key (still present and trusted) that
    /// verifies over the reply's header and extension fields. A crypto-NAK is
    /// [`AuthError::CryptoNak`]: recognise it (count it, tell the administrator the server
    /// lacks the key) but never let it change any state beyond that, since it is not
    /// authenticated.
    pub fn check_reply(&self, sent: KeyId, packet: &[u8]) -> Result<(), AuthError> {
        let split = SignedPacket::split(packet).map_err(AuthError::Malformed)?;
        match split.trailer {
            MacTrailer::None => Err(AuthError::Missing { expected: sent }),
            MacTrailer::CryptoNak => Err(AuthError::CryptoNak),
            MacTrailer::Mac { key_id, digest } => {
                if key_id != sent {
                    return Err(AuthError::WrongKey { expected: sent, got: key_id });
                }
                let key = self.trusted_key(key_id)?;
                if key.verify(split.signed, digest) {
                    Ok(())
                } else {
                    Err(AuthError::BadMac(key_id))
                }
            }
        }
    }

    /// Server side: checks a client's request. See [`RequestAuth`] for what to answer.
    pub fn check_request(&self, packet: &[u8]) -> RequestAuth {
        let split = match SignedPacket::split(packet) {
            Ok(split) => split,
            Err(e) => return RequestAuth::Failed(AuthError::Malformed(e)),
        };
        match split.trailer {
            MacTrailer::None => RequestAuth::Unauthenticated,
            MacTrailer::CryptoNak => RequestAuth::Failed(AuthError::CryptoNak),
            MacTrailer::Mac { key_id, digest } => match self.trusted_key(key_id) {
                Err(e) => RequestAuth::Failed(e),
                Ok(key) if key.verify(split.signed, digest) => RequestAuth::Authenticated(key_id),
                Ok(_) => RequestAuth::Failed(AuthError::BadMac(key_id)),
            },
        }
    }
}

impl FromIterator<Key> for KeyStore {
    /// A store of these keys (a later key replaces an earlier one with the same id), none
    /// trusted.
    fn from_iter<I: IntoIterator<Item = Key>>(iter: I) -> Self {
        let mut store = KeyStore::new();
        for key in iter {
            store.insert(key);
        }
        store
    }
}

#[cfg(test)]
mod tests;
