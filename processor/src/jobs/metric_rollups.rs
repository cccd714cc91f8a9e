//! The metric rollups job: folds the raw metric files that ingest committed since its progress
//! into `metric_rollups_1m` and `metric_rollups_1h`, hour by hour, then runs the anomaly and
//! regression detectors over the series it changed.
//!
//! **Late data** lands in the raw partition of its event hour; the commit that adds it makes
//! that hour dirty, and the next cycle updates exactly the windows the late rows fall in.
//!
//! **Cost follows new data**: a cycle reads the new raw files and the rollup files of the
//! hours they touch (a few hundred rows per series and hour), never the rest of the lake. When
//! compaction has already replaced a new file (the processor was down for long), that hour is
//! recomputed from all of its raw files instead, which gives the same rows.

use std::time::Instant;

use opslake_lake::layout::HOUR_MS;
use opslake_lake::AddFile;
use tracing::debug;

use super::detections::{count_detections, detect};
use super::hours::{
    count_rollup_rows, raw_files, stored, HourPlan, HourRollups, RollupPlan, FILES_READ, HOURS,
};
use crate::detect::config::DetectConfig;
use crate::error::ProcessError;
use crate::job::{Cycle, CycleReport, Job, Progress, Work};
use crate::metrics::METRICS;
use crate::read::{fold_metric_files, read_batches, HOURS_FOLDED_TOGETHER};
use crate::rollup::{
    coarsen, load_metric_rollups, merge_windows, metric_rollup_batch, MetricWindows,
    SeriesInterner, METRIC_ROLLUPS_1H, METRIC_ROLLUPS_1M,
};

/// State key of the job's progress (named before the processor had other jobs).
pub const PROGRESS_KEY: &str = "processor.rollups";

/// The raw tables the job folds: samples, and OpenTelemetry histogram points of the same series.
const RAW: &[&str] = &["metrics", "metric_histograms"];

/// Metric rollups, anomalies and regressions of metric series.
#[derive(Debug, Clone, Default)]
pub struct MetricRollups {
    /// How the job detects anomalies and regressions.
    pub detect: DetectConfig,
}

/// The table name of a rollup file's table as a count name.
fn rollup_table(table: &str) -> &'static str {
    if table == METRIC_ROLLUPS_1H {
        METRIC_ROLLUPS_1H
    } else {
        METRIC_ROLLUPS_1M
    }
}

/// One hour's rollups, rewritten.
struct HourDone {
    add: Vec<AddFile>,
    remove: Vec<String>,
    rows: u64,
    rollups: HourRollups,
}

impl Job for MetricRollups {
    type Plan = RollupPlan;

    fn name(&self) -> &'static str {
        "metrics"
    }

    fn progress_key(&self) -> &'static str {
        PROGRESS_KEY
    }

    async fn plan(&self, cx: &Cycle<'_>) -> Result<Option<RollupPlan>, ProcessError> {
        let plan = RollupPlan::since(cx, RAW, PROGRESS_KEY).await?;
        match &plan {
            Some(p) => {
                let behind = cx.snap.version - p.changes.prev.version.min(cx.snap.version);
                METRICS.lag_versions.set(behind as i64);
            }
            None => {
                METRICS.lag_versions.set(0);
                if cx.state::<Progress>(PROGRESS_KEY).version == cx.snap.version {
                    METRICS.lag_seconds.set(0);
                }
            }
        }
        Ok(plan)
    }

    async fn run(&self, cx: &Cycle<'_>, plan: &RollupPlan) -> Result<Work, ProcessError> {
        let started = Instant::now();
        let mut work = Work {
            remove: plan.rebuilt(cx, &[METRIC_ROLLUPS_1M, METRIC_ROLLUPS_1H]),
            ..Work::default()
        };
        let mut updated = Vec::new();
        let hours: Vec<_> = plan.hours.iter().collect();
        for chunk in hours.chunks(HOURS_FOLDED_TOGETHER) {
            cx.stopping()?;
            // The raw files of these hours, folded together on every core.
            let raw: Vec<Vec<String>> = chunk
                .iter()
                .map(|((date, hour), hp)| raw_files(cx.snap, RAW, (date, *hour), hp))
                .collect();
            let folded = fold_metric_files(cx.lake, &raw, plan.window_ms).await?;
            debug!(
                files = raw.iter().map(Vec::len).sum::<usize>(),
                ms = started.elapsed().as_millis() as u64,
                "raw metric files folded"
            );
            // The hours of the chunk at once: their CPU work runs on blocking threads.
            let hours =
                chunk
                    .iter()
                    .zip(folded)
                    .zip(&raw)
                    .map(|((((date, hour), hp), folded), raw)| {
                        METRICS
                            .files_processed
                            .with_label_values(&["metrics", mode(hp)])
                            .inc_by(raw.len() as u64);
                        rewrite_hour(cx, plan, (date, *hour), hp, folded)
                    });
            for (done, (_, hp)) in futures::future::try_join_all(hours)
                .await?
                .into_iter()
                .zip(chunk)
            {
                work.report.add(FILES_READ, hp.new.len() as u64);
                work.report.add(HOURS, 1);
                for f in &done.add {
                    work.report.add(rollup_table(&f.table), f.rows);
                }
                work.add.extend(done.add);
                work.remove.extend(done.remove);
                updated.push(done.rollups);
            }
        }
        debug!(
            ms = started.elapsed().as_millis() as u64,
            "metric rollups built"
        );
        cx.stopping()?;
        detect(cx, &self.detect, updated, plan.window_ms)
            .await?
            .record(&mut work);
        work.set_state(PROGRESS_KEY, &plan.changes.next(cx.snap, plan.window_ms));
        Ok(work)
    }

    fn committed(&self, plan: &RollupPlan, report: &CycleReport) {
        count_rollup_rows(report, &[METRIC_ROLLUPS_1M, METRIC_ROLLUPS_1H]);
        count_detections(report);
        if plan.changes.newest_commit_ms > 0 {
            let lag = chrono::Utc::now().timestamp_millis() - plan.changes.newest_commit_ms;
            METRICS.lag_seconds.set(lag.max(0) / 1000);
        }
        METRICS.lag_versions.set(0);
    }
}

/// `recompute` or `incremental`, for `/metrics`.
pub(crate) fn mode(plan: &HourPlan) -> &'static str {
    if plan.recompute {
        "recompute"
    } else {
        "incremental"
    }
}

/// The hour's stored minute rollups (unless it is rebuilt) merged with the `folded` raw rows,
/// written as new minute and hour rollup files that replace the stored ones.
async fn rewrite_hour(
    cx: &Cycle<'_>,
    plan: &RollupPlan,
    (date, hour): (&str, u32),
    hp: &HourPlan,
    folded: MetricWindows,
) -> Result<HourDone, ProcessError> {
    let old_1m = stored(cx.snap, METRIC_ROLLUPS_1M, date, hour);
    let old_1h = stored(cx.snap, METRIC_ROLLUPS_1H, date, hour);
    let mut base = Vec::new();
    if !(hp.recompute || plan.changes.starts_from_scratch()) {
        for p in &old_1m {
            base.push((p.clone(), read_batches(cx.lake, p).await?));
        }
    }
    let window_ms = plan.window_ms;
    // Merging, the hourly rollups and their rows are CPU work: on a blocking thread, so that
    // the hours of a chunk build theirs on every core.
    let (windows, batches) = tokio::task::spawn_blocking(move || {
        let mut interner = SeriesInterner::default();
        let mut windows = MetricWindows::default();
        for (path, batches) in &base {
            for b in batches {
                load_metric_rollups(b, &mut interner, &mut windows).map_err(|source| {
                    ProcessError::Rows {
                        path: path.clone(),
                        source,
                    }
                })?;
            }
        }
        merge_windows(&mut windows, folded);
        let hourly = coarsen(&windows, HOUR_MS);
        let batches = [
            (METRIC_ROLLUPS_1M, metric_rollup_batch(&windows, window_ms)?),
            (METRIC_ROLLUPS_1H, metric_rollup_batch(&hourly, HOUR_MS)?),
        ];
        Ok::<_, ProcessError>((windows, batches))
    })
    .await??;
    let mut done = HourDone {
        add: Vec::new(),
        remove: old_1m.into_iter().chain(old_1h).collect(),
        rows: 0,
        rollups: HourRollups {
            date: date.to_string(),
            hour,
            metrics: windows,
            ..HourRollups::default()
        },
    };
    for (table, batch) in batches {
        done.rows += batch.num_rows() as u64;
        done.add
            .push(cx.write_hour(table, date, hour, batch).await?);
    }
    Ok(done)
}
