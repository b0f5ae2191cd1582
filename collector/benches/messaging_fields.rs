//! Messaging field benchmark: what reading every generation of the messaging conventions
//! costs at ingest, in isolation. Over the spans of every OTLP fixture in the repository
//! (spans the real Python and Node instrumentations exported, and the golden shapes of the
//! Java agent, Go, .NET and Spring Kafka instrumentations), it times, alternately:
//! - today's reader (`MessagingReader::read`: every name of every field, the span name and
//!   kind, offsets inside message ids, the configured correlation keys);
//! - the baseline: the reader as it was before it learnt the older generations (commit
//!   e4552e1, one stable name per field), reproduced below;
//! - the whole conversion of the same requests into a batch for the store
//!   (`encode_request`, which includes today's reader),
//!
//! and prints nanoseconds per span for each and the extra cost of the wider mapping as a
//! share of the conversion. Issue 13's target is ingest within 5% of its rate before.
//!
//! `cargo bench -p causeway-collector --bench messaging_fields -- [rounds]`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

/// The allocator the `causeway` binary runs the collector with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use causeway_collector::otlp::body_decode::BodyFormat;
use causeway_collector::otlp::convert::{convert_request, encode_request};
use causeway_collector::otlp::messaging_fields::{MessagingReader, integer_of, text_of};
use causeway_conventions::attribute::{
    CLOUDEVENTS_EVENT_ID, CLOUDEVENTS_EVENT_TYPE, MESSAGING_CONSUMER_GROUP_NAME,
    MESSAGING_DESTINATION_NAME, MESSAGING_DESTINATION_PARTITION_ID, MESSAGING_KAFKA_MESSAGE_KEY,
    MESSAGING_KAFKA_OFFSET, MESSAGING_MESSAGE_CONVERSATION_ID, MESSAGING_MESSAGE_ID,
    MESSAGING_OPERATION_TYPE,
};
use causeway_storage::{Attributes, Messaging, SpanKind};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

/// Passes over all fixture spans per timed sample.
const PASSES_PER_SAMPLE: usize = 200;

fn main() {
    let rounds: usize = std::env::args()
        .skip(1)
        .find(|arg| !arg.starts_with('-'))
        .and_then(|arg| arg.parse().ok())
        .unwrap_or(15);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
    let requests = fixture_requests(&root);
    let reader = MessagingReader::default();
    let spans: Vec<(Attributes, String, SpanKind)> = requests
        .iter()
        .flat_map(|request| convert_request(request.clone(), &reader).spans)
        .map(|span| (span.attributes, span.name, span.kind))
        .collect();
    println!(
        "{} spans from {} fixture requests; {rounds} rounds of {PASSES_PER_SAMPLE} passes",
        spans.len(),
        requests.len()
    );
    let per_span = |elapsed: Duration, passes: usize| {
        elapsed.as_nanos() as f64 / (passes * spans.len()) as f64
    };
    let mut today = Vec::new();
    let mut before = Vec::new();
    let mut convert = Vec::new();
    for _ in 0..rounds {
        let started = Instant::now();
        for _ in 0..PASSES_PER_SAMPLE {
            for (attributes, name, kind) in &spans {
                black_box(reader.read(black_box(attributes), name, *kind));
            }
        }
        today.push(per_span(started.elapsed(), PASSES_PER_SAMPLE));

        let started = Instant::now();
        for _ in 0..PASSES_PER_SAMPLE {
            for (attributes, _, _) in &spans {
                black_box(reader_before(black_box(attributes)));
            }
        }
        before.push(per_span(started.elapsed(), PASSES_PER_SAMPLE));

        // The conversion consumes its request: the copies are made before the clock starts.
        let passes = PASSES_PER_SAMPLE / 10;
        let copies: Vec<ExportTraceServiceRequest> =
            (0..passes).flat_map(|_| requests.iter().cloned()).collect();
        let started = Instant::now();
        for request in copies {
            black_box(encode_request(request, &reader));
        }
        convert.push(per_span(started.elapsed(), passes));
    }
    let (today, before, convert) = (median(today), median(before), median(convert));
    println!("reader today (every generation): median {today:.0} ns/span");
    println!("baseline: reader before (one name per field): median {before:.0} ns/span");
    println!("whole conversion (encode_request): median {convert:.0} ns/span");
    println!(
        "extra cost of the wider mapping: {:.0} ns/span, {:.1}% of the conversion",
        today - before,
        100.0 * (today - before) / convert
    );
}

/// Every OTLP/JSON request among the fixtures (not the scripts' reports nor the expected
/// outcomes).
fn fixture_requests(root: &Path) -> Vec<ExportTraceServiceRequest> {
    let mut requests = Vec::new();
    for folder in ["real", "foreign"] {
        let mut paths: Vec<_> = std::fs::read_dir(root.join(folder))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| {
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                name.ends_with(".json")
                    && !name.ends_with(".run.json")
                    && !name.ends_with(".expect.json")
            })
            .collect();
        paths.sort();
        for path in paths {
            let body = std::fs::read(&path).unwrap();
            let request: ExportTraceServiceRequest = BodyFormat::Json
                .decode(&body, "ExportTraceServiceRequest")
                .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
            requests.push(request);
        }
    }
    assert!(!requests.is_empty(), "no fixtures under {}", root.display());
    requests
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The messaging reader at commit e4552e1, before issue 13: one stable name per field
/// (its value helpers are unchanged since).
fn reader_before(attributes: &Attributes) -> Messaging {
    let text = |key: &str| attributes.get(key).and_then(text_of);
    let number = |key: &str| attributes.get(key).and_then(integer_of);
    Messaging {
        correlation_id: text(MESSAGING_MESSAGE_CONVERSATION_ID),
        message_id: text(MESSAGING_MESSAGE_ID).or_else(|| text(CLOUDEVENTS_EVENT_ID)),
        event_type: text(CLOUDEVENTS_EVENT_TYPE),
        destination: text(MESSAGING_DESTINATION_NAME),
        partition: number(MESSAGING_DESTINATION_PARTITION_ID),
        offset: number(MESSAGING_KAFKA_OFFSET),
        consumer_group: text(MESSAGING_CONSUMER_GROUP_NAME),
        operation_type: text(MESSAGING_OPERATION_TYPE),
        message_key: text(MESSAGING_KAFKA_MESSAGE_KEY),
    }
}
