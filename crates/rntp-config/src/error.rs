//! Diagnostics: what the parser found, where, and how bad it is.
//!
//! Every finding is a [`Diagnostic`] carrying a file, a 1-based line and
//! column, a [`Severity`] and a typed [`DiagnosticKind`]. A diagnostic keeps
//! a span into its file's text (shared by every diagnostic of that file, never
//! copied per diagnostic), so that `Display` can show an error's line with a
//! caret underneath, rustc style; the line is only looked up when shown.
//! [`Diags`] keeps at most [`MAX_DIAGNOSTICS`] errors and as many warnings and
//! counts the rest. This module only describes findings; it does not decide
//! what is an error (that is the parser's job) and it performs no I/O.

use std::fmt;
use std::net::IpAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::host::HostNameError;

/// How serious a [`Diagnostic`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Severity {
    /// The configuration cannot be used; loading fails.
    Error,
    /// The configuration loads, but something was ignored or looks wrong.
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Error => "error",
            Self::Warning => "warning",
        })
    }
}

/// What kind of value a directive or option wanted, for "expected X" messages.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Expected {
    /// A decimal integer within an inclusive range.
    Integer {
        /// Smallest accepted value.
        min: i64,
        /// Largest accepted value.
        max: i64,
    },
    /// A DNS host name or an IPv4/IPv6 literal.
    HostOrAddress,
    /// A file-system path.
    Path,
    /// A DNS resolver address with an optional port.
    ResolverAddress,
    /// Any single word (the value of an option rntpd ignores).
    Value,
    /// One of a fixed set of keywords.
    OneOf(&'static [&'static str]),
    /// What may follow `restrict`: `default`, `source` or an IP address.
    RestrictTarget,
    /// A netmask written as an IPv4 or IPv6 address.
    Netmask,
    /// What may follow `interface listen`: an IP address or a wildcard
    /// keyword.
    ListenAddress,
    /// A loopback IP address (`127.0.0.1`, `::1`): where the metrics
    /// endpoint may listen.
    LoopbackAddress,
    /// A decimal number of seconds within an inclusive range, given in
    /// microseconds (the finest unit accepted).
    Seconds {
        /// Smallest accepted value, in microseconds.
        min_us: u64,
        /// Largest accepted value, in microseconds.
        max_us: u64,
    },
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Integer { min, max } => write!(f, "an integer from {min} to {max}"),
            Self::HostOrAddress => f.write_str("a host name or an IP address"),
            Self::Path => f.write_str("a file path"),
            Self::ResolverAddress => f.write_str(
                "an IP address with an optional port, such as 192.0.2.53, 192.0.2.53:5353, \
                 [2001:db8::53]:53 or ::1",
            ),
            Self::Value => f.write_str("a value"),
            Self::OneOf(words) => write!(f, "one of {}", words.join(", ")),
            Self::RestrictTarget => {
                f.write_str("`default`, `source` or an IP address, such as 192.0.2.0 or 2001:db8::")
            }
            Self::Netmask => {
                f.write_str("a netmask such as 255.255.255.0 or ffff:ffff:ffff:ffff::")
            }
            Self::ListenAddress => f.write_str(
                "an IP address (such as 192.0.2.1, ::1 or [2001:db8::1]) or one of all, \
                 wildcard, ipv4, ipv6",
            ),
            Self::LoopbackAddress => f.write_str(
                "a loopback address such as 127.0.0.1 or ::1 (the metrics endpoint has no access \
                 control; put a proxy in front of it to publish it)",
            ),
            Self::Seconds { min_us, max_us } => write!(
                f,
                "a number of seconds from {} to {} (decimals allowed, at most 6 digits after the \
                 point)",
                Secs(*min_us),
                Secs(*max_us)
            ),
        }
    }
}

/// Microseconds shown as seconds without trailing zeros (`128000` as
/// `0.128`).
struct Secs(u64);

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (whole, frac) = (self.0 / 1_000_000, self.0 % 1_000_000);
        if frac == 0 {
            return write!(f, "{whole}");
        }
        let digits = format!("{frac:06}");
        write!(f, "{whole}.{}", digits.trim_end_matches('0'))
    }
}

/// Formats an optional "did you mean" hint, including its leading separator.
fn did_you_mean(suggestion: &Option<&'static str>) -> String {
    match suggestion {
        Some(s) => format!(" (did you mean `{s}`?)"),
        None => String::new(),
    }
}

/// An example mask of the family named `family` ("IPv4" or "IPv6").
fn mask_example(family: &str) -> &'static str {
    if family == "IPv6" {
        "ffff:ffff:ffff:ffff:: (/64)"
    } else {
        "255.255.255.0 (/24)"
    }
}

/// Escapes a word taken from the file so that control characters in a
/// hostile or corrupted file cannot drive the admin's terminal.
fn esc(s: &str) -> String {
    s.escape_debug().to_string()
}

/// One kind of finding. `Display` gives the message shown after
/// `FILE:LINE:COL: error:`; it names what was found and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DiagnosticKind {
    /// A `"` opened a quoted word that the line never closes.
    #[error("unterminated quoted string; expected a closing `\"` before the end of the line")]
    UnterminatedQuote,

    /// The first word of a line is not a directive that ntpd, NTPsec or
    /// rntpd knows.
    #[error(
        "unknown directive `{}`; expected a directive such as server, pool, tos, driftfile, \
         includefile, resolver{}",
        esc(found),
        did_you_mean(suggestion)
    )]
    UnknownDirective {
        /// The word found.
        found: String,
        /// A known directive spelled similarly, if any.
        suggestion: Option<&'static str>,
    },

    /// A directive that ntpd or NTPsec supports but rntpd does not (yet);
    /// the whole line is ignored.
    #[error("`{directive}` is not supported by rntpd yet; line ignored")]
    UnsupportedDirective {
        /// The directive.
        directive: String,
    },

    /// A directive or option needs a value and the line ended (or the next
    /// word is another option).
    #[error("{what} expects {expected}, found end of line")]
    MissingValue {
        /// The directive or option that needs the value.
        what: String,
        /// What it expects.
        expected: Expected,
    },

    /// A value is not of the expected form or is out of range.
    #[error("{what} expects {expected}, found \"{}\"", esc(found))]
    BadValue {
        /// The directive or option the value belongs to.
        what: String,
        /// What it expects.
        expected: Expected,
        /// The word found.
        found: String,
    },

    /// A source host is neither an IP literal nor a valid DNS host name.
    #[error(
        "{directive} expects a host name or an IP address, found \"{}\": {reason}",
        esc(found)
    )]
    InvalidHost {
        /// `server` or `pool`.
        directive: String,
        /// The word found.
        found: String,
        /// Why it is not a valid host name.
        reason: HostNameError,
    },

    /// An IPv6 literal carries a zone index (`fe80::1%eth0`), which rntpd
    /// cannot represent yet.
    #[error(
        "IPv6 zone index in \"{}\" is not supported by rntpd yet; expected an address without \
         `%interface`",
        esc(found)
    )]
    ScopedAddress {
        /// The word found.
        found: String,
    },

    /// A `server 127.127.t.u` line: ntpd's reference-clock pseudo-address.
    /// rntpd has no reference clocks, so the line is ignored.
    #[error(
        "\"{found}\" is an ntpd reference-clock address; reference clocks are not supported by \
         rntpd yet; line ignored"
    )]
    RefclockAddress {
        /// The address found.
        found: String,
    },

    /// An option word that is not valid for this directive.
    #[error(
        "unknown option `{}` for {directive}; expected one of {}{}",
        esc(found),
        expected.join(", "),
        did_you_mean(suggestion)
    )]
    UnknownOption {
        /// The directive the option was given to.
        directive: String,
        /// The word found.
        found: String,
        /// The options rntpd accepts there.
        expected: &'static [&'static str],
        /// An accepted option spelled similarly, if any.
        suggestion: Option<&'static str>,
    },

    /// An option that ntpd or NTPsec accepts but rntpd ignores (yet); the
    /// rest of the line is still used.
    #[error("option `{option}` of {directive} is not supported by rntpd yet; option ignored")]
    UnsupportedOption {
        /// The directive the option was given to.
        directive: String,
        /// The option.
        option: String,
    },

    /// An option valid on some directives but not this one, e.g.
    /// `maxsources` on a `server` line.
    #[error("option `{option}` is only valid on a {allowed_on} line, not on a {directive} line")]
    OptionNotAllowed {
        /// The option.
        option: String,
        /// The directive it was given to.
        directive: String,
        /// The directive it belongs to.
        allowed_on: &'static str,
    },

    /// A directive got more arguments than it takes.
    #[error("{directive} takes {takes}; unexpected extra argument \"{}\"", esc(found))]
    UnexpectedArgument {
        /// The directive.
        directive: String,
        /// How many arguments it takes, in words.
        takes: &'static str,
        /// The first extra word.
        found: String,
    },

    /// The same option appears twice on one line; the last one wins.
    #[error(
        "option `{option}` is given more than once on this {directive} line; the last one wins"
    )]
    DuplicateOption {
        /// The directive.
        directive: String,
        /// The repeated option.
        option: String,
    },

    /// A directive that may appear only once appears again; the last one
    /// wins.
    #[error(
        "`{directive}` was already given at {}:{}; the last one wins",
        previous_file.display(),
        previous_line
    )]
    RepeatedDirective {
        /// The directive.
        directive: String,
        /// File of the earlier occurrence.
        previous_file: PathBuf,
        /// Line of the earlier occurrence.
        previous_line: u32,
    },

    /// `minpoll` is larger than `maxpoll` on a source line.
    #[error(
        "minpoll {minpoll} is greater than maxpoll {maxpoll}; expected minpoll <= maxpoll \
         (defaults: minpoll 6, maxpoll 10)"
    )]
    PollRange {
        /// The effective minpoll.
        minpoll: i8,
        /// The effective maxpoll.
        maxpoll: i8,
    },

    /// Two `tos` values violate their ordering, e.g. minclock > maxclock.
    #[error(
        "tos {lower} {lower_value} is greater than {upper} {upper_value}; expected {lower} <= \
         {upper}"
    )]
    TosOrder {
        /// Name of the value that must be the smaller one.
        lower: &'static str,
        /// Its effective value.
        lower_value: u8,
        /// Name of the value that must be the larger one.
        upper: &'static str,
        /// Its effective value.
        upper_value: u8,
    },

    /// `resolve floor` is above `resolve ceiling`.
    #[error(
        "resolve floor {floor} s is above resolve ceiling {ceiling} s; the floor must not \
         exceed the ceiling"
    )]
    ResolveOrder {
        /// Effective floor.
        floor: u32,
        /// Effective ceiling.
        ceiling: u32,
    },

    /// An `includefile` could not be read.
    #[error("cannot read includefile \"{}\": {reason}", path.display())]
    IncludeFailed {
        /// The resolved path.
        path: PathBuf,
        /// The operating system's explanation.
        reason: String,
    },

    /// An `includefile` names a file that is already being read further up
    /// the include chain.
    #[error(
        "includefile \"{}\" is already being read (include loop); expected each file at most once \
         per include chain",
        path.display()
    )]
    IncludeLoop {
        /// The resolved path.
        path: PathBuf,
    },

    /// Includes are nested deeper than the limit.
    #[error(
        "includefile \"{}\" is nested more than {limit} levels deep; expected at most {limit}",
        path.display()
    )]
    IncludeTooDeep {
        /// The resolved path.
        path: PathBuf,
        /// The nesting limit.
        limit: usize,
    },

    /// An `interface` (or `interface listen`) form that rntpd does not
    /// implement: `ignore`, `drop`, an interface name or an address prefix.
    /// The line is ignored; rntpd serves only on `interface listen` addresses.
    #[error(
        "`interface {}` is not supported by rntpd yet; line ignored (rntpd serves time only on \
         the addresses named by `interface listen ADDRESS` lines)",
        esc(form)
    )]
    UnsupportedInterface {
        /// The words after `interface`, as written.
        form: String,
    },

    /// The same address and port appear on a second `interface listen`
    /// line (possibly through `all`); the repeat is ignored.
    #[error(
        "`interface listen` {addr} port {port} was already given at {}:{}; this one is ignored",
        previous_file.display(),
        previous_line
    )]
    RepeatedListen {
        /// The local address.
        addr: IpAddr,
        /// The port.
        port: u16,
        /// File of the earlier line.
        previous_file: PathBuf,
        /// Line number of the earlier line.
        previous_line: u32,
    },

    /// A `restrict` line names a host rather than an address. rntpd does
    /// not resolve names when it reads its configuration, so the line is
    /// ignored.
    #[error(
        "restrict by host name (\"{}\") is not supported by rntpd yet, because names are not \
         resolved when the configuration is read; expected `default` or an IP address; line \
         ignored",
        esc(found)
    )]
    RestrictHostName {
        /// The name found.
        found: String,
    },

    /// A `restrict` flag that only means something with authentication
    /// (`notrust`, `mssntp`), which rntpd does not have yet. The flag is
    /// ignored; the rest of the line applies.
    #[error(
        "restrict flag `{flag}` needs authentication, which rntpd does not have yet, so it \
         cannot be honoured; flag ignored (the rest of the line still applies)"
    )]
    RestrictNeedsAuth {
        /// The flag.
        flag: String,
    },

    /// `-4`/`-6` on a `restrict` line whose address is of the other family.
    #[error(
        "`{flag}` limits this restrict line to {wanted} addresses, but \"{}\" is not one; \
         expected an {wanted} address, or no `{flag}`",
        esc(address)
    )]
    FamilyMismatch {
        /// The family flag as written.
        flag: String,
        /// `IPv4` or `IPv6`, the family the flag asks for.
        wanted: &'static str,
        /// The address as written.
        address: String,
    },

    /// A `restrict` mask of the other family than the address.
    #[error(
        "mask \"{}\" is an {mask_family} mask but the address is {address_family}; expected an \
         {address_family} mask such as {}",
        esc(mask),
        mask_example(address_family)
    )]
    MaskFamily {
        /// The mask as written.
        mask: String,
        /// `IPv4` or `IPv6`: the mask's family.
        mask_family: &'static str,
        /// `IPv4` or `IPv6`: the address's family.
        address_family: &'static str,
    },

    /// A `restrict` mask whose one bits are not all at the front (e.g.
    /// `255.0.255.0`); rntpd accepts only prefix masks.
    #[error(
        "mask \"{}\" is not a contiguous netmask; expected one bits followed only by zero \
         bits, such as {}",
        esc(mask),
        mask_example(family)
    )]
    NonContiguousMask {
        /// The mask as written.
        mask: String,
        /// `IPv4` or `IPv6`.
        family: &'static str,
    },

    /// A `server`, `pool` or `peer` line asks for authenticated time
    /// (`key N`, `autokey`, `nts`, NTS options). rntpd cannot authenticate
    /// yet, and polling the source without it would silently downgrade the
    /// security the administrator asked for, so this is an error.
    #[error(
        "`{}` on this {directive} line asks for authenticated time, but rntpd does not support \
         NTP authentication yet; remove `{}` or use another daemon for authenticated time",
        esc(option),
        esc(option)
    )]
    AuthenticationNotSupported {
        /// `server`, `pool` or `peer`.
        directive: String,
        /// The option as written, with its value if it takes one (`key 5`).
        option: String,
    },

    /// A `peer` line: symmetric active mode is not supported; the host is
    /// polled as a server (client mode), as NTPsec does.
    #[error(
        "`peer` asks for symmetric active mode, which rntpd does not support; polled as a server \
         (write `server` to silence this warning)"
    )]
    PeerAsServer,

    /// A line is longer than [`crate::MAX_LINE_BYTES`]; it is not read.
    #[error(
        "line is {length} bytes long; rntpd reads lines of at most {limit} bytes (comments \
         included); line ignored"
    )]
    LineTooLong {
        /// Length of the line in bytes (without the newline).
        length: usize,
        /// The limit.
        limit: usize,
    },

    /// A line has more words than [`crate::MAX_WORDS_PER_LINE`]; it is not
    /// read. The caret points at the first word over the limit.
    #[error(
        "line has more than {limit} words; rntpd reads at most {limit} per line; line ignored"
    )]
    TooManyWords {
        /// The limit.
        limit: usize,
    },

    /// The configuration has more directive lines than
    /// [`crate::MAX_DIRECTIVES`] (all files together); reading stops here.
    #[error(
        "more than {limit} directives in the configuration (all files together); rntpd stops \
         reading here"
    )]
    TooManyDirectives {
        /// The limit.
        limit: usize,
    },

    /// More `includefile` reads than [`crate::MAX_INCLUDES`] (all files
    /// together, a file included twice counts twice).
    #[error(
        "includefile \"{}\" would be include number {}; rntpd reads at most {limit} includes per \
         configuration",
        path.display(),
        limit + 1
    )]
    TooManyIncludes {
        /// The resolved path.
        path: PathBuf,
        /// The limit.
        limit: usize,
    },

    /// The configuration (all files together, an include counted each time
    /// it is read) is larger than [`crate::MAX_CONFIG_BYTES`].
    #[error(
        "with \"{}\" the configuration reaches {total} bytes; rntpd reads at most {limit} bytes \
         of configuration, all files together",
        path.display()
    )]
    ConfigTooLarge {
        /// The file that went over the limit.
        path: PathBuf,
        /// Bytes read so far, this file included.
        total: u64,
        /// The limit.
        limit: u64,
    },

    /// More errors or warnings were found than are listed (at most
    /// [`MAX_DIAGNOSTICS`] of each); this is always the last diagnostic.
    #[error(
        "{} more diagnostics not shown ({errors} errors, {warnings} warnings); rntpd lists at \
         most {MAX_DIAGNOSTICS} errors and {MAX_DIAGNOSTICS} warnings",
        errors + warnings
    )]
    MoreNotShown {
        /// Errors found but not listed.
        errors: usize,
        /// Warnings found but not listed.
        warnings: usize,
    },

    /// The top-level configuration file could not be read.
    #[error("cannot read configuration file: {reason}")]
    ReadFailed {
        /// The operating system's explanation.
        reason: String,
    },

    /// A line other than `server`, `pool` or `peer` in a `*.sources` file
    /// of a `sourcedir`.
    #[error(
        "`{}` is not allowed in a *.sources file; expected only server, pool or peer lines \
         (other directives belong in the main configuration file)",
        esc(directive)
    )]
    NotInSourcesFile {
        /// The directive found.
        directive: String,
    },

    /// A `sourcedir` directory exists but could not be listed.
    #[error("cannot read source directory: {reason}")]
    SourceDirFailed {
        /// The operating system's explanation.
        reason: String,
    },

    /// The `sourcedir` directories hold more `*.sources` files than
    /// [`crate::MAX_SOURCE_FILES`], all together.
    #[error(
        "more than {limit} *.sources files in the source directories together; rntpd reads at \
         most {limit}"
    )]
    TooManySourceFiles {
        /// The limit.
        limit: usize,
    },

    /// `logconfig`: ntpd's selection of message classes, which has no
    /// equivalent in rntpd's severity-based log; the line is ignored.
    #[error(
        "`logconfig` is not supported: rntpd selects log messages by severity; use `rntpd \
         --log-level LEVEL` (error, warn, info, debug or trace) instead; line ignored"
    )]
    LogconfigIgnored,
}

impl DiagnosticKind {
    /// The severity this kind of finding always has.
    pub fn severity(&self) -> Severity {
        match self {
            Self::UnsupportedDirective { .. }
            | Self::UnsupportedOption { .. }
            | Self::RefclockAddress { .. }
            | Self::UnsupportedInterface { .. }
            | Self::RepeatedListen { .. }
            | Self::RestrictHostName { .. }
            | Self::RestrictNeedsAuth { .. }
            | Self::DuplicateOption { .. }
            | Self::RepeatedDirective { .. }
            | Self::PeerAsServer
            | Self::LogconfigIgnored
            | Self::MoreNotShown { .. } => Severity::Warning,
            _ => Severity::Error,
        }
    }
}

/// Most errors (and, separately, warnings) kept from one load; the rest are
/// counted in one final [`DiagnosticKind::MoreNotShown`]. Keeps a hostile
/// file from turning every word into a kept diagnostic.
pub const MAX_DIAGNOSTICS: usize = 100;

/// Lines longer than this (in characters) are shown as a window around the
/// caret, so that one diagnostic never prints kilobytes to a terminal.
const SHOWN_CHARS: usize = 100;

/// Where in a file's text a diagnostic points. The text is shared by all
/// diagnostics of the file (one reference count, no copy); the line is only
/// looked up when the diagnostic is displayed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Span {
    text: Arc<str>,
    /// Byte range of the line within `text`, without its line ending.
    line: Range<usize>,
    /// Characters to underline from the column on.
    width: u32,
}

/// One finding, located at `file:line:col` (1-based; `line` 0 means the
/// whole file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file the finding is in (as given or as resolved from includes).
    pub file: PathBuf,
    /// 1-based line number; 0 when the finding concerns the whole file.
    pub line: u32,
    /// 1-based column, counted in characters; 0 when `line` is 0.
    pub col: u32,
    /// Error or warning.
    pub severity: Severity,
    /// What was found.
    pub kind: DiagnosticKind,
    span: Option<Span>,
}

impl Diagnostic {
    /// Builds a diagnostic pointing at `width` characters from `line:col`,
    /// where `line_range` is that line's byte range in `text`.
    pub(crate) fn at(
        file: PathBuf,
        line: u32,
        col: u32,
        width: u32,
        text: &Arc<str>,
        line_range: Range<usize>,
        kind: DiagnosticKind,
    ) -> Self {
        // A range that is not a line of `text` would make Display panic;
        // the parser never builds one, but drop the span rather than trust it.
        let span = text.get(line_range.clone()).map(|_| Span {
            text: Arc::clone(text),
            line: line_range,
            width: width.max(1),
        });
        Self { file, line, col, severity: kind.severity(), kind, span }
    }

    /// Builds a diagnostic about a whole file (no line to point at).
    pub(crate) fn whole_file(file: PathBuf, kind: DiagnosticKind) -> Self {
        Self { file, line: 0, col: 0, severity: kind.severity(), kind, span: None }
    }

    /// The text of the line this diagnostic points into, if it has one.
    pub fn source_line(&self) -> Option<&str> {
        self.span.as_ref().and_then(|s| s.text.get(s.line.clone()))
    }
}

impl fmt::Display for Diagnostic {
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
        // Warnings stay on one line so that a file full of ignored ntpd
        // directives remains readable; errors get the context an admin needs
        // to find the exact word.
        if self.severity != Severity::Error {
            return Ok(());
        }
        let (Some(text), Some(span)) = (self.source_line(), self.span.as_ref()) else {
            return Ok(());
        };
        let gutter = self.line.to_string();
        let pad = " ".repeat(gutter.len());
        let caret_at = (self.col as usize).saturating_sub(1);
        let (first, last, shown_width) = window(text.chars().count(), caret_at, span.width);
        let mut shown = String::new();
        let mut caret_prefix = String::new();
        if first > 0 {
            shown.push('…');
            caret_prefix.push(' ');
        }
        for (i, ch) in text.chars().enumerate().skip(first).take(last - first) {
            // Control characters would corrupt the terminal; tabs are kept
            // (in both lines) so that the caret stays aligned.
            let safe = if ch == '\t' || !ch.is_control() { ch } else { '\u{FFFD}' };
            shown.push(safe);
            if i < caret_at {
                caret_prefix.push(if ch == '\t' { '\t' } else { ' ' });
            }
        }
        if last < text.chars().count() {
            shown.push('…');
        }
        // A caret past the end of the text (a missing value) still needs
        // its column.
        for _ in last.max(first)..caret_at {
            caret_prefix.push(' ');
        }
        write!(f, "\n{gutter} | {shown}\n{pad} | {caret_prefix}{}", "^".repeat(shown_width))
    }
}

/// The characters `first..last` of a line of `len` characters to show for a
/// caret at character `caret` (0-based) that is `width` wide, and how many
/// carets to draw: the whole line when it is short, otherwise
/// [`SHOWN_CHARS`] characters around the caret.
fn window(len: usize, caret: usize, width: u32) -> (usize, usize, usize) {
    let width = (width as usize).max(1);
    if len <= SHOWN_CHARS {
        return (0, len, width);
    }
    // Some context before the caret, the rest after it.
    let first = caret.saturating_sub(SHOWN_CHARS / 4).min(len.saturating_sub(SHOWN_CHARS));
    let last = (first + SHOWN_CHARS).min(len);
    let shown_width = width.min(last.saturating_sub(caret).max(1));
    (first, last, shown_width)
}

/// Loading failed: at least one error. Carries every error and every warning
/// found, so an admin can fix the whole file in one pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors {
    /// All errors, in file order.
    pub errors: Vec<Diagnostic>,
    /// All warnings, in file order.
    pub warnings: Vec<Diagnostic>,
}

impl fmt::Display for ConfigErrors {
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

impl std::error::Error for ConfigErrors {}

impl ConfigErrors {
    /// How many errors were found, including those not listed.
    pub fn error_count(&self) -> usize {
        self.errors.len() + omitted(&self.warnings).0
    }

    /// How many warnings were found, including those not listed (the final
    /// "not shown" note is not itself counted).
    pub fn warning_count(&self) -> usize {
        warning_count(&self.warnings)
    }
}

/// Warnings in `warnings`, plus those its final note says were not listed.
pub(crate) fn warning_count(warnings: &[Diagnostic]) -> usize {
    let (_, omitted_warnings) = omitted(warnings);
    let notes = warnings.iter().filter(|d| matches!(d.kind, DiagnosticKind::MoreNotShown { .. }));
    warnings.len() - notes.count() + omitted_warnings
}

/// (errors, warnings) not listed, from the final note if there is one.
fn omitted(warnings: &[Diagnostic]) -> (usize, usize) {
    match warnings.last().map(|d| &d.kind) {
        Some(DiagnosticKind::MoreNotShown { errors, warnings }) => (*errors, *warnings),
        _ => (0, 0),
    }
}

/// A diagnostic waiting to be sorted: `seq` is the reading order of its
/// line across all files, so that reports come out in the order an admin
/// reads the configuration even though some checks run at the end.
#[derive(Debug)]
pub(crate) struct Pending {
    pub(crate) seq: u64,
    pub(crate) diag: Diagnostic,
}

/// Collects diagnostics while parsing: at most [`MAX_DIAGNOSTICS`] errors
/// and as many warnings are kept, the rest only counted.
#[derive(Debug)]
pub(crate) struct Diags {
    top: PathBuf,
    errors: Vec<Pending>,
    warnings: Vec<Pending>,
    omitted_errors: usize,
    omitted_warnings: usize,
}

impl Diags {
    /// Collects diagnostics for a configuration whose top-level file is
    /// `top` (the final "not shown" note names it).
    pub(crate) fn new(top: &Path) -> Self {
        Self {
            top: top.to_path_buf(),
            errors: Vec::new(),
            warnings: Vec::new(),
            omitted_errors: 0,
            omitted_warnings: 0,
        }
    }

    pub(crate) fn push(&mut self, p: Pending) {
        let (kept, omitted) = match p.diag.severity {
            Severity::Error => (&mut self.errors, &mut self.omitted_errors),
            Severity::Warning => (&mut self.warnings, &mut self.omitted_warnings),
        };
        if kept.len() < MAX_DIAGNOSTICS {
            kept.push(p);
        } else {
            *omitted += 1;
        }
    }

    pub(crate) fn has_errors(&self) -> bool {
        !self.errors.is_empty() || self.omitted_errors > 0
    }

    /// Errors and warnings, each in reading order; the warnings end with a
    /// "not shown" note if anything was left out.
    pub(crate) fn into_sorted(self) -> (Vec<Diagnostic>, Vec<Diagnostic>) {
        let sorted = |mut list: Vec<Pending>| {
            // Stable: findings on one line keep the order they were made in.
            list.sort_by_key(|p| p.seq);
            list.into_iter().map(|p| p.diag).collect::<Vec<_>>()
        };
        let errors = sorted(self.errors);
        let mut warnings = sorted(self.warnings);
        if self.omitted_errors + self.omitted_warnings > 0 {
            warnings.push(Diagnostic::whole_file(
                self.top,
                DiagnosticKind::MoreNotShown {
                    errors: self.omitted_errors,
                    warnings: self.omitted_warnings,
                },
            ));
        }
        (errors, warnings)
    }
}
