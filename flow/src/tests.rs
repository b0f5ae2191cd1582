//! Flow reconstruction tests: hand-built spans for every anomaly and edge case, a golden
//! JSON document, and the property that span order never changes the flow.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod fixture;

use causeway_storage::SpanRecord;
use proptest::prelude::*;
use serde_json::Value;

use super::*;
use causeway_conventions::attribute;

use crate::render::{self, Format};
use fixture::{Fixture, MS, order_send, shop, span};

fn rebuild(spans: &[SpanRecord], topology: &Topology) -> Flow {
    reconstruct(spans, topology, &FlowOptions::default())
}

fn kinds(flow: &Flow) -> Vec<AnomalyKind> {
    flow.anomalies.iter().map(|a| a.kind).collect()
}

fn anomalies_of(flow: &Flow, kind: AnomalyKind) -> Vec<&Anomaly> {
    flow.anomalies.iter().filter(|a| a.kind == kind).collect()
}

fn step_named(flow: &Flow, name: &str) -> StepIndex {
    flow.steps.iter().position(|s| s.name == name).unwrap()
}

#[test]
fn shop_flow_has_hops_verdicts_and_a_critical_path() {
    let (spans, topology) = shop();
    let flow = rebuild(&spans, &topology);
    assert_eq!(flow.steps.len(), 5);
    assert_eq!(flow.events.len(), 2);
    assert_eq!(flow.duration_ns, 90 * MS);
    assert_eq!(flow.services, ["billing", "order-service", "shipping"]);
    let billing = flow
        .hops
        .iter()
        .find(|h| h.consumer_group == "billing")
        .unwrap();
    assert_eq!(
        billing.queue_wait_ns,
        Some(5 * MS),
        "12 ms start minus 7 ms send end"
    );
    assert_eq!(billing.processing_ns, 28 * MS);
    assert_eq!(billing.outcome, Outcome::Processed);
    let verdicts: Vec<(&str, Outcome)> = flow
        .verdicts
        .iter()
        .map(|v| (v.consumer_group.as_str(), v.outcome))
        .collect();
    assert_eq!(
        verdicts,
        [
            ("audit", Outcome::NotSeenYet),
            ("billing", Outcome::Processed),
            ("shipping", Outcome::Processed)
        ]
    );
    assert_eq!(flow.status, FlowStatus::Incomplete);
    assert_eq!(kinds(&flow), [AnomalyKind::Missing]);
    // Critical path: shipping (40) ← queue (18) ← send payments (2) ← billing before the
    // send (18) ← queue (5) ← send orders (2) ← POST /orders before the send (5).
    let shares = flow.critical_path.shares;
    assert_eq!(shares.total_ns(), 90 * MS, "the path covers the whole flow");
    assert_eq!(shares.queue_wait_ns, 23 * MS);
    assert_eq!(shares.publish_ns, 4 * MS);
    assert_eq!(shares.processing_ns, 63 * MS);
    let first = flow.critical_path.segments.first().unwrap();
    assert_eq!(flow.steps[first.step].name, "POST /orders");
}

#[test]
fn shop_flow_json_is_golden() {
    let (spans, topology) = shop();
    let flow = rebuild(&spans, &topology);
    insta::assert_snapshot!("shop_flow_json", render::json(&flow));
    insta::assert_snapshot!("shop_flow_text", render::text(&flow));
}

#[test]
fn shop_flow_renders_in_every_format() {
    let (spans, topology) = shop();
    let flow = rebuild(&spans, &topology);
    let text = render::render(&flow, Format::Text);
    assert!(text.contains("NOT SEEN YET"), "{text}");
    assert!(
        text.contains("⇢ billing  process orders") || text.contains("└─ billing  process orders"),
        "{text}"
    );
    let dot = render::render(&flow, Format::Dot);
    assert!(dot.starts_with("digraph flow {"), "{dot}");
    assert!(dot.contains("label=\"orders\", shape=cylinder"), "{dot}");
    let mermaid = render::render(&flow, Format::Mermaid);
    assert!(mermaid.starts_with("flowchart LR"), "{mermaid}");
    assert!(
        mermaid.contains("-.->"),
        "the missing audit delivery is dotted: {mermaid}"
    );
}

/// One fixture per anomaly: the spans, then the kind that must be found and the step
/// names that must prove it.
#[test]
fn every_anomaly_is_found_with_its_proof() {
    let send = order_send;
    let cases: Vec<(&str, Vec<SpanRecord>, AnomalyKind, Vec<&str>)> = vec![
        (
            "a failed span is an error",
            vec![span(1, 1, "billing", "charge", 0, 5).failed("card declined")],
            AnomalyKind::Error,
            vec!["charge"],
        ),
        (
            "two successful processings of one message by one group",
            vec![
                send(1, 0, "m1", "order.placed.v1"),
                span(1, 2, "billing", "first", 2, 3)
                    .parent(1)
                    .process("orders", "m1", "billing"),
                span(2, 3, "billing", "second", 9, 10)
                    .link(1, 1)
                    .process("orders", "m1", "billing"),
            ],
            AnomalyKind::DuplicateDelivery,
            vec!["first", "second"],
        ),
        (
            "a second delivery without a failure or retry count is a redelivery",
            vec![
                send(1, 0, "m1", "order.placed.v1"),
                span(1, 2, "billing", "first", 2, 3)
                    .parent(1)
                    .process("orders", "m1", "billing"),
                span(2, 3, "billing", "again", 9, 10)
                    .link(1, 1)
                    .process("orders", "m1", "billing"),
            ],
            AnomalyKind::Redelivery,
            vec!["first", "again"],
        ),
        (
            "a forward to a dead-letter topic under a failed processing",
            vec![
                send(1, 0, "m1", "order.placed.v1"),
                span(1, 2, "billing", "poison", 2, 9)
                    .parent(1)
                    .process("orders", "m1", "billing")
                    .failed("cannot parse"),
                span(1, 3, "billing", "send orders.dlq", 7, 8)
                    .parent(2)
                    .send("orders.dlq", "m1", "order.placed.v1"),
            ],
            AnomalyKind::DeadLetter,
            vec!["poison", "send orders.dlq"],
        ),
        (
            "an event type matching a compensation pattern",
            vec![send(1, 0, "m9", "inventory.released.v1")],
            AnomalyKind::Compensation,
            vec!["send m9"],
        ),
        (
            "key k1 published at offsets 1 then 2, processed 2 first",
            vec![
                send(1, 0, "m1", "order.placed.v1").key("k1", 1),
                send(2, 1, "m2", "order.updated.v1").key("k1", 2),
                span(1, 3, "billing", "late", 20, 21)
                    .parent(1)
                    .process("orders", "m1", "billing"),
                span(1, 4, "billing", "early", 10, 11)
                    .parent(2)
                    .process("orders", "m2", "billing"),
            ],
            AnomalyKind::OutOfOrder,
            vec!["late", "early"],
        ),
        (
            "a process in a new trace tied to its send by message id only",
            vec![
                send(1, 0, "m1", "order.placed.v1"),
                span(7, 2, "billing", "no context", 5, 6).process("orders", "m1", "billing"),
            ],
            AnomalyKind::PropagationBreak,
            vec!["send m1", "no context"],
        ),
        (
            "the instrumentation recorded a propagation break",
            vec![
                span(7, 2, "billing", "bad header", 5, 6)
                    .process("orders", "m1", "billing")
                    .attr(
                        attribute::PROPAGATION_BREAK,
                        Value::from("invalid traceparent"),
                    ),
            ],
            AnomalyKind::PropagationBreak,
            vec!["bad header"],
        ),
        (
            "a re-publish under a correlated process that lost the correlation id",
            vec![
                send(1, 0, "m1", "order.placed.v1"),
                span(1, 2, "billing", "handle", 2, 9)
                    .parent(1)
                    .process("orders", "m1", "billing"),
                span(1, 3, "billing", "send anonymous", 4, 5)
                    .parent(2)
                    .send("payments", "m2", "payment.captured.v1")
                    .uncorrelated(),
            ],
            AnomalyKind::PropagationBreak,
            vec!["handle", "send anonymous"],
        ),
        (
            "order.placed.v1 then order.placed.v2",
            vec![
                send(1, 0, "m1", "order.placed.v1"),
                send(2, 5, "m2", "order.placed.v2"),
            ],
            AnomalyKind::SchemaChange,
            vec!["send m1", "send m2"],
        ),
        (
            "one event type with two dataschemas",
            vec![
                send(1, 0, "m1", "order.placed")
                    .attr(attribute::CLOUDEVENTS_EVENT_DATASCHEMA, Value::from("s1")),
                send(2, 5, "m2", "order.placed")
                    .attr(attribute::CLOUDEVENTS_EVENT_DATASCHEMA, Value::from("s2")),
            ],
            AnomalyKind::SchemaChange,
            vec!["send m1", "send m2"],
        ),
        (
            "the consumer started before the producer ended",
            vec![
                span(1, 1, "order-service", "send m1", 10, 20).send(
                    "orders",
                    "m1",
                    "order.placed.v1",
                ),
                span(1, 2, "billing", "early bird", 5, 30)
                    .parent(1)
                    .process("orders", "m1", "billing"),
            ],
            AnomalyKind::ClockSkew,
            vec!["send m1", "early bird"],
        ),
        (
            "the message timestamp says the consumer read it before it was produced",
            vec![
                span(1, 1, "order-service", "send m1", 0, 1).send(
                    "orders",
                    "m1",
                    "order.placed.v1",
                ),
                span(1, 2, "billing", "reader", 5, 6)
                    .parent(1)
                    .process("orders", "m1", "billing")
                    .attr(attribute::QUEUE_TIME_MS, Value::from(-3.0)),
            ],
            AnomalyKind::ClockSkew,
            vec!["send m1", "reader"],
        ),
    ];
    for (reason, spans, kind, proof) in cases {
        let flow = rebuild(&spans, &Topology::new());
        let expected: Vec<StepIndex> = proof.iter().map(|name| step_named(&flow, name)).collect();
        let found = flow
            .anomalies
            .iter()
            .any(|a| a.kind == kind && a.steps == expected);
        assert!(
            found,
            "{reason}: wanted {kind:?} on {proof:?}, got {:#?}",
            flow.anomalies
        );
        // Every case still renders in every format.
        for format in [Format::Text, Format::Json, Format::Dot, Format::Mermaid] {
            assert!(!render::render(&flow, format).is_empty(), "{reason}");
        }
    }
}

#[test]
fn a_consumer_starting_while_the_send_awaits_its_ack_is_not_skew() {
    // The send span lasts until the broker acknowledges; the consumer may read the message
    // before that. Only starting before the send began would be impossible.
    let spans = vec![
        span(1, 1, "order-service", "send m1", 10, 20).send("orders", "m1", "order.placed.v1"),
        span(1, 2, "billing", "prompt reader", 15, 30)
            .parent(1)
            .process("orders", "m1", "billing"),
    ];
    let flow = rebuild(&spans, &Topology::new());
    assert!(
        !kinds(&flow).contains(&AnomalyKind::ClockSkew),
        "{:?}",
        kinds(&flow)
    );
    assert!(flow.hops.iter().all(|hop| !hop.clock_skew));
    assert_eq!(
        flow.hops[0].queue_wait_ns,
        Some(0),
        "no negative wait without skew"
    );
}

#[test]
fn a_recorded_break_on_a_message_matched_consumption_is_one_break() {
    // What the real instrumentation stores when `traceparent` was dropped: the process span
    // is a new root, matched to its send by message id, and records the break itself.
    let spans = vec![
        span(1, 1, "order-service", "send m1", 0, 1).send("orders", "m1", "order.placed.v1"),
        span(7, 2, "billing", "no context", 5, 6)
            .process("orders", "m1", "billing")
            .attr(attribute::PROPAGATION_BREAK, Value::from("missing")),
    ];
    let flow = rebuild(&spans, &Topology::new());
    let breaks = anomalies_of(&flow, AnomalyKind::PropagationBreak);
    assert_eq!(breaks.len(), 1, "one break, not two: {breaks:?}");
    assert_eq!(
        breaks[0].steps,
        [
            step_named(&flow, "send m1"),
            step_named(&flow, "no context")
        ]
    );
    assert!(
        breaks[0].detail.ends_with("(missing)"),
        "{}",
        breaks[0].detail
    );
}

#[test]
fn a_dead_lettered_compensation_is_one_compensation() {
    let spans = vec![
        span(1, 1, "order-service", "send m1", 0, 1).send("orders", "m1", "order.cancelled.v1"),
        span(1, 2, "billing", "poison", 2, 9)
            .parent(1)
            .process("orders", "m1", "billing")
            .failed("cannot parse"),
        span(1, 3, "billing", "send orders.dlq", 4, 5)
            .parent(2)
            .send("orders.dlq", "m1", "order.cancelled.v1"),
    ];
    let flow = rebuild(&spans, &Topology::new());
    let compensations = anomalies_of(&flow, AnomalyKind::Compensation);
    assert_eq!(compensations.len(), 1, "{compensations:?}");
    assert_eq!(
        compensations[0].steps,
        [step_named(&flow, "send m1"), step_named(&flow, "poison")],
        "the original event and its processing prove it, not the copy"
    );
    assert!(kinds(&flow).contains(&AnomalyKind::DeadLetter));
}

#[test]
fn verdicts_cover_retries_failures_and_dead_letters() {
    let send = span(1, 1, "order-service", "send", 0, 1).send("orders", "m1", "order.placed.v1");
    let attempt = |s, start, group: &str| {
        span(1, s, group, &format!("attempt {s}"), start, start + 2)
            .parent(1)
            .process("orders", "m1", group)
    };
    let cases: Vec<(&str, Vec<SpanRecord>, Outcome, u32, i64)> = vec![
        (
            "one good attempt",
            vec![attempt(2, 3, "g")],
            Outcome::Processed,
            0,
            0,
        ),
        (
            "one failed attempt",
            vec![attempt(2, 3, "g").failed("boom")],
            Outcome::Failed,
            0,
            0,
        ),
        (
            "failed, backed off 5 ms, then processed",
            vec![attempt(2, 3, "g").failed("boom"), attempt(3, 10, "g")],
            Outcome::RetriedThenProcessed,
            1,
            5 * MS,
        ),
        (
            "a recorded retry count counts as a retry",
            vec![attempt(2, 3, "g").attr(attribute::RETRY_COUNT, Value::from(2))],
            Outcome::RetriedThenProcessed,
            2,
            0,
        ),
        (
            "processed twice without a failure (a duplicate delivery) is not a retry",
            vec![attempt(2, 3, "g"), attempt(3, 10, "g")],
            Outcome::Processed,
            1,
            5 * MS,
        ),
        (
            "failed then dead-lettered",
            vec![
                attempt(2, 3, "g").failed("poison"),
                span(1, 3, "g", "dlq", 4, 4)
                    .parent(2)
                    .send("orders-dlt", "m1", "order.placed.v1"),
            ],
            Outcome::DeadLettered,
            0,
            0,
        ),
    ];
    for (reason, extra, outcome, retries, backoff) in cases {
        let mut spans = vec![send.clone()];
        spans.extend(extra);
        let flow = rebuild(&spans, &Topology::new());
        let hop = flow.hops.iter().find(|h| h.consumer_group == "g").unwrap();
        assert_eq!(hop.outcome, outcome, "{reason}");
        assert_eq!(hop.retries, retries, "{reason}");
        assert_eq!(hop.backoff_ns, backoff, "{reason}");
    }
}

#[test]
fn cycles_through_links_and_parents_still_render() {
    let spans = vec![
        span(1, 1, "a", "one", 0, 10).link(1, 2),
        span(1, 2, "b", "two", 1, 5).parent(1).link(1, 1),
        span(1, 3, "c", "three", 2, 4).parent(4),
        span(1, 4, "c", "four", 3, 6).parent(3),
    ];
    let flow = rebuild(&spans, &Topology::new());
    assert_eq!(flow.steps.len(), 4);
    let text = render::text(&flow);
    for name in ["one", "two", "three", "four"] {
        assert!(
            text.contains(name),
            "every step is printed once despite cycles: {text}"
        );
    }
    assert!(flow.critical_path.shares.total_ns() > 0);
}

#[test]
fn missing_parents_are_marked_and_become_roots() {
    let spans = vec![
        span(1, 1, "a", "orphan", 0, 10).parent(99),
        span(1, 2, "a", "child", 1, 5).parent(1),
    ];
    let flow = rebuild(&spans, &Topology::new());
    assert!(flow.steps[0].missing_parent);
    assert_eq!(flow.steps[1].parent, Some(0));
    assert!(render::text(&flow).contains("(parent not stored)"));
}

#[test]
fn thousands_of_spans_render() {
    let mut spans = Vec::new();
    for i in 0..2_000u16 {
        let start = i64::from(i) * 3;
        let message = format!("m{i}");
        spans.push(
            span(1, 2 * i + 1, "producer", "send", start, start + 1).send(
                "orders",
                &message,
                "order.placed.v1",
            ),
        );
        let mut process = span(1, 2 * i + 2, "consumer", "process", start + 2, start + 3)
            .process("orders", &message, "billing");
        if i > 0 {
            process = process.parent(2 * i - 1 + 1);
        }
        spans.push(process.link(1, 2 * i + 1));
    }
    let flow = rebuild(&spans, &Topology::from_pairs([("orders", "billing")]));
    assert_eq!(flow.steps.len(), 4_000);
    assert_eq!(flow.events.len(), 2_000);
    assert!(
        flow.verdicts
            .iter()
            .all(|v| v.outcome == Outcome::Processed)
    );
    assert!(render::text(&flow).lines().count() > 4_000);
}

#[test]
fn text_output_strips_escape_sequences_from_span_strings() {
    let spans =
        vec![span(1, 1, "evil\u{1b}[2J", "name\u{1b}]0;pwned\u{7}", 0, 1).failed("x\u{1b}[31m")];
    let flow = rebuild(&spans, &Topology::new());
    for format in [Format::Text, Format::Dot, Format::Mermaid] {
        let out = render::render(&flow, format);
        assert!(
            !out.contains('\u{1b}'),
            "{format:?} leaks an escape: {out:?}"
        );
    }
}

#[test]
fn empty_input_gives_an_empty_flow() {
    let flow = rebuild(&[], &Topology::new());
    assert!(flow.steps.is_empty());
    assert_eq!(flow.status, FlowStatus::Ok);
    assert!(render::text(&flow).contains("no anomalies"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any order of the input, with any spans repeated, gives the same flow.
    #[test]
    fn span_order_and_repeats_never_change_the_flow(
        order in Just((0..9usize).collect::<Vec<_>>()).prop_shuffle(),
        repeats in proptest::collection::vec(0..9usize, 0..4),
    ) {
        let (mut spans, topology) = shop();
        spans.push(span(2, 6, "billing", "redelivered", 60, 70).link(1, 2).process("orders", "m1", "billing"));
        spans.push(span(1, 7, "order-service", "send cancel", 80, 81).parent(1).send("orders", "m3", "order.cancelled.v1"));
        spans.push(span(3, 8, "billing", "no context", 85, 86).process("orders", "m3", "billing").failed("boom"));
        spans.push(span(1, 9, "order-service", "skewed", 70, 75).parent(99));
        let expected = rebuild(&spans, &topology);
        let mut shuffled: Vec<SpanRecord> = order.iter().map(|&i| spans[i].clone()).collect();
        shuffled.extend(repeats.iter().map(|&i| spans[i].clone()));
        let actual = rebuild(&shuffled, &topology);
        prop_assert_eq!(render::json(&actual), render::json(&expected));
        prop_assert_eq!(actual, expected);
    }
}

#[test]
fn every_anomaly_kind_is_a_fault_or_a_fact() {
    let plain = Circumstances::default();
    let recovered = Circumstances {
        retried_then_processed: true,
        ..plain
    };
    let conflict = Circumstances {
        schema_conflict: true,
        ..plain
    };
    let cases = [
        (
            AnomalyKind::Error,
            plain,
            AnomalyClass::Fault,
            "a failure nobody recovered from",
        ),
        (
            AnomalyKind::Error,
            recovered,
            AnomalyClass::Fact,
            "a failed attempt the consumer retried and then processed",
        ),
        (
            AnomalyKind::DuplicateDelivery,
            plain,
            AnomalyClass::Fault,
            "the message was processed twice: its side effects happened twice",
        ),
        (
            AnomalyKind::Redelivery,
            plain,
            AnomalyClass::Fact,
            "delivered again but not processed twice (that would be a duplicate_delivery too)",
        ),
        (
            AnomalyKind::DeadLetter,
            plain,
            AnomalyClass::Fault,
            "the message was given up on",
        ),
        (
            AnomalyKind::Compensation,
            plain,
            AnomalyClass::Fault,
            "the saga undid work: the business outcome failed",
        ),
        (
            AnomalyKind::OutOfOrder,
            plain,
            AnomalyClass::Fault,
            "a consumer saw a key's events in the wrong order",
        ),
        (
            AnomalyKind::PropagationBreak,
            plain,
            AnomalyClass::Fault,
            "a service lost the trace context or the correlation ID",
        ),
        (
            AnomalyKind::SchemaChange,
            plain,
            AnomalyClass::Fact,
            "a new version was seen and everybody took it",
        ),
        (
            AnomalyKind::SchemaChange,
            conflict,
            AnomalyClass::Fault,
            "a consumer failed on the new version, or a hop's sides disagree on it",
        ),
        (
            AnomalyKind::ClockSkew,
            plain,
            AnomalyClass::Fact,
            "clocks disagree; the flow itself is fine",
        ),
        (
            AnomalyKind::Missing,
            plain,
            AnomalyClass::Fault,
            "a group that should have processed an event has not",
        ),
    ];
    for (kind, circumstances, class, reason) in cases {
        assert_eq!(classify(kind, circumstances), class, "{kind:?}: {reason}");
    }
    // Circumstances that do not apply to a kind do not change it.
    for kind in [
        AnomalyKind::DeadLetter,
        AnomalyKind::Missing,
        AnomalyKind::Redelivery,
        AnomalyKind::ClockSkew,
    ] {
        let both = Circumstances {
            retried_then_processed: true,
            schema_conflict: true,
        };
        assert_eq!(classify(kind, both), classify(kind, plain), "{kind:?}");
    }
}

/// The class as reconstruction decides it, from the flow's own hops.
#[test]
fn reconstruction_classes_anomalies_from_the_flow() {
    let send = order_send;
    let attempt = |s, parent, start, message: &str| {
        span(1, s, "billing", &format!("attempt {s}"), start, start + 2)
            .parent(parent)
            .process("orders", message, "billing")
    };
    type Case<'a> = (&'a str, Vec<SpanRecord>, AnomalyKind, AnomalyClass);
    let cases: Vec<Case> = vec![
        (
            "failed, then processed on the retry: the error is a fact",
            vec![
                send(1, 0, "m1", "order.placed.v1"),
                attempt(2, 1, 3, "m1").failed("timeout"),
                attempt(3, 1, 10, "m1"),
            ],
            AnomalyKind::Error,
            AnomalyClass::Fact,
        ),
        (
            "a failure under a retried attempt (its database call) is a fact too",
            vec![
                send(1, 0, "m1", "order.placed.v1"),
                attempt(2, 1, 3, "m1").failed("timeout"),
                span(1, 4, "billing", "db insert", 3, 4)
                    .parent(2)
                    .failed("lock timeout"),
                attempt(3, 1, 10, "m1"),
            ],
            AnomalyKind::Error,
            AnomalyClass::Fact,
        ),
        (
            "failed on every attempt: a fault",
            vec![
                send(1, 0, "m1", "order.placed.v1"),
                attempt(2, 1, 3, "m1").failed("timeout"),
                attempt(3, 1, 10, "m1").failed("timeout"),
            ],
            AnomalyKind::Error,
            AnomalyClass::Fault,
        ),
        (
            "failed, then dead-lettered: the errors are faults",
            vec![
                send(1, 0, "m1", "order.placed.v1"),
                attempt(2, 1, 3, "m1").failed("poison"),
                span(1, 4, "billing", "send orders.dlq", 4, 5)
                    .parent(2)
                    .send("orders.dlq", "m1", "order.placed.v1"),
            ],
            AnomalyKind::Error,
            AnomalyClass::Fault,
        ),
        (
            "a failure outside any processing is a fault",
            vec![span(1, 1, "billing", "charge", 0, 5).failed("card declined")],
            AnomalyKind::Error,
            AnomalyClass::Fault,
        ),
        (
            "v1 then v2, both processed: the version change is a fact",
            vec![
                send(1, 0, "m1", "order.placed.v1"),
                attempt(2, 1, 2, "m1"),
                send(3, 5, "m2", "order.placed.v2"),
                attempt(4, 3, 7, "m2"),
            ],
            AnomalyKind::SchemaChange,
            AnomalyClass::Fact,
        ),
        (
            "the consumer failed on v2: a fault",
            vec![
                send(1, 0, "m1", "order.placed.v1"),
                attempt(2, 1, 2, "m1"),
                send(3, 5, "m2", "order.placed.v2"),
                attempt(4, 3, 7, "m2").failed("unknown field"),
            ],
            AnomalyKind::SchemaChange,
            AnomalyClass::Fault,
        ),
        (
            "the consumer failed on v1, the old version: still a fact",
            vec![
                send(1, 0, "m1", "order.placed.v1"),
                attempt(2, 1, 2, "m1").failed("database down"),
                send(3, 5, "m2", "order.placed.v2"),
                attempt(4, 3, 7, "m2"),
            ],
            AnomalyKind::SchemaChange,
            AnomalyClass::Fact,
        ),
        (
            "the producer sent v2 and its consumer recorded v1: they disagree",
            vec![
                send(1, 0, "m1", "order.placed.v1"),
                send(3, 5, "m2", "order.placed.v2"),
                {
                    let mut consumer = attempt(4, 3, 7, "m2");
                    consumer.messaging.event_type = Some("order.placed.v1".into());
                    consumer
                },
            ],
            AnomalyKind::SchemaChange,
            AnomalyClass::Fault,
        ),
        (
            "a dataschema the consumer read differs from the one sent",
            vec![
                send(1, 0, "m1", "order.placed")
                    .attr(attribute::CLOUDEVENTS_EVENT_DATASCHEMA, Value::from("s1")),
                send(3, 5, "m2", "order.placed")
                    .attr(attribute::CLOUDEVENTS_EVENT_DATASCHEMA, Value::from("s2")),
                attempt(4, 3, 7, "m2")
                    .attr(attribute::CLOUDEVENTS_EVENT_DATASCHEMA, Value::from("s1")),
            ],
            AnomalyKind::SchemaChange,
            AnomalyClass::Fault,
        ),
    ];
    for (reason, spans, kind, class) in cases {
        let flow = rebuild(&spans, &Topology::new());
        let classes: Vec<AnomalyClass> =
            anomalies_of(&flow, kind).iter().map(|a| a.class).collect();
        assert!(
            !classes.is_empty() && classes.iter().all(|c| *c == class),
            "{reason}: wanted {kind:?} as {class:?}, got {:#?}",
            flow.anomalies
        );
    }
}

#[test]
fn summaries_count_faults_apart_from_facts_and_filter_on_faults() {
    let send = order_send;
    let facts_only = rebuild(
        &[
            send(1, 0, "m1", "order.placed.v1"),
            send(2, 5, "m2", "order.placed.v2"),
        ],
        &Topology::new(),
    );
    let summary = FlowSummary::of("ord-1", &facts_only);
    assert_eq!(summary.anomaly_count(), 1);
    assert_eq!(summary.fault_count(), 0);
    assert_eq!(summary.facts.get(&AnomalyKind::SchemaChange), Some(&1));
    let faults = FlowFilter {
        faults_only: true,
        ..FlowFilter::default()
    };
    assert!(
        !faults.matches(&facts_only, &[]),
        "facts only: filtered out"
    );
    let with_fault = rebuild(
        &[send(1, 0, "m9", "inventory.released.v1")],
        &Topology::new(),
    );
    let summary = FlowSummary::of("ord-1", &with_fault);
    assert_eq!(summary.faults.get(&AnomalyKind::Compensation), Some(&1));
    assert!(
        faults.matches(&with_fault, &[]),
        "a compensation is a fault"
    );
    let json = serde_json::to_value(&summary).unwrap();
    assert_eq!(json["faults"]["compensation"], 1);
    assert_eq!(json["facts"], serde_json::json!({}));
    assert_eq!(json["anomalies"]["compensation"], 1, "anomalies unchanged");
}
