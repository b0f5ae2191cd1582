//! Anomaly detection over a reconstructed flow: errors, duplicate deliveries and
//! redeliveries, dead letters, compensations, out-of-order processing per key,
//! propagation breaks, schema changes, clock skew and missing groups; and each one's class:
//! a fault (something went wrong for this flow) or a fact (worth knowing, not a page).

use std::collections::{BTreeMap, BTreeSet};

use causeway_storage::{SpanRecord, StatusCode};

use super::hops::{Deliveries, int_attribute, text_attribute};
use super::model::{
    Anomaly, AnomalyClass, AnomalyKind, Edge, EdgeKind, Outcome, Step, StepIndex, StepRole,
};
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
    errors(steps, edges, deliveries, &mut found);
    deliveries_twice(spans, steps, deliveries, &mut found);
    dead_letters(steps, deliveries, &mut found);
    compensations(deliveries, options, &mut found);
    out_of_order(steps, deliveries, &mut found);
    propagation_breaks(spans, steps, edges, &mut found);
    schema_changes(spans, steps, deliveries, &mut found);
    clock_skew(deliveries, &mut found);
    missing(deliveries, &mut found);
    found.sort_by(|a, b| (a.kind, &a.steps, &a.detail).cmp(&(b.kind, &b.steps, &b.detail)));
    found.dedup();
    found
}

/// What decides an anomaly's class beyond its kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Circumstances {
    /// For an error: it happened in a processing attempt that the consumer retried and then
    /// processed (the hop's outcome is `retried_then_processed`).
    pub retried_then_processed: bool,
    /// For a schema change: a consumer failed (or dead-lettered) an event of the new
    /// version, or the producer and the consumer of one hop recorded different versions.
    pub schema_conflict: bool,
}

/// The class of an anomaly of `kind` in `circumstances`: a fault when something went wrong
/// for the flow, a fact when it is only worth knowing.
///
/// - `error`: a fault, unless the consumer retried and then processed the message.
/// - `schema_change`: a fact (a version was seen), unless it conflicts (a consumer failed
///   on the new version, or one hop's two sides disagree on it).
/// - `redelivery` (a second delivery that was not a second processing; a second processing
///   is a `duplicate_delivery` of its own) and `clock_skew`: facts.
/// - `dead_letter`, `compensation`, `missing`, `propagation_break`, `duplicate_delivery`,
///   `out_of_order`: faults.
pub fn classify(kind: AnomalyKind, circumstances: Circumstances) -> AnomalyClass {
    let fault = match kind {
        AnomalyKind::Error => !circumstances.retried_then_processed,
        AnomalyKind::SchemaChange => circumstances.schema_conflict,
        AnomalyKind::Redelivery | AnomalyKind::ClockSkew => false,
        AnomalyKind::DeadLetter
        | AnomalyKind::Compensation
        | AnomalyKind::Missing
        | AnomalyKind::PropagationBreak
        | AnomalyKind::DuplicateDelivery
        | AnomalyKind::OutOfOrder => true,
    };
    if fault {
        AnomalyClass::Fault
    } else {
        AnomalyClass::Fact
    }
}

fn push(found: &mut Vec<Anomaly>, kind: AnomalyKind, detail: String, steps: Vec<StepIndex>) {
    push_in(found, kind, Circumstances::default(), detail, steps);
}

fn push_in(
    found: &mut Vec<Anomaly>,
    kind: AnomalyKind,
    circumstances: Circumstances,
    detail: String,
    steps: Vec<StepIndex>,
) {
    found.push(Anomaly {
        kind,
        class: classify(kind, circumstances),
        detail,
        steps,
    });
}

/// The processing attempts of hops that were retried and then processed: an error in one
/// of them, or under one, was recovered from.
fn recovered_attempts(deliveries: &Deliveries) -> BTreeSet<StepIndex> {
    deliveries
        .hops
        .iter()
        .filter(|hop| hop.outcome == Outcome::RetriedThenProcessed)
        .flat_map(|hop| hop.attempts.iter().copied())
        .collect()
}

/// Whether `index`, or the nearest processing step above it, is one of `attempts`.
fn within_attempt(steps: &[Step], index: StepIndex, attempts: &BTreeSet<StepIndex>) -> bool {
    let mut seen = BTreeSet::new();
    let mut cursor = Some(index);
    while let Some(current) = cursor {
        if !seen.insert(current) {
            return false;
        }
        if steps[current].role == StepRole::Process {
            return attempts.contains(&current);
        }
        cursor = steps[current].parent;
    }
    false
}

fn errors(steps: &[Step], edges: &[Edge], deliveries: &Deliveries, found: &mut Vec<Anomaly>) {
    let recovered = recovered_attempts(deliveries);
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
            let circumstances = Circumstances {
                retried_then_processed: within_attempt(steps, index, &recovered),
                ..Circumstances::default()
            };
            push_in(
                found,
                AnomalyKind::Error,
                circumstances,
                detail,
                vec![index],
            );
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

/// The version and dataschema a step names for its event type's base, if any.
struct SchemaMark {
    base: String,
    version: Option<String>,
    schema: Option<String>,
}

fn schema_mark(span: &SpanRecord, step: &Step) -> Option<SchemaMark> {
    let event_type = step.event_type.as_deref()?;
    let (base, version) = split_version(event_type);
    Some(SchemaMark {
        base: base.to_owned(),
        version: version.map(str::to_owned),
        schema: text_attribute(span, attribute::CLOUDEVENTS_EVENT_DATASCHEMA),
    })
}

fn schema_changes(
    spans: &[&SpanRecord],
    steps: &[Step],
    deliveries: &Deliveries,
    found: &mut Vec<Anomaly>,
) {
    // Per event type base: each version (and dataschema) with the first send naming it.
    let mut versions: BTreeMap<String, BTreeMap<String, StepIndex>> = BTreeMap::new();
    let mut schemas: BTreeMap<String, BTreeMap<String, StepIndex>> = BTreeMap::new();
    for (index, step) in steps.iter().enumerate() {
        if step.role != StepRole::Send {
            continue;
        }
        let Some(mark) = schema_mark(spans[index], step) else {
            continue;
        };
        if let Some(version) = mark.version {
            versions
                .entry(mark.base.clone())
                .or_default()
                .entry(version)
                .or_insert(index);
        }
        if let Some(schema) = mark.schema {
            schemas
                .entry(mark.base)
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
                let circumstances = Circumstances {
                    schema_conflict: schema_conflict(spans, steps, deliveries, &base, &seen),
                    ..Circumstances::default()
                };
                push_in(
                    found,
                    AnomalyKind::SchemaChange,
                    circumstances,
                    format!("{base} changed {what} along the flow: {}", names.join(", ")),
                    proof,
                );
            }
        }
    }
}

/// Whether a schema change of `base` conflicts: a consumer failed (or dead-lettered) an
/// event of a version other than the first one sent, or a consumer recorded another
/// version or dataschema than its producer sent. `seen` maps each version (or
/// dataschema) to the first send that named it.
fn schema_conflict(
    spans: &[&SpanRecord],
    steps: &[Step],
    deliveries: &Deliveries,
    base: &str,
    seen: &BTreeMap<String, StepIndex>,
) -> bool {
    let first = seen.values().min().copied();
    deliveries.hops.iter().any(|hop| {
        let event = &deliveries.events[hop.event];
        let Some(send) = event.send else {
            return false;
        };
        let Some(sent) = schema_mark(spans[send], &steps[send]).filter(|m| m.base == base) else {
            return false;
        };
        let new_version = seen
            .iter()
            .find(|(name, _)| {
                sent.version.as_deref() == Some(name.as_str())
                    || sent.schema.as_deref() == Some(name.as_str())
            })
            .is_some_and(|(_, &step)| Some(step) != first);
        let failed = matches!(hop.outcome, Outcome::Failed | Outcome::DeadLettered);
        let disagrees = hop.attempts.iter().any(|&attempt| {
            // A consumer's version counts when it names the same base; its dataschema
            // counts whether or not it recorded an event type.
            let version = steps[attempt]
                .event_type
                .as_deref()
                .map(split_version)
                .filter(|(got_base, _)| *got_base == base)
                .and_then(|(_, version)| version);
            let schema = text_attribute(spans[attempt], attribute::CLOUDEVENTS_EVENT_DATASCHEMA);
            (version.is_some() && version != sent.version.as_deref())
                || (schema.is_some() && sent.schema.is_some() && schema != sent.schema)
        });
        (new_version && failed) || disagrees
    })
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
