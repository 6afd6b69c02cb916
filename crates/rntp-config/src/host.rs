//! Source hosts: IP literals and validated DNS host names.
//!
//! A [`HostName`] is checked for DNS syntax only (RFC 1123 labels); it is
//! never resolved here, because this crate does no I/O. Resolution is the
//! daemon's business and happens later, possibly repeatedly.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// Why a word is not a valid DNS host name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HostNameError {
    /// Nothing left after removing an optional trailing dot.
    #[error("the host name is empty")]
    Empty,
    /// More than 253 characters.
    #[error("host names are at most 253 characters long, this one has {len}")]
    TooLong {
        /// The length found.
        len: usize,
    },
    /// Two dots in a row, or a leading dot.
    #[error("host names may not contain an empty label (two dots in a row or a leading dot)")]
    EmptyLabel,
    /// A label longer than 63 characters.
    #[error("each dot-separated label is at most 63 characters long, found one with {len}")]
    LabelTooLong {
        /// The length found.
        len: usize,
    },
    /// A character other than ASCII letters, digits, `-` and `.`.
    #[error("host names may only contain letters, digits, '-' and '.', found {ch:?}")]
    InvalidCharacter {
        /// The first offending character.
        ch: char,
    },
    /// A label starts or ends with `-`.
    #[error("labels may not start or end with '-'")]
    HyphenAtLabelEdge,
    /// The last label is all digits: this is a mistyped IPv4 address, not a
    /// name (no top-level domain is numeric).
    #[error("this looks like an IPv4 address but is not a valid one")]
    NumericTopLevel,
}

/// A syntactically valid DNS host name, lowercased, without trailing dot.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostName(String);

impl HostName {
    /// Longest accepted name, in characters (RFC 1035 presentation limit).
    pub const MAX_LEN: usize = 253;
    /// Longest accepted label, in characters.
    pub const MAX_LABEL_LEN: usize = 63;

    /// Validates `name` and normalises it (one trailing dot stripped,
    /// ASCII-lowercased).
    pub fn new(name: &str) -> Result<Self, HostNameError> {
        let name = name.strip_suffix('.').unwrap_or(name);
        if name.is_empty() {
            return Err(HostNameError::Empty);
        }
        if let Some(ch) =
            name.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '.'))
        {
            return Err(HostNameError::InvalidCharacter { ch });
        }
        // Only ASCII is left, so byte length equals character count.
        if name.len() > Self::MAX_LEN {
            return Err(HostNameError::TooLong { len: name.len() });
        }
        for label in name.split('.') {
            if label.is_empty() {
                return Err(HostNameError::EmptyLabel);
            }
            if label.len() > Self::MAX_LABEL_LEN {
                return Err(HostNameError::LabelTooLong { len: label.len() });
            }
            if label.starts_with('-') || label.ends_with('-') {
                return Err(HostNameError::HyphenAtLabelEdge);
            }
        }
        let last = name.rsplit('.').next().unwrap_or(name);
        if last.bytes().all(|b| b.is_ascii_digit()) {
            return Err(HostNameError::NumericTopLevel);
        }
        Ok(Self(name.to_ascii_lowercase()))
    }

    /// The normalised name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for HostName {
    type Err = HostNameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl AsRef<str> for HostName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for HostName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a source is: an IP literal, or a name the daemon resolves.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// An IPv4 or IPv6 literal.
    Ip(IpAddr),
    /// A DNS host name, kept unresolved.
    Name(HostName),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ip(ip) => ip.fmt(f),
            Self::Name(name) => name.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_case_and_trailing_dot() {
        assert_eq!(HostName::new("Time.Example.COM.").unwrap().as_str(), "time.example.com");
        assert_eq!(HostName::new("localhost").unwrap().as_str(), "localhost");
        assert_eq!(
            HostName::new("0.debian.pool.ntp.org").unwrap().as_str(),
            "0.debian.pool.ntp.org"
        );
    }

    #[test]
    fn rejects_bad_names() {
        assert_eq!(HostName::new(""), Err(HostNameError::Empty));
        assert_eq!(HostName::new("."), Err(HostNameError::Empty));
        assert_eq!(HostName::new("a..b"), Err(HostNameError::EmptyLabel));
        assert_eq!(HostName::new(".a"), Err(HostNameError::EmptyLabel));
        assert_eq!(HostName::new("a.b.."), Err(HostNameError::EmptyLabel));
        assert_eq!(HostName::new("exa_mple.com"), Err(HostNameError::InvalidCharacter { ch: '_' }));
        assert_eq!(
            HostName::new("ntp.example.com:123"),
            Err(HostNameError::InvalidCharacter { ch: ':' })
        );
        assert_eq!(HostName::new("bücher.de"), Err(HostNameError::InvalidCharacter { ch: 'ü' }));
        assert_eq!(HostName::new("-a.com"), Err(HostNameError::HyphenAtLabelEdge));
        assert_eq!(HostName::new("a-.com"), Err(HostNameError::HyphenAtLabelEdge));
        assert_eq!(HostName::new("192.168.1.256"), Err(HostNameError::NumericTopLevel));
        assert_eq!(HostName::new("1.2.3"), Err(HostNameError::NumericTopLevel));
    }

    #[test]
    fn length_limits() {
        let label63 = "a".repeat(63);
        assert!(HostName::new(&label63).is_ok());
        assert_eq!(HostName::new(&"a".repeat(64)), Err(HostNameError::LabelTooLong { len: 64 }));
        // 4 labels of 63 + 3 dots = 255 > 253.
        let long = [label63.as_str(); 4].join(".");
        assert_eq!(HostName::new(&long), Err(HostNameError::TooLong { len: 255 }));
        // 253 exactly is fine, and a trailing dot does not count.
        let ok = format!("{}.{}.{}.{}", label63, label63, label63, "a".repeat(61));
        assert_eq!(ok.len(), 253);
        assert!(HostName::new(&format!("{ok}.")).is_ok());
    }
}
