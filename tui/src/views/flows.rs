//! The flows list: one row per correlation, newest first, with start, duration,
//! services, events, status and anomaly badges: the flow's faults (`[dlq]`, loud) apart
//! from its facts (`(schema)`, quiet).

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::model::FlowRow;
use crate::sanitize;
use crate::state::State;
use crate::theme::Theme;
use crate::views::format;

const COLUMNS: [Constraint; 7] = [
    Constraint::Length(12),
    Constraint::Length(8),
    Constraint::Fill(3),
    Constraint::Fill(4),
    Constraint::Length(6),
    Constraint::Length(6),
    Constraint::Fill(3),
];
const HEADERS: [&str; 7] = [
    "START",
    "DURATION",
    "CORRELATION",
    "SERVICES",
    "EVENTS",
    "STATUS",
    "BADGES",
];

/// Draws the flows list in `area`.
pub fn draw(frame: &mut Frame, area: Rect, state: &State, theme: &Theme) {
    let flows = &state.flows;
    if area.height < 2 {
        return;
    }
    let [header, body] = Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(area);
    let cells = Layout::horizontal(COLUMNS).spacing(1).split(header);
    let widths: Vec<usize> = cells.iter().map(|cell| usize::from(cell.width)).collect();
    let header_line = row_line(
        HEADERS
            .iter()
            .map(|h| vec![(h.to_string(), theme.header)])
            .collect(),
        &widths,
    );
    frame.render_widget(Paragraph::new(header_line), header);
    if flows.rows.is_empty() {
        let message = if !flows.loaded {
            "loading flows…".to_owned()
        } else if flows.searching {
            format!("searching for \"{}\"…", sanitize::fit(&flows.filter, 40))
        } else if !flows.filter.is_empty() {
            format!(
                "no flow matches \"{}\" (Esc in the filter clears it)",
                sanitize::fit(&flows.filter, 40)
            )
        } else if flows.offset > 0 {
            "no more flows (g goes back to the newest)".to_owned()
        } else {
            "no flows yet: run `causeway demo`, or point services at `causeway collector`"
                .to_owned()
        };
        frame.render_widget(Paragraph::new(message).style(theme.muted), body);
        return;
    }
    let lines: Vec<Line> = flows
        .rows
        .iter()
        .take(usize::from(body.height))
        .enumerate()
        .map(|(index, row)| {
            let line = row_line(cells_of(row, theme), &widths);
            if index == flows.selected {
                line.style(theme.selected)
            } else {
                line
            }
        })
        .collect();
    frame.render_widget(Paragraph::new(lines), body);
}

/// The cells of one row, each a run of styled parts.
fn cells_of(row: &FlowRow, theme: &Theme) -> Vec<Vec<(String, Style)>> {
    let (status, status_style) = if row.has_error {
        ("error", theme.error)
    } else {
        ("ok", theme.ok)
    };
    vec![
        vec![(format::clock(row.start_ns), theme.muted)],
        vec![(format::duration(row.duration_ns), theme.text)],
        vec![(row.correlation_id.clone(), theme.text)],
        // Each name cleaned before joining: one name's unfinished escape cannot hide the rest.
        vec![(sanitize::clean_join(&row.services, ","), theme.text)],
        vec![(row.events.to_string(), theme.text)],
        vec![(status.to_owned(), status_style)],
        vec![
            (
                row.badges
                    .iter()
                    .map(|badge| format!("[{badge}]"))
                    .collect::<String>(),
                theme.warn,
            ),
            (
                row.facts
                    .iter()
                    .map(|fact| format!("({fact})"))
                    .collect::<String>(),
                theme.fact,
            ),
        ],
    ]
}

/// One line of cells, each part cleaned, the cell cut to its column with an ellipsis and
/// padded.
fn row_line(cells: Vec<Vec<(String, Style)>>, widths: &[usize]) -> Line<'static> {
    let mut spans = Vec::with_capacity(cells.len() * 2);
    for (parts, width) in cells.into_iter().zip(widths) {
        let total: usize = parts.iter().map(|(text, _)| sanitize::width(text)).sum();
        let mut room = *width;
        for (text, style) in parts {
            if room == 0 {
                break;
            }
            // A cell too wide for its column ends in the ellipsis of its last visible part.
            let fitted = if total > *width {
                sanitize::fit(&text, room)
            } else {
                sanitize::clean(&text).into_owned()
            };
            room = room.saturating_sub(sanitize::width(&fitted));
            if !fitted.is_empty() {
                spans.push(Span::styled(fitted, style));
            }
        }
        spans.push(Span::raw(" ".repeat(room + 1)));
    }
    Line::from(spans)
}
