//! Choosing the system peer and combining the survivors (RFC 5905 §11.2.3, `clock_combine()`
//! and the system-variable part of `clock_update()`).
//!
//! **System peer.** Survivors are ranked by (stratum, λ), the RFC's `MAXDIST · stratum + λ`
//! merit without the assumption that λ < MAXDIST. Two rules override the ranking:
//!
//! * `prefer`: the best-ranked `prefer` survivor is the system peer, and its own offset and
//!   jitter are used instead of the combination (ntpd's documented prefer semantics; the
//!   operator asked for that source, and clustering has already shown it to be consistent).
//! * Hysteresis: the previous system peer ([`super::SelectConfig::current`]) is kept while it
//!   survives, has the best survivor's stratum, and its λ is no more than the reselect margin
//!   above the best λ: the largest of [`RESELECT_RATIO`] × its own λ, its jitter and
//!   [`MINDISP`]. Between equally good servers λ moves from round to round with their filters'
//!   minimum delays and jitter, so smaller differences are noise, and every hop changes which
//!   source's variables clients are told. RFC 5905 keeps the old peer whenever its stratum
//!   ties, however much worse it is; the margin keeps that benefit without ever sticking with a
//!   clearly worse source (one whose root distance is a third larger than the best's, or that
//!   left the survivors, is replaced at once). Measured with three equal servers over a day
//!   (`rntp-sim bench`, docs/accuracy.md).
//!
//! **Combining.** Θ = Σ(θᵢ/λᵢ) / Σ(1/λᵢ) over the survivors. The system jitter is
//! √(ψ_p² + φ²) where ψ_p is the system peer's jitter and φ² = Σ((θᵢ − θ_p)²/λᵢ) / Σ(1/λᵢ) is
//! the survivors' weighted spread around the peer (RFC 5905 §11.2.3).
//!
//! **System variables.** As `clock_update()`: stratum + 1, root delay Δ_p + δ_p, reference id
//! and leap from the peer. Root dispersion is E_p + max(MINDISP, ε_p + PHI·age + |Θ|) + ϑ,
//! i.e. the RFC's formula with the *combined* offset Θ in place of the peer's θ_p, because Θ is
//! what the discipline steers out, so |Θ| is the error our clock may still carry.
//!
//! What it does not do: decide whether enough sources agree (`minsane`, checked by the caller)
//! or touch the clock.

use core::cmp::Ordering;

use super::{fitness::MINDISP, AssocId, Candidate, Combined, Fit};
use crate::assoc::filter::PHI;
use crate::time::Instant;

/// The system peer is replaced by a survivor of its stratum only when the survivor's root
/// distance is smaller by more than this fraction of the system peer's (and by more than the
/// system peer's jitter and [`MINDISP`]).
pub const RESELECT_RATIO: f64 = 0.25;

/// The system peer among `survivors` (see the module docs), or `None` if there are none.
pub(super) fn choose_peer(
    candidates: &[Candidate],
    survivors: &[Fit],
    current: Option<AssocId>,
) -> Option<Fit> {
    let rank = |a: &&Fit, b: &&Fit| -> Ordering {
        let (ca, cb) = (&candidates[a.index], &candidates[b.index]);
        ca.stratum.cmp(&cb.stratum).then(a.lambda.total_cmp(&b.lambda))
    };
    // `min_by` keeps the first of equals, so ties go to input order.
    if let Some(p) = survivors.iter().filter(|f| candidates[f.index].prefer).min_by(rank) {
        return Some(*p);
    }
    let best = *survivors.iter().min_by(rank)?;
    let incumbent =
        current.and_then(|id| survivors.iter().find(|f| candidates[f.index].id == id)).copied();
    if let Some(cur) = incumbent {
        let (c, b) = (&candidates[cur.index], &candidates[best.index]);
        let margin = (RESELECT_RATIO * cur.lambda).max(c.jitter).max(MINDISP);
        if c.stratum == b.stratum && cur.lambda - best.lambda <= margin {
            return Some(cur);
        }
    }
    Some(best)
}

/// The combined estimate through `peer` (one of `survivors`).
pub(super) fn combine(
    now: Instant,
    candidates: &[Candidate],
    survivors: &[Fit],
    peer: Fit,
) -> Combined {
    let p = &candidates[peer.index];
    let (offset, jitter) = if p.prefer {
        (p.offset, p.jitter)
    } else {
        let (offset, spread) = weighted(candidates, survivors, p.offset);
        (offset, p.jitter.hypot(spread))
    };
    let age = now.secs_since(p.sample_time).max(0.0);
    let root_dispersion =
        p.root_dispersion + (p.dispersion + PHI * age + offset.abs()).max(MINDISP) + jitter;
    Combined {
        offset,
        jitter,
        stratum: p.stratum.saturating_add(1).min(16),
        // The wire field is unsigned; a slightly negative filter delay must not make it so.
        root_delay: (p.root_delay + p.delay).max(0.0),
        root_dispersion,
        reference_id: p.refid_for_us,
        leap: p.leap,
    }
}

/// (Θ, φ): the 1/λ-weighted mean of the survivors' offsets, and their weighted RMS spread
/// around `peer_offset`.
///
/// Weights are normalized before multiplying (wᵢ = (1/λᵢ) / Σ 1/λ ≤ 1), so each term is no
/// larger than its offset and the sum cannot overflow to NaN, whatever the offsets; the result
/// is clamped to the survivors' range because rounding may otherwise leave it one ulp outside.
fn weighted(candidates: &[Candidate], survivors: &[Fit], peer_offset: f64) -> (f64, f64) {
    // λ is finite and ≥ MINDISP for every fit candidate, so each 1/λ is positive and finite.
    let total: f64 = survivors.iter().map(|f| 1.0 / f.lambda).sum();
    let mut offset = 0.0;
    let mut spread = 0.0;
    let mut min = f64::INFINITY;
    let mut max = f64::NEG_INFINITY;
    for f in survivors {
        let theta = candidates[f.index].offset;
        let w = (1.0 / f.lambda) / total;
        offset += w * theta;
        // A zero weight (λ so large that 1/λ underflows) must not meet an infinite square.
        if w > 0.0 {
            spread += w * (theta - peer_offset).powi(2);
        }
        min = min.min(theta);
        max = max.max(theta);
    }
    if survivors.is_empty() {
        return (peer_offset, 0.0);
    }
    // max/min rather than `clamp`, which asserts min ≤ max: no panic path, even in theory.
    (offset.max(min).min(max), spread.sqrt())
}
