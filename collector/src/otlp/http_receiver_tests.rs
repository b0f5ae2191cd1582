//! Socket tests of the OTLP/HTTP receiver.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};

use super::*;
use crate::byte_size::ByteSize;
use crate::otlp::limits::MAX_CONCURRENT_DECODES;
use crate::test_support::{http, sample_request, start_collector};
use crate::writer::batch_writer::{WriterOptions, spawn_writer};

const PROTOBUF_TYPE: (&str, &str) = ("content-type", "application/x-protobuf");
const JSON_TYPE: (&str, &str) = ("content-type", "application/json");

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

fn protobuf(request: &ExportTraceServiceRequest) -> Vec<u8> {
    request.encode_to_vec()
}

/// (headers, body, status, text the answer contains, reason)
type RequestCase = (
    Vec<(&'static str, &'static str)>,
    Vec<u8>,
    u16,
    &'static str,
    &'static str,
);

#[tokio::test]
async fn requests_get_the_right_answer() {
    let collector = start_collector(|config| {
        config.otlp.http_max_body_size = ByteSize(1 << 20);
    })
    .await;
    let addr = collector.running.http_addr();
    let good = protobuf(&sample_request(1, 5, 1));
    let json = serde_json::to_vec(&sample_request(2, 4, 0)).unwrap();
    let bomb = gzip(&vec![0u8; 8 << 20]);
    let zstd_body =
        zstd::stream::encode_all(protobuf(&sample_request(3, 6, 0)).as_slice(), 3).unwrap();
    let cases: Vec<RequestCase> = vec![
        (
            vec![PROTOBUF_TYPE],
            good.clone(),
            200,
            "",
            "protobuf is accepted",
        ),
        (vec![JSON_TYPE], json, 200, "", "JSON is accepted"),
        (
            vec![PROTOBUF_TYPE, ("content-encoding", "gzip")],
            gzip(&good),
            200,
            "",
            "gzip is accepted",
        ),
        (
            vec![PROTOBUF_TYPE, ("content-encoding", "zstd")],
            zstd_body,
            200,
            "",
            "zstd is accepted",
        ),
        (
            vec![("content-type", "text/plain")],
            good.clone(),
            415,
            "unsupported content type",
            "wrong type",
        ),
        (
            vec![PROTOBUF_TYPE, ("content-encoding", "br")],
            good.clone(),
            415,
            "unsupported content encoding",
            "wrong encoding",
        ),
        (
            vec![PROTOBUF_TYPE],
            vec![0xff, 0xff, 0xff],
            400,
            "malformed",
            "broken protobuf",
        ),
        (
            vec![JSON_TYPE],
            b"{\"resourceSpans\": 7}".to_vec(),
            400,
            "malformed",
            "wrong JSON shape",
        ),
        (
            vec![PROTOBUF_TYPE, ("content-encoding", "gzip")],
            b"nope".to_vec(),
            400,
            "cannot decompress",
            "corrupt gzip",
        ),
        (
            vec![PROTOBUF_TYPE, ("content-encoding", "gzip")],
            bomb,
            413,
            "larger than",
            "a compression bomb",
        ),
        (
            vec![PROTOBUF_TYPE],
            vec![0u8; 2 << 20],
            413,
            "larger than",
            "a plain body over the limit",
        ),
    ];
    for (headers, body, status, message, reason) in cases {
        let reply = http(addr, "POST", TRACES_PATH, &headers, &body).await;
        assert_eq!(
            reply.status,
            status,
            "{reason}: {:?}",
            String::from_utf8_lossy(&reply.body)
        );
        let text = String::from_utf8_lossy(&reply.body);
        assert!(text.contains(message), "{reason}: {text:?}");
    }
    let store = causeway_storage::Store::open_read_only(&collector.db)
        .await
        .unwrap();
    assert_eq!(
        store.span_count().await.unwrap(),
        5 + 4 + 6,
        "gzip resent the first 5 spans"
    );
    collector.running.shutdown().await;
}

#[tokio::test]
async fn answers_come_in_the_request_format() {
    let collector = start_collector(|_| {}).await;
    let addr = collector.running.http_addr();
    let reply = http(
        addr,
        "POST",
        TRACES_PATH,
        &[PROTOBUF_TYPE],
        &protobuf(&sample_request(1, 2, 3)),
    )
    .await;
    assert_eq!(
        reply.headers.get("content-type").map(String::as_str),
        Some("application/x-protobuf")
    );
    let decoded = ExportTraceServiceResponse::decode(reply.body.as_slice()).unwrap();
    assert_eq!(decoded.partial_success.unwrap().rejected_spans, 3);
    let json = serde_json::to_vec(&sample_request(2, 1, 1)).unwrap();
    let reply = http(addr, "POST", TRACES_PATH, &[JSON_TYPE], &json).await;
    assert_eq!(
        reply.headers.get("content-type").map(String::as_str),
        Some("application/json")
    );
    let value: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(
        value["partialSuccess"]["rejectedSpans"],
        serde_json::json!(1),
        "{value}"
    );
    collector.running.shutdown().await;
}

#[tokio::test]
async fn a_full_writer_answers_503_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let store = causeway_storage::Store::open(&dir.path().join("busy.db"))
        .await
        .unwrap();
    let metrics = Arc::new(SelfMetrics::default());
    let options = WriterOptions {
        max_batch_spans: 100,
        max_batch_delay: std::time::Duration::from_millis(1),
        max_in_flight_spans: 10,
        retention: None,
    };
    let (writer, _task) = spawn_writer(store, options, Arc::clone(&metrics));
    let held = writer.reserve(10).unwrap();
    let app = router(HttpReceiver {
        messaging: MessagingReader::default(),
        writer,
        metrics,
        limits: ReceiverLimits {
            max_body_bytes: 1 << 20,
            read_timeout: std::time::Duration::from_secs(5),
            budget: crate::memory_budget::MemoryBudget::new(16 << 20),
            decoding: crate::otlp::limits::DecodeSlots::default(),
        },
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let body = protobuf(&sample_request(1, 3, 0));
    let reply = http(addr, "POST", TRACES_PATH, &[PROTOBUF_TYPE], &body).await;
    assert_eq!(reply.status, 503);
    assert_eq!(
        reply.headers.get("retry-after").map(String::as_str),
        Some("1")
    );
    let status = tonic_types::Status::decode(reply.body.as_slice()).unwrap();
    assert_eq!(status.code, tonic::Code::Unavailable as i32);
    assert!(status.message.contains("busy"), "{}", status.message);
    drop(held);
    let reply = http(addr, "POST", TRACES_PATH, &[PROTOBUF_TYPE], &body).await;
    assert_eq!(reply.status, 200, "room given back, the retry succeeds");
}

#[tokio::test]
async fn stalled_bodies_hold_no_decoding_slot_and_time_out() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let collector = start_collector(|config| {
        config.otlp.read_timeout = std::time::Duration::from_millis(800);
    })
    .await;
    let addr = collector.running.http_addr();
    // More clients than decoding slots announce a body and never finish it.
    let mut stalled = Vec::new();
    for _ in 0..2 * MAX_CONCURRENT_DECODES {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "POST {TRACES_PATH} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-protobuf\r\n\
             Content-Length: 1000\r\n\r\npartial"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stalled.push(stream);
    }
    let body = protobuf(&sample_request(1, 2, 0));
    let started = std::time::Instant::now();
    let reply = http(addr, "POST", TRACES_PATH, &[PROTOBUF_TYPE], &body).await;
    assert_eq!(reply.status, 200, "a whole request is decoded at once");
    assert!(
        started.elapsed() < std::time::Duration::from_millis(700),
        "without waiting for a slot: {:?}",
        started.elapsed()
    );
    // Each stalled client is answered 408 once the read timeout passes.
    for mut stream in stalled {
        let mut reply = Vec::new();
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            stream.read_to_end(&mut reply),
        )
        .await;
        assert!(
            read.is_ok(),
            "the stalled connection is answered and closed"
        );
        let text = String::from_utf8_lossy(&reply);
        assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    }
    collector.running.shutdown().await;
}
