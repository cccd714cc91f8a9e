//! Fuzzes the OTLP decoders: any bytes, as a metrics or a logs request, must decode without a
//! panic or a hang, every refusal must name its reason, and a request read from protobuf must
//! decode to the same events when written in OTLP/JSON and read again (when its numbers are
//! finite: JSON carries NaN and infinities as strings).
#![no_main]

use libfuzzer_sys::fuzz_target;
use opslake_schemas::otlp::proto::collector::logs::v1::ExportLogsServiceRequest;
use opslake_schemas::otlp::proto::collector::metrics::v1::ExportMetricsServiceRequest;
use opslake_schemas::otlp::{decode_logs, decode_metrics, OtlpEncoding};
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, payload)) = data.split_first() else { return };
    let metrics = selector % 2 == 0;
    let decoded = if metrics { decode_metrics(payload) } else { decode_logs(payload) };
    for r in &decoded.refused {
        assert!(!r.reason.is_empty(), "a refusal without a reason");
    }
    if OtlpEncoding::of(payload) != OtlpEncoding::Proto {
        return;
    }
    // The same request in OTLP/JSON decodes alike (when JSON can carry it: no NaN).
    let json = if metrics {
        ExportMetricsServiceRequest::decode(payload).ok().and_then(|r| serde_json::to_vec(&r).ok())
    } else {
        ExportLogsServiceRequest::decode(payload).ok().and_then(|r| serde_json::to_vec(&r).ok())
    };
    // OTLP/JSON writes a NaN or an infinity as a string, which the message types do not read
    // back as a number (they read it as absent): the two encodings agree on finite numbers.
    let finite = |j: &Vec<u8>| {
        let t = String::from_utf8_lossy(j);
        !t.contains("NaN") && !t.contains("Infinity") && !t.contains("inf")
    };
    if let Some(json) = json.filter(finite) {
        let again = if metrics { decode_metrics(&json) } else { decode_logs(&json) };
        assert_eq!(decoded.events, again.events, "protobuf and JSON disagree");
        assert_eq!(decoded.histograms, again.histograms, "protobuf and JSON disagree");
        assert_eq!(decoded.refused.len(), again.refused.len(), "protobuf and JSON disagree");
    }
});
