//! The queries behind `causeway flow` and `causeway flows`: every span of a flow (the
//! spans that carry its correlation IDs plus the uncorrelated spans of their traces), the
//! learnt topology, and recent correlations newest first, all bounded.

use sqlx::{AssertSqlSafe, Row};

use crate::error::StorageError;
use crate::ids::TraceId;
use crate::record::SpanRecord;
use crate::segments::{LIVE_SEGMENTS, correlation_segments};
use rusqlite::types::Value;

use crate::span_query::{SPAN_COLUMNS, limit_sql};
use crate::store::SqliteStore as Store;

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
    /// Whether this is a flow without a correlation ID, named by the trace of its first
    /// producer (`correlation_id` then holds that trace ID, 32 hex digits).
    pub root: bool,
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
    /// Only these correlations (the result of
    /// [`Store::correlations_with_attributes`], say); `None` for all.
    pub correlation_ids: Option<Vec<String>>,
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
        // The correlation's summary row knows the segments its spans were written to, so
        // the index is searched there only, not in every segment.
        let traces = format!(
            "SELECT DISTINCT t.trace_id FROM correlations r CROSS JOIN spans t \
             ON t.segment IN ({}) AND t.correlation_id = r.correlation_id \
             WHERE r.correlation_id IN ({marks})",
            correlation_segments("r")
        );
        let span_sql = format!(
            "SELECT {SPAN_COLUMNS} FROM spans s WHERE s.segment IN ({LIVE_SEGMENTS}) \
             AND s.trace_id IN ({traces}) \
             AND (s.correlation_id IS NULL OR s.correlation_id IN ({marks})) \
             ORDER BY s.start_ns {}",
            limit_sql(limit)
        );
        let link_sql = format!(
            "SELECT l.trace_id, l.span_id, l.linked_trace_id, l.linked_span_id, l.attributes \
             FROM span_links l WHERE l.segment IN ({LIVE_SEGMENTS}) AND l.trace_id IN ({traces})"
        );
        let texts = || ids.iter().map(|id| Value::Text(id.clone()));
        self.span_reads
            .spans_with_links(
                span_sql,
                texts().chain(texts()).collect(),
                link_sql,
                texts().collect(),
            )
            .await
    }

    /// The correlation IDs that spans of `trace_id` carry, sorted, at most
    /// [`MAX_FLOW_CORRELATIONS`]. (Without `INDEXED BY`, the planner walks the correlation
    /// index of every segment to get the order for free.)
    pub async fn correlations_of_trace(
        &self,
        trace_id: TraceId,
    ) -> Result<Vec<String>, StorageError> {
        let rows = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT DISTINCT correlation_id FROM spans INDEXED BY spans_by_segment_id \
             WHERE segment IN ({LIVE_SEGMENTS}) \
             AND trace_id = ? AND correlation_id IS NOT NULL ORDER BY correlation_id {}",
            limit_sql(i64::try_from(MAX_FLOW_CORRELATIONS).unwrap_or(i64::MAX))
        )))
        .bind(&trace_id.0[..])
        .fetch_all(&self.reader)
        .await?;
        Ok(rows)
    }

    /// Every `(topic, consumer group)` pair seen in stored traffic.
    pub async fn topology(&self) -> Result<Vec<(String, String)>, StorageError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT destination, consumer_group FROM topology \
             ORDER BY destination, consumer_group {}",
            limit_sql(MAX_TOPOLOGY_ROWS)
        )))
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
        // A given list drives the query: each of its IDs is looked up, then sorted.
        let from = if query.correlation_ids.is_some() {
            "json_each(?) ids CROSS JOIN correlations c ON c.correlation_id = ids.value"
        } else {
            "correlations c"
        };
        let mut sql = format!(
            "SELECT c.correlation_id, c.first_start_ns, c.last_end_ns, c.has_error \
             FROM {from} WHERE 1 = 1"
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
            sql.push_str(&format!(
                " AND EXISTS (SELECT 1 FROM spans s WHERE s.segment IN ({}) \
                 AND s.correlation_id = c.correlation_id AND s.service_name = ?)",
                correlation_segments("c")
            ));
        }
        if query.event_type.is_some() {
            sql.push_str(&format!(
                " AND EXISTS (SELECT 1 FROM spans s WHERE s.segment IN ({}) \
                 AND s.correlation_id = c.correlation_id AND s.event_type GLOB ?)",
                correlation_segments("c")
            ));
        }
        sql.push_str(" ORDER BY c.first_start_ns DESC, c.correlation_id DESC LIMIT ?");
        let mut statement = sqlx::query(AssertSqlSafe(sql));
        if let Some(ids) = &query.correlation_ids {
            statement = statement.bind(serde_json::Value::from(ids.clone()).to_string());
        }
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
        rows.iter().map(CorrelationRow::from_row).collect()
    }
}

impl CorrelationRow {
    /// Decodes a row selected as (correlation_id, first_start_ns, last_end_ns, has_error).
    pub(crate) fn from_row(row: &sqlx::sqlite::SqliteRow) -> Result<CorrelationRow, StorageError> {
        Ok(CorrelationRow {
            correlation_id: row.try_get(0)?,
            first_start_ns: row.try_get(1)?,
            last_end_ns: row.try_get(2)?,
            has_error: row.try_get::<i64, _>(3)? != 0,
            root: false,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::ids::SpanId;
    use crate::record::{SpanKind, SpanLink};
    use crate::span_encode::EncodedSpans;
    use crate::testsuite;

    fn span(trace: u8, id: u8, parent: Option<u8>, correlation: Option<&str>) -> SpanRecord {
        let start_ns = i64::from(trace) * 1_000 + i64::from(id);
        let mut span = testsuite::span(TraceId([trace; 16]), SpanId([id; 8]))
            .name(format!("span {id}"))
            .service(if id.is_multiple_of(2) { "even" } else { "odd" })
            .times(start_ns, start_ns + 5)
            .topic("orders")
            .event_type(format!("order.e{id}.v1"));
        if let Some(parent) = parent {
            span = span.parent(SpanId([parent; 8]));
        }
        if let Some(correlation) = correlation {
            span = span.correlation(correlation);
        }
        if id == 3 {
            span = span.kind(SpanKind::Consumer).group("billing");
        }
        if id == 9 {
            span = span.error("");
        }
        span.build()
    }

    async fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("flow.db")).await.unwrap();
        let mut linked = span(2, 3, None, Some("a"));
        linked.links.push(SpanLink {
            trace_id: TraceId([1; 16]),
            span_id: SpanId([1; 8]),
            attributes: Default::default(),
        });
        let spans = vec![
            span(1, 1, None, Some("a")),
            span(1, 2, Some(1), None),
            span(1, 4, Some(1), Some("b")),
            linked,
            span(3, 5, None, Some("b")),
            span(4, 9, None, Some("c")),
        ];
        store
            .write_spans(vec![EncodedSpans::encode(&spans)])
            .await
            .unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn flow_spans_take_uncorrelated_spans_of_the_same_traces_only() {
        let (_dir, store) = store().await;
        let spans = store.flow_spans(&["a".to_owned()], 100).await.unwrap();
        let ids: Vec<u8> = spans.iter().map(|s| s.span_id.0[0]).collect();
        assert_eq!(
            ids,
            [1, 2, 3],
            "span 4 of trace 1 belongs to correlation b and stays out"
        );
        assert_eq!(spans[2].links.len(), 1, "links come along");
        let both = store
            .flow_spans(&["a".to_owned(), "b".to_owned()], 100)
            .await
            .unwrap();
        assert_eq!(both.len(), 5);
        let limited = store.flow_spans(&["a".to_owned()], 2).await.unwrap();
        assert_eq!(limited.len(), 2, "the limit bounds the read");
        assert!(store.flow_spans(&[], 100).await.unwrap().is_empty());
        assert_eq!(
            store.correlations_of_trace(TraceId([1; 16])).await.unwrap(),
            ["a", "b"]
        );
        assert_eq!(
            store.topology().await.unwrap(),
            [("orders".to_owned(), "billing".to_owned())]
        );
    }

    #[tokio::test]
    async fn recent_correlations_page_newest_first_with_filters() {
        let (_dir, store) = store().await;
        let ids = |rows: Vec<CorrelationRow>| -> Vec<String> {
            rows.into_iter().map(|r| r.correlation_id).collect()
        };
        let all = CorrelationQuery {
            limit: 10,
            ..Default::default()
        };
        let cases = [
            (all.clone(), vec!["c", "b", "a"], "newest first"),
            (
                CorrelationQuery {
                    limit: 1,
                    before: Some((1_004, "b".to_owned())),
                    ..all.clone()
                },
                vec!["a"],
                "keyset page after b",
            ),
            (
                CorrelationQuery {
                    errors_only: true,
                    ..all.clone()
                },
                vec!["c"],
                "errors only",
            ),
            (
                CorrelationQuery {
                    service: Some("odd".to_owned()),
                    ..all.clone()
                },
                vec!["c", "b", "a"],
                "service odd ran in every correlation",
            ),
            (
                CorrelationQuery {
                    service: Some("even".to_owned()),
                    ..all.clone()
                },
                vec!["b"],
                "service even only in b",
            ),
            (
                CorrelationQuery {
                    event_type: Some("order.e9.*".to_owned()),
                    ..all.clone()
                },
                vec!["c"],
                "event type pattern",
            ),
            (
                CorrelationQuery {
                    since_ns: Some(2_000),
                    ..all.clone()
                },
                vec!["c"],
                "since bounds the start (b started at 1004)",
            ),
            (
                CorrelationQuery {
                    correlation_ids: Some(vec!["a".to_owned(), "c".to_owned(), "z".to_owned()]),
                    ..all.clone()
                },
                vec!["c", "a"],
                "only the listed correlations, still newest first",
            ),
            (
                CorrelationQuery {
                    correlation_ids: Some(vec!["a".to_owned(), "c".to_owned()]),
                    errors_only: true,
                    ..all.clone()
                },
                vec!["c"],
                "a list combines with the other filters",
            ),
        ];
        for (query, expected, reason) in cases {
            let got = ids(store.recent_correlations(&query).await.unwrap());
            assert_eq!(got, expected, "{reason}");
        }
    }
}
