//! The leap second table (`leapfile FILE`): IANA's / NIST's `leap-seconds.list`, as shipped by
//! tzdata (`/usr/share/zoneinfo/leap-seconds.list`) and read by ntpd, NTPsec and chrony.
//!
//! [`parse_leapfile`] is pure (text in, [`LeapTable`] out); [`load_leapfile`] reads the file,
//! refusing anything but a regular file of at most [`MAX_LEAPFILE_BYTES`].
//!
//! # Format
//! ```text
//! #$     3676924800          last update, NTP seconds
//! #@    3928521600           expiry, NTP seconds: the table must not be used after it
//! 2272060800    10    # 1 Jan 1972
//! 3692217600    37    # 1 Jan 2017   NTP seconds the new TAI − UTC takes effect, TAI − UTC
//! #h    16edd0f0 3666784f 37db7917 3287f6e8 3d2f2ea5
//! ```
//! Other `#` lines are comments. NTP seconds count from 1900 (era 0, valid until 2036; the file
//! format has no era). The `#h` hash (SHA-1 of the data) is not checked, as chrony does not:
//! the file comes from the operating system's package manager, which checks it already. An
//! entry must be at 00:00:00 UTC on the first of a month and move TAI − UTC by one second.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use rntp_proto::steer::leap::{LeapTable, LeapTableError};

/// Largest leap file accepted (the real one is about 10 KB).
pub const MAX_LEAPFILE_BYTES: u64 = 256 * 1024;
/// Most entries accepted (27 leap seconds in 50 years so far).
pub const MAX_LEAP_ENTRIES: usize = 1_000;
/// Seconds from 1900 (NTP) to 1970 (Unix).
const NTP_UNIX: i64 = 2_208_988_800;

/// Why a leap file was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LeapFileError {
    /// It could not be read.
    #[error("cannot read the leap second file: {0}")]
    Io(#[from] std::io::Error),
    /// It is not a regular file.
    #[error("the leap second file is not a regular file")]
    NotAFile,
    /// It is larger than [`MAX_LEAPFILE_BYTES`].
    #[error(
        "the leap second file is larger than {MAX_LEAPFILE_BYTES} bytes: not a leap-seconds.list"
    )]
    TooLarge,
    /// It is not text.
    #[error("the leap second file is not UTF-8 text")]
    NotText,
    /// A line is neither a comment nor `NTP-SECONDS TAI-UTC`.
    #[error("line {line}: expected `NTP-SECONDS TAI-UTC [# comment]`")]
    BadLine {
        /// The line (1-based).
        line: usize,
    },
    /// No `#@` expiry line: a table without expiry cannot be trusted.
    #[error("no expiry (`#@`) line: not a leap-seconds.list")]
    NoExpiry,
    /// More than [`MAX_LEAP_ENTRIES`] entries.
    #[error("more than {MAX_LEAP_ENTRIES} entries: not a leap-seconds.list")]
    TooManyEntries,
    /// The entries do not form a table.
    #[error("{0}")]
    Table(#[from] LeapTableError),
}

/// Parses the text of a `leap-seconds.list`. Never panics.
pub fn parse_leapfile(text: &str) -> Result<LeapTable, LeapFileError> {
    let mut entries = Vec::new();
    let (mut updated, mut expires) = (None, None);
    for (i, line) in text.lines().enumerate() {
        let bad = LeapFileError::BadLine { line: i + 1 };
        if let Some(rest) = line.strip_prefix("#$") {
            updated = Some(ntp_seconds(rest.trim()).ok_or(bad)?);
            continue;
        }
        if let Some(rest) = line.strip_prefix("#@") {
            expires = Some(ntp_seconds(rest.trim()).ok_or(bad)?);
            continue;
        }
        let data = line.split('#').next().unwrap_or_default().trim();
        if data.is_empty() {
            continue;
        }
        let mut words = data.split_whitespace();
        let (Some(at), Some(offset), None) = (words.next(), words.next(), words.next()) else {
            return Err(bad);
        };
        let (Some(at), Ok(offset)) = (ntp_seconds(at), offset.parse::<i32>()) else {
            return Err(bad);
        };
        if entries.len() >= MAX_LEAP_ENTRIES {
            return Err(LeapFileError::TooManyEntries);
        }
        entries.push((at, offset));
    }
    let expires = expires.ok_or(LeapFileError::NoExpiry)?;
    Ok(LeapTable::new(&entries, updated.unwrap_or(0), expires)?)
}

/// NTP seconds (era 0, so 0..2^32) as Unix seconds.
fn ntp_seconds(word: &str) -> Option<i64> {
    let v: u32 = word.parse().ok()?;
    Some(i64::from(v) - NTP_UNIX)
}

/// Reads and parses the leap file at `path`: a regular file of at most
/// [`MAX_LEAPFILE_BYTES`].
pub fn load_leapfile(path: &Path) -> Result<LeapTable, LeapFileError> {
    let file = File::open(path)?;
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Err(LeapFileError::NotAFile);
    }
    if meta.len() > MAX_LEAPFILE_BYTES {
        return Err(LeapFileError::TooLarge);
    }
    let mut bytes = Vec::new();
    file.take(MAX_LEAPFILE_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_LEAPFILE_BYTES {
        return Err(LeapFileError::TooLarge);
    }
    let text = String::from_utf8(bytes).map_err(|_| LeapFileError::NotText)?;
    parse_leapfile(&text)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// tzdata's file (2023 edition; the 2025 one has no `#$` and `#h` lines).
    const SAMPLE: &str = "#\tIn the following text, the symbol '#' introduces\n\
        #\ta comment, which continues from that symbol until\n\
        #$\t 3676924800\n\
        #@\t3944332800\n\
        #\n\
        2272060800\t10\t# 1 Jan 1972\n\
        2287785600\t11\t# 1 Jul 1972\n\
        2303683200\t12\t# 1 Jan 1973\n\
        2335219200\t13\t# 1 Jan 1974\n\
        2366755200\t14\t# 1 Jan 1975\n\
        2398291200\t15\t# 1 Jan 1976\n\
        2429913600\t16\t# 1 Jan 1977\n\
        2461449600\t17\t# 1 Jan 1978\n\
        2492985600\t18\t# 1 Jan 1979\n\
        2524521600\t19\t# 1 Jan 1980\n\
        2571782400\t20\t# 1 Jul 1981\n\
        2603318400\t21\t# 1 Jul 1982\n\
        2634854400\t22\t# 1 Jul 1983\n\
        2698012800\t23\t# 1 Jul 1985\n\
        2776982400\t24\t# 1 Jan 1988\n\
        2840140800\t25\t# 1 Jan 1990\n\
        2871676800\t26\t# 1 Jan 1991\n\
        2918937600\t27\t# 1 Jul 1992\n\
        2950473600\t28\t# 1 Jul 1993\n\
        2982009600\t29\t# 1 Jul 1994\n\
        3029443200\t30\t# 1 Jan 1996\n\
        3076704000\t31\t# 1 Jul 1997\n\
        3124137600\t32\t# 1 Jan 1999\n\
        3345062400\t33\t# 1 Jan 2006\n\
        3439756800\t34\t# 1 Jan 2009\n\
        3550089600\t35\t# 1 Jul 2012\n\
        3644697600\t36\t# 1 Jul 2015\n\
        3692217600\t37\t# 1 Jan 2017\n\
        #\n\
        #h\t16edd0f0 3666784f 37db7917 3287f6e8 3d2f2ea5\n";

    #[test]
    fn reads_tzdatas_format() {
        let t = parse_leapfile(SAMPLE).unwrap();
        assert_eq!(t.updated(), 3_676_924_800 - NTP_UNIX);
        assert_eq!(t.expires(), 3_944_332_800 - NTP_UNIX, "2024-12-28");
        let leaps = t.leaps();
        assert_eq!(leaps.len(), 27);
        assert_eq!(leaps[26].at, 1_483_228_800, "2017-01-01");
        assert_eq!(leaps[26].tai_utc, 37);
        assert!(leaps.iter().all(|l| l.insert));
        assert_eq!(t.next_after(1_483_228_799).map(|l| l.at), Some(1_483_228_800));
        assert!(t.expired(t.expires()));
    }

    #[test]
    fn refuses_what_is_not_a_leap_table() {
        assert!(matches!(parse_leapfile("2272060800 10\n"), Err(LeapFileError::NoExpiry)));
        let bad = format!("{SAMPLE}3692217600\n");
        assert!(matches!(parse_leapfile(&bad), Err(LeapFileError::BadLine { line: 36 })));
        let bad = SAMPLE.replace("3692217600\t37", "3692217600\t39");
        assert!(matches!(parse_leapfile(&bad), Err(LeapFileError::Table(LeapTableError::Jump))));
        let bad = SAMPLE.replace("#@\t3944332800", "#@\tsoon");
        assert!(matches!(parse_leapfile(&bad), Err(LeapFileError::BadLine { line: 4 })));
        let bad = SAMPLE.replace("3692217600\t37", "3692217601\t37");
        assert!(matches!(
            parse_leapfile(&bad),
            Err(LeapFileError::Table(LeapTableError::NotMonthStart))
        ));
        let many: String = (0..=MAX_LEAP_ENTRIES).map(|_| "2272060800 10\n").collect();
        assert!(matches!(
            parse_leapfile(&format!("#@ 3944332800\n{many}")),
            Err(LeapFileError::TooManyEntries)
        ));
    }

    #[test]
    fn loads_regular_files_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("leap-seconds.list");
        std::fs::write(&path, SAMPLE).unwrap();
        assert_eq!(load_leapfile(&path).unwrap().leaps().len(), 27);
        assert!(matches!(load_leapfile(dir.path()), Err(LeapFileError::NotAFile)));
        assert!(matches!(load_leapfile(&dir.path().join("none")), Err(LeapFileError::Io(_))));
        std::fs::write(&path, vec![b'#'; MAX_LEAPFILE_BYTES as usize + 1]).unwrap();
        assert!(matches!(load_leapfile(&path), Err(LeapFileError::TooLarge)));
        std::fs::write(&path, [0xff, 0xfe, b'\n']).unwrap();
        assert!(matches!(load_leapfile(&path), Err(LeapFileError::NotText)));
    }

    /// The operating system's own copy, where there is one.
    #[test]
    fn reads_the_systems_tzdata_copy() {
        let path = Path::new("/usr/share/zoneinfo/leap-seconds.list");
        if !path.exists() {
            eprintln!("SKIPPED: no {} here", path.display());
            assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "CI must have tzdata");
            return;
        }
        let t = load_leapfile(path).unwrap();
        assert!(t.leaps().len() >= 27);
        assert!(t.expires() > 1_700_000_000);
    }

    proptest! {
        #[test]
        fn never_panics(text in ".{0,400}") {
            let _ = parse_leapfile(&text);
        }

        #[test]
        fn never_panics_on_near_misses(lines in prop::collection::vec(
            prop_oneof![
                Just("#@ 3944332800".to_string()),
                Just("#$ 3676924800".to_string()),
                "[0-9]{1,11}[ \t][-0-9]{1,4}",
                "#[@$h][ \t]?[0-9a-z ]{0,12}",
            ],
            0..20,
        )) {
            let _ = parse_leapfile(&lines.join("\n"));
        }
    }
}
