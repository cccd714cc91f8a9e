//! One message into the batch: the partition's decision (accept, skip as a redelivery, read
//! again), decoding behind the panic boundary ([`crate::message`]), rows, histogram rows and the
//! cumulative series' state, and dead letters (the message once, later refusals referring to
//! it).

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use rdkafka::topic_partition_list::Offset;
use tracing::{debug, warn};

use super::session::Session;
use super::Ingest;
use crate::cumulative::{partition_prefix, PartitionSeries};
use crate::error::IngestError;
use crate::message::{decode_guarded, SeriesLimit};
use crate::metrics::{reason_class, METRICS};
use crate::partition::Decision;
use opslake_lake::batch::{Batch, DeadLetter, Provenance, TopicPartition};
use opslake_lake::state_keys::OTLP_SPLIT_PREFIX;

impl Ingest {
    /// Decodes one message into the batch.
    ///
    /// # Errors
    /// [`IngestError::Restart`] when the partition cannot be read again from the expected
    /// offset after a message arrived beyond it.
    pub(super) fn accept<M: Message>(
        &self,
        m: &M,
        s: &mut Session<'_>,
        batch: &mut Batch,
    ) -> Result<(), IngestError> {
        let topic = m.topic();
        let partition = m.partition();
        let offset = m.offset();
        let key = TopicPartition::new(topic, partition);
        let Some(state) = s.parts.get_mut(&key) else {
            debug!(
                topic,
                partition, offset, "message of a partition not assigned here; skipped"
            );
            return Ok(());
        };
        if !Self::take(state.decide(offset), s.consumer, m)? {
            return Ok(());
        }
        METRICS.messages_consumed.with_label_values(&[topic]).inc();
        let Some(kind) = self.kinds.get(topic).copied() else {
            batch.cover(
                topic,
                partition,
                state.lake_next.unwrap_or(offset),
                offset,
                0,
            );
            return Ok(());
        };
        let start = state.lake_next.unwrap_or(offset);
        let series = s.cumulative.entry(key.clone()).or_default();
        let limit = SeriesLimit {
            max_series: self.cfg.otlp_max_series,
        };
        // The panic boundary: nothing of the message touches the batch before this returns.
        let outcome = decode_guarded(kind, m.payload(), series, limit);
        batch.cover(topic, partition, start, offset, outcome.bytes);
        let now = chrono::Utc::now().timestamp_millis();
        let prov = |index: u32| Provenance {
            topic,
            partition,
            offset,
            index: i32::try_from(index).unwrap_or(i32::MAX),
            ingested_at_ms: now,
        };
        for (index, event) in &outcome.events {
            batch.push_event(event, &prov(*index));
        }
        for (index, h, sketch) in &outcome.histograms {
            batch.push_histogram(h, sketch, &prov(*index));
        }
        let prefix = partition_prefix(topic, partition);
        for (series_key, last) in outcome.series {
            series.set(&prefix, series_key, last, &mut batch.state);
        }
        if !outcome.new_series.is_empty() {
            self.report_split_series(&key, &outcome.new_series, &s.cumulative, batch);
        }
        if outcome.accepted > 0 {
            METRICS
                .events_accepted
                .with_label_values(&[topic])
                .inc_by(outcome.accepted as u64);
        }
        dead_letters(m, outcome.refused, batch, now);
        Ok(())
    }

    /// Reports cumulative series of `key`'s partition that are new there but already kept by
    /// another partition of the topic: each partition counts its first point whole, so the
    /// series is over-counted until the exporter partitions by resource. Logged once per
    /// series, counted, and recorded in the lake (`ingest.otlp_split/<topic>`) for
    /// `/api/v1/pipeline` and the `OpslakePipeline` alert.
    fn report_split_series(
        &self,
        key: &TopicPartition,
        new_series: &[String],
        all: &HashMap<TopicPartition, PartitionSeries>,
        batch: &mut Batch,
    ) {
        for series in new_series {
            let Some(other) = all
                .iter()
                .find(|(tp, ps)| {
                    tp.topic == key.topic && tp.partition != key.partition && ps.contains(series)
                })
                .map(|(tp, _)| tp.partition)
            else {
                continue;
            };
            METRICS.otlp_split_series.inc();
            warn!(
                topic = key.topic,
                partitions = ?[other, key.partition],
                series = series.chars().take(200).collect::<String>(),
                "a cumulative histogram series arrives on two partitions: each counts its first \
                 point whole; set the Collector's Kafka exporter to partition_metrics_by_resource_attributes"
            );
            batch.state.insert(
                format!("{OTLP_SPLIT_PREFIX}{}", key.topic),
                serde_json::json!({
                    "series": series.chars().take(1000).collect::<String>(),
                    "partitions": [other, key.partition],
                    "at_ms": chrono::Utc::now().timestamp_millis(),
                }),
            );
        }
    }

    /// Forgets the cumulative series of the batch's partitions that had no point for
    /// `ingest.otlp_state_ttl`, in the batch's own commit.
    pub(super) fn expire_series(&self, batch: &mut Batch, s: &mut Session<'_>) {
        for key in batch.offsets.keys() {
            if let Some(series) = s.cumulative.get_mut(key) {
                let prefix = partition_prefix(&key.topic, key.partition);
                let n = series.expire(&prefix, self.cfg.otlp_state_ttl, &mut batch.state);
                METRICS.otlp_series_expired.inc_by(n as u64);
            }
        }
    }
}

impl Ingest {
    /// Whether to decode the message, by its partition's `decision`: the next message is taken,
    /// a redelivery skipped, and a message beyond the expected offset makes the partition read
    /// again from where the decision says (nothing taken).
    ///
    /// # Errors
    /// [`IngestError::Restart`] when the partition cannot be read again.
    fn take<M: Message>(
        decision: Decision,
        consumer: &rdkafka::consumer::BaseConsumer<crate::membership::Ctx>,
        m: &M,
    ) -> Result<bool, IngestError> {
        let (topic, partition, offset) = (m.topic(), m.partition(), m.offset());
        match decision {
            Decision::Accept => Ok(true),
            // Redelivered: the lake (or this batch) already holds it.
            Decision::Skip => Ok(false),
            Decision::ReadAgainFrom(from) => {
                debug!(
                    topic,
                    partition, offset, from, "message beyond the expected offset; reading again"
                );
                METRICS.refetches.inc();
                consumer
                    .seek(
                        topic,
                        partition,
                        Offset::Offset(from),
                        Duration::from_secs(10),
                    )
                    .map(|()| false)
                    .map_err(|e| {
                        IngestError::Restart(format!(
                            "{topic}/{partition}: cannot read again from offset {from}: {e}"
                        ))
                    })
            }
        }
    }
}

/// The refusals of message `m` as dead letters. The message itself is the payload of the first
/// refusal that has no text of its own; later ones refer to it rather than copy it.
fn dead_letters<M: Message>(
    m: &M,
    refused: Vec<opslake_schemas::Refusal>,
    batch: &mut Batch,
    now: i64,
) {
    let (topic, partition, offset) = (m.topic(), m.partition(), m.offset());
    let payload = m.payload().unwrap_or_default();
    let mut message_at: Option<i32> = None;
    for r in refused {
        METRICS
            .events_rejected
            .with_label_values(&[topic, &reason_class(&r.reason)])
            .inc();
        let index = r.index.map_or(0, |i| i32::try_from(i).unwrap_or(i32::MAX));
        let (payload, error) = match (r.element, message_at) {
            (Some(text), _) => (text.into_bytes(), r.reason),
            (None, None) => {
                message_at = Some(index);
                (payload.to_vec(), r.reason)
            }
            (None, Some(at)) => (
                Vec::new(),
                format!(
                    "{} (the message is the payload of the dead letter of _index {at})",
                    r.reason
                ),
            ),
        };
        batch.push_dead_letter(DeadLetter {
            topic: topic.to_string(),
            partition,
            offset,
            index,
            key: m.key().map(<[u8]>::to_vec),
            payload,
            error,
            received_at_ms: now,
        });
    }
}
