//! The plain data the dashboard shows: rows of the flows list, lag and alert rows. The
//! data module fills them from the store; views draw them.

use causeway_storage::SpanRecord;

use causeway_conventions::LagState;
use causeway_flow::{AnomalyKind, Flow};

/// One row of the flows list: one business correlation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowRow {
    /// The correlation ID.
    pub correlation_id: String,
    /// Start of the first span, in nanoseconds since the Unix epoch.
    pub start_ns: i64,
    /// From the first start to the last end, in nanoseconds.
    pub duration_ns: i64,
    /// The services that took part, sorted.
    pub services: Vec<String>,
    /// Number of distinct events (messages) seen.
    pub events: i64,
    /// Whether any span ended in error.
    pub has_error: bool,
    /// Short names of the flow's faults, such as `dlq` or `dup`.
    pub badges: Vec<String>,
    /// Short names of the flow's facts (worth knowing, nothing went wrong), such as
    /// `schema` or `skew`.
    pub facts: Vec<String>,
}

/// The spans of one flow as loaded: by correlation ID or, when following a link, by trace.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowSpans {
    /// The correlation ID or trace ID asked for.
    pub id: String,
    /// The spans, oldest first.
    pub spans: Vec<SpanRecord>,
    /// The flow rebuilt from the spans (off the draw loop, by the data task).
    pub flow: Flow,
    /// Whether the load stopped at its span limit.
    pub truncated: bool,
}

/// A consumer group's lag, latest sample.
#[derive(Debug, Clone, PartialEq)]
pub struct LagRow {
    /// The consumer group.
    pub group: String,
    /// The topic.
    pub topic: String,
    /// The group's state on this topic: the worst of its partitions'.
    pub state: LagState,
    /// Messages behind the high watermark, summed over partitions.
    pub lag_messages: i64,
    /// Age of the oldest waiting message, in seconds.
    pub lag_seconds: f64,
    /// Recent lag in messages, oldest first, for the sparkline.
    pub trend: Vec<u64>,
    /// Lag per partition: (partition, messages behind).
    pub partitions: Vec<(i64, i64)>,
    /// Correlation ID of the oldest waiting event, when known.
    pub oldest_correlation: Option<String>,
}

/// One alert, firing or resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRow {
    /// Whether the alert is still active (pending or firing).
    pub firing: bool,
    /// Whether it is pending: its condition holds, but not yet for the rule's `for`.
    pub pending: bool,
    /// The rule's name.
    pub rule: String,
    /// The consumer group the alert is about, if any.
    pub group: Option<String>,
    /// What the rule saw.
    pub evidence: String,
    /// The flow the alert names (the oldest waiting event, or a flow rule's first flow), if
    /// any.
    pub correlation_id: Option<String>,
    /// When it started firing, in nanoseconds since the Unix epoch.
    pub started_ns: i64,
    /// When it resolved, if it has.
    pub resolved_ns: Option<i64>,
}

/// A short badge for an anomaly kind, as the flows list and the flow view show it: faults
/// in brackets (`[dlq]`), facts in parentheses (`(schema)`).
pub fn badge(kind: AnomalyKind) -> &'static str {
    match kind {
        AnomalyKind::Error => "err",
        AnomalyKind::DuplicateDelivery => "dup",
        AnomalyKind::Redelivery => "redeliv",
        AnomalyKind::DeadLetter => "dlq",
        AnomalyKind::Compensation => "comp",
        AnomalyKind::OutOfOrder => "order",
        AnomalyKind::PropagationBreak => "ctx-lost",
        AnomalyKind::SchemaChange => "schema",
        AnomalyKind::ClockSkew => "skew",
        AnomalyKind::Missing => "missing",
    }
}
