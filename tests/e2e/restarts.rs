//! Ingest resumes after every crash: `kill -9` at random moments with immediate restarts, of
//! the all-in-one `opslake run` and of one of two `opslake ingest` instances, never leaves
//! partitions stranded; and a member that stops consuming without leaving its group loses its
//! partitions to the others, with readiness and a metric saying so while it lasts.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use crate::support::{create_topics, wait_for, Api, Broker, Opslake, Setup, TestProducer};

/// The tests' session timeout (`Setup`'s `OPSLAKE_INGEST__SESSION_TIMEOUT`).
const SESSION_TIMEOUT: Duration = Duration::from_secs(6);

/// What a load sent.
struct Sent {
    events: u64,
    refused: u64,
}

/// Sends `messages` metric messages, each an array of 4 events, about `rate` a second; every
/// 50th array holds one event with a bad value (a dead letter). Every good event has its own
/// value.
fn send_load(
    setup: &Setup,
    messages: u64,
    rate: u64,
    done: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Sent> {
    let brokers = setup.brokers.clone();
    let topic = setup.topic("metrics");
    std::thread::spawn(move || {
        let p = TestProducer::new(&brokers);
        let started = Instant::now();
        let mut sent = Sent {
            events: 0,
            refused: 0,
        };
        for i in 0..messages {
            let ts = 1_763_805_600_000i64 + i as i64;
            let events: Vec<serde_json::Value> = (0..4)
                .map(|j| {
                    if i % 50 == 0 && j == 3 {
                        sent.refused += 1;
                        serde_json::json!({"timestamp": ts, "service": "s", "name": "n", "value": "bad"})
                    } else {
                        sent.events += 1;
                        serde_json::json!({"timestamp": ts, "service": "s", "name": "n", "value": i * 10 + j})
                    }
                })
                .collect();
            let value = serde_json::Value::Array(events).to_string();
            p.send(&topic, Some(&format!("k{}", i % 13)), value.as_bytes());
            let due = Duration::from_secs_f64(i as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        p.flush();
        done.store(true, Ordering::SeqCst);
        sent
    })
}

/// Every event of `sent` in the lake once, and every refused one in `dead_letters` once, within
/// `within`.
fn assert_all_once(api: &Api, sent: &Sent, within: Duration, what: &str) {
    let started = Instant::now();
    wait_for(what, within, || {
        let n = api.count("SELECT count(*) FROM metrics") as u64;
        let d = api.count("SELECT count(*) FROM dead_letters") as u64;
        assert!(
            n <= sent.events,
            "{n} rows for {} events: duplicates",
            sent.events
        );
        assert!(
            d <= sent.refused,
            "{d} dead letters for {} refused",
            sent.refused
        );
        (n == sent.events && d == sent.refused).then_some(())
    });
    eprintln!(
        "{what}: complete {:?} after the last restart",
        started.elapsed()
    );
    assert_eq!(
        api.count("SELECT count(DISTINCT value) FROM metrics") as u64,
        sent.events,
        "an event is missing or doubled"
    );
    assert_eq!(
        api.count(
            "SELECT count(*) FROM (SELECT DISTINCT _topic, _partition, _offset, _index FROM metrics)"
        ) as u64,
        sent.events,
        "two rows share a provenance"
    );
    assert_eq!(
        api.count(
            "SELECT count(*) FROM (SELECT DISTINCT \"offset\", \"partition\" FROM dead_letters)"
        ) as u64,
        sent.refused,
        "a dead letter is doubled"
    );
}

/// Sleeps a random 0.5 to 3 s.
fn a_random_moment(rng: &mut impl Rng) {
    std::thread::sleep(Duration::from_millis(rng.random_range(500..3000)));
}

#[test]
fn run_killed_and_restarted_at_once_resumes_every_time() {
    let broker = Broker::start();
    let lake = tempfile::tempdir().unwrap();
    let setup = Setup::new(&broker, lake.path(), "rerun");
    // Kills come faster than the session timeout, so a consumer group would hold more dead
    // members than there are partitions: the case where Tansu 0.6 hands a new member nothing
    // and never gives it the dead members' partitions (the stall this test reproduces on a
    // group-managed `opslake run`).
    create_topics(&setup, 2);
    let done = Arc::new(AtomicBool::new(false));
    let load = send_load(&setup, 4_000, 300, Arc::clone(&done));
    let mut rng = rand::rngs::StdRng::seed_from_u64(13);
    let mut run = setup.spawn("run", &[]);
    let mut kills = 0;
    while !done.load(Ordering::SeqCst) || kills < 8 {
        a_random_moment(&mut rng);
        run.kill();
        kills += 1;
        run = setup.spawn("run", &[]);
    }
    let sent = load.join().unwrap();
    assert_all_once(
        &run.api(),
        &sent,
        SESSION_TIMEOUT + Duration::from_secs(20),
        &format!("every event after {kills} kills of opslake run"),
    );
    // The events may all be in before the last process has started: its log says how it
    // reads once it is up.
    wait_for(
        "opslake run to say it reads its partitions directly",
        Duration::from_secs(60),
        || run.log().contains("assignment=\"direct\"").then_some(()),
    );
    assert_eq!(run.terminate(), Some(0), "log:\n{}", run.log());
}

#[test]
fn two_ingest_instances_one_killed_repeatedly_the_other_once_resume() {
    let broker = Broker::start();
    let lake = tempfile::tempdir().unwrap();
    let setup = Setup::new(&broker, lake.path(), "reingest");
    create_topics(&setup, 4);
    let done = Arc::new(AtomicBool::new(false));
    let load = send_load(&setup, 4_000, 300, Arc::clone(&done));
    // One static member (as a pod named by its StatefulSet would be), one dynamic member.
    let a_id = [("OPSLAKE_INGEST__INSTANCE_ID", "ingest-a")];
    let mut a = setup.spawn("ingest", &a_id);
    let mut b = setup.spawn("ingest", &[]);
    let mut rng = rand::rngs::StdRng::seed_from_u64(21);
    let mut kills = 0;
    while !done.load(Ordering::SeqCst) || kills < 5 {
        a_random_moment(&mut rng);
        a.kill();
        kills += 1;
        a = setup.spawn("ingest", &a_id);
        if kills == 2 {
            b.kill();
            b = setup.spawn("ingest", &[]);
        }
    }
    let sent = load.join().unwrap();
    let server = setup.spawn("serve", &[]);
    assert_all_once(
        &server.api(),
        &sent,
        SESSION_TIMEOUT + Duration::from_secs(20),
        &format!("every event after {kills} kills of one ingest instance and one of the other"),
    );
    for (name, p) in [("a", &mut a), ("b", &mut b)] {
        assert_eq!(p.terminate(), Some(0), "{name}'s log:\n{}", p.log());
    }
}

/// The value of an unlabelled metric in a Prometheus scrape.
fn metric(api: &Api, name: &str) -> f64 {
    let text = api.get("/metrics").text().unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} not in /metrics:\n{text}"))
}

#[test]
fn a_member_that_stops_consuming_loses_its_partitions_and_readiness_says_so() {
    let broker = Broker::start();
    let lake = tempfile::tempdir().unwrap();
    let setup = Setup::new(&broker, lake.path(), "stall");
    create_topics(&setup, 4);
    let mut a = setup.spawn_listening("ingest", &[]);
    let b = setup.spawn_listening("ingest", &[]);
    let b_api = b.api();
    let assigned = |p: &Opslake| {
        p.log()
            .lines()
            .rfind(|l| l.contains("partitions assigned"))
            .is_some_and(|l| l.contains("stall.metrics"))
    };
    wait_for(
        "both members to hold partitions",
        Duration::from_secs(60),
        || (assigned(&a) && assigned(&b)).then_some(()),
    );
    assert_eq!(b_api.get("/readyz").status(), 200);

    // A stops consuming without leaving the group; its heartbeats stop too.
    let pid = a.child.id().to_string();
    let signal = |sig: &str| {
        assert!(std::process::Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap()
            .success());
    };
    signal("-STOP");
    let done = Arc::new(AtomicBool::new(false));
    let load = send_load(&setup, 2_000, 500, Arc::clone(&done));

    // While A's partitions are stalled, B's readiness and metric say so.
    let (body, gauge) = wait_for(
        "readiness to report the stalled partitions",
        SESSION_TIMEOUT * 3,
        || {
            let r = b_api.get("/readyz");
            (r.status() == 503).then(|| {
                let body: serde_json::Value = r.json().unwrap();
                (body, metric(&b_api, "opslake_ingest_stalled_partitions"))
            })
        },
    );
    let reason = body["partitions"].as_str().unwrap_or_default().to_string();
    assert!(reason.contains("stalled partitions"), "{body}");
    assert!(reason.contains("stall.metrics/"), "{body}");
    assert!(gauge >= 1.0, "the gauge reports the stall: {gauge}");

    // B rejoins the group and takes them: everything arrives, and the report clears.
    let sent = load.join().unwrap();
    let server = setup.spawn("serve", &[]);
    assert_all_once(
        &server.api(),
        &sent,
        SESSION_TIMEOUT + Duration::from_secs(40),
        "every event with one member stopped",
    );
    wait_for("readiness to recover", SESSION_TIMEOUT * 3, || {
        (b_api.get("/readyz").status() == 200).then_some(())
    });
    assert_eq!(metric(&b_api, "opslake_ingest_stalled_partitions"), 0.0);
    assert!(metric(&b_api, "opslake_ingest_group_rejoins_total") >= 1.0);
    assert!(
        b.log().contains("rejoining the consumer group"),
        "B logs why it rejoined"
    );
    // A wakes up to a group that moved on; nothing it held is read twice.
    signal("-CONT");
    assert_eq!(a.terminate(), Some(0), "log:\n{}", a.log());
    assert_all_once(
        &server.api(),
        &sent,
        Duration::from_secs(10),
        "nothing doubled",
    );
}
