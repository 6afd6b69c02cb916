//! What follows the 48-byte header: NTPv4 extension fields (RFC 7822) and the legacy
//! symmetric-key MAC (RFC 5905 §7.3).
//!
//! This module splits the trailer into borrowed [`ExtensionField`]s and an optional [`Mac`],
//! checking every length against the buffer, and writes them back out.
//!
//! It deliberately does **not** interpret extension field contents (NTS, autokey, ...) nor
//! verify a MAC: both are just bounds-checked byte slices here. Authentication lives in
//! [`crate::auth`], where the keys are.
//!
//! There is exactly one walk of the trailer, [`walk_trailer`]: it allocates nothing and is what
//! the packet parser, the server's hot path and the MAC check all use, so they cannot disagree
//! about where a MAC starts.
//!
//! # Telling a MAC from an extension field
//! Neither carries a marker, so RFC 7822 §7.5 disambiguates by length: if exactly 4, 20 or 24
//! bytes remain, they are a MAC (crypto-NAK, key id + MD5, key id + SHA-1); anything else must
//! start with an extension field. The consequence for senders is that no extension field may
//! start where exactly 4, 20 or 24 bytes remain (a final 20-byte field without a MAC, a 16-byte
//! field before a crypto-NAK, ...), or receivers will read it as a MAC; [`check_trailer`]
//! refuses to emit such a packet.

use super::WireError;

/// The largest number of extension fields [`PacketRepr::parse`](super::PacketRepr::parse)
/// accepts. Real packets carry a handful (NTS uses four to six); the bound keeps a hostile
/// packet from making us do unbounded work or allocation.
pub const MAX_EXTENSIONS: usize = 16;

/// Length of an extension field header: type (u16) + length (u16).
const EXT_HEADER_LEN: usize = 4;
/// RFC 7822 §3: the length field, which counts the header, is at least 16.
const EXT_MIN_LEN: usize = 0x10;
/// RFC 7822 §3: extension fields are padded to a multiple of 4 bytes.
const EXT_ALIGN: usize = 4;
/// The length field is a u16 and counts the header too.
const EXT_MAX_LEN: usize = 0xFFFC;

/// Byte offsets inside an extension field.
mod field {
    use core::ops::Range;

    /// Field type.
    pub const TYPE: Range<usize> = 0..2;
    /// Total length including this 4-byte header and padding.
    pub const LENGTH: Range<usize> = 2..4;
}

/// Length of a MAC's key identifier.
const KEY_ID_LEN: usize = 4;
/// An MD5 digest (RFC 5905 §7.3).
const MD5_DIGEST_LEN: usize = 0x10;
/// A SHA-1 digest, as ntpd and chrony send for `SHA1` keys.
const SHA1_DIGEST_LEN: usize = 0x14;
/// Remaining lengths that RFC 7822 §7.5 reads as a MAC: crypto-NAK, MD5, SHA-1.
const MAC_LENS: [usize; 3] =
    [KEY_ID_LEN, KEY_ID_LEN + MD5_DIGEST_LEN, KEY_ID_LEN + SHA1_DIGEST_LEN];

/// One NTPv4 extension field (RFC 7822), borrowed from the packet buffer.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct ExtensionField<'a> {
    /// The field type.
    pub field_type: u16,
    /// Everything after the 4-byte field header, *including* any padding: the wire has no
    /// separate value length, so the padding cannot be told apart from the value here. Its
    /// length is a multiple of 4 and at least 12.
    pub value: &'a [u8],
}

impl ExtensionField<'_> {
    /// Bytes this field occupies on the wire (header + value).
    pub const fn wire_len(&self) -> usize {
        EXT_HEADER_LEN + self.value.len()
    }

    /// Checks the length rules of RFC 7822 §3 for a field about to be written at `offset`.
    fn check_len(&self, offset: usize) -> Result<(), WireError> {
        let length = self.wire_len();
        if length < EXT_MIN_LEN || !length.is_multiple_of(EXT_ALIGN) || length > EXT_MAX_LEN {
            return Err(WireError::BadExtensionLength { offset, length });
        }
        Ok(())
    }
}

/// A symmetric-key message authentication code (RFC 5905 §7.3), borrowed from the buffer.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Mac<'a> {
    /// The key identifier. Zero with an empty digest is a crypto-NAK.
    pub key_id: u32,
    /// The digest: 16 bytes (MD5 or AES-128-CMAC), 20 bytes (SHA-1), or empty for a
    /// crypto-NAK.
    pub digest: &'a [u8],
}

impl Mac<'_> {
    /// Whether this is a crypto-NAK: a bare key id of zero, which a server sends when it could
    /// not authenticate the request.
    pub const fn is_crypto_nak(&self) -> bool {
        self.key_id == 0 && self.digest.is_empty()
    }

    /// Bytes this MAC occupies on the wire (key id + digest).
    pub const fn wire_len(&self) -> usize {
        KEY_ID_LEN + self.digest.len()
    }

    /// Parses a MAC that is exactly `bytes` (whose length is one of [`MAC_LENS`]).
    fn parse(bytes: &[u8]) -> Result<Mac<'_>, WireError> {
        let (key_id, digest) = bytes
            .split_first_chunk::<KEY_ID_LEN>()
            .ok_or(WireError::TooShort { needed: KEY_ID_LEN, got: bytes.len() })?;
        let mac = Mac { key_id: u32::from_be_bytes(*key_id), digest };
        mac.check()?;
        Ok(mac)
    }

    /// A MAC we can parse back: a known digest length, and a bare key id only as crypto-NAK.
    fn check(&self) -> Result<(), WireError> {
        match self.digest.len() {
            // A 4-byte MAC is only meaningful as a crypto-NAK; anything else is a mangled packet.
            0 if self.key_id != 0 => Err(WireError::BadCryptoNak { key_id: self.key_id }),
            0 | MD5_DIGEST_LEN | SHA1_DIGEST_LEN => Ok(()),
            len => Err(WireError::BadMacLength { len }),
        }
    }
}

/// Whether `remaining` trailer bytes are, by RFC 7822 §7.5, a MAC rather than an extension.
const fn is_mac_len(remaining: usize) -> bool {
    remaining == MAC_LENS[0] || remaining == MAC_LENS[1] || remaining == MAC_LENS[2]
}

/// The parsed trailer: extension fields in order, then the MAC if any.
pub(super) type Trailer<'a> = (Vec<ExtensionField<'a>>, Option<Mac<'a>>);

/// Where the pieces of a trailer are, from [`walk_trailer`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct TrailerLayout<'a> {
    /// Extension fields, in order (at most [`MAX_EXTENSIONS`]).
    pub extensions: usize,
    /// Bytes the extension fields take: a MAC, if any, starts this far into the trailer.
    pub extensions_len: usize,
    /// The MAC (or crypto-NAK) that ends the packet, if any.
    pub mac: Option<Mac<'a>>,
}

/// Walks the bytes after the header once, without allocating: every extension field is
/// checked and handed to `visit`, then the MAC (RFC 7822 §7.5 length rule) is parsed. `offset`
/// is where `bytes` starts in the packet (for error reports); `allow_extensions` is false for
/// versions 1–3, which only know the MAC.
pub fn walk_trailer<'a>(
    bytes: &'a [u8],
    offset: usize,
    allow_extensions: bool,
    mut visit: impl FnMut(ExtensionField<'a>),
) -> Result<TrailerLayout<'a>, WireError> {
    let mut rest = bytes;
    let mut layout = TrailerLayout { extensions: 0, extensions_len: 0, mac: None };
    loop {
        let pos = offset + layout.extensions_len;
        if rest.is_empty() {
            return Ok(layout);
        }
        if is_mac_len(rest.len()) {
            layout.mac = Some(Mac::parse(rest)?);
            return Ok(layout);
        }
        // Too little left for even the smallest extension field (or extensions not allowed at
        // all): nothing legitimate can be here.
        if !allow_extensions || rest.len() < EXT_MIN_LEN {
            return Err(WireError::TrailingData { offset: pos, len: rest.len() });
        }
        if layout.extensions == MAX_EXTENSIONS {
            return Err(WireError::TooManyExtensions { max: MAX_EXTENSIONS });
        }
        let (field, tail) = parse_extension(rest, pos)?;
        layout.extensions += 1;
        layout.extensions_len += field.wire_len();
        visit(field);
        rest = tail;
    }
}

/// Splits the bytes after the header into extension fields and the MAC (see [`walk_trailer`]).
pub(super) fn parse_trailer(
    bytes: &[u8],
    offset: usize,
    allow_extensions: bool,
) -> Result<Trailer<'_>, WireError> {
    let mut extensions = Vec::new();
    let layout = walk_trailer(bytes, offset, allow_extensions, |f| extensions.push(f))?;
    Ok((extensions, layout.mac))
}

/// Parses one extension field at the start of `bytes` (at packet offset `offset`), returning it
/// and what follows.
fn parse_extension(bytes: &[u8], offset: usize) -> Result<(ExtensionField<'_>, &[u8]), WireError> {
    let header = bytes
        .first_chunk::<EXT_HEADER_LEN>()
        .ok_or(WireError::TrailingData { offset, len: bytes.len() })?;
    let field_type = read_u16(header, field::TYPE);
    let length = usize::from(read_u16(header, field::LENGTH));
    if length < EXT_MIN_LEN || length % EXT_ALIGN != 0 {
        return Err(WireError::BadExtensionLength { offset, length });
    }
    if length > bytes.len() {
        return Err(WireError::TruncatedExtension { offset, length, available: bytes.len() });
    }
    let (whole, tail) = bytes.split_at(length);
    let value = whole.get(EXT_HEADER_LEN..).unwrap_or_default();
    Ok((ExtensionField { field_type, value }, tail))
}

/// The big-endian u16 at `range` (two bytes long) of `bytes`; 0 if out of bounds, which the
/// callers rule out by reading from a fixed-size header.
fn read_u16(bytes: &[u8], range: core::ops::Range<usize>) -> u16 {
    bytes.get(range).and_then(|s| s.try_into().ok()).map_or(0, u16::from_be_bytes)
}

/// Bytes [`emit_trailer`] will write.
pub(super) fn trailer_len(extensions: &[ExtensionField<'_>], mac: Option<&Mac<'_>>) -> usize {
    extensions.iter().map(ExtensionField::wire_len).sum::<usize>() + mac.map_or(0, Mac::wire_len)
}

/// Checks that the trailer would parse back to exactly itself.
pub(super) fn check_trailer(
    extensions: &[ExtensionField<'_>],
    mac: Option<&Mac<'_>>,
    offset: usize,
    allow_extensions: bool,
    version: u8,
) -> Result<(), WireError> {
    if !allow_extensions && !extensions.is_empty() {
        return Err(WireError::ExtensionsNotAllowed { version });
    }
    if extensions.len() > MAX_EXTENSIONS {
        return Err(WireError::TooManyExtensions { max: MAX_EXTENSIONS });
    }
    let mut pos = offset;
    for ext in extensions {
        ext.check_len(pos)?;
        pos += ext.wire_len();
    }
    if let Some(mac) = mac {
        mac.check()?;
    }
    // A receiver reads a MAC wherever exactly 4, 20 or 24 bytes remain, so no extension field
    // may start at such a point: not only a lone final 20-byte field, but also, say, a 16-byte
    // field followed by a crypto-NAK.
    let mut remaining = trailer_len(extensions, mac);
    let mut start = offset;
    for ext in extensions {
        if is_mac_len(remaining) {
            return Err(WireError::AmbiguousExtension { offset: start, length: ext.wire_len() });
        }
        remaining -= ext.wire_len();
        start += ext.wire_len();
    }
    Ok(())
}

/// Writes the trailer into `buf`, which the caller has sized with [`trailer_len`] and checked
/// with [`check_trailer`].
pub(super) fn emit_trailer(
    extensions: &[ExtensionField<'_>],
    mac: Option<&Mac<'_>>,
    buf: &mut [u8],
) -> Result<(), WireError> {
    let too_small = |needed: usize, got: usize| WireError::BufferTooSmall { needed, got };
    let total = buf.len();
    let mut rest = buf;
    for ext in extensions {
        let len = ext.wire_len();
        // check_trailer bounded the length by EXT_MAX_LEN, so it fits the u16 field.
        let len16 = u16::try_from(len).map_err(|_| WireError::BadExtensionLength {
            offset: total - rest.len(),
            length: len,
        })?;
        let got = rest.len();
        let (out, tail) = rest.split_at_mut_checked(len).ok_or(too_small(len, got))?;
        out[field::TYPE].copy_from_slice(&ext.field_type.to_be_bytes());
        out[field::LENGTH].copy_from_slice(&len16.to_be_bytes());
        out[EXT_HEADER_LEN..].copy_from_slice(ext.value);
        rest = tail;
    }
    if let Some(mac) = mac {
        let got = rest.len();
        let out = rest.get_mut(..mac.wire_len()).ok_or(too_small(mac.wire_len(), got))?;
        out[..KEY_ID_LEN].copy_from_slice(&mac.key_id.to_be_bytes());
        out[KEY_ID_LEN..].copy_from_slice(mac.digest);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext_bytes(field_type: u16, length: u16, value_len: usize) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&field_type.to_be_bytes());
        v.extend_from_slice(&length.to_be_bytes());
        v.extend(core::iter::repeat_n(0xAB, value_len));
        v
    }

    #[test]
    fn mac_lengths_are_macs() {
        for (len, digest) in [(20, 16), (24, 20)] {
            let mut bytes = vec![0, 0, 0, 7];
            bytes.extend(core::iter::repeat_n(0x5A, digest));
            assert_eq!(len, bytes.len());
            let (exts, mac) = parse_trailer(&bytes, 48, true).expect("mac");
            assert!(exts.is_empty());
            let mac = mac.expect("some mac");
            assert_eq!(mac.key_id, 7);
            assert_eq!(mac.digest.len(), digest);
            assert!(!mac.is_crypto_nak());
        }
    }

    #[test]
    fn crypto_nak() {
        let (_, mac) = parse_trailer(&[0, 0, 0, 0], 48, false).expect("nak");
        assert!(mac.expect("some").is_crypto_nak());
        assert_eq!(
            parse_trailer(&[0, 0, 0, 9], 48, false),
            Err(WireError::BadCryptoNak { key_id: 9 })
        );
    }

    #[test]
    fn extension_then_mac() {
        let mut bytes = ext_bytes(0x0104, 0x1C, 0x18);
        bytes.extend_from_slice(&[0, 0, 0, 1]);
        bytes.extend(core::iter::repeat_n(0x11, 16));
        let (exts, mac) = parse_trailer(&bytes, 48, true).expect("parse");
        assert_eq!(exts.len(), 1);
        assert_eq!(exts[0].field_type, 0x0104);
        assert_eq!(exts[0].value.len(), 0x18);
        assert_eq!(mac.expect("mac").key_id, 1);
    }

    #[test]
    fn extension_length_rules() {
        // Below the RFC 7822 minimum of 16.
        let bytes = ext_bytes(1, 12, 24);
        assert_eq!(
            parse_trailer(&bytes, 48, true),
            Err(WireError::BadExtensionLength { offset: 48, length: 12 })
        );
        // Not a multiple of 4.
        let bytes = ext_bytes(1, 17, 24);
        assert_eq!(
            parse_trailer(&bytes, 48, true),
            Err(WireError::BadExtensionLength { offset: 48, length: 17 })
        );
        // Runs past the buffer.
        let bytes = ext_bytes(1, 64, 24);
        assert_eq!(
            parse_trailer(&bytes, 48, true),
            Err(WireError::TruncatedExtension { offset: 48, length: 64, available: 28 })
        );
    }

    #[test]
    fn short_leftovers_are_trailing_data() {
        for len in [1, 2, 3, 5, 8, 12, 15] {
            let bytes = vec![0; len];
            assert_eq!(
                parse_trailer(&bytes, 48, true),
                Err(WireError::TrailingData { offset: 48, len })
            );
        }
        // A second field whose remains are too short to be anything.
        let mut bytes = ext_bytes(1, 16, 12);
        bytes.extend_from_slice(&[0; 12]);
        assert_eq!(
            parse_trailer(&bytes, 48, true),
            Err(WireError::TrailingData { offset: 64, len: 12 })
        );
        // Whereas 16 + 8 = 24 bytes are, by length, a SHA-1 MAC.
        let mut bytes = ext_bytes(1, 16, 12);
        bytes.extend_from_slice(&[0; 8]);
        assert!(matches!(parse_trailer(&bytes, 48, true), Ok((ref e, Some(_))) if e.is_empty()));
    }

    #[test]
    fn extension_count_is_bounded() {
        let one = ext_bytes(2, 16, 12);
        let ok: Vec<u8> = one.iter().copied().cycle().take(16 * MAX_EXTENSIONS).collect();
        assert_eq!(parse_trailer(&ok, 48, true).expect("16 fields").0.len(), MAX_EXTENSIONS);
        let too_many: Vec<u8> =
            one.iter().copied().cycle().take(16 * (MAX_EXTENSIONS + 1)).collect();
        assert_eq!(
            parse_trailer(&too_many, 48, true),
            Err(WireError::TooManyExtensions { max: MAX_EXTENSIONS })
        );
    }

    #[test]
    fn emit_refuses_what_would_not_parse_back() {
        let value = [0u8; 16];
        // 4 + 16 = 20 bytes, last, no MAC: a receiver would read it as a MAC.
        let ambiguous = [ExtensionField { field_type: 1, value: &value }];
        assert_eq!(
            check_trailer(&ambiguous, None, 48, true, 4),
            Err(WireError::AmbiguousExtension { offset: 48, length: 20 })
        );
        // Followed by a MAC it is fine.
        let mac = Mac { key_id: 1, digest: &[0; 16] };
        assert_eq!(check_trailer(&ambiguous, Some(&mac), 48, true, 4), Ok(()));
        // A 16-byte field and a crypto-NAK make 20 bytes: a receiver sees one MD5 MAC.
        let nak = Mac { key_id: 0, digest: &[] };
        let short = [ExtensionField { field_type: 1, value: &value[..12] }];
        assert_eq!(
            check_trailer(&short, Some(&nak), 48, true, 4),
            Err(WireError::AmbiguousExtension { offset: 48, length: 16 })
        );
        // Two fields: only the second starts 20 bytes before the end.
        let two = [ExtensionField { field_type: 1, value: &value[..12] }, ambiguous[0]];
        assert_eq!(
            check_trailer(&two, None, 48, true, 4),
            Err(WireError::AmbiguousExtension { offset: 64, length: 20 })
        );
        // Value not padded to a multiple of 4.
        let odd = [ExtensionField { field_type: 1, value: &value[..13] }];
        assert_eq!(
            check_trailer(&odd, None, 48, true, 4),
            Err(WireError::BadExtensionLength { offset: 48, length: 17 })
        );
        let bad_mac = Mac { key_id: 1, digest: &[0; 8] };
        assert_eq!(
            check_trailer(&[], Some(&bad_mac), 48, false, 3),
            Err(WireError::BadMacLength { len: 8 })
        );
        assert_eq!(
            check_trailer(&ambiguous, Some(&mac), 48, false, 3),
            Err(WireError::ExtensionsNotAllowed { version: 3 })
        );
    }

    #[test]
    fn emit_into_short_buffer() {
        let value = [0u8; 12];
        let exts = [ExtensionField { field_type: 1, value: &value }];
        let mut buf = [0u8; 10];
        assert_eq!(
            emit_trailer(&exts, None, &mut buf),
            Err(WireError::BufferTooSmall { needed: 16, got: 10 })
        );
        let mac = Mac { key_id: 0, digest: &[] };
        assert_eq!(
            emit_trailer(&[], Some(&mac), &mut buf[..2]),
            Err(WireError::BufferTooSmall { needed: 4, got: 2 })
        );
    }
}
