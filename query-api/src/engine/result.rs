//! A query's answer, as the engine gives it, the cache keeps it and the encoders write it.

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;

/// The header (HTTP) or response metadata (Flight SQL) of an answer cut short: `rows=N` or
/// `bytes=N`, the limit that cut it.
pub const TRUNCATED_HEADER: &str = "x-opslake-truncated";

/// A query's answer.
#[derive(Debug, Clone)]
pub struct QueryResult {
    /// The answer's schema.
    pub schema: SchemaRef,
    /// Its rows.
    pub batches: Vec<RecordBatch>,
    /// True when rows beyond a limit were left out ([`QueryResult::truncation`] says which).
    pub truncated: bool,
    /// Which limit cut the answer, when one did.
    pub truncation: Option<Truncation>,
}

/// The limit that cut an answer short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Truncation {
    /// `query.max_rows`: this many rows were kept.
    Rows(usize),
    /// `query.max_result_bytes`: the rows kept hold at most this many bytes.
    Bytes(usize),
}

impl Truncation {
    /// How every protocol tells it: `rows=N` or `bytes=N` (the `X-Opslake-Truncated` header,
    /// the PostgreSQL notice, the Flight SQL metadata).
    pub fn label(self) -> String {
        match self {
            Self::Rows(n) => format!("rows={n}"),
            Self::Bytes(n) => format!("bytes={n}"),
        }
    }

    /// A sentence for people.
    pub fn message(self) -> String {
        match self {
            Self::Rows(n) => format!(
                "the answer was truncated to its first {n} rows (query.max_rows)"
            ),
            Self::Bytes(n) => format!(
                "the answer was truncated to its first rows within {n} bytes (query.max_result_bytes)"
            ),
        }
    }
}
