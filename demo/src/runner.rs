//! The IO shell around the handlers: consume, open the process span, run the handler with
//! retries, publish what it returns under send spans, dead-letter what keeps failing, commit.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use causeway_conventions::attribute;
use causeway_conventions::attribute::{MESSAGING_DESTINATION_PARTITION_ID, MESSAGING_KAFKA_OFFSET};
use causeway_conventions::header::{
    self, DLQ_ORIGINAL_OFFSET, DLQ_ORIGINAL_PARTITION, DLQ_ORIGINAL_TOPIC, DLQ_REASON, TRACEPARENT,
    TRACESTATE,
};
use causeway_instrumentation::{
    ConsumeMeta, Headers, MessageMeta, ParentMode, extract, inject, record_error, record_retry,
    start_process_span, start_send_span,
};
use opentelemetry::trace::TraceContextExt;
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::SdkTracer;
use tokio::sync::watch;

use crate::board::FaultBoard;
use crate::bus::{BusRecord, OutgoingRecord};
use crate::catalog::{Service, TOPIC_ORDERS_DLQ, schema_of, topic_of};
use crate::handlers::{HandlerError, Outgoing, handle};
use crate::transport::{ShopConsumer, Transport};

/// Attempts per message before it is dead-lettered.
pub const MAX_ATTEMPTS: u32 = 3;
/// Pause between attempts.
pub const RETRY_BACKOFF: Duration = Duration::from_millis(100);
/// How long one receive waits before checking for shutdown.
const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// Counters one shop's services share.
#[derive(Debug, Default)]
pub struct ShopCounters {
    /// Records processed (each delivery once, however many attempts).
    pub processed: AtomicU64,
    /// Records published, dead letters included.
    pub published: AtomicU64,
    /// Records dead-lettered.
    pub dead_lettered: AtomicU64,
    /// Sends or commits that failed.
    pub transport_errors: AtomicU64,
    /// Milliseconds since the shop started at the last processed record.
    pub last_activity_ms: AtomicU64,
}

/// What a service needs to run.
#[derive(Clone)]
pub struct ServiceContext {
    /// The service.
    pub service: Service,
    /// Its tracer.
    pub tracer: SdkTracer,
    /// The bus.
    pub transport: Transport,
    /// Faults in force.
    pub board: FaultBoard,
    /// Shared counters.
    pub counters: Arc<ShopCounters>,
}

/// The `ce_source` of a service's events.
pub fn event_source(service: Service) -> String {
    format!("/shop/{}", service.name())
}

impl ServiceContext {
    /// Consumes until `stop` turns true.
    pub async fn run(self, mut consumer: ShopConsumer, mut stop: watch::Receiver<bool>) {
        loop {
            if *stop.borrow_and_update() {
                return;
            }
            let record = tokio::select! {
                received = consumer.recv(POLL_INTERVAL) => received,
                _ = stop.changed() => return,
            };
            match record {
                Ok(Some(record)) => {
                    self.process(&record).await;
                    if let Err(error) = consumer.commit(&record) {
                        self.counters
                            .transport_errors
                            .fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(service = self.service.name(), error = %error, "commit failed");
                    }
                    self.counters.processed.fetch_add(1, Ordering::Relaxed);
                    self.counters
                        .last_activity_ms
                        .store(self.board.elapsed().as_millis() as u64, Ordering::Relaxed);
                }
                Ok(None) => {}
                Err(error) => {
                    self.counters
                        .transport_errors
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(service = self.service.name(), error = %error, "receive failed");
                    tokio::time::sleep(POLL_INTERVAL).await;
                }
            }
        }
    }

    /// Processes one record: attempts under process spans, then publishes or dead-letters.
    async fn process(&self, record: &BusRecord) {
        let headers = Headers::from_entries(record.headers.clone());
        let extracted = extract(&headers);
        let consume = ConsumeMeta {
            group: self.service.group().to_owned(),
            topic: record.topic.clone(),
            partition: record.partition,
            offset: record.offset,
            key: record
                .key
                .as_deref()
                .and_then(|k| std::str::from_utf8(k).ok())
                .map(str::to_owned),
            timestamp_ms: Some(record.timestamp_ms),
            parent_mode: ParentMode::Child,
        };
        let event_type = extracted.event.event_type.clone().unwrap_or_default();
        let mut last_error: Option<HandlerError> = None;
        for attempt in 0..MAX_ATTEMPTS {
            let cx = start_process_span(&self.tracer, &extracted, &consume);
            if let Some(error) = &last_error {
                record_retry(&cx, attempt, error);
            }
            if let Some(delay) = self.board.slow_delay(self.service.group()) {
                tokio::time::sleep(delay).await;
            }
            match handle(self.service, &event_type, &record.payload) {
                Ok(outgoing) => {
                    for event in outgoing {
                        self.publish(&cx, event).await;
                    }
                    cx.span().end();
                    return;
                }
                Err(error) => {
                    record_error(&cx, &error);
                    if attempt + 1 == MAX_ATTEMPTS {
                        self.dead_letter(&cx, record, &error).await;
                        cx.span().end();
                        return;
                    }
                    cx.span().end();
                    last_error = Some(error);
                    tokio::time::sleep(RETRY_BACKOFF).await;
                }
            }
        }
    }

    /// Publishes one event under a send span that is a child of `parent`.
    pub async fn publish(&self, parent: &Context, event: Outgoing) {
        let mut meta = MessageMeta::new(topic_of(event.event_type))
            .with_key(event.key.clone())
            .with_event_type(event.event_type)
            .with_event_source(event_source(self.service));
        meta.data_schema = Some(schema_of(event.event_type));
        meta.ensure_event_id();
        let cx = start_send_span(&self.tracer, &meta, parent);
        let mut headers = Headers::new();
        inject(&cx, &mut headers, &meta);
        let correlation = headers.get_str(header::CORRELATION_ID).map(str::to_owned);
        if self.service == Service::Shipping && self.board.drops_traceparent(correlation.as_deref())
        {
            // The fault: a legacy publisher that copies only the business headers.
            headers.remove(TRACEPARENT);
            headers.remove(TRACESTATE);
        }
        let record = OutgoingRecord {
            topic: meta.topic.clone(),
            key: Some(event.key.into_bytes()),
            payload: event.payload,
            headers: headers.into_entries(),
        };
        self.send(&cx, &record).await;
        cx.span().end();
    }

    /// Sends `record` (already carrying its headers) under the send span `cx`.
    pub async fn send(&self, cx: &Context, record: &OutgoingRecord) {
        match self.transport.send(record).await {
            Ok((partition, offset)) => {
                // Where the broker stored it: what lag alerts use to name the oldest
                // waiting event.
                cx.span().set_attributes([
                    KeyValue::new(MESSAGING_DESTINATION_PARTITION_ID, partition.to_string()),
                    KeyValue::new(MESSAGING_KAFKA_OFFSET, offset),
                ]);
                self.counters.published.fetch_add(1, Ordering::Relaxed);
            }
            Err(error) => {
                record_error(cx, &error);
                self.counters
                    .transport_errors
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(service = self.service.name(), error = %error, "send failed");
            }
        }
    }

    /// Forwards a record nobody could process to the dead-letter topic, keeping its event
    /// id, type and correlation, and saying where it came from and why.
    async fn dead_letter(&self, parent: &Context, record: &BusRecord, error: &HandlerError) {
        let original = Headers::from_entries(record.headers.clone());
        let extracted = extract(&original);
        let mut meta = MessageMeta::new(TOPIC_ORDERS_DLQ);
        meta.key = record
            .key
            .as_deref()
            .and_then(|k| std::str::from_utf8(k).ok())
            .map(str::to_owned);
        meta.event_id = extracted.event.id.clone();
        meta.event_type = extracted.event.event_type.clone();
        meta.event_source = Some(event_source(self.service));
        meta.data_schema = extracted.event.data_schema.clone();
        let cx = start_send_span(&self.tracer, &meta, parent);
        cx.span()
            .set_attribute(KeyValue::new(attribute::DLQ_REASON, error.to_string()));
        let mut headers = Headers::new();
        inject(&cx, &mut headers, &meta);
        headers.set(DLQ_REASON, error.to_string());
        headers.set(DLQ_ORIGINAL_TOPIC, record.topic.as_str());
        headers.set(DLQ_ORIGINAL_PARTITION, record.partition.to_string());
        headers.set(DLQ_ORIGINAL_OFFSET, record.offset.to_string());
        let dead = OutgoingRecord {
            topic: TOPIC_ORDERS_DLQ.to_owned(),
            key: record.key.clone(),
            payload: record.payload.clone(),
            headers: headers.into_entries(),
        };
        self.send(&cx, &dead).await;
        self.counters.dead_lettered.fetch_add(1, Ordering::Relaxed);
        cx.span().end();
    }
}
