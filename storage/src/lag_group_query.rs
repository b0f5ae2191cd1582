//! The consumer groups the lag poller found and their topics (`lag_groups`), kept so a
//! restarted collector carries on, and what goes when a group is gone from the broker.

use serde::{Deserialize, Serialize};

use crate::error::StorageError;
use crate::lag_query::push_placeholders;
use crate::store::SqliteStore as Store;

/// Rows per insert statement (4 columns each).
const ROWS_PER_STATEMENT: usize = 1_000;

/// One topic of one consumer group the lag poller found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LagGroupTopic {
    /// The consumer group.
    pub consumer_group: String,
    /// The topic.
    pub topic: String,
    /// Whether the broker held committed offsets of the group on the topic (otherwise only
    /// a member's assignment named it).
    pub committed: bool,
    /// When the collector first found the topic for the group, in ns since the epoch.
    pub found_ns: i64,
}

impl Store {
    /// Every group and topic the lag poller found, by group and topic.
    pub async fn lag_groups(&self) -> Result<Vec<LagGroupTopic>, StorageError> {
        let rows = sqlx::query(
            "SELECT consumer_group, topic, committed, found_ns FROM lag_groups \
             ORDER BY consumer_group, topic",
        )
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(crate::row_decode::lag_group).collect()
    }

    /// In one transaction: replaces the found groups with `known`, and for each group in
    /// `gone` (no longer on the broker) deletes its lag status and the samples taken of it
    /// with `source`, so it is no longer shown.
    pub async fn save_lag_groups(
        &self,
        known: &[LagGroupTopic],
        gone: &[String],
        source: &str,
    ) -> Result<(), StorageError> {
        let writer = self.writer()?;
        let mut transaction = writer.begin().await?;
        sqlx::query("DELETE FROM lag_groups")
            .execute(&mut *transaction)
            .await?;
        for chunk in known.chunks(ROWS_PER_STATEMENT) {
            let mut sql = String::from(
                "INSERT INTO lag_groups (consumer_group, topic, committed, found_ns) VALUES ",
            );
            push_placeholders(&mut sql, chunk.len(), 4);
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for row in chunk {
                query = query
                    .bind(&row.consumer_group)
                    .bind(&row.topic)
                    .bind(row.committed)
                    .bind(row.found_ns);
            }
            query.execute(&mut *transaction).await?;
        }
        for group in gone {
            sqlx::query("DELETE FROM lag_status WHERE consumer_group = ?")
                .bind(group)
                .execute(&mut *transaction)
                .await?;
            sqlx::query("DELETE FROM lag_samples WHERE consumer_group = ? AND source = ?")
                .bind(group)
                .bind(source)
                .execute(&mut *transaction)
                .await?;
        }
        transaction.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use causeway_conventions::LagState;

    use super::*;
    use crate::{LagSample, LagStatusRow};

    fn topic(group: &str, topic: &str, committed: bool) -> LagGroupTopic {
        LagGroupTopic {
            consumer_group: group.into(),
            topic: topic.into(),
            committed,
            found_ns: 5,
        }
    }

    fn sample(group: &str, source: &str) -> LagSample {
        LagSample {
            sampled_ns: 1,
            consumer_group: group.into(),
            topic: "orders".into(),
            partition: 0,
            committed_offset: Some(3),
            low_watermark: Some(0),
            high_watermark: Some(10),
            lag: Some(7),
            members: Some(0),
            source: source.into(),
        }
    }

    fn status(group: &str) -> LagStatusRow {
        LagStatusRow {
            consumer_group: group.into(),
            topic: "orders".into(),
            partition: 0,
            state: LagState::Stop,
            committed_offset: Some(3),
            high_watermark: Some(10),
            lag: Some(7),
            time_lag_ms: None,
            rate_per_s: None,
            catch_up_ms: None,
            updated_ns: 1,
        }
    }

    #[tokio::test]
    async fn found_groups_survive_a_reopen_and_gone_groups_lose_their_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("groups.db");
        let store = Store::open(&path).await.unwrap();
        assert!(store.lag_groups().await.unwrap().is_empty());
        let known = vec![
            topic("billing", "orders", true),
            topic("billing", "refunds", false),
            topic("shipping", "orders", true),
        ];
        store.save_lag_groups(&known, &[], "poller").await.unwrap();
        store.close().await;

        let store = Store::open(&path).await.unwrap();
        assert_eq!(
            store.lag_groups().await.unwrap(),
            known,
            "kept across a reopen"
        );
        store
            .write_lag_samples(&[
                sample("billing", "poller"),
                sample("shipping", "poller"),
                sample("shipping", "otlp:shipping"),
            ])
            .await
            .unwrap();
        store
            .write_lag_status(&[status("billing"), status("shipping")])
            .await
            .unwrap();

        // shipping is gone from the broker: its poller samples and status go, what a
        // service reported about it stays.
        let kept = vec![known[0].clone(), known[1].clone()];
        store
            .save_lag_groups(&kept, &["shipping".to_owned()], "poller")
            .await
            .unwrap();
        assert_eq!(store.lag_groups().await.unwrap(), kept);
        let groups: Vec<String> = store
            .lag_status()
            .await
            .unwrap()
            .into_iter()
            .map(|row| row.consumer_group)
            .collect();
        assert_eq!(groups, vec!["billing"]);
        let samples: Vec<(String, String)> = store
            .lag_samples_since(0)
            .await
            .unwrap()
            .into_iter()
            .map(|s| (s.consumer_group, s.source))
            .collect();
        assert_eq!(
            samples,
            vec![
                ("billing".to_owned(), "poller".to_owned()),
                ("shipping".to_owned(), "otlp:shipping".to_owned())
            ]
        );
    }
}
