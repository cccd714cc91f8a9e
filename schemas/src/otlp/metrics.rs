//! OTLP metrics onto opslake's events: gauges and non-monotonic sums as `gauge` metrics,
//! monotonic sums as `counter`s, summaries as gauges per quantile plus `<name>.count` and
//! `<name>.sum`, histogram and exponential histogram points as histogram events.

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::{
    number_data_point, AggregationTemporality, ExponentialHistogramDataPoint, HistogramDataPoint,
    Metric, NumberDataPoint, SummaryDataPoint,
};
use serde::Serialize;

use super::attributes::Resource;
use super::time_ms;
use super::{element_text, quoted_name, refusal_bytes, Budget};
use crate::decode::{Decoded, Refusal, MAX_STRING_BYTES};
use crate::events::{
    Event, HistogramBuckets, HistogramEvent, MetricEvent, MetricKind, Temporality,
};

/// Reads one histogram point of a kind (explicit or exponential) into its event: `None` for a
/// point with nothing to record, `Err` with the reason it is refused.
type HistogramReader<P> =
    fn(&Resource, &Metric, &P, Temporality) -> Result<Option<HistogramEvent>, String>;

/// OpenTelemetry's `FLAG_NO_RECORDED_VALUE`: the point marks a series as gone (staleness),
/// it holds no value.
const NO_RECORDED_VALUE: u32 = 1;

/// Lowest and highest exponential histogram scales OpenTelemetry defines.
const SCALES: std::ops::RangeInclusive<i32> = -10..=20;

/// The events of one request.
pub(super) fn map(request: &ExportMetricsServiceRequest) -> Decoded {
    let mut out = Mapper {
        out: Decoded::default(),
        index: 0,
        budget: Budget::default(),
    };
    for rm in &request.resource_metrics {
        let attributes = rm
            .resource
            .as_ref()
            .map_or(&[][..], |r| r.attributes.as_slice());
        let resource = Resource::of(attributes);
        for sm in &rm.scope_metrics {
            for metric in &sm.metrics {
                match &resource {
                    Ok(r) => out.metric(r, metric),
                    Err(e) => out.refuse_all(metric, &format!("resource: {e}")),
                }
            }
        }
    }
    out.budget.finish(&mut out.out);
    out.out
}

struct Mapper {
    out: Decoded,
    /// The next point's `_index`.
    index: u32,
    /// What the request may still decode into.
    budget: Budget,
}

/// What every row of one point shares.
struct Common {
    timestamp_ms: i64,
    labels: Vec<(String, String)>,
}

impl Mapper {
    fn next_index(&mut self) -> u32 {
        let i = self.index;
        self.index = self.index.saturating_add(1);
        i
    }

    fn refuse<P: Serialize>(&mut self, index: u32, metric: &Metric, point: &P, reason: &str) {
        let refusal = Refusal {
            index: Some(index),
            reason: format!("metric {}: {reason}", quoted_name(&metric.name)),
            element: element_text(point),
        };
        if self.budget.spend(refusal_bytes(&refusal), index) {
            self.out.refused.push(refusal);
        }
    }

    /// Every point of a metric refused for one reason (a name or resource it cannot have):
    /// the first point's refusal says why, the others refer to it rather than copy it.
    fn refuse_all(&mut self, metric: &Metric, reason: &str) {
        let points = match &metric.data {
            Some(Data::Gauge(g)) => g.data_points.len(),
            Some(Data::Sum(s)) => s.data_points.len(),
            Some(Data::Histogram(h)) => h.data_points.len(),
            Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
            Some(Data::Summary(s)) => s.data_points.len(),
            None => 1,
        };
        let first = self.index;
        for n in 0..points {
            let i = self.next_index();
            if n == 0 {
                self.refuse(i, metric, &metric.name, reason);
            } else if self.budget.spend(64, i) {
                self.out.refused.push(Refusal {
                    index: Some(i),
                    reason: format!("refused for the reason of _index {first} of this message"),
                    element: Some(String::new()),
                });
            }
        }
    }

    fn metric(&mut self, resource: &Resource, metric: &Metric) {
        if metric.name.is_empty() || metric.name.len() > MAX_STRING_BYTES {
            return self.refuse_all(
                metric,
                "name: must be 1 to 1024 bytes (OpenTelemetry requires a name)",
            );
        }
        match &metric.data {
            None => {
                let i = self.next_index();
                self.refuse(
                    i,
                    metric,
                    &metric.name,
                    "no data (gauge, sum, histogram, exponential histogram or summary)",
                );
            }
            Some(Data::Gauge(g)) => {
                for p in &g.data_points {
                    if self.skip_when_spent() {
                        continue;
                    }
                    self.number(resource, metric, p, MetricKind::Gauge);
                }
            }
            Some(Data::Sum(s)) => {
                let kind = if s.is_monotonic {
                    MetricKind::Counter
                } else {
                    MetricKind::Gauge
                };
                for p in &s.data_points {
                    if self.skip_when_spent() {
                        continue;
                    }
                    self.number(resource, metric, p, kind);
                }
            }
            Some(Data::Summary(s)) => {
                for p in &s.data_points {
                    if self.skip_when_spent() {
                        continue;
                    }
                    self.summary(resource, metric, p);
                }
            }
            Some(Data::Histogram(h)) => {
                self.histograms(
                    resource,
                    metric,
                    h.aggregation_temporality,
                    &h.data_points,
                    explicit,
                );
            }
            Some(Data::ExponentialHistogram(h)) => {
                self.histograms(
                    resource,
                    metric,
                    h.aggregation_temporality,
                    &h.data_points,
                    exponential,
                );
            }
        }
    }

    /// The histogram points of a metric (explicit or exponential: `event` reads one kind).
    fn histograms<P: Serialize>(
        &mut self,
        resource: &Resource,
        metric: &Metric,
        temporality_code: i32,
        points: &[P],
        event: HistogramReader<P>,
    ) {
        let temporality = temporality(temporality_code);
        for p in points {
            if self.skip_when_spent() {
                continue;
            }
            let i = self.next_index();
            match temporality
                .clone()
                .and_then(|t| event(resource, metric, p, t))
            {
                Ok(Some(e)) => self.push_histogram(i, e),
                Ok(None) => {}
                Err(reason) => self.refuse(i, metric, p, &reason),
            }
        }
    }

    /// Once the request decoded into all its budget allows, every further point is passed
    /// over (one refusal covers them, see [`Budget::finish`]); true when this one is.
    fn skip_when_spent(&mut self) -> bool {
        if self.budget.is_spent() {
            let i = self.next_index();
            self.budget.cut(i);
            return true;
        }
        false
    }

    fn push_histogram(&mut self, index: u32, e: HistogramEvent) {
        if self.budget.spend(e.approx_bytes(), index) {
            self.out.histograms.push((index, e));
        }
    }

    fn push_metric(&mut self, index: u32, resource: &Resource, metric: &Metric, row: MetricRow) {
        let event = MetricEvent {
            timestamp_ms: row.common.timestamp_ms,
            service: resource.service.clone(),
            name: row.name.unwrap_or_else(|| metric.name.clone()),
            value: row.value,
            unit: (!metric.unit.is_empty()).then(|| metric.unit.clone()),
            kind: row.kind,
            host: resource.host.clone(),
            version: resource.version.clone(),
            labels: row.common.labels,
        };
        if !self.budget.spend(event.approx_bytes(), index) {
            return;
        }
        self.out.events.push((index, Event::Metric(event)));
    }

    fn number(
        &mut self,
        resource: &Resource,
        metric: &Metric,
        p: &NumberDataPoint,
        kind: MetricKind,
    ) {
        let i = self.next_index();
        if p.flags & NO_RECORDED_VALUE != 0 {
            return;
        }
        let row = common(resource, &p.attributes, p.time_unix_nano).and_then(|common| {
            let value = match p.value {
                Some(number_data_point::Value::AsDouble(d)) => d,
                // OpenTelemetry's integers are i64; as f64 they keep 53 bits, as the JSON
                // events' numbers do.
                Some(number_data_point::Value::AsInt(n)) => n as f64,
                None => return Err("value: missing (asDouble or asInt)".to_string()),
            };
            if !value.is_finite() {
                return Err(format!("value: must be finite, found {value}"));
            }
            Ok(MetricRow {
                common,
                name: None,
                value,
                kind,
            })
        });
        match row {
            Ok(row) => self.push_metric(i, resource, metric, row),
            Err(reason) => self.refuse(i, metric, p, &reason),
        }
    }

    fn summary(&mut self, resource: &Resource, metric: &Metric, p: &SummaryDataPoint) {
        if p.flags & NO_RECORDED_VALUE != 0 {
            let _ = self.next_index();
            return;
        }
        let common = match common(resource, &p.attributes, p.time_unix_nano) {
            Ok(c) => c,
            Err(reason) => {
                let i = self.next_index();
                return self.refuse(i, metric, p, &reason);
            }
        };
        if let Some(bad) = p
            .quantile_values
            .iter()
            .find(|q| !(0.0..=1.0).contains(&q.quantile) || !q.value.is_finite())
        {
            let i = self.next_index();
            let reason = format!(
                "quantileValues: quantile {} with value {}: the quantile must be in [0, 1] and the value finite",
                bad.quantile, bad.value
            );
            return self.refuse(i, metric, p, &reason);
        }
        if !p.sum.is_finite() {
            let i = self.next_index();
            return self.refuse(
                i,
                metric,
                p,
                &format!("sum: must be finite, found {}", p.sum),
            );
        }
        for q in &p.quantile_values {
            if self.skip_when_spent() {
                continue;
            }
            let mut labels = common.labels.clone();
            labels.push(("quantile".to_string(), q.quantile.to_string()));
            let labels = match super::attributes::sorted_unique(labels) {
                Ok(l) => l,
                Err(reason) => {
                    let i = self.next_index();
                    return self.refuse(i, metric, p, &reason);
                }
            };
            let i = self.next_index();
            let common = Common {
                timestamp_ms: common.timestamp_ms,
                labels,
            };
            self.push_metric(
                i,
                resource,
                metric,
                MetricRow {
                    common,
                    name: None,
                    value: q.value,
                    kind: MetricKind::Gauge,
                },
            );
        }
        for (suffix, value) in [("count", p.count as f64), ("sum", p.sum)] {
            if self.skip_when_spent() {
                continue;
            }
            let i = self.next_index();
            let row = MetricRow {
                common: Common {
                    timestamp_ms: common.timestamp_ms,
                    labels: common.labels.clone(),
                },
                name: Some(format!("{}.{suffix}", metric.name)),
                value,
                kind: MetricKind::Counter,
            };
            self.push_metric(i, resource, metric, row);
        }
    }
}

/// One row of the `metrics` table a point becomes.
struct MetricRow {
    common: Common,
    /// The row's metric name when it is not the metric's (a summary's `.count` and `.sum`).
    name: Option<String>,
    value: f64,
    kind: MetricKind,
}

fn common(resource: &Resource, attributes: &[KeyValue], time_ns: u64) -> Result<Common, String> {
    Ok(Common {
        timestamp_ms: time_ms(time_ns, "timeUnixNano")?,
        labels: resource.labels_with(attributes)?,
    })
}

fn temporality(t: i32) -> Result<Temporality, String> {
    match AggregationTemporality::try_from(t) {
        Ok(AggregationTemporality::Delta) => Ok(Temporality::Delta),
        Ok(AggregationTemporality::Cumulative) => Ok(Temporality::Cumulative),
        _ => Err(format!(
            "aggregationTemporality: expected 1 (delta) or 2 (cumulative), found {t}"
        )),
    }
}

/// The parts of a histogram point every kind has, checked.
struct Summary {
    count: u64,
    sum: Option<f64>,
    min: Option<f64>,
    max: Option<f64>,
}

fn checked_summary(
    count: u64,
    sum: Option<f64>,
    min: Option<f64>,
    max: Option<f64>,
) -> Result<Summary, String> {
    for (what, v) in [("sum", sum), ("min", min), ("max", max)] {
        if let Some(v) = v.filter(|v| !v.is_finite()) {
            return Err(format!("{what}: must be finite, found {v}"));
        }
    }
    if let (Some(lo), Some(hi)) = (min, max) {
        if lo > hi {
            return Err(format!("min {lo} is greater than max {hi}"));
        }
    }
    Ok(Summary {
        count,
        sum,
        min,
        max,
    })
}

fn histogram_event(
    resource: &Resource,
    metric: &Metric,
    common: Common,
    (start_time_ns, time_ns): (u64, u64),
    temporality: Temporality,
    s: Summary,
    buckets: HistogramBuckets,
) -> HistogramEvent {
    HistogramEvent {
        timestamp_ms: common.timestamp_ms,
        start_time_ns,
        time_ns,
        service: resource.service.clone(),
        name: metric.name.clone(),
        unit: (!metric.unit.is_empty()).then(|| metric.unit.clone()),
        host: resource.host.clone(),
        version: resource.version.clone(),
        labels: common.labels,
        temporality,
        count: s.count,
        sum: s.sum,
        min: s.min,
        max: s.max,
        buckets,
    }
}

fn sum_of(counts: &[u64]) -> Option<u64> {
    counts.iter().try_fold(0u64, |a, c| a.checked_add(*c))
}

fn explicit(
    resource: &Resource,
    metric: &Metric,
    p: &HistogramDataPoint,
    temporality: Temporality,
) -> Result<Option<HistogramEvent>, String> {
    if p.flags & NO_RECORDED_VALUE != 0 {
        return Ok(None);
    }
    let common = common(resource, &p.attributes, p.time_unix_nano)?;
    let s = checked_summary(p.count, p.sum, p.min, p.max)?;
    let (bounds, counts) = (&p.explicit_bounds, &p.bucket_counts);
    if !counts.is_empty() || !bounds.is_empty() {
        if counts.len() != bounds.len() + 1 {
            return Err(format!(
                "bucketCounts: {} buckets for {} explicitBounds, expected {}",
                counts.len(),
                bounds.len(),
                bounds.len() + 1
            ));
        }
        if let Some(w) = bounds
            .windows(2)
            .find(|w| w[0].partial_cmp(&w[1]) != Some(std::cmp::Ordering::Less))
        {
            return Err(format!(
                "explicitBounds: must increase strictly, found {} then {}",
                w[0], w[1]
            ));
        }
        if let Some(b) = bounds.iter().find(|b| !b.is_finite()) {
            return Err(format!("explicitBounds: must be finite, found {b}"));
        }
        let total = sum_of(counts);
        if total != Some(p.count) {
            return Err(format!(
                "bucketCounts add up to {}, count is {}",
                total.map_or_else(|| "more than 2^64".to_string(), |t| t.to_string()),
                p.count
            ));
        }
        extremes_in_buckets(bounds, counts, &s)?;
    }
    let buckets = HistogramBuckets::Explicit {
        bounds: bounds.clone(),
        counts: counts.clone(),
    };
    Ok(Some(histogram_event(
        resource,
        metric,
        common,
        (p.start_time_unix_nano, p.time_unix_nano),
        temporality,
        s,
        buckets,
    )))
}

/// The point's `min` and `max` must lie in the buckets that hold its values: `min` at most the
/// upper bound of the first bucket with a count, `max` at least the lower bound of the last.
fn extremes_in_buckets(bounds: &[f64], counts: &[u64], s: &Summary) -> Result<(), String> {
    let first = counts.iter().position(|&c| c > 0);
    let last = counts.iter().rposition(|&c| c > 0);
    if let (Some(min), Some(upper)) = (s.min, first.and_then(|i| bounds.get(i))) {
        if min > *upper {
            return Err(format!(
                "min {min} is above {upper}, the upper bound of the first bucket holding values"
            ));
        }
    }
    let lower = last
        .and_then(|i| i.checked_sub(1))
        .and_then(|i| bounds.get(i));
    if let (Some(max), Some(lower)) = (s.max, lower) {
        if max < *lower {
            return Err(format!(
                "max {max} is below {lower}, the lower bound of the last bucket holding values"
            ));
        }
    }
    Ok(())
}

fn exponential(
    resource: &Resource,
    metric: &Metric,
    p: &ExponentialHistogramDataPoint,
    temporality: Temporality,
) -> Result<Option<HistogramEvent>, String> {
    if p.flags & NO_RECORDED_VALUE != 0 {
        return Ok(None);
    }
    let common = common(resource, &p.attributes, p.time_unix_nano)?;
    let s = checked_summary(p.count, p.sum, p.min, p.max)?;
    if !SCALES.contains(&p.scale) {
        return Err(format!(
            "scale: must be in {}..={}, found {}",
            SCALES.start(),
            SCALES.end(),
            p.scale
        ));
    }
    if !(p.zero_threshold.is_finite() && p.zero_threshold >= 0.0) {
        return Err(format!(
            "zeroThreshold: must be finite and not negative, found {}",
            p.zero_threshold
        ));
    }
    let (positive_offset, positive) = p
        .positive
        .as_ref()
        .map_or((0, Vec::new()), |b| (b.offset, b.bucket_counts.clone()));
    let (negative_offset, negative) = p
        .negative
        .as_ref()
        .map_or((0, Vec::new()), |b| (b.offset, b.bucket_counts.clone()));
    for (what, offset, counts) in [
        ("positive", positive_offset, &positive),
        ("negative", negative_offset, &negative),
    ] {
        if i64::from(offset) + counts.len() as i64 > i64::from(i32::MAX) {
            return Err(format!(
                "{what}: offset {offset} with {} buckets goes past the largest index",
                counts.len()
            ));
        }
    }
    let total = sum_of(&positive)
        .zip(sum_of(&negative))
        .and_then(|(a, b)| a.checked_add(b))
        .and_then(|t| t.checked_add(p.zero_count));
    if total != Some(p.count) {
        return Err(format!(
            "zeroCount and bucketCounts add up to {}, count is {}",
            total.map_or_else(|| "more than 2^64".to_string(), |t| t.to_string()),
            p.count
        ));
    }
    let buckets = HistogramBuckets::Exponential {
        scale: p.scale,
        zero_count: p.zero_count,
        zero_threshold: p.zero_threshold,
        positive_offset,
        positive,
        negative_offset,
        negative,
    };
    Ok(Some(histogram_event(
        resource,
        metric,
        common,
        (p.start_time_unix_nano, p.time_unix_nano),
        temporality,
        s,
        buckets,
    )))
}
