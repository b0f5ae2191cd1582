//! The embedded bus: an in-process stand-in for Kafka with topics, partitions, offsets,
//! consumer groups, committed offsets, record timestamps and byte headers.
//!
//! It keeps Kafka's semantics where the demo and the collector can see them: a keyed
//! record always lands on the same partition (Kafka's murmur2 partitioner), offsets grow
//! by one per record, a group's committed offset is the next offset it will read, a
//! rewind to the committed offsets redelivers what was read but not committed, and headers
//! travel as `(name, optional bytes)` pairs exactly as a Kafka client hands them over.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use crate::partitioner::partition_for_key;

/// Message headers as Kafka carries them: names with optional byte values, in order,
/// duplicates allowed.
pub type Headers = Vec<(String, Option<Vec<u8>>)>;

/// A record to append to a topic.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OutgoingRecord {
    /// The topic to append to.
    pub topic: String,
    /// The key; records with the same key land on the same partition.
    pub key: Option<Vec<u8>>,
    /// The record's value.
    pub payload: Vec<u8>,
    /// The record's headers.
    pub headers: Headers,
}

/// A record as stored in a partition and handed to consumers.
#[derive(Debug, Clone, PartialEq)]
pub struct BusRecord {
    /// The record's topic.
    pub topic: String,
    /// The record's partition.
    pub partition: i32,
    /// The record's offset within its partition.
    pub offset: i64,
    /// The key, if any.
    pub key: Option<Vec<u8>>,
    /// The value.
    pub payload: Vec<u8>,
    /// The headers, byte for byte as produced.
    pub headers: Headers,
    /// When the record was appended, in milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
}

/// What the bus can refuse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BusError {
    /// The record names a topic that was never created.
    #[error("unknown topic {topic}")]
    UnknownTopic {
        /// The topic asked for.
        topic: String,
    },
    /// A topic needs at least one partition.
    #[error("topic {topic} needs at least one partition, got {partitions}")]
    NoPartitions {
        /// The topic being created.
        topic: String,
        /// The partition count asked for.
        partitions: i32,
    },
    /// A commit or seek named a partition the group does not read.
    #[error("group {group} does not read {topic}[{partition}]")]
    NotAssigned {
        /// The consumer group.
        group: String,
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
    },
}

/// One `(group, topic, partition)` lag observation: what a lag poller reads from Kafka.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LagSnapshot {
    /// The consumer group.
    pub group: String,
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The group's committed offset: the next offset it will read.
    pub committed_offset: i64,
    /// The partition's low watermark (oldest offset still stored).
    pub low_watermark: i64,
    /// The partition's high watermark (the offset the next record will get).
    pub high_watermark: i64,
    /// Timestamp of the record at the committed offset, when one is waiting.
    pub next_record_timestamp_ms: Option<i64>,
}

impl LagSnapshot {
    /// Records waiting behind the committed offset.
    pub fn lag_messages(&self) -> i64 {
        (self.high_watermark - self.committed_offset.max(self.low_watermark)).max(0)
    }
}

#[derive(Debug, Default)]
struct Partition {
    log: Vec<BusRecord>,
}

#[derive(Debug)]
struct Topic {
    partitions: Vec<Partition>,
    next_unkeyed: usize,
}

/// Per partition read state of one group: `committed` survives a rewind, `position` not.
#[derive(Debug, Clone, Copy, Default)]
struct Cursor {
    committed: i64,
    position: i64,
}

#[derive(Debug, Default)]
struct Group {
    cursors: BTreeMap<(String, i32), Cursor>,
    next_turn: usize,
}

#[derive(Debug, Default)]
struct State {
    topics: BTreeMap<String, Topic>,
    groups: BTreeMap<String, Group>,
}

/// The in-process bus. Cloning gives another handle on the same topics and groups.
#[derive(Debug, Clone)]
pub struct Bus {
    state: Arc<Mutex<State>>,
    appended: Arc<watch::Sender<u64>>,
}

impl Default for Bus {
    fn default() -> Self {
        Bus::new()
    }
}

impl Bus {
    /// An empty bus with no topics.
    pub fn new() -> Bus {
        let (appended, _) = watch::channel(0);
        Bus {
            state: Arc::default(),
            appended: Arc::new(appended),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; keep using it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Creates `topic` with `partitions` partitions; creating an existing topic is a no-op.
    pub fn create_topic(&self, topic: &str, partitions: i32) -> Result<(), BusError> {
        if partitions < 1 {
            return Err(BusError::NoPartitions {
                topic: topic.to_owned(),
                partitions,
            });
        }
        let mut state = self.lock();
        state
            .topics
            .entry(topic.to_owned())
            .or_insert_with(|| Topic {
                partitions: (0..partitions).map(|_| Partition::default()).collect(),
                next_unkeyed: 0,
            });
        Ok(())
    }

    /// Appends a record, timestamped now, and returns where it landed.
    pub fn produce(&self, record: OutgoingRecord) -> Result<(i32, i64), BusError> {
        self.produce_at(record, now_ms())
    }

    /// Appends a record with the given timestamp and returns `(partition, offset)`.
    pub fn produce_at(
        &self,
        record: OutgoingRecord,
        timestamp_ms: i64,
    ) -> Result<(i32, i64), BusError> {
        let landed = {
            let mut state = self.lock();
            let topic =
                state
                    .topics
                    .get_mut(&record.topic)
                    .ok_or_else(|| BusError::UnknownTopic {
                        topic: record.topic.clone(),
                    })?;
            let count = topic.partitions.len();
            let index = match &record.key {
                Some(key) => partition_for_key(key, count),
                None => {
                    topic.next_unkeyed = (topic.next_unkeyed + 1) % count;
                    topic.next_unkeyed
                }
            };
            let partition = &mut topic.partitions[index];
            let offset = partition.log.len() as i64;
            let partition_id = index as i32;
            partition.log.push(BusRecord {
                topic: record.topic,
                partition: partition_id,
                offset,
                key: record.key,
                payload: record.payload,
                headers: record.headers,
                timestamp_ms,
            });
            (partition_id, offset)
        };
        self.appended.send_modify(|count| *count += 1);
        Ok(landed)
    }

    /// Joins `group` to `topics`, starting from the earliest offset where the group has
    /// no commit yet (Kafka's `auto.offset.reset=earliest`).
    pub fn subscribe(&self, group: &str, topics: &[&str]) -> Result<GroupConsumer, BusError> {
        let mut state = self.lock();
        let mut assigned = Vec::new();
        for topic in topics {
            let partitions = state
                .topics
                .get(*topic)
                .ok_or_else(|| BusError::UnknownTopic {
                    topic: (*topic).to_owned(),
                })?
                .partitions
                .len();
            assigned.extend((0..partitions as i32).map(|p| ((*topic).to_owned(), p)));
        }
        let entry = state.groups.entry(group.to_owned()).or_default();
        for key in assigned {
            entry.cursors.entry(key).or_default();
        }
        Ok(GroupConsumer {
            bus: self.clone(),
            group: group.to_owned(),
            appended: self.appended.subscribe(),
        })
    }

    /// One lag observation per `(group, topic, partition)` the groups read, sorted.
    pub fn lag_snapshot(&self) -> Vec<LagSnapshot> {
        let state = self.lock();
        let mut snapshots = Vec::new();
        for (group, entry) in &state.groups {
            for ((topic, partition), cursor) in &entry.cursors {
                let Some(log) = state
                    .topics
                    .get(topic)
                    .and_then(|t| t.partitions.get(*partition as usize))
                    .map(|p| &p.log)
                else {
                    continue;
                };
                snapshots.push(LagSnapshot {
                    group: group.clone(),
                    topic: topic.clone(),
                    partition: *partition,
                    committed_offset: cursor.committed,
                    low_watermark: 0,
                    high_watermark: log.len() as i64,
                    next_record_timestamp_ms: log
                        .get(cursor.committed as usize)
                        .map(|r| r.timestamp_ms),
                });
            }
        }
        snapshots
    }
}

/// One member of a consumer group. The demo runs one member per group, so it owns
/// every partition of the topics it subscribed to.
#[derive(Debug)]
pub struct GroupConsumer {
    bus: Bus,
    group: String,
    appended: watch::Receiver<u64>,
}

impl GroupConsumer {
    /// The group this consumer belongs to.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// The next unread record, taking partitions in turn, or `None` when all are read.
    pub fn poll(&self) -> Option<BusRecord> {
        let mut state = self.bus.lock();
        let State { topics, groups } = &mut *state;
        let group = groups.get_mut(&self.group)?;
        let count = group.cursors.len();
        let start = group.next_turn;
        let keys: Vec<(String, i32)> = group.cursors.keys().cloned().collect();
        for step in 0..count {
            let key = &keys[(start + step) % count];
            let record = topics
                .get(&key.0)
                .and_then(|t| t.partitions.get(key.1 as usize))
                .and_then(|p| {
                    let position = group.cursors.get(key).map_or(0, |c| c.position);
                    p.log.get(position as usize)
                })
                .cloned();
            if let Some(record) = record {
                if let Some(cursor) = group.cursors.get_mut(key) {
                    cursor.position += 1;
                }
                group.next_turn = (start + step + 1) % count;
                return Some(record);
            }
        }
        None
    }

    /// Waits up to `timeout` for the next unread record.
    pub async fn recv(&mut self, timeout: Duration) -> Option<BusRecord> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            self.appended.borrow_and_update();
            if let Some(record) = self.poll() {
                return Some(record);
            }
            match tokio::time::timeout_at(deadline, self.appended.changed()).await {
                Ok(Ok(())) => continue,
                Ok(Err(_)) | Err(_) => return None,
            }
        }
    }

    /// Commits `record`: the group's committed offset becomes the offset after it.
    pub fn commit(&self, record: &BusRecord) -> Result<(), BusError> {
        self.commit_offset(&record.topic, record.partition, record.offset + 1)
    }

    /// Sets the committed offset (the next offset to read) of one partition.
    pub fn commit_offset(&self, topic: &str, partition: i32, next: i64) -> Result<(), BusError> {
        let mut state = self.bus.lock();
        let cursor = state
            .groups
            .get_mut(&self.group)
            .and_then(|g| g.cursors.get_mut(&(topic.to_owned(), partition)))
            .ok_or_else(|| BusError::NotAssigned {
                group: self.group.clone(),
                topic: topic.to_owned(),
                partition,
            })?;
        cursor.committed = next;
        Ok(())
    }

    /// Moves every read position back to the committed offset, as a rebalance does:
    /// records read but not committed are delivered again.
    pub fn rewind_to_committed(&self) {
        let mut state = self.bus.lock();
        if let Some(group) = state.groups.get_mut(&self.group) {
            for cursor in group.cursors.values_mut() {
                cursor.position = cursor.committed;
            }
        }
    }
}

/// Milliseconds since the Unix epoch (zero if the clock is before it).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests;
