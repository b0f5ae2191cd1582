//! Keys to actions, k9s style, and nothing else. The help overlay and the key-hint bar
//! are drawn from [`HINTS`], so what is shown is what is bound.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use crate::state::{Action, Mode, ViewId};

/// One documented binding: the keys as shown, and what they do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hint {
    /// The keys, as drawn (`↑↓/jk`).
    pub keys: &'static str,
    /// What they do, in a word or two.
    pub does: &'static str,
}

const fn hint(keys: &'static str, does: &'static str) -> Hint {
    Hint { keys, does }
}

/// Every binding in normal mode, in the order the help overlay lists them.
pub const HINTS: &[Hint] = &[
    hint("↑↓/jk", "move"),
    hint("←→/hl", "node / link"),
    hint("PgUp/PgDn", "page"),
    hint("g/G", "top / bottom"),
    hint("Enter", "open"),
    hint("Esc", "back"),
    hint("Tab", "next pane"),
    hint("/", "filter flows"),
    hint(":", "jump to view"),
    hint("p", "partitions (lag)"),
    hint("?", "help"),
    hint("q", "quit"),
];

/// The hints for the bottom bar of `view` (the most useful first; the bar cuts the rest).
pub fn bar_hints(view: ViewId, mode: Mode) -> &'static [Hint] {
    const INPUT: &[Hint] = &[hint("Enter", "apply"), hint("Esc", "cancel")];
    const FLOWS: &[Hint] = &[
        hint("Enter", "open"),
        hint("/", "filter"),
        hint(":", "view"),
        hint("↑↓", "move"),
        hint("?", "help"),
        hint("q", "quit"),
    ];
    const FLOW: &[Hint] = &[
        hint("Tab", "pane"),
        hint("←→", "node"),
        hint("↑↓", "span"),
        hint("Enter", "span"),
        hint("Esc", "back"),
        hint("?", "help"),
        hint("q", "quit"),
    ];
    const SPAN: &[Hint] = &[
        hint("←→", "link"),
        hint("Enter", "follow link"),
        hint("↑↓", "scroll"),
        hint("Esc", "back"),
        hint("?", "help"),
        hint("q", "quit"),
    ];
    const LAG: &[Hint] = &[
        hint("Enter", "oldest flow"),
        hint("p", "partitions"),
        hint("↑↓", "move"),
        hint("Esc", "back"),
        hint(":", "view"),
        hint("?", "help"),
    ];
    const ALERTS: &[Hint] = &[
        hint("Enter", "flow / group"),
        hint("↑↓", "move"),
        hint("Esc", "back"),
        hint(":", "view"),
        hint("?", "help"),
        hint("q", "quit"),
    ];
    match (mode, view) {
        (Mode::Filter | Mode::Command, _) => INPUT,
        (_, ViewId::Flows) => FLOWS,
        (_, ViewId::Flow) => FLOW,
        (_, ViewId::Span) => SPAN,
        (_, ViewId::Lag) => LAG,
        (_, ViewId::Alerts) => ALERTS,
    }
}

/// The action for `key` in `mode`, if the key is bound.
pub fn action_for(key: KeyEvent, mode: Mode) -> Option<Action> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
        return Some(Action::Quit);
    }
    match mode {
        Mode::Filter | Mode::Command => match key.code {
            KeyCode::Enter => Some(Action::Submit),
            KeyCode::Esc => Some(Action::Back),
            KeyCode::Backspace => Some(Action::Erase),
            KeyCode::Char(c) => Some(Action::Input(c)),
            _ => None,
        },
        Mode::Normal => normal(key.code),
    }
}

fn normal(code: KeyCode) -> Option<Action> {
    let action = match code {
        KeyCode::Char('q') => Action::Quit,
        KeyCode::Up | KeyCode::Char('k') => Action::Up,
        KeyCode::Down | KeyCode::Char('j') => Action::Down,
        KeyCode::Left | KeyCode::Char('h') => Action::Left,
        KeyCode::Right | KeyCode::Char('l') => Action::Right,
        KeyCode::PageUp => Action::PageUp,
        KeyCode::PageDown => Action::PageDown,
        KeyCode::Home | KeyCode::Char('g') => Action::Top,
        KeyCode::End | KeyCode::Char('G') => Action::Bottom,
        KeyCode::Enter => Action::Open,
        KeyCode::Esc | KeyCode::Backspace => Action::Back,
        KeyCode::Tab | KeyCode::BackTab => Action::NextPane,
        KeyCode::Char('/') => Action::StartFilter,
        KeyCode::Char(':') => Action::StartCommand,
        KeyCode::Char('?') => Action::ToggleHelp,
        KeyCode::Char('p') => Action::TogglePartitions,
        _ => return None,
    };
    Some(action)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    #[test]
    fn keys_map_to_actions_by_mode() {
        let cases: &[(KeyEvent, Mode, Option<Action>, &str)] = &[
            (
                key(KeyCode::Char('j')),
                Mode::Normal,
                Some(Action::Down),
                "vim down",
            ),
            (
                key(KeyCode::Down),
                Mode::Normal,
                Some(Action::Down),
                "arrow down",
            ),
            (
                key(KeyCode::Char('k')),
                Mode::Normal,
                Some(Action::Up),
                "vim up",
            ),
            (
                key(KeyCode::Char('l')),
                Mode::Normal,
                Some(Action::Right),
                "vim right",
            ),
            (
                key(KeyCode::Enter),
                Mode::Normal,
                Some(Action::Open),
                "enter opens",
            ),
            (
                key(KeyCode::Esc),
                Mode::Normal,
                Some(Action::Back),
                "esc goes back",
            ),
            (
                key(KeyCode::Char('/')),
                Mode::Normal,
                Some(Action::StartFilter),
                "slash filters",
            ),
            (
                key(KeyCode::Char(':')),
                Mode::Normal,
                Some(Action::StartCommand),
                "colon jumps",
            ),
            (
                key(KeyCode::Char('?')),
                Mode::Normal,
                Some(Action::ToggleHelp),
                "question mark helps",
            ),
            (
                key(KeyCode::Tab),
                Mode::Normal,
                Some(Action::NextPane),
                "tab switches pane",
            ),
            (
                key(KeyCode::Char('q')),
                Mode::Normal,
                Some(Action::Quit),
                "q quits",
            ),
            (
                key(KeyCode::Char('x')),
                Mode::Normal,
                None,
                "unbound key does nothing",
            ),
            (
                key(KeyCode::Char('q')),
                Mode::Filter,
                Some(Action::Input('q')),
                "q is text in the filter",
            ),
            (
                key(KeyCode::Char('j')),
                Mode::Command,
                Some(Action::Input('j')),
                "j is text in a command",
            ),
            (
                key(KeyCode::Backspace),
                Mode::Filter,
                Some(Action::Erase),
                "backspace erases",
            ),
            (
                key(KeyCode::Enter),
                Mode::Command,
                Some(Action::Submit),
                "enter submits",
            ),
            (
                key(KeyCode::Esc),
                Mode::Filter,
                Some(Action::Back),
                "esc leaves the filter",
            ),
            (
                KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL),
                Mode::Filter,
                Some(Action::Quit),
                "ctrl-c quits from anywhere",
            ),
        ];
        for (event, mode, expected, reason) in cases {
            assert_eq!(action_for(*event, *mode), *expected, "{reason}");
        }
    }

    #[test]
    fn key_releases_are_ignored() {
        let mut release = key(KeyCode::Char('q'));
        release.kind = KeyEventKind::Release;
        assert_eq!(action_for(release, Mode::Normal), None);
    }
}
