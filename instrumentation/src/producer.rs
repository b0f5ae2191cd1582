//! A traced Kafka producer: a send span per message, headers injected, delivery recorded.

use std::time::Duration;

use opentelemetry::global::BoxedTracer;
use opentelemetry::trace::TraceContextExt;
use opentelemetry::{Context, KeyValue};
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::headers::Headers;
use crate::kafka_headers::to_kafka;
use crate::propagation::{MessageMeta, inject, record_error, start_send_span};
use causeway_conventions::attribute;

/// How long a send may wait in the producer queue when it is full.
const DEFAULT_QUEUE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a traced send failed.
#[derive(Debug, thiserror::Error)]
pub enum ProducerError {
    /// The broker or the client refused or lost the message.
    #[error("cannot send to topic {topic}: {source}")]
    Send {
        /// Destination topic.
        topic: String,
        /// The rdkafka error.
        source: KafkaError,
    },
}

/// Where the broker stored a sent message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivered {
    /// Partition the message went to.
    pub partition: i32,
    /// Offset of the message in that partition.
    pub offset: i64,
}

/// A Kafka producer that opens a `send {topic}` span per message and writes the causeway
/// headers (trace context, correlation ID, CloudEvents).
pub struct TracedProducer {
    producer: FutureProducer,
    tracer: BoxedTracer,
    source: Option<String>,
    queue_timeout: Duration,
}

impl TracedProducer {
    /// Wraps `producer`, opening spans with the global tracer provider's tracer.
    pub fn new(producer: FutureProducer) -> Self {
        Self::with_tracer(
            producer,
            opentelemetry::global::tracer(causeway_conventions::INSTRUMENTATION_SCOPE),
        )
    }

    /// Wraps `producer`, opening spans with `tracer`.
    pub fn with_tracer(producer: FutureProducer, tracer: BoxedTracer) -> Self {
        Self {
            producer,
            tracer,
            source: None,
            queue_timeout: DEFAULT_QUEUE_TIMEOUT,
        }
    }

    /// Sets the default CloudEvents `ce_source` (usually the service name).
    pub fn with_source(mut self, source: impl Into<String>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// The wrapped rdkafka producer, e.g. to flush it.
    pub fn inner(&self) -> &FutureProducer {
        &self.producer
    }

    /// Sends `payload` as a child of `parent` (use `Context::current()` inside a handler).
    /// Fills in a random `ce_id` and the default source when `meta` has none.
    pub async fn send(
        &self,
        meta: MessageMeta,
        payload: &[u8],
        parent: &Context,
    ) -> Result<Delivered, ProducerError> {
        self.send_with_headers(meta, payload, Headers::new(), parent)
            .await
    }

    /// Like [`TracedProducer::send`], starting from `headers` (kept unless causeway writes
    /// the same name).
    pub async fn send_with_headers(
        &self,
        mut meta: MessageMeta,
        payload: &[u8],
        mut headers: Headers,
        parent: &Context,
    ) -> Result<Delivered, ProducerError> {
        meta.ensure_event_id();
        if meta.event_source.is_none() {
            meta.event_source.clone_from(&self.source);
        }
        let cx = start_send_span(&self.tracer, &meta, parent);
        inject(&cx, &mut headers, &meta);
        let mut record = FutureRecord::to(&meta.topic)
            .payload(payload)
            .headers(to_kafka(&headers));
        if let Some(key) = &meta.key {
            record = record.key(key.as_str());
        }
        if let Some(partition) = meta.partition {
            record = record.partition(partition);
        }
        let result = self.producer.send(record, self.queue_timeout).await;
        let span = cx.span();
        let outcome = match result {
            Ok(delivery) => {
                span.set_attributes([
                    KeyValue::new(
                        attribute::MESSAGING_DESTINATION_PARTITION_ID,
                        delivery.partition.to_string(),
                    ),
                    KeyValue::new(attribute::MESSAGING_KAFKA_OFFSET, delivery.offset),
                ]);
                Ok(Delivered {
                    partition: delivery.partition,
                    offset: delivery.offset,
                })
            }
            Err((error, _message)) => {
                record_error(&cx, &error);
                Err(ProducerError::Send {
                    topic: meta.topic.clone(),
                    source: error,
                })
            }
        };
        span.end();
        outcome
    }
}
