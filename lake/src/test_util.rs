//! Events written into a lake as one ingest commit, for tests, benchmarks and examples
//! (feature `test-util`): the files per table and hour, and the offsets they cover, in one log
//! entry.

use opslake_schemas::{Event, MetricEvent, MetricKind};

use crate::batch::{Batch, Provenance};
use crate::layout::data_file_path;
use crate::write::{encode_parquet, upload};
use crate::{Lake, LogEntry};

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
    let offsets = crate::batch::offsets_by_topic(&finished.offsets);
    let entry = LogEntry {
        writer: writer.to_string(),
        add,
        offsets,
        ..Default::default()
    };
    Ok(lake.commit(entry, |_| Ok(())).await?)
}

/// The synthetic latency series the detection tests share: service `payments`, metric
/// `http.server.duration` with `labels`, ten samples per window of `step` ms for two days of
/// windows from `t0`; a daily cycle of ±30% and ±5% noise (seeded with `seed`); a deploy at
/// `deploy` (version 1.9.0, then 2.0.0 and 40% slower); and, when `spike` names a window's
/// start, that window 8 times slower. Events as JSON, in time order.
pub fn payments_charge(
    t0: i64,
    step: i64,
    deploy: i64,
    spike: Option<i64>,
    labels: &serde_json::Value,
    seed: u64,
) -> Vec<serde_json::Value> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let per_day = 86_400_000 / step.max(1);
    let mut events = Vec::new();
    for w in 0..2 * per_day {
        let t = t0 + w * step;
        let phase = (w % per_day) as f64 / per_day as f64;
        let daily = 1.0 + 0.3 * (2.0 * std::f64::consts::PI * phase).sin();
        let (version, slow) = if t >= deploy {
            ("2.0.0", 1.4)
        } else {
            ("1.9.0", 1.0)
        };
        for i in 0..10 {
            let mut v = 80.0 * daily * slow * rng.random_range(0.95..1.05);
            if Some(t) == spike {
                v *= 8.0;
            }
            events.push(serde_json::json!({
                "timestamp": t + i * step / 12, "service": "payments",
                "name": "http.server.duration", "value": v, "version": version, "labels": labels,
            }));
        }
    }
    events
}
