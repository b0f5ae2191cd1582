//! One chunk of new spans through the flow rules, pure: which spans match a rule (an
//! occurrence, counted by its alert), which sends start waiting for their expected groups
//! (due items), and which consumptions take an expected group off a waiting send, matched
//! within the chunk first and otherwise handed back for the stored due items.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use causeway_conventions::alert::label;
use causeway_conventions::glob_match;
use causeway_conventions::messaging::Operation;
use causeway_storage::{DueItem, RuleSpan, SpanId, SpanKind, StatusCode, TraceId};

use crate::flow_rules::config::{FlowRule, FlowRuleKind, Subject};
use crate::flows_config::FlowRuleSettings;

/// A stored send is given at least this long (or the rule's `after`, if shorter) from when
/// the collector stored it, so that exporters that hold spans back do not trip a rule.
pub const EXPORT_GRACE_NS: i64 = 30 * 1_000_000_000;

/// A span's messaging role, as the flow model reads it: the operation, else the kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Sends (creates) a message.
    Send,
    /// Fetches messages (a poll).
    Receive,
    /// Processes a message.
    Process,
    /// Anything else.
    Other,
}

/// The role of `span`.
pub fn role(span: &RuleSpan) -> Role {
    match span.operation_type.as_deref().and_then(Operation::parse) {
        Some(Operation::Send) => Role::Send,
        Some(Operation::Receive) => Role::Receive,
        Some(Operation::Process) => Role::Process,
        Some(Operation::Settle) => Role::Other,
        None => match span.kind {
            SpanKind::Producer => Role::Send,
            SpanKind::Consumer => Role::Process,
            _ => Role::Other,
        },
    }
}

/// Which consumer groups process which topics (learnt from stored traffic).
pub type Expected = BTreeMap<String, BTreeSet<String>>;

/// One match of an occurrence rule (every kind but `incomplete_after`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Occurrence {
    /// Index of the rule in the settings.
    pub rule: usize,
    /// The alert's subject labels (consumer group, topic or service).
    pub subject: BTreeMap<String, String>,
    /// The flow it belongs to: its correlation ID, or its trace ID.
    pub flow_id: String,
    /// When it happened (the span's start), in nanoseconds since the Unix epoch.
    pub at_ns: i64,
}

/// A consumption not matched to a send of its own chunk: it may clear a stored due item,
/// or, when its send has not been seen, be remembered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumption {
    /// The group (`None`: the consumer names none, and may be any of them).
    pub group: Option<String>,
    /// The spans its trace context points at: its parent and its links.
    pub sources: Vec<SpanId>,
    /// The topic it read.
    pub topic: Option<String>,
    /// The message id it recorded.
    pub message_id: Option<String>,
    /// The partition it read.
    pub partition: Option<i64>,
    /// The offset it read.
    pub offset: Option<i64>,
}

/// What one chunk produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChunkOutcome {
    /// Rule matches to count.
    pub occurrences: Vec<Occurrence>,
    /// New due items still waiting after the chunk's own consumptions.
    pub due: Vec<DueItem>,
    /// Consumptions left for the stored due items.
    pub consumptions: Vec<Consumption>,
    /// Dead-letter sends whose processing span (naming the group) is not stored yet.
    pub waiting_for_parent: Vec<RuleSpan>,
}

/// What a chunk needs besides its spans.
pub struct ChunkContext<'a> {
    /// The rules and patterns.
    pub settings: &'a FlowRuleSettings,
    /// Expected groups per topic.
    pub expected: &'a Expected,
    /// The links of the chunk's consumer spans that were looked up.
    pub links: &'a HashMap<(TraceId, SpanId), Vec<(TraceId, SpanId)>>,
    /// Spans outside the chunk that dead-letter sends name as parents.
    pub parents: &'a HashMap<(TraceId, SpanId), RuleSpan>,
    /// Whether a dead-letter send whose parent is unknown may wait for it (false: count it
    /// now, by its service).
    pub may_wait: bool,
}

/// The consumer spans of `spans` whose links are worth reading: those whose parent is not
/// a send of the same chunk (the parent alone does not tie them to their message).
pub fn needing_links(spans: &[RuleSpan]) -> Vec<(i64, TraceId, SpanId)> {
    let sends: BTreeSet<(TraceId, SpanId)> = spans
        .iter()
        .filter(|s| role(s) == Role::Send)
        .map(|s| (s.trace_id, s.span_id))
        .collect();
    spans
        .iter()
        .filter(|s| matches!(role(s), Role::Process | Role::Receive))
        .filter(|s| {
            s.parent_span_id
                .is_none_or(|parent| !sends.contains(&(s.trace_id, parent)))
        })
        .map(|s| (s.segment, s.trace_id, s.span_id))
        .collect()
}

/// The parents of the chunk's dead-letter sends that are not in the chunk.
pub fn missing_parents(spans: &[RuleSpan], settings: &FlowRuleSettings) -> Vec<(TraceId, SpanId)> {
    let present: BTreeSet<(TraceId, SpanId)> =
        spans.iter().map(|s| (s.trace_id, s.span_id)).collect();
    spans
        .iter()
        .filter(|s| is_dead_letter_send(s, settings))
        .filter_map(|s| Some((s.trace_id, s.parent_span_id?)))
        .filter(|id| !present.contains(id))
        .collect()
}

fn is_dead_letter_send(span: &RuleSpan, settings: &FlowRuleSettings) -> bool {
    role(span) == Role::Send
        && span
            .topic
            .as_deref()
            .is_some_and(|topic| is_dead_letter_topic(topic, &settings.dead_letter_topics))
}

fn is_dead_letter_topic(topic: &str, patterns: &[String]) -> bool {
    let lower = topic.to_ascii_lowercase();
    patterns
        .iter()
        .any(|pattern| glob_match(&pattern.to_ascii_lowercase(), &lower))
}

/// The ID a flow is opened with: its correlation ID, or the span's trace ID.
pub fn flow_id(span: &RuleSpan) -> String {
    span.correlation_id
        .clone()
        .unwrap_or_else(|| span.trace_id.to_string())
}

fn subject_of(span: &RuleSpan) -> Subject<'_> {
    Subject {
        service: Some(&span.service),
        topic: span.topic.as_deref(),
        event_type: span.event_type.as_deref(),
        group: span.consumer_group.as_deref(),
    }
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Runs one chunk (oldest first) through the rules.
pub fn evaluate_chunk(spans: &[RuleSpan], context: &ChunkContext<'_>) -> ChunkOutcome {
    let settings = context.settings;
    let mut outcome = ChunkOutcome::default();
    let by_id: HashMap<(TraceId, SpanId), &RuleSpan> =
        spans.iter().map(|s| ((s.trace_id, s.span_id), s)).collect();
    let mut waiting = Waiting::default();
    for span in spans {
        let role = role(span);
        for (index, rule) in settings.rules.iter().enumerate() {
            match rule.kind {
                FlowRuleKind::Error => error(index, rule, span, role, &mut outcome),
                FlowRuleKind::Compensation => {
                    compensation(index, rule, span, role, settings, &mut outcome)
                }
                FlowRuleKind::PropagationBreak => {
                    propagation_break(index, rule, span, role, context, &mut outcome)
                }
                FlowRuleKind::DeadLetter => {}
                FlowRuleKind::IncompleteAfter => {
                    if role == Role::Send {
                        waiting.expect(rule, span, context.expected);
                    }
                }
            }
        }
        if is_dead_letter_send(span, settings) {
            let parent = span.parent_span_id.and_then(|parent| {
                let key = (span.trace_id, parent);
                by_id
                    .get(&key)
                    .copied()
                    .or_else(|| context.parents.get(&key))
            });
            if parent.is_none() && span.parent_span_id.is_some() && context.may_wait {
                outcome.waiting_for_parent.push(span.clone());
            } else {
                dead_letter(span, parent, settings, &mut outcome.occurrences);
            }
        }
    }
    for span in spans {
        if matches!(role(span), Role::Process | Role::Receive) {
            let consumption = consumption_of(span, context.links);
            if !waiting.consume(&consumption) {
                outcome.consumptions.push(consumption);
            }
        }
    }
    outcome.due = waiting.into_items();
    outcome
}

/// Counts `span`, a dead-letter send, under every `dead_letter` rule it matches: by the
/// group that gave up (its parent, the processing span) when known, else by its service.
pub fn dead_letter(
    span: &RuleSpan,
    parent: Option<&RuleSpan>,
    settings: &FlowRuleSettings,
    occurrences: &mut Vec<Occurrence>,
) {
    let group = parent.and_then(|p| p.consumer_group.as_deref());
    let topic = parent
        .and_then(|p| p.topic.as_deref())
        .or(span.topic.as_deref());
    let subject = Subject {
        service: Some(&span.service),
        topic,
        event_type: span.event_type.as_deref(),
        group,
    };
    for (index, rule) in settings.rules.iter().enumerate() {
        if rule.kind != FlowRuleKind::DeadLetter || !rule.matches(subject) {
            continue;
        }
        let topic = topic.unwrap_or("?");
        let subject = match group {
            Some(group) => labels(&[(label::CONSUMER_GROUP, group), (label::TOPIC, topic)]),
            None => labels(&[(label::SERVICE, &span.service), (label::TOPIC, topic)]),
        };
        occurrences.push(Occurrence {
            rule: index,
            subject,
            flow_id: flow_id(span),
            at_ns: span.start_ns,
        });
    }
}

/// A match of rule `index` on `span`, counted by its service.
fn by_service(index: usize, span: &RuleSpan) -> Occurrence {
    Occurrence {
        rule: index,
        subject: labels(&[(label::SERVICE, &span.service)]),
        flow_id: flow_id(span),
        at_ns: span.start_ns,
    }
}

fn error(index: usize, rule: &FlowRule, span: &RuleSpan, role: Role, outcome: &mut ChunkOutcome) {
    // A failed poll is the application marking a whole batch; its process spans say which
    // message failed.
    if span.status != StatusCode::Error || role == Role::Receive || !rule.matches(subject_of(span))
    {
        return;
    }
    outcome.occurrences.push(by_service(index, span));
}

fn compensation(
    index: usize,
    rule: &FlowRule,
    span: &RuleSpan,
    role: Role,
    settings: &FlowRuleSettings,
    outcome: &mut ChunkOutcome,
) {
    let compensating = role == Role::Send
        && span.event_type.as_deref().is_some_and(|t| {
            settings
                .compensation_types
                .iter()
                .any(|pattern| glob_match(pattern, t))
        });
    // A dead-letter copy keeps its event type but is no second undo step.
    if !compensating || is_dead_letter_send(span, settings) || !rule.matches(subject_of(span)) {
        return;
    }
    outcome.occurrences.push(by_service(index, span));
}

/// A consumer that recorded a break, or a processing span with no trace context at all
/// (no parent, no link).
fn propagation_break(
    index: usize,
    rule: &FlowRule,
    span: &RuleSpan,
    role: Role,
    context: &ChunkContext<'_>,
    outcome: &mut ChunkOutcome,
) {
    let contextless = role == Role::Process
        && span.parent_span_id.is_none()
        && !context.links.contains_key(&(span.trace_id, span.span_id));
    if (span.propagation_break.is_none() && !contextless) || !rule.matches(subject_of(span)) {
        return;
    }
    outcome.occurrences.push(by_service(index, span));
}

fn consumption_of(
    span: &RuleSpan,
    links: &HashMap<(TraceId, SpanId), Vec<(TraceId, SpanId)>>,
) -> Consumption {
    let mut sources: Vec<SpanId> = span.parent_span_id.into_iter().collect();
    if let Some(linked) = links.get(&(span.trace_id, span.span_id)) {
        sources.extend(linked.iter().map(|(_, span)| *span));
    }
    sources.sort_unstable();
    sources.dedup();
    Consumption {
        group: span.consumer_group.clone(),
        sources,
        topic: span.topic.clone(),
        message_id: span.message_id.clone(),
        partition: span.partition,
        offset: span.offset,
    }
}

/// Takes `consumption`'s group (every group, for a consumer that names none) off `item`;
/// returns whether it took any.
pub fn take_groups(item: &mut DueItem, consumption: &Consumption) -> bool {
    let before = item.groups.len();
    match &consumption.group {
        Some(group) => item.groups.retain(|g| g != group),
        None => item.groups.clear(),
    }
    item.groups.len() != before
}

/// Whether `consumption` read `item`'s message: by trace context, message id or position.
pub fn reads(consumption: &Consumption, item: &DueItem) -> bool {
    let same_topic = consumption.topic.as_deref() == Some(item.topic.as_str());
    consumption.sources.contains(&item.send_span_id)
        || (same_topic && item.message_id.is_some() && consumption.message_id == item.message_id)
        || (same_topic
            && item.offset.is_some()
            && consumption.partition == item.partition
            && consumption.offset == item.offset)
}

/// The chunk's own sends waiting for their groups, findable by send span, message id and
/// position.
#[derive(Default)]
struct Waiting {
    items: Vec<DueItem>,
    by_send: HashMap<SpanId, Vec<usize>>,
    by_message: HashMap<(String, String), Vec<usize>>,
    by_position: HashMap<(String, i64, i64), Vec<usize>>,
}

impl Waiting {
    /// Starts waiting for the groups `rule` expects to process `send`'s message. A send
    /// that failed published nothing, so nobody is waited for.
    fn expect(&mut self, rule: &FlowRule, send: &RuleSpan, expected: &Expected) {
        let Some(topic) = send.topic.as_deref() else {
            return;
        };
        if send.status == StatusCode::Error {
            return;
        }
        let groups: Vec<String> = expected
            .get(topic)
            .into_iter()
            .flatten()
            .filter(|group| {
                rule.matches(Subject {
                    service: Some(&send.service),
                    topic: Some(topic),
                    event_type: send.event_type.as_deref(),
                    group: Some(group),
                })
            })
            .cloned()
            .collect();
        if groups.is_empty() {
            return;
        }
        let grace = rule.after_ns.min(EXPORT_GRACE_NS);
        let due_ns = send
            .start_ns
            .saturating_add(rule.after_ns)
            .max(send.ingested_ns.saturating_add(grace));
        let item = DueItem {
            send_span_id: send.span_id,
            rule: rule.name.clone(),
            send_trace_id: send.trace_id,
            due_ns,
            overdue: false,
            topic: topic.to_owned(),
            message_id: send.message_id.clone(),
            partition: send.partition,
            offset: send.offset,
            correlation_id: send.correlation_id.clone(),
            event_type: send.event_type.clone(),
            producer: send.service.clone(),
            sent_ns: send.start_ns,
            groups,
        };
        let at = self.items.len();
        self.by_send.entry(item.send_span_id).or_default().push(at);
        if let Some(message) = &item.message_id {
            self.by_message
                .entry((item.topic.clone(), message.clone()))
                .or_default()
                .push(at);
        }
        if let (Some(partition), Some(offset)) = (item.partition, item.offset) {
            self.by_position
                .entry((item.topic.clone(), partition, offset))
                .or_default()
                .push(at);
        }
        self.items.push(item);
    }

    /// Applies `consumption` to the chunk's items; whether it read one of their messages.
    fn consume(&mut self, consumption: &Consumption) -> bool {
        let mut candidates: BTreeSet<usize> = consumption
            .sources
            .iter()
            .filter_map(|source| self.by_send.get(source))
            .flatten()
            .copied()
            .collect();
        if let Some(topic) = &consumption.topic {
            if let Some(message) = &consumption.message_id {
                candidates.extend(
                    self.by_message
                        .get(&(topic.clone(), message.clone()))
                        .into_iter()
                        .flatten(),
                );
            }
            if let (Some(partition), Some(offset)) = (consumption.partition, consumption.offset) {
                candidates.extend(
                    self.by_position
                        .get(&(topic.clone(), partition, offset))
                        .into_iter()
                        .flatten(),
                );
            }
        }
        let mut read = false;
        for at in candidates {
            if reads(consumption, &self.items[at]) {
                take_groups(&mut self.items[at], consumption);
                read = true;
            }
        }
        read
    }

    fn into_items(self) -> Vec<DueItem> {
        self.items
            .into_iter()
            .filter(|item| !item.groups.is_empty())
            .collect()
    }
}

#[cfg(test)]
#[path = "evaluate_tests.rs"]
mod tests;
