//! What every target's plan is made of: the request's context (range, interval, ad hoc
//! filters), the planned query and the shape of its answer, and the small SQL builders the
//! catalog and the alert targets share.

use serde_json::Value;

use super::macros::Window;

/// How a query's result becomes a Grafana response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    /// Time series; the suffix is appended to every series name (e.g. `p95`).
    TimeSeries {
        /// Appended to each series' name.
        suffix: String,
    },
    /// A table (also usable as annotations: columns `time`, `title`, `text`, `tags`).
    Table,
}

/// One query a target runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    /// The SQL.
    pub sql: String,
    /// How its answer becomes a Grafana frame.
    pub shape: Shape,
}

/// An ad hoc filter of the dashboard.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct AdhocFilter {
    #[serde(default)]
    /// The column filtered.
    pub key: String,
    #[serde(default)]
    /// `=`, `!=`, `<`, `>`, `=~` or `!~`.
    pub operator: String,
    #[serde(default)]
    /// The value compared with.
    pub value: Value,
}

/// The request's range, interval and filters.
#[derive(Debug, Clone)]
pub struct Ctx<'a> {
    /// The time range.
    pub window: Window,
    /// Most points a series may have.
    pub max_points: i64,
    /// Ad hoc filters to apply.
    pub filters: &'a [AdhocFilter],
}

/// A SQL string literal.
pub fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The string values of a payload entry: a string, a number, or a list of them (multi-select).
/// Grafana's "All" (`$__all`, `All`, `*`) and empty values mean no filter.
pub fn values(v: Option<&Value>) -> Vec<String> {
    let one = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    let all: Vec<String> = match v {
        Some(Value::Array(a)) => a.iter().filter_map(one).collect(),
        Some(v) => one(v).into_iter().collect(),
        None => Vec::new(),
    };
    let all: Vec<String> = all
        .into_iter()
        .flat_map(|s| {
            // Grafana formats a multi-value variable inside a string as {a,b}.
            let t = s.trim();
            if t.starts_with('{') && t.ends_with('}') {
                t[1..t.len() - 1].split(',').map(str::to_string).collect()
            } else {
                vec![s]
            }
        })
        .filter(|s| !s.is_empty())
        .collect();
    if all
        .iter()
        .any(|s| matches!(s.as_str(), "$__all" | "All" | "*"))
    {
        Vec::new()
    } else {
        all
    }
}

pub(crate) fn first(payload: &Value, key: &str) -> Option<String> {
    values(payload.get(key)).into_iter().next()
}

/// `AND col IN (...)` when values are given.
pub(crate) fn in_list(col: &str, vals: &[String]) -> String {
    if vals.is_empty() {
        String::new()
    } else {
        let l: Vec<String> = vals.iter().map(|v| lit(v)).collect();
        format!(" AND {col} IN ({})", l.join(", "))
    }
}

/// Round bucket sizes, from the rollup window up.
const NICE_MS: [i64; 15] = [
    60_000,
    120_000,
    300_000,
    600_000,
    900_000,
    1_800_000,
    3_600_000,
    7_200_000,
    10_800_000,
    21_600_000,
    43_200_000,
    86_400_000,
    172_800_000,
    604_800_000,
    2_592_000_000,
];

/// The bucket of a time series: at least the panel's interval and the rollup window, few
/// enough points for `maxDataPoints`, rounded up to a round size.
pub fn bucket_ms(ctx: &Ctx<'_>) -> i64 {
    let span = (ctx.window.to_ms - ctx.window.from_ms).max(1);
    let want = ctx
        .window
        .interval_ms
        .max(span / ctx.max_points.max(1))
        .max(NICE_MS[0]);
    NICE_MS
        .iter()
        .copied()
        .find(|n| *n >= want)
        .unwrap_or(NICE_MS[NICE_MS.len() - 1])
}

pub(crate) fn time_bin(col: &str, ms: i64) -> String {
    format!("date_bin(INTERVAL '{ms} milliseconds', {col}, TIMESTAMP '1970-01-01T00:00:00Z')")
}
