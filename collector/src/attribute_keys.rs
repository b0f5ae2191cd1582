//! The span and resource attribute keys the collector reads, in one place.
//!
//! Keys come from `opentelemetry-semantic-conventions` (messaging v1.44 names); none of
//! them is retyped as a string anywhere else in the collector.

pub use opentelemetry_semantic_conventions::attribute::{
    CLOUDEVENTS_EVENT_ID, CLOUDEVENTS_EVENT_TYPE, MESSAGING_CONSUMER_GROUP_NAME,
    MESSAGING_DESTINATION_NAME, MESSAGING_DESTINATION_PARTITION_ID, MESSAGING_KAFKA_MESSAGE_KEY,
    MESSAGING_KAFKA_OFFSET, MESSAGING_MESSAGE_CONVERSATION_ID, MESSAGING_MESSAGE_ID,
    MESSAGING_OPERATION_TYPE,
};
pub use opentelemetry_semantic_conventions::resource::SERVICE_NAME;

/// The service name used when a resource does not carry `service.name`, as the
/// OpenTelemetry SDKs do.
pub const UNKNOWN_SERVICE: &str = "unknown_service";
