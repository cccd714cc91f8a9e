//! Change points in the way of Apache Otava (Fleming et al., ICPE 2023): E-divisive means
//! proposes splits inside sliding windows, a two-sample Student's t-test keeps the significant
//! ones, and a bottom-up pass drops change points whose segments no longer differ
//! significantly (or by less than the minimum magnitude) once their neighbours are known.
//!
//! Hand-written: there is no Rust crate for E-divisive means; the Student's t distribution
//! comes from `statrs`.

use statrs::distribution::{ContinuousCDF, StudentsT};

/// Settings, with Otava's defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChangePointConfig {
    /// Points per analysis window; windows step by half of it.
    pub window_len: usize,
    /// Largest p-value of a reported change.
    pub max_pvalue: f64,
    /// Smallest magnitude `max(|after/before - 1|, |before/after - 1|)` of a reported change.
    pub min_magnitude: f64,
}

impl Default for ChangePointConfig {
    fn default() -> Self {
        Self {
            window_len: 50,
            max_pvalue: 0.001,
            min_magnitude: 0.0,
        }
    }
}

/// A change: the regime starting at `index` differs from the one before it.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangePoint {
    /// First point of the new regime.
    pub index: usize,
    /// Mean before the change.
    pub mean_before: f64,
    /// Mean after the change.
    pub mean_after: f64,
    /// Standard deviation before the change.
    pub stddev_before: f64,
    /// Standard deviation after the change.
    pub stddev_after: f64,
    /// p-value of the change (pooled Student t-test).
    pub pvalue: f64,
}

impl ChangePoint {
    /// `(after / before - 1) * 100`.
    pub fn change_pct(&self) -> f64 {
        if self.mean_before == 0.0 {
            if self.mean_after == 0.0 {
                0.0
            } else {
                100.0 * self.mean_after.signum()
            }
        } else {
            (self.mean_after / self.mean_before - 1.0) * 100.0
        }
    }

    /// Otava's magnitude: `max(|after/before - 1|, |before/after - 1|)`.
    pub fn magnitude(&self) -> f64 {
        let r = |a: f64, b: f64| {
            if b == 0.0 {
                if a == 0.0 {
                    0.0
                } else {
                    f64::INFINITY
                }
            } else {
                (a / b - 1.0).abs()
            }
        };
        r(self.mean_after, self.mean_before).max(r(self.mean_before, self.mean_after))
    }
}

fn mean_sd(x: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    let m = x.iter().sum::<f64>() / n;
    let var = if x.len() > 1 {
        x.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (m, var.sqrt())
}

/// Two-sample Student's t-test with pooled variance; the two-sided p-value.
pub fn ttest_pvalue(a: &[f64], b: &[f64]) -> f64 {
    if a.is_empty() || b.is_empty() || a.len() + b.len() < 3 {
        return 1.0;
    }
    let (ma, sa) = mean_sd(a);
    let (mb, sb) = mean_sd(b);
    let (na, nb) = (a.len() as f64, b.len() as f64);
    let df = na + nb - 2.0;
    let pooled = ((na - 1.0) * sa * sa + (nb - 1.0) * sb * sb) / df;
    let se = (pooled * (1.0 / na + 1.0 / nb)).sqrt();
    let diff = (ma - mb).abs();
    // Equal means are no change; constant but different segments are a certain change.
    let scale = ma.abs().max(mb.abs()).max(1.0);
    if diff <= 1e-12 * scale {
        return 1.0;
    }
    if se <= 1e-12 * scale {
        return 0.0;
    }
    let t = diff / se;
    match StudentsT::new(0.0, 1.0, df) {
        Ok(d) => (2.0 * (1.0 - d.cdf(t))).clamp(0.0, 1.0),
        Err(_) => 1.0,
    }
}

/// The E-divisive statistic's best split of `x` (at least 2 points each side, so that both
/// regimes have a variance to test), with its value.
fn best_split(x: &[f64]) -> Option<(usize, f64)> {
    let n = x.len();
    if n < 4 {
        return None;
    }
    let d = |i: usize, j: usize| (x[i] - x[j]).abs();
    // Sums of distances between and within the sides, moved point by point as the split
    // moves right (O(n²) in all): point `tau` leaves the right side for the left.
    let mut between: f64 = (1..n).map(|j| d(0, j)).sum();
    let mut within_l = 0.0;
    let mut within_r: f64 = (1..n)
        .map(|j| (j + 1..n).map(|k| d(j, k)).sum::<f64>())
        .sum();
    let mut best: Option<(usize, f64)> = None;
    for tau in 2..=n - 2 {
        let m = tau - 1;
        let to_left: f64 = (0..m).map(|i| d(i, m)).sum();
        let to_right: f64 = (m + 1..n).map(|j| d(m, j)).sum();
        between += to_right - to_left;
        within_l += to_left;
        within_r -= to_right;
        let (l, r) = (tau as f64, (n - tau) as f64);
        let wl = within_l / (l * (l - 1.0) / 2.0);
        let wr = within_r / (r * (r - 1.0) / 2.0);
        let q = (l * r / (l + r)) * (2.0 * between / (l * r) - wl - wr);
        if best.is_none_or(|(_, b)| q > b) {
            best = Some((tau, q));
        }
    }
    best
}

/// Splits `x[lo..hi]` recursively while the split is significant at `p`.
fn split_window(x: &[f64], lo: usize, hi: usize, p: f64, out: &mut Vec<usize>) {
    // Otava grows the set one change at a time: the most significant split of any segment.
    let mut cps: Vec<usize> = Vec::new();
    loop {
        let mut bounds = vec![lo];
        bounds.extend(cps.iter().copied());
        bounds.push(hi);
        let mut best: Option<(usize, f64, f64)> = None; // (index, q, pvalue)
        for w in bounds.windows(2) {
            let (a, b) = (w[0], w[1]);
            if let Some((tau, q)) = best_split(&x[a..b]) {
                let at = a + tau;
                let pv = ttest_pvalue(&x[a..at], &x[at..b]);
                if pv <= p && best.is_none_or(|(_, bq, _)| q > bq) {
                    best = Some((at, q, pv));
                }
            }
        }
        match best {
            Some((at, _, _)) => {
                cps.push(at);
                cps.sort_unstable();
            }
            None => break,
        }
    }
    out.extend(cps);
}

fn describe(x: &[f64], prev: usize, at: usize, next: usize) -> ChangePoint {
    let (mb, sb) = mean_sd(&x[prev..at]);
    let (ma, sa) = mean_sd(&x[at..next]);
    ChangePoint {
        index: at,
        mean_before: mb,
        mean_after: ma,
        stddev_before: sb,
        stddev_after: sa,
        pvalue: ttest_pvalue(&x[prev..at], &x[at..next]),
    }
}

/// The change points of `x`, in order.
pub fn change_points(x: &[f64], cfg: &ChangePointConfig) -> Vec<ChangePoint> {
    let n = x.len();
    if n < 3 || x.iter().any(|v| !v.is_finite()) {
        return Vec::new();
    }
    // First pass is looser, as in Otava: the merge pass applies the real threshold.
    let first_p = if cfg.max_pvalue < 0.05 {
        (cfg.max_pvalue * 10.0).min(0.05)
    } else if cfg.max_pvalue < 0.5 {
        cfg.max_pvalue * 2.0
    } else {
        cfg.max_pvalue
    };
    let w = cfg.window_len.max(4);
    let step = (w / 2).max(1);
    let mut candidates = Vec::new();
    let mut start = 0;
    loop {
        let end = (start + w).min(n);
        split_window(x, start, end, first_p, &mut candidates);
        if end == n {
            break;
        }
        start += step;
    }
    candidates.sort_unstable();
    candidates.dedup();

    // Bottom-up: drop the weakest change until every one is significant and large enough.
    loop {
        if candidates.is_empty() {
            return Vec::new();
        }
        let described: Vec<ChangePoint> = (0..candidates.len())
            .map(|i| {
                let prev = if i == 0 { 0 } else { candidates[i - 1] };
                let next = candidates.get(i + 1).copied().unwrap_or(n);
                describe(x, prev, candidates[i], next)
            })
            .collect();
        let weakest = described
            .iter()
            .enumerate()
            .filter(|(_, c)| c.pvalue > cfg.max_pvalue || c.magnitude() < cfg.min_magnitude)
            .max_by(|a, b| a.1.pvalue.total_cmp(&b.1.pvalue));
        match weakest {
            Some((i, _)) => {
                candidates.remove(i);
            }
            None => return described,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::Value;

    /// Otava's expected change points (`../shared/data/otava`).
    pub(crate) fn shared() -> Value {
        let p = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/data/otava/expected_change_points.json"
        );
        serde_json::from_str(&std::fs::read_to_string(p).expect("shared Otava data")).unwrap()
    }

    /// A JSON array of numbers.
    pub(crate) fn floats(v: &Value) -> Vec<f64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    }

    fn indexes(x: &[f64], cfg: &ChangePointConfig) -> Vec<usize> {
        change_points(x, cfg).iter().map(|c| c.index).collect()
    }

    #[test]
    fn otava_two_metric_series() {
        let d = &shared()["two_metric_series"];
        let cfg = ChangePointConfig::default();
        let s1 = floats(&d["series1"]);
        let s2 = floats(&d["series2"]);
        let c1 = change_points(&s1, &cfg);
        let c2 = change_points(&s2, &cfg);
        assert_eq!(c1.iter().map(|c| c.index).collect::<Vec<_>>(), vec![6]);
        assert_eq!(c2.iter().map(|c| c.index).collect::<Vec<_>>(), vec![4]);
        assert!((c2[0].mean_before - 2.025).abs() < 1e-6);
        assert!((c2[0].mean_after - 1.801429).abs() < 1e-6);
        assert!((c2[0].magnitude() - 0.124108).abs() < 1e-5);
        assert!((c1[0].change_pct() - -49.4).abs() < 0.05);
        assert!((c2[0].change_pct() - -11.0).abs() < 0.05);
        // Only big changes with a minimum magnitude of 0.2.
        let big = ChangePointConfig {
            min_magnitude: 0.2,
            ..cfg
        };
        assert_eq!(indexes(&s1, &big), vec![6]);
        assert!(indexes(&s2, &big).is_empty());
        // Appending points keeps the changes found, and finds the new one.
        let (mut a1, mut a2) = (s1.clone(), s2.clone());
        for step in d["incremental"].as_array().unwrap() {
            if let Some(v) = step["append"].get("series1") {
                a1.extend(floats(v));
            }
            if let Some(v) = step["append"].get("series2") {
                a2.extend(floats(v));
            }
            let want1: Vec<usize> = step["expected"]["series1"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as usize)
                .collect();
            let want2: Vec<usize> = step["expected"]["series2"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as usize)
                .collect();
            assert_eq!(indexes(&a1, &cfg), want1);
            assert_eq!(indexes(&a2, &cfg), want2);
        }
    }

    #[test]
    fn otava_single_step_sequence_and_zeros() {
        let d = shared();
        let s = floats(&d["single_series_step"]["series"]);
        let cfg = ChangePointConfig {
            window_len: 10,
            max_pvalue: 0.0001,
            min_magnitude: 0.0,
        };
        assert_eq!(indexes(&s, &cfg), vec![10]);
        let s = floats(&d["edivisive_sequence"]["series"]);
        let cfg = ChangePointConfig {
            max_pvalue: 0.01,
            ..Default::default()
        };
        assert_eq!(indexes(&s, &cfg), vec![5, 8]);
        let s = floats(&d["div_by_zero_series"]["series1"]);
        let cps = change_points(&s, &ChangePointConfig::default());
        assert_eq!(cps.len(), 2, "{cps:?}");
        assert_eq!(cps[0].index, 3);
        assert!(cps
            .iter()
            .all(|c| c.change_pct().is_finite() && c.pvalue.is_finite()));
    }

    #[test]
    fn otava_ttest_significance() {
        let d = &shared()["ttest_significance"];
        for case in d["cases"].as_array().unwrap() {
            let s = floats(&case["series"]);
            let p = ttest_pvalue(&s[..5], &s[5..]);
            let range = floats(&case["pvalue_range"]);
            assert!(
                p >= range[0] && p <= range[1],
                "p = {p}, expected in {range:?}"
            );
            assert_eq!(p <= 0.001, case["significant"].as_bool().unwrap());
        }
    }

    #[test]
    fn otava_sample_csv() {
        let p = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/data/otava/sample.csv"
        );
        let text = std::fs::read_to_string(p).unwrap();
        let rows: Vec<Vec<&str>> = text
            .lines()
            .skip(1)
            .map(|l| l.split(',').collect())
            .collect();
        let m1: Vec<f64> = rows.iter().map(|r| r[2].parse().unwrap()).collect();
        let m2: Vec<f64> = rows.iter().map(|r| r[3].parse().unwrap()).collect();
        let cfg = ChangePointConfig::default();
        assert!(indexes(&m1, &cfg).is_empty(), "metric1 has no change");
        let c = change_points(&m2, &cfg);
        assert_eq!(c.iter().map(|c| c.index).collect::<Vec<_>>(), vec![6]);
        assert_eq!(rows[6][1], "aaa6");
        assert!((c[0].mean_before - 10.481667).abs() < 1e-5);
        assert!((c[0].mean_after - 9.125).abs() < 1e-5);
    }

    #[test]
    fn noise_without_change_has_no_change_points() {
        // A deterministic pseudo-random series around one level.
        let mut s = 12345u64;
        let x: Vec<f64> = (0..400)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                100.0 + ((s >> 33) as f64 / (1u64 << 31) as f64 - 0.5) * 10.0
            })
            .collect();
        assert!(change_points(&x, &ChangePointConfig::default()).is_empty());
    }
}
