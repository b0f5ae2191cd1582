//! Alert hooks delivered to a third-party HTTP server: Python's `http.server`
//! (`tests/python/webhook_receiver.py`), which checks each Alertmanager v4 webhook's HMAC
//! signature with Python's `hmac` module and records what it got. The demo's flow alerts
//! (dead letter, incomplete) and its lag alert reach it signed, firing then resolved; a
//! hook signing with another secret is refused by it; and a PostgreSQL collector fed by the
//! Python instrumentation's spans raises a dead-letter flow alert that reaches it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use causeway_collector::alerting::delivery::SIGNATURE_HEADER;
use causeway_collector::alerting::hook::deliver;
use causeway_collector::alerting::hook_config::RawHook;
use causeway_conventions::alert::{annotation, label};
use serde_json::Value;

use crate::demo_alerts::{LAG_RULE, demo, demo_config, poisoned_order};
use crate::harness::{Broker, CollectorProcess, python, python_script, temp_dir, wait_until};
use crate::hooks::{SECRET, hook, payload_for_tests};
use crate::interop::{chain_args, run_chain};
use crate::postgres::Schema;

/// The Python receiver, stopped when dropped.
struct PythonReceiver {
    child: Child,
    url: String,
    log: PathBuf,
}

impl PythonReceiver {
    /// Starts the receiver checking signatures with `secret`; it logs to `dir`.
    fn start(dir: &Path, secret: &str) -> PythonReceiver {
        let log = dir.join("webhooks.jsonl");
        let mut child = Command::new(python())
            .arg(python_script("webhook_receiver.py"))
            .arg("--out")
            .arg(&log)
            .args(["--secret", secret, "--signature-header", SIGNATURE_HEADER])
            .stdout(Stdio::piped())
            .spawn()
            .expect("the Python webhook receiver starts");
        // The first line says where it listens, once it does (a failed start closes stdout).
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let ready: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("the receiver did not start ({e}): {line:?}"));
        PythonReceiver {
            child,
            url: ready["url"].as_str().unwrap().to_owned(),
            log,
        }
    }

    /// Every request it recorded, in arrival order.
    fn received(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }
}

impl Drop for PythonReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_alerts_reach_a_python_http_server_signed_firing_then_resolved() {
    let dir = temp_dir();
    let receiver = PythonReceiver::start(dir.path(), SECRET);
    let db = dir.path().join("demo.db");
    let config = demo_config(dir.path(), &receiver.url);
    let summary = demo(&db, &config, &[], "20s").await;
    let poisoned = poisoned_order(&summary);

    // The demo waits for its hooks before it exits, so everything has arrived.
    let received = receiver.received();
    let mut statuses: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for request in &received {
        assert_eq!(
            request["signature_valid"], true,
            "Python's hmac accepts the signature: {request}"
        );
        assert_eq!(request["content_type"], "application/json", "{request}");
        let body = &request["payload"];
        assert_eq!(body["version"], "4", "{body}");
        assert_eq!(body["receiver"], "oncall", "{body}");
        let name = body["groupLabels"][label::ALERT_NAME]
            .as_str()
            .unwrap()
            .to_owned();
        let status = body["status"].as_str().unwrap().to_owned();
        assert_eq!(body["alerts"][0]["status"], status.as_str(), "{body}");
        assert_eq!(
            body["alerts"][0]["labels"][label::ALERT_NAME],
            name.as_str()
        );
        statuses.entry(name).or_default().push(status);
    }
    let expected: BTreeMap<String, Vec<String>> = ["flow-dead-letter", "flow-incomplete", LAG_RULE]
        .into_iter()
        .map(|name| (name.to_owned(), vec!["firing".into(), "resolved".into()]))
        .collect();
    assert_eq!(
        statuses, expected,
        "each alert fired once then resolved once, and nothing else arrived"
    );

    let firing = |name: &str| -> &Value {
        &received
            .iter()
            .find(|r| {
                r["payload"]["groupLabels"][label::ALERT_NAME] == name
                    && r["payload"]["status"] == "firing"
            })
            .unwrap()["payload"]
    };
    // The dead letter names the poisoned order, its count and the command that opens it.
    let dead = firing("flow-dead-letter");
    let labels = &dead["commonLabels"];
    assert_eq!(labels[label::FLOW_KIND], "dead_letter", "{dead}");
    assert_eq!(labels[label::SEVERITY], "warning", "{dead}");
    assert!(labels[label::TOPIC].is_string(), "{dead}");
    let notes = &dead["commonAnnotations"];
    assert_eq!(notes[annotation::COUNT], "1", "{dead}");
    assert_eq!(notes[annotation::FLOW_IDS], poisoned.as_str(), "{dead}");
    let command = notes[annotation::FLOW_COMMANDS].as_str().unwrap();
    assert!(
        command.starts_with("causeway --db ")
            && command.contains("demo.db")
            && command.ends_with(&format!(" flow {poisoned}")),
        "{dead}"
    );
    // The slowed group is late on some events: counted, named, each with its command.
    let late = firing("flow-incomplete");
    assert_eq!(late["commonLabels"][label::FLOW_KIND], "incomplete_after");
    assert_eq!(late["commonLabels"][label::CONSUMER_GROUP], "shipping");
    let notes = &late["commonAnnotations"];
    let count: u64 = notes[annotation::COUNT].as_str().unwrap().parse().unwrap();
    assert!(count >= 1, "{late}");
    let ids: Vec<&str> = notes[annotation::FLOW_IDS]
        .as_str()
        .unwrap()
        .split(',')
        .collect();
    let commands: Vec<&str> = notes[annotation::FLOW_COMMANDS]
        .as_str()
        .unwrap()
        .lines()
        .collect();
    assert_eq!(ids.len(), commands.len(), "{late}");
    for (id, command) in ids.iter().zip(&commands) {
        assert!(id.starts_with("ord-"), "{late}");
        assert!(command.ends_with(&format!(" flow {id}")), "{command}");
    }
    // The lag alert names the slowed group too.
    let lag = firing(LAG_RULE);
    assert_eq!(
        lag["commonLabels"][label::CONSUMER_GROUP],
        "shipping",
        "{lag}"
    );
    // Resolved payloads end their alert.
    for request in &received {
        let body = &request["payload"];
        if body["status"] == "resolved" {
            assert_ne!(
                body["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z",
                "{body}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_http_server_refuses_a_webhook_signed_with_another_secret() {
    let dir = temp_dir();
    let receiver = PythonReceiver::start(dir.path(), "not-the-hook-secret");
    let webhook = hook(RawHook {
        name: Some("oncall".into()),
        kind: Some("webhook".into()),
        url: Some(receiver.url.clone()),
        secret: Some(SECRET.into()),
        ..RawHook::default()
    });
    let error = deliver(&webhook, &payload_for_tests()).await.unwrap_err();
    assert!(error.to_string().contains("401"), "{error}");
    let received = receiver.received();
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(
        received[0]["signature_valid"], false,
        "Python's hmac finds the signature wrong: {}",
        received[0]
    );
    assert!(
        received[0]["signature"]
            .as_str()
            .unwrap()
            .starts_with("sha256="),
        "the hook did sign it: {}",
        received[0]
    );
    assert_eq!(received[0]["payload"]["status"], "firing");
}

/// Third-party spans on a PostgreSQL collector: three Python services instrumented only by
/// the standard confluent-kafka instrumentation run an order chain over tansu, and the
/// billing service dead-letters the poisoned order. The collector, writing to PostgreSQL,
/// raises the built-in dead-letter flow alert, and the Python receiver gets it signed,
/// naming that order and a command that opens it on the same database (no password).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_spans_on_postgres_raise_a_flow_alert_at_a_python_http_server() {
    let dir = temp_dir();
    let receiver = PythonReceiver::start(dir.path(), SECRET);
    let config = dir.path().join("collector.toml");
    std::fs::write(
        &config,
        format!(
            "[flows]\ninterval = \"1s\"\n\n[[lag.hooks]]\nname = \"oncall\"\nkind = \"webhook\"\n\
             url = \"{}\"\nsecret = \"{SECRET}\"\n",
            receiver.url
        ),
    )
    .unwrap();
    let schema = Schema::create().await;
    let broker = Broker::start();
    let collector = CollectorProcess::start(
        Path::new(&schema.url),
        &[
            "--config",
            config.to_str().unwrap(),
            "--kafka",
            &broker.bootstrap(),
        ],
    );
    let endpoint = format!("{}/v1/traces", collector.http_endpoint());
    let args = chain_args(&broker.bootstrap(), &endpoint, "pgdl", 3, 2);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let report = run_chain(&python(), "tests/python/kafka_chain.py", &args);
    let poisoned = "ord-pgdl-2";
    assert!(
        report["correlation_ids"]
            .as_array()
            .unwrap()
            .iter()
            .any(|id| id == poisoned),
        "the chain handled {poisoned}: {report:#}"
    );

    let dead_letter = |request: &Value| {
        request["payload"]["groupLabels"][label::ALERT_NAME] == "flow-dead-letter"
            && request["payload"]["status"] == "firing"
    };
    let arrived = wait_until(Duration::from_secs(60), || {
        receiver.received().iter().any(dead_letter)
    });
    assert!(
        arrived,
        "no dead-letter alert reached the receiver: {:?}\ncollector stderr:\n{}",
        receiver.received(),
        collector.stderr()
    );
    let received = receiver.received();
    let request = received.iter().find(|r| dead_letter(r)).unwrap();
    assert_eq!(request["signature_valid"], true, "{request}");
    let body = &request["payload"];
    assert_eq!(
        body["commonLabels"][label::FLOW_KIND],
        "dead_letter",
        "{body}"
    );
    // The Python instrumentation records no consumer group: the alert names the service
    // that gave up, and the topic it read.
    assert_eq!(
        body["commonLabels"][label::SERVICE],
        "billing-service",
        "{body}"
    );
    assert_eq!(body["commonLabels"][label::TOPIC], "orders", "{body}");
    let notes = &body["commonAnnotations"];
    assert_eq!(notes[annotation::FLOW_IDS], poisoned, "{body}");
    let command = notes[annotation::FLOW_COMMANDS].as_str().unwrap();
    assert!(
        command.starts_with("causeway --db ")
            && command.contains("postgres://")
            && command.ends_with(&format!(" flow {poisoned}")),
        "{command}"
    );
    assert!(!command.contains(":causeway@"), "no password: {command}");
    assert!(
        received
            .iter()
            .all(|r| r["payload"]["groupLabels"][label::ALERT_NAME] == "flow-dead-letter"),
        "only the dead letter fired on clean orders: {received:?}"
    );
    drop(collector);
    drop(broker);
    schema.drop().await;
}
