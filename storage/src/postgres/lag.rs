//! The PostgreSQL lag and alert tables: samples, statuses, found groups, alert episodes.

use crate::alert_query::{AlertRow, to_json};
use crate::error::StorageError;
use crate::interface::{AlertStore, LagStore};
use crate::lag_group_query::LagGroupTopic;
use crate::lag_query::{LagSample, LagStatusRow, WaitingEvent};
use crate::postgres::PgStore;

impl LagStore for PgStore {
    async fn write_lag_samples(&self, samples: &[LagSample]) -> Result<(), StorageError> {
        if samples.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO lag_samples (sampled_ns, consumer_group, topic, partition_id, \
             committed_offset, low_watermark, high_watermark, lag, members, source) \
             SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::int[], \
             $5::bigint[], $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[], $10::text[])",
        )
        .bind(samples.iter().map(|s| s.sampled_ns).collect::<Vec<_>>())
        .bind(
            samples
                .iter()
                .map(|s| s.consumer_group.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(samples.iter().map(|s| s.topic.as_str()).collect::<Vec<_>>())
        .bind(samples.iter().map(|s| s.partition).collect::<Vec<_>>())
        .bind(
            samples
                .iter()
                .map(|s| s.committed_offset)
                .collect::<Vec<_>>(),
        )
        .bind(samples.iter().map(|s| s.low_watermark).collect::<Vec<_>>())
        .bind(samples.iter().map(|s| s.high_watermark).collect::<Vec<_>>())
        .bind(samples.iter().map(|s| s.lag).collect::<Vec<_>>())
        .bind(samples.iter().map(|s| s.members).collect::<Vec<_>>())
        .bind(
            samples
                .iter()
                .map(|s| s.source.as_str())
                .collect::<Vec<_>>(),
        )
        .execute(self.writable()?)
        .await?;
        Ok(())
    }

    async fn lag_samples_since(&self, since_ns: i64) -> Result<Vec<LagSample>, StorageError> {
        let rows = sqlx::query(
            "SELECT sampled_ns, consumer_group, topic, partition_id, committed_offset, \
             low_watermark, high_watermark, lag, members, source FROM lag_samples \
             WHERE sampled_ns >= $1 ORDER BY consumer_group, topic, partition_id, sampled_ns, id",
        )
        .bind(since_ns)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(crate::row_decode::lag_sample).collect()
    }

    async fn write_lag_status(&self, rows: &[LagStatusRow]) -> Result<(), StorageError> {
        if rows.is_empty() {
            return Ok(());
        }
        // One row per partition: a later row for the same key replaces an earlier one.
        let mut latest: Vec<&LagStatusRow> = Vec::with_capacity(rows.len());
        for row in rows {
            let key = (&row.consumer_group, &row.topic, row.partition);
            match latest
                .iter_mut()
                .find(|known| (&known.consumer_group, &known.topic, known.partition) == key)
            {
                Some(known) => *known = row,
                None => latest.push(row),
            }
        }
        sqlx::query(
            "INSERT INTO lag_status (consumer_group, topic, partition_id, state, \
             committed_offset, high_watermark, lag, time_lag_ms, rate_per_s, catch_up_ms, \
             updated_ns) SELECT * FROM UNNEST($1::text[], $2::text[], $3::int[], $4::text[], \
             $5::bigint[], $6::bigint[], $7::bigint[], $8::bigint[], $9::float8[], \
             $10::bigint[], $11::bigint[]) \
             ON CONFLICT (consumer_group, topic, partition_id) DO UPDATE SET \
             state = excluded.state, committed_offset = excluded.committed_offset, \
             high_watermark = excluded.high_watermark, lag = excluded.lag, \
             time_lag_ms = excluded.time_lag_ms, rate_per_s = excluded.rate_per_s, \
             catch_up_ms = excluded.catch_up_ms, updated_ns = excluded.updated_ns",
        )
        .bind(
            latest
                .iter()
                .map(|r| r.consumer_group.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(latest.iter().map(|r| r.topic.as_str()).collect::<Vec<_>>())
        .bind(latest.iter().map(|r| r.partition).collect::<Vec<_>>())
        .bind(latest.iter().map(|r| r.state.name()).collect::<Vec<_>>())
        .bind(
            latest
                .iter()
                .map(|r| r.committed_offset)
                .collect::<Vec<_>>(),
        )
        .bind(latest.iter().map(|r| r.high_watermark).collect::<Vec<_>>())
        .bind(latest.iter().map(|r| r.lag).collect::<Vec<_>>())
        .bind(latest.iter().map(|r| r.time_lag_ms).collect::<Vec<_>>())
        .bind(latest.iter().map(|r| r.rate_per_s).collect::<Vec<_>>())
        .bind(latest.iter().map(|r| r.catch_up_ms).collect::<Vec<_>>())
        .bind(latest.iter().map(|r| r.updated_ns).collect::<Vec<_>>())
        .execute(self.writable()?)
        .await?;
        Ok(())
    }

    async fn lag_status(&self) -> Result<Vec<LagStatusRow>, StorageError> {
        let rows = sqlx::query(
            "SELECT consumer_group, topic, partition_id, state, committed_offset, \
             high_watermark, lag, time_lag_ms, rate_per_s, catch_up_ms, updated_ns \
             FROM lag_status ORDER BY consumer_group, topic, partition_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(crate::row_decode::lag_status).collect()
    }

    async fn downsample_lag(
        &self,
        older_than_ns: i64,
        bucket_ns: i64,
    ) -> Result<u64, StorageError> {
        let deleted = sqlx::query(
            "DELETE FROM lag_samples WHERE sampled_ns < $1 AND id NOT IN ( \
             SELECT max(id) FROM lag_samples WHERE sampled_ns < $1 \
             GROUP BY consumer_group, topic, partition_id, source, div(sampled_ns, $2))",
        )
        .bind(older_than_ns)
        .bind(bucket_ns.max(1))
        .execute(self.writable()?)
        .await?
        .rows_affected();
        Ok(deleted)
    }

    async fn delete_lag_before(&self, cutoff_ns: i64) -> Result<u64, StorageError> {
        let pool = self.writable()?;
        let deleted = sqlx::query("DELETE FROM lag_samples WHERE sampled_ns < $1")
            .bind(cutoff_ns)
            .execute(pool)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM lag_status WHERE updated_ns < $1")
            .bind(cutoff_ns)
            .execute(pool)
            .await?;
        Ok(deleted)
    }

    async fn oldest_waiting_event(
        &self,
        topic: &str,
        partition: i32,
        committed_offset: i64,
    ) -> Result<Option<WaitingEvent>, StorageError> {
        let row = sqlx::query(
            "SELECT kafka_offset, correlation_id, trace_id, start_ns FROM spans \
             WHERE kind = 4 AND kafka_offset IS NOT NULL AND destination = $1 \
             AND partition_id = $2 AND kafka_offset >= $3 ORDER BY kafka_offset LIMIT 1",
        )
        .bind(topic)
        .bind(i64::from(partition))
        .bind(committed_offset)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref()
            .map(crate::row_decode::waiting_event)
            .transpose()
    }

    async fn lag_groups(&self) -> Result<Vec<LagGroupTopic>, StorageError> {
        let rows = sqlx::query(
            "SELECT consumer_group, topic, committed, found_ns FROM lag_groups \
             ORDER BY consumer_group, topic",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(crate::row_decode::lag_group).collect()
    }

    async fn save_lag_groups(
        &self,
        known: &[LagGroupTopic],
        gone: &[String],
        source: &str,
    ) -> Result<(), StorageError> {
        let mut transaction = self.writable()?.begin().await?;
        sqlx::query("DELETE FROM lag_groups")
            .execute(&mut *transaction)
            .await?;
        sqlx::query(
            "INSERT INTO lag_groups (consumer_group, topic, committed, found_ns) \
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::bool[], $4::bigint[]) \
             ON CONFLICT (consumer_group, topic) DO UPDATE SET committed = excluded.committed, \
             found_ns = excluded.found_ns",
        )
        .bind(
            known
                .iter()
                .map(|r| r.consumer_group.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(known.iter().map(|r| r.topic.as_str()).collect::<Vec<_>>())
        .bind(known.iter().map(|r| r.committed).collect::<Vec<_>>())
        .bind(known.iter().map(|r| r.found_ns).collect::<Vec<_>>())
        .execute(&mut *transaction)
        .await?;
        sqlx::query("DELETE FROM lag_status WHERE consumer_group = ANY($1)")
            .bind(gone)
            .execute(&mut *transaction)
            .await?;
        sqlx::query("DELETE FROM lag_samples WHERE consumer_group = ANY($1) AND source = $2")
            .bind(gone)
            .bind(source)
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await?;
        Ok(())
    }
}

/// Inserts or updates one alert episode; a notification time never moves back.
pub(crate) async fn upsert_alert(
    transaction: &mut sqlx::PgTransaction<'_>,
    alert: &AlertRow,
) -> Result<(), StorageError> {
    sqlx::query(
        "INSERT INTO alerts (fingerprint, starts_ns, rule, status, labels, annotations, \
         ends_ns, updated_ns, notified_ns) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (fingerprint, starts_ns) DO UPDATE SET rule = excluded.rule, \
         status = excluded.status, labels = excluded.labels, \
         annotations = excluded.annotations, ends_ns = excluded.ends_ns, \
         updated_ns = excluded.updated_ns, \
         notified_ns = CASE WHEN excluded.notified_ns IS NULL THEN alerts.notified_ns \
         ELSE greatest(coalesce(alerts.notified_ns, 0), excluded.notified_ns) END",
    )
    .bind(&alert.fingerprint)
    .bind(alert.starts_ns)
    .bind(&alert.rule)
    .bind(&alert.status)
    .bind(to_json(&alert.labels)?)
    .bind(to_json(&alert.annotations)?)
    .bind(alert.ends_ns)
    .bind(alert.updated_ns)
    .bind(alert.notified_ns)
    .execute(&mut **transaction)
    .await?;
    Ok(())
}

impl AlertStore for PgStore {
    async fn upsert_alerts(&self, alerts: &[AlertRow]) -> Result<(), StorageError> {
        if alerts.is_empty() {
            return Ok(());
        }
        let mut transaction = self.writable()?.begin().await?;
        for alert in alerts {
            upsert_alert(&mut transaction, alert).await?;
        }
        transaction.commit().await?;
        Ok(())
    }

    async fn alerts(&self, limit: i64) -> Result<Vec<AlertRow>, StorageError> {
        let rows = sqlx::query(
            "SELECT fingerprint, starts_ns, rule, status, labels, annotations, ends_ns, \
             updated_ns, notified_ns FROM alerts ORDER BY \
             CASE status WHEN 'firing' THEN 0 WHEN 'pending' THEN 1 ELSE 2 END, \
             updated_ns DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(crate::row_decode::alert).collect()
    }

    async fn unresolved_alerts(&self) -> Result<Vec<AlertRow>, StorageError> {
        let rows = sqlx::query(
            "SELECT fingerprint, starts_ns, rule, status, labels, annotations, ends_ns, \
             updated_ns, notified_ns FROM alerts WHERE status <> 'resolved' ORDER BY starts_ns",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(crate::row_decode::alert).collect()
    }
}
