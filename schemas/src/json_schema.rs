//! The JSON Schemas users hand to their producers (`schemas/json/*.schema.json`). A property
//! test (`tests` below) checks that they accept and refuse the same events as the decoder.

use crate::decode::EventKind;

/// The JSON Schema (draft 2020-12) of one event kind, as text.
pub fn json_schema(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Metric => include_str!("../json/metric.schema.json"),
        EventKind::Log => include_str!("../json/log.schema.json"),
        EventKind::Billing => include_str!("../json/billing.schema.json"),
    }
}

#[cfg(test)]
mod tests {
    //! The JSON Schemas and the decoder must agree on every event of a generated corpus:
    //! valid events with up to three mutations each (a field removed, nulled, of the wrong
    //! type, too long, empty, out of range, in another case). The corpus stays inside what
    //! JSON Schema can express (see docs/CONTRACT.md: byte lengths are generated in ASCII,
    //! timestamps after 1970, tag strings that hold JSON objects).

    use proptest::prelude::*;
    use serde_json::{json, Map, Value};

    use super::json_schema;
    use crate::decode::{decode_message, EventKind};

    fn validator(kind: EventKind) -> jsonschema::Validator {
        let schema: Value = serde_json::from_str(json_schema(kind)).expect("schema is JSON");
        jsonschema::options()
            .should_validate_formats(true)
            .build(&schema)
            .expect("schema compiles")
    }

    fn base(kind: EventKind) -> Map<String, Value> {
        let v = match kind {
            EventKind::Metric => {
                json!({"timestamp": "2026-11-22T10:00:00.123Z", "service": "checkout", "name": "http.server.duration",
                "value": 12.5, "unit": "ms", "kind": "sample", "host": "web-1", "version": "1.4.2",
                "labels": {"endpoint": "/api/pay", "method": "POST"}})
            }
            EventKind::Log => {
                json!({"timestamp": 1763805600123i64, "service": "checkout", "level": "error", "message": "payment failed",
                "host": "web-1", "version": "1.4.2", "trace_id": "4bf92f3577b34da6", "duration_ms": 830.2,
                "status_code": 502, "attributes": {"region": "eu-west-1", "retries": 3}})
            }
            EventKind::Billing => {
                json!({"ChargePeriodStart": "2024-09-18 22:00:00", "ChargePeriodEnd": "2024-09-18 23:00:00",
                "ProviderName": "AWS", "ServiceName": "SQS", "BilledCost": "0.00000080000", "EffectiveCost": 0.0,
                "ConsumedQuantity": "2.0", "x_Utilization": 0.5, "Tags": "{\"env\": \"prod\"}", "BillingAccountId": "123"})
            }
        };
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    /// Values a mutation may put in a field.
    fn replacement() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            Just(json!(true)),
            Just(json!(12)),
            Just(json!(-5)),
            Just(json!(1.5)),
            Just(json!(1000)),
            Just(json!(0.25)),
            Just(json!("")),
            Just(json!("   ")),
            Just(json!("ok")),
            Just(json!("x".repeat(1025))),
            Just(json!("x".repeat(70_000))),
            Just(json!("yesterday")),
            Just(json!("2026-11-22T11:00:00+01:00")),
            Just(json!("2026-11-22T10:00:00.5Z")),
            Just(json!("2024-09-18 22:00:00")),
            Just(json!("2024-09-18")),
            Just(json!(1_763_805_600_123i64)),
            Just(json!(-1)),
            Just(json!(300_000_000_000_000i64)),
            Just(json!("12.5")),
            Just(json!(" 1e3 ")),
            Just(json!("1,5")),
            Just(json!("abc")),
            Just(json!("Gauge")),
            Just(json!("COUNTER")),
            Just(json!("histogram")),
            Just(json!("Warning")),
            Just(json!("FATAL")),
            Just(json!("loud")),
            Just(json!([1, 2])),
            Just(json!({})),
            Just(json!({"a": "b"})),
            Just(json!({"a": 1})),
            Just(json!({"": "b"})),
            Just(json!("{\"team\": \"pay\"}")),
            Just(Value::Object(
                (0..65).map(|i| (format!("k{i}"), json!("v"))).collect()
            )),
        ]
    }

    #[derive(Debug, Clone)]
    enum Mutation {
        Remove(usize),
        Set(usize, Value),
    }

    fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
        let one = prop_oneof![
            (0usize..32).prop_map(Mutation::Remove),
            ((0usize..32), replacement()).prop_map(|(i, v)| Mutation::Set(i, v)),
        ];
        proptest::collection::vec(one, 0..=3)
    }

    fn apply(mut m: Map<String, Value>, kind: EventKind, muts: &[Mutation]) -> Value {
        let mut keys: Vec<String> = m.keys().cloned().collect();
        if kind == EventKind::Billing {
            // Mutations may also add a field under its snake_case name.
            keys.extend(
                [
                    "cost",
                    "provider",
                    "utilization",
                    "tags",
                    "charge_period_start",
                ]
                .map(String::from),
            );
        }
        for mu in muts {
            match mu {
                Mutation::Remove(i) => {
                    m.remove(&keys[i % keys.len()]);
                }
                Mutation::Set(i, v) => {
                    m.insert(keys[i % keys.len()].clone(), v.clone());
                }
            }
        }
        Value::Object(m)
    }

    /// Events outside what JSON Schema can express are left out of the comparison.
    fn expressible(kind: EventKind, v: &Value) -> bool {
        let Value::Object(m) = v else { return true };
        if kind != EventKind::Billing {
            return true;
        }
        let both = |a: &str, b: &str| {
            m.get(a).is_some_and(|x| !x.is_null()) && m.get(b).is_some_and(|x| !x.is_null())
        };
        // Tag strings must hold JSON objects; decimal strings must be in range; one name per field.
        let tags_ok = ["tags", "Tags"].iter().all(|k| match m.get(*k) {
            Some(Value::String(s)) => {
                s.trim().is_empty() || serde_json::from_str::<Map<String, Value>>(s).is_ok()
            }
            _ => true,
        });
        let util_ok = ["utilization", "x_Utilization"]
            .iter()
            .all(|k| !matches!(m.get(*k), Some(Value::String(_))));
        tags_ok
            && util_ok
            && !both("cost", "BilledCost")
            && !both("provider", "ProviderName")
            && !both("utilization", "x_Utilization")
            && !both("tags", "Tags")
            && !both("charge_period_start", "ChargePeriodStart")
    }

    fn agree(kind: EventKind, muts: &[Mutation]) -> Result<(), TestCaseError> {
        let event = apply(base(kind), kind, muts);
        if !expressible(kind, &event) {
            return Ok(());
        }
        let schema_ok = validator(kind).is_valid(&event);
        let text = event.to_string();
        let d = decode_message(kind, text.as_bytes());
        // The fast path of metrics and the reference path agree on every event.
        prop_assert_eq!(&d, &crate::decode::decode_values(kind, text.as_bytes()));
        if d.refused
            .iter()
            .any(|r| r.reason.contains("ends before the charge period starts"))
        {
            return Ok(()); // an order between two fields: not expressible in JSON Schema
        }
        let decoder_ok = d.refused.is_empty();
        prop_assert_eq!(
            schema_ok,
            decoder_ok,
            "{} event {} (decoder: {:?})",
            kind.table(),
            event,
            d.refused
        );
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn metric_schema_agrees_with_decoder(muts in mutations()) {
            agree(EventKind::Metric, &muts)?;
        }

        #[test]
        fn log_schema_agrees_with_decoder(muts in mutations()) {
            agree(EventKind::Log, &muts)?;
        }

        #[test]
        fn billing_schema_agrees_with_decoder(muts in mutations()) {
            agree(EventKind::Billing, &muts)?;
        }
    }

    #[test]
    fn base_events_are_valid_in_both() {
        for kind in [EventKind::Metric, EventKind::Log, EventKind::Billing] {
            agree(kind, &[]).unwrap();
            assert!(validator(kind).is_valid(&Value::Object(base(kind))));
        }
    }
}
