//! Due items indexed by what a consumption may read them by (its sources, its message id,
//! its position), so that each consumption is checked against its few candidates, not
//! against every item: the stored items a chunk's consumptions were matched against, and
//! the items a pass holds (`held_items`).

use std::hash::BuildHasher;

use causeway_storage::{DueItem, SpanId};
use foldhash::fast::FixedState;

use crate::flow_rules::evaluate::{Consumption, FastMap};

/// Where each item of a slice is, by send span, by topic and message id, and by topic and
/// position. The last two are keyed by a hash of their parts, not by copies of them (the
/// items are changed while the index is used, so it cannot borrow them): a pass holds
/// thousands of items, and the hash makes at most a few more candidates, which `reads`
/// turns down.
#[derive(Debug, Default)]
pub struct ItemIndex {
    by_send: FastMap<SpanId, Vec<usize>>,
    by_message: FastMap<u64, Vec<usize>>,
    by_position: FastMap<u64, Vec<usize>>,
}

/// The key of a topic's message id.
fn message_key(topic: &str, message: &str) -> u64 {
    FixedState::default().hash_one((topic, message))
}

/// The key of a position in a topic.
fn position_key(topic: &str, partition: Option<i64>, offset: i64) -> u64 {
    FixedState::default().hash_one((topic, partition, offset))
}

impl ItemIndex {
    /// The index of `items`.
    pub fn of(items: &[DueItem]) -> ItemIndex {
        let mut index = ItemIndex::default();
        for (at, item) in items.iter().enumerate() {
            index.add(at, item);
        }
        index
    }

    /// Adds `item`, found at position `at` (after every position added before).
    pub fn add(&mut self, at: usize, item: &DueItem) {
        self.by_send.entry(item.send_span_id).or_default().push(at);
        if let Some(message) = &item.message_id {
            let key = message_key(&item.topic, message);
            self.by_message.entry(key).or_default().push(at);
        }
        if let Some(offset) = item.offset {
            let key = position_key(&item.topic, item.partition, offset);
            self.by_position.entry(key).or_default().push(at);
        }
    }

    /// Whether an item of send `span` was added.
    pub fn has_send(&self, span: SpanId) -> bool {
        self.by_send.contains_key(&span)
    }

    /// The positions of the items `consumption` may read, ascending, each once: every item
    /// [`crate::flow_rules::evaluate::reads`] would accept is among them (and, when two
    /// keys' hashes meet, an item it would not).
    pub fn candidates(&self, consumption: &Consumption) -> Vec<usize> {
        let mut found: Vec<usize> = Vec::new();
        for (_, source) in &consumption.sources {
            found.extend(self.by_send.get(source).into_iter().flatten());
        }
        if let Some(topic) = consumption.topic.as_deref() {
            if let Some(message) = consumption.message_id.as_deref() {
                let key = message_key(topic, message);
                found.extend(self.by_message.get(&key).into_iter().flatten());
            }
            if let Some(offset) = consumption.offset {
                let key = position_key(topic, consumption.partition, offset);
                found.extend(self.by_position.get(&key).into_iter().flatten());
            }
        }
        found.sort_unstable();
        found.dedup();
        found
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use causeway_storage::TraceId;

    use super::*;
    use crate::flow_rules::evaluate::reads;

    /// The item of send `n` (trace `n` too) to `topic`, waiting for billing.
    pub(crate) fn item(
        n: u8,
        topic: &str,
        message: Option<&str>,
        position: Option<(i64, i64)>,
    ) -> DueItem {
        DueItem {
            send_span_id: SpanId([n; 8]),
            rule: "late".into(),
            send_trace_id: TraceId([n; 16]),
            due_ns: 10,
            overdue: false,
            topic: topic.into(),
            message_id: message.map(str::to_owned),
            partition: position.map(|(p, _)| p),
            offset: position.map(|(_, o)| o),
            correlation_id: None,
            event_type: None,
            producer: "orders".into(),
            sent_ns: 1,
            groups: vec!["billing".into()],
        }
    }

    fn consumption(
        sources: &[u8],
        topic: Option<&str>,
        message: Option<&str>,
        position: Option<(Option<i64>, i64)>,
    ) -> Consumption {
        Consumption {
            group: Some("billing".into()),
            sources: sources
                .iter()
                .map(|&n| (TraceId([n; 16]), SpanId([n; 8])))
                .collect(),
            topic: topic.map(Into::into),
            message_id: message.map(Into::into),
            partition: position.and_then(|(p, _)| p),
            offset: position.map(|(_, o)| o),
        }
    }

    /// Every consumption's candidates hold every item `reads` accepts (and nothing twice).
    #[test]
    fn the_candidates_hold_every_item_a_consumption_reads() {
        let items = vec![
            item(1, "orders", Some("m1"), Some((0, 7))),
            item(2, "orders", Some("m2"), None),
            item(3, "payments", Some("m1"), Some((0, 7))),
            item(4, "orders", None, Some((1, 7))),
            item(1, "orders", Some("m1"), Some((0, 7))),
        ];
        let consumptions = [
            consumption(&[1], None, None, None),
            consumption(&[9], Some("orders"), Some("m1"), None),
            consumption(&[9], Some("payments"), None, Some((Some(0), 7))),
            consumption(&[9], Some("orders"), None, Some((Some(1), 7))),
            consumption(&[9], Some("orders"), None, Some((None, 7))),
            consumption(&[2, 3], Some("orders"), Some("m2"), Some((Some(0), 7))),
            consumption(&[9], Some("shipping"), Some("m1"), Some((Some(0), 7))),
        ];
        let index = ItemIndex::of(&items);
        for consumption in &consumptions {
            let candidates = index.candidates(consumption);
            let read: Vec<usize> = (0..items.len())
                .filter(|&at| reads(consumption, &items[at]))
                .collect();
            assert!(
                read.iter().all(|at| candidates.contains(at)),
                "{consumption:?}: reads {read:?}, candidates {candidates:?}"
            );
            let mut unique = candidates.clone();
            unique.dedup();
            assert_eq!(unique, candidates);
        }
        assert_eq!(
            index.candidates(&consumptions[0]),
            [0, 4],
            "both items of send 1"
        );
        assert_eq!(index.candidates(&consumptions[5]), [0, 1, 2, 4]);
        assert!(index.candidates(&consumptions[6]).is_empty());
    }
}
