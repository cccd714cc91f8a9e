//! Accepted events and refusals of one flush, in Arrow builders per table and hour.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use crate::layout::HOUR_MS;
use datafusion::arrow::array::{
    ArrayRef, Float64Builder, Int32Builder, Int64Builder, MapBuilder, StringBuilder,
    TimestampMillisecondBuilder,
};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use opslake_schemas::series::write_series_key;
use opslake_schemas::time::partition_of;
use opslake_schemas::{tables, BillingEvent, Event, LogEvent, MetricEvent};

/// The raw tables ingest writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RawTable {
    /// `metrics`.
    Metrics,
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
            Self::Logs => "logs",
            Self::Billing => "billing",
            Self::DeadLetters => "dead_letters",
        }
    }
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

fn ts_builder(cap: usize) -> TimestampMillisecondBuilder {
    TimestampMillisecondBuilder::with_capacity(cap).with_timezone(tables::TZ)
}

type StrMap = MapBuilder<StringBuilder, StringBuilder>;

fn map_builder() -> StrMap {
    MapBuilder::new(None, StringBuilder::new(), StringBuilder::new())
}

fn append_map(b: &mut StrMap, entries: &[(String, String)]) {
    for (k, v) in entries {
        b.keys().append_value(k);
        b.values().append_value(v);
    }
    b.append(true)
        .expect("keys and values are appended in pairs");
}

struct ProvenanceBuilders {
    topic: StringBuilder,
    partition: Int32Builder,
    offset: Int64Builder,
    index: Int32Builder,
    ingested_at: TimestampMillisecondBuilder,
}

impl ProvenanceBuilders {
    fn new() -> Self {
        Self {
            topic: StringBuilder::new(),
            partition: Int32Builder::new(),
            offset: Int64Builder::new(),
            index: Int32Builder::new(),
            ingested_at: ts_builder(0),
        }
    }

    fn append(&mut self, p: &Provenance<'_>) {
        self.topic.append_value(p.topic);
        self.partition.append_value(p.partition);
        self.offset.append_value(p.offset);
        self.index.append_value(p.index);
        self.ingested_at.append_value(p.ingested_at_ms);
    }

    fn finish(&mut self, columns: &mut Vec<ArrayRef>) {
        columns.push(Arc::new(self.topic.finish()));
        columns.push(Arc::new(self.partition.finish()));
        columns.push(Arc::new(self.offset.finish()));
        columns.push(Arc::new(self.index.finish()));
        columns.push(Arc::new(self.ingested_at.finish()));
    }
}

struct MetricsBuilder {
    timestamp: TimestampMillisecondBuilder,
    service: StringBuilder,
    name: StringBuilder,
    value: Float64Builder,
    unit: StringBuilder,
    kind: StringBuilder,
    host: StringBuilder,
    version: StringBuilder,
    labels: StrMap,
    series: StringBuilder,
    /// Scratch space of the series column's value.
    key: Vec<u8>,
}

impl MetricsBuilder {
    fn new() -> Self {
        Self {
            timestamp: ts_builder(0),
            service: StringBuilder::new(),
            name: StringBuilder::new(),
            value: Float64Builder::new(),
            unit: StringBuilder::new(),
            kind: StringBuilder::new(),
            host: StringBuilder::new(),
            version: StringBuilder::new(),
            labels: map_builder(),
            series: StringBuilder::new(),
            key: Vec::new(),
        }
    }

    fn append(&mut self, m: &MetricEvent) {
        self.timestamp.append_value(m.timestamp_ms);
        self.service.append_value(&m.service);
        self.name.append_value(&m.name);
        self.value.append_value(m.value);
        self.unit.append_option(m.unit.as_deref());
        self.kind.append_value(m.kind.as_str());
        self.host.append_option(m.host.as_deref());
        self.version.append_option(m.version.as_deref());
        append_map(&mut self.labels, &m.labels);
        write_series_key(
            &mut self.key,
            &m.service,
            &m.name,
            m.version.as_deref(),
            &m.labels,
        );
        self.series
            .append_value(std::str::from_utf8(&self.key).expect("JSON is UTF-8"));
    }

    fn finish(&mut self, columns: &mut Vec<ArrayRef>) {
        columns.push(Arc::new(self.timestamp.finish()));
        columns.push(Arc::new(self.service.finish()));
        columns.push(Arc::new(self.name.finish()));
        columns.push(Arc::new(self.value.finish()));
        columns.push(Arc::new(self.unit.finish()));
        columns.push(Arc::new(self.kind.finish()));
        columns.push(Arc::new(self.host.finish()));
        columns.push(Arc::new(self.version.finish()));
        columns.push(Arc::new(self.labels.finish()));
        columns.push(Arc::new(self.series.finish()));
    }
}

struct LogsBuilder {
    timestamp: TimestampMillisecondBuilder,
    service: StringBuilder,
    level: StringBuilder,
    message: StringBuilder,
    host: StringBuilder,
    version: StringBuilder,
    trace_id: StringBuilder,
    duration_ms: Float64Builder,
    status_code: Int32Builder,
    attributes: StrMap,
}

impl LogsBuilder {
    fn new() -> Self {
        Self {
            timestamp: ts_builder(0),
            service: StringBuilder::new(),
            level: StringBuilder::new(),
            message: StringBuilder::new(),
            host: StringBuilder::new(),
            version: StringBuilder::new(),
            trace_id: StringBuilder::new(),
            duration_ms: Float64Builder::new(),
            status_code: Int32Builder::new(),
            attributes: map_builder(),
        }
    }

    fn append(&mut self, l: &LogEvent) {
        self.timestamp.append_value(l.timestamp_ms);
        self.service.append_value(&l.service);
        self.level.append_value(l.level);
        self.message.append_value(&l.message);
        self.host.append_option(l.host.as_deref());
        self.version.append_option(l.version.as_deref());
        self.trace_id.append_option(l.trace_id.as_deref());
        self.duration_ms.append_option(l.duration_ms);
        self.status_code.append_option(l.status_code);
        append_map(&mut self.attributes, &l.attributes);
    }

    fn finish(&mut self, columns: &mut Vec<ArrayRef>) {
        columns.push(Arc::new(self.timestamp.finish()));
        columns.push(Arc::new(self.service.finish()));
        columns.push(Arc::new(self.level.finish()));
        columns.push(Arc::new(self.message.finish()));
        columns.push(Arc::new(self.host.finish()));
        columns.push(Arc::new(self.version.finish()));
        columns.push(Arc::new(self.trace_id.finish()));
        columns.push(Arc::new(self.duration_ms.finish()));
        columns.push(Arc::new(self.status_code.finish()));
        columns.push(Arc::new(self.attributes.finish()));
    }
}

struct BillingBuilder {
    start: TimestampMillisecondBuilder,
    end: TimestampMillisecondBuilder,
    provider: StringBuilder,
    service: StringBuilder,
    service_category: StringBuilder,
    resource_id: StringBuilder,
    resource_type: StringBuilder,
    region: StringBuilder,
    usage_quantity: Float64Builder,
    usage_unit: StringBuilder,
    cost: Float64Builder,
    effective_cost: Float64Builder,
    currency: StringBuilder,
    charge_category: StringBuilder,
    utilization: Float64Builder,
    tags: StrMap,
    extra: StrMap,
}

impl BillingBuilder {
    fn new() -> Self {
        Self {
            start: ts_builder(0),
            end: ts_builder(0),
            provider: StringBuilder::new(),
            service: StringBuilder::new(),
            service_category: StringBuilder::new(),
            resource_id: StringBuilder::new(),
            resource_type: StringBuilder::new(),
            region: StringBuilder::new(),
            usage_quantity: Float64Builder::new(),
            usage_unit: StringBuilder::new(),
            cost: Float64Builder::new(),
            effective_cost: Float64Builder::new(),
            currency: StringBuilder::new(),
            charge_category: StringBuilder::new(),
            utilization: Float64Builder::new(),
            tags: map_builder(),
            extra: map_builder(),
        }
    }

    fn append(&mut self, b: &BillingEvent) {
        self.start.append_value(b.charge_period_start_ms);
        self.end.append_value(b.charge_period_end_ms);
        self.provider.append_value(&b.provider);
        self.service.append_option(b.service.as_deref());
        self.service_category
            .append_option(b.service_category.as_deref());
        self.resource_id.append_option(b.resource_id.as_deref());
        self.resource_type.append_option(b.resource_type.as_deref());
        self.region.append_option(b.region.as_deref());
        self.usage_quantity.append_option(b.usage_quantity);
        self.usage_unit.append_option(b.usage_unit.as_deref());
        self.cost.append_value(b.cost);
        self.effective_cost.append_value(b.effective_cost);
        self.currency.append_value(&b.currency);
        self.charge_category
            .append_option(b.charge_category.as_deref());
        self.utilization.append_option(b.utilization);
        append_map(&mut self.tags, &b.tags);
        append_map(&mut self.extra, &b.extra);
    }

    fn finish(&mut self, columns: &mut Vec<ArrayRef>) {
        columns.push(Arc::new(self.start.finish()));
        columns.push(Arc::new(self.end.finish()));
        columns.push(Arc::new(self.provider.finish()));
        columns.push(Arc::new(self.service.finish()));
        columns.push(Arc::new(self.service_category.finish()));
        columns.push(Arc::new(self.resource_id.finish()));
        columns.push(Arc::new(self.resource_type.finish()));
        columns.push(Arc::new(self.region.finish()));
        columns.push(Arc::new(self.usage_quantity.finish()));
        columns.push(Arc::new(self.usage_unit.finish()));
        columns.push(Arc::new(self.cost.finish()));
        columns.push(Arc::new(self.effective_cost.finish()));
        columns.push(Arc::new(self.currency.finish()));
        columns.push(Arc::new(self.charge_category.finish()));
        columns.push(Arc::new(self.utilization.finish()));
        columns.push(Arc::new(self.tags.finish()));
        columns.push(Arc::new(self.extra.finish()));
    }
}

struct DeadLettersBuilder {
    received_at: TimestampMillisecondBuilder,
    topic: StringBuilder,
    partition: Int32Builder,
    offset: Int64Builder,
    key: StringBuilder,
    payload: StringBuilder,
    error: StringBuilder,
}

impl DeadLettersBuilder {
    fn new() -> Self {
        Self {
            received_at: ts_builder(0),
            topic: StringBuilder::new(),
            partition: Int32Builder::new(),
            offset: Int64Builder::new(),
            key: StringBuilder::new(),
            payload: StringBuilder::new(),
            error: StringBuilder::new(),
        }
    }

    fn append(&mut self, d: &DeadLetter) {
        self.received_at.append_value(d.received_at_ms);
        self.topic.append_value(&d.topic);
        self.partition.append_value(d.partition);
        self.offset.append_value(d.offset);
        self.key
            .append_option(d.key.as_deref().map(String::from_utf8_lossy));
        self.payload
            .append_value(String::from_utf8_lossy(&d.payload));
        self.error.append_value(&d.error);
    }

    fn finish(&mut self, columns: &mut Vec<ArrayRef>) {
        columns.push(Arc::new(self.received_at.finish()));
        columns.push(Arc::new(self.topic.finish()));
        columns.push(Arc::new(self.partition.finish()));
        columns.push(Arc::new(self.offset.finish()));
        columns.push(Arc::new(self.key.finish()));
        columns.push(Arc::new(self.payload.finish()));
        columns.push(Arc::new(self.error.finish()));
    }
}

enum Columns {
    Metrics(Box<MetricsBuilder>),
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
    pub offsets: BTreeMap<(String, i32), (i64, i64)>,
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
        match self.offsets.get_mut(&(topic.to_string(), partition)) {
            Some(range) => range.1 = offset + 1,
            None => {
                self.offsets.insert(
                    (topic.to_string(), partition),
                    (start.min(offset), offset + 1),
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
    pub offsets: BTreeMap<(String, i32), (i64, i64)>,
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
        assert_eq!(offsets[&("t".to_string(), 0)], (5, 6));
    }
}
