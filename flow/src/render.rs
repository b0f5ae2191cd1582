//! Renderers of a reconstructed flow: a readable text tree, the stable JSON document of
//! docs/FLOW-JSON.md, and Graphviz dot and Mermaid graphs of services, topics and groups.
//!
//! Every string that came from a span is cleaned (`crate::sanitize`) before it reaches
//! text, dot or mermaid output: control characters, terminal escape sequences and
//! invisible characters never pass through.

mod graphs;
mod json;
mod text;

use crate::Flow;
pub(crate) use crate::duration::human_duration;
pub(crate) use crate::sanitize::clean;

pub use graphs::{dot, mermaid};
pub use json::{FLOW_JSON_SCHEMA, json};
pub use text::text;

/// The output formats of `causeway flow`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// A readable tree with timings and anomaly markers.
    #[default]
    Text,
    /// One JSON document (docs/FLOW-JSON.md).
    Json,
    /// Graphviz dot.
    Dot,
    /// Mermaid flowchart.
    Mermaid,
}

/// Renders `flow` in `format`. The output ends with a newline.
pub fn render(flow: &Flow, format: Format) -> String {
    match format {
        Format::Text => text(flow),
        Format::Json => json(flow),
        Format::Dot => dot(flow),
        Format::Mermaid => mermaid(flow),
    }
}
