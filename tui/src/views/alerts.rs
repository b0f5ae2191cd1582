//! Alerts: firing first, then resolved, each with its rule and evidence.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::sanitize;
use crate::state::State;
use crate::theme::Theme;
use crate::views::format;

/// Draws the alerts list in `area`.
pub fn draw(frame: &mut Frame, area: Rect, state: &State, theme: &Theme) {
    let alerts = &state.alerts;
    if let Some(reason) = &alerts.unavailable {
        frame.render_widget(
            Paragraph::new(sanitize::clean(reason).into_owned()).style(theme.muted),
            area,
        );
        return;
    }
    if alerts.rows.is_empty() {
        let message = if alerts.loaded {
            "no alerts: nothing has fired"
        } else {
            "loading alerts…"
        };
        frame.render_widget(Paragraph::new(message).style(theme.muted), area);
        return;
    }
    let width = usize::from(area.width);
    let mut lines = Vec::new();
    for (index, alert) in alerts.rows.iter().enumerate() {
        let (badge, badge_style) = if alert.pending {
            ("pending ", theme.warn)
        } else if alert.firing {
            ("FIRING  ", theme.error)
        } else {
            ("resolved", theme.ok)
        };
        let when = match alert.resolved_ns {
            Some(end) => format!(
                "{} → {}",
                format::clock(alert.started_ns),
                format::clock(end)
            ),
            None => format!("since {}", format::clock(alert.started_ns)),
        };
        // Each piece cleaned before they are joined: an unfinished escape in a group name
        // cannot hide the flow after it.
        let group = alert.group.as_deref().map(sanitize::clean);
        let id = alert.correlation_id.as_deref().map(sanitize::clean);
        let target = match (group, id) {
            (Some(group), Some(id)) => format!("group {group}, flow {id}"),
            (Some(group), None) => format!("group {group}"),
            (None, Some(id)) => format!("flow {id}"),
            (None, None) => String::new(),
        };
        let head_room = width.saturating_sub(10 + when.len() + 2);
        let head = Line::from(vec![
            Span::styled(badge, badge_style),
            Span::raw("  "),
            Span::styled(
                sanitize::fit(
                    &format!("{}  {target}", sanitize::clean(&alert.rule)),
                    head_room,
                ),
                theme.header,
            ),
            Span::raw("  "),
            Span::styled(when, theme.muted),
        ]);
        lines.push(if index == alerts.selected {
            head.style(theme.selected)
        } else {
            head
        });
        lines.push(Line::styled(
            format!(
                "          {}",
                sanitize::fit(&alert.evidence, width.saturating_sub(10))
            ),
            theme.text,
        ));
    }
    frame.render_widget(Paragraph::new(lines), area);
}
