#![warn(missing_docs, unreachable_pub)]

//! opslake ingest: consumes metric, log and billing events from Kafka and writes them, exactly
//! once, into the Parquet lake; refused items go to the dead-letter topic and table.

pub mod config;
pub mod consumer;
mod cumulative;
mod dead_letters;
mod encode;
pub mod error;
pub mod kafka;
pub mod membership;
mod message;
pub mod metrics;
mod partition;
pub mod watchdog;

pub use config::{IngestConfig, TopicKind, Topics};
pub use consumer::Ingest;
pub use error::IngestError;
pub use membership::Assignment;
pub use watchdog::{IngestHealth, StalledPartition};
