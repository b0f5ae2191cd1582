//! The JSON body hooks receive: the Alertmanager v4 webhook payload, so that receivers
//! written for Alertmanager work unchanged.

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use serde::Serialize;

use causeway_conventions::alert::label;

use crate::alerting::alert::{Alert, AlertStatus};

/// The payload version Alertmanager sends.
pub const PAYLOAD_VERSION: &str = "4";
/// Alertmanager's `endsAt` for an alert that has not ended.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// One notification, as Alertmanager's webhook receiver gets it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookPayload {
    /// Always "4".
    pub version: &'static str,
    /// Identifies the group of alerts (here the rule and the alert's labels).
    pub group_key: String,
    /// Alerts left out of the payload (always 0: one alert per payload).
    pub truncated_alerts: u32,
    /// `firing` or `resolved`.
    pub status: &'static str,
    /// The hook's name.
    pub receiver: String,
    /// The labels the group is keyed on.
    pub group_labels: BTreeMap<String, String>,
    /// Labels every alert in the payload shares.
    pub common_labels: BTreeMap<String, String>,
    /// Annotations every alert in the payload shares.
    pub common_annotations: BTreeMap<String, String>,
    /// Where the sender can be reached.
    #[serde(rename = "externalURL")]
    pub external_url: String,
    /// The alerts.
    pub alerts: Vec<PayloadAlert>,
}

/// One alert inside a payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PayloadAlert {
    /// `firing` or `resolved`.
    pub status: &'static str,
    /// Identifying labels.
    pub labels: BTreeMap<String, String>,
    /// Descriptive annotations.
    pub annotations: BTreeMap<String, String>,
    /// RFC 3339 start time.
    pub starts_at: String,
    /// RFC 3339 end time, or the zero time while firing.
    pub ends_at: String,
    /// A link to what raised it.
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
    /// The alert's fingerprint.
    pub fingerprint: String,
}

/// Builds the payload announcing `alert` to the hook `receiver`.
pub fn payload(alert: &Alert, receiver: &str, external_url: &str) -> WebhookPayload {
    let status = match alert.status {
        AlertStatus::Resolved => AlertStatus::Resolved.name(),
        AlertStatus::Pending | AlertStatus::Firing => AlertStatus::Firing.name(),
    };
    let group_labels: BTreeMap<String, String> = alert
        .labels
        .get(label::ALERT_NAME)
        .map(|name| (label::ALERT_NAME.to_owned(), name.clone()))
        .into_iter()
        .collect();
    let group_key = format!(
        "{{}}:{{{}}}",
        alert
            .labels
            .iter()
            .map(|(name, value)| format!("{name}={value:?}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    let base = external_url.trim_end_matches('/');
    WebhookPayload {
        version: PAYLOAD_VERSION,
        group_key,
        truncated_alerts: 0,
        status,
        receiver: receiver.to_owned(),
        group_labels,
        common_labels: alert.labels.clone(),
        common_annotations: alert.annotations.clone(),
        external_url: base.to_owned(),
        alerts: vec![PayloadAlert {
            status,
            labels: alert.labels.clone(),
            annotations: alert.annotations.clone(),
            starts_at: rfc3339(alert.starts_ns),
            ends_at: alert.ends_ns.map_or_else(|| ZERO_TIME.to_owned(), rfc3339),
            generator_url: format!("{base}/alerts/{}", alert.fingerprint),
            fingerprint: alert.fingerprint.clone(),
        }],
    }
}

/// Formats nanoseconds since the Unix epoch as RFC 3339 with milliseconds, in UTC.
pub fn rfc3339(at_ns: i64) -> String {
    let time = UNIX_EPOCH + Duration::from_nanos(u64::try_from(at_ns).unwrap_or(0));
    humantime::format_rfc3339_millis(time).to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn alert(status: AlertStatus, ends_ns: Option<i64>) -> Alert {
        Alert {
            fingerprint: "0123456789abcdef".into(),
            rule: "behind".into(),
            labels: BTreeMap::from([
                ("alertname".into(), "behind".into()),
                ("consumer_group".into(), "billing".into()),
            ]),
            annotations: BTreeMap::from([("correlation_id".into(), "ord-1042".into())]),
            status,
            starts_ns: 1_700_000_000_123_000_000,
            ends_ns,
            clear_since_ns: None,
        }
    }

    #[test]
    fn firing_payload_has_the_alertmanager_shape() {
        let body = serde_json::to_value(payload(
            &alert(AlertStatus::Firing, None),
            "oncall",
            "http://causeway.local/",
        ))
        .unwrap();
        assert_eq!(body["version"], "4");
        assert_eq!(body["status"], "firing");
        assert_eq!(body["receiver"], "oncall");
        assert_eq!(
            body["groupKey"],
            "{}:{alertname=\"behind\",consumer_group=\"billing\"}"
        );
        assert_eq!(
            body["groupLabels"],
            serde_json::json!({"alertname": "behind"})
        );
        assert_eq!(body["commonLabels"]["consumer_group"], "billing");
        assert_eq!(body["commonAnnotations"]["correlation_id"], "ord-1042");
        assert_eq!(body["externalURL"], "http://causeway.local");
        let first = &body["alerts"][0];
        assert_eq!(first["startsAt"], "2023-11-14T22:13:20.123Z");
        assert_eq!(first["endsAt"], "0001-01-01T00:00:00Z");
        assert_eq!(first["fingerprint"], "0123456789abcdef");
        assert_eq!(
            first["generatorURL"],
            "http://causeway.local/alerts/0123456789abcdef"
        );
    }

    #[test]
    fn resolved_payload_carries_the_end_time() {
        let resolved = payload(
            &alert(AlertStatus::Resolved, Some(1_700_000_060_000_000_000)),
            "oncall",
            "http://x",
        );
        assert_eq!(resolved.status, "resolved");
        assert_eq!(resolved.alerts[0].ends_at, "2023-11-14T22:14:20.000Z");
    }
}
