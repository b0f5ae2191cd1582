//! The fixture shop's scenarios, one per anomaly, each on its own topics with its own
//! correlation ID.

use std::io;
use std::time::Duration;

use causeway_conventions::header;
use causeway_instrumentation::kafka_headers::to_kafka;
use causeway_instrumentation::{
    Headers, MessageMeta, RetryPolicy, TracedConsumer, TracedProducer, forward_to_dead_letter,
    inject, start_send_span,
};
use opentelemetry::Context;
use opentelemetry::trace::TraceContextExt;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

use super::{DEADLINE, World};

/// Every topic the scenarios use, created before they start.
pub(crate) const TOPICS: [&str; 13] = [
    "error.orders",
    "retried.orders",
    "duplicate.orders",
    "dead-letter.payments",
    "dead-letter.payments.dlq",
    "compensation.orders",
    "compensation.payments",
    "out-of-order.orders",
    "propagation.orders",
    "propagation.shipments",
    "schema.orders",
    "schema.orders-v2",
    "missing.orders",
];

/// Spans each correlation has once every scenario ran.
pub(crate) const EXPECTED_SPANS: &[(&str, usize)] = &[
    ("flow-error", 2),
    ("flow-retried", 2),
    ("flow-duplicate", 3),
    ("flow-dead-letter", 3),
    ("flow-compensation", 4),
    ("flow-out-of-order", 4),
    ("flow-propagation-break", 3),
    ("flow-schema-change", 3),
    ("flow-missing-earlier", 3),
    ("flow-missing", 2),
];

/// Runs every scenario concurrently.
pub(crate) async fn run_all(world: &World) {
    tokio::join!(
        error(world),
        retried(world),
        duplicate(world),
        dead_letter(world),
        compensation(world),
        out_of_order(world),
        propagation_break(world),
        schema_change(world),
        missing(world),
    );
}

const RETRY: RetryPolicy = RetryPolicy {
    max_retries: 2,
    backoff: Duration::from_millis(20),
};

fn kafka_producer(world: &World) -> FutureProducer {
    world.broker.producer_config().create().expect("a producer")
}

fn producer(world: &World, service: &str) -> TracedProducer {
    TracedProducer::with_tracer(kafka_producer(world), world.pipelines[service].tracer())
        .with_source(service)
}

fn consumer(world: &World, group: &str, service: &str) -> TracedConsumer {
    TracedConsumer::with_tracer(group, world.pipelines[service].tracer())
}

/// A reader of `topic` for `group`, assigned partition 0 from the beginning: what a group
/// member reads after it starts with nothing committed.
fn reader(world: &World, topic: &str, group: &str) -> StreamConsumer {
    let reader: StreamConsumer = world
        .broker
        .client_config()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "50")
        .create()
        .expect("a consumer");
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, 0, Offset::Beginning)
        .expect("an assignment");
    reader.assign(&assignment).expect("assign");
    reader
}

async fn next(reader: &StreamConsumer) -> OwnedMessage {
    tokio::time::timeout(DEADLINE, reader.recv())
        .await
        .expect("a message in time")
        .expect("a message")
        .detach()
}

/// Metadata with a fixed event id, so that message ids are the same in every run.
fn meta(topic: &str, event_id: &str, event_type: &str) -> MessageMeta {
    MessageMeta {
        event_id: Some(event_id.to_owned()),
        ..MessageMeta::new(topic).with_event_type(event_type)
    }
}

/// The order service publishes `event_type` for `correlation` (and key `correlation`).
async fn place(world: &World, topic: &str, event_id: &str, event_type: &str, correlation: &str) {
    let meta = meta(topic, event_id, event_type)
        .with_key(correlation)
        .with_correlation_id(correlation);
    producer(world, "order-service")
        .send(meta, b"{}", &Context::new())
        .await
        .expect("the order is sent");
}

/// What a handler publishes under.
#[derive(Clone, Copy)]
enum Parent {
    /// Its process context, which carries the correlation ID.
    Process,
    /// A context rebuilt from the process span alone, which loses the correlation ID.
    SpanOnly,
}

/// `group` (running in `service`) reads the next message of `topic` and, while processing
/// it, publishes `reply` under `parent`.
async fn process_and_publish(
    world: &World,
    topic: &str,
    (group, service): (&str, &str),
    reply: MessageMeta,
    parent: Parent,
) {
    let message = next(&reader(world, topic, group)).await;
    let publisher = producer(world, service);
    consumer(world, group, service)
        .process(&message, RetryPolicy::default(), |processing| {
            let (publisher, reply) = (&publisher, reply.clone());
            async move {
                let context = match parent {
                    Parent::Process => processing.context,
                    Parent::SpanOnly => Context::new()
                        .with_remote_span_context(processing.context.span().span_context().clone()),
                };
                publisher
                    .send(reply, b"{}", &context)
                    .await
                    .expect("the reply is sent");
                Ok::<(), io::Error>(())
            }
        })
        .await
        .expect("processed");
}

async fn succeed() -> Result<(), io::Error> {
    Ok(())
}

async fn error(world: &World) {
    let topic = "error.orders";
    place(world, topic, "error-1", "order.placed.v1", "flow-error").await;
    let message = next(&reader(world, topic, "billing")).await;
    let result = consumer(world, "billing", "billing-service")
        .process(&message, RetryPolicy::default(), |_| async {
            Err::<(), _>(io::Error::other("card declined"))
        })
        .await;
    assert!(result.is_err(), "the handler fails");
}

async fn retried(world: &World) {
    let topic = "retried.orders";
    place(world, topic, "retried-1", "order.placed.v1", "flow-retried").await;
    let message = next(&reader(world, topic, "billing")).await;
    let mut attempts = 0;
    consumer(world, "billing", "billing-service")
        .process(&message, RETRY, |_| {
            attempts += 1;
            let fail = attempts == 1;
            async move {
                if fail {
                    Err(io::Error::other("card service timed out"))
                } else {
                    Ok(())
                }
            }
        })
        .await
        .expect("the retry succeeds");
}

async fn duplicate(world: &World) {
    let topic = "duplicate.orders";
    place(
        world,
        topic,
        "duplicate-1",
        "order.placed.v1",
        "flow-duplicate",
    )
    .await;
    let billing = consumer(world, "billing", "billing-service");
    // The first billing instance processes the order and dies before committing its
    // offset; its replacement reads the same message again.
    let first = next(&reader(world, topic, "billing")).await;
    billing
        .process(&first, RetryPolicy::default(), |_| succeed())
        .await
        .expect("processed");
    let again = next(&reader(world, topic, "billing")).await;
    assert_eq!(again.offset(), first.offset(), "the same message");
    billing
        .process(&again, RetryPolicy::default(), |_| succeed())
        .await
        .expect("processed again");
}

pub(crate) const DEAD_LETTER_TOPIC: &str = "dead-letter.payments.dlq";

async fn dead_letter(world: &World) {
    let topic = "dead-letter.payments";
    let reason = "amount is not a number";
    place(
        world,
        topic,
        "dead-letter-1",
        "payment.requested.v1",
        "flow-dead-letter",
    )
    .await;
    let message = next(&reader(world, topic, "payments")).await;
    let forwarder = producer(world, "payment-service");
    let mut attempts = 0;
    let result = consumer(world, "payments", "payment-service")
        .process(&message, RETRY, |processing| {
            attempts += 1;
            let last = attempts > RETRY.max_retries;
            let (forwarder, message) = (&forwarder, &message);
            async move {
                // A poison message: after the last retry it goes to the dead-letter topic.
                if last {
                    forward_to_dead_letter(
                        forwarder,
                        message,
                        DEAD_LETTER_TOPIC,
                        reason,
                        &processing.context,
                    )
                    .await
                    .expect("forwarded to the dead-letter topic");
                }
                Err(io::Error::other(reason))
            }
        })
        .await;
    assert!(result.is_err(), "the poison message fails every attempt");
}

async fn compensation(world: &World) {
    let topic = "compensation.orders";
    let refunds = "compensation.payments";
    place(
        world,
        topic,
        "compensation-1",
        "order.placed.v1",
        "flow-compensation",
    )
    .await;
    // The card was charged, then the order could not be fulfilled: undo the charge.
    let refund = meta(refunds, "compensation-2", "payment.refunded.v1");
    process_and_publish(
        world,
        topic,
        ("payments", "payment-service"),
        refund,
        Parent::Process,
    )
    .await;
    let refund = next(&reader(world, refunds, "orders")).await;
    consumer(world, "orders", "order-service")
        .process(&refund, RetryPolicy::default(), |_| succeed())
        .await
        .expect("the refund is processed");
}

async fn out_of_order(world: &World) {
    let topic = "out-of-order.orders";
    let correlation = "flow-out-of-order";
    place(
        world,
        topic,
        "out-of-order-1",
        "order.placed.v1",
        correlation,
    )
    .await;
    place(world, topic, "out-of-order-2", "order.paid.v1", correlation).await;
    let reader = reader(world, topic, "shipping");
    let (placed, paid) = (next(&reader).await, next(&reader).await);
    assert!(placed.offset() < paid.offset(), "published in this order");
    // Shipping hands messages to parallel workers; the one with the later message ran first.
    let shipping = consumer(world, "shipping", "shipping-service");
    for message in [&paid, &placed] {
        shipping
            .process(message, RetryPolicy::default(), |_| succeed())
            .await
            .expect("processed");
    }
}

async fn propagation_break(world: &World) {
    let topic = "propagation.orders";
    let shipments = "propagation.shipments";
    let correlation = "flow-propagation-break";
    // An order service whose hand-written producer keeps the correlation and CloudEvents
    // headers but drops `traceparent`.
    let tracer = world.pipelines["order-service"].tracer();
    let order = meta(topic, "propagation-1", "order.placed.v1")
        .with_key(correlation)
        .with_correlation_id(correlation);
    let send_cx = start_send_span(&tracer, &order, &Context::new());
    let mut headers = Headers::new();
    inject(&send_cx, &mut headers, &order);
    headers.remove(header::TRACEPARENT);
    let record = FutureRecord::to(topic)
        .key(correlation)
        .payload(&b"{}"[..])
        .headers(to_kafka(&headers));
    kafka_producer(world)
        .send(record, Duration::from_secs(5))
        .await
        .expect("the order is sent");
    send_cx.span().end();

    // The handler re-publishes under a context rebuilt from the span alone, which loses the
    // correlation ID.
    let shipment = meta(shipments, "propagation-2", "shipment.created.v1");
    process_and_publish(
        world,
        topic,
        ("shipping", "shipping-service"),
        shipment,
        Parent::SpanOnly,
    )
    .await;
}

async fn schema_change(world: &World) {
    let topic = "schema.orders";
    let upgraded = "schema.orders-v2";
    place(
        world,
        topic,
        "schema-1",
        "order.placed.v1",
        "flow-schema-change",
    )
    .await;
    // The catalog upgrades the order to the next schema version.
    let v2 = meta(upgraded, "schema-2", "order.placed.v2");
    process_and_publish(
        world,
        topic,
        ("upcaster", "catalog-service"),
        v2,
        Parent::Process,
    )
    .await;
}

async fn missing(world: &World) {
    let topic = "missing.orders";
    // An earlier order teaches the topology that billing and audit both consume the topic.
    place(
        world,
        topic,
        "missing-0",
        "order.placed.v1",
        "flow-missing-earlier",
    )
    .await;
    place(world, topic, "missing-1", "order.placed.v1", "flow-missing").await;
    let billing_reader = reader(world, topic, "billing");
    let billing = consumer(world, "billing", "billing-service");
    for _ in 0..2 {
        let message = next(&billing_reader).await;
        billing
            .process(&message, RetryPolicy::default(), |_| succeed())
            .await
            .expect("billing processed");
    }
    // Audit processes the earlier order, then stops: it never gets to the second.
    let earlier = next(&reader(world, topic, "audit")).await;
    consumer(world, "audit", "catalog-service")
        .process(&earlier, RetryPolicy::default(), |_| succeed())
        .await
        .expect("audit processed the earlier order");
}
