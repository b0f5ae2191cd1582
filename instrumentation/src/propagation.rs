//! Broker-agnostic propagation: open send and process spans, and move trace context,
//! correlation ID and CloudEvents attributes in and out of [`Headers`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{Link, Span, SpanContext, SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};

use crate::cloudevent::{CloudEvent, new_event_id, rfc3339};
use crate::correlation::{
    correlation_id, read_correlation_id, with_correlation_id, write_correlation_id,
};
use crate::headers::{HeaderValue, Headers};
use crate::traceparent::{TraceparentError, parse_traceparent, remote_span_context};
use causeway_conventions::{attribute, event, header};

/// What a producer knows about a message it is about to send.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MessageMeta {
    /// Destination topic.
    pub topic: String,
    /// Message key, when it is text.
    pub key: Option<String>,
    /// Destination partition, when the producer chose one or after delivery.
    pub partition: Option<i32>,
    /// Business correlation ID; `None` inherits the one of the parent context.
    pub correlation_id: Option<String>,
    /// CloudEvents `ce_id`; [`MessageMeta::new`] fills in a random one.
    pub event_id: Option<String>,
    /// CloudEvents `ce_type`, such as `order.placed.v1`.
    pub event_type: Option<String>,
    /// CloudEvents `ce_source`, such as the producing service.
    pub event_source: Option<String>,
    /// CloudEvents `ce_dataschema`.
    pub data_schema: Option<String>,
}

impl MessageMeta {
    /// Metadata for a message to `topic`, with a fresh random event id.
    pub fn new(topic: impl Into<String>) -> Self {
        Self {
            topic: topic.into(),
            event_id: Some(new_event_id()),
            ..Self::default()
        }
    }

    /// Sets the message key.
    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Sets the CloudEvents type.
    pub fn with_event_type(mut self, event_type: impl Into<String>) -> Self {
        self.event_type = Some(event_type.into());
        self
    }

    /// Sets the CloudEvents source.
    pub fn with_event_source(mut self, source: impl Into<String>) -> Self {
        self.event_source = Some(source.into());
        self
    }

    /// Sets the correlation ID explicitly instead of inheriting it.
    pub fn with_correlation_id(mut self, correlation_id: impl Into<String>) -> Self {
        self.correlation_id = Some(correlation_id.into());
        self
    }

    /// Fills in a random event id when there is none, returning the id.
    pub fn ensure_event_id(&mut self) -> &str {
        self.event_id.get_or_insert_with(new_event_id)
    }
}

/// Whether a process span is a child of the message's creation context or only links to it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ParentMode {
    /// Child of the creation (send) span, and linked to it: one trace per event.
    #[default]
    Child,
    /// A new trace root that only links to the creation span.
    LinkOnly,
}

/// What a consumer knows about a message it received.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConsumeMeta {
    /// Consumer group name.
    pub group: String,
    /// Topic the message came from.
    pub topic: String,
    /// Partition the message came from.
    pub partition: i32,
    /// Offset of the message in its partition.
    pub offset: i64,
    /// Message key, when it is text.
    pub key: Option<String>,
    /// Message timestamp in milliseconds since the Unix epoch, when the broker gave one.
    pub timestamp_ms: Option<i64>,
    /// Parent or link-only (default: child).
    pub parent_mode: ParentMode,
}

/// Why a consumed message's trace context could not be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakReason {
    /// No `traceparent` header.
    Missing,
    /// A `traceparent` header with a null value.
    Null,
    /// More than one `traceparent` header.
    Repeated,
    /// A `traceparent` value that is not UTF-8.
    NotUtf8,
    /// A `traceparent` value that breaks the W3C grammar.
    Invalid(TraceparentError),
}

impl BreakReason {
    /// A short stable name recorded as `causeway.propagation.break`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Null => "null",
            Self::Repeated => "repeated",
            Self::NotUtf8 => "not_utf8",
            Self::Invalid(error) => error.as_str(),
        }
    }
}

/// The raw `baggage` header of a consumed message, re-sent unchanged on publish.
#[derive(Clone, Debug, PartialEq, Eq)]
struct RawBaggage(String);

/// Everything read from the headers of a consumed message.
#[derive(Clone, Debug)]
pub struct Extracted {
    /// The creation context as a remote parent (empty when broken), with baggage and the
    /// correlation ID.
    pub context: Context,
    /// The creation (send) span of the message, when the headers carried a valid one.
    pub creation: Option<SpanContext>,
    /// The message's correlation ID.
    pub correlation_id: Option<String>,
    /// The message's CloudEvents attributes.
    pub event: CloudEvent,
    /// Why the creation context is missing, when it is.
    pub propagation_break: Option<BreakReason>,
    /// `context` without the remote span: the parent of link-only process spans.
    without_span: Context,
}

fn traceparent_of(headers: &Headers) -> Result<SpanContext, BreakReason> {
    let value = match headers.get(header::TRACEPARENT) {
        HeaderValue::Text(text) => text,
        HeaderValue::Missing => return Err(BreakReason::Missing),
        HeaderValue::Null => return Err(BreakReason::Null),
        HeaderValue::Repeated => return Err(BreakReason::Repeated),
        HeaderValue::NotUtf8 => return Err(BreakReason::NotUtf8),
    };
    let parent = parse_traceparent(value).map_err(BreakReason::Invalid)?;
    // W3C: several tracestate headers are one list, joined with commas.
    let tracestate: Vec<&str> = headers
        .get_all_raw(header::TRACESTATE)
        .map(|v| v.and_then(|bytes| std::str::from_utf8(bytes).ok()))
        .collect::<Option<Vec<&str>>>()
        .unwrap_or_default();
    let tracestate = (!tracestate.is_empty()).then(|| tracestate.join(","));
    Ok(remote_span_context(parent, tracestate.as_deref()))
}

/// Reads trace context, baggage, correlation ID and CloudEvents attributes from a consumed
/// message. Never fails: unusable values are left out and a trace context problem is
/// reported in [`Extracted::propagation_break`].
pub fn extract(headers: &Headers) -> Extracted {
    let correlation = read_correlation_id(headers);
    let mut base = BaggagePropagator::new().extract(headers);
    if let Some(raw) = headers.get_str(header::BAGGAGE) {
        base = base.with_value(RawBaggage(raw.to_owned()));
    }
    if let Some(id) = &correlation {
        base = with_correlation_id(&base, id.clone());
    }
    let (context, creation, propagation_break) = match traceparent_of(headers) {
        Ok(span_context) => (
            base.with_remote_span_context(span_context.clone()),
            Some(span_context),
            None,
        ),
        Err(reason) => (base.clone(), None, Some(reason)),
    };
    Extracted {
        context,
        creation,
        correlation_id: correlation,
        event: CloudEvent::read(headers),
        propagation_break,
        without_span: base,
    }
}

fn push_opt(attributes: &mut Vec<KeyValue>, key: &'static str, value: Option<&str>) {
    if let Some(value) = value {
        attributes.push(KeyValue::new(key, value.to_owned()));
    }
}

/// Opens a `PRODUCER` span `send {topic}` as a child of `parent_cx` and returns a context
/// holding it and the message's correlation ID (explicit, else inherited from `parent_cx`).
/// End it with `cx.span().end()` once the broker acknowledged the message.
pub fn start_send_span<T>(tracer: &T, meta: &MessageMeta, parent_cx: &Context) -> Context
where
    T: Tracer,
    T::Span: Send + Sync + 'static,
{
    let correlation = meta
        .correlation_id
        .clone()
        .or_else(|| correlation_id(parent_cx).map(str::to_owned));
    let mut attributes = vec![
        KeyValue::new(
            attribute::MESSAGING_SYSTEM,
            attribute::MESSAGING_SYSTEM_KAFKA,
        ),
        KeyValue::new(
            attribute::MESSAGING_OPERATION_TYPE,
            attribute::OPERATION_SEND,
        ),
        KeyValue::new(
            attribute::MESSAGING_OPERATION_NAME,
            attribute::OPERATION_SEND,
        ),
        KeyValue::new(attribute::MESSAGING_DESTINATION_NAME, meta.topic.clone()),
    ];
    if let Some(partition) = meta.partition {
        attributes.push(KeyValue::new(
            attribute::MESSAGING_DESTINATION_PARTITION_ID,
            partition.to_string(),
        ));
    }
    push_opt(
        &mut attributes,
        attribute::MESSAGING_KAFKA_MESSAGE_KEY,
        meta.key.as_deref(),
    );
    push_opt(
        &mut attributes,
        attribute::MESSAGING_MESSAGE_ID,
        meta.event_id.as_deref(),
    );
    push_opt(
        &mut attributes,
        attribute::MESSAGING_MESSAGE_CONVERSATION_ID,
        correlation.as_deref(),
    );
    push_opt(
        &mut attributes,
        attribute::CLOUDEVENTS_EVENT_ID,
        meta.event_id.as_deref(),
    );
    push_opt(
        &mut attributes,
        attribute::CLOUDEVENTS_EVENT_TYPE,
        meta.event_type.as_deref(),
    );
    push_opt(
        &mut attributes,
        attribute::CLOUDEVENTS_EVENT_SOURCE,
        meta.event_source.as_deref(),
    );
    let span = tracer
        .span_builder(format!("{} {}", attribute::OPERATION_SEND, meta.topic))
        .with_kind(SpanKind::Producer)
        .with_attributes(attributes)
        .start_with_context(tracer, parent_cx);
    let cx = parent_cx.with_span(span);
    match correlation {
        Some(id) => with_correlation_id(&cx, id),
        None => cx,
    }
}

/// Writes the message headers for a send span context `cx` (from [`start_send_span`]):
/// `traceparent`/`tracestate`, `baggage` (unchanged when it came from a consumed message),
/// `correlation-id` (from `meta`, else from `cx`) and the CloudEvents `ce_*` headers with
/// `ce_time` set to now unless `headers` already has one.
pub fn inject(cx: &Context, headers: &mut Headers, meta: &MessageMeta) {
    TraceContextPropagator::new().inject_context(cx, headers);
    if headers.get_str(header::TRACESTATE) == Some("") {
        headers.remove(header::TRACESTATE);
    }
    match cx.get::<RawBaggage>() {
        Some(raw) => headers.set(header::BAGGAGE, raw.0.as_str()),
        None => BaggagePropagator::new().inject_context(cx, headers),
    }
    let correlation = meta
        .correlation_id
        .as_deref()
        .or_else(|| correlation_id(cx));
    if let Some(id) = correlation {
        write_correlation_id(headers, id);
    }
    CloudEvent {
        id: meta.event_id.clone(),
        event_type: meta.event_type.clone(),
        source: meta.event_source.clone(),
        // A forwarded message (dead letter) keeps the time its event happened.
        time: headers
            .get_str(header::CE_TIME)
            .is_none()
            .then(|| rfc3339(SystemTime::now())),
        data_schema: meta.data_schema.clone(),
    }
    .write(headers);
}

/// Milliseconds between the message timestamp and `now`, never negative.
pub fn queue_time_ms(timestamp_ms: i64, now: SystemTime) -> i64 {
    let now_ms = now
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis();
    let now_ms = i64::try_from(now_ms).unwrap_or(i64::MAX);
    now_ms.saturating_sub(timestamp_ms).max(0)
}

/// Opens a `CONSUMER` span `process {topic}` for a consumed message: linked to the creation
/// context, its child unless `meta.parent_mode` is [`ParentMode::LinkOnly`], carrying the
/// messaging attributes, the queue time and any propagation break. The returned context
/// holds the span, the message's baggage and its correlation ID, so that whatever the
/// handler publishes under it inherits both. End it with `cx.span().end()`.
pub fn start_process_span<T>(tracer: &T, extracted: &Extracted, meta: &ConsumeMeta) -> Context
where
    T: Tracer,
    T::Span: Send + Sync + 'static,
{
    let mut attributes = vec![
        KeyValue::new(
            attribute::MESSAGING_SYSTEM,
            attribute::MESSAGING_SYSTEM_KAFKA,
        ),
        KeyValue::new(
            attribute::MESSAGING_OPERATION_TYPE,
            attribute::OPERATION_PROCESS,
        ),
        KeyValue::new(
            attribute::MESSAGING_OPERATION_NAME,
            attribute::OPERATION_PROCESS,
        ),
        KeyValue::new(attribute::MESSAGING_DESTINATION_NAME, meta.topic.clone()),
        KeyValue::new(
            attribute::MESSAGING_DESTINATION_PARTITION_ID,
            meta.partition.to_string(),
        ),
        KeyValue::new(attribute::MESSAGING_CONSUMER_GROUP_NAME, meta.group.clone()),
        KeyValue::new(attribute::MESSAGING_KAFKA_OFFSET, meta.offset),
    ];
    push_opt(
        &mut attributes,
        attribute::MESSAGING_KAFKA_MESSAGE_KEY,
        meta.key.as_deref(),
    );
    push_opt(
        &mut attributes,
        attribute::MESSAGING_MESSAGE_ID,
        extracted.event.id.as_deref(),
    );
    push_opt(
        &mut attributes,
        attribute::MESSAGING_MESSAGE_CONVERSATION_ID,
        extracted.correlation_id.as_deref(),
    );
    push_opt(
        &mut attributes,
        attribute::CLOUDEVENTS_EVENT_ID,
        extracted.event.id.as_deref(),
    );
    push_opt(
        &mut attributes,
        attribute::CLOUDEVENTS_EVENT_TYPE,
        extracted.event.event_type.as_deref(),
    );
    push_opt(
        &mut attributes,
        attribute::CLOUDEVENTS_EVENT_SOURCE,
        extracted.event.source.as_deref(),
    );
    if let Some(timestamp_ms) = meta.timestamp_ms {
        attributes.push(KeyValue::new(
            attribute::QUEUE_TIME_MS,
            queue_time_ms(timestamp_ms, SystemTime::now()),
        ));
    }
    if let Some(reason) = extracted.propagation_break {
        attributes.push(KeyValue::new(attribute::PROPAGATION_BREAK, reason.as_str()));
    }
    let links = extracted
        .creation
        .iter()
        .map(|creation| Link::with_context(creation.clone()))
        .collect();
    let parent = match meta.parent_mode {
        ParentMode::Child if extracted.creation.is_some() => extracted.context.clone(),
        _ => extracted.without_span.clone(),
    };
    let mut span = tracer
        .span_builder(format!("{} {}", attribute::OPERATION_PROCESS, meta.topic))
        .with_kind(SpanKind::Consumer)
        .with_attributes(attributes)
        .with_links(links)
        .start_with_context(tracer, &parent);
    if let Some(reason) = extracted.propagation_break {
        span.add_event(
            event::PROPAGATION_BREAK,
            vec![KeyValue::new(attribute::PROPAGATION_BREAK, reason.as_str())],
        );
    }
    parent.with_span(span)
}

/// Marks the span of `cx` as failed: status error plus an `exception` event.
pub fn record_error<E: std::error::Error + ?Sized>(cx: &Context, error: &E) {
    let span = cx.span();
    span.add_event(
        event::EXCEPTION,
        vec![
            KeyValue::new(attribute::EXCEPTION_TYPE, std::any::type_name::<E>()),
            KeyValue::new(attribute::EXCEPTION_MESSAGE, error.to_string()),
        ],
    );
    span.set_status(Status::error(error.to_string()));
}

/// Records that the handler of `cx` failed with `error` and is about to be retried: a
/// `causeway.retry` event with the retry number (1 for the first retry).
pub fn record_retry<E: std::error::Error + ?Sized>(cx: &Context, retry: u32, error: &E) {
    cx.span().add_event(
        event::RETRY,
        vec![
            KeyValue::new(attribute::RETRY_COUNT, i64::from(retry)),
            KeyValue::new(attribute::EXCEPTION_MESSAGE, error.to_string()),
        ],
    );
}

/// Sets `causeway.retry.count` on the span of `cx`: how many retries the message needed.
/// Call it once, when the handler is done.
pub fn record_retry_count(cx: &Context, retries: u32) {
    cx.span()
        .set_attribute(KeyValue::new(attribute::RETRY_COUNT, i64::from(retries)));
}

#[cfg(test)]
mod tests;
