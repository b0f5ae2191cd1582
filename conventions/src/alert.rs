//! Alert label and annotation keys: what the collector stores and sends to hooks, and what
//! `causeway alerts` and the dashboard read back. Labels identify an alert (they make its
//! fingerprint); annotations describe it.

/// Label keys.
pub mod label {
    /// The alert's name: the rule that raised it (Alertmanager's `alertname`).
    pub const ALERT_NAME: &str = "alertname";
    /// The consumer group an alert is about.
    pub const CONSUMER_GROUP: &str = "consumer_group";
    /// The rule's severity.
    pub const SEVERITY: &str = "severity";
    /// On a flow alert: the kind of its flow rule (`dead_letter`, `error`, `compensation`,
    /// `incomplete_after`, `propagation_break`). Lag alerts do not carry it.
    pub const FLOW_KIND: &str = "flow_kind";
    /// The service a flow alert is about.
    pub const SERVICE: &str = "service";
    /// The topic a flow alert is about.
    pub const TOPIC: &str = "topic";
}

/// Annotation keys.
pub mod annotation {
    /// One line for humans.
    pub const SUMMARY: &str = "summary";
    /// The group's lag state, in its text form (`crate::LagState::name`).
    pub const STATE: &str = "state";
    /// Total lag in messages.
    pub const LAG_MESSAGES: &str = "lag_messages";
    /// Age of the oldest waiting message, in seconds.
    pub const LAG_SECONDS: &str = "lag_seconds";
    /// Estimated seconds to catch up.
    pub const CATCH_UP_SECONDS: &str = "catch_up_seconds";
    /// Topic of the oldest waiting message.
    pub const WAITING_TOPIC: &str = "oldest_waiting_topic";
    /// Partition of the oldest waiting message.
    pub const WAITING_PARTITION: &str = "oldest_waiting_partition";
    /// Offset of the oldest waiting message.
    pub const WAITING_OFFSET: &str = "oldest_waiting_offset";
    /// Correlation ID of the oldest waiting message, when a send span recorded it.
    pub const WAITING_CORRELATION_ID: &str = "oldest_waiting_correlation_id";
    /// Trace ID of the oldest waiting message's send span.
    pub const WAITING_TRACE_ID: &str = "oldest_waiting_trace_id";
    /// On a flow alert: how many times its rule matched in this episode (for
    /// `incomplete_after`: how many events are overdue now).
    pub const COUNT: &str = "count";
    /// On a flow alert: the first few flows it names, comma-separated: correlation IDs, or
    /// trace IDs for flows that carry none.
    pub const FLOW_IDS: &str = "flow_ids";
    /// On a flow alert: the `causeway flow ID` command for each of [`FLOW_IDS`], one per
    /// line.
    pub const FLOW_COMMANDS: &str = "flow_commands";
}
