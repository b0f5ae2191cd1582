//! What each flow alert has counted, pure: one subject per rule and consumer group, topic or
//! service (never per flow), with its count, its first flows and when it last matched, and
//! the alert condition it gives each pass.

use std::collections::BTreeMap;

use causeway_conventions::alert::{annotation, label};
use causeway_storage::SubjectRow;

use crate::alerting::alert::{Condition, fingerprint};
use crate::flow_rules::config::{FlowRule, FlowRuleKind};
use crate::flow_rules::evaluate::Occurrence;

/// Flows an alert names, at most.
pub const MAX_FLOW_IDS: usize = 5;

/// One alert's subject and what it has counted in its current episode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// Index of the rule in the settings.
    pub rule: usize,
    /// The alert's labels (name, severity, kind and subject).
    pub labels: BTreeMap<String, String>,
    /// Matches counted (for `incomplete_after`: events overdue now).
    pub count: i64,
    /// The first flows matched.
    pub flow_ids: Vec<String>,
    /// When it first matched in this episode, in nanoseconds since the Unix epoch.
    pub first_seen_ns: i64,
    /// When a pass last saw it match.
    pub last_seen_ns: i64,
}

impl Subject {
    /// The stored form.
    pub fn to_row(&self, fingerprint: &str) -> SubjectRow {
        SubjectRow {
            fingerprint: fingerprint.to_owned(),
            labels: self.labels.clone(),
            count: self.count,
            flow_ids: self.flow_ids.clone(),
            first_seen_ns: self.first_seen_ns,
            last_seen_ns: self.last_seen_ns,
        }
    }

    fn note(&mut self, flow_id: Option<&str>) {
        if let Some(id) = flow_id
            && self.flow_ids.len() < MAX_FLOW_IDS
            && !self.flow_ids.iter().any(|known| known == id)
        {
            self.flow_ids.push(id.to_owned());
        }
    }
}

/// The labels of rule `rule`'s alert on `subject`.
pub fn alert_labels(
    rule: &FlowRule,
    subject: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut labels = subject.clone();
    labels.insert(label::ALERT_NAME.to_owned(), rule.name.clone());
    labels.insert(label::SEVERITY.to_owned(), rule.severity.clone());
    labels.insert(label::FLOW_KIND.to_owned(), rule.kind.name().to_owned());
    labels
}

/// Every subject, by fingerprint.
#[derive(Debug, Clone, Default)]
pub struct Subjects {
    by_print: BTreeMap<String, Subject>,
}

impl Subjects {
    /// No subjects.
    pub fn new() -> Subjects {
        Subjects::default()
    }

    /// The subject of a fingerprint.
    pub fn get(&self, print: &str) -> Option<&Subject> {
        self.by_print.get(print)
    }

    /// Every subject, by fingerprint.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Subject)> {
        self.by_print.iter()
    }

    /// Puts back a subject read from the store, counted by rule `rule`.
    pub fn restore(&mut self, rule: usize, row: &SubjectRow) {
        self.by_print.insert(
            row.fingerprint.clone(),
            Subject {
                rule,
                labels: row.labels.clone(),
                count: row.count,
                flow_ids: row.flow_ids.clone(),
                first_seen_ns: row.first_seen_ns,
                last_seen_ns: row.last_seen_ns,
            },
        );
    }

    fn entry(
        &mut self,
        rules: &[FlowRule],
        rule: usize,
        subject: &BTreeMap<String, String>,
        now_ns: i64,
    ) -> (String, &mut Subject) {
        let labels = alert_labels(&rules[rule], subject);
        let print = fingerprint(&labels);
        let entry = self.by_print.entry(print.clone()).or_insert(Subject {
            rule,
            labels,
            count: 0,
            flow_ids: Vec::new(),
            first_seen_ns: now_ns,
            last_seen_ns: now_ns,
        });
        (print, entry)
    }

    /// Counts one match of an occurrence rule, seen by the pass at `now_ns`; returns the
    /// subject's fingerprint.
    pub fn record(&mut self, rules: &[FlowRule], occurrence: &Occurrence, now_ns: i64) -> String {
        let (print, subject) = self.entry(rules, occurrence.rule, &occurrence.subject, now_ns);
        subject.count += 1;
        subject.last_seen_ns = now_ns;
        subject.note(Some(&occurrence.flow_id));
        print
    }

    /// Changes the overdue count of an `incomplete_after` subject by `delta`, naming
    /// `flow_id` when an event became overdue; returns the subject's fingerprint.
    pub fn overdue(
        &mut self,
        rules: &[FlowRule],
        rule: usize,
        subject: &BTreeMap<String, String>,
        delta: i64,
        flow_id: Option<&str>,
        now_ns: i64,
    ) -> String {
        let (print, state) = self.entry(rules, rule, subject, now_ns);
        state.count = (state.count + delta).max(0);
        if delta > 0 {
            state.last_seen_ns = now_ns;
            state.note(flow_id);
        }
        print
    }

    /// Whether a subject's condition holds at `now_ns`: events overdue now, or (for the
    /// other kinds) a match within the rule's `resolve_after`.
    pub fn active(&self, rules: &[FlowRule], subject: &Subject, now_ns: i64) -> bool {
        let rule = &rules[subject.rule];
        match rule.kind {
            FlowRuleKind::IncompleteAfter => subject.count > 0,
            _ => subject.count > 0 && now_ns - subject.last_seen_ns < rule.resolve_after_ns.max(1),
        }
    }

    /// The alert condition of every subject at `now_ns`. `db` goes into the `causeway flow`
    /// commands the annotations name.
    pub fn conditions(&self, rules: &[FlowRule], now_ns: i64, db: &str) -> Vec<Condition> {
        self.by_print
            .values()
            .map(|subject| {
                let rule = &rules[subject.rule];
                // Occurrence kinds hold their condition for `resolve_after` after the last
                // match themselves; the tracker adds no second wait.
                let resolve_after_ns = match rule.kind {
                    FlowRuleKind::IncompleteAfter => rule.resolve_after_ns,
                    _ => 0,
                };
                Condition {
                    rule: rule.name.clone(),
                    labels: subject.labels.clone(),
                    annotations: annotations(rule, subject, db),
                    active: self.active(rules, subject, now_ns),
                    for_ns: rule.for_ns,
                    resolve_after_ns,
                }
            })
            .collect()
    }

    /// Every subject, by fingerprint, to correct (the overdue events counted again from
    /// the store).
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&String, &mut Subject)> {
        self.by_print.iter_mut()
    }

    /// Forgets a subject (its episode ended); returns whether it was known.
    pub fn forget(&mut self, print: &str) -> bool {
        self.by_print.remove(print).is_some()
    }
}

fn annotations(rule: &FlowRule, subject: &Subject, db: &str) -> BTreeMap<String, String> {
    let count = subject.count;
    let plural = |one: &str, many: &str| {
        if count == 1 {
            one.to_owned()
        } else {
            many.to_owned()
        }
    };
    let get = |key: &str| subject.labels.get(key).map_or("?", String::as_str);
    let whose = match subject.labels.get(label::CONSUMER_GROUP) {
        Some(group) => format!("consumer group {group}"),
        None => format!("service {}", get(label::SERVICE)),
    };
    let mut summary = match rule.kind {
        FlowRuleKind::DeadLetter => format!(
            "{count} {} dead-lettered by {whose} on {}",
            plural("message", "messages"),
            get(label::TOPIC)
        ),
        FlowRuleKind::Error => format!(
            "{count} failed {} in service {}",
            plural("span", "spans"),
            get(label::SERVICE)
        ),
        FlowRuleKind::Compensation => format!(
            "{count} {} sent by service {}",
            plural("compensation", "compensations"),
            get(label::SERVICE)
        ),
        FlowRuleKind::PropagationBreak => format!(
            "{count} {} consumed without trace context by service {}",
            plural("message", "messages"),
            get(label::SERVICE)
        ),
        FlowRuleKind::IncompleteAfter => format!(
            "{count} {} on {} not processed by {whose} within {}",
            plural("event", "events"),
            get(label::TOPIC),
            humantime::format_duration(std::time::Duration::from_nanos(
                u64::try_from(rule.after_ns).unwrap_or(0)
            ))
        ),
    };
    if let Some(first) = subject.flow_ids.first() {
        summary.push_str(&format!("; first {first}"));
    }
    let db = shell_word(db);
    let commands: Vec<String> = subject
        .flow_ids
        .iter()
        .map(|id| format!("causeway --db {db} flow {}", shell_word(id)))
        .collect();
    BTreeMap::from([
        (annotation::SUMMARY.to_owned(), summary),
        (annotation::COUNT.to_owned(), count.to_string()),
        (annotation::FLOW_IDS.to_owned(), subject.flow_ids.join(",")),
        (annotation::FLOW_COMMANDS.to_owned(), commands.join("\n")),
    ])
}

/// `text` as one shell word: as it is when it needs no quoting, else in single quotes.
pub fn shell_word(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./:@%+=,".contains(c));
    if plain {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    const S: i64 = 1_000_000_000;

    fn rules() -> Vec<FlowRule> {
        let mut late = FlowRule::new("late", FlowRuleKind::IncompleteAfter);
        late.after_ns = 3 * S;
        late.resolve_after_ns = 2 * S;
        let mut dead = FlowRule::new("dead", FlowRuleKind::DeadLetter);
        dead.resolve_after_ns = 10 * S;
        vec![dead, late]
    }

    fn occurrence(flow: &str) -> Occurrence {
        Occurrence {
            rule: 0,
            subject: BTreeMap::from([
                (label::CONSUMER_GROUP.to_owned(), "inventory".to_owned()),
                (label::TOPIC.to_owned(), "orders".to_owned()),
            ]),
            flow_id: flow.into(),
            at_ns: 0,
        }
    }

    #[test]
    fn matches_of_one_group_are_one_alert_with_a_count_and_the_first_flows() {
        let rules = rules();
        let mut subjects = Subjects::new();
        let first = subjects.record(&rules, &occurrence("ord-1"), 100 * S);
        for n in 2..=8 {
            let print = subjects.record(&rules, &occurrence(&format!("ord-{n}")), 101 * S);
            assert_eq!(print, first, "one alert per rule and group, never per flow");
        }
        subjects.record(&rules, &occurrence("ord-1"), 101 * S);
        let conditions = subjects.conditions(&rules, 101 * S, "/var/lib/my db.db");
        assert_eq!(conditions.len(), 1);
        let condition = &conditions[0];
        assert!(condition.active);
        assert_eq!(condition.labels[label::ALERT_NAME], "dead");
        assert_eq!(condition.labels[label::FLOW_KIND], "dead_letter");
        assert_eq!(condition.labels[label::CONSUMER_GROUP], "inventory");
        assert_eq!(condition.annotations[annotation::COUNT], "9");
        assert_eq!(
            condition.annotations[annotation::FLOW_IDS],
            "ord-1,ord-2,ord-3,ord-4,ord-5",
            "the first five, each once"
        );
        let commands: Vec<&str> = condition.annotations[annotation::FLOW_COMMANDS]
            .lines()
            .collect();
        assert_eq!(commands.len(), 5);
        assert_eq!(commands[0], "causeway --db '/var/lib/my db.db' flow ord-1");
        assert_eq!(
            condition.annotations[annotation::SUMMARY],
            "9 messages dead-lettered by consumer group inventory on orders; first ord-1"
        );
        // Quiet for resolve_after: the condition clears.
        let later = subjects.conditions(&rules, 111 * S, "x.db");
        assert!(!later[0].active);
        assert_eq!(
            later[0].resolve_after_ns, 0,
            "the quiet time is the rule's own"
        );
    }

    #[test]
    fn overdue_events_hold_the_condition_until_processed() {
        let rules = rules();
        let mut subjects = Subjects::new();
        let subject = BTreeMap::from([
            (label::CONSUMER_GROUP.to_owned(), "shipping".to_owned()),
            (label::TOPIC.to_owned(), "payments".to_owned()),
        ]);
        subjects.overdue(&rules, 1, &subject, 2, Some("ord-7"), 10 * S);
        let condition = &subjects.conditions(&rules, 500 * S, "c.db")[0];
        assert!(
            condition.active,
            "overdue for as long as it is not processed"
        );
        assert_eq!(condition.resolve_after_ns, 2 * S);
        assert_eq!(
            condition.annotations[annotation::SUMMARY],
            "2 events on payments not processed by consumer group shipping within 3s; first ord-7"
        );
        subjects.overdue(&rules, 1, &subject, -2, None, 501 * S);
        assert!(!subjects.conditions(&rules, 501 * S, "c.db")[0].active);
    }

    #[test]
    fn shell_words_are_quoted_only_when_needed() {
        let cases = [
            ("ord-1042", "ord-1042", "plain"),
            ("./causeway.db", "./causeway.db", "a path"),
            ("it's", r"'it'\''s'", "a quote"),
            ("a b", "'a b'", "a space"),
            ("$(rm -rf /)", "'$(rm -rf /)'", "no expansion"),
            ("", "''", "empty"),
        ];
        for (text, expected, reason) in cases {
            assert_eq!(shell_word(text), expected, "{reason}");
        }
    }
}
