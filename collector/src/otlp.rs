//! OTLP in: the gRPC and HTTP receivers for traces and metrics, and the pure conversion of
//! what they decode into stored spans and lag samples.
//!
//! Connections come through `connection_guard` (a cap, and idle connections closed). A
//! request goes `grpc_receiver`/`http_receiver` (transport; `grpc_export` for gRPC's
//! framing and statuses) → `body_read` (the body, within the read timeout, charged to
//! the `memory_budget`) → `export_decode` (decompression in `body_decode`; the cost of
//! decoding worked out by `request_cost` from `proto_scan`/`json_scan` with
//! `message_shape`, and charged, before decoding) → `ingest` (room in the writer's
//! queue) → `convert` (pure: resource, scope and span to `SpanRecord`, with
//! `messaging_fields` and `attribute_value`) → the batch writer. Metrics go
//! `metrics_grpc`/`metrics_http` the same way → `metrics_ingest` (pure: lag gauges to
//! samples) → the store. `limits` holds what the receivers share.

pub mod attribute_value;
pub mod body_decode;
pub mod body_read;
pub mod connection_guard;
pub mod convert;
pub mod export_decode;
pub mod grpc_export;
pub mod grpc_receiver;
pub mod http_receiver;
pub mod ingest;
pub mod json_scan;
pub mod kafka_source;
pub mod limits;
pub mod message_shape;
pub mod messaging_fields;
pub mod metrics_grpc;
pub mod metrics_http;
pub mod metrics_ingest;
pub mod proto_scan;
pub mod request_cost;
