//! One evaluation pass, pure: stored samples in, per-partition status rows and per-rule
//! group verdicts out.

use std::collections::BTreeMap;

use causeway_storage::{LagSample, LagStatusRow};

use crate::lag::config::LagRule;
use crate::lag::offset_lag::WatermarkPoint;
use crate::lag::poller::{HeadRecords, POLLER_SOURCE};
use crate::lag::rules::{
    GroupVerdict, Observation, PartitionVerdict, evaluate_group, evaluate_partition_with_head,
};

/// One rule's verdict on one group.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleVerdict {
    /// Index of the rule in the configuration.
    pub rule: usize,
    /// The consumer group.
    pub group: String,
    /// What the rule concluded.
    pub verdict: GroupVerdict,
}

/// The result of one evaluation pass.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Evaluation {
    /// The status of every partition of every group, for `causeway lag`.
    pub statuses: Vec<LagStatusRow>,
    /// Every rule's verdict on every group it covers.
    pub verdicts: Vec<RuleVerdict>,
}

type PartitionKey = (String, String, i32);
/// The partitions one rule judged for one group, with their verdicts.
type RuleGroupPartitions = BTreeMap<(usize, String), Vec<(String, i32, PartitionVerdict)>>;

/// Evaluates `samples` (any order) under `rules` at `now_ns`. Partitions no rule covers
/// are judged by the default rule, for display only.
///
/// `heads` gives, for lagging partitions the poller read, the record at the committed
/// offset and when it was written; it is used when it matches the latest committed offset.
pub fn evaluate(
    samples: &[LagSample],
    rules: &[LagRule],
    now_ns: i64,
    heads: &HeadRecords,
) -> Evaluation {
    let mut by_partition: BTreeMap<PartitionKey, Vec<&LagSample>> = BTreeMap::new();
    for sample in samples {
        by_partition
            .entry((
                sample.consumer_group.clone(),
                sample.topic.clone(),
                sample.partition,
            ))
            .or_default()
            .push(sample);
    }
    let fallback = LagRule::default();
    let mut evaluation = Evaluation::default();
    // Verdicts per (rule, group): partitions with their verdicts.
    let mut per_rule: RuleGroupPartitions = BTreeMap::new();
    for ((group, topic, partition), mut samples) in by_partition {
        samples.sort_by_key(|s| s.sampled_ns);
        let observations = observations(&samples);
        let history: Vec<WatermarkPoint> = observations
            .iter()
            .map(|o| WatermarkPoint {
                at_ns: o.at_ns,
                high_watermark: o.high,
            })
            .collect();
        let matching: Vec<usize> = rules
            .iter()
            .enumerate()
            .filter(|(_, rule)| rule.group.matches(&group) && rule.topic.matches(&topic))
            .map(|(index, _)| index)
            .collect();
        let head_written_ms = heads
            .get(&(group.clone(), topic.clone(), partition))
            .filter(|(offset, _)| observations.last().and_then(|o| o.committed) <= Some(*offset))
            .map(|(_, written_ms)| *written_ms);
        let judge = |rule: &LagRule| {
            let start = observations.partition_point(|o| o.at_ns < now_ns - rule.window_ns);
            evaluate_partition_with_head(
                &observations[start..],
                &history,
                rule,
                now_ns,
                head_written_ms,
            )
        };
        let shown = judge(matching.first().map_or(&fallback, |index| &rules[*index]));
        evaluation
            .statuses
            .push(status_row(&group, &topic, partition, &shown, now_ns));
        for index in matching {
            let verdict = judge(&rules[index]);
            per_rule.entry((index, group.clone())).or_default().push((
                topic.clone(),
                partition,
                verdict,
            ));
        }
    }
    for ((rule, group), partitions) in per_rule {
        let verdict = evaluate_group(
            partitions
                .iter()
                .map(|(topic, partition, verdict)| (topic.as_str(), *partition, verdict)),
        );
        evaluation.verdicts.push(RuleVerdict {
            rule,
            group,
            verdict,
        });
    }
    evaluation
}

/// The observations of one partition, from the poller when it has any (the broker's view
/// is authoritative), else from the service-reported gauges.
fn observations(samples: &[&LagSample]) -> Vec<Observation> {
    let from_poller = samples.iter().any(|s| s.source == POLLER_SOURCE);
    samples
        .iter()
        .filter(|s| !from_poller || s.source == POLLER_SOURCE)
        .filter_map(|s| {
            let committed = s
                .committed_offset
                .or_else(|| Some(s.high_watermark? - s.lag?));
            let high = s.high_watermark.or_else(|| Some(committed? + s.lag?))?;
            Some(Observation {
                at_ns: s.sampled_ns,
                committed,
                low: s.low_watermark.unwrap_or(0),
                high,
                members: s.members,
            })
        })
        .collect()
}

fn status_row(
    group: &str,
    topic: &str,
    partition: i32,
    verdict: &PartitionVerdict,
    now_ns: i64,
) -> LagStatusRow {
    LagStatusRow {
        consumer_group: group.to_owned(),
        topic: topic.to_owned(),
        partition,
        state: verdict.state,
        committed_offset: verdict.committed,
        high_watermark: verdict.high,
        lag: verdict.lag.messages(),
        time_lag_ms: verdict.time_lag.millis(),
        rate_per_s: verdict.rate_per_s,
        catch_up_ms: verdict.catch_up_ms,
        updated_ns: now_ns,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::lag::config::NamePattern;
    use crate::lag::rules::LagState;

    const S: i64 = 1_000_000_000;

    fn sample(
        at_s: i64,
        group: &str,
        committed: Option<i64>,
        high: Option<i64>,
        lag: Option<i64>,
        source: &str,
    ) -> LagSample {
        LagSample {
            sampled_ns: at_s * S,
            consumer_group: group.into(),
            topic: "orders".into(),
            partition: 0,
            committed_offset: committed,
            low_watermark: None,
            high_watermark: high,
            lag,
            members: Some(1),
            source: source.into(),
        }
    }

    #[test]
    fn rules_cover_their_groups_and_others_get_a_status() {
        let samples: Vec<LagSample> = (0..3)
            .flat_map(|i| {
                [
                    sample(i * 10, "billing", Some(5), Some(10), Some(5), POLLER_SOURCE),
                    sample(
                        i * 10,
                        "shipping",
                        Some(10),
                        Some(10),
                        Some(0),
                        POLLER_SOURCE,
                    ),
                ]
            })
            .collect();
        let rules = [LagRule {
            name: "billing".into(),
            group: NamePattern::new("bill*"),
            ..LagRule::default()
        }];
        let evaluation = evaluate(&samples, &rules, 20 * S, &HeadRecords::new());
        let states: Vec<(&str, LagState)> = evaluation
            .statuses
            .iter()
            .map(|s| (s.consumer_group.as_str(), s.state))
            .collect();
        assert_eq!(
            states,
            vec![("billing", LagState::Stall), ("shipping", LagState::Ok)]
        );
        assert_eq!(evaluation.verdicts.len(), 1, "only billing is under a rule");
        assert_eq!(evaluation.verdicts[0].verdict.state, LagState::Stall);
    }

    #[test]
    fn service_gauges_fill_in_and_the_poller_wins() {
        let gauges = [
            // Only lag and offset reported: the high watermark is derived.
            sample(0, "billing", Some(5), None, Some(3), "otlp:billing"),
            sample(10, "billing", Some(6), None, Some(2), "otlp:billing"),
        ];
        let evaluation = evaluate(&gauges, &[], 10 * S, &HeadRecords::new());
        assert_eq!(evaluation.statuses[0].lag, Some(2));
        assert_eq!(evaluation.statuses[0].high_watermark, Some(8));

        let mut mixed = gauges.to_vec();
        mixed.push(sample(
            10,
            "billing",
            Some(6),
            Some(20),
            Some(14),
            POLLER_SOURCE,
        ));
        let evaluation = evaluate(&mixed, &[], 10 * S, &HeadRecords::new());
        assert_eq!(
            evaluation.statuses[0].lag,
            Some(14),
            "the broker's view wins"
        );
    }

    #[test]
    fn samples_outside_the_window_do_not_count() {
        // Stalled long ago, consuming now: inside a 30 s window it is not STALL.
        let mut samples: Vec<LagSample> = (0..5)
            .map(|i| sample(i * 10, "billing", Some(5), Some(10), Some(5), POLLER_SOURCE))
            .collect();
        samples.extend((5..8).map(|i| {
            sample(
                i * 10,
                "billing",
                Some(i * 2),
                Some(20),
                Some(20 - i * 2),
                POLLER_SOURCE,
            )
        }));
        let rules = [LagRule {
            window_ns: 30 * S,
            ..LagRule::default()
        }];
        let evaluation = evaluate(&samples, &rules, 70 * S, &HeadRecords::new());
        assert_eq!(evaluation.statuses[0].state, LagState::Ok);
    }
}
