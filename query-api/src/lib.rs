#![warn(missing_docs, unreachable_pub)]

//! opslake query API: DataFusion SQL over the lake behind axum, with health, readiness and the
//! pipeline's Prometheus metrics.

pub mod alerts;
pub mod cache;
pub mod console;
pub mod encode;
pub mod engine;
pub mod error;
pub mod grafana;
pub mod guard;
pub mod log_summaries;
pub mod pipeline;
pub mod prune;
pub mod reports;
pub mod result;
pub mod routes;
pub mod state;
pub mod store;

pub use engine::{QueryEngine, QueryLimits};
pub use error::ApiError;
pub use routes::{ops_router, router, ApiConfig, AppState, Budget, IngestReadiness, NotReady};
