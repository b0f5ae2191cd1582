//! The OTLP/gRPC trace receiver: a thin shell that reads a call's message, decodes it,
//! and waits for the batch writer's commit before answering.
//!
//! It is served by hand rather than through the generated `TraceServiceServer` (see
//! `grpc_export`): the message is read in full, within the read timeout and charged to
//! the memory budget, before a decoding slot is taken; decoding is costed first
//! (`export_decode`); and every refusal has the status docs/COLLECTOR.md promises.

use std::convert::Infallible;
use std::sync::Arc;

use tonic::Status;
use tonic::codegen::{Body, BoxFuture, Context, Poll, Service, StdError, http};
use tonic::server::NamedService;

use crate::otlp::export_decode::TRACES;
use crate::otlp::grpc_export::{
    decode_unary, grpc_error, grpc_ok, refuses_request, unavailable, unknown_method,
};
use crate::otlp::ingest::ingest;
use crate::otlp::limits::ReceiverLimits;
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
    limits: ReceiverLimits,
    /// How messaging fields and correlation IDs are read from spans.
    messaging: MessagingReader,
}

impl GrpcTraceService {
    /// A service that writes through `writer`, holding requests to `limits`.
    pub fn new(writer: WriterHandle, metrics: Arc<SelfMetrics>, limits: ReceiverLimits) -> Self {
        GrpcTraceService {
            writer,
            metrics,
            limits,
            messaging: MessagingReader::default(),
        }
    }

    /// The same service reading correlation IDs with `messaging` (the `[flows]` config).
    pub fn with_messaging(mut self, messaging: MessagingReader) -> Self {
        self.messaging = messaging;
        self
    }

    async fn export<B>(
        &self,
        request: http::Request<B>,
    ) -> Result<http::Response<tonic::body::Body>, Status>
    where
        B: Body,
        B::Error: std::fmt::Display,
    {
        let decoded = decode_unary(&TRACES, request, &self.limits).await?;
        let response = ingest(decoded, &self.writer, &self.metrics, &self.messaging)
            .await
            .map_err(|error| status_of(&error))?;
        Ok(grpc_ok(&response))
    }
}

/// Every write failure is retryable: busy, stopping, or a failed commit.
fn status_of(error: &WriteError) -> Status {
    unavailable(error.to_string())
}

impl NamedService for GrpcTraceService {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
}

impl<B> Service<http::Request<B>> for GrpcTraceService
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + std::fmt::Display + Send + 'static,
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
        let service = self.clone();
        Box::pin(async move {
            Ok(match service.export(request).await {
                Ok(response) => response,
                Err(status) => {
                    if refuses_request(&status) {
                        service.metrics.request_invalid();
                    }
                    grpc_error(status)
                }
            })
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use tonic::Code;
    use tonic_types::StatusExt;

    use super::*;
    use crate::otlp::limits::RETRY_DELAY;

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
