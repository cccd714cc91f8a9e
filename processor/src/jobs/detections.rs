//! Detection within a processing cycle: the series whose rollups the cycle changed, with the
//! history their detectors need read back from the lake, and the detections written as files.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use opslake_lake::layout::{hour_of, hour_start_ms, HOUR_MS};
use opslake_lake::AddFile;

use super::hours::HourRollups;
use crate::detect::config::{DetectConfig, Mark};
use crate::detect::error_rate::{detect_error_rates, error_rate_history_start};
use crate::detect::found::{anomaly_batch, regression_batch};
use crate::detect::run::{detect as detect_windows, history_start};
use crate::error::ProcessError;
use crate::job::{Cycle, Work};
use crate::read::load_file;
use crate::rollup::{
    load_log_rollups, load_metric_rollups, LogWindows, MetricWindows, SeriesInterner, SeriesKey,
    LOG_ROLLUPS_1M, METRIC_ROLLUPS_1M,
};

/// What the detectors found in a cycle, written and ready to record.
#[derive(Debug, Default)]
pub(crate) struct Detections {
    files: Vec<AddFile>,
    marks: BTreeMap<String, Mark>,
    anomalies: u64,
    regressions: u64,
}

impl Detections {
    /// Adds the detections' files, marks and counts to a job's work.
    pub(crate) fn record(self, work: &mut Work) {
        work.add.extend(self.files);
        for (key, mark) in self.marks {
            work.set_state(key, &mark);
        }
        work.report.add(ANOMALIES, self.anomalies);
        work.report.add(REGRESSIONS, self.regressions);
    }
}

/// The count of anomalies a cycle recorded (see [`crate::job::CycleReport::count`]).
pub const ANOMALIES: &str = "anomalies";
/// The count of change points a cycle recorded.
pub const REGRESSIONS: &str = "regressions";

/// Counts a committed cycle's detections in `/metrics`.
pub(crate) fn count_detections(report: &crate::job::CycleReport) {
    use crate::metrics::METRICS;
    for (kind, name) in [("anomaly", ANOMALIES), ("regression", REGRESSIONS)] {
        METRICS
            .detections
            .with_label_values(&[kind])
            .inc_by(report.count(name));
    }
}

/// Runs the detectors (settings `cfg`) over the series whose rollups this cycle changed
/// (`updated`).
pub(crate) async fn detect(
    cx: &Cycle<'_>,
    cfg: &DetectConfig,
    updated: Vec<HourRollups>,
    window_ms: i64,
) -> Result<Detections, ProcessError> {
    // Windows share their series' key: each distinct key once (by address).
    let touched: BTreeSet<SeriesKey> = updated
        .iter()
        .flat_map(|h| h.metrics.keys().map(|(_, k)| (Arc::as_ptr(k) as usize, k)))
        .collect::<HashMap<usize, &Arc<SeriesKey>>>()
        .values()
        .map(|k| k.without_version())
        .collect();
    let touched_services: BTreeSet<String> = updated
        .iter()
        .flat_map(|h| h.logs.keys().map(|(_, s)| s.clone()))
        .collect();
    if touched.is_empty() && touched_services.is_empty() {
        return Ok(Detections::default());
    }
    let state = Arc::clone(&cx.snap.state);
    let marks = move |k: &str| -> Mark {
        state
            .get(k)
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default()
    };
    let cfg = cfg.clone();
    let start = touched
        .iter()
        .map(|s| history_start(s, &marks, &cfg))
        .chain(
            touched_services
                .iter()
                .map(|s| error_rate_history_start(s, &marks, &cfg)),
        )
        .min()
        .flatten();
    // Hours whose rollups this cycle rewrote are taken from memory, per table.
    let fresh: BTreeSet<(&'static str, String, u32)> = updated
        .iter()
        .flat_map(|h| {
            let m = (!h.metrics.is_empty()).then(|| (METRIC_ROLLUPS_1M, h.date.clone(), h.hour));
            let l = (!h.logs.is_empty()).then(|| (LOG_ROLLUPS_1M, h.date.clone(), h.hour));
            m.into_iter().chain(l)
        })
        .collect();
    let mut windows = MetricWindows::default();
    let mut log_windows = LogWindows::new();
    for h in updated {
        windows.extend(h.metrics);
        log_windows.extend(h.logs);
    }
    let mut interner = SeriesInterner::default();
    let history = cx
        .snap
        .table_files(METRIC_ROLLUPS_1M)
        .filter(|_| !touched.is_empty())
        .chain(
            cx.snap
                .table_files(LOG_ROLLUPS_1M)
                .filter(|_| !touched_services.is_empty()),
        );
    for f in history {
        let Some((date, hour)) = hour_of(&f.path) else {
            continue;
        };
        let table: &'static str = if f.table == LOG_ROLLUPS_1M {
            LOG_ROLLUPS_1M
        } else {
            METRIC_ROLLUPS_1M
        };
        if fresh.contains(&(table, date.clone(), hour)) {
            continue;
        }
        if let Some(start) = start {
            if hour_start_ms(&date, hour).is_some_and(|h| h + HOUR_MS <= start) {
                continue;
            }
        }
        if table == LOG_ROLLUPS_1M {
            load_file(cx.lake, &f.path, |b| load_log_rollups(b, &mut log_windows)).await?;
        } else {
            load_file(cx.lake, &f.path, |b| {
                load_metric_rollups(b, &mut interner, &mut windows)
            })
            .await?;
        }
    }
    let found = tokio::task::spawn_blocking(move || {
        let mut found = detect_windows(&windows, &touched, &marks, window_ms, &cfg);
        let rates = detect_error_rates(&log_windows, &touched_services, &marks, window_ms, &cfg);
        found.anomalies.extend(rates.anomalies);
        found.marks.extend(rates.marks);
        found
    })
    .await?;
    let now = chrono::Utc::now().timestamp_millis();
    let mut out = Detections {
        files: Vec::new(),
        anomalies: found.anomalies.len() as u64,
        regressions: found.regressions.len() as u64,
        marks: found.marks,
    };
    if !found.anomalies.is_empty() {
        let batch = anomaly_batch(&found.anomalies, now)?;
        out.files.push(cx.write_flat("anomalies", batch).await?);
    }
    if !found.regressions.is_empty() {
        let batch = regression_batch(&found.regressions, now)?;
        out.files.push(cx.write_flat("regressions", batch).await?);
    }
    Ok(out)
}
