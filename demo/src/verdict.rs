//! Was each injected fault found? Pure matching of the faults the shop injected against
//! what causeway reported: flow anomalies per correlation ID, and lag alerts per group.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::faults::{FaultKind, InjectedFault};

/// The flow anomaly (as `causeway flow --format json` names it) that proves a fault,
/// or `None` for faults that lag rules find.
pub fn expected_anomaly(kind: FaultKind) -> Option<&'static str> {
    match kind {
        FaultKind::DeclinedPayment => Some("compensation"),
        FaultKind::PoisonMessage => Some("dead_letter"),
        FaultKind::DuplicateDelivery => Some("duplicate_delivery"),
        FaultKind::DroppedTraceparent => Some("propagation_break"),
        FaultKind::SchemaBump => Some("schema_change"),
        FaultKind::SlowConsumer => None,
    }
}

/// A lag alert as stored by the collector, reduced to what matching needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LagAlertSeen {
    /// The rule that fired.
    pub rule: String,
    /// The consumer group it names.
    pub group: String,
    /// The stored status (`pending`, `firing`, `resolved`), for display.
    pub status: String,
    /// Whether the alert fired (it is firing, or fired and resolved).
    pub fired: bool,
    /// Whether it has resolved since.
    pub resolved: bool,
    /// The correlation ID of the oldest event waiting when it fired, if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oldest_waiting: Option<String>,
}

/// What causeway found in the stored data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Findings {
    /// Anomaly kinds (snake_case) found in each correlation's flow.
    pub anomalies: BTreeMap<String, BTreeSet<String>>,
    /// Lag alerts, firing or resolved.
    pub lag_alerts: Vec<LagAlertSeen>,
}

/// One injected fault and whether causeway found it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FaultVerdict {
    /// The fault as injected.
    #[serde(flatten)]
    pub fault: InjectedFault,
    /// Whether the evidence was found.
    pub found: bool,
    /// What was looked for and where.
    pub evidence: String,
    /// For a slow consumer: whether its alert also resolved after the recovery.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved: Option<bool>,
}

/// Matches every injected fault against the findings.
pub fn judge(injected: &[InjectedFault], findings: &Findings) -> Vec<FaultVerdict> {
    injected
        .iter()
        .map(|fault| match expected_anomaly(fault.kind) {
            Some(anomaly) => {
                let correlation = fault.correlation_id.as_deref().unwrap_or("?");
                let found = findings
                    .anomalies
                    .get(correlation)
                    .is_some_and(|kinds| kinds.contains(anomaly));
                FaultVerdict {
                    fault: fault.clone(),
                    found,
                    evidence: format!("{anomaly} anomaly in flow {correlation}"),
                    resolved: None,
                }
            }
            None => {
                let group = fault.group.as_deref().unwrap_or("?");
                let alerts: Vec<&LagAlertSeen> = findings
                    .lag_alerts
                    .iter()
                    .filter(|alert| alert.group == group && alert.fired)
                    .collect();
                FaultVerdict {
                    fault: fault.clone(),
                    found: !alerts.is_empty(),
                    evidence: format!("lag alert on consumer group {group}"),
                    resolved: Some(!alerts.is_empty() && alerts.iter().all(|a| a.resolved)),
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(kind: FaultKind, correlation: Option<&str>, group: Option<&str>) -> InjectedFault {
        InjectedFault {
            kind,
            correlation_id: correlation.map(str::to_owned),
            group: group.map(str::to_owned),
            at_ms: 0,
        }
    }

    #[test]
    fn faults_are_found_only_with_their_own_evidence() {
        let mut findings = Findings::default();
        findings.anomalies.insert(
            "ord-1".into(),
            ["compensation".to_owned()].into_iter().collect(),
        );
        findings.anomalies.insert(
            "ord-2".into(),
            ["error".to_owned(), "dead_letter".to_owned()]
                .into_iter()
                .collect(),
        );
        findings.lag_alerts.push(LagAlertSeen {
            rule: "lag".into(),
            group: "notification".into(),
            status: "resolved".into(),
            fired: true,
            resolved: true,
            oldest_waiting: Some("ord-7".into()),
        });
        findings.lag_alerts.push(LagAlertSeen {
            rule: "lag".into(),
            group: "payment".into(),
            status: "pending".into(),
            fired: false,
            resolved: false,
            oldest_waiting: None,
        });
        // (fault, found, resolved, why)
        let cases = [
            (
                fault(FaultKind::DeclinedPayment, Some("ord-1"), None),
                true,
                None,
                "compensation in its flow",
            ),
            (
                fault(FaultKind::DeclinedPayment, Some("ord-2"), None),
                false,
                None,
                "another flow's evidence does not count",
            ),
            (
                fault(FaultKind::PoisonMessage, Some("ord-2"), None),
                true,
                None,
                "dead letter beside an error",
            ),
            (
                fault(FaultKind::SchemaBump, Some("ord-9"), None),
                false,
                None,
                "a flow never stored",
            ),
            (
                fault(FaultKind::SlowConsumer, None, Some("notification")),
                true,
                Some(true),
                "alert fired and resolved",
            ),
            (
                fault(FaultKind::SlowConsumer, None, Some("shipping")),
                false,
                Some(false),
                "no alert for that group",
            ),
        ];
        for (injected, found, resolved, why) in cases {
            let verdict = &judge(std::slice::from_ref(&injected), &findings)[0];
            assert_eq!(
                (verdict.found, verdict.resolved),
                (found, resolved),
                "{why}"
            );
        }
    }

    #[test]
    fn every_flow_fault_names_an_anomaly_and_lag_faults_none() {
        for kind in FaultKind::ALL {
            assert_eq!(
                expected_anomaly(kind).is_none(),
                kind == FaultKind::SlowConsumer,
                "{kind:?}"
            );
        }
    }
}
