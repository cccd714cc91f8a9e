//! What the Grafana query editor and dashboards are offered: the metrics with their payload
//! pickers, the options of each picker, dashboard variables and ad hoc filter keys and values.
//! Every value from a request reaches SQL as a quoted literal.

use serde_json::{json, Value};

use super::catalog::is_key;
use super::macros::{day, Window};
use super::plan::{first, in_list, lit, values};
use crate::http::error::ApiError;

fn payload(name: &str, label: &str, kind: &str, options: Value, reload: bool) -> Value {
    let mut p =
        json!({"name": name, "label": label, "type": kind, "reloadMetric": reload, "width": 20});
    if let Value::Array(a) = &options {
        if !a.is_empty() {
            p["options"] = options;
        }
    }
    p
}

fn opts(values: &[(&str, &str)]) -> Value {
    Value::Array(
        values
            .iter()
            .map(|(v, l)| json!({"value": v, "label": l}))
            .collect(),
    )
}

fn empty() -> Value {
    json!([])
}

/// The metrics the query editor offers, with their payloads; pickers without options are
/// filled from the data through `/metric-payload-options`.
pub fn metrics() -> Value {
    let percentiles = opts(&[
        ("p50", "p50"),
        ("p90", "p90"),
        ("p95", "p95"),
        ("p99", "p99"),
        ("p99.9", "p99.9"),
    ]);
    json!([
        {"value": "latency", "label": "Latency percentiles (from sketches)", "payloads": [
            payload("service", "Service", "multi-select", empty(), false),
            payload("name", "Metric", "select", empty(), false),
            payload("percentile", "Percentile", "multi-select", percentiles, false),
            payload("labels", "Labels", "multi-select", empty(), false),
            payload("group_by", "Series per", "select", empty(), false),
        ]},
        {"value": "throughput", "label": "Throughput (events per second)", "payloads": [
            payload("service", "Service", "multi-select", empty(), false),
            payload("name", "Metric", "select", empty(), false),
            payload("labels", "Labels", "multi-select", empty(), false),
            payload("group_by", "Series per", "select", empty(), false),
        ]},
        {"value": "error_rate", "label": "Error rate (logs)", "payloads": [
            payload("service", "Service", "multi-select", empty(), false),
        ]},
        {"value": "cost", "label": "Daily cost", "payloads": [
            payload("group_by", "Series per", "select", opts(&[("total", "total"), ("provider", "provider"), ("service", "service"), ("resource_type", "resource type"), ("region", "region"), ("resource_id", "resource")]), false),
            payload("column", "Column", "select", opts(&[("cost", "billed cost"), ("effective_cost", "effective cost"), ("usage_quantity", "usage")]), false),
            payload("provider", "Provider", "multi-select", empty(), false),
            payload("service", "Service", "multi-select", empty(), false),
        ]},
        {"value": "cost_forecast", "label": "Cost forecast with 80% and 95% intervals", "payloads": [
            payload("scope", "Scope", "select", opts(&[("total", "total"), ("provider", "provider"), ("service", "service"), ("resource", "resource")]), true),
            payload("key", "Key", "select", empty(), false),
        ]},
        {"value": "anomalies", "label": "Anomalies (table or annotations)", "payloads": [
            payload("service", "Service", "multi-select", empty(), false),
        ]},
        {"value": "regressions", "label": "Regressions (table or annotations)", "payloads": [
            payload("service", "Service", "multi-select", empty(), false),
        ]},
        {"value": "opportunities", "label": "Savings opportunities (table)", "payloads": [
            payload("kind", "Kind", "multi-select", opts(&[("idle", "idle"), ("underutilized", "underutilized"), ("oversized", "oversized"), ("provider_disparity", "provider disparity")]), false),
        ]},
        {"value": "alerts", "label": "Alert state changes (table or annotations)", "payloads": [
            payload("alertname", "Alert", "multi-select", empty(), false),
            payload("state", "State", "multi-select", opts(&[("pending", "pending"), ("firing", "firing"), ("resolved", "resolved")]), false),
            payload("severity", "Severity", "multi-select", opts(&[("critical", "critical"), ("error", "error"), ("warning", "warning"), ("info", "info")]), false),
        ]},
        {"value": "alert_counts", "label": "Alerts fired per interval", "payloads": [
            payload("alertname", "Alert", "multi-select", empty(), false),
            payload("severity", "Severity", "multi-select", opts(&[("critical", "critical"), ("error", "error"), ("warning", "warning"), ("info", "info")]), false),
            payload("group_by", "Series per", "select", opts(&[("alertname", "alert"), ("severity", "severity")]), false),
        ]},
        {"value": "slo", "label": "SLO error budget, SLI or burn rates", "payloads": [
            payload("slo", "SLO", "multi-select", empty(), false),
            payload("show", "Show", "select", opts(&[("budget", "error budget left"), ("sli", "SLI"), ("burn", "burn rates")]), false),
        ]},
        {"value": "log_errors", "label": "Recent error logs (table)", "payloads": [
            payload("service", "Service", "multi-select", empty(), false),
        ]},
        {"value": "sql", "label": "SQL (macros: $__timeFilter(col), $__timeGroup(col), $__interval, ...)", "payloads": [
            {"name": "sql", "label": "SQL", "type": "textarea", "placeholder": "SELECT $__timeGroup(window_start) AS time, service, avg(p95) FROM metric_rollups_1m WHERE $__timeFilter(window_start) AND $__partitionFilter GROUP BY 1, 2"},
            payload("format", "Format", "select", opts(&[("time_series", "time series"), ("table", "table")]), false),
        ]},
    ])
}

/// Where a picker's options come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Options {
    /// A fixed list of values.
    Static(Vec<String>),
    /// A query whose first column holds the values.
    Sql(String),
}

/// Recent days of rollups scanned for picker options.
fn recent(now_ms: i64) -> String {
    format!("date >= '{}'", day(now_ms - 7 * 86_400_000))
}

fn label_keys_sql(now_ms: i64) -> String {
    format!(
        "SELECT DISTINCT k FROM (SELECT unnest(map_keys(labels)) AS k FROM metric_rollups_1h WHERE {}) ORDER BY k",
        recent(now_ms)
    )
}

/// The options of payload `name` of `metric`.
///
/// # Errors
/// 400 when the metric has no such picker.
pub fn payload_options(
    metric: &str,
    name: &str,
    payload: &Value,
    now_ms: i64,
) -> Result<Options, ApiError> {
    let r = recent(now_ms);
    let services = |table: &str| {
        Options::Sql(format!(
            "SELECT DISTINCT service FROM {table} WHERE {r} ORDER BY 1"
        ))
    };
    Ok(match (metric, name) {
        ("latency" | "throughput", "service") => services("metric_rollups_1h"),
        ("latency" | "throughput", "name") => Options::Sql(format!(
            "SELECT DISTINCT name FROM metric_rollups_1h WHERE {r}{} ORDER BY 1",
            in_list("service", &values(payload.get("service")))
        )),
        ("latency" | "throughput", "labels") => Options::Sql(format!(
            "SELECT DISTINCT concat(k, '=', v) FROM (SELECT unnest(map_keys(labels)) AS k, unnest(map_values(labels)) AS v FROM metric_rollups_1h WHERE {r}{}{}) ORDER BY 1",
            in_list("service", &values(payload.get("service"))),
            in_list("name", &values(payload.get("name")))
        )),
        ("latency" | "throughput", "group_by") => Options::Sql(format!(
            "SELECT v FROM (SELECT 'service' AS v, 0 AS o UNION ALL SELECT 'version', 1 UNION ALL SELECT 'none', 2 \
             UNION ALL SELECT concat('label:', k), 3 FROM ({})) ORDER BY o, v",
            label_keys_sql(now_ms)
        )),
        ("latency", "percentile") => Options::Static(
            ["p50", "p90", "p95", "p99", "p99.9"]
                .map(str::to_string)
                .to_vec(),
        ),
        ("error_rate" | "log_errors", "service") => services("log_rollups_1m"),
        ("cost", "provider") => Options::Sql(
            "SELECT DISTINCT provider FROM cost_daily ORDER BY 1".into(),
        ),
        ("cost", "service") => Options::Sql(
            "SELECT DISTINCT coalesce(service, '(none)') FROM cost_daily ORDER BY 1".into(),
        ),
        ("cost", "group_by") => Options::Static(
            ["total", "provider", "service", "resource_type", "region", "resource_id"]
                .map(str::to_string)
                .to_vec(),
        ),
        ("cost", "column") => Options::Static(
            ["cost", "effective_cost", "usage_quantity"]
                .map(str::to_string)
                .to_vec(),
        ),
        ("cost_forecast", "scope") => Options::Static(
            ["total", "provider", "service", "resource"]
                .map(str::to_string)
                .to_vec(),
        ),
        ("cost_forecast", "key") => Options::Sql(format!(
            "SELECT DISTINCT key FROM cost_forecasts WHERE scope = {} ORDER BY 1",
            lit(&first(payload, "scope").unwrap_or_else(|| "total".into()))
        )),
        ("anomalies", "service") => {
            Options::Sql("SELECT DISTINCT service FROM anomalies ORDER BY 1".into())
        }
        ("regressions", "service") => {
            Options::Sql("SELECT DISTINCT service FROM regressions ORDER BY 1".into())
        }
        ("alerts" | "alert_counts", "alertname") => {
            Options::Sql("SELECT DISTINCT alertname FROM alerts ORDER BY 1".into())
        }
        ("alerts", "state") => Options::Static(
            ["pending", "firing", "resolved"].map(str::to_string).to_vec(),
        ),
        ("alerts" | "alert_counts", "severity") => Options::Static(
            ["critical", "error", "warning", "info"]
                .map(str::to_string)
                .to_vec(),
        ),
        ("alert_counts", "group_by") => {
            Options::Static(["alertname", "severity"].map(str::to_string).to_vec())
        }
        ("slo", "slo") => Options::Sql("SELECT DISTINCT slo FROM slo_status ORDER BY 1".into()),
        ("slo", "show") => {
            Options::Static(["budget", "sli", "burn"].map(str::to_string).to_vec())
        }
        ("opportunities", "kind") => Options::Static(
            ["idle", "underutilized", "oversized", "provider_disparity"]
                .map(str::to_string)
                .to_vec(),
        ),
        ("sql", "format") => Options::Static(vec!["time_series".into(), "table".into()]),
        // Not ours (the spec's own example names another datasource's metric): no options.
        (m, n) => {
            tracing::debug!(metric = m, payload = n, "no options for this payload");
            Options::Static(Vec::new())
        }
    })
}

/// The query of a dashboard variable (`payload.target`): `services`, `names`, `versions`,
/// `providers`, `regions`, `resource_types`, `label_keys`, `label_values(<key>)`,
/// `forecast_keys(<scope>)`, or any read-only SQL (first column: value; second: text).
///
/// # Errors
/// 400 for a bad target.
pub fn variable_sql(target: &str, w: &Window, now_ms: i64) -> Result<String, ApiError> {
    let t = target.trim();
    let r = recent(now_ms);
    let arg = |prefix: &str| -> Option<String> {
        t.strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix('('))
            .and_then(|rest| rest.strip_suffix(')'))
            .map(|a| a.trim().trim_matches(['\'', '"']).to_string())
    };
    Ok(match t {
        "services" => format!(
            "SELECT DISTINCT service FROM (SELECT service FROM metric_rollups_1h WHERE {r} UNION ALL SELECT service FROM log_rollups_1m WHERE {r}) ORDER BY 1"
        ),
        "names" => format!("SELECT DISTINCT name FROM metric_rollups_1h WHERE {r} ORDER BY 1"),
        "versions" => format!(
            "SELECT DISTINCT version FROM metric_rollups_1h WHERE {r} AND version IS NOT NULL ORDER BY 1"
        ),
        "providers" => "SELECT DISTINCT provider FROM cost_daily ORDER BY 1".into(),
        "regions" => {
            "SELECT DISTINCT region FROM cost_daily WHERE region IS NOT NULL ORDER BY 1".into()
        }
        "resource_types" => "SELECT DISTINCT resource_type FROM cost_daily WHERE resource_type IS NOT NULL ORDER BY 1".into(),
        "label_keys" => label_keys_sql(now_ms),
        _ => {
            if let Some(k) = arg("label_values") {
                if !is_key(&k) {
                    return Err(ApiError::BadRequest(format!("{k:?} is not a label key")));
                }
                format!(
                    "SELECT DISTINCT labels[{}] AS v FROM metric_rollups_1h WHERE {r} AND labels[{}] IS NOT NULL ORDER BY 1",
                    lit(&k),
                    lit(&k)
                )
            } else if let Some(scope) = arg("forecast_keys") {
                format!(
                    "SELECT DISTINCT key FROM cost_forecasts WHERE scope = {} ORDER BY 1",
                    lit(&scope)
                )
            } else if t.to_ascii_lowercase().starts_with("select")
                || t.to_ascii_lowercase().starts_with("with")
            {
                super::macros::expand(t, w)?
            } else {
                return Err(ApiError::NotFound(format!(
                    "variable query {t:?}: expected services, names, versions, providers, regions, resource_types, label_keys, label_values(<key>), forecast_keys(<scope>) or a SELECT"
                )));
            }
        }
    })
}

/// Keys of ad hoc filters: the columns the datasource filters on, and the metric label keys.
pub fn tag_keys_sql(now_ms: i64) -> String {
    format!(
        "SELECT DISTINCT k FROM (SELECT 'service' AS k UNION ALL SELECT 'name' UNION ALL SELECT 'version' \
         UNION ALL SELECT 'provider' UNION ALL SELECT 'region' UNION ALL SELECT 'resource_type' \
         UNION ALL SELECT 'resource_id' UNION ALL SELECT DISTINCT k FROM ({})) ORDER BY k",
        label_keys_sql(now_ms)
    )
}

/// Values of an ad hoc filter key.
///
/// # Errors
/// 400 when the key is not a plain word.
pub fn tag_values_sql(key: &str, now_ms: i64) -> Result<String, ApiError> {
    if !is_key(key) {
        return Err(ApiError::BadRequest(format!("{key:?} is not a filter key")));
    }
    let r = recent(now_ms);
    Ok(match key {
        "service" => format!(
            "SELECT DISTINCT service FROM (SELECT service FROM metric_rollups_1h WHERE {r} UNION ALL SELECT service FROM log_rollups_1m WHERE {r}) ORDER BY 1"
        ),
        "name" | "version" => format!(
            "SELECT DISTINCT {key} FROM metric_rollups_1h WHERE {r} AND {key} IS NOT NULL ORDER BY 1"
        ),
        "provider" | "region" | "resource_type" | "resource_id" => format!(
            "SELECT DISTINCT {key} FROM cost_daily WHERE {key} IS NOT NULL ORDER BY 1"
        ),
        k => format!(
            "SELECT DISTINCT labels[{}] FROM metric_rollups_1h WHERE {r} AND labels[{}] IS NOT NULL ORDER BY 1",
            lit(k),
            lit(k)
        ),
    })
}
