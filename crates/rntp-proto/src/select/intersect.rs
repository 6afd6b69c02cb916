//! The intersection algorithm (Marzullo's, as modified in RFC 5905 §11.2.1 `clock_select()`).
//!
//! Each fit candidate asserts that the true offset lies in its correctness interval
//! [θ − λ, θ + λ]. We look for the smallest interval [low, high] that lies within the intervals
//! of `n − f` candidates, for the fewest falsetickers `f` with `2f < n`, and that also contains
//! the midpoints θ of all but at most `f` candidates. The midpoint condition is what RFC 5905
//! adds to Marzullo: a candidate whose huge interval happens to cover the clique, but whose
//! offset lies outside it, still counts against the clique.
//!
//! What it does not do: decide who is a falseticker beyond "interval misses [low, high]"
//! ([`overlaps`]), or weigh candidates by anything but their intervals.

use core::cmp::Ordering;

/// Kind of an endpoint in the sweep. The declaration order is the tie-break when endpoints
/// coincide: lower edges before midpoints before upper edges, so intervals are closed (two
/// intervals that just touch do intersect) in both sweep directions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Lower,
    Mid,
    Upper,
}

/// `Some((low, high))` for the majority intersection of the intervals `(θ, λ)`, or `None` when
/// no strict majority of them shares a common region (including when there are none).
///
/// Inputs must be finite with λ ≥ 0 (fitness guarantees it); even so, ordering uses
/// `total_cmp`, so nothing here can panic.
pub(super) fn intersection(intervals: &[(f64, f64)]) -> Option<(f64, f64)> {
    let n = intervals.len();
    let mut edges: Vec<(f64, Kind)> = Vec::with_capacity(3 * n);
    for &(theta, lambda) in intervals {
        edges.push((theta - lambda, Kind::Lower));
        edges.push((theta, Kind::Mid));
        edges.push((theta + lambda, Kind::Upper));
    }
    edges.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));

    // Try 0 falsetickers, then 1, … while the rest would still be a strict majority.
    let mut allow = 0;
    while 2 * allow < n {
        let need = n - allow;
        let (low, mids_below) = sweep(edges.iter().copied(), need, Kind::Lower);
        let (high, mids_above) = sweep(edges.iter().rev().copied(), need, Kind::Upper);
        // Accept only when at most `allow` midpoints fall outside the interval (the RFC 5905
        // condition), and the two sweeps met. Touching (low == high) is accepted: the RFC's
        // strict `high > low` only matters when λ can be 0, and rejecting a single shared point
        // would turn rounding at large offsets into "no majority".
        if mids_below + mids_above <= allow {
            if let (Some(low), Some(high)) = (low, high) {
                if high.total_cmp(&low) != Ordering::Less {
                    return Some((low, high));
                }
            }
        }
        allow += 1;
    }
    None
}

/// One sweep of the RFC's loop: walks `edges` in order, counting intervals entered (`enter`
/// edges) and left (the other end), until `need` intervals are open at once. Returns that edge
/// (`None` if never reached) and how many midpoints were passed before it, i.e. lie outside.
fn sweep(
    edges: impl Iterator<Item = (f64, Kind)>,
    need: usize,
    enter: Kind,
) -> (Option<f64>, usize) {
    let mut open = 0usize;
    let mut mids = 0usize;
    for (edge, kind) in edges {
        match kind {
            Kind::Mid => mids += 1,
            k if k == enter => open += 1,
            _ => open = open.saturating_sub(1),
        }
        if open >= need {
            return (Some(edge), mids);
        }
    }
    (None, mids)
}

/// Whether the interval [θ − λ, θ + λ] meets [low, high] (closed intervals).
pub(super) fn overlaps(theta: f64, lambda: f64, low: f64, high: f64) -> bool {
    theta + lambda >= low && theta - lambda <= high
}
