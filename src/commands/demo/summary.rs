//! The headless demo's summary: every stored flow rebuilt by the flow reconstruction, the
//! anomalies it names, the lag alerts, and for each injected fault whether it was found.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use anyhow::Context;
use causeway_collector::alerting::alert::AlertStatus;
use causeway_conventions::alert::{annotation, label};
use causeway_demo::faults::InjectedFault;
use causeway_demo::shop::ShopReport;
use causeway_demo::verdict::{FaultVerdict, Findings, LagAlertSeen, judge};
use causeway_flow::sanitize::clean;
use causeway_flow::{FlowOptions, load_listed, load_topology, reconstruct};
use causeway_storage::{CorrelationQuery, Store};
use serde::Serialize;

/// Correlations read per page.
const PAGE: i64 = 500;
/// Most alerts read.
const MAX_ALERTS: i64 = 1_000;

/// The summary document (`--format json`).
#[derive(Debug, Serialize)]
pub struct Summary {
    /// Document schema name.
    pub schema: &'static str,
    /// `embedded` or `kafka`.
    pub transport: String,
    /// How long the shop ran, in milliseconds.
    pub duration_ms: u64,
    /// What the shop did.
    pub shop: ShopReport,
    /// Flows (correlation IDs) stored.
    pub flows: usize,
    /// Flows with at least one anomaly.
    pub flows_with_anomalies: usize,
    /// Anomalies by kind, over all flows.
    pub anomalies: BTreeMap<String, usize>,
    /// Lag alerts, firing or resolved.
    pub alerts: Vec<LagAlertSeen>,
    /// Each injected fault and whether it was found.
    pub faults: Vec<FaultVerdict>,
    /// Faults injected but not found.
    pub missing: Vec<InjectedFault>,
}

/// Rebuilds every stored flow and judges the injected faults.
pub async fn summarise(
    store: &Store,
    transport: &str,
    duration_ms: u64,
    shop: ShopReport,
) -> anyhow::Result<Summary> {
    let topology = load_topology(store).await.context("cannot read topology")?;
    let options = FlowOptions::default();
    let mut findings = Findings::default();
    let mut anomalies: BTreeMap<String, usize> = BTreeMap::new();
    let mut flows = 0;
    let mut query = CorrelationQuery {
        limit: PAGE,
        ..CorrelationQuery::default()
    };
    loop {
        let rows = store
            .recent_flows(&query)
            .await
            .context("cannot list flows")?;
        let Some(last) = rows.last() else { break };
        query.before = Some((last.first_start_ns, last.correlation_id.clone()));
        for row in rows {
            let Some(loaded) = load_listed(store, &row)
                .await
                .with_context(|| format!("cannot read flow {}", row.correlation_id))?
            else {
                continue;
            };
            flows += 1;
            let flow = reconstruct(&loaded.spans, &topology, &options);
            let mut kinds = BTreeSet::new();
            for anomaly in &flow.anomalies {
                let kind = serde_json::to_value(anomaly.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_else(|| format!("{:?}", anomaly.kind));
                *anomalies.entry(kind.clone()).or_default() += 1;
                kinds.insert(kind);
            }
            if !kinds.is_empty() {
                findings.anomalies.insert(row.correlation_id, kinds);
            }
        }
    }
    findings.lag_alerts = store
        .alerts(MAX_ALERTS)
        .await
        .context("cannot read alerts")?
        .into_iter()
        .map(|alert| LagAlertSeen {
            group: alert
                .labels
                .get(label::CONSUMER_GROUP)
                .cloned()
                .unwrap_or_default(),
            fired: alert.status == AlertStatus::Firing.name()
                || alert.status == AlertStatus::Resolved.name(),
            resolved: alert.status == AlertStatus::Resolved.name(),
            oldest_waiting: alert
                .annotations
                .get(annotation::WAITING_CORRELATION_ID)
                .cloned(),
            rule: alert.rule,
            status: alert.status,
        })
        .collect();
    let faults = judge(&shop.injected, &findings);
    let missing = faults
        .iter()
        .filter(|verdict| !verdict.found)
        .map(|verdict| verdict.fault.clone())
        .collect();
    Ok(Summary {
        schema: "causeway.demo.v1",
        transport: transport.to_owned(),
        duration_ms,
        shop,
        flows,
        flows_with_anomalies: findings.anomalies.len(),
        anomalies,
        alerts: findings.lag_alerts,
        faults,
        missing,
    })
}

/// The summary for people.
pub fn text(summary: &Summary) -> String {
    let mut out = String::new();
    let shop = &summary.shop;
    let _ = writeln!(
        out,
        "causeway demo: {:.1}s over the {} bus: {} orders, {} records published, {} processed, {} dead-lettered",
        summary.duration_ms as f64 / 1000.0,
        summary.transport,
        shop.orders,
        shop.published,
        shop.processed,
        shop.dead_lettered
    );
    let _ = writeln!(
        out,
        "flows: {} ({} with anomalies)",
        summary.flows, summary.flows_with_anomalies
    );
    let anomalies: Vec<String> = summary
        .anomalies
        .iter()
        .map(|(kind, count)| format!("{kind} {count}"))
        .collect();
    let _ = writeln!(out, "anomalies: {}", or_none(&anomalies.join(", ")));
    let alerts: Vec<String> = summary
        .alerts
        .iter()
        .map(|a| {
            // Each stored name cleaned on its own before it is joined to the others.
            let (rule, group, status) = (clean(&a.rule), clean(&a.group), clean(&a.status));
            match &a.oldest_waiting {
                Some(event) => format!(
                    "{rule} on {group} ({status}; oldest waiting event {})",
                    clean(event)
                ),
                None => format!("{rule} on {group} ({status})"),
            }
        })
        .collect();
    let _ = writeln!(out, "alerts: {}", or_none(&alerts.join(", ")));
    let _ = writeln!(out, "faults:");
    for verdict in &summary.faults {
        let target = verdict
            .fault
            .correlation_id
            .as_deref()
            .or(verdict.fault.group.as_deref())
            .unwrap_or("-");
        let resolved = match verdict.resolved {
            Some(true) => ", resolved",
            Some(false) if verdict.found => ", still firing",
            _ => "",
        };
        let _ = writeln!(
            out,
            "  {:<8} {:<20} {:<14} at {:>6.1}s  {}{}",
            if verdict.found { "found" } else { "MISSING" },
            verdict.fault.kind.as_str(),
            clean(target),
            verdict.fault.at_ms as f64 / 1000.0,
            clean(&verdict.evidence),
            resolved
        );
    }
    out
}

fn or_none(text: &str) -> &str {
    if text.is_empty() { "none" } else { text }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use causeway_demo::faults::FaultKind;

    #[test]
    fn text_marks_found_and_missing_faults() {
        let found = InjectedFault {
            kind: FaultKind::DeclinedPayment,
            correlation_id: Some("ord-1008".into()),
            group: None,
            at_ms: 1_600,
        };
        let missed = InjectedFault {
            kind: FaultKind::SlowConsumer,
            correlation_id: None,
            group: Some("shipping".into()),
            at_ms: 3_000,
        };
        let summary = Summary {
            schema: "causeway.demo.v1",
            transport: "embedded".into(),
            duration_ms: 20_900,
            shop: ShopReport {
                orders: 100,
                ..ShopReport::default()
            },
            flows: 100,
            flows_with_anomalies: 1,
            anomalies: BTreeMap::from([("compensation".to_owned(), 2)]),
            alerts: Vec::new(),
            faults: judge(
                &[found, missed.clone()],
                &Findings {
                    anomalies: BTreeMap::from([(
                        "ord-1008".to_owned(),
                        BTreeSet::from(["compensation".to_owned()]),
                    )]),
                    lag_alerts: Vec::new(),
                },
            ),
            missing: vec![missed],
        };
        let text = text(&summary);
        assert!(
            text.starts_with("causeway demo: 20.9s over the embedded bus: 100 orders"),
            "{text}"
        );
        assert!(text.contains("anomalies: compensation 2\n"), "{text}");
        assert!(text.contains("alerts: none\n"), "{text}");
        assert!(
            text.contains("found    declined-payment     ord-1008"),
            "{text}"
        );
        assert!(
            text.contains("MISSING  slow-consumer        shipping"),
            "{text}"
        );

        // Names from the store are cleaned one by one: an unfinished escape in the group
        // does not hide the event after it, and invisible characters show.
        let mut hostile = summary;
        hostile.alerts = vec![LagAlertSeen {
            rule: "group-lag-seconds".into(),
            group: "ship\u{1b}[31".into(),
            status: "firing".into(),
            fired: true,
            resolved: false,
            oldest_waiting: Some("ord-7\u{200b}".into()),
        }];
        let text = super::text(&hostile);
        assert!(!text.contains('\u{1b}'), "{text:?}");
        assert!(
            text.contains("oldest waiting event ord-7\u{fffd}"),
            "{text:?}"
        );
    }
}
