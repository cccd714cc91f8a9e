//! Events written into a lake as one ingest commit, for tests, benchmarks and examples
//! (feature `test-util`): the files per table and hour, and the offsets they cover, in one log
//! entry.

use std::collections::BTreeMap;

use opslake_schemas::{Event, MetricEvent, MetricKind};

use crate::batch::{Batch, Provenance};
use crate::layout::data_file_path;
use crate::write::{encode_parquet, upload};
use crate::{Lake, LogEntry, PartitionOffsets};

/// A metric sample of `service` and `name` with no labels, version, unit or host.
#[must_use]
pub fn metric(timestamp_ms: i64, service: &str, name: &str, value: f64) -> Event {
    Event::Metric(MetricEvent {
        timestamp_ms,
        service: service.to_string(),
        name: name.to_string(),
        value,
        unit: None,
        kind: MetricKind::Sample,
        host: None,
        version: None,
        labels: Vec::new(),
    })
}

/// Whatever stops a test commit.
pub type TestCommitError = Box<dyn std::error::Error + Send + Sync>;

/// Commits `events` as ingest would have read them from `topic` partition 0, at offsets from
/// `first_offset` on (one event per offset); returns the log version.
///
/// # Errors
/// When a file cannot be encoded or written, or the commit fails.
pub async fn commit_events(
    lake: &Lake,
    topic: &str,
    first_offset: i64,
    events: &[Event],
) -> Result<u64, TestCommitError> {
    let mut batch = Batch::new();
    for (i, event) in events.iter().enumerate() {
        let offset = first_offset + i64::try_from(i)?;
        batch.cover(topic, 0, offset, offset, 10);
        batch.push_event(
            event,
            &Provenance {
                topic,
                partition: 0,
                offset,
                index: 0,
                ingested_at_ms: 0,
            },
        );
    }
    commit_batch(lake, batch, "test-ingest").await
}

/// Writes `batch`'s files and commits them, with the offsets the batch covers, as `writer`;
/// returns the log version.
///
/// # Errors
/// When a file cannot be encoded or written, or the commit fails.
pub async fn commit_batch(lake: &Lake, batch: Batch, writer: &str) -> Result<u64, TestCommitError> {
    let finished = batch.finish()?;
    let mut add = Vec::with_capacity(finished.parts.len());
    for ((table, date, hour), rb) in &finished.parts {
        let bytes = encode_parquet(std::slice::from_ref(rb))?;
        let rel = data_file_path(table.name(), date, *hour, writer);
        add.push(upload(lake, &rel, table.name(), rb.num_rows() as u64, bytes).await?);
    }
    let mut offsets: BTreeMap<String, BTreeMap<i32, PartitionOffsets>> = BTreeMap::new();
    for ((topic, partition), (start, end)) in finished.offsets {
        offsets
            .entry(topic)
            .or_default()
            .insert(partition, PartitionOffsets { start, end });
    }
    let entry = LogEntry {
        writer: writer.to_string(),
        add,
        offsets,
        ..Default::default()
    };
    Ok(lake.commit(entry, |_| Ok(())).await?)
}
