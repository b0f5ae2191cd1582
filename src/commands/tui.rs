//! `causeway tui`: the terminal dashboard. Logs go to `causeway-tui.log` beside the
//! database, never to the screen.

use std::path::{Path, PathBuf};

use causeway_storage::Database;
use std::time::Duration;

/// Arguments of `causeway tui`.
#[derive(Debug, Default, clap::Args)]
pub struct Args {
    /// Open this correlation ID or trace ID at start.
    #[arg(long, value_name = "ID")]
    pub open: Option<String>,
    /// How often what is on screen is reloaded, such as `500ms` or `2s`.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub refresh: Option<Duration>,
    /// Extra compensation and dead-letter patterns.
    #[command(flatten)]
    pub patterns: super::flow::PatternArgs,
}

/// Where the dashboard logs: `causeway-tui.log` in the database file's directory (the
/// working directory for a PostgreSQL database).
pub fn log_path(db: &Database) -> PathBuf {
    db.sqlite_path()
        .and_then(Path::parent)
        .filter(|parent| !parent.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .join("causeway-tui.log")
}

/// Runs `causeway tui`.
pub async fn run(args: Args, db: &Database) -> anyhow::Result<()> {
    let log = log_path(db);
    // A missing directory means a missing database: let the dashboard say so clearly.
    if log.parent().is_some_and(Path::is_dir) {
        crate::logging::to_file(&log)?;
    }
    let mut options = causeway_tui::RunOptions {
        open: args.open,
        flow: args.patterns.options(),
        ..causeway_tui::RunOptions::default()
    };
    if let Some(refresh) = args.refresh {
        options.refresh = refresh;
    }
    // The dashboard's errors name the database and the command that fills it.
    causeway_tui::run(db, options)
        .await
        .map_err(anyhow::Error::from)
}
