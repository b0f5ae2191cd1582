//! The shape of the OTLP export requests the receivers decode, for the scans that cost a
//! request before decoding it (`request_cost`): each message's fields by protobuf number
//! and JSON name, what kind of value each holds, and what one decoded message occupies.
//!
//! Only what costs memory or can be rejected is told apart; a field missing here is
//! skipped by the scans as the decoders skip unknown fields, so an omission can only make
//! an estimate smaller by what that field's decoded form would hold, never reject data.

use std::mem::size_of;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, EntityRef, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::metrics::v1::{
    Exemplar, ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram,
    HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, Summary,
    SummaryDataPoint, exponential_histogram_data_point::Buckets,
    summary_data_point::ValueAtQuantile,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};

/// What a message is to the scans beyond its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Nothing special.
    Plain,
    /// A span: the unit that is rejected on its own.
    Span,
    /// The resource of a `ResourceSpans`: its attributes name the service of its spans.
    Resource,
    /// A `ResourceSpans`.
    ResourceSpans,
    /// A `ScopeSpans`: its spans each copy the scope's name.
    ScopeSpans,
    /// The instrumentation scope of a `ScopeSpans`.
    Scope,
    /// A span's link: a row of its own once stored.
    Link,
}

/// What a field holds.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// A message (one, or repeated).
    Message(&'static Shape),
    /// UTF-8 text (one, or repeated).
    Text,
    /// Bytes (base64 in JSON).
    Bytes,
    /// A trace or span id: bytes, hex in JSON.
    Id(IdName),
    /// A double (`NaN`, `Infinity`, `-Infinity` as text in JSON).
    Double,
    /// Any other number, boolean or enum.
    Scalar,
    /// Repeated numbers of `wire_bytes` each on the wire (1 for varints: at least one
    /// byte), 8 bytes each once decoded.
    Numbers {
        /// The fewest bytes one number takes on the wire.
        wire_bytes: usize,
    },
}

/// Which id a field holds, for rejection messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdName {
    /// A trace id.
    Trace,
    /// A span id.
    Span,
    /// A parent span id.
    Parent,
}

impl IdName {
    /// How the id is named in messages.
    pub fn text(self) -> &'static str {
        match self {
            IdName::Trace => "trace id",
            IdName::Span => "span id",
            IdName::Parent => "parent span id",
        }
    }
}

/// One field of a message.
#[derive(Debug)]
pub struct Field {
    /// Its protobuf field number.
    pub number: u32,
    /// Its OTLP/JSON name.
    pub json: &'static str,
    /// What it holds.
    pub kind: Kind,
}

/// One message type.
#[derive(Debug)]
pub struct Shape {
    /// What one decoded message occupies in place (its heap parts are counted apart).
    pub size: usize,
    /// Its fields.
    pub fields: &'static [Field],
    /// What it is to the scans.
    pub role: Role,
}

impl Shape {
    /// The field with protobuf number `number`.
    pub fn by_number(&self, number: u32) -> Option<&'static Field> {
        self.fields.iter().find(|f| f.number == number)
    }

    /// The field with OTLP/JSON name `name`.
    pub fn by_json(&self, name: &[u8]) -> Option<&'static Field> {
        self.fields.iter().find(|f| f.json.as_bytes() == name)
    }
}

const fn field(number: u32, json: &'static str, kind: Kind) -> Field {
    Field { number, json, kind }
}

/// `ExportTraceServiceRequest`.
pub static TRACE_REQUEST: Shape = Shape {
    size: size_of::<ExportTraceServiceRequest>(),
    fields: &[field(1, "resourceSpans", Kind::Message(&RESOURCE_SPANS))],
    role: Role::Plain,
};

static RESOURCE_SPANS: Shape = Shape {
    size: size_of::<ResourceSpans>(),
    fields: &[
        field(1, "resource", Kind::Message(&SPAN_RESOURCE)),
        field(2, "scopeSpans", Kind::Message(&SCOPE_SPANS)),
        field(3, "schemaUrl", Kind::Text),
    ],
    role: Role::ResourceSpans,
};

static SPAN_RESOURCE: Shape = Shape {
    size: size_of::<Resource>(),
    fields: &RESOURCE_FIELDS,
    role: Role::Resource,
};

static RESOURCE: Shape = Shape {
    size: size_of::<Resource>(),
    fields: &RESOURCE_FIELDS,
    role: Role::Plain,
};

static RESOURCE_FIELDS: [Field; 3] = [
    field(1, "attributes", Kind::Message(&KEY_VALUE)),
    field(2, "droppedAttributesCount", Kind::Scalar),
    field(3, "entityRefs", Kind::Message(&ENTITY_REF)),
];

static ENTITY_REF: Shape = Shape {
    size: size_of::<EntityRef>(),
    fields: &[
        field(1, "schemaUrl", Kind::Text),
        field(2, "type", Kind::Text),
        field(3, "idKeys", Kind::Text),
        field(4, "descriptionKeys", Kind::Text),
    ],
    role: Role::Plain,
};

static SCOPE_SPANS: Shape = Shape {
    size: size_of::<ScopeSpans>(),
    fields: &[
        field(1, "scope", Kind::Message(&SPAN_SCOPE)),
        field(2, "spans", Kind::Message(&SPAN)),
        field(3, "schemaUrl", Kind::Text),
    ],
    role: Role::ScopeSpans,
};

static SPAN_SCOPE: Shape = Shape {
    size: size_of::<InstrumentationScope>(),
    fields: &SCOPE_FIELDS,
    role: Role::Scope,
};

static SCOPE: Shape = Shape {
    size: size_of::<InstrumentationScope>(),
    fields: &SCOPE_FIELDS,
    role: Role::Plain,
};

static SCOPE_FIELDS: [Field; 4] = [
    field(1, "name", Kind::Text),
    field(2, "version", Kind::Text),
    field(3, "attributes", Kind::Message(&KEY_VALUE)),
    field(4, "droppedAttributesCount", Kind::Scalar),
];

static SPAN: Shape = Shape {
    size: size_of::<Span>(),
    fields: &[
        field(1, "traceId", Kind::Id(IdName::Trace)),
        field(2, "spanId", Kind::Id(IdName::Span)),
        field(3, "traceState", Kind::Text),
        field(4, "parentSpanId", Kind::Id(IdName::Parent)),
        field(16, "flags", Kind::Scalar),
        field(5, "name", Kind::Text),
        field(6, "kind", Kind::Scalar),
        field(7, "startTimeUnixNano", Kind::Scalar),
        field(8, "endTimeUnixNano", Kind::Scalar),
        field(9, "attributes", Kind::Message(&KEY_VALUE)),
        field(10, "droppedAttributesCount", Kind::Scalar),
        field(11, "events", Kind::Message(&EVENT)),
        field(12, "droppedEventsCount", Kind::Scalar),
        field(13, "links", Kind::Message(&LINK)),
        field(14, "droppedLinksCount", Kind::Scalar),
        field(15, "status", Kind::Message(&STATUS)),
    ],
    role: Role::Span,
};

static EVENT: Shape = Shape {
    size: size_of::<Event>(),
    fields: &[
        field(1, "timeUnixNano", Kind::Scalar),
        field(2, "name", Kind::Text),
        field(3, "attributes", Kind::Message(&KEY_VALUE)),
        field(4, "droppedAttributesCount", Kind::Scalar),
    ],
    role: Role::Plain,
};

static LINK: Shape = Shape {
    size: size_of::<Link>(),
    fields: &[
        field(1, "traceId", Kind::Id(IdName::Trace)),
        field(2, "spanId", Kind::Id(IdName::Span)),
        field(3, "traceState", Kind::Text),
        field(4, "attributes", Kind::Message(&KEY_VALUE)),
        field(5, "droppedAttributesCount", Kind::Scalar),
        field(6, "flags", Kind::Scalar),
    ],
    role: Role::Link,
};

static STATUS: Shape = Shape {
    size: size_of::<Status>(),
    fields: &[
        field(2, "message", Kind::Text),
        field(3, "code", Kind::Scalar),
    ],
    role: Role::Plain,
};

static KEY_VALUE: Shape = Shape {
    size: size_of::<KeyValue>(),
    fields: &[
        field(1, "key", Kind::Text),
        field(2, "value", Kind::Message(&ANY_VALUE)),
        field(3, "keyStrindex", Kind::Scalar),
    ],
    role: Role::Plain,
};

static ANY_VALUE: Shape = Shape {
    size: size_of::<AnyValue>(),
    fields: &[
        field(1, "stringValue", Kind::Text),
        field(2, "boolValue", Kind::Scalar),
        field(3, "intValue", Kind::Scalar),
        field(4, "doubleValue", Kind::Double),
        field(5, "arrayValue", Kind::Message(&ARRAY_VALUE)),
        field(6, "kvlistValue", Kind::Message(&KEY_VALUE_LIST)),
        field(7, "bytesValue", Kind::Bytes),
        field(8, "stringValueStrindex", Kind::Scalar),
    ],
    role: Role::Plain,
};

static ARRAY_VALUE: Shape = Shape {
    size: size_of::<ArrayValue>(),
    fields: &[field(1, "values", Kind::Message(&ANY_VALUE))],
    role: Role::Plain,
};

static KEY_VALUE_LIST: Shape = Shape {
    size: size_of::<KeyValueList>(),
    fields: &[field(1, "values", Kind::Message(&KEY_VALUE))],
    role: Role::Plain,
};

/// `ExportMetricsServiceRequest`.
pub static METRICS_REQUEST: Shape = Shape {
    size: size_of::<ExportMetricsServiceRequest>(),
    fields: &[field(
        1,
        "resourceMetrics",
        Kind::Message(&RESOURCE_METRICS),
    )],
    role: Role::Plain,
};

static RESOURCE_METRICS: Shape = Shape {
    size: size_of::<ResourceMetrics>(),
    fields: &[
        field(1, "resource", Kind::Message(&RESOURCE)),
        field(2, "scopeMetrics", Kind::Message(&SCOPE_METRICS)),
        field(3, "schemaUrl", Kind::Text),
    ],
    role: Role::Plain,
};

static SCOPE_METRICS: Shape = Shape {
    size: size_of::<ScopeMetrics>(),
    fields: &[
        field(1, "scope", Kind::Message(&SCOPE)),
        field(2, "metrics", Kind::Message(&METRIC)),
        field(3, "schemaUrl", Kind::Text),
    ],
    role: Role::Plain,
};

static METRIC: Shape = Shape {
    size: size_of::<Metric>(),
    fields: &[
        field(1, "name", Kind::Text),
        field(2, "description", Kind::Text),
        field(3, "unit", Kind::Text),
        field(12, "metadata", Kind::Message(&KEY_VALUE)),
        field(5, "gauge", Kind::Message(&GAUGE)),
        field(7, "sum", Kind::Message(&SUM)),
        field(9, "histogram", Kind::Message(&HISTOGRAM)),
        field(
            10,
            "exponentialHistogram",
            Kind::Message(&EXPONENTIAL_HISTOGRAM),
        ),
        field(11, "summary", Kind::Message(&SUMMARY)),
    ],
    role: Role::Plain,
};

static GAUGE: Shape = Shape {
    size: size_of::<Gauge>(),
    fields: &[field(1, "dataPoints", Kind::Message(&NUMBER_POINT))],
    role: Role::Plain,
};

static SUM: Shape = Shape {
    size: size_of::<Sum>(),
    fields: &[
        field(1, "dataPoints", Kind::Message(&NUMBER_POINT)),
        field(2, "aggregationTemporality", Kind::Scalar),
        field(3, "isMonotonic", Kind::Scalar),
    ],
    role: Role::Plain,
};

static HISTOGRAM: Shape = Shape {
    size: size_of::<Histogram>(),
    fields: &[
        field(1, "dataPoints", Kind::Message(&HISTOGRAM_POINT)),
        field(2, "aggregationTemporality", Kind::Scalar),
    ],
    role: Role::Plain,
};

static EXPONENTIAL_HISTOGRAM: Shape = Shape {
    size: size_of::<ExponentialHistogram>(),
    fields: &[
        field(1, "dataPoints", Kind::Message(&EXPONENTIAL_POINT)),
        field(2, "aggregationTemporality", Kind::Scalar),
    ],
    role: Role::Plain,
};

static SUMMARY: Shape = Shape {
    size: size_of::<Summary>(),
    fields: &[field(1, "dataPoints", Kind::Message(&SUMMARY_POINT))],
    role: Role::Plain,
};

static NUMBER_POINT: Shape = Shape {
    size: size_of::<NumberDataPoint>(),
    fields: &[
        field(7, "attributes", Kind::Message(&KEY_VALUE)),
        field(2, "startTimeUnixNano", Kind::Scalar),
        field(3, "timeUnixNano", Kind::Scalar),
        field(5, "exemplars", Kind::Message(&EXEMPLAR)),
        field(8, "flags", Kind::Scalar),
        field(4, "asDouble", Kind::Scalar),
        field(6, "asInt", Kind::Scalar),
    ],
    role: Role::Plain,
};

static HISTOGRAM_POINT: Shape = Shape {
    size: size_of::<HistogramDataPoint>(),
    fields: &[
        field(9, "attributes", Kind::Message(&KEY_VALUE)),
        field(2, "startTimeUnixNano", Kind::Scalar),
        field(3, "timeUnixNano", Kind::Scalar),
        field(4, "count", Kind::Scalar),
        field(5, "sum", Kind::Scalar),
        field(6, "bucketCounts", Kind::Numbers { wire_bytes: 8 }),
        field(7, "explicitBounds", Kind::Numbers { wire_bytes: 8 }),
        field(8, "exemplars", Kind::Message(&EXEMPLAR)),
        field(10, "flags", Kind::Scalar),
        field(11, "min", Kind::Scalar),
        field(12, "max", Kind::Scalar),
    ],
    role: Role::Plain,
};

static EXPONENTIAL_POINT: Shape = Shape {
    size: size_of::<ExponentialHistogramDataPoint>(),
    fields: &[
        field(1, "attributes", Kind::Message(&KEY_VALUE)),
        field(2, "startTimeUnixNano", Kind::Scalar),
        field(3, "timeUnixNano", Kind::Scalar),
        field(4, "count", Kind::Scalar),
        field(5, "sum", Kind::Scalar),
        field(6, "scale", Kind::Scalar),
        field(7, "zeroCount", Kind::Scalar),
        field(8, "positive", Kind::Message(&BUCKETS)),
        field(9, "negative", Kind::Message(&BUCKETS)),
        field(10, "flags", Kind::Scalar),
        field(11, "exemplars", Kind::Message(&EXEMPLAR)),
        field(12, "min", Kind::Scalar),
        field(13, "max", Kind::Scalar),
        field(14, "zeroThreshold", Kind::Scalar),
    ],
    role: Role::Plain,
};

static BUCKETS: Shape = Shape {
    size: size_of::<Buckets>(),
    fields: &[
        field(1, "offset", Kind::Scalar),
        field(2, "bucketCounts", Kind::Numbers { wire_bytes: 1 }),
    ],
    role: Role::Plain,
};

static SUMMARY_POINT: Shape = Shape {
    size: size_of::<SummaryDataPoint>(),
    fields: &[
        field(7, "attributes", Kind::Message(&KEY_VALUE)),
        field(2, "startTimeUnixNano", Kind::Scalar),
        field(3, "timeUnixNano", Kind::Scalar),
        field(4, "count", Kind::Scalar),
        field(5, "sum", Kind::Scalar),
        field(6, "quantileValues", Kind::Message(&QUANTILE)),
        field(8, "flags", Kind::Scalar),
    ],
    role: Role::Plain,
};

static QUANTILE: Shape = Shape {
    size: size_of::<ValueAtQuantile>(),
    fields: &[
        field(1, "quantile", Kind::Scalar),
        field(2, "value", Kind::Scalar),
    ],
    role: Role::Plain,
};

static EXEMPLAR: Shape = Shape {
    size: size_of::<Exemplar>(),
    fields: &[
        field(7, "filteredAttributes", Kind::Message(&KEY_VALUE)),
        field(2, "timeUnixNano", Kind::Scalar),
        field(4, "spanId", Kind::Id(IdName::Span)),
        field(5, "traceId", Kind::Id(IdName::Trace)),
        field(3, "asDouble", Kind::Scalar),
        field(6, "asInt", Kind::Scalar),
    ],
    role: Role::Plain,
};
