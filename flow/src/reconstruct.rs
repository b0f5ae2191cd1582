//! Flow reconstruction: from the spans of one flow (across any number of traces) to steps,
//! edges, events, hops, verdicts, anomalies and the critical path.
//!
//! Pure: no terminal, database or network code. The same spans in any order give the
//! same [`Flow`]; cycles through links, missing parents and skewed clocks are tolerated.

use std::collections::{BTreeSet, HashMap};

use causeway_storage::{SpanId, SpanKind, SpanRecord, StatusCode, TraceId};

use crate::model::{Edge, EdgeKind, Flow, FlowStatus, Outcome, Step, StepIndex, StepRole, Verdict};
use crate::options::{FlowOptions, Topology};
use crate::{anomaly, critical_path, graph, hops};

/// Rebuilds the flow that `spans` describe.
///
/// `spans` may come in any order, repeat a span, or miss parents; `topology` says which
/// consumer groups are expected on each topic, so that an event a group never processed
/// shows as not seen yet.
pub fn reconstruct(spans: &[SpanRecord], topology: &Topology, options: &FlowOptions) -> Flow {
    let ordered = canonical_order(spans);
    let steps = build_steps(&ordered, &options.correlation_keys);
    let by_id: HashMap<(TraceId, SpanId), StepIndex> = steps
        .iter()
        .enumerate()
        .map(|(index, step)| ((step.trace_id, step.span_id), index))
        .collect();
    let mut steps = steps;
    let mut edges = BTreeSet::new();
    for (index, span) in ordered.iter().enumerate() {
        if let Some(parent) = span.parent_span_id {
            match by_id.get(&(span.trace_id, parent)) {
                Some(&from) if from != index => {
                    steps[index].parent = Some(from);
                    edges.insert(Edge {
                        from,
                        to: index,
                        kind: EdgeKind::Parent,
                    });
                }
                Some(_) => {}
                None => steps[index].missing_parent = true,
            }
        }
        for link in &span.links {
            if let Some(&from) = by_id.get(&(link.trace_id, link.span_id))
                && from != index
            {
                edges.insert(Edge {
                    from,
                    to: index,
                    kind: EdgeKind::Link,
                });
            }
        }
    }
    let deliveries = hops::build(&ordered, &steps, &mut edges, topology, options);
    // A link to one's own parent (a process span that is the producer's child and links to
    // it too) is one edge, not two.
    let parents: BTreeSet<(StepIndex, StepIndex)> = edges
        .iter()
        .filter(|e| e.kind == EdgeKind::Parent)
        .map(|e| (e.from, e.to))
        .collect();
    let edges: Vec<Edge> = edges
        .into_iter()
        .filter(|e| e.kind != EdgeKind::Link || !parents.contains(&(e.from, e.to)))
        .collect();
    let anomalies = anomaly::detect(&ordered, &steps, &edges, &deliveries, options);
    let critical_path = critical_path::find(&steps, &edges, &deliveries.events, &deliveries.hops);
    let graph = graph::build(&steps, &deliveries);
    let status = flow_status(&steps, &edges, &deliveries.verdicts);
    let start_ns = steps.iter().map(|s| s.start_ns).min().unwrap_or(0);
    let end_ns = steps.iter().map(|s| s.end_ns).max().unwrap_or(0);
    let correlation_ids = sorted_unique(steps.iter().filter_map(|s| s.correlation_id.clone()));
    let root_trace_id = if correlation_ids.is_empty() {
        steps.first().map(|s| s.trace_id)
    } else {
        None
    };
    Flow {
        correlation_ids,
        root_trace_id,
        trace_ids: sorted_unique(steps.iter().map(|s| s.trace_id)),
        start_ns,
        end_ns,
        duration_ns: (end_ns - start_ns).max(0),
        status,
        services: sorted_unique(steps.iter().map(|s| s.service.clone())),
        steps,
        edges,
        events: deliveries.events,
        hops: deliveries.hops,
        verdicts: deliveries.verdicts,
        anomalies,
        critical_path,
        graph,
    }
}

/// One copy of each span, ordered by start time, then trace id and span id.
fn canonical_order(spans: &[SpanRecord]) -> Vec<&SpanRecord> {
    let mut ordered: Vec<&SpanRecord> = spans.iter().collect();
    // A repeated span keeps a deterministic copy: the one that sorts first on its content.
    ordered.sort_by(|a, b| {
        (
            a.trace_id,
            a.span_id,
            a.end_ns,
            a.start_ns,
            &a.name,
            &a.service_name,
        )
            .cmp(&(
                b.trace_id,
                b.span_id,
                b.end_ns,
                b.start_ns,
                &b.name,
                &b.service_name,
            ))
            .then_with(|| a.status_code.code().cmp(&b.status_code.code()))
    });
    ordered.dedup_by(|later, earlier| {
        later.trace_id == earlier.trace_id && later.span_id == earlier.span_id
    });
    ordered.sort_by_key(|span| (span.start_ns, span.trace_id, span.span_id));
    ordered
}

fn build_steps(spans: &[&SpanRecord], correlation_keys: &[String]) -> Vec<Step> {
    spans
        .iter()
        .map(|span| {
            let messaging = &span.messaging;
            Step {
                trace_id: span.trace_id,
                span_id: span.span_id,
                parent: None,
                missing_parent: false,
                service: span.service_name.clone(),
                name: span.name.clone(),
                kind: span.kind,
                role: role_of(span),
                start_ns: span.start_ns,
                end_ns: span.end_ns,
                duration_ns: span.duration_ns(),
                status: span.status_code,
                status_message: span.status_message.clone(),
                correlation_id: messaging
                    .correlation_id
                    .clone()
                    .or_else(|| correlation_from(span, correlation_keys)),
                message_id: messaging.message_id.clone(),
                event_type: messaging.event_type.clone(),
                topic: messaging.destination.clone(),
                consumer_group: messaging.consumer_group.clone(),
                message_key: messaging.message_key.clone(),
                partition: messaging.partition,
                offset: messaging.offset,
            }
        })
        .collect()
}

/// The first of `keys` a span carries as text (or the first text of an array, as captured
/// headers are).
fn correlation_from(span: &SpanRecord, keys: &[String]) -> Option<String> {
    keys.iter().find_map(|key| {
        let text = |value: &serde_json::Value| {
            value
                .as_str()
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
        };
        match span.attributes.get(key)? {
            serde_json::Value::Array(items) => items.iter().find_map(text),
            other => text(other),
        }
    })
}

/// Sends are PRODUCER spans or `create`/`send` operations; processes are CONSUMER spans or
/// `receive`/`process` operations; the operation type wins when both are given.
fn role_of(span: &SpanRecord) -> StepRole {
    match span.messaging.operation_type.as_deref() {
        Some("create" | "send" | "publish") => StepRole::Send,
        Some("receive" | "poll") => StepRole::Receive,
        Some("process" | "deliver") => StepRole::Process,
        Some("settle") => StepRole::Settle,
        _ => match span.kind {
            SpanKind::Producer => StepRole::Send,
            SpanKind::Consumer => StepRole::Process,
            _ => StepRole::Work,
        },
    }
}

fn flow_status(steps: &[Step], edges: &[Edge], verdicts: &[Verdict]) -> FlowStatus {
    let failed = (0..steps.len()).any(|index| {
        steps[index].status == StatusCode::Error && !anomaly::is_batch_receive(steps, edges, index)
    }) || verdicts
        .iter()
        .any(|v| matches!(v.outcome, Outcome::Failed | Outcome::DeadLettered));
    if failed {
        FlowStatus::Error
    } else if verdicts.iter().any(|v| v.outcome == Outcome::NotSeenYet) {
        FlowStatus::Incomplete
    } else {
        FlowStatus::Ok
    }
}

fn sorted_unique<T: Ord>(items: impl Iterator<Item = T>) -> Vec<T> {
    items.collect::<BTreeSet<T>>().into_iter().collect()
}
