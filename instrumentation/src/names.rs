//! Every header name, span attribute key, span event name and metric name the crate writes.
//!
//! Keys that OpenTelemetry's semantic conventions define are re-exported from
//! `opentelemetry_semantic_conventions`; the rest are causeway's own and start with
//! `causeway.`.

use opentelemetry_semantic_conventions::attribute;

/// W3C Trace Context header carrying the creation (send) span of a message.
pub const TRACEPARENT: &str = "traceparent";
/// W3C Trace Context vendor state, passed along with `traceparent`.
pub const TRACESTATE: &str = "tracestate";
/// W3C Baggage header, passed through unchanged.
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

/// `messaging.system`.
pub const MESSAGING_SYSTEM: &str = attribute::MESSAGING_SYSTEM;
/// The value of `messaging.system` for Kafka.
pub const MESSAGING_SYSTEM_KAFKA: &str = "kafka";
/// `messaging.operation.type`.
pub const MESSAGING_OPERATION_TYPE: &str = attribute::MESSAGING_OPERATION_TYPE;
/// `messaging.operation.name`.
pub const MESSAGING_OPERATION_NAME: &str = attribute::MESSAGING_OPERATION_NAME;
/// `messaging.destination.name`.
pub const MESSAGING_DESTINATION_NAME: &str = attribute::MESSAGING_DESTINATION_NAME;
/// `messaging.destination.partition.id`.
pub const MESSAGING_DESTINATION_PARTITION_ID: &str = attribute::MESSAGING_DESTINATION_PARTITION_ID;
/// `messaging.consumer.group.name`.
pub const MESSAGING_CONSUMER_GROUP_NAME: &str = attribute::MESSAGING_CONSUMER_GROUP_NAME;
/// `messaging.kafka.offset`.
pub const MESSAGING_KAFKA_OFFSET: &str = attribute::MESSAGING_KAFKA_OFFSET;
/// `messaging.kafka.message.key`.
pub const MESSAGING_KAFKA_MESSAGE_KEY: &str = attribute::MESSAGING_KAFKA_MESSAGE_KEY;
/// `messaging.message.id`.
pub const MESSAGING_MESSAGE_ID: &str = attribute::MESSAGING_MESSAGE_ID;
/// `messaging.message.conversation_id`: the correlation ID.
pub const MESSAGING_MESSAGE_CONVERSATION_ID: &str = attribute::MESSAGING_MESSAGE_CONVERSATION_ID;
/// `cloudevents.event_id`.
pub const CLOUDEVENTS_EVENT_ID: &str = attribute::CLOUDEVENTS_EVENT_ID;
/// `cloudevents.event_type`.
pub const CLOUDEVENTS_EVENT_TYPE: &str = attribute::CLOUDEVENTS_EVENT_TYPE;
/// `cloudevents.event_source`.
pub const CLOUDEVENTS_EVENT_SOURCE: &str = attribute::CLOUDEVENTS_EVENT_SOURCE;
/// `exception.type`.
pub const EXCEPTION_TYPE: &str = attribute::EXCEPTION_TYPE;
/// `exception.message`.
pub const EXCEPTION_MESSAGE: &str = attribute::EXCEPTION_MESSAGE;

/// Operation type of a send span.
pub const OPERATION_SEND: &str = "send";
/// Operation type of a process span.
pub const OPERATION_PROCESS: &str = "process";

/// Milliseconds a message waited in the topic before processing began.
pub const QUEUE_TIME_MS: &str = "causeway.queue_time_ms";
/// Why the consumed message's trace context could not be used.
pub const PROPAGATION_BREAK: &str = "causeway.propagation.break";
/// How many times the handler was retried for this message.
pub const RETRY_COUNT: &str = "causeway.retry.count";
/// Why a message was dead-lettered (on the dead-letter send span).
pub const DLQ_REASON_ATTRIBUTE: &str = "causeway.dlq.reason";

/// Span event recorded when the trace context of a consumed message is unusable.
pub const EVENT_PROPAGATION_BREAK: &str = "causeway.propagation.break";
/// Span event recorded before each retry of a handler.
pub const EVENT_RETRY: &str = "causeway.retry";
/// Span event recorded for a handler error (OpenTelemetry's exception event).
pub const EVENT_EXCEPTION: &str = "exception";

/// Gauge: messages between a group's position and the partition's high watermark.
pub const METRIC_CONSUMER_GROUP_LAG: &str = "kafka.consumer_group.lag";
/// Gauge: the group's current offset in a partition.
pub const METRIC_CONSUMER_GROUP_OFFSET: &str = "kafka.consumer_group.offset";
/// Metric attribute: consumer group.
pub const METRIC_ATTR_GROUP: &str = "group";
/// Metric attribute: topic.
pub const METRIC_ATTR_TOPIC: &str = "topic";
/// Metric attribute: partition.
pub const METRIC_ATTR_PARTITION: &str = "partition";

/// Instrumentation scope name for tracers and meters this crate creates.
pub const SCOPE_NAME: &str = "causeway-instrumentation";
