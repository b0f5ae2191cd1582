//! What a consumer group's `OffsetFetch` answer says, pure: for each partition the broker
//! answered for, the group's committed offset, no offset, or an error of that partition
//! alone. The rows come from the broker through librdkafka (`group_offsets.rs`), so any
//! rows decode without a panic; what cannot be read is left out, never guessed.
//!
//! Asked without a topic list (every topic), a broker answers only for partitions the group
//! has committed on, so the topics in the answer are the topics the group consumes. A
//! partition the answer leaves out was never committed: its lag is unknown, never 0.

use std::collections::{BTreeMap, BTreeSet};

/// One partition of a group's `OffsetFetch` answer, as librdkafka parsed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedPartition {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The committed offset; negative when the group has none there (`-1` on the wire,
    /// which librdkafka turns into `-1001`).
    pub offset: i64,
    /// The partition's error code: 0 for none, a Kafka protocol code (positive), or a
    /// librdkafka code (negative).
    pub error_code: i32,
}

/// A group's position on one partition, as far as the answer tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionOffset {
    /// The group committed this offset (the next one it will read).
    Committed(i64),
    /// The group holds no offset on the partition.
    NotCommitted,
    /// The broker answered with an error for this partition: its position is not known
    /// this time, though the group holds an offset there.
    Failed(i32),
}

/// One group's decoded answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupOffsets {
    partitions: BTreeMap<(String, i32), PartitionOffset>,
}

impl GroupOffsets {
    /// Decodes the partitions of one answer. An error on a partition wins over its offset;
    /// a row without a topic name or with a negative partition is malformed and left out;
    /// when a partition appears twice, its first row counts.
    pub fn decode(answer: &[FetchedPartition]) -> Self {
        let mut partitions = BTreeMap::new();
        for row in answer {
            if row.topic.is_empty() || row.partition < 0 {
                continue;
            }
            let offset = if row.error_code != 0 {
                PartitionOffset::Failed(row.error_code)
            } else if row.offset >= 0 {
                PartitionOffset::Committed(row.offset)
            } else {
                PartitionOffset::NotCommitted
            };
            partitions
                .entry((row.topic.clone(), row.partition))
                .or_insert(offset);
        }
        GroupOffsets { partitions }
    }

    /// The group's position on `topic`/`partition`; a partition the answer does not name
    /// was never committed.
    pub fn get(&self, topic: &str, partition: i32) -> PartitionOffset {
        self.partitions
            .get(&(topic.to_owned(), partition))
            .copied()
            .unwrap_or(PartitionOffset::NotCommitted)
    }

    /// Topics the group holds committed offsets on, including those whose partitions the
    /// broker answered with an error (the offsets are there, only unreadable now).
    pub fn topics(&self) -> BTreeSet<&str> {
        self.partitions
            .iter()
            .filter(|(_, offset)| !matches!(offset, PartitionOffset::NotCommitted))
            .map(|((topic, _), _)| topic.as_str())
            .collect()
    }

    /// The partitions answered with an error, with the error code.
    pub fn failed(&self) -> impl Iterator<Item = (&str, i32, i32)> {
        self.partitions
            .iter()
            .filter_map(|((topic, partition), offset)| match offset {
                PartitionOffset::Failed(code) => Some((topic.as_str(), *partition, *code)),
                _ => None,
            })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    /// Kafka protocol error codes seen in `OffsetFetch` answers.
    const UNKNOWN_TOPIC_OR_PARTITION: i32 = 3;
    const TOPIC_AUTHORIZATION_FAILED: i32 = 29;
    const UNSTABLE_OFFSET_COMMIT: i32 = 88;
    /// librdkafka's "no offset" (`RD_KAFKA_OFFSET_INVALID`).
    const OFFSET_INVALID: i64 = -1001;

    fn row(topic: &str, partition: i32, offset: i64, error_code: i32) -> FetchedPartition {
        FetchedPartition {
            topic: topic.into(),
            partition,
            offset,
            error_code,
        }
    }

    #[test]
    fn each_partition_decodes_on_its_own() {
        let answer = [
            row("orders", 0, 15, 0),
            row("orders", 1, 0, 0),
            row("orders", 2, OFFSET_INVALID, 0),
            row("orders", 3, -1, 0),
            row("orders", 4, 7, UNSTABLE_OFFSET_COMMIT),
            row("payments", 0, OFFSET_INVALID, UNKNOWN_TOPIC_OR_PARTITION),
            row("audit", 0, OFFSET_INVALID, 0),
        ];
        let decoded = GroupOffsets::decode(&answer);
        let cases: &[(&str, i32, PartitionOffset, &str)] = &[
            (
                "orders",
                0,
                PartitionOffset::Committed(15),
                "a committed offset",
            ),
            (
                "orders",
                1,
                PartitionOffset::Committed(0),
                "offset 0 is committed, not none",
            ),
            (
                "orders",
                2,
                PartitionOffset::NotCommitted,
                "librdkafka's invalid offset",
            ),
            ("orders", 3, PartitionOffset::NotCommitted, "the wire's -1"),
            (
                "orders",
                4,
                PartitionOffset::Failed(UNSTABLE_OFFSET_COMMIT),
                "a pending transactional commit: the error wins over the offset",
            ),
            (
                "orders",
                5,
                PartitionOffset::NotCommitted,
                "a partition the answer leaves out was never committed",
            ),
            (
                "payments",
                0,
                PartitionOffset::Failed(UNKNOWN_TOPIC_OR_PARTITION),
                "an error without an offset",
            ),
            (
                "audit",
                0,
                PartitionOffset::NotCommitted,
                "answered, no offset",
            ),
            (
                "absent",
                0,
                PartitionOffset::NotCommitted,
                "a topic not answered at all",
            ),
        ];
        for (topic, partition, expected, reason) in cases {
            assert_eq!(decoded.get(topic, *partition), *expected, "{reason}");
        }
        assert_eq!(
            decoded.topics(),
            BTreeSet::from(["orders", "payments"]),
            "topics with an offset, readable or not; audit has none"
        );
        let failed: Vec<_> = decoded.failed().collect();
        assert_eq!(
            failed,
            vec![
                ("orders", 4, UNSTABLE_OFFSET_COMMIT),
                ("payments", 0, UNKNOWN_TOPIC_OR_PARTITION)
            ]
        );
    }

    #[test]
    fn malformed_and_repeated_rows() {
        let cases: Vec<(&str, Vec<FetchedPartition>, PartitionOffset)> = vec![
            (
                "a negative partition is left out",
                vec![row("orders", -1, 5, 0)],
                PartitionOffset::NotCommitted,
            ),
            (
                "the first of two rows for a partition counts",
                vec![row("orders", 0, 5, 0), row("orders", 0, 9, 0)],
                PartitionOffset::Committed(5),
            ),
            (
                "an error row first stays an error",
                vec![
                    row("orders", 0, 5, TOPIC_AUTHORIZATION_FAILED),
                    row("orders", 0, 9, 0),
                ],
                PartitionOffset::Failed(TOPIC_AUTHORIZATION_FAILED),
            ),
        ];
        for (reason, answer, expected) in cases {
            let decoded = GroupOffsets::decode(&answer);
            assert_eq!(decoded.get("orders", 0), expected, "{reason}");
        }
        let nameless = GroupOffsets::decode(&[row("", 0, 5, 0)]);
        assert!(
            nameless.topics().is_empty(),
            "a row without a topic is left out"
        );
        assert_eq!(GroupOffsets::decode(&[]), GroupOffsets::default());
    }

    proptest::proptest! {
        #[test]
        fn any_rows_decode_and_every_topic_listed_has_an_offset(
            rows in proptest::collection::vec(
                ("[a-c]{0,2}", -2i32..4, -1002i64..20, -200i32..120),
                0..40,
            )
        ) {
            let answer: Vec<FetchedPartition> = rows
                .into_iter()
                .map(|(topic, partition, offset, error_code)| row(&topic, partition, offset, error_code))
                .collect();
            let decoded = GroupOffsets::decode(&answer);
            for topic in decoded.topics() {
                let held = answer.iter().any(|r| {
                    r.topic == topic
                        && !matches!(decoded.get(topic, r.partition), PartitionOffset::NotCommitted)
                });
                proptest::prop_assert!(held, "{topic} listed without an offset");
            }
        }
    }
}
