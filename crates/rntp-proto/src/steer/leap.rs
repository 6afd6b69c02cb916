//! Leap seconds: which one is pending, what clients are told, what the kernel is asked to do,
//! and the optional smear of the time served.
//!
//! # Where a leap second comes from
//! * A **leap table** (IANA `leap-seconds.list`, parsed by `rntp_config::leapfile`), while it
//!   has not expired: it names every leap second with its date, so it is believed over the
//!   sources. An expired table is ignored (the daemon warns when it loads one).
//! * Otherwise the **sources**: the system peer's leap indicator, as selection votes it. A
//!   source can only say "at the end of this month"; it is believed only for the end of June
//!   or December, the only dates ever used (chrony's rule), so a server that announces a leap
//!   by mistake in another month changes nothing.
//!
//! # What is done with it
//! * **Clients** are told (`LI` 1 or 2) during the whole month the leap ends, as RFC 5905
//!   says ("the last minute of the current month").
//! * **The kernel** is armed (`STA_INS`/`STA_DEL`) only on the UTC day of the leap: Linux
//!   inserts or deletes the second at the end of the day during which it sees the bit (at its
//!   next `second_overflow()`), so arming it earlier would put the leap at the wrong midnight.
//!   A step clears the kernel's bits, so the node sends the status again after every step.
//! * **Smearing** (`leapsmear SECONDS`, an rntpd extension): instead of announcing the leap,
//!   the time served to clients runs 1 s slower (faster for a deletion) over the SECONDS before
//!   the leap, linearly, so that it meets the system clock, which the kernel leaps at midnight,
//!   exactly then. Clients are told no leap (they must not apply it twice), so smeared and
//!   unsmeared time are never served together: the option applies to every address the node
//!   serves. The system clock itself is not smeared. The smear follows the node's monotonic
//!   clock, not the wall clock the kernel steps back during an inserted second.
//!
//! Sans-IO: the caller passes the UTC time (Unix seconds of the node's clock) and `now`.

use crate::time::Instant;
pub use crate::time::{civil_from_days, days_from_civil};
use crate::wire::LeapIndicator;

/// Seconds in a UTC day (a leap second day has one more or one fewer, which Unix time hides).
const DAY: i64 = 86_400;

/// Why a leap table was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LeapTableError {
    /// No entries.
    #[error("the leap table lists no leap seconds")]
    Empty,
    /// The dates do not increase.
    #[error("leap table entries are not in increasing date order")]
    Unordered,
    /// Two neighbouring entries differ by more than one second of TAI − UTC.
    #[error("TAI - UTC changes by more than one second between two entries")]
    Jump,
    /// An entry is not at 00:00:00 UTC on the first day of a month.
    #[error("a leap table entry is not at the start of a month")]
    NotMonthStart,
}

/// One leap second: at `at` (Unix time of the 00:00:00 UTC that follows it), TAI − UTC
/// becomes `tai_utc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeapSecond {
    /// Unix time of the first second after the leap (the first day of a month).
    pub at: i64,
    /// TAI − UTC from then on (s).
    pub tai_utc: i32,
    /// An inserted second (TAI − UTC grew); otherwise a deleted one.
    pub insert: bool,
}

/// A table of leap seconds and its validity, as `leap-seconds.list` gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeapTable {
    leaps: Vec<LeapSecond>,
    updated: i64,
    expires: i64,
}

impl LeapTable {
    /// A table from `(Unix time the new offset starts, TAI − UTC)` entries in date order (the
    /// first entry, 1972, sets the initial offset and is no leap), the file's update time and
    /// its expiry (Unix seconds).
    pub fn new(
        entries: &[(i64, i32)],
        updated: i64,
        expires: i64,
    ) -> Result<LeapTable, LeapTableError> {
        let Some(first) = entries.first() else { return Err(LeapTableError::Empty) };
        let mut leaps = Vec::with_capacity(entries.len());
        let mut prev = *first;
        if !month_start(first.0) {
            return Err(LeapTableError::NotMonthStart);
        }
        for &(at, tai_utc) in &entries[1..] {
            if at <= prev.0 {
                return Err(LeapTableError::Unordered);
            }
            if !month_start(at) {
                return Err(LeapTableError::NotMonthStart);
            }
            let step = i64::from(tai_utc) - i64::from(prev.1);
            if step.abs() != 1 {
                return Err(LeapTableError::Jump);
            }
            leaps.push(LeapSecond { at, tai_utc, insert: step > 0 });
            prev = (at, tai_utc);
        }
        Ok(LeapTable { leaps, updated, expires })
    }

    /// Unix time after which the table must not be trusted.
    pub fn expires(&self) -> i64 {
        self.expires
    }

    /// Unix time the table was last updated.
    pub fn updated(&self) -> i64 {
        self.updated
    }

    /// Whether the table has expired at `unix`.
    pub fn expired(&self, unix: i64) -> bool {
        unix >= self.expires
    }

    /// The leap seconds listed.
    pub fn leaps(&self) -> &[LeapSecond] {
        &self.leaps
    }

    /// The first leap second after `unix` (its `at` is later than `unix`).
    pub fn next_after(&self, unix: i64) -> Option<LeapSecond> {
        self.leaps.iter().copied().find(|l| l.at > unix)
    }
}

/// Leap-second settings of a node.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LeapConfig {
    /// The leap table (`leapfile`), if any.
    pub table: Option<LeapTable>,
    /// `leapsmear SECONDS`: smear served time over this many seconds before a leap instead of
    /// announcing it (`None`: announce, do not smear).
    pub smear: Option<f64>,
}

/// What to do about leap seconds now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeapDecision {
    /// The leap indicator to serve (`NoWarning` while smearing).
    pub announce: LeapIndicator,
    /// The leap to arm in the kernel (only on the day of the leap).
    pub arm: LeapIndicator,
}

/// The leap-second state machine: the smear's anchor between calls. See the module docs.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LeapState {
    config: LeapConfig,
    /// A smear in progress: the leap's instant on the monotonic clock, +1 for an inserted
    /// second (served time held back) or −1 for a deleted one, and the leap's Unix time.
    smear: Option<(Instant, f64, i64)>,
    /// The Unix time of the last leap a smear reached: during an inserted second the wall clock
    /// reads the last second before it again, and that leap must not start over.
    done: Option<i64>,
}

impl LeapState {
    /// A state for `config`.
    pub fn new(config: LeapConfig) -> Self {
        LeapState { config, smear: None, done: None }
    }

    /// The configuration.
    pub fn config(&self) -> &LeapConfig {
        &self.config
    }

    /// The leap second pending at the end of the month `utc` (Unix seconds) is in: from the
    /// table while it is valid, else from the sources' indicator for the end of June or
    /// December. `Some(true)`: an insertion.
    pub fn pending(&self, utc: f64, sources: LeapIndicator) -> Option<bool> {
        let unix = utc.floor() as i64;
        let month_end = next_month_start(unix);
        if let Some(table) = self.config.table.as_ref().filter(|t| !t.expired(unix)) {
            return table.next_after(unix).filter(|l| l.at == month_end).map(|l| l.insert);
        }
        let (_, month, _) = civil_from_days(unix.div_euclid(DAY));
        if month != 6 && month != 12 {
            return None;
        }
        match sources {
            LeapIndicator::AddSecond => Some(true),
            LeapIndicator::DeleteSecond => Some(false),
            _ => None,
        }
    }

    /// What to announce and arm at `now`, when the node's clock reads `utc` (Unix seconds) and
    /// the sources say `sources`. Starts (or ends) the smear as its window is reached.
    pub fn decide(&mut self, now: Instant, utc: f64, sources: LeapIndicator) -> LeapDecision {
        if let Some((at, _, leap)) = self.smear {
            if now >= at {
                self.smear = None;
                self.done = Some(leap);
            }
        }
        let unix = utc.floor() as i64;
        let month_end = next_month_start(unix);
        let nothing =
            LeapDecision { announce: LeapIndicator::NoWarning, arm: LeapIndicator::NoWarning };
        if self.done == Some(month_end) {
            return nothing;
        }
        let Some(insert) = self.pending(utc, sources) else { return nothing };
        let indicator = if insert { LeapIndicator::AddSecond } else { LeapIndicator::DeleteSecond };
        let arm = if unix.div_euclid(DAY) + 1 == month_end.div_euclid(DAY) {
            indicator
        } else {
            LeapIndicator::NoWarning
        };
        let Some(window) = self.config.smear.filter(|w| w.is_finite() && *w > 0.0) else {
            return LeapDecision { announce: indicator, arm };
        };
        let left = month_end as f64 - utc;
        if self.smear.is_none() && left > 0.0 && left <= window {
            let sign = if insert { 1.0 } else { -1.0 };
            self.smear = Some((now.add_secs_f64(left), sign, month_end));
        }
        LeapDecision { announce: LeapIndicator::NoWarning, arm }
    }

    /// The smear to add to served time at `now` (s): 0, or down to −1 s just before an
    /// inserted second (up to +1 s before a deleted one).
    pub fn smear_at(&self, now: Instant) -> f64 {
        let (Some((at, sign, _)), Some(window)) = (self.smear, self.config.smear) else {
            return 0.0;
        };
        let left = at.secs_since(now);
        if left <= 0.0 {
            return 0.0;
        }
        -sign * (1.0 - (left / window).min(1.0))
    }
}

/// Whether `unix` is 00:00:00 UTC on the first day of a month.
fn month_start(unix: i64) -> bool {
    unix.rem_euclid(DAY) == 0 && civil_from_days(unix.div_euclid(DAY)).2 == 1
}

/// Unix time of the first second of the month after the one `unix` is in.
pub fn next_month_start(unix: i64) -> i64 {
    let (y, m, _) = civil_from_days(unix.div_euclid(DAY));
    let (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    days_from_civil(y, m, 1) * DAY
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unix(y: i64, m: u32, d: u32) -> i64 {
        days_from_civil(y, m, d) * DAY
    }

    fn at(secs: f64) -> Instant {
        Instant::from_nanos((secs * 1e9) as u64)
    }

    /// The 2016-12-31 leap second and a hypothetical 2027-06-30 deletion.
    fn table(expires: i64) -> LeapTable {
        let entries = [(unix(2015, 7, 1), 36), (unix(2017, 1, 1), 37), (unix(2027, 7, 1), 36)];
        LeapTable::new(&entries, unix(2016, 7, 1), expires).unwrap()
    }

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(unix(2017, 1, 1), 1_483_228_800);
        assert_eq!(civil_from_days(unix(2024, 2, 29) / DAY), (2024, 2, 29));
        assert_eq!(next_month_start(unix(2016, 12, 31) + 86_399), unix(2017, 1, 1));
        assert_eq!(next_month_start(unix(2016, 2, 1)), unix(2016, 3, 1));
        for d in (-800_000..800_000).step_by(997) {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
    }

    #[test]
    fn tables_are_checked() {
        assert_eq!(LeapTable::new(&[], 0, 1), Err(LeapTableError::Empty));
        let e = [(unix(2017, 1, 1), 37), (unix(2015, 7, 1), 36)];
        assert_eq!(LeapTable::new(&e, 0, 1), Err(LeapTableError::Unordered));
        let e = [(unix(2015, 7, 1), 36), (unix(2017, 1, 1), 38)];
        assert_eq!(LeapTable::new(&e, 0, 1), Err(LeapTableError::Jump));
        let e = [(unix(2015, 7, 1), 36), (unix(2017, 1, 2), 37)];
        assert_eq!(LeapTable::new(&e, 0, 1), Err(LeapTableError::NotMonthStart));
        let t = table(unix(2028, 1, 1));
        assert_eq!(t.leaps().len(), 2);
        assert!(t.leaps()[0].insert && !t.leaps()[1].insert);
    }

    #[test]
    fn announced_all_month_armed_on_the_last_day_only() {
        let mut s =
            LeapState::new(LeapConfig { table: Some(table(unix(2028, 1, 1))), smear: None });
        let none = LeapIndicator::NoWarning;
        let add = LeapIndicator::AddSecond;
        // November: nothing, whatever the sources say (the table is believed).
        let d = s.decide(at(0.0), unix(2016, 11, 30) as f64, add);
        assert_eq!((d.announce, d.arm), (none, none));
        // December 1st: announced, not armed.
        let d = s.decide(at(1.0), unix(2016, 12, 1) as f64, none);
        assert_eq!((d.announce, d.arm), (add, none));
        // December 31st: announced and armed.
        let d = s.decide(at(2.0), (unix(2016, 12, 31) + 3_600) as f64, none);
        assert_eq!((d.announce, d.arm), (add, add));
        // After the leap: nothing.
        let d = s.decide(at(3.0), unix(2017, 1, 1) as f64, add);
        assert_eq!((d.announce, d.arm), (none, none));
        // A deletion at the end of June 2027.
        let d = s.decide(at(4.0), (unix(2027, 6, 30) + 10) as f64, none);
        assert_eq!((d.announce, d.arm), (LeapIndicator::DeleteSecond, LeapIndicator::DeleteSecond));
    }

    #[test]
    fn sources_are_believed_for_june_and_december_without_a_valid_table() {
        let add = LeapIndicator::AddSecond;
        for config in [
            LeapConfig::default(),
            LeapConfig { table: Some(table(unix(2016, 1, 1))), smear: None }, // expired
        ] {
            let mut s = LeapState::new(config);
            let d = s.decide(at(0.0), (unix(2026, 6, 30) + 5) as f64, add);
            assert_eq!((d.announce, d.arm), (add, add));
            let d = s.decide(at(0.0), unix(2026, 6, 10) as f64, add);
            assert_eq!((d.announce, d.arm), (add, LeapIndicator::NoWarning));
            // March: a mistake.
            let d = s.decide(at(0.0), unix(2026, 3, 31) as f64, add);
            assert_eq!(d.announce, LeapIndicator::NoWarning);
            let d = s.decide(at(0.0), unix(2026, 6, 30) as f64, LeapIndicator::Unsynchronized);
            assert_eq!(d.announce, LeapIndicator::NoWarning);
        }
    }

    #[test]
    fn smear_runs_on_the_monotonic_clock_and_ends_at_the_leap() {
        let config = LeapConfig { table: Some(table(unix(2028, 1, 1))), smear: Some(1_000.0) };
        let mut s = LeapState::new(config);
        let leap = unix(2017, 1, 1) as f64;
        // Outside the window: announced? No: while smearing is configured, never announced.
        let d = s.decide(at(0.0), leap - 5_000.0, LeapIndicator::NoWarning);
        assert_eq!(d.announce, LeapIndicator::NoWarning);
        assert_eq!(d.arm, LeapIndicator::AddSecond, "the kernel still inserts it");
        assert_eq!(s.smear_at(at(0.0)), 0.0);
        // The window starts 1000 s before the leap: monotonic 4000 s here.
        let _ = s.decide(at(4_000.0), leap - 1_000.0, LeapIndicator::NoWarning);
        assert_eq!(s.smear_at(at(4_000.0)), 0.0);
        assert!((s.smear_at(at(4_500.0)) + 0.5).abs() < 1e-9);
        assert!((s.smear_at(at(4_999.999)) + 1.0).abs() < 1e-5);
        // The kernel repeats 23:59:59: the wall clock goes back, the smear does not.
        let _ = s.decide(at(5_000.5), leap - 0.5, LeapIndicator::NoWarning);
        assert_eq!(s.smear_at(at(5_000.5)), 0.0);
        assert_eq!(s.smear_at(at(6_000.0)), 0.0);
    }
}
