//! Events, hops and verdicts: which message each send published, which groups processed
//! it, how long it waited, how often it was retried, and whether every subscribed group
//! got it.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use causeway_storage::{SpanRecord, StatusCode};
use serde_json::Value;

use super::model::{
    ConsumerKind, Edge, EdgeKind, Event, Hop, Outcome, Step, StepIndex, StepRole, Verdict,
};
use super::options::{FlowOptions, Topology};
use causeway_conventions::attribute;

/// Events, hops and verdicts of one flow.
#[derive(Debug, Default)]
pub(crate) struct Deliveries {
    pub events: Vec<Event>,
    pub hops: Vec<Hop>,
    pub verdicts: Vec<Verdict>,
}

/// The identity of an event: message id and topic. A dead-letter copy keeps the message
/// id but goes to another topic, so it is an event of its own.
type EventKey = (String, Option<String>);

/// Where a message sits: topic, partition, offset.
type Position = (String, i64, i64);

/// How long before its send a consumption may be, to be taken as the cause of a send the
/// same service made without trace context (a bridge).
const BRIDGE_WINDOW_NS: i64 = 60 * 1_000_000_000;

/// Builds events, hops and verdicts, and adds the edges that are not trace context: message
/// edges for processes tied to their send by message id or position alone, and bridges
/// from a consumption to the send its service made without carrying the trace on.
pub(crate) fn build(
    spans: &[&SpanRecord],
    steps: &[Step],
    edges: &mut BTreeSet<Edge>,
    topology: &Topology,
    options: &FlowOptions,
) -> Deliveries {
    let mut event_of_key: BTreeMap<EventKey, StepIndex> = BTreeMap::new();
    let mut send_at: BTreeMap<Position, StepIndex> = BTreeMap::new();
    // Sends, in step order: the first send of a key is the event's send.
    for (index, step) in steps.iter().enumerate() {
        if step.role == StepRole::Send {
            event_of_key.entry(event_key(step, index)).or_insert(index);
            if let Some(position) = position(step) {
                send_at.entry(position).or_insert(index);
            }
        }
    }
    let sources = sources(steps, edges);
    let receive_only = receive_only_consumptions(steps, &sources);
    let mut attempts: BTreeMap<(EventKey, Consumer), Vec<StepIndex>> = BTreeMap::new();
    let mut orphan_events: BTreeMap<EventKey, StepIndex> = BTreeMap::new();
    for (index, step) in steps.iter().enumerate() {
        if step.role != StepRole::Process && !receive_only.contains_key(&index) {
            continue;
        }
        let own_sources = match receive_only.get(&index) {
            Some(sends) if sends.is_empty() => None,
            Some(sends) => Some(sends),
            None => sources.get(&index),
        };
        let keys: Vec<EventKey> = match own_sources {
            Some(sends) => sends
                .iter()
                .map(|&send| event_key(&steps[send], send))
                .collect(),
            None => {
                let key = event_key(step, index);
                let matched = event_of_key
                    .get(&key)
                    .copied()
                    .or_else(|| position(step).and_then(|p| send_at.get(&p).copied()));
                match matched {
                    Some(send) => {
                        edges.insert(Edge {
                            from: send,
                            to: index,
                            kind: EdgeKind::Message,
                        });
                        vec![event_key(&steps[send], send)]
                    }
                    None => {
                        orphan_events.entry(key.clone()).or_insert(index);
                        vec![key]
                    }
                }
            }
        };
        let consumer = match &step.consumer_group {
            Some(group) => Consumer::group(group),
            None => Consumer::service(&step.service),
        };
        for key in keys {
            attempts
                .entry((key, consumer.clone()))
                .or_default()
                .push(index);
        }
    }
    bridges(steps, edges);
    let mut events = Vec::new();
    let mut event_index: BTreeMap<EventKey, usize> = BTreeMap::new();
    let mut keyed: Vec<(EventKey, Option<StepIndex>, StepIndex)> = event_of_key
        .iter()
        .map(|(key, &send)| (key.clone(), Some(send), send))
        .chain(
            orphan_events
                .iter()
                .filter(|(key, _)| !event_of_key.contains_key(*key))
                .map(|(key, &first)| (key.clone(), None, first)),
        )
        .collect();
    keyed.sort_by_key(|(key, _, first)| (steps[*first].start_ns, *first, key.clone()));
    // Where the send did not record its message's position (Python's, kafkajs' and .NET's
    // producers never do), the consumers that read it did.
    let mut consumed_at: BTreeMap<&EventKey, (i64, i64)> = BTreeMap::new();
    for ((key, _), tries) in &attempts {
        if let Some((partition, offset)) = tries
            .iter()
            .find_map(|&i| Some((steps[i].partition?, steps[i].offset?)))
        {
            consumed_at.entry(key).or_insert((partition, offset));
        }
    }
    for (key, send, first) in keyed {
        let step = &steps[first];
        let (partition, offset) = match (step.partition, step.offset) {
            (Some(partition), Some(offset)) => (Some(partition), Some(offset)),
            _ => consumed_at
                .get(&key)
                .map_or((step.partition, step.offset), |(p, o)| (Some(*p), Some(*o))),
        };
        event_index.insert(key.clone(), events.len());
        events.push(Event {
            message_id: key.0,
            topic: key.1,
            event_type: step.event_type.clone(),
            message_key: step.message_key.clone(),
            partition,
            offset,
            send,
            producer: send.map(|s| steps[s].service.clone()),
            published_ns: step.start_ns,
        });
    }
    let dead_letters = dead_letter_forwards(steps, options);
    let mut hops = Vec::new();
    for ((key, consumer), mut tries) in attempts {
        let Some(&event) = event_index.get(&key) else {
            continue;
        };
        tries.sort_by_key(|&i| (steps[i].start_ns, i));
        tries.dedup();
        let mut hop = hop(
            event,
            &events[event],
            consumer,
            tries,
            spans,
            steps,
            &dead_letters,
        );
        if hop.outcome == Outcome::Processed
            && hop.attempts.iter().all(|a| receive_only.contains_key(a))
        {
            hop.outcome = Outcome::Received;
        }
        hops.push(hop);
    }
    hops.sort_by(|a, b| (a.event, &a.consumer_group).cmp(&(b.event, &b.consumer_group)));
    let verdicts = verdicts(&events, &hops, topology);
    Deliveries {
        events,
        hops,
        verdicts,
    }
}

/// Who consumed: a consumer group, or, when the span names none, the consuming service.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Consumer {
    name: String,
    kind: ConsumerKind,
}

impl Consumer {
    fn group(name: &str) -> Self {
        Consumer {
            name: name.to_owned(),
            kind: ConsumerKind::Group,
        }
    }

    fn service(name: &str) -> Self {
        Consumer {
            name: name.to_owned(),
            kind: ConsumerKind::Service,
        }
    }
}

/// The sends each process step consumed, through trace context: a parent or link edge
/// from a send, or from a receive (poll) step that itself came from sends. One process
/// span may consume several messages (a batch listener), so several sends.
fn sources(steps: &[Step], edges: &BTreeSet<Edge>) -> HashMap<StepIndex, BTreeSet<StepIndex>> {
    let mut direct: HashMap<StepIndex, BTreeSet<StepIndex>> = HashMap::new();
    let mut via_receive: HashMap<StepIndex, BTreeSet<StepIndex>> = HashMap::new();
    for edge in edges.iter().filter(|e| e.kind != EdgeKind::Bridge) {
        let (from, to) = (&steps[edge.from], &steps[edge.to]);
        match (from.role, to.role) {
            (StepRole::Send, StepRole::Process | StepRole::Receive) => {
                direct.entry(edge.to).or_default().insert(edge.from);
            }
            (StepRole::Receive, StepRole::Process) => {
                via_receive.entry(edge.to).or_default().insert(edge.from);
            }
            _ => {}
        }
    }
    let mut sources: HashMap<StepIndex, BTreeSet<StepIndex>> = HashMap::new();
    for (index, step) in steps.iter().enumerate() {
        if step.role == StepRole::Receive {
            if let Some(sends) = direct.get(&index) {
                sources.insert(index, sends.clone());
            }
            continue;
        }
        if step.role != StepRole::Process {
            continue;
        }
        if let Some(sends) = direct.get(&index) {
            sources.insert(index, sends.clone());
            continue;
        }
        // Through a receive: the one send it came from, or among several (a polled batch)
        // the send at this process step's position.
        let mut found = BTreeSet::new();
        for receive in via_receive.get(&index).into_iter().flatten() {
            let sends = direct.get(receive).cloned().unwrap_or_default();
            if sends.len() == 1 {
                found.extend(sends);
            } else if let Some(own) = position(step) {
                found.extend(
                    sends
                        .into_iter()
                        .filter(|&send| position(&steps[send]).as_ref() == Some(&own)),
                );
            }
        }
        if !found.is_empty() {
            sources.insert(index, found);
        }
    }
    sources
}

/// Receive steps that are the only trace of a consumption, with the sends they stand for:
/// they came from a send (by a parent or link edge) that no process step of the same
/// service consumed too, or they sit at a message position with no source at all. kotel
/// without a process span, otelsarama and .NET's `Consume` record only these.
fn receive_only_consumptions(
    steps: &[Step],
    sources: &HashMap<StepIndex, BTreeSet<StepIndex>>,
) -> HashMap<StepIndex, BTreeSet<StepIndex>> {
    let mut processed: BTreeSet<(&str, StepIndex)> = BTreeSet::new();
    for (index, sends) in sources {
        if steps[*index].role == StepRole::Process {
            for send in sends {
                processed.insert((steps[*index].service.as_str(), *send));
            }
        }
    }
    let mut found = HashMap::new();
    for (index, step) in steps.iter().enumerate() {
        if step.role != StepRole::Receive {
            continue;
        }
        match sources.get(&index) {
            Some(sends) => {
                let left: BTreeSet<StepIndex> = sends
                    .iter()
                    .copied()
                    .filter(|send| !processed.contains(&(step.service.as_str(), *send)))
                    .collect();
                if !left.is_empty() {
                    found.insert(index, left);
                }
            }
            None if position(step).is_some() => {
                found.insert(index, BTreeSet::new());
            }
            None => {}
        }
    }
    found
}

/// A send that no consumption leads to through trace context, made by a service shortly
/// after it consumed a message of the same correlation ID or key: the instrumentation ended
/// the consume span before the service's code ran (kafka-python, .NET's poll, a Go service
/// that did not pass the record's context on). The consumption is taken as its cause, and
/// the edge is marked as inferred (`bridge`).
fn bridges(steps: &[Step], edges: &mut BTreeSet<Edge>) {
    let caused: BTreeSet<StepIndex> = edges
        .iter()
        .filter(|e| matches!(steps[e.from].role, StepRole::Process | StepRole::Receive))
        .map(|e| e.to)
        .collect();
    let mut added = Vec::new();
    for (index, step) in steps.iter().enumerate() {
        if step.role != StepRole::Send || has_consuming_ancestor(steps, index, &caused) {
            continue;
        }
        let same_business = |other: &Step| {
            matches!((&step.correlation_id, &other.correlation_id), (Some(a), Some(b)) if a == b)
                || matches!((&step.message_key, &other.message_key), (Some(a), Some(b)) if a == b)
        };
        let cause = steps
            .iter()
            .enumerate()
            .filter(|(other, candidate)| {
                *other != index
                    && candidate.role == StepRole::Process
                    && candidate.service == step.service
                    && candidate.trace_id != step.trace_id
                    && candidate.start_ns <= step.start_ns
                    && step.start_ns - candidate.start_ns <= BRIDGE_WINDOW_NS
                    && same_business(candidate)
            })
            .max_by_key(|(other, candidate)| (candidate.start_ns, *other))
            .map(|(other, _)| other);
        if let Some(from) = cause {
            added.push(Edge {
                from,
                to: index,
                kind: EdgeKind::Bridge,
            });
        }
    }
    edges.extend(added);
}

/// Whether a consumption (process or receive step) is `index` or an ancestor of it through
/// parents, or caused it through any edge.
fn has_consuming_ancestor(steps: &[Step], index: StepIndex, caused: &BTreeSet<StepIndex>) -> bool {
    let mut seen = BTreeSet::new();
    let mut cursor = Some(index);
    while let Some(current) = cursor {
        if !seen.insert(current) {
            return false;
        }
        if caused.contains(&current)
            || (current != index
                && matches!(steps[current].role, StepRole::Process | StepRole::Receive))
        {
            return true;
        }
        cursor = steps[current].parent;
    }
    false
}

fn event_key(step: &Step, index: StepIndex) -> EventKey {
    let message_id = match (&step.message_id, step.partition, step.offset) {
        (Some(id), _, _) => id.clone(),
        (None, Some(partition), Some(offset)) => format!("{partition}@{offset}"),
        _ => format!("span:{}:{index}", step.span_id),
    };
    (message_id, step.topic.clone())
}

/// The position of the message a step sends or consumes, when it recorded all of it.
fn position(step: &Step) -> Option<Position> {
    Some((step.topic.clone()?, step.partition?, step.offset?))
}

/// Maps a process step to the dead-letter send it (or a step under it) made.
fn dead_letter_forwards(steps: &[Step], options: &FlowOptions) -> HashMap<StepIndex, StepIndex> {
    let mut forwards = HashMap::new();
    for (index, step) in steps.iter().enumerate() {
        let to_dead_letter = step.role == StepRole::Send
            && step
                .topic
                .as_deref()
                .is_some_and(|t| options.is_dead_letter_topic(t));
        if !to_dead_letter {
            continue;
        }
        let mut seen = BTreeSet::new();
        let mut cursor = step.parent;
        while let Some(parent) = cursor {
            if !seen.insert(parent) {
                break;
            }
            if steps[parent].role == StepRole::Process {
                forwards.entry(parent).or_insert(index);
                break;
            }
            cursor = steps[parent].parent;
        }
    }
    forwards
}

fn hop(
    event_index: usize,
    event: &Event,
    consumer: Consumer,
    attempts: Vec<StepIndex>,
    spans: &[&SpanRecord],
    steps: &[Step],
    dead_letters: &HashMap<StepIndex, StepIndex>,
) -> Hop {
    let send = event.send.map(|s| &steps[s]);
    let first = attempts.first().map(|&i| &steps[i]);
    let message_queue_wait_ns = attempts.first().and_then(|&i| {
        int_attribute(spans[i], attribute::QUEUE_TIME_MS).map(|ms| ms.saturating_mul(1_000_000))
    });
    let clock_skew = is_clock_skew(send, first, message_queue_wait_ns);
    // Reading a message before its send span ends (while the producer awaits the broker's
    // acknowledgement) is a wait of nothing, not a negative one; only skew stays negative.
    let queue_wait_ns = match (send, first) {
        (Some(send), Some(first)) if clock_skew => Some(first.start_ns - send.end_ns),
        (Some(send), Some(first)) => Some((first.start_ns - send.end_ns).max(0)),
        _ => None,
    };
    let processing_ns = attempts.iter().map(|&i| steps[i].duration_ns).sum();
    let backoff_ns = attempts
        .windows(2)
        .map(|pair| (steps[pair[1]].start_ns - steps[pair[0]].end_ns).max(0))
        .sum();
    let recorded_retries = attempts
        .iter()
        .filter_map(|&i| int_attribute(spans[i], attribute::RETRY_COUNT))
        .max()
        .unwrap_or(0);
    let retries = u32::try_from(attempts.len().saturating_sub(1))
        .unwrap_or(u32::MAX)
        .max(u32::try_from(recorded_retries.max(0)).unwrap_or(u32::MAX));
    let dead_letter = attempts.iter().find_map(|i| dead_letters.get(i).copied());
    let last_failed = attempts
        .last()
        .is_some_and(|&i| steps[i].status == StatusCode::Error);
    let any_failed = attempts
        .iter()
        .any(|&i| steps[i].status == StatusCode::Error);
    let outcome = if dead_letter.is_some() {
        Outcome::DeadLettered
    } else if last_failed {
        Outcome::Failed
    } else if any_failed || recorded_retries > 0 {
        // Failed at least once (a failed attempt, or retries recorded inside one attempt).
        // Two clean attempts are a duplicate delivery, not a retry.
        Outcome::RetriedThenProcessed
    } else {
        Outcome::Processed
    };
    Hop {
        event: event_index,
        service: first.map(|s| s.service.clone()).unwrap_or_default(),
        consumer_group: consumer.name,
        consumer_kind: consumer.kind,
        published_ns: event.published_ns,
        publish_ns: send.map(|s| s.duration_ns),
        queue_wait_ns,
        clock_skew,
        message_queue_wait_ns,
        processing_ns,
        retries,
        backoff_ns,
        outcome,
        dead_letter,
        attempts,
    }
}

/// How far clocks may disagree before a hop is flagged: message timestamps have
/// millisecond resolution.
const SKEW_TOLERANCE_NS: i64 = 1_000_000;

/// A consumer may legitimately start before the producer's send span ends (the send span
/// waits for the broker's acknowledgement), but never before the send began nor before the
/// message's own timestamp: only those, beyond a millisecond, are clock skew.
fn is_clock_skew(
    send: Option<&Step>,
    first: Option<&Step>,
    message_queue_wait_ns: Option<i64>,
) -> bool {
    let before_send = match (send, first) {
        (Some(send), Some(first)) => first.start_ns + SKEW_TOLERANCE_NS < send.start_ns,
        _ => false,
    };
    before_send || message_queue_wait_ns.is_some_and(|wait| wait < -SKEW_TOLERANCE_NS)
}

fn verdicts(events: &[Event], hops: &[Hop], topology: &Topology) -> Vec<Verdict> {
    let mut by_key: BTreeMap<(usize, String), Verdict> = BTreeMap::new();
    for (index, hop) in hops.iter().enumerate() {
        by_key.insert(
            (hop.event, hop.consumer_group.clone()),
            Verdict {
                event: hop.event,
                consumer_group: hop.consumer_group.clone(),
                consumer_kind: hop.consumer_kind,
                hop: Some(index),
                outcome: hop.outcome,
            },
        );
    }
    for (index, event) in events.iter().enumerate() {
        let Some(topic) = &event.topic else { continue };
        // A consumer known only by its service may be any of the topic's groups: claiming
        // one of them missing could be false.
        if hops
            .iter()
            .any(|h| h.event == index && h.consumer_kind == ConsumerKind::Service)
        {
            continue;
        }
        for group in topology.groups_for(topic) {
            by_key
                .entry((index, group.to_owned()))
                .or_insert_with(|| Verdict {
                    event: index,
                    consumer_group: group.to_owned(),
                    consumer_kind: ConsumerKind::Group,
                    hop: None,
                    outcome: Outcome::NotSeenYet,
                });
        }
    }
    by_key.into_values().collect()
}

/// An integer attribute, also accepted as a numeric string.
pub(crate) fn int_attribute(span: &SpanRecord, key: &str) -> Option<i64> {
    match span.attributes.get(key)? {
        Value::Number(number) => number
            .as_i64()
            .or_else(|| number.as_f64().map(|float| float.round() as i64)),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

/// A string attribute (numbers and booleans are shown as text).
pub(crate) fn text_attribute(span: &SpanRecord, key: &str) -> Option<String> {
    match span.attributes.get(key)? {
        Value::String(text) => Some(text.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}
