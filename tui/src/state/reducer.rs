//! `update`: the one place the dashboard's state changes.

use super::{Action, FlowPane, FlowState, Loaded, Mode, Request, SpanState, State, ViewId};

/// Applies `action` to `state` and returns the reads the new state needs.
pub fn update(state: &mut State, action: Action) -> Vec<Request> {
    match action {
        Action::Quit => {
            state.quit = true;
            Vec::new()
        }
        Action::Resize { width, height } => {
            let grew = height > state.size.1;
            state.size = (width, height);
            if grew {
                vec![state.flows_request()]
            } else {
                state.flows.rows.truncate(state.page_size());
                clamp_flows_selection(state);
                Vec::new()
            }
        }
        Action::Refresh => refresh(state),
        Action::Loaded(loaded) => {
            apply_loaded(state, loaded);
            Vec::new()
        }
        Action::ToggleHelp => {
            state.help = !state.help;
            Vec::new()
        }
        _ if state.help => {
            // The help overlay takes Esc to close; everything else is ignored under it.
            if action == Action::Back {
                state.help = false;
            }
            Vec::new()
        }
        _ if state.mode != Mode::Normal => edit_input(state, action),
        action => navigate(state, action),
    }
}

/// Reloads what is on screen (the data may have changed under us).
fn refresh(state: &State) -> Vec<Request> {
    match state.view() {
        // The alerts, for the count of firing ones in the flows screen's title.
        ViewId::Flows => vec![state.flows_request(), Request::Alerts],
        ViewId::Flow => state
            .flow
            .iter()
            .map(|flow| flow_request(&flow.id))
            .collect(),
        ViewId::Span => Vec::new(),
        ViewId::Lag => vec![Request::Lag],
        ViewId::Alerts => vec![Request::Alerts],
    }
}

fn apply_loaded(state: &mut State, loaded: Loaded) {
    match loaded {
        Loaded::Flows {
            filter,
            offset,
            rows,
        } => {
            // An answer to an older filter or window is stale: a newer request is on its way.
            if filter != state.flows.filter || offset != state.flows.offset {
                return;
            }
            state.flows.rows = rows;
            state.flows.loaded = true;
            state.flows.searching = false;
            let kept = state.flows.selected_id.as_ref().and_then(|id| {
                state
                    .flows
                    .rows
                    .iter()
                    .position(|row| &row.correlation_id == id)
            });
            if let Some(index) = kept {
                state.flows.selected = index;
            }
            clamp_flows_selection(state);
        }
        Loaded::Flow(flow_spans) => {
            if let Some(flow) = state.flow.as_mut().filter(|flow| flow.id == flow_spans.id) {
                let flow_spans = *flow_spans;
                flow.spans = flow_spans.spans;
                flow.flow = Some(flow_spans.flow);
                flow.truncated = flow_spans.truncated;
                flow.loaded = true;
                flow.selected_span = flow.selected_span.min(flow.step_count().saturating_sub(1));
                flow.selected_node = flow.selected_node.min(flow.node_count().saturating_sub(1));
            }
        }
        Loaded::Lag(rows) => {
            state.lag.rows = rows;
            state.lag.loaded = true;
            state.lag.unavailable = None;
            state.lag.selected = state
                .lag
                .selected
                .min(state.lag.rows.len().saturating_sub(1));
        }
        Loaded::Alerts(rows) => {
            state.alerts.rows = rows;
            state.alerts.loaded = true;
            state.alerts.unavailable = None;
            state.alerts.selected = state
                .alerts
                .selected
                .min(state.alerts.rows.len().saturating_sub(1));
        }
        Loaded::Unavailable { view, reason } => match view {
            ViewId::Lag => {
                state.lag.unavailable = Some(reason);
                state.lag.loaded = true;
            }
            ViewId::Alerts => {
                state.alerts.unavailable = Some(reason);
                state.alerts.loaded = true;
            }
            _ => state.notice = Some(reason),
        },
        Loaded::Failed(message) => state.notice = Some(message),
    }
}

/// Keeps the selection on a row and remembers which correlation it is on.
fn clamp_flows_selection(state: &mut State) {
    let flows = &mut state.flows;
    flows.selected = flows.selected.min(flows.rows.len().saturating_sub(1));
    flows.selected_id = flows
        .rows
        .get(flows.selected)
        .map(|row| row.correlation_id.clone())
        .or(flows.selected_id.take());
}

fn edit_input(state: &mut State, action: Action) -> Vec<Request> {
    let filtering = state.mode == Mode::Filter;
    match action {
        Action::Input(c) => state.input.push(c),
        Action::Erase => {
            state.input.pop();
        }
        Action::Back => {
            state.mode = Mode::Normal;
            state.input.clear();
            if filtering {
                return set_filter(state, String::new());
            }
            return Vec::new();
        }
        Action::Submit => {
            state.mode = Mode::Normal;
            let text = std::mem::take(&mut state.input);
            if filtering {
                return set_filter(state, text);
            }
            return run_command(state, text.trim());
        }
        _ => return Vec::new(),
    }
    if filtering {
        // The list follows the filter as it is typed.
        let text = state.input.clone();
        return set_filter(state, text);
    }
    Vec::new()
}

fn set_filter(state: &mut State, filter: String) -> Vec<Request> {
    if filter == state.flows.filter {
        return Vec::new();
    }
    state.flows.filter = filter;
    state.flows.searching = true;
    state.flows.offset = 0;
    state.flows.selected = 0;
    state.flows.selected_id = None;
    vec![state.flows_request()]
}

fn run_command(state: &mut State, command: &str) -> Vec<Request> {
    let mut words = command.split_whitespace();
    let name = words.next().unwrap_or_default();
    let argument = words.next();
    state.notice = None;
    match (name, argument) {
        ("", _) => Vec::new(),
        ("q" | "quit", _) => {
            state.quit = true;
            Vec::new()
        }
        ("help", _) => {
            state.help = true;
            Vec::new()
        }
        ("flows" | "f", _) => {
            state.stack = vec![ViewId::Flows];
            vec![state.flows_request()]
        }
        ("flow", Some(id)) => open_flow(state, id.to_owned()),
        ("lag" | "l", _) => switch_to(state, ViewId::Lag, Request::Lag),
        ("alerts" | "a", _) => switch_to(state, ViewId::Alerts, Request::Alerts),
        _ => {
            state.notice = Some(format!(
                "unknown command :{command} (try :flows, :flow ID, :lag, :alerts, :q)"
            ));
            Vec::new()
        }
    }
}

fn switch_to(state: &mut State, view: ViewId, request: Request) -> Vec<Request> {
    state.stack = vec![ViewId::Flows, view];
    vec![request]
}

fn open_flow(state: &mut State, id: String) -> Vec<Request> {
    if state.view() != ViewId::Flow {
        state.stack.push(ViewId::Flow);
    }
    state.span = None;
    let request = flow_request(&id);
    // A trace ID is kept in its printed form, the form its answer comes back under.
    let id = match &request {
        Request::Trace { trace_id } => trace_id.to_string(),
        _ => id,
    };
    state.flow = Some(FlowState::loading(id));
    vec![request]
}

/// A trace ID (32 hex digits) loads a trace; anything else is a correlation ID.
fn flow_request(id: &str) -> Request {
    match id.parse() {
        Ok(trace_id) if id.len() == 32 => Request::Trace { trace_id },
        _ => Request::Flow { id: id.to_owned() },
    }
}

fn navigate(state: &mut State, action: Action) -> Vec<Request> {
    match action {
        Action::StartFilter => {
            state.mode = Mode::Filter;
            state.input = state.flows.filter.clone();
            if state.view() != ViewId::Flows {
                state.stack = vec![ViewId::Flows];
                return vec![state.flows_request()];
            }
            Vec::new()
        }
        Action::StartCommand => {
            state.mode = Mode::Command;
            state.input.clear();
            Vec::new()
        }
        Action::Back => {
            state.notice = None;
            if state.stack.len() > 1 {
                state.stack.pop();
            }
            if state.view() == ViewId::Flows {
                return vec![state.flows_request()];
            }
            Vec::new()
        }
        Action::TogglePartitions => {
            state.partitions = !state.partitions;
            Vec::new()
        }
        _ => match state.view() {
            ViewId::Flows => navigate_flows(state, action),
            ViewId::Flow => navigate_flow(state, action),
            ViewId::Span => navigate_span(state, action),
            ViewId::Lag => navigate_lag(state, action),
            ViewId::Alerts => navigate_alerts(state, action),
        },
    }
}

/// Moves `selected` within `len` rows; returns the new index.
fn step(selected: usize, len: usize, action: &Action, page: usize) -> usize {
    let last = len.saturating_sub(1);
    match action {
        Action::Up => selected.saturating_sub(1),
        Action::Down => (selected + 1).min(last),
        Action::PageUp => selected.saturating_sub(page),
        Action::PageDown => (selected + page).min(last),
        Action::Top => 0,
        Action::Bottom => last,
        _ => selected,
    }
}

fn navigate_flows(state: &mut State, action: Action) -> Vec<Request> {
    let page = state.page_size();
    let flows = &mut state.flows;
    let len = flows.rows.len();
    let full = len >= page;
    match action {
        Action::Open => {
            let Some(row) = flows.rows.get(flows.selected) else {
                return Vec::new();
            };
            let id = row.correlation_id.clone();
            open_flow(state, id)
        }
        // Past either end of the window: slide the window, keep the selection's place.
        Action::Down | Action::PageDown if full && flows.selected + 1 >= len => {
            flows.offset += if action == Action::Down { 1 } else { page };
            flows.selected_id = None;
            vec![state.flows_request()]
        }
        Action::Up | Action::PageUp if flows.selected == 0 && flows.offset > 0 => {
            let by = if action == Action::Up { 1 } else { page };
            flows.offset = flows.offset.saturating_sub(by);
            flows.selected_id = None;
            vec![state.flows_request()]
        }
        Action::Top if flows.offset > 0 => {
            flows.offset = 0;
            flows.selected = 0;
            flows.selected_id = None;
            vec![state.flows_request()]
        }
        action => {
            flows.selected = step(flows.selected, len, &action, page);
            flows.selected_id = flows
                .rows
                .get(flows.selected)
                .map(|row| row.correlation_id.clone());
            Vec::new()
        }
    }
}

fn navigate_flow(state: &mut State, action: Action) -> Vec<Request> {
    let page = state.page_size();
    let Some(flow) = state.flow.as_mut() else {
        return Vec::new();
    };
    match action {
        Action::NextPane => {
            flow.pane = match flow.pane {
                FlowPane::Graph => FlowPane::Waterfall,
                FlowPane::Waterfall => FlowPane::Graph,
            };
            Vec::new()
        }
        Action::Open if flow.pane == FlowPane::Graph => {
            // Opening a node shows its spans: the waterfall, on the node's first span.
            if let Some(first) = flow.first_step_of_node(flow.selected_node) {
                flow.selected_span = first;
            }
            flow.pane = FlowPane::Waterfall;
            Vec::new()
        }
        Action::Open => {
            if let Some(span) = flow.span_of_step(flow.selected_span) {
                state.span = Some(SpanState {
                    span: span.clone(),
                    selected_link: 0,
                    scroll: 0,
                });
                state.stack.push(ViewId::Span);
            }
            Vec::new()
        }
        Action::Left | Action::Right | Action::Up | Action::Down
            if flow.pane == FlowPane::Graph =>
        {
            let nodes = flow.node_count();
            let forward = matches!(action, Action::Right | Action::Down);
            flow.selected_node = if forward {
                (flow.selected_node + 1).min(nodes.saturating_sub(1))
            } else {
                flow.selected_node.saturating_sub(1)
            };
            if let Some(first) = flow.first_step_of_node(flow.selected_node) {
                flow.selected_span = first;
            }
            Vec::new()
        }
        action => {
            flow.selected_span = step(flow.selected_span, flow.step_count(), &action, page);
            Vec::new()
        }
    }
}

fn navigate_span(state: &mut State, action: Action) -> Vec<Request> {
    let Some(span) = state.span.as_mut() else {
        return Vec::new();
    };
    let links = span.span.links.len();
    match action {
        Action::Open => match span.span.links.get(span.selected_link) {
            Some(link) => {
                let trace_id = link.trace_id;
                state.stack.push(ViewId::Flow);
                state.flow = Some(FlowState::loading(trace_id.to_string()));
                vec![Request::Trace { trace_id }]
            }
            None => {
                state.notice = Some("this span has no links to follow".to_owned());
                Vec::new()
            }
        },
        Action::Left | Action::Right | Action::NextPane if links > 0 => {
            span.selected_link = if action == Action::Left {
                span.selected_link.saturating_sub(1)
            } else {
                (span.selected_link + 1) % links
            };
            Vec::new()
        }
        Action::Up => {
            span.scroll = span.scroll.saturating_sub(1);
            Vec::new()
        }
        Action::Down => {
            span.scroll += 1;
            Vec::new()
        }
        Action::Top => {
            span.scroll = 0;
            Vec::new()
        }
        _ => Vec::new(),
    }
}

fn navigate_lag(state: &mut State, action: Action) -> Vec<Request> {
    let page = state.page_size();
    if action == Action::Open {
        let target = state
            .lag
            .rows
            .get(state.lag.selected)
            .and_then(|row| row.oldest_correlation.clone());
        return match target {
            Some(id) => open_flow(state, id),
            None => {
                state.notice = Some("no waiting event is known for this group".to_owned());
                Vec::new()
            }
        };
    }
    state.lag.selected = step(state.lag.selected, state.lag.rows.len(), &action, page);
    Vec::new()
}

fn navigate_alerts(state: &mut State, action: Action) -> Vec<Request> {
    let page = state.page_size();
    if action == Action::Open {
        let Some(alert) = state.alerts.rows.get(state.alerts.selected).cloned() else {
            return Vec::new();
        };
        if let Some(id) = alert.correlation_id {
            return open_flow(state, id);
        }
        if let Some(group) = alert.group {
            if let Some(index) = state.lag.rows.iter().position(|row| row.group == group) {
                state.lag.selected = index;
            }
            state.stack.push(ViewId::Lag);
            return vec![Request::Lag];
        }
        return Vec::new();
    }
    state.alerts.selected = step(
        state.alerts.selected,
        state.alerts.rows.len(),
        &action,
        page,
    );
    Vec::new()
}
