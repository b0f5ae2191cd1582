//! Tests of configuration loading and precedence.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;

use super::*;

fn resolve(
    file: Option<&str>,
    env: &[(&str, &str)],
    overrides: &Overrides,
) -> Result<CollectorConfig, ConfigError> {
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    CollectorConfig::resolve(
        file,
        Path::new("causeway.toml"),
        |key| env.get(key).cloned(),
        overrides,
    )
}

const FULL_FILE: &str = r#"
db = "/var/lib/causeway.db"
kafka = "file-broker:9092"

[otlp]
grpc = "0.0.0.0:14317"
http = "0.0.0.0:14318"
grpc_max_message_size = "8MiB"
http_max_body_size = 1048576
max_request_memory = "64MiB"
read_timeout = "3s"
max_connections = 32

[writer]
max_batch_spans = 5000
max_batch_delay = "10ms"
max_in_flight_spans = 50000

[retention]
max_age = "3d"
max_size = "2GiB"
interval = "30s"

[metrics]
addr = "127.0.0.1:19464"
"#;

#[test]
fn no_file_no_env_gives_the_defaults() {
    let config = resolve(None, &[], &Overrides::default()).unwrap();
    assert_eq!(config, CollectorConfig::default());
    assert_eq!(config.otlp.grpc.to_string(), "127.0.0.1:4317");
    assert_eq!(config.otlp.http.to_string(), "127.0.0.1:4318");
    assert_eq!(config.otlp.grpc_max_message_size, ByteSize(4 << 20));
    assert_eq!(config.otlp.http_max_body_size, ByteSize(20 << 20));
    assert_eq!(config.otlp.max_request_memory, ByteSize(96 << 20));
    assert_eq!(config.otlp.read_timeout, Duration::from_secs(10));
    assert_eq!(config.otlp.max_connections, 256);
    assert_eq!(config.metrics.addr.to_string(), "127.0.0.1:9464");
}

#[test]
fn every_file_key_is_read() {
    let config = resolve(Some(FULL_FILE), &[], &Overrides::default()).unwrap();
    assert_eq!(
        config.db,
        Database::from(PathBuf::from("/var/lib/causeway.db"))
    );
    assert_eq!(config.kafka.as_deref(), Some("file-broker:9092"));
    assert_eq!(config.otlp.grpc.port(), 14317);
    assert_eq!(config.otlp.http.port(), 14318);
    assert_eq!(config.otlp.grpc_max_message_size, ByteSize(8 << 20));
    assert_eq!(config.otlp.http_max_body_size, ByteSize(1 << 20));
    assert_eq!(config.otlp.max_request_memory, ByteSize(64 << 20));
    assert_eq!(config.otlp.read_timeout, Duration::from_secs(3));
    assert_eq!(config.otlp.max_connections, 32);
    assert_eq!(config.writer.max_batch_spans, 5000);
    assert_eq!(config.writer.max_batch_delay, Duration::from_millis(10));
    assert_eq!(config.writer.max_in_flight_spans, 50_000);
    assert_eq!(
        config.retention.max_age,
        Some(Duration::from_secs(3 * 86_400))
    );
    assert_eq!(config.retention.max_size, Some(ByteSize(2 << 30)));
    assert_eq!(config.retention.interval, Duration::from_secs(30));
    assert_eq!(config.metrics.addr.port(), 19464);
}

#[test]
fn cli_beats_env_beats_file_beats_defaults() {
    let env = [
        (ENV_KAFKA, "env-broker:9092"),
        (ENV_OTLP_GRPC, "127.0.0.1:24317"),
        (ENV_DB, "/env.db"),
    ];
    let overrides = Overrides {
        otlp_grpc: Some("127.0.0.1:34317".parse().unwrap()),
        ..Overrides::default()
    };
    let config = resolve(Some(FULL_FILE), &env, &overrides).unwrap();
    assert_eq!(
        config.otlp.grpc.port(),
        34317,
        "the flag beats env and file"
    );
    assert_eq!(
        config.kafka.as_deref(),
        Some("env-broker:9092"),
        "env beats the file"
    );
    assert_eq!(
        config.db,
        Database::from(PathBuf::from("/env.db")),
        "env beats the file"
    );
    assert_eq!(config.otlp.http.port(), 14318, "the file beats the default");
    assert_eq!(
        config.writer.max_batch_spans, 5000,
        "the file beats the default"
    );

    let partial = resolve(
        Some("[otlp]\nhttp = \"127.0.0.1:1\"\n"),
        &[],
        &Overrides::default(),
    )
    .unwrap();
    assert_eq!(
        partial.otlp.grpc.port(),
        4317,
        "keys missing from the file keep their default"
    );
}

#[test]
fn bad_input_is_refused_naming_the_key() {
    let cases: &[(&str, &str, &str)] = &[
        ("colour = \"blue\"\n", "colour", "an unknown top-level key"),
        (
            "[otlp]\ngrpc_port = 1\n",
            "grpc_port",
            "an unknown key inside a section",
        ),
        ("[tracing]\n", "tracing", "an unknown section"),
        (
            "[otlp]\ngrpc = \"not an address\"\n",
            "grpc",
            "an unparsable address",
        ),
        (
            "[retention]\nmax_size = \"2 parsecs\"\n",
            "max_size",
            "an unknown size unit",
        ),
        (
            "[retention]\nmax_age = \"soon\"\n",
            "max_age",
            "an unparsable duration",
        ),
        ("db = [1, 2]\n", "db", "a key of the wrong type"),
    ];
    for (file, key, reason) in cases {
        let error = resolve(Some(file), &[], &Overrides::default()).unwrap_err();
        let message = error.to_string();
        assert!(
            matches!(error, ConfigError::Parse { .. }),
            "{reason}: {message}"
        );
        assert!(message.contains(key), "{reason}: {message}");
        assert!(
            message.contains("causeway.toml"),
            "{reason}: the file is named: {message}"
        );
    }
}

#[test]
fn bad_environment_values_are_refused_naming_the_variable() {
    let error = resolve(None, &[(ENV_OTLP_HTTP, "localhost")], &Overrides::default()).unwrap_err();
    assert!(error.to_string().contains(ENV_OTLP_HTTP), "{error}");
    let empty = resolve(None, &[(ENV_OTLP_HTTP, "")], &Overrides::default()).unwrap();
    assert_eq!(
        empty.otlp.http.port(),
        4318,
        "an empty variable counts as unset"
    );
}

#[test]
fn retention_age_can_be_turned_off() {
    let config = resolve(
        Some("[retention]\nmax_age = \"off\"\n"),
        &[],
        &Overrides::default(),
    )
    .unwrap();
    assert_eq!(config.retention.max_age, None);
}

#[test]
fn db_may_be_a_postgres_url_and_its_password_is_never_shown() {
    let file = "db = \"postgres://causeway:secret@db.internal/causeway\"\n";
    let config = resolve(Some(file), &[], &Overrides::default()).unwrap();
    assert!(config.db.sqlite_path().is_none(), "{:?}", config.db);
    assert_eq!(
        config.db.to_string(),
        "postgres://causeway:***@db.internal/causeway"
    );
    let error = resolve(
        None,
        &[(
            ENV_DB,
            "postgres://causeway:secret@db.internal:port/causeway",
        )],
        &Overrides::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("CAUSEWAY_DB"), "{error}");
    assert!(!error.contains("secret"), "{error}");
    let bad_file = "db = \"postgres://causeway:secret@db.internal:port/causeway\"\n";
    let error = resolve(Some(bad_file), &[], &Overrides::default())
        .unwrap_err()
        .to_string();
    assert!(error.contains("invalid postgres database URL"), "{error}");
    assert!(!error.contains("secret"), "{error}");
}
