//! The Grafana JSON datasource API (simPod/GrafanaJsonDatasource 0.6,
//! `../shared/data/grafana-json-datasource/openapi.yaml`), under `/grafana`: the datasource URL
//! is `http://HOST:PORT/grafana`.
//!
//! `GET /` tests the connection; `POST /metrics` lists the metrics with their payload pickers,
//! whose options come from the data through `POST /metric-payload-options`; `POST /query`
//! answers time series (value first, epoch ms) and tables (which also serve as annotations:
//! columns `time`, `title`, `text`, `tags`); `POST /variable`, `/tag-keys` and `/tag-values`
//! serve dashboard variables and ad hoc filters. `POST /search` is kept for older clients.

pub mod alert_targets;
pub mod catalog;
pub mod editor;
pub mod frames;
pub mod macros;
pub mod plan;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::engine::result::QueryResult;
use crate::http::error::ApiError;
use crate::state::AppState;
use catalog::{AdhocFilter, Ctx, Shape};
use editor::Options;
use frames::Frame;
use macros::{parse_duration_ms, Window};

/// The datasource's routes, to be nested under `/grafana`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(health))
        .route("/metrics", post(metrics))
        .route("/search", post(search))
        .route("/metric-payload-options", post(payload_options))
        .route("/query", post(query))
        .route("/variable", post(variable))
        .route("/tag-keys", post(tag_keys))
        .route("/tag-values", post(tag_values))
}

/// `GET /grafana/`: the datasource's connection test.
pub async fn health() -> Json<Value> {
    Json(json!({"status": "ok", "datasource": "opslake"}))
}

/// Reads a JSON body; an empty body is `{}`.
async fn body<T: for<'de> Deserialize<'de>>(state: &AppState, body: Body) -> Result<T, ApiError> {
    let bytes: Bytes = axum::body::to_bytes(body, state.config.max_body_bytes)
        .await
        .map_err(|_| ApiError::TooLarge(state.config.max_body_bytes))?;
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        &bytes
    };
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::BadRequest(format!("bad request body: {e}")))
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Runs a read-only query under the API's concurrency limit.
async fn run(state: &AppState, sql: &str) -> Result<QueryResult, ApiError> {
    Ok(state
        .answer(
            crate::query_metrics::Protocol::Http,
            state.engine.query(sql),
        )
        .await?)
}

/// The first (and second, when there is one) column of a result as text.
fn two_columns(r: &QueryResult) -> Result<Vec<(String, String)>, ApiError> {
    let mut out = Vec::new();
    for b in &r.batches {
        if b.num_columns() == 0 {
            continue;
        }
        let text = |i: usize| -> Result<Vec<Option<String>>, ApiError> {
            let c = cast(b.column(i), &DataType::Utf8)
                .map_err(|e| ApiError::BadRequest(e.to_string()))?;
            let a = c.as_string::<i32>();
            Ok((0..a.len())
                .map(|r| (!a.is_null(r)).then(|| a.value(r).to_string()))
                .collect())
        };
        let first = text(0)?;
        let second = if b.num_columns() > 1 {
            text(1)?
        } else {
            first.clone()
        };
        for (v, t) in first.into_iter().zip(second) {
            if let Some(v) = v {
                let t = t.unwrap_or_else(|| v.clone());
                out.push((v, t));
            }
        }
    }
    Ok(out)
}

async fn metrics(State(state): State<AppState>, b: Body) -> Result<Json<Value>, ApiError> {
    // The request names the current metric and payload; the list does not depend on them.
    let _: Value = body(&state, b).await?;
    Ok(Json(editor::metrics()))
}

async fn search(State(state): State<AppState>, b: Body) -> Result<Json<Value>, ApiError> {
    let _: Value = body(&state, b).await?;
    let names: Vec<Value> = editor::metrics()
        .as_array()
        .map(|a| a.iter().map(|m| m["value"].clone()).collect())
        .unwrap_or_default();
    Ok(Json(Value::Array(names)))
}

/// A picker's request; a missing metric or name is no picker this datasource has (no options).
#[derive(Deserialize)]
struct PayloadOptionsRequest {
    #[serde(default)]
    metric: String,
    #[serde(default)]
    payload: Value,
    #[serde(default)]
    name: String,
}

async fn payload_options(State(state): State<AppState>, b: Body) -> Result<Json<Value>, ApiError> {
    let req: PayloadOptionsRequest = body(&state, b).await?;
    let values = match editor::payload_options(&req.metric, &req.name, &req.payload, now_ms())? {
        Options::Static(v) => v.into_iter().map(|v| (v.clone(), v)).collect(),
        Options::Sql(sql) => two_columns(&run(&state, &sql).await?)?,
    };
    Ok(Json(Value::Array(
        values
            .into_iter()
            .map(|(v, l)| json!({"value": v, "label": l}))
            .collect(),
    )))
}

#[derive(Deserialize, Default)]
struct TimeRange {
    from: Option<String>,
    to: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct QueryRequest {
    #[serde(default)]
    range: Option<TimeRange>,
    #[serde(default)]
    interval: Option<String>,
    #[serde(default)]
    interval_ms: Option<f64>,
    #[serde(default)]
    max_data_points: Option<f64>,
    #[serde(default)]
    targets: Vec<Target>,
    #[serde(default)]
    filters: Vec<AdhocFilter>,
}

#[derive(Deserialize)]
struct Target {
    #[serde(default)]
    target: Option<String>,
    #[serde(default)]
    payload: Option<Value>,
    #[serde(default)]
    hide: Option<bool>,
}

fn parse_time(s: &str, what: &str) -> Result<i64, ApiError> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_millis())
        .or_else(|_| s.parse::<i64>())
        .map_err(|_| ApiError::BadRequest(format!("range.{what} {s:?} is not an RFC 3339 time")))
}

/// The range of a request; the last 6 hours when it has none.
fn window(
    range: Option<&TimeRange>,
    interval: Option<&str>,
    interval_ms: Option<f64>,
    points: i64,
) -> Result<Window, ApiError> {
    let now = now_ms();
    let to_ms = match range.and_then(|r| r.to.as_deref()) {
        Some(t) => parse_time(t, "to")?,
        None => now,
    };
    let from_ms = match range.and_then(|r| r.from.as_deref()) {
        Some(f) => parse_time(f, "from")?,
        None => to_ms - 6 * 3_600_000,
    };
    if from_ms > to_ms {
        return Err(ApiError::BadRequest("range.from is after range.to".into()));
    }
    let interval_ms = interval_ms
        .map(|v| v as i64)
        .or_else(|| interval.and_then(parse_duration_ms))
        .unwrap_or((to_ms - from_ms) / points.max(1))
        .max(1);
    Ok(Window {
        from_ms,
        to_ms,
        interval_ms,
    })
}

async fn query(State(state): State<AppState>, b: Body) -> Result<Response, ApiError> {
    let req: QueryRequest = body(&state, b).await?;
    let max_points = req
        .max_data_points
        .map_or(1000, |v| v as i64)
        .clamp(1, 100_000);
    let w = window(
        req.range.as_ref(),
        req.interval.as_deref(),
        req.interval_ms,
        max_points,
    )?;
    let ctx = Ctx {
        window: w,
        max_points,
        filters: &req.filters,
    };
    let mut out = Vec::new();
    for t in &req.targets {
        if t.hide == Some(true) {
            continue;
        }
        let Some(target) = t.target.as_deref().filter(|s| !s.is_empty()) else {
            continue;
        };
        let payload = t.payload.clone().unwrap_or(Value::Null);
        let planned = match catalog::plan(target, &payload, &ctx) {
            Ok(p) => p,
            // A target this datasource does not have: say so where the panel shows data, as
            // a series named with the reason and no points (what the datasource's schema
            // allows), instead of failing every other target of the request.
            Err(ApiError::NotFound(message)) => {
                tracing::debug!(target, "unknown grafana target");
                out.push(Frame::Series {
                    target: message,
                    datapoints: Vec::new(),
                });
                continue;
            }
            Err(e) => return Err(e),
        };
        for planned in planned {
            let r = run(&state, &planned.sql).await?;
            match planned.shape {
                Shape::TimeSeries { suffix } => out.extend(frames::time_series(&r, &suffix)?),
                Shape::Table => out.push(Frame::Table(frames::table(&r)?)),
            }
        }
    }
    let body = serde_json::to_vec(&out).map_err(|e| ApiError::Internal(e.into()))?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response())
}

#[derive(Deserialize, Default)]
struct VariableRequest {
    #[serde(default)]
    payload: Value,
    #[serde(default)]
    range: Option<TimeRange>,
}

async fn variable(State(state): State<AppState>, b: Body) -> Result<Json<Value>, ApiError> {
    let req: VariableRequest = body(&state, b).await?;
    let target = match &req.payload {
        Value::String(s) => s.clone(),
        Value::Object(o) => o
            .get("target")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        _ => String::new(),
    };
    if target.trim().is_empty() {
        // Nothing asked: no values (the variable editor sends this while the query is empty).
        return Ok(Json(json!([])));
    }
    let w = window(req.range.as_ref(), None, None, 1000)?;
    let sql = match editor::variable_sql(&target, &w, now_ms()) {
        Ok(sql) => sql,
        // Not a query of this datasource: no values (the variable editor previews none).
        Err(ApiError::NotFound(message)) => {
            tracing::debug!(message, "unknown variable query");
            return Ok(Json(json!([])));
        }
        Err(e) => return Err(e),
    };
    let rows = two_columns(&run(&state, &sql).await?)?;
    // `__text`/`__value` as the plugin reads them, and `text`/`value` as the spec's schema
    // requires them.
    Ok(Json(Value::Array(
        rows.into_iter()
            .map(|(v, t)| json!({"__text": t, "__value": v, "text": t, "value": v}))
            .collect(),
    )))
}

async fn tag_keys(State(state): State<AppState>, b: Body) -> Result<Json<Value>, ApiError> {
    let _: Value = body(&state, b).await?;
    let rows = two_columns(&run(&state, &editor::tag_keys_sql(now_ms())).await?)?;
    Ok(Json(Value::Array(
        rows.into_iter()
            .map(|(k, _)| json!({"type": "string", "text": k}))
            .collect(),
    )))
}

#[derive(Deserialize)]
struct TagValuesRequest {
    #[serde(default)]
    key: String,
}

async fn tag_values(State(state): State<AppState>, b: Body) -> Result<Json<Value>, ApiError> {
    let req: TagValuesRequest = body(&state, b).await?;
    let sql = match editor::tag_values_sql(&req.key, now_ms()) {
        Ok(sql) => sql,
        // Not a key any table has: no values.
        Err(ApiError::BadRequest(message)) => {
            tracing::debug!(message, "no values for this filter key");
            return Ok(Json(json!([])));
        }
        Err(e) => return Err(e),
    };
    let rows = two_columns(&run(&state, &sql).await?)?;
    Ok(Json(Value::Array(
        rows.into_iter().map(|(v, _)| json!({"text": v})).collect(),
    )))
}
