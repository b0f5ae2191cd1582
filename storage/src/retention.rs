//! Retention: dropping the oldest spans by age and by database size.

use crate::attribute_filter::FORGET_DELETED_FILTERS;
use crate::clock::now_ns;
use crate::error::StorageError;
use crate::segments::FORGET_EMPTY_SEGMENTS;
use crate::store::SqliteStore as Store;

/// Spans deleted per statement, so that the writer is never blocked for long.
const DELETE_CHUNK: i64 = 5_000;

/// How much history to keep. `None` keeps everything on that axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetentionPolicy {
    /// Drop spans stored longer ago than this many nanoseconds.
    pub max_age_ns: Option<i64>,
    /// Drop the oldest spans while the database's used pages exceed this many bytes.
    pub max_bytes: Option<i64>,
}

/// What a retention pass removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetentionReport {
    /// Spans deleted for being too old.
    pub deleted_by_age: u64,
    /// Spans deleted to bring the database under its size limit.
    pub deleted_by_size: u64,
}

impl Store {
    /// Applies a retention policy, deleting the oldest spans (by insertion order) in small
    /// transactions. Freed pages are reused by later writes; the file is not shrunk.
    pub async fn apply_retention(
        &self,
        policy: &RetentionPolicy,
    ) -> Result<RetentionReport, StorageError> {
        let mut report = RetentionReport::default();
        if let Some(max_age_ns) = policy.max_age_ns {
            let cutoff = now_ns().saturating_sub(max_age_ns);
            loop {
                let deleted = self.delete_oldest(DELETE_CHUNK, Some(cutoff)).await?;
                report.deleted_by_age += deleted;
                if deleted < DELETE_CHUNK as u64 {
                    break;
                }
            }
        }
        if let Some(max_bytes) = policy.max_bytes {
            while self.used_bytes().await? > max_bytes {
                let deleted = self.delete_oldest(DELETE_CHUNK, None).await?;
                report.deleted_by_size += deleted;
                if deleted == 0 {
                    break;
                }
            }
        }
        Ok(report)
    }

    /// Bytes of the database file that hold data (pages in use, not free-listed).
    pub async fn used_bytes(&self) -> Result<i64, StorageError> {
        let page_size: i64 = sqlx::query_scalar("PRAGMA page_size")
            .fetch_one(&self.reader)
            .await?;
        let pages: i64 = sqlx::query_scalar("PRAGMA page_count")
            .fetch_one(&self.reader)
            .await?;
        let free: i64 = sqlx::query_scalar("PRAGMA freelist_count")
            .fetch_one(&self.reader)
            .await?;
        Ok((pages - free) * page_size)
    }

    /// Deletes up to `limit` of the oldest spans (and their links), only those
    /// stored before `started_before` when given. Insertion order follows storage time, so
    /// the window of the oldest rows is all that needs looking at. Returns how many went.
    async fn delete_oldest(
        &self,
        limit: i64,
        started_before: Option<i64>,
    ) -> Result<u64, StorageError> {
        let writer = self.writer()?;
        let mut transaction = writer.begin().await?;
        sqlx::query("CREATE TEMP TABLE IF NOT EXISTS doomed (rowid_ref INTEGER PRIMARY KEY)")
            .execute(&mut *transaction)
            .await?;
        sqlx::query("DELETE FROM doomed")
            .execute(&mut *transaction)
            .await?;
        sqlx::query(
            "INSERT INTO doomed SELECT rowid FROM \
             (SELECT rowid, ingested_ns FROM spans ORDER BY rowid LIMIT ?2) \
             WHERE ?1 IS NULL OR ingested_ns < ?1",
        )
        .bind(started_before)
        .bind(limit)
        .execute(&mut *transaction)
        .await?;
        // One segment at a time: with the segment bound, the link key is searched in full
        // (a three-column `IN` would only use the segment and walk all its links).
        let segments: Vec<i64> = sqlx::query_scalar(
            "SELECT DISTINCT segment FROM spans WHERE rowid IN (SELECT rowid_ref FROM doomed)",
        )
        .fetch_all(&mut *transaction)
        .await?;
        for segment in segments {
            sqlx::query(
                "DELETE FROM span_links WHERE segment = ?1 AND (trace_id, span_id) IN \
                 (SELECT trace_id, span_id FROM spans NOT INDEXED \
                 WHERE rowid IN (SELECT rowid_ref FROM doomed) AND segment = ?1)",
            )
            .bind(segment)
            .execute(&mut *transaction)
            .await?;
        }
        let deleted =
            sqlx::query("DELETE FROM spans WHERE rowid IN (SELECT rowid_ref FROM doomed)")
                .execute(&mut *transaction)
                .await?
                .rows_affected();
        sqlx::query(FORGET_EMPTY_SEGMENTS)
            .execute(&mut *transaction)
            .await?;
        for statement in FORGET_DELETED_FILTERS {
            sqlx::query(statement).execute(&mut *transaction).await?;
        }
        if let Some(cutoff) = started_before {
            sqlx::query("DELETE FROM correlations WHERE last_end_ns < ?")
                .bind(cutoff)
                .execute(&mut *transaction)
                .await?;
            sqlx::query("DELETE FROM flow_roots WHERE last_end_ns < ?")
                .bind(cutoff)
                .execute(&mut *transaction)
                .await?;
        }
        transaction.commit().await?;
        Ok(deleted)
    }
}
