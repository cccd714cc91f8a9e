//! Typed events, as accepted by [`crate::decode`].

/// What a metric value means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// One observation, e.g. a request's latency (the default).
    Sample,
    /// A level, e.g. CPU %.
    Gauge,
    /// A cumulative count.
    Counter,
}

impl MetricKind {
    /// The name used in JSON and in the `metrics.kind` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sample => "sample",
            Self::Gauge => "gauge",
            Self::Counter => "counter",
        }
    }
}

/// A metric event (topic `telemetry.metrics`).
#[derive(Debug, Clone, PartialEq)]
pub struct MetricEvent {
    /// Event time, epoch milliseconds UTC.
    pub timestamp_ms: i64,
    /// The service that measured it.
    pub service: String,
    /// Metric name, e.g. `http.server.duration`.
    pub name: String,
    /// The value (finite).
    pub value: f64,
    /// Unit, e.g. `ms`.
    pub unit: Option<String>,
    /// What the value means.
    pub kind: MetricKind,
    /// The host it came from.
    pub host: Option<String>,
    /// The service's version (a deploy), for regressions.
    pub version: Option<String>,
    /// Sorted by key, keys unique.
    pub labels: Vec<(String, String)>,
}

/// A log event (topic `telemetry.logs`).
#[derive(Debug, Clone, PartialEq)]
pub struct LogEvent {
    /// Event time, epoch milliseconds UTC.
    pub timestamp_ms: i64,
    /// The service that logged it.
    pub service: String,
    /// One of trace, debug, info, warn, error, fatal (normalised to lower case).
    pub level: &'static str,
    /// The log line.
    pub message: String,
    /// The host it came from.
    pub host: Option<String>,
    /// The service's version.
    pub version: Option<String>,
    /// Trace it belongs to.
    pub trace_id: Option<String>,
    /// Duration of the operation it reports, milliseconds.
    pub duration_ms: Option<f64>,
    /// Status code of the operation (HTTP or gRPC).
    pub status_code: Option<i32>,
    /// Sorted by key, keys unique; non-string values are kept as their JSON text.
    pub attributes: Vec<(String, String)>,
}

/// A billing (cost and usage) event (topic `telemetry.billing`), FOCUS-compatible.
#[derive(Debug, Clone, PartialEq)]
pub struct BillingEvent {
    /// Start of the charge period, epoch milliseconds UTC (FOCUS `ChargePeriodStart`).
    pub charge_period_start_ms: i64,
    /// End of the charge period, epoch milliseconds UTC (FOCUS `ChargePeriodEnd`).
    pub charge_period_end_ms: i64,
    /// Cloud provider (FOCUS `ProviderName`).
    pub provider: String,
    /// Billed service (FOCUS `ServiceName`).
    pub service: Option<String>,
    /// FOCUS `ServiceCategory`.
    pub service_category: Option<String>,
    /// Billed resource (FOCUS `ResourceId`).
    pub resource_id: Option<String>,
    /// FOCUS `ResourceType`.
    pub resource_type: Option<String>,
    /// FOCUS `RegionId`.
    pub region: Option<String>,
    /// Consumed quantity (FOCUS `ConsumedQuantity`).
    pub usage_quantity: Option<f64>,
    /// Unit of the quantity (FOCUS `ConsumedUnit`).
    pub usage_unit: Option<String>,
    /// Billed cost (FOCUS `BilledCost`).
    pub cost: f64,
    /// Cost after discounts and commitments (FOCUS `EffectiveCost`).
    pub effective_cost: f64,
    /// Currency of the costs (FOCUS `BillingCurrency`).
    pub currency: String,
    /// FOCUS `ChargeCategory` (Usage, Purchase, Tax, …).
    pub charge_category: Option<String>,
    /// Utilization of the resource over the period, 0 to 1.
    pub utilization: Option<f64>,
    /// Tags of the resource, sorted by key.
    pub tags: Vec<(String, String)>,
    /// Other fields (FOCUS columns such as BillingAccountId, SkuId), as text.
    pub extra: Vec<(String, String)>,
}

/// Whether a histogram point counts the values since the previous point of its series (delta)
/// or since a fixed start time (cumulative), as OpenTelemetry's `AggregationTemporality`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Temporality {
    /// Counts since the previous point.
    Delta,
    /// Counts since `start_time_ns`.
    Cumulative,
}

/// The buckets of a histogram point.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HistogramBuckets {
    /// OpenTelemetry's explicit-bucket histogram: `counts[i]` values in
    /// `(bounds[i-1], bounds[i]]`, the first bucket open below, the last open above;
    /// `counts.len() == bounds.len() + 1` (both empty: only count and sum are known).
    Explicit {
        /// Upper bounds, strictly increasing.
        bounds: Vec<f64>,
        /// Values per bucket.
        counts: Vec<u64>,
    },
    /// OpenTelemetry's exponential histogram: bucket `offset + i` holds the values in
    /// `(base^(offset+i), base^(offset+i+1)]` with `base = 2^(2^-scale)`; `zero_count` values
    /// are within `zero_threshold` of zero.
    Exponential {
        /// The resolution: `base = 2^(2^-scale)`.
        scale: i32,
        /// Values counted as zero.
        zero_count: u64,
        /// Magnitudes at most this are counted as zero.
        zero_threshold: f64,
        /// Index of the first positive bucket.
        positive_offset: i32,
        /// Counts of positive buckets from `positive_offset` on.
        positive: Vec<u64>,
        /// Index of the first negative bucket (of magnitudes).
        negative_offset: i32,
        /// Counts of negative buckets from `negative_offset` on.
        negative: Vec<u64>,
    },
}

/// A histogram point (OpenTelemetry's `Histogram` and `ExponentialHistogram` data points), the
/// input of the `metric_histograms` table.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramEvent {
    /// The point's time, epoch milliseconds UTC.
    pub timestamp_ms: i64,
    /// The point's start time, epoch nanoseconds (0: unknown).
    pub start_time_ns: u64,
    /// The point's time, epoch nanoseconds.
    pub time_ns: u64,
    /// The service that measured it.
    pub service: String,
    /// Metric name.
    pub name: String,
    /// Unit, e.g. `ms`.
    pub unit: Option<String>,
    /// The host it came from.
    pub host: Option<String>,
    /// The service's version.
    pub version: Option<String>,
    /// Sorted by key, keys unique.
    pub labels: Vec<(String, String)>,
    /// Delta or cumulative.
    pub temporality: Temporality,
    /// Values counted.
    pub count: u64,
    /// Their sum, when known.
    pub sum: Option<f64>,
    /// Their minimum, when known.
    pub min: Option<f64>,
    /// Their maximum, when known.
    pub max: Option<f64>,
    /// How they are distributed.
    pub buckets: HistogramBuckets,
}

/// Any accepted event.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A metric sample.
    Metric(MetricEvent),
    /// A log line.
    Log(LogEvent),
    /// A billing line.
    Billing(BillingEvent),
}

impl Event {
    /// The event time that decides its lake partition (date and hour).
    pub fn event_time_ms(&self) -> i64 {
        match self {
            Self::Metric(m) => m.timestamp_ms,
            Self::Log(l) => l.timestamp_ms,
            Self::Billing(b) => b.charge_period_start_ms,
        }
    }
}

/// Bytes of a label or attribute list's text.
fn pairs_bytes(pairs: &[(String, String)]) -> usize {
    pairs.iter().map(|(k, v)| k.len() + v.len() + 16).sum()
}

fn opt_len(s: Option<&String>) -> usize {
    s.map_or(0, String::len)
}

impl MetricEvent {
    /// Approximate bytes the event holds once decoded (its text and numbers), for the limits
    /// of what one message and one batch may decode into.
    pub fn approx_bytes(&self) -> usize {
        64 + self.service.len()
            + self.name.len()
            + opt_len(self.unit.as_ref())
            + opt_len(self.host.as_ref())
            + opt_len(self.version.as_ref())
            + pairs_bytes(&self.labels)
    }
}

impl HistogramEvent {
    /// Approximate bytes the point holds once decoded, buckets included.
    pub fn approx_bytes(&self) -> usize {
        let buckets = match &self.buckets {
            HistogramBuckets::Explicit { bounds, counts } => 8 * (bounds.len() + counts.len()),
            HistogramBuckets::Exponential {
                positive, negative, ..
            } => 8 * (positive.len() + negative.len()),
        };
        96 + self.service.len()
            + self.name.len()
            + opt_len(self.unit.as_ref())
            + opt_len(self.host.as_ref())
            + opt_len(self.version.as_ref())
            + pairs_bytes(&self.labels)
            + buckets
    }
}

impl Event {
    /// Approximate bytes the event holds once decoded (see [`MetricEvent::approx_bytes`]).
    pub fn approx_bytes(&self) -> usize {
        match self {
            Self::Metric(m) => m.approx_bytes(),
            Self::Log(l) => {
                64 + l.service.len()
                    + l.message.len()
                    + opt_len(l.host.as_ref())
                    + opt_len(l.version.as_ref())
                    + opt_len(l.trace_id.as_ref())
                    + pairs_bytes(&l.attributes)
            }
            // Billing rows are a few hundred bytes of fixed fields plus their tags.
            Self::Billing(b) => 512 + pairs_bytes(&b.tags) + pairs_bytes(&b.extra),
        }
    }
}

impl HistogramEvent {
    /// The sketch (opslake's accuracy) of the point's values: see
    /// [`opslake_sketch::ExponentialBuckets`] and [`opslake_sketch::DDSketch::from_explicit`].
    pub fn sketch(&self) -> opslake_sketch::DDSketch {
        use opslake_sketch::{DDSketch, ExponentialBuckets, PointSummary, DEFAULT_ALPHA};
        let summary = PointSummary {
            sum: self.sum,
            min: self.min,
            max: self.max,
        };
        match &self.buckets {
            HistogramBuckets::Explicit { bounds, counts } => {
                DDSketch::from_explicit(DEFAULT_ALPHA, bounds, counts, self.count, summary)
            }
            HistogramBuckets::Exponential {
                scale,
                zero_count,
                positive_offset,
                positive,
                negative_offset,
                negative,
                ..
            } => DDSketch::from_exponential(
                DEFAULT_ALPHA,
                &ExponentialBuckets {
                    scale: *scale,
                    zero_count: *zero_count,
                    positive_offset: *positive_offset,
                    positive,
                    negative_offset: *negative_offset,
                    negative,
                },
                summary,
            ),
        }
    }
}
