//! Lag samples and per-partition lag status: writing, reading a window, downsampling with
//! age, retention, and finding the oldest event a group has not consumed yet.

use causeway_conventions::LagState;
use serde::{Deserialize, Serialize};

use crate::error::StorageError;
use crate::store::SqliteStore as Store;

/// Sample rows per insert statement (10 columns each, well under SQLite's variable limit).
const SAMPLE_ROWS_PER_STATEMENT: usize = 1_000;
/// Status rows per insert statement (11 columns each).
const STATUS_ROWS_PER_STATEMENT: usize = 1_000;

/// One observation of a consumer group's position on one partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LagSample {
    /// When it was observed, in nanoseconds since the Unix epoch.
    pub sampled_ns: i64,
    /// The consumer group.
    pub consumer_group: String,
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The group's committed offset (the next offset it will read); `None` when it has none.
    pub committed_offset: Option<i64>,
    /// The partition's low watermark, when known.
    pub low_watermark: Option<i64>,
    /// The partition's high watermark, when known.
    pub high_watermark: Option<i64>,
    /// Lag in messages; `None` when unknown.
    pub lag: Option<i64>,
    /// Members of the group at that time, when known.
    pub members: Option<i64>,
    /// `poller`, or `otlp:<service>` for a gauge a service reported.
    pub source: String,
}

/// The latest evaluated state of one partition for one group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LagStatusRow {
    /// The consumer group.
    pub consumer_group: String,
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The state the lag rules gave the partition, stored as its one text form.
    #[serde(with = "lag_state_text")]
    pub state: LagState,
    /// The committed offset, when the group has one.
    pub committed_offset: Option<i64>,
    /// The high watermark.
    pub high_watermark: Option<i64>,
    /// Lag in messages, when known.
    pub lag: Option<i64>,
    /// Lag in time (age of the oldest unconsumed message), in milliseconds, when known.
    pub time_lag_ms: Option<i64>,
    /// Change of lag per second over the window (negative while catching up).
    pub rate_per_s: Option<f64>,
    /// Estimated time to catch up, in milliseconds, when lag is shrinking.
    pub catch_up_ms: Option<i64>,
    /// When this row was evaluated, in nanoseconds since the Unix epoch.
    pub updated_ns: i64,
}

/// The producer send span of the oldest message a group has not consumed yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitingEvent {
    /// The message's offset.
    pub kafka_offset: i64,
    /// The business correlation ID of the message, when the producer recorded one.
    pub correlation_id: Option<String>,
    /// The trace ID of the send span, lowercase hex.
    pub trace_id: String,
    /// When the message was sent, in nanoseconds since the Unix epoch.
    pub sent_ns: i64,
}

impl Store {
    /// Appends lag samples in one transaction.
    pub async fn write_lag_samples(&self, samples: &[LagSample]) -> Result<(), StorageError> {
        if samples.is_empty() {
            return Ok(());
        }
        let writer = self.writer()?;
        let mut transaction = writer.begin().await?;
        for chunk in samples.chunks(SAMPLE_ROWS_PER_STATEMENT) {
            let mut sql = String::from(
                "INSERT INTO lag_samples (sampled_ns, consumer_group, topic, partition_id, \
                 committed_offset, low_watermark, high_watermark, lag, members, source) VALUES ",
            );
            push_placeholders(&mut sql, chunk.len(), 10);
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for sample in chunk {
                query = query
                    .bind(sample.sampled_ns)
                    .bind(&sample.consumer_group)
                    .bind(&sample.topic)
                    .bind(sample.partition)
                    .bind(sample.committed_offset)
                    .bind(sample.low_watermark)
                    .bind(sample.high_watermark)
                    .bind(sample.lag)
                    .bind(sample.members)
                    .bind(&sample.source);
            }
            query.execute(&mut *transaction).await?;
        }
        transaction.commit().await?;
        Ok(())
    }

    /// Every sample taken at or after `since_ns`, ordered by group, topic, partition and
    /// time: the evaluation window.
    pub async fn lag_samples_since(&self, since_ns: i64) -> Result<Vec<LagSample>, StorageError> {
        let rows = sqlx::query(
            "SELECT sampled_ns, consumer_group, topic, partition_id, committed_offset, \
             low_watermark, high_watermark, lag, members, source FROM lag_samples \
             WHERE sampled_ns >= ? ORDER BY consumer_group, topic, partition_id, sampled_ns",
        )
        .bind(since_ns)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(crate::row_decode::lag_sample).collect()
    }

    /// Replaces the stored status of every partition in `rows` in one transaction.
    pub async fn write_lag_status(&self, rows: &[LagStatusRow]) -> Result<(), StorageError> {
        if rows.is_empty() {
            return Ok(());
        }
        let writer = self.writer()?;
        let mut transaction = writer.begin().await?;
        for chunk in rows.chunks(STATUS_ROWS_PER_STATEMENT) {
            let mut sql = String::from(
                "INSERT OR REPLACE INTO lag_status (consumer_group, topic, partition_id, state, \
                 committed_offset, high_watermark, lag, time_lag_ms, rate_per_s, catch_up_ms, \
                 updated_ns) VALUES ",
            );
            push_placeholders(&mut sql, chunk.len(), 11);
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for row in chunk {
                query = query
                    .bind(&row.consumer_group)
                    .bind(&row.topic)
                    .bind(row.partition)
                    .bind(row.state.name())
                    .bind(row.committed_offset)
                    .bind(row.high_watermark)
                    .bind(row.lag)
                    .bind(row.time_lag_ms)
                    .bind(row.rate_per_s)
                    .bind(row.catch_up_ms)
                    .bind(row.updated_ns);
            }
            query.execute(&mut *transaction).await?;
        }
        transaction.commit().await?;
        Ok(())
    }

    /// The latest status of every partition, by group, topic and partition.
    pub async fn lag_status(&self) -> Result<Vec<LagStatusRow>, StorageError> {
        let rows = sqlx::query(
            "SELECT consumer_group, topic, partition_id, state, committed_offset, \
             high_watermark, lag, time_lag_ms, rate_per_s, catch_up_ms, updated_ns \
             FROM lag_status ORDER BY consumer_group, topic, partition_id",
        )
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(crate::row_decode::lag_status).collect()
    }

    /// Downsamples samples older than `older_than_ns`: in each bucket of `bucket_ns` per
    /// group, topic, partition and source only the latest sample is kept. Running it again
    /// removes nothing more. Returns how many samples went.
    pub async fn downsample_lag(
        &self,
        older_than_ns: i64,
        bucket_ns: i64,
    ) -> Result<u64, StorageError> {
        let bucket_ns = bucket_ns.max(1);
        let deleted = sqlx::query(
            "DELETE FROM lag_samples WHERE sampled_ns < ?1 AND rowid NOT IN ( \
             SELECT max(rowid) FROM lag_samples WHERE sampled_ns < ?1 \
             GROUP BY consumer_group, topic, partition_id, source, sampled_ns / ?2)",
        )
        .bind(older_than_ns)
        .bind(bucket_ns)
        .execute(self.writer()?)
        .await?
        .rows_affected();
        Ok(deleted)
    }

    /// Deletes samples taken before `cutoff_ns`, and statuses not updated since then.
    pub async fn delete_lag_before(&self, cutoff_ns: i64) -> Result<u64, StorageError> {
        let writer = self.writer()?;
        let deleted = sqlx::query("DELETE FROM lag_samples WHERE sampled_ns < ?")
            .bind(cutoff_ns)
            .execute(writer)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM lag_status WHERE updated_ns < ?")
            .bind(cutoff_ns)
            .execute(writer)
            .await?;
        Ok(deleted)
    }

    /// The producer send span of the first message at or after `committed_offset` on one
    /// partition: the oldest event the group is still waiting to consume.
    pub async fn oldest_waiting_event(
        &self,
        topic: &str,
        partition: i32,
        committed_offset: i64,
    ) -> Result<Option<WaitingEvent>, StorageError> {
        let row = sqlx::query(
            "SELECT kafka_offset, correlation_id, trace_id, start_ns FROM spans \
             WHERE kind = 4 AND kafka_offset IS NOT NULL AND destination = ? \
             AND partition_id = ? AND kafka_offset >= ? ORDER BY kafka_offset LIMIT 1",
        )
        .bind(topic)
        .bind(partition)
        .bind(committed_offset)
        .fetch_optional(&self.reader)
        .await?;
        row.as_ref()
            .map(crate::row_decode::waiting_event)
            .transpose()
    }
}

/// A stored state name back to its [`LagState`]; a name this build does not know is a
/// corrupt row, not a guess.
pub(crate) fn decode_state(name: String) -> Result<LagState, StorageError> {
    name.parse()
        .map_err(|error| StorageError::Corrupt(format!("lag_status.state: {error}")))
}

/// Lag states in JSON as their one text form (`"WARN"`), as they are stored.
mod lag_state_text {
    use causeway_conventions::LagState;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(state: &LagState, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(state.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<LagState, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// Appends `rows` groups of `columns` placeholders: `(?, ?), (?, ?)`.
pub(crate) fn push_placeholders(sql: &mut String, rows: usize, columns: usize) {
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for column in 0..columns {
            if column > 0 {
                sql.push_str(", ");
            }
            sql.push('?');
        }
        sql.push(')');
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn sample(sampled_ns: i64, partition: i32, committed: Option<i64>) -> LagSample {
        LagSample {
            sampled_ns,
            consumer_group: "billing".into(),
            topic: "orders".into(),
            partition,
            committed_offset: committed,
            low_watermark: Some(0),
            high_watermark: Some(10),
            lag: committed.map(|c| 10 - c),
            members: Some(1),
            source: "poller".into(),
        }
    }

    #[tokio::test]
    async fn samples_round_trip_and_downsample_keeps_latest_per_bucket() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("lag.db")).await.unwrap();
        let samples: Vec<LagSample> = (0..10)
            .map(|i| sample(i * 100, 0, if i == 0 { None } else { Some(i) }))
            .collect();
        store.write_lag_samples(&samples).await.unwrap();
        assert_eq!(store.lag_samples_since(0).await.unwrap(), samples);

        // Samples before 600 fall in buckets of 300: [0,300) and [300,600) keep one each.
        let deleted = store.downsample_lag(600, 300).await.unwrap();
        assert_eq!(deleted, 4);
        let kept: Vec<i64> = store
            .lag_samples_since(0)
            .await
            .unwrap()
            .iter()
            .map(|s| s.sampled_ns)
            .collect();
        assert_eq!(kept, vec![200, 500, 600, 700, 800, 900]);
        assert_eq!(
            store.downsample_lag(600, 300).await.unwrap(),
            0,
            "idempotent"
        );

        assert_eq!(store.delete_lag_before(700).await.unwrap(), 3);
        assert_eq!(store.lag_samples_since(0).await.unwrap().len(), 3);
    }

    #[tokio::test]
    async fn status_rows_are_replaced_per_partition() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("lag.db")).await.unwrap();
        let mut row = LagStatusRow {
            consumer_group: "billing".into(),
            topic: "orders".into(),
            partition: 3,
            state: LagState::Ok,
            committed_offset: Some(4),
            high_watermark: Some(4),
            lag: Some(0),
            time_lag_ms: Some(0),
            rate_per_s: None,
            catch_up_ms: None,
            updated_ns: 1,
        };
        store
            .write_lag_status(std::slice::from_ref(&row))
            .await
            .unwrap();
        row.state = LagState::Stop;
        row.updated_ns = 2;
        store
            .write_lag_status(std::slice::from_ref(&row))
            .await
            .unwrap();
        assert_eq!(store.lag_status().await.unwrap(), vec![row]);
    }
}
