//! `causeway demo --headless`: the real binary runs the shop, the collector and the lag
//! rules, then every injected fault must be found by the flow reconstruction or the lag
//! rules, over the embedded bus and over a real broker.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{Broker, causeway_bin, temp_dir};

/// A quick schedule: every fault in the first seconds, the slow consumer over by 7s.
pub(crate) const FAST_SCHEDULE: &str = r#"
rate = 6
[[faults]]
kind = "declined-payment"
at = "1s"
[[faults]]
kind = "slow-consumer"
at = "1500ms"
group = "shipping"
for = "5s"
delay = "600ms"
[[faults]]
kind = "poison-message"
at = "2s"
[[faults]]
kind = "duplicate-delivery"
at = "3s"
[[faults]]
kind = "dropped-traceparent"
at = "4s"
[[faults]]
kind = "schema-bump"
at = "5s"
"#;

/// Every fault kind the demo knows, as the summary names them.
const ALL_FAULTS: [&str; 6] = [
    "declined-payment",
    "poison-message",
    "duplicate-delivery",
    "slow-consumer",
    "dropped-traceparent",
    "schema-bump",
];

/// Runs the binary with `args`, killing it after `limit`.
pub(crate) fn run_causeway(args: &[&str], limit: Duration) -> Output {
    let child = Command::new(causeway_bin())
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start causeway");
    let pid = child.id();
    let watchdog = std::thread::spawn(move || {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
            if !Path::new(&format!("/proc/{pid}")).exists() {
                return false;
            }
        }
        let _ = Command::new("kill").arg(pid.to_string()).status();
        true
    });
    let output = child.wait_with_output().expect("cannot wait for causeway");
    drop(watchdog);
    output
}

fn headless_run(db: &Path, config: &Path, kafka: Option<&str>) -> (Output, Value) {
    let mut args = vec![
        "--db",
        db.to_str().unwrap(),
        "demo",
        "--headless",
        "--duration",
        "20s",
        "--config",
        config.to_str().unwrap(),
        "--format",
        "json",
    ];
    if let Some(brokers) = kafka {
        args.extend(["--kafka", brokers]);
    }
    let output = run_causeway(&args, Duration::from_secs(120));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let summary: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("summary is not json ({e}):\n{stdout}\nstderr:\n{stderr}"));
    (output, summary)
}

/// Checks a summary: all six faults injected once, each found with its own evidence, the
/// slow consumer's alert fired and resolved, and nothing missing.
fn assert_every_fault_found(summary: &Value, transport: &str) {
    assert_eq!(summary["schema"], "causeway.demo.v1");
    assert_eq!(summary["transport"], transport);
    let orders = summary["shop"]["orders"].as_u64().unwrap();
    assert!(
        orders >= 60,
        "about 6 orders a second for 20s, got {orders}"
    );
    assert_eq!(
        summary["flows"].as_u64().unwrap(),
        orders,
        "one flow per order"
    );
    assert_eq!(summary["shop"]["dead_lettered"], 1, "only the poison order");
    let faults = summary["faults"].as_array().unwrap();
    let kinds: BTreeSet<&str> = faults.iter().map(|f| f["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ALL_FAULTS.into_iter().collect(),
        "each fault injected"
    );
    assert_eq!(faults.len(), ALL_FAULTS.len(), "each fault once");
    for fault in faults {
        assert_eq!(fault["found"], true, "fault not found: {fault}");
    }
    assert_eq!(summary["missing"], serde_json::json!([]));
    let anomalies = summary["anomalies"].as_object().unwrap();
    for kind in [
        "compensation",
        "dead_letter",
        "duplicate_delivery",
        "propagation_break",
        "schema_change",
    ] {
        assert!(
            anomalies.get(kind).and_then(Value::as_u64).unwrap_or(0) >= 1,
            "{kind} missing from {anomalies:?}"
        );
    }
    let slow = faults
        .iter()
        .find(|f| f["kind"] == "slow-consumer")
        .unwrap();
    assert_eq!(slow["group"], "shipping");
    assert_eq!(slow["resolved"], true, "the lag alert resolved: {summary}");
    let alerts = summary["alerts"].as_array().unwrap();
    let alert = alerts
        .iter()
        .find(|a| a["group"] == "shipping")
        .unwrap_or_else(|| panic!("a lag alert names the slowed group: {alerts:?}"));
    assert!(
        alert["oldest_waiting"]
            .as_str()
            .is_some_and(|id| id.starts_with("ord-")),
        "the alert names the oldest waiting order: {alert}"
    );
}

/// The declined order, read back with `causeway flow`, shows the saga's compensation.
fn assert_flow_command_agrees(db: &Path, summary: &Value) {
    let declined = summary["faults"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "declined-payment")
        .and_then(|f| f["correlation_id"].as_str())
        .unwrap()
        .to_owned();
    let output = run_causeway(
        &[
            "--db",
            db.to_str().unwrap(),
            "flow",
            &declined,
            "--format",
            "json",
        ],
        Duration::from_secs(30),
    );
    assert!(
        output.status.success(),
        "causeway flow {declined} failed: {output:?}"
    );
    let flow = String::from_utf8_lossy(&output.stdout);
    for expected in [
        "order.placed.v1",
        "payment.failed.v1",
        "inventory.released.v1",
        "order.cancelled.v1",
        "compensation",
    ] {
        assert!(
            flow.contains(expected),
            "{expected} missing from flow {declined}"
        );
    }
}

#[test]
fn headless_demo_finds_every_injected_fault() {
    let dir = temp_dir();
    let db = dir.path().join("demo.db");
    let config = dir.path().join("demo.toml");
    std::fs::write(&config, FAST_SCHEDULE).unwrap();
    let (output, summary) = headless_run(&db, &config, None);
    assert!(
        output.status.success(),
        "demo failed: {}\n{summary}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_every_fault_found(&summary, "embedded");
    assert_flow_command_agrees(&db, &summary);
}

#[test]
fn headless_demo_over_kafka_finds_every_injected_fault() {
    let broker = Broker::start();
    let dir = temp_dir();
    let db = dir.path().join("demo.db");
    let config = dir.path().join("demo.toml");
    std::fs::write(&config, FAST_SCHEDULE).unwrap();
    let (output, summary) = headless_run(&db, &config, Some(&broker.bootstrap()));
    assert!(
        output.status.success(),
        "demo over kafka failed: {}\n{summary}\nbroker:\n{}",
        String::from_utf8_lossy(&output.stderr),
        broker.stderr()
    );
    assert_every_fault_found(&summary, "kafka");
    assert_flow_command_agrees(&db, &summary);
}

#[test]
fn a_fault_that_is_not_found_fails_the_run() {
    let dir = temp_dir();
    let db = dir.path().join("demo.db");
    let config = dir.path().join("demo.toml");
    // No service reads as this group, so no lag can build and no alert can fire.
    std::fs::write(
        &config,
        "[[faults]]\nkind = \"slow-consumer\"\nat = \"0s\"\ngroup = \"ghost\"\nfor = \"2s\"\n",
    )
    .unwrap();
    let output = run_causeway(
        &[
            "--db",
            db.to_str().unwrap(),
            "demo",
            "--headless",
            "--duration",
            "3s",
            "--config",
            config.to_str().unwrap(),
        ],
        Duration::from_secs(60),
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "a missed fault must fail the run:\n{stdout}"
    );
    assert!(stdout.contains("MISSING  slow-consumer"), "{stdout}");
    assert!(
        stderr.contains("1 injected fault(s) not found: slow-consumer"),
        "{stderr}"
    );
}

#[test]
fn demo_refuses_to_replace_a_file_that_is_not_a_database() {
    let dir = temp_dir();
    let db = dir.path().join("notes.txt");
    std::fs::write(&db, "my notes\n").unwrap();
    let output = run_causeway(
        &[
            "--db",
            db.to_str().unwrap(),
            "demo",
            "--headless",
            "--duration",
            "1s",
        ],
        Duration::from_secs(30),
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("refusing to replace"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(&db).unwrap(),
        "my notes\n",
        "file untouched"
    );
}

#[test]
fn faults_on_demand_from_stdin_are_injected_and_found() {
    use std::io::Write as _;
    let dir = temp_dir();
    let db = dir.path().join("demo.db");
    let config = dir.path().join("none.toml");
    std::fs::write(&config, "faults = []\n").unwrap();
    let mut child = Command::new(causeway_bin())
        .args(["--db", db.to_str().unwrap(), "demo", "--headless"])
        .args(["--duration", "4s", "--config", config.to_str().unwrap()])
        .args(["--format", "json"])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start causeway");
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "poison-message").unwrap();
    writeln!(stdin, "no-such-fault").unwrap();
    let output = child.wait_with_output().unwrap();
    drop(stdin);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("unknown fault \"no-such-fault\""),
        "{stderr}"
    );
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
    let faults = summary["faults"].as_array().unwrap();
    assert_eq!(faults.len(), 1, "only the fault asked for: {faults:?}");
    assert_eq!(faults[0]["kind"], "poison-message");
    assert_eq!(faults[0]["found"], true);
    assert_eq!(summary["shop"]["dead_lettered"], 1);
}

/// The dashboard run: the demo in tmux shows live flows, and quits cleanly on `q`,
/// naming what it injected and where the database is.
#[test]
fn dashboard_demo_shows_live_flows_and_quits_cleanly() {
    use crate::harness::wait_until;
    let dir = temp_dir();
    let db = dir.path().join("demo.db");
    let done = dir.path().join("done.txt");
    let socket = format!("causeway-e2e-demo-{}", std::process::id());
    let tmux = |args: &[&str]| {
        Command::new("tmux")
            .arg("-L")
            .arg(&socket)
            .args(args)
            .output()
            .expect("cannot run tmux (is it installed?)")
    };
    let command = format!(
        "{} --db {} demo --fault declined-payment@1s 2>{}.err; echo $? > {}; sleep 30",
        causeway_bin().display(),
        db.display(),
        done.display(),
        done.display()
    );
    let started = tmux(&[
        "new-session",
        "-d",
        "-s",
        "demo",
        "-x",
        "140",
        "-y",
        "40",
        &command,
    ]);
    assert!(started.status.success(), "{started:?}");
    let screen = || {
        String::from_utf8_lossy(&tmux(&["capture-pane", "-p", "-t", "demo"]).stdout).into_owned()
    };
    let live = wait_until(Duration::from_secs(30), || {
        let text = screen();
        // Five orders on screen: flows arrive live, whichever have scrolled out.
        text.matches("ord-10").count() >= 5
    });
    let last_screen = screen();
    tmux(&["send-keys", "-t", "demo", "q"]);
    let exited = wait_until(Duration::from_secs(30), || {
        done.exists() && std::fs::read_to_string(&done).is_ok_and(|s| !s.is_empty())
    });
    let status = std::fs::read_to_string(&done).unwrap_or_default();
    let stderr = std::fs::read_to_string(format!("{}.err", done.display())).unwrap_or_default();
    tmux(&["kill-server"]);
    assert!(live, "no live flows on the dashboard:\n{last_screen}");
    assert!(exited, "the demo did not quit on q:\n{}", screen());
    assert_eq!(status.trim(), "0", "{stderr}");
    assert!(
        stderr.contains("faults injected: declined-payment (ord-"),
        "{stderr}"
    );
    assert!(stderr.contains("database kept at"), "{stderr}");
}
