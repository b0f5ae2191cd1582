//! Stored alerts: one row per episode of an alert (its fingerprint and start time), updated
//! as it moves through pending, firing and resolved.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::StorageError;
use crate::store::SqliteStore as Store;

/// One episode of an alert as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertRow {
    /// Stable identity derived from the alert's labels (hex).
    pub fingerprint: String,
    /// When the condition began, in nanoseconds since the Unix epoch.
    pub starts_ns: i64,
    /// The rule that raised it.
    pub rule: String,
    /// `pending`, `firing` or `resolved`.
    pub status: String,
    /// The identifying labels.
    pub labels: BTreeMap<String, String>,
    /// Descriptive annotations (summary, oldest waiting event, ...).
    pub annotations: BTreeMap<String, String>,
    /// When it resolved, in nanoseconds since the Unix epoch.
    pub ends_ns: Option<i64>,
    /// When the row last changed.
    pub updated_ns: i64,
    /// When hooks were last notified about it.
    pub notified_ns: Option<i64>,
}

/// Inserts or updates one alert episode without ever moving its notification time back:
/// a row written with no `notified_ns` keeps the stored one (hooks are told after the row
/// is written, and record it themselves).
pub(crate) const ALERT_UPSERT: &str = "INSERT INTO alerts (fingerprint, starts_ns, rule, status, \
    labels, annotations, ends_ns, updated_ns, notified_ns) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
    ON CONFLICT (fingerprint, starts_ns) DO UPDATE SET rule = excluded.rule, \
    status = excluded.status, labels = excluded.labels, annotations = excluded.annotations, \
    ends_ns = excluded.ends_ns, updated_ns = excluded.updated_ns, \
    notified_ns = CASE WHEN excluded.notified_ns IS NULL THEN alerts.notified_ns \
    ELSE max(coalesce(alerts.notified_ns, 0), excluded.notified_ns) END";

impl Store {
    /// Inserts or updates alert episodes, keyed on fingerprint and start time.
    pub async fn upsert_alerts(&self, alerts: &[AlertRow]) -> Result<(), StorageError> {
        if alerts.is_empty() {
            return Ok(());
        }
        let writer = self.writer()?;
        let mut transaction = writer.begin().await?;
        for alert in alerts {
            let labels = to_json(&alert.labels)?;
            let annotations = to_json(&alert.annotations)?;
            sqlx::query(ALERT_UPSERT)
                .bind(&alert.fingerprint)
                .bind(alert.starts_ns)
                .bind(&alert.rule)
                .bind(&alert.status)
                .bind(labels)
                .bind(annotations)
                .bind(alert.ends_ns)
                .bind(alert.updated_ns)
                .bind(alert.notified_ns)
                .execute(&mut *transaction)
                .await?;
        }
        transaction.commit().await?;
        Ok(())
    }

    /// The most recently updated alert episodes, at most `limit`: firing first, then
    /// pending, then resolved, newest first within each.
    pub async fn alerts(&self, limit: i64) -> Result<Vec<AlertRow>, StorageError> {
        let rows = sqlx::query(
            "SELECT fingerprint, starts_ns, rule, status, labels, annotations, ends_ns, \
             updated_ns, notified_ns FROM alerts ORDER BY \
             CASE status WHEN 'firing' THEN 0 WHEN 'pending' THEN 1 ELSE 2 END, \
             updated_ns DESC LIMIT ?",
        )
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(crate::row_decode::alert).collect()
    }

    /// Every alert episode still pending or firing, oldest first.
    pub async fn unresolved_alerts(&self) -> Result<Vec<AlertRow>, StorageError> {
        let rows = sqlx::query(
            "SELECT fingerprint, starts_ns, rule, status, labels, annotations, ends_ns, \
             updated_ns, notified_ns FROM alerts WHERE status != 'resolved' ORDER BY starts_ns",
        )
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(crate::row_decode::alert).collect()
    }
}

pub(crate) fn to_json(map: &BTreeMap<String, String>) -> Result<String, StorageError> {
    serde_json::to_string(map).map_err(|e| StorageError::Corrupt(format!("alert labels: {e}")))
}

pub(crate) fn from_json(text: &str) -> Result<BTreeMap<String, String>, StorageError> {
    serde_json::from_str(text).map_err(|e| StorageError::Corrupt(format!("alert labels: {e}")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[tokio::test]
    async fn episodes_upsert_and_list_firing_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("alerts.db")).await.unwrap();
        let firing = AlertRow {
            fingerprint: "ab".into(),
            starts_ns: 10,
            rule: "lagging".into(),
            status: "pending".into(),
            labels: BTreeMap::from([("consumer_group".into(), "billing".into())]),
            annotations: BTreeMap::new(),
            ends_ns: None,
            updated_ns: 10,
            notified_ns: None,
        };
        let resolved = AlertRow {
            fingerprint: "cd".into(),
            status: "resolved".into(),
            ends_ns: Some(30),
            updated_ns: 30,
            ..firing.clone()
        };
        store
            .upsert_alerts(&[firing.clone(), resolved.clone()])
            .await
            .unwrap();
        let firing = AlertRow {
            status: "firing".into(),
            updated_ns: 20,
            notified_ns: Some(20),
            ..firing
        };
        store
            .upsert_alerts(std::slice::from_ref(&firing))
            .await
            .unwrap();
        // The update replaced the pending row; firing sorts before the newer resolved one.
        assert_eq!(store.alerts(10).await.unwrap(), vec![firing, resolved]);
    }
}
