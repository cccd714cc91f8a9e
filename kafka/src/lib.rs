#![warn(missing_docs, unreachable_pub)]

//! Kafka client settings, topic creation, the broker probe behind `/readyz`, partition
//! watermarks and one-off produces: shared by ingest and the binary, which hands the processor
//! what it needs of the brokers through the processor's own traits (the processor links no
//! Kafka client).

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

/// One partition's offsets on the brokers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watermarks<'a> {
    /// The topic.
    pub topic: &'a str,
    /// The partition.
    pub partition: i32,
    /// Its first offset still held.
    pub low: i64,
    /// One past its last offset.
    pub high: i64,
}

/// The watermarks of every partition of `topics`, one request per partition; blocking (call
/// it from a blocking task). `each` takes them one by one.
///
/// # Errors
/// When the brokers cannot be reached within 5 s a request.
pub fn partition_watermarks(
    brokers: &str,
    extra: &KafkaProperties,
    topics: &[String],
    mut each: impl FnMut(Watermarks<'_>),
) -> Result<(), rdkafka::error::KafkaError> {
    let client: BaseConsumer = client_config(brokers, extra)
        .set("group.id", "opslake-watermarks")
        .create()?;
    let timeout = Duration::from_secs(5);
    for topic in topics {
        let md = client.fetch_metadata(Some(topic), timeout)?;
        for t in md.topics() {
            for p in t.partitions() {
                let (low, high) = client.fetch_watermarks(topic, p.id(), timeout)?;
                each(Watermarks {
                    topic,
                    partition: p.id(),
                    low,
                    high,
                });
            }
        }
    }
    Ok(())
}

/// Why a message could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    /// The topic could not be created.
    #[error(transparent)]
    Setup(#[from] KafkaSetupError),
    /// The broker did not take the message within 10 s.
    #[error("the broker did not take the message: {0}")]
    Produce(#[from] rdkafka::error::KafkaError),
}

/// Produces one message to `topic` (created with one partition when missing: brokers that do
/// not create topics on first use still take it), waiting up to 10 s for the broker.
///
/// # Errors
/// When the topic cannot be created or the broker does not take the message.
pub async fn produce_one(
    brokers: &str,
    extra: &KafkaProperties,
    topic: &str,
    replication_factor: i32,
    key: &str,
    payload: &[u8],
) -> Result<(), ProduceError> {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    create_topics(brokers, extra, &[topic], 1, replication_factor).await?;
    let producer: FutureProducer = client_config(brokers, extra)
        .set("message.timeout.ms", "10000")
        .create()?;
    producer
        .send(
            FutureRecord::to(topic).key(key).payload(payload),
            Duration::from_secs(10),
        )
        .await
        .map(|_| ())
        .map_err(|(e, _)| e.into())
}
