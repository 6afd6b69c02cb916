//! The MRU list: ntpd's monitor list of recent NTP clients, which `ntpq -c mrulist` reads.
//!
//! One entry per client address and port (as ntpd: an `sntp` client with a fresh source port
//! per request is a fresh entry each time), with the first and latest receive time, the
//! number of packets, the mode and version of the latest one, and the `restrict` flags that
//! applied to it, in ntpd's `RES_*` bits ([`ntpd_restrict_bits`]).
//!
//! # The table
//! A fixed capacity (default [`MRU_CAPACITY`]) chosen at construction; entries are appended
//! into a vector reserved once (so memory grows with the clients seen, up to the capacity,
//! and never beyond), linked newest to oldest in a doubly linked list by index, and found by
//! a chained hash index keyed with SipHash-1-3 under a secret from the node's RNG (an
//! attacker cannot aim sources at one chain). When full, the oldest entry is recycled. Every
//! [`MruList::record`] is O(1) expected (one hash, a chain of average length at most 1) and
//! never allocates. Cost: [`ENTRY_BYTES`] per entry plus 4 bytes per hash bucket: 480 KiB at
//! the default capacity, touched only as clients arrive.
//!
//! This module deliberately does **not** limit rates (that is the rate limiter, `server::ratelimit`, which
//! keys on addresses alone and keeps no first-seen time or count), read clocks (the caller
//! passes the receive timestamp), or answer queries (see [`crate::mode6`] and the node).

use core::net::{IpAddr, Ipv6Addr, SocketAddr};

use super::{siphash, RestrictFlags};
use crate::rng::{RngSource, SplitMix64};
use crate::time::NtpTimestamp;

/// Entries kept by default. ntpd keeps between `mru mindepth` (600) and `maxdepth` entries
/// in up to `maxmem` (1 MiB by default); 8192 entries take 480 KiB here.
pub const MRU_CAPACITY: usize = 0x2000;
/// Bytes per entry (see the module doc).
pub const ENTRY_BYTES: usize = core::mem::size_of::<Entry>();
/// "No entry" in links and buckets (indices are stored plus one).
const NONE: u32 = 0;

/// ntpd's `RES_*` bits, as `rs.N` carries them and `ntpq -c mrulist` shows them (`rstr`).
pub mod res {
    /// `ignore`.
    pub const IGNORE: u16 = 0x0001;
    /// `noserve` (`RES_DONTSERVE`).
    pub const DONTSERVE: u16 = 0x0002;
    /// `notrust` (`RES_DONTTRUST`).
    pub const DONTTRUST: u16 = 0x0004;
    /// `limited`: set only when the packet was rate-limited (ntpq shows `L`).
    pub const LIMITED: u16 = 0x0020;
    /// `noquery`.
    pub const NOQUERY: u16 = 0x0040;
    /// `nomodify`.
    pub const NOMODIFY: u16 = 0x0080;
    /// `kod`: set only when the packet was rate-limited (ntpq shows `K`).
    pub const KOD: u16 = 0x0400;
}

/// `flags` in ntpd's `RES_*` bits. As ntpd and NTPsec report them, `limited` and `kod` are
/// kept only if the packet was rate-limited (`limited_now`).
pub fn ntpd_restrict_bits(flags: RestrictFlags, limited_now: bool) -> u16 {
    let mut bits = 0;
    for (flag, bit) in [
        (RestrictFlags::IGNORE, res::IGNORE),
        (RestrictFlags::NOSERVE, res::DONTSERVE),
        (RestrictFlags::NOTRUST, res::DONTTRUST),
        (RestrictFlags::NOQUERY, res::NOQUERY),
        (RestrictFlags::NOMODIFY, res::NOMODIFY),
    ] {
        if flags.contains(flag) {
            bits |= bit;
        }
    }
    if limited_now {
        if flags.contains(RestrictFlags::LIMITED) {
            bits |= res::LIMITED;
        }
        if flags.contains(RestrictFlags::KOD) {
            bits |= res::KOD;
        }
    }
    bits
}

/// One client, as the list reports it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct MruEntry {
    /// Address (IPv4 as IPv4) and source port.
    pub addr: SocketAddr,
    /// Receive time of the first packet.
    pub first: NtpTimestamp,
    /// Receive time of the latest packet.
    pub last: NtpTimestamp,
    /// Packets (saturating).
    pub count: u32,
    /// Mode and version of the latest packet: `version << 3 | mode`, as ntpd's `mv.N`.
    pub mode_version: u8,
    /// `restrict` flags that applied to the latest packet, ntpd's bits ([`res`]).
    pub restrict: u16,
}

/// A stored entry; links are indices plus one, [`NONE`] for none.
#[derive(Clone, Copy, Debug, Default)]
struct Entry {
    addr: [u8; 16],
    first: u64,
    last: u64,
    count: u32,
    /// Towards the newest.
    newer: u32,
    /// Towards the oldest.
    older: u32,
    /// Next in the hash chain.
    chain: u32,
    port: u16,
    restrict: u16,
    mode_version: u8,
}

impl Entry {
    fn view(&self) -> MruEntry {
        let v6 = Ipv6Addr::from(self.addr);
        let ip = v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4);
        MruEntry {
            addr: SocketAddr::new(ip, self.port),
            first: NtpTimestamp::from_bits(self.first),
            last: NtpTimestamp::from_bits(self.last),
            count: self.count,
            mode_version: self.mode_version,
            restrict: self.restrict,
        }
    }
}

/// A position in the list, for walking it ([`MruList::oldest`], [`MruList::newer`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Cursor(u32);

/// The MRU list (see the module doc).
#[derive(Clone, Debug)]
pub struct MruList {
    entries: Vec<Entry>,
    capacity: usize,
    /// Chain heads; a power of two at least the capacity.
    buckets: Box<[u32]>,
    newest: u32,
    oldest: u32,
    key: (u64, u64),
}

/// The 16-octet form of an address (IPv4 as IPv4-mapped IPv6).
fn addr_bytes(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

impl MruList {
    /// An empty list of `capacity` entries (at least 1), hashing under a key derived from
    /// `seed` (take it from the node's RNG).
    pub fn new(capacity: usize, seed: u64) -> Self {
        let capacity = capacity.clamp(1, u32::MAX as usize - 1);
        let mut rng = SplitMix64::new(seed);
        let key = (rng.next_u64(), rng.next_u64());
        MruList {
            entries: Vec::with_capacity(capacity),
            capacity,
            // Zeroed memory: untouched pages cost no RSS until used.
            buckets: vec![NONE; capacity.next_power_of_two()].into_boxed_slice(),
            newest: NONE,
            oldest: NONE,
            key,
        }
    }

    /// Entries the list keeps at most.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Entries now.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no client was recorded.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn bucket(&self, addr: &[u8; 16], port: u16) -> usize {
        let h = siphash::<1, 3>((self.key.0 ^ u64::from(port), self.key.1), addr);
        // The mask keeps the index below `buckets.len()`, a power of two.
        (h as usize) & (self.buckets.len() - 1)
    }

    fn get(&self, link: u32) -> Option<&Entry> {
        self.entries.get((link as usize).checked_sub(1)?)
    }

    fn get_mut(&mut self, link: u32) -> Option<&mut Entry> {
        self.entries.get_mut((link as usize).checked_sub(1)?)
    }

    fn find_link(&self, addr: &[u8; 16], port: u16) -> u32 {
        let mut link = self.buckets.get(self.bucket(addr, port)).copied().unwrap_or(NONE);
        while let Some(e) = self.get(link) {
            if e.addr == *addr && e.port == port {
                return link;
            }
            link = e.chain;
        }
        NONE
    }

    /// Takes `link` out of the newest-to-oldest list.
    fn unlink(&mut self, link: u32) {
        let Some(&Entry { newer, older, .. }) = self.get(link) else { return };
        match self.get_mut(newer) {
            Some(n) => n.older = older,
            None => self.newest = older,
        }
        match self.get_mut(older) {
            Some(o) => o.newer = newer,
            None => self.oldest = newer,
        }
    }

    /// Puts `link` at the newest end.
    fn push_newest(&mut self, link: u32) {
        let previous = self.newest;
        if let Some(e) = self.get_mut(link) {
            e.newer = NONE;
            e.older = previous;
        }
        match self.get_mut(previous) {
            Some(p) => p.newer = link,
            None => self.oldest = link,
        }
        self.newest = link;
    }

    /// Takes `link` out of its hash chain.
    fn unchain(&mut self, link: u32) {
        let Some(&Entry { addr, port, chain, .. }) = self.get(link) else { return };
        let bucket = self.bucket(&addr, port);
        let Some(head) = self.buckets.get_mut(bucket) else { return };
        if *head == link {
            *head = chain;
            return;
        }
        let mut at = *head;
        while let Some(e) = self.get(at) {
            let next = e.chain;
            if next == link {
                if let Some(e) = self.get_mut(at) {
                    e.chain = chain;
                }
                return;
            }
            at = next;
        }
    }

    /// Accounts one packet from `client` received at `rx` (its first octet's mode and
    /// version in `mode_version`, the restrict flags in ntpd's bits in `restrict`). O(1),
    /// allocation-free; when the list is full the oldest entry gives way.
    pub fn record(
        &mut self,
        client: SocketAddr,
        rx: NtpTimestamp,
        mode_version: u8,
        restrict: u16,
    ) {
        let addr = addr_bytes(client.ip());
        let port = client.port();
        let found = self.find_link(&addr, port);
        if let Some(e) = self.get_mut(found) {
            e.last = rx.to_bits();
            e.count = e.count.saturating_add(1);
            e.mode_version = mode_version;
            e.restrict = restrict;
            if self.newest != found {
                self.unlink(found);
                self.push_newest(found);
            }
            return;
        }
        let fresh = Entry {
            addr,
            first: rx.to_bits(),
            last: rx.to_bits(),
            count: 1,
            newer: NONE,
            older: NONE,
            chain: NONE,
            port,
            restrict,
            mode_version,
        };
        let link = if self.entries.len() < self.capacity {
            // Within the reserved capacity: no allocation.
            self.entries.push(fresh);
            self.entries.len() as u32
        } else {
            let victim = self.oldest;
            self.unlink(victim);
            self.unchain(victim);
            match self.get_mut(victim) {
                Some(e) => *e = fresh,
                None => return,
            }
            victim
        };
        let bucket = self.bucket(&addr, port);
        if let Some(head) = self.buckets.get_mut(bucket) {
            if let Some(e) = self.entries.get_mut(link as usize - 1) {
                e.chain = *head;
            }
            *head = link;
        }
        self.push_newest(link);
    }

    /// The entry of `client`, if recorded.
    pub fn find(&self, client: SocketAddr) -> Option<(Cursor, MruEntry)> {
        let link = self.find_link(&addr_bytes(client.ip()), client.port());
        self.get(link).map(|e| (Cursor(link), e.view()))
    }

    /// The oldest entry.
    pub fn oldest(&self) -> Option<(Cursor, MruEntry)> {
        self.get(self.oldest).map(|e| (Cursor(self.oldest), e.view()))
    }

    /// The newest entry.
    pub fn newest(&self) -> Option<(Cursor, MruEntry)> {
        self.get(self.newest).map(|e| (Cursor(self.newest), e.view()))
    }

    /// The entry next newer than `at`.
    pub fn newer(&self, at: Cursor) -> Option<(Cursor, MruEntry)> {
        let link = self.get(at.0)?.newer;
        self.get(link).map(|e| (Cursor(link), e.view()))
    }

    /// The entry next older than `at`.
    pub fn older(&self, at: Cursor) -> Option<(Cursor, MruEntry)> {
        let link = self.get(at.0)?.older;
        self.get(link).map(|e| (Cursor(link), e.view()))
    }

    /// All entries, newest first (for tests and reports; allocates).
    pub fn newest_first(&self) -> Vec<MruEntry> {
        let mut out = Vec::with_capacity(self.len());
        let mut at = self.newest();
        while let Some((cursor, entry)) = at {
            out.push(entry);
            at = self.older(cursor);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;

    fn client(i: u32, port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::from(0xC612_0000 + i)), port)
    }

    fn ts(secs: u32) -> NtpTimestamp {
        NtpTimestamp::from_bits(u64::from(secs) << 32)
    }

    #[test]
    fn entry_is_56_bytes() {
        // The cost the module doc and MRU_CAPACITY state.
        assert_eq!(ENTRY_BYTES, 56);
    }

    #[test]
    fn counts_and_orders_newest_first() {
        let mut mru = MruList::new(16, 1);
        mru.record(client(1, 123), ts(10), 0x23, 0);
        mru.record(client(2, 123), ts(11), 0x1b, 0);
        mru.record(client(1, 123), ts(12), 0x23, res::LIMITED);
        // Another port of the same address is another client, as in ntpd.
        mru.record(client(1, 50000), ts(13), 0x23, 0);
        let all = mru.newest_first();
        let got: Vec<_> = all.iter().map(|e| (e.addr, e.count)).collect();
        assert_eq!(got, [(client(1, 50000), 1), (client(1, 123), 2), (client(2, 123), 1)]);
        assert_eq!((all[1].first, all[1].last, all[1].restrict), (ts(10), ts(12), res::LIMITED));
        assert_eq!(all[2].mode_version, 0x1b);
        assert_eq!(mru.oldest().map(|(_, e)| e.addr), Some(client(2, 123)));
    }

    #[test]
    fn full_list_recycles_the_oldest_and_stays_at_capacity() {
        let mut mru = MruList::new(64, 2);
        for i in 0..10_000u32 {
            mru.record(client(i % 1000, 123), ts(i), 0x23, 0);
            assert!(mru.len() <= 64);
        }
        assert_eq!(mru.len(), 64);
        let all = mru.newest_first();
        assert_eq!(all.len(), 64);
        // The 64 most recent clients, newest first, each findable; evicted ones are gone.
        for (k, e) in all.iter().enumerate() {
            let i = 9999 - k as u32;
            assert_eq!(e.addr, client(i % 1000, 123));
            assert!(mru.find(e.addr).is_some());
        }
        assert!(mru.find(client(9999 % 1000 - 64, 123)).is_none());
        // Walking oldest to newest visits the same entries.
        let mut n = 0;
        let mut at = mru.oldest();
        while let Some((c, _)) = at {
            n += 1;
            at = mru.newer(c);
        }
        assert_eq!(n, 64);
    }

    #[test]
    fn ipv6_and_mapped_addresses() {
        let mut mru = MruList::new(4, 3);
        let v6: SocketAddr = "[2001:db8::1]:123".parse().unwrap();
        mru.record(v6, ts(1), 0x23, 0);
        mru.record(client(5, 1), ts(2), 0x23, 0);
        let all = mru.newest_first();
        assert_eq!(all[0].addr, client(5, 1));
        assert_eq!(all[1].addr, v6);
    }

    #[test]
    fn restrict_bits_as_ntpd() {
        let f = RestrictFlags::KOD.union(RestrictFlags::LIMITED).union(RestrictFlags::NOQUERY);
        assert_eq!(ntpd_restrict_bits(f, false), 0x40);
        assert_eq!(ntpd_restrict_bits(f, true), 0x460);
        assert_eq!(ntpd_restrict_bits(RestrictFlags::NOSERVE, false), 0x02);
    }

    #[test]
    fn memory_is_reserved_once() {
        let mut mru = MruList::new(100, 4);
        let before = mru.entries.capacity();
        for i in 0..1000 {
            mru.record(client(i, 9), ts(i), 0x23, 0);
        }
        assert_eq!(mru.entries.capacity(), before);
        assert_eq!(before, 100);
    }
}
