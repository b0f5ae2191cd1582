//! The demo's flow rules, as explicit configuration: the collector's built-in rules, with
//! the waits shortened to fit a run of seconds rather than hours. An event an expected group
//! has not processed within 2s is late (the built-in rule waits 5m), and an alert resolves
//! after 5s without a new dead letter (the built-in rules wait 5m).

use causeway_collector::alerting::hook_config::RawHook;
use causeway_collector::flow_rules::config::{
    DEFAULT_DEAD_LETTER_RULE, DEFAULT_INCOMPLETE_RULE, RawFlowRule,
};
use causeway_collector::flows_config::FlowsConfig;

/// How often the demo's flow rules run.
pub const FLOW_INTERVAL: &str = "1s";
/// How long a group has to process an event in the demo.
pub const INCOMPLETE_AFTER: &str = "2s";

/// The `[flows]` section the demo's collector runs with.
pub fn demo_flows_config() -> FlowsConfig {
    FlowsConfig {
        interval: Some(FLOW_INTERVAL.to_owned()),
        rules: vec![
            RawFlowRule {
                name: Some(DEFAULT_DEAD_LETTER_RULE.to_owned()),
                kind: Some("dead_letter".to_owned()),
                resolve_after: Some("5s".to_owned()),
                ..RawFlowRule::default()
            },
            RawFlowRule {
                name: Some(DEFAULT_INCOMPLETE_RULE.to_owned()),
                kind: Some("incomplete_after".to_owned()),
                after: Some(INCOMPLETE_AFTER.to_owned()),
                resolve_after: Some("2s".to_owned()),
                ..RawFlowRule::default()
            },
        ],
        ..FlowsConfig::default()
    }
}

/// The `[[hooks]]` of the demo's config file, read as `[[lag.hooks]]` entries.
pub fn demo_hooks(tables: &[toml::Table]) -> anyhow::Result<Vec<RawHook>> {
    tables
        .iter()
        .enumerate()
        .map(|(index, table)| {
            table.clone().try_into().map_err(|error: toml::de::Error| {
                anyhow::anyhow!(
                    "invalid demo config: hook #{}: {}",
                    index + 1,
                    error.message()
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use causeway_collector::flow_rules::config::FlowRuleKind;

    #[test]
    fn demo_rules_are_the_built_in_ones_with_short_waits() {
        let settings = demo_flows_config().rule_settings().unwrap();
        let rules: Vec<(&str, FlowRuleKind)> = settings
            .rules
            .iter()
            .map(|r| (r.name.as_str(), r.kind))
            .collect();
        assert_eq!(
            rules,
            [
                (DEFAULT_DEAD_LETTER_RULE, FlowRuleKind::DeadLetter),
                (DEFAULT_INCOMPLETE_RULE, FlowRuleKind::IncompleteAfter)
            ],
            "the built-in rules replaced by name, nothing added"
        );
        assert_eq!(settings.rules[1].after_ns, 2_000_000_000);
        assert_eq!(settings.interval, std::time::Duration::from_secs(1));
    }

    #[test]
    fn hooks_are_read_with_the_collector_keys_and_refused_by_name() {
        let file: toml::Table = toml::from_str(
            "[[hooks]]\nname = \"ops\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/x\"\n\
             [[hooks]]\nkind = \"exec\"\ncolour = \"red\"\n",
        )
        .unwrap();
        let tables: Vec<toml::Table> = file["hooks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_table().unwrap().clone())
            .collect();
        let error = demo_hooks(&tables).unwrap_err().to_string();
        assert!(error.contains("hook #2: unknown field `colour`"), "{error}");
        let hooks = demo_hooks(&tables[..1]).unwrap();
        assert_eq!(hooks[0].name.as_deref(), Some("ops"));
        assert_eq!(hooks[0].url.as_deref(), Some("http://127.0.0.1:9/x"));
    }
}
