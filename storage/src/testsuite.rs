//! Test support for every crate that stores spans (feature `testsuite`, and this crate's
//! own tests): a [`SpanRecord`] builder, so tests state only what matters to them, and a
//! PostgreSQL schema of a test's own ([`PgTestSchema`]).
//!
//! The messaging setters fill both the [`Messaging`] field and the span attribute the
//! collector reads it from (OpenTelemetry's v1.44 names from `causeway-conventions`), so a
//! built span looks like one the collector stored.

use causeway_conventions::attribute;
use serde_json::Value;

use crate::ids::{SpanId, TraceId};
use crate::record::{Attributes, Messaging, SpanEvent, SpanKind, SpanLink, SpanRecord, StatusCode};

/// Builds a [`SpanRecord`]: an unset-status `INTERNAL` span named `span` of service
/// `test-service`, from 0 to 1 ns, until told otherwise.
#[derive(Debug, Clone)]
pub struct SpanBuilder {
    record: SpanRecord,
}

/// Starts a span with these ids.
pub fn span(trace_id: TraceId, span_id: SpanId) -> SpanBuilder {
    SpanBuilder {
        record: SpanRecord {
            trace_id,
            span_id,
            parent_span_id: None,
            name: "span".to_owned(),
            kind: SpanKind::Internal,
            service_name: "test-service".to_owned(),
            scope_name: "causeway-test".to_owned(),
            start_ns: 0,
            end_ns: 1,
            status_code: StatusCode::Unset,
            status_message: String::new(),
            attributes: Attributes::new(),
            resource: Attributes::new(),
            events: Vec::new(),
            links: Vec::new(),
            messaging: Messaging::default(),
        },
    }
}

impl SpanBuilder {
    /// The span's name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.record.name = name.into();
        self
    }

    /// The span's kind.
    pub fn kind(mut self, kind: SpanKind) -> Self {
        self.record.kind = kind;
        self
    }

    /// The service that made it: `service_name` and the resource's `service.name`.
    pub fn service(mut self, service: impl Into<String>) -> Self {
        let service = service.into();
        self.record.resource.insert(
            attribute::SERVICE_NAME.to_owned(),
            Value::from(service.clone()),
        );
        self.record.service_name = service;
        self
    }

    /// The instrumentation scope's name.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.record.scope_name = scope.into();
        self
    }

    /// Start and end, in nanoseconds since the Unix epoch.
    pub fn times(mut self, start_ns: i64, end_ns: i64) -> Self {
        self.record.start_ns = start_ns;
        self.record.end_ns = end_ns;
        self
    }

    /// The parent span, in the same trace.
    pub fn parent(mut self, parent: SpanId) -> Self {
        self.record.parent_span_id = Some(parent);
        self
    }

    /// An error status with `message`.
    pub fn error(mut self, message: impl Into<String>) -> Self {
        self.record.status_code = StatusCode::Error;
        self.record.status_message = message.into();
        self
    }

    /// A span attribute.
    pub fn attribute(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.record.attributes.insert(key.into(), value.into());
        self
    }

    /// A resource attribute.
    pub fn resource(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.record.resource.insert(key.into(), value.into());
        self
    }

    /// A link to another span's context.
    pub fn link(mut self, trace_id: TraceId, span_id: SpanId) -> Self {
        self.record.links.push(SpanLink {
            trace_id,
            span_id,
            attributes: Attributes::new(),
        });
        self
    }

    /// A span event.
    pub fn event(mut self, time_ns: i64, name: impl Into<String>) -> Self {
        self.record.events.push(SpanEvent {
            time_ns,
            name: name.into(),
            attributes: Attributes::new(),
        });
        self
    }

    /// The correlation ID (`messaging.message.conversation_id`).
    pub fn correlation(mut self, id: impl Into<String>) -> Self {
        let id = id.into();
        self = self.attribute(attribute::MESSAGING_MESSAGE_CONVERSATION_ID, id.clone());
        self.record.messaging.correlation_id = Some(id);
        self
    }

    /// The message id (`messaging.message.id`).
    pub fn message_id(mut self, id: impl Into<String>) -> Self {
        let id = id.into();
        self = self.attribute(attribute::MESSAGING_MESSAGE_ID, id.clone());
        self.record.messaging.message_id = Some(id);
        self
    }

    /// The CloudEvents event type (`cloudevents.event_type`).
    pub fn event_type(mut self, event_type: impl Into<String>) -> Self {
        let event_type = event_type.into();
        self = self.attribute(attribute::CLOUDEVENTS_EVENT_TYPE, event_type.clone());
        self.record.messaging.event_type = Some(event_type);
        self
    }

    /// The topic (`messaging.destination.name`).
    pub fn topic(mut self, topic: impl Into<String>) -> Self {
        let topic = topic.into();
        self = self.attribute(attribute::MESSAGING_DESTINATION_NAME, topic.clone());
        self.record.messaging.destination = Some(topic);
        self
    }

    /// The partition (`messaging.destination.partition.id`, as text like the SDKs write it).
    pub fn partition(mut self, partition: i64) -> Self {
        self = self.attribute(
            attribute::MESSAGING_DESTINATION_PARTITION_ID,
            partition.to_string(),
        );
        self.record.messaging.partition = Some(partition);
        self
    }

    /// The Kafka offset (`messaging.kafka.offset`).
    pub fn offset(mut self, offset: i64) -> Self {
        self = self.attribute(attribute::MESSAGING_KAFKA_OFFSET, offset);
        self.record.messaging.offset = Some(offset);
        self
    }

    /// The consumer group (`messaging.consumer.group.name`).
    pub fn group(mut self, group: impl Into<String>) -> Self {
        let group = group.into();
        self = self.attribute(attribute::MESSAGING_CONSUMER_GROUP_NAME, group.clone());
        self.record.messaging.consumer_group = Some(group);
        self
    }

    /// The message key (`messaging.kafka.message.key`).
    pub fn key(mut self, key: impl Into<String>) -> Self {
        let key = key.into();
        self = self.attribute(attribute::MESSAGING_KAFKA_MESSAGE_KEY, key.clone());
        self.record.messaging.message_key = Some(key);
        self
    }

    /// A send span to `topic`: `PRODUCER`, operation `send`, named `send <topic>`.
    pub fn send(self, topic: &str) -> Self {
        self.kind(SpanKind::Producer)
            .name(format!("send {topic}"))
            .operation(attribute::OPERATION_SEND)
            .topic(topic)
    }

    /// A process span of `group` on `topic`: `CONSUMER`, operation `process`, named
    /// `process <topic>`.
    pub fn process(self, topic: &str, group: &str) -> Self {
        self.kind(SpanKind::Consumer)
            .name(format!("process {topic}"))
            .operation(attribute::OPERATION_PROCESS)
            .topic(topic)
            .group(group)
    }

    /// The operation type (`messaging.operation.type`).
    pub fn operation(mut self, operation: &str) -> Self {
        self = self.attribute(attribute::MESSAGING_OPERATION_TYPE, operation);
        self.record.messaging.operation_type = Some(operation.to_owned());
        self
    }

    /// The span.
    pub fn build(self) -> SpanRecord {
        self.record
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messaging_setters_fill_the_field_and_the_attribute_alike() {
        let built = span(TraceId([1; 16]), SpanId([2; 8]))
            .process("orders", "billing")
            .correlation("ord-1")
            .partition(3)
            .offset(42)
            .build();
        assert_eq!(built.kind, SpanKind::Consumer);
        assert_eq!(built.messaging.destination.as_deref(), Some("orders"));
        assert_eq!(built.messaging.consumer_group.as_deref(), Some("billing"));
        assert_eq!(built.messaging.partition, Some(3));
        assert_eq!(
            built.attributes[attribute::MESSAGING_DESTINATION_PARTITION_ID],
            Value::from("3")
        );
        assert_eq!(
            built.attributes[attribute::MESSAGING_MESSAGE_CONVERSATION_ID],
            Value::from("ord-1")
        );
        assert_eq!(built.messaging.operation_type.as_deref(), Some("process"));
    }
}

/// The variable naming the PostgreSQL database tests run against (`.ci/run` sets it).
pub const PG_TEST_VARIABLE: &str = "CAUSEWAY_TEST_PG";

/// A schema of its own in the test database named by [`PG_TEST_VARIABLE`], for one test;
/// [`PgTestSchema::drop`] removes it. Without the variable the test fails, never skips.
#[derive(Debug)]
pub struct PgTestSchema {
    admin_url: String,
    name: String,
    /// The test database's URL with this schema first on the search path.
    pub url: String,
}

impl PgTestSchema {
    /// Creates an empty schema no other test uses.
    ///
    /// # Panics
    /// When the variable is not set or the database cannot be reached.
    #[allow(clippy::panic)]
    pub async fn create() -> PgTestSchema {
        let admin_url = std::env::var(PG_TEST_VARIABLE).unwrap_or_else(|_| {
            panic!(
                "{PG_TEST_VARIABLE} is not set: this test needs a PostgreSQL database \
                 (e.g. postgres://causeway:causeway@localhost/causeway_test, see .ci/run)"
            )
        });
        PgTestSchema::create_in(admin_url).await
    }

    /// Creates an empty schema no other test uses in the database `admin_url` names.
    ///
    /// # Panics
    /// When the database cannot be reached.
    #[allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]
    pub async fn create_in(admin_url: String) -> PgTestSchema {
        use sqlx::Connection;
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!(
            "test_{}_{}_{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut admin = sqlx::PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {PG_TEST_VARIABLE}: {e}"));
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}")))
            .execute(&mut admin)
            .await
            .expect("the test schema is created");
        let separator = if admin_url.contains('?') { '&' } else { '?' };
        let url = format!("{admin_url}{separator}options[search_path]={name}");
        PgTestSchema {
            admin_url,
            name,
            url,
        }
    }

    /// Drops the schema and everything in it.
    ///
    /// # Panics
    /// When the database cannot be reached.
    #[allow(clippy::expect_used)]
    pub async fn drop(self) {
        use sqlx::Connection;
        let mut admin = sqlx::PgConnection::connect(&self.admin_url)
            .await
            .expect("the test database is reachable");
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA {} CASCADE",
            self.name
        )))
        .execute(&mut admin)
        .await
        .expect("the test schema is dropped");
    }
}
