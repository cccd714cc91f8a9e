//! Arrow builders of the raw tables' columns, one per table, and of the provenance columns.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Float64Builder, Int32Builder, Int64Builder, MapBuilder, StringBuilder,
    TimestampMillisecondBuilder,
};
use opslake_schemas::series::write_series_key;
use opslake_schemas::{tables, BillingEvent, LogEvent, MetricEvent};

use super::{DeadLetter, Provenance};

pub(super) fn ts_builder(cap: usize) -> TimestampMillisecondBuilder {
    TimestampMillisecondBuilder::with_capacity(cap).with_timezone(tables::TZ)
}

pub(super) type StrMap = MapBuilder<StringBuilder, StringBuilder>;

pub(super) fn map_builder() -> StrMap {
    MapBuilder::new(None, StringBuilder::new(), StringBuilder::new())
}

pub(super) fn append_map(b: &mut StrMap, entries: &[(String, String)]) {
    for (k, v) in entries {
        b.keys().append_value(k);
        b.values().append_value(v);
    }
    b.append(true)
        .expect("keys and values are appended in pairs");
}

pub(super) struct ProvenanceBuilders {
    topic: StringBuilder,
    partition: Int32Builder,
    offset: Int64Builder,
    index: Int32Builder,
    ingested_at: TimestampMillisecondBuilder,
}

impl ProvenanceBuilders {
    pub(super) fn new() -> Self {
        Self {
            topic: StringBuilder::new(),
            partition: Int32Builder::new(),
            offset: Int64Builder::new(),
            index: Int32Builder::new(),
            ingested_at: ts_builder(0),
        }
    }

    pub(super) fn append(&mut self, p: &Provenance<'_>) {
        self.topic.append_value(p.topic);
        self.partition.append_value(p.partition);
        self.offset.append_value(p.offset);
        self.index.append_value(p.index);
        self.ingested_at.append_value(p.ingested_at_ms);
    }

    pub(super) fn finish(&mut self, columns: &mut Vec<ArrayRef>) {
        columns.push(Arc::new(self.topic.finish()));
        columns.push(Arc::new(self.partition.finish()));
        columns.push(Arc::new(self.offset.finish()));
        columns.push(Arc::new(self.index.finish()));
        columns.push(Arc::new(self.ingested_at.finish()));
    }
}

pub(super) struct MetricsBuilder {
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
    pub(super) fn new() -> Self {
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

    pub(super) fn append(&mut self, m: &MetricEvent) {
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

    pub(super) fn finish(&mut self, columns: &mut Vec<ArrayRef>) {
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

pub(super) struct LogsBuilder {
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
    pub(super) fn new() -> Self {
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

    pub(super) fn append(&mut self, l: &LogEvent) {
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

    pub(super) fn finish(&mut self, columns: &mut Vec<ArrayRef>) {
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

pub(super) struct BillingBuilder {
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
    pub(super) fn new() -> Self {
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

    pub(super) fn append(&mut self, b: &BillingEvent) {
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

    pub(super) fn finish(&mut self, columns: &mut Vec<ArrayRef>) {
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

pub(super) struct DeadLettersBuilder {
    received_at: TimestampMillisecondBuilder,
    topic: StringBuilder,
    partition: Int32Builder,
    offset: Int64Builder,
    key: StringBuilder,
    payload: StringBuilder,
    error: StringBuilder,
}

impl DeadLettersBuilder {
    pub(super) fn new() -> Self {
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

    pub(super) fn append(&mut self, d: &DeadLetter) {
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

    pub(super) fn finish(&mut self, columns: &mut Vec<ArrayRef>) {
        columns.push(Arc::new(self.received_at.finish()));
        columns.push(Arc::new(self.topic.finish()));
        columns.push(Arc::new(self.partition.finish()));
        columns.push(Arc::new(self.offset.finish()));
        columns.push(Arc::new(self.key.finish()));
        columns.push(Arc::new(self.payload.finish()));
        columns.push(Arc::new(self.error.finish()));
    }
}
