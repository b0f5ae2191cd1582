//! Tests of the send/process span and header propagation rules, against a real SDK tracer
//! whose spans are collected in memory.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};

use opentelemetry::baggage::BaggageExt;
use opentelemetry::trace::{SpanId, SpanKind, Status, TraceContextExt, TraceId, TracerProvider};
use opentelemetry::{Context, Value};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider, SpanData, SpanExporter};
use proptest::prelude::*;

use super::*;

#[derive(Clone, Debug, Default)]
struct Collected(Arc<Mutex<Vec<SpanData>>>);

impl SpanExporter for Collected {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.0.lock().unwrap().extend(batch);
        Ok(())
    }
}

fn tracer() -> (SdkTracer, Collected, SdkTracerProvider) {
    let collected = Collected::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(collected.clone())
        .build();
    (provider.tracer("test"), collected, provider)
}

fn attr<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

fn attr_str(span: &SpanData, key: &str) -> Option<String> {
    attr(span, key).map(|v| v.as_str().into_owned())
}

const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn headers_with(entries: &[(&str, Option<&[u8]>)]) -> Headers {
    Headers::from_entries(
        entries
            .iter()
            .map(|(n, v)| ((*n).to_owned(), v.map(<[u8]>::to_vec)))
            .collect(),
    )
}

#[test]
fn send_then_process_forms_one_trace_with_parent_and_link() {
    let (tracer, collected, _provider) = tracer();
    let meta = MessageMeta::new("orders")
        .with_key("ord-1")
        .with_event_type("order.placed.v1")
        .with_event_source("order-service")
        .with_correlation_id("ord-1");
    let send_cx = start_send_span(&tracer, &meta, &Context::new());
    let mut headers = Headers::new();
    inject(&send_cx, &mut headers, &meta);
    send_cx.span().end();

    assert_eq!(headers.get_str(header::CORRELATION_ID), Some("ord-1"));
    assert_eq!(headers.get_str(header::CE_ID), meta.event_id.as_deref());
    assert_eq!(headers.get_str(header::CE_TYPE), Some("order.placed.v1"));
    assert!(headers.get_str(header::CE_TIME).is_some());
    assert_eq!(
        headers.get(header::TRACESTATE),
        HeaderValue::Missing,
        "empty tracestate not written"
    );

    let extracted = extract(&headers);
    assert_eq!(extracted.propagation_break, None);
    let consume = ConsumeMeta {
        group: "shipping".into(),
        topic: "orders".into(),
        partition: 2,
        offset: 41,
        key: Some("ord-1".into()),
        timestamp_ms: Some(0),
        parent_mode: ParentMode::Child,
    };
    let process_cx = start_process_span(&tracer, &extracted, &consume);
    assert_eq!(correlation_id(&process_cx), Some("ord-1"));
    process_cx.span().end();

    let spans = collected.0.lock().unwrap().clone();
    let [send, process] = spans.as_slice() else {
        panic!("two spans, got {}", spans.len())
    };
    assert_eq!(send.name, "send orders");
    assert_eq!(send.span_kind, SpanKind::Producer);
    assert_eq!(
        attr_str(send, attribute::MESSAGING_OPERATION_TYPE).as_deref(),
        Some("send")
    );
    assert_eq!(
        attr_str(send, attribute::MESSAGING_MESSAGE_CONVERSATION_ID).as_deref(),
        Some("ord-1")
    );
    assert_eq!(
        attr_str(send, attribute::CLOUDEVENTS_EVENT_ID),
        meta.event_id
    );
    assert_eq!(process.name, "process orders");
    assert_eq!(process.span_kind, SpanKind::Consumer);
    assert_eq!(
        process.span_context.trace_id(),
        send.span_context.trace_id()
    );
    assert_eq!(process.parent_span_id, send.span_context.span_id());
    assert_eq!(process.links.links.len(), 1);
    assert_eq!(
        process.links.links[0].span_context.span_id(),
        send.span_context.span_id()
    );
    assert_eq!(
        attr_str(process, attribute::MESSAGING_CONSUMER_GROUP_NAME).as_deref(),
        Some("shipping")
    );
    assert_eq!(
        attr_str(process, attribute::MESSAGING_DESTINATION_PARTITION_ID).as_deref(),
        Some("2")
    );
    assert_eq!(
        attr(process, attribute::MESSAGING_KAFKA_OFFSET),
        Some(&Value::I64(41))
    );
    assert_eq!(
        attr_str(process, attribute::CLOUDEVENTS_EVENT_TYPE).as_deref(),
        Some("order.placed.v1")
    );
    assert_eq!(
        attr_str(process, attribute::MESSAGING_MESSAGE_CONVERSATION_ID).as_deref(),
        Some("ord-1")
    );
    assert!(matches!(attr(process, attribute::QUEUE_TIME_MS), Some(Value::I64(ms)) if *ms > 0));
    assert_eq!(attr(process, attribute::PROPAGATION_BREAK), None);
}

#[test]
fn link_only_mode_starts_a_new_trace_that_links_back() {
    let (tracer, collected, _provider) = tracer();
    let headers = headers_with(&[(header::TRACEPARENT, Some(VALID.as_bytes()))]);
    let consume = ConsumeMeta {
        parent_mode: ParentMode::LinkOnly,
        ..ConsumeMeta::default()
    };
    start_process_span(&tracer, &extract(&headers), &consume)
        .span()
        .end();
    let spans = collected.0.lock().unwrap().clone();
    let process = &spans[0];
    assert_ne!(
        process.span_context.trace_id(),
        TraceId::from_hex(&VALID[3..35]).unwrap()
    );
    assert_eq!(process.parent_span_id, SpanId::INVALID);
    assert_eq!(
        process.links.links[0].span_context.span_id(),
        SpanId::from_hex(&VALID[36..52]).unwrap()
    );
}

#[test]
fn every_bad_traceparent_is_a_recorded_break_and_a_new_root() {
    let upper = VALID.to_uppercase();
    type RawEntries<'a> = Vec<(&'a str, Option<&'a [u8]>)>;
    let cases: Vec<(RawEntries, &str, &str)> = vec![
        (vec![], "missing", "no headers at all"),
        (
            vec![(header::TRACEPARENT, None)],
            "null",
            "kafka null header",
        ),
        (
            vec![
                (header::TRACEPARENT, Some(VALID.as_bytes())),
                (header::TRACEPARENT, Some(VALID.as_bytes())),
            ],
            "repeated",
            "two traceparent headers",
        ),
        (
            vec![(header::TRACEPARENT, Some(&[0x30, 0x30, 0xff]))],
            "not_utf8",
            "binary garbage",
        ),
        (
            vec![(header::TRACEPARENT, Some(upper.as_bytes()))],
            "upper_case_hex",
            "all upper case",
        ),
        (
            vec![(header::TRACEPARENT, Some(b"00-ab-cd-01"))],
            "wrong_shape",
            "short ids",
        ),
        (
            vec![(
                header::TRACEPARENT,
                Some(b"00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            )],
            "zero_trace_id",
            "all-zero trace id",
        ),
    ];
    for (entries, expected, reason) in cases {
        let (tracer, collected, _provider) = tracer();
        let extracted = extract(&headers_with(&entries));
        assert_eq!(
            extracted.propagation_break.map(BreakReason::as_str),
            Some(expected),
            "{reason}"
        );
        assert!(
            !extracted.context.span().span_context().is_valid(),
            "{reason}"
        );
        let process_cx = start_process_span(&tracer, &extracted, &ConsumeMeta::default());
        process_cx.span().end();
        let spans = collected.0.lock().unwrap().clone();
        let process = &spans[0];
        assert_eq!(
            process.parent_span_id,
            SpanId::INVALID,
            "{reason}: new root"
        );
        assert!(process.links.links.is_empty(), "{reason}: nothing to link");
        assert_eq!(
            attr_str(process, attribute::PROPAGATION_BREAK).as_deref(),
            Some(expected),
            "{reason}"
        );
        assert!(
            process
                .events
                .events
                .iter()
                .any(|e| e.name == event::PROPAGATION_BREAK),
            "{reason}: break event"
        );
    }
}

#[test]
fn invalid_tracestate_keeps_the_traceparent() {
    let headers = headers_with(&[
        (header::TRACEPARENT, Some(VALID.as_bytes())),
        (header::TRACESTATE, Some(b"BAD KEY=1")),
    ]);
    let extracted = extract(&headers);
    assert_eq!(extracted.propagation_break, None);
    let creation = extracted.creation.unwrap();
    assert_eq!(creation.trace_state().header(), "");
    let repeated = headers_with(&[
        (header::TRACEPARENT, Some(VALID.as_bytes())),
        (header::TRACESTATE, Some(b"a=1")),
        (header::TRACESTATE, Some(b"b=2")),
    ]);
    let creation = extract(&repeated).creation.unwrap();
    assert_eq!(
        creation.trace_state().header(),
        "a=1,b=2",
        "repeated tracestate headers are one list"
    );
}

#[test]
fn republished_messages_inherit_correlation_and_baggage() {
    let (tracer, _collected, _provider) = tracer();
    let incoming = headers_with(&[
        (header::TRACEPARENT, Some(VALID.as_bytes())),
        (header::X_CORRELATION_ID, Some(b"saga-7")),
        (header::BAGGAGE, Some(b"tenant=acme,region=eu;prop")),
    ]);
    let process_cx = start_process_span(&tracer, &extract(&incoming), &ConsumeMeta::default());
    let meta = MessageMeta::new("payments");
    let send_cx = start_send_span(&tracer, &meta, &process_cx);
    let mut outgoing = Headers::new();
    inject(&send_cx, &mut outgoing, &meta);
    assert_eq!(outgoing.get_str(header::CORRELATION_ID), Some("saga-7"));
    assert_eq!(
        outgoing.get_str(header::BAGGAGE),
        Some("tenant=acme,region=eu;prop,correlation.id=saga-7"),
        "baggage kept, the correlation ID merged in"
    );
    let outgoing_parent =
        parse_traceparent(outgoing.get_str(header::TRACEPARENT).unwrap()).unwrap();
    assert_eq!(
        outgoing_parent.trace_id,
        TraceId::from_hex(&VALID[3..35]).unwrap(),
        "same trace"
    );

    let explicit = MessageMeta::new("payments").with_correlation_id("other");
    let explicit_cx = start_send_span(&tracer, &explicit, &process_cx);
    let mut headers = Headers::new();
    inject(&explicit_cx, &mut headers, &explicit);
    assert_eq!(
        headers.get_str(header::CORRELATION_ID),
        Some("other"),
        "explicit id wins"
    );
    assert_eq!(
        headers.get_str(header::BAGGAGE),
        Some("tenant=acme,region=eu;prop,correlation.id=other"),
        "explicit id in the baggage too"
    );
}

#[test]
fn a_correlation_id_only_in_baggage_is_read_and_sent_on() {
    let (tracer, collected, _provider) = tracer();
    let incoming = headers_with(&[
        (header::TRACEPARENT, Some(VALID.as_bytes())),
        (
            header::BAGGAGE,
            Some(b"correlation.id=ord-9,other=x;p=1, bad member"),
        ),
    ]);
    let extracted = extract(&incoming);
    assert_eq!(extracted.correlation_id.as_deref(), Some("ord-9"));
    assert_eq!(extracted.baggage_invalid_members, 1);
    assert_eq!(
        extracted
            .context
            .baggage()
            .get("other")
            .map(|v| v.as_str().to_owned()),
        Some("x".to_owned()),
        "the sdk baggage is there for the handler"
    );
    let process_cx = start_process_span(&tracer, &extracted, &ConsumeMeta::default());
    assert_eq!(correlation_id(&process_cx), Some("ord-9"));
    let meta = MessageMeta::new("billing");
    let send_cx = start_send_span(&tracer, &meta, &process_cx);
    let mut outgoing = Headers::new();
    inject(&send_cx, &mut outgoing, &meta);
    send_cx.span().end();
    process_cx.span().end();
    assert_eq!(outgoing.get_str(header::CORRELATION_ID), Some("ord-9"));
    assert_eq!(
        outgoing.get_str(header::BAGGAGE),
        Some("correlation.id=ord-9,other=x;p=1"),
        "replaced in place, the invalid member left out"
    );
    let spans = collected.0.lock().unwrap().clone();
    let process = spans.iter().find(|s| s.name == "process ").unwrap();
    assert_eq!(
        attr_str(process, attribute::MESSAGING_MESSAGE_CONVERSATION_ID).as_deref(),
        Some("ord-9")
    );
    assert_eq!(
        attr(process, attribute::BAGGAGE_INVALID_MEMBERS),
        Some(&Value::I64(1))
    );
    let send = spans.iter().find(|s| s.name == "send billing").unwrap();
    assert_eq!(
        attr_str(send, attribute::MESSAGING_MESSAGE_CONVERSATION_ID).as_deref(),
        Some("ord-9")
    );
}

#[test]
fn baggage_is_merged_from_the_context_or_the_headers_already_there() {
    use opentelemetry::KeyValue;
    let (tracer, _collected, _provider) = tracer();
    let meta = MessageMeta::new("t").with_correlation_id("ord-1");

    let user_cx = Context::new().with_baggage([KeyValue::new("tenant", "acme")]);
    let cx = start_send_span(&tracer, &meta, &user_cx);
    let mut headers = Headers::new();
    inject(&cx, &mut headers, &meta);
    assert_eq!(
        headers.get_str(header::BAGGAGE),
        Some("tenant=acme,correlation.id=ord-1"),
        "baggage set through the OpenTelemetry API"
    );

    let cx = start_send_span(&tracer, &meta, &Context::new());
    let mut headers = headers_with(&[
        (header::BAGGAGE, Some(b"a=1")),
        (header::BAGGAGE, Some(b"b=2")),
    ]);
    inject(&cx, &mut headers, &meta);
    assert_eq!(
        headers.get_str(header::BAGGAGE),
        Some("a=1,b=2,correlation.id=ord-1"),
        "headers given to send_with_headers"
    );

    let plain = MessageMeta::new("t");
    let cx = start_send_span(&tracer, &plain, &Context::new());
    let mut headers = Headers::new();
    inject(&cx, &mut headers, &plain);
    assert_eq!(
        headers.get(header::BAGGAGE),
        HeaderValue::Missing,
        "no correlation ID, no baggage: nothing written"
    );
}

#[test]
fn a_tracestate_the_sdk_cannot_hold_is_still_sent_on_for_its_trace() {
    let (tracer, collected, _provider) = tracer();
    let incoming = headers_with(&[
        (header::TRACEPARENT, Some(VALID.as_bytes())),
        (header::TRACESTATE, Some(b"foo@@bar=1,bar=2")),
        (header::TRACESTATE, Some(b"foo@@bar=3")),
    ]);
    let extracted = extract(&incoming);
    assert_eq!(extracted.tracestate_error, None);
    assert_eq!(
        extracted.creation.as_ref().unwrap().trace_state().header(),
        "",
        "the sdk's TraceState refuses two @"
    );
    let meta = MessageMeta::new("t");
    for (mode, expected) in [
        (ParentMode::Child, Some("foo@@bar=1,bar=2")),
        (ParentMode::LinkOnly, None),
    ] {
        let consume = ConsumeMeta {
            parent_mode: mode,
            ..ConsumeMeta::default()
        };
        let process_cx = start_process_span(&tracer, &extracted, &consume);
        let send_cx = start_send_span(&tracer, &meta, &process_cx);
        let mut outgoing = Headers::new();
        inject(&send_cx, &mut outgoing, &meta);
        assert_eq!(
            outgoing.get_str(header::TRACESTATE),
            expected,
            "{mode:?}: sent on only within the trace it came with"
        );
    }
    let bad = headers_with(&[
        (header::TRACEPARENT, Some(VALID.as_bytes())),
        (header::TRACESTATE, Some(b"@foo=1,bar=2")),
    ]);
    let extracted = extract(&bad);
    assert_eq!(
        extracted.tracestate_error,
        Some(TracestateError::InvalidKey)
    );
    assert_eq!(extracted.propagation_break, None, "the traceparent is kept");
    start_process_span(&tracer, &extracted, &ConsumeMeta::default())
        .span()
        .end();
    let spans = collected.0.lock().unwrap().clone();
    assert_eq!(
        attr_str(spans.last().unwrap(), attribute::TRACESTATE_INVALID).as_deref(),
        Some("invalid_key")
    );
}

#[test]
fn errors_and_retries_are_recorded_on_the_span() {
    let (tracer, collected, _provider) = tracer();
    let cx = start_process_span(&tracer, &extract(&Headers::new()), &ConsumeMeta::default());
    let error = std::io::Error::other("payment declined");
    record_retry(&cx, 1, &error);
    record_retry(&cx, 2, &error);
    record_retry_count(&cx, 2);
    record_error(&cx, &error);
    cx.span().end();
    let spans = collected.0.lock().unwrap().clone();
    let span = &spans[0];
    assert_eq!(attr(span, attribute::RETRY_COUNT), Some(&Value::I64(2)));
    assert_eq!(
        span.events
            .events
            .iter()
            .filter(|e| e.name == event::RETRY)
            .count(),
        2
    );
    let exception = span
        .events
        .events
        .iter()
        .find(|e| e.name == event::EXCEPTION)
        .expect("an exception event");
    let exception_type = exception
        .attributes
        .iter()
        .find(|kv| kv.key.as_str() == attribute::EXCEPTION_TYPE)
        .map(|kv| kv.value.as_str().into_owned());
    assert_eq!(exception_type.as_deref(), Some("std::io::error::Error"));
    assert_eq!(span.status, Status::error("payment declined"));
}

#[test]
fn queue_time_is_never_negative() {
    let now = UNIX_EPOCH + Duration::from_millis(10_000);
    let cases = [
        (9_000, 1_000, "a second ago"),
        (10_000, 0, "just now"),
        (11_000, 0, "clock skew: message from the future"),
        (i64::MIN, i64::MAX, "absurd timestamp saturates"),
    ];
    for (timestamp_ms, expected, reason) in cases {
        assert_eq!(queue_time_ms(timestamp_ms, now), expected, "{reason}");
    }
}

proptest! {
    #[test]
    fn extract_never_panics_on_arbitrary_headers(
        entries in proptest::collection::vec(
            (
                prop_oneof![
                    Just(header::TRACEPARENT.to_owned()),
                    Just(header::TRACESTATE.to_owned()),
                    Just(header::BAGGAGE.to_owned()),
                    Just(header::CORRELATION_ID.to_owned()),
                    Just(header::CE_ID.to_owned()),
                    "[a-z_-]{1,10}",
                ],
                proptest::option::of(proptest::collection::vec(any::<u8>(), 0..80)),
            ),
            0..6,
        ),
    ) {
        let extracted = extract(&Headers::from_entries(entries));
        prop_assert_eq!(extracted.creation.is_some(), extracted.propagation_break.is_none());
    }

    #[test]
    fn inject_then_extract_round_trips(
        correlation in "[a-z0-9-]{1,30}",
        event_type in "[a-z.]{1,20}",
        key in "[a-z0-9]{0,10}",
    ) {
        let (tracer, _collected, _provider) = tracer();
        let meta = MessageMeta::new("t").with_key(key).with_event_type(event_type.clone())
            .with_correlation_id(correlation.clone());
        let send_cx = start_send_span(&tracer, &meta, &Context::new());
        let mut headers = Headers::new();
        inject(&send_cx, &mut headers, &meta);
        let extracted = extract(&headers);
        prop_assert_eq!(extracted.creation.map(|c| c.span_id()), Some(send_cx.span().span_context().span_id()));
        prop_assert_eq!(extracted.correlation_id, Some(correlation));
        prop_assert_eq!(extracted.event.event_type, Some(event_type));
        prop_assert_eq!(extracted.event.id, meta.event_id);
    }
}
