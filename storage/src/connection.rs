//! The SQLite settings of every connection causeway opens, in one place: the sqlx pools
//! (writer and readers), the span writer's and the checkpointer's rusqlite connections, and
//! the rusqlite connections a flow's spans are read on.
//!
//! - WAL journal, so readers never block the writer and the writer never blocks readers.
//! - `synchronous = NORMAL`: a commit is durable once it is in the log; a power cut can
//!   lose the last commits but never corrupts the file (SQLite's WAL guarantee).
//! - a 32 MiB page cache on writing connections, so the newest segment's part of each
//!   index stays in memory (docs/DECISIONS.md), and temporary tables in memory.
//! - a 5 s busy timeout: a statement waits that long for another connection's lock. The
//!   rusqlite connections (the span writer, the flow rules', the checkpointer's, the span
//!   readers') look at the lock again every millisecond while they wait. SQLite's own
//!   handler sleeps longer each time, up to 100 ms, so a writer could sleep on long after
//!   the lock was free (docs/DECISIONS.md).
//! - reading pools map the file into memory (`mmap_size`): a flow's lookups visit every
//!   segment's part of an index, and reading those pages through the mapping instead of a
//!   `pread` into each connection's small page cache made `causeway flow` on the 10M-span
//!   bench store about 30% faster (docs/DECISIONS.md). SQLite caps the mapping at its
//!   compile-time `SQLITE_MAX_MMAP_SIZE`, which `.cargo/config.toml` raises from 2 GiB.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};

use crate::error::StorageError;

/// How long a statement waits for a lock held by another connection before failing.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a rusqlite connection sleeps before it looks at a busy lock again.
const LOCK_POLL: Duration = Duration::from_millis(1);

/// How long a connection pauses between the transactions of a long write, so that a
/// writer waiting for the lock (looking every [`LOCK_POLL`]) takes it in between.
pub(crate) const GIVE_WAY: Duration = Duration::from_millis(2);

/// How many times a rusqlite connection looks at a busy lock: [`BUSY_TIMEOUT`] of
/// [`LOCK_POLL`]s.
const LOCK_POLLS: i32 = 5_000;
const _: () = assert!(LOCK_POLLS as u128 * LOCK_POLL.as_millis() == BUSY_TIMEOUT.as_millis());

/// The busy handler of rusqlite connections: sleeps [`LOCK_POLL`] and looks again, for at
/// least [`BUSY_TIMEOUT`] in all. `attempts` is how many times it was called before for
/// this lock.
pub(crate) fn poll_lock(attempts: i32) -> bool {
    std::thread::sleep(LOCK_POLL);
    attempts < LOCK_POLLS
}

/// The page cache of a writing connection, in KiB (SQLite's negative `cache_size`).
const WRITER_CACHE_KIB: &str = "32768";

/// Bytes of the file a reading connection maps: more than any store holds, so the whole
/// file is mapped (pages still in the write-ahead log are read from the log as before).
const READER_MMAP_BYTES: u64 = 1 << 40;

/// `options` for a pool that only reads: read-only, with the file mapped into memory.
pub(crate) fn sqlx_reader_options(options: SqliteConnectOptions) -> SqliteConnectOptions {
    options
        .read_only(true)
        .pragma("mmap_size", READER_MMAP_BYTES.to_string())
}

/// Options of the sqlx connections to `path`, before read-only or create flags.
pub(crate) fn sqlx_options(path: &Path) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .busy_timeout(BUSY_TIMEOUT)
        .foreign_keys(false)
}

/// Options of the sqlx writer connection to `path`: the common ones plus WAL, the
/// durability level and the writer's cache.
pub(crate) fn sqlx_writer_options(path: &Path) -> SqliteConnectOptions {
    sqlx_options(path)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .pragma("cache_size", format!("-{WRITER_CACHE_KIB}"))
        .pragma("temp_store", "memory")
}

/// A rusqlite connection to `path` with the common settings: the polling busy handler and
/// the durability level (the flow rules write on such a connection). `writer` adds what the
/// span writer needs: WAL, the writer's cache, and no automatic checkpoints (the
/// checkpointer thread copies the log back instead).
pub(crate) fn open_rusqlite(path: &Path, writer: bool) -> Result<Connection, StorageError> {
    let connection = Connection::open(path).map_err(StorageError::from_write)?;
    connection
        .busy_handler(Some(poll_lock))
        .map_err(StorageError::from_write)?;
    connection
        .pragma_update(None, "synchronous", "NORMAL")
        .map_err(StorageError::from_write)?;
    if writer {
        connection
            .execute_batch(&format!(
                "PRAGMA journal_mode = WAL; \
                 PRAGMA cache_size = -{WRITER_CACHE_KIB}; PRAGMA temp_store = memory; \
                 PRAGMA wal_autocheckpoint = 0;"
            ))
            .map_err(StorageError::from_write)?;
    }
    Ok(connection)
}

/// A read-only rusqlite connection to `path` with the reading pools' settings (the file
/// mapped), keeping `cached_statements` prepared statements: the span readers of
/// `span_read`.
pub(crate) fn open_rusqlite_reader(
    path: &Path,
    cached_statements: usize,
) -> rusqlite::Result<Connection> {
    let connection = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    connection.busy_handler(Some(poll_lock))?;
    connection.pragma_update(
        None,
        "mmap_size",
        i64::try_from(READER_MMAP_BYTES).unwrap_or(i64::MAX),
    )?;
    connection.set_prepared_statement_cache_capacity(cached_statements);
    Ok(connection)
}
