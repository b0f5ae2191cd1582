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
mod tests {
    use super::SqliteStore as Store;
    use super::*;

    #[tokio::test]
    async fn a_lower_numbered_migration_added_later_is_still_applied()
    -> Result<(), Box<dyn std::error::Error>> {
        assert_eq!(SCHEMA_VERSION, 9, "the highest number, wherever it stands");
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("gap.db");
        create_owner_only(&path)?;
        // A file migrated by a build that had every migration but the flow roots (6).
        let without: Vec<(i64, &str, &str)> = MIGRATIONS
            .iter()
            .copied()
            .filter(|(version, _, _)| *version != 6)
            .collect();
        let old = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(sqlx_options(&path))
            .await?;
        migrator_of(&without).run(&old).await?;
        old.close().await;
        let refused = Store::open_read_only(&path).await;
        assert!(
            matches!(refused, Err(StorageError::OldSchema { found: 9, .. })),
            "the newest is there, one below it is not: {refused:?}"
        );
        Store::open(&path).await?.close().await;
        Store::open_read_only(&path).await?;
        Ok(())
    }

    #[tokio::test]
    async fn new_database_is_owner_only_and_migrated() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("nested/causeway.db");
        let store = Store::open(&path).await?;
        assert!(store.has_schema().await?);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path)?.permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        store.close().await;
        // Opening again applies nothing new and keeps working.
        let again = Store::open(&path).await?;
        assert!(again.has_schema().await?);
        Ok(())
    }

    /// A new file at `path` with the first `migrations` applied, as an older build left it.
    async fn migrated_by_an_older_build(
        path: &Path,
        migrations: usize,
    ) -> Result<SqlitePool, Box<dyn std::error::Error>> {
        create_owner_only(path)?;
        let old = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(sqlx_options(path))
            .await?;
        migrator_of(&MIGRATIONS[..migrations]).run(&old).await?;
        Ok(old)
    }

    #[tokio::test]
    async fn spans_stored_before_segments_are_read_and_upserted_after_the_migration()
    -> Result<(), Box<dyn std::error::Error>> {
        use crate::{SpanId, TraceId};
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("old.db");
        let old = migrated_by_an_older_build(&path, 2).await?;
        sqlx::query(
            "INSERT INTO spans (trace_id, span_id, name, kind, service_name, scope_name, \
             start_ns, end_ns, status_code, status_message, attributes, resource, events, \
             correlation_id, ingested_ns) \
             VALUES (?1, ?2, 'old', 4, 'orders', 't', 1, 2, 0, '', '{}', '{}', '[]', 'ord-1', 3)",
        )
        .bind(&[1_u8; 16][..])
        .bind(&[2_u8; 8][..])
        .execute(&old)
        .await?;
        sqlx::query("INSERT INTO span_links VALUES (?1, ?2, ?3, ?4, '{}')")
            .bind(&[1_u8; 16][..])
            .bind(&[2_u8; 8][..])
            .bind(&[5_u8; 16][..])
            .bind(&[6_u8; 8][..])
            .execute(&old)
            .await?;
        old.close().await;

        let refused = Store::open_read_only(&path).await;
        assert!(
            matches!(
                refused,
                Err(StorageError::OldSchema {
                    found: 2,
                    needed: SCHEMA_VERSION,
                    ..
                })
            ),
            "a read-only open names the old schema instead of failing a query later"
        );
        let store = Store::open(&path).await?;
        Store::open_read_only(&path).await?;
        let spans = store.spans_by_trace(TraceId([1; 16]), 10).await?;
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[0].links.len(), 1, "links move to the segmented table");
        assert_eq!(store.spans_by_correlation("ord-1", 10).await?.len(), 1);
        let mut retried = spans[0].clone();
        retried.name = "retried".into();
        store
            .write_spans(vec![crate::EncodedSpans::encode(&[retried])])
            .await?;
        assert_eq!(
            store.span_count().await?,
            1,
            "the retry replaced the old row"
        );
        let linking = store
            .spans_linking_to(TraceId([5; 16]), SpanId([6; 8]))
            .await?;
        assert_eq!(linking, [(TraceId([1; 16]), SpanId([2; 8]))]);
        Ok(())
    }

    #[tokio::test]
    async fn due_items_keep_their_fields_and_are_found_by_their_send_after_migration_9()
    -> Result<(), Box<dyn std::error::Error>> {
        use crate::{SpanId, TraceId};
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("due.db");
        let old = migrated_by_an_older_build(&path, 8).await?;
        // A due item as the flow rules stored it before migration 9 (`write_pass`).
        sqlx::query(
            "INSERT INTO flow_due (send_span_id, rule, send_trace_id, due_ns, overdue, topic, \
             message_id, partition_id, kafka_offset, correlation_id, event_type, producer, \
             sent_ns, groups) VALUES (?1, 'late', ?2, 900, 0, 'orders', 'm1', 0, 7, 'ord-1', \
             NULL, 'checkout', 600, '[\"billing\",\"audit\"]')",
        )
        .bind(&[2_u8; 8][..])
        .bind(&[1_u8; 16][..])
        .execute(&old)
        .await?;
        old.close().await;

        let store = Store::open(&path).await?;
        let send = crate::testsuite::span(TraceId([1; 16]), SpanId([2; 8]))
            .times(600, 700)
            .send("orders")
            .message_id("m1")
            .build();
        store
            .write_spans(vec![crate::EncodedSpans::encode(&[send])])
            .await?;
        let rules = store.flow_rules()?;
        let found = rules
            .due_of_sends(vec![crate::SendRef {
                trace_id: TraceId([1; 16]),
                span_id: SpanId([2; 8]),
                sent_ns: None,
            }])
            .await?;
        assert_eq!(found.len(), 1, "found through its send's stored start");
        assert_eq!(
            (found[0].sent_ns, found[0].due_ns, found[0].offset),
            (600, 900, Some(7))
        );
        assert_eq!(found[0].groups, ["billing", "audit"]);
        assert_eq!(found[0].correlation_id.as_deref(), Some("ord-1"));
        let due = rules.due_range(false, 1_000, 10).await?;
        assert_eq!(due, found, "and through the due-time index, rebuilt");
        let layout: String =
            sqlx::query_scalar("SELECT sql FROM sqlite_master WHERE name = 'flow_due'")
                .fetch_one(&store.reader)
                .await?;
        assert!(
            layout.contains("PRIMARY KEY (sent_ns, send_span_id, rule)"),
            "keyed by the send's start first: {layout}"
        );
        Ok(())
    }

    #[tokio::test]
    async fn another_applications_file_is_refused_and_left_as_it_was()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("notes.db");
        let other = rusqlite::Connection::open(&path)?;
        other.execute_batch("CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('x');")?;
        drop(other);
        match Store::open(&path).await {
            Err(error @ StorageError::Foreign { .. }) => {
                let text = error.to_string();
                assert!(text.contains("notes"), "the refusal names a table: {text}");
                assert!(text.contains("notes.db"), "and the file: {text}");
            }
            other => panic!("a foreign database must be refused, got {other:?}"),
        }
        let after = rusqlite::Connection::open(&path)?;
        let tables: Vec<String> = after
            .prepare("SELECT name FROM sqlite_master ORDER BY name")?
            .query_map([], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        assert_eq!(tables, ["notes"], "nothing was added to it");

        let text_file = dir.path().join("notes.txt");
        std::fs::write(&text_file, "my notes\n")?;
        assert!(matches!(
            Store::open(&text_file).await,
            Err(StorageError::NotSqlite { .. })
        ));
        assert_eq!(std::fs::read_to_string(&text_file)?, "my notes\n");

        // An empty file is a new store.
        let empty = dir.path().join("empty.db");
        std::fs::write(&empty, "")?;
        Store::open(&empty).await?.close().await;
        Ok(())
    }

    #[tokio::test]
    async fn read_only_open_of_missing_file_is_a_clear_error() {
        let result = Store::open_read_only(Path::new("/nonexistent/dir/causeway.db")).await;
        assert!(matches!(result, Err(StorageError::Missing { .. })));
    }
}
