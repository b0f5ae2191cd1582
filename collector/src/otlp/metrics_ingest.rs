//! OTLP metrics to lag samples: the `kafka.consumer_group.lag` and
//! `kafka.consumer_group.offset` gauges services report (the names of the collector's
//! `kafkametrics` receiver), combined per group, topic and partition. Pure: the
//! receivers in `metrics_ingest_grpc` and `metrics_ingest_http` only decode and store.

use std::collections::BTreeMap;

use causeway_conventions::attribute::{
    MESSAGING_CONSUMER_GROUP_NAME, MESSAGING_DESTINATION_NAME, MESSAGING_DESTINATION_PARTITION_ID,
    SERVICE_NAME,
};
use causeway_conventions::metric::{
    ATTR_GROUP, ATTR_PARTITION, ATTR_TOPIC, CONSUMER_GROUP_LAG as METRIC_CONSUMER_GROUP_LAG,
    CONSUMER_GROUP_OFFSET as METRIC_CONSUMER_GROUP_OFFSET,
};
use causeway_storage::LagSample;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{NumberDataPoint, metric, number_data_point};

/// Prefix of the `source` recorded on samples from OTLP (followed by `service.name`).
pub const OTLP_SOURCE_PREFIX: &str = "otlp:";
/// Points stamped further than this from the receive time are stamped with the receive
/// time instead (a sender's clock is not trusted to order samples).
const MAX_CLOCK_SKEW_NS: i64 = 3_600 * 1_000_000_000;
/// The longest group or topic name kept; longer ones are rejected.
const MAX_NAME_BYTES: usize = 512;

/// The lag samples in one export, and how many lag data points were rejected.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsIngest {
    /// One sample per group, topic, partition and time.
    pub samples: Vec<LagSample>,
    /// Lag or offset points without a usable group, topic or partition, or value.
    pub rejected: usize,
}

/// One export gives one sample per group, topic, partition and source: a service's lag
/// and offset points for a partition are combined even when stamped a moment apart.
type SampleKey = (String, String, i32, String);

/// Extracts lag samples from an export received at `now_ns`; other metrics are ignored.
pub fn lag_samples(request: &ExportMetricsServiceRequest, now_ns: i64) -> MetricsIngest {
    let mut combined: BTreeMap<SampleKey, LagSample> = BTreeMap::new();
    let mut rejected = 0;
    for resource_metrics in &request.resource_metrics {
        let service = resource_metrics
            .resource
            .as_ref()
            .and_then(|r| string_attribute(&r.attributes, &[SERVICE_NAME]))
            .unwrap_or_else(|| "unknown".to_owned());
        let source = format!("{OTLP_SOURCE_PREFIX}{service}");
        for scope in &resource_metrics.scope_metrics {
            for metric in &scope.metrics {
                let is_lag = metric.name == METRIC_CONSUMER_GROUP_LAG;
                if !is_lag && metric.name != METRIC_CONSUMER_GROUP_OFFSET {
                    continue;
                }
                let points: &[NumberDataPoint] = match &metric.data {
                    Some(metric::Data::Gauge(gauge)) => &gauge.data_points,
                    Some(metric::Data::Sum(sum)) => &sum.data_points,
                    _ => {
                        rejected += 1;
                        continue;
                    }
                };
                for point in points {
                    let Some((group, topic, partition, value)) = read_point(point) else {
                        rejected += 1;
                        continue;
                    };
                    let at_ns = i64::try_from(point.time_unix_nano)
                        .ok()
                        .filter(|t| (t - now_ns).abs() <= MAX_CLOCK_SKEW_NS)
                        .unwrap_or(now_ns);
                    let key = (group.clone(), topic.clone(), partition, source.clone());
                    let sample = combined.entry(key).or_insert_with(|| LagSample {
                        sampled_ns: at_ns,
                        consumer_group: group,
                        topic,
                        partition,
                        committed_offset: None,
                        low_watermark: None,
                        high_watermark: None,
                        lag: None,
                        members: None,
                        source: source.clone(),
                    });
                    sample.sampled_ns = sample.sampled_ns.max(at_ns);
                    if is_lag {
                        sample.lag = Some(value.max(0));
                    } else {
                        sample.committed_offset = Some(value);
                    }
                }
            }
        }
    }
    MetricsIngest {
        samples: combined.into_values().collect(),
        rejected,
    }
}

fn read_point(point: &NumberDataPoint) -> Option<(String, String, i32, i64)> {
    let group = string_attribute(
        &point.attributes,
        &[ATTR_GROUP, MESSAGING_CONSUMER_GROUP_NAME],
    )?;
    let topic = string_attribute(&point.attributes, &[ATTR_TOPIC, MESSAGING_DESTINATION_NAME])?;
    if group.len() > MAX_NAME_BYTES || topic.len() > MAX_NAME_BYTES {
        return None;
    }
    let partition = partition_attribute(&point.attributes)?;
    let value = match point.value? {
        number_data_point::Value::AsInt(value) => value,
        number_data_point::Value::AsDouble(value) if value.is_finite() => value as i64,
        number_data_point::Value::AsDouble(_) => return None,
    };
    Some((group, topic, partition, value))
}

fn find<'a>(attributes: &'a [KeyValue], keys: &[&str]) -> Option<&'a any_value::Value> {
    keys.iter().find_map(|key| {
        attributes
            .iter()
            .find(|kv| kv.key == *key)
            .and_then(|kv| kv.value.as_ref())
            .and_then(|v: &AnyValue| v.value.as_ref())
    })
}

fn string_attribute(attributes: &[KeyValue], keys: &[&str]) -> Option<String> {
    match find(attributes, keys)? {
        any_value::Value::StringValue(text) if !text.is_empty() => Some(text.clone()),
        _ => None,
    }
}

fn partition_attribute(attributes: &[KeyValue]) -> Option<i32> {
    match find(
        attributes,
        &[ATTR_PARTITION, MESSAGING_DESTINATION_PARTITION_ID],
    )? {
        any_value::Value::IntValue(number) => i32::try_from(*number).ok(),
        any_value::Value::StringValue(text) => text.trim().parse().ok(),
        _ => None,
    }
    .filter(|p| *p >= 0)
}

#[cfg(test)]
#[path = "metrics_ingest_tests.rs"]
mod tests;
