//! `[flows]`: how the collector recognises flows in the spans it stores, and the flow rules
//! it raises alerts with.
//!
//! ```toml
//! [flows]
//! # Span attributes that carry a business correlation ID, tried in order. The default
//! # list covers causeway's own attribute, the baggage keys standard baggage span
//! # processors copy onto spans, and the Java agent's captured headers.
//! correlation_keys = ["messaging.message.conversation_id", "correlation.id", "order.id"]
//! interval = "5s"          # how often the flow rules run
//! default_rules = true     # the built-in dead-letter and incomplete rules
//!
//! [[flows.rules]]
//! kind = "error"
//! service = "payment-*"
//! ```

use std::time::Duration;

use causeway_conventions::messaging::DEFAULT_CORRELATION_KEYS;
use causeway_conventions::{DEFAULT_COMPENSATION_EVENT_TYPES, DEFAULT_DEAD_LETTER_TOPICS};
use serde::{Deserialize, Deserializer};

use crate::duration_text::duration;
use crate::flow_rules::config::{FlowRule, FlowRuleError, RawFlowRule, validate_rules};
use crate::otlp::messaging_fields::MessagingReader;

/// How often the flow rules run unless `interval` says otherwise.
pub const DEFAULT_FLOW_RULE_INTERVAL: Duration = Duration::from_secs(5);

/// A bad `[flows]` section.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlowsConfigError {
    /// A rule is invalid (named in the message).
    #[error(transparent)]
    Rule(#[from] FlowRuleError),
    /// A setting outside the rules is invalid.
    #[error("flows setting {key}: {reason}")]
    Setting {
        /// The setting's key.
        key: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// The validated flow rule settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowRuleSettings {
    /// How often the rules run.
    pub interval: Duration,
    /// The rules in force (built-in ones included unless turned off).
    pub rules: Vec<FlowRule>,
    /// Dead-letter topic patterns: the defaults and `dead_letter_topics`.
    pub dead_letter_topics: Vec<String>,
    /// Compensation event type patterns: the defaults and `compensation_types`.
    pub compensation_types: Vec<String>,
}

/// The longest attribute key accepted in `correlation_keys`.
const MAX_KEY_BYTES: usize = 256;

/// The `[flows]` section.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FlowsConfig {
    /// Attribute keys a correlation ID is read from, the first present winning. Replaces
    /// the default list when given.
    #[serde(deserialize_with = "correlation_keys")]
    pub correlation_keys: Vec<String>,
    /// How often the flow rules run (default "5s").
    pub interval: Option<String>,
    /// Whether the built-in flow rules are on (default true).
    pub default_rules: bool,
    /// `[[flows.rules]]`.
    pub rules: Vec<RawFlowRule>,
    /// Dead-letter topic patterns added to the defaults, for the flow rules.
    pub dead_letter_topics: Vec<String>,
    /// Compensation event type patterns added to the defaults, for the flow rules.
    pub compensation_types: Vec<String>,
}

impl Default for FlowsConfig {
    fn default() -> Self {
        FlowsConfig {
            correlation_keys: DEFAULT_CORRELATION_KEYS
                .iter()
                .map(|key| (*key).to_owned())
                .collect(),
            interval: None,
            default_rules: true,
            rules: Vec::new(),
            dead_letter_topics: Vec::new(),
            compensation_types: Vec::new(),
        }
    }
}

impl FlowsConfig {
    /// The reader the receivers use to take messaging fields and correlation IDs from spans.
    pub fn messaging_reader(&self) -> MessagingReader {
        MessagingReader::new(self.correlation_keys.iter().cloned())
    }

    /// Checks the interval, the patterns and every rule.
    pub fn rule_settings(&self) -> Result<FlowRuleSettings, FlowsConfigError> {
        let interval = match &self.interval {
            Some(text) => duration(text).map_err(|reason| FlowsConfigError::Setting {
                key: "interval",
                reason,
            })?,
            None => DEFAULT_FLOW_RULE_INTERVAL,
        };
        if interval.is_zero() {
            return Err(FlowsConfigError::Setting {
                key: "interval",
                reason: "must be longer than 0s".into(),
            });
        }
        let patterns = |key: &'static str, defaults: &[&str], extra: &[String]| {
            if extra.iter().any(String::is_empty) {
                return Err(FlowsConfigError::Setting {
                    key,
                    reason: "a pattern must not be empty".into(),
                });
            }
            let mut all: Vec<String> = defaults.iter().map(|p| (*p).to_owned()).collect();
            for pattern in extra {
                if !all.contains(pattern) {
                    all.push(pattern.clone());
                }
            }
            Ok(all)
        };
        Ok(FlowRuleSettings {
            interval,
            rules: validate_rules(&self.rules, self.default_rules)?,
            // Topics are matched whatever their case.
            dead_letter_topics: patterns(
                "dead_letter_topics",
                DEFAULT_DEAD_LETTER_TOPICS,
                &self.dead_letter_topics,
            )?
            .into_iter()
            .map(|pattern| pattern.to_ascii_lowercase())
            .collect(),
            compensation_types: patterns(
                "compensation_types",
                DEFAULT_COMPENSATION_EVENT_TYPES,
                &self.compensation_types,
            )?,
        })
    }
}

/// A non-empty list of non-blank keys without control characters.
fn correlation_keys<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    let keys = Vec::<String>::deserialize(deserializer)?;
    if keys.is_empty() {
        return Err(serde::de::Error::custom(
            "correlation_keys must name at least one attribute key (leave it out for the defaults)",
        ));
    }
    for key in &keys {
        if key.trim().is_empty() || key.len() > MAX_KEY_BYTES || key.chars().any(char::is_control) {
            return Err(serde::de::Error::custom(format!(
                "correlation_keys: {key:?} is not an attribute key (non-blank, at most \
                 {MAX_KEY_BYTES} bytes, no control characters)"
            )));
        }
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Section {
        flows: FlowsConfig,
    }

    #[test]
    fn keys_are_read_and_checked() {
        type Expected<'a> = Result<&'a [&'a str], &'a str>;
        let cases: &[(&str, Expected, &str)] = &[
            (
                "[flows]\ncorrelation_keys = [\"order.id\", \"correlation.id\"]",
                Ok(&["order.id", "correlation.id"]),
                "a list replaces the defaults, in order",
            ),
            (
                "[flows]",
                Ok(DEFAULT_CORRELATION_KEYS),
                "no list keeps the defaults",
            ),
            (
                "[flows]\ncorrelation_keys = []",
                Err("at least one"),
                "an empty list is an error",
            ),
            (
                "[flows]\ncorrelation_keys = [\" \"]",
                Err("not an attribute key"),
                "a blank key",
            ),
            (
                "[flows]\ncorrelation_keys = [\"a\\u0007\"]",
                Err("not an attribute key"),
                "a control character",
            ),
            (
                "[flows]\ncorrelation_key = [\"x\"]",
                Err("unknown field"),
                "a misspelt field",
            ),
        ];
        for (text, expected, reason) in cases {
            let parsed: Result<Section, _> = toml::from_str(text);
            match (parsed, expected) {
                (Ok(section), Ok(keys)) => {
                    assert_eq!(section.flows.correlation_keys, *keys, "{reason}")
                }
                (Err(error), Err(message)) => {
                    assert!(error.to_string().contains(message), "{reason}: {error}")
                }
                (parsed, expected) => panic!("{reason}: got {parsed:?}, expected {expected:?}"),
            }
        }
    }

    #[test]
    fn rule_settings_read_the_rules_interval_and_patterns() {
        let text = "[flows]\ninterval = \"2s\"\ndefault_rules = false\n\
                    dead_letter_topics = [\"*.parking\"]\n\
                    [[flows.rules]]\nkind = \"dead_letter\"\ngroup = \"billing\"\n";
        let section: Section = toml::from_str(text).unwrap();
        let settings = section.flows.rule_settings().unwrap();
        assert_eq!(settings.interval, Duration::from_secs(2));
        let names: Vec<&str> = settings.rules.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            ["flow-dead-letter"],
            "the configured rule, no defaults"
        );
        assert_eq!(settings.rules[0].group, "billing");
        assert!(settings.dead_letter_topics.contains(&"*.dlq".to_owned()));
        assert!(
            settings
                .dead_letter_topics
                .contains(&"*.parking".to_owned())
        );
        let defaults = FlowsConfig::default().rule_settings().unwrap();
        assert_eq!(defaults.interval, DEFAULT_FLOW_RULE_INTERVAL);
        assert_eq!(defaults.rules.len(), 2, "the built-in rules are on");
        let bad: Section = toml::from_str("[flows]\ninterval = \"0s\"").unwrap();
        assert!(
            bad.flows
                .rule_settings()
                .unwrap_err()
                .to_string()
                .contains("flows setting interval: must be longer than 0s")
        );
        let unknown: Result<Section, _> =
            toml::from_str("[[flows.rules]]\nkind = \"error\"\nwhen = 1");
        assert!(
            unknown
                .unwrap_err()
                .to_string()
                .contains("unknown field `when`")
        );
    }
}
