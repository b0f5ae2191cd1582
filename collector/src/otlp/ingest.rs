//! The receivers' shared path for traces: convert a decoded export request, encode its
//! spans, and wait for the batch writer to commit them.

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};

use causeway_storage::EncodedSpans;

use crate::otlp::convert::{Rejections, encode_request};
use crate::otlp::export_decode::Decoded;
use crate::otlp::messaging_fields::MessagingReader;
use crate::otlp::request_cost::BadSpan;
use crate::self_metrics::SelfMetrics;
use crate::writer::batch_writer::{Reservation, WriteError, WriterHandle};

/// Converts, encodes and writes one request, answering once it is committed. A full
/// writer is refused before any conversion; room in its queue is taken for the accepted
/// spans only, and the request's memory charge shrinks to what those spans hold.
pub async fn ingest(
    decoded: Decoded<ExportTraceServiceRequest>,
    writer: &WriterHandle,
    metrics: &SelfMetrics,
    messaging: &MessagingReader,
) -> Result<ExportTraceServiceResponse, WriteError> {
    let Decoded {
        request,
        mut charge,
        bad_spans,
    } = decoded;
    let offered = span_count(&request);
    if offered == 0 {
        return Ok(ExportTraceServiceResponse::default());
    }
    writer.refuse_if_full(offered)?;
    let (encoded, rejections) = encode(request, &bad_spans, metrics, messaging);
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
    Ok(response(&rejections))
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
    decoded: Decoded<ExportTraceServiceRequest>,
    reservation: Reservation,
    metrics: &SelfMetrics,
    messaging: &MessagingReader,
) -> Result<ExportTraceServiceResponse, WriteError> {
    let Decoded {
        request,
        mut charge,
        bad_spans,
    } = decoded;
    let (encoded, rejections) = encode(request, &bad_spans, metrics, messaging);
    let _ = charge.set(encoded.memory_bytes());
    reservation.write(encoded, charge).await?;
    Ok(response(&rejections))
}

/// Converts and encodes a request's spans, counting the ones rejected while decoding or
/// converting.
fn encode(
    request: ExportTraceServiceRequest,
    bad_spans: &[BadSpan],
    metrics: &SelfMetrics,
    messaging: &MessagingReader,
) -> (EncodedSpans, Rejections) {
    let (encoded, mut rejections) = encode_request(request, messaging);
    BadSpan::explain(bad_spans, &mut rejections);
    metrics.spans_rejected(rejections.count);
    (encoded, rejections)
}

fn response(rejections: &Rejections) -> ExportTraceServiceResponse {
    let partial_success = (rejections.count > 0).then(|| ExportTracePartialSuccess {
        rejected_spans: i64::try_from(rejections.count).unwrap_or(i64::MAX),
        error_message: rejections.summary(),
    });
    ExportTraceServiceResponse { partial_success }
}
