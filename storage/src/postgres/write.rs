//! The PostgreSQL span writer: each write is one transaction.
//!
//! A write's spans and links are written first, as new rows: copied in with a binary
//! `COPY` (`copy.rs`), which the server stores a page at a time, or, on a connection that
//! may hold a `COPY`'s end back (`nodelay.rs`), inserted with multi-row `INSERT … SELECT
//! FROM UNNEST(arrays)`, one array per column. Either costs the server less than an upsert
//! (no check of the key before each row). When one of them is already stored (a retry),
//! the transaction is rolled back, having written nothing else, and written again with
//! the spans and links upserted (`ON CONFLICT DO UPDATE`); so are the next writes' for a
//! while, as retries come in runs. The correlation, root and topology summaries are always
//! upserted, in one statement.

use std::sync::atomic::Ordering;

use crate::error::StorageError;
use crate::postgres::merge::Merged;
use crate::postgres::{PgStore, copy};
use crate::span_encode::{CorrelationSummary, EncodedSpans, SpanRow};
use crate::span_write::WriteSummary;

/// Nanoseconds in one partition of spans and links: a day.
pub(crate) const DAY_NS: i64 = 86_400 * 1_000_000_000;

/// Rows per insert statement.
const ROWS_PER_STATEMENT: usize = 5_000;

/// Advisory lock key held while a partition is created (several collectors may create the
/// same day at once): "causeway" in ASCII.
const PARTITION_LOCK: i64 = 0x6361_7573_6577_6179;

/// The insert of a write's spans, one array per column; as such it fails on a span
/// already stored (see [`SPAN_UPSERT`]).
macro_rules! span_insert {
    () => {
        "INSERT INTO spans (trace_id, span_id, parent_span_id, name, kind, \
    service_name, scope_name, start_ns, end_ns, status_code, status_message, attributes, \
    resource, events, correlation_id, message_id, event_type, destination, partition_id, \
    kafka_offset, consumer_group, operation_type, message_key, ingested_ns, ingest_day) \
    SELECT *, $24::bigint, $25::bigint FROM UNNEST($1::bytea[], $2::bytea[], $3::bytea[], \
    $4::text[], $5::bigint[], $6::text[], $7::text[], $8::bigint[], $9::bigint[], \
    $10::bigint[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[], \
    $16::text[], $17::text[], $18::text[], $19::bigint[], $20::bigint[], $21::text[], \
    $22::text[], $23::text[])"
    };
}

/// The insert of a write's links; it fails on a link already stored.
macro_rules! link_insert {
    () => {
        "INSERT INTO span_links (trace_id, span_id, linked_trace_id, \
    linked_span_id, attributes, ingested_ns, ingest_day) \
    SELECT *, $6::bigint, $7::bigint FROM UNNEST($1::bytea[], $2::bytea[], $3::bytea[], \
    $4::bytea[], $5::text[])"
    };
}

const SPAN_INSERT: &str = span_insert!();

/// The insert, replacing a stored copy of the span (a retry).
const SPAN_UPSERT: &str = concat!(
    span_insert!(),
    " ON CONFLICT (trace_id, span_id, ingest_day) DO UPDATE SET \
    parent_span_id = excluded.parent_span_id, name = excluded.name, kind = excluded.kind, \
    service_name = excluded.service_name, scope_name = excluded.scope_name, \
    start_ns = excluded.start_ns, end_ns = excluded.end_ns, status_code = excluded.status_code, \
    status_message = excluded.status_message, attributes = excluded.attributes, \
    resource = excluded.resource, events = excluded.events, \
    correlation_id = excluded.correlation_id, message_id = excluded.message_id, \
    event_type = excluded.event_type, destination = excluded.destination, \
    partition_id = excluded.partition_id, kafka_offset = excluded.kafka_offset, \
    consumer_group = excluded.consumer_group, operation_type = excluded.operation_type, \
    message_key = excluded.message_key, ingested_ns = excluded.ingested_ns"
);

const LINK_INSERT: &str = link_insert!();

/// The link insert, replacing a stored copy of the link.
const LINK_UPSERT: &str = concat!(
    link_insert!(),
    " ON CONFLICT (trace_id, span_id, linked_trace_id, linked_span_id, ingest_day) \
    DO UPDATE SET attributes = excluded.attributes, ingested_ns = excluded.ingested_ns"
);

/// The write's correlation, root and topology summaries, upserted in one statement (one
/// round trip): correlations in $1 to $4, root traces in $5 to $8, (topic, group) pairs in
/// $9 to $12, the ingest time in $13. Empty arrays upsert nothing.
const SUMMARY_UPSERT: &str = "WITH correlation AS (\
    INSERT INTO correlations (correlation_id, first_start_ns, last_end_ns, has_error, \
    last_seen_ns) \
    SELECT *, $13::bigint FROM UNNEST($1::text[], $2::bigint[], $3::bigint[], $4::bool[]) \
    ON CONFLICT (correlation_id) DO UPDATE SET \
    first_start_ns = least(correlations.first_start_ns, excluded.first_start_ns), \
    last_end_ns = greatest(correlations.last_end_ns, excluded.last_end_ns), \
    has_error = correlations.has_error OR excluded.has_error, \
    last_seen_ns = excluded.last_seen_ns), \
    root AS (\
    INSERT INTO flow_roots (trace_id, first_start_ns, last_end_ns, has_error, last_seen_ns) \
    SELECT *, $13::bigint FROM UNNEST($5::bytea[], $6::bigint[], $7::bigint[], $8::bool[]) \
    ON CONFLICT (trace_id) DO UPDATE SET \
    first_start_ns = least(flow_roots.first_start_ns, excluded.first_start_ns), \
    last_end_ns = greatest(flow_roots.last_end_ns, excluded.last_end_ns), \
    has_error = flow_roots.has_error OR excluded.has_error, \
    last_seen_ns = excluded.last_seen_ns), \
    counted AS (INSERT INTO span_writes (spans) VALUES ($14)) \
    INSERT INTO topology (destination, consumer_group, first_seen_ns, last_seen_ns) \
    SELECT * FROM UNNEST($9::text[], $10::text[], $11::bigint[], $12::bigint[]) \
    ON CONFLICT (destination, consumer_group) DO UPDATE SET \
    first_seen_ns = least(topology.first_seen_ns, excluded.first_seen_ns), \
    last_seen_ns = greatest(topology.last_seen_ns, excluded.last_seen_ns)";

impl PgStore {
    /// Upserts every span of every batch in one transaction (see the trait method),
    /// recording them as stored at `ingested_ns`. Transactions of several writers that
    /// upsert the same rows in another order may deadlock; PostgreSQL then cancels one,
    /// which is tried again.
    pub(crate) async fn write_spans_at(
        &self,
        batches: Vec<EncodedSpans>,
        ingested_ns: i64,
    ) -> Result<WriteSummary, StorageError> {
        let pool = self.writable()?;
        let day = ingested_ns.div_euclid(DAY_NS);
        self.ensure_day(day).await?;
        let merged = Merged::of(&batches);
        let mut tries = 1;
        // Set once this write found one of its spans stored: it then upserts.
        let mut found_stored = false;
        loop {
            // New rows unless this write or a recent one found a span already stored (then
            // take one of the upserts left).
            let upsert = found_stored
                || self
                    .upserts_left
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                    .is_ok();
            let how = match (upsert, self.copies_new_rows()) {
                (true, _) => Rows::Upserted,
                (false, true) => Rows::Copied,
                (false, false) => Rows::Inserted,
            };
            match write_merged(pool, &merged, ingested_ns, day, how).await {
                Err(error) if tries < WRITE_TRIES && is_deadlock(&error) => {
                    tracing::debug!(%error, tries, "span write deadlocked, trying again");
                    tries += 1;
                }
                Err(error) => return Err(error.into()),
                Ok(Written::Committed) => break,
                Ok(Written::FoundStored) => {
                    // Retries come in runs (an exporter resending after a slow commit):
                    // the next writes skip the new rows that would fail.
                    found_stored = true;
                    self.upserts_left
                        .store(UPSERTS_AFTER_DUPLICATE, Ordering::Relaxed);
                }
            }
        }
        Ok(WriteSummary {
            spans: batches.iter().map(|b| b.spans.len()).sum(),
            links: batches.iter().map(|b| b.links.len()).sum(),
        })
    }

    /// Creates the span and link partitions of `day` unless this handle knows they exist.
    pub(crate) async fn ensure_day(&self, day: i64) -> Result<(), StorageError> {
        if self.known_days()?.contains(&day) {
            return Ok(());
        }
        let mut transaction = self.writable()?.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(PARTITION_LOCK)
            .execute(&mut *transaction)
            .await?;
        for table in ["spans", "span_links"] {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "CREATE TABLE IF NOT EXISTS {table}_d{day} PARTITION OF {table} \
                 FOR VALUES FROM ({day}) TO ({})",
                day + 1
            )))
            .execute(&mut *transaction)
            .await?;
        }
        transaction.commit().await?;
        self.known_days()?.insert(day);
        Ok(())
    }

    /// The days this handle knows have partitions.
    pub(crate) fn known_days(
        &self,
    ) -> Result<std::sync::MutexGuard<'_, std::collections::BTreeSet<i64>>, StorageError> {
        self.days
            .lock()
            .map_err(|_| StorageError::Corrupt("partition cache poisoned".into()))
    }
}

/// Tries a deadlocked write this many times in all.
const WRITE_TRIES: u32 = 3;

/// Whether PostgreSQL cancelled the transaction to break a deadlock, or to keep it
/// serialisable (both leave nothing written, so the write may be tried again).
fn is_deadlock(error: &sqlx::Error) -> bool {
    let code = error.as_database_error().and_then(|e| e.code());
    matches!(code.as_deref(), Some("40P01" | "40001"))
}

/// Writes after an insert found a row already stored that go straight to the upserts.
const UPSERTS_AFTER_DUPLICATE: u32 = 32;

/// Whether a statement failed on a key already stored.
fn is_duplicate(error: &sqlx::Error) -> bool {
    let code = error.as_database_error().and_then(|e| e.code());
    code.as_deref() == Some("23505")
}

/// What [`write_merged`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Written {
    Committed,
    /// Nothing: a span or link written as a new row was already stored.
    FoundStored,
}

/// The merged rows of one write, in one transaction: the spans and links written as `how`
/// says, then the summaries. New rows come first, so a write that finds one of them
/// already stored is rolled back having written nothing else.
async fn write_merged(
    pool: &sqlx::PgPool,
    merged: &Merged<'_>,
    ingested_ns: i64,
    day: i64,
    how: Rows,
) -> Result<Written, sqlx::Error> {
    let mut transaction = pool.begin().await?;
    match write_rows(&mut transaction, merged, ingested_ns, day, how).await {
        Err(error) if how != Rows::Upserted && is_duplicate(&error) => {
            transaction.rollback().await?;
            return Ok(Written::FoundStored);
        }
        written => written?,
    }
    write_summaries(&mut transaction, merged, ingested_ns).await?;
    transaction.commit().await?;
    Ok(Written::Committed)
}

/// How [`write_rows`] writes: as new rows, copied in or inserted (either fails on a row
/// already stored), or upserted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rows {
    Copied,
    Inserted,
    Upserted,
}

/// Writes the write's spans and links as `how` says; upserts are keyed on their ids
/// within the day.
async fn write_rows(
    transaction: &mut sqlx::PgTransaction<'_>,
    merged: &Merged<'_>,
    ingested_ns: i64,
    day: i64,
    how: Rows,
) -> Result<(), sqlx::Error> {
    let (span_sql, link_sql) = match how {
        Rows::Copied => return copy_rows(transaction, merged, ingested_ns, day).await,
        Rows::Inserted => (SPAN_INSERT, LINK_INSERT),
        Rows::Upserted => (SPAN_UPSERT, LINK_UPSERT),
    };
    for chunk in merged.spans.chunks(ROWS_PER_STATEMENT) {
        insert_spans(transaction, span_sql, chunk, ingested_ns, day).await?;
    }
    for chunk in merged.links.chunks(ROWS_PER_STATEMENT) {
        sqlx::query(link_sql)
            .bind(chunk.iter().map(|l| &l.trace_id[..]).collect::<Vec<_>>())
            .bind(chunk.iter().map(|l| &l.span_id[..]).collect::<Vec<_>>())
            .bind(
                chunk
                    .iter()
                    .map(|l| &l.linked_trace_id[..])
                    .collect::<Vec<_>>(),
            )
            .bind(
                chunk
                    .iter()
                    .map(|l| &l.linked_span_id[..])
                    .collect::<Vec<_>>(),
            )
            .bind(
                chunk
                    .iter()
                    .map(|l| l.attributes.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(ingested_ns)
            .bind(day)
            .execute(&mut **transaction)
            .await?;
    }
    Ok(())
}

/// Copies the write's spans and links in as new rows (failing on one already stored).
async fn copy_rows(
    transaction: &mut sqlx::PgTransaction<'_>,
    merged: &Merged<'_>,
    ingested_ns: i64,
    day: i64,
) -> Result<(), sqlx::Error> {
    if !merged.spans.is_empty() {
        let data = copy::span_rows(&merged.spans, ingested_ns, day);
        copy_in(transaction, copy::SPAN_COPY, data).await?;
    }
    if !merged.links.is_empty() {
        let data = copy::link_rows(&merged.links, ingested_ns, day);
        copy_in(transaction, copy::LINK_COPY, data).await?;
    }
    Ok(())
}

/// Runs the copy `statement` with `data`.
async fn copy_in(
    transaction: &mut sqlx::PgTransaction<'_>,
    statement: &'static str,
    data: Result<Vec<u8>, copy::Oversized>,
) -> Result<(), sqlx::Error> {
    let data = data.map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let mut copy = transaction.copy_in_raw(statement).await?;
    copy.send(data).await?;
    copy.finish().await?;
    Ok(())
}

/// The first starts, last ends and error flags of `summaries`, one array each.
fn summary_columns<'a>(
    summaries: impl Iterator<Item = &'a CorrelationSummary>,
) -> (Vec<i64>, Vec<i64>, Vec<bool>) {
    let mut columns = (Vec::new(), Vec::new(), Vec::new());
    for summary in summaries {
        columns.0.push(summary.first_start_ns);
        columns.1.push(summary.last_end_ns);
        columns.2.push(summary.has_error);
    }
    columns
}

/// Upserts the write's correlation, root and topology summaries.
async fn write_summaries(
    transaction: &mut sqlx::PgTransaction<'_>,
    merged: &Merged<'_>,
    ingested_ns: i64,
) -> Result<(), sqlx::Error> {
    let (correlations, roots, topology) = (&merged.correlations, &merged.roots, &merged.topology);
    let (correlation_starts, correlation_ends, correlation_errors) =
        summary_columns(correlations.values());
    let (root_starts, root_ends, root_errors) = summary_columns(roots.values());
    let (mut topics, mut groups, mut firsts, mut lasts) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (&(topic, group), &(first, last)) in topology {
        topics.push(topic);
        groups.push(group);
        firsts.push(first);
        lasts.push(last);
    }
    sqlx::query(SUMMARY_UPSERT)
        .bind(correlations.keys().copied().collect::<Vec<&str>>())
        .bind(correlation_starts)
        .bind(correlation_ends)
        .bind(correlation_errors)
        .bind(roots.keys().map(|trace| &trace[..]).collect::<Vec<&[u8]>>())
        .bind(root_starts)
        .bind(root_ends)
        .bind(root_errors)
        .bind(topics)
        .bind(groups)
        .bind(firsts)
        .bind(lasts)
        .bind(ingested_ns)
        .bind(i64::try_from(merged.spans.len()).unwrap_or(i64::MAX))
        .execute(&mut **transaction)
        .await?;
    Ok(())
}

async fn insert_spans(
    transaction: &mut sqlx::PgTransaction<'_>,
    sql: &'static str,
    rows: &[&SpanRow],
    ingested_ns: i64,
    day: i64,
) -> Result<(), sqlx::Error> {
    fn column<'r, T>(rows: &[&'r SpanRow], value: impl Fn(&'r SpanRow) -> T) -> Vec<T> {
        rows.iter().map(|row| value(row)).collect()
    }
    sqlx::query(sql)
        .bind(column(rows, |r| &r.trace_id[..]))
        .bind(column(rows, |r| &r.span_id[..]))
        .bind(column(rows, |r| {
            r.parent_span_id.as_ref().map(|id| &id[..])
        }))
        .bind(column(rows, |r| r.name.as_str()))
        .bind(column(rows, |r| r.kind))
        .bind(column(rows, |r| r.service_name.as_str()))
        .bind(column(rows, |r| r.scope_name.as_str()))
        .bind(column(rows, |r| r.start_ns))
        .bind(column(rows, |r| r.end_ns))
        .bind(column(rows, |r| r.status_code))
        .bind(column(rows, |r| r.status_message.as_str()))
        .bind(column(rows, |r| r.attributes.as_str()))
        .bind(column(rows, |r| &*r.resource))
        .bind(column(rows, |r| r.events.as_str()))
        .bind(column(rows, |r| r.correlation_id.as_deref()))
        .bind(column(rows, |r| r.message_id.as_deref()))
        .bind(column(rows, |r| r.event_type.as_deref()))
        .bind(column(rows, |r| r.destination.as_deref()))
        .bind(column(rows, |r| r.partition))
        .bind(column(rows, |r| r.offset))
        .bind(column(rows, |r| r.consumer_group.as_deref()))
        .bind(column(rows, |r| r.operation_type.as_deref()))
        .bind(column(rows, |r| r.message_key.as_deref()))
        .bind(ingested_ns)
        .bind(day)
        .execute(&mut **transaction)
        .await?;
    Ok(())
}

#[cfg(test)]
#[path = "write_tests.rs"]
mod tests;
