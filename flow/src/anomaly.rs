//! Anomaly detection over a reconstructed flow: errors, duplicate deliveries and
//! redeliveries, dead letters, compensations, out-of-order processing per key,
//! propagation breaks, schema changes, clock skew and missing groups.

use std::collections::{BTreeMap, BTreeSet};

use causeway_storage::{SpanRecord, StatusCode};

use super::hops::{Deliveries, int_attribute, text_attribute};
use super::model::{Anomaly, AnomalyKind, Edge, EdgeKind, Outcome, Step, StepIndex, StepRole};
use super::options::FlowOptions;
use causeway_conventions::attribute;

/// Every anomaly of the flow, sorted by kind, then steps.
pub(crate) fn detect(
    spans: &[&SpanRecord],
    steps: &[Step],
    edges: &[Edge],
    deliveries: &Deliveries,
    options: &FlowOptions,
) -> Vec<Anomaly> {
    let mut found = Vec::new();
    errors(steps, edges, &mut found);
    deliveries_twice(spans, steps, deliveries, &mut found);
    dead_letters(steps, deliveries, &mut found);
    compensations(deliveries, options, &mut found);
    out_of_order(steps, deliveries, &mut found);
    propagation_breaks(spans, steps, edges, &mut found);
    schema_changes(spans, steps, &mut found);
    clock_skew(deliveries, &mut found);
    missing(deliveries, &mut found);
    found.sort_by(|a, b| (a.kind, &a.steps, &a.detail).cmp(&(b.kind, &b.steps, &b.detail)));
    found.dedup();
    found
}

fn push(found: &mut Vec<Anomaly>, kind: AnomalyKind, detail: String, steps: Vec<StepIndex>) {
    found.push(Anomaly {
        kind,
        detail,
        steps,
    });
}

fn errors(steps: &[Step], edges: &[Edge], found: &mut Vec<Anomaly>) {
    for (index, step) in steps.iter().enumerate() {
        if step.status == StatusCode::Error && !is_batch_receive(steps, edges, index) {
            let detail = if step.status_message.is_empty() {
                format!("{} {} failed", step.service, step.name)
            } else {
                format!(
                    "{} {} failed: {}",
                    step.service, step.name, step.status_message
                )
            };
            push(found, AnomalyKind::Error, detail, vec![index]);
        }
    }
}

/// Whether `index` is a receive (poll) step whose messages have process steps of their
/// own: a failure on it is the application marking the whole poll, and the process steps
/// say which message failed. Shared by every flow of the batch, it is not this flow's.
pub(crate) fn is_batch_receive(steps: &[Step], edges: &[Edge], index: StepIndex) -> bool {
    steps[index].role == StepRole::Receive
        && edges
            .iter()
            .any(|e| e.from == index && steps[e.to].role == StepRole::Process)
}

/// Two successful attempts are a duplicate delivery; a repeated attempt that was not an
/// in-process retry (no failure before it, no retry count on it) is a redelivery.
fn deliveries_twice(
    spans: &[&SpanRecord],
    steps: &[Step],
    deliveries: &Deliveries,
    found: &mut Vec<Anomaly>,
) {
    for hop in &deliveries.hops {
        let event = &deliveries.events[hop.event];
        let succeeded: Vec<StepIndex> = hop
            .attempts
            .iter()
            .copied()
            .filter(|&i| steps[i].status != StatusCode::Error)
            .collect();
        if succeeded.len() > 1 {
            push(
                found,
                AnomalyKind::DuplicateDelivery,
                format!(
                    "group {} processed message {} {} times",
                    hop.consumer_group,
                    event.message_id,
                    succeeded.len()
                ),
                succeeded,
            );
        }
        for pair in hop.attempts.windows(2) {
            let previous_failed = steps[pair[0]].status == StatusCode::Error;
            let retried = int_attribute(spans[pair[1]], attribute::RETRY_COUNT).unwrap_or(0) > 0;
            if !previous_failed && !retried {
                push(
                    found,
                    AnomalyKind::Redelivery,
                    format!(
                        "group {} received message {} again",
                        hop.consumer_group, event.message_id
                    ),
                    pair.to_vec(),
                );
            }
        }
    }
}

fn dead_letters(steps: &[Step], deliveries: &Deliveries, found: &mut Vec<Anomaly>) {
    for hop in &deliveries.hops {
        let Some(forward) = hop.dead_letter else {
            continue;
        };
        let event = &deliveries.events[hop.event];
        let mut proof = hop.attempts.clone();
        proof.push(forward);
        push(
            found,
            AnomalyKind::DeadLetter,
            format!(
                "group {} dead-lettered message {} to {}",
                hop.consumer_group,
                event.message_id,
                steps[forward].topic.as_deref().unwrap_or("?")
            ),
            proof,
        );
    }
}

fn compensations(deliveries: &Deliveries, options: &FlowOptions, found: &mut Vec<Anomaly>) {
    for (index, event) in deliveries.events.iter().enumerate() {
        let Some(event_type) = &event.event_type else {
            continue;
        };
        // A dead-letter copy keeps its event type but is no second undo step.
        let dead_letter_copy = event
            .topic
            .as_deref()
            .is_some_and(|topic| options.is_dead_letter_topic(topic));
        if !options.is_compensation(event_type) || dead_letter_copy {
            continue;
        }
        let mut proof: Vec<StepIndex> = event.send.into_iter().collect();
        for hop in deliveries.hops.iter().filter(|h| h.event == index) {
            proof.extend(&hop.attempts);
        }
        proof.sort_unstable();
        push(
            found,
            AnomalyKind::Compensation,
            format!("compensation {event_type} (message {})", event.message_id),
            proof,
        );
    }
}

/// Per group, topic and key: events published in one order but processed in another.
fn out_of_order(steps: &[Step], deliveries: &Deliveries, found: &mut Vec<Anomaly>) {
    // (group, topic, key) → (publish position, first processing start, step) per event.
    type Lane<'a> = (&'a str, &'a str, &'a str);
    let mut lanes: BTreeMap<Lane, Vec<(i64, i64, StepIndex)>> = BTreeMap::new();
    for hop in &deliveries.hops {
        let event = &deliveries.events[hop.event];
        let (Some(topic), Some(key), Some(&first)) =
            (&event.topic, &event.message_key, hop.attempts.first())
        else {
            continue;
        };
        // Publish order: the offset within the partition when known, else publish time.
        let published = event.offset.unwrap_or(event.published_ns);
        lanes
            .entry((hop.consumer_group.as_str(), topic.as_str(), key.as_str()))
            .or_default()
            .push((published, steps[first].start_ns, first));
    }
    for ((group, topic, key), mut lane) in lanes {
        lane.sort_unstable();
        for pair in lane.windows(2) {
            let (earlier, later) = (pair[0], pair[1]);
            if later.1 < earlier.1 {
                push(
                    found,
                    AnomalyKind::OutOfOrder,
                    format!("group {group} processed key {key} on {topic} out of publish order"),
                    vec![earlier.2, later.2],
                );
            }
        }
    }
}

fn propagation_breaks(
    spans: &[&SpanRecord],
    steps: &[Step],
    edges: &[Edge],
    found: &mut Vec<Anomaly>,
) {
    let traced: BTreeSet<StepIndex> = edges
        .iter()
        .filter(|e| e.kind != EdgeKind::Message)
        .map(|e| e.to)
        .collect();
    // A consumption tied to its send by message id only, and the break the consumer
    // recorded for it, are one break: reported once, with the send as proof and the
    // recorded reason in the detail.
    let mut reported = BTreeSet::new();
    for edge in edges.iter().filter(|e| e.kind == EdgeKind::Message) {
        if !traced.contains(&edge.to) {
            let reason = text_attribute(spans[edge.to], attribute::PROPAGATION_BREAK)
                .map(|reason| format!(" ({reason})"))
                .unwrap_or_default();
            push(
                found,
                AnomalyKind::PropagationBreak,
                format!(
                    "{} consumed message {} without its trace context{reason}",
                    steps[edge.to].service,
                    steps[edge.to].message_id.as_deref().unwrap_or("?")
                ),
                vec![edge.from, edge.to],
            );
            reported.insert(edge.to);
        }
    }
    for (index, step) in steps.iter().enumerate() {
        if let Some(reason) = text_attribute(spans[index], attribute::PROPAGATION_BREAK)
            && !reported.contains(&index)
        {
            push(
                found,
                AnomalyKind::PropagationBreak,
                format!("{} lost trace context: {reason}", step.service),
                vec![index],
            );
        }
        if step.role == StepRole::Send && step.correlation_id.is_none() {
            let mut seen = BTreeSet::new();
            let mut cursor = step.parent;
            while let Some(parent) = cursor {
                if !seen.insert(parent) {
                    break;
                }
                if steps[parent].correlation_id.is_some() {
                    push(
                        found,
                        AnomalyKind::PropagationBreak,
                        format!("{} re-published without the correlation id", step.service),
                        vec![parent, index],
                    );
                    break;
                }
                cursor = steps[parent].parent;
            }
        }
    }
}

/// `order.placed.v2` → (`order.placed`, `v2`); types without a version suffix have none.
pub(crate) fn split_version(event_type: &str) -> (&str, Option<&str>) {
    match event_type.rsplit_once('.') {
        Some((base, version))
            if version.len() > 1
                && version.starts_with(['v', 'V'])
                && version[1..].chars().all(|c| c.is_ascii_digit()) =>
        {
            (base, Some(version))
        }
        _ => (event_type, None),
    }
}

fn schema_changes(spans: &[&SpanRecord], steps: &[Step], found: &mut Vec<Anomaly>) {
    let mut versions: BTreeMap<&str, BTreeMap<String, StepIndex>> = BTreeMap::new();
    let mut schemas: BTreeMap<&str, BTreeMap<String, StepIndex>> = BTreeMap::new();
    for (index, step) in steps.iter().enumerate() {
        if step.role != StepRole::Send {
            continue;
        }
        let Some(event_type) = &step.event_type else {
            continue;
        };
        let (base, version) = split_version(event_type);
        if let Some(version) = version {
            versions
                .entry(base)
                .or_default()
                .entry(version.to_owned())
                .or_insert(index);
        }
        if let Some(schema) = text_attribute(spans[index], attribute::CLOUDEVENTS_EVENT_DATASCHEMA)
        {
            schemas
                .entry(base)
                .or_default()
                .entry(schema)
                .or_insert(index);
        }
    }
    for (what, table) in [("version", versions), ("dataschema", schemas)] {
        for (base, seen) in table {
            if seen.len() > 1 {
                let mut proof: Vec<StepIndex> = seen.values().copied().collect();
                proof.sort_unstable();
                let names: Vec<&str> = seen.keys().map(String::as_str).collect();
                push(
                    found,
                    AnomalyKind::SchemaChange,
                    format!("{base} changed {what} along the flow: {}", names.join(", ")),
                    proof,
                );
            }
        }
    }
}

fn clock_skew(deliveries: &Deliveries, found: &mut Vec<Anomaly>) {
    for hop in deliveries.hops.iter().filter(|h| h.clock_skew) {
        let event = &deliveries.events[hop.event];
        let mut proof: Vec<StepIndex> = event.send.into_iter().collect();
        proof.extend(hop.attempts.first());
        push(
            found,
            AnomalyKind::ClockSkew,
            format!(
                "group {} started message {} {} µs before it was sent",
                hop.consumer_group,
                event.message_id,
                -hop.queue_wait_ns.unwrap_or(0) / 1_000
            ),
            proof,
        );
    }
}

fn missing(deliveries: &Deliveries, found: &mut Vec<Anomaly>) {
    for verdict in &deliveries.verdicts {
        if verdict.outcome != Outcome::NotSeenYet {
            continue;
        }
        let event = &deliveries.events[verdict.event];
        push(
            found,
            AnomalyKind::Missing,
            format!(
                "group {} has not processed message {} on {}",
                verdict.consumer_group,
                event.message_id,
                event.topic.as_deref().unwrap_or("?")
            ),
            event.send.into_iter().collect(),
        );
    }
}
