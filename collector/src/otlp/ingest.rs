//! The receivers' shared path for traces: convert a decoded export request, encode its
//! spans, and wait for the batch writer to commit them.

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};

use crate::otlp::convert::encode_request;
use crate::otlp::export_decode::Decoded;
use crate::otlp::request_cost::BadSpan;
use crate::self_metrics::SelfMetrics;
use crate::writer::batch_writer::{WriteError, WriterHandle};

/// Converts, encodes and writes one request, answering once it is committed. A full
/// writer is refused before any conversion; room in its queue is taken for the accepted
/// spans only, and the request's memory charge shrinks to what those spans hold.
pub async fn ingest(
    decoded: Decoded<ExportTraceServiceRequest>,
    writer: &WriterHandle,
    metrics: &SelfMetrics,
) -> Result<ExportTraceServiceResponse, WriteError> {
    let Decoded {
        request,
        mut charge,
        bad_spans,
    } = decoded;
    let offered: usize = request
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum();
    if offered == 0 {
        return Ok(ExportTraceServiceResponse::default());
    }
    writer.refuse_if_full(offered)?;
    let (encoded, mut rejections) = encode_request(request);
    BadSpan::explain(&bad_spans, &mut rejections);
    metrics.spans_rejected(rejections.count);
    if !encoded.is_empty() {
        // The decoded request is gone: keep what its spans hold until they are committed.
        // (This shrinks the charge; should the estimate ever have been short and the
        // budget be busy, the larger charge already held stays.)
        let _ = charge.set(encoded.memory_bytes());
        writer
            .reserve(encoded.len())?
            .write(encoded, charge)
            .await?;
    }
    let partial_success = (rejections.count > 0).then(|| ExportTracePartialSuccess {
        rejected_spans: i64::try_from(rejections.count).unwrap_or(i64::MAX),
        error_message: rejections.summary(),
    });
    Ok(ExportTraceServiceResponse { partial_success })
}
