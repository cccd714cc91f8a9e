//! What the Grafana datasource's targets run: the SQL of each metric the query editor offers
//! (see [`super::editor`]), with the request's range, interval and ad hoc filters. Every value
//! from a request reaches SQL as a quoted literal; every query still passes the read-only guard
//! of the engine.

use serde_json::Value;

use super::macros::{day, ts_literal, Window};
pub use super::plan::{bucket_ms, lit, values, AdhocFilter, Ctx, Planned, Shape};
use super::plan::{first, in_list, time_bin};
use crate::http::error::ApiError;

/// The tables ad hoc filters apply to, and which keys they know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Metric rollups: service, name, version, and labels.
    Metrics,
    /// Log rollups: service.
    Logs,
    /// Cost tables: provider, service, resource, type, region.
    Cost,
    /// Anomalies and regressions: service, name, metric, and labels.
    Detections,
}

fn column_for(kind: Kind, key: &str) -> Option<String> {
    let plain = |cols: &[&str]| cols.contains(&key).then(|| key.to_string());
    match kind {
        Kind::Metrics => {
            plain(&["service", "name", "version"]).or_else(|| Some(format!("labels[{}]", lit(key))))
        }
        Kind::Logs => plain(&["service"]),
        Kind::Cost => plain(&opslake_schemas::tables::BILLING_DIMENSIONS),
        Kind::Detections => {
            plain(&["service", "name", "metric"]).or_else(|| Some(format!("labels[{}]", lit(key))))
        }
    }
}

/// Label keys are plain words; anything else is not a filter key here.
pub(super) fn is_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 100
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '/'))
}

fn adhoc(kind: Kind, filters: &[AdhocFilter]) -> Result<String, ApiError> {
    let mut out = String::new();
    for f in filters {
        if !is_key(&f.key) {
            continue;
        }
        let Some(col) = column_for(kind, &f.key) else {
            continue;
        };
        let value = match &f.value {
            Value::String(s) => s.clone(),
            Value::Null => continue,
            other => other.to_string(),
        };
        let op = match f.operator.as_str() {
            "" | "=" => "=",
            "!=" => "<>",
            "<" => "<",
            ">" => ">",
            "<=" => "<=",
            ">=" => ">=",
            "=~" => "~",
            "!~" => "!~",
            other => {
                return Err(ApiError::BadRequest(format!(
                "ad hoc filter operator {other:?} is not supported (=, !=, <, >, <=, >=, =~, !~)"
            )))
            }
        };
        out.push_str(&format!(" AND {col} {op} {}", lit(&value)));
    }
    Ok(out)
}

/// `window_start` within the range, with the `date=` partitions pruned.
fn window_range(col: &str, w: &Window, partitioned: bool) -> String {
    let mut s = format!(
        "{col} >= {} AND {col} < {}",
        ts_literal(w.from_ms),
        ts_literal(w.to_ms)
    );
    if partitioned {
        s.push_str(&format!(
            " AND date BETWEEN '{}' AND '{}'",
            day(w.from_ms),
            day(w.to_ms)
        ));
    }
    s
}

fn percentile(p: &str) -> Result<(f64, String), ApiError> {
    let t = p.trim().trim_start_matches(['p', 'P']);
    let v: f64 = t
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("percentile {p:?} is not like p95")))?;
    let q = if v > 1.0 { v / 100.0 } else { v };
    if !(0.0..=1.0).contains(&q) {
        return Err(ApiError::BadRequest(format!(
            "percentile {p:?} is outside 0..100"
        )));
    }
    let label = format!("p{}", (q * 1000.0).round() / 10.0);
    Ok((q, label.replace(".0", "")))
}

/// The series expression of a `group_by` choice over metric rollups.
fn metric_series(group_by: &str) -> Result<String, ApiError> {
    Ok(match group_by {
        "" | "service" => "service".into(),
        "none" => "'all'".into(),
        "version" => "concat(service, ' ', coalesce(version, '-'))".into(),
        g => match g.strip_prefix("label:") {
            Some(k) if is_key(k) => {
                format!("concat(service, ' ', coalesce(labels[{}], '-'))", lit(k))
            }
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "group_by {g:?}: expected service, version, none or label:<key>"
                )))
            }
        },
    })
}

/// Label filters from a `labels` multi-select of `key=value` entries.
fn label_filters(payload: &Value) -> Result<String, ApiError> {
    let mut out = String::new();
    for kv in values(payload.get("labels")) {
        let Some((k, v)) = kv.split_once('=') else {
            return Err(ApiError::BadRequest(format!(
                "label {kv:?} is not key=value"
            )));
        };
        if is_key(k) {
            out.push_str(&format!(" AND labels[{}] = {}", lit(k), lit(v)));
        }
    }
    Ok(out)
}

fn metric_table(bucket: i64) -> &'static str {
    if bucket >= 3_600_000 {
        "metric_rollups_1h"
    } else {
        "metric_rollups_1m"
    }
}

/// The queries of one target.
///
/// # Errors
/// 400 for an unknown target or a bad payload.
pub fn plan(target: &str, payload: &Value, ctx: &Ctx<'_>) -> Result<Vec<Planned>, ApiError> {
    let w = &ctx.window;
    let b = bucket_ms(ctx);
    let ts = |suffix: &str| Shape::TimeSeries {
        suffix: suffix.to_string(),
    };
    match target {
        "latency" => {
            let name = first(payload, "name").unwrap_or_else(|| "http.server.duration".into());
            let mut ps = values(payload.get("percentile"));
            if ps.is_empty() {
                ps.push("p95".into());
            }
            let mut cols = Vec::new();
            for p in &ps {
                let (q, label) = percentile(p)?;
                cols.push(format!("quantile_merge(sketch, {q}) AS \"{label}\""));
            }
            let suffix = if cols.len() == 1 {
                percentile(&ps[0])?.1
            } else {
                String::new()
            };
            let table = metric_table(b);
            let sql = format!(
                "SELECT {} AS time, {} AS series, {} FROM {table} WHERE {} AND name = {}{}{}{} GROUP BY 1, 2 ORDER BY 1, 2",
                time_bin("window_start", b),
                metric_series(&first(payload, "group_by").unwrap_or_default())?,
                cols.join(", "),
                window_range("window_start", w, true),
                lit(&name),
                in_list("service", &values(payload.get("service"))),
                label_filters(payload)?,
                adhoc(Kind::Metrics, ctx.filters)?
            );
            Ok(vec![Planned {
                sql,
                shape: ts(&suffix),
            }])
        }
        "throughput" => {
            let name = first(payload, "name").unwrap_or_else(|| "http.server.duration".into());
            let table = metric_table(b);
            let sql = format!(
                "SELECT {} AS time, {} AS series, sum(count) * 1000.0 / {b} AS value FROM {table} WHERE {} AND name = {}{}{}{} GROUP BY 1, 2 ORDER BY 1, 2",
                time_bin("window_start", b),
                metric_series(&first(payload, "group_by").unwrap_or_default())?,
                window_range("window_start", w, true),
                lit(&name),
                in_list("service", &values(payload.get("service"))),
                label_filters(payload)?,
                adhoc(Kind::Metrics, ctx.filters)?
            );
            Ok(vec![Planned {
                sql,
                shape: ts("req/s"),
            }])
        }
        "error_rate" => {
            let sql = format!(
                "SELECT {} AS time, service AS series, sum(error_count) * 1.0 / sum(count) AS value FROM log_rollups_1m WHERE {}{}{} GROUP BY 1, 2 ORDER BY 1, 2",
                time_bin("window_start", b),
                window_range("window_start", w, true),
                in_list("service", &values(payload.get("service"))),
                adhoc(Kind::Logs, ctx.filters)?
            );
            Ok(vec![Planned {
                sql,
                shape: ts("error rate"),
            }])
        }
        "cost" => {
            let group = first(payload, "group_by").unwrap_or_else(|| "provider".into());
            let series = match group.as_str() {
                "total" => "'total'".to_string(),
                "provider" | "resource_type" | "region" | "resource_id" | "service" => {
                    format!("coalesce({group}, '(none)')")
                }
                g => {
                    return Err(ApiError::BadRequest(format!(
                        "group_by {g:?}: expected total, provider, service, resource_type, region or resource_id"
                    )))
                }
            };
            let column = first(payload, "column").unwrap_or_else(|| "cost".into());
            if !matches!(
                column.as_str(),
                "cost" | "effective_cost" | "usage_quantity"
            ) {
                return Err(ApiError::BadRequest(format!(
                    "column {column:?}: expected cost, effective_cost or usage_quantity"
                )));
            }
            let sql = format!(
                "SELECT CAST(date AS TIMESTAMP) AS time, {series} AS series, sum({column}) AS value FROM cost_daily WHERE date BETWEEN DATE '{}' AND DATE '{}'{}{}{} GROUP BY 1, 2 ORDER BY 1, 2",
                day(w.from_ms),
                day(w.to_ms),
                in_list("provider", &values(payload.get("provider"))),
                in_list("service", &values(payload.get("service"))),
                adhoc(Kind::Cost, ctx.filters)?
            );
            Ok(vec![Planned { sql, shape: ts("") }])
        }
        "cost_forecast" => {
            let scope = first(payload, "scope").unwrap_or_else(|| "total".into());
            let key = first(payload, "key").unwrap_or_else(|| "total".into());
            let actual_filter = match scope.as_str() {
                "total" => String::new(),
                "provider" => format!(" AND provider = {}", lit(&key)),
                "service" => format!(" AND coalesce(service, '(none)') = {}", lit(&key)),
                "resource" => format!(" AND resource_id = {}", lit(&key)),
                s => {
                    return Err(ApiError::BadRequest(format!(
                        "scope {s:?}: expected total, provider, service or resource"
                    )))
                }
            };
            let days = format!(
                "date BETWEEN DATE '{}' AND DATE '{}'",
                day(w.from_ms),
                day(w.to_ms)
            );
            Ok(vec![
                Planned {
                    sql: format!(
                        "SELECT CAST(date AS TIMESTAMP) AS time, {} AS series, sum(cost) AS actual FROM cost_daily WHERE {days}{actual_filter} GROUP BY 1, 2 ORDER BY 1",
                        lit(&format!("{key} actual"))
                    ),
                    shape: ts(""),
                },
                Planned {
                    sql: format!(
                        "SELECT CAST(date AS TIMESTAMP) AS time, key AS series, forecast, lower_80, upper_80, lower_95, upper_95 FROM cost_forecasts WHERE scope = {} AND key = {} AND {days} ORDER BY 1",
                        lit(&scope),
                        lit(&key)
                    ),
                    shape: ts(""),
                },
            ])
        }
        "anomalies" => Ok(vec![Planned {
            sql: format!(
                "SELECT window_start AS time, concat(service, ' ', metric, ' anomaly (', severity, ')') AS title, \
                 concat(name, ': observed ', CAST(round(observed, 2) AS VARCHAR), ', expected ', CAST(round(expected, 2) AS VARCHAR), \
                 ' (', CAST(round(lower, 2) AS VARCHAR), ' to ', CAST(round(upper, 2) AS VARCHAR), '), score ', CAST(round(score, 1) AS VARCHAR)) AS text, \
                 concat(service, ',', metric, ',', severity) AS tags, service, name, metric, observed, expected, score, severity \
                 FROM anomalies WHERE {}{}{} ORDER BY 1",
                window_range("window_start", w, false),
                in_list("service", &values(payload.get("service"))),
                adhoc(Kind::Detections, ctx.filters)?
            ),
            shape: Shape::Table,
        }]),
        "regressions" => Ok(vec![Planned {
            sql: format!(
                "SELECT change_at AS time, concat(service, ' ', metric, ' ', CASE WHEN change_pct >= 0 THEN '+' ELSE '' END, CAST(round(change_pct, 1) AS VARCHAR), '%') AS title, \
                 concat(name, ': ', CAST(round(\"before\", 2) AS VARCHAR), ' to ', CAST(round(\"after\", 2) AS VARCHAR), \
                 CASE WHEN version_before IS NOT NULL AND version_after IS NOT NULL THEN concat(', version ', version_before, ' to ', version_after) ELSE '' END, \
                 ', p ', CASE WHEN p_value < 0.0001 THEN '< 0.0001' ELSE concat('= ', CAST(round(p_value, 4) AS VARCHAR)) END) AS text, \
                 concat(service, ',', metric, ',regression') AS tags, service, name, metric, \"before\", \"after\", change_pct, version_before, version_after \
                 FROM regressions WHERE {}{}{} ORDER BY 1",
                window_range("change_at", w, false),
                in_list("service", &values(payload.get("service"))),
                adhoc(Kind::Detections, ctx.filters)?
            ),
            shape: Shape::Table,
        }]),
        "opportunities" => Ok(vec![Planned {
            sql: format!(
                "SELECT kind, resource_id, provider, resource_type, region, round(monthly_cost, 2) AS monthly_cost, \
                 round(estimated_monthly_savings, 2) AS estimated_monthly_savings, recommendation \
                 FROM cost_opportunities WHERE true{}{} ORDER BY estimated_monthly_savings DESC",
                in_list("kind", &values(payload.get("kind"))),
                adhoc(Kind::Cost, ctx.filters)?
            ),
            shape: Shape::Table,
        }]),
        "log_errors" => Ok(vec![Planned {
            sql: format!(
                "SELECT timestamp AS time, service, level, message, host, version, trace_id, status_code FROM logs \
                 WHERE {} AND lower(level) IN ('error', 'fatal'){} ORDER BY timestamp DESC LIMIT 200",
                window_range("timestamp", w, true),
                in_list("service", &values(payload.get("service"))),
            ),
            shape: Shape::Table,
        }]),
        "sql" => {
            let sql = payload
                .get("sql")
                .and_then(Value::as_str)
                .filter(|s| !s.trim().is_empty())
                .ok_or_else(|| {
                    ApiError::BadRequest(
                        "the sql target needs its query in payload.sql".into(),
                    )
                })?;
            let expanded = super::macros::expand(sql, w)?;
            let shape = match first(payload, "format").as_deref() {
                None | Some("time_series") | Some("timeseries") => ts(""),
                Some("table") => Shape::Table,
                Some(f) => {
                    return Err(ApiError::BadRequest(format!(
                        "format {f:?}: expected time_series or table"
                    )))
                }
            };
            Ok(vec![Planned {
                sql: expanded,
                shape,
            }])
        }
        t if super::alert_targets::TARGETS.contains(&t) => {
            super::alert_targets::plan(t, payload, ctx)
        }
        other => Err(ApiError::NotFound(format!(
            "unknown target {other:?}; known: latency, throughput, error_rate, cost, cost_forecast, anomalies, regressions, opportunities, log_errors, alerts, alert_counts, slo, sql"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grafana::editor::{tag_values_sql, variable_sql};
    use serde_json::json;

    fn ctx(filters: &[AdhocFilter]) -> Ctx<'_> {
        Ctx {
            window: Window {
                from_ms: 1_763_805_600_000,
                to_ms: 1_763_827_200_000,
                interval_ms: 30_000,
            },
            max_points: 100,
            filters,
        }
    }

    #[test]
    fn buckets_respect_max_points_and_round_up() {
        // 6 hours in at most 100 points: 216 s, rounded up to 5 minutes.
        assert_eq!(bucket_ms(&ctx(&[])), 300_000);
    }

    #[test]
    fn payload_values_are_quoted_and_all_means_no_filter() {
        let f = [AdhocFilter {
            key: "endpoint".into(),
            operator: "=~".into(),
            value: json!("/api/pay'; DROP TABLE x; --"),
        }];
        let p = plan(
            "latency",
            &json!({"service": ["checkout", "o'hare"], "percentile": "p99", "labels": ["status=500"]}),
            &ctx(&f),
        )
        .unwrap();
        let sql = &p[0].sql;
        assert!(sql.contains("service IN ('checkout', 'o''hare')"), "{sql}");
        assert!(
            sql.contains("quantile_merge(sketch, 0.99) AS \"p99\""),
            "{sql}"
        );
        assert!(sql.contains("labels['status'] = '500'"), "{sql}");
        assert!(
            sql.contains("labels['endpoint'] ~ '/api/pay''; DROP TABLE x; --'"),
            "{sql}"
        );
        assert!(
            sql.contains("date BETWEEN '2025-11-22' AND '2025-11-22'"),
            "{sql}"
        );
        let all = plan("latency", &json!({"service": "$__all"}), &ctx(&[])).unwrap();
        assert!(!all[0].sql.contains("service IN"));
        assert!(matches!(
            plan("nope", &json!({}), &ctx(&[])),
            Err(ApiError::NotFound(_))
        ));
        assert!(plan("latency", &json!({"percentile": "p200"}), &ctx(&[])).is_err());
    }

    #[test]
    fn variables_and_tags() {
        let w = ctx(&[]).window;
        assert!(variable_sql("label_values(endpoint)", &w, 0)
            .unwrap()
            .contains("labels['endpoint']"));
        assert!(variable_sql("label_values(a'b)", &w, 0).is_err());
        assert!(variable_sql("SELECT 1 WHERE $__timeFilter(t)", &w, 0)
            .unwrap()
            .contains("TIMESTAMP"));
        assert!(tag_values_sql("x y", 0).is_err());
    }
}
