//! The data task's reader against a real SQLite file: flows windows with summaries,
//! flows by correlation and by trace, lag and alerts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;

use causeway_conventions::LagState;
use causeway_storage::{AlertRow, EncodedSpans, LagStatusRow, Store};
use causeway_tui::data::Reader;
use causeway_tui::state::{Loaded, Request};
use causeway_tui::{TuiError, open_store};

use support::{BASE_NS, shop_flow, trace_id};

/// A fresh database path under the target directory, unique per test.
fn db_path(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("tui-data-tests");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}-{}.db", std::process::id()));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    path
}

async fn filled(name: &str, flows: &[u32]) -> (PathBuf, Store) {
    let path = db_path(name);
    let writer = Store::open(&path).await.unwrap();
    let mut spans = Vec::new();
    for flow in flows {
        spans.extend(shop_flow(*flow, BASE_NS + i64::from(*flow) * 1_000_000_000));
    }
    writer
        .write_spans(vec![EncodedSpans::encode(&spans)])
        .await
        .unwrap();
    (path.clone(), writer)
}

#[tokio::test]
async fn flows_window_is_newest_first_with_summaries() {
    let (path, _writer) = filled("flows", &[1, 2, 3]).await;
    let store = open_store(&path).await.unwrap();
    let mut reader = Reader::new(store);
    let answer = reader
        .answer(Request::Flows {
            filter: String::new(),
            offset: 0,
            limit: 2,
        })
        .await;
    let Loaded::Flows { rows, offset, .. } = answer else {
        panic!("expected flows, got {answer:?}");
    };
    assert_eq!(offset, 0);
    let ids: Vec<&str> = rows.iter().map(|row| row.correlation_id.as_str()).collect();
    assert_eq!(
        ids,
        ["ord-3", "ord-2"],
        "newest first, bounded by the limit"
    );
    let row = &rows[0];
    assert_eq!(row.services, ["inventory", "order", "payment", "shipping"]);
    assert_eq!(row.events, 2, "order.placed and payment.captured");
    assert!(row.has_error, "the payment attempt failed");
    assert!(
        row.badges.iter().any(|badge| badge == "err"),
        "{:?}",
        row.badges
    );

    let answer = reader
        .answer(Request::Flows {
            filter: "ord-1".to_owned(),
            offset: 0,
            limit: 10,
        })
        .await;
    let Loaded::Flows { rows, filter, .. } = answer else {
        panic!("expected flows");
    };
    assert_eq!(filter, "ord-1");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].correlation_id, "ord-1");
}

#[tokio::test]
async fn flow_by_correlation_and_by_trace() {
    let (path, _writer) = filled("flow", &[4]).await;
    let mut reader = Reader::new(open_store(&path).await.unwrap());
    let Loaded::Flow(by_correlation) = reader
        .answer(Request::Flow {
            id: "ord-4".to_owned(),
        })
        .await
    else {
        panic!("expected a flow");
    };
    assert_eq!(by_correlation.spans.len(), 6);
    assert_eq!(by_correlation.flow.steps.len(), 6);
    assert!(!by_correlation.truncated);
    let Loaded::Flow(by_trace) = reader
        .answer(Request::Trace {
            trace_id: trace_id(4, 2),
        })
        .await
    else {
        panic!("expected a flow");
    };
    assert_eq!(by_trace.id, trace_id(4, 2).to_string());
    assert_eq!(
        by_trace.spans, by_correlation.spans,
        "a trace of ord-4 opens the whole of ord-4, as `causeway flow TRACE` does"
    );
    let shared = causeway_flow::load_spans(&open_store(&path).await.unwrap(), &by_trace.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        shared.spans, by_trace.spans,
        "the one loader gave the dashboard its spans"
    );
}

#[tokio::test]
async fn lag_and_alerts_are_read_and_shaped() {
    let (path, writer) = filled("lag", &[5]).await;
    let status = |partition: i32, lag: i64, time_lag_ms: i64| LagStatusRow {
        consumer_group: "shipping".into(),
        topic: "payments".into(),
        partition,
        state: if lag > 0 {
            LagState::Warn
        } else {
            LagState::Ok
        },
        committed_offset: Some(0),
        high_watermark: Some(lag),
        lag: Some(lag),
        time_lag_ms: Some(time_lag_ms),
        rate_per_s: None,
        catch_up_ms: None,
        updated_ns: BASE_NS,
    };
    writer
        .write_lag_status(&[status(0, 7, 42_000), status(1, 0, 0)])
        .await
        .unwrap();
    writer
        .upsert_alerts(&[AlertRow {
            fingerprint: "f1".into(),
            starts_ns: BASE_NS,
            rule: "group-lag-seconds".into(),
            status: "firing".into(),
            labels: BTreeMap::from([("consumer_group".to_owned(), "shipping".to_owned())]),
            annotations: BTreeMap::from([
                ("summary".to_owned(), "42s behind".to_owned()),
                (
                    "oldest_waiting_correlation_id".to_owned(),
                    "ord-1042".to_owned(),
                ),
            ]),
            ends_ns: None,
            updated_ns: BASE_NS,
            notified_ns: None,
        }])
        .await
        .unwrap();
    let mut reader = Reader::new(open_store(&path).await.unwrap());
    let Loaded::Lag(rows) = reader.answer(Request::Lag).await else {
        panic!("expected lag");
    };
    assert_eq!(
        rows.len(),
        1,
        "partitions fold into one row per group and topic"
    );
    assert_eq!(rows[0].lag_messages, 7);
    assert!((rows[0].lag_seconds - 42.0).abs() < 1e-9);
    assert_eq!(rows[0].state, LagState::Warn, "the worst partition's state");
    assert_eq!(rows[0].partitions, [(0, 7), (1, 0)]);
    let Loaded::Alerts(alerts) = reader.answer(Request::Alerts).await else {
        panic!("expected alerts");
    };
    assert_eq!(alerts.len(), 1);
    assert!(alerts[0].firing);
    assert_eq!(alerts[0].group.as_deref(), Some("shipping"));
    assert_eq!(alerts[0].evidence, "42s behind");
    assert_eq!(
        alerts[0].correlation_id.as_deref(),
        Some("ord-1042"),
        "the oldest waiting event is the jump target"
    );
}

#[tokio::test]
async fn missing_and_empty_databases_are_named_errors() {
    let missing = db_path("missing");
    assert!(matches!(
        open_store(&missing).await,
        Err(TuiError::MissingDatabase { .. })
    ));
    assert!(!missing.exists(), "a read-only open never creates the file");
    let empty = db_path("empty");
    std::fs::write(&empty, b"").unwrap();
    let error = open_store(&empty).await.err().unwrap();
    assert!(matches!(error, TuiError::EmptyDatabase { .. }), "{error}");
    assert!(error.to_string().contains("causeway demo"), "{error}");
}
