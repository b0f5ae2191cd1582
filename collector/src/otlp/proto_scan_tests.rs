//! Tests of the protobuf cost scan and the blanking of rejected spans.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;
use proptest::prelude::*;
use prost::Message;

use super::*;
use crate::otlp::message_shape::{METRICS_REQUEST, TRACE_REQUEST};
use crate::otlp::request_cost::SpanPlace;
use crate::test_support::{rich_request, sample_request, text_attribute};

/// `bytes` with the first occurrence of `marker` overwritten by `with` (same length).
fn patch(mut bytes: Vec<u8>, marker: &[u8], with: &[u8]) -> Vec<u8> {
    assert_eq!(marker.len(), with.len());
    let at = bytes
        .windows(marker.len())
        .position(|w| w == marker)
        .expect("marker present");
    bytes[at..at + with.len()].copy_from_slice(with);
    bytes
}

#[test]
fn a_scan_counts_spans_links_and_what_decoding_costs() {
    let request = rich_request(1, 40);
    let bytes = request.encode_to_vec();
    let walk = scan(&bytes, &TRACE_REQUEST).unwrap();
    assert_eq!(walk.tally.spans, 40);
    assert_eq!(walk.tally.links, 40);
    assert!(walk.bad_spans.is_empty());
    assert!(
        walk.tally.decoded >= 40 * std::mem::size_of::<Span>(),
        "every span's struct is counted: {}",
        walk.tally.decoded
    );
    assert!(
        walk.tally.name_copies >= 40 * ("orders-scope".len() + "orders".len()),
        "each span copies its scope and service names"
    );
}

#[test]
fn empty_spans_cost_their_decoded_size_not_their_two_bytes() {
    // 10,000 empty spans: 20 KB of protobuf, megabytes once decoded.
    let mut request = sample_request(1, 0, 0);
    request.resource_spans[0].scope_spans[0].spans = vec![Span::default(); 10_000];
    let bytes = request.encode_to_vec();
    assert!(bytes.len() < 30_000, "{} bytes", bytes.len());
    let walk = scan(&bytes, &TRACE_REQUEST).unwrap();
    assert_eq!(walk.tally.spans, 10_000);
    assert!(walk.tally.decoded >= 10_000 * 2 * std::mem::size_of::<Span>());
    assert!(walk.tally.encoded_spans() >= 10_000 * causeway_storage::EncodedSpans::SPAN_ROW_BYTES);
}

#[test]
fn a_long_scope_name_copied_into_every_span_is_counted_once_per_span() {
    let mut request = sample_request(1, 1_000, 0);
    request.resource_spans[0].scope_spans[0].scope = Some(
        opentelemetry_proto::tonic::common::v1::InstrumentationScope {
            name: "s".repeat(100_000),
            ..Default::default()
        },
    );
    let walk = scan(&request.encode_to_vec(), &TRACE_REQUEST).unwrap();
    assert!(
        walk.tally.name_copies >= 1_000 * 100_000,
        "100 KB of request become 100 MB of copies: {}",
        walk.tally.name_copies
    );
}

#[test]
fn a_span_with_text_that_is_not_utf8_is_noted_and_blanked_alone() {
    let mut request = rich_request(3, 3);
    request.resource_spans[0].scope_spans[0].spans[1].name = "BAD!".into();
    let bytes = patch(request.encode_to_vec(), b"BAD!", &[0xff, 0xfe, 0xfd, 0xfc]);
    assert!(
        ExportTraceServiceRequest::decode(bytes.as_slice()).is_err(),
        "prost refuses the whole request"
    );
    let walk = scan(&bytes, &TRACE_REQUEST).unwrap();
    assert_eq!(walk.bad_spans.len(), 1);
    let bad = &walk.bad_spans[0];
    assert_eq!(
        bad.place,
        SpanPlace {
            resource: 0,
            scope: 0,
            span: 1
        }
    );
    assert_eq!(bad.reason, "name is not valid UTF-8");
    let blanked = blank_spans(&bytes, &TRACE_REQUEST, &walk.bad_spans);
    let decoded = ExportTraceServiceRequest::decode(blanked.as_slice()).unwrap();
    let spans = &decoded.resource_spans[0].scope_spans[0].spans;
    assert_eq!(spans.len(), 3, "the blanked span keeps its place");
    assert_eq!(spans[1], Span::default());
    assert_eq!(spans[0], request.resource_spans[0].scope_spans[0].spans[0]);
    assert_eq!(spans[2], request.resource_spans[0].scope_spans[0].spans[2]);
}

#[test]
fn text_that_is_not_utf8_outside_a_span_refuses_the_request() {
    let mut request = rich_request(3, 2);
    request.resource_spans[0]
        .resource
        .as_mut()
        .unwrap()
        .attributes
        .push(text_attribute("host.name", "BAD!"));
    let bytes = patch(request.encode_to_vec(), b"BAD!", &[0xc3, 0x28, 0xa0, 0xa1]);
    let error = scan(&bytes, &TRACE_REQUEST).unwrap_err();
    assert!(error.0.contains("not valid UTF-8"), "{error}");
}

#[test]
fn truncated_and_garbage_bodies_are_errors() {
    let bytes = rich_request(1, 2).encode_to_vec();
    assert!(scan(&bytes[..bytes.len() - 3], &TRACE_REQUEST).is_err());
    assert!(scan(&[0xff; 16], &TRACE_REQUEST).is_err());
    assert!(scan(&[0x0f], &TRACE_REQUEST).is_err(), "wire type 7");
    assert!(scan(&[], &TRACE_REQUEST).is_ok(), "an empty request");
}

#[test]
fn unknown_fields_and_groups_are_skipped_as_prost_does() {
    let mut bytes = sample_request(1, 2, 0).encode_to_vec();
    // Field 99, a group holding a varint, then its end.
    bytes.extend_from_slice(&[0x9b, 0x06, 0x08, 0x01, 0x9c, 0x06]);
    assert!(ExportTraceServiceRequest::decode(bytes.as_slice()).is_ok());
    let walk = scan(&bytes, &TRACE_REQUEST).unwrap();
    assert_eq!(walk.tally.spans, 2);
}

#[test]
fn metrics_requests_are_scanned_with_their_own_shape() {
    use opentelemetry_proto::tonic::metrics::v1::{
        Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric::Data,
    };
    let request = ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: "kafka.consumer_group.lag".into(),
                    data: Some(Data::Gauge(Gauge {
                        data_points: vec![NumberDataPoint::default(); 1_000],
                    })),
                    ..Metric::default()
                }],
                ..ScopeMetrics::default()
            }],
            ..ResourceMetrics::default()
        }],
    };
    let walk = scan(&request.encode_to_vec(), &METRICS_REQUEST).unwrap();
    assert!(walk.tally.decoded >= 1_000 * std::mem::size_of::<NumberDataPoint>());
    assert_eq!(walk.tally.spans, 0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever prost decodes, the scan reads too, without rejecting a span.
    #[test]
    fn the_scan_accepts_whatever_prost_decodes(
        bytes in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        let scanned = scan(&bytes, &TRACE_REQUEST);
        if ExportTraceServiceRequest::decode(bytes.as_slice()).is_ok() {
            let walk = scanned.unwrap();
            prop_assert!(walk.bad_spans.is_empty());
        }
    }

    /// Damaging a real request in one byte never makes the scan panic, and a request
    /// prost still decodes is still scanned without rejections.
    #[test]
    fn damaged_requests_are_scanned_safely(position in 0usize..2_000, byte in any::<u8>()) {
        let mut bytes = rich_request(5, 6).encode_to_vec();
        let at = position % bytes.len();
        bytes[at] = byte;
        let scanned = scan(&bytes, &TRACE_REQUEST);
        if ExportTraceServiceRequest::decode(bytes.as_slice()).is_ok() {
            prop_assert!(scanned.is_ok());
        }
        if let Ok(walk) = scanned {
            let blanked = blank_spans(&bytes, &TRACE_REQUEST, &walk.bad_spans);
            if walk.bad_spans.is_empty() {
                prop_assert_eq!(blanked, bytes, "nothing to blank, nothing changed");
            } else {
                prop_assert!(blanked.len() < bytes.len(), "blanking only removes bytes");
                let rescanned = scan(&blanked, &TRACE_REQUEST).unwrap();
                prop_assert!(rescanned.bad_spans.is_empty(), "no bad span is left");
            }
        }
    }
}
