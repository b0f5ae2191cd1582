//! causeway: where did this event flow stop, and why?
//!
//! The one binary. Each subcommand is a thin shell in `commands/` that wires the libraries.

mod allocator;
mod commands;
mod logging;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use causeway_storage::Database;
use clap::{Parser, Subcommand};

/// Trace event flows across Kafka services, consumer groups and topics, from a terminal.
#[derive(Debug, Parser)]
#[command(name = "causeway", version, about, long_about = None)]
struct Cli {
    /// The store the collector writes and the other commands read: an SQLite file, or a
    /// PostgreSQL database as postgres://user:password@host/database (the demo takes a
    /// file only).
    #[arg(
        long,
        global = true,
        env = "CAUSEWAY_DB",
        default_value = "./causeway.db"
    )]
    db: OsString,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the simulated shop, the collector and the dashboard in one process.
    Demo(commands::demo::Args),
    /// Receive OTLP spans and metrics, poll consumer lag, evaluate lag and flow rules.
    Collector(commands::collector::Args),
    /// Open the terminal dashboard (the default when no command is given).
    Tui(commands::tui::Args),
    /// List recent event flows, one row per correlation ID.
    Flows(commands::flows::Args),
    /// Rebuild one event flow by correlation ID or trace ID.
    Flow(commands::flow::Args),
    /// Show consumer-group lag, in messages and seconds.
    Lag(commands::lag::Args),
    /// Show firing and resolved lag and flow alerts.
    Alerts(commands::alerts::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli
        .command
        .unwrap_or(Command::Tui(commands::tui::Args::default()));
    // Only the commands that ingest run long enough with enough churn for retained memory
    // to matter; a reader keeps mimalloc's default, which spares it faulting freed pages
    // back in (about 1.8 ms of a 12 ms `causeway flow` on the 10M-span bench store).
    let mut sqlite_allocator = Ok(());
    if matches!(command, Command::Collector(_) | Command::Demo(_)) {
        allocator::purge_freed_memory_at_once();
        sqlite_allocator = allocator::sqlite_allocates_here();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    if !matches!(command, Command::Tui(_) | Command::Demo(_)) {
        logging::to_stderr();
    }
    if let Err(code) = sqlite_allocator {
        tracing::warn!(code, "SQLite keeps the C library's allocator");
    }
    // Parsed here, not by clap: clap's message would repeat the value, password included.
    let db = match cli.db.to_str() {
        Some(text) => Database::parse(text),
        None => Ok(Database::Sqlite(PathBuf::from(&cli.db))),
    };
    let db = match db {
        Ok(db) => db,
        Err(error) => {
            eprintln!("error: invalid value for '--db': {error}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async move {
        match command {
            Command::Demo(args) => commands::demo::run(args, &db).await,
            Command::Collector(args) => commands::collector::run(args, &db).await,
            Command::Tui(args) => commands::tui::run(args, &db).await,
            Command::Flows(args) => commands::flows::run(args, &db).await,
            Command::Flow(args) => commands::flow::run(args, &db).await,
            Command::Lag(args) => commands::lag::run(args, &db).await,
            Command::Alerts(args) => commands::alerts::run(args, &db).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // Errors can quote what a file or a peer sent (a foreign table's name, say).
            let message = format!("{error:#}");
            eprintln!("error: {}", causeway_flow::sanitize::clean(&message));
            ExitCode::FAILURE
        }
    }
}
