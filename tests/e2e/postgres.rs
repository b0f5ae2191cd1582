//! The commands on a PostgreSQL store (`--db postgres://…`, `CAUSEWAY_DB`): the collector
//! migrates the database and stores what the OpenTelemetry Python SDK sends; `flow` and
//! `flows` read it back; readers refuse a database no collector has migrated.
//!
//! Needs `CAUSEWAY_TEST_PG` (see `.ci/run`): without it these tests fail, never skip.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use causeway_storage::{Database, Store, TraceId};
use serde_json::Value;

use crate::harness::{CollectorProcess, causeway_bin, python, python_script, wait_until};

pub(crate) use causeway_storage::testsuite::PgTestSchema as Schema;

fn causeway(args: &[&str], env_db: Option<&str>) -> Output {
    let mut command = Command::new(causeway_bin());
    command.args(args).env_remove("CAUSEWAY_DB");
    if let Some(db) = env_db {
        command.env("CAUSEWAY_DB", db);
    }
    command.output().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_refuse_an_unmigrated_postgres_database() {
    let schema = Schema::create().await;
    for command in ["flows", "lag", "alerts"] {
        let output = causeway(&["--db", &schema.url, command], None);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{command}: {stderr}");
        assert!(
            stderr.contains("has no causeway schema"),
            "{command}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{command}: {stderr}");
    }
    // The demo writes its own SQLite file.
    let demo = causeway(&["--db", &schema.url, "demo", "--headless"], None);
    let stderr = String::from_utf8_lossy(&demo.stderr);
    assert!(!demo.status.success(), "{stderr}");
    assert!(stderr.contains("--db must be a file path"), "{stderr}");
    let bad = causeway(
        &["--db", "postgres://u:secret@h:notaport/db", "flows"],
        None,
    );
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("invalid postgres database URL"), "{stderr}");
    assert!(!stderr.contains("secret"), "{stderr}");
    schema.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_spans_reach_postgres_and_the_commands_read_them() {
    let schema = Schema::create().await;
    let collector = CollectorProcess::start(Path::new(&schema.url), &[]);
    let output = Command::new(python())
        .arg(python_script("send_spans.py"))
        .args(["grpc", &collector.grpc_endpoint(), "python-pg"])
        .output()
        .expect("cannot run the Python sender");
    assert!(
        output.status.success(),
        "the Python sender failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let sent = report["spans"].as_array().expect("the report lists spans");
    let trace_hex = sent[0]["trace_id"].as_str().unwrap().to_owned();
    let trace_id: TraceId = trace_hex.parse().unwrap();

    let database = Database::parse(&schema.url).unwrap();
    let reader = Store::open_read_only(&database).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let stored = loop {
        let stored = reader.spans_by_trace(trace_id, 100).await.unwrap();
        if stored.len() == sent.len() || std::time::Instant::now() > deadline {
            break stored;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let arrived = stored.len() == sent.len();
    assert!(
        arrived,
        "stored {stored:?}\ncollector stderr:\n{}",
        collector.stderr()
    );
    for span in sent {
        let name = span["name"].as_str().unwrap();
        assert!(
            stored
                .iter()
                .any(|record| record.name == name && record.service_name == "python-pg"),
            "{name} is not stored: {stored:?}"
        );
    }

    // `flow` by trace ID, the database named by --db, then by CAUSEWAY_DB.
    for (args, env_db) in [
        (vec!["--db", schema.url.as_str(), "flow", &trace_hex], None),
        (vec!["flow", &trace_hex], Some(schema.url.as_str())),
    ] {
        let mut args = args;
        args.extend(["--format", "json"]);
        let mut output = causeway(&args, env_db);
        assert!(
            wait_until(Duration::from_secs(10), || {
                output = causeway(&args, env_db);
                output.status.success()
            }),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let text = String::from_utf8_lossy(&output.stdout);
        for span in sent {
            let name = span["name"].as_str().unwrap();
            assert!(text.contains(name), "{args:?}: {name} missing from {text}");
        }
    }
    reader.close().await;
    drop(collector);
    schema.drop().await;
}

/// NUL is valid in OTLP's strings but not in PostgreSQL's text: a span holding it, sent by
/// the Python SDK in one request with a clean span, is stored with U+FFFD, and the request
/// succeeds (it used to fail whole).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_spans_holding_nul_are_stored_on_postgres() {
    let schema = Schema::create().await;
    let collector = CollectorProcess::start(Path::new(&schema.url), &[]);
    let output = Command::new(python())
        .arg(python_script("send_nul_spans.py"))
        .args([&collector.grpc_endpoint(), "python-nul"])
        .output()
        .expect("cannot run the Python sender");
    assert!(
        output.status.success(),
        "the Python sender failed: {}\ncollector stderr:\n{}",
        String::from_utf8_lossy(&output.stderr),
        collector.stderr()
    );
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        report["exported"], 2,
        "both spans went in one successful export"
    );
    let trace_id: TraceId = report["trace_id"].as_str().unwrap().parse().unwrap();

    let database = Database::parse(&schema.url).unwrap();
    let reader = Store::open_read_only(&database).await.unwrap();
    let stored = reader.spans_by_trace(trace_id, 10).await.unwrap();
    let mut names: Vec<&str> = stored.iter().map(|s| s.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["bad\u{FFFD}name", "clean send"]);
    let hostile = stored.iter().find(|s| s.name.starts_with("bad")).unwrap();
    assert_eq!(
        hostile.attributes.get("note"),
        Some(&Value::from("a\u{FFFD}b"))
    );
    // An ID holding a control character is no correlation ID; the attribute is kept.
    assert_eq!(hostile.messaging.correlation_id, None);
    assert_eq!(
        hostile.attributes.get("messaging.message.conversation_id"),
        Some(&Value::from("ord\u{FFFD}nul"))
    );
    reader.close().await;
    drop(collector);
    schema.drop().await;
}
