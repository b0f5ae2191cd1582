//! causeway-conventions: every name that crosses a causeway crate or the wire, each a
//! documented constant, in the role `opentelemetry-semantic-conventions` plays for
//! OpenTelemetry. No dependencies: storage, the collector, the flow model, the dashboard,
//! the instrumentation crate and the demo all read their names from here.
//!
//! - [`header`]: Kafka message headers (W3C Trace Context, baggage, correlation IDs,
//!   CloudEvents, dead-letter provenance).
//! - [`attribute`]: span attribute keys and values causeway writes or reads first.
//! - [`event`]: span event names.
//! - [`messaging`]: every generation of the messaging keys, newest first, and the
//!   default correlation keys.
//! - [`metric`]: metric names and their data point attributes.
//! - [`alert`]: alert label and annotation keys.
//! - [`glob_match`]: the one `*` pattern syntax of configuration and command line, and
//!   the default dead-letter topic and compensation event type patterns.
//! - [`LagState`]: the states of a consumer group on a partition, with their order and
//!   their one text form.

pub mod alert;
pub mod attribute;
pub mod event;
pub mod header;
mod lag_state;
pub mod messaging;
pub mod metric;
mod pattern;

pub use lag_state::{LagState, UnknownLagState};
pub use pattern::{DEFAULT_COMPENSATION_EVENT_TYPES, DEFAULT_DEAD_LETTER_TOPICS, glob_match};

/// Instrumentation scope name of the tracers and meters `causeway-instrumentation` creates.
pub const INSTRUMENTATION_SCOPE: &str = "causeway-instrumentation";
