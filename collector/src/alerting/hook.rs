//! Alert hooks: who hears about an alert and when. The schedule (new, repeat, resolved) is
//! pure; delivery goes to [`crate::alerting::hook_webhook`] or [`crate::alerting::hook_exec`].

use std::collections::HashMap;

use crate::alerting::alert::{AlertChanges, AlertStatus};
use crate::alerting::delivery::HookError;
use crate::alerting::hook_config::{HookConfig, HookTarget};
use crate::alerting::payload::{WebhookPayload, payload};

/// One payload due to one hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Index of the hook in the configuration.
    pub hook: usize,
    /// What to send.
    pub payload: WebhookPayload,
}

/// Remembers when each hook last heard about each alert, to repeat at the hook's interval
/// and never twice in between.
#[derive(Debug, Clone, Default)]
pub struct HookSchedule {
    last_sent_ns: HashMap<(usize, String), i64>,
}

impl HookSchedule {
    /// An empty schedule.
    pub fn new() -> Self {
        HookSchedule::default()
    }

    /// Remembers that every one of `hooks` hooks heard about `fingerprint` at `at_ns` (read
    /// back from the store after a restart), so that none is told again before its repeat
    /// interval.
    pub fn remember(&mut self, hooks: usize, fingerprint: &str, at_ns: i64) {
        for hook in 0..hooks {
            self.last_sent_ns
                .insert((hook, fingerprint.to_owned()), at_ns);
        }
    }

    /// The deliveries one evaluation's changes call for at `now_ns`.
    pub fn due(
        &mut self,
        hooks: &[HookConfig],
        changes: &AlertChanges,
        now_ns: i64,
    ) -> Vec<Delivery> {
        let mut deliveries = Vec::new();
        for (index, hook) in hooks.iter().enumerate() {
            let repeat_ns = i64::try_from(hook.repeat_interval.as_nanos()).unwrap_or(i64::MAX);
            for alert in &changes.newly_firing {
                self.last_sent_ns
                    .insert((index, alert.fingerprint.clone()), now_ns);
                deliveries.push(Delivery {
                    hook: index,
                    payload: payload(alert, &hook.name, &hook.external_url),
                });
            }
            for alert in &changes.still_firing {
                let key = (index, alert.fingerprint.clone());
                let last = self.last_sent_ns.get(&key).copied();
                if last.is_none_or(|last| now_ns - last >= repeat_ns) {
                    self.last_sent_ns.insert(key, now_ns);
                    deliveries.push(Delivery {
                        hook: index,
                        payload: payload(alert, &hook.name, &hook.external_url),
                    });
                }
            }
            for alert in &changes.resolved {
                debug_assert_eq!(alert.status, AlertStatus::Resolved);
                self.last_sent_ns
                    .remove(&(index, alert.fingerprint.clone()));
                deliveries.push(Delivery {
                    hook: index,
                    payload: payload(alert, &hook.name, &hook.external_url),
                });
            }
        }
        deliveries
    }
}

/// Delivers one payload through one hook, with the hook's retries and time limits.
pub async fn deliver(hook: &HookConfig, payload: &WebhookPayload) -> Result<(), HookError> {
    let body = serde_json::to_vec(payload).map_err(|source| HookError::Encode {
        hook: hook.name.clone(),
        source,
    })?;
    match &hook.target {
        HookTarget::Webhook {
            url,
            secret,
            retries,
        } => {
            crate::alerting::hook_webhook::post(hook, url, secret.as_deref(), *retries, body).await
        }
        HookTarget::Exec { command, args } => {
            crate::alerting::hook_exec::run(hook, command, args, &body).await
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::*;
    use crate::alerting::alert::Alert;

    fn hook(name: &str, repeat_s: u64) -> HookConfig {
        HookConfig {
            name: name.into(),
            target: HookTarget::Exec {
                command: "/bin/true".into(),
                args: vec![],
            },
            timeout: Duration::from_secs(1),
            repeat_interval: Duration::from_secs(repeat_s),
            external_url: "http://x".into(),
        }
    }

    fn alert(status: AlertStatus) -> Alert {
        Alert {
            fingerprint: "f".into(),
            rule: "r".into(),
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            status,
            starts_ns: 0,
            ends_ns: None,
            clear_since_ns: None,
        }
    }

    #[test]
    fn repeats_only_after_each_hooks_interval() {
        const S: i64 = 1_000_000_000;
        let hooks = [hook("fast", 10), hook("slow", 100)];
        let mut schedule = HookSchedule::new();
        let new = AlertChanges {
            newly_firing: vec![alert(AlertStatus::Firing)],
            ..AlertChanges::default()
        };
        let still = AlertChanges {
            still_firing: vec![alert(AlertStatus::Firing)],
            ..AlertChanges::default()
        };
        let resolved = AlertChanges {
            resolved: vec![alert(AlertStatus::Resolved)],
            ..AlertChanges::default()
        };
        let hooks_of = |deliveries: Vec<Delivery>| -> Vec<usize> {
            deliveries.iter().map(|d| d.hook).collect()
        };
        assert_eq!(
            hooks_of(schedule.due(&hooks, &new, 0)),
            vec![0, 1],
            "new: both hooks"
        );
        assert_eq!(
            hooks_of(schedule.due(&hooks, &still, 5 * S)),
            Vec::<usize>::new(),
            "too soon for either"
        );
        assert_eq!(
            hooks_of(schedule.due(&hooks, &still, 10 * S)),
            vec![0],
            "fast repeats"
        );
        assert_eq!(
            hooks_of(schedule.due(&hooks, &still, 15 * S)),
            Vec::<usize>::new(),
            "no duplicate"
        );
        assert_eq!(
            hooks_of(schedule.due(&hooks, &still, 100 * S)),
            vec![0, 1],
            "slow repeats too"
        );
        let sent = schedule.due(&hooks, &resolved, 101 * S);
        assert_eq!(
            hooks_of(sent.clone()),
            vec![0, 1],
            "resolved goes to every hook"
        );
        assert_eq!(sent[0].payload.status, "resolved");
    }
}
