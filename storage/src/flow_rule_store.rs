//! What the collector's flow rules read and keep: the spans written after a rowid cursor
//! (compact rows, in bounded chunks), the due-time table of events waiting for their
//! expected consumer groups, the consumptions seen before their send, each flow alert's
//! counts, and the alert rows, all written by one pass in one transaction.
//!
//! Two rusqlite connections of its own, used on blocking threads: a pass reads up to
//! hundreds of thousands of rows, which sqlx's per-value overhead would slow several times
//! (see `span_write`). New spans are read through the second one, so that the next chunk
//! can be read while the previous one is evaluated and written (a read transaction in WAL
//! mode sees only committed rows, and the cursor moves only with a chunk's own write).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};

use causeway_conventions::attribute;
use causeway_conventions::messaging::Operation;

use crate::alert_query::{ALERT_UPSERT, AlertRow};
use crate::connection::open_rusqlite;
use crate::error::StorageError;
use crate::ids::{SpanId, TraceId};
use crate::record::{SpanKind, StatusCode};
use crate::segments::LIVE_SEGMENTS;
use crate::store::SqliteStore as Store;

/// One span as the flow rules see it: ids, messaging fields, status, and the reason a
/// consumer recorded for losing its trace context. No attributes, resource or events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSpan {
    /// The row's rowid (the cursor's unit).
    pub rowid: i64,
    /// The row's segment (to find its links).
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
    pub service: String,
    /// Start, in nanoseconds since the Unix epoch.
    pub start_ns: i64,
    /// Status code.
    pub status: StatusCode,
    /// Correlation ID.
    pub correlation_id: Option<String>,
    /// Message id.
    pub message_id: Option<String>,
    /// Event type.
    pub event_type: Option<String>,
    /// Topic.
    pub topic: Option<String>,
    /// Partition.
    pub partition: Option<i64>,
    /// Offset.
    pub offset: Option<i64>,
    /// Consumer group.
    pub consumer_group: Option<String>,
    /// Messaging operation (`None` for a value no generation names).
    pub operation: Option<Operation>,
    /// `causeway.propagation.break`, when the span recorded one (and it was asked for).
    pub propagation_break: Option<String>,
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
    /// Due items to delete: (send span, rule).
    pub due_deletes: Vec<(SpanId, String)>,
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

/// The flow rules' connections to the store.
#[derive(Debug, Clone)]
pub struct FlowRuleStore {
    connection: Arc<Mutex<Connection>>,
    /// Reads new spans only ([`FlowRuleStore::spans_after`]).
    span_reader: Arc<Mutex<Connection>>,
}

/// The columns of [`RuleSpan`], in order; the propagation break (read from the attributes)
/// only when `breaks`.
fn rule_span_columns(breaks: bool) -> String {
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

/// The most rows [`FlowRuleStore::spans_after`] makes room for before reading.
const MAX_PRESIZED_CHUNK: usize = 100_000;

const DUE_COLUMNS: &str = "send_span_id, rule, send_trace_id, due_ns, overdue, topic, \
    message_id, partition_id, kafka_offset, correlation_id, event_type, producer, sent_ns, groups";

fn corrupt(what: &str, error: impl std::fmt::Display) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        0,
        rusqlite::types::Type::Blob,
        format!("{what}: {error}").into(),
    )
}

// Ids and the operation are read in place (no copy): a pass reads hundreds of thousands.
fn trace_at(row: &Row<'_>, index: usize) -> rusqlite::Result<TraceId> {
    TraceId::from_bytes(row.get_ref(index)?.as_blob()?).map_err(|e| corrupt("trace id", e))
}

fn span_at(row: &Row<'_>, index: usize) -> rusqlite::Result<SpanId> {
    SpanId::from_bytes(row.get_ref(index)?.as_blob()?).map_err(|e| corrupt("span id", e))
}

fn rule_span(row: &Row<'_>) -> rusqlite::Result<RuleSpan> {
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
        service: row.get(6)?,
        start_ns: row.get(7)?,
        status: StatusCode::from_code(row.get(8)?),
        correlation_id: row.get(9)?,
        message_id: row.get(10)?,
        event_type: row.get(11)?,
        topic: row.get(12)?,
        partition: row.get(13)?,
        offset: row.get(14)?,
        consumer_group: row.get(15)?,
        operation: operation.and_then(Operation::parse),
        propagation_break: row.get(17)?,
        ingested_ns: row.get(18)?,
    })
}

fn due_item(row: &Row<'_>) -> rusqlite::Result<DueItem> {
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

impl Store {
    /// Opens the flow rules' own connection to this (read-write) store.
    pub fn flow_rule_store(&self) -> Result<FlowRuleStore, StorageError> {
        self.writer()?;
        FlowRuleStore::open(&self.path)
    }
}

impl FlowRuleStore {
    fn open(path: &Path) -> Result<FlowRuleStore, StorageError> {
        let connection = open_rusqlite(path, false)?;
        connection.set_prepared_statement_cache_capacity(32);
        let span_reader = open_rusqlite(path, false)?;
        Ok(FlowRuleStore {
            connection: Arc::new(Mutex::new(connection)),
            span_reader: Arc::new(Mutex::new(span_reader)),
        })
    }

    /// Runs `work` on the connection on a blocking thread.
    async fn with<T, F>(&self, work: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        on_blocking_thread(Arc::clone(&self.connection), work).await
    }

    /// Where the last pass stopped, if a pass ever ran.
    pub async fn cursor(&self) -> Result<Option<i64>, StorageError> {
        self.with(|connection| {
            connection
                .prepare_cached("SELECT last_rowid FROM flow_rule_cursor WHERE id = 1")?
                .query_row([], |row| row.get(0))
                .optional()
        })
        .await
    }

    /// The highest span rowid stored (0 for an empty table).
    pub async fn max_span_rowid(&self) -> Result<i64, StorageError> {
        self.with(|connection| {
            connection
                .prepare_cached("SELECT coalesce(max(rowid), 0) FROM spans")?
                .query_row([], |row| row.get(0))
        })
        .await
    }

    /// The spans written after rowid `after`, oldest first, at most `limit`: a range scan
    /// of the table's own key, never a rescan. The propagation break is read only when
    /// `breaks` (it costs a look into each span's attributes).
    pub async fn spans_after(
        &self,
        after: i64,
        limit: usize,
        breaks: bool,
    ) -> Result<Vec<RuleSpan>, StorageError> {
        // Sized for a full chunk at once: no copying while it grows.
        let capacity = limit.min(MAX_PRESIZED_CHUNK);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        on_blocking_thread(Arc::clone(&self.span_reader), move |connection| {
            let sql = format!(
                "SELECT {} FROM spans WHERE rowid > ?1 ORDER BY rowid LIMIT ?2",
                rule_span_columns(breaks)
            );
            let mut statement = connection.prepare_cached(&sql)?;
            let mut spans = Vec::with_capacity(capacity);
            for span in statement.query_map(params![after, limit], rule_span)? {
                spans.push(span?);
            }
            Ok(spans)
        })
        .await
    }

    /// The spans each of `spans` (segment, trace, span) links to.
    pub async fn links_of(
        &self,
        spans: Vec<(i64, TraceId, SpanId)>,
    ) -> Result<HashMap<(TraceId, SpanId), Vec<(TraceId, SpanId)>>, StorageError> {
        self.with(move |connection| {
            let mut statement = connection.prepare_cached(
                "SELECT linked_trace_id, linked_span_id FROM span_links \
                 WHERE segment = ?1 AND trace_id = ?2 AND span_id = ?3",
            )?;
            let mut links = HashMap::new();
            for (segment, trace, span) in spans {
                let found: Vec<(TraceId, SpanId)> = statement
                    .query_map(params![segment, &trace.0[..], &span.0[..]], |row| {
                        Ok((trace_at(row, 0)?, span_at(row, 1)?))
                    })?
                    .collect::<rusqlite::Result<_>>()?;
                if !found.is_empty() {
                    links.insert((trace, span), found);
                }
            }
            Ok(links)
        })
        .await
    }

    /// The stored spans with these ids (the newest copy of each), in any order.
    pub async fn spans_by_id(
        &self,
        ids: Vec<(TraceId, SpanId)>,
    ) -> Result<Vec<RuleSpan>, StorageError> {
        self.with(move |connection| {
            let sql = format!(
                "SELECT {} FROM spans WHERE segment IN ({LIVE_SEGMENTS}) \
                 AND trace_id = ?1 AND span_id = ?2 ORDER BY rowid DESC LIMIT 1",
                rule_span_columns(false)
            );
            let mut statement = connection.prepare_cached(&sql)?;
            let mut found = Vec::new();
            for (trace, span) in ids {
                if let Some(row) = statement
                    .query_row(params![&trace.0[..], &span.0[..]], rule_span)
                    .optional()?
                {
                    found.push(row);
                }
            }
            Ok(found)
        })
        .await
    }

    /// The due items of these sends, under any rule.
    pub async fn due_of_sends(&self, sends: Vec<SpanId>) -> Result<Vec<DueItem>, StorageError> {
        self.with(move |connection| {
            let sql = format!("SELECT {DUE_COLUMNS} FROM flow_due WHERE send_span_id = ?1");
            let mut statement = connection.prepare_cached(&sql)?;
            let mut found = Vec::new();
            for send in sends {
                let rows = statement.query_map(params![&send.0[..]], due_item)?;
                for row in rows {
                    found.push(row?);
                }
            }
            Ok(found)
        })
        .await
    }

    /// Items not yet overdue whose due time is at or before `now_ns`, earliest first, at
    /// most `limit`, through the due-time index.
    pub async fn due_by(&self, now_ns: i64, limit: usize) -> Result<Vec<DueItem>, StorageError> {
        self.due_range(false, now_ns, limit).await
    }

    /// Overdue items due before `cutoff_ns`, earliest first, at most `limit`.
    pub async fn overdue_before(
        &self,
        cutoff_ns: i64,
        limit: usize,
    ) -> Result<Vec<DueItem>, StorageError> {
        self.due_range(true, cutoff_ns - 1, limit).await
    }

    async fn due_range(
        &self,
        overdue: bool,
        until_ns: i64,
        limit: usize,
    ) -> Result<Vec<DueItem>, StorageError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with(move |connection| {
            let sql = format!(
                "SELECT {DUE_COLUMNS} FROM flow_due INDEXED BY flow_due_by_time \
                 WHERE overdue = ?1 AND due_ns <= ?2 ORDER BY due_ns LIMIT ?3"
            );
            let mut statement = connection.prepare_cached(&sql)?;
            let rows =
                statement.query_map(params![i64::from(overdue), until_ns, limit], due_item)?;
            rows.collect()
        })
        .await
    }

    /// Every overdue item's rule, topic and groups, with how many there are of each: what
    /// the alerts count, read back when the collector starts.
    pub async fn overdue_counts(
        &self,
    ) -> Result<Vec<(String, String, Vec<String>, i64)>, StorageError> {
        self.with(|connection| {
            let mut statement = connection.prepare_cached(
                "SELECT rule, topic, groups, count(*) FROM flow_due INDEXED BY flow_due_by_time \
                 WHERE overdue = 1 GROUP BY rule, topic, groups",
            )?;
            let rows = statement.query_map([], |row| {
                let groups: String = row.get(2)?;
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    serde_json::from_str(&groups).map_err(|e| corrupt("flow_due.groups", e))?,
                    row.get(3)?,
                ))
            })?;
            rows.collect()
        })
        .await
    }

    /// For each item, the groups remembered as having consumed its message (by the span
    /// its trace context points at, its message id or its position); `None` stands for a
    /// consumer that names no group.
    pub async fn seen_groups(
        &self,
        items: Vec<DueItem>,
    ) -> Result<Vec<Vec<Option<String>>>, StorageError> {
        self.with(move |connection| {
            let mut by_source = connection
                .prepare_cached("SELECT consumer_group FROM flow_seen WHERE source_span_id = ?1")?;
            let mut by_message = connection.prepare_cached(
                "SELECT consumer_group FROM flow_seen WHERE topic = ?1 AND message_id = ?2",
            )?;
            let mut by_position = connection.prepare_cached(
                "SELECT consumer_group FROM flow_seen \
                 WHERE topic = ?1 AND partition_id = ?2 AND kafka_offset = ?3",
            )?;
            let mut answers = Vec::with_capacity(items.len());
            for item in items {
                let mut groups: Vec<Option<String>> = by_source
                    .query_map(params![&item.send_span_id.0[..]], |row| row.get(0))?
                    .collect::<rusqlite::Result<_>>()?;
                if let Some(message) = &item.message_id {
                    for group in
                        by_message.query_map(params![item.topic, message], |row| row.get(0))?
                    {
                        groups.push(group?);
                    }
                }
                if let (Some(partition), Some(offset)) = (item.partition, item.offset) {
                    for group in by_position
                        .query_map(params![item.topic, partition, offset], |row| row.get(0))?
                    {
                        groups.push(group?);
                    }
                }
                answers.push(groups);
            }
            Ok(answers)
        })
        .await
    }

    /// What every flow alert has counted.
    pub async fn subjects(&self) -> Result<Vec<SubjectRow>, StorageError> {
        self.with(|connection| {
            let mut statement = connection.prepare_cached(
                "SELECT fingerprint, labels, count, flow_ids, first_seen_ns, last_seen_ns \
                 FROM flow_alert_subjects",
            )?;
            let rows = statement.query_map([], |row| {
                let labels: String = row.get(1)?;
                let ids: String = row.get(3)?;
                Ok(SubjectRow {
                    fingerprint: row.get(0)?,
                    labels: map_of(&labels)?,
                    count: row.get(2)?,
                    flow_ids: serde_json::from_str(&ids)
                        .map_err(|e| corrupt("flow_alert_subjects.flow_ids", e))?,
                    first_seen_ns: row.get(4)?,
                    last_seen_ns: row.get(5)?,
                })
            })?;
            rows.collect()
        })
        .await
    }

    /// Alert episodes that are not over for their hooks: pending or firing, or resolved
    /// without the resolution having been notified. What a restarted collector picks up.
    pub async fn open_alerts(&self) -> Result<Vec<AlertRow>, StorageError> {
        self.with(|connection| {
            let mut statement = connection.prepare_cached(
                "SELECT fingerprint, starts_ns, rule, status, labels, annotations, ends_ns, \
                 updated_ns, notified_ns FROM alerts WHERE status != 'resolved' \
                 OR (notified_ns IS NOT NULL AND ends_ns IS NOT NULL AND notified_ns < ends_ns) \
                 ORDER BY starts_ns",
            )?;
            let rows = statement.query_map([], |row| {
                let labels: String = row.get(4)?;
                let annotations: String = row.get(5)?;
                Ok(AlertRow {
                    fingerprint: row.get(0)?,
                    starts_ns: row.get(1)?,
                    rule: row.get(2)?,
                    status: row.get(3)?,
                    labels: map_of(&labels)?,
                    annotations: map_of(&annotations)?,
                    ends_ns: row.get(6)?,
                    updated_ns: row.get(7)?,
                    notified_ns: row.get(8)?,
                })
            })?;
            rows.collect()
        })
        .await
    }

    /// Records that the hooks were told about an alert episode at `at_ns`.
    pub async fn mark_notified(
        &self,
        fingerprint: String,
        starts_ns: i64,
        at_ns: i64,
    ) -> Result<(), StorageError> {
        self.with(move |connection| {
            connection
                .prepare_cached(
                    "UPDATE alerts SET notified_ns = max(coalesce(notified_ns, 0), ?3) \
                     WHERE fingerprint = ?1 AND starts_ns = ?2",
                )?
                .execute(params![fingerprint, starts_ns, at_ns])?;
            Ok(())
        })
        .await
    }

    /// Writes one pass's changes in one transaction: a restart sees all of them or none.
    pub async fn write(&self, pass: FlowPassWrite) -> Result<(), StorageError> {
        if pass == FlowPassWrite::default() {
            return Ok(());
        }
        self.with(move |connection| {
            let transaction =
                connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            write_pass(&transaction, &pass)?;
            transaction.commit()
        })
        .await
    }
}

/// Runs `work` on `connection` on a blocking thread.
async fn on_blocking_thread<T, F>(
    connection: Arc<Mutex<Connection>>,
    work: F,
) -> Result<T, StorageError>
where
    T: Send + 'static,
    F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
{
    tokio::task::spawn_blocking(move || {
        // A panic cannot leave a transaction open (rusqlite rolls back on drop).
        let mut connection = connection.lock().unwrap_or_else(|p| p.into_inner());
        work(&mut connection).map_err(StorageError::from_write)
    })
    .await
    .map_err(|error| StorageError::Corrupt(format!("flow rule thread failed: {error}")))?
}

fn map_of(text: &str) -> rusqlite::Result<BTreeMap<String, String>> {
    serde_json::from_str(text).map_err(|e| corrupt("alert labels", e))
}

fn json<T: serde::Serialize>(value: &T) -> rusqlite::Result<String> {
    serde_json::to_string(value).map_err(|e| corrupt("json", e))
}

fn write_pass(
    transaction: &rusqlite::Transaction<'_>,
    pass: &FlowPassWrite,
) -> rusqlite::Result<()> {
    if !pass.due_deletes.is_empty() {
        let mut delete = transaction
            .prepare_cached("DELETE FROM flow_due WHERE send_span_id = ?1 AND rule = ?2")?;
        for (send, rule) in &pass.due_deletes {
            delete.execute(params![&send.0[..], rule])?;
        }
    }
    if !pass.due_upserts.is_empty() {
        let mut upsert = transaction.prepare_cached(&format!(
            "INSERT OR REPLACE INTO flow_due ({DUE_COLUMNS}) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
        ))?;
        for item in &pass.due_upserts {
            upsert.execute(params![
                &item.send_span_id.0[..],
                item.rule,
                &item.send_trace_id.0[..],
                item.due_ns,
                i64::from(item.overdue),
                item.topic,
                item.message_id,
                item.partition,
                item.offset,
                item.correlation_id,
                item.event_type,
                item.producer,
                item.sent_ns,
                json(&item.groups)?,
            ])?;
        }
    }
    if !pass.seen.is_empty() {
        let now = crate::clock::now_ns();
        let mut insert = transaction.prepare_cached(
            "INSERT INTO flow_seen (seen_ns, consumer_group, source_span_id, topic, message_id, \
             partition_id, kafka_offset) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        for mark in &pass.seen {
            insert.execute(params![
                now,
                mark.consumer_group,
                mark.source_span_id.as_ref().map(|id| &id.0[..]),
                mark.topic,
                mark.message_id,
                mark.partition,
                mark.offset,
            ])?;
        }
    }
    if let Some(before) = pass.forget_seen_before_ns {
        transaction
            .prepare_cached("DELETE FROM flow_seen WHERE seen_ns < ?1")?
            .execute(params![before])?;
    }
    if !pass.subjects_deleted.is_empty() {
        let mut delete =
            transaction.prepare_cached("DELETE FROM flow_alert_subjects WHERE fingerprint = ?1")?;
        for fingerprint in &pass.subjects_deleted {
            delete.execute(params![fingerprint])?;
        }
    }
    if !pass.subjects.is_empty() {
        let mut upsert = transaction.prepare_cached(
            "INSERT OR REPLACE INTO flow_alert_subjects (fingerprint, labels, count, flow_ids, \
             first_seen_ns, last_seen_ns) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for subject in &pass.subjects {
            upsert.execute(params![
                subject.fingerprint,
                json(&subject.labels)?,
                subject.count,
                json(&subject.flow_ids)?,
                subject.first_seen_ns,
                subject.last_seen_ns,
            ])?;
        }
    }
    if !pass.alerts.is_empty() {
        let mut upsert = transaction.prepare_cached(ALERT_UPSERT)?;
        for alert in &pass.alerts {
            upsert.execute(params![
                alert.fingerprint,
                alert.starts_ns,
                alert.rule,
                alert.status,
                json(&alert.labels)?,
                json(&alert.annotations)?,
                alert.ends_ns,
                alert.updated_ns,
                alert.notified_ns,
            ])?;
        }
    }
    if let Some(cursor) = pass.cursor {
        transaction
            .prepare_cached(
                "INSERT INTO flow_rule_cursor (id, last_rowid) VALUES (1, ?1) \
                 ON CONFLICT (id) DO UPDATE SET last_rowid = excluded.last_rowid",
            )?
            .execute(params![cursor])?;
    }
    Ok(())
}

#[cfg(test)]
#[path = "flow_rule_store_tests.rs"]
mod tests;
