//! The processor's errors.

use datafusion::arrow::error::ArrowError;
use datafusion::parquet::errors::ParquetError;
use opslake_lake::LakeError;

/// Errors of a cycle.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The lake could not be read or written.
    #[error(transparent)]
    Lake(#[from] LakeError),
    /// A file of the lake could not be read as Parquet.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file, relative to the lake.
        path: String,
        /// The cause.
        source: ParquetError,
    },
    /// A file held rows the processor cannot use.
    #[error("bad rows in {path}: {source}")]
    Rows {
        /// The file, relative to the lake.
        path: String,
        /// The cause.
        source: ArrowError,
    },
    /// Rollups could not be encoded as Parquet.
    #[error("cannot encode rollups: {0}")]
    Encode(#[from] ParquetError),
    /// Rollup rows could not be built.
    #[error("cannot build rollups: {0}")]
    Build(#[from] ArrowError),
    /// A blocking task of the cycle panicked or was cancelled.
    #[error("processing task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
    /// The process is stopping: the cycle was abandoned between two units of work, with
    /// nothing recorded, and the next start does that work again.
    #[error("abandoned: the processor is stopping")]
    Stopping,
    /// A raw file the job cannot fold (it does not decode, holds rows the job cannot use, or
    /// folding it panicked): the cycle is abandoned, the file is recorded as quarantined, and
    /// the next cycle goes on without it.
    #[error("cannot fold {path}, set aside: {reason}")]
    Quarantine {
        /// The file, relative to the lake.
        path: String,
        /// Why.
        reason: String,
    },
}

impl ProcessError {
    /// This error of reading or folding the raw file `path` as a quarantine of that file when
    /// it is the file's fault (its bytes or rows, or a panic while folding it); errors of the
    /// lake itself stay what they are, to be retried.
    pub(crate) fn of_raw_file(self, path: &str) -> Self {
        match self {
            Self::Read { source, .. } => Self::Quarantine {
                path: path.to_string(),
                reason: format!("it does not decode as Parquet: {source}"),
            },
            Self::Rows { source, .. } | Self::Build(source) => Self::Quarantine {
                path: path.to_string(),
                reason: format!("its rows cannot be folded: {source}"),
            },
            Self::Join(e) if e.is_panic() => Self::Quarantine {
                path: path.to_string(),
                reason: format!(
                    "folding it panicked (a defect of opslake): {}",
                    panic_text(e)
                ),
            },
            other => other,
        }
    }
}

/// What a panicked task said.
fn panic_text(e: tokio::task::JoinError) -> String {
    let panic = e.into_panic();
    panic
        .downcast_ref::<&str>()
        .map(ToString::to_string)
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown".to_string())
}
