//! The dashboard's state and its pure reducer: `update(state, action)` changes the state
//! and returns the data requests the change needs. No IO, no terminal.

use causeway_storage::{SpanRecord, TraceId};

use crate::model::{AlertRow, FlowRow, FlowSpans, LagRow};
use causeway_flow::{Flow, NodeKind};

/// Rows above and below the flows table: title bar, table header, key hints.
const FLOWS_CHROME_ROWS: u16 = 3;

/// The views the dashboard can show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewId {
    /// One row per correlation.
    Flows,
    /// One correlation's event graph and waterfall.
    Flow,
    /// One span's attributes, events, links, status and resource.
    Span,
    /// Consumer-group lag.
    Lag,
    /// Firing and resolved alerts.
    Alerts,
}

impl ViewId {
    /// The name shown in the title bar and typed after `:`.
    pub fn name(self) -> &'static str {
        match self {
            ViewId::Flows => "flows",
            ViewId::Flow => "flow",
            ViewId::Span => "span",
            ViewId::Lag => "lag",
            ViewId::Alerts => "alerts",
        }
    }
}

/// What keys currently do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Keys navigate.
    #[default]
    Normal,
    /// Keys edit the flows filter (after `/`).
    Filter,
    /// Keys edit a `:` command.
    Command,
}

/// The two panes of the flow view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FlowPane {
    /// The event graph: services, topics, consumer groups.
    #[default]
    Graph,
    /// One row per span on a time axis.
    Waterfall,
}

/// Something the user (or the clock, or the data task) asks the dashboard to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Leave the dashboard.
    Quit,
    /// Move the selection up.
    Up,
    /// Move the selection down.
    Down,
    /// Move left (previous node in the graph).
    Left,
    /// Move right (next node in the graph).
    Right,
    /// Move a page up.
    PageUp,
    /// Move a page down.
    PageDown,
    /// Go to the first row.
    Top,
    /// Go to the last row.
    Bottom,
    /// Open the selected item.
    Open,
    /// Go back to the previous view (or close the help, or leave input).
    Back,
    /// Focus the next pane.
    NextPane,
    /// Start editing the flows filter.
    StartFilter,
    /// Start typing a `:` command.
    StartCommand,
    /// A character typed into the filter or command line.
    Input(char),
    /// Remove the last typed character.
    Erase,
    /// Confirm the filter or command.
    Submit,
    /// Show or hide the help overlay.
    ToggleHelp,
    /// Show or hide per-partition lag.
    TogglePartitions,
    /// The terminal changed size.
    Resize {
        /// Columns.
        width: u16,
        /// Rows.
        height: u16,
    },
    /// Time to reload what is on screen (live updates).
    Refresh,
    /// The data task answered.
    Loaded(Loaded),
}

/// A read the data task should run; answered by a [`Loaded`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// A window of the flows list, newest first.
    Flows {
        /// The filter text (empty for none).
        filter: String,
        /// Rows to skip.
        offset: usize,
        /// Rows to return: what fits on screen.
        limit: usize,
    },
    /// The spans of one correlation ID (or of a trace, when `id` is a trace ID).
    Flow {
        /// A correlation ID or trace ID.
        id: String,
    },
    /// The spans of one trace (following a span link).
    Trace {
        /// The trace.
        trace_id: TraceId,
    },
    /// Consumer-group lag.
    Lag,
    /// Alerts.
    Alerts,
}

/// An answer from the data task.
#[derive(Debug, Clone, PartialEq)]
pub enum Loaded {
    /// A window of the flows list.
    Flows {
        /// The filter it was loaded with.
        filter: String,
        /// The rows skipped.
        offset: usize,
        /// The rows.
        rows: Vec<FlowRow>,
    },
    /// The spans of one flow (boxed: a flow is large).
    Flow(Box<FlowSpans>),
    /// Consumer-group lag.
    Lag(Vec<LagRow>),
    /// Alerts.
    Alerts(Vec<AlertRow>),
    /// A view's data cannot be read from this database (for example, no lag table yet).
    Unavailable {
        /// The view affected.
        view: ViewId,
        /// Why, for the screen.
        reason: String,
    },
    /// A read failed.
    Failed(String),
}

/// The flows list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FlowsState {
    /// The rows on screen.
    pub rows: Vec<FlowRow>,
    /// How many rows the window skips (newest first).
    pub offset: usize,
    /// Index of the selected row within `rows`.
    pub selected: usize,
    /// The selected correlation, kept across live reloads.
    pub selected_id: Option<String>,
    /// The applied filter.
    pub filter: String,
    /// Whether a first answer has arrived.
    pub loaded: bool,
    /// Whether the rows on screen are for an older filter and the new one is being read.
    pub searching: bool,
}

/// The flow view.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowState {
    /// The correlation ID or trace ID shown.
    pub id: String,
    /// The spans, oldest first.
    pub spans: Vec<SpanRecord>,
    /// The flow rebuilt from the spans, once loaded.
    pub flow: Option<Flow>,
    /// Whether the spans stopped at the load limit.
    pub truncated: bool,
    /// The focused pane.
    pub pane: FlowPane,
    /// The selected node of the graph.
    pub selected_node: usize,
    /// The selected step (span) of the waterfall, an index into the flow's steps.
    pub selected_span: usize,
    /// Whether the spans have arrived.
    pub loaded: bool,
}

impl FlowState {
    fn loading(id: String) -> FlowState {
        FlowState {
            id,
            spans: Vec::new(),
            flow: None,
            truncated: false,
            pane: FlowPane::default(),
            selected_node: 0,
            selected_span: 0,
            loaded: false,
        }
    }
}

impl FlowState {
    /// Number of nodes (services, topics, groups) in the flow's graph.
    pub fn node_count(&self) -> usize {
        self.flow.as_ref().map_or(0, |flow| flow.graph.nodes.len())
    }

    /// Number of steps (spans) in the waterfall.
    pub fn step_count(&self) -> usize {
        self.flow.as_ref().map_or(0, |flow| flow.steps.len())
    }

    /// The first step (by start time) that runs in, sends to or is consumed by `node`.
    pub fn first_step_of_node(&self, node: usize) -> Option<usize> {
        let flow = self.flow.as_ref()?;
        let node = flow.graph.nodes.get(node)?;
        flow.steps.iter().position(|step| match node.kind {
            NodeKind::Service => step.service == node.name,
            NodeKind::Topic => step.topic.as_deref() == Some(node.name.as_str()),
            NodeKind::ConsumerGroup => step.consumer_group.as_deref() == Some(node.name.as_str()),
        })
    }

    /// The stored span behind waterfall step `step`.
    pub fn span_of_step(&self, step: usize) -> Option<&SpanRecord> {
        let step = self.flow.as_ref()?.steps.get(step)?;
        self.spans
            .iter()
            .find(|span| span.trace_id == step.trace_id && span.span_id == step.span_id)
    }
}

/// The span detail view.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanState {
    /// The span shown.
    pub span: SpanRecord,
    /// The selected link (Enter follows it).
    pub selected_link: usize,
    /// Lines scrolled past.
    pub scroll: usize,
}

/// A table view with a selection (lag, alerts).
#[derive(Debug, Clone, PartialEq)]
pub struct TableState<T> {
    /// The rows.
    pub rows: Vec<T>,
    /// The selected row.
    pub selected: usize,
    /// Why the rows cannot be read, when they cannot.
    pub unavailable: Option<String>,
    /// Whether a first answer has arrived.
    pub loaded: bool,
}

impl<T> Default for TableState<T> {
    fn default() -> Self {
        TableState {
            rows: Vec::new(),
            selected: 0,
            unavailable: None,
            loaded: false,
        }
    }
}

/// Everything the views draw.
#[derive(Debug, Clone, PartialEq)]
pub struct State {
    /// Views opened, the current one last; Esc pops.
    pub stack: Vec<ViewId>,
    /// What keys do now.
    pub mode: Mode,
    /// The text being typed after `/` or `:`.
    pub input: String,
    /// Whether the help overlay is shown.
    pub help: bool,
    /// Whether the dashboard should exit.
    pub quit: bool,
    /// The flows list.
    pub flows: FlowsState,
    /// The open flow, if any.
    pub flow: Option<FlowState>,
    /// The open span, if any.
    pub span: Option<SpanState>,
    /// Consumer-group lag.
    pub lag: TableState<LagRow>,
    /// Whether per-partition lag is shown.
    pub partitions: bool,
    /// Alerts.
    pub alerts: TableState<AlertRow>,
    /// A one-line message for the user (an error, an unknown command).
    pub notice: Option<String>,
    /// Terminal size (columns, rows).
    pub size: (u16, u16),
    /// The database shown in the title bar.
    pub source: String,
}

impl State {
    /// A fresh state on the flows list for a terminal of `size`.
    pub fn new(source: impl Into<String>, size: (u16, u16)) -> State {
        State {
            stack: vec![ViewId::Flows],
            mode: Mode::Normal,
            input: String::new(),
            help: false,
            quit: false,
            flows: FlowsState::default(),
            flow: None,
            span: None,
            lag: TableState::default(),
            partitions: false,
            alerts: TableState::default(),
            notice: None,
            size,
            source: source.into(),
        }
    }

    /// The view on top.
    pub fn view(&self) -> ViewId {
        self.stack.last().copied().unwrap_or(ViewId::Flows)
    }

    /// How many flows rows fit on screen: the bound of every flows query.
    pub fn page_size(&self) -> usize {
        usize::from(self.size.1.saturating_sub(FLOWS_CHROME_ROWS).max(1))
    }

    /// The request that loads the flows window on screen.
    pub fn flows_request(&self) -> Request {
        Request::Flows {
            filter: self.flows.filter.clone(),
            offset: self.flows.offset,
            limit: self.page_size(),
        }
    }

    /// The requests that start the dashboard: the flows list, and the alerts (the flows
    /// screen's title counts the firing ones).
    pub fn initial_requests(&self) -> Vec<Request> {
        vec![self.flows_request(), Request::Alerts]
    }

    /// How many alerts fire, once the alerts have been read.
    pub fn firing_alerts(&self) -> Option<usize> {
        (self.alerts.loaded && self.alerts.unavailable.is_none()).then(|| {
            self.alerts
                .rows
                .iter()
                .filter(|alert| alert.firing && !alert.pending)
                .count()
        })
    }
}

mod reducer;
pub use reducer::update;

#[cfg(test)]
mod tests;
