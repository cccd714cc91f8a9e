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
}
