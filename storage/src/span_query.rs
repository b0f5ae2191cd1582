//! Reading spans back: by correlation ID, by trace, with their links.

use rusqlite::types::Value;
use sqlx::{ColumnIndex, Decode, Row, Type};

use crate::error::StorageError;
use crate::ids::{SpanId, TraceId};
use crate::record::{Messaging, SpanKind, SpanLink, SpanRecord, StatusCode};
use crate::segments::LIVE_SEGMENTS;
use crate::span_read::join_spans;
use crate::store::SqliteStore as Store;

/// The span columns every backend selects, in the order [`decode_span`] reads them; a
/// backend appends the column that orders copies of one span ([`ROWID_COLUMN`]).
macro_rules! span_columns {
    ($order:literal) => {
        concat!(
            "s.trace_id, s.span_id, s.parent_span_id, s.name, s.kind, s.service_name, ",
            "s.scope_name, s.start_ns, s.end_ns, s.status_code, s.status_message, ",
            "s.attributes, s.resource, s.events, s.correlation_id, s.message_id, ",
            "s.event_type, s.destination, s.partition_id, s.kafka_offset, s.consumer_group, ",
            "s.operation_type, s.message_key, ",
            $order
        )
    };
}
pub(crate) use span_columns;

pub(crate) const SPAN_COLUMNS: &str = span_columns!("s.rowid");

/// `LIMIT n` with `n` written into the statement, not bound. SQLite (3.51) marks a statement
/// whose `LIMIT` is a bound parameter to be prepared again each time the parameter is bound,
/// so a cached statement that is run again with `LIMIT ?` is planned from its text again on
/// every run. A limit is a number of our own, never input text.
pub(crate) fn limit_sql(limit: i64) -> String {
    format!("LIMIT {limit}")
}

/// The column of [`SPAN_COLUMNS`] that orders copies of one span (the SQLite rowid, the
/// PostgreSQL ingest time): the newest copy wins.
pub(crate) const ROWID_COLUMN: usize = 23;

impl Store {
    /// Every span whose correlation ID is `correlation_id`, at most `limit`, oldest first,
    /// with their links.
    pub async fn spans_by_correlation(
        &self,
        correlation_id: &str,
        limit: i64,
    ) -> Result<Vec<SpanRecord>, StorageError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SPAN_COLUMNS} FROM spans s WHERE s.segment IN ({LIVE_SEGMENTS}) \
             AND s.correlation_id = ? ORDER BY s.start_ns LIMIT ?"
        )))
        .bind(correlation_id)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        // CROSS JOIN keeps the spans outermost: left to itself, the planner walks every link
        // of every segment.
        let links = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT l.trace_id, l.span_id, l.linked_trace_id, l.linked_span_id, l.attributes \
             FROM spans s CROSS JOIN span_links l ON l.segment = s.segment \
             AND l.trace_id = s.trace_id AND l.span_id = s.span_id \
             WHERE s.segment IN ({LIVE_SEGMENTS}) AND s.correlation_id = ?"
        )))
        .bind(correlation_id)
        .fetch_all(&self.reader)
        .await?;
        assemble(rows, links)
    }

    /// Every span of one trace, at most `limit`, oldest first, with their links.
    pub async fn spans_by_trace(
        &self,
        trace_id: TraceId,
        limit: i64,
    ) -> Result<Vec<SpanRecord>, StorageError> {
        let span_sql = format!(
            "SELECT {SPAN_COLUMNS} FROM spans s WHERE s.segment IN ({LIVE_SEGMENTS}) \
             AND s.trace_id = ? ORDER BY s.start_ns {}",
            limit_sql(limit)
        );
        let link_sql = format!(
            "SELECT trace_id, span_id, linked_trace_id, linked_span_id, attributes \
             FROM span_links WHERE segment IN ({LIVE_SEGMENTS}) AND trace_id = ?"
        );
        let key = vec![Value::Blob(trace_id.0.to_vec())];
        self.span_reads
            .spans_with_links(span_sql, key.clone(), link_sql, key)
            .await
    }

    /// Spans elsewhere that link to the given span (the reverse direction of links).
    pub async fn spans_linking_to(
        &self,
        trace_id: TraceId,
        span_id: SpanId,
    ) -> Result<Vec<(TraceId, SpanId)>, StorageError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT DISTINCT trace_id, span_id FROM span_links \
             WHERE segment IN ({LIVE_SEGMENTS}) AND linked_trace_id = ? AND linked_span_id = ?"
        )))
        .bind(&trace_id.0[..])
        .bind(&span_id.0[..])
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| Ok((trace_id_at(row, 0)?, span_id_at(row, 1)?)))
            .collect()
    }

    /// Number of span rows stored. A span retried after its segment closed counts twice
    /// here (readers show it once) until retention drops the older copy.
    pub async fn span_count(&self) -> Result<i64, StorageError> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM spans")
            .fetch_one(&self.reader)
            .await?)
    }
}

/// Joins span rows (selected with [`SPAN_COLUMNS`], in the order to return) with their
/// link rows. A span stored in two segments (a retry after its segment closed) is returned
/// once, as its newest copy, and its links once each.
pub(crate) fn assemble<R>(rows: Vec<R>, links: Vec<R>) -> Result<Vec<SpanRecord>, StorageError>
where
    R: Row,
    usize: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
{
    let links = links
        .iter()
        .map(|row| {
            let holder = (trace_id_at(row, 0)?, span_id_at(row, 1)?);
            let link = SpanLink {
                trace_id: trace_id_at(row, 2)?,
                span_id: span_id_at(row, 3)?,
                attributes: json_at(row, 4)?,
            };
            Ok((holder, link))
        })
        .collect::<Result<Vec<_>, StorageError>>()?;
    let rows = rows
        .iter()
        .map(|row| Ok((decode_span(row)?, row.try_get(ROWID_COLUMN)?)))
        .collect::<Result<Vec<_>, StorageError>>()?;
    Ok(join_spans(rows, links))
}

/// Decodes a row selected with [`SPAN_COLUMNS`] (links are filled in by the caller).
pub(crate) fn decode_span<R>(row: &R) -> Result<SpanRecord, StorageError>
where
    R: Row,
    usize: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
{
    let parent: Option<Vec<u8>> = row.try_get(2)?;
    Ok(SpanRecord {
        trace_id: trace_id_at(row, 0)?,
        span_id: span_id_at(row, 1)?,
        parent_span_id: parent
            .map(|bytes| SpanId::from_bytes(&bytes))
            .transpose()
            .map_err(|e| StorageError::Corrupt(format!("parent span id: {e}")))?,
        name: row.try_get(3)?,
        kind: SpanKind::from_code(row.try_get(4)?),
        service_name: row.try_get(5)?,
        scope_name: row.try_get(6)?,
        start_ns: row.try_get(7)?,
        end_ns: row.try_get(8)?,
        status_code: StatusCode::from_code(row.try_get(9)?),
        status_message: row.try_get(10)?,
        attributes: json_at(row, 11)?,
        resource: json_at(row, 12)?,
        events: json_at(row, 13)?,
        links: Vec::new(),
        messaging: Messaging {
            correlation_id: row.try_get(14)?,
            message_id: row.try_get(15)?,
            event_type: row.try_get(16)?,
            destination: row.try_get(17)?,
            partition: row.try_get(18)?,
            offset: row.try_get(19)?,
            consumer_group: row.try_get(20)?,
            operation_type: row.try_get(21)?,
            message_key: row.try_get(22)?,
        },
    })
}

pub(crate) fn trace_id_at<R>(row: &R, index: usize) -> Result<TraceId, StorageError>
where
    R: Row,
    usize: ColumnIndex<R>,
    for<'r> Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
{
    let bytes: Vec<u8> = row.try_get(index)?;
    TraceId::from_bytes(&bytes).map_err(|e| StorageError::Corrupt(format!("trace id: {e}")))
}

pub(crate) fn span_id_at<R>(row: &R, index: usize) -> Result<SpanId, StorageError>
where
    R: Row,
    usize: ColumnIndex<R>,
    for<'r> Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
{
    let bytes: Vec<u8> = row.try_get(index)?;
    SpanId::from_bytes(&bytes).map_err(|e| StorageError::Corrupt(format!("span id: {e}")))
}

fn json_at<T: serde::de::DeserializeOwned, R>(row: &R, index: usize) -> Result<T, StorageError>
where
    R: Row,
    usize: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
{
    let text: String = row.try_get(index)?;
    serde_json::from_str(&text)
        .map_err(|e| StorageError::Corrupt(format!("json column {index}: {e}")))
}
