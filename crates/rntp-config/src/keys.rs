//! The symmetric key file (`keys FILE`): ntp.keys(5) as ntpd and NTPsec read it, and chrony's
//! key file, parsed into [`rntp_proto::auth::Key`]s with `file:line:col` diagnostics.
//!
//! [`parse_keys`] is pure (bytes in, keys out); [`load_keys`] reads the file, refusing anything
//! but a regular file of at most [`MAX_KEY_FILE_BYTES`], and warns when the file is readable by
//! every user or writable by others. Which keys are *trusted* (`trustedkey`) is the
//! configuration's business, not this file's: [`KeyFile::into_store`] trusts none.
//!
//! # Format
//!
//! One key per line; `#` starts a comment anywhere, and a line whose first word starts with
//! `!`, `;` or `%` is a comment too (chrony). Words are separated by spaces or tabs.
//!
//! | form | example | read as |
//! |---|---|---|
//! | `ID TYPE KEY` (ntp.keys) | `1 MD5 hunter2` | a key of up to 20 characters is ASCII, 21 to 64 characters are hex (2 digits a byte) |
//! | `ID TYPE ASCII:KEY` (chrony) | `2 SHA1 ASCII:correct-horse` | ASCII, any length up to 64 |
//! | `ID TYPE HEX:KEY` (chrony) | `3 AES128 HEX:7EA62AE64D190114D46D5A082F948EC1` | hex |
//! | `ID KEY` (chrony) | `4 tulip` | type MD5; `KEY` as in the two rows above, or bare ASCII of any length |
//!
//! * `ID`: 1 to 4294967295. ntpd and NTPsec accept only 1 to 65535 (warning above that).
//! * `TYPE`: see [`Digest::from_name`]: `MD5`, `SHA1`, `AES128CMAC` and their aliases.
//! * ASCII keys are printable ASCII without spaces and `#`; a secret is 1 to 64 bytes;
//!   `AES128CMAC` keys are exactly 16 bytes (16 ASCII characters or 32 hex digits).
//!
//! The two syntaxes disagree in one place: a bare key of more than 20 characters on a
//! three-word line is hex for ntpd/NTPsec but ASCII for chrony. rntpd follows ntp.keys(5);
//! chrony users write `ASCII:` (or `HEX:`), which is what `chronyc keygen` produces anyway.
//!
//! Where ntpd or NTPsec would guess (cut a long hex key, drop an odd hex digit, pad or cut an
//! AES key, read an unknown `M...` type as MD5, take the first of two keys with the same id),
//! rntpd reports an error instead: a key that silently differs from the peer's fails later,
//! far from its cause.
//!
//! Diagnostics never show a key: the echoed source line has every key character replaced by
//! `*`, and messages name columns, not characters.

use std::fmt;
use std::fs::{File, FileType};
use std::io::Read;
use std::path::{Path, PathBuf};

use rntp_proto::auth::{Digest, DigestNameError, Key, KeyError, KeyId, KeyStore};
use zeroize::Zeroizing;

use crate::Severity;

/// Largest key file read. Real ones are a few hundred bytes.
pub const MAX_KEY_FILE_BYTES: u64 = 1024 * 1024;

/// Largest key id ntpd and NTPsec accept (`NTP_MAXKEY`).
const NTPD_MAX_KEY_ID: u32 = 65535;
/// Longest key ntp.keys(5) reads as ASCII; longer ones are hex.
const NTP_MAX_ASCII_KEY: usize = 20;
/// Most hex digits ntpd and NTPsec read (32 bytes); they cut longer keys.
const NTP_MAX_HEX_DIGITS: usize = 64;
/// Keys shorter than this (80 bits) get a warning, as in chrony.
const MIN_ADVISED_KEY_BYTES: usize = 10;

/// The keys of a key file that loaded, with the warnings found on the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFile {
    /// The keys, in file order (ids are unique).
    pub keys: Vec<Key>,
    /// Everything that looked wrong but did not stop loading, in file order (whole-file
    /// findings such as permissions first).
    pub warnings: Vec<KeyDiagnostic>,
}

impl KeyFile {
    /// The keys as a [`KeyStore`] with no key trusted yet: trust the `trustedkey` ids (or,
    /// for chrony-style configurations without `trustedkey`, all of them).
    pub fn into_store(self) -> KeyStore {
        self.keys.into_iter().collect()
    }
}

/// A key file that did not load: every error and warning found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFileErrors {
    /// All errors, in file order.
    pub errors: Vec<KeyDiagnostic>,
    /// All warnings, in file order.
    pub warnings: Vec<KeyDiagnostic>,
}

impl fmt::Display for KeyFileErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.errors.iter().chain(&self.warnings).enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for KeyFileErrors {}

/// What kind of non-regular file a key file path named.
fn file_kind(ft: FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_fifo() {
            return "FIFO";
        }
        if ft.is_socket() {
            return "socket";
        }
        if ft.is_char_device() {
            return "character device";
        }
        if ft.is_block_device() {
            return "block device";
        }
    }
    if ft.is_dir() {
        "directory"
    } else {
        "special file"
    }
}

/// One kind of finding in a key file. `Display` gives the message after
/// `FILE:LINE:COL: error:`. No variant carries key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyDiagnosticKind {
    /// The key id is not a decimal integer in range.
    #[error("key id expects an integer from 1 to 4294967295, found \"{}\"", found.escape_debug())]
    BadKeyId {
        /// The word found.
        found: String,
    },
    /// Key id 0, which is reserved.
    #[error(
        "key id 0 is reserved (a MAC with key id 0 is a crypto-NAK); expected 1 to 65535 \
         (up to 4294967295 if no ntpd or NTPsec peer uses the key)"
    )]
    ZeroKeyId,
    /// A key id that ntpd and NTPsec cannot use.
    #[error("key id {id} is above 65535: ntpd and NTPsec cannot use it (chrony and rntpd can)")]
    LargeKeyId {
        /// The key id.
        id: u32,
    },
    /// A line with a key id and nothing else.
    #[error(
        "key {id} has no key; expected `ID TYPE KEY` (ntp.keys) or `ID [TYPE] ASCII:KEY` / \
         `ID [TYPE] HEX:KEY` (chrony)"
    )]
    MissingKey {
        /// The key id.
        id: u32,
    },
    /// The type is not one rntpd implements.
    #[error(transparent)]
    BadType(#[from] DigestNameError),
    /// More than three words.
    #[error(
        "unexpected word after the key; expected `ID TYPE KEY` (a key cannot contain spaces or \
         `#`: write it in hex)"
    )]
    ExtraWords,
    /// `ASCII:` or `HEX:` with nothing after it.
    #[error("empty key after `{prefix}`")]
    EmptyKey {
        /// The prefix.
        prefix: &'static str,
    },
    /// An ASCII key with a character outside printable ASCII.
    #[error(
        "the key contains a character that is not printable ASCII; use a hex key (`HEX:` \
         prefix, or 21 to 64 hex digits)"
    )]
    NonPrintableKey,
    /// A hex key with a non-hex character.
    #[error(
        "the key is not valid hex (only 0-9, a-f and A-F){}",
        if *length_rule {
            "; keys longer than 20 characters are hex in ntp.keys(5): for a longer ASCII key \
             write `ASCII:` before it (chrony syntax)"
        } else {
            ""
        }
    )]
    BadHexDigit {
        /// Whether the key is hex only because it is longer than 20 characters.
        length_rule: bool,
    },
    /// A hex key with an odd number of digits.
    #[error("the hex key has an odd number of digits ({digits}); expected two digits per byte")]
    OddHexDigits {
        /// How many digits it has.
        digits: usize,
    },
    /// A bare hex key longer than ntpd and NTPsec read.
    #[error(
        "the hex key has {digits} digits; expected at most 64 (32 bytes): ntpd and NTPsec would \
         silently use only the first 64"
    )]
    HexKeyTooLong {
        /// How many digits it has.
        digits: usize,
    },
    /// A decoded secret longer than rntpd keeps.
    #[error("the key is {len} bytes long; expected at most {max}")]
    SecretTooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// An AES-128-CMAC key that is not 16 bytes.
    #[error(
        "AES128CMAC keys must be exactly 16 bytes (16 ASCII characters or 32 hex digits), found \
         {len} bytes (ntpd and NTPsec would pad or cut it, chrony refuses it)"
    )]
    CmacKeyLength {
        /// The key's length.
        len: usize,
    },
    /// A short key.
    #[error(
        "key {id} is only {len} bytes ({} bits); use at least 16 random bytes, e.g. 32 hex digits",
        len * 8
    )]
    ShortKey {
        /// The key id.
        id: u32,
        /// Its length in bytes.
        len: usize,
    },
    /// Two keys with the same id.
    #[error("key {id} is already defined on line {previous_line}; expected each key id once")]
    DuplicateKeyId {
        /// The key id.
        id: u32,
        /// Line of the first definition.
        previous_line: u32,
    },
    /// A line that is not UTF-8 (outside comments).
    #[error("not valid UTF-8; expected a text line `ID TYPE KEY`")]
    InvalidUtf8,
    /// The file holds no key.
    #[error("key file defines no keys")]
    NoKeys,
    /// The file could not be read.
    #[error("cannot read key file: {reason}")]
    ReadFailed {
        /// The operating system's explanation.
        reason: String,
    },
    /// The path is not a regular file (a directory, FIFO, device, ...).
    #[error("key file is a {kind}; expected a regular file")]
    NotRegularFile {
        /// What it is.
        kind: &'static str,
    },
    /// The file is larger than [`MAX_KEY_FILE_BYTES`].
    #[error("key file is larger than {max} bytes; expected a small text file of key lines")]
    TooLarge {
        /// The limit.
        max: u64,
    },
    /// Every user may read the file.
    #[error(
        "key file is readable by every user (mode {mode:04o}): anyone on this host can forge \
         authenticated packets; run `chmod o-rwx` on it"
    )]
    WorldReadable {
        /// The permission bits.
        mode: u32,
    },
    /// Group or others may write the file.
    #[error(
        "key file is writable by group or others (mode {mode:04o}): they can replace the keys; \
         run `chmod go-w` on it"
    )]
    WritableByOthers {
        /// The permission bits.
        mode: u32,
    },
}

impl KeyDiagnosticKind {
    /// The severity this kind of finding always has.
    pub fn severity(&self) -> Severity {
        match self {
            Self::LargeKeyId { .. }
            | Self::ShortKey { .. }
            | Self::NoKeys
            | Self::WorldReadable { .. }
            | Self::WritableByOthers { .. } => Severity::Warning,
            _ => Severity::Error,
        }
    }
}

/// One finding in a key file, at `file:line:col` (1-based; line 0 is the whole file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyDiagnostic {
    /// The key file.
    pub file: PathBuf,
    /// 1-based line; 0 for the whole file.
    pub line: u32,
    /// 1-based column in characters; 0 when `line` is 0.
    pub col: u32,
    /// Error or warning.
    pub severity: Severity,
    /// What was found.
    pub kind: KeyDiagnosticKind,
    /// The line with keys masked, and the caret width.
    snippet: Option<(String, u32)>,
}

impl KeyDiagnostic {
    fn whole_file(file: &Path, kind: KeyDiagnosticKind) -> Self {
        KeyDiagnostic {
            file: file.to_path_buf(),
            line: 0,
            col: 0,
            severity: kind.severity(),
            kind,
            snippet: None,
        }
    }

    /// The source line shown under an error, with every key character replaced by `*`.
    pub fn masked_line(&self) -> Option<&str> {
        self.snippet.as_ref().map(|(s, _)| s.as_str())
    }
}

impl fmt::Display for KeyDiagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            return write!(f, "{}: {}: {}", self.file.display(), self.severity, self.kind);
        }
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.file.display(),
            self.line,
            self.col,
            self.severity,
            self.kind
        )?;
        // Warnings stay on one line; errors show the (masked) line and a caret.
        let Some((text, width)) =
            self.snippet.as_ref().filter(|_| self.severity == Severity::Error)
        else {
            return Ok(());
        };
        let gutter = self.line.to_string();
        let pad = " ".repeat(gutter.len());
        let mut shown = String::with_capacity(text.len());
        let mut caret_prefix = String::new();
        for (i, ch) in text.chars().enumerate() {
            // Control characters would drive the terminal; tabs stay so the caret aligns.
            shown.push(if ch == '\t' || !ch.is_control() { ch } else { '\u{FFFD}' });
            if (i as u64) + 1 < u64::from(self.col) {
                caret_prefix.push(if ch == '\t' { '\t' } else { ' ' });
            }
        }
        for _ in text.chars().count() as u64..u64::from(self.col.saturating_sub(1)) {
            caret_prefix.push(' ');
        }
        write!(f, "\n{gutter} | {shown}\n{pad} | {caret_prefix}{}", "^".repeat(*width as usize))
    }
}

/// A word of a line: its 1-based column, width in characters, and text.
#[derive(Clone, Copy)]
struct Word<'a> {
    col: u32,
    width: u32,
    text: &'a str,
}

/// Splits `line` into words at ASCII whitespace, with character columns.
fn words(line: &str) -> Vec<Word<'_>> {
    let mut out = Vec::new();
    let mut start: Option<(usize, u32)> = None;
    let mut col = 0u32;
    for (i, ch) in line.char_indices() {
        col = col.saturating_add(1);
        if ch.is_ascii_whitespace() {
            if let Some((s, c)) = start.take() {
                out.push(Word { col: c, width: col - c, text: &line[s..i] });
            }
        } else if start.is_none() {
            start = Some((i, col));
        }
    }
    if let Some((s, c)) = start {
        out.push(Word { col: c, width: col + 1 - c, text: &line[s..] });
    }
    out
}

/// The line as shown in diagnostics: words from the first key position on (word 2 of a
/// two-word line, words 3.. otherwise) replaced by `*`, comment dropped.
fn mask(line: &str, words: &[Word<'_>]) -> String {
    let first_secret = if words.len() == 2 { 1 } else { 2 };
    let mut shown = String::with_capacity(line.len());
    let mut col = 0u32;
    let secret_from = words.get(first_secret).map_or(u32::MAX, |w| w.col);
    for ch in line.chars() {
        col = col.saturating_add(1);
        shown.push(if col >= secret_from && !ch.is_ascii_whitespace() { '*' } else { ch });
    }
    shown.trim_end().to_owned()
}

/// Collects findings while parsing one file.
struct Diags<'p> {
    file: &'p Path,
    errors: Vec<KeyDiagnostic>,
    warnings: Vec<KeyDiagnostic>,
}

impl Diags<'_> {
    fn push(&mut self, d: KeyDiagnostic) {
        match d.severity {
            Severity::Error => self.errors.push(d),
            Severity::Warning => self.warnings.push(d),
        }
    }

    fn at(&mut self, line: u32, col: u32, width: u32, masked: &str, kind: KeyDiagnosticKind) {
        self.push(KeyDiagnostic {
            file: self.file.to_path_buf(),
            line,
            col,
            severity: kind.severity(),
            kind,
            snippet: Some((masked.to_owned(), width.max(1))),
        });
    }
}

/// A key's characters decoded into its secret, or where and why that failed (column offset
/// within the word, 0-based, and the finding).
type Decoded = Result<Zeroizing<Vec<u8>>, (u32, u32, KeyDiagnosticKind)>;

/// Checks that every character of `text` is printable ASCII; returns its bytes.
fn ascii_key(text: &str, offset: u32) -> Decoded {
    if let Some(i) = text.chars().position(|c| !c.is_ascii_graphic()) {
        return Err((offset + i as u32, 1, KeyDiagnosticKind::NonPrintableKey));
    }
    let mut v = Zeroizing::new(Vec::with_capacity(text.len()));
    v.extend_from_slice(text.as_bytes());
    Ok(v)
}

/// Decodes hex digits; `length_rule` marks a bare key that is hex only because of its length.
fn hex_key(text: &str, offset: u32, length_rule: bool) -> Decoded {
    if let Some(i) = text.chars().position(|c| !c.is_ascii_hexdigit()) {
        return Err((offset + i as u32, 1, KeyDiagnosticKind::BadHexDigit { length_rule }));
    }
    // All ASCII from here on, so bytes are characters.
    let digits = text.len();
    if !digits.is_multiple_of(2) {
        return Err((offset, digits as u32, KeyDiagnosticKind::OddHexDigits { digits }));
    }
    let mut v = Zeroizing::new(Vec::with_capacity(digits / 2));
    for pair in text.as_bytes().chunks_exact(2) {
        let hi = (pair[0] as char).to_digit(16).unwrap_or(0);
        let lo = (pair[1] as char).to_digit(16).unwrap_or(0);
        // Two hex digits make at most 0xFF.
        v.push((hi * 16 + lo) as u8);
    }
    Ok(v)
}

/// Decodes a key word. `bare_is_chrony` is set for chrony's two-word `ID KEY` form, where a
/// bare key is ASCII of any length.
fn decode_key(text: &str, bare_is_chrony: bool) -> Decoded {
    for (prefix, hex) in [("ASCII:", false), ("HEX:", true)] {
        if let Some(rest) = text.strip_prefix(prefix) {
            let offset = prefix.len() as u32;
            if rest.is_empty() {
                return Err((0, offset, KeyDiagnosticKind::EmptyKey { prefix }));
            }
            return if hex { hex_key(rest, offset, false) } else { ascii_key(rest, offset) };
        }
    }
    let chars = text.chars().count();
    if bare_is_chrony || chars <= NTP_MAX_ASCII_KEY {
        ascii_key(text, 0)
    } else if chars > NTP_MAX_HEX_DIGITS && text.is_ascii() {
        Err((0, chars as u32, KeyDiagnosticKind::HexKeyTooLong { digits: chars }))
    } else {
        hex_key(text, 0, true)
    }
}

/// Parses one line (already cut at `#`); returns the key if the line defines a valid one.
fn parse_line(
    line_no: u32,
    content: &str,
    diags: &mut Diags<'_>,
    seen: &mut Vec<(KeyId, u32)>,
) -> Option<Key> {
    let ws = words(content);
    let first = ws.first()?;
    if first.text.starts_with(['!', ';', '%']) {
        return None;
    }
    let masked = mask(content, &ws);
    let mut report = |w: &Word<'_>, kind| diags.at(line_no, w.col, w.width, &masked, kind);

    let id = match first.text.parse::<u32>() {
        Ok(0) => {
            report(first, KeyDiagnosticKind::ZeroKeyId);
            return None;
        }
        Ok(id) if first.text.bytes().all(|b| b.is_ascii_digit()) => id,
        _ => {
            report(first, KeyDiagnosticKind::BadKeyId { found: first.text.to_owned() });
            return None;
        }
    };
    let (digest, key_word, chrony_two_words) = match ws.as_slice() {
        [_] => {
            report(first, KeyDiagnosticKind::MissingKey { id });
            return None;
        }
        // chrony's `ID KEY`; but a lone type name is a forgotten key, not a key.
        [_, key]
            if !matches!(Digest::from_name(key.text), Err(DigestNameError::Unknown { .. })) =>
        {
            report(key, KeyDiagnosticKind::MissingKey { id });
            return None;
        }
        [_, key] => (Ok(Digest::Md5), key, true),
        [_, ty, key] => (Digest::from_name(ty.text).map_err(|e| (ty, e)), key, false),
        [_, _, _, extra, ..] => {
            report(extra, KeyDiagnosticKind::ExtraWords);
            return None;
        }
        [] => return None,
    };
    let digest = match digest {
        Ok(d) => d,
        Err((ty, e)) => {
            report(ty, KeyDiagnosticKind::BadType(e));
            return None;
        }
    };
    let secret = match decode_key(key_word.text, chrony_two_words) {
        Ok(s) => s,
        Err((offset, width, kind)) => {
            let at = Word { col: key_word.col + offset, width, text: "" };
            report(&at, kind);
            return None;
        }
    };
    let key = match Key::new(KeyId(id), digest, &secret) {
        Ok(key) => key,
        Err(e) => {
            let kind = match e {
                KeyError::WrongSecretLength { len, .. } => KeyDiagnosticKind::CmacKeyLength { len },
                KeyError::SecretTooLong { len, max } => {
                    KeyDiagnosticKind::SecretTooLong { len, max }
                }
                // Id 0 and empty keys were refused above; keep a sane report regardless.
                KeyError::ZeroId => KeyDiagnosticKind::ZeroKeyId,
                _ => KeyDiagnosticKind::MissingKey { id },
            };
            report(key_word, kind);
            return None;
        }
    };
    if let Some((_, previous_line)) = seen.iter().find(|(k, _)| *k == key.id()) {
        let previous_line = *previous_line;
        report(first, KeyDiagnosticKind::DuplicateKeyId { id, previous_line });
        return None;
    }
    seen.push((key.id(), line_no));
    if id > NTPD_MAX_KEY_ID {
        report(first, KeyDiagnosticKind::LargeKeyId { id });
    }
    if key.secret_len() < MIN_ADVISED_KEY_BYTES {
        report(key_word, KeyDiagnosticKind::ShortKey { id, len: key.secret_len() });
    }
    Some(key)
}

/// Parses the contents of a key file. Pure: `file` is only used in diagnostics.
///
/// Every line is checked and every problem reported; one error makes the whole file fail
/// (keep the keys you had on a reload that fails).
pub fn parse_keys(file: &Path, bytes: &[u8]) -> Result<KeyFile, KeyFileErrors> {
    let mut diags = Diags { file, errors: Vec::new(), warnings: Vec::new() };
    let mut keys = Vec::new();
    let mut seen = Vec::new();
    for (i, raw) in bytes.split(|b| *b == b'\n').enumerate() {
        let line_no = u32::try_from(i + 1).unwrap_or(u32::MAX);
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        // `#` is ASCII, so cutting there is safe before decoding, and comments may hold any
        // bytes.
        let content = raw.split(|b| *b == b'#').next().unwrap_or_default();
        let content = match std::str::from_utf8(content) {
            Ok(text) => text,
            Err(e) => {
                let col = String::from_utf8_lossy(&content[..e.valid_up_to()]).chars().count();
                diags.push(KeyDiagnostic {
                    file: file.to_path_buf(),
                    line: line_no,
                    col: u32::try_from(col + 1).unwrap_or(u32::MAX),
                    severity: Severity::Error,
                    kind: KeyDiagnosticKind::InvalidUtf8,
                    snippet: None,
                });
                continue;
            }
        };
        if let Some(key) = parse_line(line_no, content, &mut diags, &mut seen) {
            keys.push(key);
        }
    }
    if diags.errors.is_empty() && keys.is_empty() {
        diags.push(KeyDiagnostic::whole_file(file, KeyDiagnosticKind::NoKeys));
    }
    if diags.errors.is_empty() {
        Ok(KeyFile { keys, warnings: diags.warnings })
    } else {
        Err(KeyFileErrors { errors: diags.errors, warnings: diags.warnings })
    }
}

/// Reads and parses the key file at `path`.
///
/// Refuses a path that is not a regular file (a FIFO or device would block or never end) and
/// a file over [`MAX_KEY_FILE_BYTES`]. Warns when the file is readable by every user or
/// writable by group or others. (Group-readable is fine: it is how a daemon running as its own
/// group reads a root-owned key file, e.g. Debian's `0640 root:_chrony`.) The file's bytes are
/// zeroed after parsing.
pub fn load_keys(path: &Path) -> Result<KeyFile, KeyFileErrors> {
    let mut warnings = Vec::new();
    let bytes = match read_key_file(path, &mut warnings) {
        Ok(bytes) => bytes,
        Err(kind) => {
            return Err(KeyFileErrors {
                errors: vec![KeyDiagnostic::whole_file(path, kind)],
                warnings,
            })
        }
    };
    match parse_keys(path, &bytes) {
        Ok(mut loaded) => {
            warnings.append(&mut loaded.warnings);
            Ok(KeyFile { keys: loaded.keys, warnings })
        }
        Err(mut failed) => {
            warnings.append(&mut failed.warnings);
            Err(KeyFileErrors { errors: failed.errors, warnings })
        }
    }
}

/// The file's contents, after the file-type, size and permission checks.
fn read_key_file(
    path: &Path,
    warnings: &mut Vec<KeyDiagnostic>,
) -> Result<Zeroizing<Vec<u8>>, KeyDiagnosticKind> {
    let failed = |e: std::io::Error| KeyDiagnosticKind::ReadFailed { reason: e.to_string() };
    // Check the type before opening: opening a FIFO for reading blocks until a writer comes.
    let meta = std::fs::metadata(path).map_err(failed)?;
    if !meta.is_file() {
        return Err(KeyDiagnosticKind::NotRegularFile { kind: file_kind(meta.file_type()) });
    }
    let file = File::open(path).map_err(failed)?;
    // Check again what was actually opened, in case the path was swapped meanwhile.
    let meta = file.metadata().map_err(failed)?;
    if !meta.is_file() {
        return Err(KeyDiagnosticKind::NotRegularFile { kind: file_kind(meta.file_type()) });
    }
    if meta.len() > MAX_KEY_FILE_BYTES {
        return Err(KeyDiagnosticKind::TooLarge { max: MAX_KEY_FILE_BYTES });
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o004 != 0 {
            warnings
                .push(KeyDiagnostic::whole_file(path, KeyDiagnosticKind::WorldReadable { mode }));
        }
        if mode & 0o022 != 0 {
            warnings.push(KeyDiagnostic::whole_file(
                path,
                KeyDiagnosticKind::WritableByOthers { mode },
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = warnings;
    // Sized up front so the buffer holding secrets is not reallocated (leaving copies behind)
    // unless the file grew since the metadata was read.
    let capacity = usize::try_from(meta.len()).unwrap_or(0).saturating_add(1);
    let mut bytes = Zeroizing::new(Vec::with_capacity(capacity));
    file.take(MAX_KEY_FILE_BYTES + 1).read_to_end(&mut bytes).map_err(failed)?;
    if bytes.len() as u64 > MAX_KEY_FILE_BYTES {
        return Err(KeyDiagnosticKind::TooLarge { max: MAX_KEY_FILE_BYTES });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests;
