//! The flow rules' tables on PostgreSQL (`FlowRuleStore`'s PostgreSQL half), through the
//! store's pool. A pass reads spans by the id of the transaction that wrote them, and only
//! from transactions older than every one still running (migration 0002), so a writer that
//! commits late never leaves a span behind the cursor. Lookups of many keys go in one
//! statement (`UNNEST` of arrays), not one round trip each.

use std::collections::HashMap;

use compact_str::CompactString;
use futures::TryStreamExt;
use sqlx::Row;
use sqlx::postgres::PgRow;

use causeway_conventions::attribute;
use causeway_conventions::messaging::Operation;

use crate::alert_query::{AlertRow, to_json};
use crate::error::StorageError;
use crate::flow_rule_ranges::transaction_ranges;
use crate::flow_rule_rows::{DUE_COLUMNS, DueItem, FlowPassWrite, RuleSpan, SendRef, SubjectRow};
use crate::ids::{SpanId, TraceId};
use crate::postgres::PgStore;
use crate::postgres::lag::upsert_alert;
use crate::record::{SpanKind, StatusCode};

/// The flow rules' handle on a PostgreSQL store.
#[derive(Debug, Clone)]
pub(crate) struct PgFlowRules {
    pool: sqlx::PgPool,
}

impl PgStore {
    /// The flow rules' handle on this (read-write) store.
    pub(crate) fn flow_rules(&self) -> Result<PgFlowRules, StorageError> {
        Ok(PgFlowRules {
            pool: self.writable()?.clone(),
        })
    }
}

/// The oldest transaction still running: every id below it is finished.
const FINISHED_BELOW: &str = "pg_snapshot_xmin(pg_current_snapshot())";

/// The columns of [`RuleSpan`], in order: the position is the writing transaction's id and
/// the segment is the day partition; the propagation break only when `breaks`.
fn rule_span_columns(breaks: bool) -> String {
    let key = attribute::PROPAGATION_BREAK;
    let propagation_break = if breaks {
        format!("CASE WHEN strpos(attributes, '{key}') > 0 THEN attributes::jsonb ->> '{key}' END")
    } else {
        "NULL::text".to_owned()
    };
    format!(
        "ingest_xid::text::bigint, ingest_day, trace_id, span_id, parent_span_id, kind, \
         service_name, start_ns, status_code, correlation_id, message_id, event_type, \
         destination, partition_id, kafka_offset, consumer_group, operation_type, \
         {propagation_break}, ingested_ns"
    )
}

fn corrupt(what: &str, error: impl std::fmt::Display) -> StorageError {
    StorageError::Corrupt(format!("{what}: {error}"))
}

fn trace_at(row: &PgRow, index: usize) -> Result<TraceId, StorageError> {
    TraceId::from_bytes(row.try_get::<&[u8], _>(index)?).map_err(|e| corrupt("trace id", e))
}

fn span_at(row: &PgRow, index: usize) -> Result<SpanId, StorageError> {
    SpanId::from_bytes(row.try_get::<&[u8], _>(index)?).map_err(|e| corrupt("span id", e))
}

/// Text read in place into a [`CompactString`].
fn text_at(row: &PgRow, index: usize) -> Result<Option<CompactString>, StorageError> {
    Ok(row
        .try_get::<Option<&str>, _>(index)?
        .map(CompactString::new))
}

fn rule_span(row: &PgRow) -> Result<RuleSpan, StorageError> {
    let parent: Option<&[u8]> = row.try_get(4)?;
    let operation: Option<&str> = row.try_get(16)?;
    Ok(RuleSpan {
        rowid: row.try_get(0)?,
        segment: row.try_get(1)?,
        trace_id: trace_at(row, 2)?,
        span_id: span_at(row, 3)?,
        // An invalid stored parent reads as none, as the collector would have dropped it.
        parent_span_id: parent.and_then(|bytes| SpanId::from_bytes(bytes).ok()),
        kind: SpanKind::from_code(row.try_get(5)?),
        service: CompactString::new(row.try_get::<&str, _>(6)?),
        start_ns: row.try_get(7)?,
        status: StatusCode::from_code(row.try_get(8)?),
        correlation_id: text_at(row, 9)?,
        message_id: text_at(row, 10)?,
        event_type: text_at(row, 11)?,
        topic: text_at(row, 12)?,
        partition: row.try_get(13)?,
        offset: row.try_get(14)?,
        consumer_group: text_at(row, 15)?,
        operation: operation.and_then(Operation::parse),
        propagation_break: text_at(row, 17)?,
        ingested_ns: row.try_get(18)?,
    })
}

fn due_item(row: &PgRow) -> Result<DueItem, StorageError> {
    let groups: String = row.try_get(13)?;
    Ok(DueItem {
        send_span_id: span_at(row, 0)?,
        rule: row.try_get(1)?,
        send_trace_id: trace_at(row, 2)?,
        due_ns: row.try_get(3)?,
        overdue: row.try_get::<i64, _>(4)? != 0,
        topic: row.try_get(5)?,
        message_id: row.try_get(6)?,
        partition: row.try_get(7)?,
        offset: row.try_get(8)?,
        correlation_id: row.try_get(9)?,
        event_type: row.try_get(10)?,
        producer: row.try_get(11)?,
        sent_ns: row.try_get(12)?,
        groups: serde_json::from_str(&groups).map_err(|e| corrupt("flow_due.groups", e))?,
    })
}

fn json<T: serde::Serialize>(value: &T) -> Result<String, StorageError> {
    serde_json::to_string(value).map_err(|e| corrupt("json", e))
}

fn limit_of(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

impl PgFlowRules {
    /// Where the last pass stopped, if a pass ever ran.
    pub(crate) async fn cursor(&self) -> Result<Option<i64>, StorageError> {
        Ok(
            sqlx::query_scalar("SELECT last_rowid FROM flow_rule_cursor WHERE id = 1")
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// The newest transaction id older than every transaction still running.
    pub(crate) async fn newest_position(&self) -> Result<i64, StorageError> {
        let below: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT {FINISHED_BELOW}::text::bigint"
        )))
        .fetch_one(&self.pool)
        .await?;
        Ok(below - 1)
    }

    /// The ranges of transaction ids a pass reads after `after`: the finished transactions
    /// that wrote spans, whole, about `chunk_rows` spans a range and `max_rows` in all.
    ///
    /// The transactions and their span counts come from `span_writes` (migration 4). Spans
    /// an older build wrote have no row there: inside a range they are read with the rest
    /// (a range is an interval of ids), and when no finished write has a row, the new spans
    /// are counted instead.
    pub(crate) async fn pass_ranges(
        &self,
        after: i64,
        chunk_rows: usize,
        max_rows: usize,
    ) -> Result<Vec<(i64, i64)>, StorageError> {
        let recorded = format!(
            "SELECT xid::text::bigint, spans FROM span_writes \
             WHERE xid > $1::text::xid8 AND xid < {FINISHED_BELOW} ORDER BY xid LIMIT $2"
        );
        let mut counts = self.write_counts(after, max_rows, recorded).await?;
        if counts.is_empty() {
            let counted = format!(
                "SELECT ingest_xid::text::bigint, count(*) FROM spans \
                 WHERE ingest_xid > $1::text::xid8 AND ingest_xid < {FINISHED_BELOW} \
                 GROUP BY ingest_xid ORDER BY ingest_xid LIMIT $2"
            );
            counts = self.write_counts(after, max_rows, counted).await?;
        }
        Ok(transaction_ranges(after, &counts, chunk_rows, max_rows))
    }

    /// The finished transactions after `after` (`$1`) and their span counts, oldest
    /// first, at most `max_rows` (`$2`) of them, as `query` finds them.
    async fn write_counts(
        &self,
        after: i64,
        max_rows: usize,
        query: String,
    ) -> Result<Vec<(i64, i64)>, StorageError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(query))
            .bind(after.to_string())
            .bind(limit_of(max_rows))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| Ok((row.try_get::<i64, _>(0)?, row.try_get::<i64, _>(1)?)))
            .collect()
    }

    /// The spans written by transactions `after + 1 ..= through`, by transaction, then in
    /// the order they started.
    pub(crate) async fn spans_in(
        &self,
        after: i64,
        through: i64,
        breaks: bool,
    ) -> Result<Vec<RuleSpan>, StorageError> {
        // Sorted here rather than by the server: its sort of a range's rows (20,000 wide
        // rows) took longer than reading them, spilling to disk at the default `work_mem`.
        // Each row is decoded as it arrives, while the server sends the next ones.
        let query = format!(
            "SELECT {} FROM spans WHERE ingest_xid > $1::text::xid8 \
             AND ingest_xid <= $2::text::xid8",
            rule_span_columns(breaks)
        );
        let mut rows = sqlx::query(sqlx::AssertSqlSafe(query))
            .bind(after.to_string())
            .bind(through.to_string())
            .fetch(&self.pool);
        let mut spans = Vec::new();
        while let Some(row) = rows.try_next().await? {
            spans.push(rule_span(&row)?);
        }
        // The connection goes back to the pool before the sort.
        drop(rows);
        spans.sort_unstable_by(|a, b| {
            (a.rowid, a.start_ns, a.span_id.0).cmp(&(b.rowid, b.start_ns, b.span_id.0))
        });
        Ok(spans)
    }

    /// The spans each of `spans` (day, trace, span) links to.
    pub(crate) async fn links_of(
        &self,
        spans: Vec<(i64, TraceId, SpanId)>,
    ) -> Result<HashMap<(TraceId, SpanId), Vec<(TraceId, SpanId)>>, StorageError> {
        if spans.is_empty() {
            return Ok(HashMap::new());
        }
        let rows = sqlx::query(
            "SELECT l.trace_id, l.span_id, l.linked_trace_id, l.linked_span_id \
             FROM UNNEST($1::bigint[], $2::bytea[], $3::bytea[]) AS w(day, trace_id, span_id) \
             JOIN span_links l ON l.ingest_day = w.day AND l.trace_id = w.trace_id \
             AND l.span_id = w.span_id",
        )
        .bind(spans.iter().map(|s| s.0).collect::<Vec<_>>())
        .bind(spans.iter().map(|s| s.1.0.to_vec()).collect::<Vec<_>>())
        .bind(spans.iter().map(|s| s.2.0.to_vec()).collect::<Vec<_>>())
        .fetch_all(&self.pool)
        .await?;
        let mut links: HashMap<(TraceId, SpanId), Vec<(TraceId, SpanId)>> = HashMap::new();
        for row in &rows {
            links
                .entry((trace_at(row, 0)?, span_at(row, 1)?))
                .or_default()
                .push((trace_at(row, 2)?, span_at(row, 3)?));
        }
        Ok(links)
    }

    /// The stored spans with these ids (the newest copy of each), in any order.
    pub(crate) async fn spans_by_id(
        &self,
        ids: Vec<(TraceId, SpanId)>,
    ) -> Result<Vec<RuleSpan>, StorageError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT DISTINCT ON (trace_id, span_id) {} \
             FROM UNNEST($1::bytea[], $2::bytea[]) AS w(wanted_trace, wanted_span) \
             JOIN spans ON trace_id = w.wanted_trace AND span_id = w.wanted_span \
             ORDER BY trace_id, span_id, ingest_day DESC",
            rule_span_columns(false)
        )))
        .bind(
            ids.iter()
                .map(|(trace, _)| trace.0.to_vec())
                .collect::<Vec<_>>(),
        )
        .bind(
            ids.iter()
                .map(|(_, span)| span.0.to_vec())
                .collect::<Vec<_>>(),
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(rule_span).collect()
    }

    /// The due items of these sends, under any rule, by span id alone: PostgreSQL keys them
    /// by it (keying them by the send's start first, as SQLite does, measured no faster
    /// here; docs/DECISIONS.md).
    pub(crate) async fn due_of_sends(
        &self,
        sends: Vec<SendRef>,
    ) -> Result<Vec<DueItem>, StorageError> {
        if sends.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {DUE_COLUMNS} FROM flow_due WHERE send_span_id = ANY($1::bytea[])"
        )))
        .bind(
            sends
                .iter()
                .map(|s| s.span_id.0.to_vec())
                .collect::<Vec<_>>(),
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(due_item).collect()
    }

    /// Items of `overdue` (or not) due at or before `until_ns`, earliest first, at most
    /// `limit`, through the due-time index.
    pub(crate) async fn due_range(
        &self,
        overdue: bool,
        until_ns: i64,
        limit: usize,
    ) -> Result<Vec<DueItem>, StorageError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {DUE_COLUMNS} FROM flow_due WHERE overdue = $1 AND due_ns <= $2 \
             ORDER BY due_ns LIMIT $3"
        )))
        .bind(i64::from(overdue))
        .bind(until_ns)
        .bind(limit_of(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(due_item).collect()
    }

    /// Every overdue item's rule, topic and groups, with how many there are of each.
    pub(crate) async fn overdue_counts(
        &self,
    ) -> Result<Vec<(String, String, Vec<String>, i64)>, StorageError> {
        let rows = sqlx::query(
            "SELECT rule, topic, groups, count(*) FROM flow_due WHERE overdue = 1 \
             GROUP BY rule, topic, groups",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let groups: String = row.try_get(2)?;
                Ok((
                    row.try_get(0)?,
                    row.try_get(1)?,
                    serde_json::from_str(&groups).map_err(|e| corrupt("flow_due.groups", e))?,
                    row.try_get(3)?,
                ))
            })
            .collect()
    }

    /// For each item, the groups remembered as having consumed its message (by source span,
    /// message id or position), all items in one statement.
    pub(crate) async fn seen_groups(
        &self,
        items: Vec<DueItem>,
    ) -> Result<Vec<Vec<Option<String>>>, StorageError> {
        let mut answers = vec![Vec::new(); items.len()];
        if items.is_empty() {
            return Ok(answers);
        }
        let rows = sqlx::query(
            "SELECT w.i, s.consumer_group \
             FROM UNNEST($1::bytea[]) WITH ORDINALITY AS w(source, i) \
             JOIN flow_seen s ON s.source_span_id = w.source \
             UNION ALL \
             SELECT w.i, s.consumer_group \
             FROM UNNEST($2::text[], $3::text[]) WITH ORDINALITY AS w(topic, message_id, i) \
             JOIN flow_seen s ON s.topic = w.topic AND s.message_id = w.message_id \
             UNION ALL \
             SELECT w.i, s.consumer_group \
             FROM UNNEST($2::text[], $4::bigint[], $5::bigint[]) \
                 WITH ORDINALITY AS w(topic, partition_id, kafka_offset, i) \
             JOIN flow_seen s ON s.topic = w.topic AND s.partition_id = w.partition_id \
             AND s.kafka_offset = w.kafka_offset",
        )
        .bind(
            items
                .iter()
                .map(|i| i.send_span_id.0.to_vec())
                .collect::<Vec<_>>(),
        )
        .bind(items.iter().map(|i| i.topic.as_str()).collect::<Vec<_>>())
        .bind(
            items
                .iter()
                .map(|i| i.message_id.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind(items.iter().map(|i| i.partition).collect::<Vec<_>>())
        .bind(items.iter().map(|i| i.offset).collect::<Vec<_>>())
        .fetch_all(&self.pool)
        .await?;
        for row in &rows {
            let at: i64 = row.try_get(0)?;
            let slot = usize::try_from(at - 1)
                .ok()
                .and_then(|at| answers.get_mut(at))
                .ok_or_else(|| corrupt("flow_seen lookup", format!("item {at}")))?;
            slot.push(row.try_get(1)?);
        }
        Ok(answers)
    }

    /// What every flow alert has counted.
    pub(crate) async fn subjects(&self) -> Result<Vec<SubjectRow>, StorageError> {
        let rows = sqlx::query(
            "SELECT fingerprint, labels, count, flow_ids, first_seen_ns, last_seen_ns \
             FROM flow_alert_subjects",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let labels: String = row.try_get(1)?;
                let ids: String = row.try_get(3)?;
                Ok(SubjectRow {
                    fingerprint: row.try_get(0)?,
                    labels: crate::alert_query::from_json(&labels)?,
                    count: row.try_get(2)?,
                    flow_ids: serde_json::from_str(&ids)
                        .map_err(|e| corrupt("flow_alert_subjects.flow_ids", e))?,
                    first_seen_ns: row.try_get(4)?,
                    last_seen_ns: row.try_get(5)?,
                })
            })
            .collect()
    }

    /// Alert episodes not over for their hooks: pending or firing, or resolved without the
    /// resolution having been notified.
    pub(crate) async fn open_alerts(&self) -> Result<Vec<AlertRow>, StorageError> {
        let rows = sqlx::query(
            "SELECT fingerprint, starts_ns, rule, status, labels, annotations, ends_ns, \
             updated_ns, notified_ns FROM alerts WHERE status <> 'resolved' \
             OR (notified_ns IS NOT NULL AND ends_ns IS NOT NULL AND notified_ns < ends_ns) \
             ORDER BY starts_ns",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(crate::row_decode::alert).collect()
    }

    /// Writes one pass's changes in one transaction.
    pub(crate) async fn write(&self, pass: FlowPassWrite) -> Result<(), StorageError> {
        let mut transaction = self.pool.begin().await?;
        if !pass.due_deletes.is_empty() {
            sqlx::query(
                "DELETE FROM flow_due d USING UNNEST($1::bytea[], $2::text[]) AS w(send, rule) \
                 WHERE d.send_span_id = w.send AND d.rule = w.rule",
            )
            .bind(
                pass.due_deletes
                    .iter()
                    .map(|key| key.send_span_id.0.to_vec())
                    .collect::<Vec<_>>(),
            )
            .bind(
                pass.due_deletes
                    .iter()
                    .map(|key| key.rule.as_str())
                    .collect::<Vec<_>>(),
            )
            .execute(&mut *transaction)
            .await?;
        }
        if !pass.due_upserts.is_empty() {
            let due = &pass.due_upserts;
            // One row per key: a later item for the same send and rule replaces an earlier one.
            let mut latest: HashMap<(SpanId, &str), usize> = HashMap::new();
            for (at, item) in due.iter().enumerate() {
                latest.insert((item.send_span_id, item.rule.as_str()), at);
            }
            let mut keep: Vec<usize> = latest.into_values().collect();
            keep.sort_unstable();
            let due: Vec<&DueItem> = keep.iter().map(|&at| &due[at]).collect();
            let groups = due
                .iter()
                .map(|item| json(&item.groups))
                .collect::<Result<Vec<_>, _>>()?;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO flow_due ({DUE_COLUMNS}) SELECT * FROM UNNEST($1::bytea[], \
                 $2::text[], $3::bytea[], $4::bigint[], $5::bigint[], $6::text[], $7::text[], \
                 $8::bigint[], $9::bigint[], $10::text[], $11::text[], $12::text[], \
                 $13::bigint[], $14::text[]) \
                 ON CONFLICT (send_span_id, rule) DO UPDATE SET \
                 send_trace_id = excluded.send_trace_id, due_ns = excluded.due_ns, \
                 overdue = excluded.overdue, topic = excluded.topic, \
                 message_id = excluded.message_id, partition_id = excluded.partition_id, \
                 kafka_offset = excluded.kafka_offset, correlation_id = excluded.correlation_id, \
                 event_type = excluded.event_type, producer = excluded.producer, \
                 sent_ns = excluded.sent_ns, groups = excluded.groups"
            )))
            .bind(
                due.iter()
                    .map(|i| i.send_span_id.0.to_vec())
                    .collect::<Vec<_>>(),
            )
            .bind(due.iter().map(|i| i.rule.as_str()).collect::<Vec<_>>())
            .bind(
                due.iter()
                    .map(|i| i.send_trace_id.0.to_vec())
                    .collect::<Vec<_>>(),
            )
            .bind(due.iter().map(|i| i.due_ns).collect::<Vec<_>>())
            .bind(due.iter().map(|i| i64::from(i.overdue)).collect::<Vec<_>>())
            .bind(due.iter().map(|i| i.topic.as_str()).collect::<Vec<_>>())
            .bind(
                due.iter()
                    .map(|i| i.message_id.as_deref())
                    .collect::<Vec<_>>(),
            )
            .bind(due.iter().map(|i| i.partition).collect::<Vec<_>>())
            .bind(due.iter().map(|i| i.offset).collect::<Vec<_>>())
            .bind(
                due.iter()
                    .map(|i| i.correlation_id.as_deref())
                    .collect::<Vec<_>>(),
            )
            .bind(
                due.iter()
                    .map(|i| i.event_type.as_deref())
                    .collect::<Vec<_>>(),
            )
            .bind(due.iter().map(|i| i.producer.as_str()).collect::<Vec<_>>())
            .bind(due.iter().map(|i| i.sent_ns).collect::<Vec<_>>())
            .bind(groups)
            .execute(&mut *transaction)
            .await?;
        }
        if !pass.seen.is_empty() {
            let seen = &pass.seen;
            sqlx::query(
                "INSERT INTO flow_seen (seen_ns, consumer_group, source_span_id, topic, \
                 message_id, partition_id, kafka_offset) SELECT $1, * FROM UNNEST($2::text[], \
                 $3::bytea[], $4::text[], $5::text[], $6::bigint[], $7::bigint[])",
            )
            .bind(crate::clock::now_ns())
            .bind(
                seen.iter()
                    .map(|m| m.consumer_group.as_deref())
                    .collect::<Vec<_>>(),
            )
            .bind(
                seen.iter()
                    .map(|m| m.source_span_id.map(|id| id.0.to_vec()))
                    .collect::<Vec<_>>(),
            )
            .bind(seen.iter().map(|m| m.topic.as_deref()).collect::<Vec<_>>())
            .bind(
                seen.iter()
                    .map(|m| m.message_id.as_deref())
                    .collect::<Vec<_>>(),
            )
            .bind(seen.iter().map(|m| m.partition).collect::<Vec<_>>())
            .bind(seen.iter().map(|m| m.offset).collect::<Vec<_>>())
            .execute(&mut *transaction)
            .await?;
        }
        if let Some(before) = pass.forget_seen_before_ns {
            sqlx::query("DELETE FROM flow_seen WHERE seen_ns < $1")
                .bind(before)
                .execute(&mut *transaction)
                .await?;
        }
        if !pass.subjects_deleted.is_empty() {
            sqlx::query("DELETE FROM flow_alert_subjects WHERE fingerprint = ANY($1::text[])")
                .bind(&pass.subjects_deleted)
                .execute(&mut *transaction)
                .await?;
        }
        for subject in &pass.subjects {
            sqlx::query(
                "INSERT INTO flow_alert_subjects (fingerprint, labels, count, flow_ids, \
                 first_seen_ns, last_seen_ns) VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (fingerprint) DO UPDATE SET labels = excluded.labels, \
                 count = excluded.count, flow_ids = excluded.flow_ids, \
                 first_seen_ns = excluded.first_seen_ns, last_seen_ns = excluded.last_seen_ns",
            )
            .bind(&subject.fingerprint)
            .bind(to_json(&subject.labels)?)
            .bind(subject.count)
            .bind(json(&subject.flow_ids)?)
            .bind(subject.first_seen_ns)
            .bind(subject.last_seen_ns)
            .execute(&mut *transaction)
            .await?;
        }
        for alert in &pass.alerts {
            upsert_alert(&mut transaction, alert).await?;
        }
        if let Some(cursor) = pass.cursor {
            sqlx::query(
                "INSERT INTO flow_rule_cursor (id, last_rowid) VALUES (1, $1) \
                 ON CONFLICT (id) DO UPDATE SET last_rowid = excluded.last_rowid",
            )
            .bind(cursor)
            .execute(&mut *transaction)
            .await?;
            sqlx::query("DELETE FROM span_writes WHERE xid <= $1::text::xid8")
                .bind(cursor.to_string())
                .execute(&mut *transaction)
                .await?;
        }
        transaction.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
#[path = "flow_rules_tests.rs"]
mod tests;
