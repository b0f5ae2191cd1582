//! causeway-flow: event flows from spans, with no terminal code.
//!
//! The read path: an ID (correlation or trace) → [`loader`] (the one place that turns an
//! ID into spans, used by the commands and the dashboard alike) → [`reconstruct`] (pure:
//! steps, edges, events, hops, verdicts, anomalies, critical path) → a renderer
//! ([`render`]: text, JSON, dot, mermaid) or the dashboard's views. [`sanitize`] and
//! [`duration`] are the one terminal sanitiser and the one duration formatter.

mod anomaly;
mod critical_path;
pub mod duration;
mod graph;
mod hops;
pub mod loader;
mod model;
mod options;
mod reconstruct;
pub mod render;
pub mod sanitize;
mod summary;
#[cfg(test)]
mod tests;

pub use anomaly::{Circumstances, classify};
pub use loader::{
    ATTRIBUTE_SCAN_SPANS, FLOW_SPAN_LIMIT, FlowKey, FlowSpans, load_flow, load_key, load_listed,
    load_spans, load_spans_with, load_topology,
};
pub use model::{
    Anomaly, AnomalyClass, AnomalyKind, ConsumerKind, CriticalPath, Edge, EdgeKind, Event, Flow,
    FlowStatus, Graph, GraphEdge, Hop, Node, NodeKind, Outcome, Segment, SegmentKind, Shares, Step,
    StepIndex, StepRole, Verdict,
};
pub use options::{FlowOptions, Topology, glob_match};
pub use reconstruct::reconstruct;
pub use summary::{FlowFilter, FlowSummary, parse_attribute_filter};
