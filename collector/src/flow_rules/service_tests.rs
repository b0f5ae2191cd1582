#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use causeway_conventions::alert::annotation;
use causeway_storage::testsuite::span;
use causeway_storage::{EncodedSpans, SpanRecord};

use super::*;
use crate::flows_config::FlowsConfig;

const S: i64 = 1_000_000_000;

fn ids(n: u8) -> (TraceId, SpanId) {
    (TraceId([n; 16]), SpanId([n; 8]))
}

/// A send of order `n` to `orders` at `at_ns`.
fn send(n: u8, at_ns: i64) -> SpanRecord {
    let (trace, id) = ids(n);
    span(trace, id)
        .service("order-service")
        .send("orders")
        .correlation(format!("ord-{n}"))
        .event_type("order.placed.v1")
        .message_id(format!("m{n}"))
        .partition(0)
        .offset(i64::from(n))
        .times(at_ns, at_ns + 1_000)
        .build()
}

/// `group` processing order `n` (a child of its send) at `at_ns`.
fn process(n: u8, group: &str, at_ns: i64) -> SpanRecord {
    let (trace, parent) = ids(n);
    span(trace, SpanId([n, 0xc0, 0, 0, 0, 0, 0, group.len() as u8]))
        .service(format!("{group}-service"))
        .process("orders", group)
        .parent(parent)
        .correlation(format!("ord-{n}"))
        .message_id(format!("m{n}"))
        .partition(0)
        .offset(i64::from(n))
        .times(at_ns, at_ns + 1_000)
        .build()
}

/// Writes `spans` and waits until a pass can read them: at once on SQLite; on PostgreSQL
/// once every transaction older than the write's has finished (another test's may still
/// run for a moment).
async fn write(store: &Store, spans: &[SpanRecord]) {
    let rules = store.flow_rule_store().unwrap();
    let before = rules.newest_position().await.unwrap();
    store
        .write_spans(vec![EncodedSpans::encode(spans)])
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let mut readable = 0;
        let most = spans.len().max(10_000);
        for (after, through) in rules.pass_ranges(before, 1_000, most).await.unwrap() {
            readable += rules.spans_in(after, through, false).await.unwrap().len();
        }
        if readable >= spans.len() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the write never became readable"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

fn settings(text: &str) -> FlowRuleSettings {
    #[derive(serde::Deserialize)]
    struct File {
        flows: FlowsConfig,
    }
    let file: File = toml::from_str(text).unwrap();
    file.flows.rule_settings().unwrap()
}

const RULES: &str = "[flows]\n\
    [[flows.rules]]\nname = \"flow-incomplete\"\nkind = \"incomplete_after\"\nafter = \"10s\"\n\
    resolve_after = \"0s\"\n\
    [[flows.rules]]\nname = \"flow-dead-letter\"\nkind = \"dead_letter\"\nresolve_after = \"60s\"\n";

#[tokio::test]
async fn passes_read_only_new_spans_and_raise_one_alert_per_group_that_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("flows.db")).await.unwrap();
    alert_lifecycle(&store).await;
    assert!(
        store.alerts(10).await.unwrap()[0].annotations[annotation::FLOW_COMMANDS]
            .starts_with(&format!("causeway --db {}", dir.path().display())),
        "the command names the file"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flow_rules_run_the_same_on_postgres() {
    let schema = causeway_storage::testsuite::PgTestSchema::create().await;
    let database = causeway_storage::Database::parse(&schema.url).unwrap();
    let store = Store::open(&database).await.unwrap();
    alert_lifecycle(&store).await;
    let commands =
        store.alerts(10).await.unwrap()[0].annotations[annotation::FLOW_COMMANDS].clone();
    let bare = causeway_storage::PostgresUrl::parse(&schema.url)
        .unwrap()
        .without_password();
    assert!(
        commands.starts_with(&format!("causeway --db '{bare}' flow ")),
        "the command names the database, without its password: {commands}"
    );
    store.close().await;
    schema.drop().await;
}

/// Order 2 is never processed, order 3 is dead-lettered; the alerts fire once per group,
/// survive a restart, and resolve.
async fn alert_lifecycle(store: &Store) {
    let store = store.clone();
    let t0 = now_ns();
    // Billing is seen processing `orders`: the topology expects it from now on.
    write(&store, &[send(1, t0), process(1, "billing", t0 + S / 10)]).await;
    let mut service = FlowRuleService::new(store.clone(), settings(RULES), Vec::new())
        .await
        .unwrap();
    let first = service.pass(t0 + S).await.unwrap();
    assert_eq!(
        first.spans, 0,
        "history is not alerted on: it starts at the newest span"
    );

    // Order 2 is sent and never processed; order 3 is processed, fails and is
    // dead-lettered by billing; order 4 is processed in time.
    let (trace3, _) = ids(3);
    let failed = {
        let mut record = process(3, "billing", t0 + 2 * S);
        record.status_code = causeway_storage::StatusCode::Error;
        record
    };
    let dlq = span(trace3, SpanId([3, 0xd1, 0, 0, 0, 0, 0, 0]))
        .service("billing-service")
        .send("orders.dlq")
        .parent(failed.span_id)
        .correlation("ord-3")
        .event_type("order.placed.v1")
        .times(t0 + 2 * S + 10, t0 + 2 * S + 20)
        .build();
    write(
        &store,
        &[
            send(2, t0 + 2 * S),
            send(3, t0 + 2 * S),
            failed,
            dlq,
            send(4, t0 + 3 * S),
        ],
    )
    .await;
    // The processing of order 4 arrives in a later export than its send.
    let second = service.pass(t0 + 4 * S).await.unwrap();
    assert_eq!(
        second.spans, 5,
        "only the spans written since the last pass"
    );
    assert_eq!(second.matches, 1, "the dead letter");
    assert_eq!(second.firing, 1);
    write(&store, &[process(4, "billing", t0 + 5 * S)]).await;
    let third = service.pass(t0 + 6 * S).await.unwrap();
    assert_eq!((third.spans, third.overdue), (1, 0), "nothing due yet");

    let alerts = store.alerts(10).await.unwrap();
    assert_eq!(alerts.len(), 1);
    let dead = &alerts[0];
    assert_eq!(dead.rule, "flow-dead-letter");
    assert_eq!(dead.status, "firing");
    assert_eq!(dead.labels[label::CONSUMER_GROUP], "billing");
    assert_eq!(dead.labels[label::TOPIC], "orders");
    assert_eq!(dead.annotations[annotation::FLOW_IDS], "ord-3");
    assert!(
        dead.annotations[annotation::FLOW_COMMANDS].ends_with(" flow ord-3"),
        "{:?}",
        dead.annotations
    );

    // Past the 10s: order 2 is overdue for billing; order 4 was processed, order 3 too
    // (it failed, but billing took it).
    let fourth = service.pass(t0 + 13 * S).await.unwrap();
    assert_eq!(fourth.overdue, 1);
    assert_eq!(fourth.firing, 2);
    let late = store
        .alerts(10)
        .await
        .unwrap()
        .into_iter()
        .find(|a| a.rule == "flow-incomplete")
        .unwrap();
    assert_eq!(late.status, "firing");
    assert_eq!(late.labels[label::CONSUMER_GROUP], "billing");
    assert_eq!(late.annotations[annotation::COUNT], "1");
    assert_eq!(late.annotations[annotation::FLOW_IDS], "ord-2");

    // A restart picks up the cursor, the open alerts and their counts: no second episode.
    drop(service);
    let mut service = FlowRuleService::new(store.clone(), settings(RULES), Vec::new())
        .await
        .unwrap();
    let again = service.pass(t0 + 14 * S).await.unwrap();
    assert_eq!(again.spans, 0, "the cursor was kept");
    assert_eq!(again.firing, 2, "both alerts go on");
    let episodes = store.alerts(10).await.unwrap();
    assert_eq!(episodes.len(), 2, "no new episode: {episodes:?}");
    let recounted = episodes
        .iter()
        .find(|a| a.rule == "flow-incomplete")
        .unwrap();
    assert_eq!(
        recounted.annotations[annotation::COUNT],
        "1",
        "the overdue events counted again from the due-time table"
    );

    // Billing catches up on order 2: the incomplete alert resolves, the dead letter's
    // stays until its quiet time is over.
    write(&store, &[process(2, "billing", t0 + 15 * S)]).await;
    let caught_up = service.pass(t0 + 16 * S).await.unwrap();
    assert_eq!(caught_up.firing, 1);
    let statuses: Vec<(String, String)> = store
        .alerts(10)
        .await
        .unwrap()
        .into_iter()
        .map(|a| (a.rule, a.status))
        .collect();
    assert!(
        statuses.contains(&("flow-incomplete".into(), "resolved".into())),
        "{statuses:?}"
    );
    let quiet = service.pass(t0 + 70 * S).await.unwrap();
    assert_eq!(quiet.firing, 0, "a minute without a dead letter");
    assert!(
        store
            .alerts(10)
            .await
            .unwrap()
            .iter()
            .all(|a| a.status == "resolved")
    );
    let rules_store = store.flow_rule_store().unwrap();
    assert!(
        rules_store.subjects().await.unwrap().is_empty(),
        "ended episodes count nothing"
    );
    let cursor = rules_store.cursor().await.unwrap().unwrap();
    assert!(
        rules_store
            .pass_ranges(cursor, 1_000, 10_000)
            .await
            .unwrap()
            .is_empty(),
        "the cursor is past every span"
    );
}

#[tokio::test]
async fn a_consumption_stored_before_its_send_and_one_found_by_message_id_count() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("flows.db")).await.unwrap();
    let t0 = now_ns();
    write(&store, &[send(1, t0), process(1, "billing", t0)]).await;
    let mut service = FlowRuleService::new(store.clone(), settings(RULES), Vec::new())
        .await
        .unwrap();
    service.pass(t0).await.unwrap();
    // Billing's exporter is faster than the order service's: the processing of order 5
    // is stored (and evaluated) before its send.
    write(&store, &[process(5, "billing", t0 + S)]).await;
    service.pass(t0 + 2 * S).await.unwrap();
    write(&store, &[send(5, t0)]).await;
    service.pass(t0 + 3 * S).await.unwrap();
    // Order 6's consumer lost the trace context: no parent, but the same message id.
    write(&store, &[send(6, t0 + 3 * S)]).await;
    service.pass(t0 + 4 * S).await.unwrap();
    let mut orphan = process(6, "billing", t0 + 5 * S);
    orphan.parent_span_id = None;
    orphan.trace_id = TraceId([0x66; 16]);
    // Order 7 nobody processes: the one overdue event.
    write(&store, &[orphan, send(7, t0 + 5 * S)]).await;
    let report = service.pass(t0 + 20 * S).await.unwrap();
    assert_eq!(
        report.overdue, 1,
        "orders 5 and 6 were processed, 7 was not"
    );
    let alerts = store.alerts(10).await.unwrap();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].annotations[annotation::FLOW_IDS], "ord-7");
}

/// Ids of order `n` of many: its trace, its send, and `group`'s processing of it.
fn many_ids(n: u32, step: u8) -> (TraceId, SpanId) {
    let mut trace = [0x5a; 16];
    trace[..4].copy_from_slice(&n.to_be_bytes());
    let mut id = [step; 8];
    id[..4].copy_from_slice(&n.to_be_bytes());
    (TraceId(trace), SpanId(id))
}

/// Orders `orders` sent at `at_ns` to `orders` (message ids `e{n}`).
fn many_sends(orders: std::ops::Range<u32>, at_ns: i64) -> Vec<SpanRecord> {
    orders
        .map(|n| {
            let (trace, id) = many_ids(n, 1);
            span(trace, id)
                .service("order-service")
                .send("orders")
                .correlation(format!("ord-{n}"))
                .message_id(format!("e{n}"))
                .times(at_ns, at_ns + 1_000)
                .build()
        })
        .collect()
}

/// Billing processing `orders` (children of their sends) at `at_ns`.
fn many_processed(orders: impl Iterator<Item = u32>, at_ns: i64) -> Vec<SpanRecord> {
    orders
        .map(|n| {
            let (trace, send) = many_ids(n, 1);
            let (_, id) = many_ids(n, 2);
            span(trace, id)
                .service("billing-service")
                .process("orders", "billing")
                .parent(send)
                .correlation(format!("ord-{n}"))
                .message_id(format!("e{n}"))
                .times(at_ns, at_ns + 1_000)
                .build()
        })
        .collect()
}

/// Producers and consumers export apart, so the consumptions fall in later ranges of the
/// same pass than their sends: first 4,000 orders (their items held in memory until
/// consumed), then 15,000 (on SQLite, three ranges of sends: more than a pass holds, so
/// written, then consumed from the store).
/// Either way, only the order billing never took is left waiting and falls due.
async fn consumptions_in_later_ranges(store: &Store) {
    let t0 = now_ns();
    write(store, &[send(1, t0), process(1, "billing", t0)]).await;
    let mut service = FlowRuleService::new(store.clone(), settings(RULES), Vec::new())
        .await
        .unwrap();
    let rules_store = store.flow_rule_store().unwrap();

    write(store, &many_sends(0..4_000, t0 + S)).await;
    write(
        store,
        &many_processed((0..4_000).filter(|&n| n != 17), t0 + S),
    )
    .await;
    let held = service.pass(t0 + 2 * S).await.unwrap();
    assert_eq!(held.spans, 7_999);
    let waiting = rules_store.due_by(i64::MAX, 100_000).await.unwrap();
    let waiting: Vec<_> = waiting.iter().map(|i| i.correlation_id.clone()).collect();
    assert_eq!(waiting, [Some("ord-17".to_owned())], "only order 17 waits");

    let more = 10_000..10_000 + 15_000;
    write(store, &many_sends(more.clone(), t0 + 3 * S)).await;
    write(
        store,
        &many_processed(more.filter(|&n| n != 10_033), t0 + 3 * S),
    )
    .await;
    let released = service.pass(t0 + 4 * S).await.unwrap();
    assert_eq!(released.spans, 29_999);
    let waiting = rules_store.due_by(i64::MAX, 100_000).await.unwrap();
    let mut waiting: Vec<_> = waiting.iter().map(|i| i.correlation_id.clone()).collect();
    waiting.sort();
    assert_eq!(
        waiting,
        [Some("ord-10033".to_owned()), Some("ord-17".to_owned())]
    );

    let due = service.pass(t0 + 20 * S).await.unwrap();
    assert_eq!(
        (due.spans, due.overdue),
        (0, 2),
        "every span was passed once"
    );
    let alerts = store.alerts(10).await.unwrap();
    assert_eq!(alerts.len(), 1);
    let mut flows: Vec<&str> = alerts[0].annotations[annotation::FLOW_IDS]
        .split(",")
        .collect();
    flows.sort_unstable();
    assert_eq!(flows, ["ord-10033", "ord-17"]);
}

#[tokio::test]
async fn consumptions_in_later_ranges_of_a_pass_find_their_items_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("flows.db")).await.unwrap();
    consumptions_in_later_ranges(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumptions_in_later_ranges_of_a_pass_find_their_items_on_postgres() {
    let schema = causeway_storage::testsuite::PgTestSchema::create().await;
    let database = causeway_storage::Database::parse(&schema.url).unwrap();
    let store = Store::open(&database).await.unwrap();
    consumptions_in_later_ranges(&store).await;
    store.close().await;
    schema.drop().await;
}

/// A pass that fails while writing the items it held leaves its cursor where it was, so
/// the next pass evaluates the same spans again and loses none of them. The failure is a
/// trigger on the SQLite file that refuses new due items.
#[tokio::test]
async fn a_pass_that_fails_writing_its_held_items_loses_none() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flows.db");
    let store = Store::open(&path).await.unwrap();
    let t0 = now_ns();
    write(&store, &[send(1, t0), process(1, "billing", t0)]).await;
    let mut service = FlowRuleService::new(store.clone(), settings(RULES), Vec::new())
        .await
        .unwrap();
    let rules_store = store.flow_rule_store().unwrap();
    let cursor = rules_store.cursor().await.unwrap();
    write(&store, &many_sends(0..4_000, t0 + S)).await;
    write(
        &store,
        &many_processed((0..4_000).filter(|&n| n != 17), t0 + S),
    )
    .await;

    let refuse = |sql: &str| {
        let connection = rusqlite::Connection::open(&path).unwrap();
        connection
            .busy_timeout(std::time::Duration::from_secs(5))
            .unwrap();
        connection.execute_batch(sql).unwrap();
    };
    refuse(
        "CREATE TRIGGER refuse_due BEFORE INSERT ON flow_due \
         BEGIN SELECT RAISE(ABORT, 'refused by the test'); END;",
    );
    let failed = service.pass(t0 + 2 * S).await;
    assert!(failed.is_err(), "order 17's item could not be written");
    assert_eq!(
        rules_store.cursor().await.unwrap(),
        cursor,
        "the cursor did not pass the held items"
    );
    assert!(rules_store.due_by(i64::MAX, 10).await.unwrap().is_empty());

    refuse("DROP TRIGGER refuse_due;");
    let again = service.pass(t0 + 3 * S).await.unwrap();
    assert_eq!(again.spans, 7_999, "the same spans, evaluated again");
    let waiting = rules_store.due_by(i64::MAX, 10).await.unwrap();
    let waiting: Vec<_> = waiting.iter().map(|i| i.correlation_id.clone()).collect();
    assert_eq!(waiting, [Some("ord-17".to_owned())]);
    let due = service.pass(t0 + 20 * S).await.unwrap();
    assert_eq!((due.spans, due.overdue), (0, 1));
}
