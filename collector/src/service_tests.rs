//! Socket tests of the running collector: OTLP/gRPC, self-metrics and shutdown.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use causeway_storage::Store;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use tonic::codec::CompressionEncoding;
use tonic::transport::Channel;

use crate::byte_size::ByteSize;
use crate::test_support::{http, sample_request, start_collector};

async fn client(addr: std::net::SocketAddr) -> TraceServiceClient<Channel> {
    TraceServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap()
}

async fn stored(db: &causeway_storage::Database) -> i64 {
    Store::open_read_only(db)
        .await
        .unwrap()
        .span_count()
        .await
        .unwrap()
}

#[tokio::test]
async fn grpc_export_is_answered_after_commit_with_partial_success() {
    let collector = start_collector(|_| {}).await;
    let mut client = client(collector.running.grpc_addr()).await;
    let response = client
        .export(sample_request(1, 10, 2))
        .await
        .unwrap()
        .into_inner();
    let partial = response.partial_success.unwrap();
    assert_eq!(partial.rejected_spans, 2);
    assert!(
        partial.error_message.contains("invalid trace id"),
        "{}",
        partial.error_message
    );
    assert_eq!(
        stored(&collector.db).await,
        10,
        "answered only after the commit"
    );
    let clean = client
        .export(sample_request(2, 3, 0))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        clean.partial_success, None,
        "nothing rejected, no partial success"
    );
    collector.running.shutdown().await;
}

#[tokio::test]
async fn grpc_accepts_gzip_and_zstd() {
    let collector = start_collector(|_| {}).await;
    for (trace, encoding) in [
        (1, CompressionEncoding::Gzip),
        (2, CompressionEncoding::Zstd),
    ] {
        let mut client = client(collector.running.grpc_addr())
            .await
            .send_compressed(encoding);
        client.export(sample_request(trace, 50, 0)).await.unwrap();
    }
    assert_eq!(stored(&collector.db).await, 100);
    collector.running.shutdown().await;
}

#[tokio::test]
async fn grpc_messages_over_the_limit_are_refused() {
    let collector = start_collector(|config| {
        config.otlp.grpc_max_message_size = ByteSize(1024);
    })
    .await;
    // Compressed, the request is small; the limit applies after decompression too.
    for compression in [None, Some(CompressionEncoding::Gzip)] {
        let mut client = client(collector.running.grpc_addr()).await;
        if let Some(encoding) = compression {
            client = client.send_compressed(encoding);
        }
        let status = client.export(sample_request(1, 200, 0)).await.unwrap_err();
        assert!(
            matches!(
                status.code(),
                tonic::Code::ResourceExhausted | tonic::Code::OutOfRange
            ),
            "{compression:?}: {status:?}"
        );
    }
    assert_eq!(stored(&collector.db).await, 0);
    collector.running.shutdown().await;
}

#[tokio::test]
async fn metrics_endpoint_counts_what_happened() {
    let collector = start_collector(|_| {}).await;
    let mut client = client(collector.running.grpc_addr()).await;
    client.export(sample_request(1, 7, 3)).await.unwrap();
    let reply = http(
        collector.running.metrics_addr(),
        "GET",
        "/metrics",
        &[],
        b"",
    )
    .await;
    assert_eq!(reply.status, 200);
    let text = String::from_utf8(reply.body).unwrap();
    for line in [
        "causeway_collector_spans_accepted_total 7",
        "causeway_collector_spans_rejected_total 3",
        "causeway_collector_queue_spans 0",
        "causeway_collector_batch_commit_seconds_count 1",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    collector.running.shutdown().await;
}

#[tokio::test]
async fn shutdown_answers_open_requests_and_commits_them() {
    let collector = start_collector(|_| {}).await;
    let addr = collector.running.grpc_addr();
    let mut exports = Vec::new();
    for trace in 1..=8u8 {
        let mut client = client(addr).await;
        exports.push(tokio::spawn(async move {
            client.export(sample_request(trace, 500, 0)).await
        }));
    }
    // Wait until every request has reached the collector, then stop it.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let reply = http(
            collector.running.metrics_addr(),
            "GET",
            "/metrics",
            &[],
            b"",
        )
        .await;
        let text = String::from_utf8(reply.body).unwrap();
        let accepted: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("causeway_collector_spans_accepted_total "))
            .unwrap()
            .parse()
            .unwrap();
        let queued: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("causeway_collector_queue_spans "))
            .unwrap()
            .parse()
            .unwrap();
        if accepted + queued >= 4_000 || tokio::time::Instant::now() > deadline {
            break;
        }
        tokio::task::yield_now().await;
    }
    collector.running.shutdown().await;
    let mut answered = 0;
    for export in exports {
        if export.await.unwrap().is_ok() {
            answered += 500;
        }
    }
    assert_eq!(
        answered, 4_000,
        "every request that arrived before shutdown is answered"
    );
    assert_eq!(
        stored(&collector.db).await,
        4_000,
        "and its spans are committed"
    );
}

/// A client codec that sends raw bytes, to put a broken body on the wire.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        use bytes::BufMut;
        dst.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Vec<u8>>, tonic::Status> {
        use bytes::Buf;
        Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
    }
}

#[tokio::test]
async fn grpc_malformed_bodies_are_invalid_argument() {
    let collector = start_collector(|_| {}).await;
    let channel = Channel::from_shared(format!("http://{}", collector.running.grpc_addr()))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let path = http::uri::PathAndQuery::from_static(crate::otlp::grpc_receiver::EXPORT_PATH);
    let status = grpc
        .unary(tonic::Request::new(vec![0xff, 0xff, 0xff]), path, RawCodec)
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("malformed"), "{status:?}");
    collector.running.shutdown().await;
}
