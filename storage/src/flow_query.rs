//! The queries behind `causeway flow` and `causeway flows`: every span of a flow (the
//! spans that carry its correlation IDs plus the uncorrelated spans of their traces), the
//! learnt topology, and recent correlations newest first, all bounded.

use sqlx::{AssertSqlSafe, Row};

use crate::error::StorageError;
use crate::ids::TraceId;
use crate::record::SpanRecord;
use crate::span_query::{SPAN_COLUMNS, assemble};
use crate::store::Store;

/// At most this many correlation IDs are stitched into one flow.
pub const MAX_FLOW_CORRELATIONS: usize = 64;
/// At most this many topology rows are read.
const MAX_TOPOLOGY_ROWS: i64 = 100_000;

/// One row of the `correlations` table the writer maintains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorrelationRow {
    /// The correlation ID.
    pub correlation_id: String,
    /// Earliest span start, in nanoseconds since the Unix epoch.
    pub first_start_ns: i64,
    /// Latest span end, in nanoseconds since the Unix epoch.
    pub last_end_ns: i64,
    /// Whether any span of the correlation ended in error.
    pub has_error: bool,
}

/// Which correlations to list, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CorrelationQuery {
    /// Only correlations that started at or after this time (ns since the Unix epoch).
    pub since_ns: Option<i64>,
    /// Keyset cursor: only correlations that sort after this (start, id) pair, for paging.
    pub before: Option<(i64, String)>,
    /// Only correlations with a span from this service.
    pub service: Option<String>,
    /// Only correlations with a span whose event type matches this `*` pattern.
    pub event_type: Option<String>,
    /// Only correlations with a failed span.
    pub errors_only: bool,
    /// At most this many rows.
    pub limit: i64,
}

impl Store {
    /// Every span of the flow that `correlation_ids` name: the spans carrying one of them,
    /// and the spans without a correlation ID in the same traces. At most `limit` spans
    /// (oldest first) and [`MAX_FLOW_CORRELATIONS`] IDs.
    pub async fn flow_spans(
        &self,
        correlation_ids: &[String],
        limit: i64,
    ) -> Result<Vec<SpanRecord>, StorageError> {
        let ids = &correlation_ids[..correlation_ids.len().min(MAX_FLOW_CORRELATIONS)];
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let marks = vec!["?"; ids.len()].join(", ");
        let traces =
            format!("SELECT DISTINCT c.trace_id FROM spans c WHERE c.correlation_id IN ({marks})");
        let span_sql = format!(
            "SELECT {SPAN_COLUMNS} FROM spans s WHERE s.trace_id IN ({traces}) \
             AND (s.correlation_id IS NULL OR s.correlation_id IN ({marks})) \
             ORDER BY s.start_ns LIMIT ?"
        );
        let mut spans = sqlx::query(AssertSqlSafe(span_sql));
        for id in ids.iter().chain(ids) {
            spans = spans.bind(id);
        }
        let rows = spans.bind(limit).fetch_all(&self.reader).await?;
        let link_sql = format!(
            "SELECT l.trace_id, l.span_id, l.linked_trace_id, l.linked_span_id, l.attributes \
             FROM span_links l WHERE l.trace_id IN ({traces})"
        );
        let mut links = sqlx::query(AssertSqlSafe(link_sql));
        for id in ids {
            links = links.bind(id);
        }
        let links = links.fetch_all(&self.reader).await?;
        assemble(rows, links)
    }

    /// The correlation IDs that spans of `trace_id` carry, sorted, at most
    /// [`MAX_FLOW_CORRELATIONS`].
    pub async fn correlations_of_trace(
        &self,
        trace_id: TraceId,
    ) -> Result<Vec<String>, StorageError> {
        let rows = sqlx::query_scalar(
            "SELECT DISTINCT correlation_id FROM spans \
             WHERE trace_id = ? AND correlation_id IS NOT NULL ORDER BY correlation_id LIMIT ?",
        )
        .bind(&trace_id.0[..])
        .bind(i64::try_from(MAX_FLOW_CORRELATIONS).unwrap_or(i64::MAX))
        .fetch_all(&self.reader)
        .await?;
        Ok(rows)
    }

    /// Every `(topic, consumer group)` pair seen in stored traffic.
    pub async fn topology(&self) -> Result<Vec<(String, String)>, StorageError> {
        let rows = sqlx::query(
            "SELECT destination, consumer_group FROM topology \
             ORDER BY destination, consumer_group LIMIT ?",
        )
        .bind(MAX_TOPOLOGY_ROWS)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect()
    }

    /// Recent correlations, newest first, filtered as `query` says and bounded by its
    /// limit. Page on with `before` set to the last row's (start, id).
    pub async fn recent_correlations(
        &self,
        query: &CorrelationQuery,
    ) -> Result<Vec<CorrelationRow>, StorageError> {
        let mut sql = String::from(
            "SELECT c.correlation_id, c.first_start_ns, c.last_end_ns, c.has_error \
             FROM correlations c WHERE 1 = 1",
        );
        if query.since_ns.is_some() {
            sql.push_str(" AND c.first_start_ns >= ?");
        }
        if query.before.is_some() {
            sql.push_str(
                " AND (c.first_start_ns < ? OR (c.first_start_ns = ? AND c.correlation_id < ?))",
            );
        }
        if query.errors_only {
            sql.push_str(" AND c.has_error = 1");
        }
        if query.service.is_some() {
            sql.push_str(
                " AND EXISTS (SELECT 1 FROM spans s WHERE s.correlation_id = c.correlation_id \
                 AND s.service_name = ?)",
            );
        }
        if query.event_type.is_some() {
            sql.push_str(
                " AND EXISTS (SELECT 1 FROM spans s WHERE s.correlation_id = c.correlation_id \
                 AND s.event_type GLOB ?)",
            );
        }
        sql.push_str(" ORDER BY c.first_start_ns DESC, c.correlation_id DESC LIMIT ?");
        let mut statement = sqlx::query(AssertSqlSafe(sql));
        if let Some(since) = query.since_ns {
            statement = statement.bind(since);
        }
        if let Some((start, id)) = &query.before {
            statement = statement.bind(*start).bind(*start).bind(id.clone());
        }
        if let Some(service) = &query.service {
            statement = statement.bind(service.clone());
        }
        if let Some(event_type) = &query.event_type {
            statement = statement.bind(event_type.clone());
        }
        let rows = statement
            .bind(query.limit.max(0))
            .fetch_all(&self.reader)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(CorrelationRow {
                    correlation_id: row.try_get(0)?,
                    first_start_ns: row.try_get(1)?,
                    last_end_ns: row.try_get(2)?,
                    has_error: row.try_get::<i64, _>(3)? != 0,
                })
            })
            .collect()
    }
}
