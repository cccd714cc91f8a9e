//! The consumer backlog: messages the brokers hold that the lake does not. The lake records the
//! next offset ingest will read of every partition; the brokers' high watermarks say where the
//! partitions end. Their difference is exact, whatever consumer group ingest uses, and costs
//! one watermark request per partition.

use std::collections::BTreeMap;
use std::time::Duration;

use opslake_schemas::KafkaProperties;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;

/// How to reach the brokers ingest reads.
#[derive(Debug, Clone)]
pub struct Brokers {
    /// Bootstrap servers.
    pub servers: String,
    /// Extra librdkafka properties (security); secrets never print.
    pub properties: KafkaProperties,
}

/// One partition's backlog.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Backlog {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The next offset ingest reads, as the lake records it.
    pub lake_next: i64,
    /// Messages after it on the broker (a message may hold an array of events).
    pub messages: i64,
}

/// The backlog of every partition of the topics the lake has offsets of (`topic -> partition
/// -> next`); a partition the lake has no offset of yet is read from its start.
///
/// # Errors
/// When the brokers cannot be reached.
pub async fn backlog(
    brokers: &Brokers,
    offsets: &BTreeMap<String, BTreeMap<i32, i64>>,
) -> Result<Vec<Backlog>, KafkaError> {
    let (brokers, offsets) = (brokers.clone(), offsets.clone());
    tokio::task::spawn_blocking(move || {
        let client: BaseConsumer =
            opslake_kafka::client_config(&brokers.servers, &brokers.properties)
                .set("group.id", "opslake-backlog")
                .create()?;
        let timeout = Duration::from_secs(5);
        let mut out = Vec::new();
        for (topic, recorded) in &offsets {
            let md = client.fetch_metadata(Some(topic), timeout)?;
            for t in md.topics() {
                for p in t.partitions() {
                    let (low, high) = client.fetch_watermarks(topic, p.id(), timeout)?;
                    let lake_next = recorded.get(&p.id()).copied().unwrap_or(low);
                    out.push(Backlog {
                        topic: topic.clone(),
                        partition: p.id(),
                        lake_next,
                        messages: (high - lake_next).max(0),
                    });
                }
            }
        }
        Ok(out)
    })
    .await
    .map_err(|_| KafkaError::Canceled)?
}
