//! Snapshots of every view, drawn by the real views into ratatui's `TestBackend`, at
//! 80×24 and 200×50, plus a span full of hostile strings.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use causeway_conventions::LagState;
use causeway_flow::{FlowOptions, Topology, reconstruct};
use causeway_storage::CorrelationRow;
use causeway_tui::data::flow_row;
use causeway_tui::model::{AlertRow, FlowSpans, LagRow};
use causeway_tui::state::{Action, FlowPane, Loaded, State, update};
use causeway_tui::theme::Theme;
use causeway_tui::views;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

use support::{BASE_NS, HOSTILE, chain_flow, hostile_span, shop_flow};

const SIZES: [(u16, u16); 2] = [(80, 24), (200, 50)];

fn topology() -> Topology {
    Topology::from_pairs([
        ("orders", "inventory"),
        ("orders", "payment"),
        ("payments", "shipping"),
        ("payments", "notification"),
    ])
}

/// The screen for `state`, as text.
fn screen(state: &State) -> String {
    let (width, height) = state.size;
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal
        .draw(|frame| views::draw(frame, state, &Theme::monochrome()))
        .unwrap();
    terminal.backend().to_string()
}

/// Snapshots `build(size)` at both sizes.
fn snapshot_both(name: &str, build: impl Fn((u16, u16)) -> State) {
    for size in SIZES {
        let state = build(size);
        insta::assert_snapshot!(format!("{name}_{}x{}", size.0, size.1), screen(&state));
    }
}

fn flows_state(size: (u16, u16)) -> State {
    let mut state = State::new("/var/lib/causeway/causeway.db", size);
    let rows = (1..=30)
        .rev()
        .map(|flow| {
            let base = BASE_NS + i64::from(flow) * 1_000_000_000;
            let spans = shop_flow(flow, base);
            let correlation = CorrelationRow {
                correlation_id: format!("ord-{flow}"),
                first_start_ns: base,
                last_end_ns: base + 85_000_000,
                has_error: flow % 3 == 0,
                root: false,
            };
            flow_row(&correlation, &spans, &topology(), &FlowOptions::default())
        })
        .take(state.page_size())
        .collect();
    update(
        &mut state,
        Action::Loaded(Loaded::Flows {
            filter: String::new(),
            offset: 0,
            rows,
        }),
    );
    // Two alerts fire (one more is pending): the title counts the firing ones.
    let alert = |pending: bool| AlertRow {
        firing: true,
        pending,
        rule: "flow-dead-letter".into(),
        group: None,
        evidence: String::new(),
        correlation_id: None,
        started_ns: BASE_NS,
        resolved_ns: None,
    };
    update(
        &mut state,
        Action::Loaded(Loaded::Alerts(vec![
            alert(false),
            alert(false),
            alert(true),
        ])),
    );
    update(&mut state, Action::Down);
    state
}

fn open_flow(size: (u16, u16), spans: Vec<causeway_storage::SpanRecord>, id: &str) -> State {
    let mut state = State::new("causeway.db", size);
    update(&mut state, Action::StartCommand);
    for c in format!("flow {id}").chars() {
        update(&mut state, Action::Input(c));
    }
    update(&mut state, Action::Submit);
    let flow = reconstruct(&spans, &topology(), &FlowOptions::default());
    update(
        &mut state,
        Action::Loaded(Loaded::Flow(Box::new(FlowSpans {
            id: id.to_owned(),
            spans,
            flow,
            truncated: false,
        }))),
    );
    state
}

#[test]
fn flows_list() {
    snapshot_both("flows", flows_state);
}

#[test]
fn flows_list_empty_database() {
    snapshot_both("flows_empty", |size| {
        let mut state = State::new("causeway.db", size);
        update(
            &mut state,
            Action::Loaded(Loaded::Flows {
                filter: String::new(),
                offset: 0,
                rows: Vec::new(),
            }),
        );
        state
    });
}

#[test]
fn flows_list_while_filtering() {
    snapshot_both("flows_filter", |size| {
        let mut state = flows_state(size);
        update(&mut state, Action::StartFilter);
        for c in "payment".chars() {
            update(&mut state, Action::Input(c));
        }
        state
    });
}

#[test]
fn flow_graph_and_waterfall() {
    snapshot_both("flow", |size| {
        let mut state = open_flow(size, shop_flow(7, BASE_NS), "ord-7");
        update(&mut state, Action::Right);
        state
    });
}

#[test]
fn flow_waterfall_focused() {
    snapshot_both("flow_waterfall", |size| {
        let mut state = open_flow(size, chain_flow(1, 12, BASE_NS), "chain-1");
        update(&mut state, Action::NextPane);
        for _ in 0..15 {
            update(&mut state, Action::Down);
        }
        assert_eq!(state.flow.as_ref().unwrap().pane, FlowPane::Waterfall);
        state
    });
}

#[test]
fn span_detail() {
    snapshot_both("span", |size| {
        let mut state = open_flow(size, shop_flow(7, BASE_NS), "ord-7");
        update(&mut state, Action::NextPane);
        // The payment attempt: an error with an exception event and a link.
        for _ in 0..3 {
            update(&mut state, Action::Down);
        }
        update(&mut state, Action::Open);
        state
    });
}

#[test]
fn span_with_hostile_strings() {
    snapshot_both("span_hostile", |size| {
        let mut state = open_flow(size, vec![hostile_span(BASE_NS)], "ord-evil");
        update(&mut state, Action::NextPane);
        update(&mut state, Action::Open);
        let text = screen(&state);
        assert!(!text.contains('\u{1b}'), "no escape reaches the screen");
        assert!(
            !text.contains('\u{202e}'),
            "no bidi override reaches the screen"
        );
        assert!(
            !text.contains('\u{7}') && !text.contains('\0'),
            "no control bytes"
        );
        assert!(
            text.contains("red alert"),
            "the readable part is still shown"
        );
        assert!(text.contains('…'), "long values end in an ellipsis");
        assert!(HOSTILE.len() > 5);
        state
    });
}

fn lag_rows() -> Vec<LagRow> {
    vec![
        LagRow {
            group: "shipping".into(),
            topic: "payments".into(),
            state: LagState::Warn,
            lag_messages: 1_250,
            lag_seconds: 42.5,
            trend: vec![0, 10, 40, 90, 200, 400, 800, 1_250],
            partitions: vec![(0, 1_000), (1, 250)],
            oldest_correlation: Some("ord-7".into()),
        },
        LagRow {
            group: "inventory".into(),
            topic: "orders".into(),
            state: LagState::Ok,
            lag_messages: 0,
            lag_seconds: 0.0,
            trend: vec![3, 1, 0, 0],
            partitions: vec![(0, 0)],
            oldest_correlation: None,
        },
    ]
}

#[test]
fn lag_with_partitions() {
    snapshot_both("lag", |size| {
        let mut state = State::new("causeway.db", size);
        update(&mut state, Action::StartCommand);
        for c in "lag".chars() {
            update(&mut state, Action::Input(c));
        }
        update(&mut state, Action::Submit);
        update(&mut state, Action::Loaded(Loaded::Lag(lag_rows())));
        update(&mut state, Action::TogglePartitions);
        state
    });
}

#[test]
fn alerts_firing_and_resolved() {
    snapshot_both("alerts", |size| {
        let mut state = State::new("causeway.db", size);
        update(&mut state, Action::StartCommand);
        for c in "alerts".chars() {
            update(&mut state, Action::Input(c));
        }
        update(&mut state, Action::Submit);
        let rows = vec![
            AlertRow {
                firing: true,
                pending: false,
                rule: "group-lag-seconds".into(),
                group: Some("shipping".into()),
                evidence: "shipping is 42.5s behind on payments (threshold 30s); oldest waiting event ord-7".into(),
                correlation_id: Some("ord-7".into()),
                started_ns: BASE_NS,
                resolved_ns: None,
            },
            AlertRow {
                firing: true,
                pending: false,
                rule: "flow-dead-letter".into(),
                group: Some("inventory".into()),
                evidence: "1 message dead-lettered by consumer group inventory on orders; first ord-22".into(),
                correlation_id: Some("ord-22".into()),
                started_ns: BASE_NS - 60_000_000_000,
                resolved_ns: None,
            },
            AlertRow {
                firing: true,
                pending: true,
                rule: "flow-incomplete".into(),
                group: Some("notification".into()),
                evidence: "2 events on orders not processed by consumer group notification within 5m; first ord-9".into(),
                correlation_id: Some("ord-9".into()),
                started_ns: BASE_NS - 30_000_000_000,
                resolved_ns: None,
            },
            AlertRow {
                firing: false,
                pending: false,
                rule: "group-stalled".into(),
                group: Some("inventory".into()),
                evidence: "inventory committed nothing for 5m".into(),
                correlation_id: None,
                started_ns: BASE_NS - 600_000_000_000,
                resolved_ns: Some(BASE_NS - 300_000_000_000),
            },
        ];
        update(&mut state, Action::Loaded(Loaded::Alerts(rows)));
        state
    });
}

#[test]
fn an_alert_names_its_flow_whatever_its_group_is_called() {
    let mut state = State::new("causeway.db", (120, 24));
    update(&mut state, Action::StartCommand);
    for c in "alerts".chars() {
        update(&mut state, Action::Input(c));
    }
    update(&mut state, Action::Submit);
    let rows = vec![AlertRow {
        firing: true,
        pending: false,
        rule: "group-lag\u{2028}seconds".into(),
        group: Some("ship\u{1b}[31".into()),
        evidence: "behind".into(),
        correlation_id: Some("ord-7\u{200d}".into()),
        started_ns: BASE_NS,
        resolved_ns: None,
    }];
    update(&mut state, Action::Loaded(Loaded::Alerts(rows)));
    let text = screen(&state);
    assert!(!text.contains('\u{1b}'), "no escape reaches the screen");
    assert!(
        text.contains("flow ord-7\u{fffd}"),
        "the group's unfinished escape does not hide the flow, and the joiner shows:\n{text}"
    );
    assert!(
        text.contains("group-lag seconds"),
        "the line separator is a space"
    );
}

#[test]
fn help_overlay() {
    snapshot_both("help", |size| {
        let mut state = flows_state(size);
        update(&mut state, Action::ToggleHelp);
        state
    });
}

#[test]
fn every_screen_keeps_the_key_hints() {
    for size in SIZES {
        for state in [
            flows_state(size),
            open_flow(size, shop_flow(7, BASE_NS), "ord-7"),
        ] {
            let text = screen(&state);
            let last = text.lines().last().unwrap_or_default();
            assert!(
                last.contains("help"),
                "the bottom line shows key hints: {last}"
            );
        }
    }
}
