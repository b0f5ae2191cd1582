//! Renderers of a reconstructed flow: a readable text tree, the stable JSON document of
//! docs/FLOW-JSON.md, and Graphviz dot and Mermaid graphs of services, topics and groups.
//!
//! Every string that came from a span is cleaned before it reaches text, dot or mermaid
//! output: control characters and terminal escape sequences never pass through.

mod graphs;
mod json;
mod text;

use crate::flow::Flow;

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

/// Returns `text` without control characters, escape sequences or bidirectional
/// overrides: an escape sequence (CSI, OSC or a two-character one) is dropped whole, any
/// other such character becomes `?`, and line breaks and tabs become spaces.
pub fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => match chars.next() {
                // CSI: parameters and intermediates, then one final byte in @..~.
                Some('[') => {
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                }
                // OSC, DCS, SOS, PM, APC: up to BEL or ESC \.
                Some(']' | 'P' | 'X' | '^' | '_') => {
                    while let Some(c) = chars.next() {
                        if c == '\u{7}' {
                            break;
                        }
                        if c == '\u{1b}' {
                            chars.next_if_eq(&'\\');
                            break;
                        }
                    }
                }
                _ => {}
            },
            '\t' | '\n' | '\r' => out.push(' '),
            c if c.is_control() || is_bidi_control(c) => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
    )
}

/// A duration for people: `850 ns`, `12 µs`, `3.4 ms`, `1.25 s`, `2 min 5 s`.
pub fn human_duration(ns: i64) -> String {
    let sign = if ns < 0 { "-" } else { "" };
    let ns = ns.unsigned_abs();
    let body = if ns < 1_000 {
        format!("{ns} ns")
    } else if ns < 1_000_000 {
        format!("{} µs", ns / 1_000)
    } else if ns < 1_000_000_000 {
        format!("{:.1} ms", ns as f64 / 1e6)
    } else if ns < 60_000_000_000 {
        format!("{:.2} s", ns as f64 / 1e9)
    } else {
        format!("{} min {} s", ns / 60_000_000_000, ns / 1_000_000_000 % 60)
    };
    format!("{sign}{body}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_strips_control_characters_and_escape_sequences() {
        let cases = [
            ("plain", "plain", "clean text is unchanged"),
            (
                "a\u{1b}[31mred\u{1b}[0m",
                "ared",
                "csi colour codes are dropped",
            ),
            (
                "t\u{1b}]0;title\u{7}x",
                "tx",
                "osc title change ended by bel",
            ),
            (
                "t\u{1b}]8;;http://x\u{1b}\\y",
                "ty",
                "osc hyperlink ended by st",
            ),
            ("a\nb\tc", "a b c", "line breaks and tabs become spaces"),
            ("a\u{0}b\u{7f}", "a?b?", "other controls become ?"),
            ("x\u{202e}y", "x?y", "bidi override is replaced"),
            ("end\u{1b}", "end", "a lone trailing escape is dropped"),
            ("ünïcødé ✓", "ünïcødé ✓", "printable unicode stays"),
        ];
        for (input, expected, reason) in cases {
            assert_eq!(clean(input), expected, "{reason}");
        }
    }

    #[test]
    fn durations_read_naturally() {
        let cases = [
            (850, "850 ns", "nanoseconds"),
            (12_345, "12 µs", "microseconds truncate"),
            (3_400_000, "3.4 ms", "milliseconds with one decimal"),
            (1_250_000_000, "1.25 s", "seconds with two decimals"),
            (125_000_000_000, "2 min 5 s", "minutes"),
            (
                -2_000_000,
                "-2.0 ms",
                "negative (clock skew) keeps its sign",
            ),
        ];
        for (ns, expected, reason) in cases {
            assert_eq!(human_duration(ns), expected, "{reason}");
        }
    }
}
