//! READ_MRU (10) and REQ_NONCE (12): what `ntpq -c mrulist` asks, as ntpd 4.2.8 and NTPsec
//! answer it (RFC 9327 leaves both to the implementation).
//!
//! # The handshake
//! ntpq first sends REQ_NONCE and gets `nonce=HEX`; every READ_MRU must carry a nonce this
//! server issued to the same address within [`NONCE_LIFETIME_SECS`], or it gets no answer at
//! all ([`NonceKey::check`]). A nonce is 24 hex digits: the issue time (seconds of the node's
//! monotonic clock) and a 64-bit SipHash tag of (address, time) under a key drawn from the
//! node's RNG at start. Nothing is stored per nonce, and a restart invalidates them all. Each
//! READ_MRU answer carries a fresh nonce for the next request.
//!
//! # READ_MRU parameters (`name=value`, comma separated; [`parse_query`])
//! `nonce` (required), `frags=N` (datagrams, clamped to 32) or `limit=N` (rows, 1–256),
//! `mincount`, `resall=0xBITS`, `resany=0xBITS` (ntpd's `RES_*` bits, see
//! [`crate::server::mru::res`]), `maxlstint`, NTPsec's `minlstint` and `recent=N` (start at
//! the N-th newest entry), and the resume points `addr.N=ADDR:PORT`, `last.N=0xSECS.FRAC`
//! (N = 0–15, newest first, as ntpq sends the newest entries it already has). Not
//! implemented, answered `BADFMT`: `laddr` (the node does not record the local address),
//! NTPsec's `mindrop` and `minscore` (no drop counts or scores), any other name.
//!
//! # The answer ([`body`])
//! `addr.older`/`last.older` (the resume point used) when resuming, `nonce=`, then per entry
//! `addr.N, last.N, first.N, ct.N, mv.N, rs.N`, **oldest first** from the start point (ntpq
//! reverses them: it prints the newest first), N from 0 in each answer. When the list is
//! exhausted the answer ends with `now=` and `last.newest=` (the latest entry sent); otherwise
//! ntpq asks again from the newest entry it has. Errors: `BADVALUE` for neither `frags` nor a
//! `limit` of 1–256 (ntpq then switches to `limit`), `UNKNOWNVAR` when no resume point
//! matches an entry unchanged (ntpq restarts), `BADFMT` as above and for unparsable values.
//!
//! This module deliberately does **not** keep the list ([`crate::server::MruList`]), decide who
//! may ask, or read clocks: the node passes `now` (monotonic, for nonces) and the receive time
//! of the request (for `now=`, on the same clock as the entries).

use core::fmt::Write as _;
use core::net::{IpAddr, SocketAddr};

use super::respond::TextBody;
use super::wire::{ErrorCode, MAX_DATA_LEN};
use super::MAX_FRAGMENTS;
use crate::rng::{RngSource, SplitMix64};
use crate::server::mru::MruEntry;
use crate::server::{siphash, MruList};
use crate::time::{Instant, NtpTimestamp};

/// How long a nonce is accepted: NTPsec's ntpq fetches a new one after 16 s
/// (`NONCE_TIMEOUT`), and so does ntpd's check.
pub const NONCE_LIFETIME_SECS: u32 = 16;
/// ntpd's `MRU_ROW_LIMIT`: the largest `limit=`.
pub const MRU_ROW_LIMIT: u32 = 256;
/// Resume points a request may carry (`addr.0`..`addr.15`), as ntpd.
const MAX_PRIORS: usize = 16;
/// Room kept at the end of the answer for `now=` and `last.newest=` with their separators
/// and a line break.
const END_RESERVE: usize = 80;
/// Nanoseconds per second.
const NS_PER_SEC: u64 = 1_000_000_000;
/// ntpd's default port, for a resume address without one.
const NTP_PORT: u16 = 123;

/// Issues and checks nonces (see the module doc).
#[derive(Clone, Debug)]
pub struct NonceKey {
    key: (u64, u64),
}

impl NonceKey {
    /// A key derived from `seed` (take it from the node's RNG).
    pub fn new(seed: u64) -> Self {
        let mut rng = SplitMix64::new(seed);
        NonceKey { key: (rng.next_u64(), rng.next_u64()) }
    }

    fn tag(&self, client: IpAddr, secs: u32) -> u64 {
        let bytes = match client {
            IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
            IpAddr::V6(v6) => v6.octets(),
        };
        siphash::<2, 4>((self.key.0 ^ u64::from(secs), self.key.1), &bytes)
    }

    /// A nonce for `client` at `now`: 24 hex digits.
    pub fn issue(&self, client: IpAddr, now: Instant) -> String {
        let secs = (now.as_nanos() / NS_PER_SEC) as u32;
        format!("{secs:08x}{:016x}", self.tag(client, secs))
    }

    /// Whether `nonce` was issued by this key to `client` at most [`NONCE_LIFETIME_SECS`]
    /// before `now`.
    pub fn check(&self, nonce: &str, client: IpAddr, now: Instant) -> bool {
        let (Some(secs), Some(tag)) = (nonce.get(..8), nonce.get(8..)) else { return false };
        if tag.len() != 16 || !nonce.bytes().all(|b| b.is_ascii_hexdigit()) {
            return false;
        }
        let (Ok(secs), Ok(tag)) = (u32::from_str_radix(secs, 16), u64::from_str_radix(tag, 16))
        else {
            return false;
        };
        let now_secs = (now.as_nanos() / NS_PER_SEC) as u32;
        // A time in the future wraps to a huge age.
        now_secs.wrapping_sub(secs) <= NONCE_LIFETIME_SECS && self.tag(client, secs) == tag
    }
}

/// A READ_MRU request's parameters (see the module doc).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MruQuery {
    /// Most datagrams in the answer (1..=32).
    pub frags: usize,
    /// Most entries in the answer.
    pub limit: u32,
    /// Only entries with at least this many packets.
    pub mincount: u32,
    /// Only entries with all these `RES_*` bits.
    pub resall: u16,
    /// Only entries with any of these `RES_*` bits.
    pub resany: u16,
    /// Only entries heard from within this many seconds (0: any).
    pub maxlstint: u32,
    /// Only entries not heard from for at least this many seconds.
    pub minlstint: u32,
    /// Without resume points: start at the `recent`-th newest entry (0: the oldest).
    pub recent: u32,
    /// Resume points, newest first: an entry ntpq has, with its `last` time.
    pub priors: Vec<(SocketAddr, NtpTimestamp)>,
}

/// What [`parse_query`] found: the nonce (checked first: without a valid one nothing is
/// answered) and the query or the error to answer with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedQuery<'a> {
    /// The `nonce=` value.
    pub nonce: Option<&'a str>,
    /// The parameters, or the error code for them.
    pub query: Result<MruQuery, ErrorCode>,
}

/// Splits request data into `name=value` items as ntpd's `ctl_getitem` does: items end at
/// `,`, blanks around names and values are dropped, a quoted value loses its quotes.
fn items(data: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    data.split(|&b| b == b',').filter_map(|item| {
        let item = item.trim_ascii();
        if item.is_empty() {
            return None;
        }
        let (name, value) = match item.iter().position(|&b| b == b'=') {
            Some(i) => (&item[..i], &item[i + 1..]),
            None => (item, &b""[..]),
        };
        let value = value.trim_ascii();
        let value = value.strip_prefix(b"\"").and_then(|v| v.strip_suffix(b"\"")).unwrap_or(value);
        Some((name.trim_ascii(), value))
    })
}

fn number(value: &[u8]) -> Result<u32, ErrorCode> {
    core::str::from_utf8(value).ok().and_then(|v| v.parse().ok()).ok_or(ErrorCode::BadFormat)
}

/// `0xBITS` (ntpd's `0x%hx`) or decimal.
fn bits(value: &[u8]) -> Result<u16, ErrorCode> {
    let text = core::str::from_utf8(value).map_err(|_| ErrorCode::BadFormat)?;
    let parsed = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u16::from_str_radix(hex, 16),
        None => text.parse(),
    };
    parsed.map_err(|_| ErrorCode::BadFormat)
}

/// `0xSECS.FRAC`, as `last.N` is sent.
fn timestamp(value: &[u8]) -> Result<NtpTimestamp, ErrorCode> {
    let text = core::str::from_utf8(value).map_err(|_| ErrorCode::BadFormat)?;
    let hex = text.strip_prefix("0x").ok_or(ErrorCode::BadFormat)?;
    let (secs, frac) = hex.split_once('.').ok_or(ErrorCode::BadFormat)?;
    let ok = |s: &str| s.len() <= 8 && !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
    if !ok(secs) || !ok(frac) {
        return Err(ErrorCode::BadFormat);
    }
    let secs = u32::from_str_radix(secs, 16).map_err(|_| ErrorCode::BadFormat)?;
    let frac = u32::from_str_radix(frac, 16).map_err(|_| ErrorCode::BadFormat)?;
    Ok(NtpTimestamp::from_bits(u64::from(secs) << 32 | u64::from(frac)))
}

/// `ADDR:PORT`, `[V6]:PORT`, or an address alone (port 123), as ntpd's `decodenetnum`.
fn address(value: &[u8]) -> Result<SocketAddr, ErrorCode> {
    let text = core::str::from_utf8(value).map_err(|_| ErrorCode::BadFormat)?;
    if let Ok(sa) = text.parse::<SocketAddr>() {
        return Ok(SocketAddr::new(canonical(sa.ip()), sa.port()));
    }
    let bare = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')).unwrap_or(text);
    bare.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(canonical(ip), NTP_PORT))
        .map_err(|_| ErrorCode::BadFormat)
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// `addr.N` / `last.N` → N (0–15).
fn indexed(name: &[u8], stem: &[u8]) -> Option<Result<usize, ErrorCode>> {
    let rest = name.strip_prefix(stem)?.strip_prefix(b".")?;
    let n = core::str::from_utf8(rest).ok().and_then(|r| r.parse::<usize>().ok());
    Some(n.filter(|&n| n < MAX_PRIORS).ok_or(ErrorCode::BadFormat))
}

/// Parses a READ_MRU request's data (see the module doc). Never panics.
pub fn parse_query(data: &[u8]) -> ParsedQuery<'_> {
    let mut nonce = None;
    let mut error = None;
    let mut frags = 0u32;
    let mut q = MruQuery::default();
    let mut addrs = [None; MAX_PRIORS];
    let mut lasts = [None; MAX_PRIORS];
    for (name, value) in items(data) {
        let result = match name {
            b"nonce" => {
                nonce = core::str::from_utf8(value).ok();
                Ok(())
            }
            b"frags" => number(value).map(|v| frags = v),
            b"limit" => number(value).map(|v| q.limit = v),
            b"mincount" => number(value).map(|v| q.mincount = v),
            b"maxlstint" => number(value).map(|v| q.maxlstint = v),
            b"minlstint" => number(value).map(|v| q.minlstint = v),
            b"recent" => number(value).map(|v| q.recent = v),
            b"resall" => bits(value).map(|v| q.resall = v),
            b"resany" => bits(value).map(|v| q.resany = v),
            // Known to ntpd or NTPsec, not implemented here.
            b"laddr" | b"mindrop" | b"minscore" => Err(ErrorCode::BadFormat),
            _ => match (indexed(name, b"addr"), indexed(name, b"last")) {
                (Some(i), _) => i.and_then(|i| {
                    let a = address(value)?;
                    if let Some(slot) = addrs.get_mut(i) {
                        *slot = Some(a);
                    }
                    Ok(())
                }),
                (_, Some(i)) => i.and_then(|i| {
                    let t = timestamp(value)?;
                    if let Some(slot) = lasts.get_mut(i) {
                        *slot = Some(t);
                    }
                    Ok(())
                }),
                _ => Err(ErrorCode::BadFormat),
            },
        };
        if let Err(e) = result {
            error.get_or_insert(e);
        }
    }
    // Resume points count from 0 while both halves are there (as ntpd's `priors`).
    for (a, l) in addrs.iter().zip(&lasts) {
        match (a, l) {
            (Some(a), Some(l)) => q.priors.push((*a, *l)),
            _ => break,
        }
    }
    if error.is_none() && (frags == 0 && !(1..=MRU_ROW_LIMIT).contains(&q.limit)) {
        error = Some(ErrorCode::BadValue);
    }
    if error.is_none() && q.limit > MRU_ROW_LIMIT {
        error = Some(ErrorCode::BadValue);
    }
    // Either bound alone means the other is the most we allow.
    if q.limit == 0 {
        q.limit = u32::MAX;
    }
    q.frags = match frags {
        0 => MAX_FRAGMENTS,
        f => (f as usize).min(MAX_FRAGMENTS),
    };
    ParsedQuery { nonce, query: error.map_or(Ok(q), Err) }
}

/// Formats an NTP timestamp as ntpd's `ctl_putts`: `0xSSSSSSSS.FFFFFFFF`.
fn put_ts(out: &mut String, name: &str, ts: NtpTimestamp) {
    let bits = ts.to_bits();
    let _ = write!(out, "{name}=0x{:08x}.{:08x}", bits >> 32, bits as u32);
}

/// Whether `e` passes the query's filters at `now`.
fn wanted(q: &MruQuery, e: &MruEntry, now: NtpTimestamp) -> bool {
    let lstint = ((now.to_bits() >> 32) as u32).wrapping_sub((e.last.to_bits() >> 32) as u32);
    e.count >= q.mincount
        && (q.resall == 0 || e.restrict & q.resall == q.resall)
        && (q.resany == 0 || e.restrict & q.resany != 0)
        && (q.maxlstint == 0 || lstint <= q.maxlstint)
        && lstint >= q.minlstint
}

/// The text of the answer to `q` over `list` (see the module doc); `now` is the receive time
/// of the request, `nonce` the fresh nonce for the client's next request.
pub fn body(
    q: &MruQuery,
    list: &MruList,
    now: NtpTimestamp,
    nonce: &str,
) -> Result<Vec<u8>, ErrorCode> {
    let mut out = TextBody::new();
    let mut at = if q.priors.is_empty() {
        match q.recent {
            0 => list.oldest(),
            n => {
                let mut at = list.newest();
                for _ in 1..n {
                    match at.and_then(|(c, _)| list.older(c)) {
                        Some(older) => at = Some(older),
                        None => break,
                    }
                }
                at
            }
        }
    } else {
        // The first resume point whose entry is unchanged since ntpq saw it.
        let (cursor, entry) = q
            .priors
            .iter()
            .find_map(|&(addr, last)| list.find(addr).filter(|(_, e)| e.last == last))
            .ok_or(ErrorCode::UnknownVariable)?;
        put_ts(&mut out.item, "last.older", entry.last);
        out.commit();
        let _ = write!(out.item, "addr.older={}", entry.addr);
        out.commit();
        // ntpq has this one. (ntpd sends it again when `limit=1`; NTPsec's ntpq then asks
        // for the same entry forever, so `mrulist limit=1` would never finish. Not here.)
        list.newer(cursor)
    };
    let _ = write!(out.item, "nonce={nonce}");
    out.commit();
    let room = (q.frags * MAX_DATA_LEN).saturating_sub(END_RESERVE);
    let mut count = 0u32;
    let mut newest_sent = None;
    while let Some((cursor, e)) = at {
        if count >= q.limit {
            break;
        }
        if wanted(q, &e, now) {
            let mark = out.mark();
            let _ = write!(out.item, "addr.{count}={}", e.addr);
            out.commit();
            put_ts(&mut out.item, &format!("last.{count}"), e.last);
            out.commit();
            put_ts(&mut out.item, &format!("first.{count}"), e.first);
            out.commit();
            let _ = write!(out.item, "ct.{count}={}", e.count);
            out.commit();
            let _ = write!(out.item, "mv.{count}={}", e.mode_version);
            out.commit();
            let _ = write!(out.item, "rs.{count}=0x{:x}", e.restrict);
            out.commit();
            if out.len() > room {
                out.rewind(mark);
                break;
            }
            count += 1;
            newest_sent = Some(e.last);
        }
        at = list.newer(cursor);
    }
    if at.is_none() {
        put_ts(&mut out.item, "now", now);
        out.commit();
        if let Some(last) = newest_sent {
            put_ts(&mut out.item, "last.newest", last);
            out.commit();
        }
    }
    Ok(out.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;

    fn client(i: u8) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, i)), 123)
    }

    fn ts(secs: u32) -> NtpTimestamp {
        NtpTimestamp::from_bits(u64::from(secs) << 32 | 0x8000_0000)
    }

    fn at(secs: u64) -> Instant {
        Instant::from_nanos(secs * NS_PER_SEC + 123)
    }

    /// Key/value pairs of an answer.
    fn pairs(body: &[u8]) -> Vec<(String, String)> {
        String::from_utf8(body.to_vec())
            .unwrap()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap();
                (k.to_string(), v.to_string())
            })
            .collect()
    }

    fn value<'a>(p: &'a [(String, String)], key: &str) -> Option<&'a str> {
        p.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    fn list(n: u8) -> MruList {
        let mut mru = MruList::new(64, 9);
        for i in 1..=n {
            mru.record(client(i), ts(1000 + u32::from(i)), 0x23, 0);
        }
        mru
    }

    #[test]
    fn nonce_is_bound_to_address_and_time() {
        let key = NonceKey::new(5);
        let me = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7));
        let other = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 8));
        let nonce = key.issue(me, at(100));
        assert_eq!(nonce.len(), 24);
        assert!(key.check(&nonce, me, at(100)));
        assert!(key.check(&nonce, me, at(116)), "16 s old: still good");
        assert!(!key.check(&nonce, me, at(117)), "stale");
        assert!(!key.check(&nonce, me, at(99)), "from the future");
        assert!(!key.check(&nonce, other, at(100)), "another address");
        assert!(!NonceKey::new(6).check(&nonce, me, at(100)), "another key (a restart)");
        let mut forged = nonce.clone().into_bytes();
        forged[23] = if forged[23] == b'0' { b'1' } else { b'0' };
        assert!(!key.check(core::str::from_utf8(&forged).unwrap(), me, at(100)));
        for junk in ["", "nonce", "00000064", &nonce[..23], &format!("{nonce}0"), "zz"] {
            assert!(!key.check(junk, me, at(100)), "{junk:?}");
        }
    }

    #[test]
    fn parses_what_ntpsec_ntpq_sends() {
        let p = parse_query(b"nonce=0123456789abcdef01234567, frags=32");
        assert_eq!(p.nonce, Some("0123456789abcdef01234567"));
        let q = p.query.unwrap();
        assert_eq!((q.frags, q.limit), (32, u32::MAX));
        let p = parse_query(
            b"nonce=x, limit=40, mincount=2, resany=0x420, recent=5, \
              addr.0=192.0.2.1:123, last.0=0x000003e9.80000000, addr.1=[2001:db8::1]:4000, \
              last.1=0x1.2",
        );
        let q = p.query.unwrap();
        assert_eq!((q.frags, q.limit, q.mincount, q.resany, q.recent), (32, 40, 2, 0x420, 5));
        assert_eq!(q.priors.len(), 2);
        assert_eq!(q.priors[0], (client(1), ts(1001)));
        assert_eq!(q.priors[1].0, "[2001:db8::1]:4000".parse().unwrap());
        // A gap ends the resume points.
        let q = parse_query(b"nonce=x,frags=2,addr.1=192.0.2.1,last.1=0x1.2").query.unwrap();
        assert!(q.priors.is_empty());
        // Errors.
        assert_eq!(parse_query(b"nonce=x").query, Err(ErrorCode::BadValue));
        assert_eq!(parse_query(b"nonce=x, limit=257").query, Err(ErrorCode::BadValue));
        assert_eq!(
            parse_query(b"nonce=x, frags=9, laddr=127.0.0.1").query,
            Err(ErrorCode::BadFormat)
        );
        assert_eq!(parse_query(b"nonce=x, frags=9, bogus=1").query, Err(ErrorCode::BadFormat));
        assert_eq!(parse_query(b"nonce=x, frags=z").query, Err(ErrorCode::BadFormat));
        assert_eq!(
            parse_query(b"nonce=x, frags=1, addr.16=1.2.3.4").query,
            Err(ErrorCode::BadFormat)
        );
        assert_eq!(parse_query(b"nonce=x, frags=1, last.0=12").query, Err(ErrorCode::BadFormat));
        assert_eq!(parse_query(b"frags=1").nonce, None);
        // Large frags are clamped to what ntpq reassembles.
        assert_eq!(parse_query(b"nonce=x, frags=500").query.unwrap().frags, MAX_FRAGMENTS);
    }

    #[test]
    fn whole_list_oldest_first_with_end_markers() {
        let mru = list(3);
        let q = parse_query(b"nonce=n, frags=32").query.unwrap();
        let p = pairs(&body(&q, &mru, ts(2000), "N").unwrap());
        assert_eq!(value(&p, "nonce"), Some("N"));
        // Oldest first on the wire: ntpq prints them reversed, newest first.
        assert_eq!(value(&p, "addr.0"), Some("192.0.2.1:123"));
        assert_eq!(value(&p, "addr.2"), Some("192.0.2.3:123"));
        assert_eq!(value(&p, "last.2"), Some("0x000003eb.80000000"));
        assert_eq!(value(&p, "first.0"), Some("0x000003e9.80000000"));
        assert_eq!(value(&p, "ct.1"), Some("1"));
        assert_eq!(value(&p, "mv.1"), Some("35"));
        assert_eq!(value(&p, "rs.1"), Some("0x0"));
        assert_eq!(value(&p, "now"), Some("0x000007d0.80000000"));
        assert_eq!(value(&p, "last.newest"), Some("0x000003eb.80000000"));
        assert_eq!(value(&p, "addr.3"), None);
    }

    #[test]
    fn limit_and_resume_walk_the_list_in_pieces() {
        let mru = list(5);
        let q = parse_query(b"nonce=n, limit=2").query.unwrap();
        let p = pairs(&body(&q, &mru, ts(2000), "N").unwrap());
        assert_eq!(value(&p, "addr.1"), Some("192.0.2.2:123"));
        assert_eq!(value(&p, "addr.2"), None);
        assert_eq!(value(&p, "now"), None, "not complete");
        // Resume from what ntpq has (its newest first), as NTPsec's ntpq does.
        let req = format!(
            "nonce=n, limit=2, addr.0=192.0.2.2:123, last.0={}, addr.1=192.0.2.1:123, last.1={}",
            value(&p, "last.1").unwrap(),
            value(&p, "last.0").unwrap()
        );
        let q = parse_query(req.as_bytes()).query.unwrap();
        let p = pairs(&body(&q, &mru, ts(2000), "N").unwrap());
        assert_eq!(value(&p, "addr.older"), Some("192.0.2.2:123"));
        assert_eq!(value(&p, "addr.0"), Some("192.0.2.3:123"));
        assert_eq!(value(&p, "addr.1"), Some("192.0.2.4:123"));
        // The resume entry changed since (a new packet): the next one is used.
        let mut changed = list(5);
        changed.record(client(2), ts(3000), 0x23, 0);
        let p = pairs(&body(&q, &changed, ts(3001), "N").unwrap());
        assert_eq!(value(&p, "addr.older"), Some("192.0.2.1:123"));
        // Nothing matches: UNKNOWNVAR, ntpq restarts.
        let q = parse_query(b"nonce=n, limit=2, addr.0=192.0.2.99:123, last.0=0x1.0").query;
        assert_eq!(body(&q.unwrap(), &mru, ts(2000), "N"), Err(ErrorCode::UnknownVariable));
        // limit=1 moves on too (ntpd would send the resume entry again).
        let q = parse_query(b"nonce=n, limit=1, addr.0=192.0.2.4:123, last.0=0x3ec.80000000");
        let p = pairs(&body(&q.query.unwrap(), &mru, ts(2000), "N").unwrap());
        assert_eq!(value(&p, "addr.0"), Some("192.0.2.5:123"));
        assert!(value(&p, "now").is_some(), "the newest: complete");
    }

    #[test]
    fn filters_and_recent() {
        let mut mru = list(4);
        mru.record(client(2), ts(1500), 0x23, 0x420);
        let q = parse_query(b"nonce=n, frags=4, mincount=2").query.unwrap();
        let p = pairs(&body(&q, &mru, ts(2000), "N").unwrap());
        assert_eq!(value(&p, "addr.0"), Some("192.0.2.2:123"));
        assert_eq!(value(&p, "ct.0"), Some("2"));
        assert_eq!(value(&p, "rs.0"), Some("0x420"));
        assert_eq!(value(&p, "addr.1"), None);
        let q = parse_query(b"nonce=n, frags=4, resall=0x20").query.unwrap();
        assert_eq!(value(&pairs(&body(&q, &mru, ts(2000), "N").unwrap()), "ct.0"), Some("2"));
        let q = parse_query(b"nonce=n, frags=4, maxlstint=600").query.unwrap();
        let p = pairs(&body(&q, &mru, ts(2000), "N").unwrap());
        assert_eq!(value(&p, "addr.0"), Some("192.0.2.2:123"));
        assert_eq!(value(&p, "addr.1"), None);
        // The two most recent.
        let q = parse_query(b"nonce=n, frags=4, recent=2").query.unwrap();
        let p = pairs(&body(&q, &mru, ts(2000), "N").unwrap());
        assert_eq!(value(&p, "addr.0"), Some("192.0.2.4:123"));
        assert_eq!(value(&p, "addr.1"), Some("192.0.2.2:123"));
        assert_eq!(value(&p, "addr.2"), None);
    }

    #[test]
    fn frags_bound_the_answer() {
        let mut mru = MruList::new(300, 1);
        for i in 0..300u32 {
            let a = SocketAddr::new(IpAddr::V4(Ipv4Addr::from(0xC000_0200 + i)), 40000);
            mru.record(a, ts(i), 0x23, 0);
        }
        for frags in [1, 2, 5, 32] {
            let q = parse_query(format!("nonce=n, frags={frags}").as_bytes()).query.unwrap();
            let b = body(&q, &mru, ts(2000), "N").unwrap();
            assert!(b.len() <= frags * MAX_DATA_LEN, "{frags}: {}", b.len());
            assert!(b.len() > (frags - 1) * MAX_DATA_LEN, "{frags}: {}", b.len());
            assert!(value(&pairs(&b), "now").is_none());
        }
    }
}
