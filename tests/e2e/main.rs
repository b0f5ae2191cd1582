//! End-to-end tests: the real binary, a real broker, real OTLP clients, a real SQLite file.
//! One test binary (one link) with a module per area; shared helpers live in `harness`.

mod harness;
mod demo;
mod ingest;
mod ingest_kill;
mod ingest_limits;
mod ingest_otlp;
mod ingest_python;
mod instrumentation;
mod flow;
mod lag;
mod tui;
mod hooks;
