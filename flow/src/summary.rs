//! One line per flow for lists (`causeway flows`, the dashboard's flow list), and the
//! filters those lists apply.

use std::collections::BTreeMap;

use causeway_storage::SpanRecord;
use serde::Serialize;
use serde_json::Value;

use super::model::{AnomalyKind, Flow, FlowStatus};
use super::options::glob_match;

/// A flow reduced to what a list shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlowSummary {
    /// The ID the flow was listed under: its correlation ID, or, for a flow that carries
    /// none, the trace ID of its first span (`root` is then set).
    pub correlation_id: String,
    /// Whether the flow carries no correlation ID and is named by its first trace.
    pub root: bool,
    /// Earliest span start, in nanoseconds since the Unix epoch.
    pub start_ns: i64,
    /// Duration from the first start to the last end.
    pub duration_ns: i64,
    /// Services that took part, sorted.
    pub services: Vec<String>,
    /// Number of events (messages).
    pub event_count: usize,
    /// Number of spans.
    pub span_count: usize,
    /// Overall status.
    pub status: FlowStatus,
    /// Anomalies by kind (kinds with none are left out).
    pub anomalies: BTreeMap<AnomalyKind, usize>,
    /// The anomalies that are faults, by kind (kinds with none are left out).
    pub faults: BTreeMap<AnomalyKind, usize>,
    /// The anomalies that are facts, by kind (kinds with none are left out).
    pub facts: BTreeMap<AnomalyKind, usize>,
}

impl FlowSummary {
    /// Summarises `flow`, listed under `correlation_id`.
    pub fn of(correlation_id: &str, flow: &Flow) -> FlowSummary {
        let mut anomalies = BTreeMap::new();
        let (mut faults, mut facts) = (BTreeMap::new(), BTreeMap::new());
        for anomaly in &flow.anomalies {
            *anomalies.entry(anomaly.kind).or_insert(0) += 1;
            let class = if anomaly.is_fault() {
                &mut faults
            } else {
                &mut facts
            };
            *class.entry(anomaly.kind).or_insert(0) += 1;
        }
        FlowSummary {
            correlation_id: correlation_id.to_owned(),
            root: flow.correlation_ids.is_empty(),
            start_ns: flow.start_ns,
            duration_ns: flow.duration_ns,
            services: flow.services.clone(),
            event_count: flow.events.len(),
            span_count: flow.steps.len(),
            status: flow.status,
            anomalies,
            faults,
            facts,
        }
    }

    /// Total number of anomalies.
    pub fn anomaly_count(&self) -> usize {
        self.anomalies.values().sum()
    }

    /// Number of anomalies that are faults.
    pub fn fault_count(&self) -> usize {
        self.faults.values().sum()
    }
}

/// Which flows a list keeps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlowFilter {
    /// Keep flows in which this service took part.
    pub service: Option<String>,
    /// Keep flows with an event whose type matches this pattern (`*` wildcards).
    pub event_type: Option<String>,
    /// Keep only flows with an error (a failed span, a failed or dead-lettered event).
    pub errors_only: bool,
    /// Keep only flows with at least one fault (an anomaly classed as a fault).
    pub faults_only: bool,
    /// Keep flows with a span carrying each of these attribute values (span or resource
    /// attributes; non-string values compare by their JSON text).
    pub attributes: Vec<(String, String)>,
}

impl FlowFilter {
    /// Whether the flow rebuilt from `spans` passes the filter.
    pub fn matches(&self, flow: &Flow, spans: &[SpanRecord]) -> bool {
        if self
            .service
            .as_ref()
            .is_some_and(|service| !flow.services.contains(service))
        {
            return false;
        }
        if let Some(pattern) = &self.event_type {
            let found = flow
                .events
                .iter()
                .filter_map(|e| e.event_type.as_deref())
                .any(|t| glob_match(pattern, t));
            if !found {
                return false;
            }
        }
        if self.errors_only && flow.status != FlowStatus::Error {
            return false;
        }
        if self.faults_only && !flow.anomalies.iter().any(|a| a.is_fault()) {
            return false;
        }
        self.attributes.iter().all(|(key, value)| {
            spans.iter().any(|span| {
                [&span.attributes, &span.resource]
                    .into_iter()
                    .any(|map| map.get(key).is_some_and(|v| value_equals(v, value)))
            })
        })
    }
}

fn value_equals(stored: &Value, wanted: &str) -> bool {
    match stored {
        Value::String(text) => text == wanted,
        other => serde_json::from_str::<Value>(wanted).is_ok_and(|parsed| parsed == *other),
    }
}

/// Parses a `key=value` filter term.
pub fn parse_attribute_filter(term: &str) -> Option<(String, String)> {
    let (key, value) = term.split_once('=')?;
    let key = key.trim();
    (!key.is_empty()).then(|| (key.to_owned(), value.to_owned()))
}
