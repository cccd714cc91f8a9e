//! `opslake produce --otlp`: the synthetic metric and log messages as the OpenTelemetry
//! Collector's Kafka exporter would write them: one `ExportMetricsServiceRequest` or
//! `ExportLogsServiceRequest` per message, in protobuf or OTLP/JSON, to the OTLP topics.
//! Samples and gauges become gauge points, counters cumulative monotonic sums, with the event's
//! service, host and version as resource attributes and its labels as point attributes; the
//! same events, point for point, as the JSON topics get (what `bench/otlp.py` compares).

use prost::Message;
use serde_json::Value;

use opslake_schemas::otlp::proto::collector::logs::v1::ExportLogsServiceRequest;
use opslake_schemas::otlp::proto::collector::metrics::v1::ExportMetricsServiceRequest;
use opslake_schemas::otlp::proto::common::v1::{any_value, AnyValue, KeyValue};
use opslake_schemas::otlp::proto::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opslake_schemas::otlp::proto::metrics::v1::{
    metric::Data, number_data_point, AggregationTemporality, Gauge, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum,
};
use opslake_schemas::otlp::proto::resource::v1::Resource;
use opslake_schemas::otlp::OtlpEncoding;

/// One message of opslake JSON events (an object or an array) of the metrics or logs topic as
/// an OTLP request in `encoding`; `None` for anything else.
pub(crate) fn to_otlp(value: &str, logs: bool, encoding: OtlpEncoding) -> Option<Vec<u8>> {
    let events: Vec<Value> = match serde_json::from_str(value).ok()? {
        Value::Array(a) => a,
        one => vec![one],
    };
    if logs {
        let request = ExportLogsServiceRequest {
            resource_logs: events
                .iter()
                .map(|e| ResourceLogs {
                    resource: Some(resource(e)),
                    scope_logs: vec![ScopeLogs {
                        log_records: vec![log_record(e)],
                        ..Default::default()
                    }],
                    ..Default::default()
                })
                .collect(),
        };
        Some(encode(&request, encoding))
    } else {
        let request = ExportMetricsServiceRequest {
            resource_metrics: events
                .iter()
                .map(|e| ResourceMetrics {
                    resource: Some(resource(e)),
                    scope_metrics: vec![ScopeMetrics {
                        metrics: vec![metric(e)],
                        ..Default::default()
                    }],
                    ..Default::default()
                })
                .collect(),
        };
        Some(encode(&request, encoding))
    }
}

fn encode<T: Message + serde::Serialize>(request: &T, encoding: OtlpEncoding) -> Vec<u8> {
    match encoding {
        OtlpEncoding::Proto => request.encode_to_vec(),
        OtlpEncoding::Json => serde_json::to_vec(request).expect("a request serializes"),
    }
}

fn string(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_string())),
        }),
        ..Default::default()
    }
}

fn resource(e: &Value) -> Resource {
    let mut attributes = Vec::new();
    for (field, key) in [
        ("service", "service.name"),
        ("host", "host.name"),
        ("version", "service.version"),
    ] {
        if let Some(v) = e.get(field).and_then(Value::as_str) {
            attributes.push(string(key, v));
        }
    }
    Resource {
        attributes,
        ..Default::default()
    }
}

fn attributes(e: &Value, field: &str) -> Vec<KeyValue> {
    e.get(field)
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| match v {
                    Value::String(s) => string(k, s),
                    other => string(k, &other.to_string()),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The event's time (epoch milliseconds, or RFC 3339 text) in epoch nanoseconds.
fn time_ns(e: &Value) -> u64 {
    let ms = match e.get("timestamp") {
        Some(Value::String(s)) => opslake_schemas::time::parse_timestamp_str(s, false).ok(),
        Some(n) => n.as_i64(),
        None => None,
    };
    u64::try_from(ms.unwrap_or(0))
        .unwrap_or(0)
        .saturating_mul(1_000_000)
}

fn metric(e: &Value) -> Metric {
    let point = NumberDataPoint {
        attributes: attributes(e, "labels"),
        time_unix_nano: time_ns(e),
        value: Some(number_data_point::Value::AsDouble(
            e.get("value").and_then(Value::as_f64).unwrap_or(0.0),
        )),
        ..Default::default()
    };
    let data = if e.get("kind").and_then(Value::as_str) == Some("counter") {
        Data::Sum(Sum {
            data_points: vec![point],
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
            is_monotonic: true,
        })
    } else {
        Data::Gauge(Gauge {
            data_points: vec![point],
        })
    };
    Metric {
        name: e
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        unit: e
            .get("unit")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        data: Some(data),
        ..Default::default()
    }
}

fn log_record(e: &Value) -> LogRecord {
    let level = e.get("level").and_then(Value::as_str).unwrap_or("info");
    // OpenTelemetry's severity numbers: the first of each level's range of four.
    let severity_number = match level {
        "trace" => 1,
        "debug" => 5,
        "info" => 9,
        "warn" => 13,
        "error" => 17,
        _ => 21,
    };
    let mut attributes = attributes(e, "attributes");
    if let Some(code) = e.get("status_code").and_then(Value::as_i64) {
        attributes.push(KeyValue {
            key: "http.response.status_code".to_string(),
            value: Some(AnyValue {
                value: Some(any_value::Value::IntValue(code)),
            }),
            ..Default::default()
        });
    }
    LogRecord {
        time_unix_nano: time_ns(e),
        severity_number,
        severity_text: level.to_uppercase(),
        body: e.get("message").and_then(Value::as_str).map(|m| AnyValue {
            value: Some(any_value::Value::StringValue(m.to_string())),
        }),
        attributes,
        ..Default::default()
    }
}
