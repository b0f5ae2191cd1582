//! What the collector refuses and how: retried batches are not duplicated, a span with an
//! all-zero id is rejected alone, malformed and oversized bodies get the right status, and
//! compression bombs are refused without the collector's memory growing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;

use crate::harness::{CollectorProcess, temp_dir};
use crate::ingest::stored_trace;
use crate::ingest_otlp::{
    GRPC_INVALID_ARGUMENT, GRPC_OK, GRPC_RESOURCE_EXHAUSTED, grpc_client, http_post, protobuf,
    raw_grpc_call, raw_grpc_call_to, request, span, string_attribute, trace_request,
    unique_span_id, unique_trace_id,
};

/// The OTLP metrics service's Export method.
const METRICS_EXPORT_PATH: &str = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";
/// Uncompressed size of each compression bomb.
const BOMB_BYTES: usize = 1 << 30;
/// The most resident memory the collector may ever reach in these tests (the design's
/// burst ceiling).
const MAX_PEAK_RSS_KIB: u64 = 256 * 1024;

/// A valid request still goes through (the collector survived what came before).
pub async fn assert_still_ingests(collector: &CollectorProcess, db: &std::path::Path) {
    let (request, trace_id) = trace_request("after-refusals", 2);
    let mut client = grpc_client(collector.grpc_endpoint()).await;
    client
        .export(request)
        .await
        .expect("a valid export after refusals succeeds");
    assert_eq!(stored_trace(db, trace_id).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_batch_is_stored_once() {
    let dir = temp_dir();
    let db = dir.path().join("retry.db");
    let collector = CollectorProcess::start(&db, &[]);

    let (grpc_request, grpc_trace) = trace_request("retry-grpc", 5);
    let mut client = grpc_client(collector.grpc_endpoint()).await;
    for attempt in 1..=2 {
        client
            .export(grpc_request.clone())
            .await
            .unwrap_or_else(|e| panic!("gRPC attempt {attempt} failed: {e}"));
    }
    assert_eq!(
        stored_trace(&db, grpc_trace).await.len(),
        5,
        "gRPC retry is not duplicated"
    );

    let (http_request, http_trace) = trace_request("retry-http", 4);
    for attempt in 1..=2 {
        let reply = http_post(collector.http_addr, PROTOBUF, None, protobuf(&http_request)).await;
        assert_eq!(reply.status, 200, "HTTP attempt {attempt}: {reply:?}");
    }
    assert_eq!(
        stored_trace(&db, http_trace).await.len(),
        4,
        "HTTP retry is not duplicated"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_span_with_an_all_zero_id_is_rejected_alone() {
    let dir = temp_dir();
    let db = dir.path().join("zero.db");
    let collector = CollectorProcess::start(&db, &[]);

    // gRPC: one zero span id among three spans.
    let trace_id = unique_trace_id();
    let spans = vec![
        span(trace_id, unique_span_id(), "kept 1"),
        span(trace_id, [0; 8], "zero span id"),
        span(trace_id, unique_span_id(), "kept 2"),
    ];
    let mut client = grpc_client(collector.grpc_endpoint()).await;
    let reply = client
        .export(request("zero-grpc", spans))
        .await
        .expect("a request with one bad span is still accepted")
        .into_inner();
    let partial = reply.partial_success.expect("partial_success is set");
    assert_eq!(
        partial.rejected_spans, 1,
        "only the zero-id span is rejected"
    );
    assert!(!partial.error_message.is_empty(), "the rejection says why");
    let stored = stored_trace(&db, trace_id).await;
    let mut names: Vec<_> = stored.iter().map(|s| s.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["kept 1", "kept 2"]);

    // HTTP/protobuf: an all-zero trace id.
    let good_trace = unique_trace_id();
    let spans = vec![
        span(good_trace, unique_span_id(), "kept 3"),
        span([0; 16], unique_span_id(), "zero trace id"),
    ];
    let reply = http_post(
        collector.http_addr,
        PROTOBUF,
        None,
        protobuf(&request("zero-http", spans)),
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let response = ExportTraceServiceResponse::decode(reply.body.as_ref())
        .expect("the HTTP reply is an ExportTraceServiceResponse");
    let rejected = response.partial_success.map(|p| p.rejected_spans);
    assert_eq!(rejected, Some(1), "only the zero-trace-id span is rejected");
    assert_eq!(stored_trace(&db, good_trace).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_are_refused_as_invalid() {
    let dir = temp_dir();
    let db = dir.path().join("malformed.db");
    let collector = CollectorProcess::start(&db, &[]);
    // 0xff.. is a field number past the protobuf limit with a bad wire type: never valid.
    let garbage = vec![0xff_u8; 64];

    let reply = raw_grpc_call(collector.grpc_addr, None, false, &garbage).await;
    assert_eq!(
        reply.status, GRPC_INVALID_ARGUMENT,
        "gRPC garbage: {reply:?}"
    );
    assert!(!reply.message.is_empty(), "the refusal says why: {reply:?}");

    // The metrics service refuses garbage the same way: INTERNAL would be retried forever.
    let reply = raw_grpc_call_to(
        collector.grpc_addr,
        METRICS_EXPORT_PATH,
        None,
        false,
        &garbage,
    )
    .await;
    assert_eq!(
        reply.status, GRPC_INVALID_ARGUMENT,
        "gRPC metrics garbage: {reply:?}"
    );
    assert!(
        reply.message.contains("ExportMetricsServiceRequest"),
        "the refusal names what was malformed: {reply:?}"
    );

    let cases: &[(&str, &[u8], &str)] = &[
        (PROTOBUF, &garbage, "protobuf garbage"),
        (JSON, b"{\"resourceSpans\": [", "truncated JSON"),
        (JSON, b"{\"resourceSpans\": 7}", "JSON of the wrong shape"),
    ];
    for (content_type, body, reason) in cases {
        let reply = http_post(collector.http_addr, content_type, None, body.to_vec()).await;
        assert_eq!(reply.status, 400, "{reason}: {reply:?}");
    }
    let reply = http_post(collector.http_addr, PROTOBUF, Some("gzip"), garbage.clone()).await;
    assert_eq!(reply.status, 400, "a body that is not gzip: {reply:?}");

    // One gRPC and four HTTP refusals, each counted once.
    assert_eq!(invalid_requests(&collector).await, 5);
    assert_still_ingests(&collector, &db).await;
}

/// The collector's count of refused request bodies, from its self-metrics endpoint.
async fn invalid_requests(collector: &CollectorProcess) -> u64 {
    let text = reqwest::get(collector.metrics_url())
        .await
        .expect("the metrics endpoint answers")
        .text()
        .await
        .expect("metrics are text");
    text.lines()
        .find_map(|line| line.strip_prefix("causeway_collector_requests_invalid_total "))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no requests_invalid counter in:\n{text}"))
}

/// A request whose one span carries a string attribute of `bytes` bytes.
fn request_of_size(bytes: usize) -> Vec<u8> {
    let trace_id = unique_trace_id();
    let mut big = span(trace_id, unique_span_id(), "oversized");
    big.attributes
        .push(string_attribute("payload", &"x".repeat(bytes)));
    protobuf(&request("oversized", vec![big]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_are_refused() {
    let dir = temp_dir();
    let db = dir.path().join("oversized.db");
    let collector = CollectorProcess::start(&db, &[]);

    let reply = raw_grpc_call(collector.grpc_addr, None, false, &request_of_size(5 << 20)).await;
    assert_eq!(
        reply.status, GRPC_RESOURCE_EXHAUSTED,
        "5 MiB over gRPC: {reply:?}"
    );

    let reply = http_post(
        collector.http_addr,
        PROTOBUF,
        None,
        request_of_size(21 << 20),
    )
    .await;
    assert_eq!(reply.status, 413, "21 MiB over HTTP: {:?}", reply.status);
    assert_eq!(
        invalid_requests(&collector).await,
        2,
        "both refusals are counted"
    );

    // Just under the limits is fine.
    let reply = raw_grpc_call(collector.grpc_addr, None, false, &request_of_size(3 << 20)).await;
    assert_eq!(reply.status, GRPC_OK, "3 MiB over gRPC: {reply:?}");
    assert!(
        reply.response.is_some(),
        "a success carries an ExportTraceServiceResponse"
    );
    assert_still_ingests(&collector, &db).await;
}

/// `BOMB_BYTES` of zeros, gzip-compressed.
fn gzip_bomb() -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let chunk = vec![0_u8; 1 << 20];
    for _ in 0..BOMB_BYTES / chunk.len() {
        encoder.write_all(&chunk).expect("gzip into memory");
    }
    encoder.finish().expect("gzip into memory")
}

/// `BOMB_BYTES` of zeros, zstd-compressed.
fn zstd_bomb() -> Vec<u8> {
    let mut encoder = zstd::stream::Encoder::new(Vec::new(), 3).expect("zstd encoder");
    let chunk = vec![0_u8; 1 << 20];
    for _ in 0..BOMB_BYTES / chunk.len() {
        encoder.write_all(&chunk).expect("zstd into memory");
    }
    encoder.finish().expect("zstd into memory")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compression_bombs_are_refused_with_bounded_memory() {
    let dir = temp_dir();
    let db = dir.path().join("bombs.db");
    let collector = CollectorProcess::start(&db, &[]);
    let bombs = [("gzip", gzip_bomb()), ("zstd", zstd_bomb())];

    for (encoding, bomb) in &bombs {
        let reply = raw_grpc_call(collector.grpc_addr, Some(encoding), true, bomb).await;
        assert_eq!(
            reply.status,
            GRPC_RESOURCE_EXHAUSTED,
            "1 GiB {encoding} bomb over gRPC ({} bytes on the wire): {reply:?}",
            bomb.len()
        );
        let reply = http_post(collector.http_addr, PROTOBUF, Some(encoding), bomb.clone()).await;
        assert_eq!(
            reply.status, 413,
            "1 GiB {encoding} bomb over HTTP: {:?}",
            reply.status
        );
    }
    let peak = collector.peak_rss_kib().expect("the collector is running");
    assert!(
        peak <= MAX_PEAK_RSS_KIB,
        "collector peak RSS {peak} KiB exceeds {MAX_PEAK_RSS_KIB} KiB after the bombs"
    );
    assert_still_ingests(&collector, &db).await;
}
