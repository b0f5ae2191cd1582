//! Hand-built spans for the flow tests: a span builder and the shop fixture.

use causeway_storage::testsuite;
use causeway_storage::{SpanId, SpanKind, SpanLink, SpanRecord, StatusCode, TraceId};
use serde_json::Value;

use crate::Topology;

pub(super) const MS: i64 = 1_000_000;
pub(super) const T0: i64 = 1_700_000_000_000 * MS;

pub(super) fn trace(n: u8) -> TraceId {
    TraceId([n; 16])
}

pub(super) fn sid(n: u16) -> SpanId {
    let [hi, lo] = n.to_be_bytes();
    SpanId([1, 0, 0, 0, 0, 0, hi, lo])
}

/// A span in trace `t`, id `s`, from `start` to `end` milliseconds after `T0`.
pub(super) fn span(t: u8, s: u16, service: &str, name: &str, start: i64, end: i64) -> SpanRecord {
    let mut span = testsuite::span(trace(t), sid(s))
        .name(name)
        .service(service)
        .scope("test")
        .times(T0 + start * MS, T0 + end * MS)
        .build();
    // The correlation as a field only: the fixtures are reconstruction inputs, and
    // `uncorrelated` takes it away again.
    span.messaging.correlation_id = Some("ord-1".to_owned());
    span
}

/// order-service sends `message` of `event_type` to `orders`, in trace 1.
pub(super) fn order_send(s: u16, start: i64, message: &str, event_type: &str) -> SpanRecord {
    span(
        1,
        s,
        "order-service",
        &format!("send {message}"),
        start,
        start + 1,
    )
    .send("orders", message, event_type)
}

pub(super) trait Fixture {
    fn parent(self, s: u16) -> Self;
    fn link(self, t: u8, s: u16) -> Self;
    fn send(self, topic: &str, message: &str, event_type: &str) -> Self;
    fn process(self, topic: &str, message: &str, group: &str) -> Self;
    fn failed(self, why: &str) -> Self;
    fn key(self, key: &str, offset: i64) -> Self;
    fn attr(self, key: &str, value: Value) -> Self;
    fn uncorrelated(self) -> Self;
}

impl Fixture for SpanRecord {
    fn parent(mut self, s: u16) -> Self {
        self.parent_span_id = Some(sid(s));
        self
    }
    fn link(mut self, t: u8, s: u16) -> Self {
        self.links.push(SpanLink {
            trace_id: trace(t),
            span_id: sid(s),
            attributes: Default::default(),
        });
        self
    }
    fn send(mut self, topic: &str, message: &str, event_type: &str) -> Self {
        self.kind = SpanKind::Producer;
        self.messaging.destination = Some(topic.to_owned());
        self.messaging.message_id = Some(message.to_owned());
        self.messaging.event_type = Some(event_type.to_owned());
        self.messaging.operation_type = Some("send".to_owned());
        self
    }
    fn process(mut self, topic: &str, message: &str, group: &str) -> Self {
        self.kind = SpanKind::Consumer;
        self.messaging.destination = Some(topic.to_owned());
        self.messaging.message_id = Some(message.to_owned());
        self.messaging.consumer_group = Some(group.to_owned());
        self.messaging.operation_type = Some("process".to_owned());
        self
    }
    fn failed(mut self, why: &str) -> Self {
        self.status_code = StatusCode::Error;
        self.status_message = why.to_owned();
        self
    }
    fn key(mut self, key: &str, offset: i64) -> Self {
        self.messaging.message_key = Some(key.to_owned());
        self.messaging.partition = Some(0);
        self.messaging.offset = Some(offset);
        self
    }
    fn attr(mut self, key: &str, value: Value) -> Self {
        self.attributes.insert(key.to_owned(), value);
        self
    }
    fn uncorrelated(mut self) -> Self {
        self.messaging.correlation_id = None;
        self
    }
}

/// order-service places an order; billing (a child with a link) captures payment;
/// shipping processes the payment. `audit` also subscribes to `orders` but never ran.
pub(super) fn shop() -> (Vec<SpanRecord>, Topology) {
    let spans = vec![
        span(1, 1, "order-service", "POST /orders", 0, 30),
        span(1, 2, "order-service", "send orders", 5, 7)
            .parent(1)
            .send("orders", "m1", "order.placed.v1"),
        span(1, 3, "billing", "process orders", 12, 40)
            .parent(2)
            .link(1, 2)
            .process("orders", "m1", "billing"),
        span(1, 4, "billing", "send payments", 30, 32)
            .parent(3)
            .send("payments", "m2", "payment.captured.v1"),
        span(1, 5, "shipping", "process payments", 50, 90)
            .parent(4)
            .link(1, 4)
            .process("payments", "m2", "shipping"),
    ];
    let topology = Topology::from_pairs([
        ("orders", "billing"),
        ("orders", "audit"),
        ("payments", "shipping"),
    ]);
    (spans, topology)
}
