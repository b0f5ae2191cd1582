//! causeway-collector: the collector's components, each in its own folder (vector's
//! `sources/<name>/` pattern):
//!
//! - [`otlp`]: the OTLP receivers (gRPC and HTTP, traces and metrics), body decoding,
//!   and the pure conversion of a request into stored spans or lag samples.
//! - [`writer`]: the batch writer that owns the store's span writes.
//! - [`lag`]: the lag poller, lag rules and their pure evaluation, and the lag service
//!   that runs them every interval.
//! - [`flow_rules`]: flow rules, their pure evaluation over the spans written since the
//!   last pass, and the service that raises their alerts.
//! - [`alerting`]: alert state, Alertmanager-compatible payloads, and the hooks that
//!   deliver them (webhooks and commands).
//!
//! [`config`], [`service`] and [`self_metrics`] wire them into one running collector;
//! [`memory_budget`] bounds what the receivers' requests hold, from the first byte read
//! to the commit.

pub mod alerting;
pub mod byte_size;
pub mod config;
mod duration_text;
pub mod flow_rules;
pub mod flows_config;
pub mod lag;
pub mod memory_budget;
pub mod otlp;
pub mod self_metrics;
pub mod service;
#[cfg(test)]
mod test_support;
pub mod writer;

pub use config::CollectorConfig;
pub use service::{Collector, CollectorError, RunningCollector};
