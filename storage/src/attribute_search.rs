//! `flows --where key=value`: which correlations have a span carrying an attribute value,
//! found by reading the runs of rows whose attribute filter may hold the value instead of
//! rebuilding every flow.
//!
//! Attributes are JSON text in the `spans` table, and no index covers every key and value
//! a user may ask for (one would cost every insert several more index rows). Instead each
//! full run of [`crate::FILTER_RUN_SPANS`] rows has a Bloom filter of its pairs
//! (`attribute_filter`, migration 0008): a search probes one block per run and value, then
//! reads, newest first, the rows no filter covers (the run being filled, rows written
//! before filters existed) and the runs whose filter may hold one of the values, at most
//! [`ATTRIBUTE_SCAN_SPANS`] rows in all, and stops once it has `limit` correlations. In each
//! span's attribute and resource text it looks for the key and value as the writer
//! serialises them (`"key":"value"`, `"key":12`). That text test keeps every span that
//! carries the value and may keep a few more (a longer number, the same pair inside a
//! nested value); callers confirm each flow exactly (`causeway_flow::FlowFilter`).

use std::collections::{HashMap, HashSet};

use serde_json::Value;
use sqlx::AssertSqlSafe;

use crate::attribute_filter::{RUN_SPANS, block_may_hold, pair_hash};
use crate::error::StorageError;
use crate::store::SqliteStore as Store;

/// How many spans an attribute search reads at most. The PostgreSQL store, which keeps no
/// filters, reads the newest this many.
pub const ATTRIBUTE_SCAN_SPANS: i64 = 500_000;

/// Rows a search reads: `first..=last`, within segments `segments.0..=segments.1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slice {
    first: i64,
    last: i64,
    segments: (i64, i64),
}

/// What a search found for one correlation: its newest matching span and which filters
/// some span matched.
struct Found {
    newest: i64,
    matched: Vec<bool>,
}

impl Store {
    /// The correlation IDs with spans that carry every `(key, value)` of `filters` between
    /// them (as a span or resource attribute), newest first, at most `limit`, read from at
    /// most [`ATTRIBUTE_SCAN_SPANS`] spans of the rows that may hold them (see the module
    /// header). A string value matches a string attribute of that text; a value that reads
    /// as JSON (`12`, `true`) also matches an attribute of that JSON value. May include a
    /// few correlations that do not match exactly.
    pub async fn correlations_with_attributes(
        &self,
        filters: &[(String, String)],
        limit: i64,
    ) -> Result<Vec<String>, StorageError> {
        if filters.is_empty() || limit <= 0 {
            return Ok(Vec::new());
        }
        let wanted = usize::try_from(limit).unwrap_or(usize::MAX);
        let slices = self.candidate_slices(filters).await?;
        let sql = slice_search_sql(filters);
        let mut found: HashMap<String, Found> = HashMap::new();
        let mut budget = ATTRIBUTE_SCAN_SPANS;
        for slice in slices {
            if budget <= 0 {
                break;
            }
            // The newest rows of a slice the budget only partly covers.
            let first = slice.first.max(slice.last - budget + 1);
            budget -= slice.last - first + 1;
            let mut query = sqlx::query_as::<_, (String, i64, String)>(AssertSqlSafe(sql.clone()))
                .bind(first)
                .bind(slice.last)
                .bind(slice.segments.0)
                .bind(slice.segments.1);
            for needle in filters
                .iter()
                .flat_map(|(key, value)| attribute_needles(key, value))
            {
                query = query.bind(needle);
            }
            for (id, newest, marks) in query.fetch_all(&self.reader).await? {
                let entry = found.entry(id).or_insert_with(|| Found {
                    newest,
                    matched: vec![false; filters.len()],
                });
                entry.newest = entry.newest.max(newest);
                for (matched, mark) in entry.matched.iter_mut().zip(marks.bytes()) {
                    *matched |= mark == b'1';
                }
            }
            let complete = found
                .values()
                .filter(|found| found.matched.iter().all(|m| *m))
                .count();
            if complete >= wanted {
                break;
            }
        }
        let mut complete: Vec<(String, i64)> = found
            .into_iter()
            .filter(|(_, found)| found.matched.iter().all(|m| *m))
            .map(|(id, found)| (id, found.newest))
            .collect();
        complete.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        complete.truncate(wanted);
        Ok(complete.into_iter().map(|(id, _)| id).collect())
    }

    /// The rows a search reads, newest first, in slices of at most one run: those no
    /// filter covers, and the runs whose filter may hold a pair of `filters`.
    async fn candidate_slices(
        &self,
        filters: &[(String, String)],
    ) -> Result<Vec<Slice>, StorageError> {
        let (oldest, newest): (Option<i64>, Option<i64>) =
            // Two subqueries: SQLite looks up one `min` or `max` of the key, but scans
            // the table for both in one select.
            sqlx::query_as("SELECT (SELECT min(rowid) FROM spans), (SELECT max(rowid) FROM spans)")
                .fetch_one(&self.reader)
                .await?;
        let (Some(oldest), Some(newest)) = (oldest, newest) else {
            return Ok(Vec::new());
        };
        let runs: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT first_rowid, last_rowid FROM attribute_filter_runs \
             ORDER BY first_rowid DESC",
        )
        .fetch_all(&self.reader)
        .await?;
        let segments: Vec<(i64, i64)> =
            sqlx::query_as("SELECT first_rowid, segment FROM span_segments ORDER BY first_rowid")
                .fetch_all(&self.reader)
                .await?;
        let mut maybe: HashSet<i64> = HashSet::new();
        for hash in filters
            .iter()
            .flat_map(|(key, value)| needle_hashes(key, value))
        {
            // One block per filtered run; a block that is not stored is all zeros.
            let blocks: Vec<(i64, Vec<u8>)> = sqlx::query_as(
                "SELECT r.first_rowid, b.bits FROM attribute_filter_runs r \
                 JOIN attribute_filter_blocks b ON b.first_rowid = r.first_rowid \
                 AND b.block = (?1 & (r.blocks - 1))",
            )
            .bind(hash as i64)
            .fetch_all(&self.reader)
            .await?;
            for (run, bits) in blocks {
                if block_may_hold(&bits, hash) {
                    maybe.insert(run);
                }
            }
        }
        let segment_of = |rowid: i64| {
            let at = segments.partition_point(|(first, _)| *first <= rowid);
            at.checked_sub(1).map_or(0, |index| segments[index].1)
        };
        let mut slices = Vec::new();
        let mut push = |first: i64, last: i64, whole: bool| {
            let (first, last) = (first.max(oldest), last.min(newest));
            let mut top = last;
            while top >= first {
                let bottom = if whole {
                    first
                } else {
                    first.max(top - RUN_SPANS + 1)
                };
                slices.push(Slice {
                    first: bottom,
                    last: top,
                    segments: (segment_of(bottom), segment_of(top)),
                });
                top = bottom - 1;
            }
        };
        let mut cursor = newest;
        for (first, last) in runs {
            if last < cursor {
                push(last + 1, cursor, false);
            }
            if maybe.contains(&first) {
                push(first, last.min(cursor), true);
            }
            cursor = cursor.min(first - 1);
        }
        push(oldest, cursor, false);
        Ok(slices)
    }
}

/// The statement that searches rowids `?1`..`?2` (of segments `?3`..`?4`, then each needle
/// once): for every correlation with a matching span, its newest matching rowid and a text
/// of `0`/`1` per filter saying which filters matched. A matching span without a
/// correlation ID counts for the correlations its trace carries in the same or a
/// neighbouring segment (the spans of one trace arrive together).
fn slice_search_sql(filters: &[(String, String)]) -> String {
    let mut next = 4;
    let tests: Vec<String> = filters
        .iter()
        .map(|(key, value)| {
            let each: Vec<String> = attribute_needles(key, value)
                .iter()
                .map(|_| {
                    next += 1;
                    format!("instr(s.attributes, ?{next}) > 0 OR instr(s.resource, ?{next}) > 0")
                })
                .collect();
            format!("({})", each.join(" OR "))
        })
        .collect();
    let (marks, columns) = marked_tests(&tests);
    let max_marks: Vec<String> = marks
        .iter()
        .map(|mark| format!("max({mark}) AS {mark}"))
        .collect();
    let text: Vec<String> = marks.iter().map(|mark| format!("max({mark})")).collect();
    // As text, so that any number of filters reads as one column.
    let text = format!("'' || {}", text.join(" || "));
    format!(
        "WITH hits AS MATERIALIZED (SELECT s.rowid AS at, s.trace_id, s.correlation_id, \
             {columns} FROM spans s WHERE s.rowid BETWEEN ?1 AND ?2 AND ({tests})), \
         orphans AS (SELECT trace_id, max(at) AS at, {max_marks} FROM hits \
             WHERE correlation_id IS NULL GROUP BY trace_id), \
         owned AS ( \
             SELECT correlation_id AS id, at, {marks} FROM hits \
             WHERE correlation_id IS NOT NULL \
             UNION ALL \
             SELECT DISTINCT c.correlation_id, h.at, {h_marks} FROM orphans h \
             CROSS JOIN spans c INDEXED BY spans_by_segment_id \
             ON c.segment IN (?3 - 1, ?3, ?4, ?4 + 1) AND c.trace_id = h.trace_id \
             WHERE c.correlation_id IS NOT NULL) \
         SELECT id, max(at), {text} FROM owned GROUP BY id",
        columns = columns.join(", "),
        tests = tests.join(" OR "),
        max_marks = max_marks.join(", "),
        marks = marks.join(", "),
        h_marks = marks
            .iter()
            .map(|mark| format!("h.{mark}"))
            .collect::<Vec<_>>()
            .join(", "),
    )
}

/// The name of each filter's mark (`m0`, `m1`, …) and each test as a column of that name,
/// for the search statements of both backends.
pub(crate) fn marked_tests(tests: &[String]) -> (Vec<String>, Vec<String>) {
    let marks: Vec<String> = (0..tests.len()).map(|i| format!("m{i}")).collect();
    let columns = tests
        .iter()
        .zip(&marks)
        .map(|(test, mark)| format!("{test} AS {mark}"))
        .collect();
    (marks, columns)
}

/// The filter hashes of the pairs [`attribute_needles`] looks for.
fn needle_hashes(key: &str, value: &str) -> Vec<u64> {
    let mut hashes = vec![pair_hash(key, true, value)];
    if let Ok(parsed) = serde_json::from_str::<Value>(value)
        && !parsed.is_string()
    {
        hashes.push(pair_hash(key, false, &parsed.to_string()));
    }
    hashes
}

/// The texts whose presence in a span's serialised attributes shows that it may carry
/// `key` = `value`: the key and the value as a string, and, when `value` reads as another
/// JSON value, the key and that value.
pub(crate) fn attribute_needles(key: &str, value: &str) -> Vec<String> {
    let key = Value::from(key).to_string();
    let mut needles = vec![format!("{key}:{}", Value::from(value))];
    if let Ok(parsed) = serde_json::from_str::<Value>(value)
        && !parsed.is_string()
    {
        needles.push(format!("{key}:{parsed}"));
    }
    needles
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::{EncodedSpans, SpanId, SpanRecord, TraceId, testsuite};

    #[test]
    fn needles_are_the_pair_as_the_writer_serialises_it() {
        let cases: &[(&str, &str, &[&str], &str)] = &[
            (
                "payment.method",
                "card",
                &[r#""payment.method":"card""#],
                "a string",
            ),
            (
                "qty",
                "12",
                &[r#""qty":"12""#, r#""qty":12"#],
                "a number also matches its text",
            ),
            (
                "ok",
                "true",
                &[r#""ok":"true""#, r#""ok":true"#],
                "a boolean",
            ),
            (
                "note",
                "say \"hi\"",
                &[r#""note":"say \"hi\"""#],
                "quotes escaped as the writer escapes them",
            ),
        ];
        for (key, value, expected, reason) in cases {
            assert_eq!(attribute_needles(key, value), *expected, "{reason}");
        }
    }

    fn span(id: u8, correlation: &str, key: &str, value: Value) -> SpanRecord {
        let mut span = testsuite::span(TraceId([id; 16]), SpanId([id; 8]))
            .correlation(correlation)
            .service("orders")
            .times(i64::from(id), i64::from(id) + 1)
            .build();
        span.attributes.insert(key.to_owned(), value);
        span
    }

    #[tokio::test]
    async fn a_search_finds_spans_of_each_value_type_and_needs_every_filter() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("a.db")).await.unwrap();
        // An uncorrelated child in the trace of `ord-5`.
        let parent = span(6, "ord-5", "note", Value::from("x"));
        let mut child = span(6, "ord-5", "payment.method", Value::from("voucher"));
        child.span_id = SpanId([66; 8]);
        child.messaging.correlation_id = None;
        child.attributes.remove("messaging.message.conversation_id");
        let spans = [
            parent,
            child,
            span(1, "ord-1", "payment.method", Value::from("card")),
            span(2, "ord-1", "qty", Value::from(12)),
            span(3, "ord-2", "payment.method", Value::from("cash")),
            span(4, "ord-3", "qty", Value::from(12)),
            span(5, "ord-4", "qty", Value::from("12")),
        ];
        store
            .write_spans(vec![EncodedSpans::encode(&spans)])
            .await
            .unwrap();
        let filter = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        /// (filters, correlations found, reason)
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str], &'a str);
        let cases: &[Case<'_>] = &[
            (&[("payment.method", "card")], &["ord-1"], "a string value"),
            (
                &[("qty", "12")],
                &["ord-4", "ord-3", "ord-1"],
                "numbers and their text, newest written first",
            ),
            (
                &[("payment.method", "card"), ("qty", "12")],
                &["ord-1"],
                "every filter, each by any span of the flow",
            ),
            (
                &[("payment.method", "cash"), ("qty", "12")],
                &[],
                "ord-2 has no qty",
            ),
            (
                &[("service.name", "orders")],
                &["ord-4", "ord-3", "ord-2", "ord-1", "ord-5"],
                "resource attributes",
            ),
            (&[("payment.method", "cheque")], &[], "no such value"),
            (
                &[("payment.method", "voucher")],
                &["ord-5"],
                "an uncorrelated span counts for the correlations of its trace",
            ),
        ];
        for (pairs, expected, reason) in cases {
            let found = store
                .correlations_with_attributes(&filter(pairs), 10)
                .await
                .unwrap();
            assert_eq!(found, *expected, "{reason}");
        }
        let limited = store
            .correlations_with_attributes(&filter(&[("qty", "12")]), 1)
            .await
            .unwrap();
        assert_eq!(limited, ["ord-4"], "the limit keeps the newest");
    }

    /// One span per correlation `ord-{n}` carrying `order.n = n` and `tier`, in its own trace.
    fn numbered(n: u32, tier: &str) -> SpanRecord {
        let mut bytes = [0u8; 16];
        bytes[..4].copy_from_slice(&n.to_be_bytes());
        bytes[15] = 1;
        let mut span = testsuite::span(TraceId(bytes), SpanId([1; 8]))
            .correlation(format!("ord-{n}"))
            .service("orders")
            .times(i64::from(n), i64::from(n) + 1)
            .build();
        span.attributes.insert("order.n".to_owned(), Value::from(n));
        span.attributes.insert("tier".to_owned(), Value::from(tier));
        span
    }

    async fn write(store: &Store, range: std::ops::Range<u32>, tier: &str) {
        for n in range {
            store
                .write_spans(vec![EncodedSpans::encode(&[numbered(n, tier)])])
                .await
                .unwrap();
        }
    }

    /// The rows a search for `key=value` reads, as (first, last) rowids.
    async fn candidates(store: &Store, key: &str, value: &str) -> Vec<(i64, i64)> {
        let filters = [(key.to_owned(), value.to_owned())];
        let slices = store.candidate_slices(&filters).await.unwrap();
        slices
            .iter()
            .map(|slice| (slice.first, slice.last))
            .collect()
    }

    /// The store at `path`, opened with runs of ten rows.
    async fn open_with_small_runs(path: &std::path::Path) -> Store {
        let store = Store::open(path).await.unwrap();
        store.set_filter_run_spans(10).unwrap();
        store
    }

    async fn search(store: &Store, key: &str, value: &str, limit: i64) -> Vec<String> {
        let filters = [(key.to_owned(), value.to_owned())];
        store
            .correlations_with_attributes(&filters, limit)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn full_runs_are_read_only_where_their_filter_may_hold_the_value() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_with_small_runs(&dir.path().join("f.db")).await;
        // Rows 1..=50 in five full runs, then rows 51..=55 in the run being filled.
        write(&store, 0..20, "bronze").await;
        write(&store, 20..30, "gold").await;
        write(&store, 30..55, "bronze").await;
        assert_eq!(
            candidates(&store, "tier", "gold").await,
            [(51, 55), (21, 30)],
            "the rows being filled and the run whose filter holds the value"
        );
        assert_eq!(
            candidates(&store, "tier", "platinum").await,
            [(51, 55)],
            "only the rows being filled for a value no full run holds"
        );
        assert_eq!(
            candidates(&store, "order.n", "3").await,
            [(51, 55), (1, 10)],
            "a number"
        );
        let expected: Vec<String> = (20..30).rev().map(|n| format!("ord-{n}")).collect();
        assert_eq!(
            search(&store, "tier", "gold", 100).await,
            expected,
            "every match of the run read, newest first"
        );
        assert_eq!(
            search(&store, "tier", "bronze", 3).await,
            ["ord-54", "ord-53", "ord-52"],
            "the limit keeps the newest"
        );
    }

    #[tokio::test]
    async fn a_run_open_across_a_restart_gets_a_filter_of_all_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        let store = open_with_small_runs(&path).await;
        write(&store, 0..10, "bronze").await;
        // The run of rows 11..=20 holds three when the writer stops.
        write(&store, 10..13, "gold").await;
        store.close().await;
        let store = open_with_small_runs(&path).await;
        write(&store, 13..25, "bronze").await;
        assert_eq!(
            candidates(&store, "tier", "gold").await,
            [(21, 25), (11, 20)],
            "the filter stored when the run filled holds the rows written before the restart"
        );
        assert_eq!(
            search(&store, "tier", "gold", 100).await,
            ["ord-12", "ord-11", "ord-10"]
        );
    }

    #[tokio::test]
    async fn a_retry_that_replaces_a_row_of_a_full_run_is_still_found() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_with_small_runs(&dir.path().join("t.db")).await;
        write(&store, 0..25, "bronze").await;
        // The same span again, now saying `gold`: it replaces row 4 in place (one segment).
        write(&store, 3..4, "gold").await;
        assert_eq!(search(&store, "tier", "gold", 10).await, ["ord-3"]);
    }

    #[tokio::test]
    async fn rows_without_a_filter_are_always_read_and_retention_drops_filters() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_with_small_runs(&dir.path().join("o.db")).await;
        write(&store, 0..25, "bronze").await;
        // As rows written before migration 0008 are.
        let writer = store.writer().unwrap();
        sqlx::query("DELETE FROM attribute_filter_runs WHERE first_rowid = 1")
            .execute(writer)
            .await
            .unwrap();
        assert_eq!(
            candidates(&store, "tier", "gold").await,
            [(21, 25), (1, 10)]
        );
        assert_eq!(
            search(&store, "order.n", "4", 10).await,
            ["ord-4"],
            "found in the rows without a filter"
        );
        store
            .apply_retention(&crate::RetentionPolicy {
                max_age_ns: Some(-1_000_000_000_000),
                max_bytes: None,
            })
            .await
            .unwrap();
        write(&store, 100..101, "bronze").await;
        let runs: i64 = sqlx::query_scalar("SELECT count(*) FROM attribute_filter_runs")
            .fetch_one(writer)
            .await
            .unwrap();
        assert_eq!(runs, 0, "the filters of deleted rows go with them");
    }
}
