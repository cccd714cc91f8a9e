//! The Grafana targets over alerts and SLOs:
//! - `alerts`: the alerts' state changes, as a table or as annotations (`time`, `title`,
//!   `text`, `tags`), filtered by alert name, state and severity;
//! - `alert_counts`: how many alerts fired per interval, one series per alert name (or
//!   severity);
//! - `slo`: each SLO's error budget left, SLI or burn rates over time (`slo_status`).

use serde_json::Value;

use super::macros::ts_literal;
use super::plan::{bucket_ms, first, in_list, time_bin, values, Ctx, Planned, Shape};
use crate::http::error::ApiError;

/// The targets of this file.
pub const TARGETS: [&str; 3] = ["alerts", "alert_counts", "slo"];

fn range(col: &str, ctx: &Ctx<'_>) -> String {
    format!(
        "{col} >= {} AND {col} <= {}",
        ts_literal(ctx.window.from_ms),
        ts_literal(ctx.window.to_ms)
    )
}

/// A status column as of the end of each interval.
fn last(col: &str, name: &str) -> String {
    format!("last_value({col} ORDER BY computed_at) AS \"{name}\"")
}

/// The queries of one of [`TARGETS`].
///
/// # Errors
/// 400 for a bad payload.
pub fn plan(target: &str, payload: &Value, ctx: &Ctx<'_>) -> Result<Vec<Planned>, ApiError> {
    let b = bucket_ms(ctx);
    let sql = match target {
        "alerts" => format!(
            "SELECT at AS time, concat(alertname, ' ', state) AS title, \
             coalesce(annotations['summary'], alertname) AS text, \
             concat(alertname, ',', severity, ',', state) AS tags, \
             alertname, state, severity, value, labels['service'] AS service, fingerprint \
             FROM alerts WHERE {}{}{}{} ORDER BY at",
            range("at", ctx),
            in_list("alertname", &values(payload.get("alertname"))),
            in_list("state", &values(payload.get("state"))),
            in_list("severity", &values(payload.get("severity"))),
        ),
        "alert_counts" => {
            let series = match first(payload, "group_by").as_deref() {
                None | Some("alertname") => "alertname",
                Some("severity") => "severity",
                Some(g) => {
                    return Err(ApiError::BadRequest(format!(
                        "group_by {g:?}: expected alertname or severity"
                    )))
                }
            };
            format!(
                "SELECT {} AS time, {series} AS series, count(*) AS value FROM alerts \
                 WHERE state = 'firing' AND {}{}{} GROUP BY 1, 2 ORDER BY 1, 2",
                time_bin("at", b),
                range("at", ctx),
                in_list("alertname", &values(payload.get("alertname"))),
                in_list("severity", &values(payload.get("severity"))),
            )
        }
        "slo" => {
            let columns = match first(payload, "show").as_deref() {
                None | Some("budget") => last("error_budget_remaining", "budget"),
                Some("sli") => last("sli", "sli"),
                Some("burn") => ["5m", "30m", "1h", "2h", "6h", "1d", "3d"]
                    .map(|w| last(&format!("burn_rate_{w}"), &format!("burn {w}")))
                    .join(", "),
                Some(s) => {
                    return Err(ApiError::BadRequest(format!(
                        "show {s:?}: expected budget, sli or burn"
                    )))
                }
            };
            format!(
                "SELECT {} AS time, slo AS series, {columns} FROM slo_status \
                 WHERE {}{} GROUP BY 1, 2 ORDER BY 1, 2",
                time_bin("computed_at", b),
                range("computed_at", ctx),
                in_list("slo", &values(payload.get("slo"))),
            )
        }
        other => {
            return Err(ApiError::NotFound(format!("unknown target {other:?}")));
        }
    };
    let shape = match target {
        "alerts" => Shape::Table,
        _ => Shape::TimeSeries {
            suffix: String::new(),
        },
    };
    Ok(vec![Planned { sql, shape }])
}
