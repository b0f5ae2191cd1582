//! Tests of the OTLP/JSON cost scan and its edits.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as OtlpValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use proptest::prelude::*;

use super::*;
use crate::otlp::message_shape::TRACE_REQUEST;
use crate::otlp::{proto_scan, request_cost::SpanPlace};
use crate::test_support::{rich_request, sample_request};

fn json(request: &ExportTraceServiceRequest) -> Vec<u8> {
    serde_json::to_vec(request).unwrap()
}

fn decode(bytes: &[u8]) -> ExportTraceServiceRequest {
    serde_json::from_slice(bytes).unwrap()
}

#[test]
fn json_and_protobuf_of_one_request_count_alike() {
    let request = rich_request(2, 25);
    let from_json = scan(&json(&request), &TRACE_REQUEST).unwrap();
    let from_protobuf =
        proto_scan::scan(&prost::Message::encode_to_vec(&request), &TRACE_REQUEST).unwrap();
    assert!(!from_json.needs_edits());
    assert_eq!(from_json.walk.tally.spans, 25);
    assert_eq!(from_json.walk.tally.links, 25);
    assert_eq!(
        from_json.walk.tally.spans, from_protobuf.tally.spans,
        "the same spans"
    );
    assert!(from_json.walk.tally.decoded >= 25 * std::mem::size_of::<Span>());
}

#[test]
fn empty_spans_cost_their_decoded_size() {
    let mut body = br#"{"resourceSpans":[{"scopeSpans":[{"spans":["#.to_vec();
    body.extend(std::iter::repeat_n(&b"{},"[..], 5_000).flatten());
    body.extend_from_slice(b"{}]}]}]}");
    let scanned = scan(&body, &TRACE_REQUEST).unwrap();
    assert_eq!(scanned.walk.tally.spans, 5_001);
    assert!(scanned.walk.tally.decoded >= 5_001 * 2 * std::mem::size_of::<Span>());
}

#[test]
fn non_finite_doubles_become_the_text_protobuf_stores_for_them() {
    for (text, stored) in [("NaN", "NaN"), ("Infinity", "inf"), ("-Infinity", "-inf")] {
        let body = format!(
            r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{"traceId":"0102030405060708090a0b0c0d0e0f10",
            "spanId":"0102030405060708","attributes":[{{"key":"ratio","value":{{"doubleValue":"{text}"}}}},
            {{"key":"ok","value":{{"doubleValue":1.5}}}}]}}]}}]}}]}}"#
        );
        assert!(
            serde_json::from_str::<ExportTraceServiceRequest>(&body).is_err(),
            "the decoder alone refuses {text}"
        );
        let scanned = scan(body.as_bytes(), &TRACE_REQUEST).unwrap();
        assert!(
            scanned.walk.bad_spans.is_empty(),
            "{text}: the span is kept"
        );
        let request = decode(&scanned.edited(body.as_bytes()));
        let attributes = &request.resource_spans[0].scope_spans[0].spans[0].attributes;
        let value = attributes[0].value.clone().and_then(|v| v.value);
        assert_eq!(value, Some(OtlpValue::StringValue(stored.into())), "{text}");
        let finite = attributes[1].value.clone().and_then(|v| v.value);
        assert_eq!(
            finite,
            Some(OtlpValue::DoubleValue(1.5)),
            "finite doubles stay"
        );
    }
}

#[test]
fn a_span_with_a_bad_id_or_string_is_blanked_alone() {
    let cases = [
        (
            r#""traceId":"zz02030405060708090a0b0c0d0e0f10""#,
            "trace id is not hex",
        ),
        (r#""spanId":"0102030405060g07""#, "span id is not hex"),
        (r#""parentSpanId":"nothex!""#, "parent span id is not hex"),
        (r#""name":"\udc00 alone""#, "name is not valid UTF-8"),
        (
            r#""links":[{"traceId":"x","spanId":"0102030405060708"}]"#,
            "trace id is not hex",
        ),
    ];
    for (field, reason) in cases {
        let good = |n: u8| {
            format!(
                r#"{{"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"010203040506070{n}","name":"ok {n}"}}"#
            )
        };
        let bad = format!("{{{field}}}");
        let body = format!(
            r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{},{bad},{}]}}]}}]}}"#,
            good(1),
            good(2)
        );
        assert!(
            serde_json::from_str::<ExportTraceServiceRequest>(&body).is_err(),
            "{reason}: the decoder alone refuses the whole request"
        );
        let scanned = scan(body.as_bytes(), &TRACE_REQUEST).unwrap();
        assert_eq!(scanned.walk.bad_spans.len(), 1, "{reason}");
        assert_eq!(scanned.walk.bad_spans[0].reason, reason);
        assert_eq!(
            scanned.walk.bad_spans[0].place,
            SpanPlace {
                resource: 0,
                scope: 0,
                span: 1
            }
        );
        let request = decode(&scanned.edited(body.as_bytes()));
        let spans = &request.resource_spans[0].scope_spans[0].spans;
        assert_eq!(spans.len(), 3, "{reason}");
        assert_eq!(spans[1], Span::default(), "{reason}: blanked in place");
        assert_eq!(spans[2].name, "ok 2");
    }
}

#[test]
fn raw_bytes_that_are_not_utf8_in_a_span_blank_it() {
    let mut body = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":""#.to_vec();
    body.extend_from_slice(&[0xff, 0xfe]);
    body.extend_from_slice(br#""},{"name":"kept"}]}]}]}"#);
    let scanned = scan(&body, &TRACE_REQUEST).unwrap();
    assert_eq!(scanned.walk.bad_spans.len(), 1);
    let request = decode(&scanned.edited(&body));
    assert_eq!(
        request.resource_spans[0].scope_spans[0].spans[1].name,
        "kept"
    );
}

#[test]
fn bad_text_outside_a_span_and_broken_json_refuse_the_request() {
    let outside =
        br#"{"resourceSpans":[{"resource":{"attributes":[{"key":"\ud800","value":{}}]}}]}"#;
    assert!(scan(outside, &TRACE_REQUEST).is_err());
    for broken in [
        &b"{"[..],
        b"[]",
        b"{\"resourceSpans\":[}",
        b"{\"resourceSpans\":[]} x",
        b"{\"a\":01}",
        b"{\"a\":\"\x01\"}",
    ] {
        assert!(
            scan(broken, &TRACE_REQUEST).is_err(),
            "{}",
            String::from_utf8_lossy(broken)
        );
    }
}

#[test]
fn unknown_keys_and_escaped_known_keys_are_read() {
    let body = br#"{"resourceSpans":[{"scopeSpans":[{"sp\u0061ns":[{},{}],"extra":{"deep":[1,2,{"x":null}]}}]}]}"#;
    let scanned = scan(body, &TRACE_REQUEST).unwrap();
    assert_eq!(
        scanned.walk.tally.spans, 2,
        "an escaped key names its field"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever the decoder reads, the scan reads too, without edits.
    #[test]
    fn the_scan_accepts_whatever_the_decoder_reads(
        spans in 0u16..6,
        position in 0usize..4_000,
        byte in prop::sample::select(b" {}[],:\"\\0x1aeE.-+nu".to_vec()),
    ) {
        let mut body = json(&sample_request(4, spans, 1));
        let at = position % body.len();
        body[at] = byte;
        let scanned = scan(&body, &TRACE_REQUEST);
        if serde_json::from_slice::<ExportTraceServiceRequest>(&body).is_ok() {
            let scanned = scanned.unwrap();
            prop_assert!(!scanned.needs_edits());
        }
    }
}
