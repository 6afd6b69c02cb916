//! Fitness (RFC 5905 `fit()`) and root distance (`root_dist()`).
//!
//! Decides, per candidate and without looking at the others, whether it may take part in
//! selection at all. It does not judge whether the candidate agrees with anyone: that is the
//! intersection's job.

use core::cmp::Ordering;

use super::{Candidate, SelectConfig, Unusable};
use crate::assoc::filter::PHI;
use crate::time::Instant;
use crate::wire::LeapIndicator;

/// Floor (s) of the delay term of the root distance and of the dispersion term of the system
/// root dispersion.
///
/// RFC 5905 uses 10 ms; NTPsec's `tos mindist` default is 1 ms, and so is ours: on a LAN with
/// good servers a 10 ms floor makes every correctness interval ±10 ms wide, so the intersection
/// cannot reject a source that is a few milliseconds off, and every source weighs the same in
/// the combined offset. 1 ms still keeps intervals from collapsing to a point when a server
/// reports zero root delay and dispersion.
pub const MINDISP: f64 = 0.001;

/// The root distance λ of `c` at `now` (s): half the round trip to the primary reference plus
/// every dispersion on the way, i.e. the bound on how far off the candidate's offset can be.
///
/// λ = max([`MINDISP`], (root delay + delay) / 2) + root dispersion + dispersion
///     + PHI · (now − sample time) + jitter.
///
/// (RFC 5905 floors the round trip before halving, `max(MINDISP, Δ + δ) / 2`; we floor the half
/// so the floor means what its name says.) A sample time after `now` counts as age 0. The result
/// is not NaN for finite inputs but may be infinite for absurd ones; [`super::select`] rejects
/// such a candidate with [`Unusable::Distance`].
pub fn root_distance(now: Instant, c: &Candidate) -> f64 {
    root_distance_with(now, c, PHI)
}

/// [`root_distance`] with the age term growing at `phi` instead of PHI
/// ([`SelectConfig::phi`]); a NaN or negative `phi` counts as PHI.
pub(super) fn root_distance_with(now: Instant, c: &Candidate, phi: f64) -> f64 {
    let phi = if phi.is_finite() && phi >= 0.0 { phi } else { PHI };
    let age = now.secs_since(c.sample_time).max(0.0);
    ((c.root_delay + c.delay) / 2.0).max(MINDISP)
        + c.root_dispersion
        + c.dispersion
        + phi * age
        + c.jitter
}

/// `Ok(λ)` when `c` may take part in selection, else why not.
///
/// Checks run in a fixed order so the reported reason is stable: the operator's `noselect`
/// first, then corrupt numbers (nothing else can be computed), reachability, the server's own
/// synchronization state, loops, and last the distance, which depends on all of the above.
pub(super) fn check(now: Instant, c: &Candidate, config: &SelectConfig) -> Result<f64, Unusable> {
    if c.noselect {
        return Err(Unusable::Noselect);
    }
    if !numbers_valid(c) {
        return Err(Unusable::Invalid);
    }
    if c.reach == 0 {
        return Err(Unusable::Unreachable);
    }
    if c.leap == LeapIndicator::Unsynchronized || c.stratum == 0 || c.stratum >= 16 {
        return Err(Unusable::Unsynchronized);
    }
    // Only stratum ≥ 2 refids are addresses (or address hashes); a stratum-1 refid is a clock
    // name such as "GPS\0", which could spell the same four bytes as our address by accident.
    // ntpd's `peer_unfit` makes the same distinction.
    if c.stratum > 1 && config.own_refid == Some(c.reference_id) {
        return Err(Unusable::Loop);
    }
    let lambda = root_distance_with(now, c, config.phi);
    // "Within" must be proven: a NaN `maxdist` compares as unordered and so rejects, instead of
    // admitting everything as a plain `lambda > maxdist` test would.
    let within =
        matches!(lambda.partial_cmp(&config.maxdist), Some(Ordering::Less | Ordering::Equal));
    if !lambda.is_finite() || !within {
        return Err(Unusable::Distance);
    }
    Ok(lambda)
}

/// Whether the snapshot's numbers can be computed with. Delays may be slightly negative (a
/// server whose clock steps between our timestamps can produce one); dispersions and jitter,
/// being sums of magnitudes, cannot.
fn numbers_valid(c: &Candidate) -> bool {
    let finite = [c.offset, c.delay, c.dispersion, c.jitter, c.root_delay, c.root_dispersion]
        .iter()
        .all(|x| x.is_finite());
    let non_negative = [c.dispersion, c.jitter, c.root_dispersion].iter().all(|x| *x >= 0.0);
    finite && non_negative
}
