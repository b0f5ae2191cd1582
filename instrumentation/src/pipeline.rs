//! The OTLP pipeline: tracer and meter providers exporting to a collector, configured from
//! the standard `OTEL_*` environment variables or explicitly from code.

use std::collections::HashMap;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::global::BoxedTracer;
use opentelemetry::metrics::{Meter, MeterProvider as _};
use opentelemetry::propagation::TextMapCompositePropagator;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{
    MetricExporter, SpanExporter, WithExportConfig, WithHttpConfig, WithTonicConfig,
};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::metrics::periodic_reader_with_async_runtime::PeriodicReader;
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
use opentelemetry_sdk::runtime::Tokio;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use opentelemetry_sdk::trace::{BatchConfigBuilder, SdkTracerProvider};
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};

use crate::otel_env::{
    ENV_ENDPOINT, ENV_HEADERS, ENV_METRIC_EXPORT_INTERVAL, ENV_PROPAGATORS, ENV_PROTOCOL,
    PropagatorKind, Protocol, SettingError, invalid, parse_headers, parse_propagators,
    parse_protocol,
};

/// OTLP/HTTP path of the trace service.
const HTTP_TRACES_PATH: &str = "/v1/traces";
/// OTLP/HTTP path of the metrics service.
const HTTP_METRICS_PATH: &str = "/v1/metrics";
/// Default metric export interval of the OpenTelemetry specification.
const DEFAULT_METRIC_INTERVAL: Duration = Duration::from_secs(60);
/// Default delay between span batches.
const DEFAULT_BATCH_DELAY: Duration = Duration::from_secs(1);

/// Why the pipeline could not be configured, built or shut down.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// A setting holds a value causeway does not understand.
    #[error(transparent)]
    Setting(#[from] SettingError),
    /// The OTLP exporter could not be built.
    #[error("cannot build the otlp exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    /// Flushing or shutting down the providers failed.
    #[error("cannot shut down the otlp pipeline: {0}")]
    Shutdown(String),
}

/// Settings of the OTLP pipeline. Unset fields fall back to the `OTEL_*` variables the
/// OpenTelemetry SDK reads itself (endpoint, headers, service name, resource attributes).
#[derive(Clone, Debug, Default)]
pub struct Pipeline {
    endpoint: Option<String>,
    protocol: Protocol,
    headers: Vec<(String, String)>,
    service_name: Option<String>,
    resource_attributes: Vec<KeyValue>,
    propagators: Option<Vec<PropagatorKind>>,
    metric_interval: Option<Duration>,
    batch_delay: Option<Duration>,
}

impl Pipeline {
    /// An explicit pipeline: OTLP/HTTP to the SDK's default endpoint until told otherwise.
    pub fn builder() -> Self {
        Self::default()
    }

    /// A pipeline from the process environment (see [`Pipeline::from_lookup`]).
    pub fn from_env() -> Result<Self, PipelineError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// A pipeline from `OTEL_*` values given by `lookup`: protocol, headers, propagators and
    /// metric interval are parsed and checked here; endpoint, service name and resource
    /// attributes are read again by the SDK when the pipeline is installed.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, PipelineError> {
        let mut pipeline = Self::default();
        if let Some(value) = lookup(ENV_PROTOCOL) {
            pipeline.protocol = parse_protocol(&value)?;
        }
        if let Some(value) = lookup(ENV_HEADERS) {
            pipeline.headers = parse_headers(&value)?;
        }
        if let Some(value) = lookup(ENV_PROPAGATORS) {
            pipeline.propagators = Some(parse_propagators(&value)?);
        }
        if let Some(value) = lookup(ENV_METRIC_EXPORT_INTERVAL) {
            let millis: u64 = value.trim().parse().map_err(|_| {
                invalid(ENV_METRIC_EXPORT_INTERVAL, &value, "expected milliseconds")
            })?;
            pipeline.metric_interval = Some(Duration::from_millis(millis.max(1)));
        }
        pipeline.endpoint = lookup(ENV_ENDPOINT).filter(|e| !e.trim().is_empty());
        Ok(pipeline)
    }

    /// Collector base address, e.g. `http://127.0.0.1:4317` for gRPC or
    /// `http://127.0.0.1:4318` for HTTP (the `/v1/...` paths are added).
    pub fn endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// OTLP transport.
    pub fn protocol(mut self, protocol: Protocol) -> Self {
        self.protocol = protocol;
        self
    }

    /// Adds a request header (gRPC metadata) sent with every export.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The `service.name` resource attribute, overriding `OTEL_SERVICE_NAME`.
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = Some(name.into());
        self
    }

    /// Adds a resource attribute.
    pub fn resource_attribute(mut self, attribute: KeyValue) -> Self {
        self.resource_attributes.push(attribute);
        self
    }

    /// How often metrics are exported (default 60 s).
    pub fn metric_interval(mut self, interval: Duration) -> Self {
        self.metric_interval = Some(interval);
        self
    }

    /// Longest wait before a batch of spans is exported (default 1 s).
    pub fn batch_delay(mut self, delay: Duration) -> Self {
        self.batch_delay = Some(delay);
        self
    }

    /// The global text-map propagators (default: trace context and baggage).
    pub fn propagators(mut self, propagators: Vec<PropagatorKind>) -> Self {
        self.propagators = Some(propagators);
        self
    }

    fn signal_endpoint(&self, http_path: &str) -> Option<String> {
        let endpoint = self.endpoint.as_deref()?.trim_end_matches('/');
        Some(match self.protocol {
            Protocol::Grpc => endpoint.to_owned(),
            Protocol::HttpProtobuf => format!("{endpoint}{http_path}"),
        })
    }

    fn metadata(&self) -> Result<MetadataMap, PipelineError> {
        let mut metadata = MetadataMap::new();
        for (name, value) in &self.headers {
            let key = MetadataKey::from_bytes(name.as_bytes())
                .map_err(|_| invalid("header", name, "not a valid grpc metadata name"))?;
            let value = MetadataValue::try_from(value.as_str())
                .map_err(|_| invalid("header", value, "not a valid grpc metadata value"))?;
            metadata.append(key, value);
        }
        Ok(metadata)
    }

    fn span_exporter(&self) -> Result<SpanExporter, PipelineError> {
        let endpoint = self.signal_endpoint(HTTP_TRACES_PATH);
        let exporter = match self.protocol {
            Protocol::Grpc => self
                .tonic_settings(SpanExporter::builder().with_tonic(), endpoint)?
                .build()?,
            Protocol::HttpProtobuf => self
                .http_settings(SpanExporter::builder().with_http(), endpoint)
                .build()?,
        };
        Ok(exporter)
    }

    fn metric_exporter(&self) -> Result<MetricExporter, PipelineError> {
        let endpoint = self.signal_endpoint(HTTP_METRICS_PATH);
        let exporter = match self.protocol {
            Protocol::Grpc => self
                .tonic_settings(MetricExporter::builder().with_tonic(), endpoint)?
                .build()?,
            Protocol::HttpProtobuf => self
                .http_settings(MetricExporter::builder().with_http(), endpoint)
                .build()?,
        };
        Ok(exporter)
    }

    /// Endpoint and headers (as gRPC metadata) on any gRPC exporter builder.
    fn tonic_settings<B: WithExportConfig + WithTonicConfig>(
        &self,
        mut builder: B,
        endpoint: Option<String>,
    ) -> Result<B, PipelineError> {
        if let Some(endpoint) = endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        if !self.headers.is_empty() {
            builder = builder.with_metadata(self.metadata()?);
        }
        Ok(builder)
    }

    /// Endpoint and headers on any HTTP exporter builder.
    fn http_settings<B: WithExportConfig + WithHttpConfig>(
        &self,
        mut builder: B,
        endpoint: Option<String>,
    ) -> B {
        if let Some(endpoint) = endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        if !self.headers.is_empty() {
            builder = builder.with_headers(self.headers.iter().cloned().collect::<HashMap<_, _>>());
        }
        builder
    }

    fn resource(&self) -> Resource {
        let mut builder = Resource::builder();
        if let Some(name) = &self.service_name {
            builder = builder.with_service_name(name.clone());
        }
        builder
            .with_attributes(self.resource_attributes.iter().cloned())
            .build()
    }

    /// Builds the exporters and providers without touching the OpenTelemetry globals (for
    /// several services in one process). Must be called inside a Tokio runtime: batches are
    /// exported by Tokio tasks.
    pub fn build(self) -> Result<PipelineGuard, PipelineError> {
        let resource = self.resource();
        let batch = BatchConfigBuilder::default()
            .with_scheduled_delay(self.batch_delay.unwrap_or(DEFAULT_BATCH_DELAY))
            .build();
        let spans = BatchSpanProcessor::builder(self.span_exporter()?, Tokio)
            .with_batch_config(batch)
            .build();
        let tracer_provider = SdkTracerProvider::builder()
            .with_span_processor(spans)
            .with_resource(resource.clone())
            .build();
        let reader = PeriodicReader::builder(self.metric_exporter()?, Tokio)
            .with_interval(self.metric_interval.unwrap_or(DEFAULT_METRIC_INTERVAL))
            .build();
        let meter_provider = SdkMeterProvider::builder()
            .with_reader(reader)
            .with_resource(resource)
            .build();
        Ok(PipelineGuard {
            tracer_provider,
            meter_provider,
            propagators: self.propagators,
        })
    }

    /// Builds the pipeline (see [`Pipeline::build`]) and installs its providers and
    /// propagators as the OpenTelemetry globals, which [`crate::TracedProducer::new`],
    /// [`crate::TracedConsumer::new`] and [`crate::LagReportingContext::from_global`] use.
    pub fn install(self) -> Result<PipelineGuard, PipelineError> {
        let guard = self.build()?;
        let kinds = guard
            .propagators
            .clone()
            .unwrap_or_else(|| vec![PropagatorKind::TraceContext, PropagatorKind::Baggage]);
        let propagators: Vec<Box<dyn TextMapPropagator + Send + Sync>> = kinds
            .into_iter()
            .map(|kind| -> Box<dyn TextMapPropagator + Send + Sync> {
                match kind {
                    PropagatorKind::TraceContext => Box::new(TraceContextPropagator::new()),
                    PropagatorKind::Baggage => Box::new(BaggagePropagator::new()),
                }
            })
            .collect();
        opentelemetry::global::set_text_map_propagator(TextMapCompositePropagator::new(
            propagators,
        ));
        opentelemetry::global::set_tracer_provider(guard.tracer_provider.clone());
        opentelemetry::global::set_meter_provider(guard.meter_provider.clone());
        Ok(guard)
    }
}

/// The installed providers; [`PipelineGuard::shutdown`] flushes and stops them.
#[derive(Clone, Debug)]
pub struct PipelineGuard {
    tracer_provider: SdkTracerProvider,
    meter_provider: SdkMeterProvider,
    propagators: Option<Vec<PropagatorKind>>,
}

impl PipelineGuard {
    /// The tracer provider, for tracers with their own scope.
    pub fn tracer_provider(&self) -> &SdkTracerProvider {
        &self.tracer_provider
    }

    /// A tracer of this pipeline for [`crate::TracedProducer::with_tracer`] and
    /// [`crate::TracedConsumer::with_tracer`].
    pub fn tracer(&self) -> BoxedTracer {
        BoxedTracer::new(Box::new(
            self.tracer_provider
                .tracer(causeway_conventions::INSTRUMENTATION_SCOPE),
        ))
    }

    /// A meter of this pipeline, e.g. for [`crate::LagReportingContext::new`].
    pub fn meter(&self) -> Meter {
        self.meter_provider
            .meter(causeway_conventions::INSTRUMENTATION_SCOPE)
    }

    /// The meter provider, for meters with their own scope.
    pub fn meter_provider(&self) -> &SdkMeterProvider {
        &self.meter_provider
    }

    /// Exports everything still buffered, without stopping.
    pub async fn flush(&self) -> Result<(), PipelineError> {
        let guard = self.clone();
        run_blocking(move || {
            guard.tracer_provider.force_flush()?;
            guard.meter_provider.force_flush()
        })
        .await
    }

    /// Exports everything still buffered and stops the providers. The SDK blocks while it
    /// flushes, so this runs on Tokio's blocking pool.
    pub async fn shutdown(self) -> Result<(), PipelineError> {
        run_blocking(move || {
            let traces = self.tracer_provider.shutdown();
            let metrics = self.meter_provider.shutdown();
            traces.and(metrics)
        })
        .await
    }
}

async fn run_blocking(
    work: impl FnOnce() -> opentelemetry_sdk::error::OTelSdkResult + Send + 'static,
) -> Result<(), PipelineError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| PipelineError::Shutdown(error.to_string()))?
        .map_err(|error| PipelineError::Shutdown(error.to_string()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::otel_env::{ENV_ENDPOINT, ENV_HEADERS, ENV_METRIC_EXPORT_INTERVAL, ENV_PROTOCOL};

    #[test]
    fn from_lookup_reads_and_checks_the_variables() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let pipeline = Pipeline::from_lookup(env(&[
            (ENV_PROTOCOL, "grpc"),
            (ENV_ENDPOINT, "http://127.0.0.1:4317"),
            (ENV_HEADERS, "k=v"),
            (ENV_METRIC_EXPORT_INTERVAL, "250"),
        ]))
        .unwrap();
        assert_eq!(pipeline.protocol, Protocol::Grpc);
        assert_eq!(
            pipeline.signal_endpoint(HTTP_TRACES_PATH).as_deref(),
            Some("http://127.0.0.1:4317")
        );
        assert_eq!(pipeline.metric_interval, Some(Duration::from_millis(250)));
        assert_eq!(pipeline.headers, vec![("k".to_owned(), "v".to_owned())]);

        let http = Pipeline::from_lookup(env(&[(ENV_ENDPOINT, "http://h:4318/")])).unwrap();
        assert_eq!(http.protocol, Protocol::HttpProtobuf, "the spec's default");
        assert_eq!(
            http.signal_endpoint(HTTP_METRICS_PATH).as_deref(),
            Some("http://h:4318/v1/metrics")
        );

        let bad = Pipeline::from_lookup(env(&[(ENV_METRIC_EXPORT_INTERVAL, "soon")]));
        let message = bad.unwrap_err().to_string();
        assert!(message.contains("OTEL_METRIC_EXPORT_INTERVAL"), "{message}");
    }

    /// Building, using and shutting down must neither panic nor hang, on either transport,
    /// on a single-threaded runtime, even when nothing listens at the endpoint.
    #[tokio::test]
    async fn shuts_down_without_a_collector_on_a_current_thread_runtime() {
        use opentelemetry::trace::{Span as _, Tracer as _};
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", closed.local_addr().unwrap());
        drop(closed);
        for protocol in [Protocol::Grpc, Protocol::HttpProtobuf] {
            let guard = Pipeline::builder()
                .endpoint(endpoint.clone())
                .protocol(protocol)
                .service_name("test")
                .build()
                .unwrap();
            guard.tracer().start("work").end();
            let shutdown = tokio::time::timeout(Duration::from_secs(30), guard.shutdown()).await;
            assert!(shutdown.is_ok(), "{protocol:?}: shutdown hung");
        }
    }
}
