#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use causeway_conventions::attribute;
use causeway_storage::SpanRecord;
use causeway_storage::testsuite::span;

use super::*;
use crate::flow_rules::config::{DEFAULT_DEAD_LETTER_RULE, FlowRule};
use crate::flows_config::FlowsConfig;

const S: i64 = 1_000_000_000;

/// A span as the rule store reads it back (the columns it selects).
fn row(record: &SpanRecord, rowid: i64) -> RuleSpan {
    let messaging = &record.messaging;
    RuleSpan {
        rowid,
        segment: 1,
        trace_id: record.trace_id,
        span_id: record.span_id,
        parent_span_id: record.parent_span_id,
        kind: record.kind,
        service: record.service_name.as_str().into(),
        start_ns: record.start_ns,
        status: record.status_code,
        correlation_id: messaging.correlation_id.as_deref().map(Into::into),
        message_id: messaging.message_id.as_deref().map(Into::into),
        event_type: messaging.event_type.as_deref().map(Into::into),
        topic: messaging.destination.as_deref().map(Into::into),
        partition: messaging.partition,
        offset: messaging.offset,
        consumer_group: messaging.consumer_group.as_deref().map(Into::into),
        operation: messaging
            .operation_type
            .as_deref()
            .and_then(causeway_conventions::messaging::Operation::parse),
        propagation_break: record
            .attributes
            .get(attribute::PROPAGATION_BREAK)
            .and_then(|v| v.as_str().map(Into::into)),
        ingested_ns: record.start_ns,
    }
}

fn rows(records: &[SpanRecord]) -> Vec<RuleSpan> {
    records
        .iter()
        .enumerate()
        .map(|(i, r)| row(r, i as i64 + 1))
        .collect()
}

fn settings(rules: Vec<FlowRule>) -> FlowRuleSettings {
    let mut settings = FlowsConfig::default().rule_settings().unwrap();
    settings.rules = rules;
    settings
}

fn all_kinds() -> FlowRuleSettings {
    let mut late = FlowRule::new("late", FlowRuleKind::IncompleteAfter);
    late.after_ns = 10 * S;
    settings(vec![
        FlowRule::new(DEFAULT_DEAD_LETTER_RULE, FlowRuleKind::DeadLetter),
        FlowRule::new("errors", FlowRuleKind::Error),
        FlowRule::new("undo", FlowRuleKind::Compensation),
        late,
        FlowRule::new("lost", FlowRuleKind::PropagationBreak),
    ])
}

fn run(spans: &[RuleSpan], settings: &FlowRuleSettings, expected: &Expected) -> ChunkOutcome {
    let links = HashMap::new();
    let parents = HashMap::new();
    evaluate_chunk(
        spans,
        &ChunkContext {
            settings,
            expected,
            links: &links,
            parents: &parents,
            may_wait: true,
        },
    )
}

fn expected(pairs: &[(&str, &str)]) -> Expected {
    let mut map = Expected::new();
    for (topic, group) in pairs {
        map.entry((*topic).to_owned())
            .or_default()
            .insert((*group).to_owned());
    }
    map
}

fn names(outcome: &ChunkOutcome, settings: &FlowRuleSettings) -> Vec<String> {
    outcome
        .occurrences
        .iter()
        .map(|o| settings.rules[o.rule].name.clone())
        .collect()
}

#[test]
fn a_dead_letter_is_counted_by_the_group_that_gave_up() {
    let trace = TraceId([1; 16]);
    let settings = all_kinds();
    let send = span(trace, SpanId([1; 8]))
        .send("orders")
        .correlation("ord-9")
        .build();
    let failed = span(trace, SpanId([2; 8]))
        .process("orders", "inventory")
        .parent(SpanId([1; 8]))
        .correlation("ord-9")
        .error("cannot parse")
        .build();
    let dlq = span(trace, SpanId([3; 8]))
        .service("inventory-service")
        .send("orders.DLQ")
        .parent(SpanId([2; 8]))
        .correlation("ord-9")
        .build();
    let outcome = run(
        &rows(&[send, failed, dlq]),
        &settings,
        &expected(&[("orders", "inventory")]),
    );
    assert_eq!(
        names(&outcome, &settings),
        ["errors", DEFAULT_DEAD_LETTER_RULE],
        "one failed processing, one dead letter (the topic matched whatever its case)"
    );
    let dead = &outcome.occurrences[1];
    assert_eq!(dead.subject[label::CONSUMER_GROUP], "inventory");
    assert_eq!(
        dead.subject[label::TOPIC],
        "orders",
        "the topic it was read from"
    );
    assert_eq!(dead.flow_id, "ord-9");
    assert!(
        outcome.due.is_empty(),
        "inventory processed it (and failed)"
    );
    assert!(outcome.waiting_for_parent.is_empty());
}

#[test]
fn a_dead_letter_whose_processing_span_is_not_stored_yet_waits_or_counts_by_service() {
    let trace = TraceId([1; 16]);
    let settings = all_kinds();
    let dlq = span(trace, SpanId([3; 8]))
        .service("inventory-service")
        .send("orders.dlq")
        .parent(SpanId([2; 8]))
        .build();
    let spans = rows(&[dlq]);
    let outcome = run(&spans, &settings, &Expected::new());
    assert!(outcome.occurrences.is_empty());
    assert_eq!(
        outcome.waiting_for_parent.len(),
        1,
        "it waits for its parent"
    );
    let mut occurrences = Vec::new();
    dead_letter(&spans[0], None, &settings, &mut occurrences);
    assert_eq!(
        occurrences[0].subject[label::SERVICE],
        "inventory-service",
        "given up on: counted by its service"
    );
    assert_eq!(
        occurrences[0].flow_id,
        trace.to_string(),
        "no correlation ID: the trace ID"
    );
}

#[test]
fn sends_wait_for_the_expected_groups_their_consumptions_take_off() {
    let settings = all_kinds();
    let map = expected(&[("orders", "billing"), ("orders", "inventory")]);
    let sent = |n: u8| {
        span(TraceId([n; 16]), SpanId([n; 8]))
            .send("orders")
            .correlation(format!("ord-{n}"))
            .message_id(format!("m{n}"))
            .times(100 * S, 100 * S + 1)
            .build()
    };
    // Order 1: both groups in the chunk (inventory by message id only). Order 2: billing
    // only. Order 3: a failed send, which published nothing.
    let by_parent = span(TraceId([1; 16]), SpanId([0x11; 8]))
        .process("orders", "billing")
        .parent(SpanId([1; 8]))
        .build();
    let by_message = span(TraceId([0x51; 16]), SpanId([0x12; 8]))
        .process("orders", "inventory")
        .message_id("m1")
        .build();
    let billing_2 = span(TraceId([2; 16]), SpanId([0x21; 8]))
        .process("orders", "billing")
        .parent(SpanId([2; 8]))
        .build();
    let failed_send = span(TraceId([3; 16]), SpanId([3; 8]))
        .send("orders")
        .error("broker down")
        .build();
    let elsewhere = span(TraceId([4; 16]), SpanId([0x41; 8]))
        .process("orders", "billing")
        .parent(SpanId([0x40; 8]))
        .build();
    let outcome = run(
        &rows(&[
            sent(1),
            sent(2),
            by_parent,
            by_message,
            billing_2,
            failed_send,
            elsewhere,
        ]),
        &settings,
        &map,
    );
    assert_eq!(outcome.due.len(), 1, "{:?}", outcome.due);
    let waiting = &outcome.due[0];
    assert_eq!(waiting.correlation_id.as_deref(), Some("ord-2"));
    assert_eq!(waiting.groups, ["inventory"]);
    assert_eq!(waiting.due_ns, 110 * S, "the send's start plus `after`");
    assert_eq!(
        outcome.consumptions.len(),
        1,
        "the consumption of a send outside the chunk is handed back"
    );
    assert_eq!(
        outcome.consumptions[0].sources,
        [(TraceId([4; 16]), SpanId([0x40; 8]))],
        "its parent, in its own trace"
    );
    assert_eq!(
        names(&outcome, &settings),
        ["lost", "errors"],
        "the consumer without trace context lost it; the failed send is an error"
    );
}

#[test]
fn errors_compensations_and_lost_contexts_match_their_filters() {
    let mut settings = all_kinds();
    settings.rules[1].service = "payment-*".into();
    let trace = TraceId([7; 16]);
    let poll = span(trace, SpanId([1; 8]))
        .service("payment-service")
        .operation("receive")
        .topic("orders")
        .error("batch failed")
        .build();
    let failed = span(trace, SpanId([2; 8]))
        .service("payment-service")
        .error("card declined")
        .correlation("ord-4")
        .build();
    let other = span(trace, SpanId([3; 8]))
        .service("shipping-service")
        .error("ignored by the filter")
        .build();
    let undo = span(trace, SpanId([4; 8]))
        .service("inventory-service")
        .send("inventory")
        .event_type("inventory.released.v1")
        .correlation("ord-4")
        .build();
    let lost = span(TraceId([8; 16]), SpanId([5; 8]))
        .service("shipping-service")
        .process("payments", "shipping")
        .attribute(attribute::PROPAGATION_BREAK, "no traceparent header")
        .build();
    let outcome = run(
        &rows(&[poll, failed, other, undo, lost]),
        &settings,
        &Expected::new(),
    );
    assert_eq!(
        names(&outcome, &settings),
        ["errors", "undo", "lost"],
        "a failed poll and another service's error are not counted"
    );
    assert_eq!(
        outcome.occurrences[0].subject[label::SERVICE],
        "payment-service"
    );
    assert_eq!(outcome.occurrences[1].flow_id, "ord-4");
    assert_eq!(
        outcome.occurrences[2].subject[label::SERVICE],
        "shipping-service"
    );
}

/// A consumer's links are read unless its parent is a send: of the chunk, or one an
/// earlier chunk of the pass evaluated.
#[test]
fn links_are_read_for_consumers_whose_parent_is_no_known_send() {
    let t = TraceId([7; 16]);
    let here = span(t, SpanId([1; 8])).send("orders").times(S, S).build();
    let consumer = |n: u8, parent: u8| {
        span(t, SpanId([n; 8]))
            .process("orders", "billing")
            .parent(SpanId([parent; 8]))
            .times(2 * S, 2 * S)
            .build()
    };
    let spans = rows(&[
        here,
        consumer(11, 1),
        consumer(12, 2),
        consumer(13, 3),
        span(t, SpanId([14; 8]))
            .process("orders", "billing")
            .times(2 * S, 2 * S)
            .build(),
    ]);
    let earlier = |parent: SpanId| parent == SpanId([2; 8]);
    let needing: Vec<SpanId> = needing_links(&spans, earlier)
        .into_iter()
        .map(|(_, _, span)| span)
        .collect();
    assert_eq!(
        needing,
        [SpanId([13; 8]), SpanId([14; 8])],
        "the parent unknown, or none"
    );
    let none_earlier: Vec<SpanId> = needing_links(&spans, |_| false)
        .into_iter()
        .map(|(_, _, span)| span)
        .collect();
    assert_eq!(none_earlier.len(), 3);
}
