//! The lease on a store's singleton work: the lag poller, the lag rules and the alert
//! hooks run in one collector at a time, whichever holds the lease.
//!
//! An SQLite file has one writer (the collector holding `<db>.lock`), so its lease is
//! always held. A PostgreSQL database takes several collectors; they share the lease
//! through a session advisory lock (`postgres/lease.rs`).

use crate::error::StorageError;
use crate::postgres::PgLease;

/// One collector's claim on its store's lease, from [`crate::Store::lease`].
#[derive(Debug)]
pub struct StoreLease {
    inner: Inner,
}

#[derive(Debug)]
enum Inner {
    /// The store has one writer: whoever opened it for writing holds the lease.
    Exclusive,
    /// A PostgreSQL store: held through an advisory lock.
    Postgres(PgLease),
}

impl StoreLease {
    /// The lease of a store only one collector writes (an SQLite file).
    pub(crate) fn exclusive() -> StoreLease {
        StoreLease {
            inner: Inner::Exclusive,
        }
    }

    /// The lease of a PostgreSQL store, shared by its collectors.
    pub(crate) fn postgres(lease: PgLease) -> StoreLease {
        StoreLease {
            inner: Inner::Postgres(lease),
        }
    }

    /// Whether other collectors may compete for this lease (a PostgreSQL store).
    pub fn is_shared(&self) -> bool {
        matches!(self.inner, Inner::Postgres(_))
    }

    /// Tries to hold the lease and says whether it is held now: taken if it was free, kept
    /// if it was held. An error means it is not held (a lock held before is gone).
    pub async fn try_hold(&mut self) -> Result<bool, StorageError> {
        match &mut self.inner {
            Inner::Exclusive => Ok(true),
            Inner::Postgres(lease) => lease.try_hold().await,
        }
    }

    /// Lets the lease go, so another collector can take it at its next try.
    pub async fn release(self) {
        match self.inner {
            Inner::Exclusive => {}
            Inner::Postgres(lease) => lease.release().await,
        }
    }
}
