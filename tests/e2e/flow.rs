//! `causeway flow` and `causeway flows` on a real SQLite file written through the store:
//! JSON output parsed and checked, every format, and clear failures for unknown IDs,
//! missing files and files without the schema.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output};

use causeway_storage::testsuite;
use causeway_storage::{
    EncodedSpans, Messaging, SpanId, SpanKind, SpanLink, SpanRecord, StatusCode, Store, TraceId,
};
use serde_json::Value;

use causeway_tui::data::Reader;
use causeway_tui::state::{Loaded, Request};

use crate::harness::{causeway_bin, temp_dir};

pub(crate) const MS: i64 = 1_000_000;

pub(crate) use causeway_storage::now_ns;

pub(crate) fn span(
    trace: u8,
    id: u8,
    service: &str,
    name: &str,
    start: i64,
    end: i64,
) -> SpanRecord {
    testsuite::span(TraceId([trace; 16]), SpanId([id; 8]))
        .name(name)
        .service(service)
        .scope("e2e")
        .times(start, end)
        .build()
}

pub(crate) fn messaging(
    correlation: &str,
    topic: &str,
    message: &str,
    group: Option<&str>,
) -> Messaging {
    Messaging {
        correlation_id: Some(correlation.to_owned()),
        message_id: Some(message.to_owned()),
        event_type: Some("order.placed.v1".to_owned()),
        destination: Some(topic.to_owned()),
        consumer_group: group.map(str::to_owned),
        operation_type: Some(if group.is_some() { "process" } else { "send" }.to_owned()),
        ..Messaging::default()
    }
}

/// ord-7: order-service sends to `orders`; billing processes it as a child with a link;
/// shipping processes it in a new trace that lost `traceparent`, and fails. `audit`
/// subscribes to `orders` (learnt from ord-6) but never processed ord-7's message.
/// ord-6 is older and clean.
fn spans(base: i64) -> Vec<SpanRecord> {
    let mut send = span(7, 1, "order-service", "send orders", base, base + 2 * MS);
    send.kind = SpanKind::Producer;
    send.messaging = messaging("ord-7", "orders", "m7", None);
    let mut billing = span(
        7,
        2,
        "billing",
        "process orders",
        base + 5 * MS,
        base + 9 * MS,
    );
    billing.kind = SpanKind::Consumer;
    billing.parent_span_id = Some(SpanId([1; 8]));
    billing.links.push(SpanLink {
        trace_id: TraceId([7; 16]),
        span_id: SpanId([1; 8]),
        attributes: Default::default(),
    });
    billing.messaging = messaging("ord-7", "orders", "m7", Some("billing"));
    let mut inner = span(7, 3, "billing", "charge card", base + 6 * MS, base + 8 * MS);
    inner.parent_span_id = Some(SpanId([2; 8]));
    inner
        .attributes
        .insert("payment.method".to_owned(), Value::from("card"));
    let mut shipping = span(
        8,
        4,
        "shipping\u{1b}[31m",
        "process orders",
        base + 10 * MS,
        base + 20 * MS,
    );
    shipping.kind = SpanKind::Consumer;
    shipping.status_code = StatusCode::Error;
    shipping.status_message = "no address".to_owned();
    shipping.messaging = messaging("ord-7", "orders", "m7", Some("shipping"));

    let old = base - 60_000 * MS;
    let mut old_send = span(6, 5, "order-service", "send orders", old, old + MS);
    old_send.kind = SpanKind::Producer;
    old_send.messaging = messaging("ord-6", "orders", "m6", None);
    let mut old_audit = span(6, 6, "audit", "process orders", old + 2 * MS, old + 3 * MS);
    old_audit.kind = SpanKind::Consumer;
    old_audit.parent_span_id = Some(SpanId([5; 8]));
    old_audit.messaging = messaging("ord-6", "orders", "m6", Some("audit"));
    vec![send, billing, inner, shipping, old_send, old_audit]
}

fn write_store(path: &Path) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let store = Store::open(path).await.expect("open store");
        let batch = EncodedSpans::encode(&spans(now_ns() - 1_000 * MS));
        store.write_spans(vec![batch]).await.expect("write spans");
        store.close().await;
    });
}

pub(crate) fn causeway(db: &Path, args: &[&str]) -> Output {
    Command::new(causeway_bin())
        .arg("--db")
        .arg(db)
        .args(args)
        .output()
        .expect("run causeway")
}

pub(crate) fn json_of(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "exit {:?}, stderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("stdout is one json document")
}

#[test]
fn flow_json_stitches_traces_and_names_what_went_wrong() {
    let dir = temp_dir();
    let db = dir.path().join("causeway.db");
    write_store(&db);
    let flow = json_of(&causeway(&db, &["flow", "ord-7", "--format", "json"]));
    assert_eq!(flow["schema"], "causeway.flow.v1");
    assert_eq!(flow["correlation_ids"], serde_json::json!(["ord-7"]));
    assert_eq!(
        flow["trace_ids"].as_array().map(Vec::len),
        Some(2),
        "{flow:#}"
    );
    assert_eq!(
        flow["steps"].as_array().map(Vec::len),
        Some(4),
        "the uncorrelated child span of trace 7 is included: {flow:#}"
    );
    assert_eq!(flow["status"], "error");
    let verdicts: Vec<(String, String)> = flow["verdicts"]
        .as_array()
        .expect("verdicts")
        .iter()
        .map(|v| {
            (
                v["consumer_group"].as_str().unwrap_or_default().to_owned(),
                v["outcome"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let expected = [
        ("audit", "not_seen_yet"),
        ("billing", "processed"),
        ("shipping", "failed"),
    ]
    .map(|(g, o)| (g.to_owned(), o.to_owned()));
    assert_eq!(verdicts, expected);
    let kinds: Vec<&str> = flow["anomalies"]
        .as_array()
        .expect("anomalies")
        .iter()
        .filter_map(|a| a["kind"].as_str())
        .collect();
    for kind in ["error", "propagation_break", "missing"] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }

    // The same flow by trace ID.
    let by_trace = json_of(&causeway(
        &db,
        &["flow", &"08".repeat(16), "--format", "json"],
    ));
    assert_eq!(by_trace["correlation_ids"], flow["correlation_ids"]);
    assert_eq!(by_trace["steps"], flow["steps"]);
}

/// The dashboard opens the flow `causeway flow ID` prints, for a correlation ID and for
/// each trace ID of it: the real binary against the dashboard's own reader on one file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_and_the_dashboard_open_the_same_flow_for_every_id() {
    let dir = temp_dir();
    let db = dir.path().join("causeway.db");
    let store = Store::open(&db).await.expect("open store");
    store
        .write_spans(vec![EncodedSpans::encode(&spans(now_ns() - 1_000 * MS))])
        .await
        .expect("write spans");
    store.close().await;
    let mut reader = Reader::new(causeway_tui::open_store(&db).await.expect("read-only open"));
    let ids = ["ord-7".to_owned(), "07".repeat(16), "08".repeat(16)];
    for id in &ids {
        let cli = json_of(&causeway(&db, &["flow", id, "--format", "json"]));
        let request = match id.parse::<TraceId>() {
            Ok(trace_id) => Request::Trace { trace_id },
            Err(_) => Request::Flow { id: id.clone() },
        };
        let Loaded::Flow(opened) = reader.answer(request).await else {
            panic!("the dashboard did not open {id}");
        };
        let dashboard: Value =
            serde_json::from_str(&causeway_flow::render::json(&opened.flow)).expect("json");
        assert_eq!(cli, dashboard, "{id}: the CLI and the dashboard disagree");
        assert_eq!(
            cli["steps"].as_array().map(Vec::len),
            Some(4),
            "{id} opens all of ord-7"
        );
    }
}

#[test]
fn flow_renders_text_dot_and_mermaid_without_escapes() {
    let dir = temp_dir();
    let db = dir.path().join("causeway.db");
    write_store(&db);
    for (format, start) in [
        ("text", "flow ord-7"),
        ("dot", "digraph flow {"),
        ("mermaid", "flowchart LR"),
    ] {
        let output = causeway(&db, &["flow", "ord-7", "--format", format]);
        assert!(output.status.success(), "{format}: {:?}", output);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(stdout.starts_with(start), "{format}: {stdout}");
        assert!(
            !stdout.contains('\u{1b}'),
            "{format} leaks an escape: {stdout:?}"
        );
    }
}

#[test]
fn unknown_ids_missing_files_and_empty_files_fail_clearly() {
    let dir = temp_dir();
    let db = dir.path().join("causeway.db");
    write_store(&db);
    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, b"").expect("empty file");
    let missing = dir.path().join("missing.db");
    let cases = [
        (&db, vec!["flow", "ord-404"], "no spans found for ord-404"),
        (&missing, vec!["flow", "ord-7"], "does not exist"),
        (&empty, vec!["flow", "ord-7"], "no causeway schema"),
        (&missing, vec!["flows"], "does not exist"),
        (
            &empty,
            vec!["flows", "--format", "json"],
            "no causeway schema",
        ),
    ];
    for (path, args, message) in cases {
        let output = causeway(path, &args);
        assert!(!output.status.success(), "{args:?} must fail");
        assert!(
            output.stdout.is_empty(),
            "{args:?} prints nothing on stdout"
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
    assert!(
        !missing.exists(),
        "a read-only command never creates the database"
    );
}

#[test]
fn a_locked_database_fails_with_a_clear_message() {
    let dir = temp_dir();
    let db = dir.path().join("causeway.db");
    write_store(&db);
    // Another process holding an exclusive lock keeps even WAL readers out.
    let locker = rusqlite::Connection::open(&db).expect("open for locking");
    locker
        .execute_batch("PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE;")
        .expect("take the exclusive lock");
    for args in [vec!["flow", "ord-7"], vec!["flows", "--format", "json"]] {
        let output = causeway(&db, &args);
        assert!(!output.status.success(), "{args:?} must fail while locked");
        assert!(
            output.stdout.is_empty(),
            "{args:?} prints nothing on stdout"
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("database is locked"), "{args:?}: {stderr}");
        assert!(
            !stderr.contains("WARN"),
            "{args:?} prints no log noise: {stderr}"
        );
    }
    drop(locker);
    let output = causeway(&db, &["flow", "ord-7", "--format", "json"]);
    assert!(output.status.success(), "works again once the lock is gone");
}

#[test]
fn flows_lists_newest_first_and_filters() {
    let dir = temp_dir();
    let db = dir.path().join("causeway.db");
    write_store(&db);
    let ids = |args: &[&str]| -> Vec<String> {
        let mut full = vec!["flows", "--format", "json"];
        full.extend_from_slice(args);
        let list = json_of(&causeway(&db, &full));
        assert_eq!(list["schema"], "causeway.flows.v1");
        list["flows"]
            .as_array()
            .expect("flows")
            .iter()
            .filter_map(|f| f["correlation_id"].as_str().map(str::to_owned))
            .collect()
    };
    let cases: [(&[&str], &[&str], &str); 7] = [
        (&[], &["ord-7", "ord-6"], "newest first"),
        (&["--errors"], &["ord-7"], "only the failed flow"),
        (
            &["--service", "audit"],
            &["ord-6"],
            "only flows audit took part in",
        ),
        (
            &["--since", "10s"],
            &["ord-7"],
            "ord-6 started a minute ago",
        ),
        (
            &["--where", "payment.method=card"],
            &["ord-7"],
            "an attribute of an uncorrelated child",
        ),
        (
            &["--event-type", "order.*"],
            &["ord-7", "ord-6"],
            "a pattern on event types",
        ),
        (&["--limit", "1"], &["ord-7"], "the limit"),
    ];
    for (args, expected, reason) in cases {
        assert_eq!(ids(args), expected, "{reason}");
    }
    let table = causeway(&db, &["flows"]);
    assert!(table.status.success());
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.starts_with("START"), "{text}");
    assert!(text.contains("error:1"), "anomaly counts per kind: {text}");
}

/// A flow made by the real instrumentation over the real broker and collector: an order
/// sent to `orders`, processed by `billing` (fails once, then succeeds on retry) and by
/// `shipping`; `causeway flow` must give both verdicts and the link edge.
pub(crate) mod real_broker {
    use std::time::Duration;

    use causeway_instrumentation::{
        MessageMeta, Pipeline, PipelineGuard, Protocol, RetryPolicy, TracedConsumer, TracedProducer,
    };
    use causeway_storage::Store;
    use opentelemetry::Context;
    use rdkafka::consumer::{Consumer, StreamConsumer};
    use rdkafka::producer::FutureProducer;
    use serde_json::Value;

    use super::{causeway, json_of};
    use crate::harness::{Broker, CollectorProcess, temp_dir};

    const DEADLINE: Duration = Duration::from_secs(60);

    /// An OTLP/gRPC pipeline for `service` to `collector`, flushing every 100 ms.
    pub(crate) fn pipeline(collector: &CollectorProcess, service: &str) -> PipelineGuard {
        Pipeline::builder()
            .endpoint(collector.grpc_endpoint())
            .protocol(Protocol::Grpc)
            .service_name(service)
            .batch_delay(Duration::from_millis(100))
            .build()
            .expect("the pipeline builds")
    }

    fn consumer(broker: &Broker, group: &str) -> StreamConsumer {
        let consumer: StreamConsumer = broker
            .client_config()
            .set("group.id", group)
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "6000")
            .create()
            .expect("a consumer");
        consumer.subscribe(&["orders"]).expect("subscribe");
        consumer
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn flow_of_a_real_retried_order_has_verdicts_for_both_groups() {
        let dir = temp_dir();
        let db = dir.path().join("causeway.db");
        let broker = Broker::start();
        broker.create_topic("orders", 1);
        let collector = CollectorProcess::start_with_args(
            &db,
            &[
                "collector",
                "--otlp-grpc",
                "127.0.0.1:0",
                "--otlp-http",
                "127.0.0.1:0",
                "--metrics",
                "127.0.0.1:0",
            ],
        );
        let guards = [
            pipeline(&collector, "order-service"),
            pipeline(&collector, "billing-service"),
            pipeline(&collector, "shipping-service"),
        ];
        let mut tasks = Vec::new();
        for (group, guard) in [("billing", &guards[1]), ("shipping", &guards[2])] {
            let kafka = consumer(&broker, group);
            let traced = TracedConsumer::with_tracer(group, guard.tracer());
            let retry = RetryPolicy {
                max_retries: 2,
                backoff: Duration::from_millis(20),
            };
            let fail_first = group == "billing";
            tasks.push(tokio::spawn(async move {
                let message = kafka.recv().await.expect("a message");
                let mut failed = false;
                let _ = traced
                    .process(&message, retry, |_processing| {
                        let fail = fail_first && !failed;
                        failed |= fail;
                        async move {
                            if fail {
                                Err(std::io::Error::other("card declined"))
                            } else {
                                Ok(())
                            }
                        }
                    })
                    .await;
            }));
        }
        let kafka_producer: FutureProducer = broker.producer_config().create().expect("a producer");
        let producer = TracedProducer::with_tracer(kafka_producer, guards[0].tracer())
            .with_source("order-service");
        let meta = MessageMeta::new("orders")
            .with_key("ord-real")
            .with_event_type("order.placed.v1")
            .with_correlation_id("ord-real");
        producer
            .send(meta, b"{}", &Context::new())
            .await
            .expect("the order is sent");
        tokio::time::timeout(DEADLINE, async {
            for task in tasks {
                task.await.expect("the consumer ran");
            }
        })
        .await
        .expect("both groups processed the order in time");
        for guard in guards {
            guard.shutdown().await.expect("the pipeline flushes");
        }

        // Wait (with a deadline) until the send and both groups' processing are stored.
        let deadline = std::time::Instant::now() + DEADLINE;
        loop {
            let stored = match Store::open_read_only(&db).await {
                Ok(store) => store
                    .flow_spans(&["ord-real".to_owned()], 100)
                    .await
                    .unwrap_or_default(),
                Err(_) => Vec::new(),
            };
            let groups: std::collections::BTreeSet<_> = stored
                .iter()
                .filter_map(|s| s.messaging.consumer_group.clone())
                .collect();
            if groups.len() == 2 && stored.iter().any(|s| s.name == "send orders") {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "spans never reached the store: {stored:#?}\n{}",
                collector.stderr()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        let flow = json_of(&causeway(&db, &["flow", "ord-real", "--format", "json"]));
        let outcome = |group: &str| -> Value {
            flow["verdicts"]
                .as_array()
                .and_then(|all| all.iter().find(|v| v["consumer_group"] == group))
                .map(|v| v["outcome"].clone())
                .unwrap_or(Value::Null)
        };
        assert_eq!(outcome("billing"), "retried_then_processed", "{flow:#}");
        assert_eq!(outcome("shipping"), "processed", "{flow:#}");
        assert_eq!(flow["events"].as_array().map(Vec::len), Some(1), "{flow:#}");
        // Our process spans are children of the send and link to it too: one edge each.
        let edges = flow["edges"].as_array().expect("edges");
        let steps = flow["steps"].as_array().expect("steps");
        for (index, step) in steps.iter().enumerate() {
            if step["role"] != "process" {
                continue;
            }
            let into: Vec<&Value> = edges.iter().filter(|e| e["to"] == index).collect();
            assert_eq!(
                into.len(),
                1,
                "step {index} is tied to its send once: {into:?}"
            );
            assert_eq!(into[0]["kind"], "parent", "{into:?}");
        }
        let hops = flow["hops"].as_array().expect("hops");
        assert!(
            hops.iter().all(|h| h["queue_wait_ns"].is_i64()),
            "queue wait measured on every hop: {flow:#}"
        );
    }
}
