#![warn(missing_docs, unreachable_pub)]

//! The Parquet lake: where its files live, and the commit log that says which of them are part
//! of the lake and which Kafka offsets they cover. Every crate that reads or writes the lake
//! goes through this one: ingest (events into [`batch`]es, [`write`]n as Parquet), the processor
//! and the query side (the [`Snapshot`]), and the housekeeping ([`compact`], [`retention`]).
//!
//! Layout under the lake's root:
//! ```text
//! <table>/date=YYYY-MM-DD/hour=HH/part-<uuid>.parquet   data files (raw tables partitioned by time)
//! _opslake_log/<version:020>.json                       commit log, one entry per commit
//! _opslake_log/_checkpoint/<version:020>.json           full snapshots, every CHECKPOINT_EVERY commits
//! _opslake_log/_last_checkpoint                         {"version": N, "format": 1}: the newest checkpoint
//! <table>/_delta_log/...                                 the table's Delta Lake log, mirrored from it (module delta)
//! ```
//! Entries and checkpoints carry their log `format` ([`LOG_FORMAT`]); a newer one is refused by
//! name, never misread.
//! A data file becomes part of the lake only when a log entry adds it, so writing a file and
//! recording the offsets it covers is one atomic step: the creation of the next log entry, which
//! succeeds for exactly one writer (`PutMode::Create`: a hard link on local disk, a conditional
//! write on object stores). Compaction replaces files in one entry, so a query that reads the
//! snapshot sees each row once.

pub mod batch;
pub mod compact;
pub mod delta;
pub mod layout;
mod log;
pub mod retention;
pub mod state_keys;
#[cfg(any(test, feature = "test-util"))]
pub mod test_util;
pub mod write;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::ObjectStore;
use url::Url;

pub use log::{
    AddFile, CommitError, LogEntry, PartitionOffsets, Snapshot, CHECKPOINT_EVERY, LOG_FORMAT,
};

/// Errors of opening or using the lake.
#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    /// The lake's location does not name a place opslake can use.
    #[error("lake location {location:?} is not usable: {reason}")]
    Location {
        /// The location as given.
        location: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// The local lake directory could not be created.
    #[error("failed to create lake directory {path}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The file system's error.
        source: std::io::Error,
    },
    /// An object store read, write, list or delete failed.
    #[error("object store operation on {path} failed")]
    Store {
        /// Lake-relative path of the object.
        path: String,
        /// The object store's error.
        source: object_store::Error,
    },
    /// A log entry or checkpoint does not parse.
    #[error("lake log entry {path} is not valid: {reason}")]
    Corrupt {
        /// Lake-relative path of the file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A log entry was removed behind a newer checkpoint ([`DEFAULT_LOG_RETENTION`]): a reader
    /// that needs the entries themselves (not only the snapshot) must start over from the
    /// snapshot.
    #[error("lake log entry {version} was trimmed behind a newer checkpoint")]
    EntryGone {
        /// The version that is gone.
        version: u64,
    },
    /// A log file is in a format newer than this opslake reads.
    #[error("lake log file {path} is in format {found}, newer than this opslake reads ({supported}): upgrade opslake")]
    NewerFormat {
        /// Lake-relative path of the file.
        path: String,
        /// The format the file is in.
        found: u32,
        /// The newest format this opslake reads.
        supported: u32,
    },
}

/// A lake: an object store, the root path inside it, and its commit log.
#[derive(Debug)]
pub struct Lake {
    store: Arc<dyn ObjectStore>,
    /// The same store when the lake is a local directory.
    local: Option<Arc<LocalFileSystem>>,
    root: Path,
    url: Url,
    snapshot: tokio::sync::Mutex<Snapshot>,
    /// How old a log entry or checkpoint behind the previous checkpoint must be before it is
    /// removed, milliseconds ([`DEFAULT_LOG_RETENTION`]).
    log_retention_ms: AtomicU64,
    /// When a refresh of the shared snapshot last began that ended at the end of the log.
    head_seen_at: std::sync::Mutex<Option<std::time::Instant>>,
}

/// How long log entries and checkpoints stay after a newer checkpoint covers them: longer than
/// any writer's snapshot may lag behind the log, so that no writer can create a removed version
/// again (a writer that finds the next entry missing also reads `_last_checkpoint`).
pub const DEFAULT_LOG_RETENTION: std::time::Duration = std::time::Duration::from_secs(3600);

impl Lake {
    /// Opens the lake at `location`: a local directory (created when missing), a `file://` URL,
    /// or an object store URL: `s3://bucket/prefix`, `gs://bucket/prefix`,
    /// `az://container/prefix` (also `abfs[s]://`). Credentials, region and endpoint come from
    /// the provider's usual environment variables (`AWS_ACCESS_KEY_ID`, `AWS_REGION`,
    /// `AWS_ENDPOINT`, `GOOGLE_SERVICE_ACCOUNT`, `AZURE_STORAGE_ACCOUNT_NAME`, ...). On S3,
    /// commits use conditional writes (`If-None-Match: *`) unless `AWS_CONDITIONAL_PUT` says
    /// otherwise (e.g. `dynamo:<table>` for stores without them).
    ///
    /// # Errors
    /// When the location is not supported, cannot be parsed or the directory cannot be created.
    pub fn open(location: &str) -> Result<Arc<Self>, LakeError> {
        let bad = |reason: String| LakeError::Location {
            location: location.to_string(),
            reason,
        };
        if !location.contains("://") || location.starts_with("file://") {
            let dir = PathBuf::from(location.strip_prefix("file://").unwrap_or(location));
            return Self::open_local(location, &dir);
        }
        let url = Url::parse(location).map_err(|e| bad(e.to_string()))?;
        let store: Arc<dyn ObjectStore> = match url.scheme() {
            "s3" | "s3a" => {
                let mut b = object_store::aws::AmazonS3Builder::from_env().with_url(location);
                if std::env::var_os("AWS_CONDITIONAL_PUT").is_none() {
                    b = b.with_conditional_put(object_store::aws::S3ConditionalPut::ETagMatch);
                }
                Arc::new(b.build().map_err(|e| bad(e.to_string()))?)
            }
            "gs" => Arc::new(
                object_store::gcp::GoogleCloudStorageBuilder::from_env()
                    .with_url(location)
                    .build()
                    .map_err(|e| bad(e.to_string()))?,
            ),
            "az" | "abfs" | "abfss" | "azure" => Arc::new(
                object_store::azure::MicrosoftAzureBuilder::from_env()
                    .with_url(location)
                    .build()
                    .map_err(|e| bad(e.to_string()))?,
            ),
            other => {
                return Err(bad(format!(
                    "scheme {other}:// is not supported (use a directory, file://, s3://, gs:// or az://)"
                )))
            }
        };
        // Object paths inside the bucket or container: the URL's path, without slashes at
        // the ends (for az:// and abfs:// the container may be the first path segment).
        let prefix = url.path().trim_matches('/');
        let root = Path::from(prefix);
        let mut lake_url = url.clone();
        let path = if prefix.is_empty() {
            "/".to_string()
        } else {
            format!("/{prefix}/")
        };
        lake_url.set_path(&path);
        Ok(Arc::new(Self {
            store,
            local: None,
            root,
            url: lake_url,
            snapshot: tokio::sync::Mutex::new(Snapshot::default()),
            log_retention_ms: AtomicU64::new(DEFAULT_LOG_RETENTION.as_millis() as u64),
            head_seen_at: std::sync::Mutex::new(None),
        }))
    }

    fn open_local(location: &str, dir: &std::path::Path) -> Result<Arc<Self>, LakeError> {
        std::fs::create_dir_all(dir).map_err(|source| LakeError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let abs = std::fs::canonicalize(dir).map_err(|source| LakeError::CreateDir {
            path: dir.to_path_buf(),
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
        let local = Arc::new(LocalFileSystem::new());
        Ok(Arc::new(Self {
            store: Arc::clone(&local) as Arc<dyn ObjectStore>,
            local: Some(local),
            root,
            url,
            snapshot: tokio::sync::Mutex::new(Snapshot::default()),
            log_retention_ms: AtomicU64::new(DEFAULT_LOG_RETENTION.as_millis() as u64),
            head_seen_at: std::sync::Mutex::new(None),
        }))
    }

    /// Sets how long log entries and checkpoints behind the previous checkpoint are kept
    /// ([`DEFAULT_LOG_RETENTION`]).
    pub fn set_log_retention(&self, keep: std::time::Duration) {
        self.log_retention_ms.store(
            u64::try_from(keep.as_millis()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    fn log_retention(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.log_retention_ms.load(Ordering::Relaxed))
    }

    /// Whether the shared snapshot was at the end of the log at a moment less than half the
    /// log retention ago. Every entry after it was created since, so none can have been
    /// trimmed yet: a missing next entry is the end of the log, and `_last_checkpoint` need
    /// not be read (one small read less per commit and per query).
    fn head_seen_recently(&self) -> bool {
        self.head_seen_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_some_and(|at| at.elapsed() < self.log_retention() / 2)
    }

    fn saw_head(&self, at: std::time::Instant) {
        *self
            .head_seen_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(at);
    }

    /// The object store holding the lake.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The lake's store as a local file system, when the lake is a directory: for readers that
    /// read its files directly rather than through the store's blocking thread pool.
    pub fn local_files(&self) -> Option<&Arc<LocalFileSystem>> {
        self.local.as_ref()
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
    /// When an entry cannot be read; [`LakeError::EntryGone`] when one in the range was
    /// trimmed.
    pub async fn entries(&self, after: u64, upto: u64) -> Result<Vec<LogEntry>, LakeError> {
        let mut out = Vec::with_capacity(upto.saturating_sub(after) as usize);
        for v in after + 1..=upto {
            match log::read_entry(self, v).await? {
                Some(e) => out.push(e),
                None => return Err(LakeError::EntryGone { version: v }),
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
