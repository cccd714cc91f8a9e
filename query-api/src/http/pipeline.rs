//! `GET /api/v1/pipeline`: how the pipeline is doing, read from the lake itself, so every
//! instance that serves answers the same whatever roles it runs.
//!
//! - **Ingest rate**: the rows each ingest commit (a log entry that records Kafka offsets) added
//!   to each table, per minute of the commit's time, over the last hour.
//! - **Consumer backlog**: the messages the brokers hold after the lake's offsets, per partition,
//!   as the processor's alerts job last measured them (it keeps them in its book).
//! - **Processor lag**: per rollup job, the age of the oldest ingest commit it has not folded.
//!
//! Log entries never change once written, so their summaries are kept in memory
//! ([`LogSummaries`]) and only the entries written since the last request are read.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::Json;
use opslake_lake::state_keys::{OTLP_SPLIT_PREFIX, QUARANTINE_PREFIX};
use serde_json::{json, Value};

pub use crate::engine::log_summaries::LogSummaries;
use crate::http::error::ApiError;
use crate::state::AppState;

/// How far back the ingest rate reaches.
const WINDOW_MS: i64 = 3_600_000;
/// The processor's rollup jobs: (job, lake state key of its progress, the raw table it folds).
const JOBS: [(&str, &str, &str); 3] = [
    ("metric_rollups", "processor.rollups", "metrics"),
    ("log_rollups", "processor.logs", "logs"),
    ("costs", "processor.costs.progress", "billing"),
];
/// The lake state key of the alerts job's book.
const BOOK_KEY: &str = "alerts.book";

fn rfc3339(ms: i64) -> Value {
    chrono::DateTime::from_timestamp_millis(ms).map_or(Value::Null, |t| {
        Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
    })
}

/// The pipeline's ingest rate, backlog and processor lag.
///
/// # Errors
/// When the lake cannot be read.
pub async fn pipeline(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let lake = state.engine.lake();
    let snap = lake
        .snapshot()
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    let now = chrono::Utc::now().timestamp_millis();
    let since = now - WINDOW_MS;
    let recent = state
        .log_summaries
        .recent(lake, snap.version, since, WINDOW_MS)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;

    let mut per_minute: BTreeMap<(String, i64), u64> = BTreeMap::new();
    for s in recent.values() {
        for (table, rows) in &s.ingested {
            let minute = s.timestamp_ms - s.timestamp_ms.rem_euclid(60_000);
            *per_minute.entry((table.clone(), minute)).or_default() += rows;
        }
    }
    let ingest: Vec<Value> = per_minute
        .into_iter()
        .map(|((table, minute), rows)| json!({"table": table, "minute": rfc3339(minute), "rows": rows}))
        .collect();

    let mut tables: BTreeMap<&str, (u64, u64, u64)> = BTreeMap::new();
    for f in snap.files.values() {
        let t = tables.entry(f.table.as_str()).or_default();
        t.0 += 1;
        t.1 += f.rows;
        t.2 += f.bytes;
    }
    let tables: Vec<Value> = tables
        .into_iter()
        .map(|(t, (files, rows, bytes))| json!({"table": t, "files": files, "rows": rows, "bytes": bytes}))
        .collect();

    let processor: Vec<Value> = JOBS
        .iter()
        .map(|(job, key, table)| {
            let version = snap
                .state
                .get(*key)
                .and_then(|p| p.get("version"))
                .and_then(Value::as_u64);
            let oldest = recent
                .range(version.unwrap_or(0) + 1..)
                .find(|(_, s)| s.ingested.iter().any(|(t, _)| t == table))
                .map(|(_, s)| s.timestamp_ms);
            json!({
                "job": job,
                "table": table,
                "version": version,
                "versions_behind": version.map(|v| snap.version.saturating_sub(v)),
                "oldest_unfolded_at": oldest.map_or(Value::Null, rfc3339),
                "lag_seconds": oldest.map_or(0.0, |t| (now - t).max(0) as f64 / 1000.0),
            })
        })
        .collect();

    let book = snap.state.get(BOOK_KEY);
    let backlog = book
        .and_then(|b| b.get("backlog"))
        .cloned()
        .unwrap_or(json!([]));
    let backlog_at = book
        .and_then(|b| b.get("backlog_at_ms"))
        .and_then(Value::as_i64)
        .map_or(Value::Null, rfc3339);
    let evaluated_at = book
        .and_then(|b| b.get("evaluated_at_ms"))
        .and_then(Value::as_i64)
        .filter(|t| *t > 0)
        .map_or(Value::Null, rfc3339);

    // Records other roles keep in the lake's state: raw files a processor job set aside, and
    // cumulative OTLP series seen on a second partition.
    let records = |prefix: &str| -> Vec<Value> {
        snap.state
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .take(100)
            .map(|(k, v)| {
                let at = v
                    .get("at_ms")
                    .and_then(Value::as_i64)
                    .map_or(Value::Null, rfc3339);
                let mut o = v.clone();
                if let Some(m) = o.as_object_mut() {
                    m.remove("at_ms");
                    m.insert("key".into(), json!(k.strip_prefix(prefix).unwrap_or(k)));
                    m.insert("at".into(), at);
                }
                o
            })
            .collect()
    };
    let quarantined = records(QUARANTINE_PREFIX);
    let split_series = records(OTLP_SPLIT_PREFIX);

    Ok(Json(json!({
        "now": rfc3339(now),
        "quarantined": quarantined,
        "otlp_split_series": split_series,
        "lake_version": snap.version,
        "ingest": ingest,
        "tables": tables,
        "processor": processor,
        "backlog": {"checked_at": backlog_at, "partitions": backlog},
        "alerts_evaluated_at": evaluated_at,
    })))
}
