//! The ingest layer's errors.

use opslake_lake::LakeError;
use rdkafka::error::KafkaError;

/// Errors that end or restart the consume loop.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The Kafka consumer could not be created.
    #[error("failed to create kafka consumer")]
    CreateConsumer {
        /// The cause.
        source: KafkaError,
    },
    /// The consumer could not subscribe to its topics.
    #[error("failed to subscribe to {topics:?}")]
    Subscribe {
        /// The topics.
        topics: Vec<String>,
        /// The cause.
        source: KafkaError,
    },
    /// A batch could not be encoded as Parquet.
    #[error("failed to encode parquet for {table}")]
    Encode {
        /// The table.
        table: String,
        /// The cause.
        source: datafusion::parquet::errors::ParquetError,
    },
    /// A batch's Arrow columns could not be built.
    #[error("failed to build record batch")]
    Build {
        /// The cause.
        source: datafusion::arrow::error::ArrowError,
    },
    /// The lake did not accept the last flush before shutdown.
    #[error("shut down before the lake accepted the last flush; its events stay in kafka")]
    FlushAbandoned {
        /// The cause.
        source: LakeError,
    },
    /// Another instance committed offsets this batch covers: the batch was dropped and the
    /// consumer must restart from the lake's record.
    #[error("lake conflict, restarting from the lake's offsets: {0}")]
    Restart(String),
    /// Partitions of the group's topics stalled while assigned elsewhere: the consumer leaves
    /// and joins the group again as a new member, which makes the group form again without
    /// members that stopped consuming.
    #[error("partitions stalled elsewhere ({stalled}); rejoining the consumer group")]
    Rejoin {
        /// The partitions that stalled.
        stalled: String,
    },
}
