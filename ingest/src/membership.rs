//! How an ingest consumer gets its partitions, and where it starts reading them.
//!
//! The lake, not Kafka, records which offsets are ingested, so a consumer always starts a
//! partition at the lake's next offset, whichever way the partition reached it:
//! - [`Assignment::Group`]: a consumer group shares the partitions between `opslake ingest`
//!   instances; librdkafka's rebalance callback ([`Ctx::rebalance`]) reads the lake before the
//!   partitions are assigned. With `instance_id` set the member is static
//!   (`group.instance.id`), so a restarted instance takes its predecessor's place at once.
//! - [`Assignment::Direct`]: no group at all; the consumer assigns itself every partition of its
//!   topics and follows partitions added later ([`follow_partitions`]). A restart can never find
//!   its partitions held by a dead member, which is what the all-in-one `opslake run` needs.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::KafkaError;
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::ClientContext;
use serde::{Deserialize, Serialize};
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::cumulative::{load, partition_prefix, PartitionSeries};
use crate::metrics::METRICS;
use opslake_lake::batch::TopicPartition;
use opslake_lake::{Lake, Snapshot};

/// How ingest gets its partitions (`ingest.assignment`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Assignment {
    /// `direct` for `opslake run` (one process has every partition), `group` for
    /// `opslake ingest` (instances share them).
    #[default]
    Auto,
    /// A Kafka consumer group shares the partitions between instances.
    Group,
    /// Every partition of the topics, without a consumer group.
    Direct,
}

impl Assignment {
    /// The mode in force: `Auto` becomes `Direct` when this process is the only ingest
    /// instance there is (`opslake run`), else `Group`.
    #[must_use]
    pub fn resolve(self, all_in_one: bool) -> Self {
        match self {
            Self::Auto if all_in_one => Self::Direct,
            Self::Auto => Self::Group,
            other => other,
        }
    }
}

/// A change of the partitions assigned to this consumer, applied by the consume loop in order.
pub(crate) enum Change {
    /// Partitions now assigned, each with the lake's next offset (`None`: the lake holds none)
    /// and the state of its cumulative histogram series as of that offset.
    Assigned(Vec<Resume>),
    /// Partitions taken away.
    Revoked(Vec<TopicPartition>),
}

/// Where a newly assigned partition resumes, as the lake records it.
pub(crate) struct Resume {
    /// The partition.
    pub(crate) key: TopicPartition,
    /// The lake's next offset; `None`: the lake holds none of the partition.
    pub(crate) next: Option<i64>,
    /// Where reading starts: at or before `next` (see [`read_from`]).
    pub(crate) start: Option<i64>,
    /// The partition's cumulative histogram series at that offset.
    pub(crate) series: PartitionSeries,
}

/// The consumer's context: statistics into metrics, and the rebalance callback.
pub(crate) struct Ctx {
    pub(crate) lake: Arc<Lake>,
    pub(crate) handle: Handle,
    pub(crate) shutdown: CancellationToken,
    pub(crate) changes: Mutex<Vec<Change>>,
}

impl Ctx {
    fn push(&self, change: Change) {
        self.changes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(change);
    }

    /// The changes since the last call, in order.
    pub(crate) fn take_changes(&self) -> Vec<Change> {
        std::mem::take(
            &mut *self
                .changes
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// The lake's snapshot, retried until it reads or shutdown begins (`None`).
    fn snapshot(&self) -> Option<Snapshot> {
        loop {
            match self.handle.block_on(self.lake.snapshot()) {
                Ok(s) => return Some(s),
                Err(e) if !self.shutdown.is_cancelled() => {
                    error!(error = %e, "cannot read the lake's offsets for an assignment; retrying");
                    std::thread::sleep(Duration::from_secs(1));
                }
                Err(_) => return None,
            }
        }
    }

    /// Sets each partition of `tpl` to start at the lake's next offset (the beginning when the
    /// lake holds none of it), or a little before it (see [`read_from`]), and returns them as
    /// an assignment change.
    fn resume_points(&self, consumer: &BaseConsumer<Self>, tpl: &mut TopicPartitionList) -> Change {
        let snapshot = self.snapshot();
        let parts = partitions(tpl);
        let mut assigned = Vec::with_capacity(parts.len());
        for key in parts {
            let (topic, p) = (key.topic.as_str(), key.partition);
            let next = snapshot.as_ref().and_then(|s| s.next_offset(topic, p));
            let start = next.map(|n| {
                let high = consumer
                    .fetch_watermarks(topic, p, WATERMARK_TIMEOUT)
                    .map(|(_, high)| high)
                    .ok();
                read_from(n, high)
            });
            let offset = start.map_or(Offset::Beginning, Offset::Offset);
            if let Err(e) = tpl.set_partition_offset(topic, p, offset) {
                error!(error = %e, topic, partition = p, "cannot set start offset");
            }
            let series = snapshot.as_ref().map(|s| {
                let prefix = partition_prefix(topic, p);
                load(
                    &prefix,
                    s.state
                        .range(prefix.clone()..)
                        .take_while(|(k, _)| k.starts_with(&prefix)),
                )
            });
            assigned.push(Resume {
                key: key.clone(),
                next,
                start,
                series: series.unwrap_or_default(),
            });
        }
        let partitions: Vec<_> = assigned
            .iter()
            .map(|r| (r.key.to_string(), r.next))
            .collect();
        info!(
            ?partitions,
            "partitions assigned; resuming from the lake's offsets"
        );
        Change::Assigned(assigned)
    }
}

impl ClientContext for Ctx {
    fn stats(&self, stats: Statistics) {
        for (topic, t) in &stats.topics {
            for (p, part) in &t.partitions {
                if *p < 0 {
                    continue; // librdkafka's internal "unassigned" partition
                }
                let labels = [topic.as_str(), &p.to_string()];
                match part.fetch_state.as_str() {
                    // Moved to another instance: its lag is theirs to report now.
                    "none" | "stopping" | "stopped" => {
                        let _ = METRICS.consumer_lag.remove_label_values(&labels);
                    }
                    state => {
                        let lag = if part.consumer_lag >= 0 {
                            part.consumer_lag
                        } else if state == "active" && part.hi_offset >= 0 && part.lo_offset >= 0 {
                            // Fetching with nothing consumed or committed yet: the group starts
                            // from the earliest offset, so all of the partition is behind.
                            part.hi_offset - part.lo_offset
                        } else {
                            continue;
                        };
                        METRICS.consumer_lag.with_label_values(&labels).set(lag);
                    }
                }
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        METRICS.broker_up.set(0);
        warn!(%error, reason, "kafka client error");
    }
}

impl ConsumerContext for Ctx {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let change = self.resume_points(consumer, tpl);
                let r = if cooperative {
                    consumer.incremental_assign(tpl)
                } else {
                    consumer.assign(tpl)
                };
                if let Err(e) = r {
                    error!(error = %e, "assign failed");
                }
                self.push(change);
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let parts = partitions(tpl);
                info!(partitions = ?parts, "partitions revoked");
                let r = if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                };
                if let Err(e) = r {
                    error!(error = %e, "unassign failed");
                }
                self.push(Change::Revoked(parts));
            }
            other => {
                error!(error = ?other, "rebalance error");
                let _ = consumer.unassign();
                self.push(Change::Revoked(partitions(tpl)));
            }
        }
    }
}

fn partitions(tpl: &TopicPartitionList) -> Vec<TopicPartition> {
    tpl.elements()
        .iter()
        .map(|e| TopicPartition::new(e.topic(), e.partition()))
        .collect()
}

/// Direct assignment: assigns every partition of `topics` that is not in `known` yet, starting
/// at the lake's offsets, and adds them to `known`. Called at start and then periodically, so
/// partitions added to a topic later are read too.
///
/// # Errors
/// When the broker does not answer the metadata request or refuses the assignment.
pub(crate) fn follow_partitions(
    consumer: &BaseConsumer<Ctx>,
    topics: &[String],
    known: &mut BTreeSet<TopicPartition>,
) -> Result<(), KafkaError> {
    let mut tpl = TopicPartitionList::new();
    for topic in topics {
        let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
        for t in md.topics() {
            for p in t.partitions() {
                if !known.contains(&TopicPartition::new(t.name(), p.id())) {
                    tpl.add_partition(t.name(), p.id());
                }
            }
        }
    }
    if tpl.count() == 0 {
        return Ok(());
    }
    let ctx = consumer.context();
    let change = ctx.resume_points(consumer, &mut tpl);
    consumer.incremental_assign(&tpl)?;
    known.extend(partitions(&tpl));
    ctx.push(change);
    Ok(())
}

/// How long an assignment waits for a partition's high watermark.
const WATERMARK_TIMEOUT: Duration = Duration::from_secs(2);

/// Where to start reading a partition whose lake's next offset is `next`, given its high
/// watermark `high` (`None` when the broker did not say): the batch that holds `next` must be
/// delivered. Apache Kafka answers a fetch from inside a batch with the whole batch, but Tansu
/// 0.6 answers it with the *next* batch, and for the partition's last batch with nothing, so a
/// consumer resuming inside the last batch would wait for a message that may never come (the
/// rest of the batch unread, and Tansu's high watermark, one past the last batch's *first*
/// offset, hiding it). Starting at `high - 1` when that is before `next` reads that batch from
/// its first offset on Tansu (and at most one message again on Kafka); the offsets before
/// `next` are skipped as redeliveries, and a batch further back is found by the re-read that
/// any later message triggers ([`crate::partition`]).
pub(crate) fn read_from(next: i64, high: Option<i64>) -> i64 {
    match high {
        Some(h) if h >= 1 => next.min(h - 1).max(0),
        _ => next,
    }
}

/// How long a consumer may take to leave its group when it stops.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Leaves the consumer group, waiting at most [`CLOSE_TIMEOUT`]. rdkafka's drop waits for the
/// close without a bound, which never ends when the broker is gone (seen when the broker
/// stopped together with opslake: shutdown then took the whole shutdown timeout and failed).
/// So the drop runs on its own thread; every batch is committed to the lake before this, and a
/// consumer that cannot leave is left to the broker, which expires it after the session
/// timeout.
pub(crate) fn close(consumer: BaseConsumer<Ctx>) {
    let (done, closed) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("ingest-close".into())
        .spawn(move || {
            drop(consumer);
            let _ = done.send(());
        });
    if spawned.is_ok() && closed.recv_timeout(CLOSE_TIMEOUT).is_err() {
        warn!(
            timeout = ?CLOSE_TIMEOUT,
            "the consumer did not leave its group in time (broker unreachable?); not waiting"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resuming_starts_at_the_last_batch_when_it_holds_the_next_offset() {
        // Tansu: the last batch starts at 4 (high watermark 5), the lake is at 33.
        assert_eq!(read_from(33, Some(5)), 4);
        // Apache Kafka: high watermark past the next offset, read from it.
        assert_eq!(read_from(33, Some(100)), 33);
        // Caught up: one message before it is read again, and skipped.
        assert_eq!(read_from(33, Some(33)), 32);
        assert_eq!(read_from(33, None), 33);
        assert_eq!(read_from(0, Some(0)), 0);
    }

    #[test]
    fn auto_is_direct_for_the_all_in_one_process_only() {
        assert_eq!(Assignment::Auto.resolve(true), Assignment::Direct);
        assert_eq!(Assignment::Auto.resolve(false), Assignment::Group);
        assert_eq!(Assignment::Group.resolve(true), Assignment::Group);
        assert_eq!(Assignment::Direct.resolve(false), Assignment::Direct);
    }

    #[test]
    fn assignment_reads_as_lowercase_words() {
        #[derive(Deserialize)]
        struct C {
            a: Assignment,
        }
        let c: C = serde_json::from_str(r#"{"a": "direct"}"#).unwrap();
        assert_eq!(c.a, Assignment::Direct);
        assert!(serde_json::from_str::<C>(r#"{"a": "sticky"}"#).is_err());
    }
}
