//! The CPU-heavy half of a flush: a finished batch encoded as Parquet files.

use std::collections::BTreeMap;
use std::time::Instant;

use bytes::Bytes;

use crate::error::IngestError;
use opslake_lake::batch::{Batch, DeadLetter, TopicPartition};
use opslake_lake::layout::data_file_path;
use opslake_lake::write::encode_parquet;
use opslake_lake::PartitionOffsets;

/// One Parquet file of a batch, ready to upload.
pub(crate) struct EncodedFile {
    /// Its path in the lake.
    pub(crate) rel: String,
    /// Its table.
    pub(crate) table: &'static str,
    /// Its rows.
    pub(crate) rows: u64,
    /// Its bytes.
    pub(crate) bytes: Bytes,
}

/// A batch encoded as Parquet files, ready to upload and commit.
pub(crate) struct Encoded {
    /// One file per table and hour.
    pub(crate) files: Vec<EncodedFile>,
    pub(crate) dead_letters: Vec<DeadLetter>,
    /// The offsets covered of each partition.
    pub(crate) offsets: BTreeMap<TopicPartition, PartitionOffsets>,
    /// Role state committed with the files (cumulative histogram series).
    pub(crate) state: BTreeMap<String, serde_json::Value>,
    /// When the batch was handed over to be written.
    pub(crate) started: Instant,
}

/// A batch being encoded on a blocking thread while the consumer reads the next one.
pub(crate) type Encoding = tokio::task::JoinHandle<Result<Encoded, IngestError>>;

/// Finishes a batch's columns and encodes one Parquet file per table and hour: the CPU-heavy
/// half of a flush, which needs neither the consumer nor the lake, so it runs on another core
/// while the consumer fills the next batch.
pub(crate) fn encode(batch: Batch, writer: &str) -> Result<Encoded, IngestError> {
    let started = Instant::now();
    let opslake_lake::batch::FinishedBatch {
        parts: record_batches,
        dead_letters,
        offsets,
        state,
    } = batch
        .finish()
        .map_err(|source| IngestError::Build { source })?;
    let mut files = Vec::with_capacity(record_batches.len());
    for ((table, date, hour), rb) in &record_batches {
        let bytes =
            encode_parquet(std::slice::from_ref(rb)).map_err(|source| IngestError::Encode {
                table: table.name().to_string(),
                source,
            })?;
        let rel = data_file_path(table.name(), date, *hour, writer);
        files.push(EncodedFile {
            rel,
            table: table.name(),
            rows: rb.num_rows() as u64,
            bytes,
        });
    }
    Ok(Encoded {
        files,
        dead_letters,
        offsets,
        state,
        started,
    })
}
