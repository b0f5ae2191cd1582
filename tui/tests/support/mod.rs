//! Span fixtures for the dashboard's snapshot tests, benchmark and end-to-end test: a small
//! shop flow, a chain of any length, and spans carrying hostile strings.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::too_many_arguments
)]

use causeway_storage::testsuite;
use causeway_storage::{SpanEvent, SpanId, SpanKind, SpanLink, SpanRecord, StatusCode, TraceId};
use serde_json::{Map, Value, json};

/// A fixed start time (2023-11-14 22:13:20 UTC) so that snapshots do not move.
pub const BASE_NS: i64 = 1_700_000_000_000_000_000;
const MS: i64 = 1_000_000;

/// A trace id from a flow number and a trace number within it.
pub fn trace_id(flow: u32, trace: u8) -> TraceId {
    let mut bytes = [0u8; 16];
    bytes[..4].copy_from_slice(&flow.to_be_bytes());
    bytes[15] = trace.max(1);
    TraceId(bytes)
}

/// A span id from a flow number and a span number within it.
pub fn span_id(flow: u32, span: u16) -> SpanId {
    let mut bytes = [0u8; 8];
    bytes[..4].copy_from_slice(&flow.to_be_bytes());
    bytes[6..].copy_from_slice(&span.max(1).to_be_bytes());
    SpanId(bytes)
}

/// A bare span of `service` from `start_ms` to `end_ms` after `base_ns`.
pub fn span(
    flow: u32,
    trace: u8,
    id: u16,
    service: &str,
    name: &str,
    base_ns: i64,
    start_ms: i64,
    end_ms: i64,
) -> SpanRecord {
    testsuite::span(trace_id(flow, trace), span_id(flow, id))
        .name(name)
        .service(service)
        .scope("causeway-fixture")
        .times(base_ns + start_ms * MS, base_ns + end_ms * MS)
        .build()
}

fn correlate(mut span: SpanRecord, correlation: &str) -> SpanRecord {
    span.messaging.correlation_id = Some(correlation.into());
    span.attributes.insert(
        "messaging.message.conversation_id".into(),
        json!(correlation),
    );
    span
}

fn send(
    mut span: SpanRecord,
    topic: &str,
    message: &str,
    event_type: &str,
    offset: i64,
) -> SpanRecord {
    span.kind = SpanKind::Producer;
    span.messaging.destination = Some(topic.into());
    span.messaging.message_id = Some(message.into());
    span.messaging.event_type = Some(event_type.into());
    span.messaging.operation_type = Some("send".into());
    span.messaging.partition = Some(0);
    span.messaging.offset = Some(offset);
    span.attributes
        .insert("messaging.system".into(), json!("kafka"));
    span.attributes
        .insert("messaging.destination.name".into(), json!(topic));
    span.attributes
        .insert("cloudevents.event_type".into(), json!(event_type));
    span
}

fn process(
    mut span: SpanRecord,
    topic: &str,
    message: &str,
    group: &str,
    sender: &SpanRecord,
) -> SpanRecord {
    span.kind = SpanKind::Consumer;
    span.parent_span_id = Some(sender.span_id);
    span.trace_id = sender.trace_id;
    span.messaging.destination = Some(topic.into());
    span.messaging.message_id = Some(message.into());
    span.messaging.consumer_group = Some(group.into());
    span.messaging.operation_type = Some("process".into());
    span.messaging.event_type = sender.messaging.event_type.clone();
    span.messaging.partition = sender.messaging.partition;
    span.messaging.offset = sender.messaging.offset;
    span.attributes
        .insert("messaging.system".into(), json!("kafka"));
    span.attributes
        .insert("messaging.consumer.group.name".into(), json!(group));
    span.links.push(SpanLink {
        trace_id: sender.trace_id,
        span_id: sender.span_id,
        attributes: Map::new(),
    });
    span
}

/// One shop order `ord-{flow}`: the order service publishes `order.placed.v1`, inventory
/// and payment process it, payment fails once with an exception event, then publishes
/// `payment.captured.v1`, which shipping processes.
pub fn shop_flow(flow: u32, base_ns: i64) -> Vec<SpanRecord> {
    let id = format!("ord-{flow}");
    let http = correlate(
        span(flow, 1, 1, "order", "POST /orders", base_ns, 0, 14),
        &id,
    );
    let mut http = http;
    http.kind = SpanKind::Server;
    http.attributes
        .insert("http.request.method".into(), json!("POST"));
    let mut placed = send(
        correlate(span(flow, 1, 2, "order", "orders send", base_ns, 4, 6), &id),
        "orders",
        &format!("m{flow}-1"),
        "order.placed.v1",
        i64::from(flow) * 2,
    );
    placed.parent_span_id = Some(http.span_id);
    let inventory = process(
        correlate(
            span(flow, 1, 3, "inventory", "orders process", base_ns, 9, 21),
            &id,
        ),
        "orders",
        &format!("m{flow}-1"),
        "inventory",
        &placed,
    );
    let mut payment = process(
        correlate(
            span(flow, 1, 4, "payment", "orders process", base_ns, 12, 40),
            &id,
        ),
        "orders",
        &format!("m{flow}-1"),
        "payment",
        &placed,
    );
    payment.status_code = StatusCode::Error;
    payment.status_message = "card declined".into();
    payment.events.push(SpanEvent {
        time_ns: base_ns + 30 * MS,
        name: "exception".into(),
        attributes: {
            let mut attributes = Map::new();
            attributes.insert("exception.type".into(), json!("CardDeclined"));
            attributes.insert("exception.message".into(), json!("issuer said no"));
            attributes
        },
    });
    let mut captured = send(
        correlate(
            span(flow, 2, 5, "payment", "payments send", base_ns, 44, 47),
            &id,
        ),
        "payments",
        &format!("m{flow}-2"),
        "payment.captured.v1",
        i64::from(flow),
    );
    captured.links.push(SpanLink {
        trace_id: placed.trace_id,
        span_id: placed.span_id,
        attributes: Map::new(),
    });
    let shipping = process(
        correlate(
            span(flow, 2, 6, "shipping", "payments process", base_ns, 60, 85),
            &id,
        ),
        "payments",
        &format!("m{flow}-2"),
        "shipping",
        &captured,
    );
    vec![http, placed, inventory, payment, captured, shipping]
}

/// A chain of `hops` services, each publishing to its own topic for the next one's
/// consumer group: `3 × hops` graph nodes and `2 × hops` spans.
pub fn chain_flow(flow: u32, hops: u16, base_ns: i64) -> Vec<SpanRecord> {
    let id = format!("chain-{flow}");
    let mut spans = Vec::with_capacity(usize::from(hops) * 2);
    let mut previous: Option<SpanRecord> = None;
    for hop in 0..hops {
        let at = i64::from(hop) * 10;
        let service = format!("svc-{hop}");
        let topic = format!("topic-{hop}");
        let mut sender = send(
            correlate(
                span(
                    flow,
                    1,
                    hop * 2 + 1,
                    &service,
                    &format!("{topic} send"),
                    base_ns,
                    at,
                    at + 2,
                ),
                &id,
            ),
            &topic,
            &format!("m-{hop}"),
            "step.done.v1",
            i64::from(hop),
        );
        if let Some(previous) = &previous {
            sender.parent_span_id = Some(previous.span_id);
        }
        let consumer = process(
            correlate(
                span(
                    flow,
                    1,
                    hop * 2 + 2,
                    &format!("svc-{}", hop + 1),
                    &format!("{topic} process"),
                    base_ns,
                    at + 5,
                    at + 9,
                ),
                &id,
            ),
            &topic,
            &format!("m-{hop}"),
            &format!("group-{hop}"),
            &sender,
        );
        spans.push(sender);
        previous = Some(consumer.clone());
        spans.push(consumer);
    }
    spans
}

/// Strings a hostile or broken service could put in a span.
pub const HOSTILE: &[(&str, &str)] = &[
    ("ansi.colour", "\u{1b}[31mred alert\u{1b}[0m"),
    ("ansi.clear", "\u{1b}[2J\u{1b}[Hscreen wiped"),
    ("osc.title", "\u{1b}]0;owned\u{7}title"),
    ("bidi.override", "invoice\u{202e}fdp.exe"),
    ("control.bytes", "nul\0bell\u{7}back\u{8}space"),
    ("newlines", "line one\nline two\r\nline three"),
    (
        "long.value",
        "a value so long that it can never fit in the column it is drawn in, not even at two hundred columns wide, because it keeps going and going and going on and on and on",
    ),
];

/// A span whose name, service, status and attributes carry [`HOSTILE`] strings.
pub fn hostile_span(base_ns: i64) -> SpanRecord {
    let mut span = correlate(
        span(
            9,
            1,
            1,
            "evil\u{1b}[5msvc",
            "name\u{202e}reversed",
            base_ns,
            0,
            5,
        ),
        "ord-\u{1b}[1mevil",
    );
    span.status_code = StatusCode::Error;
    span.status_message = "failed\u{1b}[8m hidden".into();
    for (key, value) in HOSTILE {
        span.attributes
            .insert((*key).into(), Value::String((*value).into()));
    }
    span.attributes
        .insert("key\u{1b}[7m.reversed".into(), json!("x"));
    span
}
