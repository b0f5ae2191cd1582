//! The dashboard's lag view on states the collector itself concluded: lag samples go
//! through the collector's own rule evaluation, its status rows into a real SQLite file,
//! and the dashboard's reader and lag view draw them. Each state gets its own style, and a
//! group's row shows its worst partition.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use causeway_collector::lag::evaluate::evaluate;
use causeway_collector::lag::poller::{HeadRecords, POLLER_SOURCE};
use causeway_conventions::LagState;
use causeway_storage::{LagSample, Store};
use causeway_tui::data::Reader;
use causeway_tui::state::{Action, Loaded, Request, State, update};
use causeway_tui::theme::Theme;
use causeway_tui::views;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::style::{Color, Modifier};

use crate::harness::temp_dir;

const S: i64 = 1_000_000_000;
/// When the evaluation runs: just after the last sample.
const NOW: i64 = 1_700_000_030 * S;

/// One poller sample of `group` on `topic`/`partition`, `age_s` seconds before [`NOW`].
#[allow(clippy::too_many_arguments)]
fn sample(
    group: &str,
    topic: &str,
    partition: i32,
    age_s: i64,
    committed: Option<i64>,
    low: i64,
    high: i64,
    members: i64,
) -> LagSample {
    LagSample {
        sampled_ns: NOW - age_s * S,
        consumer_group: group.into(),
        topic: topic.into(),
        partition,
        committed_offset: committed,
        low_watermark: Some(low),
        high_watermark: Some(high),
        lag: committed.map(|c| (high - c.max(low)).max(0)),
        members: Some(members),
        source: POLLER_SOURCE.into(),
    }
}

/// Three samples per partition, ten seconds apart, each a situation the rules name.
fn samples() -> Vec<LagSample> {
    let mut samples = Vec::new();
    let mut three = |group: &str, partition: i32, points: [(Option<i64>, i64, i64, i64); 3]| {
        for (step, (committed, low, high, members)) in points.into_iter().enumerate() {
            let age = 20 - 10 * step as i64;
            samples.push(sample(
                group, "orders", partition, age, committed, low, high, members,
            ));
        }
    };
    // Never committed: nothing can be said.
    three(
        "g-unknown",
        0,
        [(None, 0, 5, 1), (None, 0, 6, 1), (None, 0, 7, 1)],
    );
    // Caught up.
    three(
        "g-ok",
        0,
        [(Some(5), 0, 5, 1), (Some(7), 0, 7, 1), (Some(9), 0, 9, 1)],
    );
    // Consuming, but the lag grows at every sample.
    three(
        "g-warn",
        0,
        [(Some(1), 0, 5, 1), (Some(2), 0, 8, 1), (Some(3), 0, 12, 1)],
    );
    // Retention deleted messages the group never read.
    three(
        "g-err",
        0,
        [
            (Some(5), 10, 20, 1),
            (Some(6), 10, 20, 1),
            (Some(7), 10, 20, 1),
        ],
    );
    // The committed offset went back.
    three(
        "g-rewind",
        0,
        [
            (Some(10), 0, 20, 1),
            (Some(5), 0, 20, 1),
            (Some(6), 0, 20, 1),
        ],
    );
    // Live members, an offset that does not move, messages waiting.
    three(
        "g-stall",
        0,
        [
            (Some(5), 0, 10, 1),
            (Some(5), 0, 11, 1),
            (Some(5), 0, 12, 1),
        ],
    );
    // Nobody consuming, messages waiting.
    three(
        "g-stop",
        0,
        [
            (Some(5), 0, 10, 0),
            (Some(5), 0, 11, 0),
            (Some(5), 0, 12, 0),
        ],
    );
    // One partition fine, the other stalled: the group's row is STALL.
    three(
        "g-mixed",
        0,
        [(Some(5), 0, 5, 1), (Some(6), 0, 6, 1), (Some(7), 0, 7, 1)],
    );
    three(
        "g-mixed",
        1,
        [(Some(2), 0, 9, 1), (Some(2), 0, 9, 1), (Some(2), 0, 9, 1)],
    );
    samples
}

/// The lag view for `rows`, drawn into a test terminal.
fn draw(rows: Vec<causeway_tui::model::LagRow>, theme: &Theme) -> Buffer {
    let size = (160, 40);
    let mut state = State::new("causeway.db", size);
    update(&mut state, Action::StartCommand);
    for c in "lag".chars() {
        update(&mut state, Action::Input(c));
    }
    update(&mut state, Action::Submit);
    update(&mut state, Action::Loaded(Loaded::Lag(rows)));
    let mut terminal = Terminal::new(TestBackend::new(size.0, size.1)).unwrap();
    terminal
        .draw(|frame| views::draw(frame, &state, theme))
        .unwrap();
    terminal.backend().buffer().clone()
}

/// The colour and modifiers of the first cell of `word` on the line that starts with
/// `group`.
fn style_of(buffer: &Buffer, group: &str, word: &str) -> (Color, Modifier) {
    let width = buffer.area.width;
    for y in 0..buffer.area.height {
        let line: String = (0..width)
            .map(|x| buffer[(x, y)].symbol().to_owned())
            .collect();
        if !line.trim_start().starts_with(group) {
            continue;
        }
        let byte = line
            .find(&format!(" {word} "))
            .unwrap_or_else(|| panic!("no {word} on the line of {group}: {line:?}"))
            + 1;
        let x = u16::try_from(line[..byte].chars().count()).unwrap();
        let cell = &buffer[(x, y)];
        return (cell.fg, cell.modifier);
    }
    panic!("no line for group {group}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_state_the_collector_concludes_is_drawn_in_its_own_style() {
    let evaluation = evaluate(&samples(), &[], NOW, &HeadRecords::new());
    let dir = temp_dir();
    let path = dir.path().join("lag-view.db");
    let writer = Store::open(&path).await.unwrap();
    writer.write_lag_status(&evaluation.statuses).await.unwrap();

    let mut reader = Reader::new(Store::open_read_only(&path).await.unwrap());
    let Loaded::Lag(rows) = reader.answer(Request::Lag).await else {
        panic!("expected lag rows");
    };
    let expected = [
        ("g-unknown", LagState::Unknown),
        ("g-ok", LagState::Ok),
        ("g-warn", LagState::Warn),
        ("g-err", LagState::Err),
        ("g-rewind", LagState::Rewind),
        ("g-stall", LagState::Stall),
        ("g-stop", LagState::Stop),
        ("g-mixed", LagState::Stall),
    ];
    for (group, state) in expected {
        let row = rows
            .iter()
            .find(|row| row.group == group)
            .unwrap_or_else(|| panic!("no row for {group}: {rows:?}"));
        assert_eq!(
            row.state, state,
            "{group}: the collector's state, worst partition first"
        );
    }
    let mixed = rows.iter().find(|row| row.group == "g-mixed").unwrap();
    assert_eq!(
        mixed.partitions.len(),
        2,
        "both partitions fold into one row"
    );

    for theme in [Theme::colored(), Theme::monochrome()] {
        let buffer = draw(rows.clone(), &theme);
        for (group, state) in expected {
            // The first row is selected: its cells are the state's style over the selection.
            let style = if rows[0].group == group {
                theme.selected.patch(theme.lag_state(state))
            } else {
                theme.lag_state(state)
            };
            let drawn = (style.fg.unwrap_or(Color::Reset), style.add_modifier);
            assert_eq!(
                style_of(&buffer, group, state.name()),
                drawn,
                "{group} is drawn as {state} (colour: {})",
                theme.color
            );
        }
    }
}
