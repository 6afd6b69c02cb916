//! Source selection (RFC 5905 §11.2): which associations are truechimers, which survive
//! clustering, which one is the system peer, and the combined offset the discipline steers by.
//!
//! One round runs four stages over association snapshots ([`Candidate`]s):
//!
//! 1. **Fitness** (RFC 5905 `fit()`): drop candidates that cannot be used at all, with the
//!    reason ([`Unusable`]). The yardstick is the root distance λ ([`root_distance`]), the
//!    bound on how wrong a source can be, all the way to its primary reference.
//! 2. **Intersection** (Marzullo, §11.2.1): each candidate claims the true time lies in
//!    [θ − λ, θ + λ]. The smallest interval shared by a strict majority is taken as the truth;
//!    candidates whose interval misses it are falsetickers. Without a majority nobody is
//!    trusted.
//! 3. **Clustering** (§11.2.2): prune the truechimers whose offsets sit furthest from the rest
//!    while that still helps, down to `minclock`.
//! 4. **Mitigation and combining** (§11.2.3, `clock_update`): pick the system peer, average
//!    the survivors' offsets weighted by 1/λ and derive the system variables server mode
//!    reports (stratum, root delay/dispersion, reference id, leap).
//!
//! What this module deliberately does **not** do:
//!
//! * Keep state between rounds. Hysteresis needs the current system peer, which the caller
//!   passes in [`SelectConfig::current`]; everything else is recomputed from the snapshots, so a
//!   round is a pure function and can be replayed from logs.
//! * Discipline the clock, decide between slewing and stepping, or age the system root
//!   dispersion after the round (the server does that per reply).
//! * Orphan mode, reference clocks, the "true" flag, or leap-second voting among survivors:
//!   none exists in rntpd yet, and each would be a new field here rather than a special case.
//! * Read a clock: `now` is an argument, as everywhere in this crate.
//!
//! Robustness: candidates with NaN/infinite (or negative dispersion) numbers are rejected up
//! front as [`Unusable::Invalid`], and every ordering of floats uses `total_cmp`, so no input
//! (NaN, ±∞, ±`f64::MAX`, empty, all equal) can panic or yield a NaN output; absurd but finite
//! inputs may saturate the jitter or root dispersion to +∞. Where this module departs from
//! RFC 5905, and why, is listed in `docs/selection.md`; the short version is next to each
//! stage's code.

mod cluster;
mod combine;
mod fitness;
mod intersect;
#[cfg(test)]
mod tests;

pub use combine::RESELECT_RATIO;
pub use fitness::{root_distance, MINDISP};

/// [`root_distance`] with the age term growing at `phi` (see [`SelectConfig::phi`]): the λ
/// selection itself uses.
pub fn root_distance_at(now: Instant, c: &Candidate, phi: f64) -> f64 {
    fitness::root_distance_with(now, c, phi)
}

use crate::assoc::AssocId;
use crate::time::Instant;
use crate::wire::{LeapIndicator, ReferenceId};

/// One association as selection sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    /// Association.
    pub id: AssocId,
    /// Filter offset θ (s).
    pub offset: f64,
    /// Filter round-trip delay δ (s).
    pub delay: f64,
    /// Peer dispersion ε (s).
    pub dispersion: f64,
    /// Filter jitter ψ (s).
    pub jitter: f64,
    /// When the filter's best sample was taken.
    pub sample_time: Instant,
    /// Server stratum.
    pub stratum: u8,
    /// Server leap indicator.
    pub leap: LeapIndicator,
    /// Server root delay (s).
    pub root_delay: f64,
    /// Server root dispersion (s).
    pub root_dispersion: f64,
    /// Server reference id (for loop detection against our own refid).
    pub reference_id: ReferenceId,
    /// The reference id our own clients should see if this candidate becomes our system peer:
    /// its IPv4 address, or the first four bytes of the MD5 hash of its IPv6 address (RFC 5905
    /// §7.3). The caller fills it in, because selection never sees addresses.
    pub refid_for_us: ReferenceId,
    /// Reach register.
    pub reach: u8,
    /// `prefer` option.
    pub prefer: bool,
    /// `noselect` option.
    pub noselect: bool,
}

/// Selection settings (`tos`), plus the one piece of state hysteresis needs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SelectConfig {
    /// `tos minclock`: fewest survivors clustering keeps. Values below 1 act as 1.
    pub minclock: usize,
    /// `tos minsane`: fewest truechimers needed to set the clock. Values below 1 act as 1.
    pub minsane: usize,
    /// Maximum root distance (s) of a usable source (`tos maxdist`, default 1.5). A NaN here
    /// rejects every candidate rather than accepting every one.
    pub maxdist: f64,
    /// Our own reference id, to reject sources synchronized to us (loops).
    pub own_refid: Option<ReferenceId>,
    /// The system peer chosen by the previous round, if any. Selection stays with it while it
    /// survives, has the same stratum as the best survivor and is not worse than the best by
    /// more than its own jitter; this avoids hopping between equally good sources on noise.
    /// `None` (the default) disables the rule.
    pub current: Option<AssocId>,
    /// How fast (s/s) an estimate's error bound grows with its age, in the root distance:
    /// RFC 5905's PHI (15 ppm, the tolerance of an unknown clock) by default. A caller that
    /// knows its clock's frequency better passes a smaller rate (see `steer`): with RFC's
    /// 15 ppm, a source polled every 1024 s looks tens of milliseconds vague between polls,
    /// and a freshly mobilized falseticker with one precise sample outweighs every
    /// established source.
    pub phi: f64,
}

impl Default for SelectConfig {
    fn default() -> Self {
        SelectConfig {
            minclock: 3,
            minsane: 1,
            maxdist: 1.5,
            own_refid: None,
            current: None,
            phi: crate::assoc::filter::PHI,
        }
    }
}

/// Why a candidate was not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Unusable {
    /// `noselect`.
    Noselect,
    /// No valid reply among the last 8 polls.
    Unreachable,
    /// Leap 3, stratum 0 (unspecified, e.g. a kiss) or stratum ≥ 16.
    Unsynchronized,
    /// Root distance above `maxdist` (or not a finite number).
    Distance,
    /// The server is synchronized to us.
    Loop,
    /// `tos orphan N` and the server's stratum is N or higher: orphans do not take time from
    /// each other (ntpd's rule), only from a source better than the orphan stratum.
    OrphanStratum,
    /// The snapshot's numbers are corrupt: an offset, delay, dispersion, jitter, root delay or
    /// root dispersion that is NaN or infinite, or a dispersion, jitter or root dispersion that
    /// is negative. Such a snapshot is a bug upstream; it is reported rather than guessed at.
    Invalid,
}

/// The verdict for one candidate (ntpq's tally codes in brackets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The system peer (`*`).
    SystemPeer,
    /// Survivor, used in the combined offset (`+`).
    Survivor,
    /// Truechimer discarded by clustering (`-`).
    Outlier,
    /// Outside the intersection (`x`). When the fit candidates have no majority clique at all,
    /// every one of them gets this verdict: no candidate can be told apart from the others.
    Falseticker,
    /// Not considered (` `), and why.
    Unusable(Unusable),
}

/// The outcome of one selection round.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    /// A verdict for every candidate, in input order.
    pub verdicts: Vec<(AssocId, Verdict)>,
    /// The system peer, if enough sources agree (at least `minsane` truechimers).
    pub system_peer: Option<AssocId>,
    /// Combined estimate of the survivors, when there is a system peer.
    pub combined: Option<Combined>,
}

/// The survivors' combined estimate and the system variables server mode reports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Combined {
    /// Weighted offset (s): the 1/λ-weighted mean of the survivors' offsets, or the system
    /// peer's own offset when it is a `prefer` peer. Always within the survivors' offsets.
    pub offset: f64,
    /// System jitter (s): the RMS of the peer jitter and the survivors' 1/λ-weighted offset
    /// spread around the system peer.
    pub jitter: f64,
    /// Stratum of the system peer + 1 (at most 16).
    pub stratum: u8,
    /// Root delay through the system peer (s): its root delay plus its delay, at least 0.
    pub root_delay: f64,
    /// Root dispersion through the system peer (s), as of `now`: its root dispersion plus
    /// max([`MINDISP`], its dispersion aged to `now` plus |offset|) plus the system jitter.
    pub root_dispersion: f64,
    /// Reference id to report: the system peer's [`Candidate::refid_for_us`].
    pub reference_id: ReferenceId,
    /// Leap indicator of the system peer.
    pub leap: LeapIndicator,
}

/// A fit candidate with what later stages need, so root distance is computed once per round.
#[derive(Debug, Clone, Copy)]
struct Fit {
    /// Index into the caller's slice.
    index: usize,
    /// Root distance λ at `now` (finite, ≥ [`MINDISP`]).
    lambda: f64,
}

/// Runs one selection round.
///
/// Every candidate gets exactly one verdict, in input order. Duplicate ids are allowed (each
/// entry is judged on its own); `system_peer` then names the id of the chosen entry.
pub fn select(now: Instant, candidates: &[Candidate], config: &SelectConfig) -> Selection {
    let mut verdicts: Vec<(AssocId, Verdict)> =
        candidates.iter().map(|c| (c.id, Verdict::Falseticker)).collect();

    // Stage 1: fitness.
    let mut fit = Vec::with_capacity(candidates.len());
    for (index, c) in candidates.iter().enumerate() {
        match fitness::check(now, c, config) {
            Ok(lambda) => fit.push(Fit { index, lambda }),
            Err(why) => verdicts[index].1 = Verdict::Unusable(why),
        }
    }

    // Stage 2: intersection. Without a majority clique every fit candidate stays Falseticker.
    let intervals: Vec<(f64, f64)> =
        fit.iter().map(|f| (candidates[f.index].offset, f.lambda)).collect();
    let Some((low, high)) = intersect::intersection(&intervals) else {
        return Selection { verdicts, system_peer: None, combined: None };
    };
    let truechimers: Vec<Fit> = fit
        .into_iter()
        .filter(|f| intersect::overlaps(candidates[f.index].offset, f.lambda, low, high))
        .collect();
    let truechimer_count = truechimers.len();

    // Stage 3: clustering.
    let (survivors, outliers) = cluster::cluster(candidates, truechimers, config.minclock.max(1));
    for f in &outliers {
        verdicts[f.index].1 = Verdict::Outlier;
    }
    for f in &survivors {
        verdicts[f.index].1 = Verdict::Survivor;
    }

    // minsane counts truechimers, as the `Selection` docs promise: sources pruned by
    // clustering still agreed with the majority, so they still vouch for the time.
    if truechimer_count < config.minsane.max(1) {
        return Selection { verdicts, system_peer: None, combined: None };
    }

    // Stage 4: system peer and combining.
    let Some(peer) = combine::choose_peer(candidates, &survivors, config.current) else {
        return Selection { verdicts, system_peer: None, combined: None };
    };
    verdicts[peer.index].1 = Verdict::SystemPeer;
    let combined = combine::combine(now, candidates, &survivors, peer);
    Selection { verdicts, system_peer: Some(candidates[peer.index].id), combined: Some(combined) }
}
