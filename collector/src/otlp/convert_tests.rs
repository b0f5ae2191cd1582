//! Tests of the OTLP to record conversion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;

/// Converts with the default correlation keys.
fn convert(request: ExportTraceServiceRequest) -> Conversion {
    convert_request(request, &MessagingReader::default())
}
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, InstrumentationScope, KeyValue, any_value::Value as OtlpValue,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Status, span::Link};
use proptest::prelude::*;

use causeway_conventions::attribute::MESSAGING_MESSAGE_CONVERSATION_ID;

const TRACE: [u8; 16] = [0x4b; 16];
const SPAN: [u8; 8] = [0x11; 8];
const PARENT: [u8; 8] = [0x22; 8];

fn text(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(OtlpValue::StringValue(value.into())),
        }),
        key_strindex: 0,
    }
}

fn span(trace_id: &[u8], span_id: &[u8], parent: &[u8]) -> Span {
    Span {
        trace_id: trace_id.to_vec(),
        span_id: span_id.to_vec(),
        parent_span_id: parent.to_vec(),
        name: "process orders".into(),
        kind: 5,
        start_time_unix_nano: 1_000,
        end_time_unix_nano: 3_000,
        attributes: vec![text(MESSAGING_MESSAGE_CONVERSATION_ID, "ord-1")],
        ..Span::default()
    }
}

fn request(resource: Option<Resource>, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource,
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "shop".into(),
                    ..Default::default()
                }),
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

fn service(name: &str) -> Option<Resource> {
    Some(Resource {
        attributes: vec![text(SERVICE_NAME, name)],
        ..Default::default()
    })
}

/// (trace id, span id, parent id, kept, parent kept, reason)
type IdCase = (
    &'static [u8],
    &'static [u8],
    &'static [u8],
    bool,
    bool,
    &'static str,
);

#[test]
fn ids_decide_whether_a_span_is_kept() {
    let cases: &[IdCase] = &[
        (&TRACE, &SPAN, &PARENT, true, true, "valid ids and parent"),
        (&TRACE, &SPAN, &[], true, false, "an empty parent is a root"),
        (
            &TRACE,
            &SPAN,
            &[0; 8],
            true,
            false,
            "an all-zero parent is dropped, span kept",
        ),
        (
            &TRACE,
            &SPAN,
            &[1; 3],
            true,
            false,
            "a short parent is dropped, span kept",
        ),
        (
            &[0; 16],
            &SPAN,
            &[],
            false,
            false,
            "all-zero trace id is rejected",
        ),
        (
            &TRACE[..8],
            &SPAN,
            &[],
            false,
            false,
            "a span-sized trace id is rejected",
        ),
        (
            &TRACE,
            &[0; 8],
            &[],
            false,
            false,
            "all-zero span id is rejected",
        ),
        (
            &TRACE,
            &[],
            &[],
            false,
            false,
            "an empty span id is rejected",
        ),
        (
            &TRACE,
            &[1; 16],
            &[],
            false,
            false,
            "a trace-sized span id is rejected",
        ),
    ];
    for (trace_id, span_id, parent, kept, parent_kept, reason) in cases {
        let conversion = convert(request(None, vec![span(trace_id, span_id, parent)]));
        assert_eq!(conversion.spans.len(), usize::from(*kept), "{reason}");
        assert_eq!(conversion.rejections.count, u64::from(!*kept), "{reason}");
        assert_eq!(
            conversion.rejections.messages.len(),
            usize::from(!*kept),
            "{reason}"
        );
        if let Some(record) = conversion.spans.first() {
            assert_eq!(record.parent_span_id.is_some(), *parent_kept, "{reason}");
        }
    }
}

#[test]
fn a_bad_span_is_rejected_alone() {
    let spans = vec![
        span(&TRACE, &SPAN, &[]),
        span(&[0; 16], &SPAN, &[]),
        span(&TRACE, &PARENT, &SPAN),
    ];
    let conversion = convert(request(service("orders"), spans));
    assert_eq!(conversion.spans.len(), 2);
    assert_eq!(conversion.rejections.count, 1);
    let summary = conversion.rejections.summary();
    assert!(
        summary.contains("resource_spans[0].scope_spans[0].spans[1]"),
        "{summary}"
    );
    assert!(summary.contains("invalid trace id"), "{summary}");
}

#[test]
fn encoding_straight_from_the_request_stores_what_the_records_say() {
    let mut two_resources = request(service("orders"), vec![span(&TRACE, &SPAN, &[])]);
    two_resources
        .resource_spans
        .extend(request(service("billing"), vec![span(&TRACE, &PARENT, &SPAN)]).resource_spans);
    two_resources
        .resource_spans
        .extend(request(None, vec![span(&[0; 16], &SPAN, &[])]).resource_spans);
    let (encoded, rejections) = encode_request(two_resources.clone(), &MessagingReader::default());
    let conversion = convert(two_resources);
    assert_eq!(
        rejections, conversion.rejections,
        "the same span is rejected"
    );
    // The store's rows are private to it; their debug form shows every column value.
    assert_eq!(
        format!("{encoded:?}"),
        format!("{:?}", EncodedSpans::encode(&conversion.spans)),
        "each span keeps its own resource and every other column"
    );
}

#[test]
fn rejection_messages_are_capped_but_counted() {
    let spans = (0..20).map(|_| span(&[0; 16], &SPAN, &[])).collect();
    let conversion = convert(request(None, spans));
    assert_eq!(conversion.rejections.count, 20);
    assert_eq!(conversion.rejections.messages.len(), MAX_REJECTION_MESSAGES);
    assert!(conversion.rejections.summary().ends_with("and 15 more"));
    assert_eq!(
        Rejections::default().summary(),
        "",
        "nothing rejected, no message"
    );
}

#[test]
fn service_name_comes_from_the_resource() {
    let cases: Vec<(Option<Resource>, &str, &str)> = vec![
        (service("payment"), "payment", "service.name is used"),
        (None, UNKNOWN_SERVICE, "no resource gives the default"),
        (
            service(""),
            UNKNOWN_SERVICE,
            "an empty name gives the default",
        ),
        (
            Some(Resource {
                attributes: vec![text("host.name", "h1")],
                ..Default::default()
            }),
            UNKNOWN_SERVICE,
            "a resource without service.name gives the default",
        ),
    ];
    for (resource, expected, reason) in cases {
        let conversion = convert(request(resource, vec![span(&TRACE, &SPAN, &[])]));
        assert_eq!(conversion.spans[0].service_name, expected, "{reason}");
    }
}

#[test]
fn span_fields_are_carried_over() {
    let mut input = span(&TRACE, &SPAN, &PARENT);
    input.status = Some(Status {
        message: "boom".into(),
        code: 2,
    });
    input.start_time_unix_nano = u64::MAX;
    input.links = vec![
        Link {
            trace_id: vec![7; 16],
            span_id: vec![8; 8],
            ..Default::default()
        },
        Link {
            trace_id: vec![0; 16],
            span_id: vec![8; 8],
            ..Default::default()
        },
    ];
    let conversion = convert(request(service("shipping"), vec![input]));
    let record = &conversion.spans[0];
    assert_eq!(record.trace_id, TraceId(TRACE));
    assert_eq!(record.span_id, SpanId(SPAN));
    assert_eq!(record.parent_span_id, Some(SpanId(PARENT)));
    assert_eq!(record.kind, SpanKind::Consumer);
    assert_eq!(record.scope_name, "shop");
    assert_eq!(record.status_code, StatusCode::Error);
    assert_eq!(record.status_message, "boom");
    assert_eq!(record.start_ns, i64::MAX, "times past i64 saturate");
    assert_eq!(record.end_ns, 3_000);
    assert_eq!(
        record.links.len(),
        1,
        "a link with an all-zero trace id is dropped"
    );
    assert_eq!(record.messaging.correlation_id.as_deref(), Some("ord-1"));
    assert_eq!(
        record.resource.get(SERVICE_NAME),
        Some(&Value::from("shipping"))
    );
}

fn any_value() -> impl Strategy<Value = AnyValue> {
    let leaf = prop_oneof![
        any::<String>().prop_map(OtlpValue::StringValue),
        any::<i64>().prop_map(OtlpValue::IntValue),
        any::<f64>().prop_map(OtlpValue::DoubleValue),
        any::<bool>().prop_map(OtlpValue::BoolValue),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(OtlpValue::BytesValue),
    ]
    .prop_map(|v| AnyValue { value: Some(v) });
    leaf.prop_recursive(3, 16, 4, |inner| {
        proptest::collection::vec(inner, 0..4).prop_map(|values| AnyValue {
            value: Some(OtlpValue::ArrayValue(
                opentelemetry_proto::tonic::common::v1::ArrayValue { values },
            )),
        })
    })
}

fn any_span() -> impl Strategy<Value = Span> {
    (
        proptest::collection::vec(any::<u8>(), 0..20),
        proptest::collection::vec(any::<u8>(), 0..10),
        proptest::collection::vec(any::<u8>(), 0..10),
        any::<i32>(),
        any::<u64>(),
        any::<u64>(),
        proptest::collection::vec((any::<String>(), any_value()), 0..6),
    )
        .prop_map(
            |(trace_id, span_id, parent, kind, start, end, attributes)| Span {
                trace_id,
                span_id,
                parent_span_id: parent,
                kind,
                start_time_unix_nano: start,
                end_time_unix_nano: end,
                attributes: attributes
                    .into_iter()
                    .map(|(key, value)| KeyValue {
                        key,
                        value: Some(value),
                        key_strindex: 0,
                    })
                    .collect(),
                ..Span::default()
            },
        )
}

proptest! {
    #[test]
    fn arbitrary_requests_never_panic_and_every_span_is_accounted_for(
        spans in proptest::collection::vec(any_span(), 0..8),
    ) {
        let total = spans.len() as u64;
        let conversion = convert(request(service("p"), spans));
        prop_assert_eq!(conversion.spans.len() as u64 + conversion.rejections.count, total);
        for record in &conversion.spans {
            for value in record.attributes.values() {
                if let Value::String(text) = value {
                    prop_assert!(text.len() <= crate::otlp::attribute_value::MAX_ATTRIBUTE_VALUE_BYTES);
                }
            }
        }
    }

    #[test]
    fn arbitrary_bytes_decode_or_fail_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        use prost::Message;
        if let Ok(request) = ExportTraceServiceRequest::decode(bytes.as_slice()) {
            let _ = convert(request);
        }
    }
}
