//! Consumer-side lag reporting: librdkafka statistics (`statistics.interval.ms`) turned into
//! the OTLP gauges `kafka.consumer_group.lag` and `kafka.consumer_group.offset`.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Gauge, Meter};
use rdkafka::client::ClientContext;
use rdkafka::consumer::ConsumerContext;
use serde::Deserialize;

use causeway_conventions::metric;

/// Why a statistics document could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LagError {
    /// The statistics are not the JSON librdkafka emits.
    #[error("cannot parse librdkafka statistics: {0}")]
    Parse(#[from] serde_json::Error),
}

/// Lag of one assigned partition at the time of a statistics report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LagSample {
    /// Topic name.
    pub topic: String,
    /// Partition number.
    pub partition: i32,
    /// Messages between the committed offset and the high watermark.
    pub lag: i64,
    /// The committed offset, when the group has committed one.
    pub committed_offset: Option<i64>,
}

#[derive(Deserialize)]
struct Statistics {
    #[serde(default)]
    topics: BTreeMap<String, TopicStatistics>,
}

#[derive(Deserialize)]
struct TopicStatistics {
    #[serde(default)]
    partitions: BTreeMap<String, PartitionStatistics>,
}

#[derive(Deserialize)]
struct PartitionStatistics {
    partition: i32,
    #[serde(default = "unknown")]
    consumer_lag: i64,
    #[serde(default = "unknown")]
    committed_offset: i64,
}

/// librdkafka's value for "not known".
fn unknown() -> i64 {
    -1
}

/// The lag of every partition this consumer is assigned, from a statistics JSON document.
/// Partitions that are not assigned (lag `-1`) and the internal partition `-1` are left out.
pub fn lag_samples(statistics: &[u8]) -> Result<Vec<LagSample>, LagError> {
    let statistics: Statistics = serde_json::from_slice(statistics)?;
    let mut samples = Vec::new();
    for (topic, topic_statistics) in statistics.topics {
        for partition in topic_statistics.partitions.into_values() {
            if partition.partition < 0 || partition.consumer_lag < 0 {
                continue;
            }
            samples.push(LagSample {
                topic: topic.clone(),
                partition: partition.partition,
                lag: partition.consumer_lag,
                committed_offset: (partition.committed_offset >= 0)
                    .then_some(partition.committed_offset),
            });
        }
    }
    Ok(samples)
}

/// An rdkafka client context that records the consumer's lag as OTLP gauges each time
/// librdkafka reports statistics. Set `statistics.interval.ms` on the consumer config.
pub struct LagReportingContext {
    group: String,
    lag: Gauge<i64>,
    offset: Gauge<i64>,
    last: Mutex<Vec<LagSample>>,
}

impl LagReportingContext {
    /// A context for consumer group `group`, recording with `meter`.
    pub fn new(group: impl Into<String>, meter: &Meter) -> Self {
        Self {
            group: group.into(),
            lag: meter
                .i64_gauge(metric::CONSUMER_GROUP_LAG)
                .with_description(
                    "messages between the group's committed offset and the high watermark",
                )
                .build(),
            offset: meter
                .i64_gauge(metric::CONSUMER_GROUP_OFFSET)
                .with_description("the group's committed offset")
                .build(),
            last: Mutex::new(Vec::new()),
        }
    }

    /// A context for `group` using the global meter provider.
    pub fn from_global(group: impl Into<String>) -> Self {
        Self::new(
            group,
            &opentelemetry::global::meter(causeway_conventions::INSTRUMENTATION_SCOPE),
        )
    }

    /// The samples of the latest statistics report (empty before the first one).
    pub fn last_samples(&self) -> Vec<LagSample> {
        self.last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Records the gauges for one statistics document; returns how many partitions it had.
    pub fn record(&self, statistics: &[u8]) -> Result<usize, LagError> {
        let samples = lag_samples(statistics)?;
        for sample in &samples {
            let attributes = [
                KeyValue::new(metric::ATTR_GROUP, self.group.clone()),
                KeyValue::new(metric::ATTR_TOPIC, sample.topic.clone()),
                KeyValue::new(metric::ATTR_PARTITION, i64::from(sample.partition)),
            ];
            self.lag.record(sample.lag, &attributes);
            if let Some(offset) = sample.committed_offset {
                self.offset.record(offset, &attributes);
            }
        }
        let count = samples.len();
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = samples;
        Ok(count)
    }
}

impl ClientContext for LagReportingContext {
    fn stats_raw(&self, statistics: &[u8]) {
        if let Err(error) = self.record(statistics) {
            tracing::warn!(group = %self.group, %error, "lag statistics skipped");
        }
    }
}

impl ConsumerContext for LagReportingContext {}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use std::sync::{Arc, Weak};
    use std::time::Duration;

    use opentelemetry::metrics::MeterProvider as _;
    use opentelemetry_sdk::error::OTelSdkResult;
    use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
    use opentelemetry_sdk::metrics::reader::MetricReader;
    use opentelemetry_sdk::metrics::{
        InstrumentKind, ManualReader, Pipeline, SdkMeterProvider, Temporality,
    };

    const STATS: &str = r#"{
      "name": "rdkafka#consumer-1", "type": "consumer",
      "topics": {
        "orders": { "topic": "orders", "partitions": {
          "0": { "partition": 0, "fetch_state": "active", "consumer_lag": 5, "committed_offset": 10 },
          "1": { "partition": 1, "fetch_state": "none", "consumer_lag": -1, "committed_offset": -1001 },
          "2": { "partition": 2, "fetch_state": "active", "consumer_lag": 0, "committed_offset": -1001 },
          "-1": { "partition": -1, "consumer_lag": -1 }
        }},
        "payments": { "topic": "payments", "partitions": {
          "0": { "partition": 0, "consumer_lag": 3, "committed_offset": 4, "extra": [1, 2] }
        }}
      }
    }"#;

    #[test]
    fn keeps_only_assigned_partitions() {
        let samples = lag_samples(STATS.as_bytes()).unwrap();
        let expected = vec![
            LagSample {
                topic: "orders".into(),
                partition: 0,
                lag: 5,
                committed_offset: Some(10),
            },
            LagSample {
                topic: "orders".into(),
                partition: 2,
                lag: 0,
                committed_offset: None,
            },
            LagSample {
                topic: "payments".into(),
                partition: 0,
                lag: 3,
                committed_offset: Some(4),
            },
        ];
        assert_eq!(samples, expected);
    }

    /// A manual reader shared between the meter provider and the test.
    #[derive(Debug, Clone)]
    struct SharedReader(Arc<ManualReader>);

    impl MetricReader for SharedReader {
        fn register_pipeline(&self, pipeline: Weak<Pipeline>) {
            self.0.register_pipeline(pipeline);
        }
        fn collect(&self, rm: &mut ResourceMetrics) -> OTelSdkResult {
            self.0.collect(rm)
        }
        fn force_flush(&self) -> OTelSdkResult {
            self.0.force_flush()
        }
        fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
            self.0.shutdown_with_timeout(timeout)
        }
        fn temporality(&self, kind: InstrumentKind) -> Temporality {
            self.0.temporality(kind)
        }
    }

    fn gauge_points(rm: &ResourceMetrics, name: &str) -> Vec<(Vec<(String, String)>, i64)> {
        let mut points = Vec::new();
        for metric in rm.scope_metrics().flat_map(|scope| scope.metrics()) {
            if metric.name() != name {
                continue;
            }
            let AggregatedMetrics::I64(MetricData::Gauge(gauge)) = metric.data() else {
                panic!("{name} is not an i64 gauge");
            };
            for point in gauge.data_points() {
                let mut attributes: Vec<(String, String)> = point
                    .attributes()
                    .map(|kv| (kv.key.to_string(), kv.value.to_string()))
                    .collect();
                attributes.sort();
                points.push((attributes, point.value()));
            }
        }
        points.sort();
        points
    }

    #[test]
    fn records_gauges_with_group_topic_partition() {
        let reader = SharedReader(Arc::new(ManualReader::builder().build()));
        let provider = SdkMeterProvider::builder()
            .with_reader(reader.clone())
            .build();
        let context = LagReportingContext::new("shipping", &provider.meter("test"));
        assert_eq!(context.record(STATS.as_bytes()).unwrap(), 3);
        assert_eq!(context.last_samples().len(), 3);
        assert!(context.record(b"not json").is_err());
        assert_eq!(
            context.last_samples().len(),
            3,
            "a bad report keeps the last samples"
        );

        let mut rm = ResourceMetrics::default();
        reader.collect(&mut rm).unwrap();
        let attrs = |topic: &str, partition: &str| {
            vec![
                ("group".to_owned(), "shipping".to_owned()),
                ("partition".to_owned(), partition.to_owned()),
                ("topic".to_owned(), topic.to_owned()),
            ]
        };
        assert_eq!(
            gauge_points(&rm, metric::CONSUMER_GROUP_LAG),
            vec![
                (attrs("orders", "0"), 5),
                (attrs("payments", "0"), 3),
                (attrs("orders", "2"), 0)
            ]
        );
        assert_eq!(
            gauge_points(&rm, metric::CONSUMER_GROUP_OFFSET),
            vec![(attrs("orders", "0"), 10), (attrs("payments", "0"), 4)],
            "no offset point without a committed offset"
        );
    }

    #[test]
    fn bad_documents_are_errors_or_empty() {
        let cases: Vec<(&str, Option<usize>, &str)> = vec![
            ("", None, "empty input is not json"),
            ("[1]", None, "array instead of object"),
            (
                r#"{"topics": {"t": {"partitions": {"0": {"consumer_lag": 1}}}}}"#,
                None,
                "partition without number",
            ),
            ("{}", Some(0), "a producer's stats have no topics"),
            (r#"{"topics": {}}"#, Some(0), "no subscribed topics"),
        ];
        for (input, expected, reason) in cases {
            let result = lag_samples(input.as_bytes()).ok().map(|s| s.len());
            assert_eq!(result, expected, "{reason}");
        }
    }
}
