//! Detection within a processing cycle: the series whose rollups the cycle changed, with the
//! history their detectors need read back from the lake, and the detections written as files.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use opslake_lake::layout::hour_of;
use opslake_lake::{AddFile, Snapshot};

use crate::detect::run::{
    anomaly_batch, detect, detect_error_rates, error_rate_history_start, history_start,
    regression_batch, Mark,
};
use crate::error::ProcessError;
use crate::read::read_batches;
use crate::rollup::{
    load_log_rollups, load_metric_rollups, LogWindows, MetricWindows, SeriesInterner, SeriesKey,
};
use crate::runner::{HourRollups, Processor};
use crate::stream::{LOG_ROLLUPS_1M, METRIC_ROLLUPS_1M};

const HOUR_MS: i64 = 3_600_000;

impl Processor {
    /// Runs the detectors over the series whose rollups this cycle changed; returns the files of
    /// the detections, the marks to record and (anomalies, regressions).
    pub(crate) async fn detect(
        &self,
        snap: &Snapshot,
        updated: Vec<HourRollups>,
        window_ms: i64,
    ) -> Result<(Vec<AddFile>, BTreeMap<String, Mark>, (u64, u64)), ProcessError> {
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
            return Ok((Vec::new(), BTreeMap::new(), (0, 0)));
        }
        let state = Arc::clone(&snap.state);
        let marks = move |k: &str| -> Mark {
            state
                .get(k)
                .and_then(|v| serde_json::from_value(v.clone()).ok())
                .unwrap_or_default()
        };
        let cfg = self.detect_config;
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
                let m =
                    (!h.metrics.is_empty()).then(|| (METRIC_ROLLUPS_1M, h.date.clone(), h.hour));
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
        let history = snap
            .table_files(METRIC_ROLLUPS_1M)
            .filter(|_| !touched.is_empty())
            .chain(
                snap.table_files(LOG_ROLLUPS_1M)
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
                let hour_start = chrono::NaiveDate::parse_from_str(&date, "%Y-%m-%d")
                    .ok()
                    .and_then(|d| d.and_hms_opt(hour, 0, 0))
                    .map(|t| t.and_utc().timestamp_millis());
                if hour_start.is_some_and(|h| h + HOUR_MS <= start) {
                    continue;
                }
            }
            for b in read_batches(&self.lake, &f.path).await? {
                let loaded = if f.table == LOG_ROLLUPS_1M {
                    load_log_rollups(&b, &mut log_windows)
                } else {
                    load_metric_rollups(&b, &mut interner, &mut windows)
                };
                loaded.map_err(|source| ProcessError::Rows {
                    path: f.path.clone(),
                    source,
                })?;
            }
        }
        let found = tokio::task::spawn_blocking(move || {
            let mut found = detect(&windows, &touched, &marks, window_ms, &cfg);
            let rates =
                detect_error_rates(&log_windows, &touched_services, &marks, window_ms, &cfg);
            found.anomalies.extend(rates.anomalies);
            found.marks.extend(rates.marks);
            found
        })
        .await?;
        let now = chrono::Utc::now().timestamp_millis();
        let mut files = Vec::new();
        let counts = (found.anomalies.len() as u64, found.regressions.len() as u64);
        if !found.anomalies.is_empty() {
            let batch = anomaly_batch(&found.anomalies, now)?;
            files.push(self.write_flat("anomalies", batch).await?);
        }
        if !found.regressions.is_empty() {
            let batch = regression_batch(&found.regressions, now)?;
            files.push(self.write_flat("regressions", batch).await?);
        }
        Ok((files, found.marks, counts))
    }
}
