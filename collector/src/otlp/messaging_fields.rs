//! The messaging fields of a span, read from whichever generation of the OpenTelemetry
//! messaging conventions its instrumentation speaks (`causeway_conventions::messaging`
//! lists every name, newest first), and from its name and kind when attributes are silent.
//!
//! What instrumentations in use really send (docs/INTEROP.md cites each source):
//! - the topic as `messaging.destination.name`, `messaging.destination` or, on kotel's
//!   consumer spans, `messaging.source.name`; partition and offset under four and three
//!   names, as integers or text (kafkajs sends offsets as text);
//! - the operation as `messaging.operation.type`, `.name` or the pre-1.26 `messaging.operation`
//!   (`publish`), or not at all (kafka-python, confluent-kafka's `recv`, old kafkajs): then
//!   the span name (`<topic> publish`, `send <topic>`, `poll <topic>`, …) and kind decide;
//! - Python's confluent-kafka consumer puts the offset only inside `messaging.message.id`
//!   as `<topic>.<partition>.<offset>`; otelsarama puts the bare offset there;
//! - the business correlation ID under a key the set-up chose (a baggage key copied by a
//!   baggage span processor, a captured header as a string array), never under the
//!   conventions' `conversation_id` unless causeway's own crate wrote it.
//!
//! Pure: attributes, name and kind in, [`Messaging`] out.

use std::sync::Arc;

use causeway_conventions::attribute::{
    CLOUDEVENTS_EVENT_ID, CLOUDEVENTS_EVENT_TYPE, MESSAGING_SYSTEM,
};
use causeway_conventions::messaging::{
    CONSUMER_GROUP, DEFAULT_CORRELATION_KEYS, DESTINATION, MESSAGE_ID, MESSAGE_KEY, OFFSET,
    OPERATION, Operation, PARTITION,
};
use causeway_storage::{Attributes, Messaging, SpanKind};
use serde_json::Value;

/// The longest correlation ID kept; a longer value is not taken as one.
pub const MAX_CORRELATION_ID_BYTES: usize = 256;

/// Reads messaging fields, with the correlation keys of the collector's `[flows]` config.
#[derive(Debug, Clone)]
pub struct MessagingReader {
    correlation_keys: Arc<[String]>,
}

impl Default for MessagingReader {
    fn default() -> Self {
        MessagingReader::new(DEFAULT_CORRELATION_KEYS.iter().map(|key| (*key).to_owned()))
    }
}

impl MessagingReader {
    /// A reader taking the correlation ID from the first of `correlation_keys` a span has.
    pub fn new(correlation_keys: impl IntoIterator<Item = String>) -> Self {
        MessagingReader {
            correlation_keys: correlation_keys.into_iter().collect(),
        }
    }

    /// The correlation keys, in the order they are tried.
    pub fn correlation_keys(&self) -> &[String] {
        &self.correlation_keys
    }

    /// Pulls the messaging fields out of a span. Missing or unusable values are `None`;
    /// partition and offset are accepted as integers or as decimal text.
    pub fn read(&self, attributes: &Attributes, name: &str, kind: SpanKind) -> Messaging {
        let first_text = |keys: &[&str]| keys.iter().find_map(|key| text_at(attributes, key));
        let first_number = |keys: &[&str]| {
            keys.iter()
                .find_map(|key| attributes.get(*key).and_then(integer_of))
        };
        let message_id =
            first_text(MESSAGE_ID).or_else(|| text_at(attributes, CLOUDEVENTS_EVENT_ID));
        let mut messaging = Messaging {
            correlation_id: self.correlation_id(attributes),
            event_type: text_at(attributes, CLOUDEVENTS_EVENT_TYPE),
            destination: first_text(DESTINATION),
            partition: first_number(PARTITION),
            offset: first_number(OFFSET),
            consumer_group: first_text(CONSUMER_GROUP),
            operation_type: OPERATION
                .iter()
                .filter_map(|key| attributes.get(*key).and_then(Value::as_str))
                .find_map(Operation::parse)
                .map(|operation| operation.type_value().to_owned()),
            message_key: first_text(MESSAGE_KEY),
            message_id,
        };
        if let Some(id) = messaging.message_id.take() {
            fill_from_message_id(&mut messaging, &id);
            messaging.message_id = Some(id);
        }
        let is_messaging = attributes.contains_key(MESSAGING_SYSTEM)
            || matches!(kind, SpanKind::Producer | SpanKind::Consumer)
            || messaging.destination.is_some()
            || messaging.operation_type.is_some();
        if is_messaging && (messaging.operation_type.is_none() || messaging.destination.is_none()) {
            let (operation, topic) = parse_span_name(name);
            if messaging.operation_type.is_none() {
                messaging.operation_type = operation.map(|o| o.type_value().to_owned());
            }
            if messaging.destination.is_none() {
                messaging.destination = topic;
            }
        }
        messaging
    }

    /// The first usable value of the correlation keys: a non-empty string (or the first
    /// of a string array, as captured headers are), a number as text.
    fn correlation_id(&self, attributes: &Attributes) -> Option<String> {
        self.correlation_keys.iter().find_map(|key| {
            let value = match attributes.get(key.as_str())? {
                Value::Array(items) => items.iter().find_map(text_of)?,
                other => text_of(other)?,
            };
            let value = value.trim();
            (!value.is_empty()
                && value.len() <= MAX_CORRELATION_ID_BYTES
                && !value.chars().any(char::is_control))
            .then(|| value.to_owned())
        })
    }
}

/// Fills partition and offset (and the topic, when missing) from a message id that holds
/// them: `<topic>.<partition>.<offset>` (Python's confluent-kafka consumer) or a bare
/// offset on a span whose partition is known (otelsarama).
fn fill_from_message_id(messaging: &mut Messaging, id: &str) {
    if let Some((topic, partition, offset)) = topic_partition_offset(id) {
        let same_topic = messaging.destination.as_deref().is_none_or(|t| t == topic);
        if same_topic {
            messaging
                .destination
                .get_or_insert_with(|| topic.to_owned());
            messaging.partition.get_or_insert(partition);
            messaging.offset.get_or_insert(offset);
        }
    } else if messaging.offset.is_none()
        && messaging.partition.is_some()
        && !id.is_empty()
        && id.bytes().all(|b| b.is_ascii_digit())
    {
        messaging.offset = id.parse().ok();
    }
}

/// Splits `<topic>.<partition>.<offset>`; topics may hold dots, so the last two parts are
/// taken, and both must be decimal.
fn topic_partition_offset(id: &str) -> Option<(&str, i64, i64)> {
    let (rest, offset) = id.rsplit_once('.')?;
    let (topic, partition) = rest.rsplit_once('.')?;
    let digits = |text: &str| !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    if topic.is_empty() || !digits(partition) || !digits(offset) {
        return None;
    }
    Some((topic, partition.parse().ok()?, offset.parse().ok()?))
}

/// The operation and topic a messaging span's name gives: `<op> <topic>` (v1.24+ and
/// causeway), `<topic> <op>` (older generations, kotel, Python), or an operation alone
/// (`recv`, `poll`, `publish`). Topics hold no spaces; `unknown` and lists of topics are
/// no topic.
fn parse_span_name(name: &str) -> (Option<Operation>, Option<String>) {
    let words: Vec<&str> = name.split_whitespace().collect();
    let operation_of = |word: &str| {
        if word.eq_ignore_ascii_case("recv") {
            Some(Operation::Receive)
        } else {
            Operation::parse(word)
        }
    };
    let topic_of = |word: &str| {
        let usable = !word.eq_ignore_ascii_case("unknown") && !word.contains(',');
        usable.then(|| word.to_owned())
    };
    match words.as_slice() {
        [only] => (operation_of(only), None),
        [first, second] => match (operation_of(first), operation_of(second)) {
            (Some(operation), _) => (Some(operation), topic_of(second)),
            (None, Some(operation)) => (Some(operation), topic_of(first)),
            (None, None) => (None, None),
        },
        _ => (None, None),
    }
}

/// A non-empty string attribute, or a number or bool written as text.
fn text_at(attributes: &Attributes, key: &str) -> Option<String> {
    attributes.get(key).and_then(text_of)
}

/// A non-empty string, or a number or bool written as text (some SDKs send ids as ints).
pub fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::String(text) if !text.is_empty() => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

/// An integer, or decimal text holding one.
pub fn integer_of(value: &Value) -> Option<i64> {
    match value {
        Value::Number(number) => number.as_i64(),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
#[path = "messaging_fields_tests.rs"]
mod tests;
