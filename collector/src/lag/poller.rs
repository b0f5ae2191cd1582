//! The lag poller: for every consumer group (or those configured), the committed offset of
//! each partition it consumes against the partition's watermarks. Which groups and topics
//! count is decided in `discovery.rs`; the committed offsets come from one `OffsetFetch`
//! per group that names no topics (`group_offsets.rs`). Every call here blocks on the
//! network; the lag service runs it on a blocking thread, never on the runtime.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use causeway_storage::LagSample;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use rdkafka::groups::GroupList;

use crate::lag::config::NamePattern;
use crate::lag::discovery::{KnownGroups, ListedGroup, Listing, Sources};
use crate::lag::group_offsets::{GroupFetchError, error_text, fetch_all_committed};
use crate::lag::offset_fetch::{FetchedPartition, GroupOffsets, PartitionOffset};
use crate::lag::offset_lag::offset_lag;
use crate::lag::poller_assignment::decode_assignment;

/// The `source` recorded on samples the poller takes.
pub const POLLER_SOURCE: &str = "poller";
/// Consumer group states (as the broker names them) in which membership is changing.
const REBALANCING_STATES: &[&str] = &["PreparingRebalance", "CompletingRebalance"];
/// Partitions per `ListOffsets` call; the chunks are fetched concurrently.
const WATERMARK_CHUNK: usize = 1_000;
/// The client id the poller's connections carry.
const CLIENT_ID: &str = "causeway-lag-poller";
/// The group id of the clients that fetch committed offsets (they never join or commit).
const CLIENT_GROUP: &str = "causeway-lag-poller";
/// Clients that fetch committed offsets, each its own connection with a share of the
/// groups on a thread of its own: a broker answers one connection's requests in order.
const OFFSET_CLIENTS: usize = 4;
/// The group id of the client that reads head records (it never commits or joins).
const READER_GROUP: &str = "causeway-lag-head-reader";
/// How long one cycle spends reading the records at committed offsets.
const HEAD_READ_BUDGET: Duration = Duration::from_millis(1000);

/// A watermark per (topic, partition).
type Watermarks = HashMap<(String, i32), i64>;

/// The first unconsumed record of a lagging partition: where it is and when it was written.
pub type HeadRecords = HashMap<(String, String, i32), (i64, i64)>;

/// A failed poll.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    /// A Kafka client could not be created.
    #[error("cannot create a kafka client for {brokers}: {source}")]
    Client {
        /// The bootstrap servers.
        brokers: String,
        /// The cause.
        #[source]
        source: KafkaError,
    },
    /// A thread fetching from the cluster failed.
    #[error("the thread fetching {0} failed")]
    Thread(&'static str),
    /// A cluster-wide request failed.
    #[error("cannot fetch {what} from {brokers}: {source}")]
    Fetch {
        /// What was asked for.
        what: &'static str,
        /// The bootstrap servers.
        brokers: String,
        /// The cause.
        #[source]
        source: KafkaError,
    },
}

/// What the poller asks about: filters and topics named in the configuration.
#[derive(Debug, Clone, Default)]
pub struct PollTargets {
    /// Group patterns to poll; empty polls every group the broker lists.
    pub groups: Vec<NamePattern>,
    /// Topics per group that the broker may not tell us (a group that never committed).
    pub group_topics: BTreeMap<String, Vec<String>>,
}

/// Groups the poller found and forgot since it was last asked, for the store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KnownChanges {
    /// Every group and topic the poller knows now.
    pub known: KnownGroups,
    /// Groups that are gone from the broker.
    pub forgotten: Vec<String>,
}

/// A blocking lag poller: Kafka clients for the cluster and for committed offsets, and one
/// that reads head records, kept between polls.
pub struct LagPoller {
    brokers: String,
    cluster: BaseConsumer,
    offset_clients: Vec<BaseConsumer>,
    known: KnownGroups,
    changes: Option<KnownChanges>,
    targets: PollTargets,
    timeout: Duration,
    head_reader: Option<BaseConsumer>,
    last_phases: PollPhases,
}

/// Where the last poll spent its time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PollPhases {
    /// Listing groups and their members.
    pub groups: Duration,
    /// Fetching topic metadata.
    pub metadata: Duration,
    /// Fetching every group's committed offsets (while the expected watermarks are).
    pub committed: Duration,
    /// From the metadata to the last watermark: those of the expected topics, fetched
    /// while the committed offsets are, then those of topics found only this cycle.
    pub watermarks: Duration,
}

impl LagPoller {
    /// A poller for the cluster at `brokers`; each request waits at most `timeout`.
    pub fn new(brokers: &str, targets: PollTargets, timeout: Duration) -> Result<Self, PollError> {
        let cluster = client(brokers, None)?;
        // A group id, never joined and never committed to, because librdkafka needs one on
        // a client that fetches committed offsets (see `group_offsets.rs`).
        let offset_clients = (0..OFFSET_CLIENTS)
            .map(|_| client(brokers, Some(CLIENT_GROUP)))
            .collect::<Result<_, _>>()?;
        Ok(LagPoller {
            brokers: brokers.to_owned(),
            cluster,
            offset_clients,
            known: KnownGroups::new(),
            changes: None,
            targets,
            timeout,
            head_reader: None,
            last_phases: PollPhases::default(),
        })
    }

    /// Starts from groups found before (by an earlier run, from the store); groups the
    /// targets do not cover are left out.
    pub fn remember(&mut self, known: KnownGroups) {
        self.known = known
            .into_iter()
            .filter(|(group, _)| self.wanted(group))
            .collect();
    }

    /// What changed in the known groups since the last call, if anything did.
    pub fn take_changes(&mut self) -> Option<KnownChanges> {
        self.changes.take()
    }

    /// Polls once. `learned` adds (topic, group) pairs seen in traced traffic. Returns one
    /// sample per group and partition, stamped `now_ns`.
    pub fn poll(
        &mut self,
        learned: &[(String, String)],
        now_ns: i64,
    ) -> Result<Vec<LagSample>, PollError> {
        let phase = std::time::Instant::now();
        let listing = match self.cluster.fetch_group_list(None, self.timeout) {
            Ok(list) => Some(self.listing(&list)),
            Err(error) => {
                tracing::warn!(%error, "cannot list consumer groups; polling the groups known");
                None
            }
        };
        let mut learned_topics: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (topic, group) in learned {
            if self.wanted(group) {
                learned_topics
                    .entry(group.clone())
                    .or_default()
                    .insert(topic.clone());
            }
        }
        let sources = Sources {
            listing: listing.as_ref(),
            configured: &self.targets.group_topics,
            learned: &learned_topics,
            known: &self.known,
        };
        let groups: Vec<String> = sources.groups().into_iter().collect();
        let listed_at = phase.elapsed();
        let metadata = self
            .cluster
            .fetch_metadata(None, self.timeout)
            .map_err(|source| PollError::Fetch {
                what: "topic metadata",
                brokers: self.brokers.clone(),
                source,
            })?;
        let partitions_of: HashMap<&str, Vec<i32>> = metadata
            .topics()
            .iter()
            .map(|t| (t.name(), t.partitions().iter().map(|p| p.id()).collect()))
            .collect();
        let expected = sources.expected_topics();
        let expected: BTreeSet<&str> = expected
            .iter()
            .map(String::as_str)
            .filter(|t| partitions_of.contains_key(t))
            .collect();
        let metadata_at = phase.elapsed();

        // The watermarks of the topics expected from earlier cycles are fetched while the
        // committed offsets are: a cycle then takes about the longer of the two, not both.
        let (answers, committed_took, watermarks) = std::thread::scope(|scope| {
            let watermarks = scope.spawn(|| self.watermarks(&expected, &partitions_of));
            let started = std::time::Instant::now();
            let answers = self.committed(&groups);
            let committed_took = started.elapsed();
            let watermarks = watermarks
                .join()
                .unwrap_or(Err(PollError::Thread("watermarks")));
            (answers, committed_took, watermarks)
        });
        let (mut highs, mut lows) = watermarks?;
        let mut fetched = BTreeMap::new();
        for (group, answer) in groups.into_iter().zip(answers) {
            match answer {
                Ok(rows) => {
                    let offsets = GroupOffsets::decode(&rows);
                    for (topic, partition, code) in offsets.failed() {
                        tracing::debug!(group = %group, topic, partition, error = %error_text(code),
                            "the broker answered a committed offset with an error");
                    }
                    fetched.insert(group, offsets);
                }
                Err(error) => tracing::warn!(%error, "cannot fetch committed offsets"),
            }
        }
        let plan = sources.plan(&fetched, now_ns);
        // Topics found only now (a new group or topic) get their watermarks afterwards.
        let found: BTreeSet<&str> = plan
            .sample
            .values()
            .flatten()
            .map(String::as_str)
            .filter(|t| partitions_of.contains_key(t) && !expected.contains(t))
            .collect();
        if !found.is_empty() {
            let (found_highs, found_lows) = self.watermarks(&found, &partitions_of)?;
            highs.extend(found_highs);
            lows.extend(found_lows);
        }
        if plan.known != self.known || !plan.forgotten.is_empty() {
            let changes = self.changes.get_or_insert_with(KnownChanges::default);
            changes.known = plan.known.clone();
            changes.forgotten.extend(plan.forgotten.iter().cloned());
        }
        self.known = plan.known;
        self.last_phases = PollPhases {
            groups: listed_at,
            metadata: metadata_at - listed_at,
            committed: committed_took,
            watermarks: phase.elapsed() - metadata_at,
        };

        let mut samples = Vec::new();
        for (group, topics) in &plan.sample {
            let Some(offsets) = fetched.get(group) else {
                continue;
            };
            let members = plan.members.get(group).copied().flatten();
            for topic in topics {
                for partition in partitions_of.get(topic.as_str()).into_iter().flatten() {
                    let committed = match offsets.get(topic, *partition) {
                        PartitionOffset::Committed(offset) => Some(offset),
                        PartitionOffset::NotCommitted => None,
                        // Not known this cycle: no sample, rather than an unknown one.
                        PartitionOffset::Failed(_) => continue,
                    };
                    let key = (topic.clone(), *partition);
                    let high = highs.get(&key).copied();
                    let low = lows.get(&key).copied();
                    let lag = high
                        .and_then(|high| offset_lag(committed, low.unwrap_or(0), high).messages());
                    samples.push(LagSample {
                        sampled_ns: now_ns,
                        consumer_group: group.clone(),
                        topic: key.0,
                        partition: key.1,
                        committed_offset: committed,
                        low_watermark: low,
                        high_watermark: high,
                        lag,
                        members,
                        source: POLLER_SOURCE.to_owned(),
                    });
                }
            }
        }
        Ok(samples)
    }

    /// Every committed offset of `groups`, in their order, the groups shared among the
    /// offset clients and fetched on one thread each.
    fn committed(&self, groups: &[String]) -> Vec<Result<Vec<FetchedPartition>, GroupFetchError>> {
        let share = groups.len().div_ceil(self.offset_clients.len()).max(1);
        std::thread::scope(|scope| {
            let handles: Vec<_> = groups
                .chunks(share)
                .zip(&self.offset_clients)
                .map(|(chunk, client)| {
                    (
                        chunk,
                        scope.spawn(move || fetch_all_committed(client, chunk, self.timeout)),
                    )
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|(chunk, handle)| {
                    handle.join().unwrap_or_else(|_| {
                        chunk
                            .iter()
                            .map(|group| {
                                Err(GroupFetchError {
                                    group: group.clone(),
                                    reason: "the fetching thread failed".into(),
                                })
                            })
                            .collect()
                    })
                })
                .collect()
        })
    }

    /// The consumer groups in a listing that the targets cover, with their live members
    /// and the topics assigned to them.
    fn listing(&self, list: &GroupList) -> Listing {
        let mut listing = Listing::new();
        for group in list.groups() {
            if !group.protocol_type().is_empty() && group.protocol_type() != "consumer" {
                continue;
            }
            if !self.wanted(group.name()) {
                continue;
            }
            let rebalancing = REBALANCING_STATES.contains(&group.state());
            let assigned = group
                .members()
                .iter()
                .filter_map(|member| member.assignment().and_then(decode_assignment))
                .flatten()
                .map(|(topic, _)| topic)
                .collect();
            listing.insert(
                group.name().to_owned(),
                ListedGroup {
                    members: (!rebalancing).then_some(group.members().len() as i64),
                    assigned,
                },
            );
        }
        listing
    }

    /// Reads the record at the committed offset of up to `limit` lagging partitions (the
    /// most lagging first) within a short time budget, and returns when each was written:
    /// (group, topic, partition) → (offset, timestamp in ms since the epoch). Partitions
    /// whose record does not arrive in time are left out; their age stays interpolated.
    pub fn head_records(&mut self, samples: &[LagSample], limit: usize) -> HeadRecords {
        let mut lagging: Vec<&LagSample> = samples
            .iter()
            .filter(|s| s.lag.is_some_and(|lag| lag > 0) && s.committed_offset.is_some())
            .collect();
        lagging.sort_by_key(|s| std::cmp::Reverse(s.lag));
        // Groups reading the same partition at the same offset share one read.
        let mut wanted: BTreeMap<(String, i32), i64> = BTreeMap::new();
        for sample in &lagging {
            if wanted.len() >= limit {
                break;
            }
            if let Some(offset) = sample.committed_offset {
                wanted
                    .entry((sample.topic.clone(), sample.partition))
                    .or_insert(offset);
            }
        }
        if wanted.is_empty() {
            return HeadRecords::new();
        }
        if self.head_reader.is_none() {
            let reader = client_with(
                &self.brokers,
                Some(READER_GROUP),
                &[
                    // Answer fetches at once: the records are there, or not worth waiting for.
                    ("fetch.wait.max.ms", "10"),
                    ("fetch.error.backoff.ms", "10"),
                    ("enable.partition.eof", "false"),
                ],
            );
            match reader {
                Ok(reader) => self.head_reader = Some(reader),
                Err(error) => {
                    tracing::warn!(%error, "cannot create the head record reader");
                    return HeadRecords::new();
                }
            }
        }
        let Some(reader) = &self.head_reader else {
            return HeadRecords::new();
        };
        let mut list = TopicPartitionList::new();
        for ((topic, partition), offset) in &wanted {
            // Cannot fail: committed offsets are non-negative.
            let _ = list.add_partition_offset(topic, *partition, Offset::Offset(*offset));
        }
        if let Err(error) = reader.assign(&list) {
            tracing::warn!(%error, "cannot assign partitions to the head record reader");
            return HeadRecords::new();
        }
        let mut written: HashMap<(String, i32), (i64, i64)> = HashMap::new();
        let deadline = std::time::Instant::now() + HEAD_READ_BUDGET;
        while written.len() < wanted.len() {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            match reader.poll(left) {
                Some(Ok(message)) => {
                    let key = (message.topic().to_owned(), message.partition());
                    let (Some(offset), Some(millis)) =
                        (wanted.get(&key), message.timestamp().to_millis())
                    else {
                        continue;
                    };
                    if message.offset() >= *offset {
                        written.entry(key).or_insert((message.offset(), millis));
                    }
                }
                Some(Err(error)) => {
                    tracing::debug!(%error, "head record read failed");
                }
                None => break,
            }
        }
        let _ = reader.unassign();
        lagging
            .iter()
            .filter_map(|s| {
                let (offset, millis) = written.get(&(s.topic.clone(), s.partition))?;
                (Some(*offset) >= s.committed_offset).then(|| {
                    (
                        (s.consumer_group.clone(), s.topic.clone(), s.partition),
                        (*offset, *millis),
                    )
                })
            })
            .collect()
    }

    /// Where the last poll spent its time.
    pub fn last_phases(&self) -> PollPhases {
        self.last_phases
    }

    fn wanted(&self, group: &str) -> bool {
        self.targets.groups.is_empty()
            || self.targets.groups.iter().any(|p| p.matches(group))
            || self.targets.group_topics.contains_key(group)
    }

    /// High and low watermarks of every partition of `topics`: `ListOffsets` for `End` and
    /// `Beginning`, in chunks of [`WATERMARK_CHUNK`] partitions all fetched concurrently
    /// (librdkafka's handling of one huge list grows faster than linearly).
    fn watermarks(
        &self,
        topics: &BTreeSet<&str>,
        partitions_of: &HashMap<&str, Vec<i32>>,
    ) -> Result<(Watermarks, Watermarks), PollError> {
        let mut lists = Vec::new();
        for which in [Offset::End, Offset::Beginning] {
            lists.push((which, TopicPartitionList::new()));
            for topic in topics {
                for partition in partitions_of.get(topic).into_iter().flatten() {
                    if lists
                        .last()
                        .is_some_and(|(_, l)| l.count() >= WATERMARK_CHUNK)
                    {
                        lists.push((which, TopicPartitionList::new()));
                    }
                    if let Some((_, list)) = lists.last_mut() {
                        // Cannot fail: End and Beginning are always representable.
                        let _ = list.add_partition_offset(topic, *partition, which);
                    }
                }
            }
        }
        lists.retain(|(_, l)| l.count() > 0);
        let answers: Vec<(Offset, Result<TopicPartitionList, KafkaError>)> =
            std::thread::scope(|scope| {
                let handles: Vec<_> = lists
                    .into_iter()
                    .map(|(which, list)| {
                        let handle =
                            scope.spawn(move || self.cluster.offsets_for_times(list, self.timeout));
                        (which, handle)
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|(which, handle)| {
                        (which, handle.join().unwrap_or(Err(KafkaError::Canceled)))
                    })
                    .collect()
            });
        let (mut highs, mut lows) = (Watermarks::new(), Watermarks::new());
        for (which, answer) in answers {
            let watermarks = if which == Offset::End {
                &mut highs
            } else {
                &mut lows
            };
            let answered = answer.map_err(|source| PollError::Fetch {
                what: "partition watermarks",
                brokers: self.brokers.clone(),
                source,
            })?;
            watermarks.extend(
                answered
                    .elements()
                    .iter()
                    .filter(|e| e.error().is_ok())
                    .filter_map(|e| match e.offset() {
                        Offset::Offset(offset) => {
                            Some(((e.topic().to_owned(), e.partition()), offset))
                        }
                        _ => None,
                    }),
            );
        }
        Ok((highs, lows))
    }
}

fn client(brokers: &str, group: Option<&str>) -> Result<BaseConsumer, PollError> {
    client_with(brokers, group, &[])
}

fn client_with(
    brokers: &str,
    group: Option<&str>,
    extra: &[(&str, &str)],
) -> Result<BaseConsumer, PollError> {
    let mut config = ClientConfig::new();
    for (key, value) in extra {
        config.set(*key, *value);
    }
    config
        .set("bootstrap.servers", brokers)
        .set("client.id", CLIENT_ID)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("log_level", "3");
    if let Some(group) = group {
        config.set("group.id", group);
    }
    config.create().map_err(|source| PollError::Client {
        brokers: brokers.to_owned(),
        source,
    })
}
