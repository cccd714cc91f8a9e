//! The builder of `metric_histograms` rows: a histogram point (already a delta) with its sketch.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BinaryBuilder, Float64Builder, Int64Builder, StringBuilder,
    TimestampMillisecondBuilder,
};
use opslake_schemas::series::write_series_key;
use opslake_schemas::{HistogramBuckets, HistogramEvent};

use super::builders::{append_map, map_builder, ts_builder, StrMap};

pub(super) struct HistogramsBuilder {
    timestamp: TimestampMillisecondBuilder,
    start_time: TimestampMillisecondBuilder,
    service: StringBuilder,
    name: StringBuilder,
    unit: StringBuilder,
    host: StringBuilder,
    version: StringBuilder,
    labels: StrMap,
    count: Int64Builder,
    sum: Float64Builder,
    min: Float64Builder,
    max: Float64Builder,
    buckets: StringBuilder,
    sketch: BinaryBuilder,
    series: StringBuilder,
    /// Scratch space of the series column's value.
    key: Vec<u8>,
}

impl HistogramsBuilder {
    pub(super) fn new() -> Self {
        Self {
            timestamp: ts_builder(0),
            start_time: ts_builder(0),
            service: StringBuilder::new(),
            name: StringBuilder::new(),
            unit: StringBuilder::new(),
            host: StringBuilder::new(),
            version: StringBuilder::new(),
            labels: map_builder(),
            count: Int64Builder::new(),
            sum: Float64Builder::new(),
            min: Float64Builder::new(),
            max: Float64Builder::new(),
            buckets: StringBuilder::new(),
            sketch: BinaryBuilder::new(),
            series: StringBuilder::new(),
            key: Vec::new(),
        }
    }

    pub(super) fn append(&mut self, h: &HistogramEvent, sketch: &[u8]) {
        self.timestamp.append_value(h.timestamp_ms);
        self.start_time.append_option(
            (h.start_time_ns > 0)
                .then(|| i64::try_from(h.start_time_ns / 1_000_000).unwrap_or(i64::MAX)),
        );
        self.service.append_value(&h.service);
        self.name.append_value(&h.name);
        self.unit.append_option(h.unit.as_deref());
        self.host.append_option(h.host.as_deref());
        self.version.append_option(h.version.as_deref());
        append_map(&mut self.labels, &h.labels);
        self.count
            .append_value(i64::try_from(h.count).unwrap_or(i64::MAX));
        self.sum.append_option(h.sum);
        self.min.append_option(h.min);
        self.max.append_option(h.max);
        self.buckets.append_value(match h.buckets {
            HistogramBuckets::Explicit { .. } => "explicit",
            HistogramBuckets::Exponential { .. } => "exponential",
        });
        self.sketch.append_value(sketch);
        write_series_key(
            &mut self.key,
            &h.service,
            &h.name,
            h.version.as_deref(),
            &h.labels,
        );
        self.series
            .append_value(std::str::from_utf8(&self.key).expect("JSON is UTF-8"));
    }

    pub(super) fn finish(&mut self, columns: &mut Vec<ArrayRef>) {
        columns.push(Arc::new(self.timestamp.finish()));
        columns.push(Arc::new(self.start_time.finish()));
        columns.push(Arc::new(self.service.finish()));
        columns.push(Arc::new(self.name.finish()));
        columns.push(Arc::new(self.unit.finish()));
        columns.push(Arc::new(self.host.finish()));
        columns.push(Arc::new(self.version.finish()));
        columns.push(Arc::new(self.labels.finish()));
        columns.push(Arc::new(self.count.finish()));
        columns.push(Arc::new(self.sum.finish()));
        columns.push(Arc::new(self.min.finish()));
        columns.push(Arc::new(self.max.finish()));
        columns.push(Arc::new(self.buckets.finish()));
        columns.push(Arc::new(self.sketch.finish()));
        columns.push(Arc::new(self.series.finish()));
    }
}
