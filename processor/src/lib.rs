#![warn(missing_docs, unreachable_pub)]

//! opslake processor: windowed percentiles with mergeable sketches, log rollups, anomalies and
//! regressions, costs, forecasts and savings opportunities, written as derived tables of the
//! lake by independent jobs.

pub mod alerts;
pub mod capacity;
mod columns;
pub mod config;
pub mod cost;
pub mod detect;
pub mod error;
pub mod forecast;
pub mod job;
pub mod jobs;
pub mod membership;
pub mod metrics;
mod read;
pub mod report;
pub mod rollup;
pub mod runner;
pub mod slo;
pub mod sql;

pub use config::ProcessorConfig;
pub use error::ProcessError;
pub use job::{CycleReport, Job};
pub use opslake_sketch::DDSketch;
pub use runner::Processor;
