//! `--compensation` and `--dead-letter` on `causeway flow`, `causeway flows` and the
//! dashboard's data layer, on a real SQLite file: an event type and a topic that only a
//! custom pattern names show as a compensation and a dead-letter hop only with the flag,
//! and an empty pattern is refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use causeway_flow::{AnomalyKind, FlowOptions};
use causeway_storage::{EncodedSpans, SpanId, SpanKind, SpanRecord, StatusCode, Store};
use causeway_tui::data::Reader;
use causeway_tui::state::{Loaded, Request};
use serde_json::Value;

use crate::flow::{MS, causeway, json_of, messaging, now_ns, span};
use crate::harness::temp_dir;

/// ord-9: order-service publishes `order.voided.v1` (no default pattern names it) to
/// `orders`; billing fails it and parks it on `orders.parking` (no default dead-letter
/// pattern either).
async fn write_store(path: &Path) {
    let base = now_ns() - 1_000 * MS;
    // (span id, parent, kind, service, topic, group, start and end in ms after `base`)
    let rows = [
        (
            1,
            None,
            SpanKind::Producer,
            "order-service",
            "orders",
            None,
            (0, 1),
        ),
        (
            2,
            Some(1),
            SpanKind::Consumer,
            "billing",
            "orders",
            Some("billing"),
            (2, 9),
        ),
        (
            3,
            Some(2),
            SpanKind::Producer,
            "billing",
            "orders.parking",
            None,
            (5, 6),
        ),
    ];
    let mut spans: Vec<SpanRecord> = rows
        .into_iter()
        .map(|(id, parent, kind, service, topic, group, (start, end))| {
            let verb = if group.is_some() { "process" } else { "send" };
            let name = format!("{verb} {topic}");
            let mut record = span(9, id, service, &name, base + start * MS, base + end * MS);
            record.kind = kind;
            record.parent_span_id = parent.map(|parent| SpanId([parent; 8]));
            record.messaging = messaging("ord-9", topic, "m9", group);
            record.messaging.event_type = Some("order.voided.v1".to_owned());
            record
        })
        .collect();
    spans[1].status_code = StatusCode::Error;
    spans[1].status_message = "unknown order".to_owned();
    let store = Store::open(path).await.expect("open store");
    store
        .write_spans(vec![EncodedSpans::encode(&spans)])
        .await
        .expect("write spans");
    store.close().await;
}

fn kinds(flow: &Value) -> Vec<String> {
    flow["anomalies"]
        .as_array()
        .expect("anomalies")
        .iter()
        .filter_map(|a| a["kind"].as_str().map(str::to_owned))
        .collect()
}

const CUSTOM: [&str; 4] = ["--compensation", "*.voided.*", "--dead-letter", "*.PARKING"];

#[tokio::test]
async fn custom_patterns_add_compensations_and_dead_letters() {
    let dir = temp_dir();
    let db = dir.path().join("causeway.db");
    write_store(&db).await;

    let plain = json_of(&causeway(&db, &["flow", "ord-9", "--format", "json"]));
    let kinds_plain = kinds(&plain);
    assert!(
        !kinds_plain.contains(&"compensation".to_owned()),
        "{plain:#}"
    );
    assert!(
        !kinds_plain.contains(&"dead_letter".to_owned()),
        "{plain:#}"
    );
    assert_eq!(plain["verdicts"][0]["outcome"], "failed");

    let mut args = vec!["flow", "ord-9", "--format", "json"];
    args.extend(CUSTOM);
    let custom = json_of(&causeway(&db, &args));
    let compensation = custom["anomalies"]
        .as_array()
        .expect("anomalies")
        .iter()
        .find(|a| a["kind"] == "compensation")
        .unwrap_or_else(|| panic!("a compensation with the flag: {custom:#}"));
    assert_eq!(
        compensation["steps"][0], 0,
        "the voiding send proves it: {custom:#}"
    );
    assert!(
        kinds(&custom).contains(&"dead_letter".to_owned()),
        "{custom:#}"
    );
    assert_eq!(
        custom["verdicts"][0]["outcome"], "dead_lettered",
        "topic patterns match in any case: {custom:#}"
    );
    // The defaults still apply beside the extra patterns.
    assert!(
        FlowOptions::with_extra_patterns(["*.voided.*".to_owned()], [])
            .is_compensation("order.cancelled.v1")
    );

    let counts = |extra: &[&str]| -> Value {
        let mut args = vec!["flows", "--format", "json"];
        args.extend_from_slice(extra);
        json_of(&causeway(&db, &args))["flows"][0]["anomalies"].clone()
    };
    assert_eq!(counts(&[])["compensation"], Value::Null);
    assert_eq!(counts(&CUSTOM)["compensation"], 1);
    assert_eq!(counts(&CUSTOM)["dead_letter"], 1);

    // The dashboard's data layer rebuilds with the options `causeway tui` passes it.
    let has_compensation = |answer: Loaded| match answer {
        Loaded::Flow(loaded) => loaded
            .flow
            .anomalies
            .iter()
            .any(|a| a.kind == AnomalyKind::Compensation),
        other => panic!("expected a flow, got {other:?}"),
    };
    let request = || Request::Flow {
        id: "ord-9".to_owned(),
    };
    let store = causeway_tui::open_store(&db).await.expect("open read-only");
    let options = FlowOptions::with_extra_patterns(["*.voided.*".to_owned()], []);
    let mut custom_reader = Reader::with_options(store.clone(), options);
    assert!(has_compensation(custom_reader.answer(request()).await));
    let mut default_reader = Reader::new(store);
    assert!(!has_compensation(default_reader.answer(request()).await));
}

#[test]
fn empty_patterns_are_refused() {
    let dir = temp_dir();
    let db = dir.path().join("causeway.db");
    let cases: [&[&str]; 4] = [
        &["flow", "ord-9", "--compensation", ""],
        &["flows", "--dead-letter", "  "],
        &["tui", "--compensation", ""],
        &["tui", "--dead-letter", ""],
    ];
    for args in cases {
        let output = causeway(&db, args);
        assert!(!output.status.success(), "{args:?} must fail");
        assert!(
            output.stdout.is_empty(),
            "{args:?} prints nothing on stdout"
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("a pattern must not be empty"),
            "{args:?}: {stderr}"
        );
    }
    assert!(!db.exists(), "nothing was opened");
}
