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

use opslake_sketch::DDSketch;

use super::anomaly::{Detector, METHOD};
use super::config::{state_key, DetectConfig, Mark};
use super::found::{Anomaly, Detections};
use super::regressions::Search;
use crate::rollup::{MetricWindows, SeriesKey};

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

/// The first window that detection of `series` still needs, given the recorded marks:
/// history starts `lookback` before the last window its anomaly detectors judged (the change-
/// point search needs less: its last `change_history` points). `None`: the whole history.
pub fn history_start(
    series: &SeriesKey,
    marks: &dyn Fn(&str) -> Mark,
    cfg: &DetectConfig,
) -> Option<i64> {
    // Only the anomaly detectors' marks say how far they judged (a `p50` mark never does: it
    // would make every cycle read the whole history).
    ["p95", "p99"]
        .iter()
        .map(|m| marks(&state_key(series, m)).evaluated)
        .min()
        .flatten()
        .map(|e| e - cfg.lookback_ms)
}

/// Runs the detectors over `windows` (every rollup window of the touched series from their
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
    let direction = cfg.directions.of(&series.name);
    for (metric, q) in [("p95", 1), ("p99", 2)] {
        let key = state_key(series, metric);
        let mut mark = marks(&key);
        let mut det = Detector::new(per_day, cfg.anomaly).with_direction(direction);
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
                    method: METHOD,
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
        let points: Vec<(i64, f64)> = closed
            .iter()
            .zip(&levels)
            .filter_map(|((w, _), x)| x.map(|l| l[q]).map(|x| (*w, x)))
            .collect();
        let search = Search {
            series,
            metric,
            points: &points,
            window_ms,
        };
        let version_at = |w: i64| wins.get(&w).and_then(Window::version);
        if search.run(cfg, &mut mark, &version_at, &mut out.regressions) {
            out.marks.insert(key, mark);
        }
    }
}
