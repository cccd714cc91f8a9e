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
    pub service: String,
    pub name: String,
    pub value: f64,
    pub unit: Option<String>,
    pub kind: MetricKind,
    pub host: Option<String>,
    pub version: Option<String>,
    /// Sorted by key, keys unique.
    pub labels: Vec<(String, String)>,
}

/// A log event (topic `telemetry.logs`).
#[derive(Debug, Clone, PartialEq)]
pub struct LogEvent {
    pub timestamp_ms: i64,
    pub service: String,
    /// One of trace, debug, info, warn, error, fatal (normalised to lower case).
    pub level: &'static str,
    pub message: String,
    pub host: Option<String>,
    pub version: Option<String>,
    pub trace_id: Option<String>,
    pub duration_ms: Option<f64>,
    pub status_code: Option<i32>,
    /// Sorted by key, keys unique; non-string values are kept as their JSON text.
    pub attributes: Vec<(String, String)>,
}

/// A billing (cost and usage) event (topic `telemetry.billing`), FOCUS-compatible.
#[derive(Debug, Clone, PartialEq)]
pub struct BillingEvent {
    pub charge_period_start_ms: i64,
    pub charge_period_end_ms: i64,
    pub provider: String,
    pub service: Option<String>,
    pub service_category: Option<String>,
    pub resource_id: Option<String>,
    pub resource_type: Option<String>,
    pub region: Option<String>,
    pub usage_quantity: Option<f64>,
    pub usage_unit: Option<String>,
    pub cost: f64,
    pub effective_cost: f64,
    pub currency: String,
    pub charge_category: Option<String>,
    pub utilization: Option<f64>,
    pub tags: Vec<(String, String)>,
    /// Other fields (FOCUS columns such as BillingAccountId, SkuId), as text.
    pub extra: Vec<(String, String)>,
}

/// Any accepted event.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Metric(MetricEvent),
    Log(LogEvent),
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
