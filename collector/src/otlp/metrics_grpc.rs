//! The OTLP/gRPC metrics service: lag gauges reported by services, stored beside the
//! poller's samples. Other metrics are accepted and dropped.
//!
//! Served by hand, like the trace receiver, with the codec of `grpc_export`: a body that is
//! not valid protobuf is answered `INVALID_ARGUMENT`, never `INTERNAL` (which exporters
//! retry forever).

use std::convert::Infallible;

use causeway_storage::{Store, now_ns};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use tonic::codegen::{Body, BoxFuture, Context, Poll, Service, StdError, http};
use tonic::server::{NamedService, UnaryService};
use tonic::{Request, Response, Status};

use crate::otlp::grpc_export::{export_server, unknown_method};
use crate::otlp::metrics_ingest::lag_samples;

/// The OTLP metrics export method's path.
pub const EXPORT_PATH: &str = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";

/// Receives OTLP metrics and stores the lag samples among them; cheap to clone.
#[derive(Debug, Clone)]
pub struct GrpcMetricsService {
    store: Store,
    max_message_bytes: usize,
}

impl GrpcMetricsService {
    /// The service writing to `store`, accepting messages up to `max_message_bytes` after
    /// decompression (gzip or zstd).
    pub fn server(store: Store, max_message_bytes: usize) -> Self {
        GrpcMetricsService {
            store,
            max_message_bytes,
        }
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

/// The export handler, called once tonic has decoded the request.
struct ExportMethod {
    store: Store,
}

impl UnaryService<ExportMetricsServiceRequest> for ExportMethod {
    type Response = ExportMetricsServiceResponse;
    type Future = BoxFuture<Response<Self::Response>, Status>;

    fn call(&mut self, request: Request<ExportMetricsServiceRequest>) -> Self::Future {
        let store = self.store.clone();
        Box::pin(async move {
            store_metrics(&store, request.get_ref())
                .await
                .map(Response::new)
                .map_err(|error| {
                    tracing::warn!(%error, "cannot store lag samples");
                    Status::unavailable(format!("cannot store lag samples: {error}"))
                })
        })
    }
}

impl<B> Service<http::Request<B>> for GrpcMetricsService
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
        let mut grpc = export_server::<ExportMetricsServiceRequest, ExportMetricsServiceResponse>(
            "ExportMetricsServiceRequest",
            self.max_message_bytes,
        );
        let method = ExportMethod {
            store: self.store.clone(),
        };
        Box::pin(async move { Ok(grpc.unary(method, request).await) })
    }
}
