//! The variables a mode 6 responder reports, the [`Mode6Data`] trait through which the node
//! supplies them, and their text format, which follows ntpd 4.2.8 and NTPsec byte for byte
//! where they agree and NTPsec where they differ (NTPsec's ntpq is the acceptance client).
//!
//! # Formats
//! | kind | example | as |
//! |---|---|---|
//! | string | `version="rntpd 0.1.0"` | `ctl_putstr`: quoted; `"`, `,`-free printable ASCII only |
//! | integer | `stratum=2`, `precision=-23` | decimal |
//! | hex | `reach=0xff`, `flash=0x0` | `0x` + lower-case hex |
//! | timestamp | `reftime=0xe9b1c2d3.12345678` | `0x%08x.%08x` NTP era-0 timestamp |
//! | milliseconds | `rootdelay=1.234`, `offset=-0.012345` | `%.3f`, or `%.6f` for offset, delay, dispersion, jitter, sys_jitter, clk_jitter |
//! | ppm | `frequency=-12.345`, `clk_wander=0.001234` | `%.3f`, `%.6f` for clk_wander |
//! | address | `srcadr=192.0.2.1`, `srcadr=2001:db8::1` | no port, no brackets |
//! | refid | `refid=192.0.2.1` at stratum 2–15, `refid=GPS`, `refid=POOL` otherwise | ntpd's `ctl_putadr`/`ctl_putrefid` |
//! | filter | `filtdelay= 0.12 0.13 ...` | eight ` %.2f` ms values, newest first |
//! | date | `leapsec=201701010000` | ntpd's `ctl_putfs`: `%Y%m%d%H%M` UTC |
//!
//! Items are separated by `, `, or by `,\r\n` when a line would reach 72 characters, and a
//! text answer ends in `\r\n` when its last fragment has room (ntpd's `ctl_putdata` and
//! `ctl_flushpkt`).

use core::fmt::Write as _;
use core::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::status::{PeerStatus, SystemStatus};
use crate::time::NtpTimestamp;
use crate::wire::{LeapIndicator, ReferenceId};

/// An association ID, as ntpq shows it in `assid`; never 0 (0 addresses the system).
pub type AssocId = u16;

/// The node's view, as mode 6 reports it. The node implements this over its own state; the
/// responder calls it once per request (a flood is rate-limited before it gets here).
pub trait Mode6Data {
    /// The system variables.
    fn system(&self) -> SystemVars<'_>;

    /// Every association with its status word, in any order (ntpq sorts by ID). Include the
    /// `pool` rows ([`PeerVars::pool`]) and unresolved `server NAME` rows, as ntpd does.
    fn associations(&self) -> Vec<AssocSummary>;

    /// One association's variables; `None` if `id` is unknown (answered with `BADASSOC`).
    fn peer(&self, id: AssocId) -> Option<PeerVars<'_>>;
}

/// One entry of the READSTAT association list.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct AssocSummary {
    /// Association ID (non-zero).
    pub id: AssocId,
    /// Its status word.
    pub status: PeerStatus,
}

/// A leap second table's dates, as ntpd reports them from its leap file.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct LeapTable {
    /// TAI − UTC in seconds (`tai=37`).
    pub tai: u32,
    /// When the last leap second in the table took effect, Unix seconds (`leapsec=`).
    pub leapsec_unix: i64,
    /// When the table expires, Unix seconds (`expire=`).
    pub expire_unix: i64,
}

/// The system variables (`ntpq -c rv`). Durations are in seconds, frequencies in ppm; the
/// responder converts to ntpd's units.
#[derive(Clone, Copy, PartialEq, Debug)]
pub struct SystemVars<'a> {
    /// Status word (leap goes in from [`SystemVars::leap`]).
    pub status: SystemStatus,
    /// `version`: daemon name and version, e.g. `rntpd 0.1.0`.
    pub version: &'a str,
    /// `processor`: `uname -m`, e.g. `x86_64`.
    pub processor: &'a str,
    /// `system`: ntpd sends `uname -s` and release, e.g. `Linux/6.1.0-18-amd64`.
    pub system: &'a str,
    /// `leap`.
    pub leap: LeapIndicator,
    /// `stratum`: 16 while unsynchronized.
    pub stratum: u8,
    /// `precision`, log2 seconds.
    pub precision: i8,
    /// `rootdelay`, seconds (sent in ms).
    pub root_delay: f64,
    /// `rootdisp`, seconds (sent in ms).
    pub root_dispersion: f64,
    /// `refid`.
    pub reference_id: ReferenceId,
    /// `reftime`: when the clock was last updated.
    pub reference_time: NtpTimestamp,
    /// `clock`: the current time, sampled by the driver for this request.
    pub clock: NtpTimestamp,
    /// `peer`: association ID of the system peer, 0 if none.
    pub peer: AssocId,
    /// `tc`: time constant (current poll exponent).
    pub tc: u8,
    /// `mintc`: minimum time constant.
    pub mintc: u8,
    /// `offset`: last clock offset, seconds (sent in ms).
    pub offset: f64,
    /// `frequency`: frequency correction, ppm.
    pub frequency_ppm: f64,
    /// `sys_jitter`: combined jitter of the survivors, seconds (sent in ms).
    pub sys_jitter: f64,
    /// `clk_jitter`: clock jitter, seconds (sent in ms).
    pub clk_jitter: f64,
    /// `clk_wander`: frequency wander, ppm.
    pub clk_wander_ppm: f64,
    /// `tai`, `leapsec`, `expire`: only with a leap second table, as ntpd.
    pub leap_table: Option<LeapTable>,
}

/// The clock filter's eight stages, newest first, in seconds.
#[derive(Clone, Copy, PartialEq, Debug, Default)]
pub struct FilterStages {
    /// `filtdelay`.
    pub delay: [f64; 8],
    /// `filtoffset`.
    pub offset: [f64; 8],
    /// `filtdisp`.
    pub dispersion: [f64; 8],
}

/// One association's variables (`ntpq -c "rv ASSID"`, and what `ntpq -p` reads). Durations
/// in seconds.
#[derive(Clone, Copy, PartialEq, Debug)]
pub struct PeerVars<'a> {
    /// Status word.
    pub status: PeerStatus,
    /// `srcadr`, `srcport`: the server; `None` for a pool row or a name not yet resolved,
    /// sent as `0.0.0.0` port 0 like ntpd.
    pub srcadr: Option<SocketAddr>,
    /// `srchost`: the configured name (`server NAME`, `pool NAME`), which `ntpq -p` shows for
    /// a pool row and `ntpq -S -p`/`-s` for named servers. ntpd sends it for named sources
    /// only; `None` for sources configured by address and for pool members.
    pub srchost: Option<&'a str>,
    /// `dstadr`, `dstport`: our local address; `None` is sent as `0.0.0.0` port 0.
    pub dstadr: Option<SocketAddr>,
    /// `leap` of the server's last reply.
    pub leap: LeapIndicator,
    /// `stratum`: the server's; 16 for pool rows and unreachable servers.
    pub stratum: u8,
    /// `precision` of the server.
    pub precision: i8,
    /// `rootdelay`, seconds.
    pub root_delay: f64,
    /// `rootdisp`, seconds.
    pub root_dispersion: f64,
    /// `refid`: the server's reference ID; `POOL` for pool rows, `INIT` before the first
    /// reply, a kiss code after a KoD.
    pub reference_id: ReferenceId,
    /// `reftime`: the server's reference time.
    pub reference_time: NtpTimestamp,
    /// `rec`: when we last received a reply (ntpq's `when` column counts from it).
    pub rec: NtpTimestamp,
    /// `xmt`: the server's transmit timestamp of that reply.
    pub xmt: NtpTimestamp,
    /// `reach`: the 8-bit reachability register.
    pub reach: u8,
    /// `unreach`: polls without a reply since the last one.
    pub unreach: u32,
    /// `hmode`: our mode, 3 (client).
    pub hmode: u8,
    /// `pmode`: the server's mode in its last packet, 4; 0 before any.
    pub pmode: u8,
    /// `hpoll`: our poll exponent.
    pub hpoll: i8,
    /// `ppoll`: the server's poll exponent.
    pub ppoll: i8,
    /// `headway`: ntpd's rate-limit headway; 0 when not tracked.
    pub headway: u32,
    /// `flash`: ntpd's TEST1–TEST13 failure bits of the last packet (ntpq decodes them).
    pub flash: u16,
    /// `keyid`: 0 without authentication.
    pub keyid: u32,
    /// `offset`, seconds.
    pub offset: f64,
    /// `delay`, seconds.
    pub delay: f64,
    /// `dispersion`, seconds.
    pub dispersion: f64,
    /// `jitter`, seconds.
    pub jitter: f64,
    /// `xleave`: interleave delay, seconds; ntpd 4.2.8 sends it, 0 for basic mode.
    pub xleave: f64,
    /// `filtdelay`, `filtoffset`, `filtdisp`; omitted when `None`.
    pub filter: Option<FilterStages>,
}

impl<'a> PeerVars<'a> {
    /// The row ntpd shows for a `pool NAME` line: `srcadr=0.0.0.0`, `srchost=NAME`, refid
    /// `POOL`, stratum 16, client mode, status configured + broadcast (ntpq: `conf yes`,
    /// `reach none`), which `ntpq -p` prints as `NAME .POOL. 16 p ...`. The caller may adjust
    /// polls and event bits.
    pub fn pool(name: &'a str, hpoll: i8) -> Self {
        PeerVars {
            status: PeerStatus { configured: true, broadcast: true, ..PeerStatus::default() },
            srcadr: None,
            srchost: Some(name),
            dstadr: None,
            leap: LeapIndicator::Unsynchronized,
            stratum: 16,
            precision: 0,
            root_delay: 0.0,
            root_dispersion: 0.0,
            reference_id: ReferenceId::from_bytes(*b"POOL"),
            reference_time: NtpTimestamp::ZERO,
            rec: NtpTimestamp::ZERO,
            xmt: NtpTimestamp::ZERO,
            reach: 0,
            unreach: 0,
            hmode: 3,
            pmode: 0,
            hpoll,
            ppoll: hpoll,
            headway: 0,
            flash: 0,
            keyid: 0,
            offset: 0.0,
            delay: 0.0,
            dispersion: 0.0,
            jitter: 0.0,
            xleave: 0.0,
            filter: None,
        }
    }
}

/// Where a variable's value comes from; the tables below map names to these.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum SysVar {
    Version,
    Processor,
    System,
    Leap,
    Stratum,
    Precision,
    RootDelay,
    RootDisp,
    RefId,
    RefTime,
    Clock,
    Peer,
    Tc,
    Mintc,
    Offset,
    Frequency,
    SysJitter,
    ClkJitter,
    ClkWander,
    Tai,
    Leapsec,
    Expire,
}

/// System variables in ntpd 4.2.8's default (`rv`) order, with their names.
pub(crate) const SYS_VARS: [(&str, SysVar); 22] = [
    ("version", SysVar::Version),
    ("processor", SysVar::Processor),
    ("system", SysVar::System),
    ("leap", SysVar::Leap),
    ("stratum", SysVar::Stratum),
    ("precision", SysVar::Precision),
    ("rootdelay", SysVar::RootDelay),
    ("rootdisp", SysVar::RootDisp),
    ("refid", SysVar::RefId),
    ("reftime", SysVar::RefTime),
    ("clock", SysVar::Clock),
    ("peer", SysVar::Peer),
    ("tc", SysVar::Tc),
    ("mintc", SysVar::Mintc),
    ("offset", SysVar::Offset),
    ("frequency", SysVar::Frequency),
    ("sys_jitter", SysVar::SysJitter),
    ("clk_jitter", SysVar::ClkJitter),
    ("clk_wander", SysVar::ClkWander),
    ("tai", SysVar::Tai),
    ("leapsec", SysVar::Leapsec),
    ("expire", SysVar::Expire),
];

/// Peer variables the responder knows.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum PeerVar {
    SrcAdr,
    SrcPort,
    SrcHost,
    DstAdr,
    DstPort,
    Leap,
    Stratum,
    Precision,
    RootDelay,
    RootDisp,
    RefId,
    RefTime,
    Rec,
    Reach,
    Unreach,
    Hmode,
    Pmode,
    Hpoll,
    Ppoll,
    Headway,
    Flash,
    KeyId,
    Offset,
    Delay,
    Dispersion,
    Jitter,
    Xleave,
    FiltDelay,
    FiltOffset,
    FiltDisp,
    // Known to ntpd and accepted in requests; sent only when asked for.
    Xmt,
    Config,
    AuthEnable,
    Authentic,
    // ntpd knows these names but sends nothing for them here (no refclocks, no bias, and
    // `org` is never disclosed).
    Silent,
}

/// Peer variables in ntpd 4.2.8's default order (`ntpq -c "rv ASSID"`) up to `filtdisp`, then
/// the names accepted only on request. Answers list variables in this order whatever the
/// request's order, as ntpd does.
pub(crate) const PEER_VARS: [(&str, PeerVar, bool); 38] = [
    ("srcadr", PeerVar::SrcAdr, true),
    ("srcport", PeerVar::SrcPort, true),
    ("srchost", PeerVar::SrcHost, true),
    ("dstadr", PeerVar::DstAdr, true),
    ("dstport", PeerVar::DstPort, true),
    ("leap", PeerVar::Leap, true),
    ("stratum", PeerVar::Stratum, true),
    ("precision", PeerVar::Precision, true),
    ("rootdelay", PeerVar::RootDelay, true),
    ("rootdisp", PeerVar::RootDisp, true),
    ("refid", PeerVar::RefId, true),
    ("reftime", PeerVar::RefTime, true),
    ("rec", PeerVar::Rec, true),
    ("reach", PeerVar::Reach, true),
    ("unreach", PeerVar::Unreach, true),
    ("hmode", PeerVar::Hmode, true),
    ("pmode", PeerVar::Pmode, true),
    ("hpoll", PeerVar::Hpoll, true),
    ("ppoll", PeerVar::Ppoll, true),
    ("headway", PeerVar::Headway, true),
    ("flash", PeerVar::Flash, true),
    ("keyid", PeerVar::KeyId, true),
    ("offset", PeerVar::Offset, true),
    ("delay", PeerVar::Delay, true),
    ("dispersion", PeerVar::Dispersion, true),
    ("jitter", PeerVar::Jitter, true),
    ("xleave", PeerVar::Xleave, true),
    ("filtdelay", PeerVar::FiltDelay, true),
    ("filtoffset", PeerVar::FiltOffset, true),
    ("filtdisp", PeerVar::FiltDisp, true),
    ("xmt", PeerVar::Xmt, false),
    ("config", PeerVar::Config, false),
    ("authenable", PeerVar::AuthEnable, false),
    ("authentic", PeerVar::Authentic, false),
    ("org", PeerVar::Silent, false),
    ("bias", PeerVar::Silent, false),
    ("mode", PeerVar::Silent, false),
    ("timer", PeerVar::Silent, false),
];

/// The longest string value sent (ntpd's `ctl_putstr` buffer is 512 bytes in all).
const MAX_STRING_LEN: usize = 255;
/// Milliseconds per second.
const MS_PER_S: f64 = 1e3;

/// Appends `name="value"`, replacing what ntpq's parser cannot take (quotes, commas,
/// control characters, non-ASCII) with `?`.
fn put_str(out: &mut String, name: &str, value: &str) {
    out.push_str(name);
    out.push_str("=\"");
    for c in value.chars().take(MAX_STRING_LEN) {
        let ok = c.is_ascii_graphic() && c != '"' && c != ',' || c == ' ';
        out.push(if ok { c } else { '?' });
    }
    out.push('"');
}

/// C's `%.*f`: Rust's fixed formatting, except for the non-finite spellings.
fn put_fixed(out: &mut String, name: &str, value: f64, decimals: usize) {
    out.push_str(name);
    out.push('=');
    push_fixed(out, value, decimals);
}

fn push_fixed(out: &mut String, value: f64, decimals: usize) {
    if value.is_nan() {
        out.push_str("nan");
    } else if value.is_infinite() {
        out.push_str(if value > 0.0 { "inf" } else { "-inf" });
    } else {
        // Writing to a String cannot fail.
        let _ = write!(out, "{value:.decimals$}");
    }
}

fn put_display(out: &mut String, name: &str, value: impl core::fmt::Display) {
    // Writing to a String cannot fail.
    let _ = write!(out, "{name}={value}");
}

fn put_hex(out: &mut String, name: &str, value: u64) {
    let _ = write!(out, "{name}=0x{value:x}");
}

fn put_ts(out: &mut String, name: &str, ts: NtpTimestamp) {
    let bits = ts.to_bits();
    let _ = write!(out, "{name}=0x{:08x}.{:08x}", bits >> 32, bits & 0xFFFF_FFFF);
}

fn put_addr(out: &mut String, name: &str, addr: Option<SocketAddr>) {
    let ip = addr.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip());
    put_display(out, name, ip);
}

/// ntpd's refid rule: a dotted quad at stratum 2–15, else printable text up to the first NUL.
fn put_refid(out: &mut String, name: &str, stratum: u8, refid: ReferenceId) {
    out.push_str(name);
    out.push('=');
    if (2..16).contains(&stratum) {
        let _ = write!(out, "{}", Ipv4Addr::from(refid.to_bytes()));
    } else {
        for &b in refid.as_bytes().iter().take_while(|&&b| b != 0) {
            out.push(if b.is_ascii_graphic() { char::from(b) } else { '.' });
        }
    }
}

fn put_array(out: &mut String, name: &str, values: &[f64; 8]) {
    out.push_str(name);
    out.push('=');
    for &v in values {
        out.push(' ');
        push_fixed(out, v * MS_PER_S, 2);
    }
}

/// ntpd's `ctl_putfs`: `YYYYMMDDHHMM` in UTC.
fn put_date(out: &mut String, name: &str, unix: i64) {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (y, m, d) = crate::time::civil_from_days(days);
    let _ = write!(out, "{name}={y:04}{m:02}{d:02}{:02}{:02}", secs / 3600, secs % 3600 / 60);
}

/// Appends one system variable as `name=value`; returns false if it has no value now (the
/// leap table entries without a table), which ntpd then leaves out.
pub(crate) fn put_sys(out: &mut String, name: &str, var: SysVar, s: &SystemVars<'_>) -> bool {
    match var {
        SysVar::Version => put_str(out, name, s.version),
        SysVar::Processor => put_str(out, name, s.processor),
        SysVar::System => put_str(out, name, s.system),
        SysVar::Leap => put_display(out, name, s.leap.to_bits()),
        SysVar::Stratum => put_display(out, name, s.stratum),
        SysVar::Precision => put_display(out, name, s.precision),
        SysVar::RootDelay => put_fixed(out, name, s.root_delay * MS_PER_S, 3),
        SysVar::RootDisp => put_fixed(out, name, s.root_dispersion * MS_PER_S, 3),
        SysVar::RefId => put_refid(out, name, s.stratum, s.reference_id),
        SysVar::RefTime => put_ts(out, name, s.reference_time),
        SysVar::Clock => put_ts(out, name, s.clock),
        SysVar::Peer => put_display(out, name, s.peer),
        SysVar::Tc => put_display(out, name, s.tc),
        SysVar::Mintc => put_display(out, name, s.mintc),
        SysVar::Offset => put_fixed(out, name, s.offset * MS_PER_S, 6),
        SysVar::Frequency => put_fixed(out, name, s.frequency_ppm, 3),
        SysVar::SysJitter => put_fixed(out, name, s.sys_jitter * MS_PER_S, 6),
        SysVar::ClkJitter => put_fixed(out, name, s.clk_jitter * MS_PER_S, 6),
        SysVar::ClkWander => put_fixed(out, name, s.clk_wander_ppm, 6),
        SysVar::Tai | SysVar::Leapsec | SysVar::Expire => {
            let Some(table) = s.leap_table else { return false };
            match var {
                SysVar::Tai => put_display(out, name, table.tai),
                SysVar::Leapsec => put_date(out, name, table.leapsec_unix),
                _ => put_date(out, name, table.expire_unix),
            }
        }
    }
    true
}

/// Appends one peer variable; returns false if it has nothing to send (`srchost` of an
/// unnamed source, the filter without stages, the silent names).
pub(crate) fn put_peer(out: &mut String, name: &str, var: PeerVar, p: &PeerVars<'_>) -> bool {
    match var {
        PeerVar::SrcAdr => put_addr(out, name, p.srcadr),
        PeerVar::SrcPort => put_display(out, name, p.srcadr.map_or(0, |a| a.port())),
        PeerVar::SrcHost => match p.srchost {
            Some(host) => put_str(out, name, host),
            None => return false,
        },
        PeerVar::DstAdr => put_addr(out, name, p.dstadr),
        PeerVar::DstPort => put_display(out, name, p.dstadr.map_or(0, |a| a.port())),
        PeerVar::Leap => put_display(out, name, p.leap.to_bits()),
        PeerVar::Stratum => put_display(out, name, p.stratum),
        PeerVar::Precision => put_display(out, name, p.precision),
        PeerVar::RootDelay => put_fixed(out, name, p.root_delay * MS_PER_S, 3),
        PeerVar::RootDisp => put_fixed(out, name, p.root_dispersion * MS_PER_S, 3),
        PeerVar::RefId => put_refid(out, name, p.stratum, p.reference_id),
        PeerVar::RefTime => put_ts(out, name, p.reference_time),
        PeerVar::Rec => put_ts(out, name, p.rec),
        PeerVar::Xmt => put_ts(out, name, p.xmt),
        PeerVar::Reach => put_hex(out, name, u64::from(p.reach)),
        PeerVar::Unreach => put_display(out, name, p.unreach),
        PeerVar::Hmode => put_display(out, name, p.hmode),
        PeerVar::Pmode => put_display(out, name, p.pmode),
        PeerVar::Hpoll => put_display(out, name, p.hpoll),
        PeerVar::Ppoll => put_display(out, name, p.ppoll),
        PeerVar::Headway => put_display(out, name, p.headway),
        PeerVar::Flash => put_hex(out, name, u64::from(p.flash)),
        PeerVar::KeyId => put_display(out, name, p.keyid),
        PeerVar::Offset => put_fixed(out, name, p.offset * MS_PER_S, 6),
        PeerVar::Delay => put_fixed(out, name, p.delay * MS_PER_S, 6),
        PeerVar::Dispersion => put_fixed(out, name, p.dispersion * MS_PER_S, 6),
        PeerVar::Jitter => put_fixed(out, name, p.jitter * MS_PER_S, 6),
        PeerVar::Xleave => put_fixed(out, name, p.xleave * MS_PER_S, 3),
        PeerVar::FiltDelay | PeerVar::FiltOffset | PeerVar::FiltDisp => {
            let Some(f) = &p.filter else { return false };
            let values = match var {
                PeerVar::FiltDelay => &f.delay,
                PeerVar::FiltOffset => &f.offset,
                _ => &f.dispersion,
            };
            put_array(out, name, values);
        }
        PeerVar::Config => put_display(out, name, u8::from(p.status.configured)),
        PeerVar::AuthEnable => put_display(out, name, u8::from(p.status.auth_enabled)),
        PeerVar::Authentic => put_display(out, name, u8::from(p.status.authentic)),
        PeerVar::Silent => return false,
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_ntpd() {
        let mut s = String::new();
        put_str(&mut s, "version", "rntpd \"0.1\",x\u{e9}");
        assert_eq!(s, "version=\"rntpd ?0.1??x?\"");
        s.clear();
        put_fixed(&mut s, "offset", -0.0123456789, 6);
        assert_eq!(s, "offset=-0.012346");
        s.clear();
        put_fixed(&mut s, "x", f64::NAN, 3);
        put_fixed(&mut s, "y", f64::NEG_INFINITY, 3);
        assert_eq!(s, "x=nany=-inf");
        s.clear();
        put_ts(&mut s, "reftime", NtpTimestamp::from_bits(0xe9b1_c2d3_0012_3456));
        assert_eq!(s, "reftime=0xe9b1c2d3.00123456");
        s.clear();
        put_hex(&mut s, "reach", 0xff);
        assert_eq!(s, "reach=0xff");
        s.clear();
        put_refid(&mut s, "refid", 2, ReferenceId::from_bytes([192, 0, 2, 1]));
        put_refid(&mut s, "r", 1, ReferenceId::from_bytes(*b"GPS\0"));
        put_refid(&mut s, "p", 16, ReferenceId::from_bytes(*b"POOL"));
        put_refid(&mut s, "z", 16, ReferenceId::ZERO);
        put_refid(&mut s, "c", 0, ReferenceId::from_bytes([b'A', 1, b'B', b'C']));
        assert_eq!(s, "refid=192.0.2.1r=GPSp=POOLz=c=A.BC");
        s.clear();
        put_array(&mut s, "filtdelay", &[0.001, 0.0123, 0.0, 1.0, 0.0, 0.0, 0.0, 0.5]);
        assert_eq!(s, "filtdelay= 1.00 12.30 0.00 1000.00 0.00 0.00 0.00 500.00");
        s.clear();
        put_date(&mut s, "leapsec", 1_483_228_800);
        put_date(&mut s, "expire", 1_798_416_000 + 3 * 3600 + 4 * 60);
        assert_eq!(s, "leapsec=201701010000expire=202612280304");
    }
}
