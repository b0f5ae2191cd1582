//! Ingest benchmark: concurrent OTLP/gRPC exporters against an in-process collector over a
//! real socket and a real SQLite file; prints committed spans per second, with the flow
//! rules off (the baseline) and with the built-in flow rules on (passing every second, so
//! that several passes run during the load), alternately, `rounds` times each, and the
//! ratio of the medians. Target: with the rules on, at least 90% of the rate without them.
//!
//! `cargo bench -p causeway-collector --bench ingest -- [total_spans] [clients] [spans_per_request] [rounds]`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use causeway_collector::{Collector, CollectorConfig};
use causeway_storage::Store;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, span::Link};

fn text(key: &str, value: String) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(value)),
        }),
        key_strindex: 0,
    }
}

/// A request shaped like the demo's traffic: producer and consumer spans with messaging
/// attributes, a link on every consumer span, a correlation per five spans.
fn request(client: u64, batch: u64, spans: u64) -> ExportTraceServiceRequest {
    let spans = (0..spans)
        .map(|index| {
            let global = (client << 40) | (batch << 16) | index;
            let mut trace_id = [0u8; 16];
            trace_id[..8].copy_from_slice(&(global / 5 + 1).to_be_bytes());
            trace_id[8..].copy_from_slice(&client.to_be_bytes());
            let consumer = index % 2 == 1;
            Span {
                trace_id: trace_id.to_vec(),
                span_id: (global + 1).to_be_bytes().to_vec(),
                parent_span_id: if consumer {
                    global.to_be_bytes().to_vec()
                } else {
                    Vec::new()
                },
                name: if consumer {
                    "orders process".into()
                } else {
                    "orders send".into()
                },
                kind: if consumer { 5 } else { 4 },
                start_time_unix_nano: 1_700_000_000_000_000_000 + global,
                end_time_unix_nano: 1_700_000_000_000_100_000 + global,
                attributes: vec![
                    text("messaging.system", "kafka".into()),
                    text("messaging.destination.name", "orders".into()),
                    text(
                        "messaging.operation.type",
                        if consumer { "process" } else { "send" }.into(),
                    ),
                    text(
                        "messaging.message.conversation_id",
                        format!("ord-{client}-{}", global / 5),
                    ),
                    text("messaging.message.id", format!("msg-{global}")),
                    text("cloudevents.event_type", "order.placed.v1".into()),
                    text("messaging.consumer.group.name", "shipping".into()),
                ],
                links: if consumer {
                    vec![Link {
                        trace_id: trace_id.to_vec(),
                        span_id: global.to_be_bytes().to_vec(),
                        ..Link::default()
                    }]
                } else {
                    Vec::new()
                },
                ..Span::default()
            }
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![text("service.name", format!("service-{client}"))],
                ..Resource::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: None,
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

async fn run_client(addr: SocketAddr, client: u64, requests: u64, spans: u64) -> u64 {
    let mut exporter = TraceServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let mut sent = 0;
    let mut retries = 0;
    for batch in 0..requests {
        let body = request(client, batch, spans);
        loop {
            match exporter.export(body.clone()).await {
                Ok(_) => break,
                Err(status) if status.code() == tonic::Code::Unavailable => {
                    retries += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(status) => panic!("export failed: {status}"),
            }
        }
        sent += spans;
    }
    if retries > 0 {
        eprintln!("client {client}: {retries} backpressure retries");
    }
    sent
}

/// One measured run.
struct Run {
    rate: f64,
    evaluated: i64,
    committed: u64,
}

async fn run_once(total: u64, clients: u64, per_request: u64, rules: bool) -> Run {
    let requests = total / clients / per_request;
    let dir = tempfile::tempdir().unwrap();
    let mut config = CollectorConfig {
        db: dir.path().join("bench.db").into(),
        otlp: causeway_collector::config::OtlpConfig {
            grpc: "127.0.0.1:0".parse().unwrap(),
            http: "127.0.0.1:0".parse().unwrap(),
            ..Default::default()
        },
        metrics: causeway_collector::config::MetricsConfig {
            addr: "127.0.0.1:0".parse().unwrap(),
        },
        ..CollectorConfig::default()
    };
    config.flows.default_rules = rules;
    config.flows.interval = Some("1s".into());
    let running = Collector::start(&config).await.unwrap();
    let addr = running.grpc_addr();
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|client| tokio::spawn(run_client(addr, client, requests, per_request)))
        .collect();
    let mut sent = 0;
    for task in tasks {
        sent += task.await.unwrap();
    }
    let elapsed = started.elapsed();
    let committed = running.metrics().accepted_total();
    let rendered = running.metrics().render();
    let sample = |name: &str| {
        rendered
            .lines()
            .find_map(|line| {
                line.strip_prefix(name)?
                    .strip_prefix(' ')?
                    .parse::<f64>()
                    .ok()
            })
            .unwrap_or(0.0)
    };
    let commit_seconds = sample("causeway_collector_batch_commit_seconds_sum");
    let batches = sample("causeway_collector_batch_commit_seconds_count");
    running.shutdown().await;
    // How far the flow rules got while the load ran (their cursor, in span rows).
    let store = Store::open(&config.db).await.unwrap();
    let rules_store = store.flow_rule_store().unwrap();
    let evaluated = rules_store.cursor().await.unwrap().unwrap_or(0);
    store.close().await;
    let rate = committed as f64 / elapsed.as_secs_f64();
    println!(
        "ingest, flow rules {}: {committed} spans committed (of {sent} sent) in {:.2} s = \
         {rate:.0} spans/s ({clients} gRPC clients, {per_request} spans per request, \
         acknowledged after commit); writer {batches} batches, busy {commit_seconds:.2} s; \
         flow rules evaluated {evaluated} span rows during the run",
        if rules { "on " } else { "off" },
        elapsed.as_secs_f64(),
    );
    Run {
        rate,
        evaluated,
        committed,
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 0 => (values[n / 2 - 1] + values[n / 2]) / 2.0,
        n => values[n / 2],
    }
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let total = args.first().copied().unwrap_or(400_000);
    let clients = args.get(1).copied().unwrap_or(8);
    let per_request = args.get(2).copied().unwrap_or(1_000);
    let rounds = args.get(3).copied().unwrap_or(3);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let mut off = Vec::new();
        let mut on = Vec::new();
        for _ in 0..rounds {
            let run = run_once(total, clients, per_request, false).await;
            assert_eq!(run.evaluated, 0, "with every rule off, no pass runs");
            off.push(run.rate);
            let run = run_once(total, clients, per_request, true).await;
            assert!(
                run.evaluated > 0 && run.committed > 0,
                "the flow rules ran during the load"
            );
            on.push(run.rate);
        }
        let (off, on) = (median(off), median(on));
        println!(
            "ingest with the built-in flow rules: median {on:.0} spans/s vs {off:.0} without \
             ({:.1}% of the rate; target >= 90%: {})",
            100.0 * on / off,
            if on >= 0.9 * off { "met" } else { "MISSED" }
        );
        let peak_rss = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find_map(|line| line.strip_prefix("VmHWM:").map(|v| v.trim().to_owned()))
            })
            .unwrap_or_else(|| "unknown".into());
        println!("memory: peak RSS {peak_rss} (collector and exporters in one process)");
    });
}
