//! The baseline: the same span rows inserted straight into SQLite with rusqlite, using the
//! store's schema and indexes, multi-row `VALUES` and large transactions.

use std::path::Path;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_semantic_conventions::attribute::{
    MESSAGING_CONSUMER_GROUP_NAME, MESSAGING_DESTINATION_NAME, MESSAGING_DESTINATION_PARTITION_ID,
    MESSAGING_KAFKA_MESSAGE_KEY, MESSAGING_KAFKA_OFFSET, MESSAGING_MESSAGE_CONVERSATION_ID,
    MESSAGING_MESSAGE_ID, MESSAGING_OPERATION_TYPE,
};
use rusqlite::types::Value as Sql;
use serde_json::{Map, Value, json};

use causeway_storage::{SEGMENT_SPANS, schema_sql};

use crate::workload::Workload;

/// Rows per INSERT statement (25 columns each, well under SQLite's parameter limit).
const ROWS_PER_STATEMENT: usize = 64;
/// Requests per transaction.
const REQUESTS_PER_TRANSACTION: usize = 20;
const SPAN_COLUMNS: &str = "trace_id, span_id, parent_span_id, name, kind, service_name, \
    scope_name, start_ns, end_ns, status_code, status_message, attributes, resource, events, \
    correlation_id, message_id, event_type, destination, partition_id, kafka_offset, \
    consumer_group, operation_type, message_key, ingested_ns, segment";
const SPAN_COLUMN_COUNT: usize = 25;

fn json_of(pairs: &[KeyValue]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|pair| {
            let value = match pair.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(any_value::Value::StringValue(s)) => Value::from(s.as_str()),
                Some(any_value::Value::IntValue(i)) => Value::from(*i),
                Some(any_value::Value::BoolValue(b)) => Value::from(*b),
                Some(any_value::Value::DoubleValue(d)) => Value::from(*d),
                _ => Value::Null,
            };
            (pair.key.clone(), value)
        })
        .collect()
}

fn text_of(attributes: &Map<String, Value>, key: &str) -> Sql {
    attributes
        .get(key)
        .and_then(Value::as_str)
        .map_or(Sql::Null, |s| Sql::Text(s.to_owned()))
}

/// The 25 column values of one span, as the collector would store them.
fn span_row(span: &Span, service: &str, resource: &str, segment: i64) -> Vec<Sql> {
    let attributes = json_of(&span.attributes);
    let events: Vec<Value> = span
        .events
        .iter()
        .map(|e| json!({"time_ns": e.time_unix_nano, "name": e.name, "attributes": json_of(&e.attributes)}))
        .collect();
    let (status_code, status_message) = span.status.as_ref().map_or((0, String::new()), |s| {
        (i64::from(s.code), s.message.clone())
    });
    let partition = attributes
        .get(MESSAGING_DESTINATION_PARTITION_ID)
        .and_then(Value::as_str)
        .and_then(|p| p.parse::<i64>().ok())
        .map_or(Sql::Null, Sql::Integer);
    let offset = attributes
        .get(MESSAGING_KAFKA_OFFSET)
        .and_then(Value::as_i64)
        .map_or(Sql::Null, Sql::Integer);
    vec![
        Sql::Blob(span.trace_id.clone()),
        Sql::Blob(span.span_id.clone()),
        if span.parent_span_id.is_empty() {
            Sql::Null
        } else {
            Sql::Blob(span.parent_span_id.clone())
        },
        Sql::Text(span.name.clone()),
        Sql::Integer(i64::from(span.kind)),
        Sql::Text(service.to_owned()),
        Sql::Text("causeway-bench".into()),
        Sql::Integer(span.start_time_unix_nano as i64),
        Sql::Integer(span.end_time_unix_nano as i64),
        Sql::Integer(status_code),
        Sql::Text(status_message),
        Sql::Text(Value::Object(attributes.clone()).to_string()),
        Sql::Text(resource.to_owned()),
        Sql::Text(Value::Array(events).to_string()),
        text_of(&attributes, MESSAGING_MESSAGE_CONVERSATION_ID),
        text_of(&attributes, MESSAGING_MESSAGE_ID),
        text_of(&attributes, "cloudevents.event_type"),
        text_of(&attributes, MESSAGING_DESTINATION_NAME),
        partition,
        offset,
        text_of(&attributes, MESSAGING_CONSUMER_GROUP_NAME),
        text_of(&attributes, MESSAGING_OPERATION_TYPE),
        text_of(&attributes, MESSAGING_KAFKA_MESSAGE_KEY),
        Sql::Integer(span.end_time_unix_nano as i64),
        Sql::Integer(segment),
    ]
}

/// The rows of one transaction, all in `segment`: span rows and link rows.
pub(crate) fn transaction_rows(
    workload: &mut Workload,
    segment: i64,
) -> (Vec<Vec<Sql>>, Vec<Vec<Sql>>) {
    let mut spans = Vec::new();
    let mut links = Vec::new();
    for _ in 0..REQUESTS_PER_TRANSACTION {
        let request = workload.next_request();
        for resource_spans in &request.resource_spans {
            let resource_attributes = resource_spans
                .resource
                .as_ref()
                .map(|r| json_of(&r.attributes))
                .unwrap_or_default();
            let service = resource_attributes
                .get("service.name")
                .and_then(Value::as_str)
                .unwrap_or("unknown_service")
                .to_owned();
            let resource = Value::Object(resource_attributes).to_string();
            for span in resource_spans.scope_spans.iter().flat_map(|s| &s.spans) {
                spans.push(span_row(span, &service, &resource, segment));
                for link in &span.links {
                    links.push(vec![
                        Sql::Integer(segment),
                        Sql::Blob(span.trace_id.clone()),
                        Sql::Blob(span.span_id.clone()),
                        Sql::Blob(link.trace_id.clone()),
                        Sql::Blob(link.span_id.clone()),
                        Sql::Text(Value::Object(json_of(&link.attributes)).to_string()),
                    ]);
                }
            }
        }
    }
    (spans, links)
}

fn insert_sql(table: &str, columns: &str, column_count: usize, rows: usize) -> String {
    let row = format!("({})", vec!["?"; column_count].join(","));
    format!(
        "INSERT OR IGNORE INTO {table} ({columns}) VALUES {}",
        vec![row; rows].join(",")
    )
}

fn insert_rows(
    transaction: &rusqlite::Transaction<'_>,
    table: &str,
    columns: &str,
    column_count: usize,
    rows: &[Vec<Sql>],
) {
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let sql = insert_sql(table, columns, column_count, chunk.len());
        let mut statement = transaction.prepare_cached(&sql).expect("prepare insert");
        statement
            .execute(rusqlite::params_from_iter(chunk.iter().flatten()))
            .expect("insert rows");
    }
}

/// The per-correlation summary rows the store keeps beside the spans: one upsert per
/// correlation of the transaction, as the store's writer does.
fn upsert_correlations(transaction: &rusqlite::Transaction<'_>, spans: &[Vec<Sql>], segment: i64) {
    let mut summaries: std::collections::BTreeMap<&str, (i64, i64, i64)> = Default::default();
    for row in spans {
        let (Sql::Text(correlation), Sql::Integer(start), Sql::Integer(end), Sql::Integer(code)) =
            (&row[14], &row[7], &row[8], &row[9])
        else {
            continue;
        };
        let summary = summaries.entry(correlation).or_insert((*start, *end, 0));
        summary.0 = summary.0.min(*start);
        summary.1 = summary.1.max(*end);
        summary.2 = summary.2.max(i64::from(*code == 2));
    }
    let mut statement = transaction
        .prepare_cached(
            "INSERT INTO correlations (correlation_id, first_start_ns, last_end_ns, has_error, \
             last_seen_ns, first_segment, last_segment) VALUES (?1, ?2, ?3, ?4, ?3, ?5, ?5) \
             ON CONFLICT (correlation_id) DO UPDATE SET \
             first_start_ns = min(first_start_ns, excluded.first_start_ns), \
             last_end_ns = max(last_end_ns, excluded.last_end_ns), \
             has_error = max(has_error, excluded.has_error), last_seen_ns = excluded.last_seen_ns, \
             first_segment = min(first_segment, excluded.first_segment), \
             last_segment = max(last_segment, excluded.last_segment)",
        )
        .expect("prepare the correlation upsert");
    for (correlation, (start, end, error)) in summaries {
        statement
            .execute(rusqlite::params![correlation, start, end, error, segment])
            .expect("upsert a correlation");
    }
}

/// Inserts `total_spans` rows (plus their links) and returns span rows per second of
/// insert time (row building is not timed).
pub fn insert_rate(db: &Path, total_spans: u64, spans_per_request: usize) -> f64 {
    let mut connection = rusqlite::Connection::open(db).expect("create the raw database");
    connection
        .execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
             PRAGMA cache_size = -32768; PRAGMA temp_store = memory;",
        )
        .expect("configure the raw database");
    // The store's own migrations: the spans table, its links, the correlation summaries and
    // every index (including the lag migration's index on producer sends), segmented.
    for migration in schema_sql() {
        connection
            .execute_batch(migration)
            .expect("create the schema");
    }
    let mut workload = Workload::new(10_000, spans_per_request);
    let mut inserted = 0_u64;
    let mut busy = Duration::ZERO;
    while inserted < total_spans {
        // Segments start every SEGMENT_SPANS rows, as the store's writer starts them.
        let segment = (inserted / SEGMENT_SPANS.unsigned_abs()) as i64;
        let (spans, links) = transaction_rows(&mut workload, segment);
        let started = Instant::now();
        let transaction = connection.transaction().expect("begin");
        insert_rows(
            &transaction,
            "spans",
            SPAN_COLUMNS,
            SPAN_COLUMN_COUNT,
            &spans,
        );
        insert_rows(
            &transaction,
            "span_links",
            "segment, trace_id, span_id, linked_trace_id, linked_span_id, attributes",
            6,
            &links,
        );
        upsert_correlations(&transaction, &spans, segment);
        transaction.commit().expect("commit");
        busy += started.elapsed();
        inserted += spans.len() as u64;
    }
    inserted as f64 / busy.as_secs_f64()
}
