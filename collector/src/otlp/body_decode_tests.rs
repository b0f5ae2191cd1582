//! Tests of body formats, encodings and bounded decompression.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;

use super::*;
use crate::memory_budget::MemoryBudget;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use proptest::prelude::*;

const WHAT: &str = "ExportTraceServiceRequest";

fn charge() -> Charge {
    MemoryBudget::new(64 << 20).charge()
}

fn decode(format: BodyFormat, body: &[u8]) -> Result<ExportTraceServiceRequest, BodyError> {
    format.decode(body, WHAT)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::stream::encode_all(data, 3).unwrap()
}

#[test]
fn content_types_and_encodings_are_recognised() {
    let types: &[(Option<&str>, Option<BodyFormat>, &str)] = &[
        (
            Some("application/x-protobuf"),
            Some(BodyFormat::Protobuf),
            "protobuf",
        ),
        (
            Some("application/json; charset=utf-8"),
            Some(BodyFormat::Json),
            "parameters ignored",
        ),
        (
            Some("Application/JSON"),
            Some(BodyFormat::Json),
            "case-insensitive",
        ),
        (Some("text/plain"), None, "other types are refused"),
        (None, None, "a missing type is refused"),
    ];
    for (header, expected, reason) in types {
        assert_eq!(
            BodyFormat::from_content_type(*header).ok(),
            *expected,
            "{reason}"
        );
    }
    let encodings: &[(Option<&str>, Option<BodyEncoding>, &str)] = &[
        (None, Some(BodyEncoding::Identity), "absent is identity"),
        (
            Some("identity"),
            Some(BodyEncoding::Identity),
            "explicit identity",
        ),
        (Some("GZIP"), Some(BodyEncoding::Gzip), "gzip, any case"),
        (Some("zstd"), Some(BodyEncoding::Zstd), "zstd"),
        (Some("br"), None, "brotli is not supported"),
    ];
    for (header, expected, reason) in encodings {
        assert_eq!(
            BodyEncoding::from_header(*header).ok(),
            *expected,
            "{reason}"
        );
    }
}

/// (encoding, body, limit, decompressed length or error, reason)
type DecompressCase = (
    BodyEncoding,
    Vec<u8>,
    usize,
    Result<usize, BodyError>,
    &'static str,
);

#[test]
fn decompression_stops_at_the_limit() {
    let payload = vec![7u8; 1000];
    let bomb = vec![0u8; 8 << 20];
    let cases: Vec<DecompressCase> = vec![
        (
            BodyEncoding::Gzip,
            gzip(&payload),
            1000,
            Ok(1000),
            "exactly the limit is fine",
        ),
        (
            BodyEncoding::Zstd,
            zstd(&payload),
            4096,
            Ok(1000),
            "zstd under the limit",
        ),
        (
            BodyEncoding::Identity,
            payload.clone(),
            999,
            Err(BodyError::TooLarge { limit: 999 }),
            "plain body over the limit",
        ),
        (
            BodyEncoding::Gzip,
            gzip(&bomb),
            1 << 20,
            Err(BodyError::TooLarge { limit: 1 << 20 }),
            "a gzip bomb is cut at the limit",
        ),
        (
            BodyEncoding::Zstd,
            zstd(&bomb),
            1 << 20,
            Err(BodyError::TooLarge { limit: 1 << 20 }),
            "a zstd bomb is cut at the limit",
        ),
    ];
    for (encoding, body, limit, expected, reason) in cases {
        let budget = MemoryBudget::new(64 << 20);
        let mut charge = budget.charge();
        // The receiver charged the body as it arrived.
        charge.grow(body.capacity()).unwrap();
        let result = encoding
            .decompress(body, limit, &mut charge)
            .map(|output| output.len());
        assert_eq!(result, expected, "{reason}");
        if let Ok(length) = result {
            assert!(
                charge.bytes() >= length || encoding == BodyEncoding::Identity,
                "{reason}: the output is charged"
            );
        }
    }
    // A bomb costs at most the limit: the charge stops it even below the body limit.
    let small = MemoryBudget::new(256 * 1024);
    let refused = BodyEncoding::Gzip.decompress(gzip(&bomb), 8 << 20, &mut small.charge());
    assert!(matches!(refused, Err(BodyError::Budget(_))), "{refused:?}");
    assert_eq!(small.available(), small.limit());
    let corrupt = BodyEncoding::Gzip.decompress(b"not gzip at all".to_vec(), 1024, &mut charge());
    assert!(
        matches!(
            corrupt,
            Err(BodyError::Corrupt {
                encoding: "gzip",
                ..
            })
        ),
        "{corrupt:?}"
    );
}

#[test]
fn json_bodies_use_the_otlp_mapping() {
    let body = br#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"orders"}}]},
        "scopeSpans":[{"spans":[{"traceId":"4bf92f3577b34da6a3ce929d0e0e4736","spanId":"00f067aa0ba902b7",
        "name":"send","kind":4,"startTimeUnixNano":"1000","endTimeUnixNano":"2000"}]}]}]}"#;
    let request = decode(BodyFormat::Json, body).unwrap();
    let span = &request.resource_spans[0].scope_spans[0].spans[0];
    assert_eq!(
        hex::encode(&span.trace_id),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_eq!(span.start_time_unix_nano, 1000);
    assert!(matches!(
        decode(BodyFormat::Json, b"{not json"),
        Err(BodyError::Malformed { what: WHAT, .. })
    ));
    assert!(matches!(
        decode(BodyFormat::Protobuf, &[0xff, 0xff]),
        Err(BodyError::Malformed { what: WHAT, .. })
    ));
}

proptest! {
    #[test]
    fn arbitrary_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..256)) {
        for encoding in [BodyEncoding::Identity, BodyEncoding::Gzip, BodyEncoding::Zstd] {
            if let Ok(plain) = encoding.decompress(body.clone(), 4096, &mut charge()) {
                let _ = decode(BodyFormat::Protobuf, &plain);
                let _ = decode(BodyFormat::Json, &plain);
            }
        }
    }
}
