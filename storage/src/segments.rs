//! Span segments: runs of consecutive inserts whose random-keyed indexes are kept apart.
//!
//! Trace and span ids are random, so an index on them takes each insert at a random leaf.
//! Past the page cache's size every insert reads a page and dirties it, and the log and its
//! checkpoints grow with it. The id, correlation and link indexes are therefore prefixed
//! with a segment number: inserts only touch the newest segment's part, which fits in the
//! cache, and reads look the key up in each segment (see [`LIVE_SEGMENTS`]).
//!
//! The upsert on (trace id, span id) holds within a segment. A retry that arrives after its
//! span's segment was closed is stored again in the newest one, and every read keeps the
//! newest copy only (see `span_query::assemble`).

use rusqlite::{OptionalExtension, Transaction};

/// Spans per segment. A segment's share of each random-keyed index is a few MiB (the id
/// index, about 4 MiB), so the parts being written stay inside the writer's 32 MiB page
/// cache; a store of 10M spans has 100 segments for a read to visit. On the 10M-span
/// ingest benchmark raw SQLite inserted 88k rows/s with 100,000 against 77–81k with
/// 200,000 (docs/DECISIONS.md).
pub const SEGMENT_SPANS: i64 = 100_000;

/// The segments that hold spans, for `segment IN (…)` in front of an indexed lookup.
pub(crate) const LIVE_SEGMENTS: &str = "SELECT segment FROM span_segments";

/// The live segments that the spans of correlation row `alias` were written to, for
/// lookups made once per row of the correlations list.
pub(crate) fn correlation_segments(alias: &str) -> String {
    format!(
        "SELECT segment FROM span_segments \
         WHERE segment BETWEEN {alias}.first_segment AND {alias}.last_segment"
    )
}

/// The segment new spans go into: the newest one, or a new one once the newest holds
/// `segment_spans` rows (or once rowids started over, after retention emptied the table).
/// Runs inside the writer's transaction, so it sees its own inserts.
pub(crate) fn segment_for_insert(
    transaction: &Transaction<'_>,
    segment_spans: i64,
) -> rusqlite::Result<i64> {
    let newest: Option<(i64, i64)> = transaction
        .prepare_cached(
            "SELECT segment, first_rowid FROM span_segments ORDER BY segment DESC LIMIT 1",
        )?
        .query_row([], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    let next_rowid: i64 = transaction
        .prepare_cached("SELECT coalesce(max(rowid), 0) + 1 FROM spans")?
        .query_row([], |row| row.get(0))?;
    match newest {
        Some((segment, first_rowid))
            if (0..segment_spans.max(1)).contains(&(next_rowid - first_rowid)) =>
        {
            Ok(segment)
        }
        newest => {
            let segment = newest.map_or(0, |(segment, _)| segment + 1);
            transaction
                .prepare_cached("INSERT INTO span_segments (segment, first_rowid) VALUES (?, ?)")?
                .execute(rusqlite::params![segment, next_rowid])?;
            Ok(segment)
        }
    }
}

/// Forgets the segments older than the oldest stored span (retention emptied them). The
/// newest segment is always kept, so numbering goes on from it.
pub(crate) const FORGET_EMPTY_SEGMENTS: &str = "DELETE FROM span_segments WHERE segment < \
    coalesce((SELECT segment FROM spans ORDER BY rowid LIMIT 1), \
    (SELECT max(segment) FROM span_segments))";

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use crate::store::SqliteStore as Store;
    use crate::{
        CorrelationQuery, CorrelationSearch, EncodedSpans, RetentionPolicy, SpanId, SpanKind,
        SpanRecord, TraceId, testsuite,
    };

    fn span(trace: u8, id: u8, name: &str) -> SpanRecord {
        let start_ns = i64::from(id) * 1_000;
        testsuite::span(TraceId([trace; 16]), SpanId([id; 8]))
            .name(name)
            .kind(SpanKind::Producer)
            .service("orders")
            .times(start_ns, start_ns + 10)
            .link(TraceId([9; 16]), SpanId([9; 8]))
            .correlation(format!("ord-{trace}"))
            .build()
    }

    async fn write(store: &Store, spans: &[SpanRecord]) {
        store
            .write_spans(vec![EncodedSpans::encode(spans)])
            .await
            .unwrap();
    }

    async fn segments(store: &Store) -> Vec<i64> {
        sqlx::query_scalar("SELECT segment FROM span_segments ORDER BY segment")
            .fetch_all(&store.reader)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_retry_after_its_segment_closed_is_read_once_as_its_newest_copy() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).await.unwrap();
        store.set_segment_spans(2);
        write(&store, &[span(1, 1, "first try"), span(1, 2, "sibling")]).await;
        write(&store, &[span(2, 3, "other trace")]).await;
        write(&store, &[span(1, 1, "retried")]).await;
        assert_eq!(segments(&store).await, [0, 1]);
        assert_eq!(
            store.span_count().await.unwrap(),
            4,
            "two copies are stored"
        );

        let by_trace = store.spans_by_trace(TraceId([1; 16]), 100).await.unwrap();
        let names: Vec<&str> = by_trace.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["retried", "sibling"], "newest copy, in start order");
        assert_eq!(by_trace[0].links.len(), 1, "the link is not doubled");
        let by_correlation = store.spans_by_correlation("ord-1", 100).await.unwrap();
        assert_eq!(by_correlation.len(), 2);
        let flow = store.flow_spans(&["ord-1".to_owned()], 100).await.unwrap();
        assert_eq!(flow.len(), 2);
        assert_eq!(flow[0].name, "retried");
        let linking = store
            .spans_linking_to(TraceId([9; 16]), SpanId([9; 8]))
            .await
            .unwrap();
        assert_eq!(linking.len(), 3, "three distinct spans link to the target");
    }

    #[tokio::test]
    async fn list_filters_find_a_correlation_in_every_segment_it_was_written_to() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).await.unwrap();
        store.set_segment_spans(1);
        let mut billing = span(1, 2, "charge");
        billing.service_name = "billing".to_owned();
        let mut shipping = span(1, 3, "ship");
        shipping.service_name = "shipping".to_owned();
        write(&store, &[span(1, 1, "place")]).await;
        write(&store, &[span(2, 4, "other")]).await;
        write(&store, &[billing]).await;
        write(&store, &[shipping]).await;
        assert_eq!(segments(&store).await, [0, 1, 2, 3]);
        for service in ["orders", "billing", "shipping"] {
            let found = store
                .search_correlations(&CorrelationSearch {
                    text: service.to_owned(),
                    offset: 0,
                    limit: 10,
                })
                .await
                .unwrap();
            let ids: Vec<&str> = found.iter().map(|c| c.correlation_id.as_str()).collect();
            let expected: &[&str] = if service == "orders" {
                &["ord-2", "ord-1"]
            } else {
                &["ord-1"]
            };
            assert_eq!(ids, expected, "search for {service}");
            let recent = store
                .recent_correlations(&CorrelationQuery {
                    service: Some(service.to_owned()),
                    limit: 10,
                    ..CorrelationQuery::default()
                })
                .await
                .unwrap();
            assert_eq!(recent.len(), expected.len(), "recent with {service}");
        }
    }

    #[tokio::test]
    async fn segments_roll_every_n_spans_and_retention_forgets_emptied_ones() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).await.unwrap();
        store.set_segment_spans(3);
        for id in 1..=10 {
            write(&store, &[span(id, id, "one")]).await;
        }
        assert_eq!(
            segments(&store).await,
            [0, 1, 2, 3],
            "rows 1-3, 4-6, 7-9, 10"
        );
        let report = store
            .apply_retention(&RetentionPolicy {
                max_age_ns: Some(0),
                max_bytes: None,
            })
            .await
            .unwrap();
        assert_eq!(report.deleted_by_age, 10);
        assert_eq!(
            segments(&store).await,
            [3],
            "only the newest number is kept"
        );
        let links: i64 = sqlx::query_scalar("SELECT count(*) FROM span_links")
            .fetch_one(&store.reader)
            .await
            .unwrap();
        assert_eq!(links, 0, "the links went with their spans");
        // Rowids start over in an empty table; the next write opens a new segment.
        write(&store, &[span(11, 11, "after")]).await;
        assert_eq!(segments(&store).await, [3, 4]);
        let found = store.spans_by_trace(TraceId([11; 16]), 10).await.unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].links.len(), 1);
    }
}
