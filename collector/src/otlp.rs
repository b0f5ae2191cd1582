//! OTLP in: the gRPC and HTTP receivers for traces and metrics, and the pure conversion of
//! what they decode into stored spans and lag samples.
//!
//! A request goes `grpc_receiver`/`http_receiver` (transport, limits) → `body_decode`
//! (HTTP bodies: compression, protobuf or JSON) → `ingest` (room in the writer's queue)
//! → `convert` (pure: resource, scope and span to `SpanRecord`, with `messaging_fields`
//! and `attribute_value`) → the batch writer. Metrics go `metrics_grpc`/`metrics_http` →
//! `metrics_ingest` (pure: lag gauges to samples) → the store.

pub mod attribute_value;
pub mod body_decode;
pub mod convert;
pub mod grpc_export;
pub mod grpc_receiver;
pub mod http_receiver;
pub mod ingest;
pub mod kafka_source;
pub mod limits;
pub mod messaging_fields;
pub mod metrics_grpc;
pub mod metrics_http;
pub mod metrics_ingest;
