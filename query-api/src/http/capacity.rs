//! `GET /api/v1/capacity` (CONTRACT section 10): the current verdict of each resource series,
//! the latest `leaks` row of each series (a cleared one included) and its latest
//! `capacity_forecasts` row, what runs out first first. `?service=` narrows both to a service.

use axum::extract::{Query, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::engine::encode;
use crate::http::error::ApiError;
use crate::query_metrics::Protocol;
use crate::state::AppState;

/// Filters of `GET /api/v1/capacity`.
#[derive(Debug, Default, Deserialize)]
pub struct CapacityFilter {
    /// Only this service's series.
    service: Option<String>,
}

/// The latest row of each series of `table` by `time`, optionally of one service.
fn latest(table: &str, time: &str, service: Option<&str>, order: &str) -> String {
    let filter = service.map_or(String::new(), |s| {
        format!("WHERE service = '{}'", s.replace('\'', "''"))
    });
    format!(
        "SELECT * EXCLUDE (newest) FROM (SELECT *, row_number() OVER (PARTITION BY series \
         ORDER BY {time} DESC) AS newest FROM {table} {filter}) WHERE newest = 1 ORDER BY {order}"
    )
}

/// Current leaks and forecasts.
///
/// # Errors
/// When the lake cannot be read.
pub async fn capacity(
    State(state): State<AppState>,
    Query(filter): Query<CapacityFilter>,
) -> Result<Json<Value>, ApiError> {
    let service = filter.service.as_deref();
    let leaks = latest(
        "leaks",
        "detected_at",
        service,
        "growth_pct_per_day DESC, series",
    );
    let forecasts = latest(
        "capacity_forecasts",
        "computed_at",
        service,
        "exhausted_at ASC NULLS LAST, current / \"limit\" DESC, series",
    );
    let mut out = serde_json::Map::new();
    for (key, sql) in [("leaks", leaks), ("forecasts", forecasts)] {
        let r = state
            .answer(Protocol::Http, state.engine.query(&sql))
            .await?;
        let rows =
            encode::objects(&r.schema, &r.batches).map_err(|e| ApiError::Internal(e.into()))?;
        out.insert(key.into(), json!(rows));
    }
    Ok(Json(Value::Object(out)))
}
