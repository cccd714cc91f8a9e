//! Fuzzes the sketch's decoder and the sketches of histogram points, the two ways a sketch is
//! built from outside input:
//! - any bytes, as a stored or SQL-given sketch (`merge_bytes`, `from_bytes`), are refused or
//!   decode to a sketch whose quantiles and ranks answer without a panic, and a decoded sketch
//!   round-trips through its bytes;
//! - any OTLP request's histogram points (protobuf or JSON) make sketches whose count is the
//!   point's and whose quantiles answer without a panic, min at most max.
#![no_main]

use libfuzzer_sys::fuzz_target;
use opslake_schemas::otlp::decode_metrics;
use opslake_sketch::DDSketch;

fn exercise(s: &DDSketch) {
    let q = s.quantiles([0.0, 0.01, 0.5, 0.99, 1.0]);
    if let (Some(min), Some(max)) = (s.min(), s.max()) {
        assert!(!(min > max), "min above max: {s:?}");
        if let Some(q) = q {
            assert!(q.iter().all(|v| !v.is_nan()), "a NaN quantile: {s:?}");
        }
        let _ = s.rank((min + max) / 2.0);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, payload)) = data.split_first() else { return };
    if selector % 2 == 0 {
        if let Ok(s) = DDSketch::from_bytes(payload) {
            exercise(&s);
            let back = DDSketch::from_bytes(&s.to_bytes()).expect("a decoded sketch round-trips");
            assert_eq!(back.count(), s.count());
        }
        let mut acc = DDSketch::default();
        acc.add_all(&[1.0, 2.0, 3.0]);
        if acc.merge_bytes(payload).is_ok() {
            exercise(&acc);
        }
    } else {
        for (_, h) in decode_metrics(payload).histograms {
            let s = h.sketch();
            assert_eq!(s.count(), h.count, "the sketch counts the point's values");
            exercise(&s);
        }
    }
});
