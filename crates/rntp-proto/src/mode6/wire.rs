//! The mode 6 control message format (RFC 9327 §2), in the smoltcp style: a checked zero-copy
//! view ([`ControlPacket`]) and a parsed representation ([`ControlRepr`]) that borrows the data
//! and the trailer.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |LI |  VN |Mode=6|R|E|M| Opcode  |          Sequence             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |            Status             |        Association ID         |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |            Offset             |            Count              |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |          Data (Count octets, at most 468) ...  | zero padding |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |          optional trailer: key id + MAC (authenticated) ...   |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Parsing checks structure only: the length (12-byte header, `Count` data octets present,
//! total a multiple of 4 as RFC 9327 and both ntpd and ntpq require), the mode, the version
//! (1–4, as ntpd accepts) and `Count` ≤ [`MAX_DATA_LEN`]. Whatever follows the padded data is
//! the *trailer*: a MAC on authenticated requests ([`ControlRepr::mac`] finds it), or padding a
//! client added so that a larger answer fits the anti-amplification budget. Padding bytes are
//! not checked (ntpd does not either); [`ControlRepr::emit`] writes zeros.
//!
//! This module deliberately does **not** verify MACs (rntpd has no control keys), or interpret
//! opcodes beyond naming them: that is the responder's job.

use core::fmt;

use crate::wire::LeapIndicator;

/// Octets in the control message header.
pub const HEADER_LEN: usize = 12;
/// Most data octets in one datagram: ntpd's `CTL_MAX_DATA_LEN`, which every ntpq enforces.
pub const MAX_DATA_LEN: usize = 468;
/// The longest datagram the responder sends: a header and a full data field (no MAC).
pub const MAX_DATAGRAM_LEN: usize = HEADER_LEN + MAX_DATA_LEN;

/// Byte layout of the header (RFC 9327 §2).
mod field {
    use core::ops::Range;

    /// Leap indicator (2 bits), version (3 bits), mode (3 bits).
    pub const LI_VN_MODE: usize = 0;
    /// Response, error and more bits, opcode (5 bits).
    pub const R_E_M_OP: usize = 1;
    /// Sequence number, echoed in every fragment of the answer.
    pub const SEQUENCE: Range<usize> = 2..4;
    /// Status word: system, peer or clock status, or the error code in the high byte.
    pub const STATUS: Range<usize> = 4..6;
    /// Association ID; 0 means the system.
    pub const ASSOCIATION_ID: Range<usize> = 6..8;
    /// Offset of this fragment's data in the whole answer.
    pub const OFFSET: Range<usize> = 8..10;
    /// Data octets in this fragment.
    pub const COUNT: Range<usize> = 10..12;
}

/// The control mode.
const MODE_CONTROL: u8 = 0x06;
/// Oldest version ntpd answers (NTPsec's `NTP_OLDVERSION`); check_ntp_peer sends 2.
const MIN_VERSION: u8 = 0x01;
/// Newest version that exists.
const MAX_VERSION: u8 = 0x04;
/// Response bit.
const RESPONSE_BIT: u8 = 0x80;
/// Error bit.
const ERROR_BIT: u8 = 0x40;
/// More-fragments bit.
const MORE_BIT: u8 = 0x20;
/// Opcode mask.
const OPCODE_MASK: u8 = 0x1F;
/// Every datagram is padded to this.
const ALIGN: usize = 0x04;
/// Authenticated requests pad to this before the MAC (ntpq does).
const MAC_ALIGN: usize = 0x08;
/// Key id octets in a MAC.
const KEY_ID_LEN: usize = 0x04;
/// Digest lengths ntpq uses: MD5/AES-CMAC (16) and SHA-1 (20).
const DIGEST_LENS: [usize; 2] = [0x10, 0x14];

/// Why a datagram is not a well-formed control message, or cannot be emitted.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Mode6Error {
    /// Fewer octets than the 12-byte header (or than `Count` data octets need).
    #[error("control message too short: need {needed} bytes, got {got}")]
    TooShort {
        /// Octets required.
        needed: usize,
        /// Octets present.
        got: usize,
    },
    /// The mode is not 6.
    #[error("not a control message: mode {0}")]
    NotControl(u8),
    /// Version 0 or 5–7.
    #[error("unsupported control message version {0}")]
    UnsupportedVersion(u8),
    /// `Count` above [`MAX_DATA_LEN`] (468): no ntpd or ntpq produces it.
    #[error("control message data count {count} exceeds 468")]
    DataTooLong {
        /// The count claimed (or, when emitting, the data length).
        count: usize,
    },
    /// Length not a multiple of 4 (RFC 9327 pads every message to 32 bits; ntpd answers such
    /// a request with a format error). When emitting: a trailer whose length is not a
    /// multiple of 4.
    #[error("control message length {len} is not a multiple of 4")]
    Unaligned {
        /// The offending length.
        len: usize,
    },
    /// The output buffer cannot hold the message.
    #[error("buffer too small: need {needed} bytes, got {got}")]
    BufferTooSmall {
        /// Octets required.
        needed: usize,
        /// Octets available.
        got: usize,
    },
}

impl Mode6Error {
    /// Every counter name, for exporting a full set of zero counters.
    pub const COUNTER_NAMES: [&'static str; 6] = [
        "too_short",
        "not_control",
        "unsupported_version",
        "data_too_long",
        "unaligned",
        "buffer_too_small",
    ];

    /// A stable snake_case label for drop counters and logs; it never includes the variant's
    /// data.
    pub const fn counter_name(&self) -> &'static str {
        match self {
            Mode6Error::TooShort { .. } => "too_short",
            Mode6Error::NotControl(_) => "not_control",
            Mode6Error::UnsupportedVersion(_) => "unsupported_version",
            Mode6Error::DataTooLong { .. } => "data_too_long",
            Mode6Error::Unaligned { .. } => "unaligned",
            Mode6Error::BufferTooSmall { .. } => "buffer_too_small",
        }
    }
}

/// The operation a control message asks for (RFC 9327 §2, ntpd's `CTL_OP_*`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Opcode {
    /// 0: unspecified; ntpd answers with the status word and no data.
    Unspecified,
    /// 1: READSTAT, the association list (association 0) or one association's variables.
    ReadStatus,
    /// 2: READVAR, system (association 0) or peer variables.
    ReadVariables,
    /// 3: WRITEVAR (authenticated).
    WriteVariables,
    /// 4: READCLOCK, reference clock variables.
    ReadClock,
    /// 5: WRITECLOCK.
    WriteClock,
    /// 6: SETTRAP (obsolete).
    SetTrap,
    /// 7: ASYNCMSG, a trap message (obsolete).
    AsyncMessage,
    /// 8: CONFIGURE, runtime configuration (authenticated).
    Configure,
    /// 9: EXCONFIG, save the configuration (obsolete).
    SaveConfig,
    /// 10: READ_MRU, the most-recently-used client list (`ntpq -c mrulist`).
    ReadMru,
    /// 11: READ_ORDLIST_A, ifstats/reslist (authenticated).
    ReadOrderedList,
    /// 12: REQ_NONCE, the nonce READ_MRU must echo.
    RequestNonce,
    /// 31: UNSETTRAP (obsolete).
    UnsetTrap,
    /// Any other 5-bit value.
    Other(u8),
}

impl Opcode {
    /// From the 5-bit wire value; higher bits of `bits` are ignored.
    pub const fn from_bits(bits: u8) -> Self {
        match bits & OPCODE_MASK {
            0 => Opcode::Unspecified,
            1 => Opcode::ReadStatus,
            2 => Opcode::ReadVariables,
            3 => Opcode::WriteVariables,
            4 => Opcode::ReadClock,
            5 => Opcode::WriteClock,
            6 => Opcode::SetTrap,
            7 => Opcode::AsyncMessage,
            8 => Opcode::Configure,
            9 => Opcode::SaveConfig,
            10 => Opcode::ReadMru,
            11 => Opcode::ReadOrderedList,
            12 => Opcode::RequestNonce,
            31 => Opcode::UnsetTrap,
            other => Opcode::Other(other),
        }
    }

    /// The 5-bit wire value (an `Other` value is masked to 5 bits).
    pub const fn to_bits(self) -> u8 {
        match self {
            Opcode::Unspecified => 0,
            Opcode::ReadStatus => 1,
            Opcode::ReadVariables => 2,
            Opcode::WriteVariables => 3,
            Opcode::ReadClock => 4,
            Opcode::WriteClock => 5,
            Opcode::SetTrap => 6,
            Opcode::AsyncMessage => 7,
            Opcode::Configure => 8,
            Opcode::SaveConfig => 9,
            Opcode::ReadMru => 10,
            Opcode::ReadOrderedList => 11,
            Opcode::RequestNonce => 12,
            Opcode::UnsetTrap => 31,
            Opcode::Other(bits) => bits & OPCODE_MASK,
        }
    }
}

/// The error codes of an error response, carried in the high byte of its status word
/// (ntpd's `CERR_*`, RFC 9327 §2).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum ErrorCode {
    /// 0: unspecified.
    Unspecified,
    /// 1: permission denied: authentication required, or (NTPsec's `CERR_NORESOURCE`) no
    /// resources for the answer. ntpq: `***Server error code PERMISSION`.
    Permission,
    /// 2: the request is malformed.
    BadFormat,
    /// 3: unknown or unimplemented opcode.
    BadOpcode,
    /// 4: no such association.
    BadAssociation,
    /// 5: a requested variable name is unknown.
    UnknownVariable,
    /// 6: a request value is bad.
    BadValue,
    /// 7: administratively prohibited.
    Restricted,
    /// Any other code.
    Other(u8),
}

impl ErrorCode {
    /// From the code byte.
    pub const fn from_code(code: u8) -> Self {
        match code {
            0 => ErrorCode::Unspecified,
            1 => ErrorCode::Permission,
            2 => ErrorCode::BadFormat,
            3 => ErrorCode::BadOpcode,
            4 => ErrorCode::BadAssociation,
            5 => ErrorCode::UnknownVariable,
            6 => ErrorCode::BadValue,
            7 => ErrorCode::Restricted,
            other => ErrorCode::Other(other),
        }
    }

    /// The code byte.
    pub const fn code(self) -> u8 {
        match self {
            ErrorCode::Unspecified => 0,
            ErrorCode::Permission => 1,
            ErrorCode::BadFormat => 2,
            ErrorCode::BadOpcode => 3,
            ErrorCode::BadAssociation => 4,
            ErrorCode::UnknownVariable => 5,
            ErrorCode::BadValue => 6,
            ErrorCode::Restricted => 7,
            ErrorCode::Other(code) => code,
        }
    }

    /// The status word of an error response: the code in the high byte.
    pub const fn status_word(self) -> u16 {
        (self.code() as u16) << 8
    }

    /// The code from an error response's status word.
    pub const fn from_status_word(status: u16) -> Self {
        ErrorCode::from_code((status >> 8) as u8)
    }
}

impl fmt::Display for ErrorCode {
    /// ntpq's names (`PERMISSION`, `BADFMT`, ...).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorCode::Unspecified => f.write_str("UNSPEC"),
            ErrorCode::Permission => f.write_str("PERMISSION"),
            ErrorCode::BadFormat => f.write_str("BADFMT"),
            ErrorCode::BadOpcode => f.write_str("BADOP"),
            ErrorCode::BadAssociation => f.write_str("BADASSOC"),
            ErrorCode::UnknownVariable => f.write_str("UNKNOWNVAR"),
            ErrorCode::BadValue => f.write_str("BADVALUE"),
            ErrorCode::Restricted => f.write_str("RESTRICT"),
            ErrorCode::Other(code) => write!(f, "code {code}"),
        }
    }
}

/// A zero-copy view of a control message. [`ControlPacket::new_checked`] guarantees the
/// 12-byte header, after which the header accessors cannot fail; the data and trailer
/// accessors clamp to the buffer, so they never panic either.
#[derive(Clone, Copy, Debug)]
pub struct ControlPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ControlPacket<T> {
    /// Wraps a buffer of at least [`HEADER_LEN`] octets.
    pub fn new_checked(buffer: T) -> Result<Self, Mode6Error> {
        let got = buffer.as_ref().len();
        if got < HEADER_LEN {
            return Err(Mode6Error::TooShort { needed: HEADER_LEN, got });
        }
        Ok(ControlPacket { buffer })
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    fn u16_at(&self, range: core::ops::Range<usize>) -> u16 {
        let b = &self.bytes()[range];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// Leap indicator (of the server, in responses).
    pub fn leap(&self) -> LeapIndicator {
        LeapIndicator::from_bits(self.bytes()[field::LI_VN_MODE] >> 6)
    }

    /// Version number (3 bits).
    pub fn version(&self) -> u8 {
        (self.bytes()[field::LI_VN_MODE] >> 3) & 0x07
    }

    /// Mode (3 bits); 6 for control messages.
    pub fn mode(&self) -> u8 {
        self.bytes()[field::LI_VN_MODE] & 0x07
    }

    /// R: set in responses.
    pub fn is_response(&self) -> bool {
        self.bytes()[field::R_E_M_OP] & RESPONSE_BIT != 0
    }

    /// E: set in error responses.
    pub fn is_error(&self) -> bool {
        self.bytes()[field::R_E_M_OP] & ERROR_BIT != 0
    }

    /// M: more fragments follow.
    pub fn has_more(&self) -> bool {
        self.bytes()[field::R_E_M_OP] & MORE_BIT != 0
    }

    /// The opcode.
    pub fn opcode(&self) -> Opcode {
        Opcode::from_bits(self.bytes()[field::R_E_M_OP])
    }

    /// Sequence number.
    pub fn sequence(&self) -> u16 {
        self.u16_at(field::SEQUENCE)
    }

    /// Status word.
    pub fn status(&self) -> u16 {
        self.u16_at(field::STATUS)
    }

    /// Association ID.
    pub fn association_id(&self) -> u16 {
        self.u16_at(field::ASSOCIATION_ID)
    }

    /// Offset of this fragment's data in the whole answer.
    pub fn offset(&self) -> u16 {
        self.u16_at(field::OFFSET)
    }

    /// Data octets claimed.
    pub fn count(&self) -> u16 {
        self.u16_at(field::COUNT)
    }

    /// The data, clamped to the buffer (a truncated datagram gives what is there).
    pub fn data(&self) -> &[u8] {
        let bytes = self.bytes();
        let end = HEADER_LEN.saturating_add(usize::from(self.count())).min(bytes.len());
        &bytes[HEADER_LEN..end]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ControlPacket<T> {
    fn set_u16(&mut self, range: core::ops::Range<usize>, value: u16) {
        self.buffer.as_mut()[range].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets leap indicator, version and mode 6.
    pub fn set_li_vn(&mut self, leap: LeapIndicator, version: u8) {
        self.buffer.as_mut()[field::LI_VN_MODE] =
            (leap.to_bits() << 6) | ((version & 0x07) << 3) | MODE_CONTROL;
    }

    /// Sets the R, E and M bits and the opcode.
    pub fn set_flags_opcode(&mut self, response: bool, error: bool, more: bool, opcode: Opcode) {
        let mut byte = opcode.to_bits();
        if response {
            byte |= RESPONSE_BIT;
        }
        if error {
            byte |= ERROR_BIT;
        }
        if more {
            byte |= MORE_BIT;
        }
        self.buffer.as_mut()[field::R_E_M_OP] = byte;
    }

    /// Sets the sequence number.
    pub fn set_sequence(&mut self, value: u16) {
        self.set_u16(field::SEQUENCE, value);
    }

    /// Sets the status word.
    pub fn set_status(&mut self, value: u16) {
        self.set_u16(field::STATUS, value);
    }

    /// Sets the association ID.
    pub fn set_association_id(&mut self, value: u16) {
        self.set_u16(field::ASSOCIATION_ID, value);
    }

    /// Sets the fragment offset.
    pub fn set_offset(&mut self, value: u16) {
        self.set_u16(field::OFFSET, value);
    }

    /// Sets the data count.
    pub fn set_count(&mut self, value: u16) {
        self.set_u16(field::COUNT, value);
    }
}

/// The header fields of a control message, as plain data.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct ControlHeader {
    /// Leap indicator: the server's in responses, 0 in requests.
    pub leap: LeapIndicator,
    /// Version, 1–4; responses echo the request's.
    pub version: u8,
    /// R bit.
    pub response: bool,
    /// E bit.
    pub error: bool,
    /// M bit.
    pub more: bool,
    /// Opcode.
    pub opcode: Opcode,
    /// Sequence number.
    pub sequence: u16,
    /// Status word.
    pub status: u16,
    /// Association ID (0: the system).
    pub association_id: u16,
    /// Offset of this fragment's data in the whole answer; 0 in requests.
    pub offset: u16,
}

/// A parsed control message; `Count` is the data's length.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct ControlRepr<'a> {
    /// The header.
    pub header: ControlHeader,
    /// The data: `Count` octets (variable names in requests, `name=value` text or binary
    /// association/status pairs in responses).
    pub data: &'a [u8],
    /// Octets after the data's padding: a MAC ([`ControlRepr::mac`]) or client padding. Its
    /// length is a multiple of 4.
    pub trailer: &'a [u8],
}

/// A MAC found in a trailer: key id and digest. Not verified.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct MacTrailer<'a> {
    /// Key id.
    pub key_id: u32,
    /// Digest (16 or 20 octets).
    pub digest: &'a [u8],
}

/// `len` rounded up to a multiple of `align` (a power of two).
const fn round_up(len: usize, align: usize) -> usize {
    (len + align - 1) & !(align - 1)
}

impl<'a> ControlRepr<'a> {
    /// Parses a control message (request or response); see the module documentation for what
    /// is checked.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, Mode6Error> {
        let packet = ControlPacket::new_checked(bytes)?;
        if packet.mode() != MODE_CONTROL {
            return Err(Mode6Error::NotControl(packet.mode()));
        }
        let version = packet.version();
        if !(MIN_VERSION..=MAX_VERSION).contains(&version) {
            return Err(Mode6Error::UnsupportedVersion(version));
        }
        let count = usize::from(packet.count());
        if count > MAX_DATA_LEN {
            return Err(Mode6Error::DataTooLong { count });
        }
        let data_end = HEADER_LEN + count;
        if bytes.len() < data_end {
            return Err(Mode6Error::TooShort { needed: data_end, got: bytes.len() });
        }
        if !bytes.len().is_multiple_of(ALIGN) {
            return Err(Mode6Error::Unaligned { len: bytes.len() });
        }
        // The length is a multiple of 4 and at least `data_end`, so it covers the padding.
        let padded_end = round_up(data_end, ALIGN);
        Ok(ControlRepr {
            header: ControlHeader {
                leap: packet.leap(),
                version,
                response: packet.is_response(),
                error: packet.is_error(),
                more: packet.has_more(),
                opcode: packet.opcode(),
                sequence: packet.sequence(),
                status: packet.status(),
                association_id: packet.association_id(),
                offset: packet.offset(),
            },
            data: &bytes[HEADER_LEN..data_end],
            trailer: &bytes[padded_end..],
        })
    }

    /// Octets [`emit`](Self::emit) writes: header, data, zero padding to 4, trailer.
    pub fn buffer_len(&self) -> usize {
        round_up(HEADER_LEN + self.data.len(), ALIGN) + self.trailer.len()
    }

    /// Writes the message to the front of `buf`; returns its length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, Mode6Error> {
        if self.data.len() > MAX_DATA_LEN {
            return Err(Mode6Error::DataTooLong { count: self.data.len() });
        }
        if !(MIN_VERSION..=MAX_VERSION).contains(&self.header.version) {
            return Err(Mode6Error::UnsupportedVersion(self.header.version));
        }
        if !self.trailer.len().is_multiple_of(ALIGN) {
            return Err(Mode6Error::Unaligned { len: self.trailer.len() });
        }
        let len = self.buffer_len();
        if buf.len() < len {
            return Err(Mode6Error::BufferTooSmall { needed: len, got: buf.len() });
        }
        let out = &mut buf[..len];
        let h = &self.header;
        {
            let mut packet = ControlPacket { buffer: &mut *out };
            packet.set_li_vn(h.leap, h.version);
            packet.set_flags_opcode(h.response, h.error, h.more, h.opcode);
            packet.set_sequence(h.sequence);
            packet.set_status(h.status);
            packet.set_association_id(h.association_id);
            packet.set_offset(h.offset);
            // Checked against MAX_DATA_LEN above, so it fits in 16 bits.
            packet.set_count(self.data.len() as u16);
        }
        let data_end = HEADER_LEN + self.data.len();
        out[HEADER_LEN..data_end].copy_from_slice(self.data);
        let padded_end = round_up(data_end, ALIGN);
        out[data_end..padded_end].fill(0);
        out[padded_end..].copy_from_slice(self.trailer);
        Ok(len)
    }

    /// The MAC of an authenticated message, if the trailer is one: a key id and a 16- or
    /// 20-octet digest, right after the data's 4-byte padding or after ntpq's extra padding
    /// to 8 octets. `None` for an empty trailer or plain padding.
    pub fn mac(&self) -> Option<MacTrailer<'a>> {
        let data_end = HEADER_LEN + self.data.len();
        let padded4 = round_up(data_end, ALIGN);
        let padded8 = round_up(data_end, MAC_ALIGN);
        let candidates = [(0usize, self.trailer), (padded8 - padded4, self.trailer)];
        for (skip, trailer) in candidates {
            let Some(rest) = trailer.get(skip..) else { continue };
            if skip > 0 && trailer[..skip].iter().any(|&b| b != 0) {
                continue;
            }
            if DIGEST_LENS.contains(&rest.len().wrapping_sub(KEY_ID_LEN)) {
                let key_id = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
                // Key id 0 is no key: here it is ntpq's padding to 8 in front of an MD5 or
                // CMAC MAC (4 zero octets + 20 = 24, the length of a SHA-1 MAC).
                if key_id == 0 {
                    continue;
                }
                return Some(MacTrailer { key_id, digest: &rest[KEY_ID_LEN..] });
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn request(opcode: u8, assoc: u16, data: &[u8]) -> Vec<u8> {
        let mut buf = vec![0x16, opcode, 0x00, 0x07, 0, 0];
        buf.extend_from_slice(&assoc.to_be_bytes());
        buf.extend_from_slice(&[0, 0]);
        buf.extend_from_slice(&(data.len() as u16).to_be_bytes());
        buf.extend_from_slice(data);
        while buf.len() % 4 != 0 {
            buf.push(0);
        }
        buf
    }

    #[test]
    fn parses_an_ntpq_readvar_request() {
        let bytes = request(0x02, 0, b"offset,sys_jitter");
        let repr = ControlRepr::parse(&bytes).unwrap();
        assert_eq!(repr.header.version, 2);
        assert_eq!(repr.header.opcode, Opcode::ReadVariables);
        assert!(!repr.header.response && !repr.header.error && !repr.header.more);
        assert_eq!(repr.header.sequence, 7);
        assert_eq!(repr.data, b"offset,sys_jitter");
        assert!(repr.trailer.is_empty());
        assert_eq!(repr.mac(), None);
        let mut out = [0u8; 64];
        let len = repr.emit(&mut out).unwrap();
        assert_eq!(&out[..len], &bytes[..]);
    }

    #[test]
    fn every_error_path() {
        assert_eq!(
            ControlRepr::parse(&[0x16; 11]),
            Err(Mode6Error::TooShort { needed: 12, got: 11 })
        );
        let mut not_control = request(1, 0, b"");
        not_control[0] = 0x23;
        assert_eq!(ControlRepr::parse(&not_control), Err(Mode6Error::NotControl(3)));
        let mut v0 = request(1, 0, b"");
        v0[0] = 0x06;
        assert_eq!(ControlRepr::parse(&v0), Err(Mode6Error::UnsupportedVersion(0)));
        let mut v5 = request(1, 0, b"");
        v5[0] = 0x2e;
        assert_eq!(ControlRepr::parse(&v5), Err(Mode6Error::UnsupportedVersion(5)));
        let mut long = request(1, 0, b"");
        long[10..12].copy_from_slice(&469u16.to_be_bytes());
        long.resize(12 + 472, 0);
        assert_eq!(ControlRepr::parse(&long), Err(Mode6Error::DataTooLong { count: 469 }));
        let mut short = request(1, 0, b"abcd");
        short[11] = 8;
        assert_eq!(ControlRepr::parse(&short), Err(Mode6Error::TooShort { needed: 20, got: 16 }));
        let mut unaligned = request(2, 0, b"abcd");
        unaligned.push(0);
        assert_eq!(ControlRepr::parse(&unaligned), Err(Mode6Error::Unaligned { len: 17 }));

        let abc = request(2, 0, b"abc");
        let repr = ControlRepr::parse(&abc).unwrap();
        let mut small = [0u8; 15];
        assert_eq!(repr.emit(&mut small), Err(Mode6Error::BufferTooSmall { needed: 16, got: 15 }));
        let big = [b'x'; 469];
        let too_long = ControlRepr { data: &big, ..repr };
        assert_eq!(too_long.emit(&mut [0u8; 600]), Err(Mode6Error::DataTooLong { count: 469 }));
        let odd = ControlRepr { trailer: &[0; 3], ..repr };
        assert_eq!(odd.emit(&mut [0u8; 64]), Err(Mode6Error::Unaligned { len: 3 }));
        let bad_version =
            ControlRepr { header: ControlHeader { version: 0, ..repr.header }, ..repr };
        assert_eq!(bad_version.emit(&mut [0u8; 64]), Err(Mode6Error::UnsupportedVersion(0)));
    }

    #[test]
    fn counter_names_are_distinct_and_listed() {
        let samples = [
            Mode6Error::TooShort { needed: 0, got: 0 },
            Mode6Error::NotControl(0),
            Mode6Error::UnsupportedVersion(0),
            Mode6Error::DataTooLong { count: 0 },
            Mode6Error::Unaligned { len: 0 },
            Mode6Error::BufferTooSmall { needed: 0, got: 0 },
        ];
        let names: Vec<_> = samples.iter().map(Mode6Error::counter_name).collect();
        assert_eq!(names, Mode6Error::COUNTER_NAMES);
    }

    #[test]
    fn finds_a_mac_after_ntpq_padding() {
        // "abc": data ends at 15, padded to 16 (4) and 16 (8): key id + MD5 right after.
        let mut bytes = request(2, 0, b"abc");
        bytes.extend_from_slice(&9u32.to_be_bytes());
        bytes.extend_from_slice(&[0xAA; 16]);
        let repr = ControlRepr::parse(&bytes).unwrap();
        assert_eq!(repr.mac(), Some(MacTrailer { key_id: 9, digest: &[0xAA; 16] }));
        // "abcdefgh": data ends at 20 (4-aligned), ntpq pads to 24 before a SHA-1 MAC.
        let mut bytes = request(2, 0, b"abcdefgh");
        bytes.extend_from_slice(&[0; 4]);
        bytes.extend_from_slice(&7u32.to_be_bytes());
        bytes.extend_from_slice(&[0xBB; 20]);
        let repr = ControlRepr::parse(&bytes).unwrap();
        assert_eq!(repr.mac(), Some(MacTrailer { key_id: 7, digest: &[0xBB; 20] }));
        // Plain zero padding is no MAC.
        let mut bytes = request(2, 0, b"abc");
        bytes.extend_from_slice(&[0; 64]);
        assert_eq!(ControlRepr::parse(&bytes).unwrap().mac(), None);
    }

    #[test]
    fn opcodes_and_error_codes_round_trip() {
        for bits in 0..=0x1F {
            assert_eq!(Opcode::from_bits(bits).to_bits(), bits);
        }
        for code in 0..=u8::MAX {
            let e = ErrorCode::from_code(code);
            assert_eq!(e.code(), code);
            assert_eq!(ErrorCode::from_status_word(e.status_word()), e);
        }
        assert_eq!(ErrorCode::BadAssociation.to_string(), "BADASSOC");
    }

    fn arb_header() -> impl Strategy<Value = ControlHeader> {
        (0u8..4, 1u8..=4, any::<(bool, bool, bool)>(), 0u8..32, any::<(u16, u16, u16, u16)>())
            .prop_map(|(li, version, (response, error, more), op, (sequence, status, a, o))| {
                ControlHeader {
                    leap: LeapIndicator::from_bits(li),
                    version,
                    response,
                    error,
                    more,
                    opcode: Opcode::from_bits(op),
                    sequence,
                    status,
                    association_id: a,
                    offset: o,
                }
            })
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            if let Ok(repr) = ControlRepr::parse(&bytes) {
                // Whatever parses re-emits to a message that parses to the same thing, and to
                // the same bytes when the padding was zero.
                let mut out = vec![0u8; repr.buffer_len()];
                let len = repr.emit(&mut out).unwrap();
                prop_assert_eq!(len, bytes.len());
                prop_assert_eq!(ControlRepr::parse(&out).unwrap(), repr);
                let data_end = HEADER_LEN + repr.data.len();
                if bytes[data_end..round_up(data_end, ALIGN)].iter().all(|&b| b == 0) {
                    prop_assert_eq!(&out[..], &bytes[..]);
                }
                let _ = repr.mac();
            }
            if let Ok(packet) = ControlPacket::new_checked(&bytes[..]) {
                let _ = (packet.data(), packet.opcode(), packet.leap());
            }
        }

        #[test]
        fn emit_parse_round_trip(
            header in arb_header(),
            data in proptest::collection::vec(any::<u8>(), 0..=MAX_DATA_LEN),
            trailer_words in 0usize..8,
        ) {
            let trailer = vec![0x5Au8; trailer_words * 4];
            let repr = ControlRepr { header, data: &data, trailer: &trailer };
            let mut out = vec![0u8; MAX_DATAGRAM_LEN + 32];
            let len = repr.emit(&mut out).unwrap();
            prop_assert_eq!(len % 4, 0);
            prop_assert_eq!(ControlRepr::parse(&out[..len]).unwrap(), repr);
        }
    }
}
