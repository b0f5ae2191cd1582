//! The messaging fields of a span, read from its attributes (OpenTelemetry messaging and
//! CloudEvents semantic conventions).

use causeway_storage::{Attributes, Messaging};
use serde_json::Value;

use causeway_conventions::attribute::{
    CLOUDEVENTS_EVENT_ID, CLOUDEVENTS_EVENT_TYPE, MESSAGING_CONSUMER_GROUP_NAME,
    MESSAGING_DESTINATION_NAME, MESSAGING_DESTINATION_PARTITION_ID, MESSAGING_KAFKA_MESSAGE_KEY,
    MESSAGING_KAFKA_OFFSET, MESSAGING_MESSAGE_CONVERSATION_ID, MESSAGING_MESSAGE_ID,
    MESSAGING_OPERATION_TYPE,
};

/// Pulls the messaging fields out of span attributes. Missing or unusable values are `None`;
/// partition and offset are accepted as integers or as decimal text.
pub fn messaging_from(attributes: &Attributes) -> Messaging {
    let text = |key: &str| attributes.get(key).and_then(text_of);
    let number = |key: &str| attributes.get(key).and_then(integer_of);
    Messaging {
        correlation_id: text(MESSAGING_MESSAGE_CONVERSATION_ID),
        message_id: text(MESSAGING_MESSAGE_ID).or_else(|| text(CLOUDEVENTS_EVENT_ID)),
        event_type: text(CLOUDEVENTS_EVENT_TYPE),
        destination: text(MESSAGING_DESTINATION_NAME),
        partition: number(MESSAGING_DESTINATION_PARTITION_ID),
        offset: number(MESSAGING_KAFKA_OFFSET),
        consumer_group: text(MESSAGING_CONSUMER_GROUP_NAME),
        operation_type: text(MESSAGING_OPERATION_TYPE),
        message_key: text(MESSAGING_KAFKA_MESSAGE_KEY),
    }
}

/// A non-empty string, or a number or bool written as text (some SDKs send ids as ints).
fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::String(text) if !text.is_empty() => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

/// An integer, or decimal text holding one.
fn integer_of(value: &Value) -> Option<i64> {
    match value {
        Value::Number(number) => number.as_i64(),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use serde_json::json;

    fn attributes(value: Value) -> Attributes {
        match value {
            Value::Object(map) => map,
            _ => panic!("test attributes must be an object"),
        }
    }

    #[test]
    fn fields_are_read_from_their_keys() {
        let cases: Vec<(Value, Messaging, &str)> = vec![
            (json!({}), Messaging::default(), "no attributes, no fields"),
            (
                json!({
                    MESSAGING_MESSAGE_CONVERSATION_ID: "ord-1042",
                    MESSAGING_MESSAGE_ID: "m-1",
                    CLOUDEVENTS_EVENT_ID: "ce-1",
                    CLOUDEVENTS_EVENT_TYPE: "order.placed.v1",
                    MESSAGING_DESTINATION_NAME: "orders",
                    MESSAGING_DESTINATION_PARTITION_ID: "3",
                    MESSAGING_KAFKA_OFFSET: 42,
                    MESSAGING_CONSUMER_GROUP_NAME: "shipping",
                    MESSAGING_OPERATION_TYPE: "process",
                    MESSAGING_KAFKA_MESSAGE_KEY: "ord-1042",
                }),
                Messaging {
                    correlation_id: Some("ord-1042".into()),
                    message_id: Some("m-1".into()),
                    event_type: Some("order.placed.v1".into()),
                    destination: Some("orders".into()),
                    partition: Some(3),
                    offset: Some(42),
                    consumer_group: Some("shipping".into()),
                    operation_type: Some("process".into()),
                    message_key: Some("ord-1042".into()),
                },
                "every key, partition as text (the semconv type) and offset as int",
            ),
            (
                json!({ CLOUDEVENTS_EVENT_ID: "ce-1" }),
                Messaging {
                    message_id: Some("ce-1".into()),
                    ..Messaging::default()
                },
                "the cloudevents id stands in for a missing message id",
            ),
            (
                json!({ MESSAGING_MESSAGE_ID: "", CLOUDEVENTS_EVENT_ID: "ce-1" }),
                Messaging {
                    message_id: Some("ce-1".into()),
                    ..Messaging::default()
                },
                "an empty message id counts as missing",
            ),
            (
                json!({ MESSAGING_DESTINATION_PARTITION_ID: 2, MESSAGING_KAFKA_OFFSET: "17" }),
                Messaging {
                    partition: Some(2),
                    offset: Some(17),
                    ..Messaging::default()
                },
                "partition as int and offset as text are accepted",
            ),
            (
                json!({ MESSAGING_DESTINATION_PARTITION_ID: "two", MESSAGING_KAFKA_OFFSET: 1.5 }),
                Messaging::default(),
                "non-integer partition and offset are ignored, not guessed",
            ),
            (
                json!({ MESSAGING_KAFKA_MESSAGE_KEY: 99, MESSAGING_DESTINATION_NAME: ["a"] }),
                Messaging {
                    message_key: Some("99".into()),
                    ..Messaging::default()
                },
                "a numeric key is kept as text; an array destination is ignored",
            ),
        ];
        for (input, expected, reason) in cases {
            assert_eq!(messaging_from(&attributes(input)), expected, "{reason}");
        }
    }
}
