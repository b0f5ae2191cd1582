//! The storage conformance suite: every query the commands and the dashboard use, run with
//! the same cases against each backend — an SQLite file, and a PostgreSQL database named by
//! `CAUSEWAY_TEST_PG` (each case in a schema of its own, dropped afterwards).
//!
//! `CAUSEWAY_TEST_PG` must be set (e.g. `postgres://causeway:causeway@localhost/causeway_test`,
//! as `.ci/run` sets it): without it the PostgreSQL cases fail, they are never skipped.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::future::Future;

use causeway_conventions::LagState;
use causeway_storage::{
    AlertRow, CorrelationQuery, CorrelationSearch, Database, EncodedSpans, LagGroupTopic,
    LagSample, LagStatusRow, LinkRef, RetentionPolicy, SpanId, SpanRecord, StorageError, Store,
    TraceId, testsuite,
};

#[derive(Clone, Copy, Debug)]
enum Kind {
    Sqlite,
    Postgres,
}

/// A fresh, migrated store for one case, and how to open it again.
struct Case {
    store: Store,
    database: Database,
    kind: Kind,
}

/// Runs `case` on a fresh store of `kind`.
async fn run<F, Fut>(kind: Kind, case: F)
where
    F: FnOnce(Case) -> Fut,
    Fut: Future<Output = ()>,
{
    match kind {
        Kind::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let database = Database::from(dir.path().join("conformance.db"));
            let store = Store::open(&database).await.unwrap();
            case(Case {
                store,
                database,
                kind,
            })
            .await;
        }
        Kind::Postgres => {
            let schema = testsuite::PgTestSchema::create().await;
            let database = Database::parse(&schema.url).unwrap();
            let store = Store::open(&database).await.unwrap();
            case(Case {
                store,
                database,
                kind,
            })
            .await;
            schema.drop().await;
        }
    }
}

/// Declares each case once per backend: `sqlite::name` and `postgres::name`.
macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::run(super::Kind::Sqlite, super::$case).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::run(super::Kind::Postgres, super::$case).await;
                }
            )*
        }
    };
}

#[path = "conformance/flow_rules.rs"]
mod flow_rules;
use flow_rules::{
    a_large_write_is_stored_whole, a_pass_reads_each_new_span_once_in_ranges,
    a_read_only_store_opens_no_rule_store,
    alert_rows_keep_their_notification_time_and_open_ones_are_listed,
    due_items_are_read_by_send_and_by_due_time_and_written_atomically,
    seen_consumptions_answer_by_source_message_or_position,
};

conformance!(
    spans_round_trip_and_upsert,
    flow_spans_follow_correlations_into_their_traces,
    stitching_follows_links_positions_and_attributes,
    flows_list_filters_and_pages,
    search_matches_ids_services_and_attributes,
    attribute_search_finds_flows_by_key_and_value,
    lag_samples_statuses_and_groups,
    alerts_upsert_and_list_firing_first,
    alerts_keep_their_notification_time_and_list_unresolved,
    one_lease_holder_at_a_time,
    retention_by_age,
    retention_of_older_days,
    read_only_handles_read_and_refuse_writes,
    a_pass_reads_each_new_span_once_in_ranges,
    due_items_are_read_by_send_and_by_due_time_and_written_atomically,
    a_large_write_is_stored_whole,
    seen_consumptions_answer_by_source_message_or_position,
    alert_rows_keep_their_notification_time_and_open_ones_are_listed,
    a_read_only_store_opens_no_rule_store,
    a_retried_span_that_changes_correlation_takes_its_summary_along,
    text_with_nul_is_stored_with_a_replacement_and_spares_its_batch,
    concurrent_writes_of_one_flow_keep_every_span_once,
);

fn trace(n: u8) -> TraceId {
    TraceId([n; 16])
}

fn span_id(n: u8) -> SpanId {
    SpanId([n; 8])
}

async fn write(store: &Store, spans: &[SpanRecord]) {
    store
        .write_spans(vec![EncodedSpans::encode(spans)])
        .await
        .unwrap();
}

/// A send span of `correlation` from `service`, with an error when `failed`.
fn order_span(trace_n: u8, id: u8, correlation: &str, service: &str, start: i64) -> SpanRecord {
    testsuite::span(trace(trace_n), span_id(id))
        .send("orders")
        .service(service)
        .times(start, start + 10)
        .correlation(correlation)
        .event_type("OrderPlaced")
        .build()
}

async fn spans_round_trip_and_upsert(case: Case) {
    let store = &case.store;
    let rich = testsuite::span(trace(1), span_id(1))
        .send("orders")
        .service("checkout")
        .scope("shop")
        .times(100, 250)
        .correlation("ord-1")
        .message_id("m-1")
        .event_type("OrderPlaced")
        .partition(3)
        .offset(42)
        .key("customer-7")
        .attribute("note", "fragile")
        .attribute("tags", serde_json::json!(["a", "b"]))
        .resource("host.name", "box-1")
        .event(120, "retry")
        .link(trace(9), span_id(9))
        .error("broker timeout")
        .build();
    let child = testsuite::span(trace(1), span_id(2))
        .parent(span_id(1))
        .name("serialise")
        .times(110, 120)
        .build();
    write(store, &[rich.clone(), child.clone()]).await;
    assert_eq!(
        store.spans_by_trace(trace(1), 100).await.unwrap(),
        vec![rich.clone(), child.clone()]
    );
    assert_eq!(
        store.spans_by_correlation("ord-1", 100).await.unwrap(),
        vec![rich.clone()]
    );
    assert_eq!(
        store.spans_by_trace(trace(1), 1).await.unwrap(),
        vec![rich.clone()]
    );
    assert_eq!(store.span_count().await.unwrap(), 2);

    // A retry of the same span replaces it: one copy, the newer one.
    let renamed = SpanRecord {
        name: "send orders (retried)".into(),
        ..rich.clone()
    };
    write(store, std::slice::from_ref(&renamed)).await;
    // The same span twice in one write (batches merged by the writer) is stored once too.
    store
        .write_spans(vec![
            EncodedSpans::encode(std::slice::from_ref(&child)),
            EncodedSpans::encode(std::slice::from_ref(&child)),
        ])
        .await
        .unwrap();
    assert_eq!(store.span_count().await.unwrap(), 2);
    assert_eq!(
        store.spans_by_trace(trace(1), 100).await.unwrap(),
        vec![renamed, child]
    );
    assert_eq!(
        store.spans_linking_to(trace(9), span_id(9)).await.unwrap(),
        vec![(trace(1), span_id(1))]
    );
    assert!(store.has_schema().await.unwrap());
    assert!(store.used_bytes().await.unwrap() > 0);
}

async fn flow_spans_follow_correlations_into_their_traces(case: Case) {
    let store = &case.store;
    let send = order_span(1, 1, "ord-1", "checkout", 10);
    let uncorrelated = testsuite::span(trace(1), span_id(2))
        .parent(span_id(1))
        .times(20, 30)
        .build();
    let other = order_span(1, 3, "ord-2", "checkout", 40);
    let second_trace = order_span(2, 4, "ord-1", "billing", 50);
    let unrelated = order_span(3, 5, "ord-3", "billing", 60);
    write(
        store,
        &[
            send.clone(),
            uncorrelated.clone(),
            other,
            second_trace.clone(),
            unrelated,
        ],
    )
    .await;
    assert_eq!(
        store.flow_spans(&["ord-1".into()], 100).await.unwrap(),
        vec![send.clone(), uncorrelated.clone(), second_trace.clone()]
    );
    assert_eq!(
        store.flow_spans(&["ord-1".into()], 2).await.unwrap(),
        vec![send, uncorrelated]
    );
    assert!(store.flow_spans(&[], 100).await.unwrap().is_empty());
    assert_eq!(
        store.correlations_of_trace(trace(1)).await.unwrap(),
        vec!["ord-1".to_owned(), "ord-2".to_owned()]
    );
    assert!(
        store
            .correlations_of_trace(trace(7))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn stitching_follows_links_positions_and_attributes(case: Case) {
    let store = &case.store;
    // Producer p (trace 1) sends orders/0@7; consumer c (trace 2) links to it; consumer o
    // (trace 3) lost its context and sits at the same position; q (trace 4) is unrelated.
    let producer = testsuite::span(trace(1), span_id(1))
        .send("orders")
        .partition(0)
        .offset(7)
        .times(10, 20)
        .attribute("x-request-id", "req-9")
        .build();
    let linked = testsuite::span(trace(2), span_id(2))
        .process("orders", "billing")
        .link(trace(1), span_id(1))
        .times(30, 40)
        .attribute("x-tags", serde_json::json!(["req-9", "other"]))
        .build();
    let orphan = testsuite::span(trace(3), span_id(3))
        .process("orders", "audit")
        .partition(0)
        .offset(7)
        .times(50, 60)
        .build();
    let unrelated = testsuite::span(trace(4), span_id(4))
        .send("payments")
        .partition(0)
        .offset(7)
        .times(70, 80)
        .build();
    write(
        store,
        &[producer.clone(), linked.clone(), orphan.clone(), unrelated],
    )
    .await;
    assert_eq!(
        store
            .spans_of_traces(&[trace(2), trace(1)], 100)
            .await
            .unwrap(),
        vec![producer.clone(), linked.clone()]
    );
    assert_eq!(
        store
            .spans_of_traces(&[trace(1), trace(2), trace(3)], 2)
            .await
            .unwrap(),
        vec![producer, linked]
    );
    assert_eq!(
        store.links_into_traces(&[trace(1)], 100).await.unwrap(),
        vec![LinkRef {
            from_trace: trace(2),
            from_span: span_id(2),
            to_trace: trace(1),
            to_span: span_id(1),
        }]
    );
    assert_eq!(
        store
            .traces_at_positions(&[("orders".into(), 0, 7)], 100)
            .await
            .unwrap(),
        vec![trace(1), trace(3)]
    );
    assert!(
        store
            .traces_at_positions(&[("orders".into(), 0, 8)], 100)
            .await
            .unwrap()
            .is_empty()
    );
    let keys = ["x-request-id".to_owned(), "x-tags".to_owned()];
    assert_eq!(
        store
            .traces_with_attribute(&keys, "req-9", 1_000)
            .await
            .unwrap()
            .into_iter()
            .collect::<std::collections::BTreeSet<_>>(),
        [trace(1), trace(2)].into_iter().collect()
    );
    assert!(
        store
            .traces_with_attribute(&keys, "req-1", 1_000)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .traces_with_attribute(&["bad\"key".to_owned()], "req-9", 1_000)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.topology().await.unwrap(),
        vec![
            ("orders".to_owned(), "audit".to_owned()),
            ("orders".to_owned(), "billing".to_owned())
        ]
    );
}

fn ids(rows: &[causeway_storage::CorrelationRow]) -> Vec<(&str, bool)> {
    rows.iter()
        .map(|row| (row.correlation_id.as_str(), row.root))
        .collect()
}

async fn flows_list_filters_and_pages(case: Case) {
    let store = &case.store;
    let failed = testsuite::span(trace(3), span_id(3))
        .send("orders")
        .service("billing")
        .times(300, 310)
        .correlation("ord-c")
        .event_type("PaymentFailed")
        .error("declined")
        .build();
    // A flow without a correlation ID: a send span alone in trace 4.
    let root = testsuite::span(trace(4), span_id(4))
        .send("orders")
        .service("legacy")
        .times(250, 260)
        .event_type("OrderPlaced")
        .build();
    write(
        store,
        &[
            order_span(1, 1, "ord-a", "checkout", 100),
            order_span(2, 2, "ord-b", "checkout", 200),
            failed,
            root,
        ],
    )
    .await;
    let all = CorrelationQuery {
        limit: 10,
        ..CorrelationQuery::default()
    };
    let rows = store.recent_correlations(&all).await.unwrap();
    assert_eq!(
        ids(&rows),
        [("ord-c", false), ("ord-b", false), ("ord-a", false)]
    );
    assert_eq!(
        (
            rows[0].first_start_ns,
            rows[0].last_end_ns,
            rows[0].has_error
        ),
        (300, 310, true)
    );
    let page = CorrelationQuery {
        limit: 1,
        before: Some((200, "ord-b".into())),
        ..CorrelationQuery::default()
    };
    assert_eq!(
        ids(&store.recent_correlations(&page).await.unwrap()),
        [("ord-a", false)]
    );
    let filtered = |query: CorrelationQuery| async move {
        ids(&store.recent_flows(&query).await.unwrap())
            .into_iter()
            .map(|(id, root)| (id.to_owned(), root))
            .collect::<Vec<_>>()
    };
    let root_id = trace(4).to_string();
    assert_eq!(
        filtered(all.clone()).await,
        [
            ("ord-c".to_owned(), false),
            (root_id.clone(), true),
            ("ord-b".to_owned(), false),
            ("ord-a".to_owned(), false)
        ]
    );
    assert_eq!(
        filtered(CorrelationQuery {
            since_ns: Some(200),
            limit: 2,
            ..CorrelationQuery::default()
        })
        .await,
        [("ord-c".to_owned(), false), (root_id.clone(), true)]
    );
    assert_eq!(
        filtered(CorrelationQuery {
            errors_only: true,
            ..all.clone()
        })
        .await,
        [("ord-c".to_owned(), false)]
    );
    assert_eq!(
        filtered(CorrelationQuery {
            service: Some("legacy".into()),
            ..all.clone()
        })
        .await,
        [(root_id.clone(), true)]
    );
    assert_eq!(
        filtered(CorrelationQuery {
            event_type: Some("Order*".into()),
            ..all.clone()
        })
        .await,
        [
            (root_id.clone(), true),
            ("ord-b".to_owned(), false),
            ("ord-a".to_owned(), false)
        ]
    );
    assert_eq!(
        filtered(CorrelationQuery {
            before: Some((250, root_id.clone())),
            ..all.clone()
        })
        .await,
        [("ord-b".to_owned(), false), ("ord-a".to_owned(), false)]
    );
    assert_eq!(
        ids(&store.recent_flow_roots(&all).await.unwrap()),
        [(root_id.as_str(), true)]
    );
}

async fn search_matches_ids_services_and_attributes(case: Case) {
    let store = &case.store;
    let noted = testsuite::span(trace(3), span_id(3))
        .send("orders")
        .service("billing")
        .times(300, 310)
        .correlation("inv-3")
        .attribute("note", "Fragile parcel")
        .build();
    let root = testsuite::span(trace(4), span_id(4))
        .send("orders")
        .service("legacy")
        .times(250, 260)
        .build();
    write(
        store,
        &[
            order_span(1, 1, "ORD-1", "checkout", 100),
            order_span(2, 2, "ord-2", "checkout", 200),
            noted,
            root,
        ],
    )
    .await;
    let search = |text: &str, offset: i64, limit: i64| {
        let search = CorrelationSearch {
            text: text.into(),
            offset,
            limit,
        };
        async move {
            store
                .search_correlations(&search)
                .await
                .unwrap()
                .into_iter()
                .map(|row| row.correlation_id)
                .collect::<Vec<_>>()
        }
    };
    let root_id = trace(4).to_string();
    assert_eq!(
        search("", 0, 10).await,
        ["inv-3", root_id.as_str(), "ord-2", "ORD-1"]
    );
    assert_eq!(search("", 1, 2).await, [root_id.as_str(), "ord-2"]);
    assert_eq!(search("ord-", 0, 10).await, ["ord-2", "ORD-1"]);
    assert_eq!(search("fragile", 0, 10).await, ["inv-3"]);
    assert_eq!(search("legacy", 0, 10).await, [root_id.as_str()]);
    assert_eq!(search("checkout", 0, 1).await, ["ord-2"]);
    assert_eq!(search(&trace(2).to_string(), 0, 10).await, ["ord-2"]);
    assert_eq!(search("50%", 0, 10).await, Vec::<String>::new());
}

async fn attribute_search_finds_flows_by_key_and_value(case: Case) {
    let store = &case.store;
    let card = testsuite::span(trace(1), span_id(1))
        .send("orders")
        .times(100, 110)
        .correlation("ord-card")
        .attribute("payment.method", "card")
        .attribute("qty", 12)
        .build();
    let cash = testsuite::span(trace(2), span_id(2))
        .send("orders")
        .times(200, 210)
        .correlation("ord-cash")
        .attribute("payment.method", "cash")
        .resource("deployment.environment", "prod")
        .build();
    // A span without a correlation ID counts for the correlations of its trace.
    let uncorrelated = testsuite::span(trace(3), span_id(3))
        .process("orders", "billing")
        .times(320, 330)
        .attribute("payment.method", "voucher")
        .build();
    write(
        store,
        &[
            card,
            cash,
            order_span(3, 4, "ord-voucher", "checkout", 300),
            uncorrelated,
        ],
    )
    .await;
    let find = |pairs: &[(&str, &str)], limit: i64| {
        let filters: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        async move {
            store
                .correlations_with_attributes(&filters, limit)
                .await
                .unwrap()
        }
    };
    assert_eq!(find(&[("payment.method", "card")], 10).await, ["ord-card"]);
    assert_eq!(find(&[("qty", "12")], 10).await, ["ord-card"], "a number");
    assert_eq!(
        find(&[("deployment.environment", "prod")], 10).await,
        ["ord-cash"],
        "a resource attribute"
    );
    assert_eq!(
        find(&[("payment.method", "voucher")], 10).await,
        ["ord-voucher"],
        "an uncorrelated span's trace"
    );
    assert_eq!(
        find(&[("payment.method", "cash"), ("qty", "12")], 10).await,
        Vec::<String>::new(),
        "every pair must hold"
    );
    assert_eq!(
        find(&[("payment.method", "cheque")], 10).await,
        Vec::<String>::new()
    );
    assert_eq!(find(&[], 10).await, Vec::<String>::new());
}

fn sample(group: &str, partition: i32, sampled_ns: i64, lag: i64) -> LagSample {
    LagSample {
        sampled_ns,
        consumer_group: group.into(),
        topic: "orders".into(),
        partition,
        committed_offset: Some(100 - lag),
        low_watermark: Some(0),
        high_watermark: Some(100),
        lag: Some(lag),
        members: Some(1),
        source: "poller".into(),
    }
}

fn status(group: &str, state: LagState, updated_ns: i64) -> LagStatusRow {
    LagStatusRow {
        consumer_group: group.into(),
        topic: "orders".into(),
        partition: 0,
        state,
        committed_offset: Some(90),
        high_watermark: Some(100),
        lag: Some(10),
        time_lag_ms: Some(1_500),
        rate_per_s: Some(-2.5),
        catch_up_ms: None,
        updated_ns,
    }
}

async fn lag_samples_statuses_and_groups(case: Case) {
    let store = &case.store;
    let samples = vec![
        sample("billing", 0, 1_000, 5),
        sample("billing", 0, 1_500, 4),
        sample("billing", 0, 2_500, 3),
        sample("audit", 1, 2_000, 9),
    ];
    store.write_lag_samples(&samples).await.unwrap();
    assert_eq!(
        store.lag_samples_since(1_500).await.unwrap(),
        vec![samples[3].clone(), samples[1].clone(), samples[2].clone()]
    );
    // Buckets of 1000 ns below 2000: 1000 and 1500 share one, the later is kept.
    assert_eq!(store.downsample_lag(2_000, 1_000).await.unwrap(), 1);
    assert_eq!(store.downsample_lag(2_000, 1_000).await.unwrap(), 0);
    assert_eq!(store.lag_samples_since(0).await.unwrap().len(), 3);

    store
        .write_lag_status(&[status("billing", LagState::Warn, 1_000)])
        .await
        .unwrap();
    store
        .write_lag_status(&[
            status("billing", LagState::Stall, 3_000),
            status("audit", LagState::Ok, 1_500),
        ])
        .await
        .unwrap();
    assert_eq!(
        store.lag_status().await.unwrap(),
        vec![
            status("audit", LagState::Ok, 1_500),
            status("billing", LagState::Stall, 3_000)
        ]
    );
    // Samples before 2000 (the one kept at 1500) and statuses not updated since go.
    assert_eq!(store.delete_lag_before(2_000).await.unwrap(), 1);
    assert_eq!(
        store.lag_status().await.unwrap(),
        vec![status("billing", LagState::Stall, 3_000)]
    );
    assert_eq!(
        store.lag_samples_since(0).await.unwrap(),
        vec![samples[3].clone(), samples[2].clone()]
    );

    let found = |group: &str, committed| LagGroupTopic {
        consumer_group: group.into(),
        topic: "orders".into(),
        committed,
        found_ns: 7,
    };
    store
        .save_lag_groups(
            &[found("billing", true), found("audit", false)],
            &[],
            "poller",
        )
        .await
        .unwrap();
    assert_eq!(
        store.lag_groups().await.unwrap(),
        vec![found("audit", false), found("billing", true)]
    );
    store
        .save_lag_groups(&[found("audit", false)], &["billing".into()], "poller")
        .await
        .unwrap();
    assert_eq!(
        store.lag_groups().await.unwrap(),
        vec![found("audit", false)]
    );
    assert!(store.lag_status().await.unwrap().is_empty());
    assert_eq!(
        store.lag_samples_since(0).await.unwrap(),
        vec![samples[3].clone()]
    );

    // The oldest waiting event: the first send span at or after the committed offset.
    let sent = |id: u8, offset: i64| {
        testsuite::span(trace(id), span_id(id))
            .send("orders")
            .partition(0)
            .offset(offset)
            .times(i64::from(id) * 100, i64::from(id) * 100 + 5)
            .correlation(format!("ord-{id}"))
            .build()
    };
    write(store, &[sent(1, 5), sent(2, 6), sent(3, 8)]).await;
    let waiting = store
        .oldest_waiting_event("orders", 0, 6)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            waiting.kafka_offset,
            waiting.correlation_id.as_deref(),
            waiting.trace_id.as_str(),
            waiting.sent_ns
        ),
        (6, Some("ord-2"), trace(2).to_string().as_str(), 200)
    );
    assert!(
        store
            .oldest_waiting_event("orders", 0, 9)
            .await
            .unwrap()
            .is_none()
    );
}

async fn alerts_upsert_and_list_firing_first(case: Case) {
    let store = &case.store;
    let pending = AlertRow {
        fingerprint: "ab".into(),
        starts_ns: 10,
        rule: "lagging".into(),
        status: "pending".into(),
        labels: BTreeMap::from([("consumer_group".into(), "billing".into())]),
        annotations: BTreeMap::from([("summary".into(), "behind".into())]),
        ends_ns: None,
        updated_ns: 10,
        notified_ns: None,
    };
    let resolved = AlertRow {
        fingerprint: "cd".into(),
        status: "resolved".into(),
        ends_ns: Some(30),
        updated_ns: 30,
        ..pending.clone()
    };
    store
        .upsert_alerts(&[pending.clone(), resolved.clone()])
        .await
        .unwrap();
    assert_eq!(
        store.alerts(10).await.unwrap(),
        vec![pending.clone(), resolved.clone()]
    );
    let firing = AlertRow {
        status: "firing".into(),
        updated_ns: 40,
        notified_ns: Some(41),
        ..pending
    };
    store
        .upsert_alerts(std::slice::from_ref(&firing))
        .await
        .unwrap();
    assert_eq!(
        store.alerts(10).await.unwrap(),
        vec![firing.clone(), resolved]
    );
    assert_eq!(store.alerts(1).await.unwrap(), vec![firing]);
}

async fn alerts_keep_their_notification_time_and_list_unresolved(case: Case) {
    let store = &case.store;
    let firing = AlertRow {
        fingerprint: "ab".into(),
        starts_ns: 10,
        rule: "lagging".into(),
        status: "firing".into(),
        labels: BTreeMap::from([("consumer_group".into(), "billing".into())]),
        annotations: BTreeMap::new(),
        ends_ns: None,
        updated_ns: 20,
        notified_ns: Some(20),
    };
    let pending = AlertRow {
        fingerprint: "cd".into(),
        starts_ns: 5,
        status: "pending".into(),
        notified_ns: None,
        ..firing.clone()
    };
    let resolved = AlertRow {
        fingerprint: "ef".into(),
        status: "resolved".into(),
        ends_ns: Some(30),
        ..firing.clone()
    };
    store
        .upsert_alerts(&[firing.clone(), pending.clone(), resolved])
        .await
        .unwrap();
    // Still firing, evaluated again without telling the hooks: the time they were told
    // stays; an older notification time never replaces a newer one.
    let again = AlertRow {
        updated_ns: 40,
        notified_ns: None,
        annotations: BTreeMap::from([("summary".into(), "still behind".into())]),
        ..firing.clone()
    };
    store
        .upsert_alerts(std::slice::from_ref(&again))
        .await
        .unwrap();
    let older = AlertRow {
        updated_ns: 41,
        notified_ns: Some(15),
        ..again.clone()
    };
    store
        .upsert_alerts(std::slice::from_ref(&older))
        .await
        .unwrap();
    let expected = AlertRow {
        notified_ns: Some(20),
        ..older
    };
    // Pending and firing episodes, oldest first; the resolved one is over.
    assert_eq!(
        store.unresolved_alerts().await.unwrap(),
        vec![pending, expected]
    );
}

async fn one_lease_holder_at_a_time(case: Case) {
    let mut first = case.store.lease();
    let mut second = case.store.lease();
    assert!(first.try_hold().await.unwrap());
    match case.kind {
        Kind::Sqlite => {
            // One writer per file: whoever writes holds the lease.
            assert!(!first.is_shared());
            assert!(second.try_hold().await.unwrap());
        }
        Kind::Postgres => {
            assert!(first.is_shared());
            assert!(!second.try_hold().await.unwrap(), "the lease is taken");
            assert!(first.try_hold().await.unwrap(), "the holder keeps it");
            // Another store in the same database has a lease of its own.
            let other_schema = testsuite::PgTestSchema::create().await;
            let other = Store::open(&Database::parse(&other_schema.url).unwrap())
                .await
                .unwrap();
            let mut elsewhere = other.lease();
            assert!(elsewhere.try_hold().await.unwrap(), "another store's lease");
            elsewhere.release().await;
            other.close().await;
            other_schema.drop().await;
            // The holder goes away without a word (its session closes): the other takes it.
            drop(first);
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            let mut taken = false;
            while !taken && std::time::Instant::now() < deadline {
                taken = second.try_hold().await.unwrap();
                if !taken {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
            }
            assert!(taken, "the lease was not released with its session");
            let mut third = case.store.lease();
            assert!(!third.try_hold().await.unwrap());
            second.release().await;
            assert!(third.try_hold().await.unwrap(), "released at once");
            third.release().await;
            return;
        }
    }
    first.release().await;
    second.release().await;
}

async fn retention_by_age(case: Case) {
    let store = &case.store;
    // Spans of a second ago: correlations and flows are forgotten by their spans' end time.
    let base = causeway_storage::now_ns() - 1_000_000_000;
    let root = testsuite::span(trace(4), span_id(4))
        .send("orders")
        .times(base + 250, base + 260)
        .link(trace(1), span_id(1))
        .build();
    write(
        store,
        &[
            order_span(1, 1, "ord-1", "checkout", base + 100),
            order_span(2, 2, "ord-2", "checkout", base + 200),
            root,
        ],
    )
    .await;
    let keep = RetentionPolicy {
        max_age_ns: Some(3_600 * 1_000_000_000),
        max_bytes: None,
    };
    assert_eq!(
        store.apply_retention(&keep).await.unwrap().deleted_by_age,
        0
    );
    assert_eq!(store.span_count().await.unwrap(), 3);
    let all = CorrelationQuery {
        limit: 10,
        ..CorrelationQuery::default()
    };
    assert_eq!(store.recent_flows(&all).await.unwrap().len(), 3);
    // Everything was stored before now: an age of zero drops it all.
    let drop_all = RetentionPolicy {
        max_age_ns: Some(0),
        max_bytes: None,
    };
    let report = store.apply_retention(&drop_all).await.unwrap();
    assert_eq!((report.deleted_by_age, report.deleted_by_size), (3, 0));
    assert_eq!(store.span_count().await.unwrap(), 0);
    assert!(store.recent_flows(&all).await.unwrap().is_empty());
    assert!(
        store
            .spans_linking_to(trace(1), span_id(1))
            .await
            .unwrap()
            .is_empty()
    );
    // The store goes on taking spans.
    write(store, &[order_span(5, 5, "ord-5", "checkout", 500)]).await;
    assert_eq!(store.span_count().await.unwrap(), 1);
}

const DAY_NS: i64 = 86_400 * 1_000_000_000;

async fn retention_of_older_days(case: Case) {
    let store = &case.store;
    let now = causeway_storage::now_ns();
    let old = now - 3 * DAY_NS;
    // Spans stored three days ago (a day of their own on PostgreSQL), then spans now.
    let old_spans = [
        order_span(1, 1, "ord-1", "checkout", old),
        order_span(2, 2, "ord-2", "checkout", old + 10),
    ];
    store
        .write_spans_ingested_at(vec![EncodedSpans::encode(&old_spans)], old)
        .await
        .unwrap();
    let new_span = order_span(3, 3, "ord-3", "checkout", now);
    write(store, std::slice::from_ref(&new_span)).await;
    let report = store
        .apply_retention(&RetentionPolicy {
            max_age_ns: Some(DAY_NS),
            max_bytes: None,
        })
        .await
        .unwrap();
    assert_eq!(report.deleted_by_age, 2);
    assert!(store.spans_by_trace(trace(1), 10).await.unwrap().is_empty());
    assert_eq!(
        store.spans_by_trace(trace(3), 10).await.unwrap(),
        vec![new_span.clone()]
    );
    let all = CorrelationQuery {
        limit: 10,
        ..CorrelationQuery::default()
    };
    assert_eq!(
        ids(&store.recent_correlations(&all).await.unwrap()),
        [("ord-3", false)]
    );

    // By size: SQLite deletes the oldest rows until the file is small enough; PostgreSQL
    // drops whole days, oldest first, and never the newest day.
    store
        .write_spans_ingested_at(vec![EncodedSpans::encode(&old_spans)], old)
        .await
        .unwrap();
    let report = store
        .apply_retention(&RetentionPolicy {
            max_age_ns: None,
            max_bytes: Some(1),
        })
        .await
        .unwrap();
    match case.kind {
        Kind::Sqlite => {
            assert_eq!(report.deleted_by_size, 3);
            assert_eq!(store.span_count().await.unwrap(), 0);
        }
        Kind::Postgres => {
            assert_eq!(report.deleted_by_size, 2);
            assert_eq!(
                store.spans_by_trace(trace(3), 10).await.unwrap(),
                vec![new_span]
            );
            assert_eq!(store.span_count().await.unwrap(), 1);
        }
    }
}

async fn read_only_handles_read_and_refuse_writes(case: Case) {
    write(&case.store, &[order_span(1, 1, "ord-1", "checkout", 100)]).await;
    let reader = Store::open_read_only(&case.database).await.unwrap();
    assert!(reader.has_schema().await.unwrap());
    assert_eq!(
        reader.spans_by_correlation("ord-1", 10).await.unwrap(),
        vec![order_span(1, 1, "ord-1", "checkout", 100)]
    );
    let refused = reader
        .write_spans(vec![EncodedSpans::encode(&[order_span(
            2, 2, "ord-2", "checkout", 200,
        )])])
        .await;
    assert!(
        matches!(refused, Err(StorageError::ReadOnly)),
        "{refused:?}"
    );
    reader.close().await;
    case.store.close().await;
}

/// The flows list as (ID, first start, last end, failed), newest first.
async fn listed(store: &Store) -> Vec<(String, i64, i64, bool)> {
    let query = CorrelationQuery {
        limit: 10,
        ..CorrelationQuery::default()
    };
    store
        .recent_correlations(&query)
        .await
        .unwrap()
        .into_iter()
        .map(|r| {
            (
                r.correlation_id,
                r.first_start_ns,
                r.last_end_ns,
                r.has_error,
            )
        })
        .collect()
}

async fn a_retried_span_that_changes_correlation_takes_its_summary_along(case: Case) {
    let store = &case.store;
    let span = |id: u8, correlation: &str, start: i64, failed: bool| {
        let span = testsuite::span(trace(1), span_id(id))
            .correlation(correlation)
            .times(start, start + 10);
        if failed { span.error("failed") } else { span }.build()
    };
    write(
        store,
        &[span(1, "old", 100, true), span(2, "old", 500, false)],
    )
    .await;
    assert_eq!(listed(store).await, [("old".into(), 100, 510, true)]);

    // The failed first span is retried carrying another ID: `old` keeps span 2 only.
    write(store, &[span(1, "new", 100, true)]).await;
    assert_eq!(
        listed(store).await,
        [
            ("old".into(), 500, 510, false),
            ("new".into(), 100, 110, true)
        ],
        "the old summary is worked out again from the span it still has"
    );

    // Its last span moves too: `old` is gone, not listed with no spans.
    write(store, &[span(2, "new", 500, false)]).await;
    assert_eq!(listed(store).await, [("new".into(), 100, 510, true)]);
    assert!(
        store
            .flow_spans(&["old".into()], 10)
            .await
            .unwrap()
            .is_empty()
    );

    // Both copies in one write (a quick retry merged with its first try).
    write(
        store,
        &[span(3, "first", 900, false), span(3, "second", 900, false)],
    )
    .await;
    let ids: Vec<String> = listed(store).await.into_iter().map(|r| r.0).collect();
    assert_eq!(ids, ["second", "new"], "no summary is left for `first`");
}

async fn text_with_nul_is_stored_with_a_replacement_and_spares_its_batch(case: Case) {
    // NUL is valid in OTLP's strings but not in PostgreSQL's text: a span carrying one
    // must not fail the write of every span batched with it. Both backends keep U+FFFD.
    let store = &case.store;
    let hostile = testsuite::span(trace(1), span_id(1))
        .send("orders\0dlq")
        .name("send\0orders")
        .correlation("ord\0-1")
        .attribute("note\0key", "a\0b")
        .build();
    let plain = order_span(2, 2, "ord-2", "checkout", 200);
    write(store, &[hostile, plain.clone()]).await;

    let stored = store.spans_by_trace(trace(1), 10).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].name, "send\u{FFFD}orders");
    assert_eq!(
        stored[0].messaging.destination.as_deref(),
        Some("orders\u{FFFD}dlq")
    );
    assert_eq!(
        stored[0].attributes.get("note\u{FFFD}key"),
        Some(&serde_json::json!("a\u{FFFD}b"))
    );
    assert_eq!(
        store
            .traces_with_attribute(&["note\u{FFFD}key".into()], "a\u{FFFD}b", 100)
            .await
            .unwrap(),
        [trace(1)],
        "the attribute is found as it is stored"
    );
    let ids: Vec<String> = listed(store).await.into_iter().map(|r| r.0).collect();
    assert_eq!(ids, ["ord-2", "ord\u{FFFD}-1"]);
    assert_eq!(
        store.spans_by_correlation("ord-2", 10).await.unwrap(),
        vec![plain]
    );
}

async fn concurrent_writes_of_one_flow_keep_every_span_once(case: Case) {
    // Several writes at once (several collectors, or one collector's concurrent commits on
    // PostgreSQL) that share a correlation and retry each other's spans in other orders.
    let store = &case.store;
    let span = |id: u8| {
        testsuite::span(trace(id % 4 + 1), span_id(id + 1))
            .correlation("shared")
            .times(i64::from(id) * 10, i64::from(id) * 10 + 5)
            .build()
    };
    let writes: Vec<Vec<SpanRecord>> = (0..4_u8)
        .map(|w| {
            let mut spans: Vec<SpanRecord> = (w * 30..w * 30 + 30).map(span).collect();
            // Each write also carries, in reverse, ten spans of the next one.
            let next = (w + 1) % 4;
            spans.extend((next * 30..next * 30 + 10).rev().map(span));
            spans
        })
        .collect();
    let tasks: Vec<_> = writes
        .into_iter()
        .map(|spans| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .write_spans(vec![EncodedSpans::encode(&spans)])
                    .await
                    .unwrap();
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(store.span_count().await.unwrap(), 120);
    assert_eq!(
        store
            .spans_by_correlation("shared", 500)
            .await
            .unwrap()
            .len(),
        120
    );
    assert_eq!(listed(store).await, [("shared".into(), 0, 1195, false)]);
}
