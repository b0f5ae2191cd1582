//! The span writer: upserts a batch of encoded spans in one transaction, with multi-row
//! `VALUES` statements so that each statement carries hundreds of rows.
//!
//! This one hot path runs on its own rusqlite connection on a blocking thread: measured
//! with perf, sqlx's per-value argument copies and channel hand-offs made the writer three
//! times slower than SQLite itself. Every other statement goes through sqlx.

use std::borrow::Cow;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use rusqlite::{Connection, Statement, Transaction, TransactionBehavior};

use crate::attribute_filter::{RUN_SPANS, RunFilter, Written};
use crate::checkpointer::Checkpointer;
use crate::clock::now_ns;
use crate::connection::open_rusqlite;
use crate::error::StorageError;
use crate::segments::{SEGMENT_SPANS, segment_for_insert};
use crate::span_encode::{CorrelationSummary, EncodedSpans, LinkRow, SpanRow};
use crate::store::SqliteStore as Store;

/// Columns bound per span row (must match [`insert_spans`]).
const SPAN_COLUMNS: usize = 25;
/// Rows per span statement: keeps the bound variables under SQLite's limit of 32766.
const SPAN_ROWS_PER_STATEMENT: usize = 500;
/// Columns bound per link row.
const LINK_COLUMNS: usize = 6;
/// Rows per link statement.
const LINK_ROWS_PER_STATEMENT: usize = 1000;

const SPAN_INSERT_HEAD: &str = "INSERT INTO spans (trace_id, span_id, parent_span_id, name, kind, \
    service_name, scope_name, start_ns, end_ns, status_code, status_message, attributes, resource, \
    events, correlation_id, message_id, event_type, destination, partition_id, kafka_offset, \
    consumer_group, operation_type, message_key, ingested_ns, segment) VALUES ";

const SPAN_UPSERT_TAIL: &str = " ON CONFLICT (segment, trace_id, span_id) DO UPDATE SET \
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
const CORRELATION_COLUMNS: usize = 7;
/// Rows per correlation statement: one statement instead of one per correlation.
const CORRELATION_ROWS_PER_STATEMENT: usize = 1000;

const CORRELATION_UPSERT_HEAD: &str = "INSERT INTO correlations (correlation_id, \
    first_start_ns, last_end_ns, has_error, last_seen_ns, first_segment, last_segment) VALUES ";

const CORRELATION_UPSERT_TAIL: &str = " ON CONFLICT (correlation_id) DO UPDATE SET \
    first_start_ns = min(first_start_ns, excluded.first_start_ns), \
    last_end_ns = max(last_end_ns, excluded.last_end_ns), \
    has_error = max(has_error, excluded.has_error), \
    last_seen_ns = excluded.last_seen_ns, \
    first_segment = min(first_segment, excluded.first_segment), \
    last_segment = max(last_segment, excluded.last_segment)";

const ROOT_UPSERT_HEAD: &str = "INSERT INTO flow_roots (trace_id, first_start_ns, \
    last_end_ns, has_error, last_seen_ns) VALUES ";

const ROOT_UPSERT_TAIL: &str = " ON CONFLICT (trace_id) DO UPDATE SET \
    first_start_ns = min(first_start_ns, excluded.first_start_ns), \
    last_end_ns = max(last_end_ns, excluded.last_end_ns), \
    has_error = max(has_error, excluded.has_error), \
    last_seen_ns = excluded.last_seen_ns";

/// Columns bound per flow-root row.
const ROOT_COLUMNS: usize = 5;

const LINK_INSERT_HEAD: &str = "INSERT OR REPLACE INTO span_links (segment, trace_id, \
    span_id, linked_trace_id, linked_span_id, attributes) VALUES ";

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriteSummary {
    /// Spans written (new or replaced).
    pub spans: usize,
    /// Links written.
    pub links: usize,
}

/// The dedicated connection that writes spans.
#[derive(Debug)]
pub(crate) struct SpanWriter {
    connection: Mutex<Connection>,
    /// The attribute filter of the run of rows being filled (locked after `connection`).
    filter: Mutex<RunFilter>,
    /// Spans per segment (normally [`SEGMENT_SPANS`]).
    segment_spans: AtomicI64,
    /// Copies the log back while this writer lives (its own automatic checkpoints are off).
    _checkpointer: Checkpointer,
}

impl SpanWriter {
    /// Opens the writer connection on a database whose schema already exists.
    pub(crate) fn open(path: &Path) -> Result<Arc<SpanWriter>, StorageError> {
        let connection = open_rusqlite(path, true)?;
        // Full-size statements, the tail of each batch and the correlation upserts.
        connection.set_prepared_statement_cache_capacity(64);
        let filter = RunFilter::open(&connection, RUN_SPANS)?;
        Ok(Arc::new(SpanWriter {
            connection: Mutex::new(connection),
            filter: Mutex::new(filter),
            segment_spans: AtomicI64::new(SEGMENT_SPANS),
            _checkpointer: Checkpointer::start(path)?,
        }))
    }
}

impl Store {
    /// Upserts every span of every batch in one transaction, keyed on (trace id, span id):
    /// a retried span replaces its earlier copy in the same segment, and readers keep only
    /// the newest copy across segments (see `segments`). Returns once the transaction has
    /// committed. The batches are moved to a blocking thread.
    pub async fn write_spans(
        &self,
        batches: Vec<EncodedSpans>,
    ) -> Result<WriteSummary, StorageError> {
        self.write_spans_at(batches, now_ns()).await
    }

    /// [`Store::write_spans`], recording the spans as stored at `ingested_ns`.
    pub(crate) async fn write_spans_at(
        &self,
        batches: Vec<EncodedSpans>,
        ingested_ns: i64,
    ) -> Result<WriteSummary, StorageError> {
        let writer = Arc::clone(self.span_writer.as_ref().ok_or(StorageError::ReadOnly)?);
        tokio::task::spawn_blocking(move || {
            // A panic while holding the lock cannot leave a transaction open (rusqlite rolls
            // back on drop), so a poisoned connection is still usable.
            let mut connection = writer.connection.lock().unwrap_or_else(|p| p.into_inner());
            let mut filter = writer.filter.lock().unwrap_or_else(|p| p.into_inner());
            let segment_spans = writer.segment_spans.load(Ordering::Relaxed);
            write_batches(
                &mut connection,
                &mut filter,
                &batches,
                ingested_ns,
                segment_spans,
            )
            .map_err(StorageError::from_write)
        })
        .await
        .map_err(|error| StorageError::Corrupt(format!("span writer thread failed: {error}")))?
    }
}

impl Store {
    /// Sets how many spans a segment holds before the next one starts (normally
    /// [`SEGMENT_SPANS`]). Tests use small values to cross segment boundaries.
    pub fn set_segment_spans(&self, spans: i64) {
        if let Some(writer) = &self.span_writer {
            writer.segment_spans.store(spans.max(1), Ordering::Relaxed);
        }
    }

    /// Sets how many rows an attribute filter covers (normally [`RUN_SPANS`]), and reads
    /// the run being filled again at that length. Tests use small values to fill several
    /// runs.
    #[cfg(test)]
    pub(crate) fn set_filter_run_spans(&self, spans: i64) -> Result<(), StorageError> {
        if let Some(writer) = &self.span_writer {
            let connection = writer.connection.lock().unwrap_or_else(|p| p.into_inner());
            let filter = RunFilter::open(&connection, spans)?;
            *writer.filter.lock().unwrap_or_else(|p| p.into_inner()) = filter;
        }
        Ok(())
    }
}

fn write_batches(
    connection: &mut Connection,
    filter: &mut RunFilter,
    batches: &[EncodedSpans],
    ingested_ns: i64,
    segment_spans: i64,
) -> rusqlite::Result<WriteSummary> {
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let segment = segment_for_insert(&transaction, segment_spans)?;
    let newest_rowid = |transaction: &Transaction<'_>| -> rusqlite::Result<i64> {
        transaction
            .prepare_cached("SELECT coalesce(max(rowid), 0) FROM spans")?
            .query_row([], |row| row.get(0))
    };
    let after = newest_rowid(&transaction)?;
    let mut summary = WriteSummary::default();
    for batch in batches {
        // Correlations first: when a span in this batch replaces a copy that carried
        // another correlation ID, the trigger of migration 0005 then sees that summary
        // and drops it if no span carries its ID any more.
        let correlations: Vec<_> = batch.correlations.iter().collect();
        for chunk in correlations.chunks(CORRELATION_ROWS_PER_STATEMENT) {
            upsert_correlations(&transaction, chunk, ingested_ns, segment)?;
        }
        for chunk in batch.spans.chunks(SPAN_ROWS_PER_STATEMENT) {
            insert_spans(&transaction, chunk, ingested_ns, segment)?;
            summary.spans += chunk.len();
        }
        for chunk in batch.links.chunks(LINK_ROWS_PER_STATEMENT) {
            insert_links(&transaction, chunk, segment)?;
            summary.links += chunk.len();
        }
        let roots: Vec<_> = batch.roots.iter().collect();
        for chunk in roots.chunks(CORRELATION_ROWS_PER_STATEMENT) {
            upsert_roots(&transaction, chunk, ingested_ns)?;
        }
        let mut topology = transaction.prepare_cached(
            "INSERT INTO topology (destination, consumer_group, first_seen_ns, last_seen_ns) \
             VALUES (?, ?, ?, ?) ON CONFLICT (destination, consumer_group) DO UPDATE SET \
             first_seen_ns = min(first_seen_ns, excluded.first_seen_ns), \
             last_seen_ns = max(last_seen_ns, excluded.last_seen_ns)",
        )?;
        for ((topic, group), (first, last)) in &batch.topology {
            topology.execute(rusqlite::params![topic, group, first, last])?;
        }
    }
    let newest = newest_rowid(&transaction)?;
    let replaced = i64::try_from(summary.spans).unwrap_or(i64::MAX) != newest - after;
    let segment_first_rowid = if replaced {
        transaction
            .prepare_cached("SELECT first_rowid FROM span_segments WHERE segment = ?")?
            .query_row([segment], |row| row.get(0))?
    } else {
        0
    };
    let written = Written {
        after,
        newest,
        replaced,
        segment_first_rowid,
    };
    let pairs: Vec<&[u64]> = batches
        .iter()
        .map(|batch| batch.attribute_pairs.as_slice())
        .collect();
    let staged = filter.stage(&transaction, written, &pairs)?;
    transaction.commit()?;
    *filter = staged;
    Ok(summary)
}

/// Binds values to consecutive parameters of a statement.
struct Binder<'a, 'conn> {
    statement: &'a mut Statement<'conn>,
    next: usize,
}

impl<'a, 'conn> Binder<'a, 'conn> {
    /// Binds from the statement's first parameter on.
    fn new(statement: &'a mut Statement<'conn>) -> Self {
        Binder { statement, next: 0 }
    }

    fn bind<T: rusqlite::ToSql>(&mut self, value: T) -> rusqlite::Result<&mut Self> {
        self.next += 1;
        self.statement.raw_bind_parameter(self.next, value)?;
        Ok(self)
    }
}

fn insert_spans(
    transaction: &Transaction<'_>,
    rows: &[SpanRow],
    ingested_ns: i64,
    segment: i64,
) -> rusqlite::Result<()> {
    let mut statement = transaction.prepare_cached(&span_statement(rows.len()))?;
    let mut binder = Binder::new(&mut statement);
    for row in rows {
        binder
            .bind(&row.trace_id[..])?
            .bind(&row.span_id[..])?
            .bind(row.parent_span_id.as_ref().map(|id| &id[..]))?
            .bind(&row.name)?
            .bind(row.kind)?
            .bind(&row.service_name)?
            .bind(&row.scope_name)?
            .bind(row.start_ns)?
            .bind(row.end_ns)?
            .bind(row.status_code)?
            .bind(&row.status_message)?
            .bind(&row.attributes)?
            .bind(&row.resource)?
            .bind(&row.events)?
            .bind(&row.correlation_id)?
            .bind(&row.message_id)?
            .bind(&row.event_type)?
            .bind(&row.destination)?
            .bind(row.partition)?
            .bind(row.offset)?
            .bind(&row.consumer_group)?
            .bind(&row.operation_type)?
            .bind(&row.message_key)?
            .bind(ingested_ns)?
            .bind(segment)?;
    }
    statement.raw_execute()?;
    Ok(())
}

fn insert_links(
    transaction: &Transaction<'_>,
    rows: &[LinkRow],
    segment: i64,
) -> rusqlite::Result<()> {
    let mut statement = transaction.prepare_cached(&link_statement(rows.len()))?;
    let mut binder = Binder::new(&mut statement);
    for row in rows {
        binder
            .bind(segment)?
            .bind(&row.trace_id[..])?
            .bind(&row.span_id[..])?
            .bind(&row.linked_trace_id[..])?
            .bind(&row.linked_span_id[..])?
            .bind(&row.attributes)?;
    }
    statement.raw_execute()?;
    Ok(())
}

fn upsert_roots(
    transaction: &Transaction<'_>,
    rows: &[(&[u8; 16], &CorrelationSummary)],
    ingested_ns: i64,
) -> rusqlite::Result<()> {
    let sql = format!(
        "{ROOT_UPSERT_HEAD}{}{ROOT_UPSERT_TAIL}",
        placeholders(rows.len(), ROOT_COLUMNS)
    );
    let mut statement = transaction.prepare_cached(&sql)?;
    let mut binder = Binder::new(&mut statement);
    for (trace, known) in rows {
        binder
            .bind(&trace[..])?
            .bind(known.first_start_ns)?
            .bind(known.last_end_ns)?
            .bind(i64::from(known.has_error))?
            .bind(ingested_ns)?;
    }
    statement.raw_execute()?;
    Ok(())
}

fn upsert_correlations(
    transaction: &Transaction<'_>,
    rows: &[(&String, &CorrelationSummary)],
    ingested_ns: i64,
    segment: i64,
) -> rusqlite::Result<()> {
    let sql = format!(
        "{CORRELATION_UPSERT_HEAD}{}{CORRELATION_UPSERT_TAIL}",
        placeholders(rows.len(), CORRELATION_COLUMNS)
    );
    let mut statement = transaction.prepare_cached(&sql)?;
    let mut binder = Binder::new(&mut statement);
    for (correlation, known) in rows {
        binder
            .bind(correlation.as_str())?
            .bind(known.first_start_ns)?
            .bind(known.last_end_ns)?
            .bind(i64::from(known.has_error))?
            .bind(ingested_ns)?
            .bind(segment)?
            .bind(segment)?;
    }
    statement.raw_execute()?;
    Ok(())
}

/// The span upsert for `rows` rows. The full-size statement's text is built once; the
/// connection's prepared-statement cache keeps its compiled form.
fn span_statement(rows: usize) -> Cow<'static, str> {
    static FULL: OnceLock<String> = OnceLock::new();
    let build = |rows| {
        format!(
            "{SPAN_INSERT_HEAD}{}{SPAN_UPSERT_TAIL}",
            placeholders(rows, SPAN_COLUMNS)
        )
    };
    if rows == SPAN_ROWS_PER_STATEMENT {
        Cow::Borrowed(FULL.get_or_init(|| build(rows)).as_str())
    } else {
        Cow::Owned(build(rows))
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn placeholders_have_one_group_per_row() {
        assert_eq!(placeholders(2, 3), "(?, ?, ?), (?, ?, ?)");
        const { assert!(SPAN_ROWS_PER_STATEMENT * SPAN_COLUMNS < 32766) };
        const { assert!(LINK_ROWS_PER_STATEMENT * LINK_COLUMNS < 32766) };
        const { assert!(CORRELATION_ROWS_PER_STATEMENT * CORRELATION_COLUMNS < 32766) };
    }
}
