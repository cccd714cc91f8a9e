//! The rank of a value in a sketch: how many of the values added were at or under it. This is
//! what a latency SLO counts (samples at or under the threshold are good) and what SQL's
//! `quantile_rank(sketch, value)` returns as a fraction.
//!
//! Every bucket lies wholly on one side of `v` except the one that holds `v` itself, whose
//! values are all within a factor `γ` of `v`. That bucket counts as at or under `v` when its
//! representative (the value a quantile reports for it) is, so that `rank` and `quantile` agree:
//! the rank of the estimated `q` quantile is about `q`. The exact count of values `≤ v` is
//! therefore between the count of values `≤ v/γ` and the count of values `≤ v·γ` (mirrored for
//! negative `v`), and the exact min and max settle the ends.

use crate::DDSketch;

impl DDSketch {
    /// How many added values are at or under `v` (see the module documentation for the bucket
    /// that holds `v`); 0 for an empty sketch or a NaN.
    pub fn rank(&self, v: f64) -> u64 {
        if self.count == 0 || v.is_nan() || v < self.min {
            return 0;
        }
        if v >= self.max {
            return self.count;
        }
        let gamma = self.ln_gamma.exp();
        if v > crate::MIN_INDEXABLE {
            let kv = self.key(v);
            let mut n = saturating_sum(self.neg.counts.iter().copied()).saturating_add(self.zero);
            for (k, c) in self.pos.nonzero() {
                if k < kv || (k == kv && self.bucket_value_with(k, gamma) <= v) {
                    n = n.saturating_add(c);
                } else {
                    break;
                }
            }
            n
        } else if v >= -crate::MIN_INDEXABLE {
            saturating_sum(self.neg.counts.iter().copied()).saturating_add(self.zero)
        } else {
            let kv = self.key(-v);
            // Negative values at or under `v` have magnitudes at or above `|v|`.
            self.neg
                .nonzero()
                .filter(|&(k, _)| k > kv || (k == kv && -self.bucket_value_with(k, gamma) <= v))
                .map(|(_, c)| c)
                .fold(0, u64::saturating_add)
        }
    }

    /// The fraction of added values at or under `v` ([`DDSketch::rank`] over the count);
    /// `None` for an empty sketch.
    pub fn rank_fraction(&self, v: f64) -> Option<f64> {
        (self.count > 0).then(|| self.rank(v) as f64 / self.count as f64)
    }
}

/// The sum of `counts`, saturating: counts come from outside.
fn saturating_sum(counts: impl Iterator<Item = u64>) -> u64 {
    counts.fold(0, u64::saturating_add)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn exact_at_or_under(values: &[f64], v: f64) -> u64 {
        values.iter().filter(|&&x| x <= v).count() as u64
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn rank_is_exact_but_for_the_bucket_that_holds_the_value(
            values in prop::collection::vec(
                prop_oneof![-1e4f64..-0.01, Just(0.0), 0.01f64..1e4, 100.0f64..400.0],
                1..1500,
            ),
            probe in prop_oneof![-2e4f64..2e4, 250.0f64..350.0, Just(300.0)],
        ) {
            let mut s = DDSketch::default();
            s.add_all(&values);
            let gamma = (1.0 + s.alpha()) / (1.0 - s.alpha());
            let (narrow, wide) = if probe >= 0.0 {
                (probe / gamma, probe * gamma)
            } else {
                (probe * gamma, probe / gamma)
            };
            let lo = exact_at_or_under(&values, narrow);
            let hi = exact_at_or_under(&values, wide);
            let got = s.rank(probe);
            prop_assert!(lo <= got && got <= hi, "rank({probe}) = {got}, exact between {lo} and {hi}");
            // Outside the values' range the rank is exact.
            prop_assert_eq!(s.rank(s.max().unwrap()), values.len() as u64);
            prop_assert_eq!(s.rank(s.min().unwrap() - 1.0), 0);
        }

        #[test]
        fn the_rank_of_a_quantile_is_about_its_fraction(
            values in prop::collection::vec(0.01f64..1e4, 50..1500),
            q in 0.0f64..1.0,
        ) {
            let mut s = DDSketch::default();
            s.add_all(&values);
            let v = s.quantile(q).unwrap();
            let frac = s.rank_fraction(v).unwrap();
            // Every value of the quantile's bucket counts; the quantile's rank is inside it.
            let mut sorted = values.clone();
            sorted.sort_by(f64::total_cmp);
            let gamma = (1.0 + s.alpha()) / (1.0 - s.alpha());
            let lo = exact_at_or_under(&sorted, v / gamma) as f64 / values.len() as f64;
            let hi = exact_at_or_under(&sorted, v * gamma) as f64 / values.len() as f64;
            prop_assert!(lo <= frac && frac <= hi, "q={q}: rank fraction {frac} outside [{lo}, {hi}]");
        }
    }

    #[test]
    fn empty_and_simple_sketches() {
        let s = DDSketch::default();
        assert_eq!(s.rank(1.0), 0);
        assert_eq!(s.rank_fraction(1.0), None);
        let mut s = DDSketch::default();
        s.add_all(&[100.0, 200.0, 300.0, 1000.0]);
        assert_eq!(s.rank(250.0), 2);
        // 300 itself shares its bucket with values up to 0.9% either side.
        assert!((2..=3).contains(&s.rank(300.0)));
        assert_eq!(s.rank(99.0), 0);
        assert_eq!(s.rank(5000.0), 4);
        assert_eq!(s.rank(f64::NAN), 0);
    }
}
