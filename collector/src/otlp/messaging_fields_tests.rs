#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use causeway_conventions::attribute::{
    CLOUDEVENTS_EVENT_ID, CLOUDEVENTS_EVENT_TYPE, MESSAGING_CONSUMER_GROUP_NAME,
    MESSAGING_DESTINATION_NAME, MESSAGING_DESTINATION_PARTITION_ID, MESSAGING_KAFKA_MESSAGE_KEY,
    MESSAGING_KAFKA_OFFSET, MESSAGING_MESSAGE_CONVERSATION_ID, MESSAGING_MESSAGE_ID,
    MESSAGING_OPERATION_TYPE,
};
use serde_json::json;

use super::*;

fn attributes(value: Value) -> Attributes {
    match value {
        Value::Object(map) => map,
        _ => panic!("test attributes must be an object"),
    }
}

fn read(value: Value) -> Messaging {
    MessagingReader::default().read(&attributes(value), "", SpanKind::Internal)
}

#[test]
fn current_names_are_read() {
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
            "partition as int and offset as text (kafkajs) are accepted",
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
        assert_eq!(read(input), expected, "{reason}");
    }
}

#[test]
fn every_generation_of_each_field_is_read() {
    // (attributes, field read back, expected, reason)
    type Field = fn(&Messaging) -> Option<String>;
    let topic: Field = |m| m.destination.clone();
    let partition: Field = |m| m.partition.map(|p| p.to_string());
    let offset: Field = |m| m.offset.map(|o| o.to_string());
    let group: Field = |m| m.consumer_group.clone();
    let operation: Field = |m| m.operation_type.clone();
    let key: Field = |m| m.message_key.clone();
    let id: Field = |m| m.message_id.clone();
    let cases: Vec<(Value, Field, Option<&str>, &str)> = vec![
        (
            json!({"messaging.destination": "orders"}),
            topic,
            Some("orders"),
            "pre-1.17 topic (Python, kafkajs 0.8, Java ≤ 1.22)",
        ),
        (
            json!({"messaging.source.name": "orders"}),
            topic,
            Some("orders"),
            "kotel consumer topic",
        ),
        (
            json!({"messaging.destination.name": "new", "messaging.destination": "old"}),
            topic,
            Some("new"),
            "the newest name wins when both are sent (dual emit)",
        ),
        (
            json!({"messaging.kafka.destination.partition": 4}),
            partition,
            Some("4"),
            "v1.17–v1.24 partition",
        ),
        (
            json!({"messaging.kafka.source.partition": 5}),
            partition,
            Some("5"),
            "kotel/sarama consumer partition",
        ),
        (
            json!({"messaging.kafka.partition": 6}),
            partition,
            Some("6"),
            "pre-1.17 partition (Python)",
        ),
        (
            json!({"messaging.kafka.message.offset": 41}),
            offset,
            Some("41"),
            "Java agent default offset",
        ),
        (
            json!({"kafka.offset": 7}),
            offset,
            Some("7"),
            "Java agent ≤ 1.20 experimental offset",
        ),
        (
            json!({"messaging.kafka.offset": "9", "messaging.kafka.message.offset": 8}),
            offset,
            Some("9"),
            "dual emit: v1.27 offset first",
        ),
        (
            json!({"messaging.kafka.consumer.group": "billing"}),
            group,
            Some("billing"),
            "Java agent default group",
        ),
        (
            json!({"messaging.kafka.consumer_group": "billing"}),
            group,
            Some("billing"),
            "pre-1.17 group",
        ),
        (
            json!({"messaging.operation": "publish"}),
            operation,
            Some("send"),
            "pre-1.26 publish is a send",
        ),
        (
            json!({"messaging.operation": "receive"}),
            operation,
            Some("receive"),
            "pre-1.26 receive",
        ),
        (
            json!({"messaging.operation.name": "poll"}),
            operation,
            Some("receive"),
            "a poll fetches",
        ),
        (
            json!({"messaging.operation.type": "process", "messaging.operation": "publish"}),
            operation,
            Some("process"),
            "the type wins over the old operation",
        ),
        (
            json!({"messaging.operation": "ack"}),
            operation,
            None,
            "an unknown word is no operation",
        ),
        (
            json!({"messaging.kafka.message_key": "k"}),
            key,
            Some("k"),
            "pre-1.17 key",
        ),
        (
            json!({"messaging.message_id": "m"}),
            id,
            Some("m"),
            "pre-1.17 message id",
        ),
    ];
    for (input, field, expected, reason) in cases {
        assert_eq!(field(&read(input)).as_deref(), expected, "{reason}");
    }
}

#[test]
fn offsets_inside_message_ids_are_read() {
    type Place<'a> = (Option<&'a str>, Option<i64>, Option<i64>);
    let cases: Vec<(Value, Place, &str)> = vec![
        (
            json!({"messaging.message.id": "orders.2.17"}),
            (Some("orders"), Some(2), Some(17)),
            "confluent-kafka's <topic>.<partition>.<offset>, topic taken too",
        ),
        (
            json!({"messaging.message.id": "shop.orders.v1.0.5", "messaging.destination": "shop.orders.v1"}),
            (Some("shop.orders.v1"), Some(0), Some(5)),
            "a topic with dots",
        ),
        (
            json!({"messaging.message.id": "orders.2.17", "messaging.destination": "payments"}),
            (Some("payments"), None, None),
            "a message id naming another topic is not this message's position",
        ),
        (
            json!({"messaging.message.id": "17", "messaging.kafka.source.partition": 1}),
            (None, Some(1), Some(17)),
            "otelsarama's bare offset on a span with a partition",
        ),
        (
            json!({"messaging.message.id": "17"}),
            (None, None, None),
            "a bare number without a partition is only an id",
        ),
        (
            json!({"messaging.message.id": "ord.x.7"}),
            (None, None, None),
            "non-decimal parts are no position",
        ),
        (
            json!({"messaging.message.id": "orders.2.17", "messaging.kafka.offset": 20}),
            (Some("orders"), Some(2), Some(20)),
            "an explicit offset wins over the message id",
        ),
    ];
    for (input, (topic, partition, offset), reason) in cases {
        let messaging = read(input);
        assert_eq!(
            (
                messaging.destination.as_deref(),
                messaging.partition,
                messaging.offset
            ),
            (topic, partition, offset),
            "{reason}"
        );
    }
}

#[test]
fn names_and_kinds_fill_in_what_attributes_leave_out() {
    let reader = MessagingReader::default();
    let kafka = attributes(json!({"messaging.system": "kafka"}));
    type Case<'a> = (
        &'a Attributes,
        &'a str,
        SpanKind,
        Option<&'a str>,
        Option<&'a str>,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (
            &kafka,
            "orders publish",
            SpanKind::Producer,
            Some("send"),
            Some("orders"),
            "Java default name",
        ),
        (
            &kafka,
            "send orders",
            SpanKind::Producer,
            Some("send"),
            Some("orders"),
            "v1.24+ name",
        ),
        (
            &kafka,
            "orders send",
            SpanKind::Producer,
            Some("send"),
            Some("orders"),
            "Python name",
        ),
        (
            &kafka,
            "poll orders",
            SpanKind::Client,
            Some("receive"),
            Some("orders"),
            "Java opt-in poll",
        ),
        (
            &kafka,
            "orders process",
            SpanKind::Consumer,
            Some("process"),
            Some("orders"),
            "Java default process",
        ),
        (
            &kafka,
            "recv",
            SpanKind::Consumer,
            Some("receive"),
            None,
            "confluent-kafka's recv wrapper",
        ),
        (
            &kafka,
            "unknown receive",
            SpanKind::Consumer,
            Some("receive"),
            None,
            "Java multi-topic receive",
        ),
        (
            &kafka,
            "orders, payments receive",
            SpanKind::Consumer,
            None,
            None,
            "aiokafka's topic list is three words",
        ),
        (
            &kafka,
            "charge card",
            SpanKind::Internal,
            None,
            None,
            "an ordinary span name",
        ),
    ];
    for (attributes, name, kind, operation, topic, reason) in cases {
        let messaging = reader.read(attributes, name, kind);
        assert_eq!(messaging.operation_type.as_deref(), operation, "{reason}");
        assert_eq!(messaging.destination.as_deref(), topic, "{reason}");
    }
    let plain = Attributes::new();
    let http = reader.read(&plain, "send orders", SpanKind::Server);
    assert_eq!(
        http.operation_type, None,
        "a non-messaging span's name is not parsed"
    );
    let topic_wins = reader.read(
        &attributes(json!({"messaging.destination.name": "invoices"})),
        "send orders",
        SpanKind::Producer,
    );
    assert_eq!(
        topic_wins.destination.as_deref(),
        Some("invoices"),
        "attributes before names"
    );
}

#[test]
fn correlation_ids_come_from_where_set_ups_put_them() {
    let cases: Vec<(Value, Option<&str>, &str)> = vec![
        (
            json!({"correlation.id": "ord-1"}),
            Some("ord-1"),
            "W3C baggage key copied by a baggage span processor",
        ),
        (
            json!({"correlation_id": "ord-2"}),
            Some("ord-2"),
            "snake case baggage key",
        ),
        (
            json!({"correlationId": "ord-3"}),
            Some("ord-3"),
            "camel case baggage key",
        ),
        (
            json!({"x-correlation-id": "ord-4"}),
            Some("ord-4"),
            "header-style key",
        ),
        (
            json!({"messaging.header.correlation_id": ["ord-5"]}),
            Some("ord-5"),
            "Java agent captured header: a string array",
        ),
        (
            json!({"messaging.header.x_correlation_id": ["", "ord-6"]}),
            Some("ord-6"),
            "the first usable element of a captured header",
        ),
        (
            json!({"messaging.message.conversation_id": "ord-7", "correlation.id": "other"}),
            Some("ord-7"),
            "causeway's own attribute comes first",
        ),
        (
            json!({"correlation.id": "  ord-8  "}),
            Some("ord-8"),
            "surrounding spaces are trimmed",
        ),
        (
            json!({"correlation.id": "ord\u{1b}[2J"}),
            None,
            "control characters are no ID",
        ),
        (
            json!({"correlation.id": "x".repeat(257)}),
            None,
            "longer than 256 bytes is no ID",
        ),
        (
            json!({"correlation.id": 42}),
            Some("42"),
            "a number as text",
        ),
        (
            json!({"order.id": "ord-9"}),
            None,
            "keys outside the list are not read",
        ),
    ];
    for (input, expected, reason) in cases {
        assert_eq!(read(input).correlation_id.as_deref(), expected, "{reason}");
    }
    let configured = MessagingReader::new(["order.id".to_owned()]);
    let messaging = configured.read(
        &attributes(json!({"order.id": "ord-9", "correlation.id": "ord-1"})),
        "",
        SpanKind::Internal,
    );
    assert_eq!(
        messaging.correlation_id.as_deref(),
        Some("ord-9"),
        "a configured list replaces the defaults"
    );
}

#[test]
fn span_names_split_both_ways() {
    let cases = [
        (
            "send orders",
            (Some(Operation::Send), Some("orders")),
            "operation first",
        ),
        (
            "orders publish",
            (Some(Operation::Send), Some("orders")),
            "topic first",
        ),
        (
            "process shop.orders-v1",
            (Some(Operation::Process), Some("shop.orders-v1")),
            "dots and dashes in a topic",
        ),
        (
            "publish",
            (Some(Operation::Send), None),
            "operation alone (.NET with no topic)",
        ),
        ("orders", (None, None), "a bare word is no operation"),
        (
            "a b c",
            (None, None),
            "three words are not a messaging name",
        ),
        ("", (None, None), "empty"),
    ];
    for (name, (operation, topic), reason) in cases {
        let (got_operation, got_topic) = parse_span_name(name);
        assert_eq!(
            (got_operation, got_topic.as_deref()),
            (operation, topic),
            "{reason}"
        );
    }
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn any_name_and_message_id_are_read_without_panicking(name in ".{0,64}", id in ".{0,64}") {
            let reader = MessagingReader::default();
            let attributes = attributes(json!({"messaging.message.id": id, "messaging.system": "kafka"}));
            let _ = reader.read(&attributes, &name, SpanKind::Consumer);
        }
    }
}
