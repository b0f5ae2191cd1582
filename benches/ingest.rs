//! Ingest benchmark: drives the release `causeway collector` over OTLP/gRPC with realistic
//! spans from several concurrent clients and prints spans/s committed, request latency and
//! the collector's peak RSS; in the same run, the raw SQLite insert rate of the same rows
//! (same schema and indexes, multi-row inserts, large transactions) and the ratio; then the
//! ingest-to-visible latency at a fixed 10k spans/s.
//!
//! Run: `cargo bench --bench ingest`. Knobs (environment):
//! - `CAUSEWAY_BENCH_SPANS` spans to ingest at full rate (default 1,000,000; the 10M-span
//!   growth run is `CAUSEWAY_BENCH_SPANS=10000000 cargo bench --bench ingest`, ~4 minutes for
//!   the collector and as long again for the raw baseline);
//! - `CAUSEWAY_BENCH_CLIENTS` concurrent gRPC clients (default 4);
//! - `CAUSEWAY_BENCH_VISIBLE_SECS` seconds of the fixed-rate visibility phase (default 10);
//! - `CAUSEWAY_BENCH_RAW_ONLY=1` measures only the raw SQLite baseline;
//! - `CAUSEWAY_BENCH_IDS=sequential` makes trace and span ids grow per client instead of
//!   looking random as W3C ids do (shows what id locality is worth to the indexes);
//! - `CAUSEWAY_BENCH_CORRELATIONS=uuid` makes correlation IDs random UUIDs instead of
//!   order ids that grow per client;
//! - `CAUSEWAY_BENCH_PG=postgres://…` (or `CAUSEWAY_TEST_PG`) also runs the full-rate phase
//!   with the collector writing to that PostgreSQL database (in a schema of its own,
//!   dropped afterwards) and prints its rate beside SQLite's, then the raw `COPY` rate of
//!   the same rows into the store's PostgreSQL tables (measured before the collectors and
//!   after them) and the ratio to their mean; the full-rate phase runs twice there, with
//!   one collector and with two on the same database (the clients split between them),
//!   and says how busy the machine's CPUs were in each;
//! - `CAUSEWAY_BENCH_ONLY=postgres` runs only the PostgreSQL phases;
//! - `CAUSEWAY_BENCH_BIN=PATH` runs another build's `causeway` (an older commit's, to
//!   compare two builds in the same minutes).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/e2e/harness.rs"]
mod harness;
#[path = "ingest/process_cpu.rs"]
mod process_cpu;
#[path = "ingest/raw_postgres.rs"]
mod raw_postgres;
#[path = "ingest/raw_sqlite.rs"]
mod raw_sqlite;
#[path = "ingest/workload.rs"]
mod workload;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use tokio::sync::mpsc;

use harness::{CollectorProcess, temp_dir};
use workload::{SPANS_PER_REQUEST, Workload};

/// The fixed rate of the visibility phase.
const VISIBLE_RATE_SPANS_PER_SEC: u64 = 10_000;
/// Spans per request in the visibility phase (10 requests a second of 1,000 would be
/// burstier; 100 spans every 10 ms is a steady stream).
const VISIBLE_SPANS_PER_REQUEST: usize = 100;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

/// The value at quantile `q` (0..=1) of sorted durations.
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[index]
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// Full-rate phase: `clients` tasks send until `total_spans` are acknowledged, each to one
/// of `collectors` in turn.
async fn full_rate(collectors: &[&CollectorProcess], total_spans: u64, clients: u64) -> f64 {
    let requests_total = total_spans.div_ceil(SPANS_PER_REQUEST as u64);
    let next_request = Arc::new(AtomicU64::new(0));
    let acked_spans = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client_index in 0..clients {
        let endpoint = collectors[client_index as usize % collectors.len()].grpc_endpoint();
        let next_request = Arc::clone(&next_request);
        let acked_spans = Arc::clone(&acked_spans);
        tasks.push(tokio::spawn(async move {
            let mut client = TraceServiceClient::connect(endpoint)
                .await
                .expect("connect to the collector");
            let mut workload = Workload::new(client_index, SPANS_PER_REQUEST);
            let mut latencies = Vec::new();
            while next_request.fetch_add(1, Ordering::Relaxed) < requests_total {
                let request = workload.next_request();
                let sent = Instant::now();
                let mut backoff = Duration::from_millis(10);
                loop {
                    match client.export(request.clone()).await {
                        Ok(_) => break,
                        Err(status) if status.code() == tonic::Code::Unavailable => {
                            // Back-pressure: retry the same batch, as an exporter would.
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(Duration::from_millis(500));
                        }
                        Err(status) => panic!("export failed: {status}"),
                    }
                }
                latencies.push(sent.elapsed());
                acked_spans.fetch_add(SPANS_PER_REQUEST as u64, Ordering::Relaxed);
            }
            latencies
        }));
    }
    // Progress, one line per tenth, so a slowdown as the store grows shows.
    let reporter = {
        let acked_spans = Arc::clone(&acked_spans);
        tokio::spawn(async move {
            let step = (total_spans / 10).max(1);
            let mut next_mark = step;
            let mut last = (Instant::now(), 0_u64);
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let acked = acked_spans.load(Ordering::Relaxed);
                if acked >= next_mark {
                    let rate = (acked - last.1) as f64 / last.0.elapsed().as_secs_f64();
                    println!("  stored {acked:>11} spans: {rate:>9.0} spans/s over the last tenth");
                    last = (Instant::now(), acked);
                    next_mark += step;
                }
                if acked >= total_spans {
                    break;
                }
            }
        })
    };
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("client task"));
    }
    let elapsed = started.elapsed();
    reporter.abort();
    latencies.sort_unstable();
    let acked = acked_spans.load(Ordering::Relaxed);
    let rate = acked as f64 / elapsed.as_secs_f64();
    let who = match collectors.len() {
        1 => "collector".to_owned(),
        n => format!("{n} collectors"),
    };
    println!(
        "{who}: {acked} spans in {:.1} s = {rate:.0} spans/s committed ({clients} clients, \
         {SPANS_PER_REQUEST}-span requests)",
        elapsed.as_secs_f64()
    );
    println!(
        "collector: request latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        millis(quantile(&latencies, 0.50)),
        millis(quantile(&latencies, 0.99)),
        millis(quantile(&latencies, 1.0)),
    );
    rate
}

/// Fixed-rate phase: send at 10k spans/s; a separate reader polls each request's last
/// span through a read-only connection and times send → visible. The reader takes the
/// requests one after the other, so it also reports how late it started looking, and the
/// requests' acknowledgement times are printed beside: a visibility figure far above both
/// would be the reader's, not the collector's.
async fn visibility(collector: &CollectorProcess, db: &std::path::Path, seconds: u64) {
    let (found_tx, mut found_rx) = mpsc::unbounded_channel::<([u8; 16], [u8; 8], Instant)>();
    let db = db.to_owned();
    let checker = std::thread::spawn(move || {
        let connection = rusqlite::Connection::open_with_flags(
            &db,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .expect("open the store read-only");
        let mut statement = connection
            .prepare(
                "SELECT 1 FROM spans WHERE segment IN (SELECT segment FROM span_segments) \
                 AND trace_id = ?1 AND span_id = ?2",
            )
            .expect("prepare the visibility probe");
        let mut latencies = Vec::new();
        let mut started_late = Vec::new();
        while let Some((trace_id, span_id, sent)) = found_rx.blocking_recv() {
            started_late.push(sent.elapsed());
            let deadline = sent + Duration::from_secs(30);
            loop {
                let visible = statement
                    .exists(rusqlite::params![&trace_id[..], &span_id[..]])
                    .expect("probe the store");
                if visible {
                    latencies.push(sent.elapsed());
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "a span was not visible within 30 s"
                );
                std::thread::sleep(Duration::from_micros(500));
            }
        }
        (latencies, started_late)
    });

    let client = TraceServiceClient::connect(collector.grpc_endpoint())
        .await
        .expect("connect to the collector");
    let mut workload = Workload::new(1_000, VISIBLE_SPANS_PER_REQUEST);
    let interval = Duration::from_secs_f64(
        VISIBLE_SPANS_PER_REQUEST as f64 / VISIBLE_RATE_SPANS_PER_SEC as f64,
    );
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let requests = seconds * VISIBLE_RATE_SPANS_PER_SEC / VISIBLE_SPANS_PER_REQUEST as u64;
    let mut in_flight = tokio::task::JoinSet::new();
    let mut acknowledged = Vec::new();
    for _ in 0..requests {
        ticker.tick().await;
        let request = workload.next_request();
        let (trace_id, span_id) = Workload::last_ids(&request);
        let mut client = client.clone();
        let found_tx = found_tx.clone();
        in_flight.spawn(async move {
            let sent = Instant::now();
            let _ = found_tx.send((trace_id, span_id, sent));
            client.export(request).await.expect("export at 10k spans/s");
            sent.elapsed()
        });
        while let Some(took) = in_flight.try_join_next() {
            acknowledged.push(took.expect("export task"));
        }
    }
    while let Some(took) = in_flight.join_next().await {
        acknowledged.push(took.expect("export task"));
    }
    drop(found_tx);
    let (mut latencies, mut started_late) = checker.join().expect("visibility checker");
    latencies.sort_unstable();
    started_late.sort_unstable();
    acknowledged.sort_unstable();
    println!(
        "visible: ingest → readable at {VISIBLE_RATE_SPANS_PER_SEC} spans/s over {seconds} s \
         ({} requests): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        latencies.len(),
        millis(quantile(&latencies, 0.50)),
        millis(quantile(&latencies, 0.99)),
        millis(quantile(&latencies, 1.0)),
    );
    println!(
        "visible: the same requests acknowledged p50 {:.1} ms, p99 {:.1} ms; the reader \
         started looking p50 {:.1} ms, p99 {:.1} ms after the send",
        millis(quantile(&acknowledged, 0.50)),
        millis(quantile(&acknowledged, 0.99)),
        millis(quantile(&started_late, 0.50)),
        millis(quantile(&started_late, 0.99)),
    );
}

/// Samples a process's resident set size on a thread until stopped.
struct RssSampler {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<u64>,
}

impl RssSampler {
    fn start(pid: u32) -> Self {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut max_kib = 0;
            while !stopped.load(Ordering::Relaxed) {
                max_kib = max_kib.max(harness::rss_kib(pid).unwrap_or(0));
                std::thread::sleep(Duration::from_millis(250));
            }
            max_kib
        });
        RssSampler { stop, thread }
    }

    /// The largest sample seen, in KiB.
    fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("the RSS sampler")
    }
}

fn main() {
    let total_spans = env_number("CAUSEWAY_BENCH_SPANS", 1_000_000);
    let clients = env_number("CAUSEWAY_BENCH_CLIENTS", 4).max(1);
    let visible_secs = env_number("CAUSEWAY_BENCH_VISIBLE_SECS", 10).max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let dir = temp_dir();
    let db = dir.path().join("bench.db");
    println!(
        "ingest bench: {total_spans} spans, {clients} clients, binary {}",
        harness::causeway_bin().display()
    );
    let postgres_url = std::env::var("CAUSEWAY_BENCH_PG")
        .or_else(|_| std::env::var("CAUSEWAY_TEST_PG"))
        .ok();

    if std::env::var_os("CAUSEWAY_BENCH_RAW_ONLY").is_some() {
        let raw_rate =
            raw_sqlite::insert_rate(&dir.path().join("raw.db"), total_spans, SPANS_PER_REQUEST);
        println!("raw sqlite: {raw_rate:.0} span rows/s (same rows, schema and indexes)");
        return;
    }
    if std::env::var("CAUSEWAY_BENCH_ONLY").as_deref() == Ok("postgres") {
        let url = postgres_url.expect("CAUSEWAY_BENCH_ONLY=postgres needs CAUSEWAY_BENCH_PG");
        let rates = runtime.block_on(postgres_rates(&url, total_spans, clients));
        rates.print(None);
        return;
    }
    let collector = CollectorProcess::start(&db, &[]);
    let collector_rate = runtime.block_on(full_rate(&[&collector], total_spans, clients));
    let peak = collector.peak_rss_kib().unwrap_or(0);
    println!(
        "collector: peak RSS (VmHWM) {:.1} MiB after the full-rate phase",
        peak as f64 / 1024.0
    );
    let steady = RssSampler::start(collector.pid());
    runtime.block_on(visibility(&collector, &db, visible_secs));
    let steady_max_kib = steady.stop();
    println!(
        "collector: steady RSS (VmRSS, sampled every 250 ms) at {VISIBLE_RATE_SPANS_PER_SEC} \
         spans/s: max {:.1} MiB",
        steady_max_kib as f64 / 1024.0
    );
    let peak = collector.peak_rss_kib().unwrap_or(0);
    println!(
        "collector: peak RSS (VmHWM) {:.1} MiB overall",
        peak as f64 / 1024.0
    );
    drop(collector);
    // A 10M-span store takes several GiB; the raw run needs the room.
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }

    let postgres =
        postgres_url.map(|url| runtime.block_on(postgres_rates(&url, total_spans, clients)));

    let raw_db = dir.path().join("raw.db");
    let raw_rate = raw_sqlite::insert_rate(&raw_db, total_spans, SPANS_PER_REQUEST);
    println!("raw sqlite: {raw_rate:.0} span rows/s (same rows, schema and indexes)");
    println!(
        "ratio: collector / raw sqlite = {:.0}%",
        100.0 * collector_rate / raw_rate.max(1.0)
    );
    match postgres {
        Some(rates) => rates.print(Some(collector_rate)),
        None => println!("postgres collector: not measured (set CAUSEWAY_BENCH_PG)"),
    }
}

/// The PostgreSQL phases' figures: spans per second, and the server's CPU time per span.
struct PostgresRates {
    /// One collector.
    one: Phase,
    /// Two collectors on the same database, the clients split between them.
    two: Phase,
    /// The raw `COPY` baseline, measured before the collectors and again after them (this
    /// machine's speed drifts over a run; the ratio is to their mean).
    copy: [Phase; 2],
}

/// One phase's rate, what it cost the server, and how busy it kept the machine.
#[derive(Clone, Copy)]
pub struct Phase {
    /// Spans (or span rows) per second.
    pub rate: f64,
    /// The PostgreSQL server's CPU time per span, in microseconds.
    pub server_us: f64,
    /// The share of all the machine's CPU time that was busy, 0 to 1 (`None`: not
    /// measured; the raw `COPY` phase builds its rows between timed transactions).
    pub machine_busy: Option<f64>,
}

impl Phase {
    /// The phase's figures: its `rate`, `server` CPU time spent on its `spans`, and the
    /// machine's busy share.
    pub fn of(rate: f64, spans: u64, server: Duration, machine_busy: Option<f64>) -> Phase {
        Phase {
            rate,
            server_us: server.as_secs_f64() * 1e6 / spans.max(1) as f64,
            machine_busy,
        }
    }
}

impl PostgresRates {
    /// Prints the figures and their ratios (to the SQLite collector's rate when measured).
    fn print(&self, sqlite_collector: Option<f64>) {
        let (one, two) = (self.one.rate, self.two.rate);
        let [before, after] = self.copy;
        let copy = (before.rate + after.rate) / 2.0;
        if let Some(sqlite) = sqlite_collector {
            println!(
                "postgres collector: {one:.0} spans/s committed = {:.0}% of the sqlite \
                 collector's {sqlite:.0} (same spans, clients and machine)",
                100.0 * one / sqlite.max(1.0)
            );
        }
        println!(
            "raw postgres COPY: {:.0} span rows/s before the collectors, {:.0} after, mean \
             {copy:.0} (same rows, the store's tables and indexes, no upsert); postgres \
             collector / raw COPY = {:.0}%",
            before.rate,
            after.rate,
            100.0 * one / copy.max(1.0)
        );
        println!(
            "postgres: one collector {one:.0} spans/s, two collectors {two:.0} spans/s = \
             {:.2}x",
            two / one.max(1.0)
        );
        println!(
            "postgres server CPU per span: one collector {:.1} us, two collectors {:.1} us, \
             raw COPY {:.1} us",
            self.one.server_us,
            self.two.server_us,
            (before.server_us + after.server_us) / 2.0
        );
        // A second collector can only add what the first left of the machine's CPUs.
        if let (Some(one), Some(two)) = (self.one.machine_busy, self.two.machine_busy) {
            println!(
                "machine CPU busy (all {} cores, the clients and the server included): one \
                 collector {:.0}%, two collectors {:.0}%",
                std::thread::available_parallelism().map_or(0, |n| n.get()),
                100.0 * one,
                100.0 * two
            );
        }
    }
}

/// The PostgreSQL phases, each in a schema of its own: the raw `COPY` baseline, the
/// full-rate phase with one collector, then with two on one database, then the baseline
/// again.
async fn postgres_rates(url: &str, total_spans: u64, clients: u64) -> PostgresRates {
    let before = raw_postgres::copy_rate(url, total_spans, SPANS_PER_REQUEST).await;
    let one = postgres_full_rate(url, total_spans, clients, 1).await;
    let two = postgres_full_rate(url, total_spans, clients, 2).await;
    let after = raw_postgres::copy_rate(url, total_spans, SPANS_PER_REQUEST).await;
    PostgresRates {
        one,
        two,
        copy: [before, after],
    }
}

/// The full-rate phase again, with `collectors` collectors writing to PostgreSQL: a schema
/// of its own in the database `url` names, dropped afterwards.
async fn postgres_full_rate(url: &str, total_spans: u64, clients: u64, collectors: usize) -> Phase {
    let schema = raw_postgres::BenchSchema::create(url, "bench").await;
    println!("postgres: the same full-rate phase, {collectors} collector(s) on PostgreSQL");
    let started: Vec<CollectorProcess> = (0..collectors)
        .map(|_| CollectorProcess::start(std::path::Path::new(&schema.url), &[]))
        .collect();
    let cpu = process_cpu::PostgresCpu::start();
    let machine = process_cpu::MachineCpu::start();
    let rate = full_rate(&started.iter().collect::<Vec<_>>(), total_spans, clients).await;
    let server = cpu.used();
    let busy = machine.busy();
    drop(started);
    schema.drop().await;
    Phase::of(rate, total_spans, server, Some(busy))
}
