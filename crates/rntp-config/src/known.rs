//! Tables of words rntpd recognises, and "did you mean" suggestions.
//!
//! The unsupported lists are deliberately generous: any directive or option
//! that ntpd 4.2.8 or NTPsec accepts should produce a warning, not an error,
//! so that an existing ntp.conf keeps loading. They are taken from ntpd
//! 4.2.8's and NTPsec 1.2's grammars and manual pages.

/// Directives rntpd implements.
pub(crate) const SUPPORTED_DIRECTIVES: &[&str] = &[
    "server",
    "pool",
    "tos",
    "driftfile",
    "includefile",
    "resolver",
    "resolve",
    "interface",
    "restrict",
    "discard",
    "tinker",
    "makestep",
    "peer",
    "leapfile",
    "leapsmear",
    "leapsmearinterval",
    "maxslewrate",
    "statsdir",
    "statistics",
    "filegen",
    "metrics",
    "keys",
    "trustedkey",
    "controlkey",
    "requestkey",
    "manycastserver",
    "manycastclient",
    "ttl",
    "sourcedir",
    "logfile",
    "logconfig",
];

/// Directives allowed in a `*.sources` file of a `sourcedir`.
pub(crate) const SOURCES_FILE_DIRECTIVES: &[&str] = &["server", "pool", "peer"];

/// Directives ntpd 4.2.8 or NTPsec know and rntpd ignores with a warning.
pub(crate) const UNSUPPORTED_DIRECTIVES: &[&str] = &[
    "authenticate",
    "automax",
    "broadcast",
    "broadcastclient",
    "broadcastdelay",
    "calldelay",
    "crypto",
    "delrestrict",
    "device",
    "disable",
    "dscp",
    "enable",
    "end",
    "extra",
    "fudge",
    "ident",
    "keysdir",
    "mdnstries",
    "mru",
    "multicastclient",
    "nic",
    "nonvolatile",
    "nts",
    "ntsport",
    "ntpsigndsocket",
    "phone",
    "pidfile",
    "pollskewlist",
    "qos",
    "refclock",
    "reset",
    "revoke",
    "rlimit",
    "saveconfigdir",
    "serverresponse",
    "setvar",
    "simulate",
    "tick",
    "trap",
    "unconfig",
    "unpeer",
    "unrestrict",
];

/// Options rntpd implements on `server` lines.
pub(crate) const SERVER_OPTIONS: &[&str] =
    &["iburst", "burst", "prefer", "noselect", "minpoll", "maxpoll", "version", "port", "key"];

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
    "key",
];

/// Options rntpd implements on `manycastclient` lines.
pub(crate) const MANYCAST_OPTIONS: &[&str] = &[
    "iburst",
    "burst",
    "prefer",
    "noselect",
    "minpoll",
    "maxpoll",
    "version",
    "port",
    "maxsources",
    "key",
    "ttl",
];

/// Source options rntpd implements that take no value.
pub(crate) const SOURCE_FLAGS: &[&str] = &["iburst", "burst", "prefer", "noselect"];

/// ntpd/NTPsec source options without a value that rntpd ignores.
pub(crate) const UNSUPPORTED_SOURCE_FLAGS: &[&str] = &["true", "xleave", "preempt"];

/// ntpd/NTPsec source options taking one value that rntpd ignores. Several
/// only make sense for reference clocks but ntpd accepts them on any line.
/// (`ttl` is one of them on `server` and `pool` lines; `manycastclient` uses it.)
pub(crate) const UNSUPPORTED_SOURCE_VALUED: &[&str] = &[
    "mode", "ttl", "bias", "subtype", "baud", "holdover", "time1", "time2", "stratum", "refid",
    "path", "ppspath", "flag1", "flag2", "flag3", "flag4",
];

/// Source options without a value that ask for authentication rntpd does not
/// have: ntpd's `autokey`, NTPsec's `nts` and its `noval` (NTS without
/// certificate checks). Each is an error: ignoring it would poll the source
/// unauthenticated, a silent downgrade. (Symmetric keys, `key N`, are
/// supported.)
pub(crate) const AUTH_SOURCE_FLAGS: &[&str] = &["autokey", "nts", "noval"];

/// Source options taking one value that ask for authentication rntpd does not
/// have: ntpd's `ident GROUP` (autokey identity scheme) and NTPsec's NTS
/// options `ask ADDR`, `require ADDR`, `ca PATH`, `cert FILE`, `aead
/// ALGORITHM` and `expire N`. Errors, as [`AUTH_SOURCE_FLAGS`].
pub(crate) const AUTH_SOURCE_VALUED: &[&str] =
    &["ident", "ask", "require", "ca", "cert", "aead", "expire"];

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

/// What may follow `interface`.
pub(crate) const INTERFACE_ACTIONS: &[&str] = &["listen", "ignore", "drop"];

/// Options of `interface listen ADDR`.
pub(crate) const LISTEN_OPTIONS: &[&str] = &["port"];

/// `restrict` flags that restrict features rntpd does not have (traps,
/// symmetric peers, ...), so they need no action
/// and are accepted silently (`nomrulist` is not enforced yet: mrulist follows `noquery`). `serverresponse` is followed by `fuzz`.
pub(crate) const RESTRICT_MOOT_FLAGS: &[&str] = &[
    "notrap",
    "nopeer",
    "noepeer",
    "nomrulist",
    "lowpriotrap",
    "ntpport",
    "serverresponse",
    "version",
];

/// `restrict` flags of an authentication rntpd does not have (Microsoft's
/// MS-SNTP signing).
pub(crate) const RESTRICT_AUTH_FLAGS: &[&str] = &["mssntp"];

/// `restrict` flags of ntpd/NTPsec that rntpd ignores with a warning.
pub(crate) const UNSUPPORTED_RESTRICT_FLAGS: &[&str] = &["flake"];

/// `restrict` keywords that take a value: `ippeerlimit` is moot (rntpd has
/// no peers) and accepted silently.
pub(crate) const RESTRICT_VALUED: &[&str] = &["mask", "ippeerlimit"];

/// Every word rntpd accepts after a `restrict` target, for "expected one of".
pub(crate) const RESTRICT_ALL: &[&str] = &[
    "mask",
    "-4",
    "-6",
    "ignore",
    "noserve",
    "noquery",
    "kod",
    "limited",
    "notrust",
    "nomodify",
    "notrap",
    "nopeer",
    "noepeer",
    "nomrulist",
    "lowpriotrap",
    "ntpport",
    "serverresponse",
    "version",
    "ippeerlimit",
    "mssntp",
    "flake",
];

/// `tinker` keywords rntpd implements (each takes a number of seconds).
pub(crate) const TINKER_OPTIONS: &[&str] = &["step", "panic", "stepout"];

/// `tinker` keywords of ntpd that rntpd ignores (each takes one value).
pub(crate) const UNSUPPORTED_TINKER: &[&str] =
    &["allan", "dispersion", "freq", "huffpuff", "tick", "stepback", "stepfwd"];

/// `discard` keywords rntpd implements.
pub(crate) const DISCARD_OPTIONS: &[&str] = &["average", "minimum"];

/// `discard` keywords of ntpd that rntpd ignores (each takes one value).
pub(crate) const UNSUPPORTED_DISCARD: &[&str] = &["monitor"];

/// Statistics files rntpd writes (`statistics`, `filegen`): ntpd's three and rntpd's own
/// `sourcestats`.
pub(crate) const STATS_FILES: &[&str] = &["peerstats", "loopstats", "sysstats", "sourcestats"];

/// Statistics files of ntpd/NTPsec that rntpd does not write (accepted with a warning).
pub(crate) const UNSUPPORTED_STATS_FILES: &[&str] =
    &["clockstats", "rawstats", "cryptostats", "protostats", "timingstats", "usestats"];

/// `filegen` options.
pub(crate) const FILEGEN_OPTIONS: &[&str] =
    &["file", "type", "link", "nolink", "enable", "disable"];

/// `filegen ... type` values rntpd implements.
pub(crate) const FILEGEN_TYPES: &[&str] = &["day"];

/// `filegen ... type` values of ntpd that rntpd does not implement (files rotate by day).
pub(crate) const UNSUPPORTED_FILEGEN_TYPES: &[&str] =
    &["none", "pid", "week", "month", "year", "age"];

/// Options of `metrics ADDRESS`.
pub(crate) const METRICS_OPTIONS: &[&str] = &["port"];

/// Options of `manycastserver GROUP...`.
pub(crate) const MANYCAST_SERVER_OPTIONS: &[&str] = &["port"];

/// The closest word in `candidates` to `word`, if close enough to be a typo.
pub(crate) fn suggest(word: &str, candidates: &[&'static [&'static str]]) -> Option<&'static str> {
    // Comparing very long words is quadratic and never a typo anyway.
    if word.chars().count() > 64 {
        return None;
    }
    let len = word.chars().count();
    let limit = match len {
        0..=3 => 1,
        _ => 2,
    };
    candidates
        .iter()
        .flat_map(|list| list.iter().copied())
        // The distance is at least the difference in length: skip the
        // quadratic comparison for words that cannot be close.
        .filter(|c| c.chars().count().abs_diff(len) <= limit)
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
