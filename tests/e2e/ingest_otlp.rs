//! Raw OTLP for the ingest tests: request builders with unique ids, a tonic gRPC client, a
//! hand-framed gRPC call over HTTP/2 (to send bodies no well-behaved client would), and an
//! HTTP client for `POST /v1/traces`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, span::SpanKind};
use opentelemetry_semantic_conventions::resource::SERVICE_NAME;
use prost::Message;

/// The gRPC method path of OTLP trace export.
pub const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
/// gRPC status codes the tests expect (from the gRPC spec).
pub const GRPC_OK: i32 = 0;
/// The request was malformed.
pub const GRPC_INVALID_ARGUMENT: i32 = 3;
/// A message too large to take, as docs/COLLECTOR.md promises (exporters do not retry it).
pub const GRPC_RESOURCE_EXHAUSTED: i32 = 8;
/// Retry later.
pub const GRPC_UNAVAILABLE: i32 = 14;
/// A body that did not arrive in time.
pub const GRPC_DEADLINE_EXCEEDED: i32 = 4;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A trace id no other test in this run uses.
pub fn unique_trace_id() -> [u8; 16] {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    let mut id = [0; 16];
    id[..8].copy_from_slice(&nanos.to_be_bytes());
    id[8..].copy_from_slice(&NEXT_ID.fetch_add(1, Ordering::Relaxed).to_be_bytes());
    id
}

/// A span id no other span in this run uses (never all zeros).
pub fn unique_span_id() -> [u8; 8] {
    NEXT_ID.fetch_add(1, Ordering::Relaxed).to_be_bytes()
}

/// A string attribute.
pub fn string_attribute(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_owned())),
        }),
        ..KeyValue::default()
    }
}

/// A one-millisecond internal span of `trace_id`.
pub fn span(trace_id: [u8; 16], span_id: [u8; 8], name: &str) -> Span {
    let start = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    Span {
        trace_id: trace_id.to_vec(),
        span_id: span_id.to_vec(),
        name: name.to_owned(),
        kind: SpanKind::Internal as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: start + 1_000_000,
        ..Span::default()
    }
}

/// An export request with `spans` from one service and one scope.
pub fn request(service: &str, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![string_attribute(SERVICE_NAME, service)],
                ..Resource::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..ScopeSpans::default()
            }],
            schema_url: String::new(),
        }],
    }
}

/// A request of `count` spans in one fresh trace; returns it and the trace id.
pub fn trace_request(service: &str, count: usize) -> (ExportTraceServiceRequest, [u8; 16]) {
    let trace_id = unique_trace_id();
    let spans = (0..count)
        .map(|i| span(trace_id, unique_span_id(), &format!("work {i}")))
        .collect();
    (request(service, spans), trace_id)
}

/// A tonic OTLP trace client connected to `endpoint` (`http://ADDR`).
pub async fn grpc_client(endpoint: String) -> TraceServiceClient<tonic::transport::Channel> {
    TraceServiceClient::connect(endpoint.clone())
        .await
        .unwrap_or_else(|e| panic!("cannot connect a gRPC client to {endpoint}: {e}"))
}

/// What the server answered to one hand-framed gRPC call.
#[derive(Debug)]
pub struct GrpcReply {
    /// `grpc-status`, from the headers (trailers-only reply) or the trailers.
    pub status: i32,
    /// `grpc-message`, if any.
    pub message: String,
    /// The response message, when the call succeeded.
    pub response: Option<ExportTraceServiceResponse>,
}

/// Sends one gRPC trace Export call over a fresh HTTP/2 connection, with `payload` framed
/// as is (`compressed` sets the frame's compressed flag; `encoding` the `grpc-encoding`
/// header).
pub async fn raw_grpc_call(
    addr: SocketAddr,
    encoding: Option<&str>,
    compressed: bool,
    payload: &[u8],
) -> GrpcReply {
    raw_grpc_call_to(addr, EXPORT_PATH, encoding, compressed, payload).await
}

/// [`raw_grpc_call`] to the method at `path` (the metrics service's Export, say). The
/// `response` is decoded as a trace export's answer, so read it only for traces.
pub async fn raw_grpc_call_to(
    addr: SocketAddr,
    path: &str,
    encoding: Option<&str>,
    compressed: bool,
    payload: &[u8],
) -> GrpcReply {
    let mut frame = BytesMut::with_capacity(payload.len() + 5);
    frame.put_u8(u8::from(compressed));
    frame.put_u32(u32::try_from(payload.len()).expect("payload under 4 GiB"));
    frame.put_slice(payload);
    raw_grpc_body(addr, path, encoding, frame.freeze()).await
}

/// Sends one gRPC call to `path` whose request body is `body` exactly (no framing added:
/// the caller writes the 5-byte message headers, or lies in them).
pub async fn raw_grpc_body(
    addr: SocketAddr,
    path: &str,
    encoding: Option<&str>,
    body: Bytes,
) -> GrpcReply {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {addr}: {e}"));
    let (client, connection) = h2::client::handshake(tcp).await.expect("HTTP/2 handshake");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut client = client.ready().await.expect("HTTP/2 connection ready");
    let (response, mut stream) = client
        .send_request(grpc_head(addr, path, encoding), false)
        .expect("send gRPC headers");
    // The server may answer and reset before reading everything; the reply still counts.
    let _ = stream.send_data(body, true);
    let response = response
        .await
        .unwrap_or_else(|e| panic!("no gRPC response from {addr}: {e}"));
    grpc_reply(response).await
}

/// The headers of a gRPC call to `path` on `addr`.
pub fn grpc_head(addr: SocketAddr, path: &str, encoding: Option<&str>) -> http::Request<()> {
    let mut builder = http::Request::builder()
        .method("POST")
        .uri(format!("http://{addr}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    if let Some(encoding) = encoding {
        builder = builder.header("grpc-encoding", encoding);
    }
    builder.body(()).expect("valid request")
}

/// Reads a gRPC answer: its status (headers or trailers), message and response message.
pub async fn grpc_reply(response: http::Response<h2::RecvStream>) -> GrpcReply {
    let (parts, mut body) = response.into_parts();
    let mut data = BytesMut::new();
    while let Some(chunk) = body.data().await {
        let Ok(chunk) = chunk else { break };
        let _ = body.flow_control().release_capacity(chunk.len());
        data.extend_from_slice(&chunk);
    }
    let trailers = body.trailers().await.ok().flatten();
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .or_else(|| trailers.as_ref().and_then(|t| t.get(name)))
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let status = header("grpc-status")
        .unwrap_or_else(|| panic!("reply without grpc-status (HTTP {})", parts.status))
        .parse()
        .expect("grpc-status is a number");
    let response = (data.len() >= 5)
        .then(|| ExportTraceServiceResponse::decode(&data[5..]).ok())
        .flatten();
    GrpcReply {
        status,
        message: header("grpc-message").unwrap_or_default(),
        response,
    }
}

/// What the server answered to one `POST /v1/traces`.
#[derive(Debug)]
pub struct HttpReply {
    /// The HTTP status code.
    pub status: u16,
    /// `Retry-After`, if sent.
    pub retry_after: Option<String>,
    /// The body.
    pub body: Bytes,
}

/// Posts `body` to `http://ADDR/v1/traces` with the given content type and encoding.
pub async fn http_post(
    addr: SocketAddr,
    content_type: &str,
    content_encoding: Option<&str>,
    body: Vec<u8>,
) -> HttpReply {
    let url = format!("http://{addr}{}", crate::ingest::TRACES_PATH);
    let mut request = reqwest::Client::new()
        .post(&url)
        .header("content-type", content_type)
        .body(body);
    if let Some(encoding) = content_encoding {
        request = request.header("content-encoding", encoding);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {url} failed: {e}"));
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = response.bytes().await.unwrap_or_default();
    HttpReply {
        status,
        retry_after,
        body,
    }
}

/// The protobuf bytes of a request, as an OTLP/HTTP body.
pub fn protobuf(request: &ExportTraceServiceRequest) -> Vec<u8> {
    request.encode_to_vec()
}
