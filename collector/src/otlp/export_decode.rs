//! From a received body to a decoded export request, for both receivers and both
//! signals: decompress (charged as it grows), scan for what decoding and converting will
//! cost and charge that before decoding, blank the spans to reject alone, then decode.
//! CPU work: run it on a blocking thread.

use std::marker::PhantomData;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use serde::de::DeserializeOwned;

use crate::memory_budget::Charge;
use crate::otlp::body_decode::{BodyEncoding, BodyError, BodyFormat};
use crate::otlp::message_shape::{METRICS_REQUEST, Shape, TRACE_REQUEST};
use crate::otlp::request_cost::{BadSpan, ScanError, Tally};
use crate::otlp::{json_scan, proto_scan};

/// One kind of export request.
#[derive(Debug)]
pub struct ExportKind<T> {
    /// Its message name, for errors.
    pub what: &'static str,
    shape: &'static Shape,
    /// At most what is kept of it once converted, from its scan.
    converted: fn(&Tally) -> usize,
    request: PhantomData<fn() -> T>,
}

/// Trace exports: their spans are kept, converted for the store, until committed.
pub const TRACES: ExportKind<ExportTraceServiceRequest> = ExportKind {
    what: "ExportTraceServiceRequest",
    shape: &TRACE_REQUEST,
    converted: Tally::encoded_spans,
    request: PhantomData,
};

/// Metric exports: only lag gauges are kept, as samples no larger than their points.
pub const METRICS: ExportKind<ExportMetricsServiceRequest> = ExportKind {
    what: "ExportMetricsServiceRequest",
    shape: &METRICS_REQUEST,
    converted: |tally| tally.decoded,
    request: PhantomData,
};

/// A decoded request and the memory it holds.
#[derive(Debug)]
pub struct Decoded<T> {
    /// The request, with rejected spans blanked.
    pub request: T,
    /// What it holds of the budget: its decoded form and what converting it will take.
    pub charge: Charge,
    /// Spans rejected before decoding.
    pub bad_spans: Vec<BadSpan>,
}

/// Bodies up to this size are decoded on the task that read them (a millisecond or two of
/// work); larger ones on a blocking thread, so a big decode never holds an IO thread.
/// Decoding every request on blocking threads, each with its own allocator heap, raised
/// the ingest benchmark's steady RSS by about 20 MiB.
const INLINE_DECODE_BYTES: usize = 1 << 20;

/// [`decode_export`] on this task for small bodies, on a blocking thread for large ones.
/// The outer error says the blocking thread failed (it panicked: a bug).
pub async fn decode_export_where_cheap<T>(
    kind: &'static ExportKind<T>,
    raw: Vec<u8>,
    encoding: BodyEncoding,
    format: BodyFormat,
    limit: usize,
    charge: Charge,
) -> Result<Result<Decoded<T>, BodyError>, String>
where
    T: Message + Default + DeserializeOwned + Send + 'static,
{
    if raw.len() <= INLINE_DECODE_BYTES && encoding == BodyEncoding::Identity {
        return Ok(decode_export(kind, raw, encoding, format, limit, charge));
    }
    tokio::task::spawn_blocking(move || decode_export(kind, raw, encoding, format, limit, charge))
        .await
        .map_err(|error| format!("request handling failed: {error}"))
}

/// Decodes `raw`, a body in `format` compressed with `encoding`, of at most `limit` bytes
/// once decompressed. `charge` already holds `raw`.
pub fn decode_export<T: Message + Default + DeserializeOwned>(
    kind: &ExportKind<T>,
    raw: Vec<u8>,
    encoding: BodyEncoding,
    format: BodyFormat,
    limit: usize,
    mut charge: Charge,
) -> Result<Decoded<T>, BodyError> {
    let plain = encoding.decompress(raw, limit, &mut charge)?;
    let malformed = |error: ScanError| BodyError::Malformed {
        what: kind.what,
        reason: error.0,
    };
    let (walk, edited) = match format {
        BodyFormat::Protobuf => {
            let walk = proto_scan::scan(&plain, kind.shape).map_err(malformed)?;
            let edited = (!walk.bad_spans.is_empty())
                .then(|| proto_scan::blank_spans(&plain, kind.shape, &walk.bad_spans));
            (walk, edited)
        }
        BodyFormat::Json => {
            let scan = json_scan::scan(&plain, kind.shape).map_err(malformed)?;
            let edited = scan.needs_edits().then(|| scan.edited(&plain));
            (scan.walk, edited)
        }
    };
    let edited_bytes = edited.as_ref().map_or(0, Vec::capacity);
    charge.grow(
        walk.tally
            .decoded
            .saturating_add((kind.converted)(&walk.tally))
            .saturating_add(edited_bytes),
    )?;
    let request = format.decode(edited.as_deref().unwrap_or(&plain), kind.what)?;
    charge.shrink(plain.capacity() + edited_bytes);
    drop(plain);
    Ok(Decoded {
        request,
        charge,
        bad_spans: walk.bad_spans,
    })
}

#[cfg(test)]
#[path = "export_decode_tests.rs"]
mod tests;
