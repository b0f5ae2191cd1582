//! Lag rule evaluation: a pure function from a window of samples to a Burrow-style state
//! per partition and per group, with what Burrow lacks: thresholds in messages and in
//! seconds, the trend, and a time-to-catch-up estimate.

use serde::Serialize;

use crate::lag::config::LagRule;
use crate::lag::offset_lag::{OffsetLag, TimeLag, WatermarkPoint, offset_lag, time_lag};
pub use causeway_conventions::LagState;

/// A lag state in JSON as its one text form (`"STALL"`).
fn state_name<S: serde::Serializer>(state: &LagState, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(state.name())
}

/// One sample of a group's position on a partition, as the evaluator sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observation {
    /// When it was taken, in nanoseconds since the Unix epoch.
    pub at_ns: i64,
    /// The committed offset; `None` when the group has none.
    pub committed: Option<i64>,
    /// The low watermark.
    pub low: i64,
    /// The high watermark.
    pub high: i64,
    /// Live members of the group, when known.
    pub members: Option<i64>,
}

/// What the evaluator concluded about one partition.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PartitionVerdict {
    /// The partition's state.
    #[serde(serialize_with = "state_name")]
    pub state: LagState,
    /// The latest lag in messages.
    pub lag: OffsetLag,
    /// The age of the oldest unconsumed message.
    pub time_lag: TimeLag,
    /// Change of lag per second over the window (negative while catching up).
    pub rate_per_s: Option<f64>,
    /// Estimated time to catch up at the current rates, in milliseconds.
    pub catch_up_ms: Option<i64>,
    /// The latest committed offset.
    pub committed: Option<i64>,
    /// The latest high watermark.
    pub high: Option<i64>,
}

const NANOS_PER_SECOND: f64 = 1e9;

/// Evaluates one partition's window of observations (oldest first) under `rule` at
/// `now_ns`. `history` is the partition's high-watermark history for the time lag; it
/// may reach further back than the window.
pub fn evaluate_partition(
    window: &[Observation],
    history: &[WatermarkPoint],
    rule: &LagRule,
    now_ns: i64,
) -> PartitionVerdict {
    evaluate_partition_with_head(window, history, rule, now_ns, None)
}

/// [`evaluate_partition`], with the write time (ms since the epoch) of the record at the
/// committed offset when the poller read it: the age is then measured, not interpolated.
pub fn evaluate_partition_with_head(
    window: &[Observation],
    history: &[WatermarkPoint],
    rule: &LagRule,
    now_ns: i64,
    head_written_ms: Option<i64>,
) -> PartitionVerdict {
    let Some(latest) = window.last().copied() else {
        return PartitionVerdict {
            state: LagState::Unknown,
            lag: OffsetLag::Unknown,
            time_lag: TimeLag::Unknown,
            rate_per_s: None,
            catch_up_ms: None,
            committed: None,
            high: None,
        };
    };
    let lag = offset_lag(latest.committed, latest.low, latest.high);
    let time = match (head_written_ms, lag.messages()) {
        (Some(written_ms), Some(messages)) if messages > 0 => TimeLag::Measured {
            ms: (now_ns / 1_000_000 - written_ms).max(0),
        },
        _ => time_lag(latest.committed, history, now_ns),
    };
    let (rate_per_s, catch_up_ms) = trend(window);
    let verdict = |state| PartitionVerdict {
        state,
        lag,
        time_lag: time,
        rate_per_s,
        catch_up_ms,
        committed: latest.committed,
        high: Some(latest.high),
    };
    let Some(latest_lag) = lag.messages() else {
        return verdict(LagState::Unknown);
    };
    let waiting = |observation: &Observation| {
        offset_lag(observation.committed, observation.low, observation.high)
            .messages()
            .is_some_and(|m| m > rule.tolerance)
    };
    // Caught up now is what matters, even after a rewind earlier in the window.
    if latest_lag <= rule.tolerance && !matches!(lag, OffsetLag::DataLoss { .. }) {
        return verdict(LagState::Ok);
    }
    let rewound = window
        .windows(2)
        .any(|pair| matches!((pair[0].committed, pair[1].committed), (Some(a), Some(b)) if b < a));
    if rewound {
        return verdict(LagState::Rewind);
    }
    if matches!(lag, OffsetLag::DataLoss { .. }) {
        return verdict(LagState::Err);
    }
    let stale = now_ns - latest.at_ns > rule.stale_after_ns;
    let full = window.len() >= rule.min_samples;
    let mut state = LagState::Ok;
    if full && window.iter().all(waiting) {
        let unmoved = window.iter().all(|o| o.committed == latest.committed);
        if unmoved && (latest.members == Some(0) || stale) {
            state = LagState::Stop;
        } else if unmoved {
            state = LagState::Stall;
        } else if lag_rises_every_step(window) {
            state = LagState::Warn;
        }
    } else if stale && latest.members == Some(0) {
        state = LagState::Stop;
    }
    if state <= LagState::Warn {
        state = state.max(threshold_state(latest_lag, time.millis(), rule));
    }
    verdict(state)
}

fn lag_rises_every_step(window: &[Observation]) -> bool {
    let lags: Vec<i64> = window
        .iter()
        .filter_map(|o| offset_lag(o.committed, o.low, o.high).messages())
        .collect();
    lags.len() >= 2 && lags.windows(2).all(|pair| pair[1] > pair[0])
}

fn threshold_state(lag: i64, time_lag_ms: Option<i64>, rule: &LagRule) -> LagState {
    let over = |messages: Option<i64>, millis: Option<i64>| {
        messages.is_some_and(|limit| lag >= limit)
            || matches!((millis, time_lag_ms), (Some(limit), Some(age)) if age >= limit)
    };
    if over(rule.err_messages, rule.err_after_ms) {
        LagState::Err
    } else if over(rule.warn_messages, rule.warn_after_ms) {
        LagState::Warn
    } else {
        LagState::Ok
    }
}

/// Lag change per second over the window, and the time to catch up when the group
/// consumes faster than producers write.
fn trend(window: &[Observation]) -> (Option<f64>, Option<i64>) {
    let (Some(first), Some(last)) = (window.first(), window.last()) else {
        return (None, None);
    };
    let seconds = (last.at_ns - first.at_ns) as f64 / NANOS_PER_SECOND;
    let (Some(first_committed), Some(last_committed)) = (first.committed, last.committed) else {
        return (None, None);
    };
    if seconds <= 0.0 {
        return (None, None);
    }
    let first_lag = (first.high - first_committed).max(0) as f64;
    let last_lag = (last.high - last_committed).max(0) as f64;
    let rate = (last_lag - first_lag) / seconds;
    let consumed_per_s = (last_committed - first_committed) as f64 / seconds;
    let produced_per_s = (last.high - first.high) as f64 / seconds;
    let draining_per_s = consumed_per_s - produced_per_s;
    let catch_up_ms = if last_lag == 0.0 {
        Some(0)
    } else if draining_per_s > 0.0 {
        Some((last_lag / draining_per_s * 1000.0) as i64)
    } else {
        None
    };
    (Some(rate), catch_up_ms)
}

/// What the evaluator concluded about one group under one rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupVerdict {
    /// The worst partition state.
    #[serde(serialize_with = "state_name")]
    pub state: LagState,
    /// Sum of the known partition lags.
    pub total_lag: i64,
    /// The oldest unconsumed message's age across partitions, in milliseconds.
    pub max_time_lag_ms: Option<i64>,
    /// The partition whose oldest waiting message is the oldest: (topic, partition,
    /// committed offset).
    pub worst_partition: Option<(String, i32, i64)>,
    /// The longest catch-up estimate across lagging partitions.
    pub catch_up_ms: Option<i64>,
}

/// Folds partition verdicts of one group into the group's verdict.
pub fn evaluate_group<'a>(
    partitions: impl IntoIterator<Item = (&'a str, i32, &'a PartitionVerdict)>,
) -> GroupVerdict {
    let mut group = GroupVerdict {
        state: LagState::Unknown,
        total_lag: 0,
        max_time_lag_ms: None,
        worst_partition: None,
        catch_up_ms: None,
    };
    let mut worst_key = (i64::MIN, i64::MIN);
    for (topic, partition, verdict) in partitions {
        group.state = group.state.max(verdict.state);
        let lag = verdict.lag.messages().unwrap_or(0);
        group.total_lag += lag;
        let age = verdict.time_lag.millis();
        group.max_time_lag_ms = group.max_time_lag_ms.max(age);
        if let (Some(committed), true) = (verdict.committed, lag > 0) {
            let key = (age.unwrap_or(-1), lag);
            if key > worst_key {
                worst_key = key;
                group.worst_partition = Some((topic.to_owned(), partition, committed));
            }
            if let Some(eta) = verdict.catch_up_ms {
                group.catch_up_ms = Some(group.catch_up_ms.map_or(eta, |c| c.max(eta)));
            }
        }
    }
    group
}

#[cfg(test)]
#[path = "rules_tests.rs"]
mod tests;
