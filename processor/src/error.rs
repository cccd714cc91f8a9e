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
}
