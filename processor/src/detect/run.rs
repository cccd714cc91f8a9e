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

use super::anomaly::{AnomalyConfig, Detector, METHOD};
use super::changepoint::{change_points, ChangePointConfig};
use crate::rollup::{
    append_labels, labels_builder, ts_builder, LogWindows, MetricWindows, SeriesKey,
};
use crate::sketch::DDSketch;

/// Settings of detection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectConfig {
    pub anomaly: AnomalyConfig,
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
    pub series: SeriesKey,
    pub metric: &'static str,
    pub window_start: i64,
    pub observed: f64,
    pub expected: f64,
    pub lower: f64,
    pub upper: f64,
    pub score: f64,
    pub severity: &'static str,
}

/// A change point found.
#[derive(Debug, Clone, PartialEq)]
pub struct Regression {
    pub series: SeriesKey,
    pub metric: &'static str,
    pub change_at: i64,
    pub before: f64,
    pub after: f64,
    pub change_pct: f64,
    pub p_value: f64,
    pub version_before: Option<String>,
    pub version_after: Option<String>,
}

/// What detection found, and the marks to record.
#[derive(Debug, Default)]
pub struct Detections {
    pub anomalies: Vec<Anomaly>,
    pub regressions: Vec<Regression>,
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

/// Runs the detectors over `windows` (every 1-minute rollup of the touched series from their
/// history start on) for the `touched` series.
pub fn detect(
    windows: &MetricWindows,
    touched: &BTreeSet<SeriesKey>,
    marks: &dyn Fn(&str) -> Mark,
    window_ms: i64,
    cfg: &DetectConfig,
) -> Detections {
    let mut by_series: BTreeMap<SeriesKey, BTreeMap<i64, Window>> = BTreeMap::new();
    for ((w, key), s) in windows {
        let series = key.without_version();
        if !touched.contains(&series) {
            continue;
        }
        let win = by_series.entry(series).or_default().entry(*w).or_default();
        win.sketch.merge(s);
        *win.versions.entry(key.version.clone()).or_default() += s.count();
    }
    let mut out = Detections::default();
    let per_day = Detector::points_per_day(window_ms);
    for (series, wins) in &by_series {
        let Some(&newest) = wins.keys().next_back() else {
            continue;
        };
        let closed_until = newest - cfg.lateness_windows * window_ms;
        let closed: Vec<(i64, &Window)> = wins
            .iter()
            .filter(|(w, _)| **w <= closed_until)
            .map(|(w, x)| (*w, x))
            .collect();
        if closed.is_empty() {
            continue;
        }
        for (metric, q) in [("p95", 0.95), ("p99", 0.99)] {
            let key = state_key(series, metric);
            let mut mark = marks(&key);
            let mut det = Detector::new(per_day, cfg.anomaly);
            for (w, win) in &closed {
                let Some(x) = win.sketch.quantile(q) else {
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
        for (metric, q) in [("p50", 0.5), ("p95", 0.95)] {
            let key = state_key(series, metric);
            let mut mark = out.marks.get(&key).copied().unwrap_or_else(|| marks(&key));
            let raw: Vec<(i64, f64)> = closed
                .iter()
                .filter_map(|(w, win)| win.sketch.quantile(q).map(|x| (*w, x)))
                .collect();
            let Some(adjusted) = deseasonalize(&raw, window_ms) else {
                continue;
            };
            let from = raw.len().saturating_sub(cfg.change_history);
            let tail = &raw[from..];
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
                let version_at = |w: i64| wins.get(&w).and_then(Window::version);
                let before = tail[cp.index.saturating_sub(3)..cp.index]
                    .iter()
                    .rev()
                    .find_map(|(w, _)| version_at(*w));
                let after = tail[cp.index..(cp.index + 3).min(tail.len())]
                    .iter()
                    .find_map(|(w, _)| version_at(*w));
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
                    version_before: before.clone().filter(|b| Some(b) != after.as_ref()),
                    version_after: after.clone().filter(|a| Some(a) != before.as_ref()),
                });
                mark.last_change = Some(at);
                changed = true;
            }
            if changed {
                out.marks.insert(key, mark);
            }
        }
    }
    out
}

/// Divides each value by the daily shape of the series (median over days of value / that
/// day's mean, by time of day), so a daily cycle is not taken for a series of changes while a
/// change of level stays one. `None` until the series has one well-covered day (90% of its
/// windows) and every point has a shape: before that a cycle cannot be told from a change.
fn deseasonalize(points: &[(i64, f64)], window_ms: i64) -> Option<Vec<f64>> {
    const DAY: i64 = 86_400_000;
    let per_day = (DAY / window_ms).max(1);
    let mut days: BTreeMap<i64, Vec<(i64, f64)>> = BTreeMap::new();
    for &(w, x) in points {
        days.entry(w.div_euclid(DAY))
            .or_default()
            .push(((w.rem_euclid(DAY)) / window_ms, x));
    }
    let mut by_phase: HashMap<i64, Vec<f64>> = HashMap::new();
    for pts in days.values().filter(|p| p.len() as i64 * 10 >= per_day * 9) {
        let mean = pts.iter().map(|p| p.1).sum::<f64>() / pts.len() as f64;
        if mean.abs() < 1e-12 {
            continue;
        }
        for (phase, x) in pts {
            by_phase.entry(*phase).or_default().push(x / mean);
        }
    }
    if by_phase.is_empty() {
        return None;
    }
    let shape: HashMap<i64, f64> = by_phase
        .into_iter()
        .map(|(ph, mut v)| {
            v.sort_by(f64::total_cmp);
            (ph, v[v.len() / 2])
        })
        .collect();
    points
        .iter()
        .map(
            |&(w, x)| match shape.get(&(w.rem_euclid(DAY) / window_ms)) {
                Some(s) if s.abs() > 1e-12 => Some(x / s),
                _ => None,
            },
        )
        .collect()
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
        let mut det = Detector::new(Detector::points_per_day(window_ms), cfg.anomaly);
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
