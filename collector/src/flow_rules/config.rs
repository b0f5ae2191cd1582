//! `[[flows.rules]]`: flow rules as written, their validated form, and the built-in
//! defaults (a dead letter anywhere; an event an expected group has not processed within
//! five minutes), on unless `[flows] default_rules = false`.

use std::time::Duration;

use serde::Deserialize;

use causeway_conventions::glob_match;

use crate::duration_text::duration;

/// The built-in rule that fires on any dead letter.
pub const DEFAULT_DEAD_LETTER_RULE: &str = "flow-dead-letter";
/// The built-in rule that fires on an event an expected group has not processed in time.
pub const DEFAULT_INCOMPLETE_RULE: &str = "flow-incomplete";
/// How long the built-in `incomplete_after` rule waits.
pub const DEFAULT_INCOMPLETE_AFTER: Duration = Duration::from_secs(5 * 60);
/// How long a rule's condition must be clear before its alert resolves, by default.
pub const DEFAULT_RESOLVE_AFTER: Duration = Duration::from_secs(5 * 60);

/// A bad `[[flows.rules]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("flow rule {rule}: {reason}")]
pub struct FlowRuleError {
    /// The rule's name (or its position when unnamed).
    pub rule: String,
    /// What is wrong.
    pub reason: String,
}

/// One `[[flows.rules]]` entry as written. Durations are strings with units ("30s", "5m").
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFlowRule {
    /// The rule's name, used as the alert name (default `flow-<kind>`).
    pub name: Option<String>,
    /// `dead_letter`, `error`, `compensation`, `incomplete_after` or `propagation_break`.
    pub kind: Option<String>,
    /// Service pattern (default `*`).
    pub service: Option<String>,
    /// Topic pattern (default `*`).
    pub topic: Option<String>,
    /// Event type pattern (default `*`).
    pub event_type: Option<String>,
    /// Consumer group pattern (default `*`).
    pub group: Option<String>,
    /// `incomplete_after` only: how long an expected group has to process an event.
    pub after: Option<String>,
    /// Severity label (default "warning").
    pub severity: Option<String>,
    /// How long the condition must hold before the alert fires (default "0s").
    #[serde(rename = "for")]
    pub for_: Option<String>,
    /// How long the condition must be clear before the alert resolves (default "5m").
    pub resolve_after: Option<String>,
}

/// What a flow rule looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FlowRuleKind {
    /// A message forwarded to a dead-letter topic.
    DeadLetter,
    /// A span that ended in error.
    Error,
    /// A compensation event sent (a saga's undo step).
    Compensation,
    /// An event an expected group has not processed within `after`.
    IncompleteAfter,
    /// A consumer that lost the trace context.
    PropagationBreak,
}

impl FlowRuleKind {
    /// Every kind.
    pub const ALL: [FlowRuleKind; 5] = [
        FlowRuleKind::DeadLetter,
        FlowRuleKind::Error,
        FlowRuleKind::Compensation,
        FlowRuleKind::IncompleteAfter,
        FlowRuleKind::PropagationBreak,
    ];

    /// The name written in the config and in the `flow_kind` label.
    pub fn name(self) -> &'static str {
        match self {
            FlowRuleKind::DeadLetter => "dead_letter",
            FlowRuleKind::Error => "error",
            FlowRuleKind::Compensation => "compensation",
            FlowRuleKind::IncompleteAfter => "incomplete_after",
            FlowRuleKind::PropagationBreak => "propagation_break",
        }
    }

    fn parse(text: &str) -> Option<FlowRuleKind> {
        FlowRuleKind::ALL.into_iter().find(|k| k.name() == text)
    }
}

/// A validated flow rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowRule {
    /// The rule's name (the alert name).
    pub name: String,
    /// What it looks for.
    pub kind: FlowRuleKind,
    /// Service pattern.
    pub service: String,
    /// Topic pattern.
    pub topic: String,
    /// Event type pattern.
    pub event_type: String,
    /// Consumer group pattern.
    pub group: String,
    /// `incomplete_after` only: the time a group has, in nanoseconds.
    pub after_ns: i64,
    /// Severity label.
    pub severity: String,
    /// Pending time before firing, in nanoseconds.
    pub for_ns: i64,
    /// Clear time before resolving, in nanoseconds.
    pub resolve_after_ns: i64,
}

/// The values a rule's filters are matched against; `None` is a value the span does not
/// have, which only `*` matches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Subject<'a> {
    /// The service.
    pub service: Option<&'a str>,
    /// The topic.
    pub topic: Option<&'a str>,
    /// The event type.
    pub event_type: Option<&'a str>,
    /// The consumer group.
    pub group: Option<&'a str>,
}

impl FlowRule {
    /// A rule of `kind` named `name` with every filter `*` and the default durations.
    pub fn new(name: &str, kind: FlowRuleKind) -> FlowRule {
        FlowRule {
            name: name.to_owned(),
            kind,
            service: "*".into(),
            topic: "*".into(),
            event_type: "*".into(),
            group: "*".into(),
            after_ns: nanos(DEFAULT_INCOMPLETE_AFTER),
            severity: "warning".into(),
            for_ns: 0,
            resolve_after_ns: nanos(DEFAULT_RESOLVE_AFTER),
        }
    }

    /// Whether every filter matches `subject`.
    pub fn matches(&self, subject: Subject<'_>) -> bool {
        // `*`, every filter's default, matches anything (checked first: it is most rules'
        // every filter, tried on every span).
        let one = |pattern: &str, value: Option<&str>| match value {
            _ if pattern == "*" => true,
            Some(value) => glob_match(pattern, value),
            None => false,
        };
        one(&self.service, subject.service)
            && one(&self.topic, subject.topic)
            && one(&self.event_type, subject.event_type)
            && one(&self.group, subject.group)
    }
}

/// The built-in rules.
pub fn default_rules() -> Vec<FlowRule> {
    vec![
        FlowRule::new(DEFAULT_DEAD_LETTER_RULE, FlowRuleKind::DeadLetter),
        FlowRule::new(DEFAULT_INCOMPLETE_RULE, FlowRuleKind::IncompleteAfter),
    ]
}

/// The rules in force: the built-in ones (unless `defaults` is false), with any of them
/// replaced by a configured rule of the same name, then the other configured rules.
pub fn validate_rules(raw: &[RawFlowRule], defaults: bool) -> Result<Vec<FlowRule>, FlowRuleError> {
    let mut configured: Vec<FlowRule> = Vec::new();
    for (index, rule) in raw.iter().enumerate() {
        let label = rule
            .name
            .clone()
            .unwrap_or_else(|| format!("#{}", index + 1));
        let valid = validate_rule(rule).map_err(|reason| FlowRuleError {
            rule: label.clone(),
            reason,
        })?;
        if configured.iter().any(|r| r.name == valid.name) {
            return Err(FlowRuleError {
                rule: label,
                reason: format!(
                    "another rule is named {:?} (give each rule its own name)",
                    valid.name
                ),
            });
        }
        configured.push(valid);
    }
    let mut rules: Vec<FlowRule> = if defaults {
        default_rules()
            .into_iter()
            .filter(|d| !configured.iter().any(|r| r.name == d.name))
            .collect()
    } else {
        Vec::new()
    };
    rules.extend(configured);
    Ok(rules)
}

fn validate_rule(raw: &RawFlowRule) -> Result<FlowRule, String> {
    let kind_text = raw.kind.as_deref().ok_or(
        "kind is missing (dead_letter, error, compensation, incomplete_after or propagation_break)",
    )?;
    let kind = FlowRuleKind::parse(kind_text).ok_or_else(|| {
        format!(
            "unknown kind {kind_text:?} (dead_letter, error, compensation, incomplete_after or \
             propagation_break)"
        )
    })?;
    let name = raw
        .name
        .clone()
        .unwrap_or_else(|| format!("flow-{}", kind.name().replace('_', "-")));
    if name.trim().is_empty() {
        return Err("name must not be empty".into());
    }
    let mut rule = FlowRule::new(&name, kind);
    for (key, value, target) in [
        ("service", &raw.service, &mut rule.service),
        ("topic", &raw.topic, &mut rule.topic),
        ("event_type", &raw.event_type, &mut rule.event_type),
        ("group", &raw.group, &mut rule.group),
    ] {
        if let Some(pattern) = value {
            if pattern.is_empty() {
                return Err(format!("{key}: a pattern must not be empty"));
            }
            *target = pattern.clone();
        }
    }
    if kind == FlowRuleKind::Compensation && rule.group != "*" {
        return Err("group: a compensation is a send, it has no consumer group".into());
    }
    let ns = |key: &str, text: &str| duration(text).map(nanos).map_err(|e| format!("{key}: {e}"));
    match (kind, &raw.after) {
        (FlowRuleKind::IncompleteAfter, Some(text)) => {
            rule.after_ns = ns("after", text)?;
            if rule.after_ns <= 0 {
                return Err("after must be longer than 0s".into());
            }
        }
        (FlowRuleKind::IncompleteAfter, None) => {
            return Err(
                "after is missing: how long a group has to process an event (\"5m\")".into(),
            );
        }
        (_, Some(_)) => return Err("after applies to incomplete_after rules only".into()),
        (_, None) => {}
    }
    if let Some(text) = &raw.for_ {
        rule.for_ns = ns("for", text)?;
    }
    if let Some(text) = &raw.resolve_after {
        rule.resolve_after_ns = ns("resolve_after", text)?;
    }
    if let Some(severity) = &raw.severity {
        if severity.trim().is_empty() {
            return Err("severity must not be empty".into());
        }
        rule.severity = severity.clone();
    }
    Ok(rule)
}

fn nanos(duration: Duration) -> i64 {
    i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn parse(text: &str) -> Result<Vec<FlowRule>, String> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct File {
            #[serde(default)]
            rules: Vec<RawFlowRule>,
        }
        let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
        validate_rules(&file.rules, true).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_are_on_and_a_rule_of_the_same_name_replaces_one() {
        let rules = parse("").unwrap();
        assert_eq!(rules, default_rules());
        assert_eq!(rules[1].after_ns, 300_000_000_000, "five minutes");
        assert_eq!(rules[0].severity, "warning");
        let rules = parse(
            "[[rules]]\nname = \"flow-incomplete\"\nkind = \"incomplete_after\"\nafter = \"10m\"\n\
             [[rules]]\nkind = \"error\"\nservice = \"payment-*\"\nseverity = \"page\"\n\
             for = \"1m\"\nresolve_after = \"30s\"\n",
        )
        .unwrap();
        let names: Vec<&str> = rules.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["flow-dead-letter", "flow-incomplete", "flow-error"]);
        assert_eq!(rules[1].after_ns, 600_000_000_000, "replaced, not repeated");
        assert_eq!(rules[2].service, "payment-*");
        assert_eq!(rules[2].for_ns, 60_000_000_000);
        assert_eq!(rules[2].resolve_after_ns, 30_000_000_000);
        let off = validate_rules(&[], false).unwrap();
        assert!(off.is_empty(), "default_rules = false turns them off");
    }

    #[test]
    fn bad_rules_are_refused_with_their_name() {
        let cases = [
            (
                "[[rules]]\nname = \"x\"\n",
                "flow rule x: kind is missing",
                "no kind",
            ),
            (
                "[[rules]]\nkind = \"late\"\n",
                "flow rule #1: unknown kind \"late\"",
                "unknown kind",
            ),
            (
                "[[rules]]\nkind = \"incomplete_after\"\n",
                "after is missing",
                "incomplete_after needs after",
            ),
            (
                "[[rules]]\nkind = \"error\"\nafter = \"1m\"\n",
                "after applies to incomplete_after rules only",
                "after elsewhere",
            ),
            (
                "[[rules]]\nkind = \"error\"\nfor = \"soon\"\n",
                "for: invalid duration",
                "bad duration",
            ),
            (
                "[[rules]]\nkind = \"error\"\n[[rules]]\nkind = \"error\"\n",
                "another rule is named \"flow-error\"",
                "duplicate names",
            ),
            (
                "[[rules]]\nkind = \"error\"\ntopic = \"\"\n",
                "topic: a pattern must not be empty",
                "empty pattern",
            ),
            (
                "[[rules]]\nkind = \"compensation\"\ngroup = \"billing\"\n",
                "has no consumer group",
                "a compensation has no group",
            ),
            (
                "[[rules]]\nkind = \"error\"\ncolour = \"red\"\n",
                "unknown field `colour`",
                "unknown key",
            ),
        ];
        for (text, expected, reason) in cases {
            let error = parse(text).unwrap_err();
            assert!(error.contains(expected), "{reason}: {error}");
        }
    }

    #[test]
    fn filters_match_values_and_only_a_star_matches_a_missing_one() {
        let mut rule = FlowRule::new("r", FlowRuleKind::Error);
        let subject = Subject {
            service: Some("payment-service"),
            topic: None,
            event_type: Some("payment.failed.v1"),
            group: None,
        };
        assert!(rule.matches(subject), "every filter is *");
        rule.service = "payment-*".into();
        rule.event_type = "*.failed.*".into();
        assert!(rule.matches(subject));
        rule.topic = "orders".into();
        assert!(!rule.matches(subject), "no topic: only * matches");
    }
}
