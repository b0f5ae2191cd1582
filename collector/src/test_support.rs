//! Helpers shared by the collector's socket tests: a collector on free ports over a temp
//! database, a minimal HTTP/1.1 client, and sample export requests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::net::SocketAddr;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::config::CollectorConfig;
use crate::service::{Collector, RunningCollector};

/// A collector on free loopback ports, writing to a database in its own temp dir.
pub struct TestCollector {
    pub running: RunningCollector,
    pub db: causeway_storage::Database,
    _dir: tempfile::TempDir,
}

pub async fn start_collector(adjust: impl FnOnce(&mut CollectorConfig)) -> TestCollector {
    let dir = tempfile::tempdir().unwrap();
    let mut config = CollectorConfig {
        db: dir.path().join("collector.db").into(),
        ..CollectorConfig::default()
    };
    config.otlp.grpc = SocketAddr::from(([127, 0, 0, 1], 0));
    config.otlp.http = SocketAddr::from(([127, 0, 0, 1], 0));
    config.metrics.addr = SocketAddr::from(([127, 0, 0, 1], 0));
    adjust(&mut config);
    let running = Collector::start(&config).await.unwrap();
    TestCollector {
        running,
        db: config.db,
        _dir: dir,
    }
}

/// An HTTP response as the tests need it.
#[derive(Debug)]
pub struct HttpReply {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

/// Sends one HTTP/1.1 request over a fresh connection and reads the whole reply.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpReply {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    // The server may answer (413) before reading everything; a failed write is fine then.
    let _ = stream.write_all(body).await;
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply).await;
    let split = reply
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(&reply)));
    let head = String::from_utf8_lossy(&reply[..split]).to_string();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    HttpReply {
        status,
        headers,
        body: reply[split + 4..].to_vec(),
    }
}

/// A request with `good` valid spans in trace `trace` and `bad` spans with all-zero
/// trace ids.
pub fn sample_request(trace: u8, good: u16, bad: u16) -> ExportTraceServiceRequest {
    let mut spans = Vec::new();
    for index in 0..good + bad {
        let [high, low] = index.to_be_bytes();
        let trace_id = if index < good {
            vec![trace; 16]
        } else {
            vec![0; 16]
        };
        spans.push(Span {
            trace_id,
            span_id: vec![9, 9, 9, 9, 9, 9, high, low],
            name: "process".into(),
            kind: 5,
            start_time_unix_nano: 1_000,
            end_time_unix_nano: 2_000,
            ..Span::default()
        });
    }
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: Some(AnyValue {
                        value: Some(Value::StringValue("orders".into())),
                    }),
                    key_strindex: 0,
                }],
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

/// A string attribute.
pub fn text_attribute(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(value.into())),
        }),
        key_strindex: 0,
    }
}

/// A request of `spans` spans like an instrumented service's: string, number, array and
/// map attributes, an event, a link and a status on each, under one resource and scope.
pub fn rich_request(trace: u8, spans: u16) -> ExportTraceServiceRequest {
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, InstrumentationScope, KeyValueList};
    use opentelemetry_proto::tonic::trace::v1::Status;
    use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};

    let any = |value| Some(AnyValue { value: Some(value) });
    let spans = (0..spans)
        .map(|index| {
            let [high, low] = index.to_be_bytes();
            Span {
                trace_id: vec![trace; 16],
                span_id: vec![7, 7, 7, 7, 7, 7, high, low],
                parent_span_id: if index == 0 {
                    Vec::new()
                } else {
                    vec![7, 7, 7, 7, 7, 7, 0, 0]
                },
                name: format!("orders process {index}"),
                kind: 5,
                start_time_unix_nano: 1_000 + u64::from(index),
                end_time_unix_nano: 2_000 + u64::from(index),
                attributes: vec![
                    text_attribute("messaging.system", "kafka"),
                    text_attribute("messaging.message.conversation_id", &format!("ord-{index}")),
                    text_attribute("note", "a \"quoted\"\nline"),
                    KeyValue {
                        key: "retries".into(),
                        value: any(Value::IntValue(i64::from(index))),
                        key_strindex: 0,
                    },
                    KeyValue {
                        key: "ratio".into(),
                        value: any(Value::DoubleValue(0.25)),
                        key_strindex: 0,
                    },
                    KeyValue {
                        key: "tags".into(),
                        value: any(Value::ArrayValue(ArrayValue {
                            values: vec![AnyValue {
                                value: Some(Value::StringValue("a".into())),
                            }],
                        })),
                        key_strindex: 0,
                    },
                    KeyValue {
                        key: "map".into(),
                        value: any(Value::KvlistValue(KeyValueList {
                            values: vec![text_attribute("inner", "value")],
                        })),
                        key_strindex: 0,
                    },
                ],
                events: vec![Event {
                    time_unix_nano: 1_500,
                    name: "enqueued".into(),
                    attributes: vec![text_attribute("attempt", "1")],
                    dropped_attributes_count: 0,
                }],
                links: vec![Link {
                    trace_id: vec![trace; 16],
                    span_id: vec![7, 7, 7, 7, 7, 7, 0, 0],
                    attributes: vec![text_attribute("link.reason", "creation")],
                    ..Link::default()
                }],
                status: Some(Status {
                    message: "fine".into(),
                    code: 1,
                }),
                ..Span::default()
            }
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![text_attribute("service.name", "orders")],
                ..Resource::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "orders-scope".into(),
                    ..InstrumentationScope::default()
                }),
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}
