//! The headless demo's summary: every stored flow rebuilt by the flow reconstruction, the
//! anomalies it names (faults apart from facts), the lag and flow alerts, and for each
//! injected fault whether it was found.

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
    /// Flows with at least one fault (an anomaly where something went wrong).
    pub flows_with_faults: usize,
    /// Anomalies by kind, over all flows.
    pub anomalies: BTreeMap<String, usize>,
    /// Faults by anomaly kind, over all flows.
    pub fault_anomalies: BTreeMap<String, usize>,
    /// Facts (anomalies worth a badge, not a page) by kind, over all flows.
    pub fact_anomalies: BTreeMap<String, usize>,
    /// Lag alerts, firing or resolved.
    pub alerts: Vec<LagAlertSeen>,
    /// Flow alerts, firing or resolved.
    pub flow_alerts: Vec<FlowAlertSeen>,
    /// Each injected fault and whether it was found.
    pub faults: Vec<FaultVerdict>,
    /// Faults injected but not found.
    pub missing: Vec<InjectedFault>,
}

/// A flow alert as stored by the collector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlowAlertSeen {
    /// The rule that raised it.
    pub rule: String,
    /// Its rule's kind (`dead_letter`, `incomplete_after`, ...).
    pub kind: String,
    /// The consumer group it names, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The service it names, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// The topic it names, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// The stored status.
    pub status: String,
    /// What it counted.
    pub count: String,
    /// The first flows it names.
    pub flow_ids: Vec<String>,
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
    let mut fault_anomalies: BTreeMap<String, usize> = BTreeMap::new();
    let mut fact_anomalies: BTreeMap<String, usize> = BTreeMap::new();
    let mut flows_with_faults = 0;
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
                let class = if anomaly.is_fault() {
                    &mut fault_anomalies
                } else {
                    &mut fact_anomalies
                };
                *class.entry(kind.clone()).or_default() += 1;
                kinds.insert(kind);
            }
            if flow.anomalies.iter().any(|a| a.is_fault()) {
                flows_with_faults += 1;
            }
            if !kinds.is_empty() {
                findings.anomalies.insert(row.correlation_id, kinds);
            }
        }
    }
    let (flow_alerts, lag_alerts): (Vec<_>, Vec<_>) = store
        .alerts(MAX_ALERTS)
        .await
        .context("cannot read alerts")?
        .into_iter()
        .partition(|alert| alert.labels.contains_key(label::FLOW_KIND));
    let flow_alerts = flow_alerts
        .into_iter()
        .map(|alert| {
            let label = |key: &str| alert.labels.get(key).cloned();
            let note = |key: &str| alert.annotations.get(key).cloned().unwrap_or_default();
            FlowAlertSeen {
                kind: label(label::FLOW_KIND).unwrap_or_default(),
                group: label(label::CONSUMER_GROUP),
                service: label(label::SERVICE),
                topic: label(label::TOPIC),
                count: note(annotation::COUNT),
                flow_ids: note(annotation::FLOW_IDS)
                    .split(',')
                    .filter(|id| !id.is_empty())
                    .map(str::to_owned)
                    .collect(),
                rule: alert.rule,
                status: alert.status,
            }
        })
        .collect();
    findings.lag_alerts = lag_alerts
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
        flows_with_faults,
        anomalies,
        fault_anomalies,
        fact_anomalies,
        alerts: findings.lag_alerts,
        flow_alerts,
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
        "flows: {} ({} with faults, {} with anomalies)",
        summary.flows, summary.flows_with_faults, summary.flows_with_anomalies
    );
    let counts = |map: &BTreeMap<String, usize>| {
        map.iter()
            .map(|(kind, count)| format!("{kind} {count}"))
            .collect::<Vec<String>>()
            .join(", ")
    };
    let _ = writeln!(
        out,
        "faults seen: {}",
        or_none(&counts(&summary.fault_anomalies))
    );
    let _ = writeln!(
        out,
        "facts seen: {}",
        or_none(&counts(&summary.fact_anomalies))
    );
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
    let flow_alerts: Vec<String> = summary
        .flow_alerts
        .iter()
        .map(|a| {
            let subject = a.group.as_deref().or(a.service.as_deref()).unwrap_or("-");
            format!(
                "{} on {subject}/{} ({}; {} counted, first {})",
                a.rule,
                a.topic.as_deref().unwrap_or("-"),
                a.status,
                a.count,
                a.flow_ids.first().map_or("-", String::as_str)
            )
        })
        .collect();
    let _ = writeln!(out, "flow alerts: {}", or_none(&flow_alerts.join(", ")));
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
            flows_with_faults: 1,
            anomalies: BTreeMap::from([("compensation".to_owned(), 2)]),
            fault_anomalies: BTreeMap::from([("compensation".to_owned(), 2)]),
            fact_anomalies: BTreeMap::new(),
            alerts: Vec::new(),
            flow_alerts: vec![FlowAlertSeen {
                rule: "flow-dead-letter".into(),
                kind: "dead_letter".into(),
                group: Some("payment".into()),
                service: None,
                topic: Some("orders".into()),
                status: "firing".into(),
                count: "1".into(),
                flow_ids: vec!["ord-1003".into()],
            }],
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
        assert!(
            text.contains("flows: 100 (1 with faults, 1 with anomalies)\n"),
            "{text}"
        );
        assert!(text.contains("faults seen: compensation 2\n"), "{text}");
        assert!(text.contains("facts seen: none\n"), "{text}");
        assert!(
            text.contains(
                "flow alerts: flow-dead-letter on payment/orders (firing; 1 counted, first ord-1003)\n"
            ),
            "{text}"
        );
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
