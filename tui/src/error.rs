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
    /// The file exists but holds no causeway schema (an empty or foreign file).
    #[error(
        "database {path} has no causeway data: fill it with `causeway demo --db {path}` or `causeway collector --db {path}`",
        path = path.display()
    )]
    EmptyDatabase {
        /// The path that was asked for.
        path: PathBuf,
    },
    /// Opening or reading the store failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The terminal could not be set up, drawn on or read from.
    #[error("terminal error: {0}")]
    Terminal(#[from] std::io::Error),
}
