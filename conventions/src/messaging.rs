//! Every generation of the messaging semantic conventions' Kafka keys, as instrumentations
//! in use still emit them: for each field, all of its names, newest first. The collector
//! reads a field from the first name a span carries (docs/INTEROP.md cites the source of
//! every name).
//!
//! The semantic conventions renamed these keys in v1.17, v1.21, v1.24–v1.28; the Java
//! agent still emits its old names by default (and both with
//! `OTEL_SEMCONV_STABILITY_OPT_IN=messaging/dup`), Python and kafkajs emit pre-1.17 names,
//! kotel and older Java agents name the consumer's topic and partition as a *source*.

use crate::attribute;

/// The topic: `messaging.destination.name` (v1.17+), `messaging.destination` (before
/// v1.17: Python, kafkajs ≤ 0.8, Java agent ≤ 1.22), `messaging.source.name` (consumer
/// spans of kotel, from the v1.17–v1.20 `source` keys).
pub const DESTINATION: &[&str] = &[
    attribute::MESSAGING_DESTINATION_NAME,
    "messaging.destination",
    "messaging.source.name",
];

/// The partition: `messaging.destination.partition.id` (v1.25+, text),
/// `messaging.kafka.destination.partition` (v1.17–v1.24), `messaging.kafka.source.partition`
/// (consumer spans of kotel, otelsarama and Java agent 1.23–1.29),
/// `messaging.kafka.partition` (before v1.17: Python, Java agent ≤ 1.22).
pub const PARTITION: &[&str] = &[
    attribute::MESSAGING_DESTINATION_PARTITION_ID,
    "messaging.kafka.destination.partition",
    "messaging.kafka.source.partition",
    "messaging.kafka.partition",
];

/// The offset: `messaging.kafka.offset` (v1.27+; text in kafkajs),
/// `messaging.kafka.message.offset` (v1.16–v1.26, the Java agent's default), `kafka.offset`
/// (Java agent ≤ 1.20 experimental consumer attribute).
pub const OFFSET: &[&str] = &[
    attribute::MESSAGING_KAFKA_OFFSET,
    "messaging.kafka.message.offset",
    "kafka.offset",
];

/// The consumer group: `messaging.consumer.group.name` (v1.27+),
/// `messaging.kafka.consumer.group` (v1.17–v1.26, the Java agent's default),
/// `messaging.kafka.consumer_group` (before v1.17).
pub const CONSUMER_GROUP: &[&str] = &[
    attribute::MESSAGING_CONSUMER_GROUP_NAME,
    "messaging.kafka.consumer.group",
    "messaging.kafka.consumer_group",
];

/// The operation: `messaging.operation.type` (v1.26+), `messaging.operation.name`
/// (v1.26+, the system's own word: `send`, `poll`, `process`), `messaging.operation`
/// (before v1.26: `publish`, `receive`, `process`).
pub const OPERATION: &[&str] = &[
    attribute::MESSAGING_OPERATION_TYPE,
    attribute::MESSAGING_OPERATION_NAME,
    "messaging.operation",
];

/// The message id: `messaging.message.id` (v1.17+), `messaging.message_id` (before).
/// Python's confluent-kafka instrumentation writes `<topic>.<partition>.<offset>` here;
/// otelsarama writes the bare offset.
pub const MESSAGE_ID: &[&str] = &[attribute::MESSAGING_MESSAGE_ID, "messaging.message_id"];

/// The message key: `messaging.kafka.message.key` (v1.17+), `messaging.kafka.message_key`.
pub const MESSAGE_KEY: &[&str] = &[
    attribute::MESSAGING_KAFKA_MESSAGE_KEY,
    "messaging.kafka.message_key",
];

/// How many messages one batch span covers.
pub const BATCH_MESSAGE_COUNT: &[&str] = &["messaging.batch.message_count"];

/// The conversation id: `messaging.message.conversation_id` (v1.17+),
/// `messaging.conversation_id` (before).
pub const CONVERSATION_ID: &[&str] = &[
    attribute::MESSAGING_MESSAGE_CONVERSATION_ID,
    "messaging.conversation_id",
];

/// Where standard set-ups put a business correlation ID, in the order they are tried when
/// no `[flows] correlation_keys` are configured: the conversation id (causeway's own
/// instrumentation), baggage keys copied onto spans by the standard baggage span
/// processors, and the Java agent's captured headers (string arrays, `-` written as `_`).
pub const DEFAULT_CORRELATION_KEYS: &[&str] = &[
    attribute::MESSAGING_MESSAGE_CONVERSATION_ID,
    "correlation.id",
    "correlation_id",
    "correlationId",
    "x-correlation-id",
    "messaging.header.correlation_id",
    "messaging.header.x_correlation_id",
];

/// The W3C baggage key that carries a correlation ID through services that do not know
/// causeway's headers (`causeway-instrumentation` writes and reads it).
pub const BAGGAGE_CORRELATION_ID: &str = "correlation.id";

/// Operation values of every generation, each with the role it names.
pub const OPERATION_VALUES: &[(&str, Operation)] = &[
    ("create", Operation::Send),
    ("send", Operation::Send),
    ("publish", Operation::Send),
    ("receive", Operation::Receive),
    ("poll", Operation::Receive),
    ("process", Operation::Process),
    ("deliver", Operation::Process),
    ("settle", Operation::Settle),
];

/// What a messaging span does, whatever generation named it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Creates or sends a message (`create`, `send`, `publish`).
    Send,
    /// Fetches messages from the broker (`receive`, `poll`): a poll, not their processing.
    Receive,
    /// Processes a message (`process`, `deliver`).
    Process,
    /// Settles (commits, acknowledges) a message.
    Settle,
}

impl Operation {
    /// The operation a value names (in any case), in any generation.
    pub fn parse(value: &str) -> Option<Operation> {
        OPERATION_VALUES
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(value))
            .map(|(_, operation)| *operation)
    }

    /// The v1.26+ `messaging.operation.type` value: how causeway stores it.
    pub fn type_value(self) -> &'static str {
        match self {
            Operation::Send => attribute::OPERATION_SEND,
            Operation::Receive => "receive",
            Operation::Process => attribute::OPERATION_PROCESS,
            Operation::Settle => "settle",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_of_every_generation_names_one_operation() {
        let cases = [
            ("publish", Operation::Send, "before v1.28"),
            ("send", Operation::Send, "v1.28+ and Java opt-in"),
            ("create", Operation::Send, "a separate create span"),
            ("receive", Operation::Receive, "a poll that fetched"),
            ("poll", Operation::Receive, "operation.name of a poll"),
            ("process", Operation::Process, "every generation"),
            ("deliver", Operation::Process, "v1.17–v1.24 push delivery"),
            ("Publish", Operation::Send, "any case"),
        ];
        for (value, operation, reason) in cases {
            assert_eq!(Operation::parse(value), Some(operation), "{reason}");
        }
        assert_eq!(Operation::parse("ack"), None);
    }

    #[test]
    fn the_newest_name_comes_first() {
        for keys in [
            DESTINATION,
            PARTITION,
            OFFSET,
            CONSUMER_GROUP,
            OPERATION,
            MESSAGE_ID,
            MESSAGE_KEY,
            CONVERSATION_ID,
        ] {
            assert!(
                keys[0].starts_with("messaging."),
                "{keys:?} leads with a current name"
            );
        }
        assert_eq!(DEFAULT_CORRELATION_KEYS[0], CONVERSATION_ID[0]);
    }
}
