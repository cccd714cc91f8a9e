//! Fuzzes the event decoder: any bytes, as any event kind, must decode without a panic or a
//! hang, every refusal must name its reason, and the fast path must agree with the reference
//! path.
#![no_main]

use libfuzzer_sys::fuzz_target;
use opslake_schemas::decode::decode_values;
use opslake_schemas::{decode_message, EventKind};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, payload)) = data.split_first() else { return };
    let kind = match selector % 3 {
        0 => EventKind::Metric,
        1 => EventKind::Log,
        _ => EventKind::Billing,
    };
    let decoded = decode_message(kind, payload);
    // The fast path of metrics and the reference path agree on every message.
    assert_eq!(decoded, decode_values(kind, payload), "paths disagree");
    for r in &decoded.refused {
        assert!(!r.reason.is_empty(), "a refusal without a reason");
    }
    let items = decoded.events.len() + decoded.refused.len();
    assert!(items > 0 || payload.trim_ascii() == b"[]" || payload.trim_ascii().starts_with(b"["));
});
