//! Tests of OTLP metrics to lag samples.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::type_complexity
)]

use opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Histogram, Metric, ResourceMetrics, ScopeMetrics,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

use super::*;

const NOW: i64 = 1_700_000_000_000_000_000;

fn text(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..KeyValue::default()
    }
}

fn int(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(value)),
        }),
        ..KeyValue::default()
    }
}

fn point(
    attributes: Vec<KeyValue>,
    value: number_data_point::Value,
    at_ns: u64,
) -> NumberDataPoint {
    NumberDataPoint {
        attributes,
        time_unix_nano: at_ns,
        value: Some(value),
        ..NumberDataPoint::default()
    }
}

fn gauge(name: &str, points: Vec<NumberDataPoint>) -> Metric {
    Metric {
        name: name.into(),
        data: Some(metric::Data::Gauge(Gauge {
            data_points: points,
        })),
        ..Metric::default()
    }
}

fn request(metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![text(SERVICE_NAME, "billing")],
                ..Resource::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics,
                ..ScopeMetrics::default()
            }],
            ..ResourceMetrics::default()
        }],
    }
}

fn labels(partition: KeyValue) -> Vec<KeyValue> {
    vec![
        text(ATTR_GROUP, "billing"),
        text(ATTR_TOPIC, "orders"),
        partition,
    ]
}

#[test]
fn lag_and_offset_points_combine_into_one_sample() {
    let at = NOW as u64;
    let ingest = lag_samples(
        &request(vec![
            gauge(
                METRIC_CONSUMER_GROUP_LAG,
                vec![point(
                    labels(int(ATTR_PARTITION, 2)),
                    number_data_point::Value::AsInt(7),
                    at,
                )],
            ),
            gauge(
                METRIC_CONSUMER_GROUP_OFFSET,
                vec![point(
                    labels(int(ATTR_PARTITION, 2)),
                    number_data_point::Value::AsInt(40),
                    at,
                )],
            ),
            gauge(
                "process.cpu.time",
                vec![point(vec![], number_data_point::Value::AsInt(1), at)],
            ),
        ]),
        NOW,
    );
    assert_eq!(ingest.rejected, 0);
    assert_eq!(
        ingest.samples,
        vec![LagSample {
            sampled_ns: NOW,
            consumer_group: "billing".into(),
            topic: "orders".into(),
            partition: 2,
            committed_offset: Some(40),
            low_watermark: None,
            high_watermark: None,
            lag: Some(7),
            members: None,
            source: "otlp:billing".into(),
        }]
    );
}

#[test]
fn untrusted_points_are_rejected_or_repaired() {
    let at = NOW as u64;
    let cases: Vec<(&str, NumberDataPoint, Option<(i32, Option<i64>, i64)>)> = vec![
        (
            "semconv keys and a string partition are accepted",
            point(
                vec![
                    text(MESSAGING_CONSUMER_GROUP_NAME, "g"),
                    text(MESSAGING_DESTINATION_NAME, "t"),
                    text(MESSAGING_DESTINATION_PARTITION_ID, "3"),
                ],
                number_data_point::Value::AsInt(5),
                at,
            ),
            Some((3, Some(5), NOW)),
        ),
        (
            "a double value is truncated",
            point(
                labels(int(ATTR_PARTITION, 0)),
                number_data_point::Value::AsDouble(5.9),
                at,
            ),
            Some((0, Some(5), NOW)),
        ),
        (
            "negative lag clamps to 0",
            point(
                labels(int(ATTR_PARTITION, 0)),
                number_data_point::Value::AsInt(-4),
                at,
            ),
            Some((0, Some(0), NOW)),
        ),
        (
            "a clock far off is replaced by the receive time",
            point(
                labels(int(ATTR_PARTITION, 0)),
                number_data_point::Value::AsInt(1),
                5,
            ),
            Some((0, Some(1), NOW)),
        ),
        (
            "missing group",
            point(
                vec![text(ATTR_TOPIC, "t"), int(ATTR_PARTITION, 0)],
                number_data_point::Value::AsInt(1),
                at,
            ),
            None,
        ),
        (
            "negative partition",
            point(
                labels(int(ATTR_PARTITION, -1)),
                number_data_point::Value::AsInt(1),
                at,
            ),
            None,
        ),
        (
            "partition beyond i32",
            point(
                labels(int(ATTR_PARTITION, i64::MAX)),
                number_data_point::Value::AsInt(1),
                at,
            ),
            None,
        ),
        (
            "unparsable partition",
            point(
                labels(text(ATTR_PARTITION, "zero")),
                number_data_point::Value::AsInt(1),
                at,
            ),
            None,
        ),
        (
            "NaN value",
            point(
                labels(int(ATTR_PARTITION, 0)),
                number_data_point::Value::AsDouble(f64::NAN),
                at,
            ),
            None,
        ),
        (
            "a huge topic name",
            point(
                vec![
                    text(ATTR_GROUP, "g"),
                    text(ATTR_TOPIC, &"t".repeat(10_000)),
                    int(ATTR_PARTITION, 0),
                ],
                number_data_point::Value::AsInt(1),
                at,
            ),
            None,
        ),
    ];
    for (reason, point, expected) in cases {
        let ingest = lag_samples(
            &request(vec![gauge(METRIC_CONSUMER_GROUP_LAG, vec![point])]),
            NOW,
        );
        let got = ingest
            .samples
            .first()
            .map(|s| (s.partition, s.lag, s.sampled_ns));
        assert_eq!(got, expected, "{reason}");
        assert_eq!(ingest.rejected, usize::from(expected.is_none()), "{reason}");
    }
}

#[test]
fn a_histogram_under_a_lag_name_is_rejected() {
    let metric = Metric {
        name: METRIC_CONSUMER_GROUP_LAG.into(),
        data: Some(metric::Data::Histogram(Histogram::default())),
        ..Metric::default()
    };
    let ingest = lag_samples(&request(vec![metric]), NOW);
    assert_eq!((ingest.samples.len(), ingest.rejected), (0, 1));
}

#[test]
fn points_of_one_export_stamped_apart_still_combine() {
    let at = NOW as u64;
    let ingest = lag_samples(
        &request(vec![
            gauge(
                METRIC_CONSUMER_GROUP_LAG,
                vec![point(
                    labels(int(ATTR_PARTITION, 0)),
                    number_data_point::Value::AsInt(3),
                    at,
                )],
            ),
            gauge(
                METRIC_CONSUMER_GROUP_OFFSET,
                vec![point(
                    labels(int(ATTR_PARTITION, 0)),
                    number_data_point::Value::AsInt(9),
                    at + 1_000_000,
                )],
            ),
        ]),
        NOW,
    );
    assert_eq!(ingest.samples.len(), 1);
    let sample = &ingest.samples[0];
    assert_eq!(
        (sample.lag, sample.committed_offset, sample.sampled_ns),
        (Some(3), Some(9), NOW + 1_000_000)
    );
}
