//! Tests of the batch writer against a real SQLite file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use causeway_storage::testsuite;
use causeway_storage::{SpanId, SpanRecord, TraceId};

fn record(trace: u8, span: u16) -> SpanRecord {
    let [high, low] = span.to_be_bytes();
    testsuite::span(TraceId([trace; 16]), SpanId([1, 1, 1, 1, 1, 1, high, low]))
        .send("orders")
        .service("orders")
        .times(1, 2)
        .build()
}

fn encoded(trace: u8, spans: u16) -> EncodedSpans {
    let records: Vec<_> = (0..spans).map(|span| record(trace, span)).collect();
    EncodedSpans::encode(&records)
}

/// A charge of nothing, for tests about spans only.
fn no_charge() -> Charge {
    crate::memory_budget::MemoryBudget::new(1 << 20).charge()
}

fn options(max_in_flight_spans: usize) -> WriterOptions {
    WriterOptions {
        max_batch_spans: 1_000,
        max_batch_delay: Duration::from_millis(2),
        max_in_flight_spans,
        retention: None,
    }
}

#[tokio::test]
async fn concurrent_submissions_are_acknowledged_after_commit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("writer.db");
    let store = Store::open(&path).await.unwrap();
    let metrics = Arc::new(SelfMetrics::default());
    let (handle, task) = spawn_writer(store, options(10_000), Arc::clone(&metrics));
    let reader = Store::open_read_only(&path).await.unwrap();
    let mut writes = Vec::new();
    for trace in 1..=20u8 {
        let reservation = handle.reserve(50).unwrap();
        writes.push(tokio::spawn(
            reservation.write(encoded(trace, 50), no_charge()),
        ));
    }
    for write in writes {
        write.await.unwrap().unwrap();
        // Acknowledged means committed: a separate connection already sees the rows.
    }
    assert_eq!(reader.span_count().await.unwrap(), 1_000);
    assert_eq!(metrics.accepted_total(), 1_000);
    drop(handle);
    task.await.unwrap();
}

#[tokio::test]
async fn the_memory_of_queued_spans_is_given_back_after_their_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("charge.db")).await.unwrap();
    let (handle, task) = spawn_writer(store, options(1_000), Arc::new(SelfMetrics::default()));
    let budget = crate::memory_budget::MemoryBudget::new(1 << 20);
    let spans = encoded(7, 10);
    let mut charge = budget.charge();
    charge.set(spans.memory_bytes()).unwrap();
    assert!(budget.available() < budget.limit(), "the spans are charged");
    handle
        .reserve(spans.len())
        .unwrap()
        .write(spans, charge)
        .await
        .unwrap();
    assert_eq!(
        budget.available(),
        budget.limit(),
        "given back once committed"
    );
    drop(handle);
    task.await.unwrap();
}

#[tokio::test]
async fn a_full_writer_refuses_at_once_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("full.db")).await.unwrap();
    let metrics = Arc::new(SelfMetrics::default());
    let (handle, task) = spawn_writer(store, options(100), Arc::clone(&metrics));
    let held = handle.reserve(80).unwrap();
    assert_eq!(
        handle.reserve(30).unwrap_err(),
        WriteError::Busy {
            in_flight_limit: 100
        },
        "80 held + 30 asked is past the bound of 100"
    );
    assert!(
        metrics
            .render()
            .contains("causeway_collector_spans_refused_total 30")
    );
    let small = handle.reserve(20).unwrap();
    held.write(encoded(1, 80), no_charge()).await.unwrap();
    small.write(encoded(2, 20), no_charge()).await.unwrap();
    let again = handle.reserve(100).unwrap();
    again.write(encoded(3, 100), no_charge()).await.unwrap();
    let oversized = handle.reserve(500).unwrap();
    oversized.write(encoded(4, 500), no_charge()).await.unwrap();
    assert_eq!(
        metrics.accepted_total(),
        700,
        "a request over the bound takes all of it"
    );
    drop(handle);
    task.await.unwrap();
}

#[tokio::test]
async fn a_failed_commit_is_answered_with_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("read-only.db");
    Store::open(&path).await.unwrap().close().await;
    let read_only = Store::open_read_only(&path).await.unwrap();
    let metrics = Arc::new(SelfMetrics::default());
    let (handle, task) = spawn_writer(read_only, options(100), Arc::clone(&metrics));
    let result = handle
        .reserve(5)
        .unwrap()
        .write(encoded(1, 5), no_charge())
        .await;
    assert!(matches!(result, Err(WriteError::Commit(_))), "{result:?}");
    assert_eq!(metrics.accepted_total(), 0);
    assert!(
        handle.reserve(100).is_ok(),
        "the failed batch's room is given back"
    );
    drop(handle);
    task.await.unwrap();
}

#[tokio::test]
async fn dropping_every_handle_drains_the_queue_before_closing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("drain.db");
    let store = Store::open(&path).await.unwrap();
    let metrics = Arc::new(SelfMetrics::default());
    let (handle, task) = spawn_writer(store, options(10_000), metrics);
    let writes: Vec<_> = (1..=5u8)
        .map(|trace| {
            tokio::spawn(
                handle
                    .reserve(100)
                    .unwrap()
                    .write(encoded(trace, 100), no_charge()),
            )
        })
        .collect();
    drop(handle);
    for write in writes {
        write.await.unwrap().unwrap();
    }
    task.await.unwrap();
    let reopened = Store::open_read_only(&path).await.unwrap();
    assert_eq!(reopened.span_count().await.unwrap(), 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_runs_beside_the_writer_and_writes_keep_committing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("retention.db");
    let store = Store::open(&path).await.unwrap();
    let metrics = Arc::new(SelfMetrics::default());
    // Every span is past a one-nanosecond age limit as soon as it is stored.
    let policy = RetentionPolicy {
        max_age_ns: Some(1),
        max_bytes: None,
    };
    let mut writer_options = options(100_000);
    writer_options.retention = Some((policy, Duration::from_secs(1)));
    let (handle, task) = spawn_writer(store, writer_options, Arc::clone(&metrics));
    let reader = Store::open_read_only(&path).await.unwrap();
    for trace in 1..=40u8 {
        handle
            .reserve(500)
            .unwrap()
            .write(encoded(trace, 500), no_charge())
            .await
            .unwrap();
    }
    assert_eq!(metrics.accepted_total(), 20_000);
    // The retention ticks (the first at once, then every second) empty the store while
    // later writes are still acknowledged.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        handle
            .reserve(1)
            .unwrap()
            .write(encoded(41, 1), no_charge())
            .await
            .unwrap();
        if reader.span_count().await.unwrap() <= 1 {
            break;
        }
        assert!(Instant::now() < deadline, "retention never caught up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(handle);
    task.await.unwrap();
}
