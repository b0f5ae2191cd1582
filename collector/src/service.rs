//! The running collector: binds the receivers and the metrics endpoint, starts the batch
//! writer, and shuts everything down in order (stop accepting, drain, commit, close).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use causeway_storage::{RetentionPolicy, StorageError, Store, WriterLock};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::CollectorConfig;
use crate::flow_rules::service::{FlowRuleService, FlowRuleServiceError};
use crate::flows_config::FlowsConfigError;
use crate::lag::config::LagConfigError;
use crate::lag::service::{LagService, LagServiceError};
use crate::memory_budget::MemoryBudget;
use crate::otlp::connection_guard::{ConnectionActivity, GuardedListener, MarkActiveLayer};
use crate::otlp::grpc_receiver::GrpcTraceService;
use crate::otlp::http_receiver::{self, HttpReceiver};
use crate::otlp::kafka_source::{self, KafkaSourceConfig, KafkaSourceError};
use crate::otlp::limits::{
    DecodeSlots, MAX_HTTP2_HEADER_LIST_BYTES, MAX_HTTP2_STREAMS, ReceiverLimits,
};
use crate::otlp::metrics_grpc::GrpcMetricsService;
use crate::otlp::metrics_http;
use crate::self_metrics::{self, SelfMetrics};
use crate::writer::batch_writer::{WriterOptions, spawn_writer};

/// How long shutdown waits for open requests before cutting them off.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Why the collector could not start.
#[derive(Debug, thiserror::Error)]
pub enum CollectorError {
    /// The database could not be opened.
    #[error(transparent)]
    Store(#[from] StorageError),
    /// A listening socket could not be bound.
    #[error("cannot listen for {what} on {addr}: {source}")]
    Bind {
        /// Which endpoint.
        what: &'static str,
        /// The address asked for.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The `[lag]` section is invalid (a bad rule or hook, named in the message).
    #[error(transparent)]
    LagConfig(#[from] LagConfigError),
    /// The lag service could not start.
    #[error(transparent)]
    Lag(#[from] LagServiceError),
    /// The OTLP Kafka source could not start.
    #[error(transparent)]
    KafkaSource(#[from] KafkaSourceError),
    /// The `[flows]` section is invalid (a bad rule or setting, named in the message).
    #[error(transparent)]
    FlowsConfig(#[from] FlowsConfigError),
    /// The flow rule service could not start.
    #[error(transparent)]
    FlowRules(#[from] FlowRuleServiceError),
}

/// Entry point of the collector library.
#[derive(Debug)]
pub struct Collector;

/// A collector that is listening. Call [`RunningCollector::shutdown`] to stop it cleanly.
#[derive(Debug)]
pub struct RunningCollector {
    grpc_addr: SocketAddr,
    http_addr: SocketAddr,
    metrics_addr: SocketAddr,
    metrics: Arc<SelfMetrics>,
    stop: watch::Sender<bool>,
    servers: Vec<(&'static str, JoinHandle<()>)>,
    writer: JoinHandle<()>,
    lag: JoinHandle<()>,
    kafka_source: Option<JoinHandle<()>>,
    /// Held until the store is closed (SQLite only: PostgreSQL takes several writers).
    writer_lock: Option<WriterLock>,
    flow_rules: JoinHandle<()>,
}

impl Collector {
    /// Opens the store, starts the writer and binds every endpoint (port 0 picks a free
    /// port; see the `*_addr` methods for what was bound).
    pub async fn start(config: &CollectorConfig) -> Result<RunningCollector, CollectorError> {
        // A bad lag rule, flow rule or hook refuses to start before anything is opened.
        let lag_settings = config.lag.validate()?;
        // One collector per file: a second one stops here, before touching the database.
        let writer_lock = match config.db.sqlite_path() {
            Some(path) => Some(WriterLock::acquire(path)?),
            None => None,
        };
        let flow_settings = config.flows.rule_settings()?;
        let store = Store::open(&config.db).await?;
        let lag_store = store.clone();
        let grpc_listener = bind("otlp grpc", config.otlp.grpc).await?;
        let http_listener = bind("otlp http", config.otlp.http).await?;
        let metrics_listener = bind("metrics", config.metrics.addr).await?;
        let local = |listener: &TcpListener, what, addr| {
            listener
                .local_addr()
                .map_err(|source| CollectorError::Bind { what, addr, source })
        };
        let grpc_addr = local(&grpc_listener, "otlp grpc", config.otlp.grpc)?;
        let http_addr = local(&http_listener, "otlp http", config.otlp.http)?;
        let metrics_addr = local(&metrics_listener, "metrics", config.metrics.addr)?;

        let metrics = Arc::new(SelfMetrics::default());
        let (writer, writer_task) =
            spawn_writer(store, writer_options(config), Arc::clone(&metrics));
        let (stop, stopped) = watch::channel(false);
        // Flow alerts go to the same hooks as lag alerts; with every rule off, nothing runs.
        // Both run only while the lag service holds the store's lease.
        let (lease_tx, lease_rx) = watch::channel(false);
        let flow_rules = if flow_settings.rules.is_empty() {
            tokio::spawn(async {})
        } else {
            FlowRuleService::new(lag_store.clone(), flow_settings, lag_settings.hooks.clone())
                .await?
                .spawn(stopped.clone(), lease_rx)
        };
        let lag = LagService::new(lag_store.clone(), lag_settings, config.kafka.as_deref())?
            .reporting_to(Arc::clone(&metrics))
            .sharing_lease(lease_tx)
            .spawn(stopped.clone());

        // One memory budget for every request of both receivers; decoding slots and
        // connection caps per receiver.
        let budget = MemoryBudget::new(config.otlp.max_request_memory.as_usize());
        let limits = |max_body_bytes: usize| ReceiverLimits {
            max_body_bytes,
            read_timeout: config.otlp.read_timeout,
            budget: budget.clone(),
            decoding: DecodeSlots::default(),
        };
        let grpc_limits = limits(config.otlp.grpc_max_message_size.as_usize());
        let http_limits = limits(config.otlp.http_max_body_size.as_usize());
        let guarded = |listener, what| {
            GuardedListener::new(
                listener,
                config.otlp.max_connections,
                config.otlp.read_timeout,
                what,
            )
        };
        let messaging = config.flows.messaging_reader();
        let kafka_source = match &config.otlp.kafka {
            Some(brokers) => Some(kafka_source::spawn(
                &KafkaSourceConfig {
                    brokers: brokers.clone(),
                    topic: config.otlp.kafka_topic.clone(),
                    group: config.otlp.kafka_group.clone(),
                    max_record_bytes: config.otlp.http_max_body_size.as_usize(),
                },
                writer.clone(),
                Arc::clone(&metrics),
                messaging.clone(),
                budget.clone(),
                stopped.clone(),
            )?),
            None => None,
        };
        let grpc = GrpcTraceService::new(writer.clone(), Arc::clone(&metrics), grpc_limits.clone())
            .with_messaging(messaging.clone());
        let grpc_server = tonic::transport::Server::builder()
            .max_concurrent_streams(MAX_HTTP2_STREAMS)
            .http2_max_header_list_size(MAX_HTTP2_HEADER_LIST_BYTES)
            .layer(MarkActiveLayer)
            .add_service(grpc)
            .add_service(GrpcMetricsService::server(lag_store.clone(), grpc_limits))
            .serve_with_incoming_shutdown(
                guarded(grpc_listener, "otlp grpc").into_incoming(),
                until(stopped.clone()),
            );
        let http = http_receiver::router(HttpReceiver {
            writer,
            metrics: Arc::clone(&metrics),
            limits: http_limits.clone(),
            messaging,
        })
        .merge(metrics_http::router(
            lag_store,
            http_limits,
            Arc::clone(&metrics),
        ))
        .layer(MarkActiveLayer);
        let http_server = axum::serve(
            guarded(http_listener, "otlp http").limit_unrequested_bytes(),
            http.into_make_service_with_connect_info::<ConnectionActivity>(),
        )
        .with_graceful_shutdown(until(stopped.clone()));
        let metrics_server =
            axum::serve(metrics_listener, self_metrics::router(Arc::clone(&metrics)))
                .with_graceful_shutdown(until(stopped));
        let servers = vec![
            ("otlp grpc", spawn_logged("otlp grpc", grpc_server)),
            (
                "otlp http",
                spawn_logged("otlp http", async { http_server.await }),
            ),
            (
                "metrics",
                spawn_logged("metrics", async { metrics_server.await }),
            ),
        ];
        Ok(RunningCollector {
            grpc_addr,
            http_addr,
            metrics_addr,
            metrics,
            stop,
            servers,
            writer: writer_task,
            lag,
            kafka_source,
            writer_lock,
            flow_rules,
        })
    }
}

impl RunningCollector {
    /// The bound OTLP/gRPC address.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    /// The bound OTLP/HTTP address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The bound self-metrics address.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_addr
    }

    /// The collector's counters.
    pub fn metrics(&self) -> &Arc<SelfMetrics> {
        &self.metrics
    }

    /// Stops accepting, lets open requests finish (up to a grace period), commits what is
    /// queued, and closes the store. Returns once the store is closed.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        // The lag and flow rule services stop before the writer closes the store they share.
        if let Err(error) = self.lag.await {
            tracing::warn!(error = %error, "lag service ended abnormally");
        }
        if let Err(error) = self.flow_rules.await {
            tracing::warn!(error = %error, "flow rule service ended abnormally");
        }
        // The Kafka source holds a writer handle: it commits its offsets and lets go.
        if let Some(source) = self.kafka_source
            && let Err(error) = source.await
        {
            tracing::warn!(error = %error, "otlp kafka source ended abnormally");
        }
        for (what, mut server) in self.servers {
            if tokio::time::timeout(SHUTDOWN_GRACE, &mut server)
                .await
                .is_err()
            {
                tracing::warn!(
                    endpoint = what,
                    "open requests did not finish in time, closing them"
                );
                server.abort();
                let _ = server.await;
            }
        }
        // Every writer handle lived in a server; with them gone the writer drains and stops.
        if let Err(error) = self.writer.await {
            tracing::warn!(error = %error, "batch writer ended abnormally");
        }
        drop(self.writer_lock);
        tracing::info!(
            spans_accepted = self.metrics.accepted_total(),
            "collector stopped"
        );
    }
}

fn writer_options(config: &CollectorConfig) -> WriterOptions {
    let retention = RetentionPolicy {
        max_age_ns: config
            .retention
            .max_age
            .map(|age| i64::try_from(age.as_nanos()).unwrap_or(i64::MAX)),
        max_bytes: config
            .retention
            .max_size
            .map(|size| i64::try_from(size.0).unwrap_or(i64::MAX)),
    };
    let retention_on = retention.max_age_ns.is_some() || retention.max_bytes.is_some();
    WriterOptions {
        max_batch_spans: config.writer.max_batch_spans,
        max_batch_delay: config.writer.max_batch_delay,
        max_in_flight_spans: config.writer.max_in_flight_spans,
        retention: retention_on.then_some((retention, config.retention.interval)),
    }
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, CollectorError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| CollectorError::Bind { what, addr, source })
}

/// Resolves once `stop` turns true (or its sender is gone).
async fn until(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

fn spawn_logged<E: std::fmt::Display>(
    what: &'static str,
    server: impl Future<Output = Result<(), E>> + Send + 'static,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(error) = server.await {
            tracing::error!(endpoint = what, error = %error, "server failed");
        }
    })
}

#[cfg(test)]
#[path = "service_tests.rs"]
mod tests;
