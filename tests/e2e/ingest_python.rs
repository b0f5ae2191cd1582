//! OTLP ingest from a third-party client: the OpenTelemetry Python SDK (PyPI packages in
//! the venv that `.ci/run` prepares) exports over gRPC and over HTTP/protobuf, and every
//! span it reports sending is in the store with its ids, parent, times and service.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use serde_json::Value;

use crate::harness::{CollectorProcess, python, python_script, temp_dir};
use crate::ingest::{TRACES_PATH, stored_trace};

/// Runs the Python sender and returns the JSON document it printed about what it sent; it
/// fails the test when any of the SDK's exports failed.
pub fn run_python_sender(protocol: &str, endpoint: &str, service: &str) -> Value {
    let output = Command::new(python())
        .arg(python_script("send_spans.py"))
        .args([protocol, endpoint, service])
        .output()
        .expect("cannot run the Python sender");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("ModuleNotFoundError"),
        "the OpenTelemetry Python packages are missing: run .ci/run\n{stderr}"
    );
    assert!(
        output.status.success(),
        "the Python sender failed ({}) over {protocol} to {endpoint}:\n{stderr}",
        output.status
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "the Python sender printed no JSON ({e}):\n{}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

fn hex_bytes<const N: usize>(value: &Value) -> [u8; N] {
    let text = value.as_str().expect("ids are strings");
    hex::decode(text)
        .expect("ids are hex")
        .try_into()
        .expect("ids have the right length")
}

async fn python_spans_arrive(protocol: &str) {
    let dir = temp_dir();
    let db = dir.path().join("python.db");
    let collector = CollectorProcess::start(&db, &[]);
    let endpoint = match protocol {
        "grpc" => collector.grpc_endpoint(),
        _ => format!("{}{TRACES_PATH}", collector.http_endpoint()),
    };
    let service = format!("python-{protocol}");
    let report = run_python_sender(protocol, &endpoint, &service);
    let sent = report["spans"].as_array().expect("the report lists spans");
    assert_eq!(sent.len(), 2, "the sender reports two spans");

    let trace_id = hex_bytes::<16>(&sent[0]["trace_id"]);
    let stored = stored_trace(&db, trace_id).await;
    assert_eq!(
        stored.len(),
        sent.len(),
        "every span the Python SDK exported is stored once\ncollector stderr:\n{}",
        collector.stderr()
    );
    for span in sent {
        let span_id = hex_bytes::<8>(&span["span_id"]);
        let record = stored
            .iter()
            .find(|r| r.span_id.0 == span_id)
            .unwrap_or_else(|| panic!("span {span} is not stored"));
        let name = span["name"].as_str().expect("spans have names");
        assert_eq!(record.name, name);
        assert_eq!(record.service_name, service, "{name}: service");
        assert_eq!(
            record.scope_name,
            report["scope"].as_str().expect("scope"),
            "{name}: scope"
        );
        assert_eq!(
            Some(record.start_ns),
            span["start_ns"].as_i64(),
            "{name}: start"
        );
        assert_eq!(Some(record.end_ns), span["end_ns"].as_i64(), "{name}: end");
        let parent = span["parent_span_id"]
            .as_str()
            .map(|_| hex_bytes::<8>(&span["parent_span_id"]));
        assert_eq!(record.parent_span_id.map(|p| p.0), parent, "{name}: parent");
    }
    let process = stored
        .iter()
        .find(|r| r.name == "orders process")
        .expect("the process span is stored");
    assert_eq!(process.messaging.consumer_group.as_deref(), Some("billing"));
    assert_eq!(
        process.messaging.correlation_id.as_deref(),
        Some("ord-py-7")
    );
    assert_eq!(process.status_message, "payment declined");
    assert_eq!(process.links.len(), 1, "the link to the send span is kept");
    let send = stored
        .iter()
        .find(|r| r.name == "orders send")
        .expect("the send span is stored");
    assert_eq!(process.links[0].span_id, send.span_id);
    assert_eq!(send.events.len(), 1, "the enqueued event is kept");
    assert_eq!(send.attributes.get("order.lines"), Some(&Value::from(3)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_spans_arrive_over_grpc() {
    python_spans_arrive("grpc").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_spans_arrive_over_http() {
    python_spans_arrive("http").await;
}
