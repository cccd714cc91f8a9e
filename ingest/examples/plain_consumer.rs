//! The benchmark's peer: a plain rdkafka consumer with opslake's librdkafka settings that reads
//! a topic from the earliest offset and discards every message. Its rate is the broker's limit
//! on this machine.
//!
//! `cargo run --release --example plain_consumer -- BROKERS TOPIC MESSAGES [SESSION_TIMEOUT_MS]`

use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::Message;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (brokers, topic, expected, session_timeout) = match args.as_slice() {
        [_, b, t, e] => (b, t, e, "10000"),
        [_, b, t, e, s] => (b, t, e, s.as_str()),
        _ => {
            eprintln!("usage: plain_consumer BROKERS TOPIC MESSAGES [SESSION_TIMEOUT_MS]");
            std::process::exit(2);
        }
    };
    let expected: u64 = expected.parse().expect("MESSAGES is a number");
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("plain-consumer-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", session_timeout)
        .set("queued.min.messages", "500000")
        .set("queued.max.messages.kbytes", "262144")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let started = Instant::now();
    let mut first: Option<Instant> = None;
    let mut n = 0u64;
    let mut bytes = 0u64;
    while n < expected {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            first.get_or_insert_with(Instant::now);
            bytes += m.payload().map_or(0, |p| p.len() as u64);
            n += 1;
        }
        if started.elapsed() > Duration::from_secs(600) {
            break;
        }
    }
    let total = started.elapsed().as_secs_f64();
    let reading = first.map_or(total, |f| f.elapsed().as_secs_f64());
    println!("{{\"messages\": {n}, \"bytes\": {bytes}, \"seconds\": {total:.3}, \"seconds_after_first_message\": {reading:.3}}}");
}
