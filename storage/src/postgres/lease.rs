//! The lease on a PostgreSQL store's singleton work: a session advisory lock held on a
//! connection of its own, kept for the collector's life.
//!
//! Several collectors may write one PostgreSQL database, but only one at a time may poll
//! lag, evaluate the rules and tell the hooks. Each collector tries
//! `pg_try_advisory_lock` once a lag interval; the one that gets it keeps it until its
//! session ends. When that collector dies, its connection drops and PostgreSQL releases the
//! lock with the session, so another collector gets it at its next try. A collector that
//! holds the lock checks its session each interval: an error there means the session (and
//! with it the lock) is gone, and the lease is reported lost.
//!
//! The key is one `bigint`: [`LEASE_LOCK_CLASS`] in the high 32 bits, the oid of the store's
//! `alerts` table in the low 32 bits, so that two causeway stores in one database (two
//! schemas) have a lease each. `pg_locks` shows it as `locktype = 'advisory'`,
//! `classid = 1667331443`, `objsubid = 1`; the holder's session is named
//! `causeway collector <pid>` in `pg_stat_activity.application_name`.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection};

use crate::database::PostgresUrl;
use crate::error::StorageError;

/// The high 32 bits of the lease's advisory lock key (`caus` in ASCII).
pub const LEASE_LOCK_CLASS: i64 = 0x6361_7573;

/// How long one try (connect, lock, or check) may take before it counts as failed.
const TRY_TIMEOUT: Duration = Duration::from_secs(10);

/// Takes the lock if it is free; the key is worked out from the store's `alerts` table,
/// found through the connection's search path as every other query finds it.
const TRY_LOCK: &str =
    "SELECT pg_try_advisory_lock(($1::bigint << 32) | 'alerts'::regclass::oid::bigint)";

/// One collector's claim on the lease of one PostgreSQL store.
#[derive(Debug)]
pub struct PgLease {
    database: PostgresUrl,
    connection: Option<PgConnection>,
    held: bool,
}

impl PgLease {
    /// A claim not tried yet; nothing connects until [`PgLease::try_hold`].
    pub(crate) fn new(database: PostgresUrl) -> PgLease {
        PgLease {
            database,
            connection: None,
            held: false,
        }
    }

    /// Tries to hold the lease and says whether this claim holds it now. An error (the
    /// database unreachable, the session ended) means it is not held: the session's lock,
    /// if it had one, is gone with the session.
    pub(crate) async fn try_hold(&mut self) -> Result<bool, StorageError> {
        let attempt = tokio::time::timeout(TRY_TIMEOUT, self.attempt()).await;
        let outcome = match attempt {
            Ok(outcome) => outcome,
            Err(_) => Err(StorageError::Unresponsive {
                database: self.database.to_string(),
                seconds: TRY_TIMEOUT.as_secs(),
            }),
        };
        match outcome {
            Ok(held) => {
                self.held = held;
                Ok(held)
            }
            Err(error) => {
                // A fresh session next time: whatever this one held is released with it.
                self.connection = None;
                self.held = false;
                Err(error)
            }
        }
    }

    /// One try. The connection is taken out while it is used and put back only when the
    /// try succeeded: a failed or abandoned try drops it, and its session with it.
    async fn attempt(&mut self) -> Result<bool, StorageError> {
        let mut connection = match self.connection.take() {
            Some(connection) => connection,
            None => self.connect().await?,
        };
        let held = if self.held {
            // A session lock lasts as long as its session: a live session still holds it.
            sqlx::query("SELECT 1").execute(&mut connection).await?;
            true
        } else {
            sqlx::query_scalar(TRY_LOCK)
                .bind(LEASE_LOCK_CLASS)
                .fetch_one(&mut connection)
                .await?
        };
        self.connection = Some(connection);
        Ok(held)
    }

    async fn connect(&self) -> Result<PgConnection, StorageError> {
        let connect_error = |source| StorageError::Connect {
            database: self.database.to_string(),
            source,
        };
        let options: PgConnectOptions = self.database.expose().parse().map_err(connect_error)?;
        let options = options
            .application_name(&format!("causeway collector {}", std::process::id()))
            .log_statements(tracing::log::LevelFilter::Trace);
        PgConnection::connect_with(&options)
            .await
            .map_err(connect_error)
    }

    /// Lets the lease go now: unlocked before the session ends, so that another collector
    /// may take it as soon as this returns (ending the session would release it too, a
    /// moment later).
    pub(crate) async fn release(self) {
        if let Some(mut connection) = self.connection {
            if self.held {
                let unlock =
                    sqlx::query("SELECT pg_advisory_unlock_all()").execute(&mut connection);
                if let Err(error) = tokio::time::timeout(TRY_TIMEOUT, unlock).await {
                    tracing::debug!(%error, "lease unlock timed out; the session end releases it");
                }
            }
            let _ = connection.close().await;
        }
    }
}
