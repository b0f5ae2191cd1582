//! The dashboard's flows list: a window of correlations, newest first, matching one free
//! text against the correlation ID, a trace ID, a service, an event type or an attribute.

use crate::error::StorageError;
use crate::flow_query::CorrelationRow;
use crate::ids::TraceId;
use crate::segments::{LIVE_SEGMENTS, correlation_segments};
use crate::store::SqliteStore as Store;

/// Characters that `LIKE` treats specially, escaped with this one.
const LIKE_ESCAPE: char = '\\';

/// A window of the flows list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CorrelationSearch {
    /// Free text: kept when the correlation ID contains it, a span's trace ID equals it,
    /// a span's service equals it, or a span's event type or attributes contain it.
    /// Empty keeps everything.
    pub text: String,
    /// Rows to skip (newest first).
    pub offset: i64,
    /// Rows to return.
    pub limit: i64,
}

impl Store {
    /// One window of the flows list, newest first, that match `search`: correlations, and
    /// flows without a correlation ID named by their first trace (`root` rows).
    pub async fn search_correlations(
        &self,
        search: &CorrelationSearch,
    ) -> Result<Vec<CorrelationRow>, StorageError> {
        let reach = search.offset.max(0).saturating_add(search.limit.max(0));
        let roots = self.search_roots(search, reach).await?;
        if roots.is_empty() {
            return self.search_correlation_window(search).await;
        }
        // Flows without a correlation ID are few: the window is cut from both lists, merged.
        let rows = self
            .search_correlation_window(&CorrelationSearch {
                text: search.text.clone(),
                offset: 0,
                limit: reach,
            })
            .await?;
        Ok(merge_window(rows, roots, search))
    }

    /// The first `reach` flows without a correlation ID that match `search`, newest first.
    async fn search_roots(
        &self,
        search: &CorrelationSearch,
        reach: i64,
    ) -> Result<Vec<CorrelationRow>, StorageError> {
        let text = search.text.trim();
        let filter = if text.is_empty() {
            String::new()
        } else {
            format!(
                " WHERE lower(hex(r.trace_id)) LIKE ?2 ESCAPE '\\' OR EXISTS (SELECT 1 FROM \
                 spans s WHERE s.segment IN ({LIVE_SEGMENTS}) AND s.trace_id = r.trace_id \
                 AND (s.service_name = ?3 OR s.event_type LIKE ?2 ESCAPE '\\' \
                 OR s.attributes LIKE ?2 ESCAPE '\\'))"
            )
        };
        let mut query = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT r.trace_id, r.first_start_ns, r.last_end_ns, r.has_error FROM flow_roots r\
             {filter} ORDER BY r.first_start_ns DESC, r.trace_id DESC LIMIT ?1"
        )))
        .bind(reach);
        if !text.is_empty() {
            query = query
                .bind(format!("%{}%", escape_like(&text.to_ascii_lowercase())))
                .bind(text);
        }
        let rows = query.fetch_all(&self.reader).await?;
        rows.iter().map(CorrelationRow::from_root_row).collect()
    }

    /// One window of correlations, newest first, that match `search`.
    async fn search_correlation_window(
        &self,
        search: &CorrelationSearch,
    ) -> Result<Vec<CorrelationRow>, StorageError> {
        let text = search.text.trim();
        // The window is chosen on the covering index (start time, correlation ID), so rows
        // skipped by OFFSET cost no table lookups; only the window's rows are read in full.
        let (filter, pattern, trace_id) = if text.is_empty() {
            (String::new(), None, None)
        } else {
            (
                format!(
                    " WHERE w.correlation_id LIKE ?3 ESCAPE '\\' OR EXISTS (SELECT 1 FROM spans s \
                     WHERE s.segment IN ({}) AND s.correlation_id = w.correlation_id \
                     AND (s.trace_id = ?4 OR s.service_name = ?5 \
                     OR s.event_type LIKE ?3 ESCAPE '\\' OR s.attributes LIKE ?3 ESCAPE '\\'))",
                    correlation_segments("w")
                ),
                Some(format!("%{}%", escape_like(text))),
                text.parse::<TraceId>().ok().map(|id| id.0.to_vec()),
            )
        };
        let sql = format!(
            "SELECT c.correlation_id, c.first_start_ns, c.last_end_ns, c.has_error \
             FROM (SELECT w.correlation_id FROM correlations w INDEXED BY correlations_by_start\
             {filter} ORDER BY w.first_start_ns DESC, w.correlation_id DESC LIMIT ?1 OFFSET ?2) page \
             JOIN correlations c ON c.correlation_id = page.correlation_id \
             ORDER BY c.first_start_ns DESC, c.correlation_id DESC"
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(search.limit.max(0))
            .bind(search.offset.max(0));
        if let Some(pattern) = pattern {
            query = query.bind(pattern).bind(trace_id).bind(text);
        }
        let rows = query.fetch_all(&self.reader).await?;
        rows.iter().map(CorrelationRow::from_row).collect()
    }
}

/// The window `search` asks for out of the first rows of both lists (correlations and
/// flows without one), merged newest first.
pub(crate) fn merge_window(
    mut rows: Vec<CorrelationRow>,
    roots: Vec<CorrelationRow>,
    search: &CorrelationSearch,
) -> Vec<CorrelationRow> {
    rows.extend(roots);
    crate::stitch_query::sort_newest_first(&mut rows);
    rows.into_iter()
        .skip(usize::try_from(search.offset.max(0)).unwrap_or(usize::MAX))
        .take(usize::try_from(search.limit.max(0)).unwrap_or(usize::MAX))
        .collect()
}

/// `text` with `%`, `_` and the escape character escaped for `LIKE … ESCAPE '\'`.
pub(crate) fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_') || c == LIKE_ESCAPE {
            out.push(LIKE_ESCAPE);
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::{EncodedSpans, SpanId, SpanKind, SpanRecord, testsuite};

    fn span(
        trace: u8,
        correlation: &str,
        service: &str,
        start_ns: i64,
        attribute: &str,
    ) -> SpanRecord {
        testsuite::span(TraceId([trace; 16]), SpanId([trace; 8]))
            .name("process")
            .kind(SpanKind::Consumer)
            .service(service)
            .times(start_ns, start_ns + 10)
            .attribute("note", attribute)
            .correlation(correlation)
            .event_type(format!("{service}.done.v1"))
            .build()
    }

    #[tokio::test]
    async fn search_matches_each_kind_of_text_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("c.db")).await.unwrap();
        let spans = [
            span(1, "ord-1", "order", 100, "plain"),
            span(2, "ord-2", "payment", 200, "card 50%_off"),
            span(3, "ship-3", "shipping", 300, "plain"),
        ];
        store
            .write_spans(vec![EncodedSpans::encode(&spans)])
            .await
            .unwrap();
        let ids = |rows: Vec<CorrelationRow>| -> Vec<String> {
            rows.into_iter().map(|row| row.correlation_id).collect()
        };
        let cases: &[(&str, i64, i64, &[&str], &str)] = &[
            (
                "",
                0,
                10,
                &["ship-3", "ord-2", "ord-1"],
                "no filter: all, newest first",
            ),
            ("", 1, 1, &["ord-2"], "offset and limit bound the window"),
            (
                "ord",
                0,
                10,
                &["ord-2", "ord-1"],
                "correlation id substring",
            ),
            ("payment", 0, 10, &["ord-2"], "service name"),
            ("shipping.done", 0, 10, &["ship-3"], "event type substring"),
            (
                "50%_off",
                0,
                10,
                &["ord-2"],
                "attribute text, LIKE wildcards taken literally",
            ),
            (
                "5_%",
                0,
                10,
                &[],
                "escaped wildcards do not match everything",
            ),
            (
                "01010101010101010101010101010101",
                0,
                10,
                &["ord-1"],
                "trace id",
            ),
            ("nothing-like-this", 0, 10, &[], "no match"),
        ];
        for (text, offset, limit, expected, reason) in cases {
            let search = CorrelationSearch {
                text: (*text).to_owned(),
                offset: *offset,
                limit: *limit,
            };
            let found = ids(store.search_correlations(&search).await.unwrap());
            assert_eq!(found, *expected, "{reason}");
        }
    }
}
