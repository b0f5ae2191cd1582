//! PostgreSQL retention: whole days of spans and links are dropped as partitions; the day
//! that straddles an age cutoff loses its older rows by `DELETE`.

use crate::clock::now_ns;
use crate::error::StorageError;
use crate::interface::RetentionStore;
use crate::postgres::PgStore;
use crate::postgres::write::DAY_NS;
use crate::retention::{RetentionPolicy, RetentionReport};

impl PgStore {
    /// The days that have span partitions, oldest first.
    async fn partition_days(&self) -> Result<Vec<i64>, StorageError> {
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
             WHERE i.inhparent = 'spans'::regclass",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut days: Vec<i64> = names
            .iter()
            .filter_map(|name| name.strip_prefix("spans_d")?.parse().ok())
            .collect();
        days.sort_unstable();
        Ok(days)
    }

    /// Drops the span and link partitions of `day`; returns how many spans it held.
    async fn drop_day(&self, day: i64) -> Result<u64, StorageError> {
        let mut transaction = self.writable()?.begin().await?;
        let spans: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM spans_d{day}"
        )))
        .fetch_one(&mut *transaction)
        .await?;
        for table in ["spans", "span_links"] {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP TABLE IF EXISTS {table}_d{day}"
            )))
            .execute(&mut *transaction)
            .await?;
        }
        transaction.commit().await?;
        self.known_days()?.remove(&day);
        Ok(u64::try_from(spans).unwrap_or(0))
    }
}

impl RetentionStore for PgStore {
    async fn apply_retention(
        &self,
        policy: &RetentionPolicy,
    ) -> Result<RetentionReport, StorageError> {
        let pool = self.writable()?;
        let mut report = RetentionReport::default();
        if let Some(max_age_ns) = policy.max_age_ns {
            let cutoff = now_ns().saturating_sub(max_age_ns);
            for day in self.partition_days().await? {
                if day.saturating_add(1).saturating_mul(DAY_NS) <= cutoff {
                    report.deleted_by_age += self.drop_day(day).await?;
                }
            }
            let mut transaction = pool.begin().await?;
            report.deleted_by_age += sqlx::query("DELETE FROM spans WHERE ingested_ns < $1")
                .bind(cutoff)
                .execute(&mut *transaction)
                .await?
                .rows_affected();
            for table in ["span_links", "correlations", "flow_roots"] {
                let column = if table == "span_links" {
                    "ingested_ns"
                } else {
                    "last_end_ns"
                };
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DELETE FROM {table} WHERE {column} < $1"
                )))
                .bind(cutoff)
                .execute(&mut *transaction)
                .await?;
            }
            transaction.commit().await?;
        }
        if let Some(max_bytes) = policy.max_bytes {
            // Whole days only, oldest first, and never the newest day: a `DELETE` frees no
            // bytes until the table is vacuumed, so row by row the size would not move.
            let days = self.partition_days().await?;
            for day in days.iter().take(days.len().saturating_sub(1)) {
                if self.used_bytes().await? <= max_bytes {
                    break;
                }
                report.deleted_by_size += self.drop_day(*day).await?;
            }
        }
        // The flow rules' record of each write, for writes none of whose spans is left.
        sqlx::query("DELETE FROM span_writes WHERE xid < (SELECT min(ingest_xid) FROM spans)")
            .execute(pool)
            .await?;
        Ok(report)
    }

    async fn used_bytes(&self) -> Result<i64, StorageError> {
        Ok(sqlx::query_scalar(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = current_schema() AND c.relkind = 'r'",
        )
        .fetch_one(&self.pool)
        .await?)
    }
}
