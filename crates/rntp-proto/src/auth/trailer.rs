//! Finding the MAC at the end of a packet: a checked view that tells "no MAC", a crypto-NAK and a
//! MAC apart, and splits off the bytes the MAC covers.
//!
//! The rule is RFC 7822 §7.5, the one [`wire`](crate::wire) applies too: neither a MAC nor an
//! extension field carries a marker, so what remains after the header (and after each extension
//! field) is read as a MAC exactly when it is 4 (crypto-NAK), 20 (key id + 16-byte digest: MD5
//! or AES-128-CMAC) or 24 (key id + 20-byte digest: SHA-1) bytes long; anything else longer than
//! that must start with an extension field. Versions 1–3 have no extension fields, so there the
//! whole remainder must be a MAC of one of those lengths.
//!
//! The walk itself is the wire layer's ([`walk_trailer`]): the packet parser, the server and
//! the MAC check share it, so they cannot disagree about where a MAC starts.

use crate::wire::{walk_trailer, Packet, WireError};

use super::KeyId;

/// Length of the key identifier that starts every MAC.
pub const KEY_ID_LEN: usize = 4;
/// The NTP header every trailer follows.
const HEADER_LEN: usize = 48;
/// The first NTP version with extension fields.
const EXTENSIONS_VERSION: u8 = 4;

/// What ends an NTP packet, after the header and any extension fields.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum MacTrailer<'a> {
    /// No MAC: an unauthenticated packet.
    None,
    /// A crypto-NAK: a bare key id of 0 (4 zero bytes). A server sends it when it could not
    /// authenticate the request; it authenticates nothing itself.
    CryptoNak,
    /// A MAC: key id (never 0) and a 16- or 20-byte digest.
    Mac {
        /// The key the sender claims to have used.
        key_id: KeyId,
        /// The digest, 16 bytes (MD5, AES-128-CMAC) or 20 bytes (SHA-1).
        digest: &'a [u8],
    },
}

impl<'a> MacTrailer<'a> {
    /// Finds the MAC in `after_header`, the bytes of a packet after its 48-byte header, for a
    /// packet of NTP version `version`.
    ///
    /// Extension fields (version 4 only) are skipped by their length fields, at most
    /// [`MAX_EXTENSIONS`](crate::wire::MAX_EXTENSIONS) of them; their contents are not looked at. Fails with the same
    /// [`WireError`] as [`PacketRepr::parse`](crate::wire::PacketRepr::parse) would for the
    /// same bytes (offsets counted from the start of the packet): bytes that are neither an
    /// extension field nor a MAC ([`WireError::TrailingData`]), malformed or truncated
    /// extension fields, too many of them, or a 4-byte trailer with a non-zero key id
    /// ([`WireError::BadCryptoNak`]).
    pub fn parse(after_header: &'a [u8], version: u8) -> Result<Self, WireError> {
        let allow_extensions = version >= EXTENSIONS_VERSION;
        let layout = walk_trailer(after_header, HEADER_LEN, allow_extensions, |_| {})?;
        Ok(match layout.mac {
            None => MacTrailer::None,
            Some(mac) if mac.is_crypto_nak() => MacTrailer::CryptoNak,
            // Key id 0 with a digest is not a crypto-NAK (that is exactly 4 bytes), and no key
            // has id 0, so it is returned as a MAC that no key will verify.
            Some(mac) => MacTrailer::Mac { key_id: KeyId(mac.key_id), digest: mac.digest },
        })
    }

    /// Bytes this trailer occupies at the end of the packet.
    pub const fn wire_len(&self) -> usize {
        match self {
            MacTrailer::None => 0,
            MacTrailer::CryptoNak => KEY_ID_LEN,
            MacTrailer::Mac { digest, .. } => KEY_ID_LEN + digest.len(),
        }
    }
}

/// A received packet split into the bytes a MAC covers and its [`MacTrailer`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SignedPacket<'a> {
    /// The header and any extension fields: what the sender's MAC was computed over.
    pub signed: &'a [u8],
    /// What follows them.
    pub trailer: MacTrailer<'a>,
}

impl<'a> SignedPacket<'a> {
    /// Splits a whole UDP payload. The version (for the extension-field rule) is read from the
    /// header; the mode and the rest of the header are not checked here.
    pub fn split(packet: &'a [u8]) -> Result<Self, WireError> {
        let view = Packet::new_checked(packet)?;
        let after_header = packet.get(HEADER_LEN..).unwrap_or_default();
        let trailer = MacTrailer::parse(after_header, view.version())?;
        // The trailer is a suffix of `packet`, so this never underflows.
        let signed_len = packet.len() - trailer.wire_len();
        Ok(SignedPacket { signed: &packet[..signed_len], trailer })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::MAX_EXTENSIONS;

    fn header(version: u8) -> Vec<u8> {
        let mut h = vec![0u8; HEADER_LEN];
        h[0] = (version << 3) | 3;
        h
    }

    fn ext(length: u16) -> Vec<u8> {
        let mut v = vec![0x01, 0x04];
        v.extend_from_slice(&length.to_be_bytes());
        v.resize(usize::from(length), 0xEE);
        v
    }

    #[test]
    fn none_nak_and_macs() {
        assert_eq!(MacTrailer::parse(&[], 4), Ok(MacTrailer::None));
        assert_eq!(MacTrailer::parse(&[0; 4], 3), Ok(MacTrailer::CryptoNak));
        assert_eq!(
            MacTrailer::parse(&[0, 0, 1, 0], 4),
            Err(WireError::BadCryptoNak { key_id: 256 })
        );
        for digest_len in [16, 20] {
            let mut t = vec![0, 0, 0, 9];
            t.resize(4 + digest_len, 0xAB);
            let parsed = MacTrailer::parse(&t, 4).expect("mac");
            assert_eq!(parsed, MacTrailer::Mac { key_id: KeyId(9), digest: &t[4..] });
            assert_eq!(parsed.wire_len(), t.len());
        }
    }

    #[test]
    fn other_lengths_are_refused() {
        // Version 3: no extension fields, so only 0, 4, 20 and 24 bytes are acceptable.
        for len in [1, 3, 5, 16, 19, 21, 23, 25, 28, 36, 68] {
            assert_eq!(
                MacTrailer::parse(&vec![0; len], 3),
                Err(WireError::TrailingData { offset: 48, len }),
                "v3 trailer of {len} bytes"
            );
        }
        // Version 4: too short for an extension field.
        for len in [1, 2, 3, 5, 8, 12, 15] {
            assert_eq!(
                MacTrailer::parse(&vec![0; len], 4),
                Err(WireError::TrailingData { offset: 48, len })
            );
        }
    }

    #[test]
    fn extensions_are_skipped() {
        let mut t = ext(16);
        t.extend_from_slice(&ext(28));
        t.extend_from_slice(&[0, 0, 0, 5]);
        t.extend_from_slice(&[0x77; 20]);
        let trailer = MacTrailer::parse(&t, 4).expect("two fields and a SHA-1 MAC");
        assert_eq!(trailer, MacTrailer::Mac { key_id: KeyId(5), digest: &[0x77; 20] });

        // An extension field followed by a crypto-NAK.
        let mut t = ext(28);
        t.extend_from_slice(&[0; 4]);
        assert_eq!(MacTrailer::parse(&t, 4), Ok(MacTrailer::CryptoNak));

        // A lone extension field without MAC.
        assert_eq!(MacTrailer::parse(&ext(28), 4), Ok(MacTrailer::None));
    }

    #[test]
    fn bad_extensions() {
        let mut t = ext(28);
        t[3] = 30;
        assert_eq!(
            MacTrailer::parse(&t, 4),
            Err(WireError::BadExtensionLength { offset: 48, length: 30 })
        );
        t[3] = 64;
        assert_eq!(
            MacTrailer::parse(&t, 4),
            Err(WireError::TruncatedExtension { offset: 48, length: 64, available: 28 })
        );
        let many: Vec<u8> = ext(16).into_iter().cycle().take(16 * (MAX_EXTENSIONS + 1)).collect();
        assert_eq!(
            MacTrailer::parse(&many, 4),
            Err(WireError::TooManyExtensions { max: MAX_EXTENSIONS })
        );
    }

    #[test]
    fn split_covers_header_and_extensions() {
        let mut p = header(4);
        p.extend_from_slice(&ext(16));
        let signed_len = p.len();
        p.extend_from_slice(&[0, 0, 0, 1]);
        p.extend_from_slice(&[0x11; 16]);
        let split = SignedPacket::split(&p).expect("split");
        assert_eq!(split.signed, &p[..signed_len]);
        assert_eq!(split.trailer, MacTrailer::Mac { key_id: KeyId(1), digest: &[0x11; 16] });

        assert_eq!(SignedPacket::split(&p[..47]), Err(WireError::TooShort { needed: 48, got: 47 }));
        let bare = header(2);
        let split = SignedPacket::split(&bare).expect("bare header");
        assert_eq!((split.signed.len(), split.trailer), (48, MacTrailer::None));
    }
}
