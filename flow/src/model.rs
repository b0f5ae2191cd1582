//! The reconstructed flow as plain data: steps, edges, events, hops, verdicts, anomalies
//! and the critical path. Everything here serialises to the stable JSON of docs/FLOW-JSON.md.

use causeway_storage::{SpanId, SpanKind, StatusCode, TraceId};
use serde::Serialize;

/// Index of a step in [`Flow::steps`].
pub type StepIndex = usize;

/// One business flow, rebuilt from every span that shares its correlation IDs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Flow {
    /// The correlation IDs the spans carry, sorted.
    pub correlation_ids: Vec<String>,
    /// For a flow that carries no correlation ID: the trace of its first span, which names
    /// it (`causeway flow TRACE_ID` opens it). `None` when it has correlation IDs.
    pub root_trace_id: Option<TraceId>,
    /// The traces the flow spans, sorted.
    pub trace_ids: Vec<TraceId>,
    /// Earliest span start, in nanoseconds since the Unix epoch (0 for an empty flow).
    pub start_ns: i64,
    /// Latest span end, in nanoseconds since the Unix epoch (0 for an empty flow).
    pub end_ns: i64,
    /// `end_ns - start_ns`, never negative.
    pub duration_ns: i64,
    /// Overall outcome of the flow.
    pub status: FlowStatus,
    /// Services that took part, sorted.
    pub services: Vec<String>,
    /// Every span, as a step, ordered by start time (ties by trace and span id).
    pub steps: Vec<Step>,
    /// Parent/child and link edges between steps, sorted.
    pub edges: Vec<Edge>,
    /// One event per message id, ordered by publish time.
    pub events: Vec<Event>,
    /// One hop per event and consumer group that processed it.
    pub hops: Vec<Hop>,
    /// One verdict per event and subscribed (or observed) consumer group.
    pub verdicts: Vec<Verdict>,
    /// Everything unusual, each with the steps that prove it.
    pub anomalies: Vec<Anomaly>,
    /// The chain of steps and queue hops that decided the flow's end time.
    pub critical_path: CriticalPath,
    /// Services, topics and consumer groups as a graph, for dot and mermaid.
    pub graph: Graph,
}

/// The overall outcome of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowStatus {
    /// Every subscribed group processed every event and nothing failed.
    Ok,
    /// Some group has not processed some event yet (and nothing failed).
    Incomplete,
    /// Some span failed or some event was dead-lettered.
    Error,
}

/// What a step does in the messaging flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepRole {
    /// Publishes (creates or sends) a message.
    Send,
    /// Processes a message.
    Process,
    /// Fetches messages from the broker (a poll, `recv` or `receive` span): not their
    /// processing, which has spans of its own.
    Receive,
    /// Settles (acknowledges) a message.
    Settle,
    /// Any other work.
    Work,
}

/// One span of the flow.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    /// The span's trace.
    pub trace_id: TraceId,
    /// The span.
    pub span_id: SpanId,
    /// The parent span, when it is part of the flow.
    pub parent: Option<StepIndex>,
    /// Whether the span names a parent that is not among the flow's spans.
    pub missing_parent: bool,
    /// `service.name` of the span.
    pub service: String,
    /// The span's name.
    pub name: String,
    /// Span kind.
    pub kind: SpanKind,
    /// Its messaging role.
    pub role: StepRole,
    /// Start, in nanoseconds since the Unix epoch.
    pub start_ns: i64,
    /// End, in nanoseconds since the Unix epoch.
    pub end_ns: i64,
    /// Duration in nanoseconds, never negative.
    pub duration_ns: i64,
    /// Status code.
    pub status: StatusCode,
    /// Status message (empty when none).
    pub status_message: String,
    /// Correlation ID carried by the span.
    pub correlation_id: Option<String>,
    /// Message id the span sends or processes.
    pub message_id: Option<String>,
    /// Event type, such as `order.placed.v1`.
    pub event_type: Option<String>,
    /// Topic.
    pub topic: Option<String>,
    /// Consumer group.
    pub consumer_group: Option<String>,
    /// Message key.
    pub message_key: Option<String>,
    /// Partition.
    pub partition: Option<i64>,
    /// Offset.
    pub offset: Option<i64>,
}

/// How two steps are connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EdgeKind {
    /// `to` is a child of `from`.
    Parent,
    /// `to` carries a span link to `from`.
    Link,
    /// `to` processes the message `from` sent, matched by message id or by topic,
    /// partition and offset only: no trace context joins them (inferred).
    Message,
    /// `to` is a send that the service of `from` made shortly after consuming `from`'s
    /// message, with the same correlation ID or key but no trace context between them
    /// (inferred).
    Bridge,
}

/// A directed edge between two steps: cause first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Edge {
    /// The earlier, causing step.
    pub from: StepIndex,
    /// The later, caused step.
    pub to: StepIndex,
    /// What connects them.
    pub kind: EdgeKind,
}

/// One business event (one message id) and where it went.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// The message id (or a stand-in built from topic/partition/offset or span id).
    pub message_id: String,
    /// The topic it was published to.
    pub topic: Option<String>,
    /// The event type.
    pub event_type: Option<String>,
    /// The message key.
    pub message_key: Option<String>,
    /// Partition.
    pub partition: Option<i64>,
    /// Offset.
    pub offset: Option<i64>,
    /// The send step, when it was recorded.
    pub send: Option<StepIndex>,
    /// Service that published it, when known.
    pub producer: Option<String>,
    /// Publish time (send start, or first processing start when the send is missing).
    pub published_ns: i64,
}

/// What happened on one hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Processed on the first attempt.
    Processed,
    /// The last attempt failed.
    Failed,
    /// Failed at least once, then processed.
    RetriedThenProcessed,
    /// Forwarded to a dead-letter topic.
    DeadLettered,
    /// Received (a poll or receive span covers it) but its processing has no span of its
    /// own (kotel and otelsarama without a process span, .NET's `Consume`): not claimed
    /// as processed.
    Received,
    /// No processing recorded yet.
    NotSeenYet,
}

/// One event delivered to one consumer group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hop {
    /// Index of the event in [`Flow::events`].
    pub event: usize,
    /// The consumer group (or the consuming service when the span names no group).
    pub consumer_group: String,
    /// Whether `consumer_group` is a group, or a service standing in for an unnamed one.
    pub consumer_kind: ConsumerKind,
    /// The consuming service.
    pub service: String,
    /// Processing attempts, in start order.
    pub attempts: Vec<StepIndex>,
    /// Publish time: send start, in nanoseconds since the Unix epoch.
    pub published_ns: i64,
    /// Publish duration (the send span), when the send is recorded.
    pub publish_ns: Option<i64>,
    /// Consumer start minus producer end (may be negative under clock skew).
    pub queue_wait_ns: Option<i64>,
    /// Queue wait the consumer measured against the Kafka message timestamp
    /// (`causeway.queue_time_ms` on the first attempt), when recorded.
    pub message_queue_wait_ns: Option<i64>,
    /// Whether the clocks disagree: a negative queue wait from the spans, or from the
    /// message timestamp.
    pub clock_skew: bool,
    /// Time spent processing, summed over attempts.
    pub processing_ns: i64,
    /// Retries: attempts beyond the first, or the recorded retry count if larger.
    pub retries: u32,
    /// Time between attempts (retry back-off).
    pub backoff_ns: i64,
    /// The hop's outcome.
    pub outcome: Outcome,
    /// The dead-letter forward, when there is one.
    pub dead_letter: Option<StepIndex>,
}

/// What a hop's or verdict's consumer names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsumerKind {
    /// A consumer group, as the spans named it.
    Group,
    /// The consuming service: its spans name no group (Python's and kafkajs'
    /// instrumentations record none), so verdicts are per service.
    Service,
}

/// The completeness verdict for one event and one group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// Index of the event in [`Flow::events`].
    pub event: usize,
    /// The consumer group (or the consuming service when the spans name no group).
    pub consumer_group: String,
    /// Whether `consumer_group` is a group, or a service standing in for an unnamed one.
    pub consumer_kind: ConsumerKind,
    /// The hop, when the group processed (or tried) the event.
    pub hop: Option<usize>,
    /// The verdict.
    pub outcome: Outcome,
}

/// The kinds of anomaly causeway names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyKind {
    /// A span ended in error.
    Error,
    /// One group processed one message id successfully more than once.
    DuplicateDelivery,
    /// One group received one message id again without an in-process retry.
    Redelivery,
    /// A message was forwarded to a dead-letter topic.
    DeadLetter,
    /// A saga undo step (an event type matching a compensation pattern).
    Compensation,
    /// Messages with one key were processed in another order than published.
    OutOfOrder,
    /// Trace context or the correlation ID was lost on the way.
    PropagationBreak,
    /// The schema version of one event type changed along the flow.
    SchemaChange,
    /// A consumer started before its producer ended.
    ClockSkew,
    /// A subscribed group has not processed an event.
    Missing,
}

/// Whether an anomaly is a fault (something went wrong for this flow) or a fact (worth a
/// badge, not a page).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyClass {
    /// Something went wrong for this flow: an error nobody recovered from, a dead letter, a
    /// compensation, a missing group, a lost trace context, a duplicate processing, an
    /// out-of-order processing, a schema version a consumer could not take.
    Fault,
    /// Worth knowing, nothing went wrong: a schema version seen, a retry that then
    /// succeeded, a redelivery that was not processed twice, clock skew.
    Fact,
}

/// Something unusual, with the steps that prove it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Anomaly {
    /// What it is.
    pub kind: AnomalyKind,
    /// Whether it is a fault or a fact.
    pub class: AnomalyClass,
    /// One line saying what happened (unsanitised: renderers clean it).
    pub detail: String,
    /// The steps that prove it.
    pub steps: Vec<StepIndex>,
}

impl Anomaly {
    /// Whether it is a fault.
    pub fn is_fault(&self) -> bool {
        self.class == AnomalyClass::Fault
    }
}

/// What a stretch of the critical path was spent on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SegmentKind {
    /// Sending a message.
    Publish,
    /// Waiting in the topic for a consumer.
    QueueWait,
    /// Processing (or any other work).
    Processing,
    /// Waiting between retry attempts.
    Backoff,
}

/// One stretch of the critical path.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Segment {
    /// What the time went to.
    pub kind: SegmentKind,
    /// The step doing the work (for queue waits: the consuming step).
    pub step: StepIndex,
    /// Start, in nanoseconds since the Unix epoch.
    pub start_ns: i64,
    /// Duration in nanoseconds, never negative.
    pub duration_ns: i64,
}

/// Total time per segment kind on the critical path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Shares {
    /// Time sending.
    pub publish_ns: i64,
    /// Time waiting in topics.
    pub queue_wait_ns: i64,
    /// Time processing.
    pub processing_ns: i64,
    /// Time backing off between retries.
    pub backoff_ns: i64,
}

impl Shares {
    /// Sum of all kinds.
    pub fn total_ns(&self) -> i64 {
        self.publish_ns + self.queue_wait_ns + self.processing_ns + self.backoff_ns
    }

    /// The fraction (0 to 1) of the total spent on `kind`.
    pub fn fraction(&self, kind: SegmentKind) -> f64 {
        let total = self.total_ns();
        if total <= 0 {
            return 0.0;
        }
        let part = match kind {
            SegmentKind::Publish => self.publish_ns,
            SegmentKind::QueueWait => self.queue_wait_ns,
            SegmentKind::Processing => self.processing_ns,
            SegmentKind::Backoff => self.backoff_ns,
        };
        part as f64 / total as f64
    }
}

/// The critical path from the first event to the last, oldest segment first.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CriticalPath {
    /// The segments, in time order.
    pub segments: Vec<Segment>,
    /// Time per kind.
    pub shares: Shares,
}

/// What a graph node stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    /// A service.
    Service,
    /// A topic.
    Topic,
    /// A consumer group.
    ConsumerGroup,
}

/// A service, topic or consumer group.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Node {
    /// What it is.
    pub kind: NodeKind,
    /// Its name.
    pub name: String,
}

/// A graph edge: service publishes to topic, topic delivers to group, group runs in service.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct GraphEdge {
    /// Index of the source node.
    pub from: usize,
    /// Index of the target node.
    pub to: usize,
    /// Messages that crossed the edge.
    pub messages: usize,
    /// Whether any of those messages failed or went missing on this edge.
    pub failed: bool,
}

/// Services, topics and groups, and how messages moved between them.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Graph {
    /// Nodes, sorted by kind then name.
    pub nodes: Vec<Node>,
    /// Edges, sorted.
    pub edges: Vec<GraphEdge>,
}
