//! The Parquet lake: where its files live, and the commit log that says which of them are part
//! of the lake and which Kafka offsets they cover.
//!
//! Layout under the lake's root:
//! ```text
//! <table>/date=YYYY-MM-DD/hour=HH/part-<uuid>.parquet   data files (raw tables partitioned by time)
//! _opslake_log/<version:020>.json                       commit log, one entry per commit
//! _opslake_log/_checkpoint/<version:020>.json           full snapshots, every CHECKPOINT_EVERY commits
//! ```
//! A data file becomes part of the lake only when a log entry adds it, so writing a file and
//! recording the offsets it covers is one atomic step: the creation of the next log entry, which
//! succeeds for exactly one writer (`PutMode::Create`: a hard link on local disk, a conditional
//! write on object stores). Compaction replaces files in one entry, so a query that reads the
//! snapshot sees each row once.

mod log;

use std::path::PathBuf;
use std::sync::Arc;

use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::ObjectStore;
use url::Url;

pub use log::{AddFile, CommitError, LogEntry, PartitionOffsets, Snapshot, CHECKPOINT_EVERY};

/// Errors of opening or using the lake.
#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    #[error("lake location {location:?} is not usable: {reason}")]
    Location { location: String, reason: String },
    #[error("failed to create lake directory {path}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("object store operation on {path} failed")]
    Store {
        path: String,
        source: object_store::Error,
    },
    #[error("lake log entry {path} is not valid: {reason}")]
    Corrupt { path: String, reason: String },
}

/// A lake: an object store, the root path inside it, and its commit log.
#[derive(Debug)]
pub struct Lake {
    store: Arc<dyn ObjectStore>,
    root: Path,
    url: Url,
    snapshot: tokio::sync::Mutex<Snapshot>,
}

impl Lake {
    /// Opens the lake at `location`: a local directory (created when missing) or a `file://` URL.
    ///
    /// # Errors
    /// When the location is not supported or the directory cannot be created.
    pub fn open(location: &str) -> Result<Arc<Self>, LakeError> {
        let dir = if let Some(rest) = location.strip_prefix("file://") {
            PathBuf::from(rest)
        } else if location.contains("://") {
            return Err(LakeError::Location {
                location: location.to_string(),
                reason: "only local directories and file:// URLs are supported by this build"
                    .into(),
            });
        } else {
            PathBuf::from(location)
        };
        std::fs::create_dir_all(&dir).map_err(|source| LakeError::CreateDir {
            path: dir.clone(),
            source,
        })?;
        let abs = std::fs::canonicalize(&dir).map_err(|source| LakeError::CreateDir {
            path: dir.clone(),
            source,
        })?;
        let url = Url::from_directory_path(&abs).map_err(|()| LakeError::Location {
            location: location.to_string(),
            reason: "not an absolute path".into(),
        })?;
        let root = Path::from_filesystem_path(&abs).map_err(|e| LakeError::Location {
            location: location.to_string(),
            reason: e.to_string(),
        })?;
        let store: Arc<dyn ObjectStore> = Arc::new(LocalFileSystem::new());
        Ok(Arc::new(Self {
            store,
            root,
            url,
            snapshot: tokio::sync::Mutex::new(Snapshot::default()),
        }))
    }

    /// The object store holding the lake.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The lake's root as a URL with a trailing slash (`file:///srv/lake/`).
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The store path of a lake-relative path (`metrics/date=.../x.parquet`).
    pub fn path(&self, relative: &str) -> Path {
        let mut p = self.root.clone();
        for part in relative.split('/').filter(|s| !s.is_empty()) {
            p = p.join(part);
        }
        p
    }

    /// The newest snapshot of the lake, after reading any log entries written since the last call.
    ///
    /// # Errors
    /// When the log cannot be read.
    pub async fn snapshot(&self) -> Result<Snapshot, LakeError> {
        let mut snap = self.snapshot.lock().await;
        snap.refresh(self).await?;
        Ok(snap.clone())
    }

    /// The log entries after version `after` up to and including `upto`, in order.
    ///
    /// # Errors
    /// When an entry cannot be read, or one in the range is missing.
    pub async fn entries(&self, after: u64, upto: u64) -> Result<Vec<LogEntry>, LakeError> {
        let mut out = Vec::with_capacity(upto.saturating_sub(after) as usize);
        for v in after + 1..=upto {
            match log::read_entry(self, v).await? {
                Some(e) => out.push(e),
                None => {
                    return Err(LakeError::Corrupt {
                        path: format!("_opslake_log/{v:020}.json"),
                        reason: "entry is missing".into(),
                    })
                }
            }
        }
        Ok(out)
    }

    /// Commits `entry` as the next log version, after `check` accepts the newest snapshot.
    /// `check` runs again on every retry, so a writer that lost a race sees what won.
    ///
    /// # Errors
    /// [`CommitError::Conflict`] when `check` refuses; [`CommitError::Lake`] on I/O failure.
    pub async fn commit<F>(&self, mut entry: LogEntry, check: F) -> Result<u64, CommitError>
    where
        F: Fn(&Snapshot) -> Result<(), String>,
    {
        let mut snap = self.snapshot.lock().await;
        log::commit(self, &mut snap, &mut entry, check).await
    }
}
