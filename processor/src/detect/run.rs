//! Detection inside the processing cycle, on event time.
//!
//! For each series whose rollups changed, the detectors replay the series' per-window values
//! from `lookback` before the first window not yet evaluated, so each window is judged against
//! the history before it only, exactly as if it had arrived live, also when a month (or a
//! series from 2014) arrives at once. A window is evaluated once it is closed: `lateness`
//! windows behind the newest window of its series. How far each series and metric has been
//! evaluated is lake state committed together with the rollups and the detections, so every
//! anomaly and change point is recorded once, across restarts, replays and racing processors.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float64Builder, StringBuilder};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use opslake_schemas::tables;
use serde::{Deserialize, Serialize};

use super::anomaly::{AnomalyConfig, Detector, Direction, METHOD};
use super::changepoint::{change_points, ChangePointConfig};
use crate::rollup::{
    append_labels, labels_builder, ts_builder, LogWindows, MetricWindows, SeriesKey,
};
use opslake_sketch::DDSketch;

/// Settings of detection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectConfig {
    /// Anomaly detection settings.
    pub anomaly: AnomalyConfig,
    /// Change-point detection settings.
    pub changes: ChangePointConfig,
    /// History replayed before the first window to evaluate.
    pub lookback_ms: i64,
    /// Windows a window waits for late data before it is evaluated.
    pub lateness_windows: i64,
    /// Points of history the change-point search looks at.
    pub change_history: usize,
    /// Points a change must have after it before it is recorded (so it does not move).
    pub change_settle: usize,
}

impl Default for DetectConfig {
    fn default() -> Self {
        Self {
            anomaly: AnomalyConfig::default(),
            changes: ChangePointConfig {
                window_len: 50,
                max_pvalue: 0.001,
                min_magnitude: 0.1,
            },
            lookback_ms: 3 * 86_400_000,
            lateness_windows: 2,
            change_history: 300,
            change_settle: 8,
        }
    }
}

/// Per series and metric: how far detection got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    /// Last window evaluated for anomalies.
    pub evaluated: Option<i64>,
    /// Last change point recorded.
    pub last_change: Option<i64>,
}

/// State key of a series' metric.
pub fn state_key(series: &SeriesKey, metric: &str) -> String {
    let labels: Vec<String> = series
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    format!(
        "detect|{}|{}|{}|{metric}",
        series.service,
        series.name,
        labels.join(",")
    )
}

/// One window of a series across versions.
#[derive(Default)]
struct Window {
    sketch: DDSketch,
    versions: HashMap<Option<String>, u64>,
}

impl Window {
    fn version(&self) -> Option<String> {
        self.versions
            .iter()
            .max_by_key(|(v, c)| (**c, (*v).clone()))
            .and_then(|(v, _)| v.clone())
    }
}

/// An anomaly found.
#[derive(Debug, Clone, PartialEq)]
pub struct Anomaly {
    /// The series, without its version.
    pub series: SeriesKey,
    /// The statistic judged (`p50`, `p95`, `p99`, `error_rate`).
    pub metric: &'static str,
    /// Start of the window judged (epoch ms).
    pub window_start: i64,
    /// The observed value.
    pub observed: f64,
    /// Expected value.
    pub expected: f64,
    /// Lower bound of the expected range.
    pub lower: f64,
    /// Upper bound of the expected range.
    pub upper: f64,
    /// Distance from the expected value, in robust spreads.
    pub score: f64,
    /// `warning`, or `critical` at twice the threshold.
    pub severity: &'static str,
}

/// A change point found.
#[derive(Debug, Clone, PartialEq)]
pub struct Regression {
    /// The series, without its version.
    pub series: SeriesKey,
    /// The statistic judged (`p50`, `p95`, `p99`, `error_rate`).
    pub metric: &'static str,
    /// Where the change happened (epoch ms).
    pub change_at: i64,
    /// Mean level before the change.
    pub before: f64,
    /// Mean level after the change.
    pub after: f64,
    /// Change, percent of the level before.
    pub change_pct: f64,
    /// p-value of the change.
    pub p_value: f64,
    /// Deployed version before the change, when known.
    pub version_before: Option<String>,
    /// Deployed version after the change, when known.
    pub version_after: Option<String>,
}

/// What detection found, and the marks to record.
#[derive(Debug, Default)]
pub struct Detections {
    /// Anomalies found.
    pub anomalies: Vec<Anomaly>,
    /// Change points found.
    pub regressions: Vec<Regression>,
    /// Detection progress to record, by state key.
    pub marks: BTreeMap<String, Mark>,
}

/// The first window that detection of `series` still needs, given the recorded marks:
/// history starts `lookback` before it. `None`: the whole history.
pub fn history_start(
    series: &SeriesKey,
    marks: &dyn Fn(&str) -> Mark,
    cfg: &DetectConfig,
) -> Option<i64> {
    ["p95", "p99", "p50"]
        .iter()
        .map(|m| marks(&state_key(series, m)).evaluated)
        .min()
        .flatten()
        .map(|e| e - cfg.lookback_ms)
}

/// The versions on each side of the version change nearest to the change point at `index`
/// (within `radius` windows); a change point found a window or two after a deploy still names
/// the deploy. `(None, None)` when the version did not change nearby.
fn version_change(
    tail: &[(i64, f64)],
    index: usize,
    radius: usize,
    version_at: impl Fn(i64) -> Option<String>,
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

/// Runs the detectors over `windows` (every 1-minute rollup of the touched series from their
/// history start on) for the `touched` series.
pub fn detect(
    windows: &MetricWindows,
    touched: &BTreeSet<SeriesKey>,
    marks: &(dyn Fn(&str) -> Mark + Sync),
    window_ms: i64,
    cfg: &DetectConfig,
) -> Detections {
    // Windows share their series' key (`Arc`), so each key is looked up once, not per window.
    let mut index: BTreeMap<SeriesKey, usize> = BTreeMap::new();
    let mut of_key: HashMap<*const SeriesKey, Option<usize>> = HashMap::new();
    let mut by_series: Vec<BTreeMap<i64, Window>> = Vec::new();
    for ((w, key), s) in windows {
        let i = *of_key.entry(Arc::as_ptr(key)).or_insert_with(|| {
            let series = key.without_version();
            touched.contains(&series).then(|| {
                let next = index.len();
                *index.entry(series).or_insert_with(|| {
                    by_series.push(BTreeMap::new());
                    next
                })
            })
        });
        let Some(i) = i else { continue };
        let win = by_series[i].entry(*w).or_default();
        win.sketch.merge(s);
        *win.versions.entry(key.version.clone()).or_default() += s.count();
    }
    let per_day = Detector::points_per_day(window_ms);
    // Series are independent: they are split across the cores, and the parts are joined in
    // series order, so the result is the same as one pass.
    let series: Vec<(&SeriesKey, &BTreeMap<i64, Window>)> =
        index.iter().map(|(k, &i)| (k, &by_series[i])).collect();
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(series.len().div_ceil(16))
        .max(1);
    let per_thread = series.len().div_ceil(threads).max(1);
    let parts: Vec<Detections> = std::thread::scope(|scope| {
        let handles: Vec<_> = series
            .chunks(per_thread)
            .map(|chunk| {
                scope.spawn(move || {
                    let mut out = Detections::default();
                    for (series, wins) in chunk {
                        detect_series(series, wins, marks, per_day, window_ms, cfg, &mut out);
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a detection thread panicked"))
            .collect()
    });
    let mut out = Detections::default();
    for part in parts {
        out.anomalies.extend(part.anomalies);
        out.regressions.extend(part.regressions);
        out.marks.extend(part.marks);
    }
    out
}

/// Runs the detectors over one series' windows, adding what they find to `out`.
fn detect_series(
    series: &SeriesKey,
    wins: &BTreeMap<i64, Window>,
    marks: &(dyn Fn(&str) -> Mark + Sync),
    per_day: usize,
    window_ms: i64,
    cfg: &DetectConfig,
    out: &mut Detections,
) {
    let Some(&newest) = wins.keys().next_back() else {
        return;
    };
    let closed_until = newest - cfg.lateness_windows * window_ms;
    let closed: Vec<(i64, &Window)> = wins
        .iter()
        .filter(|(w, _)| **w <= closed_until)
        .map(|(w, x)| (*w, x))
        .collect();
    if closed.is_empty() {
        return;
    }
    // p50, p95 and p99 of each closed window, in one walk over its sketch.
    let levels: Vec<Option<[f64; 3]>> = closed
        .iter()
        .map(|(_, win)| win.sketch.quantiles([0.5, 0.95, 0.99]))
        .collect();
    for (metric, q) in [("p95", 1), ("p99", 2)] {
        let key = state_key(series, metric);
        let mut mark = marks(&key);
        let mut det = Detector::new(per_day, cfg.anomaly);
        for ((w, _), x) in closed.iter().zip(&levels) {
            let Some(x) = x.map(|l| l[q]) else {
                continue;
            };
            let e = det.push(x);
            if mark.evaluated.is_some_and(|done| *w <= done) {
                continue;
            }
            if let Some(e) = e.filter(|e| e.anomalous) {
                out.anomalies.push(Anomaly {
                    series: series.clone(),
                    metric,
                    window_start: *w,
                    observed: x,
                    expected: e.expected,
                    lower: e.lower,
                    upper: e.upper,
                    score: e.score,
                    severity: e.severity(&cfg.anomaly),
                });
            }
        }
        let last = closed.last().map(|(w, _)| *w);
        if last > mark.evaluated {
            mark.evaluated = last;
            out.marks.insert(key, mark);
        }
    }
    for (metric, q) in [("p50", 0), ("p95", 1)] {
        let key = state_key(series, metric);
        let mut mark = out.marks.get(&key).copied().unwrap_or_else(|| marks(&key));
        let raw: Vec<(i64, f64)> = closed
            .iter()
            .zip(&levels)
            .filter_map(|((w, _), x)| x.map(|l| l[q]).map(|x| (*w, x)))
            .collect();
        let Some((kept, adjusted)) = deseasonalize(&raw, window_ms, cfg.change_history) else {
            continue;
        };
        let from = kept.len().saturating_sub(cfg.change_history);
        let tail = &kept[from..];
        let values = &adjusted[from..];
        let mut changed = false;
        let cps = change_points(values, &cfg.changes);
        for cp in &cps {
            if cp.index + cfg.change_settle > values.len() {
                continue;
            }
            let at = tail[cp.index].0;
            // Levels of the series with its daily shape divided out (the shape averages
            // about 1), so a change measured across different times of day is not skewed.
            let (before_level, after_level) = (cp.mean_before, cp.mean_after);
            let min_gap = cfg.change_settle as i64 * window_ms;
            if mark.last_change.is_some_and(|l| at <= l + min_gap) {
                continue;
            }
            let (before, after) = version_change(tail, cp.index, cfg.change_settle, |w| {
                wins.get(&w).and_then(Window::version)
            });
            out.regressions.push(Regression {
                series: series.clone(),
                metric,
                change_at: at,
                before: before_level,
                after: after_level,
                change_pct: if before_level == 0.0 {
                    0.0
                } else {
                    (after_level / before_level - 1.0) * 100.0
                },
                p_value: cp.pvalue,
                version_before: before,
                version_after: after,
            });
            mark.last_change = Some(at);
            changed = true;
        }
        if changed {
            out.marks.insert(key, mark);
        }
    }
}

/// The kept points of a series, (window, value), and their values with the shape divided out.
type Deseasonalized = (Vec<(i64, f64)>, Vec<f64>);

/// Divides each value by the daily shape of the series, so a daily cycle is not taken for a
/// series of changes while a change of level stays one. Shape and level are fitted together
/// (least squares in logs of a shape by time of day, a level, and the one step that fits
/// best), so a deploy inside the only full day is not learnt as part of the shape. Only times
/// of day seen on two days or more are kept (returned with their adjusted values). `None`
/// until the series has one well-covered day (90% of its windows).
fn deseasonalize(all: &[(i64, f64)], window_ms: i64, tail_len: usize) -> Option<Deseasonalized> {
    const DAY: i64 = 86_400_000;
    let per_day = (DAY / window_ms).max(1);
    let mut days: BTreeMap<i64, usize> = BTreeMap::new();
    for &(w, _) in all {
        *days.entry(w.div_euclid(DAY)).or_default() += 1;
    }
    // The daily shape needs at least one well-covered day to be estimated at all.
    if !days.values().any(|n| *n as i64 * 10 >= per_day * 9) {
        return None;
    }
    let phase_of = |w: i64| (w.rem_euclid(DAY) / window_ms) as usize;
    // A time of day seen on one day only cannot tell the shape from the level: its values
    // would echo whatever level is assumed and read as changes. Keep the times of day seen on
    // at least two days.
    let mut seen: HashMap<usize, BTreeSet<i64>> = HashMap::new();
    for &(w, _) in all {
        seen.entry(phase_of(w))
            .or_default()
            .insert(w.div_euclid(DAY));
    }
    let points: Vec<(i64, f64)> = all
        .iter()
        .copied()
        .filter(|(w, _)| seen.get(&phase_of(*w)).is_some_and(|d| d.len() >= 2))
        .collect();
    let n = points.len();
    if n == 0 {
        return None;
    }
    // Multiplicative (in logs) for positive series, additive otherwise.
    let positive = points.iter().all(|p| p.1 > 0.0);
    let v: Vec<f64> = points
        .iter()
        .map(|p| if positive { p.1.ln() } else { p.1 })
        .collect();
    let phase: Vec<usize> = points.iter().map(|p| phase_of(p.0)).collect();
    let phases = per_day as usize;
    // For a step at `cut`, least squares of v = shape[phase] + level + step·[i ≥ cut] by
    // alternating updates (the problem is convex, so they reach its optimum), on sums per time
    // of day and side of the cut: (sum, count) before, (sum, count) after.
    let total_sq: f64 = v.iter().map(|x| x * x).sum();
    let fit = |stats: &[(f64, f64, f64, f64)]| -> (Vec<f64>, f64) {
        let mut shape = vec![0.0f64; phases];
        let (mut before, mut after) = (0.0f64, 0.0f64);
        let (nb, na): (f64, f64) = stats
            .iter()
            .fold((0.0, 0.0), |(x, y), s| (x + s.1, y + s.3));
        for _ in 0..12 {
            for (p, (sb, cb, sa, ca)) in stats.iter().enumerate() {
                if cb + ca > 0.0 {
                    shape[p] = (sb + sa - before * cb - after * ca) / (cb + ca);
                }
            }
            let (mut rb, mut ra) = (0.0f64, 0.0f64);
            for (p, (sb, cb, sa, ca)) in stats.iter().enumerate() {
                rb += sb - shape[p] * cb;
                ra += sa - shape[p] * ca;
            }
            before = if nb > 0.0 { rb / nb } else { 0.0 };
            after = if na > 0.0 { ra / na } else { before };
        }
        let mut sse = total_sq;
        for (p, (sb, cb, sa, ca)) in stats.iter().enumerate() {
            let (lb, la) = (shape[p] + before, shape[p] + after);
            sse += -2.0 * (lb * sb + la * sa) + lb * lb * cb + la * la * ca;
        }
        (shape, sse)
    };
    // Everything before the cut at first; the cut then moves forward point by point.
    let mut stats = vec![(0.0f64, 0.0f64, 0.0f64, 0.0f64); phases];
    for (x, p) in v.iter().zip(&phase) {
        stats[*p].0 += x;
        stats[*p].1 += 1.0;
    }
    // The step that explains the series best, searched at every point of the tail where
    // change points are looked for (each fit costs a few passes over the times of day).
    let from = n.saturating_sub(tail_len);
    let edge = 6.min(n / 4);
    let lo = from.max(edge);
    let hi = n.saturating_sub(edge);
    let mut best = fit(&stats);
    let mut moved = n;
    for c in (lo..hi).rev() {
        while moved > c {
            moved -= 1;
            let s = &mut stats[phase[moved]];
            s.0 -= v[moved];
            s.1 -= 1.0;
            s.2 += v[moved];
            s.3 += 1.0;
        }
        let f = fit(&stats);
        if f.1 < best.1 - 1e-12 {
            best = f;
        }
    }
    let shape = best.0;
    let centre = shape.iter().sum::<f64>() / shape.len().max(1) as f64;
    let adjusted = points
        .iter()
        .zip(&phase)
        .map(|(p, ph)| {
            let s = shape[*ph] - centre;
            if positive {
                p.1 / s.exp()
            } else {
                p.1 - s
            }
        })
        .collect();
    Some((points, adjusted))
}

/// The series of a service's log error rate, as recorded in `anomalies`.
pub fn error_rate_series(service: &str) -> SeriesKey {
    SeriesKey {
        service: service.to_string(),
        name: "logs".into(),
        version: None,
        labels: Vec::new(),
    }
}

/// Error rates move by less than this (absolute) are not anomalies, however unusual: one
/// error among a few quiet windows is not an incident.
const MIN_ERROR_RATE_CHANGE: f64 = 0.01;

/// History start of a service's error-rate detection, as [`history_start`].
pub fn error_rate_history_start(
    service: &str,
    marks: &dyn Fn(&str) -> Mark,
    cfg: &DetectConfig,
) -> Option<i64> {
    marks(&state_key(&error_rate_series(service), "error_rate"))
        .evaluated
        .map(|e| e - cfg.lookback_ms)
}

/// Anomalies of the per-window error rate of the `touched` services' logs.
pub fn detect_error_rates(
    windows: &LogWindows,
    touched: &BTreeSet<String>,
    marks: &dyn Fn(&str) -> Mark,
    window_ms: i64,
    cfg: &DetectConfig,
) -> Detections {
    let mut by_service: BTreeMap<&str, BTreeMap<i64, f64>> = BTreeMap::new();
    for ((w, service), agg) in windows {
        if touched.contains(service) && agg.count() > 0 {
            by_service
                .entry(service.as_str())
                .or_default()
                .insert(*w, agg.errors() as f64 / agg.count() as f64);
        }
    }
    let mut out = Detections::default();
    for (service, rates) in by_service {
        let Some(&newest) = rates.keys().next_back() else {
            continue;
        };
        let closed_until = newest - cfg.lateness_windows * window_ms;
        let series = error_rate_series(service);
        let key = state_key(&series, "error_rate");
        let mut mark = marks(&key);
        // A falling error rate is good news, never an anomaly.
        let mut det = Detector::new(Detector::points_per_day(window_ms), cfg.anomaly)
            .with_direction(Direction::Up);
        let mut last = None;
        for (&w, &x) in rates.range(..=closed_until) {
            let e = det.push(x);
            last = Some(w);
            if mark.evaluated.is_some_and(|done| w <= done) {
                continue;
            }
            if let Some(e) =
                e.filter(|e| e.anomalous && (x - e.expected).abs() >= MIN_ERROR_RATE_CHANGE)
            {
                out.anomalies.push(Anomaly {
                    series: series.clone(),
                    metric: "error_rate",
                    window_start: w,
                    observed: x,
                    expected: e.expected,
                    lower: e.lower.max(0.0),
                    upper: e.upper.min(1.0),
                    score: e.score,
                    severity: e.severity(&cfg.anomaly),
                });
            }
        }
        if last > mark.evaluated {
            mark.evaluated = last;
            out.marks.insert(key, mark);
        }
    }
    out
}

/// Rows of the `anomalies` table.
///
/// # Errors
/// When Arrow refuses the arrays (a bug).
pub fn anomaly_batch(rows: &[Anomaly], detected_at: i64) -> Result<RecordBatch, ArrowError> {
    let n = rows.len();
    let (mut at, mut ws) = (ts_builder(n), ts_builder(n));
    let (mut service, mut name, mut metric, mut sev, mut method) = (
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
    );
    let mut labels = labels_builder();
    let mut f: Vec<Float64Builder> = (0..5).map(|_| Float64Builder::with_capacity(n)).collect();
    for a in rows {
        at.append_value(detected_at);
        service.append_value(&a.series.service);
        name.append_value(&a.series.name);
        append_labels(&mut labels, &a.series.labels)?;
        metric.append_value(a.metric);
        ws.append_value(a.window_start);
        for (b, v) in f
            .iter_mut()
            .zip([a.observed, a.expected, a.lower, a.upper, a.score])
        {
            b.append_value(v);
        }
        sev.append_value(a.severity);
        method.append_value(METHOD);
    }
    let mut cols: Vec<ArrayRef> = vec![
        Arc::new(at.finish()),
        Arc::new(service.finish()),
        Arc::new(name.finish()),
        Arc::new(labels.finish()),
        Arc::new(metric.finish()),
        Arc::new(ws.finish()),
    ];
    for mut b in f {
        cols.push(Arc::new(b.finish()));
    }
    cols.push(Arc::new(sev.finish()));
    cols.push(Arc::new(method.finish()));
    RecordBatch::try_new(tables::anomalies(), cols)
}

/// Rows of the `regressions` table.
///
/// # Errors
/// When Arrow refuses the arrays (a bug).
pub fn regression_batch(rows: &[Regression], detected_at: i64) -> Result<RecordBatch, ArrowError> {
    let n = rows.len();
    let (mut at, mut change) = (ts_builder(n), ts_builder(n));
    let (mut service, mut name, mut metric, mut vb, mut va) = (
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
    );
    let mut labels = labels_builder();
    let mut f: Vec<Float64Builder> = (0..4).map(|_| Float64Builder::with_capacity(n)).collect();
    for r in rows {
        at.append_value(detected_at);
        service.append_value(&r.series.service);
        name.append_value(&r.series.name);
        append_labels(&mut labels, &r.series.labels)?;
        metric.append_value(r.metric);
        change.append_value(r.change_at);
        for (b, v) in f
            .iter_mut()
            .zip([r.before, r.after, r.change_pct, r.p_value])
        {
            b.append_value(v);
        }
        vb.append_option(r.version_before.as_deref());
        va.append_option(r.version_after.as_deref());
    }
    let mut cols: Vec<ArrayRef> = vec![
        Arc::new(at.finish()),
        Arc::new(service.finish()),
        Arc::new(name.finish()),
        Arc::new(labels.finish()),
        Arc::new(metric.finish()),
        Arc::new(change.finish()),
    ];
    for mut b in f {
        cols.push(Arc::new(b.finish()));
    }
    cols.push(Arc::new(vb.finish()));
    cols.push(Arc::new(va.finish()));
    RecordBatch::try_new(tables::regressions(), cols)
}
