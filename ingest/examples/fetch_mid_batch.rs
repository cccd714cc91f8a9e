//! Checks where a broker's fetch starts when asked for an offset inside a record batch:
//! produces N messages in large batches to partition 0 of a new topic, then, for several
//! offsets, assigns a fresh consumer at that offset and prints the first offset it receives.
//! Usage: fetch_mid_batch BROKERS [N]
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::Message;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let brokers = &args[1];
    let n: i64 = args.get(2).map_or(20_000, |s| s.parse().unwrap());
    let topic = format!("midbatch-{}", std::process::id());
    {
        use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
        use rdkafka::client::DefaultClientContext;
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .create()
            .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(admin.create_topics(
            &[NewTopic::new(&topic, 1, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        ))
        .unwrap();
    }
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "200")
        .create()
        .unwrap();
    let payload = vec![b'x'; 200];
    for _ in 0..n {
        loop {
            match producer.send(
                BaseRecord::<(), [u8]>::to(&topic)
                    .partition(0)
                    .payload(&payload),
            ) {
                Ok(()) => break,
                Err(_) => {
                    producer.poll(Duration::from_millis(10));
                }
            }
        }
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    for start in [0, 1, n / 3 + 7, n / 2 + 1, n - 5] {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", "midbatch")
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&topic, 0, Offset::Offset(start))
            .unwrap();
        c.assign(&tpl).unwrap();
        let first = loop {
            if let Some(Ok(m)) = c.poll(Duration::from_secs(1)) {
                break m.offset();
            }
        };
        println!("asked for {start}: first message at {first}");
    }
}
