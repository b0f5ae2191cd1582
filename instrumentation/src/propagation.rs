//! Broker-agnostic propagation: open send and process spans, and move trace context,
//! correlation ID and CloudEvents attributes in and out of [`Headers`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::baggage::{BaggageExt, KeyValueMetadata};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{
    Link, Span, SpanContext, SpanKind, Status, TraceContextExt, TraceId, TraceState, Tracer,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};

use crate::baggage;
use crate::cloudevent::{CloudEvent, new_event_id, rfc3339};
use crate::correlation::{
    correlation_id, header_correlation_id, with_correlation_id, write_correlation_id,
};
use crate::headers::{HeaderValue, Headers};
use crate::traceparent::{TraceparentError, parse_traceparent};
use crate::tracestate::{Tracestate, TracestateError};
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

/// What [`inject`] sends on from a consumed message, kept in its process context.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Inbound {
    /// The message's `baggage` (every `baggage` header, joined): the base of the `baggage`
    /// sent on.
    baggage: Option<String>,
    /// A received `tracestate` that the SDK's `TraceState` cannot hold (see
    /// [`Tracestate::to_sdk`]), sent on for spans of the trace it came with.
    tracestate: Option<CarriedTracestate>,
}

/// A valid `tracestate` and the trace it came with.
#[derive(Clone, Debug, PartialEq, Eq)]
struct CarriedTracestate {
    trace_id: TraceId,
    header: String,
}

/// Everything read from the headers of a consumed message.
#[derive(Clone, Debug)]
pub struct Extracted {
    /// The creation context as a remote parent (empty when broken), with baggage and the
    /// correlation ID.
    pub context: Context,
    /// The creation (send) span of the message, when the headers carried a valid one.
    pub creation: Option<SpanContext>,
    /// The message's correlation ID: from its correlation headers, else from the
    /// `correlation.id` member of its `baggage`.
    pub correlation_id: Option<String>,
    /// The message's CloudEvents attributes.
    pub event: CloudEvent,
    /// Why the creation context is missing, when it is.
    pub propagation_break: Option<BreakReason>,
    /// Why the message's `tracestate` was dropped, when it was (its `traceparent` is still
    /// used).
    pub tracestate_error: Option<TracestateError>,
    /// How many list-members of the message's `baggage` break the W3C grammar; they are
    /// ignored, and left out when the `baggage` is sent on with a correlation ID.
    pub baggage_invalid_members: usize,
    /// `context` without the remote span: the parent of link-only process spans.
    without_span: Context,
}

/// A valid `traceparent` with what became of the `tracestate` that came with it.
struct Received {
    span_context: SpanContext,
    carried: Option<CarriedTracestate>,
    tracestate_error: Option<TracestateError>,
}

fn traceparent_of(headers: &Headers) -> Result<Received, BreakReason> {
    let value = match headers.get(header::TRACEPARENT) {
        HeaderValue::Text(text) => text,
        HeaderValue::Missing => return Err(BreakReason::Missing),
        HeaderValue::Null => return Err(BreakReason::Null),
        HeaderValue::Repeated => return Err(BreakReason::Repeated),
        HeaderValue::NotUtf8 => return Err(BreakReason::NotUtf8),
    };
    let parent = parse_traceparent(value).map_err(BreakReason::Invalid)?;
    // W3C: the tracestate is read only with a valid traceparent, and several tracestate
    // headers are one list.
    let tracestate = Tracestate::from_headers(
        headers
            .get_all_raw(header::TRACESTATE)
            .map(|v| v.and_then(|bytes| std::str::from_utf8(bytes).ok())),
    );
    let (trace_state, carried, tracestate_error) = match tracestate {
        Ok(state) => match state.to_sdk() {
            Some(trace_state) => (trace_state, None, None),
            None => {
                let carried = CarriedTracestate {
                    trace_id: parent.trace_id,
                    header: state.header(),
                };
                (TraceState::NONE, Some(carried), None)
            }
        },
        Err(error) => (TraceState::NONE, None, Some(error)),
    };
    Ok(Received {
        span_context: SpanContext::new(
            parent.trace_id,
            parent.span_id,
            parent.flags,
            true,
            trace_state,
        ),
        carried,
        tracestate_error,
    })
}

/// Reads trace context, baggage, correlation ID and CloudEvents attributes from a consumed
/// message. Never fails: unusable values are left out, a trace context problem is reported
/// in [`Extracted::propagation_break`] and a dropped `tracestate` in
/// [`Extracted::tracestate_error`].
pub fn extract(headers: &Headers) -> Extracted {
    let raw_baggage = baggage::received(headers);
    let parsed = raw_baggage
        .as_deref()
        .map(baggage::parse)
        .unwrap_or_default();
    let correlation = header_correlation_id(headers).or_else(|| parsed.correlation_id());
    let mut base = Context::current();
    if !parsed.members.is_empty() {
        // The SDK's baggage, for handlers that read it through the OpenTelemetry API.
        base = base.with_baggage(parsed.members.iter().map(|member| {
            KeyValueMetadata::new(member.key.to_owned(), member.value(), member.properties())
        }));
    }
    if let Some(id) = &correlation {
        base = with_correlation_id(&base, id.clone());
    }
    let baggage_invalid_members = parsed.invalid;
    let received = traceparent_of(headers);
    let (creation, carried, propagation_break, tracestate_error) = match received {
        Ok(received) => (
            Some(received.span_context),
            received.carried,
            None,
            received.tracestate_error,
        ),
        Err(reason) => (None, None, Some(reason), None),
    };
    if raw_baggage.is_some() || carried.is_some() {
        base = base.with_value(Inbound {
            baggage: raw_baggage,
            tracestate: carried,
        });
    }
    let context = match &creation {
        Some(span_context) => base.with_remote_span_context(span_context.clone()),
        None => base.clone(),
    };
    Extracted {
        context,
        creation,
        correlation_id: correlation,
        event: CloudEvent::read(headers),
        propagation_break,
        tracestate_error,
        baggage_invalid_members,
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
/// `traceparent`/`tracestate`, `baggage` (what came with the consumed message, else the
/// context's baggage, else what `headers` already has, with the `correlation.id` member set
/// to the correlation ID), `correlation-id` (from `meta`, else from `cx`) and the
/// CloudEvents `ce_*` headers with `ce_time` set to now unless `headers` already has one.
pub fn inject(cx: &Context, headers: &mut Headers, meta: &MessageMeta) {
    TraceContextPropagator::new().inject_context(cx, headers);
    write_tracestate(cx, headers);
    let correlation = meta
        .correlation_id
        .as_deref()
        .or_else(|| correlation_id(cx));
    write_baggage(cx, headers, correlation);
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

/// Finishes the `tracestate` the SDK's propagator wrote: a received one the SDK could not
/// hold is sent on for spans of its own trace, and an empty one is not sent at all.
fn write_tracestate(cx: &Context, headers: &mut Headers) {
    let span = cx.span();
    let span_context = span.span_context();
    if !span_context.is_valid() {
        return;
    }
    let own_is_empty = span_context.trace_state().header().is_empty();
    let carried = cx
        .get::<Inbound>()
        .and_then(|inbound| inbound.tracestate.as_ref())
        .filter(|carried| own_is_empty && carried.trace_id == span_context.trace_id());
    match carried {
        Some(carried) => headers.set(header::TRACESTATE, carried.header.as_str()),
        None if own_is_empty => headers.remove(header::TRACESTATE),
        None => {}
    }
}

/// The context's own baggage (set through the OpenTelemetry API), as a header value.
fn context_baggage(cx: &Context) -> Option<String> {
    if cx.baggage().is_empty() {
        return None;
    }
    let mut carrier = Headers::new();
    BaggagePropagator::new().inject_context(cx, &mut carrier);
    carrier.get_str(header::BAGGAGE).map(str::to_owned)
}

/// Writes `baggage`: the received one (else the context's, else the one `headers` has)
/// with the correlation ID merged in; nothing changes when there is neither.
fn write_baggage(cx: &Context, headers: &mut Headers, correlation: Option<&str>) {
    let base = match cx
        .get::<Inbound>()
        .and_then(|inbound| inbound.baggage.clone())
    {
        Some(received) => Some(received),
        None => context_baggage(cx).or_else(|| baggage::received(headers)),
    };
    let outgoing = match correlation {
        Some(id) => baggage::with_correlation_id(base.as_deref(), id),
        None => base,
    };
    if let Some(value) = outgoing {
        headers.set(header::BAGGAGE, value);
    }
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
    if let Some(error) = extracted.tracestate_error {
        attributes.push(KeyValue::new(attribute::TRACESTATE_INVALID, error.as_str()));
    }
    if extracted.baggage_invalid_members > 0 {
        let count = i64::try_from(extracted.baggage_invalid_members).unwrap_or(i64::MAX);
        attributes.push(KeyValue::new(attribute::BAGGAGE_INVALID_MEMBERS, count));
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
