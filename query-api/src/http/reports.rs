//! `GET /api/v1/reports` and `GET /api/v1/reports/{report_id}`: the generated reports, listed
//! from the `reports` table; a report's document is its JSON, or its HTML page with
//! `Accept: text/html`.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use object_store::ObjectStoreExt;
use serde_json::{json, Value};

use crate::engine::encode;
use crate::http::error::ApiError;
use crate::query_metrics::Protocol;
use crate::state::AppState;

const LIST: &str = "SELECT report_id, kind, \"trigger\", generated_at, period_start, period_end, \
    summary, spend_to_date, month_end_forecast, next_30_days_forecast, currency \
    FROM reports ORDER BY generated_at DESC, report_id DESC";

/// The generated reports, newest first.
///
/// # Errors
/// When the lake cannot be read.
pub async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let r = state
        .answer(Protocol::Http, state.engine.query(LIST))
        .await?;
    let reports =
        encode::objects(&r.schema, &r.batches).map_err(|e| ApiError::Internal(e.into()))?;
    Ok(Json(json!({ "reports": reports })))
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 200
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// One report: JSON, or HTML when the client accepts `text/html`.
///
/// # Errors
/// 404 when there is no such report.
pub async fn one(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if !valid_id(&id) {
        return Err(ApiError::NotFound(format!("no report {id:?}")));
    }
    let sql = format!("SELECT json_path, html_path FROM reports WHERE report_id = '{id}'");
    let r = state
        .answer(Protocol::Http, state.engine.query(&sql))
        .await?;
    let rows = encode::rows(&r.schema, &r.batches).map_err(|e| ApiError::Internal(e.into()))?;
    let Some(Value::Array(paths)) = rows.into_iter().next() else {
        return Err(ApiError::NotFound(format!("no report {id:?}")));
    };
    let html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    let path = paths
        .get(usize::from(html))
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::NotFound(format!("report {id:?} has no document")))?
        .to_string();
    let lake = state.engine.lake();
    let bytes = lake
        .store()
        .get(&lake.path(&path))
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("failed to read {path}: {e}")))?
        .bytes()
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("failed to read {path}: {e}")))?;
    let content_type = if html {
        "text/html; charset=utf-8"
    } else {
        "application/json"
    };
    Ok(([(header::CONTENT_TYPE, content_type)], bytes).into_response())
}
