//! Kiss-o'-Death codes (RFC 5905 §7.4).
//!
//! A server that wants to tell a client something out of band sends a reply with stratum 0 and
//! a four-character ASCII "kiss code" in the reference ID field. This module maps the codes a
//! client must act on to a typed [`KissCode`] and back.
//!
//! It deliberately does **not** decide what to do about a kiss: demobilizing an association or
//! backing off its poll interval is the association's job, and a kiss must only be believed
//! after the reply passed the on-wire tests (an off-path attacker can forge one otherwise). The
//! check "stratum is 0" lives in [`NtpHeader::kiss_code`](super::NtpHeader::kiss_code).

use core::fmt;

use super::ReferenceId;

/// `DENY` in ASCII: access denied by the server.
const DENY: [u8; 4] = [0x44, 0x45, 0x4E, 0x59];
/// `RSTR` in ASCII: access restricted by the server.
const RSTR: [u8; 4] = [0x52, 0x53, 0x54, 0x52];
/// `RATE` in ASCII: the client polls too often.
const RATE: [u8; 4] = [0x52, 0x41, 0x54, 0x45];

/// A kiss code from a Kiss-o'-Death packet (stratum 0), RFC 5905 §7.4.
///
/// Only the three codes that oblige a client to change its behaviour get their own variant;
/// everything else (`INIT`, `STEP`, `AUTH`, vendor codes, garbage) is [`KissCode::Other`] and
/// is informational at most.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum KissCode {
    /// `DENY`: the server denies access to this client. The client must demobilize the
    /// association and stop sending to that server.
    Deny,
    /// `RSTR`: the server restricts access (e.g. by its access-control list). The client must
    /// demobilize the association, as for [`KissCode::Deny`].
    Rstr,
    /// `RATE`: rate exceeded. The client must reduce its polling rate to that server (increase
    /// its poll interval) and keep the association.
    Rate,
    /// Any other code, kept verbatim. RFC 5905 gives these no mandatory client action.
    Other(ReferenceId),
}

impl KissCode {
    /// Interprets a reference ID as a kiss code. Callers should only do this for stratum-0
    /// packets; see [`NtpHeader::kiss_code`](super::NtpHeader::kiss_code).
    pub const fn from_reference_id(id: ReferenceId) -> Self {
        match id.to_bytes() {
            DENY => KissCode::Deny,
            RSTR => KissCode::Rstr,
            RATE => KissCode::Rate,
            _ => KissCode::Other(id),
        }
    }

    /// The reference ID that carries this code on the wire.
    pub const fn to_reference_id(self) -> ReferenceId {
        match self {
            KissCode::Deny => ReferenceId::from_bytes(DENY),
            KissCode::Rstr => ReferenceId::from_bytes(RSTR),
            KissCode::Rate => ReferenceId::from_bytes(RATE),
            KissCode::Other(id) => id,
        }
    }

    /// Whether RFC 5905 §7.4 requires the client to demobilize the association (`DENY`, `RSTR`).
    pub const fn requires_demobilize(self) -> bool {
        matches!(self, KissCode::Deny | KissCode::Rstr)
    }

    /// Whether RFC 5905 §7.4 requires the client to reduce its poll rate (`RATE`).
    pub const fn requires_rate_reduction(self) -> bool {
        matches!(self, KissCode::Rate)
    }
}

impl From<ReferenceId> for KissCode {
    fn from(id: ReferenceId) -> Self {
        KissCode::from_reference_id(id)
    }
}

impl From<KissCode> for ReferenceId {
    fn from(code: KissCode) -> Self {
        code.to_reference_id()
    }
}

impl fmt::Display for KissCode {
    /// The code as ASCII (`RATE`); a non-ASCII `Other` code falls back to the reference ID's
    /// own display.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.to_reference_id(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_codes_round_trip() {
        for (ascii, code) in
            [(*b"DENY", KissCode::Deny), (*b"RSTR", KissCode::Rstr), (*b"RATE", KissCode::Rate)]
        {
            let id = ReferenceId::from_bytes(ascii);
            assert_eq!(KissCode::from(id), code);
            assert_eq!(ReferenceId::from(code), id);
            assert_eq!(code.to_string(), core::str::from_utf8(&ascii).unwrap_or_default());
        }
    }

    #[test]
    fn other_codes_are_kept_verbatim() {
        let init = ReferenceId::from_bytes(*b"INIT");
        let code = KissCode::from(init);
        assert_eq!(code, KissCode::Other(init));
        assert_eq!(code.to_reference_id(), init);
        assert_eq!(code.to_string(), "INIT");
        assert!(!code.requires_demobilize());
        assert!(!code.requires_rate_reduction());
    }

    #[test]
    fn client_actions() {
        assert!(KissCode::Deny.requires_demobilize());
        assert!(KissCode::Rstr.requires_demobilize());
        assert!(!KissCode::Rate.requires_demobilize());
        assert!(KissCode::Rate.requires_rate_reduction());
        assert!(!KissCode::Deny.requires_rate_reduction());
    }
}
