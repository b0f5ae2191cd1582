//! Benchmark: `causeway flow`'s query and reconstruction for 200-span correlations in a
//! large store, warm and cold, printing p50/p99; then the search behind
//! `causeway flows --where key=value`.
//!
//! The store (10 million spans by default; set `CAUSEWAY_BENCH_SPANS` for another size) is
//! generated once through the storage API and cached under `target/bench-data/`, so reruns
//! reuse it. Run with `cargo bench -p causeway-flow --bench flow`; set
//! `CAUSEWAY_BENCH_ONLY=where` for the `--where` search alone, `=warm` for the warm loader
//! and its baseline alone.
//!
//! `CAUSEWAY_BENCH_PG=postgres://…` runs the warm loader and its baseline on PostgreSQL
//! instead: the same spans, written through the storage API into a schema of that database
//! named after the store's size (`flow_bench_<spans>`), kept for the next run like the
//! SQLite file (drop it by hand to free the space).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

/// The allocator the `causeway` binary runs with (`src/allocator.rs`), with its default
/// settings, as `causeway flow` runs it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use causeway_flow::{FlowOptions, Topology, load_spans, reconstruct};
use causeway_storage::{
    Database, EncodedSpans, Messaging, SCHEMA_VERSION, SpanId, SpanKind, SpanLink, SpanRecord,
    StatusCode, Store, TraceId,
};
use serde_json::{Map, Value};

const SPANS_PER_FLOW: usize = 200;
const MESSAGES_PER_FLOW: usize = 66;
const GROUPS: [&str; 2] = ["billing", "shipping"];
const TOPICS: [&str; 3] = ["orders", "payments", "shipments"];
const SERVICES: [&str; 3] = ["order-service", "payment-service", "shipping-service"];
const BATCH_FLOWS: usize = 100;
const SAMPLES: usize = 400;
const MS: i64 = 1_000_000;
const T0: i64 = 1_700_000_000_000 * MS;

fn main() {
    let spans: usize = std::env::var("CAUSEWAY_BENCH_SPANS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let flows = (spans / SPANS_PER_FLOW).max(2 * SAMPLES + 1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    if let Ok(url) = std::env::var("CAUSEWAY_BENCH_PG") {
        runtime.block_on(postgres(&url, flows));
        return;
    }
    let path = data_path(flows);
    runtime.block_on(async {
        ensure_store(&path, flows).await;
        let (cold_ids, warm_ids) = samples(flows);
        if std::env::var("CAUSEWAY_BENCH_ONLY").as_deref() == Ok("where") {
            let store = Store::open_read_only(&path).await.expect("open read-only");
            measure_where(&store, flows).await;
            return;
        }
        if std::env::var("CAUSEWAY_BENCH_ONLY").as_deref() == Ok("warm") {
            let store = Store::open_read_only(&path).await.expect("open read-only");
            measure_warm(&store, &warm_ids, "").await;
            return;
        }

        let dropped = drop_page_cache();
        let store = Store::open_read_only(&path).await.expect("open read-only");
        let cold = measure(&store, &cold_ids, Read::Loader).await;
        report(
            if dropped {
                "loader, cold (page cache dropped, fresh store)"
            } else {
                "loader, cold (fresh store, ids never read; OS page cache not droppable here)"
            },
            cold,
        );
        let _ = measure(&store, &warm_ids, Read::Loader).await;
        let warm = measure(&store, &warm_ids, Read::Loader).await;
        report("loader, warm (same ids read once before)", warm);
        let baseline = measure(&store, &warm_ids, Read::OwnTraces).await;
        report(
            "baseline: own traces only, warm (misses the inherited consumers)",
            baseline,
        );
        measure_where(&store, flows).await;
    });
}

/// Sample correlation IDs spread over the whole store: one set for cold, one for warm.
fn samples(flows: usize) -> (Vec<usize>, Vec<usize>) {
    let stride = flows / (2 * SAMPLES);
    let cold = (0..SAMPLES).map(|i| 2 * i * stride).collect();
    let warm = (0..SAMPLES).map(|i| (2 * i + 1) * stride).collect();
    (cold, warm)
}

/// The warm loader and its baseline on PostgreSQL, in a schema kept between runs.
async fn postgres(url: &str, flows: usize) {
    use sqlx::Connection;
    let schema = format!("flow_bench_{}", flows * SPANS_PER_FLOW);
    let separator = if url.contains('?') { '&' } else { '?' };
    let database = Database::parse(&format!("{url}{separator}options[search_path]={schema}"))
        .expect("a PostgreSQL URL");
    let mut admin = sqlx::PgConnection::connect(url)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the bench database: {e}"));
    let complete: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM information_schema.tables \
         WHERE table_schema = $1 AND table_name = 'bench_complete')",
    )
    .bind(&schema)
    .fetch_one(&mut admin)
    .await
    .unwrap();
    if complete {
        println!("reusing PostgreSQL schema {schema}");
    } else {
        for statement in [
            format!("DROP SCHEMA IF EXISTS {schema} CASCADE"),
            format!("CREATE SCHEMA {schema}"),
        ] {
            sqlx::query(sqlx::AssertSqlSafe(statement))
                .execute(&mut admin)
                .await
                .unwrap();
        }
        let store = Store::open(database.clone())
            .await
            .expect("create bench store");
        write_flows(&store, flows).await;
        store.close().await;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE TABLE {schema}.bench_complete ()"
        )))
        .execute(&mut admin)
        .await
        .unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("ANALYZE {schema}.spans")))
            .execute(&mut admin)
            .await
            .unwrap();
    }
    let (_, warm_ids) = samples(flows);
    let store = Store::open_read_only(database)
        .await
        .expect("open read-only");
    measure_warm(&store, &warm_ids, "PostgreSQL, ").await;
}

/// The warm loader (after one pass over the same ids) and its baseline, reported with
/// `prefix` before their labels.
async fn measure_warm(store: &Store, warm_ids: &[usize], prefix: &str) {
    let _ = measure(store, warm_ids, Read::Loader).await;
    report(
        &format!("{prefix}loader, warm"),
        measure(store, warm_ids, Read::Loader).await,
    );
    report(
        &format!("{prefix}baseline: own traces only, warm"),
        measure(store, warm_ids, Read::OwnTraces).await,
    );
}

/// Runs of each `flows --where` search.
const WHERE_RUNS: usize = 40;
/// Correlations `flows` asks the search for: first twice its default `--limit 50`, at
/// most its scan cap of 2,000 when too few of those pass the other filters.
const WHERE_ASKS: [i64; 2] = [100, 2_000];

/// What `flows --where key=value` adds before it rebuilds the flows it lists: the attribute
/// search, then the newest-first page of those correlations. Timed warm, for a value on
/// every span, one on a recent flow's spans, one on the oldest flows' spans, and one
/// carried by no span; the baseline is the same page without `--where`.
async fn measure_where(store: &Store, flows: usize) {
    let timed = |runs: Vec<Duration>| {
        let mut times = runs;
        // The first run warms the cache.
        times.remove(0);
        times.sort_unstable();
        let at = |q: f64| times[((times.len() as f64 - 1.0) * q).round() as usize];
        format!(
            "warm n={} p50={:.2?} p99={:.2?} max={:.2?}",
            times.len(),
            at(0.50),
            at(0.99),
            at(1.0)
        )
    };
    let mut runs = Vec::with_capacity(WHERE_RUNS + 1);
    let mut found = 0;
    for _ in 0..WHERE_RUNS + 1 {
        let started = Instant::now();
        let query = causeway_storage::CorrelationQuery {
            limit: 200,
            ..Default::default()
        };
        found = store.recent_correlations(&query).await.expect("page").len();
        runs.push(started.elapsed());
    }
    println!(
        "baseline: flows' first page without --where: {found} rows; {}",
        timed(runs)
    );
    let recent = correlation_id(flows - 3);
    let old = correlation_id(1);
    let cases = [
        ("on every span", "messaging.system", "kafka".to_owned()),
        (
            "a recent flow's",
            "messaging.message.conversation_id",
            recent,
        ),
        ("an old flow's", "messaging.message.conversation_id", old),
        ("on no span", "payment.method", "cheque".to_owned()),
    ];
    for ask in WHERE_ASKS {
        for (what, key, value) in &cases {
            let filters = vec![((*key).to_owned(), value.clone())];
            let mut runs = Vec::with_capacity(WHERE_RUNS + 1);
            let mut found = 0;
            for _ in 0..WHERE_RUNS + 1 {
                let started = Instant::now();
                let ids = store
                    .correlations_with_attributes(&filters, ask)
                    .await
                    .expect("attribute search");
                let rows = if ids.is_empty() {
                    Vec::new()
                } else {
                    let query = causeway_storage::CorrelationQuery {
                        correlation_ids: Some(ids),
                        limit: 200,
                        ..Default::default()
                    };
                    store.recent_correlations(&query).await.expect("page")
                };
                runs.push(started.elapsed());
                found = rows.len();
            }
            println!(
                "flows --where {key}={value} ({what}), asking {ask}: {found} flows listed; {}",
                timed(runs)
            );
        }
    }
}

fn data_path(flows: usize) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target
        .join("bench-data")
        .join(format!("flow-{}.db", flows * SPANS_PER_FLOW))
}

/// Generates the store unless a complete one is cached. The marker names the schema the
/// store was written with, so a store cached by an older build is regenerated.
async fn ensure_store(path: &Path, flows: usize) {
    let done = path.with_extension(format!("complete-schema{SCHEMA_VERSION}"));
    if done.exists() {
        println!("reusing {}", path.display());
        return;
    }
    let _ = std::fs::remove_file(path);
    let store = Store::open(path).await.expect("create bench store");
    let started = Instant::now();
    write_flows(&store, flows).await;
    store.close().await;
    std::fs::write(&done, b"").expect("mark complete");
    println!("generated {} in {:.0?}", path.display(), started.elapsed());
}

/// Writes `flows` flows through the storage API, printing progress.
async fn write_flows(store: &Store, flows: usize) {
    let started = Instant::now();
    let mut written = 0;
    for first in (0..flows).step_by(BATCH_FLOWS) {
        let mut records = Vec::with_capacity(BATCH_FLOWS * SPANS_PER_FLOW);
        for flow in first..(first + BATCH_FLOWS).min(flows) {
            records.extend(flow_spans(flow));
        }
        written += records.len();
        store
            .write_spans(vec![EncodedSpans::encode(&records)])
            .await
            .expect("write spans");
        if first % (BATCH_FLOWS * 500) == 0 {
            let rate = written as f64 / started.elapsed().as_secs_f64();
            println!("generated {written} spans ({rate:.0} spans/s)");
        }
    }
}

/// One 200-span correlation: a root, then 66 messages, each sent once and processed by
/// two groups; every 11th message is processed in a new trace whose spans carry no
/// correlation ID and only link to the send, as standard instrumentations' consumers do
/// (Python's confluent-kafka, kafkajs `eachBatch`, .NET): the flow inherits them.
fn flow_spans(flow: usize) -> Vec<SpanRecord> {
    let correlation = correlation_id(flow);
    let base = T0 + i64::try_from(flow).unwrap_or(0) * 1_000 * MS;
    let trace = |n: usize| {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&(flow as u64).to_be_bytes());
        bytes[8..].copy_from_slice(
            &(n as u64 + 1)
                .wrapping_mul(0x9e37_79b9_7f4a_7c15)
                .to_be_bytes(),
        );
        TraceId(bytes)
    };
    let mut next_span = 0u64;
    let mut span_id = || {
        next_span += 1;
        SpanId((((flow as u64) << 16) | next_span).to_be_bytes())
    };
    let root_id = span_id();
    let mut spans = vec![record(
        trace(0),
        root_id,
        None,
        "order-service",
        "POST /orders",
        base,
        base + 5 * MS,
        &correlation,
    )];
    for message in 0..MESSAGES_PER_FLOW {
        let at = base + i64::try_from(message).unwrap_or(0) * 10 * MS;
        let topic = TOPICS[message % TOPICS.len()];
        let message_id = format!("{correlation}-m{message}");
        let send_id = span_id();
        let mut send = record(
            trace(0),
            send_id,
            Some(root_id),
            SERVICES[message % 3],
            "send",
            at + MS,
            at + 2 * MS,
            &correlation,
        );
        send.kind = SpanKind::Producer;
        send.messaging.destination = Some(topic.to_owned());
        send.messaging.message_id = Some(message_id.clone());
        send.messaging.event_type = Some("order.placed.v1".to_owned());
        send.messaging.operation_type = Some("send".to_owned());
        spans.push(send);
        for (g, group) in GROUPS.iter().enumerate() {
            let process_trace = if message % 11 == 10 {
                trace(message)
            } else {
                trace(0)
            };
            let start = at + (3 + i64::try_from(g).unwrap_or(0)) * MS;
            let mut process = record(
                process_trace,
                span_id(),
                (process_trace == trace(0)).then_some(send_id),
                group,
                "process",
                start,
                start + 4 * MS,
                &correlation,
            );
            if process_trace != trace(0) {
                process.messaging.correlation_id = None;
                process
                    .attributes
                    .remove("messaging.message.conversation_id");
            }
            process.kind = SpanKind::Consumer;
            process.links.push(SpanLink {
                trace_id: trace(0),
                span_id: send_id,
                attributes: Map::new(),
            });
            process.messaging.destination = Some(topic.to_owned());
            process.messaging.message_id = Some(message_id.clone());
            process.messaging.consumer_group = Some((*group).to_owned());
            process.messaging.operation_type = Some("process".to_owned());
            if message % 50 == 49 {
                process.status_code = StatusCode::Error;
                process.status_message = "timeout".to_owned();
            }
            spans.push(process);
        }
    }
    let tail_id = span_id();
    spans.push(record(
        trace(0),
        tail_id,
        Some(root_id),
        "order-service",
        "respond",
        base + 5 * MS,
        base + 6 * MS,
        &correlation,
    ));
    spans
}

#[allow(clippy::too_many_arguments)]
fn record(
    trace_id: TraceId,
    span_id: SpanId,
    parent: Option<SpanId>,
    service: &str,
    name: &str,
    start_ns: i64,
    end_ns: i64,
    correlation: &str,
) -> SpanRecord {
    let mut attributes = Map::new();
    attributes.insert("messaging.system".to_owned(), Value::from("kafka"));
    attributes.insert(
        "messaging.message.conversation_id".to_owned(),
        Value::from(correlation),
    );
    let mut resource = Map::new();
    resource.insert("service.name".to_owned(), Value::from(service));
    SpanRecord {
        trace_id,
        span_id,
        parent_span_id: parent,
        name: name.to_owned(),
        kind: SpanKind::Internal,
        service_name: service.to_owned(),
        scope_name: "bench".to_owned(),
        start_ns,
        end_ns,
        status_code: StatusCode::Unset,
        status_message: String::new(),
        attributes,
        resource,
        events: Vec::new(),
        links: Vec::new(),
        messaging: Messaging {
            correlation_id: Some(correlation.to_owned()),
            ..Messaging::default()
        },
    }
}

fn correlation_id(flow: usize) -> String {
    format!("ord-{flow:08}")
}

/// How a flow's spans are read.
#[derive(Clone, Copy, PartialEq)]
enum Read {
    /// `causeway flow ID`: the one loader, following links out of the correlation's traces.
    Loader,
    /// The baseline: the spans of the correlation's own traces only (one query), which
    /// misses the inherited consumers.
    OwnTraces,
}

/// Query (flow spans and topology) plus reconstruction, per correlation id.
async fn measure(store: &Store, flows: &[usize], read: Read) -> Vec<Duration> {
    let options = FlowOptions::default();
    let mut times = Vec::with_capacity(flows.len());
    let mut rebuild_time = Duration::ZERO;
    for &flow in flows {
        let started = Instant::now();
        let spans = match read {
            Read::Loader => {
                load_spans(store, &correlation_id(flow))
                    .await
                    .expect("flow spans")
                    .expect("the flow exists")
                    .spans
            }
            Read::OwnTraces => store
                .flow_spans(&[correlation_id(flow)], 20_000)
                .await
                .expect("flow spans"),
        };
        let topology = Topology::from_pairs(store.topology().await.expect("topology"));
        let rebuild_started = Instant::now();
        let rebuilt = reconstruct(&spans, &topology, &options);
        rebuild_time += rebuild_started.elapsed();
        times.push(started.elapsed());
        if read == Read::Loader {
            assert_eq!(
                rebuilt.steps.len(),
                SPANS_PER_FLOW,
                "flow {flow}: inherited spans"
            );
        }
    }
    println!(
        "  of which reconstruction alone: mean {:.2?}",
        rebuild_time / u32::try_from(flows.len().max(1)).unwrap_or(1)
    );
    times
}

fn report(label: &str, mut times: Vec<Duration>) {
    times.sort_unstable();
    let at = |q: f64| times[((times.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "flow query + reconstruction, {SPANS_PER_FLOW}-span correlations, {label}: n={} p50={:.2?} p99={:.2?} max={:.2?}",
        times.len(),
        at(0.50),
        at(0.99),
        at(1.0)
    );
}

/// Drops the OS page cache when allowed (root outside a sandbox); false otherwise.
fn drop_page_cache() -> bool {
    std::fs::write("/proc/sys/vm/drop_caches", b"3\n").is_ok()
}
