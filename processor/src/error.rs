//! The processor's errors.

use datafusion::arrow::error::ArrowError;
use datafusion::parquet::errors::ParquetError;
use opslake_lake::LakeError;

/// Errors of a cycle.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: ParquetError },
    #[error("bad rows in {path}: {source}")]
    Rows { path: String, source: ArrowError },
    #[error("cannot encode rollups: {0}")]
    Encode(#[from] ParquetError),
    #[error("cannot build rollups: {0}")]
    Build(#[from] ArrowError),
    #[error("processing task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
    /// The process is stopping: the cycle was abandoned between two units of work, with
    /// nothing recorded, and the next start does that work again.
    #[error("abandoned: the processor is stopping")]
    Stopping,
}
