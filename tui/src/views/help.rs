//! The help overlay: every key binding, drawn from the keymap's own table.

use ratatui::Frame;
use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};

use crate::keymap::HINTS;
use crate::theme::Theme;

/// Commands accepted after `:`, shown under the keys.
const COMMANDS: &[(&str, &str)] = &[
    (":flows", "the flows list"),
    (":flow ID", "a correlation or trace"),
    (":lag", "consumer-group lag"),
    (":alerts", "firing and resolved alerts"),
    (":q", "quit"),
];

/// Draws the help overlay centred in `area`.
pub fn draw(frame: &mut Frame, area: Rect, theme: &Theme) {
    let height = (HINTS.len() + COMMANDS.len() + 5) as u16;
    let [column] = Layout::horizontal([Constraint::Length(46)])
        .flex(Flex::Center)
        .areas(area);
    let [popup] = Layout::vertical([Constraint::Length(height)])
        .flex(Flex::Center)
        .areas(column);
    let mut lines: Vec<Line> = HINTS
        .iter()
        .map(|hint| {
            Line::from(vec![
                Span::styled(format!(" {:<11}", hint.keys), theme.key),
                Span::styled(hint.does, theme.text),
            ])
        })
        .collect();
    lines.push(Line::raw(""));
    for (command, does) in COMMANDS {
        lines.push(Line::from(vec![
            Span::styled(format!(" {command:<11}"), theme.key),
            Span::styled(*does, theme.text),
        ]));
    }
    lines.push(Line::raw(""));
    lines.push(Line::styled(" ? or Esc closes this help", theme.muted));
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines).block(
            Block::default()
                .borders(Borders::ALL)
                .border_style(theme.border_focused)
                .title(" keys "),
        ),
        popup,
    );
}
