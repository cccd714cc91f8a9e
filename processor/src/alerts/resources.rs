//! The built-in alerts of resource trends (CONTRACT section 10):
//! - `OpslakeMemoryLeak` (warning) while a series' latest `leaks` verdict is a leak;
//! - `OpslakeCapacity` while a series' latest forecast (of the last day) reaches its limit
//!   within 7 days (warning) or 1 day (critical), the time and its interval in the annotations.

use std::collections::BTreeMap;
use std::time::Duration;

use super::config::Severity;
use super::rule::{Rule, Source};

/// Labels of both rules: one alert per series.
const SERIES_LABELS: &[&str] = &["service", "host", "name", "series"];

/// `OpslakeMemoryLeak`.
pub(crate) fn leak_rule() -> Rule {
    Rule {
        id: "OpslakeMemoryLeak".into(),
        name: "OpslakeMemoryLeak".into(),
        source: Source::Sql(
            "SELECT * FROM (SELECT service, coalesce(host, '') AS host, name, series, \
               last_value(method ORDER BY detected_at) AS method, \
               last_value(growth_per_hour ORDER BY detected_at) AS value, \
               last_value(growth_pct_per_day ORDER BY detected_at) AS growth_pct_per_day, \
               last_value(since ORDER BY detected_at) AS since, \
               coalesce(last_value(version ORDER BY detected_at), 'unknown') AS version, \
               last_value(restarts ORDER BY detected_at) AS restarts, \
               max(detected_at) AS at \
             FROM leaks GROUP BY service, host, name, series) \
             WHERE method NOT LIKE '%:cleared'"
                .into(),
        ),
        for_: Duration::ZERO,
        severity: Severity::Warning,
        labels: BTreeMap::new(),
        label_columns: Some(SERIES_LABELS),
        annotations: BTreeMap::from([
            (
                "summary".into(),
                "{{ name }} of {{ service }} {{ host }} leaks: +{{ value }} an hour \
                 ({{ growth_pct_per_day }}% a day) since {{ since }} UTC"
                    .into(),
            ),
            (
                "description".into(),
                "growth began with version {{ version }}; restarts while leaking: \
                 {{ restarts }} ({{ method }})"
                    .into(),
            ),
        ]),
    }
}

/// `OpslakeCapacity`: a critical rule (within a day) and a warning rule (within a week, past a
/// day), so that one series is one alert at a time.
pub(crate) fn capacity_rules() -> Vec<Rule> {
    let rule = |id: &str, severity: Severity, window: &str| Rule {
        id: id.into(),
        name: "OpslakeCapacity".into(),
        source: Source::Sql(format!(
            "SELECT * FROM (SELECT service, coalesce(host, '') AS host, name, series, \
               last_value(exhausted_at ORDER BY computed_at) AS exhausted_at, \
               last_value(exhausted_at_low ORDER BY computed_at) AS exhausted_at_low, \
               last_value(exhausted_at_high ORDER BY computed_at) AS exhausted_at_high, \
               last_value(current ORDER BY computed_at) AS current, \
               last_value(\"limit\" ORDER BY computed_at) AS \"limit\", \
               last_value(current / \"limit\" ORDER BY computed_at) AS value, \
               max(computed_at) AS at \
             FROM capacity_forecasts WHERE computed_at >= now() - INTERVAL '1 day' \
             GROUP BY service, host, name, series) \
             WHERE exhausted_at IS NOT NULL AND {window}"
        )),
        for_: Duration::ZERO,
        severity,
        labels: BTreeMap::new(),
        label_columns: Some(SERIES_LABELS),
        annotations: BTreeMap::from([
            (
                "summary".into(),
                "{{ name }} of {{ service }} {{ host }} reaches its limit {{ limit }} at \
                 {{ exhausted_at }} UTC (80%: {{ exhausted_at_low }} to {{ exhausted_at_high }})"
                    .into(),
            ),
            (
                "description".into(),
                "now {{ current }}, {{ value }} of the limit".into(),
            ),
        ]),
    };
    vec![
        rule(
            "OpslakeCapacity/critical",
            Severity::Critical,
            "exhausted_at <= now() + INTERVAL '1 day'",
        ),
        rule(
            "OpslakeCapacity/warning",
            Severity::Warning,
            "exhausted_at > now() + INTERVAL '1 day' AND exhausted_at <= now() + INTERVAL '7 days'",
        ),
    ]
}
