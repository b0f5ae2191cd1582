//! The waterfall: one row per span on a shared time axis, queue waits drawn before each
//! consumer's first attempt in their own style, the critical path emphasised.

use std::collections::{HashMap, HashSet};

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};

use crate::sanitize;
use crate::theme::Theme;
use crate::views::format;
use causeway_flow::{Flow, SegmentKind};

/// Cells of the duration column at the right.
const DURATION_WIDTH: usize = 9;

/// The waterfall rows that fit in `area`, scrolled so that `selected` is visible.
pub fn waterfall_lines(
    flow: &Flow,
    selected: usize,
    theme: &Theme,
    area: Rect,
) -> Vec<Line<'static>> {
    let width = usize::from(area.width);
    let height = usize::from(area.height).max(1);
    let label_width = (width * 3 / 10).clamp(12, 40).min(width);
    let bar_width = width
        .saturating_sub(label_width + DURATION_WIDTH + 2)
        .max(1);
    let scale = Scale {
        start_ns: flow.start_ns,
        span_ns: flow.duration_ns.max(1),
        cells: bar_width,
    };
    let waits: HashMap<usize, i64> = flow
        .hops
        .iter()
        .filter_map(|hop| Some((*hop.attempts.first()?, hop.queue_wait_ns?)))
        .filter(|(_, wait)| *wait > 0)
        .collect();
    let critical: HashSet<usize> = flow
        .critical_path
        .segments
        .iter()
        .filter(|segment| segment.kind != SegmentKind::QueueWait)
        .map(|segment| segment.step)
        .collect();
    let first = selected.saturating_sub(height - 1);
    flow.steps
        .iter()
        .enumerate()
        .skip(first)
        .take(height)
        .map(|(index, step)| {
            let label = format!(
                "{}: {}",
                sanitize::clean(&step.service),
                sanitize::clean(&step.name)
            );
            let label = sanitize::fit(&label, label_width);
            let pad = label_width.saturating_sub(sanitize::width(&label));
            let bar_style = if step.status == causeway_storage::StatusCode::Error {
                theme.error
            } else if critical.contains(&index) {
                theme.critical
            } else {
                theme.span_bar
            };
            let start = scale.cell(step.start_ns);
            let end = scale.cell(step.end_ns).max(start + 1).min(bar_width);
            let wait_start = waits
                .get(&index)
                .map_or(start, |wait| scale.cell(step.start_ns - wait))
                .min(start);
            let mut spans = vec![
                Span::styled(format!("{label}{} ", " ".repeat(pad)), theme.text),
                Span::raw(" ".repeat(wait_start)),
                Span::styled("░".repeat(start - wait_start), theme.queue_wait),
                Span::styled("█".repeat(end.saturating_sub(start)), bar_style),
                Span::raw(" ".repeat(bar_width.saturating_sub(end))),
                Span::styled(
                    format!(
                        " {:>width$}",
                        format::duration(step.duration_ns),
                        width = DURATION_WIDTH - 1
                    ),
                    theme.muted,
                ),
            ];
            if index == selected {
                spans[0] = Span::styled(format!("{label}{} ", " ".repeat(pad)), theme.selected);
            }
            Line::from(spans)
        })
        .collect()
}

/// Maps times onto the cells of the bar area.
struct Scale {
    start_ns: i64,
    span_ns: i64,
    cells: usize,
}

impl Scale {
    fn cell(&self, time_ns: i64) -> usize {
        let offset = (time_ns - self.start_ns).clamp(0, self.span_ns) as i128;
        let cell = offset * self.cells as i128 / self.span_ns as i128;
        (cell as usize).min(self.cells.saturating_sub(1))
    }
}
