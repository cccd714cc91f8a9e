//! API errors: JSON `{"error": "..."}` with the status that says whose fault it is.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::engine::error::QueryError;

/// An error answered to an API client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request or query is wrong: 400 with the reason.
    #[error("{0}")]
    BadRequest(String),
    /// A statement that is not a read-only query (400).
    #[error(
        "only read-only queries run here (SELECT, WITH, EXPLAIN, SHOW, DESCRIBE); refused: {0}"
    )]
    ReadOnly(String),
    /// No valid bearer token (401).
    #[error("missing or wrong bearer token")]
    Unauthorized,
    /// The query ran longer than its timeout (408, as CONTRACT section 5 says).
    #[error("query did not finish within {0:?}")]
    Timeout(std::time::Duration),
    /// The body (or the statement in it) was larger than the limit, in bytes (413).
    #[error("the request is larger than {0} bytes")]
    TooLarge(usize),
    /// Too many queries ran or waited (429).
    #[error("too many queries are running; retry shortly")]
    Busy,
    /// Nothing at this path (404).
    #[error("not found: {0}")]
    NotFound(String),
    /// Anything else: logged, answered as 500 without details.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) | Self::ReadOnly(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Busy => StatusCode::TOO_MANY_REQUESTS,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Self::Internal(e) = &self {
            tracing::error!(error = ?e, "internal error answering a request");
        }
        let status = self.status();
        let mut resp = (
            status,
            Json(serde_json::json!({ "error": self.to_string() })),
        )
            .into_response();
        match self {
            Self::Busy => {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            Self::Unauthorized => {
                resp.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        resp
    }
}

impl From<QueryError> for ApiError {
    /// The engine's errors as HTTP answers: the one place HTTP decides their statuses.
    fn from(e: QueryError) -> Self {
        match e {
            QueryError::Refused(what) => Self::ReadOnly(what),
            QueryError::Invalid(why) => Self::BadRequest(why),
            QueryError::Timeout(after) => Self::Timeout(after),
            QueryError::Busy => Self::Busy,
            QueryError::TooLarge(limit) => Self::TooLarge(limit),
            QueryError::Internal(e) => Self::Internal(e),
        }
    }
}
