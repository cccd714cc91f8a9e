#![warn(missing_docs, unreachable_pub)]

//! opslake's data contract: the event types of CONTRACT section 2, the rules that accept or
//! refuse them, their JSON Schemas, the Arrow schemas of every table, and the secret setting
//! types every crate's configuration uses. No I/O, no tokio.

pub mod config_error;
pub mod decode;
pub mod events;
pub mod fast;
pub mod json_schema;
pub mod limits;
pub mod otlp;
pub mod secret;
pub mod series;
pub mod tables;
pub mod time;

pub use config_error::ConfigError;
pub use decode::{decode_message, Decoded, EventKind, Refusal};
pub use events::{
    BillingEvent, Event, HistogramBuckets, HistogramEvent, LogEvent, MetricEvent, MetricKind,
    Temporality,
};
pub use secret::{KafkaProperties, Secret};
