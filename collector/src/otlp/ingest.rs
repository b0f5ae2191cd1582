//! The receivers' shared path: convert a decoded export request, encode its spans, and
//! wait for the batch writer to commit them.

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};

use crate::otlp::convert::encode_request;
use crate::otlp::messaging_fields::MessagingReader;
use crate::self_metrics::SelfMetrics;
use crate::writer::batch_writer::{Reservation, WriteError, WriterHandle};

/// Converts, encodes and writes one request, answering once it is committed. Room is
/// reserved before any work, so a full writer costs nothing but the refusal.
pub async fn ingest(
    request: ExportTraceServiceRequest,
    writer: &WriterHandle,
    metrics: &SelfMetrics,
    messaging: &MessagingReader,
) -> Result<ExportTraceServiceResponse, WriteError> {
    let offered = span_count(&request);
    if offered == 0 {
        return Ok(ExportTraceServiceResponse::default());
    }
    // Refuse before doing any work when the writer is full.
    let reservation = writer.reserve(offered)?;
    ingest_reserved(request, reservation, metrics, messaging).await
}

/// The spans a request offers.
pub fn span_count(request: &ExportTraceServiceRequest) -> usize {
    request
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum()
}

/// [`ingest`] with room already reserved (by a caller that keeps the request while the
/// writer is full, such as the Kafka source).
pub async fn ingest_reserved(
    request: ExportTraceServiceRequest,
    reservation: Reservation,
    metrics: &SelfMetrics,
    messaging: &MessagingReader,
) -> Result<ExportTraceServiceResponse, WriteError> {
    let (encoded, rejections) = encode_request(request, messaging);
    metrics.spans_rejected(rejections.count);
    reservation.write(encoded).await?;
    let partial_success = (rejections.count > 0).then(|| ExportTracePartialSuccess {
        rejected_spans: i64::try_from(rejections.count).unwrap_or(i64::MAX),
        error_message: rejections.summary(),
    });
    Ok(ExportTraceServiceResponse { partial_success })
}
