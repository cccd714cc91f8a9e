//! Retention: removes whole days of chosen tables from the lake in one commit, so a query sees
//! the days either all there or all gone, then deletes the removed objects.
//!
//! A file's day is its `date=YYYY-MM-DD` directory (raw tables, rollups) or, for tables kept one
//! file per day (`cost_daily/part-YYYY-MM-DD-...`), the date its name starts with. Files with
//! neither are never removed.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use object_store::ObjectStoreExt;

use crate::layout::file_day;
use crate::{AddFile, CommitError, Lake, LakeError, LogEntry, Snapshot};

/// What retention would remove: the live files of `tables` whose day is before `cutoff`.
pub fn plan<'a>(snap: &'a Snapshot, tables: &[String], cutoff: NaiveDate) -> Vec<&'a AddFile> {
    snap.files
        .values()
        .filter(|f| tables.contains(&f.table))
        .filter(|f| file_day(&f.path).is_some_and(|d| d < cutoff))
        .collect()
}

/// Per table: files, rows and bytes, of `files`.
pub fn summary(files: &[&AddFile]) -> BTreeMap<String, (usize, u64, u64)> {
    let mut out: BTreeMap<String, (usize, u64, u64)> = BTreeMap::new();
    for f in files {
        let e = out.entry(f.table.clone()).or_default();
        e.0 += 1;
        e.1 += f.rows;
        e.2 += f.bytes;
    }
    out
}

/// Removes the files [`plan`] finds, in one commit (re-planned when compaction or another
/// writer changed them meanwhile). Returns the removed files and the commit's version, or
/// `None` when there was nothing to remove. The objects stay in the store; delete them with
/// [`delete`] once running queries have finished with them.
///
/// # Errors
/// When the lake cannot be read or written.
pub async fn remove(
    lake: &Lake,
    tables: &[String],
    cutoff: NaiveDate,
    writer: &str,
) -> Result<Option<(Vec<AddFile>, u64)>, LakeError> {
    for _ in 0..20 {
        let snap = lake.snapshot().await?;
        let files: Vec<AddFile> = plan(&snap, tables, cutoff).into_iter().cloned().collect();
        if files.is_empty() {
            return Ok(None);
        }
        let paths: Vec<String> = files.iter().map(|f| f.path.clone()).collect();
        let check = paths.clone();
        let entry = LogEntry {
            writer: writer.to_string(),
            remove: paths,
            ..Default::default()
        };
        match lake
            .commit(entry, move |s| {
                match check.iter().find(|p| !s.files.contains_key(*p)) {
                    Some(p) => Err(format!("{p} is no longer in the lake")),
                    None => Ok(()),
                }
            })
            .await
        {
            Ok(version) => return Ok(Some((files, version))),
            Err(CommitError::Conflict(_)) => continue,
            Err(CommitError::Lake(e)) => return Err(e),
        }
    }
    // Twenty lost races in a row means something rewrites these days continuously.
    Err(LakeError::Location {
        location: lake.url().to_string(),
        reason: "retention kept losing its commit to other writers; try again".into(),
    })
}

/// Deletes the objects of removed files; returns how many could not be deleted (they are
/// unreferenced, so they only take space). Call it no sooner than the delete grace
/// ([`crate::compact::DELETE_GRACE`]) after the commit that removed them, and after the Delta
/// mirror has recorded that commit: queries that began before it, and Delta readers of older
/// versions (whose `deletedFileRetentionDuration` is that grace), may still read the files.
pub async fn delete(lake: &Lake, files: &[AddFile]) -> usize {
    let mut failed = 0;
    for f in files {
        if let Err(e) = lake.store().delete(&lake.path(&f.path)).await {
            if !matches!(e, object_store::Error::NotFound { .. }) {
                tracing::warn!(error = %e, path = f.path, "failed to delete a removed file");
                failed += 1;
            }
        }
    }
    failed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(table: &str, path: &str) -> AddFile {
        AddFile {
            path: path.into(),
            table: table.into(),
            rows: 10,
            bytes: 100,
            created_ms: 0,
        }
    }

    #[test]
    fn days_come_from_partition_directories_and_daily_file_names() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert_eq!(
            file_day("metrics/date=2026-10-01/hour=03/part-ingest-1-x.parquet"),
            Some(d("2026-10-01"))
        );
        assert_eq!(
            file_day("cost_daily/part-2026-09-30-abc.parquet"),
            Some(d("2026-09-30"))
        );
        assert_eq!(file_day("cost_forecasts/part-ab12.parquet"), None);
        assert_eq!(file_day("_reports/forecast-2026-10-01.json"), None);
    }

    #[tokio::test]
    async fn old_days_of_chosen_tables_go_in_one_commit_and_the_rest_stays() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
        let files = [
            add("metrics", "metrics/date=2026-10-01/hour=00/part-a.parquet"),
            add("metrics", "metrics/date=2026-10-02/hour=23/part-b.parquet"),
            add("metrics", "metrics/date=2026-10-03/hour=00/part-c.parquet"),
            add("logs", "logs/date=2026-10-01/hour=00/part-d.parquet"),
            add("billing", "billing/date=2026-10-01/hour=00/part-e.parquet"),
        ];
        for f in &files {
            lake.store()
                .put(&lake.path(&f.path), bytes::Bytes::from_static(b"x").into())
                .await
                .unwrap();
        }
        lake.commit(
            LogEntry {
                add: files.to_vec(),
                ..Default::default()
            },
            |_| Ok(()),
        )
        .await
        .unwrap();
        let cutoff = NaiveDate::from_ymd_opt(2026, 10, 3).unwrap();
        let tables = vec!["metrics".to_string(), "logs".to_string()];
        let before = lake.snapshot().await.unwrap().version;

        let (removed, version) = remove(&lake, &tables, cutoff, "retention")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(version, before + 1, "one commit");
        let mut gone: Vec<&str> = removed.iter().map(|f| f.path.as_str()).collect();
        gone.sort_unstable();
        assert_eq!(
            gone,
            [
                "logs/date=2026-10-01/hour=00/part-d.parquet",
                "metrics/date=2026-10-01/hour=00/part-a.parquet",
                "metrics/date=2026-10-02/hour=23/part-b.parquet",
            ]
        );
        let snap = lake.snapshot().await.unwrap();
        let mut live: Vec<&str> = snap.files.keys().map(String::as_str).collect();
        live.sort_unstable();
        assert_eq!(
            live,
            [
                "billing/date=2026-10-01/hour=00/part-e.parquet",
                "metrics/date=2026-10-03/hour=00/part-c.parquet",
            ]
        );
        assert_eq!(delete(&lake, &removed).await, 0);
        for f in &removed {
            assert!(!dir.path().join(&f.path).exists(), "{} deleted", f.path);
        }
        assert!(dir.path().join(&files[2].path).exists());
        // Nothing left to remove: no commit.
        assert!(remove(&lake, &tables, cutoff, "retention")
            .await
            .unwrap()
            .is_none());
        assert_eq!(lake.snapshot().await.unwrap().version, version);
    }
}
