//! `GET /api/v1/alerts` and `GET /api/v1/slos`.
//!
//! Active alerts are read from the alert book the processor keeps in the lake's state (key
//! `alerts.book`, written in the same commit as the `alerts` rows), so the answer is exactly
//! what the evaluator holds: pending and firing alerts, and rules whose query fails. SLOs are
//! the latest `slo_status` row of each SLO.

use axum::extract::{Query, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::engine::encode;
use crate::http::error::ApiError;
use crate::query_metrics::Protocol;
use crate::state::AppState;

/// The lake state key of the processor's alert book.
const BOOK_KEY: &str = "alerts.book";

fn rfc3339(ms: Option<i64>) -> Value {
    ms.and_then(chrono::DateTime::from_timestamp_millis)
        .map_or(Value::Null, |t| {
            Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        })
}

/// Filters of `GET /api/v1/alerts`.
#[derive(Debug, Default, Deserialize)]
pub struct AlertFilter {
    /// `pending` or `firing`; both when absent.
    state: Option<String>,
}

/// The active alerts, most severe and oldest first, and the failing rules.
///
/// # Errors
/// When the lake cannot be read.
pub async fn active(
    State(state): State<AppState>,
    Query(filter): Query<AlertFilter>,
) -> Result<Json<Value>, ApiError> {
    if let Some(s) = filter.state.as_deref() {
        if !matches!(s, "pending" | "firing") {
            return Err(ApiError::BadRequest(format!(
                "state must be pending or firing, not {s:?}"
            )));
        }
    }
    let snap = state
        .engine
        .lake()
        .snapshot()
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    let book = snap.state.get(BOOK_KEY).cloned().unwrap_or(Value::Null);
    let ms = |v: &Value, k: &str| v.get(k).and_then(Value::as_i64);
    let rank = |s: &str| match s {
        "critical" => 0,
        "error" => 1,
        "warning" => 2,
        _ => 3,
    };
    let mut alerts: Vec<Value> = book
        .get("active")
        .and_then(Value::as_object)
        .map(|m| m.values().cloned().collect())
        .unwrap_or_default();
    alerts.retain(|a| {
        filter
            .state
            .as_deref()
            .is_none_or(|s| a.get("state").and_then(Value::as_str) == Some(s))
    });
    alerts.sort_by_key(|a| {
        let sev = a
            .pointer("/labels/severity")
            .and_then(Value::as_str)
            .unwrap_or("");
        (rank(sev), ms(a, "active_since_ms").unwrap_or(0))
    });
    let alerts: Vec<Value> = alerts
        .iter()
        .map(|a| {
            let starts = ms(a, "fired_at_ms").or(ms(a, "active_since_ms"));
            json!({
                "alertname": a.pointer("/labels/alertname"),
                "fingerprint": a.get("fingerprint"),
                "state": a.get("state"),
                "severity": a.pointer("/labels/severity"),
                "labels": a.get("labels"),
                "annotations": a.get("annotations"),
                "value": a.get("value"),
                "starts_at": rfc3339(starts),
                "active_since": rfc3339(ms(a, "active_since_ms")),
                "rule": a.get("rule"),
                "notified": !a.get("stale").and_then(Value::as_bool).unwrap_or(false),
                "generator_url": a.get("generator_url"),
            })
        })
        .collect();
    let rule_errors: Vec<Value> = book
        .get("rule_errors")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(rule, e)| {
                    json!({
                        "rule": rule,
                        "error": e.get("error"),
                        "since": rfc3339(ms(e, "since_ms")),
                        "last": rfc3339(ms(e, "last_ms")),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Json(json!({
        "alerts": alerts,
        "rule_errors": rule_errors,
        "evaluated_at": rfc3339(ms(&book, "evaluated_at_ms").filter(|&t| t > 0)),
    })))
}

const LATEST_SLOS: &str = "SELECT slo, computed_at, period_start, period_end, good, total, sli, \
    objective, error_budget_remaining, burn_rate_5m, burn_rate_30m, burn_rate_1h, burn_rate_2h, \
    burn_rate_6h, burn_rate_1d, burn_rate_3d \
    FROM (SELECT *, row_number() OVER (PARTITION BY slo ORDER BY computed_at DESC) AS newest \
          FROM slo_status) WHERE newest = 1 ORDER BY slo";

/// Each SLO's latest status.
///
/// # Errors
/// When the lake cannot be read.
pub async fn slos(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let r = state
        .answer(Protocol::Http, state.engine.query(LATEST_SLOS))
        .await?;
    let slos = encode::objects(&r.schema, &r.batches).map_err(|e| ApiError::Internal(e.into()))?;
    Ok(Json(json!({ "slos": slos })))
}
