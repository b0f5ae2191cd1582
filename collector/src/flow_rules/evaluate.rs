//! One chunk of new spans through the flow rules, pure: which spans match a rule (an
//! occurrence, counted by its alert), which sends start waiting for their expected groups
//! (due items), and which consumptions take an expected group off a waiting send, matched
//! within the chunk first and otherwise handed back for the stored due items.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use causeway_conventions::alert::label;
use causeway_conventions::glob_match;
use causeway_conventions::messaging::Operation;
use causeway_storage::{CompactString, DueItem, RuleSpan, SpanId, SpanKind, StatusCode, TraceId};

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
    match span.operation {
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

/// The maps and sets a chunk builds of its own spans' keys and probes for every span (and
/// the stored items' index and the recent sends, which are probed as often): foldhash
/// (seeded per process) rather than SipHash, measured faster on the flow rule bench.
pub(crate) type FastMap<K, V> = foldhash::HashMap<K, V>;
type FastSet<K> = foldhash::HashSet<K>;

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
    pub group: Option<CompactString>,
    /// The spans its trace context points at (trace and span id): its parent and its links.
    pub sources: Vec<(TraceId, SpanId)>,
    /// The topic it read.
    pub topic: Option<CompactString>,
    /// The message id it recorded.
    pub message_id: Option<CompactString>,
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
/// a send of the same chunk, nor one `earlier_send` knows from an earlier chunk (the parent
/// alone does not tie them to their message).
pub fn needing_links(
    spans: &[RuleSpan],
    earlier_send: impl Fn(SpanId) -> bool,
) -> Vec<(i64, TraceId, SpanId)> {
    let sends: FastSet<(TraceId, SpanId)> = spans
        .iter()
        .filter(|s| role(s) == Role::Send)
        .map(|s| (s.trace_id, s.span_id))
        .collect();
    spans
        .iter()
        .filter(|s| matches!(role(s), Role::Process | Role::Receive))
        .filter(|s| {
            s.parent_span_id.is_none_or(|parent| {
                !sends.contains(&(s.trace_id, parent)) && !earlier_send(parent)
            })
        })
        .map(|s| (s.segment, s.trace_id, s.span_id))
        .collect()
}

/// The parents of the chunk's dead-letter sends that are not in the chunk.
pub fn missing_parents(spans: &[RuleSpan], settings: &FlowRuleSettings) -> Vec<(TraceId, SpanId)> {
    let dead_letters = dead_letter_flags(spans, settings);
    let found = dead_letter_parents(spans, &dead_letters);
    spans
        .iter()
        .zip(&dead_letters)
        .filter(|(_, dead_letter)| **dead_letter)
        .filter_map(|(s, _)| Some((s.trace_id, s.parent_span_id?)))
        .filter(|id| !found.contains_key(id))
        .collect()
}

/// Whether each span of the chunk is a dead-letter send (each topic's name is matched
/// against the patterns once).
fn dead_letter_flags(spans: &[RuleSpan], settings: &FlowRuleSettings) -> Vec<bool> {
    let mut known: FastMap<&str, bool> = FastMap::default();
    spans
        .iter()
        .map(|span| {
            let Some(topic) = span.topic.as_deref().filter(|_| role(span) == Role::Send) else {
                return false;
            };
            *known
                .entry(topic)
                .or_insert_with(|| is_dead_letter_topic(topic, &settings.dead_letter_topics))
        })
        .collect()
}

/// The parents of the chunk's dead-letter sends (flagged in `dead_letters`) that are in
/// the chunk. Dead letters are rare: only their parents are indexed, not the whole chunk.
fn dead_letter_parents<'a>(
    spans: &'a [RuleSpan],
    dead_letters: &[bool],
) -> FastMap<(TraceId, SpanId), &'a RuleSpan> {
    let wanted: FastSet<(TraceId, SpanId)> = spans
        .iter()
        .zip(dead_letters)
        .filter(|(_, dead_letter)| **dead_letter)
        .filter_map(|(s, _)| Some((s.trace_id, s.parent_span_id?)))
        .collect();
    if wanted.is_empty() {
        return FastMap::default();
    }
    spans
        .iter()
        .filter(|s| wanted.contains(&(s.trace_id, s.span_id)))
        .map(|s| ((s.trace_id, s.span_id), s))
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
    // The patterns are lowercase already (`FlowsConfig::rule_settings`).
    let lower: std::borrow::Cow<'_, str> = if topic.bytes().any(|b| b.is_ascii_uppercase()) {
        topic.to_ascii_lowercase().into()
    } else {
        topic.into()
    };
    patterns.iter().any(|pattern| glob_match(pattern, &lower))
}

/// The ID a flow is opened with: its correlation ID, or the span's trace ID.
pub fn flow_id(span: &RuleSpan) -> String {
    span.correlation_id
        .as_deref()
        .map_or_else(|| span.trace_id.to_string(), str::to_owned)
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
    // Found at the first dead-letter send (they are rare).
    let mut parents: Option<FastMap<(TraceId, SpanId), &RuleSpan>> = None;
    let roles: Vec<Role> = spans.iter().map(role).collect();
    let dead_letters = dead_letter_flags(spans, settings);
    let wants_due = settings
        .rules
        .iter()
        .any(|r| r.kind == FlowRuleKind::IncompleteAfter);
    let mut waiting = Waiting::default();
    for ((span, &role), &dead_lettered) in spans.iter().zip(&roles).zip(&dead_letters) {
        for (index, rule) in settings.rules.iter().enumerate() {
            match rule.kind {
                FlowRuleKind::Error => error(index, rule, span, role, &mut outcome),
                FlowRuleKind::Compensation => {
                    compensation(index, rule, span, role, settings, &mut outcome)
                }
                FlowRuleKind::PropagationBreak => {
                    propagation_break(index, rule, span, role, context, &mut outcome)
                }
                FlowRuleKind::DeadLetter | FlowRuleKind::IncompleteAfter => {}
            }
        }
        if role == Role::Send && wants_due {
            waiting.expect(&settings.rules, span, context.expected);
        }
        if dead_lettered {
            let in_chunk = parents.get_or_insert_with(|| dead_letter_parents(spans, &dead_letters));
            let parent = span.parent_span_id.and_then(|parent| {
                let key = (span.trace_id, parent);
                in_chunk
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
    for (span, role) in spans.iter().zip(roles) {
        if matches!(role, Role::Process | Role::Receive) && !waiting.consume(span, context.links) {
            outcome
                .consumptions
                .push(consumption_of(span, context.links));
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
    let mut sources: Vec<(TraceId, SpanId)> = span
        .parent_span_id
        .map(|parent| (span.trace_id, parent))
        .into_iter()
        .collect();
    if let Some(linked) = links.get(&(span.trace_id, span.span_id)) {
        sources.extend(linked.iter().copied());
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
    consumption
        .sources
        .iter()
        .any(|(_, source)| *source == item.send_span_id)
        || (same_topic
            && item.message_id.is_some()
            && consumption.message_id.as_deref() == item.message_id.as_deref())
        || (same_topic
            && item.offset.is_some()
            && consumption.partition == item.partition
            && consumption.offset == item.offset)
}

/// Where a key's waiting sends are in [`Waiting::items`]: the items of one send are
/// consecutive; a key shared by several sends (a message sent twice) lists each range.
#[derive(Debug, Clone)]
enum Ranges {
    One(usize, usize),
    Many(Vec<(usize, usize)>),
}

impl Ranges {
    fn each(&self) -> impl Iterator<Item = usize> + '_ {
        let (one, many) = match self {
            Ranges::One(start, end) => (Some(*start..*end), &[][..]),
            Ranges::Many(list) => (None, &list[..]),
        };
        one.into_iter()
            .flatten()
            .chain(many.iter().flat_map(|(start, end)| *start..*end))
    }
}

fn index<K: std::hash::Hash + Eq>(map: &mut FastMap<K, Ranges>, key: K, range: (usize, usize)) {
    match map.entry(key) {
        Entry::Vacant(slot) => {
            slot.insert(Ranges::One(range.0, range.1));
        }
        Entry::Occupied(mut slot) => {
            let ranges = slot.get_mut();
            match ranges {
                Ranges::One(start, end) => {
                    let first = (*start, *end);
                    *ranges = Ranges::Many(vec![first, range]);
                }
                Ranges::Many(list) => list.push(range),
            }
        }
    }
}

/// One send waiting, under one rule, for the groups it names (borrowed from the chunk and
/// the topology; a [`DueItem`] is made only for those still waiting at the end).
struct Pending<'a> {
    rule: &'a FlowRule,
    send: &'a RuleSpan,
    topic: &'a str,
    due_ns: i64,
    groups: Vec<&'a str>,
}

/// The chunk's own sends waiting for their groups, findable by send span, message id and
/// position (keys borrowed from the chunk's spans).
#[derive(Default)]
struct Waiting<'a> {
    items: Vec<Pending<'a>>,
    by_send: FastMap<SpanId, Ranges>,
    by_message: FastMap<(&'a str, &'a str), Ranges>,
    by_position: FastMap<(&'a str, i64, i64), Ranges>,
}

impl<'a> Waiting<'a> {
    /// Starts waiting for the groups each `incomplete_after` rule expects to process
    /// `send`'s message. A send that failed published nothing, so nobody is waited for.
    fn expect(&mut self, rules: &'a [FlowRule], send: &'a RuleSpan, expected: &'a Expected) {
        let Some(topic) = send.topic.as_deref() else {
            return;
        };
        let Some(subscribed) = expected.get(topic) else {
            return;
        };
        if send.status == StatusCode::Error {
            return;
        }
        let start = self.items.len();
        for rule in rules
            .iter()
            .filter(|r| r.kind == FlowRuleKind::IncompleteAfter)
        {
            let groups: Vec<&str> = subscribed
                .iter()
                .map(String::as_str)
                .filter(|group| {
                    rule.matches(Subject {
                        service: Some(&send.service),
                        topic: Some(topic),
                        event_type: send.event_type.as_deref(),
                        group: Some(group),
                    })
                })
                .collect();
            if groups.is_empty() {
                continue;
            }
            let grace = rule.after_ns.min(EXPORT_GRACE_NS);
            let due_ns = send
                .start_ns
                .saturating_add(rule.after_ns)
                .max(send.ingested_ns.saturating_add(grace));
            self.items.push(Pending {
                rule,
                send,
                topic,
                due_ns,
                groups,
            });
        }
        let range = (start, self.items.len());
        if range.0 == range.1 {
            return;
        }
        index(&mut self.by_send, send.span_id, range);
        if let Some(message) = send.message_id.as_deref() {
            index(&mut self.by_message, (topic, message), range);
        }
        if let (Some(partition), Some(offset)) = (send.partition, send.offset) {
            index(&mut self.by_position, (topic, partition, offset), range);
        }
    }

    /// Applies the consumption `span` (with its links) to the chunk's sends; whether it
    /// read one of their messages.
    fn consume(
        &mut self,
        span: &RuleSpan,
        links: &HashMap<(TraceId, SpanId), Vec<(TraceId, SpanId)>>,
    ) -> bool {
        if self.items.is_empty() {
            return false;
        }
        let mut read = false;
        let linked = links.get(&(span.trace_id, span.span_id));
        let sources = span
            .parent_span_id
            .into_iter()
            .chain(linked.into_iter().flatten().map(|(_, id)| *id));
        for source in sources {
            if let Some(ranges) = self.by_send.get(&source) {
                read = true;
                for at in ranges.each() {
                    take(&mut self.items[at].groups, span.consumer_group.as_deref());
                }
            }
        }
        let Some(topic) = span.topic.as_deref() else {
            return read;
        };
        if let Some(message) = span.message_id.as_deref()
            && let Some(ranges) = self.by_message.get(&(topic, message))
        {
            read = true;
            for at in ranges.each() {
                take(&mut self.items[at].groups, span.consumer_group.as_deref());
            }
        }
        if let (Some(partition), Some(offset)) = (span.partition, span.offset)
            && let Some(ranges) = self.by_position.get(&(topic, partition, offset))
        {
            read = true;
            for at in ranges.each() {
                take(&mut self.items[at].groups, span.consumer_group.as_deref());
            }
        }
        read
    }

    fn into_items(self) -> Vec<DueItem> {
        self.items
            .into_iter()
            .filter(|item| !item.groups.is_empty())
            .map(|item| DueItem {
                send_span_id: item.send.span_id,
                rule: item.rule.name.clone(),
                send_trace_id: item.send.trace_id,
                due_ns: item.due_ns,
                overdue: false,
                topic: item.topic.to_owned(),
                message_id: item.send.message_id.as_deref().map(str::to_owned),
                partition: item.send.partition,
                offset: item.send.offset,
                correlation_id: item.send.correlation_id.as_deref().map(str::to_owned),
                event_type: item.send.event_type.as_deref().map(str::to_owned),
                producer: item.send.service.to_string(),
                sent_ns: item.send.start_ns,
                groups: item.groups.into_iter().map(str::to_owned).collect(),
            })
            .collect()
    }
}

/// Takes `group` (every group, for a consumer that names none) off `groups`.
fn take(groups: &mut Vec<&str>, group: Option<&str>) {
    match group {
        Some(group) => groups.retain(|g| *g != group),
        None => groups.clear(),
    }
}

#[cfg(test)]
#[path = "evaluate_tests.rs"]
mod tests;
