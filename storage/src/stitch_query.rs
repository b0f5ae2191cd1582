//! The queries that follow a flow beyond the traces that carry its correlation ID: every
//! span of a set of traces, the links other spans recorded into them (links are followed
//! in both directions), the traces of spans at given message positions (consumers that
//! lost their trace context, producers that recorded where their message went), and the
//! flows that carry no correlation ID at all (`flow_roots`), newest first.
//!
//! Every query is bounded: by the number of traces or positions asked for, and by a limit.

use sqlx::{AssertSqlSafe, Row};

use crate::error::StorageError;
use crate::flow_query::CorrelationRow;
use crate::ids::{SpanId, TraceId};
use crate::record::SpanRecord;
use crate::segments::LIVE_SEGMENTS;
use rusqlite::types::Value;

use crate::span_query::{SPAN_COLUMNS, limit_sql, trace_id_at};
use crate::span_read;
use crate::store::SqliteStore as Store;

/// Most traces or positions bound in one statement.
const KEYS_PER_STATEMENT: usize = 200;

/// A link as it was recorded: `from` names the span that holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkRef {
    /// The trace of the span that recorded the link.
    pub from_trace: TraceId,
    /// The span that recorded the link.
    pub from_span: SpanId,
    /// The trace linked to.
    pub to_trace: TraceId,
    /// The span linked to.
    pub to_span: SpanId,
}

/// Where a message sits: topic, partition, offset.
pub type Position = (String, i64, i64);

/// The ids of `traces` as statement parameters.
fn trace_keys(traces: &[TraceId]) -> Vec<Value> {
    traces
        .iter()
        .map(|trace| Value::Blob(trace.0.to_vec()))
        .collect()
}

impl Store {
    /// Every span of `traces`, at most `limit`, oldest first, with their links.
    pub async fn spans_of_traces(
        &self,
        traces: &[TraceId],
        limit: i64,
    ) -> Result<Vec<SpanRecord>, StorageError> {
        let mut spans = Vec::new();
        for chunk in traces.chunks(KEYS_PER_STATEMENT) {
            let marks = vec!["?"; chunk.len()].join(", ");
            let span_sql = format!(
                "SELECT {SPAN_COLUMNS} FROM spans s WHERE s.segment IN ({LIVE_SEGMENTS}) \
                 AND s.trace_id IN ({marks}) ORDER BY s.start_ns {}",
                limit_sql(limit)
            );
            let link_sql = format!(
                "SELECT trace_id, span_id, linked_trace_id, linked_span_id, attributes \
                 FROM span_links WHERE segment IN ({LIVE_SEGMENTS}) AND trace_id IN ({marks})"
            );
            let keys = trace_keys(chunk);
            // A trace is in one chunk only, so each chunk's copies of a span are all of it.
            let found = self
                .span_reads
                .spans_with_links(span_sql, keys.clone(), link_sql, keys)
                .await?;
            spans.extend(found);
        }
        spans.sort_by_key(|span| (span.start_ns, span.trace_id, span.span_id));
        spans.truncate(usize::try_from(limit.max(0)).unwrap_or(usize::MAX));
        Ok(spans)
    }

    /// The links that spans of other traces recorded into `traces`: the reverse direction,
    /// from a producer to the consumers that link to it. At most `limit`.
    pub async fn links_into_traces(
        &self,
        traces: &[TraceId],
        limit: i64,
    ) -> Result<Vec<LinkRef>, StorageError> {
        let mut found = Vec::new();
        for chunk in traces.chunks(KEYS_PER_STATEMENT) {
            let marks = vec!["?"; chunk.len()].join(", ");
            let sql = format!(
                "SELECT DISTINCT trace_id, span_id, linked_trace_id, linked_span_id \
                 FROM span_links INDEXED BY span_links_by_target \
                 WHERE segment IN ({LIVE_SEGMENTS}) AND linked_trace_id IN ({marks}) {}",
                limit_sql(limit)
            );
            let keys = trace_keys(chunk);
            let links = self
                .span_reads
                .run(move |connection| {
                    let mut statement = connection.prepare_cached(&sql)?;
                    statement
                        .query_map(rusqlite::params_from_iter(keys), |row| {
                            let id = |index| -> rusqlite::Result<&[u8]> {
                                Ok(row.get_ref(index)?.as_blob()?)
                            };
                            Ok(LinkRef {
                                from_trace: span_read::trace_id(id(0)?, 0)?,
                                from_span: span_read::span_id(id(1)?, 1)?,
                                to_trace: span_read::trace_id(id(2)?, 2)?,
                                to_span: span_read::span_id(id(3)?, 3)?,
                            })
                        })?
                        .collect::<rusqlite::Result<Vec<_>>>()
                })
                .await?;
            found.extend(links);
        }
        found.sort_unstable();
        found.dedup();
        Ok(found)
    }

    /// The traces of spans at `positions`: send spans that recorded the position (producers
    /// whose offset the broker acknowledged) and consumer spans without a parent (those
    /// that lost or never had their trace context). At most `limit`.
    pub async fn traces_at_positions(
        &self,
        positions: &[Position],
        limit: i64,
    ) -> Result<Vec<TraceId>, StorageError> {
        let mut traces = Vec::new();
        // One indexed lookup per position and side, in one compound statement: an `OR` or
        // a row-value `IN` of positions makes SQLite scan the whole partial index instead.
        const SIDES: [&str; 2] = [
            "kind = 4 AND kafka_offset IS NOT NULL",
            "kind = 5 AND parent_span_id IS NULL AND kafka_offset IS NOT NULL",
        ];
        for chunk in positions.chunks(KEYS_PER_STATEMENT / 2) {
            let arms: Vec<String> = chunk
                .iter()
                .flat_map(|_| SIDES)
                .map(|side| {
                    format!(
                        "SELECT trace_id FROM spans WHERE {side} \
                         AND destination = ? AND partition_id = ? AND kafka_offset = ?"
                    )
                })
                .collect();
            let mut query = sqlx::query(AssertSqlSafe(format!(
                "{} {}",
                arms.join(" UNION "),
                limit_sql(limit)
            )));
            for (topic, partition, offset) in chunk {
                for _ in SIDES {
                    query = query.bind(topic).bind(partition).bind(offset);
                }
            }
            for row in query.fetch_all(&self.reader).await? {
                traces.push(trace_id_at(&row, 0)?);
            }
        }
        traces.sort_unstable();
        traces.dedup();
        Ok(traces)
    }

    /// Flows that carry no correlation ID, newest first: each trace that holds a send span
    /// without one, as a [`CorrelationRow`] whose `correlation_id` is the trace ID and whose
    /// `root` is set. Filters as [`Store::recent_correlations`] (service and event type by
    /// the spans of the trace itself).
    pub async fn recent_flow_roots(
        &self,
        query: &crate::CorrelationQuery,
    ) -> Result<Vec<CorrelationRow>, StorageError> {
        let mut sql = String::from(
            "SELECT r.trace_id, r.first_start_ns, r.last_end_ns, r.has_error FROM flow_roots r \
             WHERE 1 = 1",
        );
        if query.since_ns.is_some() {
            sql.push_str(" AND r.first_start_ns >= ?");
        }
        // The cursor compares the trace ID as the text the list shows, so that a page of
        // correlations and roots merged by (start, id) continues where it stopped.
        if query.before.is_some() {
            sql.push_str(
                " AND (r.first_start_ns < ? OR (r.first_start_ns = ? AND lower(hex(r.trace_id)) < ?))",
            );
        }
        if query.errors_only {
            sql.push_str(" AND r.has_error = 1");
        }
        if query.service.is_some() {
            sql.push_str(&format!(
                " AND EXISTS (SELECT 1 FROM spans s WHERE s.segment IN ({LIVE_SEGMENTS}) \
                 AND s.trace_id = r.trace_id AND s.service_name = ?)"
            ));
        }
        if query.event_type.is_some() {
            sql.push_str(&format!(
                " AND EXISTS (SELECT 1 FROM spans s WHERE s.segment IN ({LIVE_SEGMENTS}) \
                 AND s.trace_id = r.trace_id AND s.event_type GLOB ?)"
            ));
        }
        sql.push_str(" ORDER BY r.first_start_ns DESC, r.trace_id DESC LIMIT ?");
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
        rows.iter().map(CorrelationRow::from_root_row).collect()
    }
}

impl Store {
    /// The traces of spans among the newest `scan_rows` whose attribute under one of `keys`
    /// is `value` (a string, or a string array holding it, as captured headers are). A
    /// bounded scan, for correlation IDs the collector was not told to read: keys may not
    /// hold `"`.
    pub async fn traces_with_attribute(
        &self,
        keys: &[String],
        value: &str,
        scan_rows: i64,
    ) -> Result<Vec<TraceId>, StorageError> {
        let paths: Vec<String> = keys
            .iter()
            .filter(|key| !key.contains('"'))
            .map(|key| format!("$.\"{key}\""))
            .collect();
        if paths.is_empty() {
            return Ok(Vec::new());
        }
        let terms = vec![
            "EXISTS (SELECT 1 FROM json_each(recent.attributes, ?) j WHERE j.value = ?)";
            paths.len()
        ]
        .join(" OR ");
        let mut query = sqlx::query(AssertSqlSafe(format!(
            "SELECT DISTINCT recent.trace_id FROM (SELECT trace_id, attributes FROM spans \
             ORDER BY rowid DESC LIMIT ?) recent WHERE {terms} LIMIT ?"
        )))
        .bind(scan_rows);
        for path in &paths {
            query = query.bind(path.clone()).bind(value);
        }
        let rows = query
            .bind(KEYS_PER_STATEMENT as i64)
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(|row| trace_id_at(row, 0)).collect()
    }
}

impl CorrelationRow {
    /// Decodes a `flow_roots` row selected as (trace_id, first_start_ns, last_end_ns,
    /// has_error): the flow is listed under its trace ID.
    pub(crate) fn from_root_row(row: &sqlx::sqlite::SqliteRow) -> Result<Self, StorageError> {
        Ok(CorrelationRow {
            correlation_id: trace_id_at(row, 0)?.to_string(),
            first_start_ns: row.try_get(1)?,
            last_end_ns: row.try_get(2)?,
            has_error: row.try_get::<i64, _>(3)? != 0,
            root: true,
        })
    }
}

impl Store {
    /// The flows list, newest first: correlations and flows without one (see
    /// [`Store::recent_flow_roots`]) merged by (start, ID), at most `query.limit`. Page on
    /// with `before` set to the last row's (start, ID).
    pub async fn recent_flows(
        &self,
        query: &crate::CorrelationQuery,
    ) -> Result<Vec<CorrelationRow>, StorageError> {
        let (rows, roots) = tokio::try_join!(
            self.recent_correlations(query),
            self.recent_flow_roots(query)
        )?;
        Ok(merge_flows(rows, roots, query.limit))
    }
}

/// Correlations and flows without one merged newest first, at most `limit`.
pub(crate) fn merge_flows(
    mut rows: Vec<CorrelationRow>,
    roots: Vec<CorrelationRow>,
    limit: i64,
) -> Vec<CorrelationRow> {
    rows.extend(roots);
    sort_newest_first(&mut rows);
    rows.truncate(usize::try_from(limit.max(0)).unwrap_or(usize::MAX));
    rows
}

/// Sorts flows-list rows newest first, by (start, ID) descending.
pub(crate) fn sort_newest_first(rows: &mut [CorrelationRow]) {
    rows.sort_by(|a, b| {
        (b.first_start_ns, &b.correlation_id).cmp(&(a.first_start_ns, &a.correlation_id))
    });
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::record::SpanKind;
    use crate::{CorrelationQuery, EncodedSpans, testsuite};

    /// Producer p (trace 1) sends orders/0@7; consumer c (trace 2) links to it; consumer o
    /// (trace 3) lost its context and sits at the same position; q (trace 4) is unrelated.
    async fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("stitch.db")).await.unwrap();
        let producer = testsuite::span(TraceId([1; 16]), SpanId([1; 8]))
            .send("orders")
            .partition(0)
            .offset(7)
            .times(10, 20)
            .build();
        let linked = testsuite::span(TraceId([2; 16]), SpanId([2; 8]))
            .kind(SpanKind::Consumer)
            .name("orders process")
            .link(TraceId([1; 16]), SpanId([1; 8]))
            .times(30, 40)
            .build();
        let orphan = testsuite::span(TraceId([3; 16]), SpanId([3; 8]))
            .process("orders", "audit")
            .partition(0)
            .offset(7)
            .times(50, 60)
            .build();
        let unrelated = testsuite::span(TraceId([4; 16]), SpanId([4; 8]))
            .send("payments")
            .times(70, 80)
            .error("broken")
            .build();
        store
            .write_spans(vec![EncodedSpans::encode(&[
                producer, linked, orphan, unrelated,
            ])])
            .await
            .unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn links_are_found_from_the_linked_side() {
        let (_dir, store) = store().await;
        let links = store
            .links_into_traces(&[TraceId([1; 16])], 100)
            .await
            .unwrap();
        assert_eq!(
            links,
            [LinkRef {
                from_trace: TraceId([2; 16]),
                from_span: SpanId([2; 8]),
                to_trace: TraceId([1; 16]),
                to_span: SpanId([1; 8]),
            }]
        );
        assert!(
            store
                .links_into_traces(&[TraceId([2; 16])], 100)
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn positions_find_producers_and_orphan_consumers() {
        let (_dir, store) = store().await;
        let traces = store
            .traces_at_positions(&[("orders".to_owned(), 0, 7)], 100)
            .await
            .unwrap();
        assert_eq!(traces, [TraceId([1; 16]), TraceId([3; 16])]);
        let none = store
            .traces_at_positions(&[("orders".to_owned(), 1, 7)], 100)
            .await
            .unwrap();
        assert!(none.is_empty(), "another partition is another message");
    }

    #[tokio::test]
    async fn spans_of_several_traces_come_back_oldest_first_with_links() {
        let (_dir, store) = store().await;
        let spans = store
            .spans_of_traces(&[TraceId([2; 16]), TraceId([1; 16])], 100)
            .await
            .unwrap();
        let ids: Vec<SpanId> = spans.iter().map(|s| s.span_id).collect();
        assert_eq!(ids, [SpanId([1; 8]), SpanId([2; 8])]);
        assert_eq!(spans[1].links.len(), 1);
    }

    #[tokio::test]
    async fn uncorrelated_sends_make_flow_roots_newest_first() {
        let (_dir, store) = store().await;
        let query = CorrelationQuery {
            limit: 10,
            ..CorrelationQuery::default()
        };
        let roots = store.recent_flow_roots(&query).await.unwrap();
        let ids: Vec<&str> = roots.iter().map(|r| r.correlation_id.as_str()).collect();
        assert_eq!(
            ids,
            [TraceId([4; 16]).to_string(), TraceId([1; 16]).to_string()],
            "the two traces with a send and no correlation, newest first"
        );
        assert!(roots.iter().all(|r| r.root));
        assert!(roots[0].has_error);
        let errors = store
            .recent_flow_roots(&CorrelationQuery {
                errors_only: true,
                ..query.clone()
            })
            .await
            .unwrap();
        assert_eq!(errors.len(), 1);
        let page = store
            .recent_flow_roots(&CorrelationQuery {
                before: Some((roots[0].first_start_ns, roots[0].correlation_id.clone())),
                ..query.clone()
            })
            .await
            .unwrap();
        assert_eq!(page.len(), 1, "the keyset cursor pages on");
        assert_eq!(page[0].correlation_id, roots[1].correlation_id);
    }
}
