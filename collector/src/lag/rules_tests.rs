//! Table tests for the lag rule evaluator.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;

const S: i64 = 1_000_000_000;

/// Observations 10 s apart: (committed, high, members).
fn window(points: &[(Option<i64>, i64, Option<i64>)]) -> Vec<Observation> {
    points
        .iter()
        .enumerate()
        .map(|(i, (committed, high, members))| Observation {
            at_ns: i as i64 * 10 * S,
            committed: *committed,
            low: 0,
            high: *high,
            members: *members,
        })
        .collect()
}

fn history(window: &[Observation]) -> Vec<WatermarkPoint> {
    window
        .iter()
        .map(|o| WatermarkPoint {
            at_ns: o.at_ns,
            high_watermark: o.high,
        })
        .collect()
}

fn rule() -> LagRule {
    LagRule {
        warn_messages: Some(100),
        err_messages: Some(1_000),
        ..LagRule::default()
    }
}

#[test]
fn partition_states() {
    let live = Some(1);
    let cases: Vec<(&str, Vec<Observation>, LagRule, LagState)> = vec![
        ("no samples", window(&[]), rule(), LagState::Unknown),
        (
            "no committed offset is unknown, not OK",
            window(&[(None, 10, live); 3]),
            rule(),
            LagState::Unknown,
        ),
        (
            "caught up",
            window(&[(Some(10), 10, live); 3]),
            rule(),
            LagState::Ok,
        ),
        (
            "consuming, lag shrinking",
            window(&[
                (Some(1), 10, live),
                (Some(5), 12, live),
                (Some(10), 14, live),
            ]),
            rule(),
            LagState::Ok,
        ),
        (
            "lag rising at every step is WARN",
            window(&[
                (Some(1), 10, live),
                (Some(2), 20, live),
                (Some(3), 30, live),
            ]),
            rule(),
            LagState::Warn,
        ),
        (
            "same offset with live members is STALL",
            window(&[
                (Some(5), 10, live),
                (Some(5), 11, live),
                (Some(5), 12, live),
            ]),
            rule(),
            LagState::Stall,
        ),
        (
            "same offset with no members is STOP",
            window(&[
                (Some(5), 10, Some(0)),
                (Some(5), 10, Some(0)),
                (Some(5), 10, Some(0)),
            ]),
            rule(),
            LagState::Stop,
        ),
        (
            "offset going backwards is REWIND",
            window(&[
                (Some(8), 10, live),
                (Some(2), 10, live),
                (Some(4), 10, live),
            ]),
            rule(),
            LagState::Rewind,
        ),
        (
            "caught up after a rewind is OK again",
            window(&[
                (Some(8), 10, live),
                (Some(2), 10, live),
                (Some(10), 10, live),
            ]),
            rule(),
            LagState::Ok,
        ),
        (
            "transactional topic at lag 1 forever is OK with tolerance 1",
            window(&[(Some(9), 10, live); 3]),
            LagRule {
                tolerance: 1,
                ..rule()
            },
            LagState::Ok,
        ),
        (
            "the same lag 1 without tolerance is a STALL",
            window(&[(Some(9), 10, live); 3]),
            rule(),
            LagState::Stall,
        ),
        (
            "too few samples: no STALL yet, thresholds only",
            window(&[(Some(5), 10, live), (Some(5), 10, live)]),
            rule(),
            LagState::Ok,
        ),
        (
            "over the message WARN threshold while consuming",
            window(&[
                (Some(0), 200, live),
                (Some(100), 300, live),
                (Some(190), 350, live),
            ]),
            rule(),
            LagState::Warn,
        ),
        (
            "over the message ERR threshold while consuming",
            window(&[
                (Some(0), 2_000, live),
                (Some(100), 2_000, live),
                (Some(200), 2_000, live),
            ]),
            rule(),
            LagState::Err,
        ),
        (
            "one caught-up sample in the window keeps it from STALL",
            window(&[(Some(5), 5, live), (Some(5), 7, live), (Some(5), 8, live)]),
            rule(),
            LagState::Ok,
        ),
        (
            "committed below the low watermark (data loss) is ERR",
            vec![Observation {
                at_ns: 0,
                committed: Some(1),
                low: 5,
                high: 9,
                members: live,
            }],
            rule(),
            LagState::Err,
        ),
        (
            "mid-rebalance (members unknown) with an unmoved offset is STALL, never STOP",
            window(&[
                (Some(5), 10, None),
                (Some(5), 11, None),
                (Some(5), 12, None),
            ]),
            rule(),
            LagState::Stall,
        ),
        (
            "a rebalance (members unknown) with moving offsets is not STOP",
            window(&[
                (Some(1), 10, None),
                (Some(4), 11, None),
                (Some(9), 12, None),
            ]),
            rule(),
            LagState::Ok,
        ),
    ];
    for (reason, window, rule, expected) in cases {
        let verdict = evaluate_partition(&window, &history(&window), &rule, 20 * S);
        assert_eq!(verdict.state, expected, "{reason}: {verdict:?}");
    }
}

#[test]
fn time_threshold_escalates_to_err() {
    // Offset 5 was written at 0 s (history starts past it): at 400 s it is at least 400 s old.
    let observations = window(&[
        (Some(5), 10, Some(1)),
        (Some(6), 10, Some(1)),
        (Some(7), 10, Some(1)),
    ]);
    let rule = LagRule {
        warn_after_ms: Some(30_000),
        err_after_ms: Some(300_000),
        ..LagRule::default()
    };
    let verdict = evaluate_partition(&observations, &history(&observations), &rule, 400 * S);
    assert_eq!(verdict.state, LagState::Err);
    assert_eq!(verdict.time_lag, TimeLag::AtLeast { ms: 400_000 });
}

#[test]
fn stale_samples_mean_stopped() {
    let observations = window(&[(Some(5), 10, Some(1)); 3]);
    let rule = LagRule {
        stale_after_ns: 60 * S,
        ..rule()
    };
    let verdict = evaluate_partition(&observations, &history(&observations), &rule, 500 * S);
    assert_eq!(verdict.state, LagState::Stop, "no sample for 480 s");
}

#[test]
fn trend_and_catch_up_estimate() {
    // Lag 100 → 50 over 20 s while producers add 10: consumes 60/20 s = 3/s, produces
    // 0.5/s, drains 2.5/s, so 50 left take 20 s.
    let observations = window(&[
        (Some(0), 100, Some(1)),
        (Some(30), 105, Some(1)),
        (Some(60), 110, Some(1)),
    ]);
    let verdict = evaluate_partition(&observations, &history(&observations), &rule(), 20 * S);
    assert_eq!(verdict.rate_per_s, Some(-2.5));
    assert_eq!(verdict.catch_up_ms, Some(20_000));

    let falling_behind = window(&[
        (Some(0), 100, Some(1)),
        (Some(1), 200, Some(1)),
        (Some(2), 300, Some(1)),
    ]);
    let verdict = evaluate_partition(&falling_behind, &history(&falling_behind), &rule(), 20 * S);
    assert_eq!(verdict.catch_up_ms, None, "never catches up at these rates");
    assert!(verdict.rate_per_s.unwrap() > 0.0);
}

#[test]
fn group_takes_the_worst_partition_and_sums_lag() {
    let ok = evaluate_partition(&window(&[(Some(10), 10, Some(1)); 3]), &[], &rule(), 20 * S);
    let stalled_window = window(&[(Some(4), 10, Some(1)); 3]);
    let stalled = evaluate_partition(&stalled_window, &history(&stalled_window), &rule(), 20 * S);
    let group = evaluate_group([("orders", 0, &ok), ("orders", 1, &stalled)]);
    assert_eq!(group.state, LagState::Stall);
    assert_eq!(group.total_lag, 6);
    assert_eq!(group.worst_partition, Some(("orders".to_owned(), 1, 4)));
}

#[test]
fn state_names_round_trip() {
    for state in [
        LagState::Ok,
        LagState::Warn,
        LagState::Err,
        LagState::Stop,
        LagState::Stall,
        LagState::Rewind,
    ] {
        assert_eq!(LagState::parse(state.name()), Some(state));
        assert_eq!(LagState::parse(&state.name().to_lowercase()), Some(state));
    }
    assert_eq!(LagState::parse("late"), None);
}

#[test]
fn a_read_head_record_gives_a_measured_age() {
    let observations = window(&[(Some(5), 10, Some(1)); 3]);
    let now = 100 * S;
    let cases = [
        (
            "record read: its age is measured",
            Some(93_000),
            TimeLag::Measured { ms: 7_000 },
        ),
        (
            "a record stamped in the future is never a negative age",
            Some(120_000),
            TimeLag::Measured { ms: 0 },
        ),
        (
            "not read: interpolated from the watermark history",
            None,
            TimeLag::AtLeast { ms: 100_000 },
        ),
    ];
    for (reason, head, expected) in cases {
        let verdict = evaluate_partition_with_head(
            &observations,
            &history(&observations),
            &rule(),
            now,
            head,
        );
        assert_eq!(verdict.time_lag, expected, "{reason}");
    }
    let caught_up = window(&[(Some(10), 10, Some(1)); 3]);
    let verdict =
        evaluate_partition_with_head(&caught_up, &history(&caught_up), &rule(), now, Some(1));
    assert_eq!(
        verdict.time_lag,
        TimeLag::CaughtUp,
        "nothing waiting, whatever was read"
    );
}
