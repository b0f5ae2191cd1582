//! Which consumer groups the lag poller follows and which of their topics it samples, pure.
//!
//! - A group is followed when the broker lists it, when `[lag.group_topics]` names it, when
//!   stored spans show it processing a topic, or when the collector found it before (the
//!   groups it found persist in the store, so a restarted collector carries on).
//! - A group's topics are those it holds committed offsets on (the broker's answer to an
//!   `OffsetFetch` without a topic list), plus topics named for it in the configuration,
//!   seen in its spans, or in a live member's assignment. Membership says who is live,
//!   never which topics count: a group whose members all left keeps its topics and its
//!   lag, and the rules judge it STOP.
//! - A group is forgotten when the broker no longer lists it and holds no committed offset
//!   for it (on Kafka both happen when its offsets expire); a topic, when the group's
//!   offsets on it are gone. A topic that only a member's assignment named (the group never
//!   committed there) stays while the group does. A group the configuration names is never
//!   forgotten.
//! - When the broker cannot list groups, no group is forgotten for being unlisted, and
//!   member counts are unknown.
//! - When a group's offsets cannot be fetched, it keeps what it had and is not sampled.

use std::collections::{BTreeMap, BTreeSet};

use causeway_storage::LagGroupTopic;

use crate::lag::offset_fetch::GroupOffsets;

/// A group as the broker lists it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListedGroup {
    /// Live members; `None` while the group rebalances.
    pub members: Option<i64>,
    /// Topics in the live members' assignments.
    pub assigned: BTreeSet<String>,
}

/// The broker's group listing, by group.
pub type Listing = BTreeMap<String, ListedGroup>;

/// What the poller remembers of one topic of a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownTopic {
    /// The group held committed offsets on the topic when last asked (otherwise only a
    /// member's assignment named it).
    pub committed: bool,
    /// When the collector first found the topic for the group, in ns since the epoch.
    pub found_ns: i64,
}

/// Groups the poller found, with their topics.
pub type KnownGroups = BTreeMap<String, BTreeMap<String, KnownTopic>>;

/// Known groups from their stored rows.
pub fn known_from_rows(rows: Vec<LagGroupTopic>) -> KnownGroups {
    let mut known = KnownGroups::new();
    for row in rows {
        known.entry(row.consumer_group).or_default().insert(
            row.topic,
            KnownTopic {
                committed: row.committed,
                found_ns: row.found_ns,
            },
        );
    }
    known
}

/// Known groups as rows to store.
pub fn rows_of_known(known: &KnownGroups) -> Vec<LagGroupTopic> {
    known
        .iter()
        .flat_map(|(group, topics)| {
            topics.iter().map(|(topic, known)| LagGroupTopic {
                consumer_group: group.clone(),
                topic: topic.clone(),
                committed: known.committed,
                found_ns: known.found_ns,
            })
        })
        .collect()
}

/// What one cycle knows before fetching offsets.
#[derive(Debug, Clone, Copy)]
pub struct Sources<'a> {
    /// The broker's listing; `None` when listing failed.
    pub listing: Option<&'a Listing>,
    /// Topics the configuration names per group.
    pub configured: &'a BTreeMap<String, Vec<String>>,
    /// Topics stored spans show each group processing.
    pub learned: &'a BTreeMap<String, BTreeSet<String>>,
    /// Groups found in earlier cycles (or loaded from the store).
    pub known: &'a KnownGroups,
}

/// What to do this cycle.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Topics to sample, per group.
    pub sample: BTreeMap<String, BTreeSet<String>>,
    /// Live members per sampled group (`None` when unknown).
    pub members: BTreeMap<String, Option<i64>>,
    /// The groups and topics to remember from now on.
    pub known: KnownGroups,
    /// Groups that are gone: the broker no longer has them.
    pub forgotten: Vec<String>,
}

impl Sources<'_> {
    /// Every group whose committed offsets are asked for this cycle.
    pub fn groups(&self) -> BTreeSet<String> {
        let mut groups: BTreeSet<String> = self.configured.keys().cloned().collect();
        groups.extend(self.learned.keys().cloned());
        groups.extend(self.known.keys().cloned());
        groups.extend(self.listing.into_iter().flat_map(|l| l.keys().cloned()));
        groups
    }

    /// Topics this cycle is expected to sample, known before any offset is fetched: the
    /// known groups' topics and those configured, seen in spans, or assigned.
    pub fn expected_topics(&self) -> BTreeSet<String> {
        let mut topics: BTreeSet<String> = self
            .known
            .values()
            .flat_map(|t| t.keys().cloned())
            .collect();
        topics.extend(self.configured.values().flatten().cloned());
        topics.extend(self.learned.values().flatten().cloned());
        let listed = self.listing.into_iter().flat_map(|l| l.values());
        topics.extend(listed.flat_map(|g| g.assigned.iter().cloned()));
        topics
    }

    /// The plan, given the decoded offsets of every group whose fetch succeeded (a group
    /// missing from `fetched` failed) at `now_ns`.
    pub fn plan(&self, fetched: &BTreeMap<String, GroupOffsets>, now_ns: i64) -> Plan {
        let mut plan = Plan::default();
        for group in self.groups() {
            let listed = self.listing.map(|listing| listing.get(&group));
            let Some(offsets) = fetched.get(&group) else {
                if let Some(known) = self.known.get(&group) {
                    plan.known.insert(group, known.clone());
                }
                continue;
            };
            let committed = offsets.topics();
            let configured = self.configured.get(&group);
            let unlisted = matches!(listed, Some(None));
            if unlisted && committed.is_empty() && configured.is_none() {
                if self.known.contains_key(&group) {
                    plan.forgotten.push(group);
                }
                continue;
            }
            let before = self.known.get(&group);
            let found = |topic: &str| {
                before
                    .and_then(|topics| topics.get(topic))
                    .map_or(now_ns, |known| known.found_ns)
            };
            let mut topics: BTreeMap<String, KnownTopic> = BTreeMap::new();
            for topic in &committed {
                let known = KnownTopic {
                    committed: true,
                    found_ns: found(topic),
                };
                topics.insert((*topic).to_owned(), known);
            }
            let assigned = listed.flatten().map(|l| &l.assigned).into_iter().flatten();
            let assignment_only = before
                .into_iter()
                .flatten()
                .filter(|(_, known)| !known.committed)
                .map(|(topic, _)| topic);
            for topic in assigned.chain(assignment_only) {
                topics.entry(topic.clone()).or_insert(KnownTopic {
                    committed: false,
                    found_ns: found(topic),
                });
            }
            let mut sample: BTreeSet<String> = topics.keys().cloned().collect();
            sample.extend(configured.into_iter().flatten().cloned());
            sample.extend(self.learned.get(&group).into_iter().flatten().cloned());
            if !topics.is_empty() {
                plan.known.insert(group.clone(), topics);
            }
            if sample.is_empty() {
                continue;
            }
            let members = match listed {
                None => None,
                Some(None) => Some(0),
                Some(Some(listed)) => listed.members,
            };
            plan.members.insert(group.clone(), members);
            plan.sample.insert(group, sample);
        }
        plan
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::lag::offset_fetch::FetchedPartition;

    const NOW: i64 = 1_000;
    const EARLIER: i64 = 10;

    fn committed_on(topics: &[&str]) -> GroupOffsets {
        let rows: Vec<FetchedPartition> = topics
            .iter()
            .map(|topic| FetchedPartition {
                topic: (*topic).into(),
                partition: 0,
                offset: 4,
                error_code: 0,
            })
            .collect();
        GroupOffsets::decode(&rows)
    }

    fn listed(members: Option<i64>, assigned: &[&str]) -> ListedGroup {
        ListedGroup {
            members,
            assigned: assigned.iter().map(|t| (*t).to_owned()).collect(),
        }
    }

    fn known(topics: &[(&str, bool)]) -> BTreeMap<String, KnownTopic> {
        topics
            .iter()
            .map(|(topic, committed)| {
                (
                    (*topic).to_owned(),
                    KnownTopic {
                        committed: *committed,
                        found_ns: EARLIER,
                    },
                )
            })
            .collect()
    }

    fn set(topics: &[&str]) -> BTreeSet<String> {
        topics.iter().map(|t| (*t).to_owned()).collect()
    }

    /// One group's situation and what the plan must do with it.
    struct Case {
        reason: &'static str,
        /// `None`: the listing failed; `Some(None)`: listed without this group.
        listed: Option<Option<ListedGroup>>,
        configured: &'static [&'static str],
        learned: &'static [&'static str],
        known: &'static [(&'static str, bool)],
        /// `None`: the fetch failed.
        committed: Option<&'static [&'static str]>,
        sampled: Option<(&'static [&'static str], Option<i64>)>,
        remembered: &'static [(&'static str, bool)],
        forgotten: bool,
    }

    fn run(case: &Case) -> Plan {
        let group = "billing".to_owned();
        let listing: Option<Listing> = case.listed.clone().map(|listed| {
            listed
                .map(|l| Listing::from([(group.clone(), l)]))
                .unwrap_or_default()
        });
        let configured = if case.configured.is_empty() {
            BTreeMap::new()
        } else {
            BTreeMap::from([(
                group.clone(),
                case.configured.iter().map(|t| (*t).to_owned()).collect(),
            )])
        };
        let learned = if case.learned.is_empty() {
            BTreeMap::new()
        } else {
            BTreeMap::from([(group.clone(), set(case.learned))])
        };
        let known_groups = if case.known.is_empty() {
            KnownGroups::new()
        } else {
            KnownGroups::from([(group.clone(), known(case.known))])
        };
        let fetched: BTreeMap<String, GroupOffsets> = case
            .committed
            .map(|topics| BTreeMap::from([(group.clone(), committed_on(topics))]))
            .unwrap_or_default();
        let sources = Sources {
            listing: listing.as_ref(),
            configured: &configured,
            learned: &learned,
            known: &known_groups,
        };
        sources.plan(&fetched, NOW)
    }

    #[test]
    fn groups_are_followed_until_the_broker_no_longer_has_them() {
        let cases = [
            Case {
                reason: "a live group: its committed topics, whatever its assignment says",
                listed: Some(Some(listed(Some(1), &[]))),
                configured: &[],
                learned: &[],
                known: &[],
                committed: Some(&["orders", "payments"]),
                sampled: Some((&["orders", "payments"], Some(1))),
                remembered: &[("orders", true), ("payments", true)],
                forgotten: false,
            },
            Case {
                reason: "its members left: same topics, no members (the rules say STOP)",
                listed: Some(Some(listed(Some(0), &[]))),
                configured: &[],
                learned: &[],
                known: &[("orders", true)],
                committed: Some(&["orders"]),
                sampled: Some((&["orders"], Some(0))),
                remembered: &[("orders", true)],
                forgotten: false,
            },
            Case {
                reason: "rebalancing: the member count is unknown",
                listed: Some(Some(listed(None, &[]))),
                configured: &[],
                learned: &[],
                known: &[],
                committed: Some(&["orders"]),
                sampled: Some((&["orders"], None)),
                remembered: &[("orders", true)],
                forgotten: false,
            },
            Case {
                reason: "not listed but holding offsets: still there, with no live member",
                listed: Some(None),
                configured: &[],
                learned: &[],
                known: &[("orders", true)],
                committed: Some(&["orders"]),
                sampled: Some((&["orders"], Some(0))),
                remembered: &[("orders", true)],
                forgotten: false,
            },
            Case {
                reason: "not listed and no offsets left: gone",
                listed: Some(None),
                configured: &[],
                learned: &["orders"],
                known: &[("orders", true), ("refunds", false)],
                committed: Some(&[]),
                sampled: None,
                remembered: &[],
                forgotten: true,
            },
            Case {
                reason: "an expired topic goes, an assigned one never committed stays, a new one comes",
                listed: Some(Some(listed(Some(1), &["audit"]))),
                configured: &[],
                learned: &[],
                known: &[("orders", true), ("refunds", false)],
                committed: Some(&["payments"]),
                sampled: Some((&["audit", "payments", "refunds"], Some(1))),
                remembered: &[("audit", false), ("payments", true), ("refunds", false)],
                forgotten: false,
            },
            Case {
                reason: "the listing failed: nothing is forgotten for being unlisted",
                listed: None,
                configured: &[],
                learned: &[],
                known: &[("orders", true), ("refunds", false)],
                committed: Some(&["orders"]),
                sampled: Some((&["orders", "refunds"], None)),
                remembered: &[("orders", true), ("refunds", false)],
                forgotten: false,
            },
            Case {
                reason: "the fetch failed: kept as it was, not sampled",
                listed: Some(Some(listed(Some(1), &[]))),
                configured: &[],
                learned: &[],
                known: &[("orders", true)],
                committed: None,
                sampled: None,
                remembered: &[("orders", true)],
                forgotten: false,
            },
            Case {
                reason: "configured and never committed: sampled (lag unknown), never forgotten",
                listed: Some(None),
                configured: &["orders"],
                learned: &[],
                known: &[],
                committed: Some(&[]),
                sampled: Some((&["orders"], Some(0))),
                remembered: &[],
                forgotten: false,
            },
            Case {
                reason: "seen only in spans, unknown to the broker: nothing to follow",
                listed: Some(None),
                configured: &[],
                learned: &["orders"],
                known: &[],
                committed: Some(&[]),
                sampled: None,
                remembered: &[],
                forgotten: false,
            },
            Case {
                reason: "a topic from spans is sampled with the group, not remembered",
                listed: Some(Some(listed(Some(1), &[]))),
                configured: &[],
                learned: &["shipments"],
                known: &[],
                committed: Some(&["orders"]),
                sampled: Some((&["orders", "shipments"], Some(1))),
                remembered: &[("orders", true)],
                forgotten: false,
            },
            Case {
                reason: "listed, never committed, nothing assigned: nothing to sample yet",
                listed: Some(Some(listed(Some(1), &[]))),
                configured: &[],
                learned: &[],
                known: &[],
                committed: Some(&[]),
                sampled: None,
                remembered: &[],
                forgotten: false,
            },
        ];
        for case in &cases {
            let plan = run(case);
            let reason = case.reason;
            match case.sampled {
                Some((topics, members)) => {
                    assert_eq!(plan.sample.get("billing"), Some(&set(topics)), "{reason}");
                    assert_eq!(plan.members.get("billing"), Some(&members), "{reason}");
                }
                None => assert!(plan.sample.is_empty(), "{reason}: {plan:?}"),
            }
            let remembered: Vec<(&str, bool)> = plan
                .known
                .get("billing")
                .into_iter()
                .flatten()
                .map(|(topic, known)| (topic.as_str(), known.committed))
                .collect();
            assert_eq!(remembered, case.remembered, "{reason}");
            assert_eq!(plan.forgotten == ["billing"], case.forgotten, "{reason}");
        }
    }

    #[test]
    fn a_topic_keeps_when_it_was_first_found() {
        let known_groups = KnownGroups::from([("billing".to_owned(), known(&[("orders", true)]))]);
        let listing = Listing::from([("billing".to_owned(), listed(Some(1), &[]))]);
        let configured = BTreeMap::new();
        let learned = BTreeMap::new();
        let sources = Sources {
            listing: Some(&listing),
            configured: &configured,
            learned: &learned,
            known: &known_groups,
        };
        let fetched =
            BTreeMap::from([("billing".to_owned(), committed_on(&["orders", "payments"]))]);
        let plan = sources.plan(&fetched, NOW);
        let found: Vec<(&str, i64)> = plan.known["billing"]
            .iter()
            .map(|(topic, known)| (topic.as_str(), known.found_ns))
            .collect();
        assert_eq!(found, vec![("orders", EARLIER), ("payments", NOW)]);
        assert_eq!(
            known_from_rows(rows_of_known(&plan.known)),
            plan.known,
            "stored rows read back as the same groups"
        );
    }

    #[test]
    fn every_source_of_a_group_and_its_topics_is_asked() {
        let listing = Listing::from([("listed".to_owned(), listed(Some(1), &["assigned"]))]);
        let configured = BTreeMap::from([("configured".to_owned(), vec!["named".to_owned()])]);
        let learned = BTreeMap::from([("traced".to_owned(), set(&["traced"]))]);
        let known_groups =
            KnownGroups::from([("found-before".to_owned(), known(&[("orders", true)]))]);
        let sources = Sources {
            listing: Some(&listing),
            configured: &configured,
            learned: &learned,
            known: &known_groups,
        };
        assert_eq!(
            sources.groups(),
            set(&["configured", "found-before", "listed", "traced"])
        );
        assert_eq!(
            sources.expected_topics(),
            set(&["assigned", "named", "orders", "traced"]),
            "every topic known before the offsets are fetched"
        );
    }
}
