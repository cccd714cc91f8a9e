#![warn(missing_docs, unreachable_pub)]

//! Kafka client settings, topic creation and the broker probe behind `/readyz`, shared by
//! ingest, the processor (its membership, report delivery) and the binary.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;

use opslake_schemas::KafkaProperties;

/// Errors of Kafka set-up.
#[derive(Debug, thiserror::Error)]
pub enum KafkaSetupError {
    /// No client could be made, or the brokers did not answer.
    #[error("failed to create kafka client for {brokers}")]
    Client {
        /// The bootstrap servers.
        brokers: String,
        /// librdkafka's error.
        source: rdkafka::error::KafkaError,
    },
    /// The broker refused to create a topic.
    #[error("failed to create topic {topic}: {reason}")]
    CreateTopic {
        /// The topic.
        topic: String,
        /// The broker's error code, as text.
        reason: String,
    },
}

/// A client config with the brokers and the user's extra properties.
pub fn client_config(brokers: &str, extra: &KafkaProperties) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers);
    for (k, v) in extra.iter() {
        c.set(k, v);
    }
    c
}

/// Creates the topics in `names` that are missing.
///
/// # Errors
/// When the broker cannot be reached or refuses to create a topic.
pub async fn create_topics(
    brokers: &str,
    extra: &KafkaProperties,
    names: &[&str],
    partitions: i32,
    replication_factor: i32,
) -> Result<(), KafkaSetupError> {
    let admin: AdminClient<DefaultClientContext> =
        client_config(brokers, extra)
            .create()
            .map_err(|source| KafkaSetupError::Client {
                brokers: brokers.to_string(),
                source,
            })?;
    let topics: Vec<NewTopic<'_>> = names
        .iter()
        .map(|n| NewTopic::new(n, partitions, TopicReplication::Fixed(replication_factor)))
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = admin
        .create_topics(&topics, &opts)
        .await
        .map_err(|source| KafkaSetupError::Client {
            brokers: brokers.to_string(),
            source,
        })?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(KafkaSetupError::CreateTopic {
                    topic,
                    reason: code.to_string(),
                })
            }
        }
    }
    Ok(())
}

/// Checks that a broker answers a metadata request; blocking, so call it from a blocking task.
/// Returns how many brokers the cluster has.
///
/// # Errors
/// When no broker answers within `timeout`.
pub fn probe_broker(brokers: &str, timeout: Duration) -> Result<usize, rdkafka::error::KafkaError> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    let md = consumer.fetch_metadata(None, timeout)?;
    Ok(md.brokers().len())
}
