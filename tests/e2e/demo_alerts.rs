//! Flow alerts from the real demo binary, over the embedded bus and over a real broker
//! (tansu): the injected poison message raises a dead-letter alert naming its order, the
//! slowed group an `incomplete_after` alert, both delivered to an HTTP receiver in this test
//! with a valid HMAC signature (checked by openssl) and then resolved, and nothing else
//! fires. A run without faults raises no flow alert and counts no fault. And the collector
//! refuses a bad flow rule, naming it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use causeway_collector::alerting::delivery::SIGNATURE_HEADER;
use serde_json::Value;

use crate::demo::{FAST_SCHEDULE, run_causeway};
use crate::harness::{Broker, causeway_bin, temp_dir};
use crate::hooks::{Receiver, SECRET, openssl_signature};

/// The demo's lag rule (its slow consumer is also a lag alert).
pub(crate) const LAG_RULE: &str = "demo-consumer-lag";

pub(crate) fn hook_section(url: &str) -> String {
    format!(
        "\n[[hooks]]\nname = \"oncall\"\nkind = \"webhook\"\nurl = \"{url}\"\n\
         secret = \"{SECRET}\"\nrepeat_interval = \"1h\"\n"
    )
}

/// Writes, in `dir`, a demo config with the fast schedule and one webhook to `url`, and
/// returns its path.
pub(crate) fn demo_config(dir: &Path, url: &str) -> std::path::PathBuf {
    let config = dir.join("demo.toml");
    std::fs::write(&config, format!("{FAST_SCHEDULE}{}", hook_section(url))).unwrap();
    config
}

/// Runs the headless demo (on a blocking thread, the receiver runs on this runtime) and
/// returns its JSON summary.
pub(crate) async fn demo(db: &Path, config: &Path, extra: &[&str], duration: &str) -> Value {
    let mut args: Vec<String> = [
        "--db",
        db.to_str().unwrap(),
        "demo",
        "--headless",
        "--duration",
        duration,
        "--config",
        config.to_str().unwrap(),
        "--format",
        "json",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let output = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_causeway(&args, Duration::from_secs(150))
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "demo failed:\n{stdout}\n{stderr}");
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("summary is not json ({e}):\n{stdout}\nstderr:\n{stderr}"))
}

/// The correlation ID of the order the demo poisoned, from its summary.
pub(crate) fn poisoned_order(summary: &Value) -> String {
    summary["faults"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "poison-message")
        .and_then(|f| f["correlation_id"].as_str())
        .unwrap()
        .to_owned()
}

/// Checks the flow alerts of a faulty run in the summary and at the receiver.
fn assert_flow_alerts(summary: &Value, receiver: &Receiver) {
    let poisoned = poisoned_order(summary);
    let flow_alerts = summary["flow_alerts"].as_array().unwrap();
    let rules: BTreeSet<&str> = flow_alerts
        .iter()
        .map(|a| a["rule"].as_str().unwrap())
        .collect();
    assert_eq!(
        rules,
        BTreeSet::from(["flow-dead-letter", "flow-incomplete"]),
        "the two flow alerts and nothing else: {flow_alerts:?}"
    );
    assert_eq!(
        flow_alerts.len(),
        2,
        "one alert per rule and group: {flow_alerts:?}"
    );
    let dead = flow_alerts
        .iter()
        .find(|a| a["kind"] == "dead_letter")
        .unwrap();
    assert_eq!(dead["flow_ids"], serde_json::json!([poisoned]), "{dead}");
    assert_eq!(dead["count"], "1");
    let late = flow_alerts
        .iter()
        .find(|a| a["kind"] == "incomplete_after")
        .unwrap();
    assert_eq!(late["group"], "shipping", "the slowed group: {late}");
    for alert in flow_alerts {
        assert_eq!(alert["status"], "resolved", "{alert}");
    }

    // At the receiver: every payload signed; each alert (rule and group) fired once and
    // resolved once. The slowed group's lag alert is among them; on a loaded machine other
    // groups fall behind too, and each of those is an alert of its own.
    let received = receiver.received();
    let mut seen: BTreeMap<(String, String, String), usize> = BTreeMap::new();
    for request in &received {
        assert_eq!(
            request.header(SIGNATURE_HEADER),
            Some(openssl_signature(&request.body).as_str()),
            "a valid HMAC-SHA256 signature"
        );
        let body = request.json();
        assert_eq!(body["version"], "4");
        assert_eq!(body["receiver"], "oncall");
        let name = body["groupLabels"]["alertname"]
            .as_str()
            .unwrap()
            .to_owned();
        let status = body["status"].as_str().unwrap().to_owned();
        let group = body["commonLabels"]["consumer_group"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        *seen.entry((name, group, status)).or_default() += 1;
        if body["commonLabels"]["flow_kind"] == "dead_letter" && body["status"] == "firing" {
            let notes = &body["commonAnnotations"];
            assert_eq!(notes["flow_ids"], poisoned.as_str());
            assert_eq!(notes["count"], "1");
            let command = notes["flow_commands"].as_str().unwrap();
            assert!(
                command.starts_with("causeway --db ")
                    && command.ends_with(&format!(" flow {poisoned}")),
                "{command}"
            );
            assert!(
                notes["summary"].as_str().unwrap().contains(&poisoned),
                "{notes}"
            );
        }
        if body["commonLabels"]["flow_kind"] == "incomplete_after" {
            assert_eq!(body["commonLabels"]["consumer_group"], "shipping");
        }
    }
    let expected: BTreeMap<(String, String, String), usize> = [
        ("flow-dead-letter", "inventory"),
        ("flow-incomplete", "shipping"),
        (LAG_RULE, "shipping"),
    ]
    .into_iter()
    .chain(
        // Other groups' lag alerts, when the machine made them lag.
        seen.keys()
            .filter(|(name, group, _)| name == LAG_RULE && group != "shipping")
            .map(|(name, group, _)| (name.as_str(), group.as_str())),
    )
    .flat_map(|(name, group)| {
        ["firing", "resolved"]
            .map(|status| ((name.to_owned(), group.to_owned(), status.to_owned()), 1))
    })
    .collect();
    assert_eq!(
        seen, expected,
        "the receiver heard of each alert once firing, once resolved, and of nothing else"
    );
}

async fn faulty_run(kafka: Option<&Broker>) {
    let receiver = Receiver::start(Vec::new()).await;
    let dir = temp_dir();
    let db = dir.path().join("demo.db");
    let config = demo_config(dir.path(), &receiver.url);
    let bootstrap = kafka.map(Broker::bootstrap);
    let extra: Vec<&str> = match &bootstrap {
        Some(brokers) => vec!["--kafka", brokers.as_str()],
        None => Vec::new(),
    };
    let summary = demo(&db, &config, &extra, "20s").await;
    assert_eq!(summary["missing"], serde_json::json!([]), "{summary}");
    assert_flow_alerts(&summary, &receiver);
    // `causeway alerts` lists the flow alert with the command that opens the order.
    let poisoned = summary["flow_alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "dead_letter")
        .and_then(|a| a["flow_ids"][0].as_str())
        .unwrap()
        .to_owned();
    let table = run_causeway(
        &["--db", db.to_str().unwrap(), "alerts"],
        Duration::from_secs(30),
    );
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.contains(&format!(
            "-> causeway --db {} flow {poisoned}",
            db.display()
        )),
        "{table}"
    );
}

#[test]
fn collector_refuses_a_bad_flow_rule_by_name() {
    let dir = temp_dir();
    let config = dir.path().join("bad.toml");
    let cases = [
        (
            "[[flows.rules]]\nname = \"late\"\nkind = \"incomplete_after\"\n",
            "flow rule late: after is missing",
        ),
        (
            "[[flows.rules]]\nkind = \"error\"\nfor = \"soon\"\n",
            "flow rule #1: for: invalid duration",
        ),
        (
            "[[flows.rules]]\nkind = \"error\"\nwhen = \"now\"\n",
            "unknown field `when`",
        ),
    ];
    for (text, expected) in cases {
        std::fs::write(&config, text).unwrap();
        let output = std::process::Command::new(causeway_bin())
            .args(["collector", "--config"])
            .arg(&config)
            .args(["--otlp-grpc", "127.0.0.1:0", "--otlp-http", "127.0.0.1:0"])
            .args(["--metrics", "127.0.0.1:0"])
            .arg("--db")
            .arg(dir.path().join("bad.db"))
            .output()
            .unwrap();
        assert!(!output.status.success(), "{text}");
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert!(stderr.contains(expected), "{expected}: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_flow_alerts_reach_a_signed_webhook_and_resolve() {
    faulty_run(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_over_kafka_flow_alerts_reach_a_signed_webhook_and_resolve() {
    let broker = Broker::start();
    faulty_run(Some(&broker)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_demo_raises_no_flow_alert_and_counts_no_fault() {
    let receiver = Receiver::start(Vec::new()).await;
    let dir = temp_dir();
    let db = dir.path().join("demo.db");
    let config = dir.path().join("demo.toml");
    std::fs::write(&config, hook_section(&receiver.url)).unwrap();
    let summary = demo(&db, &config, &["--no-faults"], "10s").await;
    assert!(
        summary["shop"]["orders"].as_u64().unwrap() >= 20,
        "the shop ran: {summary}"
    );
    assert_eq!(summary["faults"], serde_json::json!([]));
    assert_eq!(summary["flows_with_faults"], 0, "{summary}");
    assert_eq!(
        summary["fault_anomalies"],
        serde_json::json!({}),
        "{summary}"
    );
    assert_eq!(summary["flow_alerts"], serde_json::json!([]), "{summary}");
    assert_eq!(summary["alerts"], serde_json::json!([]), "{summary}");
    let alerts = run_causeway(
        &["--db", db.to_str().unwrap(), "alerts", "--format", "json"],
        Duration::from_secs(30),
    );
    let document: Value = serde_json::from_slice(&alerts.stdout).unwrap();
    assert_eq!(document["alerts"], serde_json::json!([]));
    assert!(
        receiver.received().is_empty(),
        "no hook was called: {:?}",
        receiver.received()
    );
}
