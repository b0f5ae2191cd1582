//! The title bar (where am I, which database) and the bottom bar (key hints, or the
//! filter/command line while typing, or a notice).

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::keymap;
use crate::sanitize;
use crate::state::{Mode, State, ViewId};
use crate::theme::Theme;

/// Draws the title bar: the breadcrumb of open views, on the flows screen how many alerts
/// fire, and the database.
pub fn draw_title(frame: &mut Frame, area: Rect, state: &State, theme: &Theme) {
    let mut crumbs: Vec<String> = Vec::new();
    for view in &state.stack {
        let crumb = match view {
            ViewId::Flow => match &state.flow {
                Some(flow) => format!("flow {}", sanitize::fit(&flow.id, 36)),
                None => "flow".to_owned(),
            },
            ViewId::Span => match &state.span {
                Some(span) => format!("span {}", sanitize::fit(&span.span.name, 30)),
                None => "span".to_owned(),
            },
            other => other.name().to_owned(),
        };
        crumbs.push(crumb);
    }
    let left = format!(" causeway ▸ {}", crumbs.join(" › "));
    let alerts = match (state.view(), state.firing_alerts()) {
        (ViewId::Flows, Some(0)) => "  no alerts firing".to_owned(),
        (ViewId::Flows, Some(1)) => "  1 alert firing (:alerts)".to_owned(),
        (ViewId::Flows, Some(firing)) => format!("  {firing} alerts firing (:alerts)"),
        _ => String::new(),
    };
    let width = usize::from(area.width);
    let left = sanitize::fit(&left, width);
    let alerts = sanitize::fit(&alerts, width.saturating_sub(sanitize::width(&left)));
    let used = sanitize::width(&left) + sanitize::width(&alerts);
    let right = format!("{} ", sanitize::clean(&state.source));
    let right = sanitize::fit(&right, width.saturating_sub(used + 1));
    let gap = width.saturating_sub(used + sanitize::width(&right));
    let firing = state.firing_alerts().is_some_and(|n| n > 0);
    let line = Line::from(vec![
        Span::styled(left, theme.title),
        Span::styled(
            alerts,
            if firing {
                theme.title_alert
            } else {
                theme.title
            },
        ),
        Span::styled(" ".repeat(gap), theme.title),
        Span::styled(right, theme.title),
    ]);
    frame.render_widget(Paragraph::new(line).style(theme.title), area);
}

/// Draws the bottom bar: the line being typed, a notice, or the key hints.
pub fn draw_bar(frame: &mut Frame, area: Rect, state: &State, theme: &Theme) {
    let width = usize::from(area.width);
    let line = match state.mode {
        Mode::Filter | Mode::Command => {
            let prompt = if state.mode == Mode::Filter { "/" } else { ":" };
            let hints = hint_spans(keymap::bar_hints(state.view(), state.mode), theme);
            let typed = sanitize::fit(&state.input, width.saturating_sub(24));
            let mut spans = vec![
                Span::styled(prompt, theme.key),
                Span::styled(typed, theme.text),
                Span::styled("█", theme.muted),
                Span::raw("  "),
            ];
            if state.mode == Mode::Filter && state.flows.searching {
                spans.push(Span::styled("searching… ", theme.warn));
            }
            spans.extend(hints);
            Line::from(spans)
        }
        Mode::Normal => match &state.notice {
            Some(notice) => Line::from(vec![
                Span::styled(sanitize::fit(notice, width.saturating_sub(12)), theme.warn),
                Span::styled("  Esc", theme.key),
                Span::styled(" dismiss", theme.muted),
            ]),
            None => Line::from(hint_spans(
                keymap::bar_hints(state.view(), state.mode),
                theme,
            )),
        },
    };
    frame.render_widget(Paragraph::new(line), area);
}

fn hint_spans(hints: &[keymap::Hint], theme: &Theme) -> Vec<Span<'static>> {
    let mut spans = Vec::new();
    for hint in hints {
        spans.push(Span::styled(format!(" {}", hint.keys), theme.key));
        spans.push(Span::styled(format!(" {} ", hint.does), theme.muted));
    }
    spans
}
