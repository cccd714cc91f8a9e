//! The built-in alerts, on by default: they page people on what opslake itself finds.
//! - `OpslakeAnomaly`: anomalies of severity critical, active for [`ANOMALY_HOLD`] after their
//!   detection (an anomaly is a moment, not a state);
//! - `OpslakeRegression`: change points that went the bad way by 10% or more, active for
//!   [`REGRESSION_HOLD`] after their detection, with the versions on each side;
//! - `OpslakeSLOBurnRate`: the SRE workbook's multi-window burn rates of each SLO;
//! - `OpslakeCostBudget`: a month-end forecast over a configured budget;
//! - `OpslakePipeline`: dead letters arriving, ingest stuck with events waiting on the
//!   brokers, a processor job that has fallen behind;
//! - `OpslakeMemoryLeak` and `OpslakeCapacity`: resource trends (see [`super::resources`]).
//!
//! Each row's `at` is the time of the data (the anomalous window, the change point), so that
//! detections of a backfill are recorded and never notified.

use std::collections::BTreeMap;
use std::time::Duration;

use super::config::{AlertsConfig, BudgetConfig, Severity};
use super::resources::{capacity_rules, leak_rule};
use super::rule::{fingerprint, format_number, Instance, Rule, Source};
use crate::slo::math::{burning, rate};
use crate::slo::SloStatus;
use crate::sql::quote;

/// How long an anomaly alert stays active after the anomaly was detected.
pub const ANOMALY_HOLD: &str = "15 minutes";
/// How long a regression alert stays active after the change was detected.
pub const REGRESSION_HOLD: &str = "1 hour";
/// Smallest bad change (percent) a regression alert is raised for.
pub const REGRESSION_MIN_PCT: f64 = 10.0;

/// What the processor knows of its own progress, for `OpslakePipeline`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PipelineFacts {
    /// Jobs behind: (job, seconds since the oldest ingest commit they have not folded).
    pub behind: Vec<(String, f64)>,
    /// Topics whose ingest is stuck: (topic, messages waiting, seconds without progress).
    pub stuck: Vec<(String, i64, f64)>,
    /// Raw files a job set aside in the last day: (job, file, reason).
    pub quarantined: Vec<(String, String, String)>,
    /// OTLP topics with a cumulative histogram series seen on two partitions in the last
    /// hour: (topic, series).
    pub split_series: Vec<(String, String)>,
}

fn anomaly_rule() -> Rule {
    Rule {
        id: "OpslakeAnomaly".into(),
        name: "OpslakeAnomaly".into(),
        source: Source::Sql(format!(
            "SELECT service, name, metric, \
               last_value(score ORDER BY window_start) AS value, \
               last_value(observed ORDER BY window_start) AS observed, \
               last_value(expected ORDER BY window_start) AS expected, \
               last_value(lower ORDER BY window_start) AS lower, \
               last_value(upper ORDER BY window_start) AS upper, \
               max(window_start) AS at, max(window_start) AS window \
             FROM anomalies \
             WHERE severity = 'critical' AND detected_at >= now() - INTERVAL '{ANOMALY_HOLD}' \
             GROUP BY service, name, metric"
        )),
        for_: Duration::ZERO,
        severity: Severity::Critical,
        labels: BTreeMap::new(),
        label_columns: Some(&["service", "name", "metric"]),
        annotations: BTreeMap::from([
            (
                "summary".into(),
                "{{ metric }} of {{ name }} on {{ service }} is {{ observed }}, expected \
                 {{ expected }} ({{ lower }} to {{ upper }})"
                    .into(),
            ),
            (
                "description".into(),
                "anomalous window starting {{ window }} UTC, {{ value }} spreads from the \
                 seasonal baseline"
                    .into(),
            ),
        ]),
    }
}

fn regression_rule() -> Rule {
    Rule {
        id: "OpslakeRegression".into(),
        name: "OpslakeRegression".into(),
        source: Source::Sql(format!(
            "SELECT service, name, metric, version_before, version_after, \
               last_value(change_pct ORDER BY change_at) AS value, \
               last_value(before ORDER BY change_at) AS before, \
               last_value(after ORDER BY change_at) AS after, \
               max(change_at) AS at, max(change_at) AS change_at, \
               concat(coalesce(version_before, 'unknown'), ' to ', coalesce(version_after, 'unknown')) AS versions \
             FROM regressions \
             WHERE (kind = 'regression' OR kind IS NULL) AND abs(change_pct) >= {REGRESSION_MIN_PCT} \
               AND detected_at >= now() - INTERVAL '{REGRESSION_HOLD}' \
             GROUP BY service, name, metric, version_before, version_after"
        )),
        for_: Duration::ZERO,
        severity: Severity::Warning,
        labels: BTreeMap::new(),
        label_columns: Some(&["service", "name", "metric", "version_before", "version_after"]),
        annotations: BTreeMap::from([
            (
                "summary".into(),
                "{{ metric }} of {{ name }} on {{ service }} changed {{ value }}% \
                 ({{ before }} to {{ after }})"
                    .into(),
            ),
            (
                "description".into(),
                "changed at {{ change_at }} UTC, version {{ versions }}"
                    .into(),
            ),
        ]),
    }
}

fn budget_rule(budgets: &[BudgetConfig]) -> Rule {
    let one = |b: &BudgetConfig| {
        let (scope, key) = (quote(&b.scope), quote(&b.key));
        let daily_filter = match b.scope.as_str() {
            "provider" => format!("AND d.provider = {key}"),
            "service" => format!("AND d.service = {key}"),
            "resource" => format!("AND d.resource_id = {key}"),
            _ => String::new(),
        };
        let same_month = |c: &str| {
            format!(
                "date_part('year', {c}) = date_part('year', m.as_of) \
                 AND date_part('month', {c}) = date_part('month', m.as_of)"
            )
        };
        format!(
            "SELECT * FROM (WITH f AS (SELECT * FROM cost_forecasts WHERE scope = {scope} AND key = {key}), \
             m AS (SELECT max(as_of) AS as_of FROM f), \
             spent AS (SELECT coalesce(sum(d.cost), 0.0) AS v FROM cost_daily d CROSS JOIN m \
               WHERE d.date <= m.as_of AND {} {daily_filter}), \
             rest AS (SELECT coalesce(sum(f.forecast), 0.0) AS v, coalesce(sum(f.lower_80), 0.0) AS lo, \
               coalesce(sum(f.upper_80), 0.0) AS hi, max(f.currency) AS currency FROM f CROSS JOIN m \
               WHERE f.date > m.as_of AND {}) \
             SELECT {scope} AS scope, {key} AS key, spent.v + rest.v AS value, \
               spent.v + rest.lo AS lower_80, spent.v + rest.hi AS upper_80, spent.v AS spent, \
               CAST({} AS DOUBLE) AS budget, rest.currency AS currency \
             FROM spent CROSS JOIN rest CROSS JOIN m \
             WHERE m.as_of IS NOT NULL AND spent.v + rest.v > {})",
            same_month("d.date"),
            same_month("f.date"),
            b.monthly,
            b.monthly
        )
    };
    let sql = budgets
        .iter()
        .map(one)
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    Rule {
        id: "OpslakeCostBudget".into(),
        name: "OpslakeCostBudget".into(),
        source: Source::Sql(sql),
        for_: Duration::ZERO,
        severity: Severity::Warning,
        labels: BTreeMap::new(),
        label_columns: Some(&["scope", "key", "currency"]),
        annotations: BTreeMap::from([(
            "summary".into(),
            "{{ scope }} {{ key }} is forecast to cost {{ value }} {{ currency }} this month \
             (80%: {{ lower_80 }} to {{ upper_80 }}) against a budget of {{ budget }}; \
             {{ spent }} spent so far"
                .into(),
        )]),
    }
}

fn computed(name: &str, severity: Severity, instances: Vec<Instance>) -> Rule {
    Rule {
        id: name.into(),
        name: name.into(),
        source: Source::Computed(instances),
        for_: Duration::ZERO,
        severity,
        labels: BTreeMap::new(),
        label_columns: None,
        annotations: BTreeMap::new(),
    }
}

fn instance(labels: BTreeMap<String, String>, summary: String, value: Option<f64>) -> Instance {
    Instance {
        fingerprint: fingerprint(&labels),
        labels,
        annotations: BTreeMap::from([("summary".to_string(), summary)]),
        value,
        at_ms: None,
    }
}

fn minutes(m: i64) -> String {
    if m % 1440 == 0 {
        format!("{}d", m / 1440)
    } else if m % 60 == 0 {
        format!("{}h", m / 60)
    } else {
        format!("{m}m")
    }
}

/// `OpslakeSLOBurnRate`'s instances from this evaluation's SLO statuses.
fn burn_rule(statuses: &[SloStatus]) -> Rule {
    let instances = statuses
        .iter()
        .filter_map(|s| {
            let c = burning(&s.burn)?;
            let severity = if c.critical { "critical" } else { "warning" };
            let long = rate(&s.burn, c.long_min).unwrap_or_default();
            let short = rate(&s.burn, c.short_min).unwrap_or_default();
            let labels = BTreeMap::from([
                ("alertname".to_string(), "OpslakeSLOBurnRate".to_string()),
                ("slo".to_string(), s.slo.clone()),
                ("severity".to_string(), severity.to_string()),
            ]);
            let summary = format!(
                "SLO {} burns its error budget {}x over {} and {}x over {} (threshold {}x); {}% \
                 of the budget is left",
                s.slo,
                format_number(long),
                minutes(c.long_min),
                format_number(short),
                minutes(c.short_min),
                format_number(c.factor),
                format_number(100.0 * s.period.budget_remaining(s.objective)),
            );
            Some(instance(labels, summary, Some(long)))
        })
        .collect();
    computed("OpslakeSLOBurnRate", Severity::Warning, instances)
}

fn pipeline_rules(facts: &PipelineFacts) -> Vec<Rule> {
    let behind: Vec<Instance> = facts
        .behind
        .iter()
        .map(|(job, secs)| {
            let labels = BTreeMap::from([
                ("alertname".to_string(), "OpslakePipeline".to_string()),
                ("problem".to_string(), "processor_behind".to_string()),
                ("job".to_string(), job.clone()),
                ("severity".to_string(), "error".to_string()),
            ]);
            let summary = format!(
                "the processor's {job} job has not folded data ingested {} s ago",
                format_number(secs.round())
            );
            instance(labels, summary, Some(*secs))
        })
        .collect();
    let stuck = facts.stuck.iter().map(|(topic, messages, secs)| {
        let labels = BTreeMap::from([
            ("alertname".to_string(), "OpslakePipeline".to_string()),
            ("problem".to_string(), "consumer_lag".to_string()),
            ("topic".to_string(), topic.clone()),
            ("severity".to_string(), "error".to_string()),
        ]);
        let summary = format!(
            "{messages} messages of {topic} wait on the brokers and ingest has not moved for {} s",
            format_number(secs.round())
        );
        instance(labels, summary, Some(*messages as f64))
    });
    let quarantined = facts.quarantined.iter().map(|(job, file, reason)| {
        let labels = BTreeMap::from([
            ("alertname".to_string(), "OpslakePipeline".to_string()),
            ("problem".to_string(), "quarantined_input".to_string()),
            ("job".to_string(), job.clone()),
            ("file".to_string(), file.clone()),
            ("severity".to_string(), "error".to_string()),
        ]);
        let summary =
            format!("the processor's {job} job set {file} aside and goes on without it: {reason}");
        instance(labels, summary, Some(1.0))
    });
    let split = facts.split_series.iter().map(|(topic, series)| {
        let labels = BTreeMap::from([
            ("alertname".to_string(), "OpslakePipeline".to_string()),
            ("problem".to_string(), "otlp_series_split".to_string()),
            ("topic".to_string(), topic.clone()),
            ("severity".to_string(), "warning".to_string()),
        ]);
        let summary = format!(
            "cumulative OTLP histograms of {topic} arrive on several partitions (e.g. {series}), \
             so their first points are counted once per partition: set the Collector's Kafka \
             exporter option partition_metrics_by_resource_attributes"
        );
        instance(labels, summary, Some(1.0))
    });
    let behind: Vec<Instance> = behind
        .into_iter()
        .chain(stuck)
        .chain(quarantined)
        .chain(split)
        .collect();
    let mut behind = computed("OpslakePipeline", Severity::Error, behind);
    behind.id = "OpslakePipeline/processor".into();
    let dead_letters = Rule {
        id: "OpslakePipeline/dead_letters".into(),
        name: "OpslakePipeline".into(),
        source: Source::Sql(
            "SELECT 'dead_letters' AS problem, topic, count(*) AS value, max(received_at) AS at, \
               last_value(error ORDER BY received_at) AS error \
             FROM dead_letters WHERE received_at >= now() - INTERVAL '10 minutes' GROUP BY topic"
                .into(),
        ),
        for_: Duration::ZERO,
        severity: Severity::Warning,
        labels: BTreeMap::new(),
        label_columns: Some(&["problem", "topic"]),
        annotations: BTreeMap::from([(
            "summary".into(),
            "{{ value }} events of {{ topic }} went to the dead letters in 10 minutes, the \
             latest because: {{ error }}"
                .into(),
        )]),
    };
    vec![behind, dead_letters]
}

/// The built-in rules that are on, for this evaluation.
pub fn builtin_rules(
    cfg: &AlertsConfig,
    statuses: &[SloStatus],
    pipeline: &PipelineFacts,
) -> Vec<Rule> {
    let mut rules = Vec::new();
    if cfg.builtin_on("OpslakeAnomaly") {
        rules.push(anomaly_rule());
    }
    if cfg.builtin_on("OpslakeRegression") {
        rules.push(regression_rule());
    }
    if cfg.builtin_on("OpslakeSLOBurnRate") {
        rules.push(burn_rule(statuses));
    }
    if cfg.builtin_on("OpslakeCostBudget") && !cfg.budgets.is_empty() {
        rules.push(budget_rule(&cfg.budgets));
    }
    if cfg.builtin_on("OpslakePipeline") {
        rules.extend(pipeline_rules(pipeline));
    }
    if cfg.builtin_on("OpslakeMemoryLeak") {
        rules.push(leak_rule());
    }
    if cfg.builtin_on("OpslakeCapacity") {
        rules.extend(capacity_rules());
    }
    rules
}
