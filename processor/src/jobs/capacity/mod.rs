//! The capacity job (CONTRACT section 10): folds the resource gauges that ingest committed
//! since its progress into each series' bounded state ([`crate::capacity::SeriesState`]), and
//! at every hour the data closes judges memory series for leaks (`leaks`) and forecasts when
//! series with a limit reach it (`capacity_forecasts`).
//!
//! # Incremental, and what it keeps
//! A cycle reads only the hours of `metrics` that new ingest commits touched (every live file
//! of such an hour, so that compaction between two cycles loses nothing), plus the hour of the
//! last minute it folded; a minute a series already folded is never folded again. The newest
//! minute of the data is left for the next cycle (it may still be filling).
//!
//! The per-series states (about 20 KB each as JSON) are too big for the lake log, which every
//! commit and checkpoint would then carry: they live in one document under
//! `_opslake_state/capacity/`, written with the cycle and named by the job's progress in the
//! log, so the document and the progress are committed together; the previous document is
//! deleted once the commit is in. An instance keeps the document it wrote in memory and reads
//! it again only when another instance moved the progress.
//!
//! # Time
//! The job's clock is the data's: a series' hours are judged as its minutes cross each hour
//! (a backfill of days replays every hour, so a leak in history is found at once, with the time
//! it would have been found live as `detected_at`), and forecasts start at the newest closed
//! hour.

mod book;
mod rows;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use bytes::Bytes;
use object_store::ObjectStoreExt;
use opslake_lake::layout::{hour_of, hour_start_ms, in_hour};
use opslake_lake::LakeError;
use serde::{Deserialize, Serialize};

use self::book::{Book, MinuteAgg};
use self::rows::{forecast_batch, leak_batch};
use crate::error::ProcessError;
use crate::job::{AfterCommit, Cycle, CycleReport, Job, Work};
use crate::metrics::METRICS;
use crate::read::{fetch, load_file};
use chrono::Timelike;

/// State key of the job's progress.
pub const PROGRESS_KEY: &str = "processor.capacity";
/// The table of leak verdicts.
pub const LEAKS: &str = "leaks";
/// The table of capacity forecasts.
pub const CAPACITY_FORECASTS: &str = "capacity_forecasts";
/// Count of the series the job tracks.
pub const SERIES: &str = "capacity_series";

/// The raw table the job reads.
const RAW: &str = "metrics";
/// Where the job's state documents live.
const DOCUMENTS: &str = "_opslake_state/capacity";
/// Hours of history a state holds (and that a cycle reads at most).
const HISTORY_HOURS: i64 = 169;
const HOUR_MS: i64 = 3_600_000;
const MINUTE_MS: i64 = 60_000;
/// A job's progress lags this many versions before it records one with nothing to fold.
const MAX_UNREAD_TAIL: u64 = 100;

/// How far the job got.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CapacityProgress {
    /// Every ingest commit up to this lake version is folded.
    pub(crate) version: u64,
    /// The newest minute of the data, left open by the last cycle (epoch ms; 0 before any).
    pub(crate) open_ms: i64,
    /// The lake-relative path of the state document.
    pub(crate) document: Option<String>,
}

/// What a cycle reads.
#[derive(Debug)]
pub struct CapacityPlan {
    prev: CapacityProgress,
    /// `(date, hour)` partitions of `metrics` to read, oldest first.
    hours: BTreeSet<(String, u32)>,
}

/// Leaks and capacity forecasts of the resource gauges.
#[derive(Debug, Default)]
pub struct Capacity {
    /// The document this instance last wrote, and its content.
    cache: Mutex<Option<(String, Book)>>,
}

impl Job for Capacity {
    type Plan = CapacityPlan;

    fn name(&self) -> &'static str {
        "capacity"
    }

    fn progress_key(&self) -> &'static str {
        PROGRESS_KEY
    }

    async fn plan(&self, cx: &Cycle<'_>) -> Result<Option<CapacityPlan>, ProcessError> {
        let prev: CapacityProgress = cx.state(PROGRESS_KEY);
        if prev.version == cx.snap.version {
            return Ok(None);
        }
        let touched: Vec<String> = if prev.version == 0 {
            cx.snap.table_files(RAW).map(|f| f.path.clone()).collect()
        } else {
            match cx.lake.entries(prev.version, cx.snap.version).await {
                Ok(entries) => entries
                    .into_iter()
                    .filter(|e| !e.offsets.is_empty())
                    .flat_map(|e| e.add)
                    .filter(|f| f.table == RAW)
                    .map(|f| f.path)
                    .collect(),
                // Which files are new is no longer known: every live hour is read again (a
                // minute already folded is skipped).
                Err(LakeError::EntryGone { .. }) => {
                    cx.snap.table_files(RAW).map(|f| f.path.clone()).collect()
                }
                Err(e) => return Err(e.into()),
            }
        };
        let now = chrono::Utc::now().timestamp_millis();
        let oldest = now - HISTORY_HOURS * HOUR_MS;
        let mut hours: BTreeSet<(String, u32)> = touched
            .iter()
            .filter_map(|p| hour_of(p))
            .filter(|(d, h)| hour_start_ms(d, *h).is_some_and(|t| t >= oldest && t <= now))
            .collect();
        if !hours.is_empty() {
            // The newest minute was left open: its hour is read again.
            hours.extend(partition_of(prev.open_ms));
        }
        let worth = !hours.is_empty() || cx.snap.version - prev.version >= MAX_UNREAD_TAIL;
        Ok(worth.then_some(CapacityPlan { prev, hours }))
    }

    /// At most once a minute: a cycle reads the open hour's files again.
    fn interval(&self, processor: std::time::Duration) -> std::time::Duration {
        processor.max(std::time::Duration::from_secs(60))
    }

    fn committed(&self, _plan: &CapacityPlan, report: &CycleReport) {
        METRICS
            .detections
            .with_label_values(&["leak"])
            .inc_by(report.count(LEAKS));
        METRICS
            .detections
            .with_label_values(&["capacity_forecast"])
            .inc_by(report.count(CAPACITY_FORECASTS));
    }

    async fn run(&self, cx: &Cycle<'_>, plan: &CapacityPlan) -> Result<Work, ProcessError> {
        let mut work = Work::default();
        let config = &cx.config.capacity;
        let mut book = self.book(cx, &plan.prev).await?;
        let now = chrono::Utc::now().timestamp_millis();
        let mut minutes: BTreeMap<String, BTreeMap<i64, MinuteAgg>> = BTreeMap::new();
        for (date, hour) in &plan.hours {
            cx.stopping()?;
            let files: Vec<String> = cx
                .snap
                .table_files(RAW)
                .filter(|f| in_hour(&f.path, RAW, date, *hour))
                .map(|f| f.path.clone())
                .collect();
            for rel in files {
                load_file(cx.lake, &rel, |b| book.gather(b, config, now, &mut minutes)).await?;
            }
        }
        let (newest, mut leaks) = book.fold(minutes);
        let (closed, forecasts) = book.close(config, newest);
        leaks.extend(closed);
        work.report.add(SERIES, book.len() as u64);
        if !leaks.is_empty() {
            let f = cx.write_flat(LEAKS, leak_batch(&leaks)?).await?;
            work.report.add(LEAKS, f.rows);
            work.add.push(f);
        }
        if !forecasts.is_empty() {
            let f = cx
                .write_flat(CAPACITY_FORECASTS, forecast_batch(&forecasts)?)
                .await?;
            work.report.add(CAPACITY_FORECASTS, f.rows);
            work.add.push(f);
        }
        let document = format!("{DOCUMENTS}/{}.json", cx.file_id());
        let bytes = Bytes::from(serde_json::to_vec(&book).map_err(|e| {
            ProcessError::Build(datafusion::arrow::error::ArrowError::ExternalError(
                Box::new(e),
            ))
        })?);
        cx.write_document(&document, bytes).await?;
        work.set_state(
            PROGRESS_KEY,
            &CapacityProgress {
                version: cx.snap.version,
                open_ms: newest.max(plan.prev.open_ms),
                document: Some(document.clone()),
            },
        );
        if let Some(old) = plan.prev.document.clone() {
            let store = std::sync::Arc::clone(cx.lake.store());
            let path = cx.lake.path(&old);
            work.after_commit = Some(AfterCommit::new(move || {
                if let Ok(rt) = tokio::runtime::Handle::try_current() {
                    rt.spawn(async move {
                        let _ = store.delete(&path).await;
                    });
                }
            }));
        }
        *self.cache.lock().expect("capacity cache lock") = Some((document, book));
        Ok(work)
    }
}

/// The `(date, hour)` partition of a time (epoch ms); `None` for 0 (no time).
fn partition_of(ms: i64) -> Option<(String, u32)> {
    let t = chrono::DateTime::from_timestamp_millis(ms).filter(|_| ms > 0)?;
    Some((t.format("%Y-%m-%d").to_string(), t.hour()))
}

impl Capacity {
    /// The states as the progress names them: this instance's own when it wrote that document,
    /// else read from the lake (empty before the first cycle).
    async fn book(&self, cx: &Cycle<'_>, prev: &CapacityProgress) -> Result<Book, ProcessError> {
        let Some(doc) = &prev.document else {
            return Ok(Book::default());
        };
        if let Some((path, book)) = self.cache.lock().expect("capacity cache lock").take() {
            if &path == doc {
                return Ok(book);
            }
        }
        let bytes = fetch(cx.lake, doc).await?;
        // A document that does not parse (written by a future version, or damaged) starts the
        // states again rather than stopping the job for good.
        Ok(serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            tracing::warn!(document = doc, error = %e, "capacity state unreadable; starting again");
            Book::default()
        }))
    }
}
