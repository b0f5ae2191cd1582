//! `causeway collector`: runs the OTLP receivers and the batch writer until SIGTERM or
//! Ctrl-C, then drains and commits before exiting.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use causeway_storage::Database;

use anyhow::Context;
use causeway_collector::config::{ENV_DB, Overrides};
use causeway_collector::{Collector, CollectorConfig};

/// The global `--db` default; when it is in effect the config file may choose the path.
const DEFAULT_DB: &str = "./causeway.db";

/// Arguments of `causeway collector`.
#[derive(Debug, Default, clap::Args)]
pub struct Args {
    /// TOML configuration file (see docs/COLLECTOR.md); flags and CAUSEWAY_* variables
    /// override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// OTLP/gRPC listen address [default: 127.0.0.1:4317].
    #[arg(long, value_name = "ADDR")]
    otlp_grpc: Option<SocketAddr>,
    /// OTLP/HTTP listen address [default: 127.0.0.1:4318].
    #[arg(long, value_name = "ADDR")]
    otlp_http: Option<SocketAddr>,
    /// Self-metrics (Prometheus text) listen address [default: 127.0.0.1:9464].
    #[arg(long, value_name = "ADDR")]
    metrics: Option<SocketAddr>,
    /// Kafka bootstrap brokers, for consumer-lag polling.
    #[arg(long, value_name = "BROKERS")]
    kafka: Option<String>,
    /// Also consume OTLP trace records (otlp_proto or otlp_json, as the OpenTelemetry
    /// Collector's kafka exporter writes them) from these Kafka brokers, as consumer group
    /// `causeway-collector`; offsets are committed once the spans are stored.
    #[arg(long, value_name = "BROKERS")]
    otlp_kafka: Option<String>,
    /// The topic of those records [default: otlp_spans].
    #[arg(long, value_name = "TOPIC", requires = "otlp_kafka")]
    otlp_topic: Option<String>,
}

/// Runs `causeway collector`.
pub async fn run(args: Args, db: &Database) -> anyhow::Result<()> {
    // `--db` is global with a default, so "not given" looks like the default path; in that
    // case (and without CAUSEWAY_DB) let the config file choose.
    let db_given =
        db.sqlite_path() != Some(Path::new(DEFAULT_DB)) || std::env::var_os(ENV_DB).is_some();
    let overrides = Overrides {
        db: db_given.then(|| db.clone()),
        otlp_grpc: args.otlp_grpc,
        otlp_http: args.otlp_http,
        kafka: args.kafka,
        otlp_kafka: args.otlp_kafka,
        otlp_topic: args.otlp_topic,
    };
    let mut config = CollectorConfig::load(args.config.as_deref(), &overrides)?;
    if let Some(addr) = args.metrics {
        config.metrics.addr = addr;
    }
    let running = Collector::start(&config)
        .await
        .with_context(|| format!("cannot start the collector on {}", config.db))?;
    eprintln!(
        "listening otlp_grpc={} otlp_http={} metrics={}",
        running.grpc_addr(),
        running.http_addr(),
        running.metrics_addr()
    );
    tracing::info!(db = %config.db, "collector running; SIGTERM or Ctrl-C stops it");
    wait_for_stop_signal().await?;
    tracing::info!("stopping: draining queued spans");
    running.shutdown().await;
    Ok(())
}

async fn wait_for_stop_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result.context("cannot listen for Ctrl-C")?,
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c()
        .await
        .context("cannot listen for Ctrl-C")?;
    Ok(())
}
