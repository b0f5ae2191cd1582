//! The dashboard's failure domain.

use std::path::PathBuf;

use causeway_storage::StorageError;

/// What can stop the dashboard from starting or keep it from running.
#[derive(Debug, thiserror::Error)]
pub enum TuiError {
    /// The database file does not exist yet.
    #[error(
        "database {path} does not exist: fill it with `causeway demo --db {path}` or `causeway collector --db {path}`",
        path = path.display()
    )]
    MissingDatabase {
        /// The path that was asked for.
        path: PathBuf,
    },
    /// The database exists but holds no causeway schema (an empty or foreign file, or a
    /// PostgreSQL database no collector has written to).
    #[error(
        "database {database} has no causeway data: fill it with `causeway collector --db {database}` (or, for a file, `causeway demo --db {database}`)"
    )]
    EmptyDatabase {
        /// The database, password hidden.
        database: String,
    },
    /// Opening or reading the store failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The terminal could not be set up, drawn on or read from.
    #[error("terminal error: {0}")]
    Terminal(#[from] std::io::Error),
}
