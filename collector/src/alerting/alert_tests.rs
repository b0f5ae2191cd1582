//! Tests of the alert lifecycle.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::type_complexity
)]

use super::*;

const S: i64 = 1_000_000_000;

fn condition(group: &str, active: bool, for_s: i64, resolve_after_s: i64) -> Condition {
    Condition {
        rule: "behind".into(),
        labels: BTreeMap::from([
            ("alertname".into(), "behind".into()),
            ("consumer_group".into(), group.into()),
        ]),
        annotations: BTreeMap::from([("summary".into(), format!("{group} is behind"))]),
        active,
        for_ns: for_s * S,
        resolve_after_ns: resolve_after_s * S,
    }
}

/// Runs a sequence of (time in s, active) for one group and returns, per step, the
/// notifications: "F" newly firing, "R" resolved, "-" nothing.
fn run(steps: &[(i64, bool)], for_s: i64, resolve_after_s: i64) -> String {
    let mut tracker = AlertTracker::new();
    steps
        .iter()
        .map(|(at_s, active)| {
            let changes = tracker.update(
                &[condition("billing", *active, for_s, resolve_after_s)],
                at_s * S,
            );
            match (changes.newly_firing.len(), changes.resolved.len()) {
                (1, 0) => 'F',
                (0, 1) => 'R',
                (0, 0) => '-',
                other => panic!("unexpected {other:?}"),
            }
        })
        .collect()
}

#[test]
fn lifecycles() {
    let cases: &[(&str, &[(i64, bool)], i64, i64, &str)] = &[
        (
            "fires at once without a for time, resolves after the clear time",
            &[(0, true), (10, true), (20, false), (30, false), (80, false)],
            0,
            60,
            "F---R",
        ),
        (
            "pending until the for time has passed",
            &[(0, true), (30, true), (60, true), (90, true)],
            60,
            0,
            "--F-",
        ),
        (
            "a pending alert that clears never notifies",
            &[(0, true), (30, false), (60, false)],
            60,
            0,
            "---",
        ),
        (
            "flapping inside the clear time pages once",
            &[
                (0, true),
                (10, false),
                (20, true),
                (30, false),
                (40, true),
                (50, false),
                (200, false),
            ],
            0,
            60,
            "F-----R",
        ),
        (
            "a new episode after resolving fires again",
            &[(0, true), (10, false), (20, true)],
            0,
            0,
            "FRF",
        ),
    ];
    for (reason, steps, for_s, resolve_after_s, expected) in cases {
        assert_eq!(run(steps, *for_s, *resolve_after_s), *expected, "{reason}");
    }
}

#[test]
fn a_vanished_subject_resolves() {
    let mut tracker = AlertTracker::new();
    tracker.update(&[condition("billing", true, 0, 600)], 0);
    let changes = tracker.update(&[], S);
    assert_eq!(changes.resolved.len(), 1);
    assert_eq!(tracker.active().count(), 0);
}

#[test]
fn fingerprint_depends_on_labels_only() {
    let a = condition("billing", true, 0, 0);
    let mut b = condition("billing", false, 5, 5);
    b.annotations.insert("extra".into(), "x".into());
    assert_eq!(fingerprint(&a.labels), fingerprint(&b.labels));
    assert_ne!(
        fingerprint(&a.labels),
        fingerprint(&condition("shipping", true, 0, 0).labels)
    );
    assert_eq!(fingerprint(&a.labels).len(), 16);
    // Label boundaries matter: {a=bc} and {ab=c} differ.
    let one = BTreeMap::from([("a".to_owned(), "bc".to_owned())]);
    let two = BTreeMap::from([("ab".to_owned(), "c".to_owned())]);
    assert_ne!(fingerprint(&one), fingerprint(&two));
}

#[test]
fn starts_at_is_kept_across_updates() {
    let mut tracker = AlertTracker::new();
    tracker.update(&[condition("billing", true, 0, 60)], 5 * S);
    let changes = tracker.update(&[condition("billing", true, 0, 60)], 50 * S);
    assert_eq!(changes.still_firing[0].starts_ns, 5 * S);
    assert_eq!(changes.to_store[0].status, AlertStatus::Firing);
}
