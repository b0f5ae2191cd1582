//! The PostgreSQL span writer: each write is one transaction of multi-row
//! `INSERT … SELECT FROM UNNEST(arrays)` statements, one array per column, so a statement
//! carries thousands of rows in a handful of bound values.
//!
//! A write's spans and links are first inserted as new rows, in a savepoint: a plain
//! insert costs the server less than an upsert (no check of the key before each row).
//! When one of them is already stored (a retry), the savepoint is rolled back and they are
//! upserted (`ON CONFLICT DO UPDATE`), and so are the next writes' for a while, as
//! retries come in runs. The correlation, root and topology summaries are always upserted.
//!
//! (A binary `COPY` of the new rows was tried: sqlx sends a `COPY`'s end as a write of its
//! own, without `TCP_NODELAY`, so most copies waited about 40 ms for the server's delayed
//! ACK, longer than the insert takes.)

use std::collections::{BTreeMap, HashMap, HashSet};

use std::sync::atomic::Ordering;

use crate::error::StorageError;
use crate::postgres::PgStore;
use crate::span_encode::{CorrelationSummary, EncodedSpans, LinkRow, SpanRow};
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

const CORRELATION_UPSERT: &str = "INSERT INTO correlations (correlation_id, first_start_ns, \
    last_end_ns, has_error, last_seen_ns) \
    SELECT *, $5::bigint FROM UNNEST($1::text[], $2::bigint[], $3::bigint[], $4::bool[]) \
    ON CONFLICT (correlation_id) DO UPDATE SET \
    first_start_ns = least(correlations.first_start_ns, excluded.first_start_ns), \
    last_end_ns = greatest(correlations.last_end_ns, excluded.last_end_ns), \
    has_error = correlations.has_error OR excluded.has_error, \
    last_seen_ns = excluded.last_seen_ns";

const ROOT_UPSERT: &str = "INSERT INTO flow_roots (trace_id, first_start_ns, last_end_ns, \
    has_error, last_seen_ns) \
    SELECT *, $5::bigint FROM UNNEST($1::bytea[], $2::bigint[], $3::bigint[], $4::bool[]) \
    ON CONFLICT (trace_id) DO UPDATE SET \
    first_start_ns = least(flow_roots.first_start_ns, excluded.first_start_ns), \
    last_end_ns = greatest(flow_roots.last_end_ns, excluded.last_end_ns), \
    has_error = flow_roots.has_error OR excluded.has_error, \
    last_seen_ns = excluded.last_seen_ns";

const TOPOLOGY_UPSERT: &str = "INSERT INTO topology (destination, consumer_group, \
    first_seen_ns, last_seen_ns) \
    SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::bigint[]) \
    ON CONFLICT (destination, consumer_group) DO UPDATE SET \
    first_seen_ns = least(topology.first_seen_ns, excluded.first_seen_ns), \
    last_seen_ns = greatest(topology.last_seen_ns, excluded.last_seen_ns)";

/// A link's key: the span that holds it, the span it points to.
type LinkKey = ([u8; 16], [u8; 8], [u8; 16], [u8; 8]);

/// The rows of several batches, merged: one row per key, the last one written winning
/// (a statement may not upsert one key twice).
#[derive(Default)]
struct Merged<'a> {
    spans: Vec<&'a SpanRow>,
    links: Vec<&'a LinkRow>,
    correlations: BTreeMap<&'a str, CorrelationSummary>,
    roots: BTreeMap<[u8; 16], CorrelationSummary>,
    topology: BTreeMap<(&'a str, &'a str), (i64, i64)>,
}

impl<'a> Merged<'a> {
    fn of(batches: &'a [EncodedSpans]) -> Merged<'a> {
        let mut merged = Merged::default();
        let mut span_at: HashMap<([u8; 16], [u8; 8]), usize> = HashMap::new();
        let mut link_at: HashMap<LinkKey, usize> = HashMap::new();
        for batch in batches {
            for row in &batch.spans {
                match span_at.get(&(row.trace_id, row.span_id)) {
                    Some(&at) => merged.spans[at] = row,
                    None => {
                        span_at.insert((row.trace_id, row.span_id), merged.spans.len());
                        merged.spans.push(row);
                    }
                }
            }
            for row in &batch.links {
                let key = (
                    row.trace_id,
                    row.span_id,
                    row.linked_trace_id,
                    row.linked_span_id,
                );
                match link_at.get(&key) {
                    Some(&at) => merged.links[at] = row,
                    None => {
                        link_at.insert(key, merged.links.len());
                        merged.links.push(row);
                    }
                }
            }
            for (id, summary) in &batch.correlations {
                merged
                    .correlations
                    .entry(id.as_str())
                    .and_modify(|known| known.merge(*summary))
                    .or_insert(*summary);
            }
            for (trace, summary) in &batch.roots {
                merged
                    .roots
                    .entry(*trace)
                    .and_modify(|known| known.merge(*summary))
                    .or_insert(*summary);
            }
            for ((topic, group), &(first, last)) in &batch.topology {
                merged
                    .topology
                    .entry((topic.as_str(), group.as_str()))
                    .and_modify(|(known_first, known_last)| {
                        *known_first = (*known_first).min(first);
                        *known_last = (*known_last).max(last);
                    })
                    .or_insert((first, last));
            }
        }
        // A span written twice in one write with two correlation IDs (a quick retry merged
        // with its first try) is stored as its last copy: the first copy's ID, carried by no
        // stored span, gets no summary.
        let carried: HashSet<&str> = merged
            .spans
            .iter()
            .filter_map(|row| row.correlation_id.as_deref())
            .collect();
        merged.correlations.retain(|id, _| carried.contains(id));
        merged
    }
}

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
        loop {
            // Insert unless a recent insert found a duplicate (then take one of the upserts
            // left).
            let insert_first = self
                .upserts_left
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_err();
            match write_merged(pool, &merged, ingested_ns, day, insert_first).await {
                Err(error) if tries < WRITE_TRIES && is_deadlock(&error) => {
                    tracing::debug!(%error, tries, "span write deadlocked, trying again");
                    tries += 1;
                }
                Err(error) => return Err(error.into()),
                Ok(found_stored) => {
                    if found_stored {
                        // Retries come in runs (an exporter resending after a slow
                        // commit): the next writes skip the insert that would fail.
                        self.upserts_left
                            .store(UPSERTS_AFTER_DUPLICATE, Ordering::Relaxed);
                    }
                    break;
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

/// The merged rows of one write, in one transaction: the spans and links inserted when
/// `insert_first` and none is stored yet, upserted otherwise; then the summaries. True
/// when the insert was tried and found one of them already stored.
async fn write_merged(
    pool: &sqlx::PgPool,
    merged: &Merged<'_>,
    ingested_ns: i64,
    day: i64,
    insert_first: bool,
) -> Result<bool, sqlx::Error> {
    let mut transaction = pool.begin().await?;
    let inserted =
        insert_first && insert_new_rows(&mut transaction, merged, ingested_ns, day).await?;
    if !inserted {
        write_rows(&mut transaction, merged, ingested_ns, day, Rows::Upserted).await?;
    }
    write_summaries(&mut transaction, merged, ingested_ns).await?;
    transaction.commit().await?;
    Ok(insert_first && !inserted)
}

/// Inserts the write's spans and links as new rows, in a savepoint; false, with nothing
/// written, when one of them is already stored.
async fn insert_new_rows(
    transaction: &mut sqlx::PgTransaction<'_>,
    merged: &Merged<'_>,
    ingested_ns: i64,
    day: i64,
) -> Result<bool, sqlx::Error> {
    use sqlx::Acquire;
    let mut savepoint = transaction.begin().await?;
    let inserted = write_rows(&mut savepoint, merged, ingested_ns, day, Rows::New).await;
    match inserted {
        Ok(()) => {
            savepoint.commit().await?;
            Ok(true)
        }
        Err(error) if is_duplicate(&error) => {
            savepoint.rollback().await?;
            Ok(false)
        }
        Err(error) => Err(error),
    }
}

/// How [`write_rows`] writes: as new rows (failing on one already stored), or upserted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rows {
    New,
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
        Rows::New => (SPAN_INSERT, LINK_INSERT),
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

/// Upserts the write's correlation, root and topology summaries.
async fn write_summaries(
    transaction: &mut sqlx::PgTransaction<'_>,
    merged: &Merged<'_>,
    ingested_ns: i64,
) -> Result<(), sqlx::Error> {
    let correlations: Vec<_> = merged.correlations.iter().collect();
    for chunk in correlations.chunks(ROWS_PER_STATEMENT) {
        let ids: Vec<&str> = chunk.iter().map(|(id, _)| **id).collect();
        upsert_summaries(transaction, CORRELATION_UPSERT, ids, chunk, ingested_ns).await?;
    }
    let roots: Vec<_> = merged.roots.iter().collect();
    for chunk in roots.chunks(ROWS_PER_STATEMENT) {
        let traces: Vec<&[u8]> = chunk.iter().map(|(trace, _)| &trace[..]).collect();
        upsert_summaries(transaction, ROOT_UPSERT, traces, chunk, ingested_ns).await?;
    }
    if !merged.topology.is_empty() {
        let topology: Vec<_> = merged.topology.iter().collect();
        sqlx::query(TOPOLOGY_UPSERT)
            .bind(topology.iter().map(|((t, _), _)| *t).collect::<Vec<_>>())
            .bind(topology.iter().map(|((_, g), _)| *g).collect::<Vec<_>>())
            .bind(topology.iter().map(|(_, (f, _))| *f).collect::<Vec<_>>())
            .bind(topology.iter().map(|(_, (_, l))| *l).collect::<Vec<_>>())
            .execute(&mut **transaction)
            .await?;
    }
    Ok(())
}

/// Upserts one summary per key (correlation ID or root trace) with `sql`, which binds the
/// keys, first starts, last ends, error flags and the ingest time.
async fn upsert_summaries<K, T>(
    transaction: &mut sqlx::PgTransaction<'_>,
    sql: &'static str,
    keys: Vec<K>,
    rows: &[(T, &CorrelationSummary)],
    ingested_ns: i64,
) -> Result<(), sqlx::Error>
where
    K: for<'q> sqlx::Encode<'q, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
    K: sqlx::postgres::PgHasArrayType + Send,
{
    sqlx::query(sql)
        .bind(keys)
        .bind(
            rows.iter()
                .map(|(_, c)| c.first_start_ns)
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|(_, c)| c.last_end_ns).collect::<Vec<_>>())
        .bind(rows.iter().map(|(_, c)| c.has_error).collect::<Vec<_>>())
        .bind(ingested_ns)
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
