//! The pure conversion from an OTLP trace export request to storage records.
//!
//! No IO here: receivers decode the request, call [`convert_request`], and hand the records
//! on. A span with an unusable trace or span id is rejected on its own and counted; the
//! rest of the request is kept.

use std::sync::Arc;

use causeway_storage::{
    Attributes, EncodedSpans, SpanEvent, SpanId, SpanKind, SpanLink, SpanRecord, StatusCode,
    TraceId,
};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;
use serde_json::Value;

use crate::otlp::attribute_value::{attributes_from, truncate_string};
use crate::otlp::messaging_fields::MessagingReader;
use causeway_conventions::attribute::{SERVICE_NAME, UNKNOWN_SERVICE};

/// How many rejection messages are kept for the reply; the count covers all of them.
pub const MAX_REJECTION_MESSAGES: usize = 5;

/// Spans refused while converting one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rejections {
    /// How many spans were rejected.
    pub count: u64,
    /// The first few reasons, one per rejected span.
    pub messages: Vec<String>,
}

impl Rejections {
    fn record(&mut self, message: String) {
        self.count += 1;
        if self.messages.len() < MAX_REJECTION_MESSAGES {
            self.messages.push(message);
        }
    }

    /// One line for OTLP's `partial_success.error_message`, empty when nothing was rejected.
    pub fn summary(&self) -> String {
        if self.count == 0 {
            return String::new();
        }
        let more = self.count.saturating_sub(self.messages.len() as u64);
        let mut line = format!(
            "{} spans rejected: {}",
            self.count,
            self.messages.join("; ")
        );
        if more > 0 {
            line.push_str(&format!("; and {more} more"));
        }
        line
    }
}

/// The records of one request, and what was rejected from it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Conversion {
    /// The accepted spans.
    pub spans: Vec<SpanRecord>,
    /// The rejected spans.
    pub rejections: Rejections,
}

/// Converts an OTLP trace export request into span records, reading messaging fields
/// with `messaging`.
pub fn convert_request(
    request: ExportTraceServiceRequest,
    messaging: &MessagingReader,
) -> Conversion {
    let mut spans = Vec::new();
    let rejections = for_each_span(request, messaging, |mut record, resource| {
        record.resource = resource.attributes.clone();
        spans.push(record);
    });
    Conversion { spans, rejections }
}

/// Converts an OTLP trace export request straight into a batch for the store: the same
/// records as [`convert_request`], with each resource serialised once for all its spans
/// instead of copied into every record.
pub fn encode_request(
    request: ExportTraceServiceRequest,
    messaging: &MessagingReader,
) -> (EncodedSpans, Rejections) {
    let mut encoded = EncodedSpans::default();
    let rejections = for_each_span(request, messaging, |record, resource| {
        let json = resource
            .json
            .get_or_insert_with(|| EncodedSpans::serialise_resource(&resource.attributes));
        encoded.push_with_resource(record, Arc::clone(json));
    });
    (encoded, rejections)
}

/// The resource shared by the spans of one `ResourceSpans`.
struct SharedResource {
    attributes: Attributes,
    /// Its serialised form, made on first use.
    json: Option<Arc<str>>,
}

/// Converts every span of the request, handing each accepted one (with an empty
/// `resource`) to `accept` beside its resource; returns what was rejected.
fn for_each_span(
    request: ExportTraceServiceRequest,
    messaging: &MessagingReader,
    mut accept: impl FnMut(SpanRecord, &mut SharedResource),
) -> Rejections {
    let mut rejections = Rejections::default();
    for (resource_index, resource_spans) in request.resource_spans.into_iter().enumerate() {
        let attributes = attributes_from(
            resource_spans
                .resource
                .map(|r| r.attributes)
                .unwrap_or_default(),
        );
        let service_name = match attributes.get(SERVICE_NAME) {
            Some(Value::String(name)) if !name.is_empty() => name.clone(),
            _ => UNKNOWN_SERVICE.to_owned(),
        };
        let mut resource = SharedResource {
            attributes,
            json: None,
        };
        for (scope_index, scope_spans) in resource_spans.scope_spans.into_iter().enumerate() {
            let scope_name = scope_spans.scope.map(|s| s.name).unwrap_or_default();
            for (span_index, span) in scope_spans.spans.into_iter().enumerate() {
                let place = SpanPlace {
                    resource_index,
                    scope_index,
                    span_index,
                };
                match convert_span(span, &service_name, &scope_name, messaging) {
                    Ok(record) => accept(record, &mut resource),
                    Err(reason) => rejections.record(format!("{place}: {reason}")),
                }
            }
        }
    }
    rejections
}

/// Where a span sits in the request, for rejection messages.
struct SpanPlace {
    resource_index: usize,
    scope_index: usize,
    span_index: usize,
}

impl std::fmt::Display for SpanPlace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "resource_spans[{}].scope_spans[{}].spans[{}]",
            self.resource_index, self.scope_index, self.span_index
        )
    }
}

/// One span's record, with an empty `resource` (the caller attaches it).
fn convert_span(
    span: Span,
    service_name: &str,
    scope_name: &str,
    reader: &MessagingReader,
) -> Result<SpanRecord, String> {
    let trace_id =
        TraceId::from_bytes(&span.trace_id).map_err(|e| format!("invalid trace id: {e}"))?;
    let span_id = SpanId::from_bytes(&span.span_id).map_err(|e| format!("invalid span id: {e}"))?;
    // An empty parent means a root; an unusable non-empty one is dropped, keeping the span.
    let parent_span_id = SpanId::from_bytes(&span.parent_span_id).ok();
    let attributes = attributes_from(span.attributes);
    let kind = SpanKind::from_code(i64::from(span.kind));
    let messaging = reader.read(&attributes, &span.name, kind);
    let events = span
        .events
        .into_iter()
        .map(|event| SpanEvent {
            time_ns: nanos(event.time_unix_nano),
            name: event.name,
            attributes: attributes_from(event.attributes),
        })
        .collect();
    let links = span
        .links
        .into_iter()
        .filter_map(|link| {
            Some(SpanLink {
                trace_id: TraceId::from_bytes(&link.trace_id).ok()?,
                span_id: SpanId::from_bytes(&link.span_id).ok()?,
                attributes: attributes_from(link.attributes),
            })
        })
        .collect();
    let (status_code, status_message) = span
        .status
        .map(|s| {
            (
                StatusCode::from_code(i64::from(s.code)),
                truncate_string(s.message),
            )
        })
        .unwrap_or_default();
    Ok(SpanRecord {
        trace_id,
        span_id,
        parent_span_id,
        name: span.name,
        kind,
        service_name: service_name.to_owned(),
        scope_name: scope_name.to_owned(),
        start_ns: nanos(span.start_time_unix_nano),
        end_ns: nanos(span.end_time_unix_nano),
        status_code,
        status_message,
        attributes,
        resource: Attributes::new(),
        events,
        links,
        messaging,
    })
}

/// OTLP times are unsigned; the store's are signed. Times past 2262 saturate.
fn nanos(time: u64) -> i64 {
    i64::try_from(time).unwrap_or(i64::MAX)
}

#[cfg(test)]
#[path = "convert_tests.rs"]
mod tests;
