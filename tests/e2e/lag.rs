//! Consumer lag against a real broker: the poller's lag equals the offsets the test
//! committed, and a stalled, a rewound and a stopped group are named as such, with alerts
//! that fire (naming the oldest waiting event) and resolve.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::time::Duration;

use causeway_collector::lag::config::{LagConfig, RawRule};
use causeway_collector::lag::service::LagService;
use causeway_conventions::LagState;
use causeway_conventions::alert::annotation;
use causeway_storage::{EncodedSpans, LagStatusRow, SpanId, SpanRecord, Store, TraceId};
use causeway_storage::{now_ns, testsuite};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use crate::harness::{Broker, causeway_bin, temp_dir, wait_until};

pub(crate) const TOPIC: &str = "orders";
pub(crate) const GROUP: &str = "billing";
const SECOND: i64 = 1_000_000_000;

/// Produces `count` records to `partition`, one record per batch (tansu 0.6 counts
/// batches in its high watermark).
pub(crate) fn produce(broker: &Broker, partition: i32, count: usize) {
    let producer: BaseProducer = broker.producer_config().create().unwrap();
    for index in 0..count {
        let payload = format!("order {index}");
        producer
            .send(
                BaseRecord::<(), _>::to(TOPIC)
                    .partition(partition)
                    .payload(&payload),
            )
            .map_err(|(e, _)| e)
            .unwrap();
        producer.flush(Duration::from_secs(10)).unwrap();
    }
}

/// A live member of the group, subscribed to the topic and holding its assignment.
pub(crate) fn member(broker: &Broker) -> BaseConsumer {
    let consumer: BaseConsumer = broker
        .client_config()
        .set("group.id", GROUP)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .create()
        .unwrap();
    consumer.subscribe(&[TOPIC]).unwrap();
    let assigned = wait_until(Duration::from_secs(30), || {
        let _ = consumer.poll(Duration::from_millis(100));
        consumer.assignment().is_ok_and(|a| a.count() == 2)
    });
    assert!(assigned, "the member never got both partitions");
    consumer
}

/// Consumes a few records, then commits exactly `offsets` (partition → next offset).
pub(crate) fn commit(consumer: &BaseConsumer, offsets: &[(i32, i64)]) {
    let mut list = TopicPartitionList::new();
    for (partition, offset) in offsets {
        list.add_partition_offset(TOPIC, *partition, Offset::Offset(*offset))
            .unwrap();
    }
    consumer.commit(&list, CommitMode::Sync).unwrap();
}

fn status(rows: &[LagStatusRow], partition: i32) -> &LagStatusRow {
    rows.iter()
        .find(|r| r.consumer_group == GROUP && r.topic == TOPIC && r.partition == partition)
        .unwrap_or_else(|| panic!("no status for partition {partition}: {rows:?}"))
}

/// The producer's send span of the message at `offset` on partition 0.
fn send_span(offset: i64, correlation_id: &str) -> SpanRecord {
    testsuite::span(TraceId([7; 16]), SpanId([offset as u8 + 1; 8]))
        .send(TOPIC)
        .service("orders")
        .times(1, 2)
        .correlation(correlation_id)
        .partition(0)
        .offset(offset)
        .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poller_lag_matches_commits_and_states_follow_the_group() {
    let broker = Broker::start();
    broker.create_topic(TOPIC, 2);
    produce(&broker, 0, 10);
    produce(&broker, 1, 4);

    let dir = temp_dir();
    let store = Store::open(&dir.path().join("lag.db")).await.unwrap();
    store
        .write_spans(vec![EncodedSpans::encode(&[
            send_span(2, "ord-1041"),
            send_span(3, "ord-1042"),
        ])])
        .await
        .unwrap();
    let config = LagConfig {
        interval: Some("10s".into()),
        group_topics: BTreeMap::from([(GROUP.to_owned(), vec![TOPIC.to_owned()])]),
        rules: vec![RawRule {
            name: Some("billing-behind".into()),
            group: Some(GROUP.into()),
            window: Some("30s".into()),
            min_samples: Some(3),
            resolve_after: Some("0s".into()),
            ..RawRule::default()
        }],
        ..LagConfig::default()
    };
    let mut service = LagService::new(
        store.clone(),
        config.validate().unwrap(),
        Some(&broker.bootstrap()),
    )
    .unwrap();
    // Samples are stamped with a clock the test moves 10 s a cycle, so windows fill at once;
    // every offset and watermark is the broker's.
    let start = now_ns();
    let mut tick = 0;
    let mut cycle = async |service: &mut LagService| {
        tick += 1;
        service.cycle(start + tick * 10 * SECOND).await.unwrap();
        store.lag_status().await.unwrap()
    };

    // No commits yet: the lag is unknown, never 0.
    let rows = cycle(&mut service).await;
    assert_eq!(status(&rows, 0).lag, None, "{rows:?}");
    assert_eq!(status(&rows, 0).state, LagState::Unknown);

    let consumer = member(&broker);
    commit(&consumer, &[(0, 3), (1, 2)]);
    let rows = cycle(&mut service).await;
    assert_eq!(status(&rows, 0).lag, Some(10 - 3), "partition 0: {rows:?}");
    assert_eq!(status(&rows, 1).lag, Some(4 - 2), "partition 1: {rows:?}");
    assert_eq!(status(&rows, 0).committed_offset, Some(3));
    assert_eq!(status(&rows, 0).high_watermark, Some(10));

    // Alive, committing the same offsets while messages wait: STALL, and the alert fires
    // naming the oldest waiting event (offset 3 on partition 0).
    for _ in 0..3 {
        commit(&consumer, &[(0, 3), (1, 2)]);
        cycle(&mut service).await;
    }
    let rows = store.lag_status().await.unwrap();
    assert_eq!(status(&rows, 0).state, LagState::Stall, "{rows:?}");
    // The record at offset 3 was read: its age is measured from its timestamp (written
    // before the test clock's start, 50 s of test time ago), not interpolated from the
    // watermark history (which starts 40 s ago and would give "at least 40 s").
    let age = status(&rows, 0).time_lag_ms.unwrap();
    assert!(
        (50_000..80_000).contains(&age),
        "measured age {age} ms: {rows:?}"
    );
    let alerts = store.alerts(10).await.unwrap();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].status, "firing");
    assert_eq!(alerts[0].labels["consumer_group"], GROUP);
    let annotations: &BTreeMap<String, String> = &alerts[0].annotations;
    assert_eq!(annotations[annotation::STATE], "STALL");
    assert_eq!(annotations[annotation::WAITING_OFFSET], "3");
    assert_eq!(annotations[annotation::WAITING_CORRELATION_ID], "ord-1042");

    // Rewound below what it had committed: REWIND.
    commit(&consumer, &[(0, 1), (1, 2)]);
    let rows = cycle(&mut service).await;
    assert_eq!(status(&rows, 0).state, LagState::Rewind, "{rows:?}");

    // Caught up on both partitions: OK, and the alert resolves.
    commit(&consumer, &[(0, 10), (1, 4)]);
    let rows = cycle(&mut service).await;
    assert_eq!(status(&rows, 0).state, LagState::Ok, "{rows:?}");
    assert_eq!(status(&rows, 0).lag, Some(0));
    let alerts = store.alerts(10).await.unwrap();
    assert_eq!(alerts[0].status, "resolved", "{alerts:?}");
    assert!(alerts[0].ends_ns.is_some());

    // The member leaves while new messages wait: STOP.
    drop(consumer);
    produce(&broker, 0, 2);
    // Four cycles: the 30 s window must no longer reach the caught-up sample.
    for _ in 0..4 {
        cycle(&mut service).await;
    }
    let rows = store.lag_status().await.unwrap();
    assert_eq!(status(&rows, 0).lag, Some(2), "{rows:?}");
    assert_eq!(status(&rows, 0).state, LagState::Stop, "{rows:?}");
    let alerts = store.alerts(10).await.unwrap();
    assert_eq!(alerts[0].status, "firing", "a new episode: {alerts:?}");
    assert_eq!(alerts[0].annotations[annotation::STATE], "STOP");
    // Episodes, newest first: STOP firing; a short REWIND episode while the rewind was
    // still inside the window after the member left; the STALL episode, resolved.
    let episodes: Vec<(&str, &str)> = alerts
        .iter()
        .map(|a| (a.status.as_str(), a.annotations[annotation::STATE].as_str()))
        .collect();
    assert_eq!(
        episodes,
        vec![
            ("firing", "STOP"),
            ("resolved", "REWIND"),
            ("resolved", "STALL")
        ],
        "{alerts:?}"
    );
    assert!(
        alerts
            .iter()
            .all(|a| a.fingerprint == alerts[0].fingerprint)
    );

    // The commands read the same store, read-only, while it is open for writing.
    let lag = run_causeway(&["lag", "--format", "json"], sqlite_path(&store));
    assert!(lag.status.success(), "{lag:?}");
    let document: serde_json::Value = serde_json::from_slice(&lag.stdout).unwrap();
    assert_eq!(document["groups"][0]["consumer_group"], GROUP);
    assert_eq!(document["groups"][0]["state"], "STOP");
    assert_eq!(document["groups"][0]["lag"], 2);
    assert_eq!(document["partitions"][0]["lag"], 2);
    let table = run_causeway(&["lag"], sqlite_path(&store));
    let text = String::from_utf8(table.stdout).unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with("billing") && l.contains("STOP")),
        "{text}"
    );
    let alerts = run_causeway(&["alerts", "--format", "json"], sqlite_path(&store));
    let document: serde_json::Value = serde_json::from_slice(&alerts.stdout).unwrap();
    assert_eq!(document["alerts"][0]["status"], "firing");
    assert_eq!(document["alerts"].as_array().unwrap().len(), 3);
    let table = String::from_utf8(run_causeway(&["alerts"], sqlite_path(&store)).stdout).unwrap();
    assert!(table.starts_with("FIRING"), "{table}");
    assert!(table.contains("consumer_group=billing"), "{table}");
}

fn run_causeway(args: &[&str], db: &std::path::Path) -> std::process::Output {
    std::process::Command::new(causeway_bin())
        .args(args)
        .arg("--db")
        .arg(db)
        .output()
        .unwrap()
}

#[tokio::test]
async fn lag_and_alerts_commands_refuse_missing_and_empty_databases() {
    let dir = temp_dir();
    let missing = dir.path().join("missing.db");
    for command in ["lag", "alerts"] {
        let output = run_causeway(&[command, "--format", "json"], &missing);
        assert!(!output.status.success(), "{command} on a missing db");
        assert!(output.stdout.is_empty(), "nothing on stdout: {output:?}");
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert!(stderr.contains("does not exist"), "{command}: {stderr}");
    }
    let empty = dir.path().join("empty.db");
    Store::open(&empty).await.unwrap().close().await;
    let output = run_causeway(&["lag"], &empty);
    assert!(!output.status.success());
    assert!(
        String::from_utf8(output.stderr)
            .unwrap()
            .contains("no consumer lag")
    );
    let output = run_causeway(&["alerts", "--format", "json"], &empty);
    assert!(
        output.status.success(),
        "no alerts is a valid answer: {output:?}"
    );
    let document: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(document["alerts"], serde_json::json!([]));
}

/// An OTLP metrics export with one `kafka.consumer_group.lag` and one
/// `kafka.consumer_group.offset` point for `group` on orders/0.
fn lag_export(
    group: &str,
    lag: i64,
    offset: i64,
) -> opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest {
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    use opentelemetry_proto::tonic::metrics::v1::{
        Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric, number_data_point,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;
    let text = |key: &str, value: &str| KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..KeyValue::default()
    };
    let point = |value| NumberDataPoint {
        attributes: vec![
            text("group", group),
            text("topic", TOPIC),
            KeyValue {
                key: "partition".into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::IntValue(0)),
                }),
                ..KeyValue::default()
            },
        ],
        time_unix_nano: now_ns() as u64,
        value: Some(number_data_point::Value::AsInt(value)),
        ..NumberDataPoint::default()
    };
    let gauge = |name: &str, value| Metric {
        name: name.into(),
        data: Some(metric::Data::Gauge(Gauge {
            data_points: vec![point(value)],
        })),
        ..Metric::default()
    };
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![text("service.name", group)],
                ..Resource::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![
                    gauge("kafka.consumer_group.lag", lag),
                    gauge("kafka.consumer_group.offset", offset),
                ],
                ..ScopeMetrics::default()
            }],
            ..ResourceMetrics::default()
        }],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collector_stores_lag_reported_over_otlp_http_and_grpc() {
    use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
    use prost::Message;

    let dir = temp_dir();
    let db = dir.path().join("otlp-lag.db");
    let config = dir.path().join("collector.toml");
    std::fs::write(
        &config,
        "[lag]\ninterval = \"200ms\"\n[[lag.rules]]\nname = \"behind\"\nwarn_messages = 5\n",
    )
    .unwrap();
    let collector =
        crate::harness::CollectorProcess::start(&db, &["--config", config.to_str().unwrap()]);

    // OTLP/HTTP protobuf from one service, OTLP/gRPC from another.
    let response = reqwest::Client::new()
        .post(format!("{}/v1/metrics", collector.http_endpoint()))
        .header("content-type", "application/x-protobuf")
        .body(lag_export("billing", 7, 40).encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let mut client = MetricsServiceClient::connect(collector.grpc_endpoint())
        .await
        .unwrap();
    client.export(lag_export("shipping", 0, 12)).await.unwrap();

    let store = Store::open_read_only(&db).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let rows = loop {
        let rows = store.lag_status().await.unwrap();
        if rows.len() == 2 || std::time::Instant::now() > deadline {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(rows.len(), 2, "both groups evaluated: {rows:?}");
    let billing = rows.iter().find(|r| r.consumer_group == "billing").unwrap();
    assert_eq!(
        (billing.lag, billing.committed_offset),
        (Some(7), Some(40)),
        "{rows:?} {:?}",
        store.lag_samples_since(0).await.unwrap()
    );
    assert_eq!(
        billing.high_watermark,
        Some(47),
        "derived from offset and lag"
    );
    let samples = store.lag_samples_since(0).await.unwrap();
    let sources: Vec<&str> = samples.iter().map(|s| s.source.as_str()).collect();
    assert!(
        sources.contains(&"otlp:billing") && sources.contains(&"otlp:shipping"),
        "{sources:?}"
    );
    // 7 messages over the rule's warn_messages of 5: the alert fires for billing only.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let alerts = loop {
        let alerts = store.alerts(10).await.unwrap();
        if !alerts.is_empty() || std::time::Instant::now() > deadline {
            break alerts;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].labels["consumer_group"], "billing");
    assert_eq!(alerts[0].status, "firing");
}

#[test]
fn collector_refuses_a_bad_rule_by_name() {
    let dir = temp_dir();
    let config = dir.path().join("bad.toml");
    std::fs::write(
        &config,
        "[lag]\n[[lag.rules]]\nname = \"too-eager\"\nwarn_after = \"5 parsecs\"\n",
    )
    .unwrap();
    let output = std::process::Command::new(causeway_bin())
        .args(["collector", "--config"])
        .arg(&config)
        .args(["--otlp-grpc", "127.0.0.1:0", "--otlp-http", "127.0.0.1:0"])
        .arg("--db")
        .arg(dir.path().join("bad.db"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("lag rule too-eager: warn_after"),
        "{stderr}"
    );
}

/// The file of a store the test opened on an SQLite file.
fn sqlite_path(store: &Store) -> &std::path::Path {
    store.path().expect("the test store is an sqlite file")
}
