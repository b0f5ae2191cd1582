//! Cost of causeway's per-message work: send span + header injection on the producer,
//! header extraction + process span on the consumer. Prints figures; run with
//! `cargo bench -p causeway-instrumentation --bench propagation`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use causeway_instrumentation::{
    ConsumeMeta, Headers, MessageMeta, extract, inject, start_process_span, start_send_span,
};
use opentelemetry::Context;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::trace::SdkTracerProvider;

const MESSAGES: u32 = 200_000;

fn report(what: &str, elapsed: Duration) {
    let per_message = elapsed.as_nanos() / u128::from(MESSAGES);
    let rate = f64::from(MESSAGES) / elapsed.as_secs_f64();
    println!("{what:<44} {per_message:>6} ns/message  {rate:>12.0} messages/s");
}

fn main() {
    // Sampled spans through the real SDK, with no exporter attached.
    let provider = SdkTracerProvider::builder().build();
    let tracer = provider.tracer("bench");
    let meta = MessageMeta::new("orders")
        .with_key("ord-1042")
        .with_event_type("order.placed.v1")
        .with_correlation_id("ord-1042");
    let consume = ConsumeMeta {
        group: "shipping".into(),
        topic: "orders".into(),
        partition: 3,
        offset: 42,
        key: Some("ord-1042".into()),
        timestamp_ms: Some(0),
        ..ConsumeMeta::default()
    };

    let start = Instant::now();
    let mut last = Headers::new();
    for _ in 0..MESSAGES {
        let cx = start_send_span(&tracer, &meta, &Context::new());
        let mut headers = Headers::new();
        inject(&cx, &mut headers, &meta);
        cx.span().end();
        last = black_box(headers);
    }
    report("producer: send span + inject", start.elapsed());

    let start = Instant::now();
    for _ in 0..MESSAGES {
        let extracted = extract(black_box(&last));
        let cx = start_process_span(&tracer, &extracted, &consume);
        cx.span().end();
    }
    report("consumer: extract + process span", start.elapsed());

    let start = Instant::now();
    for _ in 0..MESSAGES {
        black_box(extract(black_box(&last)));
    }
    report("extract only (valid headers)", start.elapsed());

    // What a service instrumented by an OpenTelemetry SDK forwards: trace context and
    // baggage, the correlation ID only in the baggage.
    let foreign = Headers::from_entries(vec![
        (
            "traceparent".into(),
            Some(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_vec()),
        ),
        (
            "baggage".into(),
            Some(b"tenant=acme,correlation.id=ord-1042,region=eu;ttl=3".to_vec()),
        ),
    ]);
    let start = Instant::now();
    for _ in 0..MESSAGES {
        black_box(extract(black_box(&foreign)));
    }
    report("extract only (foreign: id in baggage)", start.elapsed());

    let broken = Headers::from_entries(vec![
        ("traceparent".into(), Some(b"00-ab-cd-01".to_vec())),
        ("correlation-id".into(), Some(vec![0xff, 0xfe])),
    ]);
    let start = Instant::now();
    for _ in 0..MESSAGES {
        black_box(extract(black_box(&broken)));
    }
    report("extract only (malformed headers)", start.elapsed());
}
