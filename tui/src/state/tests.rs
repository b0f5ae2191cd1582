//! Reducer tests: key → action → state, and the requests each change sends.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::*;
use crate::keymap;

fn row(id: &str) -> FlowRow {
    FlowRow {
        correlation_id: id.to_owned(),
        start_ns: 0,
        duration_ns: 1,
        services: vec!["order".to_owned()],
        events: 1,
        has_error: false,
        badges: Vec::new(),
        facts: Vec::new(),
    }
}

/// A state on an 80×24 terminal whose flows list shows `ids`.
fn with_flows(ids: &[&str]) -> State {
    let mut state = State::new("test.db", (80, 24));
    let rows = ids.iter().map(|id| row(id)).collect();
    update(
        &mut state,
        Action::Loaded(Loaded::Flows {
            filter: String::new(),
            offset: 0,
            rows,
        }),
    );
    state
}

/// Presses `code` the way the run loop does: keymap, then update.
fn press(state: &mut State, code: KeyCode) -> Vec<Request> {
    match keymap::action_for(KeyEvent::new(code, KeyModifiers::NONE), state.mode) {
        Some(action) => update(state, action),
        None => Vec::new(),
    }
}

fn type_text(state: &mut State, text: &str) -> Vec<Request> {
    let mut last = Vec::new();
    for c in text.chars() {
        last = press(state, KeyCode::Char(c));
    }
    last
}

#[test]
fn moving_through_the_flows_list() {
    let cases: &[(&[KeyCode], usize, &str)] = &[
        (&[KeyCode::Char('j')], 1, "j moves down"),
        (&[KeyCode::Down, KeyCode::Down], 2, "arrows move down"),
        (&[KeyCode::Down, KeyCode::Char('k')], 0, "k moves back up"),
        (&[KeyCode::Up], 0, "up at the top stays"),
        (&[KeyCode::Char('G')], 2, "G goes to the last row"),
        (
            &[KeyCode::Char('G'), KeyCode::Char('g')],
            0,
            "g goes to the first row",
        ),
        (
            &[KeyCode::Down; 5],
            2,
            "down stops at the last row of a short list",
        ),
    ];
    for (keys, expected, reason) in cases {
        let mut state = with_flows(&["c", "b", "a"]);
        for key in *keys {
            press(&mut state, *key);
        }
        assert_eq!(state.flows.selected, *expected, "{reason}");
        assert_eq!(
            state.flows.selected_id.as_deref(),
            Some(["c", "b", "a"][*expected]),
            "{reason}: the selected id follows"
        );
    }
}

#[test]
fn live_reload_keeps_the_selected_flow() {
    let mut state = with_flows(&["c", "b", "a"]);
    press(&mut state, KeyCode::Down);
    assert_eq!(state.flows.selected_id.as_deref(), Some("b"));
    // Two newer flows arrive on top: the selection stays on "b", now third.
    update(
        &mut state,
        Action::Loaded(Loaded::Flows {
            filter: String::new(),
            offset: 0,
            rows: vec![row("e"), row("d"), row("c"), row("b"), row("a")],
        }),
    );
    assert_eq!(state.flows.selected, 3);
    assert_eq!(state.flows.selected_id.as_deref(), Some("b"));
}

#[test]
fn stale_answers_are_ignored() {
    let mut state = with_flows(&["c", "b"]);
    type_text(&mut state, "/x");
    update(
        &mut state,
        Action::Loaded(Loaded::Flows {
            filter: String::new(),
            offset: 0,
            rows: vec![row("old")],
        }),
    );
    assert_eq!(
        state.flows.rows,
        vec![row("c"), row("b")],
        "answer for another filter"
    );
}

#[test]
fn filter_is_applied_as_typed_and_cleared_by_esc() {
    let mut state = with_flows(&["c", "b", "a"]);
    assert!(press(&mut state, KeyCode::Char('/')).is_empty());
    assert_eq!(state.mode, Mode::Filter);
    let requests = type_text(&mut state, "ord");
    assert_eq!(
        requests,
        vec![Request::Flows {
            filter: "ord".to_owned(),
            offset: 0,
            limit: 21,
        }],
        "each keystroke asks for the filtered window that fits on screen"
    );
    assert_eq!(state.flows.filter, "ord");
    assert!(
        state.flows.searching,
        "the list says it is searching until the answer"
    );
    update(
        &mut state,
        Action::Loaded(Loaded::Flows {
            filter: "ord".to_owned(),
            offset: 0,
            rows: vec![row("ord-1")],
        }),
    );
    assert!(!state.flows.searching, "the answer for the filter arrived");
    press(&mut state, KeyCode::Enter);
    assert_eq!(state.mode, Mode::Normal);
    assert_eq!(state.flows.filter, "ord", "enter keeps the filter");
    press(&mut state, KeyCode::Char('/'));
    let requests = press(&mut state, KeyCode::Esc);
    assert_eq!(state.flows.filter, "", "esc clears the filter");
    assert_eq!(requests.len(), 1, "and reloads the unfiltered list");
}

#[test]
fn q_is_text_while_filtering_and_quits_otherwise() {
    let mut state = with_flows(&["c"]);
    press(&mut state, KeyCode::Char('/'));
    press(&mut state, KeyCode::Char('q'));
    assert!(!state.quit);
    assert_eq!(state.input, "q");
    press(&mut state, KeyCode::Enter);
    press(&mut state, KeyCode::Char('q'));
    assert!(state.quit);
}

#[test]
fn enter_opens_a_flow_and_esc_returns() {
    let mut state = with_flows(&["c", "b"]);
    press(&mut state, KeyCode::Down);
    let requests = press(&mut state, KeyCode::Enter);
    assert_eq!(requests, vec![Request::Flow { id: "b".to_owned() }]);
    assert_eq!(state.view(), ViewId::Flow);
    assert_eq!(state.flow.as_ref().map(|flow| flow.id.as_str()), Some("b"));
    press(&mut state, KeyCode::Esc);
    assert_eq!(state.view(), ViewId::Flows);
    assert_eq!(
        state.flows.selected_id.as_deref(),
        Some("b"),
        "selection kept"
    );
}

#[test]
fn commands_jump_between_views() {
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let cases: &[(&str, ViewId, Option<Request>, &str)] = &[
        ("lag", ViewId::Lag, Some(Request::Lag), ":lag opens lag"),
        (
            "alerts",
            ViewId::Alerts,
            Some(Request::Alerts),
            ":alerts opens alerts",
        ),
        (
            "flow ord-9",
            ViewId::Flow,
            Some(Request::Flow {
                id: "ord-9".to_owned(),
            }),
            ":flow ID opens a correlation",
        ),
        (
            &format!("flow {trace}"),
            ViewId::Flow,
            Some(Request::Trace {
                trace_id: trace.parse().unwrap(),
            }),
            ":flow TRACE opens a trace",
        ),
        ("nonsense", ViewId::Flows, None, "unknown command stays put"),
    ];
    for (command, view, request, reason) in cases {
        let mut state = with_flows(&["c"]);
        press(&mut state, KeyCode::Char(':'));
        type_text(&mut state, command);
        let requests = press(&mut state, KeyCode::Enter);
        assert_eq!(state.view(), *view, "{reason}");
        assert_eq!(requests.first(), request.as_ref(), "{reason}");
    }
    let mut state = with_flows(&["c"]);
    press(&mut state, KeyCode::Char(':'));
    type_text(&mut state, &format!("flow {}", trace.to_uppercase()));
    press(&mut state, KeyCode::Enter);
    assert_eq!(
        state.flow.as_ref().map(|flow| flow.id.as_str()),
        Some(trace),
        "an upper-case trace id waits for the answer under its printed form"
    );
    let mut state = with_flows(&["c"]);
    press(&mut state, KeyCode::Char(':'));
    type_text(&mut state, "nonsense");
    press(&mut state, KeyCode::Enter);
    assert!(
        state
            .notice
            .as_deref()
            .unwrap_or_default()
            .contains("unknown command")
    );
}

#[test]
fn help_overlay_opens_and_closes() {
    let mut state = with_flows(&["c", "b"]);
    press(&mut state, KeyCode::Char('?'));
    assert!(state.help);
    press(&mut state, KeyCode::Down);
    assert_eq!(
        state.flows.selected, 0,
        "keys under the help do not move the list"
    );
    press(&mut state, KeyCode::Esc);
    assert!(!state.help, "esc closes the help");
    assert_eq!(state.view(), ViewId::Flows, "and does not leave the view");
}

#[test]
fn scrolling_past_the_window_asks_for_the_next_rows() {
    // 80×6 leaves room for 3 rows.
    let mut state = State::new("test.db", (80, 6));
    update(
        &mut state,
        Action::Loaded(Loaded::Flows {
            filter: String::new(),
            offset: 0,
            rows: vec![row("e"), row("d"), row("c")],
        }),
    );
    press(&mut state, KeyCode::Char('G'));
    let requests = press(&mut state, KeyCode::Down);
    assert_eq!(
        requests,
        vec![Request::Flows {
            filter: String::new(),
            offset: 1,
            limit: 3,
        }]
    );
    let requests = press(&mut state, KeyCode::Char('g'));
    assert_eq!(
        requests,
        vec![Request::Flows {
            filter: String::new(),
            offset: 0,
            limit: 3,
        }],
        "g returns to the newest"
    );
}

#[test]
fn resize_changes_the_window_size() {
    let mut state = with_flows(&["c"]);
    let requests = update(
        &mut state,
        Action::Resize {
            width: 200,
            height: 50,
        },
    );
    assert_eq!(state.page_size(), 47);
    assert_eq!(
        requests,
        vec![state.flows_request()],
        "a taller screen loads more rows"
    );
}

#[test]
fn failures_become_a_notice_and_unavailable_views_say_why() {
    let mut state = with_flows(&["c"]);
    update(
        &mut state,
        Action::Loaded(Loaded::Failed("database is locked".to_owned())),
    );
    assert_eq!(state.notice.as_deref(), Some("database is locked"));
    update(
        &mut state,
        Action::Loaded(Loaded::Unavailable {
            view: ViewId::Lag,
            reason: "no lag table".to_owned(),
        }),
    );
    assert_eq!(state.lag.unavailable.as_deref(), Some("no lag table"));
}

mod invariants {
    use proptest::prelude::*;

    use super::*;

    fn any_action() -> impl Strategy<Value = Action> {
        prop_oneof![
            Just(Action::Up),
            Just(Action::Down),
            Just(Action::Left),
            Just(Action::Right),
            Just(Action::PageUp),
            Just(Action::PageDown),
            Just(Action::Top),
            Just(Action::Bottom),
            Just(Action::Open),
            Just(Action::Back),
            Just(Action::NextPane),
            Just(Action::StartFilter),
            Just(Action::StartCommand),
            Just(Action::Submit),
            Just(Action::Erase),
            Just(Action::ToggleHelp),
            Just(Action::TogglePartitions),
            Just(Action::Refresh),
            any::<char>().prop_map(Action::Input),
            (1u16..300, 1u16..100).prop_map(|(width, height)| Action::Resize { width, height }),
            (0usize..40).prop_map(|count| Action::Loaded(Loaded::Flows {
                filter: String::new(),
                offset: 0,
                rows: (0..count).map(|n| row(&format!("c{n}"))).collect(),
            })),
        ]
    }

    proptest! {
        #[test]
        fn any_key_sequence_keeps_the_state_consistent(actions in proptest::collection::vec(any_action(), 0..60)) {
            let mut state = with_flows(&["c", "b", "a"]);
            for action in actions {
                update(&mut state, action);
                prop_assert!(!state.stack.is_empty(), "there is always a view");
                prop_assert_eq!(state.stack[0], ViewId::Flows, "the flows list is at the bottom");
                prop_assert!(
                    state.flows.rows.is_empty() || state.flows.selected < state.flows.rows.len(),
                    "the selection is on a row"
                );
                prop_assert!(state.flows.rows.len() <= state.page_size().max(40));
                if state.view() == ViewId::Flow {
                    prop_assert!(state.flow.is_some(), "the flow view has a flow");
                }
                if state.view() == ViewId::Span {
                    prop_assert!(state.span.is_some(), "the span view has a span");
                }
            }
        }
    }
}
