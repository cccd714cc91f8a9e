//! OpenTelemetry's OTLP as the Collector's Kafka exporter writes it (CONTRACT section 9): one
//! `ExportMetricsServiceRequest` or `ExportLogsServiceRequest` per message, in protobuf
//! (`otlp_proto`) or in OTLP's JSON mapping (`otlp_json`: camelCase, 64-bit integers as
//! strings, hex trace and span ids, enums as numbers), both accepted on one topic.
//!
//! The messages are `opentelemetry-proto`'s (prost for protobuf, its serde support for JSON);
//! what this module adds is the mapping onto opslake's events. A message that is not a request
//! is one refusal; a point or log record that cannot be mapped is one refusal, naming the
//! metric and the problem, and the rest of the request is accepted. `_index` counts the points
//! and log records of a request in order (a summary point counts once per row it becomes).

mod attributes;
mod logs;
mod metrics;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;

use crate::decode::{Decoded, Refusal, MAX_PAYLOAD_BYTES};

pub use attributes::{Resource, UNKNOWN_SERVICE};
/// The OTLP message types (`opentelemetry-proto`'s), for producers and tests.
pub use opentelemetry_proto::tonic as proto;

/// How an OTLP message is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpEncoding {
    /// Protobuf (`otlp_proto`, the exporter's default).
    Proto,
    /// OTLP's JSON mapping (`otlp_json`).
    Json,
}

impl OtlpEncoding {
    /// The encoding of `payload`: JSON when it starts with `{` (a byte no OTLP request's
    /// protobuf starts with: field 15, a group), else protobuf.
    pub fn of(payload: &[u8]) -> Self {
        match payload.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{') => Self::Json,
            _ => Self::Proto,
        }
    }

    /// The exporter's name of the encoding.
    pub fn name(self) -> &'static str {
        match self {
            Self::Proto => "otlp_proto",
            Self::Json => "otlp_json",
        }
    }
}

fn refuse_message(reason: String) -> Decoded {
    Decoded {
        refused: vec![Refusal {
            index: None,
            reason,
            element: None,
        }],
        ..Decoded::default()
    }
}

/// Parses one message as the request type `T`, in the encoding it is in.
fn parse<T>(payload: &[u8], what: &str) -> Result<T, String>
where
    T: prost::Message + Default + serde::de::DeserializeOwned,
{
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(format!(
            "message of {} bytes is larger than the limit of {MAX_PAYLOAD_BYTES} bytes",
            payload.len()
        ));
    }
    let encoding = OtlpEncoding::of(payload);
    match encoding {
        OtlpEncoding::Proto => T::decode(payload)
            .map_err(|e| format!("message is not an OTLP {what} ({}): {e}", encoding.name())),
        OtlpEncoding::Json => serde_json::from_slice(payload)
            .map_err(|e| format!("message is not an OTLP {what} ({}): {e}", encoding.name())),
    }
}

/// Decodes one message of an OTLP metrics topic: gauges, sums and summaries into metric
/// events, histogram points (delta or cumulative, as sent) into histogram events.
pub fn decode_metrics(payload: &[u8]) -> Decoded {
    match parse::<ExportMetricsServiceRequest>(payload, "ExportMetricsServiceRequest") {
        Ok(request) => metrics::map(&request),
        Err(reason) => refuse_message(reason),
    }
}

/// Decodes one message of an OTLP logs topic into log events.
pub fn decode_logs(payload: &[u8]) -> Decoded {
    match parse::<ExportLogsServiceRequest>(payload, "ExportLogsServiceRequest") {
        Ok(request) => logs::map(&request),
        Err(reason) => refuse_message(reason),
    }
}

/// Epoch nanoseconds as epoch milliseconds in the accepted range; `what` names the field.
fn time_ms(ns: u64, what: &str) -> Result<i64, String> {
    if ns == 0 {
        return Err(format!("{what}: missing (0)"));
    }
    let ms = i64::try_from(ns / 1_000_000).unwrap_or(i64::MAX);
    crate::time::check_range(ms).map_err(|e| format!("{what}: {e}"))
}

#[cfg(test)]
mod tests;
