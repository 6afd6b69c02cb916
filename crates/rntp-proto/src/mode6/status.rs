//! Status words: the system status word of READSTAT/READVAR answers about the system, and the
//! peer status word of every association (RFC 9327 §2.3–2.4, ntpd's `ctlsysstatus` and
//! `ctlpeerstatus`).
//!
//! ```text
//! system: | LI (2) | clock source (6) | event count (4) | last event (4) |
//! peer:   | conf auth_en authentic reach bcast | sel (3) | count (4) | event (4) |
//! ```

use crate::wire::LeapIndicator;

/// The clock source field of the system status word (ntpd's `CTL_SST_TS_*`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub enum ClockSource {
    /// 0: none; no system peer. ntpq: `sync_unspec`.
    #[default]
    Unspecified,
    /// 1: PPS signal. ntpq: `sync_pps`.
    Pps,
    /// 5: local clock (orphan or `local` refclock). ntpq: `sync_local`.
    Local,
    /// 6: NTP server; what rntpd reports while it has a system peer. ntpq: `sync_ntp`.
    Ntp,
    /// Any other 6-bit value.
    Other(u8),
}

impl ClockSource {
    /// The 6-bit wire value.
    pub const fn to_bits(self) -> u8 {
        match self {
            ClockSource::Unspecified => 0,
            ClockSource::Pps => 1,
            ClockSource::Local => 5,
            ClockSource::Ntp => 6,
            ClockSource::Other(bits) => bits & 0x3F,
        }
    }

    /// From the 6-bit wire value.
    pub const fn from_bits(bits: u8) -> Self {
        match bits & 0x3F {
            0 => ClockSource::Unspecified,
            1 => ClockSource::Pps,
            5 => ClockSource::Local,
            6 => ClockSource::Ntp,
            other => ClockSource::Other(other),
        }
    }
}

/// System event codes (ntpd's `EVNT_*`), the low nibble of the system status word.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub enum SystemEvent {
    /// 0: unspecified.
    #[default]
    Unspecified,
    /// 1: frequency file not available. ntpq: `freq_not_set`.
    FreqNotSet,
    /// 2: frequency set from file. ntpq: `freq_set`.
    FreqSet,
    /// 3: spike detected. ntpq: `spike_detect`.
    SpikeDetect,
    /// 4: frequency training. ntpq: `freq_mode`.
    FreqMode,
    /// 5: clock synchronized. ntpq: `clock_sync`.
    ClockSync,
    /// 6: restart. ntpq: `restart`.
    Restart,
    /// 7: panic stop. ntpq: `panic_stop`.
    PanicStop,
    /// 8: no system peer. ntpq: `no_sys_peer`.
    NoSysPeer,
    /// 9: leap second armed. ntpq: `leap_armed`.
    LeapArmed,
    /// 10: leap second disarmed. ntpq: `leap_disarmed`.
    LeapDisarmed,
    /// 11: leap second event. ntpq: `leap_event`.
    LeapEvent,
    /// 12: clock stepped. ntpq: `clock_step`.
    ClockStep,
    /// 13: kernel event. ntpq: `kern`.
    Kernel,
    /// 14: TAI offset changed. ntpq: `TAI...`.
    Tai,
    /// 15: stale leap second values. ntpq: `stale leapsecond values`.
    StaleLeapValues,
}

impl SystemEvent {
    /// The 4-bit code.
    pub const fn code(self) -> u8 {
        self as u8
    }
}

/// The system status word.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct SystemStatus {
    /// Clock source: [`ClockSource::Ntp`] while there is a system peer.
    pub source: ClockSource,
    /// Events since the counter was last reset, saturating at 15 (ntpd counts repeats of the
    /// same event and resets on a different one).
    pub event_count: u8,
    /// The most recent event.
    pub last_event: SystemEvent,
}

impl SystemStatus {
    /// The 16-bit word, with the leap indicator of the system variables on top.
    pub const fn to_bits(self, leap: LeapIndicator) -> u16 {
        ((leap.to_bits() as u16) << 14)
            | ((self.source.to_bits() as u16) << 8)
            | ((clamp_nibble(self.event_count) as u16) << 4)
            | (self.last_event.code() as u16)
    }
}

/// The selection status of a peer (ntpd's `CTL_PST_SEL_*`): the tally code `ntpq -p` shows in
/// its first column.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub enum Selection {
    /// 0 ` `: rejected (unreachable, unsynchronized, too far).
    #[default]
    Reject,
    /// 1 `x`: falseticker (outside the intersection).
    Falsetick,
    /// 2 `.`: excess (beyond `maxclock`, not used).
    Excess,
    /// 3 `-`: outlier (discarded by clustering).
    Outlier,
    /// 4 `+`: candidate (survivor, combined).
    Candidate,
    /// 5 `#`: backup (a survivor beyond `maxclock`, kept in reserve).
    Backup,
    /// 6 `*`: the system peer.
    SysPeer,
    /// 7 `o`: the system peer via PPS.
    PpsPeer,
}

impl Selection {
    /// The 3-bit code.
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// From the 3-bit code.
    pub const fn from_code(code: u8) -> Self {
        match code & 0x07 {
            0 => Selection::Reject,
            1 => Selection::Falsetick,
            2 => Selection::Excess,
            3 => Selection::Outlier,
            4 => Selection::Candidate,
            5 => Selection::Backup,
            6 => Selection::SysPeer,
            _ => Selection::PpsPeer,
        }
    }
}

/// Peer event codes (ntpd's `PEVNT_*` without the peer flag), the low nibble of the peer
/// status word.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub enum PeerEvent {
    /// 0: none.
    #[default]
    None,
    /// 1: association mobilized. ntpq: `mobilize`.
    Mobilize,
    /// 2: association demobilized. ntpq: `demobilize`.
    Demobilize,
    /// 3: server unreachable. ntpq: `unreachable`.
    Unreachable,
    /// 4: server reachable. ntpq: `reachable`.
    Reachable,
    /// 5: association restarted. ntpq: `restart`.
    Restart,
    /// 6: no reply. ntpq: `no_reply`.
    NoReply,
    /// 7: rate exceeded (RATE kiss). ntpq: `rate_exceeded`.
    RateExceeded,
    /// 8: access denied (DENY/RSTR kiss). ntpq: `access_denied`.
    AccessDenied,
    /// 9: leap armed. ntpq: `leap_armed`.
    LeapArmed,
    /// 10: became the system peer. ntpq: `sys_peer`.
    SysPeer,
    /// 11: clock event. ntpq: `clock_alarm`.
    ClockEvent,
    /// 12: bad authentication. ntpq: `bad_auth`.
    BadAuth,
    /// 13: popcorn spike suppressed. ntpq: `popcorn`.
    Popcorn,
    /// 14: entering interleave mode.
    Interleave,
    /// 15: interleave error.
    InterleaveError,
}

impl PeerEvent {
    /// The 4-bit code.
    pub const fn code(self) -> u8 {
        self as u8
    }
}

/// The peer status word of an association.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct PeerStatus {
    /// Configured (`server`/`pool` line, persistent); ntpq's `conf`. `ntpq -p` lists only
    /// associations that are configured or reachable, so set it on `server` and `pool` rows
    /// (ntpd does) and not on pool members (ntpd marks them preemptible).
    pub configured: bool,
    /// Authentication enabled (a key or NTS); ntpq's `auth` is `none` without it.
    pub auth_enabled: bool,
    /// The last packet authenticated (ntpq `ok`, else `bad` when enabled).
    pub authentic: bool,
    /// Reachable: the reach register is non-zero.
    pub reachable: bool,
    /// Broadcast bit: ntpd sets it on transmit-only associations, which includes the `pool`
    /// prototype row (ntpq then shows `reach=none`); see [`super::PeerVars::pool`].
    pub broadcast: bool,
    /// Selection status.
    pub selection: Selection,
    /// Events since the counter was last reset, saturating at 15.
    pub event_count: u8,
    /// The most recent event.
    pub last_event: PeerEvent,
}

/// `ctlpeerstatus` bits.
const CONFIG_BIT: u16 = 0x8000;
/// Authentication enabled.
const AUTHENABLE_BIT: u16 = 0x4000;
/// Authentic.
const AUTHENTIC_BIT: u16 = 0x2000;
/// Reachable.
const REACH_BIT: u16 = 0x1000;
/// Broadcast.
const BCAST_BIT: u16 = 0x0800;

const fn clamp_nibble(count: u8) -> u8 {
    if count > 0x0F {
        0x0F
    } else {
        count
    }
}

impl PeerStatus {
    /// The 16-bit word.
    pub const fn to_bits(self) -> u16 {
        let mut word = 0u16;
        if self.configured {
            word |= CONFIG_BIT;
        }
        if self.auth_enabled {
            word |= AUTHENABLE_BIT;
        }
        if self.authentic {
            word |= AUTHENTIC_BIT;
        }
        if self.reachable {
            word |= REACH_BIT;
        }
        if self.broadcast {
            word |= BCAST_BIT;
        }
        word | ((self.selection.code() as u16) << 8)
            | ((clamp_nibble(self.event_count) as u16) << 4)
            | (self.last_event.code() as u16)
    }

    /// Decodes a word (event codes above 15 cannot occur: 4 bits).
    pub fn from_bits(word: u16) -> Self {
        const EVENTS: [PeerEvent; 16] = [
            PeerEvent::None,
            PeerEvent::Mobilize,
            PeerEvent::Demobilize,
            PeerEvent::Unreachable,
            PeerEvent::Reachable,
            PeerEvent::Restart,
            PeerEvent::NoReply,
            PeerEvent::RateExceeded,
            PeerEvent::AccessDenied,
            PeerEvent::LeapArmed,
            PeerEvent::SysPeer,
            PeerEvent::ClockEvent,
            PeerEvent::BadAuth,
            PeerEvent::Popcorn,
            PeerEvent::Interleave,
            PeerEvent::InterleaveError,
        ];
        PeerStatus {
            configured: word & CONFIG_BIT != 0,
            auth_enabled: word & AUTHENABLE_BIT != 0,
            authentic: word & AUTHENTIC_BIT != 0,
            reachable: word & REACH_BIT != 0,
            broadcast: word & BCAST_BIT != 0,
            selection: Selection::from_code((word >> 8) as u8),
            event_count: ((word >> 4) & 0x0F) as u8,
            last_event: EVENTS[usize::from(word & 0x0F)],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ntpd_sample_words() {
        // `ntpq -c as` on ntpd: "961a conf reach sel_sys.peer 1 event sys_peer".
        let sys_peer = PeerStatus {
            configured: true,
            reachable: true,
            selection: Selection::SysPeer,
            event_count: 1,
            last_event: PeerEvent::SysPeer,
            ..PeerStatus::default()
        };
        assert_eq!(sys_peer.to_bits(), 0x961a);
        assert_eq!(PeerStatus::from_bits(0x961a), sys_peer);
        // A pool row as ntpd shows it: "8811 yes none none reject mobilize 1" (the pool
        // prototype carries a transmit-only cast flag, hence the broadcast bit).
        let pool = PeerStatus {
            configured: true,
            broadcast: true,
            event_count: 1,
            last_event: PeerEvent::Mobilize,
            ..PeerStatus::default()
        };
        assert_eq!(pool.to_bits(), 0x8811);
        // System: leap 0, sync_ntp, 1 event, clock_sync: 0x0615.
        let sys = SystemStatus {
            source: ClockSource::Ntp,
            event_count: 1,
            last_event: SystemEvent::ClockSync,
        };
        assert_eq!(sys.to_bits(LeapIndicator::NoWarning), 0x0615);
        assert_eq!(sys.to_bits(LeapIndicator::Unsynchronized), 0xc615);
    }

    #[test]
    fn counts_saturate_and_bits_round_trip() {
        let s = PeerStatus { event_count: 200, ..PeerStatus::default() };
        assert_eq!(s.to_bits() & 0x00F0, 0x00F0);
        for word in 0..=u16::MAX {
            // Bits 8..11 other than the selection are the flags; all 16 bits are defined.
            assert_eq!(PeerStatus::from_bits(word).to_bits(), word);
        }
        for bits in 0..64 {
            assert_eq!(ClockSource::from_bits(bits).to_bits(), bits);
        }
    }
}
