//! The flow rules' store on both backends: the ranges a pass reads, the compact span rows,
//! links and parents, the due-time and seen tables, alert counts and alert rows.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use causeway_conventions::attribute;
use causeway_conventions::messaging::Operation;
use causeway_storage::testsuite::span;
use causeway_storage::{
    AlertRow, DueItem, FlowPassWrite, FlowRuleStore, RuleSpan, SeenMark, SendRef, SpanId, SpanKind,
    SpanRecord, StatusCode, StorageError, Store, SubjectRow, TraceId, now_ns,
};

use crate::{Case, write};

fn ids(n: u8) -> (TraceId, SpanId) {
    (TraceId([n; 16]), SpanId([n; 8]))
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

/// Every span a pass would read after `after` now, range by range, with the ranges. On
/// PostgreSQL a transaction is read once every older one has finished: another test's
/// write may hold it back for a moment, so this waits until `expected` spans are there.
async fn read_all(
    rules: &FlowRuleStore,
    after: i64,
    chunk_rows: usize,
    expected: usize,
) -> (Vec<(i64, i64)>, Vec<RuleSpan>) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ranges = rules.pass_ranges(after, chunk_rows, 1_000).await.unwrap();
        let mut spans = Vec::new();
        for &(from, through) in &ranges {
            spans.extend(rules.spans_in(from, through, true).await.unwrap());
        }
        if spans.len() >= expected || Instant::now() > deadline {
            return (ranges, spans);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) async fn a_pass_reads_each_new_span_once_in_ranges(case: Case) {
    let store = &case.store;
    let rules = store.flow_rule_store().unwrap();
    assert_eq!(rules.cursor().await.unwrap(), None, "no pass ran yet");
    let start = rules.newest_position().await.unwrap();
    let (trace, send) = ids(1);
    let spans: Vec<SpanRecord> = (1..=5u8)
        .map(|n| {
            let builder = span(trace, SpanId([n; 8]))
                .correlation("ord-1")
                .times(1_000 + i64::from(n), 2_000);
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
    // Two writes: two transactions on PostgreSQL, whose spans a range never splits.
    write(store, &spans[..2]).await;
    write(store, &spans[2..]).await;
    let (ranges, read) = read_all(&rules, start, 2, 5).await;
    assert_eq!(read.len(), 5, "each new span once: {ranges:?}");
    assert_eq!(
        read.iter().map(|s| s.span_id).collect::<Vec<_>>(),
        spans.iter().map(|s| s.span_id).collect::<Vec<_>>(),
        "in the order stored"
    );
    assert_eq!(ranges[0].0, start, "the first range starts at the cursor");
    assert!(
        ranges
            .windows(2)
            .all(|w| w[0].1 == w[1].0 && w[0].0 < w[0].1),
        "ranges follow one another: {ranges:?}"
    );
    assert!(ranges.len() >= 2, "about two spans a range: {ranges:?}");
    let end = ranges.last().unwrap().1;
    assert!(rules.newest_position().await.unwrap() >= end);
    assert!(
        rules.pass_ranges(end, 2, 1_000).await.unwrap().is_empty(),
        "nothing after the last range"
    );
    assert!(
        rules
            .spans_in(end, end + 10, false)
            .await
            .unwrap()
            .is_empty()
    );
    let few = rules.pass_ranges(start, 1, 2).await.unwrap();
    assert!(
        !few.is_empty() && few.len() < ranges.len().max(3),
        "a pass reads about its most rows and leaves the rest: {few:?}"
    );

    assert_eq!(read[0].topic.as_deref(), Some("orders"));
    assert_eq!(read[0].kind, SpanKind::Producer);
    assert_eq!(read[0].operation, Some(Operation::Send));
    assert_eq!(read[0].message_id.as_deref(), Some("m1"));
    assert_eq!(read[0].correlation_id.as_deref(), Some("ord-1"));
    assert_eq!(read[0].start_ns, 1_001);
    assert!(read[0].ingested_ns > 0);
    assert_eq!(read[0].propagation_break, None);
    assert_eq!(read[1].consumer_group.as_deref(), Some("billing"));
    assert_eq!(read[1].parent_span_id, Some(send));
    assert_eq!(read[1].operation, Some(Operation::Process));
    assert_eq!(
        read[1].propagation_break.as_deref(),
        Some("invalid traceparent")
    );
    assert_eq!(read[2].status, StatusCode::Error);
    assert_eq!(read[2].operation, None);
    let (from, through) = ranges[0];
    let unasked = rules.spans_in(from, through, false).await.unwrap();
    assert!(
        unasked.iter().all(|s| s.propagation_break.is_none()),
        "the attributes are not read unless asked"
    );

    let links = rules
        .links_of(vec![(read[2].segment, read[2].trace_id, read[2].span_id)])
        .await
        .unwrap();
    assert_eq!(links[&(read[2].trace_id, read[2].span_id)], [(trace, send)]);
    let found = rules
        .spans_by_id(vec![(trace, send), ids(9)])
        .await
        .unwrap();
    assert_eq!(found.len(), 1, "a missing span is left out");
    assert_eq!(found[0].message_id.as_deref(), Some("m1"));
}

pub(crate) async fn due_items_are_read_by_send_and_by_due_time_and_written_atomically(case: Case) {
    let rules = case.store.flow_rule_store().unwrap();
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
    // A consumption's sources name the send's trace and span; its stored span (started at
    // the item's `sent_ns`) is there, as it is for every item a pass made.
    let (trace, send) = ids(1);
    let send_span = span(trace, send)
        .times(290, 400)
        .send("orders")
        .message_id("m1")
        .build();
    write(&case.store, &[send_span]).await;
    let unknown_start = SendRef {
        trace_id: trace,
        span_id: send,
        sent_ns: None,
    };
    let by_send = rules.due_of_sends(vec![unknown_start]).await.unwrap();
    assert_eq!(by_send, [due(1, "late", 300, &["billing", "audit"])]);
    let known_start = SendRef {
        sent_ns: Some(290),
        ..unknown_start
    };
    let by_key = rules.due_of_sends(vec![known_start]).await.unwrap();
    assert_eq!(by_key, by_send, "the same item, by its key");
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
            due_deletes: vec![due(3, "late", 200, &[]).key()],
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

/// A write larger than one SQLite transaction's share (a chunk of a busy pass) is stored
/// whole, its deletes before its upserts, with the cursor.
pub(crate) async fn a_large_write_is_stored_whole(case: Case) {
    let rules = case.store.flow_rule_store().unwrap();
    let item = |n: u16| {
        let mut item = due(1, "late", 1_000 + i64::from(n), &["billing"]);
        item.send_span_id = SpanId([(n >> 8) as u8, n as u8, 0, 0, 0, 0, 0, 1]);
        item
    };
    rules
        .write(FlowPassWrite {
            due_upserts: (0..100).map(item).collect(),
            ..FlowPassWrite::default()
        })
        .await
        .unwrap();
    let mut replaced = item(7);
    replaced.groups = vec!["audit".into()];
    let mut upserts: Vec<DueItem> = (100..2_600).map(item).collect();
    upserts.push(replaced.clone());
    let seen: Vec<SeenMark> = (0..1_300)
        .map(|n| SeenMark {
            consumer_group: Some("billing".into()),
            source_span_id: None,
            topic: Some("orders".into()),
            message_id: Some(format!("early-{n}")),
            partition: None,
            offset: None,
        })
        .collect();
    rules
        .write(FlowPassWrite {
            cursor: Some(77),
            due_deletes: (0..50).map(|n| item(n).key()).collect(),
            due_upserts: upserts,
            seen,
            ..FlowPassWrite::default()
        })
        .await
        .unwrap();
    assert_eq!(rules.cursor().await.unwrap(), Some(77));
    let stored = rules.due_by(i64::MAX, 10_000).await.unwrap();
    assert_eq!(
        stored.len(),
        2_600 - 49,
        "50 deleted, one of them written again"
    );
    assert!(
        stored.contains(&replaced),
        "the upsert after the delete wins"
    );
    assert!(!stored.contains(&item(3)), "a delete is applied");
    let asked = SeenMark {
        consumer_group: None,
        source_span_id: None,
        topic: Some("orders".into()),
        message_id: Some("early-1299".into()),
        partition: None,
        offset: None,
    };
    let mut probe = item(2_000);
    probe.message_id = asked.message_id.clone();
    let groups = rules.seen_groups(vec![probe]).await.unwrap();
    assert_eq!(
        groups,
        [vec![Some("billing".to_owned())]],
        "the last consumption is stored"
    );
}

pub(crate) async fn seen_consumptions_answer_by_source_message_or_position(case: Case) {
    let rules = case.store.flow_rule_store().unwrap();
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
            forget_seen_before_ns: Some(now_ns() + 1),
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

pub(crate) async fn alert_rows_keep_their_notification_time_and_open_ones_are_listed(case: Case) {
    let store = &case.store;
    let rules = store.flow_rule_store().unwrap();
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
    // The hooks were told at 15.
    rules
        .write(FlowPassWrite {
            alerts: vec![AlertRow {
                notified_ns: Some(15),
                ..alert.clone()
            }],
            ..FlowPassWrite::default()
        })
        .await
        .unwrap();
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
            alerts: vec![resolved.clone()],
            subjects_deleted: vec!["f1".into()],
            ..FlowPassWrite::default()
        })
        .await
        .unwrap();
    assert!(rules.subjects().await.unwrap().is_empty());
    assert_eq!(rules.open_alerts().await.unwrap().len(), 1);
    rules
        .write(FlowPassWrite {
            alerts: vec![AlertRow {
                notified_ns: Some(31),
                ..resolved
            }],
            ..FlowPassWrite::default()
        })
        .await
        .unwrap();
    assert!(
        rules.open_alerts().await.unwrap().is_empty(),
        "the resolution was told"
    );
    assert_eq!(store.alerts(10).await.unwrap()[0].notified_ns, Some(31));
}

pub(crate) async fn a_read_only_store_opens_no_rule_store(case: Case) {
    let read_only = Store::open_read_only(&case.database).await.unwrap();
    assert!(matches!(
        read_only.flow_rule_store(),
        Err(StorageError::ReadOnly)
    ));
}
