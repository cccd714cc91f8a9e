#![warn(missing_docs, unreachable_pub)]

//! opslake query side: one DataFusion engine over the lake, answering HTTP (the API, the Grafana
//! JSON datasource, the console), the PostgreSQL wire protocol and Arrow Flight SQL, with health,
//! readiness and the pipeline's Prometheus metrics.

pub mod engine;
pub mod flight;
pub mod grafana;
pub mod http;
pub mod pg;
pub mod query_metrics;
pub mod state;

pub use engine::error::QueryError;
pub use engine::{QueryEngine, QueryLimits, Truncation};
pub use http::error::ApiError;
pub use http::routes::{ops_router, router};
pub use state::{ApiConfig, AppState, Budget, IngestReadiness, NotReady};
