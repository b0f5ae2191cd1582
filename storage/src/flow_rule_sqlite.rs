//! The flow rules' tables on SQLite (`FlowRuleStore`'s SQLite half): the spans written
//! after a rowid cursor (compact rows, in bounded ranges), the due-time table of events
//! waiting for their expected consumer groups, the consumptions seen before their send,
//! each flow alert's counts, and the alert rows; a write goes in parts (`flow_rule_parts`).
//!
//! Rusqlite connections of its own, used on blocking threads: a pass reads up to hundreds
//! of thousands of rows, which sqlx's per-value overhead would slow several times (see
//! `span_write`). New spans are read through two more, so that the next ranges can be read
//! while the previous one is evaluated and written (a read transaction in WAL mode sees
//! only committed rows, and the cursor moves only with a range's own write).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, params};

use crate::alert_query::{ALERT_UPSERT, AlertRow};
use crate::connection::open_rusqlite;
use crate::error::StorageError;
use crate::flow_rule_parts::write_in_parts;
use crate::flow_rule_ranges::chunk_ranges;
use crate::flow_rule_rows::{
    DUE_COLUMNS, MAX_PRESIZED_CHUNK, corrupt, due_item, json, map_of, rule_span, rule_span_columns,
    span_at, trace_at,
};
use crate::flow_rule_rows::{DueItem, FlowPassWrite, RuleSpan, SendRef, SubjectRow};
use crate::ids::{SpanId, TraceId};
use crate::segments::LIVE_SEGMENTS;
use crate::store::SqliteStore as Store;

/// The flow rules' connections to an SQLite store.
#[derive(Debug, Clone)]
pub(crate) struct SqliteFlowRules {
    connection: Arc<Mutex<Connection>>,
    /// Read new spans only ([`SqliteFlowRules::spans_in`]): two, so that two ranges can be
    /// read at once.
    span_readers: Arc<[Arc<Mutex<Connection>>; 2]>,
}

impl Store {
    /// Opens the flow rules' own connections to this (read-write) store.
    pub(crate) fn flow_rules(&self) -> Result<SqliteFlowRules, StorageError> {
        self.writer()?;
        SqliteFlowRules::open(&self.path)
    }
}

impl SqliteFlowRules {
    fn open(path: &Path) -> Result<SqliteFlowRules, StorageError> {
        let connection = open_rusqlite(path, false)?;
        connection.set_prepared_statement_cache_capacity(32);
        let span_readers = [
            Arc::new(Mutex::new(open_rusqlite(path, false)?)),
            Arc::new(Mutex::new(open_rusqlite(path, false)?)),
        ];
        Ok(SqliteFlowRules {
            connection: Arc::new(Mutex::new(connection)),
            span_readers: Arc::new(span_readers),
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
    pub(crate) async fn cursor(&self) -> Result<Option<i64>, StorageError> {
        self.with(|connection| {
            connection
                .prepare_cached("SELECT last_rowid FROM flow_rule_cursor WHERE id = 1")?
                .query_row([], |row| row.get(0))
                .optional()
        })
        .await
    }

    /// The highest span rowid stored (0 for an empty table).
    pub(crate) async fn newest_position(&self) -> Result<i64, StorageError> {
        self.with(|connection| {
            connection
                .prepare_cached("SELECT coalesce(max(rowid), 0) FROM spans")?
                .query_row([], |row| row.get(0))
        })
        .await
    }

    /// The ranges of rowids a pass reads after `after`: up to the newest row stored now, at
    /// most `max_rows` of them, each `chunk_rows` wide or less.
    pub(crate) async fn pass_ranges(
        &self,
        after: i64,
        chunk_rows: usize,
        max_rows: usize,
    ) -> Result<Vec<(i64, i64)>, StorageError> {
        let newest = self.newest_position().await?;
        let most = i64::try_from(max_rows).unwrap_or(i64::MAX);
        let end = newest.min(after.saturating_add(most));
        Ok(chunk_ranges(after, end, chunk_rows).collect())
    }

    /// The spans of rowids `after + 1 ..= through`, oldest first, read on whichever of the
    /// two span readers is free, so that two ranges can be read at once.
    pub(crate) async fn spans_in(
        &self,
        after: i64,
        through: i64,
        breaks: bool,
    ) -> Result<Vec<RuleSpan>, StorageError> {
        let readers = Arc::clone(&self.span_readers);
        let capacity = usize::try_from(through.saturating_sub(after))
            .unwrap_or(0)
            .min(MAX_PRESIZED_CHUNK);
        tokio::task::spawn_blocking(move || {
            let connection = readers
                .iter()
                .find_map(|reader| reader.try_lock().ok())
                .unwrap_or_else(|| readers[0].lock().unwrap_or_else(|p| p.into_inner()));
            let sql = format!(
                "SELECT {} FROM spans WHERE rowid > ?1 AND rowid <= ?2 ORDER BY rowid",
                rule_span_columns(breaks)
            );
            let read = || -> rusqlite::Result<Vec<RuleSpan>> {
                let mut statement = connection.prepare_cached(&sql)?;
                let mut spans = Vec::with_capacity(capacity);
                for span in statement.query_map(params![after, through], rule_span)? {
                    spans.push(span?);
                }
                Ok(spans)
            };
            read().map_err(StorageError::from_write)
        })
        .await
        .map_err(|error| StorageError::Corrupt(format!("flow rule thread failed: {error}")))?
    }

    /// The spans each of `spans` (segment, trace, span) links to.
    pub(crate) async fn links_of(
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
    pub(crate) async fn spans_by_id(
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

    /// The due items of these sends, under any rule. Items are keyed by their send's start
    /// first (migration 0009): a send whose start the caller does not know has it read from
    /// its stored span, and a send no longer stored then has no item found (its consumption
    /// is remembered instead).
    pub(crate) async fn due_of_sends(
        &self,
        sends: Vec<SendRef>,
    ) -> Result<Vec<DueItem>, StorageError> {
        self.with(move |connection| {
            let by_key = format!(
                "SELECT {DUE_COLUMNS} FROM flow_due WHERE sent_ns = ?1 AND send_span_id = ?2"
            );
            let by_span = format!(
                "SELECT {DUE_COLUMNS} FROM flow_due WHERE send_span_id = ?2 AND sent_ns IN \
                 (SELECT start_ns FROM spans WHERE segment IN ({LIVE_SEGMENTS}) \
                 AND trace_id = ?1 AND span_id = ?2)"
            );
            let mut found = Vec::new();
            for send in sends {
                let span = &send.span_id.0[..];
                let mut statement;
                let rows = match send.sent_ns {
                    Some(sent_ns) => {
                        statement = connection.prepare_cached(&by_key)?;
                        statement.query_map(params![sent_ns, span], due_item)?
                    }
                    None => {
                        statement = connection.prepare_cached(&by_span)?;
                        statement.query_map(params![&send.trace_id.0[..], span], due_item)?
                    }
                };
                for row in rows {
                    found.push(row?);
                }
            }
            Ok(found)
        })
        .await
    }

    /// Items of `overdue` (or not) due at or before `until_ns`, earliest first, at most
    /// `limit`, through the due-time index.
    pub(crate) async fn due_range(
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
    pub(crate) async fn overdue_counts(
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
    pub(crate) async fn seen_groups(
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
    pub(crate) async fn subjects(&self) -> Result<Vec<SubjectRow>, StorageError> {
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
    pub(crate) async fn open_alerts(&self) -> Result<Vec<AlertRow>, StorageError> {
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

    /// Writes one pass's (or chunk's) changes in parts, a transaction each, the cursor, the
    /// counts and the alerts with the last ([`write_in_parts`]).
    pub(crate) async fn write(&self, pass: FlowPassWrite) -> Result<(), StorageError> {
        self.with(move |connection| write_in_parts(connection, pass, write_pass))
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

fn write_pass(
    transaction: &rusqlite::Transaction<'_>,
    pass: &FlowPassWrite,
) -> rusqlite::Result<()> {
    if !pass.due_deletes.is_empty() {
        let mut delete = transaction.prepare_cached(
            "DELETE FROM flow_due WHERE sent_ns = ?1 AND send_span_id = ?2 AND rule = ?3",
        )?;
        for key in &pass.due_deletes {
            delete.execute(params![key.sent_ns, &key.send_span_id.0[..], key.rule])?;
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
#[path = "flow_rule_sqlite_tests.rs"]
mod tests;
