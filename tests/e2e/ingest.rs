//! OTLP ingest end to end: spans made by the Rust OpenTelemetry SDK and sent by the real
//! `opentelemetry-otlp` exporter (gRPC, gRPC+gzip, HTTP/protobuf) reach the SQLite store
//! field by field. Also the helpers the other `ingest_*` modules share.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use causeway_storage::{
    SpanId as StoredSpanId, SpanKind as StoredKind, SpanRecord, StatusCode as StoredStatus, Store,
    TraceId as StoredTraceId,
};
use opentelemetry::trace::{
    Link, Span as _, SpanId, SpanKind, Status, TraceContextExt, Tracer, TracerProvider as _,
};
use opentelemetry::{Context, InstrumentationScope, KeyValue, Value};
use opentelemetry_otlp::{Compression, WithExportConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter as _, SpanProcessor};
use opentelemetry_semantic_conventions::attribute::{
    EXCEPTION_MESSAGE, EXCEPTION_TYPE, MESSAGING_CONSUMER_GROUP_NAME, MESSAGING_DESTINATION_NAME,
    MESSAGING_DESTINATION_PARTITION_ID, MESSAGING_KAFKA_OFFSET, MESSAGING_MESSAGE_CONVERSATION_ID,
    MESSAGING_OPERATION_TYPE, MESSAGING_SYSTEM,
};
use opentelemetry_semantic_conventions::resource::SERVICE_NAME;

use crate::harness::{CollectorProcess, temp_dir};

/// The OTLP/HTTP path for traces.
pub const TRACES_PATH: &str = "/v1/traces";
/// The instrumentation scope of the spans these tests make.
const SCOPE_NAME: &str = "causeway-e2e";
/// How long one export may take before the test fails.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(15);

/// Every stored span of `trace_id`, read through a read-only store as the TUI would.
pub async fn stored_trace(db: &Path, trace_id: [u8; 16]) -> Vec<SpanRecord> {
    let store = Store::open_read_only(db)
        .await
        .unwrap_or_else(|e| panic!("cannot open {} read-only: {e}", db.display()));
    let trace_id = StoredTraceId::from_bytes(&trace_id).expect("test trace ids are valid");
    let spans = store
        .spans_by_trace(trace_id, 10_000)
        .await
        .unwrap_or_else(|e| panic!("cannot read trace {trace_id}: {e}"));
    store.close().await;
    spans
}

/// Nanoseconds since the Unix epoch.
pub fn unix_nanos(time: SystemTime) -> i64 {
    let since = time
        .duration_since(UNIX_EPOCH)
        .expect("test times are after 1970");
    i64::try_from(since.as_nanos()).expect("test times fit in i64 nanoseconds")
}

/// A span processor that keeps every ended span, so a test can hand them to an exporter
/// itself and await the export's answer.
#[derive(Debug, Clone, Default)]
struct KeptSpans(Arc<Mutex<Vec<SpanData>>>);

impl SpanProcessor for KeptSpans {
    fn on_start(&self, _span: &mut opentelemetry_sdk::trace::Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        self.0.lock().unwrap().push(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

/// The resource of the service the test spans come from.
fn resource(service: &str) -> Resource {
    Resource::builder_empty()
        .with_attribute(KeyValue::new(SERVICE_NAME, service.to_owned()))
        .with_attribute(KeyValue::new("deployment.environment.name", "e2e"))
        .build()
}

/// Records a small messaging flow with the real SDK: a producer send span (event, ok status),
/// a consumer process span that is its child and links to it (error status, exception
/// event), and an internal span under the process span.
fn record_flow(service: &str) -> Vec<SpanData> {
    let kept = KeptSpans::default();
    let provider = SdkTracerProvider::builder()
        .with_resource(resource(service))
        .with_span_processor(kept.clone())
        .build();
    let tracer = provider.tracer_with_scope(
        InstrumentationScope::builder(SCOPE_NAME)
            .with_version("1.0.0")
            .build(),
    );
    let base = SystemTime::now() - Duration::from_secs(5);
    let at = |millis: u64| base + Duration::from_millis(millis);

    let mut send = tracer
        .span_builder("orders send")
        .with_kind(SpanKind::Producer)
        .with_start_time(at(0))
        .with_attributes(vec![
            KeyValue::new(MESSAGING_SYSTEM, "kafka"),
            KeyValue::new(MESSAGING_OPERATION_TYPE, "send"),
            KeyValue::new(MESSAGING_DESTINATION_NAME, "orders"),
            KeyValue::new(MESSAGING_DESTINATION_PARTITION_ID, "2"),
            KeyValue::new(MESSAGING_MESSAGE_CONVERSATION_ID, "ord-1042"),
            KeyValue::new("order.total", 42.5),
            KeyValue::new("order.express", true),
        ])
        .start(&tracer);
    send.add_event_with_timestamp("enqueued", at(1), vec![KeyValue::new("attempt", 1_i64)]);
    send.set_status(Status::Ok);
    let send_context = send.span_context().clone();
    send.end_with_timestamp(at(3));

    let parent = Context::new().with_remote_span_context(send_context.clone());
    let mut process = tracer
        .span_builder("orders process")
        .with_kind(SpanKind::Consumer)
        .with_start_time(at(20))
        .with_links(vec![Link::new(
            send_context,
            vec![KeyValue::new("link.reason", "creation context")],
            0,
        )])
        .with_attributes(vec![
            KeyValue::new(MESSAGING_SYSTEM, "kafka"),
            KeyValue::new(MESSAGING_OPERATION_TYPE, "process"),
            KeyValue::new(MESSAGING_DESTINATION_NAME, "orders"),
            KeyValue::new(MESSAGING_CONSUMER_GROUP_NAME, "shipping"),
            KeyValue::new(MESSAGING_KAFKA_OFFSET, 17_i64),
            KeyValue::new(MESSAGING_MESSAGE_CONVERSATION_ID, "ord-1042"),
        ])
        .start_with_context(&tracer, &parent);
    process.add_event_with_timestamp(
        "exception",
        at(30),
        vec![
            KeyValue::new(EXCEPTION_TYPE, "PaymentDeclined"),
            KeyValue::new(EXCEPTION_MESSAGE, "card expired"),
        ],
    );
    let process_context = Context::new().with_remote_span_context(process.span_context().clone());
    let mut lookup = tracer
        .span_builder("inventory lookup")
        .with_kind(SpanKind::Internal)
        .with_start_time(at(21))
        .start_with_context(&tracer, &process_context);
    lookup.end_with_timestamp(at(25));
    process.set_status(Status::error("payment declined"));
    process.end_with_timestamp(at(40));

    drop(tracer);
    let _ = provider.shutdown();
    let spans = std::mem::take(&mut *kept.0.lock().unwrap());
    assert_eq!(spans.len(), 3, "the SDK ended three spans");
    spans
}

/// How the Rust exporter reaches the collector.
#[derive(Debug, Clone, Copy)]
enum Transport {
    Grpc,
    GrpcGzip,
    HttpProtobuf,
}

/// Exports `spans` with the real `opentelemetry-otlp` exporter and returns its answer.
async fn export(
    collector: &CollectorProcess,
    transport: Transport,
    service: &str,
    spans: Vec<SpanData>,
) -> OTelSdkResult {
    let builder = opentelemetry_otlp::SpanExporter::builder();
    let mut exporter = match transport {
        Transport::Grpc => builder
            .with_tonic()
            .with_endpoint(collector.grpc_endpoint())
            .with_timeout(EXPORT_TIMEOUT)
            .build(),
        Transport::GrpcGzip => builder
            .with_tonic()
            .with_endpoint(collector.grpc_endpoint())
            .with_compression(Compression::Gzip)
            .with_timeout(EXPORT_TIMEOUT)
            .build(),
        Transport::HttpProtobuf => builder
            .with_http()
            .with_endpoint(format!("{}{TRACES_PATH}", collector.http_endpoint()))
            .with_timeout(EXPORT_TIMEOUT)
            .build(),
    }
    .expect("the OTLP exporter builds");
    exporter.set_resource(&resource(service));
    exporter.export(spans).await
}

/// The JSON value the store should hold for an SDK attribute value.
fn expected_json(value: &Value) -> serde_json::Value {
    match value {
        Value::Bool(flag) => serde_json::Value::Bool(*flag),
        Value::I64(number) => serde_json::Value::from(*number),
        Value::F64(number) => serde_json::Value::from(*number),
        Value::String(text) => serde_json::Value::String(text.as_str().to_owned()),
        other => serde_json::Value::String(other.to_string()),
    }
}

fn expected_attributes(pairs: &[KeyValue]) -> serde_json::Map<String, serde_json::Value> {
    pairs
        .iter()
        .map(|pair| (pair.key.as_str().to_owned(), expected_json(&pair.value)))
        .collect()
}

fn expected_kind(kind: &SpanKind) -> StoredKind {
    match kind {
        SpanKind::Client => StoredKind::Client,
        SpanKind::Server => StoredKind::Server,
        SpanKind::Producer => StoredKind::Producer,
        SpanKind::Consumer => StoredKind::Consumer,
        SpanKind::Internal => StoredKind::Internal,
    }
}

/// Asserts that the stored span says everything the SDK's span said.
fn assert_same_span(sent: &SpanData, stored: &SpanRecord, service: &str) {
    let name = &sent.name;
    assert_eq!(
        stored.span_id.0,
        sent.span_context.span_id().to_bytes(),
        "{name}: span id"
    );
    assert_eq!(
        stored.trace_id.0,
        sent.span_context.trace_id().to_bytes(),
        "{name}: trace id"
    );
    let parent = (sent.parent_span_id != SpanId::INVALID)
        .then(|| StoredSpanId(sent.parent_span_id.to_bytes()));
    assert_eq!(stored.parent_span_id, parent, "{name}: parent");
    assert_eq!(stored.name, *name, "{name}: name");
    assert_eq!(stored.kind, expected_kind(&sent.span_kind), "{name}: kind");
    assert_eq!(stored.service_name, service, "{name}: service name");
    assert_eq!(stored.scope_name, SCOPE_NAME, "{name}: scope");
    assert_eq!(
        stored.start_ns,
        unix_nanos(sent.start_time),
        "{name}: start"
    );
    assert_eq!(stored.end_ns, unix_nanos(sent.end_time), "{name}: end");
    assert_eq!(
        stored.attributes,
        expected_attributes(&sent.attributes),
        "{name}: attributes"
    );
    assert_eq!(
        stored.resource.get(SERVICE_NAME),
        Some(&serde_json::Value::String(service.to_owned())),
        "{name}: resource service.name"
    );
    let (status, message) = match &sent.status {
        Status::Unset => (StoredStatus::Unset, String::new()),
        Status::Ok => (StoredStatus::Ok, String::new()),
        Status::Error { description } => (StoredStatus::Error, description.to_string()),
    };
    assert_eq!(
        (stored.status_code, stored.status_message.clone()),
        (status, message),
        "{name}: status"
    );
    assert_eq!(
        stored.events.len(),
        sent.events.len(),
        "{name}: event count"
    );
    for (stored_event, sent_event) in stored.events.iter().zip(sent.events.iter()) {
        assert_eq!(stored_event.name, sent_event.name, "{name}: event name");
        assert_eq!(
            stored_event.time_ns,
            unix_nanos(sent_event.timestamp),
            "{name}: event time"
        );
        assert_eq!(
            stored_event.attributes,
            expected_attributes(&sent_event.attributes),
            "{name}: event attributes"
        );
    }
    assert_eq!(stored.links.len(), sent.links.len(), "{name}: link count");
    for (stored_link, sent_link) in stored.links.iter().zip(sent.links.iter()) {
        assert_eq!(
            stored_link.trace_id.0,
            sent_link.span_context.trace_id().to_bytes(),
            "{name}: link trace"
        );
        assert_eq!(
            stored_link.span_id.0,
            sent_link.span_context.span_id().to_bytes(),
            "{name}: link span"
        );
        assert_eq!(
            stored_link.attributes,
            expected_attributes(&sent_link.attributes),
            "{name}: link attributes"
        );
    }
}

/// Sends the recorded flow over `transport` and checks every stored field.
async fn spans_arrive_field_by_field(transport: Transport) {
    let dir = temp_dir();
    let db = dir.path().join("ingest.db");
    let collector = CollectorProcess::start(&db, &[]);
    let service = format!("rust-{transport:?}").to_lowercase();
    let sent = record_flow(&service);
    let trace_id = sent[0].span_context.trace_id().to_bytes();

    export(&collector, transport, &service, sent.clone())
        .await
        .unwrap_or_else(|e| {
            panic!(
                "{transport:?} export failed: {e}\ncollector stderr:\n{}",
                collector.stderr()
            )
        });

    // Success is answered only after the commit, so the spans are readable right away.
    let stored = stored_trace(&db, trace_id).await;
    assert_eq!(
        stored.len(),
        sent.len(),
        "every exported span is stored once"
    );
    for sent_span in &sent {
        let stored_span = stored
            .iter()
            .find(|s| s.span_id.0 == sent_span.span_context.span_id().to_bytes())
            .unwrap_or_else(|| panic!("span {} is not in the store", sent_span.name));
        assert_same_span(sent_span, stored_span, &service);
    }
    let process = stored
        .iter()
        .find(|s| s.name == "orders process")
        .expect("process span stored");
    assert_eq!(
        process.messaging.consumer_group.as_deref(),
        Some("shipping")
    );
    assert_eq!(
        process.messaging.correlation_id.as_deref(),
        Some("ord-1042")
    );
    assert_eq!(process.messaging.offset, Some(17));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_exporter_spans_arrive_over_grpc() {
    spans_arrive_field_by_field(Transport::Grpc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_exporter_spans_arrive_over_grpc_with_gzip() {
    spans_arrive_field_by_field(Transport::GrpcGzip).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_exporter_spans_arrive_over_http_protobuf() {
    spans_arrive_field_by_field(Transport::HttpProtobuf).await;
}
