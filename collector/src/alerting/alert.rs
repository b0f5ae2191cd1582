//! Alert lifecycle as pure state: conditions in, alerts moving through pending, firing and
//! resolved out, with a stable fingerprint from labels and hysteresis so a flapping group
//! does not page twice.

use std::collections::{BTreeMap, HashMap};

use causeway_storage::AlertRow;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// Where an alert is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    /// The condition holds but not yet for the rule's `for` time.
    Pending,
    /// The condition has held long enough; hooks are told.
    Firing,
    /// The condition has been clear for the rule's `resolve_after` time.
    Resolved,
}

impl AlertStatus {
    /// The lowercase name stored and sent.
    pub fn name(self) -> &'static str {
        match self {
            AlertStatus::Pending => "pending",
            AlertStatus::Firing => "firing",
            AlertStatus::Resolved => "resolved",
        }
    }
}

/// One rule's verdict on one subject (a consumer group) in one evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    /// The rule that judged.
    pub rule: String,
    /// Identifying labels; the fingerprint is derived from them.
    pub labels: BTreeMap<String, String>,
    /// Descriptive annotations, refreshed every evaluation.
    pub annotations: BTreeMap<String, String>,
    /// Whether the condition holds now.
    pub active: bool,
    /// How long it must hold before firing, in nanoseconds.
    pub for_ns: i64,
    /// How long it must be clear before resolving, in nanoseconds.
    pub resolve_after_ns: i64,
}

/// An alert the tracker knows about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Alert {
    /// Stable identity from the labels.
    pub fingerprint: String,
    /// The rule that raised it.
    pub rule: String,
    /// Identifying labels.
    pub labels: BTreeMap<String, String>,
    /// Descriptive annotations.
    pub annotations: BTreeMap<String, String>,
    /// Where it is in its life.
    pub status: AlertStatus,
    /// When the condition began, in nanoseconds since the Unix epoch.
    pub starts_ns: i64,
    /// When it resolved.
    pub ends_ns: Option<i64>,
    /// Since when the condition has been clear while firing (hysteresis).
    pub clear_since_ns: Option<i64>,
}

impl Alert {
    /// An alert read back from its stored row; `None` for a status this build does not
    /// know.
    pub fn from_row(row: &AlertRow) -> Option<Alert> {
        let status = [
            AlertStatus::Pending,
            AlertStatus::Firing,
            AlertStatus::Resolved,
        ]
        .into_iter()
        .find(|status| status.name() == row.status)?;
        Some(Alert {
            fingerprint: row.fingerprint.clone(),
            rule: row.rule.clone(),
            labels: row.labels.clone(),
            annotations: row.annotations.clone(),
            status,
            starts_ns: row.starts_ns,
            ends_ns: row.ends_ns,
            clear_since_ns: None,
        })
    }

    /// The stored form of this alert, updated at `now_ns`.
    pub fn to_row(&self, now_ns: i64, notified_ns: Option<i64>) -> AlertRow {
        AlertRow {
            fingerprint: self.fingerprint.clone(),
            starts_ns: self.starts_ns,
            rule: self.rule.clone(),
            status: self.status.name().to_owned(),
            labels: self.labels.clone(),
            annotations: self.annotations.clone(),
            ends_ns: self.ends_ns,
            updated_ns: now_ns,
            notified_ns,
        }
    }
}

/// What changed in one evaluation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertChanges {
    /// Alerts that started firing now.
    pub newly_firing: Vec<Alert>,
    /// Alerts still firing (not new), candidates for a repeat notification.
    pub still_firing: Vec<Alert>,
    /// Alerts that resolved now (they had fired).
    pub resolved: Vec<Alert>,
    /// Every alert whose stored row should be written (new, changed or ended).
    pub to_store: Vec<Alert>,
}

/// Keeps the alerts between evaluations.
#[derive(Debug, Clone, Default)]
pub struct AlertTracker {
    alerts: HashMap<String, Alert>,
}

/// A stable fingerprint of a label set: the first 16 hex digits of the SHA-256 of the
/// sorted `name=value` lines.
pub fn fingerprint(labels: &BTreeMap<String, String>) -> String {
    let mut hasher = Sha256::new();
    for (name, value) in labels {
        hasher.update(name.as_bytes());
        hasher.update([0xff]);
        hasher.update(value.as_bytes());
        hasher.update([0xfe]);
    }
    hex::encode(&hasher.finalize()[..8])
}

impl AlertTracker {
    /// An empty tracker.
    pub fn new() -> Self {
        AlertTracker::default()
    }

    /// Alerts currently pending or firing.
    pub fn active(&self) -> impl Iterator<Item = &Alert> {
        self.alerts.values()
    }

    /// Takes back a pending or firing alert read from the store (after a restart), so
    /// that it goes on in its episode instead of starting a new one.
    pub fn restore(&mut self, alert: Alert) {
        if alert.status != AlertStatus::Resolved {
            self.alerts.insert(alert.fingerprint.clone(), alert);
        }
    }

    /// Applies one evaluation's conditions at `now_ns`. A subject missing from
    /// `conditions` counts as clear.
    pub fn update(&mut self, conditions: &[Condition], now_ns: i64) -> AlertChanges {
        let mut changes = AlertChanges::default();
        let mut seen: HashMap<String, &Condition> = HashMap::new();
        for condition in conditions {
            seen.insert(fingerprint(&condition.labels), condition);
        }
        for (print, condition) in &seen {
            let existing = self.alerts.get_mut(print);
            match (existing, condition.active) {
                (None, false) => {}
                (None, true) => {
                    let mut alert = Alert {
                        fingerprint: print.clone(),
                        rule: condition.rule.clone(),
                        labels: condition.labels.clone(),
                        annotations: condition.annotations.clone(),
                        status: AlertStatus::Pending,
                        starts_ns: now_ns,
                        ends_ns: None,
                        clear_since_ns: None,
                    };
                    if condition.for_ns <= 0 {
                        alert.status = AlertStatus::Firing;
                        changes.newly_firing.push(alert.clone());
                    }
                    changes.to_store.push(alert.clone());
                    self.alerts.insert(print.clone(), alert);
                }
                (Some(alert), true) => {
                    alert.annotations = condition.annotations.clone();
                    alert.clear_since_ns = None;
                    match alert.status {
                        AlertStatus::Pending if now_ns - alert.starts_ns >= condition.for_ns => {
                            alert.status = AlertStatus::Firing;
                            changes.newly_firing.push(alert.clone());
                        }
                        AlertStatus::Firing => changes.still_firing.push(alert.clone()),
                        _ => {}
                    }
                    changes.to_store.push(alert.clone());
                }
                (Some(alert), false) => {
                    if let Some(ended) =
                        clear(alert, condition.resolve_after_ns, now_ns, &mut changes)
                    {
                        self.alerts.remove(&ended);
                    }
                }
            }
        }
        let vanished: Vec<String> = self
            .alerts
            .keys()
            .filter(|print| !seen.contains_key(*print))
            .cloned()
            .collect();
        for print in vanished {
            if let Some(alert) = self.alerts.get_mut(&print) {
                // No condition at all: the subject is gone; resolve without waiting.
                if clear(alert, 0, now_ns, &mut changes).is_some() {
                    self.alerts.remove(&print);
                }
            }
        }
        changes
    }
}

/// Handles a clear condition for a known alert; returns its fingerprint when it ended.
fn clear(
    alert: &mut Alert,
    resolve_after_ns: i64,
    now_ns: i64,
    changes: &mut AlertChanges,
) -> Option<String> {
    match alert.status {
        AlertStatus::Pending => {
            // Never fired: end quietly, no hook hears about it.
            alert.status = AlertStatus::Resolved;
            alert.ends_ns = Some(now_ns);
            changes.to_store.push(alert.clone());
            Some(alert.fingerprint.clone())
        }
        AlertStatus::Firing => {
            let since = *alert.clear_since_ns.get_or_insert(now_ns);
            if now_ns - since >= resolve_after_ns {
                alert.status = AlertStatus::Resolved;
                alert.ends_ns = Some(now_ns);
                changes.resolved.push(alert.clone());
                changes.to_store.push(alert.clone());
                Some(alert.fingerprint.clone())
            } else {
                changes.still_firing.push(alert.clone());
                None
            }
        }
        AlertStatus::Resolved => Some(alert.fingerprint.clone()),
    }
}

#[cfg(test)]
#[path = "alert_tests.rs"]
mod tests;
