//! The processor's own Prometheus metrics, in the default registry that `/metrics` serves.

use std::sync::LazyLock;

use prometheus::{
    register_histogram, register_int_counter_vec, register_int_gauge, register_int_gauge_vec,
    Histogram, IntCounterVec, IntGauge, IntGaugeVec,
};

/// Processor metrics.
pub struct ProcessorMetrics {
    /// Rollup rows (windows) written, by table.
    pub windows_written: IntCounterVec,
    /// Raw files folded into rollups, by table and path (incremental or hour recompute).
    pub files_processed: IntCounterVec,
    /// Seconds between the newest raw commit and the processor's record of it.
    pub lag_seconds: IntGauge,
    /// Lake versions not processed yet.
    pub lag_versions: IntGauge,
    /// Detections recorded, by kind (anomaly, regression).
    pub detections: IntCounterVec,
    /// Duration of a processing cycle.
    pub cycle_seconds: Histogram,
    /// Cycles by outcome (ok, idle, conflict, error).
    pub cycles: IntCounterVec,
    /// Forecast reports by trigger (schedule, manual) and outcome (ok, error).
    pub reports: IntCounterVec,
    /// Report deliveries by target (webhook, topic) and outcome (ok, failed).
    pub report_deliveries: IntCounterVec,
}

/// The process-wide instance.
pub static METRICS: LazyLock<ProcessorMetrics> = LazyLock::new(|| ProcessorMetrics {
    windows_written: register_int_counter_vec!(
        "opslake_processor_windows_written_total",
        "rollup rows written (one per window and series)",
        &["table"]
    )
    .expect("metric registers"),
    files_processed: register_int_counter_vec!(
        "opslake_processor_raw_files_processed_total",
        "raw files folded into rollups",
        &["table", "mode"]
    )
    .expect("metric registers"),
    lag_seconds: register_int_gauge!(
        "opslake_processor_lag_seconds",
        "seconds between the newest raw commit and the processor having folded it"
    )
    .expect("metric registers"),
    lag_versions: register_int_gauge!(
        "opslake_processor_lag_versions",
        "lake log versions the processor has not processed yet"
    )
    .expect("metric registers"),
    detections: register_int_counter_vec!(
        "opslake_processor_detections_total",
        "anomalies and regressions recorded",
        &["kind"]
    )
    .expect("metric registers"),
    cycle_seconds: register_histogram!(
        "opslake_processor_cycle_seconds",
        "duration of one processing cycle",
        vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0]
    )
    .expect("metric registers"),
    cycles: register_int_counter_vec!(
        "opslake_processor_cycles_total",
        "processing cycles by outcome",
        &["outcome"]
    )
    .expect("metric registers"),
    reports: register_int_counter_vec!(
        "opslake_reports_total",
        "forecast reports generated, by trigger and outcome",
        &["trigger", "outcome"]
    )
    .expect("metric registers"),
    report_deliveries: register_int_counter_vec!(
        "opslake_report_deliveries_total",
        "report deliveries by target and outcome",
        &["target", "outcome"]
    )
    .expect("metric registers"),
});

/// Alerting metrics.
pub struct AlertMetrics {
    /// Evaluations of the rules, by outcome (ok, error).
    pub evaluations: IntCounterVec,
    /// Failed evaluations of a rule, by rule.
    pub rule_errors: IntCounterVec,
    /// Rules whose last evaluation failed.
    pub rules_failing: IntGauge,
    /// Active alerts by state (pending, firing) and severity.
    pub active: IntGaugeVec,
    /// Notifications by receiver and outcome (sent, retried, failed, dropped).
    pub notifications: IntCounterVec,
}

/// The process-wide instance.
pub static ALERT_METRICS: LazyLock<AlertMetrics> = LazyLock::new(|| AlertMetrics {
    evaluations: register_int_counter_vec!(
        "opslake_alert_evaluations_total",
        "evaluations of the alert rules, by outcome",
        &["outcome"]
    )
    .expect("metric registers"),
    rule_errors: register_int_counter_vec!(
        "opslake_alert_rule_errors_total",
        "failed evaluations of an alert rule, by rule",
        &["rule"]
    )
    .expect("metric registers"),
    rules_failing: register_int_gauge!(
        "opslake_alert_rules_failing",
        "alert rules whose last evaluation failed"
    )
    .expect("metric registers"),
    active: register_int_gauge_vec!(
        "opslake_alerts_active",
        "active alerts by state and severity",
        &["state", "severity"]
    )
    .expect("metric registers"),
    notifications: register_int_counter_vec!(
        "opslake_alert_notifications_total",
        "alert notifications by receiver and outcome (sent, retried, failed, dropped)",
        &["receiver", "outcome"]
    )
    .expect("metric registers"),
});
