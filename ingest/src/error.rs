//! The ingest layer's errors.

use opslake_lake::LakeError;
use rdkafka::error::KafkaError;

/// Errors that end or restart the consume loop.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("failed to create kafka consumer")]
    CreateConsumer { source: KafkaError },
    #[error("failed to subscribe to {topics:?}")]
    Subscribe {
        topics: Vec<String>,
        source: KafkaError,
    },
    #[error("failed to encode parquet for {table}")]
    Encode {
        table: String,
        source: datafusion::parquet::errors::ParquetError,
    },
    #[error("failed to build record batch")]
    Build {
        source: datafusion::arrow::error::ArrowError,
    },
    #[error("shut down before the lake accepted the last flush; its events stay in kafka")]
    FlushAbandoned { source: LakeError },
    /// Another instance committed offsets this batch covers: the batch was dropped and the
    /// consumer must restart from the lake's record.
    #[error("lake conflict, restarting from the lake's offsets: {0}")]
    Restart(String),
    /// Partitions of the group's topics stalled while assigned elsewhere: the consumer leaves
    /// and joins the group again as a new member, which makes the group form again without
    /// members that stopped consuming.
    #[error("partitions stalled elsewhere ({stalled}); rejoining the consumer group")]
    Rejoin { stalled: String },
}
