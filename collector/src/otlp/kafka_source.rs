//! OTLP through Kafka: the collector consumes `ExportTraceServiceRequest` records from a
//! topic, as the OpenTelemetry Collector's `kafka` exporter writes them (`otlp_proto`, the
//! default, or `otlp_json`), as one consumer group, so several collectors share the
//! partitions.
//!
//! The promises:
//! - a record's offset is committed only after its spans are committed to the store, so a
//!   collector killed at any moment loses nothing that was committed (a record read again
//!   after a crash is upserted, not duplicated);
//! - a full writer pauses the partitions (the record is retried, nothing is buffered
//!   beyond it);
//! - a malformed record is counted (`causeway_collector_kafka_records_invalid_total`),
//!   logged and skipped, never retried forever.
//!
//! Records are processed one at a time, in order: an exporter's record holds a whole batch
//! of spans, so one commit per record is what the writer batches anyway.

use std::sync::Arc;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use rdkafka::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::memory_budget::{BudgetError, Charge, MemoryBudget};
use crate::otlp::body_decode::{BodyEncoding, BodyError, BodyFormat};
use crate::otlp::export_decode::{Decoded, TRACES, decode_export};
use crate::otlp::ingest::{ingest_reserved, span_count};
use crate::otlp::messaging_fields::MessagingReader;
use crate::self_metrics::SelfMetrics;
use crate::writer::batch_writer::{WriteError, WriterHandle};

/// How long a full writer pauses consumption before the record is tried again.
const PAUSE_WHEN_FULL: Duration = Duration::from_millis(200);
/// How long a failed commit of the store or of an offset waits before trying again.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// Where to consume OTLP records from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaSourceConfig {
    /// Bootstrap brokers, `host:port,host:port`.
    pub brokers: String,
    /// The topic the exporters write to.
    pub topic: String,
    /// The consumer group every collector of a fleet shares.
    pub group: String,
    /// The largest record accepted (larger ones are malformed).
    pub max_record_bytes: usize,
}

/// Why the Kafka source could not start.
#[derive(Debug, thiserror::Error)]
pub enum KafkaSourceError {
    /// The consumer could not be created or subscribed.
    #[error("cannot consume otlp records from topic {topic} on {brokers}: {source}")]
    Consumer {
        /// The brokers.
        brokers: String,
        /// The topic.
        topic: String,
        /// The cause.
        #[source]
        source: Box<KafkaError>,
    },
}

/// Why one record was skipped.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    /// The record has no value.
    #[error("the record is empty")]
    Empty,
    /// The record is larger than the limit.
    #[error("the record has {size} bytes, more than the limit of {limit}")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Neither OTLP protobuf nor OTLP JSON.
    #[error("not an ExportTraceServiceRequest in otlp_proto or otlp_json: {0}")]
    Malformed(String),
    /// Decoding it alone would need more than the whole memory budget.
    #[error("{0}")]
    TooCostly(String),
}

/// What became of one record's value.
#[derive(Debug)]
pub enum RecordDecode {
    /// Decoded, holding its memory charge; its bad spans are left out.
    Decoded(Decoded<ExportTraceServiceRequest>),
    /// The memory budget is held by other requests: try this record again later.
    Busy,
    /// Never decodable: count it and skip it.
    Skip(RecordError),
}

/// Decodes one record's value: OTLP/JSON when it starts with `{` (after whitespace), else
/// OTLP protobuf. The value is charged to `charge` by what decoding it will cost before
/// the cost exists, as the receivers charge a request body; spans that cannot be stored
/// (text that is not UTF-8, ids that are not hex) are left out alone.
pub fn decode_record(
    value: Option<&[u8]>,
    max_record_bytes: usize,
    mut charge: Charge,
) -> RecordDecode {
    let Some(value) = value.filter(|v| !v.is_empty()) else {
        return RecordDecode::Skip(RecordError::Empty);
    };
    if value.len() > max_record_bytes {
        return RecordDecode::Skip(RecordError::TooLarge {
            size: value.len(),
            limit: max_record_bytes,
        });
    }
    let json = value
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{');
    let format = if json {
        BodyFormat::Json
    } else {
        BodyFormat::Protobuf
    };
    let budget = |error: BudgetError| match error {
        BudgetError::Busy { .. } => RecordDecode::Busy,
        BudgetError::TooLarge { .. } => {
            RecordDecode::Skip(RecordError::TooCostly(error.to_string()))
        }
    };
    if let Err(error) = charge.grow(value.len()) {
        return budget(error);
    }
    match decode_export(
        &TRACES,
        value.to_vec(),
        BodyEncoding::Identity,
        format,
        max_record_bytes,
        charge,
    ) {
        Ok(decoded) => RecordDecode::Decoded(decoded),
        Err(BodyError::Budget(error)) => budget(error),
        Err(error) => RecordDecode::Skip(RecordError::Malformed(error.to_string())),
    }
}

/// Starts consuming: the task runs until `stop` turns true, then commits the offsets of
/// what it stored and leaves the group.
pub fn spawn(
    config: &KafkaSourceConfig,
    writer: WriterHandle,
    metrics: Arc<SelfMetrics>,
    messaging: MessagingReader,
    budget: MemoryBudget,
    stop: watch::Receiver<bool>,
) -> Result<JoinHandle<()>, KafkaSourceError> {
    let consumer_error = |source| KafkaSourceError::Consumer {
        brokers: config.brokers.clone(),
        topic: config.topic.clone(),
        source: Box::new(source),
    };
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &config.brokers)
        .set("group.id", &config.group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "10000")
        .set(
            "fetch.message.max.bytes",
            config.max_record_bytes.to_string(),
        )
        .create()
        .map_err(consumer_error)?;
    consumer
        .subscribe(&[config.topic.as_str()])
        .map_err(consumer_error)?;
    let source = Source {
        budget,
        consumer,
        writer,
        metrics,
        messaging,
        max_record_bytes: config.max_record_bytes,
    };
    Ok(tokio::spawn(source.run(stop)))
}

struct Source {
    /// The receivers' memory budget: spans waiting for their commit are charged to it.
    budget: MemoryBudget,
    consumer: StreamConsumer,
    writer: WriterHandle,
    metrics: Arc<SelfMetrics>,
    messaging: MessagingReader,
    max_record_bytes: usize,
}

impl Source {
    async fn run(self, mut stop: watch::Receiver<bool>) {
        loop {
            let message = tokio::select! {
                message = self.consumer.recv() => message,
                _ = stop.wait_for(|stopped| *stopped) => break,
            };
            match message {
                Ok(message) => {
                    if !self.handle(&message, &mut stop).await {
                        break;
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "otlp kafka source: cannot read from the topic");
                    tokio::time::sleep(RETRY_AFTER_FAILURE).await;
                }
            }
        }
        // Offsets stored so far belong to spans already committed.
        if let Err(error) = self.consumer.commit_consumer_state(CommitMode::Sync) {
            tracing::debug!(%error, "otlp kafka source: nothing to commit at stop");
        }
        self.consumer.unsubscribe();
    }

    /// Stores one record's spans, then its offset. Returns false when the collector stops
    /// before the record could be stored (its offset is then not committed).
    async fn handle(
        &self,
        message: &BorrowedMessage<'_>,
        stop: &mut watch::Receiver<bool>,
    ) -> bool {
        loop {
            let decoded = match decode_record(
                message.payload(),
                self.max_record_bytes,
                self.budget.charge(),
            ) {
                RecordDecode::Decoded(decoded) => decoded,
                RecordDecode::Busy => {
                    // Other requests hold the memory budget: wait, keeping the record.
                    if self.pause(stop, PAUSE_WHEN_FULL).await {
                        return false;
                    }
                    continue;
                }
                RecordDecode::Skip(error) => {
                    self.metrics.kafka_record_invalid();
                    tracing::warn!(
                        topic = message.topic(),
                        partition = message.partition(),
                        offset = message.offset(),
                        %error,
                        "otlp kafka source: skipping a record"
                    );
                    self.done(message);
                    return true;
                }
            };
            let offered = span_count(&decoded.request).max(1);
            let reservation = loop {
                match self.writer.reserve(offered) {
                    Ok(reservation) => break reservation,
                    Err(WriteError::Busy { .. }) => {
                        // Pause fetching while the writer drains; nothing is buffered beyond
                        // the record in hand.
                        if self.pause(stop, PAUSE_WHEN_FULL).await {
                            return false;
                        }
                    }
                    Err(_) => return false,
                }
            };
            match ingest_reserved(decoded, reservation, &self.metrics, &self.messaging).await {
                Ok(_) => {
                    self.metrics.kafka_record_stored();
                    self.done(message);
                    return true;
                }
                Err(WriteError::Stopped) => return false,
                Err(error) => {
                    // The commit failed: neither the spans nor the offset are stored; the
                    // record is tried again.
                    tracing::warn!(%error, "otlp kafka source: cannot store a record, retrying");
                    if self.pause(stop, RETRY_AFTER_FAILURE).await {
                        return false;
                    }
                }
            }
        }
    }

    /// Pauses the assigned partitions for `wait` (or until the collector stops, which it
    /// returns).
    async fn pause(&self, stop: &mut watch::Receiver<bool>, wait: Duration) -> bool {
        let assignment = self.consumer.assignment().ok();
        if let Some(partitions) = &assignment {
            let _ = self.consumer.pause(partitions);
        }
        let stopped = tokio::select! {
            () = tokio::time::sleep(wait) => false,
            _ = stop.wait_for(|stopped| *stopped) => true,
        };
        if let Some(partitions) = &assignment {
            let _ = self.consumer.resume(partitions);
        }
        stopped
    }

    /// Marks the record handled: its offset is stored and committed.
    fn done(&self, message: &BorrowedMessage<'_>) {
        if let Err(error) = self.consumer.store_offset_from_message(message) {
            tracing::warn!(%error, "otlp kafka source: cannot store an offset");
            return;
        }
        if let Err(error) = self.consumer.commit_consumer_state(CommitMode::Async) {
            tracing::warn!(%error, "otlp kafka source: cannot commit offsets");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    fn decode(value: Option<&[u8]>, limit: usize) -> Result<usize, RecordError> {
        match decode_record(value, limit, MemoryBudget::new(64 << 20).charge()) {
            RecordDecode::Decoded(decoded) => Ok(span_count(&decoded.request)),
            RecordDecode::Busy => panic!("nothing else holds the budget"),
            RecordDecode::Skip(error) => Err(error),
        }
    }

    #[test]
    fn records_decode_as_protobuf_or_json_and_bad_ones_are_named() {
        let request = ExportTraceServiceRequest::default();
        let protobuf = request.encode_to_vec();
        // An empty request is zero bytes of protobuf: an empty record, refused as such.
        assert_eq!(decode(Some(&protobuf), 100), Err(RecordError::Empty));
        type Case<'a> = (Option<&'a [u8]>, Result<(), &'a str>, &'a str);
        let cases: Vec<Case> = vec![
            (Some(b"{\"resourceSpans\": []}"), Ok(()), "otlp_json"),
            (
                Some(b"  \n{\"resourceSpans\": []}"),
                Ok(()),
                "otlp_json after whitespace",
            ),
            (
                Some(&[0x0a, 0x00]),
                Ok(()),
                "otlp_proto: one empty ResourceSpans",
            ),
            (None, Err("empty"), "a tombstone"),
            (
                Some(b"{\"resourceSpans\": 7}"),
                Err("not an ExportTraceServiceRequest"),
                "JSON of the wrong shape",
            ),
            (
                Some(&[0xff; 16]),
                Err("not an ExportTraceServiceRequest"),
                "garbage",
            ),
            (Some(&[b'{'; 200]), Err("more than the limit"), "too large"),
        ];
        for (value, expected, reason) in cases {
            let got = decode(value, 100);
            match expected {
                Ok(()) => assert!(got.is_ok(), "{reason}: {got:?}"),
                Err(text) => {
                    let error = got.expect_err(reason).to_string();
                    assert!(error.contains(text), "{reason}: {error}");
                }
            }
        }
    }

    /// A record of empty spans is small on the wire and large once decoded: it is charged
    /// by what it will cost, so one that alone needs more than the budget is skipped
    /// before the cost exists, and one that fits only later waits.
    #[test]
    fn records_are_charged_by_what_decoding_will_cost() {
        use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
        let spans = vec![Span::default(); 200_000];
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let bytes = request.encode_to_vec();
        assert!(bytes.len() < 1 << 20, "{} bytes on the wire", bytes.len());
        let small = MemoryBudget::new(4 << 20);
        match decode_record(Some(&bytes), 20 << 20, small.charge()) {
            RecordDecode::Skip(RecordError::TooCostly(reason)) => {
                assert!(reason.contains("max_request_memory"), "{reason}")
            }
            other => panic!("a record costing more than the budget is skipped: {other:?}"),
        }
        let roomy = MemoryBudget::new(1 << 30);
        let mut held = roomy.charge();
        held.grow((1 << 30) - (1 << 20)).unwrap();
        assert!(
            matches!(
                decode_record(Some(&bytes), 20 << 20, roomy.charge()),
                RecordDecode::Busy
            ),
            "a record that fits once others are done waits"
        );
        drop(held);
        assert!(matches!(
            decode_record(Some(&bytes), 20 << 20, roomy.charge()),
            RecordDecode::Decoded(_)
        ));
    }
}
