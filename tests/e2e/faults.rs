//! Faults: a broker that goes away and comes back.

use std::time::Duration;

use serde_json::json;

use crate::support::{free_port, wait_for, Api, Broker, Setup, TestProducer};

fn send(setup: &Setup, from: u64, n: u64) {
    let p = TestProducer::new(&setup.brokers);
    for i in from..from + n {
        p.send(
            &setup.topic("metrics"),
            Some(&format!("k{i}")),
            format!(
                r#"{{"timestamp": {}, "service": "s", "name": "n", "value": {i}}}"#,
                1_763_805_600_000u64 + i
            )
            .as_bytes(),
        );
    }
    p.flush();
}

#[test]
fn ingest_rides_out_a_broker_restart() {
    let port = free_port();
    let data = tempfile::tempdir().unwrap();
    let mut broker = Broker::start_persistent(port, data.path());
    let lake = tempfile::tempdir().unwrap();
    let setup = Setup::new(&broker, lake.path(), "faults");
    let opslake = setup.spawn("run", &[]);
    let api = opslake.api();
    send(&setup, 0, 200);
    wait_for("200 rows", Duration::from_secs(60), || {
        (api.count("SELECT count(*) FROM metrics") == 200).then_some(())
    });

    drop(broker);
    let client = Api::client();
    let not_ready = wait_for(
        "/readyz to report the broker down",
        Duration::from_secs(30),
        || {
            let r = client.get(format!("{}/readyz", api.base)).send().unwrap();
            (r.status() == 503).then(|| r.json::<serde_json::Value>().unwrap())
        },
    );
    assert!(
        not_ready["broker"]
            .as_str()
            .unwrap()
            .starts_with("no broker answered"),
        "{not_ready}"
    );
    // Queries over what is already in the lake keep working while the broker is down.
    assert_eq!(api.count("SELECT count(*) FROM metrics"), 200);

    broker = Broker::start_persistent(port, data.path());
    wait_for("/readyz to recover", Duration::from_secs(60), || {
        (client
            .get(format!("{}/readyz", api.base))
            .send()
            .unwrap()
            .status()
            == 200)
            .then_some(())
    });
    send(&setup, 200, 200);
    wait_for(
        "400 rows after the restart",
        Duration::from_secs(120),
        || {
            let n = api.count("SELECT count(*) FROM metrics");
            assert!(n <= 400, "duplicates: {n}");
            (n == 400).then_some(())
        },
    );
    assert_eq!(api.count("SELECT count(DISTINCT value) FROM metrics"), 400);
    assert_eq!(api.sql("SELECT 1")["rows"], json!([[1]]));
    drop(broker);
}
