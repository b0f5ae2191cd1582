//! Flows from the OpenTelemetry instrumentations services already run, not our crate:
//!
//! - golden OTLP fixtures of the shapes that cannot run here (Java agent, Go, .NET), each
//!   written from its project's own source and tests (`tests/fixtures/foreign/`), with the
//!   facts a correct reconstruction must find beside it (`*.expect.json`);
//! - spans captured from the real Python (`opentelemetry-instrumentation-confluent-kafka`)
//!   and Node (`@opentelemetry/instrumentation-kafkajs`) instrumentations over tansu
//!   (`tests/fixtures/real/`), checked against what the programs themselves reported;
//! - the same Python and Node services run live over tansu into the real collector, and a
//!   mixed chain: Python → a Rust service on `causeway-instrumentation` → Node.
//!
//! Every fixture is sent to the real collector over OTLP/HTTP JSON with its times moved to
//! now, and read back with the real `causeway flows` and `causeway flow`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

use crate::flow::{causeway, json_of, now_ns};
use crate::harness::{Broker, CollectorProcess, python, temp_dir};

/// Where the fixtures live.
fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// Moves every time in an OTLP/JSON export so that its last end is a second ago.
fn shift_to_now(export: &mut Value) {
    fn times(value: &mut Value, visit: &mut dyn FnMut(&mut Value)) {
        match value {
            Value::Object(map) => {
                for (key, inner) in map.iter_mut() {
                    if key.ends_with("UnixNano") {
                        visit(inner);
                    } else {
                        times(inner, visit);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|item| times(item, visit)),
            _ => {}
        }
    }
    let mut latest = 0_i64;
    times(export, &mut |v| {
        latest = latest.max(v.as_str().and_then(|t| t.parse().ok()).unwrap_or(0));
    });
    let shift = now_ns() - 1_000_000_000 - latest;
    times(export, &mut |v| {
        if let Some(t) = v.as_str().and_then(|t| t.parse::<i64>().ok()) {
            *v = Value::String((t + shift).to_string());
        }
    });
}

/// Posts one OTLP/JSON export file to the collector, its times moved to now.
async fn post_fixture(collector: &CollectorProcess, path: &Path) {
    let mut export = read_json(path);
    shift_to_now(&mut export);
    let response = reqwest::Client::new()
        .post(format!("{}/v1/traces", collector.http_endpoint()))
        .header("content-type", "application/json")
        .body(export.to_string())
        .send()
        .await
        .expect("the collector answers");
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    assert!(
        status.is_success(),
        "{}: HTTP {status}: {body}",
        path.display()
    );
    assert!(
        !body.contains("rejected"),
        "{}: spans were rejected: {body}",
        path.display()
    );
}

/// Every listed flow (`causeway flows --format json`), each with its full document
/// (`causeway flow ID --format json`).
fn listed_flows(db: &Path) -> Vec<(Value, Value)> {
    let list = json_of(&causeway(
        db,
        &[
            "flows", "--format", "json", "--limit", "500", "--since", "1h",
        ],
    ));
    list["flows"]
        .as_array()
        .expect("flows")
        .iter()
        .map(|summary| {
            let id = summary["correlation_id"].as_str().expect("an id");
            let flow = json_of(&causeway(db, &["flow", id, "--format", "json"]));
            (summary.clone(), flow)
        })
        .collect()
}

/// The hops of event `event` in `flow`.
fn hops_of(flow: &Value, event: usize) -> Vec<&Value> {
    flow["hops"]
        .as_array()
        .expect("hops")
        .iter()
        .filter(|hop| hop["event"] == event)
        .collect()
}

fn anomaly_kinds(flow: &Value) -> BTreeSet<String> {
    flow["anomalies"]
        .as_array()
        .expect("anomalies")
        .iter()
        .filter_map(|a| a["kind"].as_str().map(str::to_owned))
        .collect()
}

/// The hop outcome an expected consumer outcome names.
fn hop_outcome(expected: &str) -> &'static str {
    match expected {
        "processed" => "processed",
        "error" => "failed",
        "received" => "received",
        other => panic!("unknown expected outcome {other}"),
    }
}

/// Sends one foreign fixture to a fresh collector and checks every fact of its
/// `.expect.json`: each message is an event of a listed flow (at its partition and offset
/// where the spans carry them), from its producer, with a hop per consumer (a group where
/// the instrumentation names one, else the service) and the right outcome; the services of
/// one order share a flow wherever the hops are trace-connected; correlation IDs list as
/// such; nothing else is reported as wrong.
async fn check_foreign(name: &str) {
    let dir = temp_dir();
    let db = dir.path().join("foreign.db");
    let collector = CollectorProcess::start(&db, &[]);
    let base = fixtures().join("foreign");
    post_fixture(&collector, &base.join(format!("{name}.json"))).await;
    let expect = read_json(&base.join(format!("{name}.expect.json")));
    let flows = listed_flows(&db);
    assert!(!flows.is_empty(), "{name}: no flows listed");

    // Correlation IDs: listed as themselves, or every flow is named by its root trace.
    let expected_ids: BTreeSet<&str> = expect["correlation_ids"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let listed_ids: BTreeSet<&str> = flows
        .iter()
        .filter(|(summary, _)| summary["root"] == false)
        .filter_map(|(summary, _)| summary["correlation_id"].as_str())
        .collect();
    assert_eq!(listed_ids, expected_ids, "{name}: correlation IDs listed");

    // Each message claims one event of one listed flow.
    let mut claimed: BTreeSet<(usize, usize)> = BTreeSet::new();
    let mut flow_of_message: Vec<usize> = Vec::new();
    for message in expect["messages"].as_array().unwrap() {
        let topic = message["topic"].as_str().unwrap();
        let found = flows.iter().enumerate().find_map(|(f, (_, flow))| {
            flow["events"]
                .as_array()
                .unwrap()
                .iter()
                .enumerate()
                .find(|(e, event)| {
                    !claimed.contains(&(f, *e))
                        && event["topic"] == topic
                        && event["producer"] == message["producer_service"]
                        && (message["partition"].is_null()
                            || event["partition"] == message["partition"])
                        && (message["offset"].is_null() || event["offset"] == message["offset"])
                        && (message["key"].is_null()
                            || event["message_key"].is_null()
                            || event["message_key"] == message["key"])
                })
                .map(|(e, _)| (f, e))
        });
        let (f, e) = found.unwrap_or_else(|| {
            panic!("{name}: no listed flow has the message {message:#} as an event")
        });
        claimed.insert((f, e));
        flow_of_message.push(f);
        let flow = &flows[f].1;
        let hops = hops_of(flow, e);
        for consumer in message["consumers"].as_array().unwrap() {
            let hop = hops
                .iter()
                .find(|hop| hop["service"] == consumer["service"])
                .unwrap_or_else(|| {
                    panic!("{name}: {topic} message has no hop in {consumer}: {hops:#?}")
                });
            match consumer["group"].as_str() {
                Some(group) => {
                    assert_eq!(hop["consumer_group"], group, "{name}: group of {hop}");
                    assert_eq!(hop["consumer_kind"], "group", "{name}: {hop}");
                }
                None => assert_eq!(
                    hop["consumer_kind"], "service",
                    "{name}: no group recorded, so the hop is per service: {hop}"
                ),
            }
            let outcome = hop_outcome(consumer["outcome"].as_str().unwrap());
            assert_eq!(hop["outcome"], outcome, "{name}: outcome of {hop}");
        }
    }

    // An order's hops that trace context joins are one flow: every connected relay puts
    // the invoice in the flow of its order.
    let relay_connected = expect["trace_connected"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|hop| hop["kind"] == "relay")
        .all(|hop| hop["connected"] == true);
    let orders = expect["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["topic"] == "orders")
        .count();
    if relay_connected {
        assert_eq!(
            flows.len(),
            orders,
            "{name}: one flow per order: {:#?}",
            flows.iter().map(|(s, _)| s).collect::<Vec<_>>()
        );
    }

    // Nothing is reported as wrong but what the shape says.
    let breaks_expected = expect["trace_connected"]
        .as_array()
        .unwrap()
        .iter()
        .any(|hop| hop["kind"] == "delivery" && hop["connected"] == false);
    let errors_expected = expect["messages"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|m| m["consumers"].as_array().unwrap())
        .any(|c| c["outcome"] == "error");
    for (summary, flow) in &flows {
        for kind in anomaly_kinds(flow) {
            let allowed = (kind == "propagation_break" && breaks_expected)
                || (kind == "error" && errors_expected);
            assert!(
                allowed,
                "{name}: unexpected {kind} in {}: {:#}",
                summary["correlation_id"], flow["anomalies"]
            );
        }
    }
    drop(collector);
}

macro_rules! foreign_fixture_tests {
    ($($test:ident => $name:literal),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                check_foreign($name).await;
            }
        )*
    };
}

foreign_fixture_tests! {
    java_agent_default => "java-agent-default",
    java_agent_default_with_captured_correlation_header => "java-agent-default-correlation",
    java_agent_semconv_1_43_with_receive_telemetry => "java-agent-v143-receive",
    java_agent_old_semconv_with_receive_telemetry => "java-agent-old-receive",
    java_agent_dual_emit => "java-agent-dup",
    java_agent_1_20 => "java-agent-old-1x",
    spring_kafka_batch_listener => "spring-kafka-batch",
    go_kotel_default => "go-kotel-default",
    go_kotel_link_spans => "go-kotel-linkspans",
    go_otelsarama => "go-otelsarama",
    go_without_a_propagator => "go-no-propagator",
    dotnet_confluent_kafka_contrib => "dotnet-contrib",
}

/// What one Python or Node run reported doing, checked against the flows read back:
/// every order is listed under its correlation ID; its flow shows every service that
/// handled it, each message an event at the position the client reported, each
/// consumption a per-service hop with the outcome the program saw; failures are errors;
/// clean orders carry no anomaly.
fn check_run(db: &Path, run: &Value, batch: bool) {
    let ids: BTreeSet<&str> = run["correlation_ids"]
        .as_array()
        .expect("correlation_ids")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(!ids.is_empty(), "the run reported no orders: {run:#}");
    let flows = listed_flows(db);
    let listed: BTreeSet<&str> = flows
        .iter()
        .filter_map(|(summary, _)| summary["correlation_id"].as_str())
        .collect();
    for id in &ids {
        assert!(
            listed.contains(id),
            "{id} is not listed by flows: {listed:?}"
        );
    }
    if !batch {
        check_where(db, run);
    }
    // What each order went through, per service, as the programs reported it.
    let mut handled: BTreeMap<&str, Vec<(&str, &Value)>> = BTreeMap::new();
    for service in run["services"].as_array().expect("services") {
        let name = service["service"].as_str().unwrap();
        for message in service["messages"].as_array().unwrap() {
            if let Some(id) = message["correlation_id"].as_str() {
                handled.entry(id).or_default().push((name, message));
            }
        }
    }
    for (id, steps) in handled {
        let flow = json_of(&causeway(db, &["flow", id, "--format", "json"]));
        let services: BTreeSet<&str> = flow["services"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let events = flow["events"].as_array().unwrap();
        let mut poison = false;
        for (service, message) in steps {
            assert!(
                services.contains(service),
                "{id}: {service} missing from {services:?}"
            );
            poison |= message["poison"] == true;
            if let Some(produced) = message["produced"].as_object() {
                let event = events
                    .iter()
                    .find(|e| e["topic"] == produced["topic"] && e["producer"] == service);
                assert!(
                    event.is_some(),
                    "{id}: {service}'s send to {} is no event",
                    produced["topic"]
                );
            }
            let Some(consumed) = message["consumed"].as_object() else {
                continue;
            };
            let (index, event) = events
                .iter()
                .enumerate()
                .find(|(_, e)| {
                    let at_position = e["partition"] == consumed["partition"]
                        && e["offset"] == consumed["offset"];
                    // A batch consumer's one process span records no position per message.
                    let batch_event = batch && e["offset"].is_null();
                    e["topic"] == consumed["topic"] && (at_position || batch_event)
                })
                .unwrap_or_else(|| {
                    panic!("{id}: no event at the position {service} consumed {consumed:?}: {events:#?}")
                });
            let hop = hops_of(&flow, index)
                .into_iter()
                .find(|hop| hop["service"] == service)
                .unwrap_or_else(|| panic!("{id}: {service} has no hop on {event}"));
            assert_eq!(
                hop["consumer_kind"], "service",
                "{id}: the spans name no group: {hop}"
            );
            if batch {
                continue;
            }
            let expected = match message["outcome"].as_str().unwrap() {
                "relayed" | "consumed" => "processed",
                "failed" => "failed",
                "dead-lettered" => "dead_lettered",
                other => panic!("{id}: unknown outcome {other}"),
            };
            assert_eq!(hop["outcome"], expected, "{id}: {service}: {hop}");
        }
        let kinds = anomaly_kinds(&flow);
        // A batch consumer records a failure on the span shared by the whole batch, not on
        // the message's own: it cannot be told which order failed.
        if poison && !batch {
            assert!(
                kinds.contains("error"),
                "{id}: the poison order's failure: {kinds:?}"
            );
            assert_eq!(flow["status"], "error", "{id}");
        } else if !batch {
            assert!(
                kinds.is_empty(),
                "{id}: a clean order has anomalies: {:#}",
                flow["anomalies"]
            );
        }
    }
}

/// `flows --where` on the instrumentation's own attributes finds exactly the order whose
/// message carries the value: Python's consumer spans name a message
/// `<topic>.<partition>.<offset>` (and carry no correlation ID, so the order is found
/// through the flow they join); kafkajs spans carry the message key.
fn check_where(db: &Path, run: &Value) {
    let mut checked = 0;
    for service in run["services"].as_array().expect("services") {
        for message in service["messages"].as_array().expect("messages") {
            let (Some(id), Some(consumed)) = (
                message["correlation_id"].as_str(),
                message["consumed"].as_object(),
            ) else {
                continue;
            };
            let filter = match run["language"].as_str() {
                Some("python") => format!(
                    "messaging.message.id={}.{}.{}",
                    consumed["topic"].as_str().expect("topic"),
                    consumed["partition"],
                    consumed["offset"]
                ),
                Some("node") => format!(
                    "messaging.kafka.message.key={}",
                    message["key"].as_str().expect("key")
                ),
                _ => return,
            };
            let list = json_of(&causeway(
                db,
                &[
                    "flows", "--format", "json", "--since", "1h", "--where", &filter,
                ],
            ));
            let found: Vec<&str> = list["flows"]
                .as_array()
                .expect("flows")
                .iter()
                .filter_map(|flow| flow["correlation_id"].as_str())
                .collect();
            assert_eq!(found, [id], "flows --where {filter}");
            checked += 1;
            if checked == 3 {
                return;
            }
        }
    }
    assert!(checked > 0, "no consumed message to search for: {run:#}");
}

/// Sends one captured real fixture and checks it against its program's own report.
async fn check_captured(name: &str, batch: bool) {
    let dir = temp_dir();
    let db = dir.path().join("captured.db");
    let collector = CollectorProcess::start(&db, &[]);
    let base = fixtures().join("real");
    post_fixture(&collector, &base.join(format!("{name}.json"))).await;
    check_run(
        &db,
        &read_json(&base.join(format!("{name}.run.json"))),
        batch,
    );
    drop(collector);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captured_python_confluent_kafka_chain() {
    check_captured("python-confluent-chain", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captured_python_confluent_kafka_poison_order() {
    check_captured("python-confluent-poison", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captured_python_confluent_kafka_batch_consumers() {
    check_captured("python-confluent-batch", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captured_node_kafkajs_chain() {
    check_captured("node-kafkajs-chain", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captured_node_kafkajs_poison_order() {
    check_captured("node-kafkajs-poison", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captured_node_kafkajs_each_batch() {
    check_captured("node-kafkajs-batch", true).await;
}

/// Environment variable naming the Node.js binary.
const NODE_ENV: &str = "CAUSEWAY_NODE";

fn node() -> PathBuf {
    let node = std::env::var_os(NODE_ENV).map_or_else(|| PathBuf::from("node"), PathBuf::from);
    let modules = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node/node_modules/kafkajs");
    assert!(
        modules.is_dir(),
        "tests/node/node_modules is not installed: run .ci/run (npm ci in tests/node)"
    );
    node
}

/// Runs one `kafka_chain` role (`program` is Python or Node) and returns its report.
pub(crate) fn run_chain(program: &Path, script: &str, args: &[&str]) -> Value {
    let output: Output = Command::new(program)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join(script))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "{script} printed no JSON ({e}); stderr:\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    assert!(
        output.status.success() && report["ok"] == true,
        "{script} {args:?} failed: {report:#}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    report
}

/// The arguments of a `kafka_chain` run of `count` orders with order `poison` poisoned and
/// dead-lettered to `orders.dlq`, exporting to `endpoint`, in groups named after `run_id`.
pub(crate) fn chain_args(
    bootstrap: &str,
    endpoint: &str,
    run_id: &str,
    count: u32,
    poison: u32,
) -> Vec<String> {
    [
        "chain",
        "--bootstrap",
        bootstrap,
        "--otlp-endpoint",
        endpoint,
        "--run-id",
        run_id,
        "--count",
        &count.to_string(),
        "--poison",
        &poison.to_string(),
        "--dead-letter-topic",
        "orders.dlq",
        "--billing-group",
        &format!("billing-{run_id}"),
        "--mailer-group",
        &format!("mailer-{run_id}"),
        "--timeout",
        "90",
    ]
    .iter()
    .map(|arg| (*arg).to_owned())
    .collect()
}

/// A three-service chain of one language over tansu into the real collector, one poison
/// order among four.
async fn live_chain(program: &Path, script: &str, run_id: &str) {
    let dir = temp_dir();
    let db = dir.path().join("live.db");
    let broker = Broker::start();
    let collector = CollectorProcess::start(&db, &[]);
    let endpoint = format!("{}/v1/traces", collector.http_endpoint());
    let args = chain_args(&broker.bootstrap(), &endpoint, run_id, 4, 3);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let report = run_chain(program, script, &args);
    check_run(&db, &report, false);
    drop(collector);
    drop(broker);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_python_confluent_kafka_chain() {
    live_chain(&python(), "tests/python/kafka_chain.py", "py").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_node_kafkajs_chain() {
    live_chain(&node(), "tests/node/kafka_chain.js", "js").await;
}

/// Python produces, a Rust service on `causeway-instrumentation` relays, Node consumes:
/// one flow per order across three instrumentations.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_mixed_chain_python_rust_node() {
    let dir = temp_dir();
    let db = dir.path().join("mixed.db");
    let broker = Broker::start();
    broker.create_topic("mx-orders", 1);
    broker.create_topic("mx-invoices", 1);
    let collector = CollectorProcess::start(&db, &[]);
    let endpoint = format!("{}/v1/traces", collector.http_endpoint());
    let bootstrap = broker.bootstrap();
    let count = 3;
    let produced = run_chain(
        &python(),
        "tests/python/kafka_chain.py",
        &[
            "produce",
            "--bootstrap",
            &bootstrap,
            "--otlp-endpoint",
            &endpoint,
            "--run-id",
            "mx",
            "--topic",
            "mx-orders",
            "--count",
            &count.to_string(),
            "--correlation-in",
            "both",
        ],
    );
    crate::interop_relay::relay(&broker, &collector, "mx-orders", "mx-invoices", count).await;
    let consumed = run_chain(
        &node(),
        "tests/node/kafka_chain.js",
        &[
            "consume",
            "--bootstrap",
            &bootstrap,
            "--otlp-endpoint",
            &endpoint,
            "--topic",
            "mx-invoices",
            "--group",
            "mx-mailer",
            "--service",
            "mailer-service",
            "--count",
            &count.to_string(),
            "--timeout",
            "60",
        ],
    );
    let ids: Vec<&str> = produced["correlation_ids"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(ids.len(), count);
    // The relay's spans are exported by our crate's pipeline: wait until they are stored.
    let ready = crate::harness::wait_until(Duration::from_secs(30), || {
        ids.iter().all(|id| {
            let output = causeway(&db, &["flow", id, "--format", "json"]);
            output.status.success()
                && serde_json::from_slice::<Value>(&output.stdout)
                    .map(|flow| flow["services"].as_array().is_some_and(|s| s.len() == 3))
                    .unwrap_or(false)
        })
    });
    for id in &ids {
        let flow = json_of(&causeway(&db, &["flow", id, "--format", "json"]));
        assert!(ready, "{id} never showed three services: {flow:#}");
        let services: Vec<&str> = flow["services"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(
            services,
            ["billing-service", "mailer-service", "orders-service"],
            "{id}"
        );
        let hops = flow["hops"].as_array().unwrap();
        let billing = hops
            .iter()
            .find(|h| h["service"] == "billing-service")
            .expect("billing hop");
        assert_eq!(
            billing["consumer_kind"], "group",
            "our crate names its group: {billing}"
        );
        assert_eq!(billing["outcome"], "processed");
        let mailer = hops
            .iter()
            .find(|h| h["service"] == "mailer-service")
            .expect("mailer hop");
        assert_eq!(
            mailer["consumer_kind"], "service",
            "kafkajs names no group: {mailer}"
        );
        assert_eq!(mailer["outcome"], "processed");
        assert!(
            anomaly_kinds(&flow).is_empty(),
            "{id}: {:#}",
            flow["anomalies"]
        );
        let edges: BTreeSet<&str> = flow["edges"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["kind"].as_str())
            .collect();
        assert!(
            !edges.contains("message") && !edges.contains("bridge"),
            "every hop is trace-connected: {edges:?}"
        );
    }
    let delivered: Vec<&str> = consumed["services"][0]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["correlation_id"].as_str())
        .collect();
    assert_eq!(
        delivered.iter().copied().collect::<BTreeSet<_>>(),
        ids.iter().copied().collect::<BTreeSet<_>>(),
        "Node received every order with its correlation ID"
    );
    drop(collector);
    drop(broker);
}

/// A collector told to read only causeway's own attribute stores no correlation for spans
/// that carry theirs in baggage (`correlation.id`): `[flows] correlation_keys` decides.
/// A reader can still open such a flow with `--correlation-key correlation.id`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn correlation_keys_are_configured_and_readers_can_add_one() {
    let dir = temp_dir();
    let db = dir.path().join("keys.db");
    let config = dir.path().join("causeway.toml");
    std::fs::write(
        &config,
        "[flows]\ncorrelation_keys = [\"messaging.message.conversation_id\"]\n",
    )
    .unwrap();
    let collector =
        CollectorProcess::start(&db, &["--config", config.to_str().expect("utf-8 path")]);
    post_fixture(
        &collector,
        &fixtures().join("real/python-confluent-chain.json"),
    )
    .await;
    let listed = listed_flows(&db);
    assert!(
        listed.iter().all(|(summary, _)| summary["root"] == true),
        "no correlation ID was read: {:#?}",
        listed.iter().map(|(s, _)| s).collect::<Vec<_>>()
    );
    let without = causeway(&db, &["flow", "ord-fx1-2", "--format", "json"]);
    assert!(
        !without.status.success(),
        "ord-fx1-2 is unknown without the key"
    );
    let flow = json_of(&causeway(
        &db,
        &[
            "flow",
            "ord-fx1-2",
            "--format",
            "json",
            "--correlation-key",
            "correlation.id",
        ],
    ));
    assert_eq!(flow["correlation_ids"], serde_json::json!(["ord-fx1-2"]));
    assert_eq!(
        flow["services"],
        serde_json::json!(["billing-service", "mailer-service", "orders-service"])
    );
    drop(collector);
}
