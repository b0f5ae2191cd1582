//! The Rust service in the middle of the mixed interoperability chain: it consumes what a
//! Python service instrumented by `opentelemetry-instrumentation-confluent-kafka` produced,
//! and re-publishes it for a Node service instrumented by
//! `@opentelemetry/instrumentation-kafkajs`, with `causeway-instrumentation` only.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use causeway_instrumentation::{
    MessageMeta, Pipeline, Protocol, RetryPolicy, TracedConsumer, TracedProducer,
};
use opentelemetry::Context;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::FutureProducer;

use crate::harness::{Broker, CollectorProcess};

/// Consumes `count` messages of `from` as group `relay` (service `billing-service`) and
/// sends each on to `to` from inside its processing; returns once the spans are flushed.
pub async fn relay(
    broker: &Broker,
    collector: &CollectorProcess,
    from: &str,
    to: &str,
    count: usize,
) {
    let pipeline = Pipeline::builder()
        .endpoint(collector.grpc_endpoint())
        .protocol(Protocol::Grpc)
        .service_name("billing-service")
        .batch_delay(Duration::from_millis(100))
        .build()
        .expect("the pipeline builds");
    let consumer: StreamConsumer = broker
        .client_config()
        .set("group.id", "relay")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "true")
        .set("session.timeout.ms", "6000")
        .create()
        .expect("cannot create a Kafka consumer");
    consumer.subscribe(&[from]).expect("cannot subscribe");
    let producer: FutureProducer = broker
        .producer_config()
        .set("message.timeout.ms", "10000")
        .create()
        .expect("cannot create a Kafka producer");
    let traced = TracedConsumer::with_tracer("relay", pipeline.tracer());
    let producer =
        TracedProducer::with_tracer(producer, pipeline.tracer()).with_source("billing-service");
    let relayed = tokio::time::timeout(Duration::from_secs(60), async {
        for _ in 0..count {
            let message = consumer.recv().await.expect("the relay receives");
            traced
                .process(&message, RetryPolicy::default(), |processing| {
                    let producer = &producer;
                    async move {
                        // The correlation ID is inherited from the consumed message.
                        let meta = MessageMeta::new(to).with_event_type("invoice.created.v1");
                        producer
                            .send(meta, b"{\"invoice\": true}", &Context::current())
                            .await
                            .map(|_| ())
                            .map_err(|e| std::io::Error::other(e.to_string()))?;
                        drop(processing);
                        Ok::<(), std::io::Error>(())
                    }
                })
                .await
                .expect("the relay processes the message");
        }
    })
    .await;
    assert!(
        relayed.is_ok(),
        "the relay did not get {count} messages within 60 s"
    );
    pipeline
        .shutdown()
        .await
        .expect("the relay's spans are exported");
}
