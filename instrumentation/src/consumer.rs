//! A traced Kafka consumer helper: a `process {topic}` span per message, retries and
//! errors recorded, and the message's correlation ID made current for the handler.

use std::future::Future;
use std::time::Duration;

use opentelemetry::Context;
use opentelemetry::context::FutureExt as _;
use opentelemetry::global::BoxedTracer;
use opentelemetry::trace::TraceContextExt;
use rdkafka::message::Message;

use crate::kafka_headers::from_kafka;
use crate::propagation::{
    ConsumeMeta, Extracted, ParentMode, extract, record_error, record_retry, record_retry_count,
    start_process_span,
};

/// How often and how patiently a handler is retried on the same message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt; 0 runs the handler once.
    pub max_retries: u32,
    /// Pause before each retry.
    pub backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 0,
            backoff: Duration::from_millis(100),
        }
    }
}

/// One consumed message, ready for its handler.
#[derive(Clone, Debug)]
pub struct Processing {
    /// Context holding the process span, baggage and correlation ID; publish under it.
    pub context: Context,
    /// What the headers said.
    pub extracted: Extracted,
    /// Where the message came from.
    pub meta: ConsumeMeta,
}

/// Opens process spans for the messages of one consumer group.
pub struct TracedConsumer {
    group: String,
    tracer: BoxedTracer,
    parent_mode: ParentMode,
}

impl TracedConsumer {
    /// A helper for `group`, opening spans with the global tracer provider's tracer.
    pub fn new(group: impl Into<String>) -> Self {
        Self::with_tracer(
            group,
            opentelemetry::global::tracer(causeway_conventions::INSTRUMENTATION_SCOPE),
        )
    }

    /// A helper for `group`, opening spans with `tracer`.
    pub fn with_tracer(group: impl Into<String>, tracer: BoxedTracer) -> Self {
        Self {
            group: group.into(),
            tracer,
            parent_mode: ParentMode::Child,
        }
    }

    /// Makes process spans children of the creation span (default) or link-only roots.
    pub fn with_parent_mode(mut self, parent_mode: ParentMode) -> Self {
        self.parent_mode = parent_mode;
        self
    }

    /// The consumer group name.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// Where `message` came from, as [`ConsumeMeta`].
    pub fn consume_meta<M: Message>(&self, message: &M) -> ConsumeMeta {
        ConsumeMeta {
            group: self.group.clone(),
            topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
            key: message
                .key()
                .and_then(|key| std::str::from_utf8(key).ok())
                .map(str::to_owned),
            timestamp_ms: message.timestamp().to_millis(),
            parent_mode: self.parent_mode,
        }
    }

    /// Extracts the headers of `message` and opens its process span. End it with
    /// `processing.context.span().end()`, or use [`TracedConsumer::process`].
    pub fn start<M: Message>(&self, message: &M) -> Processing {
        let extracted = extract(&from_kafka(message.headers()));
        let meta = self.consume_meta(message);
        let context = start_process_span(&self.tracer, &extracted, &meta);
        Processing {
            context,
            extracted,
            meta,
        }
    }

    /// Runs `handler` for `message` under its process span, retrying per `retry`. The
    /// handler runs with the process context as the current context, so anything it
    /// publishes inherits the trace and the correlation ID. Each failed attempt before the
    /// last is a `causeway.retry` event; the final failure sets the span's status to error
    /// with an `exception` event. Returns the handler's last result.
    pub async fn process<M, F, Fut, E>(
        &self,
        message: &M,
        retry: RetryPolicy,
        mut handler: F,
    ) -> Result<(), E>
    where
        M: Message,
        F: FnMut(Processing) -> Fut,
        Fut: Future<Output = Result<(), E>>,
        E: std::error::Error,
    {
        let processing = self.start(message);
        let cx = processing.context.clone();
        let mut retries = 0;
        let outcome = loop {
            let result = handler(processing.clone()).with_context(cx.clone()).await;
            match result {
                Ok(()) => break Ok(()),
                Err(error) if retries < retry.max_retries => {
                    retries += 1;
                    record_retry(&cx, retries, &error);
                    tokio::time::sleep(retry.backoff).await;
                }
                Err(error) => {
                    record_error(&cx, &error);
                    break Err(error);
                }
            }
        };
        if retries > 0 {
            record_retry_count(&cx, retries);
        }
        cx.span().end();
        outcome
    }
}
