//! The storage failure domain.

use std::path::PathBuf;

/// What can go wrong opening, writing or reading the store.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The database file does not exist (read-only opens never create it).
    #[error("database {path} does not exist")]
    Missing {
        /// The path that was asked for.
        path: PathBuf,
    },
    /// The database could not be opened or created.
    #[error("cannot open database {path}: {source}")]
    Open {
        /// The path that was asked for.
        path: PathBuf,
        /// The underlying cause.
        #[source]
        source: sqlx::Error,
    },
    /// Creating the file or setting its permissions failed.
    #[error("cannot create database {path}: {source}")]
    Create {
        /// The path that was asked for.
        path: PathBuf,
        /// The underlying cause.
        #[source]
        source: std::io::Error,
    },
    /// Applying the schema migrations failed.
    #[error("cannot migrate database {path}: {source}")]
    Migrate {
        /// The path that was asked for.
        path: PathBuf,
        /// The underlying cause.
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    /// The database was written by an older causeway and has not been migrated yet
    /// (read-only opens never migrate).
    #[error(
        "database {path} has schema version {found}, this causeway reads version {needed}; \
         run this version's collector on it once to migrate it \
         (`causeway --db {path} collector`)"
    )]
    OldSchema {
        /// The path that was asked for.
        path: PathBuf,
        /// The newest migration applied to the file.
        found: i64,
        /// The newest migration this build knows.
        needed: i64,
    },
    /// Another collector holds the database's writer lock (see `writer_lock`).
    #[error(
        "cannot write database {path}: another collector ({}) is writing it; stop it or \
         give this one another --db",
        holder_text(.holder)
    )]
    InUse {
        /// The database.
        path: PathBuf,
        /// The process holding the lock, when it has written its id yet.
        holder: Option<u32>,
    },
    /// The lock file beside the database could not be created or locked.
    #[error("cannot lock {path}: {source}")]
    LockFile {
        /// The lock file.
        path: PathBuf,
        /// The underlying cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is an SQLite database of another application, which causeway must not add
    /// its tables to.
    #[error(
        "refusing to write {path}: it is not a causeway store but another application's \
         SQLite database (tables: {tables}); give --db a new file or a causeway store"
    )]
    Foreign {
        /// The database.
        path: PathBuf,
        /// Some of the tables found, comma-separated.
        tables: String,
    },
    /// The file is not empty and not an SQLite database at all.
    #[error("refusing to write {path}: it is not an SQLite database")]
    NotSqlite {
        /// The file.
        path: PathBuf,
    },
    /// The database is locked by another writer for longer than the busy timeout.
    #[error("database is locked by another process (is a collector already writing to it?)")]
    Locked,
    /// The store was opened read-only and a write was attempted.
    #[error("database was opened read-only")]
    ReadOnly,
    /// A query failed.
    #[error("database query failed: {0}")]
    Query(#[source] sqlx::Error),
    /// Writing spans failed.
    #[error("cannot write spans: {0}")]
    Write(#[source] rusqlite::Error),
    /// Reading spans failed.
    #[error("database query failed: {0}")]
    Read(#[source] rusqlite::Error),
    /// A PostgreSQL database could not be reached or logged into.
    #[error("cannot connect to database {database}: {source}")]
    Connect {
        /// The database URL, password hidden.
        database: String,
        /// The underlying cause.
        #[source]
        source: sqlx::Error,
    },
    /// A PostgreSQL database did not answer in time (the lease's connection).
    #[error("database {database} did not answer within {seconds} s")]
    Unresponsive {
        /// The database URL, password hidden.
        database: String,
        /// How long it was given.
        seconds: u64,
    },
    /// Applying the schema migrations to a PostgreSQL database failed.
    #[error("cannot migrate database {database}: {source}")]
    MigrateDatabase {
        /// The database URL, password hidden.
        database: String,
        /// The underlying cause.
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    /// A PostgreSQL database without this build's schema, opened for reading (readers
    /// never migrate).
    #[error(
        "database {database} has schema version {found}, this causeway reads version {needed}; \
         run this version's collector on it once to migrate it \
         (`causeway --db {database} collector`)"
    )]
    NotMigrated {
        /// The database URL, password hidden.
        database: String,
        /// The newest migration applied (0 for none).
        found: i64,
        /// The newest migration this build knows.
        needed: i64,
    },
    /// The database's backend does not do this.
    #[error("database {database} does not support {what}")]
    NotSupported {
        /// The database, password hidden.
        database: String,
        /// What was asked.
        what: &'static str,
    },
    /// A stored row could not be decoded (corrupt or written by a newer version).
    #[error("stored row is invalid: {0}")]
    Corrupt(String),
}

impl From<sqlx::Error> for StorageError {
    fn from(error: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &error
            && db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some()
        {
            // SQLITE_BUSY (5) and SQLITE_LOCKED (6), with their extended codes.
            let code = db.code().and_then(|c| c.parse::<i64>().ok()).unwrap_or(0);
            if code & 0xff == 5 || code & 0xff == 6 {
                return StorageError::Locked;
            }
        }
        StorageError::Query(error)
    }
}

fn holder_text(holder: &Option<u32>) -> String {
    match holder {
        Some(pid) => format!("pid {pid}"),
        None => "pid not yet known".to_owned(),
    }
}

impl StorageError {
    /// Converts an error of the span writer's connection, telling a lock apart.
    pub(crate) fn from_write(error: rusqlite::Error) -> Self {
        match error.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                StorageError::Locked
            }
            _ => StorageError::Write(error),
        }
    }

    /// Converts an error of a span reading connection, telling a lock apart.
    pub(crate) fn from_read(error: rusqlite::Error) -> Self {
        match error.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                StorageError::Locked
            }
            _ => StorageError::Read(error),
        }
    }
}
