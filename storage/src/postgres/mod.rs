//! The PostgreSQL backend: a pool of connections to one database, its own migrations
//! (`storage/migrations/postgres/`), and the queries of the storage interface written for
//! PostgreSQL (`write.rs`, `read.rs`, `lag.rs`, `retention.rs`, `flow_rules.rs`).
//!
//! Spans and links are partitioned by the day they were stored; see the first migration.

mod copy;
mod flow_rules;
mod lag;
mod lease;
mod merge;
mod nodelay;
mod read;
mod retention;
mod write;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::ConnectOptions;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::database::PostgresUrl;
use crate::error::StorageError;
use crate::interface::Backend;

pub(crate) use flow_rules::PgFlowRules;
pub use lease::{LEASE_LOCK_CLASS, PgLease};
pub use nodelay::{Nagle, turn_off as turn_off_nagle};

/// Every PostgreSQL migration, in order: (version, description, SQL). Append only.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "schema",
        include_str!("../../migrations/postgres/0001_schema.sql"),
    ),
    (
        2,
        "flow rules",
        include_str!("../../migrations/postgres/0002_flow_rules.sql"),
    ),
    (
        3,
        "correlation moves",
        include_str!("../../migrations/postgres/0003_correlation_moves.sql"),
    ),
    (
        4,
        "span writes",
        include_str!("../../migrations/postgres/0004_span_writes.sql"),
    ),
];

/// The newest PostgreSQL migration this build knows.
pub const POSTGRES_SCHEMA_VERSION: i64 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// Span writes a collector commits at once. While one transaction waits on its commit
/// (the log flush) or on the collector sending its rows, another runs.
pub(crate) const CONCURRENT_WRITES: usize = 3;

/// Connections a store holds at most: the writers' transactions, the readers' concurrent
/// queries (the flow view reads spans and links at once), the flow rules and lag work.
const MAX_CONNECTIONS: u32 = 10;

/// How long a query waits for a free connection before failing.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// A handle on one causeway PostgreSQL database.
#[derive(Clone, Debug)]
pub struct PgStore {
    pub(crate) database: PostgresUrl,
    pub(crate) pool: PgPool,
    pub(crate) read_only: bool,
    /// Days whose span and link partitions this handle knows exist.
    pub(crate) days: Arc<Mutex<BTreeSet<i64>>>,
    /// Writes left that upsert without trying a plain insert first (see `write.rs`).
    pub(crate) upserts_left: Arc<AtomicU32>,
    /// Whether a connection was opened whose small writes may wait (see `nodelay.rs`):
    /// then new rows are inserted, not copied.
    pub(crate) nagle_seen: Arc<AtomicBool>,
}

impl PgStore {
    /// Connects for reading and writing, applying migrations as needed (several collectors
    /// may start at once: the migrator holds an advisory lock while it runs).
    pub async fn open(database: &PostgresUrl) -> Result<PgStore, StorageError> {
        let store = PgStore::connect(database, false).await?;
        migrator()
            .run(&store.pool)
            .await
            .map_err(|source| StorageError::MigrateDatabase {
                database: database.to_string(),
                source,
            })?;
        Ok(store)
    }

    /// Connects for reading only: every transaction of the session is read-only, and a
    /// database whose schema is older than this build's is refused (readers never migrate).
    /// A database without causeway's schema opens (see [`PgStore::has_schema`]).
    pub async fn open_read_only(database: &PostgresUrl) -> Result<PgStore, StorageError> {
        let store = PgStore::connect(database, true).await?;
        if store.has_schema_now().await? {
            let found = store.applied_version().await?;
            if found < POSTGRES_SCHEMA_VERSION {
                return Err(StorageError::NotMigrated {
                    database: database.to_string(),
                    found,
                    needed: POSTGRES_SCHEMA_VERSION,
                });
            }
        }
        Ok(store)
    }

    async fn connect(database: &PostgresUrl, read_only: bool) -> Result<PgStore, StorageError> {
        let connect_error = |source| StorageError::Connect {
            database: database.to_string(),
            source,
        };
        let mut options: PgConnectOptions = database.expose().parse().map_err(connect_error)?;
        options = options.log_statements(tracing::log::LevelFilter::Trace);
        // PostgreSQL compiles a statement the planner costs high (a flow's spans over every
        // day's partition, say) with LLVM first: about 18 ms of a query that then ran in 1
        // ms on the 10M-span flow bench. causeway's statements are short: no JIT.
        options = options.options([("jit", "off")]);
        if read_only {
            options = options.options([("default_transaction_read_only", "on")]);
        }
        let nagle_seen = Arc::new(AtomicBool::new(false));
        let mut pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT);
        if !read_only {
            let seen = Arc::clone(&nagle_seen);
            pool = pool.after_connect(move |connection, _| {
                let seen = Arc::clone(&seen);
                Box::pin(async move {
                    if nodelay::turn_off(connection).await? == nodelay::Nagle::MayDelay
                        && !seen.swap(true, Ordering::Relaxed)
                    {
                        tracing::warn!(
                            "could not set TCP_NODELAY on a PostgreSQL connection (another \
                             system than Linux, or a proxy between): spans are inserted, \
                             not copied, which costs the server more"
                        );
                    }
                    Ok(())
                })
            });
        }
        let pool = pool.connect_with(options).await.map_err(connect_error)?;
        Ok(PgStore {
            database: database.clone(),
            pool,
            read_only,
            days: Arc::default(),
            upserts_left: Arc::default(),
            nagle_seen,
        })
    }

    /// Whether this handle copies new spans in (every connection it opened so far sends
    /// small writes at once), rather than inserting them.
    pub(crate) fn copies_new_rows(&self) -> bool {
        !self.nagle_seen.load(Ordering::Relaxed)
    }

    /// Whether the tables exist (any migration applied).
    async fn has_schema_now(&self) -> Result<bool, StorageError> {
        let found: bool = sqlx::query_scalar(
            "SELECT to_regclass('spans') IS NOT NULL AND to_regclass('_sqlx_migrations') IS NOT NULL",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(found)
    }

    /// The newest migration applied successfully.
    async fn applied_version(&self) -> Result<i64, StorageError> {
        let found: Option<i64> =
            sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
                .fetch_one(&self.pool)
                .await?;
        Ok(found.unwrap_or(0))
    }

    /// A claim on this store's lease, on a connection of its own (opened at the first try).
    pub(crate) fn lease(&self) -> PgLease {
        PgLease::new(self.database.clone())
    }

    /// Fails for a read-only handle.
    pub(crate) fn writable(&self) -> Result<&PgPool, StorageError> {
        if self.read_only {
            Err(StorageError::ReadOnly)
        } else {
            Ok(&self.pool)
        }
    }
}

impl Backend for PgStore {
    async fn has_schema(&self) -> Result<bool, StorageError> {
        self.has_schema_now().await
    }

    /// The demo writes SQLite files only: a PostgreSQL store is never the demo's.
    async fn mark_as_demo(&self) -> Result<(), StorageError> {
        Err(StorageError::NotSupported {
            database: self.database.to_string(),
            what: "holding the demo's data",
        })
    }

    async fn close(self) {
        self.pool.close().await;
    }
}

fn migrator() -> Migrator {
    crate::store::migrator_of(MIGRATIONS)
}
