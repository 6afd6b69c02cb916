//! The per-association clock filter (RFC 5905 §10).
//!
//! An 8-stage shift register of (offset, delay, dispersion, time) samples. The sample with the
//! lowest delay is the best estimate of the offset, because queueing delay only ever adds to the
//! round trip and is the main source of error. Each stage's dispersion grows at [`PHI`] per second
//! as it ages, so stale samples count for less.
//!
//! What this module does not do: decide whether a sample may drive the clock (the selection and
//! discipline stages do that) or validate packets (the association does that first).

use crate::time::Instant;

/// Number of filter stages.
pub const NSTAGE: usize = 8;
/// Frequency tolerance assumed for any clock: dispersion grows by 15 µs per second (RFC 5905).
pub const PHI: f64 = 15e-6;
/// Maximum dispersion (s); a stage at or above it is treated as empty.
pub const MAXDISP: f64 = 16.0;

/// One measurement from one exchange with the server.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Clock offset θ in seconds: positive when the server is ahead of us.
    pub offset: f64,
    /// Round-trip delay δ in seconds.
    pub delay: f64,
    /// Dispersion ε in seconds at the time of the measurement.
    pub dispersion: f64,
    /// When the sample was taken.
    pub time: Instant,
}

/// The filter's current estimate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FilterEstimate {
    /// Offset of the lowest-delay sample (s).
    pub offset: f64,
    /// Delay of that sample (s).
    pub delay: f64,
    /// Peer dispersion: the stages' dispersions weighted 1/2, 1/4, … (s).
    pub dispersion: f64,
    /// RMS of the other samples' offsets against the best one (s); at least the precision.
    pub jitter: f64,
    /// When the best sample was taken.
    pub time: Instant,
}

/// The 8-stage clock filter.
#[derive(Debug, Clone)]
pub struct ClockFilter {
    /// Newest first.
    stages: [Option<Sample>; NSTAGE],
    /// When dispersions were last aged.
    aged_at: Option<Instant>,
}

impl Default for ClockFilter {
    fn default() -> Self {
        Self::new()
    }
}

impl ClockFilter {
    /// An empty filter.
    pub fn new() -> Self {
        ClockFilter { stages: [None; NSTAGE], aged_at: None }
    }

    /// Empties the filter, e.g. when the association moves to another address.
    pub fn reset(&mut self) {
        *self = ClockFilter::new();
    }

    /// Whether no sample has been added since the last reset.
    pub fn is_empty(&self) -> bool {
        self.stages[0].is_none()
    }

    /// Shifts in a new sample taken at `sample.time`.
    pub fn add(&mut self, sample: Sample) {
        self.age(sample.time);
        self.stages.rotate_right(1);
        self.stages[0] = Some(sample);
    }

    /// Shifts in an empty stage: a poll went unanswered. RFC 5905 does this only indirectly
    /// (through `clock_filter` with MAXDISP); an explicit gap keeps old samples from looking
    /// fresh after an outage.
    pub fn add_gap(&mut self, now: Instant) {
        self.age(now);
        self.stages.rotate_right(1);
        self.stages[0] = None;
    }

    /// Grows each stage's dispersion by PHI per second elapsed since the last aging.
    fn age(&mut self, now: Instant) {
        if let Some(then) = self.aged_at {
            let dt = now.secs_since(then).max(0.0);
            for s in self.stages.iter_mut().flatten() {
                s.dispersion = (s.dispersion + PHI * dt).min(MAXDISP);
            }
        }
        self.aged_at = Some(now);
    }

    /// The current estimate as of `now`, or `None` when the filter holds no usable sample.
    ///
    /// `precision` (s) is the floor for the jitter (RFC 5905 uses the system precision).
    pub fn estimate(&self, now: Instant, precision: f64) -> Option<FilterEstimate> {
        let aging = |s: &Sample| {
            let dt = self.aged_at.map_or(0.0, |t| now.secs_since(t).max(0.0));
            (s.dispersion + PHI * dt).min(MAXDISP)
        };
        // Order stage indices by delay, unusable (maxed-out dispersion) stages last; RFC 5905
        // §10 sorts the whole register the same way.
        let mut order: Vec<(usize, Sample)> = self
            .stages
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.map(|s| (i, s)))
            .filter(|(_, s)| aging(s) < MAXDISP)
            .collect();
        if order.is_empty() {
            return None;
        }
        order.sort_by(|a, b| a.1.delay.total_cmp(&b.1.delay));

        // Peer dispersion over all 8 stages in delay order, with empty stages at MAXDISP.
        let mut dispersion = 0.0;
        for k in 0..NSTAGE {
            let d = order.get(k).map_or(MAXDISP, |(_, s)| aging(s));
            dispersion += d / f64::from(2u32 << k);
        }

        let best = order[0].1;
        let n = order.len();
        let jitter = if n > 1 {
            let sum: f64 = order[1..].iter().map(|(_, s)| (s.offset - best.offset).powi(2)).sum();
            (sum / (n - 1) as f64).sqrt()
        } else {
            0.0
        };
        Some(FilterEstimate {
            offset: best.offset,
            delay: best.delay,
            dispersion,
            jitter: jitter.max(precision),
            time: best.time,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> Instant {
        Instant::from_nanos(secs * 1_000_000_000)
    }

    fn sample(t: u64, offset: f64, delay: f64) -> Sample {
        Sample { offset, delay, dispersion: 1e-6, time: at(t) }
    }

    #[test]
    fn picks_lowest_delay_sample() {
        let mut f = ClockFilter::new();
        f.add(sample(0, 0.010, 0.050));
        f.add(sample(16, 0.001, 0.002));
        f.add(sample(32, 0.020, 0.090));
        let e = f.estimate(at(32), 1e-7).unwrap();
        assert_eq!(e.offset, 0.001);
        assert_eq!(e.delay, 0.002);
        assert_eq!(e.time, at(16));
        // jitter: RMS of (0.009, 0.019) against the best.
        let expect = ((0.009f64.powi(2) + 0.019f64.powi(2)) / 2.0).sqrt();
        assert!((e.jitter - expect).abs() < 1e-12);
    }

    #[test]
    fn dispersion_ages_and_empty_stages_count_as_maxdisp() {
        let mut f = ClockFilter::new();
        f.add(sample(0, 0.0, 0.001));
        let e0 = f.estimate(at(0), 1e-7).unwrap();
        // One sample: 1e-6/2 + 7 empty stages at MAXDISP weighted 1/4..1/256.
        let expect = 1e-6 / 2.0 + MAXDISP * (0.5 - 1.0 / 256.0);
        assert!((e0.dispersion - expect).abs() < 1e-9, "{}", e0.dispersion);
        let e1 = f.estimate(at(1000), 1e-7).unwrap();
        assert!((e1.dispersion - e0.dispersion - PHI * 1000.0 / 2.0).abs() < 1e-9);
    }

    #[test]
    fn gaps_push_samples_out() {
        let mut f = ClockFilter::new();
        f.add(sample(0, 0.5, 0.001));
        for i in 1..=NSTAGE as u64 {
            f.add_gap(at(i));
        }
        assert!(f.estimate(at(9), 1e-7).is_none());
        assert!(!f.is_empty() || f.stages.iter().all(Option::is_none));
    }

    #[test]
    fn reset_empties() {
        let mut f = ClockFilter::new();
        f.add(sample(0, 0.5, 0.001));
        f.reset();
        assert!(f.is_empty());
        assert!(f.estimate(at(1), 1e-7).is_none());
    }
}
