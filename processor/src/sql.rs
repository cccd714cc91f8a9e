//! The SQL engine the alert rules and SLOs are evaluated with. The processor does not own one:
//! the binary hands it the query side's engine (the same tables, functions, snapshot rules and
//! limits as the API), so a rule answers exactly what the same query answers over HTTP.

use std::future::Future;
use std::pin::Pin;

use datafusion::arrow::record_batch::RecordBatch;

/// Why a query failed, as the engine says it (planning, execution, limits).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct QueryFailed(pub String);

/// A future of the engine's answer.
pub type Answer<'a> =
    Pin<Box<dyn Future<Output = Result<Vec<RecordBatch>, QueryFailed>> + Send + 'a>>;

/// Runs read-only SQL over the lake's current snapshot.
pub trait SqlEngine: Send + Sync {
    /// The rows of `sql`.
    fn query<'a>(&'a self, sql: &'a str) -> Answer<'a>;
}

/// `s` as a SQL string literal.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Epoch milliseconds as a SQL timestamp literal.
pub fn timestamp_literal(ms: i64) -> String {
    let t = chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default();
    format!("TIMESTAMP '{}'", t.format("%Y-%m-%dT%H:%M:%S%.3f"))
}
