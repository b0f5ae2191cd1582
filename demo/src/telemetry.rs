//! One OpenTelemetry tracer provider per shop service, exporting over OTLP/gRPC, so each
//! service shows under its own `service.name` exactly as separate processes would.

use std::collections::BTreeMap;
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SdkTracer, SdkTracerProvider,
};

use crate::catalog::Service;

/// Instrumentation scope of the demo's tracers.
pub const SCOPE_NAME: &str = "causeway-demo";
/// How often a service's spans are exported: short, so the dashboard follows closely.
pub const EXPORT_INTERVAL: Duration = Duration::from_millis(250);

/// What setting up the exporters can fail with.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the otlp exporter for {service} to {endpoint}: {message}")]
pub struct TelemetryError {
    /// The service.
    pub service: &'static str,
    /// The OTLP endpoint.
    pub endpoint: String,
    /// What the exporter builder said.
    pub message: String,
}

/// The tracer providers of every service.
#[derive(Debug, Clone)]
pub struct ShopTelemetry {
    providers: BTreeMap<Service, SdkTracerProvider>,
}

impl ShopTelemetry {
    /// Providers exporting to the OTLP/gRPC `endpoint` (such as `http://127.0.0.1:4317`).
    /// Must run inside a Tokio runtime: the gRPC channel lives on it.
    pub fn otlp(endpoint: &str) -> Result<ShopTelemetry, TelemetryError> {
        let mut providers = BTreeMap::new();
        for service in Service::ALL {
            let exporter = SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint)
                .build()
                .map_err(|error| TelemetryError {
                    service: service.name(),
                    endpoint: endpoint.to_owned(),
                    message: error.to_string(),
                })?;
            let processor = BatchSpanProcessor::builder(exporter)
                .with_batch_config(
                    BatchConfigBuilder::default()
                        .with_scheduled_delay(EXPORT_INTERVAL)
                        .with_max_queue_size(65_536)
                        .build(),
                )
                .build();
            let provider = SdkTracerProvider::builder()
                .with_span_processor(processor)
                .with_resource(
                    Resource::builder()
                        .with_service_name(service.name())
                        .build(),
                )
                .build();
            providers.insert(service, provider);
        }
        Ok(ShopTelemetry { providers })
    }

    /// Providers that record nothing (for tests of the shop's own behaviour).
    pub fn disabled() -> ShopTelemetry {
        let providers = Service::ALL
            .into_iter()
            .map(|service| {
                let resource = Resource::builder()
                    .with_service_name(service.name())
                    .build();
                (
                    service,
                    SdkTracerProvider::builder().with_resource(resource).build(),
                )
            })
            .collect();
        ShopTelemetry { providers }
    }

    /// The tracer of `service`.
    pub fn tracer(&self, service: Service) -> SdkTracer {
        match self.providers.get(&service) {
            Some(provider) => provider.tracer(SCOPE_NAME),
            // Every service gets a provider in both constructors; a no-op stand-in keeps
            // this total without a panic path.
            None => SdkTracerProvider::builder().build().tracer(SCOPE_NAME),
        }
    }

    /// Exports what is buffered and stops the exporters. Blocks: call from a blocking task.
    pub fn shutdown(&self) {
        for (service, provider) in &self.providers {
            if let Err(error) = provider.force_flush() {
                tracing::warn!(service = service.name(), error = %error, "span flush failed");
            }
            if let Err(error) = provider.shutdown() {
                tracing::debug!(service = service.name(), error = %error, "span exporter shutdown");
            }
        }
    }
}
