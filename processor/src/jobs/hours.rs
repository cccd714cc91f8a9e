//! The hours a rollup job rewrites in a cycle, and which raw and stored files each one needs.

use std::collections::BTreeMap;

use opslake_lake::layout::{hour_of, in_hour};
use opslake_lake::state_keys::QUARANTINE_PREFIX;
use opslake_lake::Snapshot;

use tracing::info;

use crate::error::ProcessError;
use crate::job::{Cycle, RawChanges};
use crate::rollup::{LogWindows, MetricWindows};

/// What a cycle of a rollup job does: the raw files committed since its progress, the hours
/// they fall in, and the window they are folded with.
#[derive(Debug)]
pub struct RollupPlan {
    pub(crate) changes: RawChanges,
    pub(crate) hours: Hours,
    pub(crate) window_ms: i64,
}

impl RollupPlan {
    /// The plan of the job that folds raw tables `raw` with its progress under `key`; `None`
    /// when nothing is worth a commit.
    pub(crate) async fn since(
        cx: &Cycle<'_>,
        raw: &[&str],
        key: &str,
    ) -> Result<Option<Self>, ProcessError> {
        let window_ms = cx.config.window_ms();
        let Some(changes) = RawChanges::since(cx, raw, key, window_ms).await? else {
            return Ok(None);
        };
        let hours = plan_hours(cx.snap, &changes);
        Ok(changes
            .worth_a_commit(cx.snap, !hours.is_empty())
            .then_some(Self {
                changes,
                hours,
                window_ms,
            }))
    }

    /// The stored files of `tables` a rebuild replaces (none unless the plan rebuilds).
    pub(crate) fn rebuilt(&self, cx: &Cycle<'_>, tables: &[&str]) -> Vec<String> {
        if !self.changes.rebuild {
            return Vec::new();
        }
        info!(
            ?tables,
            from_ms = self.changes.prev.window_ms,
            to_ms = self.window_ms,
            "rebuilding rollups (the window changed, or the log was trimmed past their progress)"
        );
        tables
            .iter()
            .flat_map(|t| cx.snap.table_files(t).map(|f| f.path.clone()))
            .collect()
    }
}

/// The count of hours a rollup cycle rewrote (see [`crate::job::CycleReport::count`]).
pub const HOURS: &str = "hours";
/// The count of raw files a rollup cycle folded.
pub const FILES_READ: &str = "files_read";

/// Counts a committed rollup cycle's rows of `tables` in `/metrics`.
pub(crate) fn count_rollup_rows(report: &crate::job::CycleReport, tables: &[&str]) {
    for t in tables {
        crate::metrics::METRICS
            .windows_written
            .with_label_values(&[t])
            .inc_by(report.count(t));
    }
}

/// The work of one hour of a raw table.
#[derive(Debug, Default)]
pub(crate) struct HourPlan {
    /// New raw files, still live, to fold into the hour's stored rollups.
    pub(crate) new: Vec<String>,
    /// A new file was already compacted away: the hour is recomputed from every live raw file
    /// (which holds the same rows).
    pub(crate) recompute: bool,
}

/// The hours of a cycle, by `(date, hour)`.
pub(crate) type Hours = BTreeMap<(String, u32), HourPlan>;

/// The hours the new raw files of `changes` fall in.
fn plan_hours(snap: &Snapshot, changes: &RawChanges) -> Hours {
    let mut hours = Hours::new();
    for f in &changes.files {
        let Some(h) = hour_of(&f.path) else { continue };
        let plan = hours.entry(h).or_default();
        if snap.files.contains_key(&f.path) {
            plan.new.push(f.path.clone());
        } else {
            plan.recompute = true;
        }
    }
    hours
}

/// The raw files of `tables` to fold for an hour: the new ones, or every live one when the
/// hour is recomputed.
pub(crate) fn raw_files(
    snap: &Snapshot,
    tables: &[&str],
    (date, hour): (&str, u32),
    plan: &HourPlan,
) -> Vec<String> {
    let files: Vec<String> = if plan.recompute {
        tables
            .iter()
            .flat_map(|t| stored(snap, t, date, hour))
            .collect()
    } else {
        plan.new.clone()
    };
    files
        .into_iter()
        .filter(|f| !is_quarantined(snap, f))
        .collect()
}

/// Whether a job set the raw file `path` aside (see [`crate::error::ProcessError::Quarantine`]).
pub(crate) fn is_quarantined(snap: &Snapshot, path: &str) -> bool {
    snap.state.contains_key(&quarantine_key(path))
}

/// The lake state key of a quarantined file.
pub(crate) fn quarantine_key(path: &str) -> String {
    format!("{QUARANTINE_PREFIX}{path}")
}

/// The live files of `table` in `date`/`hour`.
pub(crate) fn stored(snap: &Snapshot, table: &str, date: &str, hour: u32) -> Vec<String> {
    snap.table_files(table)
        .filter(|f| in_hour(&f.path, table, date, hour))
        .map(|f| f.path.clone())
        .collect()
}

/// The rollups of one hour after a cycle, for the detectors.
#[derive(Debug, Default)]
pub struct HourRollups {
    /// The hour's date, `YYYY-MM-DD`.
    pub date: String,
    /// The hour of the day, 0 to 23.
    pub hour: u32,
    /// Its metric windows (empty for log rollups).
    pub metrics: MetricWindows,
    /// Its log windows (empty for metric rollups).
    pub logs: LogWindows,
}
