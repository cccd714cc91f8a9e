//! The query metrics of every front end, labelled by protocol: one engine answers HTTP,
//! PostgreSQL and Flight SQL clients, and `/metrics` shows each one's share.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus::{register_histogram_vec, register_int_counter_vec, HistogramVec, IntCounterVec};

/// The front end a query came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `POST /api/v1/sql` and the Grafana JSON datasource.
    Http,
    /// The PostgreSQL wire protocol.
    Postgres,
    /// Arrow Flight SQL.
    FlightSql,
}

impl Protocol {
    /// The `protocol` label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Postgres => "postgres",
            Self::FlightSql => "flight_sql",
        }
    }
}

struct QueryMetrics {
    queries: IntCounterVec,
    seconds: HistogramVec,
}

static METRICS: LazyLock<QueryMetrics> = LazyLock::new(|| QueryMetrics {
    queries: register_int_counter_vec!(
        "opslake_queries_total",
        "SQL queries answered, by protocol and outcome (ok, error)",
        &["protocol", "outcome"]
    )
    .expect("metric registers"),
    seconds: register_histogram_vec!(
        "opslake_query_duration_seconds",
        "SQL query time, by protocol",
        &["protocol"],
        vec![0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]
    )
    .expect("metric registers"),
});

/// Registers the metrics, so the first scrape lists them.
pub fn register() {
    LazyLock::force(&METRICS);
}

/// Counts one query of `protocol` and its time.
pub fn observe(protocol: Protocol, ok: bool, elapsed: Duration) {
    let outcome = if ok { "ok" } else { "error" };
    METRICS
        .queries
        .with_label_values(&[protocol.label(), outcome])
        .inc();
    METRICS
        .seconds
        .with_label_values(&[protocol.label()])
        .observe(elapsed.as_secs_f64());
}
