//! OTLP log records onto `logs` events: severity as level, body as message (a structured body
//! as JSON text), trace id as hex, span id and every other attribute as attributes,
//! `http.response.status_code` as status code.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::logs::v1::LogRecord;

use super::attributes::{hex, json, sorted_unique, text, Resource};
use super::{element_text, refusal_bytes, time_ms, Budget};
use crate::decode::{Decoded, Refusal, MAX_MESSAGE_BYTES};
use crate::events::{Event, LogEvent};

/// Attributes that carry the HTTP status code (the current name, then the old one).
const STATUS_CODE_KEYS: [&str; 2] = ["http.response.status_code", "http.status_code"];

/// The events of one request.
pub(super) fn map(request: &ExportLogsServiceRequest) -> Decoded {
    let mut out = Decoded::default();
    let mut budget = Budget::default();
    let mut index: u32 = 0;
    for rl in &request.resource_logs {
        let attributes = rl
            .resource
            .as_ref()
            .map_or(&[][..], |r| r.attributes.as_slice());
        let resource = Resource::of(attributes);
        for sl in &rl.scope_logs {
            for record in &sl.log_records {
                let i = index;
                index = index.saturating_add(1);
                if budget.is_spent() {
                    budget.cut(i);
                    continue;
                }
                let event = resource
                    .as_ref()
                    .map_err(|e| format!("resource: {e}"))
                    .and_then(|r| log(r, record));
                match event {
                    Ok(e) => {
                        let e = Event::Log(e);
                        if budget.spend(e.approx_bytes(), i) {
                            out.events.push((i, e));
                        }
                    }
                    Err(reason) => {
                        let refusal = Refusal {
                            index: Some(i),
                            reason: format!("log record: {reason}"),
                            element: element_text(record),
                        };
                        if budget.spend(refusal_bytes(&refusal), i) {
                            out.refused.push(refusal);
                        }
                    }
                }
            }
        }
    }
    budget.finish(&mut out);
    out
}

/// OpenTelemetry's severity number (1..=24 in six ranges of four) as opslake's level; an
/// unspecified number falls back to the severity text, then to `info`.
fn level(number: i32, text: &str) -> &'static str {
    match number {
        1..=4 => "trace",
        5..=8 => "debug",
        9..=12 => "info",
        13..=16 => "warn",
        17..=20 => "error",
        21..=24 => "fatal",
        _ => match text.to_ascii_lowercase().as_str() {
            "trace" => "trace",
            "debug" => "debug",
            "warn" | "warning" => "warn",
            "error" => "error",
            "fatal" | "critical" => "fatal",
            _ => "info",
        },
    }
}

fn log(resource: &Resource, r: &LogRecord) -> Result<LogEvent, String> {
    let time = if r.time_unix_nano != 0 {
        r.time_unix_nano
    } else {
        r.observed_time_unix_nano
    };
    let timestamp_ms = time_ms(time, "timeUnixNano (and observedTimeUnixNano)")?;
    let message = match r.body.as_ref().and_then(|b| b.value.as_ref()) {
        None => String::new(),
        Some(Value::StringValue(s)) => s.clone(),
        Some(other) => json(other).to_string(),
    };
    if message.len() > MAX_MESSAGE_BYTES {
        return Err(format!(
            "body: {} bytes, longer than the limit of {MAX_MESSAGE_BYTES}",
            message.len()
        ));
    }
    let status_code =
        match r
            .attributes
            .iter()
            .find(|kv| STATUS_CODE_KEYS.contains(&kv.key.as_str()))
        {
            None => None,
            Some(kv) => {
                let t = text(kv.value.as_ref());
                Some(t.parse::<i32>().map_err(|_| {
                    format!("{}: expected an integer status code, found {t:?}", kv.key)
                })?)
            }
        };
    let mut attributes = resource.labels.clone();
    attributes.extend(
        r.attributes
            .iter()
            .map(|kv| (kv.key.clone(), text(kv.value.as_ref()))),
    );
    if !r.span_id.is_empty() {
        attributes.push(("span_id".to_string(), hex(&r.span_id)));
    }
    if !r.event_name.is_empty() {
        attributes.push(("event.name".to_string(), r.event_name.clone()));
    }
    Ok(LogEvent {
        timestamp_ms,
        service: resource.service.clone(),
        level: level(r.severity_number, &r.severity_text),
        message,
        host: resource.host.clone(),
        version: resource.version.clone(),
        trace_id: (!r.trace_id.is_empty()).then(|| hex(&r.trace_id)),
        duration_ms: None,
        status_code,
        attributes: sorted_unique(attributes)?,
    })
}
