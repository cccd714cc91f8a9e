//! opslake processor: windowed percentiles with mergeable sketches, log rollups, anomalies and
//! regressions, written as derived tables of the lake.

mod columns;
pub mod config;
pub mod cost;
pub mod detect;
pub mod error;
pub mod forecast;
pub mod membership;
pub mod metrics;
mod read;
pub mod report;
pub mod rollup;
pub mod runner;
pub mod stream;

pub use config::ProcessorConfig;
pub use error::ProcessError;
pub use opslake_sketch::DDSketch;
pub use runner::Processor;
pub use stream::{CycleReport, Stream};
