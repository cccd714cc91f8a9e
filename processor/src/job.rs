//! A job: one independent unit of the processor's work (metric rollups and their detections,
//! log rollups, costs, alerts and SLOs).
//!
//! Each job keeps its progress under a state key of its own in the lake. A cycle of a job
//! **plans** from a snapshot (what changed since its progress; nothing to do is an idle cycle),
//! **runs** (reads, computes and writes new files, stopping between units of work when the
//! process stops) and hands the runner its [`Work`]: the files to add and remove and the state
//! to record, its new progress among it. The runner commits that in one lake commit, on the
//! condition that the job's progress has not moved since the snapshot, so two instances that
//! ran the same job record it once. Jobs never see each other: the runner only orchestrates,
//! and instances split the jobs between them (see [`crate::membership`]).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use datafusion::arrow::record_batch::RecordBatch;
use object_store::ObjectStoreExt;
use opslake_lake::layout::data_file_path;
use opslake_lake::write::{encode_parquet, upload};
use opslake_lake::{AddFile, Lake, LakeError, Snapshot};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::config::ProcessorConfig;
use crate::error::ProcessError;

/// One unit of processing work; see the module documentation.
pub trait Job: Send + Sync + 'static {
    /// What [`Job::plan`] found to do, handed to [`Job::run`].
    type Plan: Send + Sync;

    /// The job's name in logs, metrics and the split between instances.
    fn name(&self) -> &'static str;

    /// The state key of the job's progress: a cycle commits only if it has not moved.
    fn progress_key(&self) -> &'static str;

    /// What to do from `cx`'s snapshot; `None` when there is nothing to do.
    fn plan(
        &self,
        cx: &Cycle<'_>,
    ) -> impl Future<Output = Result<Option<Self::Plan>, ProcessError>> + Send;

    /// Does the planned work: files written through `cx`, and everything to record. Between
    /// units of work it returns `cx.stopping()`'s error once the process stops.
    fn run(
        &self,
        cx: &Cycle<'_>,
        plan: &Self::Plan,
    ) -> impl Future<Output = Result<Work, ProcessError>> + Send;

    /// Called once the cycle's work is committed, with what it did: the job's own metrics
    /// (lag, detections, rows written) are recorded here.
    fn committed(&self, _plan: &Self::Plan, _report: &CycleReport) {}

    /// Time between the job's cycles; the processor's `interval` unless the job has its own.
    fn interval(&self, processor: std::time::Duration) -> std::time::Duration {
        processor
    }
}

/// Something to do once a cycle's work is committed, and only then (notifications).
pub struct AfterCommit(Box<dyn FnOnce() + Send>);

impl AfterCommit {
    /// Wraps `f`.
    pub fn new(f: impl FnOnce() + Send + 'static) -> Self {
        Self(Box::new(f))
    }

    /// Runs it.
    pub fn run(self) {
        (self.0)();
    }
}

impl std::fmt::Debug for AfterCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AfterCommit")
    }
}

/// What a job's cycle leaves in the lake: committed at once, or not at all.
#[derive(Debug, Default)]
pub struct Work {
    /// New files (written with the [`Cycle`]'s write methods).
    pub add: Vec<AddFile>,
    /// Files the new ones replace.
    pub remove: Vec<String>,
    /// State to record, the job's new progress among it; `null` removes a key.
    pub state: BTreeMap<String, serde_json::Value>,
    /// What the cycle did, for logs, metrics and callers.
    pub report: CycleReport,
    /// Run once the work is committed; dropped when it is not.
    pub after_commit: Option<AfterCommit>,
}

impl Work {
    /// Records `value` under `key`.
    pub(crate) fn set_state(&mut self, key: impl Into<String>, value: &impl Serialize) {
        let value = serde_json::to_value(value).expect("processor state serializes");
        self.state.insert(key.into(), value);
    }
}

/// What one cycle of a job did: whether it committed, and the job's own counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CycleReport {
    /// Lake version the cycle committed, if it committed.
    pub committed: Option<u64>,
    /// Another processor committed first; this cycle's work was dropped.
    pub lost_race: bool,
    /// Raw files set aside (quarantined) instead of folded.
    pub quarantined: usize,
    /// The job's own counts, by name (`hours`, `files_read`, `anomalies`, `cost_days`, rows
    /// written by table, ...): what its log line says and what it counts in `/metrics`.
    pub counts: BTreeMap<&'static str, u64>,
}

impl CycleReport {
    /// Adds `n` to the count `name`.
    pub fn add(&mut self, name: &'static str, n: u64) {
        *self.counts.entry(name).or_default() += n;
    }

    /// The count `name` (0 when the job counted none).
    pub fn count(&self, name: &str) -> u64 {
        self.counts.get(name).copied().unwrap_or(0)
    }

    /// Adds another job's cycle to this one.
    pub fn absorb(&mut self, o: CycleReport) {
        self.committed = self.committed.max(o.committed);
        self.lost_race |= o.lost_race;
        self.quarantined += o.quarantined;
        for (k, v) in o.counts {
            self.add(k, v);
        }
    }
}

/// What a job sees during one cycle: the snapshot it plans from, the settings, where to write
/// and whether the process is stopping. The files it writes are tracked, so that the runner
/// removes them when the cycle records nothing.
pub struct Cycle<'a> {
    pub(crate) lake: &'a Arc<Lake>,
    pub(crate) snap: &'a Snapshot,
    pub(crate) config: &'a ProcessorConfig,
    writer: &'a str,
    stop: &'a CancellationToken,
    written: Mutex<Vec<String>>,
}

impl<'a> Cycle<'a> {
    pub(crate) fn new(
        lake: &'a Arc<Lake>,
        snap: &'a Snapshot,
        config: &'a ProcessorConfig,
        writer: &'a str,
        stop: &'a CancellationToken,
    ) -> Self {
        Self {
            lake,
            snap,
            config,
            writer,
            stop,
            written: Mutex::new(Vec::new()),
        }
    }

    /// `Err(Stopping)` once the process stops: a job checks between units of work.
    pub(crate) fn stopping(&self) -> Result<(), ProcessError> {
        if self.stop.is_cancelled() {
            Err(ProcessError::Stopping)
        } else {
            Ok(())
        }
    }

    /// The state recorded under `key` in the snapshot, or the default.
    pub(crate) fn state<T: DeserializeOwned + Default>(&self, key: &str) -> T {
        state(self.snap, key)
    }

    /// Writes `batch` as a new file of the hourly partition `date`/`hour` of `table`.
    pub(crate) async fn write_hour(
        &self,
        table: &str,
        date: &str,
        hour: u32,
        batch: RecordBatch,
    ) -> Result<AddFile, ProcessError> {
        let rel = data_file_path(table, date, hour, self.writer);
        self.write_at(table, rel, batch).await
    }

    /// Writes `batch` as a new file of `table`, which has no partitions.
    pub(crate) async fn write_flat(
        &self,
        table: &str,
        batch: RecordBatch,
    ) -> Result<AddFile, ProcessError> {
        let rel = format!("{table}/part-{}.parquet", self.file_id());
        self.write_at(table, rel, batch).await
    }

    /// `<writer>-<uuid>`: the unique tail of a new file's name.
    pub(crate) fn file_id(&self) -> String {
        format!("{}-{}", self.writer, uuid::Uuid::new_v4().simple())
    }

    /// Encodes `batch` as Parquet and uploads it to `rel`; it joins the lake with the commit.
    pub(crate) async fn write_at(
        &self,
        table: &str,
        rel: String,
        batch: RecordBatch,
    ) -> Result<AddFile, ProcessError> {
        let rows = batch.num_rows() as u64;
        let bytes = tokio::task::spawn_blocking(move || encode_parquet(&[batch])).await??;
        self.written
            .lock()
            .expect("written files lock")
            .push(rel.clone());
        Ok(upload(self.lake, &rel, table, rows, bytes).await?)
    }

    /// Uploads a job's own document (not a table's file) to `rel`; like a data file, it is
    /// removed when the cycle records nothing.
    pub(crate) async fn write_document(
        &self,
        rel: &str,
        bytes: bytes::Bytes,
    ) -> Result<(), ProcessError> {
        self.written
            .lock()
            .expect("written files lock")
            .push(rel.to_string());
        self.lake
            .store()
            .put(&self.lake.path(rel), bytes.into())
            .await
            .map_err(|source| LakeError::Store {
                path: rel.to_string(),
                source,
            })?;
        Ok(())
    }

    /// Removes every file this cycle wrote: its work will not be recorded.
    pub(crate) async fn discard(&self) {
        let written = std::mem::take(&mut *self.written.lock().expect("written files lock"));
        for rel in written {
            let _ = self.lake.store().delete(&self.lake.path(&rel)).await;
        }
    }
}

/// The state recorded under `key` in `snap`, or the default when it is missing or unreadable.
pub(crate) fn state<T: DeserializeOwned + Default>(snap: &Snapshot, key: &str) -> T {
    snap.state
        .get(key)
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default()
}

/// How far a job that folds a raw table got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Progress {
    /// Every ingest commit up to this lake version is folded.
    pub(crate) version: u64,
    /// Window the job's rollups were built with; a change rebuilds them.
    pub(crate) window_ms: i64,
}

/// The files of a raw table that ingest committed since a job's progress.
#[derive(Debug)]
pub(crate) struct RawChanges {
    /// The job's progress before this cycle.
    pub(crate) prev: Progress,
    /// The files added since (some may be compacted away already), or every live file of the
    /// table when the job starts from scratch.
    pub(crate) files: Vec<AddFile>,
    /// The job's derived tables are built again from every raw file: the window changed, or
    /// the log was trimmed past the job's progress.
    pub(crate) rebuild: bool,
    /// When the newest of those ingest commits was made (epoch ms; 0 when not known).
    pub(crate) newest_commit_ms: i64,
}

/// A job's progress lags this many versions before it records one with nothing to fold, so
/// that the next cycle need not read the same log entries again.
const MAX_UNREAD_TAIL: u64 = 100;

impl RawChanges {
    /// The files of `tables` that ingest committed since the progress under `key`, folded with
    /// `window_ms`; `None` when the log has not moved since.
    pub(crate) async fn since(
        cx: &Cycle<'_>,
        tables: &[&str],
        key: &str,
        window_ms: i64,
    ) -> Result<Option<Self>, ProcessError> {
        let prev: Progress = cx.state(key);
        let mut rebuild = prev.version > 0 && prev.window_ms != window_ms;
        if prev.version == cx.snap.version && !rebuild {
            return Ok(None);
        }
        let entries = if prev.version == 0 || rebuild {
            None
        } else {
            match cx.lake.entries(prev.version, cx.snap.version).await {
                Ok(entries) => Some(entries),
                // The job fell more than the log's retention behind: which files are new is no
                // longer known, so its tables are built again from every raw file.
                Err(LakeError::EntryGone { version }) => {
                    warn!(
                        ?tables,
                        progress = prev.version,
                        gone = version,
                        "the log entries since this job's progress were trimmed; rebuilding \
                         from every raw file"
                    );
                    rebuild = true;
                    None
                }
                Err(e) => return Err(e.into()),
            }
        };
        let mut newest_commit_ms = 0;
        let files = match entries {
            Some(entries) => {
                let mut files = Vec::new();
                for e in entries {
                    // Ingest commits record offsets; compaction only rewrites rows already
                    // folded.
                    if e.offsets.is_empty() {
                        continue;
                    }
                    newest_commit_ms = newest_commit_ms.max(e.timestamp_ms);
                    files.extend(
                        e.add
                            .into_iter()
                            .filter(|f| tables.contains(&f.table.as_str())),
                    );
                }
                files
            }
            None => tables
                .iter()
                .flat_map(|t| cx.snap.table_files(t).cloned())
                .collect(),
        };
        Ok(Some(Self {
            prev,
            files,
            rebuild,
            newest_commit_ms,
        }))
    }

    /// The job starts from nothing: no progress yet, or a rebuild.
    pub(crate) fn starts_from_scratch(&self) -> bool {
        self.prev.version == 0 || self.rebuild
    }

    /// Whether a cycle that found `has_work` is worth a commit: with work, a rebuild, or an
    /// unread tail of the log long enough to be worth skipping next time.
    pub(crate) fn worth_a_commit(&self, snap: &Snapshot, has_work: bool) -> bool {
        has_work || self.rebuild || snap.version - self.prev.version >= MAX_UNREAD_TAIL
    }

    /// The progress to record once this cycle's work is committed.
    pub(crate) fn next(&self, snap: &Snapshot, window_ms: i64) -> Progress {
        Progress {
            version: snap.version,
            window_ms,
        }
    }
}
