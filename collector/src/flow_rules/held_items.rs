//! The due items of the sends a pass evaluated that it has not written yet. When producers
//! and consumers export apart, a send and its consumptions land in different ranges of the
//! same pass; a consumption then takes its groups from the held item in memory, and an
//! item all its groups took is never written, instead of being inserted by one range and
//! looked up and deleted by the next.
//!
//! The pass writes what it holds with its cursor (the cursor never passes a send whose
//! items are only held): at its end, and after any range that leaves more than it may
//! hold. Held items are new, so none is overdue yet.

use causeway_storage::{DueItem, SpanId};

use crate::flow_rules::evaluate::{Consumption, reads, take_groups};
use crate::flow_rules::item_index::ItemIndex;

/// Due items a pass holds before it writes them with its cursor. A test holding 10,000
/// items with UUID-long message ids (this bound and a range's new items) grew its RSS by
/// 12.3 MiB (docs/DECISIONS.md).
pub const HELD_ITEMS: usize = 5_000;

/// Due items not written yet, in the order they were held (`None`: taken by all its
/// groups), indexed as stored items are.
#[derive(Debug, Default)]
pub struct HeldItems {
    items: Vec<Option<DueItem>>,
    index: ItemIndex,
    held: usize,
}

impl HeldItems {
    /// Items held and not taken.
    pub fn len(&self) -> usize {
        self.held
    }

    /// Whether no item is held.
    pub fn is_empty(&self) -> bool {
        self.held == 0
    }

    /// Holds `items`.
    pub fn hold(&mut self, items: Vec<DueItem>) {
        for item in items {
            self.index.add(self.items.len(), &item);
            self.items.push(Some(item));
            self.held += 1;
        }
    }

    /// Whether the items of send `span` are held (or were, and every group took them): the
    /// store then has none, as a send's items are made once, when its range is evaluated.
    pub fn has_send(&self, span: SpanId) -> bool {
        self.index.has_send(span)
    }

    /// Takes `consumption`'s group from every held item it reads, dropping those left with
    /// no group; returns whether it read any.
    pub fn consume(&mut self, consumption: &Consumption) -> bool {
        let mut read = false;
        for at in self.index.candidates(consumption) {
            let Some(item) = &mut self.items[at] else {
                continue;
            };
            if !reads(consumption, item) {
                continue;
            }
            read = true;
            if take_groups(item, consumption) && item.groups.is_empty() {
                self.items[at] = None;
                self.held -= 1;
            }
        }
        read
    }

    /// Every item still held, in the order held; nothing is held after.
    pub fn take(&mut self) -> Vec<DueItem> {
        self.index = ItemIndex::default();
        self.held = 0;
        std::mem::take(&mut self.items)
            .into_iter()
            .flatten()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use causeway_storage::TraceId;

    use super::*;
    use crate::flow_rules::item_index::tests as index_tests;

    fn item(n: u8, message: &str, groups: &[&str]) -> DueItem {
        DueItem {
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            ..index_tests::item(n, "orders", Some(message), Some((0, i64::from(n))))
        }
    }

    fn consumption(group: Option<&str>, source: Option<u8>, message: Option<&str>) -> Consumption {
        Consumption {
            group: group.map(Into::into),
            sources: source
                .map(|n| (TraceId([n; 16]), SpanId([n; 8])))
                .into_iter()
                .collect(),
            topic: Some("orders".into()),
            message_id: message.map(Into::into),
            partition: None,
            offset: None,
        }
    }

    #[test]
    fn consumptions_take_groups_from_held_items_and_an_item_with_none_left_is_dropped() {
        let mut held = HeldItems::default();
        held.hold(vec![
            item(1, "m1", &["billing", "inventory"]),
            item(2, "m2", &["billing"]),
        ]);
        held.hold(vec![item(3, "m3", &["billing"])]);
        assert_eq!(held.len(), 3);
        assert!(held.has_send(SpanId([2; 8])) && !held.has_send(SpanId([4; 8])));

        assert!(held.consume(&consumption(Some("billing"), Some(1), None)));
        assert_eq!(held.len(), 3, "send 1 still waits for inventory");
        assert!(held.consume(&consumption(Some("billing"), None, Some("m2"))));
        assert_eq!(held.len(), 2, "found by message id, and taken whole");
        assert!(
            !held.consume(&consumption(Some("billing"), Some(2), None)),
            "an item taken whole is read no more"
        );
        assert!(
            held.has_send(SpanId([2; 8])),
            "but its send stays known: the store has no item of it"
        );
        assert!(!held.consume(&consumption(Some("billing"), Some(9), Some("m9"))));
        assert!(
            held.consume(&consumption(Some("shipping"), Some(3), None)),
            "a group not expected reads the item and takes nothing"
        );
        assert_eq!(held.len(), 2);

        let left = held.take();
        let left: Vec<(u8, Vec<String>)> = left
            .into_iter()
            .map(|i| (i.send_span_id.0[0], i.groups))
            .collect();
        assert_eq!(
            left,
            [
                (1, vec!["inventory".to_owned()]),
                (3, vec!["billing".to_owned()])
            ]
        );
        assert!(held.is_empty() && !held.has_send(SpanId([1; 8])));
        assert!(held.take().is_empty());
    }
}
