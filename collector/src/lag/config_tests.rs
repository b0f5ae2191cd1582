//! Table tests for the `[lag]` configuration.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;

fn parse(text: &str) -> Result<LagSettings, String> {
    let config: LagConfig = toml::from_str(text).map_err(|e| e.to_string())?;
    config.validate().map_err(|e| e.to_string())
}

#[test]
fn a_full_section_parses_with_units() {
    let settings = parse(
        r#"
        interval = "5s"
        groups = ["billing-*"]
        [[rules]]
        name = "billing-behind"
        group = "billing-*"
        warn_messages = 100
        err_messages = 1000
        warn_after = "30s"
        err_after = "5m"
        for = "1m"
        tolerance = 1
        [[hooks]]
        name = "oncall"
        kind = "webhook"
        url = "http://127.0.0.1:9/hook"
        secret = "s3cret"
        [[hooks]]
        name = "script"
        kind = "exec"
        command = "/bin/cat"
        timeout = "2s"
        "#,
    )
    .unwrap();
    assert_eq!(settings.interval, Duration::from_secs(5));
    let rule = &settings.rules[0];
    assert_eq!(rule.warn_after_ms, Some(30_000));
    assert_eq!(rule.err_after_ms, Some(300_000));
    assert_eq!(rule.for_ns, 60_000_000_000);
    assert_eq!(rule.tolerance, 1);
    assert!(rule.group.matches("billing-eu") && !rule.group.matches("shipping"));
    assert_eq!(settings.hooks.len(), 2);
    assert_eq!(settings.hooks[1].timeout, Duration::from_secs(2));
}

#[test]
fn bad_rules_and_hooks_are_refused_by_name() {
    let cases = [
        (
            "a duration without a unit",
            "[[rules]]\nname = \"r1\"\nwarn_after = \"30\"",
            "lag rule r1: warn_after",
        ),
        (
            "warn above err",
            "[[rules]]\nname = \"r2\"\nwarn_messages = 10\nerr_messages = 5",
            "lag rule r2: warn_messages 10 is above",
        ),
        (
            "zero threshold",
            "[[rules]]\nname = \"r3\"\nerr_messages = 0",
            "lag rule r3: err_messages must be at least 1",
        ),
        (
            "unknown state",
            "[[rules]]\nname = \"r4\"\nfire_at = \"LATE\"",
            "lag rule r4: fire_at: unknown state",
        ),
        (
            "window shorter than two polls",
            "interval = \"1m\"\n[[rules]]\nname = \"r5\"\nwindow = \"90s\"",
            "lag rule r5: window must span",
        ),
        (
            "an unnamed rule is named by position",
            "[[rules]]\ntolerance = -1",
            "lag rule #1: tolerance",
        ),
        (
            "duplicate names",
            "[[rules]]\nname = \"x\"\n[[rules]]\nname = \"x\"",
            "lag rule x: another rule",
        ),
        (
            "unknown hook kind",
            "[[hooks]]\nname = \"h1\"\nkind = \"email\"",
            "alert hook h1: unknown kind",
        ),
        (
            "webhook without url",
            "[[hooks]]\nname = \"h2\"\nkind = \"webhook\"",
            "alert hook h2: a webhook needs url",
        ),
        (
            "non-http url",
            "[[hooks]]\nname = \"h3\"\nkind = \"webhook\"\nurl = \"file:///etc/passwd\"",
            "alert hook h3: url",
        ),
        (
            "missing secret variable",
            "[[hooks]]\nname = \"h4\"\nkind = \"webhook\"\nurl = \"http://x\"\nsecret_env = \"CAUSEWAY_TEST_UNSET_VARIABLE\"",
            "alert hook h4: environment variable",
        ),
        (
            "https is refused clearly",
            "[[hooks]]\nname = \"h6\"\nkind = \"webhook\"\nurl = \"https://x\"",
            "alert hook h6: url \"https://x\": https is not built",
        ),
        (
            "exec without command",
            "[[hooks]]\nname = \"h5\"\nkind = \"exec\"",
            "alert hook h5: an exec hook needs command",
        ),
        ("zero interval", "interval = \"0s\"", "lag setting interval"),
    ];
    for (reason, text, expected) in cases {
        let error = parse(text).expect_err(reason);
        assert!(error.starts_with(expected), "{reason}: got {error:?}");
    }
}

#[test]
fn unknown_keys_are_refused() {
    let error = parse("[[rules]]\nname = \"r\"\nwarn_mesages = 5").unwrap_err();
    assert!(error.contains("warn_mesages"), "{error}");
}

#[test]
fn patterns_match_like_globs() {
    let cases = [
        ("*", "anything", true, "star matches all"),
        ("*", "", true, "star matches empty"),
        ("billing", "billing", true, "literal"),
        ("billing", "billing-eu", false, "literal is anchored"),
        ("billing-*", "billing-eu", true, "prefix"),
        ("*-eu", "billing-eu", true, "suffix"),
        ("b*g*u", "billing-eu", true, "several stars backtrack"),
        ("b*x", "billing", false, "no match after star"),
    ];
    for (pattern, name, expected, reason) in cases {
        assert_eq!(
            NamePattern::new(pattern).matches(name),
            expected,
            "{reason}"
        );
    }
}
