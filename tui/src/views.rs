//! Pure renders of [`State`]: one module per view, plus the title and key-hint bars and
//! the help overlay. Views read the state and the theme and nothing else.

pub mod alerts;
pub mod chrome;
pub mod flow;
pub mod flows;
pub mod format;
pub mod help;
pub mod lag;
pub mod span;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout};

use crate::state::{State, ViewId};
use crate::theme::Theme;

/// Draws the whole screen for `state`.
pub fn draw(frame: &mut Frame, state: &State, theme: &Theme) {
    let [title, body, bar] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    chrome::draw_title(frame, title, state, theme);
    match state.view() {
        ViewId::Flows => flows::draw(frame, body, state, theme),
        ViewId::Flow => flow::draw(frame, body, state, theme),
        ViewId::Span => span::draw(frame, body, state, theme),
        ViewId::Lag => lag::draw(frame, body, state, theme),
        ViewId::Alerts => alerts::draw(frame, body, state, theme),
    }
    chrome::draw_bar(frame, bar, state, theme);
    if state.help {
        help::draw(frame, body, theme);
    }
}
