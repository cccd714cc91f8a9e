//! OTLP attributes as opslake's strings: the resource's `service.name`, `service.version` and
//! `host.name` as the event's columns, every other attribute as a label (values as text).

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};

use crate::limits::{MAX_MAP_ENTRIES, MAX_STRING_BYTES};

/// The service a resource names when it names none (OpenTelemetry's own default).
pub const UNKNOWN_SERVICE: &str = "unknown_service";

/// What a resource's attributes say about the events under it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resource {
    /// `service.name` (absent: `unknown_service`).
    pub service: String,
    /// `service.version`.
    pub version: Option<String>,
    /// `host.name`.
    pub host: Option<String>,
    /// Every other attribute, sorted by key.
    pub labels: Vec<(String, String)>,
}

impl Resource {
    /// The resource of `attributes`.
    ///
    /// # Errors
    /// When a mapped value is longer than the limit of identifiers.
    pub fn of(attributes: &[KeyValue]) -> Result<Self, String> {
        let mut r = Self {
            service: UNKNOWN_SERVICE.to_string(),
            ..Self::default()
        };
        let mut labels = Vec::new();
        for kv in attributes {
            let value = text(kv.value.as_ref());
            match kv.key.as_str() {
                "service.name" => r.service = value,
                "service.version" => r.version = Some(value),
                "host.name" => r.host = Some(value),
                _ => labels.push((kv.key.clone(), value)),
            }
        }
        for (what, v) in [
            ("service.name", Some(&r.service)),
            ("service.version", r.version.as_ref()),
            ("host.name", r.host.as_ref()),
        ] {
            if let Some(v) = v {
                check_len(what, v)?;
            }
        }
        if r.service.is_empty() {
            r.service = UNKNOWN_SERVICE.to_string();
        }
        // Checked (and sorted) once here rather than with each point's attributes: a resource
        // over the limits would otherwise be copied and sorted once per point.
        r.labels = sorted_unique(labels).map_err(|e| format!("resource {e}"))?;
        Ok(r)
    }

    /// The resource's labels with `attributes` over them (a point's attribute wins over a
    /// resource's of the same key), sorted by key.
    ///
    /// # Errors
    /// When there are more than the limit of entries, or a key or value is too long.
    pub fn labels_with(&self, attributes: &[KeyValue]) -> Result<Vec<(String, String)>, String> {
        let mut all: Vec<(String, String)> = self.labels.clone();
        all.extend(
            attributes
                .iter()
                .map(|kv| (kv.key.clone(), text(kv.value.as_ref()))),
        );
        sorted_unique(all)
    }
}

/// Sorts `pairs` by key, the last of equal keys winning, and checks the limits.
pub(crate) fn sorted_unique(
    mut pairs: Vec<(String, String)>,
) -> Result<Vec<(String, String)>, String> {
    // Stable: among equal keys the later one stays last, and is kept.
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out: Vec<(String, String)> = Vec::with_capacity(pairs.len());
    for (k, v) in pairs {
        match out.last_mut() {
            Some(last) if last.0 == k => last.1 = v,
            _ => out.push((k, v)),
        }
    }
    if out.len() > MAX_MAP_ENTRIES {
        return Err(format!(
            "attributes: {} entries, more than the limit of {MAX_MAP_ENTRIES}",
            out.len()
        ));
    }
    for (k, v) in &out {
        check_len("attribute key", k)?;
        check_len(k, v)?;
    }
    Ok(out)
}

fn check_len(what: &str, v: &str) -> Result<(), String> {
    if v.len() > MAX_STRING_BYTES {
        return Err(format!(
            "{what}: {} bytes, longer than the limit of {MAX_STRING_BYTES}",
            v.len()
        ));
    }
    Ok(())
}

/// An attribute value as text: strings as they are, numbers and booleans as their literals,
/// bytes as hex, arrays and maps as JSON.
pub(crate) fn text(v: Option<&AnyValue>) -> String {
    match v.and_then(|v| v.value.as_ref()) {
        None => String::new(),
        Some(Value::StringValue(s)) => s.clone(),
        Some(other) => json(other).to_string().trim_matches('"').to_string(),
    }
}

/// An attribute value as a JSON value (a structured log body, an array attribute).
pub(crate) fn json(v: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::StringValue(s) => J::String(s.clone()),
        Value::BoolValue(b) => J::Bool(*b),
        Value::IntValue(i) => J::from(*i),
        Value::DoubleValue(d) => {
            serde_json::Number::from_f64(*d).map_or_else(|| J::String(d.to_string()), J::Number)
        }
        Value::BytesValue(b) => J::String(hex(b)),
        Value::ArrayValue(a) => J::Array(
            a.values
                .iter()
                .map(|v| v.value.as_ref().map_or(J::Null, json))
                .collect(),
        ),
        Value::KvlistValue(kv) => J::Object(
            kv.values
                .iter()
                .map(|kv| {
                    let v = kv.value.as_ref().and_then(|v| v.value.as_ref());
                    (kv.key.clone(), v.map_or(J::Null, json))
                })
                .collect(),
        ),
        // Entity references and future kinds: what is known of them.
        #[allow(unreachable_patterns)]
        _ => J::Null,
    }
}

/// Bytes as lower-case hex (trace and span ids).
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}
