//! OTLP through Kafka: a third-party producer (Python `confluent-kafka`, records serialised
//! with `opentelemetry-proto`, as an OpenTelemetry Collector's `kafka` exporter writes them)
//! fills a topic on tansu; `causeway collector --otlp-kafka` consumes it. Every span is
//! stored once, malformed records are counted and skipped, and an offset is committed only
//! after its spans are: a collector killed with SIGKILL loses nothing it committed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use causeway_storage::{Database, Store, TraceId};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;

use crate::harness::{Broker, CollectorProcess, python, temp_dir, wait_until};

/// The consumer group the collectors consume OTLP records in.
pub(crate) const GROUP: &str = "causeway-collector";

/// The third-party producer script (`otlp_to_kafka.py`) writing to `topic` with `args`.
pub(crate) fn producer_command(broker: &Broker, topic: &str, args: &[&str]) -> Command {
    let mut command = Command::new(python());
    command
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/otlp_to_kafka.py"))
        .args(["--bootstrap", &broker.bootstrap(), "--topic", topic])
        .args(args);
    command
}

/// The report the producer script printed, once it exited successfully.
pub(crate) fn producer_report(output: &std::process::Output) -> Value {
    assert!(
        output.status.success(),
        "otlp_to_kafka.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the script prints JSON")
}

/// Produces OTLP records with the third-party script and returns its report.
fn produce(broker: &Broker, topic: &str, args: &[&str]) -> Value {
    let output = producer_command(broker, topic, args)
        .output()
        .expect("run otlp_to_kafka.py");
    producer_report(&output)
}

/// Spans stored per trace for the report's records.
pub(crate) async fn stored(db: impl Into<Database>, report: &Value) -> BTreeMap<String, usize> {
    let store = Store::open_read_only(db).await.expect("open read-only");
    let mut found = BTreeMap::new();
    for record in report["records"].as_array().unwrap() {
        let Some(trace) = record["trace_id"].as_str() else {
            continue;
        };
        let trace_id: TraceId = trace.parse().unwrap();
        let spans = store.spans_by_trace(trace_id, 10_000).await.unwrap();
        found.insert(trace.to_owned(), spans.len());
    }
    store.close().await;
    found
}

/// The group's committed offset per partition of `topic` (none when nothing is committed).
pub(crate) fn committed(broker: &Broker, topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
    let consumer: BaseConsumer = broker
        .client_config()
        .set("group.id", GROUP)
        .create()
        .expect("a consumer in the collectors' group");
    let mut list = TopicPartitionList::new();
    for partition in 0..partitions {
        list.add_partition(topic, partition);
    }
    let answer = consumer
        .committed_offsets(list, Duration::from_secs(10))
        .expect("committed offsets");
    answer
        .elements()
        .into_iter()
        .filter_map(|element| match element.offset() {
            Offset::Offset(offset) => Some((element.partition(), offset)),
            _ => None,
        })
        .collect()
}

pub(crate) fn self_metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_are_stored_once_and_malformed_ones_are_skipped() {
    let dir = temp_dir();
    let db = dir.path().join("kafka.db");
    let broker = Broker::start();
    let topic = "otlp_spans";
    let report = produce(
        &broker,
        topic,
        &[
            "--records",
            "12",
            "--spans",
            "25",
            "--json-records",
            "4",
            "--malformed",
            "2",
            "--partitions",
            "2",
        ],
    );
    let collector = CollectorProcess::start(&db, &["--otlp-kafka", &broker.bootstrap()]);
    let expected: usize = report["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["spans"].as_u64())
        .sum::<u64>() as usize;
    let mut found = BTreeMap::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        found = stored(&db, &report).await;
        if found.values().sum::<usize>() == expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for record in report["records"].as_array().unwrap() {
        if let Some(trace) = record["trace_id"].as_str() {
            assert_eq!(
                found.get(trace).copied(),
                record["spans"].as_u64().map(|n| n as usize),
                "record {record} ({} format) stored whole",
                record["format"]
            );
        }
    }
    let metrics = reqwest::get(collector.metrics_url())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        self_metric(&metrics, "causeway_collector_kafka_records_stored_total"),
        16
    );
    assert_eq!(
        self_metric(&metrics, "causeway_collector_kafka_records_invalid_total"),
        2
    );
    // Every record, the malformed ones too, is done: the group has committed past them.
    let ends: BTreeMap<i32, i64> =
        report["records"]
            .as_array()
            .unwrap()
            .iter()
            .fold(BTreeMap::new(), |mut ends, record| {
                let partition = record["partition"].as_i64().unwrap() as i32;
                let next = record["offset"].as_i64().unwrap() + 1;
                let end = ends.entry(partition).or_insert(0);
                *end = (*end).max(next);
                ends
            });
    let settled = wait_until(Duration::from_secs(20), || {
        committed(&broker, topic, 2) == ends
    });
    assert!(
        settled,
        "committed {:?}, expected {ends:?}",
        committed(&broker, topic, 2)
    );
    drop(collector);
    drop(broker);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_collector_loses_nothing_it_committed_and_the_next_one_carries_on() {
    let dir = temp_dir();
    let db = dir.path().join("kill.db");
    let broker = Broker::start();
    let topic = "otlp_spans";
    let report = produce(
        &broker,
        topic,
        &["--records", "150", "--spans", "200", "--partitions", "2"],
    );
    let records = report["records"].as_array().unwrap().clone();
    let total: usize = records
        .iter()
        .map(|r| r["spans"].as_u64().unwrap() as usize)
        .sum();

    let mut first = CollectorProcess::start(&db, &["--otlp-kafka", &broker.bootstrap()]);
    // Kill it under load: once some, not all, records are in.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let count = match Store::open_read_only(&db).await {
            Ok(store) => {
                let count = store.span_count().await.unwrap_or(0);
                store.close().await;
                count
            }
            Err(_) => 0,
        };
        if count > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the collector stored nothing within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.kill();
    let offsets = committed(&broker, topic, 2);
    let found = stored(&db, &report).await;
    for record in &records {
        let partition = record["partition"].as_i64().unwrap() as i32;
        let offset = record["offset"].as_i64().unwrap();
        if offsets.get(&partition).is_some_and(|c| offset < *c) {
            assert_eq!(
                found.get(record["trace_id"].as_str().unwrap()).copied(),
                Some(record["spans"].as_u64().unwrap() as usize),
                "record at {partition}/{offset} was committed (offsets {offsets:?}) but is not stored whole"
            );
        }
    }
    let stored_before: usize = found.values().sum();
    assert!(
        stored_before < total,
        "the kill came after everything was stored"
    );

    // The next collector carries on from the committed offsets: everything, once.
    let _second = CollectorProcess::start(&db, &["--otlp-kafka", &broker.bootstrap()]);
    let mut found = BTreeMap::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while std::time::Instant::now() < deadline {
        found = stored(&db, &report).await;
        if found.values().sum::<usize>() == total {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(
        found.values().sum::<usize>(),
        total,
        "every span stored after the restart"
    );
    let store = Store::open_read_only(&db).await.unwrap();
    assert_eq!(
        store.span_count().await.unwrap(),
        i64::try_from(total).unwrap(),
        "a record read again after the kill is upserted, not duplicated"
    );
    store.close().await;
    drop(broker);
}
