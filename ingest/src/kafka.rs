//! The topics ingest reads and writes, created when missing.

use opslake_kafka::{create_topics, KafkaSetupError};

use crate::config::IngestConfig;

/// Creates the topics of `cfg` that are missing.
///
/// # Errors
/// When the broker cannot be reached or refuses to create a topic.
pub async fn ensure_topics(brokers: &str, cfg: &IngestConfig) -> Result<(), KafkaSetupError> {
    let t = &cfg.topics;
    create_topics(
        brokers,
        &cfg.kafka,
        &[
            &t.metrics,
            &t.logs,
            &t.billing,
            &t.otlp_metrics,
            &t.otlp_logs,
            &t.dead_letter,
        ],
        cfg.partitions,
        cfg.replication_factor,
    )
    .await
}
