//! The stored records: what a span looks like once it has been normalised.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ids::{SpanId, TraceId};

/// Attribute key/value pairs, kept as a JSON object with sorted keys.
pub type Attributes = Map<String, Value>;

/// OpenTelemetry span kind, with the numbering of the OTLP protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SpanKind {
    /// Kind not given by the sender.
    #[default]
    Unspecified,
    /// Work inside one service.
    Internal,
    /// The server side of a synchronous call.
    Server,
    /// The client side of a synchronous call.
    Client,
    /// Sending or creating a message.
    Producer,
    /// Receiving or processing a message.
    Consumer,
}

impl SpanKind {
    /// The OTLP number of this kind.
    pub fn code(self) -> i64 {
        match self {
            SpanKind::Unspecified => 0,
            SpanKind::Internal => 1,
            SpanKind::Server => 2,
            SpanKind::Client => 3,
            SpanKind::Producer => 4,
            SpanKind::Consumer => 5,
        }
    }

    /// The kind for an OTLP number; unknown numbers read as unspecified.
    pub fn from_code(code: i64) -> Self {
        match code {
            1 => SpanKind::Internal,
            2 => SpanKind::Server,
            3 => SpanKind::Client,
            4 => SpanKind::Producer,
            5 => SpanKind::Consumer,
            _ => SpanKind::Unspecified,
        }
    }
}

/// OpenTelemetry span status code, with the numbering of the OTLP protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum StatusCode {
    /// No status was set.
    #[default]
    Unset,
    /// The operation succeeded.
    Ok,
    /// The operation failed.
    Error,
}

impl StatusCode {
    /// The OTLP number of this status.
    pub fn code(self) -> i64 {
        match self {
            StatusCode::Unset => 0,
            StatusCode::Ok => 1,
            StatusCode::Error => 2,
        }
    }

    /// The status for an OTLP number; unknown numbers read as unset.
    pub fn from_code(code: i64) -> Self {
        match code {
            1 => StatusCode::Ok,
            2 => StatusCode::Error,
            _ => StatusCode::Unset,
        }
    }
}

/// A timestamped event recorded on a span (an exception, a retry, a log line).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanEvent {
    /// When it happened, in nanoseconds since the Unix epoch.
    pub time_ns: i64,
    /// The event's name, such as `exception`.
    pub name: String,
    /// The event's attributes.
    pub attributes: Attributes,
}

/// A link from one span to another span's context, possibly in another trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanLink {
    /// Trace of the linked span.
    pub trace_id: TraceId,
    /// The linked span.
    pub span_id: SpanId,
    /// The link's attributes.
    pub attributes: Attributes,
}

/// The messaging fields of a span, pulled out of its attributes into indexed columns.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Messaging {
    /// The business correlation ID (`messaging.message.conversation_id`).
    pub correlation_id: Option<String>,
    /// The message id (`messaging.message.id` or `cloudevents.event_id`).
    pub message_id: Option<String>,
    /// The event type, such as `order.placed.v1` (`cloudevents.event_type`).
    pub event_type: Option<String>,
    /// The topic (`messaging.destination.name`).
    pub destination: Option<String>,
    /// The partition (`messaging.destination.partition.id`).
    pub partition: Option<i64>,
    /// The Kafka offset (`messaging.kafka.offset`).
    pub offset: Option<i64>,
    /// The consumer group (`messaging.consumer.group.name`).
    pub consumer_group: Option<String>,
    /// `create`, `send`, `receive`, `process` or `settle` (`messaging.operation.type`).
    pub operation_type: Option<String>,
    /// The message key (`messaging.kafka.message.key`).
    pub message_key: Option<String>,
}

/// One span as causeway stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanRecord {
    /// The span's trace.
    pub trace_id: TraceId,
    /// The span itself.
    pub span_id: SpanId,
    /// The parent span, if any (in the same trace).
    pub parent_span_id: Option<SpanId>,
    /// The span's name.
    pub name: String,
    /// Producer, consumer, server and so on.
    pub kind: SpanKind,
    /// `service.name` of the span's resource.
    pub service_name: String,
    /// The instrumentation scope that made the span.
    pub scope_name: String,
    /// Start, in nanoseconds since the Unix epoch.
    pub start_ns: i64,
    /// End, in nanoseconds since the Unix epoch.
    pub end_ns: i64,
    /// The span's status.
    pub status_code: StatusCode,
    /// The status message (empty when none).
    pub status_message: String,
    /// The span's own attributes.
    pub attributes: Attributes,
    /// The attributes of the resource (the service) that made the span.
    pub resource: Attributes,
    /// Events recorded on the span.
    pub events: Vec<SpanEvent>,
    /// Links to other spans' contexts.
    pub links: Vec<SpanLink>,
    /// The messaging fields, also present in `attributes`.
    pub messaging: Messaging,
}

impl SpanRecord {
    /// The span's duration in nanoseconds (zero when the end precedes the start).
    pub fn duration_ns(&self) -> i64 {
        (self.end_ns - self.start_ns).max(0)
    }

    /// Whether the span ended in error.
    pub fn is_error(&self) -> bool {
        self.status_code == StatusCode::Error
    }
}
