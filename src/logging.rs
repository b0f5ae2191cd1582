//! The program's own logs: to stderr for the headless commands, to a file while a
//! terminal UI owns the screen.

use std::path::Path;

use anyhow::Context;
use tracing_subscriber::EnvFilter;

/// Our own logs at info; sqlx only for errors (its slow-statement warnings would land on
/// the stderr of commands whose errors people read there).
const DEFAULT_FILTER: &str = "info,sqlx=error";

/// Logs to stderr, filtered by `RUST_LOG` (default: info, and errors only from sqlx).
pub fn to_stderr() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    // A second initialisation (as in tests) is harmless: keep the first subscriber.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Logs to `path` (appending), filtered by `RUST_LOG` (default: info, and errors only from sqlx), never to the screen.
pub fn to_file(path: &Path) -> anyhow::Result<()> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open log file {}", path.display()))?;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(file))
        .try_init();
    Ok(())
}
