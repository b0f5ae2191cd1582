//! Unit tests of the fault schedule, the fault flag and the config file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn schedule_hands_out_each_fault_once_in_time_order() {
    let mut schedule = FaultSchedule::new(vec![
        ScheduledFault::new(FaultKind::SchemaBump, secs(5)),
        ScheduledFault::new(FaultKind::DeclinedPayment, secs(1)),
        ScheduledFault::new(FaultKind::PoisonMessage, secs(1)),
    ]);
    // (elapsed, kinds expected, why)
    let steps: [(u64, &[FaultKind], &str); 5] = [
        (0, &[], "nothing is due before its time"),
        (
            1,
            &[FaultKind::DeclinedPayment, FaultKind::PoisonMessage],
            "both at 1s, in given order",
        ),
        (1, &[], "a fault is handed out once"),
        (4, &[], "still early for the bump"),
        (
            60,
            &[FaultKind::SchemaBump],
            "a late tick still gets the fault",
        ),
    ];
    for (elapsed, expected, why) in steps {
        let kinds: Vec<FaultKind> = schedule
            .due(secs(elapsed))
            .into_iter()
            .map(|f| f.kind)
            .collect();
        assert_eq!(kinds, expected, "{why}");
    }
    assert_eq!(schedule.remaining(), 0);
}

#[test]
fn default_schedule_injects_every_fault_and_recovers_before_the_end() {
    for run in [secs(20), secs(30), secs(60)] {
        let faults = default_schedule(run);
        let mut kinds: Vec<FaultKind> = faults.iter().map(|f| f.kind).collect();
        kinds.sort();
        let mut all = FaultKind::ALL.to_vec();
        all.sort();
        assert_eq!(kinds, all, "every kind once for {run:?}");
        for fault in &faults {
            assert!(
                fault.at > Duration::ZERO && fault.at < run / 2,
                "{fault:?} in the first half"
            );
            if fault.kind == FaultKind::SlowConsumer {
                assert!(
                    fault.at + fault.duration < run * 2 / 3,
                    "slow consumer ends early: {fault:?}"
                );
            }
        }
    }
}

#[test]
fn fault_flags_parse_or_name_the_bad_input() {
    type FlagCase = (&'static str, Option<(FaultKind, u64)>, &'static str);
    let cases: [FlagCase; 5] = [
        (
            "poison-message@5s",
            Some((FaultKind::PoisonMessage, 5)),
            "kind and time",
        ),
        (
            "schema-bump",
            Some((FaultKind::SchemaBump, 0)),
            "no time means now",
        ),
        (
            " slow-consumer@1m",
            Some((FaultKind::SlowConsumer, 60)),
            "spaces and minutes",
        ),
        ("melted-cpu@1s", None, "unknown kind"),
        ("declined-payment@soon", None, "bad duration"),
    ];
    for (flag, expected, why) in cases {
        let got = parse_fault_flag(flag)
            .ok()
            .map(|f| (f.kind, f.at.as_secs()));
        assert_eq!(got, expected, "{why}");
    }
    let error = parse_fault_flag("melted-cpu").unwrap_err().to_string();
    assert!(error.starts_with("unknown fault \"melted-cpu\""), "{error}");
}

#[test]
fn config_file_sets_rate_and_schedule() {
    let config = DemoConfig::parse(
        r#"
        rate = 8.5
        [[faults]]
        kind = "slow-consumer"
        at = "2s"
        group = "shipping"
        for = "6s"
        delay = "250ms"
        [[faults]]
        kind = "declined-payment"
        at = "500ms"
        "#,
    )
    .unwrap();
    assert_eq!(config.rate, Some(8.5));
    let faults = config.faults.unwrap();
    assert_eq!(faults.len(), 2);
    assert_eq!(faults[0].group, "shipping");
    assert_eq!(faults[0].duration, secs(6));
    assert_eq!(faults[0].delay, Duration::from_millis(250));
    assert_eq!(faults[1].at, Duration::from_millis(500));
}

#[test]
fn bad_config_files_are_clear_errors() {
    let cases = [
        ("rate = -1", "invalid order rate -1", "negative rate"),
        ("rate = \"fast\"", "invalid demo config", "wrong type"),
        (
            "[[faults]]\nkind = \"x\"\nat = \"1s\"",
            "unknown fault \"x\"",
            "unknown kind",
        ),
        (
            "[[faults]]\nkind = \"schema-bump\"\nat = \"later\"",
            "invalid duration \"later\" for at",
            "bad time",
        ),
        ("colour = 1", "invalid demo config", "unknown key"),
        (
            "[[faults]]\nat = \"1s\"",
            "invalid demo config",
            "missing kind",
        ),
    ];
    for (text, expected, why) in cases {
        let error = DemoConfig::parse(text).unwrap_err().to_string();
        assert!(error.contains(expected), "{why}: {error}");
    }
}

proptest::proptest! {
    #[test]
    fn config_parser_never_panics(text in "\\PC{0,200}") {
        let _ = DemoConfig::parse(&text);
    }

    #[test]
    fn fault_flag_parser_never_panics(flag in "\\PC{0,40}") {
        let _ = parse_fault_flag(&flag);
    }
}
