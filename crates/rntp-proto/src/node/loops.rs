//! Timing loops: this rntpd must never take time from itself, directly or through another
//! server that takes its time from us.
//!
//! Three checks, from cheapest to most general:
//! * **Own addresses.** The `interface listen` addresses are never mobilized: a `server` line
//!   naming one is refused, a pool answer listing one skips it (with a history entry).
//! * **Our own requests.** Every association's outstanding request carries a random 64-bit
//!   nonce in its transmit field. A request arriving at our server with one of those nonces is
//!   our own: the association that sent it polls this rntpd (a pool answer with one of this
//!   host's other addresses, a NAT hairpin, a wildcard listen address). It is stopped at once
//!   with reason `loop`, and the address is never used again.
//! * **Reference ids.** A server whose reference id is one of our addresses (or, for IPv6,
//!   their hash) is synchronized to us; selection never uses it (verdict "timing loop"), as
//!   RFC 5905 and chrony do. Two rntpd polling each other therefore never both claim to be
//!   synchronized to each other.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;

use crate::assoc::AssocId;
use crate::wire::ReferenceId;

/// Where a client request carries its transmit timestamp (our nonce).
const TRANSMIT_AT: core::ops::Range<usize> = 0x28..0x30;

/// What the node knows about its own identity on the network.
#[derive(Debug, Default)]
pub(super) struct Loops {
    /// Our server addresses (never polled).
    own: BTreeSet<SocketAddr>,
    /// Reference ids our clients would see for us: our addresses (IPv6 hashed).
    own_refids: HashSet<ReferenceId>,
    /// Outstanding request nonces, to their association.
    nonces: HashMap<u64, AssocId>,
    /// The outstanding nonce of each association.
    by_assoc: HashMap<AssocId, u64>,
}

impl Loops {
    /// Knows `listen` (unspecified addresses stand for every address; they are left to the
    /// nonce check).
    pub(super) fn new(listen: &[SocketAddr]) -> Self {
        let mut loops = Loops::default();
        for addr in listen.iter().filter(|a| !a.ip().is_unspecified()) {
            loops.learn(*addr);
        }
        loops
    }

    /// Adds an address of ours (from the configuration or a detected loop).
    pub(super) fn learn(&mut self, addr: SocketAddr) {
        self.own.insert(addr);
        self.own_refids.insert(ReferenceId::for_address(addr.ip()));
    }

    /// Our server addresses.
    pub(super) fn own(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.own.iter().copied()
    }

    /// `assoc` sent a request with this nonce (replacing its previous one).
    pub(super) fn sent(&mut self, assoc: AssocId, nonce: Option<u64>) {
        if let Some(old) = self.by_assoc.remove(&assoc) {
            self.nonces.remove(&old);
        }
        if let Some(n) = nonce {
            self.nonces.insert(n, assoc);
            self.by_assoc.insert(assoc, n);
        }
    }

    /// `assoc` is gone.
    pub(super) fn forget(&mut self, assoc: AssocId) {
        self.sent(assoc, None);
    }

    /// The association whose request this is, if the request arriving at our server is one
    /// of our own. O(1); nothing to do while no request is outstanding.
    pub(super) fn request_from_us(&self, request: &[u8]) -> Option<AssocId> {
        if self.nonces.is_empty() {
            return None;
        }
        let bytes: [u8; 8] = request.get(TRANSMIT_AT)?.try_into().ok()?;
        self.nonces.get(&u64::from_be_bytes(bytes)).copied()
    }

    /// Whether a server with this reference id and stratum takes its time from us.
    pub(super) fn synchronized_to_us(&self, reference_id: ReferenceId, stratum: u8) -> bool {
        // Stratum 0 and 1 carry a name (`GPS`, `LOCL`), not an address.
        stratum >= 2 && self.own_refids.contains(&reference_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_requests_are_recognised_by_nonce() {
        let mut l = Loops::new(&["127.0.0.1:123".parse().unwrap()]);
        let mut req = [0u8; 48];
        req[40..48].copy_from_slice(&0xDEAD_BEEF_u64.to_be_bytes());
        assert_eq!(l.request_from_us(&req), None);
        l.sent(AssocId(3), Some(0xDEAD_BEEF));
        assert_eq!(l.request_from_us(&req), Some(AssocId(3)));
        // A new request replaces the old nonce; a gone association is forgotten.
        l.sent(AssocId(3), Some(7));
        assert_eq!(l.request_from_us(&req), None);
        l.forget(AssocId(3));
        assert!(l.nonces.is_empty() && l.by_assoc.is_empty());
        // Short packets are not requests.
        assert_eq!(l.request_from_us(&req[..40]), None);
    }

    #[test]
    fn refids_of_our_addresses_are_loops_above_stratum_one() {
        let l = Loops::new(&["192.0.2.5:123".parse().unwrap(), "[::]:123".parse().unwrap()]);
        let ours = ReferenceId::for_address("192.0.2.5".parse().unwrap());
        assert!(l.synchronized_to_us(ours, 3));
        assert!(!l.synchronized_to_us(ours, 1));
        let other = ReferenceId::for_address("192.0.2.6".parse().unwrap());
        assert!(!l.synchronized_to_us(other, 3));
        assert_eq!(l.own().count(), 1, "the wildcard is left to the nonce check");
    }
}
