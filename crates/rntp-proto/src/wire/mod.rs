//! The NTP packet format (RFC 5905 §7.3, RFC 7822), in the smoltcp style: a checked zero-copy
//! view ([`Packet`]) over a byte buffer and a parsed, owned-where-cheap representation
//! ([`PacketRepr`], whose [`NtpHeader`] is plain data and whose extension fields and MAC borrow
//! the buffer).
//!
//! Parsing is strict about structure, because everything after it trusts the lengths: the
//! version must be 1–4, the header complete, and whatever follows it must be exactly a sequence
//! of well-formed extension fields (NTPv4 only) and an optional MAC. Each way of failing has its
//! own [`WireError`] variant with a stable [`counter name`](WireError::counter_name), so the
//! daemon can count drops by cause.
//!
//! This module deliberately does **not**:
//! - judge the *contents*: a zero transmit timestamp, stratum 16, a bogus origin timestamp are
//!   all well-formed packets; the on-wire tests in `assoc` reject them;
//! - parse mode 6 (control) and mode 7 (private) packets, which have a different layout; they
//!   are refused with [`WireError::UnsupportedMode`];
//! - interpret extension fields or verify MACs (see [`ExtensionField`] and [`Mac`]);
//! - read clocks or touch sockets.

mod ext;
mod kod;

use core::fmt;
use core::net::Ipv4Addr;

pub use ext::{walk_trailer, ExtensionField, Mac, TrailerLayout, MAX_EXTENSIONS};
pub use kod::KissCode;

use crate::time::{NtpShort, NtpTimestamp};

/// Byte layout of the 48-byte header (RFC 5905 Figure 8).
mod field {
    use core::ops::Range;

    /// Leap indicator (2 bits), version (3 bits), mode (3 bits).
    pub const LI_VN_MODE: usize = 0;
    /// Stratum.
    pub const STRATUM: usize = 1;
    /// Poll interval, log2 seconds (signed).
    pub const POLL: usize = 2;
    /// Precision, log2 seconds (signed).
    pub const PRECISION: usize = 3;
    /// Root delay, NTP short format.
    pub const ROOT_DELAY: Range<usize> = 4..8;
    /// Root dispersion, NTP short format.
    pub const ROOT_DISPERSION: Range<usize> = 8..12;
    /// Reference ID.
    pub const REFERENCE_ID: Range<usize> = 12..16;
    /// Reference timestamp.
    pub const REFERENCE_TS: Range<usize> = 16..24;
    /// Origin timestamp.
    pub const ORIGIN_TS: Range<usize> = 24..32;
    /// Receive timestamp.
    pub const RECEIVE_TS: Range<usize> = 32..40;
    /// Transmit timestamp.
    pub const TRANSMIT_TS: Range<usize> = 40..48;
    /// Where extension fields / the MAC start.
    pub const PAYLOAD: usize = 48;
}

/// Shift of the leap indicator in the first byte.
const LI_SHIFT: u8 = 6;
/// Mask of the leap indicator after shifting.
const LI_MASK: u8 = 0x03;
/// Shift of the version number in the first byte.
const VN_SHIFT: u8 = 3;
/// Mask of the version number after shifting.
const VN_MASK: u8 = 0x07;
/// Mask of the mode in the first byte.
const MODE_MASK: u8 = 0x07;
/// Oldest version we parse: ntpd still answers NTPv1 clients, so we accept 1 as well.
const MIN_VERSION: u8 = 0x01;
/// Newest version that exists.
const MAX_VERSION: u8 = 0x04;
/// The first version that has extension fields (RFC 7822 is NTPv4 only).
const EXTENSIONS_VERSION: u8 = 0x04;

/// Why a packet could not be parsed or emitted.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// Fewer bytes than the 48-byte header.
    #[error("packet too short: need {needed} bytes, got {got}")]
    TooShort {
        /// Bytes required.
        needed: usize,
        /// Bytes present.
        got: usize,
    },
    /// Version number 0 or 5–7. Nothing we could talk to sends these; a v5 draft would need a
    /// parser of its own.
    #[error("unsupported NTP version {0}")]
    UnsupportedVersion(u8),
    /// Mode 6 (control) or 7 (private): a different packet layout, not handled here.
    #[error("unsupported NTP mode {0}")]
    UnsupportedMode(Mode),
    /// An extension field whose length field is below 16 or not a multiple of 4 (RFC 7822 §3),
    /// or, when emitting, a value that does not make such a length.
    #[error("bad extension field length {length} at offset {offset}")]
    BadExtensionLength {
        /// Offset of the extension field in the packet.
        offset: usize,
        /// The length it claims (or would have), including its 4-byte header.
        length: usize,
    },
    /// An extension field that claims more bytes than the packet has left.
    #[error("extension field at offset {offset} claims {length} bytes, only {available} left")]
    TruncatedExtension {
        /// Offset of the extension field in the packet.
        offset: usize,
        /// The length it claims, including its header.
        length: usize,
        /// Bytes remaining from its start to the end of the packet.
        available: usize,
    },
    /// More extension fields than [`MAX_EXTENSIONS`].
    #[error("more than {max} extension fields")]
    TooManyExtensions {
        /// The limit.
        max: usize,
    },
    /// Bytes after the header (or after the last extension field) that are neither a MAC nor an
    /// extension field: too short for either, or anything but a MAC in a version 1–3 packet.
    #[error("{len} bytes of trailing data at offset {offset}")]
    TrailingData {
        /// Where the unexplained bytes start.
        offset: usize,
        /// How many there are.
        len: usize,
    },
    /// A 4-byte MAC (key id only) with a non-zero key id. A bare key id is only defined as the
    /// crypto-NAK, whose key id is 0.
    #[error("4-byte MAC with non-zero key id {key_id}")]
    BadCryptoNak {
        /// The key id found.
        key_id: u32,
    },
    /// Emitting a MAC whose digest is neither 16 (MD5) nor 20 (SHA-1) bytes, nor empty. A
    /// receiver would not find it, so we refuse to send it.
    #[error("MAC digest length {len} is not 16 or 20")]
    BadMacLength {
        /// The digest length.
        len: usize,
    },
    /// Emitting an extension field that starts exactly 4, 20 or 24 bytes before the end of the
    /// packet (e.g. a final 20-byte field without a MAC, or a 16-byte field before a
    /// crypto-NAK): by RFC 7822 §7.5 receivers would read the rest as a MAC.
    #[error("extension field at offset {offset} (length {length}) would be read as a MAC")]
    AmbiguousExtension {
        /// Offset of the field in the packet.
        offset: usize,
        /// Its length.
        length: usize,
    },
    /// Emitting extension fields in a packet of version 1–3, which has none.
    #[error("extension fields are not allowed in NTP version {version}")]
    ExtensionsNotAllowed {
        /// The packet's version.
        version: u8,
    },
    /// The output buffer is too small for what is being emitted.
    #[error("output buffer too small: need {needed} bytes, got {got}")]
    BufferTooSmall {
        /// Bytes required.
        needed: usize,
        /// Bytes available.
        got: usize,
    },
}

impl WireError {
    /// Every label [`counter_name`](Self::counter_name) can return, so a driver can register
    /// all its drop counters up front.
    pub const COUNTER_NAMES: &'static [&'static str] = &[
        "too_short",
        "unsupported_version",
        "unsupported_mode",
        "bad_extension_length",
        "truncated_extension",
        "too_many_extensions",
        "trailing_data",
        "bad_crypto_nak",
        "bad_mac_length",
        "ambiguous_extension",
        "extensions_not_allowed",
        "buffer_too_small",
    ];

    /// A stable snake_case label for drop counters and logs. It never includes the variant's
    /// data, so counters stay few; it does not change once released.
    pub const fn counter_name(&self) -> &'static str {
        match self {
            WireError::TooShort { .. } => "too_short",
            WireError::UnsupportedVersion(_) => "unsupported_version",
            WireError::UnsupportedMode(_) => "unsupported_mode",
            WireError::BadExtensionLength { .. } => "bad_extension_length",
            WireError::TruncatedExtension { .. } => "truncated_extension",
            WireError::TooManyExtensions { .. } => "too_many_extensions",
            WireError::TrailingData { .. } => "trailing_data",
            WireError::BadCryptoNak { .. } => "bad_crypto_nak",
            WireError::BadMacLength { .. } => "bad_mac_length",
            WireError::AmbiguousExtension { .. } => "ambiguous_extension",
            WireError::ExtensionsNotAllowed { .. } => "extensions_not_allowed",
            WireError::BufferTooSmall { .. } => "buffer_too_small",
        }
    }
}

/// The leap indicator: a warning of a leap second at the end of the current UTC day, or the
/// "unsynchronized" alarm (RFC 5905 Figure 9).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub enum LeapIndicator {
    /// 0: no leap second pending.
    #[default]
    NoWarning,
    /// 1: the last minute of the day has 61 seconds.
    AddSecond,
    /// 2: the last minute of the day has 59 seconds.
    DeleteSecond,
    /// 3: the clock is unsynchronized; the sender's time must not be used.
    Unsynchronized,
}

impl LeapIndicator {
    /// From the 2-bit wire value; higher bits of `bits` are ignored.
    pub const fn from_bits(bits: u8) -> Self {
        match bits & LI_MASK {
            0x00 => LeapIndicator::NoWarning,
            0x01 => LeapIndicator::AddSecond,
            0x02 => LeapIndicator::DeleteSecond,
            _ => LeapIndicator::Unsynchronized,
        }
    }

    /// The 2-bit wire value.
    pub const fn to_bits(self) -> u8 {
        match self {
            LeapIndicator::NoWarning => 0x00,
            LeapIndicator::AddSecond => 0x01,
            LeapIndicator::DeleteSecond => 0x02,
            LeapIndicator::Unsynchronized => 0x03,
        }
    }
}

/// The association mode (RFC 5905 Figure 10).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Mode {
    /// 0: reserved. NTPv1 clients sent it; the parser passes it through for the daemon to
    /// decide.
    Reserved,
    /// 1: symmetric active.
    SymmetricActive,
    /// 2: symmetric passive.
    SymmetricPassive,
    /// 3: client.
    Client,
    /// 4: server.
    Server,
    /// 5: broadcast.
    Broadcast,
    /// 6: NTP control message (ntpq); different layout, not parsed here.
    Control,
    /// 7: private use (ntpdc); different layout, not parsed here.
    Private,
}

impl Mode {
    /// From the 3-bit wire value; higher bits of `bits` are ignored.
    pub const fn from_bits(bits: u8) -> Self {
        match bits & MODE_MASK {
            0x00 => Mode::Reserved,
            0x01 => Mode::SymmetricActive,
            0x02 => Mode::SymmetricPassive,
            0x03 => Mode::Client,
            0x04 => Mode::Server,
            0x05 => Mode::Broadcast,
            0x06 => Mode::Control,
            _ => Mode::Private,
        }
    }

    /// The 3-bit wire value.
    pub const fn to_bits(self) -> u8 {
        match self {
            Mode::Reserved => 0x00,
            Mode::SymmetricActive => 0x01,
            Mode::SymmetricPassive => 0x02,
            Mode::Client => 0x03,
            Mode::Server => 0x04,
            Mode::Broadcast => 0x05,
            Mode::Control => 0x06,
            Mode::Private => 0x07,
        }
    }

    /// Whether packets of this mode have the 48-byte header layout this module parses.
    const fn has_ntp_layout(self) -> bool {
        !matches!(self, Mode::Control | Mode::Private)
    }
}

impl fmt::Display for Mode {
    /// The number and name, e.g. `6 (control)`, as a log line wants it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Mode::Reserved => "reserved",
            Mode::SymmetricActive => "symmetric active",
            Mode::SymmetricPassive => "symmetric passive",
            Mode::Client => "client",
            Mode::Server => "server",
            Mode::Broadcast => "broadcast",
            Mode::Control => "control",
            Mode::Private => "private",
        };
        write!(f, "{} ({name})", self.to_bits())
    }
}

/// The 32-bit reference ID: a kiss code or clock source name in ASCII (stratum 0 and 1), or the
/// IPv4 address (or an IPv6 address hash) of the upstream server (stratum 2 and up).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ReferenceId([u8; 4]);

impl ReferenceId {
    /// All zero bits, sent while a server has no reference.
    pub const ZERO: ReferenceId = ReferenceId([0; 4]);

    /// From the four wire bytes, e.g. `ReferenceId::from_bytes(*b"GPS\0")`.
    pub const fn from_bytes(bytes: [u8; 4]) -> Self {
        ReferenceId(bytes)
    }

    /// The four wire bytes.
    pub const fn as_bytes(&self) -> &[u8; 4] {
        &self.0
    }

    /// The four wire bytes, by value.
    pub const fn to_bytes(self) -> [u8; 4] {
        self.0
    }

    /// From the big-endian 32-bit value.
    pub const fn from_bits(bits: u32) -> Self {
        ReferenceId(bits.to_be_bytes())
    }

    /// The big-endian 32-bit value.
    pub const fn to_bits(self) -> u32 {
        u32::from_be_bytes(self.0)
    }

    /// The reference ID a stratum ≥ 2 server uses for an IPv4 upstream: its address.
    pub const fn from_ipv4(addr: Ipv4Addr) -> Self {
        ReferenceId(addr.octets())
    }

    /// The reference ID clients see when this server synchronizes to the upstream server at
    /// `ip` (RFC 5905 §7.3): the IPv4 address, or for IPv6 the first four octets of the MD5
    /// hash of the address (as ntpd and chrony compute it).
    pub fn for_address(ip: core::net::IpAddr) -> Self {
        match ip {
            core::net::IpAddr::V4(v4) => Self::from_ipv4(v4),
            core::net::IpAddr::V6(v6) => {
                use md5::Digest as _;
                let digest = md5::Md5::digest(v6.octets());
                ReferenceId([digest[0], digest[1], digest[2], digest[3]])
            }
        }
    }

    /// The ASCII text, if the bytes are printable ASCII once trailing NULs are dropped (`GPS\0`
    /// gives `GPS`). `None` for anything else, including all zeros.
    pub fn as_ascii(&self) -> Option<&str> {
        let text = self.trimmed();
        if text.is_empty() || !text.iter().all(|b| is_printable(*b)) {
            return None;
        }
        core::str::from_utf8(text).ok()
    }

    /// The reference ID as ntpq shows it. Stratum 0 and 1 (and 16 and above: unsynchronized
    /// peers, whose ID is a kiss code like `.INIT.`): the ASCII text in dots, up to the first
    /// NUL, with each unprintable byte shown as `.` (ntpd's `ctl_putrefid`: `.LOCL.`, `.GPS.`,
    /// and chrony's `local` 0x7F7F0101 as `......`). Stratum 2 to 15: the dotted quad (an IPv4
    /// address, or for an IPv6 upstream the first four bytes of its hash). All-zero IDs show
    /// as `0.0.0.0`. [`ReferenceId::to_bits`] keeps the exact value.
    pub fn display_for_stratum(&self, stratum: u8) -> String {
        if (0x02..0x10).contains(&stratum) || self.0 == [0; 4] {
            return Ipv4Addr::from(self.0).to_string();
        }
        let text: String = self
            .0
            .iter()
            .take_while(|b| **b != 0)
            .map(|&b| if is_printable(b) { char::from(b) } else { '.' })
            .collect();
        format!(".{text}.")
    }

    /// The bytes without trailing NULs, which pad names shorter than four characters.
    fn trimmed(&self) -> &[u8] {
        let len = self.0.iter().rposition(|&b| b != 0x00).map_or(0, |i| i + 1);
        self.0.get(..len).unwrap_or_default()
    }
}

/// Printable ASCII, space to tilde.
const fn is_printable(b: u8) -> bool {
    matches!(b, 0x20..=0x7E)
}

impl fmt::Display for ReferenceId {
    /// ASCII (`LOCL`) when [`as_ascii`](Self::as_ascii) succeeds, otherwise a dotted quad. Note
    /// that an address like 65.66.67.68 is printable and shows as `ABCD`; use
    /// [`display_for_stratum`](Self::display_for_stratum) when the stratum is known.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.as_ascii() {
            Some(text) => f.write_str(text),
            None => fmt::Display::fmt(&Ipv4Addr::from(self.0), f),
        }
    }
}

impl fmt::Debug for ReferenceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReferenceId({self} = {:08x})", self.to_bits())
    }
}

/// A read-only view of an NTP packet in a byte buffer.
///
/// After [`Packet::new_checked`] the buffer is known to hold the 48-byte header, so the field
/// accessors are infallible and read straight from the buffer. Accessors never panic: on a
/// buffer too short for them (only possible through [`Packet::new_unchecked`]) they read the
/// missing bytes as zero.
///
/// The view does not check the version, the mode or the trailer; [`PacketRepr::parse`] does.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking its length.
    pub const fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Wraps a buffer after checking it holds at least the 48-byte header.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks the buffer holds at least the 48-byte header.
    pub fn check_len(&self) -> Result<(), WireError> {
        let got = self.buffer.as_ref().len();
        if got < NtpHeader::LEN {
            return Err(WireError::TooShort { needed: NtpHeader::LEN, got });
        }
        Ok(())
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// One byte, zero if out of bounds.
    fn byte(&self, index: usize) -> u8 {
        self.buffer.as_ref().get(index).copied().unwrap_or(0)
    }

    /// `N` bytes at `range` (which has length `N`), zeros if out of bounds.
    fn bytes<const N: usize>(&self, range: core::ops::Range<usize>) -> [u8; N] {
        self.buffer.as_ref().get(range).and_then(|s| s.try_into().ok()).unwrap_or([0; N])
    }

    /// The leap indicator.
    pub fn leap(&self) -> LeapIndicator {
        LeapIndicator::from_bits(self.byte(field::LI_VN_MODE) >> LI_SHIFT)
    }

    /// The version number (0–7, unvalidated).
    pub fn version(&self) -> u8 {
        (self.byte(field::LI_VN_MODE) >> VN_SHIFT) & VN_MASK
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        Mode::from_bits(self.byte(field::LI_VN_MODE))
    }

    /// The stratum (0 = unspecified or kiss-o'-death, 1 = primary, 2–15 secondary,
    /// 16 = unsynchronized).
    pub fn stratum(&self) -> u8 {
        self.byte(field::STRATUM)
    }

    /// The poll interval, log2 seconds.
    pub fn poll(&self) -> i8 {
        i8::from_be_bytes([self.byte(field::POLL)])
    }

    /// The precision of the sender's clock, log2 seconds.
    pub fn precision(&self) -> i8 {
        i8::from_be_bytes([self.byte(field::PRECISION)])
    }

    /// The root delay.
    pub fn root_delay(&self) -> NtpShort {
        NtpShort::from_bits(u32::from_be_bytes(self.bytes(field::ROOT_DELAY)))
    }

    /// The root dispersion.
    pub fn root_dispersion(&self) -> NtpShort {
        NtpShort::from_bits(u32::from_be_bytes(self.bytes(field::ROOT_DISPERSION)))
    }

    /// The reference ID.
    pub fn reference_id(&self) -> ReferenceId {
        ReferenceId::from_bytes(self.bytes(field::REFERENCE_ID))
    }

    /// The reference timestamp: when the sender's clock was last set.
    pub fn reference_ts(&self) -> NtpTimestamp {
        NtpTimestamp::from_bits(u64::from_be_bytes(self.bytes(field::REFERENCE_TS)))
    }

    /// The origin timestamp: the transmit timestamp of the request this answers.
    pub fn origin_ts(&self) -> NtpTimestamp {
        NtpTimestamp::from_bits(u64::from_be_bytes(self.bytes(field::ORIGIN_TS)))
    }

    /// The receive timestamp: when the sender received the request.
    pub fn receive_ts(&self) -> NtpTimestamp {
        NtpTimestamp::from_bits(u64::from_be_bytes(self.bytes(field::RECEIVE_TS)))
    }

    /// The transmit timestamp: when the sender sent this packet.
    pub fn transmit_ts(&self) -> NtpTimestamp {
        NtpTimestamp::from_bits(u64::from_be_bytes(self.bytes(field::TRANSMIT_TS)))
    }

    /// The bytes after the header (extension fields and MAC); empty if there are none or the
    /// buffer is short.
    pub fn payload(&self) -> &[u8] {
        self.buffer.as_ref().get(field::PAYLOAD..).unwrap_or_default()
    }
}

/// The 48-byte NTP header as plain data.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct NtpHeader {
    /// Leap indicator.
    pub leap: LeapIndicator,
    /// Version number; 1–4 after parsing. Only the low 3 bits are emitted.
    pub version: u8,
    /// Mode.
    pub mode: Mode,
    /// Stratum; 0 means kiss-o'-death in a server reply.
    pub stratum: u8,
    /// Poll interval, log2 seconds.
    pub poll: i8,
    /// Precision, log2 seconds.
    pub precision: i8,
    /// Root delay.
    pub root_delay: NtpShort,
    /// Root dispersion.
    pub root_dispersion: NtpShort,
    /// Reference ID (or kiss code when stratum is 0).
    pub reference_id: ReferenceId,
    /// Reference timestamp.
    pub reference_ts: NtpTimestamp,
    /// Origin timestamp.
    pub origin_ts: NtpTimestamp,
    /// Receive timestamp.
    pub receive_ts: NtpTimestamp,
    /// Transmit timestamp.
    pub transmit_ts: NtpTimestamp,
}

impl NtpHeader {
    /// Length of the header on the wire.
    pub const LEN: usize = 0x30;

    /// Parses the header at the start of `bytes`, ignoring anything after it. Checks the version
    /// (1–4), the mode (not 6 or 7) and the length, in that order: the first byte alone tells
    /// an ntpq query from a short NTP packet, which keeps drop counters meaningful.
    pub fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        let packet = Packet::new_unchecked(bytes);
        if bytes.is_empty() {
            return Err(WireError::TooShort { needed: Self::LEN, got: 0 });
        }
        let version = packet.version();
        if !(MIN_VERSION..=MAX_VERSION).contains(&version) {
            return Err(WireError::UnsupportedVersion(version));
        }
        let mode = packet.mode();
        if !mode.has_ntp_layout() {
            return Err(WireError::UnsupportedMode(mode));
        }
        packet.check_len()?;
        Ok(Self::from_packet(&packet))
    }

    /// Reads every header field from a view, without validating version or mode.
    pub fn from_packet<T: AsRef<[u8]>>(packet: &Packet<T>) -> Self {
        NtpHeader {
            leap: packet.leap(),
            version: packet.version(),
            mode: packet.mode(),
            stratum: packet.stratum(),
            poll: packet.poll(),
            precision: packet.precision(),
            root_delay: packet.root_delay(),
            root_dispersion: packet.root_dispersion(),
            reference_id: packet.reference_id(),
            reference_ts: packet.reference_ts(),
            origin_ts: packet.origin_ts(),
            receive_ts: packet.receive_ts(),
            transmit_ts: packet.transmit_ts(),
        }
    }

    /// Writes the header into the first 48 bytes of `buf`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<(), WireError> {
        let got = buf.len();
        let out: &mut [u8; Self::LEN] = buf
            .get_mut(..Self::LEN)
            .and_then(|s| s.try_into().ok())
            .ok_or(WireError::BufferTooSmall { needed: Self::LEN, got })?;
        *out = self.to_bytes();
        Ok(())
    }

    /// The header's 48 wire bytes. The version is written modulo 8, as the field has 3 bits.
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        out[field::LI_VN_MODE] = (self.leap.to_bits() << LI_SHIFT)
            | ((self.version & VN_MASK) << VN_SHIFT)
            | self.mode.to_bits();
        out[field::STRATUM] = self.stratum;
        out[field::POLL] = self.poll.to_be_bytes()[0];
        out[field::PRECISION] = self.precision.to_be_bytes()[0];
        out[field::ROOT_DELAY].copy_from_slice(&self.root_delay.to_bits().to_be_bytes());
        out[field::ROOT_DISPERSION].copy_from_slice(&self.root_dispersion.to_bits().to_be_bytes());
        out[field::REFERENCE_ID].copy_from_slice(self.reference_id.as_bytes());
        out[field::REFERENCE_TS].copy_from_slice(&self.reference_ts.to_bits().to_be_bytes());
        out[field::ORIGIN_TS].copy_from_slice(&self.origin_ts.to_bits().to_be_bytes());
        out[field::RECEIVE_TS].copy_from_slice(&self.receive_ts.to_bits().to_be_bytes());
        out[field::TRANSMIT_TS].copy_from_slice(&self.transmit_ts.to_bits().to_be_bytes());
        out
    }

    /// The kiss code, if this is a Kiss-o'-Death packet: stratum 0 (RFC 5905 §7.4). Any
    /// stratum-0 reference ID is a kiss code, including ones we have no variant for.
    ///
    /// Act on it only after the reply passed the on-wire tests, and only in a server or
    /// symmetric reply; the mode is not checked here.
    pub fn kiss_code(&self) -> Option<KissCode> {
        (self.stratum == 0x00).then(|| KissCode::from_reference_id(self.reference_id))
    }
}

/// A parsed NTP packet: the header, then NTPv4 extension fields, then an optional MAC.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct PacketRepr<'a> {
    /// The 48-byte header.
    pub header: NtpHeader,
    /// Extension fields in wire order (version 4 only; at most [`MAX_EXTENSIONS`]).
    pub extensions: Vec<ExtensionField<'a>>,
    /// The legacy symmetric-key MAC, if present.
    pub mac: Option<Mac<'a>>,
}

impl<'a> PacketRepr<'a> {
    /// A packet with just this header.
    pub fn from_header(header: NtpHeader) -> Self {
        PacketRepr { header, extensions: Vec::new(), mac: None }
    }

    /// Parses a whole UDP payload. Every byte must be accounted for: the header, then (version
    /// 4) extension fields, then optionally a MAC, told apart by length as RFC 7822 §7.5 says.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, WireError> {
        let header = NtpHeader::parse(bytes)?;
        let payload = bytes.get(field::PAYLOAD..).unwrap_or_default();
        let allow_extensions = header.version >= EXTENSIONS_VERSION;
        let (extensions, mac) = ext::parse_trailer(payload, field::PAYLOAD, allow_extensions)?;
        Ok(PacketRepr { header, extensions, mac })
    }

    /// Bytes [`emit`](Self::emit) writes.
    pub fn buffer_len(&self) -> usize {
        NtpHeader::LEN + ext::trailer_len(&self.extensions, self.mac.as_ref())
    }

    /// Writes the packet into the start of `buf` and returns its length. Refuses anything
    /// [`parse`](Self::parse) would not read back as an equal repr: an unsupported version or
    /// mode, malformed extension lengths, extensions in a pre-v4 packet, an extension that
    /// would be mistaken for a MAC, a MAC of unknown length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        let version = self.header.version;
        if !(MIN_VERSION..=MAX_VERSION).contains(&version) {
            return Err(WireError::UnsupportedVersion(version));
        }
        if !self.header.mode.has_ntp_layout() {
            return Err(WireError::UnsupportedMode(self.header.mode));
        }
        ext::check_trailer(
            &self.extensions,
            self.mac.as_ref(),
            field::PAYLOAD,
            version >= EXTENSIONS_VERSION,
            version,
        )?;
        let len = self.buffer_len();
        let got = buf.len();
        let out = buf.get_mut(..len).ok_or(WireError::BufferTooSmall { needed: len, got })?;
        let (head, trailer) = out.split_at_mut(NtpHeader::LEN);
        self.header.emit(head)?;
        ext::emit_trailer(&self.extensions, self.mac.as_ref(), trailer)?;
        Ok(len)
    }

    /// The packet as a fresh buffer; see [`emit`](Self::emit) for what is refused.
    pub fn to_vec(&self) -> Result<Vec<u8>, WireError> {
        let mut buf = vec![0u8; self.buffer_len()];
        let len = self.emit(&mut buf)?;
        buf.truncate(len);
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A chronyd 4.x reply to an NTPv4 client, laid out by hand from RFC 5905 Figure 8: LI 0,
    /// VN 4, mode 4, stratum 1, poll 6, precision -25, root delay 0, root dispersion
    /// 0x0000_0010 (244 µs), refid "LOCL" (chrony's `local stratum 1`).
    const CHRONY_REPLY: [u8; 48] = [
        0x24, 0x01, 0x06, 0xE7, // LI/VN/mode, stratum, poll, precision
        0x00, 0x00, 0x00, 0x00, // root delay
        0x00, 0x00, 0x00, 0x10, // root dispersion
        0x4C, 0x4F, 0x43, 0x4C, // reference id "LOCL"
        0xEC, 0x8D, 0x1A, 0x2B, 0x12, 0x34, 0x56, 0x78, // reference timestamp
        0xEC, 0x8D, 0x1A, 0x40, 0xDE, 0xAD, 0xBE, 0xEF, // origin timestamp
        0xEC, 0x8D, 0x1A, 0x40, 0xE0, 0x00, 0x00, 0x01, // receive timestamp
        0xEC, 0x8D, 0x1A, 0x40, 0xE0, 0x01, 0x00, 0x02, // transmit timestamp
    ];

    fn chrony_header() -> NtpHeader {
        NtpHeader {
            leap: LeapIndicator::NoWarning,
            version: 4,
            mode: Mode::Server,
            stratum: 1,
            poll: 6,
            precision: -25,
            root_delay: NtpShort::ZERO,
            root_dispersion: NtpShort::from_bits(0x10),
            reference_id: ReferenceId::from_bytes(*b"LOCL"),
            reference_ts: NtpTimestamp::from_bits(0xEC8D_1A2B_1234_5678),
            origin_ts: NtpTimestamp::from_bits(0xEC8D_1A40_DEAD_BEEF),
            receive_ts: NtpTimestamp::from_bits(0xEC8D_1A40_E000_0001),
            transmit_ts: NtpTimestamp::from_bits(0xEC8D_1A40_E001_0002),
        }
    }

    /// The chrony reply with `first` as its first byte and `trailer` appended.
    fn packet(first: u8, trailer: &[u8]) -> Vec<u8> {
        let mut bytes = CHRONY_REPLY.to_vec();
        bytes[0] = first;
        bytes.extend_from_slice(trailer);
        bytes
    }

    fn ext_bytes(field_type: u16, value: &[u8]) -> Vec<u8> {
        let mut v = field_type.to_be_bytes().to_vec();
        v.extend_from_slice(&u16::try_from(value.len() + 4).unwrap_or(0).to_be_bytes());
        v.extend_from_slice(value);
        v
    }

    #[test]
    fn decode_chrony_reply_field_by_field() {
        let view = Packet::new_checked(&CHRONY_REPLY[..]).expect("48 bytes");
        assert_eq!(view.leap(), LeapIndicator::NoWarning);
        assert_eq!(view.version(), 4);
        assert_eq!(view.mode(), Mode::Server);
        assert_eq!(view.stratum(), 1);
        assert_eq!(view.poll(), 6);
        assert_eq!(view.precision(), -25);
        assert_eq!(view.root_delay(), NtpShort::ZERO);
        assert_eq!(view.root_dispersion().to_bits(), 0x10);
        assert_eq!(view.reference_id().as_ascii(), Some("LOCL"));
        assert_eq!(view.reference_ts().to_bits(), 0xEC8D_1A2B_1234_5678);
        assert_eq!(view.origin_ts().to_bits(), 0xEC8D_1A40_DEAD_BEEF);
        assert_eq!(view.receive_ts().to_bits(), 0xEC8D_1A40_E000_0001);
        assert_eq!(view.transmit_ts().to_bits(), 0xEC8D_1A40_E001_0002);
        assert!(view.payload().is_empty());
        assert_eq!(view.into_inner(), &CHRONY_REPLY[..]);

        let repr = PacketRepr::parse(&CHRONY_REPLY).expect("valid reply");
        assert_eq!(repr.header, chrony_header());
        assert!(repr.extensions.is_empty());
        assert_eq!(repr.mac, None);
        assert_eq!(repr.header.kiss_code(), None);
        assert_eq!(repr.header.reference_id.display_for_stratum(1), ".LOCL.");
    }

    #[test]
    fn header_emit_and_to_bytes() {
        assert_eq!(chrony_header().to_bytes(), CHRONY_REPLY);
        let mut buf = [0xFFu8; 50];
        chrony_header().emit(&mut buf).expect("room");
        assert_eq!(&buf[..48], &CHRONY_REPLY[..]);
        assert_eq!(&buf[48..], &[0xFF, 0xFF]);
        assert_eq!(
            chrony_header().emit(&mut buf[..47]),
            Err(WireError::BufferTooSmall { needed: 48, got: 47 })
        );
    }

    #[test]
    fn repr_round_trip_with_extensions_and_mac() {
        let value = [0x5Au8; 28];
        let digest = [0xC3u8; 20];
        let repr = PacketRepr {
            header: chrony_header(),
            extensions: vec![
                ExtensionField { field_type: 0x0104, value: &value[..12] },
                ExtensionField { field_type: 0x0204, value: &value },
            ],
            mac: Some(Mac { key_id: 0xDEAD_BEEF, digest: &digest }),
        };
        assert_eq!(repr.buffer_len(), 48 + 16 + 32 + 24);
        let bytes = repr.to_vec().expect("valid");
        assert_eq!(bytes.len(), repr.buffer_len());
        assert_eq!(PacketRepr::parse(&bytes), Ok(repr.clone()));

        let mut short = [0u8; 100];
        assert_eq!(repr.emit(&mut short), Err(WireError::BufferTooSmall { needed: 120, got: 100 }));
        let mut long = [0u8; 200];
        assert_eq!(repr.emit(&mut long), Ok(120));
        assert_eq!(&long[..120], &bytes[..]);
    }

    #[test]
    fn macs_after_header_v3_and_v4() {
        for first in [0x1C, 0x24] {
            for digest_len in [16usize, 20] {
                let mut mac = vec![0x00, 0x00, 0x00, 0x2A];
                mac.extend(core::iter::repeat_n(0x77, digest_len));
                let bytes = packet(first, &mac);
                let repr = PacketRepr::parse(&bytes).expect("header + mac");
                assert!(repr.extensions.is_empty());
                let parsed = repr.mac.expect("mac");
                assert_eq!(parsed.key_id, 42);
                assert_eq!(parsed.digest.len(), digest_len);
                assert_eq!(repr.to_vec(), Ok(bytes.clone()));
            }
        }
    }

    #[test]
    fn crypto_nak_after_header() {
        let bytes = packet(0x1C, &[0, 0, 0, 0]);
        let repr = PacketRepr::parse(&bytes).expect("crypto-NAK");
        assert!(repr.mac.expect("mac").is_crypto_nak());
        let bytes = packet(0x1C, &[0, 0, 0, 5]);
        assert_eq!(PacketRepr::parse(&bytes), Err(WireError::BadCryptoNak { key_id: 5 }));
    }

    #[test]
    fn extension_followed_by_mac() {
        let mut trailer = ext_bytes(0x0104, &[0x11; 32]);
        trailer.extend_from_slice(&[0x00, 0x00, 0x00, 0x01]);
        trailer.extend_from_slice(&[0x22; 16]);
        let bytes = packet(0x24, &trailer);
        let repr = PacketRepr::parse(&bytes).expect("ext + mac");
        assert_eq!(repr.extensions.len(), 1);
        assert_eq!(repr.extensions[0].field_type, 0x0104);
        assert_eq!(repr.extensions[0].value, &[0x11; 32][..]);
        assert_eq!(repr.mac, Some(Mac { key_id: 1, digest: &[0x22; 16] }));
    }

    #[test]
    fn v3_rejects_extension_fields() {
        // A well-formed extension field is trailing garbage to an NTPv3 parser.
        let trailer = ext_bytes(0x0104, &[0x11; 28]);
        let bytes = packet(0x1C, &trailer);
        assert_eq!(PacketRepr::parse(&bytes), Err(WireError::TrailingData { offset: 48, len: 32 }));
        let v4 = packet(0x24, &trailer);
        let mut repr = PacketRepr::parse(&v4).expect("v4 ok");
        repr.header.version = 3;
        assert_eq!(repr.to_vec(), Err(WireError::ExtensionsNotAllowed { version: 3 }));
    }

    #[test]
    fn trailing_garbage_rejected() {
        for len in [1usize, 3, 5, 19, 21, 23, 25] {
            let bytes = packet(0x1C, &vec![0xEE; len]);
            assert_eq!(
                PacketRepr::parse(&bytes),
                Err(WireError::TrailingData { offset: 48, len }),
                "v3 with {len} trailing bytes"
            );
        }
        // In v4, 5 bytes are too short for an extension field.
        let bytes = packet(0x24, &[0xEE; 5]);
        assert_eq!(PacketRepr::parse(&bytes), Err(WireError::TrailingData { offset: 48, len: 5 }));
        // An extension field, then a stray byte.
        let mut trailer = ext_bytes(0x0104, &[0x11; 28]);
        trailer.push(0x00);
        assert_eq!(
            PacketRepr::parse(&packet(0x24, &trailer)),
            Err(WireError::TrailingData { offset: 80, len: 1 })
        );
    }

    #[test]
    fn extension_errors() {
        let mut trailer = ext_bytes(0x0104, &[0x11; 28]);
        trailer[3] = 0x0C; // length 12 < 16
        assert_eq!(
            PacketRepr::parse(&packet(0x24, &trailer)),
            Err(WireError::BadExtensionLength { offset: 48, length: 12 })
        );
        trailer[3] = 0x22; // 34, not a multiple of 4
        assert_eq!(
            PacketRepr::parse(&packet(0x24, &trailer)),
            Err(WireError::BadExtensionLength { offset: 48, length: 34 })
        );
        trailer[3] = 0x40; // 64 > the 32 available
        assert_eq!(
            PacketRepr::parse(&packet(0x24, &trailer)),
            Err(WireError::TruncatedExtension { offset: 48, length: 64, available: 32 })
        );
        let one = ext_bytes(0x0104, &[0; 12]);
        let many: Vec<u8> = one.iter().copied().cycle().take(one.len() * 17).collect();
        assert_eq!(
            PacketRepr::parse(&packet(0x24, &many)),
            Err(WireError::TooManyExtensions { max: MAX_EXTENSIONS })
        );
    }

    #[test]
    fn emit_errors() {
        let value = [0u8; 16];
        let mut repr = PacketRepr::from_header(chrony_header());
        repr.extensions.push(ExtensionField { field_type: 1, value: &value });
        // 20 bytes, last, no MAC: it would come back as a MAC.
        assert_eq!(repr.to_vec(), Err(WireError::AmbiguousExtension { offset: 48, length: 20 }));
        repr.extensions[0].value = &value[..10];
        assert_eq!(repr.to_vec(), Err(WireError::BadExtensionLength { offset: 48, length: 14 }));
        repr.extensions.clear();
        repr.mac = Some(Mac { key_id: 1, digest: &value[..8] });
        assert_eq!(repr.to_vec(), Err(WireError::BadMacLength { len: 8 }));
        repr.mac = Some(Mac { key_id: 1, digest: &[] });
        assert_eq!(repr.to_vec(), Err(WireError::BadCryptoNak { key_id: 1 }));
        repr.mac = None;
        repr.header.version = 5;
        assert_eq!(repr.to_vec(), Err(WireError::UnsupportedVersion(5)));
        repr.header.version = 4;
        repr.header.mode = Mode::Control;
        assert_eq!(repr.to_vec(), Err(WireError::UnsupportedMode(Mode::Control)));
        repr.header.mode = Mode::Server;
        let extensions = vec![ExtensionField { field_type: 1, value: &value[..12] }; 17];
        repr.extensions = extensions;
        assert_eq!(repr.to_vec(), Err(WireError::TooManyExtensions { max: MAX_EXTENSIONS }));
    }

    #[test]
    fn versions_and_modes() {
        for version in [0u8, 5, 6, 7] {
            let bytes = packet((version << 3) | 0x04, &[]);
            assert_eq!(PacketRepr::parse(&bytes), Err(WireError::UnsupportedVersion(version)));
        }
        for version in 1u8..=4 {
            let bytes = packet((version << 3) | 0x04, &[]);
            assert_eq!(PacketRepr::parse(&bytes).map(|r| r.header.version), Ok(version));
        }
        // An ntpq read-variables request (mode 6) is 12 bytes; it counts as a mode drop, not a
        // short packet.
        let ntpq = [0x16, 0x02, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00];
        assert_eq!(PacketRepr::parse(&ntpq), Err(WireError::UnsupportedMode(Mode::Control)));
        assert_eq!(
            PacketRepr::parse(&packet(0x17, &[])),
            Err(WireError::UnsupportedMode(Mode::Private))
        );
        // Mode 0 is passed through for the daemon to judge (NTPv1 clients).
        assert_eq!(
            PacketRepr::parse(&packet(0x08, &[])).map(|r| r.header.mode),
            Ok(Mode::Reserved)
        );
    }

    #[test]
    fn too_short() {
        assert_eq!(PacketRepr::parse(&[]), Err(WireError::TooShort { needed: 48, got: 0 }));
        assert_eq!(
            PacketRepr::parse(&CHRONY_REPLY[..47]),
            Err(WireError::TooShort { needed: 48, got: 47 })
        );
        assert_eq!(
            Packet::new_checked(&CHRONY_REPLY[..47]),
            Err(WireError::TooShort { needed: 48, got: 47 })
        );
        // The unchecked view reads missing bytes as zero instead of panicking.
        let view = Packet::new_unchecked(&CHRONY_REPLY[..20]);
        assert_eq!(view.stratum(), 1);
        assert_eq!(view.transmit_ts(), NtpTimestamp::ZERO);
        assert!(view.payload().is_empty());
    }

    #[test]
    fn kiss_o_death() {
        let mut bytes = CHRONY_REPLY;
        bytes[1] = 0x00; // stratum 0
        bytes[12..16].copy_from_slice(b"RATE");
        let repr = PacketRepr::parse(&bytes).expect("KoD is well-formed");
        assert_eq!(repr.header.kiss_code(), Some(KissCode::Rate));
        assert!(repr.header.kiss_code().is_some_and(KissCode::requires_rate_reduction));
        assert_eq!(repr.header.reference_id.display_for_stratum(0), ".RATE.");
        bytes[12..16].copy_from_slice(b"DENY");
        let header = NtpHeader::parse(&bytes).expect("valid");
        assert_eq!(header.kiss_code(), Some(KissCode::Deny));
        // The same refid at stratum 1 is a clock name, not a kiss.
        bytes[1] = 0x01;
        assert_eq!(NtpHeader::parse(&bytes).map(|h| h.kiss_code()), Ok(None));
    }

    #[test]
    fn reference_id_for_an_upstream_address() {
        // IPv4: the address itself.
        let v4 = ReferenceId::for_address("192.0.2.7".parse().unwrap());
        assert_eq!(v4.to_bytes(), [192, 0, 2, 7]);
        // IPv6: the first four octets of MD5(address), as ntpd and chrony compute it
        // (python3: hashlib.md5(ipaddress.IPv6Address('2001:db8::1').packed) -> 39ab9b37...).
        let v6 = ReferenceId::for_address("2001:db8::1".parse().unwrap());
        assert_eq!(v6.to_bits(), 0x39AB_9B37);
    }

    #[test]
    fn reference_id_display() {
        let locl = ReferenceId::from_bytes(*b"LOCL");
        assert_eq!(locl.to_string(), "LOCL");
        let gps = ReferenceId::from_bytes(*b"GPS\0");
        assert_eq!(gps.to_string(), "GPS");
        assert_eq!(gps.display_for_stratum(1), ".GPS.");
        let addr = ReferenceId::from_ipv4(Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(addr.to_bits(), 0xC000_0201);
        assert_eq!(addr.to_string(), "192.0.2.1");
        assert_eq!(addr.as_ascii(), None);
        assert_eq!(addr.display_for_stratum(2), "192.0.2.1");
        assert_eq!(locl.display_for_stratum(3), "76.79.67.76");
        assert_eq!(ReferenceId::from_bytes(*b"INIT").display_for_stratum(16), ".INIT.");
        assert_eq!(ReferenceId::ZERO.to_string(), "0.0.0.0");
        assert_eq!(ReferenceId::ZERO.display_for_stratum(0), "0.0.0.0");
        assert_eq!(ReferenceId::from_bytes([b'A', 0x01, b'B', 0]).display_for_stratum(1), ".A.B.");
        // chrony's `local stratum 1` (127.127.1.1): ASCII as ntpq shows it, not an address.
        assert_eq!(ReferenceId::from_bits(0x7F7F_0101).display_for_stratum(1), "......");
        assert_eq!(ReferenceId::from_bytes(*b"LOCL").display_for_stratum(1), ".LOCL.");
        assert_eq!(ReferenceId::from_bits(0x7F7F_0101).display_for_stratum(2), "127.127.1.1");
        assert_eq!(ReferenceId::from_bits(0x4C4F_434C), locl);
        assert_eq!(format!("{locl:?}"), "ReferenceId(LOCL = 4c4f434c)");
    }

    #[test]
    fn bits_round_trip() {
        for bits in 0u8..4 {
            assert_eq!(LeapIndicator::from_bits(bits).to_bits(), bits);
        }
        for bits in 0u8..8 {
            assert_eq!(Mode::from_bits(bits).to_bits(), bits);
        }
        assert_eq!(Mode::Control.to_string(), "6 (control)");
    }

    #[test]
    fn counter_names_are_distinct_and_listed() {
        let samples = [
            WireError::TooShort { needed: 48, got: 0 },
            WireError::UnsupportedVersion(0),
            WireError::UnsupportedMode(Mode::Control),
            WireError::BadExtensionLength { offset: 0, length: 0 },
            WireError::TruncatedExtension { offset: 0, length: 0, available: 0 },
            WireError::TooManyExtensions { max: 0 },
            WireError::TrailingData { offset: 0, len: 0 },
            WireError::BadCryptoNak { key_id: 1 },
            WireError::BadMacLength { len: 0 },
            WireError::AmbiguousExtension { offset: 0, length: 0 },
            WireError::ExtensionsNotAllowed { version: 3 },
            WireError::BufferTooSmall { needed: 0, got: 0 },
        ];
        let names: Vec<&str> = samples.iter().map(WireError::counter_name).collect();
        assert_eq!(names, WireError::COUNTER_NAMES);
        for name in &names {
            assert!(name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{name}");
        }
        assert_eq!(samples[2].to_string(), "unsupported NTP mode 6 (control)");
    }

    /// Owned material for a [`PacketRepr`]: header, extension (type, value) pairs, and a MAC.
    type OwnedRepr = (NtpHeader, Vec<(u16, Vec<u8>)>, Option<(u32, Vec<u8>)>);

    fn arb_header(versions: core::ops::RangeInclusive<u8>) -> impl Strategy<Value = NtpHeader> {
        (
            (0u8..4, versions, 0u8..6, any::<u8>(), any::<i8>(), any::<i8>()),
            (any::<u32>(), any::<u32>(), any::<[u8; 4]>()),
            (any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>()),
        )
            .prop_map(
                |((li, version, mode, stratum, poll, precision), (rd, rdisp, id), ts)| NtpHeader {
                    leap: LeapIndicator::from_bits(li),
                    version,
                    mode: Mode::from_bits(mode),
                    stratum,
                    poll,
                    precision,
                    root_delay: NtpShort::from_bits(rd),
                    root_dispersion: NtpShort::from_bits(rdisp),
                    reference_id: ReferenceId::from_bytes(id),
                    reference_ts: NtpTimestamp::from_bits(ts.0),
                    origin_ts: NtpTimestamp::from_bits(ts.1),
                    receive_ts: NtpTimestamp::from_bits(ts.2),
                    transmit_ts: NtpTimestamp::from_bits(ts.3),
                },
            )
    }

    fn arb_mac() -> impl Strategy<Value = Option<(u32, Vec<u8>)>> {
        prop_oneof![
            Just(None),
            Just(Some((0, Vec::new()))),
            (any::<u32>(), prop::collection::vec(any::<u8>(), 16)).prop_map(Some),
            (any::<u32>(), prop::collection::vec(any::<u8>(), 20)).prop_map(Some),
        ]
    }

    fn arb_owned_repr() -> impl Strategy<Value = OwnedRepr> {
        let ext = (
            any::<u16>(),
            (3usize..20).prop_flat_map(|words| prop::collection::vec(any::<u8>(), words * 4)),
        );
        prop_oneof![
            (arb_header(1..=3), Just(Vec::new()), arb_mac()),
            (arb_header(4..=4), prop::collection::vec(ext, 0..=3), arb_mac()),
        ]
        .prop_map(|(header, mut exts, mac)| {
            // A field starting 4, 20 or 24 bytes before the end would re-parse as a MAC (RFC
            // 7822 §7.5). Only the last field can (the others have at least 16 + 16 bytes after
            // their start); grow it by 8 bytes, which moves it out of that range.
            let mac_len = mac.as_ref().map_or(0, |(_, digest)| 4 + digest.len());
            if let Some((_, value)) = exts.last_mut() {
                if matches!(4 + value.len() + mac_len, 4 | 20 | 24) {
                    value.extend_from_slice(&[0u8; 8]);
                }
            }
            (header, exts, mac)
        })
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
            if let Ok(repr) = PacketRepr::parse(&bytes) {
                // Whatever parses accounts for every byte and re-emits identically.
                prop_assert_eq!(repr.buffer_len(), bytes.len());
                prop_assert_eq!(repr.to_vec(), Ok(bytes.clone()));
            }
        }

        #[test]
        fn view_accessors_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..100)) {
            for view in [Packet::new_unchecked(&bytes[..])]
                .into_iter()
                .chain(Packet::new_checked(&bytes[..]).ok())
            {
                let header = NtpHeader::from_packet(&view);
                prop_assert_eq!(header.version, view.version());
                let _ = (view.leap(), view.payload(), header.kiss_code());
                let _ = header.reference_id.display_for_stratum(header.stratum);
            }
        }

        #[test]
        fn header_bytes_round_trip(
            mut bytes in any::<[u8; 48]>(),
            version in 1u8..=4,
            mode in 0u8..6,
        ) {
            bytes[0] = (bytes[0] & 0xC0) | (version << 3) | mode;
            let header = NtpHeader::parse(&bytes);
            prop_assert!(header.is_ok());
            let header = header.unwrap_or_else(|_| chrony_header());
            prop_assert_eq!(header.to_bytes(), bytes);
            prop_assert_eq!(PacketRepr::parse(&bytes).map(|r| r.header), Ok(header));
        }

        /// Random bytes rarely get past the version check; mutating valid packets exercises
        /// the trailer parser's edges (lengths off by a little, cut-off fields) instead.
        #[test]
        fn mutated_packets_never_panic(
            (header, exts, mac) in arb_owned_repr(),
            cut in any::<prop::sample::Index>(),
            flip in any::<prop::sample::Index>(),
            xor in 1u8..,
            extra in prop::collection::vec(any::<u8>(), 0..8),
        ) {
            let repr = PacketRepr {
                header,
                extensions: exts
                    .iter()
                    .map(|(field_type, value)| ExtensionField { field_type: *field_type, value })
                    .collect(),
                mac: mac.as_ref().map(|(key_id, digest)| Mac { key_id: *key_id, digest }),
            };
            let mut bytes = repr.to_vec().unwrap_or_default();
            let at = flip.index(bytes.len().max(1));
            if let Some(b) = bytes.get_mut(at) {
                *b ^= xor;
            }
            bytes.extend_from_slice(&extra);
            bytes.truncate(cut.index(bytes.len() + 1));
            if let Ok(parsed) = PacketRepr::parse(&bytes) {
                prop_assert_eq!(parsed.to_vec(), Ok(bytes.clone()));
            }
        }

        #[test]
        fn repr_round_trip((header, exts, mac) in arb_owned_repr()) {
            let repr = PacketRepr {
                header,
                extensions: exts
                    .iter()
                    .map(|(field_type, value)| ExtensionField { field_type: *field_type, value })
                    .collect(),
                mac: mac.as_ref().map(|(key_id, digest)| Mac { key_id: *key_id, digest }),
            };
            let bytes = repr.to_vec();
            prop_assert!(bytes.is_ok(), "{:?}", bytes);
            let bytes = bytes.unwrap_or_default();
            prop_assert_eq!(bytes.len(), repr.buffer_len());
            prop_assert_eq!(PacketRepr::parse(&bytes), Ok(repr));
        }
    }
}
