//! Malformed JSON, wrong types, missing fields and oversized values land in `dead_letters`
//! (and on the dead-letter topic) with their reasons; the good events of a message still land.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::ClientConfig;
use serde_json::json;

use crate::support::{wait_for, Broker, Setup, TestProducer};

#[test]
fn refused_items_land_in_dead_letters_with_reasons() {
    let broker = Broker::start();
    let lake = tempfile::tempdir().unwrap();
    let setup = Setup::new(&broker, lake.path(), "dlq");
    let opslake = setup.spawn("run", &[]);
    let api = opslake.api();
    let p = TestProducer::new(&setup.brokers);
    let metrics = setup.topic("metrics");
    let long = "x".repeat(2000);

    p.send(
        &metrics,
        Some("bad-json"),
        b"{\"timestamp\": 1, \"service\": ",
    );
    p.send(&metrics, None, br#"{"timestamp": 1763805600123, "service": "a", "name": "n", "value": 1, "labels": {"endpoint": 12}}"#);
    p.send(
        &metrics,
        None,
        br#"{"timestamp": 1763805600123, "service": "a", "value": 1}"#,
    );
    p.send(
        &metrics,
        None,
        format!(r#"{{"timestamp": 1763805600123, "service": "{long}", "name": "n", "value": 1}}"#)
            .as_bytes(),
    );
    p.send(
        &metrics,
        None,
        br#"[{"timestamp": 1763805600123, "service": "ok", "name": "n", "value": 1},
             {"timestamp": "yesterday", "service": "a", "name": "n", "value": 1},
             {"timestamp": 1763805600123, "service": "ok", "name": "n", "value": 2}]"#,
    );
    p.send(
        &setup.topic("logs"),
        None,
        br#"{"timestamp": 1763805600123, "service": "a", "level": "loud", "message": "m"}"#,
    );
    p.send(&setup.topic("billing"), None, br#"{"ChargePeriodStart": "2024-09-18 22:00:00", "ProviderName": "AWS", "BilledCost": "abc"}"#);
    p.flush();

    wait_for(
        "7 dead letters and 2 accepted metrics",
        Duration::from_secs(60),
        || {
            let d = api.count("SELECT count(*) FROM dead_letters");
            let m = api.count("SELECT count(*) FROM metrics");
            (d == 7 && m == 2).then_some(())
        },
    );
    let rows = api.rows("SELECT topic, key, error, payload, _index FROM dead_letters");
    let find = |prefix: &str| {
        rows.iter()
            .find(|r| r[2].as_str().unwrap().starts_with(prefix))
            .unwrap_or_else(|| panic!("no dead letter starting with {prefix:?} in {rows:?}"))
            .clone()
    };
    let billing =
        find("BilledCost: expected a number or a decimal string, found the string \"abc\"");
    assert_eq!(billing[0], json!(setup.topic("billing")));
    find("level: expected one of trace, debug, info, warn, error, fatal, found \"loud\"");
    let bad_json = find("message is not valid JSON");
    assert_eq!(bad_json[1], json!("bad-json"));
    assert_eq!(bad_json[3], json!("{\"timestamp\": 1, \"service\": "));
    find("labels.endpoint: expected a string, found 12");
    find("name: required field is missing");
    find("service: string of 2000 bytes is longer than the limit of 1024 bytes");
    // The refused element itself is the dead letter's payload, at its index in the array.
    let element = find("[1] timestamp: expected an RFC 3339 timestamp");
    assert_eq!(element[4], json!(1));
    let payload: serde_json::Value = serde_json::from_str(element[3].as_str().unwrap()).unwrap();
    assert_eq!(payload["timestamp"], json!("yesterday"));
    assert_eq!(
        api.count("SELECT CAST(sum(value) AS BIGINT) FROM metrics WHERE service = 'ok'"),
        3
    );

    // The same items are on the dead-letter topic, the reason in header `opslake.error`.
    // Read by assigning every partition directly: no consumer group is joined (librdkafka
    // wants a group id all the same), so the read does not wait on the broker's group
    // coordinator, which is slow on a loaded machine.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &setup.brokers)
        .set("group.id", "dlq-reader")
        .create()
        .unwrap();
    let topic = setup.topic("dead-letter");
    let md = consumer
        .fetch_metadata(Some(&topic), Duration::from_secs(10))
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in md.topics()[0].partitions() {
        tpl.add_partition_offset(&topic, p.id(), Offset::Beginning)
            .unwrap();
    }
    assert!(tpl.count() > 0, "the dead-letter topic has partitions");
    consumer.assign(&tpl).unwrap();
    let mut reasons = Vec::new();
    wait_for(
        "7 messages on the dead-letter topic",
        Duration::from_secs(60),
        || {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
                let headers = m.headers().expect("dead letters carry headers");
                let reason = headers
                    .iter()
                    .find(|h| h.key == "opslake.error")
                    .and_then(|h| h.value)
                    .map(|v| String::from_utf8_lossy(v).to_string())
                    .expect("opslake.error header");
                reasons.push(reason);
            }
            (reasons.len() >= 7).then_some(())
        },
    );
    assert!(
        reasons
            .iter()
            .any(|r| r == "labels.endpoint: expected a string, found 12"),
        "{reasons:?}"
    );

    // Rejections are counted by topic and reason.
    let metrics_text = api.get("/metrics").text().unwrap();
    assert!(
        metrics_text.contains("opslake_ingest_events_rejected_total{reason=\"labels\""),
        "{metrics_text}"
    );
}
