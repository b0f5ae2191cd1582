//! The benchmark's spans: realistic messaging spans (about 15 attributes, some links and
//! events) in OTLP requests whose ids never repeat, so every request inserts new rows.
//!
//! Like real traffic, trace and span ids are random-looking (W3C ids are random, so every
//! insert lands at a random place of the id index) and Kafka offsets grow per partition as
//! a broker's do. `CAUSEWAY_BENCH_IDS=sequential` gives ids that grow per client instead,
//! to show what id locality is worth. Correlation IDs look like order ids that grow per
//! client (`ord-3-1207-5`); `CAUSEWAY_BENCH_CORRELATIONS=uuid` makes them random UUIDs.

use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link, SpanKind};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, status};
use opentelemetry_semantic_conventions::attribute::{
    MESSAGING_CONSUMER_GROUP_NAME, MESSAGING_DESTINATION_NAME, MESSAGING_DESTINATION_PARTITION_ID,
    MESSAGING_KAFKA_MESSAGE_KEY, MESSAGING_KAFKA_OFFSET, MESSAGING_MESSAGE_CONVERSATION_ID,
    MESSAGING_MESSAGE_ID, MESSAGING_OPERATION_NAME, MESSAGING_OPERATION_TYPE, MESSAGING_SYSTEM,
};
use opentelemetry_semantic_conventions::resource::SERVICE_NAME;

/// Spans in one full-rate request.
pub const SPANS_PER_REQUEST: usize = 512;
/// Spans per trace inside a request.
const SPANS_PER_TRACE: usize = 16;

fn text(key: &str, value: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..KeyValue::default()
    }
}

fn int(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(value)),
        }),
        ..KeyValue::default()
    }
}

/// Makes requests of fresh spans for one client.
pub struct Workload {
    client: u64,
    request_number: u64,
    random_ids: bool,
    uuid_correlations: bool,
    template: ExportTraceServiceRequest,
}

impl Workload {
    /// A workload for `client` (distinct clients never share ids) with `spans` per request.
    pub fn new(client: u64, spans: usize) -> Self {
        let spans = (0..spans).map(|i| template_span(client, i)).collect();
        let template = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![
                        text(SERVICE_NAME, format!("bench-service-{}", client % 5)),
                        text("service.version", "1.4.2"),
                        text("host.name", "bench-host"),
                    ],
                    ..Resource::default()
                }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "causeway-bench".into(),
                        version: "1.0.0".into(),
                        ..InstrumentationScope::default()
                    }),
                    spans,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        };
        Self {
            client,
            request_number: 0,
            random_ids: std::env::var("CAUSEWAY_BENCH_IDS").as_deref() != Ok("sequential"),
            uuid_correlations: std::env::var("CAUSEWAY_BENCH_CORRELATIONS").as_deref()
                == Ok("uuid"),
            template,
        }
    }

    /// The next request: the template with new ids and times.
    pub fn next_request(&mut self) -> ExportTraceServiceRequest {
        self.request_number += 1;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let ids = ids::Ids {
            client: self.client,
            request: self.request_number,
            random: self.random_ids,
        };
        let spans = &mut self.template.resource_spans[0].scope_spans[0].spans;
        let request_spans = spans.len() as i64;
        for (index, span) in spans.iter_mut().enumerate() {
            let trace = (index / SPANS_PER_TRACE) as u64;
            span.trace_id = ids.trace(trace).to_vec();
            span.span_id = ids.span(index as u64).to_vec();
            span.parent_span_id = if index % SPANS_PER_TRACE == 0 {
                Vec::new()
            } else {
                ids.span(index as u64 - 1).to_vec()
            };
            span.start_time_unix_nano = now + index as u64 * 1_000;
            span.end_time_unix_nano = now + index as u64 * 1_000 + 750_000;
            for link in &mut span.links {
                // The creation context: the first span of the previous trace in this request.
                let linked = (trace.saturating_sub(1) as usize) * SPANS_PER_TRACE;
                link.trace_id = ids.trace(trace.saturating_sub(1)).to_vec();
                link.span_id = ids.span(linked as u64).to_vec();
            }
            for event in &mut span.events {
                event.time_unix_nano = now + index as u64 * 1_000 + 500_000;
            }
            for attribute in &mut span.attributes {
                if attribute.key == MESSAGING_KAFKA_OFFSET {
                    // Offsets grow with every request, as a broker's do per partition.
                    let position = self.request_number as i64 * request_spans + index as i64;
                    *attribute = int(MESSAGING_KAFKA_OFFSET, position * 64 + self.client as i64);
                }
                if attribute.key == MESSAGING_MESSAGE_CONVERSATION_ID {
                    let correlation = if self.uuid_correlations {
                        ids.uuid(trace)
                    } else {
                        format!("ord-{}-{}-{trace}", self.client, self.request_number)
                    };
                    *attribute = text(MESSAGING_MESSAGE_CONVERSATION_ID, correlation);
                }
            }
        }
        self.template.clone()
    }

    /// The trace and span id of the request's last span.
    pub fn last_ids(request: &ExportTraceServiceRequest) -> ([u8; 16], [u8; 8]) {
        let span = request.resource_spans[0].scope_spans[0]
            .spans
            .last()
            .expect("requests have spans");
        (
            span.trace_id
                .as_slice()
                .try_into()
                .expect("16-byte trace id"),
            span.span_id.as_slice().try_into().expect("8-byte span id"),
        )
    }
}

/// Unique, never-zero ids from (client, request, index): growing per client, or scrambled
/// by a bijection so that they look random while staying unique.
mod ids {
    #[derive(Clone, Copy)]
    pub struct Ids {
        pub client: u64,
        pub request: u64,
        pub random: bool,
    }

    impl Ids {
        pub fn trace(&self, trace: u64) -> [u8; 16] {
            let (high, low) = ((self.client << 40) | self.request, trace + 1);
            let (high, low) = if self.random {
                // (high, low) → (mix(high ^ mix(low)), mix(low)) is one-to-one.
                (mix(high ^ mix(low)), mix(low))
            } else {
                (high, low)
            };
            let mut id = [0; 16];
            id[..8].copy_from_slice(&high.to_be_bytes());
            id[8..].copy_from_slice(&low.to_be_bytes());
            id
        }

        /// A random-looking UUID (version 4 layout) unique to one trace.
        pub fn uuid(&self, trace: u64) -> String {
            let mut bytes = Ids {
                random: true,
                ..*self
            }
            .trace(trace);
            bytes[6] = (bytes[6] & 0x0f) | 0x40;
            bytes[8] = (bytes[8] & 0x3f) | 0x80;
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            format!(
                "{}-{}-{}-{}-{}",
                &hex[..8],
                &hex[8..12],
                &hex[12..16],
                &hex[16..20],
                &hex[20..]
            )
        }

        pub fn span(&self, index: u64) -> [u8; 8] {
            let id = (self.client << 52) | (self.request << 12) | (index + 1);
            if self.random { mix(id) } else { id }.to_be_bytes()
        }
    }

    /// The splitmix64 finaliser: a bijection on u64 that maps only 0 to 0.
    fn mix(mut x: u64) -> u64 {
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^ (x >> 31)
    }
}

/// One span of the template: a Kafka producer or consumer span with ~15 attributes; every
/// fourth has a link, every eighth an event, every 32nd an error.
fn template_span(client: u64, index: usize) -> Span {
    let consumer = index % 2 == 1;
    let mut attributes = vec![
        text(MESSAGING_SYSTEM, "kafka"),
        text(
            MESSAGING_OPERATION_TYPE,
            if consumer { "process" } else { "send" },
        ),
        text(
            MESSAGING_OPERATION_NAME,
            if consumer { "process" } else { "send" },
        ),
        text(MESSAGING_DESTINATION_NAME, format!("orders-{}", index % 7)),
        text(MESSAGING_DESTINATION_PARTITION_ID, (index % 12).to_string()),
        int(MESSAGING_KAFKA_OFFSET, (index as i64) * 31 + client as i64),
        text(
            MESSAGING_KAFKA_MESSAGE_KEY,
            format!("customer-{}", index % 97),
        ),
        text(MESSAGING_MESSAGE_ID, format!("msg-{client}-{index}")),
        text(MESSAGING_MESSAGE_CONVERSATION_ID, "set per request"),
        text("cloudevents.event_type", "order.placed.v1"),
        text("cloudevents.event_source", "/shop/orders"),
        text("code.function.name", "handle_order"),
        int("order.lines", (index % 9) as i64 + 1),
        text("tenant", "acme"),
        text("deployment.region", "eu-west-1"),
    ];
    if consumer {
        attributes.push(text(
            MESSAGING_CONSUMER_GROUP_NAME,
            format!("group-{}", index % 3),
        ));
    }
    let links = if index % 4 == 3 {
        vec![Link {
            attributes: vec![text("link.reason", "creation context")],
            ..Link::default()
        }]
    } else {
        Vec::new()
    };
    let events = if index % 8 == 7 {
        vec![Event {
            name: "retry".into(),
            attributes: vec![int("attempt", 2)],
            ..Event::default()
        }]
    } else {
        Vec::new()
    };
    let status = (index % 32 == 31).then(|| Status {
        message: "handler failed".into(),
        code: status::StatusCode::Error as i32,
    });
    Span {
        name: if consumer {
            "orders process"
        } else {
            "orders send"
        }
        .into(),
        kind: if consumer {
            SpanKind::Consumer
        } else {
            SpanKind::Producer
        } as i32,
        attributes,
        links,
        events,
        status,
        ..Span::default()
    }
}
