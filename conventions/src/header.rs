//! Kafka message header names: the wire contract between services (docs/INSTRUMENTATION.md).

/// W3C Trace Context header carrying the creation (send) span of a message.
pub const TRACEPARENT: &str = "traceparent";
/// W3C Trace Context vendor state, passed along with `traceparent`.
pub const TRACESTATE: &str = "tracestate";
/// W3C Baggage header, passed on with the correlation ID as its `correlation.id` member.
pub const BAGGAGE: &str = "baggage";

/// The business correlation ID header causeway writes.
pub const CORRELATION_ID: &str = "correlation-id";
/// Alternative correlation ID header, read but never written.
pub const X_CORRELATION_ID: &str = "x-correlation-id";
/// CloudEvents extension attribute carrying a correlation ID, read but never written.
pub const CE_CORRELATION_ID: &str = "ce_correlationid";
/// Correlation ID headers in the order they are read; the first usable one wins.
pub const CORRELATION_HEADERS: [&str; 3] = [CORRELATION_ID, X_CORRELATION_ID, CE_CORRELATION_ID];

/// CloudEvents Kafka binding (binary mode): event id.
pub const CE_ID: &str = "ce_id";
/// CloudEvents Kafka binding: event type such as `order.placed.v1`.
pub const CE_TYPE: &str = "ce_type";
/// CloudEvents Kafka binding: producer of the event.
pub const CE_SOURCE: &str = "ce_source";
/// CloudEvents Kafka binding: time of the event, RFC 3339.
pub const CE_TIME: &str = "ce_time";
/// CloudEvents Kafka binding: schema of the payload.
pub const CE_DATASCHEMA: &str = "ce_dataschema";
/// CloudEvents Kafka binding: spec version, always `1.0`.
pub const CE_SPECVERSION: &str = "ce_specversion";
/// The CloudEvents spec version causeway writes.
pub const CE_SPECVERSION_VALUE: &str = "1.0";

/// Dead-letter header: why the message was dead-lettered.
pub const DLQ_REASON: &str = "causeway-dlq-reason";
/// Dead-letter header: the topic the message was first consumed from.
pub const DLQ_ORIGINAL_TOPIC: &str = "causeway-dlq-original-topic";
/// Dead-letter header: the partition the message was first consumed from.
pub const DLQ_ORIGINAL_PARTITION: &str = "causeway-dlq-original-partition";
/// Dead-letter header: the offset the message had in its original partition.
pub const DLQ_ORIGINAL_OFFSET: &str = "causeway-dlq-original-offset";
