use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use prost::Message;

use super::*;
use crate::events::{Event, HistogramBuckets, MetricKind, Temporality};

/// A request as the OTLP/JSON mapping writes it (the shape of the OpenTelemetry proto
/// repository's `examples/metrics.json`): camelCase, 64-bit integers as strings, enums as
/// numbers.
const METRICS_JSON: &str = r#"{"resourceMetrics":[{"resource":{"attributes":[
  {"key":"service.name","value":{"stringValue":"checkout"}},
  {"key":"service.version","value":{"stringValue":"1.4.2"}},
  {"key":"host.name","value":{"stringValue":"web-1"}},
  {"key":"deployment.environment","value":{"stringValue":"prod"}}]},
 "scopeMetrics":[{"scope":{"name":"my.library","version":"1.0.0"},"metrics":[
  {"name":"requests","unit":"1","sum":{"aggregationTemporality":2,"isMonotonic":true,
   "dataPoints":[{"asInt":"42","startTimeUnixNano":"1764000000000000000","timeUnixNano":"1764000060000000000",
     "attributes":[{"key":"endpoint","value":{"stringValue":"/pay"}},{"key":"retry","value":{"boolValue":false}}]}]}},
  {"name":"queue.depth","gauge":{"dataPoints":[{"asDouble":3.5,"timeUnixNano":"1764000060000000000"},
     {"asDouble":"NaN","timeUnixNano":"1764000060000000000"}]}},
  {"name":"http.server.duration","unit":"ms","histogram":{"aggregationTemporality":1,
   "dataPoints":[{"startTimeUnixNano":"1764000000000000000","timeUnixNano":"1764000060000000000",
     "count":"5","sum":61.5,"bucketCounts":["1","3","1"],"explicitBounds":[10,20],"min":2,"max":30},
     {"timeUnixNano":"1764000060000000000","count":"4","bucketCounts":["1","1","1"],"explicitBounds":[10,20]}]}},
  {"name":"rpc.duration","exponentialHistogram":{"aggregationTemporality":2,
   "dataPoints":[{"startTimeUnixNano":"1764000000000000000","timeUnixNano":"1764000060000000000",
     "count":"3","sum":7.5,"scale":3,"zeroCount":"1","positive":{"offset":8,"bucketCounts":["1","0","1"]}}]}},
  {"name":"latency","summary":{"dataPoints":[{"timeUnixNano":"1764000060000000000","count":"10","sum":100,
     "quantileValues":[{"quantile":0.5,"value":9},{"quantile":0.99,"value":20}]}]}}
 ]}]}]}"#;

#[test]
fn otlp_json_metrics_map_as_the_contract_says() {
    let d = decode_metrics(METRICS_JSON.as_bytes());
    let metric = |i: usize| match &d.events[i].1 {
        Event::Metric(m) => m.clone(),
        other => panic!("not a metric: {other:?}"),
    };
    // The counter: resource columns, the other resource attribute and the point's as labels.
    let requests = metric(0);
    assert_eq!(d.events[0].0, 0);
    assert_eq!(
        (
            requests.service.as_str(),
            requests.version.as_deref(),
            requests.host.as_deref()
        ),
        ("checkout", Some("1.4.2"), Some("web-1"))
    );
    assert_eq!((requests.value, requests.kind), (42.0, MetricKind::Counter));
    assert_eq!(requests.timestamp_ms, 1_764_000_060_000);
    assert_eq!(
        requests.labels,
        vec![
            ("deployment.environment".to_string(), "prod".to_string()),
            ("endpoint".to_string(), "/pay".to_string()),
            ("retry".to_string(), "false".to_string()),
        ]
    );
    let depth = metric(1);
    assert_eq!((depth.value, depth.kind), (3.5, MetricKind::Gauge));
    // The NaN gauge point (index 2) and the histogram whose buckets do not add up (index 4)
    // are refused; the rest of the request is accepted.
    let refused: Vec<(Option<u32>, &str)> = d
        .refused
        .iter()
        .map(|r| (r.index, r.reason.as_str()))
        .collect();
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert_eq!(refused[0].0, Some(2));
    // OTLP/JSON writes NaN as the string "NaN", which the message types do not read as a
    // number: the point has no value.
    assert!(
        refused[0].1.contains("metric \"queue.depth\": value"),
        "{}",
        refused[0].1
    );
    assert_eq!(refused[1].0, Some(4));
    assert!(
        refused[1]
            .1
            .contains("bucketCounts add up to 3, count is 4"),
        "{}",
        refused[1].1
    );
    // Histograms.
    assert_eq!(d.histograms.len(), 2);
    let (i, h) = &d.histograms[0];
    assert_eq!(*i, 3);
    assert_eq!(h.temporality, Temporality::Delta);
    assert_eq!(
        (h.count, h.sum, h.min, h.max),
        (5, Some(61.5), Some(2.0), Some(30.0))
    );
    assert_eq!(
        h.buckets,
        HistogramBuckets::Explicit {
            bounds: vec![10.0, 20.0],
            counts: vec![1, 3, 1]
        }
    );
    let (i, e) = &d.histograms[1];
    assert_eq!(*i, 5);
    assert_eq!(e.temporality, Temporality::Cumulative);
    assert!(matches!(
        &e.buckets,
        HistogramBuckets::Exponential { scale: 3, zero_count: 1, positive_offset: 8, positive, .. }
            if positive == &vec![1, 0, 1]
    ));
    // The summary: a gauge per quantile, then count and sum, each with its own index.
    let names: Vec<(u32, String, f64)> = d.events[2..]
        .iter()
        .map(|(i, e)| match e {
            Event::Metric(m) => (*i, m.name.clone(), m.value),
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(
        names,
        vec![
            (6, "latency".to_string(), 9.0),
            (7, "latency".to_string(), 20.0),
            (8, "latency.count".to_string(), 10.0),
            (9, "latency.sum".to_string(), 100.0),
        ]
    );
    assert!(metric(3)
        .labels
        .contains(&("quantile".to_string(), "0.99".to_string())));
}

#[test]
fn protobuf_and_json_of_one_request_decode_alike() {
    let request: ExportMetricsServiceRequest = serde_json::from_str(METRICS_JSON).unwrap();
    let proto = decode_metrics(&request.encode_to_vec());
    let json = decode_metrics(METRICS_JSON.as_bytes());
    assert_eq!(proto.events, json.events);
    assert_eq!(proto.histograms, json.histograms);
    assert_eq!(proto.refused.len(), json.refused.len());
}

#[test]
fn a_message_that_is_not_a_request_is_one_refusal_naming_the_encoding() {
    let d = decode_metrics(b"\xff\xff not protobuf");
    assert_eq!(d.refused.len(), 1);
    assert!(
        d.refused[0].reason.contains("otlp_proto"),
        "{}",
        d.refused[0].reason
    );
    let d = decode_logs(br#"{"resourceLogs": 5}"#);
    assert_eq!(d.refused.len(), 1);
    assert!(
        d.refused[0].reason.contains("otlp_json"),
        "{}",
        d.refused[0].reason
    );
    assert_eq!(d.refused[0].index, None);
}

#[test]
fn log_records_map_severity_body_ids_and_status() {
    let json = r#"{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"api"}}]},
      "scopeLogs":[{"logRecords":[
        {"timeUnixNano":"1764000000000000000","severityNumber":17,"severityText":"ERROR",
         "body":{"stringValue":"payment failed"},"traceId":"5b8efff798038103d269b633813fc60c",
         "spanId":"eee19b7ec3c1b174","attributes":[{"key":"http.response.status_code","value":{"intValue":"502"}}]},
        {"observedTimeUnixNano":"1764000000000000000","severityNumber":10,
         "body":{"kvlistValue":{"values":[{"key":"user","value":{"stringValue":"ann"}}]}}},
        {"severityNumber":9,"body":{"stringValue":"no time"}}
      ]}]}]}"#;
    let d = decode_logs(json.as_bytes());
    let logs: Vec<_> = d
        .events
        .iter()
        .map(|(_, e)| match e {
            Event::Log(l) => l.clone(),
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(logs.len(), 2);
    assert_eq!((logs[0].service.as_str(), logs[0].level), ("api", "error"));
    assert_eq!(logs[0].message, "payment failed");
    assert_eq!(
        logs[0].trace_id.as_deref(),
        Some("5b8efff798038103d269b633813fc60c")
    );
    assert_eq!(logs[0].status_code, Some(502));
    assert!(logs[0]
        .attributes
        .contains(&("span_id".to_string(), "eee19b7ec3c1b174".to_string())));
    assert_eq!(
        (logs[1].level, logs[1].message.as_str()),
        ("info", r#"{"user":"ann"}"#)
    );
    assert_eq!(d.refused.len(), 1);
    assert_eq!(d.refused[0].index, Some(2));
    assert!(d.refused[0].reason.contains("timeUnixNano"));
    // And the same request in protobuf.
    let request: ExportLogsServiceRequest = serde_json::from_str(json).unwrap();
    assert_eq!(decode_logs(&request.encode_to_vec()).events, d.events);
}

#[test]
fn a_nan_in_protobuf_is_a_refused_point() {
    let mut request: ExportMetricsServiceRequest = serde_json::from_str(METRICS_JSON).unwrap();
    use opentelemetry_proto::tonic::metrics::v1::{metric::Data, number_data_point::Value};
    let metrics = &mut request.resource_metrics[0].scope_metrics[0].metrics;
    if let Some(Data::Gauge(g)) = &mut metrics[1].data {
        g.data_points[1].value = Some(Value::AsDouble(f64::NAN));
    }
    let d = decode_metrics(&request.encode_to_vec());
    let reason = &d.refused[0].reason;
    assert!(
        reason.contains("queue.depth") && reason.contains("must be finite, found NaN"),
        "{reason}"
    );
}
