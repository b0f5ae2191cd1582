//! The run loop: opens the store read-only, sets up the terminal (restored on exit,
//! panic or signal), then turns inputs, data answers and ticks into actions, actions into
//! state and requests, and state into frames.

use std::time::Duration;

use causeway_storage::{Database, StorageError, Store};
use ratatui::DefaultTerminal;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};

use crate::data;
use crate::error::TuiError;
use crate::event::{Events, Input};
use crate::keymap;
use crate::state::{self, Action, Request, State};
use crate::theme::Theme;
use crate::views;
use causeway_flow::FlowOptions;

/// How the dashboard runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOptions {
    /// How often what is on screen is reloaded (live updates).
    pub refresh: Duration,
    /// A correlation ID or trace ID to open at start.
    pub open: Option<String>,
    /// Compensation and dead-letter patterns for flow reconstruction.
    pub flow: FlowOptions,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            refresh: Duration::from_secs(1),
            open: None,
            flow: FlowOptions::default(),
        }
    }
}

/// Opens the store `db` names read-only, checking it exists and holds causeway data.
pub async fn open_store(db: impl Into<Database>) -> Result<Store, TuiError> {
    let db = db.into();
    let store = match Store::open_read_only(&db).await {
        Ok(store) => store,
        Err(StorageError::Missing { path }) => return Err(TuiError::MissingDatabase { path }),
        Err(error) => return Err(error.into()),
    };
    if !store.has_schema().await? {
        return Err(TuiError::EmptyDatabase {
            database: db.to_string(),
        });
    }
    Ok(store)
}

/// Runs the dashboard on the store `db` names until the user quits or a signal arrives.
/// The terminal is restored on every way out, panics included.
pub async fn run(db: &Database, options: RunOptions) -> Result<(), TuiError> {
    let store = open_store(db).await?;
    let theme = Theme::from_env();
    let mut terminal = TerminalGuard::enter()?;
    let result = run_loop(&mut terminal.terminal, store, db, &options, &theme).await;
    drop(terminal);
    result
}

async fn run_loop(
    terminal: &mut DefaultTerminal,
    store: Store,
    db: &Database,
    options: &RunOptions,
    theme: &Theme,
) -> Result<(), TuiError> {
    let size = terminal.size()?;
    let mut state = State::new(db.to_string(), (size.width, size.height));
    let (request_sender, request_receiver) = unbounded_channel();
    let (answer_sender, mut answers) = unbounded_channel();
    let data_task = data::spawn(store, options.flow.clone(), request_receiver, answer_sender);
    let mut events = Events::start();
    let mut terminate = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut ticks = tokio::time::interval(options.refresh);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);

    send_all(&request_sender, state.initial_requests());
    if let Some(id) = &options.open {
        let requests = state::update(&mut state, Action::StartCommand);
        send_all(&request_sender, requests);
        state.input = format!("flow {id}");
        let requests = state::update(&mut state, Action::Submit);
        send_all(&request_sender, requests);
    }
    terminal.draw(|frame| views::draw(frame, &state, theme))?;
    loop {
        let action = tokio::select! {
            input = events.next() => match input {
                Some(Input::Key(key)) => keymap::action_for(key, state.mode),
                Some(Input::Resize(width, height)) => Some(Action::Resize { width, height }),
                None => Some(Action::Quit),
            },
            Some(answer) = answers.recv() => Some(Action::Loaded(answer)),
            _ = ticks.tick() => Some(Action::Refresh),
            _ = terminate.recv() => Some(Action::Quit),
            _ = hangup.recv() => Some(Action::Quit),
            _ = interrupt.recv() => Some(Action::Quit),
        };
        let Some(action) = action else { continue };
        let requests = state::update(&mut state, action);
        send_all(&request_sender, requests);
        if state.quit {
            break;
        }
        terminal.draw(|frame| views::draw(frame, &state, theme))?;
    }
    drop(request_sender);
    data_task.abort();
    Ok(())
}

fn send_all(sender: &UnboundedSender<Request>, requests: Vec<Request>) {
    for request in requests {
        if sender.send(request).is_err() {
            tracing::warn!("the data task has stopped");
        }
    }
}

/// The terminal in raw mode on the alternate screen; restored when dropped. `ratatui`'s
/// initialisation also installs a panic hook that restores it before the panic prints.
struct TerminalGuard {
    terminal: DefaultTerminal,
}

impl TerminalGuard {
    fn enter() -> Result<TerminalGuard, TuiError> {
        Ok(TerminalGuard {
            terminal: ratatui::try_init()?,
        })
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        if let Err(error) = ratatui::try_restore() {
            tracing::error!(error = %error, "cannot restore the terminal");
        }
    }
}
