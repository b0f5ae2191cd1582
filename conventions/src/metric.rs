//! Metric names and data point attributes: the consumer lag gauges services report and the
//! collector reads, with the names of the OpenTelemetry Collector's `kafkametrics` receiver.

/// Gauge: messages between a group's committed offset and the partition's high watermark.
pub const CONSUMER_GROUP_LAG: &str = "kafka.consumer_group.lag";
/// Gauge: a group's committed offset in a partition.
pub const CONSUMER_GROUP_OFFSET: &str = "kafka.consumer_group.offset";
/// Data point attribute naming the consumer group (the `kafkametrics` name).
pub const ATTR_GROUP: &str = "group";
/// Data point attribute naming the topic.
pub const ATTR_TOPIC: &str = "topic";
/// Data point attribute naming the partition.
pub const ATTR_PARTITION: &str = "partition";
