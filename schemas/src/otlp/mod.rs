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

/// Most bytes one request may decode into (rows, points and refusals): a resource's attributes
/// are copied into each of its points, so a request under the payload limit could otherwise
/// decode into gigabytes. Points beyond it are refused together, in one refusal.
pub const MAX_DECODED_BYTES: usize = 64 * 1024 * 1024;

/// Longest text of a refused point kept as its dead letter's payload; a longer point's dead
/// letter holds the message instead (once per message).
const MAX_ELEMENT_BYTES: usize = 64 * 1024;

/// What one request may still decode into, and where it was cut.
#[derive(Debug)]
pub(crate) struct Budget {
    left: usize,
    /// The `_index` of the first point passed over.
    cut: Option<u32>,
}

impl Default for Budget {
    fn default() -> Self {
        Self {
            left: MAX_DECODED_BYTES,
            cut: None,
        }
    }
}

impl Budget {
    /// Takes `bytes` for the point at `index`; false (and the point is cut) when they are not
    /// left.
    pub(crate) fn spend(&mut self, bytes: usize, index: u32) -> bool {
        if self.cut.is_some() || bytes > self.left {
            self.cut(index);
            return false;
        }
        self.left -= bytes;
        true
    }

    /// Whether nothing more fits.
    pub(crate) fn is_spent(&self) -> bool {
        self.cut.is_some()
    }

    /// Passes over the point at `index` and every later one.
    pub(crate) fn cut(&mut self, index: u32) {
        self.cut = Some(self.cut.map_or(index, |c| c.min(index)));
    }

    /// The one refusal of every point passed over, if any.
    pub(crate) fn finish(&self, out: &mut Decoded) {
        if let Some(first) = self.cut {
            out.refused.push(Refusal {
                index: Some(first),
                reason: format!(
                    "the message decodes into more than {MAX_DECODED_BYTES} bytes: its points \
                     from _index {first} on are refused"
                ),
                element: None,
            });
        }
    }
}

/// A point's JSON text as its dead letter's payload; `None` (the message is the payload) when
/// it does not serialize or is longer than [`MAX_ELEMENT_BYTES`].
pub(crate) fn element_text<P: serde::Serialize>(point: &P) -> Option<String> {
    serde_json::to_string(point)
        .ok()
        .filter(|t| t.len() <= MAX_ELEMENT_BYTES)
}

/// A name as a refusal quotes it: at most 64 characters of it.
pub(crate) fn quoted_name(name: &str) -> String {
    const SHOWN: usize = 64;
    match name.char_indices().nth(SHOWN) {
        None => format!("{name:?}"),
        Some((at, _)) => format!("{:?}... ({} bytes)", &name[..at], name.len()),
    }
}

/// Bytes a refusal holds.
pub(crate) fn refusal_bytes(r: &Refusal) -> usize {
    32 + r.reason.len() + r.element.as_ref().map_or(0, String::len)
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
