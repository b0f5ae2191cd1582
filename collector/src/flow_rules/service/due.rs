//! The flow rule pass's work on the due-time table: consumptions applied to held and
//! stored due items, the items that fell due, and the overdue ones checked again.

use std::collections::BTreeMap;

use causeway_conventions::alert::label;
use causeway_storage::{DueItem, FlowPassWrite, SendRef, StorageError};

use super::FlowRuleService;
use crate::flow_rules::evaluate::{Consumption, reads, take_groups};
use crate::flow_rules::held_items::HeldItems;
use crate::flow_rules::item_index::ItemIndex;

/// Due items read at a time.
const DUE_BATCH: usize = 5_000;
/// Overdue items checked again each pass for a consumption matched by message id or
/// position only (earliest first).
const OVERDUE_RECHECK: usize = 2_000;
/// An event overdue this long is forgotten (and no longer counted).
const FORGET_OVERDUE_NS: i64 = 24 * 3600 * 1_000_000_000;

impl FlowRuleService {
    /// Applies consumptions the chunk's own sends did not explain to the held due items
    /// and to the stored ones of the sends they point at; the rest are remembered for
    /// when their send falls due.
    pub(super) async fn consume_earlier(
        &mut self,
        consumptions: Vec<Consumption>,
        held: &mut HeldItems,
        write: &mut FlowPassWrite,
        now_ns: i64,
    ) -> Result<(), StorageError> {
        if consumptions.is_empty() {
            return Ok(());
        }
        let sends: Vec<SendRef> = consumptions
            .iter()
            .flat_map(|c| c.sources.iter())
            .filter(|(_, span_id)| !held.has_send(*span_id))
            .map(|&(trace_id, span_id)| SendRef {
                trace_id,
                span_id,
                sent_ns: self.recent_sends.start_of(span_id),
            })
            .collect();
        let mut items = if sends.is_empty() {
            Vec::new()
        } else {
            self.rules_store.due_of_sends(sends).await?
        };
        let index = ItemIndex::of(&items);
        let mut touched = vec![false; items.len()];
        for consumption in consumptions {
            let mut matched = held.consume(&consumption);
            for at in index.candidates(&consumption) {
                let item = &mut items[at];
                if !reads(&consumption, item) {
                    continue;
                }
                matched = true;
                // Only an overdue item's groups are counted, so only its are kept to compare.
                let before = item.overdue.then(|| item.groups.clone());
                if take_groups(item, &consumption) {
                    touched[at] = true;
                    for group in before.iter().flatten() {
                        if !item.groups.contains(group) {
                            self.overdue_delta(item, group, -1, now_ns);
                        }
                    }
                }
            }
            if !matched {
                write.seen.push(causeway_storage::SeenMark {
                    consumer_group: consumption.group.map(String::from),
                    source_span_id: consumption.sources.first().map(|(_, span)| *span),
                    topic: consumption.topic.map(String::from),
                    message_id: consumption.message_id.map(String::from),
                    partition: consumption.partition,
                    offset: consumption.offset,
                });
                // Every source is remembered, so a link finds its send as a parent does.
                let mark = write.seen.last().cloned();
                if let Some(mark) = mark {
                    for (_, source) in consumption.sources.iter().skip(1) {
                        write.seen.push(causeway_storage::SeenMark {
                            source_span_id: Some(*source),
                            ..mark.clone()
                        });
                    }
                }
            }
        }
        for (item, touched) in items.drain(..).zip(touched) {
            if !touched {
                continue;
            }
            if item.groups.is_empty() {
                write.due_deletes.push(item.key());
            } else {
                write.due_upserts.push(item);
            }
        }
        Ok(())
    }

    fn overdue_delta(&mut self, item: &DueItem, group: &str, delta: i64, now_ns: i64) {
        let Some(rule) = self.settings.rules.iter().position(|r| r.name == item.rule) else {
            return;
        };
        let subject = BTreeMap::from([
            (label::CONSUMER_GROUP.to_owned(), group.to_owned()),
            (label::TOPIC.to_owned(), item.topic.clone()),
        ]);
        let flow = item
            .correlation_id
            .clone()
            .unwrap_or_else(|| item.send_trace_id.to_string());
        self.subjects.overdue(
            &self.settings.rules,
            rule,
            &subject,
            delta,
            Some(&flow),
            now_ns,
        );
    }

    /// Reads the items due by `now_ns` through the due-time index: each expected group
    /// remembered as having consumed the message is taken off, an item with none left is
    /// done, and the rest are overdue (and counted). Returns how many became overdue.
    pub(super) async fn fall_due(&mut self, now_ns: i64) -> Result<usize, StorageError> {
        let mut overdue = 0;
        loop {
            let items = self.rules_store.due_by(now_ns, DUE_BATCH).await?;
            let full = items.len() == DUE_BATCH;
            if items.is_empty() {
                break;
            }
            let seen = self.rules_store.seen_groups(items.clone()).await?;
            let mut write = FlowPassWrite::default();
            for (mut item, groups) in items.into_iter().zip(seen) {
                for group in groups {
                    match group {
                        Some(group) => item.groups.retain(|g| *g != group),
                        None => item.groups.clear(),
                    }
                }
                if item.groups.is_empty() {
                    write.due_deletes.push(item.key());
                    continue;
                }
                item.overdue = true;
                overdue += 1;
                for group in item.groups.clone() {
                    self.overdue_delta(&item, &group, 1, now_ns);
                }
                write.due_upserts.push(item);
            }
            self.rules_store.write(write).await?;
            if !full {
                break;
            }
        }
        Ok(overdue)
    }

    /// Checks the earliest overdue items against the consumptions remembered since (those
    /// matched by message id or position only), and forgets items overdue for a day.
    pub(super) async fn recheck_overdue(&mut self, now_ns: i64) -> Result<(), StorageError> {
        let items = self
            .rules_store
            .overdue_before(i64::MAX, OVERDUE_RECHECK)
            .await?;
        if items.is_empty() {
            return Ok(());
        }
        let seen = self.rules_store.seen_groups(items.clone()).await?;
        let mut write = FlowPassWrite::default();
        for (mut item, groups) in items.into_iter().zip(seen) {
            let before = item.groups.clone();
            for group in groups {
                match group {
                    Some(group) => item.groups.retain(|g| *g != group),
                    None => item.groups.clear(),
                }
            }
            let forget = now_ns - item.due_ns > FORGET_OVERDUE_NS;
            let gone: Vec<String> = if forget {
                before.clone()
            } else {
                before
                    .iter()
                    .filter(|g| !item.groups.contains(g))
                    .cloned()
                    .collect()
            };
            for group in &gone {
                self.overdue_delta(&item, group, -1, now_ns);
            }
            if forget || item.groups.is_empty() {
                write.due_deletes.push(item.key());
            } else if !gone.is_empty() {
                write.due_upserts.push(item);
            }
        }
        self.rules_store.write(write).await?;
        Ok(())
    }
}
