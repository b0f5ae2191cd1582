//! The span writer: upserts a batch of encoded spans in one transaction, with multi-row
//! `VALUES` statements so that each statement carries hundreds of rows.

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::{AssertSqlSafe, Sqlite, Transaction};

use crate::error::StorageError;
use crate::span_encode::{CorrelationSummary, EncodedSpans, LinkRow, SpanRow};
use crate::store::Store;

/// Columns bound per span row (must match [`bind_span`]).
const SPAN_COLUMNS: usize = 24;
/// Rows per span statement: keeps the bound variables under SQLite's limit of 32766.
const SPAN_ROWS_PER_STATEMENT: usize = 500;
/// Columns bound per link row.
const LINK_COLUMNS: usize = 5;
/// Rows per link statement.
const LINK_ROWS_PER_STATEMENT: usize = 1000;

const SPAN_INSERT_HEAD: &str = "INSERT INTO spans (trace_id, span_id, parent_span_id, name, kind, \
    service_name, scope_name, start_ns, end_ns, status_code, status_message, attributes, resource, \
    events, correlation_id, message_id, event_type, destination, partition_id, kafka_offset, \
    consumer_group, operation_type, message_key, ingested_ns) VALUES ";

const SPAN_UPSERT_TAIL: &str = " ON CONFLICT (trace_id, span_id) DO UPDATE SET \
    parent_span_id = excluded.parent_span_id, name = excluded.name, kind = excluded.kind, \
    service_name = excluded.service_name, scope_name = excluded.scope_name, \
    start_ns = excluded.start_ns, end_ns = excluded.end_ns, status_code = excluded.status_code, \
    status_message = excluded.status_message, attributes = excluded.attributes, \
    resource = excluded.resource, events = excluded.events, \
    correlation_id = excluded.correlation_id, message_id = excluded.message_id, \
    event_type = excluded.event_type, destination = excluded.destination, \
    partition_id = excluded.partition_id, kafka_offset = excluded.kafka_offset, \
    consumer_group = excluded.consumer_group, operation_type = excluded.operation_type, \
    message_key = excluded.message_key, ingested_ns = excluded.ingested_ns";

/// Columns bound per correlation row.
const CORRELATION_COLUMNS: usize = 5;
/// Rows per correlation statement: one statement instead of one per correlation.
const CORRELATION_ROWS_PER_STATEMENT: usize = 1000;

const CORRELATION_UPSERT_HEAD: &str = "INSERT INTO correlations (correlation_id, \
    first_start_ns, last_end_ns, has_error, last_seen_ns) VALUES ";

const CORRELATION_UPSERT_TAIL: &str = " ON CONFLICT (correlation_id) DO UPDATE SET \
    first_start_ns = min(first_start_ns, excluded.first_start_ns), \
    last_end_ns = max(last_end_ns, excluded.last_end_ns), \
    has_error = max(has_error, excluded.has_error), \
    last_seen_ns = excluded.last_seen_ns";

const LINK_INSERT_HEAD: &str = "INSERT OR REPLACE INTO span_links (trace_id, span_id, \
    linked_trace_id, linked_span_id, attributes) VALUES ";

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriteSummary {
    /// Spans written (new or replaced).
    pub spans: usize,
    /// Links written.
    pub links: usize,
}

impl Store {
    /// Upserts every span of every batch in one transaction, keyed on (trace id, span id):
    /// a retried span replaces its earlier copy instead of adding a second one. Returns once
    /// the transaction has committed.
    pub async fn write_spans(
        &self,
        batches: &[EncodedSpans],
    ) -> Result<WriteSummary, StorageError> {
        let writer = self.writer()?;
        let ingested_ns = now_ns();
        let mut transaction = writer.begin().await?;
        let mut summary = WriteSummary::default();
        for batch in batches {
            for chunk in batch.spans.chunks(SPAN_ROWS_PER_STATEMENT) {
                insert_spans(&mut transaction, chunk, ingested_ns).await?;
                summary.spans += chunk.len();
            }
            for chunk in batch.links.chunks(LINK_ROWS_PER_STATEMENT) {
                insert_links(&mut transaction, chunk).await?;
                summary.links += chunk.len();
            }
            let correlations: Vec<_> = batch.correlations.iter().collect();
            for chunk in correlations.chunks(CORRELATION_ROWS_PER_STATEMENT) {
                upsert_correlations(&mut transaction, chunk, ingested_ns).await?;
            }
            for ((topic, group), (first, last)) in &batch.topology {
                sqlx::query(
                    "INSERT INTO topology (destination, consumer_group, first_seen_ns, last_seen_ns) \
                     VALUES (?, ?, ?, ?) ON CONFLICT (destination, consumer_group) DO UPDATE SET \
                     first_seen_ns = min(first_seen_ns, excluded.first_seen_ns), \
                     last_seen_ns = max(last_seen_ns, excluded.last_seen_ns)",
                )
                .bind(topic)
                .bind(group)
                .bind(first)
                .bind(last)
                .execute(&mut *transaction)
                .await?;
            }
        }
        transaction.commit().await?;
        Ok(summary)
    }
}

async fn insert_spans(
    transaction: &mut Transaction<'static, Sqlite>,
    rows: &[SpanRow],
    ingested_ns: i64,
) -> Result<(), StorageError> {
    let sql = span_statement(rows.len());
    let mut query = sqlx::query(AssertSqlSafe(sql));
    for row in rows {
        query = query
            .bind(&row.trace_id[..])
            .bind(&row.span_id[..])
            .bind(row.parent_span_id.as_ref().map(|id| &id[..]))
            .bind(&row.name)
            .bind(row.kind)
            .bind(&row.service_name)
            .bind(&row.scope_name)
            .bind(row.start_ns)
            .bind(row.end_ns)
            .bind(row.status_code)
            .bind(&row.status_message)
            .bind(&row.attributes)
            .bind(&row.resource)
            .bind(&row.events)
            .bind(&row.correlation_id)
            .bind(&row.message_id)
            .bind(&row.event_type)
            .bind(&row.destination)
            .bind(row.partition)
            .bind(row.offset)
            .bind(&row.consumer_group)
            .bind(&row.operation_type)
            .bind(&row.message_key)
            .bind(ingested_ns);
    }
    query.execute(&mut **transaction).await?;
    Ok(())
}

async fn insert_links(
    transaction: &mut Transaction<'static, Sqlite>,
    rows: &[LinkRow],
) -> Result<(), StorageError> {
    let sql = link_statement(rows.len());
    let mut query = sqlx::query(AssertSqlSafe(sql));
    for row in rows {
        query = query
            .bind(&row.trace_id[..])
            .bind(&row.span_id[..])
            .bind(&row.linked_trace_id[..])
            .bind(&row.linked_span_id[..])
            .bind(&row.attributes);
    }
    query.execute(&mut **transaction).await?;
    Ok(())
}

async fn upsert_correlations(
    transaction: &mut Transaction<'static, Sqlite>,
    rows: &[(&String, &CorrelationSummary)],
    ingested_ns: i64,
) -> Result<(), StorageError> {
    let sql = format!(
        "{CORRELATION_UPSERT_HEAD}{}{CORRELATION_UPSERT_TAIL}",
        placeholders(rows.len(), CORRELATION_COLUMNS)
    );
    let mut query = sqlx::query(AssertSqlSafe(sql));
    for (correlation, known) in rows {
        query = query
            .bind(correlation.as_str())
            .bind(known.first_start_ns)
            .bind(known.last_end_ns)
            .bind(i64::from(known.has_error))
            .bind(ingested_ns);
    }
    query.execute(&mut **transaction).await?;
    Ok(())
}

/// The span upsert for `rows` rows. Full-size statements are built once and reused, so
/// SQLite's prepared-statement cache hits on them.
fn span_statement(rows: usize) -> String {
    static FULL: OnceLock<String> = OnceLock::new();
    let build = |rows| {
        format!(
            "{SPAN_INSERT_HEAD}{}{SPAN_UPSERT_TAIL}",
            placeholders(rows, SPAN_COLUMNS)
        )
    };
    if rows == SPAN_ROWS_PER_STATEMENT {
        FULL.get_or_init(|| build(rows)).clone()
    } else {
        build(rows)
    }
}

fn link_statement(rows: usize) -> String {
    format!("{LINK_INSERT_HEAD}{}", placeholders(rows, LINK_COLUMNS))
}

/// `(?, ?, ?), (?, ?, ?)` for `rows` rows of `columns` columns.
fn placeholders(rows: usize, columns: usize) -> String {
    let row = format!("({})", vec!["?"; columns].join(", "));
    vec![row; rows].join(", ")
}

pub(crate) fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_have_one_group_per_row() {
        assert_eq!(placeholders(2, 3), "(?, ?, ?), (?, ?, ?)");
        const { assert!(SPAN_ROWS_PER_STATEMENT * SPAN_COLUMNS < 32766) };
        const { assert!(LINK_ROWS_PER_STATEMENT * LINK_COLUMNS < 32766) };
        const { assert!(CORRELATION_ROWS_PER_STATEMENT * CORRELATION_COLUMNS < 32766) };
    }
}
