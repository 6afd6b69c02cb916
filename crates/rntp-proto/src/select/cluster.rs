//! The cluster algorithm (RFC 5905 §11.2.2).
//!
//! Truechimers all agree within their error bounds, but some agree less well than others.
//! Each round computes every candidate's *selection jitter* φ_S — the RMS of the differences
//! between its offset and every other candidate's — and prunes the worst one, until pruning
//! no longer helps or too few would remain.
//!
//! Two refinements over the RFC text, both from ntpd 4.2.8 and NTPsec, where they have been the
//! default for over a decade:
//!
//! * The victim is the candidate with the largest φ_S · λ rather than the largest φ_S. Among
//!   candidates that are similarly far from the crowd, the one with the larger root distance
//!   is the less trustworthy and carries less weight in the combined offset anyway, so losing it
//!   costs least.
//! * A `prefer` candidate is never pruned: pruning stops instead. `prefer` is the operator
//!   saying "this one, if it is a truechimer", and the intersection has already said it is.
//!
//! The stopping rule is the RFC's: stop when at most `minclock` remain, or when the victim's
//! φ_S does not exceed the smallest peer jitter among the candidates. In the latter case the
//! spread between sources is no larger than the noise within the best source, so pruning would
//! only discard information.
//!
//! What it does not do: choose the system peer or combine offsets.

use super::{Candidate, Fit};

/// Splits `truechimers` into `(survivors, outliers)`, keeping at least `minclock` (≥ 1)
/// survivors. Both lists keep the input order.
pub(super) fn cluster(
    candidates: &[Candidate],
    mut truechimers: Vec<Fit>,
    minclock: usize,
) -> (Vec<Fit>, Vec<Fit>) {
    let minclock = minclock.max(1);
    let mut outliers = Vec::new();
    while truechimers.len() > minclock {
        let Some((victim, seljit)) = worst(candidates, &truechimers) else {
            break;
        };
        let min_peer_jitter =
            truechimers.iter().map(|f| candidates[f.index].jitter).fold(f64::INFINITY, f64::min);
        if candidates[truechimers[victim].index].prefer || seljit <= min_peer_jitter {
            break;
        }
        outliers.push(truechimers.remove(victim));
    }
    outliers.sort_by_key(|f| f.index);
    (truechimers, outliers)
}

/// The position in `set` of the candidate with the largest φ_S · λ, with its φ_S. Ties go to
/// the earliest, so results do not depend on anything but input order. `None` for fewer than
/// two candidates (φ_S is undefined for one).
fn worst(candidates: &[Candidate], set: &[Fit]) -> Option<(usize, f64)> {
    if set.len() < 2 {
        return None;
    }
    let others = (set.len() - 1) as f64;
    let mut best: Option<(usize, f64, f64)> = None;
    for (i, f) in set.iter().enumerate() {
        let theta = candidates[f.index].offset;
        // Squares of finite differences may overflow to +∞ for absurd offsets; sums of
        // non-negative terms cannot become NaN, and ∞ · λ (λ > 0) is ∞, so the metric orders.
        let sum: f64 = set.iter().map(|g| (candidates[g.index].offset - theta).powi(2)).sum();
        let seljit = (sum / others).sqrt();
        let metric = seljit * f.lambda;
        if best.is_none_or(|(_, m, _)| metric.total_cmp(&m).is_gt()) {
            best = Some((i, metric, seljit));
        }
    }
    best.map(|(i, _, seljit)| (i, seljit))
}
