//! Access control for the server: ntpd's `restrict` lines, reduced to the flags a time server
//! needs ([`RestrictFlags`]), and the longest-prefix lookup over them.
//!
//! A rule is an address, a mask and flags ([`RestrictRule`]). For a client address the most
//! specific matching rule applies (the mask with the most one bits, as ntpd sorts its list);
//! when none matches, the configured default flags do. Rules are per address family: an IPv4
//! rule never matches an IPv6 client and vice versa, like ntpd's `restrict -4`/`-6`. IPv4
//! clients that arrive on a dual-stack socket as IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`)
//! are looked up as the IPv4 addresses they are.
//!
//! This module deliberately does **not** parse `restrict` lines (the config crate does), keep
//! per-client state (see `ratelimit`), or implement the flags that concern features rntpd does
//! not have (`nomodify`, `nopeer`, `notrust`, `version`, ...).

use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use core::ops::{BitOr, BitOrAssign};

/// Bits in an IPv4 address.
const V4_BITS: u8 = 0x20;
/// Bits in an IPv6 address.
const V6_BITS: u8 = 0x80;

/// The access-control flags of a `restrict` rule, as a small bit set.
///
/// The empty set (the default) serves everyone without limit, as ntpd does with no `restrict`
/// line at all.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RestrictFlags(u8);

impl RestrictFlags {
    /// No restriction.
    pub const NONE: RestrictFlags = RestrictFlags(0x00);
    /// `ignore`: drop every packet from the client, of any mode, before even parsing it.
    pub const IGNORE: RestrictFlags = RestrictFlags(0x01);
    /// `noserve`: drop time requests (mode 3, and mode 0 of NTPv1). With [`Self::KOD`], answer
    /// a `DENY` kiss-o'-death instead.
    pub const NOSERVE: RestrictFlags = RestrictFlags(0x02);
    /// `noquery`: drop mode 6 and 7 queries. The responder drops those anyway (the control
    /// protocol has its own socket); the flag is kept so configurations round-trip.
    pub const NOQUERY: RestrictFlags = RestrictFlags(0x04);
    /// `kod`: send a kiss-o'-death where the request would otherwise be dropped silently:
    /// `RATE` when [`Self::LIMITED`] trips, `DENY` with [`Self::NOSERVE`].
    pub const KOD: RestrictFlags = RestrictFlags(0x08);
    /// `limited`: apply the per-client rate limit (ntpd's `discard average`/`minimum`).
    pub const LIMITED: RestrictFlags = RestrictFlags(0x10);

    /// Every flag with its ntpd keyword, in bit order, for display.
    const NAMES: [(RestrictFlags, &'static str); 5] = [
        (Self::IGNORE, "ignore"),
        (Self::NOSERVE, "noserve"),
        (Self::NOQUERY, "noquery"),
        (Self::KOD, "kod"),
        (Self::LIMITED, "limited"),
    ];

    /// Every defined bit.
    const ALL_BITS: u8 = 0x1F;

    /// The raw bits.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// From raw bits; undefined bits are dropped.
    pub const fn from_bits_truncate(bits: u8) -> Self {
        RestrictFlags(bits & Self::ALL_BITS)
    }

    /// Whether every flag of `other` is set in `self`.
    pub const fn contains(self, other: RestrictFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// The flags of both.
    pub const fn union(self, other: RestrictFlags) -> Self {
        RestrictFlags(self.0 | other.0)
    }

    /// The flags of `self` that are not in `other`.
    pub const fn difference(self, other: RestrictFlags) -> Self {
        RestrictFlags(self.0 & !other.0)
    }

    /// Whether no flag is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl BitOr for RestrictFlags {
    type Output = RestrictFlags;

    fn bitor(self, rhs: RestrictFlags) -> RestrictFlags {
        self.union(rhs)
    }
}

impl BitOrAssign for RestrictFlags {
    fn bitor_assign(&mut self, rhs: RestrictFlags) {
        *self = self.union(rhs);
    }
}

impl fmt::Debug for RestrictFlags {
    /// The ntpd keywords, e.g. `RestrictFlags(kod limited)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RestrictFlags(")?;
        let mut first = true;
        for (flag, name) in Self::NAMES {
            if self.contains(flag) {
                if !first {
                    f.write_str(" ")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        f.write_str(")")
    }
}

/// One `restrict ADDRESS mask MASK FLAGS...` line.
///
/// Address bits outside the mask are ignored, as in ntpd. A rule whose address and mask are of
/// different families is invalid ([`RestrictRule::is_valid`]) and never matches.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct RestrictRule {
    /// The network address.
    pub addr: IpAddr,
    /// The mask, of the same family as `addr`. Masks need not be contiguous (ntpd allows
    /// that); specificity is the number of one bits.
    pub mask: IpAddr,
    /// The flags for clients this rule matches.
    pub flags: RestrictFlags,
}

impl RestrictRule {
    /// A rule for `addr/prefix_len`; a prefix longer than the address is clamped to a host rule.
    pub fn prefix(addr: IpAddr, prefix_len: u8, flags: RestrictFlags) -> Self {
        let mask = match addr {
            IpAddr::V4(_) => {
                let len = u32::from(prefix_len.min(V4_BITS));
                IpAddr::V4(Ipv4Addr::from_bits(
                    u32::MAX.checked_shl(u32::from(V4_BITS) - len).unwrap_or(0),
                ))
            }
            IpAddr::V6(_) => {
                let len = u32::from(prefix_len.min(V6_BITS));
                IpAddr::V6(Ipv6Addr::from_bits(
                    u128::MAX.checked_shl(u32::from(V6_BITS) - len).unwrap_or(0),
                ))
            }
        };
        RestrictRule { addr, mask, flags }
    }

    /// A rule for exactly one address (ntpd's `restrict ADDRESS` without a mask).
    pub fn host(addr: IpAddr, flags: RestrictFlags) -> Self {
        Self::prefix(addr, V6_BITS, flags)
    }

    /// Whether address and mask are of the same family.
    pub const fn is_valid(&self) -> bool {
        matches!(
            (self.addr, self.mask),
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_))
        )
    }

    /// Whether `client` falls under this rule (after mapping `::ffff:a.b.c.d` to IPv4).
    pub fn matches(&self, client: IpAddr) -> bool {
        Compiled::new(self).is_some_and(|rule| rule.matches(&Key::new(client)))
    }
}

/// An address reduced to what matching needs: family and 128 bits (IPv4 in the low 32).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) struct Key {
    /// Whether the address is IPv6 (after canonicalization).
    v6: bool,
    /// The address bits.
    bits: u128,
}

impl Key {
    /// The lookup key of a client address. IPv4-mapped IPv6 becomes IPv4, so a dual-stack
    /// socket does not sidestep the IPv4 rules.
    pub(super) fn new(addr: IpAddr) -> Self {
        match addr.to_canonical() {
            IpAddr::V4(v4) => Key { v6: false, bits: u128::from(v4.to_bits()) },
            IpAddr::V6(v6) => Key { v6: true, bits: v6.to_bits() },
        }
    }

    /// 16 bytes identifying the client, for hashing: IPv4 as its IPv4-mapped IPv6 form.
    pub(super) fn to_bytes(self) -> [u8; 16] {
        if self.v6 {
            self.bits.to_be_bytes()
        } else {
            // Truncation is exact: IPv4 keys only use the low 32 bits.
            Ipv4Addr::from_bits(self.bits as u32).to_ipv6_mapped().octets()
        }
    }
}

/// A rule in matching form.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Compiled {
    /// Family.
    v6: bool,
    /// `addr & mask`.
    net: u128,
    /// The mask.
    mask: u128,
    /// The flags.
    flags: RestrictFlags,
}

impl Compiled {
    /// `None` for a rule mixing families.
    fn new(rule: &RestrictRule) -> Option<Self> {
        let (v6, addr, mask) = match (rule.addr, rule.mask) {
            (IpAddr::V4(a), IpAddr::V4(m)) => {
                (false, u128::from(a.to_bits()), u128::from(m.to_bits()))
            }
            (IpAddr::V6(a), IpAddr::V6(m)) => (true, a.to_bits(), m.to_bits()),
            _ => return None,
        };
        Some(Compiled { v6, net: addr & mask, mask, flags: rule.flags })
    }

    /// Whether the key falls under this rule.
    fn matches(&self, key: &Key) -> bool {
        self.v6 == key.v6 && key.bits & self.mask == self.net
    }
}

/// The restrict list in lookup order: most specific first.
#[derive(Clone, Debug, Default)]
pub(super) struct RestrictList {
    /// Rules sorted by specificity, most specific first; no two with the same net and mask.
    rules: Vec<Compiled>,
    /// Flags for clients no rule matches.
    default_flags: RestrictFlags,
}

impl RestrictList {
    /// Compiles `rules`. Invalid rules are skipped. For two rules with the same address and
    /// mask the later wins, as a repeated `restrict` line replaces the earlier in ntpd.
    pub(super) fn new(rules: &[RestrictRule], default_flags: RestrictFlags) -> Self {
        let mut compiled: Vec<Compiled> = Vec::with_capacity(rules.len());
        for rule in rules.iter().filter_map(Compiled::new) {
            match compiled
                .iter_mut()
                .find(|c| c.v6 == rule.v6 && c.net == rule.net && c.mask == rule.mask)
            {
                Some(existing) => *existing = rule,
                None => compiled.push(rule),
            }
        }
        // Most one bits first; among equals, a numerically larger mask (ntpd's order), so the
        // first match in the scan is the most specific one.
        compiled.sort_by(|a, b| {
            b.mask.count_ones().cmp(&a.mask.count_ones()).then(b.mask.cmp(&a.mask))
        });
        RestrictList { rules: compiled, default_flags }
    }

    /// The flags for a client. A linear scan: restrict lists are a handful of lines, and the
    /// scan allocates nothing and touches no shared state.
    pub(super) fn lookup(&self, key: &Key) -> RestrictFlags {
        self.rules.iter().find(|rule| rule.matches(key)).map_or(self.default_flags, |r| r.flags)
    }

    /// The flags of the most specific rule with a non-empty mask that matches, if any: a rule
    /// written for this client's network, as opposed to a default (`restrict default`, or the
    /// `/0` rules of `restrict -4 default` and `restrict -6 default`).
    pub(super) fn lookup_specific(&self, key: &Key) -> Option<RestrictFlags> {
        self.rules.iter().find(|rule| rule.mask != 0 && rule.matches(key)).map(|r| r.flags)
    }
}
