//! The capacity job (CONTRACT section 10): folds the resource gauges that ingest committed
//! since its progress into each series' bounded state ([`crate::capacity::SeriesState`]), and
//! at every hour the data closes judges memory series for leaks (`leaks`) and forecasts when
//! series with a limit reach it (`capacity_forecasts`).
//!
//! # Incremental, and what it keeps
//! A cycle reads only the `metrics` files that new ingest commits added (when compaction
//! replaced one before it was read, the live files of its hour), and folds only the rows whose
//! Kafka offsets are past what it folded before: its progress holds the next offset of every
//! partition, so each row is folded once, however the files were merged, and a partition that
//! lags the others (a backfill spread over partitions) folds its minutes late, into the hours
//! the state still holds.
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
    /// topic -> partition -> the next offset to fold.
    #[serde(default)]
    pub(crate) offsets: BTreeMap<String, BTreeMap<i32, i64>>,
    /// The lake-relative path of the state document.
    pub(crate) document: Option<String>,
}

/// What a cycle reads.
#[derive(Debug)]
pub struct CapacityPlan {
    prev: CapacityProgress,
    /// Lake-relative paths of the `metrics` files to read.
    files: BTreeSet<String>,
    /// The offsets folded once this cycle is committed (the snapshot's).
    upto: BTreeMap<String, BTreeMap<i32, i64>>,
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
        let now = chrono::Utc::now().timestamp_millis();
        let oldest = now - HISTORY_HOURS * HOUR_MS;
        let recent = |p: &str| {
            hour_of(p)
                .and_then(|(d, h)| hour_start_ms(&d, h))
                .is_some_and(|t| t >= oldest && t <= now)
        };
        let live: Vec<&str> = cx
            .snap
            .table_files(RAW)
            .map(|f| f.path.as_str())
            .filter(|p| recent(p))
            .collect();
        let entries = if prev.version == 0 {
            None
        } else {
            match cx.lake.entries(prev.version, cx.snap.version).await {
                Ok(entries) => Some(entries),
                // Which files are new is no longer known: every live file is read again (the
                // offsets keep what was folded from being folded twice).
                Err(LakeError::EntryGone { .. }) => None,
                Err(e) => return Err(e.into()),
            }
        };
        let files: BTreeSet<String> = match entries {
            None => live.iter().map(|p| p.to_string()).collect(),
            Some(entries) => {
                let mut files = BTreeSet::new();
                for f in entries
                    .into_iter()
                    .filter(|e| !e.offsets.is_empty())
                    .flat_map(|e| e.add)
                    .filter(|f| f.table == RAW && recent(&f.path))
                {
                    if cx.snap.files.contains_key(&f.path) {
                        files.insert(f.path);
                    } else if let Some((d, h)) = hour_of(&f.path) {
                        // Compacted before it was read: its rows are in its hour's files now.
                        files.extend(
                            live.iter()
                                .filter(|p| in_hour(p, RAW, &d, h))
                                .map(|p| p.to_string()),
                        );
                    }
                }
                files
            }
        };
        let worth = !files.is_empty() || cx.snap.version - prev.version >= MAX_UNREAD_TAIL;
        let upto = cx.snap.offsets.as_ref().clone();
        Ok(worth.then_some(CapacityPlan { prev, files, upto }))
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
        for rel in &plan.files {
            cx.stopping()?;
            load_file(cx.lake, rel, |b| {
                book.gather(b, config, &plan.prev.offsets, now, &mut minutes)
            })
            .await?;
        }
        book.fold(minutes);
        let (leaks, forecasts) = book.close(config, book.clock_ms());
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
                offsets: plan.upto.clone(),
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
