#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::testsuite::span;
use std::collections::BTreeMap;

use causeway_conventions::attribute;
use causeway_conventions::messaging::Operation;

use crate::{EncodedSpans, SpanKind, SpanRecord, StatusCode};

fn ids(n: u8) -> (TraceId, SpanId) {
    (TraceId([n; 16]), SpanId([n; 8]))
}

async fn store_with(spans: &[SpanRecord]) -> (tempfile::TempDir, Store, FlowRuleStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("rules.db")).await.unwrap();
    store
        .write_spans(vec![EncodedSpans::encode(spans)])
        .await
        .unwrap();
    let rules = store.flow_rule_store().unwrap();
    (dir, store, rules)
}

fn due(send: u8, rule: &str, due_ns: i64, groups: &[&str]) -> DueItem {
    let (trace, span) = ids(send);
    DueItem {
        send_span_id: span,
        rule: rule.into(),
        send_trace_id: trace,
        due_ns,
        overdue: false,
        topic: "orders".into(),
        message_id: Some(format!("m{send}")),
        partition: Some(0),
        offset: Some(i64::from(send)),
        correlation_id: Some(format!("ord-{send}")),
        event_type: Some("order.placed.v1".into()),
        producer: "order-service".into(),
        sent_ns: due_ns - 10,
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
    }
}

#[tokio::test]
async fn spans_after_reads_the_new_rows_in_bounded_chunks() {
    let (trace, send) = ids(1);
    let spans: Vec<SpanRecord> = (1..=5u8)
        .map(|n| {
            let builder = span(trace, SpanId([n; 8])).correlation("ord-1");
            match n {
                1 => builder.send("orders").message_id("m1").build(),
                2 => builder
                    .process("orders", "billing")
                    .parent(send)
                    .message_id("m1")
                    .attribute(attribute::PROPAGATION_BREAK, "invalid traceparent")
                    .build(),
                3 => builder.error("boom").link(trace, send).build(),
                _ => builder.build(),
            }
        })
        .collect();
    let (_dir, _store, rules) = store_with(&spans).await;
    assert_eq!(rules.cursor().await.unwrap(), None, "no pass ran yet");
    let first = rules.spans_after(0, 2, true).await.unwrap();
    assert_eq!(first.len(), 2, "bounded by the limit");
    assert_eq!(first[0].topic.as_deref(), Some("orders"));
    assert_eq!(first[0].kind, SpanKind::Producer);
    assert_eq!(first[1].consumer_group.as_deref(), Some("billing"));
    assert_eq!(first[1].parent_span_id, Some(send));
    assert_eq!(
        first[1].propagation_break.as_deref(),
        Some("invalid traceparent")
    );
    assert_eq!(first[0].propagation_break, None);
    assert_eq!(first[0].operation, Some(Operation::Send));
    assert_eq!(first[1].operation, Some(Operation::Process));
    let unasked = rules.spans_after(0, 2, false).await.unwrap();
    assert_eq!(
        unasked[1].propagation_break, None,
        "the attributes are not read unless asked"
    );
    let rest = rules.spans_after(first[1].rowid, 10, false).await.unwrap();
    assert_eq!(rest.len(), 3, "only the rows after the cursor");
    assert_eq!(rest[0].status, StatusCode::Error);
    assert_eq!(rest[0].operation, None);
    assert!(
        rules
            .spans_after(rest[2].rowid, 10, false)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(rules.max_span_rowid().await.unwrap(), rest[2].rowid);
    // A range of rowids, two at once (one per span reader): each holds its rows only.
    let (low, high) = tokio::join!(
        rules.spans_in(0, first[1].rowid, false),
        rules.spans_in(first[1].rowid, rest[2].rowid, false)
    );
    let (low, high) = (low.unwrap(), high.unwrap());
    assert_eq!(
        low.iter().map(|s| s.rowid).collect::<Vec<_>>(),
        [first[0].rowid, first[1].rowid]
    );
    assert_eq!(
        high.iter().map(|s| s.rowid).collect::<Vec<_>>(),
        rest.iter().map(|s| s.rowid).collect::<Vec<_>>()
    );
    assert!(
        rules
            .spans_in(rest[2].rowid, rest[2].rowid + 10, false)
            .await
            .unwrap()
            .is_empty()
    );

    let links = rules
        .links_of(vec![(rest[0].segment, rest[0].trace_id, rest[0].span_id)])
        .await
        .unwrap();
    assert_eq!(links[&(rest[0].trace_id, rest[0].span_id)], [(trace, send)]);
    let found = rules
        .spans_by_id(vec![(trace, send), ids(9)])
        .await
        .unwrap();
    assert_eq!(found.len(), 1, "a missing span is left out");
    assert_eq!(found[0].message_id.as_deref(), Some("m1"));
}

#[tokio::test]
async fn due_items_are_read_by_send_and_by_due_time_and_written_atomically() {
    let (_dir, _store, rules) = store_with(&[]).await;
    rules
        .write(FlowPassWrite {
            cursor: Some(42),
            due_upserts: vec![
                due(1, "late", 300, &["billing", "audit"]),
                due(2, "late", 100, &["billing"]),
                due(3, "late", 200, &["audit"]),
            ],
            ..FlowPassWrite::default()
        })
        .await
        .unwrap();
    assert_eq!(rules.cursor().await.unwrap(), Some(42));
    let by_send = rules.due_of_sends(vec![ids(1).1]).await.unwrap();
    assert_eq!(by_send, [due(1, "late", 300, &["billing", "audit"])]);
    let due_now: Vec<i64> = rules
        .due_by(250, 10)
        .await
        .unwrap()
        .iter()
        .map(|d| d.due_ns)
        .collect();
    assert_eq!(due_now, [100, 200], "earliest first, not later ones");
    assert_eq!(rules.due_by(250, 1).await.unwrap().len(), 1, "bounded");

    let mut late = due(2, "late", 100, &["billing"]);
    late.overdue = true;
    rules
        .write(FlowPassWrite {
            due_upserts: vec![late.clone()],
            due_deletes: vec![(ids(3).1, "late".into())],
            ..FlowPassWrite::default()
        })
        .await
        .unwrap();
    assert!(
        rules.due_by(250, 10).await.unwrap().is_empty(),
        "overdue and deleted items are not due again"
    );
    assert_eq!(
        rules.overdue_counts().await.unwrap(),
        [("late".into(), "orders".into(), vec!["billing".into()], 1)]
    );
    assert_eq!(rules.overdue_before(101, 10).await.unwrap(), [late]);
    assert!(rules.overdue_before(100, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn seen_consumptions_answer_by_source_message_or_position() {
    let (_dir, _store, rules) = store_with(&[]).await;
    let mark = |group: Option<&str>| SeenMark {
        consumer_group: group.map(str::to_owned),
        source_span_id: None,
        topic: Some("orders".into()),
        message_id: None,
        partition: None,
        offset: None,
    };
    rules
        .write(FlowPassWrite {
            seen: vec![
                SeenMark {
                    source_span_id: Some(ids(1).1),
                    ..mark(Some("billing"))
                },
                SeenMark {
                    message_id: Some("m2".into()),
                    ..mark(None)
                },
                SeenMark {
                    partition: Some(0),
                    offset: Some(3),
                    ..mark(Some("audit"))
                },
            ],
            ..FlowPassWrite::default()
        })
        .await
        .unwrap();
    let answers = rules
        .seen_groups(vec![
            due(1, "r", 1, &["billing"]),
            due(2, "r", 1, &["billing"]),
            due(3, "r", 1, &["audit"]),
            due(4, "r", 1, &["audit"]),
        ])
        .await
        .unwrap();
    assert_eq!(
        answers,
        vec![
            vec![Some("billing".to_owned())],
            vec![None],
            vec![Some("audit".to_owned())],
            vec![],
        ]
    );
    rules
        .write(FlowPassWrite {
            forget_seen_before_ns: Some(crate::clock::now_ns() + 1),
            ..FlowPassWrite::default()
        })
        .await
        .unwrap();
    let answers = rules
        .seen_groups(vec![due(1, "r", 1, &["billing"])])
        .await
        .unwrap();
    assert_eq!(answers, vec![Vec::<Option<String>>::new()], "forgotten");
}

#[tokio::test]
async fn alert_rows_keep_their_notification_time_and_open_ones_are_listed() {
    let (_dir, store, rules) = store_with(&[]).await;
    let alert = AlertRow {
        fingerprint: "f1".into(),
        starts_ns: 10,
        rule: "flow-dead-letter".into(),
        status: "firing".into(),
        labels: BTreeMap::from([("alertname".into(), "flow-dead-letter".into())]),
        annotations: BTreeMap::from([("count".into(), "1".into())]),
        ends_ns: None,
        updated_ns: 10,
        notified_ns: None,
    };
    let subject = SubjectRow {
        fingerprint: "f1".into(),
        labels: BTreeMap::from([("alertname".into(), "flow-dead-letter".into())]),
        count: 1,
        flow_ids: vec!["ord-1".into()],
        first_seen_ns: 10,
        last_seen_ns: 10,
    };
    rules
        .write(FlowPassWrite {
            alerts: vec![alert.clone()],
            subjects: vec![subject.clone()],
            ..FlowPassWrite::default()
        })
        .await
        .unwrap();
    assert_eq!(rules.subjects().await.unwrap(), [subject]);
    rules.mark_notified("f1".into(), 10, 15).await.unwrap();
    // A later pass writes the row again without a notification time: 15 is kept.
    let updated = AlertRow {
        updated_ns: 20,
        ..alert.clone()
    };
    rules
        .write(FlowPassWrite {
            alerts: vec![updated.clone()],
            ..FlowPassWrite::default()
        })
        .await
        .unwrap();
    let open = rules.open_alerts().await.unwrap();
    assert_eq!(
        open,
        [AlertRow {
            notified_ns: Some(15),
            ..updated
        }]
    );
    // Resolved at 30, resolution not notified yet: still open for the hooks.
    let resolved = AlertRow {
        status: "resolved".into(),
        ends_ns: Some(30),
        updated_ns: 30,
        ..alert
    };
    rules
        .write(FlowPassWrite {
            alerts: vec![resolved],
            subjects_deleted: vec!["f1".into()],
            ..FlowPassWrite::default()
        })
        .await
        .unwrap();
    assert!(rules.subjects().await.unwrap().is_empty());
    assert_eq!(rules.open_alerts().await.unwrap().len(), 1);
    rules.mark_notified("f1".into(), 10, 31).await.unwrap();
    assert!(
        rules.open_alerts().await.unwrap().is_empty(),
        "the resolution was told"
    );
    assert_eq!(store.alerts(10).await.unwrap()[0].notified_ns, Some(31));
}

#[tokio::test]
async fn a_read_only_store_opens_no_rule_store() {
    let (dir, _store, _rules) = store_with(&[]).await;
    let read_only = Store::open_read_only(&dir.path().join("rules.db"))
        .await
        .unwrap();
    assert!(matches!(
        read_only.flow_rule_store(),
        Err(StorageError::ReadOnly)
    ));
}
