//! Scale-out on object storage: the lake in a real S3-compatible server process (moto's, from
//! PyPI), several ingest and processor instances, instances killed mid-run, the S3 endpoint
//! taken away for 30 s; every event in the lake once, rollups equal to exact values computed
//! here, and stateless query servers giving the same answers.

use std::collections::HashMap;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::support::{
    assert_same_answers, create_topics, wait_for, Api, Broker, Opslake, Proxy, S3Endpoint,
    S3Server, Setup, TestProducer,
};

const T0: i64 = 1_795_341_600_000; // 2026-11-22T10:00:00Z

/// Values of the events by (minute, service).
type Exact = HashMap<(i64, String), Vec<f64>>;

/// `messages` messages of `per` metric events each, spread over two hours: (payloads, values by
/// (minute, service)).
fn events(seed: u64, messages: usize, per: usize) -> (Vec<String>, Exact) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut exact: Exact = HashMap::new();
    let total = (messages * per) as i64;
    let mut out = Vec::new();
    let mut n = 0i64;
    for _ in 0..messages {
        let mut batch = Vec::new();
        for _ in 0..per {
            let t = T0 + n * 7_200_000 / total;
            let service = format!("svc-{}", rng.random_range(0..4));
            let v = (rng.random_range(1.0f64..500.0) * 1000.0).round() / 1000.0;
            exact
                .entry((t - t.rem_euclid(60_000), service.clone()))
                .or_default()
                .push(v);
            batch.push(json!({"timestamp": t, "service": service, "name": "latency", "value": v}));
            n += 1;
        }
        out.push(Value::Array(batch).to_string());
    }
    (out, exact)
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    let r = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (r.floor() as usize, r.ceil() as usize);
    sorted[lo] + (r - lo as f64) * (sorted[hi] - sorted[lo])
}

/// Every event once, by provenance, and the 1-minute rollups equal to the exact values.
fn check_lake(api: &Api, n: usize, exact: &Exact) {
    assert_eq!(api.count("SELECT count(*) FROM metrics") as usize, n);
    assert_eq!(
        api.count(
            "SELECT count(*) FROM (SELECT DISTINCT _topic, _partition, _offset, _index FROM metrics)"
        ) as usize,
        n,
        "no event twice"
    );
    let rows = api.rows(
        "SELECT CAST(window_start AS BIGINT), service, count, min, max, p50, p95, p99 FROM metric_rollups_1m",
    );
    assert_eq!(
        rows.len(),
        exact.len(),
        "one rollup row per minute and service"
    );
    for r in rows {
        let key = (r[0].as_i64().unwrap(), r[1].as_str().unwrap().to_string());
        let mut v = exact[&key].clone();
        v.sort_by(f64::total_cmp);
        assert_eq!(r[2].as_u64().unwrap() as usize, v.len(), "{key:?}");
        assert_eq!(r[3].as_f64().unwrap(), v[0]);
        assert_eq!(r[4].as_f64().unwrap(), v[v.len() - 1]);
        for (i, q) in [(5, 0.5), (6, 0.95), (7, 0.99)] {
            let want = quantile(&v, q);
            let got = r[i].as_f64().unwrap();
            assert!(
                (got - want).abs() <= 0.01 * want,
                "{key:?} p{q}: {got} vs exact {want}"
            );
        }
    }
}

fn send_all(p: &TestProducer, topic: &str, msgs: &[String]) {
    for m in msgs {
        p.send(topic, None, m.as_bytes());
    }
    p.flush();
}

#[test]
fn three_ingest_two_processors_on_s3_survive_a_kill_of_each() {
    let broker = Broker::start();
    let s3 = S3Server::start();
    s3.endpoint.create_bucket("scale");
    let setup = Setup::on_s3(&broker, &s3.endpoint, "scale", "scale");
    create_topics(&setup, 6);
    let fast = [("OPSLAKE_PROCESSOR__INTERVAL", "1s")];
    let mut ingest: Vec<Opslake> = (0..3).map(|_| setup.spawn("ingest", &fast)).collect();
    let mut process: Vec<Opslake> = (0..2).map(|_| setup.spawn("process", &fast)).collect();
    let serve_a = setup.spawn("serve", &[]);
    let serve_b = setup.spawn("serve", &[]);
    let (a, b) = (serve_a.api(), serve_b.api());

    let (msgs, exact) = events(3, 200, 50);
    let n = msgs.len() * 50;
    let p = TestProducer::new(&setup.brokers);
    let topic = setup.topic("metrics");
    send_all(&p, &topic, &msgs[..100]);
    wait_for(
        "the first half in the lake",
        Duration::from_secs(120),
        || (a.count("SELECT count(*) FROM metrics") >= 2000).then_some(()),
    );
    // kill -9 one ingest instance and one processor in the middle of the run.
    ingest[0].kill();
    process[0].kill();
    // As an orchestrator would, start a replacement ingest instance: its join makes the group
    // rebalance among the live members (Tansu 0.6 can leave a killed member's partitions
    // assigned to it until the group rebalances; Kafka evicts it after the session timeout).
    ingest.push(setup.spawn("ingest", &fast));
    send_all(&p, &topic, &msgs[100..]);

    wait_for("every event in the lake", Duration::from_secs(180), || {
        (a.count("SELECT count(*) FROM metrics") as usize == n).then_some(())
    });
    a.wait_for_rollups_of(n);
    check_lake(&a, n, &exact);
    // Stateless query servers give the same answers.
    for q in [
        "SELECT service, count(*), sum(value) FROM metrics GROUP BY service ORDER BY service",
        "SELECT service, sum(count), round(quantile_merge(sketch, 0.99), 6) FROM metric_rollups_1h GROUP BY service ORDER BY service",
    ] {
        assert_same_answers(&a.rows(q), &b.rows(q), q);
    }
    // The surviving processor takes over every job once the killed one's heartbeat lapses
    // (5 s with a 1 s interval); the data above may be complete before that.
    wait_for(
        "the survivor to run every job",
        Duration::from_secs(60),
        || {
            let log = process[1].log();
            let last = log
                .lines()
                .rfind(|l| l.contains("processor jobs assigned"))
                .unwrap_or_default()
                .to_string();
            last.contains(r#"["metrics", "logs", "costs", "capacity", "alerts"]"#)
                .then_some(())
        },
    );
    drop(ingest);
    drop(process);
}

#[test]
fn an_s3_outage_stops_commits_and_nothing_is_lost_or_doubled() {
    let broker = Broker::start();
    let s3 = S3Server::start();
    s3.endpoint.create_bucket("outage");
    let proxy = Proxy::start(s3.endpoint.port);
    let via_proxy = S3Endpoint { port: proxy.port };
    let setup = Setup::on_s3(&broker, &via_proxy, "outage", "outage");
    create_topics(&setup, 3);
    let opslake = setup.spawn("run", &[("OPSLAKE_PROCESSOR__INTERVAL", "1s")]);
    let api = opslake.api();
    let (msgs, exact) = events(4, 80, 50);
    let n = msgs.len() * 50;
    let p = TestProducer::new(&setup.brokers);
    let topic = setup.topic("metrics");
    send_all(&p, &topic, &msgs[..40]);
    wait_for(
        "the first half in the lake",
        Duration::from_secs(90),
        || (api.count("SELECT count(*) FROM metrics") as usize == n / 2).then_some(()),
    );

    // The object store goes away for 30 s while events keep coming.
    proxy.down();
    send_all(&p, &topic, &msgs[40..]);
    wait_for(
        "readiness to say the lake is unreachable",
        Duration::from_secs(60),
        || (api.get("/readyz").status() == 503).then_some(()),
    );
    let metrics = wait_for(
        "ingest to report the lake unwritable",
        Duration::from_secs(60),
        || {
            let m = api.get("/metrics").text().unwrap();
            m.contains("opslake_ingest_lake_writable 0").then_some(m)
        },
    );
    assert!(
        metrics.contains("opslake_ingest_flush_failures_total"),
        "failed flushes are counted"
    );
    std::thread::sleep(Duration::from_secs(30));
    proxy.up(s3.endpoint.port);

    // It recovers by itself: nothing lost, nothing twice, rollups exact.
    wait_for(
        "every event after the outage",
        Duration::from_secs(180),
        || (api.count("SELECT count(*) FROM metrics") as usize == n).then_some(()),
    );
    wait_for(
        "every event in the rollups",
        Duration::from_secs(120),
        || {
            (api.count("SELECT coalesce(sum(count), 0) FROM metric_rollups_1m") as usize == n)
                .then_some(())
        },
    );
    check_lake(&api, n, &exact);
    let ready = api.get("/readyz");
    assert_eq!(
        ready.status(),
        200,
        "{}\nlog:\n{}",
        ready.text().unwrap_or_default(),
        opslake.log()
    );
}
