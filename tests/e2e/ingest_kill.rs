//! Durability: SIGKILL the collector during a steady load, then every span whose request
//! was acknowledged must be in the database (success is answered only after commit).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use crate::harness::{CollectorProcess, temp_dir, wait_until};
use crate::ingest::stored_trace;
use crate::ingest_otlp::{grpc_client, trace_request};

/// Concurrent senders during the load.
const SENDERS: usize = 4;
/// Spans in each request (one trace per request).
const SPANS_PER_REQUEST: usize = 50;
/// Acknowledged requests to see before the kill, so the kill lands in a steady load.
const ACKS_BEFORE_KILL: usize = 40;
/// No sender runs longer than this, whatever happens.
const LOAD_LIMIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_spans_survive_sigkill() {
    let dir = temp_dir();
    let db = dir.path().join("kill.db");
    let mut collector = CollectorProcess::start(&db, &[]);
    let acked: Arc<Mutex<Vec<[u8; 16]>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));

    let mut senders = Vec::new();
    for sender in 0..SENDERS {
        let acked = Arc::clone(&acked);
        let stop = Arc::clone(&stop);
        let mut client = grpc_client(collector.grpc_endpoint()).await;
        senders.push(tokio::spawn(async move {
            let started = Instant::now();
            let mut failures = 0_usize;
            while !stop.load(Ordering::Relaxed) && started.elapsed() < LOAD_LIMIT {
                let (request, trace_id) =
                    trace_request(&format!("kill-sender-{sender}"), SPANS_PER_REQUEST);
                match client.export(request).await {
                    Ok(_) => acked.lock().await.push(trace_id),
                    Err(_) => failures += 1,
                }
            }
            failures
        }));
    }

    let steady = wait_until(Duration::from_secs(30), || {
        acked.try_lock().is_ok_and(|a| a.len() >= ACKS_BEFORE_KILL)
    });
    assert!(
        steady,
        "the load never reached {ACKS_BEFORE_KILL} acknowledged requests\nstderr:\n{}",
        collector.stderr()
    );
    collector.kill();
    stop.store(true, Ordering::Relaxed);
    for sender in senders {
        sender.await.expect("sender task");
    }

    let acked = acked.lock().await.clone();
    assert!(acked.len() >= ACKS_BEFORE_KILL);
    let mut missing = Vec::new();
    for trace_id in &acked {
        let stored = stored_trace(&db, *trace_id).await.len();
        if stored != SPANS_PER_REQUEST {
            missing.push((hex::encode(trace_id), stored));
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged requests are not fully stored after SIGKILL \
         (trace, spans found of {SPANS_PER_REQUEST}): {:?}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(10)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_exits_cleanly() {
    let dir = temp_dir();
    let db = dir.path().join("term.db");
    let mut collector = CollectorProcess::start(&db, &[]);
    let (request, trace_id) = trace_request("term", 10);
    let mut client = grpc_client(collector.grpc_endpoint()).await;
    client.export(request).await.expect("export before SIGTERM");
    let status = collector.terminate();
    assert!(
        status.success(),
        "SIGTERM exit {status}\nstderr:\n{}",
        collector.stderr()
    );
    assert_eq!(stored_trace(&db, trace_id).await.len(), 10);
}
