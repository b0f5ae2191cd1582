//! What reconstruction needs besides the spans: which groups subscribe to which topics,
//! and the patterns that name compensations and dead-letter topics.

use std::collections::{BTreeMap, BTreeSet};

pub use causeway_conventions::glob_match;
use causeway_conventions::{DEFAULT_COMPENSATION_EVENT_TYPES, DEFAULT_DEAD_LETTER_TOPICS};
use serde::Serialize;

/// Which consumer groups process which topics, learnt from all stored traffic.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Topology {
    subscriptions: BTreeMap<String, BTreeSet<String>>,
}

impl Topology {
    /// An empty topology: only groups seen in the flow itself are expected.
    pub fn new() -> Topology {
        Topology::default()
    }

    /// Builds a topology from `(topic, consumer group)` pairs.
    pub fn from_pairs<I, T, G>(pairs: I) -> Topology
    where
        I: IntoIterator<Item = (T, G)>,
        T: Into<String>,
        G: Into<String>,
    {
        let mut topology = Topology::new();
        for (topic, group) in pairs {
            topology.subscribe(topic, group);
        }
        topology
    }

    /// Records that `group` consumes `topic`.
    pub fn subscribe(&mut self, topic: impl Into<String>, group: impl Into<String>) {
        self.subscriptions
            .entry(topic.into())
            .or_default()
            .insert(group.into());
    }

    /// The groups known to consume `topic`, sorted.
    pub fn groups_for(&self, topic: &str) -> impl Iterator<Item = &str> {
        self.subscriptions
            .get(topic)
            .into_iter()
            .flat_map(|groups| groups.iter().map(String::as_str))
    }
}

/// Tunables of reconstruction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlowOptions {
    /// Event type patterns (`*` matches any run of characters) that mark a saga's undo step.
    pub compensation_patterns: Vec<String>,
    /// Topic patterns that mark a dead-letter topic.
    pub dead_letter_patterns: Vec<String>,
    /// Span attributes to read a correlation ID from where the collector stored none
    /// (`--correlation-key`): keys it was not configured to read when the spans arrived.
    pub correlation_keys: Vec<String>,
}

impl Default for FlowOptions {
    fn default() -> Self {
        FlowOptions {
            compensation_patterns: DEFAULT_COMPENSATION_EVENT_TYPES
                .iter()
                .map(|p| (*p).to_owned())
                .collect(),
            dead_letter_patterns: DEFAULT_DEAD_LETTER_TOPICS
                .iter()
                .map(|p| (*p).to_owned())
                .collect(),
            correlation_keys: Vec::new(),
        }
    }
}

impl FlowOptions {
    /// The default patterns plus `compensations` and `dead_letters` (a pattern already
    /// present is not repeated). Extra patterns add to the defaults, never replace them.
    pub fn with_extra_patterns<C, D>(compensations: C, dead_letters: D) -> FlowOptions
    where
        C: IntoIterator<Item = String>,
        D: IntoIterator<Item = String>,
    {
        let mut options = FlowOptions::default();
        add_new(&mut options.compensation_patterns, compensations);
        add_new(&mut options.dead_letter_patterns, dead_letters);
        options
    }

    /// Whether `event_type` names a compensation.
    pub fn is_compensation(&self, event_type: &str) -> bool {
        self.compensation_patterns
            .iter()
            .any(|pattern| glob_match(pattern, event_type))
    }

    /// Whether `topic` is a dead-letter topic.
    pub fn is_dead_letter_topic(&self, topic: &str) -> bool {
        let lower = topic.to_ascii_lowercase();
        self.dead_letter_patterns
            .iter()
            .any(|pattern| glob_match(&pattern.to_ascii_lowercase(), &lower))
    }
}

/// Appends each of `extra` that `patterns` does not hold yet.
fn add_new(patterns: &mut Vec<String>, extra: impl IntoIterator<Item = String>) {
    for pattern in extra {
        if !patterns.contains(&pattern) {
            patterns.push(pattern);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_like_a_shell_star() {
        let cases = [
            ("*.released.*", "stock.released.v1", true, "middle word"),
            ("*.released.*", "stock.released", false, "needs a suffix"),
            (
                "*.compensat*",
                "payment.compensated",
                true,
                "prefix of a word",
            ),
            (
                "*.compensat*",
                "payment.compensation.v2",
                true,
                "longer word",
            ),
            ("order.*", "order.placed.v1", true, "prefix"),
            ("order.*", "orders", false, "literal dot required"),
            ("*", "", true, "star matches empty"),
            ("", "", true, "empty matches empty"),
            ("a*b*c", "aXbYc", true, "two stars"),
            ("a*b*c", "aXbY", false, "missing last literal"),
        ];
        for (pattern, text, expected, reason) in cases {
            assert_eq!(glob_match(pattern, text), expected, "{reason}");
        }
    }

    #[test]
    fn default_options_recognise_compensations_and_dead_letters() {
        let options = FlowOptions::default();
        assert!(options.is_compensation("inventory.released.v1"));
        assert!(options.is_compensation("order.cancelled.v2"));
        assert!(!options.is_compensation("order.placed.v1"));
        assert!(options.is_dead_letter_topic("payments.DLQ"));
        assert!(options.is_dead_letter_topic("orders-dlt"));
        assert!(!options.is_dead_letter_topic("orders"));
    }

    #[test]
    fn extra_patterns_add_to_the_defaults() {
        let options = FlowOptions::with_extra_patterns(
            ["*.voided.*".to_owned(), "*.released.*".to_owned()],
            ["parking.*".to_owned()],
        );
        assert!(
            options.is_compensation("order.voided.v1"),
            "the extra pattern"
        );
        assert!(
            options.is_compensation("stock.released.v1"),
            "a default kept"
        );
        assert_eq!(
            options.compensation_patterns.len(),
            FlowOptions::default().compensation_patterns.len() + 1,
            "a default given again is not repeated"
        );
        assert!(
            options.is_dead_letter_topic("parking.orders"),
            "the extra pattern"
        );
        assert!(options.is_dead_letter_topic("orders.dlq"), "a default kept");
        assert!(!FlowOptions::default().is_compensation("order.voided.v1"));
    }

    #[test]
    fn topology_lists_groups_per_topic() {
        let topology = Topology::from_pairs([("orders", "billing"), ("orders", "shipping")]);
        assert_eq!(
            topology.groups_for("orders").collect::<Vec<_>>(),
            ["billing", "shipping"]
        );
        assert_eq!(topology.groups_for("payments").count(), 0);
    }
}
