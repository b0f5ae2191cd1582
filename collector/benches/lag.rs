//! Lag benchmark: one poll of 500 consumer groups over 10,000 partitions on a real broker
//! (tansu, started here), found without naming their topics, and rule evaluation over
//! 50,000 partitions. Prints figures.
//!
//! In the same run, the committed offsets of the 500 groups are fetched both ways: one
//! all-topics `OffsetFetch` per group on one client (what the poller does), and the
//! baseline the poller used before, one client per group asking for its named partitions,
//! eight groups at a time.
//!
//! Run: `cargo bench -p causeway-collector --bench lag` (needs `tansu` on PATH or in
//! `~/.cargo/bin`, or its path in `TANSU`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use causeway_collector::lag::config::{LagRule, NamePattern};
use causeway_collector::lag::evaluate::evaluate;
use causeway_collector::lag::group_offsets::fetch_all_committed;
use causeway_collector::lag::poller::{LagPoller, POLLER_SOURCE, PollTargets};
use causeway_storage::LagSample;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

const GROUPS: usize = 500;
const PARTITIONS_PER_GROUP: i32 = 20;
const POLL_CYCLES: usize = 5;
/// Rounds of each way of fetching committed offsets.
const COMMITTED_ROUNDS: usize = 5;
/// Groups the baseline fetches at once (the poller's former thread count).
const BASELINE_THREADS: usize = 8;
const EVAL_PARTITIONS: usize = 50_000;
const EVAL_SAMPLES_PER_PARTITION: i64 = 10;
const SECOND: i64 = 1_000_000_000;

struct Broker(Child);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tansu() -> PathBuf {
    if let Some(path) = std::env::var_os("TANSU") {
        return PathBuf::from(path);
    }
    let home = PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cargo/bin/tansu");
    if home.is_file() {
        home
    } else {
        PathBuf::from("tansu")
    }
}

fn start_broker() -> (Broker, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("tcp://127.0.0.1:{port}");
    let child = Command::new(tansu())
        .args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
        ])
        .args([
            "--storage-engine",
            "memory://tansu/",
            "--cluster-id",
            "causeway-bench",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot start tansu");
    let bootstrap = format!("127.0.0.1:{port}");
    let probe: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while probe
        .fetch_metadata(None, Duration::from_secs(1))
        .map(|m| m.brokers().is_empty())
        .unwrap_or(true)
    {
        assert!(Instant::now() < deadline, "tansu did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    (Broker(child), bootstrap)
}

fn topic(group: usize) -> String {
    format!("bench-topic-{group:03}")
}

fn group(index: usize) -> String {
    format!("bench-group-{index:03}")
}

/// 500 topics of 20 partitions, and 500 groups each committing offset 0 on its topic.
fn set_up(bootstrap: &str) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .create()
            .unwrap();
        let names: Vec<String> = (0..GROUPS).map(topic).collect();
        for chunk in names.chunks(100) {
            let topics: Vec<NewTopic> = chunk
                .iter()
                .map(|name| NewTopic::new(name, PARTITIONS_PER_GROUP, TopicReplication::Fixed(1)))
                .collect();
            let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
            for result in admin.create_topics(&topics, &options).await.unwrap() {
                result.unwrap();
            }
        }
    });
    std::thread::scope(|scope| {
        for worker in 0..8 {
            scope.spawn(move || {
                for index in (worker..GROUPS).step_by(8) {
                    let consumer: BaseConsumer = ClientConfig::new()
                        .set("bootstrap.servers", bootstrap)
                        .set("group.id", group(index))
                        .create()
                        .unwrap();
                    let mut list = TopicPartitionList::new();
                    for partition in 0..PARTITIONS_PER_GROUP {
                        list.add_partition_offset(&topic(index), partition, Offset::Offset(0))
                            .unwrap();
                    }
                    consumer.commit(&list, CommitMode::Sync).unwrap();
                }
            });
        }
    });
}

fn bench_poll() {
    let (_broker, bootstrap) = start_broker();
    let started = Instant::now();
    set_up(&bootstrap);
    println!(
        "lag poll: set up {GROUPS} groups over {} partitions in {:.1} s",
        GROUPS * PARTITIONS_PER_GROUP as usize,
        started.elapsed().as_secs_f64()
    );
    // Only the group filter: every topic is found from the groups' committed offsets.
    let targets = PollTargets {
        groups: vec![NamePattern::new("bench-group-*")],
        group_topics: BTreeMap::new(),
    };
    let mut poller = LagPoller::new(&bootstrap, targets, Duration::from_secs(30)).unwrap();
    let mut times = Vec::new();
    let mut committed_phases = Vec::new();
    for cycle in 0..POLL_CYCLES {
        let started = Instant::now();
        let samples = poller.poll(&[], cycle as i64).unwrap();
        let elapsed = started.elapsed();
        let known = samples
            .iter()
            .filter(|s| s.committed_offset.is_some())
            .count();
        assert_eq!(
            samples.len(),
            GROUPS * PARTITIONS_PER_GROUP as usize,
            "every group partition sampled"
        );
        assert_eq!(known, samples.len(), "every committed offset read");
        println!(
            "lag poll: cycle {cycle}: {} samples in {:.3} s",
            samples.len(),
            elapsed.as_secs_f64(),
        );
        println!("lag poll: cycle {cycle} phases: {:?}", poller.last_phases());
        times.push(elapsed);
        if cycle > 0 {
            committed_phases.push(poller.last_phases().committed.as_secs_f64());
        }
    }
    let steady: Vec<f64> = times[1..].iter().map(Duration::as_secs_f64).collect();
    let mean = steady.iter().sum::<f64>() / steady.len() as f64;
    let worst = steady.iter().cloned().fold(0.0, f64::max);
    println!(
        "lag poll: first cycle {:.3} s; steady cycles mean {mean:.3} s, worst {worst:.3} s \
         (target <= 1 s)",
        times[0].as_secs_f64()
    );
    bench_committed(&bootstrap, committed_phases);
}

/// Committed offsets of every group: the all-topics fetch against the named-partition
/// baseline, in the same run on the same broker.
fn bench_committed(bootstrap: &str, mut poller_phases: Vec<f64>) {
    let groups: Vec<String> = (0..GROUPS).map(group).collect();
    let client: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "bench-offsets-client")
        .create()
        .unwrap();
    let mut all_topics = Vec::new();
    for _ in 0..COMMITTED_ROUNDS {
        let started = Instant::now();
        let answers = fetch_all_committed(&client, &groups, Duration::from_secs(30));
        all_topics.push(started.elapsed().as_secs_f64());
        let partitions: usize = answers.iter().map(|a| a.as_ref().unwrap().len()).sum();
        assert_eq!(partitions, GROUPS * PARTITIONS_PER_GROUP as usize);
    }

    let started = Instant::now();
    let clients: Vec<(usize, BaseConsumer)> = (0..GROUPS)
        .map(|index| {
            let consumer = ClientConfig::new()
                .set("bootstrap.servers", bootstrap)
                .set("group.id", group(index))
                .create()
                .unwrap();
            (index, consumer)
        })
        .collect();
    let created = started.elapsed().as_secs_f64();
    let mut named = Vec::new();
    for round in 0..=COMMITTED_ROUNDS {
        let started = Instant::now();
        let read: usize = std::thread::scope(|scope| {
            let handles: Vec<_> = clients
                .chunks(GROUPS.div_ceil(BASELINE_THREADS))
                .map(|batch| {
                    scope.spawn(move || {
                        batch
                            .iter()
                            .map(|(index, consumer)| {
                                let mut list = TopicPartitionList::new();
                                list.add_partition_range(
                                    &topic(*index),
                                    0,
                                    PARTITIONS_PER_GROUP - 1,
                                );
                                let offsets = consumer
                                    .committed_offsets(list, Duration::from_secs(30))
                                    .unwrap();
                                offsets.count()
                            })
                            .sum::<usize>()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(read, GROUPS * PARTITIONS_PER_GROUP as usize);
        // The first round also finds each client's coordinator: reported on its own.
        if round == 0 {
            println!(
                "committed offsets, baseline: {GROUPS} clients created in {created:.3} s, \
                 first round {:.3} s",
                started.elapsed().as_secs_f64()
            );
        } else {
            named.push(started.elapsed().as_secs_f64());
        }
    }
    let median = |times: &mut Vec<f64>| {
        times.sort_by(f64::total_cmp);
        times[times.len() / 2]
    };
    println!(
        "committed offsets of {GROUPS} groups ({} partitions), medians: the poller's \
         all-topics fetch (its committed phase, steady cycles) {:.3} s; the same on one client \
         {:.3} s (first round {:.3} s); baseline, named partitions on one client per group, \
         {BASELINE_THREADS} at a time, {:.3} s",
        GROUPS * PARTITIONS_PER_GROUP as usize,
        median(&mut poller_phases),
        median(&mut all_topics.clone()),
        all_topics[0],
        median(&mut named),
    );
}

fn bench_evaluation() {
    let now = 1_000 * SECOND;
    let mut samples = Vec::with_capacity(EVAL_PARTITIONS * EVAL_SAMPLES_PER_PARTITION as usize);
    for index in 0..EVAL_PARTITIONS {
        let group = format!("group-{:04}", index / 100);
        let topic = format!("topic-{:04}", index / 100);
        for step in 0..EVAL_SAMPLES_PER_PARTITION {
            let high = 1_000 + step * 10;
            // A mix: caught up, consuming, stalled.
            let committed = match index % 3 {
                0 => high,
                1 => 900 + step * 12,
                _ => 500,
            };
            samples.push(LagSample {
                sampled_ns: now - (EVAL_SAMPLES_PER_PARTITION - step) * 10 * SECOND,
                consumer_group: group.clone(),
                topic: topic.clone(),
                partition: (index % 100) as i32,
                committed_offset: Some(committed),
                low_watermark: Some(0),
                high_watermark: Some(high),
                lag: Some(high - committed),
                members: Some(1),
                source: POLLER_SOURCE.to_owned(),
            });
        }
    }
    let rules = [LagRule {
        warn_messages: Some(100),
        err_messages: Some(1_000),
        ..LagRule::default()
    }];
    let mut times = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let evaluation = evaluate(&samples, &rules, now, &Default::default());
        times.push(started.elapsed().as_secs_f64());
        assert_eq!(evaluation.statuses.len(), EVAL_PARTITIONS);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "rule evaluation: {EVAL_PARTITIONS} partitions x {EVAL_SAMPLES_PER_PARTITION} samples, 1 rule: median {:.3} s, best {:.3} s per cycle",
        times[times.len() / 2],
        times[0]
    );
}

fn main() {
    bench_evaluation();
    bench_poll();
}
