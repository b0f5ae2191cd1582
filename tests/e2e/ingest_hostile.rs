//! Hostile requests against the real collector binary: bodies that decode to far more than
//! their bytes (over HTTP and gRPC, plain and compressed, protobuf and JSON) with the
//! collector's peak memory asserted; slow, stalled and idle connections while the
//! OpenTelemetry Python SDK keeps exporting; the connection cap; a second collector on
//! the same file; another application's SQLite file; and each status code the docs
//! promise.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::harness::{CollectorProcess, causeway_bin, temp_dir};
use crate::ingest::{TRACES_PATH, stored_trace};
use crate::ingest_limits::assert_still_ingests;
use crate::ingest_otlp::{
    EXPORT_PATH, GRPC_DEADLINE_EXCEEDED, GRPC_OK, GRPC_RESOURCE_EXHAUSTED, GRPC_UNAVAILABLE,
    grpc_client, grpc_head, grpc_reply, http_post, protobuf, raw_grpc_body, raw_grpc_call, request,
    span, string_attribute, trace_request, unique_span_id, unique_trace_id,
};
use crate::ingest_python::run_python_sender;

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";
/// The most resident memory the collector may reach (docs/COLLECTOR.md).
const MAX_PEAK_RSS_KIB: u64 = 256 * 1024;
/// gRPC's UNIMPLEMENTED.
const GRPC_UNIMPLEMENTED: i32 = 12;

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(data).expect("gzip into memory");
    encoder.finish().expect("gzip into memory")
}

/// A protobuf varint.
fn varint(mut value: usize, out: &mut Vec<u8>) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// An `ExportTraceServiceRequest` of about `bytes` bytes that is nothing but empty spans
/// (two bytes each on the wire), written directly: building it through prost would take
/// the test itself gigabytes.
fn empty_spans_body(bytes: usize) -> Vec<u8> {
    let spans = bytes.saturating_sub(16) / 2;
    let mut scope = Vec::with_capacity(spans * 2);
    for _ in 0..spans {
        scope.extend_from_slice(&[0x12, 0x00]);
    }
    let mut resource = vec![0x12];
    varint(scope.len(), &mut resource);
    resource.extend_from_slice(&scope);
    let mut body = vec![0x0a];
    varint(resource.len(), &mut body);
    body.extend_from_slice(&resource);
    body
}

/// The same as OTLP/JSON: `{}` per span.
fn empty_spans_json(bytes: usize) -> Vec<u8> {
    let spans = bytes.saturating_sub(64) / 3;
    let mut body = br#"{"resourceSpans":[{"scopeSpans":[{"spans":["#.to_vec();
    for _ in 0..spans {
        body.extend_from_slice(b"{},");
    }
    body.extend_from_slice(b"{}]}]}]}");
    body
}

/// A span like an instrumented service's: a dozen attributes, an event and a link.
fn busy_span(trace_id: [u8; 16], index: usize) -> Span {
    let mut span = span(
        trace_id,
        unique_span_id(),
        &format!("orders process {index}"),
    );
    for key in [
        "messaging.system",
        "messaging.operation.type",
        "messaging.destination.name",
        "messaging.consumer.group.name",
        "messaging.message.id",
        "http.route",
        "user_agent.original",
        "deployment.environment",
        "payment.method",
        "customer.tier",
    ] {
        span.attributes
            .push(string_attribute(key, &format!("{key}-value-{index}")));
    }
    span.attributes.push(KeyValue {
        key: "retries".into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(index as i64)),
        }),
        ..KeyValue::default()
    });
    span.events
        .push(opentelemetry_proto::tonic::trace::v1::span::Event {
            name: "enqueued".into(),
            attributes: vec![string_attribute("attempt", "1")],
            ..Default::default()
        });
    span.links
        .push(opentelemetry_proto::tonic::trace::v1::span::Link {
            trace_id: trace_id.to_vec(),
            span_id: unique_span_id().to_vec(),
            ..Default::default()
        });
    span
}

/// A request of busy spans of about `bytes` bytes.
fn busy_body(bytes: usize) -> Vec<u8> {
    let trace_id = unique_trace_id();
    let one = protobuf(&request("hostile", vec![busy_span(trace_id, 0)])).len();
    let spans = (0..bytes / one).map(|i| busy_span(trace_id, i)).collect();
    protobuf(&request("hostile", spans))
}

/// The peak RSS, checked against the target.
fn assert_peak_within_target(collector: &CollectorProcess, after: &str) {
    let peak = collector.peak_rss_kib().expect("the collector is running");
    eprintln!("collector peak RSS after {after}: {} MiB", peak / 1024);
    assert!(
        peak <= MAX_PEAK_RSS_KIB,
        "collector peak RSS {peak} KiB exceeds {MAX_PEAK_RSS_KIB} KiB after {after}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amplification_bodies_are_refused_and_memory_stays_under_the_target() {
    let dir = temp_dir();
    let db = dir.path().join("amplification.db");
    let collector = CollectorProcess::start(&db, &[]);
    let http = collector.http_addr;
    let grpc = collector.grpc_addr;

    // The issue's body: 19.9 MiB of empty spans, 20 KiB of gzip, 4,296 MiB peak before.
    let bomb = gzip(&empty_spans_body(19_900 * 1024));
    assert!(bomb.len() < 64 * 1024, "{} bytes of gzip", bomb.len());
    let reply = http_post(http, PROTOBUF, Some("gzip"), bomb).await;
    assert_eq!(reply.status, 413, "19.9 MiB of empty spans: {reply:?}");
    // The google.rpc.Status carries its message as plain bytes.
    let body = String::from_utf8_lossy(&reply.body);
    assert!(
        body.contains("max_request_memory"),
        "the refusal says why: {body}"
    );
    assert_peak_within_target(&collector, "one amplification body");

    // Many at once, over both receivers and in both formats, with large but acceptable
    // requests among them. Those are retried as exporters retry (after the second the
    // collector asks for) until they are taken.
    let mut load = JoinSet::new();
    for _ in 0..4 {
        load.spawn(async move {
            let body = empty_spans_body(4 << 20);
            (
                "http 4 MiB empty spans",
                http_post(http, PROTOBUF, None, body).await.status,
            )
        });
        load.spawn(async move {
            let body = gzip(&empty_spans_json(19 << 20));
            (
                "http json empty spans",
                http_post(http, JSON, Some("gzip"), body).await.status,
            )
        });
        load.spawn(async move {
            let body = gzip(&empty_spans_body((4 << 20) - 64));
            let reply = raw_grpc_call(grpc, Some("gzip"), true, &body).await;
            ("grpc 4 MiB empty spans", grpc_as_http(reply.status))
        });
    }
    for _ in 0..2 {
        load.spawn(async move {
            let body = gzip(&busy_body(4 << 20));
            let status = until_taken(|| async {
                http_post(http, PROTOBUF, Some("gzip"), body.clone())
                    .await
                    .status
            })
            .await;
            ("http 4 MiB busy spans", status)
        });
        load.spawn(async move {
            let body = busy_body(3 << 20);
            let status = until_taken(|| async {
                grpc_as_http(raw_grpc_call(grpc, None, false, &body).await.status)
            })
            .await;
            ("grpc 3 MiB busy spans", status)
        });
    }
    let mut accepted = 0;
    while let Some(result) = load.join_next().await {
        let (what, status) = result.expect("the client task ran");
        match status {
            200 if what.contains("busy") => accepted += 1,
            413 | 503 if what.contains("empty") => {}
            other => panic!("{what}: unexpected {other}"),
        }
    }
    assert_eq!(
        accepted, 4,
        "every large acceptable request was taken in the end"
    );
    assert_peak_within_target(&collector, "a mix of amplification and large requests");
    assert_still_ingests(&collector, &db).await;
}

/// A gRPC status as the HTTP status of the same answer, to handle both alike.
fn grpc_as_http(status: i32) -> u16 {
    match status {
        GRPC_OK => 200,
        GRPC_RESOURCE_EXHAUSTED => 413,
        GRPC_UNAVAILABLE => 503,
        other => panic!("unexpected gRPC status {other}"),
    }
}

/// Sends with `send` until the answer is not 503 (retrying a second later, as asked) or
/// a minute has passed; returns the last answer.
async fn until_taken<F, Fut>(send: F) -> u16
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = u16>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = send().await;
        if status != 503 || Instant::now() > deadline {
            return status;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_messages_back_to_back_on_one_connection_are_taken() {
    // An HTTP/2 server reads a whole message before it starts the call: the limits on
    // what an idle connection may send must not cut such a client off.
    let dir = temp_dir();
    let db = dir.path().join("back-to-back.db");
    let collector = CollectorProcess::start(&db, &[]);
    let mut client = grpc_client(collector.grpc_endpoint()).await;
    for round in 0..4 {
        let trace_id = unique_trace_id();
        let spans: Vec<Span> = (0..5_000).map(|i| busy_span(trace_id, i)).collect();
        let request = request("back-to-back", spans);
        assert!(protobuf(&request).len() > 1 << 20, "over a mebibyte");
        client
            .export(request)
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(stored_trace(&db, trace_id).await.len(), 5_000);
    }
    // And over HTTP/1, on one keep-alive connection.
    let http = reqwest::Client::new();
    let url = format!("{}{TRACES_PATH}", collector.http_endpoint());
    for round in 0..4 {
        let reply = http
            .post(&url)
            .header("content-type", PROTOBUF)
            .body(busy_body(2 << 20))
            .send()
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(reply.status(), 200, "round {round}");
    }
}

/// A collector whose read timeout and connection cap are small enough to test.
fn start_strict(db: &Path, read_timeout_secs: u64, max_connections: usize) -> CollectorProcess {
    let config = db.with_extension("toml");
    std::fs::write(
        &config,
        format!(
            "[otlp]\nread_timeout = \"{read_timeout_secs}s\"\nmax_connections = {max_connections}\n"
        ),
    )
    .expect("write the collector config");
    CollectorProcess::start(db, &["--config", config.to_str().expect("utf-8 path")])
}

/// Reads until the server closes the connection (or `limit` passes); returns what came.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Option<String> {
    let mut reply = Vec::new();
    match tokio::time::timeout(limit, stream.read_to_end(&mut reply)).await {
        Ok(_) => Some(String::from_utf8_lossy(&reply).into_owned()),
        Err(_) => None,
    }
}

/// Whether the server has not closed `stream` yet (it may have sent something, as an
/// HTTP/2 server sends its settings first).
async fn still_open(stream: &TcpStream) -> bool {
    let mut byte = [0_u8; 1];
    match tokio::time::timeout(Duration::from_millis(20), stream.peek(&mut byte)).await {
        Err(_) => true,
        Ok(Ok(read)) => read > 0,
        Ok(Err(_)) => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_clients_do_not_stop_a_real_exporter() {
    // The default read timeout: the slow clients below outlast the exports.
    const READ_TIMEOUT: Duration = Duration::from_secs(10);
    let dir = temp_dir();
    let db = dir.path().join("slow.db");
    let collector = CollectorProcess::start(&db, &[]);
    let http = collector.http_addr;
    let grpc = collector.grpc_addr;

    // Idle connections to both receivers, half-sent headers, and bodies that stall.
    let mut idle = Vec::new();
    for addr in [http, grpc] {
        for _ in 0..20 {
            idle.push(TcpStream::connect(addr).await.unwrap());
        }
    }
    let mut half_headers = Vec::new();
    for _ in 0..16 {
        let mut stream = TcpStream::connect(http).await.unwrap();
        stream
            .write_all(format!("POST {TRACES_PATH} HTTP/1.1\r\nHost: x\r\n").as_bytes())
            .await
            .unwrap();
        half_headers.push(stream);
    }
    let mut stalled_bodies = Vec::new();
    for _ in 0..16 {
        let mut stream = TcpStream::connect(http).await.unwrap();
        let head = format!(
            "POST {TRACES_PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: {PROTOBUF}\r\n\
             Content-Length: 100000\r\n\r\npartial"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stalled_bodies.push(stream);
    }
    // One HTTP/2 connection with 16 gRPC calls that send headers and never a message.
    let tcp = TcpStream::connect(grpc).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.expect("HTTP/2 handshake");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut stalled_calls = Vec::new();
    for _ in 0..16 {
        let mut client = client.clone().ready().await.expect("a stream is allowed");
        let (response, body) = client
            .send_request(grpc_head(grpc, EXPORT_PATH, None), false)
            .expect("send gRPC headers");
        stalled_calls.push((response, body));
    }
    let started = Instant::now();

    // Meanwhile the OpenTelemetry Python SDK exports over both protocols, and every
    // export succeeds (the sender fails the test otherwise).
    let grpc_endpoint = collector.grpc_endpoint();
    let http_endpoint = format!("{}{TRACES_PATH}", collector.http_endpoint());
    let reports = tokio::task::spawn_blocking(move || {
        [
            run_python_sender("grpc", &grpc_endpoint, "steady-grpc"),
            run_python_sender("http", &http_endpoint, "steady-http"),
        ]
    })
    .await
    .unwrap();
    for report in &reports {
        let trace = report["spans"][0]["trace_id"].as_str().expect("a trace id");
        let trace_id: [u8; 16] = hex::decode(trace).unwrap().try_into().unwrap();
        assert_eq!(stored_trace(&db, trace_id).await.len(), 2, "{report}");
    }
    // The slow clients were all still there while it exported (unless the exports took
    // longer than the read timeout, when nothing can be said).
    eprintln!("the Python exports took {:?}", started.elapsed());
    if started.elapsed() < READ_TIMEOUT {
        let mut open = 0;
        for stream in idle.iter().chain(&half_headers).chain(&stalled_bodies) {
            open += usize::from(still_open(stream).await);
        }
        assert_eq!(
            open,
            40 + 16 + 16,
            "every slow client still holds its connection"
        );
    }

    // A client that sends more than 64 KiB without finishing a request's headers is cut
    // off at once, not after the read timeout: connections hold little besides requests.
    let mut flood = TcpStream::connect(http).await.unwrap();
    let head = format!(
        "POST {TRACES_PATH} HTTP/1.1\r\nX-Pad: {}\r\n",
        "a".repeat(100 * 1024)
    );
    let _ = flood.write_all(head.as_bytes()).await;
    let flood_started = Instant::now();
    assert!(
        read_until_closed(&mut flood, READ_TIMEOUT).await.is_some(),
        "a connection flooding headers is closed"
    );
    assert!(
        flood_started.elapsed() < READ_TIMEOUT / 2,
        "closed for its size, not its time: {:?}",
        flood_started.elapsed()
    );

    // Then the collector lets go of every one of them.
    let limit = READ_TIMEOUT + Duration::from_secs(10);
    for stream in &mut idle {
        assert!(
            read_until_closed(stream, limit).await.is_some(),
            "an idle connection is closed"
        );
    }
    for stream in &mut half_headers {
        assert!(
            read_until_closed(stream, limit).await.is_some(),
            "a connection that never finished its headers is closed"
        );
    }
    for stream in &mut stalled_bodies {
        let reply = read_until_closed(stream, limit)
            .await
            .expect("a stalled body is answered");
        assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    }
    for (response, _body) in stalled_calls {
        let response = tokio::time::timeout(limit, response)
            .await
            .expect("a stalled call is answered")
            .expect("an HTTP/2 response");
        let reply = grpc_reply(response).await;
        assert_eq!(reply.status, GRPC_DEADLINE_EXCEEDED, "{reply:?}");
    }
    assert_still_ingests(&collector, &db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_are_closed_and_idle_ones_make_room() {
    let dir = temp_dir();
    let db = dir.path().join("cap.db");
    let collector = start_strict(&db, 2, 8);
    let http = collector.http_addr;
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(TcpStream::connect(http).await.unwrap());
    }
    // Give the collector a moment to accept them all, then one more is turned away.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut extra = TcpStream::connect(http).await.unwrap();
        let closed = read_until_closed(&mut extra, Duration::from_millis(500)).await;
        if closed.is_some_and(|text| text.is_empty()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a ninth connection is never closed"
        );
    }
    // The idle eight are closed within the read timeout; then clients get through.
    for stream in &mut held {
        assert!(
            read_until_closed(stream, Duration::from_secs(7))
                .await
                .is_some()
        );
    }
    let (request, trace_id) = trace_request("after-cap", 2);
    let reply = http_post(http, PROTOBUF, None, protobuf(&request)).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(stored_trace(&db, trace_id).await.len(), 2);
}

/// Runs `causeway --db DB collector` on free ports and waits for it to exit, which it
/// must do at start (a collector that starts would never exit: the test then times out).
fn collector_that_must_refuse(db: &Path) -> std::process::Output {
    Command::new(causeway_bin())
        .arg("--db")
        .arg(db)
        .args([
            "collector",
            "--otlp-grpc",
            "127.0.0.1:0",
            "--otlp-http",
            "127.0.0.1:0",
        ])
        .args(["--metrics", "127.0.0.1:0"])
        .env("NO_COLOR", "1")
        .output()
        .expect("run the collector")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_collector_on_the_same_file_is_refused() {
    let dir = temp_dir();
    let db = dir.path().join("shared.db");
    let mut first = CollectorProcess::start(&db, &[]);
    let second = collector_that_must_refuse(&db);
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        !second.status.success(),
        "the second collector must stop: {stderr}"
    );
    assert!(
        stderr.contains(db.to_str().unwrap()),
        "it names the file: {stderr}"
    );
    assert!(
        stderr.contains(&format!("pid {}", first.pid())),
        "it names the collector holding it: {stderr}"
    );
    assert!(first.is_running(), "the first keeps running");
    assert_still_ingests(&first, &db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_applications_sqlite_file_is_refused_and_left_alone() {
    let dir = temp_dir();
    let db = dir.path().join("recipes.db");
    let sqlite = |args: &[&str]| {
        let output = Command::new("sqlite3")
            .arg(&db)
            .args(args)
            .output()
            .expect("the sqlite3 command-line tool is needed (apt-get install sqlite3)");
        assert!(output.status.success(), "{output:?}");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    sqlite(&["CREATE TABLE recipes (name TEXT); INSERT INTO recipes VALUES ('soup');"]);
    let output = collector_that_must_refuse(&db);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "the collector must refuse it: {stderr}"
    );
    assert!(stderr.contains("not a causeway store"), "{stderr}");
    assert!(
        stderr.contains("recipes"),
        "it names what it found: {stderr}"
    );
    assert_eq!(sqlite(&[".tables"]).trim(), "recipes", "nothing was added");
    assert_eq!(sqlite(&["SELECT name FROM recipes"]).trim(), "soup");
}

/// A span whose name is `name` as raw bytes, which may not be UTF-8: the request is
/// encoded with a placeholder of the same length that is then overwritten.
fn request_with_raw_name(trace_id: [u8; 16], name: &[u8]) -> Vec<u8> {
    let placeholder = "#".repeat(name.len());
    let spans = vec![
        span(trace_id, unique_span_id(), "kept 1"),
        span(trace_id, unique_span_id(), &placeholder),
        span(trace_id, unique_span_id(), "kept 2"),
    ];
    let mut body = protobuf(&request("raw-name", spans));
    let at = body
        .windows(name.len())
        .position(|w| w == placeholder.as_bytes())
        .expect("placeholder present");
    body[at..at + name.len()].copy_from_slice(name);
    body
}

fn stored_names(spans: &[causeway_storage::SpanRecord]) -> Vec<String> {
    let mut names: Vec<String> = spans.iter().map(|s| s.name.clone()).collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_refusal_has_the_promised_status() {
    let dir = temp_dir();
    let db = dir.path().join("statuses.db");
    let collector = CollectorProcess::start(&db, &[]);
    let (http, grpc) = (collector.http_addr, collector.grpc_addr);

    // A message larger than the limit is RESOURCE_EXHAUSTED, even when only its header
    // says so (nothing more is read).
    let mut header_only = vec![0_u8];
    header_only.extend_from_slice(&(5_u32 << 20).to_be_bytes());
    header_only.extend_from_slice(&[0; 64]);
    let reply = raw_grpc_body(grpc, EXPORT_PATH, None, Bytes::from(header_only)).await;
    assert_eq!(reply.status, GRPC_RESOURCE_EXHAUSTED, "{reply:?}");
    // An encoding the collector does not know is UNIMPLEMENTED.
    let (plain, _) = trace_request("encoding", 1);
    let reply = raw_grpc_call(grpc, Some("snappy"), true, &protobuf(&plain)).await;
    assert_eq!(reply.status, GRPC_UNIMPLEMENTED, "{reply:?}");

    // One span whose name is not UTF-8 is rejected alone, over gRPC and HTTP.
    for over in ["grpc", "http"] {
        let trace_id = unique_trace_id();
        let body = request_with_raw_name(trace_id, &[0xff, 0xfe, 0x80]);
        let response = if over == "grpc" {
            let reply = raw_grpc_call(grpc, None, false, &body).await;
            assert_eq!(reply.status, GRPC_OK, "{reply:?}");
            reply.response.expect("an answer")
        } else {
            let reply = http_post(http, PROTOBUF, None, body).await;
            assert_eq!(reply.status, 200, "{reply:?}");
            ExportTraceServiceResponse::decode(reply.body.as_ref()).unwrap()
        };
        let partial = response.partial_success.expect("partial success");
        assert_eq!(partial.rejected_spans, 1, "{over}");
        assert!(
            partial
                .error_message
                .contains("spans[1]: name is not valid UTF-8"),
            "{over}: {}",
            partial.error_message
        );
        let stored = stored_trace(&db, trace_id).await;
        assert_eq!(stored_names(&stored), ["kept 1", "kept 2"], "{over}");
    }

    // OTLP/JSON: a non-hex id rejects its span alone; NaN and the infinities are taken.
    let trace_id = unique_trace_id();
    let trace = hex::encode(trace_id);
    let good = |name: &str, value: &str| {
        format!(
            r#"{{"traceId":"{trace}","spanId":"{}","name":"{name}",
            "attributes":[{{"key":"ratio","value":{{"doubleValue":{value}}}}}]}}"#,
            hex::encode(unique_span_id())
        )
    };
    let body = format!(
        r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{},{},{},
        {{"traceId":"{trace}","spanId":"not-hex-at-all!!","name":"bad id"}},{}]}}]}}]}}"#,
        good("nan", "\"NaN\""),
        good("inf", "\"Infinity\""),
        good("minus inf", "\"-Infinity\""),
        good("finite", "0.5"),
    );
    let reply = http_post(http, JSON, None, body.into_bytes()).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let answer: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(
        answer["partialSuccess"]["rejectedSpans"].as_i64(),
        Some(1),
        "{answer}"
    );
    let message = answer["partialSuccess"]["errorMessage"].as_str().unwrap();
    assert!(
        message.contains("spans[3]: span id is not hex"),
        "{message}"
    );
    let stored = stored_trace(&db, trace_id).await;
    let ratio = |name: &str| {
        stored
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("{name} is stored"))
            .attributes["ratio"]
            .clone()
    };
    assert_eq!(ratio("finite"), Value::from(0.5));
    // As the protobuf path stores a non-finite double (there is no JSON number for it).
    let mut nan_span = span(unique_trace_id(), unique_span_id(), "protobuf nan");
    nan_span.attributes.push(KeyValue {
        key: "ratio".into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::DoubleValue(f64::NAN)),
        }),
        ..KeyValue::default()
    });
    let nan_trace: [u8; 16] = nan_span.trace_id.clone().try_into().unwrap();
    let reply = http_post(
        http,
        PROTOBUF,
        None,
        protobuf(&request("nan", vec![nan_span])),
    )
    .await;
    assert_eq!(reply.status, 200);
    let from_protobuf = stored_trace(&db, nan_trace).await[0].attributes["ratio"].clone();
    assert_eq!(
        ratio("nan"),
        from_protobuf,
        "JSON NaN is stored as protobuf NaN is"
    );
    assert_eq!(ratio("inf"), Value::from("inf"));
    assert_eq!(ratio("minus inf"), Value::from("-inf"));
}
