//! Every style the dashboard draws with, in colour or, when `NO_COLOR` is set, with
//! bold, reverse and underline only.

use causeway_conventions::LagState;
use ratatui::style::{Color, Modifier, Style};

/// The environment variable that turns colour off (<https://no-color.org>).
pub const NO_COLOR: &str = "NO_COLOR";

/// The styles of the dashboard. Views take every style from here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Theme {
    /// Whether colours are used at all.
    pub color: bool,
    /// Ordinary text.
    pub text: Style,
    /// Secondary text: timestamps, ids, labels.
    pub muted: Style,
    /// The title bar.
    pub title: Style,
    /// Firing alerts, counted in the title bar.
    pub title_alert: Style,
    /// Table headers.
    pub header: Style,
    /// The selected row or node.
    pub selected: Style,
    /// A key in the key-hint bar.
    pub key: Style,
    /// Failures and error statuses.
    pub error: Style,
    /// Success.
    pub ok: Style,
    /// Warnings: lag, faults, waiting groups.
    pub warn: Style,
    /// Facts: anomalies worth knowing that are not faults (a schema version seen, a retry
    /// that succeeded, clock skew).
    pub fact: Style,
    /// The critical path of a flow.
    pub critical: Style,
    /// A span's own time in the waterfall.
    pub span_bar: Style,
    /// A queue wait in the waterfall (a gap of its own colour).
    pub queue_wait: Style,
    /// Link edges (as opposed to parent/child edges).
    pub link: Style,
    /// Borders of panes; the focused pane uses `selected`'s emphasis.
    pub border: Style,
    /// The focused pane's border.
    pub border_focused: Style,
}

impl Theme {
    /// The theme for this environment: monochrome when `NO_COLOR` is set and not empty.
    pub fn from_env() -> Theme {
        let no_color = std::env::var_os(NO_COLOR).is_some_and(|value| !value.is_empty());
        if no_color {
            Theme::monochrome()
        } else {
            Theme::colored()
        }
    }

    /// The colour theme.
    pub fn colored() -> Theme {
        let plain = Style::new();
        Theme {
            color: true,
            text: plain,
            muted: plain.fg(Color::DarkGray),
            title: plain
                .fg(Color::Black)
                .bg(Color::Cyan)
                .add_modifier(Modifier::BOLD),
            title_alert: plain
                .fg(Color::White)
                .bg(Color::Red)
                .add_modifier(Modifier::BOLD),
            header: plain.fg(Color::Yellow).add_modifier(Modifier::BOLD),
            selected: plain
                .bg(Color::Blue)
                .fg(Color::White)
                .add_modifier(Modifier::BOLD),
            key: plain.fg(Color::Cyan).add_modifier(Modifier::BOLD),
            error: plain.fg(Color::Red).add_modifier(Modifier::BOLD),
            ok: plain.fg(Color::Green),
            warn: plain.fg(Color::Yellow),
            fact: plain.fg(Color::Blue).add_modifier(Modifier::ITALIC),
            critical: plain.fg(Color::Magenta).add_modifier(Modifier::BOLD),
            span_bar: plain.fg(Color::Green),
            queue_wait: plain.fg(Color::Yellow),
            link: plain.fg(Color::Cyan),
            border: plain.fg(Color::DarkGray),
            border_focused: plain.fg(Color::Cyan),
        }
    }

    /// The style of a lag state: each state its own, worse states louder. In colour:
    /// UNKNOWN grey, OK green, WARN yellow, ERR red, REWIND (offsets went back) magenta,
    /// STALL red underlined, STOP (nobody consuming) red reversed. Without colour the same
    /// order by dim, italic, bold, underline and reverse.
    pub fn lag_state(&self, state: LagState) -> Style {
        let plain = Style::new();
        let bold = plain.add_modifier(Modifier::BOLD);
        if self.color {
            match state {
                LagState::Unknown => plain.fg(Color::DarkGray),
                LagState::Ok => plain.fg(Color::Green),
                LagState::Warn => plain.fg(Color::Yellow),
                LagState::Err => bold.fg(Color::Red),
                LagState::Rewind => bold.fg(Color::Magenta),
                LagState::Stall => bold.fg(Color::Red).add_modifier(Modifier::UNDERLINED),
                LagState::Stop => bold.fg(Color::Red).add_modifier(Modifier::REVERSED),
            }
        } else {
            match state {
                LagState::Unknown => plain.add_modifier(Modifier::DIM),
                LagState::Ok => plain,
                LagState::Warn => plain.add_modifier(Modifier::ITALIC),
                LagState::Err => bold,
                LagState::Rewind => bold.add_modifier(Modifier::ITALIC),
                LagState::Stall => bold.add_modifier(Modifier::UNDERLINED),
                LagState::Stop => bold.add_modifier(Modifier::REVERSED),
            }
        }
    }

    /// The theme without colour: emphasis by modifiers only.
    pub fn monochrome() -> Theme {
        let plain = Style::new();
        let bold = plain.add_modifier(Modifier::BOLD);
        Theme {
            color: false,
            text: plain,
            muted: plain.add_modifier(Modifier::DIM),
            title: plain.add_modifier(Modifier::REVERSED | Modifier::BOLD),
            title_alert: plain
                .add_modifier(Modifier::REVERSED | Modifier::BOLD | Modifier::UNDERLINED),
            header: bold.add_modifier(Modifier::UNDERLINED),
            selected: plain.add_modifier(Modifier::REVERSED),
            key: bold,
            error: bold,
            ok: plain,
            warn: bold,
            fact: plain.add_modifier(Modifier::ITALIC | Modifier::DIM),
            critical: bold.add_modifier(Modifier::UNDERLINED),
            span_bar: plain,
            queue_wait: plain.add_modifier(Modifier::DIM),
            link: plain.add_modifier(Modifier::ITALIC),
            border: plain,
            border_focused: bold,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_lag_state_has_its_own_style_in_both_themes() {
        for theme in [Theme::colored(), Theme::monochrome()] {
            for (index, state) in LagState::ALL.iter().enumerate() {
                for other in &LagState::ALL[index + 1..] {
                    assert_ne!(
                        theme.lag_state(*state),
                        theme.lag_state(*other),
                        "{state} and {other} look alike (colour: {})",
                        theme.color
                    );
                }
            }
        }
    }

    #[test]
    fn monochrome_uses_no_colour_at_all() {
        let theme = Theme::monochrome();
        let styles = [
            theme.text,
            theme.muted,
            theme.title,
            theme.title_alert,
            theme.header,
            theme.selected,
            theme.key,
            theme.error,
            theme.ok,
            theme.warn,
            theme.fact,
            theme.critical,
            theme.span_bar,
            theme.queue_wait,
            theme.link,
            theme.border,
            theme.border_focused,
        ];
        for style in styles {
            assert_eq!(style.fg, None, "{style:?} sets a foreground");
            assert_eq!(style.bg, None, "{style:?} sets a background");
        }
        assert_ne!(theme.selected, theme.text, "selection must stay visible");
    }
}
