//! Shared helpers for the end-to-end tests: temporary databases, free ports, polling with a
//! deadline, the collector binary as a child process, and a real Kafka-compatible broker.
//!
//! Every helper fails loudly (panics with the reason and what the child printed so far):
//! these run only inside tests, where a panic is the failure report.
#![allow(dead_code)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};

/// How long a child process gets to announce that it is listening.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// The line prefix the collector prints on stderr once its sockets are bound.
const LISTENING_MARKER: &str = "listening";
/// Keys of the addresses in the collector's `listening` line.
const GRPC_KEY: &str = "otlp_grpc";
const HTTP_KEY: &str = "otlp_http";
const METRICS_KEY: &str = "metrics";

/// A fresh temporary directory, removed when dropped.
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("causeway-e2e-")
        .tempdir()
        .expect("cannot create a temporary directory")
}

/// A TCP port on 127.0.0.1 that was free a moment ago (bound, read, released).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("cannot bind 127.0.0.1:0");
    listener
        .local_addr()
        .expect("bound listener has no local address")
        .port()
}

/// Polls `condition` every 20 ms until it holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Environment variable naming the Python interpreter that has the OpenTelemetry SDK and
/// confluent-kafka.
const PYTHON_ENV: &str = "CAUSEWAY_PYTHON";

/// The interpreter: `CAUSEWAY_PYTHON`, else `.venv/bin/python` at the repository root.
pub fn python() -> PathBuf {
    let python = std::env::var_os(PYTHON_ENV).map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"),
        PathBuf::from,
    );
    assert!(
        python.is_file(),
        "no Python interpreter at {} ({PYTHON_ENV} unset or wrong): run .ci/run to create the \
         .venv with the OpenTelemetry SDK and confluent-kafka",
        python.display()
    );
    python
}

/// A script in `tests/python/`.
pub fn python_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(name)
}

/// The `causeway` binary cargo built for these tests.
pub fn causeway_bin() -> PathBuf {
    // Benchmarks compare against another build (an older commit's binary) through this.
    match std::env::var_os("CAUSEWAY_BENCH_BIN") {
        Some(other) => PathBuf::from(other),
        None => PathBuf::from(env!("CARGO_BIN_EXE_causeway")),
    }
}

/// Peak resident set size (`VmHWM`) of a live process, in KiB, from `/proc/PID/status`.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    proc_status_kib(pid, "VmHWM:")
}

/// Current resident set size (`VmRSS`) of a live process, in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    proc_status_kib(pid, "VmRSS:")
}

fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with(field))?;
    line[field.len()..].split_whitespace().next()?.parse().ok()
}

/// Text a child process wrote on one stream, collected by a background thread.
#[derive(Clone, Default)]
pub struct CapturedOutput(Arc<Mutex<String>>);

impl CapturedOutput {
    /// Starts a thread that appends every line of `stream` to the returned buffer.
    pub fn drain(stream: impl Read + Send + 'static) -> Self {
        let captured = Self::default();
        let sink = captured.clone();
        thread::spawn(move || {
            let mut reader = BufReader::new(stream);
            let mut line = String::new();
            loop {
                line.clear();
                match reader.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => sink.0.lock().unwrap().push_str(&line),
                }
            }
        });
        captured
    }

    /// Everything captured so far.
    pub fn text(&self) -> String {
        self.0.lock().unwrap().clone()
    }
}

/// Removes ANSI colour sequences (`ESC [ ... m`), so log lines can be parsed as text.
fn strip_ansi(text: &str) -> String {
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for next in chars.by_ref() {
                if next.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}

/// Finds `key=ADDR` in a line (the value may be quoted) and parses the address.
fn address_field(line: &str, key: &str) -> Option<SocketAddr> {
    line.split_whitespace().find_map(|token| {
        let value = token.strip_prefix(key)?.strip_prefix('=')?;
        value.trim_matches(|c| c == '"' || c == ',').parse().ok()
    })
}

/// The three addresses of the collector's `listening` line, if `text` has that line.
fn parse_listening(text: &str) -> Option<(SocketAddr, SocketAddr, SocketAddr)> {
    strip_ansi(text).lines().find_map(|line| {
        if !line.contains(LISTENING_MARKER) {
            return None;
        }
        Some((
            address_field(line, GRPC_KEY)?,
            address_field(line, HTTP_KEY)?,
            address_field(line, METRICS_KEY)?,
        ))
    })
}

/// A running `causeway collector`, killed when dropped.
pub struct CollectorProcess {
    child: Child,
    stderr: CapturedOutput,
    stdout: CapturedOutput,
    /// Where the OTLP/gRPC receiver listens.
    pub grpc_addr: SocketAddr,
    /// Where the OTLP/HTTP receiver listens.
    pub http_addr: SocketAddr,
    /// Where the self-metrics endpoint (`GET /metrics`) listens.
    pub metrics_addr: SocketAddr,
}

impl CollectorProcess {
    /// Starts `causeway --db DB collector` on loopback port 0 for both receivers and the
    /// metrics endpoint (plus `extra_args`), and waits for its `listening` line on stderr.
    pub fn start(db: &Path, extra_args: &[&str]) -> Self {
        let mut args: Vec<&str> = vec![
            "collector",
            "--otlp-grpc",
            "127.0.0.1:0",
            "--otlp-http",
            "127.0.0.1:0",
            "--metrics",
            "127.0.0.1:0",
        ];
        args.extend_from_slice(extra_args);
        Self::start_with_args(db, &args)
    }

    /// Starts `causeway --db DB ARGS...` (the caller names the subcommand and every flag)
    /// and waits for the collector's `listening` line on stderr.
    pub fn start_with_args(db: &Path, args: &[&str]) -> Self {
        let mut child = Command::new(causeway_bin())
            .arg("--db")
            .arg(db)
            .args(args)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or("info".into()),
            )
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", causeway_bin().display()));
        let stderr = CapturedOutput::drain(child.stderr.take().expect("stderr is piped"));
        let stdout = CapturedOutput::drain(child.stdout.take().expect("stdout is piped"));
        let mut addresses = None;
        let mut exited = None;
        wait_until(STARTUP_TIMEOUT, || {
            addresses = parse_listening(&stderr.text());
            exited = child.try_wait().ok().flatten();
            addresses.is_some() || exited.is_some()
        });
        let Some((grpc_addr, http_addr, metrics_addr)) = addresses else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "collector did not print `listening otlp_grpc=.. otlp_http=.. metrics=..` \
                 within {STARTUP_TIMEOUT:?} (exit: {exited:?}); args {args:?}\nstderr so far:\n{}",
                stderr.text()
            );
        };
        Self {
            child,
            stderr,
            stdout,
            grpc_addr,
            http_addr,
            metrics_addr,
        }
    }

    /// The process id, for `/proc/PID/status` and signals.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `http://ADDR` of the OTLP/gRPC receiver.
    pub fn grpc_endpoint(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }

    /// `http://ADDR` of the OTLP/HTTP receiver (append `/v1/traces` for traces).
    pub fn http_endpoint(&self) -> String {
        format!("http://{}", self.http_addr)
    }

    /// `http://ADDR/metrics` of the self-metrics endpoint.
    pub fn metrics_url(&self) -> String {
        format!("http://{}/metrics", self.metrics_addr)
    }

    /// Everything the collector wrote on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.text()
    }

    /// Everything the collector wrote on stdout so far.
    pub fn stdout(&self) -> String {
        self.stdout.text()
    }

    /// Peak resident set size so far, in KiB (`None` once the process is gone).
    pub fn peak_rss_kib(&self) -> Option<u64> {
        peak_rss_kib(self.pid())
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends SIGTERM and waits (up to 30 s, then SIGKILL) for the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        send_signal(self.pid(), libc::SIGTERM);
        let mut status = None;
        if !wait_until(Duration::from_secs(30), || {
            status = self.child.try_wait().ok().flatten();
            status.is_some()
        }) {
            let _ = self.child.kill();
            panic!(
                "collector did not exit within 30 s of SIGTERM\nstderr:\n{}",
                self.stderr()
            );
        }
        status.expect("wait_until returned true only once the status was read")
    }

    /// Sends SIGKILL and reaps the process.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for CollectorProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sends `signal` to `pid` with the `kill` command (the workspace forbids unsafe code).
fn send_signal(pid: u32, signal: libc::c_int) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("cannot run kill");
    assert!(status.success(), "kill -{signal} {pid} failed: {status}");
}

/// The `tansu` broker binary: `TANSU` if set, else on PATH, else in `~/.cargo/bin`.
pub fn tansu_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("TANSU") {
        return PathBuf::from(path);
    }
    let on_path = std::env::var_os("PATH").into_iter().flat_map(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("tansu"))
            .collect::<Vec<_>>()
    });
    let in_cargo_home = std::env::var_os("HOME")
        .map(|home| PathBuf::from(home).join(".cargo/bin/tansu"))
        .into_iter();
    on_path
        .chain(in_cargo_home)
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "the tansu broker is not installed: run .ci/run, or \
                 `cargo install tansu --locked --features dynostore`"
            )
        })
}

/// A real Kafka-compatible broker (tansu, in-memory storage) on a free loopback port,
/// killed when dropped.
pub struct Broker {
    child: Child,
    stderr: CapturedOutput,
    port: u16,
}

impl Broker {
    /// Starts tansu and waits until a Kafka client can fetch its metadata.
    pub fn start() -> Self {
        let port = free_port();
        let url = format!("tcp://127.0.0.1:{port}");
        let mut child = Command::new(tansu_bin())
            .arg("broker")
            .args(["--listener-url", &url])
            .args(["--advertised-listener-url", &url])
            .args(["--storage-engine", "memory://tansu/"])
            .args(["--cluster-id", "causeway-e2e"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", tansu_bin().display()));
        let stderr = CapturedOutput::drain(child.stderr.take().expect("stderr is piped"));
        let mut broker = Self {
            child,
            stderr,
            port,
        };
        let consumer = broker.metadata_client();
        let mut last_error = String::new();
        let ready = wait_until(STARTUP_TIMEOUT, || {
            if let Ok(Some(status)) = broker.child.try_wait() {
                last_error = format!("tansu exited: {status}");
                return true;
            }
            match consumer.fetch_metadata(None, Duration::from_secs(1)) {
                Ok(metadata) if !metadata.brokers().is_empty() => true,
                Ok(_) => {
                    last_error = "metadata lists no broker".into();
                    false
                }
                Err(error) => {
                    last_error = error.to_string();
                    false
                }
            }
        });
        if !ready || matches!(broker.child.try_wait(), Ok(Some(_))) {
            panic!(
                "tansu on port {port} did not answer metadata within {STARTUP_TIMEOUT:?}: \
                 {last_error}\nstderr:\n{}",
                broker.stderr.text()
            );
        }
        broker
    }

    /// `127.0.0.1:PORT`, for `bootstrap.servers` or `--kafka`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Everything tansu wrote on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.text()
    }

    /// A client configuration with `bootstrap.servers` set to this broker.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", self.bootstrap());
        config
    }

    /// A producer configuration that sends one record per batch: tansu 0.6 counts batches,
    /// not records, in its high watermark, so offsets and lag stay exact.
    pub fn producer_config(&self) -> ClientConfig {
        let mut config = self.client_config();
        config.set("batch.num.messages", "1").set("linger.ms", "0");
        config
    }

    fn metadata_client(&self) -> BaseConsumer {
        self.client_config()
            .set("group.id", "causeway-e2e-metadata")
            .create()
            .expect("cannot create a Kafka metadata client")
    }

    /// Creates `name` with `partitions` partitions and waits until the metadata shows them.
    pub fn create_topic(&self, name: &str, partitions: i32) {
        let config = self.client_config();
        let topic = name.to_owned();
        // The admin API is async; run it on its own runtime in its own thread so this works
        // from plain tests and from inside a tokio test alike.
        let outcome = thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("cannot build a runtime for the admin client");
            runtime.block_on(async move {
                let admin: AdminClient<DefaultClientContext> =
                    config.create().expect("cannot create a Kafka admin client");
                let new_topic = NewTopic::new(&topic, partitions, TopicReplication::Fixed(1));
                let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
                admin
                    .create_topics([&new_topic], &options)
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|results| {
                        results
                            .into_iter()
                            .map(|result| result.map_err(|(t, code)| format!("{t}: {code}")))
                            .collect::<Result<Vec<_>, _>>()
                    })
            })
        })
        .join()
        .expect("admin thread panicked");
        if let Err(error) = outcome {
            panic!(
                "cannot create topic {name} on {}: {error}",
                self.bootstrap()
            );
        }
        let consumer = self.metadata_client();
        let expected = usize::try_from(partitions).unwrap_or(0);
        let visible = wait_until(Duration::from_secs(10), || {
            consumer
                .fetch_metadata(Some(name), Duration::from_secs(1))
                .is_ok_and(|metadata| {
                    metadata
                        .topics()
                        .iter()
                        .any(|t| t.name() == name && t.partitions().len() == expected)
                })
        });
        assert!(
            visible,
            "topic {name} with {partitions} partitions is not in the metadata of {}",
            self.bootstrap()
        );
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    // `benches/ingest.rs` includes this file; its check sets cfg(test) without a test
    // harness, which drops the tests and leaves this import unused there.
    #[allow(unused_imports)]
    use super::*;

    #[test]
    fn listening_line_is_parsed_with_or_without_log_decoration() {
        let cases: &[(&str, bool, &str)] = &[
            (
                "listening otlp_grpc=127.0.0.1:4317 otlp_http=127.0.0.1:4318 metrics=127.0.0.1:9464\n",
                true,
                "the bare contract line",
            ),
            (
                "2026-01-01T00:00:00Z  INFO causeway_collector: listening otlp_grpc=127.0.0.1:1 \
                 otlp_http=127.0.0.1:2 metrics=127.0.0.1:3\n",
                true,
                "a tracing line with a timestamp and target",
            ),
            (
                "\u{1b}[32m INFO\u{1b}[0m listening otlp_grpc=\"127.0.0.1:1\" \
                 otlp_http=\"127.0.0.1:2\" metrics=\"127.0.0.1:3\"\n",
                true,
                "coloured and quoted values",
            ),
            (
                "listening otlp_grpc=127.0.0.1:1 otlp_http=127.0.0.1:2\n",
                false,
                "the metrics address is missing",
            ),
            ("starting up\n", false, "no listening line yet"),
        ];
        for (text, found, reason) in cases {
            assert_eq!(parse_listening(text).is_some(), *found, "{reason}");
        }
    }

    #[test]
    fn wait_until_reports_timeout_and_success() {
        assert!(!wait_until(Duration::from_millis(50), || false));
        let mut calls = 0;
        assert!(wait_until(Duration::from_secs(5), || {
            calls += 1;
            calls == 3
        }));
    }

    #[test]
    fn broker_starts_and_creates_topics() {
        let broker = Broker::start();
        broker.create_topic("harness-check", 3);
        assert!(broker.bootstrap().starts_with("127.0.0.1:"));
    }
}
