//! `flows --where key=value`: which correlations have a span carrying an attribute value,
//! found by a bounded scan of the newest spans instead of rebuilding every flow.
//!
//! Attributes are JSON text in the `spans` table, and no index covers every key and value
//! a user may ask for (one would cost every insert several more index rows). So the search
//! reads only the newest [`ATTRIBUTE_SCAN_SPANS`] spans, in insertion order (consecutive
//! pages of the table), and looks in each span's attribute and resource text for the
//! key and value as the writer serialises them (`"key":"value"`, `"key":12`). That text
//! test keeps every span that carries the value and may keep a few more (a longer
//! number, the same pair inside a nested value); callers confirm each flow exactly
//! (`causeway_flow::FlowFilter`).

use serde_json::Value;
use sqlx::AssertSqlSafe;

use crate::error::StorageError;
use crate::store::SqliteStore as Store;

/// How many of the newest spans an attribute search reads. On the 10M-span benchmark
/// store a search over this many spans took 4–6 s warm on 2 busy cores (docs/FLOWS.md).
pub const ATTRIBUTE_SCAN_SPANS: i64 = 500_000;

impl Store {
    /// The correlation IDs of the newest [`ATTRIBUTE_SCAN_SPANS`] spans for which every
    /// `(key, value)` of `filters` is carried by one of those spans (as a span or resource
    /// attribute), the most recently written first, at most `limit`. A string value
    /// matches a string attribute of that text; a value that reads as JSON (`12`, `true`)
    /// also matches an attribute of that JSON value. May include a few correlations that
    /// do not match exactly (see the module header).
    pub async fn correlations_with_attributes(
        &self,
        filters: &[(String, String)],
        limit: i64,
    ) -> Result<Vec<String>, StorageError> {
        if filters.is_empty() {
            return Ok(Vec::new());
        }
        let needles: Vec<Vec<String>> = filters
            .iter()
            .map(|(key, value)| attribute_needles(key, value))
            .collect();
        // Parameters: ?1 the window, ?2 the limit, then each needle once.
        let mut next = 2;
        let tests: Vec<String> = needles
            .iter()
            .map(|alternatives| {
                let each: Vec<String> = alternatives
                    .iter()
                    .map(|_| {
                        next += 1;
                        format!(
                            "instr(s.attributes, ?{next}) > 0 OR instr(s.resource, ?{next}) > 0"
                        )
                    })
                    .collect();
                format!("({})", each.join(" OR "))
            })
            .collect();
        let marks: Vec<String> = (0..tests.len()).map(|i| format!("m{i}")).collect();
        let columns: Vec<String> = tests
            .iter()
            .zip(&marks)
            .map(|(test, mark)| format!("{test} AS {mark}"))
            .collect();
        let having: Vec<String> = marks.iter().map(|mark| format!("max({mark})")).collect();
        // A matching span without a correlation ID counts for the correlations of its
        // trace (a flow holds the uncorrelated spans of its traces), looked up in the
        // segments of the window only.
        let sql = format!(
            "WITH floor AS (SELECT coalesce(max(rowid), 0) - ?1 AS rowid FROM spans), \
             hits AS (SELECT s.rowid AS at, s.trace_id, s.correlation_id, {columns} \
                 FROM spans s WHERE s.rowid > (SELECT rowid FROM floor) AND ({tests})), \
             owned AS ( \
                 SELECT correlation_id AS id, at, {marks} FROM hits \
                 WHERE correlation_id IS NOT NULL \
                 UNION ALL \
                 SELECT DISTINCT c.correlation_id, h.at, {h_marks} FROM hits h \
                 JOIN spans c ON c.segment IN (SELECT segment FROM span_segments WHERE segment >= \
                     (SELECT segment FROM spans WHERE rowid > (SELECT rowid FROM floor) \
                      ORDER BY rowid LIMIT 1)) \
                 AND c.trace_id = h.trace_id \
                 WHERE h.correlation_id IS NULL AND c.correlation_id IS NOT NULL) \
             SELECT id FROM owned GROUP BY id HAVING {having} ORDER BY max(at) DESC LIMIT ?2",
            columns = columns.join(", "),
            tests = tests.join(" OR "),
            marks = marks.join(", "),
            h_marks = marks
                .iter()
                .map(|mark| format!("h.{mark}"))
                .collect::<Vec<_>>()
                .join(", "),
            having = having.join(" AND "),
        );
        let mut query = sqlx::query_scalar(AssertSqlSafe(sql))
            .bind(ATTRIBUTE_SCAN_SPANS)
            .bind(limit.max(0));
        for needle in needles.into_iter().flatten() {
            query = query.bind(needle);
        }
        let ids = query.fetch_all(&self.reader).await?;
        Ok(ids)
    }
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
}
