//! Sketches of OpenTelemetry histogram points, so that a histogram's percentiles merge with
//! those of the samples of the same series.
//!
//! - **Exponential** buckets (`(base^i, base^(i+1)]`, `base = 2^(2^-scale)`) put their count at
//!   the value closest in relative terms to every value of the bucket, `2·lo·hi / (lo + hi)`:
//!   a percentile is then within the histogram's own bucket accuracy, `(base − 1)/(base + 1)`
//!   (4.3% at scale 3, 0.5% at scale 7), plus the sketch's.
//! - **Explicit** buckets are read as Prometheus' `histogram_quantile` reads them: the values of
//!   a bucket spread evenly between its bounds (linear interpolation), the first bucket starting
//!   at the point's `min` (else at 0 when its bound is positive), the last ending at its `max`
//!   (else at the last bound). A count is spread over at most [`SPREAD_POINTS`] evenly spaced
//!   values of the bucket.
//!
//! Count and, when the point has them, sum, min and max are exact.

use crate::DDSketch;

/// Values an explicit bucket's count is spread over, at most.
pub const SPREAD_POINTS: u64 = 128;

/// An exponential histogram point's buckets (OpenTelemetry's layout).
#[derive(Debug, Clone, Copy)]
pub struct ExponentialBuckets<'a> {
    /// `base = 2^(2^-scale)`.
    pub scale: i32,
    /// Values counted as zero.
    pub zero_count: u64,
    /// Index of `positive[0]`.
    pub positive_offset: i32,
    /// Counts of positive buckets.
    pub positive: &'a [u64],
    /// Index of `negative[0]` (of magnitudes).
    pub negative_offset: i32,
    /// Counts of negative buckets.
    pub negative: &'a [u64],
}

/// What a point knows exactly of its values besides their buckets.
#[derive(Debug, Clone, Copy, Default)]
pub struct PointSummary {
    /// Their sum.
    pub sum: Option<f64>,
    /// Their minimum.
    pub min: Option<f64>,
    /// Their maximum.
    pub max: Option<f64>,
}

impl PointSummary {
    /// The summary without the figures that are not finite numbers (the decoders refuse such
    /// points; a sketch never relies on it).
    fn finite(self) -> Self {
        let keep = |v: Option<f64>| v.filter(|x| x.is_finite());
        Self {
            sum: keep(self.sum),
            min: keep(self.min),
            max: keep(self.max),
        }
    }
}

impl ExponentialBuckets<'_> {
    /// Bounds `(lo, hi]` of magnitudes of bucket `index`.
    pub fn bounds(&self, index: i32) -> (f64, f64) {
        let step = (-f64::from(self.scale)).exp2();
        let lo = (f64::from(index) * step).exp2();
        let hi = ((f64::from(index) + 1.0) * step).exp2();
        (lo, hi)
    }

    /// The value a bucket's count stands at: the one within the least relative error of every
    /// value of the bucket.
    pub fn representative(&self, index: i32) -> f64 {
        let (lo, hi) = self.bounds(index);
        // The harmonic mean of the bounds, 2·lo·hi / (lo + hi), in a form that neither
        // overflows nor turns NaN for bounds near f64::MAX (found by the fuzzer: a bucket whose
        // value was NaN was dropped, and the sketch counted fewer values than the point).
        let v = if hi.is_finite() {
            2.0 / (1.0 / lo + 1.0 / hi)
        } else {
            lo
        };
        if v.is_nan() {
            f64::MAX
        } else {
            v.min(f64::MAX)
        }
    }
}

impl DDSketch {
    /// Adds `n` copies of `v`.
    pub(crate) fn add_n(&mut self, v: f64, n: u64) {
        if n == 0 || !v.is_finite() {
            return;
        }
        if v > crate::MIN_INDEXABLE {
            let k = self.key(v);
            self.pos.add(k, n);
        } else if v < -crate::MIN_INDEXABLE {
            let k = self.key(-v);
            self.neg.add(k, n);
        } else {
            self.zero = self.zero.saturating_add(n);
        }
        self.count = self.count.saturating_add(n);
        self.sum += v * n as f64;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }

    /// The point's exact sum, min and max over the estimates of the buckets. A point whose
    /// extremes contradict each other or its buckets (refused by the decoders, but a sketch
    /// never relies on that) keeps `min <= max`: the exact minimum wins.
    fn set_summary(&mut self, s: PointSummary) {
        if self.count == 0 {
            return;
        }
        if let Some(sum) = s.sum.filter(|v| v.is_finite()) {
            self.sum = sum;
        }
        if let Some(min) = s.min.filter(|v| v.is_finite()) {
            self.min = min;
        }
        if let Some(max) = s.max.filter(|v| v.is_finite()) {
            self.max = max;
        }
        if self.min > self.max {
            self.max = self.min;
        }
    }

    /// The sketch (accuracy `alpha`) of an exponential histogram point.
    pub fn from_exponential(alpha: f64, b: &ExponentialBuckets<'_>, s: PointSummary) -> Self {
        let s = s.finite();
        let mut sketch = Self::new(alpha);
        sketch.add_n(0.0, b.zero_count);
        for (sign, offset, counts) in [
            (1.0, b.positive_offset, b.positive),
            (-1.0, b.negative_offset, b.negative),
        ] {
            for (i, &n) in counts.iter().enumerate() {
                let index = offset.saturating_add(i32::try_from(i).unwrap_or(i32::MAX));
                sketch.add_n(sign * b.representative(index), n);
            }
        }
        sketch.set_summary(s);
        sketch
    }

    /// The sketch (accuracy `alpha`) of an explicit-bucket histogram point: `counts[i]` values
    /// in `(bounds[i-1], bounds[i]]`, spread linearly; with no buckets, `count` values at the
    /// mean.
    pub fn from_explicit(
        alpha: f64,
        bounds: &[f64],
        counts: &[u64],
        count: u64,
        s: PointSummary,
    ) -> Self {
        let s = s.finite();
        let mut sketch = Self::new(alpha);
        if counts.is_empty() || counts.len() != bounds.len() + 1 {
            let at = s
                .sum
                .map(|sum| sum / count.max(1) as f64)
                .or(s.min)
                .or(s.max)
                .unwrap_or(0.0);
            sketch.add_n(at, count);
            sketch.set_summary(s);
            return sketch;
        }
        let last = counts.len() - 1;
        // With no bounds at all (one bucket holding everything), the values lie between the
        // extremes, else at the mean.
        let mean = s.sum.map(|sum| sum / count.max(1) as f64);
        for (i, &n) in counts.iter().enumerate() {
            if n == 0 {
                continue;
            }
            let below = i.checked_sub(1).and_then(|j| bounds.get(j)).copied();
            let above = if i == last {
                None
            } else {
                bounds.get(i).copied()
            };
            let mut lo = below.or(s.min).unwrap_or(match above {
                Some(b) if b > 0.0 => 0.0,
                Some(b) => b,
                None => mean.unwrap_or(0.0),
            });
            let mut hi = above
                .or(s.max)
                .or(bounds.last().copied())
                .unwrap_or(mean.unwrap_or(lo));
            if let Some(min) = s.min {
                lo = lo.max(min);
            }
            if let Some(max) = s.max {
                hi = hi.min(max);
            }
            if lo > hi {
                lo = hi;
            }
            let points = n.min(SPREAD_POINTS);
            // Divided first: `hi - lo` of two finite bounds can overflow to infinity.
            let step = hi / points as f64 - lo / points as f64;
            for j in 0..points {
                let share = n / points + u64::from(j < n % points);
                sketch.add_n(lo + (j as f64 + 0.5) * step, share);
            }
        }
        sketch.set_summary(s);
        sketch
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DEFAULT_ALPHA;
    use proptest::prelude::*;

    /// An exponential histogram of `values` at `scale`, as an OpenTelemetry SDK records it.
    fn record(values: &[f64], scale: i32) -> (i32, Vec<u64>, u64) {
        let base_ln = (-f64::from(scale)).exp2() * std::f64::consts::LN_2;
        let mut indices = Vec::new();
        let mut zero = 0;
        for &v in values {
            if v == 0.0 {
                zero += 1;
                continue;
            }
            // The bucket whose (lo, hi] holds v: ceil(log_base v) - 1.
            indices.push(((v.ln() / base_ln).ceil() as i64 - 1) as i32);
        }
        let (Some(&first), Some(&end)) = (indices.iter().min(), indices.iter().max()) else {
            return (0, Vec::new(), zero);
        };
        let mut counts = vec![0u64; (end - first + 1) as usize];
        for i in indices {
            counts[(i - first) as usize] += 1;
        }
        (first, counts, zero)
    }

    fn exact_quantile(sorted: &[f64], q: f64) -> f64 {
        let r = q * (sorted.len() - 1) as f64;
        let (lo, hi) = (r.floor() as usize, r.ceil() as usize);
        sorted[lo] + (r - lo as f64) * (sorted[hi] - sorted[lo])
    }

    proptest! {
        /// Every percentile of the sketch of an exponential histogram is within the bucket's
        /// relative accuracy plus the sketch's of the exact percentile of the values recorded.
        #[test]
        fn exponential_percentiles_stay_within_both_accuracies(
            values in proptest::collection::vec(1e-3f64..1e6, 1..400),
            scale in 0i32..8,
        ) {
            let (offset, counts, zero) = record(&values, scale);
            let b = ExponentialBuckets {
                scale, zero_count: zero, positive_offset: offset, positive: &counts,
                negative_offset: 0, negative: &[],
            };
            let mut sorted = values.clone();
            sorted.sort_by(f64::total_cmp);
            let summary = PointSummary {
                sum: Some(values.iter().sum()),
                min: sorted.first().copied(),
                max: sorted.last().copied(),
            };
            let sketch = DDSketch::from_exponential(DEFAULT_ALPHA, &b, summary);
            prop_assert_eq!(sketch.count(), values.len() as u64);
            let base = (-f64::from(scale)).exp2().exp2();
            let bucket_accuracy = (base - 1.0) / (base + 1.0);
            let bound = bucket_accuracy + DEFAULT_ALPHA + bucket_accuracy * DEFAULT_ALPHA + 1e-9;
            for q in [0.0, 0.5, 0.9, 0.95, 0.99, 1.0] {
                let exact = exact_quantile(&sorted, q);
                let got = sketch.quantile(q).unwrap();
                prop_assert!(
                    (got - exact).abs() <= bound * exact.abs(),
                    "q {} exact {} got {} bound {}", q, exact, got, bound
                );
            }
        }
    }

    #[test]
    fn explicit_buckets_interpolate_linearly_within_a_bucket() {
        // 100 values spread evenly over (10, 20]: the median is near 15.
        let s = DDSketch::from_explicit(
            DEFAULT_ALPHA,
            &[10.0, 20.0],
            &[0, 100, 0],
            100,
            PointSummary {
                sum: Some(1500.0),
                min: Some(10.1),
                max: Some(20.0),
            },
        );
        assert_eq!(s.count(), 100);
        assert_eq!(s.sum(), 1500.0);
        let median = s.quantile(0.5).unwrap();
        assert!((median - 15.0).abs() < 0.3, "{median}");
        assert_eq!(s.quantile(1.0), Some(20.0));
        // The open last bucket ends at the last bound when max is not known.
        let s = DDSketch::from_explicit(DEFAULT_ALPHA, &[1.0], &[0, 4], 4, PointSummary::default());
        assert!((s.quantile(1.0).unwrap() - 1.0).abs() < 0.02);
    }

    #[test]
    fn exponential_negative_and_zero_buckets() {
        let b = ExponentialBuckets {
            scale: 0,
            zero_count: 2,
            positive_offset: 0,
            positive: &[1],
            negative_offset: 1,
            negative: &[3],
        };
        let s = DDSketch::from_exponential(DEFAULT_ALPHA, &b, PointSummary::default());
        assert_eq!(s.count(), 6);
        // Negative bucket 1 holds magnitudes (2, 4]: its representative is -8/3.
        assert!((s.quantile(0.0).unwrap() + 8.0 / 3.0).abs() < 0.03);
        assert_eq!(s.quantile(0.6), Some(0.0));
    }

    /// Buckets at the edge of f64's range (scale 20, an offset near 2^30) once made NaN
    /// representatives that the sketch dropped: every value is counted now.
    #[test]
    fn buckets_near_the_largest_double_are_all_counted() {
        for offset in [1_073_741_500, 1_073_741_823, i32::MAX - 2, -1_073_741_800] {
            let b = ExponentialBuckets {
                scale: 20,
                zero_count: 1,
                positive_offset: offset,
                positive: &[2, 3],
                negative_offset: offset,
                negative: &[4],
            };
            let summary = PointSummary {
                sum: None,
                min: Some(-5.0),
                max: Some(1e300),
            };
            let s = DDSketch::from_exponential(DEFAULT_ALPHA, &b, summary);
            assert_eq!(s.count(), 10, "offset {offset}");
            let q = s.quantiles([0.0, 0.5, 1.0]).unwrap();
            assert!(q.iter().all(|v| !v.is_nan()), "offset {offset}: {q:?}");
        }
    }

    /// One bucket and no bounds is legal OpenTelemetry (everything in one bucket); it once
    /// indexed an empty bounds list and stopped ingest.
    #[test]
    fn one_bucket_without_bounds_spreads_between_the_extremes() {
        let s = DDSketch::from_explicit(DEFAULT_ALPHA, &[], &[5], 5, PointSummary::default());
        assert_eq!(s.count(), 5);
        assert_eq!(s.quantile(0.5), Some(0.0));
        let s = DDSketch::from_explicit(
            DEFAULT_ALPHA,
            &[],
            &[4],
            4,
            PointSummary {
                sum: Some(40.0),
                min: Some(5.0),
                max: Some(15.0),
            },
        );
        assert_eq!((s.count(), s.min(), s.max()), (4, Some(5.0), Some(15.0)));
        let median = s.quantile(0.5).unwrap();
        assert!((5.0..=15.0).contains(&median), "{median}");
    }

    /// Extremes that contradict the buckets (a minimum above every bucket's values) or each
    /// other never make a sketch whose quantiles panic.
    #[test]
    fn extremes_that_contradict_the_buckets_keep_min_at_most_max() {
        let odd = [
            (Some(10.0), None),
            (None, Some(-3.0)),
            (Some(10.0), Some(2.0)),
            (Some(f64::NAN), Some(f64::INFINITY)),
        ];
        for (min, max) in odd {
            let summary = PointSummary {
                sum: None,
                min,
                max,
            };
            let s = DDSketch::from_explicit(DEFAULT_ALPHA, &[1.0, 5.0], &[2, 3, 0], 5, summary);
            assert!(s.min() <= s.max(), "{min:?} {max:?}: {s:?}");
            let _ = s.quantiles([0.0, 0.5, 0.99, 1.0]);
            let back = DDSketch::from_bytes(&s.to_bytes()).expect("a sketch we built decodes");
            assert_eq!(back.count(), 5);
            let b = ExponentialBuckets {
                scale: 3,
                zero_count: 0,
                positive_offset: 0,
                positive: &[1, 2],
                negative_offset: 0,
                negative: &[],
            };
            let s = DDSketch::from_exponential(DEFAULT_ALPHA, &b, summary);
            assert!(s.min() <= s.max(), "{min:?} {max:?}: {s:?}");
            let _ = s.quantiles([0.0, 0.5, 1.0]);
        }
    }
}
