//! The collector's configuration: defaults, a TOML file, `CAUSEWAY_*` environment
//! variables and command-line flags, in rising precedence.
//!
//! Each TOML section is one field of [`CollectorConfig`]; to add a section (such as
//! `[lag]`), add a field with its own `#[serde(deny_unknown_fields, default)]` struct.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use causeway_storage::{Database, DatabaseError, hide_passwords};
use serde::{Deserialize, Deserializer};

use crate::byte_size::ByteSize;

/// Environment variable for the database path.
pub const ENV_DB: &str = "CAUSEWAY_DB";
/// Environment variable for the OTLP/gRPC listen address.
pub const ENV_OTLP_GRPC: &str = "CAUSEWAY_OTLP_GRPC";
/// Environment variable for the OTLP/HTTP listen address.
pub const ENV_OTLP_HTTP: &str = "CAUSEWAY_OTLP_HTTP";
/// Environment variable for the Kafka bootstrap brokers.
pub const ENV_KAFKA: &str = "CAUSEWAY_KAFKA";
/// Environment variable for the self-metrics listen address.
pub const ENV_METRICS: &str = "CAUSEWAY_METRICS";
/// Environment variable for the brokers OTLP records are consumed from.
pub const ENV_OTLP_KAFKA: &str = "CAUSEWAY_OTLP_KAFKA";
/// The topic OTLP records are consumed from by default (the OpenTelemetry Collector's
/// `kafka` exporter's default topic for traces).
pub const DEFAULT_OTLP_TOPIC: &str = "otlp_spans";
/// The consumer group collectors consume OTLP records in by default.
pub const DEFAULT_OTLP_GROUP: &str = "causeway-collector";

/// Everything the collector needs to run.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CollectorConfig {
    /// The store the collector writes: an SQLite file, or a `postgres://` URL.
    pub db: Database,
    /// Kafka bootstrap brokers (`host:port,host:port`), for the lag poller.
    pub kafka: Option<String>,
    /// The OTLP receivers.
    pub otlp: OtlpConfig,
    /// The batch writer.
    pub writer: WriterConfig,
    /// How much history the store keeps.
    pub retention: RetentionConfig,
    /// The collector's own metrics endpoint.
    pub metrics: MetricsConfig,
    /// `[lag]`: the lag poller, lag rules and alert hooks (see docs/ALERT-RULES.md).
    pub lag: crate::lag::config::LagConfig,
    /// `[flows]`: where correlation IDs are read from (see docs/INTEROP.md).
    pub flows: crate::flows_config::FlowsConfig,
}

/// `[otlp]`: receiver addresses and request limits.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpConfig {
    /// OTLP/gRPC listen address.
    pub grpc: SocketAddr,
    /// OTLP/HTTP listen address.
    pub http: SocketAddr,
    /// Largest gRPC message accepted, after decompression.
    pub grpc_max_message_size: ByteSize,
    /// Largest HTTP body accepted, both as received and after decompression.
    pub http_max_body_size: ByteSize,
    /// Kafka brokers to consume OTLP records from (`--otlp-kafka`); none by default.
    pub kafka: Option<String>,
    /// The topic of those records.
    pub kafka_topic: String,
    /// The consumer group the collectors of a fleet share.
    pub kafka_group: String,
    /// Memory all requests together may hold: bodies being read, decompressed and
    /// decoded, and spans waiting to be committed (see `memory_budget`).
    pub max_request_memory: ByteSize,
    /// Longest wait for the next part of a request: the headers of a new request on an
    /// idle connection, or the next piece of a body.
    #[serde(deserialize_with = "duration_text")]
    pub read_timeout: Duration,
    /// Most connections each receiver keeps open; past it new ones are closed at once.
    pub max_connections: usize,
}

/// `[writer]`: batching and the bound on spans waiting to be committed.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WriterConfig {
    /// Most spans committed in one transaction.
    pub max_batch_spans: usize,
    /// How long the writer waits for more spans before committing a small batch.
    #[serde(deserialize_with = "duration_text")]
    pub max_batch_delay: Duration,
    /// Most spans accepted but not yet committed; past it, exporters are told to retry.
    pub max_in_flight_spans: usize,
}

/// `[retention]`: the oldest spans are deleted past either limit.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Delete spans stored longer ago than this (`7d`, `12h`); `"off"` keeps them all.
    #[serde(deserialize_with = "optional_duration_text")]
    pub max_age: Option<Duration>,
    /// Delete the oldest spans while the database holds more than this (`2GiB`).
    pub max_size: Option<ByteSize>,
    /// How often retention runs.
    #[serde(deserialize_with = "duration_text")]
    pub interval: Duration,
}

/// `[metrics]`: the Prometheus text endpoint.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Listen address of `GET /metrics`.
    pub addr: SocketAddr,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        CollectorConfig {
            db: Database::from(PathBuf::from("./causeway.db")),
            kafka: None,
            otlp: OtlpConfig::default(),
            writer: WriterConfig::default(),
            retention: RetentionConfig::default(),
            metrics: MetricsConfig::default(),
            lag: crate::lag::config::LagConfig::default(),
            flows: crate::flows_config::FlowsConfig::default(),
        }
    }
}

impl Default for OtlpConfig {
    fn default() -> Self {
        OtlpConfig {
            grpc: SocketAddr::from(([127, 0, 0, 1], 4317)),
            http: SocketAddr::from(([127, 0, 0, 1], 4318)),
            grpc_max_message_size: ByteSize(4 << 20),
            http_max_body_size: ByteSize(20 << 20),
            kafka: None,
            kafka_topic: DEFAULT_OTLP_TOPIC.to_owned(),
            kafka_group: DEFAULT_OTLP_GROUP.to_owned(),
            max_request_memory: ByteSize(96 << 20),
            read_timeout: Duration::from_secs(10),
            max_connections: 256,
        }
    }
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            max_batch_spans: 20_000,
            max_batch_delay: Duration::from_millis(2),
            max_in_flight_spans: 100_000,
        }
    }
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            max_age: Some(Duration::from_secs(7 * 24 * 3600)),
            max_size: None,
            interval: Duration::from_secs(60),
        }
    }
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 9464)),
        }
    }
}

/// Values given on the command line; each one set wins over everything else.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    /// `--db`.
    pub db: Option<Database>,
    /// `--otlp-grpc`.
    pub otlp_grpc: Option<SocketAddr>,
    /// `--otlp-http`.
    pub otlp_http: Option<SocketAddr>,
    /// `--kafka`.
    pub kafka: Option<String>,
    /// `--otlp-kafka`.
    pub otlp_kafka: Option<String>,
    /// `--otlp-topic`.
    pub otlp_topic: Option<String>,
}

/// Why the configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The config file is not valid TOML for this schema (the message names the key).
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong and where.
        message: String,
    },
    /// An environment variable holds an unusable value.
    #[error("invalid {variable}={value:?}: {reason}")]
    Environment {
        /// The variable.
        variable: &'static str,
        /// Its value.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl CollectorConfig {
    /// Reads `file` (if given), then applies the process environment and `overrides`.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Self, ConfigError> {
        let text = match file {
            Some(path) => {
                Some(
                    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                        path: path.to_owned(),
                        source,
                    })?,
                )
            }
            None => None,
        };
        let source = file.unwrap_or(Path::new("<none>"));
        Self::resolve(
            text.as_deref(),
            source,
            |key| std::env::var(key).ok(),
            overrides,
        )
    }

    /// Builds the configuration from file text, an environment lookup and overrides,
    /// with precedence overrides > environment > file > defaults.
    pub fn resolve(
        file_text: Option<&str>,
        file_path: &Path,
        env: impl Fn(&str) -> Option<String>,
        overrides: &Overrides,
    ) -> Result<Self, ConfigError> {
        let mut config = match file_text {
            Some(text) => toml::from_str(text).map_err(|error| ConfigError::Parse {
                path: file_path.to_owned(),
                message: hide_passwords(error.to_string().trim()).replace('\n', " "),
            })?,
            None => CollectorConfig::default(),
        };
        if let Some(db) = env(ENV_DB).filter(|v| !v.is_empty()) {
            config.db = Database::parse(&db).map_err(|error| ConfigError::Environment {
                variable: ENV_DB,
                // Shown without its password, as the reason shows it.
                value: match &error {
                    DatabaseError::Url { url, .. } => url.clone(),
                    DatabaseError::Empty => String::new(),
                },
                reason: error.to_string(),
            })?;
        }
        if let Some(kafka) = env(ENV_KAFKA).filter(|v| !v.is_empty()) {
            config.kafka = Some(kafka);
        }
        if let Some(brokers) = env(ENV_OTLP_KAFKA).filter(|v| !v.is_empty()) {
            config.otlp.kafka = Some(brokers);
        }
        apply_addr(&env, ENV_OTLP_GRPC, &mut config.otlp.grpc)?;
        apply_addr(&env, ENV_OTLP_HTTP, &mut config.otlp.http)?;
        apply_addr(&env, ENV_METRICS, &mut config.metrics.addr)?;
        if let Some(db) = &overrides.db {
            config.db = db.clone();
        }
        if let Some(kafka) = &overrides.kafka {
            config.kafka = Some(kafka.clone());
        }
        if let Some(brokers) = &overrides.otlp_kafka {
            config.otlp.kafka = Some(brokers.clone());
        }
        if let Some(topic) = &overrides.otlp_topic {
            config.otlp.kafka_topic = topic.clone();
        }
        if let Some(addr) = overrides.otlp_grpc {
            config.otlp.grpc = addr;
        }
        if let Some(addr) = overrides.otlp_http {
            config.otlp.http = addr;
        }
        Ok(config)
    }
}

fn apply_addr(
    env: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    target: &mut SocketAddr,
) -> Result<(), ConfigError> {
    if let Some(value) = env(variable).filter(|v| !v.is_empty()) {
        *target =
            value
                .parse()
                .map_err(|error: std::net::AddrParseError| ConfigError::Environment {
                    variable,
                    value: value.clone(),
                    reason: error.to_string(),
                })?;
    }
    Ok(())
}

fn duration_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    humantime::parse_duration(&text)
        .map_err(|error| serde::de::Error::custom(format!("invalid duration {text:?}: {error}")))
}

fn optional_duration_text<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    let text = String::deserialize(deserializer)?;
    if text == "off" {
        return Ok(None);
    }
    humantime::parse_duration(&text)
        .map(Some)
        .map_err(|error| serde::de::Error::custom(format!("invalid duration {text:?}: {error}")))
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
