//! The `[lag]` section of the collector's TOML configuration: what to poll, how long to
//! keep samples, the lag rules and the alert hooks. Parsing checks everything up front; a
//! bad rule or hook refuses to start with its name in the error.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use causeway_conventions::{LagState, glob_match};

use crate::alerting::hook_config::{HookConfig, RawHook, validate_hook};
use crate::duration_text::duration;

/// Nanoseconds in a millisecond.
const NANOS_PER_MILLI: i64 = 1_000_000;

/// A bad `[lag]` section.
#[derive(Debug, thiserror::Error)]
pub enum LagConfigError {
    /// A rule is invalid.
    #[error("lag rule {rule}: {reason}")]
    Rule {
        /// The rule's name (or its position when unnamed).
        rule: String,
        /// What is wrong.
        reason: String,
    },
    /// A hook is invalid.
    #[error("alert hook {hook}: {reason}")]
    Hook {
        /// The hook's name (or its position when unnamed).
        hook: String,
        /// What is wrong.
        reason: String,
    },
    /// A setting outside rules and hooks is invalid.
    #[error("lag setting {key}: {reason}")]
    Setting {
        /// The setting's key.
        key: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// The `[lag]` section as written in TOML. Durations are strings with units ("30s", "5m").
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LagConfig {
    /// Poll interval (default "10s").
    pub interval: Option<String>,
    /// Group name patterns to poll (`*` matches any run of characters); empty polls all.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Topics each group consumes, for groups the broker cannot tell us about (no members).
    #[serde(default)]
    pub group_topics: BTreeMap<String, Vec<String>>,
    /// Keep every sample this long before downsampling (default "1h").
    pub raw_retention: Option<String>,
    /// Keep one sample per this bucket after that (default "1m").
    pub downsample_bucket: Option<String>,
    /// Delete samples older than this (default "7d").
    pub retention: Option<String>,
    /// Lag rules, evaluated every poll.
    #[serde(default)]
    pub rules: Vec<RawRule>,
    /// Where alerts go.
    #[serde(default)]
    pub hooks: Vec<RawHook>,
}

/// One `[[lag.rules]]` entry as written.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    /// The rule's name, used as the alert name.
    pub name: Option<String>,
    /// Group pattern (default `*`).
    pub group: Option<String>,
    /// Topic pattern (default `*`).
    pub topic: Option<String>,
    /// Lag in messages at which a group is WARN.
    pub warn_messages: Option<i64>,
    /// Lag in messages at which a group is ERR.
    pub err_messages: Option<i64>,
    /// Age of the oldest waiting message at which a group is WARN ("30s").
    pub warn_after: Option<String>,
    /// Age of the oldest waiting message at which a group is ERR ("5m").
    pub err_after: Option<String>,
    /// Lag treated as caught up (1 for transactional topics, whose commit marker takes an
    /// offset no consumer ever reads).
    pub tolerance: Option<i64>,
    /// Evaluation window (default "5m").
    pub window: Option<String>,
    /// Samples the window needs before STOP, STALL and trend states apply (default 3).
    pub min_samples: Option<usize>,
    /// No sample for this long while lagging counts as stopped (default 3 windows).
    pub stale_after: Option<String>,
    /// The lowest state that raises the alert (default "WARN").
    pub fire_at: Option<String>,
    /// How long the condition must hold before the alert fires (default "0s").
    #[serde(rename = "for")]
    pub for_: Option<String>,
    /// How long the condition must be clear before the alert resolves (default "1m").
    pub resolve_after: Option<String>,
    /// Severity label (default "warning").
    pub severity: Option<String>,
}

/// A glob over names where `*` matches any run of characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamePattern(String);

impl NamePattern {
    /// A pattern from its text.
    pub fn new(text: &str) -> Self {
        NamePattern(text.to_owned())
    }

    /// Whether `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        glob_match(&self.0, name)
    }

    /// The pattern's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A validated lag rule.
#[derive(Debug, Clone, PartialEq)]
pub struct LagRule {
    /// The rule's name.
    pub name: String,
    /// Groups it applies to.
    pub group: NamePattern,
    /// Topics it applies to.
    pub topic: NamePattern,
    /// WARN threshold in messages.
    pub warn_messages: Option<i64>,
    /// ERR threshold in messages.
    pub err_messages: Option<i64>,
    /// WARN threshold on the oldest waiting message's age, in milliseconds.
    pub warn_after_ms: Option<i64>,
    /// ERR threshold on the oldest waiting message's age, in milliseconds.
    pub err_after_ms: Option<i64>,
    /// Lag treated as caught up.
    pub tolerance: i64,
    /// Evaluation window in nanoseconds.
    pub window_ns: i64,
    /// Samples needed before STOP, STALL and trend states apply.
    pub min_samples: usize,
    /// No sample for this long counts as stopped, in nanoseconds.
    pub stale_after_ns: i64,
    /// Lowest group state that raises the alert.
    pub fire_at: LagState,
    /// Pending time before firing, in nanoseconds.
    pub for_ns: i64,
    /// Clear time before resolving, in nanoseconds.
    pub resolve_after_ns: i64,
    /// Severity label.
    pub severity: String,
}

impl Default for LagRule {
    fn default() -> Self {
        LagRule {
            name: "lag".into(),
            group: NamePattern::new("*"),
            topic: NamePattern::new("*"),
            warn_messages: None,
            err_messages: None,
            warn_after_ms: None,
            err_after_ms: None,
            tolerance: 0,
            window_ns: 300 * 1_000 * NANOS_PER_MILLI,
            min_samples: 3,
            stale_after_ns: 900 * 1_000 * NANOS_PER_MILLI,
            fire_at: LagState::Warn,
            for_ns: 0,
            resolve_after_ns: 60 * 1_000 * NANOS_PER_MILLI,
            severity: "warning".into(),
        }
    }
}

/// The validated `[lag]` section.
#[derive(Debug, Clone, PartialEq)]
pub struct LagSettings {
    /// Poll interval.
    pub interval: Duration,
    /// Group patterns to poll; empty polls all.
    pub groups: Vec<NamePattern>,
    /// Topics named per group.
    pub group_topics: BTreeMap<String, Vec<String>>,
    /// Raw samples are kept this long, in nanoseconds.
    pub raw_retention_ns: i64,
    /// Downsampling bucket, in nanoseconds.
    pub downsample_bucket_ns: i64,
    /// Samples are deleted after this long, in nanoseconds.
    pub retention_ns: i64,
    /// The rules.
    pub rules: Vec<LagRule>,
    /// The hooks.
    pub hooks: Vec<HookConfig>,
}

impl LagConfig {
    /// Checks every setting, rule and hook, and converts durations.
    pub fn validate(&self) -> Result<LagSettings, LagConfigError> {
        let setting = |key: &'static str, text: &Option<String>, default: &str| {
            duration(text.as_deref().unwrap_or(default))
                .map_err(|reason| LagConfigError::Setting { key, reason })
        };
        let interval = setting("interval", &self.interval, "10s")?;
        if interval.is_zero() {
            return Err(LagConfigError::Setting {
                key: "interval",
                reason: "must be longer than 0s".into(),
            });
        }
        let mut rules = Vec::new();
        for (index, raw) in self.rules.iter().enumerate() {
            let name = raw
                .name
                .clone()
                .unwrap_or_else(|| format!("#{}", index + 1));
            let rule =
                validate_rule(raw, &name, interval).map_err(|reason| LagConfigError::Rule {
                    rule: name.clone(),
                    reason,
                })?;
            if rules.iter().any(|r: &LagRule| r.name == rule.name) {
                return Err(LagConfigError::Rule {
                    rule: name,
                    reason: "another rule has the same name".into(),
                });
            }
            rules.push(rule);
        }
        let mut hooks = Vec::new();
        for (index, raw) in self.hooks.iter().enumerate() {
            let name = raw
                .name
                .clone()
                .unwrap_or_else(|| format!("#{}", index + 1));
            let hook = validate_hook(raw, &name).map_err(|reason| LagConfigError::Hook {
                hook: name.clone(),
                reason,
            })?;
            hooks.push(hook);
        }
        Ok(LagSettings {
            interval,
            groups: self.groups.iter().map(|g| NamePattern::new(g)).collect(),
            group_topics: self.group_topics.clone(),
            raw_retention_ns: nanos(setting("raw_retention", &self.raw_retention, "1h")?),
            downsample_bucket_ns: nanos(setting(
                "downsample_bucket",
                &self.downsample_bucket,
                "1m",
            )?)
            .max(1),
            retention_ns: nanos(setting("retention", &self.retention, "7d")?),
            rules,
            hooks,
        })
    }
}

fn validate_rule(raw: &RawRule, name: &str, interval: Duration) -> Result<LagRule, String> {
    let defaults = LagRule::default();
    let optional_ms = |text: &Option<String>, key: &str| -> Result<Option<i64>, String> {
        text.as_deref()
            .map(|t| duration(t).map(|d| d.as_millis() as i64))
            .transpose()
            .map_err(|e| format!("{key}: {e}"))
    };
    let required_ns = |text: &Option<String>, key: &str, default: i64| -> Result<i64, String> {
        text.as_deref()
            .map(|t| duration(t).map(nanos))
            .transpose()
            .map(|v| v.unwrap_or(default))
            .map_err(|e| format!("{key}: {e}"))
    };
    let window_ns = required_ns(&raw.window, "window", defaults.window_ns)?;
    let rule = LagRule {
        name: name.to_owned(),
        group: NamePattern::new(raw.group.as_deref().unwrap_or("*")),
        topic: NamePattern::new(raw.topic.as_deref().unwrap_or("*")),
        warn_messages: raw.warn_messages,
        err_messages: raw.err_messages,
        warn_after_ms: optional_ms(&raw.warn_after, "warn_after")?,
        err_after_ms: optional_ms(&raw.err_after, "err_after")?,
        tolerance: raw.tolerance.unwrap_or(0),
        window_ns,
        min_samples: raw.min_samples.unwrap_or(defaults.min_samples),
        stale_after_ns: required_ns(&raw.stale_after, "stale_after", window_ns.saturating_mul(3))?,
        fire_at: match &raw.fire_at {
            Some(text) => LagState::parse(text).ok_or_else(|| {
                format!("fire_at: unknown state {text:?} (OK, WARN, ERR, REWIND, STALL, STOP)")
            })?,
            None => defaults.fire_at,
        },
        for_ns: required_ns(&raw.for_, "for", 0)?,
        resolve_after_ns: required_ns(
            &raw.resolve_after,
            "resolve_after",
            defaults.resolve_after_ns,
        )?,
        severity: raw.severity.clone().unwrap_or(defaults.severity),
    };
    if name.is_empty() {
        return Err("name must not be empty".into());
    }
    for (key, value) in [
        ("warn_messages", rule.warn_messages),
        ("err_messages", rule.err_messages),
    ] {
        if value.is_some_and(|v| v <= 0) {
            return Err(format!("{key} must be at least 1"));
        }
    }
    if let (Some(warn), Some(err)) = (rule.warn_messages, rule.err_messages)
        && warn > err
    {
        return Err(format!("warn_messages {warn} is above err_messages {err}"));
    }
    if let (Some(warn), Some(err)) = (rule.warn_after_ms, rule.err_after_ms)
        && warn > err
    {
        return Err("warn_after is longer than err_after".into());
    }
    if rule.tolerance < 0 {
        return Err("tolerance must not be negative".into());
    }
    if rule.min_samples < 2 {
        return Err("min_samples must be at least 2".into());
    }
    if rule.window_ns < nanos(interval).saturating_mul(2) {
        return Err(format!(
            "window must span at least two poll intervals ({})",
            humantime::format_duration(interval * 2)
        ));
    }
    if rule.fire_at <= LagState::Ok {
        return Err("fire_at must be WARN or worse".into());
    }
    Ok(rule)
}

fn nanos(duration: Duration) -> i64 {
    i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX)
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
