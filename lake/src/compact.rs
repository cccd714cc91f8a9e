//! Compaction: merges the small files of an hour that has gone quiet into one large file, in
//! one lake commit that removes the small files and adds the large one, so a query sees every
//! row exactly once before, during and after. Removed files are deleted after a grace period
//! that lets running queries finish. The merged rows are sorted by the table's cluster columns
//! (service, name, time: `opslake_schemas::tables::cluster_columns`), so queries that filter
//! on a service or a time range skip most of the file by its row group and page statistics.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use datafusion::arrow::compute::{concat_batches, lexsort_to_indices, take_record_batch};
use datafusion::arrow::compute::{SortColumn, SortOptions};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use object_store::ObjectStoreExt;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::write::{encode_parquet, to_millis};
use crate::{AddFile, CommitError, Lake, LakeError, LogEntry, Snapshot};

/// How long a file removed from the lake stays in the store before it is deleted, by default:
/// queries that began before its removal, and Delta readers of older versions, can still read
/// it (the Delta tables' `deletedFileRetentionDuration`).
pub const DELETE_GRACE: Duration = Duration::from_secs(300);

/// When to compact.
#[derive(Debug, Clone)]
pub struct CompactionPolicy {
    /// A file smaller than this is "small".
    pub small_file_bytes: u64,
    /// An hour is compacted when its newest file is at least this old ...
    pub quiet_for: Duration,
    /// ... or when it has this many small files, quiet or not.
    pub max_small_files: usize,
    /// Largest merged output, in rows.
    pub max_rows: u64,
    /// Removed files are deleted this long after the commit that removed them.
    pub delete_grace: Duration,
}

impl Default for CompactionPolicy {
    fn default() -> Self {
        Self {
            small_file_bytes: 32 << 20,
            quiet_for: Duration::from_secs(120),
            max_small_files: 64,
            max_rows: 8_000_000,
            delete_grace: DELETE_GRACE,
        }
    }
}

/// Errors of one compaction.
#[derive(Debug, thiserror::Error)]
pub enum CompactError {
    /// The lake could not be read or committed to.
    #[error(transparent)]
    Lake(#[from] LakeError),
    /// A file to merge could not be read.
    #[error("failed to read parquet file {path}")]
    Read {
        /// Lake-relative path of the file.
        path: String,
        /// The Parquet reader's error.
        source: datafusion::parquet::errors::ParquetError,
    },
    /// The merged rows could not be sorted.
    #[error("failed to sort the merged rows of {dir}")]
    Sort {
        /// The folder (table, day, hour) being compacted.
        dir: String,
        /// Arrow's error.
        source: ArrowError,
    },
    /// The merged file could not be encoded.
    #[error("failed to write the merged file of {dir}")]
    Write {
        /// The folder (table, day, hour) being compacted.
        dir: String,
        /// The Parquet writer's error.
        source: datafusion::parquet::errors::ParquetError,
    },
}

/// Groups of small files worth merging: directory -> files, oldest first.
pub fn plan(
    snapshot: &Snapshot,
    policy: &CompactionPolicy,
    now_ms: i64,
) -> Vec<(String, Vec<AddFile>)> {
    let mut dirs: BTreeMap<String, Vec<AddFile>> = BTreeMap::new();
    for f in snapshot.files.values() {
        if f.bytes < policy.small_file_bytes {
            if let Some((dir, _)) = f.path.rsplit_once('/') {
                dirs.entry(dir.to_string()).or_default().push(f.clone());
            }
        }
    }
    let quiet_ms = i64::try_from(policy.quiet_for.as_millis()).unwrap_or(i64::MAX);
    let mut out = Vec::new();
    for (dir, mut files) in dirs {
        if files.len() < 2 {
            continue;
        }
        let newest = files.iter().map(|f| f.created_ms).max().unwrap_or(0);
        if now_ms - newest < quiet_ms && files.len() < policy.max_small_files {
            continue;
        }
        files.sort_by_key(|f| (f.created_ms, f.path.clone()));
        // Bound one merge's size.
        let mut rows = 0;
        files.retain(|f| {
            rows += f.rows;
            rows <= policy.max_rows
        });
        if files.len() >= 2 {
            out.push((dir, files));
        }
    }
    out
}

/// Merges one group; returns the rows merged, or 0 when another writer got there first.
///
/// # Errors
/// When a file cannot be read or written.
pub async fn merge(
    lake: &Lake,
    dir: &str,
    files: &[AddFile],
    writer: &str,
) -> Result<u64, CompactError> {
    let mut batches: Vec<RecordBatch> = Vec::new();
    for f in files {
        let bytes: Bytes = lake
            .store()
            .get(&lake.path(&f.path))
            .await
            .map_err(|source| LakeError::Store {
                path: f.path.clone(),
                source,
            })?
            .bytes()
            .await
            .map_err(|source| LakeError::Store {
                path: f.path.clone(),
                source,
            })?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .and_then(|b| b.with_batch_size(64 * 1024).build())
            .map_err(|source| CompactError::Read {
                path: f.path.clone(),
                source,
            })?;
        for b in reader {
            // Older files hold milliseconds, newer ones microseconds: one unit to merge.
            batches.push(b.and_then(to_millis).map_err(|e| CompactError::Read {
                path: f.path.clone(),
                source: e.into(),
            })?);
        }
    }
    let rows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
    let table = files[0].table.clone();
    let encoded = tokio::task::block_in_place(|| {
        let sorted = clustered(&batches).map_err(|source| CompactError::Sort {
            dir: dir.to_string(),
            source,
        })?;
        encode_parquet(&sorted).map_err(|source| CompactError::Write {
            dir: dir.to_string(),
            source,
        })
    })?;
    let rel = format!(
        "{dir}/compacted-{writer}-{}.parquet",
        uuid::Uuid::new_v4().simple()
    );
    let add = crate::write::upload(lake, &rel, &table, rows, encoded).await?;
    let removed: Vec<String> = files.iter().map(|f| f.path.clone()).collect();
    let check_removed = removed.clone();
    let entry = LogEntry {
        writer: writer.to_string(),
        add: vec![add],
        remove: removed,
        ..Default::default()
    };
    let r = lake
        .commit(entry, move |snap| {
            match check_removed.iter().find(|p| !snap.files.contains_key(*p)) {
                Some(p) => Err(format!("{p} is no longer in the lake")),
                None => Ok(()),
            }
        })
        .await;
    match r {
        Ok(_) => Ok(rows),
        Err(CommitError::Conflict(reason)) => {
            debug!(dir, reason, "compaction lost a race; discarding its output");
            let _ = lake.store().delete(&lake.path(&rel)).await;
            Ok(0)
        }
        Err(CommitError::Lake(e)) => Err(e.into()),
    }
}

/// `batches` as one batch sorted by their cluster columns (nulls first).
fn clustered(batches: &[RecordBatch]) -> Result<Vec<RecordBatch>, ArrowError> {
    let Some(first) = batches.first() else {
        return Ok(Vec::new());
    };
    let schema = first.schema();
    let keys = opslake_schemas::tables::cluster_columns(&schema);
    if keys.is_empty() {
        return Ok(batches.to_vec());
    }
    let all = concat_batches(&schema, batches)?;
    let columns = keys
        .iter()
        .map(|k| {
            Ok(SortColumn {
                values: Arc::clone(all.column(schema.index_of(k)?)),
                options: Some(SortOptions::default()),
            })
        })
        .collect::<Result<Vec<_>, ArrowError>>()?;
    let order = lexsort_to_indices(&columns, None)?;
    Ok(vec![take_record_batch(&all, &order)?])
}

/// Compacts every `interval` until `shutdown`, deleting removed files after the grace period.
pub async fn run(
    lake: Arc<Lake>,
    policy: CompactionPolicy,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let writer = format!(
        "compact-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let mut pending_deletes: Vec<(tokio::time::Instant, Vec<String>)> = Vec::new();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
        let now = tokio::time::Instant::now();
        let (due, later): (Vec<_>, Vec<_>) =
            pending_deletes.into_iter().partition(|(at, _)| *at <= now);
        pending_deletes = later;
        for (_, paths) in due {
            for p in paths {
                if let Err(e) = lake.store().delete(&lake.path(&p)).await {
                    debug!(error = %e, path = p, "could not delete a compacted file");
                }
            }
        }
        let snapshot = match lake.snapshot().await {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "compaction cannot read the lake");
                continue;
            }
        };
        for (dir, files) in plan(&snapshot, &policy, chrono::Utc::now().timestamp_millis()) {
            if shutdown.is_cancelled() {
                return;
            }
            match merge(&lake, &dir, &files, &writer).await {
                Ok(0) => {}
                Ok(rows) => {
                    info!(dir, files = files.len(), rows, "compacted");
                    pending_deletes.push((
                        now + policy.delete_grace,
                        files.iter().map(|f| f.path.clone()).collect(),
                    ));
                }
                Err(e) => warn!(error = %e, dir, "compaction failed; will retry"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::commit_events;
    use opslake_schemas::{decode_message, EventKind};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn compaction_keeps_every_row_once_in_one_commit() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
        for i in 0..5 {
            let d = decode_message(
                EventKind::Metric,
                format!(
                    r#"{{"timestamp": 1763805600000, "service": "s", "name": "n", "value": {i}}}"#
                )
                .as_bytes(),
            );
            commit_events(&lake, "t", i, &[d.events[0].1.clone()])
                .await
                .unwrap();
        }
        let snap = lake.snapshot().await.unwrap();
        let policy = CompactionPolicy {
            quiet_for: Duration::ZERO,
            ..Default::default()
        };
        let groups = plan(&snap, &policy, chrono::Utc::now().timestamp_millis() + 1);
        assert_eq!(groups.len(), 1);
        let rows = merge(&lake, &groups[0].0, &groups[0].1, "test")
            .await
            .unwrap();
        assert_eq!(rows, 5);
        let after = lake.snapshot().await.unwrap();
        assert_eq!(after.version, snap.version + 1);
        assert_eq!(after.files.len(), 1);
        assert_eq!(after.files.values().next().unwrap().rows, 5);
        // A second merge of the same (now removed) files loses the race and changes nothing.
        assert_eq!(
            merge(&lake, &groups[0].0, &groups[0].1, "test")
                .await
                .unwrap(),
            0
        );
        assert_eq!(lake.snapshot().await.unwrap().version, after.version);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn merged_rows_are_sorted_by_service_name_and_time() {
        use crate::test_util::metric;
        use datafusion::arrow::array::{AsArray, TimestampMillisecondArray};
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
        let t0 = 1_763_805_600_000;
        // Two files of one hour, services and times interleaved.
        for (f, first) in [(0, 0), (1, 3)] {
            let events: Vec<_> = (0..3)
                .map(|i| {
                    let svc = ["b", "a", "c"][(i + f) % 3];
                    metric(t0 + 1000 * (10 - i as i64 - first), svc, "n", 1.0)
                })
                .collect();
            commit_events(&lake, "t", first, &events).await.unwrap();
        }
        let snap = lake.snapshot().await.unwrap();
        let policy = CompactionPolicy {
            quiet_for: Duration::ZERO,
            ..Default::default()
        };
        let groups = plan(&snap, &policy, chrono::Utc::now().timestamp_millis() + 1);
        merge(&lake, &groups[0].0, &groups[0].1, "test")
            .await
            .unwrap();
        let after = lake.snapshot().await.unwrap();
        let file = after.files.values().next().unwrap();
        let bytes = lake
            .store()
            .get(&lake.path(&file.path))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let batches: Vec<RecordBatch> = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .unwrap()
            .build()
            .unwrap()
            .map(|b| to_millis(b.unwrap()).unwrap())
            .collect();
        let b = concat_batches(&batches[0].schema(), &batches).unwrap();
        let service: Vec<&str> = b
            .column_by_name("service")
            .unwrap()
            .as_string::<i32>()
            .iter()
            .map(Option::unwrap)
            .collect();
        let time = b
            .column_by_name("timestamp")
            .unwrap()
            .as_any()
            .downcast_ref::<TimestampMillisecondArray>()
            .unwrap();
        let keys: Vec<(&str, i64)> = service
            .iter()
            .zip(time.values().iter())
            .map(|(s, t)| (*s, *t))
            .collect();
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        assert_eq!(keys.len(), 6);
        assert_eq!(keys, sorted, "rows by service, then time");
    }

    /// Files written before the lake held microseconds (milliseconds) merge with newer ones.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn millisecond_and_microsecond_files_of_an_hour_merge() {
        use crate::test_util::metric;
        use datafusion::arrow::datatypes::{DataType, TimeUnit};
        use datafusion::parquet::arrow::ArrowWriter;
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
        let t0 = 1_763_805_600_000;
        commit_events(&lake, "t", 0, &[metric(t0 + 5, "a", "n", 1.0)])
            .await
            .unwrap();
        let new = lake
            .snapshot()
            .await
            .unwrap()
            .files
            .values()
            .next()
            .unwrap()
            .clone();
        let read = |bytes: Bytes| -> RecordBatch {
            let b: Vec<RecordBatch> = ParquetRecordBatchReaderBuilder::try_new(bytes)
                .unwrap()
                .build()
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            b.into_iter().next().unwrap()
        };
        let fetch = |p: String| {
            let lake = &lake;
            async move {
                lake.store()
                    .get(&lake.path(&p))
                    .await
                    .unwrap()
                    .bytes()
                    .await
                    .unwrap()
            }
        };
        let millis = read(fetch(new.path.clone()).await);
        let ms = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
        assert_eq!(
            millis
                .schema()
                .field_with_name("timestamp")
                .unwrap()
                .data_type(),
            &ms
        );
        // The same rows as another writer may write them: microseconds.
        let micro = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        let schema = millis.schema();
        let fields: Vec<_> = schema
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                DataType::Timestamp(..) => f.as_ref().clone().with_data_type(micro.clone()),
                _ => f.as_ref().clone(),
            })
            .collect();
        let columns = millis
            .columns()
            .iter()
            .map(|c| match c.data_type() {
                DataType::Timestamp(..) => datafusion::arrow::compute::cast(c, &micro).unwrap(),
                _ => c.clone(),
            })
            .collect();
        let micros = RecordBatch::try_new(
            std::sync::Arc::new(datafusion::arrow::datatypes::Schema::new(fields)),
            columns,
        )
        .unwrap();
        let mut old = Vec::new();
        let mut w = ArrowWriter::try_new(&mut old, micros.schema(), None).unwrap();
        w.write(&micros).unwrap();
        w.close().unwrap();
        let rel = new.path.replace("part-", "part-old-");
        let add = crate::write::upload(&lake, &rel, "metrics", 1, Bytes::from(old))
            .await
            .unwrap();
        lake.commit(
            LogEntry {
                add: vec![add],
                ..Default::default()
            },
            |_| Ok(()),
        )
        .await
        .unwrap();
        let snap = lake.snapshot().await.unwrap();
        let policy = CompactionPolicy {
            quiet_for: Duration::ZERO,
            ..Default::default()
        };
        let groups = plan(&snap, &policy, chrono::Utc::now().timestamp_millis() + 1);
        assert_eq!(
            merge(&lake, &groups[0].0, &groups[0].1, "compact-test")
                .await
                .unwrap(),
            2
        );
        let after = lake.snapshot().await.unwrap();
        let merged = read(fetch(after.files.values().next().unwrap().path.clone()).await);
        assert_eq!(
            merged
                .schema()
                .field_with_name("timestamp")
                .unwrap()
                .data_type(),
            &ms
        );
        let merged = to_millis(merged).unwrap();
        let t = merged
            .column_by_name("timestamp")
            .unwrap()
            .as_any()
            .downcast_ref::<datafusion::arrow::array::TimestampMillisecondArray>()
            .unwrap();
        assert_eq!(t.values().to_vec(), vec![t0 + 5, t0 + 5]);
    }
}
