//! The OTLP/gRPC metrics service: lag gauges reported by services, stored beside the
//! poller's samples. Other metrics are accepted and dropped.
//!
//! Served by hand, like the trace receiver (see `grpc_export`): the message is read with
//! the read timeout and charged to the memory budget, costed before decoding, and a body
//! that is not valid protobuf is answered `INVALID_ARGUMENT`, never `INTERNAL` (which
//! exporters retry forever).

use std::convert::Infallible;

use causeway_storage::{Store, now_ns};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use tonic::Status;
use tonic::codegen::{Body, BoxFuture, Context, Poll, Service, StdError, http};
use tonic::server::NamedService;

use crate::otlp::export_decode::METRICS;
use crate::otlp::grpc_export::{decode_unary, grpc_error, grpc_ok, unknown_method};
use crate::otlp::limits::ReceiverLimits;
use crate::otlp::metrics_ingest::lag_samples;

/// The OTLP metrics export method's path.
pub const EXPORT_PATH: &str = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";

/// Receives OTLP metrics and stores the lag samples among them; cheap to clone.
#[derive(Debug, Clone)]
pub struct GrpcMetricsService {
    store: Store,
    limits: ReceiverLimits,
}

impl GrpcMetricsService {
    /// The service writing to `store`, holding requests to `limits` (gzip or zstd
    /// accepted).
    pub fn server(store: Store, limits: ReceiverLimits) -> Self {
        GrpcMetricsService { store, limits }
    }

    async fn export<B>(
        &self,
        request: http::Request<B>,
    ) -> Result<http::Response<tonic::body::Body>, Status>
    where
        B: Body,
        B::Error: std::fmt::Display,
    {
        let decoded = decode_unary(&METRICS, request, &self.limits).await?;
        let response = store_metrics(&self.store, &decoded.request)
            .await
            .map_err(|error| {
                tracing::warn!(%error, "cannot store lag samples");
                Status::unavailable(format!("cannot store lag samples: {error}"))
            })?;
        Ok(grpc_ok(&response))
    }
}

/// Stores the lag samples of one export; the answer reports rejected points.
pub async fn store_metrics(
    store: &Store,
    request: &ExportMetricsServiceRequest,
) -> Result<ExportMetricsServiceResponse, causeway_storage::StorageError> {
    let ingest = lag_samples(request, now_ns());
    if !ingest.samples.is_empty() {
        store.write_lag_samples(&ingest.samples).await?;
    }
    let partial_success = (ingest.rejected > 0).then(|| ExportMetricsPartialSuccess {
        rejected_data_points: i64::try_from(ingest.rejected).unwrap_or(i64::MAX),
        error_message: format!(
            "{} lag data points lacked a group, topic, partition or finite value",
            ingest.rejected
        ),
    });
    Ok(ExportMetricsServiceResponse { partial_success })
}

impl NamedService for GrpcMetricsService {
    const NAME: &'static str = "opentelemetry.proto.collector.metrics.v1.MetricsService";
}

impl<B> Service<http::Request<B>> for GrpcMetricsService
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
                Err(status) => grpc_error(status),
            })
        })
    }
}
