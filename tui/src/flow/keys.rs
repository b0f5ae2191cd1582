//! Attribute keys that reconstruction reads from spans, in one place.
//!
//! The messaging fields (message id, topic, group, key, …) come from storage's columns;
//! these are the causeway-specific keys the instrumentation records on process and send
//! spans. They mirror the instrumentation crate's names.

/// On a process span: why the trace context of the consumed message was unusable.
pub const PROPAGATION_BREAK: &str = "causeway.propagation.break";
/// On a process span: how many times this message was retried before this attempt.
pub const RETRY_COUNT: &str = "causeway.retry.count";
/// On a process span: now minus the Kafka message timestamp, in milliseconds.
pub const QUEUE_TIME_MS: &str = "causeway.queue_time_ms";
/// On a send span to a dead-letter topic: why the message was dead-lettered.
pub const DEAD_LETTER_REASON: &str = "causeway.dlq.reason";
/// On send and process spans: the CloudEvents `dataschema` of the message.
pub const DATA_SCHEMA: &str = "cloudevents.event_dataschema";
