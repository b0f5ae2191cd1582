//! Consumer groups the lag poller finds without being told their topics, against tansu.
//! The groups are plain confluent-kafka Python consumers (`tests/python/lag_group.py`, no
//! causeway code in them), and the lag they should show is what that client's own admin
//! API reports. A live stalled group shows it; its consumer closes and it keeps the lag and
//! turns STOP; the collector restarts while the group has no member and it is still there;
//! a group that committed and closed before the collector started is found, with its
//! never-committed partition unknown. Beside them, the all-topics offset fetch answers
//! many groups at once, each with its own offsets.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use causeway_collector::lag::group_offsets::fetch_all_committed;
use causeway_collector::lag::offset_fetch::{GroupOffsets, PartitionOffset};
use causeway_conventions::LagState;
use causeway_storage::{LagStatusRow, Store, now_ns};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use serde_json::Value;

use crate::harness::{
    Broker, CapturedOutput, CollectorProcess, causeway_bin, python, python_script, temp_dir,
};

/// How long the collector gets to show what the test waits for.
const SHOWN_WITHIN: Duration = Duration::from_secs(60);
/// How long the Python group gets for each step.
const STEP_WITHIN: Duration = Duration::from_secs(90);

/// Lag per partition: `None` where the group never committed.
type LagByPartition = BTreeMap<i32, Option<i64>>;

/// `lag_group.py` running as a child: its JSON events arrive on a channel.
struct PythonGroup {
    child: Child,
    stdin: Option<ChildStdin>,
    events: Receiver<String>,
    stderr: CapturedOutput,
}

impl PythonGroup {
    fn start(broker: &Broker, topic: &str, group: &str, mode: &str) -> Self {
        let mut child = Command::new(python())
            .arg(python_script("lag_group.py"))
            .args([&broker.bootstrap(), topic, group, mode])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start lag_group.py");
        let stderr = CapturedOutput::drain(child.stderr.take().unwrap());
        let stdout = child.stdout.take().unwrap();
        let (sender, events) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        PythonGroup {
            stdin: child.stdin.take(),
            child,
            events,
            stderr,
        }
    }

    /// The next event, which must be `name`; its lag per partition.
    fn event(&mut self, name: &str) -> LagByPartition {
        let line = self.events.recv_timeout(STEP_WITHIN).unwrap_or_else(|_| {
            panic!(
                "lag_group.py printed no {name} event (exit {:?}); stderr:\n{}",
                self.child.try_wait(),
                self.stderr.text()
            )
        });
        let event: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("lag_group.py printed {line:?}: {e}"));
        assert_eq!(event["event"], name, "{event}");
        event["lag"]
            .as_object()
            .expect("the event has a lag map")
            .iter()
            .map(|(partition, lag)| (partition.parse().unwrap(), lag.as_i64()))
            .collect()
    }

    fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// Waits for a clean exit.
    fn finish(mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + STEP_WITHIN;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "lag_group.py failed ({status}):\n{}",
                    self.stderr.text()
                );
                return;
            }
            assert!(Instant::now() < deadline, "lag_group.py did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for PythonGroup {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the client's admin API reports for the group right now.
fn reported(broker: &Broker, topic: &str, group: &str) -> LagByPartition {
    let mut report = PythonGroup::start(broker, topic, group, "report");
    let lag = report.event("report");
    report.finish();
    lag
}

/// A collector polling `broker` every second, writing to `db`.
fn collector(broker: &Broker, db: &Path) -> CollectorProcess {
    let config = db.with_extension("toml");
    std::fs::write(&config, "[lag]\ninterval = \"1s\"\n").unwrap();
    CollectorProcess::start(
        db,
        &[
            "--config",
            config.to_str().unwrap(),
            "--kafka",
            &broker.bootstrap(),
        ],
    )
}

fn rows_of(rows: &[LagStatusRow], group: &str, topic: &str) -> Vec<LagStatusRow> {
    rows.iter()
        .filter(|r| r.consumer_group == group && r.topic == topic)
        .cloned()
        .collect()
}

fn lag_of(rows: &[LagStatusRow]) -> LagByPartition {
    rows.iter().map(|r| (r.partition, r.lag)).collect()
}

/// Waits until the group's rows in the store satisfy `shown`; returns them.
async fn wait_shown(
    db: &Path,
    group: &str,
    topic: &str,
    collector: &CollectorProcess,
    what: &str,
    shown: impl Fn(&[LagStatusRow]) -> bool,
) -> Vec<LagStatusRow> {
    let store = Store::open_read_only(db).await.unwrap();
    let deadline = Instant::now() + SHOWN_WITHIN;
    loop {
        let rows = rows_of(&store.lag_status().await.unwrap(), group, topic);
        if !rows.is_empty() && shown(&rows) {
            return rows;
        }
        assert!(
            Instant::now() < deadline,
            "{group} never showed {what}; last rows {rows:?}\ncollector stderr:\n{}",
            collector.stderr()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn states(rows: &[LagStatusRow]) -> Vec<LagState> {
    rows.iter().map(|r| r.state).collect()
}

/// `causeway lag --format json`, as a person would read it.
fn lag_command(db: &Path) -> Value {
    let output = Command::new(causeway_bin())
        .args(["lag", "--format", "json", "--db"])
        .arg(db)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    serde_json::from_slice(&output.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_group_keeps_its_lag_after_its_consumer_closes_and_a_restart() {
    const TOPIC: &str = "invoices";
    const GROUP: &str = "invoicing";
    let broker = Broker::start();
    let mut group = PythonGroup::start(&broker, TOPIC, GROUP, "stall");
    let stalled = group.event("stalled");
    assert_eq!(stalled, BTreeMap::from([(0, Some(15)), (1, Some(15))]));

    let dir = temp_dir();
    let db = dir.path().join("lag.db");
    let mut first = collector(&broker, &db);
    // Live and not committing while records wait: the exact lag, and STALL.
    wait_shown(&db, GROUP, TOPIC, &first, "its lag while stalled", |rows| {
        lag_of(rows) == stalled && states(rows).iter().all(|s| *s == LagState::Stall)
    })
    .await;

    group.send("close");
    let closed = group.event("closed");
    group.finish();
    assert_eq!(closed, stalled, "closing commits nothing new");
    // No member left: the same lag, and STOP.
    wait_shown(
        &db,
        GROUP,
        TOPIC,
        &first,
        "STOP after its consumer closed",
        |rows| lag_of(rows) == closed && states(rows).iter().all(|s| *s == LagState::Stop),
    )
    .await;
    assert!(first.terminate().success(), "{}", first.stderr());

    // A new collector on the same store while the group still has no member.
    let restarted_ns = now_ns();
    let second = collector(&broker, &db);
    let rows = wait_shown(
        &db,
        GROUP,
        TOPIC,
        &second,
        "its lag after a restart",
        |rows| {
            rows.iter().all(|r| r.updated_ns > restarted_ns)
                && lag_of(rows) == closed
                && states(rows).iter().all(|s| *s == LagState::Stop)
        },
    )
    .await;
    assert_eq!(lag_of(&rows), reported(&broker, TOPIC, GROUP));

    let document = lag_command(&db);
    let summary = document["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["consumer_group"] == GROUP)
        .unwrap_or_else(|| panic!("causeway lag does not show {GROUP}: {document}"));
    assert_eq!(summary["state"], "STOP", "{document}");
    assert_eq!(summary["lag"], 30, "{document}");

    let store = Store::open_read_only(&db).await.unwrap();
    let remembered: Vec<(String, String, bool)> = store
        .lag_groups()
        .await
        .unwrap()
        .into_iter()
        .map(|row| (row.consumer_group, row.topic, row.committed))
        .collect();
    assert!(
        remembered.contains(&(GROUP.to_owned(), TOPIC.to_owned(), true)),
        "the group and its topic are kept in the store: {remembered:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_that_closed_before_the_collector_started_is_found() {
    const TOPIC: &str = "refunds";
    const GROUP: &str = "refunding";
    let broker = Broker::start();
    let mut group = PythonGroup::start(&broker, TOPIC, GROUP, "closed");
    let closed = group.event("closed");
    group.finish();
    assert_eq!(
        closed,
        BTreeMap::from([(0, Some(5)), (1, Some(0)), (2, None)]),
        "partition 2 was never committed"
    );

    let dir = temp_dir();
    let db = dir.path().join("lag.db");
    let collector = collector(&broker, &db);
    let rows = wait_shown(&db, GROUP, TOPIC, &collector, "its lag", |rows| {
        lag_of(rows) == closed && rows.iter().any(|r| r.state == LagState::Stop)
    })
    .await;
    let state = |partition: i32| {
        rows.iter()
            .find(|r| r.partition == partition)
            .unwrap()
            .state
    };
    assert_eq!(state(0), LagState::Stop, "records wait and no one is there");
    assert_eq!(state(1), LagState::Ok, "caught up");
    assert_eq!(
        state(2),
        LagState::Unknown,
        "never committed: unknown, not 0"
    );
    let partitions = lag_command(&db)["partitions"].clone();
    let never = partitions
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["consumer_group"] == GROUP && p["partition"] == 2)
        .unwrap_or_else(|| panic!("no partition 2 in {partitions}"));
    assert_eq!(never["lag"], Value::Null, "{never}");
}

#[test]
fn every_groups_offsets_come_back_in_one_round_without_naming_topics() {
    let broker = Broker::start();
    broker.create_topic("ledger", 2);
    broker.create_topic("audit", 1);
    // Each group commits its own offsets, with librdkafka (a third-party client): group i
    // at i on ledger/0, i + 1 on ledger/1, and, for even i, 2i on audit/0.
    let groups: Vec<String> = (0..24).map(|i| format!("ledger-{i:02}")).collect();
    for (i, group) in groups.iter().enumerate() {
        let i = i as i64;
        let consumer: BaseConsumer = broker
            .client_config()
            .set("group.id", group)
            .create()
            .unwrap();
        let mut list = TopicPartitionList::new();
        list.add_partition_offset("ledger", 0, Offset::Offset(i))
            .unwrap();
        list.add_partition_offset("ledger", 1, Offset::Offset(i + 1))
            .unwrap();
        if i % 2 == 0 {
            list.add_partition_offset("audit", 0, Offset::Offset(2 * i))
                .unwrap();
        }
        consumer.commit(&list, CommitMode::Sync).unwrap();
    }
    let mut asked = groups.clone();
    asked.push("never-committed".into());
    let client: BaseConsumer = broker
        .client_config()
        .set("group.id", "causeway-e2e-offsets")
        .create()
        .unwrap();
    let answers = fetch_all_committed(&client, &asked, Duration::from_secs(20));
    assert_eq!(answers.len(), asked.len());
    for (i, (group, answer)) in groups.iter().zip(&answers).enumerate() {
        let i = i as i64;
        let rows = answer.as_ref().unwrap_or_else(|e| panic!("{group}: {e}"));
        let offsets = GroupOffsets::decode(rows);
        assert_eq!(
            offsets.get("ledger", 0),
            PartitionOffset::Committed(i),
            "{group}"
        );
        assert_eq!(
            offsets.get("ledger", 1),
            PartitionOffset::Committed(i + 1),
            "{group}"
        );
        let audit = if i % 2 == 0 {
            PartitionOffset::Committed(2 * i)
        } else {
            PartitionOffset::NotCommitted
        };
        assert_eq!(offsets.get("audit", 0), audit, "{group}");
        let topics: Vec<&str> = offsets.topics().into_iter().collect();
        let expected: &[&str] = if i % 2 == 0 {
            &["audit", "ledger"]
        } else {
            &["ledger"]
        };
        assert_eq!(topics, expected, "{group}");
    }
    let never = answers.last().unwrap().as_ref().unwrap();
    assert!(never.is_empty(), "a group with no commits: {never:?}");
}
