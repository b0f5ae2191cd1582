//! The one loader from an ID to the spans of its flow, used by `causeway flow`, the
//! dashboard and every other reader, so the same ID opens the same flow everywhere.
//!
//! An ID is a trace ID (32 hex digits) or a correlation ID. A trace ID opens the flows of
//! every correlation its spans carry, stitched into one; a trace that carries none opens
//! the flow it belongs to without one (named by its first producer's trace). Anything
//! else, or a trace ID no span has, is looked up as a correlation ID.
//!
//! A flow is more than the traces that carry its correlation ID. Standard instrumentations
//! start a consumer's spans in a trace of their own, joined to the producer by a link
//! (Python's confluent-kafka, kafkajs `eachBatch`, .NET), or not at all (a service without
//! a propagator, or one that ends the consume span before its code runs). So the loader
//! follows, a bounded number of rounds:
//! - links in both directions: those the flow's spans recorded, and those other spans
//!   recorded into the flow's traces (from the consumer's side);
//! - message positions: consumers without a parent at the (topic, partition, offset) a
//!   send of the flow recorded, and sends at the position a consumer of the flow read.
//!
//! From a trace reached that way it takes only what is causally joined to the flow: the
//! span that links (or sits at the position), its ancestors and its descendants, never a
//! sibling (the other messages of a batch are other flows) and never a span that carries
//! another correlation ID.

use std::collections::{BTreeSet, HashMap, HashSet};

use causeway_storage::{
    CorrelationRow, LinkRef, Position, SpanId, SpanRecord, StorageError, Store, TraceId,
};

use crate::{Flow, FlowOptions, Topology, reconstruct};

/// Most spans read for one flow.
pub const FLOW_SPAN_LIMIT: i64 = 20_000;
/// Most rounds of following links and positions out of a flow.
const MAX_ROUNDS: usize = 8;
/// Most traces one flow is stitched from.
const MAX_TRACES: usize = 256;
/// Most message positions looked up per round.
const MAX_POSITIONS: usize = 256;

/// What a flow is keyed by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlowKey {
    /// The spans carrying any of these correlation IDs, and what they join.
    Correlations(Vec<String>),
    /// A flow without a correlation ID, from the spans of this trace.
    Root(TraceId),
    /// The flow of these traces (whole), found by an attribute the collector did not read
    /// as a correlation ID.
    Traces(Vec<TraceId>),
}

/// The spans of one flow, as read for an ID.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowSpans {
    /// The ID they were read for, as given.
    pub id: String,
    /// The spans, oldest first.
    pub spans: Vec<SpanRecord>,
    /// Whether [`FLOW_SPAN_LIMIT`] (or the bound on traces) cut the flow short.
    pub truncated: bool,
}

/// Reads the spans of the flow `id` names; `None` when no span matches it.
pub async fn load_spans(store: &Store, id: &str) -> Result<Option<FlowSpans>, StorageError> {
    if let Ok(trace_id) = id.parse::<TraceId>() {
        let correlations = store.correlations_of_trace(trace_id).await?;
        let key = if correlations.is_empty() {
            FlowKey::Root(trace_id)
        } else {
            FlowKey::Correlations(correlations)
        };
        let found = load_key(store, id, &key).await?;
        if !found.spans.is_empty() {
            return Ok(Some(found));
        }
    }
    let found = load_key(store, id, &FlowKey::Correlations(vec![id.to_owned()])).await?;
    Ok((!found.spans.is_empty()).then_some(found))
}

/// Reads the spans of the flow `key` names, for the ID `id` (kept as given).
pub async fn load_key(store: &Store, id: &str, key: &FlowKey) -> Result<FlowSpans, StorageError> {
    let (first, allowed) = match key {
        FlowKey::Correlations(ids) => (
            store.flow_spans(ids, FLOW_SPAN_LIMIT).await?,
            ids.iter().cloned().collect(),
        ),
        FlowKey::Root(trace) => (
            store.spans_by_trace(*trace, FLOW_SPAN_LIMIT).await?,
            HashSet::new(),
        ),
        FlowKey::Traces(traces) => (
            store.spans_of_traces(traces, FLOW_SPAN_LIMIT).await?,
            HashSet::new(),
        ),
    };
    let mut closure = Closure::new(allowed);
    match key {
        FlowKey::Correlations(_) => closure.add_own(first),
        FlowKey::Root(_) | FlowKey::Traces(_) => closure.add_whole(first),
    }
    let mut truncated = closure.spans.len() >= limit();
    let mut frontier: BTreeSet<TraceId> = closure.traces.clone();
    for _ in 0..MAX_ROUNDS {
        if frontier.is_empty() || truncated {
            break;
        }
        let anchors = closure.anchors(store, &frontier).await?;
        let unread: Vec<TraceId> = anchors
            .keys()
            .copied()
            .filter(|trace| !closure.read.contains_key(trace))
            .collect();
        let room_for = MAX_TRACES.saturating_sub(closure.read.len());
        truncated |= unread.len() > room_for;
        let unread = &unread[..unread.len().min(room_for)];
        if !unread.is_empty() {
            let room = FLOW_SPAN_LIMIT - i64::try_from(closure.spans.len()).unwrap_or(i64::MAX);
            // The links into these traces are what the next round asks first: read them
            // beside the spans instead of after.
            let (loaded, links) = futures::future::try_join(
                store.spans_of_traces(unread, room.max(1)),
                store.links_into_traces(unread, FLOW_SPAN_LIMIT),
            )
            .await?;
            closure.remember(unread, loaded);
            closure.remember_links_into(unread, links);
        }
        frontier = closure.add_joined(&anchors);
        truncated |= closure.spans.len() >= limit();
    }
    let mut spans = closure.spans;
    spans.sort_by_key(|span| (span.start_ns, span.trace_id, span.span_id));
    Ok(FlowSpans {
        id: id.to_owned(),
        spans,
        truncated,
    })
}

/// Reads the flow of one row of the flows list (`Store::recent_flows`). `None` for a row
/// without a correlation ID whose trace is not the flow's first: the flow reached from it
/// starts in another trace (it is listed there) or carries a correlation ID (it is listed
/// under that).
pub async fn load_listed(
    store: &Store,
    row: &CorrelationRow,
) -> Result<Option<FlowSpans>, StorageError> {
    if !row.root {
        let key = FlowKey::Correlations(vec![row.correlation_id.clone()]);
        return Ok(Some(load_key(store, &row.correlation_id, &key).await?));
    }
    let Ok(trace) = row.correlation_id.parse::<TraceId>() else {
        return Ok(None);
    };
    let found = load_key(store, &row.correlation_id, &FlowKey::Root(trace)).await?;
    let correlated = found
        .spans
        .iter()
        .any(|span| span.messaging.correlation_id.is_some());
    let first_trace = found.spans.first().map(|span| span.trace_id);
    Ok((!correlated && first_trace == Some(trace)).then_some(found))
}

fn limit() -> usize {
    usize::try_from(FLOW_SPAN_LIMIT).unwrap_or(usize::MAX)
}

/// The spans gathered so far.
struct Closure {
    /// Correlation IDs of the flow: a span carrying another one is a boundary.
    allowed: HashSet<String>,
    spans: Vec<SpanRecord>,
    ids: HashSet<(TraceId, SpanId)>,
    /// Traces read so far (whole or in part).
    traces: BTreeSet<TraceId>,
    /// The traces the flow was read from first (its own).
    own: BTreeSet<TraceId>,
    /// Every admitted span of every trace read, joined to the flow or not yet.
    read: HashMap<TraceId, Vec<SpanRecord>>,
    /// Message positions already looked up: the consumers of a send record the send's
    /// position, so the round after them would ask for the same ones again.
    positions_done: HashSet<Position>,
    /// The links other spans recorded into traces read so far, per trace, read beside
    /// the trace's spans.
    links_into: HashMap<TraceId, Vec<LinkRef>>,
}

/// Per trace reached from the flow, the spans of it that join the flow.
type Anchors = HashMap<TraceId, HashSet<SpanId>>;

impl Closure {
    fn new(allowed: HashSet<String>) -> Self {
        Closure {
            allowed,
            spans: Vec::new(),
            ids: HashSet::new(),
            traces: BTreeSet::new(),
            own: BTreeSet::new(),
            read: HashMap::new(),
            positions_done: HashSet::new(),
            links_into: HashMap::new(),
        }
    }

    /// Keeps `links`, the links into `traces`, for the round that reaches those traces.
    fn remember_links_into(&mut self, traces: &[TraceId], links: Vec<LinkRef>) {
        for trace in traces {
            self.links_into.entry(*trace).or_default();
        }
        for link in links {
            self.links_into.entry(link.to_trace).or_default().push(link);
        }
    }

    /// Keeps the admitted spans of `traces` (read whole) for joining later.
    fn remember(&mut self, traces: &[TraceId], spans: Vec<SpanRecord>) {
        for trace in traces {
            self.read.entry(*trace).or_default();
        }
        for span in spans {
            if self.admits(&span) {
                self.read.entry(span.trace_id).or_default().push(span);
            }
        }
    }

    /// Whether `span` may join: no correlation ID, or one of the flow's.
    fn admits(&self, span: &SpanRecord) -> bool {
        admits(&self.allowed, span)
    }

    fn push(&mut self, span: SpanRecord) {
        if self.ids.insert((span.trace_id, span.span_id)) {
            self.traces.insert(span.trace_id);
            self.spans.push(span);
        }
    }

    /// Adds, from the traces that carry the flow's correlation IDs, the spans that carry
    /// them and the uncorrelated spans joined to those (ancestors and descendants): not
    /// the siblings, which in a trace shared by several flows (a batch poll whose
    /// processing re-publishes) belong to the others.
    fn add_own(&mut self, spans: Vec<SpanRecord>) {
        // Each trace once: the spans of one trace are joined in one pass over it.
        let traces = distinct_traces(&spans);
        self.remember(&traces, spans);
        for trace in traces {
            let Some(spans) = self.read.get_mut(&trace) else {
                continue;
            };
            let starts: Vec<usize> = spans
                .iter()
                .enumerate()
                .filter(|(_, span)| span.messaging.correlation_id.is_some())
                .map(|(index, _)| index)
                .collect();
            let allowed = &self.allowed;
            let picked = joined(spans, &starts, |span| admits(allowed, span));
            // The joined spans move into the flow; the rest stay for later rounds. What
            // stays holds no descendant of a joined span (those were joined with it), so
            // joining from it later finds the same spans as from the whole trace.
            let (joined_spans, rest): (Vec<_>, Vec<_>) = std::mem::take(spans)
                .into_iter()
                .enumerate()
                .partition(|(index, _)| picked.contains(index));
            *spans = rest.into_iter().map(|(_, span)| span).collect();
            for (_, span) in joined_spans {
                self.own.insert(span.trace_id);
                self.push(span);
            }
        }
    }

    /// Adds every span of the flow's own trace (a flow without a correlation ID).
    fn add_whole(&mut self, spans: Vec<SpanRecord>) {
        let traces = distinct_traces(&spans);
        self.remember(&traces, spans);
        let picked: Vec<SpanRecord> = self.read.values().flatten().cloned().collect();
        for span in picked {
            self.own.insert(span.trace_id);
            self.push(span);
        }
    }

    /// The spans outside the flow that it reaches from `frontier` (traces read last round)
    /// and from its own spans: by links either way and by message positions.
    async fn anchors(
        &mut self,
        store: &Store,
        frontier: &BTreeSet<TraceId>,
    ) -> Result<Anchors, StorageError> {
        let mut anchors = Anchors::new();
        let unknown: Vec<TraceId> = frontier
            .iter()
            .filter(|trace| !self.links_into.contains_key(trace))
            .copied()
            .collect();
        let mut links: Vec<LinkRef> = if unknown.is_empty() {
            Vec::new()
        } else {
            store.links_into_traces(&unknown, FLOW_SPAN_LIMIT).await?
        };
        for trace in frontier {
            links.extend(self.links_into.get(trace).into_iter().flatten().copied());
        }
        for link in links {
            let into_flow = self.ids.contains(&(link.to_trace, link.to_span));
            if into_flow && !self.ids.contains(&(link.from_trace, link.from_span)) {
                anchors
                    .entry(link.from_trace)
                    .or_default()
                    .insert(link.from_span);
            }
        }
        let mut positions: Vec<Position> = Vec::new();
        for span in self
            .spans
            .iter()
            .filter(|span| frontier.contains(&span.trace_id))
        {
            // A span reached from elsewhere that links to several messages (a batch) joins
            // this flow through one of them; the others are other flows.
            let batch_elsewhere = span.links.len() > 1 && !self.own.contains(&span.trace_id);
            for link in span.links.iter().filter(|_| !batch_elsewhere) {
                if !self.ids.contains(&(link.trace_id, link.span_id)) {
                    anchors
                        .entry(link.trace_id)
                        .or_default()
                        .insert(link.span_id);
                }
            }
            let messaging = &span.messaging;
            if let (Some(topic), Some(partition), Some(offset)) = (
                &messaging.destination,
                messaging.partition,
                messaging.offset,
            ) && positions.len() < MAX_POSITIONS
            {
                let position = (topic.clone(), partition, offset);
                if !self.positions_done.contains(&position) {
                    positions.push(position);
                }
            }
        }
        positions.sort();
        positions.dedup();
        self.positions_done.extend(positions.iter().cloned());
        if !positions.is_empty() {
            for trace in store
                .traces_at_positions(&positions, FLOW_SPAN_LIMIT)
                .await?
            {
                // The spans of that trace at one of the positions are picked once it is read.
                anchors.entry(trace).or_default();
            }
        }
        Ok(anchors)
    }

    /// Adds, from the traces `anchors` reach (read by now), what joins the flow: the
    /// anchors and the spans at a position of the flow, their ancestors and descendants.
    /// Returns the traces that gained spans.
    fn add_joined(&mut self, anchors: &Anchors) -> BTreeSet<TraceId> {
        let flow_positions: HashSet<(String, i64, i64)> = self
            .spans
            .iter()
            .filter_map(|span| {
                let m = &span.messaging;
                Some((m.destination.clone()?, m.partition?, m.offset?))
            })
            .collect();
        let keys: HashSet<String> = self
            .spans
            .iter()
            .filter_map(|span| span.messaging.message_key.clone())
            .collect();
        let mut picked = Vec::new();
        for (trace, linked) in anchors {
            let Some(spans) = self.read.get(trace) else {
                continue;
            };
            let starts: Vec<usize> = spans
                .iter()
                .enumerate()
                .filter(|(_, span)| {
                    let m = &span.messaging;
                    let at_position = match (&m.destination, m.partition, m.offset) {
                        (Some(topic), Some(partition), Some(offset)) => {
                            flow_positions.contains(&(topic.clone(), partition, offset))
                        }
                        _ => false,
                    };
                    linked.contains(&span.span_id) || at_position
                })
                .map(|(index, _)| index)
                .collect();
            // Under a span that consumed a batch, a send belongs to this flow only when its
            // key is one of the flow's (a batch listener re-publishes every record).
            let batch = starts.iter().any(|&start| spans[start].links.len() > 1);
            let admits = |span: &SpanRecord| {
                self.admits(span)
                    && (!batch
                        || keys.is_empty()
                        || span
                            .messaging
                            .message_key
                            .as_ref()
                            .is_none_or(|key| keys.contains(key)))
            };
            for index in joined(spans, &starts, admits) {
                if !self
                    .ids
                    .contains(&(spans[index].trace_id, spans[index].span_id))
                {
                    picked.push(spans[index].clone());
                }
            }
        }
        let grown: BTreeSet<TraceId> = picked.iter().map(|span| span.trace_id).collect();
        for span in picked {
            self.push(span);
        }
        grown
    }
}

/// Whether `span` may join a flow of the correlation IDs `allowed`: it carries none, or one
/// of them.
fn admits(allowed: &HashSet<String>, span: &SpanRecord) -> bool {
    span.messaging
        .correlation_id
        .as_ref()
        .is_none_or(|id| allowed.contains(id))
}

/// The traces of `spans`, each once, in order.
fn distinct_traces(spans: &[SpanRecord]) -> Vec<TraceId> {
    spans
        .iter()
        .map(|span| span.trace_id)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// The spans of one trace joined to `starts`: the starts, their ancestors (parent chain)
/// and their descendants, walking only through spans `admits` lets in.
fn joined(
    spans: &[SpanRecord],
    starts: &[usize],
    admits: impl Fn(&SpanRecord) -> bool,
) -> BTreeSet<usize> {
    let by_id: HashMap<SpanId, usize> = spans
        .iter()
        .enumerate()
        .map(|(index, span)| (span.span_id, index))
        .collect();
    let mut children: HashMap<usize, Vec<usize>> = HashMap::new();
    for (index, span) in spans.iter().enumerate() {
        if let Some(parent) = span.parent_span_id.and_then(|p| by_id.get(&p)) {
            children.entry(*parent).or_default().push(index);
        }
    }
    let mut kept = BTreeSet::new();
    for &start in starts {
        if !admits(&spans[start]) {
            continue;
        }
        // Ancestors: up the parent chain, stopping at a span of another flow.
        let mut cursor = Some(start);
        while let Some(index) = cursor {
            if !admits(&spans[index]) || !kept.insert(index) && index != start {
                break;
            }
            cursor = spans[index]
                .parent_span_id
                .and_then(|p| by_id.get(&p).copied());
        }
        // Descendants.
        let mut stack = vec![start];
        while let Some(index) = stack.pop() {
            for &child in children.get(&index).into_iter().flatten() {
                if admits(&spans[child]) && kept.insert(child) {
                    stack.push(child);
                }
            }
        }
    }
    kept
}

/// The consumer groups expected on each topic, learnt from stored traffic.
pub async fn load_topology(store: &Store) -> Result<Topology, StorageError> {
    Ok(Topology::from_pairs(store.topology().await?))
}

/// Most recent spans scanned for a correlation ID under `--correlation-key`.
pub const ATTRIBUTE_SCAN_SPANS: i64 = 200_000;

/// [`load_spans`], then, when nothing matches and `options` names correlation keys the
/// collector did not read (`--correlation-key`), the traces of the newest
/// [`ATTRIBUTE_SCAN_SPANS`] spans whose attribute under one of them is `id`.
pub async fn load_spans_with(
    store: &Store,
    id: &str,
    options: &FlowOptions,
) -> Result<Option<FlowSpans>, StorageError> {
    if let Some(found) = load_spans(store, id).await? {
        return Ok(Some(found));
    }
    if options.correlation_keys.is_empty() {
        return Ok(None);
    }
    let traces = store
        .traces_with_attribute(&options.correlation_keys, id, ATTRIBUTE_SCAN_SPANS)
        .await?;
    if traces.is_empty() {
        return Ok(None);
    }
    let found = load_key(store, id, &FlowKey::Traces(traces)).await?;
    Ok((!found.spans.is_empty()).then_some(found))
}

/// Reads and rebuilds the flow `id` names with `options`; `None` when no span matches it.
pub async fn load_flow(
    store: &Store,
    id: &str,
    options: &FlowOptions,
) -> Result<Option<(FlowSpans, Flow)>, StorageError> {
    let Some(spans) = load_spans_with(store, id, options).await? else {
        return Ok(None);
    };
    let topology = load_topology(store).await?;
    let flow = reconstruct(&spans.spans, &topology, options);
    Ok(Some((spans, flow)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use causeway_storage::testsuite;

    fn span(trace: u8, id: u8) -> testsuite::SpanBuilder {
        testsuite::span(TraceId([trace; 16]), SpanId([id; 8]))
    }

    #[test]
    fn a_trace_reached_by_a_link_gives_its_joined_spans_only() {
        // A batch poll root (1) with two process children: 2 links into the flow, 3 into
        // another; 2 has a child 4. Sibling 3 is another message's.
        let spans = vec![
            span(9, 1).name("poll orders").build(),
            span(9, 2).parent(SpanId([1; 8])).build(),
            span(9, 3).parent(SpanId([1; 8])).build(),
            span(9, 4).parent(SpanId([2; 8])).build(),
        ];
        let kept = joined(&spans, &[1], |_| true);
        assert_eq!(
            kept,
            BTreeSet::from([0, 1, 3]),
            "the anchor, its parent and its child"
        );
    }

    #[test]
    fn spans_of_another_flow_are_a_boundary() {
        let spans = vec![
            span(9, 1).correlation("ord-2").build(),
            span(9, 2).parent(SpanId([1; 8])).build(),
            span(9, 3)
                .parent(SpanId([2; 8]))
                .correlation("ord-2")
                .build(),
        ];
        let kept = joined(&spans, &[1], |span| {
            span.messaging.correlation_id.as_deref() != Some("ord-2")
        });
        assert_eq!(
            kept,
            BTreeSet::from([1]),
            "neither the parent nor the child of ord-2"
        );
    }

    #[test]
    fn a_parent_cycle_ends() {
        let spans = vec![
            span(9, 1).parent(SpanId([2; 8])).build(),
            span(9, 2).parent(SpanId([1; 8])).build(),
        ];
        assert_eq!(joined(&spans, &[0], |_| true), BTreeSet::from([0, 1]));
    }
}
