//! A query's answer, as the engine gives it, the cache keeps it and the encoders write it.

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;

/// A query's answer.
#[derive(Debug, Clone)]
pub struct QueryResult {
    /// The answer's schema.
    pub schema: SchemaRef,
    /// Its rows.
    pub batches: Vec<RecordBatch>,
    /// True when rows beyond `max_rows` were left out.
    pub truncated: bool,
}
