//! The OTLP/gRPC metrics service: lag gauges reported by services, stored beside the
//! poller's samples. Other metrics are accepted and dropped.

use causeway_storage::Store;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use tonic::codegen::CompressionEncoding;
use tonic::{Request, Response, Status};

use crate::lag_service::now_ns;
use crate::metrics_ingest::lag_samples;

/// Receives OTLP metrics and stores the lag samples among them.
#[derive(Debug, Clone)]
pub struct GrpcMetricsService {
    store: Store,
}

impl GrpcMetricsService {
    /// The service as a tonic server writing to `store`, accepting messages up to
    /// `max_message_bytes` after decompression (gzip or zstd).
    pub fn server(store: Store, max_message_bytes: usize) -> MetricsServiceServer<Self> {
        MetricsServiceServer::new(GrpcMetricsService { store })
            .max_decoding_message_size(max_message_bytes)
            .accept_compressed(CompressionEncoding::Gzip)
            .accept_compressed(CompressionEncoding::Zstd)
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

#[tonic::async_trait]
impl MetricsService for GrpcMetricsService {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        store_metrics(&self.store, request.get_ref())
            .await
            .map(Response::new)
            .map_err(|error| {
                tracing::warn!(%error, "cannot store lag samples");
                Status::unavailable(format!("cannot store lag samples: {error}"))
            })
    }
}
