//! The OTLP/HTTP trace receiver: `POST /v1/traces` with protobuf or JSON bodies, plain,
//! gzip or zstd, answered in the request's format once its spans are committed.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::header::{CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures::StreamExt;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use tokio::sync::Semaphore;

use crate::otlp::body_decode::{BodyEncoding, BodyError, BodyFormat};
use crate::otlp::ingest::ingest;
use crate::otlp::limits::{DECODE_SLOT_WAIT, MAX_CONCURRENT_DECODES, RETRY_DELAY};
use crate::otlp::messaging_fields::MessagingReader;
use crate::self_metrics::SelfMetrics;
use crate::writer::batch_writer::WriterHandle;

/// Path of the OTLP/HTTP trace endpoint.
pub const TRACES_PATH: &str = "/v1/traces";

/// What the HTTP receiver needs.
#[derive(Debug, Clone)]
pub struct HttpReceiver {
    /// Where spans go.
    pub writer: WriterHandle,
    /// Counters.
    pub metrics: Arc<SelfMetrics>,
    /// Largest body, as received and after decompression.
    pub max_body_bytes: usize,
    /// How messaging fields and correlation IDs are read from spans.
    pub messaging: MessagingReader,
}

/// The receiver's router. Body size is enforced by the handler, not by axum's default.
pub fn router(receiver: HttpReceiver) -> Router {
    Router::new()
        .route(TRACES_PATH, post(export))
        .layer(DefaultBodyLimit::disable())
        .with_state(Arc::new(Shared {
            receiver,
            decoding: Semaphore::new(MAX_CONCURRENT_DECODES),
        }))
}

struct Shared {
    receiver: HttpReceiver,
    decoding: Semaphore,
}

async fn export(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Body) -> Response {
    let receiver = &shared.receiver;
    let header = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let format = match BodyFormat::from_content_type(header(CONTENT_TYPE)) {
        Ok(format) => format,
        Err(error) => return plain_error(receiver, StatusCode::UNSUPPORTED_MEDIA_TYPE, &error),
    };
    match handle(&shared, format, header(CONTENT_ENCODING), body).await {
        Ok(response) => encode_response(format, &response),
        Err(Refusal::Body(error)) => {
            receiver.metrics.request_invalid();
            let status = match error {
                BodyError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                BodyError::UnsupportedType(_) | BodyError::UnsupportedEncoding(_) => {
                    StatusCode::UNSUPPORTED_MEDIA_TYPE
                }
                BodyError::Corrupt { .. } | BodyError::Malformed(_) => StatusCode::BAD_REQUEST,
            };
            error_response(
                format,
                status,
                tonic::Code::InvalidArgument,
                &error.to_string(),
            )
        }
        Err(Refusal::Write(message)) => {
            let mut response = error_response(
                format,
                StatusCode::SERVICE_UNAVAILABLE,
                tonic::Code::Unavailable,
                &message,
            );
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(RETRY_DELAY.as_secs()));
            response
        }
    }
}

enum Refusal {
    Body(BodyError),
    Write(String),
}

async fn handle(
    shared: &Shared,
    format: BodyFormat,
    encoding: Option<&str>,
    body: Body,
) -> Result<ExportTraceServiceResponse, Refusal> {
    let receiver = &shared.receiver;
    let encoding = BodyEncoding::from_header(encoding).map_err(Refusal::Body)?;
    let limit = receiver.max_body_bytes;
    let busy = || Refusal::Write("collector is busy decoding other requests, retry later".into());
    let slot = tokio::time::timeout(DECODE_SLOT_WAIT, shared.decoding.acquire())
        .await
        .map_err(|_| busy())?
        .map_err(|_| busy())?;
    let raw = read_body(body, limit).await.map_err(Refusal::Body)?;
    // Decompressing and parsing up to the limit is CPU work: keep it off the IO threads.
    let request = tokio::task::spawn_blocking(move || {
        let plain = encoding.decompress(raw, limit)?;
        format.decode(&plain)
    })
    .await
    .map_err(|error| Refusal::Write(format!("request handling failed: {error}")))?
    .map_err(Refusal::Body)?;
    drop(slot);
    ingest(
        request,
        &receiver.writer,
        &receiver.metrics,
        &receiver.messaging,
    )
    .await
    .map_err(|error| Refusal::Write(error.to_string()))
}

/// Reads the body, failing as soon as it passes `limit` bytes.
async fn read_body(body: Body, limit: usize) -> Result<Vec<u8>, BodyError> {
    let mut stream = body.into_data_stream();
    let mut collected = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|error| BodyError::Malformed(format!("cannot read body: {error}")))?;
        if collected.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge { limit });
        }
        collected.extend_from_slice(&chunk);
    }
    Ok(collected)
}

fn encode_response(format: BodyFormat, response: &ExportTraceServiceResponse) -> Response {
    let body = match format {
        BodyFormat::Protobuf => response.encode_to_vec(),
        // Serialising a generated message with string keys cannot fail.
        BodyFormat::Json => serde_json::to_vec(response).unwrap_or_else(|_| b"{}".to_vec()),
    };
    ([(CONTENT_TYPE, format.content_type())], body).into_response()
}

/// An error body as OTLP/HTTP asks: a `google.rpc.Status` in the request's format.
fn error_response(
    format: BodyFormat,
    status: StatusCode,
    code: tonic::Code,
    message: &str,
) -> Response {
    let body = match format {
        BodyFormat::Protobuf => tonic_types::Status {
            code: code as i32,
            message: message.to_owned(),
            details: Vec::new(),
        }
        .encode_to_vec(),
        BodyFormat::Json => serde_json::json!({ "code": code as i32, "message": message })
            .to_string()
            .into_bytes(),
    };
    (status, [(CONTENT_TYPE, format.content_type())], body).into_response()
}

fn plain_error(receiver: &HttpReceiver, status: StatusCode, error: &BodyError) -> Response {
    receiver.metrics.request_invalid();
    (status, error.to_string()).into_response()
}

#[cfg(test)]
#[path = "http_receiver_tests.rs"]
mod tests;
