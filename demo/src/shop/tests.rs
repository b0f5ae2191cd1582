//! Tests of the running shop on the embedded bus: faults reach the wire as they should,
//! read back byte for byte by an observer group.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use causeway_conventions::header::{
    CE_ID, CE_TYPE, CORRELATION_ID, DLQ_ORIGINAL_TOPIC, DLQ_REASON, TRACEPARENT,
};
use causeway_instrumentation::Headers;

use super::*;
use crate::bus::{Bus, BusRecord};
use crate::catalog::{TOPIC_ORDERS, TOPIC_ORDERS_DLQ, TOPIC_SHIPMENTS};
use crate::faults::FaultKind;

/// Runs a shop with every fault, 100 ms apart, until all are applied and it drained.
async fn run_all_faults(bus: &Bus) -> ShopReport {
    let schedule: Vec<ScheduledFault> = FaultKind::ALL
        .into_iter()
        .enumerate()
        .map(|(index, kind)| {
            let at = Duration::from_millis(100 * (index as u64 + 1));
            let mut fault = ScheduledFault::new(kind, at);
            fault.duration = Duration::from_millis(300);
            fault.delay = Duration::from_millis(20);
            fault
        })
        .collect();
    let config = ShopConfig {
        rate: 40.0,
        schedule,
    };
    let shop = start(
        config,
        Transport::Embedded(bus.clone()),
        ShopTelemetry::disabled(),
    )
    .await
    .unwrap();
    let started = tokio::time::Instant::now();
    while shop.injected().len() < FaultKind::ALL.len() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "faults never applied"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shop.stop(Duration::from_millis(500), Duration::from_secs(20))
        .await
}

/// Every record of `topic`, read by a fresh observer group.
fn read_all(bus: &Bus, topic: &str) -> Vec<BusRecord> {
    let observer = bus
        .subscribe(&format!("observer-{topic}"), &[topic])
        .unwrap();
    std::iter::from_fn(|| observer.poll()).collect()
}

fn headers(record: &BusRecord) -> Headers {
    Headers::from_entries(record.headers.clone())
}

fn correlation_of(report: &ShopReport, kind: FaultKind) -> String {
    report
        .injected
        .iter()
        .find(|f| f.kind == kind)
        .and_then(|f| f.correlation_id.clone())
        .unwrap()
}

#[tokio::test]
async fn shop_runs_every_fault_and_drains_its_queues() {
    let bus = Bus::new();
    let report = run_all_faults(&bus).await;
    assert!(report.orders >= 1);
    assert_eq!(report.dead_lettered, 1, "the poison order, once");
    assert_eq!(report.transport_errors, 0);
    let mut kinds: Vec<FaultKind> = report.injected.iter().map(|f| f.kind).collect();
    kinds.sort();
    let mut all = FaultKind::ALL.to_vec();
    all.sort();
    assert_eq!(kinds, all);
    let waiting: Vec<_> = bus
        .lag_snapshot()
        .into_iter()
        .filter(|s| s.lag_messages() > 0)
        .collect();
    assert!(waiting.is_empty(), "every group caught up: {waiting:?}");
}

#[tokio::test]
async fn faults_reach_the_wire_as_injected() {
    let bus = Bus::new();
    let report = run_all_faults(&bus).await;

    // Duplicate: the same record, headers byte for byte, at two offsets.
    let duplicate = correlation_of(&report, FaultKind::DuplicateDelivery);
    let orders = read_all(&bus, TOPIC_ORDERS);
    let copies: Vec<&BusRecord> = orders
        .iter()
        .filter(|r| headers(r).get_str(CORRELATION_ID) == Some(duplicate.as_str()))
        .filter(|r| {
            headers(r)
                .get_str(CE_TYPE)
                .is_some_and(|t| t.starts_with("order.placed"))
        })
        .collect();
    assert_eq!(copies.len(), 2, "sent twice");
    assert_eq!(copies[0].headers, copies[1].headers);
    assert_ne!(copies[0].offset, copies[1].offset);

    // Dropped traceparent: the shipment of that order has the business headers only.
    let dropped = correlation_of(&report, FaultKind::DroppedTraceparent);
    let shipments = read_all(&bus, TOPIC_SHIPMENTS);
    let by_order: BTreeMap<String, Headers> = shipments
        .iter()
        .map(headers)
        .filter_map(|h| Some((h.get_str(CORRELATION_ID)?.to_owned(), h)))
        .collect();
    let shipment = &by_order[&dropped];
    assert_eq!(shipment.get_str(TRACEPARENT), None, "traceparent dropped");
    assert!(
        shipment.get_str(CE_ID).is_some(),
        "cloudevents headers kept"
    );
    let others_traced = by_order
        .iter()
        .filter(|(order, _)| **order != dropped)
        .all(|(_, h)| h.get_str(TRACEPARENT).is_some());
    assert!(others_traced, "only that order loses its trace context");

    // Poison: dead-lettered with its origin and reason, keeping its event id.
    let poison = correlation_of(&report, FaultKind::PoisonMessage);
    let dead = read_all(&bus, TOPIC_ORDERS_DLQ);
    assert_eq!(dead.len(), 1);
    let dead_headers = headers(&dead[0]);
    assert_eq!(dead_headers.get_str(CORRELATION_ID), Some(poison.as_str()));
    assert_eq!(dead_headers.get_str(DLQ_ORIGINAL_TOPIC), Some(TOPIC_ORDERS));
    assert!(
        dead_headers
            .get_str(DLQ_REASON)
            .is_some_and(|r| r.starts_with("cannot parse order.placed")),
        "{dead_headers:?}"
    );
    let original = orders
        .iter()
        .find(|r| headers(r).get_str(CORRELATION_ID) == Some(poison.as_str()))
        .unwrap();
    assert_eq!(
        dead[0].payload, original.payload,
        "the body is kept for replay"
    );
    assert_eq!(
        dead_headers.get_str(CE_ID),
        headers(original).get_str(CE_ID)
    );

    // Schema bump: the bumped order is placed as v2, and the bridge re-publishes it as v1.
    let bumped = correlation_of(&report, FaultKind::SchemaBump);
    let types: Vec<String> = orders
        .iter()
        .map(headers)
        .filter(|h| h.get_str(CORRELATION_ID) == Some(bumped.as_str()))
        .filter_map(|h| h.get_str(CE_TYPE).map(str::to_owned))
        .collect();
    assert!(
        types.starts_with(&["order.placed.v2".to_owned(), "order.placed.v1".to_owned()]),
        "{types:?}"
    );
}

#[tokio::test]
async fn slow_consumer_builds_lag_then_recovers() {
    let bus = Bus::new();
    let mut slow = ScheduledFault::new(FaultKind::SlowConsumer, Duration::from_millis(100));
    slow.group = "notification".into();
    slow.duration = Duration::from_millis(1_500);
    slow.delay = Duration::from_millis(60);
    let config = ShopConfig {
        rate: 40.0,
        schedule: vec![slow],
    };
    let shop = start(
        config,
        Transport::Embedded(bus.clone()),
        ShopTelemetry::disabled(),
    )
    .await
    .unwrap();
    let group_lag = |group: &str| -> i64 {
        bus.lag_snapshot()
            .iter()
            .filter(|s| s.group == group)
            .map(|s| s.lag_messages())
            .sum()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut peak = 0;
    while peak < 15 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "lag never built: peak {peak}"
        );
        peak = peak.max(group_lag("notification"));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(group_lag("payment") < 15, "other groups keep up");
    let report = shop
        .stop(Duration::from_millis(500), Duration::from_secs(30))
        .await;
    assert_eq!(report.injected.len(), 1);
    assert_eq!(
        group_lag("notification"),
        0,
        "the group caught up after the window"
    );
}
