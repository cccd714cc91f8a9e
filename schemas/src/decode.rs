//! The rules of CONTRACT section 2: a Kafka message value becomes accepted events and refusals.
//!
//! A message is one JSON object or an array of them. A message that is not valid JSON is one
//! refusal; in a valid message each event that breaks a rule is one refusal, and the others are
//! still accepted. Every refusal names the field and the problem, e.g.
//! `labels.endpoint: expected a string, found 12`.

use serde_json::{Map, Value};

use crate::events::{BillingEvent, Event, LogEvent, MetricEvent, MetricKind};
use crate::time::{check_range, parse_timestamp_str};

pub use crate::limits::{MAX_MAP_ENTRIES, MAX_MESSAGE_BYTES, MAX_PAYLOAD_BYTES, MAX_STRING_BYTES};

/// Which topic, and so which event type, a message came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// The metrics topic: [`crate::MetricEvent`].
    Metric,
    /// The logs topic: [`crate::LogEvent`].
    Log,
    /// The billing topic: [`crate::BillingEvent`].
    Billing,
}

impl EventKind {
    /// The contract's name for the raw table of this kind.
    pub fn table(self) -> &'static str {
        match self {
            Self::Metric => "metrics",
            Self::Log => "logs",
            Self::Billing => "billing",
        }
    }
}

/// One refused item: the whole message (`index` is `None`) or one element of an array.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    /// Position of the refused event in the message's array; `None` for the whole message.
    pub index: Option<u32>,
    /// Why, naming the field and the problem.
    pub reason: String,
    /// The refused element's JSON text when the refusal is one element of an array.
    pub element: Option<String>,
}

/// The outcome of decoding one message value.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Decoded {
    /// Accepted events with their `_index` (position in the array, else 0).
    pub events: Vec<(u32, Event)>,
    /// Accepted histogram points with their `_index` (OTLP only; see [`crate::otlp`]).
    pub histograms: Vec<(u32, crate::events::HistogramEvent)>,
    /// Refused items.
    pub refused: Vec<Refusal>,
}

/// Decodes one message value of the given kind.
pub fn decode_message(kind: EventKind, payload: &[u8]) -> Decoded {
    if kind == EventKind::Metric {
        if let Some(m) = crate::fast::metric(payload) {
            return Decoded {
                events: vec![(0, Event::Metric(m))],
                ..Decoded::default()
            };
        }
    }
    decode_values(kind, payload)
}

/// The reference path of [`decode_message`]: parses the message into a `serde_json::Value`
/// and applies every rule to it. [`decode_message`] gives the same result, faster for
/// well-formed metric events (see [`crate::fast`]).
pub fn decode_values(kind: EventKind, payload: &[u8]) -> Decoded {
    let mut out = Decoded::default();
    if payload.len() > MAX_PAYLOAD_BYTES {
        out.refused.push(Refusal {
            index: None,
            element: None,
            reason: format!(
                "message of {} bytes is larger than the limit of {MAX_PAYLOAD_BYTES} bytes",
                payload.len()
            ),
        });
        return out;
    }
    let value: Value = match serde_json::from_slice(payload) {
        Ok(v) => v,
        Err(e) => {
            let reason = if std::str::from_utf8(payload).is_err() {
                "message is not valid UTF-8".to_string()
            } else {
                format!("message is not valid JSON: {e}")
            };
            out.refused.push(Refusal {
                index: None,
                reason,
                element: None,
            });
            return out;
        }
    };
    match value {
        Value::Array(items) => {
            for (i, item) in items.into_iter().enumerate() {
                let index = u32::try_from(i).unwrap_or(u32::MAX);
                match decode_value(kind, &item) {
                    Ok(e) => out.events.push((index, e)),
                    Err(reason) => out.refused.push(Refusal {
                        index: Some(index),
                        reason: format!("[{i}] {reason}"),
                        element: Some(item.to_string()),
                    }),
                }
            }
        }
        other => match decode_value(kind, &other) {
            Ok(e) => out.events.push((0, e)),
            Err(reason) => out.refused.push(Refusal {
                index: None,
                reason,
                element: None,
            }),
        },
    }
    out
}

/// Decodes one event value (an element of a message) of the given kind.
///
/// # Errors
/// The reason the event is refused.
pub fn decode_value(kind: EventKind, value: &Value) -> Result<Event, String> {
    let Value::Object(map) = value else {
        return Err(format!(
            "event: expected a JSON object, found {}",
            describe(value)
        ));
    };
    match kind {
        EventKind::Metric => decode_metric(map).map(Event::Metric),
        EventKind::Log => decode_log(map).map(Event::Log),
        EventKind::Billing => decode_billing(map).map(Event::Billing),
    }
}

fn decode_metric(m: &Map<String, Value>) -> Result<MetricEvent, String> {
    let kind = match opt_str(m, "kind", MAX_STRING_BYTES)? {
        None => MetricKind::Sample,
        Some(k) => match k.to_ascii_lowercase().as_str() {
            "sample" => MetricKind::Sample,
            "gauge" => MetricKind::Gauge,
            "counter" => MetricKind::Counter,
            _ => {
                return Err(format!(
                    "kind: expected one of sample, gauge, counter, found {:?}",
                    k
                ))
            }
        },
    };
    Ok(MetricEvent {
        timestamp_ms: req_timestamp(m, "timestamp", false)?,
        service: req_str(m, "service", MAX_STRING_BYTES)?,
        name: req_str(m, "name", MAX_STRING_BYTES)?,
        value: req_number(m, "value")?,
        unit: opt_str(m, "unit", MAX_STRING_BYTES)?,
        kind,
        host: opt_str(m, "host", MAX_STRING_BYTES)?,
        version: opt_str(m, "version", MAX_STRING_BYTES)?,
        labels: string_map(m, "labels")?,
    })
}

fn decode_log(m: &Map<String, Value>) -> Result<LogEvent, String> {
    let level_text = req_str(m, "level", MAX_STRING_BYTES)?;
    let level = match level_text.to_ascii_lowercase().as_str() {
        "trace" => "trace",
        "debug" => "debug",
        "info" => "info",
        "warn" | "warning" => "warn",
        "error" => "error",
        "fatal" => "fatal",
        _ => {
            return Err(format!(
            "level: expected one of trace, debug, info, warn, error, fatal, found {level_text:?}"
        ))
        }
    };
    let duration_ms = match opt_number(m, "duration_ms")? {
        Some(d) if d < 0.0 => return Err(format!("duration_ms: must not be negative, found {d}")),
        d => d,
    };
    let status_code = match m.get("status_code") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_i64().and_then(|c| i32::try_from(c).ok()) {
            Some(c) if (0..=999).contains(&c) => Some(c),
            _ => {
                return Err(format!(
                    "status_code: expected an integer in 0..=999, found {}",
                    describe(v)
                ))
            }
        },
    };
    Ok(LogEvent {
        timestamp_ms: req_timestamp(m, "timestamp", false)?,
        service: req_str(m, "service", MAX_STRING_BYTES)?,
        level,
        message: req_str_allow_empty(m, "message", MAX_MESSAGE_BYTES)?,
        host: opt_str(m, "host", MAX_STRING_BYTES)?,
        version: opt_str(m, "version", MAX_STRING_BYTES)?,
        trace_id: opt_str(m, "trace_id", MAX_STRING_BYTES)?,
        duration_ms,
        status_code,
        attributes: any_map(m, "attributes", m.get("attributes"))?,
    })
}

/// Billing fields: (snake_case name, FOCUS column name).
pub const BILLING_FIELDS: [(&str, &str); 16] = [
    ("charge_period_start", "ChargePeriodStart"),
    ("charge_period_end", "ChargePeriodEnd"),
    ("provider", "ProviderName"),
    ("service", "ServiceName"),
    ("service_category", "ServiceCategory"),
    ("resource_id", "ResourceId"),
    ("resource_type", "ResourceType"),
    ("region", "RegionId"),
    ("usage_quantity", "ConsumedQuantity"),
    ("usage_unit", "ConsumedUnit"),
    ("cost", "BilledCost"),
    ("effective_cost", "EffectiveCost"),
    ("currency", "BillingCurrency"),
    ("charge_category", "ChargeCategory"),
    ("utilization", "x_Utilization"),
    ("tags", "Tags"),
];

/// The value of a billing field under its snake_case name or, failing that, its FOCUS name,
/// with the name it was found under (for error messages).
fn billing_field<'a>(
    m: &'a Map<String, Value>,
    snake: &'static str,
) -> (&'static str, Option<&'a Value>) {
    let focus = BILLING_FIELDS
        .iter()
        .find(|(s, _)| *s == snake)
        .map_or(snake, |(_, f)| *f);
    match m.get(snake) {
        Some(v) if !v.is_null() => (snake, Some(v)),
        _ => match m.get(focus) {
            Some(v) if !v.is_null() => (focus, Some(v)),
            _ => (snake, None),
        },
    }
}

fn decode_billing(m: &Map<String, Value>) -> Result<BillingEvent, String> {
    let text = |snake: &'static str| -> Result<Option<String>, String> {
        let (name, v) = billing_field(m, snake);
        v.map(|v| string_value(name, v, MAX_STRING_BYTES))
            .transpose()
    };
    let number = |snake: &'static str| -> Result<Option<f64>, String> {
        let (name, v) = billing_field(m, snake);
        v.map(|v| decimal_value(name, v)).transpose()
    };
    let (start_name, start) = billing_field(m, "charge_period_start");
    let start = start.ok_or_else(|| {
        "charge_period_start: required field is missing (also read as ChargePeriodStart)"
            .to_string()
    })?;
    let start_ms = timestamp_value(start_name, start, true)?;
    let (end_name, end) = billing_field(m, "charge_period_end");
    let end_ms = match end {
        Some(v) => timestamp_value(end_name, v, true)?,
        None => start_ms + 3_600_000,
    };
    if end_ms < start_ms {
        return Err(format!("{end_name}: ends before the charge period starts"));
    }
    let provider = text("provider")?
        .filter(|p| !p.trim().is_empty())
        .ok_or_else(|| {
            "provider: required field is missing (also read as ProviderName)".to_string()
        })?;
    let cost = number("cost")?
        .ok_or_else(|| "cost: required field is missing (also read as BilledCost)".to_string())?;
    let utilization = number("utilization")?;
    if let Some(u) = utilization {
        if !(0.0..=1.0).contains(&u) {
            let (name, _) = billing_field(m, "utilization");
            return Err(format!("{name}: expected a fraction in 0..=1, found {u}"));
        }
    }
    let (tags_name, tags_value) = billing_field(m, "tags");
    let tags = match tags_value {
        None => Vec::new(),
        Some(Value::String(s)) if s.trim().is_empty() => Vec::new(),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(inner @ Value::Object(_)) => any_map(m, tags_name, Some(&inner))?,
            _ => {
                return Err(format!(
                    "{tags_name}: expected an object or a string holding a JSON object, found {}",
                    describe(&Value::String(s.clone()))
                ))
            }
        },
        Some(v) => any_map(m, tags_name, Some(v))?,
    };
    let mut extra = Vec::new();
    for (k, v) in m {
        let known = BILLING_FIELDS.iter().any(|(s, f)| k == s || k == f);
        if known || v.is_null() {
            continue;
        }
        if extra.len() >= MAX_MAP_ENTRIES * 2 {
            return Err(format!(
                "event: more than {} unknown fields",
                MAX_MAP_ENTRIES * 2
            ));
        }
        let text = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if text.len() > MAX_STRING_BYTES * 4 {
            return Err(format!(
                "{k}: value of {} bytes is longer than the limit of {} bytes",
                text.len(),
                MAX_STRING_BYTES * 4
            ));
        }
        extra.push((k.clone(), text));
    }
    extra.sort();
    Ok(BillingEvent {
        charge_period_start_ms: start_ms,
        charge_period_end_ms: end_ms,
        provider,
        service: text("service")?,
        service_category: text("service_category")?,
        resource_id: text("resource_id")?,
        resource_type: text("resource_type")?,
        region: text("region")?,
        usage_quantity: number("usage_quantity")?,
        usage_unit: text("usage_unit")?,
        effective_cost: number("effective_cost")?.unwrap_or(cost),
        cost,
        currency: text("currency")?
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| "USD".to_string()),
        charge_category: text("charge_category")?,
        utilization,
        tags,
        extra,
    })
}

/// A short description of a JSON value for error messages: `12`, `true`, `null`, `an array`.
pub fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => {
            let mut q: String = s.chars().take(48).collect();
            if q.len() < s.len() {
                q.push('…');
            }
            format!("the string {q:?}")
        }
        Value::Array(_) => "an array".to_string(),
        Value::Object(_) => "an object".to_string(),
    }
}

fn missing(field: &str) -> String {
    format!("{field}: required field is missing")
}

fn string_value(field: &str, v: &Value, limit: usize) -> Result<String, String> {
    match v {
        Value::String(s) if s.len() > limit => Err(format!(
            "{field}: string of {} bytes is longer than the limit of {limit} bytes",
            s.len()
        )),
        Value::String(s) => Ok(s.clone()),
        other => Err(format!(
            "{field}: expected a string, found {}",
            describe(other)
        )),
    }
}

fn req_str_allow_empty(
    m: &Map<String, Value>,
    field: &str,
    limit: usize,
) -> Result<String, String> {
    match m.get(field) {
        None | Some(Value::Null) => Err(missing(field)),
        Some(v) => string_value(field, v, limit),
    }
}

fn req_str(m: &Map<String, Value>, field: &str, limit: usize) -> Result<String, String> {
    let s = req_str_allow_empty(m, field, limit)?;
    if s.trim().is_empty() {
        return Err(format!("{field}: must not be empty"));
    }
    Ok(s)
}

fn opt_str(m: &Map<String, Value>, field: &str, limit: usize) -> Result<Option<String>, String> {
    match m.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => string_value(field, v, limit).map(Some),
    }
}

fn number_value(field: &str, v: &Value) -> Result<f64, String> {
    match v.as_f64() {
        Some(x) if x.is_finite() => Ok(x),
        _ => Err(format!(
            "{field}: expected a finite number, found {}",
            describe(v)
        )),
    }
}

fn req_number(m: &Map<String, Value>, field: &str) -> Result<f64, String> {
    match m.get(field) {
        None | Some(Value::Null) => Err(missing(field)),
        Some(v) => number_value(field, v),
    }
}

fn opt_number(m: &Map<String, Value>, field: &str) -> Result<Option<f64>, String> {
    match m.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => number_value(field, v).map(Some),
    }
}

/// A number, or a decimal string as FOCUS exports carry them (`"0.00000080000"`).
fn decimal_value(field: &str, v: &Value) -> Result<f64, String> {
    match v {
        Value::String(s) => match s.trim().parse::<f64>() {
            Ok(x) if x.is_finite() && !s.trim().is_empty() && is_decimal(s.trim()) => Ok(x),
            _ => Err(format!(
                "{field}: expected a number or a decimal string, found {}",
                describe(v)
            )),
        },
        other => number_value(field, other).map_err(|_| {
            format!(
                "{field}: expected a number or a decimal string, found {}",
                describe(other)
            )
        }),
    }
}

/// Plain decimal notation with an optional exponent; refuses `inf`, `NaN` and the like.
fn is_decimal(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'))
        && s.bytes().any(|b| b.is_ascii_digit())
}

fn timestamp_value(field: &str, v: &Value, allow_naive: bool) -> Result<i64, String> {
    let r = match v {
        Value::String(s) => parse_timestamp_str(s, allow_naive),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(ms), _) => check_range(ms),
            (None, Some(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => check_range(f as i64),
            _ => Err(format!(
                "expected epoch milliseconds as an integer, found {n}"
            )),
        },
        other => Err(format!(
            "expected an RFC 3339 timestamp or epoch milliseconds, found {}",
            describe(other)
        )),
    };
    r.map_err(|e| format!("{field}: {e}"))
}

fn req_timestamp(m: &Map<String, Value>, field: &str, allow_naive: bool) -> Result<i64, String> {
    match m.get(field) {
        None | Some(Value::Null) => Err(missing(field)),
        Some(v) => timestamp_value(field, v, allow_naive),
    }
}

/// A map of strings to strings (metric labels): every value must be a string.
fn string_map(m: &Map<String, Value>, field: &str) -> Result<Vec<(String, String)>, String> {
    let obj = match m.get(field) {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Object(o)) => o,
        Some(other) => {
            return Err(format!(
                "{field}: expected an object of strings, found {}",
                describe(other)
            ))
        }
    };
    check_map_size(field, obj)?;
    let mut out = Vec::with_capacity(obj.len());
    for (k, v) in obj {
        check_key(field, k)?;
        out.push((
            k.clone(),
            string_value(&format!("{field}.{k}"), v, MAX_STRING_BYTES)?,
        ));
    }
    out.sort();
    Ok(out)
}

/// A map whose values may be any JSON (log attributes, billing tags): non-strings are kept as
/// their JSON text, nulls are left out.
fn any_map(
    _m: &Map<String, Value>,
    field: &str,
    value: Option<&Value>,
) -> Result<Vec<(String, String)>, String> {
    let obj = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Object(o)) => o,
        Some(other) => {
            return Err(format!(
                "{field}: expected an object, found {}",
                describe(other)
            ))
        }
    };
    check_map_size(field, obj)?;
    let mut out = Vec::with_capacity(obj.len());
    for (k, v) in obj {
        check_key(field, k)?;
        let text = match v {
            Value::Null => continue,
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if text.len() > MAX_STRING_BYTES * 4 {
            return Err(format!(
                "{field}.{k}: value of {} bytes is longer than the limit of {} bytes",
                text.len(),
                MAX_STRING_BYTES * 4
            ));
        }
        out.push((k.clone(), text));
    }
    out.sort();
    Ok(out)
}

fn check_map_size(field: &str, obj: &Map<String, Value>) -> Result<(), String> {
    if obj.len() > MAX_MAP_ENTRIES {
        return Err(format!(
            "{field}: {} entries is more than the limit of {MAX_MAP_ENTRIES}",
            obj.len()
        ));
    }
    Ok(())
}

fn check_key(field: &str, k: &str) -> Result<(), String> {
    if k.is_empty() {
        return Err(format!("{field}: keys must not be empty"));
    }
    if k.len() > 256 {
        return Err(format!(
            "{field}: key of {} bytes is longer than the limit of 256 bytes",
            k.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(kind: EventKind, json: &str) -> Result<Event, String> {
        let d = decode_message(kind, json.as_bytes());
        match (d.events.len(), d.refused.len()) {
            (1, 0) => Ok(d.events[0].1.clone()),
            (0, 1) => Err(d.refused[0].reason.clone()),
            _ => panic!("unexpected {d:?}"),
        }
    }

    #[test]
    fn contract_metric_example_is_accepted() {
        let e = one(EventKind::Metric, r#"{"timestamp": "2026-11-22T10:00:00.123Z", "service": "checkout", "name": "http.server.duration",
 "value": 12.5, "unit": "ms", "kind": "sample", "host": "web-1", "version": "1.4.2",
 "labels": {"endpoint": "/api/pay", "method": "POST", "status": "200"}}"#).unwrap();
        let Event::Metric(m) = e else { panic!() };
        assert_eq!(m.timestamp_ms, 1_795_341_600_123);
        assert_eq!(m.labels[0], ("endpoint".into(), "/api/pay".into()));
        assert_eq!(m.kind, MetricKind::Sample);
    }

    #[test]
    fn label_of_wrong_type_names_field_and_value() {
        let r = one(
            EventKind::Metric,
            r#"{"timestamp": 1, "service": "a", "name": "n", "value": 1, "labels": {"endpoint": 12}}"#,
        );
        assert_eq!(
            r.unwrap_err(),
            "labels.endpoint: expected a string, found 12"
        );
    }

    #[test]
    fn array_keeps_good_events_and_refuses_bad_ones() {
        let d = decode_message(
            EventKind::Log,
            br#"[{"timestamp": 1763805600123, "service": "s", "level": "WARNING", "message": "m"},
                 {"timestamp": 1763805600123, "service": "s", "level": "loud", "message": "m"},
                 {"timestamp": 1763805600123, "service": "s", "level": "Error", "message": "m"}]"#,
        );
        assert_eq!(d.events.len(), 2);
        assert_eq!(d.events[1].0, 2);
        assert_eq!(d.refused.len(), 1);
        assert_eq!(d.refused[0].index, Some(1));
        assert!(d.refused[0]
            .reason
            .starts_with("[1] level: expected one of"));
        let Event::Log(l) = &d.events[0].1 else {
            panic!()
        };
        assert_eq!(l.level, "warn");
    }

    #[test]
    fn invalid_json_is_one_refusal() {
        let d = decode_message(EventKind::Metric, b"{not json");
        assert!(d.events.is_empty());
        assert_eq!(d.refused.len(), 1);
        assert!(d.refused[0].reason.starts_with("message is not valid JSON"));
    }

    #[test]
    fn focus_row_is_a_billing_event() {
        let e = one(EventKind::Billing, r#"{"ChargePeriodStart": "2024-09-18 22:00:00", "ChargePeriodEnd": "2024-09-18 23:00:00",
            "ProviderName": "AWS", "BilledCost": "0.00000080000", "EffectiveCost": null, "BillingAccountId": "1234567890123",
            "Tags": "{\"application\": \"BlueAssetEdge\", \"environment\": \"prod\"}", "ConsumedQuantity": "2.0", "x_Utilization": 0.25}"#).unwrap();
        let Event::Billing(b) = e else { panic!() };
        assert_eq!(b.provider, "AWS");
        assert!((b.cost - 0.0000008).abs() < 1e-15);
        assert_eq!(b.effective_cost, b.cost);
        assert_eq!(b.currency, "USD");
        assert_eq!(b.tags.len(), 2);
        assert_eq!(
            b.extra,
            vec![("BillingAccountId".into(), "1234567890123".into())]
        );
        assert_eq!(b.charge_period_end_ms - b.charge_period_start_ms, 3_600_000);
        assert_eq!(b.utilization, Some(0.25));
    }

    #[test]
    fn billing_refusals_name_the_field() {
        assert_eq!(
            one(
                EventKind::Billing,
                r#"{"charge_period_start": "2024-09-18 22:00:00", "provider": "aws"}"#
            )
            .unwrap_err(),
            "cost: required field is missing (also read as BilledCost)"
        );
        assert!(one(
            EventKind::Billing,
            r#"{"charge_period_start": "2024-09-18", "provider": "aws", "cost": "1,5"}"#
        )
        .unwrap_err()
        .starts_with("cost: expected a number or a decimal string"));
        assert!(one(
            EventKind::Billing,
            r#"{"charge_period_start": "x", "provider": "aws", "cost": 1}"#
        )
        .unwrap_err()
        .starts_with("charge_period_start: expected an RFC 3339 timestamp"));
    }

    #[test]
    fn oversized_strings_are_refused() {
        let long = "x".repeat(MAX_STRING_BYTES + 1);
        let r = one(
            EventKind::Metric,
            &format!(r#"{{"timestamp": 1, "service": "{long}", "name": "n", "value": 1}}"#),
        );
        assert_eq!(
            r.unwrap_err(),
            format!(
                "service: string of {} bytes is longer than the limit of {MAX_STRING_BYTES} bytes",
                MAX_STRING_BYTES + 1
            )
        );
    }

    #[test]
    fn missing_and_wrong_typed_required_fields() {
        assert_eq!(
            one(
                EventKind::Metric,
                r#"{"timestamp": 1, "service": "a", "name": "n"}"#
            )
            .unwrap_err(),
            "value: required field is missing"
        );
        assert_eq!(
            one(
                EventKind::Metric,
                r#"{"timestamp": 1, "service": "a", "name": "n", "value": "12"}"#
            )
            .unwrap_err(),
            "value: expected a finite number, found the string \"12\""
        );
        assert!(one(
            EventKind::Metric,
            r#"{"timestamp": -5, "service": "a", "name": "n", "value": 1}"#
        )
        .unwrap_err()
        .starts_with("timestamp: timestamp -5 is outside"));
        assert_eq!(
            one(EventKind::Log, r#"[3]"#).unwrap_err(),
            "[0] event: expected a JSON object, found 3"
        );
    }
}
