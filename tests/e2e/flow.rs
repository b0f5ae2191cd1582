//! `causeway flow` and `causeway flows` on a real SQLite file written through the store:
//! JSON output parsed and checked, every format, and clear failures for unknown IDs,
//! missing files and files without the schema.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output};

use causeway_storage::{
    EncodedSpans, Messaging, SpanId, SpanKind, SpanLink, SpanRecord, StatusCode, Store, TraceId,
};
use serde_json::Value;

use crate::harness::{causeway_bin, temp_dir};

const MS: i64 = 1_000_000;

fn now_ns() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970");
    i64::try_from(since.as_nanos()).expect("fits i64")
}

fn span(trace: u8, id: u8, service: &str, name: &str, start: i64, end: i64) -> SpanRecord {
    SpanRecord {
        trace_id: TraceId([trace; 16]),
        span_id: SpanId([id; 8]),
        parent_span_id: None,
        name: name.to_owned(),
        kind: SpanKind::Internal,
        service_name: service.to_owned(),
        scope_name: "e2e".to_owned(),
        start_ns: start,
        end_ns: end,
        status_code: StatusCode::Unset,
        status_message: String::new(),
        attributes: Default::default(),
        resource: Default::default(),
        events: Vec::new(),
        links: Vec::new(),
        messaging: Messaging::default(),
    }
}

fn messaging(correlation: &str, topic: &str, message: &str, group: Option<&str>) -> Messaging {
    Messaging {
        correlation_id: Some(correlation.to_owned()),
        message_id: Some(message.to_owned()),
        event_type: Some("order.placed.v1".to_owned()),
        destination: Some(topic.to_owned()),
        consumer_group: group.map(str::to_owned),
        operation_type: Some(if group.is_some() { "process" } else { "send" }.to_owned()),
        ..Messaging::default()
    }
}

/// ord-7: order-service sends to `orders`; billing processes it as a child with a link;
/// shipping processes it in a new trace that lost `traceparent`, and fails. `audit`
/// subscribes to `orders` (learnt from ord-6) but never processed ord-7's message.
/// ord-6 is older and clean.
fn spans(base: i64) -> Vec<SpanRecord> {
    let mut send = span(7, 1, "order-service", "send orders", base, base + 2 * MS);
    send.kind = SpanKind::Producer;
    send.messaging = messaging("ord-7", "orders", "m7", None);
    let mut billing = span(
        7,
        2,
        "billing",
        "process orders",
        base + 5 * MS,
        base + 9 * MS,
    );
    billing.kind = SpanKind::Consumer;
    billing.parent_span_id = Some(SpanId([1; 8]));
    billing.links.push(SpanLink {
        trace_id: TraceId([7; 16]),
        span_id: SpanId([1; 8]),
        attributes: Default::default(),
    });
    billing.messaging = messaging("ord-7", "orders", "m7", Some("billing"));
    let mut inner = span(7, 3, "billing", "charge card", base + 6 * MS, base + 8 * MS);
    inner.parent_span_id = Some(SpanId([2; 8]));
    inner
        .attributes
        .insert("payment.method".to_owned(), Value::from("card"));
    let mut shipping = span(
        8,
        4,
        "shipping\u{1b}[31m",
        "process orders",
        base + 10 * MS,
        base + 20 * MS,
    );
    shipping.kind = SpanKind::Consumer;
    shipping.status_code = StatusCode::Error;
    shipping.status_message = "no address".to_owned();
    shipping.messaging = messaging("ord-7", "orders", "m7", Some("shipping"));

    let old = base - 60_000 * MS;
    let mut old_send = span(6, 5, "order-service", "send orders", old, old + MS);
    old_send.kind = SpanKind::Producer;
    old_send.messaging = messaging("ord-6", "orders", "m6", None);
    let mut old_audit = span(6, 6, "audit", "process orders", old + 2 * MS, old + 3 * MS);
    old_audit.kind = SpanKind::Consumer;
    old_audit.parent_span_id = Some(SpanId([5; 8]));
    old_audit.messaging = messaging("ord-6", "orders", "m6", Some("audit"));
    vec![send, billing, inner, shipping, old_send, old_audit]
}

fn write_store(path: &Path) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let store = Store::open(path).await.expect("open store");
        let batch = EncodedSpans::encode(&spans(now_ns() - 1_000 * MS));
        store.write_spans(&[batch]).await.expect("write spans");
        store.close().await;
    });
}

fn causeway(db: &Path, args: &[&str]) -> Output {
    Command::new(causeway_bin())
        .arg("--db")
        .arg(db)
        .args(args)
        .output()
        .expect("run causeway")
}

fn json_of(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "exit {:?}, stderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("stdout is one json document")
}

#[test]
fn flow_json_stitches_traces_and_names_what_went_wrong() {
    let dir = temp_dir();
    let db = dir.path().join("causeway.db");
    write_store(&db);
    let flow = json_of(&causeway(&db, &["flow", "ord-7", "--format", "json"]));
    assert_eq!(flow["schema"], "causeway.flow.v1");
    assert_eq!(flow["correlation_ids"], serde_json::json!(["ord-7"]));
    assert_eq!(
        flow["trace_ids"].as_array().map(Vec::len),
        Some(2),
        "{flow:#}"
    );
    assert_eq!(
        flow["steps"].as_array().map(Vec::len),
        Some(4),
        "the uncorrelated child span of trace 7 is included: {flow:#}"
    );
    assert_eq!(flow["status"], "error");
    let verdicts: Vec<(String, String)> = flow["verdicts"]
        .as_array()
        .expect("verdicts")
        .iter()
        .map(|v| {
            (
                v["consumer_group"].as_str().unwrap_or_default().to_owned(),
                v["outcome"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let expected = [
        ("audit", "not_seen_yet"),
        ("billing", "processed"),
        ("shipping", "failed"),
    ]
    .map(|(g, o)| (g.to_owned(), o.to_owned()));
    assert_eq!(verdicts, expected);
    let kinds: Vec<&str> = flow["anomalies"]
        .as_array()
        .expect("anomalies")
        .iter()
        .filter_map(|a| a["kind"].as_str())
        .collect();
    for kind in ["error", "propagation_break", "missing"] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }

    // The same flow by trace ID.
    let by_trace = json_of(&causeway(
        &db,
        &["flow", &"08".repeat(16), "--format", "json"],
    ));
    assert_eq!(by_trace["correlation_ids"], flow["correlation_ids"]);
    assert_eq!(by_trace["steps"], flow["steps"]);
}

#[test]
fn flow_renders_text_dot_and_mermaid_without_escapes() {
    let dir = temp_dir();
    let db = dir.path().join("causeway.db");
    write_store(&db);
    for (format, start) in [
        ("text", "flow ord-7"),
        ("dot", "digraph flow {"),
        ("mermaid", "flowchart LR"),
    ] {
        let output = causeway(&db, &["flow", "ord-7", "--format", format]);
        assert!(output.status.success(), "{format}: {:?}", output);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(stdout.starts_with(start), "{format}: {stdout}");
        assert!(
            !stdout.contains('\u{1b}'),
            "{format} leaks an escape: {stdout:?}"
        );
    }
}

#[test]
fn unknown_ids_missing_files_and_empty_files_fail_clearly() {
    let dir = temp_dir();
    let db = dir.path().join("causeway.db");
    write_store(&db);
    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, b"").expect("empty file");
    let missing = dir.path().join("missing.db");
    let cases = [
        (&db, vec!["flow", "ord-404"], "no spans found for ord-404"),
        (&missing, vec!["flow", "ord-7"], "does not exist"),
        (&empty, vec!["flow", "ord-7"], "no causeway schema"),
        (&missing, vec!["flows"], "does not exist"),
        (
            &empty,
            vec!["flows", "--format", "json"],
            "no causeway schema",
        ),
    ];
    for (path, args, message) in cases {
        let output = causeway(path, &args);
        assert!(!output.status.success(), "{args:?} must fail");
        assert!(
            output.stdout.is_empty(),
            "{args:?} prints nothing on stdout"
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
    assert!(
        !missing.exists(),
        "a read-only command never creates the database"
    );
}

#[test]
fn flows_lists_newest_first_and_filters() {
    let dir = temp_dir();
    let db = dir.path().join("causeway.db");
    write_store(&db);
    let ids = |args: &[&str]| -> Vec<String> {
        let mut full = vec!["flows", "--format", "json"];
        full.extend_from_slice(args);
        let list = json_of(&causeway(&db, &full));
        assert_eq!(list["schema"], "causeway.flows.v1");
        list["flows"]
            .as_array()
            .expect("flows")
            .iter()
            .filter_map(|f| f["correlation_id"].as_str().map(str::to_owned))
            .collect()
    };
    let cases: [(&[&str], &[&str], &str); 7] = [
        (&[], &["ord-7", "ord-6"], "newest first"),
        (&["--errors"], &["ord-7"], "only the failed flow"),
        (
            &["--service", "audit"],
            &["ord-6"],
            "only flows audit took part in",
        ),
        (
            &["--since", "10s"],
            &["ord-7"],
            "ord-6 started a minute ago",
        ),
        (
            &["--where", "payment.method=card"],
            &["ord-7"],
            "an attribute of an uncorrelated child",
        ),
        (
            &["--event-type", "order.*"],
            &["ord-7", "ord-6"],
            "a pattern on event types",
        ),
        (&["--limit", "1"], &["ord-7"], "the limit"),
    ];
    for (args, expected, reason) in cases {
        assert_eq!(ids(args), expected, "{reason}");
    }
    let table = causeway(&db, &["flows"]);
    assert!(table.status.success());
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.starts_with("START"), "{text}");
    assert!(text.contains("error:1"), "anomaly counts per kind: {text}");
}
