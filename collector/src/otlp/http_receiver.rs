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
use prost::Message;
use serde::Serialize;

use crate::memory_budget::BudgetError;
use crate::otlp::body_decode::{BodyEncoding, BodyError, BodyFormat};
use crate::otlp::body_read::{ReadError, ReadLimits, read_body};
use crate::otlp::export_decode::{Decoded, ExportKind, TRACES, decode_export_where_cheap};
use crate::otlp::ingest::ingest;
use crate::otlp::limits::{BUSY_DECODING, RETRY_DELAY, ReceiverLimits};
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
    /// What requests are held to.
    pub limits: ReceiverLimits,
    /// How messaging fields and correlation IDs are read from spans.
    pub messaging: MessagingReader,
}

/// The receiver's router. Body size is enforced while reading, not by axum's default.
pub fn router(receiver: HttpReceiver) -> Router {
    Router::new()
        .route(TRACES_PATH, post(export))
        .layer(DefaultBodyLimit::disable())
        .with_state(Arc::new(receiver))
}

async fn export(
    State(receiver): State<Arc<HttpReceiver>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let format = match BodyFormat::from_content_type(header(&headers, CONTENT_TYPE)) {
        Ok(format) => format,
        Err(error) => {
            receiver.metrics.request_invalid();
            return (StatusCode::UNSUPPORTED_MEDIA_TYPE, error.to_string()).into_response();
        }
    };
    let decoded = decode_http(&TRACES, &receiver.limits, format, &headers, body).await;
    let result = match decoded {
        Ok(decoded) => ingest(
            decoded,
            &receiver.writer,
            &receiver.metrics,
            &receiver.messaging,
        )
        .await
        .map_err(|error| Refusal::Retry(error.to_string())),
        Err(refusal) => Err(refusal),
    };
    match result {
        Ok(response) => encode_response(format, &response),
        Err(refusal) => refusal_response(format, refusal, &receiver.metrics),
    }
}

/// The value of header `name`, if it is text.
fn header(headers: &HeaderMap, name: axum::http::HeaderName) -> Option<&str> {
    headers
        .get(name)
        .and_then(|v: &HeaderValue| v.to_str().ok())
}

/// Why a request was not taken.
#[derive(Debug)]
pub enum Refusal {
    /// The request itself is wrong: this status, this message.
    Invalid(StatusCode, String),
    /// The body did not arrive in time.
    TimedOut(String),
    /// The collector is busy or stopping: retry later.
    Retry(String),
}

impl From<BudgetError> for Refusal {
    fn from(error: BudgetError) -> Self {
        match error {
            BudgetError::Busy { .. } => Refusal::Retry(error.to_string()),
            BudgetError::TooLarge { .. } => {
                Refusal::Invalid(StatusCode::PAYLOAD_TOO_LARGE, error.to_string())
            }
        }
    }
}

impl From<ReadError> for Refusal {
    fn from(error: ReadError) -> Self {
        match error {
            ReadError::TooLarge { .. } => {
                Refusal::Invalid(StatusCode::PAYLOAD_TOO_LARGE, error.to_string())
            }
            ReadError::Budget(budget) => budget.into(),
            ReadError::TimedOut(_) => Refusal::TimedOut(error.to_string()),
            ReadError::Invalid(_) | ReadError::Broken(_) => {
                Refusal::Invalid(StatusCode::BAD_REQUEST, error.to_string())
            }
        }
    }
}

impl From<BodyError> for Refusal {
    fn from(error: BodyError) -> Self {
        let status = match error {
            BodyError::Budget(budget) => return budget.into(),
            BodyError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            BodyError::UnsupportedType(_) | BodyError::UnsupportedEncoding(_) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            BodyError::Corrupt { .. } | BodyError::Malformed { .. } => StatusCode::BAD_REQUEST,
        };
        Refusal::Invalid(status, error.to_string())
    }
}

/// Reads and decodes one OTLP/HTTP body of `kind`: read whole (within the read timeout,
/// charged), then a decoding slot, then decoded on a blocking thread.
pub async fn decode_http<T>(
    kind: &'static ExportKind<T>,
    limits: &ReceiverLimits,
    format: BodyFormat,
    headers: &HeaderMap,
    body: Body,
) -> Result<Decoded<T>, Refusal>
where
    T: prost::Message + Default + serde::de::DeserializeOwned + Send + 'static,
{
    let encoding = BodyEncoding::from_header(header(headers, CONTENT_ENCODING))?;
    let max = limits.max_body_bytes;
    let mut charge = limits.budget.charge();
    let read_limits = ReadLimits {
        max_bytes: max,
        read_timeout: limits.read_timeout,
    };
    let raw = read_body(body, read_limits, &mut charge, |_| Ok(())).await?;
    let Some(slot) = limits.decoding.take().await else {
        return Err(Refusal::Retry(BUSY_DECODING.to_owned()));
    };
    let decoded = decode_export_where_cheap(kind, raw, encoding, format, max, charge)
        .await
        .map_err(Refusal::Retry)??;
    drop(slot);
    Ok(decoded)
}

/// The answer to a refused request, in the request's format; refusals of the request
/// itself are counted.
pub fn refusal_response(format: BodyFormat, refusal: Refusal, metrics: &SelfMetrics) -> Response {
    match refusal {
        Refusal::Invalid(status, message) => {
            metrics.request_invalid();
            error_response(format, status, tonic::Code::InvalidArgument, &message)
        }
        Refusal::TimedOut(message) => error_response(
            format,
            StatusCode::REQUEST_TIMEOUT,
            tonic::Code::DeadlineExceeded,
            &message,
        ),
        Refusal::Retry(message) => {
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

/// A successful answer: `response` in the request's format.
pub fn encode_response<M: Message + Serialize>(format: BodyFormat, response: &M) -> Response {
    let body = match format {
        BodyFormat::Protobuf => response.encode_to_vec(),
        // Serialising a generated message with string keys cannot fail.
        BodyFormat::Json => serde_json::to_vec(response).unwrap_or_else(|_| b"{}".to_vec()),
    };
    ([(CONTENT_TYPE, format.content_type())], body).into_response()
}

/// An error body as OTLP/HTTP asks: a `google.rpc.Status` in the request's format.
pub fn error_response(
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

#[cfg(test)]
#[path = "http_receiver_tests.rs"]
mod tests;
