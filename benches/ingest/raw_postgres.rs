//! The PostgreSQL baseline: the same span and link rows as the raw SQLite baseline, sent
//! with `COPY … FROM STDIN` (text format) into the store's own tables (its migrations, its
//! day partition and indexes), one transaction per 100 requests. No upsert and no
//! correlation summaries: the fastest way PostgreSQL takes these rows.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use causeway_storage::{Database, Store, now_ns};
use rusqlite::types::Value as Sql;
use sqlx::Connection;

use crate::Phase;
use crate::process_cpu::PostgresCpu;
use crate::raw_sqlite::transaction_rows;
use crate::workload::Workload;

const DAY_NS: i64 = 86_400_000_000_000;

/// The raw SQLite baseline's transactions (20 requests each) in one transaction here: 100
/// requests, about 51,000 span rows. The connection gets `TCP_NODELAY` as the store's do,
/// so a `COPY`'s end does not wait for the server's delayed ACK (about 40 ms).
const ROW_SETS_PER_TRANSACTION: usize = 5;

const SPAN_COPY: &str = "COPY spans (trace_id, span_id, parent_span_id, name, kind, \
    service_name, scope_name, start_ns, end_ns, status_code, status_message, attributes, \
    resource, events, correlation_id, message_id, event_type, destination, partition_id, \
    kafka_offset, consumer_group, operation_type, message_key, ingested_ns, ingest_day) \
    FROM STDIN";
const LINK_COPY: &str = "COPY span_links (trace_id, span_id, linked_trace_id, linked_span_id, \
    attributes, ingested_ns, ingest_day) FROM STDIN";

/// One value in `COPY`'s text format.
fn push_value(line: &mut String, value: &Sql) {
    match value {
        Sql::Null => line.push_str("\\N"),
        Sql::Integer(n) => {
            let _ = write!(line, "{n}");
        }
        Sql::Real(x) => {
            let _ = write!(line, "{x}");
        }
        Sql::Text(text) => {
            for c in text.chars() {
                match c {
                    '\\' => line.push_str("\\\\"),
                    '\t' => line.push_str("\\t"),
                    '\n' => line.push_str("\\n"),
                    '\r' => line.push_str("\\r"),
                    c => line.push(c),
                }
            }
        }
        Sql::Blob(bytes) => {
            line.push_str("\\\\x");
            for byte in bytes {
                let _ = write!(line, "{byte:02x}");
            }
        }
    }
}

/// Rows in `COPY`'s text format: one line each, values tab-separated.
fn copy_text<'a>(rows: impl Iterator<Item = Vec<&'a Sql>>) -> String {
    let mut text = String::new();
    for row in rows {
        for (index, value) in row.into_iter().enumerate() {
            if index > 0 {
                text.push('\t');
            }
            push_value(&mut text, value);
        }
        text.push('\n');
    }
    text
}

/// Copies `total_spans` span rows (plus their links) into a fresh schema of the database
/// `url` names, dropped afterwards; returns span rows per second of copy time (row building
/// is not timed), and the server's CPU time per span row.
pub async fn copy_rate(url: &str, total_spans: u64, spans_per_request: usize) -> Phase {
    let schema = BenchSchema::create(url, "bench_copy").await;
    let schema_url = schema.url.clone();
    // The store's migrations make the tables and indexes.
    let store = Store::open(Database::parse(&schema_url).unwrap())
        .await
        .expect("migrate the raw schema");
    store.close().await;
    let day = now_ns().div_euclid(DAY_NS);
    let mut connection = sqlx::PgConnection::connect(&schema_url).await.unwrap();
    let nagle = causeway_storage::turn_off_nagle(&mut connection)
        .await
        .unwrap();
    assert_eq!(nagle, causeway_storage::Nagle::Off, "TCP_NODELAY is set");
    for table in ["spans", "span_links"] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE TABLE {table}_d{day} PARTITION OF {table} FOR VALUES FROM ({day}) TO ({})",
            day + 1
        )))
        .execute(&mut connection)
        .await
        .unwrap();
    }
    let mut workload = Workload::new(10_000, spans_per_request);
    let mut copied = 0_u64;
    let mut busy = Duration::ZERO;
    let cpu = PostgresCpu::start();
    let day_value = Sql::Integer(day);
    while copied < total_spans {
        let (mut spans, mut links) = (Vec::new(), Vec::new());
        for _ in 0..ROW_SETS_PER_TRANSACTION {
            let (more_spans, more_links) = transaction_rows(&mut workload, 0);
            spans.extend(more_spans);
            links.extend(more_links);
        }
        // The SQLite rows end in (ingested_ns, segment); here the day takes the segment's
        // place. Link rows start with the segment.
        let span_text = copy_text(
            spans
                .iter()
                .map(|row| row[..24].iter().chain([&day_value]).collect()),
        );
        let link_text = copy_text(links.iter().map(|row| {
            let ingested = &spans[0][23];
            row[1..].iter().chain([ingested, &day_value]).collect()
        }));
        let started = Instant::now();
        let mut transaction = connection.begin().await.unwrap();
        let mut copy = transaction.copy_in_raw(SPAN_COPY).await.unwrap();
        copy.send(span_text.as_bytes()).await.unwrap();
        copy.finish().await.unwrap();
        let mut copy = transaction.copy_in_raw(LINK_COPY).await.unwrap();
        copy.send(link_text.as_bytes()).await.unwrap();
        copy.finish().await.unwrap();
        transaction.commit().await.unwrap();
        busy += started.elapsed();
        copied += spans.len() as u64;
    }
    let server = cpu.used();
    connection.close().await.unwrap();
    schema.drop().await;
    Phase::of(copied as f64 / busy.as_secs_f64(), copied, server, None)
}

/// A schema of its own in the bench database, for one phase: created empty, dropped by
/// [`BenchSchema::drop`].
pub struct BenchSchema {
    admin: sqlx::PgConnection,
    name: String,
    /// The database URL with this schema as its search path.
    pub url: String,
}

impl BenchSchema {
    /// Creates `<prefix>_<pid>` in the database `url` names.
    pub async fn create(url: &str, prefix: &str) -> BenchSchema {
        let name = format!("{prefix}_{}", std::process::id());
        let mut admin = sqlx::PgConnection::connect(url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to the bench database: {e}"));
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}")))
            .execute(&mut admin)
            .await
            .unwrap();
        let separator = if url.contains('?') { '&' } else { '?' };
        let url = format!("{url}{separator}options[search_path]={name}");
        BenchSchema { admin, name, url }
    }

    /// Drops the schema and everything in it.
    pub async fn drop(mut self) {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA {} CASCADE",
            self.name
        )))
        .execute(&mut self.admin)
        .await
        .unwrap();
    }
}
