//! Dead-letter forwarding: a failed message goes to a DLQ topic with its original headers
//! and the reason, topic, partition and offset it failed with.

use opentelemetry::Context;
use opentelemetry::KeyValue;
use opentelemetry::trace::TraceContextExt;
use rdkafka::message::Message;

use crate::correlation::correlation_id;
use crate::headers::Headers;
use crate::kafka_headers::from_kafka;
use crate::producer::{Delivered, ProducerError, TracedProducer};
use crate::propagation::MessageMeta;
use causeway_conventions::{attribute, header};

/// The headers of a dead-lettered copy: the original ones plus the DLQ reason and origin.
pub fn dead_letter_headers(
    original: &Headers,
    reason: &str,
    topic: &str,
    partition: i32,
    offset: i64,
) -> Headers {
    let mut headers = original.clone();
    headers.set(header::DLQ_REASON, reason);
    headers.set(header::DLQ_ORIGINAL_TOPIC, topic);
    headers.set(header::DLQ_ORIGINAL_PARTITION, partition.to_string());
    headers.set(header::DLQ_ORIGINAL_OFFSET, offset.to_string());
    headers
}

/// Forwards `message` to `dlq_topic` under `parent` (the process context of the failed
/// message). The copy keeps the original payload, key and headers, CloudEvents id and type
/// included; only `traceparent`/`tracestate` are replaced by the dead-letter send span, a
/// child of `parent`, so the hop shows in the trace. The reason is also recorded as
/// `causeway.dlq.reason` on the process span.
pub async fn forward_to_dead_letter<M: Message>(
    producer: &TracedProducer,
    message: &M,
    dlq_topic: &str,
    reason: &str,
    parent: &Context,
) -> Result<Delivered, ProducerError> {
    let original = from_kafka(message.headers());
    let headers = dead_letter_headers(
        &original,
        reason,
        message.topic(),
        message.partition(),
        message.offset(),
    );
    parent
        .span()
        .set_attribute(KeyValue::new(attribute::DLQ_REASON, reason.to_owned()));
    let meta = MessageMeta {
        topic: dlq_topic.to_owned(),
        key: message
            .key()
            .and_then(|key| std::str::from_utf8(key).ok())
            .map(str::to_owned),
        correlation_id: correlation_id(parent).map(str::to_owned),
        event_id: original.get_str(header::CE_ID).map(str::to_owned),
        event_type: original.get_str(header::CE_TYPE).map(str::to_owned),
        event_source: original.get_str(header::CE_SOURCE).map(str::to_owned),
        data_schema: original.get_str(header::CE_DATASCHEMA).map(str::to_owned),
        partition: None,
    };
    producer
        .send_with_headers(meta, message.payload().unwrap_or_default(), headers, parent)
        .await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn keeps_original_headers_and_adds_the_origin() {
        let original = Headers::from_entries(vec![
            ("ce_id".into(), Some(b"e-1".to_vec())),
            ("custom".into(), None),
            (header::DLQ_REASON.into(), Some(b"older reason".to_vec())),
        ]);
        let headers = dead_letter_headers(&original, "schema mismatch", "orders", 3, 77);
        let cases = [
            (header::CE_ID, Some("e-1"), "original header kept"),
            (
                header::DLQ_REASON,
                Some("schema mismatch"),
                "reason replaces an older one",
            ),
            (header::DLQ_ORIGINAL_TOPIC, Some("orders"), "origin topic"),
            (
                header::DLQ_ORIGINAL_PARTITION,
                Some("3"),
                "origin partition",
            ),
            (header::DLQ_ORIGINAL_OFFSET, Some("77"), "origin offset"),
        ];
        for (name, expected, reason) in cases {
            assert_eq!(headers.get_str(name), expected, "{reason}");
        }
        assert_eq!(
            headers.get_all_raw("custom").collect::<Vec<_>>(),
            vec![None],
            "null header kept"
        );
    }
}
