//! causeway-instrumentation: trace context, correlation IDs and CloudEvents attributes
//! carried through message headers, for Kafka and for any bus with Kafka-like headers.
//!
//! The core is broker-agnostic: [`Headers`] is a list of `(name, Option<Vec<u8>>)` pairs
//! exactly as Kafka carries them, and the functions below work on it.
//!
//! ```
//! use causeway_instrumentation::{
//!     ConsumeMeta, Headers, MessageMeta, correlation_id, extract, inject, start_process_span,
//!     start_send_span, with_correlation_id,
//! };
//! use opentelemetry::trace::{TraceContextExt, TracerProvider};
//! use opentelemetry::Context;
//!
//! let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
//! let tracer = provider.tracer("order-service");
//!
//! // Producer: open the send span, write the headers, send, end the span. The correlation
//! // ID comes from the parent context here; `MessageMeta::with_correlation_id` sets it
//! // explicitly instead.
//! let request_cx = with_correlation_id(&Context::new(), "ord-1042");
//! let meta = MessageMeta::new("orders")
//!     .with_key("ord-1042")
//!     .with_event_type("order.placed.v1");
//! let send_cx = start_send_span(&tracer, &meta, &request_cx);
//! let mut headers = Headers::new();
//! inject(&send_cx, &mut headers, &meta);
//! send_cx.span().end();
//!
//! // Consumer: read the headers, open the process span (child of, and linked to, the send
//! // span), run the handler under it.
//! let extracted = extract(&headers);
//! assert_eq!(extracted.propagation_break, None);
//! let consume = ConsumeMeta { group: "shipping".into(), topic: "orders".into(), ..Default::default() };
//! let process_cx = start_process_span(&tracer, &extracted, &consume);
//! assert_eq!(correlation_id(&process_cx), Some("ord-1042"));
//! // Anything published under `process_cx` inherits the correlation ID.
//! let reply = MessageMeta::new("shipments");
//! let reply_cx = start_send_span(&tracer, &reply, &process_cx);
//! let mut reply_headers = Headers::new();
//! inject(&reply_cx, &mut reply_headers, &reply);
//! assert_eq!(reply_headers.get_str("correlation-id"), Some("ord-1042"));
//! // ... and W3C baggage carries it too, for services that only forward `baggage`.
//! assert_eq!(reply_headers.get_str("baggage"), Some("correlation.id=ord-1042"));
//! ```
//!
//! Bad headers never fail a message: [`extract`] returns an empty trace context and an
//! [`Extracted::propagation_break`] reason, which [`start_process_span`] records as the
//! `causeway.propagation.break` attribute and event. Header names, attribute keys and
//! metric names are in the `causeway-conventions` crate, re-exported as [`conventions`].
//!
//! On Kafka (rdkafka), the same core is wrapped by [`TracedProducer`] (send spans, headers,
//! delivery partition and offset), [`TracedConsumer`] (process spans, retries, errors, the
//! correlation ID current while the handler runs), [`forward_to_dead_letter`] and
//! [`LagReportingContext`] (lag gauges from librdkafka statistics). [`Pipeline`] sets up
//! OTLP export from the `OTEL_*` variables or explicitly; see docs/INSTRUMENTATION.md.

pub use causeway_conventions as conventions;

pub mod baggage;
pub mod cloudevent;
pub mod consumer;
pub mod correlation;
pub mod dead_letter;
pub mod headers;
pub mod kafka_headers;
pub mod lag;
pub mod otel_env;
pub mod pipeline;
pub mod producer;
pub mod propagation;
pub mod traceparent;
pub mod tracestate;

pub use cloudevent::{CloudEvent, new_event_id};
pub use consumer::{Processing, RetryPolicy, TracedConsumer};
pub use correlation::{
    CorrelationId, correlation_id, current_correlation_id, read_correlation_id,
    with_correlation_id, write_correlation_id,
};
pub use dead_letter::forward_to_dead_letter;
pub use headers::{Header, HeaderValue, Headers};
pub use lag::{LagReportingContext, LagSample, lag_samples};
pub use otel_env::{PropagatorKind, Protocol, SettingError};
pub use pipeline::{Pipeline, PipelineError, PipelineGuard};
pub use producer::{Delivered, ProducerError, TracedProducer};
pub use propagation::{
    BreakReason, ConsumeMeta, Extracted, MessageMeta, ParentMode, extract, inject, queue_time_ms,
    record_error, record_retry, record_retry_count, start_process_span, start_send_span,
};
pub use traceparent::{Traceparent, TraceparentError, parse_traceparent};
pub use tracestate::{Tracestate, TracestateError};
