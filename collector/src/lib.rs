//! causeway-collector: OTLP trace receivers (gRPC and HTTP), span normalisation, the
//! batch writer that owns the store's writes, configuration and self-metrics.

pub mod alert;
pub mod alert_payload;
pub mod attribute_keys;
pub mod attribute_value;
pub mod batch_writer;
pub mod body_decode;
pub mod byte_size;
pub mod config;
pub mod grpc_receiver;
pub mod hook;
pub mod hook_config;
pub mod hook_exec;
pub mod hook_webhook;
pub mod http_receiver;
pub mod ingest;
pub mod lag;
pub mod lag_config;
pub mod lag_evaluate;
pub mod lag_rules;
pub mod lag_service;
pub mod messaging_fields;
pub mod metrics_ingest;
pub mod metrics_ingest_grpc;
pub mod metrics_ingest_http;
pub mod otlp_convert;
pub mod poller;
pub mod poller_assignment;
pub mod self_metrics;
pub mod service;
#[cfg(test)]
mod test_support;

pub use config::CollectorConfig;
pub use service::{Collector, CollectorError, RunningCollector};
