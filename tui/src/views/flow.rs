//! The flow view: a summary line, the event graph (services, topics and consumer groups
//! with hop timings, completeness per group, anomalies and the critical path) and a
//! waterfall of the same flow with queue waits drawn as gaps of their own colour.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};

use crate::model::badge;
use crate::sanitize;
use crate::state::{FlowPane, FlowState, State};
use crate::theme::Theme;
use crate::views::format;
use causeway_flow::{Flow, FlowStatus, SegmentKind};

mod graph;
mod waterfall;

pub use graph::graph_lines;
pub use waterfall::waterfall_lines;

/// Draws the open flow in `area`.
pub fn draw(frame: &mut Frame, area: Rect, state: &State, theme: &Theme) {
    let Some(flow_state) = &state.flow else {
        frame.render_widget(Paragraph::new("no flow open").style(theme.muted), area);
        return;
    };
    let Some(flow) = flow_state.flow.as_ref().filter(|_| flow_state.loaded) else {
        let text = format!("loading flow {}…", sanitize::fit(&flow_state.id, 60));
        frame.render_widget(Paragraph::new(text).style(theme.muted), area);
        return;
    };
    if flow.steps.is_empty() {
        let text = format!(
            "no spans carry {}: check the ID, or wait for the collector to receive them",
            sanitize::fit(&flow_state.id, 60)
        );
        frame.render_widget(Paragraph::new(text).style(theme.warn), area);
        return;
    }
    let [summary, graph_area, waterfall_area] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Percentage(40),
        Constraint::Min(4),
    ])
    .areas(area);
    frame.render_widget(
        Paragraph::new(summary_lines(
            flow_state,
            flow,
            theme,
            usize::from(area.width),
        )),
        summary,
    );
    draw_pane(
        frame,
        graph_area,
        " graph ",
        flow_state.pane == FlowPane::Graph,
        theme,
        |inner| graph_lines(flow, flow_state.selected_node, theme, inner),
    );
    draw_pane(
        frame,
        waterfall_area,
        " waterfall ",
        flow_state.pane == FlowPane::Waterfall,
        theme,
        |inner| waterfall_lines(flow, flow_state.selected_span, theme, inner),
    );
}

fn draw_pane<'a>(
    frame: &mut Frame,
    area: Rect,
    title: &'a str,
    focused: bool,
    theme: &Theme,
    lines: impl FnOnce(Rect) -> Vec<Line<'a>>,
) {
    let block = Block::default()
        .borders(Borders::TOP)
        .title(title)
        .border_style(if focused {
            theme.border_focused
        } else {
            theme.border
        });
    let inner = block.inner(area);
    frame.render_widget(block, area);
    frame.render_widget(Paragraph::new(lines(inner)), inner);
}

fn summary_lines(
    state: &FlowState,
    flow: &Flow,
    theme: &Theme,
    width: usize,
) -> Vec<Line<'static>> {
    let (status, status_style) = match flow.status {
        FlowStatus::Ok => ("ok", theme.ok),
        FlowStatus::Incomplete => ("incomplete", theme.warn),
        FlowStatus::Error => ("error", theme.error),
    };
    let shares = &flow.critical_path.shares;
    let truncated = if state.truncated { " (truncated)" } else { "" };
    let facts = format!(
        "  {} spans{truncated} · {} traces · {} events · {} services · {}  critical path: publish {:.0}% queue {:.0}% processing {:.0}% backoff {:.0}%",
        flow.steps.len(),
        flow.trace_ids.len(),
        flow.events.len(),
        flow.services.len(),
        format::duration(flow.duration_ns),
        shares.fraction(SegmentKind::Publish) * 100.0,
        shares.fraction(SegmentKind::QueueWait) * 100.0,
        shares.fraction(SegmentKind::Processing) * 100.0,
        shares.fraction(SegmentKind::Backoff) * 100.0,
    );
    let first = Line::from(vec![
        Span::styled(status, status_style),
        Span::styled(
            sanitize::fit(&facts, width.saturating_sub(status.len())),
            theme.text,
        ),
    ]);
    let anomalies = if flow.anomalies.is_empty() {
        Line::styled("no anomalies", theme.muted)
    } else {
        // Faults first, loud; then facts, quiet and in parentheses.
        let mut spans = Vec::new();
        let mut room = width;
        for fault in [true, false] {
            for anomaly in flow.anomalies.iter().filter(|a| a.is_fault() == fault) {
                let text = if fault {
                    format!("[{}] {}  ", badge(anomaly.kind), anomaly.detail)
                } else {
                    format!("({}) {}  ", badge(anomaly.kind), anomaly.detail)
                };
                let fitted = sanitize::fit(&text, room);
                room = room.saturating_sub(sanitize::width(&fitted));
                spans.push(Span::styled(
                    fitted,
                    if fault { theme.warn } else { theme.fact },
                ));
            }
        }
        Line::from(spans)
    };
    vec![first, anomalies]
}
