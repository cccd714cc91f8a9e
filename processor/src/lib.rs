//! opslake processor: windowed percentiles with mergeable sketches, log rollups, anomalies and
//! regressions, written as derived tables of the lake.

pub mod cost;
pub mod detect;
pub mod forecast;
pub mod membership;
pub mod metrics;
pub mod report;
pub mod rollup;
pub mod runner;

pub use runner::{CycleReport, ProcessError, Processor, ProcessorConfig, Stream};
pub use opslake_sketch::DDSketch;
