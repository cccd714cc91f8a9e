//! Trimming the commit log: entries and checkpoints that a newer checkpoint covers are removed,
//! so the log does not grow for ever.
//!
//! After the committer of version `C` (a multiple of [`CHECKPOINT_EVERY`]) has written
//! checkpoint `C` and pointed `_last_checkpoint` at it, it removes the entries up to and
//! including the previous checkpoint `P = C - CHECKPOINT_EVERY`, and the checkpoints before `P`,
//! when they are older than the log retention. What stays is enough for every reader:
//! - a reader that opens the lake reads the pointer, then checkpoint `C` (or `P`, when it read
//!   the pointer before it moved), then the entries after it, which all still exist;
//! - a reader or writer whose snapshot is older than `P` finds its next entry missing, reads the
//!   pointer, and goes on from the newest checkpoint: it never takes the missing entry for the
//!   end of the log, so no writer creates a removed version again (the retention also keeps
//!   entries for longer than any writer lags behind the log).
//!
//! [`CHECKPOINT_EVERY`]: crate::CHECKPOINT_EVERY

use std::time::Duration;

use futures::TryStreamExt;
use object_store::ObjectStoreExt;

use super::LOG_DIR;
use crate::Lake;

/// A file of the log, by what its name says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LogFile {
    Entry(u64),
    Checkpoint(u64),
}

/// What a log path is: `_opslake_log/<v>.json` or `_opslake_log/_checkpoint/<v>.json`.
fn log_file(relative: &str) -> Option<LogFile> {
    let rest = relative.strip_prefix(LOG_DIR)?.strip_prefix('/')?;
    let (checkpoint, name) = match rest.strip_prefix("_checkpoint/") {
        Some(name) => (true, name),
        None => (false, rest),
    };
    let digits = name.strip_suffix(".json")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let v = digits.parse().ok()?;
    Some(if checkpoint {
        LogFile::Checkpoint(v)
    } else {
        LogFile::Entry(v)
    })
}

/// Whether a log file may go, with `previous` the checkpoint before the newest.
fn removable(file: LogFile, previous: u64) -> bool {
    match file {
        LogFile::Entry(v) => v <= previous,
        LogFile::Checkpoint(v) => v < previous,
    }
}

/// Removes the log entries up to `previous` and the checkpoints before it that are older than
/// `keep`; returns how many files went. Failures are logged: a file left behind is removed by
/// the next trim.
pub(crate) async fn trim_log(lake: &Lake, previous: u64, keep: Duration) -> usize {
    let dir = lake.path(LOG_DIR);
    let listed: Result<Vec<_>, _> = lake.store().list(Some(&dir)).try_collect().await;
    let metas = match listed {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list the lake log to trim it");
            return 0;
        }
    };
    let cutoff = chrono::Utc::now() - chrono::Duration::from_std(keep).unwrap_or_default();
    let root = lake.path("");
    let mut removed = 0;
    for meta in metas {
        let full = meta.location.as_ref();
        let relative = full
            .strip_prefix(root.as_ref())
            .map_or(full, |r| r.trim_start_matches('/'));
        let Some(file) = log_file(relative) else {
            continue;
        };
        if !removable(file, previous) || meta.last_modified > cutoff {
            continue;
        }
        match lake.store().delete(&meta.location).await {
            Ok(()) => removed += 1,
            Err(e) => {
                tracing::warn!(error = %e, path = relative, "cannot remove a trimmed log file")
            }
        }
    }
    if removed > 0 {
        tracing::debug!(removed, previous, "lake log trimmed");
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AddFile, LogEntry, CHECKPOINT_EVERY};

    #[test]
    fn log_files_are_told_apart_by_name() {
        assert_eq!(
            log_file("_opslake_log/00000000000000000042.json"),
            Some(LogFile::Entry(42))
        );
        assert_eq!(
            log_file("_opslake_log/_checkpoint/00000000000000000100.json"),
            Some(LogFile::Checkpoint(100))
        );
        assert_eq!(log_file("_opslake_log/_last_checkpoint"), None);
        assert_eq!(log_file("_opslake_log/42.json"), None);
        assert_eq!(log_file("metrics/date=2026-11-22/hour=01/x.parquet"), None);
        assert!(removable(LogFile::Entry(100), 100));
        assert!(!removable(LogFile::Entry(101), 100));
        assert!(removable(LogFile::Checkpoint(99), 100));
        assert!(!removable(LogFile::Checkpoint(100), 100));
    }

    fn entry(i: u64) -> LogEntry {
        LogEntry {
            add: vec![AddFile {
                path: format!("t/f{i}"),
                table: "t".into(),
                rows: 1,
                bytes: 1,
                created_ms: 0,
            }],
            ..Default::default()
        }
    }

    async fn log_files(lake: &Lake) -> Vec<LogFile> {
        let root = lake.path("");
        let mut files: Vec<LogFile> = lake
            .store()
            .list(Some(&lake.path(LOG_DIR)))
            .try_collect::<Vec<_>>()
            .await
            .unwrap()
            .iter()
            .filter_map(|m| {
                let full = m.location.as_ref();
                log_file(
                    full.strip_prefix(root.as_ref())
                        .unwrap_or(full)
                        .trim_start_matches('/'),
                )
            })
            .collect();
        files.sort_by_key(|f| match f {
            LogFile::Entry(v) => (0, *v),
            LogFile::Checkpoint(v) => (1, *v),
        });
        files
    }

    #[tokio::test]
    async fn entries_behind_the_previous_checkpoint_go_and_every_reader_still_reaches_the_head() {
        let dir = tempfile::tempdir().unwrap();
        let writer = Lake::open(dir.path().to_str().unwrap()).unwrap();
        writer.set_log_retention(Duration::ZERO);
        // A reader and a writer that stop reading at version 50, far behind what is trimmed.
        let lagging_reader = Lake::open(dir.path().to_str().unwrap()).unwrap();
        let lagging_writer = Lake::open(dir.path().to_str().unwrap()).unwrap();
        // Every process of a lake keeps the same retention (the default in production).
        lagging_reader.set_log_retention(Duration::ZERO);
        lagging_writer.set_log_retention(Duration::ZERO);
        for i in 1..=(3 * CHECKPOINT_EVERY + 10) {
            writer.commit(entry(i), |_| Ok(())).await.unwrap();
            if i == 50 {
                lagging_reader.snapshot().await.unwrap();
                lagging_writer.snapshot().await.unwrap();
            }
        }
        // Checkpoint 300 trimmed what checkpoint 200 covers: entries 1..=200, checkpoints < 200.
        let files = log_files(&writer).await;
        let entries: Vec<u64> = files
            .iter()
            .filter_map(|f| match f {
                LogFile::Entry(v) => Some(*v),
                LogFile::Checkpoint(_) => None,
            })
            .collect();
        assert_eq!(entries.first(), Some(&201), "{files:?}");
        assert_eq!(entries.last(), Some(&310));
        assert!(files.contains(&LogFile::Checkpoint(200)));
        assert!(files.contains(&LogFile::Checkpoint(300)));
        assert!(!files.contains(&LogFile::Checkpoint(100)));

        let head = writer.snapshot().await.unwrap();
        assert_eq!(head.version, 310);
        assert_eq!(head.files.len(), 310);
        let same = |s: &crate::Snapshot| {
            s.version == head.version && s.files == head.files && s.offsets == head.offsets
        };
        let fresh = Lake::open(dir.path().to_str().unwrap()).unwrap();
        assert!(same(&fresh.snapshot().await.unwrap()), "a fresh reader");
        assert!(
            same(&lagging_reader.snapshot().await.unwrap()),
            "a lagging reader"
        );
        // The lagging writer commits the next version, never a removed one.
        let v = lagging_writer.commit(entry(311), |_| Ok(())).await.unwrap();
        assert_eq!(v, 311);
        assert_eq!(writer.snapshot().await.unwrap().files.len(), 311);
    }

    #[tokio::test]
    async fn entries_younger_than_the_retention_stay() {
        let dir = tempfile::tempdir().unwrap();
        let writer = Lake::open(dir.path().to_str().unwrap()).unwrap();
        for i in 1..=(2 * CHECKPOINT_EVERY) {
            writer.commit(entry(i), |_| Ok(())).await.unwrap();
        }
        assert_eq!(
            log_files(&writer).await.first(),
            Some(&LogFile::Entry(1)),
            "the default retention keeps an hour"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn readers_opening_the_lake_during_cleanup_see_consistent_snapshots() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_str().unwrap().to_string();
        let writer = Lake::open(&path).unwrap();
        writer.set_log_retention(Duration::ZERO);
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut readers = Vec::new();
        for _ in 0..3 {
            let (path, done) = (path.clone(), std::sync::Arc::clone(&done));
            readers.push(tokio::spawn(async move {
                let mut opened = 0;
                while !done.load(std::sync::atomic::Ordering::SeqCst) {
                    let snap = Lake::open(&path).unwrap().snapshot().await.unwrap();
                    // Every commit added one file: a snapshot at version v holds v files.
                    assert_eq!(snap.files.len() as u64, snap.version, "a torn snapshot");
                    opened += 1;
                }
                opened
            }));
        }
        for i in 1..=(5 * CHECKPOINT_EVERY) {
            writer.commit(entry(i), |_| Ok(())).await.unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        for r in readers {
            assert!(r.await.unwrap() > 0);
        }
        let first = log_files(&writer).await[0];
        // Checkpoint 500 trimmed what checkpoint 400 covers.
        assert_eq!(first, LogFile::Entry(4 * CHECKPOINT_EVERY + 1));
    }
}
