//! The consumer backlog: messages the brokers hold that the lake does not. The lake records the
//! next offset ingest will read of every partition; the brokers' high watermarks say where the
//! partitions end. Their difference is exact, whatever consumer group ingest uses. The brokers
//! are asked through [`Brokers`], which the binary implements over Kafka: the processor speaks
//! no Kafka.

use std::collections::BTreeMap;

use futures::future::BoxFuture;

/// One partition's offsets on the brokers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionEnds {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// Its first offset still held.
    pub low: i64,
    /// One past its last offset.
    pub high: i64,
}

/// What the processor asks of the brokers ingest reads.
pub trait Brokers: Send + Sync {
    /// The offsets of every partition of `topics`.
    ///
    /// # Errors
    /// Why the brokers did not answer.
    fn ends<'a>(
        &'a self,
        topics: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<PartitionEnds>, String>>;
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
    brokers: &dyn Brokers,
    offsets: &BTreeMap<String, BTreeMap<i32, i64>>,
) -> Result<Vec<Backlog>, String> {
    let topics: Vec<String> = offsets.keys().cloned().collect();
    let ends = brokers.ends(&topics).await?;
    Ok(ends
        .into_iter()
        .map(|e| {
            let lake_next = offsets
                .get(&e.topic)
                .and_then(|r| r.get(&e.partition))
                .copied()
                .unwrap_or(e.low);
            Backlog {
                messages: (e.high - lake_next).max(0),
                topic: e.topic,
                partition: e.partition,
                lake_next,
            }
        })
        .collect())
}
