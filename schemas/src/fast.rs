//! The fast path of metric decoding: one typed pass over the message, borrowing its strings.
//!
//! [`crate::decode`] first parses a message into a `serde_json::Value` (a map of owned keys per
//! object) and then applies the contract's rules, which is what a refusal needs to name the
//! field and the problem. Most messages are well-formed single metric events, and for those
//! this module reads the fields straight into a [`MetricEvent`]. It only ever *accepts*: on
//! anything it does not recognise as plainly valid (a missing or null field, a wrong type, a
//! duplicate key, a limit reached, a number outside `i64`, an array message) it answers `None`
//! and the message takes the `Value` path, which decides and words the refusal. So the two
//! paths cannot disagree on a refusal, and a test and the fuzz target check that they agree on
//! every acceptance.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;

use crate::events::{MetricEvent, MetricKind};
use crate::limits::{MAX_MAP_ENTRIES, MAX_PAYLOAD_BYTES, MAX_STRING_BYTES};
use crate::time::{check_range, parse_timestamp_str};

/// A timestamp as it arrives: epoch milliseconds or a string.
enum RawTs<'a> {
    Millis(i64),
    Text(Cow<'a, str>),
    /// Anything else (a float, a `u64` beyond `i64`): left to the `Value` path.
    Other,
}

impl<'de: 'a, 'a> Deserialize<'de> for RawTs<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = RawTs<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a timestamp")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(RawTs::Millis(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(i64::try_from(v).map_or(RawTs::Other, RawTs::Millis))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(RawTs::Other)
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(RawTs::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(RawTs::Text(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// Labels as they arrive, in message order; `None` entries mark a value that is not a string.
struct RawLabels<'a>(Vec<(Cow<'a, str>, Option<Cow<'a, str>>)>);

impl<'de: 'a, 'a> Deserialize<'de> for RawLabels<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = RawLabels<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(4));
                while let Some(k) = map.next_key::<MaybeStr<'de>>()? {
                    let v = map.next_value::<MaybeStr<'de>>()?;
                    // JSON object keys are always strings.
                    out.push((k.0.unwrap_or_default(), v.0));
                }
                Ok(RawLabels(out))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// A string, or `None` for any other JSON value (skipped without allocating).
struct MaybeStr<'a>(Option<Cow<'a, str>>);

impl<'de: 'a, 'a> Deserialize<'de> for MaybeStr<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = MaybeStr<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(MaybeStr(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(MaybeStr(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(MaybeStr(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(MaybeStr(None))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// The fields of a metric event. A duplicate or unknown field fails the typed pass, and the
/// message takes the `Value` path: serde_json skips an ignored value without the checks that
/// parsing it does (UTF-8, nesting depth), so the typed pass never skips one.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetric<'a> {
    #[serde(borrow, default)]
    timestamp: Option<RawTs<'a>>,
    #[serde(borrow, default)]
    service: Option<MaybeStr<'a>>,
    #[serde(borrow, default)]
    name: Option<MaybeStr<'a>>,
    #[serde(default)]
    value: Option<f64>,
    #[serde(borrow, default)]
    unit: Option<MaybeStr<'a>>,
    #[serde(borrow, default)]
    kind: Option<MaybeStr<'a>>,
    #[serde(borrow, default)]
    host: Option<MaybeStr<'a>>,
    #[serde(borrow, default)]
    version: Option<MaybeStr<'a>>,
    #[serde(borrow, default)]
    labels: Option<RawLabels<'a>>,
}

/// A required string within the limit and not blank.
fn required(s: Option<MaybeStr<'_>>) -> Option<String> {
    let s = s?.0?;
    (s.len() <= MAX_STRING_BYTES && !s.trim().is_empty()).then(|| s.into_owned())
}

/// An optional string within the limit: `Some(None)` when absent, `None` when not plainly valid
/// (a JSON null and a wrong type both go to the `Value` path, which knows which it is).
fn optional(s: Option<MaybeStr<'_>>) -> Option<Option<String>> {
    match s {
        None => Some(None),
        Some(MaybeStr(Some(s))) if s.len() <= MAX_STRING_BYTES => Some(Some(s.into_owned())),
        Some(_) => None,
    }
}

/// Decodes a message holding one well-formed metric event; `None` sends the message to the
/// `Value` path (see the module documentation).
pub fn metric(payload: &[u8]) -> Option<MetricEvent> {
    if payload.len() > MAX_PAYLOAD_BYTES {
        return None;
    }
    let first = payload.iter().find(|b| !b.is_ascii_whitespace())?;
    if *first != b'{' {
        return None;
    }
    // The `Value` path refuses invalid UTF-8 anywhere in the message.
    let text = std::str::from_utf8(payload).ok()?;
    let raw: RawMetric<'_> = serde_json::from_str(text).ok()?;
    let timestamp_ms = match raw.timestamp? {
        RawTs::Millis(ms) => check_range(ms).ok()?,
        RawTs::Text(s) => parse_timestamp_str(&s, false).ok()?,
        RawTs::Other => return None,
    };
    let value = raw.value.filter(|v| v.is_finite())?;
    let kind = match optional(raw.kind)? {
        None => MetricKind::Sample,
        Some(k) => match k.to_ascii_lowercase().as_str() {
            "sample" => MetricKind::Sample,
            "gauge" => MetricKind::Gauge,
            "counter" => MetricKind::Counter,
            _ => return None,
        },
    };
    let mut labels = Vec::new();
    if let Some(RawLabels(entries)) = raw.labels {
        if entries.len() > MAX_MAP_ENTRIES {
            return None;
        }
        labels.reserve(entries.len());
        for (k, v) in entries {
            let v = v?;
            if k.is_empty() || k.len() > 256 || v.len() > MAX_STRING_BYTES {
                return None;
            }
            labels.push((k.into_owned(), v.into_owned()));
        }
        labels.sort();
        if labels.windows(2).any(|w| w[0].0 == w[1].0) {
            return None; // a duplicate key: the `Value` path keeps the last one
        }
    }
    Some(MetricEvent {
        timestamp_ms,
        service: required(raw.service)?,
        name: required(raw.name)?,
        value,
        unit: optional(raw.unit)?,
        kind,
        host: optional(raw.host)?,
        version: optional(raw.version)?,
        labels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{decode_message, decode_values, EventKind};

    const PLAIN: &str = r#"{"timestamp":1795341600123,"service":"checkout","name":"http.server.duration","value":12.5,"unit":"ms","kind":"sample","host":"web-1","version":"1.4.2","labels":{"method":"POST","endpoint":"/api/pay"}}"#;

    /// Each case decodes the same through the fast path (when it takes it) and the reference
    /// path; `fast` says whether the fast path must take it.
    #[test]
    fn fast_path_agrees_with_the_reference_path() {
        let long = "x".repeat(MAX_STRING_BYTES + 1);
        let many: String = (0..65).map(|i| format!(r#""k{i}":"v","#)).collect();
        let cases: Vec<(String, bool)> = vec![
            (PLAIN.to_string(), true),
            (format!("  \n{PLAIN}\n"), true),
            (r#"{"timestamp":"2026-11-22T10:00:00.123Z","service":"a","name":"n","value":1}"#.into(), true),
            (r#"{"timestamp":1,"service":"a\u00e9\n","name":"n","value":-0.0,"kind":"GAUGE"}"#.into(), true),
            (r#"{"timestamp":1,"service":"a","name":"n","value":1,"extra":{"x":[1,2]}}"#.into(), false),
            (format!(r#"{{"timestamp":1,"service":"a","name":"n","value":1,"extra":{}1{}}}"#, "[".repeat(200), "]".repeat(200)), false),
            (r#"{"timestamp":1,"service":"a","name":"n","value":1,"extra":"\ud800"}"#.into(), false),
            (r#"{"timestamp":1,"service":"a","name":"n","value":1,"labels":{"k":["\ud800"]}}"#.into(), false),
            (format!(r#"{{"timestamp":1,"service":"a","name":"n","value":1,"labels":{{"k":{}1{}}}}}"#, "[".repeat(200), "]".repeat(200)), false),
            (r#"{"timestamp":1,"service":"a","name":"n","value":1,"unit":null,"labels":null,"kind":null}"#.into(), true),
            (r#"{"timestamp":1,"ti\u006destamp":2,"service":"a","name":"n","value":1}"#.into(), false),
            (r#"{"timestamp":1,"service":"a","service":"b","name":"n","value":1}"#.into(), false),
            (r#"{"timestamp":1,"service":"a","name":"n","value":1,"labels":{"k":"1","k":"2"}}"#.into(), false),
            (r#"{"timestamp":1,"service":"a","name":"n","value":1,"labels":{"k":12}}"#.into(), false),
            (r#"{"timestamp":1,"service":"a","name":"n","value":1,"labels":{"":"v"}}"#.into(), false),
            (format!(r#"{{"timestamp":1,"service":"a","name":"n","value":1,"labels":{{{}"z":"v"}}}}"#, many), false),
            (format!(r#"{{"timestamp":1,"service":"{long}","name":"n","value":1}}"#), false),
            (r#"{"timestamp":1.0,"service":"a","name":"n","value":1}"#.into(), false),
            (r#"{"timestamp":1.5,"service":"a","name":"n","value":1}"#.into(), false),
            (r#"{"timestamp":18446744073709551615,"service":"a","name":"n","value":1}"#.into(), false),
            (r#"{"timestamp":-1,"service":"a","name":"n","value":1}"#.into(), false),
            (r#"{"timestamp":"yesterday","service":"a","name":"n","value":1}"#.into(), false),
            (r#"{"timestamp":null,"service":"a","name":"n","value":1}"#.into(), false),
            (r#"{"timestamp":1,"service":"  ","name":"n","value":1}"#.into(), false),
            (r#"{"timestamp":1,"service":"a","name":"n","value":"1"}"#.into(), false),
            (r#"{"timestamp":1,"service":"a","name":"n","value":1e999}"#.into(), false),
            (r#"{"timestamp":1,"service":"a","name":"n","value":1,"kind":"histogram"}"#.into(), false),
            (r#"{"timestamp":1,"service":"a","name":"n","value":1,"host":7}"#.into(), false),
            (r#"{"timestamp":1,"service":"a","name":"n","value":1} x"#.into(), false),
            (format!("[{PLAIN},{PLAIN}]"), false),
            ("[]".into(), false),
            ("null".into(), false),
            (r#"{"timestamp":1,"service":"a","name":"n","value":1,"labels":{"k":"\ud800"}}"#.into(), false),
        ];
        for (json, fast) in &cases {
            let took = metric(json.as_bytes()).is_some();
            assert_eq!(took, *fast, "fast path on {json}");
            assert_eq!(
                decode_message(EventKind::Metric, json.as_bytes()),
                decode_values(EventKind::Metric, json.as_bytes()),
                "{json}"
            );
        }
        // Invalid UTF-8 in a field's value, and in a value a typed pass could have skipped.
        for bad in [
            &b"{\"timestamp\":1,\"service\":\"\xff\",\"name\":\"n\",\"value\":1}"[..],
            &b"{\"timestamp\":1,\"service\":\"a\",\"name\":\"n\",\"value\":1,\"x\":\"\xff\"}"[..],
            &b"{\"timestamp\":1,\"service\":\"a\",\"name\":\"n\",\"value\":1,\"labels\":{\"k\":[\"\xff\"]}}"[..],
        ] {
            assert!(metric(bad).is_none());
            assert_eq!(
                decode_message(EventKind::Metric, bad),
                decode_values(EventKind::Metric, bad)
            );
        }
    }
}
