//! Consumer-group lag: state, lag in messages and seconds, a sparkline of the trend, and
//! per-partition lag on demand.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::model::LagRow;
use crate::sanitize;
use crate::state::State;
use crate::theme::Theme;

/// Bars of the sparkline, lowest first.
const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// Draws the lag table in `area`.
pub fn draw(frame: &mut Frame, area: Rect, state: &State, theme: &Theme) {
    let lag = &state.lag;
    if let Some(reason) = &lag.unavailable {
        frame.render_widget(
            Paragraph::new(sanitize::clean(reason).into_owned()).style(theme.muted),
            area,
        );
        return;
    }
    if lag.rows.is_empty() {
        let message = if lag.loaded {
            "no consumer-group lag recorded yet: the collector polls it when given --kafka"
        } else {
            "loading lag…"
        };
        frame.render_widget(Paragraph::new(message).style(theme.muted), area);
        return;
    }
    let columns = [
        Constraint::Fill(2),
        Constraint::Fill(2),
        Constraint::Length(8),
        Constraint::Length(9),
        Constraint::Length(8),
        Constraint::Fill(2),
    ];
    let [header, body] = Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(area);
    let widths: Vec<usize> = Layout::horizontal(columns)
        .spacing(1)
        .split(header)
        .iter()
        .map(|cell| usize::from(cell.width))
        .collect();
    let headers = ["GROUP", "TOPIC", "STATE", "MESSAGES", "SECONDS", "TREND"];
    frame.render_widget(
        Paragraph::new(cells(
            headers
                .iter()
                .map(|h| (h.to_string(), theme.header))
                .collect(),
            &widths,
        )),
        header,
    );
    let mut lines = Vec::new();
    for (index, row) in lag.rows.iter().enumerate() {
        let trend_width = widths.last().copied().unwrap_or(0);
        let line = cells(row_cells(row, trend_width, theme), &widths);
        lines.push(if index == lag.selected {
            line.style(theme.selected)
        } else {
            line
        });
        if state.partitions {
            for (partition, behind) in &row.partitions {
                lines.push(Line::styled(
                    format!("    partition {partition:>4}  {behind:>9} behind"),
                    theme.muted,
                ));
            }
        }
    }
    frame.render_widget(Paragraph::new(lines), body);
}

fn row_cells(row: &LagRow, trend_width: usize, theme: &Theme) -> Vec<(String, Style)> {
    vec![
        (row.group.clone(), theme.text),
        (row.topic.clone(), theme.text),
        (row.state.name().to_owned(), theme.lag_state(row.state)),
        (row.lag_messages.to_string(), theme.text),
        (format!("{:.1}", row.lag_seconds), theme.text),
        (sparkline(&row.trend, trend_width), theme.warn),
    ]
}

/// The last `width` values of `values` as bars scaled to their maximum.
pub fn sparkline(values: &[u64], width: usize) -> String {
    let shown = &values[values.len().saturating_sub(width)..];
    let max = shown.iter().copied().max().unwrap_or(0).max(1);
    shown
        .iter()
        .map(|value| {
            let level = (value.saturating_mul(7) / max) as usize;
            BARS[level.min(7)]
        })
        .collect()
}

fn cells(cells: Vec<(String, Style)>, widths: &[usize]) -> Line<'static> {
    let mut spans = Vec::new();
    for ((text, style), width) in cells.into_iter().zip(widths) {
        let fitted = sanitize::fit(&text, *width);
        let pad = width.saturating_sub(sanitize::width(&fitted));
        spans.push(Span::styled(fitted, style));
        spans.push(Span::raw(" ".repeat(pad + 1)));
    }
    Line::from(spans)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparkline_scales_to_the_maximum_and_keeps_the_latest() {
        let cases: &[(&[u64], usize, &str, &str)] = &[
            (&[], 5, "", "no samples"),
            (&[0, 0], 5, "▁▁", "all zero stays at the floor"),
            (&[0, 7, 14], 5, "▁▄█", "scaled to the maximum"),
            (&[1, 2, 3, 4], 2, "▆█", "only the latest that fit"),
        ];
        for (values, width, expected, reason) in cases {
            assert_eq!(sparkline(values, *width), *expected, "{reason}");
        }
    }
}
