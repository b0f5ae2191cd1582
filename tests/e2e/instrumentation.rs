//! The instrumentation crate end to end: traced producers and consumers on a real broker
//! (tansu), spans exported by the crate's own OTLP pipeline to the real collector, checked in
//! the collector's SQLite file; and headers written by a third-party client (`kcat`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use causeway_conventions::{attribute, event, header};
use causeway_instrumentation::{
    MessageMeta, Pipeline, PipelineGuard, Protocol, RetryPolicy, TracedConsumer, TracedProducer,
};
use causeway_storage::{SpanKind, SpanRecord, StatusCode, Store, TraceId as StoredTraceId};
use opentelemetry::Context;
use opentelemetry::trace::TraceContextExt;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::FutureProducer;
use tokio::sync::mpsc;

use crate::harness::{Broker, CollectorProcess, temp_dir};

/// How long a whole produce/consume exchange may take.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long spans may take to reach the store after the pipelines flushed.
const STORE_TIMEOUT: Duration = Duration::from_secs(20);

/// A collector on loopback port 0 for every listener, so tests can run side by side.
fn start_collector(db: &Path) -> CollectorProcess {
    CollectorProcess::start_with_args(
        db,
        &[
            "collector",
            "--otlp-grpc",
            "127.0.0.1:0",
            "--otlp-http",
            "127.0.0.1:0",
            "--metrics",
            "127.0.0.1:0",
        ],
    )
}

fn pipeline(collector: &CollectorProcess, service: &str, protocol: Protocol) -> PipelineGuard {
    let endpoint = match protocol {
        Protocol::Grpc => collector.grpc_endpoint(),
        Protocol::HttpProtobuf => collector.http_endpoint(),
    };
    Pipeline::builder()
        .endpoint(endpoint)
        .protocol(protocol)
        .service_name(service)
        .batch_delay(Duration::from_millis(100))
        .build()
        .expect("the pipeline builds")
}

fn kafka_producer(broker: &Broker) -> FutureProducer {
    broker
        .producer_config()
        .set("message.timeout.ms", "10000")
        .create()
        .expect("cannot create a Kafka producer")
}

fn kafka_consumer(broker: &Broker, group: &str, topic: &str) -> StreamConsumer {
    let consumer: StreamConsumer = broker
        .client_config()
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "true")
        .set("session.timeout.ms", "6000")
        .create()
        .expect("cannot create a Kafka consumer");
    consumer.subscribe(&[topic]).expect("cannot subscribe");
    consumer
}

/// Polls the store until `query` returns at least `count` spans, or panics at the deadline.
async fn wait_for_spans<F, Fut>(db: &Path, count: usize, what: &str, query: F) -> Vec<SpanRecord>
where
    F: Fn(Store) -> Fut,
    Fut: Future<Output = Vec<SpanRecord>>,
{
    let deadline = Instant::now() + STORE_TIMEOUT;
    let mut last = Vec::new();
    while Instant::now() < deadline {
        if let Ok(store) = Store::open_read_only(db).await {
            last = query(store).await;
            if last.len() >= count {
                return last;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "{what}: expected {count} spans in the store, found {}: {last:#?}",
        last.len()
    );
}

async fn by_correlation(db: &Path, correlation: &str, count: usize) -> Vec<SpanRecord> {
    let correlation = correlation.to_owned();
    wait_for_spans(db, count, &correlation.clone(), move |store| {
        let correlation = correlation.clone();
        async move {
            let spans = store.spans_by_correlation(&correlation, 100).await.unwrap();
            store.close().await;
            spans
        }
    })
    .await
}

async fn by_trace(db: &Path, trace_id: [u8; 16], count: usize) -> Vec<SpanRecord> {
    let trace_id = StoredTraceId::from_bytes(&trace_id).unwrap();
    wait_for_spans(db, count, &trace_id.to_string(), move |store| async move {
        let spans = store.spans_by_trace(trace_id, 100).await.unwrap();
        store.close().await;
        spans
    })
    .await
}

fn attr<'a>(span: &'a SpanRecord, key: &str) -> Option<&'a serde_json::Value> {
    span.attributes.get(key)
}

fn find<'a>(
    spans: &'a [SpanRecord],
    what: &str,
    test: impl Fn(&SpanRecord) -> bool,
) -> &'a SpanRecord {
    spans
        .iter()
        .find(|s| test(s))
        .unwrap_or_else(|| panic!("no {what} span among {spans:#?}"))
}

/// Consumes `count` messages of `topic` as `group`, running `handler` per message.
async fn consume<H, Fut>(
    consumer: StreamConsumer,
    traced: TracedConsumer,
    count: usize,
    retry: RetryPolicy,
    mut handler: H,
) where
    H: FnMut(causeway_instrumentation::Processing) -> Fut,
    Fut: Future<Output = Result<(), std::io::Error>>,
{
    let mut processed = 0;
    while processed < count {
        let message = consumer.recv().await.expect("the consumer receives");
        // The handler's final outcome is asserted through the stored spans.
        let _ = traced.process(&message, retry, &mut handler).await;
        processed += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_flow_through_two_groups_as_one_trace_per_event() {
    let dir = temp_dir();
    let db = dir.path().join("causeway.db");
    let broker = Broker::start();
    broker.create_topic("orders", 1);
    broker.create_topic("shipments", 1);
    let collector = start_collector(&db);
    let order_pipeline = pipeline(&collector, "order-service", Protocol::Grpc);
    let shipping_pipeline = pipeline(&collector, "shipping-service", Protocol::Grpc);
    let billing_pipeline = pipeline(&collector, "billing-service", Protocol::HttpProtobuf);
    let correlations = ["ord-1", "ord-2", "ord-3"];

    let shipping = {
        let consumer = kafka_consumer(&broker, "shipping", "orders");
        let traced = TracedConsumer::with_tracer("shipping", shipping_pipeline.tracer());
        let producer =
            TracedProducer::with_tracer(kafka_producer(&broker), shipping_pipeline.tracer())
                .with_source("shipping-service");
        tokio::spawn(async move {
            consume(
                consumer,
                traced,
                correlations.len(),
                RetryPolicy::default(),
                |processing| {
                    let producer = &producer;
                    async move {
                        // No correlation ID given: it must be inherited from the consumed message.
                        let meta =
                            MessageMeta::new("shipments").with_event_type("shipment.requested.v1");
                        producer
                            .send(meta, b"ship it", &Context::current())
                            .await
                            .map(|_| ())
                            .map_err(|e| std::io::Error::other(e.to_string()))?;
                        drop(processing);
                        Ok(())
                    }
                },
            )
            .await;
        })
    };
    let billing = {
        let consumer = kafka_consumer(&broker, "billing", "orders");
        let traced = TracedConsumer::with_tracer("billing", billing_pipeline.tracer());
        let retry = RetryPolicy {
            max_retries: 2,
            backoff: Duration::from_millis(10),
        };
        tokio::spawn(async move {
            let mut failed_once = false;
            consume(
                consumer,
                traced,
                correlations.len(),
                retry,
                move |processing| {
                    let fail = processing.extracted.correlation_id.as_deref() == Some("ord-2")
                        && !failed_once;
                    failed_once |= fail;
                    async move {
                        if fail {
                            Err(std::io::Error::other("card declined"))
                        } else {
                            Ok(())
                        }
                    }
                },
            )
            .await;
        })
    };

    let order_producer =
        TracedProducer::with_tracer(kafka_producer(&broker), order_pipeline.tracer())
            .with_source("order-service");
    let mut event_ids = Vec::new();
    for correlation in correlations {
        let meta = MessageMeta::new("orders")
            .with_key(correlation)
            .with_event_type("order.placed.v1")
            .with_correlation_id(correlation);
        event_ids.push(meta.event_id.clone().unwrap());
        order_producer
            .send(meta, b"{\"total\": 42}", &Context::new())
            .await
            .expect("the order is sent");
    }
    tokio::time::timeout(EXCHANGE_TIMEOUT, async {
        shipping.await.expect("the shipping task ran");
        billing.await.expect("the billing task ran");
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "consumers did not finish within {EXCHANGE_TIMEOUT:?}\nbroker:\n{}",
            broker.stderr()
        )
    });
    for guard in [order_pipeline, shipping_pipeline, billing_pipeline] {
        guard.shutdown().await.expect("the pipeline flushes");
    }

    for (correlation, event_id) in correlations.iter().zip(&event_ids) {
        let spans = by_correlation(&db, correlation, 4).await;
        assert_eq!(
            spans.len(),
            4,
            "{correlation}: send, two process spans, re-publish: {spans:#?}"
        );
        let send = find(&spans, "send orders", |s| s.name == "send orders");
        let ship = find(&spans, "shipping process", |s| {
            s.messaging.consumer_group.as_deref() == Some("shipping")
        });
        let bill = find(&spans, "billing process", |s| {
            s.messaging.consumer_group.as_deref() == Some("billing")
        });
        let republish = find(&spans, "send shipments", |s| s.name == "send shipments");

        assert_eq!(send.kind, SpanKind::Producer, "{correlation}");
        assert_eq!(send.service_name, "order-service", "{correlation}");
        assert_eq!(
            send.messaging.message_id.as_deref(),
            Some(event_id.as_str()),
            "{correlation}"
        );
        assert!(
            send.messaging.offset.is_some(),
            "{correlation}: delivery offset recorded"
        );
        for (process, service) in [(ship, "shipping-service"), (bill, "billing-service")] {
            assert_eq!(process.name, "process orders", "{correlation}");
            assert_eq!(process.kind, SpanKind::Consumer, "{correlation}");
            assert_eq!(process.service_name, service, "{correlation}");
            assert_eq!(
                process.trace_id, send.trace_id,
                "{correlation}: one trace per event"
            );
            assert_eq!(
                process.parent_span_id,
                Some(send.span_id),
                "{correlation}: child of send"
            );
            assert!(
                process
                    .links
                    .iter()
                    .any(|l| l.span_id == send.span_id && l.trace_id == send.trace_id),
                "{correlation}: {service} links to the send span"
            );
            assert_eq!(process.messaging.destination.as_deref(), Some("orders"));
            assert_eq!(
                process.messaging.message_id.as_deref(),
                Some(event_id.as_str())
            );
            assert_eq!(process.messaging.message_key.as_deref(), Some(*correlation));
            assert_eq!(
                process.messaging.event_type.as_deref(),
                Some("order.placed.v1")
            );
            assert!(
                process.messaging.offset.is_some(),
                "{correlation}: offset recorded"
            );
            assert!(
                attr(process, attribute::QUEUE_TIME_MS)
                    .is_some_and(|v| v.as_i64().is_some_and(|ms| ms >= 0))
            );
            assert_eq!(
                attr(process, attribute::PROPAGATION_BREAK),
                None,
                "{correlation}: no break"
            );
            assert_eq!(
                attr(process, attribute::CLOUDEVENTS_EVENT_SOURCE).and_then(|v| v.as_str()),
                Some("order-service")
            );
        }
        assert_eq!(republish.kind, SpanKind::Producer);
        assert_eq!(republish.service_name, "shipping-service");
        assert_eq!(
            republish.trace_id, send.trace_id,
            "{correlation}: re-publish stays in the trace"
        );
        assert_eq!(
            republish.parent_span_id,
            Some(ship.span_id),
            "{correlation}: child of processing"
        );
        assert_eq!(
            republish.messaging.correlation_id.as_deref(),
            Some(*correlation),
            "re-published events keep the correlation ID"
        );
        let retries = attr(bill, attribute::RETRY_COUNT).and_then(|v| v.as_i64());
        if *correlation == "ord-2" {
            assert_eq!(retries, Some(1), "ord-2 failed once, then succeeded");
            assert_eq!(
                bill.events
                    .iter()
                    .filter(|e| e.name == event::RETRY)
                    .count(),
                1
            );
            assert_eq!(
                bill.status_code,
                StatusCode::Unset,
                "recovered: not an error"
            );
        } else {
            assert_eq!(retries, None, "{correlation}: no retry");
        }
    }
}

/// Sends one message with Debian's `kcat`, each `header` as `-H name=value`.
fn kcat_produce(broker: &Broker, topic: &str, headers: &[String], payload: &str) {
    let mut command = Command::new("kcat");
    command.args(["-P", "-b", &broker.bootstrap(), "-t", topic]);
    for header in headers {
        command.args(["-H", header]);
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kcat is installed (/usr/bin/kcat)");
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{payload}\n").as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "kcat failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kcat_headers_are_parents_and_missing_headers_are_breaks() {
    let dir = temp_dir();
    let db = dir.path().join("causeway.db");
    let broker = Broker::start();
    broker.create_topic("kcat-in", 1);
    let collector = start_collector(&db);
    let guard = pipeline(&collector, "kcat-consumer", Protocol::HttpProtobuf);

    let trace_hex = "0af7651916cd43dd8448eb211c80319c";
    let span_hex = "b7ad6b7169203331";
    kcat_produce(
        &broker,
        "kcat-in",
        &[
            format!("traceparent=00-{trace_hex}-{span_hex}-01"),
            "correlation-id=kc-1".into(),
        ],
        "with headers",
    );
    kcat_produce(&broker, "kcat-in", &[], "no headers");

    let consumer = kafka_consumer(&broker, "kcat-group", "kcat-in");
    let traced = TracedConsumer::with_tracer("kcat-group", guard.tracer());
    let (sender, mut received) = mpsc::unbounded_channel();
    tokio::time::timeout(
        EXCHANGE_TIMEOUT,
        consume(consumer, traced, 2, RetryPolicy::default(), |processing| {
            let span_context = processing.context.span().span_context().clone();
            sender
                .send((processing.extracted.propagation_break, span_context))
                .unwrap();
            async { Ok(()) }
        }),
    )
    .await
    .expect("both kcat messages are consumed");
    guard.shutdown().await.expect("the pipeline flushes");

    let (first_break, first) = received.recv().await.unwrap();
    let (second_break, second) = received.recv().await.unwrap();
    assert_eq!(first_break, None);
    assert_eq!(second_break.map(|b| b.as_str()), Some("missing"));

    let expected_trace: [u8; 16] = u128::from_str_radix(trace_hex, 16).unwrap().to_be_bytes();
    let expected_parent: [u8; 8] = u64::from_str_radix(span_hex, 16).unwrap().to_be_bytes();
    assert_eq!(
        first.trace_id().to_bytes(),
        expected_trace,
        "kcat's trace is continued"
    );
    let spans = by_trace(&db, expected_trace, 1).await;
    let process = &spans[0];
    assert_eq!(
        process.parent_span_id.map(|p| p.0),
        Some(expected_parent),
        "parent is kcat's span"
    );
    assert!(
        process.links.iter().any(|l| l.span_id.0 == expected_parent),
        "linked too"
    );
    assert_eq!(process.messaging.correlation_id.as_deref(), Some("kc-1"));
    assert_eq!(attr(process, attribute::PROPAGATION_BREAK), None);

    assert_ne!(second.trace_id().to_bytes(), expected_trace);
    let spans = by_trace(&db, second.trace_id().to_bytes(), 1).await;
    let process = &spans[0];
    assert_eq!(process.parent_span_id, None, "no headers: a new root");
    assert!(process.links.is_empty(), "nothing to link to");
    assert_eq!(
        attr(process, attribute::PROPAGATION_BREAK).and_then(|v| v.as_str()),
        Some("missing")
    );
    assert!(
        process
            .events
            .iter()
            .any(|e| e.name == event::PROPAGATION_BREAK)
    );
}

/// Reads the first message of `topic` with `kcat -J`: its headers as (name, value) pairs.
fn kcat_consume_headers(broker: &Broker, topic: &str) -> Vec<(String, String)> {
    let output = Command::new("kcat")
        .args(["-C", "-b", &broker.bootstrap(), "-t", topic])
        .args(["-o", "beginning", "-c", "1", "-e", "-J"])
        .stdin(Stdio::null())
        .output()
        .expect("kcat is installed (/usr/bin/kcat)");
    assert!(
        output.status.success(),
        "kcat failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("kcat printed no message: {stdout}"));
    let message: serde_json::Value = serde_json::from_str(line).unwrap();
    let headers = message["headers"]
        .as_array()
        .unwrap_or_else(|| panic!("kcat shows no headers: {line}"));
    headers
        .chunks(2)
        .map(|pair| {
            (
                pair[0].as_str().unwrap().to_owned(),
                pair[1].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// A foreign service (here kcat) forwards W3C `baggage` but no correlation header: the
/// correlation ID is read from the baggage, is on the process span and on what the handler
/// publishes, and the baggage goes on with its other members (read back by kcat).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kcat_baggage_carries_the_correlation_id_through() {
    let dir = temp_dir();
    let db = dir.path().join("causeway.db");
    let broker = Broker::start();
    broker.create_topic("bag-in", 1);
    broker.create_topic("bag-out", 1);
    let collector = start_collector(&db);
    let guard = pipeline(&collector, "billing-service", Protocol::HttpProtobuf);

    let trace_hex = "4bf92f3577b34da6a3ce929d0e0e4736";
    let span_hex = "00f067aa0ba902b7";
    kcat_produce(
        &broker,
        "bag-in",
        &[
            format!("traceparent=00-{trace_hex}-{span_hex}-01"),
            "baggage=correlation.id=ord-9,other=x".into(),
        ],
        "from a foreign service",
    );

    let consumer = kafka_consumer(&broker, "billing", "bag-in");
    let traced = TracedConsumer::with_tracer("billing", guard.tracer());
    let producer = TracedProducer::with_tracer(kafka_producer(&broker), guard.tracer())
        .with_source("billing-service");
    let (sender, mut received) = mpsc::unbounded_channel();
    tokio::time::timeout(
        EXCHANGE_TIMEOUT,
        consume(consumer, traced, 1, RetryPolicy::default(), |processing| {
            let producer = &producer;
            let sender = sender.clone();
            async move {
                sender
                    .send(
                        causeway_instrumentation::correlation_id(&processing.context)
                            .map(str::to_owned),
                    )
                    .unwrap();
                producer
                    .send(MessageMeta::new("bag-out"), b"billed", &Context::current())
                    .await
                    .map(|_| ())
                    .map_err(|e| std::io::Error::other(e.to_string()))
            }
        }),
    )
    .await
    .unwrap_or_else(|_| panic!("the message is consumed\nbroker:\n{}", broker.stderr()));
    guard.shutdown().await.expect("the pipeline flushes");
    assert_eq!(
        received.recv().await.unwrap().as_deref(),
        Some("ord-9"),
        "the handler's context carries the ID"
    );

    let spans = by_correlation(&db, "ord-9", 2).await;
    let process = find(&spans, "process", |s| s.kind == SpanKind::Consumer);
    let expected_parent: [u8; 8] = u64::from_str_radix(span_hex, 16).unwrap().to_be_bytes();
    assert_eq!(
        process.parent_span_id.map(|p| p.0),
        Some(expected_parent),
        "parent is kcat's traceparent"
    );
    assert_eq!(attr(process, attribute::PROPAGATION_BREAK), None);
    let send = find(&spans, "send", |s| s.kind == SpanKind::Producer);
    assert_eq!(send.messaging.correlation_id.as_deref(), Some("ord-9"));
    assert_eq!(send.trace_id, process.trace_id, "one trace");

    let headers = kcat_consume_headers(&broker, "bag-out");
    let value = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(value(header::CORRELATION_ID), Some("ord-9"), "{headers:?}");
    assert_eq!(
        value(header::BAGGAGE),
        Some("correlation.id=ord-9,other=x"),
        "the baggage goes on with its other member: {headers:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lag_context_reports_the_real_consumer_lag_from_rdkafka_statistics() {
    use causeway_instrumentation::{LagReportingContext, LagSample};
    use opentelemetry::metrics::MeterProvider as _;
    use rdkafka::consumer::CommitMode;
    use rdkafka::producer::FutureRecord;

    let broker = Broker::start();
    broker.create_topic("lag-in", 1);
    let producer = kafka_producer(&broker);
    for index in 0..5 {
        let payload = format!("event {index}");
        producer
            .send(
                FutureRecord::<str, _>::to("lag-in").payload(&payload),
                Duration::from_secs(10),
            )
            .await
            .expect("the message is delivered");
    }
    let meter_provider = opentelemetry_sdk::metrics::SdkMeterProvider::builder().build();
    let context = LagReportingContext::new("lag-group", &meter_provider.meter("e2e"));
    let consumer: StreamConsumer<LagReportingContext> = broker
        .client_config()
        .set("group.id", "lag-group")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("statistics.interval.ms", "200")
        .create_with_context(context)
        .expect("cannot create a Kafka consumer");
    consumer.subscribe(&["lag-in"]).expect("cannot subscribe");
    for _ in 0..2 {
        let message = tokio::time::timeout(EXCHANGE_TIMEOUT, consumer.recv())
            .await
            .expect("a message arrives")
            .expect("the consumer receives");
        consumer
            .commit_message(&message, CommitMode::Sync)
            .expect("the offset commits");
    }
    let expected = LagSample {
        topic: "lag-in".into(),
        partition: 0,
        lag: 3,
        committed_offset: Some(2),
    };
    let deadline = Instant::now() + EXCHANGE_TIMEOUT;
    // Statistics are delivered while the consumer is polled; the remaining three messages
    // are received but never committed, so the lag stays at 3.
    while !consumer.context().last_samples().contains(&expected) {
        assert!(
            Instant::now() < deadline,
            "no statistics report with {expected:?}; last: {:?}",
            consumer.context().last_samples()
        );
        let _ = tokio::time::timeout(Duration::from_millis(200), consumer.recv()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_keep_headers_and_failed_sends_are_error_spans() {
    use causeway_instrumentation::forward_to_dead_letter;
    use causeway_instrumentation::kafka_headers::from_kafka;
    use rdkafka::message::Message as _;

    let dir = temp_dir();
    let db = dir.path().join("causeway.db");
    let broker = Broker::start();
    broker.create_topic("payments", 1);
    broker.create_topic("payments.dlq", 1);
    let collector = start_collector(&db);
    let guard = pipeline(&collector, "payment-service", Protocol::Grpc);
    let producer = TracedProducer::with_tracer(kafka_producer(&broker), guard.tracer());

    let meta = MessageMeta::new("payments")
        .with_key("ord-9")
        .with_event_type("payment.requested.v1")
        .with_correlation_id("ord-9");
    let event_id = meta.event_id.clone().unwrap();
    producer
        .send(meta, b"pay", &Context::new())
        .await
        .expect("sent");

    let consumer = kafka_consumer(&broker, "payments", "payments");
    let traced = TracedConsumer::with_tracer("payments", guard.tracer());
    let message = tokio::time::timeout(EXCHANGE_TIMEOUT, consumer.recv())
        .await
        .expect("the payment arrives")
        .expect("the consumer receives");
    let processing = traced.start(&message);
    forward_to_dead_letter(
        &producer,
        &message,
        "payments.dlq",
        "card expired",
        &processing.context,
    )
    .await
    .expect("the dead letter is sent");
    processing.context.span().end();

    let failed = MessageMeta {
        partition: Some(7),
        ..MessageMeta::new("payments").with_correlation_id("ord-9")
    };
    let error = producer.send(failed, b"nowhere", &Context::new()).await;
    assert!(
        error.is_err(),
        "partition 7 of a one-partition topic does not exist"
    );

    let dlq_consumer = kafka_consumer(&broker, "dlq-reader", "payments.dlq");
    let dead = tokio::time::timeout(EXCHANGE_TIMEOUT, dlq_consumer.recv())
        .await
        .expect("the dead letter arrives")
        .expect("the consumer receives");
    let headers = from_kafka(dead.headers());
    let original = from_kafka(message.headers());
    let cases = [
        (header::DLQ_REASON, Some("card expired")),
        (header::DLQ_ORIGINAL_TOPIC, Some("payments")),
        (header::DLQ_ORIGINAL_PARTITION, Some("0")),
        (header::DLQ_ORIGINAL_OFFSET, Some("0")),
        (header::CE_ID, Some(event_id.as_str())),
        (header::CE_TYPE, Some("payment.requested.v1")),
        (header::CORRELATION_ID, Some("ord-9")),
        (header::CE_TIME, original.get_str(header::CE_TIME)),
    ];
    for (name, expected) in cases {
        assert_eq!(headers.get_str(name), expected, "dead-letter header {name}");
    }
    assert_eq!(dead.payload(), Some(&b"pay"[..]));
    assert_eq!(dead.key(), Some(&b"ord-9"[..]));
    guard.shutdown().await.expect("the pipeline flushes");

    let spans = by_correlation(&db, "ord-9", 4).await;
    let send = find(&spans, "send payments", |s| {
        s.name == "send payments" && !s.is_error()
    });
    let process = find(&spans, "process payments", |s| s.name == "process payments");
    let dlq = find(&spans, "send payments.dlq", |s| {
        s.name == "send payments.dlq"
    });
    let failed = find(&spans, "failed send", |s| {
        s.name == "send payments" && s.is_error()
    });
    assert_eq!(process.parent_span_id, Some(send.span_id));
    assert_eq!(
        attr(process, attribute::DLQ_REASON).and_then(|v| v.as_str()),
        Some("card expired")
    );
    assert_eq!(
        dlq.trace_id, send.trace_id,
        "the dead-letter hop stays in the trace"
    );
    assert_eq!(dlq.parent_span_id, Some(process.span_id));
    assert_eq!(dlq.messaging.message_id.as_deref(), Some(event_id.as_str()));
    assert_eq!(failed.status_code, StatusCode::Error);
    assert!(failed.events.iter().any(|e| e.name == event::EXCEPTION));
}
