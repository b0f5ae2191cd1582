//! The PostgreSQL reads: spans by correlation ID and trace, the flow stitching queries, the
//! flows list and its search, the topology. Lists of keys are bound as one array each.

use sqlx::postgres::PgArguments;
use sqlx::{Arguments, AssertSqlSafe, Row};

use crate::attribute_search::{attribute_needles, marked_tests};
use crate::correlation_search::{CorrelationSearch, escape_like, merge_window};
use crate::error::StorageError;
use crate::flow_query::{CorrelationQuery, CorrelationRow, MAX_FLOW_CORRELATIONS};
use crate::ids::{SpanId, TraceId};
use crate::interface::{FlowListStore, FlowStore, SpanStore, TopologyStore};
use crate::postgres::PgStore;
use crate::record::SpanRecord;
use crate::span_encode::EncodedSpans;
use crate::span_query::{assemble, span_columns, span_id_at, trace_id_at};
use crate::span_write::WriteSummary;
use crate::stitch_query::{LinkRef, Position, merge_flows};

/// The span columns, with the ingest time ordering copies of one span.
const SPAN_COLUMNS: &str = span_columns!("s.ingested_ns");

const LINK_COLUMNS: &str =
    "l.trace_id, l.span_id, l.linked_trace_id, l.linked_span_id, l.attributes";

/// At most this many topology rows are read.
const MAX_TOPOLOGY_ROWS: i64 = 100_000;

/// Most traces `traces_with_attribute` returns.
const MAX_ATTRIBUTE_TRACES: i64 = 200;

fn ids(traces: &[TraceId]) -> Vec<&[u8]> {
    traces.iter().map(|trace| &trace.0[..]).collect()
}

impl SpanStore for PgStore {
    async fn write_spans(&self, batches: Vec<EncodedSpans>) -> Result<WriteSummary, StorageError> {
        self.write_spans_at(batches, crate::clock::now_ns()).await
    }

    async fn spans_by_correlation(
        &self,
        correlation_id: &str,
        limit: i64,
    ) -> Result<Vec<SpanRecord>, StorageError> {
        let spans = sqlx::query(AssertSqlSafe(format!(
            "SELECT {SPAN_COLUMNS} FROM spans s WHERE s.correlation_id = $1 \
             ORDER BY s.start_ns LIMIT $2"
        )))
        .bind(correlation_id)
        .bind(limit);
        let links = sqlx::query(AssertSqlSafe(format!(
            "SELECT {LINK_COLUMNS} FROM span_links l WHERE (l.trace_id, l.span_id) IN \
             (SELECT s.trace_id, s.span_id FROM spans s WHERE s.correlation_id = $1)"
        )))
        .bind(correlation_id);
        let (rows, links) =
            tokio::try_join!(spans.fetch_all(&self.pool), links.fetch_all(&self.pool))?;
        assemble(rows, links)
    }

    async fn spans_by_trace(
        &self,
        trace_id: TraceId,
        limit: i64,
    ) -> Result<Vec<SpanRecord>, StorageError> {
        self.spans_of_traces(&[trace_id], limit).await
    }

    async fn spans_linking_to(
        &self,
        trace_id: TraceId,
        span_id: SpanId,
    ) -> Result<Vec<(TraceId, SpanId)>, StorageError> {
        let rows = sqlx::query(
            "SELECT DISTINCT trace_id, span_id FROM span_links \
             WHERE linked_trace_id = $1 AND linked_span_id = $2",
        )
        .bind(&trace_id.0[..])
        .bind(&span_id.0[..])
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok((trace_id_at(row, 0)?, span_id_at(row, 1)?)))
            .collect()
    }

    async fn span_count(&self) -> Result<i64, StorageError> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM spans")
            .fetch_one(&self.pool)
            .await?)
    }
}

impl FlowStore for PgStore {
    async fn flow_spans(
        &self,
        correlation_ids: &[String],
        limit: i64,
    ) -> Result<Vec<SpanRecord>, StorageError> {
        let ids = &correlation_ids[..correlation_ids.len().min(MAX_FLOW_CORRELATIONS)];
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let traces = "SELECT c.trace_id FROM spans c WHERE c.correlation_id = ANY($1)";
        let spans = sqlx::query(AssertSqlSafe(format!(
            "SELECT {SPAN_COLUMNS} FROM spans s WHERE s.trace_id IN ({traces}) \
             AND (s.correlation_id IS NULL OR s.correlation_id = ANY($1)) \
             ORDER BY s.start_ns LIMIT $2"
        )))
        .bind(ids)
        .bind(limit);
        let links = sqlx::query(AssertSqlSafe(format!(
            "SELECT {LINK_COLUMNS} FROM span_links l WHERE l.trace_id IN ({traces})"
        )))
        .bind(ids);
        let (rows, links) =
            tokio::try_join!(spans.fetch_all(&self.pool), links.fetch_all(&self.pool))?;
        assemble(rows, links)
    }

    async fn correlations_of_trace(&self, trace_id: TraceId) -> Result<Vec<String>, StorageError> {
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT correlation_id FROM spans WHERE trace_id = $1 \
             AND correlation_id IS NOT NULL ORDER BY correlation_id LIMIT $2",
        )
        .bind(&trace_id.0[..])
        .bind(i64::try_from(MAX_FLOW_CORRELATIONS).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?)
    }

    async fn spans_of_traces(
        &self,
        traces: &[TraceId],
        limit: i64,
    ) -> Result<Vec<SpanRecord>, StorageError> {
        if traces.is_empty() {
            return Ok(Vec::new());
        }
        let spans = sqlx::query(AssertSqlSafe(format!(
            "SELECT {SPAN_COLUMNS} FROM spans s WHERE s.trace_id = ANY($1) \
             ORDER BY s.start_ns LIMIT $2"
        )))
        .bind(ids(traces))
        .bind(limit);
        let links = sqlx::query(AssertSqlSafe(format!(
            "SELECT {LINK_COLUMNS} FROM span_links l WHERE l.trace_id = ANY($1)"
        )))
        .bind(ids(traces));
        let (rows, links) =
            tokio::try_join!(spans.fetch_all(&self.pool), links.fetch_all(&self.pool))?;
        let mut spans = assemble(rows, links)?;
        spans.sort_by_key(|span| (span.start_ns, span.trace_id, span.span_id));
        Ok(spans)
    }

    async fn links_into_traces(
        &self,
        traces: &[TraceId],
        limit: i64,
    ) -> Result<Vec<LinkRef>, StorageError> {
        let rows = sqlx::query(
            "SELECT DISTINCT trace_id, span_id, linked_trace_id, linked_span_id \
             FROM span_links WHERE linked_trace_id = ANY($1) LIMIT $2",
        )
        .bind(ids(traces))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut found = rows
            .iter()
            .map(|row| {
                Ok(LinkRef {
                    from_trace: trace_id_at(row, 0)?,
                    from_span: span_id_at(row, 1)?,
                    to_trace: trace_id_at(row, 2)?,
                    to_span: span_id_at(row, 3)?,
                })
            })
            .collect::<Result<Vec<_>, StorageError>>()?;
        found.sort_unstable();
        Ok(found)
    }

    async fn traces_at_positions(
        &self,
        positions: &[Position],
        limit: i64,
    ) -> Result<Vec<TraceId>, StorageError> {
        if positions.is_empty() {
            return Ok(Vec::new());
        }
        // Each side of the union matches one of the two partial indexes.
        let rows = sqlx::query(
            "WITH p (destination, partition_id, kafka_offset) AS \
             (SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::bigint[])) \
             SELECT s.trace_id FROM spans s JOIN p USING (destination, partition_id, kafka_offset) \
             WHERE s.kind = 4 AND s.kafka_offset IS NOT NULL \
             UNION \
             SELECT s.trace_id FROM spans s JOIN p USING (destination, partition_id, kafka_offset) \
             WHERE s.kind = 5 AND s.parent_span_id IS NULL AND s.kafka_offset IS NOT NULL \
             LIMIT $4",
        )
        .bind(positions.iter().map(|p| p.0.as_str()).collect::<Vec<_>>())
        .bind(positions.iter().map(|p| p.1).collect::<Vec<_>>())
        .bind(positions.iter().map(|p| p.2).collect::<Vec<_>>())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut traces = rows
            .iter()
            .map(|row| trace_id_at(row, 0))
            .collect::<Result<Vec<_>, StorageError>>()?;
        traces.sort_unstable();
        traces.dedup();
        Ok(traces)
    }

    async fn traces_with_attribute(
        &self,
        keys: &[String],
        value: &str,
        scan_rows: i64,
    ) -> Result<Vec<TraceId>, StorageError> {
        let keys: Vec<&str> = keys
            .iter()
            .filter(|key| !key.contains('"'))
            .map(String::as_str)
            .collect();
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(
            "SELECT DISTINCT recent.trace_id FROM (SELECT trace_id, attributes::jsonb AS a \
             FROM spans ORDER BY ingested_ns DESC LIMIT $1) recent \
             WHERE EXISTS (SELECT 1 FROM unnest($2::text[]) k WHERE \
             recent.a -> k = to_jsonb($3::text) OR (jsonb_typeof(recent.a -> k) = 'array' \
             AND recent.a -> k @> jsonb_build_array($3::text))) LIMIT $4",
        )
        .bind(scan_rows)
        .bind(keys)
        .bind(value)
        .bind(MAX_ATTRIBUTE_TRACES)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| trace_id_at(row, 0)).collect()
    }
}

/// An SQL statement and its arguments, numbered as they are pushed.
struct Statement {
    sql: String,
    arguments: PgArguments,
    bound: usize,
}

impl Statement {
    fn new(sql: &str) -> Statement {
        Statement {
            sql: sql.to_owned(),
            arguments: PgArguments::default(),
            bound: 0,
        }
    }

    /// Binds `value` and returns its placeholder (`$n`).
    fn bind<T>(&mut self, value: T) -> Result<String, StorageError>
    where
        T: for<'q> sqlx::Encode<'q, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send,
    {
        self.arguments
            .add(value)
            .map_err(|e| StorageError::Query(sqlx::Error::Encode(e)))?;
        self.bound += 1;
        Ok(format!("${}", self.bound))
    }

    async fn fetch_all(self, store: &PgStore) -> Result<Vec<sqlx::postgres::PgRow>, StorageError> {
        Ok(sqlx::query_with(AssertSqlSafe(self.sql), self.arguments)
            .fetch_all(&store.pool)
            .await?)
    }
}

/// A `*` pattern (as `causeway flows --event-type` takes) as a `LIKE` pattern.
fn glob_to_like(pattern: &str) -> String {
    escape_like(pattern).replace('*', "%")
}

/// The filters of the flows list, on the spans that `spans_of` (an SQL condition on `s`)
/// selects; `key`, `start` name the row's ID and start columns.
fn push_filters(
    statement: &mut Statement,
    query: &CorrelationQuery,
    key: &str,
    start: &str,
    spans_of: &str,
) -> Result<(), StorageError> {
    if let Some(since) = query.since_ns {
        let since = statement.bind(since)?;
        statement.sql.push_str(&format!(" AND {start} >= {since}"));
    }
    if let Some((before_start, before_id)) = &query.before {
        let at = statement.bind(*before_start)?;
        let id = statement.bind(before_id.clone())?;
        statement.sql.push_str(&format!(
            " AND ({start} < {at} OR ({start} = {at} AND {key} COLLATE \"C\" < {id}))"
        ));
    }
    if query.errors_only {
        statement.sql.push_str(" AND has_error");
    }
    if let Some(service) = &query.service {
        let service = statement.bind(service.clone())?;
        statement.sql.push_str(&format!(
            " AND EXISTS (SELECT 1 FROM spans s WHERE {spans_of} AND s.service_name = {service})"
        ));
    }
    if let Some(event_type) = &query.event_type {
        let pattern = statement.bind(glob_to_like(event_type))?;
        statement.sql.push_str(&format!(
            " AND EXISTS (SELECT 1 FROM spans s WHERE {spans_of} AND s.event_type LIKE {pattern})"
        ));
    }
    Ok(())
}

fn correlation_row(row: &sqlx::postgres::PgRow) -> Result<CorrelationRow, StorageError> {
    Ok(CorrelationRow {
        correlation_id: row.try_get(0)?,
        first_start_ns: row.try_get(1)?,
        last_end_ns: row.try_get(2)?,
        has_error: row.try_get(3)?,
        root: false,
    })
}

fn root_row(row: &sqlx::postgres::PgRow) -> Result<CorrelationRow, StorageError> {
    Ok(CorrelationRow {
        correlation_id: trace_id_at(row, 0)?.to_string(),
        first_start_ns: row.try_get(1)?,
        last_end_ns: row.try_get(2)?,
        has_error: row.try_get(3)?,
        root: true,
    })
}

impl FlowListStore for PgStore {
    async fn recent_correlations(
        &self,
        query: &CorrelationQuery,
    ) -> Result<Vec<CorrelationRow>, StorageError> {
        let mut statement = Statement::new(
            "SELECT correlation_id, first_start_ns, last_end_ns, has_error \
             FROM correlations c WHERE true",
        );
        push_filters(
            &mut statement,
            query,
            "c.correlation_id",
            "c.first_start_ns",
            "s.correlation_id = c.correlation_id",
        )?;
        let limit = statement.bind(query.limit.max(0))?;
        statement.sql.push_str(&format!(
            " ORDER BY c.first_start_ns DESC, c.correlation_id DESC LIMIT {limit}"
        ));
        let rows = statement.fetch_all(self).await?;
        rows.iter().map(correlation_row).collect()
    }

    async fn recent_flow_roots(
        &self,
        query: &CorrelationQuery,
    ) -> Result<Vec<CorrelationRow>, StorageError> {
        let mut statement = Statement::new(
            "SELECT trace_id, first_start_ns, last_end_ns, has_error FROM flow_roots r WHERE true",
        );
        push_filters(
            &mut statement,
            query,
            "encode(r.trace_id, 'hex')",
            "r.first_start_ns",
            "s.trace_id = r.trace_id",
        )?;
        let limit = statement.bind(query.limit.max(0))?;
        statement.sql.push_str(&format!(
            " ORDER BY r.first_start_ns DESC, r.trace_id DESC LIMIT {limit}"
        ));
        let rows = statement.fetch_all(self).await?;
        rows.iter().map(root_row).collect()
    }

    async fn recent_flows(
        &self,
        query: &CorrelationQuery,
    ) -> Result<Vec<CorrelationRow>, StorageError> {
        let (rows, roots) = tokio::try_join!(
            self.recent_correlations(query),
            self.recent_flow_roots(query)
        )?;
        Ok(merge_flows(rows, roots, query.limit))
    }

    async fn search_correlations(
        &self,
        search: &CorrelationSearch,
    ) -> Result<Vec<CorrelationRow>, StorageError> {
        let text = search.text.trim();
        let reach = search.offset.max(0).saturating_add(search.limit.max(0));
        let pattern = format!("%{}%", escape_like(text));
        let trace_id = text.parse::<TraceId>().ok().map(|id| id.0.to_vec());
        // `ILIKE`: SQLite's `LIKE`, which the SQLite store uses, ignores ASCII case.
        let roots = sqlx::query(
            "SELECT r.trace_id, r.first_start_ns, r.last_end_ns, r.has_error FROM flow_roots r \
             WHERE $2 = '' OR encode(r.trace_id, 'hex') ILIKE $3 OR EXISTS (SELECT 1 FROM \
             spans s WHERE s.trace_id = r.trace_id AND (s.service_name = $2 \
             OR s.event_type ILIKE $3 OR s.attributes ILIKE $3)) \
             ORDER BY r.first_start_ns DESC, r.trace_id DESC LIMIT $1",
        )
        .bind(reach)
        .bind(text)
        .bind(&pattern)
        .fetch_all(&self.pool);
        let correlations = sqlx::query(
            "SELECT c.correlation_id, c.first_start_ns, c.last_end_ns, c.has_error \
             FROM correlations c WHERE $2 = '' OR c.correlation_id ILIKE $3 OR EXISTS \
             (SELECT 1 FROM spans s WHERE s.correlation_id = c.correlation_id \
             AND (s.trace_id = $4 OR s.service_name = $2 OR s.event_type ILIKE $3 \
             OR s.attributes ILIKE $3)) \
             ORDER BY c.first_start_ns DESC, c.correlation_id DESC LIMIT $1",
        )
        .bind(reach)
        .bind(text)
        .bind(&pattern)
        .bind(trace_id)
        .fetch_all(&self.pool);
        let (roots, correlations) = tokio::try_join!(roots, correlations)?;
        Ok(merge_window(
            correlations
                .iter()
                .map(correlation_row)
                .collect::<Result<_, _>>()?,
            roots.iter().map(root_row).collect::<Result<_, _>>()?,
            search,
        ))
    }

    async fn correlations_with_attributes(
        &self,
        filters: &[(String, String)],
        limit: i64,
    ) -> Result<Vec<String>, StorageError> {
        if filters.is_empty() {
            return Ok(Vec::new());
        }
        // The same text test as the SQLite store: each pair as the writer serialises it,
        // looked for in the attribute and resource text of the newest spans.
        let mut statement = Statement::new("");
        let window = statement.bind(crate::ATTRIBUTE_SCAN_SPANS)?;
        let limit = statement.bind(limit.max(0))?;
        let mut tests = Vec::with_capacity(filters.len());
        for (key, value) in filters {
            let mut each = Vec::new();
            for needle in attribute_needles(key, value) {
                let needle = statement.bind(needle)?;
                each.push(format!(
                    "strpos(s.attributes, {needle}) > 0 OR strpos(s.resource, {needle}) > 0"
                ));
            }
            tests.push(format!("({})", each.join(" OR ")));
        }
        let (marks, columns) = marked_tests(&tests);
        let having: Vec<String> = marks
            .iter()
            .map(|mark| format!("bool_or({mark})"))
            .collect();
        let h_marks: Vec<String> = marks.iter().map(|mark| format!("h.{mark}")).collect();
        statement.sql = format!(
            "WITH recent AS (SELECT trace_id, correlation_id, attributes, resource, ingested_ns                  FROM spans ORDER BY ingested_ns DESC LIMIT {window}),              hits AS (SELECT s.trace_id, s.correlation_id, s.ingested_ns AS at, {columns}                  FROM recent s WHERE {any}),              owned AS (                  SELECT correlation_id AS id, at, {marks} FROM hits                  WHERE correlation_id IS NOT NULL                  UNION ALL                  SELECT DISTINCT c.correlation_id, h.at, {h_marks} FROM hits h                  JOIN recent c ON c.trace_id = h.trace_id                  WHERE h.correlation_id IS NULL AND c.correlation_id IS NOT NULL)              SELECT id FROM owned GROUP BY id HAVING {having} ORDER BY max(at) DESC LIMIT {limit}",
            columns = columns.join(", "),
            any = tests.join(" OR "),
            marks = marks.join(", "),
            h_marks = h_marks.join(", "),
            having = having.join(" AND "),
        );
        let rows = statement.fetch_all(self).await?;
        rows.iter()
            .map(|row| row.try_get::<String, _>(0).map_err(StorageError::from))
            .collect()
    }
}

impl TopologyStore for PgStore {
    async fn topology(&self) -> Result<Vec<(String, String)>, StorageError> {
        let rows = sqlx::query(
            "SELECT destination, consumer_group FROM topology \
             ORDER BY destination, consumer_group LIMIT $1",
        )
        .bind(MAX_TOPOLOGY_ROWS)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect()
    }
}
