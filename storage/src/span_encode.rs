//! Spans turned into column values, ready for the writer. Encoding (JSON serialisation)
//! happens off the single writer, so that the writer only binds and steps.

use std::collections::BTreeMap;
use std::sync::Arc;

use causeway_conventions::attribute::OPERATION_SEND;

use crate::attribute_filter::{push_pair_hashes, push_text_pair_hashes};
use crate::record::{Attributes, SpanKind, SpanRecord, StatusCode};

/// One span's column values, in the order of [`crate::span_write`]'s insert.
#[derive(Debug, Clone)]
pub(crate) struct SpanRow {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent_span_id: Option<[u8; 8]>,
    pub name: String,
    pub kind: i64,
    pub service_name: String,
    pub scope_name: String,
    pub start_ns: i64,
    pub end_ns: i64,
    pub status_code: i64,
    pub status_message: String,
    pub attributes: String,
    /// Shared by every span of one resource: serialised once.
    pub resource: Arc<str>,
    pub events: String,
    pub correlation_id: Option<String>,
    pub message_id: Option<String>,
    pub event_type: Option<String>,
    pub destination: Option<String>,
    pub partition: Option<i64>,
    pub offset: Option<i64>,
    pub consumer_group: Option<String>,
    pub operation_type: Option<String>,
    pub message_key: Option<String>,
}

/// One link's column values.
#[derive(Debug, Clone)]
pub(crate) struct LinkRow {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub linked_trace_id: [u8; 16],
    pub linked_span_id: [u8; 8],
    pub attributes: String,
}

/// What one batch says about a correlation: its time range and whether anything failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CorrelationSummary {
    pub first_start_ns: i64,
    pub last_end_ns: i64,
    pub has_error: bool,
}

impl CorrelationSummary {
    pub(crate) fn merge(&mut self, other: CorrelationSummary) {
        self.first_start_ns = self.first_start_ns.min(other.first_start_ns);
        self.last_end_ns = self.last_end_ns.max(other.last_end_ns);
        self.has_error |= other.has_error;
    }
}

/// Whether a span sends a message: a `PRODUCER` span, or a `send` operation (the collector
/// stores every generation's operation as its v1.26+ type).
fn is_send(record: &SpanRecord) -> bool {
    match record.messaging.operation_type.as_deref() {
        Some(operation) => operation == OPERATION_SEND,
        None => record.kind == SpanKind::Producer,
    }
}

/// A batch of spans encoded for storage. Build it where the spans arrive (in parallel),
/// then hand it to [`crate::Store::write_spans`].
#[derive(Debug, Clone, Default)]
pub struct EncodedSpans {
    pub(crate) spans: Vec<SpanRow>,
    pub(crate) links: Vec<LinkRow>,
    pub(crate) correlations: BTreeMap<String, CorrelationSummary>,
    /// Traces holding a send span without a correlation ID: candidate roots of flows
    /// that carry none.
    pub(crate) roots: BTreeMap<[u8; 16], CorrelationSummary>,
    pub(crate) topology: BTreeMap<(String, String), (i64, i64)>,
    /// The hashes of the attribute pairs of the spans and their resources, for the open
    /// segment's attribute filter (`attribute_filter`).
    pub(crate) attribute_pairs: Vec<u64>,
    /// The resource whose pairs were hashed last, so that a run of spans of one resource
    /// hashes them once.
    hashed_resource: Option<Arc<str>>,
}

impl EncodedSpans {
    /// Encodes spans for storage.
    pub fn encode(records: &[SpanRecord]) -> EncodedSpans {
        EncodedSpans::encode_owned(records.to_vec())
    }

    /// Encodes spans for storage, moving their strings instead of copying them. Spans of
    /// the same resource share one serialised copy of it.
    pub fn encode_owned(records: Vec<SpanRecord>) -> EncodedSpans {
        let mut encoded = EncodedSpans::default();
        let mut last_resource: Option<(Attributes, Arc<str>)> = None;
        for mut record in records {
            let resource = match &last_resource {
                Some((attributes, json)) if *attributes == record.resource => Arc::clone(json),
                _ => {
                    let json = EncodedSpans::serialise_resource(&record.resource);
                    last_resource = Some((std::mem::take(&mut record.resource), Arc::clone(&json)));
                    json
                }
            };
            encoded.push_with_resource(record, resource);
        }
        encoded
    }

    /// A resource serialised as the store keeps it, to share between its spans in
    /// [`EncodedSpans::push_with_resource`].
    pub fn serialise_resource(resource: &Attributes) -> Arc<str> {
        to_json(resource).into()
    }

    /// Adds one span whose resource is already serialised (`resource`); the record's own
    /// `resource` field is not read.
    pub fn push_with_resource(&mut self, mut record: SpanRecord, resource: Arc<str>) {
        for text in [
            &mut record.name,
            &mut record.service_name,
            &mut record.scope_name,
            &mut record.status_message,
        ] {
            without_nul(text);
        }
        let messaging = &mut record.messaging;
        for text in [
            &mut messaging.correlation_id,
            &mut messaging.message_id,
            &mut messaging.event_type,
            &mut messaging.destination,
            &mut messaging.consumer_group,
            &mut messaging.operation_type,
            &mut messaging.message_key,
        ] {
            optional_without_nul(text);
        }
        // Replaced in the map itself, so that the attribute filter hashes what is stored.
        if map_has_nul(&record.attributes) {
            record.attributes = map_without_nul(std::mem::take(&mut record.attributes));
        }
        self.note_summaries(&record);
        push_pair_hashes(&record.attributes, &mut self.attribute_pairs);
        if !self
            .hashed_resource
            .as_ref()
            .is_some_and(|hashed| Arc::ptr_eq(hashed, &resource))
        {
            push_text_pair_hashes(&resource, &mut self.attribute_pairs);
            self.hashed_resource = Some(Arc::clone(&resource));
        }
        for link in &record.links {
            self.links.push(LinkRow {
                trace_id: record.trace_id.0,
                span_id: record.span_id.0,
                linked_trace_id: link.trace_id.0,
                linked_span_id: link.span_id.0,
                attributes: to_json(&link.attributes),
            });
        }
        let messaging = record.messaging;
        self.spans.push(SpanRow {
            trace_id: record.trace_id.0,
            span_id: record.span_id.0,
            parent_span_id: record.parent_span_id.map(|id| id.0),
            name: record.name,
            kind: record.kind.code(),
            service_name: record.service_name,
            scope_name: record.scope_name,
            start_ns: record.start_ns,
            end_ns: record.end_ns,
            status_code: record.status_code.code(),
            status_message: record.status_message,
            // Its NUL are replaced in the map above: no second look at the text.
            attributes: json_text(&record.attributes),
            resource,
            events: to_json(&record.events),
            correlation_id: messaging.correlation_id,
            message_id: messaging.message_id,
            event_type: messaging.event_type,
            destination: messaging.destination,
            partition: messaging.partition,
            offset: messaging.offset,
            consumer_group: messaging.consumer_group,
            operation_type: messaging.operation_type,
            message_key: messaging.message_key,
        });
    }

    /// Folds one span into the batch's correlation and topology summaries.
    fn note_summaries(&mut self, record: &SpanRecord) {
        let messaging = &record.messaging;
        let summary = CorrelationSummary {
            first_start_ns: record.start_ns,
            last_end_ns: record.end_ns.max(record.start_ns),
            has_error: record.status_code == StatusCode::Error,
        };
        if let Some(correlation) = &messaging.correlation_id {
            match self.correlations.get_mut(correlation) {
                Some(known) => known.merge(summary),
                None => {
                    self.correlations.insert(correlation.clone(), summary);
                }
            }
        } else if is_send(record) {
            self.roots
                .entry(record.trace_id.0)
                .and_modify(|known| known.merge(summary))
                .or_insert(summary);
        }
        if let (SpanKind::Consumer, Some(topic), Some(group)) = (
            record.kind,
            &messaging.destination,
            &messaging.consumer_group,
        ) {
            self.topology
                .entry((topic.clone(), group.clone()))
                .and_modify(|(first, last)| {
                    *first = (*first).min(record.start_ns);
                    *last = (*last).max(record.start_ns);
                })
                .or_insert((record.start_ns, record.start_ns));
        }
    }

    /// An empty batch with room for `spans` spans and `links` links, so that filling it
    /// never grows (and copies) it.
    pub fn with_capacity(spans: usize, links: usize) -> EncodedSpans {
        EncodedSpans {
            spans: Vec::with_capacity(spans),
            links: Vec::with_capacity(links),
            ..EncodedSpans::default()
        }
    }

    /// Number of links in the batch.
    pub fn link_count(&self) -> usize {
        self.links.len()
    }

    /// Moves every span of `other` into this batch.
    pub fn append(&mut self, other: EncodedSpans) {
        self.spans.extend(other.spans);
        self.links.extend(other.links);
        self.attribute_pairs.extend(other.attribute_pairs);
        for (correlation, summary) in other.correlations {
            self.correlations
                .entry(correlation)
                .and_modify(|known| known.merge(summary))
                .or_insert(summary);
        }
        for (trace, summary) in other.roots {
            self.roots
                .entry(trace)
                .and_modify(|known| known.merge(summary))
                .or_insert(summary);
        }
        for (key, (first, last)) in other.topology {
            self.topology
                .entry(key)
                .and_modify(|(known_first, known_last)| {
                    *known_first = (*known_first).min(first);
                    *known_last = (*known_last).max(last);
                })
                .or_insert((first, last));
        }
    }

    /// What one span row occupies before its texts (which [`EncodedSpans::memory_bytes`]
    /// counts apart), for estimating a batch before it exists.
    pub const SPAN_ROW_BYTES: usize = std::mem::size_of::<SpanRow>();
    /// What one link row occupies before its attribute text.
    pub const LINK_ROW_BYTES: usize = std::mem::size_of::<LinkRow>();

    /// About how many bytes of memory the batch holds: its rows, their texts, and the
    /// summaries, with each allocation's bookkeeping. Receivers charge this to the memory
    /// budget until the batch is committed.
    pub fn memory_bytes(&self) -> usize {
        const ALLOCATION: usize = 16;
        let text = |s: &String| {
            if s.capacity() == 0 {
                0
            } else {
                s.capacity() + ALLOCATION
            }
        };
        let optional = |s: &Option<String>| s.as_ref().map_or(0, text);
        let mut bytes = self.spans.capacity() * Self::SPAN_ROW_BYTES
            + self.links.capacity() * Self::LINK_ROW_BYTES
            + self.attribute_pairs.capacity() * std::mem::size_of::<u64>();
        let mut last_resource: Option<&Arc<str>> = None;
        for row in &self.spans {
            bytes += text(&row.name)
                + text(&row.service_name)
                + text(&row.scope_name)
                + text(&row.status_message)
                + text(&row.attributes)
                + text(&row.events)
                + optional(&row.correlation_id)
                + optional(&row.message_id)
                + optional(&row.event_type)
                + optional(&row.destination)
                + optional(&row.consumer_group)
                + optional(&row.operation_type)
                + optional(&row.message_key);
            if !last_resource.is_some_and(|last| Arc::ptr_eq(last, &row.resource)) {
                bytes += row.resource.len() + 2 * ALLOCATION;
                last_resource = Some(&row.resource);
            }
        }
        for link in &self.links {
            bytes += text(&link.attributes);
        }
        // B-tree nodes hold about one entry per 64 bytes of overhead.
        for correlation in self.correlations.keys() {
            bytes += text(correlation) + 64;
        }
        for (topic, group) in self.topology.keys() {
            bytes += text(topic) + text(group) + 64;
        }
        bytes
    }

    /// Number of spans in the batch.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether the batch holds no span.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }
}

/// JSON text of `value`, as serialised.
fn json_text<T: serde::Serialize>(value: &T) -> String {
    // Serialising maps with string keys and JSON values cannot fail.
    serde_json::to_string(value).unwrap_or_else(|_| String::from("null"))
}

/// The character NUL (U+0000) becomes in stored text: PostgreSQL's text cannot hold NUL,
/// and a span must not fail the write of every span batched with it.
const NUL_STORED_AS: &str = "\u{FFFD}";

/// Replaces every NUL in `text` (see [`NUL_STORED_AS`]).
fn without_nul(text: &mut String) {
    if text.contains('\0') {
        *text = text.replace('\0', NUL_STORED_AS);
    }
}

/// [`without_nul`] on a field that may be absent.
fn optional_without_nul(text: &mut Option<String>) {
    if let Some(text) = text {
        without_nul(text);
    }
}

/// Replaces NUL in every key and string of a JSON value.
fn json_without_nul(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::String(mut text) => {
            without_nul(&mut text);
            Value::String(text)
        }
        Value::Array(items) => Value::Array(items.into_iter().map(json_without_nul).collect()),
        Value::Object(map) => Value::Object(map_without_nul(map)),
        other => other,
    }
}

/// Replaces NUL in every key and string of a map.
fn map_without_nul(map: Attributes) -> Attributes {
    map.into_iter()
        .map(|(mut key, value)| {
            without_nul(&mut key);
            (key, json_without_nul(value))
        })
        .collect()
}

/// Whether a key or string of `map` holds NUL.
fn map_has_nul(map: &Attributes) -> bool {
    fn has_nul(value: &serde_json::Value) -> bool {
        use serde_json::Value;
        match value {
            Value::String(text) => text.contains('\0'),
            Value::Array(items) => items.iter().any(has_nul),
            Value::Object(map) => map_has_nul(map),
            _ => false,
        }
    }
    map.iter()
        .any(|(key, value)| key.contains('\0') || has_nul(value))
}

/// JSON text as the store keeps it. A NUL in a string is written `\u0000`, which
/// PostgreSQL's `jsonb` refuses (the flow rules read attributes as `jsonb`): such text is
/// written again with NUL replaced.
fn to_json<T: serde::Serialize>(value: &T) -> String {
    let json = json_text(value);
    if !json.contains("\\u0000") {
        return json;
    }
    serde_json::to_value(value)
        .map(json_without_nul)
        .and_then(|value| serde_json::to_string(&value))
        .unwrap_or(json)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::ids::{SpanId, TraceId};
    use crate::testsuite;

    fn span(id: u8, service: &str) -> SpanRecord {
        testsuite::span(TraceId([1; 16]), SpanId([id; 8]))
            .name(format!("span {id}"))
            .kind(SpanKind::Producer)
            .service(service)
            .times(i64::from(id), i64::from(id) + 5)
            .build()
    }

    #[test]
    fn each_span_keeps_its_own_resource_and_runs_share_one_copy() {
        let records = vec![
            span(1, "order"),
            span(2, "order"),
            span(3, "billing"),
            span(4, "order"),
        ];
        let encoded = EncodedSpans::encode_owned(records.clone());
        let resources: Vec<&str> = encoded.spans.iter().map(|row| &*row.resource).collect();
        assert_eq!(
            resources,
            [
                r#"{"service.name":"order"}"#,
                r#"{"service.name":"order"}"#,
                r#"{"service.name":"billing"}"#,
                r#"{"service.name":"order"}"#,
            ],
            "a change of resource is noticed, also back to an earlier one"
        );
        assert!(
            Arc::ptr_eq(&encoded.spans[0].resource, &encoded.spans[1].resource),
            "consecutive spans of one resource share its serialised copy"
        );
        let borrowed = EncodedSpans::encode(&records);
        let names = |e: &EncodedSpans| e.spans.iter().map(|r| r.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&borrowed), names(&encoded), "both paths encode alike");
    }
}
