//! The dead-letter topic: every refused item, produced after its batch is in the lake.

use std::time::Duration;

use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use tracing::warn;

use crate::metrics::METRICS;
use opslake_lake::batch::DeadLetter;

/// Produces refused items to the dead-letter topic: original key and value, the reason in
/// header `opslake.error`, the origin in `opslake.source.*`. Best effort: they are in the
/// `dead_letters` table already.
pub(crate) fn produce(producer: &BaseProducer, topic: &str, dead: &[DeadLetter]) {
    if dead.is_empty() {
        return;
    }
    for d in dead {
        let partition = d.partition.to_string();
        let offset = d.offset.to_string();
        let index = d.index.to_string();
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "opslake.error",
                value: Some(d.error.as_bytes()),
            })
            .insert(Header {
                key: "opslake.source.topic",
                value: Some(d.topic.as_bytes()),
            })
            .insert(Header {
                key: "opslake.source.partition",
                value: Some(partition.as_bytes()),
            })
            .insert(Header {
                key: "opslake.source.offset",
                value: Some(offset.as_bytes()),
            })
            .insert(Header {
                key: "opslake.source.index",
                value: Some(index.as_bytes()),
            });
        debug_assert_eq!(headers.count(), 5);
        let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic)
            .payload(d.payload.as_slice())
            .headers(headers);
        if let Some(k) = &d.key {
            record = record.key(k);
        }
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((
                    KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull),
                    r,
                )) => {
                    producer.poll(Duration::from_millis(50));
                    record = r;
                }
                Err((e, _)) => {
                    METRICS
                        .dead_letter_produce_failures
                        .with_label_values(&[&d.topic])
                        .inc();
                    warn!(error = %e, "failed to produce a dead letter (it is in the dead_letters table)");
                    break;
                }
            }
        }
    }
    if let Err(e) = producer.flush(Duration::from_secs(10)) {
        METRICS
            .dead_letter_produce_failures
            .with_label_values(&[topic])
            .inc();
        warn!(error = %e, "dead-letter topic flush failed (they are in the dead_letters table)");
    }
}
