//! The OTLP/gRPC trace receiver: a thin shell that decodes, converts, and waits for the
//! batch writer's commit before answering.
//!
//! It is served by hand rather than through the generated `TraceServiceServer`, with the
//! codec of `grpc_export`, so that a body that is not valid protobuf is answered
//! `INVALID_ARGUMENT`, and a request waits for a decoding slot before it is decoded.

use std::convert::Infallible;
use std::sync::Arc;

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::codegen::{Body, BoxFuture, Context, Poll, Service, StdError, http};
use tonic::server::{NamedService, UnaryService};
use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::otlp::grpc_export::{export_server, unknown_method};
use crate::otlp::ingest::ingest;
use crate::otlp::limits::{DECODE_SLOT_WAIT, MAX_CONCURRENT_DECODES, RETRY_DELAY};
use crate::otlp::messaging_fields::MessagingReader;
use crate::self_metrics::SelfMetrics;
use crate::writer::batch_writer::{WriteError, WriterHandle};

/// The OTLP trace export method's path.
pub const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// The OTLP trace service, cheap to clone.
#[derive(Debug, Clone)]
pub struct GrpcTraceService {
    writer: WriterHandle,
    metrics: Arc<SelfMetrics>,
    max_message_bytes: usize,
    /// How messaging fields and correlation IDs are read from spans.
    messaging: MessagingReader,
    /// Requests read and decoded at once, shared by every clone: each may hold up to the
    /// message limit twice (compressed and plain), so this bounds the receiver's memory.
    decoding: Arc<Semaphore>,
}

impl GrpcTraceService {
    /// A service that writes through `writer` and accepts messages up to
    /// `max_message_bytes` after decompression.
    pub fn new(writer: WriterHandle, metrics: Arc<SelfMetrics>, max_message_bytes: usize) -> Self {
        GrpcTraceService {
            writer,
            metrics,
            max_message_bytes,
            messaging: MessagingReader::default(),
            decoding: Arc::new(Semaphore::new(MAX_CONCURRENT_DECODES)),
        }
    }

    /// The same service reading correlation IDs with `messaging` (the `[flows]` config).
    pub fn with_messaging(mut self, messaging: MessagingReader) -> Self {
        self.messaging = messaging;
        self
    }

    async fn export(
        &self,
        request: ExportTraceServiceRequest,
    ) -> Result<ExportTraceServiceResponse, Status> {
        let response = ingest(request, &self.writer, &self.metrics, &self.messaging).await;
        response.map_err(|error| status_of(&error))
    }
}

/// Every write failure is retryable: busy, stopping, or a failed commit.
fn status_of(error: &WriteError) -> Status {
    unavailable(error.to_string())
}

/// `UNAVAILABLE` with retry info: exporters back off and send the batch again.
fn unavailable(message: impl Into<String>) -> Status {
    Status::with_error_details(
        Code::Unavailable,
        message,
        ErrorDetails::with_retry_info(Some(RETRY_DELAY)),
    )
}

/// Every decoding slot stayed taken for [`DECODE_SLOT_WAIT`]: retryable, like a full writer.
fn busy_decoding() -> Status {
    unavailable("collector is busy decoding other requests, retry later")
}

impl NamedService for GrpcTraceService {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
}

/// The export handler, called once tonic has decoded the request; it frees the decoding
/// slot before waiting for the commit.
struct ExportMethod {
    service: GrpcTraceService,
    decoding_slot: Option<OwnedSemaphorePermit>,
}

impl UnaryService<ExportTraceServiceRequest> for ExportMethod {
    type Response = ExportTraceServiceResponse;
    type Future = BoxFuture<Response<Self::Response>, Status>;

    fn call(&mut self, request: Request<ExportTraceServiceRequest>) -> Self::Future {
        drop(self.decoding_slot.take());
        let service = self.service.clone();
        Box::pin(async move {
            service
                .export(request.into_inner())
                .await
                .map(Response::new)
        })
    }
}

impl<B> Service<http::Request<B>> for GrpcTraceService
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path() != EXPORT_PATH {
            return unknown_method(request.uri().path());
        }
        let mut grpc = export_server::<ExportTraceServiceRequest, ExportTraceServiceResponse>(
            "ExportTraceServiceRequest",
            self.max_message_bytes,
        );
        let service = self.clone();
        Box::pin(async move {
            let slot = tokio::time::timeout(
                DECODE_SLOT_WAIT,
                Arc::clone(&service.decoding).acquire_owned(),
            )
            .await;
            let Ok(Ok(slot)) = slot else {
                return Ok(busy_decoding().into_http());
            };
            let metrics = Arc::clone(&service.metrics);
            let method = ExportMethod {
                service,
                decoding_slot: Some(slot),
            };
            let response = grpc.unary(method, request).await;
            if is_refused_body(&response) {
                metrics.request_invalid();
            }
            Ok(response)
        })
    }
}

/// Whether tonic refused the request body itself: not protobuf, too large, or a
/// decompression that passed the limit. Such answers carry `grpc-status` in the headers;
/// the handler's own answers are `OK` or `UNAVAILABLE`.
fn is_refused_body<B>(response: &http::Response<B>) -> bool {
    let refused = [
        Code::InvalidArgument,
        Code::ResourceExhausted,
        Code::OutOfRange,
    ];
    Status::from_header_map(response.headers())
        .is_some_and(|status| refused.contains(&status.code()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn write_failures_ask_exporters_to_retry() {
        let cases = [
            (
                WriteError::Busy {
                    in_flight_limit: 10,
                },
                "busy",
                "a full writer",
            ),
            (WriteError::Stopped, "shutting down", "a stopping collector"),
            (
                WriteError::Commit("disk full".into()),
                "disk full",
                "a failed commit stores nothing",
            ),
        ];
        for (error, message, reason) in cases {
            let status = status_of(&error);
            assert_eq!(status.code(), Code::Unavailable, "{reason}");
            assert!(
                status.message().contains(message),
                "{reason}: {}",
                status.message()
            );
            let retry = status.get_details_retry_info().map(|info| info.retry_delay);
            assert_eq!(retry, Some(Some(RETRY_DELAY)), "{reason}");
        }
    }
}
