//! End-to-end tests: the real binary, a real broker, real OTLP clients, a real SQLite file.
//! One test binary (one link) with a module per area; shared helpers live in `harness`.

mod demo;
mod demo_alerts;
mod flow;
mod flow_broker;
mod flow_patterns;
mod harness;
mod hooks;
mod hooks_python;
mod ingest;
mod ingest_backpressure;
mod ingest_hostile;
mod ingest_kill;
mod ingest_limits;
mod ingest_otlp;
mod ingest_python;
mod instrumentation;
mod interop;
mod interop_relay;
mod lag;
mod lag_groups;
mod lag_view;
mod otlp_kafka;
mod postgres;
mod scale_out;
mod tui;
