//! The pipeline's own Prometheus metrics of ingest, in the default registry that `/metrics`
//! serves.

use std::sync::LazyLock;

use prometheus::{
    register_histogram_vec, register_int_counter, register_int_counter_vec, register_int_gauge,
    register_int_gauge_vec, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
};

/// Ingest's metrics.
pub struct IngestMetrics {
    /// Messages read from Kafka, by topic.
    pub messages_consumed: IntCounterVec,
    /// Events accepted, by topic.
    pub events_accepted: IntCounterVec,
    /// Items refused, by topic and reason class.
    pub events_rejected: IntCounterVec,
    /// Rows written, by table.
    pub rows_written: IntCounterVec,
    /// Files written, by table.
    pub files_written: IntCounterVec,
    /// Bytes of Parquet written, by table.
    pub bytes_written: IntCounterVec,
    /// Flush duration, by outcome.
    pub flush_seconds: HistogramVec,
    /// Commit conflicts and failed flushes, by kind.
    pub flush_failures: IntCounterVec,
    /// Consumer lag by topic and partition, from librdkafka statistics.
    pub consumer_lag: IntGaugeVec,
    /// 1 when the last broker contact succeeded.
    pub broker_up: IntGauge,
    /// Partitions read again from the expected offset after a message arrived beyond it.
    pub refetches: IntCounter,
    /// 1 when the last flush succeeded (or none was needed).
    pub lake_writable: IntGauge,
    /// Dead letters that could not be produced to the dead-letter topic (they are in the table).
    pub dead_letter_produce_failures: IntCounterVec,
    /// Partitions with events to read and no progress in the lake for longer than the session
    /// timeout, as of the watchdog's last look.
    pub stalled_partitions: IntGauge,
    /// Times this process rejoined its consumer group because partitions stalled.
    pub group_rejoins: IntCounter,
    /// Messages whose decoding panicked (each went to the dead letters whole).
    pub decode_panics: IntCounter,
    /// Cumulative histogram series forgotten after `ingest.otlp_state_ttl` without a point.
    pub otlp_series_expired: IntCounter,
    /// Cumulative histogram series seen on a second partition of their topic (their first
    /// point there counts whole: the exporter must partition by resource).
    pub otlp_split_series: IntCounter,
}

/// The process-wide instance.
pub static METRICS: LazyLock<IngestMetrics> = LazyLock::new(|| {
    IngestMetrics {
    messages_consumed: register_int_counter_vec!(
        "opslake_ingest_messages_consumed_total",
        "Kafka messages read",
        &["topic"]
    )
    .expect("metric registers"),
    events_accepted: register_int_counter_vec!(
        "opslake_ingest_events_accepted_total",
        "events accepted into the lake",
        &["topic"]
    )
    .expect("metric registers"),
    events_rejected: register_int_counter_vec!(
        "opslake_ingest_events_rejected_total",
        "items refused and sent to the dead-letter topic and table",
        &["topic", "reason"]
    )
    .expect("metric registers"),
    rows_written: register_int_counter_vec!(
        "opslake_ingest_rows_written_total",
        "rows committed to the lake",
        &["table"]
    )
    .expect("metric registers"),
    files_written: register_int_counter_vec!(
        "opslake_ingest_files_written_total",
        "Parquet files committed to the lake",
        &["table"]
    )
    .expect("metric registers"),
    bytes_written: register_int_counter_vec!(
        "opslake_ingest_bytes_written_total",
        "Parquet bytes committed to the lake",
        &["table"]
    )
    .expect("metric registers"),
    flush_seconds: register_histogram_vec!(
        "opslake_ingest_flush_duration_seconds",
        "time to encode, upload and commit one flush",
        &["outcome"],
        vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]
    )
    .expect("metric registers"),
    flush_failures: register_int_counter_vec!(
        "opslake_ingest_flush_failures_total",
        "flushes that did not commit",
        &["kind"]
    )
    .expect("metric registers"),
    consumer_lag: register_int_gauge_vec!(
        "opslake_ingest_consumer_lag",
        "messages behind the partition's high watermark",
        &["topic", "partition"]
    )
    .expect("metric registers"),
    broker_up: register_int_gauge!("opslake_ingest_broker_up", "1 when the broker is reachable")
        .expect("metric registers"),
    refetches: register_int_counter!(
        "opslake_ingest_refetches_total",
        "partitions read again from the expected offset after a message arrived beyond it"
    )
    .expect("metric registers"),
    lake_writable: register_int_gauge!(
        "opslake_ingest_lake_writable",
        "1 when the last flush reached the lake"
    )
    .expect("metric registers"),
    dead_letter_produce_failures: register_int_counter_vec!(
        "opslake_ingest_dead_letter_produce_failures_total",
        "dead letters not produced to the dead-letter topic",
        &["topic"]
    )
    .expect("metric registers"),
    stalled_partitions: register_int_gauge!(
        "opslake_ingest_stalled_partitions",
        "partitions with events to read and no progress in the lake for longer than the session timeout"
    )
    .expect("metric registers"),
    group_rejoins: register_int_counter!(
        "opslake_ingest_group_rejoins_total",
        "times ingest rejoined its consumer group because partitions stalled"
    )
    .expect("metric registers"),
    decode_panics: register_int_counter!(
        "opslake_ingest_decode_panics_total",
        "messages whose decoding panicked; each went to the dead letters whole"
    )
    .expect("metric registers"),
    otlp_series_expired: register_int_counter!(
        "opslake_ingest_otlp_series_expired_total",
        "cumulative histogram series forgotten after ingest.otlp_state_ttl without a point"
    )
    .expect("metric registers"),
    otlp_split_series: register_int_counter!(
        "opslake_ingest_otlp_split_series_total",
        "cumulative histogram series seen on a second partition of their topic"
    )
    .expect("metric registers"),
}
});

/// A short class of a refusal reason for the metric label: the field it names, or `json`.
pub fn reason_class(reason: &str) -> String {
    let r = reason
        .strip_prefix('[')
        .and_then(|r| r.split_once("] "))
        .map_or(reason, |(_, rest)| rest);
    if r.starts_with("message is not valid") {
        return "invalid_json".to_string();
    }
    if r.starts_with("message of ") {
        return "too_large".to_string();
    }
    let field = r.split(':').next().unwrap_or("other");
    let field = field.split('.').next().unwrap_or(field);
    // Only the contract's own field names: a producer's unknown keys must not each become a
    // time series of `/metrics` (the labels of a metric are memory that never shrinks).
    let known = EVENT_FIELDS.contains(&field)
        || opslake_schemas::decode::BILLING_FIELDS
            .iter()
            .any(|(snake, focus)| field == *snake || field == *focus);
    if known {
        field.to_string()
    } else {
        "other".to_string()
    }
}

/// The fields of metric and log events and the parts of OTLP points a refusal can name.
const EVENT_FIELDS: &[&str] = &[
    "timestamp",
    "service",
    "name",
    "value",
    "unit",
    "kind",
    "host",
    "version",
    "labels",
    "level",
    "message",
    "trace_id",
    "duration_ms",
    "status_code",
    "attributes",
    "event",
];
