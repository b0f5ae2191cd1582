//! Span detail: identity, timing and status, then attributes, events, links and resource.

use causeway_storage::{Attributes, SpanRecord, StatusCode};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use serde_json::Value;

use crate::sanitize;
use crate::state::{SpanState, State};
use crate::theme::Theme;
use crate::views::format;

/// Draws the open span in `area`.
pub fn draw(frame: &mut Frame, area: Rect, state: &State, theme: &Theme) {
    let Some(span_state) = &state.span else {
        frame.render_widget(Paragraph::new("no span open").style(theme.muted), area);
        return;
    };
    let width = usize::from(area.width.saturating_sub(2));
    let lines = lines(span_state, theme, width);
    let paragraph = Paragraph::new(lines)
        .scroll((u16::try_from(span_state.scroll).unwrap_or(u16::MAX), 0))
        .block(
            Block::default()
                .borders(Borders::TOP)
                .border_style(theme.border),
        );
    frame.render_widget(paragraph, area);
}

/// The detail lines of a span, each fitted to `width`.
pub fn lines(state: &SpanState, theme: &Theme, width: usize) -> Vec<Line<'static>> {
    let span = &state.span;
    let mut out = Vec::new();
    let (status, status_style) = match span.status_code {
        StatusCode::Error => ("ERROR", theme.error),
        StatusCode::Ok => ("OK", theme.ok),
        StatusCode::Unset => ("unset", theme.muted),
    };
    out.push(Line::from(vec![
        Span::styled(sanitize::fit(&span.name, width / 2), theme.header),
        Span::raw("  "),
        Span::styled(status, status_style),
        Span::raw("  "),
        Span::styled(sanitize::fit(&span.status_message, width / 3), status_style),
    ]));
    field(&mut out, "service", &span.service_name, theme, width);
    field(
        &mut out,
        "kind",
        &format!("{:?}", span.kind).to_lowercase(),
        theme,
        width,
    );
    field(&mut out, "trace", &span.trace_id.to_string(), theme, width);
    field(&mut out, "span", &span.span_id.to_string(), theme, width);
    if let Some(parent) = span.parent_span_id {
        field(&mut out, "parent", &parent.to_string(), theme, width);
    }
    let timing = format!(
        "{} for {}",
        format::clock(span.start_ns),
        format::duration(span.duration_ns())
    );
    field(&mut out, "start", &timing, theme, width);
    section(&mut out, "attributes", span.attributes.len(), theme);
    attributes(&mut out, &span.attributes, "  ", theme, width);
    section(&mut out, "events", span.events.len(), theme);
    for event in &span.events {
        let head = format!("  {} {}", format::clock(event.time_ns), event.name);
        out.push(Line::styled(sanitize::fit(&head, width), theme.text));
        attributes(&mut out, &event.attributes, "      ", theme, width);
    }
    links(&mut out, state, theme, width);
    section(&mut out, "resource", span.resource.len(), theme);
    attributes(&mut out, &span.resource, "  ", theme, width);
    out
}

fn links(out: &mut Vec<Line<'static>>, state: &SpanState, theme: &Theme, width: usize) {
    let span: &SpanRecord = &state.span;
    section(out, "links", span.links.len(), theme);
    for (index, link) in span.links.iter().enumerate() {
        let marker = if index == state.selected_link {
            "▶ "
        } else {
            "  "
        };
        let text = format!("{marker}trace {} span {}", link.trace_id, link.span_id);
        let style = if index == state.selected_link {
            theme.selected
        } else {
            theme.link
        };
        out.push(Line::styled(sanitize::fit(&text, width), style));
        attributes(out, &link.attributes, "      ", theme, width);
    }
}

fn section(out: &mut Vec<Line<'static>>, name: &str, count: usize, theme: &Theme) {
    out.push(Line::raw(""));
    out.push(Line::styled(format!("{name} ({count})"), theme.header));
}

fn field(out: &mut Vec<Line<'static>>, key: &str, value: &str, theme: &Theme, width: usize) {
    let key = format!("{key:<9}");
    let value = sanitize::fit(value, width.saturating_sub(key.len()));
    out.push(Line::from(vec![
        Span::styled(key, theme.muted),
        Span::styled(value, theme.text),
    ]));
}

fn attributes(
    out: &mut Vec<Line<'static>>,
    attributes: &Attributes,
    indent: &str,
    theme: &Theme,
    width: usize,
) {
    let key_width = attributes
        .keys()
        .map(|key| sanitize::width(&sanitize::clean(key)))
        .max()
        .unwrap_or(0)
        .min(width / 2);
    for (key, value) in attributes {
        let key = sanitize::fit(key, key_width);
        let pad = key_width.saturating_sub(sanitize::width(&key));
        let used = indent.len() + key_width + 2;
        out.push(Line::from(vec![
            Span::raw(indent.to_owned()),
            Span::styled(format!("{key}{}", " ".repeat(pad)), theme.muted),
            Span::raw("  "),
            Span::styled(
                sanitize::fit(&value_text(value), width.saturating_sub(used)),
                value_style(value, theme),
            ),
        ]));
    }
}

/// An attribute value as one line of text (strings without their quotes).
fn value_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn value_style(value: &Value, theme: &Theme) -> Style {
    match value {
        Value::String(_) => theme.text,
        _ => theme.link,
    }
}
