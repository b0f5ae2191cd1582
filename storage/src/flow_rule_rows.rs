//! The rows the flow rules read and write (`flow_rule_store`): the compact span row a pass
//! reads, the due-time and seen rows, each flow alert's counts, one pass's writes; the
//! columns they are selected with and their decoders from rusqlite rows.

use std::collections::BTreeMap;

use compact_str::CompactString;
use rusqlite::Row;

use causeway_conventions::attribute;
use causeway_conventions::messaging::Operation;

use crate::alert_query::AlertRow;
use crate::ids::{SpanId, TraceId};
use crate::record::{SpanKind, StatusCode};

/// One span as the flow rules see it: ids, messaging fields, status, and the reason a
/// consumer recorded for losing its trace context. No attributes, resource or events.
///
/// Its text is held in [`CompactString`]s: a pass reads hundreds of thousands of rows, and
/// names and ids of up to 24 bytes (most service names, topics, groups, event types and
/// short ids) then need no allocation of their own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSpan {
    /// The row's position, the cursor's unit: its rowid on SQLite, the id of the
    /// transaction that wrote it on PostgreSQL.
    pub rowid: i64,
    /// The row's segment on SQLite, its day partition on PostgreSQL (to find its links).
    pub segment: i64,
    /// The span's trace.
    pub trace_id: TraceId,
    /// The span.
    pub span_id: SpanId,
    /// Its parent, if any.
    pub parent_span_id: Option<SpanId>,
    /// Span kind.
    pub kind: SpanKind,
    /// `service.name`.
    pub service: CompactString,
    /// Start, in nanoseconds since the Unix epoch.
    pub start_ns: i64,
    /// Status code.
    pub status: StatusCode,
    /// Correlation ID.
    pub correlation_id: Option<CompactString>,
    /// Message id.
    pub message_id: Option<CompactString>,
    /// Event type.
    pub event_type: Option<CompactString>,
    /// Topic.
    pub topic: Option<CompactString>,
    /// Partition.
    pub partition: Option<i64>,
    /// Offset.
    pub offset: Option<i64>,
    /// Consumer group.
    pub consumer_group: Option<CompactString>,
    /// Messaging operation (`None` for a value no generation names).
    pub operation: Option<Operation>,
    /// `causeway.propagation.break`, when the span recorded one (and it was asked for).
    pub propagation_break: Option<CompactString>,
    /// When the collector stored it, in nanoseconds since the Unix epoch.
    pub ingested_ns: i64,
}

/// A send waiting for its processing under one `incomplete_after` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueItem {
    /// The send span.
    pub send_span_id: SpanId,
    /// The rule's name.
    pub rule: String,
    /// The send's trace.
    pub send_trace_id: TraceId,
    /// When the groups are late, in nanoseconds since the Unix epoch.
    pub due_ns: i64,
    /// Whether it was found late (and is counted by its alert).
    pub overdue: bool,
    /// The topic.
    pub topic: String,
    /// The message id, when the send recorded one.
    pub message_id: Option<String>,
    /// The partition, when recorded.
    pub partition: Option<i64>,
    /// The offset, when recorded.
    pub offset: Option<i64>,
    /// The correlation ID, when the send carried one.
    pub correlation_id: Option<String>,
    /// The event type.
    pub event_type: Option<String>,
    /// The sending service.
    pub producer: String,
    /// Send start, in nanoseconds since the Unix epoch.
    pub sent_ns: i64,
    /// The expected groups that have not processed it yet.
    pub groups: Vec<String>,
}

impl DueItem {
    /// The key it is stored under.
    pub fn key(&self) -> DueKey {
        DueKey {
            sent_ns: self.sent_ns,
            send_span_id: self.send_span_id,
            rule: self.rule.clone(),
        }
    }
}

/// What identifies a [`DueItem`]: its send (with the send's start, which SQLite stores
/// the items in order of) and its rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueKey {
    /// The send's start, in nanoseconds since the Unix epoch.
    pub sent_ns: i64,
    /// The send span.
    pub send_span_id: SpanId,
    /// The rule's name.
    pub rule: String,
}

/// A send whose due items a consumption looks for: its trace and span, and its start when
/// the caller knows it (SQLite stores the items by it; otherwise it is read from the send's
/// stored span).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendRef {
    /// The send's trace.
    pub trace_id: TraceId,
    /// The send span.
    pub span_id: SpanId,
    /// The send's start, in nanoseconds since the Unix epoch, if known.
    pub sent_ns: Option<i64>,
}

/// A consumption evaluated before its send was seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenMark {
    /// The group that consumed (`None`: the consumer names no group).
    pub consumer_group: Option<String>,
    /// The span its trace context points at (its parent, or a link).
    pub source_span_id: Option<SpanId>,
    /// The topic.
    pub topic: Option<String>,
    /// The message id.
    pub message_id: Option<String>,
    /// The partition.
    pub partition: Option<i64>,
    /// The offset.
    pub offset: Option<i64>,
}

/// What one flow alert has counted in its current episode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectRow {
    /// The alert's fingerprint.
    pub fingerprint: String,
    /// The alert's labels.
    pub labels: BTreeMap<String, String>,
    /// Matches counted.
    pub count: i64,
    /// The first flows matched (correlation IDs, or trace IDs).
    pub flow_ids: Vec<String>,
    /// First match, in nanoseconds since the Unix epoch.
    pub first_seen_ns: i64,
    /// Latest match.
    pub last_seen_ns: i64,
}

/// Everything one pass (or one chunk of it) changes, written in one transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlowPassWrite {
    /// The new cursor, when it moved.
    pub cursor: Option<i64>,
    /// Due items to insert or replace.
    pub due_upserts: Vec<DueItem>,
    /// Due items to delete.
    pub due_deletes: Vec<DueKey>,
    /// Consumptions to remember.
    pub seen: Vec<SeenMark>,
    /// Forget consumptions remembered before this time.
    pub forget_seen_before_ns: Option<i64>,
    /// Alert counts to insert or replace.
    pub subjects: Vec<SubjectRow>,
    /// Alert counts to delete, by fingerprint.
    pub subjects_deleted: Vec<String>,
    /// Alert rows to insert or replace.
    pub alerts: Vec<AlertRow>,
}

/// The columns of [`RuleSpan`], in order; the propagation break (read from the attributes)
/// only when `breaks`.
pub(crate) fn rule_span_columns(breaks: bool) -> String {
    let key = attribute::PROPAGATION_BREAK;
    let propagation_break = if breaks {
        format!(
            "CASE WHEN instr(attributes, '{key}') > 0 \
             THEN CAST(json_extract(attributes, '$.\"{key}\"') AS TEXT) END"
        )
    } else {
        "NULL".to_owned()
    };
    format!(
        "rowid, segment, trace_id, span_id, parent_span_id, kind, service_name, start_ns, \
         status_code, correlation_id, message_id, event_type, destination, \
         partition_id, kafka_offset, consumer_group, operation_type, {propagation_break}, \
         ingested_ns"
    )
}

/// The most rows a range read makes room for before reading.
pub(crate) const MAX_PRESIZED_CHUNK: usize = 100_000;

pub(crate) const DUE_COLUMNS: &str = "send_span_id, rule, send_trace_id, due_ns, overdue, topic, \
    message_id, partition_id, kafka_offset, correlation_id, event_type, producer, sent_ns, groups";

pub(crate) fn corrupt(what: &str, error: impl std::fmt::Display) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        0,
        rusqlite::types::Type::Blob,
        format!("{what}: {error}").into(),
    )
}

// Ids and the operation are read in place (no copy): a pass reads hundreds of thousands.
pub(crate) fn trace_at(row: &Row<'_>, index: usize) -> rusqlite::Result<TraceId> {
    TraceId::from_bytes(row.get_ref(index)?.as_blob()?).map_err(|e| corrupt("trace id", e))
}

pub(crate) fn span_at(row: &Row<'_>, index: usize) -> rusqlite::Result<SpanId> {
    SpanId::from_bytes(row.get_ref(index)?.as_blob()?).map_err(|e| corrupt("span id", e))
}

/// Text read in place into a [`CompactString`] (no allocation for up to 24 bytes).
fn text_at(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<CompactString>> {
    Ok(row
        .get_ref(index)?
        .as_str_or_null()?
        .map(CompactString::new))
}

pub(crate) fn rule_span(row: &Row<'_>) -> rusqlite::Result<RuleSpan> {
    let parent = row.get_ref(4)?.as_blob_or_null()?;
    let operation = row.get_ref(16)?.as_str_or_null()?;
    Ok(RuleSpan {
        rowid: row.get(0)?,
        segment: row.get(1)?,
        trace_id: trace_at(row, 2)?,
        span_id: span_at(row, 3)?,
        // An invalid stored parent reads as none, as the collector would have dropped it.
        parent_span_id: parent.and_then(|bytes| SpanId::from_bytes(bytes).ok()),
        kind: SpanKind::from_code(row.get(5)?),
        service: CompactString::new(row.get_ref(6)?.as_str()?),
        start_ns: row.get(7)?,
        status: StatusCode::from_code(row.get(8)?),
        correlation_id: text_at(row, 9)?,
        message_id: text_at(row, 10)?,
        event_type: text_at(row, 11)?,
        topic: text_at(row, 12)?,
        partition: row.get(13)?,
        offset: row.get(14)?,
        consumer_group: text_at(row, 15)?,
        operation: operation.and_then(Operation::parse),
        propagation_break: text_at(row, 17)?,
        ingested_ns: row.get(18)?,
    })
}

pub(crate) fn due_item(row: &Row<'_>) -> rusqlite::Result<DueItem> {
    let groups: String = row.get(13)?;
    Ok(DueItem {
        send_span_id: span_at(row, 0)?,
        rule: row.get(1)?,
        send_trace_id: trace_at(row, 2)?,
        due_ns: row.get(3)?,
        overdue: row.get::<_, i64>(4)? != 0,
        topic: row.get(5)?,
        message_id: row.get(6)?,
        partition: row.get(7)?,
        offset: row.get(8)?,
        correlation_id: row.get(9)?,
        event_type: row.get(10)?,
        producer: row.get(11)?,
        sent_ns: row.get(12)?,
        groups: serde_json::from_str(&groups).map_err(|e| corrupt("flow_due.groups", e))?,
    })
}

pub(crate) fn map_of(text: &str) -> rusqlite::Result<BTreeMap<String, String>> {
    serde_json::from_str(text).map_err(|e| corrupt("alert labels", e))
}

pub(crate) fn json<T: serde::Serialize>(value: &T) -> rusqlite::Result<String> {
    serde_json::to_string(value).map_err(|e| corrupt("json", e))
}
