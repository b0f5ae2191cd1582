//! Back-pressure: with a tiny in-flight bound and a slow batch delay, concurrent exports are
//! told to retry (gRPC UNAVAILABLE, HTTP 503 with Retry-After) instead of queueing without
//! bound; every acknowledged request is stored, and a retry later goes through.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use crate::harness::{CollectorProcess, temp_dir};
use crate::ingest::stored_trace;
use crate::ingest_otlp::{grpc_client, http_post, protobuf, trace_request};

/// Spans accepted but not committed before the collector pushes back.
const MAX_IN_FLIGHT_SPANS: usize = 10;
/// Spans in each request.
const SPANS_PER_REQUEST: usize = 5;
/// The OTLP/HTTP protobuf content type.
const PROTOBUF: &str = "application/x-protobuf";
/// Concurrent requests per protocol.
const REQUESTS: usize = 24;

/// A collector config that holds small batches for a while and admits few spans at a time.
fn tight_config() -> String {
    format!(
        "[writer]\nmax_batch_spans = 20000\nmax_batch_delay = \"300ms\"\n\
         max_in_flight_spans = {MAX_IN_FLIGHT_SPANS}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_collector_pushes_back_instead_of_queueing() {
    let dir = temp_dir();
    let db = dir.path().join("backpressure.db");
    let config = dir.path().join("collector.toml");
    std::fs::write(&config, tight_config()).expect("write the collector config");
    let config_arg = config.to_str().expect("utf-8 temp path");
    let collector = CollectorProcess::start(&db, &["--config", config_arg]);

    // gRPC: concurrent exports on one channel.
    let client = grpc_client(collector.grpc_endpoint()).await;
    let mut grpc = JoinSet::new();
    for _ in 0..REQUESTS {
        let mut client = client.clone();
        let (request, trace_id) = trace_request("pushback-grpc", SPANS_PER_REQUEST);
        grpc.spawn(async move { (trace_id, client.export(request).await.map(|_| ())) });
    }
    // HTTP: concurrent posts.
    let mut http = JoinSet::new();
    for _ in 0..REQUESTS {
        let addr = collector.http_addr;
        let (request, trace_id) = trace_request("pushback-http", SPANS_PER_REQUEST);
        http.spawn(async move {
            let reply = http_post(addr, PROTOBUF, None, protobuf(&request)).await;
            (trace_id, reply)
        });
    }

    let mut acked = Vec::new();
    let mut unavailable = 0;
    while let Some(joined) = grpc.join_next().await {
        let (trace_id, outcome) = joined.expect("gRPC task");
        match outcome {
            Ok(()) => acked.push(trace_id),
            Err(status) if status.code() == tonic::Code::Unavailable => unavailable += 1,
            Err(status) => panic!("unexpected gRPC refusal: {status}"),
        }
    }
    let mut service_unavailable = 0;
    while let Some(joined) = http.join_next().await {
        let (trace_id, reply) = joined.expect("HTTP task");
        match reply.status {
            200 => acked.push(trace_id),
            503 => {
                service_unavailable += 1;
                let seconds: Option<u64> =
                    reply.retry_after.as_deref().and_then(|v| v.parse().ok());
                assert!(
                    seconds.is_some(),
                    "a 503 carries Retry-After in seconds: {reply:?}"
                );
            }
            other => panic!("unexpected HTTP status {other}: {reply:?}"),
        }
    }
    assert!(
        unavailable > 0,
        "no gRPC export of {REQUESTS} was told UNAVAILABLE"
    );
    assert!(
        service_unavailable > 0,
        "no HTTP post of {REQUESTS} was answered 503"
    );
    assert!(!acked.is_empty(), "some exports were accepted");
    for trace_id in &acked {
        assert_eq!(stored_trace(&db, *trace_id).await.len(), SPANS_PER_REQUEST);
    }

    // Once the backlog is committed, a retry is accepted.
    let (request, trace_id) = trace_request("pushback-retry", SPANS_PER_REQUEST);
    let body = protobuf(&request);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = http_post(collector.http_addr, PROTOBUF, None, body.clone()).await;
        if reply.status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a retry was not accepted within 10 s: {reply:?}"
        );
        // Poll again soon, as an exporter honouring a short Retry-After would.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(stored_trace(&db, trace_id).await.len(), SPANS_PER_REQUEST);
}
