//! Span and resource attribute keys, and the values causeway compares them with.
//!
//! The messaging keys are the OpenTelemetry semantic conventions' v1.44 names: what
//! `causeway-instrumentation` writes and what the collector reads first. Older generations
//! of the same fields, still emitted by instrumentations in use, are read too (see the
//! collector's normalisation). Keys starting with `causeway.` are causeway's own.

/// `service.name` (a resource attribute).
pub const SERVICE_NAME: &str = "service.name";
/// The service name used when a resource carries no `service.name`, as the SDKs do.
pub const UNKNOWN_SERVICE: &str = "unknown_service";

/// `messaging.system`.
pub const MESSAGING_SYSTEM: &str = "messaging.system";
/// The value of `messaging.system` for Kafka.
pub const MESSAGING_SYSTEM_KAFKA: &str = "kafka";
/// `messaging.operation.type`: `create`, `send`, `receive`, `process` or `settle`.
pub const MESSAGING_OPERATION_TYPE: &str = "messaging.operation.type";
/// `messaging.operation.name`: the system-specific operation name.
pub const MESSAGING_OPERATION_NAME: &str = "messaging.operation.name";
/// `messaging.destination.name`: the topic.
pub const MESSAGING_DESTINATION_NAME: &str = "messaging.destination.name";
/// `messaging.destination.partition.id`: the partition, as text.
pub const MESSAGING_DESTINATION_PARTITION_ID: &str = "messaging.destination.partition.id";
/// `messaging.consumer.group.name`.
pub const MESSAGING_CONSUMER_GROUP_NAME: &str = "messaging.consumer.group.name";
/// `messaging.kafka.offset`.
pub const MESSAGING_KAFKA_OFFSET: &str = "messaging.kafka.offset";
/// `messaging.kafka.message.key`.
pub const MESSAGING_KAFKA_MESSAGE_KEY: &str = "messaging.kafka.message.key";
/// `messaging.message.id`.
pub const MESSAGING_MESSAGE_ID: &str = "messaging.message.id";
/// `messaging.message.conversation_id`: where causeway writes the correlation ID.
pub const MESSAGING_MESSAGE_CONVERSATION_ID: &str = "messaging.message.conversation_id";

/// Operation type of a send span.
pub const OPERATION_SEND: &str = "send";
/// Operation type of a process span.
pub const OPERATION_PROCESS: &str = "process";

/// `cloudevents.event_id`.
pub const CLOUDEVENTS_EVENT_ID: &str = "cloudevents.event_id";
/// `cloudevents.event_type`.
pub const CLOUDEVENTS_EVENT_TYPE: &str = "cloudevents.event_type";
/// `cloudevents.event_source`.
pub const CLOUDEVENTS_EVENT_SOURCE: &str = "cloudevents.event_source";
/// The CloudEvents `dataschema` of a message. Not a semantic-conventions key; read by the
/// flow model to tell schema versions apart.
pub const CLOUDEVENTS_EVENT_DATASCHEMA: &str = "cloudevents.event_dataschema";

/// `exception.type`.
pub const EXCEPTION_TYPE: &str = "exception.type";
/// `exception.message`.
pub const EXCEPTION_MESSAGE: &str = "exception.message";

/// On a process span: milliseconds the message waited in the topic before processing.
pub const QUEUE_TIME_MS: &str = "causeway.queue_time_ms";
/// On a process span: why the consumed message's trace context was unusable.
pub const PROPAGATION_BREAK: &str = "causeway.propagation.break";
/// On a process span: how many times the handler was retried before this attempt.
pub const RETRY_COUNT: &str = "causeway.retry.count";
/// On a send span to a dead-letter topic: why the message was dead-lettered.
pub const DLQ_REASON: &str = "causeway.dlq.reason";
/// On a process span: why the consumed message's `tracestate` was dropped (its
/// `traceparent` is still used), such as `invalid_key`.
pub const TRACESTATE_INVALID: &str = "causeway.tracestate.invalid";
/// On a process span: how many list-members of the consumed message's `baggage` break the
/// W3C Baggage grammar.
pub const BAGGAGE_INVALID_MEMBERS: &str = "causeway.baggage.invalid_members";

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_semantic_conventions::{attribute as semconv, resource};

    #[test]
    fn keys_the_semantic_conventions_define_match_them() {
        let cases = [
            (SERVICE_NAME, resource::SERVICE_NAME),
            (MESSAGING_SYSTEM, semconv::MESSAGING_SYSTEM),
            (MESSAGING_OPERATION_TYPE, semconv::MESSAGING_OPERATION_TYPE),
            (MESSAGING_OPERATION_NAME, semconv::MESSAGING_OPERATION_NAME),
            (
                MESSAGING_DESTINATION_NAME,
                semconv::MESSAGING_DESTINATION_NAME,
            ),
            (
                MESSAGING_DESTINATION_PARTITION_ID,
                semconv::MESSAGING_DESTINATION_PARTITION_ID,
            ),
            (
                MESSAGING_CONSUMER_GROUP_NAME,
                semconv::MESSAGING_CONSUMER_GROUP_NAME,
            ),
            (MESSAGING_KAFKA_OFFSET, semconv::MESSAGING_KAFKA_OFFSET),
            (
                MESSAGING_KAFKA_MESSAGE_KEY,
                semconv::MESSAGING_KAFKA_MESSAGE_KEY,
            ),
            (MESSAGING_MESSAGE_ID, semconv::MESSAGING_MESSAGE_ID),
            (
                MESSAGING_MESSAGE_CONVERSATION_ID,
                semconv::MESSAGING_MESSAGE_CONVERSATION_ID,
            ),
            (CLOUDEVENTS_EVENT_ID, semconv::CLOUDEVENTS_EVENT_ID),
            (CLOUDEVENTS_EVENT_TYPE, semconv::CLOUDEVENTS_EVENT_TYPE),
            (CLOUDEVENTS_EVENT_SOURCE, semconv::CLOUDEVENTS_EVENT_SOURCE),
            (EXCEPTION_TYPE, semconv::EXCEPTION_TYPE),
            (EXCEPTION_MESSAGE, semconv::EXCEPTION_MESSAGE),
        ];
        for (ours, theirs) in cases {
            assert_eq!(ours, theirs);
        }
    }
}
