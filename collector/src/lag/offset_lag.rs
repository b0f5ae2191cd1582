//! Consumer lag as a pure function of the Kafka facts: committed offset, low and high
//! watermarks, and the history of the high watermark over time.
//!
//! The Kafka truths encoded here: a group with no committed offset has an unknown lag,
//! never 0; a committed offset below the low watermark means the retention deleted
//! messages the group never read (data loss); a committed offset above the high watermark
//! (a stale watermark read, or a truncated log) clamps the lag to 0.

use serde::Serialize;

/// The lag of one group on one partition, in messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OffsetLag {
    /// The group has no committed offset on this partition: lag cannot be known.
    Unknown,
    /// The group is `messages` behind the high watermark.
    Behind {
        /// Messages between the committed offset and the high watermark.
        messages: i64,
    },
    /// The committed offset is past the high watermark; the lag is taken as 0.
    Ahead {
        /// How far past the high watermark the committed offset is.
        by: i64,
    },
    /// The committed offset is below the low watermark: `lost` messages were deleted
    /// before the group read them. `messages` is what is still left to read.
    DataLoss {
        /// Messages deleted before they were consumed.
        lost: i64,
        /// Messages still to read (from the low to the high watermark).
        messages: i64,
    },
}

impl OffsetLag {
    /// Lag in messages, `None` when unknown.
    pub fn messages(self) -> Option<i64> {
        match self {
            OffsetLag::Unknown => None,
            OffsetLag::Behind { messages } | OffsetLag::DataLoss { messages, .. } => Some(messages),
            OffsetLag::Ahead { .. } => Some(0),
        }
    }
}

/// Lag of a group with committed offset `committed` (the next offset it will read) on a
/// partition holding offsets `low..high`.
pub fn offset_lag(committed: Option<i64>, low: i64, high: i64) -> OffsetLag {
    let Some(committed) = committed.filter(|c| *c >= 0) else {
        // librdkafka reports "no committed offset" as a negative sentinel (-1001).
        return OffsetLag::Unknown;
    };
    let high = high.max(low);
    if committed > high {
        OffsetLag::Ahead {
            by: committed - high,
        }
    } else if committed < low {
        OffsetLag::DataLoss {
            lost: low - committed,
            messages: high - low,
        }
    } else {
        OffsetLag::Behind {
            messages: high - committed,
        }
    }
}

/// One observation of a partition's high watermark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatermarkPoint {
    /// When it was observed, in nanoseconds since the Unix epoch.
    pub at_ns: i64,
    /// The high watermark then.
    pub high_watermark: i64,
}

/// How old the oldest unconsumed message is, from the watermark history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TimeLag {
    /// Nothing is waiting.
    CaughtUp,
    /// The oldest unconsumed message was written about `ms` milliseconds ago.
    Estimated {
        /// Age in milliseconds.
        ms: i64,
    },
    /// The record at the committed offset was read: it was written `ms` milliseconds ago.
    Measured {
        /// Age in milliseconds.
        ms: i64,
    },
    /// The message is older than the whole history: its age is at least `ms`.
    AtLeast {
        /// Lower bound of the age in milliseconds.
        ms: i64,
    },
    /// Not enough history (or no committed offset) to say.
    Unknown,
}

impl TimeLag {
    /// The age in milliseconds (a lower bound for `AtLeast`), `None` when unknown.
    pub fn millis(self) -> Option<i64> {
        match self {
            TimeLag::CaughtUp => Some(0),
            TimeLag::Estimated { ms } | TimeLag::Measured { ms } | TimeLag::AtLeast { ms } => {
                Some(ms)
            }
            TimeLag::Unknown => None,
        }
    }
}

/// Estimates the age of the message at offset `committed` at time `now_ns` from the
/// history of the high watermark (sorted by time or not; it is sorted here).
///
/// The message at offset `c` exists once the high watermark exceeds `c`. Between two
/// observations the watermark is taken to rise linearly, so the time it crossed `c + 1`
/// is interpolated. When even the oldest observation is past `c`, the age is a lower bound.
pub fn time_lag(committed: Option<i64>, history: &[WatermarkPoint], now_ns: i64) -> TimeLag {
    let Some(committed) = committed.filter(|c| *c >= 0) else {
        return TimeLag::Unknown;
    };
    let mut points: Vec<WatermarkPoint> = history.to_vec();
    points.sort_by_key(|p| p.at_ns);
    let Some(latest) = points.last() else {
        return TimeLag::Unknown;
    };
    if latest.high_watermark <= committed {
        return TimeLag::CaughtUp;
    }
    let target = committed + 1;
    // The first observation at which the message existed.
    let Some(index) = points.iter().position(|p| p.high_watermark >= target) else {
        return TimeLag::Unknown;
    };
    let after = points[index];
    let age = |at_ns: i64| ((now_ns - at_ns).max(0)) / 1_000_000;
    if index == 0 {
        return TimeLag::AtLeast {
            ms: age(after.at_ns),
        };
    }
    let before = points[index - 1];
    let rise = (after.high_watermark - before.high_watermark) as f64;
    let fraction = if rise > 0.0 {
        (target - before.high_watermark) as f64 / rise
    } else {
        1.0
    };
    let span = (after.at_ns - before.at_ns) as f64;
    let written_ns = before.at_ns + (fraction * span) as i64;
    TimeLag::Estimated {
        ms: age(written_ns),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn offset_lag_cases() {
        let cases: &[(&str, Option<i64>, i64, i64, OffsetLag)] = &[
            (
                "no committed offset is unknown, never 0",
                None,
                0,
                10,
                OffsetLag::Unknown,
            ),
            (
                "librdkafka's invalid-offset sentinel is unknown",
                Some(-1001),
                0,
                10,
                OffsetLag::Unknown,
            ),
            (
                "caught up",
                Some(10),
                0,
                10,
                OffsetLag::Behind { messages: 0 },
            ),
            (
                "behind by the distance to the high watermark",
                Some(4),
                0,
                10,
                OffsetLag::Behind { messages: 6 },
            ),
            (
                "empty partition with offset 0 is caught up",
                Some(0),
                0,
                0,
                OffsetLag::Behind { messages: 0 },
            ),
            (
                "committed past the high watermark clamps to 0",
                Some(12),
                0,
                10,
                OffsetLag::Ahead { by: 2 },
            ),
            (
                "committed below the low watermark is data loss",
                Some(2),
                5,
                10,
                OffsetLag::DataLoss {
                    lost: 3,
                    messages: 5,
                },
            ),
            (
                "deleted everything unread: loss, nothing left",
                Some(0),
                10,
                10,
                OffsetLag::DataLoss {
                    lost: 10,
                    messages: 0,
                },
            ),
            (
                "at the low watermark is not loss",
                Some(5),
                5,
                10,
                OffsetLag::Behind { messages: 5 },
            ),
            (
                "inverted watermarks never give negative lag",
                Some(5),
                5,
                3,
                OffsetLag::Behind { messages: 0 },
            ),
        ];
        for (reason, committed, low, high, expected) in cases {
            assert_eq!(offset_lag(*committed, *low, *high), *expected, "{reason}");
        }
    }

    #[test]
    fn lag_messages_are_never_negative() {
        for committed in [None, Some(-5), Some(0), Some(3), Some(50)] {
            for (low, high) in [(0, 0), (0, 10), (5, 10), (10, 5)] {
                let lag = offset_lag(committed, low, high);
                assert!(
                    lag.messages().is_none_or(|m| m >= 0),
                    "{committed:?} {low} {high}"
                );
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn offset_lag_invariants(committed in proptest::option::of(-2_000i64..2_000), low in 0i64..1_000, high in 0i64..2_000) {
            let lag = offset_lag(committed, low, high);
            // Unknown exactly when there is no usable committed offset.
            proptest::prop_assert_eq!(lag == OffsetLag::Unknown, committed.is_none_or(|c| c < 0));
            // Never negative, never more than the partition holds past the committed offset.
            if let (Some(messages), Some(c)) = (lag.messages(), committed) {
                proptest::prop_assert!(messages >= 0);
                proptest::prop_assert!(messages <= (high.max(low) - c.min(low).max(0)).max(0));
            }
        }

        #[test]
        fn time_lag_is_never_negative(committed in 0i64..100, points in proptest::collection::vec((0i64..1_000, 0i64..100), 0..10), now in 0i64..2_000) {
            let history: Vec<WatermarkPoint> = points.iter().map(|(at, high)| WatermarkPoint { at_ns: at * 1_000_000, high_watermark: *high }).collect();
            let age = time_lag(Some(committed), &history, now * 1_000_000);
            proptest::prop_assert!(age.millis().is_none_or(|ms| ms >= 0));
        }
    }

    const S: i64 = 1_000_000_000;

    fn point(at_s: i64, high_watermark: i64) -> WatermarkPoint {
        WatermarkPoint {
            at_ns: at_s * S,
            high_watermark,
        }
    }

    #[test]
    fn time_lag_cases() {
        let history = [point(0, 10), point(10, 20), point(20, 40)];
        #[allow(clippy::type_complexity)]
        let cases: &[(&str, Option<i64>, &[WatermarkPoint], i64, TimeLag)] = &[
            ("no committed offset", None, &history, 30, TimeLag::Unknown),
            ("no history", Some(5), &[], 30, TimeLag::Unknown),
            ("caught up", Some(40), &history, 30, TimeLag::CaughtUp),
            (
                "older than history is a lower bound",
                Some(3),
                &history,
                30,
                TimeLag::AtLeast { ms: 30_000 },
            ),
            // Offset 14 exists once the watermark reaches 15: halfway from 0 s to 10 s.
            (
                "interpolated inside the history",
                Some(14),
                &history,
                30,
                TimeLag::Estimated { ms: 25_000 },
            ),
            // Offset 29 appears at 30: halfway between 10 s (20) and 20 s (40).
            (
                "interpolated in a later interval",
                Some(29),
                &history,
                30,
                TimeLag::Estimated { ms: 15_000 },
            ),
            (
                "unsorted history is sorted first",
                Some(14),
                &[point(20, 40), point(0, 10), point(10, 20)],
                30,
                TimeLag::Estimated { ms: 25_000 },
            ),
            (
                "a clock going backwards never gives a negative age",
                Some(14),
                &history,
                0,
                TimeLag::Estimated { ms: 0 },
            ),
        ];
        for (reason, committed, history, now_s, expected) in cases {
            assert_eq!(
                time_lag(*committed, history, now_s * S),
                *expected,
                "{reason}"
            );
        }
    }
}
