//! Tests of the decoding pipeline: what is charged, and what is refused before decoding.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;

use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

use super::*;
use crate::memory_budget::{BudgetError, MemoryBudget};
use crate::otlp::convert::encode_request;
use crate::otlp::messaging_fields::MessagingReader;
use crate::test_support::{rich_request, sample_request};

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

fn decode(
    budget: &MemoryBudget,
    body: Vec<u8>,
    encoding: BodyEncoding,
    format: BodyFormat,
) -> Result<Decoded<ExportTraceServiceRequest>, BodyError> {
    let mut charge = budget.charge();
    charge.grow(body.capacity()).unwrap();
    decode_export(&TRACES, body, encoding, format, 20 << 20, charge)
}

#[test]
fn a_small_body_of_empty_spans_is_refused_before_it_is_decoded() {
    // 400,000 empty spans: 800 KB of protobuf, 4 KB of gzip, about 200 MB decoded.
    let mut request = sample_request(1, 0, 0);
    request.resource_spans[0].scope_spans[0].spans = vec![Span::default(); 400_000];
    let body = gzip(&request.encode_to_vec());
    assert!(body.len() < 10_000, "{} bytes of gzip", body.len());
    let budget = MemoryBudget::new(64 << 20);
    let refused = decode(&budget, body, BodyEncoding::Gzip, BodyFormat::Protobuf);
    assert!(
        matches!(
            refused,
            Err(BodyError::Budget(BudgetError::TooLarge { .. }))
        ),
        "{refused:?}"
    );
    assert_eq!(budget.available(), budget.limit(), "nothing stays charged");
}

#[test]
fn a_request_that_would_fit_later_is_asked_to_retry() {
    let budget = MemoryBudget::new(8 << 20);
    let mut held = budget.charge();
    held.grow(7 << 20).unwrap();
    let body = rich_request(1, 200).encode_to_vec();
    let refused = decode(
        &budget,
        body.clone(),
        BodyEncoding::Identity,
        BodyFormat::Protobuf,
    );
    assert!(
        matches!(refused, Err(BodyError::Budget(BudgetError::Busy { .. }))),
        "{refused:?}"
    );
    drop(held);
    let decoded = decode(&budget, body, BodyEncoding::Identity, BodyFormat::Protobuf).unwrap();
    assert_eq!(decoded.request, rich_request(1, 200));
}

#[test]
fn the_charge_covers_the_converted_spans_and_shrinks_to_them() {
    let budget = MemoryBudget::new(64 << 20);
    let request = rich_request(2, 500);
    let body = request.encode_to_vec();
    let decoded = decode(&budget, body, BodyEncoding::Identity, BodyFormat::Protobuf).unwrap();
    let Decoded {
        request,
        mut charge,
        ..
    } = decoded;
    let charged = charge.bytes();
    let (encoded, _) = encode_request(request, &MessagingReader::default());
    let held = encoded.memory_bytes();
    assert!(
        held <= charged,
        "the estimate ({charged} bytes) covers the converted spans ({held} bytes)"
    );
    charge.set(held).unwrap();
    assert_eq!(
        budget.limit() - budget.available(),
        held.div_ceil(1024) * 1024
    );
}

#[test]
fn json_with_non_finite_doubles_and_bad_spans_decodes_the_rest() {
    let budget = MemoryBudget::new(64 << 20);
    let body = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[
        {"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708",
         "attributes":[{"key":"ratio","value":{"doubleValue":"NaN"}}]},
        {"traceId":"not hex","spanId":"0102030405060709"}]}]}]}"#
        .to_vec();
    let decoded = decode(&budget, body, BodyEncoding::Identity, BodyFormat::Json).unwrap();
    assert_eq!(decoded.bad_spans.len(), 1);
    let (encoded, mut rejections) = encode_request(decoded.request, &MessagingReader::default());
    crate::otlp::request_cost::BadSpan::explain(&decoded.bad_spans, &mut rejections);
    assert_eq!(encoded.len(), 1, "the good span is kept");
    assert_eq!(rejections.count, 1);
    assert_eq!(
        rejections.messages,
        ["resource_spans[0].scope_spans[0].spans[1]: trace id is not hex"],
        "the rejection says why, where the conversion said it"
    );
}
