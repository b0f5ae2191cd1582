//! `[flows]`: how the collector recognises flows in the spans it stores.
//!
//! ```toml
//! [flows]
//! # Span attributes that carry a business correlation ID, tried in order. The default
//! # list covers causeway's own attribute, the baggage keys standard baggage span
//! # processors copy onto spans, and the Java agent's captured headers.
//! correlation_keys = ["messaging.message.conversation_id", "correlation.id", "order.id"]
//! ```

use causeway_conventions::messaging::DEFAULT_CORRELATION_KEYS;
use serde::{Deserialize, Deserializer};

use crate::otlp::messaging_fields::MessagingReader;

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
}

impl Default for FlowsConfig {
    fn default() -> Self {
        FlowsConfig {
            correlation_keys: DEFAULT_CORRELATION_KEYS
                .iter()
                .map(|key| (*key).to_owned())
                .collect(),
        }
    }
}

impl FlowsConfig {
    /// The reader the receivers use to take messaging fields and correlation IDs from spans.
    pub fn messaging_reader(&self) -> MessagingReader {
        MessagingReader::new(self.correlation_keys.iter().cloned())
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
}
