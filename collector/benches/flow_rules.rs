//! Flow rule pass benchmark: one pass of the collector's flow rules (the built-in ones, and
//! an error rule) over 100,000 new spans in a real SQLite file, beside the baseline of only
//! reading the same rows in chunks on one connection (the pass reads two chunks at once),
//! in the same run. Target: a pass over 100,000 new spans in at most 200 ms.
//!
//! `cargo bench -p causeway-collector --bench flow_rules -- [spans] [rounds]`; with
//! `CAUSEWAY_BENCH_PG=postgres://…` the same on a PostgreSQL store (a schema of its own in
//! that database, dropped afterwards). With `CAUSEWAY_BENCH_SENDS_FIRST=1` each export of
//! 10,000 spans is written as two, its sends and then the rest, as when producers and
//! consumers export apart: most consumptions then fall in a later range than their send,
//! and find its due item in the store instead of in their own range.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

/// The allocator the `causeway` binary runs the collector with. The binary also hands it
/// to SQLite (`src/allocator.rs`); here SQLite keeps the C library's `malloc`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::{Duration, Instant};

use causeway_collector::flow_rules::config::RawFlowRule;
use causeway_collector::flow_rules::service::{CHUNK_SPANS, FlowRuleService, MAX_PASS_ROWS};
use causeway_collector::flows_config::FlowsConfig;
use causeway_storage::testsuite::{PgTestSchema, span};
use causeway_storage::{
    Database, EncodedSpans, SpanId, SpanKind, SpanRecord, Store, TraceId, now_ns,
};

/// Spans per order: the order sent, billing and inventory processing it, billing's payment
/// sent, shipping processing it.
const SPANS_PER_ORDER: u64 = 5;

fn ids(order: u64, step: u8) -> (TraceId, SpanId) {
    let mut trace = [0u8; 16];
    trace[..8].copy_from_slice(&(order + 1).to_be_bytes());
    trace[8] = 0xab;
    let mut span_id = [0u8; 8];
    span_id[..7].copy_from_slice(&(order + 1).to_be_bytes()[1..]);
    span_id[7] = step;
    (TraceId(trace), SpanId(span_id))
}

/// One order's spans, like the demo shop's: every thousandth is dead-lettered by
/// inventory, every five hundredth never reaches shipping.
fn order(order: u64, start_ns: i64) -> Vec<SpanRecord> {
    let correlation = format!("ord-{order}");
    let at = |step: u8| start_ns + i64::from(step) * 1_000_000;
    let (trace, send) = ids(order, 1);
    let offset = i64::try_from(order).unwrap();
    let mut spans = vec![
        span(trace, send)
            .service("order-service")
            .send("orders")
            .correlation(&correlation)
            .event_type("order.placed.v1")
            .message_id(format!("o{order}"))
            .partition(offset % 6)
            .offset(offset)
            .times(at(1), at(1) + 500)
            .build(),
        span(trace, ids(order, 2).1)
            .service("billing-service")
            .process("orders", "billing")
            .parent(send)
            .correlation(&correlation)
            .event_type("order.placed.v1")
            .times(at(2), at(2) + 500)
            .build(),
    ];
    let inventory = span(trace, ids(order, 3).1)
        .service("inventory-service")
        .process("orders", "inventory")
        .parent(send)
        .correlation(&correlation)
        .event_type("order.placed.v1")
        .times(at(2), at(2) + 500);
    if order % 1_000 == 999 {
        spans.push(inventory.error("cannot parse order").build());
        spans.push(
            span(trace, ids(order, 4).1)
                .service("inventory-service")
                .send("orders.dlq")
                .parent(ids(order, 3).1)
                .correlation(&correlation)
                .times(at(3), at(3) + 500)
                .build(),
        );
    } else {
        spans.push(inventory.build());
        let payment = ids(order, 4).1;
        spans.push(
            span(trace, payment)
                .service("billing-service")
                .send("payments")
                .parent(ids(order, 2).1)
                .correlation(&correlation)
                .event_type("payment.captured.v1")
                .times(at(3), at(3) + 500)
                .build(),
        );
        if order % 500 != 499 {
            spans.push(
                span(trace, ids(order, 5).1)
                    .service("shipping-service")
                    .process("payments", "shipping")
                    .parent(payment)
                    .correlation(&correlation)
                    .times(at(4), at(4) + 500)
                    .build(),
            );
        }
    }
    spans
}

async fn write_orders(store: &Store, first: u64, spans: u64, start_ns: i64) -> u64 {
    let mut written = 0;
    let mut next = first;
    while written < spans {
        let mut batch = Vec::new();
        while batch.len() < 10_000 && written + (batch.len() as u64) < spans {
            batch.extend(order(next, start_ns + i64::try_from(next).unwrap() * 1_000));
            next += 1;
        }
        written += batch.len() as u64;
        let exports: Vec<Vec<SpanRecord>> = if sends_first() {
            let (sends, rest) = batch
                .into_iter()
                .partition(|s| s.kind == SpanKind::Producer);
            vec![sends, rest]
        } else {
            vec![batch]
        };
        for export in exports {
            store
                .write_spans(vec![EncodedSpans::encode(&export)])
                .await
                .unwrap();
        }
    }
    next
}

/// Whether an export's sends are written before the rest of it, apart.
fn sends_first() -> bool {
    std::env::var_os("CAUSEWAY_BENCH_SENDS_FIRST").is_some_and(|v| v == "1")
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let spans = args.first().copied().unwrap_or(100_000);
    let rounds = args.get(1).copied().unwrap_or(3);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let schema = match std::env::var("CAUSEWAY_BENCH_PG") {
            Ok(url) => Some(PgTestSchema::create_in(url).await),
            Err(_) => None,
        };
        let (database, backend) = match &schema {
            Some(schema) => (Database::parse(&schema.url).unwrap(), "postgres"),
            None => (Database::from(dir.path().join("bench.db")), "sqlite"),
        };
        let store = Store::open(database).await.unwrap();
        let start_ns = now_ns() - 600 * 1_000_000_000;
        // Seed the topology (who processes what) before the service starts.
        let mut next = write_orders(&store, 0, SPANS_PER_ORDER * 10, start_ns).await;
        let mut config = FlowsConfig::default();
        config.rules.push(RawFlowRule {
            kind: Some("error".into()),
            ..RawFlowRule::default()
        });
        let settings = config.rule_settings().unwrap();
        let rule_names: Vec<String> = settings.rules.iter().map(|r| r.name.clone()).collect();
        let mut service = FlowRuleService::new(store.clone(), settings, Vec::new())
            .await
            .unwrap();
        let rules_store = store.flow_rule_store().unwrap();
        println!(
            "flow rules on {backend}: {} ({} spans per chunk)",
            rule_names.join(", "),
            CHUNK_SPANS
        );
        let mut passes = Vec::new();
        for round in 1..=rounds {
            let cursor = rules_store.newest_position().await.unwrap();
            next = write_orders(&store, next, spans, start_ns).await;
            // Baseline: only reading the new rows, range by range on one connection (the
            // pass reads two ranges at once).
            let started = Instant::now();
            let mut read = 0;
            for (after, through) in rules_store
                .pass_ranges(cursor, CHUNK_SPANS, MAX_PASS_ROWS)
                .await
                .unwrap()
            {
                read += rules_store
                    .spans_in(after, through, false)
                    .await
                    .unwrap()
                    .len();
            }
            let read_time = started.elapsed();
            // The pass, past the 5m wait, so the events nobody processed fall due in it.
            let started = Instant::now();
            let report = service.pass(now_ns() + 360 * 1_000_000_000).await.unwrap();
            let pass_time = started.elapsed();
            assert_eq!(report.spans, read, "the pass read exactly the new spans");
            passes.push(pass_time);
            println!(
                "round {round}: pass over {} new spans {:.1} ms ({:.0} spans/s; {} matches, \
                 {} overdue, {} firing); read-only baseline {:.1} ms; pass/read {:.2}x",
                report.spans,
                millis(pass_time),
                report.spans as f64 / pass_time.as_secs_f64(),
                report.matches,
                report.overdue,
                report.firing,
                millis(read_time),
                pass_time.as_secs_f64() / read_time.as_secs_f64().max(1e-9)
            );
        }
        passes.sort();
        let worst = passes.last().copied().unwrap_or_default();
        println!(
            "flow rule pass on {backend} over {spans} new spans: median {:.1} ms, worst {:.1} ms \
             (target <= 200 ms: {})",
            millis(passes[passes.len() / 2]),
            millis(worst),
            if millis(worst) <= 200.0 {
                "met"
            } else {
                "MISSED"
            }
        );
        drop(service);
        store.close().await;
        if let Some(schema) = schema {
            schema.drop().await;
        }
    });
}
