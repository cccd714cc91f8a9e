//! The log rollups job: folds the raw log files that ingest committed since its progress into
//! `log_rollups_1m`, hour by hour (late data and compaction as for metric rollups), then looks
//! for error-rate anomalies in the services it changed.

use opslake_lake::AddFile;

use super::detections::{count_detections, detect};
use super::hours::{
    count_rollup_rows, raw_files, stored, HourPlan, HourRollups, RollupPlan, FILES_READ, HOURS,
};
use super::metric_rollups::mode;
use crate::detect::config::DetectConfig;
use crate::error::ProcessError;
use crate::job::{Cycle, CycleReport, Job, Work};
use crate::metrics::METRICS;
use crate::read::{load_file, HOURS_FOLDED_TOGETHER};
use crate::rollup::{fold_logs, load_log_rollups, log_rollup_batch, LogWindows, LOG_ROLLUPS_1M};

/// State key of the job's progress.
pub const PROGRESS_KEY: &str = "processor.logs";

/// The raw table the job folds.
const RAW: &str = "logs";

/// Log rollups and error-rate anomalies.
#[derive(Debug, Clone, Default)]
pub struct LogRollups {
    /// How the job detects error-rate anomalies.
    pub detect: DetectConfig,
}

impl Job for LogRollups {
    type Plan = RollupPlan;

    fn name(&self) -> &'static str {
        "logs"
    }

    fn progress_key(&self) -> &'static str {
        PROGRESS_KEY
    }

    async fn plan(&self, cx: &Cycle<'_>) -> Result<Option<RollupPlan>, ProcessError> {
        RollupPlan::since(cx, &[RAW], PROGRESS_KEY).await
    }

    fn committed(&self, _plan: &RollupPlan, report: &CycleReport) {
        count_rollup_rows(report, &[LOG_ROLLUPS_1M]);
        count_detections(report);
    }

    async fn run(&self, cx: &Cycle<'_>, plan: &RollupPlan) -> Result<Work, ProcessError> {
        let mut work = Work {
            remove: plan.rebuilt(cx, &[LOG_ROLLUPS_1M]),
            ..Work::default()
        };
        let mut updated = Vec::new();
        let hours: Vec<_> = plan.hours.iter().collect();
        for chunk in hours.chunks(HOURS_FOLDED_TOGETHER) {
            cx.stopping()?;
            let rewrites = chunk
                .iter()
                .map(|((date, hour), hp)| rewrite_hour(cx, plan, (date, *hour), hp));
            for (done, (_, hp)) in futures::future::try_join_all(rewrites)
                .await?
                .into_iter()
                .zip(chunk)
            {
                let (file, remove, rollups) = done;
                work.report.add(FILES_READ, hp.new.len() as u64);
                work.report.add(HOURS, 1);
                work.report.add(LOG_ROLLUPS_1M, file.rows);
                work.add.push(file);
                work.remove.extend(remove);
                updated.push(rollups);
            }
        }
        cx.stopping()?;
        detect(cx, &self.detect, updated, plan.window_ms)
            .await?
            .record(&mut work);
        work.set_state(PROGRESS_KEY, &plan.changes.next(cx.snap, plan.window_ms));
        Ok(work)
    }
}

/// The hour's stored rollups (unless it is rebuilt or recomputed) with its raw rows folded in,
/// written as a new file that replaces the stored ones.
async fn rewrite_hour(
    cx: &Cycle<'_>,
    plan: &RollupPlan,
    (date, hour): (&str, u32),
    hp: &HourPlan,
) -> Result<(AddFile, Vec<String>, HourRollups), ProcessError> {
    let old = stored(cx.snap, LOG_ROLLUPS_1M, date, hour);
    let raw = raw_files(cx.snap, &[RAW], (date, hour), hp);
    let mut windows = LogWindows::new();
    if !(hp.recompute || plan.changes.starts_from_scratch()) {
        for p in &old {
            load_file(cx.lake, p, |b| load_log_rollups(b, &mut windows)).await?;
        }
    }
    for p in &raw {
        load_file(cx.lake, p, |b| fold_logs(b, plan.window_ms, &mut windows))
            .await
            .map_err(|e| e.of_raw_file(p))?;
    }
    METRICS
        .files_processed
        .with_label_values(&[RAW, mode(hp)])
        .inc_by(raw.len() as u64);
    let batch = log_rollup_batch(&windows, plan.window_ms)?;
    let file = cx.write_hour(LOG_ROLLUPS_1M, date, hour, batch).await?;
    let rollups = HourRollups {
        date: date.to_string(),
        hour,
        logs: windows,
        ..HourRollups::default()
    };
    Ok((file, old, rollups))
}
