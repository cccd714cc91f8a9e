//! Regressions: the change points of a series' metric, each with its versions, its sign and
//! whether it went the bad way for the metric.
//!
//! Searched on the series with its daily shape divided out once a well-covered day is known
//! ([`deseasonalize`]); before that (a series' first day) and for series without a dense daily
//! cover (a benchmark's one point per run, a batch job), on the series as it is, as Otava does.
//! The switch records no change twice: a change at or before the last one recorded is passed
//! over (the series' [`Mark`]).

use super::changepoint::{change_points, ChangePoint};
use super::config::{DetectConfig, Mark, MIN_SETTLE_POINTS};
use super::found::Regression;
use super::seasonal::deseasonalize;
use crate::rollup::SeriesKey;

/// A change must show as a step where it is: a line with a step at the change, fitted to up to
/// this many points on each side, has a step of at least [`STEP_SHARE`] of the change of the
/// segments' means, the same way, and of most of the minimum magnitude of a change. A daily cycle
/// or a trend searched as it is splits into segments of different means too, but a line follows
/// it with no step.
const STEP_POINTS: usize = 20;
/// See [`STEP_POINTS`].
const STEP_SHARE: f64 = 0.5;
/// See [`STEP_POINTS`]: the t statistic the fitted step needs (its size over its standard
/// error, from the scatter around the line). The search picks the split where noise makes the
/// largest jump, so a noisy series' first day offers steps of many percent that are noise;
/// a benchmark's 11% drop under 2% noise has t above 10, Otava's ten-run sample 5.6 and its
/// zero series' second change 3.9.
const STEP_T: f64 = 3.5;
/// See [`STEP_POINTS`]: the share of the minimum magnitude of a change that its step must
/// have. Below 1 so that a change of about the minimum magnitude is not lost to noise in the
/// fitted step; high enough that noise picked out by the search (the split where it makes
/// the largest jump) in a first day's daily cycle is not a step.
const STEP_MAGNITUDE: f64 = 0.75;

/// The versions on each side of the version change nearest to the change point at `index`
/// (within `radius` windows); a change point found a window or two after a deploy still names
/// the deploy. `(None, None)` when the version did not change nearby.
fn version_change(
    tail: &[(i64, f64)],
    index: usize,
    radius: usize,
    version_at: &dyn Fn(i64) -> Option<String>,
) -> (Option<String>, Option<String>) {
    let lo = index.saturating_sub(radius);
    let hi = (index + radius).min(tail.len().saturating_sub(1));
    let versions: Vec<(usize, String)> = (lo..=hi)
        .filter_map(|i| version_at(tail[i].0).map(|v| (i, v)))
        .collect();
    let nearest = versions
        .windows(2)
        .filter(|p| p[0].1 != p[1].1)
        .min_by_key(|p| p[1].0.abs_diff(index));
    match nearest {
        Some(p) => (Some(p[0].1.clone()), Some(p[1].1.clone())),
        None => (None, None),
    }
}

/// The step at `at` of the least-squares fit of `y = a + b·i + c·[i ≥ at]` to `values`.
/// With its t statistic (the step over its standard error; infinite on an exact fit).
fn fitted_step(values: &[f64], at: usize) -> (f64, f64) {
    let n = values.len() as f64;
    let t_mean = (values.len() - 1) as f64 / 2.0;
    let y_mean = values.iter().sum::<f64>() / n;
    let s_mean = (values.len() - at) as f64 / n;
    // The centred regressors of point `i`: t (position) and s (after the step).
    let regressors = |i: usize| (i as f64 - t_mean, f64::from(u8::from(i >= at)) - s_mean);
    // Their normal equations.
    let (mut tt, mut ss, mut ts, mut ty, mut sy) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for (i, y) in values.iter().enumerate() {
        let (t, s) = regressors(i);
        let y = y - y_mean;
        tt += t * t;
        ss += s * s;
        ts += t * s;
        ty += t * y;
        sy += s * y;
    }
    let det = tt * ss - ts * ts;
    if det.abs() < 1e-12 || values.len() < 4 {
        return (0.0, 0.0);
    }
    let step = (tt * sy - ts * ty) / det;
    let slope = (ss * ty - ts * sy) / det;
    let residuals: f64 = values
        .iter()
        .enumerate()
        .map(|(i, y)| {
            let (t, s) = regressors(i);
            let r = (y - y_mean) - slope * t - step * s;
            r * r
        })
        .sum();
    let sigma2 = residuals / (n - 3.0);
    let se = (sigma2 * tt / det).sqrt();
    let t = if se > 1e-12 * step.abs().max(1e-300) {
        step.abs() / se
    } else {
        f64::INFINITY
    };
    (step, t)
}

/// Whether the change point shows as a step where it is (see [`STEP_POINTS`]), between the
/// change points around it (`bounds`: the first point after the previous one, the first of the
/// next one), so that their steps do not count for it.
fn is_step(values: &[f64], cp: &ChangePoint, bounds: (usize, usize), min_magnitude: f64) -> bool {
    let lo = cp.index.saturating_sub(STEP_POINTS).max(bounds.0);
    let hi = (cp.index + STEP_POINTS).min(bounds.1);
    if cp.index == lo || cp.index == hi || hi - lo < 4 {
        return false;
    }
    let (step, t) = fitted_step(&values[lo..hi], cp.index - lo);
    let segments = cp.mean_after - cp.mean_before;
    t >= STEP_T
        && step * segments > 0.0
        && step.abs() >= STEP_SHARE * segments.abs()
        && step.abs() >= STEP_MAGNITUDE * min_magnitude * cp.mean_before.abs()
}

/// A level within this share of a change from where it started is back there (see [`holds`]).
const RETURN_SHARE: f64 = 0.25;

/// The median of `v`.
fn median(v: &[f64]) -> Option<f64> {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => None,
        n if n % 2 == 1 => Some(v[n / 2]),
        n => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// Whether change point `k` of `cps` is a change of level rather than one edge of a spike.
/// A spike of a few windows is two change points, up then down, each with a step; what tells
/// it is that the level after it is the level before it. So a change point is refused when,
/// with a neighbour less than [`STEP_POINTS`] / 2 points away, the level beyond the pair is
/// back within [`RETURN_SHARE`] of the change from the level before the pair; and, with no next
/// change point (a spike whose end is not yet a change point), when the median of the points
/// after it has not moved by [`STEP_SHARE`] of the change.
fn holds(values: &[f64], cps: &[ChangePoint], k: usize) -> bool {
    let cp = &cps[k];
    let change = cp.mean_after - cp.mean_before;
    let short = STEP_POINTS / 2;
    let level_before = |i: usize| median(&values[i.saturating_sub(STEP_POINTS)..i]);
    let level_after = |i: usize| median(&values[i..(i + STEP_POINTS).min(values.len())]);
    let back = |from: Option<f64>, to: Option<f64>| match (from, to) {
        (Some(a), Some(b)) => (b - a).abs() < RETURN_SHARE * change.abs(),
        _ => false,
    };
    if let Some(next) = cps.get(k + 1).filter(|n| n.index - cp.index < short) {
        if back(level_before(cp.index), level_after(next.index)) {
            return false;
        }
    }
    if let Some(prev) = k
        .checked_sub(1)
        .map(|p| &cps[p])
        .filter(|p| cp.index - p.index < short)
    {
        if back(level_before(prev.index), level_after(cp.index)) {
            return false;
        }
    }
    if k + 1 == cps.len() {
        let from = k.checked_sub(1).map_or(0, |p| cps[p].index);
        let before = median(&values[from.max(cp.index.saturating_sub(STEP_POINTS))..cp.index]);
        let moved = match (before, level_after(cp.index)) {
            (Some(a), Some(b)) => b - a,
            _ => return false,
        };
        return moved * change > 0.0 && moved.abs() >= STEP_SHARE * change.abs();
    }
    true
}

/// A series' metric whose change points are searched.
pub(crate) struct Search<'a> {
    /// The series, without its version.
    pub series: &'a SeriesKey,
    /// The statistic (`p50`, `p95`).
    pub metric: &'static str,
    /// Its closed windows with a value, oldest first: (window start, value).
    pub points: &'a [(i64, f64)],
    /// Width of a window.
    pub window_ms: i64,
}

/// The part of a series one search looks at.
#[derive(Clone, Copy)]
struct Tail<'a> {
    /// (window start, value) of its points.
    points: &'a [(i64, f64)],
    /// The values searched (with the daily shape divided out once it is known).
    values: &'a [f64],
    /// Points of the series before it.
    offset: usize,
}

impl Search<'_> {
    /// Adds the change points not recorded yet to `out` and moves `mark` past them and past
    /// the points searched; `true` when the mark moved. `version_at` gives the version
    /// deployed in a window.
    pub(crate) fn run(
        &self,
        cfg: &DetectConfig,
        mark: &mut Mark,
        version_at: &dyn Fn(i64) -> Option<String>,
        out: &mut Vec<Regression>,
    ) -> bool {
        let (kept, values) = match deseasonalize(self.points, self.window_ms, cfg.change_history) {
            Some(d) => d,
            None => (
                self.points.to_vec(),
                self.points.iter().map(|p| p.1).collect(),
            ),
        };
        let n = kept.len();
        let Some(&(newest, _)) = kept.last() else {
            return false;
        };
        // The search sees at most `change_history` points; history that arrives at once (a
        // replay, a backfill) is searched in steps of half of that, as it would have been live.
        let first_new = mark
            .searched
            .map_or(0, |s| kept.partition_point(|p| p.0 <= s));
        let stride = (cfg.change_history / 2).max(1);
        let mut ends: Vec<usize> = (first_new + stride..n).step_by(stride).collect();
        ends.push(n);
        for end in ends {
            let from = end.saturating_sub(cfg.change_history);
            let tail = Tail {
                points: &kept[from..end],
                values: &values[from..end],
                offset: from,
            };
            self.search(&tail, cfg, mark, version_at, out);
        }
        let moved = mark.searched != Some(newest);
        mark.searched = Some(newest);
        moved
    }

    /// One search of a tail of the series.
    fn search(
        &self,
        tail: &Tail<'_>,
        cfg: &DetectConfig,
        mark: &mut Mark,
        version_at: &dyn Fn(i64) -> Option<String>,
        out: &mut Vec<Regression>,
    ) {
        let Tail {
            points: tail,
            values,
            offset,
        } = *tail;
        let min_gap = cfg.change_settle as i64 * self.window_ms;
        let direction = cfg.directions.of(&self.series.name);
        let cps = change_points(values, &cfg.changes);
        // Where the last recorded change is in the tail: the points before it are another
        // regime.
        let recorded = mark
            .last_change
            .map_or(0, |l| tail.partition_point(|p| p.0 < l));
        for (k, cp) in cps.iter().enumerate() {
            let at = tail[cp.index].0;
            let needed = ((offset + cp.index) / 2).clamp(MIN_SETTLE_POINTS, cfg.change_settle);
            if values.len() - cp.index < needed
                || mark.last_change.is_some_and(|l| at <= l + min_gap)
            {
                continue;
            }
            let prev = if k > 0 { cps[k - 1].index } else { 0 };
            let next = cps.get(k + 1).map_or(values.len(), |c| c.index);
            if !is_step(
                values,
                cp,
                (prev.max(recorded), next),
                cfg.changes.min_magnitude,
            ) || !holds(values, &cps, k)
            {
                continue;
            }
            let (version_before, version_after) =
                version_change(tail, cp.index, cfg.change_settle, version_at);
            // Levels of the searched values: with the daily shape divided out (it averages
            // about 1), a change measured across different times of day is not skewed.
            out.push(Regression {
                series: self.series.clone(),
                metric: self.metric,
                change_at: at,
                before: cp.mean_before,
                after: cp.mean_after,
                change_pct: cp.change_pct(),
                p_value: cp.pvalue,
                version_before,
                version_after,
                kind: direction.judge_change(cp.mean_before, cp.mean_after),
            });
            mark.last_change = Some(at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::changepoint::tests::{floats, shared};

    const MINUTE: i64 = 60_000;

    /// A change recorded: point index, change_pct, kind, version_before, version_after.
    type Found = (usize, f64, &'static str, Option<String>, Option<String>);

    fn series(name: &str) -> SeriesKey {
        SeriesKey {
            service: "bench".into(),
            name: name.into(),
            version: None,
            labels: Vec::new(),
        }
    }

    /// Feeds `values` (one point a minute) `per_cycle` points at a time, as live data arrives,
    /// and returns what was recorded: (index, change_pct, kind, versions).
    fn live(
        name: &str,
        values: &[f64],
        per_cycle: usize,
        version: &dyn Fn(usize) -> Option<String>,
    ) -> Vec<Found> {
        let cfg = DetectConfig::default();
        let key = series(name);
        let points: Vec<(i64, f64)> = values
            .iter()
            .enumerate()
            .map(|(i, v)| (i as i64 * MINUTE, *v))
            .collect();
        let mut mark = Mark::default();
        let mut found = Vec::new();
        let version_at = |w: i64| version((w / MINUTE) as usize);
        let mut upto = 0;
        while upto < points.len() {
            upto = (upto + per_cycle).min(points.len());
            let search = Search {
                series: &key,
                metric: "p50",
                points: &points[..upto],
                window_ms: MINUTE,
            };
            search.run(&cfg, &mut mark, &version_at, &mut found);
        }
        found
            .into_iter()
            .map(|r| {
                let i = (r.change_at / MINUTE) as usize;
                (i, r.change_pct, r.kind, r.version_before, r.version_after)
            })
            .collect()
    }

    fn no_version(_: usize) -> Option<String> {
        None
    }

    /// Otava's short series, shorter than a day and without a daily cycle: their changes are
    /// found as Otava finds them, whether they arrive at once or a point at a time.
    #[test]
    fn otavas_short_series_are_searched_as_they_are() {
        let o = shared();
        let two = &o["two_metric_series"];
        for per_cycle in [1, 3, 100] {
            let s1 = live("series1", &floats(&two["series1"]), per_cycle, &no_version);
            assert_eq!(
                s1.iter().map(|c| c.0).collect::<Vec<_>>(),
                [6],
                "{per_cycle}"
            );
            // Recorded once settled, on the points seen by then.
            assert!((s1[0].1 - -49.4).abs() < 1.5, "{s1:?}");
            let s2 = live("series2", &floats(&two["series2"]), per_cycle, &no_version);
            assert_eq!(
                s2.iter().map(|c| c.0).collect::<Vec<_>>(),
                [4],
                "{per_cycle}"
            );
            assert!((s2[0].1 - -11.06).abs() < 1.5, "{s2:?}");
        }
        // Otava's sample.csv: metric2 changes at its seventh run (commit aaa6), metric1 never.
        let csv = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/data/otava/sample.csv"
        ))
        .unwrap();
        let rows: Vec<Vec<&str>> = csv
            .lines()
            .skip(1)
            .map(|l| l.split(',').collect())
            .collect();
        let commit = |i: usize| rows.get(i).map(|r| r[1].to_string());
        let column =
            |c: usize| -> Vec<f64> { rows.iter().map(|r| r[c].parse().unwrap()).collect() };
        assert!(live("metric1", &column(2), 1, &commit).is_empty());
        let m2 = live("metric2", &column(3), 1, &commit);
        assert_eq!(m2.len(), 1, "{m2:?}");
        assert_eq!(m2[0].0, 6);
        assert_eq!(
            (m2[0].3.as_deref(), m2[0].4.as_deref()),
            (Some("aaa5"), Some("aaa6"))
        );
        assert!((m2[0].1 - -12.94).abs() < 1.5, "{m2:?}");
        // Zeros before a change: no division by zero, the change found where it is.
        let zeros = live(
            "series1",
            &floats(&o["div_by_zero_series"]["series1"]),
            1,
            &no_version,
        );
        assert_eq!(zeros.first().map(|c| c.0), Some(3), "{zeros:?}");
    }

    /// A benchmark's throughput, one point per run: a drop of 11% at run 15 is a regression,
    /// a rise of 20% at run 71 an improvement, and nothing else is recorded.
    #[test]
    fn a_benchmark_series_has_its_changes_with_their_sign_and_meaning() {
        for seed in 1..=SEEDS {
            benchmark_series(seed);
        }
    }

    const SEEDS: u64 = 8;

    /// A latency spike of three windows, then the old level again: an anomaly, never a change
    /// of level, however the points arrive; a shift that holds is still one.
    #[test]
    fn a_spike_that_passes_is_no_change_and_a_shift_that_holds_is() {
        let mut state = 7u64;
        let mut noise = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 33) as f64 / (1u64 << 31) as f64 - 0.5) * 0.1
        };
        let base: Vec<f64> = (0..120).map(|_| 120.0 * (1.0 + noise())).collect();
        let mut spike = base.clone();
        for v in &mut spike[80..83] {
            *v *= 8.0;
        }
        let mut shift = base.clone();
        for v in &mut shift[80..] {
            *v *= 1.5;
        }
        for per_cycle in [1, 5, 120] {
            let found = live("http.server.duration", &spike, per_cycle, &no_version);
            assert!(found.is_empty(), "{per_cycle} points a cycle: {found:?}");
            let found = live("http.server.duration", &shift, per_cycle, &no_version);
            let at: Vec<usize> = found.iter().map(|c| c.0).collect();
            assert_eq!(at, [80], "{per_cycle} points a cycle: {found:?}");
        }
    }

    fn benchmark_series(seed: u64) {
        let mut state = seed;
        let mut noise = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 33) as f64 / (1u64 << 31) as f64 - 0.5) * 0.04
        };
        let values: Vec<f64> = (0..365)
            .map(|i| {
                let level = match i {
                    i if i < 15 => 1000.0,
                    i if i < 71 => 890.0,
                    _ => 1068.0,
                };
                level * (1.0 + noise())
            })
            .collect();
        for per_cycle in [1, 30, 365] {
            let found = live("tigerbeetle.throughput", &values, per_cycle, &no_version);
            let summary: Vec<(usize, &str)> = found.iter().map(|c| (c.0, c.2)).collect();
            let context = format!("{per_cycle} points a cycle, seed {seed}: {found:?}");
            assert_eq!(
                summary,
                [(15, "regression"), (71, "improvement")],
                "{context}"
            );
            // Measured on the points seen when the change settled.
            assert!((found[0].1 - -11.0).abs() < 2.0, "{context}");
            assert!((found[1].1 - 20.0).abs() < 2.0, "{context}");
        }
    }

    /// A dense series' first day, searched as it is, holds a daily cycle and noise but no
    /// change: none is recorded.
    #[test]
    fn a_daily_cycle_in_a_first_day_is_no_change() {
        for seed in 1..=SEEDS {
            first_day(seed);
        }
    }

    fn first_day(seed: u64) {
        let mut state = seed;
        let values: Vec<f64> = (0..1400)
            .map(|i| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let noise = ((state >> 33) as f64 / (1u64 << 31) as f64 - 0.5) * 0.1;
                let daily = 1.0 + 0.3 * (2.0 * std::f64::consts::PI * i as f64 / 1440.0).sin();
                120.0 * daily * (1.0 + noise)
            })
            .collect();
        for per_cycle in [7, 60] {
            let found = live("http.server.duration", &values, per_cycle, &no_version);
            assert!(found.is_empty(), "seed {seed}: {found:?}");
        }
    }
}
