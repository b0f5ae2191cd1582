//! The only input source: a thread that reads the terminal's key and resize events and
//! forwards them over a channel, so the async loop never blocks on the terminal.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use ratatui::crossterm::event::{self, Event, KeyEvent};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

/// How often the reader thread checks whether it should stop.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Something the terminal reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// A key was pressed.
    Key(KeyEvent),
    /// The terminal now has this many columns and rows.
    Resize(u16, u16),
}

/// Terminal input, read on its own thread.
pub struct Events {
    receiver: UnboundedReceiver<Input>,
    stop: Arc<AtomicBool>,
    /// Detached on drop, see there.
    thread: Option<JoinHandle<()>>,
}

impl Events {
    /// Starts reading the terminal.
    pub fn start() -> Events {
        let (sender, receiver) = unbounded_channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                match event::poll(POLL_INTERVAL) {
                    Ok(false) => continue,
                    Ok(true) => {}
                    Err(error) => {
                        tracing::error!(error = %error, "cannot poll the terminal");
                        return;
                    }
                }
                let input = match event::read() {
                    Ok(Event::Key(key)) => Input::Key(key),
                    Ok(Event::Resize(width, height)) => Input::Resize(width, height),
                    Ok(_) => continue,
                    Err(error) => {
                        tracing::error!(error = %error, "cannot read the terminal");
                        return;
                    }
                };
                if sender.send(input).is_err() {
                    return;
                }
            }
        });
        Events {
            receiver,
            stop,
            thread: Some(thread),
        }
    }

    /// The next input; `None` once the reader has stopped.
    pub async fn next(&mut self) -> Option<Input> {
        self.receiver.recv().await
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Not joined: on a terminal that has gone away (a closed pty) a read can block or
        // spin inside crossterm, and waiting for it would keep the process from exiting.
        // The thread stops at its next poll, or with the process.
        drop(self.thread.take());
    }
}
