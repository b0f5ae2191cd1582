//! Span event names causeway writes and reads.

/// Recorded on a process span when the trace context of the consumed message is unusable.
pub const PROPAGATION_BREAK: &str = "causeway.propagation.break";
/// Recorded on a process span before each retry of a handler.
pub const RETRY: &str = "causeway.retry";
/// A handler error: OpenTelemetry's exception event.
pub const EXCEPTION: &str = "exception";
