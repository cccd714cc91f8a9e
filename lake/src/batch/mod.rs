//! Accepted events and refusals of one flush, in Arrow builders per table and hour.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use crate::layout::HOUR_MS;
use crate::PartitionOffsets;
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use opslake_schemas::time::partition_of;
use opslake_schemas::{tables, Event, HistogramEvent};

mod builders;
mod histograms;

use builders::{
    BillingBuilder, DeadLettersBuilder, LogsBuilder, MetricsBuilder, ProvenanceBuilders,
};
use histograms::HistogramsBuilder;

/// The raw tables ingest writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RawTable {
    /// `metrics`.
    Metrics,
    /// `metric_histograms`: OpenTelemetry histogram points.
    MetricHistograms,
    /// `logs`.
    Logs,
    /// `billing`.
    Billing,
    /// `dead_letters`: refused items, by the time they were received.
    DeadLetters,
}

impl RawTable {
    /// Table name in SQL and directory name in the lake.
    pub fn name(self) -> &'static str {
        match self {
            Self::Metrics => "metrics",
            Self::MetricHistograms => "metric_histograms",
            Self::Logs => "logs",
            Self::Billing => "billing",
            Self::DeadLetters => "dead_letters",
        }
    }
}

/// A Kafka partition: its topic and number (what ingest keeps per partition, and what a batch
/// covers).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
}

impl TopicPartition {
    /// `topic`/`partition`.
    pub fn new(topic: &str, partition: i32) -> Self {
        Self {
            topic: topic.to_string(),
            partition,
        }
    }
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.topic, self.partition)
    }
}

/// Offsets by partition as the lake's log records them: `topic -> partition -> range`.
pub fn offsets_by_topic<'a>(
    offsets: impl IntoIterator<Item = (&'a TopicPartition, &'a PartitionOffsets)>,
) -> BTreeMap<String, BTreeMap<i32, PartitionOffsets>> {
    let mut out: BTreeMap<String, BTreeMap<i32, PartitionOffsets>> = BTreeMap::new();
    for (tp, range) in offsets {
        out.entry(tp.topic.clone())
            .or_default()
            .insert(tp.partition, *range);
    }
    out
}

/// Where a row came from in Kafka.
#[derive(Debug, Clone, Copy)]
pub struct Provenance<'a> {
    /// Topic of the message.
    pub topic: &'a str,
    /// Partition of the message.
    pub partition: i32,
    /// Offset of the message.
    pub offset: i64,
    /// Position of the event in the message's array (0 for a single object).
    pub index: i32,
    /// When ingest read it, epoch milliseconds.
    pub ingested_at_ms: i64,
}

/// A refused item, for the dead-letter table and topic.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// Topic of the message.
    pub topic: String,
    /// Partition of the message.
    pub partition: i32,
    /// Offset of the message.
    pub offset: i64,
    /// Position of the refused item in the message's array; -1 for the whole message.
    pub index: i32,
    /// The message's key.
    pub key: Option<Vec<u8>>,
    /// The refused item as it was sent.
    pub payload: Vec<u8>,
    /// Why it was refused.
    pub error: String,
    /// When ingest read it, epoch milliseconds.
    pub received_at_ms: i64,
}

enum Columns {
    Metrics(Box<MetricsBuilder>),
    Histograms(Box<HistogramsBuilder>),
    Logs(Box<LogsBuilder>),
    Billing(Box<BillingBuilder>),
    DeadLetters(Box<DeadLettersBuilder>),
}

/// Rows of one table and one hour.
struct Part {
    columns: Columns,
    provenance: ProvenanceBuilders,
    rows: usize,
}

impl Part {
    fn new(table: RawTable) -> Self {
        let columns = match table {
            RawTable::Metrics => Columns::Metrics(Box::new(MetricsBuilder::new())),
            RawTable::MetricHistograms => Columns::Histograms(Box::new(HistogramsBuilder::new())),
            RawTable::Logs => Columns::Logs(Box::new(LogsBuilder::new())),
            RawTable::Billing => Columns::Billing(Box::new(BillingBuilder::new())),
            RawTable::DeadLetters => Columns::DeadLetters(Box::new(DeadLettersBuilder::new())),
        };
        Self {
            columns,
            provenance: ProvenanceBuilders::new(),
            rows: 0,
        }
    }

    fn finish(mut self) -> Result<RecordBatch, ArrowError> {
        let mut columns = Vec::new();
        let schema = match &mut self.columns {
            Columns::Metrics(b) => {
                b.finish(&mut columns);
                tables::metrics()
            }
            Columns::Histograms(b) => {
                b.finish(&mut columns);
                tables::metric_histograms()
            }
            Columns::Logs(b) => {
                b.finish(&mut columns);
                tables::logs()
            }
            Columns::Billing(b) => {
                b.finish(&mut columns);
                tables::billing()
            }
            Columns::DeadLetters(b) => {
                b.finish(&mut columns);
                tables::dead_letters()
            }
        };
        self.provenance.finish(&mut columns);
        RecordBatch::try_new(schema, columns)
    }
}

/// Key of one output file: table, date and hour.
pub type PartKey = (RawTable, String, u32);

/// What one flush writes: rows per table and hour, refusals, and the offsets covered.
pub struct Batch {
    /// By table and hour since the epoch (the date and hour strings are made once, at finish).
    parts: HashMap<(RawTable, i64), Part>,
    /// Refused items, to produce to the dead-letter topic after the commit.
    pub dead_letters: Vec<DeadLetter>,
    /// (topic, partition) -> (first offset covered, next offset).
    pub offsets: BTreeMap<TopicPartition, PartitionOffsets>,
    /// Role state the commit of this batch sets (key -> value, `null` removes), e.g. the
    /// cumulative histogram state of its partitions: committed with the offsets, exactly once.
    pub state: BTreeMap<String, serde_json::Value>,
    rows: usize,
    bytes: usize,
    opened_at: Instant,
}

impl Default for Batch {
    fn default() -> Self {
        Self::new()
    }
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Self {
            parts: HashMap::new(),
            dead_letters: Vec::new(),
            offsets: BTreeMap::new(),
            state: BTreeMap::new(),
            rows: 0,
            bytes: 0,
            opened_at: Instant::now(),
        }
    }

    /// Rows buffered (accepted events and refusals).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Approximate bytes of message values buffered.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// When the first message of this batch arrived.
    pub fn opened_at(&self) -> Instant {
        self.opened_at
    }

    /// True when no message has been added.
    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    /// Records that a message of `topic`/`partition` at `offset` is covered by this batch,
    /// whose coverage of that partition starts at `start` (the lake's next offset).
    pub fn cover(&mut self, topic: &str, partition: i32, start: i64, offset: i64, bytes: usize) {
        if self.offsets.is_empty() {
            self.opened_at = Instant::now();
        }
        self.bytes += bytes;
        let key = TopicPartition::new(topic, partition);
        match self.offsets.get_mut(&key) {
            Some(range) => range.end = offset + 1,
            None => {
                self.offsets.insert(
                    key,
                    PartitionOffsets {
                        start: start.min(offset),
                        end: offset + 1,
                    },
                );
            }
        }
    }

    /// Adds an accepted event.
    pub fn push_event(&mut self, event: &Event, prov: &Provenance<'_>) {
        let (table, ms) = match event {
            Event::Metric(m) => (RawTable::Metrics, m.timestamp_ms),
            Event::Log(l) => (RawTable::Logs, l.timestamp_ms),
            Event::Billing(b) => (RawTable::Billing, b.charge_period_start_ms),
        };
        let part = self.part(table, ms);
        match (&mut part.columns, event) {
            (Columns::Metrics(b), Event::Metric(m)) => b.append(m),
            (Columns::Logs(b), Event::Log(l)) => b.append(l),
            (Columns::Billing(b), Event::Billing(e)) => b.append(e),
            _ => unreachable!("a part holds one table"),
        }
        part.provenance.append(prov);
        part.rows += 1;
        self.rows += 1;
    }

    /// Adds a histogram point (a delta) with its serialized sketch, to `metric_histograms`.
    pub fn push_histogram(&mut self, h: &HistogramEvent, sketch: &[u8], prov: &Provenance<'_>) {
        let part = self.part(RawTable::MetricHistograms, h.timestamp_ms);
        if let Columns::Histograms(b) = &mut part.columns {
            b.append(h, sketch);
        }
        part.provenance.append(prov);
        part.rows += 1;
        self.rows += 1;
    }

    /// Adds a refused item; it is written to `dead_letters` by the time it was received.
    pub fn push_dead_letter(&mut self, dead: DeadLetter) {
        let prov = Provenance {
            topic: &dead.topic,
            partition: dead.partition,
            offset: dead.offset,
            index: dead.index,
            ingested_at_ms: dead.received_at_ms,
        };
        let part = self.part(RawTable::DeadLetters, dead.received_at_ms);
        if let Columns::DeadLetters(b) = &mut part.columns {
            b.append(&dead);
        }
        part.provenance.append(&prov);
        part.rows += 1;
        self.rows += 1;
        self.dead_letters.push(dead);
    }

    fn part(&mut self, table: RawTable, ms: i64) -> &mut Part {
        self.parts
            .entry((table, ms.div_euclid(HOUR_MS)))
            .or_insert_with(|| Part::new(table))
    }

    /// Finishes the builders into one record batch per table and hour.
    ///
    /// # Errors
    /// When arrow refuses the columns (a bug: the builders follow the schemas).
    pub fn finish(self) -> Result<FinishedBatch, ArrowError> {
        let mut parts = Vec::with_capacity(self.parts.len());
        for ((table, hour), part) in self.parts {
            if part.rows > 0 {
                let (date, hour) = partition_of(hour * HOUR_MS);
                parts.push(((table, date, hour), part.finish()?));
            }
        }
        parts.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(FinishedBatch {
            parts,
            dead_letters: self.dead_letters,
            offsets: self.offsets,
            state: self.state,
        })
    }
}

/// A batch ready to write: record batches per table and hour, refusals, offsets covered.
pub struct FinishedBatch {
    /// One record batch per table and hour, in key order.
    pub parts: Vec<(PartKey, RecordBatch)>,
    /// The items refused while the batch was built.
    pub dead_letters: Vec<DeadLetter>,
    /// (topic, partition) -> (first offset covered, next offset).
    pub offsets: BTreeMap<TopicPartition, PartitionOffsets>,
    /// Role state the commit sets.
    pub state: BTreeMap<String, serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use opslake_schemas::{decode_message, EventKind};

    #[test]
    fn events_land_in_their_hour_with_provenance() {
        let mut batch = Batch::new();
        let d = decode_message(
            EventKind::Metric,
            br#"[{"timestamp": "2026-11-22T10:59:59.999Z", "service": "a", "name": "n", "value": 1, "labels": {"k": "v"}},
                 {"timestamp": "2026-11-22T11:00:00Z", "service": "a", "name": "n", "value": 2}]"#,
        );
        for (i, e) in &d.events {
            let prov = Provenance {
                topic: "t",
                partition: 0,
                offset: 5,
                index: *i as i32,
                ingested_at_ms: 0,
            };
            batch.push_event(e, &prov);
        }
        batch.cover("t", 0, 5, 5, 10);
        let FinishedBatch { parts, offsets, .. } = batch.finish().unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(
            parts[0].0,
            (RawTable::Metrics, "2026-11-22".to_string(), 10)
        );
        assert_eq!(parts[1].0 .2, 11);
        assert_eq!(parts[0].1.schema(), tables::metrics());
        assert_eq!(
            offsets[&TopicPartition::new("t", 0)],
            PartitionOffsets { start: 5, end: 6 }
        );
    }
}
