//! Ingest's settings.

use std::time::Duration;

use opslake_schemas::{decode_message, Decoded, EventKind, KafkaProperties};
use serde::{Deserialize, Serialize};

use crate::membership::Assignment;

/// Topic names (CONTRACT section 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Topics {
    /// Topic of metric events.
    pub metrics: String,
    /// Topic of log events.
    pub logs: String,
    /// Topic of billing events.
    pub billing: String,
    /// Topic of OpenTelemetry metrics as the Collector's Kafka exporter writes them
    /// (`ExportMetricsServiceRequest`, `otlp_proto` or `otlp_json`; CONTRACT section 9).
    pub otlp_metrics: String,
    /// Topic of OpenTelemetry logs as the Collector's Kafka exporter writes them.
    pub otlp_logs: String,
    /// Topic opslake writes every refused item to, reason in header `opslake.error`.
    pub dead_letter: String,
}

impl Topics {
    /// Every topic ingest reads, with what its messages hold.
    pub fn read(&self) -> Vec<(String, TopicKind)> {
        vec![
            (self.metrics.clone(), TopicKind::Json(EventKind::Metric)),
            (self.logs.clone(), TopicKind::Json(EventKind::Log)),
            (self.billing.clone(), TopicKind::Json(EventKind::Billing)),
            (self.otlp_metrics.clone(), TopicKind::OtlpMetrics),
            (self.otlp_logs.clone(), TopicKind::OtlpLogs),
        ]
    }
}

/// What the messages of a topic hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicKind {
    /// opslake JSON events of one kind (CONTRACT section 2).
    Json(EventKind),
    /// OTLP `ExportMetricsServiceRequest`s.
    OtlpMetrics,
    /// OTLP `ExportLogsServiceRequest`s.
    OtlpLogs,
}

impl TopicKind {
    /// Decodes one message value.
    pub fn decode(self, payload: &[u8]) -> Decoded {
        match self {
            Self::Json(kind) => decode_message(kind, payload),
            Self::OtlpMetrics => opslake_schemas::otlp::decode_metrics(payload),
            Self::OtlpLogs => opslake_schemas::otlp::decode_logs(payload),
        }
    }
}

impl Default for Topics {
    fn default() -> Self {
        Self {
            metrics: "telemetry.metrics".into(),
            logs: "telemetry.logs".into(),
            billing: "telemetry.billing".into(),
            otlp_metrics: "otlp_metrics".into(),
            otlp_logs: "otlp_logs".into(),
            dead_letter: "telemetry.dead-letter".into(),
        }
    }
}

/// Settings of the ingest role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Kafka consumer group shared by all ingest instances of one lake.
    pub group_id: String,
    /// How partitions reach this process: `group` (the consumer group shares them between
    /// instances), `direct` (every partition, no group: one ingest process per lake) or `auto`
    /// (`direct` for `opslake run`, `group` for `opslake ingest`).
    pub assignment: Assignment,
    /// Static group membership (`group.instance.id`): a restarted instance with the same id
    /// takes its predecessor's partitions at once instead of waiting for a rebalance. Unique
    /// per instance and stable across its restarts, e.g. the pod name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// Topic names.
    pub topics: Topics,
    /// Partitions of topics that opslake creates when they are missing.
    pub partitions: i32,
    /// Replication factor of topics that opslake creates.
    pub replication_factor: i32,
    /// Flush when this many rows are buffered.
    pub flush_rows: usize,
    /// Flush when this many bytes of messages are buffered.
    pub flush_bytes: usize,
    /// Flush at the latest this long after the first buffered message (bounds visibility delay).
    #[serde(with = "humantime_serde")]
    pub flush_interval: Duration,
    /// Kafka consumer group session timeout; also how long a partition may have events to read
    /// with no progress in the lake before the watchdog reports it stalled.
    #[serde(with = "humantime_serde")]
    pub session_timeout: Duration,
    /// Longest time between two polls before the group considers this consumer gone; also how
    /// long a rebalance waits for members to rejoin (`max.poll.interval.ms`).
    #[serde(with = "humantime_serde")]
    pub max_poll_interval: Duration,
    /// Extra librdkafka properties for the consumer and producer (e.g. `security.protocol`);
    /// the values of secret ones (`sasl.password`, ...) never print.
    pub kafka: KafkaProperties,
    /// A cumulative OTLP histogram series without a point for this long (by the event time of
    /// its partition's newest point) is forgotten; its next point counts whole.
    #[serde(with = "humantime_serde")]
    pub otlp_state_ttl: Duration,
    /// Most cumulative OTLP histogram series one partition keeps; points of further series are
    /// refused (dead-lettered, naming this setting) until others expire.
    pub otlp_max_series: usize,
    /// An hour's small files are merged once nothing was written to it for this long.
    #[serde(with = "humantime_serde")]
    pub compact_quiet: Duration,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            group_id: "opslake-ingest".into(),
            assignment: Assignment::Auto,
            instance_id: None,
            topics: Topics::default(),
            partitions: 3,
            replication_factor: 1,
            flush_rows: 250_000,
            flush_bytes: 64 * 1024 * 1024,
            flush_interval: Duration::from_secs(2),
            session_timeout: Duration::from_secs(10),
            max_poll_interval: Duration::from_secs(300),
            kafka: KafkaProperties::default(),
            otlp_state_ttl: Duration::from_secs(3600),
            compact_quiet: Duration::from_secs(120),
            otlp_max_series: 20_000,
        }
    }
}
