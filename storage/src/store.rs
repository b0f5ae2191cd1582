//! Opening the SQLite store: file creation with owner-only permissions, WAL, migrations.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sqlx::SqlStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{SqlitePool, SqlitePoolOptions};

use crate::connection::{sqlx_options, sqlx_reader_options, sqlx_writer_options};
use crate::demo_mark::{DatabaseOwner, database_owner};
use crate::error::StorageError;
use crate::span_read::SpanReaders;
use crate::span_write::SpanWriter;

/// The schema migrations, in order. Append only: never edit one that has shipped.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "spans", include_str!("../migrations/0001_spans.sql")),
    (2, "lag", include_str!("../migrations/0002_lag.sql")),
    (
        3,
        "segments",
        include_str!("../migrations/0003_segments.sql"),
    ),
    (
        4,
        "lag groups",
        include_str!("../migrations/0004_lag_groups.sql"),
    ),
    (
        5,
        "correlation moves",
        include_str!("../migrations/0005_correlation_moves.sql"),
    ),
    (
        6,
        "flow roots",
        include_str!("../migrations/0006_flow_roots.sql"),
    ),
    (
        7,
        "flow rules",
        include_str!("../migrations/0007_flow_rules.sql"),
    ),
    (
        8,
        "attribute filters",
        include_str!("../migrations/0008_attribute_filters.sql"),
    ),
    (
        9,
        "flow due by send time",
        include_str!("../migrations/0009_flow_due_by_send_time.sql"),
    ),
];

/// The newest migration this build applies (and the oldest schema it reads). Migration
/// numbers are handed out to branches ahead of time, so a lower one can arrive after a
/// higher one: this is the highest wherever it stands, and a file must have every one.
pub const SCHEMA_VERSION: i64 = newest(MIGRATIONS);

const fn newest(migrations: &[(i64, &str, &str)]) -> i64 {
    let mut newest = 0;
    let mut index = 0;
    while index < migrations.len() {
        if migrations[index].0 > newest {
            newest = migrations[index].0;
        }
        index += 1;
    }
    newest
}

/// The SQL of every migration, in order: the whole schema, for tools that build it without
/// a [`crate::Store`] (the raw-SQLite baseline of the ingest benchmark).
pub fn schema_sql() -> impl Iterator<Item = &'static str> {
    MIGRATIONS.iter().map(|(_, _, sql)| *sql)
}

/// The table in which sqlx records applied migrations.
const MIGRATIONS_TABLE: &str = "_sqlx_migrations";
/// How many of a foreign database's tables a refusal names.
const FOREIGN_TABLES_SHOWN: usize = 5;

/// Rows a read-only connection may buffer ahead of its reader.
const READ_ROW_BUFFER: usize = 4096;

/// A handle on one causeway SQLite database file: the SQLite backend of [`crate::Store`].
/// The files that implement its queries name it `Store` locally
/// (`use crate::store::SqliteStore as Store`).
///
/// A read-write store has one writer connection (SQLite allows one writer at a time, and
/// one connection keeps transactions large) and a small pool of readers. A read-only
/// store never writes, not even the schema.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pub(crate) path: PathBuf,
    pub(crate) reader: SqlitePool,
    /// The rusqlite readers a flow's spans are loaded with (`span_read`).
    pub(crate) span_reads: SpanReaders,
    pub(crate) writer: Option<SqlitePool>,
    pub(crate) span_writer: Option<Arc<SpanWriter>>,
}

impl SqliteStore {
    /// Opens the database at `path` for reading and writing, creating it (mode 0600) and
    /// applying migrations as needed.
    ///
    /// A file that is neither empty nor a causeway store (another application's SQLite
    /// database, or not a database at all) is refused before anything is written to it.
    pub async fn open(path: &Path) -> Result<SqliteStore, StorageError> {
        create_owner_only(path)?;
        if database_owner(path)? == DatabaseOwner::NotSqlite {
            return Err(StorageError::NotSqlite {
                path: path.to_owned(),
            });
        }
        let options = sqlx_writer_options(path).create_if_missing(true);
        let open_error = |source| StorageError::Open {
            path: path.to_owned(),
            source,
        };
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options.clone())
            .await
            .map_err(open_error)?;
        check_causeway_schema(&writer, path).await?;
        migrator()
            .run(&writer)
            .await
            .map_err(|source| StorageError::Migrate {
                path: path.to_owned(),
                source,
            })?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(sqlx_reader_options(options))
            .await
            .map_err(open_error)?;
        let span_writer = SpanWriter::open(path)?;
        Ok(SqliteStore {
            path: path.to_owned(),
            reader,
            span_reads: SpanReaders::new(path),
            writer: Some(writer),
            span_writer: Some(span_writer),
        })
    }

    /// Opens an existing database for reading only. A missing file is an error, and the
    /// store is never modified through this handle.
    pub async fn open_read_only(path: &Path) -> Result<SqliteStore, StorageError> {
        if !path.exists() {
            return Err(StorageError::Missing {
                path: path.to_owned(),
            });
        }
        // A large row buffer lets SQLite's worker thread run ahead of the reader instead of
        // handing rows over 50 at a time (a flow is a few hundred rows).
        let options = sqlx_reader_options(sqlx_options(path)).row_buffer_size(READ_ROW_BUFFER);
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(|source| StorageError::Open {
                path: path.to_owned(),
                source,
            })?;
        let store = SqliteStore {
            path: path.to_owned(),
            reader,
            span_reads: SpanReaders::new(path),
            writer: None,
            span_writer: None,
        };
        store.check_not_older().await?;
        Ok(store)
    }

    /// Fails with [`StorageError::OldSchema`] when the file's applied migrations stop short
    /// of this build's. A file without causeway's schema passes (see [`SqliteStore::has_schema`]).
    async fn check_not_older(&self) -> Result<(), StorageError> {
        let tracked: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
        )
        .fetch_one(&self.reader)
        .await?;
        if tracked == 0 {
            return Ok(());
        }
        let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM _sqlx_migrations")
            .fetch_all(&self.reader)
            .await?;
        let found = applied.iter().copied().max().unwrap_or(0);
        // Every migration of this build, not only the newest: one numbered lower may have
        // been added after the file was last migrated.
        if MIGRATIONS
            .iter()
            .any(|(version, _, _)| !applied.contains(version))
        {
            return Err(StorageError::OldSchema {
                path: self.path.clone(),
                found,
                needed: SCHEMA_VERSION,
            });
        }
        Ok(())
    }

    /// The database file this store reads.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The writer pool, or an error for a read-only store.
    pub(crate) fn writer(&self) -> Result<&SqlitePool, StorageError> {
        self.writer.as_ref().ok_or(StorageError::ReadOnly)
    }

    /// Whether the schema has been created in this file (false for an empty file).
    pub async fn has_schema(&self) -> Result<bool, StorageError> {
        let count: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'spans'",
        )
        .fetch_one(&self.reader)
        .await?;
        Ok(count > 0)
    }

    /// Checkpoints the write-ahead log and closes every connection.
    pub async fn close(self) {
        if let Some(writer) = &self.writer {
            if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(writer)
                .await
            {
                tracing::warn!(error = %error, "wal checkpoint on close failed");
            }
            writer.close().await;
        }
        self.reader.close().await;
    }
}

/// Refuses a database that has tables but not causeway's: one without the migrations table,
/// or whose first migration is not causeway's.
async fn check_causeway_schema(pool: &SqlitePool, path: &Path) -> Result<(), StorageError> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' \
         ESCAPE '\\' ORDER BY name",
    )
    .fetch_all(pool)
    .await?;
    if tables.is_empty() {
        return Ok(());
    }
    let first_migration: Option<String> = if tables.iter().any(|t| t == MIGRATIONS_TABLE) {
        sqlx::query_scalar("SELECT description FROM _sqlx_migrations WHERE version = 1")
            .fetch_optional(pool)
            .await?
    } else {
        None
    };
    if first_migration.as_deref() == Some(MIGRATIONS[0].1) {
        return Ok(());
    }
    let shown: Vec<&str> = tables
        .iter()
        .take(FOREIGN_TABLES_SHOWN)
        .map(String::as_str)
        .collect();
    let more = tables.len().saturating_sub(FOREIGN_TABLES_SHOWN);
    let mut listed = shown.join(", ");
    if more > 0 {
        listed.push_str(&format!(" and {more} more"));
    }
    Err(StorageError::Foreign {
        path: path.to_owned(),
        tables: listed,
    })
}

fn migrator() -> Migrator {
    migrator_of(MIGRATIONS)
}

pub(crate) fn migrator_of(migrations: &[(i64, &'static str, &'static str)]) -> Migrator {
    let migrations = migrations
        .iter()
        .map(|(version, description, sql)| {
            Migration::new(
                *version,
                Cow::Borrowed(*description),
                MigrationType::Simple,
                SqlStr::from_static(sql),
                false,
            )
        })
        .collect();
    Migrator::with_migrations(migrations)
}

/// Creates the database file readable and writable by its owner only. SQLite gives the
/// `-wal` and `-shm` files the permissions of the database file.
fn create_owner_only(path: &Path) -> Result<(), StorageError> {
    let create_error = |source| StorageError::Create {
        path: path.to_owned(),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(create_error)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path).map(drop).map_err(create_error)
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
