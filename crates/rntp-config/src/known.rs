//! Tables of words rntpd recognises, and "did you mean" suggestions.
//!
//! The unsupported lists are deliberately generous: any directive or option
//! that ntpd 4.2.8 or NTPsec accepts should produce a warning, not an error,
//! so that an existing ntp.conf keeps loading. They are taken from ntpd
//! 4.2.8's and NTPsec 1.2's grammars and manual pages.

/// Directives rntpd implements.
pub(crate) const SUPPORTED_DIRECTIVES: &[&str] =
    &["server", "pool", "tos", "driftfile", "includefile", "resolver", "resolve"];

/// Directives ntpd 4.2.8 or NTPsec know and rntpd ignores with a warning.
pub(crate) const UNSUPPORTED_DIRECTIVES: &[&str] = &[
    "authenticate",
    "automax",
    "broadcast",
    "broadcastclient",
    "broadcastdelay",
    "calldelay",
    "controlkey",
    "crypto",
    "delrestrict",
    "device",
    "disable",
    "discard",
    "dscp",
    "enable",
    "end",
    "extra",
    "filegen",
    "fudge",
    "ident",
    "interface",
    "keys",
    "keysdir",
    "leapfile",
    "leapsmearinterval",
    "logconfig",
    "logfile",
    "manycastclient",
    "manycastserver",
    "mdnstries",
    "mru",
    "multicastclient",
    "nic",
    "nonvolatile",
    "nts",
    "ntsport",
    "ntpsigndsocket",
    "peer",
    "phone",
    "pidfile",
    "pollskewlist",
    "qos",
    "refclock",
    "requestkey",
    "reset",
    "restrict",
    "revoke",
    "rlimit",
    "saveconfigdir",
    "serverresponse",
    "setvar",
    "simulate",
    "statistics",
    "statsdir",
    "tick",
    "tinker",
    "trap",
    "trustedkey",
    "ttl",
    "unconfig",
    "unpeer",
    "unrestrict",
];

/// Options rntpd implements on `server` lines.
pub(crate) const SERVER_OPTIONS: &[&str] =
    &["iburst", "burst", "prefer", "noselect", "minpoll", "maxpoll", "version", "port"];

/// Options rntpd implements on `pool` lines.
pub(crate) const POOL_OPTIONS: &[&str] = &[
    "iburst",
    "burst",
    "prefer",
    "noselect",
    "minpoll",
    "maxpoll",
    "version",
    "port",
    "maxsources",
];

/// Source options rntpd implements that take no value.
pub(crate) const SOURCE_FLAGS: &[&str] = &["iburst", "burst", "prefer", "noselect"];

/// ntpd/NTPsec source options without a value that rntpd ignores.
pub(crate) const UNSUPPORTED_SOURCE_FLAGS: &[&str] =
    &["autokey", "true", "xleave", "preempt", "nts", "noval"];

/// ntpd/NTPsec source options taking one value that rntpd ignores. Several
/// only make sense for reference clocks but ntpd accepts them on any line.
pub(crate) const UNSUPPORTED_SOURCE_VALUED: &[&str] = &[
    "key", "mode", "ttl", "bias", "ident", "ask", "require", "ca", "aead", "cert", "subtype",
    "baud", "holdover", "time1", "time2", "stratum", "refid", "path", "ppspath", "flag1", "flag2",
    "flag3", "flag4",
];

/// Address-family qualifiers that may precede a source host.
pub(crate) const ADDRESS_FAMILY_FLAGS: &[&str] = &["-4", "-6", "--ipv4", "--ipv6"];

/// `tos` keywords rntpd implements.
pub(crate) const TOS_OPTIONS: &[&str] = &["minclock", "maxclock", "minsane", "orphan"];

/// `tos` keywords of ntpd/NTPsec that rntpd ignores (each takes one value).
pub(crate) const UNSUPPORTED_TOS: &[&str] = &[
    "ceiling",
    "cohort",
    "floor",
    "mindist",
    "maxdist",
    "maxdisp",
    "orphanwait",
    "beacon",
    "basedate",
    "bcpollbstep",
];

/// The closest word in `candidates` to `word`, if close enough to be a typo.
pub(crate) fn suggest(word: &str, candidates: &[&'static [&'static str]]) -> Option<&'static str> {
    // Comparing very long words is quadratic and never a typo anyway.
    if word.chars().count() > 64 {
        return None;
    }
    let limit = match word.chars().count() {
        0..=3 => 1,
        _ => 2,
    };
    candidates
        .iter()
        .flat_map(|list| list.iter().copied())
        .map(|c| (edit_distance(word, c), c))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// Levenshtein distance in characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(suggest("serverr", &[SUPPORTED_DIRECTIVES]), Some("server"));
        assert_eq!(suggest("ibrust", &[POOL_OPTIONS]), Some("iburst"));
        assert_eq!(suggest("frobnicate", &[SUPPORTED_DIRECTIVES, UNSUPPORTED_DIRECTIVES]), None);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
