//! The engine's errors: what went wrong with a query, in no protocol's vocabulary. Each front
//! end turns them into its own answer in one place: an HTTP status
//! (`crate::http::error`), a SQLSTATE (`crate::pg::session::pg_error`), a gRPC status
//! (`crate::flight::service::status`).

use std::time::Duration;

/// Why a query was not answered.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// A statement that is not a read-only query, or reads what no query may (files, URLs).
    #[error(
        "only read-only queries run here (SELECT, WITH, EXPLAIN, SHOW, DESCRIBE); refused: {0}"
    )]
    Refused(String),
    /// The query is wrong (it does not parse or plan, or needs more memory than its limit):
    /// the reason, for the client.
    #[error("{0}")]
    Invalid(String),
    /// The query ran longer than its timeout.
    #[error("query did not finish within {0:?}")]
    Timeout(Duration),
    /// Every turn to run a query was taken, for longer than the wait in line.
    #[error("too many queries are running; retry shortly")]
    Busy,
    /// The statement is longer than the limit, in bytes.
    #[error("the statement is longer than {0} bytes")]
    TooLarge(usize),
    /// Anything else (the lake cannot be read, a defect): logged by the front end, answered
    /// without details.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

/// DataFusion errors of planning and execution are the query's fault unless they are I/O or
/// internal errors; a memory limit is reported as a clear refusal too, never an abort.
pub fn from_datafusion(e: datafusion::error::DataFusionError) -> QueryError {
    use datafusion::error::DataFusionError as E;
    match e.find_root() {
        E::ObjectStore(_) | E::IoError(_) | E::Internal(_) => {
            QueryError::Internal(anyhow::Error::new(e))
        }
        E::ResourcesExhausted(m) => QueryError::Invalid(format!(
            "query needs more memory than its limit allows: {m}"
        )),
        _ => QueryError::Invalid(e.strip_backtrace()),
    }
}
