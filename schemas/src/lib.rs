//! opslake's data contract: the event types of CONTRACT section 2, the rules that accept or
//! refuse them, their JSON Schemas, and the Arrow schemas of every table. No I/O, no tokio.

pub mod decode;
pub mod events;
pub mod fast;
pub mod json_schema;
pub mod series;
pub mod tables;
pub mod time;

pub use decode::{decode_message, Decoded, EventKind, Refusal};
pub use events::{BillingEvent, Event, LogEvent, MetricEvent, MetricKind};
