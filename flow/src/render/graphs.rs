//! Graphviz dot and Mermaid drawings of a flow's services, topics and consumer groups.

use std::fmt::Write;

use super::clean;
use crate::{Flow, NodeKind};

/// The flow's graph in Graphviz dot: services as boxes, topics as cylinders, consumer
/// groups as ellipses; edges that failed or are missing are red and dashed.
pub fn dot(flow: &Flow) -> String {
    let mut out = String::from("digraph flow {\n  rankdir=LR;\n  node [fontname=\"Helvetica\"];\n");
    for (index, node) in flow.graph.nodes.iter().enumerate() {
        let shape = match node.kind {
            NodeKind::Service => "box",
            NodeKind::Topic => "cylinder",
            NodeKind::ConsumerGroup => "ellipse",
        };
        let _ = writeln!(
            out,
            "  n{index} [label=\"{}\", shape={shape}];",
            dot_escape(&node.name)
        );
    }
    for edge in &flow.graph.edges {
        let style = if edge.failed {
            ", color=red, style=dashed"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "  n{} -> n{} [label=\"{}\"{style}];",
            edge.from, edge.to, edge.messages
        );
    }
    out.push_str("}\n");
    out
}

/// The flow's graph as a Mermaid flowchart: services as rectangles, topics as cylinders,
/// consumer groups as stadiums; failed or missing deliveries are dotted.
pub fn mermaid(flow: &Flow) -> String {
    let mut out = String::from("flowchart LR\n");
    for (index, node) in flow.graph.nodes.iter().enumerate() {
        let label = mermaid_escape(&node.name);
        let _ = match node.kind {
            NodeKind::Service => writeln!(out, "  n{index}[\"{label}\"]"),
            NodeKind::Topic => writeln!(out, "  n{index}[(\"{label}\")]"),
            NodeKind::ConsumerGroup => writeln!(out, "  n{index}([\"{label}\"])"),
        };
    }
    for edge in &flow.graph.edges {
        let arrow = if edge.failed { "-.->" } else { "-->" };
        let _ = writeln!(
            out,
            "  n{} {arrow}|{}| n{}",
            edge.from, edge.messages, edge.to
        );
    }
    out
}

fn dot_escape(text: &str) -> String {
    clean(text).replace('\\', "\\\\").replace('"', "\\\"")
}

/// Mermaid reads `#name;` entities inside quoted labels; quotes and the characters that
/// end a label are written as entities.
fn mermaid_escape(text: &str) -> String {
    let mut out = String::new();
    for c in clean(text).chars() {
        match c {
            '"' => out.push_str("#quot;"),
            '#' => out.push_str("#35;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '|' => out.push_str("#124;"),
            c => out.push(c),
        }
    }
    out
}
